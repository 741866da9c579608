//! The RPC load client of the harness: raw WebSocket connections (tokio-tungstenite, no
//! `GatewayClient` tasks, channels or pending maps), each with exactly ONE outstanding `health`
//! request at a time, a request frame written from a fixed template, and a cheap match on the
//! response id (a string prefix test, with a full JSON parse only for frames that do not match
//! it, e.g. events). The point is that the measured rate reflects the gateway rather than the
//! client; the harness also reports how the CPU time splits between the two.
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One authenticated connection of the load client.
pub struct LoadConn {
    ws: Ws,
    /// Request ids are `<tag>-<n>`: unique per connection and per request.
    tag: String,
    next: u64,
}

/// How long a single handshake or round trip may take before it counts as failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

async fn next_text(ws: &mut Ws, deadline: Instant) -> Result<String, String> {
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("timed out".into()),
            Ok(None) => return Err("connection closed".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(c)))) => return Err(format!("closed: {c:?}")),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Opens a socket and performs the protocol v4 handshake (challenge → connect → hello-ok).
pub async fn connect(url: &str, token: &str, idx: usize) -> Result<LoadConn, String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let (mut ws, _) = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::connect_async_with_config(url, None, true),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    loop {
        let t = next_text(&mut ws, deadline).await?;
        if t.contains("\"connect.challenge\"") {
            break;
        }
    }
    let connect = json!({
        "type": "req", "id": "connect", "method": "connect",
        "params": {
            "minProtocol": 4, "maxProtocol": 4,
            "client": {
                "id": "cli", "version": openclaw::VERSION, "platform": std::env::consts::OS,
                "mode": "cli", "instanceId": format!("bench-load-{idx}"),
            },
            "caps": [], "role": "operator", "scopes": ["operator.read"],
            "auth": {"token": token},
        },
    });
    ws.send(Message::text(connect.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let t = next_text(&mut ws, deadline).await?;
        let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
        if v["type"] == "res" && v["id"] == "connect" {
            if v["ok"] == true {
                break;
            }
            return Err(format!("connect rejected: {}", v["error"]));
        }
    }
    Ok(LoadConn {
        ws,
        tag: format!("b{idx}"),
        next: 0,
    })
}

/// `Some(ok)` when `text` is the response to request `id`, `None` for anything else (events).
/// Fast path: our gateway writes `{"type":"res","id":"…","ok":…` in that key order; any other
/// shape (another gateway, other key order) is parsed properly.
fn reply_to(text: &str, id: &str) -> Option<bool> {
    const PREFIX: &str = "{\"type\":\"res\",\"id\":\"";
    if let Some(rest) = text.strip_prefix(PREFIX)
        && let Some(rest) = rest.strip_prefix(id)
        && let Some(rest) = rest.strip_prefix("\",\"ok\":")
    {
        return Some(rest.starts_with("true"));
    }
    let v: Value = serde_json::from_str(text).ok()?;
    (v["type"] == "res" && v["id"] == id).then(|| v["ok"] == true)
}

impl LoadConn {
    /// One `health` round trip. `Ok(true)` on an ok response, `Ok(false)` on an error response.
    async fn round_trip(&mut self, id: &mut String, frame: &mut String) -> Result<bool, String> {
        use std::fmt::Write as _;
        self.next += 1;
        id.clear();
        let _ = write!(id, "{}-{}", self.tag, self.next);
        frame.clear();
        frame.push_str("{\"type\":\"req\",\"id\":\"");
        frame.push_str(id);
        frame.push_str("\",\"method\":\"health\"}");
        self.ws
            .send(Message::text(frame.as_str()))
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err("timed out".into()),
                Ok(None) => return Err("connection closed".into()),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    if let Some(ok) = reply_to(t.as_str(), id) {
                        return Ok(ok);
                    }
                }
                Ok(Some(Ok(Message::Close(c)))) => return Err(format!("closed: {c:?}")),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// One `health` round trip on its own: `Ok(true)` ok, `Ok(false)` an error response,
    /// `Err` when the connection failed (closed, reset, timed out).
    pub async fn health(&mut self) -> Result<bool, String> {
        let (mut id, mut frame) = (String::new(), String::new());
        self.round_trip(&mut id, &mut frame).await
    }

    /// Sends round trips back to back until `end`; returns (ok responses, failures).
    async fn run_until(mut self, end: Instant) -> (LoadConn, u64, u64) {
        let (mut id, mut frame) = (String::new(), String::new());
        let (mut ok, mut failed) = (0, 0);
        while Instant::now() < end {
            match self.round_trip(&mut id, &mut frame).await {
                Ok(true) => ok += 1,
                Ok(false) => failed += 1,
                Err(e) => {
                    eprintln!("bench: health round trip failed: {e}");
                    failed += 1;
                    break;
                }
            }
        }
        (self, ok, failed)
    }
}

/// One measurement window: every connection runs round trips until `dur` has passed.
/// Returns the connections (for the next window), ok round trips, failures and the elapsed time.
pub async fn window(conns: Vec<LoadConn>, dur: Duration) -> (Vec<LoadConn>, u64, u64, Duration) {
    let t0 = Instant::now();
    let end = t0 + dur;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(c.run_until(end)))
        .collect();
    let (mut back, mut ok, mut failed) = (Vec::new(), 0, 0);
    for t in tasks {
        if let Ok((c, o, f)) = t.await {
            ok += o;
            failed += f;
            back.push(c);
        }
    }
    (back, ok, failed, t0.elapsed())
}

/// Closes every connection (best effort, bounded).
pub async fn close_all(conns: Vec<LoadConn>) {
    for mut c in conns {
        let _ = tokio::time::timeout(Duration::from_millis(500), c.ws.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reply_matching() {
        let ok = r#"{"type":"res","id":"b1-7","ok":true,"payload":{}}"#;
        assert_eq!(super::reply_to(ok, "b1-7"), Some(true));
        assert_eq!(super::reply_to(ok, "b1-70"), None);
        assert_eq!(super::reply_to(ok, "b1-"), None);
        let err = r#"{"type":"res","id":"b1-7","ok":false,"error":{}}"#;
        assert_eq!(super::reply_to(err, "b1-7"), Some(false));
        let other_order = r#"{"id":"b1-7","ok":true,"type":"res"}"#;
        assert_eq!(super::reply_to(other_order, "b1-7"), Some(true));
        let event = r#"{"type":"event","event":"tick","payload":{"ts":1}}"#;
        assert_eq!(super::reply_to(event, "b1-7"), None);
    }
}
