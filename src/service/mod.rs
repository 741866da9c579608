//! Service-manager adapters. Everything here is portable and tested on Linux: each manager is
//! render (desired files) → observe (via [`exec::CommandRunner`]) → plan (pure) → execute,
//! returning a [`Report`] for the verb to print.
//! [`native`] is the one place that picks a manager by `cfg(target_os)`.
pub mod exec;
pub mod launchd;
pub mod scrub;
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
    /// Who owns the definition file: `package` (a distribution package's unit in a vendor
    /// directory), `install` (written by `openclaw gateway install`), `local` (anyone else's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The vendor directory of a `package` definition (e.g. `/usr/lib/systemd/user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_dir: Option<PathBuf>,
    /// Drop-ins that customise the definition (systemd `DropInPaths`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop_ins: Vec<PathBuf>,
    /// The manager refuses further starts: too many in a row (systemd's start limit).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub start_limit_hit: bool,
}

impl ServiceStatus {
    /// One-word runtime summary: `running`, `stopped`, `failed`, `starting`, …, from either
    /// manager's state words (systemd `active`+`running`, launchd `running`).
    pub fn runtime_word(&self) -> &'static str {
        match (self.state.as_str(), self.sub_state.as_deref()) {
            ("active", Some("running")) | ("running", _) => "running",
            ("active", _) => "active",
            ("activating", Some("auto-restart")) => "restarting",
            ("activating", _) => "starting",
            ("reloading", _) => "reloading",
            ("deactivating", _) => "stopping",
            ("failed", _) => "failed",
            _ if !self.installed => "not installed",
            _ => "stopped",
        }
    }
}

/// What a lifecycle action did, line by line, for the verb to print (adapters never print).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Human lines, in order (`Wrote …`, `Removed …`).
    pub lines: Vec<String>,
}

impl Report {
    /// Adds a line.
    pub fn line(&mut self, l: impl Into<String>) {
        self.lines.push(l.into());
    }
}

/// A lifecycle action, for [`ServiceManager::dry_run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Install (rewrite when stale or forced), enable, start.
    Install {
        /// Rewrite and restart even when current.
        force: bool,
    },
    /// Start.
    Start,
    /// Stop (stays enabled).
    Stop,
    /// Restart.
    Restart,
    /// Remove what install created.
    Uninstall,
}

/// Options that pick and configure the native manager.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeOptions {
    /// System scope (root) instead of the per-user manager.
    pub system: bool,
    /// Account the system-scope service runs as.
    pub user: Option<String>,
}

/// Seconds the gateway may drain on stop; unit/plist stop timeouts are derived from it.
pub const DRAIN_SECS: u64 = 30;

impl ServiceSpec {
    /// The spec for a profile's gateway: name (unit name or label, from the manager), port,
    /// the binary to run, and the non-secret environment that pins the profile's identity.
    pub fn for_paths(
        paths: &crate::config::paths::Paths,
        name: String,
        port: u16,
        program: PathBuf,
    ) -> ServiceSpec {
        let mut env = vec![("OPENCLAW_GATEWAY_PORT".to_string(), port.to_string())];
        if let Some(p) = &paths.profile {
            env.push(("OPENCLAW_PROFILE".into(), p.clone()));
            env.push((
                "OPENCLAW_STATE_DIR".into(),
                paths.state_dir.display().to_string(),
            ));
            env.push((
                "OPENCLAW_CONFIG_PATH".into(),
                paths.config_path.display().to_string(),
            ));
        }
        env.push(("OPENCLAW_SERVICE_MARKER".into(), "openclaw".into()));
        env.push(("OPENCLAW_SERVICE_KIND".into(), "gateway".into()));
        ServiceSpec {
            description: match &paths.profile {
                Some(p) => format!("OpenClaw Gateway (profile: {p})"),
                None => "OpenClaw Gateway".into(),
            },
            profile: paths.profile.clone(),
            name,
            program,
            port,
            state_dir: paths.state_dir.clone(),
            config_path: paths.config_path.clone(),
            env,
            drain_secs: DRAIN_SECS,
        }
    }
}

