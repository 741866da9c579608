//! Admission control and bounded memory per connection (issue 20): separate budgets for
//! unauthenticated and authenticated sockets, a per-peer limit, an explicit 503 at the cap, a
//! reserve for loopback operators while one source floods, head size limits, and the body
//! read deadline. Small budgets via env knobs keep these cheap; the flood figures live in the
//! load suite (bench/load, RELIABILITY.md).
//!
//! Every peer here is loopback: the "flooder" binds its sockets to 127.0.0.2 (all of 127/8 is
//! loopback on Linux), the legitimate client uses 127.0.0.1.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

/// A TCP connection to the gateway from source address `src`.
async fn connect_from(src: &str, port: u16) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{src}:0").parse().unwrap())
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    tokio::time::timeout(
        WAIT,
        s.connect(format!("127.0.0.1:{port}").parse().unwrap()),
    )
    .await
    .expect("connect timed out")
    .expect("connect")
}

/// Sends `GET path` on `s` and reads the whole response (the gateway closes: `Connection:
/// close`, or a refusal); `None` if nothing arrives within `t`.
async fn get_on(mut s: TcpStream, path: &str, t: Duration) -> Option<String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    match tokio::time::timeout(t, s.read_to_end(&mut buf)).await {
        Ok(_) if !buf.is_empty() => Some(String::from_utf8_lossy(&buf).into_owned()),
        _ => None,
    }
}

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Opens idle sockets from `src` until the gateway refuses one (at most `max`); returns the
/// held ones and the refusal.
async fn fill_from(src: &str, port: u16, max: usize) -> (Vec<TcpStream>, String) {
    let mut held = Vec::new();
    for _ in 0..max {
        let mut s = connect_from(src, port).await;
        // A refused socket is answered at once, before it sends anything; an admitted one
        // waits for its request head (no answer within the probe window).
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => return (held, String::from_utf8_lossy(&buf[..n]).into()),
            Ok(_) => panic!("the gateway closed an admitted socket without an answer"),
            Err(_) => held.push(s),
        }
    }
    panic!("no refusal after {max} sockets from {src}");
}

#[tokio::test]
async fn one_peer_is_refused_503_at_its_budget_while_others_are_served() {
    let gw = Gateway::builder()
        .env("OPENCLAW_MAX_UNAUTH_PER_PEER", "3")
        .start();
    let (held, refusal) = fill_from("127.0.0.2", gw.port, 10).await;
    assert_eq!(held.len(), 3, "the per-peer budget: {refusal}");
    assert_eq!(status_of(&refusal), 503, "{refusal}");
    assert!(
        refusal
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 1\r\n"),
        "{refusal}"
    );
    // Another source address is another peer: served.
    let ok = get_on(connect_from("127.0.0.1", gw.port).await, "/healthz", WAIT)
        .await
        .expect("healthz answered");
    assert_eq!(status_of(&ok), 200, "{ok}");
    // A plain HTTP request over budget gets the same explicit refusal (not a backlog wait).
    let r = get_on(connect_from("127.0.0.2", gw.port).await, "/healthz", WAIT)
        .await
        .expect("an answer, not a silent backlog");
    assert_eq!(status_of(&r), 503, "{r}");
    // Freeing one of its sockets gives the peer its slot back (bounded wait for the close).
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        let r = get_on(connect_from("127.0.0.2", gw.port).await, "/healthz", WAIT).await;
        if r.as_deref().map(status_of) == Some(200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the peer's budget was not released");
}

#[tokio::test]
async fn loopback_operators_get_through_while_the_unauth_budget_is_full() {
    // 12 unauthenticated slots, 3 of them the loopback reserve; the flooder may take 9.
    let gw = Gateway::builder()
        .env("OPENCLAW_MAX_UNAUTH_CONNECTIONS", "12")
        .env("OPENCLAW_MAX_UNAUTH_PER_PEER", "100")
        .start();
    let (held, refusal) = fill_from("127.0.0.2", gw.port, 20).await;
    assert_eq!(held.len(), 9, "{refusal}");
    assert_eq!(status_of(&refusal), 503, "{refusal}");
    // The CLI's health probe and a WebSocket connect still work.
    for _ in 0..3 {
        let ok = get_on(connect_from("127.0.0.1", gw.port).await, "/healthz", WAIT)
            .await
            .expect("healthz answered");
        assert_eq!(status_of(&ok), 200, "{ok}");
    }
    let params = connect_params("cli", "cli", Some(&gw.token), &["operator.read"]);
    let (mut raw, hello_ok, _) = hello(&gw.url(), params, &[]).await;
    assert_eq!(hello_ok["type"], "hello-ok");
    // A WebSocket upgrade over budget is refused before the upgrade: HTTP 503.
    let s = connect_from("127.0.0.2", gw.port).await;
    let req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(gw.url())
            .unwrap();
    match tokio_tungstenite::client_async(req, s).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status().as_u16(), 503);
            assert_eq!(r.headers()["retry-after"], "1");
        }
        other => panic!("expected a 503 handshake refusal, got {other:?}"),
    }
    raw.close().await;
    drop(held);
}

