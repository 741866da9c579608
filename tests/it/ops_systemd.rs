//! `status`, `doctor` and `logs` against a real `systemd --user` (the project's sandbox, see
//! `support::sandbox`): every drift class is created for real — config port change, embedded
//! token, moved binary, operator edit, drop-in, pending reload — and repaired through the
//! install transaction; a second `doctor --repair` then has nothing to do.
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::support::{self, sandbox, sandbox::Inside};
use crate::systemd_e2e::{free_port, oc, oc_with, ok, text};

const UNIT: &str = "openclaw-gateway.service";

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

fn level(report: &Value, id: &str) -> String {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .map(|f| f["level"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no finding {id} in {report}"))
}

fn unit_path(sb: &Inside) -> PathBuf {
    sb.home.join(".config/systemd/user").join(UNIT)
}

fn set_config_port(sb: &Inside, port: u16) {
    let p = sb.home.join(".openclaw/openclaw.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["gateway"]["port"] = port.into();
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// `doctor --repair` fixes what it reported, then a second run has nothing to do.
fn repair_then_clean(what: &str) -> String {
    let out = oc(&["doctor", "--repair", "--non-interactive"]);
    let first = text(&out);
    assert!(out.status.success(), "{what}: repair failed: {first}");
    assert!(
        first.contains("done "),
        "{what}: nothing was repaired: {first}"
    );
    let again = oc(&["doctor", "--repair", "--non-interactive"]);
    assert!(
        again.status.success(),
        "{what}: second run: {}",
        text(&again)
    );
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("Nothing to repair."),
        "{what}: second run still repaired: {}",
        text(&again)
    );
    first
}

fn answers_on(port: u16) -> bool {
    oc(&["health", "--port", &port.to_string()])
        .status
        .success()
}

#[test]
fn status_and_doctor_agree_with_a_real_user_manager() {
    sandbox::run(
        "ops_systemd::status_and_doctor_agree_with_a_real_user_manager",
        |sb| {
            let port = free_port();
            ok(oc(&["gateway", "install", "--port", &port.to_string()]));
            let pid: u32 = sb.prop(UNIT, "MainPID").parse().unwrap();

            let st = oc(&["status", "--json"]);
            let v = json(&st);
            assert_eq!(v["gateway"]["reachable"], true, "{v}");
            assert_eq!(
                v["gateway"]["pid"], pid,
                "the gateway answering is the service's"
            );
            assert_eq!(v["service"]["kind"], "observed", "{v}");
            assert_eq!(v["service"]["status"]["installed"], true);
            assert_eq!(v["service"]["status"]["enabled"], true);
            assert_eq!(v["service"]["status"]["pid"], pid);
            assert_eq!(v["service"]["port"], port);
            assert_eq!(v["port"], port);
            assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
            let t = ok(oc(&["status"]));
            assert!(
                t.contains(&format!(
                    "Gateway service: systemd user installed · enabled · running (pid {pid}, state active) · port {port}"
                )),
                "{t}"
            );

            let d = oc(&["doctor", "--json"]);
            assert!(d.status.success(), "{}", text(&d));
            let r = json(&d);
            for id in [
                "service-unit",
                "service-binary",
                "service-port",
                "service-state",
                "gateway-reachable",
                "version-match",
                "service-secrets",
            ] {
                assert_eq!(level(&r, id), "ok", "{id}: {r}");
            }
            let again = ok(oc(&["doctor", "--repair"]));
            assert!(again.contains("Nothing to repair."), "{again}");

            // Port drift: the config moves, the service does not (yet) → the CLI and the
            // service disagree; status says so, doctor moves the service to the config's port.
            let port2 = free_port();
            set_config_port(sb, port2);
            let v = json(&oc(&["status", "--json"]));
            assert!(
                v["problems"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p.as_str().unwrap().starts_with(&format!(
                        "port mismatch: the service uses port {port} but this CLI resolves {port2}"
                    ))),
                "{v}"
            );
            let r = json(&oc(&["doctor", "--json"]));
            assert_eq!(level(&r, "service-port"), "fail", "{r}");
            assert_eq!(level(&r, "service-unit"), "fail", "{r}");
            repair_then_clean("port drift");
            assert!(answers_on(port2), "the service moved to {port2}");
            let unit = std::fs::read_to_string(unit_path(sb)).unwrap();
            assert!(unit.contains(&format!("--port {port2}")), "{unit}");
            assert!(
                std::fs::read_to_string(format!("{}.bak", unit_path(sb).display()))
                    .unwrap()
                    .contains(&format!("--port {port}")),
                "the previous unit is kept"
            );

            // Logs of a stopped service come from the file it wrote (state dir), said once.
            ok(oc(&["gateway", "stop"]));
            let l = oc(&["logs", "--limit", "5"]);
            assert!(l.status.success(), "{}", text(&l));
            let err = String::from_utf8_lossy(&l.stderr);
            assert!(err.contains("[logs] gateway unreachable"), "{err}");
            assert!(
                err.contains(&sb.home.join(".openclaw/logs").display().to_string()),
                "reads the service's own log file: {err}"
            );
            assert!(
                String::from_utf8_lossy(&l.stdout).contains("shutdown"),
                "{}",
                text(&l)
            );
        },
    );
}

#[test]
fn doctor_repairs_token_binary_and_reload_drift_and_preserves_edits() {
    sandbox::run(
        "ops_systemd::doctor_repairs_token_binary_and_reload_drift_and_preserves_edits",
        |sb| {
            let port = free_port();
            // Install from a copy of the binary that is then deleted (a moved/upgraded binary).
            let copy = sb.home.join("old-bin/openclaw");
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::copy(support::bin(), &copy).unwrap();
            ok(oc_with(
                &copy,
                &["gateway", "install", "--port", &port.to_string()],
            ));
            let unit = std::fs::read_to_string(unit_path(sb)).unwrap();
            assert!(unit.contains(&copy.display().to_string()), "{unit}");
            ok(oc(&["gateway", "stop"]));
            std::fs::remove_file(&copy).unwrap();
            let r = json(&oc(&["doctor", "--json"]));
            assert_eq!(level(&r, "service-binary"), "fail", "{r}");
            repair_then_clean("stale binary");
            let unit = std::fs::read_to_string(unit_path(sb)).unwrap();
            let me = support::bin().canonicalize().unwrap();
            assert!(
                unit.contains(&format!("ExecStart={} ", me.display())),
                "{unit}"
            );
            assert!(answers_on(port));

            // An embedded token (as old installs wrote) is removed; the config keeps it.
            let cfg = std::fs::read_to_string(sb.home.join(".openclaw/openclaw.json")).unwrap();
            let tok = serde_json::from_str::<Value>(&cfg).unwrap()["gateway"]["auth"]["token"]
                .as_str()
                .unwrap()
                .to_string();
            let with_token = std::fs::read_to_string(unit_path(sb)).unwrap().replace(
                "[Service]\n",
                &format!("[Service]\nEnvironment=OPENCLAW_GATEWAY_TOKEN={tok}\n"),
            );
            std::fs::write(unit_path(sb), &with_token).unwrap();
            assert_eq!(sb.systemctl(&["daemon-reload"]).0, 0);
            let d = oc(&["doctor", "--json"]);
            assert!(
                !String::from_utf8_lossy(&d.stdout).contains(&tok),
                "doctor never prints it"
            );
            assert_eq!(level(&json(&d), "service-secrets"), "fail");
            repair_then_clean("embedded token");
            assert!(
                !std::fs::read_to_string(unit_path(sb))
                    .unwrap()
                    .contains(&tok)
            );
            assert!(answers_on(port));

            // A pending reload (unit changed on disk, manager not told) is applied.
            let pending = std::fs::read_to_string(unit_path(sb))
                .unwrap()
                .replace("TimeoutStartSec=30", "TimeoutStartSec=20");
            std::fs::write(unit_path(sb), &pending).unwrap();
            let r = json(&oc(&["doctor", "--json"]));
            assert_eq!(level(&r, "service-state"), "warn", "{r}");
            assert_eq!(level(&r, "service-unit"), "warn", "an edit: {r}");

            // That edit is the operator's: --repair keeps it (and the pending reload, which
            // only the install transaction would apply), --repair --force replaces it.
            let out = oc(&["doctor", "--repair"]);
            assert_eq!(
                std::fs::read_to_string(unit_path(sb)).unwrap(),
                pending,
                "{}",
                text(&out)
            );
            let out = oc(&["doctor", "--repair", "--force"]);
            assert!(out.status.success(), "{}", text(&out));
            assert!(
                std::fs::read_to_string(unit_path(sb))
                    .unwrap()
                    .contains("TimeoutStartSec=30")
            );
            assert_eq!(
                std::fs::read_to_string(format!("{}.bak", unit_path(sb).display())).unwrap(),
                pending
            );
            assert_eq!(sb.prop(UNIT, "NeedDaemonReload"), "no");

            // Customisation the right way: a drop-in. Reported, never touched, and doctor is
            // clean otherwise.
            let d = sb
                .home
                .join(".config/systemd/user/openclaw-gateway.service.d");
            std::fs::create_dir_all(&d).unwrap();
            let conf = "[Service]\nEnvironment=OPENCLAW_EXTRA=1\nNice=5\n";
            std::fs::write(d.join("local.conf"), conf).unwrap();
            assert_eq!(sb.systemctl(&["daemon-reload"]).0, 0);
            let r = json(&oc(&["doctor", "--json"]));
            assert_eq!(
                level(&r, "service-dropins"),
                "ok",
                "listed with its override, as information: {r}"
            );
            let t = ok(oc(&["doctor"]));
            assert!(
                t.contains("local.conf:2 overrides Environment")
                    && !t.contains("warn service-dropins"),
                "{t}"
            );
            assert_eq!(level(&r, "service-unit"), "ok", "{r}");
            let out = ok(oc(&["doctor", "--repair", "--force"]));
            assert!(out.contains("Nothing to repair."), "{out}");
            assert_eq!(std::fs::read_to_string(d.join("local.conf")).unwrap(), conf);
            assert_eq!(sb.prop(UNIT, "Nice"), "5");
        },
    );
}

#[test]
fn doctor_owns_the_socket_unit_missing_moved_or_disabled() {
    sandbox::run(
        "ops_systemd::doctor_owns_the_socket_unit_missing_moved_or_disabled",
        |sb| {
            const SOCKET: &str = "openclaw-gateway.socket";
            let port = free_port();
            ok(oc(&["gateway", "install", "--port", &port.to_string()]));
            let sock = sb.home.join(".config/systemd/user").join(SOCKET);
            let link = sb
                .home
                .join(".config/systemd/user/sockets.target.wants")
                .join(SOCKET);
            let r = json(&oc(&["doctor", "--json"]));
            assert_eq!(level(&r, "service-socket"), "ok", "{r}");
            // The exposure score of the installed unit, as information with its number.
            assert_eq!(level(&r, "service-exposure"), "ok", "{r}");
            let f = r["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["id"] == "service-exposure")
                .unwrap();
            let score: f64 = f["summary"].as_str().unwrap()["exposure ".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|e| panic!("{e}: {f}"));
            assert!((0.0..=10.0).contains(&score), "{f}");

            // Deleted socket unit: doctor says so (the wants link now dangles), the repair
            // writes it back, and the next start serves.
            ok(oc(&["gateway", "stop"]));
            std::fs::remove_file(&sock).unwrap();
            assert_eq!(sb.systemctl(&["daemon-reload"]).0, 0);
            let d = oc(&["doctor"]);
            let t = text(&d);
            assert!(!d.status.success(), "{t}");
            assert!(
                t.contains("fail service-socket") && t.contains("is missing"),
                "{t}"
            );
            assert!(t.contains(&link.display().to_string()), "{t}");
            repair_then_clean("deleted socket unit");
            assert!(sock.exists());
            ok(oc(&["gateway", "stop"]));
            ok(oc(&["gateway", "start"]));
            assert!(answers_on(port), "the next start serves on {port}");

            // Edited ListenStream=: the socket listens elsewhere than service and CLI.
            let other = free_port();
            let edited = std::fs::read_to_string(&sock)
                .unwrap()
                .replace(&format!(":{port}"), &format!(":{other}"));
            std::fs::write(&sock, &edited).unwrap();
            assert_eq!(sb.systemctl(&["daemon-reload"]).0, 0);
            let r = json(&oc(&["doctor", "--json"]));
            assert_eq!(level(&r, "service-socket"), "fail", "{r}");
            repair_then_clean("moved ListenStream");
            let now = std::fs::read_to_string(&sock).unwrap();
            assert!(
                now.contains(&format!("ListenStream=127.0.0.1:{port}\n")),
                "{now}"
            );
            assert_eq!(
                std::fs::read_to_string(format!("{}.bak", sock.display())).unwrap(),
                edited,
                "the previous socket unit is kept"
            );
            assert!(answers_on(port));

            // Disabled socket: nothing would listen after the next login.
            assert_eq!(sb.systemctl(&["disable", SOCKET]).0, 0);
            assert!(std::fs::symlink_metadata(&link).is_err());
            let r = json(&oc(&["doctor", "--json"]));
            assert_eq!(level(&r, "service-socket"), "fail", "{r}");
            repair_then_clean("disabled socket");
            assert_eq!(sb.systemctl(&["is-enabled", SOCKET]).1, "enabled");
            ok(oc(&["gateway", "stop"]));
            ok(oc(&["gateway", "start"]));
            assert!(answers_on(port));
        },
    );
}

#[test]
fn a_removed_token_survives_in_no_backup() {
    sandbox::run("ops_systemd::a_removed_token_survives_in_no_backup", |sb| {
        use std::os::unix::fs::PermissionsExt;
        let port = free_port();
        ok(oc(&["gateway", "install", "--port", &port.to_string()]));
        let tok = crate::systemd_e2e::token(sb, ".openclaw");
        let bak = PathBuf::from(format!("{}.bak", unit_path(sb).display()));
        let clean = std::fs::read_to_string(unit_path(sb)).unwrap();
        let with_token = clean.replace(
            "[Service]\n",
            &format!("[Service]\nEnvironment=OPENCLAW_GATEWAY_TOKEN={tok}\n"),
        );

        // Drift: a token embedded in the unit → doctor fails → the repair removes it, and
        // the backup it keeps does not hold it either.
        std::fs::write(unit_path(sb), &with_token).unwrap();
        assert_eq!(sb.systemctl(&["daemon-reload"]).0, 0);
        let r = json(&oc(&["doctor", "--json"]));
        assert_eq!(level(&r, "service-secrets"), "fail", "{r}");
        repair_then_clean("embedded token");
        let kept = std::fs::read_to_string(&bak).unwrap();
        assert!(!kept.contains(&tok), "the backup keeps no token: {kept}");
        assert!(kept.contains(openclaw::service::scrub::SCRUBBED), "{kept}");
        assert_eq!(
            std::fs::metadata(&bak).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let r = json(&oc(&["doctor", "--json"]));
        assert_eq!(level(&r, "service-secrets"), "ok", "{r}");

        // A backup an earlier release left with the token in it is found and scrubbed.
        std::fs::write(&bak, &with_token).unwrap();
        let d = oc(&["doctor"]);
        let t = text(&d);
        assert!(!d.status.success(), "{t}");
        assert!(t.contains(&format!("{} line(s)", bak.display())), "{t}");
        assert!(!t.contains(&tok), "doctor never prints it: {t}");
        repair_then_clean("token in a backup");
        assert!(!std::fs::read_to_string(&bak).unwrap().contains(&tok));
        ok(oc(&["gateway", "stop"]));
        ok(oc(&["gateway", "start"]));
        assert!(answers_on(port), "the next start serves");
    });
}

#[test]
fn gateway_status_reports_the_runtime_after_its_probe_and_no_stale_text() {
    sandbox::run(
        "ops_systemd::gateway_status_reports_the_runtime_after_its_probe_and_no_stale_text",
        |sb| {
            let port = free_port();
            ok(oc(&["gateway", "install", "--port", &port.to_string()]));
            // Only the service stops: the socket keeps listening, so the status probe's own
            // connection starts it again — and status must say so.
            assert_eq!(sb.systemctl(&["stop", UNIT]).0, 0);
            assert_eq!(sb.prop(UNIT, "ActiveState"), "inactive");
            let t = ok(oc(&["gateway", "status"]));
            assert!(t.contains("RPC probe: ok"), "{t}");
            assert!(t.contains("Runtime: running (pid "), "{t}");
            assert_eq!(sb.prop(UNIT, "ActiveState"), "active");

            // Stopped for real: systemd still holds the last STATUS= text; status must not
            // present it as the gateway speaking.
            ok(oc(&["gateway", "stop"]));
            let t = ok(oc(&["gateway", "status"]));
            assert!(t.contains("Runtime: stopped"), "{t}");
            assert!(!t.contains("Gateway says:"), "{t}");
            assert!(
                t.contains(&format!("Listening: nothing on port {port} (kernel)")),
                "nothing listens, and status says so: {t}"
            );
            ok(oc(&["gateway", "start"]));
            assert!(answers_on(port));

            // ListenStream= edited and reloaded, socket not restarted: what is bound is still
            // the old port; status shows that, and names the pending addresses.
            let sock = sb.home.join(".config/systemd/user/openclaw-gateway.socket");
            let other = free_port();
            let edited = std::fs::read_to_string(&sock)
                .unwrap()
                .replace(&format!(":{port}"), &format!(":{other}"));
            std::fs::write(&sock, edited).unwrap();
            assert_eq!(sb.systemctl(&["daemon-reload"]).0, 0);
            let t = ok(oc(&["gateway", "status"]));
            assert!(
                t.contains(&format!(
                    "Listening: 127.0.0.1:{port}, [::1]:{port} (socket-activated"
                )),
                "{t}"
            );
            assert!(
                t.contains(&format!("the socket unit names 127.0.0.1:{other}")),
                "{t}"
            );
        },
    );
}

#[test]
fn a_crash_loop_names_the_start_limit_and_the_way_out() {
    sandbox::run(
        "ops_systemd::a_crash_loop_names_the_start_limit_and_the_way_out",
        |sb| {
            let port = free_port();
            ok(oc(&["gateway", "install", "--port", &port.to_string()]));
            // A gateway that dies at once, restarted quickly: the start limit trips.
            crate::systemd_e2e::drop_in(
                sb,
                UNIT,
                "[Unit]\nStartLimitBurst=3\n[Service]\nExecStart=\nExecStart=/bin/false\nRestartSec=100ms\n",
            );
            assert_eq!(sb.systemctl(&["restart", "--no-block", UNIT]).0, 0);
            sb.wait_for("the start limit", crate::systemd_e2e::T, || {
                sb.prop(UNIT, "ActiveState") == "failed"
            });
            let t = ok(oc(&["gateway", "status"]));
            assert!(t.contains("Runtime: failed"), "{t}");
            assert!(
                t.contains("Start limit: hit")
                    && t.contains(&format!("systemctl --user reset-failed {UNIT}")),
                "{t}"
            );
            // The way out: fix the cause, then start (which resets the limit).
            std::fs::remove_dir_all(
                sb.home
                    .join(".config/systemd/user")
                    .join(format!("{UNIT}.d")),
            )
            .unwrap();
            assert_eq!(sb.systemctl(&["daemon-reload"]).0, 0);
            ok(oc(&["gateway", "start"]));
            sb.wait_for("the gateway", crate::systemd_e2e::T, || answers_on(port));
            assert!(!ok(oc(&["gateway", "status"])).contains("Start limit"));
        },
    );
}
