//! Fuzz harness bodies, one function per `cargo fuzz` target. Each takes the raw input bytes,
//! drives the real parsing/validation/dispatch code of the `openclaw` crate, and checks the
//! invariants every answer must keep (a panic is a finding).
//!
//! The same functions run from `fuzz/fuzz_targets/*.rs` (libFuzzer) and from the main crate's
//! integration tests (`tests/it/reliability_fuzz_corpus.rs`), which feed every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through them on every `cargo test`.
//!
//! This file must compile both as the `openclaw-fuzz` library and as a module of the test
//! binary, so it only uses crates both have: `openclaw`, `serde_json`, `tokio`, `tower`,
//! `tempfile`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openclaw::config::Config;
use openclaw::gateway::auth::{Mode, ResolvedAuth};
use openclaw::gateway::outbound::Outbound;
use openclaw::gateway::protocol::{self, Inbound, Preauth};
use openclaw::gateway::state::{ConnInfo, GatewayState};
use openclaw::gateway::ws::{PeerInfo, UpgradeMeta};
use serde_json::Value;

/// Every target by name (the corpus directories use these names).
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("frame_preauth", frame_preauth),
    ("frame_postauth", frame_postauth),
    ("connect_params", connect_params),
    ("config_load", config_load),
    ("http_tools_invoke", http_tools_invoke),
    ("launchctl_print", launchctl_print),
    ("plist_definition", plist_definition),
];

/// The token the harness gateway expects.
pub const TOKEN: &str = "fuzz-token-0123456789";

/// A gateway state built once per process (token auth, a private state dir).
pub struct Harness {
    /// The state every target shares.
    pub state: Arc<GatewayState>,
    /// Runs handlers and HTTP requests.
    pub rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// The shared harness.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("openclaw-fuzz-")
            .tempdir()
            .expect("temp state dir");
        let state_dir = dir.path().join(".openclaw");
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let config_path = state_dir.join("openclaw.json");
        let text = format!(
            "{{gateway:{{mode:'local',auth:{{mode:'token',token:'{TOKEN}',rateLimit:{{maxAttempts:1000000,windowMs:1000,lockoutMs:1,exemptLoopback:false}}}}}}}}"
        );
        std::fs::write(&config_path, &text).expect("config");
        let config = Config::load(&config_path).expect("harness config parses");
        let paths = openclaw::config::paths::Paths {
            profile: None,
            dev: false,
            home: dir.path().to_path_buf(),
            state_dir: state_dir.clone(),
            config_path,
            default_identity: false,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // The real wings (their routes), but only the core methods: the frame targets
        // dispatch arbitrary method names, and agent runs are not what they fuzz.
        let state = openclaw::testing::StateFixture::new(paths)
            .listen("127.0.0.1:18789".parse().unwrap())
            .config(config)
            .auth(ResolvedAuth {
                mode: Mode::Token,
                token: Some(TOKEN.into()),
                password: None,
                rate_limit: openclaw::config::RateLimitConfig {
                    max_attempts: 1_000_000,
                    window_ms: 1000,
                    lockout_ms: 1,
                    exempt_loopback: false,
                },
            })
            .methods(openclaw::gateway::methods::core_table())
            .build();
        Harness {
            state,
            rt,
            _dir: dir,
        }
    })
}

/// The Node client's frame guard for `res` frames (docs/protocol.md §1): non-empty string `id`,
/// boolean `ok`, `error` (if present) with string `code` + `message`, boolean `retryable?`,
/// non-negative integer `retryAfterMs?`. Also: the frame survives a JSON round trip.
pub fn assert_valid_res(frame: &Value) {
    assert_eq!(frame["type"], "res", "not a res frame: {frame}");
    let id = frame["id"].as_str().expect("res id is a string");
    assert!(!id.is_empty(), "res id is empty: {frame}");
    let ok = frame["ok"].as_bool().expect("res ok is a bool");
    if let Some(e) = frame.get("error") {
        assert!(!ok, "ok:true with an error: {frame}");
        assert!(e["code"].as_str().is_some_and(|c| !c.is_empty()));
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(r) = e.get("retryable") {
            assert!(r.is_boolean());
        }
        if let Some(r) = e.get("retryAfterMs") {
            assert!(r.as_u64().is_some(), "retryAfterMs not a non-negative int");
        }
    } else {
        assert!(ok, "ok:false without an error: {frame}");
    }
    let text = frame.to_string();
    let back: Value = serde_json::from_str(&text).expect("res serializes to JSON");
    assert_eq!(&back, frame);
}

