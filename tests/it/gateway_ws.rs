//! The WebSocket protocol against a real gateway: every err-*, scopes-*, origin-*,
//! preauth-oversized, handshake-timeout and post-connect-bad-frames transcript, the happy path
//! with the core methods, events (health, tick, presence), rate limiting and shutdown.
use std::time::{Duration, Instant};

use openclaw::gateway::client::{ClientError, ConnectOptions, GatewayClient};
use serde_json::{Value, json};

use crate::support::{ALL, Gateway, Raw, WAIT, connect_params, hello};

const CORE_METHODS: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "system.info",
    "gateway.identity.get",
    "last-heartbeat",
    "config.get",
    "logs.tail",
    "models.list",
    "agents.list",
    "sessions.list",
    "node.list",
    "channels.status",
];

/// Sends `first` as the first frame and returns (error response if any, close).
async fn first_frame(gw: &Gateway, first: &str) -> (Option<Value>, (u16, String)) {
    let mut raw = Raw::connect(&gw.url()).await;
    raw.challenge().await;
    raw.send_text(first).await;
    let (close, seen) = raw.until_close().await;
    assert!(
        seen.len() <= 1,
        "at most one response before close: {seen:?}"
    );
    (seen.into_iter().next(), close)
}

#[tokio::test]
async fn err_transcripts_first_frame_and_connect_validation() {
    let gw = Gateway::builder().start();
    let tok = gw.token.clone();
    let conn = |params: Value| {
        json!({"type":"req","id":"x1","method":"connect","params":params}).to_string()
    };

    // err-first-not-connect
    let (res, close) = first_frame(
        &gw,
        r#"{"type":"req","id":"x1","method":"health","params":{}}"#,
    )
    .await;
    let msg = "invalid handshake: first request must be connect";
    assert_eq!(
        res.unwrap(),
        json!({"type":"res","id":"x1","ok":false,"error":{"code":"INVALID_REQUEST","message":msg}})
    );
    assert_eq!(close, (1008, msg.into()));

    // err-event-frame-first: no response, close 1008 "invalid request frame"
    let (res, close) = first_frame(&gw, r#"{"type":"event","event":"tick","payload":{}}"#).await;
    assert!(res.is_none());
    assert_eq!(close, (1008, "invalid request frame".into()));

    // err-nonjson-first: close 1000 ""
    let (res, close) = first_frame(&gw, "hello").await;
    assert!(res.is_none());
    assert_eq!(close, (1000, String::new()));

    // err-connect-missing-client / extra-field / bad-client-id
    let cases = [
        (
            json!({"minProtocol":4,"maxProtocol":4}),
            "invalid connect params: must have required property 'client'",
        ),
        (
            {
                let mut p = connect_params("cli", "cli", Some(&tok), ALL);
                p["foo"] = json!(1);
                p
            },
            "invalid connect params: at root: unexpected property 'foo'",
        ),
        (
            connect_params("mytool", "cli", Some(&tok), ALL),
            "invalid connect params: at /client/id: must be equal to one of the allowed values",
        ),
        (
            {
                let mut p = connect_params("cli", "cli", Some(&tok), ALL);
                p["role"] = json!("admin");
                p
            },
            "invalid role",
        ),
    ];
    for (params, msg) in cases {
        let (res, close) = first_frame(&gw, &conn(params)).await;
        assert_eq!(
            res.unwrap(),
            json!({"type":"res","id":"x1","ok":false,"error":{"code":"INVALID_REQUEST","message":msg}}),
            "{msg}"
        );
        assert_eq!(close, (1008, msg.to_string()));
    }

    // err-protocol-mismatch: 1002
    let mut p = connect_params("cli", "cli", Some(&tok), ALL);
    p["minProtocol"] = json!(3);
    p["maxProtocol"] = json!(3);
    let (res, close) = first_frame(&gw, &conn(p)).await;
    assert_eq!(
        res.unwrap()["error"],
        json!({"code":"INVALID_REQUEST","message":"protocol mismatch","details":{"code":"PROTOCOL_MISMATCH","clientMinProtocol":3,"clientMaxProtocol":3,"expectedProtocol":4,"minimumProbeProtocol":3}})
    );
    assert_eq!(close, (1002, "protocol mismatch".into()));

    // err-bad-token
    let (res, close) =
        first_frame(&gw, &conn(connect_params("cli", "cli", Some("wrong"), ALL))).await;
    let msg = "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)";
    assert_eq!(
        res.unwrap()["error"],
        json!({"code":"INVALID_REQUEST","message":msg,"details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch","canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"}})
    );
    assert_eq!(close, (1008, msg.into()));

    // err-no-auth
    let (res, close) = first_frame(&gw, &conn(connect_params("cli", "cli", None, ALL))).await;
    assert_eq!(
        res.unwrap()["error"],
        json!({"code":"NOT_PAIRED","message":"device identity required","details":{"code":"DEVICE_IDENTITY_REQUIRED"}})
    );
    assert_eq!(close, (1008, "device identity required".into()));
}

