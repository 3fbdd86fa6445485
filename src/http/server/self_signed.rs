//! `serve --tls-self-signed`: a self-signed certificate made once in the data directory
//! (`tls/self-signed.pem`, and `tls/self-signed-key.pem` with mode 0600 in a 0700 directory),
//! reused on every start so clients that trust it keep trusting it.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The certificate's files and identity.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the certificate (DER), as colon-separated upper-case hex.
    pub fingerprint: String,
    /// Made on this start (else loaded from the data directory).
    pub created: bool,
    /// The names and addresses it was made for (empty when loaded).
    pub names: Vec<String>,
}

/// Loads the certificate from `data/tls/`, or makes it for `*.{base_domain}`, `base_domain`,
/// `localhost`, the host of `public_url`, and this box's addresses (`listen` when it is a
/// specific address, else every interface's, loopback included). Errors are one line.
pub fn load_or_create(
    data: &Path,
    base_domain: &str,
    public_url: Option<&str>,
    listen: IpAddr,
) -> Result<SelfSigned, String> {
    let dir = data.join("tls");
    let cert = dir.join("self-signed.pem");
    let key = dir.join("self-signed-key.pem");
    if cert.exists() && key.exists() {
        let pem = fs::read(&cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
        let der = first_der(&pem)
            .ok_or_else(|| format!("{} holds no certificate: delete it", cert.display()))?;
        return Ok(SelfSigned {
            cert,
            key,
            fingerprint: fingerprint(&der),
            created: false,
            names: Vec::new(),
        });
    }
    let mut names = vec![format!("*.{base_domain}"), base_domain.to_string()];
    let mut add = |n: String| {
        if !names.contains(&n) {
            names.push(n);
        }
    };
    add("localhost".into());
    if let Some(host) = public_url.and_then(|u| u.split_once("://")).map(|(_, h)| h) {
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        add(host.to_string());
    }
    let mut ips = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    if listen.is_unspecified() {
        ips.extend(interface_addresses());
    } else {
        ips.push(listen);
    }
    for ip in ips {
        add(ip.to_string());
    }
    let fail = |e: rcgen::Error| format!("cannot make the self-signed certificate: {e}");
    let key_pair = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::new(names.clone()).map_err(fail)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("assetd {base_domain}"));
    // An end-entity certificate: clients trust it directly (as its own anchor).
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2045, 1, 1);
    let made = params.self_signed(&key_pair).map_err(fail)?;
    let io = |p: &Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io(&dir, e))?;
    // SECURITY: the key is written 0600 before any byte of it, and never readable by others.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key)
        .map_err(|e| io(&key, e))?;
    f.write_all(key_pair.serialize_pem().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&key, e))?;
    fs::write(&cert, made.pem()).map_err(|e| io(&cert, e))?;
    Ok(SelfSigned {
        cert,
        key,
        fingerprint: fingerprint(made.der()),
        created: true,
        names,
    })
}

/// The DER of the first certificate in a PEM text.
pub(super) fn first_der(pem: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")? + 27;
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = text[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// `AB:CD:…` SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// Addresses of this box's network interfaces (IPv4 and IPv6, link-local IPv6 left out).
fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                if (ip.segments()[0] & 0xffc0) != 0xfe80 {
                    out.push(IpAddr::V6(ip));
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn made_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        let a = super::load_or_create(dir.path(), "assets.lan", Some("https://pi.lan:8443"), ip)
            .unwrap();
        assert!(a.created);
        for n in ["*.assets.lan", "assets.lan", "pi.lan", "127.0.0.1", "::1"] {
            assert!(a.names.iter().any(|x| x == n), "{n} in {:?}", a.names);
        }
        let b = super::load_or_create(dir.path(), "other", None, ip).unwrap();
        assert!(!b.created);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        crate::http::server::Tls::from_files(&b.cert, &b.key).unwrap();
    }
}
