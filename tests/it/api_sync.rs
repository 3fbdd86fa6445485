//! The upload paths: multipart Asset Version create, the upload-only-what-is-missing
//! extension, owner-only private reads, and failure cases (oversize, mismatch, killed client,
//! concurrent deploys).

use crate::harness::*;
use serde_json::Value;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

struct Setup {
    data: tempfile::TempDir,
    auth: String,
    service: String,
    asset: String,
    env_label: String,
}

/// A main account with a service `sync`, an environment `dev` and an asset `/a.txt`, made
/// through the store before the server starts.
fn setup() -> Setup {
    let data = tempfile::tempdir().unwrap();
    let store = assetd::store::Store::open(data.path(), 1 << 20).unwrap();
    let (acct, svc, asset, env) = store
        .write(|tx| {
            let (acct, _) = tx.ensure_main_account()?;
            let svc = tx.create_service(&acct.sid, "sync", "sync")?;
            let env = tx.create_environment(&svc, "dev-environment", Some("dev"))?;
            let asset = tx.asset_named(&svc, "/a.txt")?;
            Ok((acct, svc, asset, env))
        })
        .unwrap();
    drop(store);
    Setup {
        auth: basic(&acct.sid, &acct.auth_token),
        data,
        service: svc.sid,
        asset: asset.sid,
        env_label: env.label,
    }
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])], boundary: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, data) in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => b.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/plain\r\n\r\n")
                    .as_bytes(),
            ),
            None => b.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

/// POSTs a multipart body (boundary `b`) with the setup's credentials.
fn post_multipart(srv: &Server, s: &Setup, target: &str, body: &[u8]) -> Response {
    request(
        srv.addr,
        "POST",
        "127.0.0.1",
        target,
        &[
            ("Authorization", &s.auth),
            ("Content-Type", "multipart/form-data; boundary=b"),
        ],
        body,
    )
}

/// A request whose wire size (request + response bytes) is counted.
struct Wire {
    addr: SocketAddr,
    auth: String,
    bytes: u64,
}

