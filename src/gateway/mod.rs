//! The network service: startup checks, listener acquisition, the accept loop, HTTP and the
//! WebSocket protocol v4 on one port, background events (tick, health), graceful shutdown.
//!
//! # Startup order (`run_daemon`)
//! 1. inherited sockets are taken (before any thread exists), logging starts;
//! 2. config is loaded (invalid → exit 78 with file:line:col), `--init` bootstraps a missing
//!    one, the `gateway.mode` guard runs, port/bind/auth are resolved (refusals exit 78), a
//!    missing token is generated and persisted on loopback;
//! 3. `--force` frees the port, listeners are bound (EADDRINUSE → exit 78 with the holder);
//! 4. the runtime starts, the server answers a self-probe of `/healthz`, then
//!    `READY=1` is sent and `listening on ws://…` logged;
//! 5. SIGTERM/SIGINT: `STOPPING=1`, `shutdown` event, close 1012, bounded drain; a second
//!    signal exits at once.
pub(crate) mod admission;
pub mod auth;
pub(crate) mod boot_methods;
pub mod client;
pub(crate) mod config_methods;
pub(crate) mod conn;
pub(crate) mod device;
pub(crate) mod feature;
pub(crate) mod handover;
pub(crate) mod health;
pub mod http;
pub(crate) mod http_api;
pub(crate) mod identity;
pub mod listener;
pub mod methods;
pub(crate) mod options;
pub mod outbound;
pub(crate) mod peer;
pub mod protocol;
pub(crate) mod refusal;
pub(crate) mod reload;
pub(crate) mod reloader;
pub(crate) mod shutdown;
pub mod state;
pub(crate) mod statelock;
pub mod ws;
pub(crate) mod wsio;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use self::options::{AuthMode, BindMode, RunOptions};
use self::refusal::Refusal;
use crate::config::paths::{Paths, ProcessEnv};
use crate::config::reload as config_reload;
use crate::config::secrets::{self, SecretsSnapshot};
use crate::config::{Config, write};
use crate::error::{Error, Exit, Result};
use crate::service::launchd::policy as launchd_policy;
use crate::service::systemd::notify::Notifier;
use auth::{Mode, ResolvedAuth};
use listener::Bind;
use state::{Broadcast, GatewayState, Settings, StateInit};

/// What startup resolved (everything except sockets).
#[derive(Debug, Clone)]
pub struct Plan {
    /// Config as loaded (after `--init` / token generation).
    pub config: Config,
    /// Port.
    pub port: u16,
    /// Bind.
    pub bind: Bind,
    /// Auth snapshot.
    pub auth: ResolvedAuth,
    /// Resolved SecretRefs (gateway auth, provider keys).
    pub secrets: SecretsSnapshot,
}

pub(crate) fn bind_from(args: &RunOptions, cfg: &Config) -> std::result::Result<Bind, Refusal> {
    let custom_host = || {
        args.host
            .clone()
            .or_else(|| cfg.gateway.custom_bind_host.clone())
            .filter(|h| !h.trim().is_empty())
            .ok_or(Refusal::CustomBindNeedsHost)
    };
    match args.bind {
        Some(BindMode::Loopback) => return Ok(Bind::Loopback),
        Some(BindMode::Lan) => return Ok(Bind::Lan),
        Some(BindMode::Custom) => return Ok(Bind::Custom(custom_host()?)),
        None if args.host.is_some() => return Ok(Bind::Custom(custom_host()?)),
        None => {}
    }
    match cfg.gateway.bind.as_deref() {
        None | Some("loopback") | Some("auto") => Ok(Bind::Loopback),
        Some("lan") => Ok(Bind::Lan),
        Some("custom") => Ok(Bind::Custom(custom_host()?)),
        Some("tailnet") => Err(Refusal::TailnetUnsupported {
            path: cfg.path.clone(),
        }),
        Some(other) => Err(Refusal::InvalidBind {
            value: other.to_string(),
            path: cfg.path.clone(),
        }),
    }
}

