//! Authentication and admission audit: constant-time secret comparison (proved by use, not by
//! timing), failed-attempt rate limiting on WebSocket and HTTP with `retryAfterMs` /
//! `Retry-After`, non-loopback binds refused without auth, browser `Origin` checks, and size
//! limits on HTTP bodies and pre-auth WebSocket frames.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use openclaw::gateway::auth::{self, Mode, ResolvedAuth, Verdict};
use serde_json::{Value, json};

use crate::support::{self, Gateway, Raw, WAIT, connect_params, hello, http};

fn auth_with(mode: Mode, secret: &str) -> ResolvedAuth {
    ResolvedAuth {
        mode,
        token: (mode == Mode::Token).then(|| secret.to_string()),
        password: (mode == Mode::Password).then(|| secret.to_string()),
        rate_limit: Default::default(),
    }
}

/// Every credential check goes through `auth::ct_eq` (the thread-local call counter moves by
/// exactly one per check, for right and wrong, token and password, WS and HTTP bearer).
#[test]
fn every_secret_comparison_is_constant_time() {
    for mode in [Mode::Token, Mode::Password] {
        let a = auth_with(mode, "right-secret");
        let checks: Vec<(&str, Box<dyn Fn() -> bool>)> = vec![
            (
                "ws token right",
                Box::new(|| matches!(a.verify(Some("right-secret"), None), Verdict::Ok { .. })),
            ),
            (
                "ws token wrong",
                Box::new(|| matches!(a.verify(Some("wrong"), None), Verdict::Ok { .. })),
            ),
            (
                "ws password right",
                Box::new(|| matches!(a.verify(None, Some("right-secret")), Verdict::Ok { .. })),
            ),
            (
                "ws password wrong",
                Box::new(|| matches!(a.verify(None, Some("right-secre")), Verdict::Ok { .. })),
            ),
            (
                "bearer right",
                Box::new(|| a.verify_bearer(Some("right-secret"))),
            ),
            (
                "bearer wrong",
                Box::new(|| a.verify_bearer(Some("right-secreu"))),
            ),
        ];
        for (what, check) in checks {
            let before = auth::ct_eq_calls();
            let ok = check();
            assert_eq!(
                auth::ct_eq_calls(),
                before + 1,
                "{mode:?} {what}: not compared with ct_eq"
            );
            assert_eq!(ok, what.ends_with("right"), "{mode:?} {what}");
        }
    }
}

/// No code path compares a secret with `==`/`!=` or reads an `Authorization` header without
/// the bearer check (a source audit: new endpoints cannot bypass `verify_bearer`).
#[test]
fn no_secret_is_compared_outside_ct_eq() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut files = 0;
    let suspicious = [
        "token ==",
        "== token",
        "token !=",
        "!= token",
        "password ==",
        "== password",
        "password !=",
        "!= password",
        "bearer ==",
        "== bearer",
        "expected ==",
        "== expected",
        "secret ==",
        "== secret",
        ".eq(token",
        ".eq(password",
        ".eq(bearer",
    ];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&p).unwrap();
            // Only non-test code: stop at the unit-test module.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (i, line) in code.lines().enumerate() {
                let l = line.to_ascii_lowercase();
                if l.trim_start().starts_with("//") {
                    continue;
                }
                for pat in suspicious {
                    assert!(
                        !l.contains(pat),
                        "{}:{}: secret compared without ct_eq: {}",
                        p.display(),
                        i + 1,
                        line.trim()
                    );
                }
            }
            if code.contains("header::AUTHORIZATION") || code.contains("get(\"authorization\")") {
                assert!(
                    code.contains("verify_bearer") || code.contains("check_bearer"),
                    "{} reads Authorization without verify_bearer/check_bearer",
                    p.display()
                );
            }
        }
    }
    assert!(files > 20, "walked the source tree ({files} files)");
}

fn limited_gateway(max_attempts: u32, lockout_ms: u64) -> Gateway {
    let b = Gateway::builder();
    let token = b.token.clone();
    b.config(&format!(
        "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}',
             rateLimit: {{ maxAttempts: {max_attempts}, windowMs: 60000, lockoutMs: {lockout_ms}, exemptLoopback: false }} }} }} }}"
    ))
    .start()
}

