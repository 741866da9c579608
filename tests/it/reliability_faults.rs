//! Faults under a real `systemd --user` (the project's sandbox, support::sandbox): kill -9
//! while clients keep connecting, garbage config mid-run, a full log disk and a read-only state
//! dir, the port taken by another process, the user manager re-executed under a running
//! gateway, and a second gateway on the same state dir. Each test names what survived; the
//! figures (restart gap, connections refused) are printed for RELIABILITY.md.
//! (The watchdog/wedged-runtime fault is `systemd_e2e::watchdog_restarts_a_wedged_gateway`.)
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use openclaw::gateway::client::{ConnectOptions, GatewayClient};
use serde_json::Value;

use crate::support::{self, sandbox, sandbox::Inside};
use crate::systemd_e2e::{free_port, oc, ok, text};

const UNIT: &str = "openclaw-gateway.service";
const T: Duration = Duration::from_secs(30);

fn install(port: u16) {
    ok(oc(&["gateway", "install", "--port", &port.to_string()]));
}

fn healthz(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf)
}

fn main_pid(sb: &Inside) -> u32 {
    sb.prop(UNIT, "MainPID").parse().unwrap_or(0)
}

fn restarts(sb: &Inside) -> u32 {
    sb.prop(UNIT, "NRestarts").parse().unwrap_or(0)
}

