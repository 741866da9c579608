//! Bounded load on loopback (issue 10): `cargo bench --bench load [-- --smoke] [--only NAME]`.
//!
//! Scenarios (each against a fresh gateway process, each bounded in count and time):
//! `hold` (10,000 authenticated clients held 60 s with 1 s ticks), `storm` (1,000 connections/s
//! for 10 s that never send `connect`, closed at a 2 s pre-auth timeout; RSS and fds must come
//! back), `health` (64 clients calling `health` back-to-back for 10 s), `slow` (a client that
//! never reads, 64 KiB outbound cap: closed 1008 `slow consumer`, 8 others unaffected),
//! `slowloris` (1,000 never-finished request heads vs a 2 s header-read deadline, normal
//! requests meanwhile), `peerflood` (one source address tries to hold 10,000 unauthenticated
//! sockets for 30 s, re-opening each refused one, at the default admission budgets; latency of
//! a legitimate `/healthz` from another address meanwhile), `heads` (1,000 unfinished 30 KiB
//! request heads: gateway RSS per unauthenticated connection), `large` (16 concurrent 2 MB
//! `/tools/invoke` bodies) and `backlog` (a slow consumer with an 8 MiB cap): RSS before, right
//! after and once it settled (issue 20). Writes `bench/results/load-latest.{md,json}`; RELIABILITY.md quotes it.
//! Figures are reported, never asserted (the CI-sized assertions live in
//! tests/it/reliability_load.rs).
#![allow(unreachable_pub, missing_debug_implementations)]

#[path = "load/scenarios.rs"]
mod scenarios;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use scenarios::*;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_openclaw");

struct Sizes {
    hold_clients: usize,
    hold: Duration,
    hold_tick_ms: u64,
    storm_rate: usize,
    storm_secs: u64,
    storm_handshake_ms: u64,
    flood_clients: usize,
    flood_window: Duration,
    slow_others: usize,
    slow_window: Duration,
    loris: usize,
    loris_timeout: Duration,
    peer_flood: usize,
    peer_flood_window: Duration,
    heads: usize,
    large_requests: usize,
}

