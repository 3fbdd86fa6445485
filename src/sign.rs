//! `X-Twilio-Signature`: compute and verify side by side.
//!
//! The algorithm (reference §5): start from the full URL Twilio requested, append every form
//! parameter as `name + value` (names sorted by byte order; each name's values deduplicated and
//! sorted), HMAC-SHA1 the result keyed with the account auth token, and Base64 it (standard
//! alphabet, `=` padding).
//!
//! [`verify`] accepts what twilio-python's `RequestValidator.validate` accepts (the URL without
//! its port and with the scheme's default port), plus twilio-node's WHATWG query normalisation
//! (`'` becomes `%27`), and the `bodySHA256` scheme for JSON bodies.
//!
//! This is the only module that names `hmac`, `sha1` and `sha2`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

type HmacSha1 = Hmac<Sha1>;

/// The query parameter Twilio adds to the URL when it sends a JSON (non-form) body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// The request header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Twilio's signature over `url` and the form `params`: HMAC-SHA1 keyed with `token`, Base64.
///
/// A GET (such as an asset fetch) passes no params: its query stays inside `url`.
pub fn compute(token: &str, url: &str, params: &[(String, String)]) -> String {
    match keyed_mac(token, url, params) {
        Some(mac) => STANDARD.encode(mac.finalize().into_bytes()),
        // HMAC accepts keys of any length, so this arm is never taken.
        None => String::new(),
    }
}

/// Whether `signature` (the `X-Twilio-Signature` header) is valid for this request.
///
/// Tries the URL as given, without its explicit port (any port, even `:1234`, like python's
/// `remove_port`), with the scheme's default port (`:443` for https, `:80` otherwise; only when
/// there is no explicit port), and each of those with Node's WHATWG query normalisation.
///
/// When the URL's query carries `bodySHA256` and `body` is `Some`, the body's SHA-256 (lower-case
/// hex) must equal it and the signature is checked with **empty** params (`params` is ignored).
/// Without `bodySHA256`, `body` is ignored and `params` are used.
///
/// Returns false (never panics) for a malformed URL, an empty token, or an empty or garbled
/// signature.
pub fn verify(
    token: &str,
    url: &str,
    params: &[(String, String)],
    body: Option<&[u8]>,
    signature: &str,
) -> bool {
    // SECURITY: an empty auth token makes every signature forgeable; refuse it outright.
    if token.is_empty() {
        return false;
    }
    // SECURITY: decode the header to the raw 20-byte tag once. The base64 STANDARD engine rejects
    // non-canonical padding and trailing bits, so exactly one header string maps to each tag,
    // just as the libraries' string comparison requires.
    let Ok(tag) = STANDARD.decode(signature.trim_matches([' ', '\t'])) else {
        return false;
    };
    if tag.len() != 20 {
        return false;
    }
    let Some(candidates) = candidate_urls(url) else {
        return false;
    };

    let mut params = params;
    let mut body_ok = true;
    if let (Some(body), Some(expected)) = (body, query_value(url, BODY_SHA256_PARAM)) {
        // SECURITY: the signature covers the URL (which carries the hash), the hash covers the
        // body; both must hold. Params are not part of a JSON request's signature.
        body_ok = ct_eq(sha256_hex(body).as_bytes(), expected.as_bytes());
        params = &[];
    }

    let mut any = false;
    for candidate in &candidates {
        if let Some(mac) = keyed_mac(token, candidate, params) {
            // SECURITY: `verify_slice` compares in constant time. Every candidate is tried (no
            // early exit) so the time taken does not reveal which variant matched.
            any |= mac.verify_slice(&tag).is_ok();
        }
    }
    body_ok & any
}

/// Lower-case hex SHA-256 of `body`, as Twilio puts it in `bodySHA256`.
pub fn sha256_hex(body: &[u8]) -> String {
    to_hex(&Sha256::digest(body))
}

/// The URL with its explicit port dropped (python `remove_port`); unchanged when it has none.
///
/// Userinfo (`user:pass@`) and IPv6 brackets are kept. `None` for a malformed URL.
pub fn without_port(url: &str) -> Option<String> {
    let p = UrlParts::parse(url)?;
    Some(p.join(None))
}

/// The URL with the scheme's default port added (python `add_port`: `:443` for https, `:80`
/// otherwise); unchanged when it already has an explicit port. `None` for a malformed URL.
pub fn with_default_port(url: &str) -> Option<String> {
    let p = UrlParts::parse(url)?;
    if p.port.is_some() {
        return Some(url.to_owned());
    }
    Some(p.join(Some(default_port(p.scheme))))
}

/// `443` for https, `80` for anything else (python `add_port`).
fn default_port(scheme: &str) -> &'static str {
    if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    }
}

