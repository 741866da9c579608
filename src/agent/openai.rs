//! The upstream client: one `reqwest` client for every OpenAI-compatible model server (OpenAI,
//! Ollama, vLLM, llama.cpp's server, …). Requests are `POST {baseUrl}/chat/completions` with
//! `stream: true`; the SSE body is parsed into [`Chunk`]s.
//!
//! Cancellation is by drop: dropping a [`ChatStream`] drops the response body, which closes the
//! connection, so an aborted run never leaves the upstream request running.
//!
//! Errors name the provider, the URL, what happened and what to do next; the message text is
//! what clients see in `lifecycle error` / `chat error` / the final response.
use std::sync::Once;
use std::time::Duration;

use axum::body::Bytes;
use eventsource_stream::EventStream;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::config::ResolvedModel;

/// Connect timeout towards a model server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Cap on an error body we read to extract the provider's message.
const MAX_ERROR_BODY: usize = 64 * 1024;

static CRYPTO: Once = Once::new();

/// Installs rustls' `ring` provider as the process default (once). reqwest is built with
/// `rustls-no-provider`, so this must happen before the first client is built. (macOS builds
/// use the system TLS instead; nothing to install there.)
pub(crate) fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // Err means another provider was installed first; either way one is in place.
        #[cfg(not(target_os = "macos"))]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A chat message sent upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// Text content.
    pub content: String,
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `prompt_tokens`.
    pub input: u64,
    /// `completion_tokens`.
    pub output: u64,
    /// `total_tokens` (input + output when not reported).
    pub total: u64,
}

/// One parsed stream chunk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Chunk {
    /// Assistant text (may be empty-free: empty deltas are not reported).
    Delta(String),
    /// `finish_reason` of the choice.
    Finish(String),
    /// `usage` (usually on the last chunk with `stream_options.include_usage`).
    Usage(Usage),
    /// The `model` the server says answered.
    Model(String),
}

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UpstreamError {
    /// Client-facing message (what failed, where, what to do next).
    pub message: String,
    /// HTTP status when the server answered with an error status.
    pub status: Option<u16>,
    /// `chat` event `errorKind`: `rate_limit`, `timeout`, `context_length`, `refusal`, `unknown`.
    pub kind: &'static str,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Sampling/limit fields forwarded verbatim when a caller (HTTP API) sets them.
pub(crate) const FORWARDED_FIELDS: &[&str] = &[
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
];

/// The shared HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct ModelClient {
    http: reqwest::Client,
}

impl ModelClient {
    /// Builds the client (installs the crypto provider first).
    pub(crate) fn new() -> Result<ModelClient, String> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("openclaw-gateway-rs/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("building the model HTTP client failed: {e}"))?;
        Ok(ModelClient { http })
    }

