//! HTTP on the gateway port (docs/protocol.md §5): probes, `/tools/invoke`, disabled-endpoint 404s,
//! security headers on every response, and WebSocket upgrades on any path (intercepted before
//! routing). Unrouted requests are a marked 404 a wing (the Control UI) may answer.
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use super::state::GatewayState;
use super::ws::{self, PeerInfo, UpgradeMeta};
use super::{health, http_api};

type AppState = Arc<GatewayState>;

/// Body cap of `/tools/invoke`.
const TOOLS_INVOKE_MAX_BODY: usize = 2 * 1024 * 1024;

/// The router for one gateway.
pub fn router(state: AppState) -> Router {
    let core = Router::new()
        .route("/health", get(live))
        .route("/healthz", get(live))
        .route("/ready", get(ready))
        .route("/readyz", get(ready))
        .route("/startup", get(startup))
        .route("/startupz", get(startup))
        .route(
            "/tools/invoke",
            post(tools_invoke)
                .fallback(method_not_allowed)
                .layer(DefaultBodyLimit::max(TOOLS_INVOKE_MAX_BODY)),
        )
        .route("/v1", any(not_found))
        .route("/v1/{*rest}", any(not_found))
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .fallback(fallback);
    // The wings' routes, then their interceptors around everything (inside the WS intercept).
    let routed = state.features.merge_routes(core);
    state
        .features
        .layer(routed, &state)
        .layer(middleware::from_fn_with_state(state.clone(), ws_intercept))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(self), geolocation=()"),
    );
    res
}

fn is_ws_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// WebSocket upgrades are accepted on any path except the closed worker path.
async fn ws_intercept(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_ws_upgrade(req.headers()) || req.uri().path().starts_with("/__openclaw__/worker") {
        return next.run(req).await;
    }
    if state.shutdown.is_shutting_down() || state.handover.is_requested() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Gateway websocket admission closed",
        )
            .into_response();
    }
    let (mut parts, _body) = req.into_parts();
    let peer = parts.extensions.get::<ConnectInfo<PeerInfo>>().map(|c| c.0);
    let Some(peer) = peer else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "missing peer info").into_response();
    };
    let h = &parts.headers;
    let meta = UpgradeMeta {
        origin: header_str(h, "origin"),
        host: header_str(h, "host"),
        forwarded: [
            "x-forwarded-for",
            "x-real-ip",
            "forwarded",
            "x-forwarded-host",
        ]
        .iter()
        .any(|n| h.contains_key(*n)),
        scopes_header: header_str(h, "x-openclaw-scopes"),
        user_agent: header_str(h, "user-agent"),
        read_budget: parts
            .extensions
            .get::<super::listener::ReadBudget>()
            .cloned()
            .unwrap_or_default(),
        slot: parts.extensions.get::<super::admission::Slot>().cloned(),
        challenge_nonce: String::new(),
    };
    // Until hello-ok the peer may send one frame of at most 64 KiB (plus control frames); the
    // budget stops it from making us buffer more than this before the size check runs.
    meta.read_budget.limit(PREAUTH_READ_BUDGET);
    // Our own upgrade (not axum's WebSocketUpgrade): the session owns the raw stream, which a
    // zero-downtime handover needs (see ws::upgrade).
    ws::upgrade(state, &mut parts, peer, meta)
}

/// Bytes a WebSocket may send before hello-ok: two maximal pre-auth frames, so an oversized
/// first frame still gets the spec's 1009 from the size check, while a 25 MiB one is cut off.
const PREAUTH_READ_BUDGET: usize = 2 * super::protocol::MAX_PREAUTH_PAYLOAD_BYTES + 1024;

fn json_response(status: StatusCode, body: Value) -> Response {
    http_api::json_no_store(status, &body)
}

fn text_response(status: StatusCode, body: &'static str) -> Response {
    http_api::text(status, body)
}

async fn live() -> Response {
    json_response(StatusCode::OK, json!({"ok": true, "status": "live"}))
}

async fn ready(State(state): State<AppState>) -> Response {
    let (ok, body) = health::ready_body(&state);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body)
}

async fn startup(State(state): State<AppState>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ok": false, "status": "draining", "version": crate::VERSION, "uptimeMs": state.uptime_ms()}),
        );
    }
    json_response(
        StatusCode::OK,
        json!({"ok": true, "status": "started", "version": crate::VERSION, "uptimeMs": state.uptime_ms()}),
    )
}

async fn not_found() -> Response {
    text_response(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> Response {
    text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn invalid_request(message: String) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": message, "type": "invalid_request_error"}}),
    )
}

/// `POST /tools/invoke`: bearer auth, JSON body `{tool|name, args?, …}` of at most 2 MB (413
/// beyond). No tools are exposed over HTTP by this build, so every well-formed call is
/// `404 Tool not available`.
async fn tools_invoke(State(state): State<AppState>, req: Request) -> Response {
    if let Err(res) = http_api::authorize(&state, req.headers(), req.extensions()) {
        return res;
    }
    let too_large = || {
        json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": {"message": format!("request body exceeds {TOOLS_INVOKE_MAX_BODY} bytes"), "type": "invalid_request_error"}}),
        )
    };
    // A declared length over the cap is refused before reading a byte of it.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > TOOLS_INVOKE_MAX_BODY as u64) {
        return too_large();
    }
    let deadline = super::conn::body_read_timeout();
    let read = axum::body::to_bytes(req.into_body(), TOOLS_INVOKE_MAX_BODY);
    let body: Bytes = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return json_response(
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": {"message": super::conn::body_timeout_message(deadline), "type": "invalid_request_error"}}),
            );
        }
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return invalid_request(format!("invalid JSON body: {e}")),
    };
    let tool = v
        .get("tool")
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let Some(tool) = tool else {
        return invalid_request(
            "tool is required (body: {\"tool\": \"<name>\", \"args\": {}})".into(),
        );
    };
    json_response(
        StatusCode::NOT_FOUND,
        json!({"ok": false, "error": {"type": "not_found", "message": format!("Tool not available: {tool}")}}),
    )
}

/// Marks the kernel's answer to a request no route matched (a plain 404), so a wing's
/// interceptor (the Control UI's static files and app shell) may answer it instead.
#[derive(Debug, Clone, Copy)]
pub struct Unrouted;

/// Unmatched requests: `404 Not Found`, marked [`Unrouted`].
async fn fallback() -> Response {
    let mut res = not_found().await;
    res.extensions_mut().insert(Unrouted);
    res
}
