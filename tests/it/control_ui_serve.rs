//! The Control UI wing over real HTTP (control-ui.md §5): a built UI served from
//! `gateway.controlUi.root` under `basePath`, with precompressed siblings, MIME types, caching
//! and 304s, the app-shell fallback, the `index.html` rewrite and its CSP, the config JSON
//! behind auth, safe file access, and the own page when no usable root is configured.
use std::path::Path;

use base64::Engine as _;
use sha2::Digest as _;

use crate::support::{Gateway, http};

const INLINE: &str = "\n  globalThis.__boot = 1;\n";

/// A small built UI: an index with one inline and one module script, fingerprinted assets with
/// `.br`/`.gz` siblings, root public assets, a subdirectory, and two symlinks (one inside, one
/// escaping the root).
fn fake_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("control-ui");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::create_dir_all(root.join("fonts")).unwrap();
    std::fs::write(
        root.join("index.html"),
        format!(
            "<!doctype html>\n<html data-openclaw-control-ui-build-id=\"b-1\" lang=\"en\"><head>\
             <link rel=\"icon\" href=\"./favicon.svg\"><link rel=\"manifest\" href=\"./manifest.webmanifest\">\
             <script>{INLINE}</script><script type=\"module\" crossorigin src=\"./assets/app-1.js\"></script>\
             <link rel=\"stylesheet\" href=\"./assets/app-1.css\"></head><body><openclaw-app></openclaw-app></body></html>"
        ),
    )
    .unwrap();
    std::fs::write(root.join("assets/app-1.js"), "console.log('identity')").unwrap();
    std::fs::write(root.join("assets/app-1.js.br"), "BROTLI-BYTES").unwrap();
    std::fs::write(root.join("assets/app-1.js.gz"), "GZIP-BYTES").unwrap();
    std::fs::write(root.join("assets/app-1.css"), "body{}").unwrap();
    std::fs::write(root.join("assets/logo.png"), "PNG").unwrap();
    std::fs::write(root.join("assets/mod.wasm"), "WASM").unwrap();
    std::fs::write(root.join("fonts/inter.woff2"), "WOFF2").unwrap();
    std::fs::write(root.join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(root.join("manifest.webmanifest"), "{}").unwrap();
    std::fs::write(root.join("sw.js"), "self.x=1").unwrap();
    std::fs::write(dir.join("secret.txt"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("assets/escape.js")).unwrap();
    std::os::unix::fs::symlink(root.join("assets/app-1.css"), root.join("assets/alias.css"))
        .unwrap();
    std::fs::hard_link(dir.join("secret.txt"), root.join("assets/hard.js")).unwrap();
    root
}

fn gateway_with(root: &Path, base_path: Option<&str>) -> Gateway {
    let b = Gateway::builder();
    let token = b.token.clone();
    let bp = base_path
        .map(|p| format!("basePath: '{p}', "))
        .unwrap_or_default();
    b.config(&format!(
        "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }}, \
           controlUi: {{ {bp}root: '{}' }} }} }}",
        root.display()
    ))
    .start()
}

const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");

fn ui_headers_present(r: &crate::support::HttpResponse) {
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{:?}", r.headers);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let csp = r.header("content-security-policy").expect("CSP");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[test]
fn control_ui_serves_assets_with_precompressed_siblings_mime_and_immutable_caching() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with(&fake_root(dir.path()), None);
    let br = http(
        gw.port,
        "GET",
        "/assets/app-1.js",
        &[("accept-encoding", "gzip, deflate, br")],
        "",
    );
    assert_eq!(br.status, 200);
    assert_eq!(br.body, "BROTLI-BYTES");
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        br.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(
        br.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    ui_headers_present(&br);
    let gz = http(
        gw.port,
        "GET",
        "/assets/app-1.js",
        &[("accept-encoding", "gzip")],
        "",
    );
    assert_eq!(
        (gz.body.as_str(), gz.header("content-encoding")),
        ("GZIP-BYTES", Some("gzip"))
    );
    let plain = http(gw.port, "GET", "/assets/app-1.js", &[], "");
    assert_eq!(plain.body, "console.log('identity')");
    assert_eq!(plain.header("content-encoding"), None);
    // No sibling: identity even when br is accepted.
    let css = http(
        gw.port,
        "GET",
        "/assets/app-1.css",
        &[("accept-encoding", "br")],
        "",
    );
    assert_eq!(
        (css.body.as_str(), css.header("content-encoding")),
        ("body{}", None)
    );
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    for (path, mime) in [
        ("/assets/logo.png", "image/png"),
        ("/assets/mod.wasm", "application/wasm"),
        ("/fonts/inter.woff2", "font/woff2"),
        ("/favicon.svg", "image/svg+xml"),
        (
            "/manifest.webmanifest",
            "application/manifest+json; charset=utf-8",
        ),
    ] {
        let r = http(gw.port, "GET", path, &[], "");
        assert_eq!(
            (r.status, r.header("content-type")),
            (200, Some(mime)),
            "{path}"
        );
    }
    // Deep links reach the assets (the app is loaded from /chat/main as well).
    let deep = http(gw.port, "GET", "/chat/assets/app-1.css", &[], "");
    assert_eq!((deep.status, deep.body.as_str()), (200, "body{}"));
    // The siblings are not resources of their own.
    assert_eq!(
        http(gw.port, "GET", "/assets/app-1.js.br", &[], "").status,
        404
    );
    // HEAD: the headers and length of the representation, no body.
    let head = http(
        gw.port,
        "HEAD",
        "/assets/app-1.js",
        &[("accept-encoding", "br")],
        "",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("12"));
    assert_eq!(head.body, "");
    // Identity refused and no sibling: 406.
    let refused = http(
        gw.port,
        "GET",
        "/assets/app-1.css",
        &[("accept-encoding", "br, identity;q=0")],
        "",
    );
    assert_eq!(refused.status, 406);
}

#[test]
fn control_ui_revalidates_documents_sw_and_manifest_with_last_modified() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with(&fake_root(dir.path()), None);
    for path in ["/sw.js", "/manifest.webmanifest", "/favicon.svg"] {
        let r = http(gw.port, "GET", path, &[], "");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        let lm = r
            .header("last-modified")
            .expect("Last-Modified")
            .to_string();
        let again = http(gw.port, "GET", path, &[("if-modified-since", &lm)], "");
        assert_eq!(again.status, 304, "{path}");
        assert_eq!(again.body, "");
        assert_eq!(again.header("last-modified"), Some(lm.as_str()));
        let stale = http(
            gw.port,
            "GET",
            path,
            &[("if-modified-since", "Mon, 01 Jan 1990 00:00:00 GMT")],
            "",
        );
        assert_eq!(stale.status, 200, "{path}");
    }
    // The build id marks versioned public assets immutable; another id does not.
    let v = http(gw.port, "GET", "/favicon.svg?v=b-1", &[], "");
    assert_eq!(
        v.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let other = http(gw.port, "GET", "/favicon.svg?v=old", &[], "");
    assert_eq!(other.header("cache-control"), Some("no-cache"));
    let doc = http(gw.port, "GET", "/", &[HTML], "");
    assert_eq!(doc.header("cache-control"), Some("no-cache"));
}

#[test]
fn control_ui_app_shell_fallback_serves_index_and_404s_assets_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with(&fake_root(dir.path()), None);
    for path in ["/", "/chat/main", "/settings/devices", "/assets/"] {
        let r = http(gw.port, "GET", path, &[HTML], "");
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.contains("<openclaw-app>"), "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        ui_headers_present(&r);
    }
    for path in [
        "/assets/missing.js",
        "/missing.json",
        "/control-ui-missing.css",
        "/fonts/none.woff2",
        "/ui/chat",
    ] {
        let r = http(gw.port, "GET", path, &[HTML], "");
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.body.contains("<openclaw-app>"), "{path}");
    }
    // Not an HTML client: the plain 404 of an unknown path.
    let api = http(
        gw.port,
        "GET",
        "/chat/main",
        &[("accept", "application/json")],
        "",
    );
    assert_eq!(api.status, 404);
    // The kernel's own routes are untouched.
    let health = http(gw.port, "GET", "/health", &[HTML], "");
    assert_eq!(health.json()["ok"], true);
    assert_eq!(http(gw.port, "POST", "/chat/main", &[HTML], "").status, 404);
}

