//! Who may read an asset version over HTTP.

use super::{RuleError, rule};
use std::fmt;

/// `public`: anyone. `protected`: only with a valid `X-Twilio-Signature`. `private`: never
/// over an asset URL, only through the owner's authenticated API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Visibility {
    Public,
    Protected,
    Private,
}

impl Visibility {
    /// Parses a visibility; any letter case is accepted (one Twilio fixture uses `PUBLIC`).
    pub fn parse(s: &str) -> Result<Visibility, RuleError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "public" => Ok(Visibility::Public),
            "protected" => Ok(Visibility::Protected),
            "private" => Ok(Visibility::Private),
            _ => rule(format!(
                "visibility must be public, protected or private, not {s:?}"
            )),
        }
    }

    /// The lower-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Protected => "protected",
            Visibility::Private => "private",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_any_case() {
        assert_eq!(Visibility::parse("PUBLIC"), Ok(Visibility::Public));
        assert_eq!(Visibility::parse("protected"), Ok(Visibility::Protected));
        assert_eq!(Visibility::parse("Private"), Ok(Visibility::Private));
        assert!(Visibility::parse("secret").is_err());
        assert!(Visibility::parse("").is_err());
    }
}
