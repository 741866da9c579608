//! `openclaw doctor` on crafted broken state in a temp HOME: pure checks through an injected
//! context (permissions, broken config, drifted/edited/package units, drop-ins, secrets), the
//! repairs (backups, never clobbering operator edits or drop-ins, idempotent), and the CLI.
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use openclaw::config::Config;
use openclaw::config::paths::Paths;
use openclaw::doctor::checks::{self, MARKER, level_of};
use openclaw::doctor::{Ctx, Level, ManagerKind, Repair, Report, ServiceCtx, repair, run_all};
use openclaw::service::ServiceSpec;
use openclaw::service::systemd::unit::{Scope, UnitOptions, render_service, render_socket};

use crate::support::free_port;
use crate::support::ops::{run, write_config};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// What `gateway install` writes for `program` on `port` in `home` (the real renderer).
fn desired(home: &Path, program: &Path, port: u16) -> String {
    let env: HashMap<String, String> = [("HOME".to_string(), home.display().to_string())].into();
    let paths = Paths::resolve(None, false, &env).unwrap();
    let spec = ServiceSpec::for_paths(&paths, paths.unit_name(), port, program.to_path_buf());
    let opts = UnitOptions {
        scope: Scope::User,
        systemd_version: 252,
        home: Some(home.to_path_buf()),
    };
    let text = render_service(&spec, &opts).unwrap();
    assert!(text.contains(MARKER));
    text
}

/// The socket unit `gateway install` writes next to [`desired`].
fn desired_socket(home: &Path, port: u16) -> String {
    let env: HashMap<String, String> = [("HOME".to_string(), home.display().to_string())].into();
    let paths = Paths::resolve(None, false, &env).unwrap();
    let spec = ServiceSpec::for_paths(&paths, paths.unit_name(), port, "/x".into());
    let opts = UnitOptions {
        scope: Scope::User,
        systemd_version: 252,
        home: Some(home.to_path_buf()),
    };
    render_socket(&spec, &opts).unwrap()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

struct World {
    home: tempfile::TempDir,
    program: PathBuf,
    calls: Rc<RefCell<Vec<bool>>>,
}

impl World {
    fn new(config: &str) -> World {
        let home = tempfile::tempdir().unwrap();
        write_config(home.path(), None, config);
        let bin = home.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let program = bin.join("openclaw");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        chmod(&program, 0o755);
        World {
            program: program.canonicalize().unwrap(),
            home,
            calls: Rc::new(RefCell::new(Vec::new())),
        }
    }
    fn user_dir(&self) -> PathBuf {
        self.home.path().join(".config/systemd/user")
    }
    fn unit(&self) -> PathBuf {
        self.user_dir().join("openclaw-gateway.service")
    }
    fn pkg_dir(&self) -> PathBuf {
        self.home.path().join("pkg/usr/lib/systemd/user")
    }
    fn install_unit(&self, text: &str) {
        std::fs::create_dir_all(self.user_dir()).unwrap();
        std::fs::write(self.unit(), text).unwrap();
    }
    fn paths(&self) -> Paths {
        let env: HashMap<String, String> =
            [("HOME".to_string(), self.home.path().display().to_string())].into();
        Paths::resolve(None, false, &env).unwrap()
    }
    /// A context as doctor builds it, with the service view injected. The reinstaller
    /// records its calls and writes what install would write (keeping a .bak).
    fn ctx(&self, env: &[(&str, &str)]) -> Ctx {
        let paths = self.paths();
        let env_map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::load(&paths.config_path).map_err(|e| e.to_string());
        let cli_port = config
            .as_ref()
            .ok()
            .and_then(|c| openclaw::ops::conn::local_port(&paths, None, &env_map, c).ok());
        let port = cli_port.as_ref().map(|(p, _)| *p).unwrap_or(18789);
        let want = desired(self.home.path(), &self.program, port);
        let calls = self.calls.clone();
        let unit = self.unit();
        let write = want.clone();
        ServiceCtx {
            kind: Some(ManagerKind::Systemd),
            name: "openclaw-gateway".into(),
            user_dir: self.user_dir(),
            package_dirs: vec![self.pkg_dir()],
            system_dirs: vec![self.home.path().join("pkg/etc/systemd/system")],
            desired: Ok(want),
            desired_socket: None,
            exposure: None,
            status: None,
            reinstall: Some(Box::new(move |force| {
                calls.borrow_mut().push(force);
                // Like install: the backup keeps no credential.
                if let Ok(prev) = std::fs::read_to_string(&unit) {
                    let kept =
                        openclaw::service::scrub::scrub_secret_lines(&prev, &[]).unwrap_or(prev);
                    std::fs::write(format!("{}.bak", unit.display()), kept).unwrap();
                }
                std::fs::write(&unit, &write).unwrap();
                Ok(format!("rewrote {}", unit.display()))
            })),
        }
        .into_ctx(paths, env_map, config, cli_port, self.program.clone())
    }
    fn report(&self, env: &[(&str, &str)]) -> (Report, Ctx) {
        let c = self.ctx(env);
        (run_all(&checks::all(), &c), c)
    }
}

trait IntoCtx {
    fn into_ctx(
        self,
        paths: Paths,
        env: HashMap<String, String>,
        config: Result<Config, String>,
        cli_port: Option<(u16, String)>,
        program: PathBuf,
    ) -> Ctx;
}

impl IntoCtx for ServiceCtx {
    fn into_ctx(
        self,
        paths: Paths,
        env: HashMap<String, String>,
        config: Result<Config, String>,
        cli_port: Option<(u16, String)>,
        program: PathBuf,
    ) -> Ctx {
        Ctx {
            paths,
            env,
            config,
            cli_port,
            program,
            version: env!("CARGO_PKG_VERSION").into(),
            service: self,
            gateway: None,
            deep: false,
        }
    }
}

fn finding<'a>(r: &'a Report, id: &str) -> &'a openclaw::doctor::Finding {
    r.findings.iter().find(|f| f.id == id).unwrap()
}

