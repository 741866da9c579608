//! What `openclaw status` reports, gathered: one consistent overview.
//!
//! Gathered concurrently (the service manager is asked on a thread while the gateway is
//! probed, so the command costs one connect + one RPC): the config (valid, or file:line:column
//! of the error: status explains a broken config instead of failing on it), the target the CLI
//! resolves (URL, port and which rule picked it, auth mode — never a secret), reachability,
//! latency, version and pid of the gateway (RPC `status`), and what the service manager
//! reports (installed/enabled/running, pid, linger, reload pending, logs). Then the
//! cross-checks that the upstream CLI misses (docs/lifecycle.md §10 items 7 and 9): the port the
//! *service* uses vs the port the CLI resolves, the pid answering on the port vs the service's
//! pid, CLI vs gateway version. Each problem yields a next-step hint. The verb that prints it
//! is `openclaw status` (informational, exit 0; `openclaw health` is the scriptable check).
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::conn::{self, Target};
use super::probe::Reach;
use super::rpc::{self, Identity};
use crate::config::Config;
use crate::config::paths::{Paths, ProcessEnv};
use crate::error::Result;
use crate::ops::conn::ConnOptions;
use crate::service::ServiceStatus;

/// Upper bound for the reachability probe: status must answer quickly even when something
/// accepts connections but never speaks.
pub(crate) const PROBE_CAP: Duration = Duration::from_secs(3);

/// The config as status sees it.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigState {
    /// Path.
    pub(crate) path: PathBuf,
    /// File exists.
    pub(crate) exists: bool,
    /// Parses and validates.
    pub(crate) valid: bool,
    /// The error (`invalid config <path>:<line>:<col>: …`).
    pub(crate) error: Option<String>,
    /// `gateway.mode`.
    pub(crate) mode: Option<String>,
}

/// What the service manager said.
#[allow(clippy::large_enum_variant)] // one per command; boxing buys nothing
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub(crate) enum ServiceView {
    /// The manager answered.
    Observed {
        /// Its report.
        status: ServiceStatus,
        /// The port the installed definition uses.
        port: Option<u16>,
    },
    /// No manager on this platform/build, or it could not be reached.
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// Everything `status` reports.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Report {
    /// CLI version.
    pub(crate) cli_version: String,
    /// Profile (`None` = default).
    pub(crate) profile: Option<String>,
    /// State dir.
    pub(crate) state_dir: PathBuf,
    /// Config.
    pub(crate) config: ConfigState,
    /// Target URL.
    pub(crate) url: String,
    /// `local`, `--url`, `gateway.remote.url`.
    pub(crate) url_source: String,
    /// Port the CLI resolves (local targets).
    pub(crate) port: Option<u16>,
    /// Which rule picked it.
    pub(crate) port_source: Option<String>,
    /// `token (from …)`, `password (from …)`, `none`.
    pub(crate) auth: String,
    /// Reachability.
    pub(crate) gateway: Reach,
    /// RPC `status` payload subset (pid, uptime).
    pub(crate) gateway_pid: Option<u32>,
    /// Gateway uptime.
    pub(crate) gateway_uptime_ms: Option<u64>,
    /// Service manager view.
    pub(crate) service: ServiceView,
    /// The service belongs to another state dir (diagnostic only).
    pub(crate) service_diagnostic_only: bool,
    /// Local log file (JSONL) of this profile.
    pub(crate) log_file: Option<PathBuf>,
    /// Findings that need attention.
    pub(crate) problems: Vec<String>,
    /// What to do next.
    pub(crate) hints: Vec<String>,
}

