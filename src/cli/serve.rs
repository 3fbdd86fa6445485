//! `assetd serve`: run the HTTP server on the data directory.

use super::{CliResult, PublicBase, default_data};
use crate::http::redirect::Redirect;
use crate::http::server::acme::{self, Acme, AcmeConfig, Challenge};
use crate::http::server::{Server, ServerConfig, Tls, self_signed};
use crate::http::{App, AppConfig};
use crate::store::Store;
use argh::FromArgs;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The port `serve` listens on by default (on 127.0.0.1).
pub const DEFAULT_PORT: u16 = 8080;

/// Run the server: assets on environment domains, the management host on any other name.
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
pub struct Args {
    /// address to listen on: IP:PORT, or PORT / :PORT for 127.0.0.1 (default 127.0.0.1:8080;
    /// port 0 picks a free port)
    #[argh(
        option,
        default = "SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))",
        from_str_fn(parse_listen)
    )]
    listen: SocketAddr,
    /// data directory (default: $ASSETD_DATA or ./assetd-data)
    #[argh(option, default = "default_data()")]
    data: PathBuf,
    /// environment domains are {service}-{digits}[-{suffix}].{base-domain} (default localhost)
    #[argh(option, default = "String::from(\"localhost\")")]
    base_domain: String,
    /// the port clients use, when a proxy or NAT changes it (only for printed URLs)
    #[argh(option)]
    public_port: Option<u16>,
    /// the scheme clients use for printed URLs (default https when serving TLS, else http)
    #[argh(option)]
    public_scheme: Option<String>,
    /// the management host's URL as clients reach it (scheme://host[:port], for example
    /// https://assets.example.org): the base of absolute URLs in API responses (default: the
    /// request's Host, when valid)
    #[argh(option)]
    public_url: Option<String>,
    /// address of a reverse proxy whose X-Forwarded-Proto is trusted (repeatable)
    #[argh(option)]
    trusted_proxy: Vec<IpAddr>,
    /// redb cache size in MiB (default 16)
    #[argh(option, default = "16")]
    cache_mb: usize,
    /// days after which builds never deployed and versions in no build are deleted (default 7;
    /// the pass runs hourly)
    #[argh(option, default = "7")]
    retention_days: u64,
    /// builds one account may create per hour through the API, as Twilio (default 100; 0: no
    /// limit)
    #[argh(option, default = "100")]
    builds_per_hour: u32,
    /// network threads (default: one per core)
    #[argh(option, default = "0")]
    threads: usize,
    /// most open connections; more wait in the listen queue (default 16384, lowered to what
    /// the descriptor limit allows)
    #[argh(option, default = "16384")]
    max_connections: usize,
    /// seconds a connection has to send a complete request head, counted from when it is
    /// accepted or its previous response is sent: bounds slow heads and idle keep-alive
    /// connections (default 10)
    #[argh(option, default = "10")]
    head_timeout: u64,
    /// seconds a request body or a response write may make no progress before the
    /// connection is cut (default 30)
    #[argh(option, default = "30")]
    io_timeout: u64,
    /// largest request head in KiB; larger heads get 431 (default 16)
    #[argh(option, default = "16")]
    max_head_kib: usize,
    /// serve HTTPS on --listen with this PEM certificate chain (leaf first; reloaded when
    /// the file changes or on SIGHUP)
    #[argh(option)]
    tls_cert: Option<PathBuf>,
    /// the PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[argh(option)]
    tls_key: Option<PathBuf>,
    /// serve HTTPS with a self-signed certificate made once in the data directory (for the
    /// base domain's wildcard, the management host and this box's addresses)
    #[argh(switch)]
    tls_self_signed: bool,
    /// also listen for plain HTTP here, redirecting every request to https (308), except
    /// /healthz and ACME's HTTP-01 challenges
    #[argh(option)]
    http_listen: Option<SocketAddr>,
    /// obtain and renew certificates automatically (ACME) for the management host
    /// (--public-host) and every environment domain; EMAIL is the CA account's contact
    #[argh(option)]
    acme_email: Option<String>,
    /// the ACME CA's directory URL (default: Let's Encrypt,
    /// https://acme-v02.api.letsencrypt.org/directory)
    #[argh(option)]
    acme_directory: Option<String>,
    /// a PEM root certificate to check the ACME CA's own HTTPS against (a private or test CA;
    /// default: the system's trust store)
    #[argh(option)]
    acme_ca_cert: Option<PathBuf>,
    /// how names are proven to the ACME CA: tls-alpn-01 on --listen (default; the CA connects
    /// to port 443) or http-01 on --http-listen (port 80)
    #[argh(option)]
    acme_challenge: Option<String>,
    /// renew automatic certificates this long before they expire, such as 30d or 12h (default
    /// 30d; certificates shorter-lived than that are renewed with a third of their life left)
    #[argh(option)]
    acme_renew_before: Option<String>,
    /// the management host's name, for its automatic certificate (default: the host of
    /// --public-url)
    #[argh(option)]
    public_host: Option<String>,
    /// write one line per request to FILE (reopened on SIGHUP), or to stdout with "-"
    #[argh(option)]
    access_log: Option<String>,
    /// the access log's format: combined (default) or json
    #[argh(option, default = "String::from(\"combined\")")]
    access_log_format: String,
    /// also serve /metrics without credentials on this address (default: off; /metrics on
    /// the management host needs the main account's credentials)
    #[argh(option)]
    metrics_listen: Option<SocketAddr>,
    /// longest a share link may be valid for, such as 12h or 7d (default 7d)
    #[argh(option, default = "String::from(\"7d\")")]
    share_max_lifetime: String,
}