    /// The request body for a streamed completion.
    pub(crate) fn request_body(
        target: &ResolvedModel,
        messages: &[Msg],
        extra: &Map<String, Value>,
    ) -> Value {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        let mut body = json!({
            "model": target.model,
            "messages": msgs,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        for k in FORWARDED_FIELDS {
            if let Some(v) = extra.get(*k).filter(|v| !v.is_null()) {
                body[*k] = v.clone();
            }
        }
        body
    }

    /// Opens a streamed chat completion. Resolves once response headers arrived (an error
    /// status is read and turned into an [`UpstreamError`]).
    pub(crate) async fn open(
        &self,
        target: &ResolvedModel,
        messages: &[Msg],
        extra: &Map<String, Value>,
    ) -> Result<ChatStream, UpstreamError> {
        let url = format!("{}/chat/completions", target.provider.base_url);
        let pid = &target.provider.id;
        let body = Self::request_body(target, messages, extra);
        let mut req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(body.to_string());
        if let Some(k) = &target.provider.api_key {
            req = req.bearer_auth(k);
        }
        for (k, v) in &target.provider.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.map_err(|e| UpstreamError {
            message: format!(
                "cannot reach model provider \"{pid}\" at {url}: {}; check models.providers.{pid}.baseUrl and that the model server is running",
                error_chain(&e)
            ),
            status: None,
            kind: if e.is_timeout() { "timeout" } else { "unknown" },
        })?;
        let status = resp.status();
        if !status.is_success() {
            let text = read_capped(resp).await;
            return Err(status_error(pid, &url, status.as_u16(), &text));
        }
        Ok(ChatStream {
            provider: pid.clone(),
            url,
            events: EventStream::new(ByteStreamAdapter(Box::pin(resp.bytes_stream()))),
            done: false,
            finished: false,
            received_chars: 0,
            pending: Vec::new(),
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

async fn read_capped(resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(b)) = stream.next().await {
        out.extend_from_slice(&b);
        if out.len() >= MAX_ERROR_BODY {
            out.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The provider's own message from an error body (`{"error":{"message"}}`, `{"error":"…"}`,
/// `{"message"}`), else the trimmed text.
fn provider_message(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let m = v
            .pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .and_then(Value::as_str);
        if let Some(m) = m {
            return m.to_string();
        }
    }
    let t = text.trim();
    let mut end = t.len().min(300);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t[..end].to_string()
}

fn status_error(pid: &str, url: &str, status: u16, body: &str) -> UpstreamError {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let msg = provider_message(body);
    let next = match status {
        401 | 403 => format!("check models.providers.{pid}.apiKey"),
        404 => format!("check the model id and models.providers.{pid}.baseUrl"),
        429 => "the provider is rate limiting; retry later".to_string(),
        500..=599 => "the model server failed; retry later or check its logs".to_string(),
        _ => "check the request and the provider's documentation".to_string(),
    };
    let lower = msg.to_ascii_lowercase();
    let kind = match status {
        429 => "rate_limit",
        408 | 504 => "timeout",
        400 if lower.contains("context") || lower.contains("too long") => "context_length",
        _ => "unknown",
    };
    UpstreamError {
        message: format!(
            "model provider \"{pid}\" returned HTTP {status}{}{}{} (POST {url}); {next}",
            if reason.is_empty() { "" } else { " " },
            reason,
            if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            },
        ),
        status: Some(status),
        kind,
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A streamed completion in progress. Drop it to cancel the upstream request.
pub(crate) struct ChatStream {
    provider: String,
    url: String,
    events: EventStream<ByteStreamAdapter>,
    done: bool,
    finished: bool,
    received_chars: usize,
    pending: Vec<Chunk>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// reqwest's byte stream, boxed so [`ChatStream`] has a nameable type.
pub(crate) struct ByteStreamAdapter(ByteStream);

impl std::fmt::Debug for ByteStreamAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByteStreamAdapter")
    }
}

impl futures_util::Stream for ByteStreamAdapter {
    type Item = reqwest::Result<Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// Parses one `data:` payload into chunks. `Ok(None)` is the `[DONE]` sentinel.
pub(crate) fn parse_data(data: &str) -> Result<Option<Vec<Chunk>>, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_str(data).map_err(|e| format!("invalid JSON in stream chunk: {e}"))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let m = err
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string());
        return Err(format!("error in stream: {m}"));
    }
    let mut out = Vec::new();
    if let Some(m) = v
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        out.push(Chunk::Model(m.to_string()));
    }
    if let Some(choice) = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    {
        if let Some(t) = choice
            .pointer("/delta/content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push(Chunk::Delta(t.to_string()));
        }
        if let Some(r) = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            out.push(Chunk::Finish(r.to_string()));
        }
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        let n = |k: &str, alt: &str| {
            u.get(k)
                .or_else(|| u.get(alt))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let input = n("prompt_tokens", "input_tokens");
        let output = n("completion_tokens", "output_tokens");
        let total = u
            .get("total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(input + output);
        out.push(Chunk::Usage(Usage {
            input,
            output,
            total,
        }));
    }
    Ok(Some(out))
}

impl ChatStream {
    /// The next chunk; `None` when the stream completed normally (`[DONE]`, or the body ended
    /// after a `finish_reason`). A body that ends before either is an error (cut stream).
    pub(crate) async fn next(&mut self) -> Option<Result<Chunk, UpstreamError>> {
        loop {
            if !self.pending.is_empty() {
                let c = self.pending.remove(0);
                if let Chunk::Delta(t) = &c {
                    self.received_chars += t.len();
                }
                if let Chunk::Finish(_) = &c {
                    self.finished = true;
                }
                return Some(Ok(c));
            }
            if self.done {
                return None;
            }
            match self.events.next().await {
                None => {
                    self.done = true;
                    if self.finished {
                        return None;
                    }
                    return Some(Err(UpstreamError {
                        message: format!(
                            "model stream from provider \"{}\" ended before the response was complete (no finish_reason or [DONE] after {} characters; POST {}): the server closed the connection mid-response; retry, and check the model server's logs if it persists",
                            self.provider, self.received_chars, self.url
                        ),
                        status: None,
                        kind: "unknown",
                    }));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(UpstreamError {
                        message: format!(
                            "model stream from provider \"{}\" failed after {} characters (POST {}): {}; retry, and check the model server if it persists",
                            self.provider,
                            self.received_chars,
                            self.url,
                            match &e {
                                eventsource_stream::EventStreamError::Transport(t) =>
                                    error_chain(t),
                                other => other.to_string(),
                            }
                        ),
                        status: None,
                        kind: "unknown",
                    }));
                }
                Some(Ok(ev)) => {
                    if ev.data.is_empty() {
                        continue;
                    }
                    match parse_data(&ev.data) {
                        Ok(None) => {
                            self.done = true;
                            return None;
                        }
                        Ok(Some(chunks)) => self.pending = chunks,
                        Err(m) => {
                            self.done = true;
                            return Some(Err(UpstreamError {
                                message: format!(
                                    "model provider \"{}\" sent a bad stream (POST {}): {m}",
                                    self.provider, self.url
                                ),
                                status: None,
                                kind: "unknown",
                            }));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openai_llamacpp_and_ollama_chunks() {
        let c = parse_data(r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(c, vec![Chunk::Model("m".into()), Chunk::Delta("Hi".into())]);
        let c = parse_data(r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            c,
            vec![
                Chunk::Finish("stop".into()),
                Chunk::Usage(Usage {
                    input: 3,
                    output: 2,
                    total: 5
                })
            ]
        );
        // usage-only chunk with empty choices (OpenAI include_usage)
        let c = parse_data(
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(parse_data(" [DONE] ").unwrap(), None);
        assert!(parse_data("{").unwrap_err().contains("invalid JSON"));
        assert_eq!(
            parse_data(r#"{"error":{"message":"boom"}}"#).unwrap_err(),
            "error in stream: boom"
        );
    }

    #[test]
    fn status_errors_name_provider_url_and_next_step() {
        let e = status_error(
            "fake",
            "http://h/v1/chat/completions",
            401,
            r#"{"error":{"message":"Incorrect API key"}}"#,
        );
        assert_eq!(
            e.message,
            "model provider \"fake\" returned HTTP 401 Unauthorized: Incorrect API key (POST http://h/v1/chat/completions); check models.providers.fake.apiKey"
        );
        assert_eq!(status_error("p", "u", 429, "").kind, "rate_limit");
        assert!(
            status_error("p", "u", 500, "oops")
                .message
                .contains(": oops")
        );
    }

    #[test]
    fn body_forwards_sampling_fields_only() {
        let target = ResolvedModel {
            provider: super::super::config::Provider {
                id: "p".into(),
                base_url: "http://h".into(),
                api_key: None,
                headers: vec![],
                models: vec![],
                credential_evidence: "none",
            },
            model: "m".into(),
            context_tokens: 10,
            max_tokens: None,
        };
        let mut extra = Map::new();
        extra.insert("temperature".into(), json!(0.5));
        extra.insert("tools".into(), json!([]));
        let b = ModelClient::request_body(
            &target,
            &[Msg {
                role: "user",
                content: "hi".into(),
            }],
            &extra,
        );
        assert_eq!(b["temperature"], 0.5);
        assert!(b.get("tools").is_none());
        assert_eq!(b["stream"], true);
        assert_eq!(b["messages"][0]["content"], "hi");
    }
}
