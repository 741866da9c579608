//! The `restart` section: `systemctl --user restart openclaw-gateway` with 64 connected clients,
//! under a real `systemd --user` in the test suite's sandbox (tests/it/support/sandbox.rs:
//! private PID/mount/cgroup namespaces, root only).
//!
//! The outer harness re-executes itself inside the sandbox ([`run`]); the inner run
//! ([`inner`]) installs the gateway with `openclaw gateway install --port P` (socket unit + fd
//! store, as shipped), connects 64 authenticated clients that issue `health` back to back (the
//! lean client of bench/rpc_client.rs; a client whose connection fails reconnects), an observer
//! client, and a prober that opens a fresh TCP connection (`GET /healthz`) every 10 ms, then
//! restarts the unit N times. It prints its per-restart figures as one `RESTART_FIGURES {json}`
//! line on stdout, which the outer run turns into metric rows.
//!
//! Per restart k, with t0 = `systemctl --user restart` issued and t_ret = it returned (the old
//! process has exited and the new one sent `READY=1`):
//! - **back**: t0 → the moment every client has completed a `health` round trip it *sent* after
//!   t_ret (so it was served by the new process), the slowest client decides;
//! - **worst latency**: the longest round trip, over all clients, that overlaps [t0, back];
//! - **refused / failed connects, closes, error responses**: events from t0 until the next
//!   restart is issued (the last window ends when the clients stop);
//! - **gap**: `status` → `handover.gapMs`, the gateway's own figure (the old process starts
//!   the handover → the new one has resumed every connection), read by the observer.
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openclaw::gateway::client::{ConnectOptions, GatewayClient};
use serde_json::{Value, json};

use crate::report::{Metric, ms};
use crate::sandbox::{self, Inside};
use crate::{metric, rpc_client};

/// The scenario name the sandbox re-executes this binary for.
pub const SCENARIO: &str = "bench::restart";
/// Prefix of the inner run's result line.
const MARKER: &str = "RESTART_FIGURES ";
const UNIT: &str = "openclaw-gateway.service";
const CLIENTS: usize = 64;
/// How long the clients may take to be back after one restart, and any single step.
const STEP: Duration = Duration::from_secs(30);
/// Pacing of the prober: one fresh connection every 10 ms (no event to wait for).
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// Outer side: runs the scenario in a fresh sandbox and adds its rows to `out`. Missing
/// prerequisites are a visible SKIP; `Err` is the report of a scenario that failed inside.
pub fn run(restarts: usize, inner_args: Vec<String>, out: &mut Vec<Metric>) -> Result<(), String> {
    if let Err(why) = sandbox::prerequisites(sandbox::Options::default()) {
        eprintln!("bench: SKIP restart: {why}");
        return Ok(());
    }
    let ran = sandbox::reexec(&sandbox::Reexec {
        scenario: SCENARIO.to_string(),
        args: inner_args,
        ran_marker: MARKER.to_string(),
        opts: sandbox::Options::default(),
    })?;
    let line = ran
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(MARKER))
        .unwrap_or_default();
    let figures: Value = serde_json::from_str(line)
        .map_err(|e| format!("restart: unreadable {MARKER}line ({e}): {line}"))?;
    rows(&figures, restarts, ran.took, out);
    Ok(())
}

