//! The WS methods of the agent runtime, registered into the core method table:
//! `agent` (two-stage), `agent.wait`, `chat.send`, `chat.abort`, `chat.history`,
//! `sessions.list`, and the `agent`/`chat` events.
// ErrorShape is the wire error; handlers return it by value on purpose.
#![allow(clippy::result_large_err)]
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::config;
use super::run::{Admission, Agents, RunKind, RunRequest, StopReason, content_text};
use super::session::SessionMeta;
use crate::gateway::methods::{Ctx, MethodTable, ScopeRule};
use crate::gateway::protocol::{ErrorShape, Schema, scopes, validate_params};
use crate::sys::time::now_ms;

pub(crate) fn s() -> Schema {
    Schema::Str { min: 0, max: None }
}
pub(crate) fn ne() -> Schema {
    Schema::Str { min: 1, max: None }
}
pub(crate) fn int0() -> Schema {
    Schema::Int { min: Some(0) }
}
pub(crate) fn int1() -> Schema {
    Schema::Int { min: Some(1) }
}

/// `AgentParamsSchema` (closed; the fields a client may send).
pub(crate) fn agent_schema() -> Schema {
    let mut props = vec![("message", ne())];
    for k in [
        "agentId",
        "expectedExistingSessionId",
        "cwd",
        "internalRuntimeHandoffId",
        "execApprovalFollowupExpectedSessionId",
    ] {
        props.push((k, ne()));
    }
    for k in [
        "provider",
        "model",
        "to",
        "replyTo",
        "sessionId",
        "sessionKey",
        "thinking",
        "channel",
        "replyChannel",
        "accountId",
        "replyAccountId",
        "threadId",
        "groupId",
        "groupChannel",
        "groupSpace",
        "lane",
        "extraSystemPrompt",
        "voiceWakeTrigger",
        "label",
    ] {
        props.push((k, s()));
    }
    for k in [
        "deliver",
        "bestEffortDeliver",
        "cleanupBundleMcpOnRunEnd",
        "modelRun",
        "internalExecutionIdentityRetry",
        "suppressPromptPersistence",
        "disableMessageTool",
        "swarmCollector",
        "forceRestartSafeTools",
        "forceCodeModeTools",
    ] {
        props.push((k, Schema::Bool));
    }
    props.push(("timeout", int0()));
    props.push(("internalExecutionIdentityRecoveryAttempt", int1()));
    props.push(("attachments", Schema::Array(Box::new(Schema::Any))));
    props.push(("internalEvents", Schema::Array(Box::new(Schema::Any))));
    props.push(("promptMode", Schema::Enum(&["full", "minimal", "none"])));
    props.push((
        "bootstrapContextMode",
        Schema::Enum(&["full", "lightweight"]),
    ));
    props.push((
        "bootstrapContextRunKind",
        Schema::Enum(&["default", "heartbeat", "cron"]),
    ));
    props.push(("acpTurnSource", Schema::Const("manual_spawn")));
    props.push(("sessionEffects", Schema::Enum(&["visible", "internal"])));
    props.push((
        "sourceReplyDeliveryMode",
        Schema::Enum(&["automatic", "message_tool_only"]),
    ));
    props.push(("inputProvenance", Schema::Any));
    props.push(("swarmOutputSchema", Schema::Record(Box::new(Schema::Any))));
    props.push(("idempotencyKey", ne()));
    Schema::Object {
        props,
        required: &["message", "idempotencyKey"],
        closed: true,
    }
}

fn chat_send_schema() -> Schema {
    let mut props = vec![("sessionKey", ne()), ("agentId", ne()), ("sessionId", ne())];
    props.push(("message", s()));
    for k in [
        "thinking",
        "originatingChannel",
        "originatingTo",
        "originatingAccountId",
        "originatingThreadId",
        "systemProvenanceReceipt",
        "queueMode",
    ] {
        props.push((k, s()));
    }
    for k in [
        "mentions",
        "workContext",
        "intent",
        "fastMode",
        "attachments",
        "toolBindings",
        "systemInputProvenance",
        "expectedLeafEntryId",
        "expectedSessionRoutingContract",
        "expectedPermissionMode",
        "expectedToolOverrides",
        "replyToId",
    ] {
        props.push((k, Schema::Any));
    }
    props.push(("fastAutoOnSeconds", int1()));
    props.push(("deliver", Schema::Bool));
    props.push(("suppressCommandInterpretation", Schema::Bool));
    props.push(("timeoutMs", int0()));
    props.push(("idempotencyKey", ne()));
    Schema::Object {
        props,
        required: &["sessionKey", "message", "idempotencyKey"],
        closed: true,
    }
}

