//! Config editing over the protocol: `config.schema` (read) and `config.set|patch|apply`
//! (admin), as the Control UI's settings pages use them.
//!
//! A write is guarded by the base hash `config.get` returned (`baseHash`; required once the
//! file exists): a stale one is refused and nothing is written. Writes are serialized, so two
//! editors holding the same hash cannot both win. The candidate then passes, in
//! order: JSON5 syntax, the schema ([`crate::config::schema::validate`], each problem named by
//! its path), redacted values restored from the running config (`__OPENCLAW_REDACTED__` from
//! `config.get` keeps the secret it stands for), the loader itself ([`Config::parse`]) and
//! the startup guards ([`check_startable`]). Any failure is refused with what and where, and
//! the file and the running config stay as they were (the last good config is kept).
//!
//! Accepted text is written atomically (0600, previous content in `.bak`) and handed to the
//! hot reloader exactly as a file edit: hot changes are applied before the answer; a change
//! that needs a restart is answered first (`restart` in the payload) and then restarts the
//! gateway, only because the reloader checked that the new config starts. Should the reloader
//! still reject it (e.g. a SecretRef that fails to resolve), the previous file is put back and
//! the error returned.
// ErrorShape is the wire error; handlers return it by value on purpose.
#![allow(clippy::result_large_err)]
use serde_json::{Map, Value, json};

use super::methods::{Ctx, MethodTable, ScopeRule};
use super::protocol::{ErrorShape, Schema, scopes, validate_params};
use super::reload::check_startable;
use crate::config::reload::{self as plan, Action, Mode, ReloadResult, Trigger};
use crate::config::{Config, REDACTED};
use crate::sys::time::now_ms;

fn hash(raw: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    format!(
        "sha256:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(raw.as_bytes()))
    )
}

fn invalid(m: impl Into<String>) -> ErrorShape {
    ErrorShape::invalid(m)
}

/// `config.schema`: the schema this gateway validates against (no UI hints of its own).
fn schema_payload() -> Value {
    let generated = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "schema": crate::config::schema::schema(),
        "uiHints": {},
        "version": crate::VERSION,
        "generatedAt": generated,
    })
}

/// Which write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Set,
    Patch,
    Apply,
}

impl Kind {
    fn method(self) -> &'static str {
        match self {
            Kind::Set => "config.set",
            Kind::Patch => "config.patch",
            Kind::Apply => "config.apply",
        }
    }
}

fn params_schema(kind: Kind) -> Schema {
    let ne = || Schema::Str { min: 1, max: None };
    let mut props = vec![("raw", ne()), ("baseHash", ne())];
    if kind != Kind::Set {
        props.push(("sessionKey", Schema::Str { min: 0, max: None }));
        props.push(("deliveryContext", Schema::Any));
        props.push(("note", Schema::Str { min: 0, max: None }));
        props.push(("restartDelayMs", Schema::Int { min: Some(0) }));
    }
    if kind == Kind::Patch {
        props.push(("replacePaths", Schema::Array(Box::new(ne()))));
    }
    Schema::Object {
        props,
        required: &["raw"],
        closed: true,
    }
}

/// RFC 7386 merge patch (`null` deletes; arrays and scalars replace).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Puts back the secrets `config.get` redacted: a `__OPENCLAW_REDACTED__` string keeps the
/// running config's value at the same path. Returns the paths that have none.
fn restore_redacted(doc: &mut Value, running: &Value, path: &str, missing: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match doc {
        Value::String(s) if s == REDACTED => match running {
            Value::String(orig) if orig != REDACTED => *doc = Value::String(orig.clone()),
            Value::Null => missing.push(path.to_string()),
            other if !other.is_string() => *doc = other.clone(),
            _ => missing.push(path.to_string()),
        },
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                let r = running.get(k).unwrap_or(&Value::Null);
                restore_redacted(v, r, &join(k), missing);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                let r = running.get(i).unwrap_or(&Value::Null);
                restore_redacted(v, r, &format!("{path}[{i}]"), missing);
            }
        }
        _ => {}
    }
}

fn config_invalid(issues: Vec<(String, String)>) -> ErrorShape {
    let lines: Vec<String> = issues.iter().map(|(p, m)| format!("{p}: {m}")).collect();
    let details: Vec<Value> = issues
        .iter()
        .map(|(p, m)| json!({"path": p, "message": m}))
        .collect();
    invalid(format!("invalid config: {}", lines.join("; ")))
        .with_details(json!({"issues": details}))
}

