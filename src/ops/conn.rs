//! Which gateway a client command talks to, and with which credentials.
//!
//! Rules (docs/protocol.md §8, docs/lifecycle.md §7):
//! - `--url ws://…` is an explicit target: it needs `--token` or `--password` on the command
//!   line (environment and config credentials are *not* used for it, so a local token never
//!   leaks to another host): otherwise `gateway url override requires explicit credentials`.
//!   `--port` selects the local gateway and cannot be combined with `--url`.
//! - `gateway.mode=remote` with `gateway.remote.url` (and no `--port`): that URL with
//!   `gateway.remote.token`/`password`.
//! - Otherwise the local gateway: `ws://127.0.0.1:<port>` (or the custom bind host) with the
//!   port from [`Paths::resolve_port`] (`--port` → `OPENCLAW_GATEWAY_PORT` → `gateway.port` →
//!   profile default), and credentials as the gateway itself resolves them: flag →
//!   `OPENCLAW_GATEWAY_TOKEN`/`_PASSWORD` → `gateway.auth.token`/`password`.
//! - A config that does not load (syntax, validation): the same rules without it (so the
//!   running gateway, which keeps its last good config, is still reached) and
//!   `broken_config_note` says which port and credential were used and what could not be read.
use std::time::Duration;

use crate::config::Config;
use crate::config::paths::{Env, Paths};
use crate::config::secrets::resolve_config_secret;
use crate::error::{Error, Result};

/// How to reach a gateway: explicit URL + credentials, or the local one from profile/config/env.
#[derive(Debug, Clone, Default)]
pub struct ConnOptions {
    /// Gateway URL (ws://host:port); requires --token or --password.
    pub url: Option<String>,
    /// Token.
    pub token: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Port of the local gateway (instead of the resolved one).
    pub port: Option<u16>,
    /// Per-call timeout in milliseconds.
    pub timeout: u64,
}

/// Where the target came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum UrlSource {
    /// `--url`.
    Flag,
    /// `gateway.remote.url` in config.
    RemoteConfig,
    /// The local gateway of this profile.
    Local,
}

impl UrlSource {
    /// Human label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            UrlSource::Flag => "--url",
            UrlSource::RemoteConfig => "gateway.remote.url",
            UrlSource::Local => "local",
        }
    }
}

/// A resolved gateway target. Never printed with its secrets: use [`Target::auth_label`].
#[derive(Clone)]
pub(crate) struct Target {
    /// `ws://host:port`.
    pub(crate) url: String,
    /// Token to send.
    pub(crate) token: Option<String>,
    /// Password to send.
    pub(crate) password: Option<String>,
    /// Where the URL came from.
    pub(crate) source: UrlSource,
    /// Local port (for local targets).
    pub(crate) port: Option<u16>,
    /// Which rule picked the port (`--port`, `OPENCLAW_GATEWAY_PORT`, `gateway.port`, …).
    pub(crate) port_source: Option<String>,
    /// Where the credential came from (`--token`, `OPENCLAW_GATEWAY_TOKEN`, `config`, …).
    pub(crate) auth_source: Option<String>,
    /// Configured auth mode (`token`, `password`, `none`), when known.
    pub(crate) auth_mode: Option<String>,
    /// Per-call timeout.
    pub(crate) timeout: Duration,
    /// The config did not load: what was resolved without it and what could not be
    /// ([`broken_config_note`]). `None` when the config loaded (or was not needed).
    pub(crate) config_broken: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("source", &self.source)
            .field("auth", &self.auth_label())
            .finish()
    }
}

impl Target {
    /// True for the implicit local target (local fallbacks such as reading the log file are
    /// allowed only for it).
    pub(crate) fn is_local(&self) -> bool {
        self.source == UrlSource::Local
    }

