//! The OpenAI-compatible HTTP APIs and hooks against a real gateway and the fake model:
//! error shapes as captured (docs/protocol.md §5), JSON and SSE completions, `/v1/models`,
//! `/v1/responses`, client disconnect cancelling the upstream request, hooks with their own
//! token, and persistence of sessions across a gateway restart (torn line included).
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::agent::*;
use crate::support::fake_model::{FakeModel, Outcome, Reply, StreamSpec};
use crate::support::{Gateway, WAIT, http};

const TEXT: &str = "Hello from the fake model.";

fn auth(gw: &Gateway) -> String {
    format!("Bearer {}", gw.token)
}

/// `data:` payloads of an SSE body (`[DONE]` as a string).
fn sse_data(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string())))
        .collect()
}

/// `event:` names of an SSE body.
fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("event: ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn chat_completions_gates_and_error_shapes() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let a = auth(&gw);
    let unauthorized = json!({"error": {"message": "Unauthorized", "type": "unauthorized"}});
    for (m, p) in [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/responses"),
    ] {
        let r = http(gw.port, m, p, &[], if m == "POST" { "{}" } else { "" });
        assert_eq!((r.status, r.json()), (401, unauthorized.clone()), "{m} {p}");
        let r = http(
            gw.port,
            m,
            p,
            &[("Authorization", "Bearer wrong")],
            if m == "POST" { "{}" } else { "" },
        );
        assert_eq!(r.status, 401);
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let r = http(
        gw.port,
        "GET",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        "",
    );
    assert_eq!(
        (r.status, r.header("allow"), r.body.as_str()),
        (405, Some("POST"), "Method Not Allowed")
    );
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        r#"{"model":"openclaw","messages":"bad"}"#,
    );
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error": {"message": "messages: Invalid input: expected array, received string", "type": "invalid_request_error"}})
        )
    );
    let r = http(
        gw.port,
        "POST",
        "/v1/responses",
        &[("Authorization", &a)],
        r#"{"model":"openclaw"}"#,
    );
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error": {"message": "input: Invalid input", "type": "invalid_request_error"}})
        )
    );
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        "notjson",
    );
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        r#"{"model":"gpt-4","messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openclaw/<agentId>")
    );
    // Models: the agent targets.
    let r = http(gw.port, "GET", "/v1/models", &[("Authorization", &a)], "");
    assert_eq!(r.status, 200);
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["openclaw", "openclaw/default", "openclaw/main"]);
    assert_eq!(
        r.json()["data"][0],
        json!({"id": "openclaw", "object": "model", "created": 0, "owned_by": "openclaw", "permission": []})
    );
    let r = http(
        gw.port,
        "GET",
        "/v1/models/openclaw%2Fdefault",
        &[("Authorization", &a)],
        "",
    );
    assert_eq!(
        (r.status, r.json()["id"].as_str()),
        (200, Some("openclaw/default"))
    );
    let r = http(
        gw.port,
        "GET",
        "/v1/models/nope",
        &[("Authorization", &a)],
        "",
    );
    assert_eq!(r.status, 404);
    // Other /v1 paths stay 404.
    assert_eq!(
        http(gw.port, "POST", "/v1/other", &[("Authorization", &a)], "{}").status,
        404
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn disabled_endpoints_are_not_found_and_no_provider_is_401() {
    let b = Gateway::builder();
    let cfg = format!(
        "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{}' }}, http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }} }}",
        b.token
    );
    let gw = b.config(&cfg).start();
    let a = auth(&gw);
    // responses stay disabled: 404 text.
    let r = http(
        gw.port,
        "POST",
        "/v1/responses",
        &[("Authorization", &a)],
        "{}",
    );
    assert_eq!((r.status, r.body.as_str()), (404, "Not Found"));
    // hooks disabled: POST 404.
    assert_eq!(http(gw.port, "POST", "/hooks/wake", &[], "{}").status, 404);
    let body = r#"{"model":"openclaw","messages":[{"role":"user","content":"hi"}]}"#;
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        body,
    );
    assert_eq!(
        (r.status, r.json()),
        (
            401,
            json!({"error": {"message": NO_ROUTE, "type": "authentication_error"}})
        )
    );
    let sbody = r#"{"model":"openclaw","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        sbody,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let d = sse_data(&r.body);
    assert_eq!(d.len(), 3, "{}", r.body);
    assert_eq!(d[0]["choices"][0]["delta"], json!({"role": "assistant"}));
    assert_eq!(d[0]["object"], "chat.completion.chunk");
    assert!(d[0]["id"].as_str().unwrap().starts_with("chatcmpl_"));
    assert_eq!(
        d[1],
        json!({"error": {"message": NO_ROUTE, "type": "authentication_error"}})
    );
    assert_eq!(d[2], "[DONE]");
}

