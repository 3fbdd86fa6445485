//! Twilio's Serverless Toolkit against assetd, unmodified (issue 9): `twilio-run` 5.0.1 with
//! `@twilio-labs/serverless-api` 5.7.0 (pinned in `tests/toolkit/package-lock.json`) talks to
//! `https://serverless.twilio.com` through `assetd toolkit-proxy`, which forwards to a real
//! server on port 0. The toolkit deploys a project with public, protected, private assets and
//! `assets/index.html`, lists, promotes to production, sets and gets a variable and reads
//! logs; every asset URL is then checked on every environment. A project with a Function gets
//! the one-line refusal.
//!
//! A second case deploys the same way to an assetd serving HTTPS (issue 8), the proxy
//! trusting its self-signed certificate with `--ca-cert`.
//!
//! Needs node and `tests/toolkit/node_modules` (`tests/toolkit/install.sh`). Without them
//! the two `toolkit_deploys_…` tests FAIL, unless `ASSETD_SKIP_TOOLKIT=1` is set, which skips
//! them. The proxy's own refusals and its relay are tested without node.

use crate::harness::{BIN, Server, credentials, request};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Any one toolkit command may take this long before it is killed.
const TIMEOUT: Duration = Duration::from_secs(180);

fn toolkit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("toolkit")
}

fn twilio_run() -> PathBuf {
    toolkit_dir().join("node_modules/twilio-run/bin/twilio-run.js")
}

/// Why the toolkit test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    for (package, version) in [
        ("twilio-run", "5.0.1"),
        ("@twilio-labs/serverless-api", "5.7.0"),
    ] {
        let manifest = toolkit_dir()
            .join("node_modules")
            .join(package)
            .join("package.json");
        let found = std::fs::read(&manifest)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["version"].as_str().map(str::to_string));
        if found.as_deref() != Some(version) {
            return Some(format!(
                "tests/toolkit/node_modules/{package} {version} is missing (found {found:?})"
            ));
        }
    }
    None
}

/// `assetd toolkit-proxy --listen 127.0.0.1:0 --url URL --dir DIR`, without
/// `ASSETD_CA_CERT` from the caller's environment.
fn proxy_command(url: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "toolkit-proxy",
        "--listen",
        "127.0.0.1:0",
        "--url",
        url,
        "--dir",
    ])
    .arg(dir)
    .env_remove("ASSETD_CA_CERT");
    cmd
}

/// A running `assetd toolkit-proxy`, killed on drop; its stderr is collected.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    ca_cert: String,
    stderr: Arc<Mutex<String>>,
}

impl Proxy {
    /// Starts the proxy for `server` on `127.0.0.1:0` with its CA in `dir`, and reads the
    /// port and CA path back from the `export …` line it prints.
    fn start(server: SocketAddr, dir: &Path) -> Proxy {
        Proxy::spawn(proxy_command(&format!("http://{server}"), dir))
    }

