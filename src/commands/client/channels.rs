//! `openclaw channels status [--probe] [--json]`: RPC `channels.status`.
//!
//! This gateway has no channel plugins yet, so an empty registry is the normal answer and is
//! said plainly. `--json` prints the payload verbatim. An unreachable gateway exits 1 after
//! listing what the config declares (`channels.*`), so the operator still sees intent.
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::config::Config;
use crate::config::paths::Paths;
use crate::error::{Error, Exit, Result};
use crate::ops::conn::ConnOptions;
use crate::ops::rpc::{self, Identity};

/// Runs the command.
pub(crate) fn status(
    paths: &Paths,
    probe: bool,
    json_out: bool,
    conn: &ConnOptions,
) -> Result<Exit> {
    let target = crate::ops::target(paths, conn)?;
    // A broken config no longer stops the command (see `ops::target`): say what was guessed.
    crate::ops::warn_config(&target);
    let rt = rpc::runtime()?;
    if probe && !json_out {
        println!("Checking channel status (probe)…");
    }
    let r = rt.block_on(async {
        let s = rpc::connect(&target, &Identity::read()).await?;
        let params = if probe {
            json!({"probe": true})
        } else {
            json!({})
        };
        let r = s.client.call("channels.status", Some(params)).await;
        s.client.close();
        Ok::<_, rpc::ConnectFailure>(r)
    });
    match r {
        Ok(Ok(payload)) => {
            if json_out {
                crate::ops::print_json(&payload);
            } else {
                println!("Gateway reachable.");
                print!("{}", render(&payload));
            }
            Ok(Exit::Ok)
        }
        Ok(Err(e)) => Err(Error::Msg(format!(
            "channels.status failed: {} ({})",
            rpc::describe(&e),
            target.url
        ))),
        Err(f) => {
            if target.is_local()
                && !json_out
                && let Ok(cfg) = Config::load(&paths.config_path)
            {
                println!(
                    "Gateway not reachable ({}); channels declared in {}:",
                    f.reason(),
                    cfg.path.display()
                );
                print!("{}", render_config(&cfg));
            }
            Err(f.into_error(&crate::ops::profile_flag(paths)))
        }
    }
}

/// Text for a `channels.status` payload (pure).
pub(crate) fn render(p: &Value) -> String {
    let mut o = String::new();
    let Some(channels) = p["channels"].as_object().filter(|c| !c.is_empty()) else {
        o.push_str("- no configured chat channels (this gateway has no channel plugins yet)\n");
        return o;
    };
    for id in super::health::channel_order(p, channels) {
        let c = &channels[&id];
        let label = p["channelLabels"][&id].as_str().unwrap_or(&id);
        let accounts = p["channelAccounts"][&id]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        let state =
            c["status"]
                .as_str()
                .or(c["state"].as_str())
                .unwrap_or(if c["configured"] == true {
                    "configured"
                } else {
                    "unknown"
                });
        let _ = writeln!(o, "- {label}: {state} ({accounts} account(s))");
    }
    for issue in p["statusIssues"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  issue: {}",
            issue["message"].as_str().unwrap_or(&issue.to_string())
        );
    }
    o
}

fn render_config(cfg: &Config) -> String {
    match cfg.get("channels").and_then(Value::as_object) {
        Some(c) if !c.is_empty() => c.keys().map(|k| format!("- {k} (config only)\n")).collect(),
        _ => "- no configured chat channels\n".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_registry_is_said_plainly() {
        let p = json!({"channels": {}, "channelOrder": []});
        assert!(render(&p).contains("no configured chat channels"));
        let p = json!({"channels": {"tg": {"configured": true}}, "channelLabels": {"tg": "Telegram"},
            "channelAccounts": {"tg": [{}]}});
        assert_eq!(render(&p), "- Telegram: configured (1 account(s))\n");
    }
}
