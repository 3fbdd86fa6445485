//! What the remote commands share: where the server is, credentials, and lookups of services
//! and environments over the API.

use crate::client::{Client, ClientError, encode};
use serde_json::Value;

/// The server URL: the flag, else `$ASSETD_URL`, else `http://127.0.0.1:8080`.
pub fn url(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("ASSETD_URL").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", super::serve::DEFAULT_PORT))
}

pub(crate) fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|s| !s.is_empty()))
}

/// Connects with the flags, else `ASSETD_ACCOUNT_SID`/`ASSETD_AUTH_TOKEN`, else
/// `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN`.
///
/// `ca_flag` (else `$ASSETD_CA_CERT`) names the PEM certificates an https server is verified
/// against. Plain http to a host that is not loopback or private prints a one-line warning.
pub fn connect(
    url_flag: Option<String>,
    ca_flag: Option<std::path::PathBuf>,
    sid: Option<String>,
    token: Option<String>,
) -> Result<Client, ClientError> {
    let url = url(url_flag);
    let ca = ca_flag.or_else(|| env_first(&["ASSETD_CA_CERT"]).map(Into::into));
    let ca = ca.as_deref();
    // The URL is checked first: its error is the more useful one.
    let probe = Client::new(&url, "", "", ca)?;
    if probe.in_clear() {
        eprintln!(
            "assetd: warning: {url} is plain http to a non-private address: the auth token travels in clear (use https://)"
        );
    }
    let sid = sid.or_else(|| env_first(&["ASSETD_ACCOUNT_SID", "TWILIO_ACCOUNT_SID"]));
    let token = token.or_else(|| env_first(&["ASSETD_AUTH_TOKEN", "TWILIO_AUTH_TOKEN"]));
    match (sid, token) {
        (Some(s), Some(t)) => Client::new(&url, &s, &t, ca),
        _ => Err(ClientError {
            status: None,
            message: "no credentials: pass --account-sid and --auth-token, or set ASSETD_ACCOUNT_SID and ASSETD_AUTH_TOKEN (`assetd serve` printed them on its first start; `assetd account --data DIR` prints them again while the server is stopped)".into(),
        }),
    }
}

/// Connects with the shared `--url`/`--ca-cert`/`--account-sid`/`--auth-token` (see
/// `cli::RemoteOpts`), `url_fallback` (`.assetd.toml`) standing in for a missing `--url`.
pub fn connect_with(url_fallback: Option<String>) -> Result<Client, ClientError> {
    let o = super::remote_opts();
    connect(
        o.url.clone().or(url_fallback),
        o.ca_cert.clone().map(Into::into),
        o.account_sid.clone(),
        o.auth_token.clone(),
    )
}

