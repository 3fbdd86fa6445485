//! HTTP: the engine ([`server`]; its `engine`, `secure` and `tls` files are the only ones
//! naming hyper, tokio and rustls), one router ([`App`]), asset serving ([`assets`]), the
//! plain-HTTP redirect to https ([`redirect`]).
//!
//! Routing: a request whose `Host` (any port) is an environment domain
//! (`{label}.{base domain}`) is an asset request. Any other host is the management host:
//! `/e/{label}/…` is the path-style form of the same asset URLs (for boxes reached by IP), the
//! rest is the management surface.

pub mod access_log;
pub mod api;
pub mod assets;
pub mod metrics;
pub mod redirect;
pub mod server;

use crate::metrics::Kind;
use crate::model::{Visibility, domain};
use crate::store::Store;
use server::{Body, EngineStats, Handler, Reply, Request};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Prefix of path-style environment URLs: `http://host:port/e/{label}/path`.
pub const PATH_STYLE_PREFIX: &str = "/e/";

/// The `Content-Security-Policy` of every path-style asset response: a sandbox without
/// `allow-same-origin`, so a page's scripts run in an opaque origin (no cookies, storage or
/// same-origin requests of the management host) while scripts, forms, popups and downloads
/// still work. Images, audio and other non-document content are unaffected.
pub const PATH_STYLE_CSP: &str = "sandbox allow-scripts allow-forms allow-popups allow-downloads";

/// Settings of the HTTP application.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Environment domains are `{label}.{base_domain}`.
    pub base_domain: String,
    /// Peers whose `X-Forwarded-Proto` is believed (a TLS-terminating proxy in front).
    pub trusted_proxies: Vec<IpAddr>,
    /// Age past which unused builds and versions are removed by the retention pass.
    pub retention_secs: u64,
    /// Builds one account may create per hour through the API (Twilio's limit is 100); 0 means
    /// no limit.
    pub builds_per_hour: u32,
    /// `scheme://host[:port]` of the management host as clients reach it (`serve
    /// --public-url`): the prefix of absolute URLs in API responses. `None`: the request's
    /// scheme and (checked) `Host`.
    pub public_url: Option<String>,
    /// The longest a share link may be valid for, counted from when it is used (links made
    /// for longer are refused); `serve --share-max-lifetime`, 7 days by default.
    pub share_max_secs: u64,
}

/// The default of [`AppConfig::share_max_secs`]: 7 days, as S3's presigned URLs.
pub const DEFAULT_SHARE_MAX_SECS: u64 = 7 * 24 * 3600;

/// The path of the Prometheus metrics on the management host.
pub const METRICS_PATH: &str = "/metrics";

/// The request router: asset hosts, path-style asset URLs, management host.
pub struct App {
    store: Arc<Store>,
    config: AppConfig,
    api: api::Api,
    /// The engine's counters, for `/metrics`.
    engine: Arc<EngineStats>,
    access_log: Option<access_log::AccessLog>,
    /// Automatic certificates, whose status `/healthz` shows.
    acme: Option<server::acme::Acme>,
}

/// What the router learnt about a request, for the metrics and the access log.
struct Served {
    kind: Kind,
    environment: Option<String>,
    visibility: Option<Visibility>,
}

impl App {
    /// The application on `store`; starts the background build step (see [`crate::builder`]).
    pub fn new(store: Arc<Store>, config: AppConfig) -> std::io::Result<App> {
        let builder = crate::builder::Builder::start(store.clone())?;
        Ok(App {
            store,
            config,
            api: api::Api::new(builder),
            engine: Arc::default(),
            access_log: None,
            acme: None,
        })
    }

    /// Reads the engine's counters from `stats` (the engine's [`server::ServerConfig::stats`]).
    pub fn with_engine_stats(mut self, stats: Arc<EngineStats>) -> App {
        self.engine = stats;
        self
    }

    /// Shows `acme`'s status in `/healthz`.
    pub fn with_acme(mut self, acme: server::acme::Acme) -> App {
        self.acme = Some(acme);
        self
    }

    /// Logs every request to `log`.
    pub fn with_access_log(mut self, log: access_log::AccessLog) -> App {
        self.access_log = Some(log);
        self
    }

