//! Pure domain types and rules: SIDs, digests, asset paths, visibility, limits, domains,
//! content types and the Serverless Toolkit naming rules. No I/O, no redb, no HTTP.

pub mod digest;
pub mod domain;
pub mod limits;
pub mod mime;
pub mod path;
pub mod project;
pub mod sid;
pub mod text;
pub mod time;
pub mod urlencode;
pub mod visibility;

pub use digest::{Digest, Hasher};
pub use path::AssetPath;
pub use sid::{Sid, SidKind};
pub use visibility::Visibility;

/// Lower-case hex of `bytes` (digests, SIDs, tokens, temporary names).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Fills `buf` from `r` until it is full or `r` ends (retrying interrupted reads); returns
/// the bytes read.
pub fn read_full(r: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A broken domain rule, with a message that names the rule and the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

/// Shorthand used by the rule checks.
pub(crate) fn rule<T>(msg: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError(msg.into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }
}
