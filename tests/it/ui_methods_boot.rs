//! What the Control UI calls on boot (control-ui.md §3), over a real WS connection with the
//! scopes the UI requests: every call answers (real data or upstream's "nothing here"
//! shape) and what answers is advertised in `hello-ok.features.methods`.
use openclaw::gateway::client::{ClientError, ConnectOptions, GatewayClient};
use serde_json::{Value, json};

use crate::support::Gateway;
use crate::support::agent::builder;
use crate::support::fake_model::FakeModel;

/// The scopes the official UI requests.
pub const UI_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
];

/// An operator (direct-local `cli` client: it keeps the requested scopes) with the UI's scopes.
pub async fn ui_client(gw: &Gateway) -> GatewayClient {
    GatewayClient::connect(
        ConnectOptions::new(gw.url())
            .token(&gw.token)
            .scopes(UI_SCOPES),
    )
    .await
    .expect("connect")
}

/// The error of a call that must fail.
pub async fn call_err(c: &GatewayClient, method: &str, params: Value) -> (String, String) {
    match c.call(method, Some(params)).await {
        Err(ClientError::Rpc(e)) => (e.code, e.message),
        other => panic!("{method}: expected an RPC error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_boot_call_answers_and_is_advertised() {
    let fake = FakeModel::start();
    let gw = builder(&fake, "").start();
    let c = ui_client(&gw).await;
    let advertised: Vec<String> = c.hello()["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let events: Vec<&str> = c.hello()["features"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for e in [
        "session.message",
        "sessions.changed",
        "chat",
        "agent",
        "presence",
    ] {
        assert!(events.contains(&e), "event {e} not declared: {events:?}");
    }
    // The boot sequence, in the UI's order, with the params it sends.
    let boot: &[(&str, Value)] = &[
        ("sessions.subscribe", json!({})),
        ("sessions.list", json!({})),
        ("config.get", json!({})),
        ("update.status", json!({})),
        ("plugins.controlUi.list", json!({})),
        ("agents.list", json!({})),
        ("exec.approval.list", json!({})),
        ("plugin.approval.list", json!({})),
        ("openclaw.approval.list", json!({})),
        ("agent.identity.get", json!({"agentId": "main"})),
        ("sessions.observer.visibility", json!({"visible": true})),
        ("users.prefs.get", json!({})),
        ("question.list", json!({})),
        (
            "chat.startup",
            json!({"sessionKey": "agent:main:main", "limit": 50}),
        ),
        ("models.authStatus", json!({"agentId": "main"})),
        ("diagnostics.lanes", json!({})),
        ("config.schema", json!({})),
        ("sessions.describe", json!({"key": "agent:main:main"})),
        (
            "sessions.messages.subscribe",
            json!({"key": "agent:main:main"}),
        ),
    ];
    let mut got = serde_json::Map::new();
    for (m, p) in boot {
        assert!(advertised.iter().any(|a| a == m), "{m} is not advertised");
        let v = c
            .call(m, Some(p.clone()))
            .await
            .unwrap_or_else(|e| panic!("{m} failed: {e}"));
        got.insert(m.to_string(), v);
    }
    assert_eq!(got["sessions.subscribe"], json!({"subscribed": true}));
    assert_eq!(
        got["update.status"],
        json!({"sentinel": null, "updateAvailable": null})
    );
    assert_eq!(
        got["plugins.controlUi.list"],
        json!({"revision": "135d4539612c195c5d51f2f3f944f6bc4d9a7645fb37f24d37c9c9d0eb039f4d",
               "plugins": [], "diagnostics": []})
    );
    for m in [
        "exec.approval.list",
        "plugin.approval.list",
        "openclaw.approval.list",
    ] {
        assert_eq!(got[m], json!([]), "{m}");
    }
    assert_eq!(
        got["agent.identity.get"],
        json!({"agentId": "main", "name": "Assistant", "nameSource": "default", "avatar": "A"})
    );
    assert_eq!(got["sessions.observer.visibility"], json!({"ok": true}));
    assert_eq!(
        got["users.prefs.get"],
        json!({"status": "no_durable_identity"})
    );
    assert_eq!(got["question.list"], json!({"questions": []}));
    // No transcript yet: an empty history of the main session with its defaults.
    let startup = &got["chat.startup"];
    assert_eq!(startup["sessionKey"], "agent:main:main");
    assert_eq!(startup["messages"], json!([]));
    assert_eq!(startup["defaults"]["modelProvider"], "fake");
    assert_eq!(startup["sessionInfo"]["isMain"], true);
    // The configured provider's key resolves: a static credential, never its value.
    let auth = &got["models.authStatus"];
    assert_eq!(
        auth["providers"],
        json!([{"provider": "fake", "authProvider": "fake", "displayName": "fake",
                "status": "static", "profiles": []}])
    );
    assert!(!auth.to_string().contains("fake-key"), "{auth}");
    let lanes = &got["diagnostics.lanes"];
    assert_eq!(lanes["lanes"][0]["lane"], "main");
    assert_eq!(lanes["lanes"][0]["activeCount"], 0);
    assert_eq!(lanes["dynamic"], Value::Null);
    let schema = &got["config.schema"];
    assert_eq!(
        schema["schema"]["properties"]["gateway"]["properties"]["port"]["maximum"],
        65535
    );
    assert!(schema["generatedAt"].as_str().unwrap().contains('T'));
    assert_eq!(got["sessions.describe"], json!({"session": null}));
    assert_eq!(
        got["sessions.messages.subscribe"],
        json!({"subscribed": true, "key": "agent:main:main"})
    );

    // Disabled features answer as upstream's do, naming what is missing.
    assert_eq!(
        call_err(&c, "plugin.surface.refresh", json!({"surface": "canvas"})).await,
        (
            "UNAVAILABLE".into(),
            "canvas plugin surface unavailable".into()
        )
    );
    assert_eq!(
        call_err(&c, "plugin.surface.refresh", json!({})).await,
        ("INVALID_REQUEST".into(), "surface required".into())
    );
    assert_eq!(
        call_err(
            &c,
            "sessions.observer.visibility",
            json!({"visible": "yes"})
        )
        .await
        .0,
        "INVALID_REQUEST"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_scopes_follow_upstreams_method_table() {
    let fake = FakeModel::start();
    let gw = builder(&fake, "").start();
    let read = GatewayClient::connect(
        ConnectOptions::new(gw.url())
            .token(&gw.token)
            .scopes(&["operator.read"]),
    )
    .await
    .unwrap();
    for (m, scope) in [
        ("update.status", "operator.admin"),
        ("exec.approval.list", "operator.approvals"),
        ("question.list", "operator.questions"),
        ("openclaw.setup.detect", "operator.admin"),
        ("chat.inject", "operator.admin"),
        ("config.patch", "operator.admin"),
        ("sessions.reset", "operator.admin"),
    ] {
        assert_eq!(
            call_err(&read, m, json!({})).await,
            ("FORBIDDEN".into(), format!("missing scope: {scope}")),
            "{m}"
        );
    }
    for m in [
        "plugins.controlUi.list",
        "diagnostics.lanes",
        "users.prefs.get",
    ] {
        read.call(m, Some(json!({})))
            .await
            .unwrap_or_else(|e| panic!("{m} with operator.read: {e}"));
    }
}

/// The chat, cron and tasks pages' reads of features this gateway does not have: every one
/// answers with upstream's top-level keys and an honest "nothing here", is advertised, and
/// is `operator.read` as in upstream's method table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_features_answer_empty_in_upstreams_shapes() {
    let fake = FakeModel::start();
    let gw = builder(&fake, "").start();
    let c = ui_client(&gw).await;
    let advertised: Vec<String> = c.hello()["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let key = "agent:main:main";
    // The params the official UI sends (frames.jsonl of the browser test).
    let calls: &[(&str, Value)] = &[
        (
            "cron.list",
            json!({"agentId": "main", "includeDisabled": true, "includeDeliveryPreviews": false,
                   "compact": true, "limit": 50, "offset": 0, "enabled": "all",
                   "sortBy": "nextRunAtMs", "sortDir": "asc"}),
        ),
        ("cron.status", json!({})),
        ("talk.catalog", json!({})),
        (
            "chat.metadata",
            json!({"agentId": "main", "sessionKey": key}),
        ),
        ("progressCard.get", json!({"sessionKey": key})),
        ("sessions.branches.list", json!({"sessionKey": key})),
        (
            "sessions.companion.state",
            json!({"sessionKey": key, "agentId": "main"}),
        ),
        (
            "tasks.list",
            json!({"sessionKey": key, "agentId": "main", "status": ["queued", "running"],
                   "limit": 200}),
        ),
        (
            "sessions.messages.subscribe",
            json!({"key": key, "includeApprovals": true}),
        ),
    ];
    let mut got = serde_json::Map::new();
    for (m, p) in calls {
        assert!(advertised.iter().any(|a| a == m), "{m} is not advertised");
        let v = c
            .call(m, Some(p.clone()))
            .await
            .unwrap_or_else(|e| panic!("{m} failed: {e}"));
        got.insert(m.to_string(), v);
    }
    let cron = &got["cron.list"];
    assert_eq!(cron["jobs"], json!([]));
    assert_eq!(cron["total"], 0);
    assert_eq!(cron["limit"], 50);
    assert_eq!(cron["hasMore"], false);
    assert_eq!(cron["nextOffset"], Value::Null);
    assert_eq!(
        cron["snapshotRevision"],
        "sha256:T1PNoYwrqgwDVLtfmj7L5e0Sq02OEbqHPC8RFhICuUU"
    );
    assert!(cron.get("deliveryPreviews").is_none(), "{cron}");
    assert_eq!(
        got["cron.status"],
        json!({"enabled": false, "triggersEnabled": false, "jobs": 0, "nextWakeAtMs": null})
    );
    let talk = &got["talk.catalog"];
    for k in [
        "modes",
        "transports",
        "brains",
        "speech",
        "transcription",
        "realtime",
    ] {
        assert!(talk.get(k).is_some(), "talk.catalog lacks {k}: {talk}");
    }
    assert_eq!(talk["realtime"], json!({"ready": false, "providers": []}));
    assert_eq!(
        talk["transcription"],
        json!({"ready": false, "providers": []})
    );
    assert_eq!(talk["speech"], json!({"providers": []}));
    let meta = &got["chat.metadata"];
    assert_eq!(meta["models"][0]["provider"], "fake", "{meta}");
    assert_eq!(meta["swarmEnabled"], false);
    assert_eq!(meta["accountSelection"]["kind"], "automatic");
    assert_eq!(meta["runtimeSelectionLocked"], false);
    assert_eq!(got["progressCard.get"], json!({"card": null}));
    assert_eq!(got["sessions.branches.list"], json!({"branches": []}));
    assert_eq!(got["sessions.companion.state"], json!({"exchanges": []}));
    assert_eq!(got["tasks.list"], json!({"tasks": []}));
    let sub = &got["sessions.messages.subscribe"];
    assert_eq!(sub["subscribed"], true);
    assert_eq!(sub["approvalReplay"]["sessionKey"], key);
    assert_eq!(sub["approvalReplay"]["approvals"], json!([]));
    assert_eq!(sub["approvalReplay"]["truncated"], false);
    assert!(sub["approvalReplay"]["updatedAtMs"].as_u64().unwrap() > 0);

    // The full cron page (not compact) carries the (empty) delivery previews.
    let full = c
        .call("cron.list", Some(json!({"includeDisabled": true})))
        .await
        .unwrap();
    assert_eq!(full["deliveryPreviews"], json!({}));

    // Bad input names what failed.
    assert_eq!(
        call_err(&c, "cron.list", json!({"sortBy": "color"}))
            .await
            .0,
        "INVALID_REQUEST"
    );
    assert!(
        call_err(&c, "tasks.list", json!({"status": "sleeping"}))
            .await
            .1
            .contains("/status")
    );
    assert_eq!(
        call_err(&c, "tasks.list", json!({"cursor": "x"})).await.1,
        "invalid or expired tasks.list cursor; restart pagination without a cursor"
    );
    assert_eq!(
        call_err(&c, "progressCard.get", json!({})).await,
        (
            "INVALID_REQUEST".into(),
            "invalid progressCard.get params: must have required property 'sessionKey'".into()
        )
    );
    assert!(
        call_err(
            &c,
            "sessions.branches.list",
            json!({"sessionKey": "agent:nobody:main"})
        )
        .await
        .1
        .contains("unknown agent id \"nobody\"")
    );
    assert_eq!(
        call_err(&c, "chat.metadata", json!({"authProfileId": "p1"}))
            .await
            .0,
        "FORBIDDEN"
    );

    // operator.read is enough for all of them; approval replay needs a reviewer.
    let read = GatewayClient::connect(
        ConnectOptions::new(gw.url())
            .token(&gw.token)
            .scopes(&["operator.read", "operator.approvals"]),
    )
    .await
    .unwrap();
    for (m, p) in &calls[..calls.len() - 1] {
        read.call(m, Some(p.clone()))
            .await
            .unwrap_or_else(|e| panic!("{m} with operator.read: {e}"));
    }
    assert_eq!(
        call_err(&read, "sessions.messages.subscribe", json!({"key": key, "includeApprovals": true}))
            .await,
        (
            "INVALID_REQUEST".into(),
            "sessions.messages.subscribe includeApprovals requires a paired device and gateway scope: operator.approvals".into()
        )
    );
}
