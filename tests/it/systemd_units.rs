//! The rendered units: golden files in `units/` (bless with `OPENCLAW_BLESS=1`), and the real
//! `systemd-analyze verify` / `security` verdicts on them.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use openclaw::config::paths::Paths;
use openclaw::service::ServiceSpec;
use openclaw::service::systemd::unit::{self, Scope, UnitOptions};

use crate::support;

fn paths(profile: Option<&str>, home: &str) -> Paths {
    let env: HashMap<String, String> = [("HOME".to_string(), home.to_string())].into();
    Paths::resolve(profile, false, &env).unwrap()
}

fn spec(profile: Option<&str>, home: &str, program: &Path) -> ServiceSpec {
    let p = paths(profile, home);
    let port = p.resolve_port(None, &HashMap::new(), None).unwrap();
    ServiceSpec::for_paths(&p, p.unit_name(), port, program.to_path_buf())
}

fn opts(scope: Scope, home: &str) -> UnitOptions {
    UnitOptions {
        scope,
        systemd_version: 252,
        home: Some(home.into()),
    }
}

/// (file under units/, rendered content) for every pinned variant.
fn variants() -> Vec<(String, String)> {
    let prog = Path::new("/usr/bin/openclaw");
    let mut out = Vec::new();
    let mut add = |dir: &str, s: &ServiceSpec, o: &UnitOptions| {
        let u = unit::render(s, o).unwrap();
        out.push((format!("{dir}{}.service", s.name), u.service));
        out.push((format!("{dir}{}.socket", s.name), u.socket));
    };
    let home = "/home/alice";
    add("", &spec(None, home, prog), &opts(Scope::User, home));
    add(
        "profile/",
        &spec(Some("ops"), home, prog),
        &opts(Scope::User, home),
    );
    add(
        "system/",
        &spec(None, home, prog),
        &opts(
            Scope::System {
                user: "alice".into(),
            },
            home,
        ),
    );
    // What the Debian package ships in /usr/lib/systemd/system (disabled by default).
    let (s, o) = unit::packaged_system();
    add("packaged-system/", &s, &o);
    out
}

#[test]
fn units_match_golden_files() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("units");
    let bless = std::env::var_os("OPENCLAW_BLESS").is_some();
    let mut stale = Vec::new();
    for (rel, content) in variants() {
        let path = root.join(&rel);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(c) if c == content => {}
            _ => stale.push(rel),
        }
    }
    assert!(
        stale.is_empty(),
        "units/ differ from the renderer for {stale:?}; if intended, re-run with OPENCLAW_BLESS=1 and review the diff"
    );
}

fn have_analyze(test: &str) -> bool {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    support::skip_or_fail(
        test,
        "systemd-analyze is not installed (Debian: apt-get install systemd)",
    );
    false
}

/// Writes the units for `spec` (program = the real binary, so verify can check ExecStart).
fn write_real_units(dir: &Path, scope: Scope) -> (PathBuf, PathBuf) {
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".openclaw")).unwrap();
    let h = home.to_str().unwrap();
    let s = spec(None, h, &support::bin());
    let u = unit::render(&s, &opts(scope, h)).unwrap();
    let svc = dir.join(format!("{}.service", s.name));
    let sock = dir.join(format!("{}.socket", s.name));
    std::fs::write(&svc, u.service).unwrap();
    std::fs::write(&sock, u.socket).unwrap();
    (svc, sock)
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if !have_analyze("units_pass_systemd_analyze_verify") {
        return;
    }
    for (scope, flag) in [
        (Scope::User, Some("--user")),
        (
            Scope::System {
                user: "root".into(),
            },
            None,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (svc, sock) = write_real_units(dir.path(), scope);
        let mut cmd = Command::new("systemd-analyze");
        if let Some(f) = flag {
            cmd.arg(f);
        }
        let out = cmd
            .arg("verify")
            .arg(&sock)
            .arg(&svc)
            .env("SYSTEMD_LOG_LEVEL", "notice")
            // --user needs a runtime dir to set up its (offline) manager.
            .env("XDG_RUNTIME_DIR", dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Only complaints about *our* files count (the host's own units may be noisy).
        let ours: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("openclaw-gateway"))
            .collect();
        assert!(
            out.status.success() && ours.is_empty(),
            "systemd-analyze verify {flag:?} failed ({}):\n{err}",
            out.status
        );
    }
}

#[test]
fn exposure_score_is_within_budget() {
    if !have_analyze("exposure_score_is_within_budget") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (svc, _) = write_real_units(dir.path(), Scope::User);
    let out = Command::new("systemd-analyze")
        .args(["security", "--user", "--offline=yes", "--no-pager"])
        .arg(&svc)
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure line in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap();
    eprintln!("systemd-analyze security --user: {}", line.trim());
    // Budget 2.1: the offline analysis scores a user unit as if it ran as root (+0.4, not true
    // for a normal user's manager), and user units leave out ProtectKernelTunables/Logs (+0.4),
    // which fail with 226/NAMESPACE inside containers (see unit.rs). Lower is welcome.
    assert!(
        score <= 2.1,
        "exposure {score} above the 2.1 budget:\n{text}"
    );
}
