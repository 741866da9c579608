//! The RPC method table (name → scope rule → handler) and the core read-only methods.
//!
//! Authorization order per request (docs/protocol.md §3.1): `health` always allowed; node-only
//! methods → `unauthorized role: operator`; admin → allowed; otherwise the method's scope
//! (unknown methods need `operator.admin`); only then the existence check
//! (`unknown method: X`). Other modules add methods with [`MethodTable::register`]
//! (e.g. `agent`, `chat.*`, `secrets.reload`); handlers get a [`Ctx`] and may send interim
//! responses (two-stage `agent`) through [`Ctx::respond_interim`].
// ErrorShape is the wire error; handlers return it by value on purpose.
#![allow(clippy::result_large_err)]
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value, json};

use super::health;
use super::outbound::Outbound;
use super::protocol::{self, ErrorShape, scopes};
use super::state::{ConnInfo, GatewayState};
use crate::config::Config;
use crate::sys::time::now_ms;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, ErrorShape>> + Send>>;
/// A method handler.
pub type Handler = Arc<dyn Fn(Ctx) -> HandlerFuture + Send + Sync>;

/// A synchronous handler whose payload comes already serialized (a hot, cacheable method such
/// as `health`): the session answers it inline without building or serializing a `Value`.
pub type RawHandler = Arc<dyn Fn(&Ctx) -> Result<Arc<str>, ErrorShape> + Send + Sync>;

/// Computes the scope a call needs from its params.
pub type ScopeFn = Arc<dyn Fn(Option<&Value>) -> &'static str + Send + Sync>;

/// Who may call a method.
#[derive(Clone)]
pub enum ScopeRule {
    /// Always allowed (only `health`).
    Exempt,
    /// A fixed operator scope.
    Fixed(&'static str),
    /// Computed from params (e.g. `agent`: write, admin for `/reset`).
    Dynamic(ScopeFn),
}

impl std::fmt::Debug for ScopeRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScopeRule::Exempt => f.write_str("Exempt"),
            ScopeRule::Fixed(s) => write!(f, "Fixed({s})"),
            ScopeRule::Dynamic(_) => f.write_str("Dynamic"),
        }
    }
}

/// One method.
#[derive(Clone)]
pub struct MethodSpec {
    /// Scope rule.
    pub scope: ScopeRule,
    /// Listed in `hello-ok.features.methods`.
    pub advertise: bool,
    /// The handler.
    pub handler: Handler,
    /// The serialized-payload fast path of [`MethodTable::register_raw`] methods (`handler`
    /// answers the same, for callers that want a `Value`).
    pub raw: Option<RawHandler>,
}

impl std::fmt::Debug for MethodSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodSpec")
            .field("scope", &self.scope)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

/// The table.
#[derive(Clone, Default)]
pub struct MethodTable {
    map: HashMap<String, MethodSpec>,
    order: Vec<String>,
    events: Vec<String>,
}

impl std::fmt::Debug for MethodTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodTable")
            .field("methods", &self.order)
            .finish()
    }
}

/// Methods only the `node` role may call (role gate).
pub const NODE_ONLY: &[&str] = &[
    "skills.bins",
    "node.pluginSurface.refresh",
    "node.pluginTools.update",
    "node.skills.update",
    "node.pending.drain",
    "node.pending.pull",
    "node.pending.ack",
    "node.invoke.progress",
    "node.invoke.result",
    "node.event",
];

impl MethodTable {
    /// Registers (or replaces) a method.
    pub fn register<F, Fut>(&mut self, name: &str, scope: ScopeRule, handler: F)
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ErrorShape>> + Send + 'static,
    {
        if !self.map.contains_key(name) {
            self.order.push(name.to_string());
        }
        self.map.insert(
            name.to_string(),
            MethodSpec {
                scope,
                advertise: true,
                handler: Arc::new(move |ctx| Box::pin(handler(ctx))),
                raw: None,
            },
        );
    }

