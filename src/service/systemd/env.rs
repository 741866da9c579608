//! The process environment the systemd adapter needs (`HOME`, `XDG_*`, `SUDO_USER`, the
//! account and the effective uid), read in one place by the caller and injected into
//! [`super::manager::SystemdManager::with_env`]; the adapter itself never reads `std::env`.
use std::path::PathBuf;

/// What the systemd adapter reads from its process environment, gathered once by the caller
/// ([`SystemdEnv::from_process`]) and injected, so the adapter never reads `std::env` or
/// `geteuid` itself and tests can drive it with any user, home and runtime dir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemdEnv {
    /// Effective uid.
    pub uid: u32,
    /// Account name (`USER`, `LOGNAME`, else the passwd entry of `uid`).
    pub user: Option<String>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// `XDG_CONFIG_HOME`.
    pub config_home: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR`.
    pub runtime_dir: Option<PathBuf>,
    /// `SUDO_USER` (the default `User=` of a system-scope unit).
    pub sudo_user: Option<String>,
}

impl SystemdEnv {
    /// This process's environment (empty values count as unset).
    pub fn from_process() -> SystemdEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let uid = nix::unistd::geteuid().as_raw();
        SystemdEnv {
            uid,
            user: var("USER").or_else(|| var("LOGNAME")).or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            }),
            home: path("HOME"),
            config_home: path("XDG_CONFIG_HOME"),
            runtime_dir: path("XDG_RUNTIME_DIR"),
            sudo_user: var("SUDO_USER"),
        }
    }
}
