//! `openclaw setup` (create the state dir and a local config with a generated token,
//! idempotent, never overwriting a value) and `openclaw gateway auth-token` (the one place
//! that prints the secret, on request).
use serde_json::Value;

use crate::config::paths::{Paths, ProcessEnv};
use crate::config::{Config, secrets, write};
use crate::error::{Error, Exit, Result};

/// `setup`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SetupOptions {
    /// Port to record in config.
    pub(crate) port: Option<u16>,
}

/// `openclaw gateway auth-token`: prints the configured token on stdout.
pub(crate) fn auth_token(paths: &Paths) -> Result<Exit> {
    let cfg = Config::load(&paths.config_path)?;
    // SecretRefs (env/file/exec) resolve exactly as the gateway resolves them.
    let snap = secrets::activate_blocking(&cfg.doc, &ProcessEnv, None).snapshot;
    if let Some(e) = snap.cold_failure("gateway.auth.token") {
        return Err(Error::Msg(e));
    }
    match snap
        .get("gateway.auth.token")
        .map(|s| s.expose().to_string())
        .filter(|t| !t.is_empty())
    {
        Some(t) => {
            println!("{t}");
            Ok(Exit::Ok)
        }
        None => {
            let env_hint = if std::env::var_os("OPENCLAW_GATEWAY_TOKEN").is_some() {
                " OPENCLAW_GATEWAY_TOKEN is set in this environment; the gateway uses that value when started from here."
            } else {
                ""
            };
            Err(Error::Msg(format!(
                "no gateway token in {} (gateway.auth.token).{env_hint}\nCreate one with `openclaw setup`, or start the gateway once with `openclaw gateway run --init` (new config) / `openclaw gateway run` on loopback (generates and stores one).",
                paths.config_path.display()
            )))
        }
    }
}

/// `openclaw setup`: ensures `gateway.mode` and a token exist (and `gateway.port` when
/// `--port` is given). Existing values are never changed; an invalid file is never touched.
pub(crate) fn setup(paths: &Paths, args: &SetupOptions) -> Result<Exit> {
    write::ensure_state_dir(&paths.state_dir)?;
    let cfg = Config::load(&paths.config_path)?;
    let mut doc = cfg.doc.clone();
    let mut changes: Vec<String> = Vec::new();
    let set = |doc: &mut Value, key: &str, v: Value| {
        write::set_path(doc, key, v).map_err(|e| {
            Error::Config(format!(
                "cannot set {key} in {}: {e}; fix the file first",
                paths.config_path.display()
            ))
        })
    };
    match cfg.gateway.mode.as_deref() {
        None => {
            set(&mut doc, "gateway.mode", "local".into())?;
            changes.push("gateway.mode=local".into());
        }
        Some("local") => {}
        Some(other) => eprintln!(
            "note: gateway.mode is {other:?}; left unchanged (the gateway starts only with gateway.mode=local)"
        ),
    }
    let has_secret = cfg.get("gateway.auth.token").is_some_and(|v| !v.is_null())
        || cfg
            .get("gateway.auth.password")
            .is_some_and(|v| !v.is_null());
    if !has_secret {
        set(
            &mut doc,
            "gateway.auth.token",
            write::generate_token().into(),
        )?;
        changes.push("gateway.auth.token (generated)".into());
    }
    if let Some(p) = args.port {
        match cfg.gateway.port {
            Some(existing) if existing != p => eprintln!(
                "note: gateway.port is already {existing}; left unchanged (edit the file to change it)"
            ),
            Some(_) => {}
            None => {
                set(&mut doc, "gateway.port", p.into())?;
                changes.push(format!("gateway.port={p}"));
            }
        }
    }
    if changes.is_empty() {
        println!(
            "No change: {} is already set up.",
            paths.config_path.display()
        );
    } else {
        write::write_config(&paths.config_path, &doc)?;
        println!(
            "{} {}: {}",
            if cfg.exists { "Updated" } else { "Created" },
            paths.config_path.display(),
            changes.join(", ")
        );
    }
    println!(
        "Read the gateway token with: openclaw{} gateway auth-token",
        crate::ops::profile_flag(paths)
    );
    Ok(Exit::Ok)
}
