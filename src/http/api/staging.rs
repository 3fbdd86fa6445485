//! Upload staging: request bodies are streamed to a temporary file in the data directory
//! while being hashed, so that no write transaction waits on a slow client and a client that
//! disconnects mid-upload leaves nothing behind.

use super::error::{ApiError, ApiResult};
use crate::model::{Digest, Hasher};
use crate::store::Store;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// A staged upload: a temporary file removed when dropped.
pub struct Staged {
    path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Staged {
    /// Opens the staged bytes for reading.
    pub fn open(&self) -> ApiResult<File> {
        File::open(&self.path).map_err(|e| ApiError::io(&e))
    }
}

/// Receives bytes into a staging file, hashing them and enforcing `max` bytes.
pub struct Stager {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: Hasher,
    size: u64,
    max: u64,
    what: String,
}

impl Stager {
    /// A new staging file under `DATADIR/tmp`; `what` names the upload in errors.
    pub fn new(store: &Store, max: u64, what: &str) -> ApiResult<Stager> {
        let path = temp_path(store, "upload")?;
        let file = File::create(&path).map_err(|e| ApiError::io(&e))?;
        Ok(Stager {
            path,
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            hasher: Hasher::new(),
            size: 0,
            max,
            what: what.to_string(),
        })
    }

    /// Appends bytes; past the limit the upload is refused with 413.
    pub fn write(&mut self, bytes: &[u8]) -> ApiResult<()> {
        self.size += bytes.len() as u64;
        if self.size > self.max {
            return Err(ApiError::too_large(format!(
                "{} is larger than the limit of {} bytes ({} MB)",
                self.what,
                self.max,
                self.max / crate::model::limits::MB
            )));
        }
        self.hasher.update(bytes);
        if let Some(f) = self.file.as_mut() {
            f.write_all(bytes).map_err(|e| ApiError::io(&e))?;
        }
        Ok(())
    }

    /// Flushes and returns the staged file with its digest and size.
    pub fn finish(mut self) -> ApiResult<Staged> {
        if let Some(mut f) = self.file.take() {
            f.flush().map_err(|e| ApiError::io(&e))?;
        }
        let staged = Staged {
            path: std::mem::take(&mut self.path),
            digest: self.hasher.finalize(),
            size: self.size,
        };
        Ok(staged)
    }
}

impl Drop for Stager {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.file.take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A fresh random path `DATADIR/tmp/{prefix}-{24 hex}` (the directory is created).
fn temp_path(store: &Store, prefix: &str) -> ApiResult<PathBuf> {
    let dir = store.dir().join("tmp");
    std::fs::create_dir_all(&dir).map_err(|e| ApiError::io(&e))?;
    let name = crate::model::hex(&crate::store::random_bytes::<12>());
    Ok(dir.join(format!("{prefix}-{name}")))
}

/// A read-write temporary file in `DATADIR/tmp` that is already unlinked: it disappears when
/// the handle is dropped, whatever happens to the request.
pub fn unlinked_temp(store: &Store, prefix: &str) -> ApiResult<File> {
    let path = temp_path(store, prefix)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| ApiError::io(&e))?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

/// Removes staging files left by a crash (called at startup).
pub fn clean(store: &Store) {
    if let Ok(entries) = std::fs::read_dir(store.dir().join("tmp")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("upload-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
