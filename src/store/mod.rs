//! The store: the only module that names redb. One file (`assetd.redb`) in the data directory
//! holds accounts, services, environments, assets, versions, builds, deployments and the
//! content-addressed blobs (in chunks). Every logical write is one transaction
//! ([`Store::write`]): after a crash at any instant, all of it or none of it is there.

mod accounts;
mod backup;
mod blob;
mod gc;
mod gzip;
mod hot;
mod ops;
pub mod records;
mod resources;
mod sync;
mod tables;

pub use accounts::secret_hash;
pub use backup::BackupReport;
pub use blob::PutBlob;
pub use blob::{BlobReader, BlobSource, Piece};
pub use gc::{DEFAULT_RETENTION_SECS, GcReport};
pub use ops::{Hit, Lookup, StoreStats, Tx};
pub use records::*;
pub use sync::{MANIFEST_TTL_SECS, ManifestBuild, validate_entries};
pub use tables::{CHUNK_SIZE, Route, SCHEMA_VERSION};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tables::*;

/// Default redb cache: small, so a Pi keeps its memory (redb's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// The database file's name inside the data directory.
pub const DB_FILE: &str = "assetd.redb";

/// Everything that can go wrong in the store, each with a one-line message.
#[derive(Debug)]
pub enum StoreError {
    /// Another process (usually a running `assetd serve`) holds the database.
    InUse(PathBuf),
    /// The file was written by a newer assetd.
    NewerSchema {
        found: u32,
        supported: u32,
    },
    /// The file is not a valid assetd database.
    Corrupt(String),
    /// A referenced row does not exist.
    NotFound(String),
    /// The write conflicts with existing state.
    Conflict(String),
    /// A domain rule was broken.
    Invalid(String),
    /// A rate limit was reached; the request may succeed after `retry_after_secs`.
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// Bytes did not match the digest they were announced with.
    DigestMismatch {
        expected: String,
        actual: String,
    },
    Io(std::io::Error),
    /// The database file could not be read or written (a full disk, a failing device). redb
    /// then refuses every later operation on that handle; the store reopens the file.
    Disk(std::io::Error),
    /// An earlier disk error made this database handle unusable (see [`StoreError::Disk`]).
    Poisoned,
    /// The store is reopening its file after a disk error; retry shortly.
    Recovering,
    /// The handle this read used was closed (replaced after a disk error); retry.
    Closed,
    Db(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InUse(p) => write!(
                f,
                "the data directory {} is in use by another assetd process (stop `assetd serve`, or go through it: `assetd deploy`, `--url`)",
                p.display()
            ),
            StoreError::NewerSchema { found, supported } => write!(
                f,
                "the data directory was written by a newer assetd (schema {found}; this binary supports {supported}); upgrade assetd"
            ),
            StoreError::Corrupt(m) => write!(f, "the database is corrupt: {m}"),
            StoreError::NotFound(m) | StoreError::Conflict(m) | StoreError::Invalid(m) => {
                f.write_str(m)
            }
            StoreError::RateLimited { message, .. } => f.write_str(message),
            StoreError::DigestMismatch { expected, actual } => write!(
                f,
                "content digest mismatch: expected {expected}, got {actual}"
            ),
            StoreError::Io(e) => write!(f, "I/O error: {e}"),
            StoreError::Disk(e) if e.kind() == std::io::ErrorKind::StorageFull => write!(
                f,
                "the disk holding the database is full ({e}); the operation was not recorded"
            ),
            StoreError::Disk(e) => write!(f, "database file I/O error: {e}"),
            StoreError::Poisoned => {
                f.write_str("an earlier I/O error made the database handle unusable")
            }
            StoreError::Recovering => f.write_str(
                "the store is reopening its database file after an I/O error; retry in a moment",
            ),
            StoreError::Closed => {
                f.write_str("the database handle was replaced during the read; retry")
            }
            StoreError::Db(m) => write!(f, "database error: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

impl From<crate::model::RuleError> for StoreError {
    fn from(e: crate::model::RuleError) -> Self {
        StoreError::Invalid(e.0)
    }
}

// redb's error types do not chain through `?` into ours: each gets its own `From`.
impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        match e {
            redb::StorageError::Corrupted(m) => StoreError::Corrupt(m),
            redb::StorageError::Io(io) => StoreError::Disk(io),
            redb::StorageError::PreviousIo => StoreError::Poisoned,
            redb::StorageError::DatabaseClosed => StoreError::Closed,
            other => StoreError::Db(other.to_string()),
        }
    }
}

impl From<redb::TableError> for StoreError {
    fn from(e: redb::TableError) -> Self {
        match e {
            redb::TableError::Storage(s) => s.into(),
            other => StoreError::Db(other.to_string()),
        }
    }
}

impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        match e {
            redb::TransactionError::Storage(s) => s.into(),
            other => StoreError::Db(other.to_string()),
        }
    }
}

impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        match e {
            redb::CommitError::Storage(s) => s.into(),
            other => StoreError::Db(other.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // SECURITY: SIDs and auth tokens come from the OS CSPRNG; failing to get randomness is fatal.
    getrandom::fill(&mut b).expect("the operating system's random number generator failed");
    b
}

/// A fresh auth token: 32 lower-case hex digits, like Twilio's.
pub fn new_token() -> String {
    crate::model::hex(&random_bytes::<16>())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens the database file of `dir` (one-line errors: in use, newer format, corrupt).
fn open_db(dir: &Path, cache_bytes: usize) -> Result<Database> {
    let path = dir.join(DB_FILE);
    Database::builder()
        .set_cache_size(cache_bytes)
        .create(&path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(dir.to_path_buf()),
            redb::DatabaseError::UpgradeRequired(v) => StoreError::Corrupt(format!(
                "{} uses redb file format {v}, which this assetd cannot read",
                path.display()
            )),
            redb::DatabaseError::Storage(s) => match StoreError::from(s) {
                StoreError::Disk(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                    StoreError::Corrupt(format!("{}: {io}", path.display()))
                }
                other => other,
            },
            other => StoreError::Corrupt(format!("{}: {other}", path.display())),
        })
}

/// Calls `$m!(TABLE)` for every table the schema creates up front (the inactive-account
/// index is created by its rebuild).
macro_rules! every_table {
    ($m:ident) => {
        $m!(META);
        $m!(ACCOUNTS);
        $m!(SERVICES);
        $m!(SERVICE_NAMES);
        $m!(ENVIRONMENTS);
        $m!(HOSTS);
        $m!(ASSETS);
        $m!(ASSET_NAMES);
        $m!(VERSIONS);
        $m!(BUILDS);
        $m!(ROUTES);
        $m!(DEPLOYMENTS);
        $m!(DEPLOY_LOG);
        $m!(CHILDREN);
        $m!(BLOBS);
        $m!(CHUNKS);
        $m!(KEYS);
        $m!(BLOB_OWNERS);
        $m!(MANIFESTS);
        $m!(VARIABLES);
        $m!(BUILD_LOG);
    };
}

/// The open database.
pub struct Store {
    /// The database handle; `None` after a disk error until it is reopened (see
    /// [`Store::handle`]).
    db: RwLock<Option<Arc<Database>>>,
    dir: PathBuf,
    cache_bytes: usize,
    /// Failed reopen attempts: (first failure, last attempt).
    reopen_failures: Mutex<Option<(Instant, Instant)>>,
    /// The hot path's cache of resolved URLs, valid between commits.
    hot: Arc<hot::Hot>,
}

/// A failed reopen is tried again after this long (each attempt takes the handle lock).
const REOPEN_PAUSE: Duration = Duration::from_secs(1);
/// Reopening that has failed for this long reports its real error instead of `Recovering`.
const REOPEN_GIVE_UP: Duration = Duration::from_secs(30);

impl Store {
    /// Opens (creating when missing) the store in `dir` with a redb cache of `cache_bytes`.
    /// Fails with a one-line error when the file is newer, corrupt, or open in another process.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Store> {
        if dir.exists() && !dir.is_dir() {
            return Err(StoreError::Invalid(format!(
                "the data directory {} is a file, not a directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir)?;
        let db = open_db(dir, cache_bytes)?;
        let store = Store {
            db: RwLock::new(Some(Arc::new(db))),
            dir: dir.to_path_buf(),
            cache_bytes,
            reopen_failures: Mutex::new(None),
            hot: Arc::default(),
        };
        store.init_schema()?;
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when the schema version is this binary's and every table exists (nothing to
    /// write); the version errors of [`Store::open`] otherwise.
    fn schema_complete(&self) -> Result<bool> {
        let txn = self.handle()?.begin_read()?;
        let found = match txn.open_table(META) {
            Ok(meta) => meta
                .get("schema_version")?
                .map(|v| decode_u32(v.value()))
                .transpose()?,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        match found {
            None => return Ok(false),
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(v) if v < SCHEMA_VERSION => {
                return Err(StoreError::Corrupt(format!(
                    "schema {v} is older than {SCHEMA_VERSION} and no upgrade exists"
                )));
            }
            Some(_) => {}
        }
        let mut complete = true;
        macro_rules! exists {
            ($t:ident) => {
                match txn.open_table($t) {
                    Ok(_) => {}
                    Err(redb::TableError::TableDoesNotExist(_)) => complete = false,
                    Err(e) => return Err(e.into()),
                }
            };
        }
        every_table!(exists);
        exists!(INACTIVE_ACCOUNTS);
        Ok(complete)
    }

    /// Checks the schema version and creates missing tables. Writes only when something is
    /// missing, so that a store on a full disk still opens (to serve, list or verify).
    fn init_schema(&self) -> Result<()> {
        if self.schema_complete()? {
            return Ok(());
        }
        let _writing = self.hot.writing();
        let mut txn = self.handle()?.begin_write()?;
        txn.set_quick_repair(true);
        {
            // The version was checked by `schema_complete`: set it on a new file.
            let mut meta = txn.open_table(META)?;
            if meta.get("schema_version")?.is_none() {
                meta.insert("schema_version", SCHEMA_VERSION.to_le_bytes().as_slice())?;
            }
            drop(meta);
            // Create every table so that read transactions can open them.
            macro_rules! create {
                ($t:ident) => {
                    txn.open_table($t)?;
                };
            }
            every_table!(create);
        }
        accounts::rebuild_inactive(&txn)?;
        txn.commit()?;
        Ok(())
    }

    /// Runs `f` in one write transaction, committed durably when `f` returns `Ok` and rolled
    /// back otherwise. Quick repair is on, so a crash leaves a file that reopens at once.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let db = self.handle()?;
        let _writing = self.hot.writing();
        let result = (|| {
            let mut txn = db.begin_write()?;
            txn.set_quick_repair(true);
            let out = {
                let mut tx = Tx::new(&txn);
                f(&mut tx)?
            };
            txn.commit()?;
            Ok(out)
        })();
        self.check(&db, &result);
        result
    }

    /// A consistent read snapshot.
    pub fn read(&self) -> Result<Lookup> {
        let db = self.handle()?;
        let before = self.hot.before_snapshot();
        let result = db.begin_read().map(Lookup::new).map_err(StoreError::from);
        self.check(&db, &result);
        let mut lookup = result?;
        if let Some(g) = self.hot.after_snapshot(before) {
            lookup.hot = Some((self.hot.clone(), g));
        }
        Ok(lookup)
    }

    /// The database handle, reopening the file when a disk error dropped the last one
    /// (`Recovering` while a write or read call still holds the old one, or the file cannot be
    /// opened yet; tried at most once a second, and after 30 s of failures the real error is
    /// reported).
    fn handle(&self) -> Result<Arc<Database>> {
        if let Some(db) = self
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Ok(db.clone());
        }
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let mut failures = lock(&self.reopen_failures);
        let now = Instant::now();
        if let Some((_, last)) = *failures
            && now.duration_since(last) < REOPEN_PAUSE
        {
            return Err(StoreError::Recovering);
        }
        match open_db(&self.dir, self.cache_bytes) {
            Ok(db) => {
                eprintln!("assetd: the database file was reopened after an I/O error");
                *failures = None;
                let db = Arc::new(db);
                *slot = Some(db.clone());
                Ok(db)
            }
            Err(e) => {
                let first = failures.map_or(now, |(first, _)| first);
                *failures = Some((first, now));
                if matches!(e, StoreError::InUse(_)) {
                    return Err(StoreError::Recovering);
                }
                eprintln!("assetd: cannot reopen the database file: {e}");
                if now.duration_since(first) >= REOPEN_GIVE_UP {
                    Err(e)
                } else {
                    Err(StoreError::Recovering)
                }
            }
        }
    }

    /// Reports an error met while using a read snapshot or a blob reader of this store: a disk
    /// error there also means the handle must be reopened.
    pub fn note_error(&self, e: &StoreError) {
        if matches!(e, StoreError::Disk(_) | StoreError::Poisoned) {
            self.db
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
    }

    /// After a disk error redb refuses every later operation on that handle: drop it, so that
    /// the next operation reopens the file (quick repair brings back the last commit).
    fn check<T>(&self, db: &Arc<Database>, result: &Result<T>) {
        if let Err(StoreError::Disk(_) | StoreError::Poisoned) = result {
            let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref().is_some_and(|d| Arc::ptr_eq(d, db)) {
                *slot = None;
            }
        }
    }

    /// The main account, created (with a fresh token) when the store has none.
    /// The boolean is true when it was created now.
    pub fn main_account(&self) -> Result<(Account, bool)> {
        if let Some(a) = self.read()?.main_account()? {
            return Ok((a, false));
        }
        self.write(|tx| tx.ensure_main_account())
    }
}

pub(crate) fn decode_u32(b: &[u8]) -> Result<u32> {
    b.try_into()
        .map(u32::from_le_bytes)
        .map_err(|_| StoreError::Corrupt("bad u32 in meta table".into()))
}

pub(crate) fn decode_u64(b: &[u8]) -> Result<u64> {
    b.try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| StoreError::Corrupt("bad u64 in meta table".into()))
}

pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(format!("bad record: {e}")))
}

pub(crate) fn encode_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records always serialise")
}

/// Reads one JSON record by key from any readable table.
pub(crate) fn get_json<T, Tb>(table: &Tb, key: &str) -> Result<Option<T>>
where
    T: serde::de::DeserializeOwned,
    Tb: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key)? {
        Some(v) => Ok(Some(decode_json(v.value())?)),
        None => Ok(None),
    }
}

#[allow(dead_code)]
fn _assert_send(_: &ReadTransaction) {}

#[cfg(test)]
pub(crate) mod tests;
