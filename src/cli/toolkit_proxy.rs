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
    /// the assetd server, http:// or https:// (default $ASSETD_URL, else
    /// http://127.0.0.1:8080)
    #[argh(option)]
    url: Option<String>,
    /// PEM certificates to verify an https server against: a private CA or a self-signed
    /// server certificate (default: $ASSETD_CA_CERT, else the built-in public roots)
    #[argh(option)]
    ca_cert: Option<PathBuf>,
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
    let ca = args
        .ca_cert
        .or_else(|| super::remote::env_first(&["ASSETD_CA_CERT"]).map(Into::into));
    let upstream = Upstream::parse(&url, ca.as_deref())?;
    let dir = match args.dir {
        Some(d) => d,
        None => default_dir()?,
    };
    let proxy = Proxy::bind(args.listen, upstream.clone(), &dir)?;
    // A certificate the proxy cannot verify fails every request: say so now, in one line.
    upstream.check_certificate()?;
    if crate::client::in_clear(&url) {
        eprintln!(
            "assetd toolkit-proxy: warning: {url} is plain http to a non-private address: the auth token travels in clear (use https://)"
        );
    }
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