#[test]
fn chat_completions_json_and_sse() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let a = auth(&gw);
    let body = json!({"model": "openclaw", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Earlier"},
        {"role": "assistant", "content": "Noted"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 0.5});
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a), ("Content-Type", "application/json")],
        &body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        keys(&v),
        ["id", "object", "created", "model", "choices", "usage"]
    );
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl_"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "openclaw");
    assert_eq!(
        v["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}])
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
    );
    let req = &fake.requests()[0];
    assert_eq!(
        req.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Earlier"},
               {"role": "assistant", "content": "Noted"}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(req.body["temperature"], 0.5);

    let sbody = json!({"model": "openclaw/default", "stream": true, "stream_options": {"include_usage": true},
                       "messages": [{"role": "user", "content": "hi"}]});
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        &sbody.to_string(),
    );
    assert_eq!(r.status, 200);
    let d = sse_data(&r.body);
    assert_eq!(d.len(), 8, "{}", r.body);
    assert_eq!(
        d[0]["choices"],
        json!([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}])
    );
    let content: Vec<&str> = d[1..6]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(content.concat(), TEXT);
    assert_eq!(
        d[6]["choices"],
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    );
    assert_eq!(d[6]["usage"]["total_tokens"], 15);
    assert_eq!(d[7], "[DONE]");
    let id = d[0]["id"].clone();
    assert!(
        d[..7]
            .iter()
            .all(|c| c["id"] == id && c["model"] == "openclaw/default")
    );
    // Each request is a separate session unless `user` is given.
    let r = http(gw.port, "POST", "/v1/chat/completions", &[("Authorization", &a)],
        &json!({"model": "openclaw", "user": "conv-1", "messages": [{"role": "user", "content": "first"}]}).to_string());
    assert_eq!(r.status, 200);
    let r = http(gw.port, "POST", "/v1/chat/completions", &[("Authorization", &a)],
        &json!({"model": "openclaw", "user": "conv-1", "messages": [{"role": "user", "content": "second"}]}).to_string());
    assert_eq!(r.status, 200);
    assert_eq!(
        fake.requests()[3].body["messages"],
        json!([{"role": "user", "content": "first"}, {"role": "assistant", "content": TEXT}, {"role": "user", "content": "second"}])
    );
}

#[test]
fn upstream_failures_map_to_http_errors() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let a = auth(&gw);
    let body = r#"{"model":"openclaw","messages":[{"role":"user","content":"hi"}]}"#;
    fake.push(Reply::unauthorized());
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        body,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("check models.providers.fake.apiKey")
    );
    fake.push(Reply::server_error());
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        body,
    );
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (500, Some("api_error"))
    );
    fake.push(Reply::Cut(vec!["half".into()]));
    let sbody = r#"{"model":"openclaw","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = http(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &a)],
        sbody,
    );
    let d = sse_data(&r.body);
    assert_eq!(d[1]["choices"][0]["delta"]["content"], "half");
    assert!(
        d[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before the response was complete"),
        "{}",
        r.body
    );
    assert_eq!(d[3], "[DONE]");
}

