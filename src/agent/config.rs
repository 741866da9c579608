//! Agent-facing configuration, read from a config snapshot per run (never cached, so a reload
//! applies to the next run):
//! - model providers `models.providers.<id>` (`baseUrl`, `apiKey`, `api`, `headers`, `models[]`),
//! - model selection `agents.entries.<id>.model` → `agents.defaults.model` (a `"provider/model"`
//!   string or `{primary}`), with upstream's fallbacks (bare ids, first configured model,
//!   the built-in `openai/gpt-6-astra` default),
//! - run limits (`timeoutSeconds`, `maxConcurrent`),
//! - the OpenAI-compatible HTTP endpoint switches and `hooks.*`.
use serde_json::Value;

use crate::config::secrets::SecretsSnapshot;
use crate::config::{Config, resolve_secret_value};

/// Upstream's implicit default provider when nothing is configured.
pub const DEFAULT_PROVIDER: &str = "openai";
/// Upstream's implicit default model (what `sessions.list.defaults` reports unconfigured).
pub const DEFAULT_MODEL: &str = "gpt-6-astra";
/// Base URL of the built-in `openai` provider (used with `OPENAI_API_KEY`).
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Context window assumed when a model entry does not declare `contextWindow`.
pub const DEFAULT_CONTEXT_TOKENS: u64 = 200_000;
/// Output budget assumed when trimming history and the model declares no `maxTokens`.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4_096;
/// Whole-run timeout when neither the request nor the config sets one (upstream: 600 s).
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// Runs executing at once across sessions (`agents.defaults.maxConcurrent`, upstream: 4).
pub const DEFAULT_MAX_CONCURRENT: usize = 4;
/// The only provider API this build speaks.
pub const API_OPENAI_COMPLETIONS: &str = "openai-completions";

/// One model entry of a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// Model id sent upstream.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `contextWindow`.
    pub context_window: Option<u64>,
    /// `maxTokens`.
    pub max_tokens: Option<u64>,
}

/// A configured (or built-in) provider with its credential resolved.
#[derive(Clone, PartialEq)]
pub struct Provider {
    /// Provider id (`models.providers.<id>`).
    pub id: String,
    /// `baseUrl` without a trailing slash (e.g. `http://127.0.0.1:11434/v1`).
    pub base_url: String,
    /// Resolved `apiKey` (`None`: no `Authorization` header, e.g. a local Ollama).
    pub api_key: Option<String>,
    /// Extra request headers (`headers`).
    pub headers: Vec<(String, String)>,
    /// Declared models.
    pub models: Vec<ModelEntry>,
    /// Where the credential came from (`provider-config`, `env`, `none`).
    pub credential_evidence: &'static str,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("models", &self.models)
            .finish()
    }
}

/// The model a run will call.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// The provider.
    pub provider: Provider,
    /// Model id.
    pub model: String,
    /// Context window (tokens).
    pub context_tokens: u64,
    /// Declared output cap (tokens).
    pub max_tokens: Option<u64>,
}

/// Why no model could be resolved. `message` is what clients see (upstream's text where
/// upstream has one); `hint` says what to do and goes to logs and `error.details`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelError {
    /// Client-facing message.
    pub message: String,
    /// What to do next.
    pub hint: String,
    /// The provider concerned.
    pub provider: String,
    /// True when the failure is a missing credential/route (HTTP APIs answer 401).
    pub auth: bool,
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Parses `models.providers` (without resolving secrets). Entries that are not objects are
/// reported by [`resolve_model`] when used; here they are skipped.
pub fn configured_models(cfg: &Config) -> Vec<(String, ModelEntry)> {
    let mut out = Vec::new();
    if let Some(providers) = cfg.get("models.providers").and_then(Value::as_object) {
        for (pid, p) in providers {
            for m in parse_models(p) {
                out.push((pid.clone(), m));
            }
        }
    }
    out
}

fn parse_models(p: &Value) -> Vec<ModelEntry> {
    p.get("models")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let id = match m {
                Value::String(s) => s.as_str(),
                _ => str_at(m, "id")?,
            };
            if id.is_empty() {
                return None;
            }
            Some(ModelEntry {
                id: id.to_string(),
                name: str_at(m, "name").unwrap_or(id).to_string(),
                context_window: m.get("contextWindow").and_then(Value::as_u64),
                max_tokens: m.get("maxTokens").and_then(Value::as_u64),
            })
        })
        .collect()
}

