//! The HTTP engine: the only module that names tiny_http. (INTERFACE STUB: being implemented.)

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    Stream { reader: Box<dyn Read + Send>, len: u64 },
}

/// A response. The engine adds `Content-Length` (always), `Connection` when needed, and sends
/// no body for HEAD requests while keeping the body's length. Header values are validated by
/// the engine before they are written.
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
pub struct ShutdownHandle {}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        todo!()
    }
}

/// A bound, not yet running server.
pub struct Server {}

impl Server {
    /// Binds the listener (with TCP_NODELAY) and starts accepting.
    pub fn bind(_config: ServerConfig) -> io::Result<Server> {
        todo!()
    }

    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        todo!()
    }

    /// Serves requests with `handler` until shut down; returns once in-flight work is done.
    pub fn run(self, _handler: Arc<dyn Handler>) -> io::Result<()> {
        todo!()
    }
}
