//! Load scenarios against a real gateway process on loopback (issue 10), shared by the full
//! benchmark (`cargo bench --bench load [-- --smoke]`) and the CI-sized integration tests
//! (`tests/it/reliability_load.rs`). Every scenario is bounded in count and time and stops by
//! itself; clients connect only to 127.0.0.1 (spread over source addresses 127.0.0.2–.9 so
//! ephemeral ports never run out across phases).
#![allow(dead_code, unreachable_pub, missing_debug_implementations)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A gateway process with a private HOME, token auth, on a free loopback port.
pub struct LoadGateway {
    child: Child,
    /// Port.
    pub port: u16,
    /// Token.
    pub token: String,
    _home: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (children inherit it); returns the new soft.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|l| l.0)
        .unwrap_or(soft)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

impl LoadGateway {
    /// Starts `openclaw gateway run` with extra env; waits until `/healthz` answers (≤ 15 s).
    pub async fn start(bin: &str, env: &[(&str, &str)]) -> LoadGateway {
        let home = tempfile::tempdir().expect("tempdir");
        let token = format!("load-{}", std::process::id());
        let state = home.path().join(".openclaw");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("openclaw.json"),
            format!(
                "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }} }} }}"
            ),
        )
        .unwrap();
        let port = free_port();
        let mut c = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("OPENCLAW_") || k == "NOTIFY_SOCKET" || k.starts_with("LISTEN_") {
                c.env_remove(k);
            }
        }
        c.env("HOME", home.path())
            .env("OPENCLAW_LOG_DIR", home.path().join("logs"))
            .env("OPENCLAW_MAX_CONNECTIONS", "30000")
            // Thousands of clients connect at once from a few loopback addresses: budgets
            // sized for that (the flood scenario sets its own).
            .env("OPENCLAW_MAX_UNAUTH_CONNECTIONS", "30000")
            .env("OPENCLAW_MAX_UNAUTH_PER_PEER", "30000");
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .args(["gateway", "run", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gateway");
        let gw = LoadGateway {
            child,
            port,
            token,
            _home: home,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while http_get(port, "/healthz")
            .await
            .map(|s| s != 200)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "gateway did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gw
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Current RSS (KiB).
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS:")
    }
    /// Peak RSS since start (KiB).
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmHWM:")
    }
    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
    /// True while running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
    /// SIGTERM and wait (bounded).
    pub fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LoadGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` → status (Connection: close).
pub async fn http_get(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()
}

static NEXT_SRC: AtomicUsize = AtomicUsize::new(0);

/// A TCP connection to the gateway from one of 127.0.0.2–.9.
pub async fn tcp(port: u16, recv_buf: Option<u32>) -> std::io::Result<TcpStream> {
    let n = NEXT_SRC.fetch_add(1, Ordering::Relaxed);
    let src = Ipv4Addr::new(127, 0, 0, 2 + (n % 8) as u8);
    let sock = TcpSocket::new_v4()?;
    if let Some(b) = recv_buf {
        sock.set_recv_buffer_size(b)?;
    }
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    let s = sock
        .connect(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        .await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// A WebSocket client stream.
pub type Ws = WebSocketStream<TcpStream>;

fn small_config() -> WebSocketConfig {
    // 4 KiB read buffer: 10k idle clients in this process stay small.
    WebSocketConfig::default().read_buffer_size(4096)
}

/// Upgrades and reads the challenge (no connect).
pub async fn upgrade(port: u16, recv_buf: Option<u32>) -> Result<Ws, String> {
    let s = tcp(port, recv_buf).await.map_err(|e| format!("tcp: {e}"))?;
    let url = format!("ws://127.0.0.1:{port}/");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, s, Some(small_config()))
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) if t.contains("connect.challenge") => Ok(ws),
        other => Err(format!("no challenge: {other:?}")),
    }
}

/// Upgrade + connect (cli/cli, read scope) + hello-ok.
pub async fn authed(port: u16, token: &str, recv_buf: Option<u32>) -> Result<Ws, String> {
    let mut ws = upgrade(port, recv_buf).await?;
    let req = json!({"type":"req","id":"c1","method":"connect","params":{
        "minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"load","platform":"linux","mode":"cli"},
        "role":"operator","scopes":["operator.read"],"auth":{"token":token}}});
    ws.send(Message::Text(req.to_string().into()))
        .await
        .map_err(|e| format!("send connect: {e}"))?;
    // A total deadline, not one per frame: frames that keep coming must not extend it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                if v["id"] == "c1" {
                    return if v["ok"] == true {
                        Ok(ws)
                    } else {
                        Err(format!("connect refused: {v}"))
                    };
                }
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("no hello-ok: {other:?}")),
        }
    }
}

/// Percentile of unsorted samples.
pub fn pct(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Result of [`hold`].
#[derive(Debug, Clone, Default)]
pub struct HoldReport {
    /// Clients attempted.
    pub clients: usize,
    /// Clients connected and still connected at the end, having seen ticks throughout.
    pub held: usize,
    /// Connect failures, early closes, or clients that missed ticks.
    pub errors: usize,
    /// Connect (upgrade → hello-ok) latency.
    pub connect_p50_ms: f64,
    /// p99 of the same.
    pub connect_p99_ms: f64,
    /// Fewest ticks one client saw while held.
    pub min_ticks: u64,
    /// Ticks a client should see while held (hold / tick interval).
    pub expected_ticks: u64,
    /// Tick delivery lag (tick ts → receipt), p99 over all ticks.
    pub tick_lag_p99_ms: f64,
    /// Gateway RSS while all were held (KiB) and its peak.
    pub rss_held_kib: u64,
    /// Peak RSS (VmHWM).
    pub peak_rss_kib: u64,
    /// RSS before the clients connected.
    pub rss_idle_kib: u64,
    /// First error seen (for the report).
    pub first_error: Option<String>,
}

/// `n` authenticated clients held for `hold` while the gateway ticks every `tick_ms`.
pub async fn hold(gw: &LoadGateway, n: usize, hold: Duration, tick_ms: u64) -> HoldReport {
    let rss_idle = gw.rss_kib();
    let connect_lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let lags = Arc::new(std::sync::Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let connected = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let min_ticks = Arc::new(AtomicU64::new(u64::MAX));
    let ramp_deadline = Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::with_capacity(n);
    // Everyone holds until the same instant: ramp end + hold.
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<tokio::time::Instant>);
    for _ in 0..n {
        let (port, token) = (gw.port, gw.token.clone());
        let (lat, lags, errors, first_error, connected, all_in, gate, min_ticks) = (
            connect_lat.clone(),
            lags.clone(),
            errors.clone(),
            first_error.clone(),
            connected.clone(),
            all_in.clone(),
            gate.clone(),
            min_ticks.clone(),
        );
        let mut start_rx = start_rx.clone();
        tasks.push(tokio::spawn(async move {
            let fail = |e: String| {
                errors.fetch_add(1, Ordering::Relaxed);
                first_error.lock().unwrap().get_or_insert(e);
            };
            let permit = gate.acquire().await.unwrap();
            let t0 = Instant::now();
            let mut ws = match authed(port, &token, None).await {
                Ok(ws) => ws,
                Err(e) => {
                    drop(permit);
                    fail(e);
                    if connected.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        all_in.notify_one();
                    }
                    return false;
                }
            };
            lat.lock().unwrap().push(ms(t0.elapsed()));
            drop(permit);
            if connected.fetch_add(1, Ordering::Relaxed) + 1 == n {
                all_in.notify_one();
            }
            // Wait for the common hold window, reading (ticks) meanwhile.
            let until = loop {
                if let Some(t) = *start_rx.borrow() {
                    break t;
                }
                tokio::select! {
                    _ = start_rx.changed() => {}
                    m = ws.next() => if !matches!(m, Some(Ok(_))) { fail("closed during ramp".into()); return false; },
                }
            };
            let begin = tokio::time::Instant::now();
            let mut ticks = 0u64;
            let mut my_lags = Vec::new();
            loop {
                let m = tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    m = ws.next() => m,
                };
                match m {
                    Some(Ok(Message::Text(t))) => {
                        if t.contains("\"event\":\"tick\"") && begin.elapsed() > Duration::ZERO {
                            ticks += 1;
                            if let Ok(v) = serde_json::from_str::<Value>(&t) {
                                if let Some(ts) = v["payload"]["ts"].as_u64() {
                                    let now = std::time::SystemTime::now()
                                        .duration_since(std::time::UNIX_EPOCH)
                                        .unwrap()
                                        .as_millis() as u64;
                                    my_lags.push(now.saturating_sub(ts) as f64);
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    other => {
                        fail(format!("closed while held: {other:?}"));
                        return false;
                    }
                }
            }
            lags.lock().unwrap().extend(my_lags);
            min_ticks.fetch_min(ticks, Ordering::Relaxed);
            let expected = (until - begin).as_millis() as u64 / tick_ms;
            let _ = ws.close(None).await;
            if ticks + 2 < expected {
                fail(format!("saw {ticks} ticks, expected ~{expected}"));
                return false;
            }
            true
        }));
    }
    tokio::select! {
        _ = all_in.notified() => {}
        _ = tokio::time::sleep_until(ramp_deadline.into()) => {}
    }
    let until = tokio::time::Instant::now() + hold;
    let _ = start_tx.send(Some(until));
    // Sample RSS mid-hold.
    tokio::time::sleep(hold / 2).await;
    let rss_held = gw.rss_kib();
    let mut held = 0;
    for t in tasks {
        if let Ok(true) = tokio::time::timeout(hold + Duration::from_secs(30), t)
            .await
            .unwrap_or(Ok(false))
        {
            held += 1;
        }
    }
    let mut lat = connect_lat.lock().unwrap().clone();
    let mut lags = lags.lock().unwrap().clone();
    HoldReport {
        clients: n,
        held,
        errors: errors.load(Ordering::Relaxed),
        connect_p50_ms: pct(&mut lat, 0.5),
        connect_p99_ms: pct(&mut lat, 0.99),
        min_ticks: min_ticks.load(Ordering::Relaxed).min(u64::MAX - 1),
        expected_ticks: hold.as_millis() as u64 / tick_ms,
        tick_lag_p99_ms: pct(&mut lags, 0.99),
        rss_held_kib: rss_held,
        peak_rss_kib: gw.peak_rss_kib(),
        rss_idle_kib: rss_idle,
        first_error: first_error.lock().unwrap().clone(),
    }
}

/// Result of [`storm`].
#[derive(Debug, Clone, Default)]
pub struct StormReport {
    /// Connections opened (upgraded, challenge read).
    pub opened: usize,
    /// Closed by the gateway with 1000 at the pre-auth timeout.
    pub closed_1000: usize,
    /// Anything else (other close codes, failures to open, never closed).
    pub errors: usize,
    /// Open → close, p50/p99 (should be ≈ the handshake timeout).
    pub close_after_p50_ms: f64,
    /// p99 of the same.
    pub close_after_p99_ms: f64,
    /// RSS before / at peak / after all closed (KiB), fds before / after.
    pub rss_before_kib: u64,
    /// Peak during the storm (sampled).
    pub rss_peak_kib: u64,
    /// After every connection closed and a settle period.
    pub rss_after_kib: u64,
    /// fds before.
    pub fds_before: usize,
    /// fds after.
    pub fds_after: usize,
    /// First error.
    pub first_error: Option<String>,
}

/// Opens `rate` connections per second for `secs` seconds; none sends `connect`. Each must be
/// closed by the gateway (1000) at the pre-auth timeout.
pub async fn storm(gw: &LoadGateway, rate: usize, secs: u64, handshake_ms: u64) -> StormReport {
    let rss_before = gw.rss_kib();
    let fds_before = gw.fds();
    let closes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let closed_1000 = Arc::new(AtomicUsize::new(0));
    let opened = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    let mut iv = tokio::time::interval(Duration::from_micros(1_000_000 / rate as u64));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut peak = rss_before;
    let total = rate * secs as usize;
    for i in 0..total {
        iv.tick().await;
        if i % (rate / 10).max(1) == 0 {
            peak = peak.max(gw.rss_kib());
        }
        let port = gw.port;
        let (closes, errors, closed_1000, opened, first_error) = (
            closes.clone(),
            errors.clone(),
            closed_1000.clone(),
            opened.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let fail = |e: String| {
                errors.fetch_add(1, Ordering::Relaxed);
                first_error.lock().unwrap().get_or_insert(e);
            };
            let t0 = Instant::now();
            let mut ws = match upgrade(port, None).await {
                Ok(ws) => ws,
                Err(e) => return fail(e),
            };
            opened.fetch_add(1, Ordering::Relaxed);
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(handshake_ms * 3 + 5000);
            loop {
                match tokio::time::timeout_at(deadline, ws.next()).await {
                    Ok(Some(Ok(Message::Close(Some(c))))) if u16::from(c.code) == 1000 => {
                        closed_1000.fetch_add(1, Ordering::Relaxed);
                        closes.lock().unwrap().push(ms(t0.elapsed()));
                        return;
                    }
                    Ok(Some(Ok(Message::Close(c)))) => return fail(format!("closed {c:?}")),
                    Ok(Some(Ok(_))) => continue,
                    Ok(other) => return fail(format!("ended without close: {other:?}")),
                    Err(_) => return fail("not closed by the gateway".into()),
                }
            }
        }));
    }
    // Each task ends by its own deadline; this one bounds the wait for all of them.
    let deadline = Instant::now() + Duration::from_millis(handshake_ms * 3 + 15_000);
    while !tasks.iter().all(|t| t.is_finished()) && Instant::now() < deadline {
        peak = peak.max(gw.rss_kib());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        // Past the deadline: a task still waiting is a failure, not something to wait on.
        if !t.is_finished() {
            t.abort();
            errors.fetch_add(1, Ordering::Relaxed);
        }
        let _ = t.await;
    }
    // fds are released when the gateway's session tasks end (after the close grace).
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.fds() > fds_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The gateway hands freed memory back a few seconds after a burst ends (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(6);
    while gw.rss_kib() > rss_before + rss_before / 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut closes = closes.lock().unwrap().clone();
    StormReport {
        opened: opened.load(Ordering::Relaxed),
        closed_1000: closed_1000.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        close_after_p50_ms: pct(&mut closes, 0.5),
        close_after_p99_ms: pct(&mut closes, 0.99),
        rss_before_kib: rss_before,
        rss_peak_kib: peak.max(gw.rss_kib()),
        rss_after_kib: gw.rss_kib(),
        fds_before,
        fds_after: gw.fds(),
        first_error: first_error.lock().unwrap().clone(),
    }
}

/// Result of [`rpc_flood`].
#[derive(Debug, Clone, Default)]
pub struct RpcReport {
    /// Clients.
    pub clients: usize,
    /// Successful calls.
    pub calls: u64,
    /// Failed calls or clients.
    pub errors: u64,
    /// Calls per second over the window.
    pub rps: f64,
    /// Latency p50/p99 (ms).
    pub p50_ms: f64,
    /// p99.
    pub p99_ms: f64,
}

/// `clients` sockets each calling `method` back-to-back for `window`.
pub async fn rpc_flood(
    gw: &LoadGateway,
    clients: usize,
    window: Duration,
    method: &str,
) -> RpcReport {
    let mut tasks = Vec::new();
    let start = Instant::now() + Duration::from_millis(200);
    for _ in 0..clients {
        let (port, token, method) = (gw.port, gw.token.clone(), method.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut ws = match authed(port, &token, None).await {
                Ok(ws) => ws,
                Err(_) => return (lat, 1u64),
            };
            tokio::time::sleep_until(start.into()).await;
            let end = start + window;
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let id = format!("h{n}");
                let t0 = Instant::now();
                let req = json!({"type":"req","id":id,"method":method});
                if ws
                    .send(Message::Text(req.to_string().into()))
                    .await
                    .is_err()
                {
                    errors += 1;
                    break;
                }
                // Total deadline per call: ticks arriving meanwhile do not extend it.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                loop {
                    match tokio::time::timeout_at(deadline, ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            if !t.contains("\"type\":\"res\"") {
                                continue;
                            }
                            let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                            if v["id"] != id.as_str() {
                                continue;
                            }
                            if v["ok"] == true {
                                lat.push(ms(t0.elapsed()));
                            } else {
                                errors += 1;
                            }
                            break;
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => {
                            errors += 1;
                            return (lat, errors);
                        }
                    }
                }
            }
            let _ = ws.close(None).await;
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let calls = all.len() as u64;
    RpcReport {
        clients,
        calls,
        errors,
        rps: calls as f64 / window.as_secs_f64(),
        p50_ms: pct(&mut all, 0.5),
        p99_ms: pct(&mut all, 0.99),
    }
}

/// Result of [`slow_consumer`].
#[derive(Debug, Clone, Default)]
pub struct SlowReport {
    /// How the slow socket was closed (code, reason); 1006 = dropped without a close frame.
    pub close: (u16, String),
    /// Requests the slow client wrote before the gateway stopped it.
    pub requests_sent: u64,
    /// Responses it got when it finally read.
    pub responses_read: u64,
    /// Gateway RSS at the end (KiB) and peak.
    pub peak_rss_kib: u64,
    /// The well-behaved clients meanwhile.
    pub others: RpcReport,
    /// Ticks seen by a well-behaved listener during the run.
    pub others_ticks: u64,
}

/// A client that never reads (4 KiB receive buffer) floods `health` requests; the gateway must
/// close it with 1008 `slow consumer` while `others` clients keep calling normally.
pub async fn slow_consumer(gw: &LoadGateway, others: usize, window: Duration) -> SlowReport {
    let (port, token) = (gw.port, gw.token.clone());
    let mut slow = authed(port, &token, Some(4096))
        .await
        .expect("slow client connects");
    let listener = {
        let token = token.clone();
        tokio::spawn(async move {
            let mut ws = authed(port, &token, None).await.expect("listener connects");
            let end = Instant::now() + window + Duration::from_millis(400);
            let mut ticks = 0;
            while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end.into(), ws.next()).await {
                if let Message::Text(t) = m
                    && t.contains("\"event\":\"tick\"")
                {
                    ticks += 1;
                }
            }
            ticks
        })
    };
    let flood = tokio::spawn({
        async move {
            let mut sent = 0u64;
            let end = Instant::now() + window;
            // Write-only: the gateway's responses pile up until it gives up on us. Sending on
            // after the gateway closed us would only earn a reset that discards its close frame.
            while Instant::now() < end && sent < 200_000 {
                let req = json!({"type":"req","id":format!("s{sent}"),"method":"health"});
                match tokio::time::timeout(
                    Duration::from_millis(500),
                    slow.send(Message::Text(req.to_string().into())),
                )
                .await
                {
                    Ok(Ok(())) => sent += 1,
                    Ok(Err(_)) => break,
                    Err(_) => break, // our own send buffer is full: the gateway stopped reading
                }
            }
            // Now read everything: responses, then the close. One total deadline (ticks keep
            // arriving every few ms, so a per-frame timeout would never fire if the close
            // never came) and a frame bound.
            let mut read = 0u64;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut frames = 0u64;
            let close = loop {
                frames += 1;
                if frames > 10_000_000 {
                    break (0, "no close within 10,000,000 frames".into());
                }
                match tokio::time::timeout_at(deadline, slow.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => read += 1,
                    Ok(Some(Ok(Message::Close(Some(c))))) => {
                        break (u16::from(c.code), c.reason.to_string());
                    }
                    Ok(Some(Ok(Message::Close(None)))) => break (1005, String::new()),
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(_))) | Ok(None) => break (1006, String::new()),
                    Err(_) => break (0, "no close within 10 s".into()),
                }
            };
            (close, sent, read)
        }
    });
    let others_report = rpc_flood(gw, others, window, "health").await;
    let (close, sent, read) = flood.await.unwrap();
    SlowReport {
        close,
        requests_sent: sent,
        responses_read: read,
        peak_rss_kib: gw.peak_rss_kib(),
        others: others_report,
        others_ticks: listener.await.unwrap_or(0),
    }
}

/// Result of [`slowloris`].
#[derive(Debug, Clone, Default)]
pub struct SlowlorisReport {
    /// Slow connections opened.
    pub conns: usize,
    /// Closed by the gateway (EOF/reset) before the bound.
    pub closed_by_server: usize,
    /// Longest a slow connection was held open (ms).
    pub max_hold_ms: f64,
    /// Normal `/healthz` requests meanwhile that succeeded / failed.
    pub normal_ok: u64,
    /// Failed ones.
    pub normal_errors: u64,
    /// p99 latency of the normal requests (ms).
    pub normal_p99_ms: f64,
}

/// `n` connections each send a request head one byte every 200 ms and never finish it; the
/// gateway must drop each at its header-read deadline while normal requests keep working.
pub async fn slowloris(gw: &LoadGateway, n: usize, header_timeout: Duration) -> SlowlorisReport {
    let bound = header_timeout * 3 + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let port = gw.port;
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = tcp(port, None).await else {
                return None;
            };
            let t0 = Instant::now();
            let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            if s.write_all(head).await.is_err() {
                return None;
            }
            let mut buf = [0u8; 64];
            loop {
                if t0.elapsed() > bound {
                    return Some((false, ms(t0.elapsed())));
                }
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => return Some((true, ms(t0.elapsed()))),
                        Ok(_) => continue, // e.g. a 408; keep reading to EOF
                    },
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if s.write_all(b"a").await.is_err() {
                            return Some((true, ms(t0.elapsed())));
                        }
                    }
                }
            }
        }));
    }
    // Normal traffic while the slow ones hang.
    let mut lat = Vec::new();
    let mut normal_errors = 0;
    let end = Instant::now() + header_timeout * 2;
    while Instant::now() < end {
        let t0 = Instant::now();
        match http_get(gw.port, "/healthz").await {
            Some(200) => lat.push(ms(t0.elapsed())),
            _ => normal_errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut closed = 0;
    let mut max_hold: f64 = 0.0;
    for t in tasks {
        if let Ok(Some((by_server, held))) = t.await {
            if by_server {
                closed += 1;
            }
            max_hold = max_hold.max(held);
        }
    }
    SlowlorisReport {
        conns: n,
        closed_by_server: closed,
        max_hold_ms: max_hold,
        normal_ok: lat.len() as u64,
        normal_errors,
        normal_p99_ms: pct(&mut lat, 0.99),
    }
}

/// Writes `text` to `path` (creating the directory).
pub fn write_file(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    std::fs::write(path, text).unwrap_or_else(|e| eprintln!("writing {}: {e}", path.display()));
}

/// Result of [`peer_flood`].
#[derive(Debug, Clone, Default)]
pub struct PeerFloodReport {
    /// Sockets the flooder kept trying to hold.
    pub sockets: usize,
    /// Connections it opened in all (each refused or closed one is re-opened).
    pub opened: u64,
    /// Of those, answered 503 by admission.
    pub refused_503: u64,
    /// Legitimate `/healthz` requests (from 127.0.0.1) that got 200 / anything else.
    pub legit_ok: u64,
    /// Failed ones.
    pub legit_errors: u64,
    /// Latency of the legitimate requests (ms).
    pub legit_p50_ms: f64,
    /// p99 of the same.
    pub legit_p99_ms: f64,
    /// Gateway RSS before and at its peak (KiB).
    pub rss_before_kib: u64,
    /// Peak RSS.
    pub rss_peak_kib: u64,
}

/// One peer (source address 127.0.0.2) tries to hold `sockets` unauthenticated connections
/// for `window`, each sending a request head it never finishes and re-opened as soon as it is
/// refused or dropped, while a legitimate client on 127.0.0.1 calls `/healthz` every 50 ms.
pub async fn peer_flood(gw: &LoadGateway, sockets: usize, window: Duration) -> PeerFloodReport {
    let rss_before = gw.rss_kib();
    let end = Instant::now() + window;
    let opened = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..sockets {
        let (port, opened, refused) = (gw.port, opened.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let s = async {
                    let sock = TcpSocket::new_v4()?;
                    sock.bind(SocketAddr::from(([127, 0, 0, 2], 0)))?;
                    sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
                };
                let Ok(Ok(mut s)) = tokio::time::timeout_at(end.into(), s).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                let _ = s
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .await;
                let mut buf = [0u8; 16];
                match tokio::time::timeout_at(end.into(), s.read(&mut buf)).await {
                    Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 503") => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
    }
    let mut lat = Vec::new();
    let mut legit_errors = 0;
    while Instant::now() < end {
        let t0 = Instant::now();
        match http_get(gw.port, "/healthz").await {
            Some(200) => lat.push(ms(t0.elapsed())),
            _ => legit_errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    PeerFloodReport {
        sockets,
        opened: opened.load(Ordering::Relaxed),
        refused_503: refused.load(Ordering::Relaxed),
        legit_ok: lat.len() as u64,
        legit_errors,
        legit_p50_ms: pct(&mut lat, 0.50),
        legit_p99_ms: pct(&mut lat, 0.99),
        rss_before_kib: rss_before,
        rss_peak_kib: gw.peak_rss_kib(),
    }
}

/// Result of [`unfinished_heads`].
#[derive(Debug, Clone, Default)]
pub struct HeadsReport {
    /// Connections holding an unfinished head.
    pub conns: usize,
    /// Head bytes each sent (just under the 32 KiB head limit).
    pub head_bytes: usize,
    /// Gateway RSS before and while they are held (KiB).
    pub rss_before_kib: u64,
    /// RSS while held.
    pub rss_held_kib: u64,
    /// (held − before) / conns, in bytes.
    pub bytes_per_conn: u64,
}

/// `n` unauthenticated connections (spread over 127.0.0.2–.9) each send `head_bytes` of a
/// request head and stop; the gateway's RSS growth per connection is what one costs while it
/// waits for the header deadline.
pub async fn unfinished_heads(gw: &LoadGateway, n: usize, head_bytes: usize) -> HeadsReport {
    let rss_before = gw.rss_kib();
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    head.resize(head_bytes, b'a');
    let head = Arc::new(head);
    let mut held = Vec::new();
    for _ in 0..n {
        if let Ok(mut s) = tcp(gw.port, None).await
            && s.write_all(&head).await.is_ok()
        {
            held.push(s);
        }
    }
    // Let the gateway read what was sent (bounded): RSS stops growing.
    let mut rss_held = gw.rss_kib();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = gw.rss_kib();
        if now <= rss_held {
            break;
        }
        rss_held = now;
    }
    let conns = held.len();
    drop(held);
    HeadsReport {
        conns,
        head_bytes,
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        bytes_per_conn: (rss_held.saturating_sub(rss_before) * 1024) / conns.max(1) as u64,
    }
}

/// Gateway RSS around one memory-heavy event (KiB): before it, right after it, and once it
/// settled (the gateway trims within about a second of a large free; polled, bounded).
#[derive(Debug, Clone, Default)]
pub struct MemoryReport {
    /// Before.
    pub rss_before_kib: u64,
    /// Right after the event ended (responses read, socket closed).
    pub rss_after_kib: u64,
    /// After waiting (at most `settle_limit`) for RSS to come back near `rss_before_kib`.
    pub rss_settled_kib: u64,
    /// How long that took (ms); the whole bound when it never came back.
    pub settle_ms: f64,
    /// What the event did (for the report), e.g. the HTTP statuses or the close.
    pub detail: String,
}

/// Polls RSS until it is within max(before/4, 2 MiB) of `before`, at most `limit`.
async fn settle(gw: &LoadGateway, before: u64, limit: Duration) -> (u64, f64) {
    let t0 = Instant::now();
    let near = before + (before / 4).max(2048);
    loop {
        let rss = gw.rss_kib();
        if rss <= near || t0.elapsed() >= limit {
            return (rss, ms(t0.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` concurrent authenticated `POST /tools/invoke` with a body of `bytes` each (just under
/// the 2 MiB cap: parsed in full, then answered 404 "Tool not available").
pub async fn large_requests(gw: &LoadGateway, n: usize, bytes: usize) -> MemoryReport {
    let rss_before = gw.rss_kib();
    let pad = "a".repeat(bytes.saturating_sub(64));
    let body = Arc::new(json!({"tool": "none", "args": {"pad": pad}}).to_string());
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (port, token, body) = (gw.port, gw.token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            let head = format!(
                "POST /tools/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let io = async {
                s.write_all(head.as_bytes()).await?;
                s.write_all(body.as_bytes()).await?;
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await?;
                Ok::<_, std::io::Error>(buf)
            };
            let buf = tokio::time::timeout(Duration::from_secs(30), io)
                .await
                .ok()?
                .ok()?;
            std::str::from_utf8(buf.get(9..12)?)
                .ok()?
                .parse::<u16>()
                .ok()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.ok().flatten().unwrap_or(0));
    }
    let rss_after = gw.rss_kib();
    let (rss_settled, settle_ms) = settle(gw, rss_before, Duration::from_secs(5)).await;
    statuses.sort_unstable();
    statuses.dedup();
    MemoryReport {
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_settled_kib: rss_settled,
        settle_ms,
        detail: format!("{n} × {bytes} B bodies, statuses {statuses:?}"),
    }
}

/// One [`slow_consumer`] run (no other clients), with RSS around it: the backlog the gateway
/// held for the slow client must be handed back after its 1008 close.
pub async fn slow_backlog(gw: &LoadGateway, window: Duration) -> MemoryReport {
    let rss_before = gw.rss_kib();
    let r = slow_consumer(gw, 1, window).await;
    let rss_after = gw.rss_kib();
    let (rss_settled, settle_ms) = settle(gw, rss_before, Duration::from_secs(5)).await;
    MemoryReport {
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_settled_kib: rss_settled,
        settle_ms,
        detail: format!(
            "closed {:?} after {} requests, peak RSS {} KiB",
            r.close, r.requests_sent, r.peak_rss_kib
        ),
    }
}
