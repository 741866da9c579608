//! Parsing `launchctl print <service-target>` and `launchctl print-disabled <domain>`.
//!
//! Apple documents `print` output as "NOT API": the format may change between releases. The
//! parser therefore reads only what it recognises and ignores every other line; a missing field
//! is `None`, never an error, and `status` degrades to "unknown" rather than failing.
//!
//! Shape (macOS 11–15): a header `gui/501/<label> = {`, top-level `key = value` lines indented
//! by one tab, nested blocks `name = {` … `}` (`arguments`, `environment`, coalitions, sockets,
//! …) whose inner lines also contain `state =` — so only depth-1 keys are taken as the job's.
//! Exit forms seen in the field: `last exit code = (never exited)`, `= 0`, `= 78: EX_CONFIG`,
//! and `last terminating signal = Killed: 9` (which replaces the exit-code line).
use std::collections::BTreeMap;

use super::plist::Definition;

/// How the job last ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LastExit {
    /// Not reported.
    #[default]
    Unknown,
    /// `(never exited)`.
    Never,
    /// `N` or `N: NAME`.
    Code(i32),
    /// `last terminating signal = <Name>: <N>`.
    Signal {
        /// Signal number.
        number: i32,
        /// launchd's name for it (`Killed`, `Terminated`, `Segmentation fault`, …).
        name: String,
    },
}

impl LastExit {
    /// Short human text (`0`, `78`, `signal 9 (Killed)`, `never`).
    pub fn describe(&self) -> String {
        match self {
            LastExit::Unknown => "unknown".into(),
            LastExit::Never => "never".into(),
            LastExit::Code(c) => c.to_string(),
            LastExit::Signal { number, name } => format!("signal {number} ({name})"),
        }
    }

    /// Whether the last run ended badly (non-zero exit or a signal other than SIGTERM, which is
    /// how launchd stops a job and how `kickstart -k` restarts it).
    pub fn is_failure(&self) -> bool {
        match self {
            LastExit::Code(c) => *c != 0,
            LastExit::Signal { number, .. } => *number != 15,
            LastExit::Unknown | LastExit::Never => false,
        }
    }
}

/// What `launchctl print gui/<uid>/<label>` said about a loaded job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintInfo {
    /// The header target (`gui/501/ai.openclaw.gateway`).
    pub target: Option<String>,
    /// `path` (the plist launchd loaded).
    pub path: Option<String>,
    /// `type` (`LaunchAgent`).
    pub job_type: Option<String>,
    /// `state` (`running`, `not running`, `spawn scheduled`, `xpcproxy`, …).
    pub state: Option<String>,
    /// `program`.
    pub program: Option<String>,
    /// `arguments` block.
    pub arguments: Vec<String>,
    /// `working directory`.
    pub working_directory: Option<String>,
    /// `stdout path`.
    pub stdout_path: Option<String>,
    /// `stderr path`.
    pub stderr_path: Option<String>,
    /// The job's own `environment` block (not `inherited`/`default environment`).
    pub environment: BTreeMap<String, String>,
    /// `runs` (spawn count since load).
    pub runs: Option<u64>,
    /// `pid` (present while running).
    pub pid: Option<u32>,
    /// `last exit code` / `last terminating signal`.
    pub last_exit: LastExit,
    /// `last exit reason` (jetsam, …), verbatim.
    pub last_exit_reason: Option<String>,
    /// `exit timeout`.
    pub exit_timeout: Option<u64>,
    /// `properties` words (`keepalive`, `runatload`, …).
    pub properties: Vec<String>,
    /// A top-level `sockets` block is present.
    pub has_sockets: bool,
}

impl PrintInfo {
    /// `state = running` with a pid.
    pub fn is_running(&self) -> bool {
        self.state.as_deref() == Some("running") && self.pid.is_some()
    }

    /// Crash-loop back-off: launchd scheduled another spawn after a failed run.
    pub fn is_throttled(&self) -> bool {
        self.state.as_deref() == Some("spawn scheduled") && self.last_exit.is_failure()
    }

