//! Config hot reload and SecretRefs wired into the running gateway.
//!
//! - [`GatewayHost`] implements [`ReloadHost`] for [`GatewayState`]: it checks that a candidate
//!   config could start (same guards as startup, without writing anything), swaps config,
//!   secrets and auth atomically, and closes sessions authenticated with a rotated-out secret
//!   with 4001 `gateway auth changed`.
//! - [`ReloadShared`] is the part of the state the reloader owns: the secrets snapshot, the
//!   shared `configReload` bookkeeping (which outlives in-process restarts), the restart request
//!   and the notifier.
//! - Restarts: under a service manager ([`Supervisor::detect_current`]) the gateway exits with
//!   [`Exit::Restart`](crate::error::Exit::Restart) (75) and the manager starts it again; otherwise `run_daemon` restarts
//!   in-process, re-reading the config and keeping the listening sockets open.
//! - `secrets.reload` (admin; `openclaw secrets reload` is its client).
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;
use tokio::sync::watch;

use super::auth::Mode;
use super::methods::{Ctx, MethodTable, ScopeRule};
use super::protocol::{ErrorShape, scopes};
use super::reloader::{ReloadHost, Reloader};
use super::state::GatewayState;
use super::{AuthProblem, bind_from, resolve_auth};
use crate::config::Config;
use crate::config::paths::{Paths, ProcessEnv};
use crate::config::reload::{self, ReloadStatus, Supervisor};
use crate::config::secrets::SecretsSnapshot;
use crate::service::systemd::notify::Notifier;

/// The reloader of one gateway generation.
pub(crate) type GatewayReloader = Reloader<GatewayHost>;

/// Reload-owned state held by [`GatewayState::reload`].
pub struct ReloadShared {
    /// `configReload` bookkeeping, shared across in-process restarts.
    pub status: Arc<Mutex<ReloadStatus>>,
    /// How restarts are carried out.
    pub supervisor: Supervisor,
    /// The service-manager notifier.
    pub notifier: Notifier,
    /// The listening sockets came from the service manager (their address is not ours to change).
    pub inherited_listeners: bool,
    secrets: RwLock<Arc<SecretsSnapshot>>,
    restart: watch::Sender<Option<String>>,
    reloader: Mutex<Option<Arc<GatewayReloader>>>,
    /// The `secrets.reload` caller: if its secret rotates, it is closed only after its
    /// response went out (conn id, whether it matched a rotation).
    deferred_close: Mutex<Option<(String, bool)>>,
}

impl std::fmt::Debug for ReloadShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadShared")
            .field("supervisor", &self.supervisor)
            .finish_non_exhaustive()
    }
}

impl Default for ReloadShared {
    /// Standalone state (tests, embedded servers): empty secrets, no supervisor, no notifier.
    fn default() -> Self {
        ReloadShared::new(
            Arc::default(),
            SecretsSnapshot::default(),
            Supervisor::None,
            Notifier::default(),
            false,
        )
    }
}

impl ReloadShared {
    /// Reload state for one generation.
    pub fn new(
        status: Arc<Mutex<ReloadStatus>>,
        secrets: SecretsSnapshot,
        supervisor: Supervisor,
        notifier: Notifier,
        inherited_listeners: bool,
    ) -> ReloadShared {
        ReloadShared {
            status,
            supervisor,
            notifier,
            inherited_listeners,
            secrets: RwLock::new(Arc::new(secrets)),
            restart: watch::channel(None).0,
            reloader: Mutex::new(None),
            deferred_close: Mutex::new(None),
        }
    }