fn chat_abort_schema() -> Schema {
    Schema::Object {
        props: vec![
            ("sessionKey", ne()),
            ("agentId", ne()),
            ("runId", ne()),
            ("preserveSideRuns", Schema::Bool),
        ],
        required: &["sessionKey"],
        closed: true,
    }
}

pub(crate) fn chat_history_schema() -> Schema {
    Schema::Object {
        props: vec![
            ("sessionKey", ne()),
            ("agentId", ne()),
            ("cursor", s()),
            ("limit", int1()),
            ("maxBytes", Schema::Int { min: Some(1024) }),
            ("offset", int0()),
            ("pendingBefore", int1()),
            ("inputRunIds", Schema::Array(Box::new(ne()))),
            ("messageId", ne()),
            ("sessionId", ne()),
            ("maxChars", int1()),
        ],
        required: &["sessionKey"],
        closed: true,
    }
}

fn agent_wait_schema() -> Schema {
    Schema::Object {
        props: vec![("runId", ne()), ("timeoutMs", int0())],
        required: &["runId"],
        closed: true,
    }
}

/// Only the fields this gateway acts on are type-checked (upstream's list has ~30 filters;
/// the rest are accepted and ignored).
fn sessions_list_schema() -> Schema {
    Schema::Object {
        props: vec![
            ("limit", int1()),
            ("offset", int0()),
            ("activeOnly", Schema::Bool),
            ("activeMinutes", int1()),
            ("hasBoard", Schema::Bool),
            ("includeLastMessage", Schema::Bool),
            ("spawnedBy", ne()),
            ("archived", Schema::Any),
        ],
        required: &[],
        closed: false,
    }
}

pub(crate) fn validated(ctx: &Ctx, method: &str, schema: &Schema) -> Result<Value, ErrorShape> {
    let p = ctx.params.clone().unwrap_or_else(|| json!({}));
    validate_params(schema, &p)
        .map_err(|m| ErrorShape::invalid(format!("invalid {method} params: {m}")))?;
    Ok(p)
}

pub(crate) fn str_param<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

/// `agent:<agentId>:<rest>` → the agent id.
pub(crate) fn agent_of_session_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("agent:")?;
    let (id, tail) = rest.split_once(':')?;
    (!id.is_empty() && !tail.is_empty()).then_some(id)
}

/// Resolves (agent id, canonical session key) from optional `agentId` / `sessionKey`:
/// `agent:<id>:<rest>` keys name their agent; bare keys (`main`, `work`) are scoped to the
/// requested or default agent; no key is the agent's main session.
pub(crate) fn resolve_target(
    cfg: &crate::config::Config,
    agent_id: Option<&str>,
    session_key: Option<&str>,
    method: &str,
) -> Result<(String, String), ErrorShape> {
    let key = session_key.map(str::trim).filter(|k| !k.is_empty());
    let from_key = key
        .and_then(agent_of_session_key)
        .map(config::normalize_agent_id);
    let requested = agent_id.map(config::normalize_agent_id);
    if let (Some(a), Some(k), Some(ka)) = (&requested, key, &from_key)
        && a != ka
    {
        return Err(ErrorShape::invalid(format!(
            "agentId \"{a}\" does not match session key \"{k}\""
        )));
    }
    let agent = requested
        .or(from_key)
        .unwrap_or_else(|| config::normalize_agent_id(&config::default_agent_id(cfg)));
    if !config::agent_exists(cfg, &agent) {
        return Err(ErrorShape::invalid(format!(
            "invalid {method} params: unknown agent id \"{agent}\""
        ))
        .with_details(json!({"code": "UNKNOWN_AGENT_ID", "agentId": agent})));
    }
    let canonical = match key {
        None => format!("agent:{agent}:main"),
        Some(k) if agent_of_session_key(k).is_some() => {
            let (_, tail) = k["agent:".len()..].split_once(':').expect("checked");
            format!("agent:{agent}:{tail}")
        }
        Some(k) => format!("agent:{agent}:{}", k.to_ascii_lowercase()),
    };
    Ok((agent, canonical))
}

