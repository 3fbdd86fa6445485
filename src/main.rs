//! The `assetd` binary: parse the command line, run it, print the error chain, set the exit code.

fn main() {
    let code = match assetd::cli::run() {
        Ok(()) => 0,
        Err(err) => {
            // SECURITY: error messages may quote stored names or server replies.
            let line = assetd::model::text::escape_for_terminal(&err.to_string());
            eprintln!("assetd: {line}");
            1
        }
    };
    std::process::exit(code);
}