/// An HMAC-SHA1 keyed with `token` that has absorbed the signing string for `url` and `params`.
fn keyed_mac(token: &str, url: &str, params: &[(String, String)]) -> Option<HmacSha1> {
    let mut mac = <HmacSha1 as KeyInit>::new_from_slice(token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    // Names in byte order (equal to python's code-point order for UTF-8); per name, the set of
    // values in byte order, so duplicates count once.
    let mut grouped: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        grouped.entry(name).or_default().insert(value);
    }
    for (name, values) in &grouped {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    Some(mac)
}

/// Every URL string the signature may have been computed over, deduplicated, in trial order.
fn candidate_urls(url: &str) -> Option<Vec<String>> {
    let parts = UrlParts::parse(url)?;
    let mut out: Vec<String> = Vec::with_capacity(6);
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    let bare = parts.join(None);
    let ported = match parts.port {
        Some(_) => url.to_owned(),
        None => parts.join(Some(default_port(parts.scheme))),
    };
    for u in [url.to_owned(), bare, ported] {
        let node = whatwg_query(&u);
        push(u);
        push(node);
    }
    Some(out)
}

/// A URL split as `scheme://[userinfo@]host[:port]rest`, borrowing from the original string.
struct UrlParts<'a> {
    scheme: &'a str,
    /// Userinfo including its trailing `@`, or empty.
    userinfo: &'a str,
    /// Host as written, with brackets for IPv6.
    host: &'a str,
    /// Port digits, when an explicit port is present.
    port: Option<&'a str>,
    /// Path, query and fragment: everything after the authority.
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    /// Splits an absolute URL; `None` when it is not one (no scheme, empty host, bad port).
    fn parse(url: &'a str) -> Option<UrlParts<'a>> {
        let (scheme, after) = url.split_once("://")?;
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return None;
        }
        let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(auth_end);
        // Userinfo ends at the last `@` of the authority (as python's urlsplit does).
        let host_start = authority.rfind('@').map_or(0, |i| i + 1);
        let (userinfo, hostport) = authority.split_at(host_start);

        let (host, port) = if hostport.starts_with('[') {
            let close = hostport.find(']')?;
            let (host, tail) = hostport.split_at(close + 1);
            match tail {
                "" => (host, None),
                _ => (host, Some(tail.strip_prefix(':')?)),
            }
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host == "[]" {
            return None;
        }
        if let Some(port) = port {
            // Same rule as python's `urlparse(...).port`: decimal, at most 65535.
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            port.parse::<u16>().ok()?;
        }
        Some(UrlParts {
            scheme,
            userinfo,
            host,
            port,
            rest,
        })
    }

    /// Reassembles the URL with `port` (or none) in place of the original port.
    fn join(&self, port: Option<&str>) -> String {
        let mut s = String::with_capacity(
            self.scheme.len() + 3 + self.userinfo.len() + self.host.len() + 6 + self.rest.len(),
        );
        s.push_str(self.scheme);
        s.push_str("://");
        s.push_str(self.userinfo);
        s.push_str(self.host);
        if let Some(port) = port {
            s.push(':');
            s.push_str(port);
        }
        s.push_str(self.rest);
        s
    }
}

/// The URL with its query percent-encoded as WHATWG `new URL()` does for http(s) (the "special
/// query percent-encode set"): controls, space, `"`, `#`, `<`, `>`, `'` and non-ASCII bytes.
/// This is twilio-node's normalisation (`It's` becomes `It%27s`).
fn whatwg_query(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_owned();
    };
    let q_end = url[q..].find('#').map_or(url.len(), |i| q + i);
    let mut out = String::with_capacity(url.len() + 16);
    out.push_str(&url[..=q]);
    for &b in &url.as_bytes()[q + 1..q_end] {
        if b <= 0x20 || b >= 0x7f || matches!(b, b'"' | b'#' | b'<' | b'>' | b'\'') {
            out.push('%');
            out.push(HEX_UPPER[usize::from(b >> 4)] as char);
            out.push(HEX_UPPER[usize::from(b & 0x0f)] as char);
        } else {
            out.push(char::from(b));
        }
    }
    out.push_str(&url[q_end..]);
    out
}

/// The first non-empty value of `name` in the URL's query, form-decoded (python `parse_qs`).
fn query_value(url: &str, name: &str) -> Option<String> {
    let (_, after) = url.split_once('?')?;
    let query = after.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if form_decode(k) != name {
            return None;
        }
        let v = form_decode(v);
        (!v.is_empty()).then_some(v)
    })
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; a malformed
/// escape stays literal and invalid UTF-8 becomes U+FFFD.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0x0f)] as char);
    }
    s
}

// ---- Share links ---------------------------------------------------------------------------

/// The query parameter of a share link that holds its expiry (Unix seconds).
pub const SHARE_EXPIRES_PARAM: &str = "Expires";
/// The query parameter of a share link that holds its signature.
pub const SHARE_SIGNATURE_PARAM: &str = "Signature";

/// SECURITY: the domain-separation prefix of share-link MACs. A share link is HMAC-SHA256 over
/// this prefix and a structured message; an `X-Twilio-Signature` is HMAC-SHA1 over a URL
/// (which starts with a scheme, never with this prefix). Different hash, different length
/// (32 vs 20 bytes), different alphabet (base64url vs standard), different message space: a
/// value valid as one can never be valid as the other.
const SHARE_DOMAIN: &[u8] = b"assetd-share-link-v1\0";

