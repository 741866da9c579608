//! [`LaunchdManager`]: observe (launchctl via a [`CommandRunner`]) → [`plan`] (pure) →
//! execute, with every wait bounded and driven by an injectable [`Clock`] so tests never sleep.
use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::domain::Domain;
use super::errors::{Context, LaunchdError, advice, code_of};
use super::handoff;
use super::job::{LaunchdJob, plist_path};
use super::plan::{Desired, Launchctl, Observed, OnDisk, Op, Step, plan};
use super::plist::{parse_definition, render};
use super::policy::{self, Refusal};
use super::print::{PrintInfo, parse_print, parse_print_disabled};
use crate::config::Config;
use crate::config::paths::{Env, ProcessEnv};
use crate::service::exec::{CommandRunner, Output, SystemRunner};
use crate::service::{ServiceManager, ServiceSpec, ServiceStatus};

/// Monotonic time and sleeping, injectable so tests run polls and back-offs instantly.
pub trait Clock {
    /// Time elapsed since an arbitrary fixed start.
    fn now(&self) -> Duration;
    /// Sleeps for `d` (a fake clock just advances).
    fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Bounds of every wait and retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long to wait for launchd to unload the label after `bootout` (field reports: ~3 s).
    pub unload: Duration,
    /// How long to wait for `state = running` after a start.
    pub running: Duration,
    /// Poll interval of both waits.
    pub poll: Duration,
    /// `bootstrap` attempts on 37 / 5 / 124 (teardown still in progress).
    pub bootstrap_attempts: u32,
    /// Back-off unit between bootstrap attempts (attempt n waits n × this).
    pub bootstrap_backoff: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            unload: Duration::from_secs(15),
            running: Duration::from_secs(15),
            poll: Duration::from_millis(250),
            bootstrap_attempts: 5,
            bootstrap_backoff: Duration::from_millis(500),
        }
    }
}

/// What a mutation did, line by line (for the CLI to print).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Human lines, in order.
    pub lines: Vec<String>,
    /// The detached helper's pid when the plan was handed off.
    pub helper_pid: Option<u32>,
}

/// Everything `gateway status` shows about the LaunchAgent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchdStatus {
    /// The portable status.
    pub status: ServiceStatus,
    /// The `Runtime:` value, e.g. `running (pid 4242, state running, runs 1, last exit never)`.
    pub runtime: String,
    /// `launchctl print` as parsed, when loaded.
    pub print: Option<PrintInfo>,
    /// The gateway's config-refusal marker.
    pub refusal: Option<Refusal>,
    /// Loaded job vs installed plist differences (a reload is pending when non-empty).
    pub drift: Vec<String>,
    /// The installed plist differs from what `install` would write now.
    pub stale: bool,
    /// Evidence of a same-label LaunchDaemon.
    pub daemon: Option<String>,
    /// Whether the gui domain exists.
    pub gui_available: bool,
}

/// The launchd implementation of [`ServiceManager`] (a LaunchAgent in `gui/<uid>`).
pub struct LaunchdManager {
    runner: Box<dyn CommandRunner>,
    clock: Box<dyn Clock>,
    env: Box<dyn Env>,
    uid: u32,
    home: PathBuf,
    launchctl: String,
    shell: String,
    daemons_dir: PathBuf,
    caller_pid: u32,
    timeouts: Timeouts,
    socket_activation: bool,
}

impl fmt::Debug for LaunchdManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchdManager")
            .field("uid", &self.uid)
            .field("home", &self.home)
            .field("launchctl", &self.launchctl)
            .field("daemons_dir", &self.daemons_dir)
            .field("timeouts", &self.timeouts)
            .field("socket_activation", &self.socket_activation)
            .finish_non_exhaustive()
    }
}

impl LaunchdManager {
    /// A manager with explicit collaborators (tests inject fakes).
    pub fn new(
        runner: Box<dyn CommandRunner>,
        clock: Box<dyn Clock>,
        env: Box<dyn Env>,
        uid: u32,
        home: PathBuf,
    ) -> LaunchdManager {
        LaunchdManager {
            runner,
            clock,
            env,
            uid,
            home,
            launchctl: "/bin/launchctl".into(),
            shell: "/bin/sh".into(),
            daemons_dir: "/Library/LaunchDaemons".into(),
            caller_pid: std::process::id(),
            timeouts: Timeouts::default(),
            socket_activation: true,
        }
    }