async fn connect_once(url: &str, token: &str) -> (Value, (u16, String)) {
    let mut raw = Raw::connect(url).await;
    raw.challenge().await;
    raw.req(
        "c1",
        "connect",
        Some(connect_params("cli", "cli", Some(token), &[])),
    )
    .await;
    let res = raw.json().await;
    if res["ok"] == true {
        return (res, (0, String::new()));
    }
    let ((code, reason), _) = raw.until_close().await;
    (res, (code, reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_auth_failures_lock_out_with_retry_after() {
    let gw = limited_gateway(3, 60_000);
    for i in 0..3 {
        let (res, (code, _)) = connect_once(&gw.url(), "wrong").await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "attempt {i}"
        );
        assert_eq!(code, 1008);
    }
    // Locked out now, even with the right token.
    let (res, (code, reason)) = connect_once(&gw.url(), &gw.token).await;
    let e = &res["error"];
    assert_eq!(e["code"], "INVALID_REQUEST");
    assert_eq!(
        e["message"],
        "unauthorized: too many failed authentication attempts (retry later)"
    );
    assert_eq!(e["details"]["code"], "AUTH_RATE_LIMITED");
    assert_eq!(e["details"]["recommendedNextStep"], "wait_then_retry");
    assert_eq!(e["retryable"], true);
    let wait = e["retryAfterMs"].as_u64().expect("retryAfterMs");
    assert!(wait > 0 && wait <= 60_000, "retryAfterMs {wait}");
    assert_eq!(
        (code, reason.as_str()),
        (1008, e["message"].as_str().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_expires_and_http_bearer_failures_count_too() {
    // Short lockout so expiry is observable; HTTP and WS share the limiter.
    let gw = limited_gateway(2, 1500);
    let bad = [
        ("authorization", "Bearer nope"),
        ("content-type", "application/json"),
    ];
    assert_eq!(
        http(gw.port, "POST", "/tools/invoke", &bad, "{}").status,
        401
    );
    assert_eq!(
        http(gw.port, "POST", "/tools/invoke", &bad, "{}").status,
        401
    );
    let good_auth = format!("Bearer {}", gw.token);
    let good = [
        ("authorization", good_auth.as_str()),
        ("content-type", "application/json"),
    ];
    let r = http(gw.port, "POST", "/tools/invoke", &good, "{\"tool\":\"x\"}");
    assert_eq!(r.status, 429, "{}", r.body);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.json()["error"]["type"], "rate_limited");
    // The WebSocket side sees the same lockout.
    let (res, _) = connect_once(&gw.url(), &gw.token).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_RATE_LIMITED");
    // After the lockout the right credentials work again (poll: expiry is a deadline, no event).
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http(gw.port, "POST", "/tools/invoke", &good, "{\"tool\":\"x\"}");
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 429);
        assert!(Instant::now() < deadline, "lockout never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (res, _) = connect_once(&gw.url(), &gw.token).await;
    assert_eq!(res["ok"], true, "{res}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_exempt_by_default() {
    let gw = Gateway::builder().start();
    for _ in 0..12 {
        let (res, _) = connect_once(&gw.url(), "wrong").await;
        assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    let (res, _) = connect_once(&gw.url(), &gw.token).await;
    assert_eq!(res["ok"], true, "{res}");
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn non_loopback_binds_without_auth_are_refused_before_listening() {
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "lan, --auth none",
            "{ gateway: { mode: 'local' } }",
            vec!["--bind", "lan", "--auth", "none"],
        ),
        (
            "lan, no token anywhere",
            "{ gateway: { mode: 'local' } }",
            vec!["--bind", "lan"],
        ),
        (
            "config bind lan + auth none",
            "{ gateway: { mode: 'local', bind: 'lan', auth: { mode: 'none' } } }",
            vec![],
        ),
        (
            "custom 0.0.0.0, no token",
            "{ gateway: { mode: 'local' } }",
            vec!["--bind", "custom", "--host", "0.0.0.0"],
        ),
        (
            "custom ::, auth none",
            "{ gateway: { mode: 'local' } }",
            vec!["--host", "::", "--auth", "none"],
        ),
    ];
    for (what, cfg, extra) in cases {
        let port = support::free_port();
        let p = port.to_string();
        let mut args = vec!["--port", p.as_str()];
        args.extend(extra);
        let f = Gateway::builder()
            .config(cfg)
            .only_args(&args)
            .run_to_exit();
        assert_eq!(f.status.code(), Some(78), "{what}: {}", f.stderr);
        assert!(
            f.stderr.contains("Refusing to bind gateway to") && f.stderr.contains("without auth"),
            "{what}: {}",
            f.stderr
        );
        assert!(
            f.stderr.contains("OPENCLAW_GATEWAY_TOKEN") || f.stderr.contains("--bind loopback"),
            "{what}: says what to do: {}",
            f.stderr
        );
        assert!(port_is_free(port), "{what}: something listened on {port}");
    }
    // Loopback without auth is allowed (and says so).
    let gw = Gateway::builder()
        .config("{ gateway: { mode: 'local' } }")
        .args(&["--auth", "none"])
        .start();
    assert!(gw.stderr().contains("auth is off"), "{}", gw.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_origins_are_checked_on_upgrade() {
    let b = Gateway::builder();
    let token = b.token.clone();
    let gw = b
        .config(&format!(
            "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }},
                 controlUi: {{ allowedOrigins: ['https://ui.example'] }} }} }}"
        ))
        .start();
    let host = format!("127.0.0.1:{}", gw.port);
    let refused = [
        "https://evil.example",
        "null",
        "http://127.0.0.1.evil.example",
        "http://localhost:1@evil.example",
        "https://ui.example.evil.example",
        "file://",
    ];
    for origin in refused {
        let mut raw = Raw::connect_with(&gw.url(), &[("origin", origin)]).await;
        raw.challenge().await;
        raw.req(
            "c1",
            "connect",
            Some(connect_params(
                "cli",
                "cli",
                Some(&token),
                &["operator.read"],
            )),
        )
        .await;
        let res = raw.json().await;
        assert_eq!(res["ok"], false, "{origin} admitted");
        assert_eq!(
            res["error"]["details"]["code"], "CONTROL_UI_ORIGIN_NOT_ALLOWED",
            "{origin}"
        );
        let ((code, _), _) = raw.until_close().await;
        assert_eq!(code, 1008, "{origin}");
    }
    // Allowed origins connect, but a browser never keeps operator scopes without a device.
    for origin in [
        format!("http://{host}"),
        "https://ui.example".to_string(),
        "http://localhost:5173".into(),
    ] {
        let (_, hello_ok, _) = hello(
            &gw.url(),
            connect_params("cli", "cli", Some(&token), support::ALL),
            &[("origin", origin.as_str())],
        )
        .await;
        assert_eq!(hello_ok["auth"]["scopes"], json!([]), "{origin}");
    }
}

#[test]
fn http_body_limit_and_auth_before_body() {
    let gw = Gateway::builder().start();
    let good = format!("Bearer {}", gw.token);
    let json_ct = ("content-type", "application/json");
    // Just over 2 MB with the right bearer → 413 with a JSON error. The gateway answers as soon
    // as it sees the length and closes without reading the body, so the upload may fail with
    // EPIPE/reset: send from another thread and read the answer as it arrives.
    let body = format!("{{\"tool\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let req = format!(
        "POST /tools/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: {good}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(req.as_bytes());
    });
    let mut head = [0u8; 512];
    let n = s.read(&mut head).expect("an answer to the oversized body");
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("invalid_request_error"), "{head}");
    let _ = writer.join();
    // Just under the cap is parsed (404: no such tool).
    let body = format!("{{\"tool\":\"{}\"}}", "x".repeat(2 * 1024 * 1024 - 100));
    let r = http(
        gw.port,
        "POST",
        "/tools/invoke",
        &[("authorization", &good), json_ct],
        &body,
    );
    assert_eq!(r.status, 404, "{}", &r.body[..r.body.len().min(200)]);
    // Headers only, announcing 50 MB: answered at once, before any body byte is sent —
    // 401 without the bearer (no body buffered for strangers), 413 with it.
    for (auth, want) in [("Bearer wrong", 401), (good.as_str(), 413)] {
        let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            s,
            "POST /tools/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("an answer before the body");
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {want}")),
            "{auth}: {head}"
        );
    }
}