/// Configured agent ids (`agents.entries` keys; `main` when none are configured).
pub fn agent_ids(cfg: &Config) -> Vec<String> {
    match cfg.get("agents.entries").and_then(Value::as_object) {
        Some(e) if !e.is_empty() => e.keys().cloned().collect(),
        _ => vec!["main".into()],
    }
}

/// The configured default agent id: `agents.default`, else `main` when it is an entry, else
/// the first entry, else `main`.
pub fn default_agent_id(cfg: &Config) -> String {
    cfg.get("agents.default")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            let entries = cfg.get("agents.entries").and_then(Value::as_object)?;
            if entries.contains_key("main") {
                Some("main".into())
            } else {
                entries.keys().next().cloned()
            }
        })
        .unwrap_or_else(|| "main".into())
}

/// Normalizes an agent id as upstream does (trimmed, lowercase).
pub fn normalize_agent_id(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}

/// True when `id` names a configured agent.
pub fn agent_exists(cfg: &Config, id: &str) -> bool {
    let id = normalize_agent_id(id);
    agent_ids(cfg).iter().any(|a| normalize_agent_id(a) == id)
}

fn model_ref_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Object(o) => o
            .get("primary")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        _ => None,
    }
}

/// The configured model ref for an agent (`agents.entries.<id>.model` → `agents.defaults.model`).
pub fn configured_model_ref(cfg: &Config, agent_id: &str) -> Option<String> {
    cfg.get("agents.entries")
        .and_then(Value::as_object)
        .and_then(|e| e.get(agent_id))
        .and_then(|e| e.get("model"))
        .and_then(model_ref_value)
        .or_else(|| cfg.get("agents.defaults.model").and_then(model_ref_value))
}

/// Splits a ref into (provider, model) following upstream: `provider/model` when the prefix is
/// a configured provider (or the built-in `openai`); a bare id that uniquely matches a
/// configured model takes that provider; anything else goes to the default provider.
pub fn split_model_ref(cfg: &Config, r: &str) -> Result<(String, String), ModelError> {
    let providers = cfg.get("models.providers").and_then(Value::as_object);
    if let Some((p, m)) = r.split_once('/')
        && !m.is_empty()
        && (providers.is_some_and(|ps| ps.contains_key(p)) || p == DEFAULT_PROVIDER)
    {
        return Ok((p.to_string(), m.to_string()));
    }
    let matches: Vec<String> = configured_models(cfg)
        .into_iter()
        .filter(|(_, m)| m.id == r)
        .map(|(p, _)| p)
        .collect();
    match matches.as_slice() {
        [one] => Ok((one.clone(), r.to_string())),
        [] => match r.split_once('/') {
            Some((p, m)) if !m.is_empty() => Ok((p.to_string(), m.to_string())),
            _ => Ok((DEFAULT_PROVIDER.to_string(), r.to_string())),
        },
        many => Err(ModelError {
            message: format!(
                "model \"{r}\" is offered by several providers ({}); name one as \"<provider>/{r}\"",
                many.join(", ")
            ),
            hint: "use a provider-qualified model ref".into(),
            provider: many[0].clone(),
            auth: false,
        }),
    }
}

/// Picks the model for a run: explicit overrides (`provider`/`model` params, `x-openclaw-model`),
/// then the agent's configured model, then the first configured model, then upstream's default.
pub fn resolve_model(
    cfg: &Config,
    secrets: &SecretsSnapshot,
    agent_id: &str,
    provider_override: Option<&str>,
    model_override: Option<&str>,
) -> Result<ResolvedModel, ModelError> {
    let provider_override = provider_override.map(str::trim).filter(|s| !s.is_empty());
    let model_override = model_override.map(str::trim).filter(|s| !s.is_empty());
    let (pid, mid) = match (provider_override, model_override) {
        (Some(p), Some(m)) => (p.to_string(), m.to_string()),
        (None, Some(m)) => split_model_ref(cfg, m)?,
        (p, None) => {
            let (cp, cm) = match configured_model_ref(cfg, agent_id) {
                Some(r) => split_model_ref(cfg, &r)?,
                None => match configured_models(cfg).into_iter().next() {
                    Some((p, m)) => (p, m.id),
                    None => (DEFAULT_PROVIDER.to_string(), DEFAULT_MODEL.to_string()),
                },
            };
            match p {
                Some(p) if p != cp => {
                    let first = cfg
                        .get(&format!("models.providers.{p}"))
                        .map(parse_models)
                        .and_then(|m| m.into_iter().next())
                        .map(|m| m.id)
                        .unwrap_or(cm);
                    (p.to_string(), first)
                }
                _ => (cp, cm),
            }
        }
    };
    let provider = resolve_provider(cfg, secrets, &pid)?;
    let entry = provider.models.iter().find(|m| m.id == mid).cloned();
    Ok(ResolvedModel {
        context_tokens: entry
            .as_ref()
            .and_then(|e| e.context_window)
            .unwrap_or(DEFAULT_CONTEXT_TOKENS),
        max_tokens: entry.as_ref().and_then(|e| e.max_tokens),
        provider,
        model: mid,
    })
}

