//! The official Control UI (openclaw@2026.9.6's `dist/control-ui`) in real headless Chromium,
//! served by our gateway (issue 15 item 5). `tests/browser/control_ui.mjs` drives the browser
//! through playwright-core (Debian's chromium, no browser download); this test starts the
//! gateway with `controlUi.root` pointed at the bundle and the fake model, runs the script
//! (bounded), and fails on any failed step. Screenshots, the WebSocket frames and what the page
//! observed land in `target/browser-artifacts/control-ui/`.
//!
//! What `.ci/run` provides (and where a developer's machine may have it):
//! - `chromium` (apt) — or `OPENCLAW_CHROMIUM`;
//! - playwright-core under `~/.cache/openclaw-ci/playwright` — or `OPENCLAW_PLAYWRIGHT_DIR`;
//! - the bundle under `~/.cache/openclaw-ci/openclaw-2026.9.6/package/dist/control-ui` — or
//!   `OPENCLAW_CONTROL_UI_ROOT`.
//!
//! Missing pieces skip visibly, never under `CI=true`.
//!
//! [`FULL`] switches on the steps that need device pairing and the UI's methods (paired and
//! scoped, no failed boot RPC, a streamed chat reply, Sessions, Logs, a config save applied by
//! hot reload, Devices). It is on: every step runs.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_model::{FakeModel, Reply, StreamSpec};
use crate::support::{Gateway, skip_or_fail};

/// The steps beyond serving, connecting and rendering the shell (see the module docs).
const FULL: bool = true;

/// The reply the fake model streams (the FULL chat step waits for it in the page).
const REPLY: [&str; 3] = ["Hello ", "from the ", "fake model."];

fn home_cache(rel: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join(rel))
}

fn first_existing(
    env: &str,
    candidates: impl IntoIterator<Item = Option<PathBuf>>,
    probe: &str,
) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.into_iter().flatten())
        .find(|p| p.join(probe).exists() || (probe.is_empty() && p.exists()))
}

fn on_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

#[test]
fn control_ui_official_bundle_in_headless_chromium() {
    const TEST: &str = "control_ui_official_bundle_in_headless_chromium";
    let Some(node) = on_path("node") else {
        return skip_or_fail(TEST, "node is not installed (apt install nodejs)");
    };
    let chromium = first_existing(
        "OPENCLAW_CHROMIUM",
        [on_path("chromium"), on_path("chromium-browser")],
        "",
    );
    let Some(chromium) = chromium else {
        return skip_or_fail(TEST, "chromium is not installed (apt install chromium)");
    };
    let Some(playwright) = first_existing(
        "OPENCLAW_PLAYWRIGHT_DIR",
        [home_cache("openclaw-ci/playwright")],
        "node_modules/playwright-core/package.json",
    ) else {
        return skip_or_fail(
            TEST,
            "playwright-core is not installed (.ci/run installs it into ~/.cache/openclaw-ci/playwright; or set OPENCLAW_PLAYWRIGHT_DIR)",
        );
    };
    let Some(root) = first_existing(
        "OPENCLAW_CONTROL_UI_ROOT",
        [
            home_cache("openclaw-ci/openclaw-2026.9.6/package/dist/control-ui"),
            home_cache("openclaw-upstream/package/dist/control-ui"),
        ],
        "index.html",
    ) else {
        return skip_or_fail(
            TEST,
            "the official Control UI bundle is missing (npm pack openclaw@2026.9.6, unpack; .ci/run caches it under ~/.cache/openclaw-ci; or set OPENCLAW_CONTROL_UI_ROOT)",
        );
    };

    let fake = FakeModel::with_default(Reply::Stream(StreamSpec::text(&REPLY)));
    let b = Gateway::builder();
    let token = b.token.clone();
    let gw = b
        .config(&format!(
            "{{ {} gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }}, \
               controlUi: {{ root: '{}' }} }} }}",
            fake.provider_config("'sk-fake'"),
            root.display()
        ))
        .start();

    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts/control-ui");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let full = FULL || std::env::var("OPENCLAW_BROWSER_FULL").as_deref() == Ok("1");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/control_ui.mjs");
    let mut child = Command::new(node)
        .arg(&script)
        .env("GATEWAY_HTTP", format!("http://127.0.0.1:{}", gw.port))
        .env("GATEWAY_TOKEN", &gw.token)
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT_DIR", &playwright)
        .env("OUT_DIR", &out_dir)
        .env("USER_DATA_DIR", profile.path())
        .env("FULL", if full { "1" } else { "0" })
        .env("EXPECT_REPLY", REPLY.concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    // Bounded: the script's own waits add up to well under this.
    let deadline = Instant::now() + Duration::from_secs(if full { 300 } else { 150 });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().expect("script output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}artefacts: {}", out_dir.display());
    let status = status.unwrap_or_else(|| panic!("the browser script did not finish in time"));
    assert!(
        status.success(),
        "browser steps failed ({status}); gateway stderr:\n{}\nscript:\n{stdout}{stderr}",
        gw.stderr()
    );
    for step in [
        "document",
        "websocket-connect",
        "app-shell",
        "assets",
        "console",
    ] {
        assert!(
            stdout.contains(&format!("PASS {step}")),
            "{step} did not pass:\n{stdout}"
        );
    }
    assert!(out_dir.join("shell.png").is_file(), "no screenshot");
}
