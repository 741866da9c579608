//! SecretRefs: secrets named in the config instead of written into it, resolved eagerly into an
//! in-memory [`SecretsSnapshot`] that request paths read (docs/lifecycle.md §9).
//!
//! Surfaces: `gateway.auth.token`, `gateway.auth.password` and `models.providers.<name>.apiKey`.
//! Each holds a plain string, a ref object `{source: "env"|"file"|"exec", provider?, id}`, or the
//! env shorthand `"${VAR}"` (also `"$VAR"` for upper-case names, as upstream).
//!
//! Providers live under `secrets.providers.<alias>`; `secrets.defaults.<source>` names the alias
//! a ref without `provider` uses (else `default`). An env provider called `default` exists
//! implicitly.
//! - `env`: `{source:"env", allowlist?:[names]}`.
//! - `file`: `{source:"file", path, mode?:"json"|"singleValue", timeoutMs?:5000,
//!   maxBytes?:1048576}`. The file must be a regular file (not a symlink), with one link, owned
//!   by us and private (no group/other bits). `json`: `id` is a JSON pointer (`/a/b`);
//!   `singleValue`: `id` is `value` and the whole file (minus one trailing newline) is the secret.
//! - `exec`: `{source:"exec", command, args?, passEnv?, env?, trustedDirs?, timeoutMs?:5000,
//!   maxOutputBytes?:1048576, jsonOnly?:true}`. `command` is absolute, run without a shell, with
//!   an empty environment plus `passEnv`/`env`; it must be a regular file (not a symlink), not
//!   group/world-writable, owned by us or root, inside `trustedDirs` when given. stdin receives
//!   `{"protocolVersion":1,"provider":alias,"ids":[…]}`, stdout must answer
//!   `{"protocolVersion":1,"values":{id:value}, "errors"?:{id:{message}}}`.
//!
//! Activation ([`activate`]) runs at start, on every applied config reload and on
//! `secrets.reload`. Per owner: a ref that fails but is unchanged since the previous snapshot
//! keeps its last good value (`stale`); a new or changed ref that fails has no value (`cold`).
//! Gateway auth fails closed: a `cold` auth secret blocks startup and rejects a reload
//! ([`Activation::auth_blocking`]). Values never appear in `Debug`, logs, errors or status.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::paths::Env;

/// Default per-provider timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Default size cap for secret files and exec output.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

/// A resolved secret. Never printed: `Debug` shows `Secret(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The value, for comparison with presented credentials. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a SecretRef is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An environment variable of the gateway process.
    Env,
    /// A private file.
    File,
    /// A helper program speaking the JSON protocol.
    Exec,
}

impl Source {
    fn parse(s: &str) -> Option<Source> {
        match s {
            "env" => Some(Source::Env),
            "file" => Some(Source::File),
            "exec" => Some(Source::Exec),
            _ => None,
        }
    }
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Env => "env",
            Source::File => "file",
            Source::Exec => "exec",
        }
    }
}

/// A reference to a secret: `{source, provider, id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Provider kind.
    pub source: Source,
    /// Provider alias under `secrets.providers`.
    pub provider: String,
    /// What to fetch (env var name, JSON pointer, `value`, or the exec id).
    pub id: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.source.as_str(), self.provider, self.id)
    }
}

/// What a secret surface holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretInput {
    /// A literal value in the config.
    Plain(Secret),
    /// A reference.
    Ref(SecretRef),
}

fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn is_upper_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

fn default_alias(secrets_cfg: Option<&Value>, source: Source) -> String {
    secrets_cfg
        .and_then(|s| s.get("defaults"))
        .and_then(|d| d.get(source.as_str()))
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string()
}

/// Parses what a surface holds. `secrets_cfg` is the document's `secrets` section (defaults).
pub fn parse_input(v: &Value, secrets_cfg: Option<&Value>) -> Result<SecretInput, String> {
    match v {
        Value::String(s) => {
            let name = s
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|n| is_env_name(n))
                .or_else(|| s.strip_prefix('$').filter(|n| is_upper_env_name(n)));
            Ok(match name {
                Some(n) => SecretInput::Ref(SecretRef {
                    source: Source::Env,
                    provider: default_alias(secrets_cfg, Source::Env),
                    id: n.to_string(),
                }),
                None => SecretInput::Plain(Secret::new(s.clone())),
            })
        }
        Value::Object(o) => {
            let source_s = o
                .get("source")
                .and_then(Value::as_str)
                .ok_or("a SecretRef needs \"source\": \"env\", \"file\" or \"exec\"".to_string())?;
            let source = Source::parse(source_s).ok_or(format!(
                "unknown SecretRef source {source_s:?} (use env, file or exec)"
            ))?;
            let id = o
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or("a SecretRef needs a non-empty string \"id\"".to_string())?;
            let provider = match o.get("provider") {
                None | Some(Value::Null) => default_alias(secrets_cfg, source),
                Some(Value::String(p)) if !p.is_empty() => p.clone(),
                Some(_) => return Err("SecretRef \"provider\" must be a non-empty string".into()),
            };
            if let Some(k) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "source" | "provider" | "id"))
            {
                return Err(format!(
                    "unknown SecretRef key {k:?} (allowed: source, provider, id)"
                ));
            }
            Ok(SecretInput::Ref(SecretRef {
                source,
                provider,
                id: id.to_string(),
            }))
        }
        _ => Err("must be a string or a SecretRef object {source, provider, id}".into()),
    }
}

