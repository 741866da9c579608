//! `LaunchdManager` end to end against the simulated launchd: exact launchctl sequences for
//! install/start/stop/restart/uninstall, the 37/EIO/125 error sequences, the LaunchDaemon
//! refusal, config refusal, secrets, and the restart-from-inside hand-off.
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openclaw::service::launchd::plist::render;
use openclaw::service::launchd::{LaunchdJob, LaunchdManager, Op, Timeouts, policy};
use openclaw::service::{ServiceManager, ServiceSpec};

use super::fake::{Behaviour, FakeClock, FakeLaunchd};
use super::spec;

const LABEL: &str = "ai.openclaw.gateway";
const T: &str = "gui/501/ai.openclaw.gateway";

struct Rig {
    _dir: tempfile::TempDir,
    home: PathBuf,
    daemons: PathBuf,
    fake: FakeLaunchd,
    clock: FakeClock,
    spec: ServiceSpec,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let daemons = dir.path().join("LaunchDaemons");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&daemons).unwrap();
        let spec = spec(&home);
        Rig {
            _dir: dir,
            home,
            daemons,
            fake: FakeLaunchd::new(501, LABEL),
            clock: FakeClock::default(),
            spec,
        }
    }

    fn manager_with_env(&self, env: &[(&str, &str)]) -> LaunchdManager {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LaunchdManager::new(
            Box::new(self.fake.clone()),
            Box::new(self.clock.clone()),
            Box::new(env),
            501,
            self.home.clone(),
        )
        .with_daemons_dir(&self.daemons)
        .with_caller_pid(4321)
    }

    fn manager(&self) -> LaunchdManager {
        self.manager_with_env(&[])
    }

    fn plist(&self) -> PathBuf {
        self.home
            .join("Library/LaunchAgents/ai.openclaw.gateway.plist")
    }

    fn rendered(&self) -> String {
        render(&LaunchdJob::from_spec(&self.spec, &self.home).unwrap())
    }

    fn write_config(&self, text: &str) {
        std::fs::create_dir_all(&self.spec.state_dir).unwrap();
        std::fs::write(&self.spec.config_path, text).unwrap();
    }
}

fn observe_calls() -> Vec<String> {
    vec![
        format!("launchctl print {T}"),
        "launchctl print-disabled gui/501".into(),
        format!("launchctl print system/{LABEL}"),
    ]
}

