//! Store round trips, dedup, and the open-time errors.

use super::*;
use crate::model::{AssetPath, Digest, Visibility};
use std::io::Read;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    (dir, store)
}

/// A build of `sids` with its build step done (as `import` and the manifest call make them).
pub(crate) fn built(tx: &mut Tx<'_>, svc: &Service, sids: &[String]) -> Result<Build> {
    let mut b = tx.create_build(svc, sids, serde_json::json!([]), None)?;
    tx.build_now(&mut b)?;
    Ok(b)
}

/// Stores `body` and makes it a public `text/plain` version of `path` in `svc`.
pub(crate) fn put_version(
    tx: &mut Tx<'_>,
    svc: &Service,
    path: &str,
    body: &[u8],
) -> Result<AssetVersion> {
    let put = tx.put_blob(&mut &body[..], None, None)?;
    let asset = tx.asset_named(svc, path)?;
    tx.create_version(
        &asset,
        &AssetPath::parse(path)?,
        Visibility::Public,
        "text/plain",
        &put.digest,
    )
}

/// Removes blob `digest`'s record (its chunks stay): content a version needs is then missing.
pub(crate) fn lose_blob(store: &Store, digest: &Digest) {
    store
        .write(|tx| {
            tx.txn().open_table(tables::BLOBS)?.remove(&digest.0)?;
            Ok(())
        })
        .unwrap();
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

#[test]
fn two_versions_with_the_same_bytes_share_one_blob() {
    let (_d, store) = open();
    let body = bytes(3 * CHUNK_SIZE + 17, 1);
    let (v1, v2) = store
        .write(|tx| {
            let (acct, created) = tx.ensure_main_account()?;
            assert!(created);
            let svc = tx.create_service(&acct.sid, "svc", "svc")?;
            let a = tx.asset_named(&svc, "/a.bin")?;
            let b = tx.asset_named(&svc, "/b.bin")?;
            let p1 = tx.put_blob(&mut body.as_slice(), None, None)?;
            assert!(p1.new);
            let p2 = tx.put_blob(&mut body.as_slice(), None, None)?;
            assert!(!p2.new, "second copy must be deduplicated");
            assert_eq!(p1.digest, p2.digest);
            // With a known digest the source is not even read.
            let p3 = tx.put_blob(&mut std::io::empty(), Some(p1.digest), None)?;
            assert!(!p3.new);
            let ct = "application/octet-stream";
            let v1 = tx.create_version(
                &a,
                &AssetPath::parse("/a.bin")?,
                Visibility::Public,
                ct,
                &p1.digest,
            )?;
            let v2 = tx.create_version(
                &b,
                &AssetPath::parse("/b.bin")?,
                Visibility::Private,
                ct,
                &p2.digest,
            )?;
            Ok((v1, v2))
        })
        .unwrap();
    assert_eq!(v1.digest, v2.digest);
    let lookup = store.read().unwrap();
    assert_eq!(lookup.blobs().unwrap().len(), 1);
    assert_eq!(lookup.version(&v1.sid).unwrap().unwrap(), v1);
    // Streamed back byte-exact, whole and by range across chunk boundaries.
    let digest = Digest::from_hex(&v1.digest).unwrap();
    let (mut r, len) = lookup.open_blob(&digest, false, None).unwrap().unwrap();
    assert_eq!(len, body.len() as u64);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert!(out == body);
    let (a, b) = (CHUNK_SIZE as u64 - 5, 2 * CHUNK_SIZE as u64 + 5);
    let (mut r, _) = lookup
        .open_blob(&digest, false, Some((a, b)))
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert!(out == body[a as usize..b as usize]);
}

#[test]
fn records_round_trip_and_deploy_switches_atomically() {
    let (_d, store) = open();
    let (env, b1, b2) = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "Round-Trip", "Round trip")?;
            assert!(tx.find_service(&acct.sid, "round-trip")?.is_some());
            assert!(tx.find_service(&acct.sid, &svc.sid)?.is_some());
            assert!(tx.find_service("ACother", "round-trip")?.is_none());
            let env = tx.create_environment(&svc, "dev-environment", Some("dev"))?;
            assert!(matches!(
                tx.create_environment(&svc, "dev-environment", Some("other")),
                Err(StoreError::Conflict(_))
            ));
            let mut builds = Vec::new();
            for body in ["one", "two"] {
                let v = put_version(tx, &svc, "/x.txt", body.as_bytes())?;
                builds.push(built(tx, &svc, &[v.sid])?);
            }
            tx.deploy(&env, &builds[0].sid)?;
            assert!(matches!(
                tx.deploy(&env, &builds[0].sid),
                Err(StoreError::Conflict(_))
            ));
            Ok((env, builds[0].clone(), builds[1].clone()))
        })
        .unwrap();
    assert!(env.label.starts_with("round-trip-") && env.label.ends_with("-dev"));
    let hit = store
        .read()
        .unwrap()
        .resolve(&env.label, &["/x.txt"])
        .unwrap()
        .unwrap();
    assert_eq!(hit.build_sid, b1.sid);
    store.write(|tx| tx.deploy(&env, &b2.sid)).unwrap();
    let lookup = store.read().unwrap();
    assert_eq!(
        lookup
            .resolve(&env.label, &["/x.txt"])
            .unwrap()
            .unwrap()
            .build_sid,
        b2.sid
    );
    assert_eq!(lookup.deployments(&env.sid).unwrap().len(), 2);
    assert_eq!(lookup.build(&b1.sid).unwrap().unwrap(), b1);
    assert!(lookup.resolve(&env.label, &["/y.txt"]).unwrap().is_none());
    assert!(lookup.resolve("nope-0000", &["/x.txt"]).unwrap().is_none());

    // The hot-path cache never outlives a commit, never serves a snapshot taken while a write
    // is in progress, and never mixes a newer snapshot's reads into an older one's.
    let old = store.read().unwrap();
    assert!(old.hot.is_some());
    assert_eq!(
        old.resolve(&env.label, &["/x.txt"])
            .unwrap()
            .unwrap()
            .build_sid,
        b2.sid
    );
    let writing = store.hot.writing();
    assert!(store.read().unwrap().hot.is_none());
    drop(writing);
    store.write(|tx| tx.deploy(&env, &b1.sid)).unwrap();
    let new = store.read().unwrap();
    assert_eq!(
        new.resolve(&env.label, &["/x.txt"])
            .unwrap()
            .unwrap()
            .build_sid,
        b1.sid
    );
    assert_eq!(
        new.resolve(&env.label, &["/x.txt"])
            .unwrap()
            .unwrap()
            .build_sid,
        b1.sid
    );
    assert_eq!(
        old.resolve(&env.label, &["/x.txt"])
            .unwrap()
            .unwrap()
            .build_sid,
        b2.sid
    );
}