type HmacSha256 = Hmac<Sha256>;

/// What a request's share-link parameters amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum ShareCheck {
    /// The URL carries no share-link parameters.
    Absent,
    /// Valid and unexpired.
    Valid,
    /// Valid but expired at this Unix time.
    Expired(u64),
    /// Malformed, tampered with, made with another token, for another URL, or valid for
    /// longer than the server's maximum lifetime.
    Invalid,
}

/// `scheme`, lower-cased `host[:port]` without the scheme's default port, and the path (as
/// written, without query or fragment) of an absolute URL; `None` when it is not one.
fn share_parts(url: &str) -> Option<(String, String, &str, &str)> {
    let p = UrlParts::parse(url)?;
    let scheme = p.scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let mut host = p.host.to_ascii_lowercase();
    if let Some(port) = p.port
        && port != default_port(&scheme)
    {
        host = format!("{host}:{port}");
    }
    let cut = p.rest.find(['?', '#']).unwrap_or(p.rest.len());
    let path = if cut == 0 { "/" } else { &p.rest[..cut] };
    let query = p.rest[cut..]
        .strip_prefix('?')
        .map_or("", |q| q.split('#').next().unwrap_or(""));
    Some((scheme, host, path, query))
}

fn share_mac(
    token: &str,
    scheme: &str,
    host: &str,
    path: &str,
    expires: u64,
) -> Option<HmacSha256> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(token.as_bytes()).ok()?;
    // Fields separated by NUL, which none of them can hold: no two field lists give the same
    // message.
    for part in [
        SHARE_DOMAIN,
        scheme.as_bytes(),
        b"\0",
        host.as_bytes(),
        b"\0",
        path.as_bytes(),
        b"\0",
    ] {
        mac.update(part);
    }
    mac.update(expires.to_string().as_bytes());
    Some(mac)
}

/// The share link for `url` (an absolute http(s) URL; its query and fragment are dropped)
/// valid until `expires` (Unix seconds): `url?Expires=…&Signature=…`, keyed with `token`.
/// `None` for a malformed URL or an empty token.
pub fn share_url(token: &str, url: &str, expires: u64) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let (scheme, host, path, _) = share_parts(url)?;
    let mac = share_mac(token, &scheme, &host, path, expires)?;
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let end = url.find(['?', '#']).unwrap_or(url.len());
    Some(format!(
        "{}?{SHARE_EXPIRES_PARAM}={expires}&{SHARE_SIGNATURE_PARAM}={sig}",
        &url[..end]
    ))
}

/// Checks the share-link parameters of `url` (the URL the client used) at time `now`:
/// the signature must be `token`'s over this scheme, host, path and expiry, and the expiry no
/// later than `now + max_lifetime`. Other query parameters are ignored (not signed).
pub fn share_check(token: &str, url: &str, now: u64, max_lifetime: u64) -> ShareCheck {
    let Some((scheme, host, path, query)) = share_parts(url) else {
        return ShareCheck::Invalid;
    };
    let (mut expires, mut sig) = (None, None);
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            SHARE_EXPIRES_PARAM => &mut expires,
            SHARE_SIGNATURE_PARAM => &mut sig,
            _ => continue,
        };
        // SECURITY: a parameter given twice is ambiguous (which one did the signer mean?).
        if slot.replace(v).is_some() {
            return ShareCheck::Invalid;
        }
    }
    let (expires, sig) = match (expires, sig) {
        (None, None) => return ShareCheck::Absent,
        (Some(e), Some(s)) => (e, s),
        _ => return ShareCheck::Invalid,
    };
    // Exactly the digits the signer wrote: no sign, no leading zeros, so one expiry has one
    // spelling.
    let canonical = !expires.is_empty()
        && expires.len() <= 19
        && expires.bytes().all(|b| b.is_ascii_digit())
        && (expires == "0" || !expires.starts_with('0'));
    let Some(expires_at) = canonical.then(|| expires.parse::<u64>().ok()).flatten() else {
        return ShareCheck::Invalid;
    };
    if token.is_empty() {
        return ShareCheck::Invalid;
    }
    let Ok(tag) = URL_SAFE_NO_PAD.decode(sig) else {
        return ShareCheck::Invalid;
    };
    let Some(mac) = share_mac(token, &scheme, &host, path, expires_at) else {
        return ShareCheck::Invalid;
    };
    // SECURITY: constant-time comparison of the full 32-byte tag.
    if tag.len() != 32 || mac.verify_slice(&tag).is_err() {
        return ShareCheck::Invalid;
    }
    // SECURITY: the lifetime cap is enforced when the link is used, not only when it is made,
    // so a link minted offline with `--token` for a year is refused.
    if expires_at > now.saturating_add(max_lifetime) {
        return ShareCheck::Invalid;
    }
    if now >= expires_at {
        return ShareCheck::Expired(expires_at);
    }
    ShareCheck::Valid
}

