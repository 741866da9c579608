//! `openclaw secrets reload [--json]`: the client side of the gateway's `secrets.reload`
//! (admin) method. The gateway re-resolves its SecretRefs and answers with what it applied.
use serde_json::json;

use crate::config::Config;
use crate::config::paths::{Paths, ProcessEnv};
use crate::error::{Error, Exit, Result};
use crate::gateway::protocol::scopes;
use crate::ops::conn::ConnOptions;
use crate::ops::rpc::{self, Identity};

/// `openclaw secrets reload [--json]`: asks the running gateway to re-resolve its SecretRefs.
pub(crate) fn reload(paths: &Paths, json_out: bool, conn: &ConnOptions) -> Result<Exit> {
    // The same target rules as every other client command (ops::conn): `--url` needs explicit
    // credentials; otherwise the local gateway from flag → env → config, SecretRefs resolved.
    let cfg = Config::load(&paths.config_path).ok();
    let target = crate::ops::conn::resolve(paths, conn, cfg.as_ref(), &ProcessEnv)?;
    let url = target.url.clone();
    let rt = rpc::runtime()?;
    let result = rt.block_on(async {
        // One attempt (no "still starting" retry): `cli`/`cli` with operator.admin.
        let opts = rpc::options(&target, &Identity::Cli(vec![scopes::ADMIN.to_string()]));
        let client = crate::gateway::client::GatewayClient::connect(opts).await?;
        let r = client.call("secrets.reload", None).await;
        client.close();
        r
    });
    let payload = result.map_err(|e| {
        Error::Msg(format!(
            "secrets reload via {url} failed: {e}\nIs the gateway running (`openclaw gateway status`)? Pass --url/--token for a remote one."
        ))
    })?;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&payload).unwrap_or_default()
        );
    } else {
        let resolved = payload["resolved"].as_u64().unwrap_or(0);
        let failures = payload["failures"].as_array().cloned().unwrap_or_default();
        if payload["applied"] == json!(false) {
            println!("Secrets not reloaded: the gateway kept its previous secrets.");
        } else {
            println!("Secrets reloaded: {resolved} reference(s) resolved.");
        }
        if let Some(e) = payload["error"].as_str() {
            println!("  error: {e}");
        }
        for f in &failures {
            println!(
                "  {} ({}): {} [{}]",
                f["path"].as_str().unwrap_or("?"),
                f["ref"].as_str().unwrap_or("?"),
                f["error"].as_str().unwrap_or("?"),
                f["state"].as_str().unwrap_or("?")
            );
        }
    }
    let ok = payload["ok"] == json!(true) && payload["applied"] != json!(false);
    Ok(if ok { Exit::Ok } else { Exit::Failure })
}
