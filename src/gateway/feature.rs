//! The seam through which feature wings plug into the kernel.
//!
//! The kernel serves frames, HTTP and shutdown; it never names a wing. A wing implements
//! [`Feature`] and the composition root (`commands::gateway`) lists the wings a gateway is
//! built from ([`Features`]). Per generation (one per in-process restart) the kernel asks
//! every wing, in list order, for:
//! - its per-generation state ([`Feature::init`]), kept in the typed extension map
//!   [`GatewayState::extensions`] (handlers reach it by type; the kernel never names it);
//! - its WS methods and events ([`Feature::register_methods`], into the one [`MethodTable`]);
//! - its HTTP routes ([`Feature::routes`]) and request interceptors ([`Feature::layer`],
//!   layered over the whole router inside the WebSocket-upgrade intercept);
//! - background work started once the listeners serve and READY was sent ([`Feature::start`]);
//! - a shutdown step run after admission closes and before the `shutdown` event and close
//!   frames ([`Feature::shutdown`]; e.g. agent runs are aborted so their errors reach the
//!   clients waiting on them);
//! - snapshot contributions: the session defaults of `hello-ok` / `health` / `status`
//!   ([`Feature::default_agent_id`]) and the `health` payload ([`Feature::health`]).
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::Extensions;
use serde_json::Value;

use super::methods::MethodTable;
use super::state::GatewayState;
use crate::config::Config;
use crate::config::paths::Paths;

/// A boxed future a wing's async hook returns.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a wing may read while creating its per-generation state.
#[derive(Debug)]
pub struct FeatureInit<'a> {
    /// Resolved paths (state dir, config path).
    pub paths: &'a Paths,
    /// The generation's config as loaded.
    pub config: &'a Config,
}

/// The session key namespace's default agent when no wing names one (upstream's `main`).
pub(crate) const DEFAULT_AGENT_ID: &str = "main";

/// One feature wing. Every hook has a no-op default.
pub trait Feature: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// Creates this generation's wing state and inserts it into `ext` (called once per
    /// [`GatewayState`], before it exists).
    fn init(&self, _init: &FeatureInit<'_>, _ext: &mut Extensions) {}

    /// Adds the wing's WS methods and events (replacing core stubs of the same name).
    fn register_methods(&self, _table: &mut MethodTable) {}

    /// The wing's HTTP routes, merged into the gateway router.
    fn routes(&self) -> Router<Arc<GatewayState>> {
        Router::new()
    }

    /// Wraps the whole router (all routes and the fallback) in the wing's interceptors.
    fn layer(
        &self,
        router: Router<Arc<GatewayState>>,
        _state: &Arc<GatewayState>,
    ) -> Router<Arc<GatewayState>> {
        router
    }

    /// Starts background work once the gateway serves (after READY).
    fn start(&self, _state: &Arc<GatewayState>) {}

    /// Runs when shutdown (or a restart/handover) begins, before sockets are told.
    fn shutdown<'a>(&'a self, _state: &'a Arc<GatewayState>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// The default agent id this wing configures (`sessionDefaults.defaultAgentId`).
    fn default_agent_id(&self, _cfg: &Config) -> Option<String> {
        None
    }

    /// Amends the `health` payload (keys the kernel already placed keep their position).
    fn health(&self, _state: &GatewayState, _snapshot: &mut Value) {}
}

/// The wings one gateway is built from, in order (cheap to clone).
#[derive(Clone, Default)]
pub struct Features(Arc<[Arc<dyn Feature>]>);

impl std::fmt::Debug for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|w| w.name()))
            .finish()
    }
}

impl Features {
    /// The given wings, in the order their hooks run.
    pub fn new(wings: Vec<Arc<dyn Feature>>) -> Features {
        Features(wings.into())
    }

    /// No wings: the bare kernel (kernel unit tests).
    pub fn none() -> Features {
        Features::default()
    }