impl Wire {
    fn call(&mut self, method: &str, target: &str, ctype: Option<&str>, body: &[u8]) -> Response {
        let mut s = TcpStream::connect(self.addr).unwrap();
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {}\r\nContent-Length: {}\r\n",
            self.auth,
            body.len()
        );
        if let Some(c) = ctype {
            head.push_str(&format!("Content-Type: {c}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        self.bytes += (head.len() + body.len() + raw.len()) as u64;
        read_response(&mut BufReader::new(&raw[..]), method == "HEAD")
    }

    fn json(
        &mut self,
        method: &str,
        target: &str,
        ctype: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        let r = self.call(method, target, ctype, body);
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    /// The whole extension flow for `files` (path → bytes): manifest, missing uploads, build
    /// and deploy to `dev`. Returns (missing count, build response).
    fn deploy(&mut self, service: &str, files: &[(String, Vec<u8>)]) -> (usize, Value) {
        let rows: Vec<Value> = files
            .iter()
            .map(|(p, b)| {
                serde_json::json!([p, assetd::model::Digest::of(b).to_hex(), b.len(), "public"])
            })
            .collect();
        let body = serde_json::json!({ "files": rows }).to_string();
        let (status, m) = self.json(
            "POST",
            &format!("/v1/Services/{service}/Manifests"),
            Some("application/json"),
            body.as_bytes(),
        );
        assert_eq!(status, 201, "{m}");
        let missing: Vec<String> = m["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        for d in &missing {
            let bytes = &files
                .iter()
                .find(|(_, b)| assetd::model::Digest::of(b).to_hex() == *d)
                .unwrap()
                .1;
            let (status, put) = self.json(
                "PUT",
                &format!("/v1/Blobs/{d}"),
                Some("application/octet-stream"),
                bytes,
            );
            assert_eq!(status, 201, "{put}");
        }
        let sid = m["sid"].as_str().unwrap();
        let (status, b) = self.json(
            "POST",
            &format!("/v1/Services/{service}/Manifests/{sid}/Build"),
            Some("application/x-www-form-urlencoded"),
            b"Environment=dev",
        );
        assert_eq!(status, 201, "{b}");
        (missing.len(), b)
    }
}

#[test]
fn multipart_upload_in_toolkit_order_and_in_reverse() {
    let s = setup();
    let srv = Server::start(s.data.path(), &[]);
    let target = format!("/v1/Services/{}/Assets/{}/Versions", s.service, s.asset);
    let content = noise(300_000, 3);
    for (i, order) in [[0usize, 1, 2], [2, 1, 0]].iter().enumerate() {
        let all: [(&str, Option<&str>, &[u8]); 3] = [
            ("Path", None, b"a.txt"),
            (
                "Visibility",
                None,
                if i == 0 { b"public" } else { b"private" },
            ),
            ("Content", Some("/a.txt"), &content),
        ];
        let parts: Vec<_> = order.iter().map(|&k| all[k]).collect();
        let body = multipart(&parts, "----toolkitBoundary");
        let r = request(
            srv.addr,
            "POST",
            "127.0.0.1",
            &target,
            &[
                ("Authorization", &s.auth),
                (
                    "Content-Type",
                    "multipart/form-data; boundary=----toolkitBoundary",
                ),
            ],
            &body,
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                "account_sid",
                "asset_sid",
                "date_created",
                "path",
                "service_sid",
                "sid",
                "url",
                "visibility"
            ]
        );
        assert_eq!(v["path"], "/a.txt");
        assert_eq!(v["visibility"], if i == 0 { "public" } else { "private" });
        // The owner reads the bytes back, private or not.
        let content_url = format!("{target}/{}/Content", v["sid"].as_str().unwrap());
        let r = request(
            srv.addr,
            "GET",
            "127.0.0.1",
            &content_url,
            &[("Authorization", &s.auth)],
            b"",
        );
        assert_eq!(r.status, 200);
        assert!(r.body == content);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        // Without credentials: 401, never the bytes.
        let r = request(srv.addr, "GET", "127.0.0.1", &content_url, &[], b"");
        assert_eq!(r.status, 401);
    }
    // A repeated Path part is refused (regression from a black-box test: the last one won).
    let body = multipart(
        &[
            ("Path", None, b"/one.txt"),
            ("Visibility", None, b"public"),
            ("Path", None, b"/two.txt"),
            ("Content", Some("/x"), b"x"),
        ],
        "b",
    );
    let r = post_multipart(&srv, &s, &target, &body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("the Path part appears twice"),
        "{}",
        r.text()
    );
    // Missing parts and a non-multipart body are 400 with Twilio's error shape.
    let body = multipart(&[("Path", None, b"/x")], "b");
    let r = post_multipart(&srv, &s, &target, &body);
    assert_eq!(r.status, 400);
    let e: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e["code"], 20001);
    assert!(e["message"].as_str().unwrap().contains("Visibility"), "{e}");
    assert_eq!(e["status"], 400);
    assert!(e["more_info"].as_str().unwrap().ends_with("20001"));
    let r = request(
        srv.addr,
        "POST",
        "127.0.0.1",
        &target,
        &[
            ("Authorization", &s.auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"Path=/x",
    );
    assert_eq!(r.status, 400);
    // Unknown service or asset: 404 / 20404.
    let r = request(
        srv.addr,
        "POST",
        "127.0.0.1",
        &format!(
            "/v1/Services/{}/Assets/ZH00000000000000000000000000000000/Versions",
            s.service
        ),
        &[
            ("Authorization", &s.auth),
            ("Content-Type", "multipart/form-data; boundary=b"),
        ],
        &body,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["code"],
        20404
    );
}

#[test]
fn oversize_uploads_are_413_without_reading_the_rest() {
    let s = setup();
    let srv = Server::start(s.data.path(), &[]);
    let target = format!("/v1/Services/{}/Assets/{}/Versions", s.service, s.asset);
    // A declared length past the limit is refused before the body is read: we send only the
    // head and read the answer.
    let mut conn = TcpStream::connect(srv.addr).unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
        s.auth,
        30 * 1024 * 1024
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let r = read_response(&mut BufReader::new(conn), false);
    assert_eq!(r.status, 413);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["status"],
        413
    );

    // A private asset over 10 MB is refused with its limit named.
    let big = vec![b'p'; 10 * 1024 * 1024 + 1];
    let body = multipart(
        &[
            ("Path", None, b"/a.txt"),
            ("Visibility", None, b"private"),
            ("Content", Some("a"), &big),
        ],
        "b",
    );
    let r = post_multipart(&srv, &s, &target, &body);
    assert_eq!(r.status, 413);
    assert!(r.text().contains("10 MB"), "{}", r.text());

    // A blob PUT over 25 MB is refused the same way.
    let mut conn = TcpStream::connect(srv.addr).unwrap();
    let head = format!(
        "PUT /v1/Blobs/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        "0".repeat(64),
        s.auth,
        26 * 1024 * 1024
    );
    conn.write_all(head.as_bytes()).unwrap();
    let r = read_response(&mut BufReader::new(conn), false);
    assert_eq!(r.status, 413);
    drop(srv);
    assert_no_staging_left(&s.data);
}

fn assert_no_staging_left(data: &tempfile::TempDir) {
    let tmp = data.path().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging files left: {left:?}");
}

#[test]
fn a_client_killed_mid_upload_leaves_no_version() {
    let s = setup();
    let srv = Server::start(s.data.path(), &[]);
    let target = format!("/v1/Services/{}/Assets/{}/Versions", s.service, s.asset);
    let content = noise(2 * 1024 * 1024, 5);
    let body = multipart(
        &[
            ("Path", None, b"/a.txt"),
            ("Visibility", None, b"public"),
            ("Content", Some("a"), &content),
        ],
        "b",
    );
    {
        let mut conn = TcpStream::connect(srv.addr).unwrap();
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
            s.auth,
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&body[..body.len() / 2]).unwrap();
        // The client dies here: the connection closes with half the body sent.
    }
    // The server answers other requests, and the half upload left nothing: no version, and
    // (once the handler has seen the broken body) no staging file.
    let list = format!(
        "/v1/Services/{}/Assets/{}/Versions/ZN00000000000000000000000000000000/Content",
        s.service, s.asset
    );
    let r = request(
        srv.addr,
        "GET",
        "127.0.0.1",
        &list,
        &[("Authorization", &s.auth)],
        b"",
    );
    assert_eq!(r.status, 404);
    let status = srv.terminate();
    assert!(status.success());
    assert_no_staging_left(&s.data);
    let store = assetd::store::Store::open(s.data.path(), 1 << 20).unwrap();
    let lookup = store.read().unwrap();
    assert!(
        lookup.blobs().unwrap().is_empty(),
        "a partial blob was stored"
    );
}

#[test]
fn unchanged_redeploy_uploads_nothing_and_one_change_uploads_one_blob() {
    let s = setup();
    let srv = Server::start(s.data.path(), &[]);
    let mut files: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| {
            (
                format!("/dir{}/file{i}.bin", i % 10),
                noise(1024, i as u64 + 1),
            )
        })
        .collect();
    let mut wire = Wire {
        addr: srv.addr,
        auth: s.auth.clone(),
        bytes: 0,
    };
    let (missing, first) = wire.deploy(&s.service, &files);
    assert_eq!(missing, 1000);
    assert_eq!(first["versions_created"], 1000);
    let host = format!("{}.localhost", s.env_label);
    assert_eq!(srv.get(&host, "/dir7/file7.bin").body, files[7].1);

