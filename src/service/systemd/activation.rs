//! Socket activation (`LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`). Must run before any thread
//! exists (it unsets the variables). STUB: filled in by the systemd work.

/// Listeners inherited from a service manager, with the manager's fd names.
#[derive(Debug, Default)]
pub struct Inherited {
    /// (fd name, listener) pairs; the listeners are already non-blocking.
    pub listeners: Vec<(String, std::net::TcpListener)>,
    /// `systemd` or `launchd`, for logs and status.
    pub source: &'static str,
}

/// Takes the listeners passed by systemd (or launchd), if any. Call before starting threads.
pub fn take_inherited() -> crate::error::Result<Option<Inherited>> {
    Ok(None)
}