/// The per-restart series `key` of the inner run's figures.
fn series(f: &Value, key: &str) -> Vec<f64> {
    f["restarts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r[key].as_f64())
        .collect()
}

fn rows(f: &Value, restarts: usize, took: Duration, out: &mut Vec<Metric>) {
    let n = f["clients"].as_u64().unwrap_or(0);
    let total = |key: &str| series(f, key).iter().sum::<f64>();
    let zero: Option<fn(f64) -> bool> = Some(|x| x == 0.0);
    out.push(metric(
        &format!("`systemctl --user restart` wall time, {n} clients connected"),
        "ms",
        series(f, "systemctlMs"),
        "record",
        None,
        true,
        &format!(
            "{restarts} restarts of the installed unit (socket unit + fd store) in the sandboxed user manager; sandbox run {:.1} s",
            took.as_secs_f64()
        ),
    ));
    out.push(metric(
        "refused connects during a restart",
        "connects",
        series(f, "refused"),
        "0 refused",
        zero,
        false,
        &format!(
            "per restart; a fresh TCP connect + `GET /healthz` every {} ms ({} probes, {} failed otherwise)",
            PROBE_EVERY.as_millis(),
            total("probes"),
            total("probeFailures")
        ),
    ));
    out.push(metric(
        &format!("clients closed by a restart (of {n})"),
        "clients",
        series(f, "closed"),
        "0 (issue 11)",
        zero,
        false,
        &format!(
            "per restart; {} error responses in all; the observer was carried over every time: {}",
            total("errorResponses"),
            f["observerKept"]
        ),
    ));
    out.push(metric(
        "worst request latency across a restart",
        "ms",
        series(f, "worstRequestMs"),
        "record",
        None,
        true,
        "longest `health` round trip of any client overlapping [restart issued, all clients back]",
    ));
    out.push(metric(
        "handover gap (`status` → handover.gapMs)",
        "ms",
        series(f, "gapMs"),
        "record",
        None,
        true,
        &format!(
            "the gateway's figure: old process starts the handover → new process resumed every connection ({} carried over, median)",
            crate::report::percentile(&series(f, "carriedOver"), 50.0)
        )
        .replace("(NaN carried over, median)", "(no handover)"),
    ));
    out.push(metric(
        &format!("time until all {n} clients are back after a restart"),
        "ms",
        series(f, "backMs"),
        "record",
        None,
        true,
        &format!(
            "restart issued → every client has completed a `health` round trip sent after `systemctl` returned (old process gone, new one ready); of that, after the return: {:.2} ms median",
            crate::report::percentile(&series(f, "backAfterReturnMs"), 50.0)
        ),
    ));
}

/// One client's log: every completed round trip, error responses and lost connections.
#[derive(Default)]
struct ClientLog {
    /// (sent, answered) of each ok round trip.
    ok: Vec<(Instant, Instant)>,
    errors: Vec<Instant>,
    lost: Vec<(Instant, String)>,
}

/// A client: `health` back to back until `stop`; publishes when each ok round trip was sent.
async fn client(
    idx: usize,
    url: String,
    token: String,
    mut conn: rpc_client::LoadConn,
    stop: Arc<AtomicBool>,
    sent_tx: tokio::sync::watch::Sender<Option<Instant>>,
) -> ClientLog {
    let mut log = ClientLog::default();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let sent = Instant::now();
        match conn.health().await {
            Ok(true) => {
                log.ok.push((sent, Instant::now()));
                sent_tx.send_replace(Some(sent));
            }
            Ok(false) => log.errors.push(Instant::now()),
            Err(e) => {
                log.lost.push((Instant::now(), e));
                // Reconnect (a build without zero-downtime restarts closes its clients).
                conn = loop {
                    match rpc_client::connect(&url, &token, idx).await {
                        Ok(c) => break c,
                        Err(e) if Instant::now() > deadline || stop.load(Ordering::Relaxed) => {
                            log.lost
                                .push((Instant::now(), format!("gave up reconnecting: {e}")));
                            return log;
                        }
                        // Pacing between attempts: nothing to wait on but the gateway.
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                };
            }
        }
    }
    rpc_client::close_all(vec![conn]).await;
    log
}

/// What one probe (fresh connection + `GET /healthz`) saw.
enum Probe {
    Ok,
    Refused,
    Failed(String),
}

async fn probe(port: u16) -> Probe {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    let mut s = match tokio::time::timeout(STEP, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Probe::Refused,
        Ok(Err(e)) => return Probe::Failed(e.to_string()),
        Err(_) => return Probe::Failed("connect timed out".into()),
    };
    let get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut buf = Vec::new();
    let answer = async {
        s.write_all(get).await?;
        s.read_to_end(&mut buf).await
    };
    match tokio::time::timeout(STEP, answer).await {
        Ok(Ok(_)) if buf.starts_with(b"HTTP/1.1 200") => Probe::Ok,
        Ok(Ok(_)) => Probe::Failed(
            String::from_utf8_lossy(&buf)
                .lines()
                .next()
                .unwrap_or("empty answer")
                .to_string(),
        ),
        Ok(Err(e)) => Probe::Failed(e.to_string()),
        Err(_) => Probe::Failed("no answer".into()),
    }
}

/// Opens a fresh connection every [`PROBE_EVERY`] until `stop`, each probe its own task so a
/// connect during a handover is attempted even while earlier probes wait for their answer.
async fn prober(port: u16, stop: Arc<AtomicBool>) -> Vec<(Instant, Probe)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            let p = probe(port).await;
            seen.lock().unwrap().push((at, p));
        }));
        tokio::time::sleep(PROBE_EVERY).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    std::mem::take(&mut *seen.lock().unwrap())
}

