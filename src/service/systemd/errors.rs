//! Errors of the systemd adapter: what failed, where, and what to do next. Like
//! [`crate::service::launchd::LaunchdError`], callers (and tests) match the variant; the text
//! is the user's, mapped into [`crate::error::Error`] at the adapter's boundary.
use std::fmt;
use std::path::PathBuf;

/// Errors of [`super::manager::SystemdManager`].
#[derive(Debug)]
pub enum SystemdError {
    /// `systemctl` (or `loginctl`) could not be run at all.
    Spawn {
        /// The argv as run.
        argv: Vec<String>,
        /// Why.
        source: std::io::Error,
    },
    /// A `systemctl` invocation that had to succeed failed.
    Failed {
        /// The argv as run.
        argv: Vec<String>,
        /// Its exit status.
        status: i32,
        /// Trimmed stderr.
        stderr: String,
    },
    /// The manager did not answer (`systemctl show` failed).
    Unreachable {
        /// `the systemd user manager` / `the systemd system manager`.
        manager: &'static str,
        /// The argv as run.
        argv: Vec<String>,
        /// Its exit status.
        status: i32,
        /// Trimmed stderr.
        stderr: String,
    },
    /// No `XDG_RUNTIME_DIR` and no `/run/user/<uid>`: there is no user manager to talk to.
    NoRuntimeDir {
        /// The uid.
        uid: u32,
        /// The account name (for the linger advice).
        user: String,
    },
    /// The runtime dir exists but holds neither the manager's private socket nor the bus.
    NoUserManager {
        /// The uid.
        uid: u32,
        /// The account name (for the linger advice).
        user: String,
        /// `$XDG_RUNTIME_DIR/systemd/private`.
        private: PathBuf,
        /// `$XDG_RUNTIME_DIR/bus`.
        bus: PathBuf,
    },
    /// The user unit directory cannot be located.
    NoHome,
    /// A same-named system unit exists: two gateways would compete for one port.
    SystemUnitExists {
        /// `openclaw-gateway.service`.
        unit: String,
        /// Where (a path, or the unit name when systemd has it from elsewhere).
        path: String,
    },
    /// The packaged user unit (a vendor directory) would be shadowed by ours.
    PackagedUnitExists {
        /// The packaged file.
        fragment: String,
        /// `openclaw-gateway.service`.
        unit: String,
        /// Its vendor directory.
        dir: String,
        /// The file install would write.
        ours: PathBuf,
        /// The unit base name.
        name: String,
    },
    /// Another user unit of that name (not ours) would be shadowed.
    ForeignUnitExists {
        /// The other file.
        fragment: String,
        /// `openclaw-gateway.service`.
        unit: String,
        /// The file install would write.
        ours: PathBuf,
    },
    /// start/stop/restart of a unit that is not loaded.
    NotInstalled {
        /// `openclaw-gateway.service`.
        unit: String,
        /// `the systemd user manager` / `the systemd system manager`.
        manager: &'static str,
        /// ` --profile P` (or empty).
        profile_flag: String,
    },
    /// uninstall left files it did not write.
    ForeignFilesKept {
        /// The files left in place.
        files: Vec<String>,
    },
    /// The units cannot be rendered.
    Render(crate::error::Error),
    /// A filesystem step failed.
    Io(crate::error::Error),
}

fn linger_hint(user: &str) -> String {
    format!(
        "This happens in containers and WSL without systemd, and in SSH/su sessions when lingering \
         is off. Fix: `sudo loginctl enable-linger {user}` and log in again (or start the manager), \
         or run the gateway under another supervisor with `openclaw gateway run`."
    )
}

