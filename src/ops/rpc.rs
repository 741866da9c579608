//! One-shot gateway sessions for CLI commands: a current-thread runtime, the client identity
//! each command presents (as the official CLI does, docs/protocol.md §8), a connect that retries
//! only the gateway's "still starting" answer, and failures phrased as what failed, where, and
//! what to do next.
use std::time::{Duration, Instant};

use serde_json::Value;

use super::conn::Target;
use crate::error::{Error, Result};
use crate::gateway::client::{ClientError, ConnectOptions, GatewayClient};
use crate::gateway::protocol::ErrorShape;

/// The scope set the official CLI requests for methods it does not classify.
pub(crate) const CLI_DEFAULT_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
    "operator.talk.secrets",
];

const METHOD_SCOPES: &str = include_str!("method_scopes.tsv");

/// Least-privilege scopes for calling `method` (upstream's method table; unknown methods get
/// [`CLI_DEFAULT_SCOPES`]).
pub(crate) fn scopes_for(method: &str) -> Vec<String> {
    METHOD_SCOPES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .find(|(m, _)| *m == method)
        .map(|(_, s)| vec![s.to_string()])
        .unwrap_or_else(|| CLI_DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect())
}

/// Which client a command presents itself as.
#[derive(Debug, Clone)]
pub(crate) enum Identity {
    /// `cli`/`cli`, protocol 4, the given scopes (health, call, logs, status).
    Cli(Vec<String>),
    /// `cli`/`probe`, version `dev`, protocol 3–4, `operator.read` (gateway probe/status).
    Probe,
    /// `gateway-client`/`backend` named `gateway:status`, `operator.read` (`--require-rpc`).
    Backend,
}

impl Identity {
    /// `cli`/`cli` with `operator.read`.
    pub(crate) fn read() -> Identity {
        Identity::Cli(vec![crate::gateway::protocol::scopes::READ.to_string()])
    }
}

/// A single-threaded runtime: a CLI command needs one socket, not a thread pool.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Msg(format!("starting the async runtime: {e}")))
}

/// Connect options for a target and identity.
pub(crate) fn options(target: &Target, id: &Identity) -> ConnectOptions {
    let mut o = ConnectOptions::new(target.url.clone());
    o.token = target.token.clone();
    o.password = target.password.clone();
    o.timeout = target.timeout;
    match id {
        Identity::Cli(scopes) => {
            o.scopes = scopes.clone();
        }
        Identity::Probe => {
            o = o.client("cli", "probe");
            o.client_version = "dev".into();
            o.protocol = (3, 4);
            o.scopes = vec![crate::gateway::protocol::scopes::READ.into()];
        }
        Identity::Backend => {
            o = o.client("gateway-client", "backend");
            o.display_name = Some("gateway:status".into());
            o.scopes = vec![crate::gateway::protocol::scopes::READ.into()];
        }
    }
    o
}

/// A failed connect, with the target it was for.
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    /// The URL dialled.
    pub(crate) url: String,
    /// What went wrong.
    pub(crate) error: ClientError,
    /// Where the credential came from (for the hint).
    pub(crate) auth_source: Option<String>,
    /// The target was the implicit local gateway.
    pub(crate) local: bool,
}

impl ConnectFailure {
    /// Short reason: `connection refused`, `unauthorized: …`, `timed out …`.
    pub(crate) fn reason(&self) -> String {
        describe(&self.error)
    }

    /// True when retrying later may help (refused, reset, timeout, draining, restart close);
    /// false for auth and protocol rejections.
    pub(crate) fn transient(&self) -> bool {
        transient(&self.error)
    }

    /// The next step for the operator.
    pub(crate) fn hint(&self, profile_flag: &str) -> String {
        match &self.error {
            ClientError::Rpc(e) if is_auth(e) => format!(
                "The gateway rejected the credential{}. Use this gateway's token (`openclaw{profile_flag} gateway auth-token` on its host) with --token, or fix gateway.auth in the config.",
                self.auth_source
                    .as_deref()
                    .map(|s| format!(" from {s}"))
                    .unwrap_or_default()
            ),
            _ if self.local => format!(
                "Is the gateway running? Start it with `openclaw{profile_flag} gateway run` (foreground) or `openclaw{profile_flag} gateway start` (service); `openclaw{profile_flag} status` shows the port each side uses."
            ),
            _ => "Check the URL and that the gateway is reachable from here.".into(),
        }
    }

    /// The full user-facing error: `gateway connect failed: <reason>` + hint.
    pub(crate) fn into_error(self, profile_flag: &str) -> Error {
        Error::Msg(format!(
            "gateway connect failed: {} ({})\n{}",
            self.reason(),
            self.url,
            self.hint(profile_flag)
        ))
    }
}

fn is_auth(e: &ErrorShape) -> bool {
    let detail = e
        .details
        .as_ref()
        .and_then(|d| d.get("code"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    detail.starts_with("AUTH_")
        || e.message.starts_with("unauthorized")
        || e.code == "NOT_PAIRED"
        || e.code == "UNAUTHORIZED"
}

/// A short, human reason for a client error.
pub(crate) fn describe(e: &ClientError) -> String {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e {
        ClientError::Connect { source, .. } => match source {
            WsError::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => "connection reset".into(),
                _ => io.to_string(),
            },
            WsError::Http(resp) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .filter(|b| !b.is_empty())
                    .map(|b| format!(": {b}"))
                    .unwrap_or_default();
                format!(
                    "gateway rejected websocket upgrade (HTTP {}){body}",
                    resp.status().as_u16()
                )
            }
            other => other.to_string(),
        },
        ClientError::Rpc(e) => e.message.clone(),
        other => other.to_string(),
    }
}

