//! Shared gateway state: the swappable config and auth snapshot, the connection registry used
//! for broadcasts (per-connection `seq`, scope-gated delivery, slow-consumer handling),
//! presence with `stateVersion`, and runtime settings.
//!
//! Config and auth are swapped whole (`watch` channel / `RwLock<Arc<_>>`); callers read a
//! snapshot per request and never cache it (reload engineers: call [`GatewayState::replace_config`]
//! and [`GatewayState::set_auth`]).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::auth::{RateLimiter, ResolvedAuth};
use super::feature::{FeatureInit, Features};
use super::identity::Identity;
use super::methods::MethodTable;
use super::outbound::{Outbound, Sent};
use super::protocol::{self, scope_satisfied};
use super::shutdown::Shutdown;
use crate::config::Config;
use crate::config::paths::Paths;
use crate::telemetry::FileLog;

/// Runtime knobs; defaults are upstream's, env vars override them for tests and operators.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `tick` interval (`OPENCLAW_TICK_INTERVAL_MS`, default 30000).
    pub tick_interval_ms: u64,
    /// An authenticated socket silent this long (no frame at all, pongs included) is closed
    /// 1001 `idle timeout` (`OPENCLAW_IDLE_TIMEOUT_MS`; `None`: off, `=0`). See
    /// [`idle_timeout`].
    pub idle_timeout: Option<Duration>,
    /// Pre-auth timeout (`OPENCLAW_HANDSHAKE_TIMEOUT_MS`, default 15000).
    pub handshake_timeout_ms: u64,
    /// Per-socket outbound cap (`OPENCLAW_MAX_BUFFERED_BYTES`, default 50 MiB).
    pub max_buffered_bytes: usize,
    /// Connection budgets (`OPENCLAW_MAX_CONNECTIONS` authenticated, default 1024;
    /// `OPENCLAW_MAX_UNAUTH_CONNECTIONS`, default 512; `OPENCLAW_MAX_UNAUTH_PER_PEER`,
    /// default 128; see admission.rs).
    pub admission: super::admission::Limits,
    /// In-flight requests per socket before `UNAVAILABLE` busy (default 256).
    pub max_inflight_per_conn: usize,
    /// Drain deadline on shutdown (`OPENCLAW_SHUTDOWN_TIMEOUT_MS`, default 10000).
    pub drain_timeout: Duration,
    /// Health broadcast interval (60 s as upstream).
    pub health_interval: Duration,
}

fn env_num<T: std::str::FromStr>(key: &str) -> Option<T> {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok())
}

impl Settings {
    /// Defaults plus env overrides.
    pub fn from_env() -> Settings {
        Settings {
            tick_interval_ms: env_num("OPENCLAW_TICK_INTERVAL_MS")
                .filter(|v| *v > 0)
                .unwrap_or(protocol::TICK_INTERVAL_MS),
            idle_timeout: {
                let tick = env_num("OPENCLAW_TICK_INTERVAL_MS")
                    .filter(|v| *v > 0)
                    .unwrap_or(protocol::TICK_INTERVAL_MS);
                idle_timeout(tick, env_num("OPENCLAW_IDLE_TIMEOUT_MS"))
            },
            handshake_timeout_ms: env_num("OPENCLAW_HANDSHAKE_TIMEOUT_MS")
                .filter(|v| *v > 0)
                .unwrap_or(protocol::HANDSHAKE_TIMEOUT_MS),
            max_buffered_bytes: env_num("OPENCLAW_MAX_BUFFERED_BYTES")
                .filter(|v| *v > 0)
                .unwrap_or(protocol::MAX_BUFFERED_BYTES),
            admission: {
                let d = super::admission::Limits::default();
                let knob = |key: &str, default: usize| {
                    env_num(key).filter(|v: &usize| *v > 0).unwrap_or(default)
                };
                super::admission::Limits {
                    unauth: knob("OPENCLAW_MAX_UNAUTH_CONNECTIONS", d.unauth),
                    per_peer: knob("OPENCLAW_MAX_UNAUTH_PER_PEER", d.per_peer),
                    auth: knob("OPENCLAW_MAX_CONNECTIONS", d.auth),
                    reserve: d.reserve,
                }
            },
            max_inflight_per_conn: 256,
            drain_timeout: env_num("OPENCLAW_SHUTDOWN_TIMEOUT_MS")
                .map(Duration::from_millis)
                .unwrap_or(super::shutdown::DRAIN_TIMEOUT),
            health_interval: Duration::from_secs(60),
        }
    }
}