fn drop_in(sb: &Inside, body: &str) {
    let d = sb
        .home
        .join(".config/systemd/user")
        .join(format!("{UNIT}.d"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("fault.conf"), body).unwrap();
    assert_eq!(sb.systemctl(&["daemon-reload"]).0, 0);
}

fn token(sb: &Inside) -> String {
    let cfg = std::fs::read_to_string(sb.home.join(".openclaw/openclaw.json")).unwrap();
    let v: Value = serde_json::from_str(&cfg).unwrap();
    v["gateway"]["auth"]["token"].as_str().unwrap().to_string()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(port: u16, tok: &str) -> GatewayClient {
    GatewayClient::connect(
        ConnectOptions::new(format!("ws://127.0.0.1:{port}"))
            .token(tok)
            .scopes(&["operator.admin"]),
    )
    .await
    .expect("connect")
}

#[test]
fn kill_9_restarts_within_restart_sec_and_the_socket_keeps_accepting() {
    sandbox::run(
        "reliability_faults::kill_9_restarts_within_restart_sec_and_the_socket_keeps_accepting",
        |sb| {
            let port = free_port();
            install(port);
            let restart_sec = sb.prop(UNIT, "RestartUSec");
            assert_eq!(restart_sec, "2s", "the unit's RestartSec");
            let pid = main_pid(sb);
            let killed = Instant::now();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            // While no gateway runs, keep opening connections: the socket unit accepts them
            // and they are answered by the restarted instance. None may be refused.
            let mut probes = Vec::new();
            for i in 0..20 {
                probes.push(std::thread::spawn(move || (i, healthz(port))));
                std::thread::sleep(Duration::from_millis(150));
            }
            let mut answered = 0;
            for p in probes {
                let (i, r) = p.join().unwrap();
                let r = r.unwrap_or_else(|e| panic!("probe {i} after kill -9 failed: {e}"));
                assert!(r.starts_with("HTTP/1.1 200"), "probe {i}: {r}");
                answered += 1;
            }
            sb.wait_for("a restarted instance", T, || {
                let p = main_pid(sb);
                p != 0 && p != pid && sb.prop(UNIT, "ActiveState") == "active"
            });
            let gap = killed.elapsed();
            assert_eq!(restarts(sb), 1, "exactly one restart");
            eprintln!(
                "FIGURE kill-9: restarted (RestartSec {restart_sec}), {answered}/20 connections opened during the gap answered, 0 refused; active again within {gap:?} of the kill"
            );
        },
    );
}

#[test]
fn garbage_config_mid_run_keeps_the_last_good_and_status_says_so() {
    sandbox::run(
        "reliability_faults::garbage_config_mid_run_keeps_the_last_good_and_status_says_so",
        |sb| {
            let port = free_port();
            install(port);
            let tok = token(sb);
            let cfg = sb.home.join(".openclaw/openclaw.json");
            let good = std::fs::read_to_string(&cfg).unwrap();
            let pid = main_pid(sb);
            rt().block_on(async {
                let c = client(port, &tok).await;
                // Saved the way editors do (temp + rename), then garbage bytes.
                let tmp = cfg.with_file_name(".openclaw.json.swp");
                std::fs::write(&tmp, "{ gateway: { mode: 'local', \u{0}\u{7f} garbage ]]]")
                    .unwrap();
                std::fs::rename(&tmp, &cfg).unwrap();
                // The reload outcome has no event: poll health with a deadline.
                let deadline = Instant::now() + T;
                let last_error = loop {
                    let h = c.call("health", None).await.expect("health");
                    let e = h["configReload"]["lastError"].clone();
                    if !e.is_null() {
                        break e;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "reload never reported the error: {h}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                assert!(
                    last_error.to_string().contains("openclaw.json"),
                    "names the file: {last_error}"
                );
                // Last good kept: the old token still admits new clients.
                let c2 = client(port, &tok).await;
                c2.call("health", None)
                    .await
                    .expect("served with the last good config");
            });
            assert_eq!(main_pid(sb), pid, "no restart");
            let st = ok(oc(&["gateway", "status"]));
            assert!(st.contains("Runtime: running"), "{st}");
            assert!(st.contains("Config: invalid"), "{st}");
            assert!(
                st.contains("last good"),
                "status says the last good config is kept: {st}"
            );
            std::fs::write(&cfg, good).unwrap();
            assert!(healthz(port).unwrap().starts_with("HTTP/1.1 200"));
        },
    );
}

async fn health_until(
    c: &GatewayClient,
    what: &str,
    mut cond: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let h = c.call("health", None).await.expect("health");
        if cond(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn full_log_disk_and_read_only_state_dir_keep_serving_degraded() {
    sandbox::run(
        "reliability_faults::full_log_disk_and_read_only_state_dir_keep_serving_degraded",
        |sb| {
            let port = free_port();
            install(port);
            let tok = token(sb);
            // 1. The log directory is a 16 KiB tmpfs inside the service's mount namespace.
            drop_in(
                sb,
                "[Service]\nTemporaryFileSystem=%h/.openclaw/logs:size=16k,mode=0700\n",
            );
            ok(oc(&["gateway", "restart"]));
            rt().block_on(async {
                let mut clients = Vec::new();
                for _ in 0..60 {
                    clients.push(client(port, &tok).await);
                }
                let h = health_until(&clients[0], "log_file_unwritable", |h| {
                    h["degradedReasons"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|x| x == "log_file_unwritable"))
                })
                .await;
                assert!(
                    h["logFile"]["error"]
                        .as_str()
                        .unwrap_or("")
                        .contains("No space left"),
                    "{h}"
                );
                for c in &clients {
                    c.call("health", None).await.expect("still serving");
                }
            });
            assert_eq!(restarts(sb), 0);
            // 2. The whole state dir read-only (no ReadWritePaths): starts, serves, degraded.
            drop_in(sb, "[Service]\nReadWritePaths=\n");
            ok(oc(&["gateway", "restart"]));
            rt().block_on(async {
                let c = client(port, &tok).await;
                let h = health_until(&c, "the read-only log dir", |h| h["logFile"]["ok"] == false)
                    .await;
                assert_eq!(h["degraded"], true, "{h}");
                assert!(
                    h["logFile"]["error"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Read-only"),
                    "{h}"
                );
            });
            assert!(healthz(port).unwrap().starts_with("HTTP/1.1 200"));
            assert_eq!(sb.prop(UNIT, "ActiveState"), "active");
            eprintln!(
                "FIGURE disk-full + read-only state dir: served throughout, health degraded (log_file_unwritable), 0 restarts"
            );
        },
    );
}

#[test]
fn port_taken_by_another_process_exits_78_without_a_restart_storm() {
    sandbox::run(
        "reliability_faults::port_taken_by_another_process_exits_78_without_a_restart_storm",
        |sb| {
            let port = free_port();
            let squatter = TcpListener::bind(("127.0.0.1", port)).unwrap();
            // (a) The gateway binding the port itself, under the unit's restart policy.
            let err = sb.home.join("transient.err");
            let home = sb.home.display().to_string();
            let out = Command::new("systemd-run")
                .args([
                    "--user",
                    "--unit=oc-port-taken",
                    "-p",
                    "Restart=on-failure",
                    "-p",
                    "RestartSec=200ms",
                    "-p",
                    "RestartPreventExitStatus=78",
                    "-p",
                    &format!("StandardError=file:{}", err.display()),
                    "--setenv",
                    &format!("HOME={home}"),
                ])
                .arg(support::bin())
                .args(["gateway", "run", "--init", "--port", &port.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            let u = "oc-port-taken.service";
            sb.wait_for("the transient unit to fail", T, || {
                sb.prop(u, "ActiveState") == "failed"
            });
            assert_eq!(sb.prop(u, "ExecMainStatus"), "78");
            // Give a storm the chance to happen (5 restart intervals), then check none did.
            std::thread::sleep(Duration::from_secs(1));
            assert_eq!(sb.prop(u, "NRestarts"), "0", "exit 78 is not restarted");
            let msg = std::fs::read_to_string(&err).unwrap_or_default();
            let want = format!(
                "Gateway failed to start: another gateway instance is already listening on ws://127.0.0.1:{port}"
            );
            assert!(msg.contains(&want), "{msg}");
            assert!(
                msg.contains(&format!("Port {port} is already in use.")),
                "{msg}"
            );
            // (b) The installed socket unit cannot bind either: the service is not started at
            // all (no restart loop), and `gateway status` says why.
            let out = oc(&["gateway", "install", "--port", &port.to_string()]);
            assert!(
                !out.status.success(),
                "install over a taken port fails: {}",
                text(&out)
            );
            assert_eq!(sb.prop(UNIT, "NRestarts"), "0");
            assert_ne!(sb.prop(UNIT, "ActiveState"), "active");
            let all = text(&out);
            assert!(
                all.contains(&port.to_string()),
                "the failure names the port: {all}"
            );
            drop(squatter);
            eprintln!(
                "FIGURE port taken: exit 78 with the upstream message, 0 restarts; socket unit refused to start, 0 restarts"
            );
        },
    );
}

#[test]
fn user_manager_reexec_under_a_running_gateway_keeps_it_and_its_clients() {
    sandbox::run(
        "reliability_faults::user_manager_reexec_under_a_running_gateway_keeps_it_and_its_clients",
        |sb| {
            let port = free_port();
            install(port);
            drop_in(
                sb,
                "[Service]\nWatchdogSec=2\nEnvironment=OPENCLAW_TICK_INTERVAL_MS=200\n",
            );
            ok(oc(&["gateway", "restart"]));
            let tok = token(sb);
            let pid = main_pid(sb);
            let before = restarts(sb);
            rt().block_on(async {
                let mut c = client(port, &tok).await;
                assert!(c.wait_event("tick", T).await.is_some());
                assert_eq!(sb.systemctl(&["daemon-reexec"]).0, 0);
                // Across 3 watchdog periods after the re-exec, ticks keep flowing on the same
                // socket (the process and its notify/watchdog link survived).
                let until = Instant::now() + Duration::from_secs(6);
                let mut ticks = 0;
                while Instant::now() < until {
                    if let Some(ev) = c.next_event(Duration::from_secs(2)).await {
                        if ev.event == "tick" {
                            ticks += 1;
                        }
                    } else {
                        panic!("no frame for 2 s after daemon-reexec");
                    }
                }
                assert!(ticks >= 20, "ticks after re-exec: {ticks}");
                c.call("health", None)
                    .await
                    .expect("same client still served");
            });
            assert_eq!(main_pid(sb), pid, "the same process");
            assert_eq!(restarts(sb), before, "no restart");
            assert_eq!(sb.prop(UNIT, "ActiveState"), "active");
            assert_eq!(sb.prop(UNIT, "Result"), "success", "no watchdog timeout");
            eprintln!(
                "FIGURE daemon-reexec: same pid, client kept its socket, watchdog fed, 0 restarts"
            );
        },
    );
}

#[test]
fn a_second_gateway_on_the_service_state_dir_refuses() {
    sandbox::run(
        "reliability_faults::a_second_gateway_on_the_service_state_dir_refuses",
        |sb| {
            let port = free_port();
            install(port);
            let pid = main_pid(sb);
            let other = free_port().to_string();
            let out = oc(&["gateway", "run", "--port", &other]);
            assert_eq!(out.status.code(), Some(78), "{}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!(
                    "another gateway (pid {pid}) is already using the state directory"
                )),
                "{err}"
            );
            assert!(err.contains("openclaw gateway stop"), "{err}");
            assert_eq!(main_pid(sb), pid);
            assert!(healthz(port).unwrap().starts_with("HTTP/1.1 200"));
        },
    );
}
