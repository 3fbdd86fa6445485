//! Content types: derived from extensions, validated before they reach a response header,
//! and classified for gzip; and the two request headers that negotiate a representation
//! (`Accept-Encoding`, `If-None-Match`), shared by asset serving and the console.

use super::{RuleError, rule};

/// The content type for a path's extension; `application/octet-stream` when unknown.
pub fn from_path(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "xml" => "application/xml",
        "txt" | "text" | "log" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/opus",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "yaml" | "yml" => "application/yaml",
        "twiml" => "application/xml",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// Validates a client-supplied content type before it is stored (and later sent as a
/// header): visible ASCII and spaces only, `type/subtype` with optional parameters, at most
/// 255 bytes.
// SECURITY: an uploaded Content-Type becomes a response header; this check (and the engine's
// refusal of any invalid header value) keeps it from splitting a response (CVE-2026-66753).
pub fn check_content_type(ct: &str) -> Result<(), RuleError> {
    let ct = ct.trim();
    if ct.is_empty() || ct.len() > 255 {
        return rule("content type must be 1 to 255 characters");
    }
    if !ct.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return rule(format!(
            "content type {ct:?} may contain only printable ASCII"
        ));
    }
    let essence = ct.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) => Ok(()),
        _ => rule(format!(
            "content type {ct:?} is not of the form type/subtype"
        )),
    }
}

/// True when gzip is likely to pay off for this content type.
pub fn is_compressible(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+xml")
        || essence.ends_with("+json")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/yaml"
                | "application/wasm"
                | "image/svg+xml"
                | "image/x-icon"
                | "image/bmp"
                | "audio/wav"
                | "font/ttf"
                | "font/otf"
        )
}

/// True when an `If-None-Match` list names one of `etags` (weak comparison) or is `*`.
pub fn etag_matches(header: &str, etags: &[&str]) -> bool {
    header.split(',').map(str::trim).any(|t| {
        t == "*" || {
            let t = t.strip_prefix("W/").unwrap_or(t);
            etags.contains(&t)
        }
    })
}

/// True when `Accept-Encoding` allows gzip (q > 0), explicitly or through `*`.
pub fn accepts_gzip(header: &str) -> bool {
    let mut star = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .filter_map(|v| v.trim().parse::<f32>().ok())
            .next_back()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => star = Some(q > 0.0),
            _ => {}
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(from_path("/ahoy.mp3"), "audio/mpeg");
        assert_eq!(from_path("/a/INDEX.HTML"), "text/html; charset=utf-8");
        assert_eq!(from_path("/noext"), "application/octet-stream");
        assert_eq!(from_path("/.hidden"), "application/octet-stream");
    }

    #[test]
    fn content_type_validation() {
        assert!(check_content_type("audio/mpeg").is_ok());
        assert!(check_content_type("text/html; charset=utf-8").is_ok());
        assert!(check_content_type("text/html\r\nSet-Cookie: x=1").is_err());
        // Surrounding whitespace is trimmed (and the trimmed value is what gets stored).
        assert!(check_content_type("text/html\n").is_ok());
        assert!(check_content_type("text/html\nX: y").is_err());
        assert!(check_content_type("nonsense").is_err());
        assert!(check_content_type("a/b\u{e9}").is_err());
        assert!(check_content_type("").is_err());
    }

    #[test]
    fn compressible() {
        assert!(is_compressible("text/html; charset=utf-8"));
        assert!(is_compressible("application/json"));
        assert!(is_compressible("image/svg+xml"));
        assert!(!is_compressible("image/png"));
        assert!(!is_compressible("audio/mpeg"));
    }

    #[test]
    fn encodings() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("*;q=0"));
        assert!(!accepts_gzip(""));
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"abc\"", &["\"abc\""]));
        assert!(etag_matches("W/\"abc\", \"x\"", &["\"abc\""]));
        assert!(etag_matches("*", &["\"abc\""]));
        assert!(!etag_matches("\"abd\"", &["\"abc\""]));
    }
}
