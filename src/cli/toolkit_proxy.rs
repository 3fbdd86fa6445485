//! `assetd toolkit-proxy`: the bridge that lets Twilio's Serverless Toolkit deploy to assetd
//! unmodified (see [`crate::toolkit_proxy`]).

use super::CliResult;
use crate::toolkit_proxy::{Proxy, Upstream, default_dir, shell_quote};
use argh::FromArgs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Let twilio-run / twilio serverless:deploy talk to assetd: a loopback HTTPS proxy for serverless.twilio.com.
#[derive(FromArgs)]
#[argh(subcommand, name = "toolkit-proxy")]
pub struct Args {
    /// the assetd server (default $ASSETD_URL, else http://127.0.0.1:8080)
    #[argh(option)]
    url: Option<String>,
    /// loopback address to listen on (default 127.0.0.1:8443; port 0 picks a free one)
    #[argh(option, default = "\"127.0.0.1:8443\".parse().unwrap()")]
    listen: SocketAddr,
    /// where the local CA is kept (default $XDG_CONFIG_HOME/assetd/toolkit-proxy, else
    /// ~/.config/assetd/toolkit-proxy)
    #[argh(option)]
    dir: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let url = super::remote::url(args.url);
    let upstream = Upstream::parse(&url)?;
    let dir = match args.dir {
        Some(d) => d,
        None => default_dir()?,
    };
    let proxy = Proxy::bind(args.listen, upstream, &dir)?;
    let addr = proxy.local_addr()?;
    let ca = shell_quote(&proxy.ca_cert().to_string_lossy());
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "assetd toolkit-proxy: serverless.twilio.com and serverless-upload.twilio.com -> {}; in the toolkit's shell run:",
        url
    )?;
    writeln!(
        out,
        "export HTTP_PROXY=http://{addr} NODE_EXTRA_CA_CERTS={ca}"
    )?;
    out.flush()?;
    drop(out);
    proxy.run()?;
    Ok(())
}
