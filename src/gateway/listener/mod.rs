//! Listening sockets: where they come from (`acquire`: activated, fd store or bound), bind
//! addresses from the bind mode, the dual-stack loopback pair
//! (127.0.0.1 + ::1 on the same port), the EADDRINUSE diagnostic with the owning process,
//! `--force` (find the listener via /proc and stop it), and the bounded accept loop
//! ([`GatewayListener`]: admission budgets (admission.rs) + backoff on accept errors;
//! handshakes never run here).
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

pub(crate) mod acquire;

pub(crate) use acquire::{Inherited, acquire, take_inherited};

use super::admission::{Admission, Slot};
use super::ws::PeerInfo;
use crate::error::{Error, Result};

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// 127.0.0.1 and ::1.
    Loopback,
    /// 0.0.0.0 (all IPv4 interfaces).
    Lan,
    /// One host (name or address).
    Custom(String),
}

impl Bind {
    /// Mode name for logs/status.
    pub fn name(&self) -> &'static str {
        match self {
            Bind::Loopback => "loopback",
            Bind::Lan => "lan",
            Bind::Custom(_) => "custom",
        }
    }

    /// The addresses to bind, in order. Custom hosts are resolved now (startup only).
    pub fn addrs(&self) -> Result<Vec<IpAddr>> {
        Ok(match self {
            Bind::Loopback => vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            Bind::Lan => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
            Bind::Custom(h) => {
                if let Ok(ip) = h.trim_matches(['[', ']']).parse::<IpAddr>() {
                    vec![ip]
                } else {
                    let mut v: Vec<IpAddr> = (h.as_str(), 0)
                        .to_socket_addrs()
                        .map_err(|e| {
                            Error::Config(format!(
                                "cannot resolve gateway bind host {h:?}: {e}; fix --host / gateway.customBindHost"
                            ))
                        })?
                        .map(|a| a.ip())
                        .collect();
                    v.dedup();
                    v.truncate(1);
                    v
                }
            }
        })
    }

    /// True when every address is loopback (auth may be off, tokens may be generated).
    pub fn is_loopback(&self) -> bool {
        match self {
            Bind::Loopback => true,
            Bind::Lan => false,
            Bind::Custom(_) => self
                .addrs()
                .map(|a| !a.is_empty() && a.iter().all(|ip| ip.is_loopback()))
                .unwrap_or(false),
        }
    }
}

/// Why the gateway could not get its listening sockets. Every variant is a startup refusal
/// (exit 78 through [`Error::Config`]) with the text the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// EADDRINUSE: another process listens on the address (the message names the holders
    /// /proc knows and the next steps, see [`addr_in_use_message`]).
    #[error("{message}")]
    AddrInUse {
        /// The address that is taken.
        addr: SocketAddr,
        /// The operator text.
        message: String,
    },
    /// Any other bind failure.
    #[error(
        "Gateway failed to start: failed to bind gateway socket on {url}: {source}\nCheck --bind/--host (gateway.bind, gateway.customBindHost) and that the address exists on this host."
    )]
    Bind {
        /// `ws://host:port`.
        url: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Port 0 on the loopback pair: no port was free on both families after a few tries.
    #[error("Gateway failed to start: could not find a free port shared by IPv4 and IPv6 loopback")]
    NoSharedPort,
    /// The service manager passed fds meant as listeners but none is a usable TCP listener
    /// (binding ourselves would collide with the manager's sockets).
    #[error(
        "socket activation: the service manager passed file descriptors but none is a listening TCP socket named {name:?} ({notes}). Fix the .socket unit (ListenStream=127.0.0.1:PORT, FileDescriptorName={name}) or reinstall with `openclaw gateway install --force`."
    )]
    ActivationUnusable {
        /// The fd name our units set.
        name: &'static str,
        /// Why each fd was skipped, `; `-separated.
        notes: String,
    },
    /// `--force`: the port is taken but no owning process is visible.
    #[error(
        "--force: port {port} is in use but no owning process is visible (another user's process?); stop it manually or pick another --port"
    )]
    ForceNoOwner {
        /// The port.
        port: u16,
    },
    /// `--force`: the port is still taken after stopping its holders.
    #[error(
        "--force: port {port} is still in use after stopping pid(s) {pids:?}; check `ss -ltnp 'sport = :{port}'`"
    )]
    ForceStillInUse {
        /// The port.
        port: u16,
        /// The pids that were signalled.
        pids: Vec<i32>,
    },
    /// The bind addresses could not be determined (a custom host that does not resolve).
    #[error(transparent)]
    Addrs(Error),
}

