//! The sd_notify protocol (docs/service-managers.md A2): one `AF_UNIX`/`SOCK_DGRAM` datagram of
//! newline-separated `KEY=VALUE` lines per message to `$NOTIFY_SOCKET`.
//!
//! Hand-rolled on purpose: the `sd-notify` crate (0.5) treats `@name` as a file path, so it
//! silently sends nothing to abstract-namespace sockets (old systemd, test harnesses, other
//! managers). We use it only for `MONOTONIC_USEC` (CLOCK_MONOTONIC). Encoding is pure
//! ([`encode`]); sending never fails the caller: errors are logged once. Nothing is sent when
//! `NOTIFY_SOCKET` is absent.
//!
//! # File-descriptor store (docs/service-managers.md A3)
//! [`Notifier::send_with_fds`] attaches fds as `SCM_RIGHTS` (nix `sendmsg`, to the same path or
//! abstract target; `sd-notify`'s `notify_with_fds` has the abstract-socket gap above, and
//! libsystemd would be a second notify stack): `FDSTORE=1` + `FDNAME=` uploads, and
//! [`Notifier::remove_stored`] sends `FDSTOREREMOVE=1`. Unlike status messages these report
//! errors: a handover must know whether the manager got the fds. [`Notifier::barrier`]
//! (`BARRIER=1`) waits until the manager has processed everything sent before, so a process
//! that exits right after storing fds is not mistaken for gone before its uploads count.
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::paths::{Env, ProcessEnv};

/// One notification field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// `READY=1`.
    Ready,
    /// `RELOADING=1`.
    Reloading,
    /// `MONOTONIC_USEC=` (must ride in the same datagram as `RELOADING=1`).
    MonotonicUsec(u64),
    /// `STOPPING=1`.
    Stopping,
    /// `STATUS=` (one line; newlines are replaced).
    Status(String),
    /// `WATCHDOG=1`.
    Watchdog,
    /// `WATCHDOG=trigger`: ask the manager to treat us as hung.
    WatchdogTrigger,
    /// `EXTEND_TIMEOUT_USEC=`.
    ExtendTimeoutUsec(u64),
    /// `ERRNO=`.
    Errno(i32),
    /// `FDSTORE=1`: the attached fds go to the fd store.
    FdStore,
    /// `FDSTOREREMOVE=1`: remove the stored fds named by [`Msg::FdName`].
    FdStoreRemove,
    /// `FDNAME=` (see [`valid_fd_name`]).
    FdName(String),
    /// `BARRIER=1` (must be alone in its datagram, with exactly one fd).
    Barrier,
}

/// systemd's rule for `FDNAME=` (`fdname_is_valid`): 1–255 printable ASCII characters, no `:`.
pub(crate) fn valid_fd_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b':')
}

/// Most fds one datagram may carry (`SCM_MAX_FD`).
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 253;

/// Encodes fields as one datagram payload.
pub(crate) fn encode(msgs: &[Msg]) -> String {
    let mut out = String::new();
    for m in msgs {
        match m {
            Msg::Ready => out.push_str("READY=1"),
            Msg::Reloading => out.push_str("RELOADING=1"),
            Msg::MonotonicUsec(u) => out.push_str(&format!("MONOTONIC_USEC={u}")),
            Msg::Stopping => out.push_str("STOPPING=1"),
            Msg::Status(s) => {
                out.push_str("STATUS=");
                out.push_str(&s.replace(['\n', '\r'], " "));
            }
            Msg::Watchdog => out.push_str("WATCHDOG=1"),
            Msg::WatchdogTrigger => out.push_str("WATCHDOG=trigger"),
            Msg::ExtendTimeoutUsec(u) => out.push_str(&format!("EXTEND_TIMEOUT_USEC={u}")),
            Msg::Errno(e) => out.push_str(&format!("ERRNO={e}")),
            Msg::FdStore => out.push_str("FDSTORE=1"),
            Msg::FdStoreRemove => out.push_str("FDSTOREREMOVE=1"),
            Msg::FdName(n) => {
                out.push_str("FDNAME=");
                out.push_str(&n.replace(['\n', '\r'], " "));
            }
            Msg::Barrier => out.push_str("BARRIER=1"),
        }
        out.push('\n');
    }
    out
}

