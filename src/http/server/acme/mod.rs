//! Automatic certificates (`serve --acme-email`): an ACME (RFC 8555) client that keeps one
//! certificate per name (the management host and every
//! environment domain) and installs each in the server's [`Tls`] for SNI.
//!
//! One background thread with its own small runtime asks for the names every [`POLL`] (a new
//! environment gets its certificate within seconds of being created), obtains what is missing,
//! and renews a certificate [`AcmeConfig::renew_before`] its expiry (a third of its lifetime
//! for certificates shorter than that). At most [`MAX_CONCURRENT`] orders run at once. A
//! failure is logged in one line, shown by [`Acme::health`] (`/healthz`), and retried after
//! a back-off doubling from 1 min to 6 h; the server keeps serving whatever happens here.
//!
//! Files, in `DATA/acme/{CA host}-{hash of the directory URL}/` (mode 0700): `account.json`
//! (the account key), `{name}.crt` (chain) and `{name}.key`, all mode 0600. A restart reuses
//! them: no new order while a stored certificate is not due.
//!
//! `manager.rs` schedules, `order.rs` runs one order, `transport.rs` carries its requests
//! over the CLI's HTTPS client; this folder is the only one naming instant-acme.

mod manager;
mod order;
mod transport;

use manager::Manager;

use super::Tls;
use super::cert_time::validity;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = instant_acme::LetsEncrypt::Production.url();

/// How often the set of names is read again.
pub const POLL: Duration = Duration::from_secs(2);

/// Most orders in flight at once.
pub const MAX_CONCURRENT: usize = 2;

/// The longest one account set-up, and one order, may take before it counts as failed.
const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(60);
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// The first retry waits this long, each further one twice as long, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: u64 = 60;
const BACKOFF_MAX: u64 = 6 * 3600;

/// How a name is proven to the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// TLS-ALPN-01 (RFC 8737) on the HTTPS listener (the CA connects to port 443).
    TlsAlpn01,
    /// HTTP-01 on the plain listener, `--http-listen` (the CA connects to port 80).
    Http01,
}

impl std::str::FromStr for Challenge {
    type Err = String;

    fn from_str(s: &str) -> Result<Challenge, String> {
        match s {
            "tls-alpn-01" => Ok(Challenge::TlsAlpn01),
            "http-01" => Ok(Challenge::Http01),
            _ => Err(format!(
                "--acme-challenge {s:?} must be tls-alpn-01 or http-01"
            )),
        }
    }
}

impl std::fmt::Display for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Challenge::TlsAlpn01 => "tls-alpn-01",
            Challenge::Http01 => "http-01",
        })
    }
}

/// What the manager needs.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The account's contact address.
    pub email: String,
    /// The CA's directory URL (`https://…`).
    pub directory: String,
    /// A PEM root certificate the CA's own HTTPS is checked against (a test CA); `None`: the
    /// system's trust store.
    pub ca_cert: Option<PathBuf>,
    /// The data directory; the files go in its `acme/` folder.
    pub data: PathBuf,
    /// Renewal starts this long before a certificate expires.
    pub renew_before: Duration,
    pub challenge: Challenge,
}

/// The names to keep certificates for, asked every [`POLL`]; an error keeps the last set.
pub type Names = Box<dyn Fn() -> Result<Vec<String>, String> + Send>;

/// A handle on the running manager: HTTP-01 answers and the status.
#[derive(Clone, Default)]
pub struct Acme {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// HTTP-01: token → key authorization, while a challenge is open.
    tokens: RwLock<HashMap<String, String>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The last account error, and when it is retried (Unix seconds).
    account: Option<(String, u64)>,
    names: BTreeMap<String, Name>,
}

/// One name's certificate and schedule (times in Unix seconds).
#[derive(Debug, Default, Clone)]
struct Name {
    not_after: Option<u64>,
    /// When an order is due (0: now).
    due: u64,
    busy: bool,
    failures: u32,
    /// The last error and when it is retried.
    error: Option<(String, u64)>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks `--acme-ca-cert`: a readable PEM file whose first block is a certificate. One line.
pub fn check_ca_cert(path: &Path) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|e| format!("--acme-ca-cert {}: {e}", path.display()))?;
    pem_validity(&bytes).map(|_| ()).ok_or_else(|| {
        format!(
            "--acme-ca-cert {}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )
    })
}

/// `(notBefore, notAfter)` of the first certificate of a PEM chain.
fn pem_validity(pem: &[u8]) -> Option<(u64, u64)> {
    super::self_signed::first_der(pem).and_then(|der| validity(&der))
}

/// Whether `name` is a plain DNS name (lower-case letters, digits, `-`, dots between labels,
/// a top-level label that is not all digits, so no IPv4 address): the only names ordered, and
/// so the only ones that become file names.
pub fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_lowercase()))
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// `DATA/acme/{host}-{8 hex digits of SHA-256(directory)}`: one folder per CA.
fn ca_dir(data: &Path, directory: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let host: String = directory
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash = Sha256::digest(directory.as_bytes());
    data.join("acme").join(format!(
        "{host}-{:02x}{:02x}{:02x}{:02x}",
        hash[0], hash[1], hash[2], hash[3]
    ))
}

