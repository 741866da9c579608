//! Socket activation (`sd_listen_fds` protocol, docs/service-managers.md A1).
//!
//! The manager passes listening sockets as fds 3, 4, … with `LISTEN_FDS` (count),
//! `LISTEN_PID` (must be our pid, otherwise the variables belong to someone else and are
//! ignored) and `LISTEN_FDNAMES` (colon-separated names in fd order). We select fds by *name*
//! and by *socket type*, never by position (order across socket units is undefined), adopt
//! them close-on-exec and non-blocking, and remove the variables from the environment while
//! the process is still single-threaded, so children never inherit them.
//!
//! Why not a crate: `listenfd` has no `LISTEN_FDNAMES` support and accepts a missing
//! `LISTEN_PID`; `sd-notify`'s `listen_fds_with_names` reads the global environment (not
//! table-testable), does not check the socket type, and its unsetting variant is an
//! `unsafe fn`. The protocol itself is a few lines ([`parse`], pure and tested); the fd work is
//! in [`crate::sys::unix`]. Which passed fd becomes what (activation listener, stored
//! listener, other fd-store entry), and whether the gateway binds instead, is decided by the
//! gateway's listener acquisition, which calls [`parse`], `unset_vars`, `adopt` and
//! `claim`.

use crate::config::paths::Env;
use crate::error::{Error, Result};

/// The first passed fd (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: i32 = 3;
/// `FileDescriptorName=` our socket units set.
pub(crate) const FD_NAME: &str = "gateway";
/// The variables of the protocol (removed after use).
pub(crate) const VARS: [&str; 4] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "LISTEN_PIDFDID",
];

/// One fd announced by the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PassedFd {
    /// The fd number (3, 4, …).
    pub fd: i32,
    /// Its name from `LISTEN_FDNAMES` (`unknown` when none was given).
    pub name: String,
}

/// Reads the protocol variables from `env` for process `pid`. `Ok(None)`: no activation (no
/// `LISTEN_FDS`, or `LISTEN_PID` missing or someone else's). Errors name the bad variable.
pub(crate) fn parse(env: &dyn Env, pid: u32) -> Result<Option<Vec<PassedFd>>> {
    let Some(count) = env.var("LISTEN_FDS") else {
        return Ok(None);
    };
    match env.var("LISTEN_PID").map(|p| p.trim().parse::<u32>()) {
        Some(Ok(p)) if p == pid => {}
        // Missing, unparsable or another process's: not for us (sd_listen_fds does the same).
        _ => return Ok(None),
    }
    let n: i32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=4096).contains(n))
        .ok_or_else(|| {
            Error::Msg(format!(
                "socket activation: LISTEN_FDS={count:?} is not a small non-negative number; \
                 check the .socket unit (or unset LISTEN_FDS/LISTEN_PID to bind directly)"
            ))
        })?;
    let names: Vec<String> = env
        .var("LISTEN_FDNAMES")
        .map(|s| s.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Some(
        (0..n)
            .map(|i| PassedFd {
                fd: LISTEN_FDS_START + i,
                name: names
                    .get(i as usize)
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .unwrap_or_else(|| "unknown".into()),
            })
            .collect(),
    ))
}

/// Whether an fd with this name is meant as a gateway listener: our own
/// `FileDescriptorName=gateway`, an unnamed fd, or the default name systemd gives fds of an
/// operator-written socket unit (`<unit>.socket`). fdstore entries (`stored`, custom
/// `FDNAME=`s) and `Accept=yes` connections (`connection`) are not listeners.
pub(crate) fn is_listener_name(name: &str) -> bool {
    name == FD_NAME || name == "unknown" || name.ends_with(".socket")
}

/// Removes the protocol variables from the environment; false when that was not safe (threads
/// already running) and they were left in place.
#[cfg(unix)]
pub(crate) fn unset_vars() -> bool {
    crate::sys::unix::unset_env_single_threaded(&VARS)
}
/// Removes the protocol variables (not supported here: always false).
#[cfg(not(unix))]
pub(crate) fn unset_vars() -> bool {
    false
}

/// Adopts a passed fd as a non-blocking, close-on-exec TCP listener (checked to be one).
#[cfg(unix)]
pub(crate) fn adopt(fd: i32) -> std::result::Result<std::net::TcpListener, String> {
    crate::sys::unix::adopt_tcp_listener(fd).map_err(|e| e.to_string())
}
/// Takes ownership of a passed fd of any kind (fd-store entries), close-on-exec.
#[cfg(unix)]
pub(crate) fn claim(fd: i32) -> std::result::Result<std::os::fd::OwnedFd, String> {
    crate::sys::unix::claim_fd(fd).map_err(|e| e.to_string())
}
/// Takes ownership of a passed fd (not supported here).
#[cfg(not(unix))]
pub(crate) fn claim(_fd: i32) -> std::result::Result<std::os::fd::OwnedFd, String> {
    Err("the fd store is not supported on this platform".into())
}

/// Adopts a passed fd as a listener (not supported here).
#[cfg(not(unix))]
pub(crate) fn adopt(_fd: i32) -> std::result::Result<std::net::TcpListener, String> {
    Err("socket activation is not supported on this platform".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    struct E(Vec<(String, String)>);
    impl Env for E {
        fn var(&self, key: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn no_activation_without_our_pid() {
        assert_eq!(parse(&E(env(&[])), 42).unwrap(), None);
        // Missing LISTEN_PID: ignored (strict, like sd_listen_fds).
        assert_eq!(parse(&E(env(&[("LISTEN_FDS", "1")])), 42).unwrap(), None);
        // Someone else's pid.
        let e = E(env(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "7")]));
        assert_eq!(parse(&e, 42).unwrap(), None);
        let e = E(env(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "x")]));
        assert_eq!(parse(&e, 42).unwrap(), None);
    }

    #[test]
    fn names_follow_fd_order_and_missing_names_are_unknown() {
        let e = E(env(&[
            ("LISTEN_FDS", "3"),
            ("LISTEN_PID", "42"),
            ("LISTEN_FDNAMES", "gateway:stored"),
        ]));
        let fds = parse(&e, 42).unwrap().unwrap();
        let got: Vec<(i32, &str)> = fds.iter().map(|f| (f.fd, f.name.as_str())).collect();
        assert_eq!(got, vec![(3, "gateway"), (4, "stored"), (5, "unknown")]);
        let e = E(env(&[("LISTEN_FDS", "2"), ("LISTEN_PID", "42")]));
        let fds = parse(&e, 42).unwrap().unwrap();
        assert!(fds.iter().all(|f| f.name == "unknown"));
    }

    #[test]
    fn bad_count_is_an_error_naming_the_variable() {
        let e = E(env(&[("LISTEN_FDS", "-1"), ("LISTEN_PID", "42")]));
        let msg = parse(&e, 42).unwrap_err().to_string();
        assert!(msg.contains("LISTEN_FDS=\"-1\""), "{msg}");
        let e = E(env(&[("LISTEN_FDS", "lots"), ("LISTEN_PID", "42")]));
        assert!(parse(&e, 42).is_err());
    }

    #[test]
    fn listener_names() {
        assert!(is_listener_name("gateway"));
        assert!(is_listener_name("unknown"));
        assert!(is_listener_name("my-gw.socket"));
        assert!(!is_listener_name("stored"));
        assert!(!is_listener_name("connection"));
    }
}