#[test]
fn control_ui_index_is_rewritten_and_its_csp_hashes_the_served_inline_script() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with(&fake_root(dir.path()), Some("/openclaw/"));
    let r = http(gw.port, "GET", "/openclaw/", &[HTML], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<html data-openclaw-control-ui-base-path=\"/openclaw\" data-openclaw-terminal-enabled=\"false\" data-openclaw-control-ui-build-id=\"b-1\" lang=\"en\">"),
        "{}",
        r.body
    );
    assert!(r.body.contains("src=\"/openclaw/assets/app-1.js\""));
    assert!(r.body.contains("href=\"/openclaw/assets/app-1.css\""));
    assert!(r.body.contains("href=\"/openclaw/favicon.svg?v=b-1\""));
    assert!(
        r.body
            .contains("href=\"/openclaw/manifest.webmanifest?v=b-1\"")
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(INLINE));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains(&format!("script-src 'self' 'sha256-{hash}'; ")),
        "{csp}"
    );
    for d in [
        "default-src 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "connect-src 'self' ws: wss:",
    ] {
        assert!(csp.contains(d), "{d}: {csp}");
    }
    ui_headers_present(&r);
    // The mount point redirects to itself with a slash (query kept); outside it is not the UI.
    let redirect = http(gw.port, "GET", "/openclaw?x=1", &[HTML], "");
    assert_eq!(
        (redirect.status, redirect.header("location")),
        (302, Some("/openclaw/?x=1"))
    );
    assert_eq!(http(gw.port, "GET", "/", &[HTML], "").status, 404);
    let asset = http(gw.port, "GET", "/openclaw/assets/app-1.css", &[], "");
    assert_eq!(asset.body, "body{}");
}