fn concat(parts: &[Vec<String>]) -> Vec<String> {
    parts.concat()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn fresh_install_runs_the_exact_sequence_and_writes_the_files() {
    let r = Rig::new();
    let report = r
        .manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    let plist = r.plist().display().to_string();
    assert_eq!(
        r.fake.calls(),
        concat(&[
            observe_calls(),
            vec![
                format!("launchctl enable {T}"),
                format!("launchctl bootstrap gui/501 {plist}"),
                format!("launchctl kickstart {T}"),
                format!("launchctl print {T}"),
            ],
        ])
    );
    assert_eq!(std::fs::read_to_string(r.plist()).unwrap(), r.rendered());
    let mode = std::fs::metadata(r.plist()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "launchd ignores group/world-writable agents");
    let logs = r.home.join("Library/Logs/openclaw");
    assert_eq!(
        std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&r.spec.state_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert!(
        report.lines.iter().any(|l| l.contains("running (pid 4242")),
        "{report:?}"
    );
    assert_eq!(r.clock.sleeps.get(), 0, "nothing to wait for");
    // No stray temp files next to the plist.
    let names: Vec<_> = std::fs::read_dir(r.plist().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("ai.openclaw.gateway.plist")]
    );
}

#[test]
fn install_is_idempotent_over_twenty_runs() {
    let r = Rig::new();
    let m = r.manager();
    m.apply(Op::Install { force: false }, &r.spec).unwrap();
    let mtime = std::fs::metadata(r.plist()).unwrap().modified().unwrap();
    r.fake.clear_calls();
    for _ in 0..20 {
        let rep = m.apply(Op::Install { force: false }, &r.spec).unwrap();
        assert_eq!(
            rep.lines,
            vec![format!("{T} is installed, current and running")]
        );
    }
    let calls = r.fake.calls();
    assert_eq!(calls.len(), 20 * 3, "only observation: {calls:?}");
    assert!(calls.iter().all(|c| c.contains(" print")), "{calls:?}");
    assert_eq!(
        std::fs::metadata(r.plist()).unwrap().modified().unwrap(),
        mtime
    );
    assert_eq!(
        r.fake.job().unwrap().pid,
        Some(4242),
        "the gateway was never restarted"
    );
}

#[test]
fn reinstall_with_a_new_port_boots_out_waits_for_teardown_then_bootstraps() {
    let r = Rig::new();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    r.fake.with(|s| s.teardown_polls = 2);
    r.fake.clear_calls();
    let mut spec = r.spec.clone();
    spec.port = 18800;
    r.manager()
        .apply(Op::Install { force: false }, &spec)
        .unwrap();
    let plist = r.plist().display().to_string();
    assert_eq!(
        r.fake.calls(),
        concat(&[
            observe_calls(),
            vec![
                format!("launchctl enable {T}"),
                format!("launchctl bootout {T}"),
                // bootout is asynchronous: the label stays visible for two polls.
                format!("launchctl print {T}"),
                format!("launchctl print {T}"),
                format!("launchctl print {T}"),
                format!("launchctl bootstrap gui/501 {plist}"),
                format!("launchctl kickstart {T}"),
                format!("launchctl print {T}"),
            ],
        ])
    );
    assert_eq!(
        r.clock.sleeps.get(),
        2,
        "two poll intervals, on the fake clock"
    );
    let job = r.fake.job().unwrap();
    assert_eq!(job.args.last().map(String::as_str), Some("18800"));
    assert_eq!(job.pid, Some(4243));
}

#[test]
fn bootstrap_retries_on_37_then_succeeds() {
    let r = Rig::new();
    for _ in 0..2 {
        r.fake.fail_next(
            "bootstrap",
            37,
            "Bootstrap failed: 37: Operation already in progress\n",
        );
    }
    let rep = r
        .manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    let boots = r
        .fake
        .calls()
        .iter()
        .filter(|c| c.contains("bootstrap"))
        .count();
    assert_eq!(boots, 3);
    assert!(
        rep.lines
            .iter()
            .any(|l| l.contains("37 (Operation already in progress); retrying (1/5)")),
        "{rep:?}"
    );
    assert!(rep.lines.iter().any(|l| l.contains("retrying (2/5)")));
    assert!(r.fake.job().unwrap().pid.is_some());
    // Back-off 0.5 s then 1 s, plus no unload polls (the label was never loaded).
    assert_eq!(r.clock.now.get(), Duration::from_millis(1500));
}

#[test]
fn bootstrap_eio_retries_are_bounded_and_the_error_says_what_to_do() {
    let r = Rig::new();
    for _ in 0..10 {
        r.fake
            .fail_next("bootstrap", 5, "Bootstrap failed: 5: Input/output error\n");
    }
    let e = r
        .manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap_err();
    let msg = e.to_string();
    assert_eq!(
        r.fake
            .calls()
            .iter()
            .filter(|c| c.contains("bootstrap"))
            .count(),
        5
    );
    assert!(
        msg.contains(&format!(
            "`launchctl bootstrap gui/501 {}` failed with 5: Input/output error",
            r.plist().display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("print-disabled gui/501") && msg.contains("0644"),
        "{msg}"
    );
    assert!(
        r.clock.now.get() < Duration::from_secs(10),
        "bounded back-off"
    );
}

#[test]
fn persisted_disable_is_cleared_before_bootstrap() {
    let r = Rig::new();
    r.fake.with(|s| s.disabled = true);
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    let calls = r.fake.calls();
    let en = calls.iter().position(|c| c.contains(" enable ")).unwrap();
    let bs = calls
        .iter()
        .position(|c| c.contains(" bootstrap "))
        .unwrap();
    assert!(en < bs, "{calls:?}");
    assert!(!r.fake.with(|s| s.disabled));
}

#[test]
fn eio_after_a_persisted_disable_tells_to_run_launchctl_enable() {
    let r = Rig::new();
    r.fake.with(|s| {
        s.disabled = true;
        s.enable_is_noop = true;
    });
    let e = r
        .manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("failed with 5"), "{msg}");
    assert!(msg.contains("persisted launchd override"), "{msg}");
    assert!(
        msg.contains(&format!("run `launchctl enable {T}`")),
        "{msg}"
    );
}

#[test]
fn no_gui_session_is_refused_before_anything_changes() {
    let r = Rig::new();
    r.fake.with(|s| s.gui = false);
    let e = r
        .manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("gui/501") && msg.contains("SSH"), "{msg}");
    assert!(!r.plist().exists(), "nothing written");
    assert!(
        !r.fake
            .calls()
            .iter()
            .any(|c| c.contains("bootstrap") || c.contains("enable"))
    );
}

#[test]
fn bootstrap_125_is_decoded_as_no_gui_session() {
    let r = Rig::new();
    r.fake.fail_next(
        "bootstrap",
        125,
        "Bootstrap failed: 125: Domain does not support specified action\n",
    );
    let msg = r
        .manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("failed with 125: Domain does not support specified action"),
        "{msg}"
    );
    assert!(
        msg.contains("no macOS GUI login session (SSH, headless or sudo)"),
        "{msg}"
    );
    assert_eq!(
        r.fake
            .calls()
            .iter()
            .filter(|c| c.contains("bootstrap"))
            .count(),
        1,
        "125 is not retried"
    );
}

