//! A recording, simulated `systemctl --user` (and `loginctl`) behind the `CommandRunner`
//! trait: the systemd twin of the launchd fake (`tests/it/launchd/fake.rs`).
//!
//! It keeps one service/socket pair: `daemon-reload` loads the units found in the unit
//! directory, `start` runs a loaded service with a fresh pid, `stop`/`disable --now` stop it,
//! `restart` gives it a new pid; a start of a unit that is not loaded fails like systemd
//! (exit 5, "Unit … not found."). The system manager (`systemctl` without `--user`) knows no
//! units. Scripted one-off failures are queued per verb.
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

use openclaw::service::exec::{CommandRunner, Output};

/// The simulated manager's state.
#[derive(Debug)]
pub struct State {
    /// Every argv run, in order.
    pub calls: Vec<Vec<String>>,
    /// Where the user units live (what `daemon-reload` loads).
    pub unit_dir: PathBuf,
    /// Unit base name (`openclaw-gateway`).
    pub name: String,
    /// `Version`.
    pub version: u32,
    /// The service unit is loaded.
    pub loaded: bool,
    /// `ActiveState`.
    pub active: String,
    /// `SubState`.
    pub sub: String,
    /// `Result`.
    pub result: String,
    /// `MainPID` (0: none).
    pub pid: u32,
    /// `ExecMainCode` (1: exited) and `ExecMainStatus`.
    pub exit: Option<i32>,
    /// `UnitFileState=enabled`.
    pub enabled: bool,
    /// `NeedDaemonReload`.
    pub need_reload: bool,
    /// `loginctl show-user … --property=Linger --value`.
    pub linger: String,
    /// One-off failures per verb: (exit status, stderr).
    pub fail_next: BTreeMap<String, VecDeque<(i32, String)>>,
    next_pid: u32,
}

/// Cloneable handle; clones share the state.
#[derive(Debug, Clone)]
pub struct FakeSystemctl(pub Rc<RefCell<State>>);