/// Every string value (not key) in `v`.
fn string_values<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| string_values(x, out)),
        Value::Object(o) => o.values().for_each(|x| string_values(x, out)),
        _ => {}
    }
}

/// A response frame's text without its `id` (which echoes whatever the client sent).
fn without_id(frame: &Value) -> String {
    let mut f = frame.clone();
    if let Some(o) = f.as_object_mut() {
        o.remove("id");
    }
    f.to_string()
}

fn assert_close_reason(code: u16, reason: &str) {
    assert!(
        matches!(code, 1000 | 1002 | 1008 | 1009 | 1011 | 1012 | 1013),
        "unexpected close code {code}"
    );
    assert!(reason.len() <= 123, "close reason over 123 bytes");
}

fn peer(remote: &str) -> PeerInfo {
    PeerInfo {
        remote: remote.parse::<SocketAddr>().unwrap(),
        local: "127.0.0.1:18789".parse().unwrap(),
    }
}

/// Pre-handshake: the first frame's decode, then (for `connect`) the real admission, as a
/// direct-local CLI, as a browser with a foreign Origin, and as a remote peer.
pub fn frame_preauth(data: &[u8]) {
    match protocol::decode_preauth(data) {
        Preauth::TooLarge => assert!(data.len() > protocol::MAX_PREAUTH_PAYLOAD_BYTES),
        Preauth::NotJson => assert!(serde_json::from_slice::<Value>(data).is_err()),
        Preauth::InvalidFrame => {}
        Preauth::NotConnect { id, method, error } => {
            assert_ne!(method, "connect");
            assert_valid_res(&protocol::res_err(&id, &error));
            assert_close_reason(1008, &error.message);
        }
        Preauth::Connect { id, params } => {
            let h = harness();
            let metas = [
                (peer("127.0.0.1:40000"), UpgradeMeta::default()),
                (
                    peer("127.0.0.1:40001"),
                    UpgradeMeta {
                        origin: Some("https://evil.example".into()),
                        host: Some("127.0.0.1:18789".into()),
                        ..UpgradeMeta::default()
                    },
                ),
                (peer("192.0.2.7:40002"), UpgradeMeta::default()),
            ];
            for (p, meta) in metas {
                match openclaw::gateway::ws::connect(&h.state, &p, &meta, "conn-fuzz", &params) {
                    Ok(info) => {
                        // Only a direct-local cli/cli or gateway-client/backend keeps scopes.
                        if meta.origin.is_some() || !p.remote.ip().is_loopback() {
                            assert!(info.scopes.is_empty(), "scopes kept: {:?}", info.scopes);
                        }
                        assert!(
                            meta.origin.is_none(),
                            "a foreign Origin was admitted: {params}"
                        );
                        assert!(protocol::validate_connect_params(&params).is_ok());
                        let auth = params["auth"].clone();
                        let given = auth["token"].as_str().or(auth["password"].as_str());
                        assert_eq!(given, Some(TOKEN), "admitted without the token");
                    }
                    Err(r) => {
                        assert_close_reason(r.code, &r.reason);
                        if let Some(e) = &r.error {
                            let frame = protocol::res_err(&id, e);
                            assert_valid_res(&frame);
                            // The request id is echoed by design; a token the client put
                            // there is its own. Everything else must not carry it.
                            assert!(
                                !without_id(&frame).contains(TOKEN),
                                "error echoes the token"
                            );
                        }
                    }
                }
            }
        }
    }
}

fn admin_conn(scopes: &[&str], role: &str) -> ConnInfo {
    ConnInfo {
        id: "conn-fuzz".into(),
        client_id: "cli".into(),
        client_mode: "cli".into(),
        client_version: "0".into(),
        platform: "linux".into(),
        device_family: None,
        display_name: None,
        instance_id: None,
        role: role.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        caps: Vec::new(),
        remote: "127.0.0.1:40000".parse().unwrap(),
        connected_at_ms: 0,
        auth_method: "token",
        device_id: None,
    }
}