/// Upstream's pong window (server pings authenticated sockets; a peer gets 25 s to answer).
const PONG_WINDOW: Duration = Duration::from_secs(25);

/// The idle policy for authenticated sockets. Silence is checked on each `tick` (no timer per
/// socket): a socket silent for half a tick interval is sent a WebSocket Ping, which every
/// client stack answers on its own, so a client that keeps reading its socket is never idle
/// however quiet its application is. A socket silent for the timeout is closed.
///
/// Default: 3 tick intervals, but never under upstream's 25 s pong window (a short test tick
/// does not shorten it). An explicit value is raised to 2 tick intervals, the shortest a check
/// on ticks can honour without closing a client that answered the last ping; `0` turns it off.
pub(crate) fn idle_timeout(tick_ms: u64, env_ms: Option<u64>) -> Option<Duration> {
    let tick = Duration::from_millis(tick_ms);
    match env_ms {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms).max(tick * 2)),
        None => Some((tick * 3).max(PONG_WINDOW)),
    }
}

/// Who is on the other end of an authenticated socket (serialized as part of a handover's
/// [`super::handover::ConnState`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnInfo {
    /// `server.connId`.
    pub id: String,
    /// `client.id`.
    pub client_id: String,
    /// `client.mode`.
    pub client_mode: String,
    /// `client.version`.
    pub client_version: String,
    /// `client.platform`.
    pub platform: String,
    /// `client.deviceFamily`.
    pub device_family: Option<String>,
    /// `client.displayName`.
    pub display_name: Option<String>,
    /// `client.instanceId`.
    pub instance_id: Option<String>,
    /// `operator` or `node`.
    pub role: String,
    /// Effective scopes.
    pub scopes: Vec<String>,
    /// Client capabilities (`caps`).
    pub caps: Vec<String>,
    /// Peer address.
    pub remote: SocketAddr,
    /// When hello-ok was sent.
    pub connected_at_ms: u64,
    /// How the socket authenticated (`hello-ok.auth.method`).
    #[serde(deserialize_with = "known_auth_method")]
    pub auth_method: StaticStr,
    /// The verified device identity (`connect.params.device.id`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// `&'static str` under a name serde's derive does not read as a borrow from the input.
pub type StaticStr = &'static str;

/// What a serialized `authMethod` this version does not know reads as.
pub const UNKNOWN_AUTH_METHOD: &str = "unknown";

fn known_auth_method<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let m = <String as serde::Deserialize>::deserialize(d)?;
    Ok(match m.as_str() {
        "none" => "none",
        "token" => "token",
        "password" => "password",
        "device-token" => "device-token",
        "bootstrap-token" => "bootstrap-token",
        "trusted-proxy" => "trusted-proxy",
        "tailscale" => "tailscale",
        _ => UNKNOWN_AUTH_METHOD,
    })
}

impl ConnInfo {
    /// cli/backend/probe clients are ephemeral: no presence entries (upstream).
    pub fn is_ephemeral(&self) -> bool {
        matches!(self.client_mode.as_str(), "cli" | "backend" | "probe")
    }
    /// True when the scopes satisfy `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        scope_satisfied(&self.scopes, scope)
    }
}

struct ConnEntry {
    info: Arc<ConnInfo>,
    outbound: Outbound,
    seq: u64,
}

struct PresenceRec {
    conn_id: String,
    entry: Value,
    gone_at: Option<Instant>,
}

/// How long a disconnected client stays listed in presence (reason `disconnect`).
const PRESENCE_TTL: Duration = Duration::from_secs(300);