/// The provider `pid` with its credential resolved: `apiKey` comes from the gateway's secrets
/// snapshot (SecretRefs `env`/`file`/`exec`, resolved at start, reload and `secrets.reload`);
/// a value the snapshot does not hold (a standalone state) is resolved here (plain string,
/// `${VAR}`, env ref).
pub fn resolve_provider(
    cfg: &Config,
    secrets: &SecretsSnapshot,
    pid: &str,
) -> Result<Provider, ModelError> {
    let no_route = |hint: String| ModelError {
        message: format!("No route-compatible authentication source is configured for {pid}."),
        hint,
        provider: pid.to_string(),
        auth: true,
    };
    let invalid = |message: String| ModelError {
        hint: format!("fix models.providers.{pid} in {}", cfg.path.display()),
        message,
        provider: pid.to_string(),
        auth: false,
    };
    let Some(p) = cfg.get(&format!("models.providers.{pid}")) else {
        if pid == DEFAULT_PROVIDER
            && let Some(key) = std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty())
        {
            return Ok(Provider {
                id: pid.into(),
                base_url: OPENAI_BASE_URL.into(),
                api_key: Some(key),
                headers: Vec::new(),
                models: Vec::new(),
                credential_evidence: "env",
            });
        }
        return Err(no_route(format!(
            "configure models.providers.{pid} (baseUrl, apiKey, api: \"openai-completions\", models) and agents.defaults.model.primary \"<provider>/<model>\" in {}{}",
            cfg.path.display(),
            if pid == DEFAULT_PROVIDER {
                ", or export OPENAI_API_KEY"
            } else {
                ""
            }
        )));
    };
    if !p.is_object() {
        return Err(invalid(format!(
            "models.providers.{pid} must be an object with baseUrl, apiKey, api and models"
        )));
    }
    let api = str_at(p, "api").unwrap_or(API_OPENAI_COMPLETIONS);
    if api != API_OPENAI_COMPLETIONS {
        return Err(invalid(format!(
            "models.providers.{pid}.api \"{api}\" is not supported by this gateway; use \"{API_OPENAI_COMPLETIONS}\" (OpenAI, Ollama, vLLM, llama.cpp and other OpenAI-compatible servers)"
        )));
    }
    let base_url = match str_at(p, "baseUrl").map(str::trim) {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            u.trim_end_matches('/').to_string()
        }
        Some(u) => {
            return Err(invalid(format!(
                "models.providers.{pid}.baseUrl {u:?} must be an http:// or https:// URL (e.g. http://127.0.0.1:11434/v1)"
            )));
        }
        None if pid == DEFAULT_PROVIDER => OPENAI_BASE_URL.to_string(),
        None => {
            return Err(invalid(format!(
                "models.providers.{pid}.baseUrl is missing (e.g. http://127.0.0.1:11434/v1)"
            )));
        }
    };
    let what = format!("models.providers.{pid}.apiKey");
    if let Some(err) = secrets.cold_failure(&what) {
        return Err(ModelError {
            message: format!("the API key of model provider \"{pid}\" is unavailable: {err}"),
            hint: format!("fix {what} or its secrets provider, then run `openclaw secrets reload`"),
            provider: pid.to_string(),
            auth: true,
        });
    }
    let resolved = match secrets.get(&what) {
        Some(s) => Ok(Some(s.expose().to_string())),
        None => resolve_secret_value(p.get("apiKey"), &what),
    };
    let (api_key, evidence) = match resolved {
        Ok(Some(k)) if secrets.is_ref(&what) => (Some(k), "secret-ref"),
        Ok(Some(k)) => (Some(k), "provider-config"),
        Ok(None) if pid == DEFAULT_PROVIDER => match std::env::var("OPENAI_API_KEY") {
            Ok(k) if !k.is_empty() => (Some(k), "env"),
            _ => return Err(no_route(format!("set {what} or export OPENAI_API_KEY"))),
        },
        Ok(None) => (None, "none"),
        Err(e) => {
            return Err(ModelError {
                message: e.to_string(),
                hint: format!("fix {what}"),
                provider: pid.to_string(),
                auth: true,
            });
        }
    };
    let headers = p
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Provider {
        id: pid.to_string(),
        base_url,
        api_key,
        headers,
        models: parse_models(p),
        credential_evidence: evidence,
    })
}

