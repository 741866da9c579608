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
use crate::error::{Error, Exit, Result};

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
/// (no `--url`). A config that does not load does not stop the command: the target is what
/// resolves without it (flags, `OPENCLAW_GATEWAY_*`, the profile default port) and
/// [`conn::Target::config_broken`] says so and names what could not be resolved, so a running
/// gateway (which keeps its last good config) is still reached.
pub(crate) fn target(paths: &Paths, conn: &ConnOptions) -> Result<conn::Target> {
    if conn.url.is_some() {
        return Ok(conn::resolve(paths, conn, None, &ProcessEnv)?);
    }
    match Config::load(&paths.config_path) {
        Ok(cfg) => Ok(conn::resolve(paths, conn, Some(&cfg), &ProcessEnv)?),
        Err(e) => {
            let mut t = conn::resolve(paths, conn, None, &ProcessEnv)?;
            t.config_broken = Some(conn::broken_config_note(&e, &t));
            Ok(t)
        }
    }
}

/// Prints the broken-config note of `target` on stderr (`warning: …`), if any: once the
/// gateway answered (a failure carries the note itself, [`with_config_note`]).
pub(crate) fn warn_config(target: &conn::Target) {
    if let Some(n) = &target.config_broken {
        eprintln!("warning: {n}");
    }
}

/// A client command's failure against `target`: with a broken config, the note is appended
/// and the error is a config error (exit 78), since the config is why the target was a guess.
pub(crate) fn with_config_note(e: Error, target: Option<&conn::Target>) -> Error {
    match target.and_then(|t| t.config_broken.as_deref()) {
        Some(n) => Error::Config(format!("{e}\n{n}")),
        None => e,
    }
}

/// `--json` never prints text: a failure is `{"ok":false,"error":{"message":…}}` on stdout
/// (plus `configError` when the config is broken), and the exit code is the error's.
pub(crate) fn print_json_error(e: &Error, target: Option<&conn::Target>) -> Exit {
    let mut err = serde_json::json!({"message": e.to_string()});
    if let Some(n) = target.and_then(|t| t.config_broken.as_deref()) {
        err["configError"] = n.into();
    }
    print_json(&serde_json::json!({"ok": false, "error": err}));
    e.exit()
}

/// Prints a JSON value the way upstream does (2-space indent).
pub(crate) fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}
