//! The systemd manager driven through a fake `systemctl` (support/fake_systemctl.rs): the
//! exact argv sequences of install/start/stop/restart/uninstall/status, the report it returns
//! instead of printing, and its typed errors. No real systemd here; the sandboxed real-manager
//! suites are systemd_e2e.rs and systemd_zdt.rs.
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use openclaw::config::paths::Paths;
use openclaw::service::Action;
use openclaw::service::systemd::{SystemdEnv, SystemdError, SystemdManager};
use openclaw::service::{NativeOptions, Report, ServiceManager, ServiceSpec};

use crate::support::fake_systemctl::FakeSystemctl;

const SERVICE_PROPS: &str = "LoadState,ActiveState,SubState,Result,MainPID,ExecMainStatus,ExecMainCode,NRestarts,StartLimitBurst,FragmentPath,DropInPaths,NeedDaemonReload,UnitFileState,StatusText";
const SOCKET_PROPS: &str = "LoadState,ActiveState,SubState,Listen,NeedDaemonReload,UnitFileState";

const VERSION: &str = "systemctl --user show --property=Version --value";
const SVC: &str = "openclaw-gateway.service";
const SOCK: &str = "openclaw-gateway.socket";

struct Rig {
    dir: tempfile::TempDir,
    fake: FakeSystemctl,
    spec: ServiceSpec,
}

impl Rig {
    /// A user `alice` (uid 1000) whose user manager answers on `<tmp>/run/bus`.
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::write(dir.path().join("run/bus"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("etc-system")).unwrap();
        let env: HashMap<String, String> =
            [("HOME".to_string(), home.display().to_string())].into();
        let paths = Paths::resolve(None, false, &env).unwrap();
        let spec = ServiceSpec::for_paths(
            &paths,
            paths.unit_name(),
            18789,
            PathBuf::from("/usr/bin/openclaw"),
        );
        let fake = FakeSystemctl::new(home.join(".config/systemd/user"), "openclaw-gateway");
        Rig { dir, fake, spec }
    }

    fn env(&self) -> SystemdEnv {
        SystemdEnv {
            uid: 1000,
            user: Some("alice".into()),
            home: Some(self.dir.path().join("home")),
            config_home: None,
            runtime_dir: Some(self.dir.path().join("run")),
            sudo_user: None,
        }
    }

    fn manager(&self) -> SystemdManager {
        SystemdManager::with_env(
            &NativeOptions::default(),
            self.env(),
            Box::new(self.fake.clone()),
        )
        .unwrap()
        .with_system_dirs(vec![self.dir.path().join("etc-system")])
    }

    fn unit(&self, ext: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("home/.config/systemd/user/openclaw-gateway.{ext}"))
    }

    fn apply(&self, op: Action) -> (Result<(), SystemdError>, Report) {
        let mut report = Report::default();
        let r = self.manager().apply(op, &self.spec, &mut report);
        (r, report)
    }

    fn install(&self) -> Report {
        let (r, report) = self.apply(Action::Install { force: false });
        r.unwrap();
        report
    }
}

fn user(args: &str) -> String {
    format!("systemctl --user {args}")
}

