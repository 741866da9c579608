//! One WebSocket session: challenge → connect (validation, protocol range, origin, auth, scope
//! rules) → `hello-ok` → RPC dispatch and events, until close, or until the connection is
//! handed to the next process ([`super::handover`]).
//!
//! Each session is two tasks: this reader (which owns the protocol state) and a writer that
//! drains the socket's [`Outbound`] queue. Handlers run as tracked tasks so responses may
//! arrive out of order and shutdown can wait for them.
//!
//! The upgrade is ours ([`upgrade`]), not axum's `WebSocketUpgrade`: tungstenite runs over
//! [`BoundaryIo`], which the handover needs (frame-boundary reads, the socket's fd).
#![allow(clippy::result_large_err)]
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use super::auth::{self, Verdict};
use super::handover::{ConnState, Quiesced};
use super::methods::Ctx;
use super::protocol::{self, ErrorShape, now_ms};
use super::state::{ConnInfo, GatewayState, OutMsg, Outbound};
use super::wsio::{BoundaryIo, Shared};

/// How long we wait for the peer's close reply after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Consecutive role-gate failures before the socket is closed.
const MAX_UNAUTHORIZED_STREAK: u32 = 10;
/// Close reasons are capped (WS allows 123 bytes; upstream truncates to 120).
const MAX_CLOSE_REASON: usize = 120;
/// Initial per-socket read buffer (tungstenite's default is 128 KiB); idle clients are the
/// common case, so start small (it grows for large frames). Measured by the idle-client bench.
const WS_READ_BUFFER: usize = 4 * 1024;

/// The WebSocket over our boundary-aware stream.
pub type Ws = WebSocketStream<BoundaryIo>;

/// tungstenite settings for gateway sockets (fresh and adopted alike).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(protocol::MAX_PAYLOAD_BYTES))
        .max_frame_size(Some(protocol::MAX_PAYLOAD_BYTES))
}

fn header_has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn reject(status: StatusCode, msg: &'static str) -> Response {
    (status, msg).into_response()
}

/// Answers a WebSocket upgrade request (RFC 6455 §4.2) and starts the session on the upgraded
/// connection; the session is tracked by the shutdown tracker.
pub fn upgrade(
    state: Arc<GatewayState>,
    parts: &mut request::Parts,
    peer: PeerInfo,
    meta: UpgradeMeta,
) -> Response {
    let h = &parts.headers;
    if parts.method != Method::GET {
        return reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request method must be `GET`",
        );
    }
    if !header_has_token(h, header::CONNECTION, "upgrade") {
        return reject(
            StatusCode::BAD_REQUEST,
            "Connection header did not include 'upgrade'",
        );
    }
    if !header_has_token(h, header::UPGRADE, "websocket") {
        return reject(
            StatusCode::BAD_REQUEST,
            "`Upgrade` header did not include 'websocket'",
        );
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return reject(
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Version` header did not include '13'",
        );
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return reject(
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Key` header missing",
        );
    };
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return reject(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket request couldn't be upgraded since no upgrade state was present",
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let tracker = state.shutdown.tracker().clone();
    tracker.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(remote = %peer.remote, "WebSocket upgrade failed: {e}");
                return;
            }
        };
        // Our HTTP/1 server's connections are `TokioIo<CappedStream>` (conn.rs): take the
        // stream back from hyper, with the bytes it read past the request (if any).
        let io = match upgraded.downcast::<hyper_util::rt::TokioIo<super::listener::CappedStream>>()
        {
            Ok(parts) => {
                BoundaryIo::capped(parts.io.into_inner(), peer.remote, parts.read_buf.to_vec())
            }
            // Served some other way (tests over axum::serve): works, but cannot be handed over.
            Err(u) => BoundaryIo::upgraded(hyper_util::rt::TokioIo::new(u), peer.remote),
        };
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config())).await;
        run_session(ws, state, peer, Start::Fresh(meta)).await;
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let rh = res.headers_mut();
    rh.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    rh.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        rh.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// Facts about the HTTP upgrade request that the handshake needs.
