//! Startup: refusals (exact strings, exit 78), occupied port, `--init`, token generation,
//! secrets never logged, `--force`, port precedence, `setup` and `gateway auth-token`.
use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::support::{ALL, Gateway, WAIT, command, connect_params, free_port, hello, run_to_exit};

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.contains(" INFO ") && !l.contains(" WARN "))
        .unwrap_or("")
}

#[test]
fn refusals_exit_78_with_upstream_strings() {
    let f = Gateway::builder().no_config().run_to_exit();
    assert_eq!(f.status.code(), Some(78), "{}", f.stderr);
    assert_eq!(
        first_line(&f.stderr),
        "Missing config. Run `openclaw setup` or set gateway.mode=local (or pass --allow-unconfigured)."
    );

    let f = Gateway::builder()
        .config("{gateway:{mode:'remote'}}")
        .run_to_exit();
    assert_eq!(f.status.code(), Some(78));
    assert_eq!(
        first_line(&f.stderr),
        "Gateway start blocked: set gateway.mode=local (current: remote) or pass --allow-unconfigured."
    );

    let f = Gateway::builder()
        .config("{gateway:{port:1}}")
        .run_to_exit();
    assert_eq!(f.status.code(), Some(78));
    assert!(
        first_line(&f.stderr)
            .starts_with("Gateway start blocked: existing config is missing gateway.mode."),
        "{}",
        f.stderr
    );

    let f = Gateway::builder()
        .config("{gateway:{mode:'local',\n auth:{token:'x'}\n port: 5}}")
        .run_to_exit();
    assert_eq!(f.status.code(), Some(78));
    let path = f.home.path().join(".openclaw/openclaw.json");
    assert!(
        f.stderr
            .contains(&format!("invalid config {}:3:", path.display())),
        "{}",
        f.stderr
    );

    let f = Gateway::builder()
        .args(&["--bind", "lan", "--auth", "none"])
        .run_to_exit();
    assert_eq!(f.status.code(), Some(78));
    assert_eq!(
        first_line(&f.stderr),
        "Refusing to bind gateway to lan without auth."
    );

    // --allow-unconfigured starts without a config (and writes none when a token is given).
    let mut gw = Gateway::builder()
        .no_config()
        .args(&["--allow-unconfigured"])
        .env("OPENCLAW_GATEWAY_TOKEN", "envtok-123")
        .start();
    assert!(!gw.config_path().exists());
    assert!(gw.running());
}

#[tokio::test]
async fn occupied_port_names_the_holder_and_exits_78() {
    let a = Gateway::builder().start();
    let port = a.port.to_string();
    let f = Gateway::builder()
        .only_args(&["--port", &port])
        .run_to_exit();
    assert_eq!(f.status.code(), Some(78), "{}", f.stderr);
    assert!(
        f.stderr.contains(&format!(
            "Gateway failed to start: another gateway instance is already listening on ws://127.0.0.1:{port}"
        )),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr.contains(&format!("- pid {}: openclaw", a.pid())),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("--force"));
    // the incumbent is untouched
    let (_r, h, _) = hello(
        &a.url(),
        connect_params("cli", "cli", Some(&a.token), ALL),
        &[],
    )
    .await;
    assert_eq!(h["type"], "hello-ok");
}

#[tokio::test]
async fn force_stops_the_listener_then_starts() {
    let mut a = Gateway::builder().start();
    let port = a.port.to_string();
    let b = Gateway::builder()
        .only_args(&["--port", &port, "--force"])
        .start();
    assert_eq!(b.port, a.port);
    let st = a.wait_exit(WAIT).expect("the old gateway was stopped");
    assert!(st.success(), "SIGTERM leads to a clean exit: {st}");
    let (_r, h, _) = hello(
        &b.url(),
        connect_params("cli", "cli", Some(&b.token), ALL),
        &[],
    )
    .await;
    assert_eq!(h["type"], "hello-ok");
}

#[tokio::test]
async fn init_bootstraps_a_private_config_and_never_touches_an_existing_one() {
    let gw = Gateway::builder().no_config().args(&["--init"]).start();
    let cfg = gw.config_path();
    let dir = cfg.parent().unwrap();
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(doc["gateway"]["mode"], "local");
    // `gateway auth-token` prints it; it works for a connect; it never appears in logs.
    let out = command(gw.home.path())
        .args(["gateway", "auth-token"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token, doc["gateway"]["auth"]["token"].as_str().unwrap());
    assert_eq!(token.len(), 48);
    let (_r, h, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&token), ALL),
        &[],
    )
    .await;
    assert_eq!(h["type"], "hello-ok");
    assert!(gw.stderr().contains("openclaw gateway auth-token"));
    assert!(!gw.stderr().contains(&token));
    assert!(!gw.file_log().contains(&token));

    // --init with an existing config: byte-for-byte untouched.
    let g2 = Gateway::builder().args(&["--init"]).start();
    let before = std::fs::read(g2.config_path()).unwrap();
    drop(g2);
    let text = String::from_utf8(before.clone()).unwrap();
    let f = Gateway::builder().config(&text).args(&["--init"]).start();
    assert_eq!(std::fs::read(f.config_path()).unwrap(), before);
}

