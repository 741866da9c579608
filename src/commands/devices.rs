//! `openclaw devices list|approve|reject|remove|rotate|revoke` (upstream's docs/cli/devices.md):
//! the operator side of device pairing, over RPC `device.pair.*` / `device.token.*`.
//!
//! Same flags as upstream (`--url`, `--token`, `--password`, `--timeout`, `--json`); `--url`
//! needs explicit credentials. The CLI connects as `cli`/`cli` asking `operator.pairing` +
//! `operator.admin`, which a direct-local connection keeps.
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::config::paths::Paths;
use crate::error::{Error, Exit, Result};
use crate::gateway::protocol::scopes;
use crate::ops::conn::ConnOptions;
use crate::ops::rpc::{self, Identity};

/// What to do.
#[derive(Debug, Clone)]
pub(crate) enum DevicesVerb {
    /// Pending requests and paired devices.
    List,
    /// Approve a request; without an id (or with `latest`) only preview the newest (exit 1).
    Approve {
        /// Exact request id.
        request_id: Option<String>,
        /// `--latest`.
        latest: bool,
    },
    /// Reject a request.
    Reject {
        /// Request id.
        request_id: String,
    },
    /// Remove a paired device.
    Remove {
        /// Device id.
        device_id: String,
    },
    /// Rotate a device token.
    Rotate {
        /// Device id.
        device: String,
        /// Role.
        role: String,
        /// `--scope` values (`Some(vec![])` for `--no-scopes`).
        scopes: Option<Vec<String>>,
    },
    /// Revoke a device token.
    Revoke {
        /// Device id.
        device: String,
        /// Role.
        role: String,
    },
}

/// Options of one `devices` invocation.
#[derive(Debug, Clone)]
pub(crate) struct DevicesOptions {
    /// The verb.
    pub(crate) verb: DevicesVerb,
    /// `--json`.
    pub(crate) json: bool,
    /// Connection flags.
    pub(crate) conn: ConnOptions,
}

/// Runs the command.
pub(crate) fn run(paths: &Paths, o: &DevicesOptions) -> Result<Exit> {
    let target = crate::ops::target(paths, &o.conn)?;
    // A broken config no longer stops the command (see `ops::target`): say what was guessed.
    crate::ops::warn_config(&target);
    let rt = rpc::runtime()?;
    let id = Identity::Cli(vec![scopes::PAIRING.into(), scopes::ADMIN.into()]);
    let calls = rt.block_on(async {
        let s = rpc::connect(&target, &id).await?;
        let r = run_verb(&s.client, o).await;
        s.client.close();
        Ok::<_, rpc::ConnectFailure>(r)
    });
    let calls = calls.map_err(|f| f.into_error(&crate::ops::profile_flag(paths)))?;
    let (exit, out) = calls.map_err(|(method, e)| {
        Error::Msg(format!(
            "Devices {method} failed: {} ({})",
            rpc::describe(&e),
            target.url
        ))
    })?;
    print!("{out}");
    Ok(exit)
}

type CallErr = (&'static str, crate::gateway::client::ClientError);

async fn call(
    c: &crate::gateway::client::GatewayClient,
    method: &'static str,
    params: Value,
) -> std::result::Result<Value, CallErr> {
    c.call(method, Some(params)).await.map_err(|e| (method, e))
}

fn pretty(v: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    )
}

