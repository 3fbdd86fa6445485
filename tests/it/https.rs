//! HTTPS (issue 8): `serve --tls-cert/--tls-key`, `--tls-self-signed`, `--http-listen`, the
//! CLI over https. Real clients: curl (HTTP/2 and HTTP/1.1), Python's `ssl` with the official
//! twilio library's signatures, rustls for certificate identity.

use crate::harness::{Server, cli, credentials, curl, import, label_of, project};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BASE: &str = "assets.test";

/// A self-signed certificate for `localhost`, `*.assets.test` and 127.0.0.1 with this common
/// name, written to `dir/{stem}.pem` and `dir/{stem}-key.pem`; returns the paths and its DER.
fn make_cert(dir: &Path, stem: &str, cn: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec![
        "localhost".to_string(),
        format!("*.{BASE}"),
        "127.0.0.1".to_string(),
    ];
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}-key.pem")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, cert.der().to_vec())
}

/// Replaces `to` by `from` in one rename (a reader never sees half a file).
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// The DER of the certificate the server presents, verified against `roots`.
fn served_cert(addr: SocketAddr, roots: &[&[u8]]) -> Vec<u8> {
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store
            .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    conn.peer_certificates().unwrap()[0].to_vec()
}

/// A project with public, protected and private assets imported into a fresh data dir, and
/// an HTTPS server on it with a certificate of the test's own.
struct Fixture {
    _project: tempfile::TempDir,
    data: tempfile::TempDir,
    certs: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
    label: String,
    sid: String,
    token: String,
}

const TEXT: &str = "HTTPS and HTTP/2 for every asset, compressible text repeated. ";