    /// The production manager for the current user (real launchctl, clock and environment).
    pub fn for_current_user(home: PathBuf) -> LaunchdManager {
        LaunchdManager::new(
            Box::new(SystemRunner),
            Box::new(SystemClock::default()),
            Box::new(ProcessEnv),
            nix::unistd::getuid().as_raw(),
            home,
        )
    }

    /// Uses another launchctl binary.
    pub fn with_launchctl(mut self, path: impl Into<String>) -> Self {
        self.launchctl = path.into();
        self
    }

    /// Uses another LaunchDaemons directory (tests).
    pub fn with_daemons_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.daemons_dir = dir.into();
        self
    }

    /// Overrides the waits and retries.
    pub fn with_timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// The pid the hand-off helper waits for (default: this process).
    pub fn with_caller_pid(mut self, pid: u32) -> Self {
        self.caller_pid = pid;
        self
    }

    /// Whether the plist carries `Sockets` (default true). Pass false when the gateway binds a
    /// non-loopback address itself (`bind: lan|custom`): launchd holding 127.0.0.1:P and ::1:P
    /// would then collide with the gateway's own listener.
    pub fn with_socket_activation(mut self, on: bool) -> Self {
        self.socket_activation = on;
        self
    }

    fn domain(&self) -> Domain {
        Domain::Gui(self.uid)
    }

    /// The job, rendered plist and paths for `spec`.
    pub fn desired(&self, spec: &ServiceSpec) -> Result<(Desired, LaunchdJob), LaunchdError> {
        let mut job = LaunchdJob::from_spec(spec, &self.home)?;
        if !self.socket_activation {
            job = job.without_socket_activation();
        }
        let desired = Desired {
            label: job.label.clone(),
            domain: self.domain(),
            plist_path: plist_path(&self.home, &job.label),
            rendered: render(&job),
        };
        Ok((desired, job))
    }

    /// Observes the installed plist, the loaded job, overrides, LaunchDaemon conflicts and
    /// whether we run inside the service.
    pub fn observe(&self, desired: &Desired) -> Result<Observed, LaunchdError> {
        let on_disk = match std::fs::read(&desired.plist_path) {
            Ok(bytes) => Some(OnDisk {
                definition: parse_definition(&bytes).ok(),
                bytes,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(LaunchdError::Io {
                    verb: "reading",
                    path: desired.plist_path.clone(),
                    source,
                });
            }
        };
        let target = desired.target();
        let (loaded, gui_available) = match self.print(&target)? {
            Printed::Loaded(info) => (Some(*info), true),
            Printed::NotLoaded => (None, true),
            Printed::NoDomain => (None, false),
        };
        let disabled = if gui_available {
            let l = Launchctl::PrintDisabled {
                domain: desired.domain.target(),
            };
            let out = self.call(&l)?;
            out.success()
                .then(|| parse_print_disabled(&out.stdout).get(&desired.label) == Some(&true))
        } else {
            None
        };
        let daemon_plist = self.daemons_dir.join(format!("{}.plist", desired.label));
        let daemon = if daemon_plist.exists() {
            Some(daemon_plist.display().to_string())
        } else {
            let sys = Domain::System.service(&desired.label);
            match self.print(&sys)? {
                Printed::Loaded(_) => Some(format!("`launchctl print {sys}` shows it loaded")),
                _ => None,
            }
        };
        Ok(Observed {
            uid: self.uid,
            on_disk,
            loaded,
            disabled,
            daemon,
            gui_available,
            inside_service: self.inside_service(&desired.label),
        })
    }

    /// True when this process descends from the service: launchd sets `XPC_SERVICE_NAME` to the
    /// job's label; our plist exports `OPENCLAW_LAUNCHD_LABEL` (+ the service marker), which
    /// every child of the gateway inherits.
    fn inside_service(&self, label: &str) -> bool {
        let is = |k: &str| self.env.var(k).as_deref() == Some(label);
        is("XPC_SERVICE_NAME")
            || is("LAUNCH_JOB_LABEL")
            || (is("OPENCLAW_LAUNCHD_LABEL")
                && self.env.var("OPENCLAW_SERVICE_MARKER").as_deref() == Some("openclaw"))
    }

    /// Observes and plans without changing anything (`--dry-run`).
    pub fn plan(&self, op: Op, spec: &ServiceSpec) -> Result<Vec<Step>, LaunchdError> {
        let (desired, _) = self.desired(spec)?;
        let obs = self.observe(&desired)?;
        plan(op, &desired, &obs)
    }

    /// Observes, plans and executes `op`.
    pub fn apply(&self, op: Op, spec: &ServiceSpec) -> Result<Report, LaunchdError> {
        let (desired, job) = self.desired(spec)?;
        if matches!(op, Op::Install { .. } | Op::Start | Op::Restart) {
            check_config_and_secrets(spec, &desired)?;
        }
        let obs = self.observe(&desired)?;
        let steps = plan(op, &desired, &obs)?;
        let mut exec = Exec {
            m: self,
            desired: &desired,
            job: &job,
            spec,
            obs: &obs,
            report: Report::default(),
        };
        if steps.is_empty() {
            exec.report.lines.push(match op {
                Op::Stop { .. } => format!("{} is not loaded; nothing to stop", desired.target()),
                _ => format!("{} is installed, current and running", desired.target()),
            });
        }
        for step in &steps {
            exec.step(step)?;
        }
        Ok(exec.report)
    }

    /// Status with launchd detail.
    pub fn inspect(&self, spec: &ServiceSpec) -> Result<LaunchdStatus, LaunchdError> {
        let (desired, job) = self.desired(spec)?;
        let obs = self.observe(&desired)?;
        let refusal = policy::read_refusal(&spec.state_dir);
        let def = obs.on_disk.as_ref().and_then(|d| d.definition.as_ref());
        let drift = match (&obs.loaded, def) {
            (Some(info), Some(def)) => info.drift_from(def),
            _ => Vec::new(),
        };
        let installed = obs.on_disk.is_some();
        let running = obs.loaded.as_ref().is_some_and(PrintInfo::is_running);
        let state = match &obs.loaded {
            _ if !obs.gui_available => "unavailable",
            Some(i) if i.is_running() => "running",
            Some(i) if i.is_throttled() => "crash-loop",
            Some(_) if refusal.is_some() => "refused",
            Some(i) if i.last_exit.is_failure() => "failed",
            Some(_) => "stopped",
            None if installed => "not-loaded",
            None => "not-installed",
        };
        let runtime = match &obs.loaded {
            _ if !obs.gui_available => format!(
                "unknown (launchd domain gui/{} is unavailable: no GUI login session)",
                self.uid
            ),
            Some(i) => match &refusal {
                Some(r) if !running => format!("{}; config refused: {}", i.summary(), r.message),
                _ => i.summary(),
            },
            None if installed => {
                "not loaded (stopped; `openclaw gateway start` loads it)".to_string()
            }
            None => "not installed (run `openclaw gateway install`)".to_string(),
        };
        let status = ServiceStatus {
            manager: "launchd".into(),
            name: desired.label.clone(),
            file: installed.then(|| desired.plist_path.clone()),
            installed,
            enabled: installed && obs.disabled != Some(true),
            state: state.into(),
            sub_state: obs.loaded.as_ref().and_then(|i| i.state.clone()),
            pid: obs.loaded.as_ref().and_then(|i| i.pid),
            last_exit: match obs.loaded.as_ref().map(|i| &i.last_exit) {
                Some(super::print::LastExit::Code(c)) => Some(*c),
                _ => None,
            },
            reload_pending: !drift.is_empty(),
            socket_activated: def.map_or(!job.sockets.is_empty(), |d| d.has_sockets),
            logs: Some(job.log_path.display().to_string()),
            ..Default::default()
        };
        Ok(LaunchdStatus {
            status,
            runtime,
            stale: obs
                .on_disk
                .as_ref()
                .is_some_and(|d| d.bytes != desired.rendered.as_bytes()),
            print: obs.loaded,
            refusal,
            drift,
            daemon: obs.daemon,
            gui_available: obs.gui_available,
        })
    }

    fn call(&self, l: &Launchctl) -> Result<Output, LaunchdError> {
        let mut argv = l.argv();
        argv[0] = self.launchctl.clone();
        self.runner
            .run(&argv)
            .map_err(|source| LaunchdError::Spawn { argv, source })
    }

    fn print(&self, target: &str) -> Result<Printed, LaunchdError> {
        let l = Launchctl::Print {
            target: target.to_string(),
        };
        let out = self.call(&l)?;
        if out.success() {
            return Ok(Printed::Loaded(Box::new(parse_print(&out.stdout))));
        }
        let code = code_of(out.status, &out.stderr, &out.stdout);
        if code.is_not_loaded() {
            Ok(Printed::NotLoaded)
        } else if code.is_no_gui_session() {
            Ok(Printed::NoDomain)
        } else {
            Err(self.failure(&l, &out, &Context::default()))
        }
    }

    fn failure(&self, l: &Launchctl, out: &Output, ctx: &Context) -> LaunchdError {
        let code = code_of(out.status, &out.stderr, &out.stdout);
        let text = if out.stderr.trim().is_empty() {
            out.stdout.trim()
        } else {
            out.stderr.trim()
        };
        LaunchdError::Launchctl {
            argv: l.argv(),
            code,
            output: text.lines().take(3).collect::<Vec<_>>().join(" / "),
            advice: advice(l.verb(), code, ctx),
        }
    }
}

