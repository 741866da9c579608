//! The RPC probe: a connect-only `reach` (shared by `status`, `gateway status`, doctor and
//! the service verbs) and the full `probe` of `openclaw gateway probe`.
//!
//! Like upstream, the probe connects as `cli`/`probe` (protocol 3–4, `operator.read`), reads
//! `hello-ok` (server version, auth role/scopes → capability) and sends `health`, `status`,
//! `system-presence` and `config.get {}` in parallel. A method the connection may not call is
//! a `probe_scope_limited` warning (a device-less probe holds no operator scope on upstream
//! gateways), not a failure (`build_report`).
use serde_json::{Value, json};

use super::conn::Target;
use super::rpc::{self, Identity};

use crate::gateway::client::ClientError;

/// What a connect-only probe learned (shared with `status`).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reach {
    /// URL probed.
    pub url: String,
    /// Connected and got `hello-ok`.
    pub ok: bool,
    /// Open → hello-ok in milliseconds.
    pub connect_latency_ms: Option<u64>,
    /// `hello-ok.server.version`.
    pub version: Option<String>,
    /// Capability word from the granted scopes.
    pub capability: Option<String>,
    /// Failure reason.
    pub error: Option<String>,
    /// Failure is worth retrying (refused/timeout vs auth).
    #[serde(skip)]
    pub transient: bool,
    /// The hello-ok payload.
    #[serde(skip)]
    pub hello: Value,
}

/// Connects with `id`, then runs `then` on the session (e.g. one RPC). The timeout of the
/// target bounds everything.
pub(crate) async fn reach<F, Fut>(target: &Target, id: &Identity, then: F) -> (Reach, Option<Value>)
where
    F: FnOnce(crate::gateway::client::GatewayClient) -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let mut r = Reach {
        url: target.url.clone(),
        ..Default::default()
    };
    match rpc::connect(target, id).await {
        Ok(s) => {
            r.ok = true;
            r.connect_latency_ms = Some(s.latency.as_millis() as u64);
            r.version = s.client.hello()["server"]["version"]
                .as_str()
                .map(str::to_string);
            r.capability = Some(rpc::capability(s.client.hello()).to_string());
            r.hello = s.client.hello().clone();
            let extra = then(s.client).await;
            (r, extra)
        }
        Err(f) => {
            r.error = Some(f.reason());
            r.transient = f.transient();
            (r, None)
        }
    }
}

const PROBE_METHODS: [&str; 4] = ["health", "status", "system-presence", "config.get"];

/// Connects as `cli`/`probe` and sends the four probe methods in parallel. Returns what the
/// connect learned and `{method: {ok, payload|error}}` (`null` when the connect failed).
pub(crate) async fn probe(target: &Target) -> (Reach, Value) {
    let (reach, results) = reach(target, &Identity::Probe, |client| async move {
        let call = |m: &'static str| {
            let params = (m == "config.get").then(|| json!({}));
            let c = &client;
            async move { (m, c.call(m, params).await) }
        };
        let (a, b, c, d) = futures_util::future::join4(
            call(PROBE_METHODS[0]),
            call(PROBE_METHODS[1]),
            call(PROBE_METHODS[2]),
            call(PROBE_METHODS[3]),
        )
        .await;
        client.close();
        let mut methods = serde_json::Map::new();
        for (m, r) in [a, b, c, d] {
            methods.insert(m.to_string(), method_result(r));
        }
        Some(Value::Object(methods))
    })
    .await;
    (reach, results.unwrap_or(Value::Null))
}

/// The client side of `gateway status --url …`: a connect-only probe as `cli`/`probe`, or
/// with `require_rpc` a `gateway-client`/`backend` connection that must answer `status`.
/// Returns the reach and, with `require_rpc`, the `status` result (`{ok, payload|error}`).
pub(crate) async fn remote_status(target: &Target, require_rpc: bool) -> (Reach, Option<Value>) {
    let id = if require_rpc {
        Identity::Backend
    } else {
        Identity::Probe
    };
    reach(target, &id, |client| async move {
        let r = if require_rpc {
            Some(method_result(client.call("status", None).await))
        } else {
            None
        };
        client.close();
        r
    })
    .await
}

pub(crate) fn method_result(r: std::result::Result<Value, ClientError>) -> Value {
    match r {
        Ok(p) => json!({"ok": true, "payload": p}),
        Err(ClientError::Rpc(e)) => {
            json!({"ok": false, "error": {"code": e.code, "message": e.message}})
        }
        Err(e) => json!({"ok": false, "error": {"code": "CLIENT", "message": rpc::describe(&e)}}),
    }
}

