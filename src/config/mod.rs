//! The config file: JSON5 on disk (`<state>/openclaw.json` or `OPENCLAW_CONFIG_PATH`), kept as a
//! `serde_json::Value` (the whole document, for `config.get` and reload diffs) plus a typed view
//! of the sections this gateway acts on.
//!
//! Loading never half-succeeds: a file that does not parse or validate is an error naming the
//! file, line and column, and callers keep whatever config they had (reload keeps the last good).
pub mod paths;
pub(crate) mod reload;
pub(crate) mod schema;
pub mod secrets;
pub(crate) mod watch;
pub(crate) mod write;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Another profile of this home: its name (`None` for the default `~/.openclaw`), state dir, and
/// the port it is configured on (its config's `gateway.port`, else its profile default).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct OtherProfile {
    pub(crate) name: Option<String>,
    pub(crate) state_dir: PathBuf,
    pub(crate) port: u16,
}

/// The other profiles living beside `paths` in its home, sorted; an error when the home cannot
/// be read.
pub(crate) fn other_profiles(paths: &paths::Paths) -> std::io::Result<Vec<OtherProfile>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(&paths.home)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let profile = if name == ".openclaw" {
            None
        } else if let Some(p) = name.strip_prefix(".openclaw-") {
            Some(p.to_string())
        } else {
            continue;
        };
        let dir = e.path();
        if dir == paths.state_dir || !dir.is_dir() {
            continue;
        }
        let port = Config::load(&dir.join("openclaw.json"))
            .ok()
            .and_then(|c| c.gateway.port)
            .filter(|p| *p > 0)
            .unwrap_or_else(|| match profile.as_deref() {
                None => paths::DEFAULT_PORT,
                Some("dev") => paths::DEV_PORT,
                Some(p) => paths::profile_port(p),
            });
        out.push(OtherProfile {
            name: profile,
            state_dir: dir,
            port,
        });
    }
    out.sort();
    Ok(out)
}

/// The typed view of `gateway.*` (docs/lifecycle.md §8). Unknown keys under `gateway` are kept in
/// the raw document; keys we act on are typed here.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewayConfig {
    /// `local` or `remote`; the gateway refuses to start unless `local` (or `--allow-unconfigured`).
    pub mode: Option<String>,
    /// Listening port.
    pub port: Option<u16>,
    /// `loopback` (default), `lan`, `custom` (+ `customBindHost`), `auto`, `tailnet`.
    pub bind: Option<String>,
    /// Host for `bind: "custom"`.
    pub custom_bind_host: Option<String>,
    /// Auth settings.
    pub auth: AuthConfig,
    /// Control UI settings.
    pub control_ui: ControlUiConfig,
    /// Config reload settings.
    pub reload: ReloadConfig,
}

/// `gateway.auth`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthConfig {
    /// `none`, `token`, `password`, `trusted-proxy`.
    pub mode: Option<String>,
    /// A string or a SecretRef object.
    pub token: Option<Value>,
    /// A string or a SecretRef object.
    pub password: Option<Value>,
    /// Failed-auth rate limiting.
    pub rate_limit: Option<RateLimitConfig>,
}

/// `gateway.auth.rateLimit`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RateLimitConfig {
    /// Failures allowed per window.
    pub max_attempts: u32,
    /// Window length.
    pub window_ms: u64,
    /// Lockout after the limit is hit.
    pub lockout_ms: u64,
    /// Loopback clients are not limited (upstream default: true).
    pub exempt_loopback: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_attempts: 10,
            window_ms: 60_000,
            lockout_ms: 300_000,
            exempt_loopback: true,
        }
    }
}

/// `gateway.controlUi`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ControlUiConfig {
    /// Serve the Control UI page (default true).
    pub enabled: Option<bool>,
    /// Base path the UI is served under (`/` or empty: the root; validated as a URL path).
    #[serde(deserialize_with = "base_path")]
    pub base_path: Option<String>,
    /// A directory holding a built Control UI (`index.html`, `assets/`), e.g. an unpacked
    /// `openclaw@2026.9.6` package's `dist/control-ui`; unset: the gateway's own page.
    pub root: Option<String>,
    /// Browser origins allowed to open WebSockets besides the gateway's own host.
    pub allowed_origins: Vec<String>,
}

/// `gateway.controlUi.basePath`: a URL path (`/openclaw`), nothing a URL or HTML would read
/// differently (no query, fragment, `..`, whitespace, quotes or angle brackets).
fn base_path<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    if let Some(p) = &v {
        let bad = p
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "?#\\\"'<>%".contains(*c));
        if let Some(c) = bad {
            return Err(serde::de::Error::custom(format!(
                "controlUi.basePath {p:?} contains {c:?}: use a plain URL path such as \"/openclaw\""
            )));
        }
        if p.split('/').any(|seg| seg == ".." || seg == ".") {
            return Err(serde::de::Error::custom(format!(
                "controlUi.basePath {p:?} contains a dot segment: use a plain URL path such as \"/openclaw\""
            )));
        }
    }
    Ok(v)
}

