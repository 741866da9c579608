//! Test support that ships in the library (for `tests/`, `bench/` and `fuzz/`): the one
//! [`GatewayState`] fixture and the gateway's test hooks. Not a stable API.
//!
//! # Test hooks
//! All of them work only in debug builds or with the `test-hooks` feature:
//! - `OPENCLAW_TEST_METHODS=1`: the gateway serves `test.sleep {ms}` (the `test_hooks` wing), which
//!   answers after `ms` (≤ 60 s) so a test can restart the gateway between a request and its
//!   response;
//! - `OPENCLAW_TEST_NO_MANAGER_QUERY=1`: a handover cannot ask the service manager whether a
//!   stop is a restart (read by `gateway::handover`);
//! - `OPENCLAW_TEST_READY_DELAY_MS`: `READY=1` is sent that much later
//!   (`service::systemd::notify`);
//! - `OPENCLAW_TEST_WEDGE_FILE`: the runtime wedges while the file exists
//!   (`service::systemd::watchdog`).
//!
//! The last three are read where they act (those layers sit below this module).
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::config::paths::Paths;
use crate::gateway::auth::ResolvedAuth;
use crate::gateway::methods::MethodTable;
use crate::gateway::state::{GatewayState, StateInit};

/// Paths with `HOME=home` and no profile (the state dir is `home/.openclaw`).
///
/// # Panics
/// When the paths cannot be resolved.
pub fn paths_in(home: &Path) -> Paths {
    let env: std::collections::HashMap<String, String> =
        [("HOME".to_string(), home.display().to_string())].into();
    Paths::resolve(None, false, &env).expect("paths under a test HOME")
}

/// The one [`GatewayState`] fixture: the real wings of this build
/// (`commands::gateway::wings`) with their methods on top of the core table, loopback, token
/// `t`, default config and settings (see [`StateInit::for_tests`]). Adjust, then
/// [`build`](StateFixture::build).
#[derive(Debug)]
pub struct StateFixture {
    init: StateInit,
}

impl StateFixture {
    /// The fixture for a gateway whose state dir is `paths.state_dir`.
    pub fn new(paths: Paths) -> StateFixture {
        let wings = crate::commands::gateway::wings();
        let mut init = StateInit::for_tests(paths);
        wings.register_methods(&mut init.methods);
        init.features = wings;
        StateFixture { init }
    }

    /// The fixture with `HOME=home` (see [`paths_in`]).
    pub fn in_home(home: &Path) -> StateFixture {
        StateFixture::new(paths_in(home))
    }

    /// Uses `config`.
    pub fn config(mut self, config: Config) -> StateFixture {
        self.init.config = config;
        self
    }

    /// Uses `auth`.
    pub fn auth(mut self, auth: ResolvedAuth) -> StateFixture {
        self.init.auth = auth;
        self
    }

    /// Reports `addr` as the listening address (and its port).
    pub fn listen(mut self, addr: SocketAddr) -> StateFixture {
        self.init.port = addr.port();
        self.init.listen = vec![addr];
        self
    }

    /// Replaces the method table (the wings stay, e.g. for their routes).
    pub fn methods(mut self, methods: MethodTable) -> StateFixture {
        self.init.methods = methods;
        self
    }

    /// The state.
    pub fn build(self) -> Arc<GatewayState> {
        GatewayState::new(self.init)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_composes_the_real_wings() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFixture::in_home(dir.path()).build();
        let names = state.methods.method_names();
        assert!(names.contains(&"health"), "core methods");
        assert!(names.contains(&"chat.send"), "agent wing methods");
        assert!(state.extension::<Arc<crate::agent::Agents>>().is_some());
        assert_eq!(
            format!("{:?}", state.features),
            "[\"agent\", \"control_ui\"]"
        );
    }

    /// `/v1/*` and `/tools/invoke` share one bearer check: the same lockout, the same 429.
    #[tokio::test]
    async fn the_agent_wing_answers_a_lockout_with_the_gateways_429() {
        use axum::extract::ConnectInfo;
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse(
            Path::new("/c"),
            "{gateway:{http:{endpoints:{chatCompletions:{enabled:true}}}}}".into(),
        )
        .unwrap();
        let state = StateFixture::in_home(dir.path())
            .config(cfg)
            .auth(ResolvedAuth {
                mode: crate::gateway::auth::Mode::Token,
                token: Some("t".into()),
                password: None,
                rate_limit: crate::config::RateLimitConfig {
                    max_attempts: 1,
                    window_ms: 60_000,
                    lockout_ms: 60_000,
                    exempt_loopback: false,
                },
            })
            .build();
        let peer = crate::gateway::ws::PeerInfo {
            remote: "127.0.0.1:4000".parse().unwrap(),
            local: "127.0.0.1:1".parse().unwrap(),
        };
        let send = |method: &str, path: &str| {
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", "Bearer nope")
                .body(axum::body::Body::empty())
                .unwrap();
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = crate::gateway::http::router(state.clone());
            async move {
                let res = app.oneshot(req).await.unwrap();
                let status = res.status().as_u16();
                let body = axum::body::to_bytes(res.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (
                    status,
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                )
            }
        };
        let (status, body) = send("GET", "/v1/models").await;
        assert_eq!(status, 401, "{body}");
        let (status, v1) = send("GET", "/v1/models").await;
        assert_eq!(status, 429, "{v1}");
        let (status, tools) = send("POST", "/tools/invoke").await;
        assert_eq!(status, 429, "{tools}");
        assert_eq!(v1["error"]["type"], "rate_limited");
        assert!(v1["error"]["retryAfterMs"].as_u64().unwrap() > 0);
        assert_eq!(v1["error"]["message"], tools["error"]["message"]);
        assert_eq!(v1["error"]["type"], tools["error"]["type"]);
    }
}
