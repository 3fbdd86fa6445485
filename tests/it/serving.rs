//! End-to-end serving through the real binary: visibility, root rules, conditional and range
//! requests, HEAD, gzip, large bodies.

use crate::harness::*;
use std::io::Read;

const HELLO: &str = "Ahoy! This text is long enough to be worth compressing. ";

struct Fixture {
    _project: tempfile::TempDir,
    data: tempfile::TempDir,
    label: String,
    token: String,
    hello: Vec<u8>,
    secret: Vec<u8>,
}

fn fixture() -> Fixture {
    let hello = HELLO.repeat(40).into_bytes();
    let secret = noise(5000, 7);
    let project = project(&[
        ("hello.txt", &hello),
        ("secret.protected.mp3", &secret),
        ("data.private.json", b"{\"pin\": 1234}"),
        ("assets/index.html", b"<h1>root</h1>"),
        ("audio/hold music.mp3", b"hold"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let out = import(project.path(), data.path(), "example", &[]);
    let label = label_of(&out);
    let (_, token) = credentials(data.path());
    Fixture {
        _project: project,
        data,
        label,
        token,
        hello,
        secret,
    }
}

#[test]
fn public_protected_private_and_root() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let host = format!("{}.localhost:{}", f.label, srv.addr.port());

    let r = srv.get(&host, "/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, f.hello);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-length"),
        Some(f.hello.len().to_string().as_str())
    );
    let digest = assetd::model::Digest::of(&f.hello).to_hex();
    assert_eq!(r.header("etag"), Some(format!("\"{digest}\"").as_str()));

    // Protected: 403 without or with a bad signature; 200 with a valid one over the URL used.
    assert_eq!(srv.get(&host, "/secret.mp3").status, 403);
    let url = format!("http://{host}/secret.mp3");
    let sig = assetd::sign::compute(&f.token, &url, &[]);
    let r = srv.request("GET", &host, "/secret.mp3", &[("X-Twilio-Signature", &sig)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, f.secret);
    assert_eq!(r.header("content-type"), Some("audio/mpeg"));
    let bad = assetd::sign::compute("not-the-token", &url, &[]);
    let r = srv.request("GET", &host, "/secret.mp3", &[("X-Twilio-Signature", &bad)]);
    assert_eq!(r.status, 403);
    // Signed without the port (Twilio's libraries also accept that form).
    let portless = format!("http://{}.localhost/secret.mp3", f.label);
    let sig = assetd::sign::compute(&f.token, &portless, &[]);
    let r = srv.request("GET", &host, "/secret.mp3", &[("X-Twilio-Signature", &sig)]);
    assert_eq!(r.status, 200);
    // A signature for another path does not open this one.
    let other = assetd::sign::compute(&f.token, &format!("http://{host}/hello.txt"), &[]);
    let r = srv.request(
        "GET",
        &host,
        "/secret.mp3",
        &[("X-Twilio-Signature", &other)],
    );
    assert_eq!(r.status, 403);

    // Private: indistinguishable from a missing asset.
    let private = srv.get(&host, "/data.json");
    let missing = srv.get(&host, "/nope.json");
    assert_eq!(private.status, 404);
    assert_eq!(missing.status, 404);
    assert_eq!(private.body, missing.body);

    // `/` serves /assets/index.html when there is no `/` asset.
    let r = srv.get(&host, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<h1>root</h1>");

    // Percent-encoded paths, path-style URLs, unknown hosts, other methods.
    assert_eq!(srv.get(&host, "/audio/hold-music.mp3").body, b"hold");
    let r = srv.get("127.0.0.1", &format!("/e/{}/hello.txt", f.label));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, f.hello);
    let path_style_url = format!(
        "http://127.0.0.1:{}/e/{}/secret.mp3",
        srv.addr.port(),
        f.label
    );
    let sig = assetd::sign::compute(&f.token, &path_style_url, &[]);
    let r = srv.request(
        "GET",
        &format!("127.0.0.1:{}", srv.addr.port()),
        &format!("/e/{}/secret.mp3", f.label),
        &[("X-Twilio-Signature", &sig)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        srv.get("nothing-0000-dev.localhost", "/hello.txt").status,
        404
    );
    assert_eq!(
        srv.get("127.0.0.1", "/e/nothing-0000-dev/hello.txt").status,
        404
    );
    let r = srv.request("POST", &host, "/hello.txt", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = srv.request("DELETE", &host, "/hello.txt", &[]);
    assert_eq!(r.status, 405);
}

#[test]
fn conditional_range_head_and_gzip() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let host = format!("{}.localhost", f.label);
    let etag = srv
        .get(&host, "/hello.txt")
        .header("etag")
        .unwrap()
        .to_string();

    let r = srv.request("GET", &host, "/hello.txt", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = srv.request(
        "GET",
        &host,
        "/hello.txt",
        &[("If-None-Match", "\"other\"")],
    );
    assert_eq!(r.status, 200);

    let r = srv.request("GET", &host, "/hello.txt", &[("Range", "bytes=5-9")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &f.hello[5..10]);
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 5-9/{}", f.hello.len()).as_str())
    );
    let r = srv.request("GET", &host, "/hello.txt", &[("Range", "bytes=-4")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &f.hello[f.hello.len() - 4..]);
    let r = srv.request("GET", &host, "/hello.txt", &[("Range", "bytes=999999-")]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", f.hello.len()).as_str())
    );
    // A stale If-Range sends the whole body.
    let r = srv.request(
        "GET",
        &host,
        "/hello.txt",
        &[("Range", "bytes=0-1"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, f.hello);

    let r = srv.request("HEAD", &host, "/hello.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(f.hello.len().to_string().as_str())
    );
    assert!(r.body.is_empty());

    let r = srv.request(
        "GET",
        &host,
        "/hello.txt",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(
        r.body.len() < f.hello.len() / 4,
        "gzip should shrink repeated text"
    );
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, f.hello);
    // Refused gzip, and incompressible types, stay identity.
    let r = srv.request(
        "GET",
        &host,
        "/hello.txt",
        &[("Accept-Encoding", "gzip;q=0")],
    );
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, f.hello);
    let url = format!("http://{host}/secret.mp3");
    let sig = assetd::sign::compute(&f.token, &url, &[]);
    let r = srv.request(
        "GET",
        &host,
        "/secret.mp3",
        &[("Accept-Encoding", "gzip"), ("X-Twilio-Signature", &sig)],
    );
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, f.secret);
}

#[test]
fn root_asset_at_slash_wins_over_assets_index() {
    use assetd::model::{AssetPath, Visibility};
    let data = tempfile::tempdir().unwrap();
    let label = {
        let store = assetd::store::Store::open(data.path(), 1 << 20).unwrap();
        store
            .write(|tx| {
                let (acct, _) = tx.ensure_main_account()?;
                let svc = tx.create_service(&acct.sid, "rooted", "rooted")?;
                let env = tx.create_environment(&svc, "production", None)?;
                let mut versions = Vec::new();
                for (path, body) in [("/", "slash"), ("/assets/index.html", "index")] {
                    let put = tx.put_blob(&mut body.as_bytes(), None, None)?;
                    let asset = tx.asset_named(&svc, path)?;
                    let p = AssetPath::parse(path)?;
                    let v = tx.create_version(
                        &asset,
                        &p,
                        Visibility::Public,
                        "text/html",
                        &put.digest,
                    )?;
                    versions.push(v.sid);
                }
                let mut build = tx.create_build(&svc, &versions, serde_json::json!([]), None)?;
                tx.build_now(&mut build)?;
                tx.deploy(&env, &build.sid)?;
                Ok(env.label)
            })
            .unwrap()
    };
    let srv = Server::start(data.path(), &[]);
    let host = format!("{label}.localhost");
    assert_eq!(srv.get(&host, "/").text(), "slash");
    assert_eq!(srv.get(&host, "/assets/index.html").text(), "index");
}

#[test]
fn large_asset_is_byte_exact() {
    let big = noise(25 * 1024 * 1024, 99);
    let project = project(&[("big.bin", &big)]);
    let data = tempfile::tempdir().unwrap();
    let label = label_of(&import(project.path(), data.path(), "large", &[]));
    let srv = Server::start(data.path(), &[]);
    let host = format!("{label}.localhost");
    let r = srv.get(&host, "/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(big.len().to_string().as_str())
    );
    assert!(r.body == big, "25 MiB body differs");
    assert!(
        !r.raw_head
            .to_ascii_lowercase()
            .contains("transfer-encoding"),
        "{}",
        r.raw_head
    );
    // A range across a chunk boundary (chunks are 262,100 bytes).
    let (a, b) = (262_000usize, 262_300usize);
    let r = srv.request(
        "GET",
        &host,
        "/big.bin",
        &[("Range", &format!("bytes={a}-{}", b - 1))],
    );
    assert_eq!(r.status, 206);
    assert!(r.body == big[a..b]);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let status = srv.terminate();
    assert!(status.success(), "serve exited with {status}");
}

/// Regression (black-box test): a path-style asset (`/e/{label}/page.html`) is served from the
/// management host, the console's origin, and its scripts ran there unsandboxed. Path-style
/// responses carry a sandbox CSP (an opaque origin); host-style domains are origins of their
/// own and keep serving as before.
#[test]
fn path_style_html_is_sandboxed_and_host_style_is_not() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let path_style = srv.get("127.0.0.1", &format!("/e/{}/assets/index.html", f.label));
    assert_eq!(path_style.status, 200);
    assert_eq!(
        path_style.header("content-security-policy"),
        Some("sandbox allow-scripts allow-forms allow-popups allow-downloads")
    );
    assert!(
        !path_style
            .header("content-security-policy")
            .unwrap()
            .contains("allow-same-origin")
    );
    let host = format!("{}.localhost", f.label);
    let host_style = srv.get(&host, "/assets/index.html");
    assert_eq!(host_style.status, 200);
    assert_eq!(host_style.text(), path_style.text());
    assert_eq!(host_style.header("content-security-policy"), None);
    // The console keeps its own strict policy.
    let console = srv.get("127.0.0.1", "/");
    assert!(
        console
            .header("content-security-policy")
            .is_some_and(|c| c.contains("script-src 'self'")),
        "{:?}",
        console.headers
    );
}
