//! Percent-encoding of form and query components (`application/x-www-form-urlencoded`), and
//! the one percent-decoding of request paths ([`decode_path`]).

/// Percent-decodes a form component (`+` → space). Invalid escapes and invalid UTF-8 are kept
/// as lossy text rather than refused.
pub fn decode(s: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(s)).into_owned()
}

/// Like [`decode`], but `None` when the decoded bytes are not UTF-8.
pub fn decode_strict(s: &str) -> Option<String> {
    String::from_utf8(decode_bytes(s)).ok()
}

fn decode_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Percent-decodes a request path exactly once: `%XX` becomes its byte, everything else
/// (`+` included) is kept. An encoded slash (`%2F`) is kept as the three characters, because
/// it is not a path separator; the result then contains an escape, which no stored path does
/// (see [`has_escape`]), so it matches nothing. `None` when an escape is malformed (`%` not
/// followed by two hex digits) or the decoded bytes are not UTF-8.
pub fn decode_path(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let v = b.get(i + 1..i + 3).and_then(hex_byte)?;
            if v == b'/' {
                out.extend_from_slice(&b[i..i + 3]);
            } else {
                out.push(v);
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The byte two ASCII hex digits stand for.
fn hex_byte(h: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(h[0])? * 16 + digit(h[1])?) as u8)
}

/// True when `s` holds a percent-escape: `%` followed by two hex digits. A stored asset path
/// never does, so that exactly one encoding of it reaches it.
pub fn has_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// Percent-encodes a query component (unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_once() {
        assert_eq!(
            decode_path("/caf%C3%A9/menu.json").as_deref(),
            Some("/café/menu.json")
        );
        assert_eq!(decode_path("/a+b").as_deref(), Some("/a+b"));
        assert_eq!(decode_path("/%252e%252e/x").as_deref(), Some("/%2e%2e/x"));
        assert_eq!(decode_path("/a%2Fb").as_deref(), Some("/a%2Fb"));
        assert_eq!(decode_path("/a%2fb").as_deref(), Some("/a%2fb"));
        for bad in ["/a%2", "/a%", "/%ff", "/%zz", "/%+1", "/%C3"] {
            assert_eq!(decode_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn escapes_detected() {
        assert!(has_escape("/%2e%2e/x"));
        assert!(has_escape("/hold%20music.mp3"));
        assert!(!has_escape("/100%"));
        assert!(!has_escape("/100%-off"));
        assert!(!has_escape("/%g0"));
    }
}
