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

// Parsed once per run: the size of `serve`'s many flags costs nothing (argh cannot box them).
#[allow(clippy::large_enum_variant)]
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
    let argv = normalize_argv(argv)?;
    let (argv, remote) = take_remote_opts(argv)?;
    let remote_command = remote.is_some();
    let _ = REMOTE.set(remote.unwrap_or_default());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let top = match TopLevel::from_args(&["assetd"], &argv) {
        Ok(top) => top,
        // `--help` and `help`: the full text, exit 0 (with the shared options of a remote
        // command, which argh does not know).
        Err(argh::EarlyExit {
            output,
            status: Ok(()),
        }) => {
            print!("{output}");
            if remote_command {
                println!("\nServer options (shared by every command that talks to a server):");
                for (flag, help) in REMOTE_FLAGS {
                    println!("  {flag:<18}{help}");
                }
            }
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

/// `--url`, `--ca-cert`, `--account-sid` and `--auth-token`, which every command that talks to a server
/// takes: declared once, here (argh cannot share fields between commands). They are taken out
/// of the arguments before argh parses the command, and listed under its `--help`.
#[derive(Default)]
pub(crate) struct RemoteOpts {
    pub url: Option<String>,
    /// PEM certificates to verify an https server against (`--ca-cert`; the default,
    /// `$ASSETD_CA_CERT`, is applied by `remote::connect`).
    pub ca_cert: Option<String>,
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
}

const REMOTE_FLAGS: &[(&str, &str)] = &[
    (
        "--url",
        "server URL (default: $ASSETD_URL, else http://127.0.0.1:8080; for backup, verify, gc and account: go through the server instead of --data)",
    ),
    (
        "--ca-cert",
        "PEM certificates to verify an https server against: a private CA or a self-signed server certificate (default: $ASSETD_CA_CERT, else the built-in public roots)",
    ),
    (
        "--account-sid",
        "account SID or API key SID (default: $ASSETD_ACCOUNT_SID, else $TWILIO_ACCOUNT_SID)",
    ),
    (
        "--auth-token",
        "auth token or API key secret (default: $ASSETD_AUTH_TOKEN, else $TWILIO_AUTH_TOKEN)",
    ),
];

/// The commands that take [`RemoteOpts`].
const REMOTE_COMMANDS: &[&str] = &[
    "deploy", "list", "promote", "rollback", "backup", "verify", "gc", "account",
];

static REMOTE: std::sync::OnceLock<RemoteOpts> = std::sync::OnceLock::new();

/// The shared server options of this run.
pub(crate) fn remote_opts() -> &'static RemoteOpts {
    REMOTE.get_or_init(RemoteOpts::default)
}

/// Takes [`REMOTE_FLAGS`] out of a remote command's arguments (`None`: not a remote command).
fn take_remote_opts(argv: Vec<String>) -> Result<(Vec<String>, Option<RemoteOpts>), String> {
    if !argv
        .first()
        .is_some_and(|c| REMOTE_COMMANDS.contains(&c.as_str()))
    {
        return Ok((argv, None));
    }
    let mut opts = RemoteOpts::default();
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let slot = match a.as_str() {
            "--" => {
                out.push(a);
                out.extend(it);
                break;
            }
            "--url" => &mut opts.url,
            "--ca-cert" => &mut opts.ca_cert,
            "--account-sid" => &mut opts.account_sid,
            "--auth-token" => &mut opts.auth_token,
            _ => {
                out.push(a);
                continue;
            }
        };
        let value = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        if slot.replace(value).is_some() {
            return Err(format!("{a} was given twice"));
        }
    }
    Ok((out, Some(opts)))
}

/// The subcommand names, for usage and "did you mean".
const COMMANDS: &[&str] = &[
    "serve",
    "deploy",
    "list",
    "promote",
    "rollback",
    "backup",
    "restore",
    "verify",
    "gc",
    "import",
    "account",
    "sign",
    "share",
    "toolkit-proxy",
    "help",
];

/// What argh lacks, done once for every command: `-h` is `--help`; `--version`/`-V` print the
/// version; bare `assetd` prints usage on stderr and exits 2; a mistyped command gets a "did
/// you mean".
fn normalize_argv(argv: Vec<String>) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    match argv.first().map(String::as_str) {
        None => {
            let usage = match TopLevel::from_args(&["assetd"], &["--help"]) {
                Err(e) => e.output,
                Ok(_) => String::new(),
            };
            eprint!("{usage}");
            std::process::exit(2);
        }
        Some("--version" | "-V" | "version") => {
            println!("assetd {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        Some(cmd) if !cmd.starts_with('-') && !COMMANDS.contains(&cmd) => {
            let hint = COMMANDS
                .iter()
                .map(|c| (edit_distance(cmd, c), *c))
                .filter(|(d, c)| *d <= 2 || c.starts_with(cmd))
                .min()
                .map(|(_, c)| format!(": did you mean `assetd {c}`?"))
                .unwrap_or_else(|| format!(" (commands: {})", COMMANDS.join(", ")));
            return Err(format!("unknown command {cmd:?}{hint}").into());
        }
        _ => {}
    }
    // `-h` anywhere before a `--` is `--help` (argh knows only the long form).
    let mut out = Vec::with_capacity(argv.len());
    let mut rest = false;
    for a in argv {
        rest |= a == "--";
        out.push(if !rest && a == "-h" {
            "--help".into()
        } else {
            a
        });
    }
    Ok(out)
}

/// Levenshtein distance (for "did you mean").
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
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
