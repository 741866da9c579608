//! Serving accepted connections with hyper's HTTP/1 server directly, instead of `axum::serve`,
//! because `axum::serve` sets no timer and so no header-read deadline: a slowloris peer (or an
//! idle keep-alive one) could hold a connection slot forever, and 1024 of them lock everyone
//! out. Here every connection gets [`header_read_timeout`] for each request head, the peer
//! address as `ConnectInfo<PeerInfo>` and its [`ReadBudget`] as request extensions, and
//! graceful shutdown (idle connections close, in-flight requests finish) when the gateway's
//! shutdown token fires. Connection tasks are tracked, so the shutdown drain waits for them.
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use super::listener::{GatewayListener, ReadBudget};
use super::shutdown::Shutdown;
use super::ws::PeerInfo;

/// Default deadline for a complete request head (first request and each keep-alive one).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a connection buffers, and the largest request head (start line + headers): a
/// bigger head is refused with 431. hyper's default is ~408 KiB, which an unfinished head
/// could hold for the whole header deadline (1,000 such sockets: 400 MB). Real heads are far
/// smaller (browsers cap a cookie at 4 KiB; bearer tokens are short).
pub(crate) const MAX_BUF_SIZE: usize = 32 * 1024;

/// Header fields per request (hyper's default, stated: more is refused with 431).
pub(crate) const MAX_HEADERS: usize = 100;

/// The header-read deadline: `OPENCLAW_HEADER_READ_TIMEOUT_MS` or [`HEADER_READ_TIMEOUT`].
pub(crate) fn header_read_timeout() -> Duration {
    ms_knob("OPENCLAW_HEADER_READ_TIMEOUT_MS", HEADER_READ_TIMEOUT)
}

/// A positive millisecond count from the environment, else `default`.
fn ms_knob(key: &str, default: Duration) -> Duration {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|v| *v > 0)
        .map(Duration::from_millis)
        .unwrap_or(default)
}

/// Default deadline for an authenticated request's whole body.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The body-read deadline of every authenticated HTTP route:
/// `OPENCLAW_BODY_READ_TIMEOUT_MS` or [`BODY_READ_TIMEOUT`]. A peer that passed auth but
/// trickles (or never sends) its body would otherwise hold the connection and its buffer.
/// Read from the environment once per process, not on every request.
pub(crate) fn body_read_timeout() -> Duration {
    static T: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *T.get_or_init(|| ms_knob("OPENCLAW_BODY_READ_TIMEOUT_MS", BODY_READ_TIMEOUT))
}

/// The message of a 408 at the body deadline.
pub(crate) fn body_timeout_message(t: Duration) -> String {
    format!(
        "request body not received within {} ms; send the whole body with the request (deadline: OPENCLAW_BODY_READ_TIMEOUT_MS)",
        t.as_millis()
    )
}

/// Accepts until shutdown begins, serving each connection on its own tracked task.
pub(crate) async fn serve(mut listener: GatewayListener, app: Router, shutdown: Shutdown) {
    let timeout = header_read_timeout();
    let token = shutdown.token().clone();
    loop {
        let (io, remote) = tokio::select! {
            biased;
            _ = token.cancelled() => return,
            c = axum::serve::Listener::accept(&mut listener) => c,
        };
        let local = io
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let peer = PeerInfo { remote, local };
        let budget: ReadBudget = io.budget();
        let slot = io.slot();
        let inner = TowerToHyperService::new(app.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(budget.clone());
            req.extensions_mut().insert(slot.clone());
            hyper::service::Service::call(&inner, req)
        });
        let token = token.clone();
        shutdown.tracker().spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(MAX_BUF_SIZE)
                .max_header_size(MAX_BUF_SIZE)
                .max_headers(MAX_HEADERS);
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(remote = %remote, "connection ended: {e}");
                    }
                }
                _ = token.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
