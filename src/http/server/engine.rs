//! The HTTP/1.1 engine on hyper 1 + tokio: with `body.rs`, the only code that names hyper,
//! hyper-util, http-body-util, bytes, tokio and socket2.
//!
//! One multi-thread runtime (a worker per core by default). Each accepted connection is a
//! task; a slow or idle peer costs its buffers, never a thread. Limits: a connection cap (a
//! semaphore: beyond it connections wait in the listen queue), hyper's head timeout (slow
//! heads and idle keep-alive), head size and header count (431), a no-progress timeout on
//! request bodies (`body.rs`) and on writes ([`Guarded`]), a body size cap, `SO_SNDBUF` capped on
//! accepted sockets. Accept errors (EMFILE and friends) back off and go on.

use super::body::{Out, receive, respond};
use super::{Handler, Reply, Request, ServerConfig};
use hyper::Method;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read};
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

/// How long in-flight requests may take to finish after a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
    let body = match receive(
        &shared.config,
        &shared.spooled,
        incoming,
        head.body_len,
        limit,
    )
    .await
    {
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