impl fmt::Display for SystemdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemdError::Spawn { argv, source } => write!(
                f,
                "running `{}` failed: {source}; is systemd installed (systemctl in PATH)?",
                argv.join(" ")
            ),
            SystemdError::Failed {
                argv,
                status,
                stderr,
            } => write!(f, "`{}` failed (exit {status}): {stderr}", argv.join(" ")),
            SystemdError::Unreachable {
                manager,
                argv,
                status,
                stderr,
            } => write!(
                f,
                "cannot talk to {manager} (`{}` exit {status}): {stderr}",
                argv.join(" ")
            ),
            SystemdError::NoRuntimeDir { uid, user } => write!(
                f,
                "no systemd user manager for uid {uid}: XDG_RUNTIME_DIR is unset and /run/user/{uid} does not exist. {}",
                linger_hint(user)
            ),
            SystemdError::NoUserManager {
                uid,
                user,
                private,
                bus,
            } => write!(
                f,
                "no systemd user manager is running for uid {uid} (neither {} nor {} exists). {}",
                private.display(),
                bus.display(),
                linger_hint(user)
            ),
            SystemdError::NoHome => {
                f.write_str("cannot locate the user unit directory: HOME is not set")
            }
            SystemdError::SystemUnitExists { unit, path } => write!(
                f,
                "refusing to install the user unit {unit}: a system unit with the same name exists ({path}). \
                 Two gateways would compete for one port. Manage it with `sudo systemctl … {unit}`, remove it, \
                 or install another profile (`openclaw --profile NAME gateway install`)."
            ),
            SystemdError::PackagedUnitExists {
                fragment,
                unit,
                dir,
                ours,
                name,
            } => write!(
                f,
                "refusing to install: {fragment} is the packaged user unit {unit} (from {dir}, installed by the \
                 openclaw package), and {} would shadow it and miss its updates. Use it instead: \
                 `systemctl --user enable --now {name}.socket` (customise with `systemctl --user edit {unit}`), \
                 or re-run with --force to override it with your own unit.",
                ours.display()
            ),
            SystemdError::ForeignUnitExists {
                fragment,
                unit,
                ours,
            } => write!(
                f,
                "refusing to install: {fragment} already defines the user unit {unit}, and {} would shadow it. \
                 Remove that file, or re-run with --force to override it.",
                ours.display()
            ),
            SystemdError::NotInstalled {
                unit,
                manager,
                profile_flag,
            } => write!(
                f,
                "{unit} is not installed for {manager}: run `openclaw{profile_flag} gateway install` first"
            ),
            SystemdError::ForeignFilesKept { files } => write!(
                f,
                "left {} in place: not written by openclaw (no \"{}\" line). Remove it yourself if it is yours to remove.",
                files.join(", "),
                super::manager::MARKER
            ),
            SystemdError::Render(e) | SystemdError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SystemdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SystemdError::Spawn { source, .. } => Some(source),
            SystemdError::Render(e) | SystemdError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SystemdError> for crate::error::Error {
    fn from(e: SystemdError) -> Self {
        match e {
            SystemdError::Render(inner) | SystemdError::Io(inner) => inner,
            other => crate::error::Error::Msg(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_the_command_and_the_next_step() {
        let e = SystemdError::NotInstalled {
            unit: "openclaw-gateway-work.service".into(),
            manager: "the systemd user manager",
            profile_flag: " --profile work".into(),
        };
        assert_eq!(
            e.to_string(),
            "openclaw-gateway-work.service is not installed for the systemd user manager: run `openclaw --profile work gateway install` first"
        );
        let e = SystemdError::Failed {
            argv: vec!["systemctl".into(), "--user".into(), "daemon-reload".into()],
            status: 1,
            stderr: "Access denied".into(),
        };
        assert_eq!(
            e.to_string(),
            "`systemctl --user daemon-reload` failed (exit 1): Access denied"
        );
        let e: crate::error::Error = SystemdError::NoHome.into();
        assert_eq!(e.exit(), crate::error::Exit::Failure);
        let io = SystemdError::Io(crate::error::Error::io(
            "removing",
            "/x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        ));
        assert!(matches!(
            crate::error::Error::from(io),
            crate::error::Error::Io {
                verb: "removing",
                ..
            }
        ));
    }
}