pub fn run(args: Args) -> CliResult {
    let base_domain = args.base_domain.trim_end_matches('.').to_ascii_lowercase();
    if base_domain.is_empty()
        || !base_domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(format!("--base-domain {:?} is not a domain name", args.base_domain).into());
    }
    let public_url = args
        .public_url
        .as_deref()
        .map(parse_public_url)
        .transpose()?;
    let acme = acme_settings(&args, &base_domain, public_url.as_deref())?;
    let tls_wanted =
        args.tls_cert.is_some() || args.tls_key.is_some() || args.tls_self_signed || acme.is_some();
    let public_scheme = args
        .public_scheme
        .clone()
        .unwrap_or_else(|| if tls_wanted { "https" } else { "http" }.into());
    if public_scheme != "http" && public_scheme != "https" {
        return Err("--public-scheme must be http or https".into());
    }
    if args.tls_self_signed && (args.tls_cert.is_some() || args.tls_key.is_some()) {
        return Err("--tls-self-signed and --tls-cert/--tls-key exclude each other".into());
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if args.http_listen.is_some() && !tls_wanted {
        return Err(
            "--http-listen redirects to https: it needs --tls-cert/--tls-key, --tls-self-signed or --acme-email"
                .into(),
        );
    }
    if args.threads > 256 {
        return Err("--threads must be between 0 (one per core) and 256".into());
    }
    if args.max_connections == 0 {
        return Err("--max-connections must be at least 1".into());
    }
    if args.head_timeout == 0 || args.io_timeout == 0 {
        return Err("--head-timeout and --io-timeout must be at least 1 second".into());
    }
    if !(8..=1024).contains(&args.max_head_kib) {
        return Err("--max-head-kib must be between 8 and 1024".into());
    }
    let log_format: crate::http::access_log::Format = args.access_log_format.parse()?;
    let share_max_secs = crate::model::time::parse_duration(&args.share_max_lifetime)
        .ok_or("--share-max-lifetime must be a duration such as 12h or 7d")?;
    crate::metrics::mark_start();
    let store = Arc::new(Store::open(&args.data, args.cache_mb.max(1) * 1024 * 1024)?);
    let (account, created) = store.main_account()?;
    // Shown at once: should listening fail (a busy port), the account is not lost.
    if created {
        println!(
            "created the main account (`assetd account` shows it again while the server is stopped):"
        );
        println!("  ASSETD_ACCOUNT_SID={}", account.sid);
        println!("  ASSETD_AUTH_TOKEN={}", account.auth_token);
    }
    crate::http::api::staging::clean(&store);
    // Everything that needs a file descriptor happens before the listener exists: once it
    // does, connections are accepted and a flood of them may take every descriptor left
    // (regression: `keeps_accepting_after_file_descriptors_ran_out` saw the signal pipe fail
    // with EMFILE after "listening on" and the whole server exit).
    // SIGHUP reopens the access log (logrotate) and reloads the TLS certificate.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    let access_log = match args.access_log.as_deref() {
        None => None,
        Some(target) => {
            use crate::http::access_log::{AccessLog, Target};
            let t = match target {
                "-" => Target::Stdout,
                path => Target::File(path.into()),
            };
            Some(
                AccessLog::start(t, log_format)
                    .map_err(|e| format!("cannot open the access log {target}: {e}"))?,
            )
        }
    };
    let metrics_server = match args.metrics_listen {
        None => None,
        Some(a) => {
            // One small runtime: a scrape every few seconds.
            let mut c = ServerConfig::new(a);
            (c.threads, c.blocking_threads, c.max_connections) = (1, 2, 64);
            let bound = Server::bind(c)
                .map_err(|e| format!("cannot listen on {a} (--metrics-listen): {e}"))?;
            Some(bound)
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls::from_files(cert, key)?),
        _ if args.tls_self_signed => {
            let made = self_signed::load_or_create(
                &args.data,
                &base_domain,
                public_url.as_deref(),
                args.listen.ip(),
            )?;
            let what = if made.created { "made" } else { "using" };
            println!(
                "TLS: {what} self-signed certificate {} (SHA-256 fingerprint {}); clients trust it with --ca-cert {}",
                made.cert.display(),
                made.fingerprint,
                made.cert.display()
            );
            Some(Tls::from_files(&made.cert, &made.key)?)
        }
        _ if acme.is_some() => Some(Tls::without_files()?),
        _ => None,
    };
    // TLS-ALPN-01 validation handshakes come to the HTTPS listener.
    let tls = match (tls, &acme) {
        (Some(t), Some((_, c))) if c.challenge == Challenge::TlsAlpn01 => Some(t.with_acme_alpn()?),
        (t, _) => t,
    };
    let mut config = ServerConfig::new(args.listen);
    config.threads = args.threads;
    config.max_connections = args.max_connections;
    config.head_timeout = Duration::from_secs(args.head_timeout);
    config.io_timeout = Duration::from_secs(args.io_timeout);
    config.max_head_bytes = args.max_head_kib * 1024;
    // The largest body the API takes is an asset upload (25 MB plus its multipart framing).
    config.max_body_bytes = crate::model::limits::MAX_SERVED_BYTES + 1024 * 1024;
    config.spool_dir = Some(args.data.join("tmp"));
    config.tls = tls.clone();
    config.plain_listen = args.http_listen;
    let engine_stats = config.stats.clone();
    let server =
        Server::bind(config).map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = server.local_addr();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public = PublicBase {
        scheme: public_scheme.clone(),
        base_domain: base_domain.clone(),
        port: Some(args.public_port.unwrap_or(addr.port())),
    };
    // Best effort: on a full disk the server still starts and serves what is deployed.
    if let Err(e) = store.write(|tx| tx.set_setting("public_base", &public.encode())) {
        eprintln!("assetd: warning: cannot record the public URL base ({e}); serving anyway");
    }
    println!("data directory: {}", args.data.display());
    if let Some(url) = &public_url {
        println!("public URL: {url} (the base of URLs in API responses)");
    }
    let path_style_base = public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let labels = store.read()?.labels()?;
    if labels.is_empty() {
        println!(
            "no environments yet: `assetd deploy DIR --service NAME` publishes a project (credentials: the ASSETD_ variables)"
        );
    }
    // On `localhost` the host-style name resolves only in curl and browsers: the path-style
    // URL, which every client reaches, comes first there.
    for (label, deployed) in labels {
        let host = public.environment_url(&label);
        let path = format!("{path_style_base}/e/{label}/");
        let idle = if deployed { "" } else { " (nothing deployed)" };
        if base_domain == "localhost" {
            println!("environment {path}{idle}  (host-style for curl and browsers: {host})");
        } else {
            println!("environment {host}{idle}  (path-style: {path})");
        }
    }
    // Every step that can fail happens before the last startup line: scripts and tests that
    // wait for it may start a flood of requests at once.
    let handle = server.shutdown_handle();
    let (reload_tx, reload_rx) = std::sync::mpsc::channel::<()>();
    if let Some(tls) = &tls {
        tls.spawn_reloader(reload_rx, Duration::from_secs(2))?;
    }
    let metrics_handle = metrics_server.as_ref().map(Server::shutdown_handle);
    let reopen = access_log.as_ref().map(|(_, r)| r.clone());
    std::thread::Builder::new()
        .name("assetd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                // SIGHUP: reopen the access log (logrotate) and reload the TLS certificate;
                // anything else stops.
                if signal == signal_hook::consts::SIGHUP {
                    reopen.iter().for_each(|r| r.request());
                    let _ = reload_tx.send(());
                    continue;
                }
                eprintln!("assetd: shutting down (finishing in-flight requests)");
                metrics_handle.iter().for_each(|h| h.shutdown());
                handle.shutdown();
                break;
            }
        })?;
    let acme = match acme {
        None => None,
        Some((host, config)) => {
            let tls = tls.clone().ok_or("ACME needs the TLS listener")?;
            println!(
                "ACME: certificates from {} for {host} and every environment domain ({}), kept in {}",
                config.directory,
                config.challenge,
                args.data.join("acme").display()
            );
            let names = acme_names(store.clone(), host.clone(), base_domain.clone());
            Some(Acme::start(config, tls, &host, names)?)
        }
    };
    let retention_secs = args.retention_days.saturating_mul(24 * 3600);
    spawn_retention(store.clone(), retention_secs)?;
    let app = App::new(
        store,
        AppConfig {
            base_domain,
            trusted_proxies: args.trusted_proxy,
            retention_secs,
            builds_per_hour: args.builds_per_hour,
            public_url,
            share_max_secs,
        },
    )?
    .with_engine_stats(engine_stats);
    let app = match &acme {
        Some(a) => app.with_acme(a.clone()),
        None => app,
    };
    let app = Arc::new(match access_log {
        Some((log, _)) => app.with_access_log(log),
        None => app,
    });
    if let Some(ms) = metrics_server {
        println!("metrics on http://{}/metrics", ms.local_addr());
        let only = Arc::new(crate::http::MetricsOnly(app.clone()));
        std::thread::Builder::new()
            .name("assetd-metrics".into())
            .spawn(move || {
                if let Err(e) = ms.run(only) {
                    eprintln!("assetd: the metrics listener stopped: {e}");
                }
            })?;
    }
    let redirect = Redirect {
        https_port: args.public_port.unwrap_or(addr.port()),
        acme,
    };
    if let Some(plain) = server.plain_addr() {
        println!("redirecting http://{plain} to https");
    }
    // Last startup line: scripts and tests wait for it.
    println!("listening on {scheme}://{addr}");
    server.run_pair(app, Arc::new(redirect))?;
    Ok(())
}