const GOOD: &str = "{ gateway: { mode: 'local', port: 18795, auth: { mode: 'token', token: 'tok-0123456789abcdef' } } }";

#[test]
fn permissions_and_missing_mode_are_repaired_with_a_backup_then_nothing_is_left() {
    let w = World::new("{ gateway: { port: 18795, auth: { token: 'tok-0123456789abcdef' } } }");
    let state = w.home.path().join(".openclaw");
    let cfg = state.join("openclaw.json");
    chmod(&state, 0o755);
    chmod(&cfg, 0o644);
    let before = std::fs::read_to_string(&cfg).unwrap();
    let (r, c) = w.report(&[]);
    assert_eq!(level_of(&r, "state-permissions"), Some(Level::Fail));
    assert_eq!(level_of(&r, "gateway-mode"), Some(Level::Fail));
    assert!(
        finding(&r, "state-permissions").details.len() == 1,
        "both offenders listed"
    );
    let applied = repair::apply(&r, &c, false);
    assert!(applied.iter().all(|a| a.ok), "{applied:#?}");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&cfg), 0o600);
    let after = Config::load(&cfg).unwrap();
    assert_eq!(after.gateway.mode.as_deref(), Some("local"));
    assert_eq!(
        after.get("gateway.auth.token").and_then(|v| v.as_str()),
        Some("tok-0123456789abcdef"),
        "repairs never drop a value"
    );
    let bak = PathBuf::from(format!("{}.bak", cfg.display()));
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), before);
    assert_eq!(mode(&bak), 0o600);
    // Idempotent: a fresh run finds nothing to repair and changes nothing.
    let (r2, c2) = w.report(&[]);
    assert_eq!(level_of(&r2, "state-permissions"), Some(Level::Ok));
    assert_eq!(level_of(&r2, "gateway-mode"), Some(Level::Ok));
    assert!(r2.repairable(true).is_empty(), "{:#?}", r2.repairable(true));
    let snapshot = std::fs::read_to_string(&cfg).unwrap();
    assert!(repair::apply(&r2, &c2, true).is_empty());
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), snapshot);
}

