//! Agent runs over WebSocket against a real gateway and the fake model server: the two-stage
//! `agent` flow frame by frame (transcripts agent-run-ok, agent-run, chat-send,
//! agent-idempotent-replay), fan-out to every operator.read socket, idempotency, abort,
//! queueing and parallelism, upstream failures, shutdown, and the protocol client's
//! `call_expect_final` across ticks.
use std::sync::Arc;
use std::time::Duration;

use openclaw::gateway::client::{ConnectOptions, GatewayClient};
use serde_json::{Value, json};

use crate::support::agent::*;
use crate::support::fake_model::{FakeModel, Outcome, Reply, StreamSpec};
use crate::support::{Frame, Gateway, WAIT};

const TEXT: &str = "Hello from the fake model.";

#[tokio::test]
async fn two_stage_agent_run_matches_the_transcript() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let mut raw = operator(&gw).await;
    let mut watcher = operator_with(&gw, &["operator.read"]).await;
    // A socket without operator.read (test/test: device-less scopes are cleared).
    let (mut blind, hello_blind, _) = crate::support::hello(
        &gw.url(),
        crate::support::connect_params("test", "test", Some(&gw.token), &["operator.read"]),
        &[],
    )
    .await;
    assert_eq!(hello_blind["auth"]["scopes"], json!([]));

    send_agent(
        &mut raw,
        "a1",
        "idem-agent-ok-1",
        "Say hello.",
        "agent:main:main",
    )
    .await;
    let (ack, frames, fin) = until_final(&mut raw, "a1").await;

    // 1. The ack: exactly upstream's fields, runId = idempotencyKey.
    let ack = ack.expect("accepted ack before the final response");
    assert_eq!(
        keys(&ack["payload"]),
        ["runId", "sessionKey", "agentId", "status", "acceptedAt"]
    );
    assert_eq!(ack["payload"]["runId"], "idem-agent-ok-1");
    assert_eq!(ack["payload"]["sessionKey"], "agent:main:main");
    assert_eq!(ack["payload"]["agentId"], "main");
    assert!(ack["payload"]["acceptedAt"].as_u64().unwrap() > 1_600_000_000_000);

    // 2. Events in upstream's order, with upstream's field sets and key order.
    let ev = run_events(&frames, "idem-agent-ok-1");
    let labels: Vec<String> = ev.iter().map(|f| label(f)).collect();
    let mut expected = vec!["agent:lifecycle:start", "agent:lifecycle:model"];
    expected.extend(std::iter::repeat_n("agent:assistant", 5));
    expected.extend([
        "agent:usage",
        "agent:lifecycle:finishing",
        "agent:lifecycle:model-cleared",
        "agent:lifecycle:end",
        "chat:final",
    ]);
    assert_eq!(labels_without_chat_deltas(&ev), expected);
    check_chat_mirrors(&ev, TEXT);
    let head = [
        "runId",
        "sessionKey",
        "sessionId",
        "agentId",
        "stream",
        "data",
        "seq",
        "ts",
    ];
    let expect_keys: &[(&str, &[&str], &[&str])] = &[
        ("agent:lifecycle:start", &head, &["phase", "startedAt"]),
        (
            "agent:lifecycle:model",
            &head,
            &["phase", "provider", "model"],
        ),
        (
            "agent:assistant",
            &[
                "runId",
                "stream",
                "data",
                "sessionKey",
                "agentId",
                "seq",
                "ts",
            ],
            &["text", "delta", "itemId"],
        ),
        (
            "agent:usage",
            &[
                "runId",
                "sessionKey",
                "stream",
                "data",
                "agentId",
                "seq",
                "ts",
            ],
            &["outputTokens"],
        ),
        (
            "agent:lifecycle:finishing",
            &head,
            &["phase", "stopReason", "aborted", "livenessState", "endedAt"],
        ),
        (
            "agent:lifecycle:model-cleared",
            &[
                "runId",
                "agentId",
                "sessionId",
                "sessionKey",
                "stream",
                "data",
                "seq",
                "ts",
            ],
            &["phase", "provider", "model"],
        ),
        (
            "agent:lifecycle:end",
            &[
                "runId",
                "stream",
                "data",
                "sessionKey",
                "sessionId",
                "agentId",
                "seq",
                "ts",
            ],
            &[
                "phase",
                "startedAt",
                "endedAt",
                "aborted",
                "stopReason",
                "livenessState",
                "executionSettled",
                "terminalReceipt",
                "terminalReply",
            ],
        ),
        (
            "chat:delta",
            &[
                "runId",
                "sessionKey",
                "agentId",
                "seq",
                "state",
                "deltaText",
                "message",
            ],
            &[],
        ),
        (
            "chat:final",
            &[
                "runId",
                "sessionKey",
                "agentId",
                "seq",
                "state",
                "stopReason",
                "message",
            ],
            &[],
        ),
    ];
    for f in &ev {
        let l = label(f);
        let (_, pk, dk) = expect_keys.iter().find(|(n, _, _)| *n == l).unwrap();
        assert_eq!(keys(&f["payload"]), *pk, "{l} payload keys");
        if !dk.is_empty() {
            assert_eq!(keys(&f["payload"]["data"]), *dk, "{l} data keys");
        }
    }
    // Per-run seq 1..=11 on agent events; chat mirrors carry their agent event's seq.
    let agent_seqs: Vec<u64> = ev
        .iter()
        .filter(|f| f["event"] == "agent")
        .map(|f| f["payload"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(agent_seqs, (1..=11).collect::<Vec<_>>());
    // Frame seq is per connection and gap-free.
    let frame_seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(
        frame_seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "{frame_seqs:?}"
    );
    // Cumulative text, deltas, the model, the receipt.
    let deltas: Vec<&Value> = ev
        .iter()
        .copied()
        .filter(|f| label(f) == "agent:assistant")
        .collect();
    let mut acc = String::new();
    for d in &deltas {
        acc.push_str(d["payload"]["data"]["delta"].as_str().unwrap());
        assert_eq!(d["payload"]["data"]["text"], acc.as_str());
    }
    assert_eq!(acc, TEXT);
    let model = ev
        .iter()
        .find(|f| label(f) == "agent:lifecycle:model")
        .unwrap();
    assert_eq!(
        model["payload"]["data"],
        json!({"phase": "model", "provider": "fake", "model": "fake-1"})
    );
    assert_eq!(
        ev.iter().find(|f| label(f) == "agent:usage").unwrap()["payload"]["data"],
        json!({"outputTokens": 5})
    );
    let end = ev
        .iter()
        .find(|f| label(f) == "agent:lifecycle:end")
        .unwrap();
    assert_eq!(
        end["payload"]["data"]["terminalReply"],
        json!({"disposition": "visible", "text": TEXT})
    );
    assert_eq!(
        end["payload"]["data"]["terminalReceipt"]["effective"],
        json!({"provider": "fake", "model": "fake-1", "responseModel": "fake-1"})
    );
    let chat_final = ev.last().unwrap();
    assert_eq!(
        chat_final["payload"]["message"]["content"],
        json!([{"type": "text", "text": TEXT}])
    );
    assert_eq!(chat_final["payload"]["stopReason"], "stop");
    let session_id = model["payload"]["sessionId"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&session_id).is_ok());

    // 3. The final response on the same id.
    assert_eq!(fin["ok"], true);
    let p = &fin["payload"];
    assert_eq!(keys(p), ["runId", "status", "summary", "result"]);
    assert_eq!(
        (
            p["runId"].as_str(),
            p["status"].as_str(),
            p["summary"].as_str()
        ),
        (Some("idem-agent-ok-1"), Some("ok"), Some("completed"))
    );
    assert_eq!(
        p["result"]["payloads"],
        json!([{"text": TEXT, "mediaUrl": null}])
    );
    let meta = &p["result"]["meta"]["agentMeta"];
    assert_eq!(meta["sessionId"], session_id.as_str());
    assert_eq!(meta["sessionFile"], "agent:main:main");
    assert_eq!(
        (meta["provider"].as_str(), meta["model"].as_str()),
        (Some("fake"), Some("fake-1"))
    );
    assert_eq!(meta["contextTokens"], 128000);
    assert_eq!(
        meta["usage"],
        json!({"input": 10, "output": 5, "cacheRead": 0, "cacheWrite": 0, "total": 15, "cost": {"total": 0}})
    );
    assert_eq!(p["result"]["meta"]["finalPromptText"], "Say hello.");
    assert_eq!(p["result"]["meta"]["stopReason"], "stop");

    // 4. What the model server received: one streamed call with the key and the message.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].authorization.as_deref(), Some("Bearer fake-key"));
    assert_eq!(reqs[0].body["model"], "fake-1");
    assert_eq!(reqs[0].body["stream"], true);
    assert_eq!(
        reqs[0].body["messages"],
        json!([{"role": "user", "content": "Say hello."}])
    );

    // 5. Every operator.read socket saw the same run; the scope-less one saw none of it.
    let seen = until_event(&mut watcher, |f| {
        f["event"] == "chat" && f["payload"]["state"] == "final"
    })
    .await;
    let watched: Vec<String> = run_events(&seen, "idem-agent-ok-1")
        .iter()
        .map(|f| label(f))
        .collect();
    assert_eq!(watched, labels);
    blind.req("h", "health", None).await;
    let mut before_res = Vec::new();
    loop {
        let f = blind.json().await;
        if f["type"] == "res" && f["id"] == "h" {
            break;
        }
        before_res.push(f);
    }
    assert!(
        run_events(&before_res, "idem-agent-ok-1").is_empty(),
        "{before_res:?}"
    );
}

