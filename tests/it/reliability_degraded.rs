//! Degraded but serving: when the file log cannot be written (disk full, unwritable
//! directory) the gateway keeps answering WebSocket and HTTP, reports `degraded` with reason
//! `log_file_unwritable` and the error in `health.logFile`, says so once on stderr (not once
//! per record), and recovers by itself when writing works again. And one state dir serves one
//! gateway: a second one refuses with the holder's pid.
use serde_json::Value;

use crate::support::{self, Gateway, WAIT, connect_params, hello, http};

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

async fn health(gw: &Gateway) -> Value {
    let (mut ws, _, _) = hello(
        &gw.url(),
        connect_params("cli", "cli", Some(&gw.token), support::ALL),
        &[],
    )
    .await;
    ws.req("h", "health", None).await;
    let res = ws.res("h").await;
    assert_eq!(res["ok"], true, "{res}");
    res["payload"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_log_file_degrades_health_and_recovers() {
    // The log directory exists before start, and today's file is a symlink to /dev/full. The
    // log never writes through a symlink (issue 20: one planted by another user), so every
    // append fails, as on a full disk, until the link is gone.
    let b = Gateway::builder().args(&["--verbose"]);
    let gw = {
        let (home, cmd) = {
            let home = tempfile::tempdir().unwrap();
            let logs = home.path().join("logs");
            std::fs::create_dir_all(&logs).unwrap();
            let file = logs.join(format!("openclaw-{}.log", today()));
            std::os::unix::fs::symlink("/dev/full", &file).unwrap();
            let dir = home.path().join(".openclaw");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("openclaw.json"), b.config.clone().unwrap()).unwrap();
            let mut c = support::command(home.path());
            c.args(["gateway", "run", "--port", "0", "--verbose"]);
            (home, c)
        };
        Gateway::spawn(home, cmd, b.token.clone())
    };
    // Many records were attempted (debug level): the gateway serves regardless.
    for _ in 0..20 {
        assert_eq!(http(gw.port, "GET", "/healthz", &[], "").status, 200);
    }
    let h = health(&gw).await;
    assert_eq!(h["ok"], true, "the gateway itself is fine: {h}");
    assert_eq!(h["degraded"], true, "{h}");
    assert!(
        h["degradedReasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "log_file_unwritable"),
        "{h}"
    );
    let lf = &h["logFile"];
    assert_eq!(lf["ok"], false, "{h}");
    assert!(
        lf["error"]
            .as_str()
            .unwrap()
            .contains("symbolic link; refusing to write through it"),
        "{lf}"
    );
    assert!(lf["lostRecords"].as_u64().unwrap() > 1, "{lf}");
    let stderr = gw.stderr();
    assert_eq!(
        stderr.matches("cannot write the log file").count(),
        1,
        "reported once per episode, not per record:\n{stderr}"
    );
    // Space comes back: the next record opens a real file and health is clean again.
    let file = gw.log_dir().join(format!("openclaw-{}.log", today()));
    std::fs::remove_file(&file).unwrap();
    // A connect logs a record (the next append opens a real file).
    let _ = health(&gw).await;
    assert!(
        gw.wait_for_line("works again", WAIT).is_some(),
        "recovery is announced:\n{}",
        gw.stderr()
    );
    let h = health(&gw).await;
    assert_eq!(h["logFile"]["ok"], true, "{h}");
    assert!(
        !h["degradedReasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "log_file_unwritable"),
        "{h}"
    );
    assert!(file.is_file() && std::fs::metadata(&file).unwrap().len() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_log_directory_degrades_but_serves() {
    // A path under a regular file can never be created (works as root too, unlike chmod).
    let gw = {
        let b = Gateway::builder();
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("not-a-dir"), "x").unwrap();
        let dir = home.path().join(".openclaw");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("openclaw.json"), b.config.clone().unwrap()).unwrap();
        let mut c = support::command(home.path());
        c.env("OPENCLAW_LOG_DIR", home.path().join("not-a-dir/logs"))
            .args(["gateway", "run", "--port", "0"]);
        Gateway::spawn(home, c, b.token.clone())
    };
    let h = health(&gw).await;
    assert_eq!(h["degraded"], true, "{h}");
    assert_eq!(h["logFile"]["ok"], false, "{h}");
    assert!(
        h["logFile"]["error"].as_str().unwrap().contains("opening"),
        "{h}"
    );
    // Everything else works: RPC, HTTP, a second client.
    assert_eq!(http(gw.port, "GET", "/readyz", &[], "").status, 200);
    let _ = health(&gw).await;
}

#[test]
fn two_gateways_on_one_state_dir_the_second_refuses() {
    let first = Gateway::builder().start();
    let mut c = support::command(first.home.path());
    c.args([
        "gateway",
        "run",
        "--port",
        &support::free_port().to_string(),
    ]);
    let home = tempfile::tempdir().unwrap();
    let f = support::run_to_exit(&mut c, home);
    assert_eq!(f.status.code(), Some(78), "{}", f.stderr);
    let want = format!(
        "another gateway (pid {}) is already using the state directory {}",
        first.pid(),
        first.home.path().join(".openclaw").display()
    );
    assert!(f.stderr.contains(&want), "{}", f.stderr);
    assert!(f.stderr.contains("OPENCLAW_STATE_DIR"), "{}", f.stderr);
    // The first one is untouched.
    assert_eq!(http(first.port, "GET", "/healthz", &[], "").status, 200);
    // Once it is gone (even killed: the kernel drops the lock) the state dir is free again.
    let port = first.port;
    let home = first.home.path().to_path_buf();
    let _kept_home = first_kill(first);
    let mut c = support::command(&home);
    c.args(["gateway", "run", "--port", &port.to_string()]);
    let holder = tempfile::tempdir().unwrap();
    let mut second = Gateway::spawn(holder, c, String::new());
    assert!(second.running());
    second.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(second.wait_exit(WAIT).is_some());
}

/// SIGKILLs the gateway (no cleanup) but keeps its HOME alive; returns the HOME.
fn first_kill(mut gw: Gateway) -> tempfile::TempDir {
    gw.signal(nix::sys::signal::Signal::SIGKILL);
    assert!(gw.wait_exit(WAIT).is_some());
    let home = std::mem::replace(&mut gw.home, tempfile::tempdir().unwrap());
    drop(gw);
    home
}