#[test]
fn a_failed_write_leaves_nothing() {
    let (_d, store) = open();
    let err = store.write(|tx| {
        let (acct, _) = tx.ensure_main_account()?;
        tx.create_service(&acct.sid, "gone", "gone")?;
        tx.put_blob(&mut &b"bytes"[..], None, None)?;
        Err::<(), _>(StoreError::Invalid("stop".into()))
    });
    assert!(err.is_err());
    let lookup = store.read().unwrap();
    assert!(lookup.main_account().unwrap().is_none());
    assert!(lookup.blobs().unwrap().is_empty());
}

#[test]
fn digest_mismatch_and_size_limit_are_refused() {
    let (_d, store) = open();
    let r = store.write(|tx| tx.put_blob(&mut &b"abc"[..], Some(Digest::of(b"abd")), None));
    assert!(matches!(r, Err(StoreError::DigestMismatch { .. })));
    let r = store.write(|tx| tx.put_blob(&mut &b"abcdef"[..], None, Some((3, "/x"))));
    assert!(matches!(r, Err(StoreError::Invalid(m)) if m.contains("/x")));
    assert!(store.read().unwrap().blobs().unwrap().is_empty());
}

#[test]
fn builds_are_validated() {
    let (_d, store) = open();
    let r = store.write(|tx| {
        let (acct, _) = tx.ensure_main_account()?;
        let s1 = tx.create_service(&acct.sid, "one", "one")?;
        let s2 = tx.create_service(&acct.sid, "two", "two")?;
        assert!(
            tx.create_build(&s1, &[], serde_json::json!([]), None)
                .is_err()
        );
        let put = tx.put_blob(&mut &b"x"[..], None, None)?;
        let a = tx.asset_named(&s2, "/x")?;
        let v = tx.create_version(
            &a,
            &AssetPath::parse("/x")?,
            Visibility::Public,
            "text/plain",
            &put.digest,
        )?;
        // A version of another service cannot go into this one's build.
        let err = tx
            .create_build(
                &s1,
                std::slice::from_ref(&v.sid),
                serde_json::json!([]),
                None,
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("does not exist in service"),
            "{err}"
        );
        // A bad content type never gets stored (it would end up in a response header).
        let bad = tx.create_version(
            &a,
            &AssetPath::parse("/x")?,
            Visibility::Public,
            "text/html\r\nX: y",
            &put.digest,
        );
        assert!(bad.is_err());
        Ok(())
    });
    r.unwrap();
}

