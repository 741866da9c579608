//! Profile, state-dir, config-path and port resolution, computed from an injected environment
//! so every precedence rule is table-testable (`std::env` is read only by [`ProcessEnv`]).
//!
//! Rules (docs/lifecycle.md §1, §7; docs/lifecycle.md §7):
//! - profile: `--dev` = profile `dev`; else `--profile P`; else `OPENCLAW_PROFILE`; `default` = none.
//!   Names match `^[a-z0-9][a-z0-9_-]{0,63}$` (case-insensitive input, stored lowercase).
//! - state dir: `OPENCLAW_STATE_DIR` (`~` expanded) → `<home>/.openclaw[-P]`, where home is
//!   `OPENCLAW_HOME` or `HOME`.
//! - config: `OPENCLAW_CONFIG_PATH` → `<state>/openclaw.json`.
//! - port: `--port` → `OPENCLAW_GATEWAY_PORT` (`N`, `host:N`, `[v6]:N`) → `gateway.port` →
//!   19001 for `--dev` → a stable per-profile port for other named profiles
//!   (`20000 + fnv1a32(name) % 40000`, as upstream, so two profiles never collide by default)
//!   → 18789.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Default gateway port.
pub const DEFAULT_PORT: u16 = 18789;
/// Base port of the `--dev` profile.
pub const DEV_PORT: u16 = 19001;

/// Read access to environment variables (injected so resolution is pure and testable).
pub trait Env {
    /// The variable's value, `None` when unset or empty.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).cloned()
    }
}

impl Env for [(&str, &str)] {
    fn var(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| (*v).to_string())
    }
}

/// Checks a profile name; `default` (any case) means "no profile" and yields `Ok(None)`.
pub fn validate_profile(name: &str) -> Result<Option<String>> {
    let lower = name.to_ascii_lowercase();
    if lower == "default" {
        return Ok(None);
    }
    let bytes = lower.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if ok {
        Ok(Some(lower))
    } else {
        Err(Error::Msg(format!(
            "invalid profile name {name:?}: use 1-64 characters from [a-z0-9_-], starting with a letter or digit"
        )))
    }
}

/// Where this invocation's state lives. Computed once per process by [`Paths::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The named profile, `None` for the default profile.
    pub profile: Option<String>,
    /// `--dev` was given (profile `dev` with base port 19001).
    pub dev: bool,
    /// The user's home (`OPENCLAW_HOME` or `HOME`).
    pub home: PathBuf,
    /// State directory (0700).
    pub state_dir: PathBuf,
    /// Config file (JSON5, 0600).
    pub config_path: PathBuf,
    /// True when state dir and config path are the canonical ones for the profile: only then
    /// may service-management commands act (the "install identity gate").
    pub default_identity: bool,
}

impl Paths {
    /// Resolves paths from the global flags and the environment.
    pub fn resolve(profile_flag: Option<&str>, dev: bool, env: &dyn Env) -> Result<Paths> {
        if dev && profile_flag.is_some() {
            return Err(Error::Msg(
                "--dev cannot be combined with --profile: --dev already selects the profile \"dev\""
                    .into(),
            ));
        }
        let profile = if dev {
            Some("dev".to_string())
        } else if let Some(p) = profile_flag {
            validate_profile(p)?
        } else if let Some(p) = env.var("OPENCLAW_PROFILE") {
            validate_profile(&p)?
        } else {
            None
        };
        let relocated_home = env.var("OPENCLAW_HOME");
        let home = relocated_home
            .clone()
            .or_else(|| env.var("HOME"))
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::Msg("cannot locate the home directory: HOME is not set; set HOME or OPENCLAW_STATE_DIR".into())
            })?;
        let canonical_state = home.join(match &profile {
            Some(p) => format!(".openclaw-{p}"),
            None => ".openclaw".to_string(),
        });
        // An explicit --profile/--dev wins over an inherited OPENCLAW_STATE_DIR that belongs to
        // another profile; env pins only apply when no profile flag was given.
        let flag_given = dev || profile_flag.is_some();
        let state_dir = match env.var("OPENCLAW_STATE_DIR") {
            Some(s) if !flag_given => expand_tilde(&s, &home),
            _ => canonical_state.clone(),
        };
        let canonical_config = state_dir.join("openclaw.json");
        let config_path = match env.var("OPENCLAW_CONFIG_PATH") {
            Some(c) if !flag_given => expand_tilde(&c, &home),
            _ => canonical_config,
        };
        let default_identity = relocated_home.is_none()
            && state_dir == canonical_state
            && config_path == canonical_state.join("openclaw.json");
        Ok(Paths {
            profile,
            dev,
            home,
            state_dir,
            config_path,
            default_identity,
        })
    }

    /// systemd unit base name: `openclaw-gateway` or `openclaw-gateway-<profile>`.
    pub fn unit_name(&self) -> String {
        match &self.profile {
            Some(p) => format!("openclaw-gateway-{p}"),
            None => "openclaw-gateway".to_string(),
        }
    }

    /// launchd label: `ai.openclaw.gateway` or `ai.openclaw.<profile>`.
    pub fn launchd_label(&self) -> String {
        match &self.profile {
            Some(p) => format!("ai.openclaw.{p}"),
            None => "ai.openclaw.gateway".to_string(),
        }
    }

    /// The port when neither flag, env nor config names one.
    pub fn fallback_port(&self) -> u16 {
        match (&self.profile, self.dev) {
            (_, true) => DEV_PORT,
            (Some(p), false) => profile_port(p),
            (None, false) => DEFAULT_PORT,
        }
    }

    /// Resolves the gateway port: `--port` → `OPENCLAW_GATEWAY_PORT` → `gateway.port` → fallback.
    pub fn resolve_port(
        &self,
        flag: Option<u16>,
        env: &dyn Env,
        config_port: Option<u16>,
    ) -> Result<u16> {
        if let Some(p) = flag {
            return Ok(p);
        }
        if let Some(v) = env.var("OPENCLAW_GATEWAY_PORT") {
            return parse_port_env(&v).ok_or_else(|| {
                Error::Config(format!(
                    "invalid OPENCLAW_GATEWAY_PORT={v:?}: expected N, host:N or [v6]:N with 1 <= N <= 65535; fix or unset it"
                ))
            });
        }
        Ok(config_port
            .filter(|p| *p > 0)
            .unwrap_or_else(|| self.fallback_port()))
    }
}

