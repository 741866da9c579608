//! Unix primitives for socket activation and the fd store: adopting inherited fds (listening
//! sockets, stored connections, state memfds), duplicating a live connection's fd for the
//! store, memfds, and removing the activation variables before any thread exists.
#![allow(unsafe_code)]

use std::io::{Read, Seek};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname};
use nix::sys::socket::{getsockopt, sockopt};
use nix::sys::stat::{SFlag, fstat};

/// What an inherited fd turned out to be, when it is not a usable TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAListener {
    /// The fd is not open (the manager promised it, but nothing is there).
    Closed,
    /// Not a socket at all (a file, pipe, memfd …).
    NotSocket,
    /// A socket, but not a listening TCP (IPv4/IPv6 stream) socket; the text says what it is.
    Other(String),
}

impl std::fmt::Display for NotAListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAListener::Closed => f.write_str("not an open file descriptor"),
            NotAListener::NotSocket => f.write_str("not a socket"),
            NotAListener::Other(s) => f.write_str(s),
        }
    }
}

/// Takes ownership of an fd that a service manager passed us (`LISTEN_FDS`, starting at 3),
/// checks that it is a listening TCP socket, and returns it as a close-on-exec, non-blocking
/// [`TcpListener`]. An fd that is open but unusable is closed (it was passed to us; keeping
/// it would only leak it) and described in the error.
pub fn adopt_tcp_listener(fd: RawFd) -> Result<TcpListener, NotAListener> {
    if fd < 3 {
        // Never adopt stdio, whatever the environment claims.
        return Err(NotAListener::Other(format!("fd {fd} is stdio")));
    }
    // F_GETFD fails with EBADF on a closed fd: check before claiming ownership.
    // SAFETY: F_GETFD on a raw fd number has no effect on the fd.
    let probe = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    if fcntl(probe, FcntlArg::F_GETFD).is_err() {
        return Err(NotAListener::Closed);
    }
    // SAFETY: the fd is open and, per the activation protocol (LISTEN_PID == our pid), it was
    // handed to this process alone; nothing else in the process refers to it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    check_tcp_listener(&owned)?;
    fcntl(owned.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| NotAListener::Other(format!("setting FD_CLOEXEC: {e}")))?;
    let flags = fcntl(owned.as_fd(), FcntlArg::F_GETFL)
        .map_err(|e| NotAListener::Other(format!("reading flags: {e}")))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(owned.as_fd(), FcntlArg::F_SETFL(flags))
        .map_err(|e| NotAListener::Other(format!("setting O_NONBLOCK: {e}")))?;
    Ok(TcpListener::from(owned))
}

/// Takes ownership of an fd the service manager passed us (any kind: a stored connection, a
/// memfd …): it must be open and not stdio; it is made close-on-exec.
pub fn claim_fd(fd: RawFd) -> Result<OwnedFd, NotAListener> {
    if fd < 3 {
        return Err(NotAListener::Other(format!("fd {fd} is stdio")));
    }
    // SAFETY: F_GETFD on a raw fd number has no effect on the fd.
    let probe = unsafe { BorrowedFd::borrow_raw(fd) };
    if fcntl(probe, FcntlArg::F_GETFD).is_err() {
        return Err(NotAListener::Closed);
    }
    // SAFETY: the fd is open and was handed to this process alone by the manager (LISTEN_PID
    // is our pid); nothing else in the process refers to it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(owned.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| NotAListener::Other(format!("setting FD_CLOEXEC: {e}")))?;
    Ok(owned)
}

/// What a passed fd is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdKind {
    /// A listening TCP socket.
    TcpListener,
    /// A connected TCP socket (with its peer, when it still has one).
    TcpStream(Option<SocketAddr>),
    /// A regular file or memfd.
    File,
    /// Anything else, described.
    Other(String),
}

/// Classifies an fd by `fstat`, `SO_TYPE`, family and `SO_ACCEPTCONN`.
pub fn fd_kind(fd: &OwnedFd) -> FdKind {
    let Ok(st) = fstat(fd.as_fd()) else {
        return FdKind::Other("not an open file descriptor".into());
    };
    let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if fmt == SFlag::S_IFREG {
        return FdKind::File;
    }
    if fmt != SFlag::S_IFSOCK {
        return FdKind::Other("not a socket nor a file".into());
    }
    if check_tcp_listener(fd).is_ok() {
        return FdKind::TcpListener;
    }
    let ty = getsockopt(fd, sockopt::SockType).ok();
    let family = getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .ok()
        .and_then(|a| a.family());
    match (family, ty) {
        (Some(AddressFamily::Inet | AddressFamily::Inet6), Some(SockType::Stream)) => {
            // std knows how to turn the peer address into a SocketAddr: ask it on a duplicate.
            let peer = fd
                .try_clone()
                .ok()
                .and_then(|d| std::net::TcpStream::from(d).peer_addr().ok());
            FdKind::TcpStream(peer)
        }
        (f, t) => FdKind::Other(format!("a {f:?} {t:?} socket")),
    }
}

