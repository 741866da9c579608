//! The benchmark harness: `cargo bench --bench gateway [-- --smoke] [--url ws://… --token T]`.
//!
//! Measures the issue-8 metrics on loopback only, each as median and p99 over repeated runs,
//! and writes `bench/results/latest.json` + `latest.md` (README summarises them). Every loop is
//! bounded in count and time. Targets are reported, never asserted: timings don't fail CI.
//!
//! With `--url`/`--token` only the network metrics run, against any OpenClaw-protocol gateway,
//! so the same numbers can be taken side by side for another implementation (`--pid PID` of a
//! local one adds its CPU time). `--bin PATH` runs everything against another build of ours.
//!
//! `--only SECTION` (startup, activation, rpc, cli, idle, restart) runs one section. `restart`
//! (bench/restart.rs) runs under a real `systemd --user` in the test suite's sandbox (root,
//! systemd and `unshare` needed; otherwise a visible SKIP). A scenario that breaks, as opposed
//! to a missed target, is reported with its output and makes the run exit 1 after the results
//! are written.
#![allow(unreachable_pub, missing_debug_implementations)]

#[path = "../tests/it/support/fake_model.rs"]
mod fake_model;
#[path = "proc.rs"]
mod procfs;
#[path = "report.rs"]
mod report;
#[path = "restart.rs"]
mod restart;
#[path = "rpc_client.rs"]
mod rpc_client;
/// The test suite's systemd sandbox, shared (its libtest wrappers `run`/`run_with` go unused).
#[allow(dead_code)]
#[path = "../tests/it/support/sandbox.rs"]
mod sandbox;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use openclaw::gateway::client::{ConnectOptions, GatewayClient};
use report::{Metric, ms};

const BIN: &str = env!("CARGO_BIN_EXE_openclaw");
/// `--bin PATH`: measure another build of the gateway (e.g. a baseline) in the same conditions.
static BIN_OVERRIDE: OnceLock<PathBuf> = OnceLock::new();

fn bin() -> &'static Path {
    BIN_OVERRIDE
        .get()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new(BIN))
}

#[derive(Debug, Clone)]
struct Opts {
    smoke: bool,
    url: Option<String>,
    token: Option<String>,
    /// With `--url`: the pid of that gateway (a local process), for the CPU split.
    pid: Option<u32>,
    out: PathBuf,
    only: Option<String>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        smoke: false,
        url: None,
        token: None,
        pid: None,
        out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results")),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smoke" => o.smoke = true,
            "--url" => o.url = it.next(),
            "--token" => o.token = it.next(),
            "--pid" => o.pid = it.next().and_then(|p| p.parse().ok()),
            "--out" => o.out = it.next().map(PathBuf::from).unwrap_or(o.out),
            "--only" => o.only = it.next(),
            "--bin" => {
                if let Some(b) = it.next() {
                    let _ = BIN_OVERRIDE.set(PathBuf::from(b));
                }
            }
            "--bench" => {} // passed by `cargo bench`
            other => eprintln!("bench: ignoring unknown argument {other:?}"),
        }
    }
    o
}

/// Sizes for a full run and for the CI smoke run.
struct Sizes {
    starts: usize,
    connects: usize,
    rps_window: Duration,
    rps_windows: usize,
    idle_clients: Vec<usize>,
    cli_runs: usize,
    agent_runs: usize,
    restarts: usize,
}

impl Sizes {
    fn new(smoke: bool) -> Sizes {
        if smoke {
            Sizes {
                starts: 3,
                connects: 20,
                rps_window: Duration::from_millis(300),
                rps_windows: 3,
                idle_clients: vec![50],
                cli_runs: 3,
                agent_runs: 5,
                restarts: 3,
            }
        } else {
            Sizes {
                starts: 20,
                connects: 300,
                rps_window: Duration::from_secs(3),
                rps_windows: 5,
                idle_clients: vec![1000, 10_000],
                cli_runs: 20,
                agent_runs: 50,
                restarts: 10,
            }
        }
    }
}

/// A gateway process with a private HOME, a config and a token, on a free loopback port.
struct Gw {
    child: Child,
    port: u16,
    token: String,
    _home: tempfile::TempDir,
}