async fn run_verb(
    c: &crate::gateway::client::GatewayClient,
    o: &DevicesOptions,
) -> std::result::Result<(Exit, String), CallErr> {
    match &o.verb {
        DevicesVerb::List => {
            let list = call(c, "device.pair.list", json!({})).await?;
            Ok((
                Exit::Ok,
                if o.json {
                    pretty(&list)
                } else {
                    render_list(&list, crate::sys::time::now_ms())
                },
            ))
        }
        DevicesVerb::Approve { request_id, latest } => {
            let explicit = request_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty() && !latest);
            let Some(id) = explicit else {
                let list = call(c, "device.pair.list", json!({})).await?;
                return Ok((Exit::Failure, preview_latest(&list, o.json)));
            };
            match call(c, "device.pair.approve", json!({"requestId": id})).await {
                Ok(r) if o.json => Ok((Exit::Ok, pretty(&r))),
                Ok(r) => Ok((
                    Exit::Ok,
                    format!(
                        "Approved {} ({})\n",
                        r["device"]["deviceId"].as_str().unwrap_or("ok"),
                        r["requestId"].as_str().unwrap_or(id)
                    ),
                )),
                Err((_, crate::gateway::client::ClientError::Rpc(e)))
                    if e.message == "unknown requestId" =>
                {
                    eprintln!(
                        "No pending device request matches {id}. Run openclaw devices list and retry with the current request ID."
                    );
                    Ok((Exit::Failure, String::new()))
                }
                Err(e) => Err(e),
            }
        }
        DevicesVerb::Reject { request_id } => {
            let r = call(c, "device.pair.reject", json!({"requestId": request_id})).await?;
            Ok((
                Exit::Ok,
                if o.json {
                    pretty(&r)
                } else {
                    format!("Rejected {}\n", r["deviceId"].as_str().unwrap_or("ok"))
                },
            ))
        }
        DevicesVerb::Remove { device_id } => {
            let r = call(c, "device.pair.remove", json!({"deviceId": device_id})).await?;
            Ok((
                Exit::Ok,
                if o.json {
                    pretty(&r)
                } else {
                    format!("Removed {}\n", r["deviceId"].as_str().unwrap_or(device_id))
                },
            ))
        }
        DevicesVerb::Rotate {
            device,
            role,
            scopes,
        } => {
            let mut p = json!({"deviceId": device, "role": role});
            if let Some(s) = scopes {
                p["scopes"] = json!(s);
            }
            Ok((Exit::Ok, pretty(&call(c, "device.token.rotate", p).await?)))
        }
        DevicesVerb::Revoke { device, role } => {
            let p = json!({"deviceId": device, "role": role});
            Ok((Exit::Ok, pretty(&call(c, "device.token.revoke", p).await?)))
        }
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn access(roles: &[String], scopes: &[String]) -> String {
    let j = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!("roles: {}; scopes: {}", j(roles), j(scopes))
}

fn pending_roles(p: &Value) -> Vec<String> {
    let r = strs(&p["roles"]);
    if r.is_empty() {
        p["role"]
            .as_str()
            .map(|s| vec![s.to_string()])
            .unwrap_or_default()
    } else {
        r
    }
}

fn approval_kind(req: &Value, paired: Option<&Value>) -> &'static str {
    let Some(d) = paired else {
        return "new-pairing";
    };
    let have_roles = strs(&d["roles"]);
    let have_scopes = strs(&d["scopes"]);
    if !pending_roles(req).iter().all(|r| have_roles.contains(r)) {
        "role-upgrade"
    } else if !strs(&req["scopes"]).iter().all(|s| have_scopes.contains(s)) {
        "scope-upgrade"
    } else {
        "re-approval"
    }
}

fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(s, "{c:<width$}", width = w[i]);
            if i + 1 < cells.len() {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut o = line(headers.to_vec());
    for r in rows {
        o.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    o
}

fn device_label(d: &Value) -> String {
    ["operatorLabel", "displayName", "clientId", "deviceId"]
        .iter()
        .find_map(|k| d[*k].as_str().filter(|s| !s.trim().is_empty()))
        .unwrap_or("")
        .to_string()
}

/// Text for a `device.pair.list` payload (pure; upstream's columns).
pub(crate) fn render_list(list: &Value, now: u64) -> String {
    let mut o = String::new();
    let pending = list["pending"].as_array().cloned().unwrap_or_default();
    let paired = list["paired"].as_array().cloned().unwrap_or_default();
    let find = |id: &str| paired.iter().find(|d| d["deviceId"] == id);
    if !pending.is_empty() {
        let _ = writeln!(o, "Pending ({})", pending.len());
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|r| {
                let existing = find(r["deviceId"].as_str().unwrap_or_default());
                let kind = approval_kind(r, existing);
                let mut status = kind.replace('-', " ");
                if r["isRepair"] == true {
                    status.push_str(", repair");
                }
                let who = r["displayName"]
                    .as_str()
                    .or(r["deviceId"].as_str())
                    .unwrap_or_default();
                let ip = r["remoteIp"]
                    .as_str()
                    .map(|i| format!(" · {i}"))
                    .unwrap_or_default();
                vec![
                    r["requestId"].as_str().unwrap_or_default().to_string(),
                    format!("{who}{ip}"),
                    access(&pending_roles(r), &strs(&r["scopes"])),
                    existing
                        .map(|d| access(&strs(&d["roles"]), &strs(&d["scopes"])))
                        .unwrap_or_else(|| "none".into()),
                    r["ts"]
                        .as_u64()
                        .map(|t| ago(now.saturating_sub(t)))
                        .unwrap_or_default(),
                    status,
                ]
            })
            .collect();
        o.push_str(&table(
            &[
                "Request",
                "Device",
                "Requested",
                "Approved",
                "Age",
                "Status",
            ],
            &rows,
        ));
    }
    if !paired.is_empty() {
        let _ = writeln!(o, "Paired ({})", paired.len());
        let rows: Vec<Vec<String>> = paired
            .iter()
            .map(|d| {
                let mut tokens: Vec<String> = d["tokens"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{}{}",
                            t["role"].as_str().unwrap_or_default(),
                            if t["revokedAtMs"].is_u64() {
                                " (revoked)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect();
                tokens.sort();
                vec![
                    device_label(d),
                    d["deviceId"].as_str().unwrap_or_default().to_string(),
                    strs(&d["roles"]).join(", "),
                    strs(&d["scopes"]).join(", "),
                    if tokens.is_empty() {
                        "none".into()
                    } else {
                        tokens.join(", ")
                    },
                    d["remoteIp"].as_str().unwrap_or_default().to_string(),
                ]
            })
            .collect();
        o.push_str(&table(
            &["Device", "Device ID", "Roles", "Scopes", "Tokens", "IP"],
            &rows,
        ));
        o.push_str("Full device IDs\n");
        for r in &rows {
            let _ = writeln!(o, "  {}  {}", r[1], r[0]);
        }
    }
    if pending.is_empty() && paired.is_empty() {
        o.push_str("No device pairing entries.\n");
    }
    o
}

fn preview_latest(list: &Value, json_out: bool) -> String {
    let pending = list["pending"].as_array().cloned().unwrap_or_default();
    let Some(req) = pending.iter().max_by_key(|r| r["ts"].as_u64().unwrap_or(0)) else {
        eprintln!("No pending device pairing requests to approve");
        return String::new();
    };
    let paired = list["paired"].as_array().cloned().unwrap_or_default();
    let existing = paired.iter().find(|d| d["deviceId"] == req["deviceId"]);
    let kind = approval_kind(req, existing);
    let id = req["requestId"].as_str().unwrap_or_default();
    let command = format!("openclaw devices approve {id}");
    let requested = access(&pending_roles(req), &strs(&req["scopes"]));
    if json_out {
        let approved = existing.map(|d| json!({"roles": d["roles"], "scopes": d["scopes"]}));
        return pretty(&json!({
            "selected": req,
            "approvalState": {"kind": kind, "requested": {"roles": pending_roles(req), "scopes": req["scopes"]}, "approved": approved},
            "approveCommand": command,
        }));
    }
    let mut o = String::new();
    let _ = writeln!(o, "Selected pending device request {id}");
    let _ = writeln!(
        o,
        "  Device: {}",
        req["displayName"]
            .as_str()
            .or(req["deviceId"].as_str())
            .unwrap_or_default()
    );
    let _ = writeln!(o, "  Requested: {requested}");
    if let Some(d) = existing {
        let _ = writeln!(
            o,
            "  Approved: {}",
            access(&strs(&d["roles"]), &strs(&d["scopes"]))
        );
    }
    if let Some(ip) = req["remoteIp"].as_str() {
        let _ = writeln!(o, "  IP:     {ip}");
    }
    let note = match kind {
        "scope-upgrade" => {
            "Already paired. Requested scopes exceed the current approval, so reconnect stays blocked until you approve this upgrade."
        }
        "role-upgrade" => {
            "Already paired. Requested role exceeds the current approval, so reconnect stays blocked until you approve this upgrade."
        }
        "re-approval" => {
            "Already paired. Approval-bound device details changed, so OpenClaw created a fresh request instead of silently reusing the old approval."
        }
        _ => "First-time device pairing request.",
    };
    let _ = writeln!(o, "  Note:   {note}");
    eprintln!("Approve this exact request with: {command}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_renders_upstreams_sections_and_never_a_token() {
        let list = json!({
            "pending": [{"requestId": "r1", "deviceId": "abc", "role": "operator", "roles": ["operator"],
                         "scopes": ["operator.read"], "remoteIp": "10.0.0.2", "ts": 1_000}],
            "paired": [{"deviceId": "def", "clientId": "openclaw-control-ui", "roles": ["operator"],
                        "scopes": ["operator.admin"], "tokens": [{"role": "operator", "scopes": []}]}],
        });
        let t = render_list(&list, 61_000);
        assert!(t.starts_with("Pending (1)\nRequest"), "{t}");
        assert!(t.contains("abc · 10.0.0.2"), "{t}");
        assert!(t.contains("roles: operator; scopes: operator.read"), "{t}");
        assert!(t.contains("1m ago") && t.contains("new pairing"), "{t}");
        assert!(
            t.contains("Paired (1)") && t.contains("Full device IDs\n  def  openclaw-control-ui"),
            "{t}"
        );
        assert_eq!(
            render_list(&json!({"pending": [], "paired": []}), 0),
            "No device pairing entries.\n"
        );
    }
}
