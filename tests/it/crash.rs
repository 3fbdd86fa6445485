//! A crash at any instant leaves the store consistent: an import killed mid-write leaves the
//! previous deployment served and no partial build; a server killed mid-build leaves the build
//! `building`, and the next start finishes it.

use crate::harness::*;
use std::io::Read;
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

/// A server killed while a build is `building` leaves it `building` (the gzip work it did is
/// all or nothing per transaction), and the next start finishes it: the build completes and
/// its compressible content is served gzip'd, byte-exact.
#[test]
fn a_build_interrupted_by_a_crash_is_finished_by_the_next_start() {
    use assetd::model::{AssetPath, Visibility};
    let data = tempfile::tempdir().unwrap();
    let (sid, token) = credentials(data.path());
    // Compressible content: enough gzip work that the kill lands mid-build.
    let texts: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            let line = format!("line of text number {i} for the build step to compress\n");
            line.repeat(16 * 1024 * 1024 / line.len()).into_bytes()
        })
        .collect();
    let (service, versions, label) = {
        let store = assetd::store::Store::open(data.path(), 1 << 20).unwrap();
        store
            .write(|tx| {
                let svc = tx.create_service(&sid, "crashbuild", "crashbuild")?;
                let env = tx.create_environment(&svc, "dev-environment", Some("dev"))?;
                let mut versions = Vec::new();
                for (i, t) in texts.iter().enumerate() {
                    let path = format!("/t{i}.txt");
                    let put = tx.put_blob(&mut t.as_slice(), None, None)?;
                    let asset = tx.asset_named(&svc, &path)?;
                    let p = AssetPath::parse(&path)?;
                    let v = tx.create_version(
                        &asset,
                        &p,
                        Visibility::Public,
                        "text/plain",
                        &put.digest,
                    )?;
                    versions.push(v.sid);
                }
                Ok((svc.sid, versions, env.label))
            })
            .unwrap()
    };

    let mut srv = Server::start(data.path(), &[]);
    let form: Vec<String> = versions
        .iter()
        .map(|v| format!("AssetVersions={v}"))
        .collect();
    let r = request(
        srv.addr,
        "POST",
        "localhost",
        &format!("/v1/Services/{service}/Builds"),
        &[
            ("Authorization", &basic(&sid, &token)),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form.join("&").as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    drop(srv);
    let build: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let build_sid = build["sid"].as_str().unwrap().to_string();
    {
        let store = assetd::store::Store::open(data.path(), 1 << 20).unwrap();
        let b = store.read().unwrap().build(&build_sid).unwrap().unwrap();
        assert_eq!(
            b.status, "building",
            "the kill came after the build step finished"
        );
    }

    let srv = Server::start(data.path(), &[]);
    let auth = basic(&sid, &token);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let s = request(
            srv.addr,
            "GET",
            "localhost",
            &format!("/v1/Services/{service}/Builds/{build_sid}/Status"),
            &[("Authorization", &auth)],
            b"",
        );
        let status: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
        match status["status"].as_str() {
            Some("completed") => break,
            Some("building") => {}
            other => panic!("build ended {other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never completed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let env = request(
        srv.addr,
        "GET",
        "localhost",
        &format!("/v1/Services/{service}/Environments"),
        &[("Authorization", &auth)],
        b"",
    );
    let envs: serde_json::Value = serde_json::from_slice(&env.body).unwrap();
    let env_sid = envs["environments"][0]["sid"].as_str().unwrap().to_string();
    let d = request(
        srv.addr,
        "POST",
        "localhost",
        &format!("/v1/Services/{service}/Environments/{env_sid}/Deployments"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("BuildSid={build_sid}").as_bytes(),
    );
    assert_eq!(d.status, 201, "{}", d.text());
    let host = format!("{label}.localhost");
    for (i, t) in texts.iter().enumerate() {
        let r = srv.request(
            "GET",
            &host,
            &format!("/t{i}.txt"),
            &[("Accept-Encoding", "gzip")],
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some("gzip"), "t{i}");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(r.body.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        assert!(plain == *t, "t{i} is byte-exact after gunzip");
    }
}
