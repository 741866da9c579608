//! Measured runtime facts for `health`, `status`, `system.info` and `/readyz`: runtime
//! scheduling delay (the tokio analogue of Node's event-loop delay), process CPU and memory,
//! host facts. Every number is measured here; nothing is a placeholder.
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::state::GatewayState;
use crate::sys::time::now_ms;

/// Sampling period of the scheduling-delay probe.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Samples kept (one minute).
const WINDOW: usize = 120;
/// p99 delay above which the runtime is reported degraded.
const DEGRADED_DELAY_MS: f64 = 200.0;

#[derive(Debug, Default)]
struct Samples {
    delays_ms: Vec<f64>,
    last_interval_ms: f64,
    degraded_since: Option<u64>,
    cpu_prev: Option<(Instant, f64)>,
    cpu_ratio: Option<f64>,
}

/// Measures how late a periodic timer fires (scheduling delay) and the process CPU share.
#[derive(Debug, Default)]
pub struct EventLoopMonitor {
    samples: Mutex<Samples>,
}

impl EventLoopMonitor {
    /// Runs the probe until `stop` resolves.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let t0 = Instant::now();
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
            let elapsed = t0.elapsed();
            let delay = elapsed.saturating_sub(PROBE_INTERVAL).as_secs_f64() * 1000.0;
            let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
            s.last_interval_ms = elapsed.as_secs_f64() * 1000.0;
            s.delays_ms.push(delay);
            if s.delays_ms.len() > WINDOW {
                s.delays_ms.remove(0);
            }
            if let Some(cpu) = process_cpu_seconds() {
                let now = Instant::now();
                if let Some((t, c)) = s.cpu_prev {
                    let wall = now.duration_since(t).as_secs_f64();
                    if wall > 0.0 {
                        s.cpu_ratio = Some(((cpu - c) / wall).max(0.0));
                    }
                }
                s.cpu_prev = Some((now, cpu));
            }
        }
    }

    /// The `eventLoop` object.
    pub fn snapshot(&self) -> Value {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let mut sorted = s.delays_ms.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let p99 = percentile(&sorted, 0.99);
        let max = sorted.last().copied().unwrap_or(0.0);
        let degraded = p99 > DEGRADED_DELAY_MS;
        if degraded && s.degraded_since.is_none() {
            s.degraded_since = Some(now_ms());
        } else if !degraded {
            s.degraded_since = None;
        }
        let mut reasons = Vec::new();
        if degraded {
            reasons.push("event_loop_delay");
        }
        json!({
            "degraded": degraded,
            "degradedSinceMs": s.degraded_since,
            "reasons": reasons,
            "intervalMs": round1(s.last_interval_ms),
            "delayP99Ms": round1(p99),
            "delayMaxMs": round1(max),
            "cpuCoreRatio": s.cpu_ratio.map(|r| (r * 1000.0).round() / 1000.0),
            "cpuBreakdown": {"hostCpuCount": cpu_count()},
        })
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Process user+system CPU seconds (Linux `/proc/self/stat`).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI we run on.
    Some((utime + stime) / 100.0)
}

/// Resident set size in bytes (`/proc/self/status` VmRSS).
pub(crate) fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Number of CPUs available, read once: std reads the cgroup CPU quota files on every call,
/// which made it the most expensive part of a `health` round trip.
pub(crate) fn cpu_count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// `uname` facts.
#[derive(Debug, Clone)]
pub(crate) struct Uname {
    /// Kernel release.
    pub release: String,
}

/// Reads `uname(2)`.
pub(crate) fn uname() -> Uname {
    match nix::sys::utsname::uname() {
        Ok(u) => Uname {
            release: u.release().to_string_lossy().into_owned(),
        },
        Err(_) => Uname {
            release: String::new(),
        },
    }
}

/// Node-style arch name (`x64`, `arm64`).
pub(crate) fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        other => other,
    }
}

fn meminfo() -> (Option<u64>, Option<u64>) {
    let Ok(s) = std::fs::read_to_string("/proc/meminfo") else {
        return (None, None);
    };
    let get = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    (get("MemTotal:"), get("MemAvailable:"))
}

fn loadavg() -> Option<Vec<f64>> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    s.split_whitespace()
        .take(3)
        .map(|x| x.parse().ok())
        .collect()
}

fn cpu_model() -> Option<String> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    s.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// `processMemory`.
pub(crate) fn process_memory() -> Value {
    json!({"rssBytes": rss_bytes()})
}