/// `gateway.reload`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ReloadConfig {
    /// `off`, `hot`, `restart`, `hybrid` (default).
    pub mode: Option<String>,
}

/// A loaded config: the raw document and the typed view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Whether the file existed (a missing file yields an empty document).
    pub exists: bool,
    /// The source text as read (for hashing and `config.get.raw`).
    pub raw: String,
    /// The parsed document.
    pub doc: Value,
    /// The typed `gateway` section.
    pub gateway: GatewayConfig,
}

impl Config {
    /// Loads and validates `path`. A missing file is `Ok` with `exists: false`.
    pub fn load(path: &Path) -> Result<Config> {
        // A directory (or a FIFO, a device) where the config should be is not something a
        // restart fixes: a startup refusal (exit 78), not a failure that `Restart=` repeats.
        if let Ok(m) = std::fs::metadata(path)
            && !m.is_file()
        {
            let what = if m.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            return Err(Error::Config(format!(
                "config {} is {what}: the config must be a regular file. Move it away and \
                 restore the config file there, or point OPENCLAW_CONFIG_PATH at the config file.",
                path.display()
            )));
        }
        let raw = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config {
                    path: path.to_path_buf(),
                    exists: false,
                    raw: String::new(),
                    doc: Value::Object(Default::default()),
                    gateway: GatewayConfig::default(),
                });
            }
            Err(e) => return Err(Error::io("reading config", path, e)),
        };
        Self::parse(path, raw)
    }

    /// Parses and validates config text that claims to come from `path`.
    pub fn parse(path: &Path, raw: String) -> Result<Config> {
        let doc: Value = if raw.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            json5::from_str(&raw).map_err(|e| syntax_error(path, &e))?
        };
        if !doc.is_object() {
            return Err(Error::ConfigSyntax {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: "the top level must be an object".into(),
            });
        }
        let (line, column) = locate_key(&raw, "gateway");
        Self::from_doc(path, raw, doc).map_err(|e| Error::ConfigSyntax {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("gateway: {e}"),
        })
    }

    /// A config around an already-parsed object `doc` whose text is `raw` (also for merged
    /// documents); fails only when `gateway` does not have the typed shape.
    pub(crate) fn from_doc(
        path: &Path,
        raw: String,
        doc: Value,
    ) -> std::result::Result<Config, serde_json::Error> {
        let gateway = match doc.get("gateway") {
            None | Some(Value::Null) => GatewayConfig::default(),
            Some(g) => GatewayConfig::deserialize(g)?,
        };
        Ok(Config {
            path: path.to_path_buf(),
            exists: true,
            raw,
            doc,
            gateway,
        })
    }

    /// Looks a dotted path up in the document (`"gateway.auth.token"`).
    pub fn get(&self, dotted: &str) -> Option<&Value> {
        dotted
            .split('.')
            .try_fold(&self.doc, |v, k| v.as_object().and_then(|o| o.get(k)))
    }
}

/// The sentinel `config.get` shows instead of a secret value.
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// True for keys whose string values are secrets (`token`, `password`, `apiKey`, `*Secret`, …).
/// Counters such as `maxTokens` are numbers and therefore never match.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("token")
        || k.ends_with("password")
        || k.contains("secret")
        || k == "apikey"
        || k == "api_key"
        || k.ends_with("privatekey")
        || k == "authorization"
}

/// Maps whose every string value is a credential whatever its key is called: a provider's
/// `headers` (`x-api-key`, `api-key`, `Cookie`, …) and `env` maps.
fn is_credential_map(key: &str) -> bool {
    key.eq_ignore_ascii_case("headers") || key.eq_ignore_ascii_case("env")
}