    /// `running (pid N, state running, last exit 0)`-style summary for status lines.
    pub fn summary(&self) -> String {
        let state = self.state.as_deref().unwrap_or("unknown");
        let mut parts = Vec::new();
        if let Some(pid) = self.pid {
            parts.push(format!("pid {pid}"));
        }
        parts.push(format!("state {state}"));
        if let Some(r) = self.runs {
            parts.push(format!("runs {r}"));
        }
        parts.push(format!("last exit {}", self.last_exit.describe()));
        let word = if self.is_running() {
            "running"
        } else if self.is_throttled() {
            "crash-looping"
        } else {
            "stopped"
        };
        format!("{word} ({})", parts.join(", "))
    }

    /// Differences between what launchd has loaded and an installed plist: empty means the
    /// loaded job matches the file as far as `print` shows it (program arguments, working
    /// directory, stdio paths, environment). Keys `print` does not show (ThrottleInterval,
    /// Sockets, limits, …) cannot be compared; `install --force` reloads regardless.
    pub fn drift_from(&self, def: &Definition) -> Vec<String> {
        let mut out = Vec::new();
        if !self.arguments.is_empty() && self.arguments != def.program_arguments {
            out.push(format!(
                "program arguments: loaded {:?}, file {:?}",
                self.arguments, def.program_arguments
            ));
        }
        let cmp =
            |what: &str, loaded: &Option<String>, file: &Option<String>, out: &mut Vec<String>| {
                if let (Some(l), Some(f)) = (loaded, file)
                    && l != f
                {
                    out.push(format!("{what}: loaded {l}, file {f}"));
                }
            };
        cmp(
            "working directory",
            &self.working_directory,
            &def.working_directory,
            &mut out,
        );
        cmp("stdout path", &self.stdout_path, &def.stdout_path, &mut out);
        cmp("stderr path", &self.stderr_path, &def.stderr_path, &mut out);
        // launchd adds its own entries (XPC_SERVICE_NAME, …). If none of the file's keys is
        // visible, this macOS does not show them: compare nothing rather than report
        // everything as drifted (which would make every install reload the job).
        let visible = def
            .environment
            .keys()
            .any(|k| self.environment.contains_key(k));
        if visible {
            for (k, v) in &def.environment {
                match self.environment.get(k) {
                    Some(l) if l == v => {}
                    Some(l) => out.push(format!("environment {k}: loaded {l}, file {v}")),
                    None => out.push(format!("environment {k}: not loaded, file {v}")),
                }
            }
        }
        out
    }
}

/// Parses `launchctl print <service-target>` output (tolerant; see the module doc).
pub fn parse_print(text: &str) -> PrintInfo {
    let mut info = PrintInfo::default();
    let mut depth: usize = 0;
    // The depth-1 block we are inside, if any.
    let mut block: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line == "}" {
            depth = depth.saturating_sub(1);
            if depth <= 1 {
                block = None;
            }
            continue;
        }
        if let Some(head) = line.strip_suffix('{') {
            let name = head.trim().trim_end_matches('=').trim().to_string();
            if depth == 0 {
                info.target = Some(name);
            } else if depth == 1 {
                if name == "sockets" {
                    info.has_sockets = true;
                }
                block = Some(name);
            }
            depth += 1;
            continue;
        }
        match (depth, block.as_deref()) {
            (1, _) => {
                if let Some((k, v)) = line.split_once(" = ") {
                    top_level(&mut info, k.trim(), v.trim());
                }
            }
            (2, Some("arguments")) => info.arguments.push(line.to_string()),
            (2, Some("environment")) => {
                if let Some((k, v)) = line.split_once(" => ") {
                    info.environment.insert(k.trim().into(), v.trim().into());
                }
            }
            _ => {}
        }
    }
    info
}

fn top_level(info: &mut PrintInfo, key: &str, value: &str) {
    match key {
        "path" => info.path = Some(value.into()),
        "type" => info.job_type = Some(value.into()),
        "state" => info.state = Some(value.into()),
        "program" => info.program = Some(value.into()),
        "working directory" => info.working_directory = Some(value.into()),
        "stdout path" => info.stdout_path = Some(value.into()),
        "stderr path" => info.stderr_path = Some(value.into()),
        "runs" => info.runs = value.parse().ok(),
        "pid" => info.pid = value.parse().ok(),
        "exit timeout" => info.exit_timeout = value.parse().ok(),
        "last exit reason" => info.last_exit_reason = Some(value.into()),
        "properties" => {
            info.properties = value.split('|').map(|p| p.trim().to_string()).collect();
        }
        // A signal line wins over an exit-code line if both appear.
        "last exit code" if !matches!(info.last_exit, LastExit::Signal { .. }) => {
            info.last_exit = parse_exit_code(value);
        }
        "last terminating signal" => {
            if let Some(sig) = parse_signal(value) {
                info.last_exit = sig;
            }
        }
        _ => {}
    }
}

