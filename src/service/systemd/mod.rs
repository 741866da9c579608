//! systemd: the install side (units and the manager driver) and the runtime side (socket
//! activation, sd_notify, the fd store, the watchdog, the journal).
//!
//! The driver has launchd's shape (see [`crate::service::launchd`]):
//! - [`unit`](mod@unit) renders the desired units; [`unit_file`] reads installed ones back (drift, ports).
//! - [`env`](mod@env): the process environment, gathered once and injected ([`SystemdEnv`]).
//! - [`plan`]: pure `plan(op, desired, observed) -> Vec<Step>`.
//! - [`manager`]: [`SystemdManager`] observes through a [`crate::service::exec::CommandRunner`]
//!   (`systemctl`, `loginctl`, `systemd-analyze`), plans, executes, and fills a
//!   [`crate::service::Report`] instead of printing.
//! - [`errors`]: [`SystemdError`], the typed failures with their user text.
pub(crate) mod activation;
pub(crate) mod env;
pub(crate) mod errors;
pub(crate) mod fdstore;
pub(crate) mod journal;
pub mod manager;
pub(crate) mod notify;
pub(crate) mod plan;
pub mod unit;
pub(crate) mod unit_file;
pub(crate) mod watchdog;

pub use env::SystemdEnv;
pub use errors::SystemdError;
pub use manager::SystemdManager;
pub use plan::Step;
