//! launchd: rendering (golden + parse-back + plistutil), `launchctl print` parsing from
//! fixtures, the pure plan, the manager against a simulated launchd, and the hand-off helper
//! script run by a real /bin/sh.
mod fake;
mod helper;
mod manager;
mod plan;
mod print;
mod refusal;
mod render;
mod status;

use std::path::{Path, PathBuf};

use openclaw::service::ServiceSpec;

/// `tests/fixtures/launchctl/<name>` without its leading `#` provenance lines.
pub(crate) fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/launchctl")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    let mut lines = text.lines().peekable();
    while lines.next_if(|l| l.starts_with('#')).is_some() {}
    lines.map(|l| format!("{l}\n")).collect()
}

/// The default-install spec for a user whose home is `home`.
pub(crate) fn spec(home: &Path) -> ServiceSpec {
    ServiceSpec {
        profile: None,
        name: "ai.openclaw.gateway".into(),
        description: "OpenClaw Gateway".into(),
        program: PathBuf::from("/opt/homebrew/bin/openclaw"),
        port: 18789,
        state_dir: home.join(".openclaw"),
        config_path: home.join(".openclaw/openclaw.json"),
        env: vec![],
        drain_secs: 15,
    }
}

/// True when tests must not skip (CI).
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