/// Whole-run timeout for an agent: request value (seconds, 0 = none) →
/// `agents.entries.<id>.timeoutSeconds` → `agents.defaults.timeoutSeconds` → 600 s.
pub fn run_timeout(cfg: &Config, agent_id: &str, requested_secs: Option<u64>) -> Option<u64> {
    let secs = requested_secs
        .or_else(|| {
            cfg.get(&format!("agents.entries.{agent_id}.timeoutSeconds"))
                .and_then(Value::as_u64)
        })
        .or_else(|| {
            cfg.get("agents.defaults.timeoutSeconds")
                .and_then(Value::as_u64)
        })
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    (secs > 0).then_some(secs)
}

/// `agents.defaults.maxConcurrent` (read at startup).
pub fn max_concurrent(cfg: &Config) -> usize {
    cfg.get("agents.defaults.maxConcurrent")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_MAX_CONCURRENT)
}

fn flag(cfg: &Config, path: &str) -> bool {
    cfg.get(path).and_then(Value::as_bool).unwrap_or(false)
}

/// `gateway.http.endpoints.chatCompletions.enabled`.
pub fn chat_completions_enabled(cfg: &Config) -> bool {
    flag(cfg, "gateway.http.endpoints.chatCompletions.enabled")
}

/// `gateway.http.endpoints.responses.enabled`.
pub fn responses_enabled(cfg: &Config) -> bool {
    flag(cfg, "gateway.http.endpoints.responses.enabled")
}

/// `hooks.*` as the HTTP ingress needs it.
#[derive(Clone, PartialEq)]
pub struct HooksConfig {
    /// `hooks.enabled`.
    pub enabled: bool,
    /// `hooks.token` resolved (`Err`: configured but unresolvable → every request is refused).
    pub token: Result<Option<String>, String>,
    /// `hooks.path`, normalized (leading slash, no trailing slash).
    pub path: String,
    /// `hooks.allowedAgentIds` (`None` = unrestricted).
    pub allowed_agent_ids: Option<Vec<String>>,
    /// `hooks.defaultSessionKey`.
    pub default_session_key: Option<String>,
    /// `hooks.allowRequestSessionKey`.
    pub allow_request_session_key: bool,
    /// `hooks.allowedSessionKeyPrefixes` (lowercase; empty = unrestricted).
    pub allowed_session_key_prefixes: Vec<String>,
}

impl std::fmt::Debug for HooksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HooksConfig")
            .field("enabled", &self.enabled)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Normalizes `hooks.path`: leading slash added, trailing slashes removed; `/` is rejected.
pub fn normalize_hooks_path(p: &str) -> Option<String> {
    let t = p.trim().trim_end_matches('/');
    if t.is_empty() {
        return None;
    }
    Some(if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    })
}

