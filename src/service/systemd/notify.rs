//! The sd_notify protocol. Does nothing when `NOTIFY_SOCKET` is absent.
//! STUB: filled in by the systemd work; the gateway calls these at the right moments.

/// Sends service-manager notifications.
#[derive(Debug, Clone, Default)]
pub struct Notifier {}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (and `WATCHDOG_USEC`) from the environment.
    pub fn from_env() -> Notifier {
        Notifier {}
    }
    /// `READY=1` + `STATUS=`: only once the listener is held, config valid and the server answers.
    pub fn ready(&self, _status: &str) {}
    /// `STATUS=<human text>`.
    pub fn status(&self, _status: &str) {}
    /// `RELOADING=1` + `MONOTONIC_USEC`.
    pub fn reloading(&self) {}
    /// `STOPPING=1`.
    pub fn stopping(&self) {}
    /// `EXTEND_TIMEOUT_USEC` during long drains.
    pub fn extend_timeout(&self, _by: std::time::Duration) {}
}
