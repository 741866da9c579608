//! Secrets audit: the gateway token/password never appears in logs (stderr at `--verbose`, the
//! JSONL file log), in any RPC or HTTP response, in failure output of refused starts, or in
//! the service definitions we render; files that hold them are private.
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Frame, Gateway, Raw, WAIT, connect_params, hello, http};

/// Every core method an admin CLI can call.
const METHODS: &[&str] = &[
    "health",
    "status",
    "config.get",
    "logs.tail",
    "system.info",
    "system-presence",
    "models.list",
    "agents.list",
    "sessions.list",
    "node.list",
    "last-heartbeat",
    "channels.status",
    "gateway.identity.get",
];

fn assert_absent(haystack: &str, secret: &str, what: &str) {
    assert!(
        !haystack.contains(secret),
        "{what} contains the secret {secret:?}:\n{}",
        haystack
            .lines()
            .filter(|l| l.contains(secret))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Drives a gateway through connects (right, wrong, missing), every method, the HTTP surface
/// and a graceful stop; returns everything the outside world saw.
async fn exercise(gw: &mut Gateway, field: &str, wrong: &str) -> String {
    let mut seen = String::new();
    let secret = gw.token.clone();
    let mut params = connect_params("cli", "cli", None, support::ALL);
    params["auth"] = json!({ field: secret });
    let (mut ws, hello_ok, first) = hello(&gw.url(), params, &[]).await;
    seen.push_str(&hello_ok.to_string());
    seen.push_str(&first.to_string());
    for (i, m) in METHODS.iter().enumerate() {
        let id = format!("m{i}");
        let p = (*m == "logs.tail").then(|| json!({"limit": 5000, "maxBytes": 1_000_000}));
        ws.req(&id, m, p).await;
        let res = ws.res(&id).await;
        assert_eq!(res["ok"], true, "{m} failed: {res}");
        seen.push_str(&res.to_string());
    }
    // A wrong secret, and a connect without one: rejected, and the wrong value is not echoed.
    for auth in [json!({ field: wrong }), json!({})] {
        let mut p = connect_params("cli", "cli", None, &[]);
        p["auth"] = auth;
        let mut raw = Raw::connect(&gw.url()).await;
        raw.challenge().await;
        raw.req("c1", "connect", Some(p)).await;
        let ((code, reason), frames) = raw.until_close().await;
        assert_eq!(code, 1008, "{reason}");
        seen.push_str(&reason);
        for f in frames {
            seen.push_str(&f.to_string());
        }
    }
    for (bearer, status) in [(secret.as_str(), 404), (wrong, 401)] {
        let auth = format!("Bearer {bearer}");
        let r = http(
            gw.port,
            "POST",
            "/tools/invoke",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            r#"{"tool":"sessions_list","args":{}}"#,
        );
        assert_eq!(r.status, status, "{}", r.body);
        seen.push_str(&r.body);
        for (k, v) in &r.headers {
            seen.push_str(&format!("{k}: {v}\n"));
        }
    }
    for path in ["/", "/healthz", "/readyz", "/startupz", "/v1/models"] {
        seen.push_str(&http(gw.port, "GET", path, &[], "").body);
    }
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    let ((code, _), frames) = ws.until_close().await;
    assert_eq!(code, 1012);
    for f in frames {
        seen.push_str(&f.to_string());
    }
    assert!(gw.wait_exit(WAIT).is_some(), "gateway did not stop");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_never_leaks_into_logs_responses_or_http_at_debug_level() {
    let wrong = format!("wrong-{}", support::random_token());
    let mut gw = Gateway::builder()
        .args(&["--verbose"])
        .env("RUST_LOG", "trace")
        .env("OPENCLAW_TICK_INTERVAL_MS", "100")
        .start();
    let seen = exercise(&mut gw, "token", &wrong).await;
    let token = gw.token.clone();
    assert_absent(&seen, &token, "RPC/HTTP output");
    let stderr = gw.stderr();
    assert!(
        stderr.contains("DEBUG"),
        "--verbose should log at debug level:\n{stderr}"
    );
    let file = gw.file_log();
    assert!(
        file.contains("\"level\":\"debug\""),
        "file log has debug records"
    );
    for (text, what) in [(&stderr, "stderr"), (&file, "file log")] {
        assert_absent(text, &token, what);
        assert_absent(text, &wrong, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_the_environment_never_leaks() {
    let password = format!("pw-{}", support::random_token());
    let wrong = format!("wrong-{}", support::random_token());
    let mut gw = Gateway::builder()
        .config("{ gateway: { mode: 'local', auth: { mode: 'password' } } }")
        .env("OPENCLAW_GATEWAY_PASSWORD", &password)
        .args(&["--verbose"])
        .start();
    gw.token = password.clone();
    let seen = exercise(&mut gw, "password", &wrong).await;
    assert_absent(&seen, &password, "RPC/HTTP output");
    for (text, what) in [(gw.stderr(), "stderr"), (gw.file_log(), "file log")] {
        assert_absent(&text, &password, what);
        assert_absent(&text, &wrong, what);
    }
}

/// Failure output ("crash output" of a refused or failed start) never carries the secret, even
/// when the error is about the very line that holds it.
#[test]
fn refused_and_failed_starts_print_no_secret() {
    let token = support::random_token();
    let cases: Vec<(&str, support::GatewayBuilder)> = vec![
        (
            "syntax error right after the token",
            Gateway::builder().config(&format!(
                "{{ gateway: {{ mode: 'local', auth: {{ token: '{token}' mode: 'token' }} }} }}"
            )),
        ),
        (
            "type error next to the token",
            Gateway::builder().config(&format!(
                "{{ gateway: {{ mode: 'local', port: 'not-a-port', auth: {{ token: '{token}' }} }} }}"
            )),
        ),
        (
            "unsupported auth mode",
            Gateway::builder().config(&format!(
                "{{ gateway: {{ mode: 'local', auth: {{ mode: 'magic', token: '{token}' }} }} }}"
            )),
        ),
        (
            "mode remote",
            Gateway::builder().config(&format!(
                "{{ gateway: {{ mode: 'remote', auth: {{ token: '{token}' }} }} }}"
            )),
        ),
        (
            "token flag with an unresolvable config",
            Gateway::builder()
                .config("{ gateway: { mode: 'local', auth: { password: '${OPENCLAW_SURELY_UNSET_PW}' } } }")
                .args(&["--token", &token, "--verbose"]),
        ),
    ];
    for (what, b) in cases {
        let f = b.env("OPENCLAW_GATEWAY_TOKEN", &token).run_to_exit();
        assert_eq!(f.status.code(), Some(78), "{what}: {}", f.stderr);
        assert!(!f.stderr.trim().is_empty(), "{what}: no explanation");
        assert_absent(&f.stderr, &token, what);
        assert_absent(&f.stdout, &token, what);
        let logs = f.home.path().join("logs");
        for e in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            assert_absent(&text, &token, what);
        }
    }
}

/// Port taken: the EADDRINUSE diagnostic (which lists processes and their command lines) does
/// not show a token given on the command line of either gateway.
#[test]
fn port_in_use_diagnostic_prints_no_secret() {
    let token = support::random_token();
    let first = Gateway::builder().args(&["--token", &token]).start();
    let port = first.port.to_string();
    let f = Gateway::builder()
        .only_args(&["--port", &port, "--token", &token])
        .run_to_exit();
    assert_eq!(f.status.code(), Some(78), "{}", f.stderr);
    assert!(
        f.stderr
            .contains("another gateway instance is already listening"),
        "{}",
        f.stderr
    );
    assert_absent(&f.stderr, &token, "EADDRINUSE output");
    assert_absent(&first.stderr(), &token, "first gateway's stderr");
}

/// A second signal exits at once; that path prints no secret either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_exit_output_has_no_secret() {
    let mut gw = Gateway::builder()
        .env("OPENCLAW_SHUTDOWN_TIMEOUT_MS", "30000")
        .start();
    let (mut ws, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), support::ALL),
        &[],
    )
    .await;
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    // The shutdown event proves the first signal was handled before the second is sent.
    loop {
        match ws.recv().await {
            Frame::Json(v) if v["event"] == "shutdown" => break,
            Frame::Json(_) => continue,
            Frame::Close(c, r) => panic!("closed {c} {r} before the shutdown event"),
        }
    }
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(gw.wait_exit(WAIT).is_some());
    assert_absent(&gw.stderr(), &gw.token, "stderr");
    assert_absent(&gw.file_log(), &gw.token, "file log");
}

/// The launchd plist never embeds a secret: a spec carrying one is refused (without echoing
/// it), and the default install renders no credential key at all (the token stays in the
/// 0600 config).
#[test]
fn rendered_plist_has_no_secret() {
    use openclaw::service::launchd::{job::LaunchdJob, plist};
    let token = support::random_token();
    let home = tempfile::tempdir().unwrap();
    let spec = crate::launchd::spec(home.path());
    let xml = plist::render(&LaunchdJob::from_spec(&spec, home.path()).unwrap());
    assert!(xml.contains("<plist"), "{xml}");
    for key in ["TOKEN", "PASSWORD", "SECRET"] {
        assert!(
            !xml.to_ascii_uppercase().contains(key),
            "{key} in plist:\n{xml}"
        );
    }
    for key in [
        "OPENCLAW_GATEWAY_TOKEN",
        "OPENCLAW_GATEWAY_PASSWORD",
        "MY_API_SECRET",
    ] {
        let mut s = spec.clone();
        s.env.push((key.into(), token.clone()));
        let e = LaunchdJob::from_spec(&s, home.path()).expect_err(key);
        assert_absent(&e.to_string(), &token, "launchd refusal");
    }
}

/// `config.get` redacts every secret-named value, whatever its nesting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_get_redacts_nested_secrets() {
    let token = support::random_token();
    let api = format!("sk-{}", support::random_token());
    let hook = format!("hk-{}", support::random_token());
    let gw = Gateway::builder()
        .config(&format!(
            "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }} }},
               hooks: {{ enabled: true, token: '{hook}' }},
               models: {{ providers: {{ x: {{ apiKey: '{api}', headers: {{ Authorization: 'Bearer {api}' }} }} }} }} }}"
        ))
        .start();
    let (mut ws, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&token), support::ALL),
        &[],
    )
    .await;
    ws.req("g", "config.get", Some(json!({}))).await;
    let res = ws.res("g").await;
    let text = res.to_string();
    for s in [&token, &api, &hook] {
        assert_absent(&text, s, "config.get");
    }
    assert_eq!(
        res["payload"]["config"]["models"]["providers"]["x"]["apiKey"],
        Value::String(openclaw::config::REDACTED.into())
    );
    let _ = ws.recv_within(Duration::from_millis(1)).await;
}

