//! A recording, simulated launchd behind the `CommandRunner` trait, and a fake clock.
//!
//! The simulation follows the behaviour reported in the field (docs/service-managers.md B4):
//! `bootout` is asynchronous (the label stays visible to `print` for a few polls),
//! `bootstrap` during that teardown answers 37, bootstrapping a disabled or already-loaded
//! label answers 5, a missing GUI domain answers 125 (bootstrap) / 112 (print), an unknown
//! label 113 (print/kickstart) or 3 (bootout). Scripted one-off failures are queued per verb.
//! `print` output is generated in the same layout as the fixtures, from the plist that was
//! actually bootstrapped (read from disk), so drift detection runs on real data.
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use openclaw::service::exec::{CommandRunner, Output};
use openclaw::service::launchd::Clock;
use openclaw::service::launchd::plist::parse_definition;
use openclaw::service::launchd::policy;

/// What a started gateway does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Keeps running.
    Runs,
    /// Refuses its config under launchd: writes the marker and exits 0.
    Refuses(PathBuf, String),
    /// Exits with this code right away (KeepAlive schedules a respawn).
    Exits(i32),
}

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) plist: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) wd: Option<String>,
    pub(crate) log: Option<String>,
    pub(crate) pid: Option<u32>,
    pub(crate) state: &'static str,
    pub(crate) runs: u32,
    pub(crate) last: String,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) uid: u32,
    pub(crate) label: String,
    pub(crate) calls: Vec<Vec<String>>,
    pub(crate) spawned: Vec<Vec<String>>,
    pub(crate) job: Option<Job>,
    /// Polls a booted-out job stays visible (async teardown).
    pub(crate) teardown_polls: u32,
    teardown_left: u32,
    pub(crate) disabled: bool,
    /// `enable` does not clear the override (to reach the "still disabled" error path).
    pub(crate) enable_is_noop: bool,
    pub(crate) gui: bool,
    pub(crate) system_job: bool,
    pub(crate) behaviour: Behaviour,
    pub(crate) fail_next: BTreeMap<&'static str, VecDeque<(i32, String)>>,
    /// A failing `kickstart -k` also unloads the job (openclaw #52208).
    pub(crate) kickstart_failure_unloads: bool,
    next_pid: u32,
}

/// Cloneable handle; clones share the state.
#[derive(Debug, Clone)]
pub(crate) struct FakeLaunchd(pub(crate) Rc<RefCell<State>>);

