//! HTTP on the gateway port (protocol.md §5): probes, `/tools/invoke`, disabled-endpoint 404s,
//! the minimal Control UI page, security headers on every response, and WebSocket upgrades on
//! any path (intercepted before routing).
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
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

/// Unmatched requests: GET/HEAD → the Control UI page (when enabled); anything else 404.
async fn fallback(State(state): State<AppState>, method: Method) -> Response {
    let ui_enabled = state.config().gateway.control_ui.enabled.unwrap_or(true);
    if (method == Method::GET || method == Method::HEAD) && ui_enabled {
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_SECURITY_POLICY, control_ui_csp()),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            CONTROL_UI_HTML,
        )
            .into_response();
    }
    not_found().await
}

/// The page's Content-Security-Policy, as upstream's Control UI sends it (control-ui.md): only
/// our own inline script and style (by hash), sockets back to us, no framing, plugins, base or
/// form targets. `X-Frame-Options: DENY` goes with it for browsers without `frame-ancestors`.
fn control_ui_csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |open: &str, close: &str| {
            let start = CONTROL_UI_HTML.find(open).expect("page has the element") + open.len();
            let len = CONTROL_UI_HTML[start..]
                .find(close)
                .expect("element is closed");
            let digest =
                <sha2::Sha256 as sha2::Digest>::digest(&CONTROL_UI_HTML[start..start + len]);
            format!(
                "'sha256-{}'",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest)
            )
        };
        format!(
            "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; \
             form-action 'none'; script-src {}; style-src {}; connect-src 'self' ws: wss:",
            hash("<script>", "</script>"),
            hash("<style>", "</style>"),
        )
    })
}

/// The minimal Control UI: connect over WS with a token the user types, show health and
/// presence, follow events. Browsers send `Origin`, so device-less scopes are cleared and only
/// `health` is callable; presence comes from the hello snapshot.
const CONTROL_UI_HTML: &str = r#"<!doctype html>
<html lang="en" data-openclaw-control-ui-base-path="">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpenClaw Gateway</title>
<style>
 body{font:14px system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}
 input,button{font:inherit;padding:.3rem .6rem}
 pre{background:#f4f4f4;padding:.8rem;overflow:auto;max-height:22rem}
 .ok{color:#0a7d32}.err{color:#b00020}
 table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left}
</style>
</head>
<body>
<h1>OpenClaw Gateway</h1>
<form id="f">
 <label>Gateway token <input id="token" type="password" autocomplete="off" size="40"></label>
 <button>Connect</button> <span id="status">disconnected</span>
</form>
<h2>Health</h2><pre id="health">–</pre>
<h2>Presence</h2><table><thead><tr><th>mode</th><th>client</th><th>host</th><th>reason</th><th>since</th></tr></thead><tbody id="presence"></tbody></table>
<h2>Events</h2><pre id="events"></pre>
<script>
"use strict";
let ws = null, n = 0, pending = {}, timer = null;
const $ = (id) => document.getElementById(id);
function setStatus(t, cls) { const s = $("status"); s.textContent = t; s.className = cls || ""; }
function logEvent(e) { const p = $("events"); p.textContent = (JSON.stringify(e) + "\n" + p.textContent).slice(0, 20000); }
function showPresence(list) {
  const tb = $("presence"); tb.textContent = "";
  for (const p of list || []) {
    const tr = document.createElement("tr");
    for (const v of [p.mode, p.clientId || "", p.host || "", p.reason || "", p.onlineSince ? new Date(p.onlineSince).toLocaleTimeString() : ""]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    tb.appendChild(tr);
  }
}
function call(method, params) {
  const id = "ui-" + (++n);
  ws.send(JSON.stringify({ type: "req", id, method, params: params || {} }));
  return new Promise((res, rej) => { pending[id] = { res, rej }; });
}
async function refreshHealth() {
  try { $("health").textContent = JSON.stringify(await call("health"), null, 2); }
  catch (e) { $("health").textContent = String(e); }
}
function connect(token) {
  if (ws) ws.close();
  const url = location.origin.replace(/^http/, "ws") + "/";
  ws = new WebSocket(url);
  setStatus("connecting…");
  ws.onmessage = (m) => {
    let f; try { f = JSON.parse(m.data); } catch { return; }
    if (f.type === "event" && f.event === "connect.challenge") {
      ws.send(JSON.stringify({ type: "req", id: "connect", method: "connect", params: {
        minProtocol: 4, maxProtocol: 4,
        client: { id: "webchat-ui", version: "control-ui", platform: navigator.platform || "web", mode: "webchat" },
        role: "operator", scopes: ["operator.read"], caps: [], auth: { token } } }));
      return;
    }
    if (f.type === "res" && f.id === "connect") {
      if (!f.ok) { setStatus(f.error.message, "err"); return; }
      const h = f.payload;
      setStatus("connected to " + h.server.version + " (conn " + h.server.connId.slice(0, 8) + ")", "ok");
      $("health").textContent = JSON.stringify(h.snapshot.health, null, 2);
      showPresence(h.snapshot.presence);
      clearInterval(timer); timer = setInterval(refreshHealth, 10000);
      return;
    }
    if (f.type === "res" && pending[f.id]) {
      const p = pending[f.id]; delete pending[f.id];
      f.ok ? p.res(f.payload) : p.rej(new Error(f.error.code + ": " + f.error.message));
      return;
    }
    if (f.type === "event") {
      logEvent({ event: f.event, seq: f.seq, payload: f.payload });
      if (f.event === "health") $("health").textContent = JSON.stringify(f.payload, null, 2);
      if (f.event === "presence") showPresence(f.payload.presence);
    }
  };
  ws.onclose = (e) => { clearInterval(timer); setStatus("closed " + e.code + (e.reason ? " " + e.reason : ""), e.code === 1000 ? "" : "err"); };
}
$("f").onsubmit = (e) => { e.preventDefault(); connect($("token").value); };
</script>
</body>
</html>
"#;