#[tokio::test]
async fn idempotent_replay_wait_and_validation() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let mut raw = operator(&gw).await;
    send_agent(&mut raw, "a1", "cli-agent-1", "Say hi", "agent:main:main").await;
    let (_, _, first) = until_final(&mut raw, "a1").await;
    assert_eq!(first["payload"]["status"], "ok");

    // A repeated key returns the cached final at once: one response, no ack, no new call.
    send_agent(&mut raw, "a2", "cli-agent-1", "Say hi", "agent:main:main").await;
    let (ack, frames, replay) = until_final(&mut raw, "a2").await;
    assert!(ack.is_none());
    assert!(run_events(&frames, "cli-agent-1").is_empty());
    assert_eq!(replay["payload"], first["payload"]);
    assert_eq!(fake.requests().len(), 1);

    // agent.wait on the finished run (transcript agent-idempotent-replay).
    raw.req(
        "w2",
        "agent.wait",
        Some(json!({"runId": "cli-agent-1", "timeoutMs": 2000})),
    )
    .await;
    let w = raw.res("w2").await;
    assert_eq!(
        keys(&w["payload"]),
        [
            "runId",
            "status",
            "endedAt",
            "stopReason",
            "livenessState",
            "terminalReceipt",
            "terminalReply"
        ]
    );
    assert_eq!(w["payload"]["status"], "ok");
    assert_eq!(w["payload"]["terminalReply"]["text"], TEXT);
    // An unknown run times out.
    raw.req(
        "w3",
        "agent.wait",
        Some(json!({"runId": "nope", "timeoutMs": 50})),
    )
    .await;
    assert_eq!(
        raw.res("w3").await["payload"],
        json!({"runId": "nope", "status": "timeout"})
    );

    // Validation as upstream.
    raw.req("a3", "agent", Some(json!({"message": "Say hi"})))
        .await;
    assert_eq!(
        raw.res("a3").await,
        json!({"type": "res", "id": "a3", "ok": false, "error": {"code": "INVALID_REQUEST", "message": "invalid agent params: must have required property 'idempotencyKey'"}})
    );
    raw.req(
        "a4",
        "agent",
        Some(json!({"message": "x", "idempotencyKey": "k", "bogus": 1})),
    )
    .await;
    assert_eq!(
        raw.res("a4").await["error"]["message"],
        "invalid agent params: at root: unexpected property 'bogus'"
    );
    raw.req(
        "a5",
        "agent",
        Some(json!({"message": "x", "idempotencyKey": "k5", "agentId": "ops"})),
    )
    .await;
    let e = raw.res("a5").await;
    assert_eq!(
        e["error"]["message"],
        "invalid agent params: unknown agent id \"ops\""
    );
    assert_eq!(e["error"]["details"]["code"], "UNKNOWN_AGENT_ID");

    // A key that is still running answers in_flight.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    fake.push(Reply::Held(StreamSpec::hello(), gate.clone()));
    send_agent(&mut raw, "b1", "held-1", "wait", "agent:main:main").await;
    let r = raw.res("b1").await;
    assert_eq!(r["payload"]["status"], "accepted");
    send_agent(&mut raw, "b2", "held-1", "wait", "agent:main:main").await;
    assert_eq!(
        raw.res("b2").await["payload"],
        json!({"runId": "held-1", "status": "in_flight"})
    );
    gate.add_permits(1);
    let (_, _, fin) = until_final(&mut raw, "b1").await;
    assert_eq!(fin["payload"]["status"], "ok");
}

