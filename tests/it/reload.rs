//! Config hot reload against a real gateway process: edits of its config file (saved the way
//! editors do, by rename), SIGHUP, token rotation, restarts. Waits are event-driven: the
//! gateway's log lines, WebSocket closes, or RPC answers.
use std::time::Duration;

use openclaw::gateway::client::{ConnectOptions, GatewayClient};
use serde_json::{Value, json};

use crate::support::{Gateway, WAIT, command, random_token, run_to_exit};

/// Saves `text` as the gateway's config the way editors do: temp file + rename.
fn save(gw: &Gateway, text: &str) {
    let p = gw.config_path();
    let tmp = p.with_file_name(".openclaw.json.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
}

fn config(token: &str, extra: &str) -> String {
    format!(
        "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }} }}, {extra} }}"
    )
}

async fn connect(gw: &Gateway, token: &str) -> Result<GatewayClient, String> {
    GatewayClient::connect(
        ConnectOptions::new(gw.url())
            .token(token)
            .scopes(&["operator.admin"]),
    )
    .await
    .map_err(|e| e.to_string())
}

async fn reload_status(c: &GatewayClient) -> Value {
    c.call("health", None).await.expect("health")["configReload"].clone()
}

/// Waits (in a blocking thread) for a gateway log line.
async fn line(gw: &Gateway, needle: &str) -> String {
    tokio::task::block_in_place(|| gw.wait_for_line(needle, WAIT)).unwrap_or_else(|| {
        panic!(
            "no log line containing {needle:?} within {WAIT:?}:\n{}",
            gw.stderr()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_change_applies_without_dropping_a_connected_client() {
    let gw = Gateway::builder().start();
    let mut c = connect(&gw, &gw.token).await.unwrap();
    let before = reload_status(&c).await;
    assert_eq!(before["generation"], json!(0));
    assert_eq!(before["mode"], json!("hybrid"));
    assert_eq!(before["supervisor"], json!("none"));
    assert_eq!(before["watching"], json!(true));

    save(
        &gw,
        &config(
            &gw.token,
            "logging: { level: 'debug' }, tools: { allow: ['x'] }",
        ),
    );
    let l = line(&gw, "config hot reload applied").await;
    assert!(
        l.contains("logging.level") && l.contains("tools.allow"),
        "{l}"
    );

    // Same connection, new config.
    let st = reload_status(&c).await;
    assert_eq!(st["generation"], json!(1));
    assert_eq!(st["lastResult"], json!("applied"));
    assert_eq!(st["lastTrigger"], json!("file"));
    assert_eq!(st["lastChanged"], json!(["logging.level", "tools.allow"]));
    assert_eq!(st["restarts"], json!(0));
    let cfg = c.call("config.get", None).await.unwrap();
    assert_eq!(cfg["parsed"]["logging"]["level"], json!("debug"), "{cfg}");
    assert!(
        c.closed(Duration::from_millis(1)).await.is_none(),
        "client still connected"
    );

    // Saving identical content again changes nothing (no new evaluation).
    save(
        &gw,
        &config(
            &gw.token,
            "logging: { level: 'debug' }, tools: { allow: ['x'] }",
        ),
    );
    // SIGHUP is an explicit reload: it is evaluated (and finds nothing to change).
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    line(&gw, "config reload: no changes").await;
    let st = reload_status(&c).await;
    assert_eq!(st["lastTrigger"], json!("signal"));
    assert_eq!(st["generation"], json!(1));
    assert_eq!(
        st["evaluations"],
        json!(2),
        "the identical save was not evaluated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_required_change_restarts_in_process_keeping_the_socket() {
    let gw = Gateway::builder().start();
    let mut c = connect(&gw, &gw.token).await.unwrap();
    let pid_before = c.call("status", None).await.unwrap()["pid"].clone();

    save(
        &gw,
        &config(&gw.token, "").replace(
            "mode: 'local',",
            "mode: 'local', controlUi: { basePath: '/ui2' },",
        ),
    );
    let l = line(&gw, "config change requires gateway restart").await;
    assert!(l.contains("gateway.controlUi.basePath"), "{l}");
    // Clients are told and closed like on a stop.
    let shutdown = c
        .wait_event("shutdown", WAIT)
        .await
        .expect("shutdown event");
    assert_eq!(shutdown.payload["reason"], json!("gateway restarting"));
    assert_eq!(
        c.closed(WAIT).await,
        Some((1012, "service restart".to_string()))
    );

    // While the next generation comes up, the listening socket stays open: connections are
    // queued, never refused.
    let port = gw.port;
    let probe = std::thread::spawn(move || {
        let mut served = 0;
        for _ in 0..200 {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection refused during restart: {e}"));
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            if buf.starts_with(b"HTTP/1.1 200") {
                served += 1;
                if served >= 3 {
                    return served;
                }
            }
        }
        served
    });
    line(&gw, "restart mode: in-process restart").await;
    line(&gw, "listening on ws://127.0.0.1").await;
    assert!(
        probe.join().unwrap() >= 3,
        "healthz served across the restart"
    );

    // Same process, same port, config re-read from disk.
    let c2 = connect(&gw, &gw.token).await.unwrap();
    let status = c2.call("status", None).await.unwrap();
    assert_eq!(status["pid"], pid_before);
    assert_eq!(status["configReload"]["restarts"], json!(1));
    assert_eq!(status["configReload"]["lastResult"], json!("restart"));
    let cfg = c2.call("config.get", None).await.unwrap();
    assert_eq!(
        cfg["parsed"]["gateway"]["controlUi"]["basePath"],
        json!("/ui2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_json5_keeps_serving_the_last_good_config_and_reports_it() {
    let gw = Gateway::builder().start();
    let mut c = connect(&gw, &gw.token).await.unwrap();
    let broken = format!(
        "{{\n  gateway: {{\n    mode: 'local'\n    port: 1,\n    auth: {{ token: '{}' }}\n  }}\n}}",
        gw.token
    );
    save(&gw, &broken);
    let l = line(&gw, "config reload skipped (invalid config)").await;
    let path = gw.config_path().display().to_string();
    assert!(
        l.contains(&format!("{path}:4:")),
        "file:line in the warning: {l}"
    );

    let st = reload_status(&c).await;
    assert_eq!(st["lastResult"], json!("rejected"));
    assert_eq!(st["lastError"]["file"], json!(path));
    assert_eq!(st["lastError"]["line"], json!(4));
    assert_eq!(st["generation"], json!(0));
    // Still serving, same connection, old config.
    let cfg = c.call("config.get", None).await.unwrap();
    assert_eq!(cfg["parsed"]["gateway"]["port"], Value::Null);
    assert!(c.closed(Duration::from_millis(1)).await.is_none());

    // A SIGHUP with the same broken file is evaluated again but warns only once.
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    line(&gw, "received SIGHUP").await;
    line(&gw, "still invalid (already reported)").await;
    assert_eq!(reload_status(&c).await["evaluations"], json!(2));
    assert_eq!(
        gw.stderr().matches("config reload skipped").count(),
        1,
        "{}",
        gw.stderr()
    );

    // Fixing the file clears the error.
    save(&gw, &config(&gw.token, "logging: { level: 'info' }"));
    line(&gw, "config hot reload applied").await;
    let st = reload_status(&c).await;
    assert_eq!(st["lastError"], Value::Null);
    assert_eq!(st["generation"], json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotation_closes_old_sessions_with_4001_while_the_new_token_connects() {
    let gw = Gateway::builder().start();
    let old = gw.token.clone();
    let mut a = connect(&gw, &old).await.unwrap();
    let new = random_token();
    save(&gw, &config(&new, ""));
    assert_eq!(
        a.closed(WAIT).await,
        Some((4001, "gateway auth changed".to_string()))
    );
    let l = line(&gw, "config hot reload applied").await;
    assert!(l.contains("gateway.auth.token"), "{l}");
    let b = connect(&gw, &new).await.expect("the new token connects");
    let err = connect(&gw, &old).await.unwrap_err();
    assert!(err.contains("token mismatch"), "{err}");
    let st = reload_status(&b).await;
    assert_eq!(
        (st["restarts"].clone(), st["generation"].clone()),
        (json!(0), json!(1))
    );
    // Secrets never reach the logs.
    assert!(!gw.stderr().contains(&new) && !gw.stderr().contains(&old));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_mode_reports_restart_required_changes_as_pending() {
    let token = random_token();
    let text = |port: u16| {
        format!(
            "{{ gateway: {{ mode: 'local', port: {port}, reload: {{ mode: 'hot' }}, auth: {{ token: '{token}' }} }} }}"
        )
    };
    let gw = Gateway::builder().config(&text(1)).start();
    let c = connect(&gw, &token).await.unwrap();
    save(&gw, &text(2));
    line(&gw, "config changes need a gateway restart and are pending").await;
    let st = reload_status(&c).await;
    assert_eq!(st["mode"], json!("hot"));
    assert_eq!(st["pending"], json!(["gateway.port"]));
    assert_eq!(st["restarts"], json!(0));
    let status = c.call("status", None).await.unwrap();
    assert_eq!(status["configReload"]["pending"], json!(["gateway.port"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstartable_candidate_is_rejected_before_anything_restarts() {
    let gw = Gateway::builder().start();
    let c = connect(&gw, &gw.token).await.unwrap();
    // A non-loopback bind without auth would refuse to start: the restart never happens.
    save(
        &gw,
        "{ gateway: { mode: 'local', bind: 'lan', auth: { mode: 'none' } } }",
    );
    let l = line(&gw, "config reload skipped").await;
    assert!(l.contains("without auth"), "{l}");
    let st = reload_status(&c).await;
    assert_eq!(st["restarts"], json!(0));
    assert_eq!(st["lastResult"], json!("rejected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_restart_exits_75_for_the_service_manager() {
    let mut gw = Gateway::builder()
        .env("OPENCLAW_SUPERVISOR_MODE", "systemd")
        .start();
    let c = connect(&gw, &gw.token).await.unwrap();
    assert_eq!(reload_status(&c).await["supervisor"], json!("systemd"));
    save(
        &gw,
        &config(&gw.token, "").replace(
            "mode: 'local',",
            "mode: 'local', controlUi: { basePath: '/x' },",
        ),
    );
    line(&gw, "full process restart").await;
    let st = tokio::task::block_in_place(|| gw.wait_exit(WAIT)).expect("exit");
    assert_eq!(st.code(), Some(75), "{}", gw.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_refs_resolve_rotate_with_secrets_reload_and_fail_closed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway-token");
    let write_secret = |v: &str, mode: u32| {
        std::fs::write(&file, v).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let t1 = random_token();
    write_secret(&format!("{t1}\n"), 0o600);
    let cfg = format!(
        "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: {{ source: 'file', provider: 'tok', id: 'value' }} }} }},
           models: {{ providers: {{ openai: {{ apiKey: '${{OPENCLAW_IT_OPENAI_KEY}}' }} }} }},
           secrets: {{ providers: {{ tok: {{ source: 'file', path: '{}', mode: 'singleValue' }} }} }} }}",
        file.display()
    );
    let gw = Gateway::builder()
        .config(&cfg)
        .env("OPENCLAW_IT_OPENAI_KEY", "sk-it-real-env")
        .start();
    let mut a = connect(&gw, &t1)
        .await
        .expect("token from the file provider");
    let status = a.call("status", None).await.unwrap();
    assert_eq!(status["degradedSecretOwners"], json!([]));

    // Rotate the file, then secrets.reload: the caller gets its answer, then 4001.
    let t2 = random_token();
    write_secret(&t2, 0o600);
    let report = a.call("secrets.reload", None).await.unwrap();
    assert_eq!(report["ok"], json!(true), "{report}");
    assert_eq!(report["applied"], json!(true));
    assert_eq!(report["resolved"], json!(2), "file token + real env apiKey");
    assert_eq!(
        a.closed(WAIT).await,
        Some((4001, "gateway auth changed".to_string()))
    );
    assert!(connect(&gw, &t1).await.is_err());
    connect(&gw, &t2).await.expect("rotated token connects");

    // Loosened permissions: the CLI reports the failing ref; the last good token stays.
    write_secret(&t2, 0o644);
    let mut cli = command(gw.home.path());
    cli.args([
        "secrets",
        "reload",
        "--json",
        "--port",
        &gw.port.to_string(),
        "--token",
        &t2,
    ]);
    let out = run_to_exit(&mut cli, tempfile::tempdir().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], json!(false));
    assert_eq!(report["failures"][0]["path"], json!("gateway.auth.token"));
    assert_eq!(report["failures"][0]["state"], json!("stale"));
    assert!(
        report["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("chmod 600"),
        "{report}"
    );
    let b = connect(&gw, &t2).await.expect("stale value keeps working");
    let status = b.call("status", None).await.unwrap();
    assert_eq!(
        status["degradedSecretOwners"][0]["path"],
        json!("gateway.auth.token")
    );
    // Human output names the failure too.
    let mut cli = command(gw.home.path());
    cli.args([
        "secrets",
        "reload",
        "--port",
        &gw.port.to_string(),
        "--token",
        &t2,
    ]);
    let out = run_to_exit(&mut cli, tempfile::tempdir().unwrap());
    assert!(
        out.stdout.contains("gateway.auth.token (file:tok:value)"),
        "{}",
        out.stdout
    );

    // No secret value ever reached the logs or the CLI output.
    for secret in [&t1, &t2, &"sk-it-real-env".to_string()] {
        assert!(
            !gw.stderr().contains(secret.as_str()),
            "secret in gateway log"
        );
        assert!(
            !out.stdout.contains(secret.as_str()),
            "secret in CLI output"
        );
    }
}

#[test]
fn unresolvable_gateway_auth_ref_refuses_to_start() {
    let out = Gateway::builder()
        .config("{ gateway: { mode: 'local', auth: { token: '${OPENCLAW_IT_SURELY_UNSET}' } } }")
        .run_to_exit();
    assert_eq!(out.status.code(), Some(78), "{}", out.stderr);
    assert!(
        out.stderr.contains("OPENCLAW_IT_SURELY_UNSET") && out.stderr.contains("fail closed"),
        "{}",
        out.stderr
    );
    // Nothing was generated or written in its place.
    let cfg = std::fs::read_to_string(out.home.path().join(".openclaw/openclaw.json")).unwrap();
    assert!(cfg.contains("${OPENCLAW_IT_SURELY_UNSET}"), "{cfg}");
}
