//! Zero-downtime restarts: live WebSocket connections move to the next process through
//! systemd's file-descriptor store (docs/service-managers.md A3, E1).
//!
//! # Old process (planned restart)
//! [`plan`] decides whether a stop is a restart (below). [`hand_over`] then asks every
//! authenticated session to quiesce: the session stops reading at a message boundary
//! ([`super::wsio`]), waits for its in-flight requests (answered by this process, bounded by
//! `OPENCLAW_HANDOVER_INFLIGHT_MS`, default 5 s; requests still running then are answered
//! `UNAVAILABLE` retryable), takes its `seq` out of the broadcast registry (no later event can
//! use a number the next process will use), flushes its writer, and submits a duplicate of its
//! fd with its state ([`ConnState`]). Pre-auth handshakes get a short grace to finish first.
//! The coordinator uploads each fd (`FDSTORE=1`, `FDNAME=ws-<connId>`), then the state as a
//! sealed memfd (`ws-state`), waits for `BARRIER=1`, and the process exits. No close frame,
//! no `shutdown` event: the client sees a pause.
//!
//! # New process
//! [`Adopted::from_stored`] takes the stored connections (before the runtime starts), removes
//! them from the store at once (`FDSTOREREMOVE=1`: a stored copy would keep a connection
//! open after we close it, and its peer would never see FIN), and matches them with the state.
//! [`resume_all`] continues each session where it stopped: bytes the old process had read but
//! not parsed come first, `seq` continues, scopes and client info are as authenticated. If the
//! gateway's auth changed meanwhile, the client gets 4001 `gateway auth changed`. A stored
//! connection without valid state (the old process crashed mid-handover, or the state is from
//! an incompatible version) is closed properly: its write side is at a frame boundary (only
//! quiesced connections are ever stored), so a 1012 `service restart` close frame is safe.
//!
//! # Restart or stop?
//! systemd sends the same SIGTERM for both. A restart keeps the store; a stop releases it
//! (systemd closes the fds, peers see FIN). The gateway hands over when it knows a restart is
//! coming: a restart-required reload (exit 75), `openclaw gateway restart` (which leaves an
//! intent file naming the pid it restarts), or a `restart` job the manager reports for the
//! unit (`systemctl list-jobs`). A `stop` job, no job, or `FileDescriptorStoreMax=0` means a
//! stop: the usual `shutdown` event and 1012 close. When the manager cannot be asked, the
//! gateway hands over (a real stop then ends the connections with FIN, not a hang).
//!
//! # Crash
//! Nothing of the connections is stored before a planned restart, so after a crash only the
//! listeners remain (socket unit or `listen-*` entries): no connect is refused, the clients
//! see their socket close (FIN from the kernel) and reconnect.
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::auth::ResolvedAuth;
use super::state::{ConnInfo, GatewayState, UNKNOWN_AUTH_METHOD};
use crate::config::paths::Paths;
use crate::service::systemd::fdstore::{self, Job, ManagerView, StoreConfig, Stored};
use crate::service::systemd::notify::Notifier;
use crate::sys::time::now_ms;

/// Version of the state format; a mismatch closes the connections properly instead.
const FORMAT_VERSION: u32 = 1;
/// How long a quiescing session may take to reach a message boundary.
pub(crate) const BOUNDARY_BUDGET: Duration = Duration::from_secs(2);
/// Pre-auth handshakes get this long to finish before the handover (they are then carried).
const PREAUTH_GRACE: Duration = Duration::from_millis(1000);
/// Default budget for in-flight requests (`OPENCLAW_HANDOVER_INFLIGHT_MS`).
const INFLIGHT_BUDGET: Duration = Duration::from_secs(5);
/// Largest state memfd we read back.
const STATE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// The intent file `gateway restart` leaves for the process it restarts.
const INTENT_FILE: &str = "gateway.restart-intent";

