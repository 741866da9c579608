//! The engine of `openclaw logs [--follow]`: tail and follow the gateway's file log.
//!
//! The source is the gateway's JSONL file log, read over RPC `logs.tail` with a byte cursor
//! (works for remote gateways too). `--follow` polls with the returned cursor and:
//! - on a transient failure (refused, reset, timeout, restart close 1012, draining 503)
//!   reconnects with exponential backoff (250 ms × 2ⁿ ± 20 %, cap 30 s), saying so on stderr
//!   (`[logs] gateway disconnected …` / `[logs] gateway reconnected`);
//! - for the implicit local gateway, keeps following the same file directly while the gateway
//!   is down (said once per outage): the cursor is a byte offset in that file, so switching
//!   between RPC and file reads neither repeats nor drops a line, across gateway restarts;
//! - handles `reset` (file truncated or skipped ahead) and rotation (a new file: read it from
//!   its start) with a notice;
//! - exits 1 on auth/protocol rejections (retrying cannot help), and for `--url` targets after
//!   8 failed reconnects.
//!
//! `--limit` applies to the initial tail only; later polls ask for everything new (upstream
//! applies it to every poll and silently skips lines). What is printed, and how, is the
//! verb's [`Sink`] (text or NDJSON).
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::conn::Target;
use super::rpc::{self, Identity};
use crate::config::paths::Paths;
use crate::error::{Error, Result};
use crate::gateway::client::GatewayClient;
use crate::telemetry::{FileLog, MAX_TAIL_BYTES, MAX_TAIL_LIMIT, tail_file};

/// Reconnect attempts for targets without a local fallback.
pub(crate) const MAX_RETRIES: u32 = 8;
/// First reconnect delay.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The delay before reconnect attempt `n` (0-based), with ±20 % jitter from `jitter` ∈ [0, 1).
pub(crate) fn backoff(n: u32, jitter: f64) -> Duration {
    let base = BACKOFF_BASE.as_millis() as f64 * 2f64.powi(n.min(16) as i32);
    let capped = base.min(BACKOFF_CAP.as_millis() as f64);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    Duration::from_millis((capped * factor) as u64)
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / 65536.0
}

/// A closed stdout (`| head`): ends the command successfully.
#[derive(Debug)]
pub(crate) struct Closed;

/// Where a tail writes: the verb's output format (text or NDJSON records).
pub(crate) trait Sink {
    /// The header of a file: printed first and again after a rotation.
    fn meta(
        &self,
        file: &str,
        cursor: u64,
        size: u64,
        local: bool,
    ) -> std::result::Result<(), Closed>;
    /// One raw JSONL line of the file.
    fn line(&self, raw: &str) -> std::result::Result<(), Closed>;
    /// A notice (disconnects, resets, fallbacks).
    fn notice(&self, msg: &str) -> std::result::Result<(), Closed>;
}

/// How much to read, and how often to poll when following.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tail {
    /// Lines to show initially.
    pub(crate) limit: u32,
    /// Poll interval in milliseconds.
    pub(crate) interval: u64,
    /// Bytes to read initially.
    pub(crate) max_bytes: u64,
}

/// Prints the tail of the target's log into `out`, then with `follow` keeps following it
/// (never returns `Ok` unless stdout closes). A closed stdout is success.
pub(crate) async fn tail(
    paths: &Paths,
    target: &Target,
    tail: &Tail,
    follow: bool,
    out: &dyn Sink,
    pf: &str,
) -> Result<()> {
    let r = if follow {
        self::follow(paths, tail, target, out, pf).await
    } else {
        once(paths, tail, target, out, pf).await
    };
    match r {
        Ok(()) | Err(Fail::Closed) => Ok(()),
        Err(Fail::Error(e)) => Err(e),
    }
}

/// The cursor state of a follower: which file, and the byte offset read so far.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Cursor {
    /// The file the cursor belongs to.
    pub(crate) file: Option<String>,
    /// Bytes of it already printed.
    pub(crate) offset: Option<u64>,
}

/// What to do with a `logs.tail`-shaped answer.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Print these lines (after the notices).
    Lines {
        /// Notices to show first.
        notices: Vec<String>,
        /// The file changed (print a new header).
        new_file: bool,
        /// Raw lines.
        lines: Vec<String>,
    },
    /// The answer is for another file than the cursor: read that file from its start.
    Refetch,
}