#[tokio::test]
async fn no_provider_fails_with_upstreams_error() {
    let gw = Gateway::builder().start();
    let mut raw = operator(&gw).await;
    send_agent(
        &mut raw,
        "a1",
        "idem-agent-1",
        "Say hello in one word.",
        "agent:main:main",
    )
    .await;
    let (ack, frames, fin) = until_final(&mut raw, "a1").await;
    assert_eq!(ack.unwrap()["payload"]["status"], "accepted");
    let ev = run_events(&frames, "idem-agent-1");
    let labels: Vec<String> = ev.iter().map(|f| label(f)).collect();
    assert_eq!(
        labels,
        [
            "agent:lifecycle:model-cleared",
            "agent:lifecycle:error",
            "chat:error"
        ]
    );
    let err = ev[1];
    assert_eq!(
        keys(&err["payload"]),
        [
            "runId",
            "stream",
            "data",
            "sessionKey",
            "sessionId",
            "agentId",
            "seq",
            "ts"
        ]
    );
    assert_eq!(
        keys(&err["payload"]["data"]),
        ["phase", "startedAt", "endedAt", "error", "executionSettled"]
    );
    assert_eq!(err["payload"]["data"]["error"], NO_ROUTE);
    assert_eq!(
        ev[2]["payload"],
        json!({"runId": "idem-agent-1", "sessionKey": "agent:main:main", "agentId": "main", "seq": 2, "state": "error", "errorMessage": NO_ROUTE})
    );
    assert_eq!(
        fin,
        json!({"type": "res", "id": "a1", "ok": false,
               "payload": {"runId": "idem-agent-1", "status": "error", "summary": NO_ROUTE},
               "error": {"code": "UNAVAILABLE", "message": NO_ROUTE}})
    );
    raw.req(
        "w1",
        "agent.wait",
        Some(json!({"runId": "idem-agent-1", "timeoutMs": 1000})),
    )
    .await;
    let w = raw.res("w1").await;
    assert_eq!(keys(&w["payload"]), ["runId", "status", "endedAt", "error"]);
    assert_eq!(w["payload"]["error"], NO_ROUTE);
    // The remedy is logged for the operator.
    assert!(
        gw.wait_for_line("models.providers.openai", WAIT).is_some(),
        "{}",
        gw.stderr()
    );
}

