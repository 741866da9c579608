//! What the agent wing's HTTP APIs share (docs/protocol.md §5; upstream's docs openai-http-api /
//! openresponses-http-api / config-hooks): the routes, JSON/SSE responses, body reading,
//! request validation, run spawning, and `GET /v1/models[/{id}]` (served when
//! `gateway.http.endpoints.chatCompletions.enabled` or `…responses.enabled`). The endpoints:
//! - [`super::chat_completions`]: `POST /v1/chat/completions` (JSON, or SSE: role chunk,
//!   content deltas, final chunk, `[DONE]`);
//! - [`super::responses`]: `POST /v1/responses` (JSON or SSE `response.*` events);
//! - [`super::hooks`]: hooks under `hooks.path` (default `/hooks`): `POST …/wake`,
//!   `POST …/agent`, with their own token (`hooks.token`).
//!
//! Disabled endpoints answer exactly like the core's fallthrough (`404 Not Found`). Requests
//! are full-operator agent runs: gateway bearer auth (`gateway::http_api`: failed attempts
//! count against the gateway's auth rate limit), 20 MB bodies (hooks 256 KiB, 30 s read).
//! Each request runs on its own task; a client that disconnects cancels its run and the
//! upstream model request.
// Validation helpers return a ready error `Response` (the handler returns it as is); its size
// only matters on the error path.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::config;
use super::methods::resolve_target;
use super::openai::{FORWARDED_FIELDS, Msg};
use super::run::{ActiveRun, Admission, Agents, Failure, Finished, RunRequest, Status, StopReason};
use crate::gateway::http_api;
use crate::gateway::state::GatewayState;

pub(crate) type AppState = Arc<GatewayState>;

/// Body cap of the OpenAI-compatible endpoints (upstream: 20 MB).
pub(crate) const API_MAX_BODY: usize = 20 * 1024 * 1024;
/// Session key namespaces callers may not address (upstream).
pub(super) const RESERVED_SESSION_PREFIXES: &[&str] = &["subagent:", "cron:", "acp:"];

/// The `/v1/*` routes (merged into the gateway router; other `/v1/*` paths stay 404).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/chat/completions",
            any(super::chat_completions::chat_completions),
        )
        .route("/v1/responses", any(super::responses::responses))
        .route("/v1/models", any(models))
        .route("/v1/models/{*id}", any(model_one))
}

pub(super) fn json_response(status: StatusCode, body: Value) -> Response {
    http_api::json(status, &body)
}

pub(super) fn text(status: StatusCode, body: &'static str) -> Response {
    http_api::text(status, body)
}

pub(super) fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Not Found")
}

pub(super) fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// `{"error":{"message","type"}}`.
pub(crate) fn api_error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    json_response(
        status,
        json!({"error": {"message": message.into(), "type": kind}}),
    )
}

pub(super) fn invalid(message: impl Into<String>) -> Response {
    api_error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    let deadline = crate::gateway::conn::body_read_timeout();
    let Ok(read) = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await else {
        return Err(api_error(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            crate::gateway::conn::body_timeout_message(deadline),
        ));
    };
    read.map_err(|e| {
        // axum names no type for the limit error; its chain says "length limit exceeded".
        let mut too_big = false;
        let mut cur: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cur {
            too_big |= c.to_string().contains("length limit");
            cur = c.source();
        }
        if too_big {
            api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("request body is larger than {limit} bytes"),
            )
        } else {
            invalid(format!("could not read the request body: {e}"))
        }
    })
}

pub(super) fn parse_json(bytes: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("invalid JSON body: {e}")))
}

/// zod's type names as upstream prints them.
pub(super) fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

