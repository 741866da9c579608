//! The crate error type and the stable exit-code table scripts rely on.
//!
//! Every message names what failed, where, and what to do next. Errors are printed once, at the
//! CLI edge (`cli::main`), never both printed and returned.
use std::path::PathBuf;
use std::process::ExitCode;

/// Named process exit codes. They are part of the interface: supervisors and scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A runtime failure (network, RPC error, service manager failure).
    Failure = 1,
    /// Command-line usage error (clap uses 2 as well).
    Usage = 2,
    /// Configuration invalid or startup refused (`EX_CONFIG`). systemd units list it in
    /// `RestartPreventExitStatus=` so a refusal never turns into a restart loop.
    Config = 78,
    /// The gateway asks its service manager to restart it (a restart-required config change
    /// under `gateway.reload.mode` hybrid/restart). `EX_TEMPFAIL`. Units list it in
    /// `SuccessExitStatus=` (not logged as a failure) *and* `RestartForceExitStatus=` (restarted
    /// even under `Restart=on-failure`); launchd restarts any non-zero exit with
    /// `KeepAlive={SuccessfulExit=false}`.
    Restart = 75,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Errors that cross module boundaries. Variants carry the noun (path, address, command).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Startup refused or config invalid; printed verbatim, exits 78.
    #[error("{0}")]
    Config(String),
    /// A config file that does not parse or validate.
    #[error("invalid config {path}:{line}:{column}: {message}\nFix the file (or restore {path}.bak) and try again.", path = path.display())]
    ConfigSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Filesystem failure with the path and the verb.
    #[error("{verb} {path}: {source}", path = path.display())]
    Io {
        verb: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Anything else, already phrased for the user (what failed and what to do next).
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// Builds an [`Error::Io`] from a verb ("reading", "writing"), a path and the source error.
    pub fn io(verb: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            verb,
            path: path.into(),
            source,
        }
    }

    /// The exit code this error maps to.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config(_) | Error::ConfigSyntax { .. } => Exit::Config,
            _ => Exit::Failure,
        }
    }
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
