//! `device.pair.list|approve|reject|remove`, `device.token.rotate|revoke` and the
//! `device.pair.requested|resolved` events (all `operator.pairing`; upstream's shapes and
//! refusal strings). A caller authenticated by a device token manages only its own device
//! unless it also holds `operator.admin`; non-operator roles need `operator.admin`.
// ErrorShape is the wire error; handlers return it by value on purpose.
#![allow(clippy::result_large_err)]
use serde_json::{Value, json};

use super::store::{Paired, TokenRefused};
use crate::gateway::methods::{Ctx, MethodTable, ScopeRule};
use crate::gateway::protocol::{ErrorShape, scopes};
use crate::gateway::state::{ConnInfo, GatewayState};
use crate::sys::time::now_ms;

/// Close code and reason for sessions whose device grant went away (upstream's).
pub(crate) const REVOKED_CLOSE: (u16, &str) = (4001, "device removed");

/// Registers the methods and events.
pub(crate) fn register(t: &mut MethodTable) {
    let pairing = || ScopeRule::Fixed(scopes::PAIRING);
    t.register("device.pair.list", pairing(), |ctx: Ctx| async move {
        let (pending, paired) = ctx.state.devices.list(now_ms());
        let own = own_device(&ctx.conn);
        let pending: Vec<Value> = pending
            .iter()
            .filter(|p| own.is_none_or(|d| d == p.device_id))
            .map(|p| serde_json::to_value(p).unwrap_or_default())
            .collect();
        let paired: Vec<Value> = paired
            .iter()
            .filter(|p| own.is_none_or(|d| d == p.device_id))
            .map(|p| redact(p, Some(connected(&ctx.state, &p.device_id))))
            .collect();
        Ok(json!({"pending": pending, "paired": paired}))
    });
    t.register("device.pair.approve", pairing(), |ctx: Ctx| async move {
        let id = str_param(&ctx, "device.pair.approve", "requestId")?;
        let now = now_ms();
        let (pending, _) = ctx.state.devices.list(now);
        let Some(req) = pending.iter().find(|p| p.request_id == id) else {
            return Err(ErrorShape::invalid("unknown requestId"));
        };
        let admin = ctx.conn.has_scope(scopes::ADMIN);
        let denied = (!admin && own_device(&ctx.conn).is_some_and(|d| d != req.device_id))
            || (!admin && req.roles.iter().any(|r| r != "operator"))
            || req.scopes.iter().any(|s| !ctx.conn.has_scope(s));
        if denied {
            return Err(ErrorShape::invalid("device pairing approval denied"));
        }
        let dev = ctx
            .state
            .devices
            .approve(&id, None, now)
            .map_err(|e| ErrorShape::unavailable(format!("device pairing not saved: {e}")))?
            .ok_or_else(|| ErrorShape::invalid("unknown requestId"))?;
        tracing::info!(device = %dev.device_id, role = %dev.role, "device pairing approved");
        super::resolved(&ctx.state, &id, &dev.device_id, "approved", now_ms());
        Ok(json!({"requestId": id, "device": redact(&dev, None)}))
    });
    t.register("device.pair.reject", pairing(), |ctx: Ctx| async move {
        let id = str_param(&ctx, "device.pair.reject", "requestId")?;
        let now = now_ms();
        let (pending, _) = ctx.state.devices.list(now);
        if let Some(req) = pending.iter().find(|p| p.request_id == id)
            && !ctx.conn.has_scope(scopes::ADMIN)
            && own_device(&ctx.conn).is_some_and(|d| d != req.device_id)
        {
            return Err(ErrorShape::invalid("device pairing rejection denied"));
        }
        let req = ctx
            .state
            .devices
            .reject(&id, now)
            .map_err(|e| ErrorShape::unavailable(format!("device pairing not saved: {e}")))?
            .ok_or_else(|| ErrorShape::invalid("unknown requestId"))?;
        super::resolved(&ctx.state, &id, &req.device_id, "rejected", now_ms());
        Ok(json!({"requestId": id, "deviceId": req.device_id}))
    });
    t.register("device.pair.remove", pairing(), |ctx: Ctx| async move {
        let id = str_param(&ctx, "device.pair.remove", "deviceId")?;
        if !may_manage(&ctx.conn, &id) {
            return Err(ErrorShape::invalid("device pairing removal denied"));
        }
        let removed = ctx
            .state
            .devices
            .remove(&id)
            .map_err(|e| ErrorShape::unavailable(format!("device pairing not saved: {e}")))?
            .ok_or_else(|| ErrorShape::invalid("unknown deviceId"))?;
        tracing::info!(device = %id, "device pairing removed");
        let out = json!({"deviceId": removed.device_id, "removedAtMs": now_ms()});
        Ok(answer_then_disconnect(&ctx, out, &id, None))
    });
    t.register("device.token.rotate", pairing(), |ctx: Ctx| async move {
        let id = str_param(&ctx, "device.token.rotate", "deviceId")?;
        let role = str_param(&ctx, "device.token.rotate", "role")?;
        let wanted: Option<Vec<String>> = ctx
            .params
            .as_ref()
            .and_then(|p| p.get("scopes"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect());
        let denied = || ErrorShape::invalid("device token rotation denied");
        if !may_manage(&ctx.conn, &id) || (role != "operator" && !ctx.conn.has_scope(scopes::ADMIN)) {
            return Err(denied());
        }
        let target = ctx
            .state
            .devices
            .paired(&id)
            .and_then(|d| d.tokens.get(&role).map(|t| t.scopes.clone()));
        let check = wanted.clone().or(target).unwrap_or_default();
        if role == "operator" && check.iter().any(|s| !ctx.conn.has_scope(s)) {
            return Err(denied());
        }
        let now = now_ms();
        let (token, rec) = ctx
            .state
            .devices
            .rotate(&id, &role, wanted.as_deref(), now)
            .map_err(|r| {
                tracing::warn!(device = %id, role = %role, reason = token_reason(r), "device token rotation denied");
                denied()
            })?;
        tracing::info!(device = %id, role = %rec.role, scopes = %rec.scopes.join(","), "device token rotated");
        let in_band = own_device(&ctx.conn).is_some_and(|d| d == id);
        let mut out = json!({"deviceId": id, "role": rec.role});
        if in_band {
            out["token"] = token.into();
        }
        out["scopes"] = json!(rec.scopes);
        out["rotatedAtMs"] = rec.issued_at_ms().into();
        out["tokenDelivery"] = if in_band { "in-band" } else { "withheld-cross-device" }.into();
        Ok(answer_then_disconnect(&ctx, out, &id, Some(&role)))
    });
    t.register("device.token.revoke", pairing(), |ctx: Ctx| async move {
        let id = str_param(&ctx, "device.token.revoke", "deviceId")?;
        let role = str_param(&ctx, "device.token.revoke", "role")?;
        let denied = || ErrorShape::invalid("device token revocation denied");
        if !may_manage(&ctx.conn, &id) || (role != "operator" && !ctx.conn.has_scope(scopes::ADMIN)) {
            return Err(denied());
        }
        if let Some(t) = ctx.state.devices.paired(&id).and_then(|d| d.tokens.get(&role).cloned())
            && role == "operator"
            && t.scopes.iter().any(|s| !ctx.conn.has_scope(s))
        {
            return Err(denied());
        }
        let rec = ctx
            .state
            .devices
            .revoke(&id, &role, now_ms())
            .map_err(|r| {
                tracing::warn!(device = %id, role = %role, reason = token_reason(r), "device token revocation denied");
                denied()
            })?;
        tracing::info!(device = %id, role = %role, "device token revoked");
        let out = json!({"deviceId": id, "role": rec.role, "revokedAtMs": rec.revoked_at_ms.unwrap_or_else(now_ms)});
        Ok(answer_then_disconnect(&ctx, out, &id, Some(&role)))
    });
    for e in ["device.pair.requested", "device.pair.resolved"] {
        t.declare_event(e);
    }
}

fn token_reason(r: TokenRefused) -> &'static str {
    match r {
        TokenRefused::UnknownDevice => "unknown-device",
        TokenRefused::RoleNotApproved => "role-not-approved",
        TokenRefused::ScopeOutsideApproval => "scope-outside-approval",
        TokenRefused::NoToken => "no-token",
    }
}

