//! The proxy's TLS: the only file naming rustls and rcgen.
//!
//! A local certificate authority is created once in the proxy's directory (`ca.pem`, and
//! `ca-key.pem` with mode 0600 in a 0700 directory) and reused on every start, so
//! `NODE_EXTRA_CA_CERTS` stays valid. Each start signs a fresh leaf certificate for
//! [`super::ALLOWED_HOSTS`] whose key lives in memory only. TLS 1.3 and 1.2 with rustls'
//! `ring` provider.
//!
//! Towards an `https://` assetd server the proxy is a TLS client ([`Client`]) that verifies
//! the server against `--ca-cert` (a private CA or the server's self-signed certificate), else
//! against the Mozilla roots built in (as the CLI does).

use super::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};
use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The CA certificate's file name in the proxy's directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name (mode 0600).
pub const CA_KEY: &str = "ca-key.pem";

/// The CA's subject; the CA's identity is its key, the name is only a label.
const CA_NAME: &str = "assetd toolkit-proxy local CA";

/// The TLS side of the proxy: the server configuration with the leaf certificate.
pub struct Tls {
    config: Arc<ServerConfig>,
    /// Where the CA certificate is (what `NODE_EXTRA_CA_CERTS` must name).
    pub ca_cert: PathBuf,
}

impl Tls {
    /// Loads the CA from `dir` (creating it on first use) and signs a leaf certificate for
    /// `hosts`. Errors name the file and what to do.
    pub fn load_or_create(dir: &Path, hosts: &[&str]) -> Result<Tls, Error> {
        let (ca_params, ca_key, ca_der) = load_or_create_ca(dir)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate()?;
        let mut leaf =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
        leaf.distinguished_name = DistinguishedName::new();
        leaf.distinguished_name.push(DnType::CommonName, hosts[0]);
        leaf.is_ca = IsCa::NoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        leaf.not_before = date_time_ymd(2025, 1, 1);
        leaf.not_after = date_time_ymd(2045, 1, 1);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(vec![leaf_cert.der().clone(), ca_der], key)?;
        Ok(Tls {
            config: Arc::new(config),
            ca_cert: dir.join(CA_CERT),
        })
    }

    /// Completes a TLS handshake as the server on `tcp` (within the socket's timeouts).
    pub fn accept(&self, mut tcp: TcpStream) -> io::Result<TlsStream> {
        let mut conn = ServerConnection::new(self.config.clone()).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(TlsStream(StreamOwned::new(conn, tcp)))
    }
}

/// One accepted TLS connection.
pub struct TlsStream(StreamOwned<ServerConnection, TcpStream>);

impl TlsStream {
    /// Sends close_notify and flushes it (best effort).
    pub fn close(&mut self) {
        self.0.conn.send_close_notify();
        let _ = self.0.flush();
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            // A peer that closes without close_notify has still finished its requests.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            r => r,
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The client side towards an `https://` assetd server: one configuration (its session cache
/// lets the proxy's many short connections resume TLS sessions) and the server's name.
#[derive(Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    host: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls::Client({})", self.host)
    }
}

impl Client {
    /// Verifies `host` against the certificates of the PEM file `ca_cert`, else against the
    /// built-in public roots. A bad `ca_cert` is a one-line error naming the file.
    pub fn new(host: &str, ca_cert: Option<&Path>) -> Result<Client, Error> {
        let mut roots = RootCertStore::empty();
        match ca_cert {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let fail = |why: String| format!("--ca-cert {}: {why}", path.display());
                let pem = fs::read(path).map_err(|e| fail(e.to_string()))?;
                for der in CertificateDer::pem_slice_iter(&pem) {
                    let der = der.map_err(|e| fail(format!("not a PEM file ({e})")))?;
                    roots
                        .add(der)
                        .map_err(|e| fail(format!("not a usable certificate ({e})")))?;
                }
                if roots.is_empty() {
                    return Err(fail("holds no CERTIFICATE block".into()).into());
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("--url: {host:?} is not a valid TLS server name"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The relay speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            config: Arc::new(config),
            name,
            host: host.to_string(),
        })
    }

    /// Completes a TLS handshake with the server on `tcp` (within the socket's timeouts). A
    /// certificate that cannot be verified, or a server that does not speak TLS, is an
    /// `InvalidData` error whose text is the one-line message naming the host and the fix.
    pub fn connect(&self, mut tcp: TcpStream) -> io::Result<ClientStream> {
        let mut conn = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(io::Error::other)?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
                return Err(match tls {
                    Some(why @ rustls::Error::InvalidCertificate(_)) => io::Error::new(
                        io::ErrorKind::InvalidData,
                        crate::client::certificate_error(&self.host, &why.to_string()),
                    ),
                    Some(other) => io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "no TLS with {} ({other}): is it an http:// server? Then give --url http://…",
                            self.host
                        ),
                    ),
                    None => e,
                });
            }
        }
        Ok(ClientStream(Box::new(StreamOwned::new(conn, tcp))))
    }
}

