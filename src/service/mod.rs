//! Service-manager adapters. Everything here is portable and tested on Linux: each manager is
//! render (desired files) → observe (via [`exec::CommandRunner`]) → plan (pure) → execute.
//! [`native`] is the one place that picks a manager by `cfg(target_os)`.
pub mod exec;
pub mod launchd;
pub mod systemd;

use std::path::PathBuf;

use crate::error::Result;

/// The portable description of the service we want installed (both managers render from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Named profile (`None` = default).
    pub profile: Option<String>,
    /// systemd unit base name (`openclaw-gateway[-P]`) / launchd label (`ai.openclaw.*`).
    pub name: String,
    /// Human description (`OpenClaw Gateway` / `OpenClaw Gateway (profile: P)`).
    pub description: String,
    /// Absolute path of the binary the service executes.
    pub program: PathBuf,
    /// Port the service listens on.
    pub port: u16,
    /// State directory (working directory, writable under hardening).
    pub state_dir: PathBuf,
    /// Config file path.
    pub config_path: PathBuf,
    /// Non-secret environment for the service (never a token or password).
    pub env: Vec<(String, String)>,
    /// Seconds the gateway may spend draining on stop (TimeoutStopSec / ExitTimeOut follow it).
    pub drain_secs: u64,
}

/// What a service manager reports about the installed service.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// `systemd` or `launchd`.
    pub manager: String,
    /// Unit name or label.
    pub name: String,
    /// The installed definition file, if any.
    pub file: Option<PathBuf>,
    /// A definition is installed.
    pub installed: bool,
    /// It starts on login/boot.
    pub enabled: bool,
    /// Manager state words (`active`/`running`, `inactive`, `failed`, …).
    pub state: String,
    /// Sub-state (systemd `SubState`) or launchd's state string.
    pub sub_state: Option<String>,
    /// Main PID when running.
    pub pid: Option<u32>,
    /// Last exit status, when known.
    pub last_exit: Option<i32>,
    /// The on-disk definition differs from what the manager has loaded (reload pending).
    pub reload_pending: bool,
    /// Listening sockets are held by the manager (socket activation).
    pub socket_activated: bool,
    /// How to read the logs (a command or a path).
    pub logs: Option<String>,
    /// Why the last run ended (systemd `Result`: `success`, `exit-code`, `watchdog`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Automatic restarts so far (systemd `NRestarts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// The service's own status line (sd_notify `STATUS=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
    /// Addresses the manager listens on for us (socket activation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
    /// Whether the user's services outlive their sessions (`yes`, `no`, `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linger: Option<String>,
    /// Manager scope (`user`, `system`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// One service manager (systemd user/system manager, launchd). Implementations observe through
/// a command runner, plan purely, then execute; every method is idempotent.
pub trait ServiceManager {
    /// Writes (or rewrites a stale) definition, enables and starts it.
    fn install(&self, spec: &ServiceSpec, force: bool) -> Result<()>;
    /// Starts the installed service.
    fn start(&self, spec: &ServiceSpec) -> Result<()>;
    /// Stops it, leaving it enabled.
    fn stop(&self, spec: &ServiceSpec) -> Result<()>;
    /// Restarts it.
    fn restart(&self, spec: &ServiceSpec) -> Result<()>;
    /// Removes only what install created.
    fn uninstall(&self, spec: &ServiceSpec) -> Result<()>;
    /// Observes the current state.
    fn status(&self, spec: &ServiceSpec) -> Result<ServiceStatus>;
}
