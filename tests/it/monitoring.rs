//! Monitoring: `/metrics` (checked with the Python `prometheus_client` parser, through
//! `tests/python/metrics.sh`) and the access log (`serve --access-log`).

use crate::harness::*;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Fixture {
    _project: tempfile::TempDir,
    data: tempfile::TempDir,
    label: String,
    sid: String,
    token: String,
}

fn fixture() -> Fixture {
    let project = project(&[
        ("hello.txt", b"hello, metrics"),
        ("secret.protected.txt", b"secret"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let label = label_of(&import(project.path(), data.path(), "mon", &[]));
    let (sid, token) = credentials(data.path());
    Fixture {
        _project: project,
        data,
        label,
        sid,
        token,
    }
}

/// Parses Prometheus text with the official Python parser; returns `name{labels}` → value.
/// Without python3 the test fails, unless `ASSETD_SKIP_PYTHON=1` (then `None`).
fn parse(text: &str) -> Option<HashMap<String, f64>> {
    if std::env::var("ASSETD_SKIP_PYTHON").as_deref() == Ok("1") {
        eprintln!("ASSETD_SKIP_PYTHON=1: not parsing /metrics with prometheus_client");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/metrics.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tests/python/metrics.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (k, v) = line.rsplit_once(' ').unwrap();
        samples.insert(k.to_string(), v.parse().unwrap());
    }
    Some(samples)
}

fn scrape(addr: SocketAddr, auth: Option<(&str, &str)>) -> Response {
    let auth = auth.map(|(u, p)| basic(u, p));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(addr, "GET", "127.0.0.1", "/metrics", &headers, b"")
}

#[test]
fn metrics_parse_move_with_requests_and_need_the_main_account() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let host = format!("{}.localhost:{}", f.label, srv.addr.port());

    // Refused without (or with wrong) credentials on the management host.
    let r = scrape(srv.addr, None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(!r.text().contains("assetd_http_requests_total"));
    let r = scrape(srv.addr, Some((&f.sid, "wrong")));
    assert_eq!(r.status, 401);

    let r = scrape(srv.addr, Some((&f.sid, &f.token)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let before = parse(&r.text());

    for _ in 0..3 {
        assert_eq!(srv.get(&host, "/hello.txt").status, 200);
    }
    assert_eq!(srv.get(&host, "/missing.txt").status, 404);
    assert_eq!(srv.get(&host, "/secret.txt").status, 403);
    let past = assetd::store::now() - 1;
    let expired = assetd::sign::share_url(&f.token, &format!("http://{host}/secret.txt"), past);
    let expired = expired.unwrap();
    let target = &expired[expired.find("/secret").unwrap()..];
    assert_eq!(srv.get(&host, target).status, 403);
    assert_eq!(srv.get("127.0.0.1", "/").status, 200);

    let r = scrape(srv.addr, Some((&f.sid, &f.token)));
    assert_eq!(r.status, 200);
    let text = r.text();
    // No label holds a path or a host.
    assert!(
        !text.contains("hello.txt") && !text.contains(&f.label),
        "{text}"
    );
    let Some(before) = before else { return };
    let after = parse(&text).unwrap();
    let delta = |k: &str| {
        let a = after
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing:\n{text}"));
        a - before.get(k).copied().unwrap_or(0.0)
    };
    assert_eq!(
        delta(r#"assetd_http_requests_total{kind="asset",status="2xx"}"#),
        3.0
    );
    assert_eq!(
        delta(r#"assetd_http_requests_total{kind="asset",status="4xx"}"#),
        3.0
    );
    assert!(delta(r#"assetd_http_requests_total{kind="console",status="2xx"}"#) >= 2.0);
    assert!(delta(r#"assetd_http_response_bytes_total{kind="asset"}"#) >= 3.0 * 14.0);
    assert_eq!(
        delta(r#"assetd_http_request_duration_seconds_count{kind="asset"}"#),
        6.0
    );
    assert_eq!(
        delta(r#"assetd_signature_failures_total{reason="twilio"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"assetd_signature_failures_total{reason="share_expired"}"#),
        1.0
    );
    assert!(after[r#"assetd_http_open_connections{}"#] >= 1.0);
    assert!(after[r#"assetd_store_blob_bytes{}"#] >= 20.0);
    assert!(after[r#"assetd_store_file_bytes{}"#] > 0.0);
    assert_eq!(after[r#"assetd_builds{status="completed"}"#], 1.0);
    assert!(after[r#"assetd_process_resident_memory_bytes{}"#] > 1e6);
    assert!(after[r#"assetd_process_uptime_seconds{}"#] > 0.0);
    for name in [
        r#"assetd_http_connections_limited_total{limit="head_timeout"}"#,
        r#"assetd_http_connections_limited_total{limit="cap"}"#,
        r#"assetd_build_queue_length{}"#,
        r#"assetd_retention_passes_total{}"#,
        r#"assetd_login_lockouts_total{}"#,
        r#"assetd_build_duration_seconds_count{}"#,
    ] {
        assert!(after.contains_key(name), "{name} missing:\n{text}");
    }
    assert_eq!(
        delta(r#"assetd_http_requests_total{kind="console",status="4xx"}"#),
        0.0
    );
}

#[test]
fn metrics_refused_to_subaccounts_and_api_keys() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let auth = basic(&f.sid, &f.token);
    let post = |target: &str, body: &str| {
        request(
            srv.addr,
            "POST",
            "127.0.0.1",
            target,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
    };
    let r = post("/2010-04-01/Accounts.json", "FriendlyName=sub");
    assert_eq!(r.status, 201, "{}", r.text());
    let sub: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let (sub_sid, sub_token) = (
        sub["sid"].as_str().unwrap(),
        sub["auth_token"].as_str().unwrap(),
    );
    let r = scrape(srv.addr, Some((sub_sid, sub_token)));
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post(
        &format!("/2010-04-01/Accounts/{}/Keys.json", f.sid),
        "FriendlyName=k",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let key: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let r = scrape(
        srv.addr,
        Some((
            key["sid"].as_str().unwrap(),
            key["secret"].as_str().unwrap(),
        )),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("assetd_"), "{}", r.text());
}

#[test]
fn metrics_count_head_timeouts_and_lockouts() {
    let f = fixture();
    let srv = Server::start(
        f.data.path(),
        &["--head-timeout", "1", "--metrics-listen", "127.0.0.1:0"],
    );
    let open_addr = metrics_addr(&srv);
    // A connection that never sends a head is cut by the head timeout, and counted.
    let idle = std::net::TcpStream::connect(srv.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    // EOF (or a 408 and EOF) once the engine gives up on it.
    while std::io::Read::read(&mut &idle, &mut buf).unwrap_or(0) > 0 {}
    let r = scrape(srv.addr, Some((&f.sid, &f.token)));
    assert!(
        r.text()
            .contains("assetd_http_connections_limited_total{limit=\"head_timeout\"} 1"),
        "{}",
        r.text()
    );
    // 10 wrong passwords lock this address out once.
    for _ in 0..10 {
        assert_eq!(scrape(srv.addr, Some((&f.sid, "wrong"))).status, 401);
    }
    assert_eq!(scrape(srv.addr, Some((&f.sid, &f.token))).status, 429);
    let r = scrape(open_addr, None);
    assert!(
        r.text().contains("assetd_login_lockouts_total 1\n"),
        "{}",
        r.text()
    );
}

/// The unauthenticated metrics address `serve` printed.
fn metrics_addr(srv: &Server) -> SocketAddr {
    srv.banner
        .iter()
        .find_map(|l| l.strip_prefix("metrics on http://"))
        .and_then(|l| l.strip_suffix("/metrics"))
        .expect("the metrics address in the banner")
        .parse()
        .unwrap()
}

#[test]
fn metrics_listener_serves_only_metrics_without_credentials() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let addr = metrics_addr(&srv);
    let r = scrape(addr, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("assetd_http_requests_total"));
    parse(&r.text());
    assert_eq!(get(addr, "127.0.0.1", "/").status, 404);
    assert_eq!(get(addr, "127.0.0.1", "/v1/Services").status, 404);
    let host = format!("{}.localhost", f.label);
    assert_eq!(get(addr, &host, "/hello.txt").status, 404);
    // The management host still wants credentials.
    assert_eq!(scrape(srv.addr, None).status, 401);
}

/// Waits (polling, bounded) until `path` holds at least `n` lines; returns them.
fn lines_of(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {} lines, not {n}:\n{text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn access_log_combined_one_line_per_request_and_reopened_on_sighup() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let srv = Server::start(f.data.path(), &["--access-log", log.to_str().unwrap()]);
    let host = format!("{}.localhost:{}", f.label, srv.addr.port());
    let link = assetd::sign::share_url(
        &f.token,
        &format!("http://{host}/secret.txt"),
        assetd::store::now() + 600,
    )
    .unwrap();
    let target = &link[link.find("/secret").unwrap()..];
    assert_eq!(srv.get(&host, target).status, 200);
    assert_eq!(srv.get(&host, "/hello.txt").status, 200);
    let auth = basic(&f.sid, &f.token);
    let r = srv.request(
        "GET",
        "127.0.0.1",
        "/v1/Services",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 200);
    // The /healthz probe of Server::start is the first line.
    let lines = lines_of(&log, 4);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let text = lines.join("\n");
    assert!(
        !text.contains("Signature") && !text.contains("Expires"),
        "{text}"
    );
    assert!(
        !text.contains(&f.token) && !text.contains(&auth[6..]),
        "{text}"
    );
    assert!(lines[1].starts_with("127.0.0.1 - - ["), "{}", lines[1]);
    assert!(
        lines[1].contains("\"GET /secret.txt HTTP/1.1\" 200 6 "),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains(&format!("env={} vis=protected", f.label)),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("\"GET /hello.txt HTTP/1.1\" 200 14 "),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("vis=public"), "{}", lines[2]);
    assert!(
        lines[3].contains("\"GET /v1/Services HTTP/1.1\" 200 "),
        "{}",
        lines[3]
    );

    // logrotate: mv, then SIGHUP; the next request goes to a new file.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let pid = srv.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Requests until one lands in the new file (the reopen happens within the writer's tick).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.exists() {
        assert_eq!(srv.get(&host, "/hello.txt").status, 200);
        assert!(Instant::now() < deadline, "no new access log after SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The file exists once reopened: the next request is logged there.
    assert_eq!(srv.get(&host, "/hello.txt").status, 200);
    let new = lines_of(&log, 1);
    assert!(new[0].contains("/hello.txt"), "{new:?}");
    // The server is still running (SIGHUP does not stop it).
    assert_eq!(srv.get("127.0.0.1", "/healthz").status, 200);
    assert!(lines_of(&rotated, 4).len() >= 4);
}

#[test]
fn access_log_json_one_object_per_request() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.json");
    let srv = Server::start(
        f.data.path(),
        &[
            "--access-log",
            log.to_str().unwrap(),
            "--access-log-format",
            "json",
        ],
    );
    let host = format!("{}.localhost:{}", f.label, srv.addr.port());
    assert_eq!(srv.get(&host, "/hello.txt?x=1").status, 200);
    assert_eq!(srv.get(&host, "/secret.txt").status, 403);
    let lines = lines_of(&log, 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v[0]["path"], "/healthz");
    assert_eq!(v[1]["path"], "/hello.txt");
    assert_eq!(v[1]["status"], 200);
    assert_eq!(v[1]["bytes"], 14);
    assert_eq!(v[1]["environment"], f.label.as_str());
    assert_eq!(v[1]["visibility"], "public");
    assert_eq!(v[1]["method"], "GET");
    assert_eq!(v[1]["client"], "127.0.0.1");
    assert_eq!(v[1]["host"], host.as_str());
    assert!(v[1]["duration"].as_f64().unwrap() >= 0.0);
    assert!(v[1]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v[2]["status"], 403);
    assert_eq!(v[2]["visibility"], "protected");
}

#[test]
fn serve_refuses_bad_monitoring_flags_in_one_line() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    for (args, want) in [
        (vec!["--access-log-format", "xml"], "combined or json"),
        (
            vec!["--share-max-lifetime", "forever"],
            "--share-max-lifetime",
        ),
        (
            vec!["--access-log", "/nonexistent-dir/x/access.log"],
            "cannot open the access log",
        ),
    ] {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--data", d];
        all.extend(args.iter());
        let (ok, out, err) = cli(&all);
        assert!(!ok, "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
