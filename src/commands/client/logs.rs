//! `openclaw logs [--follow] [--json] [--limit N] [--max-bytes N] [--interval ms]`.
//!
//! The tail and follow engine (RPC `logs.tail` with a byte cursor, reconnects, the local file
//! fallback) is [`crate::ops::logs`]; this is the output. Text: `Log file: <path>` then
//! `<time> <level> <subsystem> <message> key=value…`, level coloured on a terminal
//! (`NO_COLOR`/`--no-color` turn it off). `--json`: NDJSON `meta`/`log`/`notice` records.
use std::io::{IsTerminal, Write};

use serde_json::{Value, json};

use crate::config::paths::Paths;
use crate::error::{Error, Exit, Result};
use crate::ops::conn::ConnOptions;
use crate::ops::logs::{Closed, Sink, Tail};
use crate::ops::rpc;

/// `logs`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogsOptions {
    /// Keep polling for new lines (survives gateway restarts).
    pub(crate) follow: bool,
    /// Print raw JSONL records.
    pub(crate) json: bool,
    /// Lines to show initially.
    pub(crate) limit: u32,
    /// Poll interval in milliseconds for --follow.
    pub(crate) interval: u64,
    /// Bytes to read initially (the gateway caps it at 1 MB).
    pub(crate) max_bytes: u64,
    /// No colours even on a terminal (NO_COLOR is honoured too).
    pub(crate) no_color: bool,
    /// Connection.
    pub(crate) conn: ConnOptions,
}

/// One parsed file-log record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogLine {
    /// ISO time.
    pub(crate) time: Option<String>,
    /// `info`, `warn`, …
    pub(crate) level: Option<String>,
    /// `gateway/ws`, …
    pub(crate) subsystem: Option<String>,
    /// The message.
    pub(crate) message: String,
    /// Other fields as `key=value`.
    pub(crate) fields: Vec<(String, String)>,
}

const KNOWN_KEYS: &[&str] = &[
    "0",
    "1",
    "_meta",
    "time",
    "hostname",
    "level",
    "subsystem",
    "message",
];

/// Parses a JSONL record (ours, or upstream's tslog shape); `None` for a non-JSON line.
pub(crate) fn parse_line(raw: &str) -> Option<LogLine> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let obj = v.as_object()?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let level = s("level").or_else(|| {
        v["_meta"]["logLevelName"]
            .as_str()
            .map(|l| l.to_ascii_lowercase())
    });
    let subsystem = s("subsystem").or_else(|| {
        let name = v["0"].as_str()?;
        let meta: Value = serde_json::from_str(name).ok()?;
        meta["subsystem"].as_str().map(str::to_string)
    });
    let message = s("message")
        .or_else(|| s("1"))
        .or_else(|| s("0"))
        .unwrap_or_default();
    let fields = obj
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|(k, v)| {
            let val = match v {
                Value::String(s) if !s.contains(char::is_whitespace) && !s.is_empty() => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), val)
        })
        .collect();
    Some(LogLine {
        time: s("time").or_else(|| v["_meta"]["date"].as_str().map(str::to_string)),
        level,
        subsystem,
        message,
        fields,
    })
}

/// `<time> <level> <subsystem> <message> k=v…`, the level coloured when `color`.
pub(crate) fn format_text(raw: &str, color: bool) -> String {
    let Some(l) = parse_line(raw) else {
        return raw.to_string();
    };
    let mut out = String::new();
    if let Some(t) = &l.time {
        out.push_str(t);
        out.push(' ');
    }
    let level = l.level.as_deref().unwrap_or("info");
    if color {
        let code = match level {
            "error" | "fatal" => "31",
            "warn" => "33",
            "info" => "32",
            _ => "2",
        };
        out.push_str(&format!("\x1b[{code}m{level}\x1b[0m "));
    } else {
        out.push_str(level);
        out.push(' ');
    }
    if let Some(s) = &l.subsystem {
        out.push_str(s);
        out.push(' ');
    }
    out.push_str(&l.message);
    for (k, v) in &l.fields {
        out.push_str(&format!(" {k}={v}"));
    }
    out
}

