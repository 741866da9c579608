//! A scripted OpenAI-compatible model server on loopback, standing in for the model vendor in
//! tests and benchmarks.
//!
//! It answers `POST /v1/chat/completions` (SSE when `stream:true`, JSON otherwise) and
//! `GET /v1/models`, from a queue of scripted [`Reply`]s (then a default): a normal stream
//! with per-chunk delays, an error status (401, 500, …), a stream cut in the middle (the
//! connection closes without `finish_reason`/`[DONE]`). It records every request (body,
//! `Authorization`) and how each response ended ([`Outcome`]), including a client that went
//! away mid-stream (`PeerClosed`: how tests prove an abort cancelled the upstream request).
//!
//! It runs on its own thread and runtime, so a test may block its own runtime without
//! starving it; the async wait helpers work from any runtime.
//!
//! Benchmarks can reuse it (`tokio`, `serde_json` are the only dependencies):
//! `#[path = "../tests/it/support/fake_model.rs"] mod fake_model;`. [`Observed::received`]
//! and [`Observed::first_delta_sent`] are the model server's own clock: "agent run overhead"
//! = (client: `agent` req sent → first `agent` assistant event received) − (server:
//! `first_delta_sent − received`, i.e. the scripted first-token delay plus the server's own
//! handling).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A streamed answer.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Content deltas, one SSE chunk each.
    pub deltas: Vec<String>,
    /// Delay before the first delta (the "first-token" latency).
    pub first_delay: Duration,
    /// Delay between deltas.
    pub delay: Duration,
    /// `finish_reason` of the final chunk.
    pub finish: String,
    /// `usage` (prompt, completion) sent in a last chunk; `None` sends none.
    pub usage: Option<(u64, u64)>,
    /// `model` field of the chunks.
    pub model: String,
}

impl StreamSpec {
    /// "Hello from the fake model." in five deltas, usage 10/5 (the transcripts' answer).
    pub fn hello() -> StreamSpec {
        StreamSpec::text(&["Hello", " from", " the", " fake", " model."])
    }

    /// The given deltas, no delays, usage 10/len.
    pub fn text(deltas: &[&str]) -> StreamSpec {
        StreamSpec {
            deltas: deltas.iter().map(|d| d.to_string()).collect(),
            first_delay: Duration::ZERO,
            delay: Duration::ZERO,
            finish: "stop".into(),
            usage: Some((10, deltas.len() as u64)),
            model: "fake-1".into(),
        }
    }

    /// Sets both delays.
    pub fn slow(mut self, first: Duration, each: Duration) -> StreamSpec {
        self.first_delay = first;
        self.delay = each;
        self
    }

    /// The full text.
    pub fn full_text(&self) -> String {
        self.deltas.concat()
    }
}

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A normal answer (SSE or JSON, as the request asks).
    Stream(StreamSpec),
    /// An error status with this body.
    Status(u16, String),
    /// SSE with these deltas, then the connection is closed (no finish_reason, no `[DONE]`).
    Cut(Vec<String>),
    /// Like `Stream`, but the response waits for a permit of the semaphore first (tests
    /// release it with `add_permits(1)`), so a test controls exactly when a model answers.
    Held(StreamSpec, Arc<tokio::sync::Semaphore>),
}

impl Reply {
    /// `401` with OpenAI's error body.
    pub fn unauthorized() -> Reply {
        Reply::Status(
            401,
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}).to_string(),
        )
    }
    /// `500` with a JSON error body.
    pub fn server_error() -> Reply {
        Reply::Status(
            500,
            json!({"error": {"message": "model crashed", "type": "server_error"}}).to_string(),
        )
    }
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still being written.
    Pending,
    /// Written completely.
    Completed,
    /// The client closed the connection before the response was complete.
    PeerClosed,
    /// Cut on purpose ([`Reply::Cut`]).
    Cut,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Request method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// JSON body (`Null` when empty or not JSON).
    pub body: Value,
    /// When the request was fully read.
    pub received: Instant,
    /// When the first content delta was written.
    pub first_delta_sent: Option<Instant>,
    /// When the response ended (any outcome).
    pub ended: Option<Instant>,
    /// How the response ended.
    pub outcome: Outcome,
}

#[derive(Debug)]
struct Inner {
    queue: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    seen: Mutex<Vec<Observed>>,
    changed: Notify,
}

