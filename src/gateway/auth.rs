//! Shared-secret auth: the resolved auth snapshot (mode + secrets), constant-time comparison,
//! failed-attempt rate limiting, and the connect-time auth errors with upstream's texts.
//!
//! The snapshot is resolved once from flags/env/config ([`ResolvedAuth`]) and swapped as a whole
//! on reload; request paths only read it. Its `Debug` never prints a secret.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::protocol::ErrorShape;
use crate::config::RateLimitConfig;

/// Effective auth mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No shared secret (loopback only).
    None,
    /// Shared token.
    Token,
    /// Shared password.
    Password,
}

impl Mode {
    /// Wire name (`hello-ok.auth.method`, `snapshot.authMode`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Token => "token",
            Mode::Password => "password",
        }
    }
}

/// The resolved auth material the gateway checks against.
#[derive(Clone)]
pub struct ResolvedAuth {
    /// Mode.
    pub mode: Mode,
    /// Token (mode token).
    pub token: Option<String>,
    /// Password (mode password).
    pub password: Option<String>,
    /// Failed-attempt limits.
    pub rate_limit: RateLimitConfig,
}

impl std::fmt::Debug for ResolvedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedAuth")
            .field("mode", &self.mode)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

thread_local! {
    static CT_EQ_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many comparisons [`ct_eq`] has made on the calling thread. The security tests use it to
/// prove every credential check goes through the constant-time path (no timing test needed).
pub fn ct_eq_calls() -> u64 {
    CT_EQ_CALLS.with(|c| c.get())
}

/// Constant-time equality that also hides the length (both sides are hashed first).
pub fn ct_eq(a: &str, b: &str) -> bool {
    CT_EQ_CALLS.with(|c| c.set(c.get() + 1));
    let ha = Sha256::digest(a.as_bytes());
    let hb = Sha256::digest(b.as_bytes());
    ha.ct_eq(&hb).into()
}

/// Outcome of checking connect credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Shared-secret auth succeeded (or mode none); `method` for `hello-ok.auth.method`.
    Ok {
        /// `none`, `token` or `password`.
        method: &'static str,
    },
    /// No credentials at all and no device: `device identity required`.
    NoCredentials,
    /// Credentials did not match (counts towards rate limiting).
    Mismatch(ErrorShape),
}

impl ResolvedAuth {
    /// Checks connect credentials. The configured secret may arrive as `auth.token` or
    /// `auth.password` (upstream accepts either field).
    pub fn verify(&self, token: Option<&str>, password: Option<&str>) -> Verdict {
        let token = token.filter(|s| !s.is_empty());
        let password = password.filter(|s| !s.is_empty());
        match self.mode {
            Mode::None => Verdict::Ok { method: "none" },
            Mode::Token => {
                let Some(expected) = self.token.as_deref() else {
                    return Verdict::Mismatch(auth_error(
                        "unauthorized: gateway token not configured on the gateway (set gateway.auth.token)",
                        "AUTH_TOKEN_NOT_CONFIGURED",
                        "token_not_configured",
                        "update_auth_configuration",
                    ));
                };
                match token.or(password) {
                    None => Verdict::NoCredentials,
                    Some(given) if ct_eq(given, expected) => Verdict::Ok { method: "token" },
                    Some(_) => Verdict::Mismatch(auth_error(
                        "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
                        "AUTH_TOKEN_MISMATCH",
                        "token_mismatch",
                        "update_auth_credentials",
                    )),
                }
            }
            Mode::Password => {
                let Some(expected) = self.password.as_deref() else {
                    return Verdict::Mismatch(auth_error(
                        "unauthorized: gateway password not configured on the gateway (set gateway.auth.password)",
                        "AUTH_PASSWORD_NOT_CONFIGURED",
                        "password_not_configured",
                        "update_auth_configuration",
                    ));
                };
                match password.or(token) {
                    None => Verdict::NoCredentials,
                    Some(given) if ct_eq(given, expected) => Verdict::Ok { method: "password" },
                    Some(_) => Verdict::Mismatch(auth_error(
                        "unauthorized: gateway password mismatch (use this gateway's gateway.auth.password)",
                        "AUTH_PASSWORD_MISMATCH",
                        "password_mismatch",
                        "update_auth_credentials",
                    )),
                }
            }
        }
    }