/// Whether a client error is worth retrying (logs --follow reconnects on these).
pub(crate) fn transient(e: &ClientError) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e {
        ClientError::Connect { source, .. } => match source {
            WsError::Io(_) | WsError::ConnectionClosed | WsError::AlreadyClosed => true,
            WsError::Http(r) => r.status().as_u16() == 503,
            _ => false,
        },
        ClientError::Timeout(..) => true,
        ClientError::Closed { code, .. } => *code != 1008 && !(4000..5000).contains(code),
        ClientError::Protocol(_) => true,
        ClientError::Rpc(e) => e.code == "UNAVAILABLE" && e.retryable != Some(false),
    }
}

fn startup_retry_delay(e: &ClientError) -> Option<Duration> {
    let ClientError::Rpc(shape) = e else {
        return None;
    };
    let starting = shape.code == "UNAVAILABLE"
        && shape.retryable == Some(true)
        && shape
            .details
            .as_ref()
            .and_then(|d| d.get("reason"))
            .and_then(Value::as_str)
            == Some("startup-sidecars");
    starting.then(|| Duration::from_millis(shape.retry_after_ms.unwrap_or(500).clamp(100, 2000)))
}

/// A connected session and how long the handshake took.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client.
    pub(crate) client: GatewayClient,
    /// Socket open → `hello-ok`.
    pub(crate) latency: Duration,
}

/// Connects and completes the handshake. Only the gateway's "still starting" answer is retried
/// (silently, within the target's timeout), as upstream does.
pub(crate) async fn connect(target: &Target, id: &Identity) -> Result<Session, ConnectFailure> {
    let deadline = Instant::now() + target.timeout;
    loop {
        let t0 = Instant::now();
        let left = deadline.saturating_duration_since(t0);
        let mut opts = options(target, id);
        opts.timeout = left.max(Duration::from_millis(50));
        match GatewayClient::connect(opts).await {
            Ok(client) => {
                return Ok(Session {
                    client,
                    latency: t0.elapsed(),
                });
            }
            Err(e) => {
                if let Some(d) = startup_retry_delay(&e)
                    && Instant::now() + d < deadline
                {
                    tokio::time::sleep(d).await;
                    continue;
                }
                return Err(ConnectFailure {
                    url: target.url.clone(),
                    error: e,
                    auth_source: target.auth_source.clone(),
                    local: target.is_local(),
                });
            }
        }
    }
}

/// `hello.auth.scopes` → upstream's capability word.
pub(crate) fn capability(hello: &Value) -> &'static str {
    let scopes: Vec<&str> = hello["auth"]["scopes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if scopes.contains(&"operator.admin") {
        "admin-capable"
    } else if scopes.contains(&"operator.write") {
        "write-capable"
    } else if scopes.contains(&"operator.read") {
        "read-only"
    } else if hello["auth"].is_object() {
        "connected-no-operator-scope"
    } else {
        "unknown"
    }
}

/// The JSON error object upstream prints for a failed `gateway call`.
pub(crate) fn request_error_json(e: &ErrorShape) -> Value {
    let mut err = serde_json::json!({
        "type": "gateway_request_error",
        "code": e.code,
        "message": e.message,
        "retryable": e.retryable.unwrap_or(false),
    });
    if let Some(d) = &e.details {
        err["details"] = d.clone();
    }
    serde_json::json!({"ok": false, "error": err})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege_scopes() {
        assert_eq!(scopes_for("health"), vec!["operator.read"]);
        assert_eq!(scopes_for("status"), vec!["operator.read"]);
        assert_eq!(scopes_for("agent"), vec!["operator.write"]);
        assert_eq!(scopes_for("secrets.reload"), vec!["operator.admin"]);
        assert_eq!(scopes_for("foo.bar").len(), CLI_DEFAULT_SCOPES.len());
    }

    #[test]
    fn capability_words() {
        let h = |s: Value| serde_json::json!({"auth": {"scopes": s}});
        assert_eq!(
            capability(&h(serde_json::json!([]))),
            "connected-no-operator-scope"
        );
        assert_eq!(
            capability(&h(serde_json::json!(["operator.read"]))),
            "read-only"
        );
        assert_eq!(
            capability(&h(serde_json::json!(["operator.admin"]))),
            "admin-capable"
        );
        assert_eq!(capability(&serde_json::json!({})), "unknown");
    }

    #[test]
    fn transient_classification() {
        assert!(transient(&ClientError::Closed {
            code: 1012,
            reason: "service restart".into()
        }));
        assert!(!transient(&ClientError::Closed {
            code: 1008,
            reason: "unauthorized".into()
        }));
        assert!(!transient(&ClientError::Rpc(ErrorShape::invalid(
            "unauthorized: gateway token mismatch"
        ))));
        assert!(transient(&ClientError::Timeout(
            Duration::from_secs(1),
            "hello-ok"
        )));
    }

    #[test]
    fn startup_unavailable_is_retried() {
        let e = ErrorShape::unavailable("starting")
            .with_details(serde_json::json!({"reason": "startup-sidecars"}));
        let mut e2 = e.clone();
        e2.retryable = Some(true);
        e2.retry_after_ms = Some(5);
        assert_eq!(startup_retry_delay(&ClientError::Rpc(e)), None);
        assert_eq!(
            startup_retry_delay(&ClientError::Rpc(e2)),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn request_error_shape() {
        let v = request_error_json(&ErrorShape::invalid("unknown method: foo.bar"));
        assert_eq!(
            v,
            serde_json::json!({"ok":false,"error":{"type":"gateway_request_error","code":"INVALID_REQUEST","message":"unknown method: foo.bar","retryable":false}})
        );
    }
}