/// The agent a `model` value targets: `openclaw`, `openclaw/default` → the default agent;
/// `openclaw/<id>`, `openclaw:<id>`, `agent:<id>` → that agent. `x-openclaw-agent-id` wins.
pub(super) fn agent_for_model(
    cfg: &crate::config::Config,
    model: &str,
    headers: &HeaderMap,
) -> Result<String, Response> {
    let header_agent = headers
        .get("x-openclaw-agent-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let id = if let Some(h) = header_agent {
        h.to_string()
    } else {
        match model {
            "openclaw" | "openclaw/default" | "openclaw:default" => config::default_agent_id(cfg),
            m => match m
                .strip_prefix("openclaw/")
                .or_else(|| m.strip_prefix("openclaw:"))
                .or_else(|| m.strip_prefix("agent:"))
            {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => {
                    return Err(invalid(format!(
                        "model \"{m}\" is not an agent target; use \"openclaw\", \"openclaw/default\" or \"openclaw/<agentId>\" (choose the backend model with the x-openclaw-model header)"
                    )));
                }
            },
        }
    };
    let id = config::normalize_agent_id(&id);
    if !config::agent_exists(cfg, &id) {
        return Err(invalid(format!("unknown agent id \"{id}\"")));
    }
    Ok(id)
}

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Session routing: `x-openclaw-session-key` → `user` (stable per conversation) → a fresh key.
pub(super) fn session_for(
    cfg: &crate::config::Config,
    agent: &str,
    headers: &HeaderMap,
    user: Option<&str>,
    ns: &str,
) -> Result<String, Response> {
    if let Some(k) = header_str(headers, "x-openclaw-session-key") {
        let lower = k.to_ascii_lowercase();
        let tail = super::methods::agent_of_session_key(&lower)
            .map(|a| &lower["agent:".len() + a.len() + 1..])
            .unwrap_or(&lower);
        if RESERVED_SESSION_PREFIXES
            .iter()
            .any(|p| tail.starts_with(p))
        {
            return Err(invalid(format!(
                "x-openclaw-session-key \"{k}\" uses a reserved namespace (subagent:, cron:, acp:)"
            )));
        }
        return resolve_target(cfg, Some(agent), Some(k), "http")
            .map(|(_, key)| key)
            .map_err(|e| invalid(e.message));
    }
    if let Some(u) = user.map(str::trim).filter(|u| !u.is_empty()) {
        let safe: String = u
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .take(200)
            .collect();
        return Ok(format!("agent:{agent}:{ns}-user:{safe}"));
    }
    Ok(format!("agent:{agent}:{ns}:{}", uuid::Uuid::new_v4()))
}

pub(super) fn check_range(body: &Value, key: &str, lo: f64, hi: f64) -> Result<(), Response> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_f64() {
            Some(f) if (lo..=hi).contains(&f) => Ok(()),
            _ => Err(invalid(format!(
                "{key}: must be a number between {lo} and {hi}"
            ))),
        },
    }
}

/// Validates and copies the sampling fields forwarded upstream.
pub(super) fn sampling(body: &Value) -> Result<Map<String, Value>, Response> {
    check_range(body, "temperature", 0.0, 2.0)?;
    check_range(body, "top_p", 0.0, 1.0)?;
    check_range(body, "frequency_penalty", -2.0, 2.0)?;
    check_range(body, "presence_penalty", -2.0, 2.0)?;
    for k in ["max_tokens", "max_completion_tokens", "max_output_tokens"] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null())
            && v.as_u64().is_none_or(|n| n == 0)
        {
            return Err(invalid(format!("{k}: must be a positive integer")));
        }
    }
    if let Some(v) = body.get("seed").filter(|v| !v.is_null())
        && v.as_i64().is_none()
    {
        return Err(invalid("seed: must be an integer"));
    }
    match body.get("stop") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(a))
            if a.len() <= 4 && a.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty())) => {}
        Some(_) => {
            return Err(invalid(
                "stop: must be a string or up to 4 non-empty strings",
            ));
        }
    }
    let mut m = Map::new();
    for k in FORWARDED_FIELDS {
        if let Some(v) = body.get(*k).filter(|v| !v.is_null()) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    if let Some(v) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        m.insert("max_tokens".into(), v.clone());
    }
    Ok(m)
}

/// Text of an OpenAI message `content` (string or text parts). Non-text parts are refused.
pub(super) fn content_of(v: Option<&Value>, at: &str) -> Result<String, Response> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text" | "input_text" | "output_text") => {
                        out.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some(t) => {
                        return Err(invalid(format!(
                            "{at}: content part type \"{t}\" is not supported by this gateway (text only)"
                        )));
                    }
                    None => return Err(invalid(format!("{at}: content parts need a type"))),
                }
            }
            Ok(out)
        }
        Some(other) => Err(invalid(format!(
            "{at}: Invalid input: expected string or array, received {}",
            type_name(Some(other))
        ))),
    }
}

/// A conversation split into system text, history and the current user message.
pub(super) struct Conversation {
    pub(super) system: Vec<String>,
    pub(super) history: Vec<Msg>,
    pub(super) current: String,
}

