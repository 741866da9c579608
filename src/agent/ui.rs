//! The agent-side methods the Control UI calls (control-ui.md §3–4) with upstream's shapes:
//! `chat.startup`, `chat.inject`, the live session feed (`sessions.subscribe`,
//! `sessions.messages.subscribe|unsubscribe`, `sessions.observer.visibility`), session edits
//! (`sessions.describe|patch|delete|reset`), `agent.identity.get`, `models.authStatus`,
//! `diagnostics.lanes`, `openclaw.setup.detect`, and the chat page's reads of features this
//! gateway does not have (`chat.metadata`, `progressCard.get`, `sessions.branches.list`,
//! `sessions.companion.state`: honest empty answers in upstream's shapes).
//!
//! What does not exist here is answered the way upstream answers its absence: no short ids
//! (`chat.startup{shortId}` resolves to `{ok:false}`), no auth profiles (providers with a
//! configured key are `static`), no setup candidates beyond the config.
// ErrorShape is the wire error; handlers return it by value on purpose.
#![allow(clippy::result_large_err)]
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::config;
use super::methods::{
    agents, chat_history_schema, history_payload, int1, ne, resolve_target, s, session_row_of,
    str_param, validated,
};
use super::run::StopReason;
use super::session::SessionMeta;
use crate::gateway::methods::{Ctx, MethodTable, ScopeRule};
use crate::gateway::protocol::{ErrorShape, Schema, scopes, validate_params};
use crate::sys::time::now_ms;