    /// `token (from config)` / `password (from --password)` / `none`: never the secret.
    pub(crate) fn auth_label(&self) -> String {
        let kind = if self.token.is_some() {
            "token"
        } else if self.password.is_some() {
            "password"
        } else {
            "none"
        };
        match &self.auth_source {
            Some(s) => format!("{kind} (from {s})"),
            None => kind.to_string(),
        }
    }
}

/// The message upstream prints for `--url` without credentials.
pub(crate) const URL_NEEDS_CREDENTIALS: &str = "gateway url override requires explicit credentials";

/// Why a client command has no target. The text is what the operator reads; config and
/// SecretRef errors pass through as they are ([`TargetError::Other`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// `--port` together with `--url`.
    #[error("--port selects the local gateway and cannot be combined with --url; drop one of them")]
    PortWithUrl,
    /// `--url` is not a `ws://`/`wss://` URL.
    #[error("invalid gateway URL {url:?}: expected ws://HOST:PORT or wss://HOST:PORT")]
    InvalidUrl {
        /// The URL given.
        url: String,
    },
    /// `--url` without `--token`/`--password` (upstream's message first).
    #[error(
        "{URL_NEEDS_CREDENTIALS}\nPass --token TOKEN or --password PASSWORD together with --url {url} (credentials from the environment or config are only used for the local gateway)."
    )]
    UrlNeedsCredentials {
        /// The URL given.
        url: String,
    },
    /// `gateway.remote.url` in the config is not a `ws://`/`wss://` URL (a config error).
    #[error(
        "invalid gateway URL {url:?}: expected ws://HOST:PORT or wss://HOST:PORT (gateway.remote.url in {})",
        path.display()
    )]
    InvalidRemoteUrl {
        /// The configured URL.
        url: String,
        /// The config file.
        path: std::path::PathBuf,
    },
    /// The port or a credential could not be resolved (config, SecretRef).
    #[error(transparent)]
    Other(#[from] Error),
}

impl From<TargetError> for Error {
    fn from(e: TargetError) -> Error {
        match e {
            TargetError::Other(e) => e,
            e @ TargetError::InvalidRemoteUrl { .. } => Error::Config(e.to_string()),
            e => Error::Msg(e.to_string()),
        }
    }
}

