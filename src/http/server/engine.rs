//! The HTTP engine on hyper 1 + tokio: with `body.rs`, `tls.rs` and `secure.rs` (TLS
//! connections, HTTP/2) the only files that name hyper, hyper-util, http-body-util, bytes, tokio
//! and socket2.
//!
//! One single-threaded runtime per network thread (one per core by default), fed accepted
//! connections by the thread that calls [`Server::run`]; one shared blocking pool. Each
//! connection is a task on one network thread; a slow or idle peer costs its buffers, never a
//! thread. Limits: a connection cap (a
//! semaphore: beyond it connections wait in the listen queue), hyper's head timeout (slow
//! heads and idle keep-alive), head size and header count (431), a no-progress timeout on
//! request bodies (`body.rs`) and on writes ([`Guarded`]), a body size cap, `SO_SNDBUF` capped on
//! accepted sockets. Accept errors (EMFILE and friends) back off and go on.

use super::body::{Out, receive, respond};
use super::{Handler, Reply, Request, ServerConfig, Tls};
use hyper::Method;
use hyper::body::Incoming;
use hyper::header;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// How long in-flight requests may take to finish after a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A bound, not yet running server.
pub struct Server {
    /// One single-threaded runtime per network thread ([`ServerConfig::threads`]).
    cores: Vec<tokio::runtime::Runtime>,
    /// The blocking pool (API handlers, body spooling, streamed replies), shared by the cores;
    /// the thread calling [`Server::run`] drives it while waiting for the shutdown.
    pool: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    /// The plain listener of [`ServerConfig::plain_listen`].
    plain: Option<(std::net::TcpListener, SocketAddr)>,
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
    /// Binds the listener and builds the runtimes (their threads start in [`Server::run`]).
    ///
    /// Also raises the soft `RLIMIT_NOFILE` to the hard limit (best effort) and lowers the
    /// connection cap to what the descriptor limit leaves after a reserve for the store.
    pub fn bind(config: ServerConfig) -> io::Result<Server> {
        let fd_limit = raise_nofile_limit();
        let listener = listen(config.listen)?;
        let addr = listener.local_addr()?;
        let plain = match config.plain_listen {
            Some(a) => {
                let l = listen(a).map_err(|e| io::Error::new(e.kind(), format!("{a}: {e}")))?;
                let addr = l.local_addr()?;
                Some((l, addr))
            }
            None => None,
        };
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let cores = (0..threads)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
            })
            .collect::<io::Result<Vec<_>>>()?;
        let pool = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(config.blocking_threads.max(1))
            .thread_name("assetd-blocking")
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
            cores,
            pool,
            listener,
            addr,
            plain,
            config,
            max_connections,
            stop: Arc::new(watch::Sender::new(false)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the plain listener ([`ServerConfig::plain_listen`]), when there is one.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().map(|p| p.1)
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            stop: self.stop.clone(),
        }
    }

    /// Serves requests with `handler` until shut down; returns once in-flight requests are
    /// done (at most 10 s after the shutdown; connections still open then are closed).
    pub fn run(self, handler: Arc<dyn Handler>) -> io::Result<()> {
        let second = handler.clone();
        self.run_pair(handler, second)
    }

    /// [`Server::run`] with `plain` answering on the plain listener
    /// ([`ServerConfig::plain_listen`]); the two share the connection cap.
    ///
    /// Each network thread runs its own single-threaded runtime. The thread calling this
    /// accepts, and hands each connection to the network thread serving the fewest: a
    /// connection then lives on one thread, so a request never wakes another (with one
    /// multi-thread runtime, waking workers and stealing tasks cost 15–25% of a small
    /// request's CPU, see `scripts/bench`).
    pub fn run_pair(self, handler: Arc<dyn Handler>, plain: Arc<dyn Handler>) -> io::Result<()> {
        let Server {
            cores,
            pool,
            listener,
            plain: plain_listener,
            config,
            max_connections,
            stop,
            ..
        } = self;
        let tls = config.tls.clone();
        let mut plain_config = config.clone();
        plain_config.tls = None;
        let shared = Arc::new(Shared {
            handler,
            config,
            tls,
            spooled: AtomicU64::new(0),
            pool: pool.handle().clone(),
        });
        let plain_shared = Arc::new(Shared {
            handler: plain,
            config: plain_config,
            tls: None,
            spooled: AtomicU64::new(0),
            pool: pool.handle().clone(),
        });
        // Set once no request is in flight (or the grace period is over): the cores then stop.
        let done = Arc::new(watch::Sender::new(false));
        let mut mail = Vec::with_capacity(cores.len());
        let mut threads = Vec::with_capacity(cores.len());
        let open: Arc<[AtomicUsize]> = cores.iter().map(|_| AtomicUsize::new(0)).collect();
        for (i, core) in cores.into_iter().enumerate() {
            let (tx, mut rx) = mpsc::unbounded_channel::<Handoff>();
            mail.push(tx);
            let (open, mut done) = (open.clone(), done.subscribe());
            let thread = std::thread::Builder::new()
                .name(format!("assetd-http-{i}"))
                .spawn(move || {
                    core.block_on(async move {
                        loop {
                            let h = tokio::select! {
                                h = rx.recv() => h,
                                _ = done.wait_for(|d| *d) => None,
                            };
                            let Some(h) = h else { break };
                            let open = open.clone();
                            tokio::spawn(async move {
                                if let Ok(stream) = TcpStream::from_std(h.stream) {
                                    connection(stream, h.remote, h.shared, h.stop, h.permit).await;
                                }
                                open[i].fetch_sub(1, Ordering::Relaxed);
                            });
                        }
                        // Connections still open when the server is done are closed here.
                    });
                    core.shutdown_timeout(Duration::from_secs(1));
                })?;
            threads.push(thread);
        }
        let cores = Arc::new(Cores { mail, open });
        let result = pool.block_on(async {
            let permits = Arc::new(Semaphore::new(max_connections));
            let listener = TcpListener::from_std(listener)?;
            let main = accept_loop(
                listener,
                shared,
                permits.clone(),
                stop.subscribe(),
                cores.clone(),
            );
            match plain_listener {
                Some((l, _)) => {
                    let l = TcpListener::from_std(l)?;
                    let second =
                        accept_loop(l, plain_shared, permits.clone(), stop.subscribe(), cores);
                    tokio::join!(main, second);
                }
                None => main.await,
            }
            // Every connection holds a permit until it ends: having them all back means no
            // request is in flight.
            let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all)).await;
            Ok(())
        });
        done.send_replace(true);
        for t in threads {
            let _ = t.join();
        }
        pool.shutdown_timeout(Duration::from_secs(1));
        result
    }
}

