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
pub mod auth;
pub mod client;
pub mod health;
pub mod http;
pub mod identity;
pub mod listener;
pub mod methods;
pub mod protocol;
pub mod setup;
pub mod shutdown;
pub mod state;
pub mod ws;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{AuthMode, BindMode, RunArgs};
use crate::config::paths::{Paths, ProcessEnv};
use crate::config::{Config, resolve_secret_value, write};
use crate::error::{Error, Exit, Result};
use crate::service::systemd::notify::Notifier;
use auth::{Mode, ResolvedAuth};
use listener::Bind;
use state::{Broadcast, GatewayState, Settings, StateInit};

/// What startup resolved (everything except sockets).
#[derive(Debug)]
pub struct Plan {
    /// Config as loaded (after `--init` / token generation).
    pub config: Config,
    /// Port.
    pub port: u16,
    /// Bind.
    pub bind: Bind,
    /// Auth snapshot.
    pub auth: ResolvedAuth,
}

fn bind_from(args: &RunArgs, cfg: &Config) -> Result<Bind> {
    let custom_host = || {
        args.host
            .clone()
            .or_else(|| cfg.gateway.custom_bind_host.clone())
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "bind mode custom needs a host: pass --host ADDR or set gateway.customBindHost"
                        .into(),
                )
            })
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
        Some("tailnet") => Err(Error::Config(format!(
            "gateway.bind=\"tailnet\" is not supported by this build; set gateway.bind to loopback, lan or custom in {}",
            cfg.path.display()
        ))),
        Some(other) => Err(Error::Config(format!(
            "invalid gateway.bind {other:?} in {}: use loopback, lan or custom",
            cfg.path.display()
        ))),
    }
}

fn env_secret(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The startup guards and resolution of protocol.md §6 (pure apart from config writes).
pub fn prepare(paths: &Paths, args: &RunArgs) -> Result<Plan> {
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
            return Err(Error::Config(format!(
                "Missing config. Run `openclaw setup` or set gateway.mode=local (or pass --allow-unconfigured).\nConfig path: {}\nFirst run? `openclaw gateway run --init` creates it with a generated token.",
                paths.config_path.display()
            )));
        }
        match config.gateway.mode.as_deref() {
            Some("local") => {}
            None => {
                return Err(Error::Config(format!(
                    "Gateway start blocked: existing config is missing gateway.mode. Treat this as suspicious or clobbered config. Run `openclaw setup` or set gateway.mode=local (or pass --allow-unconfigured).\nConfig file: {}",
                    paths.config_path.display()
                )));
            }
            Some(m) => {
                return Err(Error::Config(format!(
                    "Gateway start blocked: set gateway.mode=local (current: {m}) or pass --allow-unconfigured.\nConfig file: {}",
                    paths.config_path.display()
                )));
            }
        }
    }
    let port = paths.resolve_port(args.port, &ProcessEnv, config.gateway.port)?;
    let bind = bind_from(args, &config)?;

    let auth = match resolve_auth(args, &config, &bind) {
        Ok(a) => a,
        Err(AuthProblem::MissingToken) if bind.is_loopback() => {
            // Auth on by default: generate a token on loopback and persist it atomically.
            let t = write::generate_token();
            let mut doc = config.doc.clone();
            write::set_path(&mut doc, "gateway.auth.token", Value::String(t)).map_err(|e| {
                Error::Config(format!(
                    "cannot store a generated token in {}: {e}; fix the file",
                    config.path.display()
                ))
            })?;
            write::write_config(&config.path, &doc)?;
            tracing::info!(
                "no gateway token was configured: generated one and saved it to {} (gateway.auth.token); read it with `openclaw gateway auth-token`",
                config.path.display()
            );
            config = Config::load(&paths.config_path)?;
            resolve_auth(args, &config, &bind).map_err(AuthProblem::into_error)?
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
    })
}

