//! The web console: the plain HTML, CSS and JavaScript modules in `web/`, served on the
//! management host. This is the only module that names rust-embed.
//!
//! Release builds embed `web/` in the binary; debug builds read it from disk on every request
//! (rust-embed's default), so the console can be edited live with `cargo run -- serve`.
//!
//! URLs and caching:
//!
//! * `/` is `web/index.html` with every `__UI__` placeholder replaced by the versioned prefix
//!   `/ui/{version}`, where the version is a content hash over all of `web/`
//!   ([`version`]). It is sent with `Cache-Control: no-cache` and an `ETag`, so a browser
//!   revalidates it on each visit and picks up a new version at once.
//! * `/ui/{version}/{file}` are the other files. Because the prefix changes whenever any file
//!   changes, relative imports between JS modules stay consistent and these answers are
//!   `Cache-Control: public, max-age=31536000, immutable`. A request naming another version
//!   (a page loaded before an upgrade) still gets the current file, with `no-cache`, so that a
//!   stale URL is never cached as if it were immutable.
//! * Compressible files are gzipped when the client accepts it.
//!
//! Every answer carries a strict `Content-Security-Policy` (scripts, styles and connections
//! from this origin only; images and media also from `blob:` for previews), `nosniff`,
//! `no-referrer` and a frame ban.

use crate::model::{Hasher, hex, mime};
use rust_embed::RustEmbed;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The console files.
#[derive(RustEmbed)]
#[folder = "web/"]
struct Files;

/// The URL prefix of versioned console files: `/ui/{version}/{file}`.
pub const PREFIX: &str = "/ui/";

/// The placeholder in `index.html` replaced by `/ui/{version}`.
const PLACEHOLDER: &str = "__UI__";

/// How long versioned files may be cached: one year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The policy sent with every console answer.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self' blob: data:; media-src 'self' blob:; font-src 'self'; manifest-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One answer of the console, independent of the HTTP engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 200, or 304 when the client's `If-None-Match` matched.
    pub status: u16,
    /// Header names lower-case; values are fixed strings or hex digests, never request bytes.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// The body (empty for 304).
    pub body: Vec<u8>,
}

/// What a console request carries that matters here.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// The request path, without its query.
    pub path: &'a str,
    /// The `If-None-Match` header, if any.
    pub if_none_match: Option<&'a str>,
    /// The `Accept-Encoding` header, if any.
    pub accept_encoding: Option<&'a str>,
}

/// The console's answer for a GET or HEAD of `req.path`: `/` (the page) or
/// `/ui/{version}/{file}`. `None` when the path is not a console file (the caller answers 404).
pub fn serve(req: Request<'_>) -> Option<Response> {
    if req.path == "/" || req.path == "/index.html" {
        return Some(index(req));
    }
    let rest = req.path.strip_prefix(PREFIX)?;
    let (version, name) = rest.split_once('/')?;
    if !is_file_name(name) || name == "index.html" {
        return None;
    }
    let file = Files::get(name)?;
    let cache = if version == current_version() {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    Some(respond(req, name, file.data, etag, cache))
}

/// The content version of the console: the first 16 hex digits of a BLAKE3 hash over every
/// file's name and SHA-256. Computed once in release builds, on each call in debug builds
/// (where the files are read from disk and may change).
pub fn version() -> String {
    current_version().into_owned()
}

fn current_version() -> Cow<'static, str> {
    static VERSION: OnceLock<String> = OnceLock::new();
    if cfg!(debug_assertions) {
        return Cow::Owned(compute_version());
    }
    Cow::Borrowed(VERSION.get_or_init(compute_version))
}

fn compute_version() -> String {
    let mut names: Vec<Cow<'static, str>> = Files::iter().collect();
    names.sort();
    let mut h = Hasher::new();
    for name in names {
        if let Some(f) = Files::get(&name) {
            h.update(name.as_bytes());
            h.update(&[0]);
            h.update(&f.metadata.sha256_hash());
        }
    }
    h.finalize().to_hex()[..16].to_string()
}

/// `index.html` with the versioned prefix filled in, `no-cache`.
fn index(req: Request<'_>) -> Response {
    let version = current_version();
    let page = match Files::get("index.html") {
        Some(f) => String::from_utf8_lossy(&f.data).replace(PLACEHOLDER, &format!("/ui/{version}")),
        // Only a build without web/index.html gets here; say so rather than 404.
        None => {
            "<!doctype html><title>assetd</title><p>The console files are missing from this build."
                .to_string()
        }
    };
    let mut h = Hasher::new();
    h.update(page.as_bytes());
    let etag = format!("\"{}\"", &h.finalize().to_hex()[..32]);
    respond(
        req,
        "index.html",
        Cow::Owned(page.into_bytes()),
        etag,
        "no-cache",
    )
}