/// Where `NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A filesystem socket (`/run/user/1000/systemd/notify`).
    Path(PathBuf),
    /// A Linux abstract-namespace socket (`@name`, sent as `\0name`).
    Abstract(Vec<u8>),
}

/// Parses `NOTIFY_SOCKET`. `None` when absent or unusable (e.g. `vsock:`, unsupported here).
pub(crate) fn parse_target(v: &str) -> Option<Target> {
    if let Some(name) = v.strip_prefix('@') {
        Some(Target::Abstract(name.as_bytes().to_vec()))
    } else if v.starts_with('/') {
        Some(Target::Path(PathBuf::from(v)))
    } else {
        None
    }
}

/// The watchdog ping interval: half of `WATCHDOG_USEC`, when `WATCHDOG_PID` is absent or ours.
pub(crate) fn watchdog_interval(env: &dyn Env, pid: u32) -> Option<Duration> {
    let usec: u64 = env.var("WATCHDOG_USEC")?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(p) = env.var("WATCHDOG_PID")
        && p.trim().parse::<u32>().ok() != Some(pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

#[derive(Debug)]
struct Inner {
    target: Target,
    sock: Option<UnixDatagram>,
    warned: AtomicBool,
}

/// Sends service-manager notifications. Cheap to clone; a no-op without `NOTIFY_SOCKET`.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (and `WATCHDOG_USEC`/`WATCHDOG_PID`) from the environment.
    pub fn from_env() -> Notifier {
        Self::from(&ProcessEnv, std::process::id())
    }

    /// Same, from an injected environment.
    pub fn from(env: &dyn Env, pid: u32) -> Notifier {
        let inner = env
            .var("NOTIFY_SOCKET")
            .and_then(|v| parse_target(&v))
            .map(|target| {
                let sock = UnixDatagram::unbound().ok();
                if let Some(s) = &sock {
                    // A manager that stops reading must never stall the gateway.
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                }
                Arc::new(Inner {
                    target,
                    sock,
                    warned: AtomicBool::new(false),
                })
            });
        Notifier {
            inner,
            watchdog: watchdog_interval(env, pid),
        }
    }

    /// Whether a service manager listens (`NOTIFY_SOCKET` set).
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), if the manager wants pings.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.inner.as_ref().and(self.watchdog)
    }

    /// Sends the fields as one datagram. Returns whether it was sent.
    pub fn send(&self, msgs: &[Msg]) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let payload = encode(msgs);
        let res = match &inner.sock {
            None => Err(std::io::Error::other("could not create a datagram socket")),
            Some(sock) => send_to(sock, &inner.target, payload.as_bytes()),
        };
        match res {
            Ok(_) => true,
            Err(e) => {
                if !inner.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "sd_notify: sending to NOTIFY_SOCKET {:?} failed: {e} (further failures are not logged)",
                        inner.target
                    );
                }
                false
            }
        }
    }

    /// Sends the fields as one datagram with `fds` attached (`SCM_RIGHTS`). Errors are returned
    /// (not logged): fd-store callers must know whether the manager received the fds. Without
    /// `NOTIFY_SOCKET` this is an error too.
    pub fn send_with_fds(&self, msgs: &[Msg], fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
        let inner = self
            .inner
            .as_ref()
            .ok_or_else(|| std::io::Error::other("NOTIFY_SOCKET is not set"))?;
        let sock = inner
            .sock
            .as_ref()
            .ok_or_else(|| std::io::Error::other("could not create a datagram socket"))?;
        if fds.len() > MAX_FDS_PER_MESSAGE {
            return Err(std::io::Error::other(format!(
                "{} fds in one message (at most {MAX_FDS_PER_MESSAGE})",
                fds.len()
            )));
        }
        for m in msgs {
            if let Msg::FdName(n) = m
                && !valid_fd_name(n)
            {
                return Err(std::io::Error::other(format!("invalid FDNAME {n:?}")));
            }
        }
        send_fds_to(sock, &inner.target, encode(msgs).as_bytes(), fds)
    }

    /// `FDSTORE=1` + `FDNAME=name` with one fd.
    pub fn store_fd(&self, name: &str, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        self.send_with_fds(&[Msg::FdStore, Msg::FdName(name.into())], &[fd])
    }

    /// `FDSTOREREMOVE=1` + `FDNAME=name`: the manager closes every stored fd with that name.
    pub fn remove_stored(&self, name: &str) -> std::io::Result<()> {
        self.send_with_fds(&[Msg::FdStoreRemove, Msg::FdName(name.into())], &[])
    }

    /// `BARRIER=1`: returns once the manager has processed every message sent before (it
    /// closes its copy of the pipe we pass), or errors after `timeout`.
    pub fn barrier(&self, timeout: Duration) -> std::io::Result<()> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        // pipe() + FD_CLOEXEC: pipe2 does not exist on macOS (this file is type-checked there).
        let (r, w) = nix::unistd::pipe().map_err(std::io::Error::from)?;
        for fd in [&r, &w] {
            nix::fcntl::fcntl(
                fd.as_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(std::io::Error::from)?;
        }
        self.send_with_fds(&[Msg::Barrier], &[w.as_fd()])?;
        drop(w);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::ZERO);
            let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("BARRIER=1 not acknowledged within {timeout:?}"),
                    ));
                }
                Ok(_) => {
                    let ev = fds[0].revents().unwrap_or(PollFlags::empty());
                    if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                        return Ok(());
                    }
                    // POLLIN without data cannot happen on a pipe nobody writes to; loop.
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `READY=1` + `STATUS=`: only once the listener is held, config valid and the server answers.
    pub fn ready(&self, status: &str) {
        ready_delay_hook();
        self.send(&[Msg::Ready, Msg::Status(status.into())]);
    }
    /// `STATUS=<human text>`.
    pub fn status(&self, status: &str) {
        self.send(&[Msg::Status(status.into())]);
    }
    /// `RELOADING=1` + `MONOTONIC_USEC` in one datagram (required by `Type=notify-reload`).
    /// Must be followed by [`Notifier::ready`], also when the reload failed.
    pub fn reloading(&self) {
        let now = monotonic_usec();
        let mut m = vec![
            Msg::Reloading,
            Msg::Status("reloading configuration".into()),
        ];
        if let Some(u) = now {
            m.push(Msg::MonotonicUsec(u));
        }
        self.send(&m);
    }
    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&[
            Msg::Stopping,
            Msg::Status("stopping: draining connections".into()),
        ]);
    }
    /// `EXTEND_TIMEOUT_USEC` during long drains: the current start/stop timeout is extended to
    /// `by` from now. Send again before it runs out.
    pub fn extend_timeout(&self, by: std::time::Duration) {
        self.send(&[Msg::ExtendTimeoutUsec(
            by.as_micros().min(u64::MAX as u128) as u64
        )]);
    }
    /// `WATCHDOG=1`: the liveness check passed.
    pub fn watchdog(&self) {
        self.send(&[Msg::Watchdog]);
    }
    /// `WATCHDOG=trigger`: we detected we are wedged; the manager applies its watchdog action.
    pub fn watchdog_trigger(&self, why: &str) {
        self.send(&[
            Msg::WatchdogTrigger,
            Msg::Status(format!("unhealthy: {why}")),
        ]);
    }
}