#[test]
fn control_ui_refuses_traversal_symlink_escape_and_hard_links() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with(&fake_root(dir.path()), None);
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/assets/escape.js",
        "/assets/hard.js",
        "/%00.js",
    ] {
        let r = http(gw.port, "GET", path, &[HTML], "");
        assert!(!r.body.contains("TOP-SECRET"), "{path} leaked: {}", r.body);
        assert_ne!(
            r.header("content-type"),
            Some("application/javascript; charset=utf-8"),
            "{path}"
        );
    }
    assert_eq!(
        http(gw.port, "GET", "/assets/escape.js", &[], "").status,
        404
    );
    // A symlink that stays inside the root is a file of the root.
    let alias = http(gw.port, "GET", "/assets/alias.css", &[], "");
    assert_eq!((alias.status, alias.body.as_str()), (200, "body{}"));
}

#[test]
fn control_ui_config_json_needs_the_gateway_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with(&fake_root(dir.path()), Some("/ui"));
    let anon = http(gw.port, "GET", "/ui/control-ui-config.json", &[], "");
    assert_eq!(anon.status, 401);
    assert_eq!(anon.json()["error"]["type"], "unauthorized");
    let wrong = http(
        gw.port,
        "GET",
        "/ui/control-ui-config.json",
        &[("authorization", "Bearer nope")],
        "",
    );
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {}", gw.token);
    let ok = http(
        gw.port,
        "GET",
        "/ui/control-ui-config.json",
        &[("authorization", &bearer)],
        "",
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("cache-control"), Some("no-cache"));
    assert_eq!(ok.header("x-frame-options"), Some("DENY"));
    let v = ok.json();
    assert_eq!(v["basePath"], "/ui");
    assert_eq!(v["assistantName"], "Assistant");
    assert_eq!(v["assistantAgentId"], "main");
    assert_eq!(v["serverVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["terminalEnabled"], false);
    assert_eq!(v["pluginAssetsRequireAuth"], true);
    assert_eq!(v["pluginFrameGrants"], serde_json::json!([]));
    assert!(!ok.body.contains(&gw.token), "no secret in the config JSON");
    // The legacy alias answers the same way.
    let legacy = http(
        gw.port,
        "GET",
        "/ui/__openclaw/control-ui-config.json",
        &[("authorization", &bearer)],
        "",
    );
    assert_eq!(legacy.json()["basePath"], "/ui");
}

#[test]
fn control_ui_root_without_index_warns_at_startup_and_serves_the_own_page() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ui");
    let gw = gateway_with(&missing, None);
    // Logged before the listening line the spawn waited for.
    let stderr = gw.stderr();
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("gateway.controlUi.root"))
        .unwrap_or_else(|| panic!("no startup warning: {stderr}"));
    assert!(
        warning.contains(&missing.display().to_string()),
        "{warning}"
    );
    assert!(warning.contains("does not exist"), "{warning}");
    let r = http(gw.port, "GET", "/", &[HTML], "");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("OpenClaw Gateway"), "{}", r.body);
    assert!(
        r.body.contains(&missing.display().to_string()),
        "{}",
        r.body
    );
    ui_headers_present(&r);
    // A directory without index.html: the same.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let gw2 = gateway_with(&empty, None);
    assert!(
        gw2.stderr().contains("holds no index.html"),
        "{}",
        gw2.stderr()
    );
    assert!(
        http(gw2.port, "GET", "/", &[HTML], "")
            .body
            .contains("holds no index.html")
    );
}