/// An accepted connection on its way to the network thread that will serve it.
struct Handoff {
    stream: std::net::TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
}

/// The network threads: where to hand a connection, and how many each serves now.
struct Cores {
    mail: Vec<mpsc::UnboundedSender<Handoff>>,
    open: Arc<[AtomicUsize]>,
}

impl Cores {
    /// Hands `h` to the thread serving the fewest connections.
    fn hand(&self, h: Handoff) {
        let i = (0..self.open.len())
            .min_by_key(|&i| self.open[i].load(Ordering::Relaxed))
            .unwrap_or(0);
        self.open[i].fetch_add(1, Ordering::Relaxed);
        if self.mail[i].send(h).is_err() {
            self.open[i].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What every connection task of one listener shares.
pub(super) struct Shared {
    pub(super) handler: Arc<dyn Handler>,
    pub(super) config: ServerConfig,
    /// The listener speaks TLS with this.
    tls: Option<Tls>,
    /// Spool files made so far (for unique names).
    spooled: AtomicU64,
    /// The blocking pool.
    pub(super) pool: tokio::runtime::Handle,
}

/// A listening socket (`SO_REUSEADDR`, non-blocking).
fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    cores: Arc<Cores>,
) {
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
                // Off this thread's poller, onto the serving thread's (two epoll_ctl calls).
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                cores.hand(Handoff {
                    stream,
                    remote,
                    shared: shared.clone(),
                    stop: stop.clone(),
                    permit,
                });
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
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    if shared.config.send_buffer > 0 {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(shared.config.send_buffer);
    }
    let remote = canonical(remote);
    if let Some(tls) = shared.tls.clone() {
        super::secure::connection(stream, remote, shared, stop, tls).await;
        return;
    }
    serve_http1(stream, remote, shared, stop, false).await;
}

/// Serves HTTP/1.1 on `stream` (a TCP socket, or a TLS stream when `tls`).
pub(super) async fn serve_http1<S>(
    stream: S,
    remote: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    tls: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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
        tail: Some(tail.clone()),
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
        async move { Ok::<_, Infallible>(answer(&shared, req, remote, Some(&tail), tls).await) }
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

/// The head of a request as hyper parsed it, before a body is attached; requests borrow it.
struct Head {
    parts: hyper::http::request::Parts,
    /// The target when the URI has no path (`OPTIONS *`, an authority-form target).
    odd_target: Option<String>,
    remote: Option<SocketAddr>,
    tls: bool,
    body_len: Option<u64>,
}

impl super::Headers for Head {
    fn get(&self, name: &str) -> Option<&str> {
        match self.parts.headers.get(name) {
            Some(v) => std::str::from_utf8(v.as_bytes()).ok(),
            // HTTP/2 carries the host in the `:authority` pseudo-header, kept in the URI.
            None if name == "host" => self.parts.uri.authority().map(|a| a.as_str()),
            None => None,
        }
    }
}

impl Head {
    fn new(parts: hyper::http::request::Parts, remote: SocketAddr, tls: bool) -> Head {
        let odd_target = match parts.uri.path_and_query() {
            Some(_) => None,
            None => Some(parts.uri.to_string()),
        };
        let body_len = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        Head {
            parts,
            odd_target,
            remote: Some(remote),
            tls,
            body_len,
        }
    }

    fn target(&self) -> &str {
        match (&self.odd_target, self.parts.uri.path_and_query()) {
            (Some(t), _) => t,
            (None, Some(p)) => p.as_str(),
            (None, None) => "",
        }
    }

    fn request<'a>(&'a self, body: &'a mut dyn Read) -> Request<'a> {
        Request {
            method: self.parts.method.as_str(),
            target: self.target(),
            headers: self,
            remote: self.remote,
            tls: self.tls,
            body_len: self.body_len,
            body,
        }
    }
}

/// Answers one request: framing checks, then the quick lane (inline) or the blocking lane
/// (whole body received first, handler on the blocking pool). `tail` is the connection's
/// recent input for HTTP/1.1 (see [`record_tail`]), `None` for HTTP/2.
pub(super) async fn answer(
    shared: &Shared,
    req: hyper::Request<Incoming>,
    remote: SocketAddr,
    tail: Option<&Mutex<Vec<u8>>>,
    tls: bool,
) -> hyper::Response<Out> {
    let (parts, incoming) = req.into_parts();
    let is_head = parts.method == Method::HEAD;
    let head = Head::new(parts, remote, tls);
    let handler = &shared.handler;
    if let Some((status, message)) = host_error(&head).or_else(|| framing_error(tail, &head)) {
        let mut empty = io::empty();
        let req = head.request(&mut empty);
        let mut reply = handler.refuse(&req, status, message);
        reply.headers.push(("connection".into(), "close".into()));
        return respond(reply, is_head, &shared.pool);
    }
    let limit = {
        let mut empty = io::empty();
        let mut req = head.request(&mut empty);
        if handler.is_quick(&req) {
            let reply = catch_unwind(AssertUnwindSafe(|| handler.handle(&mut req)))
                .unwrap_or_else(|_| Reply::plain(500, "Internal Server Error\n"));
            return respond(reply, is_head, &shared.pool);
        }
        if let Some(mut reply) = handler.admit(&req) {
            if !hyper::body::Body::is_end_stream(&incoming) {
                reply.headers.push(("connection".into(), "close".into()));
            }
            return respond(reply, is_head, &shared.pool);
        }
        handler.body_limit(&req).min(shared.config.max_body_bytes)
    };
    let body = match receive(
        &shared.config,
        &shared.pool,
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
            return respond(reply, is_head, &shared.pool);
        }
    };
    let handler = handler.clone();
    let answered = shared
        .pool
        .spawn_blocking(move || {
            let mut body = body;
            let mut req = head.request(&mut body);
            catch_unwind(AssertUnwindSafe(|| handler.handle(&mut req)))
        })
        .await;
    let reply = match answered {
        Ok(Ok(reply)) => reply,
        _ => Reply::plain(500, "Internal Server Error\n"),
    };
    respond(reply, is_head, &shared.pool)
}

/// SECURITY: which host a request is for must be unambiguous (RFC 9112 §3.2, RFC 9113
/// §8.3.1), since routing, the signed URL and any proxy in front must all read the same one:
/// an HTTP/1.1 request needs exactly one `Host` (400 without, or with two), and an HTTP/2
/// `host` header must name what `:authority` names.
fn host_error(head: &Head) -> Option<(u16, &'static str)> {
    let mut hosts = head.parts.headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Some((400, "Bad Request: more than one Host header"));
    }
    match head.parts.version {
        hyper::Version::HTTP_11 if first.is_none() => {
            Some((400, "Bad Request: an HTTP/1.1 request needs a Host header"))
        }
        hyper::Version::HTTP_2 => match (first, head.parts.uri.authority()) {
            (Some(h), Some(a)) if !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()) => {
                Some((400, "Bad Request: the host header differs from :authority"))
            }
            _ => None,
        },
        _ => None,
    }
}