#[test]
fn launch_daemon_with_the_same_label_blocks_install_start_and_restart() {
    let r = Rig::new();
    let daemon = r.daemons.join("ai.openclaw.gateway.plist");
    std::fs::write(&daemon, "x").unwrap();
    for op in [Op::Install { force: true }, Op::Start, Op::Restart] {
        let msg = r.manager().apply(op, &r.spec).unwrap_err().to_string();
        assert!(
            msg.contains("refusing to install or start the LaunchAgent ai.openclaw.gateway"),
            "{msg}"
        );
        assert!(msg.contains(&daemon.display().to_string()), "{msg}");
    }
    assert!(!r.plist().exists());
    std::fs::remove_file(&daemon).unwrap();
    // Also when only launchd knows about it (`print system/<label>` succeeds).
    r.fake.with(|s| s.system_job = true);
    let msg = r
        .manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("launchctl print system/ai.openclaw.gateway"),
        "{msg}"
    );
    assert!(!r.fake.calls().iter().any(|c| c.contains("bootstrap")));
}

#[test]
fn start_loads_when_needed_and_refuses_when_not_installed() {
    let r = Rig::new();
    let msg = r
        .manager()
        .apply(Op::Start, &r.spec)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("not installed") && msg.contains("openclaw gateway install"),
        "{msg}"
    );
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    r.manager()
        .apply(Op::Stop { disable: false }, &r.spec)
        .unwrap();
    r.fake.clear_calls();
    r.manager().apply(Op::Start, &r.spec).unwrap();
    let plist = r.plist().display().to_string();
    assert_eq!(
        r.fake.calls(),
        concat(&[
            observe_calls(),
            vec![
                format!("launchctl enable {T}"),
                format!("launchctl bootstrap gui/501 {plist}"),
                format!("launchctl kickstart {T}"),
                format!("launchctl print {T}"),
            ],
        ])
    );
    // Starting a running job is a no-op kickstart.
    r.fake.clear_calls();
    r.manager().apply(Op::Start, &r.spec).unwrap();
    assert_eq!(
        r.fake.calls()[3..],
        s(&[
            &format!("launchctl enable {T}"),
            &format!("launchctl kickstart {T}"),
            &format!("launchctl print {T}")
        ])
    );
}