/// Post-handshake: decode, authorize (admin, read-only, no scopes, node role), and run the
/// handler of every authorized request; every answer must be a well-formed `res`.
pub fn frame_postauth(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let req = match protocol::decode_inbound(text) {
        Inbound::Ignore => {
            assert!(serde_json::from_str::<Value>(text).is_err());
            return;
        }
        Inbound::Reply(res) => {
            assert_valid_res(&res);
            assert_eq!(res["ok"], false);
            return;
        }
        Inbound::Request(r) => r,
    };
    assert_ne!(req.method, "connect");
    let client_sent_token = req.method.contains(TOKEN)
        || req
            .params
            .as_ref()
            .is_some_and(|p| p.to_string().contains(TOKEN));
    let h = harness();
    for (scopes, role) in [
        (&["operator.admin"][..], "operator"),
        (&["operator.read"][..], "operator"),
        (&[][..], "operator"),
        (&[][..], "node"),
    ] {
        let conn = Arc::new(admin_conn(scopes, role));
        match h
            .state
            .methods
            .authorize(&conn, &req.method, req.params.as_ref())
        {
            Err(e) => assert_valid_res(&protocol::res_err(&req.id, &e)),
            Ok(spec) => {
                let (out, mut rx) = Outbound::new(1 << 20);
                let ctx = openclaw::gateway::methods::Ctx::new(
                    h.state.clone(),
                    conn.clone(),
                    req.id.clone(),
                    req.params.clone(),
                    out,
                );
                let fut = (spec.handler)(ctx);
                let r = h
                    .rt
                    .block_on(async { tokio::time::timeout(Duration::from_secs(5), fut).await })
                    .expect("handler finished within 5 s");
                let frame = match r {
                    Ok(p) => protocol::res_ok(&req.id, p),
                    Err(e) => protocol::res_err(&req.id, &e),
                };
                assert_valid_res(&frame);
                // The configured token must never come back. The id is echoed by design,
                // and a method or params that themselves hold the token may be quoted in
                // an error: only a token the client did not send is a leak.
                if !client_sent_token {
                    assert!(
                        !without_id(&frame).contains(TOKEN),
                        "a response leaks the token"
                    );
                }
                while let Ok(m) = rx.try_recv() {
                    if let openclaw::gateway::outbound::OutMsg::Text(t) = m {
                        let v: Value = serde_json::from_str(&t).expect("interim frame is JSON");
                        assert_valid_res(&v);
                    }
                }
            }
        }
    }
}

/// `ConnectParams` validation on arbitrary JSON: never panics, messages have ajv's shape,
/// and anything accepted has the fields admission reads.
pub fn connect_params(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match protocol::validate_connect_params(&v) {
        Ok(()) => {
            let c = &v["client"];
            assert!(protocol::CLIENT_IDS.contains(&c["id"].as_str().unwrap()));
            assert!(protocol::CLIENT_MODES.contains(&c["mode"].as_str().unwrap()));
            assert!(!c["version"].as_str().unwrap().is_empty());
            let min = v["minProtocol"].as_f64().unwrap();
            let max = v["maxProtocol"].as_f64().unwrap();
            assert!(min >= 1.0 && max >= 1.0 && min.fract() == 0.0 && max.fract() == 0.0);
            let _ = protocol::protocol_acceptable(min as i64, max as i64, "cli", "operator");
        }
        Err(m) => {
            assert!(
                m.starts_with("must have required property '") || m.starts_with("at "),
                "unexpected message shape: {m}"
            );
            let e = protocol::ErrorShape::invalid(format!("invalid connect params: {m}"));
            assert_valid_res(&protocol::res_err("c1", &e));
        }
    }
}

