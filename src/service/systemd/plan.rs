//! The systemctl plan: pure `plan(op, desired, observed) -> Vec<Step>`, the systemd twin of
//! [`crate::service::launchd::plan`]. [`super::manager::SystemdManager`] observes through its
//! command runner, plans here, then executes the steps (files in-process, systemctl through the
//! runner) and reports what it did.
//!
//! The sequences:
//! - install: refuse a competing unit (a same-named system unit; a packaged or foreign user
//!   unit unless `--force`) → write the units that differ (previous content kept as `.bak`) →
//!   `daemon-reload` when something changed or a reload is pending → `enable` both → when
//!   anything changed (or `--force`): `stop` the service first (it holds a copy of the old
//!   listening socket, so the socket could not rebind a changed address) → `reset-failed` →
//!   `start --no-block` socket and service; unchanged but not active: `reset-failed` → `start`.
//! - start: `reset-failed` (a hit start limit would refuse) → `start --no-block` both.
//! - stop: `stop` service and socket (a listening socket would start it again).
//! - restart: `reset-failed` → `start --no-block` the socket (connections queue in its backlog)
//!   → `restart --no-block` the service.
//! - uninstall: `disable --now` → `reset-failed` → remove the units carrying our marker and
//!   their `.bak` → `daemon-reload`; a unit without the marker is left in place (an error).
use std::path::PathBuf;

use super::errors::SystemdError;
use super::manager::MARKER;
use crate::service::Action;

/// One step. File steps run in-process; `Run` goes through the command runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write a unit atomically (0644); the previous content is kept as `<path>.bak` (0600,
    /// credential lines scrubbed).
    Write {
        /// The unit file.
        path: PathBuf,
        /// Its new content.
        content: String,
        /// A previous file exists (reported as "Rewrote … (previous: ….bak)").
        previous: bool,
    },
    /// `systemctl [--user] ARGS…`.
    Run {
        /// The arguments after `systemctl [--user]`.
        args: Vec<String>,
        /// A failure aborts the plan (otherwise it is tolerated: `reset-failed`, `disable`).
        check: bool,
    },
    /// Remove a file install wrote (a unit carrying the marker, or its `.bak`).
    Remove(PathBuf),
    /// Fail after the rest: these unit files were not written by openclaw and stay.
    KeepForeign(Vec<String>),
}

impl Step {
    fn run(args: &[&str]) -> Step {
        Step::Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            check: true,
        }
    }
    fn try_run(args: &[&str]) -> Step {
        Step::Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            check: false,
        }
    }
}

/// What should be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Unit base name (`openclaw-gateway[-P]`).
    pub name: String,
    /// Named profile, for the "run install first" advice.
    pub profile: Option<String>,
    /// `the systemd user manager` / `the systemd system manager`.
    pub manager: &'static str,
    /// The socket unit's path.
    pub socket_path: PathBuf,
    /// The service unit's path.
    pub service_path: PathBuf,
    /// The rendered (socket, service) units; install only.
    pub rendered: Option<(String, String)>,
}

impl Desired {
    /// `<name>.socket`.
    pub fn socket(&self) -> String {
        format!("{}.socket", self.name)
    }
    /// `<name>.service`.
    pub fn service(&self) -> String {
        format!("{}.service", self.name)
    }
}

/// A unit that install would compete with or shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shadow {
    /// A same-named system unit (refused even with `--force`: two gateways, one port).
    System {
        /// Its path, or the unit name when systemd has it from elsewhere.
        path: String,
    },
    /// The packaged user unit in a vendor directory.
    Packaged {
        /// The packaged file.
        fragment: String,
        /// Its vendor directory.
        dir: String,
    },
    /// Another user unit of that name, not at the path install writes.
    Foreign {
        /// The other file.
        fragment: String,
    },
}

/// A unit file as found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OnDisk {
    /// Its content (`None`: absent or unreadable).
    pub content: Option<String>,
    /// `<path>.bak` exists.
    pub backup: bool,
}

/// What was observed before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// The service unit is loaded (`LoadState=loaded`).
    pub loaded: bool,
    /// The service is `ActiveState=active`.
    pub active: bool,
    /// systemd has a stale copy of the unit (`NeedDaemonReload=yes`).
    pub reload_pending: bool,
    /// The socket unit on disk.
    pub socket: OnDisk,
    /// The service unit on disk.
    pub service: OnDisk,
    /// A competing unit (install only).
    pub shadow: Option<Shadow>,
}

