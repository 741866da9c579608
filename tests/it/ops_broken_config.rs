//! A broken config degrades the CLI gracefully (issue 19 item 6): against a real gateway whose
//! config file is broken after it started, the client verbs still reach it with what resolves
//! without the config (flags, `OPENCLAW_GATEWAY_*`) and say what they could not resolve;
//! `--json` is JSON in every outcome; `status` builds no advice on a guessed port and warns that
//! a restart would fail; `gateway restart` refuses before the service manager is asked anything.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::ops::{Local, Run, run, write_config};

/// Breaks the config: line 3 does not parse (`port: ,`).
const BROKEN: &str = "{\n  gateway: {\n    port: ,\n  },\n}\n";

/// A `systemctl` first on PATH that records every call in `calls` and fails, so a test can
/// assert that no service manager was asked anything (and none outside the project is touched).
struct FakeSystemctl {
    _dir: tempfile::TempDir,
    path: String,
    calls: PathBuf,
}

impl FakeSystemctl {
    fn new() -> FakeSystemctl {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let bin = dir.path().join("systemctl");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\necho \"$@\" >> '{}'\necho 'Failed to connect to bus' >&2\nexit 1\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        FakeSystemctl {
            _dir: dir,
            path,
            calls,
        }
    }
    fn calls(&self) -> String {
        std::fs::read_to_string(&self.calls).unwrap_or_default()
    }
}

/// A running gateway whose config is then broken; the reload watcher is off in its config,
/// and the running instance keeps its last good config either way.
fn broken() -> (Local, PathBuf, FakeSystemctl) {
    let l = Local::start();
    let cfg = write_config(l.home.path(), None, BROKEN);
    (l, cfg, FakeSystemctl::new())
}

fn cli(l: &Local, f: &FakeSystemctl, args: &[&str], with_creds: bool) -> Run {
    let port = l.gw.port.to_string();
    let mut env = vec![("PATH", f.path.as_str())];
    if with_creds {
        env.push(("OPENCLAW_GATEWAY_TOKEN", l.token.as_str()));
        env.push(("OPENCLAW_GATEWAY_PORT", port.as_str()));
    }
    run(l.home.path(), args, &env)
}

fn location(cfg: &Path) -> String {
    format!("config {}:3:", cfg.display())
}

#[test]
fn health_reaches_the_running_gateway_with_env_credentials_and_says_the_config_is_broken() {
    let (l, cfg, f) = broken();
    let r = cli(&l, &f, &["health"], true);
    assert_eq!(r.code(), 0, "health must reach the gateway: {r:?}");
    assert!(
        r.stdout.starts_with("Gateway event loop: ok "),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains(&location(&cfg)), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "is broken (expected value at line 3 column 11): using port {} from OPENCLAW_GATEWAY_PORT and the token from OPENCLAW_GATEWAY_TOKEN",
            l.gw.port
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&l.token) && !r.stdout.contains(&l.token));

    let g = cli(&l, &f, &["gateway", "health"], true);
    assert_eq!(g.code(), 0, "{g:?}");
    assert!(g.stdout.starts_with("Gateway Health\nOK ("), "{}", g.stdout);

    let c = cli(&l, &f, &["gateway", "call", "status", "--json"], true);
    assert_eq!(c.code(), 0, "{c:?}");
    assert_eq!(c.json()["pid"], l.gw.pid());

    let p = cli(&l, &f, &["gateway", "probe", "--json"], true);
    let v = p.json();
    assert!(
        v["configError"].as_str().unwrap().contains("is broken"),
        "{v}"
    );
    assert!(f.calls().is_empty(), "no systemctl call: {}", f.calls());
}

#[test]
fn health_json_is_json_in_every_outcome() {
    let (l, cfg, f) = broken();
    let ok = cli(&l, &f, &["health", "--json"], true);
    assert_eq!(ok.code(), 0, "{ok:?}");
    let v = ok.json();
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["configError"]
            .as_str()
            .unwrap()
            .starts_with(&location(&cfg)),
        "{v}"
    );

    // Without the credential the config held: the gateway refuses, and the answer says which
    // credential could not be resolved, as JSON, with the config's exit code.
    let port = l.gw.port.to_string();
    let no_tok = run(
        l.home.path(),
        &["health", "--json", "--port", &port],
        &[("PATH", f.path.as_str())],
    );
    assert_eq!(no_tok.code(), 78, "{no_tok:?}");
    let v = no_tok.json();
    assert_eq!(v["ok"], false, "{v}");
    let note = v["error"]["configError"].as_str().unwrap();
    assert!(
        note.contains(&format!(
            "using port {port} from --port and no token or password"
        )),
        "{note}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains(note),
        "{v}"
    );

    // Text mode says the same on stderr.
    let t = run(
        l.home.path(),
        &["health", "--port", &port],
        &[("PATH", f.path.as_str())],
    );
    assert_eq!(t.code(), 78, "{t:?}");
    assert!(t.stdout.is_empty(), "{}", t.stdout);
    assert_eq!(
        t.stderr.matches("no token or password").count(),
        1,
        "the note once: {}",
        t.stderr
    );

    // `logs --json` stays NDJSON: the warning is a notice record.
    let lg = cli(&l, &f, &["logs", "--json", "--limit", "5"], true);
    assert_eq!(lg.code(), 0, "{lg:?}");
    let recs: Vec<serde_json::Value> = lg
        .stdout
        .lines()
        .map(|x| serde_json::from_str(x).unwrap_or_else(|e| panic!("not JSON ({e}): {x}")))
        .collect();
    assert!(
        recs.iter()
            .any(|r| r["type"] == "notice" && r["message"].as_str().unwrap().contains("is broken")),
        "{recs:?}"
    );
}