/// The password of a URL's userinfo (`scheme://user:password@host/…`), if `s` has one.
fn url_password(s: &str) -> Option<(usize, usize)> {
    let authority_start = s.find("://")? + 3;
    let rest = &s[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    (colon + 1 < at).then_some((authority_start + colon + 1, authority_start + at))
}

/// A copy of `doc` with every secret replaced by [`REDACTED`], plus the secret strings that were
/// replaced. Redacted by construction, not by a list of known fields: string values under
/// secret-named keys ([`is_secret_key`]), every string under a credential map (`headers`, `env`),
/// the password of any URL's userinfo, and — second pass — any other string equal to a secret
/// found so far (a token copied somewhere else).
pub fn redact_secrets(doc: &Value) -> (Value, Vec<String>) {
    fn walk(v: &Value, credential: bool, found: &mut Vec<String>) -> Value {
        match v {
            // A SecretRef names where a secret lives, not the secret: shown as it is (the UI
            // edits it), and its `source`/`id` words must not become "secrets" for `scrub`.
            Value::Object(_)
                if matches!(
                    secrets::parse_input(v, None),
                    Ok(secrets::SecretInput::Ref(_))
                ) =>
            {
                v.clone()
            }
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let credential = credential || is_credential_map(k);
                        let x = match x {
                            Value::String(s) if !s.is_empty() && is_secret_key(k) => {
                                found.push(s.clone());
                                Value::String(REDACTED.into())
                            }
                            other => walk(other, credential, found),
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, credential, found)).collect()),
            Value::String(s) if credential && !s.is_empty() => {
                found.push(s.clone());
                Value::String(REDACTED.into())
            }
            Value::String(s) => match url_password(s) {
                Some((from, to)) => {
                    found.push(s[from..to].to_string());
                    Value::String(format!("{}{REDACTED}{}", &s[..from], &s[to..]))
                }
                None => v.clone(),
            },
            other => other.clone(),
        }
    }
    /// Second pass: the same secret string under a key that does not look secret (copied into
    /// a plain field, say) is redacted too.
    fn scrub(v: &mut Value, found: &[String]) {
        match v {
            Value::String(s) if found.iter().any(|f| f == s) => *s = REDACTED.into(),
            Value::Object(o) => o.values_mut().for_each(|x| scrub(x, found)),
            Value::Array(a) => a.iter_mut().for_each(|x| scrub(x, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    let mut out = walk(doc, false, &mut found);
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    if !found.is_empty() {
        scrub(&mut out, &found);
    }
    (out, found)
}

/// The text `config.get` shows as `raw`: the redacted document serialised, never the original
/// text edited. Scrubbing the file's text by substring misses every secret the file spells
/// differently from its value (`\"`, `\\`, `\u00e9`, a line-continued string), so nothing of the
/// original text is shown; comments and formatting are the price.
pub fn redacted_raw(redacted: &Value) -> String {
    let mut s = serde_json::to_string_pretty(redacted).unwrap_or_default();
    s.push('\n');
    s
}

/// Resolves a secret-valued field (`gateway.auth.token`/`password`): a plain string, the env
/// shorthand `${VAR}` / `$VAR`, or a SecretRef `{source: "env", id}`. `what` names the field
/// in errors. Other SecretRef sources need the secrets runtime and are reported as such.
pub fn resolve_secret_value(v: Option<&Value>, what: &str) -> Result<Option<String>> {
    let env = |name: &str| -> Result<Option<String>> {
        match std::env::var(name) {
            Ok(s) if !s.is_empty() => Ok(Some(s)),
            _ => Err(Error::Config(format!(
                "{what} refers to environment variable {name}, which is not set; export it or change {what}"
            ))),
        }
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                env(name)
            } else if let Some(name) = s.strip_prefix('$').filter(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) {
                env(name)
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(Value::Object(o)) if o.get("source").and_then(Value::as_str) == Some("env") => {
            match o.get("id").and_then(Value::as_str) {
                Some(id) => env(id),
                None => Err(Error::Config(format!(
                    "{what}: SecretRef {{source: \"env\"}} needs an \"id\" naming the variable"
                ))),
            }
        }
        Some(Value::Object(o)) => Err(Error::Config(format!(
            "{what}: SecretRef source {:?} is not supported by this build; use a string, \"${{VAR}}\" or {{source: \"env\", id}}",
            o.get("source").and_then(Value::as_str).unwrap_or("?")
        ))),
        Some(other) => Err(Error::Config(format!(
            "{what} must be a string or a SecretRef object, found {other}"
        ))),
    }
}

fn syntax_error(path: &Path, e: &json5::Error) -> Error {
    let text = e.to_string();
    let (line, column) = parse_line_col(&text).unwrap_or((1, 1));
    Error::ConfigSyntax {
        path: path.to_path_buf(),
        line,
        column,
        message: text,
    }
}

/// Pulls "line L column C" out of a json5 error message.
fn parse_line_col(msg: &str) -> Option<(usize, usize)> {
    let after = &msg[msg.find("line ")? + 5..];
    let line: usize = after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let after_col = &after[after.find("column ")? + 7..];
    let col: usize = after_col
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((line, col))
}

/// Best-effort 1-based line/column of the first occurrence of a key, for semantic errors.
fn locate_key(raw: &str, key: &str) -> (usize, usize) {
    for (i, line) in raw.lines().enumerate() {
        if let Some(c) = line.find(key) {
            return (i + 1, c + 1);
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json5_and_types_gateway() {
        let c = Config::parse(
            Path::new("/x/openclaw.json"),
            "{ // c\n gateway: { mode: 'local', port: 19000, auth: { token: 'abc' }, },\n}".into(),
        )
        .unwrap();
        assert_eq!(c.gateway.mode.as_deref(), Some("local"));
        assert_eq!(c.gateway.port, Some(19000));
        assert_eq!(
            c.get("gateway.auth.token"),
            Some(&Value::String("abc".into()))
        );
    }

    #[test]
    fn syntax_errors_name_file_line_column() {
        let e = Config::parse(
            Path::new("/x/c.json"),
            "{\n gateway: {\n mode: 'local'\n port: 1 }\n}".into(),
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("invalid config /x/c.json:4:"), "{s}");
        assert_eq!(e.exit(), crate::error::Exit::Config);
    }

    #[test]
    fn wrong_types_are_errors() {
        let e = Config::parse(Path::new("/c"), "{gateway:{port:'x'}}".into()).unwrap_err();
        assert!(e.to_string().contains("gateway:"), "{e}");
    }

    #[test]
    fn missing_file_is_empty() {
        let c = Config::load(Path::new("/nonexistent/dir/openclaw.json")).unwrap();
        assert!(!c.exists);
        assert_eq!(c.gateway, GatewayConfig::default());
    }

    #[test]
    fn redaction_covers_doc_and_raw() {
        let doc = serde_json::json!({"gateway":{"auth":{"token":"s3cret","mode":"token"}},
            "models":{"providers":{"x":{"apiKey":"k1","models":[{"maxTokens":5}]}}}});
        let (r, found) = redact_secrets(&doc);
        assert_eq!(r["gateway"]["auth"]["token"], REDACTED);
        assert_eq!(r["gateway"]["auth"]["mode"], "token");
        assert_eq!(r["models"]["providers"]["x"]["apiKey"], REDACTED);
        assert_eq!(r["models"]["providers"]["x"]["models"][0]["maxTokens"], 5);
        // The same value under a key that does not look secret is redacted too (fuzz finding,
        // fuzz/regressions/config_load/).
        let (r, _) =
            redact_secrets(&serde_json::json!({"a":{"apiKey":"k-1"},"env":{"OPENAI":"k-1"}}));
        assert_eq!(r["env"]["OPENAI"], REDACTED);
        assert_eq!(found, ["s3cret", "k1"]);
    }

    #[test]
    fn credential_maps_url_userinfo_and_secret_refs() {
        let doc = serde_json::json!({"models":{"providers":{"p":{
            "baseUrl":"https://bob:hunter2@api.example/v1?x=1",
            "headers":{"x-api-key":"hk-1","api-key":"hk-2","X-Trace":"abc","n":{"deep":"hk-3"}},
            "env":{"PLAIN":"v-1","PORT":8080},
            "apiKey":{"source":"env","provider":"default","id":"OPENAI_API_KEY"},
            "name":"no secret here"}}}});
        let (r, found) = redact_secrets(&doc);
        let p = &r["models"]["providers"]["p"];
        assert_eq!(
            p["baseUrl"],
            "https://bob:__OPENCLAW_REDACTED__@api.example/v1?x=1"
        );
        for k in ["x-api-key", "api-key", "X-Trace"] {
            assert_eq!(p["headers"][k], REDACTED, "{k}");
        }
        assert_eq!(p["headers"]["n"]["deep"], REDACTED);
        assert_eq!(p["env"]["PLAIN"], REDACTED);
        assert_eq!(p["env"]["PORT"], 8080, "numbers are not credentials");
        assert_eq!(
            p["apiKey"]["id"], "OPENAI_API_KEY",
            "a SecretRef is shown as it is"
        );
        assert_eq!(p["name"], "no secret here");
        assert!(found.contains(&"hunter2".to_string()));
        // No URL password → nothing changes; an `@` in a path is not userinfo.
        assert_eq!(url_password("https://api.example/v1/@me"), None);
        assert_eq!(url_password("https://bob@api.example/"), None);
        let raw = redacted_raw(&r);
        for secret in ["hunter2", "hk-1", "hk-2", "hk-3", "v-1"] {
            assert!(!raw.contains(secret), "{secret} in raw");
        }
    }

    #[test]
    fn secret_values_resolve() {
        assert_eq!(
            resolve_secret_value(Some(&Value::String("abc".into())), "t").unwrap(),
            Some("abc".into())
        );
        assert_eq!(resolve_secret_value(None, "t").unwrap(), None);
        assert!(
            resolve_secret_value(
                Some(&Value::String("${OPENCLAW_SURELY_UNSET_X}".into())),
                "t"
            )
            .is_err()
        );
        assert!(
            resolve_secret_value(Some(&serde_json::json!({"source":"exec","id":"x"})), "t")
                .is_err()
        );
    }
}