#[test]
fn control_ui_without_root_serves_the_own_page_telling_how_to_get_the_official_ui() {
    let gw = Gateway::builder().start();
    let r = http(gw.port, "GET", "/", &[HTML], "");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("npm pack openclaw@2026.9.6"), "{}", r.body);
    assert!(r.body.contains("gateway.controlUi.root"), "{}", r.body);
    ui_headers_present(&r);
    assert_eq!(
        http(gw.port, "GET", "/assets/x.js", &[HTML], "").status,
        404
    );
    assert_eq!(http(gw.port, "GET", "/x.json", &[HTML], "").status, 404);
}

#[test]
fn control_ui_disabled_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    let b = Gateway::builder();
    let token = b.token.clone();
    let gw = b
        .config(&format!(
            "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }}, \
               controlUi: {{ enabled: false, root: '{}' }} }} }}",
            root.display()
        ))
        .start();
    for path in ["/", "/assets/app-1.js", "/chat/main"] {
        let r = http(gw.port, "GET", path, &[HTML], "");
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.body.contains("<openclaw-app>"), "{path}");
    }
}

#[test]
fn control_ui_base_path_that_is_not_a_plain_path_is_refused_at_startup() {
    for bad in ["/ui?x=1", "/a/../b", "/a b", "/\"x"] {
        let b = Gateway::builder();
        let token = b.token.clone();
        let done = b
            .config(&format!(
                "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }}, \
                   controlUi: {{ basePath: {} }} }} }}",
                serde_json::to_string(bad).unwrap()
            ))
            .run_to_exit();
        assert_eq!(done.status.code(), Some(78), "{bad}: {}", done.stderr);
        assert!(
            done.stderr.contains("controlUi.basePath") && done.stderr.contains("/openclaw"),
            "{bad}: {}",
            done.stderr
        );
    }
}

#[test]
fn control_ui_keeps_serving_the_previous_asset_generation_after_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    let b = Gateway::builder();
    let token = b.token.clone();
    let config = format!(
        "{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }}, \
           controlUi: {{ root: '{}' }} }} }}",
        root.display()
    );
    let gw = b.clone().config(&config).start();
    assert!(
        gw.wait_for_line(
            "kept the Control UI assets of build b-1",
            crate::support::WAIT
        )
        .is_some(),
        "{}",
        gw.stderr()
    );
    let home = gw.stop_keep_home();
    // The upgrade: a new build replaces the old one's files.
    std::fs::remove_dir_all(root.join("assets")).unwrap();
    std::fs::create_dir(root.join("assets")).unwrap();
    std::fs::write(root.join("assets/app-2.js"), "console.log('v2')").unwrap();
    let index = std::fs::read_to_string(root.join("index.html")).unwrap();
    std::fs::write(
        root.join("index.html"),
        index.replace("b-1", "b-2").replace("app-1.js", "app-2.js"),
    )
    .unwrap();
    let gw = b.config(&config).start_in(home);
    let old = http(
        gw.port,
        "GET",
        "/assets/app-1.js",
        &[("accept-encoding", "br")],
        "",
    );
    assert_eq!(
        old.status, 200,
        "an open tab of build b-1 still loads its assets"
    );
    assert_eq!(old.body, "BROTLI-BYTES");
    assert_eq!(
        http(gw.port, "GET", "/assets/app-2.js", &[], "").body,
        "console.log('v2')"
    );
    assert_eq!(http(gw.port, "GET", "/assets/none.js", &[], "").status, 404);
    // Kept generations never serve what the root refuses either.
    for leak in ["/assets/escape.js", "/assets/hard.js"] {
        let r = http(gw.port, "GET", leak, &[], "");
        assert_eq!(r.status, 404, "{leak}");
        assert!(!r.body.contains("TOP-SECRET"), "{leak}");
    }
}
