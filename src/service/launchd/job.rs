//! The typed LaunchAgent description ([`LaunchdJob`]) and how it is derived from the portable
//! [`ServiceSpec`]. Rendering to XML lives in [`super::plist`].
//!
//! Choices (see the module doc of [`super`] for the KeepAlive / exit-78 policy):
//! - `ProgramArguments` = `<absolute binary> gateway run --port <N>`; the profile, state dir and
//!   config path travel in `EnvironmentVariables` (as upstream), never in argv.
//! - No secret is ever rendered: env keys that look like credentials are refused, and the
//!   manager additionally refuses a plist that contains the config's token or password.
//! - `Sockets` → `Listeners` = two passive stream sockets, 127.0.0.1 and ::1 on the port, so
//!   launchd owns the port across restarts (socket activation, `sys::launchd_activate_socket`).
use std::path::{Path, PathBuf};

use super::errors::LaunchdError;
use crate::service::ServiceSpec;

/// The `Sockets` key the gateway activates (`launch_activate_socket("Listeners")`).
pub const SOCKET_NAME: &str = "Listeners";
/// Seconds between respawns (launchd's floor is 10; it has no exponential back-off).
pub const THROTTLE_INTERVAL_SECS: u64 = 10;
/// Seconds launchd waits after SIGTERM beyond the drain before SIGKILL.
pub const EXIT_GRACE_SECS: u64 = 5;
/// `Umask` 077 (rendered in decimal: 63): files the gateway creates are owner-only.
pub const UMASK: u32 = 0o077;
/// Open-files limit. launchd's default soft limit is 256, too low for a WebSocket gateway;
/// 10240 is `OPEN_MAX`, the largest soft value macOS `setrlimit` accepts for RLIMIT_NOFILE.
pub const OPEN_FILES: u64 = 10240;
/// The PATH agents get (launchd's default is `/usr/bin:/bin:/usr/sbin:/sbin`); the binary's own
/// directory is prepended when it is not already listed.
pub const BASE_PATH: &str =
    "/opt/homebrew/bin:/opt/homebrew/sbin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// Address family of a launchd socket (`SockFamily`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockFamily {
    /// `IPv4`.
    V4,
    /// `IPv6`.
    V6,
}

impl SockFamily {
    /// The plist spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SockFamily::V4 => "IPv4",
            SockFamily::V6 => "IPv6",
        }
    }
}

/// One passive stream socket launchd creates for the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketListener {
    /// `SockNodeName` (bind address).
    pub node: String,
    /// `SockFamily`.
    pub family: SockFamily,
}

impl SocketListener {
    /// 127.0.0.1 and ::1: the loopback pair the default (`bind: loopback`) gateway serves.
    pub fn loopback_pair() -> Vec<SocketListener> {
        vec![
            SocketListener {
                node: "127.0.0.1".into(),
                family: SockFamily::V4,
            },
            SocketListener {
                node: "::1".into(),
                family: SockFamily::V6,
            },
        ]
    }
}

/// Everything the plist says, typed. Built by [`LaunchdJob::from_spec`], rendered by
/// [`super::plist::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchdJob {
    /// `Label` (`ai.openclaw.gateway` / `ai.openclaw.<profile>`).
    pub label: String,
    /// `Comment` (the service description).
    pub comment: String,
    /// `ProgramArguments`; `[0]` is the absolute installed binary.
    pub program_arguments: Vec<String>,
    /// `EnvironmentVariables`, in render order. Never holds a secret.
    pub environment: Vec<(String, String)>,
    /// `WorkingDirectory` (the state dir).
    pub working_directory: PathBuf,
    /// `StandardOutPath` and `StandardErrorPath` (one file, as upstream).
    pub log_path: PathBuf,
    /// `ExitTimeOut` (drain + grace).
    pub exit_timeout_secs: u64,
    /// `ThrottleInterval`.
    pub throttle_interval_secs: u64,
    /// `Umask`.
    pub umask: u32,
    /// `SoftResourceLimits`/`HardResourceLimits` → `NumberOfFiles`.
    pub open_files: u64,
    /// The port the sockets listen on.
    pub port: u16,
    /// `Sockets` → [`SOCKET_NAME`]; empty = no `Sockets` key (no socket activation, e.g. a
    /// non-loopback bind the gateway must make itself).
    pub sockets: Vec<SocketListener>,
}

