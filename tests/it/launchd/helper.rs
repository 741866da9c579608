//! The hand-off helper script, executed by a real /bin/sh against a shell stand-in for
//! launchctl: it must wait for the caller to exit, tolerate a bootout of an unloaded job, wait
//! for the unload, retry bootstrap on 37, and stop on other errors.
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use openclaw::service::launchd::handoff::script;
use openclaw::service::launchd::{Launchctl, Step};

const T: &str = "gui/501/ai.openclaw.gateway";

/// A launchctl stand-in: logs "argv | caller=alive|dead", keeps "loaded" as a file, lingers
/// for two `print`s after bootout, fails the first bootstrap with 37 when `fail37` exists.
const FAKE: &str = r#"#!/bin/sh
d=$(dirname "$0")
if kill -0 "$(cat "$d/caller")" 2>/dev/null; then c=alive; else c=dead; fi
echo "$* | caller=$c" >> "$d/calls"
case "$1" in
  print)
    if [ -f "$d/teardown" ]; then n=$(cat "$d/teardown"); n=$((n-1)); if [ $n -le 0 ]; then rm -f "$d/teardown" "$d/loaded"; else echo $n > "$d/teardown"; fi; exit 0; fi
    [ -f "$d/loaded" ] && exit 0
    echo 'Could not find service' >&2; exit 113;;
  bootout)
    [ -f "$d/loaded" ] || { echo 'Boot-out failed: 3: No such process' >&2; exit 3; }
    echo 3 > "$d/teardown"; exit 0;;
  bootstrap)
    if [ -f "$d/fail37" ]; then rm -f "$d/fail37"; echo 'Bootstrap failed: 37: Operation already in progress' >&2; exit 37; fi
    if [ -f "$d/fail122" ]; then echo 'Bootstrap failed: 122: Path had bad ownership/permissions' >&2; exit 122; fi
    touch "$d/loaded"; exit 0;;
  kickstart) [ -f "$d/loaded" ] || exit 113; exit 0;;
  enable) exit 0;;
esac
exit 64
"#;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let lc = dir.path().join("launchctl");
        std::fs::write(&lc, FAKE).unwrap();
        std::fs::set_permissions(&lc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Env { dir }
    }
    fn p(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.p("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn reload_steps(plist: &Path) -> Vec<Step> {
    vec![
        Step::Run(Launchctl::Bootout { target: T.into() }),
        Step::WaitUnloaded,
        Step::Run(Launchctl::Bootstrap {
            domain: "gui/501".into(),
            plist: plist.to_path_buf(),
        }),
        Step::Run(Launchctl::Kickstart {
            target: T.into(),
            kill: false,
        }),
    ]
}

/// Runs the helper for `steps` while a caller process is alive; the caller exits only after the
/// helper announced it is waiting. Returns the helper's exit status.
fn run_helper(env: &Env, steps: &[Step]) -> std::process::ExitStatus {
    let log = env.p("gateway.log");
    let text = script(steps, env.p("launchctl").to_str().unwrap(), T, &log);
    // The "caller": a process that lives until we close its stdin.
    let mut caller = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(env.p("caller"), caller.id().to_string()).unwrap();
    let mut helper = Command::new("/bin/sh")
        .args([
            "-c",
            &text,
            "openclaw-launchd-helper",
            &caller.id().to_string(),
        ])
        .spawn()
        .unwrap();
    // Wait (bounded) for the helper's first log line: it is now waiting for the caller.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(f) = std::fs::File::open(&log)
            && BufReader::new(f).lines().next().is_some()
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "helper never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        env.calls().is_empty(),
        "launchctl ran while the caller was alive"
    );
    caller.stdin.take().unwrap().write_all(b"").unwrap();
    caller.wait().unwrap();
    helper.wait().unwrap()
}

#[test]
fn helper_waits_for_the_caller_then_reloads_with_retries() {
    let env = Env::new();
    std::fs::write(env.p("loaded"), "").unwrap();
    std::fs::write(env.p("fail37"), "").unwrap();
    let plist = env.p("ai.openclaw.gateway.plist");
    let status = run_helper(&env, &reload_steps(&plist));
    assert!(status.success(), "{status:?}");
    let calls = env.calls();
    let p = plist.display();
    assert_eq!(
        calls,
        [
            format!("bootout {T} | caller=dead"),
            format!("print {T} | caller=dead"),
            format!("print {T} | caller=dead"),
            format!("print {T} | caller=dead"),
            format!("print {T} | caller=dead"),
            format!("bootstrap gui/501 {p} | caller=dead"),
            format!("bootstrap gui/501 {p} | caller=dead"),
            format!("kickstart {T} | caller=dead"),
        ]
    );
    assert!(env.p("loaded").exists(), "the job ends up loaded");
    let log = std::fs::read_to_string(env.p("gateway.log")).unwrap();
    assert!(
        log.contains("waiting for pid") && log.ends_with("openclaw launchd helper: done\n"),
        "{log}"
    );
}

#[test]
fn helper_tolerates_an_unloaded_job_and_stops_on_hard_errors() {
    let env = Env::new();
    // Not loaded: bootout answers 3, which is fine; bootstrap then fails with 122 (no retry).
    std::fs::write(env.p("fail122"), "").unwrap();
    let plist = env.p("x y.plist");
    let status = run_helper(&env, &reload_steps(&plist));
    assert_eq!(status.code(), Some(122));
    let calls = env.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls[0].starts_with("bootout"));
    assert!(
        calls[2].starts_with(&format!("bootstrap gui/501 {}", plist.display())),
        "a path with a space stays one argument"
    );
    assert!(!calls.iter().any(|c| c.starts_with("kickstart")));
    let log = std::fs::read_to_string(env.p("gateway.log")).unwrap();
    assert!(log.contains("bootstrap failed: 122"), "{log}");
}

#[test]
fn helper_restart_is_a_single_kickstart_k() {
    let env = Env::new();
    std::fs::write(env.p("loaded"), "").unwrap();
    let steps = [Step::Run(Launchctl::Kickstart {
        target: T.into(),
        kill: true,
    })];
    assert!(run_helper(&env, &steps).success());
    assert_eq!(env.calls(), [format!("kickstart -k {T} | caller=dead")]);
}
