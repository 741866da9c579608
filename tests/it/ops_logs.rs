//! `openclaw logs` against real gateways: the tail in text and NDJSON, `--follow` across a
//! gateway restart on the same port (new lines arrive, none repeats), the local-file fallback
//! when the gateway is down, and exit 1 on a rejected credential.
use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::ops::{Gw, Local, Streaming, run};

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn tail_prints_header_and_lines_in_text_and_json() {
    let l = Local::start();
    let r = l.run(&["logs", "--limit", "50"]);
    assert_eq!(r.code(), 0, "{r:?}");
    let mut lines = r.stdout.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("Log file: ") && header.ends_with(".log"),
        "{header}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains(" info gateway listening on ws://127.0.0.1:")),
        "{}",
        r.stdout
    );

    let j = l.run(&["logs", "--json", "--limit", "50"]);
    let recs: Vec<Value> = j
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs[0]["type"], "meta");
    assert_eq!(recs[0]["sourceKind"], "file");
    assert!(recs[0]["cursor"].as_u64().unwrap() > 0);
    let logs: Vec<&Value> = recs.iter().filter(|r| r["type"] == "log").collect();
    assert!(!logs.is_empty());
    assert!(
        logs.iter()
            .all(|r| r["level"].is_string() && r["raw"].is_string())
    );
    assert!(logs.len() <= 50);
    assert!(
        !j.stdout.contains(&l.token),
        "the token never reaches a log line"
    );
}

#[test]
fn follow_survives_a_gateway_restart_without_duplicates() {
    let l = Local::start();
    let home = l.home.path().to_path_buf();
    let first_pid = l.gw.pid();
    let mut f = Streaming::spawn(
        &home,
        &[
            "logs",
            "--follow",
            "--json",
            "--interval",
            "100",
            "--limit",
            "20",
        ],
    );
    assert!(
        f.wait_for(true, WAIT, |s| s.contains("\"type\":\"meta\"")),
        "no meta record: {:?} {:?}",
        f.out,
        f.err
    );
    // Restart on the same port (same HOME, config and log file).
    let Local { home: dir, gw, .. } = l;
    gw.stop();
    assert!(
        f.wait_for(true, WAIT, |s| s.contains("gateway disconnected")),
        "no disconnect notice: {:?}",
        f.out
    );
    let gw2 = Gw::start(dir.path(), &[], &[]);
    let second_pid = gw2.pid();
    assert_ne!(first_pid, second_pid);
    let is_start = |s: &str| {
        record(s).is_some_and(|r| r["message"] == "gateway starting" && r["pid"] == second_pid)
    };
    assert!(
        f.wait_for(true, WAIT, is_start),
        "the new gateway's lines did not arrive: {:?}",
        f.out
    );
    assert!(
        f.wait_for(true, WAIT, |s| s.contains("[logs] gateway reconnected")),
        "follower did not reconnect: {:?}",
        f.out
    );
    // Lines written after the reconnect arrive over RPC: the follower's own connection and
    // the `health` client's.
    let from = f
        .out
        .iter()
        .position(|s| s.contains("[logs] gateway reconnected"))
        .unwrap();
    let r = run(&home, &["health"], &[]);
    assert_eq!(r.code(), 0);
    assert!(
        f.wait_count(from, 2, WAIT, |s| s.contains("client connected")),
        "no new lines after reconnect: {:?}",
        &f.out[from..]
    );
    drop(gw2);
    f.kill();
    let raws: Vec<String> = f
        .out
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "log")
        .map(|v| v["raw"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = raws.iter().collect();
    assert_eq!(unique.len(), raws.len(), "duplicate lines: {raws:#?}");
    let starts = f.out.iter().filter(|l| is_start(l)).count();
    assert_eq!(starts, 1);
    let _ = dir;
}

/// The file-log record inside an NDJSON `log` line.
fn record(line: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v["type"] == "log").then(|| serde_json::from_str(v["raw"].as_str()?).ok())?
}

#[test]
fn tail_falls_back_to_the_local_file_when_the_gateway_is_down() {
    let l = Local::start();
    let Local { home, gw, .. } = l;
    gw.stop();
    let r = run(home.path(), &["logs", "--limit", "5"], &[]);
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(
        r.stderr
            .starts_with("[logs] gateway unreachable (connection refused); reading "),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("shutdown completed"), "{}", r.stdout);
    let j = run(home.path(), &["logs", "--json", "--limit", "5"], &[]);
    let meta: Value =
        serde_json::from_str(j.stdout.lines().find(|l| l.contains("\"meta\"")).unwrap()).unwrap();
    assert_eq!(meta["localFallback"], true);
}

#[test]
fn follow_exits_1_when_the_credential_is_rejected() {
    let l = Local::start();
    let url = format!("ws://127.0.0.1:{}", l.gw.port);
    let mut f = Streaming::spawn(
        l.home.path(),
        &["logs", "--follow", "--url", &url, "--token", "wrong"],
    );
    let st = f
        .wait_exit(WAIT)
        .expect("follower must give up on an auth error");
    assert_eq!(st.code(), Some(1));
    assert!(
        f.err.iter().any(|e| e.contains("unauthorized")),
        "{:?}",
        f.err
    );
}