/// The config paths that may hold secrets, with their values, in a stable order.
pub fn surfaces(doc: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    let auth = doc.get("gateway").and_then(|g| g.get("auth"));
    for k in ["token", "password"] {
        if let Some(v) = auth.and_then(|a| a.get(k)).filter(|v| !v.is_null()) {
            out.push((format!("gateway.auth.{k}"), v));
        }
    }
    if let Some(providers) = doc
        .get("models")
        .and_then(|m| m.get("providers"))
        .and_then(Value::as_object)
    {
        for (name, p) in providers {
            if let Some(v) = p.get("apiKey").filter(|v| !v.is_null()) {
                out.push((format!("models.providers.{name}.apiKey"), v));
            }
        }
    }
    out
}

/// How an owner's secret stands in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// Resolved by the latest activation.
    Ok,
    /// The latest resolution failed; the last good value of the unchanged ref is kept.
    Stale,
    /// Failed with no usable previous value: the owner is unavailable.
    Cold,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Fingerprint of the definition (ref + provider config), to tell unchanged refs.
    fingerprint: String,
    reference: Option<SecretRef>,
    value: Option<Secret>,
    state: EntryState,
    error: Option<String>,
}

/// The resolved secrets the gateway runs with. Swapped atomically as a whole.
#[derive(Debug, Clone, Default)]
pub struct SecretsSnapshot {
    entries: BTreeMap<String, Entry>,
}

/// A degraded owner, for `status.degradedSecretOwners` and doctor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefFailure {
    /// Owner path (`gateway.auth.token`).
    pub path: String,
    /// The ref (`file:vault:/gateway/token`); never the value.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `stale` (last good value kept) or `cold` (no value).
    pub state: EntryState,
    /// What failed, where, and what to do.
    pub error: String,
}

impl SecretsSnapshot {
    /// The value for an owner path, if it has one (plain or resolved, possibly stale).
    pub fn get(&self, path: &str) -> Option<&Secret> {
        self.entries.get(path).and_then(|e| e.value.as_ref())
    }

    /// Whether the owner's value comes from a SecretRef (as opposed to a literal).
    pub fn is_ref(&self, path: &str) -> bool {
        self.entries
            .get(path)
            .is_some_and(|e| e.reference.is_some())
    }

    /// The failure of an owner without a usable value (`cold`), if any.
    pub fn cold_failure(&self, path: &str) -> Option<String> {
        self.entries
            .get(path)
            .filter(|e| e.state == EntryState::Cold)
            .map(|e| {
                e.error
                    .clone()
                    .unwrap_or_else(|| format!("{path}: unresolved"))
            })
    }