/// The full answer for one file: 304 when the ETag matches, else the (possibly gzipped) body.
fn respond(
    req: Request<'_>,
    name: &str,
    data: Cow<'static, [u8]>,
    etag: String,
    cache: &str,
) -> Response {
    let content_type = mime::from_path(name);
    let compressible = mime::is_compressible(content_type);
    let gzip = compressible && mime::accepts_gzip(req.accept_encoding.unwrap_or(""));
    let etag = if gzip {
        format!("{}-gzip\"", etag.trim_end_matches('"'))
    } else {
        etag
    };
    let mut headers = vec![
        ("content-type".into(), content_type.to_string().into()),
        ("cache-control".into(), cache.to_string().into()),
        ("etag".into(), etag.clone().into()),
        ("x-content-type-options".into(), "nosniff".into()),
        ("referrer-policy".into(), "no-referrer".into()),
        ("x-frame-options".into(), "DENY".into()),
        ("content-security-policy".into(), CSP.into()),
    ];
    if compressible {
        headers.push(("vary".into(), "Accept-Encoding".into()));
    }
    if req
        .if_none_match
        .is_some_and(|v| mime::etag_matches(v, &[&etag]))
    {
        return Response {
            status: 304,
            headers,
            body: Vec::new(),
        };
    }
    let body = if gzip {
        headers.push(("content-encoding".into(), "gzip".into()));
        gzipped(&etag, &data)
    } else {
        data.into_owned()
    };
    Response {
        status: 200,
        headers,
        body,
    }
}

/// The gzip of `data`, remembered by ETag (so each version of a file is compressed once).
fn gzipped(etag: &str, data: &[u8]) -> Vec<u8> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(hit) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(etag) {
        return hit.clone();
    }
    let mut enc = crate::compress::encoder(Vec::with_capacity(data.len() / 3 + 64));
    let out = std::io::Write::write_all(&mut enc, data)
        .and_then(|()| enc.finish())
        .unwrap_or_default();
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    // Bounded: in debug builds every edit adds entries; the console is a few dozen files.
    if map.len() > 256 {
        map.clear();
    }
    map.insert(etag.to_string(), out.clone());
    out
}

/// A plain file name: `[A-Za-z0-9._-]`, not starting with a dot (so no `..`, no hidden files,
/// no directories).
fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Option<Response> {
        serve(Request {
            path,
            ..Request::default()
        })
    }

    fn header<'a>(r: &'a Response, name: &str) -> &'a str {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    #[test]
    fn index_links_versioned_files() {
        let r = get("/").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "cache-control"), "no-cache");
        let page = String::from_utf8(r.body).unwrap();
        assert!(!page.contains(PLACEHOLDER), "placeholder left in the page");
        let prefix = format!("/ui/{}/", version());
        assert!(page.contains(&format!("{prefix}app.js")), "{page}");
        assert!(page.contains(&format!("{prefix}style.css")), "{page}");
    }

    #[test]
    fn versioned_files_are_immutable_and_stale_ones_not() {
        let v = version();
        let r = get(&format!("/ui/{v}/app.js")).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "cache-control"), IMMUTABLE);
        assert!(header(&r, "content-type").starts_with("text/javascript"));
        let stale = get("/ui/0000000000000000/app.js").unwrap();
        assert_eq!(header(&stale, "cache-control"), "no-cache");
        assert_eq!(stale.body, r.body);
    }

    #[test]
    fn unknown_and_hostile_paths_are_not_served() {
        let v = version();
        for p in [
            "/nope",
            "/ui/",
            &format!("/ui/{v}"),
            &format!("/ui/{v}/"),
            &format!("/ui/{v}/missing.js"),
            &format!("/ui/{v}/../Cargo.toml"),
            &format!("/ui/{v}/..%2fCargo.toml"),
            &format!("/ui/{v}/.hidden"),
            &format!("/ui/{v}/index.html"),
            "/app.js",
        ] {
            assert!(get(p).is_none(), "{p} was served");
        }
    }

    #[test]
    fn etag_revalidation_and_gzip() {
        let v = version();
        let path = format!("/ui/{v}/style.css");
        let plain = get(&path).unwrap();
        let etag = header(&plain, "etag").to_string();
        let again = serve(Request {
            path: &path,
            if_none_match: Some(&etag),
            accept_encoding: None,
        })
        .unwrap();
        assert_eq!((again.status, again.body.len()), (304, 0));
        let gz = serve(Request {
            path: &path,
            if_none_match: None,
            accept_encoding: Some("gzip, deflate, br"),
        })
        .unwrap();
        assert_eq!(header(&gz, "content-encoding"), "gzip");
        assert_ne!(header(&gz, "etag"), etag);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut crate::compress::decoder(&gz.body[..]), &mut out).unwrap();
        assert_eq!(out, plain.body);
    }

    #[test]
    fn header_parsing() {
        assert!(mime::accepts_gzip("gzip"));
        assert!(mime::accepts_gzip("br, GZIP;q=0.5"));
        assert!(!mime::accepts_gzip("gzip;q=0"));
        assert!(!mime::accepts_gzip("br"));
        assert!(!mime::accepts_gzip(""));
        assert!(mime::etag_matches("W/\"a\", \"b\"", &["\"a\""]));
        assert!(mime::etag_matches("*", &["\"a\""]));
        assert!(!mime::etag_matches("\"b\"", &["\"a\""]));
        assert!(is_file_name("app.js") && is_file_name("sha1-hmac.js"));
        assert!(!is_file_name("..") && !is_file_name("a/b") && !is_file_name(""));
    }

    #[test]
    fn every_console_file_has_a_known_type() {
        for name in Files::iter() {
            assert!(is_file_name(&name), "{name} is not a plain file name");
            assert_ne!(mime::from_path(&name), "application/octet-stream", "{name}");
        }
    }
}