/// Constant-time byte comparison (length is not secret).
// SECURITY: no early exit on the first differing byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_links_verify_and_refuse_tampering() {
        let url = "http://svc-1234-dev.localhost:8080/secret.mp3";
        let link = share_url("tok", url, 1000).unwrap();
        assert!(
            link.starts_with(
                "http://svc-1234-dev.localhost:8080/secret.mp3?Expires=1000&Signature="
            )
        );
        assert_eq!(share_check("tok", &link, 900, 3600), ShareCheck::Valid);
        assert_eq!(
            share_check("tok", &link, 1000, 3600),
            ShareCheck::Expired(1000)
        );
        assert_eq!(share_check("other", &link, 900, 3600), ShareCheck::Invalid);
        // past the maximum lifetime at the time of use
        assert_eq!(share_check("tok", &link, 900, 50), ShareCheck::Invalid);
        assert_eq!(share_check("tok", url, 900, 3600), ShareCheck::Absent);
        for bad in [
            link.replace("Expires=1000", "Expires=1001"),
            link.replace("Expires=1000", "Expires=01000"),
            link.replace("secret.mp3", "secret.mp4"),
            link.replace("-dev.", "-stage."),
            link.replace("http://", "https://"),
            link.replace(":8080", ":8081"),
            format!("{link}&Expires=1000"),
            link.split("&Signature").next().unwrap().to_string(),
            format!("{}A", link),
        ] {
            assert_eq!(
                share_check("tok", &bad, 900, 3600),
                ShareCheck::Invalid,
                "{bad}"
            );
        }
        // Host case and the default port do not matter; other parameters are not signed.
        let upper = link.replace("svc-1234-dev.localhost", "SVC-1234-DEV.localhost");
        assert_eq!(share_check("tok", &upper, 900, 3600), ShareCheck::Valid);
        let p80 = share_url("tok", "http://a.localhost/x", 1000).unwrap();
        let with80 = p80.replace("a.localhost/", "a.localhost:80/");
        assert_eq!(share_check("tok", &with80, 900, 3600), ShareCheck::Valid);
        assert_eq!(
            share_check("tok", &format!("{link}&x=1"), 900, 3600),
            ShareCheck::Valid
        );
    }

    #[test]
    fn share_signature_is_never_a_twilio_signature() {
        let url = "http://a.localhost/x";
        let link = share_url("tok", url, 1000).unwrap();
        let share_sig = link.rsplit('=').next().unwrap();
        assert!(!verify("tok", url, &[], Some(b""), share_sig));
        assert!(!verify("tok", &link, &[], Some(b""), share_sig));
        let twilio = compute("tok", url, &[]);
        let forged = format!("{url}?Expires=1000&Signature={twilio}");
        assert_eq!(share_check("tok", &forged, 900, 3600), ShareCheck::Invalid);
        let twilio_of_link = compute("tok", &format!("{url}?Expires=1000"), &[]);
        let forged = format!("{url}?Expires=1000&Signature={twilio_of_link}");
        assert_eq!(share_check("tok", &forged, 900, 3600), ShareCheck::Invalid);
    }

    const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/signature-vectors.json"
    );

    /// Token and base URL of the libraries' own test suites (reference §5.4).
    const TOKEN: &str = "12345";
    const U: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const BODY_7: &[u8] = br#"{"property": "value", "boolean": true}"#;
    const HASH_7: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const HASH_9: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    type Params = Vec<(String, String)>;

    fn pairs(list: &[(&str, &str)]) -> Params {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn p() -> Params {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn sign_every_vector_in_the_json_file() {
        let text = std::fs::read_to_string(VECTORS).expect("read vectors");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("parse vectors");
        let vectors = doc["vectors"].as_array().expect("vectors array");
        assert!(!vectors.is_empty());
        let (mut valid, mut invalid, mut port_checks) = (0, 0, 0);
        for (i, v) in vectors.iter().enumerate() {
            let token = v["auth_token"].as_str().expect("auth_token");
            let url = v["url"].as_str().expect("url");
            let signature = v["signature"].as_str().expect("signature");
            let expect_valid = v["valid"].as_bool().expect("valid");
            let params: Vec<(String, String)> = v["params"]
                .as_array()
                .expect("params")
                .iter()
                .map(|pair| {
                    let pair = pair.as_array().expect("pair");
                    assert_eq!(pair.len(), 2, "vector {i}: pair");
                    (
                        pair[0].as_str().unwrap().to_owned(),
                        pair[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let body = v.get("body").and_then(|b| b.as_str()).map(str::as_bytes);

            assert_eq!(
                verify(token, url, &params, body, signature),
                expect_valid,
                "vector {i}: {url} valid={expect_valid}"
            );

            if let Some(with) = v.get("signature_with_port").and_then(|s| s.as_str()) {
                let u = with_default_port(url).expect("with port");
                assert_eq!(
                    compute(token, &u, &params),
                    with,
                    "vector {i}: with port {u}"
                );
                port_checks += 1;
            }
            if let Some(without) = v.get("signature_without_port").and_then(|s| s.as_str()) {
                let u = without_port(url).expect("without port");
                assert_eq!(
                    compute(token, &u, &params),
                    without,
                    "vector {i}: without port {u}"
                );
                port_checks += 1;
            }
            if expect_valid {
                valid += 1;
                if let Some(body) = body {
                    // JSON body: the signature is over the URL alone and the hash matches.
                    assert_eq!(compute(token, url, &[]), signature, "vector {i}");
                    let hash = query_value(url, BODY_SHA256_PARAM).expect("bodySHA256");
                    assert_eq!(sha256_hex(body), hash, "vector {i}");
                } else {
                    // Python accepts only the with-port and without-port variants.
                    let sigs = [
                        compute(token, &with_default_port(url).unwrap(), &params),
                        compute(token, &without_port(url).unwrap(), &params),
                    ];
                    assert!(sigs.iter().any(|s| s == signature), "vector {i}");
                }
            } else {
                invalid += 1;
            }
        }
        assert_eq!(valid + invalid, vectors.len());
        assert!(valid > 0 && invalid > 0);
        assert!(port_checks > 0);
        eprintln!(
            "signature vectors: {valid} valid + {invalid} invalid checked, {port_checks} port variants"
        );
    }

    #[test]
    fn sign_reference_table_compute() {
        let p = p();
        let cases: [(&str, Params, &str); 12] = [
            (U, p.clone(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            (
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                p.clone(),
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                p.clone(),
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                p.clone(),
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
            (
                U,
                pairs(&[
                    ("Sid", "CA123"),
                    ("SidAccount", "AC123"),
                    ("Digits", "5678"),
                    ("Digits", "1234"),
                    ("Digits", "1234"),
                ]),
                "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
            ),
            (
                U,
                pairs(&[
                    ("MessagingBinding.Address", "+1325xxxxxxx"),
                    ("MessagingBinding.Address", "+1415xxxxxxx"),
                ]),
                "83O6e2vORAoJHUNzJjDWN1jz+BA=",
            ),
            (
                &format!("{U}&bodySHA256={HASH_7}"),
                vec![],
                "a9nBmqA0ju/hNViExpshrM61xv4=",
            ),
            (
                &format!("https://mycompany.com/myapp.php?bodySHA256={HASH_7}"),
                vec![],
                "y77kIzt2vzLz71DgmJGsen2scGs=",
            ),
            (
                &format!("https://mycompany.com:443/myapp.php?foo=1&bar=2&bodySHA256={HASH_9}"),
                vec![],
                "Ldidvp12m26NI7eqEvxnEpkd9Hc=",
            ),
            (
                "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
                p.clone(),
                "CukzLTc1tT5dXEDIHm/tKBanW10=",
            ),
            (
                "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2",
                p.clone(),
                "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=",
            ),
            (
                &format!("{U}&Body=It%27s+amazing"),
                p.clone(),
                "TfZzewPq8wqrGlMfyAud8+/IvJ0=",
            ),
        ];
        for (n, (url, params, sig)) in cases.iter().enumerate() {
            assert_eq!(compute(TOKEN, url, params), *sig, "table #{}", n + 1);
            assert!(
                verify(TOKEN, url, params, None, sig),
                "table #{} verify",
                n + 1
            );
        }
    }

    #[test]
    fn sign_reference_table_verify_like_the_libraries() {
        let p = p();
        // 1/2: the port-less signature validates the :443 URL and vice versa.
        assert!(verify(TOKEN, U, &p, None, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(verify(TOKEN, U, &p, None, "kvajT1Ptam85bY51eRf/AJRuM3w="));
        let u443 = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(verify(
            TOKEN,
            u443,
            &p,
            None,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(verify(
            TOKEN,
            u443,
            &p,
            None,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        // 3: http adds :80.
        let http = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(verify(
            TOKEN,
            http,
            &p,
            None,
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
        // 1/4: python "removes port" cases.
        let https1234 = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(verify(
            TOKEN,
            https1234,
            &p,
            None,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let http1234 = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(verify(
            TOKEN,
            http1234,
            &p,
            None,
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        ));
        // An explicit non-default port never gets the default port added.
        assert!(!verify(
            TOKEN,
            http1234,
            &p,
            None,
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
        assert!(!verify(
            TOKEN,
            https1234,
            &p,
            None,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        // 5: duplicate values count once, in any order.
        let p5 = pairs(&[
            ("Digits", "1234"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Sid", "CA123"),
        ]);
        assert!(verify(TOKEN, U, &p5, None, "IK+Dwps556ElfBT0I3Rgjkr1wJU="));
        // 6: either order.
        let p6 = pairs(&[
            ("MessagingBinding.Address", "+1415xxxxxxx"),
            ("MessagingBinding.Address", "+1325xxxxxxx"),
        ]);
        assert!(verify(TOKEN, U, &p6, None, "83O6e2vORAoJHUNzJjDWN1jz+BA="));
        // 7/8: JSON body, checked against bodySHA256; params are ignored.
        assert_eq!(sha256_hex(BODY_7), HASH_7);
        let u7 = format!("{U}&bodySHA256={HASH_7}");
        assert!(verify(
            TOKEN,
            &u7,
            &[],
            Some(BODY_7),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(verify(
            TOKEN,
            &u7,
            &p,
            Some(BODY_7),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(!verify(
            TOKEN,
            &u7,
            &[],
            Some(b"{}"),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(!verify(
            TOKEN,
            &u7,
            &[],
            Some(BODY_7),
            "y77kIzt2vzLz71DgmJGsen2scGs="
        ));
        let u8_ = format!("https://mycompany.com/myapp.php?bodySHA256={HASH_7}");
        assert!(verify(
            TOKEN,
            &u8_,
            &[],
            Some(BODY_7),
            "y77kIzt2vzLz71DgmJGsen2scGs="
        ));
        // 9: called with the port-less URL, passes through the :443 variant.
        assert_eq!(sha256_hex(b"{}"), HASH_9);
        let u9 = format!("{U}&bodySHA256={HASH_9}");
        assert!(verify(
            TOKEN,
            &u9,
            &[],
            Some(b"{}"),
            "Ldidvp12m26NI7eqEvxnEpkd9Hc="
        ));
        // 10/11: userinfo is part of the signed string and survives port changes.
        let u10 = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        let u11 = "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(verify(TOKEN, u10, &p, None, "CukzLTc1tT5dXEDIHm/tKBanW10="));
        assert!(verify(TOKEN, u10, &p, None, "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="));
        assert!(verify(TOKEN, u11, &p, None, "CukzLTc1tT5dXEDIHm/tKBanW10="));
        assert!(verify(TOKEN, u11, &p, None, "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="));
        assert!(!verify(TOKEN, U, &p, None, "CukzLTc1tT5dXEDIHm/tKBanW10="));
        // 12: the Node test passes a raw `'`; `new URL()` makes it `%27`.
        let raw = format!("{U}&Body=It's+amazing");
        assert!(verify(
            TOKEN,
            &raw,
            &p,
            None,
            "TfZzewPq8wqrGlMfyAud8+/IvJ0="
        ));
    }

    #[test]
    fn sign_derived_asset_get_vectors() {
        let bare = "https://example-1234-dev.twil.io/secret.mp3";
        let ported = "https://example-1234-dev.twil.io:443/secret.mp3";
        assert_eq!(compute(TOKEN, bare, &[]), "6Ew+AKYs6d7g/1/eP15P+96Jfus=");
        assert_eq!(compute(TOKEN, ported, &[]), "YtfcmA9nPAexXQu8vbkIDvCx1FY=");
        for url in [bare, ported] {
            for sig in [
                "6Ew+AKYs6d7g/1/eP15P+96Jfus=",
                "YtfcmA9nPAexXQu8vbkIDvCx1FY=",
            ] {
                assert!(verify(TOKEN, url, &[], None, sig), "{url} {sig}");
            }
        }
        // Over plain http the :443 variant is not tried (http's default is :80).
        let http = "http://example-1234-dev.twil.io/secret.mp3";
        assert!(!verify(
            TOKEN,
            http,
            &[],
            None,
            "YtfcmA9nPAexXQu8vbkIDvCx1FY="
        ));
        assert!(!verify(
            TOKEN,
            http,
            &[],
            None,
            "6Ew+AKYs6d7g/1/eP15P+96Jfus="
        ));
    }

    #[test]
    fn sign_rejects_bad_signatures_and_tokens() {
        let good = "6Ew+AKYs6d7g/1/eP15P+96Jfus=";
        let url = "https://example-1234-dev.twil.io/secret.mp3";
        assert!(verify(TOKEN, url, &[], None, good));
        assert!(
            verify(TOKEN, url, &[], None, &format!(" {good}\t")),
            "HTTP whitespace is trimmed"
        );
        for bad in [
            "",
            " ",
            "=",
            "garbage!!",
            "6Ew+AKYs6d7g/1/eP15P+96Jfus",   // padding missing
            "6Ew+AKYs6d7g/1/eP15P+96Jfus==", // extra padding
            "6Ew+AKYs6d7g/1/eP15P+96Jfut=",  // non-canonical trailing bits
            "6Ew-AKYs6d7g_1_eP15P-96Jfus=",  // URL-safe alphabet
            "6Ew+AKYs6d7g/1/eP15P+96Jfus=6Ew+AKYs6d7g/1/eP15P+96Jfus=",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "AAAA",
            "6Ew+AKYs6d7g/1/eP15P+96J",
        ] {
            assert!(!verify(TOKEN, url, &[], None, bad), "{bad:?}");
        }
        assert!(!verify("12346", url, &[], None, good), "wrong token");
        assert!(
            !verify("", url, &[], None, &compute("", url, &[])),
            "empty token"
        );
        assert!(!verify(
            TOKEN,
            "https://example-1234-dev.twil.io/secret.mp4",
            &[],
            None,
            good
        ));
        // Params change the signature.
        assert!(!verify(TOKEN, url, &pairs(&[("a", "b")]), None, good));
    }

    #[test]
    fn sign_malformed_urls_never_panic() {
        for url in [
            "",
            "not a url",
            "/secret.mp3",
            "://host/",
            "1http://host/",
            "https://",
            "https:///path",
            "https://host:/p",
            "https://host:abc/p",
            "https://host:99999/p",
            "https://host:-1/p",
            "https://[::1/p",
            "https://[::1]x/p",
            "https://[]/p",
            "https://user@/p",
            "https://h\u{e9}llo:80:90/p",
        ] {
            let sig = compute(TOKEN, url, &[]);
            assert_eq!(sig.len(), 28);
            assert!(!verify(TOKEN, url, &[], None, &sig), "{url:?}");
            assert!(!verify(TOKEN, url, &[], Some(b"\xff"), &sig), "{url:?}");
        }
        // Odd query escapes do not panic either: a malformed escape stays literal.
        let odd = [
            ("https://h/p?bodySHA256=%", false),
            ("https://h/p?bodySHA256=%f", false),
            ("https://h/p?%zz=1&=&&bodySHA256", true), // no `=`: not a bodySHA256 value
        ];
        for (url, ok) in odd {
            let sig = compute(TOKEN, url, &[]);
            assert_eq!(verify(TOKEN, url, &[], Some(b"x"), &sig), ok, "{url:?}");
        }
    }

    #[test]
    fn sign_port_helpers() {
        assert_eq!(
            without_port("https://h:1234/p?q#f").as_deref(),
            Some("https://h/p?q#f")
        );
        assert_eq!(without_port("https://h/p").as_deref(), Some("https://h/p"));
        assert_eq!(without_port("https://h:443").as_deref(), Some("https://h"));
        assert_eq!(
            without_port("https://u:p@h:8080/p").as_deref(),
            Some("https://u:p@h/p")
        );
        assert_eq!(
            without_port("https://u:p@w@h:8080/p").as_deref(),
            Some("https://u:p@w@h/p")
        );
        assert_eq!(
            without_port("http://[::1]:8080/p").as_deref(),
            Some("http://[::1]/p")
        );
        assert_eq!(
            without_port("http://[::1]/p").as_deref(),
            Some("http://[::1]/p")
        );
        assert_eq!(
            with_default_port("https://h/p").as_deref(),
            Some("https://h:443/p")
        );
        assert_eq!(
            with_default_port("HTTPS://h/p").as_deref(),
            Some("HTTPS://h:443/p")
        );
        assert_eq!(
            with_default_port("http://h/p").as_deref(),
            Some("http://h:80/p")
        );
        assert_eq!(
            with_default_port("http://h?x=1").as_deref(),
            Some("http://h:80?x=1")
        );
        assert_eq!(
            with_default_port("http://h:8080/p").as_deref(),
            Some("http://h:8080/p")
        );
        assert_eq!(
            with_default_port("https://u:p@h/p").as_deref(),
            Some("https://u:p@h:443/p")
        );
        assert_eq!(
            with_default_port("http://[::1]/p").as_deref(),
            Some("http://[::1]:80/p")
        );
        assert_eq!(
            with_default_port("http://[::1]:8080/p").as_deref(),
            Some("http://[::1]:8080/p")
        );
        // A `:` or `@` after the authority is not a port or userinfo.
        assert_eq!(
            without_port("https://h/a:1@b").as_deref(),
            Some("https://h/a:1@b")
        );
        assert_eq!(
            with_default_port("https://h?t=a:1").as_deref(),
            Some("https://h:443?t=a:1")
        );
        assert_eq!(without_port("nonsense"), None);
        assert_eq!(with_default_port("https://h:x/"), None);
    }

    #[test]
    fn sign_ipv6_and_userinfo_round_trip() {
        let signed = "http://[::1]:8080/secret.mp3";
        let sig = compute(TOKEN, signed, &[]);
        assert!(verify(TOKEN, signed, &[], None, &sig));
        // A port-less signature validates a request that arrived on :8080 (python remove_port).
        let bare_sig = compute(TOKEN, "http://[::1]/secret.mp3", &[]);
        assert!(verify(TOKEN, signed, &[], None, &bare_sig));
        let ported_sig = compute(TOKEN, "http://[::1]:80/secret.mp3", &[]);
        assert!(verify(
            TOKEN,
            "http://[::1]/secret.mp3",
            &[],
            None,
            &ported_sig
        ));
        let u = "https://user:pass@h.example:8443/x";
        assert!(verify(
            TOKEN,
            u,
            &[],
            None,
            &compute(TOKEN, "https://user:pass@h.example/x", &[])
        ));
        assert!(!verify(
            TOKEN,
            u,
            &[],
            None,
            &compute(TOKEN, "https://h.example/x", &[])
        ));
    }

    #[test]
    fn sign_https_and_http_default_ports_are_distinct() {
        let https = "https://h.example/a";
        let http = "http://h.example/a";
        let https80 = compute(TOKEN, "https://h.example:80/a", &[]);
        let http443 = compute(TOKEN, "http://h.example:443/a", &[]);
        assert!(!verify(TOKEN, https, &[], None, &https80));
        assert!(!verify(TOKEN, http, &[], None, &http443));
        assert!(verify(
            TOKEN,
            https,
            &[],
            None,
            &compute(TOKEN, "https://h.example:443/a", &[])
        ));
        assert!(verify(
            TOKEN,
            http,
            &[],
            None,
            &compute(TOKEN, "http://h.example:80/a", &[])
        ));
        assert!(!verify(TOKEN, http, &[], None, &compute(TOKEN, https, &[])));
    }

    #[test]
    fn sign_body_hash_rules() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Arbitrary (non-UTF-8) bodies are hashed as raw bytes.
        let body: &[u8] = b"\xff\xfe\x00binary";
        let url = format!("https://h.example/hook?bodySHA256={}", sha256_hex(body));
        let sig = compute(TOKEN, &url, &[]);
        assert!(verify(TOKEN, &url, &[], Some(body), &sig));
        assert!(!verify(TOKEN, &url, &[], Some(b"\xff\xfe\x00binarY"), &sig));
        // Upper-case hex in the URL is not what Twilio sends; it does not match.
        let upper = format!(
            "https://h.example/hook?bodySHA256={}",
            sha256_hex(body).to_uppercase()
        );
        assert!(!verify(
            TOKEN,
            &upper,
            &[],
            Some(body),
            &compute(TOKEN, &upper, &[])
        ));
        // Without bodySHA256 the body is ignored and params are used (form POST).
        let form = "https://h.example/hook";
        let params = pairs(&[("To", "+1")]);
        assert!(verify(
            TOKEN,
            form,
            &params,
            Some(b"To=%2B1"),
            &compute(TOKEN, form, &params)
        ));
        // With bodySHA256 but no body given, only the signature is checked (python dict path).
        assert!(verify(TOKEN, &url, &[], None, &sig));
        // An empty bodySHA256 value counts as absent (python parse_qs drops blank values).
        let blank = "https://h.example/hook?bodySHA256=";
        assert!(verify(
            TOKEN,
            blank,
            &params,
            Some(b"x"),
            &compute(TOKEN, blank, &params)
        ));
        assert_eq!(
            query_value("https://h/p?a=1&bodySHA256=&bodySHA256=ab#x", "bodySHA256").as_deref(),
            Some("ab")
        );
        assert_eq!(
            query_value("https://h/p?a=1#bodySHA256=ab", "bodySHA256"),
            None
        );
        assert_eq!(
            query_value("https://h/p?body%53HA256=a+b%2", "bodySHA256").as_deref(),
            Some("a b%2")
        );
    }

    #[test]
    fn sign_node_query_normalisation() {
        assert_eq!(
            whatwg_query("https://h/it's?a='b c\"<>'#x'"),
            "https://h/it's?a=%27b%20c%22%3C%3E%27#x'"
        );
        assert_eq!(
            whatwg_query("https://h/p?q=caf\u{e9}"),
            "https://h/p?q=caf%C3%A9"
        );
        assert_eq!(whatwg_query("https://h/p"), "https://h/p");
        let signed = "https://h.example/p?q=caf%C3%A9&n=It%27s";
        let sig = compute(TOKEN, signed, &[]);
        assert!(verify(
            TOKEN,
            "https://h.example/p?q=caf\u{e9}&n=It's",
            &[],
            None,
            &sig
        ));
        assert!(verify(
            TOKEN,
            "https://h.example:443/p?q=caf\u{e9}&n=It's",
            &[],
            None,
            &sig
        ));
        // The reverse (signed raw, received encoded) is not a normalisation Node does.
        let raw_sig = compute(TOKEN, "https://h.example/p?n=It's", &[]);
        assert!(!verify(
            TOKEN,
            "https://h.example/p?n=It%27s",
            &[],
            None,
            &raw_sig
        ));
    }

    #[test]
    fn sign_param_ordering_is_bytewise() {
        // Upper-case sorts before lower-case; multi-byte UTF-8 after ASCII.
        let a = pairs(&[
            ("b", "1"),
            ("B", "2"),
            ("\u{e9}", "3"),
            ("a", "x"),
            ("a", ""),
        ]);
        let mut b = a.clone();
        b.reverse();
        assert_eq!(compute(TOKEN, U, &a), compute(TOKEN, U, &b));
        let mut mac = <HmacSha1 as KeyInit>::new_from_slice(TOKEN.as_bytes()).unwrap();
        mac.update(format!("{U}B2aaxb1\u{e9}3").as_bytes());
        assert_eq!(
            compute(TOKEN, U, &a),
            STANDARD.encode(mac.finalize().into_bytes())
        );
    }
}
