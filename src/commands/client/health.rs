//! `openclaw health` and `openclaw gateway health`: RPC `health` against the resolved gateway.
//!
//! `--json` prints the payload verbatim. Text: `openclaw health` prints the upstream summary
//! lines (event loop, probe duration, agents, heartbeat, sessions); `openclaw gateway health`
//! prints `Gateway Health` / `OK (<ms>ms)` and one line per channel. Exit 0 when the gateway
//! reports `ok` (or "still starting"), 1 when it reports a failure or cannot be reached.
use std::fmt::Write as _;
use std::time::Instant;

use serde_json::Value;

use crate::config::paths::Paths;
use crate::error::{Error, Exit, Result};
use crate::ops::conn::ConnOptions;
use crate::ops::rpc::{self, Identity};

/// `health`.
#[derive(Debug, Clone, Default)]
pub(crate) struct HealthOptions {
    /// JSON output (the payload verbatim).
    pub(crate) json: bool,
    /// Connection.
    pub(crate) conn: ConnOptions,
}

/// Which command printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `openclaw health`.
    Summary,
    /// `openclaw gateway health`.
    Gateway,
}

/// Runs the command. With a broken config it still tries the gateway (see
/// [`crate::ops::target`]) and warns on stderr; with `--json` every outcome is JSON on stdout.
pub(crate) fn run(paths: &Paths, args: &HealthOptions, style: Style) -> Result<Exit> {
    let target = match crate::ops::target(paths, &args.conn) {
        Ok(t) => t,
        Err(e) if args.json => return Ok(crate::ops::print_json_error(&e, None)),
        Err(e) => return Err(e),
    };
    let t0 = Instant::now();
    let payload = match fetch(paths, &target) {
        Ok(p) => p,
        Err(e) => {
            let e = crate::ops::with_config_note(e, Some(&target));
            if args.json {
                return Ok(crate::ops::print_json_error(&e, Some(&target)));
            }
            return Err(e);
        }
    };
    let elapsed = t0.elapsed().as_millis() as u64;
    crate::ops::warn_config(&target);
    if args.json {
        let mut p = payload.clone();
        if let (Some(n), Some(o)) = (&target.config_broken, p.as_object_mut()) {
            o.insert("configError".into(), n.clone().into());
        }
        crate::ops::print_json(&p);
    } else {
        print!("{}", render(&payload, style, elapsed));
    }
    Ok(if healthy(&payload) {
        Exit::Ok
    } else {
        Exit::Failure
    })
}

/// One `health` RPC.
fn fetch(paths: &Paths, target: &crate::ops::conn::Target) -> Result<Value> {
    let rt = rpc::runtime()?;
    rt.block_on(async {
        let s = rpc::connect(target, &Identity::read())
            .await
            .map_err(|f| f.into_error(&crate::ops::profile_flag(paths)))?;
        let r = s.client.call("health", None).await;
        s.client.close();
        r.map_err(|e| {
            Error::Msg(format!(
                "health failed: {} ({})",
                rpc::describe(&e),
                target.url
            ))
        })
    })
}

/// `ok: true`, or a gateway that says it is still starting (non-failing upstream).
pub(crate) fn healthy(p: &Value) -> bool {
    p["ok"] == true || p["status"] == "starting"
}

fn ms(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}ms"),
        Some(x) => format!("{x:.1}ms"),
        None => "?".into(),
    }
}