/// Writes `bytes` to `path` through a temporary file and a rename, mode 0600 from the first
/// byte.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    // SECURITY: keys (account and certificates) are never readable by other users.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)
}

/// When a certificate valid from `not_before` to `not_after` is renewed.
fn renewal_due(not_before: u64, not_after: u64, renew_before: u64) -> u64 {
    let life = not_after.saturating_sub(not_before);
    let before = if renew_before >= life {
        life / 3
    } else {
        renew_before
    };
    not_after.saturating_sub(before)
}

/// The wait before retry number `failures` (1: the first).
fn backoff(failures: u32) -> u64 {
    BACKOFF_MIN
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
        .min(BACKOFF_MAX)
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cause = c.source();
    }
    s.replace(['\n', '\r'], " ")
}

impl Acme {
    /// Starts the manager thread for the names `names` yields; certificates go into `tls`,
    /// which also answers with `default` (the management host)'s certificate for names that
    /// have none yet. Errors (the data folder) are one line.
    pub fn start(
        config: AcmeConfig,
        tls: Tls,
        default: &str,
        names: Names,
    ) -> Result<Acme, String> {
        let dir = ca_dir(&config.data, &config.directory);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        tls.set_default_name(default);
        let acme = Acme::default();
        let mut manager = Manager {
            shared: acme.shared.clone(),
            config,
            dir,
            tls,
            names,
            account: None,
            account_failures: 0,
        };
        // Stored certificates are served from the first handshake on.
        manager.refresh_names();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("ACME: cannot start its runtime: {e}"))?;
        std::thread::Builder::new()
            .name("assetd-acme".into())
            .spawn(move || runtime.block_on(manager.run()))
            .map_err(|e| format!("ACME: cannot start its thread: {e}"))?;
        Ok(acme)
    }

    /// The HTTP-01 key authorization for `token`, while its challenge is open.
    pub fn http01(&self, token: &str) -> Option<String> {
        let tokens = self.shared.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens.get(token).cloned()
    }

    /// One line per name (and one for an account error): its certificate's expiry, or the
    /// last error and when it is retried.
    pub fn health(&self) -> Vec<String> {
        let state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let t = now();
        let retry = |at: u64| crate::model::time::human_duration(at.saturating_sub(t));
        let mut out = Vec::new();
        if let Some((e, at)) = &state.account {
            out.push(format!(
                "acme account: error: {e} (retry in {})",
                retry(*at)
            ));
        }
        for (name, n) in &state.names {
            let have = match n.not_after {
                Some(at) => format!(
                    "valid until {}, renewal from {}",
                    crate::model::time::iso8601(at),
                    crate::model::time::iso8601(n.due)
                ),
                None => "no certificate yet".into(),
            };
            let line = match &n.error {
                Some((e, at)) => {
                    format!("acme {name}: {have}; error: {e} (retry in {})", retry(*at))
                }
                None if n.busy => format!("acme {name}: {have}; ordering"),
                None => format!("acme {name}: {have}"),
            };
            out.push(line);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_and_backoff() {
        let day = 86_400;
        // 90 days, 30 before: at day 60. A 6-day certificate: a third of its life before.
        assert_eq!(renewal_due(0, 90 * day, 30 * day), 60 * day);
        assert_eq!(renewal_due(0, 6 * day, 30 * day), 4 * day);
        assert_eq!(backoff(1), 60);
        assert_eq!(backoff(2), 120);
        assert_eq!(backoff(40), BACKOFF_MAX);
    }

    #[test]
    fn dns_names_and_folders() {
        assert!(is_dns_name("assets.example.org"));
        assert!(is_dns_name("svc-1234-dev.assets.example.org"));
        for bad in [
            "",
            "localhost",
            "a..b",
            "../x.org",
            "a/b.org",
            "-a.org",
            "A.org",
            "a.org.",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        let d = ca_dir(Path::new("/d"), "https://127.0.0.1:14000/dir");
        assert!(d.starts_with("/d/acme"));
        let leaf = d.file_name().unwrap().to_str().unwrap();
        assert!(leaf.starts_with("127.0.0.1_14000-"), "{leaf}");
        assert_eq!(leaf.len(), "127.0.0.1_14000-".len() + 8);
    }

    #[test]
    fn challenge_names() {
        assert_eq!("http-01".parse::<Challenge>(), Ok(Challenge::Http01));
        assert_eq!("tls-alpn-01".parse::<Challenge>(), Ok(Challenge::TlsAlpn01));
        assert!("dns-01".parse::<Challenge>().is_err());
        let (der, _) = order::alpn_certificate("a.example.org", &[7; 32]).unwrap();
        assert!(validity(&der).is_some());
    }
}
