//! Test harness: runs the real `assetd` binary (server on port 0, CLI commands) and speaks
//! plain HTTP/1.1 to it over `TcpStream`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_assetd");

/// A running `assetd serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Lines printed before the `listening on` line (credentials, URLs).
    pub banner: Vec<String>,
    /// The server's stderr, shown only when the test fails (deliberate fault tests make the
    /// server log disk-full and descriptor errors that would alarm a reader of `cargo test`).
    pub stderr: CapturedStderr,
}

/// A child's stderr, collected in the background and printed (labelled) when the test that
/// owns it panics.
#[derive(Clone, Default)]
pub struct CapturedStderr(std::sync::Arc<std::sync::Mutex<String>>);

impl CapturedStderr {
    /// Takes `child`'s piped stderr and collects it.
    pub fn collect(child: &mut Child) -> CapturedStderr {
        let captured = CapturedStderr::default();
        if let Some(err) = child.stderr.take() {
            let sink = captured.0.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        captured
    }

    pub fn text(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// On a failing test, prints what the server said.
    pub fn show_if_panicking(&self) {
        if std::thread::panicking() {
            eprintln!("--- assetd serve stderr (test failed) ---\n{}", self.text());
        }
    }
}

impl Server {
    /// Starts `assetd serve --listen 127.0.0.1:0 --data DATA` plus `extra` arguments and waits
    /// for its `listening on` line.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra);
        Server::spawn(cmd)
    }

    /// Spawns a prepared `serve` command and waits for its `listening on` line.
    pub fn spawn(mut cmd: Command) -> Server {
        cmd.stderr(Stdio::piped());
        Server::spawn_keeping_stderr(cmd)
    }

    /// [`Server::spawn`] with the command's own stderr (a file, say; only a piped one is
    /// captured).
    pub fn spawn_keeping_stderr(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn assetd serve");
        let stderr = CapturedStderr::collect(&mut child);
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        let mut banner = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("read serve stdout");
            let https = line.starts_with("listening on https://");
            let rest = line
                .strip_prefix("listening on http://")
                .or_else(|| line.strip_prefix("listening on https://"));
            if let Some(a) = rest {
                addr = Some((a.parse().expect("listening address"), https));
                break;
            }
            banner.push(line);
        }
        let (addr, https) = addr.unwrap_or_else(|| {
            let _ = child.wait();
            panic!(
                "assetd serve did not print its address; stderr: {}",
                stderr.text()
            )
        });
        // Keep draining stdout in the background so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        // An https server is probed by its tests (this probe speaks plain HTTP).
        if !https {
            let probe = get(addr, "localhost", "/healthz");
            assert_eq!(probe.status, 200, "server not healthy");
        }
        Server {
            child,
            addr,
            banner,
            stderr,
        }
    }

    pub fn get(&self, host: &str, target: &str) -> Response {
        get(self.addr, host, target)
    }

    pub fn request(
        &self,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        request(self.addr, method, host, target, headers, b"")
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stderr.show_if_panicking();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub raw_head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn get(addr: SocketAddr, host: &str, target: &str) -> Response {
    request(addr, "GET", host, target, &[], b"")
}

/// One request on a fresh connection (`Connection: close`); reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = request_head(method, host, target, headers, body);
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s), method == "HEAD")
}

/// The head of a one-shot request (`Connection: close`, a `Content-Length` when `body` is
/// not empty).
fn request_head(
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req
}

/// Runs curl (at most 20 s); returns (exit success, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl (apt-get install curl)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads one response from `r`; the body by `Content-Length` (or to EOF without one).
pub fn read_response<R: BufRead>(r: &mut R, head_only: bool) -> Response {
    let mut raw_head = String::new();
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    raw_head.push_str(&line);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
        .parse()
        .unwrap();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        raw_head.push_str(&line);
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').expect("header colon");
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let mut body = Vec::new();
    if !head_only && status != 304 {
        match headers.get("content-length") {
            Some(n) => {
                body.resize(n.parse().unwrap(), 0);
                r.read_exact(&mut body).expect("body");
            }
            None => {
                r.read_to_end(&mut body).unwrap();
            }
        }
    }
    Response {
        status,
        headers,
        raw_head,
        body,
    }
}

/// Runs the `assetd` CLI; returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run assetd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The main account's (SID, auth token) of `data`, from `assetd account` (run it before the
/// server starts: a running server holds the directory).
pub fn credentials(data: &Path) -> (String, String) {
    if !data.join("assetd.redb").exists() {
        // `account` never creates a store: a first `serve` does (and prints the account).
        drop(Server::start(data, &[]));
    }
    let (ok, out, err) = cli(&["account", "--data", data.to_str().unwrap()]);
    assert!(ok, "assetd account failed: {out}\n{err}");
    let var = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing in {out}"))
            .to_string()
    };
    (var("ASSETD_ACCOUNT_SID="), var("ASSETD_AUTH_TOKEN="))
}

/// An HTTP Basic `Authorization` value.
pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {b64}")
}

/// A Serverless Toolkit project in a temp dir: `files` are (path under assets/, bytes).
pub fn project(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, bytes) in files {
        let p: PathBuf = dir.path().join("assets").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

/// Imports `project` into `data`; panics with the CLI's output on failure. Returns stdout.
pub fn import(project: &Path, data: &Path, service: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "import",
        project.to_str().unwrap(),
        "--service",
        service,
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = cli(&args);
    assert!(ok, "import failed: {out}\n{err}");
    out
}

/// The environment host label (`svc-1234-dev`) printed in an import's output.
pub fn label_of(import_output: &str) -> String {
    import_output
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("http://"))
        .filter_map(|rest| rest.split(['/', ':']).next())
        .find_map(|host| host.strip_suffix(".localhost"))
        .expect("an environment URL in the output")
        .to_string()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// [`request`] over TLS: verifies the server as `host` (its name, without the port) against
/// the PEM certificates in `ca_pem`, and sends `host` as the `Host` header.
pub fn https_request(
    addr: SocketAddr,
    ca_pem: &Path,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca_pem).expect("read the CA PEM") {
        roots.add(der.expect("a PEM certificate")).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let name = ServerName::try_from(name.to_string()).expect("a TLS server name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let req = request_head(method, host, target, headers, body);
    tls.write_all(req.as_bytes()).expect("TLS write");
    tls.write_all(body).expect("TLS write");
    tls.flush().unwrap();
    read_response(&mut BufReader::new(tls), method == "HEAD")
}
