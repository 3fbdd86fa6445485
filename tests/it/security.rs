//! Security hardening through the real binary (issue 10): one percent-decoding of request
//! paths, the text policy for names, checked `Host` headers, and the sandbox on path-style
//! asset responses.

use crate::api_resources::{Api, sid};
use crate::harness::*;

/// A fresh server and an API client for its main account.
fn server(extra: &[&str]) -> (tempfile::TempDir, Server, Api) {
    let data = tempfile::tempdir().unwrap();
    let (sid, token) = credentials(data.path());
    let srv = Server::start(data.path(), extra);
    let api = Api {
        addr: srv.addr,
        auth: basic(&sid, &token),
    };
    (data, srv, api)
}

/// Regression (black-box test): an asset stored at `/%2e%2e/x` was served for a request to
/// `/%252e%252e/x`, because the server tried the path both as sent and decoded. Such a path is
/// refused at upload now, and a decoded request path that still holds an escape matches
/// nothing.
#[test]
fn percent_escaped_paths_are_refused_at_upload_and_reach_nothing() {
    let (_data, srv, api) = server(&[]);
    let svc = sid(&api
        .post(
            "/v1/Services",
            &[("UniqueName", "enc"), ("FriendlyName", "enc")],
        )
        .expect(201));
    let asset = sid(&api
        .post(
            &format!("/v1/Services/{svc}/Assets"),
            &[("FriendlyName", "x")],
        )
        .expect(201));
    for path in ["/%2e%2e/x", "/%252e/x", "/hold%20music.mp3"] {
        api.try_upload(&svc, &asset, path, "public", b"x")
            .error(400, 20001, "percent-escape");
    }
    // The same refusal for the upload-only-what-is-missing manifest.
    let manifest = format!(
        r#"{{"files": [["/%2e%2e/x", "{}", 1, "public"]]}}"#,
        assetd::model::Digest::of(b"x").to_hex()
    );
    api.call(
        "POST",
        &format!("/v1/Services/{svc}/Manifests"),
        Some(("application/json", manifest.as_bytes())),
    )
    .error(400, 20001, "percent-escape");
    // Deployed: `/café.txt` and `/x`. Each is reached by its one encoding only.
    let env = sid(&api
        .post(
            &format!("/v1/Services/{svc}/Environments"),
            &[("UniqueName", "dev-environment"), ("DomainSuffix", "dev")],
        )
        .expect(201));
    let cafe = sid(&api
        .post(
            &format!("/v1/Services/{svc}/Assets"),
            &[("FriendlyName", "/café.txt")],
        )
        .expect(201));
    let v1 = sid(&api.upload(&svc, &asset, "/x", "public", b"x"));
    let v2 = sid(&api.upload(&svc, &cafe, "/café.txt", "public", b"cafe"));
    let build = api
        .post(
            &format!("/v1/Services/{svc}/Builds"),
            &[("AssetVersions", &v1), ("AssetVersions", &v2)],
        )
        .expect(201);
    let build = sid(&build);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while api
        .get(&format!("/v1/Services/{svc}/Builds/{build}/Status"))
        .expect(200)["status"]
        == "building"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "build never completed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    api.post(
        &format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
        &[("BuildSid", &build)],
    )
    .expect(201);
    let domain = api
        .get(&format!("/v1/Services/{svc}/Environments/{env}"))
        .expect(200)["domain_name"]
        .as_str()
        .unwrap()
        .to_string();
    let label = domain.split('.').next().unwrap().to_string();
    let path_style = |p: &str| srv.get("127.0.0.1", &format!("/e/{label}{p}")).status;
    for (target, want) in [
        ("/x", 200),
        ("/%78", 200),
        ("/caf%C3%A9.txt", 200),
        ("/caf%25C3%25A9.txt", 404),
        ("/%252e%252e/x", 404),
        ("/%2e%2e/x", 404),
        ("/a%2Fx", 404),
        ("/caf%C3.txt", 400),
        ("/x%2", 400),
    ] {
        assert_eq!(srv.get(&domain, target).status, want, "host-style {target}");
        assert_eq!(path_style(target), want, "path-style {target}");
    }
}

