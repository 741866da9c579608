//! Builders for the `agent` and `chat` event payloads of one run, with upstream's field sets and
//! key orders (transcripts `agent-run-ok`, `agent-run`, `chat-send`), and the broadcast calls.
//!
//! Every `agent` event takes the run's next `seq` (per run, from 1); the `chat` mirror of an
//! event carries the same `seq` (a delta mirrors its assistant event, `final` mirrors the
//! lifecycle `end`, `error` the lifecycle `error`). Both go to every socket with
//! `operator.read`. As upstream, `chat` deltas are paced (at most one per
//! [`CHAT_DELTA_PACING`]; text that arrives faster is coalesced into the next one, and the
//! rest is flushed right after `lifecycle end`) and droppable for slow consumers (the client
//! sees a `seq` gap and refetches `chat.history`); `agent` events and terminal events are not
//! droppable (a consumer that far behind is closed as a slow consumer instead).
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::gateway::protocol::scopes;
use crate::gateway::state::{Broadcast, GatewayState};
use crate::sys::time::now_ms;

/// Minimum spacing of `chat` delta events (upstream `LIVE_TEXT_PACING_MS`).
pub(crate) const CHAT_DELTA_PACING: Duration = Duration::from_millis(75);

/// Builds an object with keys in the given order.
pub(crate) fn obj(fields: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

/// The text content shape of chat messages.
pub(crate) fn text_content(text: &str) -> Value {
    json!([{"type": "text", "text": text}])
}

/// Event emitter for one run.
#[derive(Debug)]
pub(crate) struct RunEvents {
    state: Arc<GatewayState>,
    /// Run id.
    pub run_id: String,
    /// Session key.
    pub session_key: String,
    /// Session id (set once the session is known).
    pub session_id: String,
    /// Agent id.
    pub agent_id: String,
    /// `chat.send` runs carry `isHeartbeat:false`, `run_status` events and `lane:"main"`.
    pub chat_send: bool,
    seq: AtomicU64,
    /// Text already mirrored as `chat` deltas, and when the last one went out.
    chat_sent: Mutex<(String, Option<Instant>)>,
}

impl RunEvents {
    /// An emitter.
    pub(crate) fn new(
        state: Arc<GatewayState>,
        run_id: &str,
        session_key: &str,
        agent_id: &str,
        chat_send: bool,
    ) -> RunEvents {
        RunEvents {
            state,
            run_id: run_id.into(),
            session_key: session_key.into(),
            session_id: String::new(),
            agent_id: agent_id.into(),
            chat_send,
            seq: AtomicU64::new(0),
            chat_sent: Mutex::new((String::new(), None)),
        }
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn send(&self, event: &str, payload: &Value, droppable: bool) {
        self.state.broadcast(
            event,
            payload,
            Broadcast {
                scope: Some(scopes::READ),
                drop_if_slow: droppable,
                ..Broadcast::default()
            },
        );
    }

    /// Appends `seq`, `ts` (and `isHeartbeat` for chat.send runs) and broadcasts.
    fn agent(&self, mut fields: Vec<(&str, Value)>, droppable: bool) -> u64 {
        let seq = self.next_seq();
        fields.push(("seq", seq.into()));
        fields.push(("ts", now_ms().into()));
        if self.chat_send {
            fields.push(("isHeartbeat", false.into()));
        }
        self.send("agent", &obj(fields), droppable);
        seq
    }

    fn chat(&self, seq: u64, state: &str, mut rest: Vec<(&str, Value)>, droppable: bool) {
        let mut fields = vec![
            ("runId", Value::from(self.run_id.clone())),
            ("sessionKey", self.session_key.clone().into()),
            ("agentId", self.agent_id.clone().into()),
            ("seq", seq.into()),
            ("state", state.into()),
        ];
        fields.append(&mut rest);
        self.send("chat", &obj(fields), droppable);
    }

    fn head_with_session(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("runId", self.run_id.clone().into()),
            ("sessionKey", self.session_key.clone().into()),
            ("sessionId", self.session_id.clone().into()),
            ("agentId", self.agent_id.clone().into()),
        ]
    }

    /// `chat.send` startup phase: `chat status` then `agent run_status` with the same seq.
    pub(crate) fn run_status(&self, phase: &str) {
        let seq = self.next_seq();
        self.chat(seq, "status", vec![("phase", phase.into())], true);
        let payload = obj(vec![
            ("runId", self.run_id.clone().into()),
            ("stream", "run_status".into()),
            ("data", json!({"phase": phase})),
            ("sessionKey", self.session_key.clone().into()),
            ("agentId", self.agent_id.clone().into()),
            ("seq", seq.into()),
            ("ts", now_ms().into()),
            ("isHeartbeat", false.into()),
        ]);
        self.send("agent", &payload, true);
    }

    /// `lifecycle start`.
    pub(crate) fn start(&self, started_at: u64) {
        let mut f = self.head_with_session();
        f.push(("stream", "lifecycle".into()));
        f.push(("data", json!({"phase": "start", "startedAt": started_at})));
        self.agent(f, false);
    }

    /// `lifecycle model` with the provider/model about to be called.
    pub(crate) fn model(&self, provider: &str, model: &str) {
        let mut f = self.head_with_session();
        f.push(("stream", "lifecycle".into()));
        f.push((
            "data",
            json!({"phase": "model", "provider": provider, "model": model}),
        ));
        self.agent(f, false);
    }

    /// `lifecycle model` with nulls (upstream clears the model status when the attempt ends).
    pub(crate) fn model_cleared(&self) {
        let mut f = vec![
            ("runId", Value::from(self.run_id.clone())),
            ("agentId", self.agent_id.clone().into()),
            ("sessionId", self.session_id.clone().into()),
            ("sessionKey", self.session_key.clone().into()),
        ];
        if self.chat_send {
            f.push(("lane", "main".into()));
        }
        f.push(("stream", "lifecycle".into()));
        f.push((
            "data",
            json!({"phase": "model", "provider": null, "model": null}),
        ));
        self.agent(f, false);
    }

    /// An `assistant` delta (cumulative `text`); returns its seq. The `chat` mirror is
    /// [`RunEvents::chat_delta`], paced by the caller.
    pub(crate) fn assistant(&self, text: &str, delta: &str, item_id: &str) -> u64 {
        self.agent(
            vec![
                ("runId", self.run_id.clone().into()),
                ("stream", "assistant".into()),
                (
                    "data",
                    json!({"text": text, "delta": delta, "itemId": item_id}),
                ),
                ("sessionKey", self.session_key.clone().into()),
                ("agentId", self.agent_id.clone().into()),
            ],
            false,
        )
    }

    /// When the next `chat` delta may go out (`None`: now).
    pub(crate) fn chat_delta_due(&self) -> Option<Instant> {
        let g = self.chat_sent.lock().unwrap_or_else(|p| p.into_inner());
        g.1.map(|at| at + CHAT_DELTA_PACING)
            .filter(|due| *due > Instant::now())
    }

    /// A `chat delta` with the text not yet mirrored (`deltaText`) and the cumulative
    /// `message`, carrying `seq`. No-op when everything was mirrored already.
    pub(crate) fn chat_delta(&self, seq: u64, text: &str) {
        let delta = {
            let mut g = self.chat_sent.lock().unwrap_or_else(|p| p.into_inner());
            if g.0 == text {
                return;
            }
            let d = text.strip_prefix(g.0.as_str()).unwrap_or(text).to_string();
            g.0 = text.to_string();
            g.1 = Some(Instant::now());
            d
        };
        self.chat(
            seq,
            "delta",
            vec![
                ("deltaText", delta.into()),
                (
                    "message",
                    json!({"role": "assistant", "content": text_content(text), "timestamp": now_ms()}),
                ),
            ],
            true,
        );
    }

    /// `usage` (`outputTokens`).
    pub(crate) fn usage(&self, output_tokens: u64) {
        self.agent(
            vec![
                ("runId", self.run_id.clone().into()),
                ("sessionKey", self.session_key.clone().into()),
                ("stream", "usage".into()),
                ("data", json!({"outputTokens": output_tokens})),
                ("agentId", self.agent_id.clone().into()),
            ],
            false,
        );
    }

    /// `lifecycle finishing`.
    pub(crate) fn finishing(&self, stop_reason: &str, ended_at: u64) {
        let mut f = self.head_with_session();
        f.push(("stream", "lifecycle".into()));
        f.push((
            "data",
            json!({"phase": "finishing", "stopReason": stop_reason, "aborted": false, "livenessState": "working", "endedAt": ended_at}),
        ));
        self.agent(f, false);
    }

    fn tail_fields(&self, data: Value) -> Vec<(&'static str, Value)> {
        vec![
            ("runId", self.run_id.clone().into()),
            ("stream", "lifecycle".into()),
            ("data", data),
            ("sessionKey", self.session_key.clone().into()),
            ("sessionId", self.session_id.clone().into()),
            ("agentId", self.agent_id.clone().into()),
        ]
    }

    /// `lifecycle end` then `chat final` (same seq).
    pub(crate) fn end_ok(&self, data: Value, stop_reason: &str, text: &str) {
        let fields = if self.chat_send {
            vec![
                ("runId", Value::from(self.run_id.clone())),
                ("sessionKey", self.session_key.clone().into()),
                ("stream", "lifecycle".into()),
                ("data", data),
                ("sessionId", self.session_id.clone().into()),
                ("agentId", self.agent_id.clone().into()),
            ]
        } else {
            self.tail_fields(data)
        };
        let seq = self.agent(fields, false);
        // Text that arrived faster than the pacing is flushed with the end's seq.
        self.chat_delta(seq, text);
        self.chat(
            seq,
            "final",
            vec![
                ("stopReason", stop_reason.into()),
                (
                    "message",
                    json!({"role": "assistant", "content": text_content(text), "timestamp": now_ms()}),
                ),
            ],
            false,
        );
    }

    /// `lifecycle error` then `chat error` (same seq).
    pub(crate) fn error(
        &self,
        started_at: Option<u64>,
        ended_at: u64,
        message: &str,
        kind: Option<&str>,
    ) {
        let mut data = Map::new();
        data.insert("phase".into(), "error".into());
        if let Some(s) = started_at {
            data.insert("startedAt".into(), s.into());
        }
        data.insert("endedAt".into(), ended_at.into());
        data.insert("error".into(), message.into());
        data.insert("executionSettled".into(), true.into());
        let seq = self.agent(self.tail_fields(Value::Object(data)), false);
        let mut rest = vec![("errorMessage", Value::from(message))];
        if let Some(k) = kind.filter(|k| *k != "unknown") {
            rest.push(("errorKind", k.into()));
        }
        self.chat(seq, "error", rest, false);
    }

    /// `chat aborted` then `lifecycle end {status:"cancelled", aborted:true}` (upstream's
    /// abort order; both take the next seq).
    pub(crate) fn aborted(
        &self,
        stop_reason: &str,
        partial: &str,
        started_at: Option<u64>,
        ended_at: u64,
        error_message: Option<&str>,
    ) {
        let seq = self.next_seq();
        let mut rest = vec![("stopReason", Value::from(stop_reason))];
        if let Some(e) = error_message {
            rest.push(("errorMessage", e.into()));
        }
        if !partial.trim().is_empty() {
            rest.push((
                "message",
                json!({"role": "assistant", "content": text_content(partial), "timestamp": now_ms()}),
            ));
        }
        self.chat(seq, "aborted", rest, false);
        let mut data = Map::new();
        data.insert("phase".into(), "end".into());
        data.insert("status".into(), "cancelled".into());
        data.insert("aborted".into(), true.into());
        data.insert("stopReason".into(), stop_reason.into());
        if let Some(s) = started_at {
            data.insert("startedAt".into(), s.into());
        }
        data.insert("endedAt".into(), ended_at.into());
        let mut f = self.head_with_session();
        f.push(("stream", "lifecycle".into()));
        f.push(("data", Value::Object(data)));
        f.push(("seq", seq.into()));
        f.push(("ts", now_ms().into()));
        if self.chat_send {
            f.push(("isHeartbeat", false.into()));
        }
        self.send("agent", &obj(f), false);
    }
}