/// Options for [`GatewayState::broadcast`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Broadcast<'a> {
    /// Scope a socket needs to receive it (`None` = everyone authenticated).
    pub scope: Option<&'a str>,
    /// Attach `stateVersion`.
    pub state_version: bool,
    /// Drop instead of closing a slow consumer.
    pub drop_if_slow: bool,
    /// Skip this connection.
    pub except: Option<&'a str>,
}

/// The state shared by every task of one gateway process.
pub struct GatewayState {
    /// `server.bootId`: one per process.
    pub boot_id: String,
    /// Process start (uptime).
    pub started: Instant,
    /// Resolved paths (profile, state dir, config path).
    pub paths: Paths,
    /// The port we listen on.
    pub port: u16,
    /// The addresses we listen on.
    pub listen: Vec<SocketAddr>,
    /// `loopback`, `lan` or `custom`.
    pub bind_mode: String,
    /// The resolved bind (for re-resolving auth on reload).
    pub bind: super::listener::Bind,
    /// The `gateway run` flags this process started with (CLI overrides beat config on
    /// reload too; see [`super::resolve_auth`]).
    pub run_args: crate::gateway::options::RunOptions,
    /// Runtime knobs.
    pub settings: Settings,
    /// Shutdown fan-out and task tracking.
    pub shutdown: Shutdown,
    /// The method table.
    pub methods: MethodTable,
    /// The JSONL file log (served by `logs.tail`).
    pub file_log: Option<Arc<FileLog>>,
    /// The gateway's own device identity.
    pub identity: Identity,
    /// Failed-auth limiter.
    pub rate_limiter: RateLimiter,
    /// Last heartbeat event (`last-heartbeat`).
    pub last_heartbeat: Mutex<Option<Value>>,
    /// Event-loop (runtime scheduling) monitor.
    pub event_loop: super::health::EventLoopMonitor,
    /// The `health` snapshot cache (RPC, hello-ok, post-connect event).
    pub health_cache: super::health::HealthCache,
    /// Set when shutdown begins (`/readyz` 503, admission closed).
    pub draining: AtomicBool,
    /// Config reload and SecretRef state (see [`super::reload`]).
    pub reload: super::reload::ReloadShared,
    config: watch::Sender<Arc<Config>>,
    auth: RwLock<Arc<ResolvedAuth>>,
    conns: Mutex<HashMap<String, ConnEntry>>,
    presence: Mutex<Vec<PresenceRec>>,
    presence_version: AtomicU64,
    health_version: AtomicU64,
    /// Pre-auth sockets (closed 1012 on shutdown too).
    pub pending: AtomicUsize,
    /// The feature wings this gateway is built from (see [`super::feature`]).
    pub features: Features,
    /// The wings' per-generation state, by type (see [`GatewayState::extension`]).
    pub extensions: axum::http::Extensions,
    /// Zero-downtime restarts: quiesce, fd store, adoption (see [`super::handover`]).
    pub handover: super::handover::Coordinator,
    /// Paired devices, pending pairing requests and device tokens (see [`super::device`]).
    pub(crate) devices: super::device::store::Store,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("boot_id", &self.boot_id)
            .field("port", &self.port)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// Everything [`GatewayState::new`] needs.
#[derive(Debug)]
pub struct StateInit {
    /// Paths.
    pub paths: Paths,
    /// Port.
    pub port: u16,
    /// Bound addresses.
    pub listen: Vec<SocketAddr>,
    /// Bind.
    pub bind: super::listener::Bind,
    /// The run flags.
    pub run_args: crate::gateway::options::RunOptions,
    /// Settings.
    pub settings: Settings,
    /// Config.
    pub config: Config,
    /// Auth snapshot.
    pub auth: ResolvedAuth,
    /// File log.
    pub file_log: Option<Arc<FileLog>>,
    /// Identity.
    pub identity: Identity,
    /// Method table.
    pub methods: MethodTable,
    /// Shutdown handle.
    pub shutdown: Shutdown,
    /// Reload state (secrets snapshot, shared `configReload` status, notifier).
    pub reload: super::reload::ReloadShared,
    /// The wings (their state is created here; their methods are already in `methods`).
    pub features: Features,
}

impl StateInit {
    /// The kernel's test defaults: loopback on port 1, token `t`, default config and
    /// settings, the core method table, no wings, the identity in `paths.state_dir`.
    /// The crate's test support (`testing::StateFixture`) composes the real wings on top of
    /// this; kernel unit tests use it as is.
    ///
    /// # Panics
    /// When the identity key cannot be created in the state dir.
    #[doc(hidden)]
    pub fn for_tests(paths: Paths) -> StateInit {
        let identity =
            Identity::load_or_create(&paths.state_dir).expect("test identity in the state dir");
        StateInit {
            paths,
            port: 1,
            listen: Vec::new(),
            bind: super::listener::Bind::Loopback,
            run_args: Default::default(),
            settings: Settings::from_env(),
            config: Config::default(),
            auth: ResolvedAuth {
                mode: super::auth::Mode::Token,
                token: Some("t".into()),
                password: None,
                rate_limit: Default::default(),
            },
            file_log: None,
            identity,
            methods: super::methods::core_table(),
            shutdown: Shutdown::new(),
            reload: Default::default(),
            features: Features::none(),
        }
    }
}

impl GatewayState {
    /// Builds the state.
    pub fn new(init: StateInit) -> Arc<GatewayState> {
        let extensions = init.features.init(&FeatureInit {
            paths: &init.paths,
            config: &init.config,
        });
        let devices = super::device::store::Store::open(&init.paths.state_dir);
        let (config, _) = watch::channel(Arc::new(init.config));
        Arc::new(GatewayState {
            boot_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            paths: init.paths,
            port: init.port,
            listen: init.listen,
            bind_mode: init.bind.name().to_string(),
            bind: init.bind,
            run_args: init.run_args,
            settings: init.settings,
            shutdown: init.shutdown,
            methods: init.methods,
            file_log: init.file_log,
            identity: init.identity,
            rate_limiter: RateLimiter::default(),
            last_heartbeat: Mutex::new(None),
            event_loop: super::health::EventLoopMonitor::default(),
            health_cache: super::health::HealthCache::default(),
            draining: AtomicBool::new(false),
            reload: init.reload,
            config,
            auth: RwLock::new(Arc::new(init.auth)),
            conns: Mutex::new(HashMap::new()),
            presence: Mutex::new(Vec::new()),
            presence_version: AtomicU64::new(1),
            health_version: AtomicU64::new(1),
            pending: AtomicUsize::new(0),
            features: init.features,
            extensions,
            handover: super::handover::Coordinator::default(),
            devices,
        })
    }

