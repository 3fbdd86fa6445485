//! Serving an asset: the hot path. One read snapshot resolves host label → active build →
//! route and streams the blob from that same snapshot.

use super::server::{Body, Chunk, ChunkSource, Reply, Request, Text};
use super::text;
use crate::model::mime::{self, accepts_gzip, etag_matches};
use crate::model::{Visibility, urlencode};
use crate::store::{BlobReader, Hit, Store, StoreError};

/// Answers a GET or HEAD for `target` (path + query) on the environment `label`. `url` is the
/// URL the client used (made only for a protected asset), which its signature or share link must
/// cover.
/// `share_max_secs` is the longest a share link may still be valid for; `visibility` is set
/// to the visibility of the asset found (for the access log).
pub fn serve(
    store: &Store,
    req: &Request<'_>,
    label: &str,
    target: &str,
    url: &dyn Fn() -> String,
    share_max_secs: u64,
    visibility: &mut Option<Visibility>,
) -> Reply {
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = text(405, "Method Not Allowed\n");
        r.headers.push(("allow".into(), "GET, HEAD".into()));
        return r;
    }
    let raw_path = target.split(['?', '#']).next().unwrap_or("/");
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    // SECURITY: the request path is percent-decoded exactly once, here, and compared with the
    // stored paths, which are in decoded form and never hold an escape: a decoded path that
    // still holds one (`/%252e%252e/x` → `/%2e%2e/x`) can only be meant for a store written
    // before that rule, and matches nothing, so no asset is reachable by two encodings.
    let Some(path) = urlencode::decode_path(raw_path) else {
        return text(400, "Bad Request: malformed percent-encoding in the path\n");
    };
    if urlencode::has_escape(&path) {
        return text(404, "Not Found\n");
    }
    let paths = [path.as_str()];
    let served = (|| {
        let lookup = store.read()?;
        let Some(hit) = lookup.resolve(label, &paths)? else {
            return Ok(text(404, "Not Found\n"));
        };
        *visibility = Some(hit.route.visibility);
        match hit.route.visibility {
            // SECURITY: private assets answer exactly like missing ones, so that their
            // existence is not revealed.
            Visibility::Private => return Ok(text(404, "Not Found\n")),
            Visibility::Protected => {
                if let Some(refusal) =
                    protected_refusal(&lookup, &hit, req, &url(), share_max_secs)?
                {
                    return Ok(refusal);
                }
            }
            Visibility::Public => {}
        }
        respond(&lookup, &hit, req)
    })();
    served.unwrap_or_else(|e| store_error(store, &e))
}

/// The answer when the store fails: 503 while it reopens its file after a disk error (the
/// client may retry at once), else a 500 whose body does not leak internals (the cause goes to
/// the server's log).
fn store_error(store: &Store, e: &StoreError) -> Reply {
    store.note_error(e);
    match e {
        StoreError::Poisoned | StoreError::Recovering | StoreError::Closed => {
            let mut r = text(503, "Service Unavailable\n");
            r.headers.push(("retry-after".into(), "1".into()));
            r
        }
        _ => {
            eprintln!("assetd: internal error while serving an asset: {e}");
            text(500, "Internal Server Error\n")
        }
    }
}

/// Why a protected asset is refused (a 403), or `None` when the request may have it: a valid
/// `X-Twilio-Signature`, or else a valid, unexpired share link.
///
/// SECURITY: both are checked with the owning account's *current* auth token, so promoting
/// the secondary token revokes every share link made with the old one. The Twilio check is
/// exactly what it was (over the whole URL, share-link parameters included when present);
/// the share check reads only the `Expires` and `Signature` query parameters and its own
/// domain-separated MAC (see `sign::share_check`), so neither value opens the other door.
fn protected_refusal(
    lookup: &crate::store::Lookup,
    hit: &Hit,
    req: &Request<'_>,
    url: &str,
    share_max_secs: u64,
) -> Result<Option<Reply>, StoreError> {
    use crate::metrics::SignatureFailure;
    use crate::sign::ShareCheck;
    let m = crate::metrics::get();
    let twilio = || text(403, "Forbidden: a valid X-Twilio-Signature is required\n");
    let account = match lookup.account(&hit.account_sid)? {
        Some(a) if a.status == "active" => a,
        _ => {
            m.signature_failure(SignatureFailure::Twilio);
            return Ok(Some(twilio()));
        }
    };
    if let Some(sig) = req.header("x-twilio-signature")
        && crate::sign::verify(&account.auth_token, url, &[], Some(b""), sig)
    {
        return Ok(None);
    }
    let now = crate::store::now();
    match crate::sign::share_check(&account.auth_token, url, now, share_max_secs) {
        ShareCheck::Valid => {
            m.share_links_used
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(None)
        }
        ShareCheck::Absent => {
            m.signature_failure(SignatureFailure::Twilio);
            Ok(Some(twilio()))
        }
        ShareCheck::Expired(at) => {
            m.signature_failure(SignatureFailure::ShareExpired);
            let when = crate::model::time::iso8601(at);
            Ok(Some(text(
                403,
                &format!("Forbidden: this link expired at {when}\n"),
            )))
        }
        ShareCheck::Invalid => {
            m.signature_failure(SignatureFailure::ShareInvalid);
            Ok(Some(text(
                403,
                "Forbidden: this share link is not valid (altered, for another address, or revoked)\n",
            )))
        }
    }
}

