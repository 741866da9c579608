//! Logging: human lines on stderr and a structured JSONL file log.
//!
//! - stderr: `tracing-subscriber` fmt, INFO (`--verbose`: DEBUG for our crate), ANSI colour only
//!   when stderr is a terminal, filtered with `filter::Targets` (no regex engine).
//! - file: one JSON record per line in upstream's rolling family
//!   `/tmp/openclaw/openclaw[-<profile>]-YYYY-MM-DD.log` (UTC date; directory 0700, file 0600;
//!   `OPENCLAW_LOG_DIR` overrides the directory, e.g. for tests). `/tmp/openclaw` owned by
//!   someone else falls back to `/tmp/openclaw-<uid>` as upstream does. The gateway serves it
//!   through `logs.tail` ([`FileLog::tail`], upstream cursor semantics).
//! - extra layers: [`init`] takes optional boxed layers (the journald layer goes here when
//!   `JOURNAL_STREAM` matches stderr); they see every event the registry sees.
//!
//! Secrets are never passed to `tracing` macros, so neither sink can leak them.
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// A layer that can be added to the logging stack (e.g. journald).
pub(crate) type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync + 'static>;

/// Server-side cap of `logs.tail` `limit`.
pub(crate) const MAX_TAIL_LIMIT: usize = 5000;
/// Server-side cap of `logs.tail` `maxBytes`.
pub(crate) const MAX_TAIL_BYTES: u64 = 1_000_000;
/// Default `logs.tail` `limit`.
pub(crate) const DEFAULT_TAIL_LIMIT: usize = 500;
/// Default `logs.tail` `maxBytes`.
pub(crate) const DEFAULT_TAIL_BYTES: u64 = 250_000;

/// Logging options.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// DEBUG instead of INFO for our own targets.
    pub verbose: bool,
    /// Profile name: selects `openclaw-<profile>-DATE.log`.
    pub profile: Option<String>,
    /// Write the JSONL file log (the gateway does; one-shot CLI commands need not).
    pub file: bool,
    /// Leave out the human stderr layer (e.g. when a journald layer replaces it because
    /// stderr already is the journal; avoids every line being logged twice).
    pub no_stderr: bool,
    /// The state dir: its `logs/` is the file log's home when the shared `/tmp` one is not ours.
    pub state_dir: Option<PathBuf>,
}

/// Handle returned by [`init`].
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    /// The file log, when enabled.
    pub file: Option<Arc<FileLog>>,
}

/// Installs the global subscriber. Safe to call once per process; later calls only return the
/// handle without reinstalling (tests in one process).
pub(crate) fn init(opts: &Options, extra: Vec<BoxedLayer>) -> Telemetry {
    let ours = if opts.verbose {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let targets = Targets::new()
        .with_target("openclaw", ours)
        .with_default(LevelFilter::WARN);
    let mut layers: Vec<BoxedLayer> = Vec::new();
    if !opts.no_stderr {
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(true)
                .with_filter(targets.clone())
                .boxed(),
        );
    }
    let file = if opts.file {
        let log = Arc::new(FileLog::new(
            resolve_log_dir(opts.state_dir.as_deref()),
            opts.profile.as_deref(),
        ));
        layers.push(
            JsonFileLayer { log: log.clone() }
                .with_filter(targets)
                .boxed(),
        );
        Some(log)
    } else {
        None
    };
    layers.extend(extra);
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Telemetry { file }
}

