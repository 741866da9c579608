//! Helpers shared by the agent tests: a gateway configured with the fake model as provider
//! `fake` (the docs/protocol.md Appendix A setup), operator sockets, and frame collection.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_model::FakeModel;
use crate::support::{ALL, Gateway, GatewayBuilder, Raw, connect_params, hello};

/// Upstream's error when no model provider is configured.
pub const NO_ROUTE: &str = "No route-compatible authentication source is configured for openai.";

/// Config text (JSON5): token auth, both HTTP endpoints, provider `fake` → `fake/fake-1`.
/// `extra` is spliced in as more top-level keys (e.g. `hooks: {...},`).
pub fn config(token: &str, fake: &FakeModel, extra: &str) -> String {
    config_with_key(token, fake, "'fake-key'", extra)
}

/// [`config`] with another `apiKey` (a JSON5 value: a string or a SecretRef object).
pub fn config_with_key(token: &str, fake: &FakeModel, api_key: &str, extra: &str) -> String {
    format!(
        "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }},
             http: {{ endpoints: {{ chatCompletions: {{ enabled: true }}, responses: {{ enabled: true }} }} }} }},
           {}
           {extra} }}",
        fake.provider_config(api_key)
    )
}

/// A builder for a gateway using `fake`.
pub fn builder(fake: &FakeModel, extra: &str) -> GatewayBuilder {
    let b = Gateway::builder();
    let cfg = config(&b.token, fake, extra);
    b.config(&cfg)
}

/// Starts a gateway using `fake`.
pub fn gateway(fake: &FakeModel) -> Gateway {
    builder(fake, "").start()
}

/// An operator socket (cli/cli, read+write+admin) past hello and the first event after it.
pub async fn operator(gw: &Gateway) -> Raw {
    let (raw, _, first) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    // Usually the `health` event; a broadcast from a run still settling may come first.
    assert_eq!(first["type"], "event", "{first}");
    raw
}

/// An operator socket with the given scopes.
pub async fn operator_with(gw: &Gateway, scopes: &[&str]) -> Raw {
    let (raw, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), scopes),
        &[],
    )
    .await;
    raw
}

/// Frames up to and including the response `id` that is not the `accepted` ack.
/// Returns (ack if any, everything received in between, final response).
pub async fn until_final(raw: &mut Raw, id: &str) -> (Option<Value>, Vec<Value>, Value) {
    let mut ack = None;
    let mut frames = Vec::new();
    loop {
        let f = raw.json().await;
        if f["type"] == "res" && f["id"] == id {
            if f["ok"] == true && f["payload"]["status"] == "accepted" && ack.is_none() {
                ack = Some(f);
                continue;
            }
            return (ack, frames, f);
        }
        frames.push(f);
    }
}

/// The final (non-ack) responses of several concurrent requests, in `ids` order.
pub async fn finals(raw: &mut Raw, ids: &[&str]) -> Vec<Value> {
    let mut got: Vec<Option<Value>> = vec![None; ids.len()];
    while got.iter().any(Option::is_none) {
        let f = raw.json().await;
        if f["type"] != "res" || (f["ok"] == true && f["payload"]["status"] == "accepted") {
            continue;
        }
        if let Some(i) = ids.iter().position(|id| f["id"] == *id) {
            got[i] = Some(f);
        }
    }
    got.into_iter().map(Option::unwrap).collect()
}

/// Frames until an event matching `pred` (inclusive).
pub async fn until_event(raw: &mut Raw, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let f = raw.json().await;
        let hit = f["type"] == "event" && pred(&f);
        frames.push(f);
        if hit {
            return frames;
        }
    }
}

/// Only the `agent`/`chat` events of one run.
pub fn run_events<'a>(frames: &'a [Value], run_id: &str) -> Vec<&'a Value> {
    frames
        .iter()
        .filter(|f| {
            f["type"] == "event"
                && (f["event"] == "agent" || f["event"] == "chat")
                && f["payload"]["runId"] == run_id
        })
        .collect()
}

/// Object keys in order.
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A short label of an event: `agent:lifecycle:start`, `agent:assistant`, `chat:delta`, …
pub fn label(f: &Value) -> String {
    let p = &f["payload"];
    if f["event"] == "chat" {
        return format!("chat:{}", p["state"].as_str().unwrap_or("?"));
    }
    match p["stream"].as_str() {
        Some("lifecycle") => {
            let phase = p["data"]["phase"].as_str().unwrap_or("?");
            if phase == "model" && p["data"]["provider"].is_null() {
                "agent:lifecycle:model-cleared".into()
            } else {
                format!("agent:lifecycle:{phase}")
            }
        }
        Some(s) => format!("agent:{s}"),
        None => "agent:?".into(),
    }
}

/// Labels without the paced `chat` deltas (their number depends on timing).
pub fn labels_without_chat_deltas(ev: &[&Value]) -> Vec<String> {
    ev.iter()
        .map(|f| label(f))
        .filter(|l| l != "chat:delta")
        .collect()
}

/// Checks the `chat` delta mirrors of a successful run: the first assistant delta is mirrored
/// at once; every chat delta carries the seq of the agent event just before it (its assistant
/// event, or `lifecycle end` for the final flush); `deltaText`s add up to the full text and
/// each `message` holds the text so far; `chat final` follows `lifecycle end` with its seq.
pub fn check_chat_mirrors(ev: &[&Value], full: &str) {
    let first = ev
        .iter()
        .position(|f| label(f) == "agent:assistant")
        .expect("an assistant event");
    assert_eq!(
        label(ev[first + 1]),
        "chat:delta",
        "the first delta is mirrored at once"
    );
    let mut acc = String::new();
    let mut last_agent_seq = None;
    let mut deltas = 0;
    for f in ev {
        let p = &f["payload"];
        match label(f).as_str() {
            "chat:delta" => {
                deltas += 1;
                assert_eq!(p["seq"].as_u64(), last_agent_seq, "{f}");
                acc.push_str(p["deltaText"].as_str().unwrap());
                assert_eq!(p["message"]["content"][0]["text"], acc.as_str(), "{f}");
                assert_eq!(p["message"]["role"], "assistant");
            }
            "chat:final" => {
                assert_eq!(p["seq"].as_u64(), last_agent_seq);
                assert_eq!(p["message"]["content"][0]["text"], full);
            }
            l if l.starts_with("agent:") => last_agent_seq = p["seq"].as_u64(),
            _ => {}
        }
    }
    assert!(deltas >= 1);
    assert_eq!(acc, full, "chat deltas add up to the answer");
    let end = ev
        .iter()
        .position(|f| label(f) == "agent:lifecycle:end")
        .unwrap();
    assert!(
        ev[end + 1..].iter().all(|f| f["event"] == "chat"),
        "only chat mirrors after end"
    );
    assert_eq!(label(ev[ev.len() - 1]), "chat:final");
}

/// Sends an `agent` request.
pub async fn send_agent(raw: &mut Raw, id: &str, key: &str, message: &str, session: &str) {
    raw.req(
        id,
        "agent",
        Some(json!({"message": message, "idempotencyKey": key, "sessionKey": session})),
    )
    .await;
}

/// Generous wait for model-side events.
pub const LONG: Duration = Duration::from_secs(20);