/// The JSON report (pure, for tests).
pub(crate) fn build_report(reach: &Reach, methods: Value) -> Value {
    let mut warnings = Vec::new();
    let mut degraded = !reach.ok;
    if let Some(m) = methods.as_object() {
        let scope_limited = m.values().any(|r| {
            r["error"]["code"] == "FORBIDDEN"
                && r["error"]["message"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("missing scope"))
        });
        if scope_limited {
            warnings.push(json!({"code": "probe_scope_limited",
                "message": "this probe connection holds no operator.read scope (device-less probes get none); methods other than health were refused"}));
        }
        if m.values().any(|r| r["ok"] != true) {
            degraded = true;
        }
    }
    let h = &reach.hello;
    json!({
        "ok": reach.ok,
        "degraded": degraded,
        "url": reach.url,
        "connectLatencyMs": reach.connect_latency_ms,
        "error": reach.error,
        "protocol": h.get("protocol"),
        "server": h.get("server"),
        "auth": h.get("auth"),
        "capability": reach.capability,
        "methods": methods,
        "warnings": warnings,
    })
}

/// The service verbs' local readiness probe (install/start/restart waits, `gateway status`):
/// [`healthz`] on loopback `port` must answer ok, then a protocol connect as `cli`/`probe` with
/// the given credentials and one `health` RPC must succeed. The error says which step failed.
pub(crate) fn local_ready(
    port: u16,
    timeout: std::time::Duration,
    token: Option<&str>,
    password: Option<&str>,
) -> std::result::Result<(), String> {
    use crate::gateway::client::{ConnectOptions, GatewayClient};
    healthz(port, timeout)?;
    let url = format!("ws://127.0.0.1:{port}");
    let mut opts = ConnectOptions::new(url.clone()).client("cli", "probe");
    opts.token = token.map(str::to_string);
    opts.password = password.map(str::to_string);
    opts.timeout = timeout;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the probe runtime: {e}"))?;
    rt.block_on(async move {
        let client = GatewayClient::connect(opts)
            .await
            .map_err(|e| format!("RPC connect to {url}: {e}"))?;
        let r = client.call("health", None).await;
        client.close();
        r.map(|_| ())
            .map_err(|e| format!("RPC health on {url}: {e}"))
    })
}

/// `GET /healthz` on loopback `port` must answer 200 with `"ok":true`; a silent or closing
/// peer is told apart from a refusing one.
pub(crate) fn healthz(port: u16, timeout: std::time::Duration) -> std::result::Result<(), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    std::io::Write::write_all(
        &mut s,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut buf = Vec::new();
    let read = std::io::Read::read_to_end(&mut std::io::Read::take(s, 64 * 1024), &mut buf);
    let text = String::from_utf8_lossy(&buf);
    let status = text.lines().next().unwrap_or_default().to_string();
    let timed_out = read.as_ref().is_err_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    });
    if !status.contains(" 200") {
        return Err(if status.is_empty() && timed_out {
            format!(
                "{addr} accepted the connection but sent no answer within {:.1}s (a wedged gateway?)",
                timeout.as_secs_f64()
            )
        } else if status.is_empty() {
            format!("{addr} closed the connection without an answer")
        } else {
            format!("{addr} answered {status:?} to GET /healthz")
        });
    }
    if !text.contains("\"ok\":true") {
        return Err(format!("{addr} /healthz did not report ok"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_limited_probe_is_degraded_with_warning() {
        let r = build_report(&sample_reach(), sample_methods());
        assert_eq!(r["degraded"], true);
        assert_eq!(r["warnings"][0]["code"], "probe_scope_limited");
        let all_ok = json!({"health": {"ok": true, "payload": {}}});
        let r = build_report(&sample_reach(), all_ok);
        assert_eq!(r["degraded"], false);
        assert_eq!(r["warnings"], json!([]));
    }
}

/// A connected, scope-limited probe (shared by the renderers' tests).
#[cfg(test)]
pub(crate) fn sample_reach() -> Reach {
    Reach {
        url: "ws://127.0.0.1:1".into(),
        ok: true,
        connect_latency_ms: Some(2),
        capability: Some("connected-no-operator-scope".into()),
        hello: json!({"protocol": 4, "server": {"version": "1.2.3"}}),
        ..Default::default()
    }
}

/// Probe results where `status` was refused for a missing scope.
#[cfg(test)]
pub(crate) fn sample_methods() -> Value {
    json!({
        "health": {"ok": true, "payload": {}},
        "status": {"ok": false, "error": {"code": "FORBIDDEN", "message": "missing scope: operator.read"}},
    })
}
