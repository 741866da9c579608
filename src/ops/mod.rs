//! The client library of the operator verbs (the client verbs, doctor, the service verbs):
//! target resolution ([`conn`]), the rpc session (`rpc`), reach/probe ([`probe`]), status
//! gathering ([`status`]) and the logs tail/follow engine (`logs`). It prints nothing but
//! what a sink or `print_json` is handed.
//!
//! Every client command resolves its target once (`conn::resolve`: `--url` + explicit
//! credentials, or the profile's local gateway), opens one WebSocket on a current-thread
//! runtime (`rpc`), sends the fewest RPCs it needs and exits: no fixed waits, so commands
//! answer in milliseconds against a local gateway.
pub mod conn;
pub(crate) mod logs;
pub mod preflight;
pub(crate) mod probe;
pub(crate) mod rpc;
pub(crate) mod status;

use serde_json::Value;

use self::conn::ConnOptions;
use crate::config::Config;
use crate::config::paths::{Paths, ProcessEnv};
use crate::error::Result;

/// ` --dev`, ` --profile NAME` or nothing: for next-step hints that must target the same
/// gateway as the command that printed them.
pub(crate) fn profile_flag(paths: &Paths) -> String {
    match (&paths.profile, paths.dev) {
        (_, true) => " --dev".into(),
        (Some(p), false) => format!(" --profile {p}"),
        (None, false) => String::new(),
    }
}

/// Resolves the target of a client command. The config is loaded only when it is needed
/// (no `--url`); a broken config is an error naming file:line:column (exit 78).
pub(crate) fn target(paths: &Paths, conn: &ConnOptions) -> Result<conn::Target> {
    if conn.url.is_some() {
        return Ok(conn::resolve(paths, conn, None, &ProcessEnv)?);
    }
    let cfg = Config::load(&paths.config_path)?;
    Ok(conn::resolve(paths, conn, Some(&cfg), &ProcessEnv)?)
}

/// Prints a JSON value the way upstream does (2-space indent).
pub(crate) fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}