/// Issue 20 finding 3: an `operator.read` client saw header credentials, URL passwords and any
/// secret the file spells with escapes (the old `raw` was the file text scrubbed by substring).
/// Each secret is checked in its decoded form and in the form the file spells it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_get_to_a_read_client_shows_no_credential_however_the_file_spells_it() {
    let token = support::random_token();
    let tail = support::random_token();
    // (as the JSON5 file spells it, the decoded value)
    let password = (
        format!(r#"pa\"ss\\w\u00e9rd-{tail}"#),
        format!(r#"pa"ss\wérd-{tail}"#),
    );
    let header = format!("xk-{}", support::random_token());
    let header2 = format!("ak-{}", support::random_token());
    let userinfo = format!("up-{}", support::random_token());
    let env_secret = format!("ev-{}", support::random_token());
    let gw = Gateway::builder()
        .config(&format!(
            r#"{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}', password: "{pw}" }} }},
               env: {{ vars: {{ SOME_PROVIDER: '{env_secret}' }} }},
               models: {{ providers: {{ x: {{
                 baseUrl: 'https://svc:{userinfo}@models.example/v1',
                 headers: {{ 'x-api-key': '{header}', 'api-key': '{header2}' }} }} }} }} }}"#,
            pw = password.0
        ))
        .start();
    let (mut ws, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&token), &["operator.read"]),
        &[],
    )
    .await;
    ws.req("g", "config.get", Some(json!({}))).await;
    let res = ws.res("g").await;
    assert_eq!(res["ok"], true, "{res}");
    let text = res.to_string();
    for s in [
        &token,
        &password.0,
        &password.1,
        &tail,
        &header,
        &header2,
        &userinfo,
        &env_secret,
    ] {
        assert_absent(&text, s, "config.get");
        assert_absent(res["payload"]["raw"].as_str().unwrap(), s, "config.get raw");
    }
    let p = &res["payload"]["config"]["models"]["providers"]["x"];
    assert_eq!(
        p["baseUrl"],
        format!(
            "https://svc:{}@models.example/v1",
            openclaw::config::REDACTED
        )
    );
    // `raw` is the redacted document itself, so a client that parses it sees the same values.
    let raw: Value = serde_json::from_str(res["payload"]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw, res["payload"]["config"]);
    let _ = ws.recv_within(Duration::from_millis(1)).await;
}

/// Issue 20 finding 6: `--token`/`--password` on argv are readable by every local user in
/// `/proc/PID/cmdline`; they are still accepted, with a warning naming the env var and config
/// key to use instead, and never the value.
#[test]
fn argv_credentials_are_accepted_with_a_warning_naming_the_safer_home() {
    let b = Gateway::builder();
    let token = b.token.clone();
    let password = support::random_token();
    let gw = b
        .args(&["--token", &token, "--password", &password])
        .start();
    let err = gw.stderr();
    for (flag, env) in [
        ("--token", "OPENCLAW_GATEWAY_TOKEN"),
        ("--password", "OPENCLAW_GATEWAY_PASSWORD"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("{flag} on the command line")))
            .unwrap_or_else(|| panic!("no warning for {flag} in:\n{err}"));
        assert!(line.contains(env), "{line}");
    }
    assert_absent(&err, &token, "gateway stderr");
    assert_absent(&err, &password, "gateway stderr");
}
