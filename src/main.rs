//! The `assetd` binary: parse the command line, run it, print the error chain, set the exit code.

/// mimalloc rather than the C library's allocator: a request allocates a few dozen small
/// blocks, and glibc's malloc/free were a third of the hot path's instructions (musl's, on the
/// static builds, is slower still).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
