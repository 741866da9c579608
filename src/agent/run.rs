//! The run engine: admission (idempotency), the per-session queue, model calls with
//! cancellation and timeouts, event emission, transcript persistence, and final results.
//!
//! # Life of a run
//! 1. [`Agents::admit`] takes the run id (the idempotency key): an active run with that id →
//!    [`Admission::InFlight`], a finished one within 5 min → [`Admission::Done`] (the cached
//!    final), else a new [`ActiveRun`] is registered.
//! 2. [`Agents::execute`] waits for the session's queue (runs on one session run one at a
//!    time, in arrival order) and a global permit (`agents.defaults.maxConcurrent`), then:
//!    session → model resolution → `lifecycle start`/`model` → user message appended →
//!    upstream stream (deltas broadcast as `agent assistant` + `chat delta`) → `usage`,
//!    `finishing`, `end`, `chat final` → assistant message appended and fsync'd.
//! 3. Every exit path produces a [`Finished`] (ok, error, or aborted), stored for replays and
//!    `agent.wait`, and published to waiters.
//!
//! # Cancellation
//! Each run has a token. `chat.abort` ([`StopReason::Rpc`]), an HTTP client that went away
//! ([`StopReason::ClientGone`]), the run timeout and gateway shutdown
//! ([`StopReason::Shutdown`]) cancel it; the upstream stream is dropped at once (closing the
//! connection to the model server). Aborts are reported as upstream does (`chat aborted`,
//! `lifecycle end {aborted:true}`, final `status:"timeout", summary:"aborted"`); shutdown is
//! reported as an error (`UNAVAILABLE`, retryable).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::config::{self, ModelError, ResolvedModel};
use super::dedupe::{self, Dedupe};
use super::events::{RunEvents, obj, text_content};
use super::openai::{Chunk, ModelClient, Msg, UpstreamError, Usage};
use super::session::{SessionMeta, SessionStore, message_record, run_record};
use crate::gateway::protocol::ErrorShape;
use crate::gateway::state::GatewayState;
use crate::sys::time::now_ms;

/// Default `agent.wait` timeout.
pub(crate) const DEFAULT_WAIT_MS: u64 = 30_000;
/// Queued wake texts kept per session.
const MAX_WAKES: usize = 20;
/// Approximate characters per token when fitting history into the context window.
const CHARS_PER_TOKEN: u64 = 4;

/// Who started a run (shapes events and results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// WS `agent`.
    Agent,
    /// WS `chat.send`.
    ChatSend,
    /// `/v1/chat/completions`, `/v1/responses`.
    Http,
    /// `/hooks/agent`.
    Hook,
}

/// Why a run was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `chat.abort`.
    Rpc,
    /// The HTTP client disconnected.
    ClientGone,
    /// The run's timeout passed.
    Timeout,
    /// The gateway is shutting down.
    Shutdown,
}

impl StopReason {
    /// Upstream's `stopReason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Rpc => "rpc",
            StopReason::ClientGone => "client_disconnected",
            StopReason::Timeout => "timeout",
            StopReason::Shutdown => "restart",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Run id (= idempotency key for WS runs).
    pub run_id: String,
    /// Agent.
    pub agent_id: String,
    /// Canonical session key.
    pub session_key: String,
    /// The user's message.
    pub message: String,
    /// Origin.
    pub kind: RunKind,
    /// Provider override.
    pub provider: Option<String>,
    /// Model override (`provider/model` or bare id).
    pub model: Option<String>,
    /// Run timeout in seconds (`Some(0)` = none; `None` = config/default).
    pub timeout_secs: Option<u64>,
    /// Extra system prompt text (HTTP `system` messages, `instructions`, `extraSystemPrompt`).
    pub extra_system: Option<String>,
    /// Caller-supplied conversation history (HTTP APIs); `None` = the session transcript.
    pub history: Option<Vec<Msg>>,
    /// Sampling fields forwarded upstream.
    pub sampling: Map<String, Value>,
    /// Start a fresh session first (`/new`, `/reset`).
    pub reset: bool,
}

impl RunRequest {
    /// A request with defaults for the optional parts.
    pub fn new(
        run_id: impl Into<String>,
        agent_id: impl Into<String>,
        session_key: impl Into<String>,
        message: impl Into<String>,
        kind: RunKind,
    ) -> RunRequest {
        RunRequest {
            run_id: run_id.into(),
            agent_id: agent_id.into(),
            session_key: session_key.into(),
            message: message.into(),
            kind,
            provider: None,
            model: None,
            timeout_secs: None,
            extra_system: None,
            history: None,
            sampling: Map::new(),
            reset: false,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Completed.
    Ok,
    /// Failed.
    Error,
    /// Aborted (`chat.abort`, client gone, timeout): upstream reports `status:"timeout"`.
    Aborted,
}

impl Status {
    /// The wire status (`ok`, `error`, `timeout`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Aborted => "timeout",
        }
    }
}

