//! `openclaw`: a tiny adapter. Parse the command line, dispatch, map the outcome to an exit code.
use std::process::ExitCode;

fn main() -> ExitCode {
    openclaw::cli::main()
}
