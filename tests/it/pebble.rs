//! Pebble (Let's Encrypt's test CA) for the ACME tests: started on free ports with a TLS
//! certificate of its own, and, for real validation, `pebble-challtestsrv` as its DNS
//! (127.0.0.1 for every name). Also the rustls client that checks served certificates.

use crate::harness::{CapturedStderr, curl};
use rustls::pki_types::pem::PemObject;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether Pebble is installed; if not, says so (the test then passes without running).
pub fn have_pebble(test: &str) -> bool {
    let ok = Command::new("pebble")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        eprintln!("SKIPPED {test}: pebble is not installed (apt-get install -y pebble)");
    }
    ok
}

/// A port free now (bound, read back, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 100 ms until it holds; panics after `secs`.
pub fn eventually<T>(secs: u64, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_listening(port: u16, what: &str) {
    eventually(20, what, || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
}

/// A child process killed on drop, its stderr shown if the test fails.
pub struct Proc {
    child: Child,
    name: &'static str,
    stderr: CapturedStderr,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stderr = CapturedStderr::collect(&mut child);
        Proc {
            child,
            name,
            stderr,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} output ---\n{}", self.name, self.stderr.text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running Pebble (and, for real validation, its fake DNS).
pub struct Pebble {
    _dir: tempfile::TempDir,
    /// Pebble's own HTTPS certificate: what `--acme-ca-cert` trusts.
    pub ca_cert: PathBuf,
    pub directory: String,
    /// Pebble's root, which issues every certificate (DER).
    pub root: Vec<u8>,
    _procs: Vec<Proc>,
}

pub struct PebbleOptions {
    /// Skip challenge validation.
    pub always_valid: bool,
    /// Validity of issued certificates in seconds.
    pub validity: u64,
    /// assetd's HTTPS and plain ports (where Pebble validates TLS-ALPN-01 and HTTP-01).
    pub tls_port: u16,
    pub http_port: u16,
}

impl Pebble {
    pub fn start(o: PebbleOptions) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_cert = dir.path().join("pebble-cert.pem");
        let key_path = dir.path().join("pebble-key.pem");
        std::fs::write(&ca_cert, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let (listen, manage) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{manage}"),
            "certificate": ca_cert,
            "privateKey": key_path,
            "httpPort": o.http_port,
            "tlsPort": o.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": o.validity,
        }});
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut procs = Vec::new();
        let mut cmd = Command::new("pebble");
        cmd.arg("-config").arg(&config_path);
        cmd.env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        if o.always_valid {
            cmd.env("PEBBLE_VA_ALWAYS_VALID", "1");
        } else {
            let (dns, dns_manage) = (free_port(), free_port());
            let mut srv = Command::new("pebble-challtestsrv");
            srv.args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{dns_manage}")]);
            procs.push(Proc::spawn("pebble-challtestsrv", srv));
            wait_listening(dns, "pebble-challtestsrv's DNS");
            cmd.args(["-dnsserver", &format!("127.0.0.1:{dns}")]);
        }
        procs.push(Proc::spawn("pebble", cmd));
        wait_listening(listen, "pebble");
        wait_listening(manage, "pebble's management port");
        let roots = format!("https://127.0.0.1:{manage}/roots/0");
        let pem = eventually(20, "pebble's root", || {
            let (ok, out, _) = curl(&["--cacert", ca_cert.to_str().unwrap(), &roots]);
            (ok && out.contains("BEGIN CERTIFICATE")).then_some(out)
        });
        let root = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec();
        Pebble {
            _dir: dir,
            ca_cert,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            root,
            _procs: procs,
        }
    }

    /// The `serve` options that use this Pebble.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--acme-email".into(),
            "ops@box.test".into(),
            "--acme-directory".into(),
            self.directory.clone(),
            "--acme-ca-cert".into(),
            self.ca_cert.to_str().unwrap().into(),
        ]
    }
}

/// The leaf certificate `addr` serves for SNI `name`, verified (chain and name) against
/// `root`; `Err` when the handshake fails.
pub fn served_cert(addr: SocketAddr, name: &str, root: &[u8]) -> Result<Vec<u8>, String> {
    served_cert_alpn(addr, name, root, &[])
}

/// [`served_cert`] offering these ALPN protocols.
pub fn served_cert_alpn(
    addr: SocketAddr,
    name: &str,
    root: &[u8],
    alpn: &[&[u8]],
) -> Result<Vec<u8>, String> {
    let mut store = rustls::RootCertStore::empty();
    store
        .add(rustls::pki_types::CertificateDer::from(root.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let mut tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(conn.peer_certificates().unwrap()[0].to_vec())
}

/// Waits until `addr` serves a certificate for `name` that chains to `root`.
pub fn wait_for_cert(addr: SocketAddr, name: &str, root: &[u8], secs: u64) -> Vec<u8> {
    eventually(secs, &format!("a certificate for {name}"), || {
        served_cert(addr, name, root).ok()
    })
}

/// Writes Pebble's root as PEM (for curl).
pub fn root_pem(dir: &Path, root: &[u8]) -> PathBuf {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(root);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let path = dir.join("pebble-root.pem");
    std::fs::write(
        &path,
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    path
}
