//! Config reload planning, all pure: diff the running config against a candidate, classify every
//! changed path with the published hot/restart table, and decide what the gateway does for the
//! configured `gateway.reload.mode`.
//!
//! The pipeline for each trigger (file event, SIGHUP, `systemctl reload`) is
//! parse → validate → [`plan`] (diff + [`classify`]) → [`decide`] → apply. Only the last step
//! touches the running gateway; it lives with the gateway state.
//!
//! Classification rules ([`RELOAD_RULES`], rendered for the README by [`rules_markdown`]):
//! - paths are compared leaf by leaf (objects are descended, arrays compared whole, `null` equals
//!   a missing key);
//! - the **longest matching dotted prefix** wins;
//! - a path no rule matches needs a restart (unknown ⇒ restart, upstream's rule);
//! - `gateway.auth.token`/`gateway.auth.password` rotate hot while the *effective* auth mode is
//!   unchanged (sessions authenticated with a rotated-out secret are closed with 4001
//!   `gateway auth changed`); a change of the effective auth mode needs a restart.
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::paths::Env;

/// `gateway.reload.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keep watching and validating, never apply: differences are reported as pending.
    Off,
    /// Apply hot-safe changes; restart-required ones stay pending (shown in `status`).
    Hot,
    /// Restart on every change that has an effect (hot-safe ones included).
    Restart,
    /// Apply hot-safe changes in place, restart when a change requires it (default).
    #[default]
    Hybrid,
}

impl Mode {
    /// Parses the config value; `None` is the default (`hybrid`).
    pub fn parse(v: Option<&str>) -> Result<Mode, String> {
        match v {
            None => Ok(Mode::Hybrid),
            Some("off") => Ok(Mode::Off),
            Some("hot") => Ok(Mode::Hot),
            Some("restart") => Ok(Mode::Restart),
            Some("hybrid") => Ok(Mode::Hybrid),
            Some(other) => Err(format!(
                "gateway.reload.mode: unknown mode {other:?} (use off, hot, restart or hybrid)"
            )),
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Hot => "hot",
            Mode::Restart => "restart",
            Mode::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one changed path needs. Ordered: a plan needs the maximum of its paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// No runtime effect (bookkeeping such as `meta.*`): adopted silently.
    None,
    /// Applied in place without dropping connections.
    Hot,
    /// Takes effect only after a restart.
    Restart,
}

/// A rule of the published table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Always [`Class::None`].
    None,
    /// Always [`Class::Hot`].
    Hot,
    /// Always [`Class::Restart`].
    Restart,
    /// `gateway.auth.token`/`password`: hot while the effective auth mode is unchanged.
    AuthSecret,
    /// `gateway.auth.mode`: restart when the effective auth mode changes, else no effect.
    AuthMode,
}

impl Rule {
    #[cfg(test)]
    fn describe(self) -> &'static str {
        match self {
            Rule::None => "no effect",
            Rule::Hot => "hot",
            Rule::Restart => "restart",
            Rule::AuthSecret => "hot while the effective auth mode is unchanged, else restart",
            Rule::AuthMode => "restart when the effective auth mode changes",
        }
    }
}

/// The published hot/restart table: `(dotted prefix, rule, note)`. Longest prefix wins; a path
/// matching no prefix needs a restart. Derived from upstream's planner (docs/lifecycle.md §8), with
/// listener, auth-mode and TLS settings kept restart-required.
pub(crate) const RELOAD_RULES: &[(&str, Rule, &str)] = &[
    // Bookkeeping.
    ("$schema", Rule::None, "editor metadata"),
    ("meta", Rule::None, "written by our own config writes"),
    // Runtime sections read on use.
    ("agents", Rule::Hot, "agent defaults, heartbeat"),
    (
        "models",
        Rule::Hot,
        "providers and keys (SecretRefs re-resolved)",
    ),
    ("auth", Rule::Hot, "model auth profiles"),
    ("hooks", Rule::Hot, ""),
    ("cron", Rule::Hot, ""),
    ("session", Rule::Hot, ""),
    ("messages", Rule::Hot, ""),
    ("tools", Rule::Hot, ""),
    ("skills", Rule::Hot, ""),
    ("plugins", Rule::Hot, ""),
    ("ui", Rule::Hot, ""),
    ("logging", Rule::Hot, ""),
    ("browser", Rule::Hot, "no browser listener in this gateway"),
    ("discovery", Rule::Restart, ""),
    ("discovery.mdns.mode", Rule::Hot, ""),
    (
        "secrets",
        Rule::Hot,
        "providers/defaults: all SecretRefs are re-resolved",
    ),
    ("secrets.egressProxy", Rule::Restart, ""),
    // The gateway section: restart unless listed as hot.
    (
        "gateway",
        Rule::Restart,
        "anything under gateway not listed here",
    ),
    ("gateway.mode", Rule::Restart, ""),
    ("gateway.port", Rule::Restart, "the listener"),
    ("gateway.bind", Rule::Restart, "the listener"),
    ("gateway.customBindHost", Rule::Restart, "the listener"),
    (
        "gateway.tls",
        Rule::Restart,
        "certificate/key paths and TLS settings",
    ),
    ("gateway.tailscale", Rule::Restart, ""),
    ("gateway.auth", Rule::Restart, "auth keys not listed here"),
    ("gateway.auth.mode", Rule::AuthMode, ""),
    (
        "gateway.auth.token",
        Rule::AuthSecret,
        "old sessions closed with 4001",
    ),
    (
        "gateway.auth.password",
        Rule::AuthSecret,
        "old sessions closed with 4001",
    ),
    ("gateway.auth.allowTailscale", Rule::Hot, ""),
    ("gateway.auth.identityScopes", Rule::Hot, ""),
    ("gateway.auth.trustedProxy", Rule::Hot, ""),
    (
        "gateway.auth.rateLimit",
        Rule::Hot,
        "applies to new attempts",
    ),
    (
        "gateway.reload",
        Rule::Hot,
        "the mode applies to the same event",
    ),
    ("gateway.remote", Rule::Hot, "client-side settings"),
    ("gateway.publicOrigin", Rule::Hot, ""),
    ("gateway.http", Rule::Restart, ""),
    ("gateway.http.endpoints", Rule::Hot, ""),
    (
        "gateway.http.securityHeaders.strictTransportSecurity",
        Rule::Hot,
        "",
    ),
    ("gateway.controlUi", Rule::Hot, "origins and UI options"),
    ("gateway.controlUi.enabled", Rule::Restart, "serving paths"),
    ("gateway.controlUi.basePath", Rule::Restart, "serving paths"),
    ("gateway.controlUi.root", Rule::Restart, "serving paths"),
    ("gateway.tools", Rule::Hot, ""),
    ("gateway.nodes", Rule::Hot, ""),
    ("gateway.cliAgents", Rule::Hot, ""),
    ("gateway.push.apns.relay", Rule::Hot, ""),
    ("gateway.terminal", Rule::Hot, ""),
    ("gateway.roles", Rule::Hot, ""),
    ("gateway.trustedProxies", Rule::Hot, ""),
    ("gateway.allowRealIpFallback", Rule::Hot, ""),
];

