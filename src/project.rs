//! Reading a Serverless Toolkit project from disk: which files, under which URL paths, with
//! which visibility and digest. Shared by `import` (offline) and `deploy` (over the API).

use crate::model::limits::{BuildEntry, check_size, validate_build};
use crate::model::project::{ASSET_DIRS, is_skipped, name_file};
use crate::model::{AssetPath, Digest, Hasher, Visibility, mime};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One asset file of a project.
#[derive(Debug, Clone)]
pub struct ProjectFile {
    /// The file on disk.
    pub source: PathBuf,
    /// Its path relative to the assets directory, as shown in messages.
    pub relative: String,
    pub path: AssetPath,
    pub visibility: Visibility,
    pub content_type: &'static str,
    pub size: u64,
    pub digest: Digest,
}

/// A project read from disk, validated against the build limits.
#[derive(Debug)]
pub struct Project {
    pub assets_dir: PathBuf,
    pub files: Vec<ProjectFile>,
    /// Hidden files left out (`.DS_Store`, `.gitkeep`, `.env`, …).
    pub skipped: Vec<String>,
}

/// Why a project cannot be used; the message names the file and the rule.
#[derive(Debug)]
pub struct ProjectError(pub String);

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProjectError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ProjectError> {
    Err(ProjectError(msg.into()))
}

/// Reads the project in `dir`: finds `assets/` (or `static/`), walks it, names every file by
/// the toolkit rules, checks paths, sizes and build limits, and hashes the files (on up to
/// four threads). Nothing is written anywhere.
pub fn read(dir: &Path) -> Result<Project, ProjectError> {
    if !dir.is_dir() {
        return err(format!("{} is not a directory", dir.display()));
    }
    refuse_assets_folder(dir)?;
    let Some(assets_dir) = ASSET_DIRS.iter().map(|d| dir.join(d)).find(|d| d.is_dir()) else {
        return err(format!(
            "Invalid Serverless Project Structure: {} has neither an assets/ nor a static/ directory",
            dir.display()
        ));
    };
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    walk(&assets_dir, &assets_dir, &mut found, &mut skipped)?;
    found.sort();
    let mut by_path: BTreeMap<String, String> = BTreeMap::new();
    let mut files = Vec::with_capacity(found.len());
    for (relative, source, size) in found {
        let named = name_file(&relative).map_err(|e| ProjectError(e.0))?;
        if let Some(other) = by_path.insert(named.path.as_str().to_string(), relative.clone()) {
            return err(format!(
                "{relative} and {other} both map to the URL path {}",
                named.path
            ));
        }
        check_size(&named.path, named.visibility, size)
            .map_err(|e| ProjectError(format!("{relative}: {e}")))?;
        files.push(ProjectFile {
            content_type: mime::from_path(named.path.as_str()),
            source,
            relative,
            path: named.path,
            visibility: named.visibility,
            size,
            digest: Digest([0; 32]),
        });
    }
    {
        let entries: Vec<BuildEntry<'_>> = files
            .iter()
            .map(|f| BuildEntry {
                path: &f.path,
                visibility: f.visibility,
                size: f.size,
            })
            .collect();
        validate_build(&entries).map_err(|e| {
            if files.is_empty() {
                ProjectError(format!(
                    "{} holds no asset files; a build needs at least one",
                    assets_dir.display()
                ))
            } else {
                ProjectError(e.0)
            }
        })?;
    }
    hash_all(&mut files)?;
    Ok(Project {
        assets_dir,
        files,
        skipped,
    })
}

/// `deploy demo/assets` where `demo` is the project: `demo/assets` may hold an `assets/`
/// folder of its own (`assets/assets/index.html`), so it reads as a project whose only files are
/// those, and the others would be dropped without a word. A directory named `assets` or
/// `static` that holds files beside its own `assets/`/`static/` is refused, naming the parent.
fn refuse_assets_folder(dir: &Path) -> Result<(), ProjectError> {
    let full = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Some(name) = full.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    if !ASSET_DIRS.contains(&name) {
        return Ok(());
    }
    let loose = fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                !n.starts_with('.') && !ASSET_DIRS.contains(&n.as_ref())
            })
        })
        .unwrap_or(false);
    if !loose {
        return Ok(());
    }
    let parent = full
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    err(format!(
        "{} looks like a project's {name}/ folder, not a project: its files outside {name}/ would not be deployed. Give the project directory: {parent}",
        dir.display()
    ))
}

impl Project {
    /// Files whose name the toolkit rules rewrote beyond the visibility token (whitespace
    /// becomes `-`): (file as on disk, URL path).
    pub fn renamed(&self) -> Vec<(String, String)> {
        self.files
            .iter()
            .filter(|f| f.relative.chars().any(char::is_whitespace))
            .map(|f| (f.relative.clone(), f.path.as_str().to_string()))
            .collect()
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf, u64)>,
    skipped: &mut Vec<String>,
) -> Result<(), ProjectError> {
    let entries = fs::read_dir(dir)
        .map_err(|e| ProjectError(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| ProjectError(format!("cannot read {}: {e}", dir.display())))?;
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if path.to_str().is_none() {
            return err(format!(
                "{}: file names must be valid UTF-8",
                path.display()
            ));
        }
        // Follows symbolic links to files and directories, like the toolkit's walker.
        let meta = fs::metadata(&path)
            .map_err(|e| ProjectError(format!("cannot read {relative}: {e}")))?;
        if is_skipped(&relative) {
            skipped.push(relative);
            continue;
        }
        if meta.is_dir() {
            walk(root, &path, out, skipped)?;
        } else if meta.is_file() {
            out.push((relative, path, meta.len()));
        }
    }
    Ok(())
}

/// Hashes a file's bytes with BLAKE3.
pub fn hash_file(path: &Path) -> std::io::Result<(Digest, u64)> {
    let mut f = fs::File::open(path)?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize(), size))
}

fn hash_all(files: &mut [ProjectFile]) -> Result<(), ProjectError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let per = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks_mut(per)
            .map(|chunk| {
                s.spawn(move || -> Result<(), ProjectError> {
                    for f in chunk {
                        let (digest, size) = hash_file(&f.source).map_err(|e| {
                            ProjectError(format!("cannot read {}: {e}", f.relative))
                        })?;
                        if size != f.size {
                            return err(format!("{} changed while it was read", f.relative));
                        }
                        f.digest = digest;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| ProjectError("a hashing thread panicked".into()))??;
        }
        Ok(())
    })
}
