//! Consistent backups (a logical export of one read snapshot, taken while the server keeps
//! serving and deploying), restore into an empty directory, and verification of every blob
//! and reference.
//!
//! Backup format: the line `assetd-backup 1\n`, then records `[table u8][key len u32][key]
//! [value len u32][value]` (little-endian), then the end record `[0xFF]` followed by the
//! 32-byte BLAKE3 digest of everything before it. A truncated or altered file is refused.

use super::ops::Lookup;
use super::records::{AssetVersion, Build, Environment};
use super::tables::*;
use super::{Result, Store, StoreError, decode_json};
use crate::model::{Digest, Hasher};
use redb::{Key, ReadableTable, TableDefinition, Value, WriteTransaction};
use std::collections::HashSet;
use std::io::{Read, Write};

const MAGIC: &[u8] = b"assetd-backup 1\n";
const END: u8 = 0xFF;

/// Counts of what a backup holds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BackupReport {
    pub records: u64,
    pub bytes: u64,
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Hasher,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn dump<K: Key + 'static, V: Value + 'static>(
    lookup: &Lookup,
    id: u8,
    def: TableDefinition<K, V>,
    out: &mut dyn Write,
    records: &mut u64,
) -> Result<()> {
    let table = lookup.txn().open_table(def)?;
    for item in table.iter()? {
        let (k, v) = item?;
        let kv = k.value();
        let vv = v.value();
        let kb = K::as_bytes(&kv);
        let vb = V::as_bytes(&vv);
        let (kb, vb) = (kb.as_ref(), vb.as_ref());
        out.write_all(&[id])?;
        out.write_all(&(kb.len() as u32).to_le_bytes())?;
        out.write_all(kb)?;
        out.write_all(&(vb.len() as u32).to_le_bytes())?;
        out.write_all(vb)?;
        *records += 1;
    }
    Ok(())
}

fn load<K: Key + 'static, V: Value + 'static>(
    txn: &WriteTransaction,
    def: TableDefinition<K, V>,
    key: &[u8],
    value: &[u8],
) -> Result<()> {
    txn.open_table(def)?
        .insert(K::from_bytes(key), V::from_bytes(value))?;
    Ok(())
}

/// Calls `$f!(id, TABLE)` for every table, in a fixed order; the ids are the format.
macro_rules! each_table {
    ($f:ident) => {
        $f!(1, META);
        $f!(2, ACCOUNTS);
        $f!(3, SERVICES);
        $f!(4, SERVICE_NAMES);
        $f!(5, ENVIRONMENTS);
        $f!(6, HOSTS);
        $f!(7, ASSETS);
        $f!(8, ASSET_NAMES);
        $f!(9, VERSIONS);
        $f!(10, BUILDS);
        $f!(11, ROUTES);
        $f!(12, DEPLOYMENTS);
        $f!(13, DEPLOY_LOG);
        $f!(14, CHILDREN);
        $f!(15, BLOBS);
        $f!(16, CHUNKS);
        $f!(17, KEYS);
        $f!(18, VARIABLES);
        $f!(19, BLOB_OWNERS);
        $f!(20, MANIFESTS);
    };
}

impl Lookup {
    /// Writes every table of this snapshot to `out` in the backup format.
    pub fn backup(&self, out: &mut dyn Write) -> Result<BackupReport> {
        let mut w = Hashing {
            inner: out,
            hasher: Hasher::new(),
            bytes: 0,
        };
        w.write_all(MAGIC)?;
        let mut records = 0;
        macro_rules! d {
            ($id:expr, $t:ident) => {
                dump(self, $id, $t, &mut w, &mut records)?
            };
        }
        each_table!(d);
        w.write_all(&[END])?;
        let digest = w.hasher.finalize();
        w.inner.write_all(&digest.0)?;
        w.inner.flush()?;
        Ok(BackupReport {
            records,
            bytes: w.bytes + 32,
        })
    }
}

fn read_exact_or(r: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StoreError::Invalid(format!("the backup is truncated ({what})"))
        } else {
            StoreError::Io(e)
        }
    })
}

impl Store {
    /// True when the store holds no account, service or blob (a fresh data directory).
    pub fn is_empty(&self) -> Result<bool> {
        let lookup = self.read()?;
        Ok(lookup.main_account()?.is_none() && lookup.blobs()?.is_empty())
    }

