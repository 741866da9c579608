//! The options of `openclaw gateway run`, as plain values (the CLI parses them; the kernel
//! never sees clap).

/// Bind modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// 127.0.0.1 and ::1.
    Loopback,
    /// All interfaces (0.0.0.0 and ::); requires auth.
    Lan,
    /// A specific host (`--host`); requires auth unless loopback.
    Custom,
}

/// Auth modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Shared token.
    Token,
    /// Shared password.
    Password,
    /// No auth (loopback only).
    None,
}

/// Flags of `openclaw gateway run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Port (precedence: --port, OPENCLAW_GATEWAY_PORT, gateway.port, 18789).
    pub port: Option<u16>,
    /// Bind mode (precedence: --bind, gateway.bind, loopback).
    pub bind: Option<BindMode>,
    /// Host for --bind custom.
    pub host: Option<String>,
    /// Gateway token (prefer config or OPENCLAW_GATEWAY_TOKEN: argv is visible to other users).
    pub token: Option<String>,
    /// Gateway password.
    pub password: Option<String>,
    /// Auth mode.
    pub auth: Option<AuthMode>,
    /// Debug logging on stderr.
    pub verbose: bool,
    /// Stop whatever listens on the port first, then start.
    pub force: bool,
    /// Start without a local-mode config (missing config or gateway.mode != local).
    pub allow_unconfigured: bool,
    /// First-run bootstrap: when no config file exists, create one (gateway.mode=local and a
    /// generated token, 0600) and start. Never touches an existing config.
    pub init: bool,
}
