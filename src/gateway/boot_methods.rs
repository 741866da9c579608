//! The Control UI's boot calls for features this gateway does not have (control-ui.md §3),
//! answered with upstream's shapes for "nothing here": no update runs or restart sentinel, no
//! Control UI plugins, no pending approvals or questions, no plugin surfaces, no per-user
//! preference store, no cron scheduler (`cron.status` says it is disabled, `cron.list` is an
//! empty page), no Talk providers (`talk.catalog` lists none and nothing is ready), no task
//! ledger (`tasks.list` is empty). Scopes as upstream's method table.
// ErrorShape is the wire error; handlers return it by value on purpose.
#![allow(clippy::result_large_err)]
use serde_json::{Value, json};

use super::methods::{Ctx, MethodTable, ScopeRule};
use super::protocol::{ErrorShape, Schema, scopes, validate_params};

/// Upstream's scope for `question.*` (not in the kernel's scope list: only this file needs it).
const QUESTIONS: &str = "operator.questions";

fn check(ctx: &Ctx, method: &str, schema: &Schema) -> Result<Value, ErrorShape> {
    let p = ctx.params.clone().unwrap_or_else(|| json!({}));
    validate_params(schema, &p)
        .map_err(|m| ErrorShape::invalid(format!("invalid {method} params: {m}")))?;
    Ok(p)
}

fn closed(props: Vec<(&'static str, Schema)>) -> Schema {
    Schema::Object {
        props,
        required: &[],
        closed: true,
    }
}

/// The catalog revision upstream computes for an empty catalog (sha256 of its JSON).
fn empty_catalog_revision() -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(br#"{"plugins":[],"diagnostics":[]}"#))
}

/// Upstream's `CronListParams` (a closed object; `limit` 1..=200, `offset` >= 0).
fn cron_list_schema() -> Schema {
    let ne = || Schema::Str { min: 1, max: None };
    closed(vec![
        ("sessionKey", ne()),
        ("sessionAgentId", ne()),
        ("includeDisabled", Schema::Bool),
        ("limit", Schema::Int { min: Some(1) }),
        ("offset", Schema::Int { min: Some(0) }),
        ("query", Schema::Str { min: 0, max: None }),
        ("enabled", Schema::Enum(&["all", "enabled", "disabled"])),
        (
            "scheduleKind",
            Schema::Enum(&["all", "at", "every", "cron", "on-exit", "stream"]),
        ),
        (
            "lastRunStatus",
            Schema::Enum(&["all", "ok", "error", "skipped", "unknown"]),
        ),
        (
            "trigger",
            Schema::Enum(&["all", "conditional", "unconditional"]),
        ),
        (
            "sortBy",
            Schema::Enum(&["nextRunAtMs", "updatedAtMs", "name"]),
        ),
        ("sortDir", Schema::Enum(&["asc", "desc"])),
        ("agentId", ne()),
        ("compact", Schema::Bool),
        ("includeDeliveryPreviews", Schema::Bool),
    ])
}

/// `cron.list` with no jobs: upstream's page for an empty store (`limit` defaults to 50 when
/// there is nothing to list; the revision is its digest of the empty job list).
fn cron_list(ctx: &Ctx) -> Result<Value, ErrorShape> {
    let p = check(ctx, "cron.list", &cron_list_schema())?;
    if p.get("limit")
        .and_then(Value::as_i64)
        .is_some_and(|l| l > 200)
    {
        return Err(ErrorShape::invalid(
            "invalid cron.list params: at /limit: must be <= 200",
        ));
    }
    let limit = p.get("limit").and_then(Value::as_i64).unwrap_or(50);
    let mut page = json!({
        "jobs": [], "snapshotRevision": empty_cron_list_revision(), "total": 0, "offset": 0,
        "limit": limit, "hasMore": false, "nextOffset": null,
    });
    // Previews are part of the full (non-compact) answer unless turned off.
    if p.get("compact") != Some(&Value::Bool(true))
        && p.get("includeDeliveryPreviews") != Some(&Value::Bool(false))
    {
        page["deliveryPreviews"] = json!({});
    }
    Ok(page)
}

/// Upstream's `sha256:` + base64url(sha256(stableStringify([]))) for an empty job list.
fn empty_cron_list_revision() -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    format!(
        "sha256:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(b"[]"))
    )
}