/// The `health` payload (HealthSnapshot): this process's real state. No channels or plugins
/// exist in this build yet, so those lists are empty; the wings fill in what they own
/// (`defaultAgentId`; the agent and session lists stay empty until a wing reports them).
pub(crate) fn health_snapshot(state: &GatewayState) -> Value {
    let t0 = Instant::now();
    let cfg = state.config();
    let mut v = json!({
        "ok": true,
        "ts": now_ms(),
        "durationMs": 0,
        "plugins": {"loaded": [], "errors": [], "unavailable": []},
        // hotReloadStatus (upstream) + generation, pending, lastError, … (config::reload).
        "configReload": state.reload.status_json(),
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "heartbeatSeconds": 0,
        "defaultAgentId": state.features.default_agent_id(&cfg),
        "agents": [],
        "sessions": {"count": 0, "recent": []},
        "eventLoop": state.event_loop.snapshot(),
    });
    state.features.health(state, &mut v);
    // Degraded, not down: what still works is served; the reasons say what does not.
    let mut reasons: Vec<&str> = Vec::new();
    if v["eventLoop"]["degraded"] == true {
        reasons.push("event_loop_delay");
    }
    if let Some(log) = &state.file_log {
        v["logFile"] = log.health();
        if !log.is_healthy() {
            reasons.push("log_file_unwritable");
        }
    }
    v["degraded"] = (!reasons.is_empty()).into();
    v["degradedReasons"] = json!(reasons);
    v["durationMs"] = (t0.elapsed().as_millis() as u64).into();
    v
}

/// How long a `health` snapshot is reused. The protocol allows a snapshot up to ~60 s old;
/// its `ts` and `durationMs` always describe when it was taken and how long that took. A change
/// of what it reports on (see [`Inputs`]) replaces it at once.
pub(crate) const HEALTH_CACHE_TTL: Duration = Duration::from_secs(1);

/// A `health` snapshot with its JSON text, as served from [`HealthCache`].
#[derive(Debug)]
pub struct CachedHealth {
    /// When it was taken.
    pub at: Instant,
    /// The snapshot (for `hello-ok` and the post-connect `health` event).
    pub value: Value,
    /// Its serialized form (the `health` RPC payload).
    pub json: Arc<str>,
    inputs: Inputs,
    /// The config it was built from (held, so a new config cannot reuse its address).
    config: Arc<crate::config::Config>,
}

/// What a snapshot was built from, compared on every use (two short locks and a few integers):
/// a config swap, a reload evaluation or restart, the watcher stopping, or the log file
/// failing or recovering shows in the next `health` at once. Only the figures that move
/// continuously (`eventLoop`, `logFile.lostRecords`) can be up to [`HEALTH_CACHE_TTL`] old.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    reload: (u64, u64, u64, bool, bool, crate::config::reload::Mode),
    log_ok: Option<bool>,
}

impl Inputs {
    fn of(state: &GatewayState) -> Inputs {
        let s = state
            .reload
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Inputs {
            reload: (
                s.generation,
                s.evaluations,
                s.restarts,
                s.watching,
                s.watch_error.is_some(),
                s.mode,
            ),
            log_ok: state.file_log.as_ref().map(|l| l.is_healthy()),
        }
    }
}

/// The `health` snapshot cache of one gateway.
#[derive(Debug, Default)]
pub struct HealthCache {
    slot: Mutex<Option<Arc<CachedHealth>>>,
}

impl HealthCache {
    /// The cached snapshot, or a fresh one when the cached one is older than
    /// [`HEALTH_CACHE_TTL`] or what it reports on has changed.
    pub fn get(&self, state: &GatewayState) -> Arc<CachedHealth> {
        let config = state.config();
        let inputs = Inputs::of(state);
        if let Some(c) = &*self.slot.lock().unwrap_or_else(|p| p.into_inner())
            && c.at.elapsed() < HEALTH_CACHE_TTL
            && c.inputs == inputs
            && Arc::ptr_eq(&c.config, &config)
        {
            return c.clone();
        }
        let value = health_snapshot(state);
        let fresh = Arc::new(CachedHealth {
            at: Instant::now(),
            json: value.to_string().into(),
            value,
            inputs,
            config,
        });
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
        fresh
    }
}