/// Test hook (debug builds or the `test-hooks` feature): `OPENCLAW_TEST_READY_DELAY_MS`
/// delays `READY=1`, so a test can observe the manager reporting `activating` meanwhile.
#[cfg(any(debug_assertions, feature = "test-hooks"))]
fn ready_delay_hook() {
    if let Some(ms) = std::env::var("OPENCLAW_TEST_READY_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms.min(60_000)));
    }
}
#[cfg(not(any(debug_assertions, feature = "test-hooks")))]
fn ready_delay_hook() {}

fn send_to(sock: &UnixDatagram, target: &Target, buf: &[u8]) -> std::io::Result<usize> {
    match target {
        Target::Path(p) => sock.send_to(buf, p),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(buf, &addr)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Target::Abstract(_) => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "abstract sockets exist only on Linux",
        )),
    }
}

fn send_fds_to(
    sock: &UnixDatagram,
    target: &Target,
    buf: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    use std::os::fd::AsRawFd;
    let addr = match target {
        Target::Path(p) => UnixAddr::new(p.as_path()),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Target::Abstract(name) => UnixAddr::new_abstract(name),
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Target::Abstract(_) => {
            return Err(std::io::Error::other(
                "abstract sockets exist only on Linux",
            ));
        }
    }
    .map_err(std::io::Error::from)?;
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    let iov = [std::io::IoSlice::new(buf)];
    loop {
        match sendmsg(
            sock.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::empty(),
            Some(&addr),
        ) {
            Ok(n) if n == buf.len() => return Ok(()),
            Ok(n) => {
                return Err(std::io::Error::other(format!(
                    "short datagram ({n} of {} bytes)",
                    buf.len()
                )));
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// CLOCK_MONOTONIC in microseconds (the clock systemd compares `MONOTONIC_USEC` with).
pub(crate) fn monotonic_usec() -> Option<u64> {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(sd_notify::NotifyState::MonotonicUsec(u)) => u64::try_from(u).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(Vec<(&'static str, String)>);
    impl Env for E {
        fn var(&self, key: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, v)| *k == key && !v.is_empty())
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn encodes_one_field_per_line() {
        assert_eq!(
            encode(&[Msg::Ready, Msg::Status("listening on\n127.0.0.1:1".into())]),
            "READY=1\nSTATUS=listening on 127.0.0.1:1\n"
        );
        assert_eq!(
            encode(&[Msg::Reloading, Msg::MonotonicUsec(12)]),
            "RELOADING=1\nMONOTONIC_USEC=12\n"
        );
        assert_eq!(
            encode(&[Msg::ExtendTimeoutUsec(5_000_000)]),
            "EXTEND_TIMEOUT_USEC=5000000\n"
        );
        assert_eq!(encode(&[Msg::WatchdogTrigger]), "WATCHDOG=trigger\n");
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("@foo"),
            Some(Target::Abstract(b"foo".to_vec()))
        );
        assert_eq!(
            parse_target("/run/systemd/notify"),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(parse_target("vsock:2:1234"), None);
    }

    #[test]
    fn watchdog_half_interval_and_pid_check() {
        let e = E(vec![("WATCHDOG_USEC", "4000000".into())]);
        assert_eq!(watchdog_interval(&e, 9), Some(Duration::from_secs(2)));
        let e = E(vec![
            ("WATCHDOG_USEC", "4000000".into()),
            ("WATCHDOG_PID", "9".into()),
        ]);
        assert_eq!(watchdog_interval(&e, 9), Some(Duration::from_secs(2)));
        assert_eq!(watchdog_interval(&e, 10), None);
        assert_eq!(
            watchdog_interval(&E(vec![("WATCHDOG_USEC", "0".into())]), 9),
            None
        );
    }

    #[test]
    fn nothing_is_sent_without_notify_socket() {
        let n = Notifier::from(&E(vec![("WATCHDOG_USEC", "1000".into())]), 1);
        assert!(!n.enabled());
        assert!(!n.send(&[Msg::Ready]));
        // No manager to ping: no watchdog either.
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from(&E(vec![("NOTIFY_SOCKET", path.display().to_string())]), 1);
        n.ready("up");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up\n");
    }

    // Abstract sockets exist only on Linux (and the test uses Linux's SocketAddrExt).
    #[cfg(target_os = "linux")]
    #[test]
    fn fd_names_follow_systemds_rules() {
        assert!(valid_fd_name("ws-6f1c0c1e-0000-4000-8000-000000000000"));
        assert!(valid_fd_name("listen-18789-6"));
        assert!(!valid_fd_name(""));
        assert!(!valid_fd_name("a:b"));
        assert!(!valid_fd_name("a\nb"));
        assert!(!valid_fd_name(&"x".repeat(256)));
        assert_eq!(
            encode(&[Msg::FdStore, Msg::FdName("ws-1".into())]),
            "FDSTORE=1\nFDNAME=ws-1\n"
        );
        assert_eq!(
            encode(&[Msg::FdStoreRemove, Msg::FdName("ws-1".into())]),
            "FDSTOREREMOVE=1\nFDNAME=ws-1\n"
        );
    }

    /// A stand-in manager: receives one datagram with its fds (SCM_RIGHTS).
    #[cfg(target_os = "linux")]
    fn recv_with_fds(rx: &UnixDatagram) -> (String, Vec<std::os::fd::OwnedFd>) {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        use std::os::fd::{AsRawFd, FromRawFd};
        let mut buf = [0u8; 512];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let msg = recvmsg::<()>(
            rx.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let mut fds = Vec::new();
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(v) = c {
                // SAFETY (test): the kernel installed these fds for us.
                #[allow(unsafe_code)]
                fds.extend(
                    v.into_iter()
                        .map(|f| unsafe { std::os::fd::OwnedFd::from_raw_fd(f) }),
                );
            }
        }
        let n = msg.bytes;
        (String::from_utf8_lossy(&buf[..n]).into_owned(), fds)
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn stores_fds_removes_them_and_waits_on_a_barrier() {
        use std::io::{Read, Write};
        use std::os::linux::net::SocketAddrExt;
        let name = format!("openclaw-fdstore-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::from(&E(vec![("NOTIFY_SOCKET", format!("@{name}"))]), 1);
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        n.store_fd("ws-1", b.as_fd()).unwrap();
        drop(b);
        let (text, fds) = recv_with_fds(&rx);
        assert_eq!(text, "FDSTORE=1\nFDNAME=ws-1\n");
        assert_eq!(fds.len(), 1);
        // The received fd is the same socket: what we write arrives at the other end.
        let mut stored = std::os::unix::net::UnixStream::from(fds.into_iter().next().unwrap());
        stored.write_all(b"ok").unwrap();
        let mut got = [0u8; 2];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok");
        assert!(n.store_fd("bad:name", a.as_fd()).is_err());

        n.remove_stored("ws-1").unwrap();
        let (text, fds) = recv_with_fds(&rx);
        assert_eq!(
            (text.as_str(), fds.len()),
            ("FDSTOREREMOVE=1\nFDNAME=ws-1\n", 0)
        );

        // Barrier: the "manager" acknowledges by closing the pipe it received.
        let t = std::thread::spawn(move || {
            let (text, fds) = recv_with_fds(&rx);
            assert_eq!(text, "BARRIER=1\n");
            assert_eq!(fds.len(), 1);
            drop(fds);
            rx
        });
        n.barrier(Duration::from_secs(5)).unwrap();
        let rx = t.join().unwrap();
        // Nobody closes it: times out.
        let t = std::thread::spawn(move || recv_with_fds(&rx));
        let e = n.barrier(Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        drop(t.join().unwrap());
        assert!(Notifier::default().store_fd("x", a.as_fd()).is_err());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("openclaw-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::from(&E(vec![("NOTIFY_SOCKET", format!("@{name}"))]), 1);
        n.reloading();
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(text.starts_with("RELOADING=1\n"), "{text}");
        let usec: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec > 0);
    }
}
