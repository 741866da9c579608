//! The session engine (one task per socket reading frames and writing its queue): frames larger
//! than the socket's read buffer, pipelined requests answered inline and by tracked handler
//! tasks, and the slow-consumer close jumping the socket's backlog.
use std::collections::HashSet;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Gateway, WAIT, connect_params, hello};

#[tokio::test]
async fn request_frames_larger_than_the_read_buffer() {
    let gw = Gateway::builder().start();
    let params = connect_params("cli", "cli", Some(&gw.token), &["operator.read"]);
    let (mut raw, _, _) = hello(&gw.url(), params, &[]).await;
    // `health` ignores its params: a 300 kB frame is read in many steps and answered.
    let blob = "y".repeat(300_000);
    raw.req("big", "health", Some(json!({ "blob": blob })))
        .await;
    let res = raw.res("big").await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["ok"], true);
    // The socket is still in step afterwards, for small and large frames alike.
    raw.req("small", "node.list", None).await;
    assert_eq!(raw.res("small").await["ok"], true);
    raw.req("big2", "status", Some(json!({ "pad": blob })))
        .await;
    let res = raw.res("big2").await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["pid"].is_u64());
}

#[tokio::test]
async fn pipelined_requests_are_each_answered_once() {
    let gw = Gateway::builder().start();
    let params = connect_params("cli", "cli", Some(&gw.token), &["operator.read"]);
    let (mut raw, _, _) = hello(&gw.url(), params, &[]).await;
    // Inline handlers (health, status, node.list) and one that waits on a blocking task
    // (logs.tail), sent back to back without waiting for any answer.
    let methods = ["health", "status", "node.list", "logs.tail"];
    let mut want = HashSet::new();
    for i in 0..200 {
        let id = format!("p{i}");
        raw.req(&id, methods[i % methods.len()], None).await;
        want.insert(id);
    }
    let mut seen = HashSet::new();
    while seen.len() < want.len() {
        let v = raw.json().await;
        if v["type"] != "res" {
            continue;
        }
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(v["ok"], true, "{v}");
        assert!(want.contains(&id), "unexpected response {v}");
        assert!(seen.insert(id), "answered twice: {v}");
    }
}

#[tokio::test]
async fn slow_consumer_is_closed_1008_ahead_of_its_backlog() {
    // config.get returns the config several times over: with a 64 kB value each answer is
    // hundreds of kB, so a client that does not read overflows a 256 kB cap quickly.
    let b = Gateway::builder();
    let token = b.token.clone();
    let big = "x".repeat(64 * 1024);
    let gw = b
        .config(&format!(
            "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }} }}, notes: {{ big: '{big}' }} }}"
        ))
        .env("OPENCLAW_MAX_BUFFERED_BYTES", "262144")
        .start();
    let (ws, _) = tokio_tungstenite::connect_async(gw.url()).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let text = |m: Option<Result<Message, _>>| match m {
        Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    };
    assert_eq!(text(rx.next().await)["event"], "connect.challenge");
    let connect = json!({"type": "req", "id": "c", "method": "connect",
        "params": connect_params("cli", "cli", Some(&token), &["operator.read"])});
    tx.send(Message::text(connect.to_string())).await.unwrap();
    assert_eq!(text(rx.next().await)["ok"], true);
    // 64 requests (~25 MB of answers), then stop reading until the gateway gives up on us.
    let n = 64;
    for i in 0..n {
        let req = json!({"type": "req", "id": format!("g{i}"), "method": "config.get"});
        tx.send(Message::text(req.to_string())).await.unwrap();
    }
    let line = gw.wait_for_line("slow consumer", WAIT);
    assert!(line.is_some(), "no slow-consumer log:\n{}", gw.stderr());
    // What was already handed to the kernel arrives, then the close; the rest was dropped.
    let mut answered = 0;
    let close = loop {
        match tokio::time::timeout(WAIT, rx.next()).await.expect("frames") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "res" {
                    assert_eq!(v["ok"], true);
                    answered += 1;
                }
            }
            Some(Ok(Message::Close(c))) => break c.map(|c| (u16::from(c.code), c.reason)),
            Some(Ok(_)) => {}
            other => panic!("expected frames then a close, got {other:?}"),
        }
    };
    let (code, reason) = close.expect("a close frame");
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    assert!(
        answered < n,
        "the backlog was dropped ({answered} of {n} answered)"
    );
}
