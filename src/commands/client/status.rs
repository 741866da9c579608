//! `openclaw status [--json] [--all]`: prints the overview [`crate::ops::status::gather`]
//! collects (text, or JSON with upstream-style top-level keys). Exit 0 (informational;
//! `openclaw health` is the scriptable check).
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::config::paths::Paths;
use crate::error::{Exit, Result};
use crate::ops::conn::ConnOptions;
use crate::ops::status::{Report, ServiceView, gather};

/// `openclaw status`.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusOptions {
    /// JSON output.
    pub(crate) json: bool,
    /// Everything, including secrets-free config details.
    pub(crate) all: bool,
    /// Connection.
    pub(crate) conn: ConnOptions,
}

fn ago(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// Text report (pure).
pub(crate) fn render(r: &Report, all: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "OpenClaw status{}",
        r.profile
            .as_ref()
            .map(|p| format!(" (profile {p})"))
            .unwrap_or_default()
    );
    let reach = if r.gateway.ok {
        let mut s = format!(
            "reachable ({}ms)",
            r.gateway.connect_latency_ms.unwrap_or(0)
        );
        if let Some(v) = &r.gateway.version {
            let _ = write!(s, " · version {v}");
        }
        if let Some(p) = r.gateway_pid {
            let _ = write!(s, " · pid {p}");
        }
        if let Some(u) = r.gateway_uptime_ms {
            let _ = write!(s, " · up {}", ago(u));
        }
        s
    } else {
        format!(
            "unreachable ({})",
            r.gateway.error.as_deref().unwrap_or("unknown")
        )
    };
    let _ = writeln!(o, "Gateway: {} · {} · {reach}", r.url_source, r.url);
    if let (Some(p), Some(src)) = (r.port, &r.port_source) {
        let _ = writeln!(o, "Port: {p} ({src})");
    }
    match &r.service {
        ServiceView::Observed { status: s, port } => {
            let mut line = format!(
                "Gateway service: {}{} ",
                s.manager,
                s.scope
                    .as_deref()
                    .map(|x| format!(" {x}"))
                    .unwrap_or_default()
            );
            if !s.installed {
                line.push_str("not installed");
            } else {
                let _ = write!(
                    line,
                    "installed · {} · {}",
                    if s.enabled { "enabled" } else { "disabled" },
                    s.runtime_word()
                );
                let mut details = Vec::new();
                if let Some(pid) = s.pid {
                    details.push(format!("pid {pid}"));
                }
                if !s.state.is_empty() {
                    details.push(format!("state {}", s.state));
                }
                if let Some(c) = s.last_exit.filter(|c| *c != 0) {
                    details.push(format!("last exit {c}"));
                }
                if !details.is_empty() {
                    let _ = write!(line, " ({})", details.join(", "));
                }
                if let Some(p) = port {
                    let _ = write!(line, " · port {p}");
                }
                if s.source.as_deref() == Some("package") {
                    let _ = write!(line, " · package unit");
                }
            }
            if r.service_diagnostic_only {
                line.push_str(" (diagnostic only: this CLI uses a non-default state dir)");
            }
            let _ = writeln!(o, "{line}");
            if all {
                if let Some(f) = &s.file {
                    let _ = writeln!(o, "Service file: {}", f.display());
                }
                if s.socket_activated {
                    let _ = writeln!(o, "Listening (socket-activated): {}", s.listen.join(", "));
                }
                // The last STATUS= outlives the process: only a live instance's counts.
                if let Some(t) = s.status_text.as_ref().filter(|_| s.pid.is_some()) {
                    let _ = writeln!(o, "Service says: {t}");
                }
            }
            if let Some(l) = s.linger.as_ref().filter(|l| *l != "n/a") {
                let _ = writeln!(o, "Linger: {l}");
            }
        }
        ServiceView::Unavailable { reason } => {
            // The manager's explanation can be a paragraph; its first sentence is the status.
            let short = match reason.find(". ") {
                Some(i) if !all => &reason[..i],
                _ => reason.as_str(),
            };
            let _ = writeln!(o, "Gateway service: unknown ({short})");
        }
    }
    let _ = writeln!(o, "Auth: {}", r.auth);
    let cfg = if r.config.valid {
        if r.config.exists {
            "valid".to_string()
        } else {
            "missing".to_string()
        }
    } else {
        format!(
            "invalid: {}",
            r.config.error.as_deref().unwrap_or("unknown error")
        )
    };
    let _ = writeln!(o, "Config: {} ({cfg})", r.config.path.display());
    let _ = writeln!(
        o,
        "Versions: CLI {} · gateway {}",
        r.cli_version,
        r.gateway
            .version
            .as_deref()
            .unwrap_or("unknown (not reachable)")
    );
    let mut logs = Vec::new();
    if let Some(f) = &r.log_file {
        logs.push(f.display().to_string());
    }
    if let ServiceView::Observed { status, .. } = &r.service
        && status.installed
        && let Some(l) = &status.logs
    {
        logs.push(l.clone());
    }
    if !logs.is_empty() {
        let _ = writeln!(o, "Logs: {}", logs.join(" · "));
    }
    if all {
        let _ = writeln!(o, "State dir: {}", r.state_dir.display());
        if let Some(c) = &r.gateway.capability {
            let _ = writeln!(o, "Capability: {c}");
        }
    }
    if !r.problems.is_empty() {
        o.push_str("Problems:\n");
        for p in &r.problems {
            let _ = writeln!(o, "  - {p}");
        }
    }
    if !r.hints.is_empty() {
        o.push_str("Next steps:\n");
        for h in &r.hints {
            let _ = writeln!(o, "  - {h}");
        }
    }
    o
}

/// The JSON document (upstream-style top-level keys where they apply).
pub(crate) fn to_json(r: &Report) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["gateway"]["mode"] = r.config.mode.clone().into();
    v["gateway"]["reachable"] = r.gateway.ok.into();
    v["gateway"]["urlSource"] = r.url_source.clone().into();
    v["gateway"]["pid"] = r.gateway_pid.into();
    v["versions"] = json!({
        "cli": r.cli_version,
        "gateway": r.gateway.version,
        "match": r.gateway.version.as_deref().map(|g| g == r.cli_version),
    });
    v
}

/// Runs the command.
pub(crate) fn run(paths: &Paths, args: &StatusOptions) -> Result<Exit> {
    let r = match gather(paths, &args.conn) {
        Ok(r) => r,
        Err(e) if args.json => return Ok(crate::ops::print_json_error(&e, None)),
        Err(e) => return Err(e),
    };
    if args.json {
        crate::ops::print_json(&to_json(&r));
    } else {
        print!("{}", render(&r, args.all));
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::status::sample_report;

    #[test]
    fn consistent_story_reads_as_one_line_per_fact() {
        let r = sample_report();
        let t = render(&r, false);
        assert!(
            t.contains("Gateway: local · ws://127.0.0.1:18789 · reachable (2ms) · version 1.0.0 · pid 10 · up 1m"),
            "{t}"
        );
        assert!(t.contains(
            "Gateway service: systemd user installed · enabled · running (pid 10, state active) · port 18789"
        ), "{t}");
        assert!(!t.contains("Problems:"), "{t}");
        let j = to_json(&r);
        assert_eq!(j["gateway"]["reachable"], true);
        assert_eq!(j["versions"]["match"], true);
    }
}