/// Reads one server frame from a raw socket: (opcode, payload).
fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).ok()?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    let mut p = vec![0u8; len as usize];
    s.read_exact(&mut p).ok()?;
    Some((h[0] & 0x0f, p))
}

/// A raw WebSocket: upgrade by hand so frames can be sent partially.
fn raw_upgrade(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let (op, _) = read_frame(&mut s).expect("challenge");
    assert_eq!(op, 1);
    s
}

/// A pre-auth frame announcing 20 MiB is cut off after the pre-auth budget (~128 KiB), with
/// close 1009, long before the handshake timeout — the gateway never buffers the rest.
#[test]
fn preauth_frames_are_bounded_before_they_are_buffered() {
    let gw = Gateway::builder()
        .env("OPENCLAW_HANDSHAKE_TIMEOUT_MS", "60000")
        .start();
    let mut s = raw_upgrade(gw.port);
    let started = Instant::now();
    let mut hdr = vec![0x81u8, 0x80 | 127];
    hdr.extend_from_slice(&(20u64 << 20).to_be_bytes());
    hdr.extend_from_slice(&[0, 0, 0, 0]); // mask key 0: payload as-is
    s.write_all(&hdr).unwrap();
    let chunk = vec![b' '; 16 * 1024];
    let mut sent = 0usize;
    // Send up to 1 MiB; the server stops reading (and closes) long before that.
    while sent < (1 << 20) {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut close = None;
    while let Some((op, p)) = read_frame(&mut s) {
        if op == 8 {
            close = Some(u16::from_be_bytes([p[0], p[1]]));
            break;
        }
    }
    assert_eq!(close, Some(1009), "closed 1009 (sent {sent} bytes)");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "closed by the budget, not by the 60 s handshake timeout"
    );
    // The gateway still serves others.
    assert_eq!(http(gw.port, "GET", "/healthz", &[], "").status, 200);
}

