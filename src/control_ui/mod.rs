//! The Control UI wing: serves a built Control UI (the official bundle, e.g. an unpacked
//! `openclaw@2026.9.6` package's `dist/control-ui`) from `gateway.controlUi.root` under
//! `gateway.controlUi.basePath`, its `control-ui-config.json` behind auth, and — with no usable
//! root — the gateway's own page, which says how to get the official one.
//!
//! It plugs into the kernel through one interceptor ([`Feature::layer`]): requests no route
//! matched come back from the kernel as a 404 marked [`Unrouted`]; GET/HEAD ones under the base
//! path are answered here instead. Every answer carries `X-Frame-Options: DENY` and a CSP (the
//! kernel adds nosniff and `Referrer-Policy: no-referrer` to all responses).
//!
//! Root and base path are read once per generation (a change is a restart, see
//! `config::reload`); a root that does not exist or holds no `index.html` is a startup warning
//! naming the path, and the own page is served.
mod csp;
mod page;
mod retain;
mod serve;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::gateway::feature::{Feature, FeatureInit};
use crate::gateway::http::Unrouted;
use crate::gateway::http_api;
use crate::gateway::state::GatewayState;

/// The wing (listed by the composition root).
#[derive(Debug, Clone, Copy, Default)]
pub struct ControlUiWing;

/// Where the UI comes from in this generation.
#[derive(Debug, Clone, PartialEq)]
enum Root {
    /// `gateway.controlUi.root` is not set: the own page.
    Unset,
    /// Set, but not servable: the own page, which names the path and the reason.
    Unusable { path: PathBuf, reason: String },
    /// A directory holding `index.html` (its canonical path).
    Ready(PathBuf),
}

/// This generation's Control UI settings.
#[derive(Debug, Clone)]
struct ControlUi {
    enabled: bool,
    base_path: String,
    root: Root,
    /// Where earlier asset generations are kept (`<state>/control-ui-assets`).
    retained: PathBuf,
}

/// `basePath` as upstream normalizes it: `""` for none or `/`, else a leading and no trailing
/// slash.
pub(crate) fn normalize_base_path(raw: Option<&str>) -> String {
    let v = raw.map(str::trim).unwrap_or("");
    if v.is_empty() || v == "/" {
        return String::new();
    }
    let with = if v.starts_with('/') {
        v.to_string()
    } else {
        format!("/{v}")
    };
    with.strip_suffix('/').map(str::to_string).unwrap_or(with)
}

/// Resolves `gateway.controlUi.root` (`~/` is the user's home; a relative path is taken from
/// the working directory, as upstream does).
fn resolve_root(raw: Option<&str>, home: &Path) -> Root {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Root::Unset;
    };
    let path = if raw == "~" {
        home.to_path_buf()
    } else if let Some(rest) = raw.strip_prefix("~/") {
        home.join(rest)
    } else {
        let p = PathBuf::from(raw);
        if p.is_absolute() {
            p
        } else {
            std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
        }
    };
    let unusable = |reason: String| Root::Unusable {
        path: path.clone(),
        reason,
    };
    let real = match std::fs::canonicalize(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return unusable("it does not exist".into());
        }
        Err(e) => return unusable(format!("it cannot be read ({e})")),
    };
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return unusable("it is not a directory".into()),
        Err(e) => return unusable(format!("it cannot be read ({e})")),
    }
    match std::fs::metadata(real.join("index.html")) {
        Ok(m) if m.is_file() => Root::Ready(real),
        _ => unusable("it holds no index.html (is it the built dist/control-ui directory?)".into()),
    }
}

impl ControlUi {
    fn from_config(cfg: &Config, home: &Path, state_dir: &Path) -> ControlUi {
        let c = &cfg.gateway.control_ui;
        ControlUi {
            enabled: c.enabled.unwrap_or(true),
            base_path: normalize_base_path(c.base_path.as_deref()),
            root: resolve_root(c.root.as_deref(), home),
            retained: state_dir.join("control-ui-assets"),
        }
    }

    /// The paths `control-ui-config.json` answers on (upstream's canonical one and its aliases).
    fn is_config_path(&self, path: &str) -> bool {
        let bp = &self.base_path;
        path == format!("{bp}/control-ui-config.json")
            || path == format!("{bp}/__openclaw/control-ui-config.json")
            || (bp.is_empty() && path == "/__openclaw__/control-ui-config.json")
    }