impl Gw {
    fn command(home: &Path) -> Command {
        let mut c = Command::new(bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("OPENCLAW_") || k == "NOTIFY_SOCKET" || k.starts_with("LISTEN_") {
                c.env_remove(k);
            }
        }
        c.env("HOME", home)
            .env("OPENCLAW_LOG_DIR", home.join("logs"))
            .env("OPENCLAW_MAX_CONNECTIONS", "30000")
            // Thousands of clients connect at once from 127.0.0.1: budgets sized for that.
            .env("OPENCLAW_MAX_UNAUTH_CONNECTIONS", "30000")
            .env("OPENCLAW_MAX_UNAUTH_PER_PEER", "30000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn prepare() -> (tempfile::TempDir, String, u16) {
        Gw::prepare_with("")
    }

    /// A private HOME whose config has token auth plus `extra` (more top-level JSON5 keys).
    fn prepare_with(extra: &str) -> (tempfile::TempDir, String, u16) {
        let home = tempfile::tempdir().expect("tempdir");
        let token = format!("bench-{}", std::process::id());
        let state = home.path().join(".openclaw");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("openclaw.json"),
            format!(
                "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }} }}, {extra} }}"
            ),
        )
        .unwrap();
        (home, token, free_port())
    }

    /// Spawns and returns (gateway, exec → first hello-ok).
    async fn start() -> (Gw, Duration) {
        Gw::start_with("").await
    }

