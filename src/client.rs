//! A small client of assetd's management API, for the CLI: the only module that names ureq.
//! `http://` and `https://` (rustls with the `ring` provider, the server's TLS stack; the
//! Mozilla roots built in, or only the certificates of `--ca-cert`). Errors are one line, with
//! the server's message when it sent one. Also [`Fetcher`], the plain HTTPS transport of the
//! server's ACME client.

use base64::Engine;
use serde_json::Value;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An API error as one line.
#[derive(Debug)]
pub struct ClientError {
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientError {}

pub type ClientResult<T> = Result<T, ClientError>;

/// A connection to one server with one set of credentials.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    auth: String,
    /// Bytes on the wire (request and response heads and bodies), for reports.
    wire: Arc<AtomicU64>,
}

/// A request body: bytes in memory, or a file streamed from disk.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Bytes(&'a [u8]),
    File(&'a std::path::Path),
}

/// Requests are retried this many times on connection errors, 429 and 5xx (but 507).
const ATTEMPTS: u32 = 4;
/// A 429 whose `Retry-After` asks for longer than this is an error, not retried; no retry
/// waits longer than this.
const MAX_RETRY_AFTER_SECS: u64 = 10;

impl Client {
    /// A client for `base` (`http[s]://host[:port]`) authenticating as `user`/`password`
    /// (an Account SID and auth token, or an API key SID and secret). With `ca_cert` (a PEM
    /// file of one or more certificates: a private CA, or a self-signed server certificate)
    /// https servers are verified against those certificates only.
    pub fn new(
        base: &str,
        user: &str,
        password: &str,
        ca_cert: Option<&std::path::Path>,
    ) -> ClientResult<Client> {
        let base = base.trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .filter(|r| !r.is_empty() && crate::model::domain::is_host_port(r));
        if rest.is_none() {
            return Err(ClientError {
                status: None,
                message: format!(
                    "--url {base:?} is not an http:// or https:// URL (scheme://host[:port])"
                ),
            });
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = ca_cert {
            let certs = load_certs(path, "--ca-cert")?;
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(16)
            .build()
            .into();
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        Ok(Client {
            agent,
            base,
            auth,
            wire: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Bytes sent and received so far (heads and bodies) by this client and its clones.
    pub fn wire_bytes(&self) -> u64 {
        self.wire.load(Ordering::Relaxed)
    }

    /// Whether the server is reached over plain http to a host that is not loopback or on a
    /// private network (the credentials travel in clear).
    pub fn in_clear(&self) -> bool {
        in_clear(&self.base)
    }

    /// The host of the server URL.
    pub fn host(&self) -> &str {
        let rest = self.base.split_once("://").map_or("", |(_, r)| r);
        host_of(rest)
    }

    /// The one-line error for a failed request: certificate failures name the host and the
    /// fix.
    fn unreachable(&self, e: &ureq::Error) -> ClientError {
        let text = e.to_string();
        let tls = matches!(e, ureq::Error::Rustls(_) | ureq::Error::Tls(_))
            || text.contains("certificate")
            || text.contains("Certificate");
        let message = if tls && self.base.starts_with("https://") {
            certificate_error(self.host(), &text)
        } else {
            format!("cannot reach {}: {text}", self.base)
        };
        ClientError {
            status: None,
            message,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request (retrying transient failures) and returns (status, body bytes).
    fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Payload<'_>,
    ) -> ClientResult<(u16, Vec<u8>)> {
        let url = self.url(path);
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 << attempt));
            }
            let req = ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Authorization", &self.auth)
                .header("Accept", "application/json");
            let req = match content_type {
                Some(ct) => req.header("Content-Type", ct),
                None => req,
            };
            let head: usize = req
                .headers_ref()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| k.as_str().len() + v.len() + 4)
                        .sum::<usize>()
                })
                .unwrap_or(0)
                + method.len()
                + url.len()
                + 40;
            let bad = |e: ureq::http::Error| ClientError {
                status: None,
                message: format!("bad request to {url}: {e}"),
            };
            // Each attempt sends the body afresh: a file is opened again and streamed, never
            // held in memory.
            let (sent, body_len) = match body {
                Payload::Bytes(b) => (self.agent.run(req.body(b).map_err(bad)?), b.len() as u64),
                Payload::File(p) => {
                    let file = std::fs::File::open(p).map_err(|e| ClientError {
                        status: None,
                        message: format!("cannot read {}: {e}", p.display()),
                    })?;
                    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                    (self.agent.run(req.body(file).map_err(bad)?), len)
                }
            };
            self.wire
                .fetch_add(head as u64 + body_len, Ordering::Relaxed);
            match sent {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let head: usize = resp
                        .headers()
                        .iter()
                        .map(|(k, v)| k.as_str().len() + v.len() + 4)
                        .sum::<usize>()
                        + 20;
                    let bytes = resp
                        .body_mut()
                        .with_config()
                        .limit(64 * 1024 * 1024)
                        .read_to_vec()
                        .map_err(|e| ClientError {
                            status: Some(status),
                            message: format!("{url}: {e}"),
                        })?;
                    self.wire
                        .fetch_add((head + bytes.len()) as u64, Ordering::Relaxed);
                    // A 429 that asks for a long wait is reported, not waited out.
                    let long_wait = retry_after.filter(|&s| s > MAX_RETRY_AFTER_SECS);
                    if let (429, Some(secs)) = (status, long_wait) {
                        return Err(ClientError {
                            status: Some(status),
                            message: format!(
                                "{}; try again in {}",
                                error_message(status, &bytes),
                                crate::model::time::human_duration(secs)
                            ),
                        });
                    }
                    // 507 (the server's disk is full) does not pass in seconds.
                    let transient = status == 429 || (status >= 500 && status != 507);
                    if transient && attempt + 1 < ATTEMPTS {
                        last = Some(ClientError {
                            status: Some(status),
                            message: error_message(status, &bytes),
                        });
                        if let Some(secs) = retry_after {
                            let secs = secs.min(MAX_RETRY_AFTER_SECS);
                            std::thread::sleep(Duration::from_secs(secs));
                        }
                        continue;
                    }
                    return Ok((status, bytes));
                }
                Err(e) => {
                    let err = self.unreachable(&e);
                    // A certificate that fails now fails on every retry.
                    if err.message.starts_with("cannot verify the TLS certificate") {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// A JSON request; non-2xx answers become errors carrying the server's message.
    fn json(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Payload<'_>,
    ) -> ClientResult<Value> {
        let (status, bytes) = self.send(method, path, content_type, body)?;
        if !(200..300).contains(&status) {
            return Err(ClientError {
                status: Some(status),
                message: error_message(status, &bytes),
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError {
            status: Some(status),
            message: format!("the server's answer is not JSON: {e}"),
        })
    }

    pub fn get(&self, path: &str) -> ClientResult<Value> {
        self.json("GET", path, None, Payload::Bytes(b""))
    }

    /// HEAD: true on 2xx, false on 404, an error otherwise.
    pub fn exists(&self, path: &str) -> ClientResult<bool> {
        match self.send("HEAD", path, None, Payload::Bytes(b""))? {
            (s, _) if (200..300).contains(&s) => Ok(true),
            (404, _) => Ok(false),
            (s, body) => Err(ClientError {
                status: Some(s),
                message: error_message(s, &body),
            }),
        }
    }

    /// POST a form (`Key=Value&…`, repeated keys allowed).
    pub fn post_form(&self, path: &str, params: &[(&str, &str)]) -> ClientResult<Value> {
        let body: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        self.json(
            "POST",
            path,
            Some("application/x-www-form-urlencoded"),
            Payload::Bytes(body.join("&").as_bytes()),
        )
    }

    pub fn post_json(&self, path: &str, value: &Value) -> ClientResult<Value> {
        self.json(
            "POST",
            path,
            Some("application/json"),
            Payload::Bytes(value.to_string().as_bytes()),
        )
    }

    /// PUTs the file at `file` as the raw body, streamed from disk (re-read on a retry).
    pub fn put_file(&self, path: &str, file: &std::path::Path) -> ClientResult<Value> {
        self.json(
            "PUT",
            path,
            Some("application/octet-stream"),
            Payload::File(file),
        )
    }

    /// Every item of a list, following `next_page_url` to the end.
    pub fn list(&self, path: &str, key: &str) -> ClientResult<Vec<Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = Some(format!("{path}{sep}PageSize=1000"));
        let mut out = Vec::new();
        while let Some(p) = next {
            let page = self.get(&p)?;
            if let Some(items) = page.get(key).and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            next = page["meta"]["next_page_url"].as_str().map(str::to_string);
        }
        Ok(out)
    }

    /// Streams a GET's body into `out`; returns the byte count.
    pub fn download(&self, path: &str, out: &mut dyn Write) -> ClientResult<u64> {
        let url = self.url(path);
        let resp = self
            .agent
            .get(&url)
            .header("Authorization", &self.auth)
            .call()
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let mut reader = resp.into_body().into_reader();
        if !(200..300).contains(&status) {
            let mut bytes = Vec::new();
            let _ = reader.by_ref().take(64 * 1024).read_to_end(&mut bytes);
            return Err(ClientError {
                status: Some(status),
                message: error_message(status, &bytes),
            });
        }
        std::io::copy(&mut reader, out).map_err(|e| ClientError {
            status: Some(status),
            message: format!("the download from {url} broke off: {e}"),
        })
    }
}

/// The one-line message for a server certificate that cannot be verified: the host, why, and
/// the fix (shared by the CLI and the toolkit proxy).
pub fn certificate_error(host: &str, why: &str) -> String {
    format!(
        "cannot verify the TLS certificate of {host} ({why}): pass --ca-cert FILE (or set ASSETD_CA_CERT) with the server's CA or self-signed certificate (`serve --tls-self-signed` prints its path)"
    )
}

/// Whether `url` (`http[s]://host[:port]…`) is plain http to a host that is neither loopback
/// nor on a private network: credentials sent there travel in clear.
pub fn in_clear(url: &str) -> bool {
    url.strip_prefix("http://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(rest))
        .is_some_and(|authority| !is_local_host(host_of(authority)))
}

/// The certificates of a PEM file, for `flag`; an error is one line naming the flag and file.
fn load_certs(
    path: &std::path::Path,
    flag: &str,
) -> ClientResult<Vec<ureq::tls::Certificate<'static>>> {
    let fail = |why: String| ClientError {
        status: None,
        message: format!("{flag} {}: {why}", path.display()),
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(fail(format!("not a PEM file ({e})"))),
        }
    }
    if certs.is_empty() {
        return Err(fail("holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The host of `host[:port]` (IPv6 without brackets).
fn host_of(host_port: &str) -> &str {
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
}

/// Loopback, private (RFC 1918, unique-local IPv6), link-local and CGNAT addresses, and the
/// names `localhost`, `*.localhost`, `*.local`, `*.lan`, `*.internal` and `*.home.arpa`.
fn is_local_host(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_local_host(&v4.to_string()))
        }
        Err(_) => {
            let h = host.trim_end_matches('.').to_ascii_lowercase();
            h == "localhost"
                || [".localhost", ".local", ".lan", ".internal", ".home.arpa"]
                    .iter()
                    .any(|s| h.ends_with(s))
        }
    }
}

/// The server's error message, or a description of the status.
fn error_message(status: u16, body: &[u8]) -> String {
    let server = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string));
    let what = match status {
        401 => "the server refused the credentials",
        403 => "forbidden",
        404 => "not found",
        409 => "conflict",
        413 => "too large",
        429 => "too many requests",
        _ => "request failed",
    };
    let hint = if status == 401 {
        "; check the Account SID and auth token"
    } else {
        ""
    };
    match server {
        Some(m) => format!("{what} ({status}): {m}{hint}"),
        None => format!("{what} ({status}){hint}"),
    }
}

pub use crate::model::urlencode::encode;

#[cfg(test)]
mod tests {
    use super::{in_clear, is_local_host};

    #[test]
    fn credentials_travel_in_clear_only_over_http_to_a_public_host() {
        for url in [
            "http://203.0.113.7:8080",
            "http://assets.example.org/v1",
            "http://8.8.8.8",
        ] {
            assert!(in_clear(url), "{url}");
        }
        for url in [
            "https://203.0.113.7",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://10.0.0.7",
            "http://pi.local:8080/",
        ] {
            assert!(!in_clear(url), "{url}");
        }
    }

    #[test]
    fn local_hosts() {
        for h in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.9",
            "172.16.0.1",
            "::1",
            "fd00::1",
            "localhost",
            "pi.local",
            "box.lan",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["8.8.8.8", "assets.example.org", "2001:db8::1", "172.32.0.1"] {
            assert!(!is_local_host(h), "{h}");
        }
    }
}

/// Single HTTPS exchanges with no retries and no credentials: the transport of the server's
/// ACME client (`serve --acme-email`), which signs its own requests. Verified against the
/// built-in Mozilla roots, or only the certificates of `--acme-ca-cert`.
#[derive(Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
}

/// A response as [`Fetcher::send`] returns it: any status, headers in order, the body.
pub struct Fetched {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Fetcher {
    /// A fetcher trusting `ca_cert`'s certificates only, when given (errors name
    /// `--acme-ca-cert`).
    pub fn new(ca_cert: Option<&std::path::Path>) -> ClientResult<Fetcher> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = ca_cert {
            let certs = load_certs(path, "--acme-ca-cert")?;
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Fetcher { agent })
    }

    /// Sends one request (blocking). Every HTTP status is an answer; `Err` is a transport
    /// failure, one line.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Fetched, String> {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(body).map_err(|e| format!("{url}: {e}"))?;
        let response = self.agent.run(req).map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        let body = response
            .into_body()
            .with_config()
            .limit(1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }
}
