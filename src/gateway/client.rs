//! A protocol v4 client for our CLI, benchmarks and tests: connect (waits for the challenge,
//! sends `connect`, returns `hello-ok`), `call` (request → payload or [`ErrorShape`]),
//! `call_expect_final` for two-stage methods (`agent`: the `status:"accepted"` ack is interim),
//! an event receiver, and timeouts everywhere.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::protocol::{self, ErrorShape};

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `ws://host:port`.
    pub url: String,
    /// Shared token.
    pub token: Option<String>,
    /// Shared password.
    pub password: Option<String>,
    /// `client.id` (must be one of the protocol's ids).
    pub client_id: String,
    /// `client.mode`.
    pub client_mode: String,
    /// `client.version`.
    pub client_version: String,
    /// `client.displayName`.
    pub display_name: Option<String>,
    /// `role`.
    pub role: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// `caps`.
    pub caps: Vec<String>,
    /// `minProtocol` / `maxProtocol`.
    pub protocol: (i64, i64),
    /// Extra upgrade headers (e.g. `x-openclaw-scopes`, `Origin`).
    pub headers: Vec<(String, String)>,
    /// Budget for challenge + hello, and the default per-call timeout.
    pub timeout: Duration,
}

impl ConnectOptions {
    /// CLI defaults: `cli`/`cli`, operator, protocol 4, 10 s.
    pub fn new(url: impl Into<String>) -> ConnectOptions {
        ConnectOptions {
            url: url.into(),
            token: None,
            password: None,
            client_id: "cli".into(),
            client_mode: "cli".into(),
            client_version: crate::VERSION.into(),
            display_name: None,
            role: "operator".into(),
            scopes: vec![protocol::scopes::READ.into()],
            caps: Vec::new(),
            protocol: (protocol::PROTOCOL_VERSION, protocol::PROTOCOL_VERSION),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }
    /// Sets the token.
    pub fn token(mut self, t: impl Into<String>) -> Self {
        self.token = Some(t.into());
        self
    }
    /// Sets the requested scopes.
    pub fn scopes(mut self, s: &[&str]) -> Self {
        self.scopes = s.iter().map(|x| x.to_string()).collect();
        self
    }
    /// Sets client id and mode.
    pub fn client(mut self, id: &str, mode: &str) -> Self {
        self.client_id = id.into();
        self.client_mode = mode.into();
        self
    }

    fn connect_params(&self) -> Value {
        let mut client = json!({
            "id": self.client_id,
            "version": self.client_version,
            "platform": std::env::consts::OS,
            "deviceFamily": super::state::device_family(),
            "mode": self.client_mode,
            "instanceId": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(d) = &self.display_name {
            client["displayName"] = d.clone().into();
        }
        let mut auth = serde_json::Map::new();
        if let Some(t) = &self.token {
            auth.insert("token".into(), t.clone().into());
        }
        if let Some(p) = &self.password {
            auth.insert("password".into(), p.clone().into());
        }
        let mut p = json!({
            "minProtocol": self.protocol.0,
            "maxProtocol": self.protocol.1,
            "client": client,
            "caps": self.caps,
            "role": self.role,
            "scopes": self.scopes,
        });
        if !auth.is_empty() {
            p["auth"] = Value::Object(auth);
        }
        p
    }
}

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not open the socket.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// URL.
        url: String,
        /// Cause.
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// The gateway rejected the request (or the connect).
    #[error("{0}")]
    Rpc(ErrorShape),
    /// Timed out.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    /// The socket closed.
    #[error("gateway closed the connection ({code}{})", if reason.is_empty() { String::new() } else { format!(" {reason}") })]
    Closed {
        /// Close code (1006 when the socket dropped without a close frame).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The gateway broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// An event frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event name.
    pub event: String,
    /// Payload.
    pub payload: Value,
    /// Per-connection sequence number.
    pub seq: Option<u64>,
    /// `stateVersion`.
    pub state_version: Option<Value>,
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

type Pending = Arc<Mutex<HashMap<String, (bool, oneshot::Sender<Result<Value, ErrorShape>>)>>>;

async fn next_before(
    stream: &mut futures_util::stream::SplitStream<WsStream>,
    deadline: tokio::time::Instant,
    budget: Duration,
) -> Result<Message, ClientError> {
    match tokio::time::timeout_at(deadline, stream.next()).await {
        Err(_) => Err(ClientError::Timeout(budget, "hello-ok")),
        Ok(None) => Err(ClientError::Closed {
            code: 1006,
            reason: String::new(),
        }),
        Ok(Some(Err(e))) => Err(ClientError::Protocol(e.to_string())),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

/// A connected client.
#[derive(Debug)]
pub struct GatewayClient {
    hello: Value,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: mpsc::UnboundedReceiver<Event>,
    closed: watch::Receiver<Option<(u16, String)>>,
    next_id: AtomicU64,
    timeout: Duration,
}

impl GatewayClient {
    /// Connects and performs the handshake.
    pub async fn connect(opts: ConnectOptions) -> Result<GatewayClient, ClientError> {
        let mut req =
            opts.url
                .as_str()
                .into_client_request()
                .map_err(|e| ClientError::Connect {
                    url: opts.url.clone(),
                    source: e,
                })?;
        for (k, v) in &opts.headers {
            if let (Ok(name), Ok(val)) = (
                k.parse::<tokio_tungstenite::tungstenite::http::HeaderName>(),
                HeaderValue::from_str(v),
            ) {
                req.headers_mut().insert(name, val);
            }
        }
        let mut cfg = WebSocketConfig::default();
        cfg.max_message_size = Some(protocol::MAX_PAYLOAD_BYTES * 2);
        cfg.max_frame_size = Some(protocol::MAX_PAYLOAD_BYTES * 2);
        let connect = tokio_tungstenite::connect_async_with_config(req, Some(cfg), true);
        let (ws, _) = tokio::time::timeout(opts.timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout(opts.timeout, "the WebSocket upgrade"))?
            .map_err(|e| ClientError::Connect {
                url: opts.url.clone(),
                source: e,
            })?;
        let (mut sink, mut stream) = ws.split();

        // Handshake inline: challenge, then connect → hello-ok.
        let deadline = tokio::time::Instant::now() + opts.timeout;
        let mut challenged = false;
        let connect_id = format!("1:{}", uuid::Uuid::new_v4());
        let hello = loop {
            let m = next_before(&mut stream, deadline, opts.timeout).await?;
            let text = match m {
                Message::Text(t) => t.to_string(),
                Message::Close(c) => {
                    return Err(ClientError::Closed {
                        code: c.as_ref().map(|c| u16::from(c.code)).unwrap_or(1005),
                        reason: c.map(|c| c.reason.to_string()).unwrap_or_default(),
                    });
                }
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| ClientError::Protocol(format!("non-JSON frame: {e}")))?;
            if !challenged {
                if v["event"] != "connect.challenge"
                    || v["payload"]["nonce"].as_str().is_none_or(str::is_empty)
                {
                    return Err(ClientError::Protocol(
                        "connect challenge missing nonce".into(),
                    ));
                }
                challenged = true;
                let frame = json!({"type":"req","id":connect_id,"method":"connect","params":opts.connect_params()});
                sink.send(Message::Text(frame.to_string().into()))
                    .await
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                continue;
            }
            if v["type"] == "res" && v["id"] == connect_id.as_str() {
                if v["ok"] == true {
                    break v["payload"].clone();
                }
                let e = ErrorShape::from_value(&v["error"]).ok_or_else(|| {
                    ClientError::Protocol("connect failed without an error shape".into())
                })?;
                return Err(ClientError::Rpc(e));
            }
        };

        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (closed_tx, closed_rx) = watch::channel(None);
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let is_close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || is_close {
                    break;
                }
            }
        });
        let p2 = pending.clone();
        tokio::spawn(async move {
            let mut close = (1006u16, String::new());
            while let Some(m) = stream.next().await {
                let text = match m {
                    Ok(Message::Text(t)) => t.to_string(),
                    Ok(Message::Close(c)) => {
                        close = c
                            .map(|c| (u16::from(c.code), c.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        break;
                    }
                    Ok(_) => continue,
                    Err(_) => break,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("res") => {
                        let Some(id) = v["id"].as_str() else { continue };
                        let mut p = p2.lock().unwrap_or_else(|e| e.into_inner());
                        let interim = v["ok"] == true && v["payload"]["status"] == "accepted";
                        if let Some((expect_final, _)) = p.get(id)
                            && *expect_final
                            && interim
                        {
                            continue;
                        }
                        if let Some((_, tx)) = p.remove(id) {
                            let r = if v["ok"] == true {
                                Ok(v.get("payload").cloned().unwrap_or(Value::Null))
                            } else {
                                Err(ErrorShape::from_value(&v["error"]).unwrap_or_else(|| {
                                    ErrorShape::new("INVALID_RESPONSE", "response without error")
                                }))
                            };
                            let _ = tx.send(r);
                        }
                    }
                    Some("event") => {
                        let _ = ev_tx.send(Event {
                            event: v["event"].as_str().unwrap_or_default().to_string(),
                            payload: v.get("payload").cloned().unwrap_or(Value::Null),
                            seq: v["seq"].as_u64(),
                            state_version: v.get("stateVersion").cloned(),
                        });
                    }
                    _ => {}
                }
            }
            let _ = closed_tx.send(Some(close));
            p2.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Ok(GatewayClient {
            hello,
            out: out_tx,
            pending,
            events: ev_rx,
            closed: closed_rx,
            next_id: AtomicU64::new(2),
            timeout: opts.timeout,
        })
    }

    /// The `hello-ok` payload.
    pub fn hello(&self) -> &Value {
        &self.hello
    }

    /// Calls a method; `params: None` sends no `params` key (as the official CLI does).
    pub async fn call(&self, method: &str, params: Option<Value>) -> Result<Value, ClientError> {
        self.request(method, params, false, self.timeout).await
    }

    /// Calls a two-stage method and waits for the final response (the `accepted` ack is
    /// skipped), bounded by `timeout`.
    pub async fn call_expect_final(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.request(method, params, true, timeout).await
    }

    async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        expect_final: bool,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let id = format!(
            "{}:{}",
            self.next_id.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4()
        );
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), (expect_final, tx));
        // The reader marks the socket closed before it drops pending requests: a request
        // registered after that would wait for its full timeout, so fail it now.
        if self.is_closed() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            return Err(self.closed_error());
        }
        let mut frame = json!({"type": "req", "id": id, "method": method});
        if let Some(p) = params {
            frame["params"] = p;
        }
        if self
            .out
            .send(Message::Text(frame.to_string().into()))
            .is_err()
        {
            return Err(self.closed_error());
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                Err(ClientError::Timeout(timeout, "the response"))
            }
            Ok(Err(_)) => Err(self.closed_error()),
            Ok(Ok(r)) => r.map_err(ClientError::Rpc),
        }
    }

    /// True once the server closed the socket (or it dropped).
    pub fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    fn closed_error(&self) -> ClientError {
        match self.closed.borrow().clone() {
            Some((code, reason)) => ClientError::Closed { code, reason },
            None => ClientError::Closed {
                code: 1006,
                reason: String::new(),
            },
        }
    }

    /// The next event, or `None` on timeout or close.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the named event (skipping others), bounded by `timeout`.
    pub async fn wait_event(&mut self, name: &str, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.next_event(left).await?;
            if e.event == name {
                return Some(e);
            }
        }
    }

    /// Takes the event stream (for a separate consumer task); `next_event` then sees none.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<Event> {
        std::mem::replace(&mut self.events, mpsc::unbounded_channel().1)
    }

