//! OS primitives; the only place with `cfg(target_os)` besides `service::native`.
//!
//! # launchd socket activation
//! [`launchd_activate_socket`] is the one entry point for sockets that launchd created from
//! the job's plist `Sockets` dictionary. It is portable: on macOS it calls
//! `launch_activate_socket(3)` through the FFI shim in `macos.rs`; elsewhere it returns
//! `Ok(None)` ("not started by launchd"), exactly what a macOS process started from a shell
//! gets, so callers have one code path. The `macos-check` feature compiles the macOS shim on
//! Linux too (with a C-ABI stand-in for the libSystem symbol, `macos_stub.rs`) so that
//! `cargo check --features macos-check` type-checks it and `cargo test --features macos-check`
//! exercises its memory handling (free of the returned array, CLOEXEC, errno mapping).

#[cfg(any(target_os = "macos", feature = "macos-check"))]
mod macos;
#[cfg(all(feature = "macos-check", not(target_os = "macos")))]
#[doc(hidden)]
pub(crate) mod macos_stub;
pub(crate) mod time;

use std::io;
use std::os::fd::OwnedFd;

/// Takes the listening sockets launchd created for the plist `Sockets` entry `name` (ours is
/// `"Listeners"`: one fd per address, i.e. 127.0.0.1 and ::1).
///
/// - `Ok(Some(fds))`: launchd handed us these sockets; they are close-on-exec and owned by the
///   caller. Call at most once per name per process (launchd answers `EALREADY` afterwards).
/// - `Ok(None)`: this process is not managed by launchd (`ESRCH`, e.g. started from a shell),
///   or this OS has no launchd: bind the sockets yourself.
/// - `Err(kind NotFound)`: launchd manages us but the plist has no socket named `name`
///   (`ENOENT`; e.g. a plist installed without socket activation): bind yourself and log it.
/// - other errors: the errno from launchd, with the socket name in the message.
pub fn launchd_activate_socket(name: &str) -> io::Result<Option<Vec<OwnedFd>>> {
    #[cfg(any(target_os = "macos", feature = "macos-check"))]
    {
        macos::activate_socket(name)
    }
    #[cfg(not(any(target_os = "macos", feature = "macos-check")))]
    {
        let _ = name;
        Ok(None)
    }
}

#[cfg(unix)]
pub mod unix;