#[tokio::test]
async fn chat_send_history_and_sessions_list() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let mut raw = operator(&gw).await;
    raw.req("s1", "chat.send", Some(json!({"sessionKey": "agent:main:main", "message": "Hello again", "idempotencyKey": "chat-idem-1"}))).await;
    // The response comes before any event of the run.
    let first = loop {
        let f = raw.json().await;
        if f["type"] == "res" || f["payload"]["runId"] == "chat-idem-1" {
            break f;
        }
    };
    assert_eq!(
        first,
        json!({"type": "res", "id": "s1", "ok": true, "payload": {"runId": "chat-idem-1", "status": "started"}})
    );
    let frames = until_event(&mut raw, |f| {
        f["event"] == "chat" && f["payload"]["state"] == "final"
    })
    .await;
    let ev = run_events(&frames, "chat-idem-1");
    let labels: Vec<String> = ev.iter().map(|f| label(f)).collect();
    let mut expected = vec![
        "chat:status",
        "agent:run_status",
        "chat:status",
        "agent:run_status",
        "agent:lifecycle:start",
        "chat:status",
        "agent:run_status",
        "agent:lifecycle:model",
    ];
    expected.extend(std::iter::repeat_n("agent:assistant", 5));
    expected.extend([
        "agent:usage",
        "agent:lifecycle:finishing",
        "agent:lifecycle:model-cleared",
        "agent:lifecycle:end",
        "chat:final",
    ]);
    assert_eq!(labels_without_chat_deltas(&ev), expected);
    check_chat_mirrors(&ev, TEXT);
    assert!(labels.len() > expected.len());
    let phases: Vec<&str> = ev
        .iter()
        .filter(|f| label(f) == "chat:status")
        .map(|f| f["payload"]["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["preparing_workspace", "preparing_context", "starting_model"]
    );
    for f in ev.iter().filter(|f| f["event"] == "agent") {
        assert_eq!(f["payload"]["isHeartbeat"], false, "{f}");
    }
    let cleared = ev
        .iter()
        .find(|f| label(f) == "agent:lifecycle:model-cleared")
        .unwrap();
    assert_eq!(
        keys(&cleared["payload"]),
        [
            "runId",
            "agentId",
            "sessionId",
            "sessionKey",
            "lane",
            "stream",
            "data",
            "seq",
            "ts",
            "isHeartbeat"
        ]
    );
    assert_eq!(
        keys(&ev[0]["payload"]),
        ["runId", "sessionKey", "agentId", "seq", "state", "phase"]
    );

    // The transcript is the session's history.
    raw.req(
        "h1",
        "chat.history",
        Some(json!({"sessionKey": "agent:main:main"})),
    )
    .await;
    let h = raw.res("h1").await;
    let msgs = h["payload"]["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0]["role"].as_str(), msgs[1]["role"].as_str()),
        (Some("user"), Some("assistant"))
    );
    assert_eq!(msgs[0]["content"][0]["text"], "Hello again");
    assert_eq!(msgs[1]["content"][0]["text"], TEXT);
    assert_eq!(h["payload"]["totalMessages"], 2);
    assert_eq!(h["payload"]["hasMore"], false);
    assert_eq!(h["payload"]["sessionInfo"]["model"], "fake-1");
    raw.req(
        "h2",
        "chat.history",
        Some(json!({"sessionKey": "main", "limit": 1})),
    )
    .await;
    let h2 = raw.res("h2").await;
    assert_eq!(h2["payload"]["sessionKey"], "agent:main:main");
    assert_eq!(h2["payload"]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(h2["payload"]["hasMore"], true);

    raw.req("l1", "sessions.list", Some(json!({"limit": 5})))
        .await;
    let l = raw.res("l1").await;
    assert_eq!(
        keys(&l["payload"]),
        [
            "ts",
            "path",
            "count",
            "totalCount",
            "limitApplied",
            "nextOffset",
            "hasMore",
            "owners",
            "defaults",
            "sessions"
        ]
    );
    assert_eq!(l["payload"]["count"], 1);
    assert_eq!(l["payload"]["limitApplied"], 5);
    let s = &l["payload"]["sessions"][0];
    assert_eq!(s["key"], "agent:main:main");
    assert_eq!(s["messageCount"], 2);
    assert_eq!(s["hasActiveRun"], false);
    assert_eq!(l["payload"]["defaults"]["model"], "fake-1");

    // The second turn sends the history along.
    raw.req("s2", "chat.send", Some(json!({"sessionKey": "agent:main:main", "message": "And again", "idempotencyKey": "chat-idem-2"}))).await;
    until_event(&mut raw, |f| {
        f["event"] == "chat"
            && f["payload"]["state"] == "final"
            && f["payload"]["runId"] == "chat-idem-2"
    })
    .await;
    let r = fake.request(1, WAIT).await.unwrap();
    assert_eq!(
        r.body["messages"],
        json!([{"role": "user", "content": "Hello again"}, {"role": "assistant", "content": TEXT}, {"role": "user", "content": "And again"}])
    );
}

#[tokio::test]
async fn chat_abort_cancels_the_upstream_stream() {
    let fake = FakeModel::with_default(Reply::Stream(
        StreamSpec::text(&["one ", "two ", "three ", "four ", "five "])
            .slow(Duration::ZERO, Duration::from_secs(2)),
    ));
    let gw = gateway(&fake);
    let mut raw = operator(&gw).await;
    send_agent(&mut raw, "a1", "run-abort", "count", "agent:main:main").await;
    until_event(&mut raw, |f| {
        f["event"] == "chat" && f["payload"]["state"] == "delta"
    })
    .await;
    raw.req(
        "x1",
        "chat.abort",
        Some(json!({"sessionKey": "agent:main:main", "runId": "run-abort"})),
    )
    .await;
    let mut frames = Vec::new();
    let mut abort_res = None;
    let mut fin = None;
    while abort_res.is_none() || fin.is_none() {
        let f = raw.json().await;
        match (f["type"].as_str(), f["id"].as_str()) {
            (Some("res"), Some("x1")) => abort_res = Some(f),
            (Some("res"), Some("a1")) => fin = Some(f),
            _ => frames.push(f),
        }
    }
    assert_eq!(
        abort_res.unwrap()["payload"],
        json!({"ok": true, "aborted": true, "runIds": ["run-abort"]})
    );
    assert_eq!(
        fin.unwrap()["payload"],
        json!({"runId": "run-abort", "status": "timeout", "summary": "aborted", "stopReason": "rpc"})
    );
    let ev = run_events(&frames, "run-abort");
    let labels: Vec<String> = ev.iter().map(|f| label(f)).collect();
    assert_eq!(
        labels[labels.len() - 2..],
        [
            "chat:aborted".to_string(),
            "agent:lifecycle:end".to_string()
        ]
    );
    let aborted = ev[ev.len() - 2];
    assert_eq!(aborted["payload"]["stopReason"], "rpc");
    assert_eq!(aborted["payload"]["message"]["content"][0]["text"], "one ");
    let end = ev[ev.len() - 1];
    assert_eq!(end["payload"]["data"]["status"], "cancelled");
    assert_eq!(end["payload"]["data"]["aborted"], true);
    assert_eq!(end["payload"]["seq"], aborted["payload"]["seq"]);
    // The model server saw its client go away mid-stream.
    assert_eq!(fake.outcome(0, WAIT).await, Some(Outcome::PeerClosed));
    // The partial answer is in the transcript, marked aborted.
    raw.req(
        "h",
        "chat.history",
        Some(json!({"sessionKey": "agent:main:main"})),
    )
    .await;
    let h = raw.res("h").await;
    assert_eq!(h["payload"]["messages"][1]["stopReason"], "aborted");
    // Nothing left to abort.
    raw.req(
        "x2",
        "chat.abort",
        Some(json!({"sessionKey": "agent:main:main"})),
    )
    .await;
    assert_eq!(
        raw.res("x2").await["payload"],
        json!({"ok": true, "aborted": false, "runIds": []})
    );
}

#[tokio::test]
async fn sessions_run_in_parallel_and_one_session_queues() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let mut raw = operator(&gw).await;
    // Two sessions: both model calls are in flight at once.
    let (g1, g2) = (
        Arc::new(tokio::sync::Semaphore::new(0)),
        Arc::new(tokio::sync::Semaphore::new(0)),
    );
    fake.push(Reply::Held(StreamSpec::hello(), g1.clone()));
    fake.push(Reply::Held(StreamSpec::hello(), g2.clone()));
    send_agent(&mut raw, "p1", "par-1", "one", "agent:main:s1").await;
    send_agent(&mut raw, "p2", "par-2", "two", "agent:main:s2").await;
    assert!(
        fake.request(1, LONG).await.is_some(),
        "the second session's call started while the first is held"
    );
    g1.add_permits(1);
    g2.add_permits(1);
    for f in finals(&mut raw, &["p1", "p2"]).await {
        assert_eq!(f["payload"]["status"], "ok");
    }

    // One session: the second run waits (visible as pending input) until the first ends.
    let g3 = Arc::new(tokio::sync::Semaphore::new(0));
    fake.push(Reply::Held(StreamSpec::hello(), g3.clone()));
    send_agent(&mut raw, "q1", "queue-1", "first", "agent:main:q").await;
    assert!(fake.request(2, LONG).await.is_some());
    send_agent(&mut raw, "q2", "queue-2", "second", "agent:main:q").await;
    assert_eq!(raw.res("q2").await["payload"]["status"], "accepted");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        raw.req(
            "h",
            "chat.history",
            Some(json!({"sessionKey": "agent:main:q"})),
        )
        .await;
        let h = raw.res("h").await;
        let items = h["payload"]["pendingInputs"]["items"]
            .as_array()
            .unwrap()
            .clone();
        if items.iter().any(|i| i["runId"] == "queue-2") {
            assert_eq!(items[0]["text"], "second");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue-2 never showed as pending: {h}"
        );
    }
    assert_eq!(
        fake.requests().len(),
        3,
        "the queued run has not called the model"
    );
    g3.add_permits(1);
    for f in finals(&mut raw, &["q1", "q2"]).await {
        assert_eq!(f["payload"]["status"], "ok");
    }
    let reqs = fake.requests();
    assert!(
        reqs[3].received >= reqs[2].ended.unwrap(),
        "queued run called the model only after the first finished"
    );
    // ... and saw the first turn as history.
    assert_eq!(
        reqs[3].body["messages"][0],
        json!({"role": "user", "content": "first"})
    );
}

