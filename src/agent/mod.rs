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
//! - [`ui`]: what the Control UI calls besides (`chat.startup`, `chat.inject`, session feed and
//!   edits, `agent.identity.get`, `models.authStatus`, `diagnostics.lanes`, …); [`feed`] holds
//!   the feed's subscriptions and sends `session.message` / `sessions.changed`.
//! - [`http`]: the HTTP routes and what the endpoints share; `/v1/models[/{id}]`.
//! - [`chat_completions`] serves `/v1/chat/completions`, [`responses`] `/v1/responses`,
//!   [`hooks`] `/hooks/*` (own token and limiter).
//!
//! # Wiring
//! [`AgentWing`] plugs the wing into the kernel (`gateway::feature`): each generation gets
//! one [`Agents`] in the state's extension map (reached with [`of`]); the method table gets
//! [`methods::register`]; the HTTP router merges [`http::routes`] and layers
//! [`hooks::hooks_intercept`]; after READY the session store is indexed; shutdown calls
//! [`Agents::shutdown`] before sockets close so aborted runs report their errors to the
//! clients waiting on them.
pub(crate) mod chat_completions;
pub mod config;
pub(crate) mod dedupe;
pub(crate) mod events;
pub(crate) mod feed;
pub(crate) mod hooks;
pub(crate) mod http;
pub(crate) mod methods;
pub(crate) mod openai;
pub(crate) mod responses;
pub(crate) mod run;
pub(crate) mod session;
pub(crate) mod ui;

pub use run::{Admission, Agents, Finished, RunKind, RunRequest, Status, StopReason};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Extensions;

use crate::config::Config;
use crate::gateway::feature::{BoxFuture, Feature, FeatureInit};
use crate::gateway::methods::MethodTable;
use crate::gateway::state::GatewayState;

/// How long shutdown waits for aborted runs to report before the sockets close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The agent wing as the kernel sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentWing;

/// This generation's [`Agents`].
///
/// # Panics
/// When the gateway was built without [`AgentWing`] (then no agent method or route exists
/// to call this).
pub fn of(state: &GatewayState) -> Arc<Agents> {
    state
        .extension::<Arc<Agents>>()
        .cloned()
        .expect("the agent wing is part of this gateway")
}

impl Feature for AgentWing {
    fn name(&self) -> &'static str {
        "agent"
    }

    fn init(&self, init: &FeatureInit<'_>, ext: &mut Extensions) {
        ext.insert(Arc::new(Agents::new(
            &init.paths.state_dir,
            config::max_concurrent(init.config),
        )));
    }

    fn register_methods(&self, table: &mut MethodTable) {
        methods::register(table);
        ui::register(table);
    }

    fn routes(&self) -> Router<Arc<GatewayState>> {
        http::routes()
    }

    fn layer(
        &self,
        router: Router<Arc<GatewayState>>,
        state: &Arc<GatewayState>,
    ) -> Router<Arc<GatewayState>> {
        router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            hooks::hooks_intercept,
        ))
    }

    fn start(&self, state: &Arc<GatewayState>) {
        // Index the session transcripts off the request path (torn last lines are reported).
        let agents = of(state);
        // Every transcript append feeds the live session feed (a weak handle: the state owns
        // the store).
        let weak = Arc::downgrade(state);
        agents.store.observe(Box::new(move |meta, records| {
            let Some(state) = weak.upgrade() else {
                return;
            };
            let rt = of(&state);
            if !rt.feed.has_message_listeners(&meta.key) {
                return;
            }
            let row = methods::session_row_of(&rt, meta);
            rt.feed.appended(&state, meta, records, &row);
        }));
        tokio::task::spawn_blocking(move || agents.store.warm());
    }

    fn shutdown<'a>(&'a self, state: &'a Arc<GatewayState>) -> BoxFuture<'a, ()> {
        Box::pin(async move { of(state).shutdown(SHUTDOWN_GRACE).await })
    }

    fn default_agent_id(&self, cfg: &Config) -> Option<String> {
        Some(config::default_agent_id(cfg))
    }
}