/// The rule deciding `path` (longest matching prefix) and the prefix that matched, or `None`
/// when no rule matches (unknown ⇒ restart).
pub(crate) fn rule_for(path: &[String]) -> Option<(&'static str, Rule)> {
    let mut best: Option<(usize, &'static str, Rule)> = None;
    for (prefix, rule, _) in RELOAD_RULES {
        let segs: Vec<&str> = prefix.split('.').collect();
        let matches = segs.len() <= path.len() && segs.iter().zip(path).all(|(a, b)| *a == b);
        if matches && best.is_none_or(|(n, _, _)| segs.len() > n) {
            best = Some((segs.len(), prefix, *rule));
        }
    }
    best.map(|(_, p, r)| (p, r))
}

/// Classifies one changed path. `auth_mode_changed` is whether the effective auth mode of the
/// candidate differs from the running one.
pub(crate) fn classify(path: &[String], auth_mode_changed: bool) -> Class {
    match rule_for(path).map(|(_, r)| r) {
        None | Some(Rule::Restart) => Class::Restart,
        Some(Rule::None) => Class::None,
        Some(Rule::Hot) => Class::Hot,
        Some(Rule::AuthSecret) => {
            if auth_mode_changed {
                Class::Restart
            } else {
                Class::Hot
            }
        }
        Some(Rule::AuthMode) => {
            if auth_mode_changed {
                Class::Restart
            } else {
                Class::None
            }
        }
    }
}

/// A changed path: its segments, and their dotted rendering for logs and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigPath(pub Vec<String>);

impl ConfigPath {
    #[cfg(test)]
    /// The path from dotted text (for tests and tables).
    pub(crate) fn dotted(s: &str) -> ConfigPath {
        ConfigPath(s.split('.').map(str::to_string).collect())
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// Every leaf path whose value differs between `old` and `new`. Objects are descended (also
/// when only one side has them, so a new section is classified key by key), arrays and scalars
/// compared whole; `null`, `{}` and a missing key are equal. The result is sorted.
pub(crate) fn diff(old: &Value, new: &Value) -> Vec<ConfigPath> {
    let mut out = Vec::new();
    let mut prefix = Vec::new();
    diff_into(Some(old), Some(new), &mut prefix, &mut out);
    // Sorted, so the order does not depend on map ordering (serde_json preserve_order).
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `null` and `{}` mean the same as an absent key (serde defaults apply to all three).
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
}

fn diff_into(
    old: Option<&Value>,
    new: Option<&Value>,
    prefix: &mut Vec<String>,
    out: &mut Vec<ConfigPath>,
) {
    let (old, new) = (present(old), present(new));
    match (old, new) {
        (None, None) => {}
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                prefix.push(k.clone());
                diff_into(a.get(k), b.get(k), prefix, out);
                prefix.pop();
            }
        }
        (Some(a), Some(b)) if a == b => {}
        (a, b) => {
            // One side is an object and the other is not (or absent): report the path itself when
            // the other side holds a value, and every leaf of the object side.
            let a_obj = a.and_then(Value::as_object).filter(|o| !o.is_empty());
            let b_obj = b.and_then(Value::as_object).filter(|o| !o.is_empty());
            let other_scalar = match (a_obj, b_obj) {
                (Some(_), _) => b.is_some(),
                (_, Some(_)) => a.is_some(),
                _ => true,
            };
            if other_scalar {
                out.push(ConfigPath(prefix.clone()));
            }
            // Leaves of the object side (at most one side is a non-empty object here).
            if let Some(o) = a_obj {
                for (k, v) in o {
                    prefix.push(k.clone());
                    diff_into(Some(v), None, prefix, out);
                    prefix.pop();
                }
            }
            if let Some(o) = b_obj {
                for (k, v) in o {
                    prefix.push(k.clone());
                    diff_into(None, Some(v), prefix, out);
                    prefix.pop();
                }
            }
        }
    }
}

/// The auth mode a config runs with: `gateway.auth.mode` when set, else `token` when a token is
/// configured (config or `OPENCLAW_GATEWAY_TOKEN`), else `password` likewise, else `none`.
pub(crate) fn effective_auth_mode(doc: &Value, env: &dyn Env) -> String {
    let auth = doc.get("gateway").and_then(|g| g.get("auth"));
    let field = |k: &str| auth.and_then(|a| a.get(k)).filter(|v| !v.is_null());
    if let Some(m) = field("mode").and_then(Value::as_str) {
        return m.to_string();
    }
    let set = |v: Option<&Value>| match v {
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
        None => false,
    };
    if set(field("token")) || env.var("OPENCLAW_GATEWAY_TOKEN").is_some() {
        "token".into()
    } else if set(field("password")) || env.var("OPENCLAW_GATEWAY_PASSWORD").is_some() {
        "password".into()
    } else {
        "none".into()
    }
}

/// One classified change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Dotted path (`gateway.port`).
    pub path: String,
    /// What it needs.
    pub class: Class,
    /// The table prefix that decided it, `None` for an unknown path.
    pub rule: Option<&'static str>,
    /// The path's segments (for merging).
    #[serde(skip)]
    pub segments: Vec<String>,
}

