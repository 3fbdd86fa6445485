//! The HTTP/1.1 engine on hyper 1 + tokio: the only module that names hyper, hyper-util,
//! http-body-util, bytes, tokio and socket2.
//!
//! One multi-thread runtime (a worker per core by default). Each accepted connection is a
//! task; a slow or idle peer costs its buffers, never a thread. Limits: a connection cap (a
//! semaphore: beyond it connections wait in the listen queue), hyper's head timeout (slow
//! heads and idle keep-alive), head size and header count (431), a no-progress timeout on
//! request bodies (here) and on writes ([`Guarded`]), a body size cap, `SO_SNDBUF` capped on
//! accepted sockets. Accept errors (EMFILE and friends) back off and go on.

use super::{Body, Chunk, ChunkSource, Handler, Reply, Request, SPOOL_IN_MEMORY, ServerConfig};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read, Seek, Write};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

/// How long in-flight requests may take to finish after a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Bytes read per blocking-pool trip for [`Body::Stream`] replies.
const STREAM_PIECE: usize = 64 * 1024;

/// A bound, not yet running server.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    config: ServerConfig,
    max_connections: usize,
    stop: Arc<watch::Sender<bool>>,
}

/// Stops a running server: no new connections, in-flight requests finish.
#[derive(Clone)]
pub struct ShutdownHandle {
    stop: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    /// Stops accepting (the listening socket is closed) and makes [`Server::run`] return once
    /// in-flight requests are done (at most 10 s). Callable from any thread.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

impl Server {
    /// Binds the listener and builds the runtime (its threads start here).
    ///
    /// Also raises the soft `RLIMIT_NOFILE` to the hard limit (best effort) and lowers the
    /// connection cap to what the descriptor limit leaves after a reserve for the store.
    pub fn bind(config: ServerConfig) -> io::Result<Server> {
        let fd_limit = raise_nofile_limit();
        let domain = socket2::Domain::for_address(config.listen);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&config.listen.into())?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        let listener: std::net::TcpListener = socket.into();
        let addr = listener.local_addr()?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(config.blocking_threads.max(1))
            .thread_name("assetd-http")
            .enable_io()
            .enable_time()
            .build()?;
        // Descriptors kept back for the store, spool files and the process itself.
        let reserve = (fd_limit / 8).clamp(32, 512);
        let max_connections = config
            .max_connections
            .min(fd_limit.saturating_sub(reserve) as usize)
            .max(1);
        Ok(Server {
            runtime,
            listener,
            addr,
            config,
            max_connections,
            stop: Arc::new(watch::Sender::new(false)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            stop: self.stop.clone(),
        }
    }

    /// Serves requests with `handler` until shut down; returns once in-flight requests are
    /// done (at most 10 s after the shutdown; connections still open then are closed).
    pub fn run(self, handler: Arc<dyn Handler>) -> io::Result<()> {
        let Server {
            runtime,
            listener,
            config,
            max_connections,
            stop,
            ..
        } = self;
        let shared = Arc::new(Shared {
            handler,
            config,
            spooled: AtomicU64::new(0),
        });
        let result = runtime.block_on(async move {
            let listener = TcpListener::from_std(listener)?;
            accept_loop(listener, shared, max_connections, stop.subscribe()).await;
            Ok(())
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        result
    }
}

/// What every connection task shares.
struct Shared {
    handler: Arc<dyn Handler>,
    config: ServerConfig,
    /// Spool files made so far (for unique names).
    spooled: AtomicU64,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut last_report: Option<Instant> = None;
    let stats = shared.config.stats.clone();
    loop {
        if permits.available_permits() == 0 {
            stats.cap_waits.fetch_add(1, Ordering::Relaxed); // metrics
        }
        let permit = tokio::select! {
            biased;
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, remote)) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed); // metrics
                let conn = connection(stream, remote, shared.clone(), stop.clone(), permit);
                tokio::spawn(conn);
            }
            // An accept error never ends the listener: out of descriptors or memory, wait a
            // little (connections that finish free some) and go on; anything else (a peer
            // that reset before it was accepted) is retried at once.
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed); // metrics
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) {
                    if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        eprintln!("assetd: cannot accept a connection ({e}); retrying");
                        last_report = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    // Every connection holds a permit until it ends: having them all back means no request
    // is in flight.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all)).await;
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    if shared.config.send_buffer > 0 {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(shared.config.send_buffer);
    }
    let remote = canonical(remote);
    let tail = Arc::new(Mutex::new(Vec::new()));
    let config = &shared.config;
    // metrics: open connections, and which limit a connection ended on.
    let stats = config.stats.clone();
    stats.open.fetch_add(1, Ordering::Relaxed);
    let served = Arc::new(AtomicU64::new(0));
    let max_buf = config.max_head_bytes.max(8192);
    let io = TokioIo::new(Guarded {
        stream,
        timeout: config.io_timeout,
        stall: None,
        tail: tail.clone(),
        tail_keep: max_buf + 1024,
        stats: stats.clone(),
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.head_timeout)
        .max_buf_size(max_buf)
        .max_headers(config.max_headers)
        .keep_alive(true);
    let for_service = shared.clone();
    let counted = served.clone();
    let service = service_fn(move |req| {
        counted.fetch_add(1, Ordering::Relaxed); // metrics
        let shared = for_service.clone();
        let tail = tail.clone();
        async move { Ok::<_, Infallible>(answer(&shared, req, remote, &tail).await) }
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    // metrics: hyper's head timeout bounds the first head and the keep-alive wait alike.
    if ended.is_err_and(|e| e.is_timeout()) {
        let first = served.load(Ordering::Relaxed) == 0;
        let counter = if first {
            &stats.head_timeouts
        } else {
            &stats.idle_timeouts
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// IPv4 clients of an IPv6 listener are reported by their IPv4 address.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// The head of a request, owned, before a body is attached.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    remote: Option<SocketAddr>,
    body_len: Option<u64>,
}

impl Head {
    fn request<'a>(&mut self, body: &'a mut dyn Read) -> Request<'a> {
        Request {
            method: std::mem::take(&mut self.method),
            target: std::mem::take(&mut self.target),
            headers: std::mem::take(&mut self.headers),
            remote: self.remote,
            body_len: self.body_len,
            body,
        }
    }

    fn restore(&mut self, req: Request<'_>) {
        self.method = req.method;
        self.target = req.target;
        self.headers = req.headers;
    }
}

/// Answers one request: framing checks, then the quick lane (inline) or the blocking lane
/// (whole body received first, handler on the blocking pool).
async fn answer(
    shared: &Shared,
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
    tail: &Mutex<Vec<u8>>,
) -> hyper::Response<Out> {
    let (parts, incoming) = req.into_parts();
    let is_head = parts.method == Method::HEAD;
    let mut head = Head {
        method: parts.method.as_str().to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_string(), v)
            })
            .collect(),
        remote: Some(remote),
        body_len: parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok()),
    };
    let handler = &shared.handler;
    if let Some((status, message)) = framing_error(&parts.headers, tail, &head) {
        let mut empty = io::empty();
        let req = head.request(&mut empty);
        let mut reply = handler.refuse(&req, status, message);
        reply.headers.push(("connection".into(), "close".into()));
        return respond(reply, is_head);
    }
    if let Some(reply) = quick(handler.as_ref(), &mut head) {
        return respond(reply, is_head);
    }
    let limit = body_limit(handler.as_ref(), &mut head).min(shared.config.max_body_bytes);
    let body = match receive(shared, incoming, head.body_len, limit).await {
        Ok(body) => body,
        Err((status, message)) => {
            let mut empty = io::empty();
            let req = head.request(&mut empty);
            let mut reply = handler.refuse(&req, status, &message);
            reply.headers.push(("connection".into(), "close".into()));
            return respond(reply, is_head);
        }
    };
    let handler = handler.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let mut body = body;
        let mut req = head.request(&mut body);
        catch_unwind(AssertUnwindSafe(|| handler.handle(&mut req)))
    })
    .await;
    let reply = match answered {
        Ok(Ok(reply)) => reply,
        _ => Reply::plain(500, "Internal Server Error\n"),
    };
    respond(reply, is_head)
}