impl Sizes {
    fn new(smoke: bool) -> Sizes {
        if smoke {
            Sizes {
                hold_clients: 200,
                hold: Duration::from_secs(3),
                hold_tick_ms: 200,
                storm_rate: 200,
                storm_secs: 1,
                storm_handshake_ms: 500,
                flood_clients: 8,
                flood_window: Duration::from_secs(1),
                slow_others: 4,
                slow_window: Duration::from_secs(2),
                loris: 50,
                loris_timeout: Duration::from_millis(500),
                peer_flood: 300,
                peer_flood_window: Duration::from_secs(2),
                heads: 100,
                large_requests: 8,
            }
        } else {
            Sizes {
                hold_clients: 10_000,
                hold: Duration::from_secs(60),
                hold_tick_ms: 1000,
                storm_rate: 1000,
                storm_secs: 10,
                storm_handshake_ms: 2000,
                flood_clients: 64,
                flood_window: Duration::from_secs(10),
                slow_others: 8,
                slow_window: Duration::from_secs(5),
                loris: 1000,
                loris_timeout: Duration::from_secs(2),
                peer_flood: 10_000,
                peer_flood_window: Duration::from_secs(30),
                heads: 1000,
                large_requests: 16,
            }
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut smoke = false;
    let mut only: Option<String> = None;
    let mut out = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results"));
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smoke" => smoke = true,
            "--only" => only = it.next(),
            "--out" => out = it.next().map(PathBuf::from).unwrap_or(out),
            "--bench" => {}
            other => eprintln!("load: ignoring unknown argument {other:?}"),
        }
    }
    let nofile = raise_nofile();
    let sz = Sizes::new(smoke);
    let want = |n: &str| only.as_deref().is_none_or(|o| o == n);
    let started = Instant::now();
    let mut md = format!(
        "# Load results ({}; RLIMIT_NOFILE {nofile}; {} CPUs)\n\n| scenario | figures |\n|---|---|\n",
        if smoke { "smoke" } else { "full" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let mut js = serde_json::Map::new();
    let mut row = |name: &str, text: String, v: serde_json::Value| {
        println!("{name}: {text}");
        md.push_str(&format!("| {name} | {text} |\n"));
        js.insert(name.to_string(), v);
    };

    if want("hold") {
        let tick = sz.hold_tick_ms.to_string();
        let gw = LoadGateway::start(BIN, &[("OPENCLAW_TICK_INTERVAL_MS", &tick)]).await;
        let r = hold(&gw, sz.hold_clients, sz.hold, sz.hold_tick_ms).await;
        let per_conn = (r.rss_held_kib.saturating_sub(r.rss_idle_kib)) as f64 / r.clients as f64;
        row(
            "hold",
            format!(
                "{}/{} held {:?} (errors {}), ticks/client min {} of ~{}, tick lag p99 {:.1} ms, connect p50 {:.1} / p99 {:.1} ms, RSS idle {} → held {} MiB ({per_conn:.1} KiB/conn), peak {} MiB{}",
                r.held,
                r.clients,
                sz.hold,
                r.errors,
                r.min_ticks,
                r.expected_ticks,
                r.tick_lag_p99_ms,
                r.connect_p50_ms,
                r.connect_p99_ms,
                mib(r.rss_idle_kib),
                mib(r.rss_held_kib),
                mib(r.peak_rss_kib),
                r.first_error
                    .as_ref()
                    .map(|e| format!("; first error: {e}"))
                    .unwrap_or_default()
            ),
            json!({"clients": r.clients, "held": r.held, "errors": r.errors, "holdSecs": sz.hold.as_secs(),
                   "minTicks": r.min_ticks, "expectedTicks": r.expected_ticks, "tickLagP99Ms": r.tick_lag_p99_ms,
                   "connectP50Ms": r.connect_p50_ms, "connectP99Ms": r.connect_p99_ms,
                   "rssIdleKiB": r.rss_idle_kib, "rssHeldKiB": r.rss_held_kib, "peakRssKiB": r.peak_rss_kib}),
        );
        gw.stop();
    }
    if want("storm") {
        let hs = sz.storm_handshake_ms.to_string();
        let gw = LoadGateway::start(BIN, &[("OPENCLAW_HANDSHAKE_TIMEOUT_MS", &hs)]).await;
        let r = storm(&gw, sz.storm_rate, sz.storm_secs, sz.storm_handshake_ms).await;
        row(
            "storm",
            format!(
                "{}/s × {} s: {} opened, {} closed 1000 at the pre-auth timeout (p50 {:.0} / p99 {:.0} ms after open), errors {}; RSS {} → peak {} → after {} MiB; fds {} → {}{}",
                sz.storm_rate,
                sz.storm_secs,
                r.opened,
                r.closed_1000,
                r.close_after_p50_ms,
                r.close_after_p99_ms,
                r.errors,
                mib(r.rss_before_kib),
                mib(r.rss_peak_kib),
                mib(r.rss_after_kib),
                r.fds_before,
                r.fds_after,
                r.first_error
                    .as_ref()
                    .map(|e| format!("; first error: {e}"))
                    .unwrap_or_default()
            ),
            json!({"rate": sz.storm_rate, "secs": sz.storm_secs, "opened": r.opened, "closed1000": r.closed_1000,
                   "errors": r.errors, "closeAfterP50Ms": r.close_after_p50_ms, "closeAfterP99Ms": r.close_after_p99_ms,
                   "rssBeforeKiB": r.rss_before_kib, "rssPeakKiB": r.rss_peak_kib, "rssAfterKiB": r.rss_after_kib,
                   "fdsBefore": r.fds_before, "fdsAfter": r.fds_after}),
        );
        gw.stop();
    }
    if want("health") {
        let gw = LoadGateway::start(BIN, &[]).await;
        let r = rpc_flood(&gw, sz.flood_clients, sz.flood_window, "health").await;
        row(
            "health",
            format!(
                "{} clients × {:?}: {} calls ({:.0}/s), errors {}, latency p50 {:.2} / p99 {:.2} ms, peak RSS {} MiB",
                r.clients,
                sz.flood_window,
                r.calls,
                r.rps,
                r.errors,
                r.p50_ms,
                r.p99_ms,
                mib(gw.peak_rss_kib())
            ),
            json!({"clients": r.clients, "calls": r.calls, "rps": r.rps, "errors": r.errors,
                   "p50Ms": r.p50_ms, "p99Ms": r.p99_ms, "peakRssKiB": gw.peak_rss_kib()}),
        );
        gw.stop();
    }
    if want("slow") {
        let gw = LoadGateway::start(
            BIN,
            &[
                ("OPENCLAW_MAX_BUFFERED_BYTES", "65536"),
                ("OPENCLAW_TICK_INTERVAL_MS", "20"),
            ],
        )
        .await;
        let r = slow_consumer(&gw, sz.slow_others, sz.slow_window).await;
        row(
            "slow",
            format!(
                "slow client closed {} {:?} after {} requests ({} responses read); {} others: {} calls, errors {}, p99 {:.2} ms, listener saw {} ticks; peak RSS {} MiB",
                r.close.0,
                r.close.1,
                r.requests_sent,
                r.responses_read,
                r.others.clients,
                r.others.calls,
                r.others.errors,
                r.others.p99_ms,
                r.others_ticks,
                mib(r.peak_rss_kib)
            ),
            json!({"closeCode": r.close.0, "closeReason": r.close.1, "requestsSent": r.requests_sent,
                   "responsesRead": r.responses_read, "othersCalls": r.others.calls, "othersErrors": r.others.errors,
                   "othersP99Ms": r.others.p99_ms, "listenerTicks": r.others_ticks, "peakRssKiB": r.peak_rss_kib}),
        );
        gw.stop();
    }
    if want("slowloris") {
        let t = sz.loris_timeout.as_millis().to_string();
        let gw = LoadGateway::start(BIN, &[("OPENCLAW_HEADER_READ_TIMEOUT_MS", &t)]).await;
        let r = slowloris(&gw, sz.loris, sz.loris_timeout).await;
        row(
            "slowloris",
            format!(
                "{} slow heads vs {:?} deadline: {} closed by the gateway, longest held {:.0} ms; normal /healthz meanwhile {} ok, {} errors, p99 {:.2} ms",
                r.conns,
                sz.loris_timeout,
                r.closed_by_server,
                r.max_hold_ms,
                r.normal_ok,
                r.normal_errors,
                r.normal_p99_ms
            ),
            json!({"conns": r.conns, "closedByServer": r.closed_by_server, "maxHoldMs": r.max_hold_ms,
                   "normalOk": r.normal_ok, "normalErrors": r.normal_errors, "normalP99Ms": r.normal_p99_ms}),
        );
        gw.stop();
    }
    if want("peerflood") {
        // The default admission budgets (LoadGateway raises them for the other scenarios).
        let gw = LoadGateway::start(
            BIN,
            &[
                ("OPENCLAW_MAX_UNAUTH_CONNECTIONS", "512"),
                ("OPENCLAW_MAX_UNAUTH_PER_PEER", "32"),
            ],
        )
        .await;
        let r = peer_flood(&gw, sz.peer_flood, sz.peer_flood_window).await;
        row(
            "peerflood",
            format!(
                "one peer holding up to {} sockets for {:?}: {} opened, {} refused 503; legitimate /healthz from another address {} ok, {} errors, p50 {:.2} / p99 {:.2} ms; RSS {} → peak {} MiB",
                r.sockets,
                sz.peer_flood_window,
                r.opened,
                r.refused_503,
                r.legit_ok,
                r.legit_errors,
                r.legit_p50_ms,
                r.legit_p99_ms,
                mib(r.rss_before_kib),
                mib(r.rss_peak_kib)
            ),
            json!({"sockets": r.sockets, "opened": r.opened, "refused503": r.refused_503,
                   "legitOk": r.legit_ok, "legitErrors": r.legit_errors, "legitP50Ms": r.legit_p50_ms,
                   "legitP99Ms": r.legit_p99_ms, "rssBeforeKiB": r.rss_before_kib, "rssPeakKiB": r.rss_peak_kib}),
        );
        gw.stop();
    }
    if want("heads") {
        let gw = LoadGateway::start(BIN, &[]).await;
        let r = unfinished_heads(&gw, sz.heads, 30 * 1024).await;
        row(
            "heads",
            format!(
                "{} unfinished {} KiB heads: RSS {} → {} MiB, {:.1} KiB per unauthenticated connection",
                r.conns,
                r.head_bytes / 1024,
                mib(r.rss_before_kib),
                mib(r.rss_held_kib),
                r.bytes_per_conn as f64 / 1024.0
            ),
            json!({"conns": r.conns, "headBytes": r.head_bytes, "rssBeforeKiB": r.rss_before_kib,
                   "rssHeldKiB": r.rss_held_kib, "bytesPerConn": r.bytes_per_conn}),
        );
        gw.stop();
    }
    let memory_row = |name: &str, r: &MemoryReport| {
        (
            format!(
                "{}: RSS {} → right after {} → {} MiB {:.0} ms later",
                r.detail,
                mib(r.rss_before_kib),
                mib(r.rss_after_kib),
                mib(r.rss_settled_kib),
                r.settle_ms
            ),
            json!({"scenario": name, "detail": r.detail, "rssBeforeKiB": r.rss_before_kib,
                   "rssAfterKiB": r.rss_after_kib, "rssSettledKiB": r.rss_settled_kib,
                   "settleMs": r.settle_ms}),
        )
    };
    if want("large") {
        let gw = LoadGateway::start(BIN, &[]).await;
        let r = large_requests(&gw, sz.large_requests, 2_000_000).await;
        let (text, js) = memory_row("large", &r);
        row("large", text, js);
        gw.stop();
    }
    if want("backlog") {
        let gw = LoadGateway::start(
            BIN,
            &[
                ("OPENCLAW_MAX_BUFFERED_BYTES", "8388608"),
                ("OPENCLAW_TICK_INTERVAL_MS", "20"),
            ],
        )
        .await;
        let r = slow_backlog(&gw, sz.slow_window).await;
        let (text, js) = memory_row("backlog", &r);
        row("backlog", text, js);
        gw.stop();
    }
    let secs = started.elapsed().as_secs_f64();
    md.push_str(&format!("\nTotal wall time {secs:.0} s.\n"));
    let name = if smoke { "load-smoke" } else { "load-latest" };
    write_file(&out.join(format!("{name}.md")), &md);
    write_file(
        &out.join(format!("{name}.json")),
        &serde_json::to_string_pretty(&serde_json::Value::Object(js)).unwrap(),
    );
    println!(
        "load: done in {secs:.0} s; wrote {}/{name}.{{md,json}}",
        out.display()
    );
}