/// Observes the native service for this profile (run on a worker thread).
pub(crate) fn observe_service(paths: &Paths, port: u16) -> ServiceView {
    let mgr = match crate::service::native(&crate::service::NativeOptions::default()) {
        Ok(m) => m,
        Err(e) => {
            return ServiceView::Unavailable {
                reason: first_line(&e.to_string()),
            };
        }
    };
    let program = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("openclaw"));
    let spec =
        crate::service::ServiceSpec::for_paths(paths, mgr.service_name(paths), port, program);
    match mgr.status(&spec) {
        Ok(status) => {
            let port = service_port(&status).filter(|_| status.installed);
            ServiceView::Observed { status, port }
        }
        Err(e) => ServiceView::Unavailable {
            reason: first_line(&e.to_string()),
        },
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// The port an installed service definition uses: the socket unit's listeners, else
/// `--port`/`OPENCLAW_GATEWAY_PORT` in the unit or plist.
pub(crate) fn service_port(st: &ServiceStatus) -> Option<u16> {
    for l in &st.listen {
        if let Some(p) = l.rsplit(':').next().and_then(|p| p.trim().parse().ok()) {
            return Some(p);
        }
    }
    st.file.as_deref().and_then(port_from_definition)
}

/// Reads `--port` / `OPENCLAW_GATEWAY_PORT` from a unit file or plist.
pub(crate) fn port_from_definition(path: &Path) -> Option<u16> {
    if path.extension().and_then(|e| e.to_str()) == Some("plist") {
        let v = plist::Value::from_file(path).ok()?;
        let d = v.as_dictionary()?;
        if let Some(args) = d.get("ProgramArguments").and_then(|a| a.as_array()) {
            let words: Vec<&str> = args.iter().filter_map(|a| a.as_string()).collect();
            if let Some(i) = words.iter().position(|w| *w == "--port")
                && let Some(p) = words.get(i + 1).and_then(|p| p.parse().ok())
            {
                return Some(p);
            }
        }
        return d
            .get("EnvironmentVariables")
            .and_then(|e| e.as_dictionary())
            .and_then(|e| e.get("OPENCLAW_GATEWAY_PORT"))
            .and_then(|p| p.as_string())
            .and_then(crate::config::paths::parse_port_env);
    }
    let text = std::fs::read_to_string(path).ok()?;
    crate::service::systemd::unit_file::service_port(&crate::service::systemd::unit_file::parse(
        &text,
    ))
}

/// Gathers the report.
pub(crate) fn gather(paths: &Paths, opts: &ConnOptions) -> Result<Report> {
    let (cfg, config) = match Config::load(&paths.config_path) {
        Ok(c) => {
            let st = ConfigState {
                path: c.path.clone(),
                exists: c.exists,
                valid: true,
                error: None,
                mode: c.gateway.mode.clone(),
            };
            (Some(c), st)
        }
        Err(e) => (
            None,
            ConfigState {
                path: paths.config_path.clone(),
                exists: paths.config_path.exists(),
                valid: false,
                error: Some(e.to_string().lines().next().unwrap_or_default().to_string()),
                mode: None,
            },
        ),
    };
    let mut target: Target = match conn::resolve(paths, opts, cfg.as_ref(), &ProcessEnv) {
        Ok(t) => t,
        // A SecretRef that does not resolve must not hide the rest of the report.
        Err(e) if opts.url.is_none() => {
            let mut t = conn::resolve(paths, opts, None, &ProcessEnv)?;
            t.auth_source = Some(format!("unresolved: {e}"));
            t
        }
        Err(e) => return Err(e.into()),
    };
    target.timeout = target.timeout.min(PROBE_CAP);
    let service_port_hint = target.port.unwrap_or(paths.fallback_port());
    let svc_paths = paths.clone();
    let svc = std::thread::spawn(move || observe_service(&svc_paths, service_port_hint));
    // With a broken config the port is a guess unless a flag or the environment gave it: the
    // installed service knows the real one, so wait for it and probe there instead.
    let guessed = cfg.is_none()
        && target.is_local()
        && !matches!(
            target.port_source.as_deref(),
            Some("--port" | "OPENCLAW_GATEWAY_PORT")
        );
    let svc = if guessed {
        let view = svc.join().unwrap_or_else(|_| ServiceView::Unavailable {
            reason: "the service manager query panicked".into(),
        });
        if let ServiceView::Observed {
            status,
            port: Some(sp),
        } = &view
            && status.installed
            && target.port != Some(*sp)
        {
            target.url = format!("ws://127.0.0.1:{sp}");
            target.port = Some(*sp);
            target.port_source = Some(format!(
                "the installed {} (gateway.port is in the broken config)",
                status.name
            ));
        }
        Ok(view)
    } else {
        Err(svc)
    };
    let rt = rpc::runtime()?;
    let (reach, status_payload) = rt.block_on(super::probe::reach(
        &target,
        &Identity::read(),
        |client| async move {
            let r = client.call("status", None).await.ok();
            client.close();
            r
        },
    ));
    let service = match svc {
        Ok(v) => v,
        Err(h) => h.join().unwrap_or_else(|_| ServiceView::Unavailable {
            reason: "the service manager query panicked".into(),
        }),
    };
    let payload = status_payload.unwrap_or(Value::Null);
    let mut report = Report {
        cli_version: crate::VERSION.to_string(),
        profile: paths.profile.clone(),
        state_dir: paths.state_dir.clone(),
        config,
        url: target.url.clone(),
        url_source: target.source.label().to_string(),
        port: target.port,
        port_source: target.port_source.clone(),
        auth: target.auth_label(),
        gateway: reach,
        gateway_pid: payload["pid"].as_u64().map(|p| p as u32),
        gateway_uptime_ms: payload["uptimeMs"].as_u64(),
        service,
        service_diagnostic_only: !paths.default_identity,
        log_file: super::logs::local_log_file(paths),
        problems: Vec::new(),
        hints: Vec::new(),
    };
    cross_check(
        &mut report,
        &super::profile_flag(paths),
        target.auth_mode.as_deref(),
    );
    Ok(report)
}

/// The consistency checks and next-step hints (pure).
pub(crate) fn cross_check(r: &mut Report, pf: &str, auth_mode: Option<&str>) {
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    if let Some(e) = &r.config.error {
        problems.push(format!("config is invalid: {e}"));
        problems.push(format!(
            "a restart now would fail with exit 78 ({e}); the running gateway keeps its last good config until then"
        ));
        hints.push(format!(
            "Fix the config (details: `openclaw{pf} doctor`); the gateway refuses to start or reload with it."
        ));
    } else if !r.config.exists {
        hints.push(format!(
            "No config at {}: create one with `openclaw{pf} setup`.",
            r.config.path.display()
        ));
    } else if r.config.mode.as_deref() != Some("local") && r.url_source == "local" {
        problems.push(format!(
            "gateway.mode is {} (the gateway starts only with gateway.mode=local)",
            r.config.mode.as_deref().unwrap_or("unset")
        ));
        hints.push(format!("Set gateway.mode=local: `openclaw{pf} setup`."));
    }
    if auth_mode == Some("none") {
        problems.push(
            "auth is off (gateway.auth.mode=none): any local process can control the gateway"
                .into(),
        );
    }
    let (svc, svc_port) = match &r.service {
        ServiceView::Observed { status, port } => (Some(status), *port),
        ServiceView::Unavailable { .. } => (None, None),
    };
    let running = svc.is_some_and(|s| s.pid.is_some() && s.state == "active");
    // With a broken config the CLI's port may be a guess (the profile default): a mismatch
    // with it is stated, never turned into advice to move the service there.
    let guessed_port = r.config.error.is_some()
        && !matches!(
            r.port_source.as_deref(),
            Some("--port" | "OPENCLAW_GATEWAY_PORT")
        );
    if let (Some(s), Some(sp), Some(cp)) = (svc, svc_port, r.port)
        && s.installed
        && sp != cp
        && r.url_source == "local"
        && guessed_port
    {
        problems.push(format!(
            "the service uses port {sp}; this CLI could not read gateway.port from the broken config and tried {cp} ({}): pass --port {sp} to reach it",
            r.port_source.as_deref().unwrap_or("default")
        ));
    } else if let (Some(s), Some(sp), Some(cp)) = (svc, svc_port, r.port)
        && s.installed
        && sp != cp
        && r.url_source == "local"
    {
        problems.push(format!(
            "port mismatch: the service uses port {sp} but this CLI resolves {cp} ({})",
            r.port_source.as_deref().unwrap_or("default")
        ));
        hints.push(format!(
            "Make them agree: set gateway.port={sp} in {} (clients follow the service), or run `openclaw{pf} doctor --repair` to move the service to {cp}.",
            r.config.path.display()
        ));
    }
    if r.gateway.ok {
        if let Some(v) = &r.gateway.version
            && v != &r.cli_version
        {
            problems.push(format!(
                "version mismatch: CLI {} but gateway {v}",
                r.cli_version
            ));
            hints.push(format!(
                "Restart the gateway to run this version: `openclaw{pf} gateway restart`."
            ));
        }
        if let (Some(s), Some(gp)) = (svc, r.gateway_pid)
            && running
            && s.pid != Some(gp)
            && svc_port == r.port
        {
            problems.push(format!(
                "the gateway answering on port {} is pid {gp}, not the service's pid {}",
                r.port.unwrap_or(0),
                s.pid.unwrap_or(0)
            ));
            hints.push(
                "Another (foreground?) gateway holds the port; stop it so the service owns it."
                    .into(),
            );
        }
    } else {
        let why = r.gateway.error.clone().unwrap_or_default();
        match svc {
            Some(s) if running => {
                problems.push(format!(
                    "the service is running (pid {}) but the gateway does not answer at {}: {why}",
                    s.pid.unwrap_or(0),
                    r.url
                ));
                hints.push(format!(
                    "Read why: `{}`.",
                    s.logs
                        .clone()
                        .unwrap_or_else(|| format!("openclaw{pf} logs"))
                ));
            }
            Some(s) if s.installed => {
                problems.push(format!("gateway unreachable at {}: {why}", r.url));
                if s.last_exit == Some(78) {
                    hints.push(format!(
                        "The service refused to start (exit 78: config error). Read why with `{}`, fix the config, then `openclaw{pf} gateway start`.",
                        s.logs.clone().unwrap_or_default()
                    ));
                } else {
                    hints.push(format!("Start the service: `openclaw{pf} gateway start`."));
                }
            }
            _ if guessed_port && r.url_source == "local" => {
                // The port and the credential were what resolves without the config: say so
                // instead of advising a start on a port that is only a default.
                problems.push(format!("gateway unreachable at {}: {why}", r.url));
                hints.push(format!(
                    "The config is broken, so port {} is only the {} and the credential is {}: if the gateway runs, reach it with --port N and --token (or OPENCLAW_GATEWAY_PORT/OPENCLAW_GATEWAY_TOKEN).",
                    r.port.unwrap_or(0),
                    r.port_source.as_deref().unwrap_or("default"),
                    r.auth
                ));
            }
            _ => {
                problems.push(format!("gateway unreachable at {}: {why}", r.url));
                if r.gateway.transient {
                    hints.push(format!(
                        "Start it: `openclaw{pf} gateway run` (foreground) or `openclaw{pf} gateway install` (service)."
                    ));
                } else {
                    hints.push(format!(
                        "The gateway rejected this CLI's credential ({}): check gateway.auth / OPENCLAW_GATEWAY_TOKEN.",
                        r.auth
                    ));
                }
            }
        }
    }
    if let Some(s) = svc {
        if s.reload_pending {
            problems.push(
                "the service definition changed on disk but systemd has not reloaded it".into(),
            );
            hints.push(format!(
                "Apply it: `openclaw{pf} gateway install` (or `systemctl --user daemon-reload`)."
            ));
        }
        if s.installed && s.linger.as_deref() == Some("no") {
            problems.push("linger is off: the user service stops when you log out".into());
            hints.push(format!(
                "Keep it running after logout: `sudo loginctl enable-linger {}`.",
                std::env::var("USER").unwrap_or_else(|_| "$USER".into())
            ));
        }
        if s.installed && !s.enabled {
            hints.push(format!(
                "The service is not enabled (it will not start at login/boot): `openclaw{pf} gateway install`."
            ));
        }
    }
    r.problems = problems;
    r.hints = hints;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_story_has_no_problems() {
        let mut r = sample_report();
        cross_check(&mut r, "", Some("token"));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.hints.is_empty(), "{:?}", r.hints);
    }

    #[test]
    fn a_broken_config_builds_no_advice_on_a_guessed_port_and_warns_about_restart() {
        let mut r = sample_report();
        r.config.valid = false;
        r.config.error =
            Some("invalid config /h/.openclaw/openclaw.json:3:7: unexpected ','".into());
        if let ServiceView::Observed { port, .. } = &mut r.service {
            *port = Some(18795);
        }
        cross_check(&mut r, "", Some("token"));
        let all = format!("{:?} {:?}", r.problems, r.hints);
        assert!(!all.contains("doctor --repair"), "{all}");
        assert!(!all.contains("move the service"), "{all}");
        assert!(
            r.problems.iter().any(|p| p.starts_with(
                "a restart now would fail with exit 78 (invalid config /h/.openclaw/openclaw.json:3:7:"
            )),
            "{all}"
        );
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("the service uses port 18795") && p.contains("--port 18795")),
            "{all}"
        );
        // A port the operator gave explicitly is no guess: the mismatch advice stays.
        let mut r = sample_report();
        r.config.error = Some("invalid config /h/.openclaw/openclaw.json:3:7: x".into());
        r.port_source = Some("--port".into());
        if let ServiceView::Observed { port, .. } = &mut r.service {
            *port = Some(18795);
        }
        cross_check(&mut r, "", Some("token"));
        assert!(r.problems.iter().any(|p| p.starts_with("port mismatch")));
        // Unreachable on the guessed port: no "start it" on a port that is only a default.
        let mut r = sample_report();
        r.config.error = Some("invalid config /h/.openclaw/openclaw.json:3:7: x".into());
        r.gateway.ok = false;
        r.gateway.transient = true;
        r.service = ServiceView::Unavailable {
            reason: "no manager".into(),
        };
        cross_check(&mut r, "", Some("token"));
        let all = format!("{:?}", r.hints);
        assert!(!all.contains("Start it"), "{all}");
        assert!(
            all.contains("port 18789 is only the default") && all.contains("--port N"),
            "{all}"
        );
    }

    #[test]
    fn port_version_and_pid_mismatches_are_flagged() {
        let mut r = sample_report();
        if let ServiceView::Observed { port, .. } = &mut r.service {
            *port = Some(18795);
        }
        r.gateway.version = Some("0.9.0".into());
        cross_check(&mut r, " --profile ops", Some("token"));
        assert!(
            r.problems.iter().any(|p| p.starts_with(
                "port mismatch: the service uses port 18795 but this CLI resolves 18789"
            )),
            "{:?}",
            r.problems
        );
        assert!(r.problems.iter().any(|p| p.starts_with("version mismatch")));
        assert!(
            r.hints
                .iter()
                .any(|h| h.contains("openclaw --profile ops doctor --repair"))
        );
        let mut r = sample_report();
        r.gateway_pid = Some(99);
        cross_check(&mut r, "", None);
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("is pid 99, not the service's pid 10"))
        );
    }

    #[test]
    fn unreachable_running_service_points_at_its_logs() {
        let mut r = sample_report();
        r.gateway.ok = false;
        r.gateway.error = Some("connection refused".into());
        if let ServiceView::Observed { status, .. } = &mut r.service {
            status.logs = Some("journalctl --user -u openclaw-gateway.service".into());
        }
        cross_check(&mut r, "", None);
        assert!(
            r.problems[0].contains("service is running (pid 10) but the gateway does not answer")
        );
        assert!(r.hints[0].contains("journalctl --user -u openclaw-gateway.service"));
    }

    #[test]
    fn port_from_unit_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.service");
        std::fs::write(
            &p,
            "[Service]\nExecStart=/bin/openclaw gateway run --port 18795\n",
        )
        .unwrap();
        assert_eq!(port_from_definition(&p), Some(18795));
        let st = ServiceStatus {
            listen: vec!["127.0.0.1:1234".into(), "[::1]:1234".into()],
            ..Default::default()
        };
        assert_eq!(service_port(&st), Some(1234));
    }
}

