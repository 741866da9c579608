//! `openclaw gateway probe [--json]` and the `--url` side of `openclaw gateway status`.
//!
//! The probe itself is [`crate::ops::probe`]; this prints it. Exit 0 when connected (even
//! degraded), 1 when unreachable.
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::config::paths::Paths;
use crate::error::{Exit, Result};
use crate::ops::conn::ConnOptions;
use crate::ops::probe::build_report;
use crate::ops::rpc;

/// `gateway probe`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeOptions {
    /// JSON output.
    pub(crate) json: bool,
    /// Connection.
    pub(crate) conn: ConnOptions,
}

/// `gateway status` (public: the service verb `gateway status` takes it).
#[derive(Debug, Clone, Default)]
pub(crate) struct GatewayStatusOptions {
    /// Also inspect other installed gateway units/agents and system-level ones.
    #[expect(
        dead_code,
        reason = "accepted as upstream's `gateway status --deep`; the deep scan is `doctor --deep` for now"
    )]
    pub deep: bool,
    /// JSON output.
    pub json: bool,
    /// Fail unless an RPC (`status`) succeeds.
    pub require_rpc: bool,
    /// Connection.
    pub conn: ConnOptions,
}

/// Runs the command.
pub(crate) fn run(paths: &Paths, args: &ProbeOptions) -> Result<Exit> {
    let target = match crate::ops::target(paths, &args.conn) {
        Ok(t) => t,
        Err(e) if args.json => return Ok(crate::ops::print_json_error(&e, None)),
        Err(e) => return Err(e),
    };
    let rt = rpc::runtime()?;
    let (reach, results) = rt.block_on(crate::ops::probe::probe(&target));
    crate::ops::warn_config(&target);
    let mut report = build_report(&reach, results);
    if let (Some(n), Some(o)) = (&target.config_broken, report.as_object_mut()) {
        o.insert("configError".into(), n.clone().into());
    }
    if args.json {
        crate::ops::print_json(&report);
    } else {
        print!("{}", render(&report));
        if !reach.ok {
            eprintln!(
                "Next: {}",
                if reach.transient {
                    format!(
                        "start the gateway (`openclaw{pf} gateway run` or `openclaw{pf} gateway start`) or check the port with `openclaw{pf} status`",
                        pf = crate::ops::profile_flag(paths)
                    )
                } else {
                    "check the credential (--token/--password or gateway.auth in the config)".into()
                }
            );
        }
    }
    Ok(if reach.ok { Exit::Ok } else { Exit::Failure })
}

/// The text report (pure, for tests).
pub(crate) fn render(report: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Gateway probe: {}",
        report["url"].as_str().unwrap_or("?")
    );
    if report["ok"] != true {
        let _ = writeln!(
            o,
            "Connect: failed: {}",
            report["error"].as_str().unwrap_or("unknown error")
        );
        return o;
    }
    let _ = writeln!(
        o,
        "Connect: ok ({}ms) · protocol {} · server {}",
        report["connectLatencyMs"].as_u64().unwrap_or(0),
        report["protocol"],
        report["server"]["version"].as_str().unwrap_or("unknown")
    );
    let _ = writeln!(
        o,
        "Capability: {}",
        report["capability"].as_str().unwrap_or("unknown")
    );
    if let Some(m) = report["methods"].as_object() {
        for (name, r) in m {
            if r["ok"] == true {
                let _ = writeln!(o, "{name}: ok");
            } else {
                let _ = writeln!(
                    o,
                    "{name}: failed: {}",
                    r["error"]["message"].as_str().unwrap_or("?")
                );
            }
        }
    }
    for w in report["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "Warning: {}: {}",
            w["code"].as_str().unwrap_or(""),
            w["message"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(
        o,
        "Result: {}",
        if report["degraded"] == true {
            "degraded"
        } else {
            "ok"
        }
    );
    o
}

/// `openclaw gateway status --url ws://… --token …`: the client side of `gateway status`
/// for an explicit (possibly remote) gateway, as upstream (docs/protocol.md §8): a connect-only
/// probe as `cli`/`probe` (`Connectivity probe: ok`, `Capability: …`), or with
/// `--require-rpc` a `gateway-client`/`backend` connection that must answer `status`. No
/// service section: the service manager only knows local services. Exit 0 unless
/// `--require-rpc` and the RPC failed.
pub(crate) fn remote_status(paths: &Paths, args: &GatewayStatusOptions) -> Result<Exit> {
    let target = match crate::ops::target(paths, &args.conn) {
        Ok(t) => t,
        Err(e) if args.json => return Ok(crate::ops::print_json_error(&e, None)),
        Err(e) => return Err(e),
    };
    let rt = rpc::runtime()?;
    let require = args.require_rpc;
    let (reach, rpc) = rt.block_on(crate::ops::probe::remote_status(&target, require));
    let rpc_ok = rpc.as_ref().is_some_and(|r| r["ok"] == true);
    if args.json {
        let h = &reach.hello;
        crate::ops::print_json(&json!({
            "gateway": {"probeUrl": reach.url, "urlSource": "--url", "version": reach.version},
            "rpc": {
                "ok": reach.ok && (!require || rpc_ok),
                "kind": if require { "status" } else { "connect" },
                "url": reach.url,
                "connectLatencyMs": reach.connect_latency_ms,
                "capability": reach.capability,
                "auth": h.get("auth"),
                "server": h.get("server"),
                "error": reach.error.clone().or_else(|| rpc.as_ref().and_then(|r| r["error"]["message"].as_str().map(str::to_string))),
            },
        }));
    } else {
        let mut o = String::new();
        let _ = writeln!(o, "Probe target: {} (--url)", reach.url);
        if reach.ok {
            let _ = writeln!(
                o,
                "Gateway version: {}",
                reach.version.as_deref().unwrap_or("unknown")
            );
            let _ = writeln!(o, "Connectivity probe: ok");
            let _ = writeln!(
                o,
                "Capability: {}",
                reach.capability.as_deref().unwrap_or("unknown")
            );
        } else {
            let _ = writeln!(o, "Connectivity probe: failed");
            let _ = writeln!(o, "  {}", reach.error.as_deref().unwrap_or("unknown error"));
        }
        if let Some(r) = &rpc {
            if r["ok"] == true {
                let _ = writeln!(o, "RPC probe: ok");
            } else {
                let _ = writeln!(
                    o,
                    "RPC probe: failed: {}",
                    r["error"]["message"].as_str().unwrap_or("unknown error")
                );
            }
        }
        print!("{o}");
    }
    Ok(if require && !(reach.ok && rpc_ok) {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::probe::{sample_methods, sample_reach};

    #[test]
    fn scope_limited_probe_renders_degraded() {
        let t = render(&build_report(&sample_reach(), sample_methods()));
        assert!(
            t.contains("Connect: ok (2ms) · protocol 4 · server 1.2.3"),
            "{t}"
        );
        assert!(t.contains("status: failed: missing scope: operator.read"));
        assert!(t.ends_with("Result: degraded\n"));
    }
}