/// `/new` or `/reset` (optionally followed by text): start a fresh session.
fn parse_reset(message: &str) -> (bool, &str) {
    let t = message.trim_start();
    for cmd in ["/new", "/reset"] {
        if let Some(rest) = t.strip_prefix(cmd)
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return (true, rest.trim());
        }
    }
    (false, message)
}

fn shutting_down() -> ErrorShape {
    let mut e = ErrorShape::unavailable(
        "the gateway is shutting down and accepts no new agent runs; retry after it restarts",
    );
    e.retryable = Some(true);
    e
}

pub(crate) fn agents(ctx: &Ctx) -> Arc<Agents> {
    super::of(&ctx.state)
}

async fn agent(ctx: Ctx) -> Result<Value, ErrorShape> {
    let p = validated(&ctx, "agent", &agent_schema())?;
    let cfg = ctx.state.config();
    let (agent_id, session_key) = resolve_target(
        &cfg,
        str_param(&p, "agentId"),
        str_param(&p, "sessionKey"),
        "agent",
    )?;
    let run_id = str_param(&p, "idempotencyKey")
        .unwrap_or_default()
        .to_string();
    let (reset, message) = parse_reset(str_param(&p, "message").unwrap_or_default());
    let message = message.to_string();
    let rt = agents(&ctx);
    let run = match rt.admit(&run_id, &session_key, &agent_id, RunKind::Agent) {
        Admission::Done(f) => {
            ctx.respond_final(f.res_frame(&ctx.req_id));
            return Ok(Value::Null);
        }
        Admission::InFlight(_) => return Ok(json!({"runId": run_id, "status": "in_flight"})),
        Admission::Closed => return Err(shutting_down()),
        Admission::Started(r) => r,
    };
    ctx.respond_interim(json!({
        "runId": run_id, "sessionKey": session_key, "agentId": agent_id,
        "status": "accepted", "acceptedAt": run.accepted_at,
    }));
    if reset && message.is_empty() {
        // `/new` alone: rotate the session, no model call.
        let fin = rt
            .reset_only(&ctx.state, run, &session_key, &agent_id)
            .await;
        ctx.respond_final(fin.res_frame(&ctx.req_id));
        return Ok(Value::Null);
    }
    let mut req = RunRequest::new(&run_id, &agent_id, &session_key, message, RunKind::Agent);
    req.reset = reset;
    req.provider = str_param(&p, "provider").map(str::to_string);
    req.model = str_param(&p, "model").map(str::to_string);
    req.timeout_secs = p.get("timeout").and_then(Value::as_u64);
    req.extra_system = str_param(&p, "extraSystemPrompt").map(str::to_string);
    let id = ctx.req_id.clone();
    rt.execute_then(&ctx.state, run, req, None, |fin| {
        ctx.respond_final(fin.res_frame(&id))
    })
    .await;
    Ok(Value::Null)
}

async fn agent_wait(ctx: Ctx) -> Result<Value, ErrorShape> {
    let p = validated(&ctx, "agent.wait", &agent_wait_schema())?;
    let run_id = str_param(&p, "runId").unwrap_or_default().to_string();
    let ms = p
        .get("timeoutMs")
        .and_then(Value::as_u64)
        .unwrap_or(super::run::DEFAULT_WAIT_MS);
    Ok(agents(&ctx).wait(&run_id, Duration::from_millis(ms)).await)
}