/// Answers `head` inline when the handler calls it quick (its body is never read).
fn quick(handler: &dyn Handler, head: &mut Head) -> Option<Reply> {
    let mut empty = io::empty();
    let mut req = head.request(&mut empty);
    if !handler.is_quick(&req) {
        head.restore(req);
        return None;
    }
    let reply = catch_unwind(AssertUnwindSafe(|| handler.handle(&mut req)))
        .unwrap_or_else(|_| Reply::plain(500, "Internal Server Error\n"));
    Some(reply)
}

fn body_limit(handler: &dyn Handler, head: &mut Head) -> u64 {
    let mut empty = io::empty();
    let req = head.request(&mut empty);
    let limit = handler.body_limit(&req);
    head.restore(req);
    limit
}

/// SECURITY: request framing the engine refuses even where hyper would accept it: any
/// `Transfer-Encoding` but a single `chunked` (501), and `Transfer-Encoding` together with
/// `Content-Length` (400; hyper drops the length and closes after the reply, but such a
/// request is a smuggling attempt and no handler should see it). Both close the connection.
/// Control characters in header names and values, bad chunk sizes and conflicting lengths
/// are refused by hyper's parser (400) before this.
fn framing_error(
    headers: &HeaderMap,
    tail: &Mutex<Vec<u8>>,
    head: &Head,
) -> Option<(u16, &'static str)> {
    let mut te = headers.get_all(header::TRANSFER_ENCODING).iter();
    let first = te.next()?;
    if te.next().is_some()
        || !first
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked")
    {
        return Some((
            501,
            "Not Implemented: only Transfer-Encoding: chunked is supported",
        ));
    }
    let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    if tail_has_content_length(&tail, &head.method, &head.target) {
        return Some((
            400,
            "Bad Request: Transfer-Encoding together with Content-Length",
        ));
    }
    None
}