fn respond(
    lookup: &crate::store::Lookup,
    hit: &Hit,
    req: &Request<'_>,
) -> Result<Reply, StoreError> {
    let route = &hit.route;
    let etag = hit.etag.clone();
    let gz_etag = || format!("{}-gzip\"", &etag[..etag.len() - 1]);
    let compressible = mime::is_compressible(&route.content_type);
    let mut headers: Vec<(Text, Text)> = Vec::with_capacity(9);
    headers.extend([
        ("content-type".into(), route.content_type.clone().into()),
        ("x-content-type-options".into(), "nosniff".into()),
        ("accept-ranges".into(), "bytes".into()),
        (
            "cache-control".into(),
            match route.visibility {
                Visibility::Protected => "private, no-cache".into(),
                _ => "public, no-cache".into(),
            },
        ),
    ]);
    if compressible {
        headers.push(("vary".into(), "Accept-Encoding".into()));
    }
    if let Some(inm) = req.header("if-none-match")
        && etag_matches(inm, &[&etag, &gz_etag()])
    {
        headers.push(("etag".into(), etag.into()));
        return Ok(Reply {
            status: 304,
            headers,
            body: Body::Empty,
        });
    }
    let range = match req.header("range") {
        Some(r) if if_range_ok(req.header("if-range"), &etag) => parse_range(r, route.size),
        _ => RangeSpec::Full,
    };
    let wants_gzip = compressible
        && matches!(range, RangeSpec::Full)
        && accepts_gzip(req.header("accept-encoding").unwrap_or(""));
    if wants_gzip && let Some((reader, len)) = lookup.open_blob(&route.digest, true, None)? {
        headers.push(("etag".into(), gz_etag().into()));
        headers.push(("content-encoding".into(), "gzip".into()));
        return Ok(Reply {
            status: 200,
            headers,
            body: Body::Chunks {
                source: Box::new(Pieces(reader)),
                len,
            },
        });
    }
    headers.push(("etag".into(), etag.into()));
    let (status, start, end) = match range {
        RangeSpec::Full => (200, 0, route.size),
        RangeSpec::Part(start, end) => {
            headers.push((
                "content-range".into(),
                format!("bytes {start}-{}/{}", end - 1, route.size).into(),
            ));
            (206, start, end)
        }
        RangeSpec::Unsatisfiable => {
            let mut r = text(416, "Range Not Satisfiable\n");
            r.headers.push((
                "content-range".into(),
                format!("bytes */{}", route.size).into(),
            ));
            return Ok(r);
        }
    };
    match lookup.open_blob(&route.digest, false, Some((start, end)))? {
        Some((reader, _)) => Ok(Reply {
            status,
            headers,
            body: Body::Chunks {
                source: Box::new(Pieces(reader)),
                len: end - start,
            },
        }),
        None => Err(StoreError::Corrupt(format!(
            "blob {} of {} is missing",
            route.digest, hit.path
        ))),
    }
}

/// A blob streamed as the store's own pages (no copy), pulled as the socket drains.
struct Pieces(BlobReader);

impl ChunkSource for Pieces {
    fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        Ok(self.0.next_piece()?.map(|p| Box::new(p) as Chunk))
    }
}

/// `If-Range` allows the range only when it names the current (strong) ETag; a date or any
/// other value means "send everything".
fn if_range_ok(if_range: Option<&str>, etag: &str) -> bool {
    match if_range {
        None => true,
        Some(v) => v.trim() == etag,
    }
}

#[derive(Debug, PartialEq)]
enum RangeSpec {
    Full,
    /// `start..end` (end exclusive).
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range. Several ranges, other units or syntax errors are ignored (the full
/// body is sent, as RFC 9110 allows); a well-formed range outside the body is unsatisfiable.
fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeSpec::Full,
        (true, false) => match num(b) {
            None => RangeSpec::Full,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Part(size.saturating_sub(n), size),
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeSpec::Full;
            };
            let end = if b.is_empty() {
                size
            } else {
                match num(b) {
                    Some(e) if e >= start => e.saturating_add(1).min(size),
                    _ => return RangeSpec::Full,
                }
            };
            if start >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(start, end)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Part(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::Part(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Part(90, 100));
        assert_eq!(parse_range("bytes=-200", 100), RangeSpec::Part(0, 100));
        assert_eq!(parse_range("bytes=50-500", 100), RangeSpec::Part(50, 100));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Full);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Full);
        assert_eq!(parse_range("bytes=5-1", 100), RangeSpec::Full);
        assert_eq!(parse_range("bytes=x-1", 100), RangeSpec::Full);
        assert_eq!(parse_range("bytes=0-", 0), RangeSpec::Unsatisfiable);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 10_000,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Any header: a part lies inside the body and is never empty; a well-formed single
        /// range means what RFC 9110 says.
        #[test]
        fn range_header_parts_lie_inside_the_body(
            header in "(bytes=)?[0-9 ]{0,4}-?[0-9 ]{0,4}(,[0-9]{0,3}-[0-9]{0,3})?",
            junk in proptest::prelude::any::<String>(),
            size in 0u64..2000,
            a in 0u64..3000,
            b in 0u64..3000,
        ) {
            for h in [header.as_str(), junk.as_str()] {
                if let RangeSpec::Part(s, e) = parse_range(h, size) {
                    proptest::prop_assert!(s < e && e <= size, "{h:?} {size}: {s}..{e}");
                }
            }
            let want = if a >= size {
                RangeSpec::Unsatisfiable
            } else if b >= a {
                RangeSpec::Part(a, (b + 1).min(size))
            } else {
                RangeSpec::Full
            };
            let got = parse_range(&format!("bytes={a}-{b}"), size);
            let ok = (b < a && got == RangeSpec::Full) || (b >= a && got == want);
            proptest::prop_assert!(ok, "bytes={a}-{b} of {size}: {got:?}");
            let suffix = parse_range(&format!("bytes=-{b}"), size);
            let want = if b == 0 || size == 0 {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(size.saturating_sub(b), size)
            };
            proptest::prop_assert_eq!(suffix, want);
        }
    }
}