#[test]
fn sse_client_disconnect_cancels_the_model_request() {
    let fake = FakeModel::with_default(Reply::Stream(
        StreamSpec::text(&["a", "b", "c", "d", "e", "f", "g", "h"])
            .slow(Duration::ZERO, Duration::from_secs(1)),
    ));
    let gw = gateway(&fake);
    let body = r#"{"model":"openclaw","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        gw.token,
        body.len()
    )
    .unwrap();
    // Read until the first content delta arrives (noting the run id), then hang up.
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    let mut run_id = None;
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
        if let Some(d) = line.trim().strip_prefix("data: ")
            && let Ok(v) = serde_json::from_str::<Value>(d)
        {
            run_id = run_id.or_else(|| v["id"].as_str().map(str::to_string));
            if v["choices"][0]["delta"]["content"] == "a" {
                break;
            }
        }
    }
    drop(reader);
    s.shutdown(std::net::Shutdown::Both).unwrap();
    drop(s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(fake.outcome(0, LONG)),
        Some(Outcome::PeerClosed)
    );
    assert!(
        fake.requests()[0].ended.unwrap() < fake.requests()[0].received + Duration::from_secs(7),
        "cancelled before the stream's natural end"
    );
    // The run ended as aborted because the client went away.
    let run_id = run_id.expect("run id in the first chunk");
    let w = rt.block_on(async {
        let mut raw = operator(&gw).await;
        raw.req(
            "w",
            "agent.wait",
            Some(json!({"runId": run_id, "timeoutMs": 10000})),
        )
        .await;
        raw.res("w").await
    });
    assert_eq!(w["payload"]["status"], "timeout", "{w}");
    assert_eq!(w["payload"]["stopReason"], "client_disconnected");
}

#[test]
fn responses_json_and_sse() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let a = auth(&gw);
    let r = http(
        gw.port,
        "POST",
        "/v1/responses",
        &[("Authorization", &a), ("x-openclaw-agent-id", "main")],
        &json!({"model": "openclaw", "input": "hi", "instructions": "Be kind."}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(
        v["output"][0]["content"][0],
        json!({"type": "output_text", "text": TEXT, "annotations": []})
    );
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 10, "output_tokens": 5, "total_tokens": 15})
    );
    assert_eq!(
        fake.requests()[0].body["messages"],
        json!([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}])
    );
    let r = http(gw.port, "POST", "/v1/responses", &[("Authorization", &a)],
        &json!({"model": "openclaw", "stream": true, "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]}).to_string());
    assert_eq!(r.status, 200);
    let events = sse_events(&r.body);
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", 5));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(events, expected);
    let d = sse_data(&r.body);
    let seqs: Vec<u64> = d[..d.len() - 1]
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        d[d.len() - 2]["response"]["output"][0]["content"][0]["text"],
        TEXT
    );
    assert_eq!(d[d.len() - 1], "[DONE]");
    fake.push(Reply::server_error());
    let r = http(
        gw.port,
        "POST",
        "/v1/responses",
        &[("Authorization", &a)],
        &json!({"model": "openclaw", "stream": true, "input": "x"}).to_string(),
    );
    let events = sse_events(&r.body);
    assert_eq!(events.last().map(String::as_str), Some("response.failed"));
}

#[test]
fn hooks_have_their_own_token() {
    let fake = FakeModel::start();
    let hook = "hook-secret-1";
    let gw = builder(
        &fake,
        &format!("hooks: {{ enabled: true, token: '{hook}' }},"),
    )
    .start();
    let bearer = format!("Bearer {hook}");
    let r = http(gw.port, "POST", "/hooks/wake", &[], r#"{"text":"x"}"#);
    assert_eq!((r.status, r.body.as_str()), (401, "Unauthorized"));
    let gw_bearer = auth(&gw);
    assert_eq!(
        http(
            gw.port,
            "POST",
            "/hooks/wake",
            &[("Authorization", &gw_bearer)],
            r#"{"text":"x"}"#
        )
        .status,
        401,
        "the gateway token is not the hook token"
    );
    let r = http(
        gw.port,
        "GET",
        "/hooks/wake",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert_eq!(
        http(
            gw.port,
            "POST",
            "/hooks/wake?token=x",
            &[("Authorization", &bearer)],
            r#"{"text":"x"}"#
        )
        .status,
        400
    );
    assert_eq!(
        http(
            gw.port,
            "POST",
            "/hooks/nope",
            &[("Authorization", &bearer)],
            "{}"
        )
        .status,
        404
    );
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(300 * 1024));
    assert_eq!(
        http(
            gw.port,
            "POST",
            "/hooks/wake",
            &[("Authorization", &bearer)],
            &big
        )
        .status,
        413
    );
    let r = http(
        gw.port,
        "POST",
        "/hooks/wake",
        &[("Authorization", &bearer)],
        r#"{"text":"Disk is 91% full","mode":"next-heartbeat"}"#,
    );
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"ok": true, "mode": "next-heartbeat", "eventOutcome": "queued"})
        )
    );
    let r = http(
        gw.port,
        "POST",
        "/hooks/wake",
        &[("x-openclaw-token", hook)],
        r#"{"text":"Disk is 91% full"}"#,
    );
    assert_eq!(
        r.json(),
        json!({"ok": true, "mode": "now", "eventOutcome": "coalesced"})
    );
    assert_eq!(
        http(
            gw.port,
            "POST",
            "/hooks/wake",
            &[("Authorization", &bearer)],
            r#"{"text":""}"#
        )
        .status,
        400
    );
    // /hooks/agent runs an agent turn; waitForCompletion returns its outcome.
    let r = http(
        gw.port,
        "POST",
        "/hooks/agent",
        &[("Authorization", &bearer)],
        r#"{"message":"Summarize","waitForCompletion":true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["completion"], json!({"status": "ok", "text": TEXT}));
    assert_eq!(
        http(
            gw.port,
            "POST",
            "/hooks/agent",
            &[("Authorization", &bearer)],
            r#"{"message":"x","sessionKey":"mine"}"#
        )
        .status,
        400,
        "request session keys need hooks.allowRequestSessionKey"
    );
    // The queued wake reaches the next turn on the main session as a system event.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut raw = operator(&gw).await;
        send_agent(&mut raw, "a1", "after-wake", "status?", "agent:main:main").await;
        until_final(&mut raw, "a1").await;
    });
    let last = fake.requests().last().unwrap().clone();
    assert_eq!(
        last.body["messages"][0],
        json!({"role": "system", "content": "System: Disk is 91% full"})
    );
}

