//! Shared helpers: a real gateway process on a free loopback port with a private HOME and log
//! dir, a raw WebSocket speaking frames as-is, a tiny HTTP/1.1 client, and waits with deadlines.
//!
//! Every helper a suite shares lives under `support/` (one file per concern: `agent` for the fake
//! model setup and operator sockets, `ops` for CLI runs against a gateway, `fake_model`,
//! `fake_systemctl`, `sandbox` for the private systemd user manager); a suite file holds tests
//! only. In-process `GatewayState`s come from the library's one fixture,
//! `openclaw::testing::StateFixture`.
#![allow(dead_code)]

pub mod agent;
pub mod fake_model;
pub mod fake_systemctl;
pub mod ops;
pub mod sandbox;

// The skip policy lives with the sandbox (which the benchmark harness includes too).
pub use sandbox::skip_or_fail;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_openclaw");

/// Default wait for anything the gateway should do promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// A random token for one test.
pub fn random_token() -> String {
    format!("tok-{}", uuid::Uuid::new_v4().simple())
}

/// A command for the binary with a private HOME/log dir and no inherited OPENCLAW_* vars.
pub fn command(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("OPENCLAW_")
            || k == "NOTIFY_SOCKET"
            || k.starts_with("LISTEN_")
            || k == "OPENAI_API_KEY"
        {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env("OPENCLAW_LOG_DIR", home.join("logs"))
        .env("NO_COLOR", "1");
    c
}

/// Builder for a gateway process.
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    /// Config file text (JSON5); `None` = no file.
    pub config: Option<String>,
    /// Extra args after `gateway run`.
    pub args: Vec<String>,
    /// Extra env.
    pub env: Vec<(String, String)>,
    /// Token written into the default config.
    pub token: String,
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        let token = random_token();
        GatewayBuilder {
            config: Some(format!(
                "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }} }} }}"
            )),
            args: vec!["--port".into(), "0".into()],
            env: Vec::new(),
            token,
        }
    }
}

impl GatewayBuilder {
    /// Replaces the config text.
    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(text.to_string());
        self
    }
    /// No config file.
    pub fn no_config(mut self) -> Self {
        self.config = None;
        self
    }
    /// Adds args.
    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }
    /// Replaces all args (no implicit `--port 0`).
    pub fn only_args(mut self, a: &[&str]) -> Self {
        self.args = a.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Adds an env var.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    fn prepare(&self) -> (tempfile::TempDir, Command) {
        self.prepare_in(tempfile::tempdir().expect("temp HOME"))
    }

    fn prepare_in(&self, home: tempfile::TempDir) -> (tempfile::TempDir, Command) {
        if let Some(cfg) = &self.config {
            let dir = home.path().join(".openclaw");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("openclaw.json"), cfg).unwrap();
        }
        let mut c = command(home.path());
        c.arg("gateway").arg("run").args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        (home, c)
    }

    /// Starts the gateway and waits until it logs `listening on ws://…` (or dies).
    pub fn start(self) -> Gateway {
        let (home, c) = self.prepare();
        Gateway::spawn(home, c, self.token)
    }

    /// Starts the gateway in an existing HOME (a restart: state dir and config are kept; the
    /// builder's config, if any, is written over the old one).
    pub fn start_in(self, home: tempfile::TempDir) -> Gateway {
        let (home, c) = self.prepare_in(home);
        Gateway::spawn(home, c, self.token)
    }

    /// Runs to exit (startup refusals), bounded by 20 s.
    pub fn run_to_exit(self) -> Finished {
        let (home, mut c) = self.prepare();
        run_to_exit(&mut c, home)
    }

    /// Like [`GatewayBuilder::run_to_exit`], after `arrange` has shaped the new HOME.
    pub fn run_to_exit_with(self, arrange: impl FnOnce(&Path)) -> Finished {
        let (home, mut c) = self.prepare();
        arrange(home.path());
        run_to_exit(&mut c, home)
    }
}

/// A finished process.
#[derive(Debug)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// The HOME it ran with.
    pub home: tempfile::TempDir,
}

