//! The engine from outside: a real listener on port 0 and raw bytes on `TcpStream`s.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Instant;

/// Paths under `/b/` take the blocking lane; the rest are quick. `/n/N`: N bytes; `/s/N`: an
/// N-byte [`Body::Stream`]; `/c/N`: N bytes as [`Body::Chunks`] of 100,000; `/short-c/N`:
/// promises N, delivers half; `/bad-header`, `/bad-name`, `/panic`; `/b/body` echoes the
/// body; `/b/ignore` does not read it; `/b/limit` takes at most 1,000 bytes; `/b/gate` waits
/// until the gate opens; else the target.
#[derive(Default)]
struct TestHandler {
    seen: Mutex<Vec<String>>,
    gate: AtomicBool,
}

struct Pattern {
    at: u64,
    len: u64,
}

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
        let table = TABLE.get_or_init(|| pattern(251 * 2));
        let n = (self.len - self.at).min(buf.len() as u64).min(251) as usize;
        let at = (self.at % 251) as usize;
        buf[..n].copy_from_slice(&table[at..at + n]);
        self.at += n as u64;
        Ok(n)
    }
}

impl ChunkSource for Pattern {
    fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        let n = (self.len - self.at).min(100_000);
        if n == 0 {
            return Ok(None);
        }
        let v: Vec<u8> = (self.at..self.at + n).map(|i| (i % 251) as u8).collect();
        self.at += n;
        Ok(Some(Box::new(v)))
    }
}

impl Handler for TestHandler {
    fn is_quick(&self, req: &Request<'_>) -> bool {
        !req.target.starts_with("/b/")
    }

    fn body_limit(&self, req: &Request<'_>) -> u64 {
        if req.target == "/b/limit" {
            1000
        } else {
            u64::MAX
        }
    }

    fn handle(&self, req: &mut Request<'_>) -> Reply {
        self.seen.lock().unwrap().push(req.target.to_string());
        let ok = |body: Body| Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body,
        };
        let t = req.target;
        let num = |p: &str| t.strip_prefix(p).and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = num("/n/") {
            return ok(Body::Bytes(vec![b'x'; n as usize]));
        }
        if let Some(len) = num("/s/") {
            let reader = Box::new(Pattern { at: 0, len });
            return ok(Body::Stream { reader, len });
        }
        if let Some(len) = num("/c/") {
            let source = Box::new(Pattern { at: 0, len });
            return ok(Body::Chunks { source, len });
        }
        if let Some(len) = num("/short-c/") {
            let source = Box::new(Pattern {
                at: 0,
                len: len / 2,
            });
            return ok(Body::Chunks { source, len });
        }
        match t {
            "/b/body" | "/b/limit" => {
                let mut v = Vec::new();
                match req.body.read_to_end(&mut v) {
                    Ok(_) => ok(Body::Bytes(v)),
                    Err(e) => Reply::plain(413, &format!("unread body: {e}\n")),
                }
            }
            "/b/gate" => {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !self.gate.load(Ordering::SeqCst) && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(10));
                }
                ok(Body::Bytes(b"gate passed".to_vec()))
            }
            "/bad-header" => Reply {
                status: 200,
                headers: vec![("X-Bad".into(), "a\r\nX-Injected: 1".into())],
                body: Body::Bytes(b"never".to_vec()),
            },
            "/bad-name" => Reply {
                status: 200,
                headers: vec![("Bad Name".into(), "v".into())],
                body: Body::Bytes(b"never".to_vec()),
            },
            "/panic" | "/b/panic" => panic!("handler panic (expected by a test)"),
            _ => ok(Body::Bytes(t.as_bytes().to_vec())),
        }
    }
}

struct Running {
    addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
    handler: Arc<TestHandler>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn start(tune: impl FnOnce(&mut ServerConfig)) -> Running {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.threads = 2;
    tune(&mut config);
    let server = Server::bind(config).unwrap();
    let addr = server.local_addr();
    let handle = server.shutdown_handle();
    let handler = Arc::new(TestHandler::default());
    let h: Arc<dyn Handler> = handler.clone();
    let thread = thread::spawn(move || server.run(h));
    Running {
        addr,
        handle,
        thread: Some(thread),
        handler,
    }
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    BufReader::new(s)
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response; the body by Content-Length (none for HEAD, 1xx, 204, 304).
fn read_resp(r: &mut BufReader<TcpStream>, head_request: bool) -> io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| io::Error::other("bad header"))?;
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if !head_request && status >= 200 && status != 204 && status != 304 {
        let len: usize = resp
            .header("content-length")
            .ok_or_else(|| io::Error::other("no Content-Length"))?
            .parse()
            .map_err(io::Error::other)?;
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body)?;
    }
    Ok(resp)
}