/// A consistent report: local target, running systemd user service, same pid and port
/// (shared with the renderer's tests).
#[cfg(test)]
pub(crate) fn sample_report() -> Report {
    Report {
        cli_version: "1.0.0".into(),
        profile: None,
        state_dir: "/h/.openclaw".into(),
        config: ConfigState {
            path: "/h/.openclaw/openclaw.json".into(),
            exists: true,
            valid: true,
            error: None,
            mode: Some("local".into()),
        },
        url: "ws://127.0.0.1:18789".into(),
        url_source: "local".into(),
        port: Some(18789),
        port_source: Some("default".into()),
        auth: "token (from config)".into(),
        gateway: Reach {
            url: "ws://127.0.0.1:18789".into(),
            ok: true,
            connect_latency_ms: Some(2),
            version: Some("1.0.0".into()),
            ..Default::default()
        },
        gateway_pid: Some(10),
        gateway_uptime_ms: Some(61_000),
        service: ServiceView::Observed {
            status: ServiceStatus {
                manager: "systemd".into(),
                name: "openclaw-gateway.service".into(),
                installed: true,
                enabled: true,
                state: "active".into(),
                sub_state: Some("running".into()),
                pid: Some(10),
                linger: Some("yes".into()),
                scope: Some("user".into()),
                ..Default::default()
            },
            port: Some(18789),
        },
        service_diagnostic_only: false,
        log_file: None,
        problems: vec![],
        hints: vec![],
    }
}
