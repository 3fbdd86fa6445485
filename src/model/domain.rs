//! Service names and environment domains.

use super::{RuleError, rule};

/// Longest service unique name (Twilio's console: fewer than 50 characters).
pub const MAX_SERVICE_NAME: usize = 50;
/// Longest environment domain suffix.
pub const MAX_SUFFIX: usize = 16;

/// A service unique name: 1-50 letters, digits and single dashes, not starting or ending with
/// a dash (plugin-assets' regex). It becomes part of a DNS label, so it is also lower-cased
/// in domains.
pub fn check_service_name(name: &str) -> Result<(), RuleError> {
    super::text::check_name("UniqueName", name)?;
    if name.is_empty() || name.len() > MAX_SERVICE_NAME {
        return rule(format!(
            "service name {name:?} must be 1 to {MAX_SERVICE_NAME} characters"
        ));
    }
    check_label_chars(name, "service name")?;
    // Services are addressed by SID or unique name: a name that reads as a SID could never be
    // reached by its name.
    let b = name.as_bytes();
    if b.len() == 34
        && b[..2].eq_ignore_ascii_case(b"ZS")
        && b[2..].iter().all(u8::is_ascii_hexdigit)
    {
        return rule(format!(
            "service name {name:?} looks like a Service SID (ZS + 32 hex digits); choose another"
        ));
    }
    Ok(())
}

/// An environment domain suffix: 1-16 letters, digits and single dashes.
pub fn check_suffix(suffix: &str) -> Result<(), RuleError> {
    super::text::check_name("DomainSuffix", suffix)?;
    if suffix.is_empty() || suffix.len() > MAX_SUFFIX {
        return rule(format!(
            "domain suffix {suffix:?} must be 1 to {MAX_SUFFIX} characters"
        ));
    }
    check_label_chars(suffix, "domain suffix")
}

fn check_label_chars(s: &str, what: &str) -> Result<(), RuleError> {
    let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok_chars || s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return rule(format!(
            "{what} {s:?} may contain only letters, digits and single dashes, and may not start or end with a dash"
        ));
    }
    Ok(())
}

/// `{unique_name}-{4 digits}`, lower-cased, from a number below 10000.
pub fn domain_base(unique_name: &str, digits: u16) -> String {
    format!(
        "{}-{:04}",
        unique_name.to_ascii_lowercase(),
        digits % 10_000
    )
}

/// The environment's host label: `{domain_base}` or `{domain_base}-{suffix}`.
pub fn environment_label(domain_base: &str, suffix: Option<&str>) -> String {
    match suffix {
        Some(s) if !s.is_empty() => format!("{domain_base}-{}", s.to_ascii_lowercase()),
        _ => domain_base.to_string(),
    }
}

/// The environment's full domain name: label + `.` + the server's base domain.
pub fn domain_name(label: &str, base_domain: &str) -> String {
    format!("{label}.{base_domain}")
}

/// The environment unique name the toolkit uses for a suffix: `dev` → `dev-environment`,
/// none → `production`.
pub fn environment_unique_name(suffix: Option<&str>) -> String {
    match suffix {
        Some(s) if !s.is_empty() => format!("{s}-environment"),
        _ => "production".to_string(),
    }
}

/// Splits a request's `Host` (without port) into the environment label when it ends in
/// `.{base_domain}`; case-insensitive, a trailing dot allowed.
pub fn label_of_host<'a>(host: &'a str, base_domain: &str) -> Option<&'a str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.len() <= base_domain.len() + 1 {
        return None;
    }
    let split = host.len() - base_domain.len();
    if !host.is_char_boundary(split - 1) {
        return None;
    }
    let (label, tail) = host.split_at(split - 1);
    if tail[1..].eq_ignore_ascii_case(base_domain) && tail.starts_with('.') && !label.contains('.')
    {
        Some(label)
    } else {
        None
    }
}

/// True when `s` is a syntactically valid `host[:port]` as a `Host` header carries it: a DNS
/// name (labels of 1-63 letters, digits, `-` or `_`, not starting or ending with `-`, at most
/// 253 characters, an optional trailing dot), an IPv4 address, or a bracketed IPv6 address;
/// then an optional port of 1-5 digits below 65536.
pub fn is_host_port(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(p) => ("", Some(p)),
                None => return false,
            },
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n < 65_536)
    });
    if !port_ok {
        return false;
    }
    if s.starts_with('[') {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (black-box test): `Host: x"><script>` was echoed into API URLs.
    #[test]
    fn host_headers_checked() {
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:19001",
            "example-1234-dev.localhost",
            "assets.example.org.",
            "[::1]:8080",
            "[2001:db8::1]",
            "my_box:80",
        ] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in [
            "x\"><script>",
            "",
            ":80",
            "a:",
            "a:99999",
            "a:8o",
            "a b",
            "a..b",
            "-a.b",
            "a/b",
            "a@b",
            "[::1",
            "[zz]:1",
            "[::1]x",
            "a:1:2",
            "ä.example",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(check_service_name("example").is_ok());
        assert!(check_service_name("my-app-2").is_ok());
        for bad in ["", "-a", "a-", "a--b", "a_b", "a.b", "ä", &"a".repeat(51)] {
            assert!(check_service_name(bad).is_err(), "{bad}");
        }
        // Regression (black-box test): a SID-shaped name was accepted but unreachable by name.
        for sid_like in [
            "ZS00000000000000000000000000000001",
            "zsabcdefabcdefabcdefabcdefabcdefab",
        ] {
            let e = check_service_name(sid_like).unwrap_err();
            assert!(e.0.contains("looks like a Service SID"), "{}", e.0);
        }
        assert!(check_service_name("ZS0000000000000000000000000000000").is_ok());
        assert!(check_suffix("dev").is_ok());
        assert!(check_suffix(&"s".repeat(17)).is_err());
    }

    #[test]
    fn domains() {
        let base = domain_base("Example", 42);
        assert_eq!(base, "example-0042");
        assert_eq!(environment_label(&base, Some("dev")), "example-0042-dev");
        assert_eq!(environment_label(&base, None), "example-0042");
        assert_eq!(
            domain_name("example-0042-dev", "localhost"),
            "example-0042-dev.localhost"
        );
        assert_eq!(environment_unique_name(Some("dev")), "dev-environment");
        assert_eq!(environment_unique_name(None), "production");
    }

    #[test]
    fn host_labels() {
        assert_eq!(
            label_of_host("ex-1234-dev.localhost", "localhost"),
            Some("ex-1234-dev")
        );
        assert_eq!(
            label_of_host("EX-1234-dev.LocalHost.", "localhost"),
            Some("EX-1234-dev")
        );
        assert_eq!(label_of_host("localhost", "localhost"), None);
        assert_eq!(label_of_host("a.b.localhost", "localhost"), None);
        assert_eq!(label_of_host("x.example.org", "assets.example.org"), None);
        assert_eq!(
            label_of_host("x.assets.example.org", "assets.example.org"),
            Some("x")
        );
    }
}