/// Plans `op`. Refusals (a competing unit, not installed) are errors returned before anything
/// changes.
pub(crate) fn plan(
    op: Action,
    desired: &Desired,
    obs: &Observed,
) -> Result<Vec<Step>, SystemdError> {
    let (sock, svc) = (desired.socket(), desired.service());
    let (sock, svc) = (sock.as_str(), svc.as_str());
    let mut steps = Vec::new();
    let not_installed = || SystemdError::NotInstalled {
        unit: svc.to_string(),
        manager: desired.manager,
        profile_flag: desired
            .profile
            .as_ref()
            .map(|p| format!(" --profile {p}"))
            .unwrap_or_default(),
    };
    match op {
        Action::Install { force } => {
            match &obs.shadow {
                Some(Shadow::System { path }) => {
                    return Err(SystemdError::SystemUnitExists {
                        unit: svc.into(),
                        path: path.clone(),
                    });
                }
                Some(Shadow::Packaged { fragment, dir }) if !force => {
                    return Err(SystemdError::PackagedUnitExists {
                        fragment: fragment.clone(),
                        unit: svc.into(),
                        dir: dir.clone(),
                        ours: desired.service_path.clone(),
                        name: desired.name.clone(),
                    });
                }
                Some(Shadow::Foreign { fragment }) if !force => {
                    return Err(SystemdError::ForeignUnitExists {
                        fragment: fragment.clone(),
                        unit: svc.into(),
                        ours: desired.service_path.clone(),
                    });
                }
                _ => {}
            }
            let (socket_unit, service_unit) = desired.rendered.clone().unwrap_or_default();
            let mut changed = false;
            for (path, content, disk) in [
                (&desired.socket_path, socket_unit, &obs.socket),
                (&desired.service_path, service_unit, &obs.service),
            ] {
                if disk.content.as_deref() == Some(content.as_str()) && !force {
                    continue;
                }
                changed = true;
                steps.push(Step::Write {
                    path: path.clone(),
                    content,
                    previous: disk.content.is_some(),
                });
            }
            if changed || obs.reload_pending {
                steps.push(Step::run(&["daemon-reload"]));
            }
            steps.push(Step::run(&["enable", sock, svc]));
            if changed || force || obs.reload_pending {
                steps.push(Step::run(&["stop", svc, sock]));
                steps.push(Step::try_run(&["reset-failed", svc, sock]));
                steps.push(Step::run(&["start", "--no-block", sock, svc]));
            } else if !obs.active {
                steps.push(Step::try_run(&["reset-failed", svc, sock]));
                steps.push(Step::run(&["start", "--no-block", sock, svc]));
            }
        }
        Action::Start => {
            if !obs.loaded {
                return Err(not_installed());
            }
            steps.push(Step::try_run(&["reset-failed", svc, sock]));
            steps.push(Step::run(&["start", "--no-block", sock, svc]));
        }
        Action::Stop => {
            if !obs.loaded {
                return Err(not_installed());
            }
            steps.push(Step::run(&["stop", svc, sock]));
        }
        Action::Restart => {
            if !obs.loaded {
                return Err(not_installed());
            }
            steps.push(Step::try_run(&["reset-failed", svc, sock]));
            steps.push(Step::run(&["start", "--no-block", sock]));
            steps.push(Step::run(&["restart", "--no-block", svc]));
        }
        Action::Uninstall => {
            steps.push(Step::try_run(&["disable", "--now", sock, svc]));
            steps.push(Step::try_run(&["reset-failed", svc, sock]));
            let mut kept = Vec::new();
            for (path, disk) in [
                (&desired.socket_path, &obs.socket),
                (&desired.service_path, &obs.service),
            ] {
                match &disk.content {
                    Some(c) if c.contains(MARKER) => steps.push(Step::Remove(path.clone())),
                    Some(_) => kept.push(path.display().to_string()),
                    None => {}
                }
                if disk.backup {
                    steps.push(Step::Remove(PathBuf::from(format!(
                        "{}.bak",
                        path.display()
                    ))));
                }
            }
            steps.push(Step::run(&["daemon-reload"]));
            if !kept.is_empty() {
                steps.push(Step::KeepForeign(kept));
            }
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Desired {
        Desired {
            name: "openclaw-gateway".into(),
            profile: None,
            manager: "the systemd user manager",
            socket_path: "/h/.config/systemd/user/openclaw-gateway.socket".into(),
            service_path: "/h/.config/systemd/user/openclaw-gateway.service".into(),
            rendered: Some(("[Socket]\n".into(), format!("# {MARKER}\n[Service]\n"))),
        }
    }

    fn runs(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Run { args, .. } => args.join(" "),
                Step::Write { path, .. } => format!("write {}", path.display()),
                Step::Remove(p) => format!("rm {}", p.display()),
                Step::KeepForeign(f) => format!("keep {}", f.join(",")),
            })
            .collect()
    }

    #[test]
    fn a_fresh_install_writes_reloads_enables_and_starts() {
        let steps = plan(
            Action::Install { force: false },
            &desired(),
            &Observed::default(),
        )
        .unwrap();
        assert_eq!(
            runs(&steps),
            [
                "write /h/.config/systemd/user/openclaw-gateway.socket",
                "write /h/.config/systemd/user/openclaw-gateway.service",
                "daemon-reload",
                "enable openclaw-gateway.socket openclaw-gateway.service",
                "stop openclaw-gateway.service openclaw-gateway.socket",
                "reset-failed openclaw-gateway.service openclaw-gateway.socket",
                "start --no-block openclaw-gateway.socket openclaw-gateway.service",
            ]
        );
    }

    #[test]
    fn a_current_running_install_only_enables() {
        let d = desired();
        let (s, v) = d.rendered.clone().unwrap();
        let obs = Observed {
            loaded: true,
            active: true,
            socket: OnDisk {
                content: Some(s),
                backup: false,
            },
            service: OnDisk {
                content: Some(v),
                backup: false,
            },
            ..Default::default()
        };
        let steps = plan(Action::Install { force: false }, &d, &obs).unwrap();
        assert_eq!(
            runs(&steps),
            ["enable openclaw-gateway.socket openclaw-gateway.service"]
        );
        let stopped = Observed {
            active: false,
            ..obs.clone()
        };
        assert_eq!(
            runs(&plan(Action::Install { force: false }, &d, &stopped).unwrap()),
            [
                "enable openclaw-gateway.socket openclaw-gateway.service",
                "reset-failed openclaw-gateway.service openclaw-gateway.socket",
                "start --no-block openclaw-gateway.socket openclaw-gateway.service",
            ]
        );
    }

    #[test]
    fn competing_units_are_refused_before_anything_changes() {
        let d = desired();
        let sys = Observed {
            shadow: Some(Shadow::System {
                path: "/etc/systemd/system/openclaw-gateway.service".into(),
            }),
            ..Default::default()
        };
        assert!(matches!(
            plan(Action::Install { force: true }, &d, &sys),
            Err(SystemdError::SystemUnitExists { .. })
        ));
        let pkg = Observed {
            shadow: Some(Shadow::Packaged {
                fragment: "/usr/lib/systemd/user/openclaw-gateway.service".into(),
                dir: "/usr/lib/systemd/user".into(),
            }),
            ..Default::default()
        };
        assert!(matches!(
            plan(Action::Install { force: false }, &d, &pkg),
            Err(SystemdError::PackagedUnitExists { .. })
        ));
        assert!(plan(Action::Install { force: true }, &d, &pkg).is_ok());
    }

    #[test]
    fn lifecycle_verbs_need_a_loaded_unit() {
        let d = desired();
        for op in [Action::Start, Action::Stop, Action::Restart] {
            assert!(matches!(
                plan(op, &d, &Observed::default()),
                Err(SystemdError::NotInstalled { .. })
            ));
        }
        let loaded = Observed {
            loaded: true,
            ..Default::default()
        };
        assert_eq!(
            runs(&plan(Action::Restart, &d, &loaded).unwrap()),
            [
                "reset-failed openclaw-gateway.service openclaw-gateway.socket",
                "start --no-block openclaw-gateway.socket",
                "restart --no-block openclaw-gateway.service",
            ]
        );
    }

    #[test]
    fn uninstall_removes_only_marked_units() {
        let d = desired();
        let obs = Observed {
            socket: OnDisk {
                content: Some("[Socket]\n".into()),
                backup: true,
            },
            service: OnDisk {
                content: Some(format!("# {MARKER}\n")),
                backup: false,
            },
            ..Default::default()
        };
        assert_eq!(
            runs(&plan(Action::Uninstall, &d, &obs).unwrap()),
            [
                "disable --now openclaw-gateway.socket openclaw-gateway.service",
                "reset-failed openclaw-gateway.service openclaw-gateway.socket",
                "rm /h/.config/systemd/user/openclaw-gateway.socket.bak",
                "rm /h/.config/systemd/user/openclaw-gateway.service",
                "daemon-reload",
                "keep /h/.config/systemd/user/openclaw-gateway.socket",
            ]
        );
    }
}