/// Keeps at least the last `keep` bytes a connection read. hyper removes a `Content-Length`
/// that comes with `Transfer-Encoding` before the request reaches us, so a chunked request's
/// head is looked up here (see [`tail_has_content_length`]). When the service sees a request,
/// every byte read since its head began is still in hyper's read buffer, so `keep` = that
/// buffer's cap (plus slack) always holds the whole head.
fn record_tail(tail: &Mutex<Vec<u8>>, bytes: &[u8], keep: usize) {
    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if bytes.len() >= keep {
        t.clear();
        t.extend_from_slice(&bytes[bytes.len() - keep..]);
        return;
    }
    // Compacted past 1.25 times `keep`: each byte is moved a few times at most, and a busy
    // connection holds about 1.25 `keep` (an idle one, what it read).
    if t.len() + bytes.len() > keep + keep / 4 {
        let from = t.len() + bytes.len() - keep;
        t.drain(..from);
    }
    t.extend_from_slice(bytes);
}

/// Whether a head in `tail` with this request line has a `Content-Length` header.
pub(super) fn tail_has_content_length(tail: &[u8], method: &str, target: &str) -> bool {
    let line = format!("{method} {target} HTTP/1.1");
    let mut rest = tail;
    while let Some(at) = find(rest, line.as_bytes()) {
        let from = &rest[at..];
        let end = find(from, b"\r\n\r\n")
            .or_else(|| find(from, b"\n\n"))
            .unwrap_or(from.len());
        let has_cl = from[..end]
            .split(|&b| b == b'\n')
            .skip(1)
            .any(|l| l.len() >= 15 && l[..15].eq_ignore_ascii_case(b"content-length:"));
        if has_cl {
            return true;
        }
        rest = &from[line.len()..];
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A request body received whole: in memory, in an unlinked spool file, or failed (the
/// handler sees the error when it reads).
enum Received {
    Memory(io::Cursor<Vec<u8>>),
    File(std::fs::File),
    Failed(Option<io::Error>),
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Received::Memory(c) => c.read(buf),
            Received::File(f) => f.read(buf),
            Received::Failed(e) => Err(e
                .take()
                .unwrap_or_else(|| io::Error::other("the request body was not received"))),
        }
    }
}

/// Receives a whole request body. A body that makes no progress for the I/O timeout is 408;
/// one that grows past the cap is 413; a framing error or a vanished peer is 400.
async fn receive(
    shared: &Shared,
    mut incoming: Incoming,
    declared: Option<u64>,
    limit: u64,
) -> Result<Received, (u16, String)> {
    let config = &shared.config;
    let empty = || Received::Memory(io::Cursor::new(Vec::new()));
    if declared == Some(0) || hyper::body::Body::is_end_stream(&incoming) {
        return Ok(empty());
    }
    if declared.is_some_and(|n| n > limit) {
        config.stats.body_too_large.fetch_add(1, Ordering::Relaxed); // metrics
        // Not read at all: the handler answers 413 from `body_len`, and the unread body makes
        // hyper close the connection after the reply.
        let e = io::Error::other(format!(
            "the request body is larger than this request's limit of {limit} bytes"
        ));
        return Ok(Received::Failed(Some(e)));
    }
    let mut memory = Vec::with_capacity(declared.map_or(8192, |n| n as usize).min(SPOOL_IN_MEMORY));
    let mut file: Option<std::fs::File> = None;
    let mut total = 0u64;
    loop {
        let frame = match tokio::time::timeout(config.io_timeout, incoming.frame()).await {
            Err(_) => {
                config.stats.body_stalls.fetch_add(1, Ordering::Relaxed); // metrics
                let secs = config.io_timeout.as_secs();
                return Err((
                    408,
                    format!("Request Timeout: the request body made no progress for {secs} s"),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err((
                    400,
                    format!("Bad Request: cannot read the request body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            config.stats.body_too_large.fetch_add(1, Ordering::Relaxed); // metrics
            return Err((
                413,
                format!(
                    "Request Entity Too Large: this request takes a body of at most {limit} bytes"
                ),
            ));
        }
        memory.extend_from_slice(&data);
        if memory.len() >= SPOOL_IN_MEMORY {
            match spool(shared, file.take(), std::mem::take(&mut memory)).await {
                Ok((f, buf)) => (file, memory) = (Some(f), buf),
                // A full disk: the handler sees the error when it reads (507 on the API).
                Err(e) => return Ok(Received::Failed(Some(e))),
            }
        }
    }
    match file {
        None => Ok(Received::Memory(io::Cursor::new(memory))),
        Some(f) => match spool(shared, Some(f), memory).await {
            Ok((mut f, _)) => match f.rewind() {
                Ok(()) => Ok(Received::File(f)),
                Err(e) => Ok(Received::Failed(Some(e))),
            },
            Err(e) => Ok(Received::Failed(Some(e))),
        },
    }
}

/// Appends `buf` to the spool file (made, unlinked, on first use) on the blocking pool;
/// gives back the file and the emptied buffer.
async fn spool(
    shared: &Shared,
    file: Option<std::fs::File>,
    mut buf: Vec<u8>,
) -> io::Result<(std::fs::File, Vec<u8>)> {
    let dir = shared
        .config
        .spool_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let n = shared.spooled.fetch_add(1, Ordering::Relaxed);
    let task = tokio::task::spawn_blocking(move || {
        let mut file = match file {
            Some(f) => f,
            None => {
                std::fs::create_dir_all(&dir)?;
                // Named like the API's staging files, so that `serve` removes any a crash
                // left between create and unlink.
                let path = dir.join(format!("upload-spool-{}-{n}", std::process::id()));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                std::fs::remove_file(&path)?;
                f
            }
        };
        file.write_all(&buf)?;
        buf.clear();
        Ok((file, buf))
    });
    task.await.map_err(io::Error::other)?
}

/// The reply as hyper's response. SECURITY (CVE-2026-66753): every header is checked before
/// anything is written; a reply with a bad status, name or value is never written and
/// becomes a 500.
fn respond(reply: Reply, is_head: bool) -> hyper::Response<Out> {
    match build(reply, is_head) {
        Some(r) => r,
        None => build(
            Reply::plain(500, "internal server error: invalid response header\n"),
            is_head,
        )
        .expect("a plain reply is valid"),
    }
}

fn build(reply: Reply, is_head: bool) -> Option<hyper::Response<Out>> {
    if !(200..=599).contains(&reply.status) {
        return None;
    }
    let status = StatusCode::from_u16(reply.status).ok()?;
    let mut headers = HeaderMap::with_capacity(reply.headers.len() + 2);
    let mut given_len = None;
    let mut close = false;
    for (name, value) in &reply.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_str(value).ok()?;
        match name {
            header::CONTENT_LENGTH => {
                let v = value.to_str().ok()?.trim();
                if !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()) {
                    given_len = v.parse::<u64>().ok();
                }
            }
            header::TRANSFER_ENCODING => {}
            header::CONNECTION => close |= value.as_bytes().eq_ignore_ascii_case(b"close"),
            _ if name.as_str() == "keep-alive" => {}
            _ => {
                headers.append(name, value);
            }
        }
    }
    let no_body = reply.status == 204 || reply.status == 304;
    let (body, len) = match reply.body {
        Body::Empty => (Out::Empty, 0),
        Body::Bytes(v) => {
            let n = v.len() as u64;
            (Out::Full(Some(Bytes::from(v))), n)
        }
        Body::Stream { reader, len } => (
            Out::Stream {
                reader: Some(reader),
                left: len,
                task: None,
            },
            len,
        ),
        Body::Chunks { source, len } => (Out::Chunks { source, left: len }, len),
    };
    let empty_head = is_head && matches!(body, Out::Empty);
    let length = match (no_body, empty_head) {
        (true, _) if reply.status == 304 => given_len,
        (true, _) => None,
        (false, true) => Some(given_len.unwrap_or(0)),
        (false, false) => Some(len),
    };
    if let Some(n) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let body = if is_head || no_body { Out::Empty } else { body };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some(response)
}

/// A response body as hyper pulls it.
enum Out {
    Empty,
    Full(Option<Bytes>),
    Chunks {
        source: Box<dyn ChunkSource>,
        left: u64,
    },
    Stream {
        reader: Option<Box<dyn Read + Send>>,
        left: u64,
        task: Option<JoinHandle<Piece>>,
    },
}

/// A [`Body::Stream`] reader back from the blocking pool with the piece it read.
type Piece = (Box<dyn Read + Send>, io::Result<Vec<u8>>);

/// A chunk as the owner of a [`Bytes`].
struct Owned(Chunk);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

fn short_body() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the reply body ended early")
}

impl hyper::body::Body for Out {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let frame = |b: Bytes| Poll::Ready(Some(Ok(Frame::data(b))));
        match self.get_mut() {
            Out::Empty => Poll::Ready(None),
            Out::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Out::Chunks { left: 0, .. } | Out::Stream { left: 0, .. } => Poll::Ready(None),
            Out::Chunks { source, left } => match source.next_chunk() {
                Ok(Some(chunk)) => {
                    let mut b = Bytes::from_owner(Owned(chunk));
                    if b.len() as u64 > *left {
                        b.truncate(*left as usize);
                    }
                    if b.is_empty() {
                        return Poll::Ready(Some(Err(short_body())));
                    }
                    *left -= b.len() as u64;
                    frame(b)
                }
                Ok(None) => Poll::Ready(Some(Err(short_body()))),
                Err(e) => Poll::Ready(Some(Err(e))),
            },
            Out::Stream { reader, left, task } => {
                if task.is_none() {
                    let Some(mut r) = reader.take() else {
                        return Poll::Ready(Some(Err(short_body())));
                    };
                    let want = (*left).min(STREAM_PIECE as u64) as usize;
                    *task = Some(tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; want];
                        let got = read_some(&mut *r, &mut buf).map(|n| {
                            buf.truncate(n);
                            buf
                        });
                        (r, got)
                    }));
                }
                let done = match task.as_mut().map(|t| Pin::new(t).poll(cx)) {
                    Some(Poll::Ready(done)) => done,
                    _ => return Poll::Pending,
                };
                *task = None;
                match done {
                    Ok((r, Ok(buf))) if !buf.is_empty() => {
                        *reader = Some(r);
                        *left -= buf.len() as u64;
                        frame(Bytes::from(buf))
                    }
                    Ok((_, Ok(_))) => Poll::Ready(Some(Err(short_body()))),
                    Ok((_, Err(e))) => Poll::Ready(Some(Err(e))),
                    Err(e) => Poll::Ready(Some(Err(io::Error::other(e)))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Out::Empty | Out::Full(None) => true,
            Out::Full(Some(_)) => false,
            Out::Chunks { left, .. } | Out::Stream { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(match self {
            Out::Empty | Out::Full(None) => 0,
            Out::Full(Some(b)) => b.len() as u64,
            Out::Chunks { left, .. } | Out::Stream { left, .. } => *left,
        })
    }
}

/// Reads until `buf` is full or the reader ends.
fn read_some(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An accepted socket that ends a write making no progress for `timeout` (a peer that stopped
/// reading), and records its recent input (see [`record_tail`]).
struct Guarded {
    stream: TcpStream,
    timeout: Duration,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    tail: Arc<Mutex<Vec<u8>>>,
    tail_keep: usize,
    stats: Arc<super::EngineStats>,
}

impl Guarded {
    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stall = None;
            return r;
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let sleep = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err({
                self.stats.write_stalls.fetch_add(1, Ordering::Relaxed); // metrics
                io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")
            })),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            record_tail(&this.tail, &buf.filled()[before..], this.tail_keep);
        }
        r
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.progress(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_flush(cx);
        this.progress(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.progress(cx, r)
    }
}

/// Raises the soft descriptor limit to the hard one (best effort); returns the soft limit.
fn raise_nofile_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    if r.rlim_cur < r.rlim_max {
        let want = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            r.rlim_cur = r.rlim_max;
        }
    }
    // rlim_t is u64 on 64-bit targets but not everywhere.
    #[allow(clippy::unnecessary_cast)]
    let soft = r.rlim_cur as u64;
    soft
}