    /// Owners whose latest resolution failed.
    pub fn degraded(&self) -> Vec<RefFailure> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state != EntryState::Ok)
            .map(|(p, e)| RefFailure {
                path: p.clone(),
                reference: e
                    .reference
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                state: e.state,
                error: e.error.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// Number of owners (plain and refs).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No owners at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The outcome of resolving every surface of a config.
#[derive(Debug, Clone)]
pub struct Activation {
    /// The snapshot to swap in (failing owners are stale or cold in it).
    pub snapshot: SecretsSnapshot,
    /// Owners that failed this time.
    pub failures: Vec<RefFailure>,
    /// Refs resolved successfully this time.
    pub resolved: usize,
}

impl Activation {
    /// Gateway auth secrets the given effective auth mode needs but that have no value: the
    /// gateway must not start (or must reject the reload) rather than run without them.
    pub fn auth_blocking(&self, auth_mode: &str) -> Vec<&RefFailure> {
        let needed = match auth_mode {
            "token" => "gateway.auth.token",
            "password" => "gateway.auth.password",
            _ => return Vec::new(),
        };
        self.failures
            .iter()
            .filter(|f| f.path == needed && f.state == EntryState::Cold)
            .collect()
    }

    /// The JSON result of `secrets.reload` (no values).
    pub fn report(&self) -> Value {
        json!({
            "ok": self.failures.is_empty(),
            "resolved": self.resolved,
            "warningCount": self.failures.len(),
            "failures": self.failures,
        })
    }
}

fn provider_config<'a>(doc: &'a Value, r: &SecretRef) -> Result<Option<&'a Value>, String> {
    let cfg = doc
        .get("secrets")
        .and_then(|s| s.get("providers"))
        .and_then(|p| p.get(&r.provider))
        .filter(|v| !v.is_null());
    match cfg {
        None if r.source == Source::Env && r.provider == "default" => Ok(None),
        None => Err(format!(
            "secrets.providers.{} is not configured (add {{source: \"{}\", …}} there, or fix the ref's provider)",
            r.provider,
            r.source.as_str()
        )),
        Some(c) => {
            let declared = c.get("source").and_then(Value::as_str);
            if declared != Some(r.source.as_str()) {
                return Err(format!(
                    "secrets.providers.{} has source {:?} but the ref asks for {:?}",
                    r.provider,
                    declared.unwrap_or("(missing)"),
                    r.source.as_str()
                ));
            }
            Ok(Some(c))
        }
    }
}

fn fingerprint(r: &SecretRef, cfg: Option<&Value>) -> String {
    format!("{r}|{}", cfg.map(Value::to_string).unwrap_or_default())
}

/// Resolves every secret surface of `doc` (eagerly) into a new snapshot. `previous` supplies
/// last good values for unchanged refs that fail now (`stale`).
pub async fn activate(
    doc: &Value,
    env: &(dyn Env + Sync),
    previous: Option<&SecretsSnapshot>,
) -> Activation {
    activate_where(doc, env, previous, &|_| true).await
}

/// [`activate`] for the owner paths `keep` accepts only (the others are not resolved, so no
/// file is read and no helper run for them).
async fn activate_where(
    doc: &Value,
    env: &(dyn Env + Sync),
    previous: Option<&SecretsSnapshot>,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Activation {
    let secrets_cfg = doc.get("secrets");
    let mut entries = BTreeMap::new();
    let mut failures = Vec::new();
    let mut resolved = 0;
    // (owner path, ref, provider config, fingerprint) of every ref still to resolve.
    let mut pending: Vec<(String, SecretRef, Option<Value>, String)> = Vec::new();
    let mut fail = |path: String, reference: Option<SecretRef>, fp: String, error: String| {
        let prev = previous
            .and_then(|p| p.entries.get(&path))
            .filter(|e| e.fingerprint == fp && e.value.is_some());
        let (value, state) = match prev {
            Some(e) => (e.value.clone(), EntryState::Stale),
            None => (None, EntryState::Cold),
        };
        failures.push(RefFailure {
            path: path.clone(),
            reference: reference
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            state,
            error: error.clone(),
        });
        (
            path,
            Entry {
                fingerprint: fp,
                reference,
                value,
                state,
                error: Some(error),
            },
        )
    };
    let mut failed_entries = Vec::new();
    for (path, v) in surfaces(doc).into_iter().filter(|(p, _)| keep(p)) {
        match parse_input(v, secrets_cfg) {
            Ok(SecretInput::Plain(s)) => {
                entries.insert(
                    path,
                    Entry {
                        fingerprint: "plain".into(),
                        reference: None,
                        value: Some(s),
                        state: EntryState::Ok,
                        error: None,
                    },
                );
            }
            Ok(SecretInput::Ref(r)) => match provider_config(doc, &r) {
                Ok(cfg) => {
                    let fp = fingerprint(&r, cfg);
                    pending.push((path, r, cfg.cloned(), fp));
                }
                Err(e) => {
                    let fp = fingerprint(&r, None);
                    failed_entries.push(fail(
                        path.clone(),
                        Some(r.clone()),
                        fp,
                        format!("{path}: SecretRef {r}: {e}"),
                    ));
                }
            },
            Err(e) => {
                failed_entries.push(fail(
                    path.clone(),
                    None,
                    format!("invalid:{v}"),
                    format!("{path}: {e}"),
                ));
            }
        }
    }

    // Group refs by provider alias so each file is read and each helper run once.
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (_, r, _, _)) in pending.iter().enumerate() {
        groups.entry(r.provider.clone()).or_default().push(i);
    }
    let mut results: Vec<Option<Result<Secret, String>>> = vec![None; pending.len()];
    for (alias, idxs) in &groups {
        let (_, first, cfg, _) = &pending[idxs[0]];
        let ids: Vec<&str> = idxs.iter().map(|i| pending[*i].1.id.as_str()).collect();
        let out = match first.source {
            Source::Env => ids
                .iter()
                .map(|id| resolve_env(cfg.as_ref(), alias, id, env))
                .collect(),
            Source::File => {
                resolve_file(cfg.as_ref().unwrap_or(&Value::Null), alias, &ids, env).await
            }
            Source::Exec => {
                resolve_exec(cfg.as_ref().unwrap_or(&Value::Null), alias, &ids, env).await
            }
        };
        for (i, r) in idxs.iter().zip(out) {
            results[*i] = Some(r);
        }
    }
    for ((path, r, _, fp), res) in pending.into_iter().zip(results) {
        match res.unwrap_or_else(|| Err("not resolved".into())) {
            Ok(value) => {
                resolved += 1;
                entries.insert(
                    path,
                    Entry {
                        fingerprint: fp,
                        reference: Some(r),
                        value: Some(value),
                        state: EntryState::Ok,
                        error: None,
                    },
                );
            }
            Err(e) => {
                let msg = format!("{path}: SecretRef {r}: {e}");
                failed_entries.push(fail(path, Some(r), fp, msg));
            }
        }
    }
    entries.extend(failed_entries);
    failures.sort_by(|a, b| a.path.cmp(&b.path));
    Activation {
        snapshot: SecretsSnapshot { entries },
        failures,
        resolved,
    }
}