/// The text to write and the config it loads as, or why not.
fn candidate(ctx: &Ctx, kind: Kind, raw: &str, running: &Config) -> Result<String, ErrorShape> {
    let mut doc: Value = json5::from_str(raw)
        .map_err(|e| invalid(format!("{}: raw is not valid JSON5: {e}", kind.method())))?;
    if !doc.is_object() {
        return Err(invalid(match kind {
            Kind::Patch => "config.patch raw must be an object".to_string(),
            _ => format!("{}: raw must be an object", kind.method()),
        }));
    }
    let mut rewrite = false;
    if kind == Kind::Patch {
        let mut merged = running.doc.clone();
        merge_patch(&mut merged, &doc);
        doc = merged;
        rewrite = true;
    }
    let mut missing = Vec::new();
    let before = doc.clone();
    restore_redacted(&mut doc, &running.doc, "", &mut missing);
    if !missing.is_empty() {
        return Err(config_invalid(
            missing
                .into_iter()
                .map(|p| {
                    (
                        p,
                        format!(
                            "is {REDACTED} but the running config has no value to keep; enter the real value"
                        ),
                    )
                })
                .collect(),
        ));
    }
    rewrite |= doc != before;
    let issues = crate::config::schema::validate(&doc);
    if !issues.is_empty() {
        return Err(config_invalid(
            issues.into_iter().map(|i| (i.path, i.message)).collect(),
        ));
    }
    let text = if rewrite {
        let mut t = serde_json::to_string_pretty(&doc)
            .map_err(|e| ErrorShape::unavailable(format!("cannot serialize the config: {e}")))?;
        t.push('\n');
        t
    } else {
        raw.to_string()
    };
    let cfg = Config::parse(&running.path, text.clone()).map_err(|e| invalid(e.to_string()))?;
    Mode::parse(cfg.gateway.reload.mode.as_deref())
        .map_err(|e| config_invalid(vec![("gateway.reload.mode".into(), e)]))?;
    let s = &ctx.state;
    check_startable(&s.paths, &s.run_args, &cfg, &s.reload.secrets()).map_err(|e| {
        invalid(format!(
            "{} refused: the gateway could not start with this config: {e}",
            kind.method()
        ))
    })?;
    Ok(text)
}

/// One config write at a time: the base-hash check and the write it guards are one step.
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn write(ctx: Ctx, kind: Kind) -> Result<Value, ErrorShape> {
    let _one_at_a_time = WRITES.lock().await;
    let method = kind.method();
    let p = ctx.params.clone().unwrap_or_else(|| json!({}));
    validate_params(&params_schema(kind), &p)
        .map_err(|m| invalid(format!("invalid {method} params: {m}")))?;
    let Some(raw) = p.get("raw").and_then(Value::as_str) else {
        return Err(invalid(format!(
            "invalid {method} params: raw (string) required"
        )));
    };
    let running = ctx.state.config();
    let path = running.path.clone();
    // The base-hash guard: the caller saw the file (or the running config) it edits.
    let on_disk = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ErrorShape::unavailable(format!(
                "{method}: cannot read {}: {e}",
                path.display()
            )));
        }
    };
    if let Some(disk) = &on_disk {
        let Some(base) = p.get("baseHash").and_then(Value::as_str) else {
            return Err(invalid(
                "config base hash required; re-run config.get and retry",
            ));
        };
        if base != hash(disk) && base != hash(&running.raw) {
            return Err(invalid(
                "config changed since last load; re-run config.get and retry",
            ));
        }
    }
    let text = candidate(&ctx, kind, raw, &running)?;
    let next = Config::parse(&path, text.clone()).map_err(|e| invalid(e.to_string()))?;
    let changed: Vec<String> = plan::diff(&running.doc, &next.doc)
        .iter()
        .map(ToString::to_string)
        .collect();
    if kind == Kind::Patch && changed.is_empty() && on_disk.as_deref() == Some(running.raw.as_str())
    {
        return Ok(json!({
            "ok": true, "noop": true, "changedPaths": [], "path": path.display().to_string(),
            "config": crate::config::redact_secrets(&running.doc).0,
        }));
    }
    let mode = Mode::parse(next.gateway.reload.mode.as_deref()).unwrap_or_default();
    let pl = plan::plan(&running.doc, &next.doc, &crate::config::paths::ProcessEnv);
    let restarts = plan::decide(mode, &pl) == Action::Restart;
    let Some(reloader) = ctx.state.reload.reloader() else {
        return Err(ErrorShape::unavailable(format!(
            "{method} unavailable: the gateway is restarting; retry shortly"
        )));
    };
    let p2 = path.clone();
    let t2 = text.clone();
    tokio::task::spawn_blocking(move || {
        crate::config::write::write_private_with_backup(&p2, t2.as_bytes())
    })
    .await
    .map_err(|e| ErrorShape::unavailable(format!("{method} failed: {e}")))?
    .map_err(|e| ErrorShape::unavailable(format!("{method}: writing the config failed: {e}")))?;
    tracing::info!(
        changed = %changed.join(", "),
        "{method}: config written by {}",
        ctx.conn.client_id
    );
    let mut payload = json!({
        "ok": true,
        "path": path.display().to_string(),
        "hash": hash(&text),
        "config": crate::config::redact_secrets(&next.doc).0,
    });
    if kind == Kind::Patch {
        payload["changedPaths"] = json!(changed);
    }
    if kind != Kind::Set {
        payload["sentinel"] = json!({
            "persisted": false,
            "payload": {
                "kind": if kind == Kind::Patch { "config-patch" } else { "config-apply" },
                "status": "ok",
                "ts": now_ms(),
                "message": p.get("note").cloned().unwrap_or(Value::Null),
                "stats": {"mode": method, "root": path.display().to_string(),
                          "requiresRestart": !pl.paths(plan::Class::Restart).is_empty()},
            },
        });
        if let Some(k) = p.get("sessionKey") {
            payload["sentinel"]["payload"]["sessionKey"] = k.clone();
        }
    }
    if restarts {
        // Answer first: the restart closes this socket. The reloader re-checks that the new
        // config starts before it restarts anything.
        payload["restart"] = json!({"ok": true, "pid": std::process::id(), "reason": method});
        ctx.respond_interim(payload);
        // Already answered; the dispatcher sends nothing more.
        ctx.responded_flag()
            .store(true, std::sync::atomic::Ordering::Release);
        if reloader.evaluate(Trigger::File).await == ReloadResult::Rejected {
            restore(&path, on_disk.as_deref());
        }
        return Ok(Value::Null);
    }
    if reloader.evaluate(Trigger::File).await == ReloadResult::Rejected {
        restore(&path, on_disk.as_deref());
        let why = ctx
            .state
            .reload
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error
            .as_ref()
            .map(|e| e.display())
            .unwrap_or_default();
        // The file is back as it was; re-evaluate so the reloader's view matches it.
        let _ = reloader.evaluate(Trigger::File).await;
        return Err(invalid(format!(
            "{method} refused: the reloader rejected the config ({why}); the previous config was restored"
        )));
    }
    Ok(payload)
}