/// A sealed, close-on-exec memfd holding `bytes` (state for the fd store). Linux only (the
/// fd store is systemd's); elsewhere an `Unsupported` error.
#[cfg(not(target_os = "linux"))]
pub fn memfd_with(name: &str, bytes: &[u8]) -> std::io::Result<OwnedFd> {
    let _ = (name, bytes);
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "memfds exist only on Linux",
    ))
}

/// A sealed, close-on-exec memfd holding `bytes` (state for the fd store).
#[cfg(target_os = "linux")]
pub fn memfd_with(name: &str, bytes: &[u8]) -> std::io::Result<OwnedFd> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use std::io::Write;
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .map_err(std::io::Error::from)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes)?;
    f.flush()?;
    let fd = OwnedFd::from(f);
    // Read-only from now on (the next process only reads it).
    let seals = nix::fcntl::SealFlag::F_SEAL_WRITE
        | nix::fcntl::SealFlag::F_SEAL_GROW
        | nix::fcntl::SealFlag::F_SEAL_SHRINK
        | nix::fcntl::SealFlag::F_SEAL_SEAL;
    fcntl(fd.as_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(std::io::Error::from)?;
    Ok(fd)
}

/// Reads a stored file/memfd from its start, refusing more than `cap` bytes.
pub fn read_file_fd(fd: OwnedFd, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::from(fd);
    let len = f.metadata()?.len();
    if len > cap {
        return Err(std::io::Error::other(format!(
            "{len} bytes is more than the {cap}-byte limit"
        )));
    }
    f.seek(std::io::SeekFrom::Start(0))?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(cap).read_to_end(&mut buf)?;
    Ok(buf)
}

fn check_tcp_listener(fd: &OwnedFd) -> Result<(), NotAListener> {
    let st = fstat(fd.as_fd()).map_err(|_| NotAListener::Closed)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(NotAListener::NotSocket);
    }
    let ty = getsockopt(fd, sockopt::SockType)
        .map_err(|e| NotAListener::Other(format!("SO_TYPE: {e}")))?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(fd);
    let family = getsockname::<SockaddrStorage>(raw)
        .ok()
        .and_then(|a| a.family());
    let listening = getsockopt(fd, sockopt::AcceptConn).unwrap_or(false);
    match (family, ty, listening) {
        (Some(AddressFamily::Inet | AddressFamily::Inet6), SockType::Stream, true) => Ok(()),
        (fam, ty, listening) => Err(NotAListener::Other(format!(
            "a {} {:?} socket{}",
            match fam {
                Some(AddressFamily::Unix) => "AF_UNIX".to_string(),
                Some(f) => format!("{f:?}"),
                None => "unknown-family".to_string(),
            },
            ty,
            if listening {
                ""
            } else {
                " that is not listening"
            }
        ))),
    }
}

