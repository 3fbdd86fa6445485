//! HTTP/1.1 inside the tunnel: each request the toolkit sends is forwarded to the assetd
//! server over a new connection (`Connection: close`; TLS for an `https://` server, whose
//! sessions may be resumed), and the answer is relayed back. JSON answers are rewritten so that
//! every absolute URL in them (`url`, `links`, `next_page_url`, …) names the Twilio host the
//! toolkit called, so paging comes back through the proxy.

use super::Upstream;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Longest request or response head.
const MAX_HEAD: usize = 16 * 1024;
/// Most header lines in a head.
const MAX_HEADERS: usize = 100;
/// Largest JSON answer buffered for rewriting (assetd's lists are far smaller).
const MAX_JSON: usize = 16 * 1024 * 1024;
/// How long the assetd server may take to accept and to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// Request or response headers that describe one connection, not the message: never
/// forwarded (framing is re-sent explicitly).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "expect",
];

/// A parsed head: the start line's three parts and the headers in order.
struct Head {
    start: [String; 3],
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// How the body is framed; refuses a Content-Length that is not one number and
    /// Transfer-Encoding other than `chunked` or together with Content-Length.
    fn framing(&self) -> io::Result<Framing> {
        let te: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
            .map(|(_, v)| v.trim())
            .collect();
        let cl: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim())
            .collect();
        match (te.as_slice(), cl.as_slice()) {
            ([], []) => Ok(Framing::None),
            ([], [n]) => n
                .parse()
                .map(Framing::Length)
                .map_err(|_| bad(format!("bad Content-Length {n:?}"))),
            ([t], []) if t.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            _ => Err(bad(
                "unsupported Transfer-Encoding / Content-Length combination",
            )),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// A response body that ends when the server closes the connection.
    UntilClose,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one head (up to the blank line); `None` at a clean end of stream before any byte.
fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(bad("connection closed inside a head"));
        }
        total += n;
        if total > MAX_HEAD || !line.ends_with(b"\n") {
            return Err(bad("head too large"));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerated blank lines between messages
            }
            break;
        }
        let line = String::from_utf8(line).map_err(|_| bad("head is not UTF-8"))?;
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(bad("control character in head"));
        }
        lines.push(line);
        if lines.len() > MAX_HEADERS + 1 {
            return Err(bad("too many header lines"));
        }
    }
    let mut parts = lines[0].splitn(3, ' ');
    let start = [
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    ];
    let mut headers = Vec::with_capacity(lines.len() - 1);
    for l in &lines[1..] {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("header line {l:?} has no colon")))?;
        if k.is_empty() || k.contains([' ', '\t']) {
            return Err(bad(format!("bad header name {k:?}")));
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Some(Head { start, headers }))
}

/// Copies a body framed by `framing` from `from` to `to`, re-sent with the same framing
/// (`to` is `None` to discard it). Returns the bytes of content copied.
fn copy_body<R: BufRead, W: Write>(
    from: &mut R,
    to: Option<&mut W>,
    framing: Framing,
) -> io::Result<u64> {
    copy(from, to, framing, true)
}

