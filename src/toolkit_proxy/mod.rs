//! `assetd toolkit-proxy`: lets Twilio's Serverless Toolkit (`twilio-run`,
//! `@twilio-labs/serverless-api`) deploy to assetd without any change to its code.
//!
//! The toolkit always calls `https://serverless.twilio.com/v1` and
//! `https://serverless-upload.twilio.com/v1`, but honours `HTTP_PROXY` (it tunnels with
//! `CONNECT host:443`) and Node's `NODE_EXTRA_CA_CERTS`. This proxy listens on loopback only,
//! accepts `CONNECT` for exactly those two hosts on port 443 (anything else is refused with
//! 403), terminates TLS with a certificate signed by a local CA ([`tls`]), and forwards each
//! request inside the tunnel to the assetd server ([`forward`]), over `http://` or over
//! `https://` with the server's certificate verified (`--ca-cert`, else the public roots). It
//! never opens a connection anywhere but the assetd URL.
//!
//! One thread per connection, at most [`MAX_CONNECTIONS`] at once (more are answered 503),
//! with timeouts on every socket: a loopback development tool, not a server.

pub mod forward;
mod tls;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// An error with a one-line message.
pub type Error = Box<dyn std::error::Error>;

/// The hosts the toolkit calls; the only `CONNECT` targets accepted (on port 443).
pub const ALLOWED_HOSTS: [&str; 2] = ["serverless.twilio.com", "serverless-upload.twilio.com"];

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// How long the client may take to send its `CONNECT`, its TLS handshake, or its next request
/// on an idle tunnel.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest `CONNECT` head.
const MAX_CONNECT_HEAD: usize = 8 * 1024;

/// Where the assetd server is: `http://host[:port]` or `https://host[:port]`.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The URL as given, for messages.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as sent in `Host` (the server builds its absolute URLs from it).
    pub authority: String,
    /// `{scheme}://{authority}`: the prefix of the server's absolute URLs, rewritten to the
    /// Twilio host in answers.
    pub origin: String,
    /// For an `https://` server: how its certificate is verified.
    tls: Option<tls::Client>,
}

impl Upstream {
    /// Parses `http[s]://host[:port][/]`. An `https://` server is verified against the PEM
    /// certificates of `ca_cert` (a private CA or the server's self-signed certificate), else
    /// against the built-in public roots; `ca_cert` is not used for `http://`.
    pub fn parse(url: &str, ca_cert: Option<&Path>) -> Result<Upstream, Error> {
        let (secure, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return Err(format!("--url {url:?} is not an http:// or https:// URL").into()),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "--url {url:?} must be http[s]://host[:port] with no path, query or user"
            )
            .into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("--url {url:?} has a bad port {p:?}"))?;
                (h, port)
            }
            _ => (authority, if secure { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("--url {url:?} has no host").into());
        }
        let tls = if secure {
            Some(tls::Client::new(host, ca_cert)?)
        } else {
            None
        };
        let scheme = if secure { "https" } else { "http" };
        Ok(Upstream {
            url: url.to_string(),
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            origin: format!("{scheme}://{authority}"),
            tls,
        })
    }

    /// Whether the server is reached over `https://`.
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// For an `https://` server: connects once and fails when its certificate cannot be
    /// verified (or it speaks no TLS), with the one-line message naming the host and the fix.
    /// A server that cannot be reached passes (it may start later; each request then says
    /// so).
    pub fn check_certificate(&self) -> Result<(), Error> {
        if self.tls.is_none() {
            return Ok(());
        }
        match self.connect(Duration::from_secs(10)) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(e.to_string().into()),
            _ => Ok(()),
        }
    }
}

/// The proxy's directory: `$XDG_CONFIG_HOME/assetd/toolkit-proxy`, else
/// `$HOME/.config/assetd/toolkit-proxy`.
pub fn default_dir() -> Result<PathBuf, Error> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                return Err("neither XDG_CONFIG_HOME nor HOME is set: give --dir DIR".into());
            }
        },
    };
    Ok(base.join("assetd").join("toolkit-proxy"))
}

/// A bound proxy, ready to [`Proxy::run`].
pub struct Proxy {
    listener: TcpListener,
    tls: Arc<tls::Tls>,
    upstream: Arc<Upstream>,
}

impl Proxy {
    /// Binds `listen` (a loopback address; port 0 picks one) and loads or creates the CA in
    /// `dir`.
    pub fn bind(listen: SocketAddr, upstream: Upstream, dir: &Path) -> Result<Proxy, Error> {
        // SECURITY: the proxy holds a CA the toolkit trusts and forwards with the caller's
        // credentials; only processes on this machine may use it.
        if !listen.ip().is_loopback() {
            return Err(format!(
                "--listen {listen}: the toolkit proxy listens on a loopback address only (127.0.0.1:PORT or [::1]:PORT)"
            )
            .into());
        }
        let tls = tls::Tls::load_or_create(dir, &ALLOWED_HOSTS)?;
        let listener =
            TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        Ok(Proxy {
            listener,
            tls: Arc::new(tls),
            upstream: Arc::new(upstream),
        })
    }