/// Upstream's `TasksListParams` (`status` one ledger status or a list of them).
fn tasks_list(ctx: &Ctx) -> Result<Value, ErrorShape> {
    const STATUSES: &[&str] = &[
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
        "timed_out",
    ];
    let mut p = ctx.params.clone().unwrap_or_else(|| json!({}));
    // `status` is a union (one status or an array); check it here, the rest by the schema.
    let status = p.as_object_mut().and_then(|o| o.remove("status"));
    let ok = match &status {
        None => true,
        Some(Value::String(s)) => STATUSES.contains(&s.as_str()),
        Some(Value::Array(a)) => a
            .iter()
            .all(|v| v.as_str().is_some_and(|s| STATUSES.contains(&s))),
        Some(_) => false,
    };
    if !ok {
        return Err(ErrorShape::invalid(format!(
            "invalid tasks.list params: at /status: must be one of {} or an array of them",
            STATUSES.join(", ")
        )));
    }
    let ne = || Schema::Str { min: 1, max: None };
    let schema = closed(vec![
        ("agentId", ne()),
        ("sessionKey", ne()),
        ("limit", Schema::Int { min: Some(1) }),
        (
            "cursor",
            Schema::Str {
                min: 0,
                max: Some(512),
            },
        ),
        ("sortBy", Schema::Enum(&["updatedAt", "endedAt"])),
    ]);
    validate_params(&schema, &p)
        .map_err(|m| ErrorShape::invalid(format!("invalid tasks.list params: {m}")))?;
    if p.get("limit")
        .and_then(Value::as_i64)
        .is_some_and(|l| l > 500)
    {
        return Err(ErrorShape::invalid(
            "invalid tasks.list params: at /limit: must be <= 500",
        ));
    }
    // No task ledger here: no cursor this gateway handed out can exist.
    if p.get("cursor").is_some() {
        return Err(ErrorShape::invalid(
            "invalid or expired tasks.list cursor; restart pagination without a cursor",
        ));
    }
    Ok(json!({"tasks": []}))
}

/// Adds the boot methods.
pub(crate) fn register(t: &mut MethodTable) {
    t.register(
        "update.status",
        ScopeRule::Fixed(scopes::ADMIN),
        |ctx: Ctx| async move {
            check(
                &ctx,
                "update.status",
                &closed(vec![("refreshCheckout", Schema::Bool)]),
            )?;
            // No self-update here: no sentinel, no run history, nothing available.
            Ok(json!({"sentinel": null, "updateAvailable": null}))
        },
    );
    t.register(
        "plugins.controlUi.list",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            check(&ctx, "plugins.controlUi.list", &closed(vec![]))?;
            Ok(json!({"revision": empty_catalog_revision(), "plugins": [], "diagnostics": []}))
        },
    );
    for m in [
        "exec.approval.list",
        "plugin.approval.list",
        "openclaw.approval.list",
    ] {
        t.register(m, ScopeRule::Fixed(scopes::APPROVALS), |_ctx: Ctx| async {
            Ok(json!([]))
        });
    }
    t.register(
        "cron.list",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move { cron_list(&ctx) },
    );
    t.register(
        "cron.status",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            check(&ctx, "cron.status", &closed(vec![]))?;
            // No scheduler and no job store here: disabled, nothing due.
            Ok(json!({
                "enabled": false, "triggersEnabled": false, "jobs": 0, "nextWakeAtMs": null,
            }))
        },
    );
    t.register(
        "talk.catalog",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            let ne = || Schema::Str { min: 1, max: None };
            check(
                &ctx,
                "talk.catalog",
                &closed(vec![("provider", ne()), ("model", ne())]),
            )?;
            // No speech, transcription or realtime voice providers: nothing to list, none ready.
            Ok(json!({
                "modes": [], "transports": [], "brains": [],
                "speech": {"providers": []},
                "transcription": {"ready": false, "providers": []},
                "realtime": {"ready": false, "providers": []},
            }))
        },
    );
    t.register(
        "tasks.list",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move { tasks_list(&ctx) },
    );
    t.register(
        "question.list",
        ScopeRule::Fixed(QUESTIONS),
        |ctx: Ctx| async move {
            check(&ctx, "question.list", &closed(vec![]))?;
            Ok(json!({"questions": []}))
        },
    );
    t.register(
        "plugin.surface.refresh",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            let surface = ctx
                .param("surface")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            match surface {
                None => Err(ErrorShape::invalid("surface required")),
                Some(s) => Err(ErrorShape::unavailable(format!(
                    "{s} plugin surface unavailable"
                ))),
            }
        },
    );
    t.register(
        "users.prefs.get",
        ScopeRule::Fixed(scopes::READ),
        |ctx: Ctx| async move {
            check(
                &ctx,
                "users.prefs.get",
                &closed(vec![(
                    "keys",
                    Schema::Array(Box::new(Schema::Str { min: 1, max: None })),
                )]),
            )?;
            // Connections carry no durable user identity here.
            Ok(json!({"status": "no_durable_identity"}))
        },
    );
}

#[cfg(test)]
mod tests {
    /// Node: `sha256(JSON.stringify({plugins: [], diagnostics: []}))`.
    /// Node: `` `sha256:${sha256Base64Url(stableStringify([]))}` ``.
    #[test]
    fn the_empty_cron_list_revision_is_upstreams_digest() {
        assert_eq!(
            super::empty_cron_list_revision(),
            "sha256:T1PNoYwrqgwDVLtfmj7L5e0Sq02OEbqHPC8RFhICuUU"
        );
    }

    #[test]
    fn the_empty_catalog_revision_is_upstreams_digest() {
        assert_eq!(
            super::empty_catalog_revision(),
            "135d4539612c195c5d51f2f3f944f6bc4d9a7645fb37f24d37c9c9d0eb039f4d"
        );
    }
}