/// Pings are answered but count against the pre-auth budget: a ping flood without `connect`
/// is closed (1009) instead of being served until the handshake timeout.
#[test]
fn preauth_ping_flood_is_closed() {
    let gw = Gateway::builder()
        .env("OPENCLAW_HANDSHAKE_TIMEOUT_MS", "60000")
        .start();
    let mut s = raw_upgrade(gw.port);
    let ping = {
        let mut f = vec![0x89u8, 0x80 | 125, 0, 0, 0, 0];
        f.extend(std::iter::repeat_n(b'p', 125));
        f
    };
    let started = Instant::now();
    let reader = s.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let mut r = reader;
        while let Some((op, p)) = read_frame(&mut r) {
            if op == 8 {
                return Some(u16::from_be_bytes([p[0], p[1]]));
            }
        }
        None
    });
    for _ in 0..4000 {
        if s.write_all(&ping).is_err() {
            break;
        }
    }
    // The gateway closes with 1009 once the pre-auth read budget is spent. Its close frame can
    // be lost when the kernel resets the connection (we are still writing pings), so a reset
    // without a close frame also counts; what must not happen is the socket staying open until
    // the 60 s handshake timeout (close 1000).
    let code = t.join().unwrap();
    assert!(matches!(code, Some(1009) | None), "closed with {code:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A client frame with mask key 0 (so `payload` goes on the wire as-is); `b0` is FIN/RSV/opcode.
fn masked_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![b0, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// Writes `frame` and returns the code of the server's close frame (skipping other frames).
fn close_code_after(s: &mut TcpStream, frame: &[u8]) -> Option<u16> {
    s.write_all(frame).ok()?;
    while let Some((op, p)) = read_frame(s) {
        if op == 8 {
            return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
        }
    }
    None
}

/// Frames that break RFC 6455 close with its codes (§7.4.1): 1007 for invalid UTF-8 (text or a
/// close reason), 1002 for protocol errors — before `connect` and after `hello-ok` alike (they
/// used to close 1000, as if nothing was wrong).
#[test]
fn protocol_violations_close_with_rfc6455_codes() {
    let gw = Gateway::builder().start();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "invalid UTF-8 text",
            masked_frame(0x81, &[b'{', 0xff, 0xfe]),
            1007,
        ),
        (
            "invalid UTF-8 close reason",
            masked_frame(0x88, &[0x03, 0xe8, 0xff]),
            1007,
        ),
        ("unmasked frame", vec![0x81, 0x02, b'{', b'}'], 1002),
        ("RSV1 set", masked_frame(0xc1, b"{}"), 1002),
        ("RSV3 set", masked_frame(0x91, b"{}"), 1002),
        ("reserved data opcode", masked_frame(0x83, b""), 1002),
        ("reserved control opcode", masked_frame(0x8b, b""), 1002),
        ("1-byte close payload", masked_frame(0x88, &[0x03]), 1002),
        ("fragmented ping", masked_frame(0x09, b""), 1002),
        (
            "continuation without a start",
            masked_frame(0x80, b"x"),
            1002,
        ),
    ];
    for (what, frame, want) in &cases {
        let mut s = raw_upgrade(gw.port);
        assert_eq!(
            close_code_after(&mut s, frame),
            Some(*want),
            "pre-auth: {what}"
        );
    }
    // After hello-ok the same violations get the same codes.
    let connect = json!({"type": "req", "id": "c1", "method": "connect",
        "params": connect_params("cli", "cli", Some(&gw.token), &[])})
    .to_string();
    for (what, frame, want) in &cases {
        let mut s = raw_upgrade(gw.port);
        let mut hdr = vec![0x81u8];
        if connect.len() < 126 {
            hdr.push(0x80 | connect.len() as u8);
        } else {
            hdr.push(0x80 | 126);
            hdr.extend_from_slice(&(connect.len() as u16).to_be_bytes());
        }
        hdr.extend_from_slice(&[0, 0, 0, 0]);
        hdr.extend_from_slice(connect.as_bytes());
        s.write_all(&hdr).unwrap();
        let (op, p) = read_frame(&mut s).expect("connect response");
        let res: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!((op, &res["ok"]), (1, &json!(true)), "{res}");
        assert_eq!(
            close_code_after(&mut s, frame),
            Some(*want),
            "after hello-ok: {what}"
        );
    }
}

