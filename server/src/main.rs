//! The `taizhang` binary: parses the command line and runs it (see `cli`).

fn main() -> std::process::ExitCode {
    taizhang::cli::run()
}
