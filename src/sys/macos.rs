//! FFI shim for `launch_activate_socket(3)` (libSystem, macOS 10.10+, `<launch.h>`).
//!
//! `int launch_activate_socket(const char *name, int **fds, size_t *cnt)` returns 0 and a
//! `malloc`ed array of `cnt` descriptors that the caller must `free(3)`; on failure it returns
//! the error number directly (not via `errno`): `ENOENT` = no socket of that name in our plist,
//! `ESRCH` = the caller is not managed by launchd, `EALREADY` = already activated by this
//! process. launchd does not set close-on-exec on the descriptors, so we do.
//! Compiled on macOS, and on Linux with the `macos-check` feature (see `macos_stub.rs`).
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int};
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::libc;

unsafe extern "C" {
    fn launch_activate_socket(name: *const c_char, fds: *mut *mut c_int, cnt: *mut usize) -> c_int;
}

/// See [`super::launchd_activate_socket`].
pub(super) fn activate_socket(name: &str) -> io::Result<Option<Vec<OwnedFd>>> {
    let cname = CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("launchd socket name {name:?} contains a NUL byte"),
        )
    })?;
    let mut fds: *mut c_int = std::ptr::null_mut();
    let mut cnt: usize = 0;
    // SAFETY: `cname` outlives the call; `fds`/`cnt` are valid out-pointers.
    let rc = unsafe { launch_activate_socket(cname.as_ptr(), &mut fds, &mut cnt) };
    if rc != 0 {
        // Nothing was allocated on failure, but be defensive: free whatever came back.
        free_array(fds);
        return match rc {
            libc::ESRCH => Ok(None),
            libc::ENOENT => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "launchd manages this process but its plist has no Sockets entry {name:?}; \
                     reinstall the service (`openclaw gateway install`) or bind directly"
                ),
            )),
            libc::EALREADY => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "launchd sockets {name:?} were already activated by this process; \
                     call launch_activate_socket once per name and keep the descriptors"
                ),
            )),
            other => {
                let os = io::Error::from_raw_os_error(other);
                Err(io::Error::new(
                    os.kind(),
                    format!("launch_activate_socket({name:?}) failed: {os}"),
                ))
            }
        };
    }
    let mut owned = Vec::with_capacity(cnt);
    if !fds.is_null() {
        // SAFETY: on success launchd returns `cnt` ints at `fds`; each is an open descriptor
        // that now belongs to us, so wrapping it in OwnedFd (closed on drop) is sound.
        let raw = unsafe { std::slice::from_raw_parts(fds, cnt) };
        for &fd in raw {
            owned.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    free_array(fds);
    for fd in &owned {
        fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| {
            io::Error::other(format!("setting FD_CLOEXEC on a launchd socket: {e}"))
        })?;
    }
    Ok(Some(owned))
}

fn free_array(fds: *mut c_int) {
    if !fds.is_null() {
        // SAFETY: the array was allocated by launchd with malloc(3) and is freed exactly once.
        unsafe { libc::free(fds.cast()) };
    }
}

#[cfg(all(test, feature = "macos-check", not(target_os = "macos")))]
mod tests {
    use super::*;
    use crate::sys::macos_stub::{self, Reply};
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;

    #[test]
    fn esrch_means_not_managed_and_enoent_names_the_socket() {
        let _g = macos_stub::lock();
        macos_stub::set_reply(Reply::Error(libc::ESRCH));
        assert!(activate_socket("Listeners").unwrap().is_none());
        macos_stub::set_reply(Reply::Error(libc::ENOENT));
        let e = activate_socket("Listeners").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("\"Listeners\""), "{e}");
        macos_stub::set_reply(Reply::Error(libc::EALREADY));
        let e = activate_socket("Listeners").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        macos_stub::set_reply(Reply::Error(libc::EPERM));
        let e = activate_socket("Listeners").unwrap_err();
        assert!(
            e.to_string()
                .contains("launch_activate_socket(\"Listeners\")"),
            "{e}"
        );
        assert!(activate_socket("bad\0name").is_err());
    }

    #[test]
    fn adopts_every_fd_in_order_and_sets_cloexec() {
        let _g = macos_stub::lock();
        // Two real listening sockets, their close-on-exec flag cleared the way launchd hands them over.
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let fds: Vec<OwnedFd> = vec![a.into(), b.into()];
        for fd in &fds {
            fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
        }
        let raw: Vec<c_int> = fds
            .into_iter()
            .map(std::os::fd::IntoRawFd::into_raw_fd)
            .collect();
        macos_stub::set_reply(Reply::Fds(raw.clone()));
        let before = macos_stub::arrays_handed_out();
        let got = activate_socket("Listeners").unwrap().unwrap();
        assert_eq!(macos_stub::arrays_handed_out(), before + 1);
        assert_eq!(got.iter().map(|f| f.as_raw_fd()).collect::<Vec<_>>(), raw);
        for fd in &got {
            let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap();
            assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
        }
        let addrs: Vec<_> = got
            .into_iter()
            .map(|fd| TcpListener::from(fd).local_addr().unwrap())
            .collect();
        assert_eq!(addrs, vec![pa, pb]);
    }
}
