//! What every HTTP wing shares with the kernel's own endpoints: JSON responses and
//! authentication (the gateway bearer, counted against the same failed-attempt limiter as
//! WebSocket connects, then the admission check).

// The error is a ready `Response` the handler returns as is; its size only matters on the
// error path.
#![allow(clippy::result_large_err)]
use std::net::IpAddr;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::GatewayState;
use super::ws::PeerInfo;

/// A JSON body (`application/json; charset=utf-8`).
pub(crate) fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// A plain-text body (`text/plain; charset=utf-8`).
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A JSON body that must not be cached (`Cache-Control: no-store`).
pub(crate) fn json_no_store(status: StatusCode, body: &Value) -> Response {
    let mut r = json(status, body);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The `Authorization: Bearer <token>` value (`None` when absent, not bearer, or empty).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The peer's address (canonical: IPv4-mapped IPv6 reads as IPv4).
pub(crate) fn peer_ip(ext: &Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<PeerInfo>>()
        .map(|c| c.0.remote.ip().to_canonical())
}

/// The 429 of a locked-out peer: `Retry-After` in whole seconds (at least 1) and
/// `{"error":{"message","type":"rate_limited","retryAfterMs"}}`.
pub(crate) fn rate_limited(wait: std::time::Duration) -> Response {
    let mut res = json_no_store(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"error": {"message": "Too many failed authentication attempts; retry later", "type": "rate_limited", "retryAfterMs": wait.as_millis() as u64}}),
    );
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// `401 {"error":{"message":"Unauthorized","type":"unauthorized"}}`.
pub(crate) fn unauthorized() -> Response {
    json_no_store(
        StatusCode::UNAUTHORIZED,
        &json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}),
    )
}

/// Gateway bearer auth for an HTTP endpoint: `Err(401)` on a wrong or missing bearer,
/// `Err(429 + Retry-After)` while the peer is locked out; failures count against
/// `gateway.auth.rateLimit`. Runs before the body is read, so unauthenticated peers cannot
/// make us buffer it.
pub(crate) fn check_bearer(
    state: &GatewayState,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<(), Response> {
    let auth = state.auth();
    // A browser (an `Origin`) is limited even on loopback: any page can connect from there.
    let browser = headers.contains_key(header::ORIGIN);
    if let Some(ip) = ip
        && let Some(wait) = state.rate_limiter.check(ip, browser, &auth.rate_limit)
    {
        return Err(rate_limited(wait));
    }
    if auth.verify_bearer(bearer(headers).as_deref()) {
        if let Some(ip) = ip {
            state.rate_limiter.record_success(ip);
        }
        return Ok(());
    }
    if let Some(ip) = ip
        && state
            .rate_limiter
            .record_failure(ip, browser, &auth.rate_limit)
            .is_some()
    {
        tracing::warn!(remote = %ip, "too many failed HTTP bearer attempts; locking out");
    }
    Err(unauthorized())
}

/// [`check_bearer`], then the admission check of the connection
/// (`admission::authenticate_request`).
pub(crate) fn authorize(
    state: &GatewayState,
    headers: &HeaderMap,
    ext: &Extensions,
) -> Result<(), Response> {
    check_bearer(state, headers, peer_ip(ext))?;
    match super::admission::authenticate_request(ext) {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_reads_the_scheme_case_insensitively_and_ignores_empty_tokens() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(bearer(&h("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer(&h("bearer  abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer(&h("Bearer ")), None);
        assert_eq!(bearer(&h("Basic abc")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn one_429_body_with_retry_after() {
        let r = rate_limited(std::time::Duration::from_millis(1500));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "rate_limited");
        assert_eq!(v["error"]["retryAfterMs"], 1500);
    }
}
