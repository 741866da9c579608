//! Agent runs: a user's message goes to a model through any OpenAI-compatible endpoint and the
//! answer streams back to every client watching the session.
//!
//! # Layout
//! - [`config`]: providers (`models.providers.<id>`), model selection
//!   (`agents.defaults.model.primary: "<provider>/<model>"`), timeouts, endpoint switches, hooks.
//! - [`openai`]: the one upstream HTTP client (reqwest + rustls/ring), streaming SSE parsing.
//! - [`run`]: the engine ([`Agents`]): admission and idempotency, per-session queues,
//!   cancellation, terminal events, results.
//! - [`events`]: `agent`/`chat` event payloads with upstream's shapes and key orders.
//! - [`session`]: append-only JSONL transcripts in the state dir.
//! - [`dedupe`]: the 5 min / 1000 entry idempotency cache.
//! - [`methods`]: WS methods `agent`, `agent.wait`, `chat.send`, `chat.abort`, `chat.history`,
//!   `sessions.list`.
//! - [`http`]: `/v1/chat/completions`, `/v1/models[/{id}]`, `/v1/responses`, `/hooks/*`.
//!
//! # Wiring
//! [`crate::gateway::state::GatewayState`] owns one [`Agents`] (`state.agents`); the method
//! table gets [`methods::register`]; the HTTP router merges [`http::routes`] and layers
//! [`http::hooks_intercept`]; shutdown calls [`Agents::shutdown`] before sockets close so
//! aborted runs report their errors to the clients waiting on them.
pub mod config;
pub mod dedupe;
pub mod events;
pub mod http;
pub mod methods;
pub mod openai;
pub mod run;
pub mod session;

pub use run::{Admission, Agents, Finished, RunKind, RunRequest, Status, StopReason};