#[test]
fn a_broken_config_is_reported_with_file_line_and_column() {
    let w = World::new("{\n  gateway: {\n    mode: 'local'\n    port: 1\n  }\n}\n");
    let (r, _) = w.report(&[]);
    let f = finding(&r, "config-valid");
    assert_eq!(f.level, Level::Fail);
    assert!(f.summary.contains("openclaw.json:4:"), "{}", f.summary);
    assert!(f.remediation.as_deref().unwrap().contains("exit 78"));
    assert_eq!(level_of(&r, "gateway-mode"), Some(Level::Skip));
    assert_eq!(level_of(&r, "service-port"), Some(Level::Skip));
    assert!(r.failed());
}

#[test]
fn generated_unit_drift_is_classified_and_repaired_through_the_install_transaction() {
    let w = World::new("{ gateway: { mode: 'local', port: 18795 } }");
    let old = desired(w.home.path(), Path::new("/opt/gone/openclaw"), 18789).replace(
        "TimeoutStopSec=45",
        "TimeoutStopSec=45\nEnvironment=OPENCLAW_GATEWAY_TOKEN=tok-embedded-secret",
    );
    w.install_unit(&old);
    let (r, c) = w.report(&[]);
    for id in [
        "service-unit",
        "service-port",
        "service-binary",
        "service-secrets",
    ] {
        assert_eq!(
            level_of(&r, id),
            Some(Level::Fail),
            "{id}: {:#?}",
            finding(&r, id)
        );
    }
    assert!(!finding(&r, "service-unit").needs_force);
    assert_eq!(
        finding(&r, "service-secrets").repair,
        Some(Repair::AdoptUnitToken { unit: w.unit() })
    );
    let text = openclaw::doctor::render_text(&r, false);
    let json = openclaw::doctor::render_json(&r, &[]).to_string();
    assert!(!text.contains("tok-embedded-secret") && !json.contains("tok-embedded-secret"));
    let at = format!("(line {})", line_of(&old, "ExecStart="));
    assert!(text.contains(&at), "drift names the line {at}: {text}");

    let applied = repair::apply(&r, &c, false);
    assert!(applied.iter().all(|a| a.ok), "{applied:#?}");
    assert_eq!(*w.calls.borrow(), vec![false], "one install transaction");
    let cfg = Config::load(&w.paths().config_path).unwrap();
    assert_eq!(
        cfg.get("gateway.auth.token").and_then(|v| v.as_str()),
        Some("tok-embedded-secret"),
        "the embedded token moved into the config so clients keep working"
    );
    assert_eq!(
        std::fs::read_to_string(format!("{}.bak", w.unit().display())).unwrap(),
        openclaw::service::scrub::scrub_secret_lines(&old, &[]).unwrap(),
        "the previous unit is kept, without its token"
    );
    let (r2, _) = w.report(&[]);
    for id in [
        "service-unit",
        "service-port",
        "service-binary",
        "service-secrets",
    ] {
        assert_eq!(
            level_of(&r2, id),
            Some(Level::Ok),
            "{id}: {:#?}",
            finding(&r2, id)
        );
    }
    assert!(r2.repairable(true).is_empty());
}

