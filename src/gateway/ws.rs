//! One WebSocket session: challenge → connect (validation, protocol range, origin, auth, scope
//! rules) → `hello-ok` → RPC dispatch and events, until close, or until the connection is
//! handed to the next process ([`super::handover`]).
//!
//! Each session is one task that reads frames and writes the socket's [`Outbound`] queue from
//! the same poll ([`Conn`]). Handlers that complete without waiting are answered inline; the
//! others run as tracked tasks, so responses may arrive out of order and shutdown can wait
//! for them.
//!
//! The upgrade is ours ([`upgrade`]), not axum's `WebSocketUpgrade`: tungstenite runs over
//! [`BoundaryIo`], which the handover needs (frame-boundary reads, the socket's fd).
#![allow(clippy::result_large_err)]
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, Sink, SinkExt, Stream};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::auth::{self, Verdict};
use super::device;
use super::handover::{ConnState, Quiesced};
use super::methods::Ctx;
use super::outbound::{OutMsg, Outbound, OutboundRx};
use super::protocol::{self, ErrorShape};
use super::state::{ConnInfo, GatewayState};
use super::wsio::BoundaryIo;
use crate::sys::time::now_ms;

/// How long we wait for the peer's close reply after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Consecutive role-gate failures before the socket is closed.
const MAX_UNAUTHORIZED_STREAK: u32 = 10;
/// Close reasons are capped (WS allows 123 bytes; upstream truncates to 120).
const MAX_CLOSE_REASON: usize = 120;
/// Per-socket read buffer (tungstenite's default is 128 KiB). Every socket holds it for life,
/// idle or not, so it is a large part of an idle client's cost. It is also the most one read
/// call takes: a frame longer than this is still buffered whole (tungstenite reserves its
/// length), just read in 1 KiB steps. A 1 MiB frame's round trip measured 1.39 ms (1.28 ms
/// with 2 KiB); RPC frames are far smaller. Measured by the idle-client bench.
const WS_READ_BUFFER: usize = 1024;
/// Bytes handed to the socket before it is flushed, unless a single frame is larger.
const WRITE_BATCH: usize = 1024;

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
    // One pointer in the task instead of the arguments themselves: the task keeps the slots
    // of what it captured for as long as the socket lives.
    let args = Box::new((state, peer, meta));
    tracker.spawn(async move {
        // Everything but the session is scoped to this block, so the task does not keep a
        // slot for it while the session runs.
        let session = {
            let args = args; // moved in here, so its box is freed with this block
            let remote = args.1.remote;
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(remote = %remote, "WebSocket upgrade failed: {e}");
                    return;
                }
            };
            // Our HTTP/1 server's connections are `TokioIo<CappedStream>` (conn.rs): take the
            // stream back from hyper, with the bytes it read past the request (if any).
            let io = match upgraded
                .downcast::<hyper_util::rt::TokioIo<super::listener::CappedStream>>()
            {
                Ok(parts) => {
                    BoundaryIo::capped(parts.io.into_inner(), remote, parts.read_buf.to_vec())
                }
                // Served some other way (tests over axum::serve): works, but cannot be handed
                // over.
                Err(u) => BoundaryIo::upgraded(hyper_util::rt::TokioIo::new(u), remote),
            };
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config())).await;
            let (state, peer, meta) = *args;
            run_session(ws, state, peer, Start::Fresh(meta))
        };
        session.await;
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
    /// The connection's admission slot: moved to the authenticated budget at hello-ok.
    pub slot: Option<super::admission::Slot>,
    /// The nonce of this connection's `connect.challenge` (a device proof must sign it).
    pub challenge_nonce: String,
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
    if origin_listed(origin, allowed) {
        return true;
    }
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
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

/// Whether `origin` is in `gateway.controlUi.allowedOrigins` (or that list has `*`).
fn origin_listed(origin: &str, allowed: &[String]) -> bool {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    allowed
        .iter()
        .any(|a| a == "*" || a.trim().trim_end_matches('/').to_ascii_lowercase() == o)
}