    /// The close code and reason once the socket is closed, `None` while it is open.
    pub fn close_status(&self) -> Option<(u16, String)> {
        self.closed.borrow().clone()
    }

    /// Waits until the server closes the socket; returns (code, reason).
    pub async fn closed(&mut self, timeout: Duration) -> Option<(u16, String)> {
        self.wait_closed(timeout).await
    }

    /// [`GatewayClient::closed`] through a shared reference.
    pub async fn wait_closed(&self, timeout: Duration) -> Option<(u16, String)> {
        let mut rx = self.closed.clone();
        tokio::time::timeout(timeout, async move {
            loop {
                if let Some(c) = rx.borrow().clone() {
                    return Some(c);
                }
                if rx.changed().await.is_err() {
                    return rx.borrow().clone();
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Sends a normal close.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

#[cfg(test)]
mod tests {
    //! The client against the real router and session code, in-process (the integration
    //! tests cover the binary; this adds a two-stage method to exercise `expect_final`).
    use super::*;
    use crate::gateway::listener::GatewayListener;
    use crate::gateway::methods::{Ctx, ScopeRule, core_table};
    use crate::gateway::state::{GatewayState, StateInit};
    use crate::gateway::{http, ws};

    #[tokio::test]
    async fn expect_final_skips_the_accepted_ack_and_events_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), dir.path().display().to_string())].into();
        let paths = crate::config::paths::Paths::resolve(None, false, &env).unwrap();
        let mut methods = core_table();
        methods.register(
            "two.stage",
            ScopeRule::Fixed(protocol::scopes::WRITE),
            |ctx: Ctx| async move {
                ctx.respond_interim(json!({"runId": "r1", "status": "accepted"}));
                ctx.state
                    .send_event_to(&ctx.conn.id, "agent", &json!({"runId": "r1"}), false);
                Ok(json!({"runId": "r1", "status": "ok"}))
            },
        );
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_l.set_nonblocking(true).unwrap();
        let addr = std_l.local_addr().unwrap();
        let state = GatewayState::new(StateInit {
            port: addr.port(),
            listen: vec![addr],
            methods,
            ..StateInit::for_tests(paths)
        });
        let gl = GatewayListener::new(
            vec![tokio::net::TcpListener::from_std(std_l).unwrap()],
            crate::gateway::admission::Admission::new(Default::default()),
        );
        let app = http::router(state.clone()).into_make_service_with_connect_info::<ws::PeerInfo>();
        let sd = state.shutdown.clone();
        tokio::spawn(async move {
            axum::serve(gl, app)
                .with_graceful_shutdown(async move { sd.signalled().await })
                .await
        });
        let mut c = GatewayClient::connect(
            ConnectOptions::new(format!("ws://{addr}"))
                .token("t")
                .scopes(&[protocol::scopes::WRITE]),
        )
        .await
        .unwrap();
        let h = c
            .wait_event("health", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(h.seq, Some(1));
        let fin = c
            .call_expect_final("two.stage", Some(json!({})), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(fin["status"], "ok");
        let ack = c.call("two.stage", None).await.unwrap();
        assert_eq!(
            ack["status"], "accepted",
            "without expect_final the ack resolves"
        );
        let ev = c.wait_event("agent", Duration::from_secs(5)).await.unwrap();
        assert_eq!(ev.payload["runId"], "r1");
        assert_eq!(ev.seq, Some(2));
        state.shutdown.trigger();
        assert_eq!(
            c.closed(Duration::from_secs(5)).await,
            Some((1012, "service restart".to_string()))
        );
    }
}