#[derive(Debug, Clone, Default)]
pub struct UpgradeMeta {
    /// `Origin` header.
    pub origin: Option<String>,
    /// `Host` header.
    pub host: Option<String>,
    /// Any proxy header present (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`).
    pub forwarded: bool,
    /// `x-openclaw-scopes` header (caps granted scopes).
    pub scopes_header: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// The connection's read budget: limited until hello-ok, lifted after.
    pub read_budget: super::listener::ReadBudget,
}

/// Peer and local addresses of the TCP connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerInfo {
    /// Remote address.
    pub remote: SocketAddr,
    /// Local address.
    pub local: SocketAddr,
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Whether a browser `Origin` may open a socket: configured allow-list, same host as the
/// `Host` header, or a loopback origin from a loopback peer.
pub fn origin_allowed(
    origin: &str,
    host: Option<&str>,
    allowed: &[String],
    peer_loopback: bool,
) -> bool {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim().trim_end_matches('/').to_ascii_lowercase() == o)
    {
        return true;
    }
    let Some((_, hostport)) = o.split_once("://") else {
        return false;
    };
    // A browser's Origin is scheme://host[:port]; anything else (userinfo, a path) is not one
    // we can match safely (`http://localhost:1@evil.example` is not localhost).
    if hostport.is_empty() || hostport.contains(['@', '/', '?', '#', '\\']) {
        return false;
    }
    if let Some(h) = host
        && h.eq_ignore_ascii_case(hostport)
    {
        return true;
    }
    let hostname = if let Some(rest) = hostport.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    peer_loopback && matches!(hostname, "localhost" | "127.0.0.1" | "::1")
}

/// Why a handshake failed: the error response and the close.
#[derive(Debug)]
pub struct Reject {
    /// The `res` error sent before the close (none for some closes).
    pub error: Option<ErrorShape>,
    /// WebSocket close code.
    pub code: u16,
    /// Close reason (≤ 120 bytes).
    pub reason: String,
}

impl Reject {
    fn with_error(e: ErrorShape) -> Reject {
        let reason = protocol::close_reason(&e.message, MAX_CLOSE_REASON);
        Reject {
            error: Some(e),
            code: 1008,
            reason,
        }
    }
}

/// How a session begins.
#[derive(Debug)]
pub enum Start {
    /// A new connection: challenge and handshake first.
    Fresh(UpgradeMeta),
    /// A connection adopted from the previous process, already authenticated.
    Resumed {
        /// Who it is.
        info: Box<ConnInfo>,
        /// The last `seq` it received.
        seq: u64,
    },
}

type Sink = SplitSink<Ws, Message>;
type Stream = SplitStream<Ws>;

fn close_msg(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// The writer: drains the outbound queue until close; on `handover` it writes what is queued
/// (the queue is sealed by then), flushes, and gives the sink back.
async fn writer_task(
    mut sink: Sink,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<OutMsg>,
    out: Outbound,
    closed_sent: CancellationToken,
    handover: CancellationToken,
) -> Option<Sink> {
    let result = loop {
        let msg = tokio::select! {
            biased;
            (code, reason) = out.aborted() => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_msg(code, reason))).await;
                break None;
            }
            _ = handover.cancelled() => {
                let flushed = tokio::time::timeout(super::handover::BOUNDARY_BUDGET, async {
                    while let Ok(m) = rx.try_recv() {
                        match m {
                            OutMsg::Text(t) => {
                                let n = t.len();
                                sink.feed(Message::Text(t.into())).await?;
                                out.mark_written(n);
                            }
                            OutMsg::Close(code, reason) => {
                                sink.send(close_msg(code, reason)).await?;
                                return Ok(false);
                            }
                        }
                    }
                    sink.flush().await.map(|_| true)
                })
                .await;
                break match flushed {
                    Ok(Ok(true)) => Some(sink),
                    _ => None,
                };
            }
            m = rx.recv() => m,
        };
        match msg {
            Some(OutMsg::Text(t)) => {
                let n = t.len();
                let r = tokio::select! {
                    biased;
                    (code, reason) = out.aborted() => {
                        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_msg(code, reason))).await;
                        break None;
                    }
                    r = sink.send(Message::Text(t.into())) => r,
                };
                out.mark_written(n);
                if r.is_err() {
                    break None;
                }
            }
            Some(OutMsg::Close(code, reason)) => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_msg(code, reason))).await;
                break None;
            }
            None => break None,
        }
    };
    if result.is_none() {
        closed_sent.cancel();
    }
    result
}

