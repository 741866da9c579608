//! A C-ABI stand-in for libSystem's `launch_activate_socket`, linked only when the macOS shim
//! is compiled on another OS (`--features macos-check`). By default it answers `ESRCH` ("not
//! managed by launchd"), which is what a real Mac says to a process started from a shell, so a
//! `macos-check` build behaves like the portable fallback. Tests script other answers, including
//! a `malloc`ed descriptor array, to exercise the shim's ownership and `free` handling for real.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::libc;

/// What the next `launch_activate_socket` call answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Return this error number.
    Error(c_int),
    /// Return these descriptors in a freshly `malloc`ed array.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "scripted by the unit tests only")
    )]
    Fds(Vec<c_int>),
}

static REPLY: Mutex<Option<Reply>> = Mutex::new(None);
#[cfg(test)]
static SERIAL: Mutex<()> = Mutex::new(());
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// Serialises tests that script the stub.
#[cfg(test)]
pub(crate) fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Scripts the next answer (it stays until replaced).
#[cfg(test)]
pub(crate) fn set_reply(r: Reply) {
    *REPLY.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
}

/// How many descriptor arrays the stand-in has `malloc`ed so far (the shim must free each).
#[cfg(test)]
pub(crate) fn arrays_handed_out() -> usize {
    ALLOCATED.load(Ordering::SeqCst)
}

/// The stand-in itself (same signature as `<launch.h>`).
///
/// # Safety
/// `fds` and `cnt` must be valid for writes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn launch_activate_socket(
    _name: *const c_char,
    fds: *mut *mut c_int,
    cnt: *mut usize,
) -> c_int {
    let reply = REPLY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or(Reply::Error(libc::ESRCH));
    match reply {
        Reply::Error(e) => e,
        Reply::Fds(list) => {
            let bytes = std::mem::size_of::<c_int>() * list.len().max(1);
            // SAFETY: plain malloc; the caller (our shim) frees it with free(3).
            let arr = unsafe { libc::malloc(bytes) }.cast::<c_int>();
            if arr.is_null() {
                return libc::ENOMEM;
            }
            // SAFETY: `arr` has room for `list.len()` ints; out-pointers are valid per contract.
            unsafe {
                std::ptr::copy_nonoverlapping(list.as_ptr(), arr, list.len());
                *fds = arr;
                *cnt = list.len();
            }
            ALLOCATED.fetch_add(1, Ordering::SeqCst);
            0
        }
    }
}
