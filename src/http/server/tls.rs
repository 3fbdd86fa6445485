//! The server's TLS: the only server file naming rustls and tokio-rustls.
//!
//! A [`Tls`] picks the certificate of each handshake by its server name (SNI): a certificate
//! installed for that exact name ([`Tls::install`], the ACME manager's), else the fallback
//! loaded from two PEM files (chain; PKCS#8, PKCS#1 or SEC1 key), else the management host's
//! installed certificate ([`Tls::set_default_name`]); with none of these the handshake ends in
//! a TLS alert. The fallback is behind a lock, so [`Tls::reload`] swaps it for new handshakes
//! without a restart while established connections keep theirs. TLS 1.3 and 1.2 with rustls'
//! `ring` provider (the one the toolkit proxy and the CLI use); ALPN offers `h2` then
//! `http/1.1` (and `acme-tls/1` for TLS-ALPN-01 validation, [`Tls::with_acme_alpn`]).

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;

/// An accepted TLS connection.
pub(super) type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The server's certificates: the fallback from two PEM files (reloadable), and certificates
/// by name.
#[derive(Clone)]
pub struct Tls {
    files: Option<(PathBuf, PathBuf)>,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// The certificates handshakes use now.
#[derive(Debug, Default)]
struct Current {
    /// The files' certificate, and the files' identity when it was loaded.
    fallback: RwLock<Option<(Arc<CertifiedKey>, Stamp)>>,
    /// Certificates by exact (lower-case) server name.
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// TLS-ALPN-01 challenge certificates by name, shown only to `acme-tls/1` handshakes.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// The name whose certificate answers unknown names when there is no fallback.
    default_name: RwLock<Option<String>>,
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

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl ResolvesServerCert for Current {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // SECURITY: a challenge certificate is shown only to a validation handshake
            // (ALPN `acme-tls/1`), only for the name being validated; such a handshake never
            // gets a real certificate, nor any HTTP (the connection is closed after it).
            return read(&self.challenges).get(name.as_deref()?).cloned();
        }
        if let Some(k) = name
            .as_deref()
            .and_then(|n| read(&self.by_name).get(n).cloned())
        {
            return Some(k);
        }
        if let Some((k, _)) = read(&self.fallback).as_ref() {
            return Some(k.clone());
        }
        let default = read(&self.default_name).clone()?;
        read(&self.by_name).get(&default).cloned()
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

/// Whether this CPU has AES and carry-less multiply instructions (fast AES-GCM): the server
/// then prefers AES-GCM to ChaCha20-Poly1305.
pub fn aes_hardware() -> bool {
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

/// Parses and checks a PEM certificate chain and its PEM key held in memory.
fn parse(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate chain ({e})"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block in the chain".into());
    }
    let der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("not a PEM key: {e}"))?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| format!("unusable key: {e}"))
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
    /// Loads `cert` (PEM chain, leaf first) and `key` as the fallback certificate; an error is
    /// one line naming the file and what is wrong with it.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Tls, String> {
        let stamp_before = stamp(cert, key);
        let certified = load(cert, key)?;
        let current = Arc::new(Current {
            fallback: RwLock::new(Some((Arc::new(certified), stamp_before))),
            ..Current::default()
        });
        Tls::build(
            Some((cert.to_path_buf(), key.to_path_buf())),
            current,
            false,
        )
    }

    /// No fallback: names without an installed certificate get the default name's, or a TLS
    /// alert. For `serve --acme-email` alone.
    pub fn without_files() -> Result<Tls, String> {
        Tls::build(None, Arc::default(), false)
    }

    /// The same certificates, with `acme-tls/1` also offered by ALPN (TLS-ALPN-01).
    pub fn with_acme_alpn(self) -> Result<Tls, String> {
        Tls::build(self.files, self.current, true)
    }

    fn build(
        files: Option<(PathBuf, PathBuf)>,
        current: Arc<Current>,
        acme: bool,
    ) -> Result<Tls, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // The server's suite order (see `suite_rank`), not the client's.
        config.ignore_client_order = true;
        if acme {
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
        // Stateless resumption: a returning client skips the full handshake.
        if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
            config.ticketer = ticketer;
        }
        Ok(Tls {
            files,
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The fallback's certificate file, when there is one.
    pub fn cert_path(&self) -> Option<&Path> {
        self.files.as_ref().map(|(c, _)| c.as_path())
    }

    /// Serves `chain_pem` (leaf first) with `key_pem` to handshakes naming `name` (exactly,
    /// any case) from now on. Errors are one line; the previous certificate stays then.
    pub fn install(&self, name: &str, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
        let certified = parse(chain_pem, key_pem)?;
        write(&self.current.by_name).insert(name.to_ascii_lowercase(), Arc::new(certified));
        Ok(())
    }

    /// Stops serving the certificate installed for `name`.
    pub fn uninstall(&self, name: &str) {
        write(&self.current.by_name).remove(&name.to_ascii_lowercase());
    }

    /// Whether a certificate is installed for `name`.
    pub fn has(&self, name: &str) -> bool {
        read(&self.current.by_name).contains_key(&name.to_ascii_lowercase())
    }

    /// Names without a certificate of their own get `name`'s (when there is no fallback).
    pub fn set_default_name(&self, name: &str) {
        *write(&self.current.default_name) = Some(name.to_ascii_lowercase());
    }

    /// Shows a TLS-ALPN-01 challenge certificate (DER, with its PKCS#8 key) to validation
    /// handshakes naming `name`; `None` withdraws it.
    pub fn set_challenge(
        &self,
        name: &str,
        cert_key: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), String> {
        let name = name.to_ascii_lowercase();
        let Some((cert, key)) = cert_key else {
            write(&self.current.challenges).remove(&name);
            return Ok(());
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
        // Not `from_der`: its consistency check parses the certificate, and webpki refuses the
        // critical acmeIdentifier extension every challenge certificate carries.
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("unusable challenge key: {e}"))?;
        let certified = CertifiedKey::new(vec![CertificateDer::from(cert)], signing);
        write(&self.current.challenges).insert(name, Arc::new(certified));
        Ok(())
    }

    /// Loads the files again when `force` or when their modification time or length changed.
    /// `Ok(true)`: new handshakes use the new certificate. On an error the certificate in use
    /// stays (established and new connections are unaffected). Without files: `Ok(false)`.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let Some((cert, key)) = &self.files else {
            return Ok(false);
        };
        let now = stamp(cert, key);
        if !force
            && read(&self.current.fallback)
                .as_ref()
                .is_some_and(|k| k.1 == now)
        {
            return Ok(false);
        }
        let loaded = load(cert, key);
        let mut k = write(&self.current.fallback);
        match (loaded, k.as_mut()) {
            (Ok(new), _) => *k = Some((Arc::new(new), now)),
            // A failed load is remembered too, so a bad file is reported once, not every poll.
            (Err(e), Some(old)) => {
                old.1 = now;
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        }
        Ok(true)
    }

    /// Reloads on every message from `wake` (SIGHUP) and whenever the files change (checked
    /// every `every`), on a thread of its own; each outcome is one log line. Without files it
    /// does nothing.
    pub fn spawn_reloader(
        &self,
        wake: std::sync::mpsc::Receiver<()>,
        every: Duration,
    ) -> io::Result<()> {
        let Some(path) = self.cert_path().map(Path::to_path_buf) else {
            return Ok(());
        };
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
                        Ok(true) => {
                            eprintln!("assetd: TLS certificate reloaded from {}", path.display())
                        }
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
    /// chose HTTP/2 by ALPN. A TLS-ALPN-01 validation handshake (`acme-tls/1`) is an error
    /// once complete: the validator only looks at the certificate. The caller bounds the time
    /// it may take.
    pub(super) async fn accept(&self, tcp: TcpStream) -> io::Result<(TlsStream, bool)> {
        let stream = self.acceptor.accept(tcp).await?;
        let alpn = stream.get_ref().1.alpn_protocol();
        if alpn == Some(ACME_TLS_ALPN) {
            return Err(io::Error::other("TLS-ALPN-01 validation handshake"));
        }
        let h2 = alpn == Some(b"h2");
        Ok((stream, h2))
    }
}