/// The JSON5 config loader and validator, then everything the gateway derives from a config
/// that loaded: auth resolution (loopback and LAN), `config.get` (redacted), models, agents.
pub fn config_load(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let path = std::path::Path::new("/fuzz/openclaw.json");
    match Config::parse(path, text) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("/fuzz/openclaw.json"),
                "error names no file: {msg}"
            );
            assert_eq!(e.exit(), openclaw::error::Exit::Config);
        }
        Ok(cfg) => {
            assert!(cfg.doc.is_object());
            for bind in [
                openclaw::gateway::listener::Bind::Loopback,
                openclaw::gateway::listener::Bind::Lan,
            ] {
                let secrets = openclaw::config::secrets::SecretsSnapshot::default();
                match openclaw::gateway::resolve_auth(&Default::default(), &cfg, &bind, &secrets) {
                    Ok(a) => {
                        if !bind.is_loopback() {
                            assert_ne!(a.mode, Mode::None, "LAN bind without auth accepted");
                        }
                        let dbg = format!("{a:?}");
                        for secret in a.token.iter().chain(a.password.iter()) {
                            if secret.len() >= 8 && !"<redacted>".contains(secret.as_str()) {
                                assert!(!dbg.contains(secret.as_str()), "Debug shows a secret");
                            }
                        }
                    }
                    Err(p) => {
                        let _ = p.into_error().to_string();
                    }
                }
            }
            let payload = openclaw::gateway::methods::config_get_payload(&cfg);
            let (_, secrets) = openclaw::config::redact_secrets(&cfg.doc);
            // Values only: a secret that happens to equal a key name (`password`) is not shown
            // by printing that key.
            let mut shown = Vec::new();
            string_values(&payload["config"], &mut shown);
            for s in secrets.iter().filter(|s| s.len() >= 8) {
                assert!(!shown.contains(&s.as_str()), "config.get shows a secret");
            }
            let _ = openclaw::agent::config::default_agent_id(&cfg);
        }
    }
}

/// `POST /tools/invoke` through the real router: with the right bearer every body gets
/// 400/404/413 with a JSON error (never 5xx, never a panic); with a wrong one, always 401.
pub fn http_tools_invoke(data: &[u8]) {
    use tower::ServiceExt;
    let h = harness();
    for (bearer, expect_auth) in [(TOKEN, true), ("wrong-token", false)] {
        let app = openclaw::gateway::http::router(h.state.clone());
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/tools/invoke")
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(data.to_vec()))
            .unwrap();
        let (status, body) = h.rt.block_on(async {
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let body = axum::body::to_bytes(res.into_body(), 4 << 20)
                .await
                .expect("response body");
            (status, body)
        });
        if !expect_auth {
            assert_eq!(status, 401);
        } else {
            assert!(
                matches!(status, 400 | 404 | 413),
                "status {status} for body {:?}",
                String::from_utf8_lossy(data)
            );
        }
        if status != 413 {
            let v: Value = serde_json::from_slice(&body).expect("JSON error body");
            assert!(v.get("error").is_some(), "{v}");
        }
    }
}

/// `launchctl print` / `print-disabled` parsers (documented as NOT API: any text must parse to
/// something), and the drift check against a definition.
pub fn launchctl_print(data: &[u8]) {
    use openclaw::service::launchd::print;
    let text = String::from_utf8_lossy(data);
    let info = print::parse_print(&text);
    let _ = info.summary();
    let _ = info.is_running();
    let _ = info.last_exit.describe();
    let def = openclaw::service::launchd::plist::Definition {
        program_arguments: vec!["/usr/local/bin/openclaw".into(), "gateway".into()],
        environment: [("OPENCLAW_GATEWAY_PORT".to_string(), "18789".to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let _ = info.drift_from(&def);
    let _ = print::parse_print_disabled(&text);
}

/// The plist drift parser (`parse_definition`) on arbitrary bytes (XML or binary plists).
pub fn plist_definition(data: &[u8]) {
    let _ = openclaw::service::launchd::plist::parse_definition(data);
}

/// Reads the seed frames of a transcript (`{"dir","frame"}` lines): client frames only.
pub fn transcript_client_frames(jsonl: &str) -> Vec<Value> {
    jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["dir"] == "c2s")
        .filter_map(|v| v.get("frame").cloned())
        .collect()
}