fn install_observation() -> Vec<String> {
    vec![
        VERSION.into(),
        // The system manager is asked whether it has a same-named unit…
        format!("systemctl show {SVC} --property=LoadState,FragmentPath"),
        // …and the user manager whether another file defines ours.
        user(&format!("show {SVC} --property=LoadState,FragmentPath")),
        user(&format!("show {SVC} --property={SERVICE_PROPS}")),
    ]
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn install_writes_the_units_then_reloads_enables_and_starts() {
    let rig = Rig::new();
    let report = rig.install();
    let mut want = install_observation();
    want.extend([
        user("daemon-reload"),
        user(&format!("enable {SOCK} {SVC}")),
        user(&format!("stop {SVC} {SOCK}")),
        user(&format!("reset-failed {SVC} {SOCK}")),
        user(&format!("start --no-block {SOCK} {SVC}")),
    ]);
    assert_eq!(rig.fake.calls(), want);
    assert_eq!(
        report.lines,
        [
            format!("Wrote {}", rig.unit("socket").display()),
            format!("Wrote {}", rig.unit("service").display()),
        ]
    );
    assert_eq!(mode(&rig.unit("service")), 0o644);
    assert!(
        std::fs::read_to_string(rig.unit("service"))
            .unwrap()
            .contains(openclaw::service::systemd::manager::MARKER)
    );
    let st = rig.fake.0.borrow();
    assert!(st.loaded && st.enabled && st.pid != 0, "{st:?}");
}

#[test]
fn a_current_running_install_changes_nothing_and_force_rewrites_with_a_private_backup() {
    let rig = Rig::new();
    rig.install();
    rig.fake.clear_calls();
    let report = rig.install();
    let mut want = install_observation();
    want.push(user(&format!("enable {SOCK} {SVC}")));
    assert_eq!(rig.fake.calls(), want);
    assert!(report.lines.is_empty(), "{report:?}");

    // An operator's token in the old unit never survives into the backup.
    let svc = rig.unit("service");
    let old = std::fs::read_to_string(&svc).unwrap();
    std::fs::write(
        &svc,
        format!("{old}Environment=OPENCLAW_GATEWAY_TOKEN=sekrit\n"),
    )
    .unwrap();
    rig.fake.clear_calls();
    let (r, report) = rig.apply(Action::Install { force: true });
    r.unwrap();
    let bak = PathBuf::from(format!("{}.bak", svc.display()));
    assert_eq!(
        report.lines,
        [
            format!(
                "Rewrote {} (previous: {}.bak)",
                rig.unit("socket").display(),
                rig.unit("socket").display()
            ),
            format!("Rewrote {} (previous: {})", svc.display(), bak.display()),
        ]
    );
    assert_eq!(mode(&bak), 0o600);
    let kept = std::fs::read_to_string(&bak).unwrap();
    assert!(!kept.contains("sekrit"), "{kept}");
    assert!(kept.contains(openclaw::service::scrub::SCRUBBED), "{kept}");
    assert_eq!(std::fs::read_to_string(&svc).unwrap(), old);
}

#[test]
fn start_stop_restart_act_on_both_units() {
    let rig = Rig::new();
    rig.install();
    let loaded = user(&format!("show {SVC} --property=LoadState"));

    rig.fake.clear_calls();
    rig.apply(Action::Stop).0.unwrap();
    assert_eq!(
        rig.fake.calls(),
        [
            VERSION.into(),
            loaded.clone(),
            user(&format!("stop {SVC} {SOCK}"))
        ]
    );
    assert_eq!(rig.fake.0.borrow().pid, 0);

    rig.fake.clear_calls();
    rig.apply(Action::Start).0.unwrap();
    assert_eq!(
        rig.fake.calls(),
        [
            VERSION.into(),
            loaded.clone(),
            user(&format!("reset-failed {SVC} {SOCK}")),
            user(&format!("start --no-block {SOCK} {SVC}")),
        ]
    );
    let first = rig.fake.0.borrow().pid;
    assert_ne!(first, 0);

    rig.fake.clear_calls();
    let (r, report) = rig.apply(Action::Restart);
    r.unwrap();
    assert!(report.lines.is_empty());
    assert_eq!(
        rig.fake.calls(),
        [
            VERSION.into(),
            loaded,
            user(&format!("reset-failed {SVC} {SOCK}")),
            // The socket stays up: connections queue while the service restarts.
            user(&format!("start --no-block {SOCK}")),
            user(&format!("restart --no-block {SVC}")),
        ]
    );
    assert_ne!(rig.fake.0.borrow().pid, first);
}

#[test]
fn restart_of_a_unit_that_is_not_installed_fails_typed_before_acting() {
    let rig = Rig::new();
    let (r, report) = rig.apply(Action::Restart);
    match r {
        Err(SystemdError::NotInstalled { unit, .. }) => assert_eq!(unit, SVC),
        other => panic!("expected NotInstalled, got {other:?}"),
    }
    assert!(report.lines.is_empty());
    assert_eq!(
        rig.fake.calls(),
        [
            VERSION.to_string(),
            user(&format!("show {SVC} --property=LoadState"))
        ]
    );
    // Through the portable trait the same refusal reads as before.
    let e = rig
        .manager()
        .restart(&rig.spec, &mut Report::default())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{SVC} is not installed for the systemd user manager: run `openclaw gateway install` first"
        )
    );
}

