//! Automatic certificates (issue 8): `serve --acme-email` against Pebble, Let's Encrypt's
//! test CA (Debian package `pebble`, installed by `.ci/run`). Every test starts its own
//! Pebble on free ports; certificates are checked by a rustls client that names the host by
//! SNI and trusts only Pebble's root (from its management endpoint `/roots/0`).
//!
//! Real validation (no `PEBBLE_VA_ALWAYS_VALID`): `pebble-challtestsrv` is Pebble's DNS and
//! answers 127.0.0.1 for every name, and Pebble's `tlsPort`/`httpPort` are assetd's ports.

use crate::harness::{Server, credentials, curl, import, label_of, project};
use crate::pebble::{
    Pebble, PebbleOptions, eventually, free_port, have_pebble, root_pem, served_cert,
    served_cert_alpn, wait_for_cert,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

const BASE: &str = "assets.test";
const HOST: &str = "box.test";

/// `/healthz` over the plain listener.
fn healthz(plain: SocketAddr) -> String {
    let r = crate::harness::get(plain, HOST, "/healthz");
    assert_eq!(r.status, 200);
    r.text()
}

/// The plain listener's address from the banner (`redirecting http://ADDR to https`).
fn plain_addr(srv: &Server) -> SocketAddr {
    srv.banner
        .iter()
        .find_map(|l| l.strip_prefix("redirecting http://"))
        .and_then(|l| l.split_whitespace().next())
        .expect("redirecting line")
        .parse()
        .unwrap()
}

fn start(data: &Path, pebble: &Pebble, extra: &[&str]) -> Server {
    let mut args: Vec<String> = vec![
        "--base-domain".into(),
        BASE.into(),
        "--public-host".into(),
        HOST.into(),
    ];
    args.extend(pebble.args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &args)
}

/// Creates service `name` and its `dev` environment through the API over https (the
/// management host's certificate, checked by curl); returns the environment's domain.
fn create_environment(srv: &Server, root_pem: &Path, auth: &str, name: &str) -> String {
    let port = srv.addr.port();
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let base = format!("https://{HOST}:{port}");
    let common = [
        "--cacert",
        root_pem.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-u",
        auth,
    ];
    let (ok, out, err) = curl(
        &[
            &common[..],
            &[
                "-d",
                &format!("UniqueName={name}"),
                "-d",
                &format!("FriendlyName={name}"),
                &format!("{base}/v1/Services"),
            ],
        ]
        .concat(),
    );
    assert!(ok, "create service: {err}");
    let svc: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}"));
    let sid = svc["sid"].as_str().unwrap();
    let (ok, out, err) = curl(
        &[
            &common[..],
            &[
                "-d",
                "UniqueName=dev",
                "-d",
                "DomainSuffix=dev",
                &format!("{base}/v1/Services/{sid}/Environments"),
            ],
        ]
        .concat(),
    );
    assert!(ok, "create environment: {err}");
    let env: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}"));
    env["domain_name"]
        .as_str()
        .unwrap_or_else(|| panic!("domain_name in {out}"))
        .to_string()
}

