//! A crash at any instant leaves the store consistent: an import killed mid-write leaves the
//! previous deployment served and no partial build.

use crate::harness::*;
use std::process::{Command, Stdio};

#[test]
fn crash_mid_import_keeps_previous_deployment() {
    let data = tempfile::tempdir().unwrap();
    let v1 = project(&[("song.mp3", b"version one")]);
    let label = label_of(&import(v1.path(), data.path(), "crashy", &[]));
    let db = data.path().join("assetd.redb");
    let before = std::fs::metadata(&db).unwrap().len();

    // A large second version, so the write transaction runs long enough to be killed.
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("big{i}.bin"), noise(20 * 1024 * 1024, i + 1)))
        .collect();
    let mut refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    refs.push(("song.mp3", b"version two"));
    let v2 = project(&refs);
    let mut child = Command::new(BIN)
        .args([
            "import",
            v2.path().to_str().unwrap(),
            "--service",
            "crashy",
            "--data",
        ])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has written at least 20 MiB into the file (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut killed_mid_write = false;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("import finished ({status}) before it could be killed");
        }
        let len = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        if len > before + 20 * 1024 * 1024 {
            child.kill().unwrap();
            killed_mid_write = true;
            break;
        }
        std::thread::yield_now();
    }
    let _ = child.wait();
    assert!(killed_mid_write, "the import never grew the database file");

    // The store reopens (quick repair), still serves version one, and holds no partial build.
    {
        let store = assetd::store::Store::open(data.path(), 1 << 20).unwrap();
        let lookup = store.read().unwrap();
        let acct = lookup.main_account().unwrap().unwrap();
        let svc = lookup.find_service(&acct.sid, "crashy").unwrap().unwrap();
        assert_eq!(
            lookup.builds(&svc.sid).unwrap().len(),
            1,
            "a partial build survived"
        );
        assert_eq!(lookup.blobs().unwrap().len(), 1, "partial blobs survived");
    }
    let srv = Server::start(data.path(), &[]);
    let r = srv.get(&format!("{label}.localhost"), "/song.mp3");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"version one");
    drop(srv);

    // And the same import, run to completion, then works.
    let out = import(v2.path(), data.path(), "crashy", &[]);
    assert!(out.contains("7 files, 7 new"), "{out}");
}