    /// Registers (or replaces) a method whose synchronous handler returns the payload as JSON
    /// text (see [`RawHandler`]).
    pub fn register_raw<F>(&mut self, name: &str, scope: ScopeRule, raw: F)
    where
        F: Fn(&Ctx) -> Result<Arc<str>, ErrorShape> + Send + Sync + 'static,
    {
        let raw: RawHandler = Arc::new(raw);
        let f = raw.clone();
        self.register(name, scope, move |ctx: Ctx| {
            let r = f(&ctx).and_then(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| ErrorShape::unavailable(format!("invalid payload: {e}")))
            });
            std::future::ready(r)
        });
        if let Some(spec) = self.map.get_mut(name) {
            spec.raw = Some(raw);
        }
    }

    /// Declares an event this gateway emits (`hello-ok.features.events`).
    pub fn declare_event(&mut self, name: &str) {
        if !self.events.iter().any(|e| e == name) {
            self.events.push(name.to_string());
        }
    }

    /// Looks a method up.
    pub fn get(&self, name: &str) -> Option<&MethodSpec> {
        self.map.get(name)
    }

    /// Advertised method names, in registration order.
    pub fn method_names(&self) -> Vec<&str> {
        self.order
            .iter()
            .filter(|n| self.map.get(*n).is_some_and(|m| m.advertise))
            .map(String::as_str)
            .collect()
    }

    /// Declared event names.
    pub fn event_names(&self) -> Vec<&str> {
        self.events.iter().map(String::as_str).collect()
    }

    /// Authorization, then existence: the exact errors of §1/§3.1.
    pub fn authorize(
        &self,
        conn: &ConnInfo,
        method: &str,
        params: Option<&Value>,
    ) -> Result<&MethodSpec, ErrorShape> {
        let spec = self.map.get(method);
        if method == "health" {
            return spec.ok_or_else(|| ErrorShape::invalid(format!("unknown method: {method}")));
        }
        if NODE_ONLY.contains(&method) && conn.role != "node" {
            return Err(ErrorShape::invalid(format!(
                "unauthorized role: {}",
                conn.role
            )));
        }
        if conn.role == "node" && !NODE_ONLY.contains(&method) {
            return Err(ErrorShape::invalid("unauthorized role: node"));
        }
        if conn.role != "node" && !conn.has_scope(scopes::ADMIN) {
            let required = match spec.map(|s| &s.scope) {
                Some(ScopeRule::Exempt) => None,
                Some(ScopeRule::Fixed(s)) => Some(*s),
                Some(ScopeRule::Dynamic(f)) => Some(f(params)),
                None => Some(scopes::ADMIN),
            };
            if let Some(r) = required
                && !conn.has_scope(r)
            {
                return Err(ErrorShape::missing_scope(r));
            }
        }
        spec.ok_or_else(|| ErrorShape::invalid(format!("unknown method: {method}")))
    }
}

/// What a handler gets.
#[derive(Clone)]
pub struct Ctx {
    /// Shared state.
    pub state: Arc<GatewayState>,
    /// The calling connection.
    pub conn: Arc<ConnInfo>,
    /// Request id.
    pub req_id: String,
    /// Params (absent → `None`).
    pub params: Option<Value>,
    outbound: Outbound,
    responded: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("conn", &self.conn.id)
            .field("req_id", &self.req_id)
            .finish()
    }
}

impl Ctx {
    /// A context (used by the WS session).
    pub fn new(
        state: Arc<GatewayState>,
        conn: Arc<ConnInfo>,
        req_id: String,
        params: Option<Value>,
        outbound: Outbound,
    ) -> Ctx {
        Ctx {
            state,
            conn,
            req_id,
            params,
            outbound,
            responded: Arc::default(),
        }
    }

    /// Sends the request's final response frame itself (e.g. the two-stage `agent` failure:
    /// `ok:false` with both `payload` and `error`); the dispatcher then sends nothing more for
    /// this request and ignores the handler's return value.
    pub fn respond_final(&self, frame: Value) {
        self.outbound.send_value(&frame);
        self.responded
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Shared flag set by [`Ctx::respond_final`] (read by the dispatcher).
    pub fn responded_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.responded.clone()
    }

    /// Sends an `ok:true` response now, before the handler's final result (two-stage methods:
    /// the `agent` ack with `status:"accepted"`).
    pub fn respond_interim(&self, payload: Value) {
        self.outbound
            .send_value(&protocol::res_ok(&self.req_id, payload));
    }

    /// A param by key.
    pub fn param(&self, key: &str) -> Option<&Value> {
        self.params.as_ref().and_then(|p| p.get(key))
    }
}

/// A numeric param; a non-number is `invalid <method> params: at /<key>: must be number`.
pub fn num_param(ctx: &Ctx, method: &str, key: &str) -> Result<Option<f64>, ErrorShape> {
    match ctx.param(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            ErrorShape::invalid(format!(
                "invalid {method} params: at /{key}: must be number"
            ))
        }),
    }
}

fn config_hash(raw: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    format!(
        "sha256:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(raw.as_bytes()))
    )
}

