//! The reload runtime: turns file events, SIGHUP (`systemctl reload` → `ExecReload` → HUP) and
//! `secrets.reload` into evaluations of the config file against the running gateway.
//!
//! Each evaluation: read → parse → validate (reload mode, SecretRefs with gateway auth failing
//! closed, the gateway's own startup checks) → [`reload::plan`] → [`reload::decide`] → apply in
//! place, or ask the host to restart. An invalid candidate never touches the running gateway:
//! the last good config stays, one warning names file, line and error, and the error shows in
//! the `configReload` status. `RELOADING=1` is always followed by `READY=1`, failure or not.
//!
//! The gateway implements [`ReloadHost`]; evaluations are serialized by one lock.
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::paths::Env;
use crate::config::reload::{
    self, Action, Class, Mode, Plan, ReloadError, ReloadResult, ReloadStatus, Trigger,
};
use crate::config::secrets::{self, Activation, SecretsSnapshot};
use crate::config::watch::ConfigWatcher;
use crate::service::systemd::notify::Notifier;

/// What the reloader needs from the running gateway.
pub(crate) trait ReloadHost: Send + Sync + 'static {
    /// The config the gateway runs with now.
    fn config(&self) -> Arc<Config>;
    /// The secrets it runs with now.
    fn secrets(&self) -> Arc<SecretsSnapshot>;
    /// The checks a candidate must pass to be startable (gateway.mode, bind without auth, auth
    /// mode with its secret, …), with `secrets` resolved for it. `Err` is phrased for the user.
    fn check(&self, candidate: &Config, secrets: &SecretsSnapshot) -> Result<(), String>;
    /// The effective auth mode a candidate would run with (`token`, `password`, `none`).
    fn auth_mode(&self, candidate: &Config) -> String;
    /// Makes `config` and `secrets` active in place; sessions authenticated with a secret whose
    /// value changed are closed (4001 `gateway auth changed`).
    fn apply(&self, config: Config, secrets: SecretsSnapshot);
    /// Starts a restart (exit for the service manager, or in-process).
    fn restart(&self, reason: String);
    /// The service-manager notifier.
    fn notifier(&self) -> &Notifier;
    /// The shared reload bookkeeping.
    fn status(&self) -> &Arc<Mutex<ReloadStatus>>;
}

use crate::sys::time::now_ms;

fn text_hash(raw: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    raw.hash(&mut h);
    h.finish()
}

/// The paths a hot apply changes (everything but restart-required ones).
fn applied_paths(pl: &Plan) -> Vec<String> {
    pl.changes
        .iter()
        .filter(|c| c.class != Class::Restart)
        .map(|c| c.path.clone())
        .collect()
}

/// Drives reloads for one running gateway (one generation, under in-process restarts).
pub(crate) struct Reloader<H: ReloadHost> {
    host: Arc<H>,
    env: Arc<dyn Env + Send + Sync>,
    lock: tokio::sync::Mutex<()>,
    /// Hash of the file text last evaluated (file events with the same text are no-ops).
    last_seen: Mutex<u64>,
}

impl<H: ReloadHost> std::fmt::Debug for Reloader<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

enum Read {
    Text(String),
    Missing,
    Error(String),
}