fn fixture() -> Fixture {
    let text = TEXT.repeat(50);
    let project = project(&[
        ("hello.txt", text.as_bytes()),
        ("secret.protected.txt", b"protected bytes"),
        ("data.private.json", b"{\"pin\": 1234}"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let label = label_of(&import(project.path(), data.path(), "tls", &[]));
    let (sid, token) = credentials(data.path());
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, der) = make_cert(certs.path(), "first", "first");
    Fixture {
        _project: project,
        data,
        certs,
        cert,
        key,
        der,
        label,
        sid,
        token,
    }
}

impl Fixture {
    fn start(&self, extra: &[&str]) -> Server {
        let mut args = vec![
            "--base-domain",
            BASE,
            "--tls-cert",
            self.cert.to_str().unwrap(),
            "--tls-key",
            self.key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Server::start(self.data.path(), &args)
    }

    fn host(&self) -> String {
        format!("{}.{BASE}", self.label)
    }
}

#[test]
fn https_and_http2_serve_public_protected_private_range_304_gzip() {
    let f = fixture();
    let srv = f.start(&[]);
    let port = srv.addr.port();
    let host = f.host();
    let resolve = format!("{host}:{port}:127.0.0.1");
    let ca = f.cert.to_str().unwrap();
    let url = |path: &str| format!("https://{host}:{port}{path}");
    let fmt = "%{http_version} %{http_code}";
    let base = ["--cacert", ca, "--resolve", &resolve, "-o", "/dev/null"];

    for version in ["--http2", "--http1.1"] {
        let want = if version == "--http2" { "2" } else { "1.1" };
        let (ok, out, err) = curl(&[&base[..], &[version, "-w", fmt, &url("/hello.txt")]].concat());
        assert!(ok, "{err}");
        assert_eq!(out, format!("{want} 200"), "{version}");
        let (_, out, _) = curl(&[&base[..], &[version, "-w", fmt, &url("/data.json")]].concat());
        assert_eq!(out, format!("{want} 404"), "{version} private");
        let (_, out, _) = curl(&[&base[..], &[version, "-w", fmt, &url("/secret.txt")]].concat());
        assert_eq!(out, format!("{want} 403"), "{version} protected unsigned");
    }

    // Signed over the https:// URL (assetd's own signer; Twilio's library is in the Python
    // test below): 200 over HTTP/2.
    let signed = url("/secret.txt");
    let (ok, sig, err) = cli(&["sign", &signed, "--token", &f.token]);
    assert!(ok, "{err}");
    let header = format!("X-Twilio-Signature: {}", sig.trim());
    let (_, out, _) = curl(&[&base[..], &["--http2", "-H", &header, "-w", fmt, &signed]].concat());
    assert_eq!(out, "2 200");
    // Twilio's libraries also accept the URL without its port (and with :443 for https).
    let (_, sig, _) = cli(&[
        "sign",
        &format!("https://{host}/secret.txt"),
        "--token",
        &f.token,
    ]);
    let header = format!("X-Twilio-Signature: {}", sig.trim());
    let (_, out, _) = curl(&[&base[..], &["--http2", "-H", &header, "-w", fmt, &signed]].concat());
    assert_eq!(out, "2 200", "signed without the port");
    let plain = format!("http://{host}:{port}/secret.txt");
    let (_, sig, _) = cli(&["sign", &plain, "--token", &f.token]);
    let header = format!("X-Twilio-Signature: {}", sig.trim());
    let (_, out, _) = curl(&[&base[..], &["--http2", "-H", &header, "-w", fmt, &signed]].concat());
    assert_eq!(
        out, "2 403",
        "a signature over the http:// URL is refused on https"
    );

    // Range, 304 and gzip over HTTP/2.
    let h2 = ["--http2", "--cacert", ca, "--resolve", &resolve];
    let (_, out, _) = curl(&[&h2[..], &["-r", "0-4", &url("/hello.txt")]].concat());
    assert_eq!(out, &TEXT[..5]);
    let (_, head, _) = curl(
        &[
            &h2[..],
            &[
                "-r",
                "0-4",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &url("/hello.txt"),
            ],
        ]
        .concat(),
    );
    assert!(head.starts_with("HTTP/2 206"), "{head}");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an etag")
        .trim()
        .to_string();
    let inm = format!("If-None-Match: {etag}");
    let (_, out, _) = curl(
        &[
            &h2[..],
            &["-H", &inm, "-o", "/dev/null", "-w", fmt, &url("/hello.txt")],
        ]
        .concat(),
    );
    assert_eq!(out, "2 304");
    let (_, head, _) = curl(
        &[
            &h2[..],
            &[
                "-H",
                "Accept-Encoding: gzip",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &url("/hello.txt"),
            ],
        ]
        .concat(),
    );
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let (_, body, _) = curl(&[&h2[..], &["--compressed", &url("/hello.txt")]].concat());
    assert_eq!(body, TEXT.repeat(50));

    // The console's page over HTTP/2.
    let (_, page, _) = curl(&[
        "--http2",
        "--cacert",
        ca,
        &format!("https://localhost:{port}/"),
    ]);
    assert!(
        page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"),
        "{page}"
    );
    // Path-style URLs and the API's URLs say https too.
    let (_, out, _) = curl(&[
        "--http2",
        "--cacert",
        ca,
        &format!("https://localhost:{port}/e/{}/hello.txt", f.label),
        "-o",
        "/dev/null",
        "-w",
        fmt,
    ]);
    assert_eq!(out, "2 200");
    let user = format!("{}:{}", f.sid, f.token);
    let (ok, json, err) = curl(&[
        "--http2",
        "--cacert",
        ca,
        "-u",
        &user,
        &format!("https://localhost:{port}/v1/Services"),
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first = v["meta"]["first_page_url"].as_str().unwrap_or("");
    assert!(
        first.starts_with(&format!("https://localhost:{port}/v1/Services")),
        "{json}"
    );
}

/// Python's `ssl` over HTTP/1.1 with signatures computed by Twilio's own library.
#[test]
fn python_ssl_and_twilio_signatures_over_https() {
    if std::env::var("ASSETD_SKIP_PYTHON").as_deref() == Ok("1") {
        eprintln!("ASSETD_SKIP_PYTHON=1: skipping the Python TLS test");
        return;
    }
    let f = fixture();
    let srv = f.start(&[]);
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/tests/python/run.sh"))
        .arg(format!("{root}/tests/python/tls_check.py"))
        .env("PORT", srv.addr.port().to_string())
        .env("HOST", f.host())
        .env("CA", &f.cert)
        .env("AUTH_TOKEN", &f.token)
        .env("PUBLIC", "/hello.txt")
        .env("PROTECTED", "/secret.txt")
        .env("PRIVATE", "/data.json")
        .output()
        .expect("run bash tests/python/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "tls_check.py failed ({}); set ASSETD_SKIP_PYTHON=1 only where Python cannot run\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

/// Waits until `cond` holds, checking every 50 ms for at most 20 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn certificate_reloads_on_sighup_and_on_change_and_a_bad_file_keeps_the_old() {
    let f = fixture();
    let log = f.certs.path().join("stderr.log");
    let mut cmd = Command::new(crate::harness::BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(f.data.path())
        .args(["--base-domain", BASE, "--tls-cert"])
        .arg(&f.cert)
        .arg("--tls-key")
        .arg(&f.key)
        .stderr(std::fs::File::create(&log).unwrap());
    let srv = Server::spawn_keeping_stderr(cmd);
    let (c2, k2, der2) = make_cert(f.certs.path(), "second", "second");
    let (c3, k3, der3) = make_cert(f.certs.path(), "third", "third");
    let roots: [&[u8]; 3] = [&f.der, &der2, &der3];
    assert_eq!(served_cert(srv.addr, &roots), f.der);
    let kept = TcpStream::connect(srv.addr).unwrap();

    // SIGHUP after both files changed: the new certificate.
    replace(&k2, &f.key);
    replace(&c2, &f.cert);
    let pid = srv.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually("the second certificate", || {
        served_cert(srv.addr, &roots) == der2
    });

    // A bad file: one log line, the second certificate stays.
    std::fs::write(&f.cert, "not a certificate\n").unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually("the reload failure in the log", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("TLS reload failed")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("TLS reload failed"))
        .unwrap();
    assert!(line.contains(f.cert.to_str().unwrap()), "{line}");
    assert_eq!(text.matches("TLS reload failed").count(), 1, "{text}");
    assert_eq!(served_cert(srv.addr, &roots), der2);

    // No signal: a changed file is noticed by itself.
    replace(&k3, &f.key);
    replace(&c3, &f.cert);
    eventually("the third certificate", || {
        served_cert(srv.addr, &roots) == der3
    });
    drop(kept);
}

#[test]
fn a_bad_certificate_or_key_is_refused_at_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (cert, key, _) = make_cert(dir.path(), "good", "good");
    let (_, other_key, _) = make_cert(dir.path(), "other", "other");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "-----BEGIN NOTHING-----\n").unwrap();
    let cases = [
        (
            junk.clone(),
            key.clone(),
            junk.to_str().unwrap().to_string(),
        ),
        (
            cert.clone(),
            junk.clone(),
            junk.to_str().unwrap().to_string(),
        ),
        (
            cert.clone(),
            other_key.clone(),
            "does not match".to_string(),
        ),
        (
            dir.path().join("missing.pem"),
            key.clone(),
            "missing.pem".to_string(),
        ),
    ];
    for (c, k, want) in cases {
        let (ok, out, err) = cli(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--tls-cert",
            c.to_str().unwrap(),
            "--tls-key",
            k.to_str().unwrap(),
        ]);
        assert!(!ok, "{out}");
        assert!(!out.contains("listening on"), "{out}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&want), "{want} in {err}");
    }
    let (ok, _, err) = cli(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("--tls-cert and --tls-key go together"),
        "{err}"
    );
}

#[test]
fn http_listen_redirects_to_https_with_308() {
    let f = fixture();
    let srv = f.start(&["--http-listen", "127.0.0.1:0"]);
    let plain: SocketAddr = srv
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("redirecting http://"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the redirect listener's address")
        .parse()
        .unwrap();
    let host = format!("{}:{}", f.host(), plain.port());
    let r = crate::harness::get(plain, &host, "/hello.txt?x=1");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{}:{}/hello.txt?x=1", f.host(), srv.addr.port()).as_str())
    );
    let r = crate::harness::get(plain, "bad host", "/");
    assert_eq!(r.status, 400);
    // Health checks are answered on the plain listener itself.
    let r = crate::harness::get(plain, &host, "/healthz");
    assert_eq!(r.status, 200, "{}", r.text());
    // curl follows it to the asset over HTTP/2.
    let resolve = format!("{}:{}:127.0.0.1", f.host(), srv.addr.port());
    let resolve_plain = format!("{}:{}:127.0.0.1", f.host(), plain.port());
    let (ok, out, err) = curl(&[
        "-L",
        "--http2",
        "--cacert",
        f.cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        "--resolve",
        &resolve_plain,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("http://{host}/hello.txt"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "2 200");
}

fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A rustls client configuration trusting `der` (rustls' default suite order: AES-256-GCM
/// first, as OpenSSL clients send it).
fn client_config(
    der: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    store
        .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to `addr` with its handshake complete.
fn tls_connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Nagle's wait for the server's delayed ACK would add 40 ms to each request.
    tcp.set_nodelay(true).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// One keep-alive HTTP/1.1 GET on `s`; returns the status and the body (read by its
/// `Content-Length`, so the connection stays usable).
fn tls_get(
    s: &mut (impl Read + Write),
    host: &str,
    target: &str,
    auth: Option<&str>,
) -> (u16, Vec<u8>) {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    // One write, so one TLS record.
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.flush().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = s.read(&mut buf).expect("read a response head");
        assert!(n > 0, "connection closed before a response head");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    while got.len() < head_end + len {
        let n = s.read(&mut buf).expect("read a response body");
        assert!(n > 0, "connection closed within a response body");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), head_end + len, "bytes past the response");
    (status, got.split_off(head_end))
}

/// The value of one `assetd_http_connections_limited_total` sample, read over TLS.
fn limited(srv: &Server, f: &Fixture, config: &Arc<rustls::ClientConfig>, limit: &str) -> u64 {
    let mut s = tls_connect(srv.addr, config);
    let auth = crate::harness::basic(&f.sid, &f.token);
    let (status, body) = tls_get(&mut s, "127.0.0.1", "/metrics", Some(&auth));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let key = format!("assetd_http_connections_limited_total{{limit=\"{limit}\"}} ");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&key)?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
}

/// Whether the server closed `c` (EOF or a reset, after any bytes it sent) by `deadline`.
fn closed_by(c: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        c.set_read_timeout(Some(left)).unwrap();
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // the server's handshake flight, or an alert
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true, // reset
        }
    }
}

/// SECURITY: a peer that opens TCP and never finishes the TLS handshake costs no thread and
/// is cut by the head timeout: one that sends nothing, one that sends half a ClientHello, and
/// one that sends a whole ClientHello, gets the server's flight and never sends its Finished.
#[test]
fn an_unfinished_handshake_costs_no_thread_and_is_cut_by_the_head_timeout() {
    let f = fixture();
    let srv = f.start(&["--head-timeout", "3"]);
    let config = client_config(&f.der, &[&rustls::version::TLS13]);
    assert_eq!(served_cert(srv.addr, &[&f.der]), f.der);
    let cut_before = limited(&srv, &f, &config, "head_timeout");
    let before = threads_of(srv.child.id());
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = (0..300)
        .map(|i| {
            let mut c = TcpStream::connect(srv.addr).unwrap();
            match i % 3 {
                0 => {}
                1 => c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap(),
                _ => {
                    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                    let mut client = rustls::ClientConnection::new(config.clone(), name).unwrap();
                    let mut hello = Vec::new();
                    client.write_tls(&mut hello).unwrap();
                    c.write_all(&hello).unwrap();
                }
            }
            c
        })
        .collect();
    // Served meanwhile, with no thread more.
    assert_eq!(served_cert(srv.addr, &[&f.der]), f.der);
    let mut s = tls_connect(srv.addr, &config);
    assert_eq!(tls_get(&mut s, &f.host(), "/hello.txt", None).0, 200);
    drop(s);
    assert!(threads_of(srv.child.id()) <= before, "threads grew");
    // The ones that sent a whole ClientHello got the server's flight (ServerHello first).
    let mut first = [0u8; 1];
    conns[2].read_exact(&mut first).unwrap();
    assert_eq!(first[0], 0x16, "no handshake record from the server");
    let deadline = started + Duration::from_secs(12);
    for (i, c) in conns.iter_mut().enumerate() {
        assert!(
            closed_by(c, deadline),
            "connection {i} (kind {}) not cut",
            i % 3
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "cut too early: {waited:?}"
    );
    // Well before the default head timeout (10 s): it is the one set here that cut them.
    assert!(
        waited < Duration::from_secs(9),
        "not cut by the head timeout: {waited:?}"
    );
    // Counted as what they are.
    let cut = limited(&srv, &f, &config, "head_timeout") - cut_before;
    assert_eq!(cut, 300, "head_timeout counter");
}

/// The server's suite order wins over a client that puts AES-256-GCM first (as OpenSSL's
/// clients do): AES-128-GCM where the CPU has AES instructions, ChaCha20 where it has not;
/// a client offering only AES-256-GCM still gets it.
#[test]
fn the_server_picks_aes_128_gcm_over_a_client_preferring_aes_256() {
    use rustls::CipherSuite as S;
    let f = fixture();
    let srv = f.start(&[]);
    // As the server decides it.
    let aes = assetd::http::server::aes_hardware();
    for (version, want) in [
        (
            &rustls::version::TLS13,
            if aes {
                S::TLS13_AES_128_GCM_SHA256
            } else {
                S::TLS13_CHACHA20_POLY1305_SHA256
            },
        ),
        (
            &rustls::version::TLS12,
            if aes {
                S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            } else {
                S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            },
        ),
    ] {
        let config = client_config(&f.der, &[version]);
        assert_eq!(
            config.crypto_provider().cipher_suites[0].suite(),
            S::TLS13_AES_256_GCM_SHA384
        );
        let mut s = tls_connect(srv.addr, &config);
        let got = s.conn.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(got, want, "{version:?}");
        assert_eq!(tls_get(&mut s, &f.host(), "/hello.txt", None).0, 200);
    }
    // Only AES-256-GCM offered: still served.
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == S::TLS13_AES_256_GCM_SHA384);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut store = rustls::RootCertStore::empty();
            store
                .add(rustls::pki_types::CertificateDer::from(f.der.clone()))
                .unwrap();
            store
        })
        .with_no_client_auth();
    let mut s = tls_connect(srv.addr, &Arc::new(config));
    assert_eq!(
        s.conn.negotiated_cipher_suite().unwrap().suite(),
        S::TLS13_AES_256_GCM_SHA384
    );
    assert_eq!(tls_get(&mut s, &f.host(), "/hello.txt", None).0, 200);
}

/// Raises this process's soft descriptor limit to at least `want` (up to the hard limit);
/// returns the soft limit now.
fn raise_fd_limit(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write one rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        if r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        }
    }
    r.rlim_cur
}

/// 2,000 idle TLS connections (handshake complete, one request served, then silent
/// keep-alive) are all held, cost no thread each, and the server still answers a new one.
#[test]
fn two_thousand_idle_tls_connections_are_held_without_a_thread_each() {
    const N: usize = 2000;
    let limit = raise_fd_limit(N as u64 + 512);
    assert!(
        limit >= N as u64 + 256,
        "descriptor limit {limit}: raise the hard limit"
    );
    let f = fixture();
    let srv = f.start(&["--head-timeout", "120"]);
    let config = client_config(&f.der, &[&rustls::version::TLS13]);
    let host = f.host();
    let want = TEXT.repeat(50).into_bytes();
    let mut warm = tls_connect(srv.addr, &config);
    assert_eq!(
        tls_get(&mut warm, &host, "/hello.txt", None),
        (200, want.clone())
    );
    drop(warm);
    let before = threads_of(srv.child.id());
    let started = Instant::now();
    let mut idle: Vec<_> = (0..N)
        .map(|_| {
            let mut s = tls_connect(srv.addr, &config);
            assert_eq!(tls_get(&mut s, &host, "/hello.txt", None).0, 200);
            s
        })
        .collect();
    let opened = started.elapsed();
    let with = threads_of(srv.child.id());
    assert!(
        with <= before,
        "threads grew from {before} to {with} with {N} idle TLS connections"
    );
    // A fresh client is answered while they are held.
    let mut fresh = tls_connect(srv.addr, &config);
    assert_eq!(
        tls_get(&mut fresh, &host, "/hello.txt", None),
        (200, want.clone())
    );
    // Every idle one was held: it answers a second request.
    for (i, s) in idle.iter_mut().enumerate() {
        let (status, body) = tls_get(s, &host, "/hello.txt", None);
        assert_eq!(
            (status, body.len()),
            (200, want.len()),
            "idle connection {i}"
        );
    }
    eprintln!("{N} idle TLS connections opened in {opened:?}; threads {before} -> {with}");
}

#[test]
fn deploy_over_https_with_ca_cert_and_one_line_error_without() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (sid, token) = credentials(&data);
    let srv = Server::start(&data, &["--tls-self-signed"]);
    let pem = data.join("tls/self-signed.pem");
    let line = srv
        .banner
        .iter()
        .find(|l| l.contains("self-signed certificate"))
        .expect("the self-signed line");
    assert!(line.contains(pem.to_str().unwrap()), "{line}");
    // The printed fingerprint is the served certificate's.
    let text = std::fs::read_to_string(&pem).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(served_cert(srv.addr, &[&der]), der);
    let fp = assetd::http::server::self_signed::fingerprint(&der);
    assert!(line.contains(&fp), "{fp} in {line}");

    let project = project(&[("hi.txt", b"over https")]);
    let url = format!("https://127.0.0.1:{}", srv.addr.port());
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            project.path().to_str().unwrap(),
            "--service",
            "secure",
            "--url",
            &url,
            "--account-sid",
            &sid,
            "--auth-token",
            &token,
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let (ok, out, err) = deploy(&[]);
    assert!(!ok, "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot verify the TLS certificate of 127.0.0.1"),
        "{err}"
    );
    assert!(err.contains("--ca-cert"), "{err}");

    let (ok, out, err) = deploy(&["--ca-cert", pem.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("https://"), "{out}");
    assert!(!out.contains("http://"), "{out}");
    let label = out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("https://"))
        .filter_map(|rest| rest.split(['/', ':']).next())
        .find_map(|host| host.strip_suffix(".localhost"))
        .expect("an https environment URL");
    let (ok, body, err) = curl(&[
        "--http2",
        "--cacert",
        pem.to_str().unwrap(),
        &format!("{url}/e/{label}/hi.txt"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(body, "over https");

    // ASSETD_CA_CERT does what --ca-cert does.
    let out = Command::new(crate::harness::BIN)
        .args([
            "deploy",
            project.path().to_str().unwrap(),
            "--service",
            "secure",
            "--url",
            &url,
        ])
        .args(["--account-sid", &sid, "--auth-token", &token])
        .env("ASSETD_CA_CERT", &pem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plain_http_to_a_public_address_warns_in_one_line() {
    // Without credentials the command stops before any request: only the URL is looked at.
    let run = |url: &str| {
        let out = Command::new(crate::harness::BIN)
            .args(["list", "services", "--url", url])
            .env_remove("ASSETD_ACCOUNT_SID")
            .env_remove("TWILIO_ACCOUNT_SID")
            .env_remove("ASSETD_AUTH_TOKEN")
            .env_remove("TWILIO_AUTH_TOKEN")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("http://203.0.113.7:8080");
    let warning: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("travels in clear"))
        .collect();
    assert_eq!(warning.len(), 1, "{err}");
    for quiet in [
        "http://127.0.0.1:9",
        "http://192.168.1.20:8080",
        "https://203.0.113.7",
    ] {
        let err = run(quiet);
        assert!(!err.contains("travels in clear"), "{quiet}: {err}");
    }
}

/// An HTTP/2 connection with no request in flight for the head timeout gets a GOAWAY and is
/// closed, as an idle HTTP/1.1 connection is.
#[test]
fn an_idle_http2_connection_is_closed_after_the_head_timeout() {
    let f = fixture();
    let srv = f.start(&["--head-timeout", "2"]);
    let mut store = rustls::RootCertStore::empty();
    store
        .add(rustls::pki_types::CertificateDer::from(f.der.clone()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(srv.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The client preface and an empty SETTINGS frame, then nothing.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    tls.flush().unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut goaway = false;
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("not closed: {e}"),
        }
    }
    // Frames: 9-byte headers, type 7 is GOAWAY.
    let mut at = 0;
    while at + 9 <= got.len() {
        let len = (usize::from(got[at]) << 16)
            | (usize::from(got[at + 1]) << 8)
            | usize::from(got[at + 2]);
        goaway |= got[at + 3] == 7;
        at += 9 + len;
    }
    let waited = started.elapsed();
    assert!(goaway, "no GOAWAY in {got:?}");
    assert!(
        waited >= Duration::from_millis(1500),
        "closed too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(12), "not closed: {waited:?}");
}

/// Printed URLs follow the server's scheme: `list environments` and `share` over https print
/// https URLs; after an HTTPS `serve`, `import` (server stopped) and the next `serve`'s
/// banner do too.
#[test]
fn printed_urls_use_https_when_the_server_does() {
    let f = fixture();
    let srv = f.start(&[]);
    let port = srv.addr.port();
    let url = format!("https://127.0.0.1:{port}");
    let ca = f.cert.to_str().unwrap();
    let remote = ["--url", &url, "--ca-cert", ca, "--account-sid", &f.sid];
    let remote = [&remote[..], &["--auth-token", &f.token]].concat();
    let env_url = format!("https://{}:{port}", f.host());

    let (ok, out, err) =
        cli(&[&["list", "environments", "--service", "tls"][..], &remote].concat());
    assert!(ok, "{err}");
    assert!(out.contains(&env_url), "{env_url} in {out}");
    assert!(!out.contains("http://"), "{out}");

    let asset = format!("{env_url}/secret.txt");
    let (ok, link, err) = cli(&[&["share", &asset][..], &remote].concat());
    assert!(ok, "{err}");
    let link = link.trim();
    assert!(link.starts_with(&format!("{asset}?Expires=")), "{link}");
    let resolve = format!("{}:{port}:127.0.0.1", f.host());
    let (ok, body, err) = curl(&["--http2", "--cacert", ca, "--resolve", &resolve, link]);
    assert!(ok, "{err}");
    assert_eq!(body, "protected bytes");
    assert!(srv.terminate().success());

    // Offline: `import` prints the URLs the last `serve` recorded (https, its port).
    let more = project(&[("more.txt", b"more")]);
    let out = import(more.path(), f.data.path(), "tls", &[]);
    assert!(
        out.contains(&format!("public    {env_url}/more.txt")),
        "{env_url} in {out}"
    );
    assert!(!out.contains("http://"), "{out}");

    // The next start lists the environment with https URLs, host- and path-style.
    let srv = f.start(&[]);
    let port = srv.addr.port();
    let line = srv
        .banner
        .iter()
        .find(|l| l.starts_with("environment "))
        .unwrap_or_else(|| panic!("no environment line in {:?}", srv.banner));
    assert_eq!(
        line,
        &format!(
            "environment https://{}:{port}  (path-style: https://127.0.0.1:{port}/e/{}/)",
            f.host(),
            f.label
        )
    );
}

/// This box's address on its network (what a LAN client would use), if it has one: the
/// source address of a route to a TEST-NET address (no packet is sent).
fn lan_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// The README's Raspberry Pi LAN example, as written but on free ports: `serve --listen
/// 0.0.0.0:… --http-listen 0.0.0.0:… --tls-self-signed --base-domain assets.lan`, then
/// `deploy --url https://LAN-ADDRESS --ca-cert self-signed.pem` from "a laptop": the
/// certificate covers the box's LAN address and the `*.assets.lan` names deploy prints.
#[test]
fn readme_raspberry_pi_lan_example_deploys_by_the_lan_address() {
    let Some(lan) = lan_address() else {
        eprintln!("no non-loopback address on this machine: the LAN example is not run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (sid, token) = credentials(&data);
    let mut cmd = Command::new(crate::harness::BIN);
    cmd.args([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--http-listen",
        "0.0.0.0:0",
    ])
    .args(["--tls-self-signed", "--base-domain", "assets.lan", "--data"])
    .arg(&data);
    let srv = Server::spawn(cmd);
    let port = srv.addr.port();
    let at = SocketAddr::new(lan, port);
    let pem = data.join("tls/self-signed.pem");
    // The "laptop" has only the PEM, copied from the box.
    let laptop = tempfile::tempdir().unwrap();
    let copied = laptop.path().join("self-signed.pem");
    std::fs::copy(&pem, &copied).unwrap();
    let project = project(&[("ahoy.txt", b"ahoy from the Pi\n")]);
    let url = match lan {
        std::net::IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
        v4 => format!("https://{v4}:{port}"),
    };
    let (ok, out, err) = cli(&[
        "deploy",
        project.path().to_str().unwrap(),
        "--url",
        &url,
        "--ca-cert",
        copied.to_str().unwrap(),
        "--service",
        "example",
        "--account-sid",
        &sid,
        "--auth-token",
        &token,
    ]);
    assert!(ok, "deploy to {url}: {out}\n{err}");
    assert!(!err.contains("travels in clear"), "{err}");
    let printed = out
        .split_whitespace()
        .find(|w| w.starts_with("https://") && w.ends_with("/ahoy.txt"))
        .unwrap_or_else(|| panic!("no https asset URL in {out}"));
    let host = printed
        .strip_prefix("https://")
        .and_then(|r| r.split('/').next())
        .unwrap();
    assert!(host.ends_with(&format!(".assets.lan:{port}")), "{printed}");
    // Host-style through the wildcard, and path-style by the LAN address.
    let r = crate::harness::https_request(at, &copied, "GET", host, "/ahoy.txt", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ahoy from the Pi\n"));
    let label = host.split('.').next().unwrap();
    let by_ip = at.to_string();
    let path = format!("/e/{label}/ahoy.txt");
    let r = crate::harness::https_request(at, &copied, "GET", &by_ip, &path, &[], b"");
    assert_eq!(r.status, 200, "https://{by_ip}{path}");
    // Port 80's listener sends plain-http visitors to https.
    let plain: SocketAddr = srv
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("redirecting http://"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the redirect listener")
        .parse()
        .unwrap();
    let r = crate::harness::get(SocketAddr::new(lan, plain.port()), host, "/ahoy.txt");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some(printed));
}

/// A box that stays behind a TLS proxy: with `--trusted-proxy`, the proxy's
/// `X-Forwarded-Proto: https` makes signatures cover the `https://` URL and API URLs say
/// https; from a peer that is not trusted the header changes nothing.
#[test]
fn trusted_proxy_keeps_https_signatures_and_urls_behind_a_tls_proxy() {
    let f = fixture();
    let host = f.host();
    let https_sig = assetd::sign::compute(&f.token, &format!("https://{host}/secret.txt"), &[]);
    let http_sig = assetd::sign::compute(&f.token, &format!("http://{host}/secret.txt"), &[]);
    let auth = crate::harness::basic(&f.sid, &f.token);
    for trusted in [true, false] {
        let mut args = vec!["--base-domain", BASE];
        if trusted {
            args.extend(["--trusted-proxy", "127.0.0.1"]);
        }
        let srv = Server::start(f.data.path(), &args);
        let get = |sig: &str| {
            let headers = [("X-Forwarded-Proto", "https"), ("X-Twilio-Signature", sig)];
            crate::harness::request(srv.addr, "GET", &host, "/secret.txt", &headers, b"").status
        };
        let (https_status, http_status) = (get(&https_sig), get(&http_sig));
        let api = crate::harness::request(
            srv.addr,
            "GET",
            "localhost",
            "/v1/Services",
            &[("X-Forwarded-Proto", "https"), ("Authorization", &auth)],
            b"",
        );
        let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
        let first = v["meta"]["first_page_url"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if trusted {
            assert_eq!((https_status, http_status), (200, 403), "trusted proxy");
            assert!(first.starts_with("https://localhost/v1/"), "{first}");
        } else {
            assert_eq!((https_status, http_status), (403, 200), "untrusted peer");
            assert!(first.starts_with("http://localhost/v1/"), "{first}");
        }
    }
}

/// `--tls-self-signed` covers the base domain's wildcard, the base domain, `localhost` and the
/// `--public-url` host, and is made once: the next start uses the same certificate (same
/// fingerprint printed, same bytes served).
#[test]
fn the_self_signed_certificate_covers_its_names_and_is_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--tls-self-signed",
        "--base-domain",
        "assets.lan",
        "--public-url",
        "https://box.example",
    ];
    let srv = Server::start(&data, &args);
    let pem = data.join("tls/self-signed.pem");
    let first = std::fs::read(&pem).unwrap();
    let line = |srv: &Server| {
        srv.banner
            .iter()
            .find(|l| l.starts_with("TLS: "))
            .cloned()
            .expect("the TLS line")
    };
    let made = line(&srv);
    assert!(
        made.starts_with("TLS: made self-signed certificate"),
        "{made}"
    );
    for name in [
        "box.example",
        "assets.lan",
        "pi-1234-dev.assets.lan",
        "localhost",
    ] {
        // Verified for each name (a name the certificate lacks fails the handshake).
        let r = crate::harness::https_request(srv.addr, &pem, "GET", name, "/healthz", &[], b"");
        assert!(r.status < 500, "{name}: {}", r.status);
    }
    assert!(srv.terminate().success());
    let srv = Server::start(&data, &args);
    let using = line(&srv);
    assert!(
        using.starts_with("TLS: using self-signed certificate"),
        "{using}"
    );
    let fp = |l: &str| {
        l.split("fingerprint ")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(fp(&using), fp(&made));
    assert_eq!(std::fs::read(&pem).unwrap(), first);
    let r =
        crate::harness::https_request(srv.addr, &pem, "GET", "box.example", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
}

/// `--tls-cert` takes a chain (leaf first) and serves all of it: a client that trusts only
/// the root verifies the leaf through the intermediate.
#[test]
fn a_certificate_chain_is_served_whole() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca = |cn: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root = ca("test root").self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(ca("test root"), root_key);
    let mid_key = KeyPair::generate().unwrap();
    let mid = ca("test intermediate")
        .signed_by(&mid_key, &root_issuer)
        .unwrap();
    let mid_issuer = Issuer::new(ca("test intermediate"), mid_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &mid_issuer)
        .unwrap();
    let (cert, key) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, format!("{}{}", leaf.pem(), mid.pem())).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    let data = dir.path().join("data");
    let srv = Server::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(served_cert(srv.addr, &[root.der()]), leaf.der().to_vec());
}

/// `--tls-key` in each PEM form the issue names: PKCS#8 (the other tests), PKCS#1 (`BEGIN RSA
/// PRIVATE KEY`) and SEC1 (`BEGIN EC PRIVATE KEY`), made by openssl (`.ci/run` installs it).
#[test]
fn pkcs1_and_sec1_keys_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let cases: [(&str, &[&str], &str); 2] = [
        (
            "rsa",
            &["genrsa", "-traditional", "-out", "rsa.key", "2048"],
            "-----BEGIN RSA PRIVATE KEY-----",
        ),
        (
            "ec",
            &[
                "ecparam",
                "-genkey",
                "-noout",
                "-name",
                "prime256v1",
                "-out",
                "ec.key",
            ],
            "-----BEGIN EC PRIVATE KEY-----",
        ),
    ];
    // An end-entity certificate (openssl's default `req -x509` is a CA, which clients refuse
    // as a server's).
    std::fs::write(
        dir.path().join("leaf.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n[dn]\nCN = localhost\n[ext]\nsubjectAltName = DNS:localhost\nbasicConstraints = critical,CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    for (stem, keygen, header) in cases {
        openssl(keygen);
        let key = dir.path().join(format!("{stem}.key"));
        let text = std::fs::read_to_string(&key).unwrap();
        assert!(text.starts_with(header), "{stem}: {text}");
        let cert = format!("{stem}.pem");
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{stem}.key"),
            "-config",
            "leaf.cnf",
            "-days",
            "2",
            "-out",
            &cert,
        ]);
        let cert = dir.path().join(cert);
        let data = dir.path().join(format!("data-{stem}"));
        let srv = Server::start(
            &data,
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        );
        let r = crate::harness::https_request(
            srv.addr,
            &cert,
            "GET",
            "localhost",
            "/healthz",
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "{stem}");
    }
}