    /// The scheme the client used: `https` on a TLS connection, else `http` or what a trusted
    /// proxy reports.
    fn scheme(&self, req: &Request<'_>) -> &'static str {
        if req.tls {
            return "https";
        }
        // SECURITY: only a configured proxy may claim the original request was https; anyone
        // else could otherwise choose which URL their signature is checked against.
        let trusted = req
            .remote
            .is_some_and(|r| self.config.trusted_proxies.contains(&r.ip()));
        if trusted
            && req
                .header("x-forwarded-proto")
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        {
            "https"
        } else {
            "http"
        }
    }
}

impl App {
    /// Whether the request is for an asset (host-style or path-style).
    fn is_asset(&self, req: &Request<'_>) -> bool {
        let host = req.header("host").unwrap_or("").trim();
        domain::label_of_host(strip_port(host), &self.config.base_domain).is_some()
            || req.target.starts_with(PATH_STYLE_PREFIX)
    }
}

impl Handler for App {
    /// Assets, the console and `/healthz` are answered inline (store reads only, no body);
    /// the API runs on the blocking pool.
    fn is_quick(&self, req: &Request<'_>) -> bool {
        // `/metrics` reads every blob and build row: the blocking pool, as the API.
        self.is_asset(req) || !(api::Api::owns(req.path()) || req.path() == METRICS_PATH)
    }

    /// API and `/metrics` requests are authenticated from their head, before any body is
    /// received (see [`Handler::admit`]).
    fn admit(&self, req: &Request<'_>) -> Option<Reply> {
        if self.is_asset(req) {
            return None;
        }
        let client = client_ip(req, &self.config.trusted_proxies);
        let path = req.path();
        let checked = if api::Api::owns(path) {
            let scheme = self.scheme(req);
            self.api
                .admit(&self.store, &self.config, req, scheme, client)
        } else if path == METRICS_PATH {
            self.api.authenticate_main(&self.store, req, client)
        } else {
            Ok(())
        };
        checked.err().map(|e| {
            if e.disk_failure {
                self.store.note_error(&crate::store::StoreError::Poisoned);
            }
            e.into_reply()
        })
    }

    fn body_limit(&self, req: &Request<'_>) -> u64 {
        api::Api::body_limit(req.method, req.path())
    }

    /// The API's refusals are in its JSON error shape; the rest are plain text.
    fn refuse(&self, req: &Request<'_>, status: u16, message: &str) -> Reply {
        if !self.is_asset(req) && api::Api::owns(req.path()) {
            return api::error::ApiError::new(status, 20000 + status as u32, message).into_reply();
        }
        text(status, &format!("{message}\n"))
    }

    fn handle(&self, req: &mut Request<'_>) -> Reply {
        let start = Instant::now();
        let mut served = Served {
            kind: Kind::Console,
            environment: None,
            visibility: None,
        };
        let reply = self.route(req, &mut served);
        let took = start.elapsed();
        let bytes = match &reply.body {
            _ if req.method == "HEAD" || reply.status == 204 || reply.status == 304 => 0,
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Stream { len, .. } | Body::Chunks { len, .. } => *len,
        };
        crate::metrics::get().request(served.kind, reply.status, bytes, took);
        if let Some(log) = &self.access_log {
            log.log(&access_log::Entry {
                unix_secs: crate::store::now(),
                client: client_ip(req, &self.config.trusted_proxies),
                host: req.header("host").unwrap_or(""),
                method: req.method,
                target: req.target,
                status: reply.status,
                bytes,
                duration: took,
                environment: served.environment.as_deref(),
                visibility: served.visibility.map(Visibility::as_str),
                referer: req.header("referer"),
                user_agent: req.header("user-agent"),
            });
        }
        reply
    }
}

impl App {
    /// An asset request for environment `label` (any case), host- or path-style: `path` is
    /// the asset's path and query; the URL the client used (which a protected asset's
    /// signature or share link must cover) is `{scheme}://{host}{target}`.
    fn serve_asset(
        &self,
        req: &Request<'_>,
        label: &str,
        path: &str,
        served: &mut Served,
    ) -> Reply {
        let label = label.to_ascii_lowercase();
        served.kind = Kind::Asset;
        let max = self.config.share_max_secs;
        let url = || {
            let host = req.header("host").unwrap_or("").trim();
            format!("{}://{host}{}", self.scheme(req), req.target)
        };
        let reply = assets::serve(
            &self.store,
            req,
            &label,
            path,
            &url,
            max,
            &mut served.visibility,
        );
        served.environment = Some(label);
        reply
    }

