//! Port preflight (issue 19 item 3), against a real `systemd --user` (the project's sandbox):
//! `gateway install` onto a port someone else holds is refused at once, naming the holder,
//! before anything is written; `doctor --repair` does not move a service onto a taken port (a
//! foreign listener, or the port another profile's gateway serves) and changes nothing; a free
//! port still installs and is recorded in the config.
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{sandbox, sandbox::Inside};
use crate::systemd_e2e::{free_port, oc, ok, text};

fn unit_path(sb: &Inside, name: &str) -> PathBuf {
    sb.home.join(".config/systemd/user").join(name)
}

fn config_path(sb: &Inside, dir: &str) -> PathBuf {
    sb.home.join(dir).join("openclaw.json")
}

fn set_port(p: &PathBuf, port: u16) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v["gateway"]["port"] = port.into();
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {report}"))
}

fn answers_on(port: u16) -> bool {
    oc(&["health", "--port", &port.to_string()])
        .status
        .success()
}

/// The work profile's gateway answers on `port` (with that profile's credentials).
fn work_answers_on(port: u16) -> bool {
    oc(&["--profile", "work", "health", "--port", &port.to_string()])
        .status
        .success()
}

#[test]
fn install_onto_a_port_held_by_a_foreign_listener_is_refused_naming_the_pid() {
    sandbox::run(
        "ops_preflight::install_onto_a_port_held_by_a_foreign_listener_is_refused_naming_the_pid",
        |sb| {
            let port = free_port();
            let cfg = config_path(sb, ".openclaw");
            std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
            let before = "{\"gateway\": {\"mode\": \"local\", \"auth\": {\"mode\": \"token\", \"token\": \"t0k\"}}}\n";
            std::fs::write(&cfg, before).unwrap();

            let held = TcpListener::bind(("127.0.0.1", port)).unwrap();
            // The dry run says so too, and changes nothing either.
            let dry = ok(oc(&[
                "gateway",
                "install",
                "--dry-run",
                "--port",
                &port.to_string(),
            ]));
            assert!(
                dry.contains("# install would refuse:")
                    && dry.contains(&format!("pid {}", std::process::id())),
                "{dry}"
            );
            let t0 = Instant::now();
            let out = oc(&["gateway", "install", "--port", &port.to_string()]);
            let took = t0.elapsed();
            assert!(
                !out.status.success(),
                "install onto a taken port: {}",
                text(&out)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("port {port} is already in use")),
                "names the port: {}",
                text(&out)
            );
            assert!(
                err.contains(&format!("pid {}", std::process::id())),
                "names the holder's pid: {}",
                text(&out)
            );
            assert!(err.contains("--port N"), "says what to do: {}", text(&out));
            assert!(
                took < Duration::from_secs(10),
                "refused at once, not after a readiness wait ({took:?})"
            );
            assert_eq!(
                std::fs::read_to_string(&cfg).unwrap(),
                before,
                "the config is unchanged"
            );
            assert!(
                !unit_path(sb, "openclaw-gateway.service").exists(),
                "no unit was written"
            );
            assert!(
                !unit_path(sb, "openclaw-gateway.socket").exists(),
                "no socket unit was written"
            );

            // Freed, the same port installs and is recorded in the config.
            drop(held);
            let o = ok(oc(&["gateway", "install", "--port", &port.to_string()]));
            assert!(o.contains(&format!("Recorded gateway.port={port}")), "{o}");
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
            assert_eq!(v["gateway"]["port"], port, "recorded");
            assert_eq!(v["gateway"]["auth"]["token"], "t0k", "the rest is kept");
            assert!(answers_on(port), "the gateway answers on {port}");
        },
    );
}