impl Cursor {
    /// Applies an answer to a request made with `self.offset` (pure).
    pub(crate) fn apply(&mut self, resp: &Value) -> Step {
        let file = resp["file"].as_str().unwrap_or_default().to_string();
        let changed = self.file.as_deref().is_some_and(|f| f != file);
        if changed && self.offset.is_some() && !file.is_empty() {
            // Rotation: the cursor was an offset into the old file. Start the new one at 0.
            self.file = Some(file);
            self.offset = None;
            return Step::Refetch;
        }
        let mut notices = Vec::new();
        if resp["reset"] == true && self.offset.is_some() {
            match resp["skippedBytes"].as_u64() {
                Some(n) => notices.push(format!(
                    "[logs] {n} bytes were written faster than they could be read and were skipped"
                )),
                None => notices.push(
                    "[logs] the log file was truncated or replaced; continuing at its end".into(),
                ),
            }
        }
        let new_file = self.file.as_deref() != Some(file.as_str());
        self.file = Some(file);
        self.offset = resp["cursor"].as_u64().or(self.offset);
        let lines = resp["lines"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Step::Lines {
            notices,
            new_file,
            lines,
        }
    }
}

/// The local log file of this profile: the first directory that has one of
/// `OPENCLAW_LOG_DIR`, the state dir's `logs/` (where an installed service writes: its unit
/// sets `OPENCLAW_LOG_DIR` there), the default `/tmp/openclaw` (shared by every gateway of the
/// profile name on this host, hence last).
pub(crate) fn local_log_file(paths: &Paths) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("OPENCLAW_LOG_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(paths.state_dir.join("logs"));
    dirs.push(crate::telemetry::resolve_log_dir(Some(&paths.state_dir)));
    dirs.into_iter()
        .map(|d| FileLog::new(d, paths.profile.as_deref()).tail_path())
        .find(|p| p.is_file())
}

fn read_local(path: &Path, cursor: Option<u64>, limit: usize, max_bytes: u64) -> Value {
    tail_file(path, cursor, limit, max_bytes)
}

async fn tail_rpc(
    client: &GatewayClient,
    cursor: Option<u64>,
    limit: usize,
    max_bytes: u64,
) -> std::result::Result<Value, crate::gateway::client::ClientError> {
    let mut p = json!({"limit": limit, "maxBytes": max_bytes});
    if let Some(c) = cursor {
        p["cursor"] = c.into();
    }
    client.call("logs.tail", Some(p)).await
}

enum Fail {
    Closed,
    Error(Error),
}

impl From<Closed> for Fail {
    fn from(_: Closed) -> Self {
        Fail::Closed
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}

fn print_answer(out: &dyn Sink, resp: &Value, local: bool) -> std::result::Result<(), Closed> {
    out.meta(
        resp["file"].as_str().unwrap_or_default(),
        resp["cursor"].as_u64().unwrap_or(0),
        resp["size"].as_u64().unwrap_or(0),
        local,
    )?;
    for l in resp["lines"].as_array().into_iter().flatten() {
        if let Some(s) = l.as_str() {
            out.line(s)?;
        }
    }
    if resp["truncated"] == true {
        out.notice("Log tail truncated (increase --limit or --max-bytes).")?;
    }
    Ok(())
}

async fn once(
    paths: &Paths,
    args: &Tail,
    target: &Target,
    out: &dyn Sink,
    pf: &str,
) -> std::result::Result<(), Fail> {
    let limit = args.limit as usize;
    let max_bytes = args.max_bytes;
    match rpc::connect(target, &Identity::read()).await {
        Ok(s) => {
            let r = tail_rpc(&s.client, None, limit, max_bytes).await;
            s.client.close();
            let resp = r.map_err(|e| {
                Error::Msg(format!(
                    "logs.tail failed: {} ({})",
                    rpc::describe(&e),
                    target.url
                ))
            })?;
            print_answer(out, &resp, false)?;
            Ok(())
        }
        Err(f) if target.is_local() && f.transient() => {
            let Some(path) = local_log_file(paths) else {
                return Err(f.into_error(pf).into());
            };
            out.notice(&format!(
                "[logs] gateway unreachable ({}); reading {} directly",
                f.reason(),
                path.display()
            ))?;
            print_answer(out, &read_local(&path, None, limit, max_bytes), true)?;
            Ok(())
        }
        Err(f) => Err(f.into_error(pf).into()),
    }
}

/// Prints one answer through the cursor; returns true when the caller must refetch from the
/// start of a new file.
fn emit(
    out: &dyn Sink,
    cursor: &mut Cursor,
    resp: &Value,
    local: bool,
) -> std::result::Result<bool, Closed> {
    match cursor.apply(resp) {
        Step::Refetch => Ok(true),
        Step::Lines {
            notices,
            new_file,
            lines,
        } => {
            for n in &notices {
                out.notice(n)?;
            }
            if new_file {
                out.meta(
                    cursor.file.as_deref().unwrap_or_default(),
                    cursor.offset.unwrap_or(0),
                    resp["size"].as_u64().unwrap_or(0),
                    local,
                )?;
            }
            for l in &lines {
                out.line(l)?;
            }
            Ok(false)
        }
    }
}

async fn follow(
    paths: &Paths,
    args: &Tail,
    target: &Target,
    out: &dyn Sink,
    pf: &str,
) -> std::result::Result<(), Fail> {
    let interval = Duration::from_millis(args.interval.max(10));
    let mut cursor = Cursor::default();
    let mut client: Option<GatewayClient> = None;
    let mut attempt: u32 = 0;
    let mut next_connect = tokio::time::Instant::now();
    let mut ever_connected = false;
    let mut fallback_announced = false;
    let mut first = true;
    loop {
        // 1. (Re)connect when due.
        if client.is_none() && tokio::time::Instant::now() >= next_connect {
            match rpc::connect(target, &Identity::read()).await {
                Ok(s) => {
                    if ever_connected {
                        out.notice("[logs] gateway reconnected")?;
                    }
                    ever_connected = true;
                    attempt = 0;
                    fallback_announced = false;
                    client = Some(s.client);
                }
                Err(f) if !f.transient() => return Err(f.into_error(pf).into()),
                Err(f) => {
                    if !target.is_local() && attempt >= MAX_RETRIES {
                        return Err(Error::Msg(format!(
                            "gateway unreachable after {MAX_RETRIES} reconnect attempts: {} ({})",
                            f.reason(),
                            target.url
                        ))
                        .into());
                    }
                    let d = backoff(attempt, jitter());
                    attempt += 1;
                    if ever_connected || !target.is_local() {
                        out.notice(&format!(
                            "[logs] gateway disconnected ({}), reconnecting in {}...",
                            f.reason(),
                            human(d)
                        ))?;
                    }
                    next_connect = tokio::time::Instant::now() + d;
                }
            }
        }
        // 2. Read: over RPC when connected, else the same file directly (local targets).
        let (limit, max_bytes) = if first {
            (args.limit as usize, args.max_bytes)
        } else {
            (MAX_TAIL_LIMIT, MAX_TAIL_BYTES)
        };
        if let Some(c) = &client {
            match tail_rpc(c, cursor.offset, limit, max_bytes).await {
                Ok(resp) => {
                    first = false;
                    if emit(out, &mut cursor, &resp, false)? {
                        let resp = tail_rpc(c, Some(0), MAX_TAIL_LIMIT, MAX_TAIL_BYTES)
                            .await
                            .map_err(|e| Error::Msg(format!("logs.tail: {}", rpc::describe(&e))))?;
                        emit(out, &mut cursor, &resp, false)?;
                    }
                }
                Err(e) if rpc::transient(&e) => {
                    c.close();
                    client = None;
                    let d = backoff(0, jitter());
                    attempt = 1;
                    out.notice(&format!(
                        "[logs] gateway disconnected ({}), reconnecting in {}...",
                        rpc::describe(&e),
                        human(d)
                    ))?;
                    next_connect = tokio::time::Instant::now() + d;
                    continue;
                }
                Err(e) => {
                    return Err(Error::Msg(format!(
                        "logs.tail failed: {} ({})",
                        rpc::describe(&e),
                        target.url
                    ))
                    .into());
                }
            }
        } else if target.is_local() {
            let path = cursor
                .file
                .as_ref()
                .map(PathBuf::from)
                .filter(|p| p.is_file())
                .or_else(|| local_log_file(paths));
            if let Some(path) = path {
                if !fallback_announced {
                    out.notice(&format!(
                        "[logs] gateway unreachable; following {} directly until it is back",
                        path.display()
                    ))?;
                    fallback_announced = true;
                }
                let resp = read_local(&path, cursor.offset, limit, max_bytes);
                first = false;
                if emit(out, &mut cursor, &resp, true)? {
                    let resp = read_local(&path, Some(0), MAX_TAIL_LIMIT, MAX_TAIL_BYTES);
                    emit(out, &mut cursor, &resp, true)?;
                }
            }
        }
        // 3. Wait for the next poll (or the reconnect, whichever is first when disconnected).
        let wake = if client.is_none() && !target.is_local() {
            next_connect
        } else {
            tokio::time::Instant::now() + interval
        };
        tokio::time::sleep_until(wake).await;
    }
}

fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{}s", d.as_secs_f64().round() as u64)
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_follows_resets_and_rotation() {
        let mut c = Cursor::default();
        let r1 =
            json!({"file": "/l/a.log", "cursor": 10, "size": 10, "lines": ["x"], "reset": false});
        assert_eq!(
            c.apply(&r1),
            Step::Lines {
                notices: vec![],
                new_file: true,
                lines: vec!["x".into()]
            }
        );
        assert_eq!(c.offset, Some(10));
        let r2 = json!({"file": "/l/a.log", "cursor": 4, "size": 4, "lines": ["y"], "reset": true});
        match c.apply(&r2) {
            Step::Lines {
                notices, new_file, ..
            } => {
                assert_eq!(notices.len(), 1);
                assert!(!new_file);
            }
            s => panic!("{s:?}"),
        }
        let r3 = json!({"file": "/l/b.log", "cursor": 50, "size": 50, "lines": ["z"]});
        assert_eq!(c.apply(&r3), Step::Refetch);
        assert_eq!(c.offset, None);
        assert_eq!(c.file.as_deref(), Some("/l/b.log"));
        match c.apply(&json!({"file": "/l/b.log", "cursor": 50, "lines": ["a", "z"]})) {
            Step::Lines {
                new_file, lines, ..
            } => {
                assert!(!new_file);
                assert_eq!(lines.len(), 2);
            }
            s => panic!("{s:?}"),
        }
    }