/// Regression (black-box test): an ANSI escape in an environment UniqueName, a tab in a
/// variable key, NUL in a value, a right-to-left override, a BOM and `․․` in asset paths were
/// accepted and stored. Each field now refuses each class with a 400 naming the field and
/// the character.
#[test]
fn spoofing_characters_are_refused_in_every_name_with_the_field_and_codepoint() {
    let (_data, _srv, api) = server(&[]);
    let svc = sid(&api
        .post(
            "/v1/Services",
            &[("UniqueName", "names"), ("FriendlyName", "names")],
        )
        .expect(201));
    let env = sid(&api
        .post(
            &format!("/v1/Services/{svc}/Environments"),
            &[("UniqueName", "dev-environment"), ("DomainSuffix", "dev")],
        )
        .expect(201));
    let asset = sid(&api
        .post(
            &format!("/v1/Services/{svc}/Assets"),
            &[("FriendlyName", "a")],
        )
        .expect(201));
    let services = "/v1/Services".to_string();
    let envs = format!("/v1/Services/{svc}/Environments");
    let vars = format!("/v1/Services/{svc}/Environments/{env}/Variables");
    let assets = format!("/v1/Services/{svc}/Assets");
    let main_sid = api_sid(&api);
    let accounts = "/2010-04-01/Accounts.json".to_string();
    let keys = format!("/2010-04-01/Accounts/{main_sid}/Keys.json");
    // (target, form, the field the message names, the character and class it names)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            &services,
            vec![("UniqueName", "a\u{1b}[31m"), ("FriendlyName", "x")],
            "UniqueName",
            "U+001B (a control character)",
        ),
        (
            &services,
            vec![("UniqueName", "b"), ("FriendlyName", "x\u{202e}")],
            "FriendlyName",
            "U+202E (a bidirectional control character)",
        ),
        (
            &envs,
            vec![("UniqueName", "\u{1b}[31m"), ("DomainSuffix", "s1")],
            "UniqueName",
            "U+001B",
        ),
        (
            &envs,
            vec![("UniqueName", "e2"), ("DomainSuffix", "s\u{200b}")],
            "DomainSuffix",
            "U+200B (a zero-width or byte-order-mark character)",
        ),
        (&vars, vec![("Key", "\t"), ("Value", "v")], "Key", "U+0009"),
        (
            &vars,
            vec![("Key", "K"), ("Value", "a\0b")],
            "Value",
            "U+0000",
        ),
        (
            &assets,
            vec![("FriendlyName", "\u{feff}logo")],
            "FriendlyName",
            "U+FEFF",
        ),
        (
            &assets,
            vec![("FriendlyName", "x\u{2066}")],
            "FriendlyName",
            "U+2066",
        ),
        (
            &accounts,
            vec![("FriendlyName", "lab\u{9b}")],
            "FriendlyName",
            "U+009B",
        ),
        (
            &keys,
            vec![("FriendlyName", "ci\u{200f}")],
            "FriendlyName",
            "U+200F",
        ),
    ];
    for (target, pairs, field, needle) in cases {
        let msg = api.post(target, &pairs).error(400, 20001, needle);
        assert!(msg.contains(field), "{target} {pairs:?}: {msg}");
    }
    // Variable values may hold any text but NUL.
    api.post(
        &vars,
        &[("Key", "MULTI"), ("Value", "line 1\n\tline 2 \u{202e}")],
    )
    .expect(201);
    for (path, needle) in [
        ("/\u{202e}gnp.exe", "U+202E"),
        ("/\u{feff}a.txt", "U+FEFF"),
        ("/\u{2024}\u{2024}/x", "U+2024 (a dot leader"),
        ("/a\u{1b}[31m", "U+001B"),
    ] {
        let msg = api
            .try_upload(&svc, &asset, path, "public", b"x")
            .error(400, 20001, needle);
        assert!(msg.contains("Path"), "{msg}");
    }
}

