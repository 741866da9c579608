//! The network service: listener acquisition, the accept loop, HTTP and WebSocket protocol v4.

use crate::cli::RunArgs;
use crate::config::paths::Paths;
use crate::error::{Error, Exit, Result};

/// `openclaw gateway run`: runs the gateway in the foreground until SIGTERM/SIGINT.
pub fn run_daemon(_paths: &Paths, _args: RunArgs) -> Result<Exit> {
    Err(Error::Msg("gateway run: not implemented yet".into()))
}