/// Resolves the target from flags, config and environment. `cfg` is the loaded config, or
/// `None` when it could not be loaded (callers that must explain a broken config pass `None`
/// and still get the port/credential rules that do not need it).
pub(crate) fn resolve(
    paths: &Paths,
    conn: &ConnOptions,
    cfg: Option<&Config>,
    env: &dyn Env,
) -> std::result::Result<Target, TargetError> {
    let timeout = Duration::from_millis(conn.timeout.max(1));
    if let Some(url) = &conn.url {
        if conn.port.is_some() {
            return Err(TargetError::PortWithUrl);
        }
        if !is_ws_url(url) {
            return Err(TargetError::InvalidUrl { url: url.clone() });
        }
        if conn.token.is_none() && conn.password.is_none() {
            return Err(TargetError::UrlNeedsCredentials { url: url.clone() });
        }
        return Ok(Target {
            url: url.clone(),
            token: conn.token.clone(),
            password: conn.password.clone(),
            source: UrlSource::Flag,
            port: None,
            port_source: None,
            auth_source: Some(if conn.token.is_some() {
                "--token".into()
            } else {
                "--password".into()
            }),
            auth_mode: None,
            timeout,
            config_broken: None,
        });
    }
    let empty = Config::default();
    let c = cfg.unwrap_or(&empty);
    if c.gateway.mode.as_deref() == Some("remote")
        && conn.port.is_none()
        && let Some(url) = c.get("gateway.remote.url").and_then(|v| v.as_str())
    {
        if !is_ws_url(url) {
            return Err(TargetError::InvalidRemoteUrl {
                url: url.to_string(),
                path: c.path.clone(),
            });
        }
        let (token, password, src) = match (&conn.token, &conn.password) {
            (Some(t), _) => (Some(t.clone()), None, "--token".to_string()),
            (None, Some(p)) => (None, Some(p.clone()), "--password".to_string()),
            _ => (
                resolve_config_secret(c, "gateway.remote.token")?,
                resolve_config_secret(c, "gateway.remote.password")?,
                "gateway.remote in config".to_string(),
            ),
        };
        let has = token.is_some() || password.is_some();
        return Ok(Target {
            url: url.to_string(),
            token,
            password,
            source: UrlSource::RemoteConfig,
            port: None,
            port_source: None,
            auth_source: has.then_some(src),
            auth_mode: None,
            timeout,
            config_broken: None,
        });
    }
    let (port, port_source) = local_port(paths, conn.port, env, c)?;
    let host = local_host(c);
    let mode = c.gateway.auth.mode.clone();
    let want_token = mode.as_deref() != Some("password") && mode.as_deref() != Some("none");
    let want_password = mode.as_deref() != Some("token") && mode.as_deref() != Some("none");
    let mut auth_source = None;
    let mut token = None;
    let mut password = None;
    if want_token {
        if let Some(t) = &conn.token {
            token = Some(t.clone());
            auth_source = Some("--token".to_string());
        } else if let Some(t) = env.var("OPENCLAW_GATEWAY_TOKEN") {
            token = Some(t);
            auth_source = Some("OPENCLAW_GATEWAY_TOKEN".to_string());
        } else if cfg.is_some()
            && let Some(t) = resolve_config_secret(c, "gateway.auth.token")?
        {
            token = Some(t);
            auth_source = Some(format!("gateway.auth.token in {}", c.path.display()));
        }
    }
    if want_password && token.is_none() {
        if let Some(p) = &conn.password {
            password = Some(p.clone());
            auth_source = Some("--password".to_string());
        } else if let Some(p) = env.var("OPENCLAW_GATEWAY_PASSWORD") {
            password = Some(p);
            auth_source = Some("OPENCLAW_GATEWAY_PASSWORD".to_string());
        } else if cfg.is_some()
            && let Some(p) = resolve_config_secret(c, "gateway.auth.password")?
        {
            password = Some(p);
            auth_source = Some(format!("gateway.auth.password in {}", c.path.display()));
        }
    }
    let host_part = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(Target {
        url: format!("ws://{host_part}:{port}"),
        token,
        password,
        source: UrlSource::Local,
        port: Some(port),
        port_source: Some(port_source),
        auth_source,
        auth_mode: mode,
        timeout,
        config_broken: None,
    })
}

/// What a client command resolved without a config that did not load, and what it could not:
/// `config PATH:L:C is broken (MESSAGE): using port P from the profile default and no token
/// (…)`. `target` is the result of [`resolve`] with no config.
pub(crate) fn broken_config_note(err: &Error, target: &Target) -> String {
    let what = match err {
        Error::ConfigSyntax {
            path,
            line,
            column,
            message,
        } => format!(
            "config {}:{line}:{column} is broken ({message})",
            path.display()
        ),
        e => format!(
            "config is broken ({})",
            e.to_string().lines().next().unwrap_or_default()
        ),
    };
    let port = match (target.port, target.port_source.as_deref()) {
        (Some(p), Some(s)) if s.ends_with("default") => format!("port {p} from the {s}"),
        (Some(p), Some(s)) => format!("port {p} from {s}"),
        (Some(p), None) => format!("port {p}"),
        (None, _) => format!("{} ({})", target.url, target.source.label()),
    };
    let auth = match (
        &target.token,
        &target.password,
        target.auth_source.as_deref(),
    ) {
        (Some(_), _, Some(s)) => format!("the token from {s}"),
        (None, Some(_), Some(s)) => format!("the password from {s}"),
        _ => "no token or password (gateway.auth.* could not be read from the broken config: \
              pass --token, or set OPENCLAW_GATEWAY_TOKEN)"
            .to_string(),
    };
    format!("{what}: using {port} and {auth}")
}