#[tokio::test]
async fn upstream_failures_are_reported_as_errors() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let mut raw = operator(&gw).await;
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply::unauthorized(),
            "returned HTTP 401 Unauthorized: Incorrect API key provided",
        ),
        (
            Reply::server_error(),
            "returned HTTP 500 Internal Server Error: model crashed",
        ),
        (
            Reply::Cut(vec!["partial ".into(), "answer".into()]),
            "ended before the response was complete",
        ),
    ];
    for (i, (reply, needle)) in cases.into_iter().enumerate() {
        fake.push(reply);
        let id = format!("f{i}");
        let key = format!("fail-{i}");
        send_agent(&mut raw, &id, &key, "hi", "agent:main:main").await;
        let (_, frames, fin) = until_final(&mut raw, &id).await;
        assert_eq!(fin["ok"], false, "{fin}");
        let msg = fin["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
        assert!(
            msg.contains("model provider \"fake\"") || msg.contains("provider \"fake\""),
            "{msg}"
        );
        assert_eq!(fin["error"]["code"], "UNAVAILABLE");
        assert_eq!(
            fin["payload"],
            json!({"runId": key, "status": "error", "summary": msg})
        );
        let labels: Vec<String> = run_events(&frames, &key).iter().map(|f| label(f)).collect();
        assert_eq!(
            labels[labels.len() - 3..],
            [
                "agent:lifecycle:model-cleared".to_string(),
                "agent:lifecycle:error".to_string(),
                "chat:error".to_string()
            ]
        );
    }
    assert!(fake.requests()[0].authorization.is_some());
    // The failed turns are in the transcript as user messages only.
    raw.req(
        "h",
        "chat.history",
        Some(json!({"sessionKey": "agent:main:main"})),
    )
    .await;
    let h = raw.res("h").await;
    assert!(
        h["payload"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] == "user")
    );
}

