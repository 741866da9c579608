//! `openclaw dashboard` against a running gateway: the tokenized URL for the browser, the clean
//! one for the terminal, `--json` with upstream's fields, and honest failures.
use std::process::Output;

use serde_json::Value;

use crate::support::{Gateway, command};

fn dashboard(gw_home: &std::path::Path, port: u16, args: &[&str]) -> Output {
    command(gw_home)
        .arg("dashboard")
        .args(args)
        .env("OPENCLAW_GATEWAY_PORT", port.to_string())
        // No clipboard tool or browser opener: delivery falls back to the manual hint.
        .env("PATH", "/nonexistent")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run openclaw dashboard")
}

#[test]
fn dashboard_json_carries_the_tokenized_url_and_the_terminal_only_the_clean_one() {
    let gw = Gateway::builder().start();
    let out = dashboard(gw.home.path(), gw.port, &["--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let base = format!("http://127.0.0.1:{}/", gw.port);
    assert_eq!(v["ok"], true);
    assert_eq!(v["url"], format!("{base}#token={}", gw.token));
    assert_eq!(v["httpUrl"], base);
    assert_eq!(v["wsUrl"], format!("ws://127.0.0.1:{}", gw.port));
    assert_eq!(v["port"], gw.port);
    assert_eq!(v["tokenIncluded"], true);

    let out = dashboard(gw.home.path(), gw.port, &["--no-open"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("Dashboard URL: {base}\n")), "{text}");
    assert!(text.contains("Copy to clipboard unavailable."), "{text}");
    assert!(
        text.contains("Token auto-auth not delivered. Append your gateway token (from OPENCLAW_GATEWAY_TOKEN or gateway.auth.token) as a URL fragment with key `token` to authenticate."),
        "{text}"
    );
    assert!(
        !text.contains(&gw.token),
        "the token is never printed: {text}"
    );

    // No GUI and no --no-open: upstream's SSH hint.
    let out = dashboard(gw.home.path(), gw.port, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "ssh -N -L {0}:127.0.0.1:{0} <user>@<host>",
            gw.port
        )),
        "{text}"
    );
}

#[test]
fn dashboard_reports_a_gateway_that_is_not_running() {
    let home = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = dashboard(home.path(), port, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        v,
        serde_json::json!({"ok": false, "reason": "Gateway is not running."})
    );
    let out = dashboard(home.path(), port, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Run `openclaw gateway run` for a foreground gateway."),
        "{text}"
    );
}