fn out(status: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> Output {
    Output {
        status,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

impl FakeSystemctl {
    /// A user manager with nothing loaded; units live in `unit_dir`.
    pub fn new(unit_dir: impl Into<PathBuf>, name: &str) -> FakeSystemctl {
        FakeSystemctl(Rc::new(RefCell::new(State {
            calls: Vec::new(),
            unit_dir: unit_dir.into(),
            name: name.into(),
            version: 252,
            loaded: false,
            active: "inactive".into(),
            sub: "dead".into(),
            result: "success".into(),
            pid: 0,
            exit: None,
            enabled: false,
            need_reload: false,
            linger: "yes".into(),
            fail_next: BTreeMap::new(),
            next_pid: 4000,
        })))
    }

    /// The argv run so far, each joined with spaces.
    pub fn calls(&self) -> Vec<String> {
        self.0.borrow().calls.iter().map(|c| c.join(" ")).collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.0.borrow_mut().calls.clear();
    }

    /// The next `verb` fails with `status` and `stderr`.
    pub fn fail_next(&self, verb: &str, status: i32, stderr: &str) {
        self.0
            .borrow_mut()
            .fail_next
            .entry(verb.into())
            .or_default()
            .push_back((status, stderr.into()));
    }

    fn show(s: &State, unit: &str) -> String {
        let svc = format!("{}.service", s.name);
        let sock = format!("{}.socket", s.name);
        let load = if s.loaded { "loaded" } else { "not-found" };
        let fragment = if s.loaded {
            s.unit_dir.join(&svc).display().to_string()
        } else {
            String::new()
        };
        let enabled = if s.enabled { "enabled" } else { "disabled" };
        let reload = if s.need_reload { "yes" } else { "no" };
        if unit == svc {
            let (code, status) = match s.exit {
                Some(c) => (1, c),
                None => (0, 0),
            };
            format!(
                "LoadState={load}\nActiveState={}\nSubState={}\nResult={}\nMainPID={}\n\
                 ExecMainStatus={status}\nExecMainCode={code}\nNRestarts=0\nStartLimitBurst=5\n\
                 FragmentPath={fragment}\nDropInPaths=\nNeedDaemonReload={reload}\n\
                 UnitFileState={enabled}\nStatusText=\n",
                s.active, s.sub, s.result, s.pid
            )
        } else if unit == sock {
            let active = if s.loaded && s.active != "failed" && s.pid != 0 {
                "active"
            } else {
                "inactive"
            };
            format!(
                "LoadState={load}\nActiveState={active}\nSubState=listening\n\
                 Listen=127.0.0.1:18789 (Stream)\nNeedDaemonReload={reload}\nUnitFileState={enabled}\n"
            )
        } else {
            "LoadState=not-found\nActiveState=inactive\n".into()
        }
    }

    fn user(&self, s: &mut State, args: &[String]) -> Output {
        let verb = args.first().map(String::as_str).unwrap_or_default();
        if let Some((status, stderr)) = s.fail_next.get_mut(verb).and_then(VecDeque::pop_front) {
            return out(status, "", stderr);
        }
        let svc = format!("{}.service", s.name);
        let names: Vec<&str> = args[1..]
            .iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with('-'))
            .collect();
        match verb {
            "show" if names.is_empty() => out(0, format!("{}\n", s.version), ""),
            "show" => {
                let blocks: Vec<String> = names.iter().map(|u| Self::show(s, u)).collect();
                out(0, blocks.join("\n"), "")
            }
            "daemon-reload" => {
                s.loaded = s.unit_dir.join(&svc).exists();
                s.need_reload = false;
                out(0, "", "")
            }
            "enable" => {
                s.enabled = true;
                out(0, "", "")
            }
            "disable" => {
                s.enabled = false;
                s.active = "inactive".into();
                s.sub = "dead".into();
                s.pid = 0;
                out(0, "", "")
            }
            "reset-failed" => {
                if s.active == "failed" {
                    s.active = "inactive".into();
                }
                out(0, "", "")
            }
            "start" | "restart" if !names.contains(&svc.as_str()) => out(0, "", ""),
            "start" | "restart" if !s.loaded => out(
                5,
                "",
                format!("Failed to {verb} {svc}: Unit {svc} not found."),
            ),
            "start" if s.pid != 0 => out(0, "", ""),
            "start" | "restart" => {
                s.next_pid += 1;
                s.pid = s.next_pid;
                s.active = "active".into();
                s.sub = "running".into();
                s.result = "success".into();
                out(0, "", "")
            }
            "stop" => {
                s.active = "inactive".into();
                s.sub = "dead".into();
                s.pid = 0;
                out(0, "", "")
            }
            other => out(1, "", format!("Unknown command verb {other}.")),
        }
    }
}

impl CommandRunner for FakeSystemctl {
    fn run(&self, argv: &[String]) -> std::io::Result<Output> {
        let mut s = self.0.borrow_mut();
        s.calls.push(argv.to_vec());
        let argv: Vec<String> = if argv.first().map(String::as_str) == Some("env") {
            argv.iter()
                .skip(1)
                .skip_while(|a| a.contains('='))
                .cloned()
                .collect()
        } else {
            argv.to_vec()
        };
        match argv.first().map(String::as_str) {
            Some("systemctl") if argv.get(1).map(String::as_str) == Some("--user") => {
                let args = argv[2..].to_vec();
                Ok(self.user(&mut s, &args))
            }
            // The system manager knows none of our units.
            Some("systemctl") => Ok(out(
                0,
                "LoadState=not-found\nFragmentPath=\nUnitFileState=\nActiveState=inactive\n",
                "",
            )),
            Some("loginctl") => Ok(out(0, format!("{}\n", s.linger), "")),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("fake systemctl cannot run {argv:?}"),
            )),
        }
    }
}