/// Whether a `Host` header names this machine's loopback: `localhost`, `127.x.y.z` or `[::1]`,
/// with or without a port. A DNS-rebinding page reaches a loopback gateway under its own name
/// (`Host: evil.example:18789`, with a matching `Origin`), which this refuses.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((name, port)) if port.is_empty() || port.starts_with(':') => name,
            _ => return false,
        }
    } else {
        match h.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => &h,
        }
    };
    if name == "localhost" {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
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

fn close_msg(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// The socket of one session, driven by the session's only task: inbound frames are read and
/// the [`Outbound`] queue is written from the same poll. A session thus costs one task (no
/// writer task, no split lock), and a response produced inline goes out without a wake-up.
#[derive(Debug)]
struct Conn {
    ws: Ws,
    rx: OutboundRx,
    /// Bytes handed to the socket but not flushed yet (still counted as queued).
    unflushed: usize,
    /// A close that is being sent (kept across cancellation of [`Conn::next`]).
    closing: Option<(u16, String)>,
    /// Our close frame went out, or writing failed: nothing more will be written.
    closed: bool,
}

/// What [`Conn::next`] yields.
enum Next {
    /// An inbound message (`None`: the stream ended).
    Msg(Option<Result<Message, WsError>>),
    /// Our close frame went out, or writing failed.
    Closed,
}

/// One step of [`Conn::poll_io`].
enum Io {
    Msg(Option<Result<Message, WsError>>),
    Close(u16, String),
    Failed,
}

impl Conn {
    fn new(ws: Ws, rx: OutboundRx) -> Conn {
        Conn {
            ws,
            rx,
            unflushed: 0,
            closing: None,
            closed: false,
        }
    }

    /// The next inbound message; meanwhile queued frames are written. Cancel-safe: nothing is
    /// taken from the queue without being handed to the socket in the same poll.
    async fn next(&mut self) -> Next {
        loop {
            if let Some((code, reason)) = self.closing.clone() {
                // Bounded: a peer that does not read must not keep the session alive. Boxed:
                // a cold path that would otherwise enlarge every idle session's future.
                let send = self.send_close(close_msg(code, reason));
                let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, send)).await;
                self.closing = None;
                self.closed = true;
            }
            if self.closed {
                return Next::Closed;
            }
            match std::future::poll_fn(|cx| self.poll_io(cx)).await {
                Io::Msg(m) => {
                    // Any frame (a pong too) shows the peer is alive: the idle policy's clock.
                    self.rx.heard();
                    // The caller handles this message on our task and then calls `next` again,
                    // which looks at the queue before sleeping: answers queued meanwhile need
                    // no wake-up (one would re-schedule this task, often via the other worker).
                    self.rx.unregister();
                    return Next::Msg(m);
                }
                Io::Close(code, reason) => self.closing = Some((code, reason)),
                Io::Failed => self.closed = true,
            }
        }
    }

    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Io> {
        // Register before looking, so a frame queued meanwhile wakes us.
        self.rx.register(cx.waker());
        if let Some((code, reason)) = self.rx.aborted() {
            return Poll::Ready(Io::Close(code, reason));
        }
        let mut ws = Pin::new(&mut self.ws);
        // Keep-alive ping (see `state::idle_timeout`), ahead of queued frames; a socket that
        // cannot take it now keeps the request for the next poll.
        if self.rx.take_ping() {
            match ws.as_mut().poll_ready(cx) {
                Poll::Ready(Err(_)) => return Poll::Ready(Io::Failed),
                Poll::Ready(Ok(())) => {
                    if ws
                        .as_mut()
                        .start_send(Message::Ping(Default::default()))
                        .is_err()
                    {
                        return Poll::Ready(Io::Failed);
                    }
                    if matches!(ws.as_mut().poll_flush(cx), Poll::Ready(Err(_))) {
                        return Poll::Ready(Io::Failed);
                    }
                }
                Poll::Pending => {}
            }
        }
        while self.rx.has_pending() {
            // Frames are handed over in batches written by one flush, but a batch stays small:
            // the socket's write buffer keeps the capacity of its largest batch for life.
            if self.unflushed >= WRITE_BATCH {
                match ws.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.rx.mark_written(self.unflushed);
                        self.unflushed = 0;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Io::Failed),
                    Poll::Pending => break,
                }
            }
            match ws.as_mut().poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => return Poll::Ready(Io::Failed),
                Poll::Ready(Ok(())) => {}
            }
            match self.rx.try_recv() {
                Ok(OutMsg::Text(t)) => {
                    self.unflushed += t.len();
                    if ws.as_mut().start_send(Message::Text(t.into())).is_err() {
                        return Poll::Ready(Io::Failed);
                    }
                }
                Ok(OutMsg::Close(code, reason)) => {
                    return Poll::Ready(Io::Close(code, reason));
                }
                Err(_) => break,
            }
        }
        if self.unflushed > 0 {
            match ws.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.rx.mark_written(self.unflushed);
                    self.unflushed = 0;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Io::Failed),
                Poll::Pending => {}
            }
        }
        ws.poll_next(cx).map(Io::Msg)
    }

    /// Writes `close` (after what the socket already holds) and flushes it, reading and
    /// dropping what the peer sends meanwhile: a peer busy writing (a slow consumer flooding
    /// requests) is not blocked by us, and so gets to read its close. Ends early when the
    /// stream ends or fails.
    async fn send_close(&mut self, close: Message) {
        let mut close = Some(close);
        std::future::poll_fn(|cx| {
            let mut ws = Pin::new(&mut self.ws);
            if close.is_some() {
                match ws.as_mut().poll_ready(cx) {
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(())) => {
                        let c = close.take().expect("checked above");
                        if ws.as_mut().start_send(c).is_err() {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Pending => {}
                }
            }
            if close.is_none() && ws.as_mut().poll_flush(cx).is_ready() {
                return Poll::Ready(());
            }
            loop {
                match ws.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None | Some(Err(_))) => return Poll::Ready(()),
                    Poll::Ready(Some(Ok(_))) => {}
                }
            }
        })
        .await
    }

    /// Sends a close now (bounded), ahead of anything still queued.
    async fn close_now(&mut self, code: u16, reason: &str) {
        self.closing = Some((code, reason.to_string()));
        let _ = self.next().await;
    }

    /// Handover: writes everything queued (the queue is sealed) and flushes, bounded by the
    /// caller. False when the socket failed, or a close was queued or forced (then sent).
    async fn flush_for_handover(&mut self) -> bool {
        loop {
            if let Some((code, reason)) = self.rx.aborted() {
                self.close_now(code, &reason).await;
                return false;
            }
            match self.rx.try_recv() {
                Ok(OutMsg::Text(t)) => {
                    self.unflushed += t.len();
                    if self.ws.feed(Message::Text(t.into())).await.is_err() {
                        return false;
                    }
                }
                Ok(OutMsg::Close(code, reason)) => {
                    self.close_now(code, &reason).await;
                    return false;
                }
                Err(_) => break,
            }
        }
        if self.ws.flush().await.is_err() {
            return false;
        }
        self.rx.mark_written(std::mem::take(&mut self.unflushed));
        true
    }

    /// End of session: write what is queued and the close frame, then wait for the peer's
    /// close reply (callers bound this in time).
    async fn finish(&mut self) {
        loop {
            match self.next().await {
                Next::Closed => break,
                Next::Msg(None | Some(Err(_))) => return,
                Next::Msg(Some(Ok(_))) => {}
            }
        }
        // Wait for the peer's close reply. A close frame still buffered (the send above timed
        // out on a peer that was not reading, e.g. a slow consumer) keeps being flushed
        // meanwhile, so a peer that starts reading late still gets its close code.
        let ws = &mut self.ws;
        loop {
            let m = std::future::poll_fn(|cx| {
                let _ = Pin::new(&mut *ws).poll_flush(cx);
                Pin::new(&mut *ws).poll_next(cx)
            })
            .await;
            match m {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// Runs one session to completion (or to its handover) on one task. The opening (challenge
/// and handshake, with the upgrade metadata only it needs) lives in its own allocation, freed
/// once the socket is authenticated, so an idle session keeps only its request loop's state.
pub fn run_session(
    ws: Ws,
    state: Arc<GatewayState>,
    peer: PeerInfo,
    start: Start,
) -> impl Future<Output = ()> + Send + 'static {
    let (out, rx) = Outbound::new(state.settings.max_buffered_bytes);
    let conn = Conn::new(ws, rx);
    let opening = Box::pin(open(conn, state.clone(), peer, start, out.clone()));
    session(opening, state, out)
}

/// A session's opening: challenge and handshake for a fresh connection (counted as pending
/// until the caller has entered serving), re-registration for a resumed one.
async fn open(
    mut conn: Conn,
    state: Arc<GatewayState>,
    peer: PeerInfo,
    start: Start,
    out: Outbound,
) -> (Conn, Option<Arc<ConnInfo>>, bool) {
    match start {
        Start::Fresh(mut meta) => {
            let conn_id = uuid::Uuid::new_v4().to_string();
            meta.challenge_nonce = uuid::Uuid::new_v4().to_string();
            state
                .pending
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.send_value(&protocol::event(
                "connect.challenge",
                json!({
                    "nonce": meta.challenge_nonce,
                    "ts": now_ms(),
                    "capabilities": protocol::CHALLENGE_CAPABILITIES,
                }),
                None,
                None,
            ));
            let hello = handshake(&state, &peer, &meta, &conn_id, &mut conn, &out).await;
            if hello.is_some() {
                meta.read_budget.lift();
            }
            (conn, hello, true)
        }
        Start::Resumed { info, seq } => {
            let info = Arc::new(*info);
            state.register_resumed(info.clone(), out.clone(), seq);
            state.presence_update(&info, true);
            tracing::debug!(conn = %info.id, seq, "resumed");
            (conn, Some(info), false)
        }
    }
}

async fn session(
    opening: Pin<Box<impl Future<Output = (Conn, Option<Arc<ConnInfo>>, bool)>>>,
    state: Arc<GatewayState>,
    out: Outbound,
) {
    let (mut conn, info, fresh) = opening.await;
    // Counted as serving before it stops counting as pending: a handover waiting for both to
    // drain never misses it.
    let guard = info.as_ref().map(|_| state.handover.enter_serve());
    if fresh {
        state
            .pending
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(info) = info {
        if let End::Quiesce(work) = serve(&state, &info, &mut conn, &out).await {
            if !hand_over(&state, &info, &mut conn, &out, work).await {
                // Could not be carried: close it as a plain shutdown would.
                state.unregister(&info.id);
                out.close(1012, "service restart");
                let _ = tokio::time::timeout(CLOSE_GRACE, conn.finish()).await;
            }
            // Otherwise in the store (or gone): the next process continues it. No close, no
            // presence change.
            drop(guard);
            return;
        }
        state.unregister(&info.id);
        state.presence_update(&info, false);
        tracing::debug!(conn = %info.id, "disconnected");
    }
    // Make sure a close goes out, then wait (bounded) for the peer's reply.
    out.close(1000, "");
    let _ = tokio::time::timeout(CLOSE_GRACE, conn.finish()).await;
    drop(guard);
}

/// In-flight work of a quiescing session.
struct InFlight {
    permits: Arc<Semaphore>,
    max: u32,
    outstanding: Arc<Mutex<HashSet<String>>>,
}

/// The session's part of a handover. True: carried, or ended here (the socket died, or was
/// closed because it could not be carried). False: not carried; the caller closes it normally.
async fn hand_over(
    state: &Arc<GatewayState>,
    info: &Arc<ConnInfo>,
    conn: &mut Conn,
    out: &Outbound,
    work: InFlight,
) -> bool {
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
        return false;
    };
    // 3. Nothing more is queued; write out what is, and flush.
    out.seal();
    let flushed =
        tokio::time::timeout(super::handover::BOUNDARY_BUDGET, conn.flush_for_handover()).await;
    if !matches!(flushed, Ok(true)) {
        return true; // the socket failed or closed while flushing: nothing left to carry
    }
    let io = conn.ws.get_mut();
    if !io.at_boundary() {
        conn.close_now(1012, "service restart").await;
        return true;
    }
    let fd = match io.dup_fd() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(conn = %info.id, "handover: cannot duplicate the socket: {e}");
            conn.close_now(1012, "service restart").await;
            return true;
        }
    };
    let pending = io.take_pending();
    let q = Quiesced {
        state: ConnState::capture(info, seq, &pending),
        fd,
    };
    if let Err(q) = state.handover.submit(q) {
        drop(q);
        conn.close_now(1012, "service restart").await;
        return true;
    }
    tracing::debug!(conn = %info.id, seq, pending = pending.len(), "quiesced for handover");
    true
}