#[test]
fn operator_edits_are_preserved_unless_forced() {
    let w = World::new(GOOD);
    let edited = desired(w.home.path(), &w.program, 18795)
        .replace("TimeoutStopSec=45", "TimeoutStopSec=120")
        .replace("[Install]", "Nice=5\n\n[Install]");
    w.install_unit(&edited);
    let (r, c) = w.report(&[]);
    let f = finding(&r, "service-unit");
    assert_eq!(f.level, Level::Warn);
    assert!(f.needs_force);
    assert!(
        f.details.iter().any(|d| d.contains("Service.Nice")),
        "{:#?}",
        f.details
    );
    assert!(
        f.remediation
            .as_deref()
            .unwrap()
            .contains("systemctl --user edit openclaw-gateway.service")
    );
    assert!(repair::apply(&r, &c, false).is_empty());
    assert!(w.calls.borrow().is_empty());
    assert_eq!(std::fs::read_to_string(w.unit()).unwrap(), edited);

    // An edited unit that is also on the wrong port: still not rewritten without --force.
    let edited_port = edited
        .replace("--port 18795", "--port 18000")
        .replace("PORT=18795", "PORT=18000");
    w.install_unit(&edited_port);
    let (r, c) = w.report(&[]);
    assert_eq!(level_of(&r, "service-unit"), Some(Level::Fail));
    assert_eq!(level_of(&r, "service-port"), Some(Level::Fail));
    // The summary counts what --repair will do: nothing here without --force.
    let text = openclaw::doctor::render_text(&r, false);
    assert!(!text.contains("repairable"), "{text}");
    assert!(text.contains("held back by operator edits"), "{text}");
    assert!(r.will_repair(false).is_empty());
    assert_eq!(r.will_repair(true).len(), r.repairable(true).len());
    let applied = repair::apply(&r, &c, false);
    assert!(w.calls.borrow().is_empty(), "{applied:#?}");
    assert!(
        applied
            .iter()
            .any(|a| !a.ok && a.message.contains("operator edits"))
    );
    assert_eq!(std::fs::read_to_string(w.unit()).unwrap(), edited_port);
    // --force rewrites, keeping the operator's file as .bak.
    let applied = repair::apply(&r, &c, true);
    assert!(applied.iter().all(|a| a.ok), "{applied:#?}");
    assert_eq!(*w.calls.borrow(), vec![true]);
    assert_eq!(
        std::fs::read_to_string(format!("{}.bak", w.unit().display())).unwrap(),
        edited_port
    );
}

#[test]
fn a_package_installed_unit_is_not_drift_and_is_never_shadowed() {
    let w = World::new(GOOD);
    std::fs::create_dir_all(w.pkg_dir()).unwrap();
    let pkg = w.pkg_dir().join("openclaw-gateway.service");
    std::fs::write(
        &pkg,
        format!(
            "[Service]\nExecStart={} gateway run --port 18795\nLimitNOFILE=4096\n",
            w.program.display()
        ),
    )
    .unwrap();
    let (r, c) = w.report(&[]);
    let f = finding(&r, "service-unit");
    assert_eq!(f.level, Level::Ok, "{f:#?}");
    assert!(f.summary.contains("package-installed"));
    assert_eq!(level_of(&r, "service-port"), Some(Level::Ok));
    assert_eq!(level_of(&r, "service-binary"), Some(Level::Ok));
    // The packaged unit on another port: reported, but doctor never writes a user unit.
    std::fs::write(
        &pkg,
        format!(
            "[Service]\nExecStart={} gateway run --port 19999\n",
            w.program.display()
        ),
    )
    .unwrap();
    let (r, c2) = w.report(&[]);
    let p = finding(&r, "service-port");
    assert_eq!(p.level, Level::Fail);
    assert!(p.repair.is_none());
    repair::apply(&r, &c2, true);
    assert!(w.calls.borrow().is_empty());
    assert!(!w.unit().exists(), "no user unit may shadow the package's");
    drop(c);
}

#[test]
fn drop_ins_are_reported_and_left_alone() {
    let w = World::new(GOOD);
    w.install_unit(&desired(
        w.home.path(),
        Path::new("/opt/gone/openclaw"),
        18795,
    ));
    let d = w.user_dir().join("openclaw-gateway.service.d");
    std::fs::create_dir_all(&d).unwrap();
    let conf = d.join("override.conf");
    let text = "[Service]\nExecStart=\nExecStart=/usr/local/bin/openclaw gateway run --verbose --port 18795\nEnvironment=OPENCLAW_GATEWAY_TOKEN=tok-in-dropin-123\n";
    std::fs::write(&conf, text).unwrap();
    let (r, c) = w.report(&[]);
    let f = finding(&r, "service-dropins");
    assert_eq!(f.level, Level::Ok, "information, not a warning: {f:#?}");
    assert!(f.summary.contains("3 override(s)"), "{f:#?}");
    assert!(f.repair.is_none());
    assert!(
        f.details
            .iter()
            .any(|l| l.ends_with("override.conf:2 overrides ExecStart")),
        "{:#?}",
        f.details
    );
    let s = finding(&r, "service-secrets");
    assert_eq!(s.level, Level::Fail);
    assert!(
        s.details
            .iter()
            .any(|l| l.contains("override.conf line(s) 4")),
        "{:#?}",
        s.details
    );
    repair::apply(&r, &c, true);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        text,
        "drop-ins are never touched"
    );
}

