//! Bodies for the engine: request bodies received whole before a blocking-lane handler runs
//! ([`receive`]: in memory, or spooled to an unlinked file), and replies as hyper pulls them
//! ([`respond`], [`Out`]: bytes, store pages pulled inline, readers a piece at a time on the
//! blocking pool). Names hyper, bytes and tokio, like the engine.

use super::{Body, Chunk, ChunkSource, Reply, SPOOL_IN_MEMORY, ServerConfig};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::future::Future;
use std::io::{self, Read, Seek, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Bytes read per blocking-pool trip for [`Body::Stream`] replies.
const STREAM_PIECE: usize = 64 * 1024;

/// A request body received whole: in memory, in an unlinked spool file, or failed (the
/// handler sees the error when it reads).
pub(super) enum Received {
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
pub(super) async fn receive(
    config: &ServerConfig,
    pool: &Handle,
    spooled: &AtomicU64,
    mut incoming: Incoming,
    declared: Option<u64>,
    limit: u64,
) -> Result<Received, (u16, String)> {
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
            match spool(
                config,
                pool,
                spooled,
                file.take(),
                std::mem::take(&mut memory),
            )
            .await
            {
                Ok((f, buf)) => (file, memory) = (Some(f), buf),
                // A full disk: the handler sees the error when it reads (507 on the API).
                Err(e) => return Ok(Received::Failed(Some(e))),
            }
        }
    }
    match file {
        None => Ok(Received::Memory(io::Cursor::new(memory))),
        Some(f) => match spool(config, pool, spooled, Some(f), memory).await {
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
    config: &ServerConfig,
    pool: &Handle,
    spooled: &AtomicU64,
    file: Option<std::fs::File>,
    mut buf: Vec<u8>,
) -> io::Result<(std::fs::File, Vec<u8>)> {
    let dir = config.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let n = spooled.fetch_add(1, Ordering::Relaxed);
    let task = pool.spawn_blocking(move || {
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
pub(super) fn respond(reply: Reply, is_head: bool, pool: &Handle) -> hyper::Response<Out> {
    match build(reply, is_head, pool) {
        Some(r) => r,
        None => build(
            Reply::plain(500, "internal server error: invalid response header\n"),
            is_head,
            pool,
        )
        .expect("a plain reply is valid"),
    }
}

fn build(reply: Reply, is_head: bool, pool: &Handle) -> Option<hyper::Response<Out>> {
    if !(200..=599).contains(&reply.status) {
        return None;
    }
    let status = StatusCode::from_u16(reply.status).ok()?;
    let mut headers = HeaderMap::with_capacity(reply.headers.len() + 2);
    let mut given_len = None;
    let mut close = false;
    for (name, value) in reply.headers {
        // Standard names are recognised without an allocation.
        let name = header_name(&name)?;
        let value = header_value(value)?;
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
                pool: pool.clone(),
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

/// A reply's header name: the ones replies use most without parsing them, any other checked
/// by `HeaderName::from_bytes`.
fn header_name(name: &str) -> Option<HeaderName> {
    Some(match name {
        "content-type" => header::CONTENT_TYPE,
        "cache-control" => header::CACHE_CONTROL,
        "etag" => header::ETAG,
        "accept-ranges" => header::ACCEPT_RANGES,
        "x-content-type-options" => header::X_CONTENT_TYPE_OPTIONS,
        "vary" => header::VARY,
        "content-encoding" => header::CONTENT_ENCODING,
        "content-range" => header::CONTENT_RANGE,
        "content-security-policy" => header::CONTENT_SECURITY_POLICY,
        "content-length" => header::CONTENT_LENGTH,
        "connection" => header::CONNECTION,
        _ => return HeaderName::from_bytes(name.as_bytes()).ok(),
    })
}

/// A reply's header value, checked as `HeaderValue::from_str` checks it (no control
/// characters but tab), without copying it: a fixed string is used in place and a computed one
/// is moved in.
fn header_value(value: super::Text) -> Option<HeaderValue> {
    let bytes = match value {
        std::borrow::Cow::Borrowed(v) => Bytes::from_static(v.as_bytes()),
        std::borrow::Cow::Owned(v) => Bytes::from(v),
    };
    HeaderValue::from_maybe_shared(bytes).ok()
}

/// A response body as hyper pulls it.
pub(super) enum Out {
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
        pool: Handle,
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
            Out::Stream {
                reader,
                left,
                task,
                pool,
            } => {
                if task.is_none() {
                    let Some(mut r) = reader.take() else {
                        return Poll::Ready(Some(Err(short_body())));
                    };
                    let want = (*left).min(STREAM_PIECE as u64) as usize;
                    *task = Some(pool.spawn_blocking(move || {
                        let mut buf = vec![0u8; want];
                        let got = crate::model::read_full(&mut *r, &mut buf).map(|n| {
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