/// SECURITY: request framing the engine refuses even where hyper would accept it: any
/// `Transfer-Encoding` but a single `chunked` (501), and `Transfer-Encoding` together with
/// `Content-Length` (400; hyper drops the length and closes after the reply, but such a
/// request is a smuggling attempt and no handler should see it). Both close the connection.
/// Control characters in header names and values, bad chunk sizes and conflicting lengths
/// are refused by hyper's parser (400) before this.
fn framing_error(tail: Option<&Mutex<Vec<u8>>>, head: &Head) -> Option<(u16, &'static str)> {
    let mut te = head.parts.headers.get_all(header::TRANSFER_ENCODING).iter();
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
    // HTTP/2 has no Transfer-Encoding (h2 refuses it as malformed before this).
    let tail = tail?.lock().unwrap_or_else(|p| p.into_inner());
    if tail_has_content_length(&tail, head.parts.method.as_str(), head.target()) {
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

/// Whether a head in `tail` for this request (`method`, and `target` as hyper gives it: path
/// and query) has a `Content-Length` header. A request line matches when its target means
/// that path and query: as sent (origin form), in absolute form (`http://host/path`), or with
/// a fragment, which hyper drops (the black-box test slipped TE+CL past an exact match).
pub(super) fn tail_has_content_length(tail: &[u8], method: &str, target: &str) -> bool {
    let mut at = 0;
    while at < tail.len() {
        let rest = &tail[at..];
        let line_end = find(rest, b"\n").unwrap_or(rest.len());
        let line = rest[..line_end]
            .strip_suffix(b"\r")
            .unwrap_or(&rest[..line_end]);
        if request_line_means(line, method, target) {
            let end = find(rest, b"\r\n\r\n")
                .or_else(|| find(rest, b"\n\n"))
                .unwrap_or(rest.len());
            let has_cl = rest[..end]
                .split(|&b| b == b'\n')
                .skip(1)
                .any(|l| l.len() >= 15 && l[..15].eq_ignore_ascii_case(b"content-length:"));
            if has_cl {
                return true;
            }
        }
        at += line_end + 1;
    }
    false
}

/// Whether `line` is `METHOD TARGET HTTP/1.x` for this method and a target meaning `target`.
fn request_line_means(line: &[u8], method: &str, target: &str) -> bool {
    let Some(rest) = line.strip_prefix(method.as_bytes()) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(b" ") else {
        return false;
    };
    let Some(sent) = rest
        .strip_suffix(b" HTTP/1.1")
        .or_else(|| rest.strip_suffix(b" HTTP/1.0"))
    else {
        return false;
    };
    let sent = &sent[..find(sent, b"#").unwrap_or(sent.len())];
    let lower = sent.to_ascii_lowercase();
    let sent = match [&b"http://"[..], b"https://"]
        .iter()
        .find(|p| lower.starts_with(p))
    {
        Some(p) => {
            let after = &sent[p.len()..];
            match after.iter().position(|&b| b == b'/' || b == b'?') {
                Some(i) => &after[i..],
                None => &b"/"[..],
            }
        }
        None => sent,
    };
    sent == target.as_bytes()
        || (sent.first() == Some(&b'?') && target.as_bytes().get(1..) == Some(sent))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An accepted socket that ends a write making no progress for `timeout` (a peer that stopped
/// reading), and records its recent input (see [`record_tail`]).
pub(super) struct Guarded<S> {
    pub(super) stream: S,
    pub(super) timeout: Duration,
    pub(super) stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Recent input, kept for HTTP/1.1 only.
    pub(super) tail: Option<Arc<Mutex<Vec<u8>>>>,
    pub(super) tail_keep: usize,
    pub(super) stats: Arc<super::EngineStats>,
}

impl<S> Guarded<S> {
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

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Some(tail) = &this.tail
            && matches!(r, Poll::Ready(Ok(())))
            && buf.filled().len() > before
        {
            record_tail(tail, &buf.filled()[before..], this.tail_keep);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
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