impl From<ListenError> for Error {
    fn from(e: ListenError) -> Error {
        match e {
            ListenError::Addrs(e) => e,
            other => Error::Config(other.to_string()),
        }
    }
}

/// `ws://host:port` with IPv6 brackets.
pub fn ws_url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(v6) => format!("ws://[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("ws://{v4}:{port}"),
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    // std sets SO_REUSEADDR on Unix (restart without waiting for TIME_WAIT); no SO_REUSEPORT,
    // so a second gateway on the same port gets EADDRINUSE.
    let l = std::net::TcpListener::bind(addr)?;
    // std listens with a backlog of 128; a burst of connects beyond that is dropped by the
    // kernel and retried by clients after a second. listen() again raises it (the kernel caps
    // it at net.core.somaxconn). Admission refuses over-budget sockets explicitly, so the
    // backlog only has to absorb bursts, never a standing queue.
    nix::sys::socket::listen(
        &l,
        nix::sys::socket::Backlog::new(LISTEN_BACKLOG)
            .unwrap_or(nix::sys::socket::Backlog::MAXCONN),
    )?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Listen backlog of sockets the gateway binds itself (systemd's socket units use SOMAXCONN).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds every address of `bind` on `port` (0 = pick one, shared by all addresses).
/// EADDRINUSE becomes the upstream diagnostic (exit 78); an unavailable ::1 is skipped with
/// a warning.
pub fn bind_all(
    bind: &Bind,
    port: u16,
) -> std::result::Result<Vec<std::net::TcpListener>, ListenError> {
    let addrs = bind.addrs().map_err(ListenError::Addrs)?;
    for _attempt in 0..5 {
        let mut out: Vec<std::net::TcpListener> = Vec::new();
        let mut port_now = port;
        let mut retry = false;
        for (i, ip) in addrs.iter().enumerate() {
            match bind_one(SocketAddr::new(*ip, port_now)) {
                Ok(l) => {
                    if port_now == 0 {
                        port_now = l.local_addr().map(|a| a.port()).unwrap_or(0);
                    }
                    out.push(l);
                }
                Err(e) if i > 0 && ip.is_ipv6() && is_unavailable(&e) => {
                    tracing::warn!(
                        "IPv6 loopback {ip} is unavailable on this host ({e}); listening on IPv4 only"
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && port == 0 && i > 0 => {
                    retry = true; // the picked port is taken on the second family; pick again
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    return Err(ListenError::AddrInUse {
                        addr: SocketAddr::new(*ip, port_now),
                        message: addr_in_use_message(*ip, port_now),
                    });
                }
                Err(source) => {
                    return Err(ListenError::Bind {
                        url: ws_url(*ip, port_now),
                        source,
                    });
                }
            }
        }
        if !retry {
            return Ok(out);
        }
    }
    Err(ListenError::NoSharedPort)
}

fn is_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno::EADDRNOTAVAIL) | Some(libc_errno::EAFNOSUPPORT)
    )
}

mod libc_errno {
    pub(super) const EADDRNOTAVAIL: i32 = nix::errno::Errno::EADDRNOTAVAIL as i32;
    pub(super) const EAFNOSUPPORT: i32 = nix::errno::Errno::EAFNOSUPPORT as i32;
}

/// The EADDRINUSE refusal: upstream's first line, the holders /proc knows, next steps.
pub fn addr_in_use_message(ip: IpAddr, port: u16) -> String {
    let url = ws_url(ip, port);
    let mut s = format!(
        "Gateway failed to start: another gateway instance is already listening on {url}\nPort {port} is already in use."
    );
    for h in listeners_on_port(port) {
        s.push_str(&format!("\n- pid {}: {} ({})", h.pid, h.command, h.addr));
    }
    s.push_str(
        "\nIf the gateway is supervised, stop it with: openclaw gateway stop\nOtherwise stop that process, choose another port with --port, or rerun with --force to stop it first.",
    );
    s
}

/// A process holding a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: i32,
    /// `comm` (or the first argv word).
    pub command: String,
    /// Listening address.
    pub addr: SocketAddr,
}