fn parse_exit_code(v: &str) -> LastExit {
    if v.starts_with("(never exited)") {
        return LastExit::Never;
    }
    let num = v.split(':').next().unwrap_or("").trim();
    num.parse().map(LastExit::Code).unwrap_or(LastExit::Unknown)
}

fn parse_signal(v: &str) -> Option<LastExit> {
    let (name, num) = v.rsplit_once(':')?;
    Some(LastExit::Signal {
        number: num.trim().parse().ok()?,
        name: name.trim().to_string(),
    })
}

/// Parses `launchctl print-disabled <domain>`: label → disabled. Both dialects are accepted:
/// `"label" => disabled|enabled` (macOS 12+) and `"label" => true|false` (older; true means
/// disabled). A label without a line has no override (not disabled).
pub fn parse_print_disabled(text: &str) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once("=>") else {
            continue;
        };
        let label = k.trim().trim_matches('"');
        let disabled = match v.trim() {
            "disabled" | "true" => true,
            "enabled" | "false" => false,
            _ => continue,
        };
        if !label.is_empty() {
            out.insert(label.to_string(), disabled);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_forms() {
        assert_eq!(parse_exit_code("(never exited)"), LastExit::Never);
        assert_eq!(parse_exit_code("0"), LastExit::Code(0));
        assert_eq!(parse_exit_code("78: EX_CONFIG"), LastExit::Code(78));
        assert_eq!(parse_exit_code("garbage"), LastExit::Unknown);
        assert_eq!(
            parse_signal("Segmentation fault: 11"),
            Some(LastExit::Signal {
                number: 11,
                name: "Segmentation fault".into()
            })
        );
        assert!(
            !LastExit::Signal {
                number: 15,
                name: "Terminated".into()
            }
            .is_failure()
        );
        assert!(LastExit::Code(1).is_failure());
    }

    #[test]
    fn a_signal_line_wins_over_an_exit_code_line() {
        for t in [
            "x = {\n\tlast terminating signal = Killed: 9\n\tlast exit code = 0\n}\n",
            "x = {\n\tlast exit code = 0\n\tlast terminating signal = Killed: 9\n}\n",
        ] {
            assert_eq!(
                parse_print(t).last_exit,
                LastExit::Signal {
                    number: 9,
                    name: "Killed".into()
                }
            );
        }
    }

    #[test]
    fn nested_state_lines_are_not_the_jobs() {
        let t = "gui/1/x = {\n\tstate = not running\n\tjetsam coalition = {\n\t\tstate = active\n\t}\n\tpid = 9\n}\n";
        let p = parse_print(t);
        assert_eq!(p.state.as_deref(), Some("not running"));
        assert_eq!(p.pid, Some(9));
        assert_eq!(p.target.as_deref(), Some("gui/1/x"));
    }

    #[test]
    fn environment_drift_only_when_print_shows_our_keys() {
        let def = Definition {
            program_arguments: vec!["/bin/x".into()],
            environment: [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "2".to_string()),
            ]
            .into_iter()
            .collect(),
            ..Definition::default()
        };
        let mut p = PrintInfo {
            arguments: vec!["/bin/x".into()],
            ..PrintInfo::default()
        };
        p.environment.insert("XPC_SERVICE_NAME".into(), "x".into());
        assert!(
            p.drift_from(&def).is_empty(),
            "this launchd does not show plist env"
        );
        p.environment.insert("A".into(), "1".into());
        assert_eq!(p.drift_from(&def), ["environment B: not loaded, file 2"]);
        p.environment.insert("B".into(), "3".into());
        assert_eq!(p.drift_from(&def), ["environment B: loaded 3, file 2"]);
    }

    #[test]
    fn garbage_is_tolerated() {
        let p = parse_print("Could not find service \"x\" in domain for port\n");
        assert_eq!(p, PrintInfo::default());
        assert!(parse_print_disabled("nonsense\n\"a\" => maybe\n").is_empty());
    }
}