#[test]
fn open_errors_are_one_line_and_clear() {
    let (dir, store) = open();
    // Already open (redb's file lock also holds within one process).
    let err = Store::open(dir.path(), 1 << 20).err().unwrap();
    assert!(matches!(err, StoreError::InUse(_)), "{err}");
    drop(store);

    // Newer schema.
    {
        let db = redb::Database::create(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::META)
            .unwrap()
            .insert("schema_version", 99u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path(), 1 << 20).err().unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer assetd"));

    // Not a database at all.
    let junk = tempfile::tempdir().unwrap();
    std::fs::write(junk.path().join(DB_FILE), vec![0x5a; 8192]).unwrap();
    let err = Store::open(junk.path(), 1 << 20).err().unwrap();
    assert!(!err.to_string().contains('\n'));
    assert!(
        matches!(
            err,
            StoreError::Corrupt(_) | StoreError::Io(_) | StoreError::Disk(_) | StoreError::Db(_)
        ),
        "{err}"
    );
}

#[test]
fn gzip_variant_is_stored_once_for_compressible_content() {
    let (_d, store) = open();
    let text = "hello hello hello hello ".repeat(100);
    let digest = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "gz", "gz")?;
            let put = tx.put_blob(&mut text.as_bytes(), None, None)?;
            let mut sids = Vec::new();
            for path in ["/t.txt", "/u.txt"] {
                let a = tx.asset_named(&svc, path)?;
                let v = tx.create_version(
                    &a,
                    &AssetPath::parse(path)?,
                    Visibility::Public,
                    "text/plain",
                    &put.digest,
                )?;
                sids.push(v.sid);
            }
            Ok((svc, sids, put.digest))
        })
        .unwrap();
    let (svc, sids, digest) = digest;
    // Uploading does not compress: the build step does, once per blob.
    assert_eq!(store.read().unwrap().gzip_len(&digest).unwrap(), None);
    let b = store
        .write(|tx| tx.create_build(&svc, &sids[..1], serde_json::json!([]), None))
        .unwrap();
    assert_eq!(b.status, "building");
    let work = store.read().unwrap().build_work(&b.sid).unwrap().unwrap();
    assert_eq!(work, vec![(digest, text.len() as u64)]);
    let both = store.write(|tx| built(tx, &svc, &sids)).unwrap();
    assert_eq!(both.status, "completed");
    // The blob is done: the first build has nothing left to compress.
    let work = store.read().unwrap().build_work(&b.sid).unwrap().unwrap();
    assert!(work.is_empty());
    let lookup = store.read().unwrap();
    let gz = lookup.gzip_len(&digest).unwrap().unwrap();
    assert!(gz < text.len() as u64 / 10);
    let (r, _) = lookup.open_blob(&digest, true, None).unwrap().unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(r)
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, text);
}

