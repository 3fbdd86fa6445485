//! The HTTP engine: the only module that names tiny_http.
//!
//! tiny_http 0.12 parses requests and owns the connection threads; this file contains its
//! measured defects (see the guide) so that the rest of the crate sees a small, safe interface:
//!
//! 1. Nagle stalls: the listener is made here with `TCP_NODELAY` (Linux copies it to accepted
//!    sockets) and handed to tiny_http.
//! 2. Chunked bodies without `Content-Length`: responses are written here (status line,
//!    headers and a small body in one write); `Content-Length` is always sent. Large streamed
//!    bodies go to a bounded pool of streaming threads, so slow downloads hold no worker.
//! 3. Stranded burst connections (its task pool queues a connection behind busy keep-alive
//!    threads), 4. no timeouts or head limit, 5. an accept thread that dies for good: a
//!    supervisor thread (the *reaper*) looks at the server's own sockets every 50 ms through
//!    `/proc/self/fd`, `TCP_INFO` and the socket queues, and acts: it makes the pool start a
//!    thread for a stranded connection (by connecting to the listener), closes idle
//!    connections, resets slow and oversized ones, and starts a new tiny_http server on the
//!    same listener when the accept thread is dead. A connection with a request anywhere in
//!    the engine (queued, in a handler, waiting for or in a streaming thread) is never idle:
//!    only a stall ends it (see `Shared::pending` and `Shared::intake`).
//! 6. CVE-2026-66752 / CVE-2026-66753: request framing is checked before a request reaches the
//!    handler (under a lock that also orders pipelined requests, see `admit`), and response
//!    headers are validated before they are written.
//!
//! Found while containing those: requests of one connection are served one at a time (see
//! `Shared::take_turn`), requests declaring an enormous body are never dropped (see
//! `Shared::abandon`), and a connection queues little unsent data (see `NOTSENT_LOWAT`).
//!
//! Linux only: the reaper reads `/proc/self/fd` and Linux `TCP_INFO`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sys::Action;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Threads that run the handler.
    pub workers: usize,
    /// Most open connections; past it the oldest idle ones are closed.
    pub max_connections: usize,
    /// A keep-alive connection idle this long, or a request head not complete after it, is closed.
    pub idle_timeout: Duration,
    /// A read or write that makes no progress for this long ends the connection.
    pub io_timeout: Duration,
    /// Largest request head (request line + headers) accepted.
    pub max_head_bytes: usize,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            workers: 4,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(30),
            max_head_bytes: 16 * 1024,
        }
    }
}

/// One request as the handler sees it.
pub struct Request<'a> {
    /// Upper-case method (`GET`, `HEAD`, …).
    pub method: String,
    /// The raw request target (`/path?query`), as sent.
    pub target: String,
    /// Header names lower-cased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// Declared body length (`Content-Length`), `None` for chunked bodies.
    pub body_len: Option<u64>,
    /// The request body (empty when there is none); reading past its end gives EOF.
    pub body: &'a mut dyn Read,
}

impl Request<'_> {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response body.
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// Exactly `len` bytes read from `reader`.
    Stream {
        reader: Box<dyn Read + Send>,
        len: u64,
    },
}

/// A response. The engine adds `Content-Length` (always), `Connection` when needed, and sends
/// no body for HEAD requests while keeping the body's length. Header values are validated by
/// the engine before they are written.
///
/// Details: `Content-Length`, `Transfer-Encoding`, `Connection` and `Keep-Alive` headers set by
/// the handler are replaced by the engine's, with two exceptions: a HEAD reply with
/// [`Body::Empty`] and a 304 keep a numeric `Content-Length` given by the handler (the length a
/// GET would get). 204 and 304 replies carry no body. A `Date` header is added unless given.
/// A status outside 200..=599 or an invalid header turns the reply into a 500.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// What the engine calls for each request.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &mut Request<'_>) -> Reply;
}

/// Stops a running server: no new connections, in-flight requests finish.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stops accepting (the listening socket refuses new connections from now on) and makes
    /// [`Server::run`] return once in-flight requests are done (at most 10 s).
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }
}

/// A bound, not yet running server.
pub struct Server {
    shared: Arc<Shared>,
    reaper: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Binds the listener (with TCP_NODELAY) and starts accepting.
    ///
    /// Also raises the soft `RLIMIT_NOFILE` to the hard limit (best effort) and starts the
    /// supervisor thread. Connections accepted before [`Server::run`] wait for it.
    pub fn bind(config: ServerConfig) -> io::Result<Server> {
        quiet_library_panics();
        let fd_limit = sys::raise_nofile_limit();
        let listener = make_listener(config.listen)?;
        let addr = listener.local_addr()?;
        let first = start_tiny(&listener)?;
        // Each connection costs tiny_http two descriptors; keep some for the store and us.
        let reserve = (fd_limit / 8).max(16);
        let max_conns = config
            .max_connections
            .min((fd_limit.saturating_sub(reserve) / 2) as usize)
            .max(1);
        let shared = Arc::new(Shared {
            ours: Ours::new(addr),
            connect_addr: connect_addr(addr),
            listener,
            max_conns,
            max_body: sys::safe_body_limit(),
            stop: AtomicBool::new(false),
            signal: Mutex::new(()),
            wake: Condvar::new(),
            primary: Mutex::new(first.clone()),
            pop_lock: Mutex::new(()),
            epoch: AtomicU64::new(0),
            servers: Mutex::new(vec![first]),
            accept_failed: AtomicBool::new(false),
            slots: Mutex::new(Vec::new()),
            busy: AtomicUsize::new(0),
            pending: Mutex::new(HashMap::new()),
            workers_alive: AtomicUsize::new(0),
            turns: Mutex::new(HashMap::new()),
            ready: Mutex::new(VecDeque::new()),
            ready_len: AtomicUsize::new(0),
            condemned: Mutex::new(HashMap::new()),
            condemned_len: AtomicUsize::new(0),
            fd_hints: Mutex::new(HashMap::new()),
            cut_queue: Mutex::new(Vec::new()),
            leaked: Mutex::new(Vec::new()),
            streams: StreamPool::default(),
            torn_down: AtomicBool::new(false),
            config,
        });
        let for_reaper = shared.clone();
        let reaper = thread::Builder::new()
            .name("assetd-reaper".into())
            .spawn(move || Reaper::new(for_reaper).run())?;
        Ok(Server {
            shared,
            reaper: Some(reaper),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.ours.addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves requests with `handler` until shut down; returns once in-flight work is done.
    ///
    /// After a shutdown, requests still in flight get up to 10 s; then queued requests are
    /// answered 503 and every remaining connection is closed.
    pub fn run(mut self, handler: Arc<dyn Handler>) -> io::Result<()> {
        let shared = self.shared.clone();
        let workers = shared.config.workers.max(1);
        for i in 0..workers {
            let (s, h) = (shared.clone(), handler.clone());
            shared.workers_alive.fetch_add(1, Ordering::SeqCst);
            let spawned = thread::Builder::new()
                .name(format!("assetd-http-{i}"))
                .spawn(move || worker(s, h));
            if let Err(e) = spawned {
                shared.workers_alive.fetch_sub(1, Ordering::SeqCst);
                if i == 0 {
                    shared.begin_shutdown();
                    self.teardown();
                    return Err(e);
                }
            }
        }
        {
            let mut g = lock(&shared.signal);
            while !shared.stopping() {
                g = wait(&shared.wake, g, Duration::from_secs(1));
            }
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        {
            let mut g = lock(&shared.signal);
            while (shared.workers_alive.load(Ordering::SeqCst) > 0
                || shared.busy.load(Ordering::SeqCst) > 0)
                && Instant::now() < deadline
            {
                g = wait(&shared.wake, g, TICK);
            }
        }
        self.teardown();
        Ok(())
    }

    /// Stops everything that is still running; idempotent.
    fn teardown(&mut self) {
        let shared = &self.shared;
        shared.begin_shutdown();
        if shared.torn_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut stuck = Vec::new();
        shared.answer_queued(&mut stuck);
        shared.cut_all();
        shared.answer_queued(&mut stuck);
        // Requests waiting for their turn, or queued behind a response still being written:
        // dropping one waits for that response, which may never finish (tiny_http answers a
        // dropped request with a 500 through the same ordered writer). Drop them on a thread
        // of their own.
        let mut waiting: Vec<tiny_http::Request> =
            lock(&shared.ready).drain(..).map(|(rq, ..)| rq).collect();
        for (_, q) in lock(&shared.turns).drain() {
            waiting.extend(q.into_iter().map(|(rq, ..)| rq));
        }
        waiting.append(&mut stuck);
        if !waiting.is_empty() {
            let _ = thread::Builder::new()
                .name("assetd-drop".into())
                .spawn(move || drop(waiting));
        }
        shared.streams.wake_all();
        if let Some(r) = self.reaper.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// How often the reaper looks at the connections.
const TICK: Duration = Duration::from_millis(50);
/// How long in-flight requests may take to finish after a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Bodies up to this size are written together with the head, in one write.
const INLINE_BODY: usize = 64 * 1024;
/// Copy buffer for streamed bodies.
const CHUNK: usize = 64 * 1024;
/// Most bytes of a response a connection queues in the kernel unsent (`TCP_NOTSENT_LOWAT`; the
/// bytes in flight are not limited, so neither is throughput on long paths). Without it the
/// send buffers autotune to 4 MiB of unsent data each, and a client reading many downloads in
/// one loop (wrk, a proxy) starved some of them for seconds: each download has a thread that
/// refills its socket the moment the client reads from it. 10 MiB bodies under
/// `wrk -c32`: p99 1.8-3.1 s without, 0.3-0.6 s with.
const NOTSENT_LOWAT: u32 = 64 * 1024;
/// Streamed bodies up to this size are read into the worker's buffer right after the head and
/// sent with one write; larger ones go to a streaming thread, not a handler worker.
const STREAM_HANDOFF: u64 = 256 * 1024;
/// Most streaming threads; past it the worker streams the body itself.
const MAX_STREAMERS: usize = 64;
/// An idle streaming thread exits after this long.
const STREAMER_IDLE: Duration = Duration::from_secs(10);
/// Unread request body the engine reads and throws away to keep a connection alive.
const DRAIN_MAX: u64 = 64 * 1024;
/// Bytes tiny_http may read past a head (its buffer, a small body) before it is "oversized".
const HEAD_SLACK: u64 = 8 * 1024;
/// The accept queue may stay non-empty this long before the accept thread counts as dead.
const BACKLOG_STUCK: Duration = Duration::from_millis(300);
/// A connection is closed to free a thread or descriptors, or for being one too many, only
/// after this long quiet: no request anywhere in the engine (see `Shared::pending`), nothing
/// unread or unsent, no byte received or acknowledged. Long enough that a request tiny_http
/// has read but not yet put in its queue (the one stage the engine cannot see) has reached the
/// engine before its connection qualifies, and that a client which just connected has sent its
/// first request.
const VICTIM_QUIET: Duration = Duration::from_secs(1);
/// Ticks an accepted connection's data may stay unread before it counts as stranded.
const STRANDED_TICKS: u32 = 2;
/// Most pool threads the reaper asks tiny_http for in one tick.
const MAX_INJECT_PER_TICK: usize = 64;

// ---------------------------------------------------------------------------------------------
// Listener and tiny_http servers

/// The listening socket: `SO_REUSEADDR`, `TCP_NODELAY` and `TCP_NOTSENT_LOWAT` (both
/// inherited by accepted sockets on Linux), backlog 1024.
fn make_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    // Best effort: it only bounds how much unsent data a connection queues.
    let _ = sys::set_notsent_lowat(socket.as_raw_fd(), NOTSENT_LOWAT);
    // SECURITY: never SO_RCVTIMEO on the listener: a timed-out accept() ends tiny_http's
    // accept thread for good.
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Makes panics inside tiny_http's own threads print one short line, at most once a second.
///
/// Out of descriptors, tiny_http's accept thread panics (it unwraps `try_clone` on each
/// accepted socket); the reaper then starts a new one (defect 5). The default hook would print
/// a multi-line "thread panicked" report each time, which reads as a crash to an operator.
/// Panics anywhere else keep the default report. Installed once per process.
fn quiet_library_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_library = info
                .location()
                // Registry sources live in `tiny_http-0.12.0/`, vendored ones in `tiny_http/`.
                .is_some_and(|l| l.file().contains("/tiny_http"));
            if !in_library {
                return default(info);
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if LAST_SECOND.swap(now, Ordering::Relaxed) == now {
                return;
            }
            let payload = info.payload();
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("unknown failure");
            eprintln!("assetd: the HTTP library lost a thread ({what}); the engine recovers");
        }));
    });
}

/// Starts a tiny_http server (accept thread + connection pool) on a clone of `listener`.
fn start_tiny(listener: &TcpListener) -> io::Result<Arc<tiny_http::Server>> {
    let clone = listener.try_clone()?;
    // tiny_http spawns threads with `thread::spawn`, which panics when the system is out of
    // threads: contain it.
    match catch_unwind(AssertUnwindSafe(move || {
        tiny_http::Server::from_listener(clone, None)
    })) {
        Ok(Ok(server)) => Ok(Arc::new(server)),
        Ok(Err(e)) => Err(io::Error::other(e.to_string())),
        Err(_) => Err(io::Error::other("tiny_http could not start its threads")),
    }
}

/// Where the server can reach its own listener.
fn connect_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Recognises the server's own connections by their local address.
#[derive(Clone, Copy)]
struct Ours {
    addr: SocketAddr,
}

impl Ours {
    fn new(addr: SocketAddr) -> Ours {
        Ours { addr }
    }