fn closed(props: Vec<(&'static str, Schema)>, required: &'static [&'static str]) -> Schema {
    Schema::Object {
        props,
        required,
        closed: true,
    }
}

fn blocking_err(method: &str) -> impl Fn(tokio::task::JoinError) -> ErrorShape + '_ {
    move |e| ErrorShape::unavailable(format!("{method} failed: {e}"))
}

/// `chat.startup`: with `sessionKey`, `chat.history`'s payload; with `shortId` (a form this
/// gateway has no ids for) upstream's "no such session" resolution. Either way the connection
/// joins the session feed, as upstream's startup does.
async fn chat_startup(ctx: Ctx) -> Result<Value, ErrorShape> {
    let p = ctx.params.clone().unwrap_or_else(|| json!({}));
    let short = closed(
        vec![
            ("shortId", ne()),
            ("slugHint", ne()),
            ("agentId", ne()),
            ("limit", int1()),
            ("maxBytes", Schema::Int { min: Some(1024) }),
        ],
        &["shortId", "agentId"],
    );
    if p.get("sessionKey").is_none() && p.get("shortId").is_some() {
        validate_params(&short, &p)
            .map_err(|m| ErrorShape::invalid(format!("invalid chat.startup params: {m}")))?;
        agents(&ctx)
            .feed
            .subscribe_sessions(&ctx.state, &ctx.conn.id);
        return Ok(json!({"resolution": {"ok": false}}));
    }
    let p = validated(&ctx, "chat.startup", &chat_history_schema())?;
    history_payload(&ctx, &p, "chat.startup").await
}

/// `chat.inject`: an assistant note appended to the transcript (no model call), broadcast as
/// a final `chat` event with `seq: 0`.
async fn chat_inject(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = closed(
        vec![
            ("sessionKey", ne()),
            ("agentId", ne()),
            ("message", ne()),
            (
                "label",
                Schema::Str {
                    min: 0,
                    max: Some(100),
                },
            ),
        ],
        &["sessionKey", "message"],
    );
    let p = validated(&ctx, "chat.inject", &schema)?;
    let cfg = ctx.state.config();
    let (agent_id, key) = resolve_target(
        &cfg,
        str_param(&p, "agentId"),
        str_param(&p, "sessionKey"),
        "chat.inject",
    )?;
    let rt = agents(&ctx);
    if rt.store.get(&key).is_none() {
        return Err(ErrorShape::invalid("session not found"));
    }
    let text = match str_param(&p, "label").filter(|l| !l.is_empty()) {
        Some(l) => format!("[{l}]\n\n{}", str_param(&p, "message").unwrap_or_default()),
        None => str_param(&p, "message").unwrap_or_default().to_string(),
    };
    let message_id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let message = json!({
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "timestamp": now,
        "stopReason": "stop",
        "usage": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 0,
                  "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0}},
        "api": "openai-responses",
        "provider": "openclaw",
        "model": "gateway-injected",
    });
    let record = json!({"type": "message", "id": message_id, "runId": format!("inject-{message_id}"), "message": message});
    let store = rt.store.clone();
    let k = key.clone();
    tokio::task::spawn_blocking(move || store.append(&k, &[record], true))
        .await
        .map_err(blocking_err("chat.inject"))?
        .map_err(|e| ErrorShape::unavailable(format!("failed to write transcript: {e}")))?;
    ctx.state.broadcast(
        "chat",
        &json!({
            "runId": format!("inject-{message_id}"), "sessionKey": key, "agentId": agent_id,
            "seq": 0, "state": "final", "message": message,
        }),
        crate::gateway::state::Broadcast {
            scope: Some(scopes::READ),
            ..Default::default()
        },
    );
    Ok(json!({"ok": true, "messageId": message_id}))
}

/// `sessions.subscribe`: joins the feed; with list params, also answers the list.
async fn sessions_subscribe(ctx: Ctx) -> Result<Value, ErrorShape> {
    agents(&ctx)
        .feed
        .subscribe_sessions(&ctx.state, &ctx.conn.id);
    let has_params = ctx
        .params
        .as_ref()
        .and_then(Value::as_object)
        .is_some_and(|o| !o.is_empty());
    if !has_params {
        return Ok(json!({"subscribed": true}));
    }
    let list = super::methods::sessions_list_payload(&ctx).await?;
    Ok(json!({"subscribed": true, "list": list}))
}

fn key_schema() -> Schema {
    closed(
        vec![
            ("key", ne()),
            ("agentId", ne()),
            ("includeApprovals", Schema::Bool),
        ],
        &["key"],
    )
}

/// The (agent, canonical key) of a `key`/`agentId` params pair.
fn target(ctx: &Ctx, p: &Value, method: &str) -> Result<(String, String), ErrorShape> {
    let cfg = ctx.state.config();
    resolve_target(&cfg, str_param(p, "agentId"), str_param(p, "key"), method)
}

async fn messages_subscribe(ctx: Ctx) -> Result<Value, ErrorShape> {
    let p = validated(&ctx, "sessions.messages.subscribe", &key_schema())?;
    let with_approvals = p.get("includeApprovals") == Some(&Value::Bool(true));
    if with_approvals && !can_review_approvals(&ctx) {
        return Err(ErrorShape::invalid(format!(
            "sessions.messages.subscribe includeApprovals requires a paired device and gateway scope: {}",
            scopes::APPROVALS
        )));
    }
    let (_, key) = target(&ctx, &p, "sessions.messages.subscribe")?;
    agents(&ctx)
        .feed
        .subscribe_messages(&ctx.state, &ctx.conn.id, &key);
    let mut out = json!({"subscribed": true, "key": key});
    if with_approvals {
        // No approvals exist here: the replay is upstream's empty snapshot.
        out["approvalReplay"] = json!({
            "sessionKey": key, "updatedAtMs": now_ms(), "approvals": [], "truncated": false,
        });
    }
    Ok(out)
}

/// Upstream's reviewer rule: admin, or `operator.approvals` on a connection with a device.
fn can_review_approvals(ctx: &Ctx) -> bool {
    let has = |s: &str| ctx.conn.scopes.iter().any(|g| g == s);
    has(scopes::ADMIN)
        || (has(scopes::APPROVALS)
            && ctx
                .conn
                .device_id
                .as_deref()
                .is_some_and(|d| !d.trim().is_empty()))
}

/// `{sessionKey, agentId?}`, the params of the per-session reads below.
fn session_read_schema() -> Schema {
    closed(
        vec![("sessionKey", ne()), ("agentId", ne())],
        &["sessionKey"],
    )
}

/// Validates a per-session read and resolves its (agent, canonical key).
fn session_read(ctx: &Ctx, method: &str) -> Result<(String, String), ErrorShape> {
    let p = validated(ctx, method, &session_read_schema())?;
    let cfg = ctx.state.config();
    resolve_target(
        &cfg,
        str_param(&p, "agentId"),
        str_param(&p, "sessionKey"),
        method,
    )
}

/// `chat.metadata`: the configured models (as `models.list`), no text commands, no swarm, no
/// auth profiles (upstream's automatic account selection); with `sessionKey`, the session's
/// runtime selection is not locked (no ACP runtimes here).
async fn chat_metadata(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = closed(
        vec![
            ("agentId", ne()),
            (
                "authProfileId",
                Schema::Str {
                    min: 1,
                    max: Some(256),
                },
            ),
            ("sessionKey", ne()),
        ],
        &[],
    );
    let p = validated(&ctx, "chat.metadata", &schema)?;
    if p.get("sessionKey").is_some() && p.get("authProfileId").is_some() {
        return Err(ErrorShape::invalid(
            "invalid chat.metadata params: must NOT be valid",
        ));
    }
    if p.get("authProfileId").is_some() {
        // No user profiles own model accounts here: upstream's refusal for a caller without one.
        return Err(ErrorShape::new(
            "FORBIDDEN",
            "This account action requires a current authorized connection; reconnect and try again.",
        ));
    }
    let cfg = ctx.state.config();
    let with_session = p.get("sessionKey").is_some();
    resolve_target(
        &cfg,
        str_param(&p, "agentId"),
        str_param(&p, "sessionKey"),
        "chat.metadata",
    )?;
    let mut out = json!({
        "models": crate::gateway::methods::models_from_config(&cfg),
        "swarmEnabled": false,
        "accountSelection": {"kind": "automatic", "label": "Automatic account selection"},
    });
    if with_session {
        out["runtimeSelectionLocked"] = json!(false);
    }
    Ok(out)
}

/// `progressCard.get`: no progress cards are kept here.
async fn progress_card_get(ctx: Ctx) -> Result<Value, ErrorShape> {
    session_read(&ctx, "progressCard.get")?;
    Ok(json!({"card": null}))
}

/// `sessions.branches.list`: transcripts here are linear, with no branch tree to navigate.
async fn branches_list(ctx: Ctx) -> Result<Value, ErrorShape> {
    session_read(&ctx, "sessions.branches.list")?;
    Ok(json!({"branches": []}))
}

/// `sessions.companion.state`: no side-chat thread exists for any session here.
async fn companion_state(ctx: Ctx) -> Result<Value, ErrorShape> {
    session_read(&ctx, "sessions.companion.state")?;
    Ok(json!({"exchanges": []}))
}

async fn messages_unsubscribe(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = closed(vec![("key", ne()), ("agentId", ne())], &["key"]);
    let p = validated(&ctx, "sessions.messages.unsubscribe", &schema)?;
    let (_, key) = target(&ctx, &p, "sessions.messages.unsubscribe")?;
    agents(&ctx).feed.unsubscribe_messages(&ctx.conn.id, &key);
    Ok(json!({"subscribed": false, "key": key}))
}

async fn observer_visibility(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = closed(vec![("visible", Schema::Bool)], &["visible"]);
    let p = validated(&ctx, "sessions.observer.visibility", &schema)?;
    let visible = p["visible"].as_bool().unwrap_or(true);
    agents(&ctx)
        .feed
        .set_visibility(&ctx.state, &ctx.conn.id, visible);
    Ok(json!({"ok": true}))
}

async fn sessions_describe(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = closed(
        vec![
            ("key", ne()),
            ("agentId", ne()),
            ("includeDerivedTitles", Schema::Bool),
            ("includeLastMessage", Schema::Bool),
        ],
        &["key"],
    );
    let p = validated(&ctx, "sessions.describe", &schema)?;
    let (_, key) = target(&ctx, &p, "sessions.describe")?;
    let rt = agents(&ctx);
    Ok(match rt.store.get(&key) {
        Some(m) => json!({"session": session_row_of(&rt, &m)}),
        None => json!({"session": null}),
    })
}

/// The public part of a session entry (patch/reset results).
fn entry(m: &SessionMeta) -> Value {
    json!({
        "sessionId": m.session_id,
        "updatedAt": m.updated_at,
        "label": m.label,
        "pinned": m.pinned,
        "archivedAt": m.archived_at,
        "unread": m.unread,
    })
}

fn resolved(ctx: &Ctx, m: &SessionMeta) -> Value {
    let cfg = ctx.state.config();
    let d = super::methods::defaults(ctx, &cfg, &m.agent_id);
    json!({
        "modelProvider": m.model_provider.clone().map(Value::from).unwrap_or_else(|| d["modelProvider"].clone()),
        "model": m.model.clone().map(Value::from).unwrap_or_else(|| d["model"].clone()),
    })
}

/// The patch fields this gateway keeps (label, pin, archive, unread); other session settings
/// (model, thinking, permissions, …) do not exist here and are refused by name.
const PATCH_ENVELOPE: &[&str] = &[
    "key",
    "agentId",
    "expectedSessionId",
    "expectedLifecycleRevision",
    "expectedPermissionMode",
    "expectedMarkedUnreadAt",
];
const PATCH_FIELDS: &[&str] = &["label", "pinned", "archived", "unread"];

async fn sessions_patch(ctx: Ctx) -> Result<Value, ErrorShape> {
    let p = ctx.params.clone().unwrap_or_else(|| json!({}));
    let Some(obj) = p.as_object() else {
        return Err(ErrorShape::invalid(
            "invalid sessions.patch params: must be object",
        ));
    };
    for k in obj.keys() {
        if !PATCH_ENVELOPE.contains(&k.as_str()) && !PATCH_FIELDS.contains(&k.as_str()) {
            return Err(ErrorShape::invalid(format!(
                "sessions.patch: {k} is not supported by this gateway (it keeps label, pinned, archived and unread)"
            )));
        }
    }
    let Some(key_param) = str_param(&p, "key").filter(|k| !k.trim().is_empty()) else {
        return Err(ErrorShape::invalid(
            "invalid sessions.patch params: must have required property 'key'",
        ));
    };
    let mut rec = serde_json::Map::new();
    rec.insert("type".into(), "meta".into());
    rec.insert("timestamp".into(), now_ms().into());
    match p.get("label") {
        None => {}
        Some(Value::Null) => {
            rec.insert("label".into(), Value::Null);
        }
        Some(Value::String(l)) if l.trim().is_empty() => {
            rec.insert("label".into(), Value::Null);
        }
        Some(Value::String(l)) if l.chars().count() <= 200 => {
            rec.insert("label".into(), l.trim().into());
        }
        Some(_) => {
            return Err(ErrorShape::invalid(
                "invalid sessions.patch params: label must be a string of at most 200 characters or null",
            ));
        }
    }
    for f in ["pinned", "archived", "unread"] {
        match p.get(f) {
            None => {}
            Some(Value::Bool(b)) => {
                rec.insert(f.into(), (*b).into());
            }
            Some(_) => {
                return Err(ErrorShape::invalid(format!(
                    "invalid sessions.patch params: {f} must be boolean"
                )));
            }
        }
    }
    let cfg = ctx.state.config();
    let (agent_id, key) = resolve_target(
        &cfg,
        str_param(&p, "agentId"),
        Some(key_param),
        "sessions.patch",
    )?;
    let rt = agents(&ctx);
    if let (Some(expected), Some(m)) = (str_param(&p, "expectedSessionId"), rt.store.get(&key))
        && m.session_id != expected
    {
        return Err(ErrorShape::invalid(format!(
            "Session {key} changed before the patch. Retry."
        )));
    }
    let store = rt.store.clone();
    let (k, a) = (key.clone(), agent_id.clone());
    let rec = Value::Object(rec);
    let meta = tokio::task::spawn_blocking(move || -> crate::error::Result<SessionMeta> {
        store.ensure(&k, &a)?;
        store.append(&k, &[rec], true)?;
        Ok(store.get(&k).expect("just written"))
    })
    .await
    .map_err(blocking_err("sessions.patch"))?
    .map_err(|e| ErrorShape::unavailable(format!("sessions.patch failed: {e}")))?;
    let row = session_row_of(&rt, &meta);
    rt.feed
        .changed(&ctx.state, &key, &agent_id, "patch", Some(&row));
    Ok(json!({
        "ok": true,
        "path": meta.file.display().to_string(),
        "key": key,
        "entry": entry(&meta),
        "resolved": resolved(&ctx, &meta),
    }))
}

/// Aborts a session's runs and waits (bounded) for their terminal events.
async fn stop_runs(rt: &super::Agents, key: &str) {
    let runs = rt.active_for_session(key);
    for r in &runs {
        r.abort(StopReason::Rpc);
    }
    for r in &runs {
        let _ = tokio::time::timeout(Duration::from_secs(5), r.finished()).await;
    }
}

async fn sessions_delete(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = Schema::Object {
        props: vec![
            ("key", ne()),
            ("agentId", ne()),
            ("deleteTranscript", Schema::Bool),
            ("expectedSessionId", ne()),
            ("expectedLifecycleRevision", ne()),
            ("emitLifecycleHooks", Schema::Bool),
            ("archivedOnly", Schema::Bool),
        ],
        required: &["key"],
        closed: false,
    };
    let p = validated(&ctx, "sessions.delete", &schema)?;
    let (agent_id, key) = target(&ctx, &p, "sessions.delete")?;
    if key == format!("agent:{agent_id}:main") {
        return Err(ErrorShape::invalid(format!(
            "Cannot delete the main session ({key})."
        )));
    }
    let rt = agents(&ctx);
    let current = rt.store.get(&key);
    if let (Some(expected), Some(m)) = (str_param(&p, "expectedSessionId"), &current)
        && m.session_id != expected
    {
        return Err(ErrorShape::invalid(format!(
            "Session {key} changed before deletion. Retry."
        )));
    }
    if p.get("archivedOnly") == Some(&Value::Bool(true))
        && current.as_ref().is_none_or(|m| m.archived_at.is_none())
    {
        return Err(ErrorShape::invalid(format!(
            "Session {key} is not archived. Archive it first, then delete it."
        )));
    }
    stop_runs(&rt, &key).await;
    let store = rt.store.clone();
    let k = key.clone();
    let gone = tokio::task::spawn_blocking(move || store.delete(&k))
        .await
        .map_err(blocking_err("sessions.delete"))?
        .map_err(|e| ErrorShape::unavailable(format!("sessions.delete failed: {e}")))?;
    let archived: Vec<String> = gone
        .iter()
        .map(|(_, path)| path.display().to_string())
        .collect();
    if gone.is_some() {
        rt.feed.changed(&ctx.state, &key, &agent_id, "delete", None);
    }
    Ok(json!({"ok": true, "key": key, "deleted": gone.is_some(), "archived": archived}))
}

async fn sessions_reset(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = closed(
        vec![
            ("key", ne()),
            ("agentId", ne()),
            ("reason", Schema::Enum(&["new", "reset"])),
            ("expectedSessionId", ne()),
        ],
        &["key"],
    );
    let p = validated(&ctx, "sessions.reset", &schema)?;
    let (agent_id, key) = target(&ctx, &p, "sessions.reset")?;
    let reason = if str_param(&p, "reason") == Some("new") {
        "new"
    } else {
        "reset"
    };
    let rt = agents(&ctx);
    if let (Some(expected), Some(m)) = (str_param(&p, "expectedSessionId"), rt.store.get(&key))
        && m.session_id != expected
    {
        return Err(ErrorShape::invalid(format!(
            "Session {key} changed before the reset. Retry."
        )));
    }
    stop_runs(&rt, &key).await;
    let store = rt.store.clone();
    let (k, a) = (key.clone(), agent_id.clone());
    let meta = tokio::task::spawn_blocking(move || -> crate::error::Result<SessionMeta> {
        let m = store.create(&k, &a)?;
        store.sync(&k)?;
        Ok(m)
    })
    .await
    .map_err(blocking_err("sessions.reset"))?
    .map_err(|e| ErrorShape::unavailable(format!("sessions.reset failed: {e}")))?;
    let row = session_row_of(&rt, &meta);
    rt.feed
        .changed(&ctx.state, &key, &agent_id, reason, Some(&row));
    Ok(json!({
        "ok": true, "key": key, "entry": entry(&meta), "resolved": resolved(&ctx, &meta),
    }))
}

/// `agent.identity.get`: the name and avatar configured under `agents.entries.<id>.identity`
/// (`name`, `avatar`, `emoji`), else upstream's default assistant (`Assistant`, `A`).
async fn agent_identity(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = closed(vec![("agentId", ne()), ("sessionKey", ne())], &[]);
    let p = validated(&ctx, "agent.identity.get", &schema)?;
    let cfg = ctx.state.config();
    let (agent_id, _) = resolve_target(
        &cfg,
        str_param(&p, "agentId"),
        str_param(&p, "sessionKey"),
        "agent.identity.get",
    )?;
    let ident = cfg.get(&format!("agents.entries.{agent_id}.identity"));
    let field = |k: &str| {
        ident
            .and_then(|i| i.get(k))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (name, source) = match field("name") {
        Some(n) => (n, "agent"),
        None => ("Assistant".to_string(), "default"),
    };
    let emoji = field("emoji");
    let avatar = field("avatar")
        .or_else(|| emoji.clone())
        .unwrap_or_else(|| "A".into());
    let mut out =
        json!({"agentId": agent_id, "name": name, "nameSource": source, "avatar": avatar});
    if let Some(e) = emoji {
        out["emoji"] = e.into();
    }
    Ok(out)
}

/// `models.authStatus`: one entry per configured provider. Keys come from the config (there
/// are no OAuth/token profiles here), so a provider whose key resolves is `static` and one
/// whose key does not is `missing`; key values never leave the gateway.
async fn models_auth_status(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = Schema::Object {
        props: vec![("agentId", s()), ("refresh", Schema::Bool)],
        required: &[],
        closed: false,
    };
    let p = validated(&ctx, "models.authStatus", &schema)?;
    let cfg = ctx.state.config();
    let agent = str_param(&p, "agentId").filter(|a| !a.is_empty());
    if let Some(a) = agent
        && !config::agent_exists(&cfg, a)
    {
        return Err(ErrorShape::invalid(format!(
            "invalid models.authStatus params: unknown agent id \"{a}\""
        ))
        .with_details(json!({"code": "UNKNOWN_AGENT_ID", "agentId": a})));
    }
    let secrets = ctx.state.reload.secrets();
    let providers: Vec<Value> = cfg
        .get("models.providers")
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|pid| {
            let status = match config::resolve_provider(&cfg, &secrets, &pid) {
                Ok(pr) if pr.api_key.is_some() => "static",
                _ => "missing",
            };
            json!({"provider": pid, "authProvider": pid, "displayName": pid, "status": status, "profiles": []})
        })
        .collect();
    Ok(json!({"ts": now_ms(), "providers": providers}))
}

/// `diagnostics.lanes`: the agent runs' one lane (`main`, `agents.defaults.maxConcurrent`).
async fn diagnostics_lanes(ctx: Ctx) -> Result<Value, ErrorShape> {
    let rt = agents(&ctx);
    let (running, queued) = rt.run_counts();
    Ok(json!({
        "ts": now_ms(),
        "lanes": [{
            "lane": "main", "queuedCount": queued, "activeCount": running,
            "maxConcurrent": rt.max_concurrent, "draining": rt.is_closed(), "generation": 0,
            "blockedBy": null,
        }],
        "dynamic": null,
    }))
}

/// `openclaw.setup.detect`: this gateway has no setup inference (no CLI or credential
/// discovery), so it reports only what the config says: whether a model is configured.
async fn setup_detect(ctx: Ctx) -> Result<Value, ErrorShape> {
    let schema = closed(vec![("agentId", ne())], &[]);
    let p = validated(&ctx, "openclaw.setup.detect", &schema)?;
    let cfg = ctx.state.config();
    let agent = str_param(&p, "agentId")
        .map(config::normalize_agent_id)
        .unwrap_or_else(|| config::default_agent_id(&cfg));
    if !config::agent_exists(&cfg, &agent) {
        return Err(ErrorShape::invalid(format!(
            "invalid openclaw.setup.detect params: unknown agent id \"{agent}\""
        ))
        .with_details(json!({"code": "UNKNOWN_AGENT_ID", "agentId": agent})));
    }
    let workspace = cfg
        .get(&format!("agents.entries.{agent}.workspace"))
        .or_else(|| cfg.get("agents.defaults.workspace"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let name = if agent == "main" {
                "workspace".to_string()
            } else {
                format!("workspace-{agent}")
            };
            ctx.state.paths.state_dir.join(name).display().to_string()
        });
    let complete = config::configured_model_ref(&cfg, &agent).is_some();
    Ok(json!({
        "manualProviders": [], "authOptions": [], "prepareOptions": [],
        "nativeSessionCatalogs": [], "nativeSessionCatalogPreferenceRequired": false,
        "workspace": workspace, "setupComplete": complete,
        "candidates": [], "unavailableCandidates": [], "recommendedInstalls": [],
    }))
}

/// `sessions.delete` needs admin unless it only deletes an archived session (upstream).
fn delete_scope(p: Option<&Value>) -> &'static str {
    const WRITE_FIELDS: &[&str] = &[
        "key",
        "agentId",
        "deleteTranscript",
        "expectedSessionId",
        "archivedOnly",
    ];
    match p.and_then(Value::as_object) {
        Some(o)
            if o.get("archivedOnly") == Some(&Value::Bool(true))
                && o.keys().all(|k| WRITE_FIELDS.contains(&k.as_str())) =>
        {
            scopes::WRITE
        }
        _ => scopes::ADMIN,
    }
}