    /// A wing's per-generation state of type `T` (`None` when no wing created one).
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions.get::<T>()
    }

    /// Milliseconds since start.
    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The current config snapshot.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Subscribes to config swaps.
    pub fn subscribe_config(&self) -> watch::Receiver<Arc<Config>> {
        self.config.subscribe()
    }

    /// Swaps in a new (already validated) config.
    pub fn replace_config(&self, new: Config) {
        self.config.send_replace(Arc::new(new));
    }

    /// The current auth snapshot.
    pub fn auth(&self) -> Arc<ResolvedAuth> {
        self.auth.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Swaps the auth snapshot (credential rotation).
    pub fn set_auth(&self, new: ResolvedAuth) {
        let new = Arc::new(new);
        let old = std::mem::replace(
            &mut *self.auth.write().unwrap_or_else(|p| p.into_inner()),
            new.clone(),
        );
        super::device::on_auth_change(self, &old, &new);
    }

    /// `{presence, health}`.
    pub fn state_version(&self) -> Value {
        json!({
            "presence": self.presence_version.load(Ordering::Relaxed),
            "health": self.health_version.load(Ordering::Relaxed),
        })
    }

    /// Marks a health refresh (the next `health` event carries the new version).
    pub fn bump_health(&self) {
        self.health_version.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of authenticated sockets.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Snapshot of connected clients.
    pub fn connections(&self) -> Vec<Arc<ConnInfo>> {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|e| e.info.clone())
            .collect()
    }

    /// Registers an authenticated socket (after hello-ok was queued).
    pub fn register(&self, info: Arc<ConnInfo>, outbound: Outbound) {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).insert(
            info.id.clone(),
            ConnEntry {
                info,
                outbound,
                seq: 0,
            },
        );
    }