/// Runs one session to completion (or to its handover).
pub async fn run_session(ws: Ws, state: Arc<GatewayState>, peer: PeerInfo, start: Start) {
    let boundary = ws.get_ref().shared();
    let (sink, mut stream) = ws.split();
    let (out, rx) = Outbound::new(state.settings.max_buffered_bytes);
    let closed_sent = CancellationToken::new();
    let stop_writer = CancellationToken::new();
    let writer = tokio::spawn(writer_task(
        sink,
        rx,
        out.clone(),
        closed_sent.clone(),
        stop_writer.clone(),
    ));

    let (info, guard) = match start {
        Start::Fresh(meta) => {
            let conn_id = uuid::Uuid::new_v4().to_string();
            state
                .pending
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let challenge = protocol::event(
                "connect.challenge",
                json!({
                    "nonce": uuid::Uuid::new_v4().to_string(),
                    "ts": now_ms(),
                    "capabilities": protocol::CHALLENGE_CAPABILITIES,
                }),
                None,
                None,
            );
            out.send_value(&challenge);
            let hello = handshake(
                &state,
                &peer,
                &meta,
                &conn_id,
                &mut stream,
                &out,
                &closed_sent,
            )
            .await;
            if hello.is_some() {
                meta.read_budget.lift();
            }
            // Counted as serving before it stops counting as pending: a handover waiting for
            // both to drain never misses it.
            let guard = hello.as_ref().map(|_| state.handover.enter_serve());
            state
                .pending
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            (hello, guard)
        }
        Start::Resumed { info, seq } => {
            let guard = state.handover.enter_serve();
            let arc = Arc::new((*info).clone());
            state.register_resumed(arc.clone(), out.clone(), seq);
            state.presence_update(&arc, true);
            tracing::debug!(conn = %info.id, seq, "resumed");
            (Some(*info), Some(guard))
        }
    };
    if let Some(info) = info {
        let info = Arc::new(info);
        let end = serve(&state, &info, &mut stream, &out, &closed_sent, &boundary).await;
        if let End::Quiesce(work) = end {
            match hand_over(&state, &info, stream, &out, writer, &stop_writer, work).await {
                None => {
                    // In the store (or gone): the next process continues it. No close, no
                    // presence change.
                    drop(guard);
                    return;
                }
                Some((s, w)) => {
                    // Could not be carried: close it as a plain shutdown would.
                    stream = s;
                    state.unregister(&info.id);
                    out.close(1012, "service restart");
                    finish(stream, w, &closed_sent).await;
                    drop(guard);
                    return;
                }
            }
        }
        state.unregister(&info.id);
        state.presence_update(&info, false);
        tracing::debug!(conn = %info.id, "disconnected");
    }
    // Make sure a close goes out, then wait (bounded) for the writer and the peer's reply.
    out.close(1000, "");
    finish(stream, writer, &closed_sent).await;
    drop(guard);
}

async fn finish(
    mut stream: Stream,
    writer: tokio::task::JoinHandle<Option<Sink>>,
    closed_sent: &CancellationToken,
) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        closed_sent.cancelled().await;
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    writer.abort();
}

/// In-flight work of a quiescing session.
struct InFlight {
    permits: Arc<Semaphore>,
    max: u32,
    outstanding: Arc<Mutex<HashSet<String>>>,
}