/// [`copy_body`]; with `reframe` false a chunked body's content alone is written.
fn copy<R: BufRead, W: Write>(
    from: &mut R,
    mut to: Option<&mut W>,
    framing: Framing,
    reframe: bool,
) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut copy_exact = |from: &mut R, to: &mut Option<&mut W>, mut n: u64| -> io::Result<()> {
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            let got = from.read(&mut buf[..want])?;
            if got == 0 {
                return Err(bad("connection closed inside a body"));
            }
            if let Some(w) = to.as_mut() {
                w.write_all(&buf[..got])?;
            }
            n -= got as u64;
            total += got as u64;
        }
        Ok(())
    };
    match framing {
        Framing::None => {}
        Framing::Length(n) => copy_exact(from, &mut to, n)?,
        Framing::Chunked => loop {
            let mut line = Vec::new();
            from.by_ref().take(1024).read_until(b'\n', &mut line)?;
            let text = std::str::from_utf8(&line).map_err(|_| bad("bad chunk size"))?;
            let size = text.trim().split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers are dropped, up to the blank line.
                loop {
                    let mut t = Vec::new();
                    let n = from
                        .by_ref()
                        .take(MAX_HEAD as u64)
                        .read_until(b'\n', &mut t)?;
                    if n == 0 || t == b"\r\n" || t == b"\n" {
                        break;
                    }
                }
                if let Some(w) = to.as_mut().filter(|_| reframe) {
                    w.write_all(b"0\r\n\r\n")?;
                }
                break;
            }
            if let Some(w) = to.as_mut().filter(|_| reframe) {
                write!(w, "{size:x}\r\n")?;
            }
            copy_exact(from, &mut to, size)?;
            let mut crlf = Vec::new();
            from.by_ref().take(2).read_until(b'\n', &mut crlf)?;
            if let Some(w) = to.as_mut().filter(|_| reframe) {
                w.write_all(b"\r\n")?;
            }
        },
        Framing::UntilClose => loop {
            let got = from.read(&mut buf)?;
            if got == 0 {
                break;
            }
            if let Some(w) = to.as_mut() {
                w.write_all(&buf[..got])?;
            }
            total += got as u64;
        },
    }
    Ok(total)
}