/// All changes between the running config and a candidate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Changed paths in document order.
    pub changes: Vec<Change>,
    /// The effective auth mode changed (token/password rotations then need a restart).
    pub auth_mode_changed: bool,
}

impl Plan {
    /// The highest class among the changes (`None` for an empty plan).
    pub fn max_class(&self) -> Class {
        self.changes
            .iter()
            .map(|c| c.class)
            .max()
            .unwrap_or(Class::None)
    }

    /// Changes of one class.
    pub fn of(&self, class: Class) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.class == class)
    }

    /// Dotted paths of one class.
    pub fn paths(&self, class: Class) -> Vec<String> {
        self.of(class).map(|c| c.path.clone()).collect()
    }

    /// True when a gateway auth secret (token/password) changes hot: sessions authenticated
    /// with the old secret must then be closed with 4001.
    pub fn rotates_auth_secret(&self) -> bool {
        self.changes.iter().any(|c| {
            c.class == Class::Hot
                && matches!(
                    c.segments.get(..3),
                    Some([a, b, c]) if a == "gateway" && b == "auth" && (c == "token" || c == "password")
                )
        })
    }

    /// A short human list for logs: `a, b, c (+N more)`.
    pub fn summary(paths: &[String]) -> String {
        const MAX: usize = 6;
        let mut s = paths
            .iter()
            .take(MAX)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if paths.len() > MAX {
            s.push_str(&format!(" (+{} more)", paths.len() - MAX));
        }
        s
    }
}

/// Diffs two documents and classifies each changed path.
pub(crate) fn plan(old: &Value, new: &Value, env: &dyn Env) -> Plan {
    let auth_mode_changed = effective_auth_mode(old, env) != effective_auth_mode(new, env);
    let changes = diff(old, new)
        .into_iter()
        .map(|p| Change {
            path: p.to_string(),
            class: classify(&p.0, auth_mode_changed),
            rule: rule_for(&p.0).map(|(r, _)| r),
            segments: p.0,
        })
        .collect();
    Plan {
        changes,
        auth_mode_changed,
    }
}

/// What the gateway does with a valid candidate config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Action {
    /// The candidate equals the running config: nothing to do.
    Unchanged,
    /// Mode `off`: keep running as is; every difference is reported as pending.
    Ignore,
    /// Swap the candidate in, in place (hot and no-effect changes only, or mode `restart` with
    /// only no-effect changes).
    Apply,
    /// Mode `hot`: swap in the hot and no-effect changes, keep the running values of the
    /// restart-required ones and report those as pending.
    ApplyWithPending,
    /// Restart the gateway (re-reading the config from disk).
    Restart,
}

/// The mode table (pure; table-tested):
///
/// | mode    | no change | only no-effect | hot (no restart) | restart-required |
/// |---------|-----------|----------------|------------------|------------------|
/// | off     | Unchanged | Ignore         | Ignore           | Ignore           |
/// | hot     | Unchanged | Apply          | Apply            | ApplyWithPending |
/// | restart | Unchanged | Apply          | Restart          | Restart          |
/// | hybrid  | Unchanged | Apply          | Apply            | Restart          |
pub(crate) fn decide(mode: Mode, plan: &Plan) -> Action {
    if plan.changes.is_empty() {
        return Action::Unchanged;
    }
    match (mode, plan.max_class()) {
        (Mode::Off, _) => Action::Ignore,
        (_, Class::None) => Action::Apply,
        (Mode::Hot, Class::Hot) | (Mode::Hybrid, Class::Hot) => Action::Apply,
        (Mode::Hot, Class::Restart) => Action::ApplyWithPending,
        (Mode::Restart, _) | (Mode::Hybrid, Class::Restart) => Action::Restart,
    }
}