/// The session's part of a handover. `None`: carried (or the socket died meanwhile).
/// `Some`: not carried; the caller closes it normally.
async fn hand_over(
    state: &Arc<GatewayState>,
    info: &Arc<ConnInfo>,
    stream: Stream,
    out: &Outbound,
    writer: tokio::task::JoinHandle<Option<Sink>>,
    stop_writer: &CancellationToken,
    work: InFlight,
) -> Option<(Stream, tokio::task::JoinHandle<Option<Sink>>)> {
    // 1. Requests already running are answered by this process (bounded).
    let budget = super::handover::inflight_budget();
    if tokio::time::timeout(budget, work.permits.acquire_many(work.max))
        .await
        .is_err()
    {
        let left: Vec<String> = work
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for id in &left {
            let mut e = ErrorShape::unavailable("gateway restarting; retry the request");
            e.retryable = Some(true);
            e.retry_after_ms = Some(500);
            out.send_value(&protocol::res_err(id, &e));
        }
        tracing::warn!(conn = %info.id, requests = left.len(), "handover: requests still running after {budget:?} were answered UNAVAILABLE (retryable)");
    }
    // 2. No event may take a seq the next process will use.
    let Some(seq) = state.take_for_handover(&info.id) else {
        return Some((stream, writer));
    };
    // 3. Nothing more is queued; the writer flushes what is and returns the sink.
    out.seal();
    stop_writer.cancel();
    let sink = match writer.await {
        Ok(Some(s)) => s,
        _ => return None, // the socket failed while flushing: nothing left to carry
    };
    let Ok(mut ws) = sink.reunite(stream) else {
        return None;
    };
    let io = ws.get_mut();
    if !io.at_boundary() {
        let _ = close_ws(ws, 1012).await;
        return None;
    }
    let fd = match io.dup_fd() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(conn = %info.id, "handover: cannot duplicate the socket: {e}");
            close_ws(ws, 1012).await;
            return None;
        }
    };
    let pending = io.take_pending();
    let q = Quiesced {
        state: ConnState::capture(info, seq, &pending),
        fd,
    };
    if let Err(q) = state.handover.submit(q) {
        drop(q);
        close_ws(ws, 1012).await;
        return None;
    }
    tracing::debug!(conn = %info.id, seq, pending = pending.len(), "quiesced for handover");
    None
}

async fn close_ws(mut ws: Ws, code: u16) {
    let _ = tokio::time::timeout(
        CLOSE_GRACE,
        ws.send(close_msg(code, "service restart".into())),
    )
    .await;
}