#[test]
fn stop_boots_out_and_waits_but_never_disables_unless_asked() {
    let r = Rig::new();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    r.fake.with(|s| s.teardown_polls = 1);
    r.fake.clear_calls();
    r.manager().stop(&r.spec, &mut Default::default()).unwrap();
    assert_eq!(
        r.fake.calls(),
        concat(&[
            observe_calls(),
            s(&[
                &format!("launchctl bootout {T}"),
                &format!("launchctl print {T}"),
                &format!("launchctl print {T}"),
            ]),
        ])
    );
    assert!(r.fake.job().is_none());
    assert!(!r.fake.with(|s| s.disabled));
    assert!(
        r.plist().exists(),
        "stop keeps the agent installed (it loads again at login)"
    );
    // Stopping again does nothing.
    r.fake.clear_calls();
    let rep = r
        .manager()
        .apply(Op::Stop { disable: false }, &r.spec)
        .unwrap();
    assert_eq!(r.fake.calls(), observe_calls());
    assert!(rep.lines[0].contains("not loaded; nothing to stop"));
    // --disable persists a disable first.
    r.manager().apply(Op::Start, &r.spec).unwrap();
    r.fake.with(|s| s.teardown_polls = 0);
    r.fake.clear_calls();
    r.manager()
        .apply(Op::Stop { disable: true }, &r.spec)
        .unwrap();
    assert_eq!(
        r.fake.calls()[3..],
        s(&[
            &format!("launchctl disable {T}"),
            &format!("launchctl bootout {T}"),
            &format!("launchctl print {T}")
        ])
    );
}

#[test]
fn restart_uses_kickstart_k_when_unchanged() {
    let r = Rig::new();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    r.fake.clear_calls();
    let rep = r.manager().apply(Op::Restart, &r.spec).unwrap();
    assert_eq!(
        r.fake.calls(),
        concat(&[
            observe_calls(),
            s(&[
                &format!("launchctl enable {T}"),
                &format!("launchctl kickstart -k {T}"),
                &format!("launchctl print {T}"),
            ]),
        ])
    );
    assert_eq!(r.fake.job().unwrap().pid, Some(4243), "a new process");
    assert!(
        rep.lines
            .last()
            .unwrap()
            .contains("last exit signal 15 (Terminated)"),
        "{rep:?}"
    );
}

#[test]
fn restart_reloads_when_the_plist_on_disk_changed() {
    let r = Rig::new();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    // An operator edited the port in the plist.
    let edited = std::fs::read_to_string(r.plist())
        .unwrap()
        .replace("18789", "18790");
    std::fs::write(r.plist(), edited).unwrap();
    r.fake.clear_calls();
    r.manager().apply(Op::Restart, &r.spec).unwrap();
    let plist = r.plist().display().to_string();
    assert_eq!(
        r.fake.calls()[3..],
        s(&[
            &format!("launchctl enable {T}"),
            &format!("launchctl bootout {T}"),
            &format!("launchctl print {T}"),
            &format!("launchctl bootstrap gui/501 {plist}"),
            &format!("launchctl kickstart {T}"),
            &format!("launchctl print {T}"),
        ])
    );
    assert_eq!(
        r.fake.job().unwrap().args.last().map(String::as_str),
        Some("18790")
    );
}