    /// The address it listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The CA certificate the toolkit must trust (`NODE_EXTRA_CA_CERTS`).
    pub fn ca_cert(&self) -> &Path {
        &self.tls.ca_cert
    }

    /// Accepts connections until the process ends.
    pub fn run(self) -> Result<(), Error> {
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("assetd toolkit-proxy: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
            let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
            let _ = stream.set_nodelay(true);
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::SeqCst);
                let mut s = stream;
                let _ = s.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let (tls, upstream, done) = (self.tls.clone(), self.upstream.clone(), active.clone());
            let spawned = std::thread::Builder::new()
                .name("toolkit-proxy".into())
                .spawn(move || {
                    if let Err(e) = connection(stream, &tls, &upstream) {
                        eprintln!("assetd toolkit-proxy: {e}");
                    }
                    done.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                // The closure (and the connection in it) was dropped unrun.
                active.fetch_sub(1, Ordering::SeqCst);
                eprintln!("assetd toolkit-proxy: cannot start a thread: {e}");
            }
        }
    }
}

/// The `CONNECT` target `host:port` if it is one of [`ALLOWED_HOSTS`] on 443 (host compared
/// without case), as the lower-case host name.
pub fn allowed_target(target: &str) -> Option<&'static str> {
    let (host, port) = target.rsplit_once(':')?;
    if port != "443" {
        return None;
    }
    ALLOWED_HOSTS
        .iter()
        .find(|h| h.eq_ignore_ascii_case(host))
        .copied()
}

/// One client connection: its `CONNECT`, then the TLS tunnel.
fn connection(mut stream: TcpStream, tls: &tls::Tls, upstream: &Upstream) -> Result<(), Error> {
    let head = read_connect_head(&mut stream)?;
    let request_line = head.lines().next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let refuse = |stream: &mut TcpStream, status: &str| -> Result<(), Error> {
        let body = "assetd toolkit-proxy only tunnels CONNECT serverless.twilio.com:443 and serverless-upload.twilio.com:443\n";
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        Err(format!("refused {method} {target} ({status})").into())
    };
    if method != "CONNECT" {
        return refuse(&mut stream, "405 Method Not Allowed");
    }
    // SECURITY: only the two Twilio hosts are tunnelled, and every tunnel ends here and goes
    // to the assetd URL: the proxy can never be used to reach anything else.
    let Some(host) = allowed_target(target) else {
        return refuse(&mut stream, "403 Forbidden");
    };
    stream.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
    stream.flush()?;
    let mut tunnel = tls
        .accept(stream)
        .map_err(|e| format!("TLS handshake for {host}: {e}"))?;
    let served = forward::serve(&mut tunnel, host, upstream);
    tunnel.close();
    served.map_err(|e| format!("{host}: {e}").into())
}

/// Reads the `CONNECT` head byte by byte (nothing past its blank line is consumed: the TLS
/// handshake follows on the same socket).
fn read_connect_head(stream: &mut TcpStream) -> Result<String, Error> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_CONNECT_HEAD {
            return Err("CONNECT head too large".into());
        }
        if stream.read(&mut byte)? == 0 {
            return Err("connection closed before a complete CONNECT".into());
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).map_err(|_| "CONNECT head is not UTF-8".into())
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=,@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_twilio_hosts_on_443_are_tunnelled() {
        assert_eq!(
            allowed_target("serverless.twilio.com:443"),
            Some("serverless.twilio.com")
        );
        assert_eq!(
            allowed_target("Serverless-Upload.Twilio.com:443"),
            Some("serverless-upload.twilio.com")
        );
        for bad in [
            "serverless.twilio.com:80",
            "serverless.twilio.com",
            "api.twilio.com:443",
            "evil.serverless.twilio.com:443",
            "serverless.twilio.com.evil:443",
            "127.0.0.1:443",
            "",
        ] {
            assert_eq!(allowed_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn upstream_urls() {
        let parse = |u: &str| Upstream::parse(u, None);
        let u = parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.origin, "http://127.0.0.1:8080");
        assert!(!u.is_https());
        let u = parse("http://[::1]:9000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
        assert_eq!(parse("http://box").unwrap().port, 80);
        let u = parse("https://assets.example.org").unwrap();
        assert_eq!(
            (u.port, u.origin.as_str()),
            (443, "https://assets.example.org")
        );
        assert!(u.is_https());
        let u = parse("https://10.0.0.7:8443/").unwrap();
        assert_eq!((u.authority.as_str(), u.port), ("10.0.0.7:8443", 8443));
        for bad in [
            "ftp://x",
            "http://",
            "http://x/v1",
            "http://x:0",
            "http://u@x",
            "https://",
            "https://x/v1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // A --ca-cert that is not a PEM certificate is one line naming the file.
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = Upstream::parse("https://x", Some(&junk))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--ca-cert ") && e.contains("junk.pem"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/root/.config/ca.pem"), "/root/.config/ca.pem");
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