#[tokio::test]
async fn happy_path_hello_health_event_and_core_methods() {
    let gw = Gateway::builder().start();
    let (mut raw, h, first) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    assert_eq!(h["type"], "hello-ok");
    assert_eq!(h["protocol"], 4);
    assert!(
        h["server"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    for k in ["connId", "bootId"] {
        assert!(
            uuid::Uuid::parse_str(h["server"][k].as_str().unwrap()).is_ok(),
            "{k}"
        );
    }
    let methods: Vec<&str> = h["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for m in CORE_METHODS {
        assert!(methods.contains(m), "{m} advertised");
    }
    let events = h["features"]["events"].as_array().unwrap();
    for e in ["tick", "health", "presence", "shutdown"] {
        assert!(events.contains(&json!(e)), "{e} advertised");
    }
    let snap = &h["snapshot"];
    assert_eq!(snap["presence"][0]["mode"], "gateway");
    assert_eq!(snap["presence"][0]["reason"], "self");
    assert_eq!(snap["health"]["ok"], true);
    assert!(snap["stateVersion"]["presence"].as_u64().is_some());
    assert!(snap["stateVersion"]["health"].as_u64().is_some());
    assert!(snap["uptimeMs"].as_u64().is_some());
    assert_eq!(snap["authMode"], "token");
    assert_eq!(
        h["auth"],
        json!({"method":"token","role":"operator","scopes":["operator.read","operator.write","operator.admin"]})
    );
    assert_eq!(
        h["policy"],
        json!({"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000})
    );
    // health event, seq 1, with stateVersion
    assert_eq!(first["type"], "event");
    assert_eq!(first["event"], "health");
    assert_eq!(first["seq"], 1);
    assert!(first["stateVersion"]["health"].as_u64().is_some());
    assert_eq!(first["payload"]["ok"], true);

    for (i, m) in CORE_METHODS.iter().enumerate() {
        let id = format!("r{i}");
        raw.req(&id, m, Some(json!({}))).await;
        let res = raw.res(&id).await;
        assert_eq!(res["ok"], true, "{m}: {res}");
        let p = &res["payload"];
        match *m {
            "health" => {
                assert_eq!(p["ok"], true);
                assert!(p["eventLoop"]["delayP99Ms"].is_number());
            }
            "status" => assert_eq!(p["pid"], gw.pid()),
            "system-presence" => assert_eq!(p[0]["reason"], "self"),
            "system.info" => {
                assert_eq!(p["pid"], gw.pid());
                assert_eq!(p["port"], gw.port);
                assert!(p["cpuCount"].as_u64().unwrap() >= 1);
            }
            "gateway.identity.get" => {
                assert_eq!(p["deviceId"].as_str().unwrap().len(), 64);
                assert!(p["publicKey"].as_str().is_some());
            }
            "last-heartbeat" => assert!(p.is_null()),
            "config.get" => {
                assert_eq!(p["exists"], true);
                assert_eq!(p["parsed"]["gateway"]["mode"], "local");
                assert!(
                    !p.to_string().contains(&gw.token),
                    "config.get leaks the token"
                );
                assert_eq!(
                    p["parsed"]["gateway"]["auth"]["token"],
                    "__OPENCLAW_REDACTED__"
                );
            }
            "logs.tail" => assert!(p["lines"].is_array()),
            "models.list" => assert_eq!(p["models"], json!([])),
            "agents.list" => assert_eq!(p["defaultId"], "main"),
            "sessions.list" => assert_eq!(p["count"], 0),
            "node.list" => assert_eq!(p["nodes"], json!([])),
            "channels.status" => assert_eq!(p["channels"], json!({})),
            _ => unreachable!(),
        }
    }
    // health with no params key (as the official CLI sends it)
    raw.req("np", "health", None).await;
    assert_eq!(raw.res("np").await["ok"], true);
    // unknown method as admin
    raw.req("u1", "no.such.method", Some(json!({}))).await;
    assert_eq!(
        raw.res("u1").await,
        json!({"type":"res","id":"u1","ok":false,"error":{"code":"INVALID_REQUEST","message":"unknown method: no.such.method"}})
    );
}

fn forbidden_read() -> Value {
    json!({"code":"FORBIDDEN","message":"missing scope: operator.read","details":{"code":"MISSING_SCOPE","missingScope":"operator.read","requiredScopes":["operator.read"]}})
}

#[tokio::test]
async fn scope_transcripts() {
    let gw = Gateway::builder().start();
    let t = gw.token.clone();
    let url = gw.url();
    // scopes-cli-readonly: kept
    let (mut raw, h, _) = hello(
        &url,
        connect_params("cli", "cli", Some(&t), &["operator.read"]),
        &[],
    )
    .await;
    assert_eq!(h["auth"]["scopes"], json!(["operator.read"]));
    for (i, m) in ["health", "status", "config.get", "system-presence"]
        .iter()
        .enumerate()
    {
        raw.req(&format!("s{i}"), m, Some(json!({}))).await;
        assert_eq!(raw.res(&format!("s{i}")).await["ok"], true, "{m}");
    }
    // read cannot call an unknown method: scope check before existence
    raw.req("x", "no.such", None).await;
    assert_eq!(
        raw.res("x").await["error"]["message"],
        "missing scope: operator.admin"
    );

    // scopes-cli-noScopesField (scopes: []) and scopes-test-noDevice (cleared)
    for params in [
        connect_params("cli", "cli", Some(&t), &[]),
        connect_params("test", "test", Some(&t), ALL),
        connect_params("cli", "probe", Some(&t), &["operator.read"]),
    ] {
        let (mut raw, h, _) = hello(&url, params.clone(), &[]).await;
        assert_eq!(h["auth"]["scopes"], json!([]), "{params}");
        raw.req("s0", "health", Some(json!({}))).await;
        assert_eq!(raw.res("s0").await["ok"], true);
        for (i, m) in ["status", "config.get", "system-presence"]
            .iter()
            .enumerate()
        {
            let id = format!("s{}", i + 1);
            raw.req(&id, m, Some(json!({}))).await;
            let r = raw.res(&id).await;
            assert_eq!(r["ok"], false);
            assert_eq!(r["error"], forbidden_read(), "{m}");
        }
    }

    // scopes-backend-noDevice: gateway-client/backend keeps its scopes
    let (mut raw, h, _) = hello(
        &url,
        connect_params("gateway-client", "backend", Some(&t), ALL),
        &[],
    )
    .await;
    assert_eq!(h["auth"]["scopes"], json!(ALL));
    raw.req("s1", "status", None).await;
    assert_eq!(raw.res("s1").await["ok"], true);

    // scopes-header-cap
    let (_raw, h, _) = hello(
        &url,
        connect_params("cli", "cli", Some(&t), ALL),
        &[("x-openclaw-scopes", "operator.read")],
    )
    .await;
    assert_eq!(h["auth"]["scopes"], json!(["operator.read"]));
    let (_raw, h, _) = hello(
        &url,
        connect_params("cli", "cli", Some(&t), ALL),
        &[("x-openclaw-scopes", "")],
    )
    .await;
    assert_eq!(h["auth"]["scopes"], json!([]));
}

#[tokio::test]
async fn origin_transcripts() {
    let gw = Gateway::builder().start();
    let params = connect_params("cli", "cli", Some(&gw.token), ALL);
    // origin-localhost: accepted, scopes cleared
    let (_raw, h, _) = hello(
        &gw.url(),
        params.clone(),
        &[("origin", &format!("http://127.0.0.1:{}", gw.port))],
    )
    .await;
    assert_eq!(h["auth"]["scopes"], json!([]));
    // origin-foreign: rejected 1008
    let mut raw = Raw::connect_with(&gw.url(), &[("origin", "https://evil.example")]).await;
    raw.challenge().await;
    raw.req("c1", "connect", Some(params)).await;
    let ((code, reason), seen) = raw.until_close().await;
    let msg = "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)";
    assert_eq!(
        seen,
        vec![
            json!({"type":"res","id":"c1","ok":false,"error":{"code":"INVALID_REQUEST","message":msg,"details":{"code":"CONTROL_UI_ORIGIN_NOT_ALLOWED","reason":"origin not allowed"}}})
        ]
    );
    assert_eq!((code, reason.as_str()), (1008, &msg[..msg.len().min(120)]));
}

#[tokio::test]
async fn preauth_oversized_frame_closes_1009_and_any_path_upgrades() {
    let gw = Gateway::builder().start();
    let mut raw = Raw::connect(&format!("{}/foo/bar", gw.url())).await;
    raw.challenge().await;
    let mut p = connect_params("cli", "cli", Some(&gw.token), ALL);
    p["userAgent"] = json!("x".repeat(70_000));
    raw.req("c1", "connect", Some(p)).await;
    let (close, seen) = raw.until_close().await;
    assert!(seen.is_empty());
    assert_eq!(close, (1009, String::new()));
}

#[tokio::test]
async fn handshake_timeout_closes_1000() {
    let gw = Gateway::builder()
        .env("OPENCLAW_HANDSHAKE_TIMEOUT_MS", "400")
        .start();
    let mut raw = Raw::connect(&gw.url()).await;
    let t0 = Instant::now();
    raw.challenge().await;
    let (close, seen) = raw.until_close().await;
    assert!(seen.is_empty());
    assert_eq!(close, (1000, String::new()));
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "closed too early: {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn post_connect_bad_frames_transcript() {
    let gw = Gateway::builder().start();
    let (mut raw, _h, _health) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    raw.send_text(r#"{"type":"req","method":"health"}"#).await;
    raw.send_text("not json").await;
    raw.send_text(r#"{"type":"req","id":"dup","method":"health","extra":1}"#)
        .await;
    raw.send_text(r#"{"type":"req","id":"n1","method":"node.event","params":{"event":"x"}}"#)
        .await;
    raw.req(
        "c2",
        "connect",
        Some(connect_params("cli", "cli", Some(&gw.token), ALL)),
    )
    .await;
    raw.req("h2", "health", None).await;
    let mut got = std::collections::HashMap::new();
    while got.len() < 5 {
        let v = raw.json().await;
        if v["type"] == "res" {
            got.insert(v["id"].as_str().unwrap().to_string(), v);
        }
    }
    let err = |id: &str, msg: &str| json!({"type":"res","id":id,"ok":false,"error":{"code":"INVALID_REQUEST","message":msg}});
    assert_eq!(
        got["invalid"],
        err(
            "invalid",
            "invalid request frame: must have required property 'id'"
        )
    );
    assert_eq!(
        got["dup"],
        err(
            "dup",
            "invalid request frame: at root: unexpected property 'extra'"
        )
    );
    assert_eq!(got["n1"], err("n1", "unauthorized role: operator"));
    assert_eq!(
        got["c2"],
        err("c2", "connect is only valid as the first request")
    );
    assert_eq!(got["h2"]["ok"], true);
    // Socket still open after garbage.
    raw.req("h3", "health", None).await;
    assert_eq!(raw.res("h3").await["ok"], true);

    // More than 10 role-gate failures in a row close the socket.
    for i in 0..11 {
        raw.req(&format!("n{i}"), "node.event", None).await;
    }
    let ((code, reason), _) = raw.until_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "repeated unauthorized calls")
    );
}

#[tokio::test]
async fn ticks_and_presence_events() {
    let gw = Gateway::builder()
        .env("OPENCLAW_TICK_INTERVAL_MS", "150")
        .start();
    let (mut a, h, first) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    assert_eq!(h["policy"]["tickIntervalMs"], 150);
    assert_eq!(first["seq"], 1);
    // ticks carry consecutive seqs
    let mut last = 1u64;
    let mut ticks = 0;
    while ticks < 2 {
        let v = a.json().await;
        if v["event"] == "tick" {
            assert!(v["payload"]["ts"].as_u64().is_some());
            assert_eq!(
                v["payload"].as_object().unwrap().len(),
                1,
                "tick payload is closed {{ts}}"
            );
            ticks += 1;
        }
        let seq = v["seq"].as_u64().unwrap();
        assert_eq!(seq, last + 1, "seq without gaps: {v}");
        last = seq;
    }
    // a non-ephemeral client connecting and leaving produces presence events for A
    let sv_before = h["snapshot"]["stateVersion"]["presence"].as_u64().unwrap();
    let (b, _, _) = hello(
        &gw.url(),
        connect_params("test", "test", Some(&gw.token), &[]),
        &[],
    )
    .await;
    let deadline = Instant::now() + WAIT;
    let ev = loop {
        assert!(Instant::now() < deadline);
        let v = a.json().await;
        if v["event"] == "presence" {
            break v;
        }
    };
    assert!(ev["stateVersion"]["presence"].as_u64().unwrap() > sv_before);
    let list = ev["payload"]["presence"].as_array().unwrap();
    assert_eq!(list[0]["reason"], "self");
    assert!(
        list.iter()
            .any(|e| e["clientId"] == "test" && e["reason"] == "connect")
    );
    drop(b);
    let ev = loop {
        let v = a.json().await;
        if v["event"] == "presence" {
            break v;
        }
    };
    let list = ev["payload"]["presence"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|e| e["clientId"] == "test" && e["reason"] == "disconnect")
    );
}

#[tokio::test]
async fn shutdown_event_then_1012_and_clean_exit() {
    let mut gw = Gateway::builder().start();
    let (mut raw, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    // a second socket still in the handshake is closed too
    let mut pending = Raw::connect(&gw.url()).await;
    pending.challenge().await;
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    let ((code, reason), seen) = raw.until_close().await;
    let shutdown: Vec<&Value> = seen.iter().filter(|v| v["event"] == "shutdown").collect();
    assert_eq!(shutdown.len(), 1, "{seen:?}");
    assert_eq!(
        shutdown[0]["payload"],
        json!({"reason": "gateway stopping"})
    );
    assert!(shutdown[0]["seq"].as_u64().is_some());
    assert_eq!((code, reason.as_str()), (1012, "service restart"));
    let ((code, _), _) = pending.until_close().await;
    assert_eq!(code, 1012);
    let st = gw.wait_exit(WAIT).expect("gateway exits after SIGTERM");
    assert!(st.success(), "{st}");
    assert!(
        gw.stderr().contains("shutdown completed cleanly"),
        "{}",
        gw.stderr()
    );
}

#[tokio::test]
async fn auth_rate_limit_and_loopback_exemption() {
    // Default: loopback is exempt, so many failures never lock out the right token.
    let gw = Gateway::builder().start();
    for _ in 0..12 {
        let mut raw = Raw::connect(&gw.url()).await;
        raw.challenge().await;
        raw.req(
            "c",
            "connect",
            Some(connect_params("cli", "cli", Some("bad"), ALL)),
        )
        .await;
        let (close, _) = raw.until_close().await;
        assert_eq!(close.0, 1008);
    }
    let (_r, h, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    assert_eq!(h["type"], "hello-ok");

    // With exemptLoopback:false the third attempt is rate limited, even with the right token.
    let tok = crate::support::random_token();
    let gw = Gateway::builder()
        .config(&format!(
            "{{gateway:{{mode:'local',auth:{{token:'{tok}',rateLimit:{{maxAttempts:2,windowMs:60000,lockoutMs:60000,exemptLoopback:false}}}}}}}}"
        ))
        .start();
    for _ in 0..2 {
        let mut raw = Raw::connect(&gw.url()).await;
        raw.challenge().await;
        raw.req(
            "c",
            "connect",
            Some(connect_params("cli", "cli", Some("bad"), ALL)),
        )
        .await;
        let (_, seen) = raw.until_close().await;
        assert_eq!(seen[0]["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    let mut raw = Raw::connect(&gw.url()).await;
    raw.challenge().await;
    raw.req(
        "c",
        "connect",
        Some(connect_params("cli", "cli", Some(&tok), ALL)),
    )
    .await;
    let ((code, reason), seen) = raw.until_close().await;
    let e = &seen[0]["error"];
    assert_eq!(
        e["message"],
        "unauthorized: too many failed authentication attempts (retry later)"
    );
    assert_eq!(e["details"]["code"], "AUTH_RATE_LIMITED");
    assert_eq!(e["retryable"], true);
    assert!(e["retryAfterMs"].as_u64().unwrap() > 0);
    assert_eq!(code, 1008);
    assert_eq!(reason, e["message"].as_str().unwrap());
}

#[tokio::test]
async fn logs_tail_cursor_follows_new_lines() {
    let gw = Gateway::builder().start();
    let (mut raw, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    raw.req("l1", "logs.tail", Some(json!({"limit": 3}))).await;
    let p = raw.res("l1").await["payload"].clone();
    let file = p["file"].as_str().unwrap();
    assert!(file.starts_with(gw.log_dir().to_str().unwrap()), "{file}");
    assert!(file.contains("openclaw-") && file.ends_with(".log"));
    let lines = p["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 3);
    for l in lines {
        let rec: Value = serde_json::from_str(l.as_str().unwrap()).unwrap();
        assert!(rec["message"].is_string() && rec["time"].is_string());
    }
    let cursor = p["cursor"].as_u64().unwrap();
    assert_eq!(cursor, p["size"].as_u64().unwrap());
    // a second client connecting logs a line; the cursor returns only what is new
    let (_b, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        raw.req("l2", "logs.tail", Some(json!({"cursor": cursor})))
            .await;
        let p2 = raw.res("l2").await["payload"].clone();
        let new = p2["lines"].as_array().unwrap().clone();
        if new
            .iter()
            .any(|l| l.as_str().unwrap().contains("client connected"))
        {
            assert_eq!(p2["reset"], false);
            assert!(p2["cursor"].as_u64().unwrap() > cursor);
            break;
        }
        assert!(Instant::now() < deadline, "no new log line after connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // invalid param type
    raw.req("l3", "logs.tail", Some(json!({"limit": "x"})))
        .await;
    assert_eq!(
        raw.res("l3").await["error"]["message"],
        "invalid logs.tail params: at /limit: must be number"
    );
}

#[tokio::test]
async fn protocol_client_connects_calls_and_maps_errors() {
    let gw = Gateway::builder().start();
    let c = GatewayClient::connect(ConnectOptions::new(gw.url()).token(&gw.token).scopes(ALL))
        .await
        .unwrap();
    assert_eq!(c.hello()["type"], "hello-ok");
    let h = c.call("health", None).await.unwrap();
    assert_eq!(h["ok"], true);
    match c.call("no.such", Some(json!({}))).await {
        Err(ClientError::Rpc(e)) => assert_eq!(e.message, "unknown method: no.such"),
        other => panic!("{other:?}"),
    }
    let ro = GatewayClient::connect(ConnectOptions::new(gw.url()).token(&gw.token).scopes(&[]))
        .await
        .unwrap();
    match ro.call("status", None).await {
        Err(ClientError::Rpc(e)) => assert_eq!(e.code, "FORBIDDEN"),
        other => panic!("{other:?}"),
    }
    match GatewayClient::connect(ConnectOptions::new(gw.url()).token("nope")).await {
        Err(ClientError::Rpc(e)) => assert_eq!(e.details.unwrap()["code"], "AUTH_TOKEN_MISMATCH"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn control_ui_client_without_device_is_refused() {
    let gw = Gateway::builder().start();
    let mut raw = Raw::connect(&gw.url()).await;
    raw.challenge().await;
    raw.req(
        "c1",
        "connect",
        Some(connect_params(
            "openclaw-control-ui",
            "ui",
            Some(&gw.token),
            ALL,
        )),
    )
    .await;
    let ((code, _), seen) = raw.until_close().await;
    assert_eq!(code, 1008);
    assert_eq!(
        seen[0]["error"]["details"]["code"],
        "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"
    );
    // the gateway keeps serving
    let (_r, h, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), ALL),
        &[],
    )
    .await;
    assert_eq!(h["type"], "hello-ok");
}