/// Reads `hooks.*`.
pub fn hooks(cfg: &Config) -> HooksConfig {
    let strings = |path: &str| -> Option<Vec<String>> {
        cfg.get(path).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
    };
    let path = cfg
        .get("hooks.path")
        .and_then(Value::as_str)
        .map(|p| normalize_hooks_path(p).unwrap_or_default())
        .unwrap_or_else(|| "/hooks".into());
    HooksConfig {
        enabled: flag(cfg, "hooks.enabled") && !path.is_empty(),
        token: resolve_secret_value(cfg.get("hooks.token"), "hooks.token")
            .map_err(|e| e.to_string()),
        path,
        allowed_agent_ids: strings("hooks.allowedAgentIds")
            .filter(|ids| !ids.iter().any(|i| i == "*"))
            .map(|ids| ids.iter().map(|i| normalize_agent_id(i)).collect()),
        default_session_key: cfg
            .get("hooks.defaultSessionKey")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        allow_request_session_key: flag(cfg, "hooks.allowRequestSessionKey"),
        allowed_session_key_prefixes: strings("hooks.allowedSessionKeyPrefixes")
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Config {
        Config::parse(Path::new("/x/openclaw.json"), text.into()).unwrap()
    }

    static NONE: std::sync::LazyLock<SecretsSnapshot> =
        std::sync::LazyLock::new(SecretsSnapshot::default);

    const FAKE: &str = "{models:{providers:{fake:{baseUrl:'http://127.0.0.1:9/v1/',apiKey:'k',api:'openai-completions',models:[{id:'fake-1',contextWindow:1000,maxTokens:50}]}}},agents:{defaults:{model:{primary:'fake/fake-1'}}}}";

    #[test]
    fn primary_resolves_with_entry_limits() {
        let r = resolve_model(&cfg(FAKE), &NONE, "main", None, None).unwrap();
        assert_eq!(r.provider.id, "fake");
        assert_eq!(r.provider.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(r.provider.api_key.as_deref(), Some("k"));
        assert_eq!(r.model, "fake-1");
        assert_eq!((r.context_tokens, r.max_tokens), (1000, Some(50)));
        // string form, bare id and an override all land on the same model
        let s = cfg(
            "{models:{providers:{fake:{baseUrl:'http://h/v1',models:['m1']}}},agents:{defaults:{model:'m1'}}}",
        );
        let r = resolve_model(&s, &NONE, "main", None, None).unwrap();
        assert_eq!((r.provider.id.as_str(), r.model.as_str()), ("fake", "m1"));
        assert_eq!(r.provider.api_key, None);
        let r = resolve_model(&cfg(FAKE), &NONE, "main", None, Some("fake/other")).unwrap();
        assert_eq!(r.model, "other");
        assert_eq!(r.context_tokens, DEFAULT_CONTEXT_TOKENS);
    }

    #[test]
    fn no_provider_is_upstreams_error() {
        if std::env::var_os("OPENAI_API_KEY").is_some() {
            eprintln!("SKIP: OPENAI_API_KEY is set in the test environment");
            return;
        }
        let e = resolve_model(&cfg("{}"), &NONE, "main", None, None).unwrap_err();
        assert_eq!(
            e.message,
            "No route-compatible authentication source is configured for openai."
        );
        assert!(e.auth);
        assert!(e.hint.contains("models.providers.openai"), "{}", e.hint);
    }

    #[test]
    fn first_configured_model_without_primary_and_bad_providers() {
        let c = cfg("{models:{providers:{a:{baseUrl:'http://h/v1',models:[{id:'x'}]}}}}");
        assert_eq!(
            resolve_model(&c, &NONE, "main", None, None).unwrap().model,
            "x"
        );
        let bad = cfg("{models:{providers:{a:{api:'anthropic-messages',models:['x']}}}}");
        let e = resolve_model(&bad, &NONE, "main", None, None).unwrap_err();
        assert!(e.message.contains("not supported"), "{}", e.message);
        let nourl = cfg("{models:{providers:{a:{models:['x']}}}}");
        let e = resolve_model(&nourl, &NONE, "main", None, None).unwrap_err();
        assert!(e.message.contains("baseUrl is missing"), "{}", e.message);
        let dup = cfg(
            "{models:{providers:{a:{baseUrl:'http://h',models:['x']},b:{baseUrl:'http://h',models:['x']}}},agents:{defaults:{model:'x'}}}",
        );
        assert!(resolve_model(&dup, &NONE, "main", None, None).is_err());
    }

    #[test]
    fn hooks_path_and_timeouts() {
        assert_eq!(normalize_hooks_path("hooks/").as_deref(), Some("/hooks"));
        assert_eq!(normalize_hooks_path("/"), None);
        let h = hooks(&cfg("{hooks:{enabled:true,token:'t',path:'in/'}}"));
        assert!(h.enabled);
        assert_eq!(h.path, "/in");
        assert_eq!(h.token, Ok(Some("t".into())));
        assert!(!hooks(&cfg("{hooks:{enabled:true,path:'/'}}")).enabled);
        let c = cfg("{agents:{defaults:{timeoutSeconds:5}}}");
        assert_eq!(run_timeout(&c, "main", None), Some(5));
        assert_eq!(run_timeout(&c, "main", Some(0)), None);
        assert_eq!(run_timeout(&cfg("{}"), "main", None), Some(600));
    }
}
