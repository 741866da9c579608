//! Socket activation (`sd_listen_fds` protocol, service-managers.md A1).
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
//! in [`crate::sys::unix`].

use crate::config::paths::{Env, ProcessEnv};
use crate::error::{Error, Result};

/// The first passed fd (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;
/// `FileDescriptorName=` our socket units set.
pub const FD_NAME: &str = "gateway";
/// The variables of the protocol (removed after use).
pub const VARS: [&str; 4] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "LISTEN_PIDFDID",
];

/// Listeners inherited from a service manager, with the manager's fd names.
#[derive(Debug, Default)]
pub struct Inherited {
    /// (fd name, listener) pairs from socket activation; already non-blocking.
    pub listeners: Vec<(String, std::net::TcpListener)>,
    /// Listeners the gateway put into the fd store itself (`listen-*`, no `.socket` unit).
    pub stored_listeners: Vec<(String, std::net::TcpListener)>,
    /// Other fd-store entries (connections, the handover state, names we do not know), for
    /// the gateway's handover to adopt.
    pub stored: Vec<(String, std::os::fd::OwnedFd)>,
    /// `systemd` or `launchd`, for logs and status.
    pub source: &'static str,
    /// Things worth a log line once logging is up (fds skipped and why, env left in place).
    pub notes: Vec<String>,
}

/// One fd announced by the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedFd {
    /// The fd number (3, 4, …).
    pub fd: i32,
    /// Its name from `LISTEN_FDNAMES` (`unknown` when none was given).
    pub name: String,
}

/// Reads the protocol variables from `env` for process `pid`. `Ok(None)`: no activation (no
/// `LISTEN_FDS`, or `LISTEN_PID` missing or someone else's). Errors name the bad variable.
pub fn parse(env: &dyn Env, pid: u32) -> Result<Option<Vec<PassedFd>>> {
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
pub fn is_listener_name(name: &str) -> bool {
    name == FD_NAME || name == "unknown" || name.ends_with(".socket")
}

/// Takes the listeners passed by systemd, if any. Call before starting threads (it unsets the
/// variables). `Ok(None)` means "not socket-activated: bind yourself". When the manager passed
/// fds but none is a usable TCP listener this is an error (binding ourselves would collide
/// with the manager's sockets), which the caller reports as a startup refusal.
///
/// One API over both managers: systemd's `LISTEN_FDS` first, then launchd's `Listeners`
/// sockets (`service::launchd::activation`, always "none" off macOS). A launchd error is not
/// fatal: it comes back as a note with no listeners, and the gateway binds itself.
pub fn take_inherited() -> Result<Option<Inherited>> {
    if let Some(inh) = take_from(&ProcessEnv, std::process::id())? {
        return Ok(Some(inh));
    }
    match crate::service::launchd::activation::take_listeners() {
        Ok(Some(ls)) if !ls.is_empty() => Ok(Some(Inherited {
            listeners: ls
                .into_iter()
                .map(|l| ("Listeners".to_string(), l))
                .collect(),
            source: "launchd",
            notes: Vec::new(),
            ..Inherited::default()
        })),
        Ok(_) => Ok(None),
        Err(e) => Ok(Some(Inherited {
            source: "launchd",
            notes: vec![format!(
                "launchd socket activation failed ({e}); binding the port directly"
            )],
            ..Inherited::default()
        })),
    }
}

fn take_from(env: &dyn Env, pid: u32) -> Result<Option<Inherited>> {
    let parsed = parse(env, pid);
    let mut notes = Vec::new();
    // Unset first, whatever the outcome, so no child ever sees them.
    if env.var("LISTEN_FDS").is_some() && !unset_vars() {
        notes.push(
            "socket activation: threads already running, LISTEN_* left in the environment".into(),
        );
    }
    let Some(fds) = parsed? else { return Ok(None) };
    if fds.is_empty() {
        return Ok(None);
    }
    let mut listeners = Vec::new();
    let mut stored_listeners = Vec::new();
    let mut stored = Vec::new();
    let mut activation_fds = 0;
    for PassedFd { fd, name } in fds {
        if !is_listener_name(&name) {
            // fd-store entries (service-managers.md A3): ours by name, the rest is removed
            // from the store by the handover code.
            if super::fdstore::classify(&name) == super::fdstore::Stored::Listener {
                match adopt(fd) {
                    Ok(l) => stored_listeners.push((name, l)),
                    Err(why) => notes.push(format!("fd store: fd {fd} ({name}) skipped: {why}")),
                }
                continue;
            }
            match claim(fd) {
                Ok(o) => stored.push((name, o)),
                Err(why) => notes.push(format!("fd store: fd {fd} ({name}) skipped: {why}")),
            }
            continue;
        }
        activation_fds += 1;
        match adopt(fd) {
            Ok(l) => listeners.push((name, l)),
            Err(why) => notes.push(format!(
                "socket activation: fd {fd} ({name}) skipped: {why}"
            )),
        }
    }
    if listeners.is_empty() && activation_fds == 0 {
        // Only fd-store entries: no socket unit (the gateway binds or takes its stored ones).
        return Ok(Some(Inherited {
            listeners,
            stored_listeners,
            stored,
            source: "fdstore",
            notes,
        }));
    }
    if listeners.is_empty() {
        return Err(Error::Config(format!(
            "socket activation: the service manager passed file descriptors but none is a listening \
             TCP socket named {FD_NAME:?} ({}). Fix the .socket unit (ListenStream=127.0.0.1:PORT, \
             FileDescriptorName={FD_NAME}) or reinstall with `openclaw gateway install --force`.",
            notes.join("; ")
        )));
    }
    Ok(Some(Inherited {
        listeners,
        stored_listeners,
        stored,
        source: "systemd",
        notes,
    }))
}

#[cfg(unix)]
fn unset_vars() -> bool {
    crate::sys::unix::unset_env_single_threaded(&VARS)
}
#[cfg(not(unix))]
fn unset_vars() -> bool {
    false
}

#[cfg(unix)]
fn adopt(fd: i32) -> std::result::Result<std::net::TcpListener, String> {
    crate::sys::unix::adopt_tcp_listener(fd).map_err(|e| e.to_string())
}
#[cfg(unix)]
fn claim(fd: i32) -> std::result::Result<std::os::fd::OwnedFd, String> {
    crate::sys::unix::claim_fd(fd).map_err(|e| e.to_string())
}
#[cfg(not(unix))]
fn claim(_fd: i32) -> std::result::Result<std::os::fd::OwnedFd, String> {
    Err("the fd store is not supported on this platform".into())
}

#[cfg(not(unix))]
fn adopt(_fd: i32) -> std::result::Result<std::net::TcpListener, String> {
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