impl LaunchdJob {
    /// Derives the job from the portable spec. `home` is the user's home (plist, logs).
    pub fn from_spec(spec: &ServiceSpec, home: &Path) -> Result<LaunchdJob, LaunchdError> {
        validate_label(&spec.name)?;
        if let Some(p @ ("gateway" | "node")) = spec.profile.as_deref() {
            return Err(LaunchdError::InvalidSpec(format!(
                "the profile name {p:?} is reserved on macOS: its label ai.openclaw.{p} belongs to the \
                 default gateway / the node host; pick another profile name"
            )));
        }
        if !spec.program.is_absolute() {
            return Err(LaunchdError::InvalidSpec(format!(
                "the service program {} is not an absolute path; launchd needs the installed binary's absolute path",
                spec.program.display()
            )));
        }
        if !spec.state_dir.is_absolute() || !spec.config_path.is_absolute() {
            return Err(LaunchdError::InvalidSpec(format!(
                "state dir {} and config path {} must be absolute",
                spec.state_dir.display(),
                spec.config_path.display()
            )));
        }
        if spec.port == 0 {
            return Err(LaunchdError::InvalidSpec(
                "port 0 cannot be socket-activated; pass --port or set gateway.port".into(),
            ));
        }
        let program = path_str(&spec.program)?;
        let mut env: Vec<(String, String)> = Vec::new();
        env.push(("HOME".into(), path_str(home)?));
        env.push(("PATH".into(), path_for(&spec.program)));
        if let Some(p) = &spec.profile {
            env.push(("OPENCLAW_PROFILE".into(), p.clone()));
        }
        env.push(("OPENCLAW_STATE_DIR".into(), path_str(&spec.state_dir)?));
        env.push(("OPENCLAW_CONFIG_PATH".into(), path_str(&spec.config_path)?));
        env.push(("OPENCLAW_LAUNCHD_LABEL".into(), spec.name.clone()));
        env.push(("OPENCLAW_SERVICE_MARKER".into(), "openclaw".into()));
        env.push(("OPENCLAW_SERVICE_KIND".into(), "gateway".into()));
        for (k, v) in &spec.env {
            validate_env(k, v)?;
            match env.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1 = v.clone(),
                None => env.push((k.clone(), v.clone())),
            }
        }
        Ok(LaunchdJob {
            label: spec.name.clone(),
            comment: spec.description.clone(),
            program_arguments: vec![
                program,
                "gateway".into(),
                "run".into(),
                "--port".into(),
                spec.port.to_string(),
            ],
            environment: env,
            working_directory: spec.state_dir.clone(),
            log_path: log_path(home, spec.profile.as_deref()),
            exit_timeout_secs: spec.drain_secs + EXIT_GRACE_SECS,
            throttle_interval_secs: THROTTLE_INTERVAL_SECS,
            umask: UMASK,
            open_files: OPEN_FILES,
            port: spec.port,
            sockets: SocketListener::loopback_pair(),
        })
    }

    /// The same job without `Sockets` (for a non-loopback bind the gateway makes itself:
    /// launchd holding 127.0.0.1:P would make the gateway's own `0.0.0.0:P` bind fail).
    pub fn without_socket_activation(mut self) -> LaunchdJob {
        self.sockets.clear();
        self
    }

    /// The value of an `EnvironmentVariables` key.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.environment
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `~/Library/LaunchAgents/<label>.plist`.
pub fn plist_path(home: &Path, label: &str) -> PathBuf {
    home.join("Library/LaunchAgents")
        .join(format!("{label}.plist"))
}

/// `~/Library/Logs/openclaw/gateway.log` or `gateway-<profile>.log`.
pub fn log_path(home: &Path, profile: Option<&str>) -> PathBuf {
    let name = match profile {
        Some(p) => format!("gateway-{p}.log"),
        None => "gateway.log".to_string(),
    };
    home.join("Library/Logs/openclaw").join(name)
}

/// True for environment keys that name credentials; they never go into a plist.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "TOKEN",
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| k.contains(w))
}

fn validate_label(label: &str) -> Result<(), LaunchdError> {
    let ok = !label.is_empty()
        && label.len() <= 128
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LaunchdError::InvalidSpec(format!(
            "invalid launchd label {label:?}: use letters, digits, '.', '-' and '_' (e.g. ai.openclaw.gateway)"
        )))
    }
}

