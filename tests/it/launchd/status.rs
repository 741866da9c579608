//! `gateway status` data from launchctl outputs replayed verbatim from the fixtures.
use std::collections::HashMap;
use std::path::Path;

use openclaw::service::exec::{CommandRunner, Output};
use openclaw::service::launchd::{LaunchdManager, LaunchdStatus};

use super::fake::FakeClock;
use super::{fixture, spec};

/// Answers `launchctl <verb> <arg>` from a table; anything else is "not found" (113).
struct Replay(HashMap<String, Output>);

impl CommandRunner for Replay {
    fn run(&self, argv: &[String]) -> std::io::Result<Output> {
        let key = argv[1..].join(" ");
        Ok(self.0.get(&key).cloned().unwrap_or(Output {
            status: 113,
            stdout: String::new(),
            stderr: fixture("print-not-found.txt"),
        }))
    }
}

fn ok(text: String) -> Output {
    Output {
        status: 0,
        stdout: text,
        stderr: String::new(),
    }
}

/// Status with `print` answered by `print_fixture` and the golden plist installed.
fn status(print_fixture: Option<&str>, disabled_fixture: &str) -> LaunchdStatus {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let agents = home.join("Library/LaunchAgents");
    std::fs::create_dir_all(&agents).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("plists/ai.openclaw.gateway.plist");
    std::fs::copy(golden, agents.join("ai.openclaw.gateway.plist")).unwrap();
    let mut table = HashMap::new();
    if let Some(f) = print_fixture {
        table.insert(
            "print gui/501/ai.openclaw.gateway".to_string(),
            ok(fixture(f)),
        );
    }
    table.insert(
        "print-disabled gui/501".to_string(),
        ok(fixture(disabled_fixture)),
    );
    let m = LaunchdManager::new(
        Box::new(Replay(table)),
        Box::new(FakeClock::default()),
        Box::new(HashMap::<String, String>::new()),
        501,
        home.to_path_buf(),
    )
    .with_daemons_dir(home.join("no-daemons"));
    // Alice's spec (the fixtures' paths); only the state dir (refusal marker) is temporary.
    let mut s = spec(Path::new("/Users/alice"));
    s.state_dir = home.join(".openclaw");
    m.inspect(&s).unwrap()
}

#[test]
fn running_job() {
    let st = status(Some("print-running.txt"), "print-disabled-legacy.txt");
    assert_eq!(
        st.runtime,
        "running (pid 4242, state running, runs 1, last exit never)"
    );
    assert_eq!(st.status.state, "running");
    assert_eq!(st.status.pid, Some(4242));
    assert!(st.status.installed && st.status.enabled && st.status.socket_activated);
    assert!(!st.status.reload_pending);
}

#[test]
fn stopped_crashed_throttled_and_signalled_jobs() {
    let st = status(Some("print-not-running.txt"), "print-disabled-legacy.txt");
    assert_eq!(
        (st.status.state.as_str(), st.status.last_exit),
        ("stopped", Some(0))
    );
    let st = status(Some("print-crashed.txt"), "print-disabled-legacy.txt");
    assert_eq!(
        (st.status.state.as_str(), st.status.last_exit),
        ("failed", Some(78))
    );
    assert_eq!(
        st.runtime,
        "stopped (state not running, runs 1, last exit 78)"
    );
    let st = status(Some("print-throttled.txt"), "print-disabled-legacy.txt");
    assert_eq!(st.status.state, "crash-loop");
    assert_eq!(st.status.sub_state.as_deref(), Some("spawn scheduled"));
    let st = status(Some("print-signal.txt"), "print-disabled-legacy.txt");
    assert_eq!(st.status.state, "running");
    assert_eq!(st.status.last_exit, None, "a signal is not an exit code");
    assert!(
        st.runtime
            .contains("last exit signal 11 (Segmentation fault)")
    );
}

#[test]
fn disabled_not_loaded_and_drifted_jobs() {
    let st = status(None, "print-disabled.txt");
    assert_eq!(st.status.state, "not-loaded");
    assert!(
        st.status.installed && !st.status.enabled,
        "persisted disable"
    );
    let st = status(Some("print-drifted.txt"), "print-disabled-legacy.txt");
    assert!(st.status.reload_pending);
    assert_eq!(st.drift.len(), 1, "{:?}", st.drift);
}