/// Parses `/proc/net/tcp{,6}` text: (local address, inode) of LISTEN sockets on `port`.
pub fn parse_proc_net_tcp(text: &str, v6: bool, port: u16) -> Vec<(SocketAddr, u64)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            continue;
        }
        let Some((ip_hex, port_hex)) = f[1].split_once(':') else {
            continue;
        };
        if u16::from_str_radix(port_hex, 16).ok() != Some(port) {
            continue;
        }
        let Ok(inode) = f[9].parse::<u64>() else {
            continue;
        };
        let ip = if v6 {
            let Ok(b) = hex::decode(ip_hex) else { continue };
            if b.len() != 16 {
                continue;
            }
            // Four 32-bit words, each in host (little-endian) order.
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                for j in 0..4 {
                    bytes[w * 4 + j] = b[w * 4 + 3 - j];
                }
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        } else {
            let Ok(n) = u32::from_str_radix(ip_hex, 16) else {
                continue;
            };
            IpAddr::V4(Ipv4Addr::from(n.swap_bytes()))
        };
        out.push((SocketAddr::new(ip, port), inode));
    }
    out
}

/// Processes listening on `port` (Linux /proc; empty elsewhere or when hidden).
pub fn listeners_on_port(port: u16) -> Vec<Holder> {
    let mut socks = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(t) = std::fs::read_to_string(file) {
            socks.extend(parse_proc_net_tcp(&t, v6, port));
        }
    }
    if socks.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let l = link.to_string_lossy();
            let Some(inode) = l
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<u64>().ok())
            else {
                continue;
            };
            for (addr, ino) in &socks {
                if *ino == inode && !out.iter().any(|h: &Holder| h.pid == pid && h.addr == *addr) {
                    let command = std::fs::read_to_string(p.path().join("comm"))
                        .map(|s| s.trim().to_string())
                        .unwrap_or_else(|_| "?".into());
                    out.push(Holder {
                        pid,
                        command,
                        addr: *addr,
                    });
                }
            }
        }
    }
    out
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // State is the field after the parenthesised comm; zombies have released sockets.
            let state = s
                .rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// `--force`: SIGTERM whoever listens on `port`, wait up to ~600 ms, SIGKILL survivors, then
