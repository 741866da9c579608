//! `openclaw`: a tiny adapter. Parse the command line, dispatch, map the outcome to an exit code.
use std::process::ExitCode;

/// Notes large frees so the gateway hands that memory back to the kernel (issue 20).
#[global_allocator]
static ALLOC: openclaw::sys::unix::NoteLargeFrees = openclaw::sys::unix::NoteLargeFrees;

fn main() -> ExitCode {
    openclaw::cli::main()
}