/// Budget for requests still running when a handover starts.
pub(crate) fn inflight_budget() -> Duration {
    std::env::var("OPENCLAW_HANDOVER_INFLIGHT_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(INFLIGHT_BUDGET)
}

/// One connection's state as the next process needs it: its [`ConnInfo`] (embedded, so a
/// field added there is carried over too; same JSON keys, flattened) plus the stream position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnState {
    /// Who is connected (`authMethod` an unknown method reads as [`UNKNOWN_AUTH_METHOD`]).
    #[serde(flatten)]
    pub conn: ConnInfo,
    /// The last `seq` delivered; the next event carries `seq + 1`.
    pub seq: u64,
    /// Bytes read from the socket but not yet parsed (base64).
    pub pending: String,
}

impl ConnState {
    /// Captures a session.
    pub fn capture(info: &ConnInfo, seq: u64, pending: &[u8]) -> ConnState {
        ConnState {
            conn: info.clone(),
            seq,
            pending: base64::engine::general_purpose::STANDARD.encode(pending),
        }
    }

    /// The connection info, or `None` when a field is not one this version knows.
    pub fn info(&self) -> Option<ConnInfo> {
        (self.conn.auth_method != UNKNOWN_AUTH_METHOD).then(|| self.conn.clone())
    }

    /// The unparsed bytes.
    pub fn pending_bytes(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.pending)
            .ok()
    }
}

/// The memfd's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StateFile {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The old process.
    pub pid: u32,
    /// When the handover began (epoch ms): the client-visible pause starts here.
    pub started_at_ms: u64,
    /// `stateVersion.presence` to continue from.
    pub presence_version: u64,
    /// `stateVersion.health` to continue from.
    pub health_version: u64,
    /// Salt for [`StateFile::auth_digest`].
    pub auth_salt: String,
    /// SHA-256 over salt, auth mode and secret: the next process checks that the connections
    /// were authenticated against the secret it has (never the secret itself).
    pub auth_digest: String,
    /// The connections.
    pub conns: Vec<ConnState>,
}

/// The auth digest for `auth` with `salt`.
pub(crate) fn auth_digest(auth: &ResolvedAuth, salt: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(auth.mode.as_str().as_bytes());
    h.update([0]);
    if let Some(t) = &auth.token {
        h.update(b"token\0");
        h.update(t.as_bytes());
    }
    if let Some(p) = &auth.password {
        h.update(b"password\0");
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A quiesced connection: its state and a duplicate of its fd.
#[derive(Debug)]
pub struct Quiesced {
    /// State.
    pub state: ConnState,
    /// The socket.
    pub fd: OwnedFd,
}

/// What the last restart carried (shown by `status`, STATUS= and `gateway status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Connections resumed in this process.
    pub carried_over: usize,
    /// Stored connections closed instead (no valid state, auth changed).
    pub closed: usize,
    /// From the old process starting the handover to this process resuming (ms).
    pub gap_ms: Option<u64>,
}

/// Per-generation handover state, part of [`GatewayState`].
#[derive(Debug)]
pub struct Coordinator {
    requested: CancellationToken,
    in_serve: watch::Sender<usize>,
    collected: Mutex<Option<Vec<Quiesced>>>,
    adopted: Mutex<Option<Adopted>>,
    report: Mutex<Option<Report>>,
}

impl Default for Coordinator {
    fn default() -> Self {
        Coordinator {
            requested: CancellationToken::new(),
            in_serve: watch::channel(0).0,
            collected: Mutex::new(Some(Vec::new())),
            adopted: Mutex::new(None),
            report: Mutex::new(None),
        }
    }
}

/// Counts a session in its authenticated phase; dropped when the session is done with its
/// socket (closed, or submitted to the handover).
#[derive(Debug)]
pub struct ServeGuard<'a>(&'a Coordinator);