/// wait (≤1.5 s) for the port to be free. Returns the pids that were signalled.
pub fn force_free_port(port: u16) -> std::result::Result<Vec<i32>, ListenError> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let holders = listeners_on_port(port);
    let mut pids: Vec<i32> = holders.iter().map(|h| h.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() {
        if socket_listed(port) {
            return Err(ListenError::ForceNoOwner { port });
        }
        return Ok(Vec::new());
    }
    for h in &holders {
        tracing::warn!(pid = h.pid, command = %h.command, addr = %h.addr, "--force: stopping the process listening on port {port}");
    }
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(600);
    while std::time::Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids.iter().filter(|p| alive(**p)) {
        tracing::warn!(pid, "--force: still running after SIGTERM; sending SIGKILL");
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while socket_listed(port) {
        if std::time::Instant::now() >= deadline {
            return Err(ListenError::ForceStillInUse { port, pids });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pids)
}

/// What the kernel has listening on `port` (both families, sorted), from `/proc/net`;
/// `None` where that is not readable (not Linux, or hidden).
pub fn kernel_listeners(port: u16) -> Option<Vec<SocketAddr>> {
    let mut found = false;
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(t) = std::fs::read_to_string(file) {
            found = true;
            out.extend(parse_proc_net_tcp(&t, v6, port).into_iter().map(|(a, _)| a));
        }
    }
    out.sort();
    out.dedup();
    found.then_some(out)
}

fn socket_listed(port: u16) -> bool {
    [("/proc/net/tcp", false), ("/proc/net/tcp6", true)]
        .iter()
        .any(|(f, v6)| {
            std::fs::read_to_string(f)
                .map(|t| !parse_proc_net_tcp(&t, *v6, port).is_empty())
                .unwrap_or(false)
        })
}

/// How many bytes a connection may still read, shared between its stream and the code that
/// arms it: unlimited for HTTP, limited for a WebSocket until its handshake succeeds, so an
/// unauthenticated peer cannot make the gateway buffer a 25 MiB frame (or ping forever) before
/// the pre-auth size check sees it.
#[derive(Debug, Clone)]
pub struct ReadBudget(Arc<AtomicUsize>);

impl Default for ReadBudget {
    fn default() -> Self {
        ReadBudget(Arc::new(AtomicUsize::new(usize::MAX)))
    }
}

impl ReadBudget {
    /// Allows at most `bytes` more bytes to be read.
    pub fn limit(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }
    /// Removes the limit.
    pub fn lift(&self) {
        self.0.store(usize::MAX, Ordering::Relaxed);
    }
    /// Bytes left (`usize::MAX` = unlimited).
    pub fn remaining(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
    /// Charges `n` bytes; false when that exceeds the budget.
    fn charge(&self, n: usize) -> bool {
        let left = self.remaining();
        if left == usize::MAX {
            return true;
        }
        self.0.store(left.saturating_sub(n), Ordering::Relaxed);
        n <= left
    }
}

/// The I/O error a stream returns once its [`ReadBudget`] is spent.
#[derive(Debug)]
pub struct BudgetExceeded;

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pre-auth read budget exceeded")
    }
}

impl std::error::Error for BudgetExceeded {}

/// A TCP stream that holds its admission [`Slot`] until it is dropped, and enforces its
/// [`ReadBudget`].
#[derive(Debug)]
pub struct CappedStream {
    inner: TcpStream,
    slot: Slot,
    budget: ReadBudget,
}

impl CappedStream {
    /// The stream's admission slot (shared handle, for authenticating it).
    pub fn slot(&self) -> Slot {
        self.slot.clone()
    }
    /// The stream's read budget (shared handle).
    pub fn budget(&self) -> ReadBudget {
        self.budget.clone()
    }
    /// Local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The socket (a zero-downtime handover duplicates it for the fd store).
impl std::os::fd::AsFd for CappedStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && !self.budget.charge(buf.filled().len() - before)
        {
            return Poll::Ready(Err(io::Error::other(BudgetExceeded)));
        }
        r
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// All listening sockets behind one accept loop, with admission budgets.
#[derive(Debug)]
pub struct GatewayListener {
    listeners: Vec<TcpListener>,
    admission: Admission,
    next: usize,
    backoff: Duration,
    pause: Option<tokio_util::sync::CancellationToken>,
}

impl GatewayListener {
    /// Wraps bound listeners (at least one).
    pub fn new(listeners: Vec<TcpListener>, admission: Admission) -> GatewayListener {
        assert!(!listeners.is_empty(), "GatewayListener needs a listener");
        GatewayListener {
            listeners,
            admission,
            next: 0,
            backoff: Duration::ZERO,
            pause: None,
        }
    }