impl Inner {
    fn update(&self, i: usize, f: impl FnOnce(&mut Observed)) {
        if let Some(o) = self.seen.lock().unwrap().get_mut(i) {
            f(o);
        }
        self.changed.notify_waiters();
    }
}

/// The server (stopped on drop).
#[derive(Debug)]
pub struct FakeModel {
    /// Listening address (127.0.0.1, ephemeral port).
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeModel {
    /// Starts a server whose default reply is [`StreamSpec::hello`].
    pub fn start() -> FakeModel {
        Self::with_default(Reply::Stream(StreamSpec::hello()))
    }

    /// Starts a server with a default reply.
    pub fn with_default(default: Reply) -> FakeModel {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake model");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            seen: Mutex::new(Vec::new()),
            changed: Notify::new(),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let inner2 = inner.clone();
        let thread = std::thread::Builder::new()
            .name("fake-model".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    tokio::pin!(stop_rx);
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => break,
                            a = listener.accept() => {
                                let Ok((sock, _)) = a else { continue };
                                let inner = inner2.clone();
                                tokio::spawn(async move { serve(sock, inner).await });
                            }
                        }
                    }
                });
            })
            .unwrap();
        FakeModel {
            addr,
            inner,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/v1` (a provider `baseUrl`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Config keys (JSON5, for splicing into a top-level object) that make this server provider
    /// `fake` with model `fake-1`, the default agent's primary model (docs/protocol.md Appendix A).
    /// `api_key` is a JSON5 value: a quoted string or a SecretRef object.
    pub fn provider_config(&self, api_key: &str) -> String {
        format!(
            "agents: {{ defaults: {{ model: {{ primary: 'fake/fake-1' }} }} }},
           models: {{ mode: 'merge', providers: {{ fake: {{ baseUrl: '{}', apiKey: {api_key}, api: 'openai-completions',
             models: [{{ id: 'fake-1', name: 'Fake 1', reasoning: false, input: ['text'],
                         cost: {{ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }}, contextWindow: 128000, maxTokens: 4096 }}] }} }} }},",
            self.base_url()
        )
    }

    /// Queues a reply for the next request (queued replies go first, in order).
    pub fn push(&self, r: Reply) {
        self.inner.queue.lock().unwrap().push_back(r);
    }

    /// Replaces the default reply.
    pub fn set_default(&self, r: Reply) {
        *self.inner.default.lock().unwrap() = r;
    }

    /// Every completion request seen so far.
    pub fn requests(&self) -> Vec<Observed> {
        self.inner
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.path.ends_with("/chat/completions"))
            .cloned()
            .collect()
    }

    async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&[Observed]) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let seen: Vec<Observed> = self.requests();
            if let Some(v) = f(&seen) {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Waits for the `n`-th (0-based) completion request.
    pub async fn request(&self, n: usize, timeout: Duration) -> Option<Observed> {
        self.wait_until(timeout, |s| s.get(n).cloned()).await
    }

    /// Waits until the `n`-th response is no longer pending; returns its outcome.
    pub async fn outcome(&self, n: usize, timeout: Duration) -> Option<Outcome> {
        self.wait_until(timeout, |s| {
            s.get(n)
                .map(|o| o.outcome)
                .filter(|o| *o != Outcome::Pending)
        })
        .await
    }

    /// Waits until the `n`-th response wrote its first delta.
    pub async fn first_delta(&self, n: usize, timeout: Duration) -> Option<Instant> {
        self.wait_until(timeout, |s| s.get(n).and_then(|o| o.first_delta_sent))
            .await
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers + Content-Length body). `None` on EOF/garbage.
async fn read_request(
    sock: &mut TcpStream,
) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some((method, path, headers, body))
}

/// Waits `d`, watching the socket: `false` if the peer closed it meanwhile.
async fn pause(sock: &mut TcpStream, d: Duration) -> bool {
    let mut probe = [0u8; 64];
    let sleep = tokio::time::sleep(d);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            r = sock.read(&mut probe) => match r {
                Ok(0) | Err(_) => return false,
                Ok(_) => continue,
            },
        }
    }
}

fn chunk(model: &str, delta: Value, finish: Value) -> String {
    let v = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                   "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {v}\n\n")
}

async fn serve(mut sock: TcpStream, inner: Arc<Inner>) {
    let Some((method, path, headers, body)) = read_request(&mut sock).await else {
        return;
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if method == "GET" && path.ends_with("/models") {
        let b = json!({"object": "list", "data": [{"id": "fake-1", "object": "model", "created": 0, "owned_by": "fake"}]}).to_string();
        let _ = sock
            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).as_bytes())
            .await;
        return;
    }
    let idx = {
        let mut seen = inner.seen.lock().unwrap();
        seen.push(Observed {
            method: method.clone(),
            path: path.clone(),
            authorization: headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone()),
            body: body.clone(),
            received: Instant::now(),
            first_delta_sent: None,
            ended: None,
            outcome: Outcome::Pending,
        });
        seen.len() - 1
    };
    inner.changed.notify_waiters();
    if method != "POST" || !path.ends_with("/chat/completions") {
        let _ = sock
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        inner.update(idx, |o| o.outcome = Outcome::Completed);
        return;
    }
    let reply = inner
        .queue
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| inner.default.lock().unwrap().clone());
    let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
    let outcome = match reply {
        Reply::Status(code, text) => {
            let head = format!(
                "HTTP/1.1 {code} Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(text.as_bytes()).await;
            Outcome::Completed
        }
        Reply::Stream(spec) if !streaming => {
            if !pause(&mut sock, spec.first_delay).await {
                Outcome::PeerClosed
            } else {
                let (p, c) = spec.usage.unwrap_or((0, 0));
                let b = json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": spec.model,
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": spec.full_text()}, "finish_reason": spec.finish}],
                               "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}).to_string();
                let _ = sock.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).as_bytes()).await;
                inner.update(idx, |o| o.first_delta_sent = Some(Instant::now()));
                Outcome::Completed
            }
        }
        Reply::Stream(spec) => stream(&mut sock, &inner, idx, &spec, false).await,
        Reply::Held(spec, gate) => {
            let mut probe = [0u8; 64];
            let permit = loop {
                tokio::select! {
                    p = gate.acquire() => break p.ok(),
                    r = sock.read(&mut probe) => match r {
                        Ok(0) | Err(_) => break None,
                        Ok(_) => continue,
                    },
                }
            };
            match permit {
                Some(p) => {
                    p.forget();
                    stream(&mut sock, &inner, idx, &spec, false).await
                }
                None => Outcome::PeerClosed,
            }
        }
        Reply::Cut(deltas) => {
            let spec = StreamSpec {
                deltas,
                ..StreamSpec::text(&[])
            };
            stream(&mut sock, &inner, idx, &spec, true).await
        }
    };
    let _ = sock.shutdown().await;
    inner.update(idx, |o| {
        o.outcome = outcome;
        o.ended = Some(Instant::now());
    });
}

async fn stream(
    sock: &mut TcpStream,
    inner: &Inner,
    idx: usize,
    spec: &StreamSpec,
    cut: bool,
) -> Outcome {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if sock.write_all(head.as_bytes()).await.is_err() {
        return Outcome::PeerClosed;
    }
    let role = chunk(
        &spec.model,
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    );
    if sock.write_all(role.as_bytes()).await.is_err() {
        return Outcome::PeerClosed;
    }
    for (i, d) in spec.deltas.iter().enumerate() {
        let wait = if i == 0 { spec.first_delay } else { spec.delay };
        if !wait.is_zero() && !pause(sock, wait).await {
            return Outcome::PeerClosed;
        }
        let c = chunk(&spec.model, json!({"content": d}), Value::Null);
        if sock.write_all(c.as_bytes()).await.is_err() {
            return Outcome::PeerClosed;
        }
        if i == 0 {
            inner.update(idx, |o| o.first_delta_sent = Some(Instant::now()));
        }
    }
    if cut {
        return Outcome::Cut;
    }
    let mut tail = chunk(&spec.model, json!({}), json!(spec.finish));
    if let Some((p, c)) = spec.usage {
        let u = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": spec.model,
                       "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}});
        tail.push_str(&format!("data: {u}\n\n"));
    }
    tail.push_str("data: [DONE]\n\n");
    if sock.write_all(tail.as_bytes()).await.is_err() {
        return Outcome::PeerClosed;
    }
    Outcome::Completed
}
