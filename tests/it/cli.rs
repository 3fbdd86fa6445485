//! The command line: import rules and refusals, dedup, account, sign.

use crate::harness::*;

fn data_arg(d: &tempfile::TempDir) -> String {
    d.path().to_str().unwrap().to_string()
}

#[test]
fn import_prints_urls_and_counts_new_bytes_and_dedups() {
    let same = b"the same bytes twice".to_vec();
    let p = project(&[
        ("a.txt", &same),
        ("copy/a.txt", &same),
        ("song.protected.mp3", b"mp3"),
        ("conf.private.json", b"{}"),
        (".DS_Store", b"junk"),
        (".env", b"SECRET=1"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let out = import(p.path(), data.path(), "dedup", &[]);
    let label = label_of(&out);
    assert!(
        label.starts_with("dedup-") && label.ends_with("-dev"),
        "{label}"
    );
    assert!(
        out.contains(&format!("public    http://{label}.localhost:8080/a.txt")),
        "{out}"
    );
    assert!(
        out.contains("protected http://") && out.contains("/song.mp3"),
        "{out}"
    );
    assert!(out.contains("/conf.json (private"), "{out}");
    assert!(out.contains("skipped   .env"), "{out}");
    // Two files with the same bytes are stored once.
    assert!(out.contains("4 files, 3 new"), "{out}");

    // Re-importing the unchanged project stores nothing new.
    let again = import(p.path(), data.path(), "dedup", &[]);
    assert!(again.contains("4 files, 0 new (0 bytes new)"), "{again}");
    assert_eq!(label_of(&again), label);

    // --production deploys to the environment without suffix.
    let prod = import(p.path(), data.path(), "dedup", &["--production"]);
    let prod_label = label_of(&prod);
    assert_eq!(format!("{prod_label}-dev"), label);
}

#[test]
fn import_refuses_broken_projects_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let good = project(&[("keep.txt", b"v1")]);
    let label = label_of(&import(good.path(), data.path(), "strict", &[]));

    let too_big_private = vec![0u8; 10 * 1024 * 1024 + 1];
    let too_big_public = vec![0u8; 25 * 1024 * 1024 + 1];
    let many_private: Vec<(String, Vec<u8>)> = (0..51)
        .map(|i| (format!("p{i}.private.txt"), vec![b'x']))
        .collect();
    type Files = Vec<(String, Vec<u8>)>;
    let cases: Vec<(Files, &str)> = vec![
        (
            vec![
                ("keep.txt".into(), b"v2".to_vec()),
                ("big.private.bin".into(), too_big_private),
            ],
            "10 MB",
        ),
        (vec![("huge.mp3".into(), too_big_public)], "25 MB"),
        (vec![("what?.txt".into(), b"x".to_vec())], "what?.txt"),
        (
            vec![
                ("a.txt".into(), b"1".to_vec()),
                ("a.public.txt".into(), b"2".to_vec()),
            ],
            "both map",
        ),
        (many_private, "at most 50 private"),
        (
            vec![(format!("{}x.txt", "dirname/".repeat(32)), b"x".to_vec())],
            "limit is 255",
        ),
    ];
    for (files, expect) in cases {
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let p = project(&refs);
        let (ok, out, err) = cli(&[
            "import",
            p.path().to_str().unwrap(),
            "--service",
            "strict",
            "--data",
            &data_arg(&data),
        ]);
        assert!(!ok, "import should fail for {expect}: {out}");
        assert!(
            err.contains(expect),
            "error should mention {expect:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    }
    // An empty project and a directory without assets/ are refused too.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("assets")).unwrap();
    let (ok, _, err) = cli(&[
        "import",
        empty.path().to_str().unwrap(),
        "--service",
        "strict",
        "--data",
        &data_arg(&data),
    ]);
    assert!(!ok && err.contains("no asset files"), "{err}");
    let bare = tempfile::tempdir().unwrap();
    let (ok, _, err) = cli(&[
        "import",
        bare.path().to_str().unwrap(),
        "--service",
        "strict",
        "--data",
        &data_arg(&data),
    ]);
    assert!(
        !ok && err.contains("Invalid Serverless Project Structure"),
        "{err}"
    );
    let (ok, _, err) = cli(&[
        "import",
        good.path().to_str().unwrap(),
        "--service",
        "bad_name",
        "--data",
        &data_arg(&data),
    ]);
    assert!(!ok && err.contains("service name"), "{err}");

    // The environment still serves v1.
    let srv = Server::start(data.path(), &[]);
    assert_eq!(
        srv.get(&format!("{label}.localhost"), "/keep.txt").body,
        b"v1"
    );
}

#[test]
fn account_is_stable_and_sign_matches_the_library() {
    let data = tempfile::tempdir().unwrap();
    drop(Server::start(data.path(), &[]));
    let (ok, first, _) = cli(&["account", "--data", &data_arg(&data)]);
    assert!(ok);
    let (_, second, _) = cli(&["account", "--data", &data_arg(&data)]);
    assert_eq!(first, second);
    let sid = first
        .lines()
        .find_map(|l| l.strip_prefix("ASSETD_ACCOUNT_SID="))
        .unwrap();
    assert!(sid.starts_with("AC") && sid.len() == 34);
    let token = first
        .lines()
        .find_map(|l| l.strip_prefix("ASSETD_AUTH_TOKEN="))
        .unwrap();

    let url = "https://example-1234-dev.twil.io/secret.mp3";
    let (ok, out, _) = cli(&["sign", url, "--token", "12345"]);
    assert!(ok);
    assert_eq!(out.trim(), "6Ew+AKYs6d7g/1/eP15P+96Jfus=");
    let (ok, out, _) = cli(&["sign", url, "--data", &data_arg(&data)]);
    assert!(ok);
    assert_eq!(out.trim(), assetd::sign::compute(token, url, &[]));
    let (ok, out, _) = cli(&[
        "sign",
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        "--token",
        "12345",
        "--param",
        "CallSid=CA1234567890ABCDE",
        "--param",
        "Caller=+14158675309",
        "--param",
        "Digits=1234",
        "--param",
        "From=+14158675309",
        "--param",
        "To=+18005551212",
    ]);
    assert!(ok);
    assert_eq!(out.trim(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    let out = std::process::Command::new(BIN)
        .args(["sign", url])
        .env_remove("ASSETD_AUTH_TOKEN")
        .env_remove("TWILIO_AUTH_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--token"), "{err}");
    let (ok, _, err) = cli(&["sign", "ftp://x/y", "--token", "1"]);
    assert!(!ok && err.contains("not an http"), "{err}");
}

#[test]
fn a_second_process_on_the_same_data_gets_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let _srv = Server::start(data.path(), &[]);
    let (ok, _, err) = cli(&["account", "--data", &data_arg(&data)]);
    assert!(!ok);
    assert!(
        err.contains("in use by a running assetd serve") && err.contains("account --url"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn serve_prints_credentials_on_first_start_only() {
    let data = tempfile::tempdir().unwrap();
    let first = Server::start(data.path(), &[]);
    let banner = first.banner.join("\n");
    assert!(banner.contains("ASSETD_AUTH_TOKEN="), "{banner}");
    assert!(banner.contains("no environments yet"), "{banner}");
    drop(first);
    let p = project(&[("a.txt", b"a")]);
    let label = label_of(&import(p.path(), data.path(), "banner", &[]));
    let second = Server::start(data.path(), &[]);
    let banner = second.banner.join("\n");
    assert!(!banner.contains("ASSETD_AUTH_TOKEN="), "{banner}");
    assert!(
        banner.contains(&format!("http://{label}.localhost:")),
        "{banner}"
    );
}

/// Regressions from a black-box test of the CLI: a mistyped `--data` looked like an empty
/// store (`backup` wrote an "ok" empty backup), `--environment` with `--production` silently
/// meant production, and argh's parse errors spanned several lines.
#[test]
fn operator_commands_on_a_missing_store_and_bad_flags_fail_in_one_line() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("typo");
    let missing = missing.to_str().unwrap();
    let backup = parent.path().join("b.assetd-backup");
    for args in [
        vec!["verify", "--data", missing],
        vec!["gc", "--data", missing],
        vec!["backup", backup.to_str().unwrap(), "--data", missing],
    ] {
        let (ok, out, err) = cli(&args);
        assert!(!ok, "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("no assetd data in"), "{args:?}: {err}");
    }
    assert!(
        !std::path::Path::new(missing).exists(),
        "nothing was created"
    );
    assert!(!backup.exists(), "no backup file was written");

    let p = project(&[("a.txt", b"a")]);
    let data = tempfile::tempdir().unwrap();
    let (ok, _, err) = cli(&[
        "import",
        p.path().to_str().unwrap(),
        "--service",
        "both",
        "--environment",
        "stage",
        "--production",
        "--data",
        &data_arg(&data),
    ]);
    assert!(!ok);
    assert!(err.contains("alternatives"), "{err}");

    for args in [
        vec!["serve", "--listen", "bogus"],
        vec!["gc", "--max-age-days", "-1"],
        vec!["list"],
        vec!["bogus"],
    ] {
        let (ok, _, err) = cli(&args);
        assert!(!ok, "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("assetd: "), "{args:?}: {err}");
    }
    let (ok, out, _) = cli(&["deploy", "--help"]);
    assert!(ok && out.contains("Usage: assetd deploy"), "{out}");
}

/// Regression (black-box test): `assetd list … | head -1` panicked with a backtrace when the
/// reader went away; it now exits quietly with the status a SIGPIPE death gives (141).
#[test]
fn output_to_a_closed_pipe_exits_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(BIN)
        .args(["sign", "http://example.com/a", "--token", "t"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Regression (found by running the README's tour): `import` on an empty data directory
/// created the main account silently, so `serve` never printed credentials ("first start"
/// was not the first use). The first use prints them, whichever command it is.
#[test]
fn the_first_import_prints_the_new_main_account() {
    let p = project(&[("a.txt", b"a")]);
    let data = tempfile::tempdir().unwrap();
    let first = import(p.path(), data.path(), "first", &[]);
    assert!(first.contains("created the main account"), "{first}");
    let (sid, token) = credentials(data.path());
    assert!(
        first.contains(&format!("ASSETD_ACCOUNT_SID={sid}")),
        "{first}"
    );
    assert!(
        first.contains(&format!("ASSETD_AUTH_TOKEN={token}")),
        "{first}"
    );
    let again = import(p.path(), data.path(), "first", &[]);
    assert!(!again.contains("created the main account"), "{again}");
}
