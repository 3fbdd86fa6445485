//! Twilio-style SIDs: two upper-case letters and 32 lower-case hex digits.

use std::fmt;

/// The kind of resource a SID names; its two-letter prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SidKind {
    Account,
    ApiKey,
    Service,
    Environment,
    Asset,
    Version,
    Build,
    Deployment,
    Variable,
    /// assetd's upload-only-what-is-missing manifests.
    Manifest,
}

impl SidKind {
    /// The two-letter prefix, as Twilio spells it.
    pub fn prefix(self) -> &'static str {
        match self {
            SidKind::Account => "AC",
            SidKind::ApiKey => "SK",
            SidKind::Service => "ZS",
            SidKind::Environment => "ZE",
            SidKind::Asset => "ZH",
            SidKind::Version => "ZN",
            SidKind::Build => "ZB",
            SidKind::Deployment => "ZD",
            SidKind::Variable => "ZV",
            SidKind::Manifest => "ZM",
        }
    }
}

/// A validated SID. Always 34 ASCII characters: prefix + 32 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid(String);

impl Sid {
    /// Builds a SID of `kind` from 16 random bytes.
    pub fn from_bytes(kind: SidKind, bytes: [u8; 16]) -> Sid {
        Sid(format!("{}{}", kind.prefix(), super::hex(&bytes)))
    }

    /// Parses `s` as a SID of `kind`. Upper-case hex is accepted (the spec allows it) and
    /// normalised to lower case; anything else is `None`.
    pub fn parse(kind: SidKind, s: &str) -> Option<Sid> {
        let prefix = kind.prefix();
        if s.len() != 34 || !s.starts_with(prefix) {
            return None;
        }
        let hex = &s[2..];
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Sid(format!("{prefix}{}", hex.to_ascii_lowercase())))
    }

    /// True when `s` looks like a SID of `kind` (used to tell SIDs from names).
    pub fn is(kind: SidKind, s: &str) -> bool {
        Sid::parse(kind, s).is_some()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Sid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_shape() {
        let sid = Sid::from_bytes(SidKind::Build, [0xab; 16]);
        assert_eq!(sid.as_str().len(), 34);
        assert!(sid.as_str().starts_with("ZB"));
        assert_eq!(Sid::parse(SidKind::Build, sid.as_str()), Some(sid.clone()));
        assert_eq!(Sid::parse(SidKind::Service, sid.as_str()), None);
        let upper = format!("ZB{}", "AB".repeat(16));
        assert_eq!(Sid::parse(SidKind::Build, &upper), Some(sid));
        assert!(Sid::parse(SidKind::Build, "ZBxyz").is_none());
        assert!(Sid::parse(SidKind::Build, &format!("ZB{}", "g".repeat(32))).is_none());
    }
}