#[test]
fn a_failed_kickstart_k_that_unloaded_the_job_is_repaired() {
    let r = Rig::new();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    r.fake.fail_next(
        "kickstart -k",
        5,
        "Kickstart failed: 5: Input/output error\n",
    );
    r.fake.with(|s| s.kickstart_failure_unloads = true);
    r.fake.clear_calls();
    let rep = r.manager().apply(Op::Restart, &r.spec).unwrap();
    let plist = r.plist().display().to_string();
    assert_eq!(
        r.fake.calls()[3..],
        s(&[
            &format!("launchctl enable {T}"),
            &format!("launchctl kickstart -k {T}"),
            &format!("launchctl print {T}"),
            &format!("launchctl bootstrap gui/501 {plist}"),
            &format!("launchctl kickstart {T}"),
            &format!("launchctl print {T}"),
        ])
    );
    assert!(
        rep.lines
            .iter()
            .any(|l| l.contains("the job was unloaded, loading it again"))
    );
    assert!(r.fake.job().unwrap().pid.is_some(), "never left unloaded");
}

#[test]
fn restart_from_inside_the_service_hands_off_to_a_detached_helper() {
    let r = Rig::new();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    r.fake.clear_calls();
    for env in [
        vec![("XPC_SERVICE_NAME", LABEL)],
        vec![
            ("OPENCLAW_LAUNCHD_LABEL", LABEL),
            ("OPENCLAW_SERVICE_MARKER", "openclaw"),
        ],
    ] {
        r.fake.with(|s| s.spawned.clear());
        let m = r.manager_with_env(&env);
        let rep = m.apply(Op::Restart, &r.spec).unwrap();
        assert_eq!(rep.helper_pid, Some(7777));
        let spawned = r.fake.with(|s| s.spawned.clone());
        assert_eq!(spawned.len(), 1);
        let argv = &spawned[0];
        assert_eq!(argv[0], "/bin/sh");
        assert_eq!(argv[1], "-c");
        assert_eq!(
            argv[3..],
            s(&["openclaw-launchd-helper", "4321"]),
            "waits for the caller pid"
        );
        assert!(
            argv[2].contains(&format!("/bin/launchctl kickstart -k {T}")),
            "{}",
            argv[2]
        );
        assert!(
            rep.lines
                .last()
                .unwrap()
                .contains("handed the rest to helper pid 7777")
        );
    }
    // Nothing disruptive ran in-process: only observation and the enable.
    assert!(
        !r.fake
            .calls()
            .iter()
            .any(|c| c.contains("kickstart") || c.contains("bootout"))
    );
    // A different profile's gateway is not "inside" this one.
    let other = r.manager_with_env(&[("XPC_SERVICE_NAME", "ai.openclaw.work")]);
    assert_eq!(other.apply(Op::Restart, &r.spec).unwrap().helper_pid, None);
}

#[test]
fn uninstall_boots_out_clears_the_override_and_trashes_the_plist() {
    let r = Rig::new();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    std::fs::create_dir_all(r.home.join(".Trash")).unwrap();
    r.fake.with(|s| s.disabled = true);
    policy::write_refusal(&r.spec.state_dir, "old").unwrap();
    r.fake.clear_calls();
    r.manager()
        .uninstall(&r.spec, &mut Default::default())
        .unwrap();
    assert_eq!(
        r.fake.calls()[3..],
        s(&[
            &format!("launchctl bootout {T}"),
            &format!("launchctl print {T}"),
            &format!("launchctl enable {T}"),
        ])
    );
    assert!(!r.plist().exists());
    assert!(r.home.join(".Trash/ai.openclaw.gateway.plist").exists());
    assert!(policy::read_refusal(&r.spec.state_dir).is_none());
    assert!(r.fake.job().is_none());
    // Uninstalling again is a no-op that succeeds; without a Trash the file is deleted.
    r.manager()
        .uninstall(&r.spec, &mut Default::default())
        .unwrap();
    std::fs::remove_dir_all(r.home.join(".Trash")).unwrap();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    r.manager()
        .uninstall(&r.spec, &mut Default::default())
        .unwrap();
    assert!(!r.plist().exists());
}