fn send_raw(r: &mut BufReader<TcpStream>, raw: &[u8]) {
    r.get_mut().write_all(raw).unwrap();
}

fn get(r: &mut BufReader<TcpStream>, path: &str) -> Resp {
    send_raw(
        r,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    );
    read_resp(r, false).unwrap()
}

/// True when the peer closes (EOF or reset) within `within`.
fn closed_within(r: &mut BufReader<TcpStream>, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Fresh-connection GETs while `busy` runs: the fraction answered within 1 s each.
fn fresh_requests_answered(addr: SocketAddr, rounds: usize) -> f64 {
    let mut ok = 0;
    for i in 0..rounds {
        let t = Instant::now();
        let answered = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .ok()
            .and_then(|s| {
                s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
                let mut c = BufReader::new(s);
                send_raw(
                    &mut c,
                    format!("GET /fresh/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                );
                read_resp(&mut c, false).ok()
            })
            .is_some_and(|r| r.body == format!("/fresh/{i}").into_bytes());
        if answered && t.elapsed() < Duration::from_secs(1) {
            ok += 1;
        }
        thread::sleep(Duration::from_millis(20));
    }
    ok as f64 / rounds as f64
}

#[test]
fn burst_of_64_keepalive_connections_all_answered() {
    let srv = start(|_| {});
    let t = Instant::now();
    let mut conns: Vec<_> = (0..64).map(|_| connect(srv.addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        send_raw(
            c,
            format!("GET /burst/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let r = read_resp(c, false).unwrap();
        assert_eq!(r.body, format!("/burst/{i}").into_bytes());
    }
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(get(c, &format!("/again/{i}")).status, 200);
    }
    let took = t.elapsed();
    eprintln!("64 keep-alive connections, two requests each, answered in {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn idle_keepalive_connection_is_closed() {
    let srv = start(|c| c.head_timeout = Duration::from_millis(300));
    let mut c = connect(srv.addr);
    assert_eq!(get(&mut c, "/x").status, 200);
    let t = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(3)));
    let took = t.elapsed();
    eprintln!("idle connection closed after {took:?} (head timeout 300 ms)");
    assert!(took >= Duration::from_millis(250), "{took:?}");
}

#[test]
fn slowloris_head_is_cut() {
    let srv = start(|c| c.head_timeout = Duration::from_millis(300));
    let mut c = connect(srv.addr);
    c.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let t = Instant::now();
    let mut closed = false;
    while t.elapsed() < Duration::from_secs(3) {
        if c.get_mut().write_all(b"X-A: b\r\n").is_err()
            || closed_within(&mut c, Duration::from_millis(50))
        {
            closed = true;
            break;
        }
    }
    eprintln!("slowloris head cut after {:?}", t.elapsed());
    assert!(closed);
    assert!(srv.handler.seen.lock().unwrap().is_empty());
}

#[test]
fn oversized_heads_are_refused_with_431() {
    let srv = start(|_| {});
    let mut c = connect(srv.addr);
    let big = "a".repeat(32 * 1024);
    send_raw(
        &mut c,
        format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    assert_eq!(read_resp(&mut c, false).unwrap().status, 431);
    assert!(closed_within(&mut c, Duration::from_secs(2)));
    // Too many header lines: 431 too.
    let mut c = connect(srv.addr);
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    send_raw(
        &mut c,
        format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(read_resp(&mut c, false).unwrap().status, 431);
    // A head that never ends is cut while it grows.
    let mut c = connect(srv.addr);
    let _ = c
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < 64 * 1024 * 1024 && c.get_mut().write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(sent < 64 * 1024 * 1024, "64 MiB head accepted");
    assert!(srv.handler.seen.lock().unwrap().is_empty());
}

#[test]
fn transfer_encoding_smuggling_is_refused_and_closed() {
    let srv = start(|_| {});
    let smuggle = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    let post = "POST /b/body HTTP/1.1\r\nHost: t\r\n";
    let cases = [
        (
            format!("{post}Transfer-Encoding: gzip\r\n\r\n{smuggle}"),
            &[400, 501][..],
        ),
        (
            format!("{post}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggle}"),
            &[501],
        ),
        (
            format!(
                "{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{smuggle}"
            ),
            &[400, 501],
        ),
        (
            format!(
                "{post}Transfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{smuggle}",
                5 + smuggle.len()
            ),
            &[400],
        ),
        (
            format!(
                "{post}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggle}"
            ),
            &[400],
        ),
        (
            format!("{post}Content-Length: +5\r\n\r\nhello{smuggle}"),
            &[400],
        ),
        (
            format!("{post}Content-Length: 5, 5\r\n\r\nhello{smuggle}"),
            &[400],
        ),
        (
            format!("{post}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!{smuggle}"),
            &[400],
        ),
        (
            format!("{post}Transfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n{smuggle}"),
            &[400],
        ),
        (
            format!("GET /a HTTP/1.1\r\nHost: t\r\nX-Nul: a\0b\r\n\r\n{smuggle}"),
            &[400],
        ),
    ];
    for (raw, want) in cases {
        let mut c = connect(srv.addr);
        c.get_mut().write_all(raw.as_bytes()).unwrap();
        let r = read_resp(&mut c, false).unwrap();
        assert!(want.contains(&r.status), "{raw:?}: {}", r.status);
        assert!(
            closed_within(&mut c, Duration::from_secs(2)),
            "{raw:?} left open"
        );
    }
    let seen = srv.handler.seen.lock().unwrap().clone();
    assert!(seen.is_empty(), "handler saw {seen:?}");
}

/// Regression: tiny_http trimmed header values first, so `chunked\x0b` and `\x0b5` passed.
#[test]
fn control_characters_in_framing_headers_are_400() {
    let srv = start(|_| {});
    for bad in [
        "Transfer-Encoding: chunked\x0b",
        "Transfer-Encoding: \x0cchunked",
        "Transfer-Encoding: chunked\0",
        "Content-Length: \x0b5",
        "Content-Length: 5\x0c",
        "Content-Length: \x005",
        "Content-Length: 5\rX: y",
    ] {
        let mut c = connect(srv.addr);
        let raw =
            format!("POST /b/body HTTP/1.1\r\nHost: t\r\n{bad}\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        c.get_mut().write_all(raw.as_bytes()).unwrap();
        let r = read_resp(&mut c, false).unwrap();
        assert_eq!(r.status, 400, "{bad:?}");
        assert!(
            closed_within(&mut c, Duration::from_secs(2)),
            "{bad:?} left open"
        );
    }
    assert!(srv.handler.seen.lock().unwrap().is_empty());
}

/// Regression (black-box test): two `Host` headers were served by the first one, and an
/// HTTP/1.1 request without one was served, so a proxy in front reading another `Host` could
/// be steered elsewhere. Both are 400 now; HTTP/1.0 may still omit it.
#[test]
fn an_http11_request_needs_exactly_one_host() {
    let srv = start(|_| {});
    for raw in [
        "GET /a HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
        "GET /a HTTP/1.1\r\n\r\n",
        "GET http://t/a HTTP/1.1\r\n\r\n",
        "GET /a HTTP/1.0\r\nHost: t\r\nhost: t\r\n\r\n",
    ] {
        let mut c = connect(srv.addr);
        c.get_mut().write_all(raw.as_bytes()).unwrap();
        let r = read_resp(&mut c, false).unwrap();
        assert_eq!(r.status, 400, "{raw:?}");
    }
    assert!(srv.handler.seen.lock().unwrap().is_empty());
    let mut c = connect(srv.addr);
    c.get_mut().write_all(b"GET /a HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_resp(&mut c, false).unwrap().status, 200);
}

/// Methods are case-sensitive (RFC 9110): `get` reaches the handler as `get`, never as `GET`.
#[test]
fn lower_case_get_is_not_get() {
    struct Methods;
    impl Handler for Methods {
        fn is_quick(&self, _: &Request<'_>) -> bool {
            true
        }
        fn handle(&self, req: &mut Request<'_>) -> Reply {
            if req.method == "GET" {
                Reply::plain(200, "served as GET\n")
            } else {
                Reply::plain(405, &format!("{} is not allowed\n", req.method))
            }
        }
    }
    let server = Server::bind(ServerConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = server.local_addr();
    let handle = server.shutdown_handle();
    let t = thread::spawn(move || server.run(Arc::new(Methods)));
    for method in ["get", "Get", "gEt"] {
        let mut c = connect(addr);
        send_raw(
            &mut c,
            format!("{method} / HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        let r = read_resp(&mut c, false).unwrap();
        assert!(
            [400, 405, 501].contains(&r.status),
            "{method}: {}",
            r.status
        );
    }
    handle.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn garbage_heads_are_answered_or_closed_at_once() {
    let srv = start(|_| {});
    let tls_hello: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    let cases: [&[u8]; 4] = [
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        tls_hello,
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET / HTTP/1.1\nHost: t\n\n",
    ];
    for raw in cases {
        let mut c = connect(srv.addr);
        c.get_mut().write_all(raw).unwrap();
        let t = Instant::now();
        let r = read_resp(&mut c, false);
        let done = r.is_ok() || closed_within(&mut c, Duration::from_secs(1));
        assert!(done && t.elapsed() < Duration::from_secs(1), "{raw:?} held");
    }
}

#[test]
fn chunked_body_is_read_and_connection_reused() {
    let srv = start(|_| {});
    let mut c = connect(srv.addr);
    send_raw(
        &mut c,
        b"POST /b/body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
    );
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello, world"[..]));
    assert_eq!(get(&mut c, "/after").body, b"/after");
}

#[test]
fn large_bodies_are_spooled_byte_exact() {
    let dir = std::env::temp_dir().join(format!("assetd-spool-test-{}", std::process::id()));
    let d = dir.clone();
    let srv = start(move |c| c.spool_dir = Some(d));
    let mut c = connect(srv.addr);
    let body = pattern(3_000_000);
    send_raw(
        &mut c,
        b"POST /b/body HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n",
    );
    c.get_mut().write_all(&body).unwrap();
    let r = read_resp(&mut c, false).unwrap();
    assert!(r.status == 200 && r.body == body);
    // The spool file was unlinked as soon as it was made.
    let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn expect_continue_is_honoured() {
    let srv = start(|_| {});
    let mut c = connect(srv.addr);
    send_raw(
        &mut c,
        b"POST /b/body HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(read_resp(&mut c, false).unwrap().status, 100);
    c.get_mut().write_all(&[b'z'; 5000]).unwrap();
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!((r.status, r.body.len()), (200, 5000));
}

#[test]
fn bodies_past_the_limit_are_not_received() {
    let srv = start(|_| {});
    // Declared past the handler's limit: the handler answers at once, without the body.
    let mut c = connect(srv.addr);
    send_raw(
        &mut c,
        b"POST /b/limit HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000000\r\nExpect: 100-continue\r\n\r\n",
    );
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(r.status, 413, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(closed_within(&mut c, Duration::from_secs(2)));
    // Chunked past it: refused by the engine.
    let mut c = connect(srv.addr);
    send_raw(
        &mut c,
        b"POST /b/limit HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..3 {
        send_raw(&mut c, format!("200\r\n{}\r\n", "y".repeat(512)).as_bytes());
    }
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(r.status, 413);
    let mut c = connect(srv.addr);
    assert_eq!(get(&mut c, "/alive").status, 200);
}

#[test]
fn invalid_response_headers_are_never_written() {
    let srv = start(|_| {});
    let mut c = connect(srv.addr);
    for path in ["/bad-header", "/bad-name"] {
        let r = get(&mut c, path);
        assert_eq!(r.status, 500);
        assert!(
            r.headers
                .iter()
                .all(|(n, _)| !n.eq_ignore_ascii_case("x-injected"))
        );
        assert!(
            r.headers
                .iter()
                .all(|(n, _)| n != "X-Bad" && n != "Bad Name")
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("never"));
    }
    assert_eq!(get(&mut c, "/still-alive").status, 200);
}

#[test]
fn head_and_streamed_bodies_carry_content_length() {
    let srv = start(|_| {});
    let mut c = connect(srv.addr);
    for path in ["/n/1048576", "/s/1048576", "/c/300"] {
        send_raw(
            &mut c,
            format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        let r = read_resp(&mut c, true).unwrap();
        let want = path.rsplit('/').next().unwrap();
        assert_eq!((r.status, r.header("content-length")), (200, Some(want)));
        assert!(r.header("transfer-encoding").is_none());
    }
    for len in [0u64, 1, 100, 70_000, 1_048_576, 3_000_000] {
        for kind in ["s", "c"] {
            let r = get(&mut c, &format!("/{kind}/{len}"));
            assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
            assert!(r.header("transfer-encoding").is_none());
            assert!(r.body == pattern(len), "/{kind}/{len}");
        }
    }
    assert!(c.get_ref().peer_addr().is_ok());
}

#[test]
fn a_short_body_ends_the_connection_and_a_panic_answers_500() {
    let srv = start(|_| {});
    let mut c = connect(srv.addr);
    send_raw(&mut c, b"GET /short-c/400000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = read_resp(&mut c, false);
    assert!(r.is_err(), "a short body was completed");
    for path in ["/panic", "/b/panic"] {
        let mut c = connect(srv.addr);
        assert_eq!(get(&mut c, path).status, 500);
        assert_eq!(get(&mut c, "/next").body, b"/next");
    }
}

#[test]
fn unread_bodies_do_not_hold_the_connection() {
    let srv = start(|_| {});
    // A quick GET with a body it never reads: answered at once, then closed unless drained.
    let mut c = connect(srv.addr);
    send_raw(
        &mut c,
        b"GET /q HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\nabc",
    );
    let t = Instant::now();
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(r.body, b"/q");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(closed_within(&mut c, Duration::from_secs(2)));
    // A small body that did arrive whole is drained: the connection goes on.
    let mut c = connect(srv.addr);
    send_raw(
        &mut c,
        b"GET /q HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(read_resp(&mut c, false).unwrap().body, b"/q");
    assert_eq!(get(&mut c, "/again").body, b"/again");
}

#[test]
fn stalled_request_bodies_are_cut_with_408() {
    let srv = start(|c| c.io_timeout = Duration::from_millis(300));
    let mut c = connect(srv.addr);
    send_raw(
        &mut c,
        b"POST /b/body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",
    );
    let t = Instant::now();
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(r.status, 408);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(closed_within(&mut c, Duration::from_secs(2)));
}

#[test]
fn stalled_readers_are_cut() {
    let srv = start(|c| {
        c.io_timeout = Duration::from_millis(500);
        c.send_buffer = 64 * 1024;
    });
    let c = TcpStream::connect(srv.addr).unwrap();
    // SAFETY-free tuning of our side: a small receive buffer so the server's writes pend soon.
    let mut c = BufReader::new(c);
    send_raw(&mut c, b"GET /c/50000000 HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    c.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while let Ok(n) = c.read(&mut buf) {
        if n == 0 {
            break;
        }
        got += n;
    }
    eprintln!(
        "stalled reader: {got} bytes were queued, then the connection ended ({:?})",
        t.elapsed()
    );
    assert!(
        got < 50_000_000,
        "the whole body was sent to a reader that stopped"
    );
}

/// Regression (tiny_http): 4 connections trickling a body at 1 byte/s stopped every other
/// client, because each held one of a fixed pool of threads.
#[test]
fn trickling_bodies_do_not_stop_other_clients() {
    let srv = start(|_| {});
    let stop = Arc::new(AtomicBool::new(false));
    let mut tricklers = Vec::new();
    for i in 0..16 {
        let addr = srv.addr;
        let stop = stop.clone();
        tricklers.push(thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let head = if i % 2 == 0 {
                "POST /b/body HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
            } else {
                "POST /b/body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            };
            s.write_all(head.as_bytes()).unwrap();
            while !stop.load(Ordering::SeqCst) {
                let byte: &[u8] = if i % 2 == 0 { b"x" } else { b"1\r\nx\r\n" };
                if s.write_all(byte).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    thread::sleep(Duration::from_millis(300));
    let share = fresh_requests_answered(srv.addr, 100);
    stop.store(true, Ordering::SeqCst);
    for t in tricklers {
        t.join().unwrap();
    }
    eprintln!(
        "with 16 trickling bodies: {:.0}% of fresh requests answered within 1 s",
        share * 100.0
    );
    assert!(share >= 0.98, "{share}");
}

#[test]
fn connections_beyond_the_cap_wait_and_are_then_served() {
    let srv = start(|c| {
        c.max_connections = 4;
        c.head_timeout = Duration::from_millis(500);
    });
    let idle: Vec<_> = (0..4).map(|_| connect(srv.addr)).collect();
    thread::sleep(Duration::from_millis(100));
    let mut waiting = connect(srv.addr);
    send_raw(&mut waiting, b"GET /late HTTP/1.1\r\nHost: t\r\n\r\n");
    // Served once the idle ones time out and free their places.
    let t = Instant::now();
    let r = read_resp(&mut waiting, false).unwrap();
    assert_eq!(r.body, b"/late");
    eprintln!(
        "a connection past the cap of 4 was served after {:?}",
        t.elapsed()
    );
    drop(idle);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = start(|_| {});
    let mut c = connect(srv.addr);
    let raw: String = (0..20)
        .map(|i| format!("GET /p/{i} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect();
    send_raw(&mut c, raw.as_bytes());
    for i in 0..20 {
        assert_eq!(
            read_resp(&mut c, false).unwrap().body,
            format!("/p/{i}").into_bytes()
        );
    }
}

#[test]
fn shutdown_lets_in_flight_requests_finish() {
    let mut srv = start(|_| {});
    let mut c = connect(srv.addr);
    send_raw(&mut c, b"GET /b/gate HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    srv.handle.shutdown();
    thread::sleep(Duration::from_millis(200));
    // New connections are refused once shut down.
    assert!(TcpStream::connect(srv.addr).is_err());
    srv.handler.gate.store(true, Ordering::SeqCst);
    let r = read_resp(&mut c, false).unwrap();
    assert_eq!(r.body, b"gate passed");
    let t = Instant::now();
    srv.thread.take().unwrap().join().unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn tail_finds_a_content_length_by_request_line() {
    let tail = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\nPOST /a HTTP/1.1\r\nContent-length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert!(engine_tail_has_cl(tail, "POST", "/a"));
    assert!(!engine_tail_has_cl(tail, "GET", "/x"));
    assert!(!engine_tail_has_cl(
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nContent-Length: 5\r\n",
        "POST",
        "/a"
    ));
}

/// Regression (black-box test): TE together with CL got past the 400 when the request line
/// was in absolute form or carried a fragment, since the tail was searched for the exact
/// `METHOD target` that hyper had normalised.
#[test]
fn te_with_cl_is_found_in_absolute_form_and_with_a_fragment() {
    let te_cl = "\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
    for line in [
        "POST http://127.0.0.1/v1/Services HTTP/1.1",
        "POST HTTPS://x:8080/v1/Services HTTP/1.1",
        "POST /v1/Services#x HTTP/1.1",
        "POST http://h/v1/Services#frag HTTP/1.1",
    ] {
        let tail = format!("{line}{te_cl}0\r\n\r\n");
        assert!(
            engine_tail_has_cl(tail.as_bytes(), "POST", "/v1/Services"),
            "{line}"
        );
    }
    let tail = format!("POST http://h?q=1 HTTP/1.1{te_cl}");
    assert!(engine_tail_has_cl(tail.as_bytes(), "POST", "/?q=1"));
    // Another path, method or version is another request.
    for line in [
        "POST http://h/v1/Other HTTP/1.1",
        "PUT /v1/Services HTTP/1.1",
        "POST /v1/Services HTTP/2.0",
    ] {
        let tail = format!("{line}{te_cl}");
        assert!(
            !engine_tail_has_cl(tail.as_bytes(), "POST", "/v1/Services"),
            "{line}"
        );
    }
}

fn engine_tail_has_cl(tail: &[u8], method: &str, target: &str) -> bool {
    engine::tail_has_content_length(tail, method, target)
}
