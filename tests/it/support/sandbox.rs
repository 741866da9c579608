//! The project's own systemd sandbox: a throw-away `systemd --user` manager in private PID,
//! mount and cgroup namespaces (root only), one per test, started in ~0.5 s.
//!
//! How a test enters it: [`run`] re-executes the test binary for exactly that test under
//! `unshare` behind a small inner script; the re-executed test sees `OPENCLAW_SANDBOX_INNER`
//! and runs its scenario *inside*, driving `systemctl --user` and our binary directly. Other
//! binaries (the benchmark harness, `bench/gateway.rs`, includes this file) use the same
//! mechanism through [`reexec`] and [`inside`] with their own arguments.
//!
//! Inside: `/sys/fs/cgroup` is the test's private cgroup2 subtree, `/run/systemd`, `/run/user`
//! and `/etc/systemd/system` are private tmpfs, `HOME` is a fresh directory, and
//! `XDG_RUNTIME_DIR=/run/user/0`. The network namespace is the host's (loopback only; tests use
//! free ports). Nothing outside is touched. Cleanup removes only what this run created: its
//! cgroup subtree `sd-sandbox-oc-<pid>-<n>` (after the namespace's processes are gone) and its
//! home directory. Outside CI, missing root/unshare/systemd is a visible SKIP; under `CI=true`
//! it is a failure.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const INNER_ENV: &str = "OPENCLAW_SANDBOX_INNER";

/// Runs inside the namespaces: mount private trees, start the manager, run the command.
const INNER_SCRIPT: &str = r#"
set -euo pipefail
mount -t cgroup2 none /sys/fs/cgroup
# systemd's MountAPIVFS (implied by ProtectControlGroups= etc.) mounts an *empty* tmpfs on /run
# unless /run is already a mount point, as it is on every real system: make it one here too,
# or services would lose /run/user (and the notify socket).
mountpoint -q /run || mount --bind /run /run
mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system
mount -t tmpfs tmpfs /run/user && mkdir -m 700 -p /run/user/0
# Hide the host's system units: tests create same-named ones here to check shadowing.
if [ -d /etc/systemd/system ]; then mount -t tmpfs tmpfs /etc/systemd/system; fi
# A private network namespace (run_with, private_net) starts with loopback down.
if [ -n "${SANDBOX_PRIVATE_NET:-}" ]; then ip link set lo up; fi
export XDG_RUNTIME_DIR=/run/user/0 HOME="$SANDBOX_HOME"
unset DBUS_SESSION_BUS_ADDRESS NOTIFY_SOCKET LISTEN_FDS LISTEN_PID JOURNAL_STREAM INVOCATION_ID
/lib/systemd/systemd --user --log-target=console --log-level=info >"$SANDBOX_HOME/systemd.log" 2>&1 &
manager=$!
ok=
for _ in $(seq 200); do
  state=$(systemctl --user is-system-running 2>/dev/null || true)
  if [ "$state" = running ] || [ "$state" = degraded ]; then ok=1; break; fi
  sleep 0.025
done
if [ -z "$ok" ]; then echo "sandbox: systemd --user did not come up; its log:" >&2; cat "$SANDBOX_HOME/systemd.log" >&2; exit 97; fi
code=0
"$@" || code=$?
kill "$manager" 2>/dev/null || true
wait "$manager" 2>/dev/null || true
exit "$code"
"#;

/// Inside the sandbox: what a scenario gets.
#[derive(Debug)]
pub struct Inside {
    /// The sandbox's `$HOME`.
    pub home: PathBuf,
}