/// `config.get`'s payload as JSON text, every secret redacted (doc and raw text). The redacted
/// document is serialised once and that text stands for all five document fields (`parsed`,
/// `sourceConfig`, `resolved`, `runtimeConfig`, `config`) and, escaped, for `raw`: building the
/// payload as a `Value` cloned the document five times and serialised each copy (a 50 MB
/// config peaked near 800 MB).
pub fn config_get_text(cfg: &Config) -> String {
    let (redacted, _) = crate::config::redact_secrets(&cfg.doc);
    let doc = crate::config::redacted_raw(&redacted);
    let raw = if cfg.exists {
        Value::String(doc.clone()).to_string()
    } else {
        "null".to_string()
    };
    let hash = Value::String(config_hash(&cfg.raw)).to_string();
    let path = Value::String(cfg.path.display().to_string()).to_string();
    let mut out = String::with_capacity(6 * doc.len() + raw.len() + 512);
    out.push_str(&format!(
        r#"{{"path":{path},"includedPaths":[],"exists":{},"raw":{raw}"#,
        cfg.exists
    ));
    for field in ["parsed", "sourceConfig", "resolved"] {
        out.push_str(&format!(r#","{field}":"#));
        out.push_str(&doc);
    }
    out.push_str(r#","valid":true"#);
    for field in ["runtimeConfig", "config"] {
        out.push_str(&format!(r#","{field}":"#));
        out.push_str(&doc);
    }
    out.push_str(&format!(
        r#","hash":{hash},"issues":[],"warnings":[],"legacyIssues":[],"configRevisionHash":{hash},"appliedConfigHash":{hash}}}"#
    ));
    out
}

/// [`config_get_text`] parsed (tests and the fuzz oracle).
pub fn config_get_payload(cfg: &Config) -> Value {
    serde_json::from_str(&config_get_text(cfg)).expect("config.get payload is JSON")
}

pub(crate) fn models_from_config(cfg: &Config) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(providers) = cfg.get("models.providers").and_then(Value::as_object) {
        for (pname, p) in providers {
            for m in p
                .get("models")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(id) = m.get("id").and_then(Value::as_str) else {
                    continue;
                };
                let mut e = json!({
                    "id": id,
                    "name": m.get("name").and_then(Value::as_str).unwrap_or(id),
                    "provider": pname,
                });
                for k in ["contextWindow", "maxTokens", "reasoning", "input"] {
                    if let Some(v) = m.get(k) {
                        e[k] = v.clone();
                    }
                }
                out.push(e);
            }
        }
    }
    out
}

/// The core table: the read-only methods of issue 2.
pub fn core_table() -> MethodTable {
    let mut t = MethodTable::default();
    let read = || ScopeRule::Fixed(scopes::READ);
    // Cached (protocol: a snapshot up to ~60 s old is fine); see health::HEALTH_CACHE_TTL.
    t.register_raw("health", ScopeRule::Exempt, |ctx: &Ctx| {
        Ok(ctx.state.health_cache.get(&ctx.state).json.clone())
    });
    t.register("logs.tail", read(), |ctx: Ctx| async move {
        let cursor = num_param(&ctx, "logs.tail", "cursor")?.map(|c| c.max(0.0).floor() as u64);
        let limit = num_param(&ctx, "logs.tail", "limit")?
            .map(|l| l as usize)
            .unwrap_or(crate::telemetry::DEFAULT_TAIL_LIMIT);
        let max_bytes = num_param(&ctx, "logs.tail", "maxBytes")?
            .map(|b| b as u64)
            .unwrap_or(crate::telemetry::DEFAULT_TAIL_BYTES);
        match ctx.state.file_log.clone() {
            Some(log) => tokio::task::spawn_blocking(move || log.tail(cursor, limit, max_bytes))
                .await
                .map_err(|e| ErrorShape::unavailable(format!("logs.tail failed: {e}"))),
            None => Err(ErrorShape::unavailable(
                "file logging is disabled in this gateway",
            )),
        }
    });
    t.register("channels.status", read(), |_ctx: Ctx| async move {
        Ok(json!({
            "ts": now_ms(), "channelOrder": [], "channelLabels": {}, "channelDetailLabels": {},
            "channelSystemImages": {}, "channelMeta": [], "channels": {}, "channelAccounts": {},
            "channelDefaultAccountId": {}, "statusIssues": [],
        }))
    });
    t.register("status", read(), |ctx: Ctx| async move {
        let s = &ctx.state;
        let cfg = s.config();
        let default_agent = s.features.default_agent_id(&cfg);
        Ok(json!({
            "runtimeVersion": crate::VERSION,
            "heartbeat": {"defaultAgentId": default_agent, "agents": []},
            "channelSummary": [],
            "queuedSystemEvents": [],
            "degradedSecretOwners": s.reload.secrets().degraded(),
            "configReload": s.reload.status_json(),
            "degradedPlugins": [],
            "sessions": {"paths": [], "count": 0, "recent": [], "byAgent": []},
            "eventLoop": s.event_loop.snapshot(),
            "processMemory": health::process_memory(),
            "pid": std::process::id(),
            "uptimeMs": s.uptime_ms(),
            "connections": s.connection_count(),
            "handover": s.handover.status_json(),
            "shutdownBudget": {"timeoutMs": s.settings.drain_timeout.as_millis() as u64},
        }))
    });
    t.register_raw("config.get", read(), |ctx: &Ctx| {
        Ok(Arc::from(config_get_text(&ctx.state.config())))
    });
    t.register("models.list", read(), |ctx: Ctx| async move {
        Ok(json!({"models": models_from_config(&ctx.state.config())}))
    });
    // The agent wing replaces this (the slot keeps the advertised method order).
    t.register("agents.list", read(), |ctx: Ctx| async move {
        let cfg = ctx.state.config();
        Ok(json!({
            "defaultId": ctx.state.features.default_agent_id(&cfg), "mainKey": "main",
            "scope": "per-sender", "agents": [],
        }))
    });
    t.register("last-heartbeat", read(), |ctx: Ctx| async move {
        Ok(ctx
            .state
            .last_heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or(Value::Null))
    });
    t.register("node.list", read(), |_ctx: Ctx| async move {
        Ok(json!({"ts": now_ms(), "nodes": []}))
    });
    t.register("gateway.identity.get", read(), |ctx: Ctx| async move {
        Ok(json!({
            "deviceId": ctx.state.identity.device_id,
            "publicKey": ctx.state.identity.public_key,
        }))
    });
    t.register("system-presence", read(), |ctx: Ctx| async move {
        Ok(Value::Array(ctx.state.presence_list()))
    });
    t.register("system.info", read(), |ctx: Ctx| async move {
        Ok(health::system_info(&ctx.state))
    });
    super::device::methods::register(&mut t);
    super::config_methods::register(&mut t);
    super::boot_methods::register(&mut t);
    for e in [
        "connect.challenge",
        "tick",
        "health",
        "presence",
        "shutdown",
        "heartbeat",
    ] {
        t.declare_event(e);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(scopes: &[&str], role: &str) -> ConnInfo {
        ConnInfo {
            id: "c".into(),
            client_id: "cli".into(),
            client_mode: "cli".into(),
            client_version: "1".into(),
            platform: "linux".into(),
            device_family: None,
            display_name: None,
            instance_id: None,
            role: role.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            caps: vec![],
            remote: "127.0.0.1:1".parse().unwrap(),
            connected_at_ms: 0,
            auth_method: "token",
            device_id: None,
        }
    }

    #[test]
    fn authorization_order() {
        let t = core_table();
        let none = conn(&[], "operator");
        assert!(t.authorize(&none, "health", None).is_ok());
        assert_eq!(
            t.authorize(&none, "status", None).unwrap_err().message,
            "missing scope: operator.read"
        );
        // scope check before existence: non-admin gets FORBIDDEN admin for unknown methods
        let read = conn(&[scopes::READ], "operator");
        let e = t.authorize(&read, "no.such", None).unwrap_err();
        assert_eq!(e.code, "FORBIDDEN");
        assert_eq!(e.message, "missing scope: operator.admin");
        let admin = conn(&[scopes::ADMIN], "operator");
        assert_eq!(
            t.authorize(&admin, "no.such", None).unwrap_err().message,
            "unknown method: no.such"
        );
        assert_eq!(
            t.authorize(&admin, "node.event", None).unwrap_err().message,
            "unauthorized role: operator"
        );
        assert!(t.authorize(&read, "status", None).is_ok());
        let write = conn(&[scopes::WRITE], "operator");
        assert!(t.authorize(&write, "config.get", None).is_ok());
        assert!(t.method_names().contains(&"system.info"));
    }

    #[test]
    fn config_get_redacts() {
        let raw = "{gateway:{mode:'local',auth:{token:'tok-123'}}}".to_string();
        let cfg = Config::parse(std::path::Path::new("/x.json"), raw).unwrap();
        let v = config_get_payload(&cfg);
        let s = v.to_string();
        assert!(!s.contains("tok-123"), "{s}");
        assert_eq!(v["parsed"]["gateway"]["mode"], "local");
        assert!(v["raw"].as_str().unwrap().contains(crate::config::REDACTED));
        // Every field of upstream's shape, in its order; the document fields are one text.
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "path",
                "includedPaths",
                "exists",
                "raw",
                "parsed",
                "sourceConfig",
                "resolved",
                "valid",
                "runtimeConfig",
                "config",
                "hash",
                "issues",
                "warnings",
                "legacyIssues",
                "configRevisionHash",
                "appliedConfigHash"
            ]
        );
        for f in ["sourceConfig", "resolved", "runtimeConfig", "config"] {
            assert_eq!(v[f], v["parsed"], "{f}");
        }
        assert_eq!(v["hash"], v["configRevisionHash"]);
        let missing = Config::load(std::path::Path::new("/nonexistent/openclaw.json")).unwrap();
        let v = config_get_payload(&missing);
        assert_eq!(v["raw"], Value::Null);
        assert_eq!(v["exists"], false);
    }
}