#[test]
fn config_refusal_is_reported_by_install_and_status() {
    let r = Rig::new();
    let msg = "invalid config ~/.openclaw/openclaw.json: gateway.bind=lan requires auth";
    r.fake
        .with(|s| s.behaviour = Behaviour::Refuses(r.spec.state_dir.clone(), msg.into()));
    let e = r
        .manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap_err()
        .to_string();
    assert!(e.contains("loaded but not running"), "{e}");
    assert!(
        e.contains(&format!("The gateway refused to start: {msg}")),
        "{e}"
    );
    assert!(e.contains("Logs: ") && e.contains("gateway.log"), "{e}");
    assert_eq!(
        r.clock.sleeps.get(),
        0,
        "the marker ends the wait immediately"
    );
    let st = r.manager().inspect(&r.spec).unwrap();
    assert_eq!(st.status.state, "refused");
    assert!(
        st.runtime.contains("last exit 0") && st.runtime.contains(msg),
        "{}",
        st.runtime
    );
    // A fixed config + start clears the marker.
    r.fake.with(|s| s.behaviour = Behaviour::Runs);
    r.manager().apply(Op::Start, &r.spec).unwrap();
    let st = r.manager().inspect(&r.spec).unwrap();
    assert_eq!(st.status.state, "running");
    assert!(st.refusal.is_none());
}

#[test]
fn a_crash_looping_gateway_fails_verification_after_the_bounded_wait() {
    let r = Rig::new();
    r.fake.with(|s| s.behaviour = Behaviour::Exits(1));
    let m = r.manager().with_timeouts(Timeouts {
        running: Duration::from_secs(3),
        ..Timeouts::default()
    });
    let e = m
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("crash-looping (state spawn scheduled, runs 2, last exit 1) after 3 s"),
        "{e}"
    );
    let polls = r
        .fake
        .calls()
        .iter()
        .filter(|c| *c == &format!("launchctl print {T}"))
        .count();
    assert_eq!(polls, 1 + 13, "observe + polls every 250 ms for 3 s");
    let st = r.manager().inspect(&r.spec).unwrap();
    assert_eq!(st.status.state, "crash-loop");
    assert_eq!(st.status.last_exit, Some(1));
}

#[test]
fn status_reports_runtime_drift_and_logs() {
    let r = Rig::new();
    let st = r.manager().status(&r.spec).unwrap();
    assert_eq!((st.installed, st.state.as_str()), (false, "not-installed"));
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    let st = r.manager().inspect(&r.spec).unwrap();
    assert_eq!(
        st.runtime,
        "running (pid 4242, state running, runs 1, last exit never)"
    );
    let s = &st.status;
    assert_eq!(s.manager, "launchd");
    assert_eq!(s.name, LABEL);
    assert!(s.installed && s.enabled && s.socket_activated && !s.reload_pending);
    assert_eq!(s.pid, Some(4242));
    assert_eq!(s.sub_state.as_deref(), Some("running"));
    assert_eq!(s.file.as_deref(), Some(r.plist().as_path()));
    assert_eq!(
        s.logs.as_deref(),
        Some(
            r.home
                .join("Library/Logs/openclaw/gateway.log")
                .to_str()
                .unwrap()
        )
    );
    assert!(!st.stale && st.drift.is_empty());
    // The plist on disk changed but launchd still runs the old definition.
    let edited = std::fs::read_to_string(r.plist())
        .unwrap()
        .replace("18789", "18790");
    std::fs::write(r.plist(), edited).unwrap();
    let st = r.manager().inspect(&r.spec).unwrap();
    assert!(st.status.reload_pending && st.stale);
    assert!(st.drift[0].contains("18790"), "{:?}", st.drift);
    // Stopped (booted out): installed but not loaded.
    r.manager()
        .apply(Op::Stop { disable: false }, &r.spec)
        .unwrap();
    let st = r.manager().inspect(&r.spec).unwrap();
    assert_eq!(st.status.state, "not-loaded");
    assert!(st.runtime.starts_with("not loaded"));
    // A persisted disable shows as not enabled.
    r.fake.with(|s| s.disabled = true);
    assert!(!r.manager().status(&r.spec).unwrap().enabled);
    // No GUI session: status degrades instead of failing.
    r.fake.with(|s| s.gui = false);
    let st = r.manager().inspect(&r.spec).unwrap();
    assert_eq!(st.status.state, "unavailable");
    assert!(st.runtime.contains("no GUI login session"));
}