/// Reads the first frame(s) until hello-ok or rejection. Returns the connection on success.
async fn handshake(
    state: &Arc<GatewayState>,
    peer: &PeerInfo,
    meta: &UpgradeMeta,
    conn_id: &str,
    stream: &mut Stream,
    out: &Outbound,
    closed_sent: &CancellationToken,
) -> Option<ConnInfo> {
    let deadline = tokio::time::sleep(Duration::from_millis(state.settings.handshake_timeout_ms));
    tokio::pin!(deadline);
    let token = state.shutdown.token().clone();
    loop {
        let msg = tokio::select! {
            _ = &mut deadline => {
                tracing::info!(remote = %peer.remote, "handshake timeout; closing");
                out.close(1000, "");
                return None;
            }
            _ = token.cancelled() => {
                out.close(1012, "service restart");
                return None;
            }
            _ = closed_sent.cancelled() => return None,
            m = stream.next() => m,
        };
        let bytes = match msg {
            Some(Err(e)) if is_budget_error(&e) => {
                tracing::info!(remote = %peer.remote, "pre-auth read budget exceeded; closing 1009");
                out.close(1009, "");
                return None;
            }
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
        };
        let (id, params) = match protocol::decode_preauth(&bytes) {
            protocol::Preauth::Connect { id, params } => (id, params),
            protocol::Preauth::TooLarge => {
                tracing::info!(remote = %peer.remote, bytes = bytes.len(), "pre-auth frame too large; closing 1009");
                out.close(1009, "");
                return None;
            }
            protocol::Preauth::NotJson => {
                tracing::info!(remote = %peer.remote, "non-JSON first frame; closing");
                out.close(1000, "");
                return None;
            }
            protocol::Preauth::InvalidFrame => {
                tracing::info!(remote = %peer.remote, "closed before connect: invalid request frame");
                out.close(1008, "invalid request frame");
                return None;
            }
            protocol::Preauth::NotConnect { id, method, error } => {
                out.send_value(&protocol::res_err(&id, &error));
                out.close(1008, &error.message);
                tracing::info!(remote = %peer.remote, "closed before connect: first request was {method}");
                return None;
            }
        };
        match connect(state, peer, meta, conn_id, &params) {
            Ok(info) => {
                let hello = hello_ok(state, &info);
                out.send_value(&protocol::res_ok(&id, hello));
                let info_arc = Arc::new(info.clone());
                state.register(info_arc.clone(), out.clone());
                let health = super::health::health_snapshot(state);
                state.send_event_to(&info.id, "health", &health, true);
                state.presence_update(&info_arc, true);
                tracing::info!(
                    conn = %info.id, client = %format!("{}/{}", info.client_id, info.client_mode),
                    remote = %peer.remote, scopes = %info.scopes.join(","), "client connected"
                );
                return Some(info);
            }
            Err(r) => {
                if let Some(e) = &r.error {
                    out.send_value(&protocol::res_err(&id, e));
                }
                tracing::info!(remote = %peer.remote, code = r.code, reason = %r.reason, "connect rejected");
                out.close(r.code, &r.reason);
                return None;
            }
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Admission of a `connect` request (public so the fuzz targets drive the real admission).
pub fn connect(
    state: &GatewayState,
    peer: &PeerInfo,
    meta: &UpgradeMeta,
    conn_id: &str,
    params: &Value,
) -> Result<ConnInfo, Reject> {
    protocol::validate_connect_params(params).map_err(|m| {
        Reject::with_error(ErrorShape::invalid(format!("invalid connect params: {m}")))
    })?;
    let client = &params["client"];
    let client_id = str_field(client, "id").unwrap_or_default();
    let mode = str_field(client, "mode").unwrap_or_default();
    let role = str_field(params, "role").unwrap_or("operator");
    if role != "operator" && role != "node" {
        return Err(Reject::with_error(ErrorShape::invalid("invalid role")));
    }
    let min = params["minProtocol"].as_f64().unwrap_or(0.0) as i64;
    let max = params["maxProtocol"].as_f64().unwrap_or(0.0) as i64;
    if !protocol::protocol_acceptable(min, max, mode, role) {
        return Err(Reject {
            error: Some(protocol::protocol_mismatch(min, max)),
            code: 1002,
            reason: "protocol mismatch".into(),
        });
    }
    let cfg = state.config();
    let peer_loopback = is_loopback(&peer.remote);
    if let Some(origin) = &meta.origin
        && !origin_allowed(
            origin,
            meta.host.as_deref(),
            &cfg.gateway.control_ui.allowed_origins,
            peer_loopback,
        )
    {
        return Err(Reject::with_error(
            ErrorShape::invalid("origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)")
                .with_details(json!({"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": "origin not allowed"})),
        ));
    }
    let authn = state.auth();
    let ip = peer.remote.ip().to_canonical();
    if let Some(wait) = state.rate_limiter.check(ip, &authn.rate_limit) {
        return Err(Reject::with_error(auth::rate_limited(wait)));
    }
    let a = params.get("auth");
    let token = a.and_then(|a| str_field(a, "token"));
    let password = a.and_then(|a| str_field(a, "password"));
    let has_device = params.get("device").is_some();
    let method = match authn.verify(token, password) {
        Verdict::Ok { method } => {
            state.rate_limiter.record_success(ip);
            method
        }
        Verdict::NoCredentials if has_device => {
            return Err(Reject::with_error(
                ErrorShape::new(
                    "NOT_PAIRED",
                    "pairing required (this gateway does not pair devices yet; connect with the gateway token)",
                )
                .with_details(json!({"code": "PAIRING_REQUIRED"})),
            ));
        }
        Verdict::NoCredentials => {
            return Err(Reject::with_error(auth::device_identity_required()));
        }
        Verdict::Mismatch(e) => {
            if let Some(lock) = state.rate_limiter.record_failure(ip, &authn.rate_limit) {
                tracing::warn!(remote = %peer.remote, lockout_ms = lock.as_millis() as u64, "too many failed auth attempts; locking out");
            }
            return Err(Reject::with_error(e));
        }
    };
    if !has_device
        && matches!(
            client_id,
            "openclaw-control-ui" | "openclaw-tui" | "openclaw-browser-copilot"
        )
    {
        return Err(Reject::with_error(
            ErrorShape::invalid(
                "control ui requires device identity (use HTTPS or localhost secure context)",
            )
            .with_details(json!({"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"})),
        ));
    }
    if role == "node" && !has_device {
        return Err(Reject::with_error(auth::device_identity_required()));
    }
    // Device-less scope rules (§2.3): only direct-local cli/cli and gateway-client/backend
    // keep the scopes they asked for; everyone else gets none.
    let direct_local = peer_loopback && !meta.forwarded && meta.origin.is_none();
    let keeps = direct_local
        && matches!(
            (client_id, mode),
            ("cli", "cli") | ("gateway-client", "backend")
        );
    let mut scopes: Vec<String> = Vec::new();
    if keeps && role == "operator" {
        for s in params
            .get("scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_string());
            }
        }
    }
    if let Some(cap) = &meta.scopes_header {
        let allowed: Vec<&str> = cap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        scopes.retain(|s| allowed.contains(&s.as_str()));
    }
    let strings = |key: &str| -> Vec<String> {
        params
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ConnInfo {
        id: conn_id.to_string(),
        client_id: client_id.to_string(),
        client_mode: mode.to_string(),
        client_version: str_field(client, "version").unwrap_or_default().into(),
        platform: str_field(client, "platform").unwrap_or_default().into(),
        device_family: str_field(client, "deviceFamily").map(str::to_string),
        display_name: str_field(client, "displayName").map(str::to_string),
        instance_id: str_field(client, "instanceId").map(str::to_string),
        role: role.to_string(),
        scopes,
        caps: strings("caps"),
        remote: peer.remote,
        connected_at_ms: now_ms(),
        auth_method: method,
    })
}

/// The `hello-ok` payload.
fn hello_ok(state: &GatewayState, info: &ConnInfo) -> Value {
    let cfg = state.config();
    let auth = state.auth();
    let mut snapshot = json!({
        "presence": state.presence_list(),
        "health": super::health::health_snapshot(state),
        "stateVersion": state.state_version(),
        "uptimeMs": state.uptime_ms(),
        "sessionDefaults": {
            "defaultAgentId": super::methods::default_agent_id(&cfg),
            "mainKey": "main",
            "mainSessionKey": format!("agent:{}:main", super::methods::default_agent_id(&cfg)),
            "scope": "per-sender",
        },
        "authMode": auth.mode.as_str(),
    });
    if info.has_scope(protocol::scopes::ADMIN) {
        snapshot["configPath"] = state.paths.config_path.display().to_string().into();
        snapshot["stateDir"] = state.paths.state_dir.display().to_string().into();
    }
    json!({
        "type": "hello-ok",
        "protocol": protocol::PROTOCOL_VERSION,
        "server": {
            "version": crate::VERSION,
            "bootId": state.boot_id,
            "connId": info.id,
        },
        "features": {
            "methods": state.methods.method_names(),
            "events": state.methods.event_names(),
        },
        "snapshot": snapshot,
        "auth": {
            "method": info.auth_method,
            "role": info.role,
            "scopes": info.scopes,
        },
        "policy": {
            "maxPayload": protocol::MAX_PAYLOAD_BYTES,
            "maxBufferedBytes": state.settings.max_buffered_bytes,
            "tickIntervalMs": state.settings.tick_interval_ms,
        },
    })
}

/// How the authenticated phase ended.
enum End {
    /// Closed (by either side) or shut down.
    Closed,
    /// Stopped at a message boundary for a handover.
    Quiesce(InFlight),
}

/// The authenticated phase: dispatch requests until the socket closes, shutdown, or a handover
/// (then reading stops at the next message boundary).
async fn serve(
    state: &Arc<GatewayState>,
    info: &Arc<ConnInfo>,
    stream: &mut Stream,
    out: &Outbound,
    closed_sent: &CancellationToken,
    boundary: &Shared,
) -> End {
    let max = state.settings.max_inflight_per_conn;
    let inflight = Arc::new(Semaphore::new(max));
    let outstanding: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let quiesce = |inflight: &Arc<Semaphore>, outstanding: &Arc<Mutex<HashSet<String>>>| {
        End::Quiesce(InFlight {
            permits: inflight.clone(),
            max: max as u32,
            outstanding: outstanding.clone(),
        })
    };
    let token = state.shutdown.token().clone();
    let handover = state.handover.token().clone();
    let mut quiescing = false;
    let boundary_deadline = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(boundary_deadline);
    let mut unauthorized_streak = 0u32;
    loop {
        let msg = tokio::select! {
            biased;
            _ = handover.cancelled(), if !quiescing => {
                quiescing = true;
                if boundary.at_boundary() {
                    return quiesce(&inflight, &outstanding);
                }
                // Mid-frame: finish reading the current message first (bounded).
                boundary_deadline
                    .as_mut()
                    .reset(tokio::time::Instant::now() + super::handover::BOUNDARY_BUDGET);
                continue;
            }
            _ = &mut boundary_deadline, if quiescing => {
                tracing::info!(conn = %info.id, "handover: no message boundary within {:?}; closing", super::handover::BOUNDARY_BUDGET);
                out.close(1012, "service restart");
                return End::Closed;
            }
            _ = token.cancelled() => {
                // The shutdown event was broadcast before the token fired; close after it.
                out.close(1012, "service restart");
                return End::Closed;
            }
            _ = closed_sent.cancelled() => return End::Closed,
            m = stream.next() => m,
        };
        let text = match msg {
            None | Some(Ok(Message::Close(_))) => return End::Closed,
            Some(Err(e)) => {
                if matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)) {
                    out.close(1009, "message too big");
                }
                return End::Closed;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                if quiescing && boundary.at_boundary() {
                    return quiesce(&inflight, &outstanding);
                }
                continue;
            }
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
        };
        dispatch(
            state,
            info,
            out,
            &text,
            &inflight,
            &outstanding,
            &mut unauthorized_streak,
        );
        if out.is_closed() && !quiescing {
            // dispatch closed the socket (repeated unauthorized calls)
            return End::Closed;
        }
        if quiescing && boundary.at_boundary() {
            return quiesce(&inflight, &outstanding);
        }
    }
}

