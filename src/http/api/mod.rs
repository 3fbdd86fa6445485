//! The management API on the management host: Twilio's Serverless v1 resources under `/v1`,
//! accounts under `/2010-04-01`, and assetd's upload-only-what-is-missing extension.
//!
//! Every request is authenticated with HTTP Basic (`AccountSid:AuthToken` or
//! `ApiKeySid:Secret`); resources are scoped to the caller's account and another account's
//! resources answer 404, never 403. Routes live in one table ([`ROUTES`]).

pub mod accounts;
pub mod assets;
pub mod auth;
pub mod builds;
pub mod content;
pub mod environments;
pub mod error;
pub mod form;
pub mod functions;
pub mod json;
pub mod limiter;
pub mod maintenance;
pub mod multipart;
pub mod services;
pub mod share;
pub mod staging;
pub mod sync;
pub mod upload;

use crate::builder::Builder;
use crate::http::AppConfig;
use crate::http::server::{Body, Reply, Request};
use crate::store::{Account, Store, StoreError};
use auth::Limiter;
pub use error::{ApiError, ApiResult};
use form::Params;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// Who is calling: the authenticated account, and the API key used (if any).
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    /// The SID of the API key the request authenticated with; `None` for the auth token.
    /// Key-authenticated requests cannot manage accounts, keys or auth tokens.
    pub api_key: Option<String>,
}

/// Everything a route handler needs.
pub struct Ctx<'s, 'r, 'b> {
    pub store: &'s Store,
    /// Server settings (the base domain of environment domains).
    pub config: &'s AppConfig,
    /// Where created builds are queued for their build step.
    pub builder: &'s Builder,
    pub req: &'r mut Request<'b>,
    pub caller: Caller,
    /// `http://host[:port]`: the prefix of every absolute URL in responses.
    pub base: String,
    /// The request path without its query.
    pub path: String,
    /// Query parameters.
    pub query: Params,
}

impl Ctx<'_, '_, '_> {
    /// The form body (for POST).
    pub fn form(&mut self) -> ApiResult<Params> {
        let len = self.req.body_len;
        form::read_form(self.req.body, len)
    }

    pub fn account_sid(&self) -> &str {
        &self.caller.account.sid
    }
}

/// A route handler; `args` are the path segments matched by `{}`.
pub type RouteFn = fn(&mut Ctx<'_, '_, '_>, &[String]) -> ApiResult<Reply>;

/// One route: method, path pattern (`{}` matches one segment), handler.
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub handler: RouteFn,
}

/// The route table, one slice per resource module. Handlers are thin adapters over the store.
pub static ROUTES: &[&[Route]] = &[
    services::ROUTES,
    environments::ROUTES,
    assets::ROUTES,
    upload::ROUTES,
    builds::ROUTES,
    functions::ROUTES,
    accounts::ROUTES,
    sync::ROUTES,
    content::ROUTES,
    maintenance::ROUTES,
    share::ROUTES,
];

/// Shared state of the API (the failed-authentication limiter).
pub struct Api {
    limiter: Limiter,
    builder: Arc<Builder>,
}

impl Api {
    /// The API; builds it creates are queued on `builder`.
    pub fn new(builder: Arc<Builder>) -> Api {
        Api {
            limiter: Limiter::new(),
            builder,
        }
    }

    /// True when the path belongs to the API.
    pub fn owns(path: &str) -> bool {
        path == "/v1"
            || path.starts_with("/v1/")
            || path == "/2010-04-01"
            || path.starts_with("/2010-04-01/")
    }

    /// The largest request body `method` on `path` takes: an asset upload or a blob 25 MB
    /// (plus multipart framing), a manifest 4 MiB, anything else a 1 MiB form. The engine
    /// receives no more than this; a larger declared length reaches the handler unread, which
    /// answers 413.
    pub fn body_limit(method: &str, path: &str) -> u64 {
        let path = path.trim_end_matches('/');
        let path = path.strip_suffix(".json").unwrap_or(path);
        match method {
            "PUT" if path.starts_with("/v1/Blobs/") => crate::model::limits::MAX_SERVED_BYTES,
            "POST" if path.ends_with("/Versions") => upload::MAX_UPLOAD_BYTES,
            "POST" if path.ends_with("/Manifests") => sync::MAX_MANIFEST_BYTES,
            _ => form::MAX_FORM_BYTES,
        }
    }

    /// Authenticates `req` as the main account's own auth token (not a subaccount, not an API
    /// key), with the failed-login limiter; the refusal is the API's error.
    pub fn authenticate_main(
        &self,
        store: &Store,
        req: &Request<'_>,
        client: Option<IpAddr>,
    ) -> ApiResult<()> {
        let caller = self.limiter.authenticate(store, req, client)?;
        if caller.account.owner_sid.is_some() || caller.api_key.is_some() {
            return Err(ApiError::new(
                403,
                20403,
                "only the main account's auth token may read the metrics",
            ));
        }
        Ok(())
    }

