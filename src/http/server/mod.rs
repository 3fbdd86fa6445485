//! The HTTP engine's contract: a [`Request`], a [`Reply`], a [`Handler`]. The engine itself
//! ([`engine`] and `body`; TLS connections and HTTP/2 in `secure`, certificates in [`Tls`]: the
//! only files naming hyper, hyper-util, tokio and rustls; automatic certificates in [`acme`],
//! the only one naming instant-acme) parses requests, enforces the limits
//! of [`ServerConfig`] and writes replies; the router, the asset path and the API only see the
//! types below.
//!
//! Two lanes: a request the handler calls *quick* ([`Handler::is_quick`]: the asset path, the
//! console) is answered inline on a network thread and never waits for its body; any other is
//! answered on a bounded blocking pool, after the engine has received its whole body
//! (in memory, or in an unlinked spool file past [`SPOOL_IN_MEMORY`]). So no handler ever
//! waits on the network, and a slow peer costs memory, never a thread.

pub mod acme;
mod body;
mod cert_time;
mod engine;
mod secure;
pub mod self_signed;
#[cfg(test)]
mod tests;
mod tls;

pub use engine::{Server, ShutdownHandle};
pub use tls::{Tls, aes_hardware};

use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A header name or value of a [`Reply`]: a fixed string, or one computed for this reply.
pub type Text = std::borrow::Cow<'static, str>;

/// Request bodies up to this size are kept in memory; larger ones are spooled to a file.
pub const SPOOL_IN_MEMORY: usize = 256 * 1024;

/// Engine settings. Every limit has a default suited to a Pi and settable on `serve`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Network threads (one single-threaded runtime each); 0 means one per core.
    pub threads: usize,
    /// Most threads the blocking pool (API handlers, body spooling, streamed replies) runs at
    /// once; work beyond it queues.
    pub blocking_threads: usize,
    /// Most open connections; beyond it new connections wait in the listen queue. Lowered to
    /// what the descriptor limit allows.
    pub max_connections: usize,
    /// A connection must deliver a complete request head within this long of being ready for
    /// one (accepted, or its previous response sent): this bounds slow heads (slowloris) and
    /// idle keep-alive connections alike.
    pub head_timeout: Duration,
    /// A request body, or a response write, that makes no progress for this long ends the
    /// connection.
    pub io_timeout: Duration,
    /// Largest request head (request line + headers); past it 431.
    pub max_head_bytes: usize,
    /// Most header lines in a request head; past it 431.
    pub max_headers: usize,
    /// Largest request body the engine receives (the handler may lower it per request, see
    /// [`Handler::body_limit`]). A larger declared `Content-Length` reaches the handler with
    /// an unread, failing body (it answers 413 from `body_len`); a chunked body that grows
    /// past it is refused with 413.
    pub max_body_bytes: u64,
    /// Where bodies larger than [`SPOOL_IN_MEMORY`] are spooled (unlinked at once); `None`: the
    /// system's temporary directory.
    pub spool_dir: Option<PathBuf>,
    /// `SO_SNDBUF` of accepted sockets, which bounds the data queued to a slow reader and
    /// keeps the tail latency of large downloads low; 0 leaves the system default.
    pub send_buffer: usize,
    /// When set, [`ServerConfig::listen`] speaks TLS (HTTP/2 or HTTP/1.1 by ALPN) with this
    /// certificate; the handshake must finish within [`ServerConfig::head_timeout`].
    pub tls: Option<Tls>,
    /// A second listener speaking plain HTTP/1.1, served by the second handler of
    /// [`Server::run_pair`] (for `serve --http-listen`, which redirects to https).
    pub plain_listen: Option<SocketAddr>,
    /// Most concurrent streams an HTTP/2 connection may open (each is a request in flight).
    pub h2_max_streams: u32,
    /// Counters the engine keeps (connections, and what each limit cut); the application
    /// reads them for `/metrics`.
    pub stats: Arc<EngineStats>,
}

/// What the engine counts: relaxed atomic adds, never a lock (they cost nothing measurable).
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since the start.
    pub accepted: AtomicU64,
    /// Accepts that had to wait because [`ServerConfig::max_connections`] were open.
    pub cap_waits: AtomicU64,
    /// Accept errors (out of descriptors or memory: the connection stays in the queue).
    pub accept_errors: AtomicU64,
    /// Connections closed because their first request head (or TLS handshake) did not arrive
    /// in time.
    pub head_timeouts: AtomicU64,
    /// Connections closed because a later request head did not arrive in time (an idle
    /// keep-alive connection, or a slow second head).
    pub idle_timeouts: AtomicU64,
    /// Requests refused because their body made no progress (408).
    pub body_stalls: AtomicU64,
    /// Connections cut because the peer stopped reading a response.
    pub write_stalls: AtomicU64,
    /// Request bodies refused past their size cap (413).
    pub body_too_large: AtomicU64,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            threads: 0,
            blocking_threads: 32,
            max_connections: 16 * 1024,
            head_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 32 * 1024 * 1024,
            spool_dir: None,
            send_buffer: 256 * 1024,
            tls: None,
            plain_listen: None,
            h2_max_streams: 100,
            stats: Arc::default(),
        }
    }
}