/// The document to run with under [`Action::ApplyWithPending`]: `new`, with the values at
/// `keep_old` paths taken from `old` (removed where `old` has none).
pub(crate) fn merge_keeping(old: &Value, new: &Value, keep_old: &[&[String]]) -> Value {
    let mut out = new.clone();
    for path in keep_old {
        let old_v = path
            .iter()
            .try_fold(old, |v, k| v.as_object().and_then(|o| o.get(k)));
        set_path(&mut out, path, old_v.cloned());
    }
    out
}

fn set_path(root: &mut Value, path: &[String], v: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = root;
    for k in parents {
        if !cur.is_object() {
            if v.is_none() {
                return;
            }
            *cur = Value::Object(Map::new());
        }
        let obj = cur.as_object_mut().expect("object");
        if v.is_none() && !obj.contains_key(k) {
            return;
        }
        cur = obj.entry(k.clone()).or_insert(Value::Object(Map::new()));
    }
    if !cur.is_object() {
        if v.is_none() {
            return;
        }
        *cur = Value::Object(Map::new());
    }
    let obj = cur.as_object_mut().expect("object");
    match v {
        Some(v) => {
            obj.insert(last.clone(), v);
        }
        None => {
            obj.remove(last);
        }
    }
}

/// What started an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// The config file changed on disk.
    File,
    /// SIGHUP (`systemctl reload`, `kill -HUP`).
    Signal,
}

/// The last rejected edit, as `status`/`health`/doctor show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadError {
    /// The config file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong (never a secret value).
    pub message: String,
    /// When it was seen (epoch ms).
    pub at_ms: u64,
}

impl ReloadError {
    /// From a load/validation error of `file`.
    pub fn from_error(file: &std::path::Path, e: &crate::error::Error, at_ms: u64) -> ReloadError {
        match e {
            crate::error::Error::ConfigSyntax {
                path,
                line,
                column,
                message,
            } => ReloadError {
                file: path.display().to_string(),
                line: Some(*line),
                column: Some(*column),
                message: message.clone(),
                at_ms,
            },
            other => ReloadError {
                file: file.display().to_string(),
                line: None,
                column: None,
                message: other.to_string(),
                at_ms,
            },
        }
    }

    /// `file:line:col: message` (the one warning line).
    pub fn display(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", self.file, self.message),
            _ => format!("{}: {}", self.file, self.message),
        }
    }
}

/// Outcome of the last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReloadResult {
    /// Nothing differed.
    Unchanged,
    /// Mode off: differences recorded as pending.
    Ignored,
    /// Applied in place.
    Applied,
    /// Hot part applied; restart-required part pending.
    AppliedWithPending,
    /// Mode `hot`, only restart-required changes: nothing applied, all pending.
    Pending,
    /// A restart was started.
    Restart,
    /// The candidate was rejected (invalid file, failed validation or gateway auth secret);
    /// the last good config stays active.
    Rejected,
}

/// The reload bookkeeping of a running gateway: the `configReload` object of `status` and
/// `health`. It outlives in-process restarts, so counters keep counting across them.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Mode of the running config.
    pub mode: Mode,
    /// How restarts are carried out.
    pub supervisor: Option<Supervisor>,
    /// The file watcher is running (else only SIGHUP reloads).
    pub watching: bool,
    /// Why the watcher is not running.
    pub watch_error: Option<String>,
    /// Bumped whenever a new config becomes active (hot apply or restart).
    pub generation: u64,
    /// Evaluations so far.
    pub evaluations: u64,
    /// In-process restarts so far.
    pub restarts: u64,
    /// The last evaluation's outcome.
    pub last_result: Option<ReloadResult>,
    /// What triggered it.
    pub last_trigger: Option<Trigger>,
    /// When (epoch ms).
    pub last_at_ms: Option<u64>,
    /// Paths the last applied reload changed.
    pub last_changed: Vec<String>,
    /// Restart-required paths that differ between the file and the running config.
    pub pending: Vec<String>,
    /// The last rejected edit; cleared once a valid file is read.
    pub last_error: Option<ReloadError>,
    rejected_hash: Option<u64>,
}

fn text_hash(raw: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    raw.hash(&mut h);
    h.finish()
}

impl ReloadStatus {
    /// Records a rejected candidate. Returns true when this content was not rejected before,
    /// i.e. when the caller should log its (single) warning.
    pub fn record_rejected(&mut self, raw: &str, err: ReloadError, trigger: Trigger) -> bool {
        let h = text_hash(raw);
        let fresh = self.rejected_hash != Some(h) || self.last_error.is_none();
        self.rejected_hash = Some(h);
        self.last_at_ms = Some(err.at_ms);
        self.last_error = Some(err);
        self.last_result = Some(ReloadResult::Rejected);
        self.last_trigger = Some(trigger);
        self.evaluations += 1;
        fresh
    }