    /// [`Gw::start`] with more config (see [`Gw::prepare_with`]).
    async fn start_with(extra: &str) -> (Gw, Duration) {
        let (home, token, port) = Gw::prepare_with(extra);
        let t0 = Instant::now();
        let child = Gw::command(home.path())
            .args(["gateway", "run", "--port", &port.to_string()])
            .spawn()
            .expect("spawn gateway");
        let url = format!("ws://127.0.0.1:{port}");
        let deadline = t0 + Duration::from_secs(10);
        loop {
            if let Ok(c) = GatewayClient::connect(opts(&url, &token)).await {
                let took = t0.elapsed();
                c.close();
                return (
                    Gw {
                        child,
                        port,
                        token,
                        _home: home,
                    },
                    took,
                );
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not answer within 10 s"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn opts(url: &str, token: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(url).token(token);
    o.timeout = Duration::from_secs(10);
    o
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn metric(
    name: &str,
    unit: &'static str,
    samples: Vec<f64>,
    target: &str,
    ok: Option<fn(f64) -> bool>,
    use_p50: bool,
    note: &str,
) -> Metric {
    let mut m = Metric {
        name: name.into(),
        unit,
        samples,
        target: target.into(),
        met: None,
        note: note.into(),
    };
    if let Some(f) = ok {
        if !m.samples.is_empty() {
            m.met = Some(f(if use_p50 { m.median() } else { m.p99() }));
        }
    }
    m
}

/// exec → first hello-ok, and idle RSS shortly after start.
async fn startup(sz: &Sizes, out: &mut Vec<Metric>) {
    let mut starts = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..sz.starts {
        let (gw, took) = Gw::start().await;
        starts.push(ms(took));
        // Let start-up allocations settle, then read RSS of the whole process tree.
        tokio::time::sleep(Duration::from_millis(300)).await;
        rss.push(procfs::tree_rss_kib(gw.child.id()) as f64 / 1024.0);
        gw.stop();
    }
    out.push(metric(
        "exec → first hello-ok (config present)",
        "ms",
        starts,
        "≤ 20 ms",
        Some(|x| x <= 20.0),
        true,
        "fresh process; client retries connect every 0.2 ms",
    ));
    out.push(metric(
        "idle RSS after start (all processes)",
        "MB",
        rss,
        "≤ 8 MB",
        Some(|x| x <= 8.0),
        true,
        "VmRSS of the process tree, 300 ms after first hello-ok",
    ));
}

/// Starts `systemd-socket-activate` holding 127.0.0.1:port for a gateway exec'd on first connect;
/// returns once the activator listens (checked without connecting, which would activate).
async fn spawn_activator(sa: &Path, home: &Path, port: u16) -> Child {
    let gw = Gw::command(home);
    let mut cmd = Command::new(sa);
    for (k, v) in gw.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.args(["-l", &format!("127.0.0.1:{port}"), "--fdname=gateway"])
        .arg(gw.get_program())
        .args(["gateway", "run", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("spawn systemd-socket-activate");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !listening(port) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    child
}

fn terminate(mut c: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = c.wait();
}

/// Socket-activated cold start: connect to a socket held by `systemd-socket-activate` → first
/// byte (HTTP) and → first hello-ok (WS), each with a fresh activator so both are cold.
async fn socket_activated(sz: &Sizes, out: &mut Vec<Metric>) {
    let Some(sa) = which("systemd-socket-activate") else {
        eprintln!("bench: SKIP socket-activated cold start: systemd-socket-activate not found");
        return;
    };
    let mut first_byte = Vec::new();
    let mut hello = Vec::new();
    for _ in 0..sz.starts.min(10) {
        let (home, token, port) = Gw::prepare();
        let a = spawn_activator(&sa, home.path(), port).await;
        if let Some(fb) = first_http_byte(port).await {
            first_byte.push(ms(fb));
        }
        terminate(a);
        let port = free_port();
        let a = spawn_activator(&sa, home.path(), port).await;
        let t = Instant::now();
        if GatewayClient::connect(opts(&format!("ws://127.0.0.1:{port}"), &token))
            .await
            .is_ok()
        {
            hello.push(ms(t.elapsed()));
        }
        terminate(a);
    }
    out.push(metric(
        "socket-activated cold start: connect → first byte",
        "ms",
        first_byte,
        "≤ 10 ms p50",
        Some(|x| x <= 10.0),
        true,
        "systemd-socket-activate holds the port; exec on first connect (HTTP GET /healthz)",
    ));
    out.push(metric(
        "socket-activated cold start: connect → first hello-ok",
        "ms",
        hello,
        "≤ 10 ms p50",
        Some(|x| x <= 10.0),
        true,
        "fresh activator; WS upgrade + challenge + connect + hello-ok",
    ));
}

/// True when something listens on 127.0.0.1:port (from /proc/net/tcp, without connecting).
fn listening(port: u16) -> bool {
    let hex = format!(":{port:04X} ");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|s| {
            s.lines()
                .any(|l| l.contains(&hex) && l.split_whitespace().nth(3) == Some("0A"))
        })
        .unwrap_or(false)
}

/// Connect and send `GET /healthz`; time until the first response byte.
async fn first_http_byte(port: u16) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t0 = Instant::now();
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .ok()?
    .ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut b = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
        .await
        .ok()?
        .ok()?;
    Some(t0.elapsed())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// connect + hello-ok latency, sequential.
async fn connect_latency(url: &str, token: &str, n: usize, out: &mut Vec<Metric>) {
    let mut v = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..n {
        let t = Instant::now();
        match GatewayClient::connect(opts(url, token)).await {
            Ok(c) => {
                v.push(ms(t.elapsed()));
                c.close();
            }
            Err(e) => eprintln!("bench: connect failed: {e}"),
        }
        if Instant::now() > deadline {
            break;
        }
    }
    out.push(metric(
        "connect + hello-ok latency",
        "ms",
        v,
        "≤ 1 ms p50",
        Some(|x| x <= 1.0),
        true,
        "sequential, one client at a time",
    ));
}

/// `health` round trips per second with `clients` concurrent connections, each with exactly one
/// request outstanding (the lean client of bench/rpc_client.rs), as the median of `rps_windows`
/// windows; with `gw_pid`, also the CPU time the gateway and this process (the load client)
/// used in each window.
async fn health_rps(
    url: &str,
    token: &str,
    clients: usize,
    sz: &Sizes,
    gw_pid: Option<u32>,
    out: &mut Vec<Metric>,
) {
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        match rpc_client::connect(url, token, i).await {
            Ok(c) => conns.push(c),
            Err(e) => eprintln!("bench: load client {i} could not connect: {e}"),
        }
    }
    if conns.is_empty() {
        return;
    }
    let held = conns.len();
    // Warm-up (caches, allocator, TCP windows); not recorded.
    conns = rpc_client::window(conns, sz.rps_window / 5).await.0;
    let me = std::process::id();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (mut rates, mut gw_us, mut gw_cores, mut client_cores) = (vec![], vec![], vec![], vec![]);
    let mut others = vec![];
    let mut failures = 0;
    for _ in 0..sz.rps_windows {
        let g0 = gw_pid.and_then(procfs::cpu_seconds);
        let b0 = procfs::cpu_seconds(me);
        let m0 = procfs::machine_busy_seconds();
        let (back, ok, failed, took) = rpc_client::window(conns, sz.rps_window).await;
        let g1 = gw_pid.and_then(procfs::cpu_seconds);
        let b1 = procfs::cpu_seconds(me);
        let m1 = procfs::machine_busy_seconds();
        conns = back;
        failures += failed;
        let secs = took.as_secs_f64();
        rates.push(ok as f64 / secs);
        if let (Some(g0), Some(g1)) = (g0, g1) {
            gw_cores.push((g1 - g0) / secs);
            if ok > 0 {
                gw_us.push((g1 - g0) * 1e6 / ok as f64);
            }
        }
        if let (Some(b0), Some(b1)) = (b0, b1) {
            client_cores.push((b1 - b0) / secs);
            if let (Some(g0), Some(g1), Some(m0), Some(m1)) = (g0, g1, m0, m1) {
                others.push(((m1 - m0) - (g1 - g0) - (b1 - b0)).max(0.0) / secs);
            }
        }
    }
    rpc_client::close_all(conns).await;
    let (target, ok): (&str, Option<fn(f64) -> bool>) = if clients >= 64 {
        ("≥ 50k/s aggregate", Some(|x| x >= 50_000.0))
    } else {
        ("record", None)
    };
    let median = |v: &[f64]| report::percentile(v, 50.0);
    let mut note = format!(
        "{} windows of {:.1} s, one request outstanding per connection",
        sz.rps_windows,
        sz.rps_window.as_secs_f64()
    );
    if !gw_cores.is_empty() {
        note += &format!(
            "; CPU (median, cores of {cores}): gateway {:.2}, load client {:.2}, everything else on the machine {:.2}",
            median(&gw_cores),
            median(&client_cores),
            median(&others)
        );
    }
    if held < clients {
        note += &format!("; only {held} of {clients} connected");
    }
    if failures > 0 {
        note += &format!("; {failures} failed round trips");
    }
    out.push(metric(
        &format!("health RPC round trips/s, {clients} client(s)"),
        "req/s",
        rates,
        target,
        ok,
        true,
        &note,
    ));
    if !gw_us.is_empty() {
        out.push(metric(
            &format!("gateway CPU per health round trip, {clients} client(s)"),
            "µs",
            gw_us,
            "record",
            None,
            true,
            "gateway process user+system CPU time / completed round trips (its share of the kernel's loopback work included)",
        ));
    }
}

/// RSS per idle authenticated WebSocket client.
async fn idle_clients(n: usize, out: &mut Vec<Metric>) {
    let (gw, _) = Gw::start().await;
    let url = gw.url();
    let base = procfs::tree_rss_kib(gw.child.id());
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut handles = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(120);
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let url = url.clone();
        let token = gw.token.clone();
        handles.push(tokio::spawn(async move {
            let c = GatewayClient::connect(opts(&url, &token)).await;
            drop(permit);
            c.ok()
        }));
        if Instant::now() > deadline {
            break;
        }
    }
    let mut held = Vec::with_capacity(n);
    for h in handles {
        if let Ok(Some(c)) = h.await {
            held.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = procfs::tree_rss_kib(gw.child.id());
    let per = (now.saturating_sub(base)) as f64 * 1024.0 / held.len().max(1) as f64 / 1024.0;
    let total_mb = now as f64 / 1024.0;
    out.push(metric(
        &format!(
            "RSS per idle authenticated WS client ({} held of {n})",
            held.len()
        ),
        "KiB",
        vec![per],
        "≤ 8 KiB",
        Some(|x| x <= 8.0),
        true,
        &format!(
            "gateway total {total_mb:.1} MB (baseline {:.1} MB)",
            base as f64 / 1024.0
        ),
    ));
    if n >= 10_000 {
        out.push(metric(
            "gateway RSS with 10k idle clients",
            "MB",
            vec![total_mb],
            "< 100 MB",
            Some(|x| x < 100.0),
            true,
            "",
        ));
    }
    for c in held {
        c.close();
    }
    gw.stop();
}

/// Agent run overhead: client `agent` req sent → first `agent` assistant event received, minus
/// what the model server itself took (request fully read → first delta written, i.e. its
/// scripted first-token delay). The rest is the gateway's: request handling, run setup,
/// session/transcript work, the upstream HTTP request and SSE parsing, event fan-out.
async fn agent_overhead(sz: &Sizes, out: &mut Vec<Metric>) {
    use fake_model::{FakeModel, Reply, StreamSpec};
    use serde_json::json;
    const FIRST_TOKEN: Duration = Duration::from_millis(5);
    let fake = FakeModel::with_default(Reply::Stream(
        StreamSpec::text(&["Hello", " there."]).slow(FIRST_TOKEN, Duration::ZERO),
    ));
    let (gw, _) = Gw::start_with(&fake.provider_config("'fake-key'")).await;
    let o = opts(&gw.url(), &gw.token).scopes(&["operator.read", "operator.write"]);
    let mut client = match GatewayClient::connect(o).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: agent overhead: connect failed: {e}");
            gw.stop();
            return;
        }
    };
    let mut events = client.take_events();
    let (mut overhead, mut total, mut model) = (vec![], vec![], vec![]);
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Run 0 warms up (the gateway's HTTP connection to the model server); not recorded.
    for i in 0..=sz.agent_runs {
        if Instant::now() > deadline {
            break;
        }
        let key = format!("bench-agent-{i}");
        let params = json!({
            "message": "Say hello.",
            "idempotencyKey": key,
            // A fresh session each run: the request to the model stays the same size.
            "sessionKey": format!("agent:main:bench-{i}"),
        });
        let t0 = Instant::now();
        let call = client.call_expect_final("agent", Some(params), Duration::from_secs(20));
        let first = async {
            let end = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let e = tokio::time::timeout_at(end, events.recv()).await.ok()??;
                if e.event == "agent"
                    && e.payload["runId"] == key.as_str()
                    && e.payload["stream"] == "assistant"
                {
                    return Some(Instant::now());
                }
            }
        };
        let (res, first) = tokio::join!(call, first);
        let observed = fake.requests().get(i).cloned();
        match (
            res,
            first,
            observed.and_then(|o| Some((o.received, o.first_delta_sent?))),
        ) {
            (Ok(_), Some(t1), Some((rx, tx))) if i > 0 => {
                let client_side = t1 - t0;
                let server_side = tx - rx;
                total.push(ms(client_side));
                model.push(ms(server_side));
                overhead.push(ms(client_side.saturating_sub(server_side)));
            }
            (Ok(_), Some(_), Some(_)) => {}
            (Err(e), _, _) => failures.push(format!("run {i}: {e}")),
            (_, None, _) => failures.push(format!("run {i}: no assistant event within 20 s")),
            (_, _, None) => failures.push(format!("run {i}: the model server saw no first delta")),
        }
    }
    client.close();
    gw.stop();
    let median = |v: &[f64]| report::percentile(v, 50.0);
    let mut note = format!(
        "sequential runs, fresh session each; model server's first-token delay {} ms: client saw the first assistant event after {:.2} ms (median), the server took {:.2} ms of it",
        FIRST_TOKEN.as_millis(),
        median(&total),
        median(&model)
    );
    if let Some(first) = failures.first() {
        note += &format!("; {} failed runs, the first: {first}", failures.len());
    }
    out.push(metric(
        "agent run overhead: `agent` req → first assistant event, minus the model's own time",
        "ms",
        overhead,
        "≤ 1 ms",
        Some(|x| x <= 1.0),
        true,
        &note,
    ));
}

/// Wall time of CLI commands against a running gateway (local resolution from config).
async fn cli_wall(gw: &Gw, runs: usize, out: &mut Vec<Metric>) {
    for args in [
        &["gateway", "status"][..],
        &["health"][..],
        &["status"][..],
        &["gateway", "call", "status"][..],
        &["gateway", "probe"][..],
        &["logs", "--limit", "50"][..],
    ] {
        let mut v = Vec::new();
        let mut failed = None;
        for _ in 0..runs {
            let mut c = Command::new(bin());
            for (k, _) in std::env::vars() {
                if k.starts_with("OPENCLAW_") {
                    c.env_remove(k);
                }
            }
            let home = gw._home.path();
            c.env("HOME", home)
                .env("OPENCLAW_GATEWAY_PORT", gw.port.to_string())
                .env("OPENCLAW_LOG_DIR", home.join("logs"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let t = Instant::now();
            let o = c.output().expect("run cli");
            let took = t.elapsed();
            if o.status.success() || o.status.code() == Some(3) {
                v.push(ms(took));
            } else {
                failed = Some(
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
        let note = failed
            .map(|e| format!("some runs failed: {e}"))
            .unwrap_or_default();
        out.push(metric(
            &format!("`openclaw {}` wall time", args.join(" ")),
            "ms",
            v,
            "≤ 100 ms",
            Some(|x| x <= 100.0),
            true,
            &note,
        ));
    }
}

fn main() {
    let o = parse_args();
    let sz = Sizes::new(o.smoke);
    // Re-executed inside the systemd sandbox by the `restart` section: run only that.
    if let Some(sb) = sandbox::inside(restart::SCENARIO) {
        restart::inner(&sb, sz.restarts);
        return;
    }
    let (old, new) = procfs::raise_nofile();
    eprintln!(
        "bench: RLIMIT_NOFILE raised from {old} to {new} for the 10k-client case (the gateway inherits it)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = time_now();
    let want = |name: &str| o.only.as_deref().is_none_or(|w| name.contains(w));
    let mut out = Vec::new();
    rt.block_on(async {
        if let Some(url) = &o.url {
            let token = o.token.clone().unwrap_or_default();
            connect_latency(url, &token, sz.connects, &mut out).await;
            health_rps(url, &token, 1, &sz, o.pid, &mut out).await;
            health_rps(url, &token, 64, &sz, o.pid, &mut out).await;
            return;
        }
        if want("startup") {
            startup(&sz, &mut out).await;
        }
        if want("activation") {
            socket_activated(&sz, &mut out).await;
        }
        if want("rpc") || want("cli") {
            let (gw, _) = Gw::start().await;
            if want("rpc") {
                connect_latency(&gw.url(), &gw.token, sz.connects, &mut out).await;
                let pid = Some(gw.child.id());
                health_rps(&gw.url(), &gw.token, 1, &sz, pid, &mut out).await;
                health_rps(&gw.url(), &gw.token, 64, &sz, pid, &mut out).await;
            }
            if want("cli") {
                cli_wall(&gw, sz.cli_runs, &mut out).await;
            }
            gw.stop();
        }
        if want("agent") {
            agent_overhead(&sz, &mut out).await;
        }
        if want("idle") {
            for n in &sz.idle_clients {
                idle_clients(*n, &mut out).await;
            }
        }
    });
    // A scenario that breaks (not a missed target) is reported and fails the run at the end.
    let mut broken = Vec::new();
    if o.url.is_none() && want("restart") {
        let mut inner = vec!["--only".to_string(), "restart".to_string()];
        if o.smoke {
            inner.push("--smoke".into());
        }
        if let Some(b) = BIN_OVERRIDE.get() {
            inner.extend(["--bin".to_string(), b.display().to_string()]);
        }
        if let Err(report) = restart::run(sz.restarts, inner, &mut out) {
            eprintln!("bench: FAILED restart: {report}");
            broken.push("restart");
        }
    }
    let mode = if o.smoke { "smoke" } else { "full" };
    let target = o.url.clone().unwrap_or_else(|| match BIN_OVERRIDE.get() {
        Some(b) => format!("openclaw at {}", b.display()),
        None => format!("openclaw {} (this build)", openclaw::VERSION),
    });
    match report::write(&o.out, mode, &target, &out, &started) {
        Ok(md) => println!("{md}\nwritten to {}", o.out.display()),
        Err(e) => {
            eprintln!("bench: writing results to {}: {e}", o.out.display());
            std::process::exit(1);
        }
    }
    if !broken.is_empty() {
        eprintln!(
            "bench: scenario(s) failed (see above): {}",
            broken.join(", ")
        );
        std::process::exit(1);
    }
}

fn time_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("unix:{secs}")
}