fn env_secret(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The startup guards and resolution of docs/protocol.md §6 (pure apart from config writes).
pub fn prepare(paths: &Paths, args: &RunOptions) -> Result<Plan> {
    prepare_with(paths, args, None)
}

/// Resolves the config's SecretRefs (eagerly) and logs the ones that failed (never values).
fn activate_secrets(config: &Config, previous: Option<&SecretsSnapshot>) -> SecretsSnapshot {
    let act = secrets::activate_blocking(&config.doc, &ProcessEnv, previous);
    for f in &act.failures {
        tracing::warn!(path = %f.path, state = ?f.state, "secret reference failed to resolve: {}", f.error);
    }
    act.snapshot
}

/// [`prepare`], re-reading the config from disk; `previous` keeps last good values of
/// unchanged SecretRefs that fail now (in-process restarts).
pub fn prepare_with(
    paths: &Paths,
    args: &RunOptions,
    previous: Option<&SecretsSnapshot>,
) -> Result<Plan> {
    let mut config = Config::load(&paths.config_path)?;
    if args.init && !config.exists {
        let doc = json!({"gateway": {"mode": "local", "auth": {"mode": "token", "token": write::generate_token()}}});
        write::write_config(&paths.config_path, &doc)?;
        tracing::info!(
            "created {} (gateway.mode=local, generated token); read the token with `openclaw gateway auth-token`",
            paths.config_path.display()
        );
        config = Config::load(&paths.config_path)?;
    }
    if !args.allow_unconfigured {
        if !config.exists {
            return Err(Refusal::MissingConfig {
                path: paths.config_path.clone(),
            }
            .into());
        }
        match config.gateway.mode.as_deref() {
            Some("local") => {}
            None => {
                return Err(Refusal::ModeMissing {
                    path: paths.config_path.clone(),
                }
                .into());
            }
            Some(m) => {
                return Err(Refusal::ModeNotLocal {
                    mode: m.to_string(),
                    path: paths.config_path.clone(),
                }
                .into());
            }
        }
    }
    let port = paths.resolve_port(args.port, &ProcessEnv, config.gateway.port)?;
    let bind = bind_from(args, &config)?;
    let mut secrets = activate_secrets(&config, previous);

    let auth = match resolve_auth(args, &config, &bind, &secrets) {
        Ok(a) => a,
        Err(AuthProblem::MissingToken) if bind.is_loopback() => {
            // Auth on by default: generate a token on loopback and persist it atomically.
            let t = write::generate_token();
            let mut doc = config.doc.clone();
            write::set_path(&mut doc, "gateway.auth.token", Value::String(t)).map_err(|e| {
                Refusal::TokenNotStorable {
                    path: config.path.clone(),
                    detail: e,
                }
            })?;
            write::write_config(&config.path, &doc)?;
            tracing::info!(
                "no gateway token was configured: generated one and saved it to {} (gateway.auth.token); read it with `openclaw gateway auth-token`",
                config.path.display()
            );
            config = Config::load(&paths.config_path)?;
            secrets = activate_secrets(&config, Some(&secrets));
            resolve_auth(args, &config, &bind, &secrets).map_err(AuthProblem::into_error)?
        }
        Err(p) => return Err(p.into_error()),
    };
    if auth.mode == Mode::None {
        tracing::warn!("auth is off (--auth none): any local process can control this gateway");
    }
    Ok(Plan {
        config,
        port,
        bind,
        auth,
        secrets,
    })
}

/// Why auth could not be resolved.
#[derive(Debug)]
pub enum AuthProblem {
    /// Token mode without a token (startup generates one on loopback; reload refuses).
    MissingToken,
    /// Anything else (exit 78).
    Fatal(Refusal),
}

impl AuthProblem {
    /// The user-facing error (a missing token off loopback is the "without auth" refusal).
    pub fn into_error(self) -> Error {
        match self {
            AuthProblem::MissingToken => Refusal::TokenMissing.into(),
            AuthProblem::Fatal(r) => r.into(),
        }
    }
}

fn refuse_unauthenticated(bind: &Bind) -> Refusal {
    Refusal::UnauthenticatedBind {
        host: match bind {
            Bind::Custom(h) => h.clone(),
            other => other.name().to_string(),
        },
    }
}

/// Resolves the auth snapshot: token `--token` → `OPENCLAW_GATEWAY_TOKEN` →
/// `gateway.auth.token` (password likewise); mode `--auth` → `gateway.auth.mode` → password
/// when only a password exists → token. Pure apart from reading env (and env SecretRefs), so
/// config reload can call it again with the process's original flags
/// ([`GatewayState::run_args`]) and swap the result in with [`GatewayState::set_auth`].
pub fn resolve_auth(
    args: &RunOptions,
    config: &Config,
    bind: &Bind,
    secrets: &SecretsSnapshot,
) -> std::result::Result<ResolvedAuth, AuthProblem> {
    let fatal = AuthProblem::Fatal;
    // From the secrets snapshot (plain values and resolved SecretRefs); a ref without a value
    // is an error, raised below only if the effective mode needs that secret (fail closed).
    let from_snapshot = |path: &str| -> std::result::Result<Option<String>, String> {
        match secrets.get(path) {
            Some(v) if !v.expose().is_empty() => Ok(Some(v.expose().to_string())),
            Some(_) => Ok(None),
            None => match secrets.cold_failure(path) {
                Some(e) => Err(e),
                None => Ok(None),
            },
        }
    };
    let token = match args
        .token
        .clone()
        .or_else(|| env_secret("OPENCLAW_GATEWAY_TOKEN"))
    {
        Some(t) => Ok(Some(t)),
        None => from_snapshot("gateway.auth.token"),
    };
    let password = match args
        .password
        .clone()
        .or_else(|| env_secret("OPENCLAW_GATEWAY_PASSWORD"))
    {
        Some(p) => Ok(Some(p)),
        None => from_snapshot("gateway.auth.password"),
    };
    let unresolved = |detail: String| fatal(Refusal::SecretUnresolved { detail });
    let explicit_mode = match args.auth {
        Some(AuthMode::Token) => Some(Mode::Token),
        Some(AuthMode::Password) => Some(Mode::Password),
        Some(AuthMode::None) => Some(Mode::None),
        None => match config.gateway.auth.mode.as_deref() {
            None => None,
            Some("token") => Some(Mode::Token),
            Some("password") => Some(Mode::Password),
            Some("none") => Some(Mode::None),
            Some(other) => {
                return Err(fatal(Refusal::UnsupportedAuthMode {
                    mode: other.to_string(),
                    path: config.path.clone(),
                }));
            }
        },
    };
    // Only the secret the effective mode needs may fail; an implicit mode needs both known.
    let (token, password) = match explicit_mode {
        Some(Mode::Token) => (token.map_err(unresolved)?, password.unwrap_or(None)),
        Some(Mode::Password) => (token.unwrap_or(None), password.map_err(unresolved)?),
        Some(Mode::None) => (token.unwrap_or(None), password.unwrap_or(None)),
        None => (token.map_err(unresolved)?, password.map_err(unresolved)?),
    };
    let mode = match explicit_mode {
        Some(m) => m,
        None if token.is_some() && password.is_some() => {
            return Err(fatal(Refusal::AmbiguousAuth));
        }
        None if token.is_none() && password.is_some() => Mode::Password,
        None => Mode::Token,
    };
    match mode {
        Mode::None if !bind.is_loopback() => return Err(fatal(refuse_unauthenticated(bind))),
        Mode::Token if token.is_none() && !bind.is_loopback() => {
            return Err(fatal(refuse_unauthenticated(bind)));
        }
        Mode::Token if token.is_none() => return Err(AuthProblem::MissingToken),
        Mode::Password if password.is_none() => {
            return Err(fatal(Refusal::PasswordMissing));
        }
        _ => {}
    }
    Ok(ResolvedAuth {
        mode,
        token: if mode == Mode::Token { token } else { None },
        password: if mode == Mode::Password {
            password
        } else {
            None
        },
        rate_limit: config.gateway.auth.rate_limit.clone().unwrap_or_default(),
    })
}

/// A config refusal under launchd: write the marker `status` reads, answer the connections
/// launchd queued on our sockets with the reason, and exit 0 so `KeepAlive` does not respawn.
fn refuse_under_launchd(
    paths: &Paths,
    err: &Error,
    inherited: Option<&listener::Inherited>,
) -> Exit {
    let msg = err.to_string();
    tracing::error!("{msg}");
    eprintln!("{msg}");
    if let Err(e) = launchd_policy::write_refusal(&paths.state_dir, &msg) {
        tracing::warn!(
            "writing the launchd refusal marker in {}: {e}",
            paths.state_dir.display()
        );
    }
    if let Some(inh) = inherited {
        let listeners: Vec<std::net::TcpListener> = inh
            .listeners
            .iter()
            .filter_map(|(_, l)| l.try_clone().ok())
            .collect();
        if let Err(e) = launchd_policy::drain_pending(&listeners, &msg) {
            tracing::warn!("answering queued connections: {e}");
        }
    }
    launchd_policy::refusal_exit_code(true)
}

/// `openclaw gateway run`: runs the gateway in the foreground until SIGTERM/SIGINT.
///
/// `--token`/`--password` on the command line: still accepted (upstream does), but every local
/// user reads them in `/proc/PID/cmdline` and `ps`. One warning per flag naming the safer home;
/// never the value.
pub(crate) fn argv_secret_warnings(args: &RunOptions) -> Vec<String> {
    [
        (args.token.is_some(), "--token"),
        (args.password.is_some(), "--password"),
    ]
    .into_iter()
    .filter(|(given, _)| *given)
    .map(|(_, flag)| argv_secret_warning(flag))
    .collect()
}

/// The warning for a credential `flag` (`--token`/`--password`) seen on a command line.
pub(crate) fn argv_secret_warning(flag: &str) -> String {
    let (env, key) = if flag == "--password" {
        ("OPENCLAW_GATEWAY_PASSWORD", "gateway.auth.password")
    } else {
        ("OPENCLAW_GATEWAY_TOKEN", "gateway.auth.token")
    };
    format!(
        "{flag} on the command line is readable by every local user (/proc/<pid>/cmdline, ps): set {env} in the environment or {key} in the config (0600) instead"
    )
}

/// A restart-required config change ends the current generation: under a service manager the
/// process exits with [`Exit::Restart`] (the unit restarts it); otherwise the loop below
/// restarts in-process: it re-reads the config from disk (never a cached copy), keeps the
/// listening sockets open when the address is unchanged (pending connections wait in the
/// backlog), and serves a new generation.
pub fn run_daemon(paths: &Paths, args: RunOptions, features: feature::Features) -> Result<Exit> {
    // Must happen before any thread exists: it unsets LISTEN_* variables.
    let mut inherited = listener::take_inherited()?;
    // Under systemd, stderr already is the journal: log natively (fields, priorities) and
    // drop the stderr formatter, or every line would appear twice.
    let journal = crate::service::systemd::journal::boxed_layer(args.verbose);
    let telemetry = crate::telemetry::init(
        &crate::telemetry::Options {
            verbose: args.verbose,
            profile: paths.profile.clone(),
            file: true,
            no_stderr: journal.is_some(),
            state_dir: Some(paths.state_dir.clone()),
        },
        journal.into_iter().collect(),
    );
    if let Some(inh) = &inherited {
        for note in &inh.notes {
            tracing::warn!("{note}");
        }
    }
    for w in argv_secret_warnings(&args) {
        tracing::warn!("{w}");
    }
    let notifier = Notifier::from_env();
    // Connections a previous process handed over: taken out of the fd store now, resumed once
    // the first generation runs, closed properly (1012) if startup fails before that.
    let stored = inherited
        .as_mut()
        .map(|i| std::mem::take(&mut i.stored))
        .unwrap_or_default();
    let mut adopted = Some(handover::Adopted::from_stored(stored, &notifier));
    tracing::info!(
        version = crate::VERSION,
        pid = std::process::id(),
        config = %paths.config_path.display(),
        "gateway starting"
    );
    let mut plan = match prepare(paths, &args) {
        Ok(plan) => plan,
        // launchd has no RestartPreventExitStatus: a refusal there exits 0 after leaving a
        // marker and answering queued connections (see service::launchd::policy).
        Err(e) if e.exit() == Exit::Config && launchd_policy::under_launchd(&ProcessEnv) => {
            return Ok(refuse_under_launchd(paths, &e, inherited.as_ref()));
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = launchd_policy::clear_refusal(&paths.state_dir) {
        tracing::warn!(
            "removing the launchd refusal marker in {}: {e}",
            paths.state_dir.display()
        );
    }
    // The state dir holds the identity key (and usually the config): keep it private.
    write::ensure_state_dir(&paths.state_dir)?;
    write::ensure_private_config(&paths.config_path);
    // One gateway per state dir (held for the process's life). With --force the holder may be
    // the listener about to be stopped, so wait for it after freeing the port instead.
    let mut state_lock = None;
    if !args.force {
        match statelock::StateLock::acquire(&paths.state_dir) {
            Ok(l) => state_lock = Some(l),
            Err(e) if launchd_policy::under_launchd(&ProcessEnv) => {
                return Ok(refuse_under_launchd(paths, &e, inherited.as_ref()));
            }
            Err(e) => return Err(e),
        }
    }
    // Activated, fd store or bind (gateway::listener::acquire). These are the master copies:
    // every generation serves on duplicates, so the sockets stay open (and keep queueing
    // connections) across in-process restarts.
    let acquired = listener::acquire(inherited, &plan.bind, plan.port, args.force, &notifier)?;
    let inherited_listeners = acquired.source.is_activated();
    let mut std_listeners: Vec<std::net::TcpListener> = acquired.listeners;
    let _state_lock = match state_lock {
        Some(l) => l,
        None => statelock::StateLock::acquire_within(&paths.state_dir, Duration::from_secs(3))?,
    };
    let supervisor = config_reload::Supervisor::detect_current(&ProcessEnv);
    let mut status0 = config_reload::ReloadStatus::default();
    status0.supervisor = Some(supervisor);
    let reload_status = Arc::new(std::sync::Mutex::new(status0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("openclaw-gw")
        .build()
        .map_err(|e| Error::Msg(format!("starting the async runtime: {e}")))?;
    let mut signals = rt.block_on(async { Signals::new() })?;
    loop {
        let listen: Vec<SocketAddr> = std_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let port = listen.first().map(|a| a.port()).unwrap_or(plan.port);
        let mut dups = Vec::new();
        for l in &std_listeners {
            dups.push(
                l.try_clone()
                    .map_err(|e| Error::Msg(format!("duplicating listener: {e}")))?,
            );
        }
        let generation = plan.clone();
        let adopted_now = adopted.take();
        // Per generation (cheap; the key file is the source of truth).
        let identity = identity::Identity::load_or_create(&paths.state_dir)?;
        let outcome = rt.block_on(async {
            let mut listeners = Vec::new();
            for l in dups {
                l.set_nonblocking(true)
                    .map_err(|e| Error::Msg(format!("configuring listener: {e}")))?;
                listeners.push(
                    tokio::net::TcpListener::from_std(l)
                        .map_err(|e| Error::Msg(format!("registering listener: {e}")))?,
                );
            }
            let mut methods = methods::core_table();
            reload::register_methods(&mut methods);
            features.register_methods(&mut methods);
            let state = GatewayState::new(StateInit {
                paths: paths.clone(),
                port,
                listen,
                bind: generation.bind.clone(),
                run_args: args.clone(),
                settings: Settings::from_env(),
                config: generation.config,
                auth: generation.auth,
                file_log: telemetry.file.clone(),
                identity,
                methods,
                shutdown: shutdown::Shutdown::new(),
                reload: reload::ReloadShared::new(
                    reload_status.clone(),
                    generation.secrets,
                    supervisor,
                    notifier.clone(),
                    inherited_listeners,
                ),
                features: features.clone(),
            });
            if let Some(a) = adopted_now {
                state.handover.set_adopted(a);
            }
            serve(state, listeners, notifier.clone(), signals).await
        })?;
        match outcome {
            Served::Exit(code) => return Ok(code),
            Served::Restart(sigs) => signals = sigs,
        }
        // In-process restart: re-read the config from disk and resolve everything again.
        match prepare_with(paths, &args, Some(&plan.secrets)) {
            Ok(next) => {
                let moved = next.bind != plan.bind || next.port != plan.port;
                if moved && !inherited_listeners {
                    match listener::bind_all(&next.bind, next.port).map_err(Error::from) {
                        Ok(ls) => {
                            std_listeners = ls;
                            plan = next;
                        }
                        Err(e) => {
                            tracing::error!(
                                "in-process restart: cannot listen on the new address ({e}); continuing with the previous config"
                            );
                            note_restart_error(&reload_status, paths, &e);
                        }
                    }
                } else {
                    if moved {
                        tracing::warn!(
                            "listening sockets come from the service manager: the new port/bind apply only after the socket unit changes"
                        );
                    }
                    plan = next;
                }
            }
            Err(e) => {
                tracing::error!(
                    "in-process restart: the config no longer starts ({e}); continuing with the previous config"
                );
                note_restart_error(&reload_status, paths, &e);
            }
        }
        reload_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_restarted();
        tracing::info!("restart mode: in-process restart (same pid, listening sockets kept)");
    }
}

fn note_restart_error(
    status: &std::sync::Mutex<config_reload::ReloadStatus>,
    paths: &Paths,
    e: &Error,
) {
    let err =
        config_reload::ReloadError::from_error(&paths.config_path, e, crate::sys::time::now_ms());
    let mut st = status.lock().unwrap_or_else(|p| p.into_inner());
    st.last_error = Some(err);
}

/// How a generation ended.
pub enum Served {
    /// Exit the process with this code.
    Exit(Exit),
    /// Restart in-process (the signal handlers carry over).
    Restart(Signals),
}

/// SIGTERM/SIGINT streams; installed once per process and carried across generations.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Served::Exit(e) => write!(f, "Exit({e:?})"),
            Served::Restart(_) => f.write_str("Restart"),
        }
    }
}

impl Signals {
    /// Installs the handlers (inside a runtime).
    pub fn new() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let err = |e: std::io::Error| Error::Msg(format!("installing signal handlers: {e}"));
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
        })
    }
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Serves one generation until a signal (graceful stop) or a restart request.
pub async fn serve(
    state: Arc<GatewayState>,
    listeners: Vec<tokio::net::TcpListener>,
    notifier: Notifier,
    mut signals: Signals,
) -> Result<Served> {
    let app = http::router(state.clone());
    // When a handover begins, accepting stops (new connections wait in the backlog for the
    // next process) while accepted HTTP connections are still served.
    let gl = listener::GatewayListener::new(
        listeners,
        admission::Admission::new(state.settings.admission),
    )
    .pause_on(state.handover.token().clone());
    // hyper directly (not axum::serve): header-read deadline and pre-auth read budgets.
    let server_task = tokio::spawn(conn::serve(gl, app, state.shutdown.clone()));
    spawn_background(&state);
    // Connections handed over by the previous process continue right away.
    handover::resume_all(&state).await;
    // SIGHUP and file watching are live before READY (an early `systemctl reload` must not
    // hit SIGHUP's default action, which would terminate us).
    reload::start(&state);

    let probe_addr = state
        .listen
        .first()
        .copied()
        .map(crate::service::systemd::watchdog::probe_addr);
    if let Some(addr) = probe_addr {
        self_probe(addr).await?;
    }
    let urls: Vec<String> = state
        .listen
        .iter()
        .map(|a| listener::ws_url(a.ip(), a.port()))
        .collect();
    let status = format!("listening on {}", urls.join(", "));
    notifier.ready(&format!(
        "{status}; {} clients{}",
        state.connection_count(),
        state.handover.status_suffix()
    ));
    // The wings' background work (e.g. indexing session transcripts off the request path).
    state.features.start(&state);
    // WATCHDOG=1 only while a request through our own accept loop succeeds (see watchdog.rs).
    if let Some(addr) = probe_addr {
        crate::service::systemd::watchdog::spawn_for_listener(notifier.clone(), addr);
    }
    {
        let st = state.clone();
        let base = status.clone();
        crate::service::systemd::watchdog::spawn_status(
            notifier.clone(),
            Duration::from_secs(5),
            move || {
                format!(
                    "{base}; {} clients{}",
                    st.connection_count(),
                    st.handover.status_suffix()
                )
            },
        );
    }
    tracing::info!(
        pid = std::process::id(),
        auth = state.auth().mode.as_str(),
        "{status}"
    );

    enum End {
        Signal(&'static str),
        Restart(String),
    }
    let end = tokio::select! {
        sig = signals.recv() => End::Signal(sig),
        why = state.reload.restart_requested() => End::Restart(why),
    };
    let supervised = state.reload.supervisor != config_reload::Supervisor::None;
    // A planned restart under systemd with an fd store: live connections move to the next
    // process instead of being closed (see handover.rs).
    let store = crate::service::systemd::fdstore::StoreConfig::from_env(&ProcessEnv);
    let trigger = match &end {
        End::Signal("SIGTERM") => Some(handover::Trigger::Signal),
        End::Restart(_) if supervised => Some(handover::Trigger::RestartRequested),
        _ => None,
    };
    let decision = match (&store, trigger) {
        (Some(store), Some(t)) => Some(handover::plan(&state, t, store).await),
        _ => None,
    };
    let handing_over = match &decision {
        Some(handover::Decision::HandOver { max, why }) => Some((*max, *why)),
        Some(handover::Decision::Close(why)) => {
            tracing::info!("connections are closed, not handed over: {why}");
            None
        }
        None => None,
    };
    let restart_in_process = match &end {
        End::Signal(sig) => {
            if handing_over.is_some() {
                tracing::info!(
                    "received {sig}; restarting: handing connections to the next process"
                );
            } else {
                tracing::info!("received {sig}; shutting down (send it again to exit immediately)");
            }
            notifier.stopping();
            false
        }
        End::Restart(why) if supervised => {
            tracing::info!(
                "restart ({why}); restart mode: full process restart (supervisor restart, exit {})",
                Exit::Restart as u8
            );
            notifier.stopping();
            false
        }
        End::Restart(why) => {
            tracing::info!("restart ({why}); restart mode: in-process restart");
            notifier.reloading();
            true
        }
    };
    reload::stop(&state);
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // The wings stop first (agent runs are aborted), so their error events and final
    // responses reach the clients waiting on them (before the sockets close, or before they
    // are handed over).
    state.features.shutdown(&state).await;
    let mut drain_cap = None;
    if let Some((max, why)) = handing_over {
        notifier.extend_timeout(handover::inflight_budget() + Duration::from_secs(15));
        tracing::info!("handover ({why})");
        let reserved = state.listen.len();
        handover::hand_over(&state, &notifier, max, reserved).await;
        // Everything left (handler tasks past their budget, sockets that could not be
        // carried) gets a short drain: the clients already wait for the next process.
        drain_cap = Some(Duration::from_millis(500));
    }
    let reason = if matches!(end, End::Restart(_)) || handing_over.is_some() {
        "gateway restarting"
    } else {
        "gateway stopping"
    };
    // Handed-over sockets are no longer registered: only the others see this.
    state.broadcast("shutdown", &json!({"reason": reason}), Broadcast::default());
    state.shutdown.trigger();
    let deadline = drain_cap.map_or(state.settings.drain_timeout, |c| {
        c.min(state.settings.drain_timeout)
    });
    notifier.extend_timeout(deadline + Duration::from_secs(5));
    let t0 = std::time::Instant::now();
    let drain = async {
        let _ = tokio::time::timeout(deadline, server_task).await;
        let left = deadline.saturating_sub(t0.elapsed());
        state.shutdown.drain(left).await
    };
    // A signal during the drain: a stop wins over a restart; a second stop exits at once.
    let mut stop_requested = !restart_in_process && matches!(end, End::Signal(_));
    tokio::pin!(drain);
    let clean = loop {
        tokio::select! {
            clean = &mut drain => break clean,
            again = signals.recv() => {
                if stop_requested {
                    eprintln!("openclaw: received {again} again; exiting immediately");
                    std::process::exit(Exit::Failure as i32);
                }
                tracing::info!("received {again} during restart; stopping instead");
                notifier.stopping();
                stop_requested = true;
            }
        }
    };
    if clean {
        tracing::info!(
            "shutdown completed cleanly in {}ms",
            t0.elapsed().as_millis()
        );
    } else {
        tracing::warn!(
            "shutdown drain deadline ({}ms) passed with work still running; exiting anyway",
            deadline.as_millis()
        );
    }
    Ok(match end {
        _ if stop_requested => Served::Exit(Exit::Ok),
        End::Restart(_) if restart_in_process => Served::Restart(signals),
        End::Restart(_) => Served::Exit(Exit::Restart),
        End::Signal(_) => Served::Exit(Exit::Ok),
    })
}

/// Proves the server answers before READY: `GET /healthz` through our own accept loop must
/// return 200 within 5 s (the same check the watchdog repeats afterwards).
async fn self_probe(addr: SocketAddr) -> Result<()> {
    use crate::service::systemd::watchdog::healthz;
    match tokio::time::timeout(Duration::from_secs(5), healthz(addr)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Msg(format!(
            "gateway self-check failed: GET http://{addr}/healthz: {e}"
        ))),
        Err(_) => Err(Error::Msg(format!(
            "gateway self-check failed: GET http://{addr}/healthz timed out after 5s"
        ))),
    }
}