/// Handles one request frame (responses may arrive later, from tracked handler tasks).
fn dispatch(
    state: &Arc<GatewayState>,
    info: &Arc<ConnInfo>,
    out: &Outbound,
    text: &str,
    inflight: &Arc<Semaphore>,
    outstanding: &Arc<Mutex<HashSet<String>>>,
    unauthorized_streak: &mut u32,
) {
    let req = match protocol::decode_inbound(text) {
        protocol::Inbound::Request(r) => r,
        protocol::Inbound::Reply(res) => {
            out.send_value(&res);
            return;
        }
        protocol::Inbound::Ignore => {
            tracing::debug!(conn = %info.id, "ignoring non-JSON frame");
            return;
        }
    };
    let spec = match state
        .methods
        .authorize(info, &req.method, req.params.as_ref())
    {
        Ok(s) => {
            *unauthorized_streak = 0;
            s.clone()
        }
        Err(e) => {
            let role_gate = e.message.starts_with("unauthorized role");
            out.send_value(&protocol::res_err(&req.id, &e));
            if role_gate {
                *unauthorized_streak += 1;
                if *unauthorized_streak > MAX_UNAUTHORIZED_STREAK {
                    out.close(1008, "repeated unauthorized calls");
                }
            } else {
                *unauthorized_streak = 0;
            }
            return;
        }
    };
    let Ok(permit) = inflight.clone().try_acquire_owned() else {
        let mut e = ErrorShape::unavailable("The server is busy. Please try again in a moment.");
        e.retryable = Some(true);
        out.send_value(&protocol::res_err(&req.id, &e));
        return;
    };
    let ctx = Ctx::new(
        state.clone(),
        info.clone(),
        req.id.clone(),
        req.params,
        out.clone(),
    );
    let out = out.clone();
    let method = req.method.clone();
    let id = req.id;
    outstanding
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone());
    let outstanding = outstanding.clone();
    let started = std::time::Instant::now();
    let responded = ctx.responded_flag();
    state.shutdown.tracker().spawn(async move {
        let r = std::panic::AssertUnwindSafe((spec.handler)(ctx))
            .catch_unwind()
            .await;
        if responded.load(std::sync::atomic::Ordering::Acquire) && r.is_ok() {
            // The handler sent its final frame itself.
            outstanding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            tracing::debug!(method = %method, ms = started.elapsed().as_millis() as u64, "res (sent by handler)");
            drop(permit);
            return;
        }
        let frame = match r {
            Ok(Ok(payload)) => protocol::res_ok(&id, payload),
            Ok(Err(e)) => protocol::res_err(&id, &e),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "internal error".into());
                tracing::error!(method = %method, "handler panicked: {msg}");
                protocol::res_err(&id, &ErrorShape::unavailable(msg))
            }
        };
        let ok = frame["ok"].as_bool().unwrap_or(false);
        // Exactly one response per id: a handover that gave up on this request has already
        // answered it (and removed the id). Sent under the lock, so it is queued before the
        // handover seals the queue.
        {
            let mut pending = outstanding.lock().unwrap_or_else(|p| p.into_inner());
            if pending.remove(&id) {
                out.send_value(&frame);
            }
        }
        tracing::debug!(method = %method, ok, ms = started.elapsed().as_millis() as u64, "res");
        drop(permit);
    });
}