    fn route(&self, req: &mut Request<'_>, served: &mut Served) -> Reply {
        let host = req.header("host").unwrap_or("").trim();
        if let Some(label) = domain::label_of_host(strip_port(host), &self.config.base_domain) {
            return self.serve_asset(req, label, req.target, served);
        }
        if let Some(rest) = req.target.strip_prefix(PATH_STYLE_PREFIX) {
            let (label, path) = match rest.find(['/', '?']) {
                Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], Cow::Borrowed(&rest[i..])),
                Some(i) => (&rest[..i], Cow::Owned(format!("/{}", &rest[i..]))),
                None => (rest, Cow::Borrowed("/")),
            };
            let mut reply = self.serve_asset(req, label, &path, served);
            // SECURITY: path-style assets are served from the management host, the console's
            // origin: user HTML must not run there (a fake sign-in form on the real address,
            // same-origin API calls). Host-style domains are origins of their own.
            reply
                .headers
                .push(("content-security-policy".into(), PATH_STYLE_CSP.into()));
            return reply;
        }
        let scheme = self.scheme(req);
        let path = req.target.split('?').next().unwrap_or("");
        if api::Api::owns(path) {
            served.kind = Kind::Api;
            let client = client_ip(req, &self.config.trusted_proxies);
            return self
                .api
                .handle(&self.store, &self.config, req, scheme, client);
        }
        if path == METRICS_PATH {
            let client = client_ip(req, &self.config.trusted_proxies);
            // SECURITY: the figures span every account: the main account's own credentials
            // only (Prometheus `basic_auth`), with the API's failed-login limiter.
            return match self.api.authenticate_main(&self.store, req, client) {
                Ok(()) => self.metrics_reply(req),
                Err(e) => e.into_reply(),
            };
        }
        management(req, self.acme.as_ref())
    }

    /// `/metrics`, already authorised.
    pub fn metrics_reply(&self, req: &Request<'_>) -> Reply {
        if !matches!(req.method, "GET" | "HEAD") {
            let mut r = text(405, "Method Not Allowed\n");
            r.headers.push(("allow".into(), "GET, HEAD".into()));
            return r;
        }
        Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), metrics::CONTENT_TYPE.into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: Body::Bytes(metrics::render(&self.store, &self.engine).into_bytes()),
        }
    }
}

/// The unauthenticated metrics listener (`serve --metrics-listen`): `/metrics` and nothing
/// else, for a Prometheus on a private network.
pub struct MetricsOnly(pub Arc<App>);

impl Handler for MetricsOnly {
    fn handle(&self, req: &mut Request<'_>) -> Reply {
        if req.path() == METRICS_PATH {
            self.0.metrics_reply(req)
        } else {
            text(404, "Not Found\n")
        }
    }
}

/// `/healthz`: 200 `ok` while the server serves, then one line per automatic certificate
/// (its expiry, or its last error and when it is retried).
pub fn healthz(acme: Option<&server::acme::Acme>) -> Reply {
    let mut body = String::from("ok\n");
    for line in acme.map(server::acme::Acme::health).unwrap_or_default() {
        body.push_str(&line);
        body.push('\n');
    }
    let mut reply = text(200, &body);
    reply
        .headers
        .push(("cache-control".into(), "no-store".into()));
    reply
}

/// The management host outside the API: `/healthz`, and the web console ([`crate::ui`]) at
/// `/` with its versioned files under `/ui/{version}/`. Anything else is 404.
fn management(req: &Request<'_>, acme: Option<&server::acme::Acme>) -> Reply {
    let path = req.target.split('?').next().unwrap_or("");
    let reply = if path == "/healthz" {
        Some(healthz(acme))
    } else {
        crate::ui::serve(crate::ui::Request {
            path,
            if_none_match: req.header("if-none-match"),
            accept_encoding: req.header("accept-encoding"),
        })
        .map(|r| Reply {
            status: r.status,
            headers: r.headers,
            body: if r.status == 304 {
                Body::Empty
            } else {
                Body::Bytes(r.body)
            },
        })
    };
    match reply {
        None => text(404, "Not Found\n"),
        Some(_) if !matches!(req.method, "GET" | "HEAD") => {
            let mut r = text(405, "Method Not Allowed\n");
            r.headers.push(("allow".into(), "GET, HEAD".into()));
            r
        }
        Some(r) => r,
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the proxy appends the
/// address it saw at the end; anything to its left is the client's own claim).
pub fn client_ip(req: &Request<'_>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.remote?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    // SECURITY: only the entries added by trusted proxies are believed, read from the right.
    let mut client = peer;
    if let Some(xff) = req.header("x-forwarded-for") {
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted.contains(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    Some(client)
}

/// A short plain-text reply.
pub fn text(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type".into(), "text/plain; charset=utf-8".into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body: Body::Bytes(body.as_bytes().to_vec()),
    }
}

/// `host[:port]` → `host` (IPv6 literals keep their brackets).
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_stripped() {
        assert_eq!(strip_port("a.localhost:8080"), "a.localhost");
        assert_eq!(strip_port("a.localhost"), "a.localhost");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