    /// Records a valid candidate's outcome (clears the last error).
    pub fn record(&mut self, result: ReloadResult, trigger: Trigger, plan: &Plan, at_ms: u64) {
        self.evaluations += 1;
        self.last_error = None;
        self.rejected_hash = None;
        self.last_result = Some(result);
        self.last_trigger = Some(trigger);
        self.last_at_ms = Some(at_ms);
        match result {
            ReloadResult::Unchanged => self.pending.clear(),
            ReloadResult::Ignored => {
                self.pending = plan.changes.iter().map(|c| c.path.clone()).collect();
            }
            ReloadResult::Applied => {
                self.generation += 1;
                self.last_changed = plan.changes.iter().map(|c| c.path.clone()).collect();
                self.pending.clear();
            }
            ReloadResult::AppliedWithPending => {
                self.generation += 1;
                self.last_changed = plan
                    .changes
                    .iter()
                    .filter(|c| c.class != Class::Restart)
                    .map(|c| c.path.clone())
                    .collect();
                self.pending = plan.paths(Class::Restart);
            }
            ReloadResult::Pending => self.pending = plan.paths(Class::Restart),
            ReloadResult::Restart => {
                self.last_changed = plan.changes.iter().map(|c| c.path.clone()).collect();
                self.pending.clear();
            }
            ReloadResult::Rejected => {}
        }
    }

    /// Records a completed in-process restart (a new config is active).
    pub fn record_restarted(&mut self) {
        self.restarts += 1;
        self.generation += 1;
    }

    /// The `configReload` JSON object (upstream has `hotReloadStatus`; the rest is ours).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "hotReloadStatus": if self.mode == Mode::Off { "disabled" } else { "active" },
            "mode": self.mode,
            "supervisor": self.supervisor,
            "watching": self.watching,
            "watchError": self.watch_error,
            "generation": self.generation,
            "evaluations": self.evaluations,
            "restarts": self.restarts,
            "lastResult": self.last_result,
            "lastTrigger": self.last_trigger,
            "lastAtMs": self.last_at_ms,
            "lastChanged": self.last_changed,
            "pending": self.pending,
            "lastError": self.last_error,
        })
    }
}

/// How a restart is carried out, detected from the environment and the parent process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    /// Run by systemd: exit with [`crate::error::Exit::Restart`]; the unit restarts us.
    Systemd,
    /// Run by launchd: exit with [`crate::error::Exit::Restart`]; KeepAlive restarts us.
    Launchd,
    /// No manager (foreground, container PID 1, `OPENCLAW_NO_RESPAWN=1`): restart in-process.
    None,
}

impl Supervisor {
    /// Decides from the environment and the parent process. Markers alone are not trusted:
    /// `INVOCATION_ID`/`JOURNAL_STREAM` leak into shells started by terminal emulators that
    /// run as systemd services (and Terminal.app sets `XPC_SERVICE_NAME=0`), so a manager is
    /// assumed only when the parent is the manager itself (PID 1, or a process named `systemd`
    /// for the user manager). `OPENCLAW_SUPERVISOR_MODE=systemd|launchd|none` overrides;
    /// `OPENCLAW_NO_RESPAWN=1` forces in-process restarts.
    pub fn detect(env: &dyn Env, parent_pid: u32, parent_comm: Option<&str>) -> Supervisor {
        match env.var("OPENCLAW_SUPERVISOR_MODE").as_deref() {
            Some("systemd") => return Supervisor::Systemd,
            Some("launchd") => return Supervisor::Launchd,
            Some("none") | Some("external") => return Supervisor::None,
            _ => {}
        }
        if env.var("OPENCLAW_NO_RESPAWN").as_deref() == Some("1") {
            return Supervisor::None;
        }
        let systemd_markers = [
            "OPENCLAW_SYSTEMD_UNIT",
            "NOTIFY_SOCKET",
            "INVOCATION_ID",
            "JOURNAL_STREAM",
        ]
        .iter()
        .any(|k| env.var(k).is_some());
        let launchd_markers = ["OPENCLAW_LAUNCHD_LABEL", "LAUNCH_JOB_LABEL"]
            .iter()
            .any(|k| env.var(k).is_some())
            || env.var("XPC_SERVICE_NAME").is_some_and(|v| v != "0");
        let parent_is_systemd = parent_comm == Some("systemd");
        if systemd_markers && (parent_is_systemd || (parent_pid == 1 && !launchd_markers)) {
            Supervisor::Systemd
        } else if launchd_markers && parent_pid == 1 {
            Supervisor::Launchd
        } else {
            Supervisor::None
        }
    }

    /// Detects for this process (`/proc/<ppid>/comm` on Linux).
    pub fn detect_current(env: &dyn Env) -> Supervisor {
        let ppid = std::os::unix::process::parent_id();
        let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm"))
            .ok()
            .map(|s| s.trim().to_string());
        Supervisor::detect(env, ppid, comm.as_deref())
    }
}