/// Tick, periodic health, the event-loop probe, and memory release after bursts; all stop on
/// shutdown.
fn spawn_background(state: &Arc<GatewayState>) {
    let tracker = state.shutdown.tracker().clone();
    let s = state.clone();
    tracker.spawn(async move {
        // Give the allocator's freed memory back so RSS returns to baseline: after a burst of
        // connections ends (e.g. a connect storm closed at the pre-auth timeout), and after a
        // large buffer was freed (a big request or answer, a slow consumer's backlog; noted by
        // `sys::unix::note_freed`). At most once per tick, on a blocking thread.
        let token = s.shutdown.token().clone();
        let mut iv = tokio::time::interval(Duration::from_secs(1));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut high = 0usize;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = iv.tick() => {}
            }
            let now = s.pending.load(std::sync::atomic::Ordering::Relaxed) + s.connection_count();
            high = high.max(now);
            let burst_ended = high >= now + 64;
            if crate::sys::unix::take_large_free() || burst_ended {
                high = now;
                let _ = tokio::task::spawn_blocking(crate::sys::unix::release_free_memory).await;
            }
        }
    });
    let s = state.clone();
    tracker.spawn(async move {
        let token = s.shutdown.token().clone();
        s.event_loop.run(token.cancelled()).await;
    });
    let s = state.clone();
    tracker.spawn(async move {
        let token = s.shutdown.token().clone();
        let period = Duration::from_millis(s.settings.tick_interval_ms);
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = iv.tick() => {}
            }
            // The idle policy rides on the tick: no timer per socket, and a ping asked for
            // here goes out in the same wake-up as the tick queued next.
            if let Some(idle) = s.settings.idle_timeout {
                s.sweep_idle(period, idle);
            }
            s.broadcast(
                "tick",
                &json!({"ts": crate::sys::time::now_ms()}),
                Broadcast {
                    drop_if_slow: true,
                    ..Broadcast::default()
                },
            );
        }
    });
    let s = state.clone();
    tracker.spawn(async move {
        let token = s.shutdown.token().clone();
        let period = s.settings.health_interval;
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = iv.tick() => {}
            }
            s.bump_health();
            let h = health::health_snapshot(&s);
            s.broadcast(
                "health",
                &h,
                Broadcast {
                    state_version: true,
                    drop_if_slow: true,
                    ..Broadcast::default()
                },
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ra(
        args: &RunOptions,
        c: &Config,
        b: &Bind,
    ) -> std::result::Result<ResolvedAuth, AuthProblem> {
        let snap = secrets::activate_blocking(&c.doc, &ProcessEnv, None).snapshot;
        resolve_auth(args, c, b, &snap)
    }

    fn cfg(text: &str) -> Config {
        Config::parse(Path::new("/x/openclaw.json"), text.into()).unwrap()
    }

    #[test]
    fn auth_resolution_precedence_and_refusals() {
        if std::env::var_os("OPENCLAW_GATEWAY_TOKEN").is_some()
            || std::env::var_os("OPENCLAW_GATEWAY_PASSWORD").is_some()
        {
            eprintln!("SKIP: OPENCLAW_GATEWAY_TOKEN/PASSWORD set in the test environment");
            return;
        }
        let lo = Bind::Loopback;
        let c = cfg("{gateway:{auth:{token:'cfg'}}}");
        let a = ra(&RunOptions::default(), &c, &lo).unwrap();
        assert_eq!((a.mode, a.token.as_deref()), (Mode::Token, Some("cfg")));
        let flags = RunOptions {
            token: Some("flag".into()),
            ..RunOptions::default()
        };
        assert_eq!(ra(&flags, &c, &lo).unwrap().token.as_deref(), Some("flag"));
        let pw = cfg("{gateway:{auth:{password:'pw'}}}");
        assert_eq!(
            ra(&RunOptions::default(), &pw, &lo).unwrap().mode,
            Mode::Password
        );
        let both = cfg("{gateway:{auth:{password:'pw',token:'t'}}}");
        assert!(matches!(
            ra(&RunOptions::default(), &both, &lo),
            Err(AuthProblem::Fatal(Refusal::AmbiguousAuth))
        ));
        let empty = cfg("{}");
        assert!(matches!(
            ra(&RunOptions::default(), &empty, &lo),
            Err(AuthProblem::MissingToken)
        ));
        match ra(&RunOptions::default(), &empty, &Bind::Lan) {
            Err(AuthProblem::Fatal(Refusal::UnauthenticatedBind { host })) => {
                assert_eq!(host, "lan")
            }
            other => panic!("{other:?}"),
        }
        let none = RunOptions {
            auth: Some(AuthMode::None),
            ..RunOptions::default()
        };
        assert_eq!(ra(&none, &empty, &lo).unwrap().mode, Mode::None);
        assert!(ra(&none, &empty, &Bind::Lan).is_err());
        // An unresolvable auth SecretRef fails closed (never "no token" → generated/none) ...
        let unset = cfg("{gateway:{auth:{token:'${OPENCLAW_TEST_SURELY_UNSET}'}}}");
        match ra(&RunOptions::default(), &unset, &lo) {
            Err(AuthProblem::Fatal(Refusal::SecretUnresolved { detail })) => {
                assert!(detail.contains("OPENCLAW_TEST_SURELY_UNSET"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // ... unless the effective mode does not use it.
        let pw_mode = cfg(
            "{gateway:{auth:{mode:'password',password:'p',token:'${OPENCLAW_TEST_SURELY_UNSET}'}}}",
        );
        assert_eq!(
            ra(&RunOptions::default(), &pw_mode, &lo).unwrap().mode,
            Mode::Password
        );
    }

    #[test]
    fn bind_precedence() {
        let c = cfg("{gateway:{bind:'lan'}}");
        assert_eq!(bind_from(&RunOptions::default(), &c).unwrap(), Bind::Lan);
        let flag = RunOptions {
            bind: Some(BindMode::Loopback),
            ..RunOptions::default()
        };
        assert_eq!(bind_from(&flag, &c).unwrap(), Bind::Loopback);
        assert_eq!(
            bind_from(&RunOptions::default(), &cfg("{}")).unwrap(),
            Bind::Loopback
        );
        assert_eq!(
            bind_from(&RunOptions::default(), &cfg("{gateway:{bind:'custom'}}")),
            Err(Refusal::CustomBindNeedsHost)
        );
        assert!(matches!(
            bind_from(&RunOptions::default(), &cfg("{gateway:{bind:'tailnet'}}")),
            Err(Refusal::TailnetUnsupported { .. })
        ));
        assert!(matches!(
            bind_from(&RunOptions::default(), &cfg("{gateway:{bind:'wan'}}")),
            Err(Refusal::InvalidBind { value, .. }) if value == "wan"
        ));
    }
}