fn validate_env(key: &str, value: &str) -> Result<(), LaunchdError> {
    let key_ok = !key.is_empty()
        && !key.as_bytes()[0].is_ascii_digit()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !key_ok || value.contains('\0') {
        return Err(LaunchdError::InvalidSpec(format!(
            "invalid service environment entry {key:?}: keys are [A-Za-z_][A-Za-z0-9_]* and values contain no NUL"
        )));
    }
    if is_secret_key(key) {
        return Err(LaunchdError::SecretInPlist {
            what: format!("environment variable {key}"),
        });
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<String, LaunchdError> {
    p.to_str().map(str::to_string).ok_or_else(|| {
        LaunchdError::InvalidSpec(format!(
            "path {} is not valid UTF-8 and cannot be written to a plist",
            p.display()
        ))
    })
}

fn path_for(program: &Path) -> String {
    match program.parent().and_then(Path::to_str) {
        Some(dir) if !dir.is_empty() && !BASE_PATH.split(':').any(|d| d == dir) => {
            format!("{dir}:{BASE_PATH}")
        }
        _ => BASE_PATH.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> ServiceSpec {
        ServiceSpec {
            profile: None,
            name: "ai.openclaw.gateway".into(),
            description: "OpenClaw Gateway".into(),
            program: "/opt/homebrew/bin/openclaw".into(),
            port: 18789,
            state_dir: "/Users/alice/.openclaw".into(),
            config_path: "/Users/alice/.openclaw/openclaw.json".into(),
            env: vec![],
            drain_secs: 15,
        }
    }

    #[test]
    fn argv_env_and_paths() {
        let j = LaunchdJob::from_spec(&spec(), Path::new("/Users/alice")).unwrap();
        assert_eq!(
            j.program_arguments,
            [
                "/opt/homebrew/bin/openclaw",
                "gateway",
                "run",
                "--port",
                "18789"
            ]
        );
        assert_eq!(j.env("OPENCLAW_PROFILE"), None);
        assert_eq!(j.env("OPENCLAW_SERVICE_MARKER"), Some("openclaw"));
        assert_eq!(
            j.env("PATH"),
            Some(BASE_PATH),
            "homebrew bin is already listed"
        );
        assert_eq!(
            j.log_path,
            PathBuf::from("/Users/alice/Library/Logs/openclaw/gateway.log")
        );
        assert_eq!(j.exit_timeout_secs, 20);
        assert!(j.throttle_interval_secs >= 10);
    }

    #[test]
    fn profile_goes_to_env_and_log_name() {
        let mut s = spec();
        s.profile = Some("work".into());
        s.name = "ai.openclaw.work".into();
        s.program = "/Users/alice/bin/openclaw".into();
        let j = LaunchdJob::from_spec(&s, Path::new("/Users/alice")).unwrap();
        assert_eq!(j.env("OPENCLAW_PROFILE"), Some("work"));
        assert!(!j.program_arguments.iter().any(|a| a.contains("work")));
        assert_eq!(
            j.log_path,
            PathBuf::from("/Users/alice/Library/Logs/openclaw/gateway-work.log")
        );
        assert!(j.env("PATH").unwrap().starts_with("/Users/alice/bin:"));
    }

    #[test]
    fn refuses_bad_input() {
        let mut s = spec();
        s.program = "openclaw".into();
        assert!(LaunchdJob::from_spec(&s, Path::new("/h")).is_err());
        let mut s = spec();
        s.name = "ai/openclaw".into();
        assert!(LaunchdJob::from_spec(&s, Path::new("/h")).is_err());
        let mut s = spec();
        s.env = vec![("OPENCLAW_GATEWAY_TOKEN".into(), "t0k".into())];
        let e = LaunchdJob::from_spec(&s, Path::new("/h")).unwrap_err();
        assert!(e.to_string().contains("OPENCLAW_GATEWAY_TOKEN"), "{e}");
        assert!(
            !e.to_string().contains("t0k"),
            "the message must not echo the secret"
        );
        let mut s = spec();
        s.env = vec![("1BAD".into(), "x".into())];
        assert!(LaunchdJob::from_spec(&s, Path::new("/h")).is_err());
        let mut s = spec();
        s.port = 0;
        assert!(LaunchdJob::from_spec(&s, Path::new("/h")).is_err());
        let mut s = spec();
        s.profile = Some("gateway".into());
        let e = LaunchdJob::from_spec(&s, Path::new("/h")).unwrap_err();
        assert!(e.to_string().contains("reserved on macOS"), "{e}");
    }

    #[test]
    fn spec_env_overrides_in_place_and_appends() {
        let mut s = spec();
        s.env = vec![
            ("PATH".into(), "/custom".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        let j = LaunchdJob::from_spec(&s, Path::new("/Users/alice")).unwrap();
        assert_eq!(j.environment[1], ("PATH".into(), "/custom".into()));
        assert_eq!(j.environment.last().unwrap().0, "RUST_LOG");
    }
}