/// `sessions.patch` needs write for the envelope and the UI's own fields, admin otherwise.
fn patch_scope(p: Option<&Value>) -> &'static str {
    const WRITE_MUTATIONS: &[&str] = &[
        "label",
        "autoLabel",
        "icon",
        "color",
        "category",
        "boardFace",
        "boardPresentation",
        "pinned",
        "archived",
        "unread",
        "model",
        "agentRuntime",
        "thinkingLevel",
        "fastMode",
        "permissionMode",
    ];
    let Some(o) = p.and_then(Value::as_object) else {
        return scopes::WRITE;
    };
    if o.get("permissionMode") == Some(&json!("full")) || o.contains_key("sandboxMode") {
        return scopes::ADMIN;
    }
    if o.keys()
        .all(|k| PATCH_ENVELOPE.contains(&k.as_str()) || WRITE_MUTATIONS.contains(&k.as_str()))
    {
        scopes::WRITE
    } else {
        scopes::ADMIN
    }
}

/// Adds the UI methods and the `session.message` / `sessions.changed` events.
pub(crate) fn register(t: &mut MethodTable) {
    let read = || ScopeRule::Fixed(scopes::READ);
    let admin = || ScopeRule::Fixed(scopes::ADMIN);
    t.register("chat.startup", read(), chat_startup);
    t.register("chat.inject", admin(), chat_inject);
    t.register("sessions.subscribe", read(), sessions_subscribe);
    t.register("sessions.messages.subscribe", read(), messages_subscribe);
    t.register(
        "sessions.messages.unsubscribe",
        read(),
        messages_unsubscribe,
    );
    t.register("sessions.observer.visibility", read(), observer_visibility);
    t.register("sessions.describe", read(), sessions_describe);
    t.register(
        "sessions.patch",
        ScopeRule::Dynamic(Arc::new(patch_scope)),
        sessions_patch,
    );
    t.register(
        "sessions.delete",
        ScopeRule::Dynamic(Arc::new(delete_scope)),
        sessions_delete,
    );
    t.register("sessions.reset", admin(), sessions_reset);
    t.register("agent.identity.get", read(), agent_identity);
    t.register("models.authStatus", read(), models_auth_status);
    t.register("diagnostics.lanes", read(), diagnostics_lanes);
    t.register("openclaw.setup.detect", admin(), setup_detect);
    t.register("chat.metadata", read(), chat_metadata);
    t.register("progressCard.get", read(), progress_card_get);
    t.register("sessions.branches.list", read(), branches_list);
    t.register("sessions.companion.state", read(), companion_state);
    t.declare_event("session.message");
    t.declare_event("sessions.changed");
}