/// One request as the handler sees it, borrowed from the engine's parse (nothing is copied
/// for it).
pub struct Request<'a> {
    /// The method, exactly as sent (methods are case-sensitive: `get` is not `GET`).
    pub method: &'a str,
    /// The request target (`/path?query`), as sent.
    pub target: &'a str,
    /// The headers.
    pub headers: &'a dyn Headers,
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// Whether the request came over TLS (the URL the client used is `https://`).
    pub tls: bool,
    /// Declared body length (`Content-Length`), `None` for chunked bodies.
    pub body_len: Option<u64>,
    /// The request body (empty when there is none, and for quick requests); reading past its
    /// end gives EOF. A body the engine could not receive whole (a declared length past
    /// [`ServerConfig::max_body_bytes`], a full spool disk) fails when read.
    pub body: &'a mut dyn Read,
}

/// A request's headers.
pub trait Headers: Sync {
    /// The first value of the header `name` (lower-case), when it is UTF-8. HTTP/2's
    /// `:authority` answers for `host`.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Request<'_> {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The path part of the target (before any `?`).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// Bytes borrowed from their owner (a store page, say) without a copy.
pub type Chunk = Box<dyn AsRef<[u8]> + Send>;

/// A body produced a chunk at a time on the network thread; each call must be quick (a read
/// from the store's cache or disk, never the network or a long computation).
pub trait ChunkSource: Send + 'static {
    /// The next chunk, `None` at the end.
    fn next_chunk(&mut self) -> io::Result<Option<Chunk>>;
}

/// A response body.
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// Exactly `len` bytes read from `reader`, a piece at a time on the blocking pool (no
    /// thread is held between pieces, so a slow reader holds none).
    Stream {
        reader: Box<dyn Read + Send>,
        len: u64,
    },
    /// Exactly `len` bytes from `source`, pulled inline as the socket drains.
    Chunks {
        source: Box<dyn ChunkSource>,
        len: u64,
    },
}

/// A response. The engine adds `Content-Length` (always) and `Date`, and sends no body for
/// HEAD requests while keeping the body's length.
///
/// Details: `Content-Length`, `Transfer-Encoding` and `Keep-Alive` headers set by the handler
/// are replaced by the engine's, with two exceptions: a HEAD reply with [`Body::Empty`] and a
/// 304 keep a numeric `Content-Length` given by the handler (the length a GET would get).
/// `Connection: close` from the handler closes the connection after the reply. 204 and 304
/// replies carry no body. A status outside 200..=599 or an invalid header name or value turns
/// the reply into a 500. A body shorter than its length ends the connection (the client sees
/// a truncated response, never padding).
pub struct Reply {
    pub status: u16,
    /// Names lower-case. Fixed names and values are borrowed (`"nosniff".into()`), so a reply
    /// allocates only for what it computes.
    pub headers: Vec<(Text, Text)>,
    pub body: Body,
}

impl Reply {
    /// A short plain-text reply.
    pub fn plain(status: u16, message: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: Body::Bytes(message.as_bytes().to_vec()),
        }
    }
}

/// What the engine calls for each request.
pub trait Handler: Send + Sync + 'static {
    /// Whether `req` is answered inline on a network thread: the handler promises not to read
    /// its body and to answer quickly (store reads only). Default: no.
    fn is_quick(&self, _req: &Request<'_>) -> bool {
        false
    }

    /// The largest body the engine receives for `req` (it also applies
    /// [`ServerConfig::max_body_bytes`]). Default: no limit of the handler's own.
    fn body_limit(&self, _req: &Request<'_>) -> u64 {
        u64::MAX
    }

    /// For a request that is not quick, called before the engine receives its body: a reply
    /// here is sent instead of calling [`Handler::handle`], and the body is never read (no
    /// `100 Continue`; the connection closes after the reply). Must be quick (store reads
    /// only). Default: every request is admitted.
    ///
    /// SECURITY: this is where a handler refuses an unauthenticated upload, so that an
    /// anonymous client cannot make the server receive and spool bodies it will refuse.
    fn admit(&self, _req: &Request<'_>) -> Option<Reply> {
        None
    }

    /// Answers one request.
    fn handle(&self, req: &mut Request<'_>) -> Reply;

    /// The reply for a request the engine refuses itself (`status` 400, 408, 413, 501, …;
    /// `message` is one line). The default is plain text; the API answers in its own shape.
    fn refuse(&self, _req: &Request<'_>, status: u16, message: &str) -> Reply {
        Reply::plain(status, &format!("{message}\n"))
    }
}