    fn matches(&self, local: SocketAddr) -> bool {
        local.port() == self.addr.port()
            && (self.addr.ip().is_unspecified() || local.ip() == self.addr.ip())
    }
}

/// Addresses compared and used as keys by ip and port only.
fn norm(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port())
}

// ---------------------------------------------------------------------------------------------
// Shared state

struct Shared {
    config: ServerConfig,
    listener: TcpListener,
    ours: Ours,
    connect_addr: SocketAddr,
    /// `max_connections`, lowered to what the descriptor limit allows.
    max_conns: usize,
    /// Requests declaring a larger body are refused before the handler (see `abandon`).
    max_body: u64,
    stop: AtomicBool,
    /// Paired with `wake`: shutdown, finished work and the reaper's sleep.
    signal: Mutex<()>,
    wake: Condvar,
    /// The tiny_http server whose accept thread is believed alive; workers read its queue.
    primary: Mutex<Arc<tiny_http::Server>>,
    /// Held while taking a request off the queue and deciding whether it is refused (see
    /// [`admit`]), so that a request is only taken after the previous one's verdict.
    pop_lock: Mutex<()>,
    epoch: AtomicU64,
    /// Every tiny_http server started. Never dropped while running: dropping one makes it
    /// connect to the shared listener.
    servers: Mutex<Vec<Arc<tiny_http::Server>>>,
    accept_failed: AtomicBool,
    /// What each worker and streaming thread is doing, for the reaper.
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Requests received and not yet fully answered.
    busy: AtomicUsize,
    /// Requests of each connection in the engine's hands, from the moment they are taken off
    /// tiny_http's queue (see [`admit`]) until their response is written or they are dropped:
    /// waiting for their turn or a worker, in a handler, waiting for or in a streaming thread.
    /// The reaper never closes such a connection as idle (see [`Pending`]).
    pending: Mutex<HashMap<SocketAddr, u32>>,
    workers_alive: AtomicUsize,
    /// Connections with a request in progress, each with its later (pipelined) requests
    /// waiting for their turn (see [`Shared::take_turn`]).
    turns: Mutex<HashMap<SocketAddr, VecDeque<Admitted>>>,
    /// Requests whose turn has come, for the next free worker.
    ready: Mutex<VecDeque<Admitted>>,
    ready_len: AtomicUsize,
    /// Connections being closed: their further requests are dropped unanswered.
    condemned: Mutex<HashMap<SocketAddr, Instant>>,
    condemned_len: AtomicUsize,
    /// Peer → descriptor, from the reaper's last scan.
    fd_hints: Mutex<HashMap<SocketAddr, RawFd>>,
    /// Shutdowns a worker could not do (no descriptor to scan with); the reaper retries.
    cut_queue: Mutex<Vec<(SocketAddr, Action)>>,
    /// Connections whose tiny_http request was leaked (see `abandon`); the reaper closes them.
    leaked: Mutex<Vec<(SocketAddr, Instant)>>,
    streams: StreamPool,
    torn_down: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>, d: Duration) -> MutexGuard<'a, T> {
    match cv.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn notify(&self) {
        let _g = lock(&self.signal);
        self.wake.notify_all();
    }

    /// Stops accepting and wakes everyone; idempotent.
    fn begin_shutdown(&self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // On Linux, shutting down a listening socket closes its accept queue: new connections
        // are refused and the accept threads return (EINVAL).
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Read);
        let primary = lock(&self.primary).clone();
        for _ in 0..self.config.workers.max(1) {
            primary.unblock();
        }
        self.streams.wake_all();
        self.notify();
    }

    /// Starts a new tiny_http server on the listener and makes it the primary one.
    fn restart_accept(self: &Arc<Self>) -> io::Result<()> {
        let server = start_tiny(&self.listener)?;
        lock(&self.servers).push(server.clone());
        let old = std::mem::replace(&mut *lock(&self.primary), server);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.accept_failed.store(false, Ordering::SeqCst);
        // The old server's connections still deliver requests to its queue.
        spawn_old_server_worker(self, old);
        Ok(())
    }

    fn register_slot(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        lock(&self.slots).push(slot.clone());
        slot
    }

    fn unregister_slot(&self, slot: &Arc<Slot>) {
        lock(&self.slots).retain(|s| !Arc::ptr_eq(s, slot));
    }

    fn is_condemned(&self, peer: Option<SocketAddr>) -> bool {
        match peer {
            Some(p) if self.condemned_len.load(Ordering::Relaxed) > 0 => {
                lock(&self.condemned).contains_key(&p)
            }
            _ => false,
        }
    }

    /// Marks a connection as closing: requests tiny_http still parses from it are dropped.
    fn condemn(&self, peer: Option<SocketAddr>) {
        if let Some(p) = peer {
            let mut c = lock(&self.condemned);
            c.insert(p, Instant::now());
            self.condemned_len.store(c.len(), Ordering::Relaxed);
        }
    }

    /// Shuts down the connection to `peer` (both directions or reading only).
    fn cut(&self, peer: Option<SocketAddr>, how: Shutdown) {
        let Some(peer) = peer else { return };
        let action = Action::Shutdown(how);
        if self.cut_now(peer, action, None) {
            return;
        }
        lock(&self.cut_queue).push((peer, action));
    }

    /// Finds the connection's descriptor and shuts it down; false when it cannot look.
    fn cut_now(&self, peer: SocketAddr, action: Action, preamble: Option<&[u8]>) -> bool {
        let hint = lock(&self.fd_hints).get(&peer).copied();
        if let Some(fd) = hint
            && sys::act_checked(fd, peer, self.ours, action, preamble)
        {
            return true;
        }
        match sys::list_fds_fresh() {
            Ok(fds) => {
                for fd in fds {
                    if sys::act_checked(fd, peer, self.ours, action, preamble) {
                        return true;
                    }
                }
                // Not found: already closed.
                true
            }
            Err(_) => false,
        }
    }

    /// Lets a request through if no other request of its connection is in progress; else it
    /// waits (without a worker) until [`Shared::release_turn`] makes it ready.
    ///
    /// SECURITY: tiny_http parses pipelined requests ahead, and a response's writer waits until
    /// the previous response is written. A client pipelining behind a download it never reads
    /// would otherwise park every worker on that wait until the download is cut.
    fn take_turn(&self, item: Admitted) -> Option<Admitted> {
        let peer = match &item.1 {
            Admission::Refuse(p, ..) | Admission::Serve(p, _) => *p,
            Admission::Discard(_) | Admission::Abandon(_) => None,
        };
        let Some(p) = peer else {
            return Some(item);
        };
        let mut turns = lock(&self.turns);
        match turns.get_mut(&p) {
            Some(waiting) => {
                waiting.push_back(item);
                None
            }
            None => {
                turns.insert(p, VecDeque::new());
                Some(item)
            }
        }
    }

    /// Ends the turn of `peer`'s current request: its next request becomes ready.
    fn release_turn(&self, peer: SocketAddr) {
        let next = {
            let mut turns = lock(&self.turns);
            match turns.get_mut(&peer).map(VecDeque::pop_front) {
                Some(Some(next)) => Some(next),
                Some(None) => {
                    turns.remove(&peer);
                    None
                }
                None => None,
            }
        };
        if let Some(next) = next {
            self.push_ready(next);
        }
    }

    /// Queues a request whose turn has come for the next free worker, and wakes a worker
    /// waiting on tiny_http's queue.
    fn push_ready(&self, item: Admitted) {
        lock(&self.ready).push_back(item);
        self.ready_len.fetch_add(1, Ordering::SeqCst);
        lock(&self.primary).clone().unblock();
    }

    /// Takes the requests waiting in the primary tiny_http server's queue into the engine's own
    /// queues, so that they count as [`Shared::pending`]: with every worker busy (handlers, or
    /// bodies streamed by the workers themselves), a request could otherwise wait there unseen
    /// for as long as the slowest response takes, and its connection look idle.
    ///
    /// Does nothing when a worker holds the pop lock: that worker waits on the queue and takes
    /// (and registers) whatever arrives at once.
    fn intake(self: &Arc<Self>) {
        let _pop = match self.pop_lock.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if self.stopping() {
            return;
        }
        let server = lock(&self.primary).clone();
        // `try_recv` also answers `None` for a stale wake-up marker (see `push_ready`) that
        // may sit in front of requests: look a few times.
        let mut misses = 0;
        while misses < 8 {
            match server.try_recv() {
                Ok(Some(rq)) => {
                    if let Some(item) = self.take_turn(admit(self, rq)) {
                        // Workers waiting for the pop lock look at the ready queue first.
                        lock(&self.ready).push_back(item);
                        self.ready_len.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok(None) => misses += 1,
                Err(_) => {
                    self.accept_failed.store(true, Ordering::SeqCst);
                    misses += 1;
                }
            }
        }
    }

    fn take_ready(&self) -> Option<Admitted> {
        if self.ready_len.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let item = lock(&self.ready).pop_front();
        if item.is_some() {
            self.ready_len.fetch_sub(1, Ordering::SeqCst);
        }
        item
    }

    /// Drops a request from a condemned connection without answering it.
    fn discard(&self, rq: tiny_http::Request, peer: Option<SocketAddr>) {
        let declared = rq.body_length().unwrap_or(0) as u64;
        if declared > self.max_body {
            self.abandon(rq, peer);
            return;
        }
        if declared > 1024 {
            // tiny_http reads an unread body to its end when the request drops: end it now.
            self.cut(peer, Shutdown::Read);
        }
        drop(rq.into_writer());
    }

    /// Gets rid of a request declaring an enormous body without ever dropping it.
    ///
    /// SECURITY: dropping a tiny_http request whose body was not read allocates the unread
    /// length at once (`vec![0; remaining]` in its EqualReader), which aborts the process when
    /// the declared length exceeds memory. Such a request is answered 413 directly on the
    /// socket, the connection is shut down and the request is leaked; the reaper later closes
    /// the leaked descriptors (the connection's tiny_http thread stays parked, a few KiB).
    fn abandon(&self, rq: tiny_http::Request, peer: Option<SocketAddr>) {
        self.condemn(peer);
        if let Some(p) = peer {
            let msg: &[u8] =
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            let action = Action::Shutdown(Shutdown::Both);
            // Never interleave with a response of the same connection still being written.
            let preamble = (!lock(&self.turns).contains_key(&p)).then_some(msg);
            if !self.cut_now(p, action, preamble) {
                lock(&self.cut_queue).push((p, action));
            }
            lock(&self.leaked).push((p, Instant::now()));
        }
        std::mem::forget(rq);
    }

    /// Answers requests still queued in tiny_http with 503 and `Connection: close`; those
    /// behind a response still being written go to `stuck` (writing would wait for it).
    fn answer_queued(&self, stuck: &mut Vec<tiny_http::Request>) {
        let servers = lock(&self.servers).clone();
        for server in servers {
            while let Ok(Some(rq)) = server.try_recv() {
                let peer = rq.remote_addr().copied().map(norm);
                if rq.body_length().unwrap_or(0) as u64 > self.max_body {
                    self.abandon(rq, peer);
                    continue;
                }
                self.condemn(peer);
                if peer.is_some_and(|p| lock(&self.turns).contains_key(&p)) {
                    stuck.push(rq);
                    continue;
                }
                self.cut(peer, Shutdown::Read);
                let mut out = rq.into_writer();
                let _ = out.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                let _ = out.flush();
                self.cut(peer, Shutdown::Both);
            }
        }
    }

    /// Shuts down every connection of this server.
    fn cut_all(&self) {
        if let Ok(fds) = sys::list_fds_fresh() {
            for fd in fds {
                if let (Some(local), Some(peer)) =
                    (sys::sock_addr(fd, false), sys::sock_addr(fd, true))
                    && self.ours.matches(local)
                {
                    sys::act_checked(
                        fd,
                        norm(peer),
                        self.ours,
                        Action::Shutdown(Shutdown::Both),
                        None,
                    );
                }
            }
        }
    }
}

/// Counts a request as in flight, and holds its connection's turn, until dropped (after the
/// response's writer, possibly by a streaming thread).
struct Busy {
    shared: Arc<Shared>,
    turn: Option<SocketAddr>,
    /// Released after the turn (field drop order: after `Drop::drop`).
    _pending: Pending,
}

impl Busy {
    fn new(shared: &Arc<Shared>, turn: Option<SocketAddr>, pending: Pending) -> Busy {
        shared.busy.fetch_add(1, Ordering::SeqCst);
        Busy {
            shared: shared.clone(),
            turn,
            _pending: pending,
        }
    }
}

/// Registers one request of a connection in [`Shared::pending`] until dropped.
///
/// Made when the request is taken off tiny_http's queue, then carried with it through the turn
/// and ready queues, the worker, the stream pool's queue and the streaming thread (inside
/// [`Busy`]), so that no stage of the pipeline is invisible to the reaper.
struct Pending {
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
}

impl Pending {
    fn new(shared: &Arc<Shared>, peer: Option<SocketAddr>) -> Pending {
        if let Some(p) = peer {
            *lock(&shared.pending).entry(p).or_insert(0) += 1;
        }
        Pending {
            shared: shared.clone(),
            peer,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(p) = self.peer {
            let mut pending = lock(&self.shared.pending);
            if let Some(n) = pending.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    pending.remove(&p);
                }
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(peer) = self.turn {
            self.shared.release_turn(peer);
        }
        if self.shared.busy.fetch_sub(1, Ordering::SeqCst) == 1 && self.shared.stopping() {
            self.shared.notify();
        }
    }
}

/// What one worker or streaming thread is doing, for the reaper.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default, Clone, Copy)]
struct SlotState {
    /// The connection of the request in flight.
    peer: Option<SocketAddr>,
    /// Set while a request-body read call is blocked.
    reading_since: Option<Instant>,
}

impl Slot {
    fn enter(&self, peer: Option<SocketAddr>) -> SlotGuard<'_> {
        *lock(&self.state) = SlotState {
            peer,
            reading_since: None,
        };
        SlotGuard(self)
    }

    fn reading(&self, since: Option<Instant>) {
        lock(&self.state).reading_since = since;
    }

    fn snapshot(&self) -> SlotState {
        *lock(&self.state)
    }
}

struct SlotGuard<'a>(&'a Slot);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.0.state) = SlotState::default();
    }
}