/// The local port and the rule that picked it.
pub fn local_port(
    paths: &Paths,
    flag: Option<u16>,
    env: &dyn Env,
    cfg: &Config,
) -> Result<(u16, String)> {
    let port = paths.resolve_port(flag, env, cfg.gateway.port)?;
    let source = if flag.is_some() {
        "--port".to_string()
    } else if env.var("OPENCLAW_GATEWAY_PORT").is_some() {
        "OPENCLAW_GATEWAY_PORT".to_string()
    } else if cfg.gateway.port.is_some_and(|p| p > 0) {
        format!("gateway.port in {}", cfg.path.display())
    } else if paths.dev {
        "--dev default".to_string()
    } else if let Some(p) = &paths.profile {
        format!("profile {p} default")
    } else {
        "default".to_string()
    };
    Ok((port, source))
}

/// The host a local client dials: loopback unless the gateway binds one specific
/// non-loopback address (`bind: custom`).
fn local_host(cfg: &Config) -> String {
    if cfg.gateway.bind.as_deref() == Some("custom")
        && let Some(h) = cfg.gateway.custom_bind_host.as_deref().map(str::trim)
        && !matches!(h, "" | "0.0.0.0" | "::" | "[::]")
    {
        return h.trim_start_matches('[').trim_end_matches(']').to_string();
    }
    "127.0.0.1".to_string()
}

