//! `assetd sign`: print the `X-Twilio-Signature` for a URL, to fetch protected assets with curl.

use super::{CliResult, remote};
use argh::FromArgs;
use std::path::PathBuf;

/// Print the X-Twilio-Signature header value for a URL (and optional form parameters), signed
/// with --token, else $ASSETD_AUTH_TOKEN (or $TWILIO_AUTH_TOKEN), else the main account of --data.
#[derive(FromArgs)]
#[argh(subcommand, name = "sign")]
pub struct Args {
    /// the full URL the request will use, e.g. http://example-1234-dev.localhost:8080/secret.mp3
    #[argh(positional)]
    url: String,
    /// a form parameter NAME=VALUE of a POST request (repeatable)
    #[argh(option)]
    param: Vec<String>,
    /// the auth token to sign with (default: $ASSETD_AUTH_TOKEN or $TWILIO_AUTH_TOKEN)
    #[argh(option)]
    token: Option<String>,
    /// data directory whose main account token signs (offline: the server must be stopped)
    #[argh(option)]
    data: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let env = || remote::env_first(&["ASSETD_AUTH_TOKEN", "TWILIO_AUTH_TOKEN"]);
    let token = match (args.token, args.data) {
        (Some(t), None) => t,
        (None, Some(dir)) => {
            let store = super::operate::open(&dir, "sign")?;
            let acct = store.read()?.main_account()?;
            acct.ok_or_else(|| format!("{} holds no main account yet", dir.display()))?
                .auth_token
        }
        (Some(_), Some(_)) => return Err("give either --token or --data, not both".into()),
        (None, None) => env().ok_or(
            "no token: give --token TOKEN, set $ASSETD_AUTH_TOKEN, or give --data DATADIR (server stopped)",
        )?,
    };
    if token.trim().is_empty() {
        return Err("the auth token is empty: a signature needs the account's auth token".into());
    }
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        return Err(format!("{} is not an http:// or https:// URL", args.url).into());
    }
    let mut params = Vec::new();
    for p in args.param {
        match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => params.push((k.to_string(), v.to_string())),
            _ => return Err(format!("--param {p:?} is not NAME=VALUE").into()),
        }
    }
    println!("{}", crate::sign::compute(&token, &args.url, &params));
    Ok(())
}
