//! OpenClaw Gateway in Rust: the gateway daemon and its operator CLI.
//!
//! # Layout
//! - [`agent`]: agent runs through OpenAI-compatible model endpoints: providers, the run
//!   engine, session transcripts, the agent/chat WS methods and the `/v1/*` + hooks HTTP APIs.
//! - [`cli`]: the command line (clap), `dispatch`, and `cli::assets` (completions and man
//!   pages generated from the clap tree).
//! - [`error`]: the crate error type and the stable exit-code table.
//! - [`config`]: profiles, state dir and config paths (pure, from an injected environment),
//!   the JSON5 config loader and its validation.
//! - [`gateway`]: the network service: listener acquisition, the accept loop, HTTP and the
//!   WebSocket protocol v4, shutdown, and the protocol [`gateway::client`] used by our CLI.
//! - [`service`]: service-manager adapters (systemd units, launchd plists), each built as
//!   render → plan → parse (pure) plus a thin command runner.
//! - [`sys`]: the only place with `cfg(target_os)`: OS primitives (fd adoption, launchd FFI).
//! - [`telemetry`]: stderr logs and the JSONL file log `logs.tail` serves.
//! - [`ops`]: operator client commands (health, call, probe, status, logs, channels).
//! - [`doctor`]: checks that detect and repair drift between what is installed and what should be.

pub mod agent;
pub mod cli;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod error;
pub mod gateway;
pub mod ops;
pub mod service;
pub mod sys;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;

/// The version this build reports to clients (`hello-ok.server.version`) and in `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