#[tokio::test]
async fn shutdown_aborts_runs_and_reports_errors() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let fake = FakeModel::with_default(Reply::Held(StreamSpec::hello(), gate));
    let gw = gateway(&fake);
    let mut raw = operator(&gw).await;
    send_agent(&mut raw, "a1", "run-shutdown", "wait", "agent:main:main").await;
    assert!(fake.request(0, LONG).await.is_some());
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, frames, fin) = until_final(&mut raw, "a1").await;
    assert_eq!(fin["ok"], false);
    assert_eq!(fin["error"]["code"], "UNAVAILABLE");
    assert_eq!(fin["error"]["retryable"], true);
    assert!(
        fin["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{fin}"
    );
    let labels: Vec<String> = run_events(&frames, "run-shutdown")
        .iter()
        .map(|f| label(f))
        .collect();
    assert!(
        labels.ends_with(&[
            "agent:lifecycle:error".to_string(),
            "chat:error".to_string()
        ]),
        "{labels:?}"
    );
    // The final response went out before the shutdown event; then the close.
    assert!(
        !frames.iter().any(|f| f["event"] == "shutdown"),
        "final response came after the shutdown event"
    );
    let mut saw_shutdown = false;
    loop {
        match raw.recv().await {
            Frame::Json(f) => saw_shutdown |= f["event"] == "shutdown",
            Frame::Close(code, _) => {
                assert_eq!(code, 1012);
                break;
            }
        }
    }
    assert!(saw_shutdown);
    assert_eq!(fake.outcome(0, WAIT).await, Some(Outcome::PeerClosed));
}

