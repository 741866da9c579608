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

use super::peer::peer_key;
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

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Entry {
    fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|u| u > now)
    }

    /// Still worth remembering: locked, or failures inside the current window.
    fn live(&self, now: Instant, window: Duration) -> bool {
        self.locked(now) || (self.failures > 0 && now - self.window_start < window)
    }
}

/// Failures across all peers in one window, for the global budget.
#[derive(Debug, Default)]
struct Global {
    window_start: Option<Instant>,
    failures: u64,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Table {
    peers: HashMap<IpAddr, Entry>,
    global: Global,
}

/// Failed-auth rate limiter keyed by [`peer_key`] (IPv6 by /64), with bounded memory that
/// never fails open: when [`MAX_TRACKED`] peers are tracked, expired entries are dropped and then
/// the oldest unlocked ones (locked ones last) make room, and a global failure budget
/// ([`GLOBAL_BUDGET_FACTOR`] × `maxAttempts` failures per window across all peers) throttles every
/// non-exempt peer once exceeded, so spraying source addresses buys no extra guesses.
#[derive(Debug, Default)]
pub struct RateLimiter {
    table: Mutex<Table>,
}

/// Peers tracked at most.
pub const MAX_TRACKED: usize = 10_000;

/// Evicting makes room for this many new peers at once (amortises the sort over them).
const EVICT_BATCH: usize = MAX_TRACKED / 10;

/// The global budget is this many times the per-peer `maxAttempts` per window.
pub const GLOBAL_BUDGET_FACTOR: u64 = 100;

impl RateLimiter {
    /// Loopback clients are exempt (when configured) unless the request came from a browser
    /// (`browser`: it carried an `Origin`), since any page open in the user's browser connects
    /// from loopback. Tested on the original address: the /64 key of `::1` is not loopback.
    fn exempt(ip: IpAddr, browser: bool, cfg: &RateLimitConfig) -> bool {
        cfg.exempt_loopback && !browser && ip.to_canonical().is_loopback()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(retry_after)` while `ip`'s peer is locked out, or every peer is (global budget).
    pub fn check(&self, ip: IpAddr, browser: bool, cfg: &RateLimitConfig) -> Option<Duration> {
        if Self::exempt(ip, browser, cfg) || cfg.max_attempts == 0 {
            return None;
        }
        let t = self.lock();
        let now = Instant::now();
        let peer = t.peers.get(&peer_key(ip)).and_then(|e| e.locked_until);
        let until = match (peer, t.global.locked_until) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        (until > now).then(|| until - now)
    }

    /// Records a failure; returns `Some(lockout)` when this failure locked the peer out.
    pub fn record_failure(
        &self,
        ip: IpAddr,
        browser: bool,
        cfg: &RateLimitConfig,
    ) -> Option<Duration> {
        if Self::exempt(ip, browser, cfg) || cfg.max_attempts == 0 {
            return None;
        }
        let now = Instant::now();
        let window = Duration::from_millis(cfg.window_ms);
        let key = peer_key(ip);
        let mut t = self.lock();
        let g = &mut t.global;
        if g.window_start.is_none_or(|s| now - s >= window) {
            g.window_start = Some(now);
            g.failures = 0;
        }
        g.failures += 1;
        if g.failures >= u64::from(cfg.max_attempts) * GLOBAL_BUDGET_FACTOR {
            // Everyone waits for the rest of this window, then the count starts over.
            g.locked_until = g.window_start.map(|s| s + window);
        }
        if t.peers.len() >= MAX_TRACKED && !t.peers.contains_key(&key) {
            Self::evict(&mut t.peers, now, window);
        }
        let e = t.peers.entry(key).or_insert(Entry {
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

    /// Makes room for [`EVICT_BATCH`] peers: drops expired entries, then the oldest unlocked
    /// ones, and only then the locked ones that unlock soonest. Runs once per batch of new
    /// peers, so it costs O(log n) per failure amortised.
    fn evict(peers: &mut HashMap<IpAddr, Entry>, now: Instant, window: Duration) {
        peers.retain(|_, e| e.live(now, window));
        let target = MAX_TRACKED - EVICT_BATCH;
        if peers.len() <= target {
            return;
        }
        let mut order: Vec<(bool, Instant, IpAddr)> = peers
            .iter()
            .map(|(k, e)| match e.locked_until.filter(|_| e.locked(now)) {
                Some(until) => (true, until, *k),
                None => (false, e.window_start, *k),
            })
            .collect();
        let excess = peers.len() - target;
        order.select_nth_unstable(excess - 1);
        for (_, _, k) in &order[..excess] {
            peers.remove(k);
        }
    }

    /// Clears the peer's record after a success (the global count stays).
    pub fn record_success(&self, ip: IpAddr) {
        self.lock().peers.remove(&peer_key(ip));
    }

    /// Peers currently tracked (tests and the bound check).
    pub fn tracked(&self) -> usize {
        self.lock().peers.len()
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

    fn limits(max_attempts: u32) -> RateLimitConfig {
        RateLimitConfig {
            max_attempts,
            window_ms: 60_000,
            lockout_ms: 60_000,
            exempt_loopback: true,
        }
    }

    #[test]
    fn rate_limit_locks_after_max_and_exempts_loopback() {
        let rl = RateLimiter::default();
        let cfg = limits(2);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert!(rl.record_failure(lo, false, &cfg).is_none());
            assert!(
                rl.record_failure("::1".parse().unwrap(), false, &cfg)
                    .is_none()
            );
        }
        assert!(rl.check(lo, false, &cfg).is_none());
        assert!(rl.record_failure(remote, false, &cfg).is_none());
        assert!(rl.record_failure(remote, false, &cfg).is_some());
        assert!(rl.check(remote, false, &cfg).is_some());
        rl.record_success(remote);
        assert!(rl.check(remote, false, &cfg).is_none());
    }

    #[test]
    fn a_browser_on_loopback_is_not_exempt() {
        let rl = RateLimiter::default();
        let cfg = limits(2);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(rl.record_failure(lo, true, &cfg).is_none());
        assert!(rl.record_failure(lo, true, &cfg).is_some());
        assert!(rl.check(lo, true, &cfg).is_some());
        // The CLI on the same host (no Origin) stays exempt.
        assert!(rl.check(lo, false, &cfg).is_none());
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_budget() {
        let rl = RateLimiter::default();
        let cfg = limits(3);
        for i in 1..=3u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, i, 0, 0, i));
            rl.record_failure(ip, false, &cfg);
        }
        let fresh: IpAddr = "2001:db8:0:7:ffff::9".parse().unwrap();
        assert!(
            rl.check(fresh, false, &cfg).is_some(),
            "same /64 must be locked"
        );
        let other: IpAddr = "2001:db8:0:8::1".parse().unwrap();
        assert!(rl.check(other, false, &cfg).is_none());
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn a_full_table_evicts_instead_of_failing_open() {
        let rl = RateLimiter::default();
        // A budget too large to trip, so only the per-peer table is exercised.
        let cfg = limits(1_000_000);
        for i in 0..(MAX_TRACKED as u32 + 5_000) {
            rl.record_failure(v4(i), false, &cfg);
        }
        assert!(rl.tracked() <= MAX_TRACKED, "bounded: {}", rl.tracked());
        let cfg = limits(3);
        let fresh: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..3 {
            rl.record_failure(fresh, false, &cfg);
        }
        assert!(
            rl.check(fresh, false, &cfg).is_some(),
            "fresh peer after a full table"
        );
    }

    #[test]
    fn locked_peers_are_evicted_last() {
        let rl = RateLimiter::default();
        let big = limits(1_000_000);
        let locked: IpAddr = "198.51.100.7".parse().unwrap();
        // The locked peer is the oldest entry; a max of 1 locks it at once.
        assert!(rl.record_failure(locked, false, &limits(1)).is_some());
        for i in 0..(MAX_TRACKED as u32 * 2) {
            rl.record_failure(v4(i), false, &big);
        }
        assert!(rl.tracked() <= MAX_TRACKED);
        assert!(
            rl.check(locked, false, &big).is_some(),
            "locked peer was evicted"
        );
    }

    #[test]
    fn the_global_budget_throttles_everyone_but_exempt_loopback() {
        let rl = RateLimiter::default();
        let cfg = limits(2);
        let budget = u64::from(cfg.max_attempts) * GLOBAL_BUDGET_FACTOR;
        // One failure each from many peers: none reaches its own limit.
        for i in 0..budget as u32 {
            rl.record_failure(v4(i), false, &cfg);
        }
        let fresh: IpAddr = "203.0.113.5".parse().unwrap();
        let wait = rl.check(fresh, false, &cfg).expect("global budget spent");
        assert!(wait <= Duration::from_millis(cfg.window_ms));
        assert!(
            rl.check("127.0.0.1".parse().unwrap(), false, &cfg)
                .is_none()
        );
        assert!(rl.check("127.0.0.1".parse().unwrap(), true, &cfg).is_some());
    }
}
