//! The command line: argh only. One file per subcommand; each parses its flags and calls into
//! the library.

mod account;
mod deploy;
mod import;
mod manage;
mod operate;
mod remote;
mod serve;
mod share;
mod sign;
mod toolkit_proxy;

use argh::FromArgs;
use std::path::PathBuf;

/// assetd: host assets like Twilio Serverless Assets, on a box you own.
#[derive(FromArgs)]
struct TopLevel {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Serve(serve::Args),
    Deploy(deploy::Args),
    List(manage::ListArgs),
    Promote(manage::PromoteArgs),
    Rollback(manage::RollbackArgs),
    Backup(operate::BackupArgs),
    Restore(operate::RestoreArgs),
    Verify(operate::VerifyArgs),
    Gc(operate::GcArgs),
    Import(import::Args),
    Account(account::Args),
    Sign(sign::Args),
    Share(share::Args),
    ToolkitProxy(toolkit_proxy::Args),
}

/// A boxed error whose `Display` is the one-line message printed by `main`.
pub type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Parses the process arguments and runs the subcommand.
pub fn run() -> CliResult {
    exit_quietly_on_closed_stdout();
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let top = match TopLevel::from_args(&["assetd"], &argv) {
        Ok(top) => top,
        // `--help` and `help`: the full text, exit 0.
        Err(argh::EarlyExit {
            output,
            status: Ok(()),
        }) => {
            print!("{output}");
            return Ok(());
        }
        // A parse error: one line, as every other error (argh's text spans several).
        Err(argh::EarlyExit {
            output,
            status: Err(()),
        }) => return Err(parse_error(&output).into()),
    };
    match top.command {
        Command::Serve(a) => serve::run(a),
        Command::Deploy(a) => deploy::run(a),
        Command::List(a) => manage::list(a),
        Command::Promote(a) => manage::promote(a),
        Command::Rollback(a) => manage::rollback(a),
        Command::Backup(a) => operate::backup(a),
        Command::Restore(a) => operate::restore(a),
        Command::Verify(a) => operate::verify(a),
        Command::Gc(a) => operate::gc(a),
        Command::Import(a) => import::run(a),
        Command::Account(a) => account::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Share(a) => share::run(a),
        Command::ToolkitProxy(a) => toolkit_proxy::run(a),
    }
}

/// `assetd list … | head -1`: Rust ignores SIGPIPE, so printing to a closed pipe panics with a
/// backtrace. Exit at once with the status a SIGPIPE death gives (141), as other tools do;
/// every other panic keeps the default report.
fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("os error 32") {
            std::process::exit(141);
        }
        default(info)
    }));
}

/// argh's parse error text as one line, with where to find help.
fn parse_error(output: &str) -> String {
    let text: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Run "))
        .collect();
    let text = text.join(" ");
    let text = if text.is_empty() {
        "invalid arguments".to_string()
    } else {
        text
    };
    format!("{text} (see `assetd help` or `assetd COMMAND --help`)")
}

/// The data directory: `--data`, else `$ASSETD_DATA`, else `./assetd-data`.
pub(crate) fn default_data() -> PathBuf {
    std::env::var_os("ASSETD_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("assetd-data"))
}

/// Opens the store with the default cache size.
pub(crate) fn open_store(
    data: &std::path::Path,
) -> Result<crate::store::Store, Box<dyn std::error::Error>> {
    Ok(crate::store::Store::open(
        data,
        crate::store::DEFAULT_CACHE_BYTES,
    )?)
}

/// Where asset URLs point: scheme, base domain and port, as `serve` last recorded them.
pub(crate) struct PublicBase {
    pub scheme: String,
    pub base_domain: String,
    pub port: Option<u16>,
}

impl PublicBase {
    pub(crate) fn encode(&self) -> String {
        format!(
            "{} {} {}",
            self.scheme,
            self.base_domain,
            self.port.map(|p| p.to_string()).unwrap_or_default()
        )
    }

    pub(crate) fn decode(s: &str) -> Option<PublicBase> {
        let mut it = s.split(' ');
        let scheme = it.next()?.to_string();
        let base_domain = it.next()?.to_string();
        let port = it.next().and_then(|p| p.parse().ok());
        Some(PublicBase {
            scheme,
            base_domain,
            port,
        })
    }

    /// `scheme://label.base[:port]`.
    pub(crate) fn environment_url(&self, label: &str) -> String {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        match self.port {
            Some(p) if p != default_port => {
                format!("{}://{label}.{}:{p}", self.scheme, self.base_domain)
            }
            _ => format!("{}://{label}.{}", self.scheme, self.base_domain),
        }
    }
}
