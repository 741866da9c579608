//! Service-manager adapters. Everything here is portable and tested on Linux: each manager is
//! render (desired files) → observe (via [`exec::CommandRunner`]) → plan (pure) → execute.
//! [`native`] is the one place that picks a manager by `cfg(target_os)`.
pub mod exec;
pub mod launchd;
pub mod systemd;