#[test]
fn retention_keeps_everything_deployed_and_reclaims_the_rest() {
    let (_d, store) = open();
    let (env, live, rolled_back, orphan) = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "gc", "gc")?;
            let env = tx.create_environment(&svc, "production", None)?;
            let old = put_version(tx, &svc, "/a.txt", b"old bytes")?;
            let new = put_version(tx, &svc, "/a.txt", b"new bytes")?;
            let orphan = put_version(tx, &svc, "/orphan.txt", b"orphan bytes")?;
            let never = put_version(tx, &svc, "/never.txt", b"never deployed")?;
            let b_old = built(tx, &svc, std::slice::from_ref(&old.sid))?;
            let b_new = built(tx, &svc, std::slice::from_ref(&new.sid))?;
            built(tx, &svc, std::slice::from_ref(&never.sid))?;
            tx.deploy(&env, &b_old.sid)?;
            tx.deploy(&env, &b_new.sid)?;
            Ok((env, b_new, b_old, orphan))
        })
        .unwrap();
    // A young store loses nothing with the default age.
    let report = store
        .write(|tx| tx.retention(DEFAULT_RETENTION_SECS))
        .unwrap();
    assert_eq!(report, GcReport::default());
    // With age 0: the never-deployed build, the orphan and never versions and their blobs go;
    // the live build and the rolled-back (deployed once) build stay, with their bytes.
    let report = store.write(|tx| tx.retention(0)).unwrap();
    assert_eq!(report.builds_deleted, 1);
    assert_eq!(report.versions_deleted, 2);
    assert_eq!(report.assets_deleted, 2);
    assert_eq!(report.blobs_reclaimed, 2);
    assert_eq!(
        report.bytes_reclaimed,
        ("orphan bytes".len() + "never deployed".len()) as u64
    );
    let lookup = store.read().unwrap();
    assert!(lookup.version(&orphan.sid).unwrap().is_none());
    assert!(lookup.build(&live.sid).unwrap().is_some());
    assert!(lookup.build(&rolled_back.sid).unwrap().is_some());
    assert_eq!(lookup.blobs().unwrap().len(), 2);
    let hit = lookup.resolve(&env.label, &["/a.txt"]).unwrap().unwrap();
    let (mut r, _) = lookup
        .open_blob(&hit.route.digest, false, None)
        .unwrap()
        .unwrap();
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!(s, "new bytes");
    drop(lookup);
    // Rolling back still works after a retention pass.
    store.write(|tx| tx.deploy(&env, &rolled_back.sid)).unwrap();
}

#[test]
fn retention_concurrent_with_deploys_never_breaks_the_live_build() {
    let (_d, store) = open();
    let store = std::sync::Arc::new(store);
    let (svc, env) = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "race", "race")?;
            let env = tx.create_environment(&svc, "production", None)?;
            Ok((svc, env))
        })
        .unwrap();
    let gc = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                store.write(|tx| tx.retention(0)).unwrap();
            }
        })
    };
    for i in 0..50u32 {
        let body = format!("body {i}");
        store
            .write(|tx| {
                let v = put_version(tx, &svc, "/x.txt", body.as_bytes())?;
                let b = built(tx, &svc, &[v.sid])?;
                tx.deploy(&env, &b.sid)?;
                Ok(())
            })
            .unwrap();
        let lookup = store.read().unwrap();
        let hit = lookup.resolve(&env.label, &["/x.txt"]).unwrap().unwrap();
        let (mut r, _) = lookup
            .open_blob(&hit.route.digest, false, None)
            .unwrap()
            .unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, body);
    }
    gc.join().unwrap();
}

