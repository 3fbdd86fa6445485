//! `assetd account`: print the main account's SID and auth token (offline), or the account of
//! the credentials given (`--url`, while the server runs).

use super::{CliResult, default_data, remote};
use argh::FromArgs;
use std::path::PathBuf;

/// Print the main account's SID and auth token from the data directory (never creates one), or
/// with --url the account of the credentials given, through the running server.
#[derive(FromArgs)]
#[argh(subcommand, name = "account")]
pub struct Args {
    /// data directory (default: $ASSETD_DATA or ./assetd-data)
    #[argh(option, default = "default_data()")]
    data: PathBuf,
    /// print one JSON object instead of shell assignments
    #[argh(switch)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let (sid, token, status) = if super::remote_opts().url.is_some() {
        let user = super::remote_opts()
            .account_sid
            .clone()
            .or_else(|| remote::env_first(&["ASSETD_ACCOUNT_SID", "TWILIO_ACCOUNT_SID"]))
            .unwrap_or_default();
        if user.starts_with("SK") {
            return Err("with an API key, `assetd account --url` cannot show an auth token: give the account SID and auth token".into());
        }
        let c = remote::connect_with(None)?;
        let owner = crate::client::encode(&user);
        let a = c.get(&format!("/2010-04-01/Accounts/{owner}.json"))?;
        let s = |k: &str| crate::model::text::escape_for_terminal(a[k].as_str().unwrap_or(""));
        (s("sid"), s("auth_token"), Some(s("status")))
    } else {
        let store = super::operate::open(&args.data, "account")?;
        let acct = store
            .read()?
            .main_account()?
            .ok_or_else(|| format!("{} holds no main account yet", args.data.display()))?;
        (acct.sid, acct.auth_token, None)
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({"account_sid": sid, "auth_token": token, "status": status})
        );
    } else {
        println!("ASSETD_ACCOUNT_SID={sid}");
        println!("ASSETD_AUTH_TOKEN={token}");
    }
    Ok(())
}