    /// Registers a socket adopted from the previous process; its `seq` continues at `seq`.
    pub fn register_resumed(&self, info: Arc<ConnInfo>, outbound: Outbound, seq: u64) {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).insert(
            info.id.clone(),
            ConnEntry {
                info,
                outbound,
                seq,
            },
        );
    }

    /// Removes a socket that moves to the next process and returns its last delivered `seq`
    /// (no event is sent to it afterwards).
    pub fn take_for_handover(&self, conn_id: &str) -> Option<u64> {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(conn_id)
            .map(|e| e.seq)
    }

    /// `(presence, health)` state versions.
    pub fn state_versions(&self) -> (u64, u64) {
        (
            self.presence_version.load(Ordering::Relaxed),
            self.health_version.load(Ordering::Relaxed),
        )
    }

    /// Continues the previous process's state versions (they never go backwards for a client
    /// that stayed connected across a restart).
    pub fn restore_state_versions(&self, presence: u64, health: u64) {
        self.presence_version.fetch_max(presence, Ordering::Relaxed);
        self.health_version.fetch_max(health, Ordering::Relaxed);
    }

    /// Removes a socket.
    pub fn unregister(&self, conn_id: &str) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(conn_id);
    }

    fn frame(
        &self,
        event: &str,
        payload: &Value,
        seq: u64,
        state_version: &Option<Value>,
    ) -> String {
        protocol::event(event, payload.clone(), Some(seq), state_version.clone()).to_string()
    }

    /// Sends an event to every authenticated socket allowed to see it; each delivery takes
    /// that socket's next `seq` (dropped events too: clients see the gap).
    pub fn broadcast(&self, event: &str, payload: &Value, opts: Broadcast<'_>) {
        let sv = opts.state_version.then(|| self.state_version());
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for (id, c) in conns.iter_mut() {
            if opts.except == Some(id.as_str()) {
                continue;
            }
            if let Some(scope) = opts.scope
                && !c.info.has_scope(scope)
            {
                continue;
            }
            c.seq += 1;
            let text = self.frame(event, payload, c.seq, &sv);
            c.outbound.send_event(text, opts.drop_if_slow);
        }
    }

    /// Sends an event to one socket (with its next `seq`). False if the socket is gone.
    pub fn send_event_to(
        &self,
        conn_id: &str,
        event: &str,
        payload: &Value,
        state_version: bool,
    ) -> bool {
        let sv = state_version.then(|| self.state_version());
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = conns.get_mut(conn_id) else {
            return false;
        };
        c.seq += 1;
        let text = self.frame(event, payload, c.seq, &sv);
        c.outbound.send_event(text, false) == Sent::Queued
    }

    /// Closes the authenticated sockets matching `pred` with `code`/`reason`; returns how many.
    pub fn close_where(
        &self,
        mut pred: impl FnMut(&ConnInfo) -> bool,
        code: u16,
        reason: &str,
    ) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        for c in conns.values().filter(|c| pred(&c.info)) {
            c.outbound.close(code, reason);
            n += 1;
        }
        n
    }

    /// The idle policy's check, run on each tick (see [`idle_timeout`]): pings sockets silent
    /// for half a tick interval, closes (ahead of their backlog: a silent peer may not be
    /// reading) those silent for `timeout`. Returns how many were closed.
    pub fn sweep_idle(&self, tick: Duration, timeout: Duration) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = 0;
        for c in conns.values() {
            let silent = c.outbound.silent_for();
            if silent >= timeout {
                if !c.outbound.is_closed() {
                    tracing::info!(
                        conn = %c.info.id,
                        client = %c.info.client_id,
                        silent_ms = silent.as_millis() as u64,
                        "closing an authenticated socket silent for longer than the idle timeout (no frame, no pong); raise OPENCLAW_IDLE_TIMEOUT_MS if its clients cannot answer pings"
                    );
                    closed += 1;
                }
                c.outbound.abort(1001, "idle timeout");
            } else if silent >= tick / 2 {
                c.outbound.ping();
            }
        }
        closed
    }

    /// Closes every authenticated socket with `code`/`reason`.
    pub fn close_all(&self, code: u16, reason: &str) {
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            c.outbound.close(code, reason);
        }
    }

    /// The gateway's own presence entry.
    pub fn self_presence(&self) -> Value {
        let host = crate::telemetry::hostname();
        let sys = super::health::uname();
        json!({
            "host": host,
            "version": crate::VERSION,
            "platform": format!("{} {}", std::env::consts::OS, sys.release),
            "deviceFamily": device_family(),
            "mode": "gateway",
            "reason": "self",
            "instanceId": self.boot_id,
            "text": format!("Gateway: {host} · app {} · mode gateway · reason self", crate::VERSION),
            "ts": crate::sys::time::now_ms(),
        })
    }

    /// `system-presence` / `snapshot.presence`: self first, then clients (recently
    /// disconnected ones with reason `disconnect` for a while).
    pub fn presence_list(&self) -> Vec<Value> {
        let mut list = vec![self.self_presence()];
        let mut p = self.presence.lock().unwrap_or_else(|p| p.into_inner());
        p.retain(|r| r.gone_at.is_none_or(|t| t.elapsed() < PRESENCE_TTL));
        list.extend(p.iter().rev().map(|r| r.entry.clone()));
        list
    }

    /// Records a presence change for a non-ephemeral client and broadcasts `presence`.
    pub fn presence_update(&self, info: &ConnInfo, connected: bool) {
        if info.is_ephemeral() || info.role != "operator" && info.role != "node" {
            return;
        }
        let now = crate::sys::time::now_ms();
        let reason = if connected { "connect" } else { "disconnect" };
        let name = info
            .display_name
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let mut entry = json!({
            "clientId": info.client_id,
            "mode": info.client_mode,
            "onlineSince": info.connected_at_ms,
            "roles": [info.role],
            "ts": now,
            "text": format!("Node: {name} · mode {}", info.client_mode),
            "host": info.display_name.clone().unwrap_or_else(|| info.client_id.clone()),
            "ip": info.remote.ip().to_string(),
            "version": info.client_version,
            "platform": info.platform,
            "reason": reason,
        });
        if let Some(f) = &info.device_family {
            entry["deviceFamily"] = f.clone().into();
        }
        if let Some(i) = &info.instance_id {
            entry["instanceId"] = i.clone().into();
        }
        if let Some(d) = &info.device_id {
            entry["deviceId"] = d.clone().into();
            entry["scopes"] = info.scopes.clone().into();
        }
        {
            let mut p = self.presence.lock().unwrap_or_else(|p| p.into_inner());
            p.retain(|r| r.conn_id != info.id);
            p.push(PresenceRec {
                conn_id: info.id.clone(),
                entry,
                gone_at: (!connected).then(Instant::now),
            });
        }
        self.presence_version.fetch_add(1, Ordering::Relaxed);
        let payload = json!({"presence": self.presence_list()});
        self.broadcast(
            "presence",
            &payload,
            Broadcast {
                scope: Some(protocol::scopes::READ),
                state_version: true,
                drop_if_slow: true,
                except: connected.then_some(info.id.as_str()),
            },
        );
    }
}

/// `deviceFamily` of this host as upstream names it.
pub fn device_family() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Mac",
        "windows" => "Windows",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timeout_defaults_and_bounds() {
        // Default: 3 ticks, never under upstream's 25 s pong window.
        assert_eq!(idle_timeout(30_000, None), Some(Duration::from_secs(90)));
        assert_eq!(idle_timeout(100, None), Some(PONG_WINDOW));
        // Explicit: at least 2 ticks (checked on ticks); 0 turns it off.
        assert_eq!(
            idle_timeout(100, Some(400)),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            idle_timeout(100, Some(50)),
            Some(Duration::from_millis(200))
        );
        assert_eq!(idle_timeout(100, Some(0)), None);
    }
}