    /// The secrets snapshot request paths read.
    pub fn secrets(&self) -> Arc<SecretsSnapshot> {
        self.secrets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_secrets(&self, s: SecretsSnapshot) {
        *self.secrets.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
    }

    /// Asks the serving loop to restart (first request wins).
    pub fn request_restart(&self, reason: String) {
        self.restart.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Resolves with the reason once a restart was requested.
    pub async fn restart_requested(&self) -> String {
        let mut rx = self.restart.subscribe();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The `configReload` object for `health` and `status`.
    pub fn status_json(&self) -> Value {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_json()
    }

    /// This generation's reloader (`None` while restarting).
    pub(crate) fn reloader(&self) -> Option<Arc<GatewayReloader>> {
        self.reloader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// [`ReloadHost`] for a running gateway generation.
#[derive(Debug)]
pub(crate) struct GatewayHost {
    state: Arc<GatewayState>,
}

/// The startup guards of `prepare`, without side effects: `Err` says why `candidate` could
/// not start (a reload is then rejected and the running config stays).
pub(crate) fn check_startable(
    paths: &Paths,
    args: &crate::gateway::options::RunOptions,
    candidate: &Config,
    secrets: &SecretsSnapshot,
) -> std::result::Result<(super::listener::Bind, u16), String> {
    if !args.allow_unconfigured {
        match candidate.gateway.mode.as_deref() {
            Some("local") => {}
            None => {
                return Err(
                    "gateway.mode is missing (the gateway would refuse to start); set gateway.mode=local"
                        .into(),
                );
            }
            Some(m) => {
                return Err(format!(
                    "gateway.mode is {m:?} (the gateway would refuse to start); set gateway.mode=local"
                ));
            }
        }
    }
    let port = paths
        .resolve_port(args.port, &ProcessEnv, candidate.gateway.port)
        .map_err(|e| e.to_string())?;
    let bind = bind_from(args, candidate).map_err(|e| e.to_string())?;
    match resolve_auth(args, candidate, &bind, secrets) {
        Ok(_) => Ok((bind, port)),
        Err(AuthProblem::MissingToken) => Err(
            "gateway.auth.token is gone but auth mode is token; set gateway.auth.token (or OPENCLAW_GATEWAY_TOKEN)"
                .into(),
        ),
        Err(AuthProblem::Fatal(e)) => Err(e.to_string()),
    }
}

impl ReloadHost for GatewayHost {
    fn config(&self) -> Arc<Config> {
        self.state.config()
    }

    fn secrets(&self) -> Arc<SecretsSnapshot> {
        self.state.reload.secrets()
    }

    fn check(
        &self,
        candidate: &Config,
        secrets: &SecretsSnapshot,
    ) -> std::result::Result<(), String> {
        let s = &self.state;
        let (bind, port) = check_startable(&s.paths, &s.run_args, candidate, secrets)?;
        // A new listen address must be bindable before we tear anything down (unless the
        // service manager owns the sockets, which then stay as they are).
        let running_port = s.listen.first().map(|a| a.port()).unwrap_or(s.port);
        let port_changed = port != 0 && port != running_port;
        if !s.reload.inherited_listeners && (bind != s.bind || port_changed) {
            super::listener::bind_all(&bind, port)
                .map_err(|e| format!("the new listen address cannot be bound: {e}"))?;
        }
        Ok(())
    }

    fn auth_mode(&self, candidate: &Config) -> String {
        let s = &self.state;
        let snap = self.state.reload.secrets();
        bind_from(&s.run_args, candidate)
            .ok()
            .and_then(|b| resolve_auth(&s.run_args, candidate, &b, &snap).ok())
            .map(|a| a.mode.as_str().to_string())
            .unwrap_or_else(|| reload::effective_auth_mode(&candidate.doc, &ProcessEnv))
    }

    fn apply(&self, config: Config, secrets: SecretsSnapshot) {
        let s = &self.state;
        let new_auth = match resolve_auth(&s.run_args, &config, &s.bind, &secrets) {
            Ok(a) => a,
            Err(p) => {
                // check() passed moments ago; keep everything as it is rather than half-apply.
                tracing::error!("config reload not applied: {}", p.into_error());
                return;
            }
        };
        let old = s.auth();
        let rotated = |m: Mode, a: &Option<String>, b: &Option<String>| {
            old.mode == m && new_auth.mode == m && a != b
        };
        let token_rotated = rotated(Mode::Token, &old.token, &new_auth.token);
        let password_rotated = rotated(Mode::Password, &old.password, &new_auth.password);
        s.reload.set_secrets(secrets);
        s.set_auth(new_auth);
        s.replace_config(config);
        for (hit, method) in [(token_rotated, "token"), (password_rotated, "password")] {
            if hit {
                let mut deferred = s
                    .reload
                    .deferred_close
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let n = s.close_where(
                    |c| {
                        if c.auth_method != method {
                            return false;
                        }
                        match deferred.as_mut() {
                            Some((id, matched)) if *id == c.id => {
                                *matched = true;
                                false
                            }
                            _ => true,
                        }
                    },
                    4001,
                    "gateway auth changed",
                );
                tracing::info!(
                    "gateway {method} rotated: closed {n} session(s) authenticated with the old one (4001 gateway auth changed)"
                );
            }
        }
        s.bump_health();
    }

    fn restart(&self, reason: String) {
        self.state.reload.request_restart(reason);
    }

    fn notifier(&self) -> &Notifier {
        &self.state.reload.notifier
    }

    fn status(&self) -> &Arc<Mutex<ReloadStatus>> {
        &self.state.reload.status
    }
}

/// Starts the watcher + SIGHUP handler for this generation (call before `READY=1`).
pub(crate) fn start(state: &Arc<GatewayState>) {
    let host = Arc::new(GatewayHost {
        state: state.clone(),
    });
    let r = Reloader::new(host, Arc::new(ProcessEnv));
    *state
        .reload
        .reloader
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
    r.spawn(state.shutdown.token().clone());
}

/// Drops this generation's reloader (it holds the state: breaks the cycle).
pub(crate) fn stop(state: &GatewayState) {
    state
        .reload
        .reloader
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
}

/// Registers `secrets.reload` (admin).
pub(crate) fn register_methods(t: &mut MethodTable) {
    t.register(
        "secrets.reload",
        ScopeRule::Fixed(scopes::ADMIN),
        |ctx: Ctx| async move {
            let Some(r) = ctx.state.reload.reloader() else {
                return Err(ErrorShape::unavailable(
                    "secrets.reload unavailable: the gateway is restarting; retry shortly",
                ));
            };
            let slot = &ctx.state.reload.deferred_close;
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((ctx.conn.id.clone(), false));
            let report = r.reload_secrets().await;
            let caller_rotated = slot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .is_some_and(|(_, m)| m);
            if caller_rotated {
                // Answer first, then close: the caller authenticated with the rotated-out secret.
                ctx.respond_interim(report.clone());
                let id = ctx.conn.id.clone();
                ctx.state
                    .close_where(|c| c.id == id, 4001, "gateway auth changed");
            }
            Ok(report)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Config {
        Config::parse(Path::new("/x/openclaw.json"), text.into()).unwrap()
    }

    fn paths() -> Paths {
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), "/home/u".to_string())].into();
        Paths::resolve(None, false, &env).unwrap()
    }

    #[test]
    fn startable_checks_match_startup_guards() {
        if std::env::var_os("OPENCLAW_GATEWAY_TOKEN").is_some() {
            eprintln!("SKIP: OPENCLAW_GATEWAY_TOKEN set in the test environment");
            return;
        }
        let args = crate::gateway::options::RunOptions::default();
        let check = |text: &str| {
            let c = cfg(text);
            let snap =
                crate::config::secrets::activate_blocking(&c.doc, &ProcessEnv, None).snapshot;
            check_startable(&paths(), &args, &c, &snap).map(|_| ())
        };
        assert!(check("{gateway: {mode: 'local', auth: {token: 't'}}}").is_ok());
        let e = check("{gateway: {auth: {token: 't'}}}").unwrap_err();
        assert!(e.contains("gateway.mode is missing"), "{e}");
        let e = check("{gateway: {mode: 'remote', auth: {token: 't'}}}").unwrap_err();
        assert!(e.contains("\"remote\""), "{e}");
        let e = check("{gateway: {mode: 'local'}}").unwrap_err();
        assert!(e.contains("gateway.auth.token is gone"), "{e}");
        let e = check("{gateway: {mode: 'local', bind: 'lan', auth: {mode: 'none'}}}").unwrap_err();
        assert!(
            e.contains("Refusing to bind gateway to lan without auth"),
            "{e}"
        );
        let e = check("{gateway: {mode: 'local', auth: {token: '${OPENCLAW_TEST_UNSET_X}'}}}")
            .unwrap_err();
        assert!(
            e.contains("OPENCLAW_TEST_UNSET_X") && e.contains("fail closed"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn restart_request_first_reason_wins() {
        let shared = ReloadShared::new(
            Arc::default(),
            SecretsSnapshot::default(),
            Supervisor::None,
            Notifier::default(),
            false,
        );
        shared.request_restart("a".into());
        shared.request_restart("b".into());
        assert_eq!(shared.restart_requested().await, "a");
    }
}