fn is_ws_url(url: &str) -> bool {
    url.starts_with("ws://") || url.starts_with("wss://")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn paths(profile: Option<&str>, dev: bool) -> Paths {
        Paths::resolve(profile, dev, &env(&[("HOME", "/h")])).unwrap()
    }
    fn cfg(text: &str) -> Config {
        Config::parse(Path::new("/h/.openclaw/openclaw.json"), text.into()).unwrap()
    }
    fn conn() -> ConnOptions {
        ConnOptions {
            timeout: 10_000,
            ..Default::default()
        }
    }

    #[test]
    fn url_requires_explicit_credentials() {
        let mut c = conn();
        c.url = Some("ws://127.0.0.1:1".into());
        let e = env(&[("OPENCLAW_GATEWAY_TOKEN", "from-env")]);
        let err = resolve(&paths(None, false), &c, None, &e).unwrap_err();
        assert!(
            matches!(&err, TargetError::UrlNeedsCredentials { url } if url == "ws://127.0.0.1:1"),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(URL_NEEDS_CREDENTIALS), "{err}");
        assert_eq!(Error::from(err).exit(), crate::error::Exit::Failure);
        c.token = Some("t".into());
        let t = resolve(&paths(None, false), &c, None, &e).unwrap();
        assert_eq!(t.token.as_deref(), Some("t"));
        assert_eq!(t.source, UrlSource::Flag);
        c.port = Some(5);
        assert!(matches!(
            resolve(&paths(None, false), &c, None, &e),
            Err(TargetError::PortWithUrl)
        ));
        let mut bad = conn();
        bad.url = Some("http://x".into());
        bad.token = Some("t".into());
        assert!(matches!(
            resolve(&paths(None, false), &bad, None, &e),
            Err(TargetError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn local_port_and_credential_precedence() {
        let c = cfg("{gateway:{port:3000, auth:{token:'cfg-tok'}}}");
        let t = resolve(&paths(None, false), &conn(), Some(&c), &env(&[])).unwrap();
        assert_eq!(t.url, "ws://127.0.0.1:3000");
        assert_eq!(t.token.as_deref(), Some("cfg-tok"));
        assert!(
            t.port_source
                .as_deref()
                .unwrap()
                .starts_with("gateway.port")
        );
        assert!(!t.auth_label().contains("cfg-tok"));
        let e = env(&[
            ("OPENCLAW_GATEWAY_PORT", "4000"),
            ("OPENCLAW_GATEWAY_TOKEN", "env-tok"),
        ]);
        let t = resolve(&paths(None, false), &conn(), Some(&c), &e).unwrap();
        assert_eq!(t.port, Some(4000));
        assert_eq!(t.token.as_deref(), Some("env-tok"));
        let mut flagged = conn();
        flagged.port = Some(5000);
        flagged.token = Some("flag-tok".into());
        let t = resolve(&paths(None, false), &flagged, Some(&c), &e).unwrap();
        assert_eq!(t.port, Some(5000));
        assert_eq!(t.token.as_deref(), Some("flag-tok"));
        assert_eq!(t.auth_source.as_deref(), Some("--token"));
    }

    #[test]
    fn profiles_and_dev_pick_their_ports() {
        let empty = Config::default();
        let dev = resolve(&paths(None, true), &conn(), Some(&empty), &env(&[])).unwrap();
        assert_eq!(dev.url, "ws://127.0.0.1:19001");
        assert_eq!(dev.port_source.as_deref(), Some("--dev default"));
        let ops = resolve(&paths(Some("ops"), false), &conn(), Some(&empty), &env(&[])).unwrap();
        assert_eq!(ops.port, Some(55291));
        let def = resolve(&paths(None, false), &conn(), None, &env(&[])).unwrap();
        assert_eq!(def.port, Some(18789));
    }

    #[test]
    fn a_broken_config_note_names_what_was_and_was_not_resolved() {
        let err = Error::ConfigSyntax {
            path: "/h/.openclaw/openclaw.json".into(),
            line: 3,
            column: 7,
            message: "unexpected ','".into(),
        };
        let t = resolve(&paths(None, false), &conn(), None, &env(&[])).unwrap();
        assert_eq!(
            broken_config_note(&err, &t),
            "config /h/.openclaw/openclaw.json:3:7 is broken (unexpected ','): using port 18789 \
             from the default and no token or password (gateway.auth.* could not be read from the \
             broken config: pass --token, or set OPENCLAW_GATEWAY_TOKEN)"
        );
        let e = env(&[
            ("OPENCLAW_GATEWAY_TOKEN", "secret-tok"),
            ("OPENCLAW_GATEWAY_PORT", "4000"),
        ]);
        let t = resolve(&paths(Some("ops"), false), &conn(), None, &e).unwrap();
        let n = broken_config_note(&err, &t);
        assert!(
            n.ends_with(
                "using port 4000 from OPENCLAW_GATEWAY_PORT and the token from OPENCLAW_GATEWAY_TOKEN"
            ),
            "{n}"
        );
        assert!(!n.contains("secret-tok"));
        let t = resolve(&paths(Some("ops"), false), &conn(), None, &env(&[])).unwrap();
        assert!(
            broken_config_note(&err, &t).contains("using port 55291 from the profile ops default")
        );
    }

    #[test]
    fn password_mode_and_remote_mode() {
        let c = cfg("{gateway:{auth:{mode:'password', password:'pw', token:'ignored'}}}");
        let t = resolve(&paths(None, false), &conn(), Some(&c), &env(&[])).unwrap();
        assert_eq!(t.password.as_deref(), Some("pw"));
        assert!(t.token.is_none());
        let r = cfg("{gateway:{mode:'remote', remote:{url:'wss://gw.example:443', token:'rt'}}}");
        let t = resolve(&paths(None, false), &conn(), Some(&r), &env(&[])).unwrap();
        assert_eq!(t.url, "wss://gw.example:443");
        assert_eq!(t.token.as_deref(), Some("rt"));
        assert_eq!(t.source, UrlSource::RemoteConfig);
        assert!(!t.is_local());
        let custom = cfg("{gateway:{bind:'custom', customBindHost:'::1', port: 7}}");
        let t = resolve(&paths(None, false), &conn(), Some(&custom), &env(&[])).unwrap();
        assert_eq!(t.url, "ws://[::1]:7");
    }
}