/// [`activate`] for synchronous callers (startup before the runtime exists, in-process
/// restarts between runtimes): runs it on a private thread with its own small runtime, so it
/// is safe to call from anywhere, including from inside another runtime.
pub fn activate_blocking(
    doc: &Value,
    env: &(dyn Env + Sync),
    previous: Option<&SecretsSnapshot>,
) -> Activation {
    activate_blocking_where(doc, env, previous, &|_| true)
}

fn activate_blocking_where(
    doc: &Value,
    env: &(dyn Env + Sync),
    previous: Option<&SecretsSnapshot>,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Activation {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a runtime for secret resolution");
            rt.block_on(activate_where(doc, env, previous, keep))
        })
        .join()
        .expect("secret resolution thread panicked")
    })
}

/// One credential of a loaded config (`gateway.auth.token`, …) for a client-side command (the
/// CLI's connection target, doctor): strings, `${VAR}` and env refs directly; `file`/`exec`
/// SecretRefs through the same resolver the gateway uses (for this owner only), so a client
/// accepts every ref the gateway does and reports its failure in the gateway's words.
pub fn resolve_config_secret(
    cfg: &crate::config::Config,
    path: &str,
) -> crate::error::Result<Option<String>> {
    match crate::config::resolve_secret_value(cfg.get(path), path) {
        Ok(v) => Ok(v),
        Err(direct) => {
            // Only this owner: other refs' files and helpers are none of this command's business.
            let act =
                activate_blocking_where(&cfg.doc, &crate::config::paths::ProcessEnv, None, &|p| {
                    p == path
                });
            if let Some(s) = act.snapshot.get(path) {
                return Ok(Some(s.expose().to_string()));
            }
            match act.failures.into_iter().next() {
                // Already says which owner, which ref and what is wrong.
                Some(f) => Err(crate::error::Error::Config(f.error)),
                None => Err(direct),
            }
        }
    }
}

fn resolve_env(
    cfg: Option<&Value>,
    alias: &str,
    id: &str,
    env: &dyn Env,
) -> Result<Secret, String> {
    if !is_env_name(id) {
        return Err(format!("{id:?} is not an environment variable name"));
    }
    if let Some(list) = cfg
        .and_then(|c| c.get("allowlist"))
        .and_then(Value::as_array)
        && !list.iter().any(|v| v.as_str() == Some(id))
    {
        return Err(format!(
            "{id} is not in secrets.providers.{alias}.allowlist; add it there"
        ));
    }
    env.var(id).map(Secret::new).ok_or(format!(
        "environment variable {id} is not set (or empty) in the gateway's environment; set it for the service (e.g. in its env file) and reload"
    ))
}

fn u64_field(cfg: &Value, k: &str, default: u64) -> u64 {
    cfg.get(k).and_then(Value::as_u64).unwrap_or(default)
}

