//! The server's TLS: the only server file naming rustls and tokio-rustls.
//!
//! A [`Tls`] holds the certificate chain and key loaded from two PEM files (chain; PKCS#8,
//! PKCS#1 or SEC1 key) behind a lock, so [`Tls::reload`] swaps them for new handshakes without
//! a restart while established connections keep theirs. TLS 1.3 and 1.2 with rustls' `ring`
//! provider (the one the toolkit proxy and the CLI use); ALPN offers `h2` then `http/1.1`.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;

/// An accepted TLS connection.
pub(super) type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The server's certificate source: two PEM files, reloadable.
#[derive(Clone)]
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish()
    }
}

/// The certificate handshakes use now, and the files' identity when it was loaded.
#[derive(Debug)]
struct Current {
    key: RwLock<(Arc<CertifiedKey>, Stamp)>,
}

/// What tells a changed file: modification time and length of both files.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    };
    [one(cert), one(key)]
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let k = self.key.read().unwrap_or_else(|p| p.into_inner());
        Some(k.0.clone())
    }
}

/// rustls' `ring` provider with the server's cipher suite preference (see [`suite_rank`]).
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    let aes = aes_hardware();
    provider
        .cipher_suites
        .sort_by_key(|s| suite_rank(s.suite(), aes));
    Arc::new(provider)
}

/// Where a suite stands in the server's preference (lower first), which handshakes follow
/// instead of the client's (`ignore_client_order`): AES-128-GCM, then AES-256-GCM, then
/// ChaCha20-Poly1305 on a CPU with AES instructions; ChaCha20-Poly1305 first on one without
/// (a Raspberry Pi 4), where it is several times faster than AES-GCM.
///
/// SECURITY: every suite offered is an AEAD with forward secrecy, and all stay offered; only
/// the order changes. OpenSSL clients (curl, Python, wrk) put AES-256-GCM first, which costs
/// 40% more AES rounds per byte for no strength the connection has: its key exchange (X25519
/// or P-256) is a 128-bit-security one.
fn suite_rank(suite: rustls::CipherSuite, aes: bool) -> u8 {
    use rustls::CipherSuite as S;
    let chacha = if aes { 2 } else { 0 };
    match suite {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
        S::TLS13_CHACHA20_POLY1305_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => chacha,
        _ => 3,
    }
}

/// Whether this CPU has AES and carry-less multiply instructions (fast AES-GCM).
fn aes_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Loads and checks a certificate chain and its key. Errors are one line naming the file.
fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: not a PEM certificate chain ({e})", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: holds no CERTIFICATE block (expected a PEM certificate chain)",
            cert.display()
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "{}: not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            key.display()
        )
    })?;
    let provider = provider();
    CertifiedKey::from_der(chain, der, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "{} does not match the certificate in {}",
            key.display(),
            cert.display()
        ),
        e => format!("{}: unusable key ({e})", key.display()),
    })
}

impl Tls {
    /// Loads `cert` (PEM chain, leaf first) and `key`; an error is one line naming the file
    /// and what is wrong with it.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Tls, String> {
        let stamp_before = stamp(cert, key);
        let certified = load(cert, key)?;
        let current = Arc::new(Current {
            key: RwLock::new((Arc::new(certified), stamp_before)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // The server's suite order (see `suite_rank`), not the client's.
        config.ignore_client_order = true;
        // Stateless resumption: a returning client skips the full handshake.
        if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
            config.ticketer = ticketer;
        }
        Ok(Tls {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Loads the files again when `force` or when their modification time or length changed.
    /// `Ok(true)`: new handshakes use the new certificate. On an error the certificate in use
    /// stays (established and new connections are unaffected).
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let now = stamp(&self.cert_path, &self.key_path);
        {
            let k = self.current.key.read().unwrap_or_else(|p| p.into_inner());
            if !force && k.1 == now {
                return Ok(false);
            }
        }
        let loaded = load(&self.cert_path, &self.key_path);
        let mut k = self.current.key.write().unwrap_or_else(|p| p.into_inner());
        // A failed load is remembered too, so a bad file is reported once, not every poll.
        k.1 = now;
        k.0 = Arc::new(loaded?);
        Ok(true)
    }

    /// Reloads on every message from `wake` (SIGHUP) and whenever the files change (checked
    /// every `every`), on a thread of its own; each outcome is one log line.
    pub fn spawn_reloader(
        &self,
        wake: std::sync::mpsc::Receiver<()>,
        every: Duration,
    ) -> io::Result<()> {
        let tls = self.clone();
        std::thread::Builder::new()
            .name("assetd-tls-reload".into())
            .spawn(move || {
                loop {
                    let force = match wake.recv_timeout(every) {
                        Ok(()) => true,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => false,
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    };
                    match tls.reload(force) {
                        Ok(true) => eprintln!(
                            "assetd: TLS certificate reloaded from {}",
                            tls.cert_path.display()
                        ),
                        Ok(false) => {}
                        Err(e) => {
                            eprintln!("assetd: TLS reload failed, keeping the old certificate: {e}")
                        }
                    }
                }
            })?;
        Ok(())
    }

    /// Completes the server handshake on `tcp`; returns the stream and whether the client
    /// chose HTTP/2 by ALPN. The caller bounds the time it may take.
    pub(super) async fn accept(&self, tcp: TcpStream) -> io::Result<(TlsStream, bool)> {
        let stream = self.acceptor.accept(tcp).await?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok((stream, h2))
    }
}