/// One TLS connection to the assetd server.
pub struct ClientStream(Box<StreamOwned<ClientConnection, TcpStream>>);

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The CA's parameters (what an issuer needs: its name, key usages and key identifier
/// method), the same on every start.
fn ca_params() -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2045, 1, 1);
    Ok(p)
}

/// The CA in `dir`: loads `ca-key.pem` (and `ca.pem`, recreated from the key when it is
/// missing), or creates both on first use.
fn load_or_create_ca(
    dir: &Path,
) -> Result<(CertificateParams, KeyPair, CertificateDer<'static>), Error> {
    let key_path = dir.join(CA_KEY);
    let cert_path = dir.join(CA_CERT);
    let params = ca_params()?;
    let key = match fs::read_to_string(&key_path) {
        Ok(pem) => {
            let mode = fs::metadata(&key_path)?.permissions().mode() & 0o777;
            // SECURITY: a CA key others can read lets them impersonate the hosts the toolkit
            // trusts this CA for; refuse to use it rather than quietly go on.
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} is readable by other users (mode {mode:o}): run chmod 600 on it, or delete it to create a new CA",
                    key_path.display()
                )
                .into());
            }
            KeyPair::from_pem(&pem).map_err(|e| {
                format!(
                    "{} is not a valid key ({e}): delete it to create a new CA",
                    key_path.display()
                )
            })?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir(dir)?;
            let key = KeyPair::generate()?;
            // A new key means a new CA: any old certificate no longer matches it.
            let _ = fs::remove_file(&cert_path);
            write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            key
        }
        Err(e) => return Err(format!("cannot read {}: {e}", key_path.display()).into()),
    };
    let der = match fs::read_to_string(&cert_path) {
        Ok(pem) => pem_to_der(&pem)
            .ok_or_else(|| format!("{} holds no certificate: delete it", cert_path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let cert = params.self_signed(&key)?;
            write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
            cert.der().clone()
        }
        Err(e) => return Err(format!("cannot read {}: {e}", cert_path.display()).into()),
    };
    Ok((params, key, der))
}

/// The first certificate of a PEM text.
fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()
}

/// Creates `dir` (and its parents) if missing; the last level with mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", dir.display()).into()),
    }
}

/// Writes `path` through a temporary file created with `mode` (never wider, whatever the
/// umask), then renames it into place.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let write = || -> io::Result<()> {
        // SECURITY: the mode is set when the file is created, so the key is never readable
        // by others, not even for a moment.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_created_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("config").join("toolkit-proxy");
        let hosts = ["serverless.twilio.com"];
        let first = Tls::load_or_create(&ca_dir, &hosts).unwrap();
        let key = ca_dir.join(CA_KEY);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&ca_dir), 0o700);
        let cert = fs::read(&first.ca_cert).unwrap();
        let key_pem = fs::read(&key).unwrap();
        // A second start reuses both files unchanged.
        Tls::load_or_create(&ca_dir, &hosts).unwrap();
        assert_eq!(fs::read(&first.ca_cert).unwrap(), cert);
        assert_eq!(fs::read(&key).unwrap(), key_pem);
        // A key others can read is refused, with the fix in the message.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Tls::load_or_create(&ca_dir, &hosts).err().unwrap();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}