    /// The text the own page shows.
    fn notice(&self) -> String {
        match &self.root {
            Root::Unset => format!(
                "This is the gateway's built-in page. For the full OpenClaw Control UI, {}.",
                page::HOW_TO_GET_THE_UI
            ),
            Root::Unusable { path, reason } => format!(
                "gateway.controlUi.root is {}, but {reason}; this is the gateway's built-in page \
                 instead. To serve the official Control UI, {}.",
                path.display(),
                page::HOW_TO_GET_THE_UI
            ),
            Root::Ready(_) => String::new(),
        }
    }
}

impl Feature for ControlUiWing {
    fn name(&self) -> &'static str {
        "control_ui"
    }

    fn init(&self, init: &FeatureInit<'_>, ext: &mut Extensions) {
        let ui = ControlUi::from_config(init.config, &init.paths.home, &init.paths.state_dir);
        match (&ui.root, ui.enabled) {
            (Root::Unusable { path, reason }, true) => tracing::warn!(
                root = %path.display(),
                "gateway.controlUi.root {} is not usable: {reason}; serving the built-in page. \
                 To serve the official Control UI, {}",
                path.display(),
                page::HOW_TO_GET_THE_UI
            ),
            (Root::Ready(real), true) => tracing::info!(
                root = %real.display(),
                base_path = %ui.base_path,
                "serving the Control UI from {}",
                real.display()
            ),
            _ => {}
        }
        ext.insert(Arc::new(ui));
    }

    fn routes(&self) -> Router<Arc<GatewayState>> {
        Router::new()
    }

    /// Keeps this bundle's asset generation for tabs that outlive an upgrade (off the
    /// startup path).
    fn start(&self, state: &Arc<GatewayState>) {
        let Some(ui) = state.extension::<Arc<ControlUi>>().cloned() else {
            return;
        };
        let Root::Ready(real) = ui.root.clone() else {
            return;
        };
        if !ui.enabled {
            return;
        }
        tokio::task::spawn_blocking(move || {
            let Ok(index) = std::fs::read_to_string(real.join("index.html")) else {
                return;
            };
            let Some(build) = serve::build_id(&index) else {
                return;
            };
            match retain::keep(&real, build, &ui.retained) {
                Ok(()) => tracing::info!(
                    dir = %ui.retained.display(),
                    "kept the Control UI assets of build {build} for tabs that outlive an upgrade"
                ),
                Err(e) => {
                    tracing::warn!(
                    dir = %ui.retained.display(),
                    "could not keep the Control UI assets of build {build} for tabs that \
                     outlive an upgrade: {e}"
                    );
                }
            }
        });
    }

    fn layer(
        &self,
        router: Router<Arc<GatewayState>>,
        state: &Arc<GatewayState>,
    ) -> Router<Arc<GatewayState>> {
        router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            intercept,
        ))
    }
}

/// How a path relates to the UI mounted at `base_path`.
#[derive(Debug, PartialEq)]
enum Route<'a> {
    /// Not the UI's (the kernel's 404 stands).
    NotUi,
    /// Reserved: 404.
    NotFound,
    /// The mount point itself: redirect to it with a slash.
    Redirect(String),
    /// The UI path below the mount (starts with `/`).
    Serve(&'a str),
}

fn classify<'a>(base_path: &str, path: &'a str, query: Option<&str>) -> Route<'a> {
    if base_path.is_empty() {
        if path == "/ui" || path.starts_with("/ui/") {
            return Route::NotFound;
        }
        return Route::Serve(path);
    }
    if path == base_path {
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        return Route::Redirect(format!("{base_path}/{q}"));
    }
    match path.strip_prefix(base_path) {
        Some(rest) if rest.starts_with('/') => Route::Serve(rest),
        _ => Route::NotUi,
    }
}