/// The file-log directory: `OPENCLAW_LOG_DIR`, else `/tmp/openclaw` when it is ours (or can be
/// created), else `/tmp/openclaw-<uid>` when that is ours (or can be created), else the state
/// dir's `logs/`. Never a directory another user owns or could write: they could swap the day's
/// file for a link to one of ours, or read every line.
pub(crate) fn resolve_log_dir(state_dir: Option<&Path>) -> PathBuf {
    if let Some(d) = std::env::var_os("OPENCLAW_LOG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    log_dir_under(Path::new("/tmp"), state_dir)
}

/// [`resolve_log_dir`] below `tmp` (tests use a temp dir instead of the real `/tmp`).
pub(crate) fn log_dir_under(tmp: &Path, state_dir: Option<&Path>) -> PathBuf {
    let uid = nix::unistd::getuid().as_raw();
    let usable = |d: &Path| match std::fs::symlink_metadata(d) {
        // Ours: group/world bits are tightened to 0700 when the file is opened.
        Ok(m) => m.is_dir() && m.uid() == uid,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    let shared = tmp.join("openclaw");
    if usable(&shared) {
        return shared;
    }
    let own = tmp.join(format!("openclaw-{uid}"));
    match state_dir {
        Some(state) if !usable(&own) => state.join("logs"),
        _ => own,
    }
}

/// Log file name prefix for a profile: `openclaw` or `openclaw-<profile>`.
pub(crate) fn file_prefix(profile: Option<&str>) -> String {
    match profile {
        Some(p) => format!("openclaw-{p}"),
        None => "openclaw".to_string(),
    }
}

/// The rolling JSONL file log.
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    prefix: String,
    open: Mutex<Option<(String, File)>>,
    hostname: String,
    failures: Mutex<WriteFailures>,
}

/// Bookkeeping of failed appends (disk full, read-only or missing directory): the gateway
/// keeps serving and reports the log as degraded in `health` until a write succeeds again.
#[derive(Debug, Default)]
struct WriteFailures {
    /// Records lost since start.
    lost: u64,
    /// The current failure episode: (error text, since epoch ms); `None` while writes succeed.
    current: Option<(String, u64)>,
}

impl FileLog {
    /// A log writing `<dir>/<prefix>-YYYY-MM-DD.log`.
    pub fn new(dir: PathBuf, profile: Option<&str>) -> FileLog {
        FileLog {
            dir,
            prefix: file_prefix(profile),
            open: Mutex::new(None),
            hostname: hostname(),
            failures: Mutex::new(WriteFailures::default()),
        }
    }

    /// `health.logFile`: `{ok, path, lostRecords, error?, failingSinceMs?}`. `ok` is false while
    /// appends fail (the gateway itself keeps serving).
    pub fn health(&self) -> Value {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut v = json!({
            "ok": f.current.is_none(),
            "path": self.current_path().display().to_string(),
            "lostRecords": f.lost,
        });
        if let Some((e, since)) = &f.current {
            v["error"] = e.clone().into();
            v["failingSinceMs"] = (*since).into();
        }
        v
    }

    /// Whether the last append succeeded.
    pub fn is_healthy(&self) -> bool {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .is_none()
    }

    fn note_result(&self, result: std::result::Result<(), String>) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                if let Some((e, _)) = f.current.take() {
                    eprintln!(
                        "openclaw: writing the log file {} works again ({} records were lost; last error: {e})",
                        self.current_path().display(),
                        f.lost
                    );
                }
            }
            Err(e) => {
                f.lost += 1;
                if f.current.is_none() {
                    // Once per episode (not per record): stderr goes to the journal under systemd.
                    eprintln!(
                        "openclaw: cannot write the log file {}: {e}; the gateway keeps running and reports this in `health` (logFile). Free space or fix permissions, or set OPENCLAW_LOG_DIR.",
                        self.current_path().display()
                    );
                    f.current = Some((e, crate::sys::time::now_ms()));
                }
            }
        }
    }

    /// The directory of the family.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Today's file (UTC date).
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(format!("{}-{}.log", self.prefix, today()))
    }

    /// Appends one record (one line). Errors are swallowed: logging must never take the
    /// gateway down; the first failure is reported once on stderr.
    pub fn append(&self, record: &Value) {
        let mut line = record.to_string();
        line.push('\n');
        let date = today();
        let mut guard = match self.open.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let reopen = !matches!(&*guard, Some((d, _)) if *d == date);
        if reopen {
            *guard = None;
            match self.open_file(&date) {
                Ok(f) => *guard = Some((date, f)),
                Err(e) => {
                    drop(guard);
                    return self.note_result(Err(e));
                }
            }
        }
        let r = match guard.as_mut() {
            Some((_, f)) => f.write_all(line.as_bytes()).map_err(|e| e.to_string()),
            None => Err("log file not open".into()),
        };
        if r.is_err() {
            // Reopen on the next record (the file may have been removed or the disk freed).
            *guard = None;
        }
        drop(guard);
        self.note_result(r);
    }

    fn open_file(&self, date: &str) -> std::result::Result<File, String> {
        let uid = nix::unistd::getuid().as_raw();
        if !self.dir.exists() {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir);
        } else if let Ok(m) = std::fs::metadata(&self.dir)
            && m.uid() == uid
            && m.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        }
        let path = self.dir.join(format!("{}-{date}.log", self.prefix));
        // Never through a symlink, and never into a file someone else owns: whoever can write
        // the directory could otherwise point the day's file at one of ours.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::ELOOP) => format!(
                    "opening: {} is a symbolic link; refusing to write through it (remove it, or set OPENCLAW_LOG_DIR to a directory only this user can write)",
                    path.display()
                ),
                _ => format!("opening: {e}"),
            })?;
        let m = file.metadata().map_err(|e| format!("checking: {e}"))?;
        if !m.is_file() || m.uid() != uid {
            return Err(format!(
                "opening: {} is not a regular file owned by uid {uid}; refusing to write to it (remove it, or set OPENCLAW_LOG_DIR to a directory only this user can write)",
                path.display()
            ));
        }
        Ok(file)
    }

    /// The file `logs.tail` reads: today's, or the newest of the same family when today's is
    /// missing (rotation / date change).
    pub fn tail_path(&self) -> PathBuf {
        let today = self.current_path();
        if today.exists() {
            return today;
        }
        let mut newest: Option<(String, PathBuf)> = None;
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix(&format!("{}-", self.prefix)) else {
                    continue;
                };
                let Some(date) = rest.strip_suffix(".log") else {
                    continue;
                };
                if is_date(date) && newest.as_ref().is_none_or(|(d, _)| date > d.as_str()) {
                    newest = Some((date.to_string(), e.path()));
                }
            }
        }
        newest.map(|(_, p)| p).unwrap_or(today)
    }

    /// `logs.tail`: `{file, cursor, size, lines, truncated, reset, skippedBytes?}`.
    ///
    /// Without a cursor: the last `maxBytes` of the file (whole lines), at most `limit` lines.
    /// With a cursor: the bytes after it; a cursor past EOF (rotation) resets to the tail
    /// (`reset: true`); more than `maxBytes` pending skips ahead (`reset`, `skippedBytes`).
    /// The returned cursor is always the file size, so polling never repeats a line.
    pub fn tail(&self, cursor: Option<u64>, limit: usize, max_bytes: u64) -> Value {
        tail_file(&self.tail_path(), cursor, limit, max_bytes)
    }
}