/// Checks the `--acme-*` and `--public-host` options: `None` without `--acme-email`, else the
/// management host's name and the manager's settings. Errors are one line.
fn acme_settings(
    args: &Args,
    base_domain: &str,
    public_url: Option<&str>,
) -> Result<Option<(String, AcmeConfig)>, String> {
    let Some(email) = &args.acme_email else {
        let others = args.acme_directory.is_some()
            || args.acme_ca_cert.is_some()
            || args.acme_challenge.is_some()
            || args.acme_renew_before.is_some();
        if others {
            return Err("--acme-directory, --acme-ca-cert, --acme-challenge and --acme-renew-before need --acme-email".into());
        }
        return Ok(None);
    };
    let (local, domain) = email.split_once('@').unwrap_or(("", ""));
    if local.is_empty()
        || !domain.contains('.')
        || email.len() > 254
        || email
            .bytes()
            .any(|b| b <= b' ' || b == b'<' || b == b'>' || b == b',')
    {
        return Err(format!("--acme-email {email:?} is not an email address"));
    }
    let from_url = public_url
        .and_then(|u| u.split_once("://"))
        .map(|(_, h)| crate::http::strip_port(h).to_string());
    let host = args
        .public_host
        .clone()
        .or(from_url)
        .ok_or("--acme-email needs the management host's name: --public-host NAME (or --public-url https://NAME)")?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !acme::is_dns_name(&host) {
        return Err(format!(
            "the management host {host:?} (--public-host or --public-url) is not a DNS name a CA can certify"
        ));
    }
    if !acme::is_dns_name(&format!("x.{base_domain}"))
        || base_domain == "localhost"
        || !base_domain.contains('.')
    {
        return Err(format!(
            "--acme-email needs a public --base-domain (not {base_domain:?}): environment domains get certificates under it"
        ));
    }
    let directory = args
        .acme_directory
        .clone()
        .unwrap_or_else(|| acme::LETS_ENCRYPT.into());
    if !directory.starts_with("https://") || directory.len() <= "https://".len() {
        return Err(format!(
            "--acme-directory {directory:?} must be an https:// URL"
        ));
    }
    if let Some(ca) = &args.acme_ca_cert {
        acme::check_ca_cert(ca)?;
    }
    let challenge: Challenge = args
        .acme_challenge
        .as_deref()
        .unwrap_or("tls-alpn-01")
        .parse()?;
    if challenge == Challenge::Http01 && args.http_listen.is_none() {
        return Err(
            "--acme-challenge http-01 needs --http-listen (the CA connects to port 80)".into(),
        );
    }
    let renew = args.acme_renew_before.as_deref().unwrap_or("30d");
    let renew_before = crate::model::time::parse_duration(renew)
        .ok_or("--acme-renew-before must be a duration such as 30d or 12h")?;
    Ok(Some((
        host,
        AcmeConfig {
            email: email.clone(),
            directory,
            ca_cert: args.acme_ca_cert.clone(),
            data: args.data.clone(),
            renew_before: Duration::from_secs(renew_before),
            challenge,
        },
    )))
}