#[test]
fn auth_activation_env_and_profile_collisions() {
    let w = World::new(
        "{ gateway: { mode: 'local', port: 18795, bind: 'lan', auth: { mode: 'token' } } }",
    );
    write_config(
        w.home.path(),
        Some("work"),
        "{ gateway: { mode: 'local', port: 18795 } }",
    );
    let (r, c) = w.report(&[("NOTIFY_SOCKET", "/run/user/1/systemd/notify")]);
    let a = finding(&r, "gateway-auth");
    assert_eq!(a.level, Level::Fail, "{a:#?}");
    assert_eq!(a.repair, Some(Repair::GenerateToken));
    assert_eq!(level_of(&r, "activation-env"), Some(Level::Warn));
    let p = finding(&r, "profile-collisions");
    assert_eq!(p.level, Level::Warn);
    assert!(p.details[0].contains("profile work"), "{:#?}", p.details);
    repair::apply(&r, &c, false);
    let cfg = Config::load(&w.paths().config_path).unwrap();
    assert_eq!(
        cfg.get("gateway.auth.token")
            .and_then(|v| v.as_str())
            .map(str::len),
        Some(48)
    );
    assert_eq!(mode(&w.paths().config_path), 0o600);
    let (r2, _) = w.report(&[]);
    assert_eq!(level_of(&r2, "gateway-auth"), Some(Level::Ok));
}

#[test]
fn file_secret_ref_tokens_are_resolved_like_the_gateway_does() {
    use std::os::unix::fs::PermissionsExt;
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("gateway-token");
    std::fs::write(&file, "tok-from-a-file-0123456789\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = |path: &std::path::Path| {
        format!(
            "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: {{ source: 'file', provider: 'tok', id: 'value' }} }} }},
               secrets: {{ providers: {{ tok: {{ source: 'file', path: '{}', mode: 'singleValue' }} }} }} }}",
            path.display()
        )
    };
    let w = World::new(&cfg(&file));
    let (r, _) = w.report(&[]);
    let a = finding(&r, "gateway-auth");
    assert_eq!(a.level, Level::Ok, "{a:#?}");
    // A ref that cannot be resolved fails, naming the ref and what is wrong with it.
    let w = World::new(&cfg(&secrets.path().join("missing")));
    let (r, _) = w.report(&[]);
    let a = finding(&r, "gateway-auth");
    assert_eq!(a.level, Level::Fail, "{a:#?}");
    let text = format!("{a:?}");
    assert!(
        text.contains("gateway.auth.token") && text.contains("missing"),
        "{text}"
    );
    assert!(!text.contains("not supported"), "{text}");
}

#[test]
fn cli_doctor_fails_then_repairs_then_has_nothing_to_do() {
    let home = tempfile::tempdir().unwrap();
    let cfg = write_config(
        home.path(),
        None,
        "{ gateway: { auth: { token: 'tok-0123456789abcdef' } } }",
    );
    let state = cfg.parent().unwrap().to_path_buf();
    chmod(&state, 0o755);
    chmod(&cfg, 0o644);
    let port = free_port().to_string();
    let env = [("OPENCLAW_GATEWAY_PORT", port.as_str())];
    let r = run(home.path(), &["doctor", "--json"], &env);
    assert_eq!(r.code(), 1, "{r:?}");
    let v = r.json();
    let level = |id: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["level"].clone())
            .unwrap()
    };
    assert_eq!(level("state-permissions"), "fail");
    assert_eq!(level("gateway-mode"), "fail");
    assert_eq!(level("gateway-reachable"), "warn");
    assert!(!r.stdout.contains("tok-0123456789abcdef"));

    let r = run(
        home.path(),
        &["doctor", "--repair", "--non-interactive"],
        &env,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("done state-permissions:"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("done gateway-mode: set gateway.mode=\"local\""),
        "{}",
        r.stdout
    );
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&cfg), 0o600);
    let bak = state.join("openclaw.json.bak");
    assert!(!std::fs::read_to_string(&bak).unwrap().contains("mode"));
    let snapshot = (std::fs::read(&cfg).unwrap(), std::fs::read(&bak).unwrap());

    let r = run(home.path(), &["doctor", "--fix"], &env);
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("Nothing to repair."), "{}", r.stdout);
    assert_eq!(
        (std::fs::read(&cfg).unwrap(), std::fs::read(&bak).unwrap()),
        snapshot
    );
}

