//! `assetd account`: print the main account's SID and auth token.

use super::{CliResult, default_data, open_store};
use argh::FromArgs;
use std::path::PathBuf;

/// Print the main account's SID and auth token (creating the account in an empty data directory).
#[derive(FromArgs)]
#[argh(subcommand, name = "account")]
pub struct Args {
    /// data directory (default: $ASSETD_DATA or ./assetd-data)
    #[argh(option, default = "default_data()")]
    data: PathBuf,
}

pub fn run(args: Args) -> CliResult {
    let store = open_store(&args.data)?;
    let (acct, _) = store.main_account()?;
    println!("ASSETD_ACCOUNT_SID={}", acct.sid);
    println!("ASSETD_AUTH_TOKEN={}", acct.auth_token);
    Ok(())
}
