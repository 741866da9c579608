//! OpenClaw Gateway in Rust: the gateway daemon and its operator CLI.
//!
//! # The house, top to bottom
//! Code may only name modules on a floor below its own; modules on one floor are peers and never
//! import each other. `tests/it/architecture.rs` holds the same table and fails on any arrow up
//! or sideways, so this picture stays true without review.
//!
//! ```text
//!  12  testing     test hooks and the one GatewayState fixture (doc-hidden; tests, bench, fuzz)
//!  11  cli         clap: parse argv, convert into plain option structs, dispatch; completions, man
//!  10  commands    the verbs, one file per family; `commands::gateway` is the composition root
//!   9  doctor      checks and repairs of drift between what is installed and what should be
//!   8  ops agent   wings: the client library (target, RPC session, reach/probe, status) · agent
//!      control_ui  runs, chat/sessions methods, `/v1/*` and hooks · the Control UI bundle and
//!      test_hooks  page · test-only methods (channels joins this floor)
//!   6  gateway     the kernel: state, protocol v4, method registry and scopes, outbound queues,
//!                  listener acquisition, HTTP/WS serving, auth, admission, reload, shutdown,
//!                  handover, the protocol client; wings plug in through `gateway::feature`
//!   5  service     service-manager adapters: systemd and launchd, render → plan → parse behind a
//!                  runner, plus the runtime side (sd_notify, activation fds, fd store, watchdog)
//!   4  config      profiles and paths (from an injected environment), JSON5 loader, validation,
//!      telemetry   reload plans, secrets · stderr/journald logs and the JSONL file log
//!   2  sys         OS primitives (fd adoption, launchd FFI, clocks)
//!   1  error       the crate error type and the stable exit-code table
//! ```
//!
//! `cfg(target_os)` is confined to: `sys/` (OS primitives, the launchd FFI), `service::native`
//! (which manager this platform has), `service::systemd::notify` (Linux abstract sockets),
//! `doctor::checks` (which platform context to gather) and `agent::openai` (one TLS default).
//! The design facts the comments cite are in `docs/` (protocol, lifecycle, service managers).

pub mod agent;
pub mod cli;
pub(crate) mod commands;
pub mod config;
pub mod control_ui;
pub mod doctor;
pub mod error;
pub mod gateway;
pub mod ops;
pub mod service;
pub mod sys;
pub(crate) mod telemetry;
pub(crate) mod test_hooks;
#[doc(hidden)]
pub mod testing;

/// The version this build reports to clients (`hello-ok.server.version`) and in `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