async fn intercept(State(state): State<Arc<GatewayState>>, req: Request, next: Next) -> Response {
    let Some(ui) = state.extension::<Arc<ControlUi>>().cloned() else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    if !ui.enabled || !(method == Method::GET || method == Method::HEAD) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if ui.is_config_path(&path) {
        let res = config_json(&state, &ui, &req);
        return with_ui_headers(res, host.as_deref());
    }
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let kernel = next.run(req).await;
    if kernel.extensions().get::<Unrouted>().is_none() {
        return kernel;
    }
    let answer = match classify(&ui.base_path, &path, query.as_deref()) {
        Route::NotUi => return kernel,
        Route::NotFound => serve::not_found(),
        Route::Redirect(location) => {
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Route::Serve(ui_path) => {
            let served = match &ui.root {
                Root::Ready(real) => {
                    let (real, ui_path, base) =
                        (real.clone(), ui_path.to_string(), ui.base_path.clone());
                    let retained = ui.retained.clone();
                    tokio::task::spawn_blocking(move || {
                        serve::serve(
                            &real,
                            &serve::Ask {
                                method: &method,
                                ui_path: &ui_path,
                                query: query.as_deref(),
                                headers: &headers,
                                base_path: &base,
                                retained: &retained,
                            },
                        )
                    })
                    .await
                    .unwrap_or_else(|_| Some(serve::not_found()))
                }
                _ => own_page(&ui, ui_path, &method, &headers),
            };
            match served {
                Some(r) => r,
                None => return kernel,
            }
        }
    };
    with_ui_headers(answer, host.as_deref())
}

/// The own page for HTML-accepting requests; asset paths 404; others are not ours.
fn own_page(
    ui: &ControlUi,
    ui_path: &str,
    method: &Method,
    headers: &axum::http::HeaderMap,
) -> Option<Response> {
    if serve::is_asset_extension(&serve::extension(ui_path)) {
        return Some(serve::not_found());
    }
    if !serve::accepts_html(headers) {
        return None;
    }
    let html = page::render(&ui.notice());
    let body = if *method == Method::HEAD {
        String::new()
    } else {
        html
    };
    Some(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_SECURITY_POLICY, page::csp()),
            ],
            body,
        )
            .into_response(),
    )
}

