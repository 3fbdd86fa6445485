//! Issue 11, a newcomer's first hour: CLI conventions and the stumbles it listed, each named
//! after what broke, through the real binary.

use crate::harness::*;
use std::process::Command;

/// A server on a fresh data directory, with its main account's credentials (from the banner).
struct Box_ {
    data: tempfile::TempDir,
    srv: Server,
    sid: String,
    token: String,
}

fn boot() -> Box_ {
    let data = tempfile::tempdir().unwrap();
    let srv = Server::start(data.path(), &[]);
    let var = |name: &str| {
        srv.banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing in {:?}", srv.banner))
            .to_string()
    };
    let (sid, token) = (var("ASSETD_ACCOUNT_SID="), var("ASSETD_AUTH_TOKEN="));
    Box_ {
        data,
        srv,
        sid,
        token,
    }
}

/// The CLI with the box's URL and credentials in the environment.
fn run(b: &Box_, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("ASSETD_URL", format!("http://{}", b.srv.addr))
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

fn arg(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn version_short_help_and_bare_usage() {
    let (ok, out, _) = cli(&["--version"]);
    assert!(ok && out.starts_with("assetd "), "{out}");
    let (ok, out2, _) = cli(&["-V"]);
    assert!(ok && out2 == out, "{out2}");
    for cmd in ["deploy", "list", "serve", "sign", "account", "rollback"] {
        let (ok, out, err) = cli(&[cmd, "-h"]);
        assert!(ok && out.contains("Usage: assetd"), "{cmd}: {out}{err}");
    }
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Commands:"));
}

#[test]
fn a_mistyped_command_gets_did_you_mean() {
    let (ok, _, err) = cli(&["deplyo", "x"]);
    assert!(!ok && err.contains("did you mean `assetd deploy`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (ok, _, err) = cli(&["rolback"]);
    assert!(
        !ok && err.contains("did you mean `assetd rollback`"),
        "{err}"
    );
}

#[test]
fn serve_listen_accepts_a_bare_port_and_colon_port() {
    let data = tempfile::tempdir().unwrap();
    for listen in ["0", ":0"] {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", listen, "--data", arg(data.path())]);
        let srv = Server::spawn(cmd);
        assert!(srv.addr.ip().is_loopback(), "{}", srv.addr);
    }
    let (ok, _, err) = cli(&["serve", "--listen", "nope", "--data", arg(data.path())]);
    assert!(!ok && err.contains("PORT"), "{err}");
}

#[test]
fn account_and_sign_on_a_mistyped_data_dir_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("asset-data");
    let (ok, _, err) = cli(&["account", "--data", arg(&typo)]);
    assert!(
        !ok && err.contains("no assetd data in") && err.contains("asset-data"),
        "{err}"
    );
    let (ok, _, err) = cli(&["sign", "http://x/a", "--data", arg(&typo)]);
    assert!(!ok && err.contains("no assetd data in"), "{err}");
    assert!(
        !typo.exists(),
        "a read-only command created {}",
        typo.display()
    );
}

#[test]
fn sign_reads_assetd_auth_token_and_refuses_an_empty_token() {
    let url = "https://example-1234-dev.twil.io/secret.mp3";
    let out = Command::new(BIN)
        .args(["sign", url])
        .env("ASSETD_AUTH_TOKEN", "12345")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "6Ew+AKYs6d7g/1/eP15P+96Jfus="
    );
    let (ok, out, err) = cli(&["sign", url, "--token", ""]);
    assert!(!ok && out.is_empty() && err.contains("empty"), "{out}{err}");
}

#[test]
fn account_and_sign_work_while_the_server_runs() {
    let b = boot();
    let (ok, out, err) = run(&b, &["account", "--url", &format!("http://{}", b.srv.addr)]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("ASSETD_ACCOUNT_SID={}", b.sid)),
        "{out}"
    );
    assert!(
        out.contains(&format!("ASSETD_AUTH_TOKEN={}", b.token)),
        "{out}"
    );
    // Offline account on the held directory names what works instead.
    let (ok, _, err) = run(&b, &["account", "--data", arg(b.data.path())]);
    assert!(!ok && err.contains("--url"), "{err}");
    let (ok, _, err) = run(&b, &["sign", "http://a/b", "--data", arg(b.data.path())]);
    assert!(
        !ok && err.contains("$ASSETD_AUTH_TOKEN instead of --data"),
        "{err}"
    );
    let (ok, out, _) = run(&b, &["sign", "http://a/b"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        assetd::sign::compute(&b.token, "http://a/b", &[])
    );
}

#[test]
fn serve_on_a_busy_port_still_shows_the_account_it_created() {
    let b = boot();
    let fresh = tempfile::tempdir().unwrap();
    let (ok, out, err) = cli(&[
        "serve",
        "--listen",
        &b.srv.addr.to_string(),
        "--data",
        arg(fresh.path()),
    ]);
    assert!(!ok && err.contains("cannot listen"), "{err}");
    assert!(out.contains("ASSETD_AUTH_TOKEN="), "{out}");
}

#[test]
fn environment_production_is_the_suffixless_environment() {
    let b = boot();
    let p = project(&[("a.txt", b"prod")]);
    let (ok, out, err) = run(
        &b,
        &[
            "deploy",
            arg(p.path()),
            "--service",
            "one",
            "--environment",
            "production",
        ],
    );
    assert!(ok, "{out}{err}");
    let (_, envs, _) = run(&b, &["list", "environments", "--service", "one", "--json"]);
    let envs: serde_json::Value = serde_json::from_str(envs.trim()).unwrap();
    let envs = envs.as_array().unwrap();
    assert_eq!(envs.len(), 1, "{envs:?}");
    assert!(envs[0]["domain_suffix"].is_null(), "{envs:?}");
}

#[test]
fn deploy_flags_override_assetd_toml_and_say_where_the_target_came_from() {
    let b = boot();
    let p = project(&[("a.txt", b"x")]);
    std::fs::write(
        p.path().join(".assetd.toml"),
        "service = \"tomlsvc\"\nenvironment = \"stage\"\n",
    )
    .unwrap();
    let (ok, out, err) = run(&b, &["deploy", arg(p.path())]);
    assert!(ok, "{err}");
    assert!(
        out.contains("service tomlsvc (from .assetd.toml), environment stage (from .assetd.toml)"),
        "{out}"
    );
    let (ok, out, err) = run(&b, &["deploy", arg(p.path()), "--environment", "dev"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("environment dev (from --environment)"),
        "{out}"
    );
    assert!(label_of(&out).ends_with("-dev"), "{out}");
    std::fs::write(
        p.path().join(".assetd.toml"),
        "service = \"tomlsvc\"\nproduction = true\n",
    )
    .unwrap();
    let (ok, out, err) = run(&b, &["deploy", arg(p.path()), "--environment", "qa"]);
    assert!(ok, "{err}");
    assert!(label_of(&out).ends_with("-qa"), "{out}");
}

#[test]
fn deploying_the_assets_folder_as_the_project_is_refused() {
    let b = boot();
    let p = tempfile::tempdir().unwrap();
    let assets = p.path().join("demo/assets");
    std::fs::create_dir_all(assets.join("assets")).unwrap();
    std::fs::write(assets.join("ahoy.txt"), b"Ahoy!").unwrap();
    std::fs::write(assets.join("assets/index.html"), b"<h1>").unwrap();
    let (ok, out, err) = run(&b, &["deploy", arg(&assets), "--service", "demo"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("looks like a project's assets/ folder"),
        "{err}"
    );
    assert!(err.contains("demo"), "{err}");
    let (ok, _, err) = cli(&[
        "import",
        arg(&assets),
        "--service",
        "demo",
        "--data",
        arg(b.data.path()),
    ]);
    assert!(
        !ok && err.contains("looks like a project's assets/ folder"),
        "{err}"
    );
}

#[test]
fn deploy_says_which_live_files_it_drops_and_which_names_it_rewrites() {
    let b = boot();
    let p = project(&[
        ("keep.txt", b"k"),
        ("old.txt", b"o"),
        ("bad name.txt", b"b"),
    ]);
    let (ok, out, err) = run(&b, &["deploy", arg(p.path()), "--service", "drop"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("renamed   bad name.txt -> /bad-name.txt"),
        "{out}"
    );
    std::fs::remove_file(p.path().join("assets/old.txt")).unwrap();
    std::fs::remove_file(p.path().join("assets/bad name.txt")).unwrap();
    let (ok, out, err) = run(
        &b,
        &["deploy", arg(p.path()), "--service", "drop", "--dry-run"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("would stop serving 2 files live on dev: /bad-name.txt, /old.txt"),
        "{out}"
    );
    let (ok, out, err) = run(&b, &["deploy", arg(p.path()), "--service", "drop"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("2 files live on dev are not in this project and will stop being served: /bad-name.txt, /old.txt"),
        "{out}"
    );
    assert!(
        out.contains("1 file, 0 new, 1 unchanged, 2 removed"),
        "{out}"
    );
}

#[test]
fn deploy_of_many_files_prints_a_summary_not_every_url() {
    let b = boot();
    let files: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| {
            (
                format!("f{i:02}.txt"),
                vec![b'a' + (i % 26) as u8; 1000 + i],
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let p = project(&refs);
    let (ok, out, err) = run(&b, &["deploy", arg(p.path()), "--service", "many"]);
    assert!(ok, "{err}");
    assert!(!out.contains("/f00.txt"), "{out}");
    assert!(out.contains("30 files, 30 new"), "{out}");
    assert!(out.contains("KiB"), "binary units: {out}");
    assert!(out.lines().count() < 15, "{out}");
    let (ok, out, _) = run(
        &b,
        &["deploy", arg(p.path()), "--service", "many", "--verbose"],
    );
    assert!(
        ok && out.contains("/f00.txt") && out.contains("/f29.txt"),
        "{out}"
    );
}

#[test]
fn rollback_twice_walks_back_instead_of_toggling() {
    let b = boot();
    let p = project(&[("v.txt", b"one")]);
    let dir = arg(p.path()).to_string();
    let deploy = |content: &[u8]| {
        std::fs::write(p.path().join("assets/v.txt"), content).unwrap();
        let (ok, out, err) = run(&b, &["deploy", &dir, "--service", "walk"]);
        assert!(ok, "{err}");
        out
    };
    let host = format!("{}.localhost", label_of(&deploy(b"one")));
    deploy(b"two");
    deploy(b"three");
    let rollback = || {
        run(
            &b,
            &["rollback", "--service", "walk", "--environment", "dev"],
        )
    };
    let (ok, out, err) = rollback();
    assert!(ok, "{err}");
    assert_eq!(b.srv.get(&host, "/v.txt").body, b"two");
    assert!(out.contains("rolled back dev (http://"), "{out}");
    assert!(
        out.contains("0 added, 1 changed, 0 removed") && out.contains("changed: /v.txt"),
        "{out}"
    );
    let (ok, _, err) = rollback();
    assert!(ok, "{err}");
    assert_eq!(
        b.srv.get(&host, "/v.txt").body,
        b"one",
        "the second rollback toggled back"
    );
    let (ok, _, err) = rollback();
    assert!(!ok && err.contains("no earlier build"), "{err}");
    let (ok, out, err) = run(
        &b,
        &[
            "promote",
            "--service",
            "walk",
            "--from",
            "dev",
            "--to",
            "production",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        j["environment_url"]
            .as_str()
            .unwrap()
            .starts_with("http://walk-"),
        "{j}"
    );
    assert_eq!(j["added"][0], "/v.txt");
}

#[test]
fn list_has_headers_visibility_the_active_build_and_counts() {
    let b = boot();
    let p = project(&[("z.txt", b"z"), ("a.protected.txt", b"a")]);
    let (ok, _, err) = run(&b, &["deploy", arg(p.path()), "--service", "lst"]);
    assert!(ok, "{err}");
    let (ok, out, _) = run(&b, &["list", "assets", "--service", "lst"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("SID") && lines[0].contains("VISIBILITY"),
        "{out}"
    );
    assert!(
        lines[1].contains("protected") && lines[1].contains("/a.txt"),
        "sorted: {out}"
    );
    assert!(
        lines[2].contains("public") && lines[2].contains("/z.txt") && lines[2].contains("dev"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"2 assets"), "{out}");
    let (_, out, _) = run(&b, &["list", "builds", "--service", "lst"]);
    assert!(
        out.contains("* active on dev") && out.ends_with("1 build\n"),
        "{out}"
    );
    let (_, out, _) = run(&b, &["list", "services", "--json"]);
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j[0]["unique_name"], "lst");
}

#[test]
fn server_options_are_shared_and_listed_in_every_remote_commands_help() {
    for cmd in [
        "deploy", "list", "promote", "rollback", "backup", "verify", "gc", "account",
    ] {
        let (ok, out, err) = cli(&[cmd, "--help"]);
        assert!(ok, "{cmd}: {err}");
        for flag in ["--url", "--account-sid", "--auth-token"] {
            let listed = out
                .lines()
                .filter(|l| l.starts_with(&format!("  {flag} ")))
                .count();
            assert_eq!(listed, 1, "{cmd} --help lists {flag} once:\n{out}");
        }
    }
    let (ok, _, err) = cli(&[
        "list",
        "services",
        "--url",
        "http://127.0.0.1:1",
        "--url",
        "x",
    ]);
    assert!(!ok && err.contains("--url was given twice"), "{err}");
    let (ok, _, err) = cli(&["list", "services", "--auth-token"]);
    assert!(!ok && err.contains("--auth-token needs a value"), "{err}");
}

#[test]
fn serve_prints_the_path_style_url_first_on_localhost() {
    // Regression (issue 11): only curl and browsers resolve *.localhost; Python, wget and
    // `assetd --url` need the path-style URL, which the banner gave last.
    let data = tempfile::tempdir().unwrap();
    let p = project(&[("a.txt", b"a")]);
    let label = label_of(&import(p.path(), data.path(), "paths", &[]));
    let srv = Server::start(data.path(), &[]);
    let line = srv
        .banner
        .iter()
        .find(|l| l.starts_with("environment "))
        .unwrap_or_else(|| panic!("{:?}", srv.banner));
    let path_style = format!("environment http://{}/e/{label}/", srv.addr);
    assert!(line.starts_with(&path_style), "{line}");
    assert!(
        line.contains(&format!("http://{label}.localhost:")),
        "{line}"
    );
    assert_eq!(
        srv.get("127.0.0.1", &format!("/e/{label}/a.txt")).body,
        b"a"
    );
}

#[test]
fn verify_and_gc_print_json() {
    let data = tempfile::tempdir().unwrap();
    let p = project(&[("a.txt", b"a")]);
    import(p.path(), data.path(), "js", &[]);
    let d = data.path().to_str().unwrap();
    let (ok, out, err) = cli(&["verify", "--data", d, "--json"]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["ok"], true, "{j}");
    let (ok, out, err) = cli(&["gc", "--data", d, "--json"]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["builds_deleted"], 0, "{j}");
}