/// The caller's own device when it is a non-admin device-token session (self-scoped).
fn own_device(conn: &ConnInfo) -> Option<&str> {
    (conn.auth_method == "device-token" && !conn.has_scope(scopes::ADMIN))
        .then_some(conn.device_id.as_deref())
        .flatten()
}

fn may_manage(conn: &ConnInfo, target: &str) -> bool {
    own_device(conn).is_none_or(|d| d == target)
}

fn connected(state: &GatewayState, device_id: &str) -> bool {
    state
        .connections()
        .iter()
        .any(|c| c.device_id.as_deref() == Some(device_id))
}

/// Answers first (a caller managing its own device still gets the answer, e.g. its rotated
/// token), then closes the device's sessions. The returned value is ignored by the dispatcher.
fn answer_then_disconnect(ctx: &Ctx, out: Value, device_id: &str, role: Option<&str>) -> Value {
    ctx.respond_final(crate::gateway::protocol::res_ok(&ctx.req_id, out));
    disconnect(&ctx.state, device_id, role);
    Value::Null
}

/// Closes the sessions of `device_id` (of `role`, when given).
pub(crate) fn disconnect(state: &GatewayState, device_id: &str, role: Option<&str>) -> usize {
    state.close_where(
        |c| c.device_id.as_deref() == Some(device_id) && role.is_none_or(|r| c.role == r),
        REVOKED_CLOSE.0,
        REVOKED_CLOSE.1,
    )
}

/// A paired device without token hashes or the approval baseline (upstream's redaction).
pub(crate) fn redact(p: &Paired, connected: Option<bool>) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("approvedScopes");
        o.remove("tokens");
        if let Some(c) = connected {
            o.insert("connected".into(), c.into());
        }
        let tokens: Vec<Value> = p
            .tokens
            .values()
            .map(|t| {
                let mut s =
                    json!({"role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at_ms});
                if let Some(r) = t.rotated_at_ms {
                    s["rotatedAtMs"] = r.into();
                }
                if let Some(r) = t.revoked_at_ms {
                    s["revokedAtMs"] = r.into();
                }
                s
            })
            .collect();
        if !tokens.is_empty() {
            o.insert("tokens".into(), tokens.into());
        }
    }
    v
}

fn str_param(ctx: &Ctx, method: &str, key: &str) -> Result<String, ErrorShape> {
    match ctx.params.as_ref().and_then(|p| p.get(key)) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(_) => Err(ErrorShape::invalid(format!(
            "invalid {method} params: at /{key}: must be non-empty string"
        ))),
        None => Err(ErrorShape::invalid(format!(
            "invalid {method} params: must have required property '{key}'"
        ))),
    }
}