    /// The wings.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Feature>> {
        self.0.iter()
    }

    /// Every wing's per-generation state.
    pub fn init(&self, init: &FeatureInit<'_>) -> Extensions {
        let mut ext = Extensions::new();
        for w in self.iter() {
            w.init(init, &mut ext);
        }
        ext
    }

    /// Adds every wing's methods to `table`.
    pub fn register_methods(&self, table: &mut MethodTable) {
        for w in self.iter() {
            w.register_methods(table);
        }
    }

    /// Every wing's routes merged into `router`.
    pub fn merge_routes(&self, router: Router<Arc<GatewayState>>) -> Router<Arc<GatewayState>> {
        self.iter().fold(router, |r, w| r.merge(w.routes()))
    }

    /// Every wing's interceptors around `router` (the first wing's innermost).
    pub fn layer(
        &self,
        router: Router<Arc<GatewayState>>,
        state: &Arc<GatewayState>,
    ) -> Router<Arc<GatewayState>> {
        self.iter().fold(router, |r, w| w.layer(r, state))
    }

    /// Starts every wing's background work.
    pub fn start(&self, state: &Arc<GatewayState>) {
        for w in self.iter() {
            w.start(state);
        }
    }

    /// Every wing's shutdown step, in order.
    pub async fn shutdown(&self, state: &Arc<GatewayState>) {
        for w in self.iter() {
            w.shutdown(state).await;
        }
    }

    /// The first wing's default agent id, else [`DEFAULT_AGENT_ID`].
    pub fn default_agent_id(&self, cfg: &Config) -> String {
        self.iter()
            .find_map(|w| w.default_agent_id(cfg))
            .unwrap_or_else(|| DEFAULT_AGENT_ID.to_string())
    }

    /// Every wing's `health` contribution.
    pub fn health(&self, state: &GatewayState, snapshot: &mut Value) {
        for w in self.iter() {
            w.health(state, snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);
    impl Feature for Named {
        fn name(&self) -> &'static str {
            "named"
        }
        fn default_agent_id(&self, _cfg: &Config) -> Option<String> {
            Some(self.0.to_string())
        }
        fn init(&self, _init: &FeatureInit<'_>, ext: &mut Extensions) {
            ext.insert(Arc::new(self.0.to_string()));
        }
    }

    #[test]
    fn the_first_wing_names_the_default_agent_and_none_means_main() {
        let cfg = Config::default();
        assert_eq!(Features::none().default_agent_id(&cfg), "main");
        let f = Features::new(vec![Arc::new(Named("ops")), Arc::new(Named("other"))]);
        assert_eq!(f.default_agent_id(&cfg), "ops");
    }

    /// A wing that serves `/probe`, stamps every response, and records its hooks.
    struct Recorder(&'static str, Arc<std::sync::Mutex<Vec<String>>>);
    impl Feature for Recorder {
        fn name(&self) -> &'static str {
            self.0
        }
        fn routes(&self) -> Router<Arc<GatewayState>> {
            let name = self.0;
            Router::new().route(
                &format!("/{name}"),
                axum::routing::get(move || async move { name }),
            )
        }
        fn layer(
            &self,
            router: Router<Arc<GatewayState>>,
            _state: &Arc<GatewayState>,
        ) -> Router<Arc<GatewayState>> {
            let name = self.0;
            router.layer(axum::middleware::map_response(
                move |mut r: axum::response::Response| async move {
                    r.headers_mut()
                        .append("x-wing", axum::http::HeaderValue::from_static(name));
                    r
                },
            ))
        }
        fn start(&self, _state: &Arc<GatewayState>) {
            self.1.lock().unwrap().push(format!("start {}", self.0));
        }
        fn shutdown<'a>(&'a self, _state: &'a Arc<GatewayState>) -> BoxFuture<'a, ()> {
            Box::pin(async move { self.1.lock().unwrap().push(format!("stop {}", self.0)) })
        }
    }

    #[tokio::test]
    async fn the_router_serves_wing_routes_inside_their_layers_and_hooks_run_in_order() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), dir.path().display().to_string())].into();
        let paths = Paths::resolve(None, false, &env).unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let features = Features::new(vec![
            Arc::new(Recorder("a", log.clone())),
            Arc::new(Recorder("b", log.clone())),
        ]);
        let state = GatewayState::new(super::super::state::StateInit {
            features,
            ..super::super::state::StateInit::for_tests(paths)
        });
        let app = super::super::http::router(state.clone());
        let req = axum::http::Request::get("/b")
            .body(axum::body::Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let stamps: Vec<_> = res.headers().get_all("x-wing").iter().collect();
        assert_eq!(stamps, ["a", "b"], "the first wing's layer is innermost");
        let body = axum::body::to_bytes(res.into_body(), 64).await.unwrap();
        assert_eq!(&body[..], b"b");
        state.features.start(&state);
        state.features.shutdown(&state).await;
        assert_eq!(
            *log.lock().unwrap(),
            ["start a", "start b", "stop a", "stop b"]
        );
    }

    #[test]
    fn init_collects_each_wings_state_by_type() {
        let dir = tempfile::tempdir().unwrap();
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), dir.path().display().to_string())].into();
        let paths = Paths::resolve(None, false, &env).unwrap();
        let cfg = Config::default();
        let f = Features::new(vec![Arc::new(Named("a"))]);
        let ext = f.init(&FeatureInit {
            paths: &paths,
            config: &cfg,
        });
        assert_eq!(ext.get::<Arc<String>>().map(|s| s.as_str()), Some("a"));
        assert!(
            Features::none()
                .init(&FeatureInit {
                    paths: &paths,
                    config: &cfg
                })
                .is_empty()
        );
    }
}