async fn chat_send(ctx: Ctx) -> Result<Value, ErrorShape> {
    let p = validated(&ctx, "chat.send", &chat_send_schema())?;
    let cfg = ctx.state.config();
    let (agent_id, session_key) = resolve_target(
        &cfg,
        str_param(&p, "agentId"),
        str_param(&p, "sessionKey"),
        "chat.send",
    )?;
    let run_id = str_param(&p, "idempotencyKey")
        .unwrap_or_default()
        .to_string();
    let raw = str_param(&p, "message").unwrap_or_default();
    if raw.trim().is_empty() {
        return Err(ErrorShape::invalid(
            "invalid chat.send params: message must not be empty",
        ));
    }
    let (reset, message) = parse_reset(raw);
    let message = message.to_string();
    let rt = agents(&ctx);
    let run = match rt.admit(&run_id, &session_key, &agent_id, RunKind::ChatSend) {
        Admission::Done(f) => return Ok(json!({"runId": run_id, "status": f.status.as_str()})),
        Admission::InFlight(_) => return Ok(json!({"runId": run_id, "status": "in_flight"})),
        Admission::Closed => return Err(shutting_down()),
        Admission::Started(r) => r,
    };
    // The response goes out before the run's first event.
    ctx.respond_final(crate::gateway::protocol::res_ok(
        &ctx.req_id,
        json!({"runId": run_id, "status": "started"}),
    ));
    let state = ctx.state.clone();
    let timeout_secs = p
        .get("timeoutMs")
        .and_then(Value::as_u64)
        .map(|ms| ms.div_ceil(1000));
    ctx.state.shutdown.tracker().spawn(async move {
        if reset && message.is_empty() {
            rt.reset_only(&state, run, &session_key, &agent_id).await;
            return;
        }
        let mut req = RunRequest::new(&run_id, &agent_id, &session_key, message, RunKind::ChatSend);
        req.reset = reset;
        req.timeout_secs = timeout_secs;
        rt.execute(&state, run, req, None).await;
    });
    Ok(Value::Null)
}

async fn chat_abort(ctx: Ctx) -> Result<Value, ErrorShape> {
    let p = validated(&ctx, "chat.abort", &chat_abort_schema())?;
    let cfg = ctx.state.config();
    let (_, session_key) = resolve_target(
        &cfg,
        str_param(&p, "agentId"),
        str_param(&p, "sessionKey"),
        "chat.abort",
    )?;
    let rt = agents(&ctx);
    let targets = match str_param(&p, "runId") {
        Some(id) => match rt.active(id) {
            Some(r) if r.session_key != session_key => {
                return Err(ErrorShape::invalid("runId does not match sessionKey"));
            }
            Some(r) => vec![r],
            None => Vec::new(),
        },
        None => rt.active_for_session(&session_key),
    };
    let mut run_ids = Vec::new();
    for r in &targets {
        if r.abort(StopReason::Rpc) {
            run_ids.push(r.run_id.clone());
        }
    }
    // Answer after the aborted runs emitted their terminal events (bounded).
    for r in &targets {
        let _ = tokio::time::timeout(Duration::from_secs(5), r.finished()).await;
    }
    Ok(json!({"ok": true, "aborted": !run_ids.is_empty(), "runIds": run_ids}))
}

pub(crate) fn defaults(ctx: &Ctx, cfg: &crate::config::Config, agent_id: &str) -> Value {
    match config::resolve_model(cfg, &ctx.state.reload.secrets(), agent_id, None, None) {
        Ok(m) => {
            json!({"modelProvider": m.provider.id, "model": m.model, "contextTokens": m.context_tokens})
        }
        Err(e) => {
            let (p, m) = config::configured_model_ref(cfg, agent_id)
                .and_then(|r| config::split_model_ref(cfg, &r).ok())
                .unwrap_or((e.provider.clone(), config::DEFAULT_MODEL.into()));
            json!({"modelProvider": p, "model": m, "contextTokens": config::DEFAULT_CONTEXT_TOKENS})
        }
    }
}

/// A session row as `sessions.list`, `sessions.describe` and the session feed show it (only
/// the fields this gateway can fill truthfully; there are no boards or spawned sessions here).
pub(crate) fn session_row(m: &SessionMeta, active: &[String]) -> Value {
    let display = m
        .label
        .clone()
        .unwrap_or_else(|| m.key.rsplit(':').next().unwrap_or(&m.key).to_string());
    let is_main = m.key == format!("agent:{}:main", m.agent_id);
    json!({
        "key": m.key,
        "sessionId": m.session_id,
        "agentId": m.agent_id,
        "kind": "direct",
        "classification": if is_main { "main" } else { "direct" },
        "isMain": is_main,
        "label": m.label,
        "displayName": display,
        "createdAt": m.created_at,
        "updatedAt": m.updated_at,
        "status": if active.is_empty() { "idle" } else { "running" },
        "hasActiveRun": !active.is_empty(),
        "activeRunIds": active,
        "messageCount": m.message_count,
        "modelProvider": m.model_provider,
        "model": m.model,
        "inputTokens": m.input_tokens,
        "outputTokens": m.output_tokens,
        "totalTokens": m.input_tokens + m.output_tokens,
        "lastRunId": m.last_run_id,
        "lastRunError": m.last_error,
        "archived": m.archived_at.is_some(),
        "archivedAt": m.archived_at,
        "pinned": m.pinned,
        "unread": m.unread,
        "hasBoard": false,
    })
}