/// Runs a command to completion with a 20 s bound.
pub fn run_to_exit(c: &mut Command, home: tempfile::TempDir) -> Finished {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openclaw");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stdout = String::new();
            let mut stderr = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return Finished {
                status,
                stdout,
                stderr,
                home,
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openclaw did not exit within 20s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running gateway process (killed on drop).
/// A spawned gateway that logged its listening line.
#[derive(Debug)]
pub struct Listening {
    /// The process.
    pub child: Child,
    /// The port from its `listening on ws://127.0.0.1:PORT` line.
    pub port: u16,
    /// Everything it wrote to stderr so far (kept up to date by a reader thread).
    pub stderr: Arc<Mutex<String>>,
    /// Its stderr lines after the listening line.
    pub lines: mpsc::Receiver<String>,
}

/// Spawns `c` (stdin/stdout null, stderr piped and collected) and waits up to 30 s for its
/// listening line; panics with its stderr when it exits first or never listens.
pub fn spawn_listening(mut c: Command) -> Listening {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openclaw gateway");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    let buf = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            buf.lock().unwrap().push_str(&line);
            buf.lock().unwrap().push('\n');
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                if let Some(i) = line.find("listening on ws://127.0.0.1:") {
                    let rest = &line[i + "listening on ws://127.0.0.1:".len()..];
                    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    break digits.parse::<u16>().expect("port in listening line");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(st) = child.try_wait().unwrap() {
                    panic!("gateway exited early ({st}):\n{}", stderr.lock().unwrap());
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!(
                        "gateway did not log a listening line within 30s:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = child.wait().unwrap();
                panic!("gateway exited early ({st}):\n{}", stderr.lock().unwrap());
            }
        }
    };
    Listening {
        child,
        port,
        stderr,
        lines: rx,
    }
}

#[derive(Debug)]
pub struct Gateway {
    child: Child,
    /// Listening port.
    pub port: u16,
    /// The token in its config.
    pub token: String,
    /// Private HOME.
    pub home: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
    lines: Mutex<mpsc::Receiver<String>>,
}

impl Gateway {
    /// Default builder.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// Spawns and waits for the listening line.
    pub fn spawn(home: tempfile::TempDir, c: Command, token: String) -> Gateway {
        let Listening {
            child,
            port,
            stderr,
            lines: rx,
        } = spawn_listening(c);
        Gateway {
            child,
            port,
            token,
            home,
            stderr,
            lines: Mutex::new(rx),
        }
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let rx = self.lines.lock().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The config path.
    pub fn config_path(&self) -> PathBuf {
        self.home.path().join(".openclaw").join("openclaw.json")
    }

    /// The JSONL log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.home.path().join("logs")
    }

    /// All file-log text.
    pub fn file_log(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(self.log_dir()) {
            for e in rd.flatten() {
                s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        s
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for exit (bounded).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait for the exit (bounded), and hand the HOME over for a restart.
    pub fn stop_keep_home(mut self) -> tempfile::TempDir {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(
            self.wait_exit(Duration::from_secs(20)).is_some(),
            "gateway did not exit within 20s after SIGTERM"
        );
        std::mem::replace(&mut self.home, tempfile::tempdir().expect("temp dir"))
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a raw socket received.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A JSON text frame.
    Json(Value),
    /// A close frame (code, reason); 1006 when the TCP connection dropped.
    Close(u16, String),
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket that sends and receives frames verbatim.
pub struct Raw {
    ws: Ws,
}

impl Raw {
    /// Connects to `url` with extra headers.
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Raw {
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("ws upgrade timed out")
            .expect("ws upgrade");
        Raw { ws }
    }

    /// Connects without extra headers.
    pub async fn connect(url: &str) -> Raw {
        Self::connect_with(url, &[]).await
    }

    /// Next frame (pings skipped); panics after [`WAIT`].
    pub async fn recv(&mut self) -> Frame {
        self.recv_within(WAIT)
            .await
            .expect("no frame within the deadline")
    }

    /// Next frame within `t`, `None` on timeout.
    pub async fn recv_within(&mut self, t: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            let m = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(m) => m,
            };
            return Some(match m {
                None | Some(Err(_)) => Frame::Close(1006, String::new()),
                Some(Ok(Message::Text(t))) => {
                    Frame::Json(serde_json::from_str(&t).expect("server sent JSON"))
                }
                Some(Ok(Message::Close(c))) => match c {
                    Some(c) => Frame::Close(u16::from(c.code), c.reason.to_string()),
                    None => Frame::Close(1005, String::new()),
                },
                Some(Ok(_)) => continue,
            });
        }
    }

    /// Next JSON frame (panics on close).
    pub async fn json(&mut self) -> Value {
        match self.recv().await {
            Frame::Json(v) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// Skips JSON frames until a close; returns (code, reason) and the frames skipped.
    pub async fn until_close(&mut self) -> ((u16, String), Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                Frame::Json(v) => seen.push(v),
                Frame::Close(c, r) => return ((c, r), seen),
            }
        }
    }

    /// Sends text.
    pub async fn send_text(&mut self, s: &str) {
        self.ws.send(Message::Text(s.into())).await.unwrap();
    }

    /// Starts the close handshake (code 1000).
    pub async fn close(&mut self) {
        use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
        let f = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.ws.send(Message::Close(Some(f))).await.unwrap();
    }

    /// Sends JSON.
    pub async fn send(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await
    }

    /// Reads the challenge and checks its shape.
    pub async fn challenge(&mut self) -> Value {
        let c = self.json().await;
        assert_eq!(c["type"], "event");
        assert_eq!(c["event"], "connect.challenge");
        assert!(c.get("seq").is_none(), "challenge carries no seq");
        assert_eq!(
            c["payload"]["capabilities"],
            json!(["model-catalog-snapshot"])
        );
        let nonce = c["payload"]["nonce"].as_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(nonce).is_ok(),
            "nonce is a uuid: {nonce}"
        );
        assert!(c["payload"]["ts"].as_u64().unwrap() > 1_600_000_000_000);
        c
    }

    /// Sends a request frame.
    pub async fn req(&mut self, id: &str, method: &str, params: Option<Value>) {
        let mut f = json!({"type": "req", "id": id, "method": method});
        if let Some(p) = params {
            f["params"] = p;
        }
        self.send(&f).await;
    }

    /// Waits for the response with `id` (events and other responses are collected).
    pub async fn res(&mut self, id: &str) -> Value {
        loop {
            let v = self.json().await;
            if v["type"] == "res" && v["id"] == id {
                return v;
            }
        }
    }
}

/// ConnectParams for a client (token optional).
pub fn connect_params(client_id: &str, mode: &str, token: Option<&str>, scopes: &[&str]) -> Value {
    let mut p = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": client_id, "version": "0.0.1", "platform": "linux", "mode": mode},
        "role": "operator",
        "scopes": scopes,
    });
    if let Some(t) = token {
        p["auth"] = json!({"token": t});
    }
    p
}

/// All operator scopes the transcripts request.
pub const ALL: &[&str] = &["operator.read", "operator.write", "operator.admin"];

/// Connects, completes the handshake and returns the socket, hello-ok payload and the first
/// event after it (the `health` event).
pub async fn hello(url: &str, params: Value, headers: &[(&str, &str)]) -> (Raw, Value, Value) {
    let mut raw = Raw::connect_with(url, headers).await;
    raw.challenge().await;
    raw.req("c1", "connect", Some(params)).await;
    let res = raw.json().await;
    assert_eq!(res["id"], "c1");
    assert_eq!(res["ok"], true, "connect failed: {res}");
    let first = raw.json().await;
    (raw, res["payload"].clone(), first)
}

/// A minimal HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl HttpResponse {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one HTTP/1.1 request (Connection: close) and reads the whole response.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Picks a free loopback port (bind to 0 and release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary under test, as a path.
pub fn bin() -> PathBuf {
    // OPENCLAW_TEST_BIN: run the service-manager scenarios against another build (e.g. a
    // release binary, for the restart figures in systemd_zdt).
    std::env::var_os("OPENCLAW_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BIN))
}
