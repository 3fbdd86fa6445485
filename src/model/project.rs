//! Serverless Toolkit naming rules: a file's place under `assets/` (or `static/`) gives its
//! URL path and visibility.

use super::{AssetPath, RuleError, Visibility};

/// The directories a project's assets may live in, first match wins.
pub const ASSET_DIRS: [&str; 2] = ["assets", "static"];

/// What a file's name says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub path: AssetPath,
    pub visibility: Visibility,
}

/// True for files the toolkit conventions leave out: hidden files and `.DS_Store`, and
/// anything inside a hidden directory. (Twilio's toolkit uploads `.gitkeep` and breaks on it;
/// we skip hidden files so that a stray `.env` is never published.)
pub fn is_skipped(relative: &str) -> bool {
    relative
        .split(['/', '\\'])
        .any(|seg| seg.starts_with('.') || seg == "Thumbs.db")
}

/// Maps a path relative to the assets directory (`audio/hold.protected.mp3`) to its URL path
/// and visibility (`/audio/hold.mp3`, protected). `name.protected.ext` → protected,
/// `name.private.ext` → private; the token (and a literal `.public`) is removed. Whitespace
/// becomes `-`, `\` becomes `/`. The result is validated as an [`AssetPath`].
pub fn name_file(relative: &str) -> Result<Named, RuleError> {
    let relative = relative.replace('\\', "/");
    let relative: String = relative
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .collect();
    let (dir, file) = match relative.rsplit_once('/') {
        Some((d, f)) => (Some(d), f),
        None => (None, relative.as_str()),
    };
    let (stem, ext) = match file.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, Some(e)),
        _ => (file, None),
    };
    let mut visibility = Visibility::Public;
    let mut stem = stem.to_string();
    for (token, vis) in [
        (".protected", Visibility::Protected),
        (".private", Visibility::Private),
        (".public", Visibility::Public),
    ] {
        if ext.is_some()
            && let Some(s) = stem.strip_suffix(token)
            && !s.is_empty()
        {
            stem = s.to_string();
            visibility = vis;
            break;
        }
    }
    let name = match ext {
        Some(e) => format!("{stem}.{e}"),
        None => stem,
    };
    let url = match dir {
        Some(d) => format!("/{d}/{name}"),
        None => format!("/{name}"),
    };
    Ok(Named {
        path: AssetPath::parse(&url).map_err(|e| RuleError(format!("{relative}: {e}")))?,
        visibility,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(rel: &str) -> (String, Visibility) {
        let named = name_file(rel).unwrap();
        (named.path.as_str().to_string(), named.visibility)
    }

    #[test]
    fn toolkit_table() {
        assert_eq!(n("logo.png"), ("/logo.png".into(), Visibility::Public));
        assert_eq!(
            n("audio/hold.protected.mp3"),
            ("/audio/hold.mp3".into(), Visibility::Protected)
        );
        assert_eq!(
            n("data.private.json"),
            ("/data.json".into(), Visibility::Private)
        );
        assert_eq!(
            n("assets/index.html"),
            ("/assets/index.html".into(), Visibility::Public)
        );
        assert_eq!(n("a.public.txt"), ("/a.txt".into(), Visibility::Public));
        assert_eq!(
            n("x.protected"),
            ("/x.protected".into(), Visibility::Public)
        );
        assert_eq!(
            n("my file.mp3"),
            ("/my-file.mp3".into(), Visibility::Public)
        );
        assert_eq!(
            n("dir\\win.txt"),
            ("/dir/win.txt".into(), Visibility::Public)
        );
    }

    #[test]
    fn bad_names_refused_with_file_named() {
        let err = name_file("what?.mp3").unwrap_err();
        assert!(err.0.contains("what?.mp3"), "{err}");
    }

    #[test]
    fn hidden_files_skipped() {
        assert!(is_skipped(".DS_Store"));
        assert!(is_skipped("a/.gitkeep"));
        assert!(is_skipped(".git/config"));
        assert!(!is_skipped("a/b.txt"));
    }
}