#[test]
fn the_socket_unit_is_checked_missing_moved_edited_and_unlinked() {
    let w = World::new(GOOD);
    w.install_unit(&desired(w.home.path(), &w.program, 18795));
    let sock = w.user_dir().join("openclaw-gateway.socket");
    let wants = w.user_dir().join("sockets.target.wants");
    let link = wants.join("openclaw-gateway.socket");
    let want = desired_socket(w.home.path(), 18795);
    let socket_finding = |w: &World| {
        let mut c = w.ctx(&[]);
        c.service.desired_socket = Some(Ok(want.clone()));
        let r = run_all(&checks::all(), &c);
        finding(&r, "service-socket").clone()
    };

    // Missing, with the enablement link left dangling.
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(&sock, &link).unwrap();
    let f = socket_finding(&w);
    assert_eq!(f.level, Level::Fail, "{f:#?}");
    assert!(f.summary.contains("is missing"), "{f:#?}");
    assert_eq!(f.repair, Some(Repair::Reinstall { force: false }));
    assert!(f.details[0].contains("sockets.target.wants"), "{f:#?}");

    // Present, current, linked: ok.
    std::fs::write(&sock, &want).unwrap();
    assert_eq!(socket_finding(&w).level, Level::Ok);

    // Moved port: a failure doctor repairs without --force; the item names its line.
    std::fs::write(&sock, want.replace(":18795", ":18796")).unwrap();
    let f = socket_finding(&w);
    assert_eq!(f.level, Level::Fail, "{f:#?}");
    assert!(!f.needs_force);
    assert!(f.summary.contains("127.0.0.1:18796"), "{f:#?}");
    let at = format!("(line {})", line_of(&want, "ListenStream=127.0.0.1"));
    assert!(f.details.iter().any(|d| d.contains(&at)), "{at}: {f:#?}");

    // Another address is the operator's: preserved unless --force.
    std::fs::write(
        &sock,
        want.replace("ListenStream=127.0.0.1", "ListenStream=0.0.0.0"),
    )
    .unwrap();
    let f = socket_finding(&w);
    assert_eq!(f.level, Level::Warn, "{f:#?}");
    assert!(f.needs_force);

    // Not enabled.
    std::fs::write(&sock, &want).unwrap();
    std::fs::remove_file(&link).unwrap();
    let f = socket_finding(&w);
    assert_eq!(f.level, Level::Fail, "{f:#?}");
    assert!(f.summary.contains("not enabled"), "{f:#?}");
    assert_eq!(f.repair, Some(Repair::Reinstall { force: false }));

    // A unit not written by install: its socket is not ours.
    w.install_unit("[Service]\nExecStart=/bin/true\n");
    assert_eq!(socket_finding(&w).level, Level::Skip);
}

