//! `openclaw gateway probe [--json]` and the shared RPC probe used by `status`.
//!
//! Like upstream, the probe connects as `cli`/`probe` (protocol 3–4, `operator.read`), reads
//! `hello-ok` (server version, auth role/scopes → capability) and sends `health`, `status`,
//! `system-presence` and `config.get {}` in parallel. A method the connection may not call is
//! a `probe_scope_limited` warning (a device-less probe holds no operator scope on upstream
//! gateways), not a failure. Exit 0 when connected (even degraded), 1 when unreachable.
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::conn::Target;
use super::rpc::{self, Identity};

use crate::config::paths::Paths;
use crate::error::{Exit, Result};
use crate::gateway::client::ClientError;
use crate::ops::conn::ConnOptions;

/// `gateway probe`.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    /// JSON output.
    pub json: bool,
    /// Connection.
    pub conn: ConnOptions,
}

/// `gateway status`.
#[derive(Debug, Clone, Default)]
pub struct GatewayStatusOptions {
    /// Also inspect other installed gateway units/agents and system-level ones.
    pub deep: bool,
    /// JSON output.
    pub json: bool,
    /// Fail unless an RPC (`status`) succeeds.
    pub require_rpc: bool,
    /// Connection.
    pub conn: ConnOptions,
}

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
pub async fn reach<F, Fut>(target: &Target, id: &Identity, then: F) -> (Reach, Option<Value>)
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

/// Runs the command.
pub fn run(paths: &Paths, args: &ProbeOptions) -> Result<Exit> {
    let target = super::target(paths, &args.conn)?;
    let rt = rpc::runtime()?;
    let (reach, results) = rt.block_on(reach(&target, &Identity::Probe, |client| async move {
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
    }));
    let report = build_report(&reach, results.unwrap_or(Value::Null));
    if args.json {
        super::print_json(&report);
    } else {
        print!("{}", render(&report));
        if !reach.ok {
            eprintln!(
                "Next: {}",
                if reach.transient {
                    format!(
                        "start the gateway (`openclaw{pf} gateway run` or `openclaw{pf} gateway start`) or check the port with `openclaw{pf} status`",
                        pf = super::profile_flag(paths)
                    )
                } else {
                    "check the credential (--token/--password or gateway.auth in the config)".into()
                }
            );
        }
    }
    Ok(if reach.ok { Exit::Ok } else { Exit::Failure })
}

fn method_result(r: std::result::Result<Value, ClientError>) -> Value {
    match r {
        Ok(p) => json!({"ok": true, "payload": p}),
        Err(ClientError::Rpc(e)) => {
            json!({"ok": false, "error": {"code": e.code, "message": e.message}})
        }
        Err(e) => json!({"ok": false, "error": {"code": "CLIENT", "message": rpc::describe(&e)}}),
    }
}

