//! The restart policy under launchd, and the config-refusal contract with the gateway.
//!
//! launchd has no per-exit-code rule (no `RestartPreventExitStatus=78`) and no start limit: a
//! `KeepAlive` job that keeps failing is respawned every `ThrottleInterval` forever. Our plist
//! uses `KeepAlive = { SuccessfulExit = false; Crashed = true }`: respawn after a non-zero exit
//! or a crash, never after exit 0. So:
//!
//! - **Config refusal under launchd exits 0, not 78.** When the gateway refuses to start
//!   (invalid config, unsafe bind, …) and [`under_launchd`] is true, it calls
//!   [`write_refusal`] (a 0600 marker in the state dir with the message), answers and closes
//!   any connections launchd already queued on its sockets ([`drain_pending`], so a waiting
//!   client gets a 503 with the reason instead of a hang, and launchd does not immediately
//!   relaunch for the still-pending connection), and exits with [`refusal_exit_code`] = 0.
//!   launchd then leaves it stopped; socket activation relaunches it only on a *new*
//!   connection (at most once per ThrottleInterval), which gets the same 503 until the config
//!   is fixed — then it simply starts. Outside launchd the refusal stays exit 78
//!   (`Exit::Config`), which systemd's `RestartPreventExitStatus=78` honours.
//! - `status` reads the marker: `refused: <reason>` instead of a misleading "last exit 0".
//!   `install`/`start`/`restart` clear it before starting; the gateway clears it once ready.
//! - Runtime failures (non-zero exits, crashes) are respawned every ThrottleInterval (10 s);
//!   `status` reports `crash-loop` when launchd shows `spawn scheduled` after a failed run.
//!
//! Rejected alternatives: `KeepAlive = true` (respawns exit 78 and clean exits forever: openclaw
//! #82248, #58306); a self-`launchctl disable` on refusal (a persisted disable is what makes a
//! later `bootstrap` fail with EIO 5, openclaw #80384); `Crashed` only (would not restart after
//! ordinary runtime failures that exit non-zero).
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::paths::Env;
use crate::error::Exit;

/// Marker file in the state dir written by a gateway that refused to start under launchd.
pub const REFUSAL_MARKER: &str = "gateway-refused.json";
/// Upper bound of connections [`drain_pending`] answers in one call.
pub const DRAIN_LIMIT: usize = 1024;

/// What a refusing gateway left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// The refusing process.
    pub pid: u32,
    /// The exit code it would have used outside launchd (78).
    pub exit_code: i32,
    /// The refusal message (names the file/key and what to do; never a secret).
    pub message: String,
    /// Seconds since the Unix epoch.
    pub at_unix: u64,
}

/// True when this process is the launchd job: launchd sets `XPC_SERVICE_NAME` to the job's
/// label, and our plist sets `OPENCLAW_LAUNCHD_LABEL` to the same label.
pub fn under_launchd(env: &dyn Env) -> bool {
    match (
        env.var("XPC_SERVICE_NAME"),
        env.var("OPENCLAW_LAUNCHD_LABEL"),
    ) {
        (Some(xpc), Some(label)) => xpc == label,
        _ => false,
    }
}

/// The exit code for a startup refusal: 0 under launchd (see the module doc), 78 elsewhere.
pub fn refusal_exit_code(under_launchd: bool) -> Exit {
    if under_launchd {
        Exit::Ok
    } else {
        Exit::Config
    }
}

/// `<state_dir>/gateway-refused.json`.
pub fn refusal_path(state_dir: &Path) -> PathBuf {
    state_dir.join(REFUSAL_MARKER)
}

/// Writes the refusal marker atomically with mode 0600.
pub fn write_refusal(state_dir: &Path, message: &str) -> io::Result<()> {
    let r = Refusal {
        pid: std::process::id(),
        exit_code: Exit::Config as i32,
        message: message.to_string(),
        at_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let body = serde_json::to_vec_pretty(&r).map_err(io::Error::other)?;
    crate::config::write::write_atomic(&refusal_path(state_dir), &body, 0o600).map_err(
        |e| match e {
            crate::error::Error::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        },
    )
}

/// Reads the marker; `None` when absent or unreadable.
pub fn read_refusal(state_dir: &Path) -> Option<Refusal> {
    let bytes = std::fs::read(refusal_path(state_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Removes the marker (absent is fine).
pub fn clear_refusal(state_dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(refusal_path(state_dir)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Answers every connection already queued on `listeners` with `503 Service Unavailable` and
/// `message`, then closes it; returns how many were answered (at most [`DRAIN_LIMIT`]). Leaves
/// the listeners non-blocking. Used by a refusing gateway under launchd before it exits.
pub fn drain_pending(listeners: &[TcpListener], message: &str) -> io::Result<usize> {
    let body = format!("{message}\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut n = 0;
    for l in listeners {
        l.set_nonblocking(true)?;
        while n < DRAIN_LIMIT {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_write_timeout(Some(std::time::Duration::from_millis(200)));
                    let _ = s.write_all(response.as_bytes());
                    let _ = s.shutdown(std::net::Shutdown::Both);
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A connection reset before we accepted it: skip it.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn under_launchd_needs_matching_label() {
        let mut e: HashMap<String, String> = HashMap::new();
        assert!(!under_launchd(&e));
        e.insert("XPC_SERVICE_NAME".into(), "ai.openclaw.gateway".into());
        assert!(!under_launchd(&e));
        e.insert(
            "OPENCLAW_LAUNCHD_LABEL".into(),
            "ai.openclaw.gateway".into(),
        );
        assert!(under_launchd(&e));
        e.insert(
            "XPC_SERVICE_NAME".into(),
            "application.com.apple.Terminal".into(),
        );
        assert!(!under_launchd(&e));
        assert_eq!(refusal_exit_code(true), Exit::Ok);
        assert_eq!(refusal_exit_code(false) as i32, 78);
    }

    #[test]
    fn marker_roundtrip_is_private() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_refusal(d.path()).is_none());
        clear_refusal(d.path()).unwrap();
        write_refusal(d.path(), "invalid config /x:3:1").unwrap();
        let r = read_refusal(d.path()).unwrap();
        assert_eq!(r.message, "invalid config /x:3:1");
        assert_eq!(r.exit_code, 78);
        let mode = std::fs::metadata(refusal_path(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        clear_refusal(d.path()).unwrap();
        assert!(read_refusal(d.path()).is_none());
    }

    #[test]
    fn drain_answers_queued_connections_with_503() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // Connections complete in the kernel's accept queue before anyone accepts them.
        let mut clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let n = drain_pending(std::slice::from_ref(&l), "config refused").unwrap();
        assert_eq!(n, 3);
        for c in &mut clients {
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            assert!(s.starts_with("HTTP/1.1 503"), "{s}");
            assert!(s.ends_with("config refused\n"));
        }
        assert_eq!(drain_pending(std::slice::from_ref(&l), "x").unwrap(), 0);
    }
}
