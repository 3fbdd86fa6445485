//! Expiring share links to protected assets (`assetd share`, `POST /v1/ShareLinks`): served
//! like a signed request, refused when expired, tampered with, moved to another environment
//! or host, made with a promoted-away token, and never interchangeable with an
//! `X-Twilio-Signature`.

use crate::api_resources::form;
use crate::harness::*;
use std::net::SocketAddr;

const SECRET: &[u8] = b"For the customer only. This invoice text is long enough to compress well, compress well, compress well, compress well, compress well, compress well, compress well, compress well, compress well, compress well, compress well, compress well, compress well, compress well.";

struct Fixture {
    _project: tempfile::TempDir,
    data: tempfile::TempDir,
    dev: String,
    stage: String,
    sid: String,
    token: String,
}

fn fixture() -> Fixture {
    let project = project(&[
        ("invoice.protected.txt", SECRET),
        ("hello.txt", b"hello"),
        ("pin.private.json", b"{\"pin\": 1}"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let dev = label_of(&import(project.path(), data.path(), "shop", &[]));
    let stage = label_of(&import(
        project.path(),
        data.path(),
        "shop",
        &["--environment", "stage"],
    ));
    assert_ne!(dev, stage);
    let (sid, token) = credentials(data.path());
    Fixture {
        _project: project,
        data,
        dev,
        stage,
        sid,
        token,
    }
}

/// `host`, `target` of an absolute http URL.
fn split(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let i = rest.find('/').unwrap();
    (rest[..i].to_string(), rest[i..].to_string())
}

fn fetch(addr: SocketAddr, url: &str, headers: &[(&str, &str)]) -> Response {
    let (host, target) = split(url);
    request(addr, "GET", &host, &target, headers, b"")
}

fn post(addr: SocketAddr, auth: (&str, &str), target: &str, pairs: &[(&str, &str)]) -> Response {
    let auth = basic(auth.0, auth.1);
    request(
        addr,
        "POST",
        "127.0.0.1",
        target,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form(pairs).as_bytes(),
    )
}

fn share_with_token(url: &str, token: &str, expires_in: &str) -> String {
    let (ok, out, err) = cli(&["share", url, "--expires-in", expires_in, "--token", token]);
    assert!(ok, "assetd share failed: {out}\n{err}");
    out.trim().to_string()
}

#[test]
fn share_link_serves_200_206_304_and_gzip_like_a_signed_request() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let url = format!("http://{}.localhost:{}/invoice.txt", f.dev, srv.addr.port());
    assert_eq!(fetch(srv.addr, &url, &[]).status, 403);
    let link = share_with_token(&url, &f.token, "1h");
    assert!(link.starts_with(&format!("{url}?Expires=")), "{link}");
    assert!(link.contains("&Signature="), "{link}");

    let r = fetch(srv.addr, &link, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, SECRET);
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
    let etag = r.header("etag").unwrap().to_string();

    let r = fetch(srv.addr, &link, &[("Range", "bytes=4-11")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &SECRET[4..12]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 4-11/{}", SECRET.len()).as_str())
    );

    let r = fetch(srv.addr, &link, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);

    let r = fetch(srv.addr, &link, &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));

    // Through the server (credentials, not the token): the same kind of link.
    let (ok, out, err) = cli(&[
        "share",
        &url,
        "--expires-in",
        "10m",
        "--url",
        &format!("http://{}", srv.addr),
        "--account-sid",
        &f.sid,
        "--auth-token",
        &f.token,
    ]);
    assert!(ok, "{out}\n{err}");
    let r = fetch(srv.addr, out.trim(), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, SECRET);

    // Path-style URLs can be shared too (their host is the management host).
    let path_style = format!("http://{}/e/{}/invoice.txt", srv.addr, f.dev);
    let link = share_with_token(&path_style, &f.token, "1h");
    let r = fetch(srv.addr, &link, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, SECRET);
}

#[test]
fn share_link_refused_after_expiry_with_the_time_it_expired() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let url = format!("http://{}.localhost:{}/invoice.txt", f.dev, srv.addr.port());
    // A link whose expiry has passed (a test clock: the expiry is chosen, not waited for).
    let past = assetd::store::now() - 5;
    let link = assetd::sign::share_url(&f.token, &url, past).unwrap();
    let r = fetch(srv.addr, &link, &[]);
    assert_eq!(r.status, 403);
    let when = assetd::model::time::iso8601(past);
    assert!(
        r.text().contains(&format!("this link expired at {when}")),
        "{}",
        r.text()
    );
}

#[test]
fn share_link_refused_when_tampered_with_or_moved() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let port = srv.addr.port();
    let url = format!("http://{}.localhost:{port}/invoice.txt", f.dev);
    let link = share_with_token(&url, &f.token, "1h");
    assert_eq!(fetch(srv.addr, &link, &[]).status, 200);
    let expires = link
        .split("Expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let later = (expires.parse::<u64>().unwrap() + 60).to_string();
    let sig = link.split("Signature=").nth(1).unwrap().to_string();
    let mut flipped = sig.clone().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (what, bad) in [
        ("expiry", link.replace(&expires, &later)),
        ("signature", link.replace(&sig, &flipped)),
        (
            "no signature",
            link.split("&Signature").next().unwrap().to_string(),
        ),
        ("another environment", link.replace(&f.dev, &f.stage)),
        (
            "the same asset on another host (path-style)",
            link.replace(
                &format!("{}.localhost:{port}/", f.dev),
                &format!("127.0.0.1:{port}/e/{}/", f.dev),
            ),
        ),
    ] {
        let r = fetch(srv.addr, &bad, &[]);
        assert_eq!(r.status, 403, "{what}: {bad}: {}", r.text());
    }
    // Another path with the same parameters (a public and a protected one).
    let other = link.replace("/invoice.txt", "/hello.txt");
    assert_eq!(
        fetch(srv.addr, &other, &[]).status,
        200,
        "public stays public"
    );
    // Private assets are never shareable: 404, as without a link, and the API refuses.
    let private = format!("http://{}.localhost:{port}/pin.json", f.dev);
    let plink = share_with_token(&private, &f.token, "1h");
    assert_eq!(fetch(srv.addr, &plink, &[]).status, 404);
    let r = post(
        srv.addr,
        (&f.sid, &f.token),
        "/v1/ShareLinks",
        &[("Url", &private), ("Ttl", "60")],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    // Past the server's maximum lifetime: the API says so.
    let r = post(
        srv.addr,
        (&f.sid, &f.token),
        "/v1/ShareLinks",
        &[("Url", &url), ("Ttl", &(8 * 86_400).to_string())],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("share-link lifetime"), "{}", r.text());
}

#[test]
fn share_link_longer_than_the_servers_maximum_is_refused() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &["--share-max-lifetime", "1h"]);
    let url = format!("http://{}.localhost:{}/invoice.txt", f.dev, srv.addr.port());
    let long = share_with_token(&url, &f.token, "2h");
    assert_eq!(fetch(srv.addr, &long, &[]).status, 403);
    let short = share_with_token(&url, &f.token, "30m");
    assert_eq!(fetch(srv.addr, &short, &[]).status, 200);
}