#[test]
fn status_builds_no_advice_on_a_fallback_port_and_warns_that_a_restart_would_fail() {
    let (l, cfg, f) = broken();
    let r = cli(&l, &f, &["status", "--json"], true);
    assert_eq!(r.code(), 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["config"]["valid"], false);
    assert_eq!(v["gateway"]["reachable"], true, "{v}");
    let all = format!("{} {}", v["problems"], v["hints"]);
    assert!(!all.contains("to move the service to"), "{all}");
    assert!(
        all.contains(&format!(
            "a restart now would fail with exit 78 (invalid config {}:3:",
            cfg.display()
        )),
        "{all}"
    );
    let t = run(l.home.path(), &["status"], &[("PATH", f.path.as_str())]);
    assert_eq!(t.code(), 0, "{t:?}");
    assert!(
        t.stdout.contains("a restart now would fail with exit 78"),
        "{}",
        t.stdout
    );
    assert!(!t.stdout.contains("doctor --repair"), "{}", t.stdout);
}

#[test]
fn gateway_restart_refuses_before_stopping_anything_and_the_gateway_keeps_serving() {
    let (l, cfg, f) = broken();
    let r = cli(&l, &f, &["gateway", "restart"], true);
    assert_eq!(r.code(), 78, "{r:?}");
    assert!(
        r.stderr
            .contains("gateway restart refused, nothing was stopped"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("invalid config {}:3:", cfg.display())),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("then run `openclaw gateway restart`"),
        "{}",
        r.stderr
    );
    assert!(f.calls().is_empty(), "systemctl was called: {}", f.calls());
    let h = cli(&l, &f, &["health"], true);
    assert_eq!(h.code(), 0, "the gateway keeps serving: {h:?}");
}

/// Against the real user manager (the project's sandbox): `status` with a broken config probes
/// the port the installed service listens on (not the profile default it would otherwise
/// guess), reaches the gateway with the token from the environment, gives no advice to move
/// the service, and warns that a restart would fail; `gateway restart` refuses and the same
/// process keeps serving.
#[test]
fn status_follows_the_installed_service_port_when_the_config_is_broken() {
    use crate::systemd_e2e::{UNIT, free_port, healthz, install, main_pid, oc, text, token, v4};
    crate::support::sandbox::run(
        "ops_broken_config::status_follows_the_installed_service_port_when_the_config_is_broken",
        |sb| {
            let port = free_port();
            install(port, &[]);
            let tok = token(sb, ".openclaw");
            let cfg = sb.home.join(".openclaw/openclaw.json");
            std::fs::write(&cfg, BROKEN).unwrap();
            let pid = main_pid(sb, UNIT);
            let mut c = std::process::Command::new(crate::support::bin());
            c.args(["status", "--json"]);
            for k in [
                "OPENCLAW_STATE_DIR",
                "OPENCLAW_CONFIG_PATH",
                "OPENCLAW_HOME",
                "OPENCLAW_PROFILE",
                "OPENCLAW_GATEWAY_PORT",
                "OPENCLAW_LOG_DIR",
            ] {
                c.env_remove(k);
            }
            c.env("OPENCLAW_GATEWAY_TOKEN", &tok);
            let out = c.output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", text(&out)));
            assert_eq!(v["port"], port, "{v}");
            assert!(
                v["portSource"].as_str().unwrap().contains("installed"),
                "{v}"
            );
            assert_eq!(v["gateway"]["reachable"], true, "{v}");
            let all = format!("{} {}", v["problems"], v["hints"]);
            assert!(!all.contains("move the service"), "{all}");
            assert!(
                all.contains("a restart now would fail with exit 78 (invalid config"),
                "{all}"
            );
            let r = oc(&["gateway", "restart"]);
            assert_eq!(r.status.code(), Some(78), "{}", text(&r));
            assert!(
                String::from_utf8_lossy(&r.stderr).contains("nothing was stopped"),
                "{}",
                text(&r)
            );
            assert_eq!(main_pid(sb, UNIT), pid, "the same process keeps serving");
            assert!(healthz(v4(port)).unwrap().starts_with("HTTP/1.1 200"));
        },
    );
}
