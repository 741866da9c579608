//! The gateway's side of the launchd refusal contract (service::launchd::policy): a config
//! refusal under launchd exits 0 (KeepAlive SuccessfulExit=false must not respawn it) and leaves
//! the marker `gateway status` reads; outside launchd the same refusal exits 78; a later good
//! start clears the marker.
use crate::support::Gateway;

fn marker(home: &std::path::Path) -> std::path::PathBuf {
    home.join(".openclaw").join("gateway-refused.json")
}

#[test]
fn config_refusal_under_launchd_exits_0_and_leaves_a_marker() {
    let label = "ai.openclaw.gateway";
    let f = Gateway::builder()
        .config("{ gateway: { mode: 'remote' } }")
        .env("XPC_SERVICE_NAME", label)
        .env("OPENCLAW_LAUNCHD_LABEL", label)
        .run_to_exit();
    assert_eq!(f.status.code(), Some(0), "stderr: {}", f.stderr);
    assert!(
        f.stderr
            .contains("Gateway start blocked: set gateway.mode=local"),
        "{}",
        f.stderr
    );
    let m = std::fs::read_to_string(marker(f.home.path())).expect("refusal marker written");
    assert!(m.contains("gateway.mode=local"), "{m}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(marker(f.home.path()))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn the_same_refusal_outside_launchd_exits_78_without_a_marker() {
    let f = Gateway::builder()
        .config("{ gateway: { mode: 'remote' } }")
        .run_to_exit();
    assert_eq!(f.status.code(), Some(78), "stderr: {}", f.stderr);
    assert!(!marker(f.home.path()).exists());
}

#[test]
fn a_good_start_clears_an_old_marker() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".openclaw");
    std::fs::create_dir_all(&dir).unwrap();
    let token = crate::support::random_token();
    std::fs::write(
        dir.join("openclaw.json"),
        format!("{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{token}' }} }} }}"),
    )
    .unwrap();
    std::fs::write(dir.join("gateway-refused.json"), "{}").unwrap();
    let mut c = crate::support::command(home.path());
    c.args(["gateway", "run", "--port", "0"]);
    let gw = Gateway::spawn(home, c, token);
    assert!(
        !marker(gw.home.path()).exists(),
        "marker must be cleared once the config is accepted"
    );
}