// ---------------------------------------------------------------------------------------------
// Workers

struct WorkerCtx {
    slot: Arc<Slot>,
    buf: Vec<u8>,
    chunk: Vec<u8>,
    date: DateCache,
}

impl WorkerCtx {
    fn new(shared: &Shared) -> WorkerCtx {
        WorkerCtx {
            slot: shared.register_slot(),
            buf: Vec::with_capacity(INLINE_BODY + 1024),
            chunk: Vec::new(),
            date: DateCache::default(),
        }
    }
}

/// A handler worker: takes requests from the primary tiny_http server until shutdown.
fn worker(shared: Arc<Shared>, handler: Arc<dyn Handler>) {
    let mut ctx = WorkerCtx::new(&shared);
    let mut epoch = u64::MAX;
    let mut server = lock(&shared.primary).clone();
    loop {
        let next = {
            let _pop = lock(&shared.pop_lock);
            if shared.stopping() {
                break;
            }
            let now_epoch = shared.epoch.load(Ordering::SeqCst);
            if now_epoch != epoch {
                epoch = now_epoch;
                server = lock(&shared.primary).clone();
            }
            if let Some(item) = shared.take_ready() {
                Some(item)
            } else {
                match server.recv_timeout(TICK * 2) {
                    Ok(Some(rq)) => shared.take_turn(admit(&shared, rq)),
                    Ok(None) => None,
                    // Only the accept thread reports errors, and it ends after one.
                    Err(_) => {
                        if !shared.stopping() {
                            shared.accept_failed.store(true, Ordering::SeqCst);
                        }
                        None
                    }
                }
            }
        };
        if let Some(item) = next {
            serve_guarded(&shared, &*handler, item, &mut ctx);
        }
    }
    shared.unregister_slot(&ctx.slot);
    shared.workers_alive.fetch_sub(1, Ordering::SeqCst);
    shared.notify();
}

/// Takes the requests of a replaced tiny_http server's remaining connections into the ready
/// queue of the workers, as soon as they arrive (one thread per server, so it needs no pop
/// lock; it never serves, so its queue never holds requests the reaper cannot see). It ends
/// after a silence long enough for the reaper to have closed every connection of that server,
/// so that repeated restarts do not pile up threads.
fn spawn_old_server_worker(shared: &Arc<Shared>, server: Arc<tiny_http::Server>) {
    let shared = shared.clone();
    let silence =
        (shared.config.idle_timeout * 2 + shared.config.io_timeout).max(Duration::from_secs(10));
    let _ = thread::Builder::new()
        .name("assetd-http-old".into())
        .spawn(move || {
            let mut last = Instant::now();
            while !shared.stopping() && last.elapsed() < silence {
                if let Ok(Some(rq)) = server.recv_timeout(TICK * 2) {
                    if let Some(item) = shared.take_turn(admit(&shared, rq)) {
                        shared.push_ready(item);
                    }
                    last = Instant::now();
                }
            }
        });
}

/// [`serve`], never unwinding into the worker loop.
fn serve_guarded(shared: &Arc<Shared>, handler: &dyn Handler, item: Admitted, ctx: &mut WorkerCtx) {
    let _ = catch_unwind(AssertUnwindSafe(|| serve(shared, handler, item, ctx)));
}

/// A request, its verdict and its registration as pending.
type Admitted = (tiny_http::Request, Admission, Pending);

