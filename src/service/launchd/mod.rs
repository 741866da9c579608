//! launchd: LaunchAgent plists, the launchctl plan, and `launchctl print` parsing.
//!
//! On macOS the gateway runs as the LaunchAgent `ai.openclaw.gateway` (`ai.openclaw.<profile>`)
//! in the user's `gui/<uid>` domain, from `~/Library/LaunchAgents/<label>.plist`. No machine
//! here runs launchd, so all launchd knowledge is portable code tested on Linux:
//!
//! - [`job`] + [`plist`]: typed job → deterministic XML (golden: `plists/ai.openclaw.gateway.plist`).
//! - [`plan`]: pure `plan(op, desired, observed) -> Vec<Step>` over the [`plan::Launchctl`] verbs.
//! - [`print`](mod@print): tolerant parsers for `launchctl print` and `print-disabled`.
//! - [`errors`]: launchctl error numbers decoded into "what happened, what to do next".
//! - [`manager`]: [`LaunchdManager`], the [`crate::service::ServiceManager`] that observes
//!   through a [`crate::service::exec::CommandRunner`], plans, and executes with bounded,
//!   clock-injected waits and retries.
//! - [`handoff`]: the detached helper used when a restart is requested from inside the service.
//! - [`activation`]: the gateway side of socket activation (`Sockets` → `Listeners`), on top of
//!   `sys::launchd_activate_socket` (the FFI, behind `cfg(target_os = "macos")` in `src/sys/`).
//! - [`policy`]: the KeepAlive / exit-78 decision, summarised here:
//!
//! # KeepAlive and config refusals (exit 78)
//! systemd has `RestartPreventExitStatus=78`; launchd has no per-exit-code rule and no start
//! limit. The plist therefore says `KeepAlive = { SuccessfulExit = false; Crashed = true }`
//! (respawn after non-zero exits and crashes, never after exit 0) with `ThrottleInterval` 10,
//! and **a gateway that refuses to start under launchd exits 0** after writing a refusal marker
//! (`<state>/gateway-refused.json`, shown by `status`) and answering already-queued connections
//! with a 503. It is not respawned; socket activation restarts it only on a new connection,
//! which again gets the 503 with the reason until the config is fixed. Outside launchd a
//! refusal still exits 78. Details and rejected alternatives: [`policy`].
pub(crate) mod activation;
pub(crate) mod domain;
pub(crate) mod errors;
pub mod handoff;
pub mod job;
pub(crate) mod manager;
pub mod plan;
pub mod plist;
pub mod policy;
pub mod print;

pub use domain::Domain;
pub use errors::LaunchdError;
pub use job::LaunchdJob;
pub use manager::{Clock, LaunchdManager, LaunchdStatus, Report, SystemClock, Timeouts};
pub use plan::{Launchctl, Op, Step};