#[test]
fn doctor_repair_does_not_move_a_service_onto_a_taken_port() {
    sandbox::run(
        "ops_preflight::doctor_repair_does_not_move_a_service_onto_a_taken_port",
        |sb| {
            let port = free_port();
            ok(oc(&["gateway", "install", "--port", &port.to_string()]));
            let unit = unit_path(sb, "openclaw-gateway.service");
            let unit_before = std::fs::read_to_string(&unit).unwrap();

            // Port drift onto a port a foreign process holds.
            let taken = free_port();
            let held = TcpListener::bind(("127.0.0.1", taken)).unwrap();
            let cfg = config_path(sb, ".openclaw");
            set_port(&cfg, taken);
            let cfg_before = std::fs::read_to_string(&cfg).unwrap();

            let d = oc(&["doctor", "--json"]);
            let r: Value = serde_json::from_slice(&d.stdout)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&d)));
            let f = finding(&r, "service-port");
            assert_eq!(f["level"], "fail", "{f}");
            let all = f.to_string();
            assert!(
                all.contains(&format!("pid {}", std::process::id())),
                "the finding names the holder: {f}"
            );
            assert!(
                f["repair"].is_null(),
                "a move onto a taken port is not offered as a repair: {f}"
            );
            // Nor through the unit and socket drift it causes: the promise equals the action.
            for id in ["service-unit", "service-socket"] {
                let g = finding(&r, id);
                assert!(g["repair"].is_null(), "{id} offers the move anyway: {g}");
                assert!(
                    g["remediation"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("taken port"),
                    "{id} says why it is held: {g}"
                );
            }

            let out = oc(&["doctor", "--repair", "--non-interactive"]);
            let t = text(&out);
            assert!(!out.status.success(), "the drift stays a failure: {t}");
            assert!(
                !t.contains("done service-port"),
                "acted on the collision: {t}"
            );
            assert!(
                t.contains(&format!("port {taken} is already in use")),
                "says why: {t}"
            );
            assert_eq!(
                std::fs::read_to_string(&unit).unwrap(),
                unit_before,
                "the unit is unchanged"
            );
            assert_eq!(
                std::fs::read_to_string(&cfg).unwrap(),
                cfg_before,
                "the config is unchanged"
            );
            assert!(answers_on(port), "the gateway still serves on {port}");
            drop(held);

            // Freed, the same repair moves the service (the promise is kept once it can be).
            let out = oc(&["doctor", "--repair", "--non-interactive"]);
            assert!(out.status.success(), "{}", text(&out));
            assert!(answers_on(taken), "the service moved to {taken}");
        },
    );
}

#[test]
fn doctor_repair_does_not_move_a_profile_onto_the_port_another_profile_serves() {
    sandbox::run(
        "ops_preflight::doctor_repair_does_not_move_a_profile_onto_the_port_another_profile_serves",
        |sb| {
            let main = free_port();
            let work = free_port();
            ok(oc(&["gateway", "install", "--port", &main.to_string()]));
            ok(oc(&[
                "--profile",
                "work",
                "gateway",
                "install",
                "--port",
                &work.to_string(),
            ]));
            let unit = unit_path(sb, "openclaw-gateway-work.service");
            let unit_before = std::fs::read_to_string(&unit).unwrap();
            let cfg = config_path(sb, ".openclaw-work");
            set_port(&cfg, main);
            let cfg_before = std::fs::read_to_string(&cfg).unwrap();

            let out = oc(&[
                "--profile",
                "work",
                "doctor",
                "--repair",
                "--non-interactive",
            ]);
            let t = text(&out);
            assert!(!out.status.success(), "{t}");
            assert!(
                !t.contains("done service-port"),
                "acted on the collision: {t}"
            );
            assert!(
                t.contains("default profile")
                    && t.contains(&sb.home.join(".openclaw").display().to_string()),
                "names the other profile: {t}"
            );
            assert_eq!(std::fs::read_to_string(&unit).unwrap(), unit_before, "{t}");
            assert_eq!(std::fs::read_to_string(&cfg).unwrap(), cfg_before, "{t}");
            assert!(work_answers_on(work), "the work gateway still serves");
            assert!(answers_on(main), "the default gateway still serves");

            // Plain install onto the other profile's port is refused the same way.
            let out = oc(&[
                "--profile",
                "work",
                "gateway",
                "install",
                "--port",
                &main.to_string(),
            ]);
            let t = text(&out);
            assert!(!out.status.success(), "{t}");
            assert!(t.contains("the gateway of the default profile"), "{t}");
            assert!(t.contains("`openclaw gateway stop`"), "{t}");
            assert_eq!(std::fs::read_to_string(&unit).unwrap(), unit_before, "{t}");
            assert!(work_answers_on(work), "the work gateway still serves");
        },
    );
}
