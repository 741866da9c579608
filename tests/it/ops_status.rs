//! `openclaw status` against a real gateway, a broken config and nothing at all: one
//! consistent story, next steps, and never a secret.
use crate::support::free_port;
use crate::support::ops::{Local, run, write_config};

#[test]
fn status_of_a_running_gateway_is_consistent_and_secret_free() {
    let l = Local::start();
    let r = l.run(&["status", "--json"]);
    assert_eq!(r.code(), 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["gateway"]["reachable"], true);
    assert_eq!(v["gateway"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["gateway"]["pid"], l.gw.pid());
    assert_eq!(v["versions"]["match"], true);
    assert_eq!(v["port"], l.gw.port);
    assert!(
        v["portSource"]
            .as_str()
            .unwrap()
            .starts_with("gateway.port in ")
    );
    assert!(
        v["auth"]
            .as_str()
            .unwrap()
            .starts_with("token (from gateway.auth.token")
    );
    assert_eq!(v["config"]["valid"], true);
    assert!(v["gateway"]["connectLatencyMs"].is_u64());
    // Without a reachable service manager the report still tells a consistent story.
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .all(|p| !p.as_str().unwrap().contains("unreachable")),
        "{problems:?}"
    );
    for args in [
        vec!["status"],
        vec!["status", "--all"],
        vec!["status", "--json", "--all"],
    ] {
        let r = l.run(&args);
        assert!(!r.stdout.contains(&l.token), "{args:?} leaked the token");
        assert!(!r.stderr.contains(&l.token));
    }
    let t = l.run(&["status"]);
    assert!(
        t.stdout.contains(&format!(
            "Gateway: local · ws://127.0.0.1:{} · reachable (",
            l.gw.port
        )),
        "{}",
        t.stdout
    );
    assert!(t.stdout.contains(&format!("pid {}", l.gw.pid())));
}

#[test]
fn status_explains_a_broken_config_instead_of_failing() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(
        home.path(),
        None,
        &format!("{{\n  gateway: {{\n    mode: 'local'\n    port: {port}\n  }}\n}}\n"),
    );
    let r = run(home.path(), &["status"], &[]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(
        r.stdout.contains("(invalid: invalid config "),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("openclaw.json:4:"),
        "file:line of the error: {}",
        r.stdout
    );
    assert!(r.stdout.contains("doctor"), "{}", r.stdout);
    let j = run(home.path(), &["status", "--json"], &[]);
    let v = j.json();
    assert_eq!(v["config"]["valid"], false);
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("config is invalid")
    );
}

#[test]
fn status_without_a_gateway_says_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(
        home.path(),
        None,
        &format!(
            "{{ gateway: {{ mode: 'local', port: {port}, auth: {{ token: 'tok-123456789' }} }} }}"
        ),
    );
    let r = run(home.path(), &["status"], &[]);
    assert_eq!(r.code(), 0);
    assert!(
        r.stdout.contains(&format!(
            "ws://127.0.0.1:{port} · unreachable (connection refused)"
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Next steps:\n"), "{}", r.stdout);
    assert!(r.stdout.contains("openclaw gateway run"), "{}", r.stdout);
    assert!(!r.stdout.contains("tok-123456789"));
}