#[test]
fn acme_certificates_for_the_management_host_and_an_environment_created_after_start() {
    if !have_pebble(
        "acme_certificates_for_the_management_host_and_an_environment_created_after_start",
    ) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let (sid, token) = credentials(data.path());
    let pebble = Pebble::start(PebbleOptions {
        always_valid: true,
        validity: 90 * 86_400,
        tls_port: 1,
        http_port: 1,
    });
    let srv = start(data.path(), &pebble, &["--http-listen", "127.0.0.1:0"]);
    let plain = plain_addr(&srv);
    let host_cert = wait_for_cert(srv.addr, HOST, &pebble.root, 60);

    // SECURITY: a TLS-ALPN-01 handshake with no challenge open gets no certificate at all.
    let err = served_cert_alpn(srv.addr, HOST, &pebble.root, &[b"acme-tls/1"]).unwrap_err();
    assert!(err.to_lowercase().contains("alert"), "{err}");
    // An ordinary client offering h2 is served as before.
    assert_eq!(
        served_cert_alpn(srv.addr, HOST, &pebble.root, &[b"h2", b"http/1.1"]).unwrap(),
        host_cert
    );

    // A name without a certificate of its own gets the management host's (its name check
    // fails), not a crash.
    let err = served_cert(srv.addr, "nothing-1234-dev.assets.test", &pebble.root).unwrap_err();
    assert!(
        err.contains("NotValidForName") || err.contains("name"),
        "{err}"
    );

    // An environment created through the API after the start gets its own certificate.
    let pem = root_pem(data.path(), &pebble.root);
    let domain = create_environment(&srv, &pem, &format!("{sid}:{token}"), "later");
    assert!(domain.ends_with(&format!(".{BASE}")), "{domain}");
    let env_cert = wait_for_cert(srv.addr, &domain, &pebble.root, 60);
    assert_ne!(env_cert, host_cert);
    let health = eventually(10, "both names in /healthz", || {
        let h = healthz(plain);
        (h.contains(&format!("acme {HOST}: valid until"))
            && h.contains(&format!("acme {domain}: valid until")))
        .then_some(h)
    });
    assert!(health.starts_with("ok\n"), "{health}");

    // Keys are private files in the data directory.
    use std::os::unix::fs::PermissionsExt;
    let ca_dir = std::fs::read_dir(data.path().join("acme"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in [
        "account.json".to_string(),
        format!("{HOST}.key"),
        format!("{domain}.key"),
    ] {
        let mode = std::fs::metadata(ca_dir.join(&f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    // A restart serves the stored certificates without asking the CA again.
    drop(srv);
    let srv = start(data.path(), &pebble, &[]);
    assert_eq!(
        served_cert(srv.addr, HOST, &pebble.root).unwrap(),
        host_cert
    );
    assert_eq!(
        served_cert(srv.addr, &domain, &pebble.root).unwrap(),
        env_cert
    );
    let log = srv.stderr.text();
    assert!(!log.contains("requesting a certificate"), "{log}");
}

#[test]
fn acme_renews_before_expiry() {
    if !have_pebble("acme_renews_before_expiry") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let pebble = Pebble::start(PebbleOptions {
        always_valid: true,
        validity: 60,
        tls_port: 1,
        http_port: 1,
    });
    // 60-second certificates renewed 50 s before expiry: every ~10 s.
    let srv = start(data.path(), &pebble, &["--acme-renew-before", "50s"]);
    let first = wait_for_cert(srv.addr, HOST, &pebble.root, 60);
    let second = eventually(60, "a renewed certificate", || {
        served_cert(srv.addr, HOST, &pebble.root)
            .ok()
            .filter(|c| *c != first)
    });
    assert_ne!(first, second);
    assert!(
        srv.stderr
            .text()
            .contains("renewing a certificate for box.test")
    );
}

/// Real validation of the management host and an environment imported before the start.
fn real_validation(challenge: &str) {
    let data = tempfile::tempdir().unwrap();
    let proj = project(&[("hello.txt", b"hello over ACME")]);
    let label = label_of(&import(proj.path(), data.path(), "real", &[]));
    let domain = format!("{label}.{BASE}");
    let (tls_port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start(PebbleOptions {
        always_valid: false,
        validity: 90 * 86_400,
        tls_port,
        http_port,
    });
    let listen = format!("127.0.0.1:{tls_port}");
    let http = format!("127.0.0.1:{http_port}");
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        listen,
        "--http-listen".into(),
        http,
        "--data".into(),
        data.path().to_str().unwrap().into(),
        "--base-domain".into(),
        BASE.into(),
        "--public-host".into(),
        HOST.into(),
        "--acme-challenge".into(),
        challenge.into(),
    ];
    args.extend(pebble.args());
    let mut cmd = Command::new(crate::harness::BIN);
    cmd.args(&args);
    let srv = Server::spawn(cmd);
    wait_for_cert(srv.addr, HOST, &pebble.root, 60);
    wait_for_cert(srv.addr, &domain, &pebble.root, 60);
    // The asset is served over the new certificate.
    let pem = root_pem(data.path(), &pebble.root);
    let port = srv.addr.port();
    let resolve = format!("{domain}:{port}:127.0.0.1");
    let (ok, out, err) = curl(&[
        "--cacert",
        pem.to_str().unwrap(),
        "--resolve",
        &resolve,
        &format!("https://{domain}:{port}/hello.txt"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "hello over ACME");
}

#[test]
fn acme_tls_alpn_01_validated_for_real() {
    if have_pebble("acme_tls_alpn_01_validated_for_real") {
        real_validation("tls-alpn-01");
    }
}

#[test]
fn acme_http_01_validated_for_real() {
    if have_pebble("acme_http_01_validated_for_real") {
        real_validation("http-01");
    }
}

#[test]
fn an_unreachable_acme_directory_keeps_serving_and_shows_in_healthz() {
    let data = tempfile::tempdir().unwrap();
    let closed = free_port();
    let directory = format!("https://127.0.0.1:{closed}/dir");
    let srv = Server::start(
        data.path(),
        &[
            "--base-domain",
            BASE,
            "--public-host",
            HOST,
            "--acme-email",
            "ops@box.test",
            "--acme-directory",
            &directory,
            "--http-listen",
            "127.0.0.1:0",
        ],
    );
    let plain = plain_addr(&srv);
    let health = eventually(20, "the ACME error in /healthz", || {
        let h = healthz(plain);
        h.contains("acme account: error:").then_some(h)
    });
    assert!(health.starts_with("ok\n"), "{health}");
    assert!(health.contains(&directory), "{health}");
    assert!(health.contains("retry in"), "{health}");
    assert!(
        health.contains(&format!("acme {HOST}: no certificate yet")),
        "{health}"
    );
    // HTTPS without any certificate yet: a TLS alert, and the server goes on.
    let other = rcgen::CertificateParams::new(vec![HOST.into()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let err = served_cert(srv.addr, HOST, other.der()).unwrap_err();
    assert!(
        err.to_lowercase().contains("alert") || err.contains("Handshake"),
        "{err}"
    );
    assert_eq!(healthz(plain).lines().next(), Some("ok"));
    assert!(srv.stderr.text().contains("assetd: ACME: account with"));
}

#[test]
fn acme_options_are_checked_in_one_line() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let bad_ca = data.path().join("bad.pem");
    std::fs::write(&bad_ca, "not a certificate").unwrap();
    let bad_ca = bad_ca.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--acme-email", "a@b.org", "--base-domain", BASE],
            "--public-host",
        ),
        (
            &[
                "--acme-email",
                "nobody",
                "--public-host",
                HOST,
                "--base-domain",
                BASE,
            ],
            "not an email",
        ),
        (
            &["--acme-email", "a@b.org", "--public-host", HOST],
            "--base-domain",
        ),
        (
            &[
                "--acme-email",
                "a@b.org",
                "--public-host",
                HOST,
                "--base-domain",
                BASE,
                "--acme-ca-cert",
                bad_ca,
            ],
            "not a PEM certificate",
        ),
        (
            &[
                "--acme-email",
                "a@b.org",
                "--public-host",
                HOST,
                "--base-domain",
                BASE,
                "--acme-challenge",
                "http-01",
            ],
            "needs --http-listen",
        ),
        (
            &[
                "--acme-email",
                "a@b.org",
                "--public-host",
                HOST,
                "--base-domain",
                BASE,
                "--acme-directory",
                "http://x/dir",
            ],
            "https://",
        ),
        (&["--acme-directory", "https://x/dir"], "need --acme-email"),
        (
            &[
                "--acme-email",
                "a@b.org",
                "--public-url",
                "https://10.0.0.1",
                "--base-domain",
                BASE,
            ],
            "not a DNS name",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--data", d];
        all.extend_from_slice(args);
        let (ok, _, err) = crate::harness::cli(&all);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