/// The service manager of this platform: systemd on Linux (user manager, or the system
/// manager with `--system`), launchd on macOS.
pub fn native(opts: &NativeOptions) -> Result<Box<dyn ServiceManager>> {
    #[cfg(target_os = "linux")]
    {
        Ok(Box::new(systemd::manager::SystemdManager::new(opts)?))
    }
    #[cfg(target_os = "macos")]
    {
        if opts.system {
            return Err(crate::error::Error::Msg(
                "--system is not supported on macOS: LaunchDaemons are never installed; use the per-user LaunchAgent".into(),
            ));
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or_else(|| crate::error::Error::Msg("HOME is not set".into()))?;
        Ok(Box::new(
            launchd::manager::LaunchdManager::for_current_user(home),
        ))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = opts;
        Err(crate::error::Error::Msg(format!(
            "service management is not available on {} yet: run `openclaw gateway run` under your own supervisor",
            std::env::consts::OS
        )))
    }
}

/// One service manager (systemd user/system manager, launchd). Implementations observe through
/// a command runner, plan purely, then execute; every method is idempotent.
pub trait ServiceManager {
    /// Writes (or rewrites a stale) definition, enables and starts it. What it did goes into
    /// `report` (also when it fails part-way); the verb prints it.
    fn install(&self, spec: &ServiceSpec, force: bool, report: &mut Report) -> Result<()>;
    /// Starts the installed service.
    fn start(&self, spec: &ServiceSpec, report: &mut Report) -> Result<()>;
    /// Stops it, leaving it enabled.
    fn stop(&self, spec: &ServiceSpec, report: &mut Report) -> Result<()>;
    /// Restarts it.
    fn restart(&self, spec: &ServiceSpec, report: &mut Report) -> Result<()>;
    /// Removes only what install created.
    fn uninstall(&self, spec: &ServiceSpec, report: &mut Report) -> Result<()>;
    /// Observes the current state.
    fn status(&self, spec: &ServiceSpec) -> Result<ServiceStatus>;
    /// The unit/label name this manager uses for the profile (`openclaw-gateway[-P]`).
    fn service_name(&self, paths: &crate::config::paths::Paths) -> String {
        paths.unit_name()
    }
    /// Describes what `action` would change (files with content, commands), changing nothing.
    fn dry_run(&self, spec: &ServiceSpec, action: Action) -> Result<String> {
        let _ = (spec, action);
        Err(crate::error::Error::Msg(
            "--dry-run is not supported by this service manager".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(manager: &str, state: &str, sub: Option<&str>) -> ServiceStatus {
        ServiceStatus {
            manager: manager.into(),
            installed: true,
            state: state.into(),
            sub_state: sub.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn a_running_launch_agent_reads_running() {
        // launchd's inspect reports state `running` (sub-state: launchctl's own word).
        assert_eq!(
            st("launchd", "running", Some("running")).runtime_word(),
            "running"
        );
        assert_eq!(st("launchd", "running", None).runtime_word(), "running");
        assert_eq!(st("launchd", "not-loaded", None).runtime_word(), "stopped");
    }

    #[test]
    fn systemd_states_keep_their_words() {
        assert_eq!(
            st("systemd", "active", Some("running")).runtime_word(),
            "running"
        );
        assert_eq!(
            st("systemd", "active", Some("exited")).runtime_word(),
            "active"
        );
        assert_eq!(
            st("systemd", "activating", Some("auto-restart")).runtime_word(),
            "restarting"
        );
        assert_eq!(
            st("systemd", "failed", Some("failed")).runtime_word(),
            "failed"
        );
        assert_eq!(
            st("systemd", "inactive", Some("dead")).runtime_word(),
            "stopped"
        );
        let absent = ServiceStatus {
            installed: false,
            ..st("systemd", "inactive", Some("dead"))
        };
        assert_eq!(absent.runtime_word(), "not installed");
    }
}