#[test]
fn share_link_revoked_by_token_promotion() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let url = format!("http://{}.localhost:{}/invoice.txt", f.dev, srv.addr.port());
    let link = share_with_token(&url, &f.token, "1h");
    assert_eq!(fetch(srv.addr, &link, &[]).status, 200);
    let r = post(
        srv.addr,
        (&f.sid, &f.token),
        "/v1/AuthTokens/Secondary",
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // A secondary token alone changes nothing.
    assert_eq!(fetch(srv.addr, &link, &[]).status, 200);
    let r = post(srv.addr, (&f.sid, &f.token), "/v1/AuthTokens/Promote", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = fetch(srv.addr, &link, &[]);
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn share_signature_is_not_an_x_twilio_signature_and_vice_versa() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let url = format!("http://{}.localhost:{}/invoice.txt", f.dev, srv.addr.port());
    let link = share_with_token(&url, &f.token, "1h");
    let share_sig = link.split("Signature=").nth(1).unwrap().to_string();
    // The share signature as a header, on the bare URL and on the link's URL minus itself.
    let r = fetch(srv.addr, &url, &[("X-Twilio-Signature", &share_sig)]);
    assert_eq!(r.status, 403);
    let expires_only = link.split("&Signature").next().unwrap().to_string();
    let r = fetch(
        srv.addr,
        &expires_only,
        &[("X-Twilio-Signature", &share_sig)],
    );
    assert_eq!(r.status, 403);
    // A Twilio signature in the Signature parameter.
    let twilio = assetd::sign::compute(&f.token, &url, &[]);
    let enc = twilio
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let forged = format!("{expires_only}&Signature={enc}");
    assert_eq!(fetch(srv.addr, &forged, &[]).status, 403);
    let twilio_of_link = assetd::sign::compute(&f.token, &expires_only, &[]);
    let forged = format!(
        "{expires_only}&Signature={}",
        twilio_of_link
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    assert_eq!(fetch(srv.addr, &forged, &[]).status, 403);
    // Twilio-signed requests are unchanged, even on a URL that carries share parameters.
    let sig = assetd::sign::compute(&f.token, &url, &[]);
    assert_eq!(
        fetch(srv.addr, &url, &[("X-Twilio-Signature", &sig)]).status,
        200
    );
    let sig = assetd::sign::compute(&f.token, &link, &[]);
    assert_eq!(
        fetch(srv.addr, &link, &[("X-Twilio-Signature", &sig)]).status,
        200
    );
}

#[test]
fn share_command_refuses_bad_input_in_one_line() {
    for (args, want) in [
        (
            vec![
                "share",
                "http://a.localhost/x",
                "--expires-in",
                "soon",
                "--token",
                "t",
            ],
            "--expires-in",
        ),
        (
            vec!["share", "a.localhost/x", "--token", "t"],
            "not an http:// or https:// URL",
        ),
        (
            vec![
                "share",
                "http://a.localhost/x",
                "--expires-in",
                "30d",
                "--token",
                "t",
            ],
            "7d",
        ),
    ] {
        let (ok, out, err) = cli(&args);
        assert!(!ok, "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