/// [`FileLog::tail`] on an explicit path (pure apart from reading the file).
pub(crate) fn tail_file(path: &Path, cursor: Option<u64>, limit: usize, max_bytes: u64) -> Value {
    let limit = limit.clamp(1, MAX_TAIL_LIMIT);
    let max_bytes = max_bytes.clamp(1, MAX_TAIL_BYTES);
    let file = path.display().to_string();
    let Ok(mut f) = File::open(path) else {
        return json!({"file": file, "cursor": 0, "size": 0, "lines": [], "truncated": false, "reset": false});
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reset = false;
    let mut truncated;
    let mut skipped: Option<u64> = None;
    let start = match cursor {
        Some(c) if c > size => {
            reset = true;
            let s = size.saturating_sub(max_bytes);
            truncated = s > 0;
            s
        }
        Some(c) if size - c > max_bytes => {
            reset = true;
            truncated = true;
            let s = size - max_bytes;
            skipped = Some(s - c);
            s
        }
        Some(c) => {
            truncated = false;
            c
        }
        None => {
            let s = size.saturating_sub(max_bytes);
            truncated = s > 0;
            s
        }
    };
    let mut lines: Vec<String> = Vec::new();
    if size > start {
        // Read one byte before `start` to know whether we begin mid-line.
        let from = start.saturating_sub(1);
        let mut buf = Vec::with_capacity((size - from) as usize);
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = (&mut f).take(size - from).read_to_end(&mut buf);
        }
        let (prefix_nl, body) = if start > 0 && !buf.is_empty() {
            (buf[0] == b'\n', &buf[1..])
        } else {
            (true, &buf[..])
        };
        let text = String::from_utf8_lossy(body);
        let mut parts: Vec<&str> = text.split('\n').collect();
        if !prefix_nl && !parts.is_empty() {
            parts.remove(0);
        }
        if parts.last() == Some(&"") {
            parts.pop();
        }
        if parts.len() > limit {
            truncated = true;
            parts.drain(..parts.len() - limit);
        }
        lines = parts.into_iter().map(str::to_string).collect();
    }
    let mut out = json!({
        "file": file, "cursor": size, "size": size, "lines": lines,
        "truncated": truncated, "reset": reset,
    });
    if let Some(s) = skipped {
        out["skippedBytes"] = s.into();
    }
    out
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

fn timestamp() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    (format!("{base}Z"), format!("{base}+00:00"))
}