pub(super) fn split_conversation(items: Vec<(String, String)>) -> Result<Conversation, Response> {
    let mut system = Vec::new();
    let mut turns: Vec<Msg> = Vec::new();
    for (role, text) in items {
        match role.as_str() {
            "system" | "developer" => system.push(text),
            "user" => turns.push(Msg {
                role: "user",
                content: text,
            }),
            "assistant" => turns.push(Msg {
                role: "assistant",
                content: text,
            }),
            "tool" | "function" => {
                return Err(invalid(
                    "tool results are not supported by this gateway (no client tools)",
                ));
            }
            other => return Err(invalid(format!("unknown message role \"{other}\""))),
        }
    }
    let Some(last_user) = turns.iter().rposition(|m| m.role == "user") else {
        return Err(invalid("messages: at least one user message is required"));
    };
    if last_user + 1 != turns.len() {
        return Err(invalid("messages: the last message must be from the user"));
    }
    let current = turns.pop().map(|m| m.content).unwrap_or_default();
    Ok(Conversation {
        system,
        history: turns,
        current,
    })
}

/// Maps a failed run to an HTTP status and OpenAI error type.
pub(super) fn failure_status(f: &Failure) -> (StatusCode, &'static str) {
    if f.auth {
        (StatusCode::UNAUTHORIZED, "authentication_error")
    } else if f.upstream_status == Some(429) {
        (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")
    } else if f.kind == "timeout" {
        (StatusCode::GATEWAY_TIMEOUT, "timeout_error")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "api_error")
    }
}

pub(super) fn run_error(fin: &Finished) -> Option<(StatusCode, &'static str, String)> {
    match fin.status {
        Status::Ok => None,
        Status::Aborted => Some((
            StatusCode::GATEWAY_TIMEOUT,
            "timeout_error",
            fin.failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_else(|| "the run was aborted".into()),
        )),
        Status::Error => {
            let f = fin.failure.clone().unwrap_or(Failure {
                message: "the run failed".into(),
                auth: false,
                upstream_status: None,
                kind: "unknown",
            });
            let (s, t) = failure_status(&f);
            Some((s, t, f.message))
        }
    }
}

pub(super) fn sse_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub(super) fn sse_body(rx: mpsc::UnboundedReceiver<Bytes>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }))
}

pub(super) fn data_frame(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

pub(super) fn done_frame() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// A spawned HTTP run: the run, its text deltas, and the task that settles it.
pub(super) type Spawned = (
    Arc<ActiveRun>,
    mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<Arc<Finished>>,
);

/// Aborts the run when the request future is dropped before it finished (client gone).
pub(super) struct AbortOnDrop(pub(super) Option<Arc<ActiveRun>>);

impl AbortOnDrop {
    /// The run finished: nothing to abort any more.
    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            r.abort(StopReason::ClientGone);
        }
    }
}

/// Admits an HTTP run (fresh run id) and spawns it on the shutdown tracker; returns the run
/// and a receiver of text deltas. The run is never tied to the request future, so it always
/// settles (events, transcript) even when the client leaves.
pub(super) fn spawn_run(state: &AppState, req: RunRequest) -> Result<Spawned, Response> {
    let agents: Arc<Agents> = super::of(state);
    let run = match agents.admit(&req.run_id, &req.session_key, &req.agent_id, req.kind) {
        Admission::Started(r) => r,
        Admission::Closed => {
            return Err(api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "the gateway is shutting down; retry after it restarts",
            ));
        }
        _ => {
            return Err(api_error(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "a run with this id already exists",
            ));
        }
    };
    let (dtx, drx) = mpsc::unbounded_channel();
    let st = state.clone();
    let r2 = run.clone();
    let handle = state
        .shutdown
        .tracker()
        .spawn(async move { agents.execute(&st, r2, req, Some(dtx)).await });
    Ok((run, drx, handle))
}

pub(super) async fn join(
    handle: impl std::future::Future<Output = Result<Arc<Finished>, tokio::task::JoinError>>,
) -> Option<Arc<Finished>> {
    match handle.await {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!("agent run task failed: {e}");
            None
        }
    }
}

/// A non-streamed run, awaited: the run is aborted if the client goes away first (the future
/// is dropped), and a failed run becomes the API's error response.
pub(super) async fn finished(
    run: Arc<ActiveRun>,
    handle: impl std::future::Future<Output = Result<Arc<Finished>, tokio::task::JoinError>>,
) -> Result<Arc<Finished>, Response> {
    let guard = AbortOnDrop(Some(run));
    let fin = join(handle).await;
    guard.disarm();
    let Some(fin) = fin else {
        return Err(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "the run failed",
        ));
    };
    if let Some((status, kind, msg)) = run_error(&fin) {
        return Err(api_error(status, kind, msg));
    }
    Ok(fin)
}

