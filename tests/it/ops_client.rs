//! `health`, `gateway health|call|probe`, `channels status` against real gateway processes:
//! output formats, exit codes, connection resolution (profile/dev/env/flags) and the
//! explicit-credentials rule for `--url`.
use std::net::TcpListener;

use serde_json::json;

use crate::support::ops::{Gw, Local, local_config, run, write_config};
use crate::support::{free_port, random_token};

#[test]
fn health_resolves_the_local_gateway_and_prints_upstream_formats() {
    let l = Local::start();
    let r = l.run(&["health"]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(
        r.stdout.starts_with("Gateway event loop: ok "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\nGateway probe duration: "));
    assert!(r.stdout.contains("\nAgents: main (default)\n"));

    let j = l.run(&["health", "--json"]);
    assert_eq!(j.code(), 0);
    let v = j.json();
    assert_eq!(v["ok"], true);
    assert!(
        v["eventLoop"].is_object() && v["channels"].is_object(),
        "{v}"
    );

    let g = l.run(&["gateway", "health"]);
    assert_eq!(g.code(), 0);
    let mut lines = g.stdout.lines();
    assert_eq!(lines.next(), Some("Gateway Health"));
    let ok = lines.next().unwrap();
    assert!(ok.starts_with("OK (") && ok.ends_with("ms)"), "{ok}");
    assert!(!g.stdout.contains(&l.token) && !g.stderr.contains(&l.token));
}

#[test]
fn call_prints_payloads_and_upstream_error_json_with_exit_1() {
    let l = Local::start();
    let r = l.run(&["gateway", "call", "status", "--json"]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.json()["pid"], json!(l.gw.pid()));

    let r = l.run(&["gateway", "call", "foo.bar", "--json"]);
    assert_eq!(r.code(), 1);
    assert_eq!(
        r.json(),
        json!({"ok": false, "error": {"type": "gateway_request_error", "code": "INVALID_REQUEST",
            "message": "unknown method: foo.bar", "retryable": false}})
    );

    let r = l.run(&["gateway", "call", "foo.bar"]);
    assert_eq!(r.code(), 1);
    assert!(
        r.stderr
            .contains("gateway call failed: INVALID_REQUEST: unknown method: foo.bar"),
        "{}",
        r.stderr
    );

    // Params are passed through; a bad --params is refused before any connection.
    let r = l.run(&[
        "gateway",
        "call",
        "logs.tail",
        "--params",
        "{\"limit\": 1}",
        "--json",
    ]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.json()["lines"].as_array().unwrap().len() <= 1);
    let r = l.run(&["gateway", "call", "status", "--params", "{bad"]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr.starts_with("invalid --params"), "{}", r.stderr);

    // --expect-final on a one-stage method returns its only response.
    let r = l.run(&["gateway", "call", "health", "--expect-final", "--json"]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.json()["ok"], true);

    // An explicit URL with explicit credentials.
    let url = format!("ws://127.0.0.1:{}", l.gw.port);
    let r = l.run(&[
        "gateway", "call", "status", "--url", &url, "--token", &l.token, "--json",
    ]);
    assert_eq!(r.code(), 0, "{r:?}");
}

#[test]
fn url_override_requires_explicit_credentials_and_opens_no_socket() {
    let home = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("ws://127.0.0.1:{}", listener.local_addr().unwrap().port());
    for args in [
        vec!["gateway", "health", "--url", &url],
        vec!["health", "--url", &url],
        vec!["gateway", "call", "status", "--url", &url],
        vec!["gateway", "probe", "--url", &url],
        vec!["logs", "--url", &url],
    ] {
        let r = run(
            home.path(),
            &args,
            &[("OPENCLAW_GATEWAY_TOKEN", "from-env")],
        );
        assert_eq!(r.code(), 1, "{args:?}: {r:?}");
        assert!(
            r.stderr
                .starts_with("gateway url override requires explicit credentials"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "no connection may be attempted without credentials"
    );
    let r = run(
        home.path(),
        &["health", "--url", &url, "--token", "t", "--port", "1"],
        &[],
    );
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(
        r.stderr.contains("cannot be combined with --url"),
        "{}",
        r.stderr
    );
}

#[test]
fn wrong_token_and_unreachable_gateway_fail_with_next_steps() {
    let l = Local::start();
    let url = format!("ws://127.0.0.1:{}", l.gw.port);
    let r = l.run(&["gateway", "health", "--url", &url, "--token", "wrong-token"]);
    assert_eq!(r.code(), 1);
    assert!(
        r.stderr
            .starts_with("gateway connect failed: unauthorized: gateway token mismatch"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("gateway auth-token"), "{}", r.stderr);

    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = run(home.path(), &["health", "--port", &port.to_string()], &[]);
    assert_eq!(r.code(), 1);
    assert!(
        r.stderr.starts_with(&format!(
            "gateway connect failed: connection refused (ws://127.0.0.1:{port})"
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("openclaw gateway run"), "{}", r.stderr);
    // Profile-aware hints target the same gateway.
    let r = run(
        home.path(),
        &["--profile", "ops", "health", "--port", &port.to_string()],
        &[],
    );
    assert!(
        r.stderr.contains("openclaw --profile ops gateway run"),
        "{}",
        r.stderr
    );
}

#[test]
fn port_and_token_precedence_flag_env_config() {
    let l = Local::start();
    // Config points at a dead port with a wrong token; env corrects both.
    let dead = free_port();
    write_config(l.home.path(), None, &local_config(dead, "wrong"));
    let port = l.gw.port.to_string();
    let env = [
        ("OPENCLAW_GATEWAY_PORT", port.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", l.token.as_str()),
    ];
    let r = run(l.home.path(), &["health", "--json"], &env);
    assert_eq!(r.code(), 0, "{r:?}");
    // --port and --token beat the environment.
    let bad_env = [
        ("OPENCLAW_GATEWAY_PORT", "1"),
        ("OPENCLAW_GATEWAY_TOKEN", "nope"),
    ];
    let r = run(
        l.home.path(),
        &["health", "--port", &port, "--token", &l.token],
        &bad_env,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    // The config alone now resolves the dead port.
    let r = run(l.home.path(), &["health"], &[]);
    assert_eq!(r.code(), 1);
    assert!(r.stderr.contains(&format!(":{dead})")), "{}", r.stderr);
}

#[test]
fn profiles_and_dev_resolve_their_own_state_and_ports() {
    let home = tempfile::tempdir().unwrap();
    // Resolution only (nothing listens): --dev → 19001, a profile → its derived port.
    let r = run(home.path(), &["--dev", "status", "--json"], &[]);
    assert_eq!(r.code(), 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["url"], "ws://127.0.0.1:19001");
    assert_eq!(v["portSource"], "--dev default");
    assert!(v["stateDir"].as_str().unwrap().ends_with("/.openclaw-dev"));
    let r = run(home.path(), &["--profile", "ops", "status", "--json"], &[]);
    assert_eq!(r.json()["port"], 55291);

    // A dev gateway and a named-profile gateway, each found through its own config.
    let dev_port = free_port();
    let dev_tok = random_token();
    write_config(home.path(), Some("dev"), &local_config(dev_port, &dev_tok));
    let ops_port = free_port();
    let ops_tok = random_token();
    write_config(home.path(), Some("ops"), &local_config(ops_port, &ops_tok));
    let dev = Gw::start(home.path(), &["--dev"], &[]);
    let ops = Gw::start(home.path(), &["--profile", "ops"], &[]);
    assert_eq!((dev.port, ops.port), (dev_port, ops_port));
    let r = run(
        home.path(),
        &["--dev", "gateway", "call", "status", "--json"],
        &[],
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.json()["pid"], json!(dev.pid()));
    let r = run(
        home.path(),
        &["--profile", "ops", "gateway", "call", "status", "--json"],
        &[],
    );
    assert_eq!(r.json()["pid"], json!(ops.pid()));
    // OPENCLAW_PROFILE selects the same profile as --profile.
    let r = run(
        home.path(),
        &["gateway", "call", "status", "--json"],
        &[("OPENCLAW_PROFILE", "ops")],
    );
    assert_eq!(r.json()["pid"], json!(ops.pid()));
    let r = run(home.path(), &["--dev", "status"], &[]);
    assert!(
        r.stdout
            .contains(&format!("ws://127.0.0.1:{dev_port} · reachable")),
        "{}",
        r.stdout
    );
}

#[test]
fn probe_reports_capability_and_scope_limits() {
    let l = Local::start();
    let r = l.run(&["gateway", "probe", "--json"]);
    assert_eq!(r.code(), 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["degraded"], true);
    assert_eq!(v["capability"], "connected-no-operator-scope");
    assert_eq!(v["methods"]["health"]["ok"], true);
    assert_eq!(v["methods"]["status"]["error"]["code"], "FORBIDDEN");
    assert_eq!(v["warnings"][0]["code"], "probe_scope_limited");
    assert_eq!(v["server"]["version"], env!("CARGO_PKG_VERSION"));
    let t = l.run(&["gateway", "probe"]);
    assert!(
        t.stdout.contains("Capability: connected-no-operator-scope"),
        "{}",
        t.stdout
    );
    assert!(t.stdout.ends_with("Result: degraded\n"));

    let home = tempfile::tempdir().unwrap();
    let r = run(
        home.path(),
        &["gateway", "probe", "--port", &free_port().to_string()],
        &[],
    );
    assert_eq!(r.code(), 1);
    assert!(
        r.stdout.contains("Connect: failed: connection refused"),
        "{}",
        r.stdout
    );
}

#[test]
fn channels_status_says_the_registry_is_empty() {
    let l = Local::start();
    let r = l.run(&["channels", "status", "--probe"]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "Checking channel status (probe)…\nGateway reachable.\n- no configured chat channels (this gateway has no channel plugins yet)\n"
    );
    let j = l.run(&["channels", "status", "--json"]);
    assert_eq!(j.json()["channels"], json!({}));
}

#[test]
fn gateway_status_with_url_probes_that_gateway_as_upstream() {
    let l = Local::start();
    let url = format!("ws://127.0.0.1:{}", l.gw.port);
    let r = l.run(&["gateway", "status", "--url", &url, "--token", &l.token]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(
        r.stdout.contains("Connectivity probe: ok\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Capability: connected-no-operator-scope\n"),
        "{}",
        r.stdout
    );
    // --require-rpc: a backend client with operator.read must get `status` answered.
    let r = l.run(&[
        "gateway",
        "status",
        "--url",
        &url,
        "--token",
        &l.token,
        "--require-rpc",
        "--json",
    ]);
    assert_eq!(r.code(), 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["rpc"]["ok"], true, "{v}");
    assert_eq!(v["rpc"]["capability"], "read-only");
    assert_eq!(v["gateway"]["version"], env!("CARGO_PKG_VERSION"));
    // A wrong token: exit 0 without --require-rpc (upstream), 1 with it.
    let r = l.run(&["gateway", "status", "--url", &url, "--token", "nope"]);
    assert_eq!(r.code(), 0);
    assert!(
        r.stdout
            .contains("Connectivity probe: failed\n  unauthorized"),
        "{}",
        r.stdout
    );
    let r = l.run(&[
        "gateway",
        "status",
        "--url",
        &url,
        "--token",
        "nope",
        "--require-rpc",
    ]);
    assert_eq!(r.code(), 1);
    // And the credentials rule.
    let r = l.run(&["gateway", "status", "--url", &url]);
    assert_eq!(r.code(), 1);
    assert!(
        r.stderr
            .starts_with("gateway url override requires explicit credentials")
    );
}