#[tokio::test]
async fn authenticated_sockets_leave_the_unauth_budget_and_have_their_own() {
    let gw = Gateway::builder()
        .env("OPENCLAW_MAX_UNAUTH_PER_PEER", "2")
        .env("OPENCLAW_MAX_CONNECTIONS", "3")
        .start();
    let params = || connect_params("cli", "cli", Some(&gw.token), &["operator.read"]);
    // Three sessions from one peer with a per-peer budget of 2: each moves to the
    // authenticated budget at hello-ok.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(hello(&gw.url(), params(), &[]).await.0);
    }
    // The authenticated budget (3) is full: the 4th connect is refused, retryable, 1013.
    let mut raw = Raw::connect(&gw.url()).await;
    raw.challenge().await;
    raw.req("c1", "connect", Some(params())).await;
    let res = raw.json().await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
    assert_eq!(res["error"]["retryable"], true, "{res}");
    let ((code, reason), _) = raw.until_close().await;
    assert_eq!((code, reason.as_str()), (1013, "try again later"));
    // Closing one session frees its authenticated slot (bounded wait for the server side).
    sessions.pop().unwrap().close().await;
    let mut ok = false;
    for _ in 0..50 {
        let mut raw = Raw::connect(&gw.url()).await;
        raw.challenge().await;
        raw.req("c1", "connect", Some(params())).await;
        if raw.json().await["ok"] == true {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the authenticated slot was not released");
}

/// Tick and idle timeout for the idle-policy tests: pings go out each 100 ms tick, a socket
/// silent for 400 ms is closed.
const IDLE_ENV: [(&str, &str); 2] = [
    ("OPENCLAW_TICK_INTERVAL_MS", "100"),
    ("OPENCLAW_IDLE_TIMEOUT_MS", "400"),
];

#[tokio::test]
async fn a_silent_authenticated_socket_is_closed_1001_and_its_slot_released() {
    let gw = IDLE_ENV
        .iter()
        .fold(Gateway::builder(), |b, (k, v)| b.env(k, v))
        .env("OPENCLAW_MAX_CONNECTIONS", "1")
        .start();
    let params = || connect_params("cli", "cli", Some(&gw.token), &["operator.read"]);
    // Upgrade and connect by hand on a plain TCP socket, then never write again: no pong, no
    // frame (a dead or wedged client). A WebSocket library would answer pings when read.
    let mut silent = connect_from("127.0.0.1", gw.port).await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        gw.port
    );
    silent.write_all(head.as_bytes()).await.unwrap();
    let connect =
        serde_json::json!({"type": "req", "id": "c1", "method": "connect", "params": params()});
    silent
        .write_all(&masked_text(&connect.to_string()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(&seen).contains("hello-ok") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, silent.read(&mut buf))
            .await
            .expect("no hello-ok on the hand-made session")
            .unwrap();
        assert!(
            n > 0,
            "closed before hello-ok: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // The budget of 1 is held until the gateway gives up on the silent socket; then a new
    // session gets in (bounded: 250 attempts, each answered at once while the slot is held).
    let mut got_in = None;
    for _ in 0..250 {
        let mut raw = Raw::connect(&gw.url()).await;
        raw.challenge().await;
        raw.req("c1", "connect", Some(params())).await;
        let res = raw.json().await;
        if res["ok"] == true {
            got_in = Some(raw);
            break;
        }
        assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        got_in.is_some(),
        "the silent socket still holds the only authenticated slot: it never expired"
    );
    // The silent client learns why once it reads again (without answering anything).
    tokio::time::timeout(WAIT, silent.read_to_end(&mut seen))
        .await
        .expect("the idle socket was not closed")
        .unwrap();
    let body = seen
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("upgrade response");
    assert_eq!(
        close_of(&seen[body + 4..]),
        Some((1001, "idle timeout".to_string()))
    );
}

/// A masked client text frame (mask key 0: the payload goes as is).
fn masked_text(s: &str) -> Vec<u8> {
    let mut f = vec![0x81u8];
    match s.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(s.as_bytes());
    f
}

/// The (code, reason) of the first close frame in a stream of server frames.
fn close_of(mut b: &[u8]) -> Option<(u16, String)> {
    while b.len() >= 2 {
        let (op, len7) = (b[0] & 0x0f, (b[1] & 0x7f) as usize);
        let (len, hdr) = match len7 {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
            n => (n, 2),
        };
        let p = b.get(hdr..hdr + len)?;
        if op == 8 && p.len() >= 2 {
            return Some((
                u16::from_be_bytes([p[0], p[1]]),
                String::from_utf8_lossy(&p[2..]).into_owned(),
            ));
        }
        b = &b[hdr + len..];
    }
    None
}

#[tokio::test]
async fn a_quiet_client_that_answers_pings_stays_connected() {
    let gw = IDLE_ENV
        .iter()
        .fold(Gateway::builder(), |b, (k, v)| b.env(k, v))
        .start();
    let params = connect_params("cli", "cli", Some(&gw.token), &["operator.read"]);
    let (mut quiet, _, _) = hello(&gw.url(), params, &[]).await;
    // Five idle timeouts without a request: the client only keeps reading its socket (so its
    // WebSocket stack answers the gateway's pings). Ticks keep arriving; no close does.
    let until = tokio::time::Instant::now() + Duration::from_millis(2000);
    let mut ticks = 0;
    while let Some(f) = quiet
        .recv_within(until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        match f {
            Frame::Json(v) if v["event"] == "tick" => ticks += 1,
            Frame::Json(_) => {}
            Frame::Close(code, reason) => {
                panic!("a client answering pings was closed {code} {reason:?} after {ticks} ticks")
            }
        }
    }
    assert!(ticks >= 5, "ticks kept coming while connected: {ticks}");
    // And the session still works.
    quiet.req("h1", "health", None).await;
    assert_eq!(quiet.res("h1").await["ok"], true);
}

#[test]
fn an_oversized_request_head_is_refused_431_and_a_real_one_is_served() {
    let gw = Gateway::builder().start();
    let big = "a".repeat(40 * 1024);
    let r = http(gw.port, "GET", "/healthz", &[("x-pad", &big)], "");
    assert_eq!(r.status, 431, "{r:?}");
    // A generous real head (16 KiB of cookies) is fine.
    let cookies = "c".repeat(16 * 1024);
    let r = http(gw.port, "GET", "/healthz", &[("cookie", &cookies)], "");
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn an_authenticated_body_that_never_arrives_gets_408_at_the_body_deadline() {
    let token = random_token();
    let gw = Gateway::builder()
        .config(&format!(
            "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }}, http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }} }}"
        ))
        .env("OPENCLAW_BODY_READ_TIMEOUT_MS", "300")
        .start();
    use std::io::{Read, Write};
    for path in ["/tools/invoke", "/v1/chat/completions"] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"tool\":",
            token
        );
        s.write_all(head.as_bytes()).unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(
            text.contains("OPENCLAW_BODY_READ_TIMEOUT_MS"),
            "{path}: {text}"
        );
        assert!(started.elapsed() < WAIT, "{path}: answered at the deadline");
    }
}
