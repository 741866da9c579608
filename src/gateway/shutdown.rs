//! Shutdown: one cancellation fan-out ([`CancellationToken`]) plus explicit tracking of the
//! WebSocket tasks ([`TaskTracker`]) that axum's graceful shutdown does not wait for
//! (axum #3003). The drain is bounded by a deadline; a second signal exits at once.
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Default drain deadline (`OPENCLAW_SHUTDOWN_TIMEOUT_MS` overrides).
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The shutdown handle shared by the accept loop, the WS sessions and background tasks.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh handle.
    pub fn new() -> Self {
        Self::default()
    }
    /// The cancellation token (cancelled when shutdown begins).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
    /// The tracker WS sessions and handlers are spawned on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.token.is_cancelled()
    }
    /// Resolves when shutdown begins.
    pub async fn signalled(&self) {
        self.token.cancelled().await
    }
    /// Begins shutdown.
    pub fn trigger(&self) {
        self.token.cancel()
    }
    /// Stops accepting new tracked tasks and waits for the running ones, up to `deadline`.
    /// Returns false when the deadline passed with tasks still running.
    pub async fn drain(&self, deadline: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_tracked_tasks_and_is_bounded() {
        let s = Shutdown::new();
        let t = s.token().clone();
        s.tracker().spawn(async move { t.cancelled().await });
        s.trigger();
        assert!(s.drain(Duration::from_secs(5)).await);
        let s2 = Shutdown::new();
        s2.tracker().spawn(std::future::pending::<()>());
        assert!(!s2.drain(Duration::from_millis(20)).await);
    }
}