impl Drop for ServeGuard<'_> {
    fn drop(&mut self) {
        self.0.in_serve.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Coordinator {
    /// The token sessions watch: cancelled when a handover begins.
    pub fn token(&self) -> &CancellationToken {
        &self.requested
    }
    /// Whether a handover has begun.
    pub fn is_requested(&self) -> bool {
        self.requested.is_cancelled()
    }
    /// Marks a session as authenticated and serving.
    pub fn enter_serve(&self) -> ServeGuard<'_> {
        self.in_serve.send_modify(|n| *n += 1);
        ServeGuard(self)
    }
    /// Hands a quiesced connection to the coordinator; refused (given back) once the
    /// collection is closed.
    pub fn submit(&self, q: Quiesced) -> Result<(), Box<Quiesced>> {
        match self
            .collected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(v) => {
                v.push(q);
                Ok(())
            }
            None => Err(Box::new(q)),
        }
    }
    fn close_collection(&self) -> Vec<Quiesced> {
        self.collected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }
    /// Connections adopted at startup, resumed by [`resume_all`].
    pub fn set_adopted(&self, a: Adopted) {
        *self.adopted.lock().unwrap_or_else(|p| p.into_inner()) = Some(a);
    }
    /// What the last restart carried over, if this process was started by a handover.
    pub fn report(&self) -> Option<Report> {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// For the `status` RPC.
    pub fn status_json(&self) -> Value {
        match self.report() {
            Some(r) => json!({
                "carriedOver": r.carried_over,
                "closed": r.closed,
                "gapMs": r.gap_ms,
            }),
            None => Value::Null,
        }
    }
    /// For STATUS= (`; 64 carried over by the last restart`).
    pub fn status_suffix(&self) -> String {
        match self.report() {
            Some(r) => format!("; {} carried over by the last restart", r.carried_over),
            None => String::new(),
        }
    }
}

/// Why a handover happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// SIGTERM from the manager (restart or stop).
    Signal,
    /// A restart-required reload (the process exits 75 and `Restart=` brings it back).
    RestartRequested,
}

/// What to do with live connections on the way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Store them; room for this many fds.
    HandOver {
        /// `FileDescriptorStoreMax`.
        max: usize,
        /// Why we believe the store survives.
        why: &'static str,
    },
    /// Close them (shutdown event, 1012).
    Close(&'static str),
}

/// The rule (pure, table-tested): see the module docs.
pub(crate) fn decide(intent: bool, view: Option<&ManagerView>, announced_max: usize) -> Decision {
    let max = view.and_then(|v| v.store_max).unwrap_or(announced_max);
    if max == 0 {
        return Decision::Close("the unit has FileDescriptorStoreMax=0");
    }
    match view.map(|v| &v.job) {
        Some(Job::Stop) => Decision::Close("the manager is stopping the unit"),
        _ if intent => Decision::HandOver {
            max,
            why: "a planned restart",
        },
        Some(Job::Restart) => Decision::HandOver {
            max,
            why: "the manager is restarting the unit",
        },
        None => Decision::HandOver {
            max,
            why: "the manager could not be asked; assuming a restart",
        },
        Some(Job::None) => Decision::Close("no restart job is queued"),
        Some(Job::Other(_)) => Decision::Close("the manager's job is not a restart"),
    }
}

fn intent_path(paths: &Paths) -> PathBuf {
    paths.state_dir.join(INTENT_FILE)
}

/// `openclaw gateway restart`: tells the gateway with `pid` that the coming SIGTERM is a
/// restart (so it hands its connections over). Best effort.
pub(crate) fn write_restart_intent(paths: &Paths, pid: u32) -> crate::error::Result<()> {
    let body = json!({"pid": pid, "atMs": now_ms()}).to_string();
    crate::config::write::write_atomic(&intent_path(paths), body.as_bytes(), 0o600)
}

/// Consumes the intent file: true when it names this process and is recent.
fn take_restart_intent(paths: &Paths) -> bool {
    let p = intent_path(paths);
    let Ok(text) = std::fs::read_to_string(&p) else {
        return false;
    };
    let _ = std::fs::remove_file(&p);
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return false;
    };
    v["pid"].as_u64() == Some(std::process::id() as u64)
        && v["atMs"]
            .as_u64()
            .is_some_and(|t| now_ms().saturating_sub(t) < 120_000)
}

