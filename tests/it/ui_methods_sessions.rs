//! The chat page and the session feed as the Control UI drives them over WS: `chat.startup`,
//! `session.message` for every transcript append, `chat.inject`, and session edits with their
//! `sessions.changed` events, `sessions.list` filters and `sessions.describe`.
use std::time::Duration;

use openclaw::gateway::client::GatewayClient;
use serde_json::{Value, json};

use crate::support::agent::builder;
use crate::support::fake_model::FakeModel;
use crate::ui_methods_boot::{call_err, ui_client};

const WAIT: Duration = Duration::from_secs(20);

async fn event(c: &mut GatewayClient, name: &str) -> Value {
    c.wait_event(name, WAIT)
        .await
        .unwrap_or_else(|| panic!("no {name} event within {WAIT:?}"))
        .payload
}

/// The events up to and including run `run_id`'s final `chat` event.
async fn events_until_final(c: &mut GatewayClient, run_id: &str) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    loop {
        let e = c
            .next_event(WAIT)
            .await
            .unwrap_or_else(|| panic!("no final chat event of {run_id} within {WAIT:?}"));
        let fin =
            e.event == "chat" && e.payload["runId"] == run_id && e.payload["state"] == "final";
        seen.push((e.event, e.payload));
        if fin {
            return seen;
        }
    }
}

fn named(seen: &[(String, Value)], name: &str) -> Vec<Value> {
    seen.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, p)| p.clone())
        .collect()
}

