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
/// no empty segment (except the root path `/` itself), none of the characters the text policy
/// refuses in paths ([`super::text::check_path`]), no percent-escape (stored paths are
/// decoded) and none of the toolkit's forbidden characters. Non-ASCII letters are allowed; URLs carry them
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
        super::text::check_path("Path", &path)?;
        // SECURITY: stored paths are in decoded form and a request path is decoded once, so
        // a stored escape could only be reached through a second encoding.
        if super::urlencode::has_escape(&path) {
            return rule(format!(
                "path {} contains a percent-escape (`%` and two hex digits): give the decoded path (`%20` is a space, which paths may not contain; `%C3%A9` is `é`)",
                shorten(&path)
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
        assert_eq!(AssetPath::parse("/100%").unwrap().as_str(), "/100%");
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

    /// Regression (black-box test): `/%2e%2e/x` was stored and then served for a request to
    /// `/%252e%252e/x`; a stored escape is refused, with a message saying why.
    #[test]
    fn percent_escapes_refused() {
        for p in ["/%2e%2e/x", "/hold%20music.mp3", "/caf%C3%A9", "/a%2Fb"] {
            let e = AssetPath::parse(p).unwrap_err().0;
            assert!(e.contains("percent-escape"), "{p}: {e}");
        }
    }

    /// Regression (black-box test): a right-to-left override, a BOM and U+2024 dot leaders
    /// were accepted in paths.
    #[test]
    fn spoofing_characters_refused_with_their_codepoint() {
        for (p, code) in [
            ("/\u{202e}gnp.exe", "U+202E"),
            ("/\u{feff}a.txt", "U+FEFF"),
            ("/\u{2024}\u{2024}/x", "U+2024"),
            ("/a\u{200b}.txt", "U+200B"),
            ("/a\u{1b}[31m", "U+001B"),
        ] {
            let e = AssetPath::parse(p).unwrap_err().0;
            assert!(
                e.starts_with("Path contains") && e.contains(code),
                "{p:?}: {e}"
            );
        }
    }
}