/// Decides (asking the manager when needed) whether to hand connections over.
pub(crate) async fn plan(state: &GatewayState, trigger: Trigger, store: &StoreConfig) -> Decision {
    let intent = trigger == Trigger::RestartRequested || take_restart_intent(&state.paths);
    let view = if manager_query_disabled() {
        None
    } else {
        fdstore::query_manager(store, Duration::from_secs(2)).await
    };
    let d = decide(intent, view.as_ref(), store.max);
    tracing::debug!(?view, intent, decision = ?d, "handover decision");
    d
}

/// Result of [`hand_over`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Connections in the store.
    pub stored: usize,
    /// Connections closed instead (store full or upload failed).
    pub closed: usize,
}

async fn wait_until(mut cond: impl FnMut() -> bool, budget: Duration) -> bool {
    let deadline = Instant::now() + budget;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Writes a close frame on a stored/adopted connection and closes it. Safe because such a
/// connection's write side is at a frame boundary.
pub(crate) fn close_fd(fd: OwnedFd, code: u16, reason: &str) {
    use std::io::Write;
    let mut s = std::net::TcpStream::from(fd);
    let _ = s.set_nonblocking(false);
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let _ = s.write_all(&super::wsio::close_frame(code, reason));
    let _ = s.shutdown(std::net::Shutdown::Write);
}

/// The old process's side (see the module docs). `reserved` fds of the store are taken by
/// listeners.
pub(crate) async fn hand_over(
    state: &Arc<GatewayState>,
    notifier: &Notifier,
    max: usize,
    reserved: usize,
) -> Outcome {
    let started_at_ms = now_ms();
    let t0 = Instant::now();
    let co = &state.handover;
    co.requested.cancel();
    // After the cancel: anything sent from now on is read by the next process.
    notifier.status(&format!(
        "restarting: handing {} connection(s) to the next process",
        state.connection_count()
    ));
    // Handshakes in progress finish first and are carried too.
    let _ = wait_until(
        || state.pending.load(std::sync::atomic::Ordering::Relaxed) == 0,
        PREAUTH_GRACE,
    )
    .await;
    let mut rx = co.in_serve.subscribe();
    let budget = inflight_budget() + BOUNDARY_BUDGET + Duration::from_secs(3);
    if tokio::time::timeout(budget, rx.wait_for(|n| *n == 0))
        .await
        .is_err()
    {
        tracing::warn!(
            "handover: some sessions did not quiesce within {budget:?}; they are closed"
        );
    }
    let mut conns = co.close_collection();
    let quiesce_ms = t0.elapsed().as_millis() as u64;
    let mut out = Outcome::default();
    let room = max.saturating_sub(reserved + 1);
    if conns.len() > room {
        tracing::warn!(
            "handover: {} connections but room for {room} in the fd store (FileDescriptorStoreMax={max}); closing the rest",
            conns.len()
        );
        for q in conns.drain(room..) {
            close_fd(q.fd, 1012, "service restart");
            out.closed += 1;
        }
    }
    let mut stored: Vec<Quiesced> = Vec::with_capacity(conns.len());
    for q in conns {
        let name = fdstore::conn_name(&q.state.conn.id);
        match notifier.store_fd(&name, q.fd.as_fd()) {
            Ok(()) => stored.push(q),
            Err(e) => {
                tracing::warn!("handover: storing {name} failed ({e}); closing it");
                close_fd(q.fd, 1012, "service restart");
                out.closed += 1;
            }
        }
    }
    let (presence_version, health_version) = state.state_versions();
    let mut salt = [0u8; 16];
    let _ = getrandom::fill(&mut salt);
    let file = StateFile {
        version: FORMAT_VERSION,
        pid: std::process::id(),
        started_at_ms,
        presence_version,
        health_version,
        auth_salt: hex::encode(salt),
        auth_digest: auth_digest(&state.auth(), &salt),
        conns: stored.iter().map(|q| q.state.clone()).collect(),
    };
    let body = serde_json::to_vec(&file).unwrap_or_default();
    let state_ok = crate::sys::unix::memfd_with("openclaw-handover", &body)
        .and_then(|m| notifier.store_fd(fdstore::STATE_NAME, m.as_fd()));
    if let Err(e) = state_ok {
        // Without state the next process would close them anyway; do it properly now and
        // take them out of the store.
        tracing::warn!(
            "handover: storing the connection state failed ({e}); closing the connections"
        );
        for q in stored.drain(..) {
            let _ = notifier.remove_stored(&fdstore::conn_name(&q.state.conn.id));
            close_fd(q.fd, 1012, "service restart");
            out.closed += 1;
        }
    }
    if let Err(e) = notifier.barrier(Duration::from_secs(5)) {
        tracing::warn!("handover: the manager did not confirm the fd store uploads: {e}");
    }
    out.stored = stored.len();
    tracing::info!(
        stored = out.stored,
        closed = out.closed,
        quiesce_ms,
        ms = t0.elapsed().as_millis() as u64,
        "handover: {} connection(s) in the fd store for the next process",
        out.stored
    );
    out
}

/// Connections taken from the fd store at startup.
#[derive(Debug, Default)]
pub struct Adopted {
    conns: Vec<(ConnState, OwnedFd)>,
    state: Option<StateFile>,
    closed: usize,
}

impl Drop for Adopted {
    fn drop(&mut self) {
        // Never resumed (startup failed): end them properly.
        for (_, fd) in self.conns.drain(..) {
            close_fd(fd, 1012, "service restart");
        }
    }
}

impl Adopted {
    /// Number of connections ready to resume.
    pub fn len(&self) -> usize {
        self.conns.len()
    }
    /// True when nothing was adopted.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Takes the stored connections and state (see the module docs). Every name taken is
    /// removed from the store right away; connections without valid state are closed
    /// properly. Listeners are not in `stored` (activation keeps them).
    pub fn from_stored(stored: Vec<(String, OwnedFd)>, notifier: &Notifier) -> Adopted {
        let mut a = Adopted::default();
        if stored.is_empty() {
            return a;
        }
        let mut names: Vec<String> = Vec::new();
        let mut state_fd = None;
        let mut fds: HashMap<String, OwnedFd> = HashMap::new();
        for (name, fd) in stored {
            if !names.contains(&name) {
                names.push(name.clone());
            }
            match fdstore::classify(&name) {
                Stored::State => state_fd = Some(fd),
                Stored::Conn(id) => match crate::sys::unix::fd_kind(&fd) {
                    crate::sys::unix::FdKind::TcpStream(_) => {
                        fds.insert(id, fd);
                    }
                    other => {
                        tracing::warn!("fd store: {name} is not a connection ({other:?}); dropped")
                    }
                },
                Stored::Listener | Stored::Unknown => {
                    tracing::info!("fd store: removing {name:?} (not used by this version)");
                }
            }
        }
        for n in &names {
            if let Err(e) = notifier.remove_stored(n) {
                tracing::warn!("fd store: removing {n} failed: {e}");
            }
        }
        let parsed = match state_fd {
            None => {
                Err("no state was stored (the previous process stopped mid-handover?)".to_string())
            }
            Some(fd) => crate::sys::unix::read_file_fd(fd, STATE_MAX_BYTES)
                .map_err(|e| format!("reading it: {e}"))
                .and_then(|b| {
                    serde_json::from_slice::<StateFile>(&b).map_err(|e| format!("parsing it: {e}"))
                })
                .and_then(|s| {
                    if s.version == FORMAT_VERSION {
                        Ok(s)
                    } else {
                        Err(format!(
                            "format {} (this version reads {FORMAT_VERSION})",
                            s.version
                        ))
                    }
                }),
        };
        match parsed {
            Ok(mut file) => {
                for cs in std::mem::take(&mut file.conns) {
                    if let Some(fd) = fds.remove(&cs.conn.id) {
                        a.conns.push((cs, fd));
                    }
                    // No fd: the peer closed meanwhile and the manager dropped it.
                }
                a.state = Some(file);
            }
            Err(e) if !fds.is_empty() => {
                tracing::warn!(
                    "fd store: {} stored connection(s) cannot be resumed: handover state: {e}; closing them (1012)",
                    fds.len()
                );
            }
            Err(_) => {}
        }
        for (_, fd) in fds.drain() {
            close_fd(fd, 1012, "service restart");
            a.closed += 1;
        }
        a
    }
}

/// The new process's side: resumes the adopted sessions (first generation only).
pub(crate) async fn resume_all(state: &Arc<GatewayState>) {
    let Some(mut adopted) = state
        .handover
        .adopted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        return;
    };
    let file = adopted.state.take();
    let mut closed = adopted.closed;
    let conns = std::mem::take(&mut adopted.conns);
    let auth_ok = file.as_ref().is_some_and(|f| {
        hex::decode(&f.auth_salt)
            .map(|salt| super::auth::ct_eq(&auth_digest(&state.auth(), &salt), &f.auth_digest))
            .unwrap_or(false)
    });
    if let Some(f) = &file {
        state.restore_state_versions(f.presence_version, f.health_version);
    }
    let mut carried = 0;
    for (cs, fd) in conns {
        let (Some(info), Some(pending)) = (cs.info(), cs.pending_bytes()) else {
            close_fd(fd, 1012, "service restart");
            closed += 1;
            continue;
        };
        if !auth_ok {
            close_fd(fd, 4001, "gateway auth changed");
            closed += 1;
            continue;
        }
        let std = std::net::TcpStream::from(fd);
        let local = std.local_addr().ok();
        let stream = std
            .set_nonblocking(true)
            .and_then(|_| tokio::net::TcpStream::from_std(std));
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(conn = %cs.conn.id, "resuming a connection failed: {e}");
                closed += 1;
                continue;
            }
        };
        let peer = super::ws::PeerInfo {
            remote: info.remote,
            local: local.unwrap_or(info.remote),
        };
        let io = super::wsio::BoundaryIo::adopted(stream, info.remote, pending);
        let st = state.clone();
        let seq = cs.seq;
        state.shutdown.tracker().spawn(async move {
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                io,
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                Some(super::ws::ws_config()),
            )
            .await;
            super::ws::run_session(
                ws,
                st,
                peer,
                super::ws::Start::Resumed {
                    info: Box::new(info),
                    seq,
                },
            )
            .await;
        });
        carried += 1;
    }
    let gap_ms = file
        .as_ref()
        .map(|f| now_ms().saturating_sub(f.started_at_ms));
    if file.is_none() && carried == 0 && closed == 0 {
        return; // not started by a handover (first start, crash)
    }
    if carried > 0 || closed > 0 {
        tracing::info!(
            carried,
            closed,
            gap_ms,
            "resumed {carried} connection(s) from the previous process"
        );
    }
    *state
        .handover
        .report
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(Report {
        carried_over: carried,
        closed,
        gap_ms,
    });
}