#[test]
fn no_secret_reaches_the_plist_even_when_config_holds_a_token() {
    let r = Rig::new();
    let token = "9f2c1e7a4b3d8c6e5f1a2b3c4d5e6f70";
    r.write_config(&format!(
        "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }} }} }}"
    ));
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    let plist = std::fs::read_to_string(r.plist()).unwrap();
    assert!(!plist.contains(token));
    assert!(
        !plist.to_ascii_uppercase().contains("TOKEN"),
        "no token-named key either"
    );
    // A secret-named key in the service environment is refused, and nothing changes.
    let before = std::fs::read(r.plist()).unwrap();
    let mut bad = r.spec.clone();
    bad.env = vec![("OPENCLAW_GATEWAY_TOKEN".into(), token.into())];
    let msg = r
        .manager()
        .apply(Op::Install { force: true }, &bad)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("refusing to write environment variable OPENCLAW_GATEWAY_TOKEN"),
        "{msg}"
    );
    assert!(!msg.contains(token), "errors never echo the secret");
    // The token smuggled under an innocent name is caught by the config cross-check.
    let mut sneaky = r.spec.clone();
    sneaky.env = vec![("EXTRA".into(), token.into())];
    let msg = r
        .manager()
        .apply(Op::Install { force: true }, &sneaky)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("the value of gateway.auth.token from"),
        "{msg}"
    );
    assert!(!msg.contains(token));
    assert_eq!(std::fs::read(r.plist()).unwrap(), before, "plist untouched");
}

#[test]
fn an_invalid_config_blocks_install_but_not_stop() {
    let r = Rig::new();
    r.manager()
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    r.write_config("{ gateway: { port: 'x' } }");
    r.fake.clear_calls();
    let e = r.manager().apply(Op::Restart, &r.spec).unwrap_err();
    assert!(e.to_string().contains("The service was not changed"), "{e}");
    assert!(r.fake.calls().is_empty(), "refused before touching launchd");
    let err: openclaw::error::Error = e.into();
    assert_eq!(err.exit() as i32, 78);
    r.manager()
        .apply(Op::Stop { disable: false }, &r.spec)
        .unwrap();
    assert!(r.fake.job().is_none());
}

#[test]
fn root_is_refused() {
    let r = Rig::new();
    let m = LaunchdManager::new(
        Box::new(r.fake.clone()),
        Box::new(r.clock.clone()),
        Box::new(HashMap::<String, String>::new()),
        0,
        r.home.clone(),
    );
    let msg = m
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("without sudo"), "{msg}");
}

#[test]
fn dry_run_plan_changes_nothing() {
    let r = Rig::new();
    let steps = r
        .manager()
        .plan(Op::Install { force: false }, &r.spec)
        .unwrap();
    let text: Vec<String> = steps.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("launchctl bootstrap gui/501 ")),
        "{text:?}"
    );
    assert!(!r.plist().exists());
    assert_eq!(r.fake.calls(), observe_calls());
    let _ = Path::new("");
}

#[test]
fn without_socket_activation_the_plist_has_no_sockets() {
    let r = Rig::new();
    r.manager()
        .with_socket_activation(false)
        .apply(Op::Install { force: false }, &r.spec)
        .unwrap();
    let text = std::fs::read_to_string(r.plist()).unwrap();
    assert!(!text.contains("<key>Sockets</key>"));
    let st = r
        .manager()
        .with_socket_activation(false)
        .inspect(&r.spec)
        .unwrap();
    assert!(!st.status.socket_activated && !st.stale);
    // The default manager would rewrite it with sockets.
    assert!(r.manager().inspect(&r.spec).unwrap().stale);
}