    /// Runs a prepared `toolkit-proxy` command and reads its `export …` line.
    fn spawn(mut cmd: Command) -> Proxy {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn assetd toolkit-proxy");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let export = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("export "))
            .unwrap_or_else(|| panic!("no export line; stderr: {}", stderr.lock().unwrap()));
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let value = |name: &str| {
            export
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} missing in {export:?}"))
                .to_string()
        };
        let proxy_url = value("HTTP_PROXY=");
        let addr = proxy_url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bad HTTP_PROXY in {export:?}"));
        Proxy {
            child,
            addr,
            ca_cert: value("NODE_EXTRA_CA_CERTS="),
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one toolkit command did.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts success and that nothing printed looks like an error or a warning.
    fn clean(self, what: &str) -> Run {
        assert!(self.ok, "{what} failed:\n{}", self.all());
        for line in self.all().lines() {
            let l = line.to_ascii_lowercase();
            assert!(
                !(l.contains("error") || l.contains("warn") || line.contains('✖')),
                "{what} printed {line:?}:\n{}",
                self.all()
            );
        }
        self
    }
}

/// Runs `twilio-run ARGS` in `project` through `proxy`, in a clean environment (its own
/// HOME, no other proxy or Twilio settings), with a timeout and no sleeps.
fn toolkit(proxy: &Proxy, home: &Path, project: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("node");
    cmd.arg(twilio_run())
        .args(args)
        .current_dir(project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("HTTP_PROXY", format!("http://{}", proxy.addr))
        .env("NODE_EXTRA_CA_CERTS", &proxy.ca_cert)
        .env("FORCE_COLOR", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start node");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait for twilio-run"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "twilio-run {args:?} ran longer than {TIMEOUT:?}; proxy: {}",
                proxy.stderr()
            );
        }
    };
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes a toolkit project: `package.json`, `.env` with the credentials, and `files`.
fn write_project(dir: &Path, name: &str, sid: &str, token: &str, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        format!(r#"{{"name": "{name}", "version": "1.0.0", "private": true, "dependencies": {{"@twilio/runtime-handler": "1.3.0"}}}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        format!("ACCOUNT_SID={sid}\nAUTH_TOKEN={token}\n"),
    )
    .unwrap();
    for (rel, bytes) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// The JSON object in a `--output-format json` output.
fn json_of(out: &str) -> Value {
    let start = out.find('{').unwrap_or_else(|| panic!("no JSON in {out}"));
    serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A GET through the server's API with Basic auth.
fn api_get(server: SocketAddr, auth: &str, target: &str) -> Value {
    let r = request(
        server,
        "GET",
        &server.to_string(),
        target,
        &[("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

/// Whether the toolkit tests should be skipped (`ASSETD_SKIP_TOOLKIT=1` with a missing
/// prerequisite); panics when a prerequisite is missing without it.
fn skip_toolkit() -> bool {
    let Some(why) = missing_prerequisite() else {
        return false;
    };
    if std::env::var("ASSETD_SKIP_TOOLKIT").as_deref() == Ok("1") {
        eprintln!("toolkit test skipped (ASSETD_SKIP_TOOLKIT=1): {why}");
        return true;
    }
    panic!(
        "the Serverless Toolkit test cannot run: {why}. Run tests/toolkit/install.sh, or set ASSETD_SKIP_TOOLKIT=1 to skip it"
    );
}

#[test]
fn toolkit_deploys_unmodified_through_the_proxy() {
    if skip_toolkit() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (sid, token) = credentials(&data);
    let server = Server::start(&data, &[]);
    let proxy = Proxy::start(server.addr, &tmp.path().join("ca"));
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let auth = crate::harness::basic(&sid, &token);

    let public = b"Ahoy from the toolkit!\n".to_vec();
    let protected = b"for Twilio only\n".to_vec();
    let private = b"{\"pin\": 1}\n".to_vec();
    let index = b"<h1>home</h1>\n".to_vec();
    let project = tmp.path().join("tkdemo");
    write_project(
        &project,
        "tkdemo",
        &sid,
        &token,
        &[
            ("assets/ahoy.txt", &public),
            ("assets/secret.protected.txt", &protected),
            ("assets/config.private.json", &private),
            ("assets/assets/index.html", &index),
        ],
    );

    // Deploy: runtime and URLs in the JSON output, nothing that reads as an error.
    let deploy = toolkit(
        &proxy,
        &home,
        &project,
        &["deploy", "--output-format", "json"],
    )
    .clean("twilio-run deploy");
    let result = json_of(&deploy.stdout);
    assert_eq!(result["runtime"], "node22", "{result}");
    assert_eq!(result["environmentSuffix"], "dev", "{result}");
    let dev_domain = result["domain"].as_str().unwrap().to_string();
    assert!(dev_domain.ends_with("-dev.localhost"), "{result}");
    let mut printed: Vec<(String, String, String)> = result["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["access"].as_str().unwrap().to_string(),
                a["url"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    printed.sort();
    let url = |p: &str| format!("https://{dev_domain}{p}");
    assert_eq!(
        printed,
        vec![
            ("/ahoy.txt".into(), "public".into(), url("/ahoy.txt")),
            (
                "/assets/index.html".into(),
                "public".into(),
                url("/assets/index.html")
            ),
            ("/config.json".into(), "private".into(), url("/config.json")),
            ("/secret.txt".into(), "protected".into(), url("/secret.txt")),
        ],
        "{result}"
    );
    let service = result["serviceSid"].as_str().unwrap().to_string();
    let build = result["buildSid"].as_str().unwrap().to_string();

    // List: environments, builds and the dev environment's assets.
    let list = toolkit(
        &proxy,
        &home,
        &project,
        &["list", "environments,builds,assets", "--environment", "dev"],
    )
    .clean("twilio-run list");
    for needle in [
        dev_domain.as_str(),
        build.as_str(),
        "completed",
        "/ahoy.txt",
        "/secret.txt",
        "/config.json",
        "/assets/index.html",
    ] {
        assert!(
            list.stdout.contains(needle),
            "list lacks {needle}:\n{}",
            list.all()
        );
    }

    // Promote dev to production (created on the way, as Twilio's toolkit asks).
    let promote = toolkit(
        &proxy,
        &home,
        &project,
        &[
            "promote",
            "--source-environment",
            "dev",
            "--production",
            "--create-environment",
        ],
    )
    .clean("twilio-run promote");
    assert!(
        promote
            .all()
            .contains("Activated new build from dev on production"),
        "{}",
        promote.all()
    );

    // Variables and logs.
    toolkit(
        &proxy,
        &home,
        &project,
        &[
            "env",
            "set",
            "--key",
            "GREETING",
            "--value",
            "ahoy",
            "--environment",
            "dev",
        ],
    )
    .clean("twilio-run env set");
    let got = toolkit(
        &proxy,
        &home,
        &project,
        &["env", "get", "--key", "GREETING", "--environment", "dev"],
    )
    .clean("twilio-run env get");
    assert_eq!(got.stdout.trim(), "ahoy", "{}", got.all());
    toolkit(&proxy, &home, &project, &["logs", "--environment", "dev"]).clean("twilio-run logs");
    // Nothing the toolkit did went wrong on the way: the proxy logged no refused request.
    assert_eq!(proxy.stderr(), "", "the proxy logged errors");

    // Every asset URL on every environment, fetched from the server itself.
    let envs = api_get(
        server.addr,
        &auth,
        &format!("/v1/Services/{service}/Environments"),
    );
    let envs = envs["environments"].as_array().unwrap();
    let mut domains: Vec<&str> = envs
        .iter()
        .map(|e| e["domain_name"].as_str().unwrap())
        .collect();
    domains.sort();
    let prod_domain = dev_domain.replace("-dev.localhost", ".localhost");
    assert_eq!(domains, vec![dev_domain.as_str(), prod_domain.as_str()]);
    let build_of = |d: &str| {
        envs.iter()
            .find(|e| e["domain_name"] == d)
            .map(|e| e["build_sid"].clone())
            .unwrap()
    };
    assert_eq!(build_of(&prod_domain), build_of(&dev_domain));
    for domain in [&dev_domain, &prod_domain] {
        let host = format!("{domain}:{}", server.addr.port());
        let get = |path: &str, headers: &[(&str, &str)]| {
            request(server.addr, "GET", &host, path, headers, b"")
        };
        for (path, want) in [
            ("/ahoy.txt", &public),
            ("/assets/index.html", &index),
            ("/", &index),
        ] {
            let r = get(path, &[]);
            assert_eq!(r.status, 200, "{host}{path}");
            assert_eq!(r.body, *want, "{host}{path} not byte-exact");
        }
        assert_eq!(get("/secret.txt", &[]).status, 403, "{host}/secret.txt");
        let signed = format!("http://{host}/secret.txt");
        let signature = assetd::sign::compute(&token, &signed, &[]);
        let r = get("/secret.txt", &[("X-Twilio-Signature", &signature)]);
        assert_eq!((r.status, r.body), (200, protected.clone()), "{signed}");
        for path in ["/config.json", "/config.private.json"] {
            assert_eq!(get(path, &[]).status, 404, "{host}{path}");
        }
    }

    // A project with a Function: the toolkit fails with its own wording, and the proxy shows
    // assetd's one-line reason, which names the flag that works.
    let fproject = tmp.path().join("tkfunctions");
    write_project(
        &fproject,
        "tkfunctions",
        &sid,
        &token,
        &[
            (
                "functions/hello.js",
                b"exports.handler = (c, e, cb) => cb(null, 'hi');\n",
            ),
            ("assets/a.txt", b"a\n"),
        ],
    );
    let refused = toolkit(&proxy, &home, &fproject, &["deploy"]);
    assert!(!refused.ok, "a Function deployed:\n{}", refused.all());
    assert!(
        refused
            .all()
            .contains("Failed to create \"/hello\" function"),
        "{}",
        refused.all()
    );
    let log = proxy.stderr();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("/Functions → 400 20001: assetd hosts assets only")
            && lines[0].contains("twilio-run deploy --no-functions"),
        "{log}"
    );
    // The flag it names works (the failed attempt had created the service already, as it
    // does at Twilio, so the toolkit needs its own flag to deploy to it).
    let without = toolkit(
        &proxy,
        &home,
        &fproject,
        &[
            "deploy",
            "--no-functions",
            "--override-existing-project",
            "--output-format",
            "json",
        ],
    )
    .clean("twilio-run deploy --no-functions");
    let domain = json_of(&without.stdout)["domain"]
        .as_str()
        .unwrap()
        .to_string();
    let r = request(
        server.addr,
        "GET",
        &format!("{domain}:{}", server.addr.port()),
        "/a.txt",
        &[],
        b"",
    );
    assert_eq!((r.status, r.text()), (200, "a\n".to_string()));
    drop(proxy);
    drop(server);
}

/// Issue 8: the proxy forwards to an assetd serving HTTPS (`--tls-self-signed`), trusting
/// its certificate through `--ca-cert` (or `ASSETD_CA_CERT`); without it the proxy refuses to
/// start, in one line naming the host and the fix. `twilio-run` deploys, lists and promotes
/// through it, and every asset is then checked over https with the server's certificate.
#[test]
fn toolkit_deploys_through_the_proxy_to_an_https_server() {
    if skip_toolkit() {
        return;
    }
    const BASE: &str = "assets.test";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (sid, token) = credentials(&data);
    let server = Server::start(&data, &["--tls-self-signed", "--base-domain", BASE]);
    let pem = data.join("tls/self-signed.pem");
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let ca_dir = tmp.path().join("ca");

    // Not trusted: one line, naming the host and the flag that fixes it.
    let out = proxy_command(&url, &ca_dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without --ca-cert: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot verify the TLS certificate of 127.0.0.1")
            && err.contains("--ca-cert")
            && err.contains("ASSETD_CA_CERT"),
        "{err}"
    );
    // An https:// URL for a server that speaks plain http: one line saying so.
    let plain = Server::start(&tmp.path().join("plain"), &[]);
    let mut cmd = proxy_command(&format!("https://{}", plain.addr), &ca_dir);
    let out = cmd.arg("--ca-cert").arg(&pem).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no TLS with 127.0.0.1") && err.contains("--url http://"),
        "{err}"
    );
    drop(plain);
    // ASSETD_CA_CERT does what --ca-cert does.
    let mut by_env = proxy_command(&url, &ca_dir);
    by_env.env("ASSETD_CA_CERT", &pem);
    drop(Proxy::spawn(by_env));

    let mut cmd = proxy_command(&url, &ca_dir);
    cmd.arg("--ca-cert").arg(&pem);
    let proxy = Proxy::spawn(cmd);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let public = b"Ahoy over TLS\n".to_vec();
    let protected = b"signed over https only\n".to_vec();
    let project = tmp.path().join("tksecure");
    write_project(
        &project,
        "tksecure",
        &sid,
        &token,
        &[
            ("assets/ahoy.txt", &public),
            ("assets/secret.protected.txt", &protected),
            ("assets/config.private.json", b"{}"),
        ],
    );
    let deploy = toolkit(
        &proxy,
        &home,
        &project,
        &["deploy", "--output-format", "json"],
    )
    .clean("twilio-run deploy (https server)");
    let result = json_of(&deploy.stdout);
    let dev_domain = result["domain"].as_str().unwrap().to_string();
    assert!(dev_domain.ends_with(&format!("-dev.{BASE}")), "{result}");
    for a in result["assets"].as_array().unwrap() {
        let printed = a["url"].as_str().unwrap();
        assert!(
            printed.starts_with(&format!("https://{dev_domain}/")),
            "{result}"
        );
    }
    let list = toolkit(
        &proxy,
        &home,
        &project,
        &["list", "environments,builds", "--environment", "dev"],
    )
    .clean("twilio-run list (https server)");
    assert!(list.stdout.contains(&dev_domain), "{}", list.all());
    toolkit(
        &proxy,
        &home,
        &project,
        &[
            "promote",
            "--source-environment",
            "dev",
            "--production",
            "--create-environment",
        ],
    )
    .clean("twilio-run promote (https server)");
    assert_eq!(proxy.stderr(), "", "the proxy logged errors");

    // The assets over https, verified with the server's certificate for each name.
    let prod_domain = dev_domain.replace(&format!("-dev.{BASE}"), &format!(".{BASE}"));
    for domain in [&dev_domain, &prod_domain] {
        let host = format!("{domain}:{}", server.addr.port());
        let get = |path: &str, headers: &[(&str, &str)]| {
            crate::harness::https_request(server.addr, &pem, "GET", &host, path, headers, b"")
        };
        let r = get("/ahoy.txt", &[]);
        assert_eq!(
            (r.status, &r.body),
            (200, &public),
            "https://{host}/ahoy.txt"
        );
        assert_eq!(get("/secret.txt", &[]).status, 403, "{host}/secret.txt");
        let signed = format!("https://{host}/secret.txt");
        let signature = assetd::sign::compute(&token, &signed, &[]);
        let r = get("/secret.txt", &[("X-Twilio-Signature", &signature)]);
        assert_eq!((r.status, &r.body), (200, &protected), "{signed}");
        let over_http = assetd::sign::compute(&token, &format!("http://{host}/secret.txt"), &[]);
        let r = get("/secret.txt", &[("X-Twilio-Signature", &over_http)]);
        assert_eq!(r.status, 403, "an http:// signature on https");
        assert_eq!(get("/config.json", &[]).status, 404, "{host}/config.json");
    }
    drop(proxy);
    drop(server);
}

/// Sends `head` to the proxy and returns its whole answer (it closes after a refusal).
fn proxy_answer(addr: SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn toolkit_proxy_refuses_other_hosts_and_keeps_its_ca_key_private() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[]);
    let ca_dir = tmp.path().join("ca");
    let proxy = Proxy::start(server.addr, &ca_dir);
    let key = ca_dir.join("ca-key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", key.display());
    assert_eq!(Path::new(&proxy.ca_cert), ca_dir.join("ca.pem"));

    for target in [
        "api.twilio.com:443",
        "serverless.twilio.com:80",
        "evil.serverless.twilio.com:443",
        &server.addr.to_string(),
        &format!("localhost:{}", server.addr.port()),
    ] {
        let answer = proxy_answer(
            proxy.addr,
            &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 403 "), "{target}: {answer}");
        assert!(answer.contains("serverless.twilio.com:443"), "{answer}");
    }
    // Plain proxying is not offered at all.
    let target = format!("http://{}/healthz", server.addr);
    let answer = proxy_answer(
        proxy.addr,
        &format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    // An allowed host gets its tunnel (the TLS handshake is the toolkit test's business).
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"CONNECT serverless-upload.twilio.com:443 HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200 "), "{line}");
    drop(s);
    drop(proxy);

    // A second start reuses the CA; a non-loopback listen address is refused in one line.
    let cert = std::fs::read(ca_dir.join("ca.pem")).unwrap();
    let again = Proxy::start(server.addr, &ca_dir);
    assert_eq!(std::fs::read(ca_dir.join("ca.pem")).unwrap(), cert);
    drop(again);
    // Plain http to a public address: the same one-line warning as the CLI's (the proxy
    // forwards the toolkit's credentials).
    let public = Proxy::spawn(proxy_command("http://203.0.113.7:8080", &ca_dir));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !public.stderr().contains("travels in clear") {
        assert!(std::time::Instant::now() < deadline, "no warning");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(public.stderr().lines().count(), 1, "{}", public.stderr());
    drop(public);
    let out = Command::new(BIN)
        .args(["toolkit-proxy", "--listen", "0.0.0.0:0", "--dir"])
        .arg(&ca_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("loopback"), "{err}");
}

/// Inside a tunnel: the server's absolute URLs come back on the Twilio host (so the toolkit's
/// paging goes through the proxy again), bodies are re-framed, and the tunnel is kept alive
/// between requests; towards an http and an https server. Runs the relay over plain TCP (the
/// toolkit's TLS side is the toolkit test's).
#[test]
fn tunnelled_answers_name_the_twilio_host_so_paging_returns_through_the_proxy() {
    use assetd::toolkit_proxy::Upstream;
    for https in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let (sid, token) = credentials(&data);
        let extra: &[&str] = if https { &["--tls-self-signed"] } else { &[] };
        let server = Server::start(&data, extra);
        let pem = data.join("tls/self-signed.pem");
        let auth = crate::harness::basic(&sid, &token);
        let authority = server.addr.to_string();
        for name in ["one", "two"] {
            let body = format!("UniqueName={name}&FriendlyName={name}");
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ];
            let r = if https {
                let path = "/v1/Services";
                crate::harness::https_request(
                    server.addr,
                    &pem,
                    "POST",
                    &authority,
                    path,
                    &headers,
                    body.as_bytes(),
                )
            } else {
                request(
                    server.addr,
                    "POST",
                    &authority,
                    "/v1/Services",
                    &headers,
                    body.as_bytes(),
                )
            };
            assert_eq!(r.status, 201, "{}", r.text());
        }
        let origin = format!("{}://{authority}", if https { "https" } else { "http" });
        let upstream = Upstream::parse(&origin, https.then_some(pem.as_path())).unwrap();
        assert_eq!(upstream.origin, origin);
        relay_rewrites_the_origin(upstream, &auth);
    }
}

/// Two pages of services through `forward::serve` towards `upstream`, on one tunnel.
fn relay_rewrites_the_origin(upstream: assetd::toolkit_proxy::Upstream, auth: &str) {
    use assetd::toolkit_proxy::forward;
    let origin = upstream.origin.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        forward::serve(s, "serverless.twilio.com", &upstream)
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let twilio = "https://serverless.twilio.com";

    // Keep-alive: two requests on one tunnel; the second asks to close it.
    for (i, target) in ["/v1/Services?PageSize=1", "/v1/Services?PageSize=1&Page=1"]
        .iter()
        .enumerate()
    {
        let close = if i == 1 { "Connection: close\r\n" } else { "" };
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: serverless.twilio.com\r\nAuthorization: {auth}\r\n{close}\r\n"
        )
        .unwrap();
        let resp = crate::harness::read_response(&mut r, false);
        assert_eq!(resp.status, 200, "{origin}: {}", resp.text());
        let text = resp.text();
        assert!(
            !text.contains(&origin),
            "the server's origin leaked: {text}"
        );
        let page: Value = serde_json::from_str(&text).unwrap();
        let meta = &page["meta"];
        assert!(
            meta["url"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{twilio}/v1/Services?")),
            "{meta}"
        );
        assert!(
            page["services"][0]["url"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{twilio}/v1/Services/ZS")),
            "{page}"
        );
        if i == 0 {
            let next = meta["next_page_url"].as_str().unwrap();
            assert!(
                next.starts_with(&format!("{twilio}/v1/Services?")),
                "{meta}"
            );
        }
    }
    relay.join().unwrap().unwrap();
}

/// A request the relay cannot forward because the https server's certificate does not verify
/// (here: no `--ca-cert`, so the public roots) is answered 502 with the one-line reason naming
/// the host and the fix, in Twilio's error shape; nothing reaches the server.
#[test]
fn the_relay_answers_502_naming_the_host_when_the_certificate_does_not_verify() {
    use assetd::toolkit_proxy::{Upstream, forward};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &["--tls-self-signed"]);
    let upstream = Upstream::parse(&format!("https://{}", server.addr), None).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        forward::serve(s, "serverless.twilio.com", &upstream)
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        b"GET /v1/Services HTTP/1.1\r\nHost: serverless.twilio.com\r\nAuthorization: Basic eDp5\r\n\r\n",
    )
    .unwrap();
    let resp = crate::harness::read_response(&mut BufReader::new(&s), false);
    assert_eq!(resp.status, 502, "{}", resp.text());
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("cannot verify the TLS certificate of 127.0.0.1") && msg.contains("--ca-cert"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1, "{msg}");
    relay.join().unwrap().unwrap();
}