/// Number of threads in this process (Linux: `/proc/self/status`), `None` when unknown.
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Removes `keys` from the process environment, but only while the process is still
/// single-threaded (mutating the environment races with any concurrent `getenv`). Returns
/// `false`, changing nothing, when other threads may exist; the caller then leaves the
/// variables in place (harmless: `LISTEN_PID` will not match a child's pid).
pub fn unset_env_single_threaded(keys: &[&str]) -> bool {
    if cfg!(target_os = "linux") && thread_count() != Some(1) {
        return false;
    }
    if !cfg!(target_os = "linux") {
        // No cheap thread count elsewhere: refuse rather than risk a race.
        return false;
    }
    for k in keys {
        // SAFETY: the process has exactly one thread (checked just above), so no other thread
        // can read the environment concurrently.
        unsafe { std::env::remove_var(k) };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn adopts_a_listening_tcp_socket_and_makes_it_nonblocking() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let fd = OwnedFd::from(l).into_raw_fd();
        let adopted = adopt_tcp_listener(fd).unwrap();
        assert_eq!(adopted.local_addr().unwrap(), addr);
        // Non-blocking: accept with no pending connection fails with WouldBlock at once.
        let e = adopted.accept().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        let fdflags = fcntl(adopted.as_fd(), FcntlArg::F_GETFD).unwrap();
        assert!(FdFlag::from_bits_truncate(fdflags).contains(FdFlag::FD_CLOEXEC));
    }

    #[test]
    fn rejects_non_listeners_with_a_description() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let fd = OwnedFd::from(f).into_raw_fd();
        assert_eq!(adopt_tcp_listener(fd).unwrap_err(), NotAListener::NotSocket);

        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = OwnedFd::from(s).into_raw_fd();
        let e = adopt_tcp_listener(fd).unwrap_err();
        assert!(
            matches!(&e, NotAListener::Other(t) if t.contains("Datagram")),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        let u = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        let fd = OwnedFd::from(u).into_raw_fd();
        let e = adopt_tcp_listener(fd).unwrap_err();
        assert!(e.to_string().contains("AF_UNIX"), "{e}");

        assert_eq!(
            adopt_tcp_listener(1).unwrap_err().to_string(),
            "fd 1 is stdio"
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn classifies_connections_and_memfds() {
        use std::io::Write;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(fd_kind(&OwnedFd::from(l)), FdKind::TcpListener);
        let dup = s.as_fd().try_clone_to_owned().unwrap();
        assert_eq!(
            fd_kind(&dup),
            FdKind::TcpStream(Some(c.local_addr().unwrap()))
        );
        // The duplicate keeps the connection open after the original is closed.
        drop(s);
        let mut d = std::net::TcpStream::from(dup);
        d.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");

        let m = memfd_with("openclaw-test", b"{\"a\":1}").unwrap();
        assert_eq!(fd_kind(&m), FdKind::File);
        let dup = m.try_clone().unwrap();
        // Sealed: no more writes.
        assert!(std::fs::File::from(dup).write_all(b"x").is_err());
        assert_eq!(read_file_fd(m, 1024).unwrap(), b"{\"a\":1}");
        let m = memfd_with("openclaw-test", &[0u8; 64]).unwrap();
        assert!(read_file_fd(m, 10).is_err());
    }

    #[test]
    fn refuses_to_touch_env_when_threads_exist() {
        // The test harness runs tests on worker threads, so this process is multi-threaded.
        unsafe_free_env_check();
    }

    fn unsafe_free_env_check() {
        assert!(thread_count().unwrap() > 1);
        assert!(!unset_env_single_threaded(&["PATH"]));
        assert!(std::env::var_os("PATH").is_some());
    }
}

/// Hands memory that the allocator keeps after a burst (freed connection buffers of a connect
/// storm, say) back to the kernel, so RSS returns towards the idle baseline. glibc keeps freed
/// memory in its arenas indefinitely; `malloc_trim(0)` releases it. A no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks every arena).
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// A freed block at least this large makes the heap worth trimming (glibc keeps it, and raises
/// its mmap threshold so the next large buffers stay in the heap too).
pub const LARGE_FREE: usize = 1 << 20;

static LARGE_FREED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that `bytes` were just freed; at [`LARGE_FREE`] or more the next
/// [`take_large_free`] says so. One relaxed store, no lock, no allocation: callable from the
/// allocator itself. Also for memory freed as many small blocks at once (a slow consumer's
/// backlog).
#[inline]
pub fn note_freed(bytes: usize) {
    if bytes >= LARGE_FREE {
        LARGE_FREED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// True (once) when a large free was noted since the last call. The gateway's memory task
/// polls this about once a second and then trims on a blocking thread, so trimming is
/// debounced and never on a request's path.
pub fn take_large_free() -> bool {
    LARGE_FREED.swap(false, std::sync::atomic::Ordering::Relaxed)
}

/// The system allocator, noting large frees (a request body, a big frame or answer, a grown
/// buffer) with [`note_freed`]: one place that sees every large buffer go, whichever code
/// path held it. Costs one comparison per free.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoteLargeFrees;

// SAFETY: every call is forwarded unchanged to `System`; `note_freed` neither allocates nor
// touches the block.
unsafe impl std::alloc::GlobalAlloc for NoteLargeFrees {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on to `System`.
        unsafe { std::alloc::System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        note_freed(layout.size());
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // A large block that moves or shrinks leaves free memory behind.
        note_freed(layout.size());
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}