/// Why a run failed (for HTTP status mapping).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The message.
    pub message: String,
    /// A missing/invalid credential (HTTP 401 `authentication_error`).
    pub auth: bool,
    /// Upstream HTTP status, if the model server answered with one.
    pub upstream_status: Option<u16>,
    /// `chat errorKind`.
    pub kind: &'static str,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Run id.
    pub run_id: String,
    /// Session key.
    pub session_key: String,
    /// Agent.
    pub agent_id: String,
    /// Outcome.
    pub status: Status,
    /// The assistant text (partial for aborted runs).
    pub text: String,
    /// Token usage reported upstream.
    pub usage: Option<Usage>,
    /// Upstream finish reason (`stop`, `length`, …).
    pub finish_reason: Option<String>,
    /// The stop reason (`stop`, `rpc`, `timeout`, …).
    pub stop_reason: Option<String>,
    /// Failure details.
    pub failure: Option<Failure>,
    /// When it ended (ms).
    pub ended_at: u64,
    /// The `agent` final response: ok flag, payload, error.
    pub response: (bool, Value, Option<ErrorShape>),
    /// The `agent.wait` payload.
    pub wait: Value,
}

impl Finished {
    /// The final `res` frame for request `id`.
    pub fn res_frame(&self, id: &str) -> Value {
        let (ok, payload, error) = &self.response;
        let mut f = obj(vec![
            ("type", "res".into()),
            ("id", id.into()),
            ("ok", (*ok).into()),
            ("payload", payload.clone()),
        ]);
        if let Some(e) = error {
            f["error"] = e.to_value();
        }
        f
    }
}

/// A registered, not yet finished run.
#[derive(Debug)]
pub struct ActiveRun {
    /// Run id.
    pub run_id: String,
    /// Session key.
    pub session_key: String,
    /// Agent.
    pub agent_id: String,
    /// Origin.
    pub kind: RunKind,
    /// When it was admitted (ms).
    pub accepted_at: u64,
    /// The user's message (set by [`Agents::execute`]; shown while queued).
    pub message: Mutex<String>,
    /// True while waiting for its session's queue (`chat.history` `pendingInputs`).
    pub queued: std::sync::atomic::AtomicBool,
    /// When the model call started (ms; 0 before), and the reply text streamed so far
    /// (`chat.history` `inFlightRun`).
    pub started_at: std::sync::atomic::AtomicU64,
    /// See `started_at`.
    pub streamed: Mutex<String>,
    /// Set once its outcome is persisted, just before the terminal events go out: from then
    /// on the session counts as idle and the run can no longer be aborted.
    settled: std::sync::atomic::AtomicBool,
    accepted: Instant,
    cancel: CancellationToken,
    reason: Mutex<Option<StopReason>>,
    done: watch::Sender<Option<Arc<Finished>>>,
}

impl ActiveRun {
    /// True once the outcome is persisted and terminal events are going out.
    pub fn is_settled(&self) -> bool {
        self.settled.load(std::sync::atomic::Ordering::Acquire)
    }

