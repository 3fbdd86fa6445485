//! `assetd sign`: print the `X-Twilio-Signature` for a URL, to fetch protected assets with curl.

use super::{CliResult, open_store};
use argh::FromArgs;
use std::path::PathBuf;

/// Print the X-Twilio-Signature header value for a URL (and optional form parameters).
#[derive(FromArgs)]
#[argh(subcommand, name = "sign")]
pub struct Args {
    /// the full URL the request will use, e.g. http://example-1234-dev.localhost:8080/secret.mp3
    #[argh(positional)]
    url: String,
    /// a form parameter NAME=VALUE of a POST request (repeatable)
    #[argh(option)]
    param: Vec<String>,
    /// the auth token to sign with
    #[argh(option)]
    token: Option<String>,
    /// data directory whose main account token signs (when no --token is given)
    #[argh(option)]
    data: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let token = match (args.token, args.data) {
        (Some(t), None) => t,
        (None, Some(dir)) => open_store(&dir)?.main_account()?.0.auth_token,
        (Some(_), Some(_)) => return Err("give either --token or --data, not both".into()),
        (None, None) => return Err("give --token TOKEN or --data DATADIR".into()),
    };
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