enum Printed {
    Loaded(Box<PrintInfo>),
    NotLoaded,
    NoDomain,
}

/// Refuses when the config does not load (the gateway would refuse to start) or when a token
/// or password from it would end up in the plist.
fn check_config_and_secrets(spec: &ServiceSpec, desired: &Desired) -> Result<(), LaunchdError> {
    let cfg = Config::load(&spec.config_path).map_err(LaunchdError::Config)?;
    for key in ["gateway.auth.token", "gateway.auth.password"] {
        let Some(secret) = cfg.get(key).and_then(serde_json::Value::as_str) else {
            continue;
        };
        let leaked = if secret.len() >= 8 {
            desired.rendered.contains(secret)
        } else {
            !secret.is_empty()
                && desired
                    .rendered
                    .contains(&format!("<string>{secret}</string>"))
        };
        if leaked {
            return Err(LaunchdError::SecretInPlist {
                what: format!("the value of {key} from {}", spec.config_path.display()),
            });
        }
    }
    Ok(())
}

/// One execution of a plan.
struct Exec<'a> {
    m: &'a LaunchdManager,
    desired: &'a Desired,
    job: &'a LaunchdJob,
    spec: &'a ServiceSpec,
    obs: &'a Observed,
    report: Report,
}

impl Exec<'_> {
    fn ctx(&self, disabled: bool) -> Context {
        Context {
            disabled,
            target: self.desired.target(),
            plist: self.desired.plist_path.clone(),
            uid: self.m.uid,
        }
    }

    fn say(&mut self, line: impl Into<String>) {
        self.report.lines.push(line.into());
    }

    fn step(&mut self, step: &Step) -> Result<(), LaunchdError> {
        match step {
            Step::PrepareDirs => self.prepare_dirs(),
            Step::WritePlist => self.write_plist(),
            Step::ClearRefusal => {
                policy::clear_refusal(&self.spec.state_dir).map_err(|source| LaunchdError::Io {
                    verb: "removing",
                    path: policy::refusal_path(&self.spec.state_dir),
                    source,
                })
            }
            Step::Run(l) => self.launchctl(l),
            Step::WaitUnloaded => self.wait_unloaded(),
            Step::VerifyRunning { previous_pid } => self.verify_running(*previous_pid),
            Step::RemovePlist => self.remove_plist(),
            Step::Handoff(steps) => self.hand_off(steps),
        }
    }

    fn mkdir(&self, dir: &Path, mode: u32) -> Result<(), LaunchdError> {
        if dir.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(|source| LaunchdError::Io {
                verb: "creating directory",
                path: dir.to_path_buf(),
                source,
            })
    }

    fn prepare_dirs(&mut self) -> Result<(), LaunchdError> {
        if let Some(agents) = self.desired.plist_path.parent() {
            self.mkdir(agents, 0o755)?;
        }
        // launchd opens the log before exec; a missing directory makes every spawn fail.
        if let Some(logs) = self.job.log_path.parent() {
            self.mkdir(logs, 0o700)?;
        }
        self.mkdir(&self.job.working_directory, 0o700)
    }

    fn write_plist(&mut self) -> Result<(), LaunchdError> {
        let path = &self.desired.plist_path;
        // The one atomic writer; launchd wants exactly 0644 (write_atomic sets the mode past
        // the umask).
        crate::config::write::write_atomic(path, self.desired.rendered.as_bytes(), 0o644).map_err(
            |e| match e {
                crate::error::Error::Io { verb, path, source } => {
                    LaunchdError::Io { verb, path, source }
                }
                other => LaunchdError::Config(other),
            },
        )?;
        self.say(format!("wrote {}", path.display()));
        Ok(())
    }

    fn remove_plist(&mut self) -> Result<(), LaunchdError> {
        let path = &self.desired.plist_path;
        let trash = self.m.home.join(".Trash");
        if trash.is_dir() {
            let mut dest = trash.join(format!("{}.plist", self.desired.label));
            if dest.exists() {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                dest = trash.join(format!("{} {stamp}.plist", self.desired.label));
            }
            std::fs::rename(path, &dest).map_err(|source| LaunchdError::Io {
                verb: "moving to the Trash",
                path: path.clone(),
                source,
            })?;
            self.say(format!("moved {} to {}", path.display(), dest.display()));
        } else {
            std::fs::remove_file(path).map_err(|source| LaunchdError::Io {
                verb: "removing",
                path: path.clone(),
                source,
            })?;
            self.say(format!("removed {}", path.display()));
        }
        Ok(())
    }

    fn launchctl(&mut self, l: &Launchctl) -> Result<(), LaunchdError> {
        match l {
            Launchctl::Bootstrap { .. } => self.bootstrap(l),
            Launchctl::Kickstart { target, kill: true } => {
                let out = self.m.call(l)?;
                if out.success() {
                    self.say(l.to_string());
                    return Ok(());
                }
                // A failed `kickstart -k` can leave the job unloaded (openclaw #52208): put it back.
                match self.m.print(target)? {
                    Printed::NotLoaded => {
                        let code = code_of(out.status, &out.stderr, &out.stdout);
                        self.say(format!(
                            "{l} failed with {} ({}); the job was unloaded, loading it again",
                            code.0,
                            code.meaning()
                        ));
                        self.bootstrap(&Launchctl::Bootstrap {
                            domain: self.desired.domain.target(),
                            plist: self.desired.plist_path.clone(),
                        })?;
                        self.simple(&Launchctl::Kickstart {
                            target: target.clone(),
                            kill: false,
                        })
                    }
                    _ => Err(self
                        .m
                        .failure(l, &out, &self.ctx(self.obs.disabled == Some(true)))),
                }
            }
            Launchctl::Bootout { .. } => {
                let out = self.m.call(l)?;
                let code = code_of(out.status, &out.stderr, &out.stdout);
                if out.success() || code.is_not_loaded() {
                    self.say(l.to_string());
                    Ok(())
                } else {
                    Err(self.m.failure(l, &out, &self.ctx(false)))
                }
            }
            _ => self.simple(l),
        }
    }

    fn simple(&mut self, l: &Launchctl) -> Result<(), LaunchdError> {
        let out = self.m.call(l)?;
        if out.success() {
            self.say(l.to_string());
            Ok(())
        } else {
            Err(self
                .m
                .failure(l, &out, &self.ctx(self.obs.disabled == Some(true))))
        }
    }

    fn bootstrap(&mut self, l: &Launchctl) -> Result<(), LaunchdError> {
        let t = self.m.timeouts;
        let attempts = t.bootstrap_attempts.max(1);
        let target = self.desired.target();
        for attempt in 1..=attempts {
            let out = self.m.call(l)?;
            if out.success() {
                self.say(l.to_string());
                return Ok(());
            }
            let code = code_of(out.status, &out.stderr, &out.stdout);
            if !code.is_transient_bootstrap() || attempt == attempts {
                let disabled = self
                    .disabled_now()
                    .unwrap_or(self.obs.disabled == Some(true));
                return Err(self.m.failure(l, &out, &self.ctx(disabled)));
            }
            self.say(format!(
                "{l}: {} ({}); retrying ({attempt}/{attempts})",
                code.0,
                code.meaning()
            ));
            // A concurrent bootstrap (another `install`) may have loaded exactly our plist.
            if let Printed::Loaded(info) = self.m.print(&target)? {
                let wanted = parse_definition(self.desired.rendered.as_bytes()).unwrap_or_default();
                let ours = info
                    .path
                    .as_deref()
                    .is_none_or(|p| Path::new(p) == self.desired.plist_path);
                if ours && info.drift_from(&wanted).is_empty() && !info.arguments.is_empty() {
                    self.say(format!("{target} is already loaded with the current plist"));
                    return Ok(());
                }
            }
            self.m.clock.sleep(t.bootstrap_backoff * attempt);
            self.wait_unloaded()?;
        }
        unreachable!("the last attempt returns")
    }

    fn disabled_now(&self) -> Option<bool> {
        let l = Launchctl::PrintDisabled {
            domain: self.desired.domain.target(),
        };
        let out = self.m.call(&l).ok()?;
        out.success()
            .then(|| parse_print_disabled(&out.stdout).get(&self.desired.label) == Some(&true))
    }

    fn wait_unloaded(&mut self) -> Result<(), LaunchdError> {
        let t = self.m.timeouts;
        let target = self.desired.target();
        let start = self.m.clock.now();
        loop {
            match self.m.print(&target)? {
                Printed::NotLoaded | Printed::NoDomain => return Ok(()),
                Printed::Loaded(_) => {}
            }
            if self.m.clock.now().saturating_sub(start) >= t.unload {
                return Err(LaunchdError::Timeout {
                    what: format!("launchd to unload {target}"),
                    secs: t.unload.as_secs(),
                    advice: format!(
                        "launchd may still be tearing the job down: check `launchctl print {target}` and run the command again"
                    ),
                });
            }
            self.m.clock.sleep(t.poll);
        }
    }

    fn verify_running(&mut self, previous_pid: Option<u32>) -> Result<(), LaunchdError> {
        let t = self.m.timeouts;
        let target = self.desired.target();
        let start = self.m.clock.now();
        loop {
            let info = match self.m.print(&target)? {
                Printed::Loaded(i) => Some(*i),
                _ => None,
            };
            if let Some(i) = &info
                && i.is_running()
                && i.pid != previous_pid
            {
                self.say(format!("{target}: {}", i.summary()));
                return Ok(());
            }
            let refusal = policy::read_refusal(&self.spec.state_dir);
            let timed_out = self.m.clock.now().saturating_sub(start) >= t.running;
            if refusal.is_some() || timed_out {
                let detail = match &info {
                    Some(i) => i.summary(),
                    None => "not loaded".to_string(),
                };
                return Err(LaunchdError::NotRunning {
                    label: self.desired.label.clone(),
                    detail: if timed_out && refusal.is_none() {
                        format!("{detail} after {} s", t.running.as_secs())
                    } else {
                        detail
                    },
                    refusal: refusal.map(|r| r.message),
                    log: self.job.log_path.clone(),
                });
            }
            self.m.clock.sleep(t.poll);
        }
    }

    fn hand_off(&mut self, steps: &[Step]) -> Result<(), LaunchdError> {
        if let Some(logs) = self.job.log_path.parent() {
            self.mkdir(logs, 0o700)?;
        }
        let script = handoff::script(
            steps,
            &self.m.launchctl,
            &self.desired.target(),
            &self.job.log_path,
        );
        let argv = vec![
            self.m.shell.clone(),
            "-c".to_string(),
            script,
            "openclaw-launchd-helper".to_string(),
            self.m.caller_pid.to_string(),
        ];
        let pid = self
            .m
            .runner
            .spawn_detached(&argv)
            .map_err(|source| LaunchdError::Spawn {
                argv: argv[..2].to_vec(),
                source,
            })?;
        self.report.helper_pid = Some(pid);
        self.say(format!(
            "running inside {}: handed the rest to helper pid {pid}, which runs after this process exits (log: {})",
            self.desired.target(),
            self.job.log_path.display()
        ));
        Ok(())
    }
}

