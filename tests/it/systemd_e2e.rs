//! End-to-end: our binary against a real `systemd --user` (see `support::sandbox`).
use std::time::Duration;

use crate::support::sandbox;

#[test]
fn sandbox_runs_a_user_manager() {
    sandbox::run("systemd_e2e::sandbox_runs_a_user_manager", |sb| {
        let (code, _) = sb.systemctl(&["is-system-running"]);
        assert!(code == 0 || code == 1);
        let (code, _) = sb.systemctl(&["start", "--no-block", "--", "sleep-test.service"]);
        assert_ne!(code, 0, "a unit that does not exist cannot start");
        let (c, _) = std::process::Command::new("systemd-run")
            .args(["--user", "--unit=oc-sleep", "sleep", "300"])
            .output()
            .map(|o| (o.status.code().unwrap_or(-1), ()))
            .unwrap();
        assert_eq!(c, 0);
        sb.wait_for("oc-sleep active", Duration::from_secs(5), || {
            sb.prop("oc-sleep.service", "ActiveState") == "active"
        });
    });
}