/// The service with this unique name or SID; `None` when it does not exist.
pub fn find_service(c: &Client, name: &str) -> Result<Option<Value>, ClientError> {
    match c.get(&format!("/v1/Services/{}", encode(name))) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates the service; when another client created it meanwhile (409), that one.
pub fn create_service(c: &Client, name: &str) -> Result<Value, ClientError> {
    match c.post_form(
        "/v1/Services",
        &[("UniqueName", name), ("FriendlyName", name)],
    ) {
        Err(e) if e.status == Some(409) => service(c, name),
        other => other,
    }
}

/// The service, or an error naming it.
pub fn service(c: &Client, name: &str) -> Result<Value, ClientError> {
    find_service(c, name)?.ok_or_else(|| ClientError {
        status: Some(404),
        message: format!("no service named {name} on {}", c.base),
    })
}

/// The environment of `service_sid` with this domain suffix (`None` = production), or a
/// `ZE…` SID.
pub fn find_environment(
    c: &Client,
    service_sid: &str,
    suffix: Option<&str>,
) -> Result<Option<Value>, ClientError> {
    let envs = c.list(
        &format!("/v1/Services/{service_sid}/Environments"),
        "environments",
    )?;
    Ok(envs.into_iter().find(|e| match suffix {
        Some(s) if s.starts_with("ZE") && s.len() == 34 => e["sid"] == s,
        Some(s) => e["domain_suffix"]
            .as_str()
            .is_some_and(|d| d.eq_ignore_ascii_case(s)),
        None => e["domain_suffix"].is_null(),
    }))
}

/// The environment, created (with the toolkit's unique name) when missing, also when another
/// client creates it at the same time.
pub fn environment(
    c: &Client,
    service_sid: &str,
    suffix: Option<&str>,
) -> Result<Value, ClientError> {
    if let Some(e) = find_environment(c, service_sid, suffix)? {
        return Ok(e);
    }
    let unique = crate::model::domain::environment_unique_name(suffix);
    let mut params = vec![("UniqueName", unique.as_str())];
    if let Some(s) = suffix {
        params.push(("DomainSuffix", s));
    }
    match c.post_form(&format!("/v1/Services/{service_sid}/Environments"), &params) {
        // Created by another client meanwhile (409): use that one.
        Err(e) if e.status == Some(409) => find_environment(c, service_sid, suffix)?.ok_or(e),
        other => other,
    }
}

/// `{scheme}://{domain_name}[:port of the server URL]`, the scheme being the server URL's:
/// where an environment's assets are.
pub fn environment_url(c: &Client, env: &Value) -> String {
    let domain = env["domain_name"].as_str().unwrap_or("");
    let (scheme, hostport) = c.base.split_once("://").unwrap_or(("http", &c.base));
    let default_port = if scheme == "https" { "443" } else { "80" };
    let port = hostport
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, p)| p);
    match port {
        Some(p) if p != default_port => format!("{scheme}://{domain}:{p}"),
        _ => format!("{scheme}://{domain}"),
    }
}

/// A build's files: path → (version SID, visibility).
pub fn build_files(
    c: &Client,
    service_sid: &str,
    build_sid: &str,
) -> Result<std::collections::BTreeMap<String, (String, String)>, ClientError> {
    let b = c.get(&format!("/v1/Services/{service_sid}/Builds/{build_sid}"))?;
    Ok(b["asset_versions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
                    (s("path"), (s("sid"), s("visibility")))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// What changed from one build's files to another's: (added, changed, removed) paths.
pub type Files = std::collections::BTreeMap<String, (String, String)>;
pub fn diff(old: &Files, new: &Files) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = new
        .keys()
        .filter(|p| !old.contains_key(*p))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(p, v)| old.get(*p).is_some_and(|o| o != *v))
        .map(|(p, _)| p.clone())
        .collect();
    let removed = old
        .keys()
        .filter(|p| !new.contains_key(*p))
        .cloned()
        .collect();
    (added, changed, removed)
}

/// Up to five paths, then "and N more".
pub fn first_few(paths: &[String]) -> String {
    let shown: Vec<String> = paths
        .iter()
        .take(5)
        .map(|p| crate::model::text::escape_for_terminal(p))
        .collect();
    let mut s = shown.join(", ");
    if paths.len() > 5 {
        s.push_str(&format!(" and {} more", paths.len() - 5));
    }
    s
}

/// The domain suffix a CLI user means: `production` (any case) or empty is the environment
/// without a suffix, as `--production` and the toolkit's `--production` are.
pub fn suffix(s: &str) -> Option<&str> {
    if s.is_empty() || s.eq_ignore_ascii_case("production") {
        None
    } else {
        Some(s)
    }
}

/// Bytes in binary units (MB = 2^20, as the README's limits).
pub fn human_bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if f < K {
        format!("{n} B")
    } else if f < K * K {
        format!("{:.1} KiB", f / K)
    } else if f < K * K * K {
        format!("{:.1} MiB", f / K / K)
    } else {
        format!("{:.2} GiB", f / K / K / K)
    }
}