/// [`session_row`] with the session's active runs looked up.
pub(crate) fn session_row_of(rt: &Agents, m: &SessionMeta) -> Value {
    let ids: Vec<String> = rt
        .active_for_session(&m.key)
        .into_iter()
        .map(|r| r.run_id.clone())
        .collect();
    session_row(m, &ids)
}

async fn sessions_list(ctx: Ctx) -> Result<Value, ErrorShape> {
    sessions_list_payload(&ctx).await
}

/// The `sessions.list` payload for the call's params (`sessions.subscribe` answers it too).
pub(crate) async fn sessions_list_payload(ctx: &Ctx) -> Result<Value, ErrorShape> {
    let p = validated(ctx, "sessions.list", &sessions_list_schema())?;
    let rt = agents(ctx);
    let store = rt.store.clone();
    let all = tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|e| ErrorShape::unavailable(format!("sessions.list failed: {e}")))?;
    let now = now_ms();
    let active_only = p.get("activeOnly").and_then(Value::as_bool) == Some(true);
    let active_minutes = p.get("activeMinutes").and_then(Value::as_u64);
    // Archived rows are hidden unless asked for (`archived: true` only them, `"all"` both).
    let archived = match p.get("archived") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Some(false),
        Some(Value::Bool(true)) => Some(true),
        Some(Value::String(s)) if s == "all" => None,
        Some(_) => {
            return Err(ErrorShape::invalid(
                "invalid sessions.list params: at /archived: must be boolean or \"all\"",
            ));
        }
    };
    // No session here has a board or was spawned by another: those filters match nothing.
    let has_board = p.get("hasBoard").and_then(Value::as_bool);
    let spawned_by = p.get("spawnedBy").is_some();
    let rows: Vec<(SessionMeta, Vec<String>)> = all
        .into_iter()
        .map(|m| {
            let ids: Vec<String> = rt
                .active_for_session(&m.key)
                .into_iter()
                .map(|r| r.run_id.clone())
                .collect();
            (m, ids)
        })
        .filter(|(_, ids)| !active_only || !ids.is_empty())
        .filter(|(m, _)| archived.is_none_or(|a| m.archived_at.is_some() == a))
        .filter(|_| has_board != Some(true) && !spawned_by)
        .filter(|(m, _)| {
            active_minutes.is_none_or(|min| now.saturating_sub(m.updated_at) <= min * 60_000)
        })
        .collect();
    let total = rows.len();
    let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = p.get("limit").and_then(Value::as_u64).map(|l| l as usize);
    let mut page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|(m, ids)| session_row(m, ids))
        .collect();
    if p.get("includeLastMessage").and_then(Value::as_bool) == Some(true) {
        // The newest message's text, read from each listed transcript.
        let keys: Vec<String> = page
            .iter()
            .filter_map(|r| r["key"].as_str().map(str::to_string))
            .collect();
        let store = rt.store.clone();
        let previews = tokio::task::spawn_blocking(move || {
            keys.iter()
                .map(|k| {
                    store
                        .messages(k)
                        .ok()
                        .and_then(|m| m.last().map(|m| content_text(&m["content"])))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ErrorShape::unavailable(format!("sessions.list failed: {e}")))?;
        for (row, preview) in page.iter_mut().zip(previews) {
            if let Some(t) = preview.filter(|t| !t.is_empty()) {
                row["lastMessagePreview"] = t.into();
            }
        }
    }
    let end = offset + page.len();
    let has_more = end < total;
    let cfg = ctx.state.config();
    let default_agent = config::default_agent_id(&cfg);
    Ok(json!({
        "ts": now,
        "path": rt.store.root().display().to_string(),
        "count": page.len(),
        "totalCount": total,
        "limitApplied": limit,
        "nextOffset": if has_more { Value::from(end) } else { Value::Null },
        "hasMore": has_more,
        "owners": [],
        "defaults": defaults(ctx, &cfg, &default_agent),
        "sessions": page,
    }))
}

async fn chat_history(ctx: Ctx) -> Result<Value, ErrorShape> {
    let p = validated(&ctx, "chat.history", &chat_history_schema())?;
    history_payload(&ctx, &p, "chat.history").await
}

/// The `chat.history` payload for validated params (`chat.startup` answers the same).
pub(crate) async fn history_payload(
    ctx: &Ctx,
    p: &Value,
    method: &str,
) -> Result<Value, ErrorShape> {
    let cfg = ctx.state.config();
    let (agent_id, key) = resolve_target(
        &cfg,
        str_param(p, "agentId"),
        str_param(p, "sessionKey"),
        method,
    )?;
    let rt = agents(ctx);
    let store = rt.store.clone();
    let k = key.clone();
    let (meta, messages) =
        tokio::task::spawn_blocking(move || (store.get(&k), store.client_messages(&k)))
            .await
            .map_err(|e| ErrorShape::unavailable(format!("{method} failed: {e}")))?;
    let messages = messages.map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    let total = messages.len();
    let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(200) as usize;
    let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    // Newest `limit` messages, `offset` counted back from the end, in chronological order.
    let end = total.saturating_sub(offset);
    let start = end.saturating_sub(limit);
    let page: Vec<Value> = messages[start..end].to_vec();
    let active: Vec<String> = rt
        .active_for_session(&key)
        .into_iter()
        .map(|r| r.run_id.clone())
        .collect();
    let defaults = defaults(ctx, &cfg, &agent_id);
    // Accepted input awaiting a turn: runs queued behind the session's current run, then
    // system events (hook wakes) waiting for the next turn.
    let mut pending: Vec<Value> = rt
        .active_for_session(&key)
        .into_iter()
        .filter(|r| r.queued.load(std::sync::atomic::Ordering::Relaxed))
        .map(|r| {
            json!({"id": r.run_id, "runId": r.run_id, "kind": "message",
                   "text": *r.message.lock().unwrap_or_else(|x| x.into_inner()),
                   "createdAt": r.accepted_at})
        })
        .collect();
    pending.extend(
        rt.pending_system_events(&key)
            .into_iter()
            .enumerate()
            .map(|(i, t)| json!({"id": format!("system-{i}"), "kind": "system", "text": t})),
    );
    let is_main = key == format!("agent:{agent_id}:main");
    // The chat run streaming into this session right now, with its text so far.
    let in_flight = rt
        .active_for_session(&key)
        .into_iter()
        .filter(|r| r.kind == RunKind::ChatSend && !r.is_settled())
        .filter(|r| r.started_at.load(std::sync::atomic::Ordering::Relaxed) > 0)
        .max_by_key(|r| r.started_at.load(std::sync::atomic::Ordering::Relaxed))
        .map(|r| {
            json!({
                "runId": r.run_id,
                "text": *r.streamed.lock().unwrap_or_else(|x| x.into_inner()),
                "startedAt": r.started_at.load(std::sync::atomic::Ordering::Relaxed),
            })
        });
    let mut out = json!({
        "sessionKey": key,
        "sessionId": meta.as_ref().map(|m| m.session_id.clone()),
        "messages": page,
        "pendingInputs": {"items": pending, "total": pending.len()},
        "hasMore": start > 0,
        "totalMessages": total,
        "defaults": defaults,
        "sessionInfo": {
            "key": key,
            "sessionId": meta.as_ref().map(|m| m.session_id.clone()),
            "kind": "direct",
            "classification": if is_main { "main" } else { "direct" },
            "agentId": agent_id,
            "isMain": is_main,
            "updatedAt": meta.as_ref().map(|m| m.updated_at),
            "label": meta.as_ref().and_then(|m| m.label.clone()),
            "archived": meta.as_ref().is_some_and(|m| m.archived_at.is_some()),
            "pinned": meta.as_ref().is_some_and(|m| m.pinned),
            "unread": meta.as_ref().is_some_and(|m| m.unread),
            "modelProvider": meta.as_ref().and_then(|m| m.model_provider.clone()).or_else(|| defaults["modelProvider"].as_str().map(str::to_string)),
            "model": meta.as_ref().and_then(|m| m.model.clone()).or_else(|| defaults["model"].as_str().map(str::to_string)),
            "snapshotAt": now_ms(),
            "hasActiveRun": !active.is_empty(),
            "activeRunIds": active,
            "lastMessagePreview": messages.last().map(|m| content_text(&m["content"])),
        },
    });
    if let Some(f) = in_flight {
        out["inFlightRun"] = f;
    }
    Ok(out)
}

/// `agents.list`: the configured agents with their workspaces and models.
async fn agents_list(ctx: Ctx) -> Result<Value, ErrorShape> {
    let cfg = ctx.state.config();
    let state_dir = &ctx.state.paths.state_dir;
    let agents: Vec<Value> = config::agent_ids(&cfg)
        .into_iter()
        .map(|id| {
            let entry = cfg.get(&format!("agents.entries.{id}"));
            let workspace = entry
                .and_then(|e| e.get("workspace"))
                .or_else(|| cfg.get("agents.defaults.workspace"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    let name = if id == "main" {
                        "workspace".to_string()
                    } else {
                        format!("workspace-{id}")
                    };
                    state_dir.join(name).display().to_string()
                });
            let mut a = json!({"id": id, "workspace": workspace});
            if let Some(m) = entry
                .and_then(|e| e.get("model"))
                .or_else(|| cfg.get("agents.defaults.model"))
            {
                a["model"] = m.clone();
            }
            a
        })
        .collect();
    Ok(json!({
        "defaultId": config::default_agent_id(&cfg), "mainKey": "main", "scope": "per-sender",
        "agents": agents,
    }))
}

/// Adds the agent methods and events to `t` (replacing any core stubs of the same name).
pub(crate) fn register(t: &mut MethodTable) {
    let write = || ScopeRule::Fixed(scopes::WRITE);
    let read = || ScopeRule::Fixed(scopes::READ);
    t.register(
        "agent",
        ScopeRule::Dynamic(Arc::new(|p: Option<&Value>| {
            let msg = p
                .and_then(|p| p.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if parse_reset(msg).0 {
                scopes::ADMIN
            } else {
                scopes::WRITE
            }
        })),
        agent,
    );
    t.register("agent.wait", write(), agent_wait);
    t.register("chat.send", write(), chat_send);
    t.register("chat.abort", write(), chat_abort);
    t.register("chat.history", read(), chat_history);
    t.register("sessions.list", read(), sessions_list);
    t.register("agents.list", read(), agents_list);
    t.declare_event("agent");
    t.declare_event("chat");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(t: &str) -> crate::config::Config {
        crate::config::Config::parse(std::path::Path::new("/c.json"), t.into()).unwrap()
    }

    #[test]
    fn agent_params_validation_texts() {
        let sch = agent_schema();
        assert_eq!(
            validate_params(&sch, &json!({"message": "hi"})).unwrap_err(),
            "must have required property 'idempotencyKey'"
        );
        assert_eq!(
            validate_params(&sch, &json!({"idempotencyKey": "k"})).unwrap_err(),
            "must have required property 'message'"
        );
        assert_eq!(
            validate_params(
                &sch,
                &json!({"message": "m", "idempotencyKey": "k", "bogus": 1})
            )
            .unwrap_err(),
            "at root: unexpected property 'bogus'"
        );
        assert!(
            validate_params(
                &sch,
                &json!({"message": "m", "idempotencyKey": "k", "timeout": 5, "sessionKey": "agent:main:main"})
            )
            .is_ok()
        );
    }

    #[test]
    fn targets_resolve_and_mismatches_are_rejected() {
        let c = cfg("{}");
        assert_eq!(
            resolve_target(&c, None, None, "agent").unwrap(),
            ("main".into(), "agent:main:main".into())
        );
        assert_eq!(
            resolve_target(&c, None, Some("Work"), "agent").unwrap().1,
            "agent:main:work"
        );
        assert!(resolve_target(&c, Some("ops"), None, "agent").is_err());
        let multi = cfg("{agents:{entries:{main:{},ops:{}}}}");
        assert_eq!(
            resolve_target(&multi, None, Some("agent:ops:x"), "agent").unwrap(),
            ("ops".into(), "agent:ops:x".into())
        );
        let e =
            resolve_target(&multi, Some("main"), Some("agent:ops:x"), "chat.abort").unwrap_err();
        assert_eq!(
            e.message,
            "agentId \"main\" does not match session key \"agent:ops:x\""
        );
        assert_eq!(parse_reset("/new hello"), (true, "hello"));
        assert_eq!(parse_reset("/newbie"), (false, "/newbie"));
        assert_eq!(parse_reset(" /reset"), (true, ""));
    }
}
