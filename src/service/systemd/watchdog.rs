//! `WATCHDOG=1` from a real liveness check, never from a bare timer.
//!
//! Every half `WATCHDOG_USEC` a task *on the gateway's runtime* connects to the gateway's own
//! listener and requires `GET /healthz` to answer within the interval. So a ping proves that
//! (a) the runtime still schedules tasks and timers, (b) the accept loop accepts, and (c) the
//! HTTP stack answers. A wedged runtime or accept loop sends no ping and systemd applies
//! `WatchdogSec=` (SIGABRT, then `Restart=on-failure`).
//!
//! Test hook (debug builds or the `test-hooks` feature only): when `OPENCLAW_TEST_WEDGE_FILE`
//! names a file that exists, the next tick blocks every runtime worker forever.
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::notify::Notifier;

/// Where to probe a listener bound to `addr` (wildcards are probed on loopback).
pub(crate) fn probe_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// One self-check: `GET /healthz` on `addr` must answer 200.
pub(crate) async fn healthz(addr: SocketAddr) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write {addr}: {e}"))?;
    let mut buf = [0u8; 64];
    let n = s
        .read(&mut buf)
        .await
        .map_err(|e| format!("read {addr}: {e}"))?;
    let head = String::from_utf8_lossy(&buf[..n]);
    if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "{addr} answered {:?}",
            head.lines().next().unwrap_or("")
        ))
    }
}

/// Spawns the watchdog on the current runtime when the manager asked for one
/// (`WATCHDOG_USEC`); `check` is the liveness check (normally [`healthz`] on our listener).
pub(crate) fn spawn<F, Fut>(notifier: Notifier, check: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let interval = notifier.watchdog_interval()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            test_hooks::maybe_wedge();
            match tokio::time::timeout(interval, check()).await {
                Ok(Ok(())) => {
                    if failing {
                        tracing::info!("watchdog: liveness check passes again");
                        failing = false;
                    }
                    notifier.watchdog();
                }
                Ok(Err(e)) => {
                    if !failing {
                        tracing::warn!(
                            "watchdog: liveness check failed ({e}); withholding WATCHDOG=1"
                        );
                    }
                    failing = true;
                }
                Err(_) => {
                    if !failing {
                        tracing::warn!(
                            "watchdog: liveness check did not finish within {interval:?}; withholding WATCHDOG=1"
                        );
                    }
                    failing = true;
                }
            }
        }
    }))
}

/// Keeps `systemctl status` current: every `every`, sends `STATUS=<status()>` when the text
/// changed (e.g. "listening on …; 3 clients"). Nothing runs without a service manager.
pub(crate) fn spawn_status<F>(
    notifier: Notifier,
    every: std::time::Duration,
    status: F,
) -> Option<tokio::task::JoinHandle<()>>
where
    F: Fn() -> String + Send + 'static,
{
    if !notifier.enabled() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut last = String::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = status();
            if now != last {
                notifier.status(&now);
                last = now;
            }
        }
    }))
}

/// Convenience: the watchdog for a gateway listening on `addr`.
pub(crate) fn spawn_for_listener(
    notifier: Notifier,
    addr: SocketAddr,
) -> Option<tokio::task::JoinHandle<()>> {
    let target = probe_addr(addr);
    spawn(notifier, move || healthz(target))
}

#[cfg(any(debug_assertions, feature = "test-hooks"))]
mod test_hooks {
    /// Blocks every worker of the current runtime when the wedge file exists.
    pub(super) fn maybe_wedge() {
        let Some(path) = std::env::var_os("OPENCLAW_TEST_WEDGE_FILE") else {
            return;
        };
        if !std::path::Path::new(&path).exists() {
            return;
        }
        tracing::warn!("test hook: wedging the runtime (OPENCLAW_TEST_WEDGE_FILE exists)");
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        for _ in 0..workers {
            tokio::spawn(async {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            });
        }
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(any(debug_assertions, feature = "test-hooks")))]
mod test_hooks {
    pub(super) fn maybe_wedge() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::paths::Env;
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    struct E(Vec<(&'static str, String)>);
    impl Env for E {
        fn var(&self, key: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn wildcards_are_probed_on_loopback() {
        assert_eq!(
            probe_addr("0.0.0.0:5".parse().unwrap()),
            "127.0.0.1:5".parse().unwrap()
        );
        assert_eq!(
            probe_addr("[::]:5".parse().unwrap()),
            "[::1]:5".parse().unwrap()
        );
        assert_eq!(
            probe_addr("127.0.0.2:5".parse().unwrap()),
            "127.0.0.2:5".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn pings_only_while_the_check_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::from(
            &E(vec![
                ("NOTIFY_SOCKET", path.display().to_string()),
                ("WATCHDOG_USEC", "100000".into()),
            ]),
            1,
        );
        let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let h = healthy.clone();
        let task = spawn(n, move || {
            let ok = h.load(std::sync::atomic::Ordering::SeqCst);
            async move { if ok { Ok(()) } else { Err("down".to_string()) } }
        })
        .unwrap();
        let mut buf = [0u8; 64];
        let len = tokio::task::spawn_blocking(move || {
            let len = rx.recv(&mut buf).unwrap();
            (rx, buf, len)
        })
        .await
        .unwrap();
        let (rx, buf, len) = len;
        assert_eq!(&buf[..len], b"WATCHDOG=1\n");
        healthy.store(false, std::sync::atomic::Ordering::SeqCst);
        // Drain pings that raced with the switch, then expect silence for several intervals.
        rx.set_nonblocking(true).unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut b = [0u8; 64];
        while rx.recv(&mut b).is_ok() {}
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            rx.recv(&mut b).is_err(),
            "no ping may be sent while unhealthy"
        );
        task.abort();
    }
}