    /// A sink that records what it was handed.
    #[derive(Default)]
    struct Rec(std::cell::RefCell<Vec<String>>);

    impl Sink for Rec {
        fn meta(
            &self,
            file: &str,
            cursor: u64,
            size: u64,
            local: bool,
        ) -> std::result::Result<(), Closed> {
            self.0
                .borrow_mut()
                .push(format!("meta {file} {cursor} {size} {local}"));
            Ok(())
        }
        fn line(&self, raw: &str) -> std::result::Result<(), Closed> {
            self.0.borrow_mut().push(format!("line {raw}"));
            Ok(())
        }
        fn notice(&self, msg: &str) -> std::result::Result<(), Closed> {
            self.0.borrow_mut().push(format!("notice {msg}"));
            Ok(())
        }
    }

    #[test]
    fn an_answer_is_header_then_lines_then_the_truncation_notice() {
        let r = Rec::default();
        let resp = json!({"file": "/l/a.log", "cursor": 5, "size": 9, "lines": ["a", "b"], "truncated": true});
        print_answer(&r, &resp, true).unwrap();
        assert_eq!(
            *r.0.borrow(),
            [
                "meta /l/a.log 5 9 true",
                "line a",
                "line b",
                "notice Log tail truncated (increase --limit or --max-bytes).",
            ]
        );
    }

    #[test]
    fn a_follower_prints_a_header_only_for_a_new_file() {
        let r = Rec::default();
        let mut c = Cursor::default();
        let first = json!({"file": "/l/a.log", "cursor": 3, "size": 3, "lines": ["x"]});
        assert!(!emit(&r, &mut c, &first, false).unwrap());
        let next = json!({"file": "/l/a.log", "cursor": 5, "size": 5, "lines": ["y"]});
        assert!(!emit(&r, &mut c, &next, false).unwrap());
        assert_eq!(
            *r.0.borrow(),
            ["meta /l/a.log 3 3 false", "line x", "line y"]
        );
        // Rotation: nothing printed, the caller refetches the new file from its start.
        let rotated = json!({"file": "/l/b.log", "cursor": 9, "size": 9, "lines": ["z"]});
        assert!(emit(&r, &mut c, &rotated, false).unwrap());
        assert_eq!(r.0.borrow().len(), 3);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        assert_eq!(backoff(0, 0.5), Duration::from_millis(250));
        assert_eq!(backoff(2, 0.5), Duration::from_millis(1000));
        assert_eq!(backoff(0, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(300));
        assert_eq!(backoff(30, 0.5), BACKOFF_CAP);
    }
}