#[tokio::test]
async fn expect_final_client_waits_through_ticks() {
    let fake = FakeModel::with_default(Reply::Stream(
        StreamSpec::hello().slow(Duration::from_millis(400), Duration::from_millis(100)),
    ));
    let gw = builder(&fake, "")
        .env("OPENCLAW_TICK_INTERVAL_MS", "100")
        .start();
    let mut client = GatewayClient::connect(
        ConnectOptions::new(gw.url())
            .token(gw.token.clone())
            .scopes(&["operator.write", "operator.read"]),
    )
    .await
    .unwrap();
    let params = json!({"message": "Say hi", "idempotencyKey": "cli-agent-1", "sessionKey": "agent:main:main"});
    let fin = client
        .call_expect_final("agent", Some(params), LONG)
        .await
        .unwrap();
    assert_eq!(fin["status"], "ok");
    assert_eq!(fin["result"]["payloads"][0]["text"], TEXT);
    // Ticks kept flowing while the run was in progress.
    let mut ticks = 0;
    while let Some(e) = client.next_event(Duration::ZERO).await {
        ticks += usize::from(e.event == "tick");
    }
    assert!(ticks >= 1, "tick events during the run");
    // Without expect_final the ack resolves the call (in_flight/accepted semantics).
    let ack = client
        .call(
            "agent",
            Some(json!({"message": "again", "idempotencyKey": "cli-agent-2"})),
        )
        .await
        .unwrap();
    assert_eq!(ack["status"], "accepted");
}