/// `openclaw ARGS` (the binary under test) with no inherited OPENCLAW_* variables; panics with
/// its output when it fails.
fn openclaw(args: &[&str]) -> String {
    let mut c = Command::new(crate::bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("OPENCLAW_") {
            c.env_remove(k);
        }
    }
    let o = c.args(args).output().expect("running openclaw");
    assert!(
        o.status.success(),
        "`openclaw {}` failed ({}):\n{}{}",
        args.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One restart as the main task saw it.
struct Window {
    t0: Instant,
    returned: Instant,
    status: Value,
}

/// Inner side (inside the sandbox): installs, loads, restarts `restarts` times and prints the
/// figures line. Panics (reported by the outer run) when the scenario itself breaks.
pub fn inner(sb: &Inside, restarts: usize) {
    let port = sandbox::free_port();
    openclaw(&["gateway", "install", "--port", &port.to_string()]);
    let cfg = sb.home.join(".openclaw/openclaw.json");
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    let token = cfg["gateway"]["auth"]["token"]
        .as_str()
        .expect("install wrote a gateway token")
        .to_string();
    let url = format!("ws://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let figures = rt.block_on(async {
        let observe = || async {
            let mut o = ConnectOptions::new(url.clone()).token(token.clone());
            o.timeout = STEP;
            GatewayClient::connect(o).await.expect("observer connects")
        };
        let (mut observer, mut observer_kept) = (observe().await, true);
        let stop = Arc::new(AtomicBool::new(false));
        let (mut clients, mut sent) = (Vec::new(), Vec::new());
        for i in 0..CLIENTS {
            let c = rpc_client::connect(&url, &token, i)
                .await
                .unwrap_or_else(|e| panic!("client {i} connects: {e}"));
            let (tx, rx) = tokio::sync::watch::channel(None);
            sent.push(rx);
            let (url, token, stop) = (url.clone(), token.clone(), stop.clone());
            clients.push(tokio::spawn(client(i, url, token, c, stop, tx)));
        }
        let prober = tokio::spawn(prober(port, stop.clone()));
        // StartLimitBurst counts manual starts too: begin the series with a fresh budget.
        assert_eq!(sb.systemctl(&["reset-failed", UNIT]).0, 0);
        let mut windows = Vec::new();
        for k in 0..restarts {
            let old = sb.prop(UNIT, "MainPID");
            let manager = Inside {
                home: sb.home.clone(),
            };
            let t0 = Instant::now();
            let (code, _) =
                tokio::task::spawn_blocking(move || manager.systemctl(&["restart", UNIT]))
                    .await
                    .unwrap();
            let returned = Instant::now();
            assert_eq!(
                code,
                0,
                "restart {k}: systemctl --user restart failed\n{}",
                sb.manager_log()
            );
            for (i, rx) in sent.iter_mut().enumerate() {
                tokio::time::timeout(STEP, rx.wait_for(|s| s.is_some_and(|s| s >= returned)))
                    .await
                    .unwrap_or_else(|_| panic!("restart {k}: client {i} not back within {STEP:?}"))
                    .expect("the client task runs");
            }
            let status = match observer.call("status", None).await {
                Ok(s) => s,
                // Closed by the restart (a build without zero-downtime restarts): reconnect.
                Err(_) => {
                    observer_kept = false;
                    observer = observe().await;
                    observer
                        .call("status", None)
                        .await
                        .unwrap_or_else(|e| panic!("restart {k}: observer `status`: {e}"))
                }
            };
            assert_ne!(
                status["pid"].to_string(),
                old,
                "restart {k}: a new process serves"
            );
            windows.push(Window {
                t0,
                returned,
                status,
            });
        }
        observer_kept &= observer.close_status().is_none();
        stop.store(true, Ordering::Relaxed);
        let end = Instant::now();
        let mut logs = Vec::new();
        for c in clients {
            logs.push(c.await.unwrap());
        }
        let probes = prober.await.unwrap();
        observer.close();
        analyse(&windows, end, &logs, &probes, observer_kept)
    });
    println!("{MARKER}{figures}");
}

/// Per-restart figures (see the module doc for the definitions).
fn analyse(
    windows: &[Window],
    end: Instant,
    logs: &[ClientLog],
    probes: &[(Instant, Probe)],
    observer_kept: bool,
) -> Value {
    let mut rows = Vec::new();
    let mut probe_errors = Vec::new();
    for (k, w) in windows.iter().enumerate() {
        let until = windows.get(k + 1).map_or(end, |n| n.t0);
        let within = |t: Instant| t >= w.t0 && t < until;
        // Each client's first ok round trip sent after systemctl returned: served by the new
        // process. (Every client had one: the main task waited for it.)
        let back = logs
            .iter()
            .filter_map(|l| l.ok.iter().find(|(s, _)| *s >= w.returned).map(|r| r.1))
            .max()
            .unwrap_or(w.returned);
        let worst = logs
            .iter()
            .flat_map(|l| &l.ok)
            .filter(|(s, d)| *d >= w.t0 && *s <= back)
            .map(|(s, d)| *d - *s)
            .max()
            .unwrap_or_default();
        let (mut refused, mut failed, mut n) = (0, 0, 0);
        for (at, p) in probes.iter().filter(|(at, _)| within(*at)) {
            n += 1;
            match p {
                Probe::Ok => {}
                Probe::Refused => refused += 1,
                Probe::Failed(e) => {
                    failed += 1;
                    probe_errors.push(format!("restart {k}, +{:.1} ms: {e}", ms(*at - w.t0)));
                }
            }
        }
        let h = &w.status["handover"];
        rows.push(json!({
            "systemctlMs": ms(w.returned - w.t0),
            "backMs": ms(back - w.t0),
            "backAfterReturnMs": ms(back - w.returned),
            "worstRequestMs": ms(worst),
            "gapMs": h["gapMs"],
            "carriedOver": h["carriedOver"],
            "refused": refused,
            "probeFailures": failed,
            "probes": n,
            "closed": logs.iter().filter(|l| l.lost.iter().any(|(t, _)| within(*t))).count(),
            "errorResponses": logs.iter().flat_map(|l| &l.errors).filter(|t| within(**t)).count(),
        }));
    }
    let lost: Vec<&String> = logs.iter().flat_map(|l| &l.lost).map(|(_, e)| e).collect();
    json!({
        "clients": logs.len(),
        "restarts": rows,
        "observerKept": observer_kept,
        "roundTrips": logs.iter().map(|l| l.ok.len()).sum::<usize>(),
        "lostConnections": lost.iter().take(10).collect::<Vec<_>>(),
        "probeErrors": probe_errors.iter().take(10).collect::<Vec<_>>(),
    })
}