/// Sends `text` with chat.send; the events until its final `chat` event.
async fn chat(c: &mut GatewayClient, key: &str, text: &str, idem: &str) -> Vec<(String, Value)> {
    let r = c
        .call(
            "chat.send",
            Some(json!({"sessionKey": key, "message": text, "idempotencyKey": idem})),
        )
        .await
        .unwrap();
    assert_eq!(r["status"], "started");
    events_until_final(c, idem).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_gets_history_and_live_session_messages() {
    let fake = FakeModel::start();
    let gw = builder(&fake, "").start();
    let mut page = ui_client(&gw).await;
    let mut sidebar = ui_client(&gw).await;
    let other = ui_client(&gw).await;
    let sub = page
        .call("sessions.messages.subscribe", Some(json!({"key": "main"})))
        .await
        .unwrap();
    assert_eq!(sub, json!({"subscribed": true, "key": "agent:main:main"}));
    assert_eq!(
        sidebar
            .call("sessions.subscribe", Some(json!({})))
            .await
            .unwrap(),
        json!({"subscribed": true})
    );

    let ev = chat(&mut page, "agent:main:main", "hello there", "ui-run-1").await;
    // The page got one session.message per appended message, the user's then the reply,
    // before the run's final chat event.
    let seen = named(&ev, "session.message");
    assert_eq!(seen.len(), 2, "{ev:?}");
    assert_eq!(seen[0]["sessionKey"], "agent:main:main");
    assert_eq!(seen[0]["agentId"], "main");
    assert_eq!(seen[0]["message"]["role"], "user");
    assert_eq!(seen[0]["messageSeq"], 1);
    assert_eq!(seen[0]["message"]["__openclaw"]["seq"], 1);
    assert_eq!(seen[0]["runId"], "ui-run-1");
    assert_eq!(seen[1]["message"]["role"], "assistant");
    assert_eq!(seen[1]["messageSeq"], 2);
    assert_eq!(seen[1]["session"]["key"], "agent:main:main");
    assert_eq!(seen[1]["session"]["messageCount"], 2);
    assert_eq!(seen[1]["sessionId"], seen[1]["session"]["sessionId"]);
    // Session subscribers see the same messages (they refresh rows from them).
    let side = named(
        &events_until_final(&mut sidebar, "ui-run-1").await,
        "session.message",
    );
    assert_eq!(side.len(), 2);
    assert_eq!(side[0]["messageSeq"], 1);
    // A socket that subscribed to nothing gets none (they would come before the final).
    let mut other = other;
    let ev = events_until_final(&mut other, "ui-run-1").await;
    assert!(named(&ev, "session.message").is_empty(), "{ev:?}");

    // chat.startup: the history and the session row the page renders.
    let st = page
        .call(
            "chat.startup",
            Some(json!({"sessionKey": "agent:main:main", "limit": 50})),
        )
        .await
        .unwrap();
    let msgs = st["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(st["sessionId"], seen[1]["sessionId"]);
    assert_eq!(st["sessionInfo"]["classification"], "main");
    assert_eq!(st["defaults"]["model"], "fake-1");
    // A short id this gateway never issued: upstream's unresolved answer.
    assert_eq!(
        page.call(
            "chat.startup",
            Some(json!({"shortId": "abc123", "agentId": "main"}))
        )
        .await
        .unwrap(),
        json!({"resolution": {"ok": false}})
    );
    assert_eq!(
        call_err(
            &page,
            "chat.startup",
            json!({"sessionKey": "main", "bogus": 1})
        )
        .await
        .1,
        "invalid chat.startup params: at root: unexpected property 'bogus'"
    );

    // chat.inject: an assistant note in the transcript, a final chat event with seq 0.
    let inj = page
        .call(
            "chat.inject",
            Some(json!({"sessionKey": "agent:main:main", "message": "note", "label": "ops"})),
        )
        .await
        .unwrap();
    assert_eq!(inj["ok"], true);
    let id = inj["messageId"].as_str().unwrap().to_string();
    let ev = events_until_final(&mut page, &format!("inject-{id}")).await;
    let fin = &ev.last().unwrap().1;
    assert_eq!(fin["seq"], 0);
    assert_eq!(fin["state"], "final");
    assert_eq!(fin["message"]["content"][0]["text"], "[ops]\n\nnote");
    assert_eq!(fin["message"]["model"], "gateway-injected");
    let m = &named(&ev, "session.message")[0];
    assert_eq!(m["messageId"], id.as_str());
    assert_eq!(m["messageSeq"], 3);
    let h = page
        .call("chat.history", Some(json!({"sessionKey": "main"})))
        .await
        .unwrap();
    assert_eq!(h["messages"].as_array().unwrap().len(), 3);
    assert_eq!(
        call_err(
            &page,
            "chat.inject",
            json!({"sessionKey": "agent:main:nowhere", "message": "x"})
        )
        .await,
        ("INVALID_REQUEST".into(), "session not found".into())
    );

    // Unsubscribed: the next run no longer reaches that socket's message feed. (The page
    // itself joined the session feed with its short-id `chat.startup`, as upstream's does.)
    let mut w = ui_client(&gw).await;
    w.call(
        "sessions.messages.subscribe",
        Some(json!({"key": "agent:main:main"})),
    )
    .await
    .unwrap();
    assert_eq!(
        w.call(
            "sessions.messages.unsubscribe",
            Some(json!({"key": "agent:main:main"})),
        )
        .await
        .unwrap(),
        json!({"subscribed": false, "key": "agent:main:main"})
    );
    chat(&mut sidebar, "agent:main:main", "again", "ui-run-2").await;
    let ev = events_until_final(&mut w, "ui-run-2").await;
    assert!(named(&ev, "session.message").is_empty(), "{ev:?}");
    let ev = events_until_final(&mut page, "ui-run-2").await;
    assert_eq!(named(&ev, "session.message").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_edits_are_kept_filtered_and_announced() {
    let fake = FakeModel::start();
    let gw = builder(&fake, "").start();
    let mut c = ui_client(&gw).await;
    let mut feed = ui_client(&gw).await;
    feed.call("sessions.subscribe", Some(json!({})))
        .await
        .unwrap();
    chat(&mut c, "agent:main:work", "hi", "edit-run-1").await;
    // The run's start and end reach the session feed with the row's status.
    let mut phases = Vec::new();
    while phases.len() < 2 {
        let e = event(&mut feed, "sessions.changed").await;
        if e["runId"] == "edit-run-1" {
            phases.push((
                e["phase"].clone(),
                e["status"].clone(),
                e["hasActiveRun"].clone(),
            ));
        }
    }
    assert_eq!(
        phases,
        [
            (json!("start"), json!("running"), json!(true)),
            (json!("end"), json!("idle"), json!(false))
        ]
    );

    // patch: label, pin, archive; the row says so and subscribers hear it.
    let r = c
        .call(
            "sessions.patch",
            Some(json!({"key": "agent:main:work", "label": "Work chat", "pinned": true})),
        )
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(r["key"], "agent:main:work");
    assert_eq!(r["entry"]["label"], "Work chat");
    assert_eq!(r["resolved"]["model"], "fake-1");
    let ch = loop {
        let e = event(&mut feed, "sessions.changed").await;
        if e["reason"] == "patch" {
            break e;
        }
    };
    assert_eq!(ch["sessionKey"], "agent:main:work");
    assert_eq!(ch["session"]["label"], "Work chat");
    assert_eq!(ch["pinned"], true);
    let d = c
        .call("sessions.describe", Some(json!({"key": "agent:main:work"})))
        .await
        .unwrap();
    assert_eq!(d["session"]["displayName"], "Work chat");
    assert_eq!(d["session"]["pinned"], true);
    assert_eq!(d["session"]["hasBoard"], false);
    assert_eq!(
        call_err(
            &c,
            "sessions.patch",
            json!({"key": "agent:main:work", "thinkingLevel": "high"})
        )
        .await
        .1,
        "sessions.patch: thinkingLevel is not supported by this gateway (it keeps label, pinned, archived and unread)"
    );

    c.call(
        "sessions.patch",
        Some(json!({"key": "agent:main:work", "archived": true})),
    )
    .await
    .unwrap();
    let keys = |v: &Value| -> Vec<String> {
        v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].as_str().unwrap().to_string())
            .collect()
    };
    let list = |p: Value| {
        let c = &c;
        async move { c.call("sessions.list", Some(p)).await.unwrap() }
    };
    assert!(!keys(&list(json!({})).await).contains(&"agent:main:work".to_string()));
    assert_eq!(
        keys(&list(json!({"archived": true})).await),
        ["agent:main:work"]
    );
    assert!(keys(&list(json!({"archived": "all"})).await).contains(&"agent:main:work".to_string()));
    // No boards and no spawned sessions here: those filters match nothing.
    assert!(keys(&list(json!({"hasBoard": true, "archived": "all"})).await).is_empty());
    assert!(keys(&list(json!({"spawnedBy": "agent:main:main"})).await).is_empty());
    assert_eq!(
        keys(&list(json!({"hasBoard": false, "archived": "all"})).await).len(),
        1
    );
    // The newest message's text when asked for (the UI asks), absent otherwise.
    let rows = list(json!({"archived": "all", "includeLastMessage": true})).await;
    assert_eq!(
        rows["sessions"][0]["lastMessagePreview"],
        "Hello from the fake model."
    );
    assert!(
        list(json!({"archived": "all"})).await["sessions"][0]
            .get("lastMessagePreview")
            .is_none()
    );
    let with_list = c
        .call("sessions.subscribe", Some(json!({"archived": true})))
        .await
        .unwrap();
    assert_eq!(with_list["subscribed"], true);
    assert_eq!(keys(&with_list["list"]), ["agent:main:work"]);

    // reset: a fresh transcript under the same key.
    let before = d["session"]["sessionId"].clone();
    let reset = c
        .call("sessions.reset", Some(json!({"key": "agent:main:work"})))
        .await
        .unwrap();
    assert_eq!(reset["ok"], true);
    assert_ne!(reset["entry"]["sessionId"], before);
    let h = c
        .call(
            "chat.history",
            Some(json!({"sessionKey": "agent:main:work"})),
        )
        .await
        .unwrap();
    assert_eq!(h["messages"], json!([]));

    // delete: the main session is refused; another is archived on disk and gone from lists.
    assert_eq!(
        call_err(&c, "sessions.delete", json!({"key": "agent:main:main"})).await,
        (
            "INVALID_REQUEST".into(),
            "Cannot delete the main session (agent:main:main).".into()
        )
    );
    assert_eq!(
        call_err(
            &c,
            "sessions.delete",
            json!({"key": "agent:main:work", "archivedOnly": true})
        )
        .await
        .1,
        "Session agent:main:work is not archived. Archive it first, then delete it."
    );
    let del = c
        .call("sessions.delete", Some(json!({"key": "agent:main:work"})))
        .await
        .unwrap();
    assert_eq!(del["deleted"], true);
    let archived = del["archived"][0].as_str().unwrap();
    assert!(std::path::Path::new(archived).exists(), "{archived}");
    let gone = loop {
        let e = event(&mut feed, "sessions.changed").await;
        if e["reason"] == "delete" {
            break e;
        }
    };
    assert_eq!(gone["sessionKey"], "agent:main:work");
    assert_eq!(
        c.call("sessions.describe", Some(json!({"key": "agent:main:work"})))
            .await
            .unwrap(),
        json!({"session": null})
    );
    let again = c
        .call("sessions.delete", Some(json!({"key": "agent:main:work"})))
        .await
        .unwrap();
    assert_eq!(again["deleted"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opened_mid_run_gets_the_text_streamed_so_far() {
    use crate::support::fake_model::{Reply, StreamSpec};
    let fake = FakeModel::start();
    // The first delta at once, the next one only after the test has aborted the run.
    fake.push(Reply::Stream(
        StreamSpec::text(&["Partial", " rest"]).slow(Duration::ZERO, Duration::from_secs(30)),
    ));
    let gw = builder(&fake, "").start();
    let mut c = ui_client(&gw).await;
    c.call(
        "chat.send",
        Some(json!({"sessionKey": "main", "message": "go", "idempotencyKey": "mid-run-1"})),
    )
    .await
    .unwrap();
    loop {
        let e = event(&mut c, "chat").await;
        if e["runId"] == "mid-run-1" && e["state"] == "delta" {
            break;
        }
    }
    let st = c
        .call("chat.startup", Some(json!({"sessionKey": "main"})))
        .await
        .unwrap();
    let f = &st["inFlightRun"];
    assert_eq!(f["runId"], "mid-run-1");
    assert_eq!(f["text"], "Partial");
    assert!(f["startedAt"].as_u64().unwrap() > 0);
    c.call(
        "chat.abort",
        Some(json!({"sessionKey": "main", "runId": "mid-run-1"})),
    )
    .await
    .unwrap();
    let after = c
        .call("chat.history", Some(json!({"sessionKey": "main"})))
        .await
        .unwrap();
    assert!(after.get("inFlightRun").is_none(), "{after}");
}