    fn mark_settled(&self) {
        self.settled
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Cancels the run (the first reason wins). False if it was already cancelled or has
    /// settled.
    pub fn abort(&self, reason: StopReason) -> bool {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_some() || self.is_settled() {
            return false;
        }
        *r = Some(reason);
        self.cancel.cancel();
        true
    }

    fn stop_reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves with the finished run.
    pub async fn finished(&self) -> Arc<Finished> {
        let mut rx = self.done.subscribe();
        loop {
            if let Some(f) = rx.borrow_and_update().clone() {
                return f;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`; it cannot be dropped while we borrow it.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Result of [`Agents::admit`].
#[derive(Debug)]
pub enum Admission {
    /// Registered; call [`Agents::execute`].
    Started(Arc<ActiveRun>),
    /// A run with this id is still running.
    InFlight(Arc<ActiveRun>),
    /// A run with this id finished within the dedupe window: its cached result.
    Done(Arc<Finished>),
    /// The gateway is shutting down.
    Closed,
}

/// The agents runtime shared by the WS methods, the HTTP APIs and hooks.
pub struct Agents {
    /// The session store.
    pub store: Arc<SessionStore>,
    finished: Mutex<Dedupe<Arc<Finished>>>,
    active: Mutex<HashMap<String, Arc<ActiveRun>>>,
    changed: watch::Sender<u64>,
    queues: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    permits: Arc<Semaphore>,
    client: OnceLock<Result<ModelClient, String>>,
    wakes: Mutex<HashMap<String, Vec<String>>>,
    closed: CancellationToken,
    /// Failed hook authentications (own limits: 20/min, loopback not exempt).
    pub hooks_limiter: crate::gateway::auth::RateLimiter,
    /// The live session feed (`sessions.subscribe`, `sessions.messages.subscribe`).
    pub feed: super::feed::Feed,
    /// Runs allowed at once (`agents.defaults.maxConcurrent`, read at startup).
    pub max_concurrent: usize,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents")
            .field("store", &self.store.root())
            .field(
                "active",
                &self.active.lock().unwrap_or_else(|p| p.into_inner()).len(),
            )
            .finish_non_exhaustive()
    }
}

/// Text of a stored message's content.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Keeps the newest messages that fit into `budget_chars` (oldest dropped first).
pub(crate) fn fit_history(history: Vec<Msg>, budget_chars: u64) -> Vec<Msg> {
    let mut used = 0u64;
    let mut keep = Vec::new();
    for m in history.into_iter().rev() {
        used += m.content.len() as u64 + 16;
        if used > budget_chars {
            break;
        }
        keep.push(m);
    }
    keep.reverse();
    keep
}

fn stop_reason_for(finish: Option<&str>) -> String {
    match finish {
        None | Some("stop") | Some("end_turn") => "stop".into(),
        Some(other) => other.into(),
    }
}

fn usage_json(u: Option<Usage>) -> Value {
    let u = u.unwrap_or_default();
    json!({"input": u.input, "output": u.output, "cacheRead": 0, "cacheWrite": 0, "total": u.total, "cost": {"total": 0}})
}

struct Progress {
    began_at: Option<u64>,
    started_at: Option<u64>,
    text: String,
    usage: Option<Usage>,
    finish: Option<String>,
    response_model: Option<String>,
    model: Option<ResolvedModel>,
    session: Option<SessionMeta>,
    timeout_secs: Option<u64>,
}

enum Ending {
    Ok,
    Failed(Failure, Option<Value>),
    Aborted(StopReason),
}

impl Agents {
    /// A runtime storing sessions under `state_dir` with `max_concurrent` runs at once.
    pub fn new(state_dir: &std::path::Path, max_concurrent: usize) -> Agents {
        Agents {
            store: Arc::new(SessionStore::new(state_dir)),
            finished: Mutex::new(Dedupe::new(dedupe::TTL, dedupe::MAX_ENTRIES)),
            active: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            queues: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            client: OnceLock::new(),
            wakes: Mutex::new(HashMap::new()),
            closed: CancellationToken::new(),
            hooks_limiter: Default::default(),
            feed: Default::default(),
            max_concurrent: max_concurrent.max(1),
        }
    }

    fn client(&self) -> Result<&ModelClient, String> {
        self.client
            .get_or_init(ModelClient::new)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Registers run `run_id` unless it is running or recently finished.
    pub fn admit(
        &self,
        run_id: &str,
        session_key: &str,
        agent_id: &str,
        kind: RunKind,
    ) -> Admission {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = active.get(run_id) {
            return Admission::InFlight(a.clone());
        }
        if let Some(f) = self
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run_id, Instant::now())
        {
            return Admission::Done(f);
        }
        if self.closed.is_cancelled() {
            return Admission::Closed;
        }
        let run = Arc::new(ActiveRun {
            run_id: run_id.into(),
            session_key: session_key.into(),
            agent_id: agent_id.into(),
            kind,
            accepted_at: now_ms(),
            message: Mutex::new(String::new()),
            queued: std::sync::atomic::AtomicBool::new(true),
            started_at: std::sync::atomic::AtomicU64::new(0),
            streamed: Mutex::new(String::new()),
            settled: std::sync::atomic::AtomicBool::new(false),
            accepted: Instant::now(),
            cancel: CancellationToken::new(),
            reason: Mutex::new(None),
            done: watch::channel(None).0,
        });
        active.insert(run_id.into(), run.clone());
        drop(active);
        self.changed.send_modify(|g| *g += 1);
        Admission::Started(run)
    }

    /// The active run `run_id`.
    pub fn active(&self, run_id: &str) -> Option<Arc<ActiveRun>> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run_id)
            .cloned()
    }

    /// Every active (not yet settled) run: (running, queued behind a session or a permit).
    pub fn run_counts(&self) -> (usize, usize) {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let live = active.values().filter(|a| !a.is_settled());
        let (mut running, mut queued) = (0, 0);
        for a in live {
            if a.queued.load(std::sync::atomic::Ordering::Relaxed) {
                queued += 1;
            } else {
                running += 1;
            }
        }
        (running, queued)
    }

    /// Active (not yet settled) runs on a session, oldest first.
    pub fn active_for_session(&self, session_key: &str) -> Vec<Arc<ActiveRun>> {
        let mut v: Vec<Arc<ActiveRun>> = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|a| a.session_key == session_key && !a.is_settled())
            .cloned()
            .collect();
        v.sort_by_key(|a| a.accepted);
        v
    }

    /// A finished run within the dedupe window.
    pub fn finished(&self, run_id: &str) -> Option<Arc<Finished>> {
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run_id, Instant::now())
    }

    /// `agent.wait`: the run's wait payload once it ends, or `{runId, status:"timeout"}`.
    /// Unknown ids are waited for too (the run may be admitted later).
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(f) = self.finished(run_id) {
                return f.wait.clone();
            }
            if let Some(a) = self.active(run_id) {
                return match tokio::time::timeout_at(deadline, a.finished()).await {
                    Ok(f) => f.wait.clone(),
                    Err(_) => json!({"runId": run_id, "status": "timeout"}),
                };
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                _ => return json!({"runId": run_id, "status": "timeout"}),
            }
        }
    }

    /// Queues a system event text for the next run on `session_key` (`/hooks/wake`).
    /// Returns `queued`, or `coalesced` when it equals the newest pending one.
    pub fn queue_system_event(&self, session_key: &str, text: &str) -> &'static str {
        let mut w = self.wakes.lock().unwrap_or_else(|p| p.into_inner());
        let q = w.entry(session_key.to_string()).or_default();
        if q.last().is_some_and(|l| l == text) {
            return "coalesced";
        }
        q.push(text.to_string());
        if q.len() > MAX_WAKES {
            q.remove(0);
        }
        "queued"
    }

    /// Pending system events of a session (not drained).
    pub fn pending_system_events(&self, session_key: &str) -> Vec<String> {
        self.wakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session_key)
            .cloned()
            .unwrap_or_default()
    }

    fn take_system_events(&self, session_key: &str) -> Vec<String> {
        self.wakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session_key)
            .unwrap_or_default()
    }

    fn queue(&self, session_key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(session_key.to_string())
            .or_default()
            .clone()
    }

    fn release_queue(&self, session_key: &str, q: Arc<tokio::sync::Mutex<()>>) {
        let mut qs = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: nobody else is queued.
        if Arc::strong_count(&q) <= 2 {
            qs.remove(session_key);
        }
    }

    /// Gateway shutdown: refuses new runs, aborts running ones (reported as errors) and waits
    /// up to `deadline` for them to emit their final events and responses.
    pub async fn shutdown(&self, deadline: Duration) {
        self.closed.cancel();
        let runs: Vec<Arc<ActiveRun>> = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        if runs.is_empty() {
            return;
        }
        tracing::info!(runs = runs.len(), "aborting agent runs for shutdown");
        for r in &runs {
            r.abort(StopReason::Shutdown);
        }
        let mut changed = self.changed.subscribe();
        let _ = tokio::time::timeout(deadline, async {
            while !self
                .active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            {
                if changed.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    }

    /// True once shutdown began.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Runs an admitted run to its end. `deltas` (HTTP streaming) receives each text delta;
    /// a closed `deltas` receiver means the client went away and cancels the run.
    pub async fn execute(
        &self,
        state: &Arc<GatewayState>,
        run: Arc<ActiveRun>,
        req: RunRequest,
        deltas: Option<mpsc::UnboundedSender<String>>,
    ) -> Arc<Finished> {
        self.execute_then(state, run, req, deltas, |_| {}).await
    }

    /// [`Agents::execute`], calling `deliver` with the result before the run leaves the
    /// active set. Shutdown waits for the active set to drain, so whatever `deliver` queues
    /// (the `agent` final response) goes out before sockets close.
    pub async fn execute_then(
        &self,
        state: &Arc<GatewayState>,
        run: Arc<ActiveRun>,
        req: RunRequest,
        deltas: Option<mpsc::UnboundedSender<String>>,
        deliver: impl FnOnce(&Arc<Finished>),
    ) -> Arc<Finished> {
        let mut ev = RunEvents::new(
            state.clone(),
            &req.run_id,
            &req.session_key,
            &req.agent_id,
            req.kind == RunKind::ChatSend,
        );
        let mut p = Progress {
            began_at: None,
            started_at: None,
            text: String::new(),
            usage: None,
            finish: None,
            response_model: None,
            model: None,
            session: None,
            timeout_secs: None,
        };
        // A closed `deltas` receiver cancels the run like any abort; `drive` itself is never
        // dropped half-way, so it always releases its queue slot and settles normally.
        let client_gone = async {
            if let Some(tx) = &deltas {
                tx.closed().await;
                run.abort(StopReason::ClientGone);
            }
            std::future::pending::<()>().await
        };
        let ending = tokio::select! {
            e = self.drive(state, &run, &req, &mut ev, &mut p, deltas.as_ref()) => e,
            _ = client_gone => unreachable!("client_gone never completes"),
        };
        let ending = match ending {
            // A cancel that raced with completion reports the cancel reason.
            Ending::Aborted(_) => Ending::Aborted(run.stop_reason().unwrap_or(StopReason::Rpc)),
            e => e,
        };
        let fin = Arc::new(self.settle(&run, &req, &ev, &p, ending).await);
        tracing::info!(
            run = %req.run_id,
            session = %req.session_key,
            model = %p.model.as_ref().map(|m| format!("{}/{}", m.provider.id, m.model)).unwrap_or_default(),
            status = fin.status.as_str(),
            stop = fin.stop_reason.as_deref().unwrap_or(""),
            ms = run.accepted.elapsed().as_millis() as u64,
            "agent run finished"
        );
        deliver(&fin);
        self.publish(&run, fin.clone());
        let phase = if fin.status == Status::Error {
            "error"
        } else {
            "end"
        };
        self.session_lifecycle(state, &req.session_key, &req.agent_id, &req.run_id, phase);
        fin
    }

    /// `sessions.changed` for a run's start or end (its row's status follows).
    fn session_lifecycle(
        &self,
        state: &GatewayState,
        key: &str,
        agent_id: &str,
        run_id: &str,
        phase: &str,
    ) {
        if !self.feed.has_session_listeners() {
            return;
        }
        let row = self
            .store
            .get(key)
            .map(|m| super::methods::session_row_of(self, &m));
        self.feed
            .lifecycle(state, key, agent_id, run_id, phase, row.as_ref());
    }

    /// Moves a run from the active map to the finished cache and wakes its waiters.
    fn publish(&self, run: &ActiveRun, fin: Arc<Finished>) {
        {
            let mut active = self.active.lock().unwrap_or_else(|x| x.into_inner());
            active.remove(&run.run_id);
            self.finished
                .lock()
                .unwrap_or_else(|x| x.into_inner())
                .insert(run.run_id.clone(), fin.clone(), Instant::now());
        }
        run.done.send_replace(Some(fin));
        self.changed.send_modify(|g| *g += 1);
    }

    /// `/new` or `/reset` without text: starts a fresh session for the key; no model call.
    pub async fn reset_only(
        &self,
        _state: &Arc<GatewayState>,
        run: Arc<ActiveRun>,
        session_key: &str,
        agent_id: &str,
    ) -> Arc<Finished> {
        let queue = self.queue(session_key);
        let guard = queue.clone().lock_owned().await;
        let (k, a) = (session_key.to_string(), agent_id.to_string());
        let created = self
            .blocking(move |s| {
                let m = s.create(&k, &a)?;
                s.sync(&k)?;
                Ok(m)
            })
            .await;
        drop(guard);
        self.release_queue(session_key, queue);
        let ended_at = now_ms();
        let (response, wait, status) = match created {
            Ok(meta) => (
                (
                    true,
                    json!({"runId": run.run_id, "status": "ok", "summary": "completed",
                           "result": {"payloads": [], "meta": {
                               "durationMs": run.accepted.elapsed().as_millis() as u64,
                               "aborted": false,
                               "sessionReset": {"sessionKey": session_key, "sessionId": meta.session_id}}}}),
                    None,
                ),
                json!({"runId": run.run_id, "status": "ok", "endedAt": ended_at}),
                Status::Ok,
            ),
            Err(e) => {
                let msg = format!("cannot start a new session for {session_key}: {e}");
                (
                    (
                        false,
                        json!({"runId": run.run_id, "status": "error", "summary": msg}),
                        Some(ErrorShape::unavailable(msg.clone())),
                    ),
                    json!({"runId": run.run_id, "status": "error", "endedAt": ended_at, "error": msg}),
                    Status::Error,
                )
            }
        };
        let fin = Arc::new(Finished {
            run_id: run.run_id.clone(),
            session_key: session_key.to_string(),
            agent_id: agent_id.to_string(),
            status,
            text: String::new(),
            usage: None,
            finish_reason: None,
            stop_reason: None,
            failure: None,
            ended_at,
            response,
            wait,
        });
        self.publish(&run, fin.clone());
        fin
    }

    /// Everything up to the end of the model stream. Cancellation (any reason) and the
    /// timeout return [`Ending::Aborted`]; the caller settles.
    async fn drive(
        &self,
        state: &Arc<GatewayState>,
        run: &Arc<ActiveRun>,
        req: &RunRequest,
        ev: &mut RunEvents,
        p: &mut Progress,
        deltas: Option<&mpsc::UnboundedSender<String>>,
    ) -> Ending {
        let cancel = run.cancel.clone();
        *run.message.lock().unwrap_or_else(|x| x.into_inner()) = req.message.clone();
        // 1. The session's queue, then a global permit.
        let queue = self.queue(&req.session_key);
        let guard = tokio::select! {
            g = queue.clone().lock_owned() => g,
            _ = cancel.cancelled() => {
                self.release_queue(&req.session_key, queue);
                return Ending::Aborted(StopReason::Rpc);
            }
        };
        run.queued
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let ending = async {
            let _permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return Ending::Failed(self.internal("the run scheduler is closed"), None),
                },
                _ = cancel.cancelled() => return Ending::Aborted(StopReason::Rpc),
            };
            self.drive_admitted(state, run, req, ev, p, deltas).await
        }
        .await;
        drop(guard);
        self.release_queue(&req.session_key, queue);
        ending
    }

    fn internal(&self, message: &str) -> Failure {
        Failure {
            message: message.to_string(),
            auth: false,
            upstream_status: None,
            kind: "unknown",
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SessionStore) -> crate::error::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("session store task failed: {e}")),
        }
    }

    async fn drive_admitted(
        &self,
        state: &Arc<GatewayState>,
        run: &Arc<ActiveRun>,
        req: &RunRequest,
        ev: &mut RunEvents,
        p: &mut Progress,
        deltas: Option<&mpsc::UnboundedSender<String>>,
    ) -> Ending {
        let cancel = run.cancel.clone();
        if cancel.is_cancelled() {
            return Ending::Aborted(StopReason::Rpc);
        }
        p.began_at = Some(now_ms());
        // 2. The session.
        let (key, agent, reset) = (req.session_key.clone(), req.agent_id.clone(), req.reset);
        let session = self
            .blocking(move |s| {
                if reset {
                    s.create(&key, &agent)
                } else {
                    s.ensure(&key, &agent)
                }
            })
            .await;
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                return Ending::Failed(
                    self.internal(&format!(
                        "cannot open the session transcript for {}: {e}; check that the state directory is writable",
                        req.session_key
                    )),
                    None,
                );
            }
        };
        ev.session_id = session.session_id.clone();
        p.session = Some(session);
        if ev.chat_send {
            ev.run_status("preparing_workspace");
            ev.run_status("preparing_context");
        }
        // 3. The model.
        let cfg = state.config();
        let secrets = state.reload.secrets();
        let target = match config::resolve_model(
            &cfg,
            &secrets,
            &req.agent_id,
            req.provider.as_deref(),
            req.model.as_deref(),
        ) {
            Ok(t) => t,
            // Upstream's exact error (`{code, message}`); the remedy goes to the log.
            Err(e) => return Ending::Failed(model_failure(&e), None),
        };
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => return Ending::Failed(self.internal(&e), None),
        };
        let started_at = now_ms();
        p.started_at = Some(started_at);
        ev.start(started_at);
        run.started_at
            .store(started_at, std::sync::atomic::Ordering::Relaxed);
        self.session_lifecycle(state, &req.session_key, &req.agent_id, &req.run_id, "start");
        if ev.chat_send {
            ev.run_status("starting_model");
        }
        ev.model(&target.provider.id, &target.model);
        p.model = Some(target.clone());
        // 4. The user's message goes into the transcript before the model is called.
        let key = req.session_key.clone();
        let user = message_record(
            &req.run_id,
            json!({"role": "user", "content": text_content(&req.message), "timestamp": now_ms()}),
        );
        // One trip to the blocking pool: append it, and read the history the prompt needs.
        let want_history = req.history.is_none();
        let stored = self
            .blocking(move |s| {
                s.append(&key, &[user], false)?;
                match want_history {
                    true => s.messages(&key).map(Some),
                    false => Ok(None),
                }
            })
            .await;
        let stored = match stored {
            Ok(h) => h,
            Err(e) => return Ending::Failed(self.internal(&e), None),
        };
        let messages = self.prompt(req, &target, stored);
        // 5. The upstream stream, under the run timeout.
        let timeout = config::run_timeout(&cfg, &req.agent_id, req.timeout_secs);
        p.timeout_secs = timeout;
        let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        let mut stream = tokio::select! {
            s = client.open(&target, &messages, &req.sampling) => match s {
                Ok(s) => s,
                Err(e) => return Ending::Failed(upstream_failure(e), None),
            },
            _ = cancel.cancelled() => return Ending::Aborted(StopReason::Rpc),
            _ = &mut expired => {
                run.abort(StopReason::Timeout);
                return Ending::Aborted(StopReason::Timeout);
            }
        };
        let item_id = format!("{}:1", uuid::Uuid::new_v4());
        // A paced `chat` delta waiting for its slot, and the seq it mirrors.
        let mut chat_due: Option<std::time::Instant> = None;
        let mut last_seq = 0;
        loop {
            let flush = async {
                match chat_due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let chunk = tokio::select! {
                c = stream.next() => c,
                _ = cancel.cancelled() => return Ending::Aborted(StopReason::Rpc),
                _ = &mut expired => {
                    run.abort(StopReason::Timeout);
                    return Ending::Aborted(StopReason::Timeout);
                }
                _ = flush => {
                    chat_due = None;
                    ev.chat_delta(last_seq, &p.text);
                    continue;
                }
            };
            match chunk {
                None => break,
                Some(Err(e)) => return Ending::Failed(upstream_failure(e), None),
                Some(Ok(Chunk::Delta(t))) => {
                    p.text.push_str(&t);
                    run.streamed
                        .lock()
                        .unwrap_or_else(|x| x.into_inner())
                        .push_str(&t);
                    last_seq = ev.assistant(&p.text, &t, &item_id);
                    if let Some(tx) = deltas {
                        let _ = tx.send(t);
                    }
                    match ev.chat_delta_due() {
                        None => {
                            chat_due = None;
                            ev.chat_delta(last_seq, &p.text);
                        }
                        Some(at) => chat_due = Some(at),
                    }
                }
                Some(Ok(Chunk::Finish(r))) => p.finish = Some(r),
                Some(Ok(Chunk::Usage(u))) => p.usage = Some(u),
                Some(Ok(Chunk::Model(m))) => {
                    if p.response_model.is_none() {
                        p.response_model = Some(m);
                    }
                }
            }
        }
        if cancel.is_cancelled() {
            return Ending::Aborted(StopReason::Rpc);
        }
        Ending::Ok
    }

    /// The messages sent upstream: system text (extra system prompt + queued system events),
    /// history (caller-supplied or the transcript, trimmed to the context window), the message.
    /// `stored`: the transcript's messages (read with the append of the user's message, which
    /// is the last of them) when the caller supplied no history.
    fn prompt(
        &self,
        req: &RunRequest,
        target: &ResolvedModel,
        stored: Option<Vec<Value>>,
    ) -> Vec<Msg> {
        let mut system = Vec::new();
        if let Some(s) = req.extra_system.as_ref().filter(|s| !s.trim().is_empty()) {
            system.push(s.clone());
        }
        let events = self.take_system_events(&req.session_key);
        if !events.is_empty() {
            system.push(
                events
                    .iter()
                    .map(|e| format!("System: {e}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        let history = match &req.history {
            Some(h) => h.clone(),
            None => {
                let stored = stored.unwrap_or_default();
                // The last stored message is the one we just appended.
                let n = stored.len().saturating_sub(1);
                stored
                    .into_iter()
                    .take(n)
                    .filter_map(|m| {
                        let role = match m.get("role").and_then(Value::as_str) {
                            Some("user") => "user",
                            Some("assistant") => "assistant",
                            _ => return None,
                        };
                        let content = content_text(&m["content"]);
                        (!content.is_empty()).then_some(Msg { role, content })
                    })
                    .collect()
            }
        };
        let out_budget = target
            .max_tokens
            .unwrap_or(config::DEFAULT_MAX_OUTPUT_TOKENS);
        let budget = target
            .context_tokens
            .saturating_sub(out_budget)
            .saturating_mul(CHARS_PER_TOKEN)
            .saturating_sub(
                (req.message.len() + system.iter().map(String::len).sum::<usize>()) as u64,
            );
        let mut msgs: Vec<Msg> = Vec::new();
        if !system.is_empty() {
            msgs.push(Msg {
                role: "system",
                content: system.join("\n\n"),
            });
        }
        msgs.extend(fit_history(history, budget));
        msgs.push(Msg {
            role: "user",
            content: req.message.clone(),
        });
        msgs
    }

    /// Emits the terminal events, persists the turn's outcome (fsync'd) and builds the result.
    async fn settle(
        &self,
        run: &Arc<ActiveRun>,
        req: &RunRequest,
        ev: &RunEvents,
        p: &Progress,
        ending: Ending,
    ) -> Finished {
        let ended_at = now_ms();
        let duration_ms = run.accepted.elapsed().as_millis() as u64;
        let key = req.session_key.clone();
        let has_session = p.session.is_some();
        let persist = |records: Vec<Value>| {
            let key = key.clone();
            async move {
                if !has_session {
                    return;
                }
                if let Err(e) = self.blocking(move |s| s.append(&key, &records, true)).await {
                    tracing::warn!("agent run: {e}");
                }
            }
        };
        match ending {
            Ending::Ok => {
                let target = p.model.as_ref().expect("a model was resolved");
                let (pid, model) = (target.provider.id.as_str(), target.model.as_str());
                let response_model = p.response_model.clone().unwrap_or_else(|| model.into());
                let stop = stop_reason_for(p.finish.as_deref());
                if let Some(u) = p.usage {
                    ev.usage(u.output);
                }
                ev.finishing(&stop, ended_at);
                // The transcript has the answer (fsync'd) before clients see `final`, so a
                // `chat.history` right after it includes the reply.
                let assistant = obj(vec![
                    ("role", "assistant".into()),
                    ("content", text_content(&p.text)),
                    ("timestamp", ended_at.into()),
                    ("provider", pid.into()),
                    ("model", model.into()),
                    ("usage", usage_json(p.usage)),
                    ("stopReason", stop.clone().into()),
                ]);
                persist(vec![message_record(&req.run_id, assistant)]).await;
                run.mark_settled();
                ev.model_cleared();
                let receipt = obj(vec![
                    ("runId", req.run_id.clone().into()),
                    ("sessionId", ev.session_id.clone().into()),
                    ("turnId", req.run_id.clone().into()),
                    ("requested", json!({"provider": pid, "model": model})),
                    (
                        "effective",
                        json!({"provider": pid, "model": model, "responseModel": response_model}),
                    ),
                    ("successfulToolNames", json!([])),
                    ("rerouted", false.into()),
                ]);
                let mut end_receipt = receipt.clone();
                end_receipt["terminalDisposition"] = "visible".into();
                let reply = json!({"disposition": "visible", "text": p.text});
                let started = p.started_at.unwrap_or(ended_at);
                let end_data = if ev.chat_send {
                    // chat.send runs report the same fields in another order (transcript).
                    obj(vec![
                        ("stopReason", stop.clone().into()),
                        ("aborted", false.into()),
                        ("livenessState", "working".into()),
                        ("phase", "end".into()),
                        ("endedAt", ended_at.into()),
                        ("startedAt", started.into()),
                        ("replayInvalid", false.into()),
                        ("terminalReply", reply.clone()),
                        ("terminalReceipt", end_receipt.clone()),
                        ("executionSettled", true.into()),
                    ])
                } else {
                    obj(vec![
                        ("phase", "end".into()),
                        ("startedAt", started.into()),
                        ("endedAt", ended_at.into()),
                        ("aborted", false.into()),
                        ("stopReason", stop.clone().into()),
                        ("livenessState", "working".into()),
                        ("executionSettled", true.into()),
                        ("terminalReceipt", end_receipt.clone()),
                        ("terminalReply", reply.clone()),
                    ])
                };
                ev.end_ok(end_data, &stop, &p.text);
                let usage = usage_json(p.usage);
                let mut last_call = usage.clone();
                if let Some(o) = last_call.as_object_mut() {
                    let total = o.remove("total");
                    let cost = o.remove("cost");
                    if let Some(c) = cost {
                        o.insert("cost".into(), c);
                    }
                    if let Some(t) = total {
                        o.insert("total".into(), t);
                    }
                }
                let agent_meta = obj(vec![
                    ("sessionId", ev.session_id.clone().into()),
                    ("sessionFile", req.session_key.clone().into()),
                    ("provider", pid.into()),
                    ("model", model.into()),
                    ("contextTokens", target.context_tokens.into()),
                    ("contextTokensSource", "resolved".into()),
                    ("agentHarnessId", "openclaw".into()),
                    (
                        "credentialSource",
                        json!({"kind": "direct", "evidence": target.provider.credential_evidence, "authorization": "declared"}),
                    ),
                    ("usage", usage),
                    ("lastCallUsage", last_call),
                    ("promptTokens", p.usage.map(|u| u.input).unwrap_or(0).into()),
                    ("assistantTurns", 1.into()),
                    ("costUsd", 0.into()),
                    ("terminalReceipt", receipt),
                ]);
                let payload = obj(vec![
                    ("runId", req.run_id.clone().into()),
                    ("status", "ok".into()),
                    ("summary", "completed".into()),
                    (
                        "result",
                        obj(vec![
                            ("payloads", json!([{"text": p.text, "mediaUrl": null}])),
                            (
                                "meta",
                                obj(vec![
                                    ("durationMs", duration_ms.into()),
                                    ("agentMeta", agent_meta),
                                    ("aborted", false.into()),
                                    ("finalPromptText", req.message.clone().into()),
                                    ("finalAssistantVisibleText", p.text.clone().into()),
                                    ("finalAssistantRawText", p.text.clone().into()),
                                    ("replayInvalid", false.into()),
                                    ("livenessState", "working".into()),
                                    ("stopReason", stop.clone().into()),
                                    (
                                        "executionTrace",
                                        json!({"winnerProvider": pid, "winnerModel": model,
                                               "attempts": [{"provider": pid, "model": model, "result": "success", "stage": "assistant"}],
                                               "fallbackUsed": false, "runner": "embedded"}),
                                    ),
                                    (
                                        "completion",
                                        json!({"stopReason": stop, "finishReason": p.finish.clone().unwrap_or_else(|| "stop".into())}),
                                    ),
                                ]),
                            ),
                            ("sourceReplyDeliveryState", "missing".into()),
                        ]),
                    ),
                ]);
                let wait = obj(vec![
                    ("runId", req.run_id.clone().into()),
                    ("status", "ok".into()),
                    ("endedAt", ended_at.into()),
                    ("stopReason", stop.clone().into()),
                    ("livenessState", "working".into()),
                    ("terminalReceipt", end_receipt),
                    ("terminalReply", reply),
                ]);
                Finished {
                    run_id: req.run_id.clone(),
                    session_key: req.session_key.clone(),
                    agent_id: req.agent_id.clone(),
                    status: Status::Ok,
                    text: p.text.clone(),
                    usage: p.usage,
                    finish_reason: p.finish.clone(),
                    stop_reason: Some(stop),
                    failure: None,
                    ended_at,
                    response: (true, payload, None),
                    wait,
                }
            }
            Ending::Aborted(reason) if reason != StopReason::Shutdown => {
                let stop = reason.as_str();
                let err = (reason == StopReason::Timeout).then(|| {
                    format!(
                        "the run timed out after {}s; raise the request's timeout or agents.defaults.timeoutSeconds",
                        p.timeout_secs.unwrap_or(0)
                    )
                });
                let mut records = Vec::new();
                if !p.text.trim().is_empty() {
                    let mut m = obj(vec![
                        ("role", "assistant".into()),
                        ("content", text_content(&p.text)),
                        ("timestamp", ended_at.into()),
                        ("stopReason", "aborted".into()),
                    ]);
                    if let Some(t) = &p.model {
                        m["provider"] = t.provider.id.clone().into();
                        m["model"] = t.model.clone().into();
                    }
                    records.push(message_record(&req.run_id, m));
                }
                records.push(run_record(&req.run_id, "aborted", err.as_deref()));
                persist(records).await;
                run.mark_settled();
                ev.aborted(stop, &p.text, p.started_at, ended_at, err.as_deref());
                let payload = obj(vec![
                    ("runId", req.run_id.clone().into()),
                    ("status", "timeout".into()),
                    ("summary", "aborted".into()),
                    ("stopReason", stop.into()),
                ]);
                let wait = obj(vec![
                    ("runId", req.run_id.clone().into()),
                    ("status", "timeout".into()),
                    ("endedAt", ended_at.into()),
                    ("stopReason", stop.into()),
                ]);
                Finished {
                    run_id: req.run_id.clone(),
                    session_key: req.session_key.clone(),
                    agent_id: req.agent_id.clone(),
                    status: Status::Aborted,
                    text: p.text.clone(),
                    usage: p.usage,
                    finish_reason: None,
                    stop_reason: Some(stop.into()),
                    failure: err.map(|m| Failure {
                        message: m,
                        auth: false,
                        upstream_status: None,
                        kind: "timeout",
                    }),
                    ended_at,
                    response: (true, payload, None),
                    wait,
                }
            }
            other => {
                let (failure, details) = match other {
                    Ending::Failed(f, d) => (f, d),
                    _ => (
                        Failure {
                            message: "the gateway is shutting down: this run was aborted; retry after the gateway restarts".into(),
                            auth: false,
                            upstream_status: None,
                            kind: "unknown",
                        },
                        Some(json!({"reason": "shutdown"})),
                    ),
                };
                let shutdown = details.as_ref().is_some_and(|d| d["reason"] == "shutdown");
                persist(vec![run_record(
                    &req.run_id,
                    "error",
                    Some(&failure.message),
                )])
                .await;
                run.mark_settled();
                ev.model_cleared();
                ev.error(
                    p.started_at.or(p.began_at),
                    ended_at,
                    &failure.message,
                    Some(failure.kind),
                );
                let payload = obj(vec![
                    ("runId", req.run_id.clone().into()),
                    ("status", "error".into()),
                    ("summary", failure.message.clone().into()),
                ]);
                let mut error = ErrorShape::unavailable(failure.message.clone());
                if shutdown {
                    error.retryable = Some(true);
                }
                error.details = details;
                let wait = obj(vec![
                    ("runId", req.run_id.clone().into()),
                    ("status", "error".into()),
                    ("endedAt", ended_at.into()),
                    ("error", failure.message.clone().into()),
                ]);
                Finished {
                    run_id: req.run_id.clone(),
                    session_key: req.session_key.clone(),
                    agent_id: req.agent_id.clone(),
                    status: Status::Error,
                    text: p.text.clone(),
                    usage: p.usage,
                    finish_reason: None,
                    stop_reason: None,
                    failure: Some(failure),
                    ended_at,
                    response: (false, payload, Some(error)),
                    wait,
                }
            }
        }
    }
}

fn model_failure(e: &ModelError) -> Failure {
    tracing::warn!(provider = %e.provider, "agent run cannot start: {} ({})", e.message, e.hint);
    Failure {
        message: e.message.clone(),
        auth: e.auth,
        upstream_status: None,
        kind: "unknown",
    }
}

fn upstream_failure(e: UpstreamError) -> Failure {
    tracing::warn!("agent run failed: {}", e.message);
    Failure {
        auth: matches!(e.status, Some(401) | Some(403)),
        upstream_status: e.status,
        kind: e.kind,
        message: e.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_that_fit() {
        let h: Vec<Msg> = (0..5)
            .map(|i| Msg {
                role: "user",
                content: format!("{i}{}", "x".repeat(100)),
            })
            .collect();
        let kept = fit_history(h, 250);
        assert_eq!(kept.len(), 2);
        assert!(kept[0].content.starts_with('3') && kept[1].content.starts_with('4'));
    }

    #[test]
    fn content_text_joins_parts() {
        assert_eq!(
            content_text(
                &json!([{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}])
            ),
            "ab"
        );
        assert_eq!(content_text(&json!("s")), "s");
    }
}