/// `system.info`.
pub(crate) fn system_info(state: &GatewayState) -> Value {
    let u = uname();
    let host = crate::telemetry::hostname();
    let (total, avail) = meminfo();
    let disk = nix::sys::statvfs::statvfs(&state.paths.state_dir)
        .or_else(|_| nix::sys::statvfs::statvfs(&state.paths.home))
        .ok();
    let mut v = json!({
        "machineName": host,
        "hostname": host,
        "platform": std::env::consts::OS,
        "release": u.release,
        "arch": arch(),
        "osLabel": format!("{} {}", super::state::device_family(), u.release),
        "port": state.port,
        "runtime": "rust",
        "runtimeVersion": crate::VERSION,
        "pid": std::process::id(),
        "processInstanceId": state.boot_id,
        "uptimeMs": state.uptime_ms(),
        "cpuCount": cpu_count(),
        "cpuModel": cpu_model(),
        "loadAverage": loadavg(),
        "memoryTotalBytes": total,
        "memoryFreeBytes": avail,
        "eventLoop": state.event_loop.snapshot(),
        "processMemory": process_memory(),
        "diskPath": state.paths.state_dir.display().to_string(),
    });
    // fsblkcnt_t/c_ulong are u64 on Linux but narrower on macOS: keep the casts.
    #[allow(clippy::unnecessary_cast)]
    if let Some(d) = disk {
        let frsize = d.fragment_size() as u64;
        let total = d.blocks() as u64 * frsize;
        let avail = d.blocks_available() as u64 * frsize;
        v["diskTotalBytes"] = total.into();
        v["diskAvailableBytes"] = avail.into();
    }
    v
}

/// `/readyz` body.
pub(crate) fn ready_body(state: &GatewayState) -> (bool, Value) {
    let draining = state.draining.load(std::sync::atomic::Ordering::Relaxed);
    let failing: Vec<&str> = if draining { vec!["draining"] } else { vec![] };
    (
        !draining,
        json!({
            "ready": !draining,
            "failing": failing,
            "uptimeMs": state.uptime_ms(),
            "eventLoop": state.event_loop.snapshot(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::methods::Ctx;
    use crate::gateway::state::StateInit;

    fn state(dir: &std::path::Path) -> Arc<GatewayState> {
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), dir.display().to_string())].into();
        let paths = crate::config::paths::Paths::resolve(None, false, &env).unwrap();
        GatewayState::new(StateInit::for_tests(paths))
    }

    #[tokio::test]
    async fn health_rpc_serves_a_cached_snapshot_with_its_own_ts() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        let before = now_ms();
        let a = state.health_cache.get(&state);
        let b = state.health_cache.get(&state);
        assert!(Arc::ptr_eq(&a, &b), "reused within {HEALTH_CACHE_TTL:?}");
        assert_eq!(a.json.as_ref(), a.value.to_string());
        let ts = a.value["ts"].as_u64().unwrap();
        assert!(ts >= before && ts <= now_ms(), "ts is when it was taken");
        assert!(a.value["durationMs"].is_u64());
        assert_eq!(
            a.value["eventLoop"]["cpuBreakdown"]["hostCpuCount"],
            cpu_count()
        );

        // What it reports on changed: the next one is fresh, whatever its age.
        state.reload.status.lock().unwrap().evaluations += 1;
        let c = state.health_cache.get(&state);
        assert!(!Arc::ptr_eq(&b, &c), "a reload evaluation replaces it");
        assert_eq!(c.value["configReload"]["evaluations"], 1);
        state.replace_config(crate::config::Config::default());
        let d = state.health_cache.get(&state);
        assert!(!Arc::ptr_eq(&c, &d), "a config swap replaces it");
        assert!(Arc::ptr_eq(&d, &state.health_cache.get(&state)));
        let a = d;

        // The method answers from the cache, on the raw path and the Value path alike.
        let spec = state.methods.get("health").unwrap();
        let (out, _rx) = crate::gateway::outbound::Outbound::new(1 << 20);
        let conn = Arc::new(crate::gateway::state::ConnInfo {
            id: "c".into(),
            client_id: "cli".into(),
            client_mode: "cli".into(),
            client_version: "1".into(),
            platform: "linux".into(),
            device_family: None,
            display_name: None,
            instance_id: None,
            role: "operator".into(),
            scopes: vec![],
            caps: vec![],
            remote: "127.0.0.1:1".parse().unwrap(),
            connected_at_ms: 0,
            auth_method: "token",
            device_id: None,
        });
        let ctx = Ctx::new(state.clone(), conn, "1".into(), None, out);
        let raw = (spec.raw.as_ref().expect("health has a raw handler"))(&ctx).unwrap();
        assert_eq!(raw, a.json);
        let v = (spec.handler)(ctx).await.unwrap();
        assert_eq!(v, a.value);
    }
}