/// Common gate of the OpenAI-compatible endpoints: enabled → method → auth → JSON body.
pub(super) async fn gate(
    state: &AppState,
    enabled: bool,
    req: Request,
) -> Result<(Value, HeaderMap), Response> {
    if !enabled {
        return Err(not_found());
    }
    if req.method() != Method::POST {
        return Err(method_not_allowed("POST"));
    }
    let (parts, body) = req.into_parts();
    http_api::authorize(state, &parts.headers, &parts.extensions)?;
    let bytes = read_body(body, API_MAX_BODY).await?;
    Ok((parse_json(&bytes)?, parts.headers))
}

pub(super) fn model_entry(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "openclaw", "permission": []})
}

pub(super) fn model_ids(cfg: &crate::config::Config) -> Vec<String> {
    let mut ids = vec!["openclaw".to_string(), "openclaw/default".to_string()];
    for a in config::agent_ids(cfg) {
        ids.push(format!("openclaw/{}", config::normalize_agent_id(&a)));
    }
    ids
}

pub(super) fn models_gate(state: &AppState, req: &Request) -> Option<Response> {
    let cfg = state.config();
    if !(config::chat_completions_enabled(&cfg) || config::responses_enabled(&cfg)) {
        return Some(not_found());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Some(method_not_allowed("GET"));
    }
    http_api::authorize(state, req.headers(), req.extensions()).err()
}

pub(super) async fn models(State(state): State<AppState>, req: Request) -> Response {
    if let Some(r) = models_gate(&state, &req) {
        return r;
    }
    let data: Vec<Value> = model_ids(&state.config())
        .iter()
        .map(|id| model_entry(id))
        .collect();
    json_response(StatusCode::OK, json!({"object": "list", "data": data}))
}

pub(super) async fn model_one(State(state): State<AppState>, req: Request) -> Response {
    if let Some(r) = models_gate(&state, &req) {
        return r;
    }
    let raw = req
        .uri()
        .path()
        .strip_prefix("/v1/models/")
        .unwrap_or_default();
    let id = percent_decode(raw);
    if model_ids(&state.config()).contains(&id) {
        json_response(StatusCode::OK, model_entry(&id))
    } else {
        api_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model '{id}' does not exist"),
        )
    }
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_split_into_system_history_and_current() {
        let c = split_conversation(vec![
            ("system".into(), "be brief".into()),
            ("user".into(), "a".into()),
            ("assistant".into(), "b".into()),
            ("user".into(), "c".into()),
        ])
        .unwrap_or_else(|_| panic!("valid"));
        assert_eq!(c.system, vec!["be brief".to_string()]);
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.current, "c");
        assert!(split_conversation(vec![("assistant".into(), "x".into())]).is_err());
        assert!(
            split_conversation(vec![
                ("user".into(), "x".into()),
                ("assistant".into(), "y".into())
            ])
            .is_err()
        );
    }

    #[test]
    fn model_targets_and_percent_decoding() {
        let cfg = crate::config::Config::parse(
            std::path::Path::new("/c"),
            "{agents:{entries:{main:{},ops:{}}}}".into(),
        )
        .unwrap();
        let h = HeaderMap::new();
        assert_eq!(
            agent_for_model(&cfg, "openclaw", &h).ok().as_deref(),
            Some("main")
        );
        assert_eq!(
            agent_for_model(&cfg, "openclaw/ops", &h).ok().as_deref(),
            Some("ops")
        );
        assert_eq!(
            agent_for_model(&cfg, "agent:ops", &h).ok().as_deref(),
            Some("ops")
        );
        assert!(agent_for_model(&cfg, "gpt-4", &h).is_err());
        assert!(agent_for_model(&cfg, "openclaw/nope", &h).is_err());
        assert_eq!(percent_decode("openclaw%2Fdefault"), "openclaw/default");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(
            model_ids(&cfg),
            vec![
                "openclaw",
                "openclaw/default",
                "openclaw/main",
                "openclaw/ops"
            ]
        );
    }

    #[test]
    fn sampling_ranges() {
        assert!(sampling(&json!({"temperature": 3})).is_err());
        assert!(sampling(&json!({"stop": ["a","b","c","d","e"]})).is_err());
        assert!(sampling(&json!({"max_tokens": 0})).is_err());
        let m = sampling(&json!({"temperature": 1, "max_output_tokens": 5, "tools": []}))
            .unwrap_or_else(|_| panic!("valid"));
        assert_eq!(m.get("max_tokens"), Some(&json!(5)));
        assert!(m.get("tools").is_none());
    }
}