/// True when the socket's read failed because its pre-auth [`ReadBudget`] was spent.
///
/// [`ReadBudget`]: super::listener::ReadBudget
fn is_budget_error(e: &tokio_tungstenite::tungstenite::Error) -> bool {
    match e {
        tokio_tungstenite::tungstenite::Error::Io(io) => io
            .get_ref()
            .is_some_and(|i| i.is::<super::listener::BudgetExceeded>()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(origin_allowed(
            "http://127.0.0.1:18789",
            Some("127.0.0.1:18789"),
            &[],
            true
        ));
        assert!(origin_allowed(
            "http://localhost:5173",
            Some("127.0.0.1:1"),
            &[],
            true
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("127.0.0.1:1"),
            &[],
            true
        ));
        assert!(origin_allowed(
            "https://ui.example/",
            None,
            &["https://ui.example".into()],
            false
        ));
        assert!(!origin_allowed("http://localhost:1", None, &[], false));
        assert!(origin_allowed("http://[::1]:9", None, &[], true));
        assert!(!origin_allowed(
            "http://localhost:1@evil.example",
            None,
            &[],
            true
        ));
        assert!(!origin_allowed("http://localhost/x", None, &[], true));
        assert!(!origin_allowed("null", Some("127.0.0.1:1"), &[], true));
    }
}
