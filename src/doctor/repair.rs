//! Applies the repairs of a [`Report`]: one config write (atomic, previous file kept as
//! `.bak`, 0600) for every config change, permission fixes, then at most one service rewrite
//! through the install transaction. Each step re-checks its precondition at apply time
//! (a key is set only while still missing, a mode only while still too open), so applying
//! twice changes nothing the second time.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use super::{Ctx, Repair, Report};
use crate::config::Config;
use crate::config::write;

/// One applied repair.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    /// Check id.
    pub check: &'static str,
    /// What was done.
    pub action: String,
    /// Succeeded.
    pub ok: bool,
    /// Result message (paths, backups, errors).
    pub message: String,
}

/// Applies every applicable repair (`force`: also those replacing operator edits).
pub fn apply(report: &Report, ctx: &Ctx, force: bool) -> Vec<Applied> {
    let todo = report.repairable(force);
    let mut out = Vec::new();

    // 1. Config edits, merged into one write.
    let mut config_edits: Vec<(&'static str, &Repair)> = todo
        .iter()
        .filter_map(|f| f.repair.as_ref().map(|r| (f.id, r)))
        .filter(|(_, r)| {
            matches!(
                r,
                Repair::SetConfig { .. } | Repair::GenerateToken | Repair::AdoptUnitToken { .. }
            )
        })
        .collect();
    // A token found in the unit is the one clients use today: adopt it before any generation.
    config_edits.sort_by_key(|(_, r)| !matches!(r, Repair::AdoptUnitToken { .. }));
    if !config_edits.is_empty() {
        let ids: Vec<&str> = config_edits.iter().map(|(id, _)| *id).collect();
        let (ok, message) = match edit_config(&ctx.paths.config_path, &config_edits) {
            Ok(Some(changes)) => (
                true,
                format!(
                    "{} in {} (previous file: {}.bak)",
                    changes.join(", "),
                    ctx.paths.config_path.display(),
                    ctx.paths.config_path.display()
                ),
            ),
            Ok(None) => (true, "already done".into()),
            Err(e) => (false, e),
        };
        for id in ids {
            out.push(Applied {
                check: id,
                action: "config".into(),
                ok,
                message: message.clone(),
            });
        }
    }

    // 2. Permissions.
    for f in &todo {
        if let Some(Repair::Chmod { targets }) = &f.repair {
            let mut done = Vec::new();
            let mut err = None;
            for (p, mode) in targets {
                match tighten(p, *mode) {
                    Ok(Some(old)) => done.push(format!("{} {old:04o} → {mode:04o}", p.display())),
                    Ok(None) => {}
                    Err(e) => err = Some(e),
                }
            }
            out.push(Applied {
                check: f.id,
                action: "chmod".into(),
                ok: err.is_none(),
                message: err.unwrap_or_else(|| {
                    if done.is_empty() {
                        "already done".into()
                    } else {
                        done.join("; ")
                    }
                }),
            });
        }
    }

    // 3. At most one service rewrite, after the config is right (it renders from it).
    let reinstall: Vec<&super::Finding> = todo
        .iter()
        .copied()
        .filter(|f| {
            matches!(f.repair, Some(Repair::Reinstall { .. }))
                || matches!(f.repair, Some(Repair::AdoptUnitToken { .. }))
        })
        .collect();
    if !reinstall.is_empty() {
        let force_needed = reinstall.iter().any(|f| f.needs_force);
        let ids: Vec<&'static str> = reinstall.iter().map(|f| f.id).collect();
        let blocked = report.reinstall_held(force);
        let (ok, message) = if blocked {
            (
                false,
                format!(
                    "skipped: {} carries operator edits that a rewrite would replace; move them into a drop-in (`systemctl --user edit {}.service`) and re-run, or use --repair --force (the file is backed up)",
                    ctx.service.user_file().display(),
                    ctx.service.name
                ),
            )
        } else if let Some(b) = super::checks::port_move_refusal(ctx) {
            // Preflight at apply time: the rewrite would move the service onto a taken port.
            (
                false,
                format!("skipped: {}; nothing was changed", b.one_line()),
            )
        } else if !ctx.paths.default_identity {
            (
                false,
                "skipped: non-default state dir or config path; a service must own the canonical state of its profile".to_string(),
            )
        } else {
            match &ctx.service.reinstall {
                None => (
                    false,
                    "this build cannot rewrite service definitions; run `openclaw gateway install --force`".to_string(),
                ),
                Some(r) => match r(force && force_needed) {
                    Ok(m) => (true, m),
                    Err(e) => (false, e.to_string()),
                },
            }
        };
        for id in ids {
            out.push(Applied {
                check: id,
                action: "reinstall".into(),
                ok,
                message: message.clone(),
            });
        }
    }

    // 4. Backups that still hold a credential (left by an earlier release).
    for f in &todo {
        if let Some(Repair::ScrubSecrets { files }) = &f.repair {
            let secrets = super::checks::secret_values(ctx);
            let mut done = Vec::new();
            let mut err = None;
            for p in files {
                match scrub(p, &secrets) {
                    Ok(true) => done.push(p.display().to_string()),
                    Ok(false) => {}
                    Err(e) => err = Some(e),
                }
            }
            out.push(Applied {
                check: f.id,
                action: "scrub".into(),
                ok: err.is_none(),
                message: err.unwrap_or_else(|| {
                    if done.is_empty() {
                        "already done".into()
                    } else {
                        format!("removed the credential from {}", done.join(", "))
                    }
                }),
            });
        }
    }
    out
}

/// Rewrites a kept backup without its credential lines (0600); `false` when it held none.
fn scrub(p: &Path, secrets: &[String]) -> Result<bool, String> {
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("reading {}: {e}", p.display())),
    };
    let Some(clean) = crate::service::scrub::scrub_secret_lines(&text, secrets) else {
        return Ok(false);
    };
    crate::config::write::write_atomic(p, clean.as_bytes(), 0o600).map_err(|e| {
        let cause = match e {
            crate::error::Error::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        format!(
            "rewriting {}: {cause}; remove the file yourself",
            p.display()
        )
    })?;
    Ok(true)
}