/// Reads the first frame(s) until hello-ok or rejection. Returns the connection on success.
async fn handshake(
    state: &Arc<GatewayState>,
    peer: &PeerInfo,
    meta: &UpgradeMeta,
    conn_id: &str,
    conn: &mut Conn,
    out: &Outbound,
) -> Option<Arc<ConnInfo>> {
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
            m = conn.next() => match m {
                Next::Msg(m) => m,
                Next::Closed => return None,
            },
        };
        let bytes = match msg {
            Some(Err(e)) if is_budget_error(&e) => {
                tracing::info!(remote = %peer.remote, "pre-auth read budget exceeded; closing 1009");
                out.close(1009, "");
                return None;
            }
            Some(Err(e)) => {
                if let Some((code, reason)) = violation_close(&e) {
                    tracing::info!(remote = %peer.remote, "closed before connect: {e}");
                    out.close(code, reason);
                }
                return None;
            }
            None | Some(Ok(Message::Close(_))) => return None,
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
        match admit(state, peer, meta, conn_id, &params) {
            Ok(_) if meta.slot.as_ref().is_some_and(|s| !s.authenticate()) => {
                // Authenticated budget full: a retryable refusal instead of hello-ok.
                let mut e = ErrorShape::unavailable(
                    "gateway at its authenticated connection limit (OPENCLAW_MAX_CONNECTIONS); retry later",
                );
                e.retryable = Some(true);
                e.retry_after_ms = Some(1000);
                out.send_value(&protocol::res_err(&id, &e));
                tracing::info!(remote = %peer.remote, "connect refused: authenticated connection budget full");
                out.close(1013, "try again later");
                return None;
            }
            Ok((info, device)) => {
                let health = state.health_cache.get(state);
                let hello = hello_ok(state, &info, device.as_ref(), &health.value);
                out.send_text(protocol::res_ok_text(&id, &hello));
                drop(hello);
                let info = Arc::new(info);
                state.register(info.clone(), out.clone());
                state.send_event_to(&info.id, "health", &health.value, true);
                state.presence_update(&info, true);
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
    admit(state, peer, meta, conn_id, params).map(|(info, _)| info)
}

/// [`connect`], plus the device admission (`hello-ok.auth` device fields) when a device proof
/// verified.
fn admit(
    state: &GatewayState,
    peer: &PeerInfo,
    meta: &UpgradeMeta,
    conn_id: &str,
    params: &Value,
) -> Result<(ConnInfo, Option<device::Admitted>), Reject> {
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
    // DNS rebinding: on a loopback listener a browser must address us by a loopback name,
    // unless its origin is explicitly allowed (a reverse proxy on this host).
    if let Some(origin) = &meta.origin
        && is_loopback(&peer.local)
        && !meta.host.as_deref().is_some_and(is_loopback_host)
        && !origin_listed(origin, &cfg.gateway.control_ui.allowed_origins)
    {
        return Err(Reject::with_error(
            ErrorShape::invalid("host not allowed (this gateway listens on loopback: open the Control UI at http://localhost:<port> or http://127.0.0.1:<port>, or allow the origin in gateway.controlUi.allowedOrigins)")
                .with_details(json!({"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": "host not allowed"})),
        ));
    }
    let authn = state.auth();
    let ip = peer.remote.ip().to_canonical();
    // A browser (an `Origin`) is limited even on loopback: any page can connect from there.
    let browser = meta.origin.is_some();
    if let Some(wait) = state.rate_limiter.check(ip, browser, &authn.rate_limit) {
        return Err(Reject::with_error(auth::rate_limited(wait)));
    }
    let a = params.get("auth");
    let token = a.and_then(|a| str_field(a, "token"));
    let password = a.and_then(|a| str_field(a, "password"));
    let has_device = params.get("device").is_some();
    let verdict = authn.verify(token, password);
    if has_device {
        let is_control_ui = matches!(
            client_id,
            "openclaw-control-ui" | "openclaw-tui" | "openclaw-browser-copilot"
        ) || mode == "webchat";
        let shared = match verdict {
            Verdict::Ok { method } => device::Shared::Ok(method),
            Verdict::NoCredentials => device::Shared::Missing,
            Verdict::Mismatch(e) => device::Shared::Mismatch(e),
        };
        let attempt = device::Attempt {
            params,
            role,
            nonce: &meta.challenge_nonce,
            shared,
            // Upstream's auto-approval: a direct loopback peer without proxy headers.
            direct_local: peer_loopback && !meta.forwarded,
            remote_ip: ip,
            is_control_ui,
        };
        let adm = match device::admit(state, attempt) {
            Ok(a) => a,
            Err(r) => {
                if r.bad_credential
                    && let Some(lock) =
                        state
                            .rate_limiter
                            .record_failure(ip, browser, &authn.rate_limit)
                {
                    tracing::warn!(remote = %peer.remote, lockout_ms = lock.as_millis() as u64, "too many failed auth attempts; locking out");
                }
                let (code, reason) = match (&r.close, &r.error) {
                    (Some((c, why)), _) => (*c, why.as_str()),
                    (None, Some(e)) => (1008, e.message.as_str()),
                    (None, None) => (1008, ""),
                };
                let reason = protocol::close_reason(reason, MAX_CLOSE_REASON);
                return Err(Reject {
                    error: r.error,
                    code,
                    reason,
                });
            }
        };
        state.rate_limiter.record_success(ip);
        let mut scopes = adm.scopes.clone();
        cap_scopes(&mut scopes, meta.scopes_header.as_deref());
        let info = conn_info(
            conn_id,
            params,
            peer,
            role,
            scopes,
            adm.method,
            Some(adm.device_id.clone()),
        );
        return Ok((info, Some(adm)));
    }
    let method = match verdict {
        Verdict::Ok { method } => {
            state.rate_limiter.record_success(ip);
            method
        }
        Verdict::NoCredentials => {
            return Err(Reject::with_error(auth::device_identity_required()));
        }
        Verdict::Mismatch(e) => {
            if let Some(lock) = state
                .rate_limiter
                .record_failure(ip, browser, &authn.rate_limit)
            {
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
    cap_scopes(&mut scopes, meta.scopes_header.as_deref());
    Ok((
        conn_info(conn_id, params, peer, role, scopes, method, None),
        None,
    ))
}

/// `x-openclaw-scopes` caps the granted scopes (comma list; empty → none).
fn cap_scopes(scopes: &mut Vec<String>, header: Option<&str>) {
    if let Some(cap) = header {
        let allowed: Vec<&str> = cap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        scopes.retain(|s| allowed.contains(&s.as_str()));
    }
}

fn conn_info(
    conn_id: &str,
    params: &Value,
    peer: &PeerInfo,
    role: &str,
    scopes: Vec<String>,
    method: &'static str,
    device_id: Option<String>,
) -> ConnInfo {
    let client = &params["client"];
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
    ConnInfo {
        id: conn_id.to_string(),
        client_id: str_field(client, "id").unwrap_or_default().into(),
        client_mode: str_field(client, "mode").unwrap_or_default().into(),
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
        device_id,
    }
}

/// The `hello-ok` payload.
fn hello_ok(
    state: &GatewayState,
    info: &ConnInfo,
    device: Option<&device::Admitted>,
    health: &Value,
) -> Value {
    let default_agent = state.features.default_agent_id(&state.config());
    let auth = state.auth();
    let mut snapshot = json!({
        "presence": state.presence_list(),
        "health": health.clone(),
        "stateVersion": state.state_version(),
        "uptimeMs": state.uptime_ms(),
        "sessionDefaults": {
            "defaultAgentId": default_agent,
            "mainKey": "main",
            "mainSessionKey": format!("agent:{}:main", default_agent),
            "scope": "per-sender",
        },
        "authMode": auth.mode.as_str(),
    });
    if info.has_scope(protocol::scopes::ADMIN) {
        snapshot["configPath"] = state.paths.config_path.display().to_string().into();
        snapshot["stateDir"] = state.paths.state_dir.display().to_string().into();
    }
    let mut auth = json!({
        "method": info.auth_method,
        "role": info.role,
        "scopes": info.scopes,
    });
    if let Some(d) = device {
        d.hello_auth(&info.role, &mut auth);
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
        "auth": auth,
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
    conn: &mut Conn,
    out: &Outbound,
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
    // Registered once for the session's life, not per frame (these are shared by every
    // session: re-registering on each request would contend on their locks).
    let shutdown = state.shutdown.token().cancelled();
    let handover = state.handover.token().cancelled();
    tokio::pin!(shutdown, handover);
    let mut quiescing = false;
    // Armed (and allocated) only while quiescing.
    let mut boundary_deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut unauthorized_streak = 0u32;
    loop {
        let msg = tokio::select! {
            biased;
            _ = &mut handover, if !quiescing => {
                quiescing = true;
                if conn.ws.get_ref().at_boundary() {
                    return quiesce(&inflight, &outstanding);
                }
                // Mid-frame: finish reading the current message first (bounded).
                boundary_deadline = Some(Box::pin(tokio::time::sleep(super::handover::BOUNDARY_BUDGET)));
                continue;
            }
            _ = async { boundary_deadline.as_mut().expect("armed when quiescing").await }, if quiescing => {
                tracing::info!(conn = %info.id, "handover: no message boundary within {:?}; closing", super::handover::BOUNDARY_BUDGET);
                out.close(1012, "service restart");
                return End::Closed;
            }
            _ = &mut shutdown => {
                // The shutdown event was broadcast before the token fired; close after it.
                out.close(1012, "service restart");
                return End::Closed;
            }
            m = conn.next() => match m {
                Next::Msg(m) => m,
                Next::Closed => return End::Closed,
            },
        };
        let inbound = match msg {
            None | Some(Ok(Message::Close(_))) => return End::Closed,
            Some(Err(e)) => {
                if matches!(e, WsError::Capacity(_)) {
                    out.close(1009, "message too big");
                } else if let Some((code, reason)) = violation_close(&e) {
                    tracing::info!(conn = %info.id, "closing: {e}");
                    out.close(code, reason);
                }
                return End::Closed;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                if quiescing && conn.ws.get_ref().at_boundary() {
                    return quiesce(&inflight, &outstanding);
                }
                continue;
            }
            Some(Ok(Message::Text(t))) => protocol::decode_inbound(t.as_str()),
            Some(Ok(Message::Binary(b))) => protocol::decode_inbound(&String::from_utf8_lossy(&b)),
        };
        dispatch(
            state,
            info,
            out,
            inbound,
            &inflight,
            &outstanding,
            &mut unauthorized_streak,
        );
        if out.is_closed() && !quiescing {
            // dispatch closed the socket (repeated unauthorized calls)
            return End::Closed;
        }
        if quiescing && conn.ws.get_ref().at_boundary() {
            return quiesce(&inflight, &outstanding);
        }
    }
}

/// A handler's payload: a `Value`, or JSON text from a [`super::methods::MethodSpec::raw`] handler.
enum Payload {
    Value(Value),
    Raw(Arc<str>),
}

type Outcome = std::thread::Result<Result<Payload, ErrorShape>>;

/// Handles one request frame. Most handlers complete without waiting (`health`, `status`, …):
/// those are polled once right here and answered inline, with no task spawn or cross-thread
/// wake-up. A handler that has to wait continues as a tracked task (its id listed as
/// outstanding for a handover), so slow handlers still run concurrently, may answer out of
/// order, and shutdown waits for them.
fn dispatch(
    state: &Arc<GatewayState>,
    info: &Arc<ConnInfo>,
    out: &Outbound,
    inbound: protocol::Inbound,
    inflight: &Arc<Semaphore>,
    outstanding: &Arc<Mutex<HashSet<String>>>,
    unauthorized_streak: &mut u32,
) {
    let req = match inbound {
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
            s
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
    let started = std::time::Instant::now();
    let ctx = Ctx::new(
        state.clone(),
        info.clone(),
        req.id.clone(),
        req.params,
        out.clone(),
    );
    let responded = ctx.responded_flag();
    if let Some(raw) = &spec.raw {
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| raw(&ctx)));
        drop(ctx);
        let r = r.map(|r| r.map(Payload::Raw));
        respond(out, &req.id, &req.method, started, &responded, r);
        return;
    }
    let mut fut = (spec.handler)(ctx);
    let mut noop = Context::from_waker(Waker::noop());
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut noop))) {
        Ok(Poll::Ready(r)) => {
            let r = Ok(r.map(Payload::Value));
            respond(out, &req.id, &req.method, started, &responded, r);
        }
        Err(panic) => respond(out, &req.id, &req.method, started, &responded, Err(panic)),
        Ok(Poll::Pending) => {
            // Polled again at once by its task, which registers the real waker.
            let out = out.clone();
            let id = req.id;
            let method = req.method;
            outstanding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone());
            let outstanding = outstanding.clone();
            state.shutdown.tracker().spawn(async move {
                let r = AssertUnwindSafe(fut).catch_unwind().await;
                let r = r.map(|r| r.map(Payload::Value));
                // Exactly one response per id: a handover that gave up on this request has
                // already answered it (and removed the id). Sent under the lock, so it is
                // queued before the handover seals the queue.
                {
                    let mut pending = outstanding.lock().unwrap_or_else(|p| p.into_inner());
                    if pending.remove(&id) {
                        respond(&out, &id, &method, started, &responded, r);
                    }
                }
                drop(permit);
            });
        }
    }
}

/// Sends the response frame of a finished handler, unless it sent its final frame itself
/// ([`Ctx::respond_final`]) and did not panic.
fn respond(
    out: &Outbound,
    id: &str,
    method: &str,
    started: std::time::Instant,
    responded: &AtomicBool,
    r: Outcome,
) {
    if r.is_ok() && responded.load(Ordering::Acquire) {
        tracing::debug!(method = %method, ms = started.elapsed().as_millis() as u64, "res (sent by handler)");
        return;
    }
    let (text, ok) = match r {
        Ok(Ok(Payload::Value(v))) => (protocol::res_ok_text(id, &v), true),
        Ok(Ok(Payload::Raw(t))) => (protocol::res_ok_raw(id, &t), true),
        Ok(Err(e)) => (protocol::res_err(id, &e).to_string(), false),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "internal error".into());
            tracing::error!(method = %method, "handler panicked: {msg}");
            let e = ErrorShape::unavailable(msg);
            (protocol::res_err(id, &e).to_string(), false)
        }
    };
    out.send_text(text);
    tracing::debug!(method = %method, ok, ms = started.elapsed().as_millis() as u64, "res");
}

/// True when the socket's read failed because its pre-auth [`ReadBudget`] was spent.
///
/// [`ReadBudget`]: super::listener::ReadBudget
/// The close for a frame that breaks RFC 6455 (§7.4.1): invalid UTF-8 in a text message or a
/// close reason → 1007; unmasked client frame, RSV bits, reserved opcode, bad close payload,
/// fragmented or oversized control frame, stray continuation → 1002. `None`: not a violation
/// by the peer (I/O errors, the peer's own close).
fn violation_close(e: &WsError) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    match e {
        WsError::Utf8(_) => Some((1007, "invalid UTF-8")),
        WsError::Protocol(
            P::SendAfterClosing | P::ReceivedAfterClosing | P::ResetWithoutClosingHandshake,
        ) => None,
        WsError::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}

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

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST:18789",
            "127.0.0.1:1",
            "127.9.8.7",
            "[::1]:18789",
            "[::1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example:18789",
            "localhost.evil.example",
            "127.0.0.1.evil.example:1",
            "[::1].evil:1",
            "10.0.0.1:18789",
            "",
            "::1",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