#[test]
fn backup_restores_to_an_identical_verified_store_and_bad_files_change_nothing() {
    let (_d, store) = open();
    let big = bytes(2 * CHUNK_SIZE + 3, 9);
    let label = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "bk", "bk")?;
            let env = tx.create_environment(&svc, "dev-environment", Some("dev"))?;
            let mut vs = Vec::new();
            for (path, body, ct) in [
                ("/big.bin", big.as_slice(), "application/octet-stream"),
                ("/t.txt", "text ".repeat(100).as_bytes(), "text/plain"),
            ] {
                let put = tx.put_blob(&mut &body[..], None, None)?;
                let a = tx.asset_named(&svc, path)?;
                vs.push(
                    tx.create_version(
                        &a,
                        &AssetPath::parse(path)?,
                        Visibility::Public,
                        ct,
                        &put.digest,
                    )?
                    .sid,
                );
            }
            let b = built(tx, &svc, &vs)?;
            tx.deploy(&env, &b.sid)?;
            Ok(env.label)
        })
        .unwrap();
    let (problems, n) = store.read().unwrap().verify().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(n, 2);
    let mut file = Vec::new();
    let report = store.read().unwrap().backup(&mut file).unwrap();
    assert_eq!(report.bytes, file.len() as u64);

    let (_d2, restored) = open();
    assert!(restored.is_empty().unwrap());
    restored.restore(&mut &file[..]).unwrap();
    assert!(!restored.is_empty().unwrap());
    let lookup = restored.read().unwrap();
    assert!(lookup.verify().unwrap().0.is_empty());
    let hit = lookup.resolve(&label, &["/big.bin"]).unwrap().unwrap();
    let (mut r, _) = lookup
        .open_blob(&hit.route.digest, false, None)
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert!(out == big);
    assert_eq!(
        lookup.main_account().unwrap(),
        store.read().unwrap().main_account().unwrap()
    );
    drop(lookup);

    // Truncated and altered backups are refused and leave the target as it was.
    let (_d3, target) = open();
    for bad in [
        file[..file.len() - 10].to_vec(),
        {
            let mut f = file.clone();
            let mid = f.len() / 2;
            f[mid] ^= 1;
            f
        },
        b"not a backup".to_vec(),
    ] {
        assert!(target.restore(&mut &bad[..]).is_err());
        assert!(target.is_empty().unwrap());
    }
}

#[test]
fn verify_reports_a_damaged_chunk() {
    let (_d, store) = open();
    let digest = store
        .write(|tx| Ok(tx.put_blob(&mut &bytes(1000, 3)[..], None, None)?.digest))
        .unwrap();
    // Damage the stored chunk behind the store's back.
    store
        .write(|tx| {
            let meta = blob::blob_meta(&tx.txn().open_table(tables::BLOBS)?, &digest)?.unwrap();
            let mut same_length = bytes(1000, 3);
            same_length[500] ^= 0xff;
            tx.txn()
                .open_table(tables::CHUNKS)?
                .insert((meta.id, 0u32), same_length.as_slice())?;
            Ok(())
        })
        .unwrap();
    let (problems, _) = store.read().unwrap().verify().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains(&digest.to_hex()) && problems[0].contains("does not match"));
}

#[test]
fn a_suspended_account_serves_nothing_and_stays_so_after_a_restore() {
    let (_d, store) = open();
    let (sub_sid, label) = store
        .write(|tx| {
            let (main, _) = tx.ensure_main_account()?;
            let sub = tx.create_subaccount(&main.sid, "Tenant")?;
            let svc = tx.create_service(&sub.sid, "t", "t")?;
            let env = tx.create_environment(&svc, "dev", Some("dev"))?;
            let v = put_version(tx, &svc, "/p.txt", b"public bytes")?;
            let b = built(tx, &svc, &[v.sid])?;
            tx.deploy(&env, &b.sid)?;
            Ok((sub.sid, env.label))
        })
        .unwrap();
    let served = |s: &Store| {
        s.read()
            .unwrap()
            .resolve(&label, &["/p.txt"])
            .unwrap()
            .is_some()
    };
    assert!(served(&store));
    store
        .write(|tx| tx.update_account(&sub_sid, None, Some("suspended")))
        .unwrap();
    assert!(!served(&store));

    let mut file = Vec::new();
    store.read().unwrap().backup(&mut file).unwrap();
    let (_d2, restored) = open();
    restored.restore(&mut &file[..]).unwrap();
    assert!(
        !served(&restored),
        "a restore must keep a suspended account dark"
    );
    restored
        .write(|tx| tx.update_account(&sub_sid, None, Some("active")))
        .unwrap();
    assert!(served(&restored));
}