    /// Loads a backup into this store, replacing its tables, in one transaction: a bad or
    /// truncated file changes nothing.
    pub fn restore(&self, src: &mut dyn Read) -> Result<BackupReport> {
        let mut hasher = Hasher::new();
        let mut magic = vec![0u8; MAGIC.len()];
        read_exact_or(src, &mut magic, "header")?;
        if magic != MAGIC {
            return Err(StoreError::Invalid(
                "this file is not an assetd backup".into(),
            ));
        }
        hasher.update(&magic);
        self.write(|tx| {
            let txn = tx.txn();
            macro_rules! clear {
                ($id:expr, $t:ident) => {
                    txn.delete_table($t).map_err(StoreError::from)?;
                    txn.open_table($t)?;
                };
            }
            each_table!(clear);
            // Transient tables are not in backups: the restored store starts them empty (the
            // inactive-account index is rebuilt at the end).
            clear!(0, BUILD_LOG);
            let mut records = 0u64;
            let mut bytes = MAGIC.len() as u64;
            loop {
                let mut id = [0u8; 1];
                read_exact_or(src, &mut id, "record")?;
                hasher.update(&id);
                if id[0] == END {
                    let mut digest = [0u8; 32];
                    read_exact_or(src, &mut digest, "checksum")?;
                    if hasher.finalize() != Digest(digest) {
                        return Err(StoreError::Invalid(
                            "the backup's checksum does not match its contents".into(),
                        ));
                    }
                    super::accounts::rebuild_inactive(txn)?;
                    return Ok(BackupReport {
                        records,
                        bytes: bytes + 33,
                    });
                }
                let mut len = [0u8; 4];
                read_exact_or(src, &mut len, "key length")?;
                hasher.update(&len);
                let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
                read_exact_or(src, &mut key, "key")?;
                hasher.update(&key);
                read_exact_or(src, &mut len, "value length")?;
                hasher.update(&len);
                let vlen = u32::from_le_bytes(len) as usize;
                if vlen > 64 * 1024 * 1024 {
                    return Err(StoreError::Invalid(
                        "the backup has an oversized record".into(),
                    ));
                }
                let mut value = vec![0u8; vlen];
                read_exact_or(src, &mut value, "value")?;
                hasher.update(&value);
                macro_rules! put {
                    ($n:expr, $t:ident) => {
                        if id[0] == $n {
                            load(txn, $t, &key, &value)?;
                        }
                    };
                }
                if !(1..=20).contains(&id[0]) {
                    return Err(StoreError::Invalid(format!(
                        "the backup has an unknown table id {}",
                        id[0]
                    )));
                }
                each_table!(put);
                records += 1;
                bytes += 9 + key.len() as u64 + value.len() as u64;
            }
        })
    }
}

/// One problem found by [`Lookup::verify`].
pub type Problem = String;

impl Lookup {
    /// Re-hashes every blob (and its gzip variant's framing) and checks every reference:
    /// versions → blobs, builds → versions, routes, environments → builds, hosts. Returns the
    /// problems found (empty when all is well) and the number of blobs checked.
    pub fn verify(&self) -> Result<(Vec<Problem>, usize)> {
        let mut problems = Vec::new();
        let blobs = self.blobs()?;
        let known: HashSet<Digest> = blobs.iter().map(|(d, _)| *d).collect();
        for (digest, size) in &blobs {
            match self.open_blob(digest, false, None)? {
                Some((mut r, len)) => {
                    let mut h = Hasher::new();
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut n_total = 0u64;
                    let mut broken = false;
                    loop {
                        match r.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                h.update(&buf[..n]);
                                n_total += n as u64;
                            }
                            Err(e) => {
                                problems.push(format!("blob {digest}: unreadable: {e}"));
                                broken = true;
                                break;
                            }
                        }
                    }
                    if broken {
                    } else if n_total != len || len != *size {
                        problems.push(format!(
                            "blob {digest}: {n_total} bytes stored, {size} expected"
                        ));
                    } else if h.finalize() != *digest {
                        problems.push(format!("blob {digest}: content does not match its digest"));
                    }
                }
                None => problems.push(format!("blob {digest}: record vanished")),
            }
            if let Some((mut gz, _)) = self.open_blob(digest, true, None)? {
                let mut plain = Hasher::new();
                let mut dec = crate::compress::decoder(&mut gz);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match dec.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => plain.update(&buf[..n]),
                        Err(e) => {
                            problems.push(format!("blob {digest}: gzip variant is damaged: {e}"));
                            break;
                        }
                    }
                }
                if plain.finalize() != *digest {
                    problems.push(format!(
                        "blob {digest}: gzip variant does not decompress to it"
                    ));
                }
            }
        }
        let mut versions = HashSet::new();
        for item in self.txn().open_table(VERSIONS)?.iter()? {
            let (_, v) = item?;
            let v: AssetVersion = decode_json(v.value())?;
            match Digest::from_hex(&v.digest) {
                Some(d) if known.contains(&d) => {}
                _ => problems.push(format!(
                    "version {} ({}): its content {} is missing",
                    v.sid, v.path, v.digest
                )),
            }
            versions.insert(v.sid);
        }
        let routes = self.txn().open_table(ROUTES)?;
        let mut builds = HashSet::new();
        for item in self.txn().open_table(BUILDS)?.iter()? {
            let (_, v) = item?;
            let b: Build = decode_json(v.value())?;
            for sid in &b.asset_versions {
                if !versions.contains(sid) {
                    problems.push(format!("build {}: version {sid} is missing", b.sid));
                }
            }
            let mut n_routes = 0;
            for r in routes.range((b.sid.as_str(), "")..)? {
                let (k, _) = r?;
                if k.value().0 != b.sid {
                    break;
                }
                n_routes += 1;
            }
            if n_routes != b.asset_versions.len() {
                problems.push(format!(
                    "build {}: {n_routes} routes for {} versions",
                    b.sid,
                    b.asset_versions.len()
                ));
            }
            builds.insert(b.sid);
        }
        let hosts = self.txn().open_table(HOSTS)?;
        for item in self.txn().open_table(ENVIRONMENTS)?.iter()? {
            let (_, v) = item?;
            let e: Environment = decode_json(v.value())?;
            if let Some(b) = &e.build_sid
                && !builds.contains(b)
            {
                problems.push(format!(
                    "environment {}: active build {b} is missing",
                    e.sid
                ));
            }
            match hosts
                .get(e.label.as_str())?
                .and_then(|h| HostEntry::decode(h.value()))
            {
                Some(h) if h.environment_sid == e.sid && h.build_sid == e.build_sid => {}
                _ => problems.push(format!(
                    "environment {}: host entry {} is wrong",
                    e.sid, e.label
                )),
            }
        }
        Ok((problems, blobs.len()))
    }
}