/// The main account's SID, from the Accounts list.
fn api_sid(api: &Api) -> String {
    let v = api.get("/2010-04-01/Accounts.json").expect(200);
    v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["owner_account_sid"] == a["sid"] || a["owner_account_sid"].is_null())
        .map(|a| a["sid"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no main account in {v}"))
}

/// Regression (black-box test): the `Host` header was echoed unchecked into `url`,
/// `first_page_url` and `next_page_url` (`Host: x"><script>` came back in the JSON).
#[test]
fn an_invalid_host_header_is_400_on_the_api() {
    let (_data, srv, api) = server(&[]);
    let auth = [("Authorization", api.auth.as_str())];
    for host in ["x\"><script>", "a b", "evil.example:666:1", "a:99999"] {
        let r = request(srv.addr, "GET", host, "/v1/Services", &auth, b"");
        assert_eq!(r.status, 400, "Host {host:?}: {}", r.text());
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["code"], 20001, "{body}");
        assert!(!r.text().contains("<script>"), "{}", r.text());
    }
    let r = request(srv.addr, "GET", "box.lan:8080", "/v1/Services", &auth, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .contains("\"first_page_url\":\"http://box.lan:8080/v1/Services"),
        "{}",
        r.text()
    );
}

/// With `serve --public-url`, absolute URLs in API responses use it whatever the `Host`
/// header says, and `serve` prints it.
#[test]
fn public_url_is_the_base_of_api_urls_whatever_the_host() {
    let (_data, srv, api) = server(&["--public-url", "https://assets.example.org/"]);
    assert!(
        srv.banner
            .iter()
            .any(|l| l.starts_with("public URL: https://assets.example.org ")),
        "{:?}",
        srv.banner
    );
    let auth = [("Authorization", api.auth.as_str())];
    let r = request(
        srv.addr,
        "GET",
        "evil.example:666",
        "/v1/Services?PageSize=1",
        &auth,
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["meta"]["first_page_url"], "https://assets.example.org/v1/Services?PageSize=1&Page=0",
        "{body}"
    );
    assert!(!r.text().contains("evil.example"), "{}", r.text());
    let (ok, _, err) = cli(&[
        "serve",
        "--public-url",
        "https://x/path",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok && err.contains("--public-url"), "{err}");
}

/// Regression (black-box test): an anonymous upload was received whole (even answered
/// `100 Continue`) and spooled before its credentials were checked, so anonymous clients
/// could fill the disk, memory and descriptors. The head is refused now, its body unread.
#[test]
fn an_anonymous_upload_is_refused_from_its_head_before_any_body_is_read() {
    use std::io::{BufReader, Write};
    let (_data, srv, api) = server(&[]);
    let blob = format!("/v1/Blobs/{}", "0".repeat(64));
    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("no credentials", &[]),
        ("wrong credentials", &[("Authorization", "Basic QUM6bm8=")]),
        ("Expect: 100-continue", &[("Expect", "100-continue")]),
    ];
    for (what, extra) in cases {
        let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut head = format!(
            "PUT {blob} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 26000000\r\n\
             Content-Type: application/octet-stream\r\n"
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        // Not one body byte is sent: the answer must come from the head alone (the old
        // engine waited for the 26 MB, or sent 100 Continue first).
        let r = read_response(&mut BufReader::new(s), false);
        assert_eq!(r.status, 401, "{what}: {}", r.raw_head);
        assert!(
            r.text().contains("\"code\""),
            "{what}: the API's JSON error"
        );
        assert_eq!(r.header("connection"), Some("close"), "{what}");
    }
    // The owner's own upload still goes through.
    let body = noise(300_000, 7);
    let digest = blake3::hash(&body).to_hex().to_string();
    let r = request(
        srv.addr,
        "PUT",
        "localhost",
        &format!("/v1/Blobs/{digest}"),
        &[
            ("Authorization", api.auth.as_str()),
            ("Content-Type", "application/octet-stream"),
        ],
        &body,
    );
    assert!(
        r.status == 201 || r.status == 200,
        "{}: {}",
        r.status,
        r.text()
    );
}
