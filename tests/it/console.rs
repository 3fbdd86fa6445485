//! The web console in a real browser: starts `assetd serve` and runs
//! `tests/console/console.test.mjs` (playwright-core driving Debian's `/usr/bin/chromium`)
//! against it. The script signs in, creates a service and a `dev` environment, uploads
//! public, protected and private files, deploys, checks the URLs it copies (200 / 403 then 200
//! signed / 404), edits, rolls back, refuses a file over 25 MB, and fails on any browser
//! console error. Screenshots go to `target/console-screenshots` (or `$SCREENSHOT_DIR`).
//! A second case runs `tests/console/https.test.mjs` against the server over HTTPS.
//!
//! Needs node, `tests/console/node_modules` (`tests/console/install.sh` installs it and
//! Chromium). Without them this test FAILS, unless `ASSETD_SKIP_BROWSER=1` is set, which skips
//! it (for machines that cannot run a browser).

use crate::harness::{Server, credentials};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The browser test may take this long before it is killed.
const TIMEOUT: Duration = Duration::from_secs(300);

const CHROMIUM: &str = "/usr/bin/chromium";

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("console")
}

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    if !console_dir()
        .join("node_modules")
        .join("playwright-core")
        .is_dir()
    {
        return Some("tests/console/node_modules/playwright-core is missing".into());
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing"));
    }
    None
}

/// Panics (or, with `ASSETD_SKIP_BROWSER=1`, says so and returns true) when the browser test
/// cannot run here.
fn skip_browser() -> bool {
    let Some(why) = missing_prerequisite() else {
        return false;
    };
    if std::env::var("ASSETD_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("console browser test skipped (ASSETD_SKIP_BROWSER=1): {why}");
        return true;
    }
    panic!(
        "the console browser test cannot run: {why}. Run tests/console/install.sh, or set ASSETD_SKIP_BROWSER=1 to skip it"
    );
}

#[test]
fn console_in_a_browser() {
    if skip_browser() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let (sid, token) = credentials(data.path());
    let server = Server::start(data.path(), &[]);
    let port = server.addr.port().to_string();
    run_script(
        "console.test.mjs",
        &[
            ("PORT", &port),
            ("ACCOUNT_SID", &sid),
            ("AUTH_TOKEN", &token),
        ],
        "console: ",
    );
    drop(server);
}

/// Issue 8, "the console works over HTTPS unchanged": `tests/console/https.test.mjs` against
/// `serve --tls-self-signed`, Chromium trusting the certificate by its key's fingerprint.
/// Signs in, uploads public/protected/private files, deploys, and checks that every URL the
/// console shows (environment, Copy URL, signed curl, Share link, the API's `url` fields) is
/// https and answers as it should.
#[test]
fn console_in_a_browser_over_https() {
    if skip_browser() {
        return;
    }
    const BASE: &str = "assets.test";
    let data = tempfile::tempdir().unwrap();
    let (sid, token) = credentials(data.path());
    let server = Server::start(data.path(), &["--tls-self-signed", "--base-domain", BASE]);
    let pem = data.path().join("tls/self-signed.pem");
    let port = server.addr.port().to_string();
    run_script(
        "https.test.mjs",
        &[
            ("PORT", &port),
            ("ACCOUNT_SID", &sid),
            ("AUTH_TOKEN", &token),
            ("CA", pem.to_str().unwrap()),
            ("BASE_DOMAIN", BASE),
        ],
        "console https: ",
    );
    drop(server);
}

/// Runs `node SCRIPT` in tests/console with `env` (and `SCREENSHOT_DIR`), within [`TIMEOUT`];
/// asserts it passed and printed `{summary}N passed, 0 failed`.
fn run_script(script: &str, env: &[(&str, &str)], summary: &str) {
    let shots = std::env::var_os("SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join("console-screenshots")
        });
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(console_dir())
        .envs(env.iter().copied())
        .env("SCREENSHOT_DIR", &shots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    // Drain both pipes while waiting, so a chatty run never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    println!("{out}");
    eprintln!("{err}");
    let status = status
        .unwrap_or_else(|| panic!("the browser test ran longer than {TIMEOUT:?}:\n{out}\n{err}"));
    assert!(
        status.success(),
        "the browser test failed ({status}):\n{out}\n{err}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(summary) && l.ends_with(" passed, 0 failed")),
        "no passing summary line:\n{out}"
    );
}
