//! `assetd deploy` and the operator commands against the real server.

use crate::harness::*;
use std::process::Command;

struct Box_ {
    data: tempfile::TempDir,
    sid: String,
    token: String,
}

fn new_box() -> Box_ {
    let data = tempfile::tempdir().unwrap();
    let (sid, token) = credentials(data.path());
    Box_ { sid, token, data }
}

/// Runs the CLI against `srv` with the box's credentials in the environment.
fn remote(b: &Box_, srv: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("ASSETD_URL", format!("http://{}", srv.addr))
        .env("ASSETD_ACCOUNT_SID", &b.sid)
        .env("ASSETD_AUTH_TOKEN", &b.token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The summary block: from the "deployed build" / "unchanged, still build" line to the end.
fn summary(out: &str) -> &str {
    out.find("deployed build")
        .or_else(|| out.find("unchanged, still build"))
        .map_or("", |i| &out[i..])
}

#[test]
fn deploy_redeploy_rollback_promote_and_refusals() {
    let b = new_box();
    let srv = Server::start(b.data.path(), &[]);
    let p = project(&[
        ("index.txt", b"v1 index"),
        ("logo.png", &noise(50_000, 1)),
        ("hold.protected.mp3", &noise(10_000, 2)),
        ("conf.private.json", b"{}"),
    ]);
    let dir = p.path().to_str().unwrap();
    let (ok, out, err) = remote(&b, &srv, &["deploy", dir, "--service", "web"]);
    assert!(ok, "{out}{err}");
    assert!(summary(&out).contains("4 files, 4 new"), "{out}");
    let label = label_of(&out);
    assert!(label.starts_with("web-") && label.ends_with("-dev"));
    assert!(
        out.contains(&format!(
            "protected http://{label}.localhost:{}/hold.mp3",
            srv.addr.port()
        )),
        "{out}"
    );
    assert!(out.contains("private   /conf.json  (owner API: "), "{out}");
    let host = format!("{label}.localhost");
    assert_eq!(srv.get(&host, "/index.txt").body, b"v1 index");

    // Unchanged: nothing uploaded. One change: exactly one blob.
    let (ok, out, _) = remote(&b, &srv, &["deploy", dir, "--service", "web"]);
    assert!(ok);
    assert!(
        summary(&out).contains("4 files, 0 new") && summary(&out).contains("sent         0 B"),
        "{out}"
    );
    assert!(summary(&out).starts_with("unchanged"), "{out}");
    std::fs::write(p.path().join("assets/index.txt"), b"v2 index!").unwrap();
    let (ok, out, _) = remote(&b, &srv, &["deploy", dir, "--service", "web", "--json"]);
    assert!(ok);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["new_files"], 1);
    assert_eq!(j["bytes_sent"], 9);
    assert_eq!(srv.get(&host, "/index.txt").body, b"v2 index!");

    // Dry run: lists the change, changes nothing.
    std::fs::write(p.path().join("assets/index.txt"), b"v3").unwrap();
    let (ok, out, _) = remote(&b, &srv, &["deploy", dir, "--service", "web", "--dry-run"]);
    assert!(ok);
    assert!(
        out.contains("would upload /index.txt (2 bytes, public)"),
        "{out}"
    );
    assert_eq!(srv.get(&host, "/index.txt").body, b"v2 index!");
    std::fs::write(p.path().join("assets/index.txt"), b"v2 index!").unwrap();

    // Regression (black-box test): a dry run for a new service said every file would be
    // uploaded, though the account already holds them, and not that it would create the
    // environment.
    let (ok, out, err) = remote(
        &b,
        &srv,
        &[
            "deploy",
            dir,
            "--service",
            "web2",
            "--environment",
            "qa",
            "--dry-run",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("would create service web2"), "{out}");
    assert!(out.contains("would create environment qa"), "{out}");
    assert!(out.contains("4 files, 0 to upload (0 bytes)"), "{out}");
    let (_, list, _) = remote(&b, &srv, &["list", "services"]);
    assert!(!list.contains("web2"), "a dry run creates nothing: {list}");

    // Rollback serves the old bytes again; promote dev → prod uploads nothing.
    let (ok, out, err) = remote(
        &b,
        &srv,
        &["rollback", "--service", "web", "--environment", "dev"],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(srv.get(&host, "/index.txt").body, b"v1 index");
    let (ok, out, err) = remote(
        &b,
        &srv,
        &[
            "promote",
            "--service",
            "web",
            "--from",
            "dev",
            "--to",
            "production",
        ],
    );
    assert!(ok, "{out}{err}");
    let prod = label.trim_end_matches("-dev");
    assert_eq!(
        srv.get(&format!("{prod}.localhost"), "/index.txt").body,
        b"v1 index"
    );
    let (ok, out, _) = remote(
        &b,
        &srv,
        &[
            "promote",
            "--service",
            "web",
            "--from",
            "dev",
            "--to",
            "production",
        ],
    );
    assert!(ok && out.contains("already active"), "{out}");

    // list
    let (ok, out, _) = remote(&b, &srv, &["list", "environments", "--service", "web"]);
    assert!(
        ok && out.contains("  dev  ") && out.contains("  production  "),
        "{out}"
    );
    let (ok, out, _) = remote(&b, &srv, &["list", "services"]);
    assert!(ok && out.contains(" web "), "{out}");
    let (ok, _, err) = remote(&b, &srv, &["list", "things"]);
    assert!(
        !ok && err.contains("services, environments, builds or assets"),
        "{err}"
    );

    // A file over its limit: non-zero exit naming the file; the environment keeps serving.
    std::fs::write(
        p.path().join("assets/big.private.bin"),
        vec![0u8; 10 * 1024 * 1024 + 1],
    )
    .unwrap();
    let (ok, _, err) = remote(&b, &srv, &["deploy", dir, "--service", "web"]);
    assert!(!ok);
    assert!(
        err.contains("big.private.bin") && err.contains("10 MB"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(srv.get(&host, "/index.txt").body, b"v1 index");

    std::fs::remove_file(p.path().join("assets/big.private.bin")).unwrap();
    // A wrong token: a clear message.
    let out = Command::new(BIN)
        .args([
            "deploy",
            dir,
            "--service",
            "web",
            "--url",
            &format!("http://{}", srv.addr),
        ])
        .args(["--account-sid", &b.sid, "--auth-token", "wrong"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the credentials (401)"), "{err}");
    let (ok, _, err) = cli(&[
        "deploy",
        dir,
        "--service",
        "web",
        "--url",
        "ftp://example.org",
    ]);
    assert!(
        !ok && err.contains("not an http:// or https:// URL"),
        "{err}"
    );
}

#[test]
fn project_config_file_supplies_defaults() {
    let b = new_box();
    let srv = Server::start(b.data.path(), &[]);
    let p = project(&[("a.txt", b"a")]);
    std::fs::write(
        p.path().join(".assetd.toml"),
        "service = \"conf\"\nenvironment = \"stage\"\n",
    )
    .unwrap();
    let (ok, out, err) = remote(&b, &srv, &["deploy", p.path().to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(label_of(&out).ends_with("-stage"), "{out}");
    std::fs::write(p.path().join(".assetd.toml"), "servce = \"typo\"\n").unwrap();
    let (ok, _, err) = remote(&b, &srv, &["deploy", p.path().to_str().unwrap()]);
    assert!(!ok && err.contains(".assetd.toml"), "{err}");
}

#[test]
fn backup_under_load_and_deploy_restores_to_a_verified_identical_store() {
    let b = new_box();
    let srv = Server::start(b.data.path(), &[]);
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i}.bin"), noise(100_000, i + 10)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let p = project(&refs);
    let (ok, out, err) = remote(
        &b,
        &srv,
        &["deploy", p.path().to_str().unwrap(), "--service", "load"],
    );
    assert!(ok, "{err}");
    let label = label_of(&out);
    let host = format!("{label}.localhost");

    // A load generator downloads while a second deploy runs and the backup is taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..3)
        .map(|t| {
            let (stop, host, addr) = (stop.clone(), host.clone(), srv.addr);
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
                    let r = get(addr, &host, &format!("/f{}.bin", (n + t) % 20));
                    assert_eq!(r.status, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let p2 = project(&[("other.txt", &noise(3_000_000, 77))]);
    let deployer = {
        let (sid, token, addr) = (b.sid.clone(), b.token.clone(), srv.addr);
        let dir = p2.path().to_path_buf();
        std::thread::spawn(move || {
            Command::new(BIN)
                .args(["deploy", dir.to_str().unwrap(), "--service", "other"])
                .env("ASSETD_URL", format!("http://{addr}"))
                .env("ASSETD_ACCOUNT_SID", sid)
                .env("ASSETD_AUTH_TOKEN", token)
                .output()
                .unwrap()
        })
    };
    let backup_dir = tempfile::tempdir().unwrap();
    let backup_file = backup_dir.path().join("box.backup");
    let (ok, out, err) = remote(
        &b,
        &srv,
        &[
            "backup",
            backup_file.to_str().unwrap(),
            "--url",
            &format!("http://{}", srv.addr),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(deployer.join().unwrap().status.success());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loaders {
        assert!(l.join().unwrap() > 0);
    }
    // Offline backup of a held directory: a clear instruction.
    let (ok, _, err) = cli(&[
        "backup",
        backup_dir.path().join("x").to_str().unwrap(),
        "--data",
        b.data.path().to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--url"), "{err}");
    let (ok, out, _) = remote(
        &b,
        &srv,
        &["verify", "--url", &format!("http://{}", srv.addr)],
    );
    assert!(ok && out.contains("ok:"), "{out}");

    // Restore into a fresh directory: verify passes and every asset is served with the same digest.
    let restored = tempfile::tempdir().unwrap();
    let rdir = restored.path().join("data");
    let (ok, out, err) = cli(&[
        "restore",
        backup_file.to_str().unwrap(),
        "--data",
        rdir.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(&[
        "restore",
        backup_file.to_str().unwrap(),
        "--data",
        rdir.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--force"), "{err}");
    let (ok, out, _) = cli(&["verify", "--data", rdir.to_str().unwrap()]);
    assert!(ok, "{out}");
    let srv2 = Server::start(&rdir, &[]);
    for (name, bytes) in &files {
        let r = srv2.get(&host, &format!("/{name}"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("etag").unwrap(),
            format!("\"{}\"", assetd::model::Digest::of(bytes).to_hex())
        );
    }
    // A damaged backup is refused and leaves the target untouched.
    let mut bytes = std::fs::read(&backup_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = backup_dir.path().join("bad.backup");
    std::fs::write(&bad, &bytes).unwrap();
    let empty = restored.path().join("empty");
    let (ok, _, err) = cli(&[
        "restore",
        bad.to_str().unwrap(),
        "--data",
        empty.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("checksum"), "{err}");
    // Regression (black-box test): the failed restore left an empty store there, which then
    // verified fine and served with new credentials.
    assert!(
        !empty.exists(),
        "a failed restore into a new directory leaves nothing"
    );
    let (ok, _, err) = cli(&["verify", "--data", empty.to_str().unwrap()]);
    assert!(!ok && err.contains("no assetd data"), "{err}");
}

#[test]
fn gc_and_verify_offline() {
    let b = new_box();
    let p = project(&[("a.txt", b"one")]);
    let data = b.data.path().to_str().unwrap();
    import(p.path(), b.data.path(), "gc", &[]);
    std::fs::write(p.path().join("assets/a.txt"), b"two").unwrap();
    import(p.path(), b.data.path(), "gc", &[]);
    let (ok, out, _) = cli(&["gc", "--data", data]);
    assert!(ok);
    assert!(out.contains("removed 0 builds"), "{out}");
    let (ok, out, _) = cli(&["gc", "--data", data, "--max-age-days", "0"]);
    assert!(ok, "{out}");
    // Both builds were deployed once (rollback targets), so nothing goes.
    assert!(out.contains("reclaimed 0 blobs"), "{out}");
    let (ok, out, _) = cli(&["verify", "--data", data]);
    assert!(ok && out.contains("ok: 2 blobs"), "{out}");
}

/// Twilio's limit of 100 builds per account per hour, here set to 2 with `--builds-per-hour`:
/// the API answers 429 / 20429 with `Retry-After`, `assetd deploy` says when to try again and
/// changes nothing, and an unchanged redeploy (no new build) still succeeds.
#[test]
fn builds_past_the_hourly_limit_get_429_and_deploy_says_when_to_retry() {
    let b = new_box();
    let srv = Server::start(b.data.path(), &["--builds-per-hour", "2"]);
    let p = project(&[("index.txt", b"one")]);
    let dir = p.path().to_str().unwrap();
    let (ok, out, err) = remote(&b, &srv, &["deploy", dir, "--service", "rate"]);
    assert!(ok, "{out}{err}");
    let host = format!("{}.localhost", label_of(&out));
    std::fs::write(p.path().join("assets/index.txt"), b"two").unwrap();
    let (ok, out, err) = remote(&b, &srv, &["deploy", dir, "--service", "rate"]);
    assert!(ok, "{out}{err}");
    assert_eq!(srv.get(&host, "/index.txt").body, b"two");

    std::fs::write(p.path().join("assets/index.txt"), b"three").unwrap();
    let (ok, out, err) = remote(&b, &srv, &["deploy", dir, "--service", "rate"]);
    assert!(!ok, "a third build within the hour must be refused: {out}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("(429)") && err.contains("2 builds per account per hour"),
        "{err}"
    );
    assert!(err.contains("try again in 1 h"), "{err}");
    assert_eq!(srv.get(&host, "/index.txt").body, b"two", "nothing changed");

    // The plain API: 429 / 20429 with Retry-After, before any build is stored.
    let auth = basic(&b.sid, &b.token);
    let list = request(
        srv.addr,
        "GET",
        "localhost",
        "/v1/Services/rate/Builds",
        &[("Authorization", &auth)],
        b"",
    );
    let builds: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let version = builds["builds"][0]["asset_versions"][0]["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = request(
        srv.addr,
        "POST",
        "localhost",
        "/v1/Services/rate/Builds",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("AssetVersions={version}").as_bytes(),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e["code"], 20429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");

    // Nothing new to build: an unchanged redeploy is not a build and succeeds.
    std::fs::write(p.path().join("assets/index.txt"), b"two").unwrap();
    let (ok, out, err) = remote(&b, &srv, &["deploy", dir, "--service", "rate"]);
    assert!(ok, "{out}{err}");
    assert!(summary(&out).starts_with("unchanged"), "{out}");
}

/// Regression (black-box test): parallel first deploys of one new service (to several new
/// environments) failed with 409 for all but one; "created when missing" now takes the one
/// another client just created.
#[test]
fn parallel_first_deploys_share_the_new_service_and_environments() {
    let b = new_box();
    let srv = Server::start(b.data.path(), &[]);
    let p = project(&[("index.txt", b"parallel")]);
    let dir = p.path().to_str().unwrap().to_string();
    let results: Vec<(bool, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = ["a", "b", "a", "b", "c", "c"]
            .iter()
            .map(|env| {
                let (b, srv, dir) = (&b, &srv, &dir);
                s.spawn(move || {
                    remote(
                        b,
                        srv,
                        &["deploy", dir, "--service", "racy", "--environment", env],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (ok, out, err) in &results {
        assert!(ok, "{out}{err}");
    }
    let (ok, out, _) = remote(&b, &srv, &["list", "environments", "--service", "racy"]);
    assert!(ok);
    assert_eq!(
        out.lines().filter(|l| l.contains("racy-")).count(),
        3,
        "{out}"
    );
}

/// Regression (black-box test): after the previous build was deleted by hand, `rollback`
/// picked it anyway and failed with 404; it now rolls back to the newest earlier build that
/// still exists.
#[test]
fn rollback_skips_builds_deleted_since_they_were_deployed() {
    let b = new_box();
    let srv = Server::start(b.data.path(), &[]);
    let p = project(&[("v.txt", b"one")]);
    let dir = p.path().to_str().unwrap();
    let mut builds = Vec::new();
    for v in [b"one".as_slice(), b"two", b"three"] {
        std::fs::write(p.path().join("assets/v.txt"), v).unwrap();
        let (ok, out, err) = remote(&b, &srv, &["deploy", dir, "--service", "rb", "--json"]);
        assert!(ok, "{out}{err}");
        let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        builds.push(j["build_sid"].as_str().unwrap().to_string());
    }
    let r = request(
        srv.addr,
        "DELETE",
        "localhost",
        &format!("/v1/Services/rb/Builds/{}", builds[1]),
        &[("Authorization", &basic(&b.sid, &b.token))],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let (ok, out, err) = remote(
        &b,
        &srv,
        &["rollback", "--service", "rb", "--environment", "dev"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains(&builds[0]), "{out}");
    let (_, list, _) = remote(&b, &srv, &["list", "environments", "--service", "rb"]);
    assert!(list.contains(&builds[0]), "{list}");
}