/// Expands a leading `~` or `~/`.
pub fn expand_tilde(s: &str, home: &Path) -> PathBuf {
    if s == "~" {
        home.to_path_buf()
    } else if let Some(rest) = s.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(s)
    }
}

/// `N`, `host:N` or `[v6]:N` → port.
pub fn parse_port_env(v: &str) -> Option<u16> {
    let tail = match v.rfind(':') {
        Some(i) if !v.starts_with('[') || v[..i].ends_with(']') => &v[i + 1..],
        _ => v,
    };
    tail.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

/// Upstream's derived port for a named profile without a configured port.
pub fn profile_port(name: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (20000 + h % 40000) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn profile_names() {
        assert_eq!(validate_profile("Ops").unwrap(), Some("ops".into()));
        assert_eq!(validate_profile("DEFAULT").unwrap(), None);
        assert!(validate_profile("-x").is_err());
        assert!(validate_profile("a/b").is_err());
        assert!(validate_profile(&"a".repeat(65)).is_err());
        assert!(validate_profile(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn default_paths_and_names() {
        let e = env(&[("HOME", "/h")]);
        let p = Paths::resolve(None, false, &e).unwrap();
        assert_eq!(p.state_dir, PathBuf::from("/h/.openclaw"));
        assert_eq!(p.config_path, PathBuf::from("/h/.openclaw/openclaw.json"));
        assert!(p.default_identity);
        assert_eq!(p.unit_name(), "openclaw-gateway");
        assert_eq!(p.launchd_label(), "ai.openclaw.gateway");
        assert_eq!(p.resolve_port(None, &e, None).unwrap(), 18789);
    }

    #[test]
    fn dev_and_profiles() {
        let e = env(&[("HOME", "/h")]);
        let d = Paths::resolve(None, true, &e).unwrap();
        assert_eq!(d.state_dir, PathBuf::from("/h/.openclaw-dev"));
        assert_eq!(d.resolve_port(None, &e, None).unwrap(), 19001);
        assert_eq!(d.unit_name(), "openclaw-gateway-dev");
        assert!(Paths::resolve(Some("x"), true, &e).is_err());
        let ops = Paths::resolve(Some("ops"), false, &e).unwrap();
        assert_eq!(ops.launchd_label(), "ai.openclaw.ops");
        // Values verified against upstream's resolver (docs/lifecycle.md §7).
        assert_eq!(profile_port("ops"), 55291);
        assert_eq!(profile_port("rescue"), 23532);
        assert_eq!(profile_port("work"), 41984);
        assert_eq!(profile_port("dev"), 38556);
    }

    #[test]
    fn port_precedence() {
        let p = Paths::resolve(None, false, &env(&[("HOME", "/h")])).unwrap();
        let e = env(&[("OPENCLAW_GATEWAY_PORT", "127.0.0.1:2000")]);
        assert_eq!(p.resolve_port(Some(1000), &e, Some(3000)).unwrap(), 1000);
        assert_eq!(p.resolve_port(None, &e, Some(3000)).unwrap(), 2000);
        assert_eq!(p.resolve_port(None, &env(&[]), Some(3000)).unwrap(), 3000);
        assert_eq!(parse_port_env("[::1]:4000"), Some(4000));
        assert_eq!(parse_port_env("5000"), Some(5000));
        assert!(
            p.resolve_port(None, &env(&[("OPENCLAW_GATEWAY_PORT", "x")]), None)
                .is_err()
        );
    }

    #[test]
    fn env_pins_and_identity_gate() {
        let e = env(&[("HOME", "/h"), ("OPENCLAW_STATE_DIR", "~/other")]);
        let p = Paths::resolve(None, false, &e).unwrap();
        assert_eq!(p.state_dir, PathBuf::from("/h/other"));
        assert_eq!(p.config_path, PathBuf::from("/h/other/openclaw.json"));
        assert!(!p.default_identity);
        // An explicit profile flag wins over inherited pins.
        let q = Paths::resolve(Some("ops"), false, &e).unwrap();
        assert_eq!(q.state_dir, PathBuf::from("/h/.openclaw-ops"));
        let cfg = env(&[("HOME", "/h"), ("OPENCLAW_CONFIG_PATH", "/etc/x.json")]);
        assert_eq!(
            Paths::resolve(None, false, &cfg).unwrap().config_path,
            PathBuf::from("/etc/x.json")
        );
        let prof = env(&[("HOME", "/h"), ("OPENCLAW_PROFILE", "work")]);
        assert_eq!(
            Paths::resolve(None, false, &prof)
                .unwrap()
                .profile
                .as_deref(),
            Some("work")
        );
    }
}