/// The text report (pure, for tests).
pub(crate) fn render(p: &Value, style: Style, elapsed_ms: u64) -> String {
    let mut o = String::new();
    if p["status"] == "starting" {
        let _ = writeln!(
            o,
            "Gateway is starting (phase: {}); try again shortly.",
            p["startupPhase"].as_str().unwrap_or("unknown")
        );
        return o;
    }
    match style {
        Style::Gateway => {
            o.push_str("Gateway Health\n");
            let dur = p["durationMs"].as_u64().unwrap_or(elapsed_ms);
            if p["ok"] == true {
                let _ = writeln!(o, "OK ({dur}ms)");
            } else {
                let _ = writeln!(o, "FAILED ({dur}ms)");
            }
            channel_lines(p, &mut o, style);
        }
        Style::Summary => {
            let el = &p["eventLoop"];
            if el.is_object() {
                let mut line = format!(
                    "Gateway event loop: {} max={} p99={}",
                    if el["degraded"] == true {
                        "degraded"
                    } else {
                        "ok"
                    },
                    ms(&el["delayMaxMs"]),
                    ms(&el["delayP99Ms"]),
                );
                if let Some(u) = el["utilization"].as_f64() {
                    let _ = write!(line, " util={u}");
                }
                if let Some(c) = el["cpuCoreRatio"].as_f64() {
                    let _ = write!(line, " cpu={c}");
                }
                let _ = writeln!(o, "{line}");
            }
            let _ = writeln!(o, "Gateway probe duration: {elapsed_ms}ms");
            if p["ok"] != true {
                let _ = writeln!(o, "Gateway reports: not ok");
            }
            let default_agent = p["defaultAgentId"].as_str().unwrap_or("main");
            let agents: Vec<String> = p["agents"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| {
                            let id = x["agentId"].as_str()?;
                            Some(if x["isDefault"] == true {
                                format!("{id} (default)")
                            } else {
                                id.to_string()
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            if agents.is_empty() {
                let _ = writeln!(o, "Agents: {default_agent} (default)");
            } else {
                let _ = writeln!(o, "Agents: {}", agents.join(", "));
            }
            if let Some(s) = p["heartbeatSeconds"].as_u64().filter(|s| *s > 0) {
                let every = if s % 60 == 0 {
                    format!("{}m", s / 60)
                } else {
                    format!("{s}s")
                };
                let _ = writeln!(o, "Heartbeat interval: {every} ({default_agent})");
            }
            if let Some(path) = p["sessions"]["path"].as_str() {
                let _ = writeln!(
                    o,
                    "Session store ({default_agent}): {path} ({} entries)",
                    p["sessions"]["count"].as_u64().unwrap_or(0)
                );
            }
            if let Some(r) = p["configReload"]["hotReloadStatus"].as_str() {
                let _ = writeln!(o, "Config reload: {r}");
            }
            channel_lines(p, &mut o, style);
        }
    }
    o
}

/// The channel ids of a `health`/`channels.status` payload in display order: `channelOrder`
/// when the gateway sent one, else the keys of `channels`.
pub(crate) fn channel_order(p: &Value, channels: &serde_json::Map<String, Value>) -> Vec<String> {
    p["channelOrder"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .unwrap_or_else(|| channels.keys().cloned().collect())
}

fn channel_lines(p: &Value, o: &mut String, style: Style) {
    let Some(ch) = p["channels"].as_object() else {
        return;
    };
    if ch.is_empty() {
        if style == Style::Summary {
            o.push_str("Channels: none configured\n");
        }
        return;
    }
    for id in channel_order(p, ch) {
        let c = &ch[&id];
        let label = p["channelLabels"][&id].as_str().unwrap_or(&id);
        let state = if c["ok"] == true || c["connected"] == true || c["running"] == true {
            "ok"
        } else if c["configured"] == false {
            "not configured"
        } else {
            c["error"]
                .as_str()
                .or(c["lastError"].as_str())
                .unwrap_or("not ok")
        };
        let _ = writeln!(o, "{label}: {state}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_style_matches_upstream() {
        let p = json!({"ok": true, "durationMs": 16, "channels": {}});
        assert_eq!(render(&p, Style::Gateway, 3), "Gateway Health\nOK (16ms)\n");
        let p = json!({"ok": true, "durationMs": 1, "channels": {"tg": {"ok": true}}, "channelLabels": {"tg": "Telegram"}});
        assert!(render(&p, Style::Gateway, 3).ends_with("Telegram: ok\n"));
    }

    #[test]
    fn summary_style() {
        let p = json!({"ok": true, "eventLoop": {"degraded": false, "delayMaxMs": 23, "delayP99Ms": 23.4, "cpuCoreRatio": 0.007},
            "defaultAgentId": "main", "agents": [], "heartbeatSeconds": 1800, "channels": {},
            "configReload": {"hotReloadStatus": "active"}});
        let t = render(&p, Style::Summary, 5);
        assert!(
            t.starts_with("Gateway event loop: ok max=23ms p99=23.4ms cpu=0.007\n"),
            "{t}"
        );
        assert!(t.contains("Gateway probe duration: 5ms\n"));
        assert!(t.contains("Agents: main (default)\n"));
        assert!(t.contains("Heartbeat interval: 30m (main)\n"));
        assert!(t.contains("Config reload: active\n"));
        assert!(healthy(&p));
        assert!(!healthy(&json!({"ok": false})));
        assert!(healthy(&json!({"status": "starting", "startupPhase": "x"})));
    }
}