impl Inside {
    /// Runs `systemctl --user ARGS`, returning (exit code, stdout).
    pub fn systemctl(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new("systemctl")
            .arg("--user")
            .args(args)
            .output()
            .expect("running systemctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }

    /// One property of a unit (`systemctl --user show -p P --value U`).
    pub fn prop(&self, unit: &str, p: &str) -> String {
        self.systemctl(&["show", unit, "-p", p, "--value"]).1
    }

    /// The manager's own log so far (for failure messages).
    pub fn manager_log(&self) -> String {
        std::fs::read_to_string(self.home.join("systemd.log")).unwrap_or_default()
    }

    /// Polls `cond` every 50 ms until it holds or `timeout` passes (for manager state, which
    /// offers no event to wait on without D-Bus). Panics with `what` on timeout.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out after {timeout:?} waiting for {what}\n--- systemd --user log (tail) ---\n{}",
            tail(&self.manager_log(), 60)
        );
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unified_root() -> PathBuf {
    let u = Path::new("/sys/fs/cgroup/unified");
    if u.join("cgroup.procs").exists() {
        u.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// Why a sandbox cannot start here (not root, no systemd, no `unshare`, …), if it cannot.
pub fn prerequisites(opts: Options) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root (private namespaces + a systemd manager)".into());
    }
    if !Path::new("/lib/systemd/systemd").exists() {
        return Err("needs /lib/systemd/systemd (Debian: apt-get install systemd)".into());
    }
    let net: &[&str] = if opts.private_net { &["ip"] } else { &[] };
    for tool in ["unshare", "systemctl", "mount"].iter().chain(net) {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!(
                "needs `{tool}` in PATH (util-linux / systemd / iproute2)"
            ));
        }
    }
    if !unified_root().join("cgroup.procs").exists() {
        return Err("needs a cgroup2 hierarchy (/sys/fs/cgroup or /sys/fs/cgroup/unified)".into());
    }
    Ok(())
}

/// The cgroup subtree of one sandbox run; removed (deepest first) on drop once empty.
struct Group(PathBuf);

impl Group {
    fn procs(&self) -> usize {
        let mut n = 0;
        let mut stack = vec![self.0.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(s) = std::fs::read_to_string(d.join("cgroup.procs")) {
                n += s.lines().filter(|l| !l.trim().is_empty()).count();
            }
            if let Ok(rd) = std::fs::read_dir(&d) {
                stack.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
        }
        n
    }

    fn remove(&self) -> bool {
        // Namespace processes die when its init exits, asynchronously: wait (≤ 5 s).
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.procs() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        let mut dirs = Vec::new();
        let mut stack = vec![self.0.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                stack.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
            dirs.push(d);
        }
        // Deepest first (children were pushed after their parent).
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        !self.0.exists()
    }
}

/// Options for [`run_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// A private network namespace (only loopback, up): a scenario can use fixed ports (a
    /// packaged unit's default 18789) without colliding with anything on the host.
    pub private_net: bool,
}

/// A loopback port free on both 127.0.0.1 and ::1 (the sandbox shares the host's network
/// namespace unless [`Options::private_net`]; the gateway's socket unit listens on both).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = v4.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("::1", p)).is_ok() {
            return p;
        }
    }
    panic!("no port free on both loopback families after 50 tries");
}

/// Whether we run under CI (`CI=true`): environment-dependent tests must not skip there.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Skips (visibly, `SKIP: …` on stderr) outside CI; fails under `CI=true`.
pub fn skip_or_fail(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    eprintln!("SKIP: {test}: {why}");
}

/// Whether this process is a re-executed test inside a sandbox (work the outer run already
/// did, such as building a package, can be reused instead of repeated).
pub fn is_inner() -> bool {
    std::env::var_os(INNER_ENV).is_some()
}

/// Inside a sandbox entered by [`reexec`] for `scenario`: the sandbox; `None` otherwise.
pub fn inside(scenario: &str) -> Option<Inside> {
    if std::env::var(INNER_ENV).as_deref() != Ok(scenario) {
        return None;
    }
    let home = PathBuf::from(std::env::var("HOME").expect("HOME inside the sandbox"));
    Some(Inside { home })
}

/// Runs `scenario` inside a fresh sandbox. `test` must be the test's full path
/// (`systemd_e2e::name`), used to re-execute exactly this test inside.
pub fn run(test: &str, scenario: impl FnOnce(&Inside)) {
    run_with(test, Options::default(), scenario)
}

/// [`run`] with [`Options`].
pub fn run_with(test: &str, opts: Options, scenario: impl FnOnce(&Inside)) {
    if let Some(sb) = inside(test) {
        scenario(&sb);
        return;
    }
    if let Err(why) = prerequisites(opts) {
        skip_or_fail(test, &why);
        return;
    }
    let libtest = Reexec {
        scenario: test.to_string(),
        // --include-ignored: an #[ignore]d test run on purpose (--ignored) runs inside too.
        args: [
            test,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ]
        .map(String::from)
        .to_vec(),
        // A filter that selected nothing also exits 0: only this line proves the test ran.
        ran_marker: "1 passed".to_string(),
        opts,
    };
    if let Err(report) = reexec(&libtest) {
        panic!("{report}");
    }
}