#[test]
fn sessions_persist_across_restart_and_survive_a_torn_line() {
    let fake = FakeModel::start();
    let gw = gateway(&fake);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut raw = operator(&gw).await;
        send_agent(&mut raw, "a1", "turn-1", "Remember me", "agent:main:main").await;
        assert_eq!(
            until_final(&mut raw, "a1").await.2["payload"]["status"],
            "ok"
        );
    });
    let token = gw.token.clone();
    let home = gw.stop_keep_home();
    // A crash mid-write leaves a torn last line.
    let dir = home.path().join(".openclaw/agents/main/sessions");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(br#"{"type":"message","runId":"torn","message":{"role":"user","con"#)
        .unwrap();
    drop(f);
    let mut b = Gateway::builder();
    b.token = token.clone();
    let gw = b.config(&config(&token, &fake, "")).start_in(home);
    rt.block_on(async {
        let mut raw = operator(&gw).await;
        raw.req(
            "h",
            "chat.history",
            Some(json!({"sessionKey": "agent:main:main"})),
        )
        .await;
        let h = raw.res("h").await;
        let texts: Vec<&str> = h["payload"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["Remember me", TEXT]);
        raw.req("l", "sessions.list", Some(json!({}))).await;
        assert_eq!(
            raw.res("l").await["payload"]["sessions"][0]["messageCount"],
            2
        );
        send_agent(&mut raw, "a2", "turn-2", "Still there?", "agent:main:main").await;
        assert_eq!(
            until_final(&mut raw, "a2").await.2["payload"]["status"],
            "ok"
        );
    });
    assert_eq!(
        fake.requests()[1].body["messages"],
        json!([{"role": "user", "content": "Remember me"}, {"role": "assistant", "content": TEXT}, {"role": "user", "content": "Still there?"}])
    );
    // The torn fragment is gone; every line parses.
    let mut text = String::new();
    std::fs::File::open(&file)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(!text.contains("\"torn\""));
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{text}"
    );
    assert_eq!(text.lines().count(), 5, "header + 4 messages");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