/// Upstream's Control UI headers on every UI answer: no framing, and a CSP (the document's own
/// when it set one).
fn with_ui_headers(mut res: Response, host: Option<&str>) -> Response {
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(v) = HeaderValue::from_str(&csp::policy(&[], false, host))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// `GET <basePath>/control-ui-config.json`: 401 without the gateway's credentials (bearer),
/// else upstream's field set with this gateway's values. Features this gateway does not have
/// (the terminal, CLI agents, plugin frames) are reported off, as upstream reports them disabled.
fn config_json(state: &GatewayState, ui: &ControlUi, req: &Request) -> Response {
    if let Err(res) =
        crate::gateway::device::authorize_ui_read(state, req.headers(), req.extensions())
    {
        return res;
    }
    let cfg = state.config();
    let agent_id = state.features.default_agent_id(&cfg);
    let body = config_body(
        &cfg,
        &ui.base_path,
        &agent_id,
        state.auth().mode != crate::gateway::auth::Mode::None,
    );
    let mut res = if req.method() == Method::HEAD {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        r
    } else {
        http_api::json(StatusCode::OK, &body)
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The assistant's name and avatar: the agent's `identity` in `agents.list`, else upstream's
/// defaults (`Assistant`, `A`).
fn assistant_identity(cfg: &Config, agent_id: &str) -> (String, String) {
    let identity = cfg
        .get("agents.list")
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter().find(|a| {
                a.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.trim().eq_ignore_ascii_case(agent_id))
            })
        })
        .and_then(|a| a.get("identity"));
    let text = |k: &str| {
        identity
            .and_then(|i| i.get(k))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    (
        text("name").unwrap_or_else(|| "Assistant".into()),
        text("avatar")
            .or_else(|| text("emoji"))
            .unwrap_or_else(|| "A".into()),
    )
}

fn config_body(cfg: &Config, base_path: &str, agent_id: &str, auth_required: bool) -> Value {
    let ui = |k: &str| cfg.get(&format!("gateway.controlUi.{k}"));
    let (name, avatar) = assistant_identity(cfg, agent_id);
    let mut o = Map::new();
    o.insert("basePath".into(), json!(base_path));
    o.insert("assistantName".into(), json!(name));
    o.insert("assistantAvatar".into(), json!(avatar));
    o.insert("assistantAgentId".into(), json!(agent_id));
    o.insert("serverVersion".into(), json!(crate::VERSION));
    let sandbox = match ui("embedSandbox").and_then(Value::as_str) {
        Some("trusted") => "trusted",
        Some("strict") => "strict",
        _ => "scripts",
    };
    o.insert("embedSandbox".into(), json!(sandbox));
    o.insert(
        "allowExternalEmbedUrls".into(),
        json!(ui("allowExternalEmbedUrls") == Some(&Value::Bool(true))),
    );
    o.insert(
        "automaticallyFetchFavicons".into(),
        json!(ui("automaticallyFetchFavicons") != Some(&Value::Bool(false))),
    );
    if let Some(seam) = cfg.get("ui.seamColor") {
        o.insert("seamColor".into(), seam.clone());
    }
    if let Some(env) = ui("environment") {
        o.insert("environment".into(), env.clone());
    }
    o.insert(
        "communityInvite".into(),
        json!(ui("communityInvite") != Some(&Value::Bool(false))),
    );
    o.insert("terminalEnabled".into(), json!(false));
    o.insert("cliAgentsEnabled".into(), json!(false));
    o.insert("pluginAssetsRequireAuth".into(), json!(auth_required));
    o.insert("pluginFrameGrants".into(), json!([]));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_normalize_as_upstream() {
        assert_eq!(normalize_base_path(None), "");
        assert_eq!(normalize_base_path(Some(" / ")), "");
        assert_eq!(normalize_base_path(Some("ui/")), "/ui");
        assert_eq!(normalize_base_path(Some("/a/b")), "/a/b");
    }

    #[test]
    fn paths_are_classified_against_the_mount() {
        assert_eq!(classify("", "/chat", None), Route::Serve("/chat"));
        assert_eq!(classify("", "/ui/x", None), Route::NotFound);
        assert_eq!(
            classify("/ui", "/ui", Some("a=1")),
            Route::Redirect("/ui/?a=1".into())
        );
        assert_eq!(
            classify("/ui", "/ui/assets/x.js", None),
            Route::Serve("/assets/x.js")
        );
        assert_eq!(classify("/ui", "/uix", None), Route::NotUi);
        assert_eq!(classify("/ui", "/", None), Route::NotUi);
    }

    #[test]
    fn roots_are_checked_for_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        assert_eq!(resolve_root(None, home), Root::Unset);
        assert!(matches!(
            resolve_root(Some("~/missing"), home),
            Root::Unusable { ref path, ref reason } if path == &home.join("missing") && reason.contains("does not exist")
        ));
        std::fs::create_dir(home.join("empty")).unwrap();
        assert!(matches!(
            resolve_root(Some("~/empty"), home),
            Root::Unusable { ref reason, .. } if reason.contains("no index.html")
        ));
        std::fs::write(home.join("empty/index.html"), "<html></html>").unwrap();
        assert_eq!(
            resolve_root(Some(home.join("empty").to_str().unwrap()), home),
            Root::Ready(std::fs::canonicalize(home.join("empty")).unwrap())
        );
    }

    #[test]
    fn config_json_reports_this_gateways_values() {
        let cfg = Config::parse(
            Path::new("/x/openclaw.json"),
            "{ agents: { list: [{ id: 'main', identity: { name: 'Claw', emoji: '🦞' } }] }, \
             gateway: { controlUi: { embedSandbox: 'strict', communityInvite: false } } }"
                .into(),
        )
        .unwrap();
        let v = config_body(&cfg, "/ui", "main", true);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "basePath",
                "assistantName",
                "assistantAvatar",
                "assistantAgentId",
                "serverVersion",
                "embedSandbox",
                "allowExternalEmbedUrls",
                "automaticallyFetchFavicons",
                "communityInvite",
                "terminalEnabled",
                "cliAgentsEnabled",
                "pluginAssetsRequireAuth",
                "pluginFrameGrants"
            ]
        );
        assert_eq!(v["assistantName"], "Claw");
        assert_eq!(v["assistantAvatar"], "🦞");
        assert_eq!(v["embedSandbox"], "strict");
        assert_eq!(v["communityInvite"], false);
        assert_eq!(v["automaticallyFetchFavicons"], true);
        let d = config_body(&Config::default(), "", "main", false);
        assert_eq!(
            (d["assistantName"].as_str(), d["assistantAvatar"].as_str()),
            (Some("Assistant"), Some("A"))
        );
        assert_eq!(d["pluginAssetsRequireAuth"], false);
    }
}
