//! Per-build limits (the Assets product page's table) and build validation.

use super::{AssetPath, RuleError, Visibility, rule};
use std::collections::HashSet;

/// One megabyte as the limits count it: 2^20 bytes.
pub const MB: u64 = 1024 * 1024;
/// Largest public or protected version.
pub const MAX_SERVED_BYTES: u64 = 25 * MB;
/// Largest private version.
pub const MAX_PRIVATE_BYTES: u64 = 10 * MB;
/// Most public + protected versions in one build.
pub const MAX_SERVED_VERSIONS: usize = 1000;
/// Most private versions in one build.
pub const MAX_PRIVATE_VERSIONS: usize = 50;
/// The runtime a build reports when its creator named none: Twilio's default today.
pub const DEFAULT_RUNTIME: &str = "node22";

/// The largest size a version of `visibility` may have.
pub fn max_bytes(visibility: Visibility) -> u64 {
    match visibility {
        Visibility::Private => MAX_PRIVATE_BYTES,
        _ => MAX_SERVED_BYTES,
    }
}

/// Checks one version's size against its visibility's limit.
pub fn check_size(path: &AssetPath, visibility: Visibility, size: u64) -> Result<(), RuleError> {
    let max = max_bytes(visibility);
    if size > max {
        return rule(format!(
            "{path} is {size} bytes; {visibility} assets are limited to {} MB ({max} bytes)",
            max / MB
        ));
    }
    Ok(())
}

/// What build validation needs to know of each version.
pub struct BuildEntry<'a> {
    pub path: &'a AssetPath,
    pub visibility: Visibility,
    pub size: u64,
}

/// Validates the versions of one build: at least one, no path twice, each within its size
/// limit, at most 1000 public + protected and 50 private. The error names the limit and a path.
pub fn validate_build(entries: &[BuildEntry<'_>]) -> Result<(), RuleError> {
    if entries.is_empty() {
        return rule("At least one Function Version or Asset Version is required for Build");
    }
    let mut seen = HashSet::new();
    let (mut served, mut private) = (0usize, 0usize);
    for e in entries {
        if !seen.insert(e.path.as_str()) {
            return rule(format!(
                "{} appears twice in the build; a build holds one version per path",
                e.path
            ));
        }
        check_size(e.path, e.visibility, e.size)?;
        match e.visibility {
            Visibility::Private => {
                private += 1;
                if private > MAX_PRIVATE_VERSIONS {
                    return rule(format!(
                        "{} is private asset number {private}; a build may hold at most {MAX_PRIVATE_VERSIONS} private assets",
                        e.path
                    ));
                }
            }
            _ => {
                served += 1;
                if served > MAX_SERVED_VERSIONS {
                    return rule(format!(
                        "{} is public/protected asset number {served}; a build may hold at most {MAX_SERVED_VERSIONS} public and protected assets",
                        e.path
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(n: usize, prefix: &str) -> Vec<AssetPath> {
        (0..n)
            .map(|i| AssetPath::parse(&format!("/{prefix}{i}")).unwrap())
            .collect()
    }

    #[test]
    fn empty_build_refused() {
        let err = validate_build(&[]).unwrap_err();
        assert!(err.0.contains("At least one"));
    }

    #[test]
    fn served_count_limit() {
        let ps = paths(1001, "p");
        let mut entries: Vec<_> = ps
            .iter()
            .map(|p| BuildEntry {
                path: p,
                visibility: Visibility::Public,
                size: 1,
            })
            .collect();
        entries[1000].visibility = Visibility::Protected;
        let err = validate_build(&entries).unwrap_err();
        assert!(
            err.0.contains("at most 1000") && err.0.contains("/p1000"),
            "{err}"
        );
        assert!(validate_build(&entries[..1000]).is_ok());
    }

    #[test]
    fn private_count_limit() {
        let ps = paths(51, "x");
        let entries: Vec<_> = ps
            .iter()
            .map(|p| BuildEntry {
                path: p,
                visibility: Visibility::Private,
                size: 1,
            })
            .collect();
        let err = validate_build(&entries).unwrap_err();
        assert!(
            err.0.contains("at most 50 private") && err.0.contains("/x50"),
            "{err}"
        );
        assert!(validate_build(&entries[..50]).is_ok());
    }

    #[test]
    fn size_limits() {
        let p = AssetPath::parse("/big.mp3").unwrap();
        assert!(check_size(&p, Visibility::Public, MAX_SERVED_BYTES).is_ok());
        let err = check_size(&p, Visibility::Protected, MAX_SERVED_BYTES + 1).unwrap_err();
        assert!(
            err.0.contains("/big.mp3") && err.0.contains("25 MB"),
            "{err}"
        );
        assert!(check_size(&p, Visibility::Private, MAX_PRIVATE_BYTES).is_ok());
        let err = check_size(&p, Visibility::Private, MAX_PRIVATE_BYTES + 1).unwrap_err();
        assert!(err.0.contains("10 MB"), "{err}");
        let e = [BuildEntry {
            path: &p,
            visibility: Visibility::Private,
            size: MAX_PRIVATE_BYTES + 1,
        }];
        assert!(validate_build(&e).is_err());
    }

    #[test]
    fn duplicate_path_refused() {
        let p = AssetPath::parse("/a").unwrap();
        let e = [
            BuildEntry {
                path: &p,
                visibility: Visibility::Public,
                size: 1,
            },
            BuildEntry {
                path: &p,
                visibility: Visibility::Private,
                size: 1,
            },
        ];
        assert!(validate_build(&e).unwrap_err().0.contains("twice"));
    }
}
