//! The launchctl plan: pure `plan(op, desired, observed) -> Vec<Step>`.
//!
//! The sequences are the ones the field converged on (docs/service-managers.md B4, docs/lifecycle.md
//! §3.2, §10 item 2) and avoid every reported failure mode:
//! - install: write the plist atomically → `enable` (clears a persisted disable, the cause of
//!   `Bootstrap failed: 5`) → if loaded and different: `bootout`, **poll until the label is
//!   gone** (bootout is asynchronous) → `bootstrap` (the executor retries 37/5 a bounded number
//!   of times) → `kickstart` without `-k` (RunAtLoad does not always fire after a re-bootstrap)
//!   → verify `running`. An identical, running job is left alone (idempotent).
//! - start: `enable` → `bootstrap` if not loaded → `kickstart` → verify.
//! - stop: `bootout` and wait until unloaded (this also frees the port, which launchd holds for
//!   socket activation). A persisted `disable` only when asked (`--disable`).
//! - restart: `kickstart -k` when the loaded job matches the plist (launchd kills and respawns
//!   it itself, keeping the sockets); `bootout` + `bootstrap` when the plist changed.
//! - uninstall: `bootout` → clear a persisted disable (so a later install can bootstrap) →
//!   move the plist to the Trash.
//! - From inside the service (a CLI spawned by the gateway), every step from the first one that
//!   kills the job is handed to a detached helper, so the caller is not killed half-way and
//!   the job is never left unloaded.
use std::fmt;
use std::path::PathBuf;

use super::domain::Domain;
use super::errors::LaunchdError;
use super::plist::{Definition, parse_definition};
use super::print::PrintInfo;

/// One launchctl invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launchctl {
    /// `print <target>` (a service or a domain).
    Print {
        /// `gui/501/<label>` or `system/<label>`.
        target: String,
    },
    /// `print-disabled <domain>`.
    PrintDisabled {
        /// `gui/501`.
        domain: String,
    },
    /// `enable <service-target>` (clears a persisted disable).
    Enable {
        /// Service target.
        target: String,
    },
    /// `disable <service-target>` (persisted across reboots; only when asked).
    Disable {
        /// Service target.
        target: String,
    },
    /// `bootstrap <domain> <plist>` (load).
    Bootstrap {
        /// Domain target.
        domain: String,
        /// The plist.
        plist: PathBuf,
    },
    /// `bootout <service-target>` (unload; asynchronous).
    Bootout {
        /// Service target.
        target: String,
    },
    /// `kickstart [-k] <service-target>`.
    Kickstart {
        /// Service target.
        target: String,
        /// `-k`: kill the running instance first (restart).
        kill: bool,
    },
}

impl Launchctl {
    /// The exact argv, starting with `launchctl`.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec!["launchctl".to_string()];
        match self {
            Launchctl::Print { target } => v.extend(["print".into(), target.clone()]),
            Launchctl::PrintDisabled { domain } => {
                v.extend(["print-disabled".into(), domain.clone()])
            }
            Launchctl::Enable { target } => v.extend(["enable".into(), target.clone()]),
            Launchctl::Disable { target } => v.extend(["disable".into(), target.clone()]),
            Launchctl::Bootstrap { domain, plist } => v.extend([
                "bootstrap".into(),
                domain.clone(),
                plist.display().to_string(),
            ]),
            Launchctl::Bootout { target } => v.extend(["bootout".into(), target.clone()]),
            Launchctl::Kickstart { target, kill } => {
                v.push("kickstart".into());
                if *kill {
                    v.push("-k".into());
                }
                v.push(target.clone());
            }
        }
        v
    }

    /// The subcommand (`bootstrap`, …).
    pub fn verb(&self) -> &'static str {
        match self {
            Launchctl::Print { .. } => "print",
            Launchctl::PrintDisabled { .. } => "print-disabled",
            Launchctl::Enable { .. } => "enable",
            Launchctl::Disable { .. } => "disable",
            Launchctl::Bootstrap { .. } => "bootstrap",
            Launchctl::Bootout { .. } => "bootout",
            Launchctl::Kickstart { .. } => "kickstart",
        }
    }

    /// Kills the running job (and with it every process in its process group).
    pub fn is_disruptive(&self) -> bool {
        matches!(
            self,
            Launchctl::Bootout { .. } | Launchctl::Kickstart { kill: true, .. }
        )
    }
}

impl fmt::Display for Launchctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv().join(" "))
    }
}