fn expand_home(p: &str, env: &dyn Env) -> PathBuf {
    match (p.strip_prefix("~/"), env.var("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

fn mode_str(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Opens a secret file without following a final symlink and checks it is a private, single-link
/// regular file owned by us and within the size cap; returns its bytes.
fn read_private_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("path {shown} must be absolute"));
    }
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                format!("{shown} is a symlink; point the provider at the real file")
            } else {
                format!("cannot open {shown}: {e}")
            }
        })?;
    let md = file
        .metadata()
        .map_err(|e| format!("cannot stat {shown}: {e}"))?;
    if !md.file_type().is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if md.nlink() != 1 {
        return Err(format!(
            "{shown} has {} hard links; secret files must have exactly one",
            md.nlink()
        ));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if md.uid() != euid {
        return Err(format!(
            "{shown} is owned by uid {}, not by the gateway's uid {euid}; chown it",
            md.uid()
        ));
    }
    if md.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown} is accessible by group/others (mode {}); run chmod 600 {shown}",
            mode_str(md.mode())
        ));
    }
    if md.len() > max_bytes {
        return Err(format!(
            "{shown} is {} bytes, over the {max_bytes}-byte cap (maxBytes)",
            md.len()
        ));
    }
    let mut buf = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if buf.len() as u64 > max_bytes {
        return Err(format!(
            "{shown} grew over the {max_bytes}-byte cap while reading"
        ));
    }
    Ok(buf)
}

async fn resolve_file(
    cfg: &Value,
    alias: &str,
    ids: &[&str],
    env: &(dyn Env + Sync),
) -> Vec<Result<Secret, String>> {
    let all = |e: String| ids.iter().map(|_| Err(e.clone())).collect::<Vec<_>>();
    let Some(path_s) = cfg.get("path").and_then(Value::as_str) else {
        return all(format!("secrets.providers.{alias}.path is missing"));
    };
    let path = expand_home(path_s, env);
    let mode = cfg.get("mode").and_then(Value::as_str).unwrap_or("json");
    if mode != "json" && mode != "singleValue" {
        return all(format!(
            "secrets.providers.{alias}.mode {mode:?} is unknown (use json or singleValue)"
        ));
    }
    let timeout = Duration::from_millis(u64_field(cfg, "timeoutMs", DEFAULT_TIMEOUT_MS));
    let max = u64_field(cfg, "maxBytes", DEFAULT_MAX_BYTES);
    let p2 = path.clone();
    let read = tokio::task::spawn_blocking(move || read_private_file(&p2, max));
    let bytes = match tokio::time::timeout(timeout, read).await {
        Err(_) => {
            return all(format!(
                "reading {} timed out after {} ms",
                path.display(),
                timeout.as_millis()
            ));
        }
        Ok(Err(e)) => return all(format!("reading {}: {e}", path.display())),
        Ok(Ok(Err(e))) => return all(e),
        Ok(Ok(Ok(b))) => b,
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return all(format!("{} is not UTF-8 text", path.display()));
    };
    if mode == "singleValue" {
        let v = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        return ids
            .iter()
            .map(|id| {
                if *id != "value" {
                    Err(format!(
                        "provider {alias} is singleValue: the ref id must be \"value\", not {id:?}"
                    ))
                } else if v.is_empty() {
                    Err(format!("{} is empty", path.display()))
                } else {
                    Ok(Secret::new(v))
                }
            })
            .collect();
    }
    let doc: Value = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => return all(format!("{} is not valid JSON: {e}", path.display())),
    };
    ids.iter()
        .map(|id| {
            if !id.starts_with('/') {
                return Err(format!(
                    "provider {alias} is json: the ref id must be a JSON pointer like \"/gateway/token\", not {id:?}"
                ));
            }
            match doc.pointer(id) {
                Some(Value::String(s)) if !s.is_empty() => Ok(Secret::new(s.clone())),
                Some(Value::String(_)) => Err(format!("{id} in {} is empty", path.display())),
                Some(_) => Err(format!("{id} in {} is not a string", path.display())),
                None => Err(format!("{id} not found in {}", path.display())),
            }
        })
        .collect()
}