#[test]
fn builds_per_hour_counts_creations_and_forgets_after_an_hour() {
    let (_d, store) = open();
    let (acct, svc, sids) = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "rate", "rate")?;
            let v = put_version(tx, &svc, "/r.txt", b"bytes")?;
            Ok((acct.sid, svc, vec![v.sid]))
        })
        .unwrap();
    let create = |limit: u32| {
        store.write(|tx| tx.create_limited_build(&svc, &sids, serde_json::json!([]), None, limit))
    };
    let first = create(3).unwrap();
    create(3).unwrap();
    // A deleted build still counts: the limit is on creations.
    store.write(|tx| tx.delete_build(&first)).unwrap();
    create(3).unwrap();
    match create(3) {
        Err(StoreError::RateLimited {
            message,
            retry_after_secs,
        }) => {
            assert!(
                message.contains("3 builds per account per hour"),
                "{message}"
            );
            assert!(
                (3590..=3600).contains(&retry_after_secs),
                "{retry_after_secs}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // Builds made without the limit (the offline import) are not counted.
    store
        .write(|tx| tx.create_build(&svc, &sids, serde_json::json!([]), None))
        .unwrap();
    // No limit; then 5 in the window: with a limit of 2, room comes when the 4th oldest
    // leaves (all in this second or the last: 3599-3600 s), not the oldest.
    create(0).unwrap();
    match create(2) {
        Err(StoreError::RateLimited {
            retry_after_secs, ..
        }) => assert!(
            (3598..=3600).contains(&retry_after_secs),
            "{retry_after_secs}"
        ),
        other => panic!("expected RateLimited, got {other:?}"),
    }

    // Rows older than an hour are forgotten.
    store
        .write(|tx| {
            let mut log = tx.txn().open_table(tables::BUILD_LOG)?;
            let rows: Vec<(u64, String)> = log
                .iter()?
                .map(|r| r.map(|(k, _)| (k.value().1, k.value().2.to_string())))
                .collect::<std::result::Result<_, _>>()?;
            for (at, sid) in rows {
                log.remove((acct.as_str(), at, sid.as_str()))?;
                log.insert((acct.as_str(), at - 3600, sid.as_str()), ())?;
            }
            Ok(())
        })
        .unwrap();
    create(1).unwrap();
    let left = store
        .write(|tx| {
            Ok(redb::ReadableTableMetadata::len(
                &tx.txn().open_table(tables::BUILD_LOG)?,
            )?)
        })
        .unwrap();
    assert_eq!(left, 1, "the moved rows were pruned, the new one kept");
    assert_eq!(acct.len(), 34);
}

/// Regression: versions created within one second were ordered by their random SIDs, so the
/// "latest" version (what a redeploy compares against) could be an older one, and reverting a
/// file made a new build instead of an unchanged redeploy.
#[test]
fn versions_of_one_second_keep_their_creation_order() {
    let (_d, store) = open();
    let (asset, created) = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "order", "order")?;
            let asset = tx.asset_named(&svc, "/o.txt")?;
            let path = AssetPath::parse("/o.txt")?;
            let mut created = Vec::new();
            for i in 0..40u32 {
                let put = tx.put_blob(&mut &i.to_le_bytes()[..], None, None)?;
                let v = tx.create_version(
                    &asset,
                    &path,
                    Visibility::Public,
                    "text/plain",
                    &put.digest,
                )?;
                created.push(v.sid);
            }
            Ok((asset, created))
        })
        .unwrap();
    let listed: Vec<String> = store
        .read()
        .unwrap()
        .asset_versions(&asset.sid)
        .unwrap()
        .into_iter()
        .map(|v| v.sid)
        .collect();
    assert_eq!(listed, created);
}

