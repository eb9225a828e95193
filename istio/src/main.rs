//! The `stickyctl` binary: parses the command line and runs it.

fn main() -> std::process::ExitCode {
    stickyctl::cli::main()
}