/// How [`reexec`] runs this executable again inside a sandbox.
#[derive(Debug, Clone)]
pub struct Reexec {
    /// Names the scenario: inside, [`inside`] with this name returns the sandbox.
    pub scenario: String,
    /// Arguments for this executable inside (for a libtest binary: the test and `--exact`).
    pub args: Vec<String>,
    /// Printed on stdout by the inner run when the scenario really ran: a run that exits 0
    /// without it counts as failed.
    pub ran_marker: String,
    /// Sandbox options.
    pub opts: Options,
}

/// A successful inner run.
#[derive(Debug)]
pub struct Ran {
    /// What the inner run printed on stdout (results for the outer process, if any).
    pub stdout: String,
    /// Wall time of the whole sandbox run (manager start and cleanup included).
    pub took: Duration,
}

/// Re-executes this executable with `r.args` inside a fresh sandbox (call [`prerequisites`]
/// first) and waits for it. `Err` is the full failure report: exit status, the inner run's
/// stdout and stderr, and the tail of the manager's log (`KEEP_SANDBOX_HOME=1` keeps the
/// sandbox home for a look).
pub fn reexec(r: &Reexec) -> Result<Ran, String> {
    let (scenario, opts) = (r.scenario.as_str(), r.opts);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("sd-sandbox-oc-{}-{n}", std::process::id());
    let group = Group(unified_root().join(&name));
    std::fs::create_dir(&group.0)
        .map_err(|e| format!("{scenario}: creating cgroup {}: {e}", group.0.display()))?;
    // Homes live under the target dir, not /tmp: the units' PrivateTmp=yes must stay testable.
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sandbox-homes");
    let home = std::fs::create_dir_all(&base)
        .and_then(|_| {
            tempfile::Builder::new()
                .prefix(&format!("{name}-"))
                .tempdir_in(&base)
        })
        .map_err(|e| format!("{scenario}: creating a home under {}: {e}", base.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("{scenario}: current_exe: {e}"))?;
    let started = Instant::now();
    let mut cmd = Command::new("bash");
    if opts.private_net {
        cmd.env("SANDBOX_PRIVATE_NET", "1");
    } else {
        cmd.env_remove("SANDBOX_PRIVATE_NET");
    }
    let out = cmd
        .arg("-c")
        // Enter the cgroup first, then the namespaces (the cgroup becomes the sandbox's root).
        .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec unshare --cgroup --pid --mount ${SANDBOX_PRIVATE_NET:+--net} --propagation private --fork --mount-proc bash -c "$0" sandbox-inner "$@""#)
        .arg(INNER_SCRIPT)
        .arg(&group.0)
        .arg(&exe)
        .args(&r.args)
        .env(INNER_ENV, scenario)
        .env("SANDBOX_HOME", home.path())
        .stdin(Stdio::null())
        .output();
    let removed = group.remove();
    let out = out.map_err(|e| format!("{scenario}: starting the sandbox (bash, unshare): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ran = stdout.contains(&r.ran_marker);
    if !out.status.success() || !ran {
        let log = std::fs::read_to_string(home.path().join("systemd.log")).unwrap_or_default();
        if std::env::var_os("KEEP_SANDBOX_HOME").is_some() {
            let kept = home.keep();
            eprintln!("sandbox home kept at {}", kept.display());
        }
        return Err(format!(
            "{scenario} failed inside the sandbox ({}; {:?}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- systemd --user log (tail) ---\n{}",
            out.status,
            started.elapsed(),
            tail(&log, 80)
        ));
    }
    eprintln!("{scenario}: sandbox run took {:?}", started.elapsed());
    if !removed {
        return Err(format!(
            "sandbox cgroup {} could not be removed (processes still inside?)",
            group.0.display()
        ));
    }
    Ok(Ran {
        stdout: stdout.into_owned(),
        took: started.elapsed(),
    })
}
