//! Config editing as the Control UI's settings pages do it, over WS: `config.patch|set|apply`
//! guarded by the base hash from `config.get`; stale or invalid edits refused with nothing
//! written; accepted edits written atomically (0600) and applied through hot reload; a
//! restart-requiring edit answered first and then restarting the gateway in-process; one that
//! would not start refused.
use openclaw::gateway::client::{ConnectOptions, GatewayClient};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

use crate::support::{Gateway, WAIT};
use crate::ui_methods_boot::{UI_SCOPES, call_err, ui_client};

fn read(gw: &Gateway) -> String {
    std::fs::read_to_string(gw.config_path()).unwrap()
}

async fn hash(c: &GatewayClient) -> String {
    c.call("config.get", Some(json!({}))).await.unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn line(gw: &Gateway, needle: &str) -> String {
    tokio::task::block_in_place(|| gw.wait_for_line(needle, WAIT)).unwrap_or_else(|| {
        panic!(
            "no log line containing {needle:?} within {WAIT:?}:\n{}",
            gw.stderr()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_writes_are_guarded_validated_and_hot_applied() {
    let gw = Gateway::builder().start();
    let c = ui_client(&gw).await;
    let original = read(&gw);
    let h0 = hash(&c).await;
    let patch = |raw: &str, base: Option<&str>| {
        let mut p = json!({"raw": raw});
        if let Some(b) = base {
            p["baseHash"] = b.into();
        }
        p
    };
    let hot = "{ agents: { defaults: { timeoutSeconds: 42 } } }";

    // The base-hash guard: missing or stale → refused, nothing written.
    assert_eq!(
        call_err(&c, "config.patch", patch(hot, None)).await,
        (
            "INVALID_REQUEST".into(),
            "config base hash required; re-run config.get and retry".into()
        )
    );
    assert_eq!(
        call_err(&c, "config.patch", patch(hot, Some("sha256:stale")))
            .await
            .1,
        "config changed since last load; re-run config.get and retry"
    );
    // An invalid value: refused naming the path and the rule; the last good config stays.
    assert_eq!(
        call_err(
            &c,
            "config.patch",
            patch("{ gateway: { port: 'x' } }", Some(&h0))
        )
        .await
        .1,
        "invalid config: gateway.port: must be an integer from 1 to 65535"
    );
    assert_eq!(
        call_err(&c, "config.patch", patch("{ broken", Some(&h0)))
            .await
            .0,
        "INVALID_REQUEST"
    );
    // A config the gateway could not start with (no auth off loopback): refused up front.
    let (code, msg) = call_err(
        &c,
        "config.patch",
        patch(
            "{ gateway: { bind: 'lan', auth: { mode: 'none' } } }",
            Some(&h0),
        ),
    )
    .await;
    assert_eq!(code, "INVALID_REQUEST");
    assert!(
        msg.starts_with("config.patch refused: the gateway could not start with this config:"),
        "{msg}"
    );
    assert_eq!(read(&gw), original, "nothing was written");
    assert_eq!(hash(&c).await, h0);

    // A hot change: written atomically (0600), applied before the answer.
    let r = c
        .call("config.patch", Some(patch(hot, Some(&h0))))
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(r["changedPaths"], json!(["agents.defaults.timeoutSeconds"]));
    assert!(r.get("restart").is_none(), "{r}");
    assert_eq!(r["sentinel"]["payload"]["stats"]["requiresRestart"], false);
    assert!(
        !r.to_string().contains(&gw.token),
        "the token is redacted: {r}"
    );
    let got = c.call("config.get", Some(json!({}))).await.unwrap();
    assert_eq!(got["parsed"]["agents"]["defaults"]["timeoutSeconds"], 42);
    assert_eq!(got["hash"], r["hash"]);
    let disk = read(&gw);
    assert!(disk.contains("42") && disk.contains(&gw.token), "{disk}");
    let mode = std::fs::metadata(gw.config_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The old hash is stale now.
    assert_eq!(
        call_err(&c, "config.patch", patch(hot, Some(&h0))).await.1,
        "config changed since last load; re-run config.get and retry"
    );

    // config.set with config.get's redacted text: the secret it stands for is kept.
    let h1 = got["hash"].as_str().unwrap().to_string();
    let mut doc: Value = serde_json::from_str(got["raw"].as_str().unwrap()).unwrap();
    assert_eq!(doc["gateway"]["auth"]["token"], "__OPENCLAW_REDACTED__");
    doc["agents"]["defaults"]["timeoutSeconds"] = json!(43);
    let r = c
        .call(
            "config.set",
            Some(json!({"raw": doc.to_string(), "baseHash": h1})),
        )
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    let disk = read(&gw);
    assert!(disk.contains(&gw.token), "real token kept: {disk}");
    assert!(!disk.contains("__OPENCLAW_REDACTED__"), "{disk}");
    // Still authenticated with the same token: a new connection works.
    let again = ui_client(&gw).await;
    let got = again.call("config.get", Some(json!({}))).await.unwrap();
    assert_eq!(got["parsed"]["agents"]["defaults"]["timeoutSeconds"], 43);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_requiring_patch_is_answered_then_restarts_in_process() {
    let gw = Gateway::builder().start();
    let mut c = GatewayClient::connect(
        ConnectOptions::new(gw.url())
            .token(&gw.token)
            .scopes(UI_SCOPES),
    )
    .await
    .unwrap();
    let pid = c.call("status", None).await.unwrap()["pid"].clone();
    let h = hash(&c).await;
    let r = c
        .call(
            "config.apply",
            Some(json!({
                "raw": read(&gw).replacen('{', "{ discovery: { wideArea: { enabled: true } },", 1),
                "baseHash": h,
                "note": "enable wide-area discovery",
            })),
        )
        .await
        .unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(r["restart"]["ok"], true);
    assert_eq!(r["restart"]["reason"], "config.apply");
    assert_eq!(r["sentinel"]["payload"]["kind"], "config-apply");
    assert_eq!(
        r["sentinel"]["payload"]["message"],
        "enable wide-area discovery"
    );
    assert_eq!(r["sentinel"]["payload"]["stats"]["requiresRestart"], true);
    // Then the restart: this socket is told and closed.
    assert!(c.wait_event("shutdown", WAIT).await.is_some());
    assert_eq!(
        c.closed(WAIT).await,
        Some((1012, "service restart".to_string()))
    );
    line(&gw, "restart mode: in-process restart").await;
    // The listening socket stayed open: the next generation serves the new config.
    let c2 = ui_client(&gw).await;
    assert_eq!(c2.call("status", None).await.unwrap()["pid"], pid);
    let got = c2.call("config.get", Some(json!({}))).await.unwrap();
    assert_eq!(got["parsed"]["discovery"]["wideArea"]["enabled"], true);
}