    /// HTTP bearer check (`Authorization: Bearer <token or password>`); mode none accepts all.
    pub fn verify_bearer(&self, bearer: Option<&str>) -> bool {
        match self.mode {
            Mode::None => true,
            Mode::Token => matches!((bearer, &self.token), (Some(b), Some(t)) if ct_eq(b, t)),
            Mode::Password => {
                matches!((bearer, &self.password), (Some(b), Some(p)) if ct_eq(b, p))
            }
        }
    }
}

/// An auth failure with upstream's details.
pub fn auth_error(message: &str, code: &str, reason: &str, next: &str) -> ErrorShape {
    ErrorShape::invalid(message).with_details(json!({
        "code": code,
        "authReason": reason,
        "canRetryWithDeviceToken": false,
        "recommendedNextStep": next,
    }))
}

/// `device identity required` (no credentials, no device).
pub fn device_identity_required() -> ErrorShape {
    ErrorShape::new("NOT_PAIRED", "device identity required")
        .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"}))
}

/// The rate-limit error.
pub fn rate_limited(retry_after: Duration) -> ErrorShape {
    let mut e = auth_error(
        "unauthorized: too many failed authentication attempts (retry later)",
        "AUTH_RATE_LIMITED",
        "rate_limited",
        "wait_then_retry",
    );
    e.retryable = Some(true);
    e.retry_after_ms = Some(retry_after.as_millis().max(1) as u64);
    e
}

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Failed-auth rate limiter keyed by client IP (bounded: at most `MAX_TRACKED` addresses).
#[derive(Debug, Default)]
pub struct RateLimiter {
    map: Mutex<HashMap<IpAddr, Entry>>,
}

const MAX_TRACKED: usize = 10_000;

impl RateLimiter {
    fn exempt(ip: IpAddr, cfg: &RateLimitConfig) -> bool {
        cfg.exempt_loopback && ip.is_loopback()
    }

    /// `Some(retry_after)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr, cfg: &RateLimitConfig) -> Option<Duration> {
        if Self::exempt(ip, cfg) {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let until = map.get(&ip)?.locked_until?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    /// Records a failure; returns `Some(lockout)` when this failure triggered the lockout.
    pub fn record_failure(&self, ip: IpAddr, cfg: &RateLimitConfig) -> Option<Duration> {
        if Self::exempt(ip, cfg) || cfg.max_attempts == 0 {
            return None;
        }
        let now = Instant::now();
        let window = Duration::from_millis(cfg.window_ms);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now) || now - e.window_start < window
            });
            if map.len() >= MAX_TRACKED {
                return None;
            }
        }
        let e = map.entry(ip).or_insert(Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if now - e.window_start >= window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures >= cfg.max_attempts {
            let lock = Duration::from_millis(cfg.lockout_ms);
            e.locked_until = Some(now + lock);
            e.failures = 0;
            e.window_start = now;
            return Some(lock);
        }
        None
    }

    /// Clears the record after a success.
    pub fn record_success(&self, ip: IpAddr) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_auth() -> ResolvedAuth {
        ResolvedAuth {
            mode: Mode::Token,
            token: Some("right".into()),
            password: None,
            rate_limit: RateLimitConfig::default(),
        }
    }

    #[test]
    fn verify_token() {
        let a = token_auth();
        assert_eq!(
            a.verify(Some("right"), None),
            Verdict::Ok { method: "token" }
        );
        assert_eq!(
            a.verify(None, Some("right")),
            Verdict::Ok { method: "token" }
        );
        assert_eq!(a.verify(None, None), Verdict::NoCredentials);
        match a.verify(Some("wrong"), None) {
            Verdict::Mismatch(e) => assert_eq!(e.details.unwrap()["code"], "AUTH_TOKEN_MISMATCH"),
            v => panic!("{v:?}"),
        }
        assert!(a.verify_bearer(Some("right")));
        assert!(!a.verify_bearer(Some("righ")));
        assert!(!a.verify_bearer(None));
        assert!(!format!("{a:?}").contains("right"));
    }

    #[test]
    fn rate_limit_locks_after_max_and_exempts_loopback() {
        let rl = RateLimiter::default();
        let cfg = RateLimitConfig {
            max_attempts: 2,
            window_ms: 60_000,
            lockout_ms: 60_000,
            exempt_loopback: true,
        };
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert!(rl.record_failure(lo, &cfg).is_none());
        }
        assert!(rl.check(lo, &cfg).is_none());
        assert!(rl.record_failure(remote, &cfg).is_none());
        assert!(rl.record_failure(remote, &cfg).is_some());
        assert!(rl.check(remote, &cfg).is_some());
        rl.record_success(remote);
        assert!(rl.check(remote, &cfg).is_none());
    }
}