/// chmod when the mode is looser than wanted; returns the old mode when it changed.
fn tighten(p: &Path, mode: u32) -> Result<Option<u32>, String> {
    let m = std::fs::metadata(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
    let old = m.permissions().mode() & 0o7777;
    if old & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {mode:o} {}: {e}", p.display()))?;
    Ok(Some(old))
}

fn token_in_unit(unit: &Path) -> Option<String> {
    let text = std::fs::read_to_string(unit).ok()?;
    crate::service::systemd::unit_file::environment(&crate::service::systemd::unit_file::parse(
        &text,
    ))
    .get("OPENCLAW_GATEWAY_TOKEN")
    .cloned()
    .filter(|t| !t.is_empty())
}

/// Applies config edits; `Ok(None)` when nothing was left to change.
fn edit_config(
    path: &Path,
    edits: &[(&'static str, &Repair)],
) -> Result<Option<Vec<String>>, String> {
    let cfg = Config::load(path).map_err(|e| {
        format!("cannot edit the config: {e}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    })?;
    let mut doc = cfg.doc.clone();
    let mut changes = Vec::new();
    let missing = |doc: &Value, key: &str| {
        key.split('.')
            .try_fold(doc, |v, k| v.get(k))
            .is_none_or(Value::is_null)
    };
    for (_, r) in edits {
        match r {
            Repair::SetConfig { key, value } if missing(&doc, key) => {
                write::set_path(&mut doc, key, value.clone())
                    .map_err(|e| format!("cannot set {key}: {e}"))?;
                changes.push(format!("set {key}={value}"));
            }
            Repair::GenerateToken => {
                if missing(&doc, "gateway.auth.token") {
                    write::set_path(
                        &mut doc,
                        "gateway.auth.token",
                        write::generate_token().into(),
                    )
                    .map_err(|e| format!("cannot set gateway.auth.token: {e}"))?;
                    changes.push("generated gateway.auth.token".into());
                }
                if doc["gateway"]["auth"]["mode"] == "none" {
                    write::set_path(&mut doc, "gateway.auth.mode", "token".into())
                        .map_err(|e| format!("cannot set gateway.auth.mode: {e}"))?;
                    changes.push("set gateway.auth.mode=\"token\"".into());
                }
            }
            Repair::AdoptUnitToken { unit } if missing(&doc, "gateway.auth.token") => {
                if let Some(t) = token_in_unit(unit) {
                    write::set_path(&mut doc, "gateway.auth.token", t.into())
                        .map_err(|e| format!("cannot set gateway.auth.token: {e}"))?;
                    changes.push(format!(
                        "moved the token embedded in {} to gateway.auth.token",
                        unit.display()
                    ));
                }
            }
            _ => {}
        }
    }
    if changes.is_empty() {
        return Ok(None);
    }
    write::write_config(path, &doc).map_err(|e| e.to_string())?;
    Ok(Some(changes))
}