/// Checks an exec provider's command: absolute, a regular file (not a symlink), executable, not
/// group/world-writable, owned by us or root, inside `trusted_dirs` when given.
fn check_command(command: &Path, trusted_dirs: &[PathBuf]) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let shown = command.display();
    if !command.is_absolute() {
        return Err(format!(
            "command {shown} must be an absolute path (no shell, no PATH lookup)"
        ));
    }
    let md = std::fs::symlink_metadata(command).map_err(|e| format!("command {shown}: {e}"))?;
    if md.file_type().is_symlink() {
        return Err(format!("command {shown} is a symlink; use the real path"));
    }
    if !md.file_type().is_file() {
        return Err(format!("command {shown} is not a regular file"));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "command {shown} is group/world-writable (mode {}); run chmod go-w {shown}",
            mode_str(md.mode())
        ));
    }
    if md.mode() & 0o111 == 0 {
        return Err(format!("command {shown} is not executable"));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if md.uid() != euid && md.uid() != 0 {
        return Err(format!(
            "command {shown} is owned by uid {}, neither the gateway's uid {euid} nor root",
            md.uid()
        ));
    }
    if !trusted_dirs.is_empty() {
        let dir = command.parent().and_then(|d| d.canonicalize().ok());
        let ok = trusted_dirs.iter().any(|t| {
            t.canonicalize()
                .ok()
                .zip(dir.as_ref())
                .is_some_and(|(t, d)| d.starts_with(t))
        });
        if !ok {
            return Err(format!("command {shown} is not inside trustedDirs"));
        }
    }
    Ok(())
}

fn string_list(cfg: &Value, k: &str) -> Vec<String> {
    cfg.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

async fn resolve_exec(
    cfg: &Value,
    alias: &str,
    ids: &[&str],
    env: &(dyn Env + Sync),
) -> Vec<Result<Secret, String>> {
    match run_exec(cfg, alias, ids, env).await {
        Err(e) => ids.iter().map(|_| Err(e.clone())).collect(),
        Ok(results) => results,
    }
}

async fn run_exec(
    cfg: &Value,
    alias: &str,
    ids: &[&str],
    env: &(dyn Env + Sync),
) -> Result<Vec<Result<Secret, String>>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let command = cfg
        .get("command")
        .and_then(Value::as_str)
        .ok_or(format!("secrets.providers.{alias}.command is missing"))?;
    let command = PathBuf::from(command);
    let trusted: Vec<PathBuf> = string_list(cfg, "trustedDirs")
        .iter()
        .map(|d| expand_home(d, env))
        .collect();
    check_command(&command, &trusted)?;
    let shown = command.display().to_string();
    let timeout = Duration::from_millis(u64_field(cfg, "timeoutMs", DEFAULT_TIMEOUT_MS));
    let max = u64_field(cfg, "maxOutputBytes", DEFAULT_MAX_BYTES);
    let json_only = cfg.get("jsonOnly").and_then(Value::as_bool).unwrap_or(true);

    let mut cmd = tokio::process::Command::new(&command);
    cmd.args(string_list(cfg, "args"))
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for k in string_list(cfg, "passEnv") {
        if let Some(v) = env.var(&k) {
            cmd.env(k, v);
        }
    }
    if let Some(map) = cfg.get("env").and_then(Value::as_object) {
        for (k, v) in map {
            if let Some(v) = v.as_str() {
                cmd.env(k, v);
            }
        }
    }
    // ETXTBSY: a just-written helper can still be open for writing in a concurrently forked
    // child of another thread; retry a few times (bounded).
    let mut attempt = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) && attempt < 5 =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            Err(e) => return Err(format!("cannot run {shown}: {e}")),
        }
    };
    let request = json!({"protocolVersion": 1, "provider": alias, "ids": ids}).to_string();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let run = async {
        // A helper that exits without reading stdin makes this fail with EPIPE: ignore that.
        let _ = stdin.write_all(request.as_bytes()).await;
        drop(stdin);
        // Read up to the caps, then drain the rest so the helper never blocks on a full pipe
        // (the timeout bounds a helper that writes forever).
        async fn capped(
            r: &mut (impl tokio::io::AsyncRead + Unpin),
            cap: u64,
        ) -> std::io::Result<Vec<u8>> {
            let mut buf = Vec::new();
            (&mut *r).take(cap).read_to_end(&mut buf).await?;
            tokio::io::copy(r, &mut tokio::io::sink()).await?;
            Ok(buf)
        }
        let (o, e) = tokio::join!(capped(&mut stdout, max + 1), capped(&mut stderr, 4096));
        let out = o.map_err(|e| format!("reading the output of {shown}: {e}"))?;
        let err = e.unwrap_or_default();
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for {shown}: {e}"))?;
        Ok::<_, String>((status, out, err))
    };
    let (status, out, err) = tokio::time::timeout(timeout, run).await.map_err(|_| {
        format!(
            "{shown} timed out after {} ms (timeoutMs); it was killed",
            timeout.as_millis()
        )
    })??;
    if out.len() as u64 > max {
        return Err(format!(
            "{shown} wrote more than {max} bytes (maxOutputBytes)"
        ));
    }
    if !status.success() {
        let first = String::from_utf8_lossy(&err);
        let first = first
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        return Err(format!(
            "{shown} failed ({status}){}",
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        ));
    }
    let parsed: Result<Value, _> = serde_json::from_slice(&out);
    let resp = match parsed {
        Ok(v) => v,
        Err(_) if !json_only && ids.len() == 1 => {
            let text =
                String::from_utf8(out).map_err(|_| format!("{shown} wrote non-UTF-8 output"))?;
            let v = text.strip_suffix('\n').unwrap_or(&text);
            if v.is_empty() {
                return Err(format!("{shown} wrote an empty value"));
            }
            return Ok(vec![Ok(Secret::new(v))]);
        }
        Err(e) => {
            return Err(format!(
                "{shown} did not answer with the JSON protocol ({{\"protocolVersion\":1,\"values\":{{…}}}}): {e}"
            ));
        }
    };
    if resp.get("protocolVersion").and_then(Value::as_u64) != Some(1) {
        return Err(format!("{shown} answered without \"protocolVersion\": 1"));
    }
    let values = resp.get("values").and_then(Value::as_object);
    let errors = resp.get("errors").and_then(Value::as_object);
    Ok(ids
        .iter()
        .map(|id| match values.and_then(|v| v.get(*id)) {
            Some(Value::String(s)) if !s.is_empty() => Ok(Secret::new(s.clone())),
            Some(Value::String(_)) => Err(format!("{shown} returned an empty value for {id:?}")),
            Some(_) => Err(format!("{shown} returned a non-string value for {id:?}")),
            None => {
                let why = errors
                    .and_then(|e| e.get(*id))
                    .and_then(|e| e.get("message").and_then(Value::as_str).or(e.as_str()))
                    .map(|m| format!(": {}", m.chars().take(200).collect::<String>()))
                    .unwrap_or_default();
                Err(format!("{shown} returned no value for {id:?}{why}"))
            }
        })
        .collect())
}