#[cfg(test)]
/// The hot/restart table as a Markdown section for the README.
pub(crate) fn rules_markdown() -> String {
    let mut s =
        String::from("| config path (longest prefix wins) | on change | note |\n|---|---|---|\n");
    let mut rows: Vec<_> = RELOAD_RULES.iter().collect();
    rows.sort_by_key(|(p, _, _)| *p);
    for (p, r, note) in rows {
        s.push_str(&format!("| `{p}` | {} | {note} |\n", r.describe()));
    }
    s.push_str("| *(anything else)* | restart | unknown paths need a restart |\n");
    s
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn no_env() -> HashMap<String, String> {
        HashMap::new()
    }

    fn p(s: &str) -> Vec<String> {
        ConfigPath::dotted(s).0
    }

    #[test]
    fn classifier_table() {
        // (path, auth mode changed, expected class, expected deciding prefix)
        #[rustfmt::skip]
        let cases: &[(&str, bool, Class, Option<&str>)] = &[
            ("gateway.port", false, Class::Restart, Some("gateway.port")),
            ("gateway.bind", false, Class::Restart, Some("gateway.bind")),
            ("gateway.customBindHost", false, Class::Restart, Some("gateway.customBindHost")),
            ("gateway.tls.certPath", false, Class::Restart, Some("gateway.tls")),
            ("gateway.tls.enabled", false, Class::Restart, Some("gateway.tls")),
            ("gateway.tailscale.mode", false, Class::Restart, Some("gateway.tailscale")),
            ("gateway.auth.mode", true, Class::Restart, Some("gateway.auth.mode")),
            ("gateway.auth.mode", false, Class::None, Some("gateway.auth.mode")),
            ("gateway.auth.token", false, Class::Hot, Some("gateway.auth.token")),
            ("gateway.auth.token", true, Class::Restart, Some("gateway.auth.token")),
            ("gateway.auth.token.id", false, Class::Hot, Some("gateway.auth.token")),
            ("gateway.auth.password", false, Class::Hot, Some("gateway.auth.password")),
            ("gateway.auth.password", true, Class::Restart, Some("gateway.auth.password")),
            ("gateway.auth.rateLimit.maxAttempts", false, Class::Hot, Some("gateway.auth.rateLimit")),
            ("gateway.auth.somethingNew", false, Class::Restart, Some("gateway.auth")),
            ("gateway.controlUi.allowedOrigins", false, Class::Hot, Some("gateway.controlUi")),
            ("gateway.controlUi.basePath", false, Class::Restart, Some("gateway.controlUi.basePath")),
            ("gateway.controlUi.enabled", false, Class::Restart, Some("gateway.controlUi.enabled")),
            ("gateway.reload.mode", false, Class::Hot, Some("gateway.reload")),
            ("gateway.remote.url", false, Class::Hot, Some("gateway.remote")),
            ("gateway.http.endpoints.chatCompletions.enabled", false, Class::Hot, Some("gateway.http.endpoints")),
            ("gateway.http.securityHeaders.strictTransportSecurity", false, Class::Hot,
                Some("gateway.http.securityHeaders.strictTransportSecurity")),
            ("gateway.http.securityHeaders.csp", false, Class::Restart, Some("gateway.http")),
            ("gateway.mode", false, Class::Restart, Some("gateway.mode")),
            ("gateway.whatever", false, Class::Restart, Some("gateway")),
            ("gateway", false, Class::Restart, Some("gateway")),
            ("models.providers.openai.apiKey", false, Class::Hot, Some("models")),
            ("agents.defaults.workspace", false, Class::Hot, Some("agents")),
            ("logging.level", false, Class::Hot, Some("logging")),
            ("meta.lastTouchedVersion", false, Class::None, Some("meta")),
            ("secrets.providers.vault.path", false, Class::Hot, Some("secrets")),
            ("secrets.egressProxy", false, Class::Restart, Some("secrets.egressProxy")),
            ("discovery.mdns.mode", false, Class::Hot, Some("discovery.mdns.mode")),
            ("discovery.wideArea", false, Class::Restart, Some("discovery")),
            // Prefixes match whole segments only; unknown paths need a restart.
            ("gatewayish.port", false, Class::Restart, None),
            ("modelsX", false, Class::Restart, None),
            ("channels.telegram.botToken", false, Class::Restart, None),
            ("totallyUnknown", false, Class::Restart, None),
        ];
        for (path, amc, class, prefix) in cases {
            let segs = p(path);
            assert_eq!(
                classify(&segs, *amc),
                *class,
                "{path} (auth mode changed: {amc})"
            );
            assert_eq!(rule_for(&segs).map(|(r, _)| r), *prefix, "{path}");
        }
    }

    #[test]
    fn rule_table_has_no_duplicates_and_renders() {
        let mut seen = std::collections::HashSet::new();
        for (prefix, _, _) in RELOAD_RULES {
            assert!(seen.insert(prefix), "duplicate rule {prefix}");
            assert!(!prefix.split('.').any(str::is_empty), "{prefix}");
        }
        let md = rules_markdown();
        assert!(md.contains("| `gateway.port` | restart |"), "{md}");
        assert!(
            md.contains("| `gateway.auth.token` | hot while the effective auth mode is unchanged"),
            "{md}"
        );
        assert_eq!(md.lines().count(), RELOAD_RULES.len() + 3);
    }

    fn dotted(paths: Vec<ConfigPath>) -> Vec<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn diff_reports_leaves() {
        let old =
            json!({"gateway": {"port": 1, "auth": {"token": "a"}, "list": [1, 2]}, "x": null});
        let new = json!({"gateway": {"port": 2, "auth": {"token": "a"}, "list": [1, 3],
                         "controlUi": {"basePath": "/ui", "allowedOrigins": ["o"]}},
                         "meta": {"v": "1"}});
        assert_eq!(
            dotted(diff(&old, &new)),
            [
                "gateway.controlUi.allowedOrigins",
                "gateway.controlUi.basePath",
                "gateway.list",
                "gateway.port",
                "meta.v",
            ]
        );
        assert!(diff(&old, &old).is_empty());
        // null, {} and missing are the same
        assert!(diff(&json!({"a": null, "b": {}}), &json!({})).is_empty());
        // scalar -> object reports the path and the new leaves
        assert_eq!(
            dotted(diff(
                &json!({"gateway": {"auth": {"token": "plain"}}}),
                &json!({"gateway": {"auth": {"token": {"source": "env", "id": "T"}}}}),
            )),
            [
                "gateway.auth.token",
                "gateway.auth.token.id",
                "gateway.auth.token.source"
            ]
        );
        // an emptied section reports the removed leaves
        assert_eq!(
            dotted(diff(&json!({"tools": {"a": 1, "b": {"c": 2}}}), &json!({}))),
            ["tools.a", "tools.b.c"]
        );
    }

    #[test]
    fn effective_auth_mode_table() {
        #[rustfmt::skip]
        let cases: &[(Value, &[(&str, &str)], &str)] = &[
            (json!({}), &[], "none"),
            (json!({}), &[("OPENCLAW_GATEWAY_TOKEN", "t")], "token"),
            (json!({}), &[("OPENCLAW_GATEWAY_PASSWORD", "p")], "password"),
            (json!({"gateway": {"auth": {"token": "x"}}}), &[], "token"),
            (json!({"gateway": {"auth": {"token": ""}}}), &[], "none"),
            (json!({"gateway": {"auth": {"token": {"source": "env", "id": "X"}}}}), &[], "token"),
            (json!({"gateway": {"auth": {"password": "x"}}}), &[], "password"),
            (json!({"gateway": {"auth": {"password": "x", "mode": "none"}}}), &[], "none"),
            (json!({"gateway": {"auth": {"mode": "password", "token": "x"}}}), &[], "password"),
        ];
        for (doc, e, want) in cases {
            assert_eq!(effective_auth_mode(doc, &env(e)), *want, "{doc} {e:?}");
        }
    }

    #[test]
    fn plan_token_rotation_is_hot_only_when_mode_unchanged() {
        let old = json!({"gateway": {"auth": {"token": "a"}}});
        let rotated = json!({"gateway": {"auth": {"token": "b"}}});
        let pl = plan(&old, &rotated, &no_env());
        assert!(!pl.auth_mode_changed);
        assert_eq!(pl.paths(Class::Hot), ["gateway.auth.token"]);
        assert!(pl.rotates_auth_secret());
        assert_eq!(decide(Mode::Hybrid, &pl), Action::Apply);

        let to_password = json!({"gateway": {"auth": {"password": "p"}}});
        let pl = plan(&old, &to_password, &no_env());
        assert!(pl.auth_mode_changed);
        assert_eq!(pl.max_class(), Class::Restart);
        assert!(!pl.rotates_auth_secret());
        assert_eq!(decide(Mode::Hybrid, &pl), Action::Restart);

        // The explicit mode spelled out while the effective mode stays `token`: no effect.
        let explicit = json!({"gateway": {"auth": {"token": "a", "mode": "token"}}});
        let pl = plan(&old, &explicit, &no_env());
        assert_eq!(pl.max_class(), Class::None);
        assert_eq!(decide(Mode::Hybrid, &pl), Action::Apply);

        // Other hot changes are not a rotation.
        let pl = plan(
            &old,
            &json!({"gateway": {"auth": {"token": "a"}}, "logging": {"level": "debug"}}),
            &no_env(),
        );
        assert!(!pl.rotates_auth_secret());
    }

    fn plan_of(classes: &[Class]) -> Plan {
        Plan {
            changes: classes
                .iter()
                .enumerate()
                .map(|(i, c)| Change {
                    path: format!("p{i}"),
                    class: *c,
                    rule: None,
                    segments: vec![format!("p{i}")],
                })
                .collect(),
            auth_mode_changed: false,
        }
    }

    #[test]
    fn decide_table() {
        use Action::*;
        use Class::{Hot as H, None as N, Restart as R};
        let shapes: &[&[Class]] = &[&[], &[N], &[N, H], &[H, R], &[N, R]];
        // Rows: mode; columns follow `shapes`.
        #[rustfmt::skip]
        let table: &[(Mode, [Action; 5])] = &[
            (Mode::Off,     [Unchanged, Ignore, Ignore,  Ignore,           Ignore]),
            (Mode::Hot,     [Unchanged, Apply,  Apply,   ApplyWithPending, ApplyWithPending]),
            (Mode::Restart, [Unchanged, Apply,  Restart, Restart,          Restart]),
            (Mode::Hybrid,  [Unchanged, Apply,  Apply,   Restart,          Restart]),
        ];
        for (mode, row) in table {
            for (shape, want) in shapes.iter().zip(row) {
                assert_eq!(decide(*mode, &plan_of(shape)), *want, "{mode} {shape:?}");
            }
        }
    }

    #[test]
    fn mode_parse() {
        assert_eq!(Mode::parse(None), Ok(Mode::Hybrid));
        for m in [Mode::Off, Mode::Hot, Mode::Restart, Mode::Hybrid] {
            assert_eq!(Mode::parse(Some(m.as_str())), Ok(m));
        }
        let e = Mode::parse(Some("sometimes")).unwrap_err();
        assert!(
            e.contains("gateway.reload.mode") && e.contains("hybrid"),
            "{e}"
        );
    }

    #[test]
    fn merge_keeping_restores_restart_paths() {
        let old = json!({"gateway": {"port": 1, "controlUi": {"allowedOrigins": ["a"]}}});
        let new = json!({"gateway": {"port": 2, "tls": {"enabled": true},
                         "controlUi": {"allowedOrigins": ["b"]}}});
        let pl = plan(&old, &new, &no_env());
        assert_eq!(decide(Mode::Hot, &pl), Action::ApplyWithPending);
        let keep: Vec<&[String]> = pl
            .of(Class::Restart)
            .map(|c| c.segments.as_slice())
            .collect();
        let merged = merge_keeping(&old, &new, &keep);
        assert_eq!(
            merged,
            json!({"gateway": {"port": 1, "tls": {}, "controlUi": {"allowedOrigins": ["b"]}}})
        );
        // The pending set is what still differs between the merged doc and the file.
        let again = plan(&merged, &new, &no_env());
        assert_eq!(
            again.paths(Class::Restart),
            ["gateway.port", "gateway.tls.enabled"]
        );
        assert!(again.paths(Class::Hot).is_empty());
        // Reverting the file clears the pending changes.
        let reverted = json!({"gateway": {"port": 1, "controlUi": {"allowedOrigins": ["b"]}}});
        assert!(plan(&merged, &reverted, &no_env()).changes.is_empty());
    }

    #[test]
    fn supervisor_detection_table() {
        use Supervisor::*;
        #[rustfmt::skip]
        let cases: &[(&[(&str, &str)], u32, Option<&str>, Supervisor)] = &[
            (&[], 4242, Some("bash"), None),
            // systemd markers with the manager as parent
            (&[("INVOCATION_ID", "abc")], 1, Some("systemd"), Systemd),
            (&[("NOTIFY_SOCKET", "/run/x")], 777, Some("systemd"), Systemd),
            (&[("JOURNAL_STREAM", "8:9")], 777, Some("systemd"), Systemd),
            (&[("OPENCLAW_SYSTEMD_UNIT", "openclaw-gateway.service")], 1, Some("init"), Systemd),
            // markers leaked into a terminal's shell: not supervised
            (&[("INVOCATION_ID", "abc"), ("JOURNAL_STREAM", "8:9")], 5555, Some("bash"), None),
            // launchd
            (&[("XPC_SERVICE_NAME", "ai.openclaw.gateway")], 1, Option::None, Launchd),
            (&[("LAUNCH_JOB_LABEL", "ai.openclaw.gateway")], 1, Option::None, Launchd),
            (&[("XPC_SERVICE_NAME", "0")], 1, Option::None, None),
            (&[("XPC_SERVICE_NAME", "ai.openclaw.gateway")], 900, Some("zsh"), None),
            // overrides
            (&[("INVOCATION_ID", "a"), ("OPENCLAW_NO_RESPAWN", "1")], 1, Some("systemd"), None),
            (&[("OPENCLAW_SUPERVISOR_MODE", "systemd")], 5, Some("bash"), Systemd),
            (&[("OPENCLAW_SUPERVISOR_MODE", "none"), ("INVOCATION_ID", "a")], 1, Some("systemd"), None),
        ];
        for (e, ppid, comm, want) in cases {
            assert_eq!(
                Supervisor::detect(&env(e), *ppid, *comm),
                *want,
                "{e:?} {ppid} {comm:?}"
            );
        }
    }

    #[test]
    fn status_warns_once_per_rejected_content_and_tracks_pending() {
        let mut st = ReloadStatus::default();
        let path = std::path::Path::new("/x/openclaw.json");
        let err = crate::error::Error::ConfigSyntax {
            path: path.to_path_buf(),
            line: 3,
            column: 7,
            message: "expected comma".into(),
        };
        let e = ReloadError::from_error(path, &err, 1);
        assert_eq!(e.display(), "/x/openclaw.json:3:7: expected comma");
        assert!(st.record_rejected("{bad", e.clone(), Trigger::File));
        assert!(
            !st.record_rejected("{bad", e.clone(), Trigger::File),
            "same content: no second warning"
        );
        assert!(
            st.record_rejected("{worse", e.clone(), Trigger::File),
            "new content warns"
        );
        let j = st.to_json();
        assert_eq!(j["lastError"]["line"], json!(3));
        assert_eq!(j["lastResult"], json!("rejected"));
        assert_eq!(j["generation"], json!(0));

        let old = json!({"gateway": {"port": 1}});
        let new = json!({"gateway": {"port": 2}, "logging": {"level": "debug"}});
        let pl = plan(&old, &new, &no_env());
        st.record(ReloadResult::AppliedWithPending, Trigger::Signal, &pl, 2);
        let j = st.to_json();
        assert_eq!(j["lastError"], Value::Null);
        assert_eq!(j["pending"], json!(["gateway.port"]));
        assert_eq!(j["lastChanged"], json!(["logging.level"]));
        assert_eq!(j["generation"], json!(1));
        // After a valid edit, the same broken content warns again.
        assert!(st.record_rejected("{bad", e, Trigger::File));
    }
}