// The launchd adapter's own step report (`apply`'s `Report`) has never been printed by the
// verbs; it stays out of the portable report so their output does not change.
impl ServiceManager for LaunchdManager {
    fn install(
        &self,
        spec: &ServiceSpec,
        force: bool,
        _report: &mut crate::service::Report,
    ) -> crate::error::Result<()> {
        self.apply(Op::Install { force }, spec)?;
        Ok(())
    }
    fn start(
        &self,
        spec: &ServiceSpec,
        _report: &mut crate::service::Report,
    ) -> crate::error::Result<()> {
        self.apply(Op::Start, spec)?;
        Ok(())
    }
    fn stop(
        &self,
        spec: &ServiceSpec,
        _report: &mut crate::service::Report,
    ) -> crate::error::Result<()> {
        self.apply(Op::Stop { disable: false }, spec)?;
        Ok(())
    }
    fn restart(
        &self,
        spec: &ServiceSpec,
        _report: &mut crate::service::Report,
    ) -> crate::error::Result<()> {
        self.apply(Op::Restart, spec)?;
        Ok(())
    }
    fn uninstall(
        &self,
        spec: &ServiceSpec,
        _report: &mut crate::service::Report,
    ) -> crate::error::Result<()> {
        self.apply(Op::Uninstall, spec)?;
        Ok(())
    }
    fn status(&self, spec: &ServiceSpec) -> crate::error::Result<ServiceStatus> {
        Ok(self.inspect(spec)?.status)
    }
}
