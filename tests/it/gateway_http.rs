//! HTTP on the gateway port (docs/protocol.md §5, docs/protocol.md §5).
use serde_json::json;

use crate::support::{Gateway, http};

fn assert_security_headers(r: &crate::support::HttpResponse) {
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(
        r.header("permissions-policy"),
        Some("camera=(), microphone=(self), geolocation=()")
    );
}

#[test]
fn probes_tools_invoke_and_disabled_endpoints() {
    let gw = Gateway::builder().start();
    let p = gw.port;

    for path in ["/health", "/healthz"] {
        let r = http(p, "GET", path, &[], "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, r#"{"ok":true,"status":"live"}"#);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_security_headers(&r);
        let head = http(p, "HEAD", path, &[], "");
        assert_eq!(head.status, 200);
        assert_eq!(head.body, "");
    }
    for path in ["/ready", "/readyz"] {
        let r = http(p, "GET", path, &[], "");
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["ready"], true);
        assert_eq!(v["failing"], json!([]));
        assert!(v["uptimeMs"].as_u64().is_some());
        assert!(v["eventLoop"]["degraded"].is_boolean());
    }
    for path in ["/startup", "/startupz"] {
        let v = http(p, "GET", path, &[], "").json();
        assert_eq!(v["ok"], true);
        assert_eq!(v["status"], "started");
        assert_eq!(v["version"], openclaw::VERSION);
    }

    // /tools/invoke
    let r = http(p, "GET", "/tools/invoke", &[], "");
    assert_eq!((r.status, r.body.as_str()), (405, "Method Not Allowed"));
    let unauthorized = json!({"error":{"message":"Unauthorized","type":"unauthorized"}});
    let r = http(p, "POST", "/tools/invoke", &[], r#"{"tool":"x"}"#);
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), unauthorized);
    assert_security_headers(&r);
    let r = http(
        p,
        "POST",
        "/tools/invoke",
        &[("Authorization", "Bearer wrong")],
        r#"{"tool":"x"}"#,
    );
    assert_eq!((r.status, r.json()), (401, unauthorized));
    let auth = format!("Bearer {}", gw.token);
    let r = http(
        p,
        "POST",
        "/tools/invoke",
        &[("Authorization", &auth)],
        "notjson",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    let r = http(
        p,
        "POST",
        "/tools/invoke",
        &[("Authorization", &auth)],
        "{}",
    );
    assert_eq!(r.status, 400);
    let r = http(
        p,
        "POST",
        "/tools/invoke",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"tool":"nonexistent_tool","args":{}}"#,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"ok":false,"error":{"type":"not_found","message":"Tool not available: nonexistent_tool"}})
    );

    // Disabled OpenAI-compatible endpoints and hooks.
    for (m, path) in [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/responses"),
        ("GET", "/api/health"),
        ("POST", "/hooks/wake"),
        ("DELETE", "/anything"),
    ] {
        let r = http(p, m, path, &[], "");
        assert_eq!(
            (r.status, r.body.as_str()),
            (404, "Not Found"),
            "{m} {path}"
        );
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }

    // Control UI on / and unmatched GETs.
    for path in ["/", "/status", "/hooks/wake"] {
        let r = http(p, "GET", path, &[], "");
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(r.body.contains("data-openclaw-control-ui-base-path"));
        assert!(r.body.contains("new WebSocket("));
        assert!(!r.body.contains(&gw.token));
    }
}

#[test]
fn both_loopback_families_answer() {
    let gw = Gateway::builder().start();
    let v6 = std::net::TcpStream::connect(("::1", gw.port));
    match v6 {
        Ok(_) => assert!(gw.stderr().contains(&format!("ws://[::1]:{}", gw.port))),
        Err(e) => {
            // Hosts without IPv6 loopback: the gateway must say it listens on IPv4 only.
            assert!(
                gw.stderr().contains("listening on IPv4 only"),
                "{e}: {}",
                gw.stderr()
            );
        }
    }
}