/// Puts the previous file content back (or removes a file that did not exist).
fn restore(path: &std::path::Path, previous: Option<&str>) {
    let r = match previous {
        Some(t) => crate::config::write::write_atomic(path, t.as_bytes(), 0o600),
        None => {
            std::fs::remove_file(path).map_err(|e| crate::error::Error::io("removing", path, e))
        }
    };
    if let Err(e) = r {
        tracing::error!("config write rejected and the previous config could not be restored: {e}");
    }
}

/// Adds the config methods (scopes as upstream: schema read, writes admin).
pub(crate) fn register(t: &mut MethodTable) {
    t.register(
        "config.schema",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            let p = ctx.params.clone().unwrap_or_else(|| json!({}));
            let closed = Schema::Object {
                props: vec![],
                required: &[],
                closed: true,
            };
            validate_params(&closed, &p)
                .map_err(|m| invalid(format!("invalid config.schema params: {m}")))?;
            Ok(schema_payload())
        },
    );
    t.register("config.set", ScopeRule::Fixed(scopes::ADMIN), |ctx: Ctx| {
        write(ctx, Kind::Set)
    });
    t.register(
        "config.patch",
        ScopeRule::Fixed(scopes::ADMIN),
        |ctx: Ctx| write(ctx, Kind::Patch),
    );
    t.register(
        "config.apply",
        ScopeRule::Fixed(scopes::ADMIN),
        |ctx: Ctx| write(ctx, Kind::Apply),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1});
        merge_patch(
            &mut t,
            &json!({"a": {"b": null, "x": 3}, "d": [3], "f": {"g": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": {"c": 2, "x": 3}, "d": [3], "e": 1, "f": {"g": 1}})
        );
    }

    #[test]
    fn redacted_values_keep_the_running_secret_or_are_named() {
        let running = json!({"gateway": {"auth": {"token": "s3cret"}}});
        let mut doc = json!({"gateway": {"auth": {"token": REDACTED}}, "x": {"apiKey": REDACTED}});
        let mut missing = Vec::new();
        restore_redacted(&mut doc, &running, "", &mut missing);
        assert_eq!(doc["gateway"]["auth"]["token"], "s3cret");
        assert_eq!(missing, ["x.apiKey"]);
    }
}