/// Regression (review): with more builds in the window than the limit (a lowered limit),
/// Retry-After named the oldest one, and a client that waited was refused again.
#[test]
fn retry_after_waits_until_enough_builds_leave_the_window() {
    let (_d, store) = open();
    let (svc, sids) = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "wait", "wait")?;
            let v = put_version(tx, &svc, "/w.txt", b"w")?;
            let now = tx.now();
            let mut log = tx.txn().open_table(tables::BUILD_LOG)?;
            for (age, sid) in [(3000, "ZBa"), (2000, "ZBb"), (1000, "ZBc")] {
                log.insert((acct.sid.as_str(), now - age, sid), ())?;
            }
            Ok((svc, vec![v.sid]))
        })
        .unwrap();
    match store.write(|tx| tx.create_limited_build(&svc, &sids, serde_json::json!([]), None, 2)) {
        // Two of the three must leave: the one 2000 s old leaves in 1600 s.
        Err(StoreError::RateLimited {
            retry_after_secs, ..
        }) => assert!(
            (1599..=1600).contains(&retry_after_secs),
            "{retry_after_secs}"
        ),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

/// After a disk error the store drops its handle (redb refuses every later operation on it);
/// the next operation reopens the file with everything committed, and a snapshot taken on the
/// old handle answers from memory or `Closed`, never wrong data.
#[test]
fn a_handle_dropped_after_a_disk_error_is_reopened_with_every_commit() {
    let (_d, store) = open();
    let acct = store.write(|tx| tx.ensure_main_account()).unwrap().0;
    let old = store.read().unwrap();
    store.note_error(&StoreError::Poisoned);
    // Reopened at the next operation: the commit is there, and writes work again.
    let svc = store
        .write(|tx| tx.create_service(&acct.sid, "after", "after"))
        .unwrap();
    let lookup = store.read().unwrap();
    assert_eq!(lookup.main_account().unwrap().unwrap().sid, acct.sid);
    assert!(lookup.find_service(&acct.sid, "after").unwrap().is_some());
    match old.main_account() {
        Ok(a) => assert_eq!(a.map(|a| a.sid), Some(acct.sid.clone())),
        Err(e) => assert!(matches!(e, StoreError::Closed), "{e}"),
    }
    // Errors that are not disk errors leave the handle alone.
    store.note_error(&StoreError::NotFound("x".into()));
    assert_eq!(
        store
            .read()
            .unwrap()
            .find_service(&acct.sid, "after")
            .unwrap()
            .unwrap()
            .sid,
        svc.sid
    );
}

/// Regression (black-box test): a FriendlyName with a newline and an escape sequence was
/// stored, and `assetd list assets` printed a forged line and drove the terminal.
#[test]
fn friendly_names_with_control_characters_are_refused() {
    let (_d, store) = open();
    let err = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.register_service(&acct.sid, "names", "names", true, false)?;
            tx.create_asset(&svc, "/a\n/b\u{1b}[2J")
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("U+000A (a control character)"),
        "{err}"
    );
    let err = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            tx.register_service(&acct.sid, "names2", "bad\rname", true, false)
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("U+000D (a control character)"),
        "{err}"
    );
}

/// Small blobs come from memory after their first read: the same bytes, whole, by range and
/// as pieces, on the read that fills the cache and on the ones after it.
#[test]
fn small_blobs_read_from_memory_match_the_stored_bytes() {
    let (_d, store) = open();
    let body = bytes(5000, 3);
    let digest = store
        .write(|tx| Ok(tx.put_blob(&mut body.as_slice(), None, None)?.digest))
        .unwrap();
    for _ in 0..3 {
        let lookup = store.read().unwrap();
        assert!(
            lookup.hot.is_some(),
            "no writer: the snapshot may use the cache"
        );
        let (mut r, len) = lookup.open_blob(&digest, false, None).unwrap().unwrap();
        assert_eq!(len, 5000);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(out == body);
        let (mut r, _) = lookup
            .open_blob(&digest, false, Some((17, 4000)))
            .unwrap()
            .unwrap();
        assert_eq!(r.remaining(), 3983);
        let piece = r.next_piece().unwrap().unwrap();
        assert!(piece.as_ref() == &body[17..4000]);
        assert!(r.next_piece().unwrap().is_none());
    }
}