fn out(status: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> Output {
    Output {
        status,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

impl FakeLaunchd {
    pub(crate) fn new(uid: u32, label: &str) -> FakeLaunchd {
        FakeLaunchd(Rc::new(RefCell::new(State {
            uid,
            label: label.into(),
            calls: vec![],
            spawned: vec![],
            job: None,
            teardown_polls: 0,
            teardown_left: 0,
            disabled: false,
            enable_is_noop: false,
            gui: true,
            system_job: false,
            behaviour: Behaviour::Runs,
            fail_next: BTreeMap::new(),
            kickstart_failure_unloads: false,
            next_pid: 4242,
        })))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }

    /// Queues a failure for the next call of `verb`.
    pub(crate) fn fail_next(&self, verb: &'static str, code: i32, stderr: &str) {
        self.with(|s| {
            s.fail_next
                .entry(verb)
                .or_default()
                .push_back((code, stderr.to_string()))
        });
    }

    /// The calls as space-joined strings.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.iter().map(|c| c.join(" ")).collect())
    }

    pub(crate) fn clear_calls(&self) {
        self.with(|s| s.calls.clear());
    }

    pub(crate) fn job(&self) -> Option<Job> {
        self.with(|s| s.job.clone())
    }
}

fn read_job(plist: &Path) -> Job {
    let bytes = std::fs::read(plist)
        .unwrap_or_else(|e| panic!("fake launchd: reading {}: {e}", plist.display()));
    let def = parse_definition(&bytes).expect("fake launchd: invalid plist");
    Job {
        plist: plist.to_path_buf(),
        args: def.program_arguments,
        env: def.environment,
        wd: def.working_directory,
        log: def.stdout_path,
        pid: None,
        state: "not running",
        runs: 0,
        last: "(never exited)".into(),
    }
}

impl State {
    fn start(&mut self, job: &mut Job) {
        job.runs += 1;
        match &self.behaviour {
            Behaviour::Runs => {
                job.pid = Some(self.next_pid);
                self.next_pid += 1;
                job.state = "running";
            }
            Behaviour::Refuses(state_dir, msg) => {
                policy::write_refusal(state_dir, msg).unwrap();
                job.pid = None;
                job.state = "not running";
                job.last = "0".into();
            }
            Behaviour::Exits(code) => {
                job.pid = None;
                job.state = "spawn scheduled";
                job.last = code.to_string();
            }
        }
    }

    fn target(&self) -> String {
        format!("gui/{}/{}", self.uid, self.label)
    }

    fn scripted(&mut self, verb: &'static str) -> Option<Output> {
        let (code, msg) = self.fail_next.get_mut(verb)?.pop_front()?;
        Some(out(code, "", msg))
    }

    fn not_found(&self) -> Output {
        out(
            113,
            "",
            format!(
                "Bad request.\nCould not find service \"{}\" in domain for port\n",
                self.label
            ),
        )
    }

    fn print_text(&self, job: &Job) -> String {
        let mut t = format!(
            "{} = {{\n\tactive count = {}\n\tpath = {}\n\ttype = LaunchAgent\n\tstate = {}\n\n",
            self.target(),
            u8::from(job.pid.is_some()),
            job.plist.display(),
            job.state
        );
        if let Some(p) = job.args.first() {
            t += &format!("\tprogram = {p}\n");
        }
        t += "\targuments = {\n";
        for a in &job.args {
            t += &format!("\t\t{a}\n");
        }
        t += "\t}\n\n";
        if let Some(wd) = &job.wd {
            t += &format!("\tworking directory = {wd}\n\n");
        }
        if let Some(log) = &job.log {
            t += &format!("\tstdout path = {log}\n\tstderr path = {log}\n");
        }
        t += "\tdefault environment = {\n\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin\n\t}\n\n";
        t += "\tenvironment = {\n";
        for (k, v) in &job.env {
            t += &format!("\t\t{k} => {v}\n");
        }
        t += &format!("\t\tXPC_SERVICE_NAME => {}\n\t}}\n\n", self.label);
        t += &format!(
            "\tdomain = gui/{} [100006]\n\truns = {}\n",
            self.uid, job.runs
        );
        if let Some(pid) = job.pid {
            t += &format!("\tpid = {pid}\n");
        }
        if job.last.contains(':') {
            t += &format!("\tlast terminating signal = {}\n", job.last);
        } else {
            t += &format!("\tlast exit code = {}\n", job.last);
        }
        t += "\n\tsockets = {\n\t\t\"Listeners\" = {\n\t\t\ttype = stream\n\t\t}\n\t}\n\n";
        t += "\tproperties = keepalive | runatload | inferred program\n}\n";
        t
    }

    fn respond(&mut self, args: &[String]) -> Output {
        let verb = args.first().map(String::as_str).unwrap_or("");
        let target = self.target();
        match verb {
            "print" => {
                let t = &args[1];
                if t.starts_with("system/") {
                    return if self.system_job {
                        out(
                            0,
                            format!("{t} = {{\n\tstate = running\n\tpid = 99\n}}\n"),
                            "",
                        )
                    } else {
                        self.not_found()
                    };
                }
                if !self.gui {
                    return out(112, "", "Bad request.\nCould not find domain for port\n");
                }
                if *t != target {
                    return self.not_found();
                }
                if self.teardown_left > 0 {
                    self.teardown_left -= 1;
                    if self.teardown_left == 0 {
                        let shown = self.job.take();
                        return match shown {
                            Some(j) => out(0, self.print_text(&j), ""),
                            None => self.not_found(),
                        };
                    }
                }
                match &self.job {
                    Some(j) => out(0, self.print_text(j), ""),
                    None => self.not_found(),
                }
            }
            "print-disabled" => {
                if !self.gui {
                    return out(112, "", "Could not find domain for port\n");
                }
                let word = if self.disabled { "disabled" } else { "enabled" };
                out(
                    0,
                    format!(
                        "disabled services = {{\n\t\"com.apple.ScriptMenuApp\" => disabled\n\t\"{}\" => {word}\n}}\n",
                        self.label
                    ),
                    "",
                )
            }
            "enable" => {
                if !self.enable_is_noop {
                    self.disabled = false;
                }
                out(0, "", "")
            }
            "disable" => {
                self.disabled = true;
                out(0, "", "")
            }
            "bootstrap" => {
                if let Some(o) = self.scripted("bootstrap") {
                    return o;
                }
                if !self.gui {
                    return out(
                        125,
                        "",
                        "Bootstrap failed: 125: Domain does not support specified action\n",
                    );
                }
                if self.teardown_left > 0 {
                    return out(
                        37,
                        "",
                        "Bootstrap failed: 37: Operation already in progress\n",
                    );
                }
                if self.disabled || self.job.is_some() {
                    return out(
                        5,
                        "",
                        "Bootstrap failed: 5: Input/output error\nTry re-running the command as root for richer errors.\n",
                    );
                }
                let mut job = read_job(Path::new(&args[2]));
                self.start(&mut job); // RunAtLoad
                self.job = Some(job);
                out(0, "", "")
            }
            "bootout" => {
                if let Some(o) = self.scripted("bootout") {
                    return o;
                }
                match self.job.as_mut() {
                    None => out(3, "", "Boot-out failed: 3: No such process\n"),
                    Some(j) if self.teardown_left > 0 => {
                        let _ = j;
                        out(
                            37,
                            "",
                            "Boot-out failed: 37: Operation already in progress\n",
                        )
                    }
                    Some(j) => {
                        if j.pid.take().is_some() {
                            j.last = "Terminated: 15".into();
                        }
                        j.state = "not running";
                        if self.teardown_polls == 0 {
                            self.job = None;
                        } else {
                            self.teardown_left = self.teardown_polls;
                        }
                        out(0, "", "")
                    }
                }
            }
            "kickstart" => {
                let kill = args.iter().any(|a| a == "-k");
                if kill && let Some(o) = self.scripted("kickstart -k") {
                    if self.kickstart_failure_unloads {
                        self.job = None;
                    }
                    return o;
                }
                let Some(mut job) = self.job.take() else {
                    return self.not_found();
                };
                if job.pid.is_some() && kill {
                    job.pid = None;
                    job.last = "Terminated: 15".into();
                    self.start(&mut job);
                } else if job.pid.is_none() {
                    self.start(&mut job);
                }
                self.job = Some(job);
                out(0, "", "")
            }
            other => out(64, "", format!("Unrecognized subcommand: {other}\n")),
        }
    }
}

impl CommandRunner for FakeLaunchd {
    fn run(&self, argv: &[String]) -> std::io::Result<Output> {
        let mut s = self.0.borrow_mut();
        let mut rec = argv.to_vec();
        rec[0] = "launchctl".into();
        s.calls.push(rec);
        Ok(s.respond(&argv[1..]))
    }

    fn spawn_detached(&self, argv: &[String]) -> std::io::Result<u32> {
        self.0.borrow_mut().spawned.push(argv.to_vec());
        Ok(7777)
    }
}

/// A clock that only moves when slept on.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeClock {
    pub(crate) now: Rc<Cell<Duration>>,
    pub(crate) sleeps: Rc<Cell<u32>>,
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        self.now.get()
    }
    fn sleep(&self, d: Duration) {
        self.now.set(self.now.get() + d);
        self.sleeps.set(self.sleeps.get() + 1);
    }
}