/// The names ACME keeps certificates for: `host` and every environment's domain.
fn acme_names(store: Arc<Store>, host: String, base_domain: String) -> acme::Names {
    Box::new(move || {
        let labels = store
            .read()
            .and_then(|r| r.labels())
            .map_err(|e| e.to_string())?;
        let mut names = vec![host.clone()];
        names.extend(
            labels
                .into_iter()
                .map(|(label, _)| format!("{label}.{base_domain}")),
        );
        Ok(names)
    })
}

/// `--listen`: `IP:PORT`, or `PORT` / `:PORT` meaning 127.0.0.1.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let port = s.strip_prefix(':').unwrap_or(s);
    if let Ok(p) = port.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not IP:PORT, PORT or :PORT (for example 127.0.0.1:8080)"))
}

/// Checks `--public-url`: `http` or `https`, a valid host[:port], nothing after it but an
/// optional `/`. Returns it without the trailing `/`.
fn parse_public_url(url: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "--public-url {url:?} must be http://HOST[:PORT] or https://HOST[:PORT], with no path"
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if !crate::model::domain::is_host_port(host) {
        return Err(bad());
    }
    Ok(format!("{scheme}://{host}"))
}

/// Runs the retention pass once an hour in the background; failures are logged, not fatal.
fn spawn_retention(store: Arc<Store>, max_age_secs: u64) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("assetd-retention".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                let pass = store.write(|tx| tx.retention(max_age_secs));
                if let Ok(r) = &pass {
                    crate::metrics::get().retention(r.bytes_reclaimed);
                }
                match pass {
                    Ok(r) if r.blobs_reclaimed + r.builds_deleted + r.versions_deleted > 0 => {
                        eprintln!(
                            "assetd: retention removed {} builds, {} versions, {} blobs ({} bytes)",
                            r.builds_deleted,
                            r.versions_deleted,
                            r.blobs_reclaimed,
                            r.bytes_reclaimed
                        )
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("assetd: retention pass failed: {e}"),
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_public_url;

    #[test]
    fn public_urls() {
        assert_eq!(
            parse_public_url("https://assets.example.org/").unwrap(),
            "https://assets.example.org"
        );
        assert_eq!(
            parse_public_url("http://10.0.0.7:8080").unwrap(),
            "http://10.0.0.7:8080"
        );
        for bad in [
            "assets.example.org",
            "ftp://a",
            "http://a/b",
            "http://a?x",
            "http://x\"><script>",
            "http://",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }
}