    /// Stops accepting for good once `token` is cancelled (a handover: new connections wait
    /// in the backlog for the next process), without the graceful shutdown of connections
    /// already accepted, which would drop a request that has not been read yet.
    pub fn pause_on(mut self, token: tokio_util::sync::CancellationToken) -> GatewayListener {
        self.pause = Some(token);
        self
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl Listener for GatewayListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        if let Some(p) = self.pause.clone() {
            tokio::select! {
                biased;
                _ = p.cancelled() => std::future::pending::<()>().await,
                r = self.accept_inner() => return r,
            }
        }
        self.accept_inner().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listeners[0].local_addr()
    }
}

impl GatewayListener {
    async fn accept_inner(&mut self) -> (CappedStream, SocketAddr) {
        // Accept first, then admit or refuse: a socket over budget gets an answer instead of
        // waiting in the kernel backlog until the client gives up.
        loop {
            let start = self.next;
            let n = self.listeners.len();
            let listeners = &self.listeners;
            let (r, idx) = poll_fn(|cx| {
                for k in 0..n {
                    let i = (start + k) % n;
                    if let Poll::Ready(r) = listeners[i].poll_accept(cx) {
                        return Poll::Ready((r, i));
                    }
                }
                Poll::Pending
            })
            .await;
            self.next = (idx + 1) % n;
            match r {
                Ok((stream, addr)) => {
                    self.backoff = Duration::ZERO;
                    let _ = stream.set_nodelay(true);
                    let Some(slot) = self.admission.admit(addr.ip()) else {
                        tracing::debug!(remote = %addr, "over the connection budget; refusing with 503");
                        self.admission.refuse(stream);
                        continue;
                    };
                    return (
                        CappedStream {
                            inner: stream,
                            slot,
                            budget: ReadBudget::default(),
                        },
                        addr,
                    );
                }
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: back off (exponential, ≤1 s) instead of spinning.
                    self.backoff =
                        (self.backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                    tracing::error!("accept error: {e}; retrying in {:?}", self.backoff);
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }
}

impl Connected<IncomingStream<'_, GatewayListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, GatewayListener>) -> Self {
        let remote = *stream.remote_addr();
        let local = stream
            .io()
            .inner
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        PeerInfo { remote, local }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_parsing() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:4966 00000000:0000 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        let r = parse_proc_net_tcp(v4, false, 0x4965);
        assert_eq!(r, vec![("127.0.0.1:18789".parse().unwrap(), 12345)]);
        let v6 = "header\n   0: 00000000000000000000000001000000:4965 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1\n";
        let r = parse_proc_net_tcp(v6, true, 18789);
        assert_eq!(r, vec![("[::1]:18789".parse().unwrap(), 777)]);
    }

    #[test]
    fn finds_our_own_listener_holder_from_a_child_view() {
        // Bind a socket and look it up; our own pid is excluded, so the list is empty, but
        // the socket itself must be visible in /proc/net.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if std::path::Path::new("/proc/net/tcp").exists() {
            assert!(socket_listed(port));
            assert!(listeners_on_port(port).is_empty());
        }
    }

    #[test]
    fn bind_modes() {
        assert!(Bind::Loopback.is_loopback());
        assert!(!Bind::Lan.is_loopback());
        assert!(Bind::Custom("127.0.0.2".into()).is_loopback());
        assert!(!Bind::Custom("0.0.0.0".into()).is_loopback());
        assert_eq!(
            ws_url("::1".parse().unwrap(), 5),
            "ws://[::1]:5".to_string()
        );
    }

    #[test]
    fn loopback_pair_shares_a_port() {
        let ls = bind_all(&Bind::Loopback, 0).unwrap();
        let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
        assert!(ports.iter().all(|p| *p == ports[0]));
        let e = bind_all(&Bind::Custom("127.0.0.1".into()), ports[0]).unwrap_err();
        assert!(
            matches!(&e, ListenError::AddrInUse { addr, .. } if addr.port() == ports[0]),
            "{e:?}"
        );
        // The operator text is upstream's, and the refusal exits 78.
        assert!(
            e.to_string()
                .contains("another gateway instance is already listening on ws://127.0.0.1:"),
            "{e}"
        );
        assert_eq!(Error::from(e).exit(), crate::error::Exit::Config);
    }
}
