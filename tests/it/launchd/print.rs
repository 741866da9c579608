//! `launchctl print` / `print-disabled` parsing against the fixtures.
use openclaw::service::launchd::plist::parse_definition;
use openclaw::service::launchd::print::{LastExit, parse_print, parse_print_disabled};

use super::fixture;

#[test]
fn running() {
    let p = parse_print(&fixture("print-running.txt"));
    assert_eq!(p.target.as_deref(), Some("gui/501/ai.openclaw.gateway"));
    assert_eq!(p.state.as_deref(), Some("running"));
    assert_eq!(p.pid, Some(4242));
    assert_eq!(p.runs, Some(1));
    assert_eq!(p.last_exit, LastExit::Never);
    assert_eq!(p.job_type.as_deref(), Some("LaunchAgent"));
    assert_eq!(
        p.path.as_deref(),
        Some("/Users/alice/Library/LaunchAgents/ai.openclaw.gateway.plist")
    );
    assert_eq!(p.program.as_deref(), Some("/opt/homebrew/bin/openclaw"));
    assert_eq!(
        p.arguments,
        [
            "/opt/homebrew/bin/openclaw",
            "gateway",
            "run",
            "--port",
            "18789"
        ]
    );
    assert_eq!(
        p.working_directory.as_deref(),
        Some("/Users/alice/.openclaw")
    );
    assert_eq!(p.exit_timeout, Some(20));
    // Only the job's own environment block, not inherited/default environment.
    assert_eq!(
        p.environment
            .get("OPENCLAW_SERVICE_MARKER")
            .map(String::as_str),
        Some("openclaw")
    );
    assert!(!p.environment.contains_key("SSH_AUTH_SOCK"));
    assert_eq!(
        p.environment.get("PATH").unwrap().split(':').next(),
        Some("/opt/homebrew/bin")
    );
    assert!(p.has_sockets);
    assert_eq!(p.properties, ["keepalive", "runatload", "inferred program"]);
    assert!(p.is_running() && !p.is_throttled());
    assert_eq!(
        p.summary(),
        "running (pid 4242, state running, runs 1, last exit never)"
    );
}

#[test]
fn not_running_after_clean_exit() {
    let p = parse_print(&fixture("print-not-running.txt"));
    assert_eq!(p.state.as_deref(), Some("not running"));
    assert_eq!(p.pid, None);
    assert_eq!(p.last_exit, LastExit::Code(0));
    assert!(!p.is_running() && !p.last_exit.is_failure());
    assert_eq!(
        p.summary(),
        "stopped (state not running, runs 2, last exit 0)"
    );
}

#[test]
fn crashed_with_named_exit_code() {
    let p = parse_print(&fixture("print-crashed.txt"));
    assert_eq!(p.last_exit, LastExit::Code(78));
    assert!(p.last_exit.is_failure());
    assert!(!p.is_running());
}

#[test]
fn respawned_after_signal() {
    let p = parse_print(&fixture("print-signal.txt"));
    assert_eq!(
        p.last_exit,
        LastExit::Signal {
            number: 11,
            name: "Segmentation fault".into()
        }
    );
    assert!(p.is_running());
    assert_eq!(p.pid, Some(5120));
    assert!(
        p.summary()
            .contains("last exit signal 11 (Segmentation fault)")
    );
}

#[test]
fn throttled_crash_loop() {
    let p = parse_print(&fixture("print-throttled.txt"));
    assert_eq!(p.state.as_deref(), Some("spawn scheduled"));
    assert_eq!(p.runs, Some(7));
    assert_eq!(p.last_exit, LastExit::Code(1));
    assert!(p.is_throttled());
    assert!(
        p.summary()
            .starts_with("crash-looping (state spawn scheduled, runs 7, last exit 1")
    );
}

#[test]
fn drift_between_loaded_job_and_plist_on_disk() {
    let golden = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plists/ai.openclaw.gateway.plist"),
    )
    .unwrap();
    let def = parse_definition(&golden).unwrap();
    // The fixtures describe the golden job: no drift...
    assert_eq!(
        parse_print(&fixture("print-running.txt")).drift_from(&def),
        Vec::<String>::new()
    );
    // ...except the one loaded from an older plist (port 18790).
    let drift = parse_print(&fixture("print-drifted.txt")).drift_from(&def);
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].starts_with("program arguments"), "{drift:?}");
    assert!(drift[0].contains("18790") && drift[0].contains("18789"));
}

#[test]
fn not_found_output_parses_to_nothing() {
    let p = parse_print(&fixture("print-not-found.txt"));
    assert_eq!(p.state, None);
    assert!(!p.is_running());
}

#[test]
fn print_disabled_both_dialects() {
    let m = parse_print_disabled(&fixture("print-disabled.txt"));
    assert_eq!(m.get("ai.openclaw.gateway"), Some(&true));
    assert_eq!(m.get("ai.openclaw.work"), Some(&false));
    assert_eq!(m.get("com.docker.helper"), Some(&false));
    assert!(
        !m.contains_key("com.example.helper"),
        "login item associations are not overrides"
    );
    let legacy = parse_print_disabled(&fixture("print-disabled-legacy.txt"));
    assert_eq!(legacy.get("ai.openclaw.gateway"), Some(&false));
    assert_eq!(legacy.get("ai.openclaw.work"), Some(&true));
    assert_eq!(legacy.get("com.apple.ftp-proxy"), Some(&true));
}

#[test]
fn unknown_lines_and_reordered_keys_are_tolerated() {
    let mut text = fixture("print-running.txt");
    text = text.replace("\tstate = running\n", "\tsome future key = 12\n\tstate = running\n\tanother = {\n\t\tstate = bogus\n\t\tpid = 1\n\t}\n");
    let p = parse_print(&text);
    assert_eq!(p.state.as_deref(), Some("running"));
    assert_eq!(p.pid, Some(4242));
}