/// Reads a whole body's content into memory (at most [`MAX_JSON`] bytes).
fn read_body<R: BufRead>(from: &mut R, framing: Framing) -> io::Result<Vec<u8>> {
    struct Limited(Vec<u8>);
    impl Write for Limited {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0.len() + b.len() > MAX_JSON {
                return Err(bad("JSON answer too large to rewrite"));
            }
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut out = Limited(Vec::new());
    copy(from, Some(&mut out), framing, false)?;
    Ok(out.0)
}

/// Replaces every absolute URL on `from` (followed by `/`, `?`, `"` or the end) with the same
/// URL on `to`.
pub fn rewrite_origin(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let from = from.as_bytes();
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(from) {
            let next = body.get(i + from.len());
            if next.is_none_or(|b| matches!(b, b'/' | b'?' | b'"')) {
                out.extend_from_slice(to.as_bytes());
                i += from.len();
                continue;
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// A short error answer to the toolkit, in Twilio's JSON error shape.
fn error_reply<W: Write>(w: &mut W, status: u16, reason: &str, message: &str) -> io::Result<()> {
    let body = serde_json::json!({
        "code": status as u32 * 100,
        "message": message,
        "more_info": "https://www.twilio.com/docs/errors",
        "status": status,
    })
    .to_string();
    write!(
        w,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

/// Serves the requests of one tunnel whose TLS side claims to be `public_host` until the
/// client closes it (or an answer cannot keep it open). Refused or failed requests are
/// logged on stderr in one line each, with the server's message.
pub fn serve<S: Read + Write>(stream: S, public_host: &str, upstream: &Upstream) -> io::Result<()> {
    let mut client = BufReader::new(stream);
    let public_origin = format!("https://{public_host}");
    loop {
        let head = match read_head(&mut client) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = error_reply(client.get_mut(), 400, "Bad Request", &e.to_string());
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let [method, target, version] = &head.start;
        if !target.starts_with('/') || !version.starts_with("HTTP/1.") {
            let msg = format!("bad request line {method} {target} {version}");
            error_reply(client.get_mut(), 400, "Bad Request", &msg)?;
            return Err(bad(msg));
        }
        let framing = match head.framing() {
            Ok(f) => f,
            Err(e) => {
                error_reply(client.get_mut(), 400, "Bad Request", &e.to_string())?;
                return Err(e);
            }
        };
        if head.has_token("expect", "100-continue") {
            client
                .get_mut()
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            client.get_mut().flush()?;
        }
        let client_close = head.has_token("connection", "close") || version == "HTTP/1.0";

        let mut up = match upstream.connect(UPSTREAM_TIMEOUT) {
            Ok(s) => s,
            Err(e) => {
                let msg = if e.kind() == io::ErrorKind::InvalidData {
                    format!("assetd toolkit-proxy: {e}")
                } else {
                    format!("assetd toolkit-proxy cannot reach {}: {e}", upstream.url)
                };
                eprintln!("{msg}");
                copy_body(&mut client, None::<&mut io::Sink>, framing)?;
                error_reply(client.get_mut(), 502, "Bad Gateway", &msg)?;
                return Ok(());
            }
        };
        // The request, with the assetd server's own Host so its URLs name it (and are
        // rewritten below).
        let mut out = Vec::with_capacity(1024);
        write!(
            out,
            "{method} {target} HTTP/1.1\r\nhost: {}\r\n",
            upstream.authority
        )?;
        for (k, v) in &head.headers {
            if !HOP_BY_HOP.iter().any(|h| k.eq_ignore_ascii_case(h)) {
                write!(out, "{k}: {v}\r\n")?;
            }
        }
        match framing {
            Framing::Length(n) => write!(out, "content-length: {n}\r\n")?,
            Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ => {}
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        let sent = up.write_all(&out).and_then(|()| {
            let mut w = io::BufWriter::with_capacity(64 * 1024, &mut up);
            copy_body(&mut client, Some(&mut w), framing)?;
            w.flush()
        });
        // The server may have answered early (a refusal) and closed: its answer is still
        // read below. The rest of the client's body is not, so the tunnel closes after it.
        let body_unread = sent.is_err();
        if let Err(e) = sent {
            eprintln!("assetd toolkit-proxy: sending {method} {target} to assetd: {e}");
        }
        let mut up = BufReader::new(up);
        let resp = match read_head(&mut up) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => {
                let msg = format!("{} sent no answer to {method} {target}", upstream.url);
                eprintln!("assetd toolkit-proxy: {msg}");
                error_reply(client.get_mut(), 502, "Bad Gateway", &msg)?;
                return Ok(());
            }
        };
        let status: u16 = resp.start[1].parse().unwrap_or(0);
        let reason = resp.start[2].clone();
        let no_body = method == "HEAD" || status == 204 || status == 304 || status < 200;
        let mut framing_out = if no_body {
            Framing::None
        } else {
            match resp.framing() {
                Ok(Framing::None) => Framing::UntilClose,
                Ok(f) => f,
                Err(e) => {
                    error_reply(client.get_mut(), 502, "Bad Gateway", &e.to_string())?;
                    return Err(e);
                }
            }
        };
        let is_json = resp
            .header("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
        let mut body = None;
        if is_json && !no_body {
            let raw = read_body(&mut up, framing_out)?;
            let rewritten = rewrite_origin(&raw, &upstream.origin, &public_origin);
            if status >= 400 {
                log_error(method, target, status, &rewritten);
            }
            framing_out = Framing::Length(rewritten.len() as u64);
            body = Some(rewritten);
        } else if status >= 400 {
            eprintln!("assetd toolkit-proxy: {method} {target} → {status}");
        }
        let server_close = resp.has_token("connection", "close") && !is_json;
        let close =
            client_close || body_unread || framing_out == Framing::UntilClose || server_close;

        let w = client.get_mut();
        let mut head_out = Vec::with_capacity(1024);
        write!(head_out, "HTTP/1.1 {status} {reason}\r\n")?;
        for (k, v) in &resp.headers {
            if HOP_BY_HOP.iter().any(|h| k.eq_ignore_ascii_case(h)) {
                continue;
            }
            if k.eq_ignore_ascii_case("location") {
                let v = rewrite_origin(v.as_bytes(), &upstream.origin, &public_origin);
                head_out.extend_from_slice(k.as_bytes());
                head_out.extend_from_slice(b": ");
                head_out.extend_from_slice(&v);
                head_out.extend_from_slice(b"\r\n");
                continue;
            }
            write!(head_out, "{k}: {v}\r\n")?;
        }
        match framing_out {
            Framing::Length(n) if !no_body => write!(head_out, "content-length: {n}\r\n")?,
            Framing::Chunked => head_out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ if no_body => {
                if let Some(n) = resp.header("content-length") {
                    write!(head_out, "content-length: {n}\r\n")?;
                }
            }
            _ => {}
        }
        if close {
            head_out.extend_from_slice(b"connection: close\r\n");
        }
        head_out.extend_from_slice(b"\r\n");
        w.write_all(&head_out)?;
        match body {
            Some(b) => w.write_all(&b)?,
            None => {
                let mut bw = io::BufWriter::with_capacity(64 * 1024, &mut *w);
                copy_body(&mut up, Some(&mut bw), framing_out)?;
                bw.flush()?;
            }
        }
        w.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// One stderr line for an error answer: `METHOD PATH → STATUS CODE: message`.
fn log_error(method: &str, target: &str, status: u16, body: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let path = target.split('?').next().unwrap_or(target);
    match (v.get("code"), v.get("message").and_then(|m| m.as_str())) {
        (Some(code), Some(msg)) => {
            eprintln!("assetd toolkit-proxy: {method} {path} → {status} {code}: {msg}")
        }
        _ => eprintln!("assetd toolkit-proxy: {method} {path} → {status}"),
    }
}

/// A connection to the assetd server: plain TCP, or TLS for an `https://` server.
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(super::tls::ClientStream),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Upstream {
    /// A new connection to the server, with timeouts; for `https://` with the handshake done
    /// and the certificate verified (a TLS failure is `InvalidData`, its text the one-line
    /// message naming the host and the fix).
    pub(super) fn connect(&self, timeout: Duration) -> io::Result<Conn> {
        use std::net::ToSocketAddrs;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(timeout))?;
                    s.set_write_timeout(Some(timeout))?;
                    let _ = s.set_nodelay(true);
                    return match &self.tls {
                        // SECURITY: the toolkit's credentials go to the server only once its
                        // certificate is verified; there is no "insecure" switch.
                        Some(tls) => tls.connect(s).map(Conn::Tls),
                        None => Ok(Conn::Plain(s)),
                    };
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_rewritten_only_as_whole_origins() {
        let body = br#"{"url":"http://127.0.0.1:8080/v1/Services","next":"http://127.0.0.1:80801/x","n":"http://127.0.0.1:8080?a","e":"http://127.0.0.1:8080"}"#;
        let out = rewrite_origin(
            body,
            "http://127.0.0.1:8080",
            "https://serverless.twilio.com",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"url":"https://serverless.twilio.com/v1/Services","next":"http://127.0.0.1:80801/x","n":"https://serverless.twilio.com?a","e":"https://serverless.twilio.com"}"#
        );
    }

    #[test]
    fn chunked_bodies_are_decoded_and_trailers_dropped() {
        let wire = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut r = BufReader::new(&wire[..]);
        assert_eq!(read_body(&mut r, Framing::Chunked).unwrap(), b"hello world");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
        // Relayed, the framing is re-sent.
        let mut r = BufReader::new(&wire[..]);
        let mut out = Vec::new();
        copy_body(&mut r, Some(&mut out), Framing::Chunked).unwrap();
        assert_eq!(out, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    }

    #[test]
    fn heads_with_bad_framing_or_control_characters_are_refused() {
        let parse = |s: &str| read_head(&mut BufReader::new(s.as_bytes()));
        let h =
            parse("GET /v1 HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(h.framing().is_err());
        let h = parse("GET /v1 HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.framing().is_err());
        assert!(parse("GET /v1 HTTP/1.1\r\nA: b\x01c\r\n\r\n").is_err());
        assert!(parse("GET /v1 HTTP/1.1\r\nno colon\r\n\r\n").is_err());
        let big = format!("GET /v1 HTTP/1.1\r\nA: {}\r\n\r\n", "x".repeat(MAX_HEAD));
        assert!(parse(&big).is_err());
        assert!(parse("").unwrap().is_none());
    }
}