/// Test hook: `OPENCLAW_TEST_NO_MANAGER_QUERY=1` makes the manager unreachable for [`plan`]
/// (to prove what a stop does when the gateway could not tell it from a restart).
fn manager_query_disabled() -> bool {
    cfg!(any(debug_assertions, feature = "test-hooks"))
        && std::env::var("OPENCLAW_TEST_NO_MANAGER_QUERY").as_deref() == Ok("1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::auth::Mode;

    fn view(job: Job, max: Option<usize>) -> ManagerView {
        ManagerView {
            job,
            store_max: max,
        }
    }

    #[test]
    fn restart_or_stop() {
        let hand = |d: Decision| matches!(d, Decision::HandOver { .. });
        // A restart job keeps the store.
        assert!(hand(decide(false, Some(&view(Job::Restart, Some(10))), 10)));
        // A stop releases it: close properly.
        assert!(!hand(decide(false, Some(&view(Job::Stop, Some(10))), 10)));
        assert!(!hand(decide(true, Some(&view(Job::Stop, Some(10))), 10)));
        // No job: SIGTERM by hand, the unit goes inactive.
        assert!(!hand(decide(false, Some(&view(Job::None, Some(10))), 10)));
        // Planned (exit 75 / gateway restart): no job yet, still a restart.
        assert!(hand(decide(true, Some(&view(Job::None, Some(10))), 10)));
        // The manager's value (drop-ins) beats the announced one.
        assert_eq!(
            decide(true, Some(&view(Job::None, Some(0))), 4096),
            Decision::Close("the unit has FileDescriptorStoreMax=0")
        );
        assert!(matches!(
            decide(false, Some(&view(Job::Restart, None)), 7),
            Decision::HandOver { max: 7, .. }
        ));
        // Unknown: hand over (a stop then ends with FIN, never a hang).
        assert!(hand(decide(false, None, 10)));
        assert!(!hand(decide(false, None, 0)));
    }

    fn info() -> ConnInfo {
        ConnInfo {
            id: "c1".into(),
            client_id: "cli".into(),
            client_mode: "cli".into(),
            client_version: "1".into(),
            platform: "linux".into(),
            device_family: Some("Linux".into()),
            display_name: None,
            instance_id: Some("i".into()),
            role: "operator".into(),
            scopes: vec!["operator.read".into()],
            caps: vec![],
            remote: "127.0.0.1:5555".parse().unwrap(),
            connected_at_ms: 7,
            auth_method: "token",
            device_id: None,
        }
    }

    #[test]
    fn conn_state_round_trips_through_json() {
        let cs = ConnState::capture(&info(), 41, b"\x81\x85partial");
        let text = serde_json::to_string(&cs).unwrap();
        let back: ConnState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cs);
        let i = back.info().unwrap();
        assert_eq!(
            (i.id.as_str(), i.auth_method, i.scopes.len()),
            ("c1", "token", 1)
        );
        assert_eq!(back.pending_bytes().unwrap(), b"\x81\x85partial");
        // Same keys as before ConnInfo was embedded (the previous process may be older).
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "clientId",
                "clientMode",
                "clientVersion",
                "platform",
                "deviceFamily",
                "displayName",
                "instanceId",
                "role",
                "scopes",
                "caps",
                "remote",
                "connectedAtMs",
                "authMethod",
                "seq",
                "pending"
            ]
        );
        let mut odd = v.clone();
        odd["authMethod"] = "future-method".into();
        let odd: ConnState = serde_json::from_value(odd).unwrap();
        assert!(
            odd.info().is_none(),
            "an unknown auth method is not resumed"
        );
    }

    #[test]
    fn auth_digest_binds_mode_and_secret() {
        let a = |mode, token: Option<&str>| ResolvedAuth {
            mode,
            token: token.map(str::to_string),
            password: None,
            rate_limit: Default::default(),
        };
        let salt = b"salt";
        let d = auth_digest(&a(Mode::Token, Some("t1")), salt);
        assert_eq!(d, auth_digest(&a(Mode::Token, Some("t1")), salt));
        assert_ne!(d, auth_digest(&a(Mode::Token, Some("t2")), salt));
        assert_ne!(d, auth_digest(&a(Mode::Token, Some("t1")), b"other"));
        assert_ne!(d, auth_digest(&a(Mode::None, None), salt));
        assert!(!d.contains("t1"));
    }

    #[test]
    fn adoption_closes_connections_without_state_properly() {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let stored = vec![("ws-abc".to_string(), OwnedFd::from(server))];
        let a = Adopted::from_stored(stored, &Notifier::default());
        assert!(a.is_empty());
        assert_eq!(a.closed, 1);
        let mut buf = Vec::new();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.read_to_end(&mut buf).unwrap();
        // A 1012 close frame, then FIN.
        assert_eq!(buf[..4], [0x88, 2 + 15, 0x03, 0xf4]);
        assert_eq!(&buf[4..], b"service restart");
    }
}