/// One step of a plan. File steps run in-process; launchctl steps go through the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create `~/Library/LaunchAgents`, the log dir and the state dir when missing.
    PrepareDirs,
    /// Write the rendered plist atomically (temp file + fsync + rename, mode 0644).
    WritePlist,
    /// Remove the gateway's config-refusal marker (a fresh start attempt follows).
    ClearRefusal,
    /// Run launchctl.
    Run(Launchctl),
    /// Poll `print` until the label is gone (bounded).
    WaitUnloaded,
    /// Poll `print` until the job runs with a pid other than `previous_pid` (bounded).
    VerifyRunning {
        /// The pid before a restart.
        previous_pid: Option<u32>,
    },
    /// Move the plist to `~/.Trash` (or delete it when there is no Trash).
    RemovePlist,
    /// Run these steps in a detached helper after the calling process exits.
    Handoff(Vec<Step>),
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `gateway install [--force]`.
    Install {
        /// Rewrite and reload even when current.
        force: bool,
    },
    /// `gateway start`.
    Start,
    /// `gateway stop [--disable]`.
    Stop {
        /// Also persist a disable (survives reboots until `enable`).
        disable: bool,
    },
    /// `gateway restart`.
    Restart,
    /// `gateway uninstall`.
    Uninstall,
}

/// What should be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The label.
    pub label: String,
    /// The domain (`gui/<uid>`).
    pub domain: Domain,
    /// `~/Library/LaunchAgents/<label>.plist`.
    pub plist_path: PathBuf,
    /// The rendered plist.
    pub rendered: String,
}

impl Desired {
    /// `gui/<uid>/<label>`.
    pub fn target(&self) -> String {
        self.domain.service(&self.label)
    }
}

/// The installed plist as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDisk {
    /// Raw bytes.
    pub bytes: Vec<u8>,
    /// Parsed fields (`None` when the file is not a valid plist).
    pub definition: Option<Definition>,
}

/// What was observed before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The user id we act as.
    pub uid: u32,
    /// The installed plist, if any.
    pub on_disk: Option<OnDisk>,
    /// `launchctl print` of the service when loaded.
    pub loaded: Option<PrintInfo>,
    /// A persisted override from `print-disabled` (`None` = could not tell).
    pub disabled: Option<bool>,
    /// Evidence of a same-label LaunchDaemon.
    pub daemon: Option<String>,
    /// The `gui/<uid>` domain exists (false over SSH/headless: launchctl said 112/125).
    pub gui_available: bool,
    /// This process runs inside the service's own process tree.
    pub inside_service: bool,
}

