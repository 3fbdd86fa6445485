//! `assetd share`: print an expiring link to a protected asset that anyone can open.

use super::{CliResult, remote};
use argh::FromArgs;

/// Print a link to a protected asset that anyone can open until it expires.
#[derive(FromArgs)]
#[argh(subcommand, name = "share")]
pub struct Args {
    /// the asset's URL, e.g. http://example-1234-dev.localhost:8080/invoice.pdf
    #[argh(positional, arg_name = "URL")]
    asset_url: String,
    /// how long the link works, such as 2s, 30m, 1h or 7d (default 1d; at most the server's
    /// --share-max-lifetime, 7d by default)
    #[argh(option, default = "String::from(\"1d\")")]
    expires_in: String,
    /// sign locally with this auth token (the owning account's) instead of asking the server
    #[argh(option)]
    token: Option<String>,
    /// the server to ask (default: $ASSETD_URL or http://127.0.0.1:8080)
    #[argh(option)]
    url: Option<String>,
    /// PEM certificates to verify an https server against (a private CA or a self-signed
    /// server certificate; default $ASSETD_CA_CERT, else the built-in public roots)
    #[argh(option)]
    ca_cert: Option<std::path::PathBuf>,
    /// account SID (default: $ASSETD_ACCOUNT_SID)
    #[argh(option)]
    account_sid: Option<String>,
    /// auth token or API key secret (default: $ASSETD_AUTH_TOKEN)
    #[argh(option)]
    auth_token: Option<String>,
}

pub fn run(args: Args) -> CliResult {
    let ttl = crate::model::time::parse_duration(&args.expires_in).ok_or_else(|| {
        format!(
            "--expires-in {:?} is not a duration such as 30m, 1h or 7d",
            args.expires_in
        )
    })?;
    if !(args.asset_url.starts_with("http://") || args.asset_url.starts_with("https://")) {
        return Err(format!("{} is not an http:// or https:// URL", args.asset_url).into());
    }
    let link = match args.token {
        Some(token) => {
            if args.url.is_some() || args.account_sid.is_some() || args.auth_token.is_some() {
                return Err("give either --token or the server's credentials, not both".into());
            }
            // The server refuses links valid for longer than its maximum when they are used;
            // offline, only the default maximum is known.
            let max = crate::http::DEFAULT_SHARE_MAX_SECS;
            if ttl > max {
                return Err("--expires-in is longer than the default share-link maximum of 7d; ask the server instead (without --token), which knows its --share-max-lifetime".into());
            }
            let expires = crate::store::now().saturating_add(ttl);
            crate::sign::share_url(&token, &args.asset_url, expires).ok_or_else(|| {
                format!(
                    "cannot sign {}: not a URL, or an empty token",
                    args.asset_url
                )
            })?
        }
        None => {
            let c = remote::connect(args.url, args.ca_cert, args.account_sid, args.auth_token)?;
            let r = c.post_form(
                "/v1/ShareLinks",
                &[("Url", &args.asset_url), ("Ttl", &ttl.to_string())],
            )?;
            r["url"]
                .as_str()
                .ok_or("the server's answer holds no url")?
                .to_string()
        }
    };
    println!("{link}");
    Ok(())
}