/// The verdict on a request, reached before the next request can be taken off the queue.
enum Admission {
    /// Its connection is being closed: drop it unanswered.
    Discard(Option<SocketAddr>),
    /// Declares an enormous body: see [`Shared::abandon`].
    Abandon(Option<SocketAddr>),
    /// Refused with this status and message; the connection is closed.
    Refuse(Option<SocketAddr>, Head, u16, &'static str),
    Serve(Option<SocketAddr>, Head),
}

/// Decides what happens to a request, condemning its connection when it is refused.
///
/// SECURITY: tiny_http parses the next request of a connection as soon as the previous one
/// has no body left to read (no body, or a small one it buffered), so a smuggled request can
/// sit in the queue right behind the one that gets refused. Workers call this while holding
/// the pop lock, so the follower is only taken once its connection is condemned.
fn admit(shared: &Arc<Shared>, rq: tiny_http::Request) -> Admitted {
    let peer = rq.remote_addr().copied().map(norm);
    let pending = Pending::new(shared, peer);
    if shared.is_condemned(peer) {
        return (rq, Admission::Discard(peer), pending);
    }
    if rq.body_length().unwrap_or(0) as u64 > shared.max_body {
        shared.condemn(peer);
        return (rq, Admission::Abandon(peer), pending);
    }
    let head = inspect(&rq, &shared.config);
    if let Some((status, message)) = head.refuse {
        shared.condemn(peer);
        return (rq, Admission::Refuse(peer, head, status, message), pending);
    }
    (rq, Admission::Serve(peer, head), pending)
}

/// What the engine learned from a request head.
struct Head {
    method: String,
    headers: Vec<(String, String)>,
    is_head: bool,
    /// The client ends the connection after this request (tiny_http stops reading it).
    client_close: bool,
    /// HTTP/1.0 keep-alive: the reply says `Connection: keep-alive`.
    keep_alive_10: bool,
    body: BodyKind,
    expect_continue: bool,
    refuse: Option<(u16, &'static str)>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// `Connection: upgrade`: tiny_http hands over the raw stream; the handler sees no body.
    Raw,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Field values: visible ASCII, non-ASCII (UTF-8) bytes, space and tab; no CR, LF, NUL or
/// other control characters.
fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Reads and checks the head of `rq`.
fn inspect(rq: &tiny_http::Request, config: &ServerConfig) -> Head {
    let version = rq.http_version();
    let (major, minor) = (version.0, version.1);
    let http10 = major == 1 && minor == 0;
    let raw_method = rq.method().as_str();
    let url = rq.url();
    let mut refuse: Option<(u16, &'static str)> = None;
    let mut set = |r: (u16, &'static str)| {
        if refuse.is_none() {
            refuse = Some(r);
        }
    };
    if !(major == 1 && minor <= 1) {
        set((400, "unsupported HTTP version\n"));
    }
    if !is_token(raw_method) {
        set((400, "bad method\n"));
    }
    if url.is_empty() || !url.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        set((400, "bad request target\n"));
    }
    let mut head_len = raw_method.len() + url.len() + 12;
    let mut headers = Vec::with_capacity(rq.headers().len());
    let mut connection: Option<String> = None;
    let mut te: Vec<&str> = Vec::new();
    let mut cl: Vec<&str> = Vec::new();
    let mut expect_continue = false;
    for h in rq.headers() {
        let name = h.field.as_str().as_str();
        let value = h.value.as_str();
        head_len += name.len() + value.len() + 4;
        // SECURITY: names must be tokens and values free of control characters: tiny_http
        // accepts e.g. NUL or `(` that other parsers on the path may read differently.
        if !is_token(name) || !is_field_value(value) {
            set((400, "bad header\n"));
        }
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "connection" if connection.is_none() => connection = Some(value.to_ascii_lowercase()),
            "transfer-encoding" => te.push(value),
            "content-length" => cl.push(value),
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
        headers.push((lower, value.to_owned()));
    }
    // The same rule tiny_http applies to decide whether it reads another request.
    let client_close = match connection.as_deref() {
        Some(v) if v.contains("close") || v.contains("upgrade") => true,
        Some(v) => !v.contains("keep-alive") && http10,
        None => http10,
    };
    let upgrade = connection.as_deref().is_some_and(|v| v.contains("upgrade"));
    let mut body = BodyKind::None;
    if !te.is_empty() {
        // SECURITY (CVE-2026-66752): tiny_http decodes any Transfer-Encoding as chunked. Only
        // a single `chunked` is accepted; TE with Content-Length is a smuggling attempt.
        if !cl.is_empty() {
            set((400, "Transfer-Encoding together with Content-Length\n"));
        } else if te.len() > 1 || !te[0].trim().eq_ignore_ascii_case("chunked") {
            set((501, "unsupported Transfer-Encoding\n"));
        } else if http10 {
            set((400, "Transfer-Encoding in an HTTP/1.0 request\n"));
        }
        body = BodyKind::Chunked;
    } else if !cl.is_empty() {
        // SECURITY: tiny_http treats an unparsable Content-Length (`+5`, `5, 5`, overflow) as
        // no body and would read the body as the next request.
        let parsed: Vec<Option<u64>> = cl
            .iter()
            .map(|v| {
                let ok = !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit());
                if ok { v.parse().ok() } else { None }
            })
            .collect();
        match parsed[0] {
            Some(n) if parsed.iter().all(|p| *p == Some(n)) => {
                body = if n == 0 {
                    BodyKind::None
                } else {
                    BodyKind::Length(n)
                };
            }
            _ => set((400, "bad Content-Length\n")),
        }
    }
    if upgrade {
        body = BodyKind::Raw;
    }
    if head_len > config.max_head_bytes {
        set((431, "request header fields too large\n"));
    }
    let method = raw_method.to_ascii_uppercase();
    Head {
        is_head: method == "HEAD",
        method,
        headers,
        client_close,
        keep_alive_10: http10 && !client_close,
        body,
        expect_continue,
        refuse,
    }
}

/// Handles one admitted request: handler, body disposal, reply.
fn serve(shared: &Arc<Shared>, handler: &dyn Handler, item: Admitted, w: &mut WorkerCtx) {
    // `pending` lives until the request is dropped or, inside `Busy`, fully answered.
    let (mut rq, admission, pending) = item;
    let slot = w.slot.clone();
    let (peer, mut head) = match admission {
        Admission::Discard(peer) => return shared.discard(rq, peer),
        Admission::Abandon(peer) => {
            let _in_flight = slot.enter(peer);
            return shared.abandon(rq, peer);
        }
        Admission::Refuse(peer, head, status, message) => {
            let busy = Busy::new(shared, peer, pending);
            let _in_flight = slot.enter(peer);
            // SECURITY: the body's framing is unknown or untrusted: never read it, close the
            // connection (already condemned, so what tiny_http still parses is dropped).
            shared.cut(peer, Shutdown::Read);
            let ex = Exchange::new(&head, peer, true);
            return send(shared, w, rq, plain(status, message), ex, busy);
        }
        Admission::Serve(peer, head) => {
            // Waited for its turn: an earlier request may have condemned the connection since.
            if shared.is_condemned(peer) {
                shared.discard(rq, peer);
                if let Some(p) = peer {
                    shared.release_turn(p);
                }
                return;
            }
            (peer, head)
        }
    };
    let busy = Busy::new(shared, peer, pending);
    let _in_flight = slot.enter(peer);
    let target = rq.url().to_owned();
    let body_len = match head.body {
        BodyKind::Length(n) => Some(n),
        BodyKind::Chunked => None,
        BodyKind::None | BodyKind::Raw => Some(0),
    };
    let (reply, reusable) = {
        let mut body = BodyReader {
            rq: &mut rq,
            slot: &slot,
            kind: head.body,
            read: 0,
            done: false,
            failed: false,
            touched: false,
        };
        let mut req = Request {
            method: std::mem::take(&mut head.method),
            target,
            headers: std::mem::take(&mut head.headers),
            remote: peer,
            body_len,
            body: &mut body,
        };
        let reply = match catch_unwind(AssertUnwindSafe(|| handler.handle(&mut req))) {
            Ok(reply) => reply,
            Err(_) => plain(500, "internal server error\n"),
        };
        drop(req);
        let reusable = body.finish(head.expect_continue);
        (reply, reusable)
    };
    if !reusable {
        // The rest of the body cannot be skipped cheaply: close after the reply. Shutting the
        // read side first makes tiny_http's own drain (when the request drops) end at once.
        shared.condemn(peer);
        shared.cut(peer, Shutdown::Read);
    }
    let ex = Exchange::new(&head, peer, !reusable);
    send(shared, w, rq, reply, ex, busy);
}

/// The request body as the handler reads it; tracks how much was read.
struct BodyReader<'a> {
    rq: &'a mut tiny_http::Request,
    slot: &'a Slot,
    kind: BodyKind,
    read: u64,
    done: bool,
    failed: bool,
    touched: bool,
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("request body unreadable"));
        }
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let want = match self.kind {
            BodyKind::None | BodyKind::Raw => {
                self.done = true;
                return Ok(0);
            }
            BodyKind::Length(n) if self.read >= n => {
                self.done = true;
                return Ok(0);
            }
            BodyKind::Length(n) => (n - self.read).min(buf.len() as u64) as usize,
            BodyKind::Chunked => buf.len(),
        };
        self.touched = true;
        self.slot.reading(Some(Instant::now()));
        // `as_reader` sends `100 Continue` first when the client asked for it.
        let result = self.rq.as_reader().read(&mut buf[..want]);
        self.slot.reading(None);
        match result {
            Ok(0) => {
                if let BodyKind::Length(_) = self.kind {
                    self.failed = true;
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.done = true;
                Ok(0)
            }
            Ok(k) => {
                self.read += k as u64;
                if matches!(self.kind, BodyKind::Length(n) if self.read >= n) {
                    self.done = true;
                }
                Ok(k)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

impl BodyReader<'_> {
    /// Reads what the handler left of the body, up to [`DRAIN_MAX`]; true when the
    /// connection can carry another request.
    fn finish(&mut self, expect_continue: bool) -> bool {
        if matches!(self.kind, BodyKind::None | BodyKind::Raw) || self.done {
            return !self.failed;
        }
        if self.failed || (expect_continue && !self.touched) {
            // A client waiting for `100 Continue` may or may not send the body now.
            return false;
        }
        if let BodyKind::Length(n) = self.kind
            && n - self.read > DRAIN_MAX
        {
            return false;
        }
        let mut scratch = [0u8; 8192];
        let mut total = 0u64;
        while total <= DRAIN_MAX {
            match self.read(&mut scratch) {
                Ok(0) => return self.done && !self.failed,
                Ok(k) => total += k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        false
    }
}

/// How the reply of one exchange is framed.
#[derive(Clone, Copy)]
struct Exchange {
    peer: Option<SocketAddr>,
    is_head: bool,
    /// Close after the reply (the client asked, or the engine decided).
    close: bool,
    /// The engine decided to close: shut the socket down after the reply.
    engine_close: bool,
    keep_alive_10: bool,
}

impl Exchange {
    fn new(head: &Head, peer: Option<SocketAddr>, engine_close: bool) -> Exchange {
        Exchange {
            peer,
            is_head: head.is_head,
            close: head.client_close || engine_close,
            engine_close,
            keep_alive_10: head.keep_alive_10 && !engine_close,
        }
    }
}

fn plain(status: u16, message: &str) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: Body::Bytes(message.as_bytes().to_vec()),
    }
}

/// Headers the engine owns: framing and connection management.
fn engine_owned(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// SECURITY (CVE-2026-66753): every header the handler gives is checked before anything is
/// written; a reply with a bad one is never written and becomes a 500.
fn validate(reply: Reply) -> Reply {
    let ok = (200..=599).contains(&reply.status)
        && reply
            .headers
            .iter()
            .all(|(n, v)| is_token(n) && is_field_value(v));
    if ok {
        reply
    } else {
        plain(500, "internal server error: invalid response header\n")
    }
}

fn handler_content_length(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| {
            let v = v.trim();
            if v.is_empty() || v.len() > 18 || !v.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                v.parse().ok()
            }
        })
}

/// Writes the reply (head and body) through tiny_http's raw writer.
fn send(
    shared: &Arc<Shared>,
    w: &mut WorkerCtx,
    rq: tiny_http::Request,
    reply: Reply,
    ex: Exchange,
    busy: Busy,
) {
    let mut reply = validate(reply);
    let no_body_status = reply.status == 204 || reply.status == 304;
    let send_body = !ex.is_head && !no_body_status;
    let connection = if ex.close {
        Some("close")
    } else if ex.keep_alive_10 {
        Some("keep-alive")
    } else {
        None
    };
    // Streamed bodies up to STREAM_HANDOFF are read straight after the head into the worker's
    // buffer and sent with one write: one copy of the body in user space. Nothing is written
    // before the whole body was read, so a failing reader still becomes an honest 500.
    if let Body::Stream { reader, len } = &mut reply.body
        && send_body
        && *len <= STREAM_HANDOFF
    {
        let len = *len;
        let buf = &mut w.buf;
        buf.clear();
        write_head(
            buf,
            reply.status,
            &reply.headers,
            Some(len),
            connection,
            &mut w.date,
        );
        let read = reader.take(len).read_to_end(buf);
        if read.is_ok_and(|n| n as u64 == len) {
            // Release the reader (and its read snapshot) before the socket write.
            reply.body = Body::Empty;
            let mut out = rq.into_writer();
            let ok = out.write_all(buf).is_ok() && out.flush().is_ok();
            finish(shared, &ex, ok);
            drop(out);
            drop(busy);
            return;
        }
        reply = plain(500, "internal server error\n");
    }
    let len = match &reply.body {
        Body::Empty => 0,
        Body::Bytes(b) => b.len() as u64,
        Body::Stream { len, .. } => *len,
    };
    let content_length = if no_body_status {
        if reply.status == 304 {
            handler_content_length(&reply.headers)
        } else {
            None
        }
    } else if ex.is_head && matches!(reply.body, Body::Empty) {
        handler_content_length(&reply.headers).or(Some(0))
    } else {
        Some(len)
    };
    let buf = &mut w.buf;
    buf.clear();
    write_head(
        buf,
        reply.status,
        &reply.headers,
        content_length,
        connection,
        &mut w.date,
    );
    let mut out = rq.into_writer();
    let written = match reply.body {
        Body::Bytes(b) if send_body => {
            if b.len() <= INLINE_BODY {
                buf.extend_from_slice(&b);
                out.write_all(buf).is_ok()
            } else {
                out.write_all(buf).is_ok() && out.write_all(&b).is_ok()
            }
        }
        Body::Stream { reader, len } if send_body => {
            let head = std::mem::take(buf);
            let job = StreamJob {
                out,
                reader,
                len,
                head,
                ex,
                busy,
            };
            // Only bodies larger than STREAM_HANDOFF get here (smaller ones went out above):
            // a streaming thread takes it, or this worker when none can.
            let job = match StreamPool::submit(shared, job) {
                None => {
                    w.buf = Vec::with_capacity(INLINE_BODY + 1024);
                    return;
                }
                Some(job) => job,
            };
            if w.chunk.len() < CHUNK {
                w.chunk = vec![0; CHUNK];
            }
            let head = job.run(shared, &mut w.chunk);
            w.buf = head;
            return;
        }
        // HEAD, 204, 304 or no body: the head alone (a stream is dropped unread).
        _ => out.write_all(buf).is_ok(),
    };
    let ok = written && out.flush().is_ok();
    finish(shared, &ex, ok);
    drop(out);
    drop(busy);
}

/// After a response: a connection the engine decided to close, or whose write failed, is
/// condemned and shut down.
fn finish(shared: &Shared, ex: &Exchange, ok: bool) {
    if ex.engine_close || !ok {
        shared.condemn(ex.peer);
        shared.cut(ex.peer, Shutdown::Both);
    }
}

/// Status line, headers (the handler's minus engine-owned ones), `Date`, `Content-Length`,
/// `Connection`, blank line.
fn write_head(
    buf: &mut Vec<u8>,
    status: u16,
    headers: &[(String, String)],
    content_length: Option<u64>,
    connection: Option<&str>,
    date: &mut DateCache,
) {
    buf.extend_from_slice(b"HTTP/1.1 ");
    push_num(buf, status as u64);
    buf.push(b' ');
    buf.extend_from_slice(reason(status).as_bytes());
    buf.extend_from_slice(b"\r\n");
    let mut has_date = false;
    for (n, v) in headers {
        if engine_owned(n) {
            continue;
        }
        has_date |= n.eq_ignore_ascii_case("date");
        buf.extend_from_slice(n.as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(v.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    if !has_date {
        buf.extend_from_slice(b"Date: ");
        buf.extend_from_slice(date.get());
        buf.extend_from_slice(b"\r\n");
    }
    if let Some(cl) = content_length {
        buf.extend_from_slice(b"Content-Length: ");
        push_num(buf, cl);
        buf.extend_from_slice(b"\r\n");
    }
    if let Some(c) = connection {
        buf.extend_from_slice(b"Connection: ");
        buf.extend_from_slice(c.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
}

fn push_num(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

/// `Date` values (IMF-fixdate), formatted once per second.
#[derive(Default)]
struct DateCache {
    secs: u64,
    text: Vec<u8>,
}

impl DateCache {
    fn get(&mut self) -> &[u8] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs || self.text.is_empty() {
            self.secs = secs;
            self.text = http_date(secs).into_bytes();
        }
        &self.text
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the Unix epoch.
fn http_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Streaming

/// A streamed body being written: the head, then exactly `len` bytes from `reader`.
struct StreamJob {
    out: Box<dyn Write + Send>,
    reader: Box<dyn Read + Send>,
    len: u64,
    head: Vec<u8>,
    ex: Exchange,
    busy: Busy,
}

impl StreamJob {
    /// Copies the body in [`CHUNK`]s; a short or failing reader or a failed write ends the
    /// connection (the length was promised). Returns the head buffer for reuse.
    fn run(self, shared: &Shared, chunk: &mut [u8]) -> Vec<u8> {
        let StreamJob {
            mut out,
            mut reader,
            len,
            mut head,
            ex,
            busy,
        } = self;
        let ok = copy_stream(&mut *out, &mut *reader, len, &mut head, chunk).is_ok()
            && out.flush().is_ok();
        finish(shared, &ex, ok);
        drop(out);
        drop(reader);
        drop(busy);
        head
    }
}

fn copy_stream(
    out: &mut dyn Write,
    reader: &mut dyn Read,
    len: u64,
    head: &mut Vec<u8>,
    chunk: &mut [u8],
) -> io::Result<()> {
    // The first chunk goes out with the head.
    let first = len.min(chunk.len() as u64) as usize;
    let start = head.len();
    head.resize(start + first, 0);
    read_full(reader, &mut head[start..])?;
    out.write_all(head)?;
    head.truncate(start);
    let mut left = len - first as u64;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        read_full(reader, &mut chunk[..n])?;
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match reader.read(&mut buf[at..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Up to [`MAX_STREAMERS`] threads that write large bodies, so that slow downloads do not hold
/// the handler workers. Threads are spawned on demand and exit after [`STREAMER_IDLE`].
#[derive(Default)]
struct StreamPool {
    state: Mutex<PoolState>,
    cv: Condvar,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<StreamJob>,
    /// Waiting threads not yet promised a job (waiting threads = idle + queue length).
    idle: usize,
    threads: usize,
}

impl StreamPool {
    /// Hands `job` to a streaming thread; gives it back when none can take it.
    fn submit(shared: &Arc<Shared>, job: StreamJob) -> Option<StreamJob> {
        let pool = &shared.streams;
        let mut st = lock(&pool.state);
        if st.idle > 0 {
            st.idle -= 1;
            st.queue.push_back(job);
            pool.cv.notify_one();
            return None;
        }
        if st.threads >= MAX_STREAMERS {
            return Some(job);
        }
        st.threads += 1;
        drop(st);
        let cell = Arc::new(Mutex::new(Some(job)));
        let (s, c) = (shared.clone(), cell.clone());
        let spawned = thread::Builder::new()
            .name("assetd-stream".into())
            .spawn(move || {
                let first = lock(&c).take();
                streamer(s, first);
            });
        if spawned.is_err() {
            lock(&pool.state).threads -= 1;
            if let Some(job) = lock(&cell).take() {
                return Some(job);
            }
        }
        None
    }

    fn wake_all(&self) {
        let _g = lock(&self.state);
        self.cv.notify_all();
    }
}

fn streamer(shared: Arc<Shared>, first: Option<StreamJob>) {
    let slot = shared.register_slot();
    let mut chunk = vec![0u8; CHUNK];
    let mut next = first;
    while let Some(job) = next.take() {
        {
            let _in_flight = slot.enter(job.ex.peer);
            let _ = catch_unwind(AssertUnwindSafe(|| job.run(&shared, &mut chunk)));
        }
        let pool = &shared.streams;
        let mut st = lock(&pool.state);
        st.idle += 1;
        let deadline = Instant::now() + STREAMER_IDLE;
        loop {
            st = wait(
                &pool.cv,
                st,
                deadline.saturating_duration_since(Instant::now()),
            );
            if let Some(job) = st.queue.pop_front() {
                next = Some(job);
                break;
            }
            if shared.stopping() || Instant::now() >= deadline {
                st.idle -= 1;
                break;
            }
        }
        if next.is_none() {
            st.threads -= 1;
        }
    }
    shared.unregister_slot(&slot);
}

// ---------------------------------------------------------------------------------------------
// The reaper

/// One connection as the reaper saw it this tick.
struct Conn {
    fd: RawFd,
    fds: Vec<RawFd>,
    peer: SocketAddr,
    info: sys::TcpInfo,
    /// Bytes received and not yet read by tiny_http.
    rx: u32,
    /// Bytes written and not yet acknowledged.
    tx: u32,
}

/// What the reaper remembers of a connection between ticks.
struct Track {
    /// Last time a request was in flight or the peer acknowledged response bytes.
    last_active: Instant,
    /// Since when the connection has been seen quiet: no request pending, nothing unread or
    /// unsent, no byte received or acknowledged (see [`VICTIM_QUIET`]).
    quiet_since: Instant,
    acked: u64,
    received: u64,
    /// Bytes tiny_http had read when the connection was last active.
    read_base: u64,
    unread_ticks: u32,
    injected_at: Option<Instant>,
    /// When the reaper shut the connection down.
    cut_at: Option<Instant>,
    round: u64,
}

struct Reaper {
    shared: Arc<Shared>,
    dir: Option<sys::FdDir>,
    fds: Vec<RawFd>,
    dents: Vec<u8>,
    tracks: HashMap<SocketAddr, Track>,
    round: u64,
    backlog_since: Option<Instant>,
    next_restart: Instant,
    backoff: Duration,
    /// A descriptor kept in reserve, released to restart the accept thread when out of them.
    spare: Option<File>,
    /// Time to the next tick: [`TICK`], longer when there are many connections and nothing
    /// urgent, so that the scan costs a few percent of a core at most.
    interval: Duration,
}

/// Why the reaper shuts a connection down.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut {
    Idle,
    Stalled,
    HeadTooLarge,
    TooMany,
    FreeThread,
    FdPressure,
}

impl Reaper {
    fn new(shared: Arc<Shared>) -> Reaper {
        Reaper {
            shared,
            dir: sys::FdDir::open().ok(),
            fds: Vec::new(),
            dents: vec![0; 64 * 1024],
            tracks: HashMap::new(),
            round: 0,
            backlog_since: None,
            next_restart: Instant::now(),
            backoff: TICK,
            spare: File::open("/dev/null").ok(),
            interval: TICK,
        }
    }

    fn run(mut self) {
        loop {
            {
                let g = lock(&self.shared.signal);
                if self.shared.stopping() {
                    break;
                }
                drop(wait(&self.shared.wake, g, self.interval));
            }
            if self.shared.stopping() {
                break;
            }
            let _ = catch_unwind(AssertUnwindSafe(|| self.tick()));
        }
    }

    /// Lists this server's connections: TCP sockets whose local address is the listener's.
    fn scan(&mut self) -> Vec<Conn> {
        if self.dir.is_none() {
            self.dir = sys::FdDir::open().ok();
        }
        let Some(dir) = self.dir.as_mut() else {
            return Vec::new();
        };
        if dir.list(&mut self.fds, &mut self.dents).is_err() {
            return Vec::new();
        }
        let skip = dir.fd();
        let mut conns: Vec<Conn> = Vec::new();
        let mut index: HashMap<SocketAddr, usize> = HashMap::new();
        for &fd in &self.fds {
            if fd == skip {
                continue;
            }
            let Some(local) = sys::sock_addr(fd, false) else {
                continue;
            };
            if !self.shared.ours.matches(local) {
                continue;
            }
            // The listener and its clones have no peer.
            let Some(peer) = sys::sock_addr(fd, true).map(norm) else {
                continue;
            };
            if let Some(&i) = index.get(&peer) {
                conns[i].fds.push(fd);
                continue;
            }
            let Some(info) = sys::tcp_info(fd) else {
                continue;
            };
            index.insert(peer, conns.len());
            conns.push(Conn {
                fd,
                fds: vec![fd],
                peer,
                info,
                rx: sys::unread(fd).unwrap_or(0),
                tx: sys::unsent(fd).unwrap_or(0),
            });
        }
        conns
    }

    fn tick(&mut self) {
        let shared = self.shared.clone();
        let config = &shared.config;
        let now = Instant::now();
        self.round += 1;
        let round = self.round;
        let mut in_flight: HashMap<SocketAddr, Option<Instant>> = HashMap::new();
        for slot in lock(&shared.slots).iter() {
            let s = slot.snapshot();
            if let Some(p) = s.peer {
                in_flight.insert(p, s.reading_since);
            }
        }
        let conns = self.scan();
        // After the scan, so that every request tiny_http had queued by then is counted
        // (one it was still parsing is covered by `VICTIM_QUIET`).
        shared.intake();
        let pending: HashSet<SocketAddr> = lock(&shared.pending).keys().copied().collect();
        let leaked: HashSet<SocketAddr> = lock(&shared.leaked).iter().map(|(p, _)| *p).collect();
        let io_ms = config.io_timeout.as_millis().min(u32::MAX as u128) as u32;
        let mut cuts: Vec<(usize, Cut)> = Vec::new();
        let mut stranded: Vec<usize> = Vec::new();
        // (quiet since, index): connections that may be closed to free a thread or
        // descriptors, or for being too many: quiet for `VICTIM_QUIET` at least.
        let mut idle: Vec<(Instant, usize)> = Vec::new();
        let mut live = 0usize;
        for (i, c) in conns.iter().enumerate() {
            let app_read = c.info.bytes_received.saturating_sub(c.rx as u64);
            let t = self.tracks.entry(c.peer).or_insert_with(|| Track {
                last_active: now,
                quiet_since: now,
                acked: c.info.bytes_acked,
                received: c.info.bytes_received,
                // A connection first seen after a response has had requests: count from now.
                read_base: if c.info.bytes_acked > 0 { app_read } else { 0 },
                unread_ticks: 0,
                injected_at: None,
                cut_at: None,
                round,
            });
            t.round = round;
            let flight = in_flight.get(&c.peer);
            if let Some(cut_at) = t.cut_at {
                // Shut down, yet still open: no tiny_http thread owns it (its own thread would
                // have seen EOF at once), it waits in the pool queue with its descriptors.
                if flight.is_none()
                    && !leaked.contains(&c.peer)
                    && now.duration_since(cut_at) >= TICK * 3
                {
                    stranded.push(i);
                }
                continue;
            }
            live += 1;
            // A request is in flight from the moment a worker (or the intake) takes it off
            // tiny_http's queue until its response is written.
            let busy = flight.is_some() || pending.contains(&c.peer);
            if busy || c.info.bytes_acked != t.acked {
                t.last_active = now;
                t.read_base = app_read;
            }
            if busy
                || c.rx > 0
                || c.tx > 0
                || c.info.bytes_acked != t.acked
                || c.info.bytes_received != t.received
            {
                t.quiet_since = now;
            }
            t.acked = c.info.bytes_acked;
            t.received = c.info.bytes_received;
            // Data waiting that tiny_http never started to read: no thread owns the connection.
            let never_read = c.rx > 0 && c.info.bytes_received <= c.rx as u64;
            t.unread_ticks = if never_read { t.unread_ticks + 1 } else { 0 };
            if t.unread_ticks >= STRANDED_TICKS {
                stranded.push(i);
            }
            let send_stalled = c.tx > 0 && c.info.last_data_sent >= io_ms;
            if busy || c.tx > 0 {
                // In flight (or its response still leaving): only a stall ends it.
                let read_stalled = flight.is_some_and(|reading| {
                    reading.is_some_and(|since| now.duration_since(since) > config.io_timeout)
                });
                if read_stalled || send_stalled {
                    cuts.push((i, Cut::Stalled));
                }
            } else if now.duration_since(t.last_active) > config.idle_timeout {
                cuts.push((i, Cut::Idle));
            } else if app_read.saturating_sub(t.read_base)
                > config.max_head_bytes as u64 + HEAD_SLACK
            {
                cuts.push((i, Cut::HeadTooLarge));
            } else if now.duration_since(t.quiet_since) >= VICTIM_QUIET {
                idle.push((t.quiet_since, i));
            }
        }
        idle.sort_by_key(|&(at, _)| at);
        let mut victims = idle.into_iter().map(|(_, i)| i);
        let mut chosen: HashSet<usize> = cuts.iter().map(|&(i, _)| i).collect();
        let mut take_victim = |why: Cut, cuts: &mut Vec<(usize, Cut)>| {
            for v in victims.by_ref() {
                if chosen.insert(v) {
                    cuts.push((v, why));
                    return true;
                }
            }
            false
        };

        // Stranded connections: make tiny_http's pool start a thread (a connection to ourselves
        // arriving when no pool thread waits spawns one, which then takes the queued
        // connection); if that did not help within a few ticks, free a thread by closing the
        // connection that has been quiet longest, or, with none, ask again.
        let mut injections = MAX_INJECT_PER_TICK;
        for &i in &stranded {
            let Some(t) = self.tracks.get_mut(&conns[i].peer) else {
                continue;
            };
            match t.injected_at {
                None => {
                    // A failed connect means a full accept queue: stop trying this tick.
                    if injections > 0 && !self_connect(shared.connect_addr) {
                        injections = 0;
                    }
                    injections = injections.saturating_sub(1);
                    t.injected_at = Some(now);
                }
                Some(at) if now.duration_since(at) >= TICK * 3 => {
                    // Cut connections are not rescued by closing others: retry the injection.
                    if t.cut_at.is_some() {
                        if now.duration_since(at) >= TICK * 20 {
                            t.injected_at = None;
                        }
                        continue;
                    }
                    // With no idle connection to close, ask for a thread again: on a loaded
                    // machine the last one may not have run yet.
                    if !take_victim(Cut::FreeThread, &mut cuts) && injections > 0 {
                        if !self_connect(shared.connect_addr) {
                            injections = 0;
                        }
                        injections = injections.saturating_sub(1);
                    }
                    t.injected_at = Some(now);
                }
                Some(_) => {}
            }
        }

        // Too many connections: close the longest idle.
        let mut over = live
            .saturating_sub(cuts.len())
            .saturating_sub(shared.max_conns);
        while over > 0 && take_victim(Cut::TooMany, &mut cuts) {
            over -= 1;
        }

        // The accept thread: its queue must drain, and it must not have reported an error.
        let backlog = sys::tcp_info(shared.listener.as_raw_fd())
            .map(|i| i.unacked)
            .unwrap_or(0);
        if backlog > 0 {
            self.backlog_since.get_or_insert(now);
        } else {
            self.backlog_since = None;
        }
        let stuck = self
            .backlog_since
            .is_some_and(|since| now.duration_since(since) >= BACKLOG_STUCK);
        if (stuck || shared.accept_failed.load(Ordering::SeqCst))
            && !shared.stopping()
            && now >= self.next_restart
        {
            drop(self.spare.take());
            let restarted = shared.restart_accept().is_ok();
            self.spare = File::open("/dev/null").ok();
            if restarted {
                self.backlog_since = None;
                self.backoff = TICK;
            } else {
                self.backoff = (self.backoff * 2).min(Duration::from_millis(400));
                // Out of descriptors (most likely): close idle connections to get some back.
                for _ in 0..8 {
                    take_victim(Cut::FdPressure, &mut cuts);
                }
            }
            self.next_restart = now + self.backoff;
        }

        for &(i, why) in &cuts {
            let c = &conns[i];
            // Idle by this tick's look: make sure no request started since (and, for a
            // connection chosen to free resources, that no byte came or went either).
            let recheck = match why {
                Cut::Idle => Some(false),
                Cut::TooMany | Cut::FreeThread | Cut::FdPressure => Some(true),
                Cut::Stalled | Cut::HeadTooLarge => None,
            };
            if recheck.is_some_and(|quiet| !still_idle(&shared, c, quiet)) {
                continue;
            }
            // SECURITY: connections that misbehave are reset (a client that keeps sending
            // would otherwise keep its reader busy); idle ones get an orderly close.
            let action = match why {
                Cut::Stalled | Cut::HeadTooLarge => Action::Abort,
                _ => Action::Shutdown(Shutdown::Both),
            };
            if sys::act_checked(c.fd, c.peer, shared.ours, action, None)
                && let Some(t) = self.tracks.get_mut(&c.peer)
            {
                t.cut_at = Some(now);
                t.injected_at = None;
            }
        }

        self.tracks.retain(|_, t| t.round == round);
        let urgent = backlog > 0
            || shared.accept_failed.load(Ordering::SeqCst)
            || !lock(&shared.cut_queue).is_empty()
            || self
                .tracks
                .values()
                .any(|t| t.unread_ticks > 0 && t.cut_at.is_none());
        self.interval = if urgent {
            TICK
        } else {
            TICK * (conns.len() / 200).clamp(1, 5) as u32
        };
        let present: HashMap<SocketAddr, &Conn> = conns.iter().map(|c| (c.peer, c)).collect();
        *lock(&shared.fd_hints) = conns.iter().map(|c| (c.peer, c.fd)).collect();

        let queued = std::mem::take(&mut *lock(&shared.cut_queue));
        for (peer, action) in queued {
            if let Some(c) = present.get(&peer) {
                sys::act_checked(c.fd, peer, shared.ours, action, None);
            }
        }

        {
            let mut condemned = lock(&shared.condemned);
            condemned.retain(|peer, at| {
                let age = now.duration_since(*at);
                age < Duration::from_secs(120)
                    && (present.contains_key(peer) || age < Duration::from_secs(1))
            });
            shared
                .condemned_len
                .store(condemned.len(), Ordering::Relaxed);
        }

        // Leaked requests (see `Shared::abandon`): nothing will ever use or close their
        // descriptors, so close them once no request of that connection is in flight.
        lock(&shared.leaked).retain(|(peer, at)| {
            if in_flight.contains_key(peer) || now.duration_since(*at) < TICK * 2 {
                return true;
            }
            if let Some(c) = present.get(peer) {
                for &fd in &c.fds {
                    sys::close_checked(fd, *peer, shared.ours);
                }
            }
            false
        });
    }
}

/// True when `c` still shows what made it idle at the scan: no request pending, nothing unsent,
/// no response byte acknowledged since; with `quiet`, also nothing unread and no byte received.
fn still_idle(shared: &Shared, c: &Conn, quiet: bool) -> bool {
    let Some(info) = sys::tcp_info(c.fd) else {
        return false;
    };
    !lock(&shared.pending).contains_key(&c.peer)
        && sys::unsent(c.fd) == Some(0)
        && info.bytes_acked == c.info.bytes_acked
        && (!quiet
            || (sys::unread(c.fd) == Some(0) && info.bytes_received == c.info.bytes_received))
}

/// Connects to our own listener and closes at once; false when it could not connect.
fn self_connect(addr: SocketAddr) -> bool {
    use socket2::{Domain, Socket, Type};
    match Socket::new(Domain::for_address(addr), Type::STREAM, None) {
        Ok(s) => s.connect_timeout(&addr.into(), TICK).is_ok(),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Linux system calls

#[allow(unsafe_code)]
mod sys {
    use super::Ours;
    use std::io;
    use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsRawFd, RawFd};

    /// The start of Linux `struct tcp_info` (stable layout, fields appended over time).
    #[repr(C)]
    #[derive(Clone, Copy, Default, Debug)]
    pub struct TcpInfo {
        pub state: u8,
        _ca_state: u8,
        _retransmits: u8,
        _probes: u8,
        _backoff: u8,
        _options: u8,
        _wscale: u8,
        _flags: u8,
        _rto: u32,
        _ato: u32,
        _snd_mss: u32,
        _rcv_mss: u32,
        /// On a listening socket: the current accept queue length.
        pub unacked: u32,
        _sacked: u32,
        _lost: u32,
        _retrans: u32,
        _fackets: u32,
        /// Milliseconds since data was last sent.
        pub last_data_sent: u32,
        _last_ack_sent: u32,
        _last_data_recv: u32,
        _last_ack_recv: u32,
        _pmtu: u32,
        _rcv_ssthresh: u32,
        _rtt: u32,
        _rttvar: u32,
        _snd_ssthresh: u32,
        _snd_cwnd: u32,
        _advmss: u32,
        _reordering: u32,
        _rcv_rtt: u32,
        _rcv_space: u32,
        _total_retrans: u32,
        _pacing_rate: u64,
        _max_pacing_rate: u64,
        /// Bytes of ours the peer acknowledged.
        pub bytes_acked: u64,
        /// Bytes received from the peer (read or not).
        pub bytes_received: u64,
    }

    pub fn tcp_info(fd: RawFd) -> Option<TcpInfo> {
        let mut info = TcpInfo::default();
        let mut len = std::mem::size_of::<TcpInfo>() as libc::socklen_t;
        // SAFETY: `info` is plain data of `len` bytes; the kernel writes at most `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut TcpInfo).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(info)
    }

    /// Bytes in the receive queue.
    pub fn unread(fd: RawFd) -> Option<u32> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
        (rc == 0).then_some(n.max(0) as u32)
    }

    /// Bytes in the send queue (not yet acknowledged).
    pub fn unsent(fd: RawFd) -> Option<u32> {
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
        (rc == 0).then_some(n.max(0) as u32)
    }

    /// The local (`peer == false`) or remote address of an IP socket.
    pub fn sock_addr(fd: RawFd, peer: bool) -> Option<SocketAddr> {
        // SAFETY: sockaddr_storage is plain data, valid when zeroed.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let p = (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
        // SAFETY: `p` points to `len` writable bytes.
        let rc = unsafe {
            if peer {
                libc::getpeername(fd, p, &mut len)
            } else {
                libc::getsockname(fd, p, &mut len)
            }
        };
        if rc != 0 {
            return None;
        }
        match ss.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let a =
                    unsafe { &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let a = unsafe {
                    &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    0,
                    0,
                )))
            }
            _ => None,
        }
    }

    /// True when `fd` is a connection of ours to `peer`.
    fn is_conn(fd: RawFd, peer: SocketAddr, ours: Ours) -> bool {
        sock_addr(fd, true).map(super::norm) == Some(peer)
            && sock_addr(fd, false).is_some_and(|l| ours.matches(l))
    }

    /// What to do to a connection.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Action {
        /// `shutdown(2)`: blocked reads and writes return; a FIN follows the queued data.
        /// Linux still accepts incoming data after it, so a client that keeps sending keeps a
        /// reader busy: use `Abort` for those.
        Shutdown(Shutdown),
        /// `connect(AF_UNSPEC)`, i.e. `tcp_disconnect`: a reset is sent, both queues are
        /// emptied and every operation on the socket fails from now on.
        Abort,
    }

    /// Applies `action` to `fd` if it still is our connection to `peer` (descriptors get
    /// reused): the check and the action go through a duplicate, so they act on the same
    /// socket. `preamble` is sent first (best effort, non-blocking). True when done.
    pub fn act_checked(
        fd: RawFd,
        peer: SocketAddr,
        ours: Ours,
        action: Action,
        preamble: Option<&[u8]>,
    ) -> bool {
        // SAFETY: plain descriptor duplication.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        let target = if dup >= 0 { dup } else { fd };
        let ok = is_conn(target, peer, ours);
        if ok {
            if let Some(bytes) = preamble {
                // SAFETY: `bytes` is a valid buffer of its length.
                unsafe {
                    libc::send(
                        target,
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    )
                };
            }
            match action {
                Action::Shutdown(how) => {
                    let how = match how {
                        Shutdown::Read => libc::SHUT_RD,
                        Shutdown::Write => libc::SHUT_WR,
                        Shutdown::Both => libc::SHUT_RDWR,
                    };
                    // SAFETY: shutdown on a descriptor we hold.
                    unsafe { libc::shutdown(target, how) };
                }
                Action::Abort => {
                    // SAFETY: sockaddr is plain data; AF_UNSPEC dissolves the association.
                    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
                    sa.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
                    // SAFETY: `sa` is a valid sockaddr of the given length.
                    unsafe {
                        libc::connect(
                            target,
                            &sa,
                            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
                        )
                    };
                }
            }
        }
        if dup >= 0 {
            // SAFETY: `dup` is ours.
            unsafe { libc::close(dup) };
        }
        ok
    }

    /// Closes `fd` if it is our connection to `peer`. Only for descriptors no other code will
    /// ever use or close (leaked requests).
    pub fn close_checked(fd: RawFd, peer: SocketAddr, ours: Ours) {
        if is_conn(fd, peer, ours) {
            // SAFETY: the descriptor belongs to a leaked object that never touches it again.
            unsafe { libc::close(fd) };
        }
    }

    /// All open descriptors, through a fresh `/proc/self/fd` listing (needs a descriptor).
    pub fn list_fds_fresh() -> io::Result<Vec<RawFd>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd")? {
            if let Some(fd) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
                out.push(fd);
            }
        }
        Ok(out)
    }

    /// `/proc/self/fd`, kept open and re-read from the start each time, so that listing the
    /// descriptors works even when none is left to open.
    pub struct FdDir {
        file: std::fs::File,
    }

    impl FdDir {
        pub fn open() -> io::Result<FdDir> {
            Ok(FdDir {
                file: std::fs::File::open("/proc/self/fd")?,
            })
        }

        pub fn fd(&self) -> RawFd {
            self.file.as_raw_fd()
        }

        pub fn list(&mut self, out: &mut Vec<RawFd>, buf: &mut [u8]) -> io::Result<()> {
            out.clear();
            let fd = self.file.as_raw_fd();
            // SAFETY: rewinding a directory descriptor we own.
            if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
                return Err(io::Error::last_os_error());
            }
            loop {
                // SAFETY: the kernel writes at most `buf.len()` bytes of dirents into `buf`.
                let n =
                    unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                if n == 0 {
                    return Ok(());
                }
                let n = n as usize;
                let mut at = 0;
                // struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
                while at + 19 <= n {
                    let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
                    if reclen == 0 || at + reclen > n {
                        break;
                    }
                    let name = &buf[at + 19..at + reclen];
                    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                    if let Some(fd) = std::str::from_utf8(name).ok().and_then(|s| s.parse().ok()) {
                        out.push(fd);
                    }
                    at += reclen;
                }
            }
        }
    }

    /// Raises the soft descriptor limit to the hard one (best effort); returns the soft limit.
    pub fn raise_nofile_limit() -> u64 {
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

    /// The largest request body the engine lets tiny_http keep: an eighth of RAM + swap, within
    /// 64 MiB..4 GiB (see `Shared::abandon`).
    pub fn safe_body_limit() -> u64 {
        const MIB: u64 = 1024 * 1024;
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .map(|text| {
                text.lines()
                    .filter(|l| l.starts_with("MemTotal:") || l.starts_with("SwapTotal:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>()
                    * 1024
            })
            .unwrap_or(0);
        if total == 0 {
            return 256 * MIB;
        }
        (total / 8).clamp(64 * MIB, 4096 * MIB)
    }

    /// Sets `TCP_NOTSENT_LOWAT`.
    pub fn set_notsent_lowat(fd: RawFd, bytes: u32) -> io::Result<()> {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: TCP_NOTSENT_LOWAT reads one int.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// An int-valued `IPPROTO_TCP` socket option.
    #[cfg(test)]
    fn tcp_int_option(fd: RawFd, option: libc::c_int) -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the options read here are one int each.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                option,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(v)
    }

    #[cfg(test)]
    pub fn notsent_lowat(fd: RawFd) -> Option<u32> {
        tcp_int_option(fd, libc::TCP_NOTSENT_LOWAT).map(|v| v as u32)
    }

    #[cfg(test)]
    pub fn nodelay(fd: RawFd) -> Option<bool> {
        tcp_int_option(fd, libc::TCP_NODELAY).map(|v| v != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpStream;
    use std::sync::OnceLock;

    /// Answers by path: `/n/N` N bytes, `/s/N` an N-byte stream, `/body` echoes the body,
    /// `/ignore-body` does not read it, `/bad-header`, `/bad-name`, `/panic`; `/gate` waits in
    /// the handler and `/gated-s/N` streams N bytes that stop half way, until `gate` opens;
    /// else the target.
    #[derive(Default)]
    struct TestHandler {
        seen: Mutex<Vec<String>>,
        gate: Arc<Gate>,
    }

    /// Holds handlers and streams until the test opens it (at most 60 s, so that a failing
    /// test cannot hang).
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
    }

    impl Gate {
        fn pass(&self) {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut open = lock(&self.open);
            while !*open && Instant::now() < deadline {
                open = wait(&self.cv, open, Duration::from_millis(100));
            }
        }

        fn open(&self) {
            *lock(&self.open) = true;
            self.cv.notify_all();
        }
    }

    /// The pattern, stopping at half its length until the gate opens.
    struct GatedPattern {
        inner: Pattern,
        gate: Arc<Gate>,
    }

    impl Read for GatedPattern {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let half = self.inner.len / 2;
            if self.inner.at == half {
                self.gate.pass();
            }
            let before_half = if self.inner.at < half {
                (half - self.inner.at) as usize
            } else {
                buf.len()
            };
            let n = buf.len().min(before_half);
            self.inner.read(&mut buf[..n])
        }
    }

    struct Pattern {
        at: u64,
        len: u64,
    }

    impl Read for Pattern {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
            let table = TABLE.get_or_init(|| (0..251u32).map(|i| i as u8).collect());
            let n = (self.len - self.at).min(buf.len() as u64) as usize;
            let mut done = 0;
            while done < n {
                let at = ((self.at + done as u64) % 251) as usize;
                let k = (251 - at).min(n - done);
                buf[done..done + k].copy_from_slice(&table[at..at + k]);
                done += k;
            }
            self.at += n as u64;
            Ok(n)
        }
    }

    fn pattern(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    impl Handler for TestHandler {
        fn handle(&self, req: &mut Request<'_>) -> Reply {
            lock(&self.seen).push(req.target.clone());
            let ok = |body: Body| Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body,
            };
            let t = req.target.clone();
            if let Some(n) = t.strip_prefix("/n/") {
                return ok(Body::Bytes(vec![b'x'; n.parse().unwrap_or(0)]));
            }
            if let Some(n) = t.strip_prefix("/gated-s/") {
                let len = n.parse().unwrap_or(0);
                return ok(Body::Stream {
                    reader: Box::new(GatedPattern {
                        inner: Pattern { at: 0, len },
                        gate: self.gate.clone(),
                    }),
                    len,
                });
            }
            if let Some(n) = t.strip_prefix("/s/") {
                let len = n.parse().unwrap_or(0);
                return ok(Body::Stream {
                    reader: Box::new(Pattern { at: 0, len }),
                    len,
                });
            }
            if let Some(n) = t.strip_prefix("/short-s/") {
                // Promises N bytes, delivers half.
                let len: u64 = n.parse().unwrap_or(0);
                return ok(Body::Stream {
                    reader: Box::new(Pattern {
                        at: 0,
                        len: len / 2,
                    }),
                    len,
                });
            }
            match t.as_str() {
                "/body" => {
                    let mut v = Vec::new();
                    match req.body.read_to_end(&mut v) {
                        Ok(_) => ok(Body::Bytes(v)),
                        Err(_) => plain(400, "bad body\n"),
                    }
                }
                "/ignore-body" => ok(Body::Bytes(b"ignored".to_vec())),
                "/gate" => {
                    self.gate.pass();
                    ok(Body::Bytes(t.into_bytes()))
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
                "/panic" => panic!("handler panic (expected by a test)"),
                _ => ok(Body::Bytes(t.into_bytes())),
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

    /// Reads one response; the body by Content-Length (none for HEAD).
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
        if !head_request && status != 100 {
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

    /// Sends `raw` in one write (`write!` on a socket makes several small writes, which the
    /// client's own Nagle algorithm would delay).
    fn send_raw(r: &mut BufReader<TcpStream>, raw: &str) {
        r.get_mut().write_all(raw.as_bytes()).unwrap();
    }

    fn get(r: &mut BufReader<TcpStream>, path: &str) -> Resp {
        send_raw(r, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
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

    #[test]
    fn small_responses_do_not_stall() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        // Accepted sockets inherit TCP_NODELAY and TCP_NOTSENT_LOWAT from the listener.
        let _ = get(&mut c, "/n/1");
        let fds = sys::list_fds_fresh().unwrap();
        let mine = c.get_ref().local_addr().unwrap();
        let accepted: Vec<RawFd> = fds
            .into_iter()
            .filter(|&fd| {
                sys::sock_addr(fd, false) == Some(srv.addr)
                    && sys::sock_addr(fd, true) == Some(mine)
            })
            .collect();
        assert!(!accepted.is_empty());
        for fd in accepted {
            assert_eq!(sys::nodelay(fd), Some(true));
            assert_eq!(sys::notsent_lowat(fd), Some(NOTSENT_LOWAT));
        }
        // A Nagle stall makes an exchange wait ~40 ms for the peer's delayed ACK; the median
        // of 50 exchanges stays far below that (and is robust to a loaded machine).
        for path in ["/n/100", "/n/100000", "/s/100000"] {
            let mut times: Vec<Duration> = (0..50)
                .map(|_| {
                    let t = Instant::now();
                    assert_eq!(get(&mut c, path).status, 200);
                    t.elapsed()
                })
                .collect();
            times.sort();
            let median = times[times.len() / 2];
            eprintln!("GET {path}, 50 times on one connection: median {median:?}");
            assert!(
                median < Duration::from_millis(20),
                "{path}: median {median:?}"
            );
        }
    }

    #[test]
    fn burst_of_64_keepalive_connections_all_answered() {
        let srv = start(|_| {});
        let t = Instant::now();
        let mut conns: Vec<_> = (0..64).map(|_| connect(srv.addr)).collect();
        for (i, c) in conns.iter_mut().enumerate() {
            send_raw(c, &format!("GET /burst/{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let r = read_resp(c, false).unwrap();
            assert_eq!(r.body, format!("/burst/{i}").into_bytes());
        }
        let took = t.elapsed();
        eprintln!("64 keep-alive connections opened at once, all answered in {took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn idle_keepalive_connection_is_closed() {
        let srv = start(|c| c.idle_timeout = Duration::from_millis(300));
        let mut c = connect(srv.addr);
        assert_eq!(get(&mut c, "/x").status, 200);
        let t = Instant::now();
        assert!(closed_within(&mut c, Duration::from_secs(3)));
        let took = t.elapsed();
        eprintln!("idle connection closed after {took:?} (idle_timeout 300 ms)");
        assert!(took >= Duration::from_millis(250), "{took:?}");
    }

    #[test]
    fn slowloris_head_is_cut() {
        let srv = start(|c| c.idle_timeout = Duration::from_millis(300));
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
        assert!(lock(&srv.handler.seen).is_empty());
    }

    #[test]
    fn oversized_heads_are_refused_or_cut() {
        let srv = start(|_| {});
        // A complete 32 KiB head: 431.
        let mut c = connect(srv.addr);
        let big = "a".repeat(32 * 1024);
        send_raw(
            &mut c,
            &format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n"),
        );
        match read_resp(&mut c, false) {
            Ok(r) => assert_eq!(r.status, 431),
            Err(e) => eprintln!("32 KiB head cut: {e}"),
        }
        assert!(closed_within(&mut c, Duration::from_secs(2)));
        // A head that never ends: cut while it grows.
        let mut c = connect(srv.addr);
        let t = Instant::now();
        let chunk = vec![b'a'; 64 * 1024];
        let _ = c
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
        let mut sent = 0;
        while sent < 64 * 1024 * 1024 && c.get_mut().write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        assert!(sent < 64 * 1024 * 1024, "64 MiB head accepted");
        eprintln!(
            "endless head cut after {} KiB, {:?}",
            sent / 1024,
            t.elapsed()
        );
        assert!(lock(&srv.handler.seen).is_empty());
    }

    #[test]
    fn transfer_encoding_other_than_chunked_is_refused_and_closed() {
        let srv = start(|_| {});
        let smuggle = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
        let cases = [
            (
                format!("POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n{smuggle}"),
                501,
            ),
            (
                format!(
                    "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggle}"
                ),
                501,
            ),
            (
                format!(
                    "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{smuggle}"
                ),
                501,
            ),
            (
                format!(
                    "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{smuggle}",
                    5 + smuggle.len()
                ),
                400,
            ),
            (
                format!("POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello{smuggle}"),
                400,
            ),
            (
                format!(
                    "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello{smuggle}"
                ),
                400,
            ),
            (
                format!("GET /a HTTP/1.1\r\nHost: t\r\nX-Nul: a\0b\r\n\r\n{smuggle}"),
                400,
            ),
        ];
        for (raw, want) in cases {
            let mut c = connect(srv.addr);
            c.get_mut().write_all(raw.as_bytes()).unwrap();
            let r = read_resp(&mut c, false).unwrap();
            assert_eq!(r.status, want, "{raw:?}");
            assert_eq!(r.header("connection"), Some("close"));
            assert!(
                closed_within(&mut c, Duration::from_secs(2)),
                "{raw:?} left open"
            );
        }
        let seen = lock(&srv.handler.seen).clone();
        assert!(seen.is_empty(), "handler saw {seen:?}");
    }

    #[test]
    fn chunked_body_is_read_and_connection_reused() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        c.get_mut()
            .write_all(b"POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
            .unwrap();
        let r = read_resp(&mut c, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello, world"[..]));
        assert_eq!(get(&mut c, "/after").body, b"/after");
    }

    #[test]
    fn expect_continue_is_honoured() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        c.get_mut()
            .write_all(b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
            .unwrap();
        assert_eq!(read_resp(&mut c, false).unwrap().status, 100);
        c.get_mut().write_all(&vec![b'z'; 5000]).unwrap();
        let r = read_resp(&mut c, false).unwrap();
        assert_eq!((r.status, r.body.len()), (200, 5000));
    }

    #[test]
    fn invalid_response_headers_are_never_written() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        for path in ["/bad-header", "/bad-name"] {
            send_raw(&mut c, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
            let r = read_resp(&mut c, false).unwrap();
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
    fn head_and_large_bodies_carry_content_length() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        for path in ["/n/1048576", "/s/1048576", "/s/300"] {
            send_raw(&mut c, &format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
            let r = read_resp(&mut c, true).unwrap();
            let want = path.rsplit('/').next().unwrap();
            assert_eq!((r.status, r.header("content-length")), (200, Some(want)));
            assert!(r.header("transfer-encoding").is_none());
        }
        // The HEAD replies carried no body: the next response parses.
        let r = get(&mut c, "/n/1048576");
        assert_eq!(r.header("content-length"), Some("1048576"));
        assert!(r.header("transfer-encoding").is_none());
        assert_eq!(r.body, vec![b'x'; 1048576]);
        for len in [0u64, 100, 70_000, 1_048_576, 3_000_000] {
            let r = get(&mut c, &format!("/s/{len}"));
            assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
            assert!(r.body == pattern(len), "stream of {len}");
        }
    }

    #[test]
    fn http10_connections_follow_keep_alive() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        c.get_mut().write_all(b"GET /a HTTP/1.0\r\n\r\n").unwrap();
        let r = read_resp(&mut c, false).unwrap();
        assert_eq!(r.header("connection"), Some("close"));
        assert!(closed_within(&mut c, Duration::from_secs(2)));
        let mut c = connect(srv.addr);
        for _ in 0..2 {
            c.get_mut()
                .write_all(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap();
            let r = read_resp(&mut c, false).unwrap();
            assert_eq!(r.header("connection"), Some("keep-alive"));
        }
        c.get_mut()
            .write_all(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let r = read_resp(&mut c, false).unwrap();
        assert_eq!(r.header("connection"), Some("close"));
        assert!(closed_within(&mut c, Duration::from_secs(2)));
    }

    #[test]
    fn unread_bodies_are_drained_or_the_connection_closed() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        let small = vec![b'q'; 10_000];
        send_raw(
            &mut c,
            "POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n",
        );
        c.get_mut().write_all(&small).unwrap();
        assert_eq!(read_resp(&mut c, false).unwrap().body, b"ignored");
        assert_eq!(get(&mut c, "/again").body, b"/again");
        // 1 MiB not read by the handler: answered, then closed.
        let mut c = connect(srv.addr);
        send_raw(
            &mut c,
            "POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n",
        );
        let _ = c.get_mut().write_all(&vec![b'q'; 128 * 1024]);
        let r = read_resp(&mut c, false).unwrap();
        assert_eq!((r.status, r.header("connection")), (200, Some("close")));
        assert!(closed_within(&mut c, Duration::from_secs(2)));
    }

    #[test]
    fn enormous_declared_body_does_not_take_the_server_down() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        c.get_mut()
            .write_all(b"POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000000000\r\n\r\nabc")
            .unwrap();
        if let Ok(r) = read_resp(&mut c, false) {
            assert_eq!(r.status, 413);
        }
        assert!(closed_within(&mut c, Duration::from_secs(2)));
        let mut c = connect(srv.addr);
        assert_eq!(get(&mut c, "/alive").status, 200);
    }

    #[test]
    fn small_streams_are_byte_exact_and_a_short_one_answers_500() {
        let srv = start(|c| c.workers = 1);
        let mut c = connect(srv.addr);
        for len in [0, 1, 64 * 1024, 100 * 1024, STREAM_HANDOFF] {
            let r = get(&mut c, &format!("/s/{len}"));
            assert_eq!(r.status, 200);
            assert_eq!(r.body, pattern(len), "{len}");
        }
        // Nothing was sent before the body was read: the promise can still become a 500, and
        // the connection goes on.
        let r = get(&mut c, &format!("/short-s/{}", 100 * 1024));
        assert_eq!(r.status, 500);
        assert_eq!(get(&mut c, "/next").body, b"/next");
    }

    #[test]
    fn panicking_handler_answers_500() {
        let srv = start(|c| c.workers = 1);
        let mut c = connect(srv.addr);
        assert_eq!(get(&mut c, "/panic").status, 500);
        assert_eq!(get(&mut c, "/next").body, b"/next");
    }

    #[test]
    fn slow_downloads_do_not_hold_the_workers() {
        let srv = start(|c| c.workers = 2);
        // Eight 8 MiB downloads whose clients read nothing.
        let mut stalled: Vec<_> = (0..8).map(|_| connect(srv.addr)).collect();
        for c in &mut stalled {
            c.get_mut()
                .write_all(b"GET /s/8388608 HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
        }
        let t = Instant::now();
        let mut c = connect(srv.addr);
        assert_eq!(get(&mut c, "/quick").body, b"/quick");
        eprintln!(
            "small request next to 8 stalled downloads answered in {:?}",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(1));
        // The stalled downloads still complete when read.
        for c in &mut stalled {
            let r = read_resp(c, false).unwrap();
            assert_eq!(r.body.len(), 8 * 1024 * 1024);
        }
    }

    #[test]
    fn stalled_readers_and_writers_are_cut() {
        let srv = start(|c| c.io_timeout = Duration::from_millis(500));
        // A download whose client reads nothing: the server resets it. Watched through the
        // client socket's TCP state, since reading would make progress.
        let mut c = connect(srv.addr);
        send_raw(&mut c, "GET /s/67108864 HTTP/1.1\r\nHost: t\r\n\r\n");
        let t = Instant::now();
        let fd = c.get_ref().as_raw_fd();
        const TCP_CLOSE: u8 = 7;
        while t.elapsed() < Duration::from_secs(10)
            && sys::tcp_info(fd).is_some_and(|i| i.state != TCP_CLOSE)
        {
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "stalled download cut after {:?} (io_timeout 500 ms)",
            t.elapsed()
        );
        assert_eq!(
            sys::tcp_info(fd).map(|i| i.state),
            Some(TCP_CLOSE),
            "stalled download left open"
        );
        // An upload that stops half way.
        let mut c = connect(srv.addr);
        send_raw(
            &mut c,
            "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n",
        );
        c.get_mut().write_all(&[b'u'; 10_000]).unwrap();
        let t = Instant::now();
        let closed = closed_within(&mut c, Duration::from_secs(5));
        eprintln!(
            "stalled upload cut after {:?} (io_timeout 500 ms)",
            t.elapsed()
        );
        assert!(closed, "stalled upload left open");
    }

    #[test]
    fn connections_beyond_the_limit_are_closed() {
        let srv = start(|c| c.max_connections = 8);
        let mut conns = Vec::new();
        for _ in 0..20 {
            let mut c = connect(srv.addr);
            assert_eq!(get(&mut c, "/x").status, 200);
            conns.push(c);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut closed = vec![false; conns.len()];
        while Instant::now() < deadline && closed.iter().filter(|c| !**c).count() > 8 {
            for (c, gone) in conns.iter_mut().zip(closed.iter_mut()) {
                *gone = *gone || closed_within(c, Duration::from_millis(1));
            }
        }
        let open = closed.iter().filter(|c| !**c).count();
        assert!(open <= 8, "{open} connections still open");
        let mut fresh = connect(srv.addr);
        assert_eq!(get(&mut fresh, "/fresh").status, 200);
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let srv = start(|_| {});
        let mut c = connect(srv.addr);
        let mut raw = String::new();
        for i in 0..10 {
            raw.push_str(&format!("GET /p/{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
        }
        raw.push_str(
            "GET /s/300000 HTTP/1.1\r\nHost: t\r\n\r\nGET /last HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        send_raw(&mut c, &raw);
        for i in 0..10 {
            assert_eq!(
                read_resp(&mut c, false).unwrap().body,
                format!("/p/{i}").into_bytes()
            );
        }
        assert_eq!(read_resp(&mut c, false).unwrap().body, pattern(300_000));
        assert_eq!(read_resp(&mut c, false).unwrap().body, b"/last");
    }

    #[test]
    fn pipelining_behind_an_unread_download_does_not_hold_the_workers() {
        let srv = start(|c| c.workers = 2);
        // Each client pipelines small requests behind a download it never reads: tiny_http
        // parses them at once, and their responses would wait for the download's.
        let mut stalled = Vec::new();
        for _ in 0..3 {
            let mut c = connect(srv.addr);
            let mut raw = String::from("GET /s/67108864 HTTP/1.1\r\nHost: t\r\n\r\n");
            for _ in 0..4 {
                raw.push_str("GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
            }
            send_raw(&mut c, &raw);
            stalled.push(c);
        }
        // Once a download's head is here its writer is live and tiny_http has parsed (or is
        // parsing) the requests behind it.
        for c in &mut stalled {
            let mut line = String::new();
            while line != "\r\n" {
                line.clear();
                c.read_line(&mut line).unwrap();
            }
        }
        let t = Instant::now();
        let mut c = connect(srv.addr);
        assert_eq!(get(&mut c, "/quick").body, b"/quick");
        eprintln!(
            "request next to 3 stalled pipelining clients answered in {:?}",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn shutdown_makes_run_return() {
        let mut srv = start(|_| {});
        let mut c = connect(srv.addr);
        assert_eq!(get(&mut c, "/x").status, 200);
        let t = Instant::now();
        srv.handle.shutdown();
        let thread = srv.thread.take().unwrap();
        while !thread.is_finished() && t.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(thread.is_finished(), "run did not return");
        thread.join().unwrap().unwrap();
        eprintln!("run returned {:?} after shutdown", t.elapsed());
        assert!(TcpStream::connect(srv.addr).is_err(), "still accepting");
        assert!(closed_within(&mut c, Duration::from_secs(1)));
    }

    #[test]
    fn shutdown_lets_in_flight_downloads_finish() {
        let mut srv = start(|_| {});
        let mut c = connect(srv.addr);
        send_raw(&mut c, "GET /s/30000000 HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
        srv.handle.shutdown();
        let t = Instant::now();
        while TcpStream::connect(srv.addr).is_ok() {
            assert!(t.elapsed() < Duration::from_secs(2), "still accepting");
            thread::sleep(Duration::from_millis(10));
        }
        // The download in flight completes.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        let body_at = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(rest.len() - body_at, 30_000_000);
        let thread = srv.thread.take().unwrap();
        while !thread.is_finished() && t.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(thread.is_finished(), "run did not return");
    }

    /// Sends `GET path` and reads the response head; returns the body's length.
    fn request_head(c: &mut BufReader<TcpStream>, path: &str) -> io::Result<usize> {
        c.get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))?;
        send_raw(c, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        let head = read_resp(c, true)?;
        if head.status != 200 {
            return Err(io::Error::other(format!("status {}", head.status)));
        }
        head.header("content-length")
            .ok_or_else(|| io::Error::other("no Content-Length"))?
            .parse()
            .map_err(io::Error::other)
    }

    /// Reads a body of `len` bytes, at about `rate` bytes per second when given; an early end
    /// is an error that says how much came.
    fn read_body(
        c: &mut BufReader<TcpStream>,
        len: usize,
        rate: Option<u64>,
    ) -> io::Result<Vec<u8>> {
        let mut body = vec![0; len];
        let start = Instant::now();
        let mut at = 0;
        while at < len {
            let end = (at + 16 * 1024).min(len);
            match c.read(&mut body[at..end]) {
                Ok(0) => {
                    return Err(io::Error::other(format!(
                        "closed after {at} of {len} bytes"
                    )));
                }
                Ok(n) => at += n,
                Err(e) => return Err(io::Error::other(format!("{e} after {at} of {len} bytes"))),
            }
            if let Some(rate) = rate {
                let due = Duration::from_secs_f64(at as f64 / rate as f64);
                if let Some(ahead) = due.checked_sub(start.elapsed()) {
                    thread::sleep(ahead);
                }
            }
        }
        Ok(body)
    }

    /// A client on its own thread: requests `path` (unless `len`, the length of a response
    /// whose head was read already, is given), reads the whole body (at `rate` when given) and
    /// checks that it is the full test pattern.
    fn download(
        mut c: BufReader<TcpStream>,
        path: &'static str,
        len: Option<usize>,
        rate: Option<u64>,
    ) -> thread::JoinHandle<Result<(), String>> {
        thread::spawn(move || {
            let len = match len {
                Some(len) => len,
                None => request_head(&mut c, path).map_err(|e| format!("{path}: head: {e}"))?,
            };
            let body = read_body(&mut c, len, rate).map_err(|e| format!("{path}: {e}"))?;
            if body != pattern(len as u64) {
                return Err(format!("{path}: wrong bytes"));
            }
            Ok(())
        })
    }

    /// Regression: the reaper took connections whose request was queued (in tiny_http's queue
    /// behind busy workers, or between a worker and a streaming thread) for idle ones, and
    /// closed them to free a thread for a stranded connection or to stay under
    /// `max_connections`: `curl: (52) Empty reply from server` for some of 100 concurrent
    /// 25 MiB downloads (scripts/rss-download). A connection with a request anywhere in the
    /// engine is never closed by the idle, free-thread or limit rules.
    #[test]
    fn busy_downloads_are_never_cut_as_idle() {
        let srv = start(|c| {
            c.workers = 1;
            // Far below the connections below: every one of them is busy, none may be closed.
            c.max_connections = 8;
        });
        // Responses under way (heads read) before the worker is held: streams stopped half way
        // (their clients read all that was sent: the connections show no traffic at all) ...
        let started = |path: &'static str| {
            let mut c = connect(srv.addr);
            let len = request_head(&mut c, path).unwrap();
            (c, path, len)
        };
        let paused: Vec<_> = (0..4)
            .map(|_| started("/gated-s/2000000"))
            .map(|(c, path, len)| download(c, path, Some(len), None))
            .collect();
        // ... and downloads read slowly, which keep the test going for ~2 s (~40 reaper ticks).
        let slow: Vec<_> = (0..8)
            .map(|_| started("/s/3000000"))
            .map(|(c, path, len)| download(c, path, Some(len), Some(1_500_000)))
            .collect();
        // The only worker held by a handler ...
        let mut held = connect(srv.addr);
        send_raw(&mut held, "GET /gate HTTP/1.1\r\nHost: t\r\n\r\n");
        let t = Instant::now();
        while !lock(&srv.handler.seen).iter().any(|p| p == "/gate") {
            assert!(t.elapsed() < Duration::from_secs(10), "/gate never reached");
            thread::sleep(Duration::from_millis(10));
        }
        // ... and a burst of new connections whose requests queue behind it (on a loaded
        // machine tiny_http strands some of them, and the reaper looks for a thread to free:
        // the victims are chosen by the same rule as for the limit).
        let queued: Vec<_> = (0..24).map(|_| connect(srv.addr)).collect();
        let queued: Vec<_> = queued
            .into_iter()
            .map(|c| download(c, "/s/1000000", None, None))
            .collect();
        let mut failures = Vec::new();
        for h in slow {
            failures.extend(h.join().unwrap().err());
        }
        srv.handler.gate.open();
        match read_resp(&mut held, false) {
            Ok(r) => assert_eq!(r.body, b"/gate"),
            Err(e) => failures.push(format!("/gate: {e}")),
        }
        for h in paused.into_iter().chain(queued) {
            failures.extend(h.join().unwrap().err());
        }
        assert!(
            failures.is_empty(),
            "{} failed: {failures:?}",
            failures.len()
        );
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