#[tokio::test]
async fn missing_token_is_generated_persisted_and_never_logged() {
    let gw = Gateway::builder()
        .config("// hand-written\n{gateway:{mode:'local'}}")
        .args(&["--verbose"])
        .start();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gw.config_path()).unwrap()).unwrap();
    let token = doc["gateway"]["auth"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(doc["gateway"]["mode"], "local");
    let bak = std::fs::read_to_string(gw.config_path().with_extension("json.bak")).unwrap();
    assert!(bak.contains("hand-written"), "previous file kept as .bak");
    assert_eq!(
        std::fs::metadata(gw.config_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // wrong and right token attempts, then check every sink
    let mut raw = crate::support::Raw::connect(&gw.url()).await;
    raw.challenge().await;
    raw.req(
        "c",
        "connect",
        Some(connect_params("cli", "cli", Some("wrong-token"), ALL)),
    )
    .await;
    let _ = raw.until_close().await;
    let (mut r, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&token), ALL),
        &[],
    )
    .await;
    r.req("g", "config.get", None).await;
    let cfg = r.res("g").await;
    assert!(!cfg.to_string().contains(&token));
    r.req("l", "logs.tail", Some(json!({"limit": 5000}))).await;
    let tail = r.res("l").await;
    assert!(!tail.to_string().contains(&token));
    assert!(
        gw.stderr().contains("generated one and saved it"),
        "{}",
        gw.stderr()
    );
    assert!(!gw.stderr().contains(&token));
    assert!(!gw.file_log().contains(&token));
}

#[tokio::test]
async fn port_precedence_flag_env_config() {
    let (pc, pe, pf) = (free_port(), free_port(), free_port());
    let tok = crate::support::random_token();
    let cfg = format!("{{gateway:{{mode:'local',port:{pc},auth:{{token:'{tok}'}}}}}}");
    let gw = Gateway::builder().config(&cfg).only_args(&[]).start();
    assert_eq!(gw.port, pc);
    drop(gw);
    let gw = Gateway::builder()
        .config(&cfg)
        .only_args(&[])
        .env("OPENCLAW_GATEWAY_PORT", &pe.to_string())
        .start();
    assert_eq!(gw.port, pe);
    drop(gw);
    let gw = Gateway::builder()
        .config(&cfg)
        .only_args(&["--port", &pf.to_string()])
        .env("OPENCLAW_GATEWAY_PORT", &pe.to_string())
        .start();
    assert_eq!(gw.port, pf);
    // env token beats the config token
    let gw2 = Gateway::builder()
        .config(&cfg)
        .only_args(&["--port", "0"])
        .env("OPENCLAW_GATEWAY_TOKEN", "from-env")
        .start();
    let (_r, h, _) = hello(
        &gw2.url(),
        connect_params("cli", "cli", Some("from-env"), ALL),
        &[],
    )
    .await;
    assert_eq!(h["type"], "hello-ok");
}

#[test]
fn setup_is_idempotent_and_auth_token_explains_absence() {
    let home = tempfile::tempdir().unwrap();
    let out = command(home.path())
        .args(["gateway", "auth-token"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no gateway token") && err.contains("openclaw setup"),
        "{err}"
    );

    let f = run_to_exit(
        command(home.path()).args(["setup", "--port", "19555"]),
        tempfile::tempdir().unwrap(),
    );
    assert!(f.status.success(), "{}", f.stderr);
    assert!(f.stdout.starts_with("Created "), "{}", f.stdout);
    let cfg = home.path().join(".openclaw/openclaw.json");
    let first = std::fs::read_to_string(&cfg).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(doc["gateway"]["mode"], "local");
    assert_eq!(doc["gateway"]["port"], 19555);
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(cfg.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let f = run_to_exit(
        command(home.path()).args(["setup"]),
        tempfile::tempdir().unwrap(),
    );
    assert!(f.stdout.starts_with("No change"), "{}", f.stdout);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), first);
    // an invalid config is reported, not overwritten
    std::fs::write(&cfg, "{ gateway: ").unwrap();
    let f = run_to_exit(
        command(home.path()).args(["setup"]),
        tempfile::tempdir().unwrap(),
    );
    assert_eq!(f.status.code(), Some(78));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "{ gateway: ");
}
