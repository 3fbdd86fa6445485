//! Asset URL paths and their rules.

use super::{RuleError, rule};
use std::fmt;

/// The longest path accepted, in characters (Twilio's API limit).
pub const MAX_PATH_CHARS: usize = 255;

/// Characters the Serverless Toolkit refuses in a path (`checkForValidPath`), plus `\`.
const FORBIDDEN: &[char] = &[
    '#', ';', ',', '?', ':', '@', '+', '&', '$', '(', ')', '\'', '"', ' ', '\\',
];

/// A validated asset path: starts with `/`, at most 255 characters, no `..` or `.` segment,
/// no empty segment (except the root path `/` itself), no control characters and none of the
/// toolkit's forbidden characters. Non-ASCII letters are allowed; URLs carry them
/// percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetPath(String);

impl AssetPath {
    /// Validates `raw`, adding the leading `/` when it is missing (as Twilio does).
    pub fn parse(raw: &str) -> Result<AssetPath, RuleError> {
        let path = if raw.starts_with('/') {
            raw.to_string()
        } else {
            format!("/{raw}")
        };
        let chars = path.chars().count();
        if chars > MAX_PATH_CHARS {
            return rule(format!(
                "path {} is {chars} characters long; the limit is {MAX_PATH_CHARS}",
                shorten(&path)
            ));
        }
        if let Some(c) = path.chars().find(|c| c.is_control()) {
            return rule(format!(
                "path {:?} contains the control character U+{:04X}",
                shorten(&path),
                c as u32
            ));
        }
        if let Some(c) = path.chars().find(|c| FORBIDDEN.contains(c)) {
            return rule(format!(
                "path {path} contains {c:?}, which asset paths may not contain (forbidden: # ; , ? : @ + & $ ( ) ' \" \\ and space)"
            ));
        }
        if path != "/" {
            for segment in path[1..].split('/') {
                match segment {
                    "" => {
                        return rule(format!(
                            "path {path} has an empty segment (`//` or a trailing `/`)"
                        ));
                    }
                    "." | ".." => return rule(format!("path {path} has a `{segment}` segment")),
                    _ => {}
                }
            }
        }
        Ok(AssetPath(path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

impl fmt::Display for AssetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_slash_added() {
        assert_eq!(AssetPath::parse("logo.png").unwrap().as_str(), "/logo.png");
        assert_eq!(AssetPath::parse("/a/b.mp3").unwrap().as_str(), "/a/b.mp3");
        assert_eq!(AssetPath::parse("/").unwrap().as_str(), "/");
        assert_eq!(
            AssetPath::parse("/café/menu.json").unwrap().as_str(),
            "/café/menu.json"
        );
        assert_eq!(
            AssetPath::parse("/hold%20music.mp3").unwrap().as_str(),
            "/hold%20music.mp3"
        );
    }

    #[test]
    fn length_limit() {
        let ok = format!("/{}", "a".repeat(254));
        assert!(AssetPath::parse(&ok).is_ok());
        let long = format!("/{}", "a".repeat(255));
        let err = AssetPath::parse(&long).unwrap_err();
        assert!(err.0.contains("256 characters"), "{err}");
        // Characters, not bytes.
        let accented = format!("/{}", "é".repeat(254));
        assert!(AssetPath::parse(&accented).is_ok());
    }

    #[test]
    fn dot_segments_refused() {
        for p in [
            "/../etc/passwd",
            "/a/../b",
            "/a/./b",
            "/a/..",
            "..",
            "/a//b",
            "/a/",
        ] {
            assert!(AssetPath::parse(p).is_err(), "{p}");
        }
        assert!(AssetPath::parse("/a..b/c.d").is_ok());
    }

    #[test]
    fn control_and_forbidden_characters_refused() {
        for p in ["/a\nb", "/a\rb", "/a\0b", "/a\u{7f}", "/a\u{85}b", "/a\tb"] {
            assert!(AssetPath::parse(p).is_err(), "{p:?}");
        }
        for c in [
            '#', ';', ',', '?', ':', '@', '+', '&', '$', '(', ')', '\'', '"', ' ', '\\',
        ] {
            let p = format!("/a{c}b");
            let err = AssetPath::parse(&p).unwrap_err();
            assert!(err.0.contains("may not contain"), "{p}: {err}");
        }
    }
}
