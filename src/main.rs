//! The `assetd` binary: parse the command line, run it, print the error chain, set the exit code.

fn main() {
    let code = match assetd::cli::run() {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("assetd: {err}");
            1
        }
    };
    std::process::exit(code);
}