#[test]
fn a_step_that_fails_part_way_keeps_what_was_done_in_the_report() {
    let rig = Rig::new();
    rig.fake.fail_next("daemon-reload", 1, "Access denied");
    let (r, report) = rig.apply(Action::Install { force: false });
    match r {
        Err(SystemdError::Failed { argv, status, .. }) => {
            assert_eq!(argv.join(" "), user("daemon-reload"));
            assert_eq!(status, 1);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(report.lines.len(), 2, "{report:?}");
    assert_eq!(
        rig.fake.calls().last().map(String::as_str),
        Some(user("daemon-reload").as_str())
    );
}

#[test]
fn status_of_a_failed_unit_reads_its_exit_and_linger() {
    let rig = Rig::new();
    rig.install();
    {
        let mut s = rig.fake.0.borrow_mut();
        s.active = "failed".into();
        s.sub = "failed".into();
        s.result = "exit-code".into();
        s.pid = 0;
        s.exit = Some(78);
        s.linger = "no".into();
    }
    rig.fake.clear_calls();
    let st = rig.manager().status(&rig.spec).unwrap();
    assert_eq!(
        rig.fake.calls(),
        [
            user(&format!(
                "show {SVC} {SOCK} --property={SERVICE_PROPS},{SOCKET_PROPS}"
            )),
            "loginctl show-user alice --property=Linger --value".to_string(),
        ]
    );
    assert_eq!(st.state, "failed");
    assert_eq!(st.runtime_word(), "failed");
    assert_eq!(st.last_exit, Some(78));
    assert_eq!(st.result.as_deref(), Some("exit-code"));
    assert_eq!(st.linger.as_deref(), Some("no"));
    assert_eq!(st.source.as_deref(), Some("install"));
    assert!(st.installed && st.enabled && !st.socket_activated);
    assert_eq!(st.listen, ["127.0.0.1:18789"]);
}

#[test]
fn uninstall_removes_what_install_wrote_and_keeps_foreign_files() {
    let rig = Rig::new();
    rig.install();
    rig.apply(Action::Install { force: true }).0.unwrap(); // leaves .bak files
    std::fs::write(rig.unit("socket"), "[Socket]\nListenStream=1\n").unwrap();
    rig.fake.clear_calls();
    let (r, report) = rig.apply(Action::Uninstall);
    let sock = rig.unit("socket").display().to_string();
    match r {
        Err(SystemdError::ForeignFilesKept { files }) => assert_eq!(files, [sock.as_str()]),
        other => panic!("expected ForeignFilesKept, got {other:?}"),
    }
    assert_eq!(
        rig.fake.calls(),
        [
            VERSION.to_string(),
            user(&format!("disable --now {SOCK} {SVC}")),
            user(&format!("reset-failed {SVC} {SOCK}")),
            user("daemon-reload"),
        ]
    );
    let svc = rig.unit("service").display().to_string();
    assert_eq!(
        report.lines,
        [
            format!("Removed {sock}.bak"),
            format!("Removed {svc}"),
            format!("Removed {svc}.bak"),
        ]
    );
    assert!(rig.unit("socket").exists() && !rig.unit("service").exists());
}

#[test]
fn no_user_manager_is_said_precisely_without_running_systemctl() {
    let rig = Rig::new();
    std::fs::remove_file(rig.dir.path().join("run/bus")).unwrap();
    let (r, _) = rig.apply(Action::Start);
    assert!(
        matches!(r, Err(SystemdError::NoUserManager { uid: 1000, .. })),
        "{r:?}"
    );
    assert!(rig.fake.calls().is_empty());
    let no_home = SystemdEnv {
        home: None,
        ..rig.env()
    };
    assert!(matches!(
        SystemdManager::with_env(
            &NativeOptions::default(),
            no_home,
            Box::new(rig.fake.clone())
        ),
        Err(SystemdError::NoHome)
    ));
}