/// One `POST /tools/invoke` with a wrong bearer from source address `src` (any 127/8 address
/// is this machine's loopback); returns the HTTP status.
async fn bad_bearer_from(src: std::net::Ipv4Addr, port: u16) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind((src, 0).into()).unwrap();
    let mut s = sock
        .connect(([127, 0, 0, 1], port).into())
        .await
        .unwrap_or_else(|e| panic!("connect from {src}: {e}"));
    let req = format!(
        "POST /tools/invoke HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAuthorization: Bearer nope\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap()
}

/// The limiter used to stop tracking once 10,000 addresses had failed once: the next address
/// got unlimited guesses. Now a fresh address after 10,001 distinct failing ones is limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_address_is_limited_after_ten_thousand_failing_ones() {
    let gw = limited_gateway(3, 60_000);
    let port = gw.port;
    let addr = |i: u32| std::net::Ipv4Addr::from(0x7f01_0000 + i); // 127.1.x.y
    let sprayed = auth::MAX_TRACKED as u32 + 1;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8u32 {
        tasks.spawn(async move {
            let mut i = w;
            while i < sprayed {
                let status = bad_bearer_from(addr(i), port).await;
                assert!(matches!(status, 401 | 429), "{}: {status}", addr(i));
                i += 8;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let fresh = addr(sprayed + 1000);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(bad_bearer_from(fresh, port).await);
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "fresh address never limited: {statuses:?}"
    );
}

/// A browser page connects from loopback too: with an `Origin` the default loopback exemption
/// does not apply, while the CLI (no `Origin`) on the same host stays exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_on_loopback_is_rate_limited() {
    let gw = Gateway::builder().start();
    let origin = format!("http://127.0.0.1:{}", gw.port);
    let mut codes = Vec::new();
    for _ in 0..11 {
        let mut raw = Raw::connect_with(&gw.url(), &[("origin", origin.as_str())]).await;
        raw.challenge().await;
        raw.req(
            "c1",
            "connect",
            Some(connect_params("cli", "cli", Some("wrong"), &[])),
        )
        .await;
        let res = raw.json().await;
        codes.push(
            res["error"]["details"]["code"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert_eq!(codes[0], "AUTH_TOKEN_MISMATCH");
    assert_eq!(codes.last().unwrap(), "AUTH_RATE_LIMITED", "{codes:?}");
    let (res, _) = connect_once(&gw.url(), &gw.token).await;
    assert_eq!(res["ok"], true, "CLI without Origin stays exempt: {res}");
}

/// DNS rebinding: a page on `evil.example` that resolves to 127.0.0.1 sends Host = Origin =
/// `evil.example:PORT`, which the same-host rule admitted. On a loopback listener a browser
/// must use a loopback host name, unless its origin is explicitly allowed (a local proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_hosts_are_refused_on_loopback() {
    let b = Gateway::builder();
    let token = b.token.clone();
    let gw = b
        .config(&format!(
            "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }},
                 controlUi: {{ allowedOrigins: ['https://proxy.example'] }} }} }}"
        ))
        .start();
    let evil = format!("evil.example:{}", gw.port);
    let evil_origin = format!("http://{evil}");
    let mut raw = Raw::connect_with(
        &gw.url(),
        &[("origin", evil_origin.as_str()), ("host", evil.as_str())],
    )
    .await;
    raw.challenge().await;
    raw.req(
        "c1",
        "connect",
        Some(connect_params("cli", "cli", Some(&token), &[])),
    )
    .await;
    let res = raw.json().await;
    assert_eq!(res["ok"], false, "rebinding host admitted: {res}");
    let e = &res["error"];
    assert_eq!(e["details"]["code"], "CONTROL_UI_ORIGIN_NOT_ALLOWED");
    assert_eq!(e["details"]["reason"], "host not allowed");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("http://localhost:<port>"),
        "{e}"
    );
    let ((code, _), _) = raw.until_close().await;
    assert_eq!(code, 1008);
    // Loopback names with a matching Origin, and an allow-listed proxy origin, still connect.
    let lo = format!("localhost:{}", gw.port);
    let lo_origin = format!("http://{lo}");
    for (origin, host) in [
        (lo_origin.as_str(), lo.as_str()),
        ("https://proxy.example", "proxy.example"),
    ] {
        let (_, hello_ok, _) = hello(
            &gw.url(),
            connect_params("cli", "cli", Some(&token), &[]),
            &[("origin", origin), ("host", host)],
        )
        .await;
        assert_eq!(hello_ok["type"], "hello-ok", "{origin}: {hello_ok}");
    }
    // Non-browser clients (no Origin) are unaffected by the Host they send.
    let mut raw = Raw::connect_with(&gw.url(), &[("host", evil.as_str())]).await;
    raw.challenge().await;
    raw.req(
        "c1",
        "connect",
        Some(connect_params("cli", "cli", Some(&token), &[])),
    )
    .await;
    assert_eq!(raw.json().await["ok"], true);
}

/// The Control UI page carries upstream's headers: a CSP admitting only its own inline script
/// and style (by hash) and no framing, plus X-Frame-Options, nosniff and no-referrer.
#[test]
fn control_ui_page_has_csp_and_frame_headers() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let gw = Gateway::builder().start();
    let r = http(gw.port, "GET", "/", &[], "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let csp = r.header("content-security-policy").expect("CSP on /");
    for d in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "connect-src 'self' ws: wss:",
    ] {
        assert!(csp.contains(d), "{d} missing from {csp}");
    }
    let inline = |open: &str, close: &str| {
        let start = r.body.find(open).expect("element") + open.len();
        let len = r.body[start..].find(close).expect("closed");
        let d = sha2::Sha256::digest(&r.body.as_bytes()[start..start + len]);
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(d)
        )
    };
    assert!(
        csp.contains(&format!("script-src {}", inline("<script>", "</script>"))),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("style-src {}", inline("<style>", "</style>"))),
        "{csp}"
    );
}