/// Why auth could not be resolved.
#[derive(Debug)]
pub enum AuthProblem {
    /// Token mode without a token (startup generates one on loopback; reload refuses).
    MissingToken,
    /// Anything else, phrased for the user (exit 78).
    Fatal(Error),
}

impl AuthProblem {
    /// The user-facing error (a missing token off loopback is the "without auth" refusal).
    pub fn into_error(self) -> Error {
        match self {
            AuthProblem::MissingToken => Error::Config(
                "Refusing to start: gateway.auth.mode is token but no token is set; set gateway.auth.token or OPENCLAW_GATEWAY_TOKEN (or pass --token)".into(),
            ),
            AuthProblem::Fatal(e) => e,
        }
    }
}

fn refuse_unauthenticated(bind: &Bind) -> Error {
    Error::Config(format!(
        "Refusing to bind gateway to {} without auth.\nSet gateway.auth.token (or OPENCLAW_GATEWAY_TOKEN) or gateway.auth.password (or OPENCLAW_GATEWAY_PASSWORD), or use --bind loopback.",
        match bind {
            Bind::Custom(h) => h.as_str(),
            other => other.name(),
        }
    ))
}

/// Resolves the auth snapshot: token `--token` → `OPENCLAW_GATEWAY_TOKEN` →
/// `gateway.auth.token` (password likewise); mode `--auth` → `gateway.auth.mode` → password
/// when only a password exists → token. Pure apart from reading env (and env SecretRefs), so
/// config reload can call it again with the process's original flags
/// ([`GatewayState::run_args`]) and swap the result in with [`GatewayState::set_auth`].
pub fn resolve_auth(
    args: &RunArgs,
    config: &Config,
    bind: &Bind,
) -> std::result::Result<ResolvedAuth, AuthProblem> {
    let fatal = AuthProblem::Fatal;
    let token = match args
        .token
        .clone()
        .or_else(|| env_secret("OPENCLAW_GATEWAY_TOKEN"))
    {
        Some(t) => Some(t),
        None => resolve_secret_value(config.get("gateway.auth.token"), "gateway.auth.token")
            .map_err(fatal)?,
    };
    let password = match args
        .password
        .clone()
        .or_else(|| env_secret("OPENCLAW_GATEWAY_PASSWORD"))
    {
        Some(p) => Some(p),
        None => resolve_secret_value(config.get("gateway.auth.password"), "gateway.auth.password")
            .map_err(fatal)?,
    };
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
                return Err(fatal(Error::Config(format!(
                    "gateway.auth.mode {other:?} is not supported by this build (use token, password or none) in {}",
                    config.path.display()
                ))));
            }
        },
    };
    let mode = match explicit_mode {
        Some(m) => m,
        None if token.is_some() && password.is_some() => {
            return Err(fatal(Error::Config(
                "both a gateway token and a gateway password are set but gateway.auth.mode is not; set gateway.auth.mode to \"token\" or \"password\" (or pass --auth)".into(),
            )));
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
            return Err(fatal(Error::Config(
                "gateway.auth.mode is password but no password is set; set gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD (or pass --password)".into(),
            )));
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

/// `openclaw gateway run`: runs the gateway in the foreground until SIGTERM/SIGINT.
pub fn run_daemon(paths: &Paths, args: RunArgs) -> Result<Exit> {
    // Must happen before any thread exists: it unsets LISTEN_* variables.
    let inherited = crate::service::systemd::activation::take_inherited()?;
    let telemetry = crate::telemetry::init(
        &crate::telemetry::Options {
            verbose: args.verbose,
            profile: paths.profile.clone(),
            file: true,
        },
        Vec::new(),
    );
    let notifier = Notifier::from_env();
    tracing::info!(
        version = crate::VERSION,
        pid = std::process::id(),
        config = %paths.config_path.display(),
        "gateway starting"
    );
    let plan = prepare(paths, &args)?;
    let identity = identity::Identity::load_or_create(&paths.state_dir)?;
    let std_listeners: Vec<std::net::TcpListener> = match inherited {
        Some(inh) if !inh.listeners.is_empty() => {
            tracing::info!(
                source = inh.source,
                count = inh.listeners.len(),
                "using inherited listening sockets"
            );
            inh.listeners.into_iter().map(|(_, l)| l).collect()
        }
        _ => {
            if args.force {
                let pids = listener::force_free_port(plan.port)?;
                if !pids.is_empty() {
                    tracing::info!(?pids, "--force: port {} freed", plan.port);
                }
            }
            listener::bind_all(&plan.bind, plan.port)?
        }
    };
    let listen: Vec<SocketAddr> = std_listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let port = listen.first().map(|a| a.port()).unwrap_or(plan.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("openclaw-gw")
        .build()
        .map_err(|e| Error::Msg(format!("starting the async runtime: {e}")))?;
    let args = args.clone();
    rt.block_on(async move {
        let mut listeners = Vec::new();
        for l in std_listeners {
            l.set_nonblocking(true)
                .map_err(|e| Error::Msg(format!("configuring listener: {e}")))?;
            listeners.push(
                tokio::net::TcpListener::from_std(l)
                    .map_err(|e| Error::Msg(format!("registering listener: {e}")))?,
            );
        }
        let state = GatewayState::new(StateInit {
            paths: paths.clone(),
            port,
            listen,
            bind: plan.bind.clone(),
            run_args: args.clone(),
            settings: Settings::from_env(),
            config: plan.config,
            auth: plan.auth,
            file_log: telemetry.file.clone(),
            identity,
            methods: {
                let mut t = methods::core_table();
                crate::agent::methods::register(&mut t);
                t
            },
            shutdown: shutdown::Shutdown::new(),
        });
        serve(state, listeners, notifier).await
    })
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
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

/// Serves until a signal, then shuts down gracefully.
pub async fn serve(
    state: Arc<GatewayState>,
    listeners: Vec<tokio::net::TcpListener>,
    notifier: Notifier,
) -> Result<Exit> {
    let mut signals = Signals::new()?;
    let app = http::router(state.clone());
    let gl = listener::GatewayListener::new(listeners, state.settings.max_connections);
    let sd = state.shutdown.clone();
    let server = axum::serve(
        gl,
        app.into_make_service_with_connect_info::<ws::PeerInfo>(),
    )
    .with_graceful_shutdown(async move { sd.signalled().await });
    let server_task = tokio::spawn(async move { server.await });
    spawn_background(&state);

    let probe_addr = state.listen.first().copied().map(probe_target);
    if let Some(addr) = probe_addr {
        self_probe(addr).await?;
    }
    let urls: Vec<String> = state
        .listen
        .iter()
        .map(|a| listener::ws_url(a.ip(), a.port()))
        .collect();
    let status = format!("listening on {}", urls.join(", "));
    notifier.ready(&status);
    // Index the session transcripts off the request path (torn last lines are reported here).
    let agents = state.agents.clone();
    tokio::task::spawn_blocking(move || agents.store.warm());
    tracing::info!(
        pid = std::process::id(),
        auth = state.auth().mode.as_str(),
        "{status}"
    );

    let sig = signals.recv().await;
    tracing::info!("received {sig}; shutting down (send it again to exit immediately)");
    notifier.stopping();
    tokio::spawn(async move {
        let again = signals.recv().await;
        eprintln!("openclaw: received {again} again; exiting immediately");
        std::process::exit(Exit::Failure as i32);
    });
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // Abort agent runs first, so their error events and final responses reach the clients
    // waiting on them before the sockets close.
    state.agents.shutdown(Duration::from_secs(3)).await;
    state.broadcast(
        "shutdown",
        &json!({"reason": "gateway stopping"}),
        Broadcast::default(),
    );
    state.shutdown.trigger();
    let deadline = state.settings.drain_timeout;
    notifier.extend_timeout(deadline + Duration::from_secs(5));
    let t0 = std::time::Instant::now();
    let _ = tokio::time::timeout(deadline, server_task).await;
    let left = deadline.saturating_sub(t0.elapsed());
    if state.shutdown.drain(left).await {
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
    Ok(Exit::Ok)
}

fn probe_target(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(v) if v.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), a.port())
        }
        IpAddr::V6(v) if v.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), a.port())
        }
        _ => a,
    }
}