/// The host name (for log records and presence).
pub(crate) fn hostname() -> String {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.nodename().to_str().map(str::to_string))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `openclaw::gateway::ws` → `gateway/ws`.
pub(crate) fn subsystem(target: &str) -> String {
    let t = target.strip_prefix("openclaw::").unwrap_or(target);
    t.replace("::", "/")
}

struct JsonFileLayer {
    log: Arc<FileLog>,
}

#[derive(Default)]
struct FieldCollector {
    message: String,
    fields: Map<String, Value>,
}

impl Visit for FieldCollector {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().to_string(), format!("{value:?}").into());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.insert(field.name().to_string(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
}

fn level_meta(level: &Level) -> (u8, &'static str, &'static str) {
    match *level {
        Level::TRACE => (1, "TRACE", "trace"),
        Level::DEBUG => (2, "DEBUG", "debug"),
        Level::INFO => (3, "INFO", "info"),
        Level::WARN => (4, "WARN", "warn"),
        Level::ERROR => (5, "ERROR", "error"),
    }
}

impl<S: Subscriber> Layer<S> for JsonFileLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut c = FieldCollector::default();
        event.record(&mut c);
        let meta = event.metadata();
        let sub = subsystem(meta.target());
        let name = json!({"subsystem": sub}).to_string();
        let (id, upper, lower) = level_meta(meta.level());
        let (date_z, time_off) = timestamp();
        // tslog-compatible shape (what upstream's `openclaw logs` parses) plus flat
        // `level`/`subsystem` keys for simple consumers.
        let mut rec = Map::new();
        rec.insert("0".into(), name.clone().into());
        rec.insert("1".into(), c.message.clone().into());
        rec.insert(
            "_meta".into(),
            json!({
                "runtime": "rust",
                "runtimeVersion": crate::VERSION,
                "hostname": self.log.hostname,
                "date": date_z,
                "logLevelId": id,
                "logLevelName": upper,
                "name": name,
                "parentNames": ["openclaw"],
            }),
        );
        rec.insert("time".into(), time_off.into());
        rec.insert("hostname".into(), self.log.hostname.clone().into());
        rec.insert("level".into(), lower.into());
        rec.insert("subsystem".into(), sub.into());
        rec.insert("message".into(), c.message.into());
        for (k, v) in c.fields {
            rec.entry(k).or_insert(v);
        }
        self.log.append(&Value::Object(rec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20 finding 2: the day's file is a symlink planted in the log directory → nothing
    /// is written through it, and the failure shows in `health`.
    #[test]
    fn file_log_never_writes_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim.txt");
        write(&victim, "mine\n");
        let dir = t.path().join("logs");
        std::fs::create_dir(&dir).unwrap();
        let log = FileLog::new(dir.clone(), None);
        std::os::unix::fs::symlink(&victim, log.current_path()).unwrap();
        log.append(&json!({"msg": "secret line"}));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine\n");
        assert!(!log.is_healthy());
        let err = log.health()["error"].as_str().unwrap().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    /// Issue 20 finding 2: `/tmp/openclaw` and `/tmp/openclaw-<uid>` owned by another user (or
    /// a symlink) are never used; the state dir's `logs/` is.
    #[test]
    fn log_dir_is_never_another_users_directory() {
        let t = tempfile::tempdir().unwrap();
        let (tmp, state) = (t.path().join("tmp"), t.path().join("state"));
        std::fs::create_dir(&tmp).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        let (shared, own) = (tmp.join("openclaw"), tmp.join(format!("openclaw-{uid}")));
        assert_eq!(
            log_dir_under(&tmp, Some(&state)),
            shared,
            "absent: created by us"
        );
        // A symlink to a directory of ours is not ours to trust either.
        std::os::unix::fs::symlink(t.path(), &shared).unwrap();
        assert_eq!(log_dir_under(&tmp, Some(&state)), own);
        std::os::unix::fs::symlink(t.path(), &own).unwrap();
        assert_eq!(log_dir_under(&tmp, Some(&state)), state.join("logs"));
        if !nix::unistd::getuid().is_root() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "needs root under CI=true to chown a directory to another uid"
            );
            eprintln!("SKIP: log_dir_is_never_another_users_directory: chown part needs root");
            return;
        }
        for d in [&shared, &own] {
            std::fs::remove_file(d).unwrap();
            std::fs::create_dir(d).unwrap();
            std::os::unix::fs::chown(d, Some(65534), Some(65534)).unwrap();
        }
        assert_eq!(log_dir_under(&tmp, Some(&state)), state.join("logs"));
        std::fs::remove_dir(&own).unwrap();
        assert_eq!(
            log_dir_under(&tmp, Some(&state)),
            own,
            "absent: created by us"
        );
    }

    fn write(path: &Path, s: &str) {
        std::fs::write(path, s).unwrap();
    }

    #[test]
    fn tail_semantics() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("openclaw-2026-01-01.log");
        write(&p, "a\nbb\nccc\n");
        let t = tail_file(&p, None, 2, 1000);
        assert_eq!(t["lines"], json!(["bb", "ccc"]));
        assert_eq!(t["truncated"], json!(true));
        assert_eq!(t["cursor"], json!(9));
        // cursor at EOF: nothing new
        let t = tail_file(&p, Some(9), 10, 1000);
        assert_eq!(t["lines"], json!([]));
        // appended lines only
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"dd\n").unwrap();
        let t = tail_file(&p, Some(9), 10, 1000);
        assert_eq!(t["lines"], json!(["dd"]));
        assert_eq!(t["reset"], json!(false));
        // maxBytes cuts mid-line: the partial line is dropped
        let t = tail_file(&p, None, 10, 5);
        assert_eq!(t["lines"], json!(["dd"]));
        // cursor beyond EOF (rotation) resets to the tail
        let t = tail_file(&p, Some(999), 10, 1000);
        assert_eq!(t["reset"], json!(true));
        assert_eq!(t["lines"], json!(["a", "bb", "ccc", "dd"]));
        // too much pending: skip ahead
        let t = tail_file(&p, Some(0), 10, 4);
        assert_eq!(t["reset"], json!(true));
        assert_eq!(t["skippedBytes"], json!(8));
        assert_eq!(t["lines"], json!(["dd"]));
        // missing file
        let t = tail_file(&d.path().join("nope.log"), None, 10, 10);
        assert_eq!(t["size"], json!(0));
    }

    #[test]
    fn family_fallback_and_names() {
        let d = tempfile::tempdir().unwrap();
        let log = FileLog::new(d.path().to_path_buf(), None);
        write(&d.path().join("openclaw-2020-01-01.log"), "x\n");
        write(&d.path().join("openclaw-2020-01-03.log"), "y\n");
        write(&d.path().join("openclaw-ops-2030-01-01.log"), "z\n");
        assert_eq!(log.tail_path(), d.path().join("openclaw-2020-01-03.log"));
        log.append(&json!({"m": 1}));
        assert_eq!(log.tail_path(), log.current_path());
        let mode = std::fs::metadata(log.current_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(subsystem("openclaw::gateway::ws"), "gateway/ws");
        assert_eq!(file_prefix(Some("ops")), "openclaw-ops");
    }
}
