//! Request parameters: query strings and `application/x-www-form-urlencoded` bodies, with
//! repeated keys kept in order.

use super::error::{ApiError, ApiResult};
use std::io::Read;

/// Largest form body read into memory.
pub const MAX_FORM_BYTES: u64 = 1024 * 1024;

/// Decoded parameters; a key may repeat (`AssetVersions=ZN…&AssetVersions=ZN…`).
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Parses `a=1&b=2` (`+` is a space, `%XX` escapes; invalid escapes are kept literally).
    pub fn parse(s: &str) -> Params {
        Params(
            s.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// Parses a form body like [`Params::parse`], but refuses a value whose escapes decode to
    /// bytes that are not UTF-8 (they would be stored as U+FFFD).
    pub fn parse_form(s: &str) -> ApiResult<Params> {
        let mut out = Vec::new();
        for p in s.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match (decode_strict(k), decode_strict(v)) {
                (Some(k), Some(v)) => out.push((k, v)),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "form parameter {:?} does not decode to UTF-8 text",
                        decode(k)
                    )));
                }
            }
        }
        Ok(Params(out))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key` (also accepts the `key[]` spelling).
    pub fn all(&self, key: &str) -> Vec<&str> {
        let bracket = format!("{key}[]");
        self.0
            .iter()
            .filter(|(k, _)| k == key || *k == bracket)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A required, non-empty value.
    pub fn required(&self, key: &str) -> ApiResult<&str> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing(key)),
        }
    }

    /// A boolean sent as `true`/`false` (any case); `None` when absent.
    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid(format!(
                "{key} must be true or false, not {v:?}"
            ))),
        }
    }

    pub fn extend(&mut self, other: Params) {
        self.0.extend(other.0);
    }
}

/// Reads a form body of at most [`MAX_FORM_BYTES`].
pub fn read_form(body: &mut dyn Read, declared: Option<u64>) -> ApiResult<Params> {
    if declared.is_some_and(|n| n > MAX_FORM_BYTES) {
        return Err(ApiError::too_large(format!(
            "form bodies are limited to {MAX_FORM_BYTES} bytes"
        )));
    }
    let mut buf = Vec::new();
    body.take(MAX_FORM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ApiError::body("the request body", &e))?;
    if buf.len() as u64 > MAX_FORM_BYTES {
        return Err(ApiError::too_large(format!(
            "form bodies are limited to {MAX_FORM_BYTES} bytes"
        )));
    }
    let text = String::from_utf8(buf)
        .map_err(|_| ApiError::invalid("the form body is not valid UTF-8"))?;
    Params::parse_form(&text)
}

pub use crate::model::urlencode::{decode, decode_strict, encode};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_decoding() {
        let p = Params::parse(
            "AssetVersions=ZN1&AssetVersions=ZN2&FriendlyName=a+b%2Fc&Flag=TRUE&x=%zz&y=%4",
        );
        assert_eq!(p.all("AssetVersions"), vec!["ZN1", "ZN2"]);
        assert_eq!(p.get("FriendlyName"), Some("a b/c"));
        assert_eq!(p.bool("Flag").unwrap(), Some(true));
        assert_eq!(p.get("x"), Some("%zz"));
        assert_eq!(p.get("y"), Some("%4"));
        assert!(p.required("Missing").is_err());
        let q = Params::parse("AssetVersions[]=ZN1");
        assert_eq!(q.all("AssetVersions"), vec!["ZN1"]);
        // Regression (black-box test): bodies with non-UTF-8 escapes were stored as U+FFFD.
        let f = Params::parse_form("FriendlyName=caf%C3%A9&x=%zz").unwrap();
        assert_eq!(f.get("FriendlyName"), Some("café"));
        let e = Params::parse_form("FriendlyName=%ff%fe").unwrap_err();
        assert_eq!((e.status, e.code), (400, 20001));
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