    wire.bytes = 0;
    let (missing, again) = wire.deploy(&s.service, &files);
    assert_eq!(missing, 0);
    assert_eq!(again["unchanged"], true);
    assert_eq!(again["build_sid"], first["build_sid"]);
    eprintln!("unchanged 1000-file redeploy moved {} bytes", wire.bytes);
    assert!(
        wire.bytes < 200_000,
        "unchanged redeploy moved {} bytes",
        wire.bytes
    );

    files[500].1 = noise(4096, 777);
    wire.bytes = 0;
    let (missing, changed) = wire.deploy(&s.service, &files);
    assert_eq!(missing, 1);
    assert_eq!(changed["versions_created"], 1);
    assert_eq!(changed["versions_reused"], 999);
    assert_ne!(changed["build_sid"], first["build_sid"]);
    eprintln!("one-file-changed redeploy moved {} bytes", wire.bytes);
    assert!(
        wire.bytes < 200_000 + 4096,
        "one-change redeploy moved {} bytes",
        wire.bytes
    );
    assert_eq!(srv.get(&host, "/dir0/file500.bin").body, files[500].1);
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_is_refused() {
    let s = setup();
    let srv = Server::start(s.data.path(), &[]);
    let mut wire = Wire {
        addr: srv.addr,
        auth: s.auth.clone(),
        bytes: 0,
    };
    let claimed = assetd::model::Digest::of(b"what I claim").to_hex();
    let (status, e) = wire.json("PUT", &format!("/v1/Blobs/{claimed}"), None, b"what I send");
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("mismatch"), "{e}");
    let (status, _) = wire.json("PUT", "/v1/Blobs/not-a-digest", None, b"x");
    assert_eq!(status, 400);
    // HEAD tells whether this account has a blob.
    assert_eq!(
        wire.call("HEAD", &format!("/v1/Blobs/{claimed}"), None, b"")
            .status,
        404
    );
    let real = assetd::model::Digest::of(b"what I send").to_hex();
    assert_eq!(
        wire.json("PUT", &format!("/v1/Blobs/{real}"), None, b"what I send")
            .0,
        201
    );
    assert_eq!(
        wire.call("HEAD", &format!("/v1/Blobs/{real}"), None, b"")
            .status,
        200
    );
    // A build from a manifest naming content never uploaded names the path.
    let body = serde_json::json!({"files": [["/never.txt", claimed, 12, "public"]]}).to_string();
    let (status, m) = wire.json(
        "POST",
        &format!("/v1/Services/{}/Manifests", s.service),
        None,
        body.as_bytes(),
    );
    assert_eq!(status, 201);
    let (status, e) = wire.json(
        "POST",
        &format!(
            "/v1/Services/{}/Manifests/{}/Build",
            s.service,
            m["sid"].as_str().unwrap()
        ),
        Some("application/x-www-form-urlencoded"),
        b"",
    );
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("/never.txt"), "{e}");
    // A manifest breaking a limit is refused up front, naming the limit and path.
    let rows: Vec<Value> = (0..51)
        .map(|i| serde_json::json!([format!("/p{i}"), real, 11, "private"]))
        .collect();
    let body = serde_json::json!({"files": rows}).to_string();
    let (status, e) = wire.json(
        "POST",
        &format!("/v1/Services/{}/Manifests", s.service),
        None,
        body.as_bytes(),
    );
    assert_eq!(status, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("at most 50 private"),
        "{e}"
    );
    drop(srv);
    let store = assetd::store::Store::open(s.data.path(), 1 << 20).unwrap();
    assert_eq!(store.read().unwrap().blobs().unwrap().len(), 1);
}

