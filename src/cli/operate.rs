//! Operator commands on the box: `backup`, `restore`, `verify`, `gc`. Each works on the data
//! directory directly, or through the API with `--url` (needed while `assetd serve` holds the
//! directory; the main account's credentials are used).

use super::{CliResult, default_data, remote};
use crate::store::{Store, StoreError};
use argh::FromArgs;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Opens an existing data directory (a mistyped `--data` must not look like an empty store
/// that verifies, backs up and collects fine), or explains what to do when the server holds
/// it. `restore` may also fill a new directory.
pub(crate) fn open(data: &Path, what: &str) -> Result<Store, Box<dyn std::error::Error>> {
    if what != "restore" && !data.join(crate::store::DB_FILE).exists() {
        return Err(format!(
            "no assetd data in {} (no {}); check --data or $ASSETD_DATA",
            data.display(),
            crate::store::DB_FILE
        )
        .into());
    }
    match Store::open(data, crate::store::DEFAULT_CACHE_BYTES) {
        Ok(s) => Ok(s),
        Err(StoreError::InUse(_)) if what == "restore" => Err(format!(
            "{} is in use by a running assetd serve: stop it, then restore",
            data.display()
        )
        .into()),
        Err(StoreError::InUse(_)) if what == "sign" => Err(format!(
            "{} is in use by a running assetd serve: sign with --token or $ASSETD_AUTH_TOKEN instead of --data",
            data.display()
        )
        .into()),
        Err(StoreError::InUse(_)) => Err(format!(
            "{} is in use by a running assetd serve: run `assetd {what} --url http://HOST:PORT` (with the main account's ASSETD_ACCOUNT_SID and ASSETD_AUTH_TOKEN) to go through the server, or stop it first",
            data.display()
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Writes to `path` through a temporary file renamed into place, so that a failed or
/// interrupted backup never leaves a partial file under the final name.
fn write_atomically(path: &Path, f: impl FnOnce(&mut dyn Write) -> CliResult) -> CliResult {
    let tmp = path.with_extension("partial");
    let result = (|| -> CliResult {
        let file =
            File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        f(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write a consistent snapshot of the store to FILE (also while serving, with --url).
#[derive(FromArgs)]
#[argh(subcommand, name = "backup")]
pub struct BackupArgs {
    /// the backup file to write
    #[argh(positional)]
    file: PathBuf,
    /// data directory (default: $ASSETD_DATA or ./assetd-data)
    #[argh(option, default = "default_data()")]
    data: PathBuf,
}

pub fn backup(a: BackupArgs) -> CliResult {
    if super::remote_opts().url.is_some() {
        let c = remote::connect_with(None)?;
        let mut n = 0;
        write_atomically(&a.file, |w| {
            n = c.download("/v1/Backup", w)?;
            Ok(())
        })?;
        println!(
            "backup written to {} ({n} bytes, through {})",
            a.file.display(),
            c.base
        );
        return Ok(());
    }
    let store = open(&a.data, "backup FILE")?;
    let mut report = None;
    write_atomically(&a.file, |w| {
        report = Some(store.read()?.backup(w)?);
        Ok(())
    })?;
    let r = report.expect("written");
    println!(
        "backup written to {} ({} records, {} bytes)",
        a.file.display(),
        r.records,
        r.bytes
    );
    Ok(())
}

/// Restore a backup into a data directory without assetd data (the server must be stopped).
#[derive(FromArgs)]
#[argh(subcommand, name = "restore")]
pub struct RestoreArgs {
    /// the backup file
    #[argh(positional)]
    file: PathBuf,
    /// data directory (default: $ASSETD_DATA or ./assetd-data)
    #[argh(option, default = "default_data()")]
    data: PathBuf,
    /// replace the assetd data the directory already holds
    #[argh(switch)]
    force: bool,
}

pub fn restore(a: RestoreArgs) -> CliResult {
    let mut file = std::io::BufReader::new(
        File::open(&a.file).map_err(|e| format!("cannot open {}: {e}", a.file.display()))?,
    );
    // A restore that fails into a new store must not leave an empty store behind: it would
    // verify fine and serve with fresh credentials (regression from a black-box test).
    let db_path = a.data.join(crate::store::DB_FILE);
    let new_store = !db_path.exists();
    let dir_created = !a.data.exists();
    let undo = |store: Store| {
        drop(store);
        if new_store {
            let _ = std::fs::remove_file(&db_path);
            if dir_created {
                let _ = std::fs::remove_dir_all(&a.data);
            }
        }
    };
    let store = open(&a.data, "restore")?;
    if !a.force && !store.is_empty()? {
        return Err(format!(
            "{} already holds assetd data; restore into a new directory, or pass --force to replace it",
            a.data.display()
        )
        .into());
    }
    let r = match store.restore(&mut file) {
        Ok(r) => r,
        Err(e) => {
            undo(store);
            return Err(e.into());
        }
    };
    let (problems, blobs) = store.read()?.verify()?;
    if !problems.is_empty() {
        return Err(format!(
            "restored, but verify found {} problems: {}",
            problems.len(),
            problems[0]
        )
        .into());
    }
    println!(
        "restored {} records from {} into {}; verified {blobs} blobs",
        r.records,
        a.file.display(),
        a.data.display()
    );
    Ok(())
}

/// Re-hash every blob and check every reference; exits non-zero on any problem.
#[derive(FromArgs)]
#[argh(subcommand, name = "verify")]
pub struct VerifyArgs {
    /// data directory (default: $ASSETD_DATA or ./assetd-data)
    #[argh(option, default = "default_data()")]
    data: PathBuf,
    /// print one JSON object instead of text (the exit status still tells problems)
    #[argh(switch)]
    json: bool,
}

pub fn verify(a: VerifyArgs) -> CliResult {
    let (problems, blobs): (Vec<String>, u64) = if super::remote_opts().url.is_some() {
        let c = remote::connect_with(None)?;
        let r = c.post_form("/v1/Verify", &[])?;
        let problems = r["problems"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        (problems, r["blobs_checked"].as_u64().unwrap_or(0))
    } else {
        let store = open(&a.data, "verify")?;
        let (p, n) = store.read()?.verify()?;
        (p, n as u64)
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"ok": problems.is_empty(), "blobs_checked": blobs, "problems": problems})
        );
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
    }
    if problems.is_empty() && a.json {
        Ok(())
    } else if problems.is_empty() {
        println!("ok: {blobs} blobs re-hashed, every reference checked");
        Ok(())
    } else {
        Err(format!("{} problems found", problems.len()).into())
    }
}

/// Run the retention pass: delete unused builds and versions older than the age, reclaim
/// unreferenced blobs, and report.
#[derive(FromArgs)]
#[argh(subcommand, name = "gc")]
pub struct GcArgs {
    /// age in days past which unused builds and versions go (default 7)
    #[argh(option, default = "7")]
    max_age_days: u64,
    /// data directory (default: $ASSETD_DATA or ./assetd-data)
    #[argh(option, default = "default_data()")]
    data: PathBuf,
    /// print the report as JSON
    #[argh(switch)]
    json: bool,
}

pub fn gc(a: GcArgs) -> CliResult {
    let secs = a.max_age_days.saturating_mul(24 * 3600);
    let r = if super::remote_opts().url.is_some() {
        let c = remote::connect_with(None)?;
        c.post_form("/v1/Retention", &[("MaxAgeSeconds", &secs.to_string())])?
    } else {
        let store = open(&a.data, "gc")?;
        serde_json::to_value(store.write(|tx| tx.retention(secs))?)?
    };
    if a.json {
        println!("{r}");
        return Ok(());
    }
    println!(
        "gc: removed {} builds, {} versions, {} assets, {} expired manifests; reclaimed {} blobs ({} bytes)",
        r["builds_deleted"],
        r["versions_deleted"],
        r["assets_deleted"],
        r["manifests_expired"],
        r["blobs_reclaimed"],
        r["bytes_reclaimed"]
    );
    Ok(())
}