/// The NDJSON `log` record for a raw line.
pub(crate) fn json_record(raw: &str) -> Value {
    match parse_line(raw) {
        Some(l) => {
            let mut r = json!({"type": "log", "time": l.time, "level": l.level, "message": l.message, "raw": raw});
            if let Some(s) = l.subsystem {
                r["subsystem"] = s.into();
            }
            r
        }
        None => json!({"type": "raw", "raw": raw}),
    }
}

/// Where output goes. A closed stdout (`| head`) ends the command successfully.
#[derive(Debug)]
struct Out {
    json: bool,
    color: bool,
}

impl Out {
    fn write_stdout(&self, s: &str) -> std::result::Result<(), Closed> {
        let mut o = std::io::stdout().lock();
        writeln!(o, "{s}")
            .and_then(|_| o.flush())
            .map_err(|_| Closed)
    }
}

impl Sink for Out {
    fn meta(
        &self,
        file: &str,
        cursor: u64,
        size: u64,
        local: bool,
    ) -> std::result::Result<(), Closed> {
        if self.json {
            let mut m = json!({"type": "meta", "file": file, "sourceKind": "file", "cursor": cursor, "size": size});
            if local {
                m["localFallback"] = true.into();
            }
            self.write_stdout(&m.to_string())
        } else {
            self.write_stdout(&format!("Log file: {file}"))
        }
    }
    fn line(&self, raw: &str) -> std::result::Result<(), Closed> {
        if self.json {
            self.write_stdout(&json_record(raw).to_string())
        } else {
            self.write_stdout(&format_text(raw, self.color))
        }
    }
    /// Notices go to stderr in text mode (stdout stays pure log lines).
    fn notice(&self, msg: &str) -> std::result::Result<(), Closed> {
        if self.json {
            self.write_stdout(&json!({"type": "notice", "message": msg}).to_string())
        } else {
            eprintln!("{msg}");
            Ok(())
        }
    }
}

/// Runs the command.
pub(crate) fn run(paths: &Paths, args: &LogsOptions) -> Result<Exit> {
    let target = match crate::ops::target(paths, &args.conn) {
        Ok(t) => t,
        Err(e) if args.json => return Ok(crate::ops::print_json_error(&e, None)),
        Err(e) => return Err(e),
    };
    let out = Out {
        json: args.json,
        color: !args.json
            && !args.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal(),
    };
    let rt = rpc::runtime()?;
    let pf = crate::ops::profile_flag(paths);
    if let Some(n) = &target.config_broken {
        // NDJSON stays NDJSON: the warning is a notice record with --json, stderr otherwise.
        let _ = out.notice(&format!("warning: {n}"));
    }
    let tail = Tail {
        limit: args.limit,
        interval: args.interval,
        max_bytes: args.max_bytes,
    };
    if let Err(e) = rt.block_on(crate::ops::logs::tail(
        paths,
        &target,
        &tail,
        args.follow,
        &out,
        &pf,
    )) {
        // The note went out first (a notice); the failure keeps the config's exit code.
        let e = match &target.config_broken {
            Some(_) => Error::Config(e.to_string()),
            None => e,
        };
        if args.json {
            return Ok(crate::ops::print_json_error(&e, Some(&target)));
        }
        return Err(e);
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = r#"{"0":"{\"subsystem\":\"gateway\"}","1":"listening","_meta":{"logLevelName":"INFO","date":"2026-01-01T00:00:00.000Z"},"time":"2026-01-01T00:00:00.000+00:00","hostname":"h","level":"info","subsystem":"gateway","message":"listening on ws://127.0.0.1:1","pid":42}"#;

    #[test]
    fn text_and_json_formats() {
        assert_eq!(
            format_text(REC, false),
            "2026-01-01T00:00:00.000+00:00 info gateway listening on ws://127.0.0.1:1 pid=42"
        );
        assert!(format_text(REC, true).contains("\x1b[32minfo\x1b[0m"));
        assert_eq!(format_text("not json", false), "not json");
        let j = json_record(REC);
        assert_eq!(j["type"], "log");
        assert_eq!(j["subsystem"], "gateway");
        assert_eq!(j["raw"], REC);
        // upstream tslog shape without flat keys
        let up = r#"{"0":"{\"subsystem\":\"gateway/ws\"}","1":"res ok","_meta":{"logLevelName":"WARN"},"time":"t"}"#;
        assert_eq!(format_text(up, false), "t warn gateway/ws res ok");
    }
}
