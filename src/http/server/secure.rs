//! TLS connections: the handshake (bounded by the head timeout), then HTTP/1.1 through the
//! engine's own path, or HTTP/2 when the client chose it by ALPN.
//!
//! HTTP/2 limits: at most [`ServerConfig::h2_max_streams`] concurrent streams, a header list
//! of at most [`ServerConfig::max_head_bytes`], bounded reset floods, keep-alive pings (a peer
//! that stops answering them is dropped), the engine's write-stall guard, and an idle limit:
//! a connection with no request in flight for [`ServerConfig::head_timeout`] gets a GOAWAY, as
//! an idle HTTP/1.1 connection is closed.
//!
//! [`ServerConfig::h2_max_streams`]: super::ServerConfig::h2_max_streams
//! [`ServerConfig::max_head_bytes`]: super::ServerConfig::max_head_bytes
//! [`ServerConfig::head_timeout`]: super::ServerConfig::head_timeout

use super::Tls;
use super::body::Out;
use super::engine::{Guarded, Shared, answer, serve_http1};
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Serves one accepted TCP connection of a TLS listener until it ends.
///
/// SECURITY: a peer that opens TCP and never finishes the handshake is dropped after the head
/// timeout; until then it costs its buffers and a task, never a thread.
pub(super) async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    tls: Tls,
) {
    let limit = shared.config.head_timeout;
    let mut stopping = stop.clone();
    let handshake = tokio::select! {
        r = tokio::time::timeout(limit, tls.accept(stream)) => r,
        // A handshake still unfinished at shutdown is no request in flight: dropped at once.
        _ = stopping.wait_for(|s| *s) => return,
    };
    let (stream, h2) = match handshake {
        Ok(Ok(s)) => s,
        // A failed handshake: the peer gets the alert rustls sent.
        Ok(Err(_)) => return,
        // An unfinished one is a head that did not arrive in time.
        Err(_) => {
            let cut = &shared.config.stats.head_timeouts;
            cut.fetch_add(1, Ordering::Relaxed); // metrics
            return;
        }
    };
    if h2 {
        serve_http2(stream, remote, shared, stop).await;
    } else {
        serve_http1(stream, remote, shared, stop, true).await;
    }
}

async fn serve_http2(
    stream: super::tls::TlsStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    // metrics: an HTTP/2 connection counts as open like an HTTP/1.1 one.
    let stats = config.stats.clone();
    stats.open.fetch_add(1, Ordering::Relaxed);
    let _open = Open(stats.clone());
    let io = TokioIo::new(Guarded {
        stream,
        timeout: config.io_timeout,
        stall: None,
        tail: None,
        tail_keep: 0,
        stats: config.stats.clone(),
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_streams)
        .max_header_list_size(u32::try_from(config.max_head_bytes).unwrap_or(u32::MAX))
        // SECURITY: bounds the "rapid reset" flood (streams opened and cancelled at once).
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Some(config.io_timeout))
        .keep_alive_timeout(config.head_timeout);
    let (activity, watched) = watch::channel(Activity::default());
    let activity = Arc::new(activity);
    let idle_limit = config.head_timeout;
    let grace = config.io_timeout;
    let for_service = shared.clone();
    let service = service_fn(move |req| {
        let shared = for_service.clone();
        let active = Active::new(activity.clone());
        async move {
            let response = answer(&shared, req, remote, None, true).await;
            Ok::<_, Infallible>(response.map(|out| Tracked {
                out,
                _active: active,
            }))
        }
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // After the GOAWAY, in-flight requests get the I/O timeout to finish on a shutdown; an
    // idle connection whose peer does not answer the GOAWAY's ping is dropped after the head
    // timeout.
    let grace = tokio::select! {
        _ = conn.as_mut() => return,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => grace,
        _ = idle(watched, idle_limit) => idle_limit,
    };
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(grace, conn).await;
}

/// Counts an HTTP/2 connection as closed when it ends, however it ends.
struct Open(Arc<super::EngineStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed); // metrics
    }
}

/// Requests in flight on an HTTP/2 connection, and how many have started so far.
#[derive(Default, Clone, Copy)]
struct Activity {
    active: usize,
    started: u64,
}

/// One request in flight, until its response body is done or dropped.
struct Active(Arc<watch::Sender<Activity>>);

impl Active {
    fn new(s: Arc<watch::Sender<Activity>>) -> Active {
        s.send_modify(|a| {
            a.active += 1;
            a.started += 1;
        });
        Active(s)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.send_modify(|a| a.active -= 1);
    }
}

/// Returns once no request has been in flight for `limit`.
async fn idle(mut rx: watch::Receiver<Activity>, limit: Duration) {
    loop {
        let Ok(now) = rx.wait_for(|a| a.active == 0).await.map(|a| *a) else {
            return;
        };
        let woke = tokio::time::timeout(
            limit,
            rx.wait_for(|a| a.active > 0 || a.started != now.started),
        )
        .await;
        if woke.is_err() {
            return;
        }
    }
}

/// A response body that keeps its request counted as in flight.
struct Tracked {
    out: Out,
    _active: Active,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.get_mut().out).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.out.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.out.size_hint()
    }
}