/// Plans `op`. Refusals (root, LaunchDaemon conflict, no GUI session, not installed) are errors
/// returned before anything changes.
pub fn plan(op: Op, desired: &Desired, obs: &Observed) -> Result<Vec<Step>, LaunchdError> {
    if obs.uid == 0 {
        return Err(LaunchdError::RunningAsRoot);
    }
    let starts = matches!(op, Op::Install { .. } | Op::Start | Op::Restart);
    if starts {
        if let Some(evidence) = &obs.daemon {
            return Err(LaunchdError::DaemonConflict {
                label: desired.label.clone(),
                evidence: evidence.clone(),
            });
        }
        if !obs.gui_available {
            return Err(LaunchdError::NoGuiSession { uid: obs.uid });
        }
    }
    let target = desired.target();
    let enable = Step::Run(Launchctl::Enable {
        target: target.clone(),
    });
    let bootstrap = Step::Run(Launchctl::Bootstrap {
        domain: desired.domain.target(),
        plist: desired.plist_path.clone(),
    });
    let bootout = Step::Run(Launchctl::Bootout {
        target: target.clone(),
    });
    let kickstart = |kill| {
        Step::Run(Launchctl::Kickstart {
            target: target.clone(),
            kill,
        })
    };
    let installed = obs.on_disk.is_some() || obs.loaded.is_some();
    let mut steps = Vec::new();
    match op {
        Op::Install { force } => {
            let file_current = obs
                .on_disk
                .as_ref()
                .is_some_and(|d| d.bytes == desired.rendered.as_bytes());
            let mut rest = Vec::new();
            match &obs.loaded {
                None => {
                    rest.extend([Step::ClearRefusal, enable, bootstrap, kickstart(false)]);
                    rest.push(Step::VerifyRunning { previous_pid: None });
                }
                Some(info) => {
                    let wanted = parse_definition(desired.rendered.as_bytes()).unwrap_or_default();
                    let loaded_current = file_current && info.drift_from(&wanted).is_empty();
                    if loaded_current && !force {
                        if !info.is_running() {
                            rest.extend([Step::ClearRefusal, enable, kickstart(false)]);
                            rest.push(Step::VerifyRunning { previous_pid: None });
                        } else if obs.disabled == Some(true) {
                            // Running now, but would not come back at the next login.
                            rest.push(enable);
                        }
                    } else {
                        rest.extend([Step::ClearRefusal, enable, bootout, Step::WaitUnloaded]);
                        rest.extend([bootstrap, kickstart(false)]);
                        rest.push(Step::VerifyRunning {
                            previous_pid: info.pid,
                        });
                    }
                }
            }
            // Installed, current and running: nothing at all to do (idempotent install).
            if force || !file_current || !rest.is_empty() {
                steps.push(Step::PrepareDirs);
                if force || !file_current {
                    steps.push(Step::WritePlist);
                }
            }
            steps.extend(rest);
        }
        Op::Start => {
            if !installed {
                return Err(not_installed(desired));
            }
            steps.extend([Step::ClearRefusal, enable]);
            if obs.loaded.is_none() {
                steps.push(bootstrap);
            }
            steps.push(kickstart(false));
            steps.push(Step::VerifyRunning { previous_pid: None });
        }
        Op::Stop { disable } => {
            if disable {
                steps.push(Step::Run(Launchctl::Disable {
                    target: target.clone(),
                }));
            }
            if obs.loaded.is_some() {
                steps.extend([bootout, Step::WaitUnloaded]);
            }
        }
        Op::Restart => {
            if !installed {
                return Err(not_installed(desired));
            }
            steps.extend([Step::ClearRefusal, enable]);
            match &obs.loaded {
                None => {
                    steps.extend([bootstrap, kickstart(false)]);
                    steps.push(Step::VerifyRunning { previous_pid: None });
                }
                Some(info) => {
                    let changed = obs
                        .on_disk
                        .as_ref()
                        .and_then(|d| d.definition.as_ref())
                        .is_some_and(|def| !info.drift_from(def).is_empty());
                    if changed {
                        steps.extend([bootout, Step::WaitUnloaded, bootstrap, kickstart(false)]);
                    } else {
                        steps.push(kickstart(true));
                    }
                    steps.push(Step::VerifyRunning {
                        previous_pid: info.pid,
                    });
                }
            }
        }
        Op::Uninstall => {
            if obs.loaded.is_some() {
                steps.extend([bootout, Step::WaitUnloaded]);
            }
            if obs.disabled == Some(true) {
                steps.push(enable);
            }
            if obs.on_disk.is_some() {
                steps.push(Step::RemovePlist);
            }
            steps.push(Step::ClearRefusal);
        }
    }
    if obs.inside_service {
        steps = hand_off(steps);
    }
    Ok(steps)
}

/// Splits a plan for a caller inside the service: file steps and everything before the first
/// disruptive launchctl step run now; the launchctl steps from there on (minus verification,
/// which the dying caller cannot do) run in a detached helper.
pub fn hand_off(steps: Vec<Step>) -> Vec<Step> {
    let Some(first) = steps
        .iter()
        .position(|s| matches!(s, Step::Run(l) if l.is_disruptive()))
    else {
        return steps;
    };
    let mut now: Vec<Step> = steps[..first].to_vec();
    let mut later = Vec::new();
    for s in steps.into_iter().skip(first) {
        match s {
            Step::Run(_) | Step::WaitUnloaded => later.push(s),
            Step::VerifyRunning { .. } | Step::Handoff(_) => {}
            file_step => now.push(file_step),
        }
    }
    now.push(Step::Handoff(later));
    now
}

fn not_installed(desired: &Desired) -> LaunchdError {
    LaunchdError::NotInstalled {
        label: desired.label.clone(),
        plist: desired.plist_path.clone(),
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::PrepareDirs => f.write_str(
                "create ~/Library/LaunchAgents, the log dir and the state dir if missing",
            ),
            Step::WritePlist => f.write_str("write the plist atomically (mode 0644)"),
            Step::ClearRefusal => f.write_str("clear the gateway's config-refusal marker"),
            Step::Run(l) => write!(f, "{l}"),
            Step::WaitUnloaded => f.write_str("wait until launchd has unloaded the label"),
            Step::VerifyRunning { .. } => f.write_str("verify the job is running"),
            Step::RemovePlist => f.write_str("move the plist to ~/.Trash"),
            Step::Handoff(steps) => {
                f.write_str("hand off to a detached helper (after this process exits):")?;
                for s in steps {
                    write!(f, " {s};")?;
                }
                Ok(())
            }
        }
    }
}