#[test]
fn two_clients_deploying_at_once_get_a_consistent_result() {
    let s = setup();
    let srv = Server::start(s.data.path(), &[]);
    let addr = srv.addr;
    let handles: Vec<_> = (0..2u64)
        .map(|who| {
            let auth = s.auth.clone();
            let service = s.service.clone();
            std::thread::spawn(move || {
                let files: Vec<(String, Vec<u8>)> = (0..50)
                    .map(|i| (format!("/f{i}.bin"), noise(2048, who * 1000 + i + 1)))
                    .collect();
                let mut wire = Wire {
                    addr,
                    auth,
                    bytes: 0,
                };
                let (_, b) = wire.deploy(&service, &files);
                (b["build_sid"].as_str().unwrap().to_string(), files)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(results[0].0, results[1].0);
    // Every file served comes from the same one of the two builds.
    let host = format!("{}.localhost", s.env_label);
    let served: Vec<Vec<u8>> = (0..50)
        .map(|i| srv.get(&host, &format!("/f{i}.bin")).body)
        .collect();
    let winner = results
        .iter()
        .find(|(_, files)| files[0].1 == served[0])
        .expect("served content belongs to one of the builds");
    for (i, body) in served.iter().enumerate() {
        assert!(
            *body == winner.1[i].1,
            "file {i} comes from the other build"
        );
    }
}

#[test]
fn private_bundle_holds_exactly_the_private_assets() {
    let s = setup();
    let srv = Server::start(s.data.path(), &[]);
    let mut wire = Wire {
        addr: srv.addr,
        auth: s.auth.clone(),
        bytes: 0,
    };
    let secret = b"{\"pin\": 1234}".to_vec();
    let long_path = format!("/{}/deep.json", "nested".repeat(20));
    let rows = serde_json::json!({"files": [
        ["/public.txt", assetd::model::Digest::of(b"pub").to_hex(), 3, "public"],
        ["/config.json", assetd::model::Digest::of(&secret).to_hex(), secret.len(), "private"],
        [long_path, assetd::model::Digest::of(&secret).to_hex(), secret.len(), "private"],
    ]});
    for bytes in [&b"pub"[..], &secret[..]] {
        let d = assetd::model::Digest::of(bytes).to_hex();
        assert_eq!(
            wire.json("PUT", &format!("/v1/Blobs/{d}"), None, bytes).0,
            201
        );
    }
    let (_, m) = wire.json(
        "POST",
        &format!("/v1/Services/{}/Manifests", s.service),
        None,
        rows.to_string().as_bytes(),
    );
    let (_, b) = wire.json(
        "POST",
        &format!(
            "/v1/Services/{}/Manifests/{}/Build",
            s.service,
            m["sid"].as_str().unwrap()
        ),
        Some("application/x-www-form-urlencoded"),
        b"Environment=dev",
    );
    let build = b["build_sid"].as_str().unwrap();
    // The private asset is never served by URL.
    assert_eq!(
        srv.get(&format!("{}.localhost", s.env_label), "/config.json")
            .status,
        404
    );
    let target = format!("/v1/Services/{}/Builds/{build}/PrivateAssets", s.service);
    assert_eq!(wire.call("GET", &target, None, b"").status, 200);
    let r = request(
        srv.addr,
        "GET",
        "127.0.0.1",
        &target,
        &[("Authorization", &s.auth)],
        b"",
    );
    assert_eq!(r.header("content-type"), Some("application/gzip"));
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut tar)
        .unwrap();
    let entries = untar(&tar);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec!["config.json", &long_path[1..], ".assetd-manifest.json"]
    );
    assert_eq!(entries[0].1, secret);
    assert_eq!(entries[1].1, secret);
    let r = request(srv.addr, "GET", "127.0.0.1", &target, &[], b"");
    assert_eq!(r.status, 401);
}

/// A minimal tar reader (ustar + PAX `path`), enough to check the bundle.
fn untar(mut t: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pax_path = None;
    while t.len() >= 512 && t[..512].iter().any(|&b| b != 0) {
        let h = &t[..512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size = usize::from_str_radix(String::from_utf8_lossy(&h[124..135]).trim(), 8).unwrap();
        let kind = h[156];
        let data = t[512..512 + size].to_vec();
        t = &t[512 + size.div_ceil(512) * 512..];
        if kind == b'x' {
            let rec = String::from_utf8(data).unwrap();
            pax_path = rec
                .split_once("path=")
                .map(|(_, p)| p.trim_end().to_string());
            continue;
        }
        out.push((pax_path.take().unwrap_or(name), data));
    }
    out
}

#[test]
fn retention_endpoint_reclaims_unused_versions_and_is_main_account_only() {
    let s = setup();
    let sub = {
        let store = assetd::store::Store::open(s.data.path(), 1 << 20).unwrap();
        let main = store.read().unwrap().main_account().unwrap().unwrap();
        store
            .write(|tx| tx.create_subaccount(&main.sid, "sub"))
            .unwrap()
    };
    let srv = Server::start(s.data.path(), &[]);
    let mut wire = Wire {
        addr: srv.addr,
        auth: s.auth.clone(),
        bytes: 0,
    };
    let files = vec![("/keep.txt".to_string(), b"deployed".to_vec())];
    wire.deploy(&s.service, &files);
    // An uploaded version that no build uses.
    let target = format!("/v1/Services/{}/Assets/{}/Versions", s.service, s.asset);
    let body = multipart(
        &[
            ("Path", None, b"/a.txt"),
            ("Visibility", None, b"public"),
            ("Content", Some("a"), b"unused bytes"),
        ],
        "b",
    );
    let r = post_multipart(&srv, &s, &target, &body);
    assert_eq!(r.status, 201);

    let mut as_sub = Wire {
        addr: srv.addr,
        auth: basic(&sub.sid, &sub.auth_token),
        bytes: 0,
    };
    let (status, _) = as_sub.json(
        "POST",
        "/v1/Retention",
        Some("application/x-www-form-urlencoded"),
        b"MaxAgeSeconds=0",
    );
    assert_eq!(status, 403);
    let (status, e) = wire.json(
        "POST",
        "/v1/Retention",
        Some("application/x-www-form-urlencoded"),
        b"MaxAgeSeconds=soon",
    );
    assert_eq!((status, e["code"].as_u64()), (400, Some(20001)));
    let (status, report) = wire.json(
        "POST",
        "/v1/Retention",
        Some("application/x-www-form-urlencoded"),
        b"MaxAgeSeconds=0",
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["versions_deleted"], 1);
    assert_eq!(report["blobs_reclaimed"], 1);
    assert_eq!(report["bytes_reclaimed"], 12);
    // The deployed asset is untouched.
    assert_eq!(
        srv.get(&format!("{}.localhost", s.env_label), "/keep.txt")
            .body,
        b"deployed"
    );
}