#[tokio::test]
async fn provider_api_key_from_a_secret_ref() {
    use std::os::unix::fs::PermissionsExt;
    let fake = FakeModel::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, r#"{"fake": {"key": "sk-from-file"}}"#).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let vault = |path: &std::path::Path| {
        format!(
            "secrets: {{ providers: {{ vault: {{ source: 'file', path: '{}', mode: 'json' }} }} }},",
            path.display()
        )
    };
    let key_ref = "{ source: 'file', provider: 'vault', id: '/fake/key' }";
    let b = Gateway::builder();
    let cfg = config_with_key(&b.token, &fake, key_ref, &vault(&keys));
    let gw = b.config(&cfg).start();
    let mut raw = operator(&gw).await;
    send_agent(&mut raw, "a1", "ref-1", "hi", "agent:main:main").await;
    let (_, _, fin) = until_final(&mut raw, "a1").await;
    assert_eq!(fin["payload"]["status"], "ok", "{fin}");
    assert_eq!(
        fin["payload"]["result"]["meta"]["agentMeta"]["credentialSource"]["evidence"],
        "secret-ref"
    );
    let seen = fake.request(0, WAIT).await.unwrap();
    assert_eq!(seen.authorization.as_deref(), Some("Bearer sk-from-file"));

    // An unresolvable ref does not stop the gateway; runs fail naming the key and the cause.
    let b = Gateway::builder();
    let cfg = config_with_key(
        &b.token,
        &fake,
        key_ref,
        &vault(&dir.path().join("missing.json")),
    );
    let gw = b.config(&cfg).start();
    let mut raw = operator(&gw).await;
    send_agent(&mut raw, "a2", "ref-2", "hi", "agent:main:main").await;
    let (_, _, fin) = until_final(&mut raw, "a2").await;
    assert_eq!(fin["ok"], false);
    let msg = fin["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("the API key of model provider \"fake\" is unavailable: "),
        "{msg}"
    );
    assert!(msg.contains("missing.json"), "{msg}");
    assert_eq!(fake.requests().len(), 1, "no model call without a key");
}

#[tokio::test]
async fn run_timeout_aborts_and_models_list_shows_the_provider() {
    let fake = FakeModel::with_default(Reply::Stream(
        StreamSpec::hello().slow(Duration::from_secs(30), Duration::ZERO),
    ));
    let gw = gateway(&fake);
    let mut raw = operator(&gw).await;
    raw.req("m", "models.list", Some(json!({}))).await;
    let models = raw.res("m").await;
    let list = models["payload"]["models"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|m| m["id"] == "fake-1" && m["provider"] == "fake"),
        "{models}"
    );
    raw.req(
        "a1",
        "agent",
        Some(json!({"message": "slow", "idempotencyKey": "t-1", "timeout": 1})),
    )
    .await;
    let (_, frames, fin) = until_final(&mut raw, "a1").await;
    assert_eq!(
        fin["payload"],
        json!({"runId": "t-1", "status": "timeout", "summary": "aborted", "stopReason": "timeout"})
    );
    let ev = run_events(&frames, "t-1");
    let aborted = ev.iter().find(|f| label(f) == "chat:aborted").unwrap();
    assert_eq!(aborted["payload"]["stopReason"], "timeout");
    assert!(
        aborted["payload"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{aborted}"
    );
    assert_eq!(fake.outcome(0, WAIT).await, Some(Outcome::PeerClosed));
}
