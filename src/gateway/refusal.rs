//! Why the gateway refuses to start (or a reload refuses a config): one variant per refusal of
//! docs/protocol.md §6, each carrying the values its message names. The message text is the
//! `Display` (what operators and the official tooling read); callers and tests match variants.
//! Every refusal is a configuration problem: exit 78.
use std::fmt;
use std::path::PathBuf;

use crate::error::Error;

/// A startup/reload refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No config file and no `--allow-unconfigured`.
    MissingConfig { path: PathBuf },
    /// The config exists but has no `gateway.mode`.
    ModeMissing { path: PathBuf },
    /// `gateway.mode` is not `local`.
    ModeNotLocal { mode: String, path: PathBuf },
    /// `--bind custom` / `gateway.bind=custom` without a host.
    CustomBindNeedsHost,
    /// `gateway.bind=tailnet`.
    TailnetUnsupported { path: PathBuf },
    /// Any other `gateway.bind` value.
    InvalidBind { value: String, path: PathBuf },
    /// A non-loopback bind without a secret.
    UnauthenticatedBind { host: String },
    /// Token mode without a token where none can be generated.
    TokenMissing,
    /// Password mode without a password.
    PasswordMissing,
    /// Both secrets set and no mode to choose between them.
    AmbiguousAuth,
    /// `gateway.auth.mode` this build does not know.
    UnsupportedAuthMode { mode: String, path: PathBuf },
    /// The auth secret's SecretRef did not resolve (fail closed); `detail` names the reference.
    SecretUnresolved { detail: String },
    /// A generated token could not be written into the config document.
    TokenNotStorable { path: PathBuf, detail: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MissingConfig { path } => write!(
                f,
                "Missing config. Run `openclaw setup` or set gateway.mode=local (or pass --allow-unconfigured).\nConfig path: {}\nFirst run? `openclaw gateway run --init` creates it with a generated token.",
                path.display()
            ),
            Refusal::ModeMissing { path } => write!(
                f,
                "Gateway start blocked: existing config is missing gateway.mode. Treat this as suspicious or clobbered config. Run `openclaw setup` or set gateway.mode=local (or pass --allow-unconfigured).\nConfig file: {}",
                path.display()
            ),
            Refusal::ModeNotLocal { mode, path } => write!(
                f,
                "Gateway start blocked: set gateway.mode=local (current: {mode}) or pass --allow-unconfigured.\nConfig file: {}",
                path.display()
            ),
            Refusal::CustomBindNeedsHost => f.write_str(
                "bind mode custom needs a host: pass --host ADDR or set gateway.customBindHost",
            ),
            Refusal::TailnetUnsupported { path } => write!(
                f,
                "gateway.bind=\"tailnet\" is not supported by this build; set gateway.bind to loopback, lan or custom in {}",
                path.display()
            ),
            Refusal::InvalidBind { value, path } => write!(
                f,
                "invalid gateway.bind {value:?} in {}: use loopback, lan or custom",
                path.display()
            ),
            Refusal::UnauthenticatedBind { host } => write!(
                f,
                "Refusing to bind gateway to {host} without auth.\nSet gateway.auth.token (or OPENCLAW_GATEWAY_TOKEN) or gateway.auth.password (or OPENCLAW_GATEWAY_PASSWORD), or use --bind loopback."
            ),
            Refusal::TokenMissing => f.write_str(
                "Refusing to start: gateway.auth.mode is token but no token is set; set gateway.auth.token or OPENCLAW_GATEWAY_TOKEN (or pass --token)",
            ),
            Refusal::PasswordMissing => f.write_str(
                "gateway.auth.mode is password but no password is set; set gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD (or pass --password)",
            ),
            Refusal::AmbiguousAuth => f.write_str(
                "both a gateway token and a gateway password are set but gateway.auth.mode is not; set gateway.auth.mode to \"token\" or \"password\" (or pass --auth)",
            ),
            Refusal::UnsupportedAuthMode { mode, path } => write!(
                f,
                "gateway.auth.mode {mode:?} is not supported by this build (use token, password or none) in {}",
                path.display()
            ),
            Refusal::SecretUnresolved { detail } => write!(
                f,
                "{detail}\nThe gateway does not run without its configured auth secret (fail closed); fix the reference or the secret, then start (or reload) again."
            ),
            Refusal::TokenNotStorable { path, detail } => write!(
                f,
                "cannot store a generated token in {}: {detail}; fix the file",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        Error::Config(r.to_string())
    }
}