#[cfg(test)]
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

    #[test]
    fn parse_input_forms() {
        let defaults = json!({"defaults": {"env": "myenv", "file": "vault"}});
        let file_ref = |p: &str, id: &str| {
            SecretInput::Ref(SecretRef {
                source: Source::File,
                provider: p.into(),
                id: id.into(),
            })
        };
        let exec_ref = |p: &str, id: &str| {
            SecretInput::Ref(SecretRef {
                source: Source::Exec,
                provider: p.into(),
                id: id.into(),
            })
        };
        let plain = |s: &str| SecretInput::Plain(Secret::new(s));
        #[rustfmt::skip]
        let cases: &[(Value, Option<&Value>, Result<SecretInput, &str>)] = &[
            (json!("plain-token"), None, Ok(plain("plain-token"))),
            (json!("${MY_TOKEN}"), None, Ok(env_ref("default", "MY_TOKEN"))),
            (json!("${MY_TOKEN}"), Some(&defaults), Ok(env_ref("myenv", "MY_TOKEN"))),
            (json!("${lower_ok}"), None, Ok(env_ref("default", "lower_ok"))),
            (json!("$MY_TOKEN"), None, Ok(env_ref("default", "MY_TOKEN"))),
            // lower-case `$word`, embedded references and bad names stay literal
            (json!("$ecret"), None, Ok(plain("$ecret"))),
            (json!("a${B}"), None, Ok(plain("a${B}"))),
            (json!("${1BAD}"), None, Ok(plain("${1BAD}"))),
            (json!({"source": "file", "id": "/gw/token"}), Some(&defaults), Ok(file_ref("vault", "/gw/token"))),
            (json!({"source": "exec", "provider": "op", "id": "k"}), None, Ok(exec_ref("op", "k"))),
            (json!({"source": "vault", "id": "x"}), None, Err("unknown SecretRef source")),
            (json!({"source": "env"}), None, Err("non-empty string \"id\"")),
            (json!({"id": "x"}), None, Err("needs \"source\"")),
            (json!({"source": "env", "id": "X", "extra": 1}), None, Err("unknown SecretRef key")),
            (json!({"source": "env", "id": "X", "provider": 3}), None, Err("\"provider\" must be")),
            (json!(42), None, Err("must be a string or a SecretRef")),
        ];
        for (v, cfg, want) in cases {
            let got = parse_input(v, *cfg);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(&g, w, "{v}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{v}: {g}"),
                (g, w) => panic!("{v}: got {g:?}, want {w:?}"),
            }
        }
    }

    fn env_ref(provider: &str, id: &str) -> SecretInput {
        SecretInput::Ref(SecretRef {
            source: Source::Env,
            provider: provider.into(),
            id: id.into(),
        })
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let input = SecretInput::Plain(s);
        assert!(!format!("{input:?}").contains("hunter2"));
    }

    #[test]
    fn surfaces_lists_auth_and_provider_keys() {
        let doc = json!({
            "gateway": {"auth": {"token": "t", "password": null}},
            "models": {"providers": {"openai": {"apiKey": "${OPENAI_KEY}"}, "local": {"baseUrl": "x"}}}
        });
        let got: Vec<String> = surfaces(&doc).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            got,
            ["gateway.auth.token", "models.providers.openai.apiKey"]
        );
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn env_refs_resolve_from_injected_env_with_allowlist() {
        let vars: &[(&str, &str)] = &[("GW_TOKEN", "tok-1"), ("OPENAI_KEY", "sk-1")];
        let doc = json!({
            "gateway": {"auth": {"token": "${GW_TOKEN}"}},
            "models": {"providers": {
                "openai": {"apiKey": {"source": "env", "provider": "strict", "id": "OPENAI_KEY"}},
                "other": {"apiKey": {"source": "env", "provider": "strict", "id": "GW_TOKEN"}},
                "missing": {"apiKey": "${NOPE_NOT_SET}"}
            }},
            "secrets": {"providers": {"strict": {"source": "env", "allowlist": ["OPENAI_KEY"]}}}
        });
        let a = rt().block_on(activate(&doc, &env(vars), None));
        assert_eq!(
            a.snapshot.get("gateway.auth.token").unwrap().expose(),
            "tok-1"
        );
        assert_eq!(
            a.snapshot
                .get("models.providers.openai.apiKey")
                .unwrap()
                .expose(),
            "sk-1"
        );
        assert_eq!(a.resolved, 2);
        let paths: Vec<&str> = a.failures.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "models.providers.missing.apiKey",
                "models.providers.other.apiKey"
            ]
        );
        assert!(
            a.failures[0].error.contains("NOPE_NOT_SET is not set"),
            "{:?}",
            a.failures
        );
        assert!(
            a.failures[1].error.contains("allowlist"),
            "{:?}",
            a.failures
        );
        assert!(a.failures.iter().all(|f| f.state == EntryState::Cold));
        assert!(a.auth_blocking("token").is_empty());
        let report = a.report().to_string();
        assert!(
            !report.contains("tok-1") && !report.contains("sk-1"),
            "{report}"
        );
    }

    #[test]
    fn failing_unchanged_ref_stays_stale_changed_ref_goes_cold() {
        let doc = json!({"gateway": {"auth": {"token": "${GW_TOKEN}"}}});
        let first = rt().block_on(activate(&doc, &env(&[("GW_TOKEN", "v1")]), None));
        assert!(first.failures.is_empty());
        // Same ref, now failing: last good value kept, reported stale, auth not blocked.
        let second = rt().block_on(activate(&doc, &env(&[]), Some(&first.snapshot)));
        assert_eq!(second.failures.len(), 1);
        assert_eq!(second.failures[0].state, EntryState::Stale);
        assert_eq!(
            second.snapshot.get("gateway.auth.token").unwrap().expose(),
            "v1"
        );
        assert!(second.auth_blocking("token").is_empty());
        assert_eq!(second.snapshot.degraded().len(), 1);
        // A changed ref that fails has no value: gateway auth fails closed.
        let changed = json!({"gateway": {"auth": {"token": "${OTHER_TOKEN}"}}});
        let third = rt().block_on(activate(&changed, &env(&[]), Some(&first.snapshot)));
        assert_eq!(third.failures[0].state, EntryState::Cold);
        assert!(third.snapshot.get("gateway.auth.token").is_none());
        assert_eq!(third.auth_blocking("token").len(), 1);
        assert!(third.auth_blocking("password").is_empty());
    }

    #[test]
    fn unknown_provider_and_source_mismatch_are_reported() {
        let doc = json!({
            "gateway": {"auth": {"token": {"source": "file", "provider": "nope", "id": "/t"}}},
            "models": {"providers": {"a": {"apiKey": {"source": "exec", "provider": "f", "id": "k"}}}},
            "secrets": {"providers": {"f": {"source": "file", "path": "/x"}}}
        });
        let a = rt().block_on(activate(&doc, &env(&[]), None));
        assert_eq!(a.failures.len(), 2);
        assert!(
            a.failures[0]
                .error
                .contains("secrets.providers.nope is not configured"),
            "{:?}",
            a.failures
        );
        assert!(
            a.failures[1]
                .error
                .contains("has source \"file\" but the ref asks for \"exec\""),
            "{:?}",
            a.failures
        );
        assert_eq!(a.auth_blocking("token").len(), 1);
    }
}