    /// Checks, from the head alone, what every API request needs before its body is worth
    /// receiving: a valid `Host` and credentials (with the failed-login limiter). [`Api::handle`]
    /// checks both again, so a request admitted here is still refused there if that changed.
    pub fn admit(
        &self,
        store: &Store,
        config: &AppConfig,
        req: &Request<'_>,
        scheme: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<()> {
        api_base(config, req, scheme)?;
        self.limiter.authenticate(store, req, client)?;
        Ok(())
    }

    /// Answers one API request from the client address `client` (see [`crate::http::client_ip`]).
    pub fn handle(
        &self,
        store: &Store,
        config: &AppConfig,
        req: &mut Request<'_>,
        scheme: &str,
        client: Option<IpAddr>,
    ) -> Reply {
        match self.dispatch(store, config, req, scheme, client) {
            Ok(r) => r,
            Err(e) => {
                if e.disk_failure {
                    store.note_error(&StoreError::Poisoned);
                }
                e.into_reply()
            }
        }
    }

    fn dispatch(
        &self,
        store: &Store,
        config: &AppConfig,
        req: &mut Request<'_>,
        scheme: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<Reply> {
        let target = req.target;
        let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        let raw_path = raw_path.strip_suffix(".json").unwrap_or(raw_path);
        // A malformed escape matches no route (the 404 comes after authentication).
        let decoded = crate::model::urlencode::decode_path(raw_path);
        let path = decoded
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let mut allowed = Vec::new();
        let mut found = None;
        for route in ROUTES.iter().flat_map(|t| t.iter()) {
            if let Some(args) = match_pattern(route.pattern, &segments) {
                if route.method == req.method || (route.method == "GET" && req.method == "HEAD") {
                    found = Some((route, args));
                    break;
                }
                allowed.push(route.method);
            }
        }
        let base = api_base(config, req, scheme)?;
        let caller = self.limiter.authenticate(store, req, client)?;
        let Some((route, args)) = found else {
            if allowed.is_empty() {
                return Err(ApiError::not_found(decoded.as_deref().unwrap_or(raw_path)));
            }
            return Err(ApiError::method_not_allowed(&allowed.join(", ")));
        };
        let mut ctx = Ctx {
            store,
            config,
            builder: &self.builder,
            req,
            caller,
            base,
            path,
            query: Params::parse(raw_query),
        };
        (route.handler)(&mut ctx, &args)
    }
}

/// The prefix of absolute URLs in responses: `--public-url` when set, else the request's
/// scheme and `Host`, which must then be a valid `host[:port]` (400 otherwise).
fn api_base(config: &AppConfig, req: &Request<'_>, scheme: &str) -> ApiResult<String> {
    if let Some(url) = &config.public_url {
        return Ok(url.clone());
    }
    let host = req.header("host").map_or("localhost", str::trim);
    // SECURITY: the Host header is echoed into `url` and `next_page_url`, which helper
    // libraries follow with the account's credentials: only a well-formed host[:port] may be.
    if !crate::model::domain::is_host_port(host) {
        return Err(ApiError::invalid(
            "The Host header is not a valid host[:port]; set `serve --public-url` to fix the URLs the API returns",
        ));
    }
    Ok(format!("{scheme}://{host}"))
}

fn match_pattern(pattern: &str, segments: &[&str]) -> Option<Vec<String>> {
    let pat: Vec<&str> = pattern.split('/').skip(1).collect();
    if pat.len() != segments.len() {
        return None;
    }
    let mut args = Vec::new();
    for (p, s) in pat.iter().zip(segments) {
        if *p == "{}" {
            if s.is_empty() {
                return None;
            }
            args.push(s.to_string());
        } else if p != s {
            return None;
        }
    }
    Some(args)
}

/// A JSON reply.
pub fn json_reply(status: u16, value: &Value) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Body::Bytes(value.to_string().into_bytes()),
    }
}

/// 204 with an empty body.
pub fn no_content() -> Reply {
    Reply {
        status: 204,
        headers: Vec::new(),
        body: Body::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::match_pattern;

    #[test]
    fn patterns() {
        let segs = ["v1", "Services", "ZS1", "Environments"];
        assert_eq!(
            match_pattern("/v1/Services/{}/Environments", &segs),
            Some(vec!["ZS1".to_string()])
        );
        assert_eq!(match_pattern("/v1/Services/{}", &segs), None);
        assert_eq!(match_pattern("/v1/Services/{}/Assets", &segs), None);
    }
}