/// The JSON report (pure, for tests).
pub fn build_report(reach: &Reach, methods: Value) -> Value {
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

/// The text report (pure, for tests).
pub fn render(report: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Gateway probe: {}",
        report["url"].as_str().unwrap_or("?")
    );
    if report["ok"] != true {
        let _ = writeln!(
            o,
            "Connect: failed: {}",
            report["error"].as_str().unwrap_or("unknown error")
        );
        return o;
    }
    let _ = writeln!(
        o,
        "Connect: ok ({}ms) · protocol {} · server {}",
        report["connectLatencyMs"].as_u64().unwrap_or(0),
        report["protocol"],
        report["server"]["version"].as_str().unwrap_or("unknown")
    );
    let _ = writeln!(
        o,
        "Capability: {}",
        report["capability"].as_str().unwrap_or("unknown")
    );
    if let Some(m) = report["methods"].as_object() {
        for (name, r) in m {
            if r["ok"] == true {
                let _ = writeln!(o, "{name}: ok");
            } else {
                let _ = writeln!(
                    o,
                    "{name}: failed: {}",
                    r["error"]["message"].as_str().unwrap_or("?")
                );
            }
        }
    }
    for w in report["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "Warning: {}: {}",
            w["code"].as_str().unwrap_or(""),
            w["message"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(
        o,
        "Result: {}",
        if report["degraded"] == true {
            "degraded"
        } else {
            "ok"
        }
    );
    o
}

/// `openclaw gateway status --url ws://… --token …`: the client side of `gateway status`
/// for an explicit (possibly remote) gateway, as upstream (protocol.md §8): a connect-only
/// probe as `cli`/`probe` (`Connectivity probe: ok`, `Capability: …`), or with
/// `--require-rpc` a `gateway-client`/`backend` connection that must answer `status`. No
/// service section: the service manager only knows local services. Exit 0 unless
/// `--require-rpc` and the RPC failed.
pub fn remote_status(paths: &Paths, args: &GatewayStatusOptions) -> Result<Exit> {
    let target = super::target(paths, &args.conn)?;
    let rt = rpc::runtime()?;
    let id = if args.require_rpc {
        Identity::Backend
    } else {
        Identity::Probe
    };
    let require = args.require_rpc;
    let (reach, rpc) = rt.block_on(reach(&target, &id, |client| async move {
        let r = if require {
            Some(method_result(client.call("status", None).await))
        } else {
            None
        };
        client.close();
        r
    }));
    let rpc_ok = rpc.as_ref().is_some_and(|r| r["ok"] == true);
    if args.json {
        let h = &reach.hello;
        super::print_json(&json!({
            "gateway": {"probeUrl": reach.url, "urlSource": "--url", "version": reach.version},
            "rpc": {
                "ok": reach.ok && (!require || rpc_ok),
                "kind": if require { "status" } else { "connect" },
                "url": reach.url,
                "connectLatencyMs": reach.connect_latency_ms,
                "capability": reach.capability,
                "auth": h.get("auth"),
                "server": h.get("server"),
                "error": reach.error.clone().or_else(|| rpc.as_ref().and_then(|r| r["error"]["message"].as_str().map(str::to_string))),
            },
        }));
    } else {
        let mut o = String::new();
        let _ = writeln!(o, "Probe target: {} (--url)", reach.url);
        if reach.ok {
            let _ = writeln!(
                o,
                "Gateway version: {}",
                reach.version.as_deref().unwrap_or("unknown")
            );
            let _ = writeln!(o, "Connectivity probe: ok");
            let _ = writeln!(
                o,
                "Capability: {}",
                reach.capability.as_deref().unwrap_or("unknown")
            );
        } else {
            let _ = writeln!(o, "Connectivity probe: failed");
            let _ = writeln!(o, "  {}", reach.error.as_deref().unwrap_or("unknown error"));
        }
        if let Some(r) = &rpc {
            if r["ok"] == true {
                let _ = writeln!(o, "RPC probe: ok");
            } else {
                let _ = writeln!(
                    o,
                    "RPC probe: failed: {}",
                    r["error"]["message"].as_str().unwrap_or("unknown error")
                );
            }
        }
        print!("{o}");
    }
    Ok(if require && !(reach.ok && rpc_ok) {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

/// The service verbs' local readiness probe (install/start/restart waits, `gateway status`):
/// [`healthz`] on loopback `port` must answer ok, then a protocol connect as `cli`/`probe` with
/// the given credentials and one `health` RPC must succeed. The error says which step failed.
pub fn local_ready(
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
pub fn healthz(port: u16, timeout: std::time::Duration) -> std::result::Result<(), String> {
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
        let reach = Reach {
            url: "ws://127.0.0.1:1".into(),
            ok: true,
            connect_latency_ms: Some(2),
            capability: Some("connected-no-operator-scope".into()),
            hello: json!({"protocol": 4, "server": {"version": "1.2.3"}}),
            ..Default::default()
        };
        let methods = json!({
            "health": {"ok": true, "payload": {}},
            "status": {"ok": false, "error": {"code": "FORBIDDEN", "message": "missing scope: operator.read"}},
        });
        let r = build_report(&reach, methods);
        assert_eq!(r["degraded"], true);
        assert_eq!(r["warnings"][0]["code"], "probe_scope_limited");
        let t = render(&r);
        assert!(
            t.contains("Connect: ok (2ms) · protocol 4 · server 1.2.3"),
            "{t}"
        );
        assert!(t.contains("status: failed: missing scope: operator.read"));
        assert!(t.ends_with("Result: degraded\n"));
    }
}