#[test]
fn a_backup_holding_a_token_is_found_and_scrubbed() {
    let w = World::new(GOOD);
    let unit = desired(w.home.path(), &w.program, 18795);
    w.install_unit(&unit);
    // What an earlier release left: the previous unit, token and all, world-readable.
    let bak = PathBuf::from(format!("{}.bak", w.unit().display()));
    let old = unit.replace(
        "[Service]\n",
        "[Service]\nEnvironment=OPENCLAW_GATEWAY_TOKEN=tok-0123456789abcdef\n",
    );
    std::fs::write(&bak, &old).unwrap();
    chmod(&bak, 0o644);
    let (r, c) = w.report(&[]);
    let f = finding(&r, "service-secrets");
    assert_eq!(f.level, Level::Fail, "{f:#?}");
    let at = line_of(&old, "OPENCLAW_GATEWAY_TOKEN");
    assert!(
        f.details
            .iter()
            .any(|d| d.contains(&format!("{} line(s) {at}", bak.display()))),
        "{f:#?}"
    );
    assert_eq!(
        f.repair,
        Some(Repair::ScrubSecrets {
            files: vec![bak.clone()]
        })
    );
    assert_eq!(
        r.repairable(false).len(),
        1,
        "one repair, the one --repair does"
    );
    let applied = repair::apply(&r, &c, false);
    assert!(applied.iter().all(|a| a.ok), "{applied:#?}");
    assert!(w.calls.borrow().is_empty(), "no reinstall for a backup");
    let now = std::fs::read_to_string(&bak).unwrap();
    assert!(!now.contains("tok-0123456789abcdef"), "{now}");
    assert!(now.contains(openclaw::service::scrub::SCRUBBED), "{now}");
    assert_eq!(now.lines().count(), old.lines().count());
    assert_eq!(mode(&bak), 0o600);
    let (r2, c2) = w.report(&[]);
    assert_eq!(level_of(&r2, "service-secrets"), Some(Level::Ok));
    assert!(r2.repairable(true).is_empty());
    assert!(repair::apply(&r2, &c2, false).is_empty());
}

#[test]
fn the_exposure_score_is_information_and_a_missing_tool_is_said() {
    let out = "✓ UMask=   Files created by service are accessible only by service's own user\n\n→ Overall exposure level for openclaw-gateway.service: 1.9 OK 🙂\n";
    assert_eq!(
        checks::parse_exposure(out),
        Some(("1.9".to_string(), "OK".to_string()))
    );
    assert_eq!(checks::parse_exposure("Failed to initialize manager"), None);
    let w = World::new(GOOD);
    w.install_unit(&desired(w.home.path(), &w.program, 18795));
    let mut c = w.ctx(&[]);
    c.service.exposure = Some(Ok(("1.9".into(), "OK".into())));
    let r = run_all(&checks::all(), &c);
    let f = finding(&r, "service-exposure");
    assert_eq!(f.level, Level::Ok);
    assert!(f.summary.starts_with("exposure 1.9 OK"), "{f:#?}");
    c.service.exposure = Some(Err(
        "systemd-analyze is not installed: exposure not measured".into(),
    ));
    let r = run_all(&checks::all(), &c);
    let f = finding(&r, "service-exposure");
    assert_eq!(f.level, Level::Skip);
    assert!(f.summary.contains("not installed"), "{f:#?}");
}

/// Issue 20 finding 6: a gateway started with `--token` on its command line (readable by every
/// local user in `/proc/PID/cmdline`) is a `doctor` warning naming the env var to use, never
/// the token.
#[test]
fn doctor_warns_about_a_gateway_given_its_token_on_argv() {
    let b = crate::support::Gateway::builder();
    let token = b.token.clone();
    let gw = b.args(&["--token", &token]).start();
    let port = gw.port.to_string();
    let r = run(
        gw.home.path(),
        &["doctor", "--json"],
        &[("OPENCLAW_GATEWAY_PORT", port.as_str())],
    );
    let v = r.json();
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "gateway-argv")
        .unwrap_or_else(|| panic!("no gateway-argv finding: {v}"))
        .clone();
    assert_eq!(f["level"], "warn", "{f}");
    assert!(f.to_string().contains("OPENCLAW_GATEWAY_TOKEN"), "{f}");
    assert!(
        !r.stdout.contains(&token),
        "doctor printed the token: {}",
        r.stdout
    );
    assert!(
        !r.stderr.contains(&token),
        "doctor printed the token: {}",
        r.stderr
    );
}
