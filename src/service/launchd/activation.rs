//! launchd socket activation for the gateway's listener acquisition.
//!
//! Call [`take_listeners`] once, before binding: it asks launchd for the `Listeners` sockets of
//! our plist (`sys::launchd_activate_socket`), checks each descriptor really is a listening
//! stream socket, and returns them as non-blocking `std::net::TcpListener`s ready for
//! `tokio::net::TcpListener::from_std`. `Ok(None)` means "not launchd-activated: bind yourself"
//! (not started by launchd, not macOS, or a plist without `Sockets`).
//!
//! Acquisition order for the gateway (one API over both managers): systemd `LISTEN_FDS` first
//! (`service::systemd::activation`), then [`take_listeners`], then bind.
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{SockType, getsockopt, sockopt};

use super::job::SOCKET_NAME;

/// Takes the launchd-activated listeners (see the module doc).
pub(crate) fn take_listeners() -> io::Result<Option<Vec<TcpListener>>> {
    match crate::sys::launchd_activate_socket(SOCKET_NAME) {
        Ok(Some(fds)) => listeners_from_fds(fds).map(Some),
        Ok(None) => Ok(None),
        // Managed by launchd, but installed without socket activation (non-loopback bind).
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Adopts descriptors as listeners after checking each is a listening stream socket; sets
/// them non-blocking. An empty set is an error (launchd gave us nothing to serve on).
pub(crate) fn listeners_from_fds(fds: Vec<OwnedFd>) -> io::Result<Vec<TcpListener>> {
    if fds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "launchd returned no descriptors for the {SOCKET_NAME:?} sockets; check the plist's Sockets entry"
            ),
        ));
    }
    fds.into_iter()
        .map(|fd| {
            let ty = getsockopt(&fd.as_fd(), sockopt::SockType).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("launchd descriptor is not a socket: {e}"),
                )
            })?;
            let listening = getsockopt(&fd.as_fd(), sockopt::AcceptConn).unwrap_or(false);
            if ty != SockType::Stream || !listening {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "launchd socket is not a listening stream socket (type {ty:?}, listening {listening}); \
                         the plist's Sockets entry must use SockType stream and SockPassive true"
                    ),
                ));
            }
            let l = TcpListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopts_listening_sockets_and_rejects_others() {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = a.local_addr().unwrap();
        let got = listeners_from_fds(vec![a.into()]).unwrap();
        assert_eq!(got[0].local_addr().unwrap(), addr);
        // Non-blocking: accept with nothing queued returns WouldBlock instead of hanging.
        assert_eq!(
            got[0].accept().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(listeners_from_fds(vec![udp.into()]).is_err());
        let connected = std::net::TcpStream::connect(addr).unwrap();
        assert!(listeners_from_fds(vec![connected.into()]).is_err());
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(listeners_from_fds(vec![file.into()]).is_err());
        assert!(listeners_from_fds(vec![]).is_err());
    }

    #[test]
    fn not_under_launchd_means_bind_yourself() {
        // On Linux (and on a Mac when started from a shell) launchd has nothing for us.
        #[cfg(all(feature = "macos-check", not(target_os = "macos")))]
        let _g = {
            let g = crate::sys::macos_stub::lock();
            crate::sys::macos_stub::set_reply(crate::sys::macos_stub::Reply::Error(
                nix::libc::ESRCH,
            ));
            g
        };
        assert!(take_listeners().unwrap().is_none());
    }

    /// The whole path through the FFI shim, on Linux via the `macos-check` stand-in.
    #[cfg(all(feature = "macos-check", not(target_os = "macos")))]
    #[test]
    fn activated_fds_become_listeners_through_the_ffi_shim() {
        use crate::sys::macos_stub::{self, Reply};
        use std::os::fd::IntoRawFd;
        let _g = macos_stub::lock();
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind("[::1]:0")
            .or_else(|_| TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let want = vec![v4.local_addr().unwrap(), v6.local_addr().unwrap()];
        macos_stub::set_reply(Reply::Fds(vec![v4.into_raw_fd(), v6.into_raw_fd()]));
        let got = take_listeners().unwrap().expect("activated");
        let addrs: Vec<_> = got.iter().map(|l| l.local_addr().unwrap()).collect();
        assert_eq!(addrs, want);
        // A plist without Sockets (ENOENT) means: bind yourself.
        macos_stub::set_reply(Reply::Error(nix::libc::ENOENT));
        assert!(take_listeners().unwrap().is_none());
        macos_stub::set_reply(Reply::Error(nix::libc::ESRCH));
    }
}