fn read(path: &Path) -> Read {
    match std::fs::read_to_string(path) {
        Ok(s) => Read::Text(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Read::Missing,
        Err(e) => Read::Error(format!("reading {}: {e}", path.display())),
    }
}

impl<H: ReloadHost> Reloader<H> {
    /// A reloader for `host`; `env` is what SecretRefs and auth resolution read.
    pub(crate) fn new(host: Arc<H>, env: Arc<dyn Env + Send + Sync>) -> Arc<Reloader<H>> {
        let seen = text_hash(&host.config().raw);
        {
            let mut st = host.status().lock().unwrap_or_else(|p| p.into_inner());
            st.mode = Mode::parse(host.config().gateway.reload.mode.as_deref()).unwrap_or_default();
        }
        Arc::new(Reloader {
            host,
            env,
            lock: tokio::sync::Mutex::new(()),
            last_seen: Mutex::new(seen),
        })
    }

    fn reject(&self, raw: &str, err: ReloadError, trigger: Trigger) -> ReloadResult {
        let line = err.display();
        let fresh = self
            .host
            .status()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_rejected(raw, err, trigger);
        if fresh {
            tracing::warn!(
                "config reload skipped (invalid config): {line}; the running config stays active"
            );
        } else {
            tracing::info!("config reload: the file is still invalid (already reported)");
        }
        ReloadResult::Rejected
    }

    fn reject_msg(&self, raw: &str, path: &Path, msg: String, trigger: Trigger) -> ReloadResult {
        let err = ReloadError {
            file: path.display().to_string(),
            line: None,
            column: None,
            message: msg,
            at_ms: now_ms(),
        };
        self.reject(raw, err, trigger)
    }

    /// Resolves the candidate's SecretRefs; gateway auth fails closed.
    async fn activate(&self, candidate: &Config) -> Result<Activation, String> {
        let prev = self.host.secrets();
        let act = secrets::activate(&candidate.doc, &*self.env, Some(&prev)).await;
        let mode = self.host.auth_mode(candidate);
        if let Some(f) = act.auth_blocking(&mode).first() {
            return Err(format!(
                "{} (gateway auth fails closed: the running config and credentials stay active)",
                f.error
            ));
        }
        for f in &act.failures {
            tracing::warn!(
                path = %f.path,
                state = ?f.state,
                "secret reference failed to resolve: {}",
                f.error
            );
        }
        Ok(act)
    }

    /// Evaluates the config file once (see the module doc). Serialized with other evaluations.
    pub(crate) async fn evaluate(&self, trigger: Trigger) -> ReloadResult {
        let _guard = self.lock.lock().await;
        let path = self.host.config().path.clone();
        let (raw, missing) = match read(&path) {
            Read::Text(s) => (s, false),
            Read::Missing => (String::new(), true),
            Read::Error(e) => {
                self.host.notifier().reloading();
                let r = self.reject_msg("", &path, e, trigger);
                self.host
                    .notifier()
                    .ready("config reload failed; running config kept");
                return r;
            }
        };
        let h = text_hash(&raw);
        {
            let mut seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            if trigger == Trigger::File && *seen == h && !missing {
                return ReloadResult::Unchanged;
            }
            *seen = h;
        }
        self.host.notifier().reloading();
        let result = self.evaluate_text(trigger, &path, raw, missing).await;
        let st = self
            .host
            .status()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let line = match result {
            ReloadResult::Rejected => format!(
                "config reload rejected: {}",
                st.last_error
                    .as_ref()
                    .map(|e| e.display())
                    .unwrap_or_default()
            ),
            ReloadResult::Restart => "config reload: restarting".to_string(),
            other => format!(
                "config reload {} (generation {})",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                st.generation
            ),
        };
        self.host.notifier().ready(&line);
        result
    }

    async fn evaluate_text(
        &self,
        trigger: Trigger,
        path: &Path,
        raw: String,
        missing: bool,
    ) -> ReloadResult {
        if missing {
            return self.reject_msg(
                "",
                path,
                "the config file is missing (deleted, or being replaced); restore it".into(),
                trigger,
            );
        }
        let candidate = match Config::parse(path, raw.clone()) {
            Ok(c) => c,
            Err(e) => {
                return self.reject(&raw, ReloadError::from_error(path, &e, now_ms()), trigger);
            }
        };
        let mode = match Mode::parse(candidate.gateway.reload.mode.as_deref()) {
            Ok(m) => m,
            Err(e) => return self.reject_msg(&raw, path, e, trigger),
        };
        let running = self.host.config();
        let pl = reload::plan(&running.doc, &candidate.doc, &*self.env);
        let action = reload::decide(mode, &pl);
        tracing::debug!(?action, %mode, changes = pl.changes.len(), "config reload evaluated");
        let at = now_ms();
        match action {
            Action::Unchanged => {
                // An explicit reload (SIGHUP) also re-resolves SecretRefs: rotated files and
                // helper outputs take effect without a config edit.
                if trigger == Trigger::Signal {
                    match self.activate(&running).await {
                        Ok(act) => {
                            if let Err(e) = self.host.check(&running, &act.snapshot) {
                                return self.reject_msg(&raw, path, e, trigger);
                            }
                            self.host.apply((*running).clone(), act.snapshot);
                        }
                        Err(e) => return self.reject_msg(&raw, path, e, trigger),
                    }
                }
                // Status first, then the log line (operators and tests act on the line).
                self.record(ReloadResult::Unchanged, trigger, &pl, at);
                tracing::info!("config reload: no changes");
                ReloadResult::Unchanged
            }
            Action::Ignore => {
                self.record(ReloadResult::Ignored, trigger, &pl, at);
                tracing::info!(
                    "config change detected but gateway.reload.mode=off ({}); restart the gateway to apply",
                    Plan::summary(
                        &pl.changes
                            .iter()
                            .map(|c| c.path.clone())
                            .collect::<Vec<_>>()
                    )
                );
                ReloadResult::Ignored
            }
            Action::Apply | Action::ApplyWithPending => {
                let pending = pl.paths(Class::Restart);
                let effective = if action == Action::ApplyWithPending {
                    let keep: Vec<&[String]> = pl
                        .of(Class::Restart)
                        .map(|c| c.segments.as_slice())
                        .collect();
                    let doc = reload::merge_keeping(&running.doc, &candidate.doc, &keep);
                    match Config::from_doc(path, raw.clone(), doc)
                        .map_err(|e| format!("gateway: {e}"))
                    {
                        Ok(c) => c,
                        Err(e) => return self.reject_msg(&raw, path, e, trigger),
                    }
                } else {
                    candidate
                };
                if applied_paths(&pl).is_empty() {
                    self.record(ReloadResult::Pending, trigger, &pl, at);
                    tracing::warn!(
                        "config changes need a gateway restart and are pending (gateway.reload.mode=hot): {}",
                        Plan::summary(&pending)
                    );
                    return ReloadResult::Pending;
                }
                let act = match self.activate(&effective).await {
                    Ok(a) => a,
                    Err(e) => return self.reject_msg(&raw, path, e, trigger),
                };
                if let Err(e) = self.host.check(&effective, &act.snapshot) {
                    return self.reject_msg(&raw, path, e, trigger);
                }
                self.host.apply(effective, act.snapshot);
                let applied = applied_paths(&pl);
                let result = if action == Action::Apply {
                    ReloadResult::Applied
                } else {
                    ReloadResult::AppliedWithPending
                };
                self.record(result, trigger, &pl, at);
                tracing::info!("config hot reload applied ({})", Plan::summary(&applied));
                if result == ReloadResult::AppliedWithPending {
                    tracing::warn!(
                        "config changes need a gateway restart and are pending (gateway.reload.mode=hot): {}",
                        Plan::summary(&pending)
                    );
                }
                result
            }
            Action::Restart => {
                // Validate before tearing anything down: the restarted gateway must start.
                let act = match self.activate(&candidate).await {
                    Ok(a) => a,
                    Err(e) => return self.reject_msg(&raw, path, e, trigger),
                };
                if let Err(e) = self.host.check(&candidate, &act.snapshot) {
                    return self.reject_msg(&raw, path, e, trigger);
                }
                let why: Vec<String> = if mode == Mode::Restart {
                    pl.changes
                        .iter()
                        .filter(|c| c.class != Class::None)
                        .map(|c| c.path.clone())
                        .collect()
                } else {
                    pl.paths(Class::Restart)
                };
                let reason = format!("config reload: {}", Plan::summary(&why));
                self.record(ReloadResult::Restart, trigger, &pl, at);
                tracing::info!(
                    "config change requires gateway restart ({}) — restarting",
                    Plan::summary(&why)
                );
                self.host.restart(reason);
                ReloadResult::Restart
            }
        }
    }

    fn record(&self, r: ReloadResult, trigger: Trigger, pl: &Plan, at: u64) {
        let mut st = self.host.status().lock().unwrap_or_else(|p| p.into_inner());
        st.record(r, trigger, pl, at);
        st.mode =
            Mode::parse(self.host.config().gateway.reload.mode.as_deref()).unwrap_or_default();
    }

    /// `secrets.reload`: re-resolves every SecretRef of the running config. Owners that fail
    /// keep their last good value (reported `stale`) or stay unavailable (`cold`); the result
    /// lists them (never values). Gateway auth fails closed: nothing is swapped then.
    pub(crate) async fn reload_secrets(&self) -> Value {
        let _guard = self.lock.lock().await;
        let running = self.host.config();
        let prev = self.host.secrets();
        let act = secrets::activate(&running.doc, &*self.env, Some(&prev)).await;
        let mode = self.host.auth_mode(&running);
        let mut report = act.report();
        if !act.auth_blocking(&mode).is_empty() {
            report["applied"] = Value::Bool(false);
            return report;
        }
        if let Err(e) = self.host.check(&running, &act.snapshot) {
            report["applied"] = Value::Bool(false);
            report["error"] = Value::String(e);
            return report;
        }
        for f in &act.failures {
            tracing::warn!(path = %f.path, state = ?f.state, "secrets.reload: {}", f.error);
        }
        tracing::info!(
            resolved = act.resolved,
            failed = act.failures.len(),
            "secrets reloaded"
        );
        self.host.apply((*running).clone(), act.snapshot);
        report["applied"] = Value::Bool(true);
        report
    }

    /// Starts the file watcher and the SIGHUP handler; both stop when `stop` is cancelled.
    /// Call before `READY=1` so an early `systemctl reload` never hits SIGHUP's default action.
    pub(crate) fn spawn(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("config reload: cannot install a SIGHUP handler: {e}");
                None
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let path = self.host.config().path.clone();
        let watcher = match ConfigWatcher::start(&path, move |_| {
            let _ = tx.try_send(());
        }) {
            Ok(w) => {
                let mut st = self.host.status().lock().unwrap_or_else(|p| p.into_inner());
                st.watching = true;
                st.watch_error = None;
                Some(w)
            }
            Err(e) => {
                tracing::warn!("{e}");
                let mut st = self.host.status().lock().unwrap_or_else(|p| p.into_inner());
                st.watching = false;
                st.watch_error = Some(e.to_string());
                None
            }
        };
        let me = self.clone();
        tokio::spawn(async move {
            let _watcher = watcher;
            loop {
                let trigger = tokio::select! {
                    _ = stop.cancelled() => return,
                    Some(()) = rx.recv() => Trigger::File,
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => Trigger::Signal,
                };
                if trigger == Trigger::Signal {
                    tracing::info!("received SIGHUP; reloading config");
                }
                if me.evaluate(trigger).await == ReloadResult::Restart {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A host that records what the reloader asked for.
    struct Fake {
        config: Mutex<Arc<Config>>,
        secrets: Mutex<Arc<SecretsSnapshot>>,
        status: Arc<Mutex<ReloadStatus>>,
        notifier: Notifier,
        applied: AtomicUsize,
        restarts: Mutex<Vec<String>>,
    }

    impl ReloadHost for Fake {
        fn config(&self) -> Arc<Config> {
            self.config.lock().unwrap().clone()
        }
        fn secrets(&self) -> Arc<SecretsSnapshot> {
            self.secrets.lock().unwrap().clone()
        }
        fn check(&self, c: &Config, _: &SecretsSnapshot) -> Result<(), String> {
            match c.gateway.mode.as_deref() {
                Some("local") => Ok(()),
                _ => Err("gateway.mode must be local".into()),
            }
        }
        fn auth_mode(&self, c: &Config) -> String {
            reload::effective_auth_mode(&c.doc, &HashMap::<String, String>::new())
        }
        fn apply(&self, c: Config, s: SecretsSnapshot) {
            *self.config.lock().unwrap() = Arc::new(c);
            *self.secrets.lock().unwrap() = Arc::new(s);
            self.applied.fetch_add(1, Ordering::SeqCst);
        }
        fn restart(&self, reason: String) {
            self.restarts.lock().unwrap().push(reason);
        }
        fn notifier(&self) -> &Notifier {
            &self.notifier
        }
        fn status(&self) -> &Arc<Mutex<ReloadStatus>> {
            &self.status
        }
    }

    struct Env0(HashMap<String, String>);
    impl Env for Env0 {
        fn var(&self, k: &str) -> Option<String> {
            self.0.get(k).cloned()
        }
    }

    fn setup(text: &str) -> (tempfile::TempDir, Arc<Fake>, Arc<Reloader<Fake>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
        std::fs::write(&path, text).unwrap();
        let cfg = Config::load(&path).unwrap();
        let fake = Arc::new(Fake {
            config: Mutex::new(Arc::new(cfg)),
            secrets: Mutex::new(Arc::new(SecretsSnapshot::default())),
            status: Arc::new(Mutex::new(ReloadStatus::default())),
            notifier: Notifier::default(),
            applied: AtomicUsize::new(0),
            restarts: Mutex::new(Vec::new()),
        });
        let env = Env0(HashMap::from([(
            "GW_TOKEN".to_string(),
            "t-env".to_string(),
        )]));
        let r = Reloader::new(fake.clone(), Arc::new(env));
        (dir, fake, r)
    }

    fn write(dir: &tempfile::TempDir, text: &str) {
        std::fs::write(dir.path().join("openclaw.json"), text).unwrap();
    }

    const BASE: &str = "{gateway: {mode: 'local', port: 1000, auth: {token: 'a'}}}";

    #[tokio::test]
    async fn hybrid_hot_then_restart_then_invalid() {
        let (dir, fake, r) = setup(BASE);
        // Same text: nothing happens for file events.
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Unchanged);
        assert_eq!(fake.status.lock().unwrap().evaluations, 0);

        write(
            &dir,
            "{gateway: {mode: 'local', port: 1000, auth: {token: 'b'}}, logging: {level: 'debug'}}",
        );
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Applied);
        assert_eq!(fake.applied.load(Ordering::SeqCst), 1);
        assert_eq!(fake.config().get("gateway.auth.token"), Some(&json!("b")));
        assert_eq!(
            fake.secrets().get("gateway.auth.token").unwrap().expose(),
            "b"
        );
        assert_eq!(fake.status.lock().unwrap().generation, 1);

        write(
            &dir,
            "{gateway: {mode: 'local', port: 2000, auth: {token: 'b'}}, logging: {level: 'debug'}}",
        );
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Restart);
        assert_eq!(
            fake.restarts.lock().unwrap().as_slice(),
            ["config reload: gateway.port"]
        );
        assert_eq!(
            fake.applied.load(Ordering::SeqCst),
            1,
            "a restart is not a hot apply"
        );

        write(&dir, "{gateway: {mode: 'local',\n port: 3000\n auth: {}}}");
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Rejected);
        let st = fake.status.lock().unwrap().clone();
        let e = st.last_error.unwrap();
        assert_eq!(e.line, Some(3), "{e:?}");
        assert!(e.file.ends_with("openclaw.json"));
        assert_eq!(
            fake.config().gateway.port,
            Some(1000),
            "last good config stays"
        );
    }

    #[tokio::test]
    async fn hot_mode_keeps_restart_paths_pending() {
        let (dir, fake, r) = setup("{gateway: {mode: 'local', port: 1000, reload: {mode: 'hot'}}}");
        write(
            &dir,
            "{gateway: {mode: 'local', port: 2000, reload: {mode: 'hot'}}, tools: {x: 1}}",
        );
        assert_eq!(
            r.evaluate(Trigger::File).await,
            ReloadResult::AppliedWithPending
        );
        assert_eq!(fake.config().gateway.port, Some(1000));
        assert_eq!(fake.config().get("tools.x"), Some(&json!(1)));
        assert!(fake.restarts.lock().unwrap().is_empty());
        let st = fake.status.lock().unwrap().clone();
        assert_eq!(st.pending, ["gateway.port"]);
        assert_eq!(st.mode, Mode::Hot);
        // Reverting the port clears the pending entry.
        write(
            &dir,
            "{gateway: {mode: 'local', port: 1000, reload: {mode: 'hot'}}, tools: {x: 1}}",
        );
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Unchanged);
        assert!(fake.status.lock().unwrap().pending.is_empty());
        // Only a restart-required change: nothing to apply, pending recorded, no new generation.
        write(
            &dir,
            "{gateway: {mode: 'local', port: 3000, reload: {mode: 'hot'}}, tools: {x: 1}}",
        );
        let applied = fake.applied.load(Ordering::SeqCst);
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Pending);
        assert_eq!(fake.applied.load(Ordering::SeqCst), applied);
        let st = fake.status.lock().unwrap().clone();
        assert_eq!(
            (st.pending.as_slice(), st.generation),
            (&["gateway.port".to_string()][..], 1)
        );
    }

    #[tokio::test]
    async fn off_mode_reports_but_never_applies() {
        let (dir, fake, r) = setup("{gateway: {mode: 'local', reload: {mode: 'off'}}}");
        write(
            &dir,
            "{gateway: {mode: 'local', reload: {mode: 'off'}}, tools: {x: 1}}",
        );
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Ignored);
        assert_eq!(fake.applied.load(Ordering::SeqCst), 0);
        assert_eq!(fake.status.lock().unwrap().pending, ["tools.x"]);
    }

    #[tokio::test]
    async fn restart_is_refused_when_the_candidate_could_not_start() {
        let (dir, fake, r) = setup(BASE);
        // gateway.mode removed: the restarted gateway would refuse to start.
        write(&dir, "{gateway: {port: 2000, auth: {token: 'a'}}}");
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Rejected);
        assert!(fake.restarts.lock().unwrap().is_empty());
        let e = fake.status.lock().unwrap().last_error.clone().unwrap();
        assert!(e.message.contains("gateway.mode must be local"), "{e:?}");
        // A deleted file is rejected, not applied as an empty config.
        std::fs::remove_file(dir.path().join("openclaw.json")).unwrap();
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Rejected);
        assert!(
            fake.status
                .lock()
                .unwrap()
                .last_error
                .clone()
                .unwrap()
                .message
                .contains("missing")
        );
    }

    #[tokio::test]
    async fn unresolvable_auth_ref_fails_closed_and_sighup_reresolves() {
        let (dir, fake, r) = setup(BASE);
        write(
            &dir,
            "{gateway: {mode: 'local', port: 1000, auth: {token: '${NOT_SET_ANYWHERE}'}}}",
        );
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Rejected);
        let e = fake.status.lock().unwrap().last_error.clone().unwrap();
        assert!(
            e.message.contains("NOT_SET_ANYWHERE") && e.message.contains("fails closed"),
            "{e:?}"
        );
        assert_eq!(fake.config().get("gateway.auth.token"), Some(&json!("a")));

        write(
            &dir,
            "{gateway: {mode: 'local', port: 1000, auth: {token: '${GW_TOKEN}'}}}",
        );
        assert_eq!(r.evaluate(Trigger::File).await, ReloadResult::Applied);
        assert_eq!(
            fake.secrets().get("gateway.auth.token").unwrap().expose(),
            "t-env"
        );
        // SIGHUP with an unchanged file still re-activates secrets (and counts as an evaluation).
        let before = fake.applied.load(Ordering::SeqCst);
        assert_eq!(r.evaluate(Trigger::Signal).await, ReloadResult::Unchanged);
        assert_eq!(fake.applied.load(Ordering::SeqCst), before + 1);
        let report = r.reload_secrets().await;
        assert_eq!(report["ok"], json!(true));
        assert_eq!(report["applied"], json!(true));
    }

    #[tokio::test]
    async fn bad_reload_mode_is_rejected_with_the_key() {
        let (dir, fake, r) = setup(BASE);
        write(
            &dir,
            "{gateway: {mode: 'local', port: 1000, auth: {token: 'a'}, reload: {mode: 'sometimes'}}}",
        );
        assert_eq!(r.evaluate(Trigger::Signal).await, ReloadResult::Rejected);
        let e = fake.status.lock().unwrap().last_error.clone().unwrap();
        assert!(e.message.contains("gateway.reload.mode"), "{e:?}");
    }
}