/// Proves the server answers before READY: `GET /healthz` must return 200.
async fn self_probe(addr: SocketAddr) -> Result<()> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<bool, std::io::Error>(buf.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(Error::Msg(format!(
            "gateway self-check failed: GET http://{addr}/healthz did not return 200"
        ))),
        Ok(Err(e)) => Err(Error::Msg(format!(
            "gateway self-check failed: GET http://{addr}/healthz: {e}"
        ))),
        Err(_) => Err(Error::Msg(format!(
            "gateway self-check failed: GET http://{addr}/healthz timed out after 5s"
        ))),
    }
}

/// Tick, periodic health, and the event-loop probe; all stop on shutdown.
fn spawn_background(state: &Arc<GatewayState>) {
    let tracker = state.shutdown.tracker().clone();
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
            s.broadcast(
                "tick",
                &json!({"ts": protocol::now_ms()}),
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
        let a = resolve_auth(&RunArgs::default(), &c, &lo).unwrap();
        assert_eq!((a.mode, a.token.as_deref()), (Mode::Token, Some("cfg")));
        let flags = RunArgs {
            token: Some("flag".into()),
            ..RunArgs::default()
        };
        assert_eq!(
            resolve_auth(&flags, &c, &lo).unwrap().token.as_deref(),
            Some("flag")
        );
        let pw = cfg("{gateway:{auth:{password:'pw'}}}");
        assert_eq!(
            resolve_auth(&RunArgs::default(), &pw, &lo).unwrap().mode,
            Mode::Password
        );
        let both = cfg("{gateway:{auth:{password:'pw',token:'t'}}}");
        assert!(matches!(
            resolve_auth(&RunArgs::default(), &both, &lo),
            Err(AuthProblem::Fatal(_))
        ));
        let empty = cfg("{}");
        assert!(matches!(
            resolve_auth(&RunArgs::default(), &empty, &lo),
            Err(AuthProblem::MissingToken)
        ));
        match resolve_auth(&RunArgs::default(), &empty, &Bind::Lan) {
            Err(AuthProblem::Fatal(e)) => assert!(
                e.to_string()
                    .starts_with("Refusing to bind gateway to lan without auth.")
            ),
            other => panic!("{other:?}"),
        }
        let none = RunArgs {
            auth: Some(AuthMode::None),
            ..RunArgs::default()
        };
        assert_eq!(resolve_auth(&none, &empty, &lo).unwrap().mode, Mode::None);
        assert!(resolve_auth(&none, &empty, &Bind::Lan).is_err());
    }

    #[test]
    fn bind_precedence() {
        let c = cfg("{gateway:{bind:'lan'}}");
        assert_eq!(bind_from(&RunArgs::default(), &c).unwrap(), Bind::Lan);
        let flag = RunArgs {
            bind: Some(BindMode::Loopback),
            ..RunArgs::default()
        };
        assert_eq!(bind_from(&flag, &c).unwrap(), Bind::Loopback);
        assert_eq!(
            bind_from(&RunArgs::default(), &cfg("{}")).unwrap(),
            Bind::Loopback
        );
        assert!(bind_from(&RunArgs::default(), &cfg("{gateway:{bind:'custom'}}")).is_err());
        assert!(bind_from(&RunArgs::default(), &cfg("{gateway:{bind:'tailnet'}}")).is_err());
    }
}
