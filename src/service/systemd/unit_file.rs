//! A small reader for systemd unit files: sections, `Key=value` entries with line numbers,
//! continuation lines, `ExecStart=` argv splitting and `Environment=` assignments — enough to
//! compare an installed unit with a freshly rendered one key by key (pure).
use std::collections::BTreeMap;

/// One `Key=value` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// `Unit`, `Service`, `Install`, …
    pub section: String,
    /// Key.
    pub key: String,
    /// Raw value (continuations joined).
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// Parses unit text. Comments (`#`, `;`) and blank lines are skipped; a trailing backslash
/// continues the value on the next line.
pub(crate) fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending: Option<Entry> = None;
    for (i, raw) in text.lines().enumerate() {
        if let Some(mut e) = pending.take() {
            let (part, more) = match raw.strip_suffix('\\') {
                Some(p) => (p, true),
                None => (raw, false),
            };
            e.value.push(' ');
            e.value.push_str(part.trim());
            if more {
                pending = Some(e);
            } else {
                out.push(e);
            }
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (v, more) = match v.strip_suffix('\\') {
            Some(p) => (p, true),
            None => (v, false),
        };
        let e = Entry {
            section: section.clone(),
            key: k.trim().to_string(),
            value: v.trim().to_string(),
            line: i + 1,
        };
        if more {
            pending = Some(e);
        } else {
            out.push(e);
        }
    }
    if let Some(e) = pending {
        out.push(e);
    }
    out
}

/// All values of `section.key`, in order. An empty assignment resets the list (systemd
/// semantics for list settings such as `ExecStart=` in drop-ins).
pub(crate) fn values<'a>(entries: &'a [Entry], section: &str, key: &str) -> Vec<&'a str> {
    let mut v = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.section == section && e.key == key)
    {
        if e.value.is_empty() {
            v.clear();
        } else {
            v.push(e.value.as_str());
        }
    }
    v
}

/// The last value of `section.key`.
pub(crate) fn last<'a>(entries: &'a [Entry], section: &str, key: &str) -> Option<&'a str> {
    values(entries, section, key).last().copied()
}

/// Splits a command line the way systemd does for `ExecStart=`: whitespace-separated words,
/// double/single quotes, C escapes inside quotes; a leading `-`, `@`, `+`, `!`, `:` prefix is
/// dropped; `%%` → `%`, `$$` → `$`.
pub(crate) fn split_command(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == '\\' {
                    if let Some(n) = chars.next() {
                        cur.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                } else {
                    cur.push(c);
                }
            }
            None => {
                if c.is_whitespace() {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                    in_word = true;
                } else if c == '\\' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                    in_word = true;
                } else {
                    cur.push(c);
                    in_word = true;
                }
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if let Some(first) = words.first_mut() {
        let trimmed = first
            .trim_start_matches(['-', '@', '+', '!', ':'])
            .to_string();
        *first = trimmed;
    }
    words
        .into_iter()
        .map(|w| w.replace("%%", "%").replace("$$", "$"))
        .collect()
}

/// `Environment=` values → ordered map (later assignments win).
pub(crate) fn environment(entries: &[Entry]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for v in values(entries, "Service", "Environment") {
        for w in split_command(&format!("x {v}")).into_iter().skip(1) {
            if let Some((k, val)) = w.split_once('=') {
                m.insert(k.to_string(), val.replace("%%", "%"));
            }
        }
    }
    m
}

/// `Environment=` names → the line of the assignment that wins (the last one).
pub(crate) fn environment_lines(entries: &[Entry]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries
        .iter()
        .filter(|e| e.section == "Service" && e.key == "Environment")
    {
        if e.value.is_empty() {
            m.clear();
            continue;
        }
        for w in split_command(&format!("x {}", e.value)).into_iter().skip(1) {
            if let Some((k, _)) = w.split_once('=') {
                m.insert(k.to_string(), e.line);
            }
        }
    }
    m
}

/// The port a gateway command line or environment names: `--port N` / `--port=N` in
/// `ExecStart=`, else `OPENCLAW_GATEWAY_PORT`.
pub(crate) fn service_port(entries: &[Entry]) -> Option<u16> {
    if let Some(exec) = last(entries, "Service", "ExecStart") {
        let argv = split_command(exec);
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            if a == "--port" {
                if let Some(p) = it.next().and_then(|p| p.parse().ok()) {
                    return Some(p);
                }
            } else if let Some(p) = a.strip_prefix("--port=").and_then(|p| p.parse().ok()) {
                return Some(p);
            }
        }
    }
    environment(entries)
        .get("OPENCLAW_GATEWAY_PORT")
        .and_then(|v| crate::config::paths::parse_port_env(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: &str = "# comment\n[Unit]\nDescription=OpenClaw Gateway\n\n[Service]\nExecStart=\"/opt/my app/openclaw\" gateway run \\\n  --port 18795\nEnvironment=OPENCLAW_GATEWAY_PORT=18795\nEnvironment=\"A=b c\" D=e\nWorkingDirectory=%h/.openclaw\n";

    #[test]
    fn parses_sections_continuations_and_lines() {
        let e = parse(UNIT);
        assert_eq!(last(&e, "Unit", "Description"), Some("OpenClaw Gateway"));
        let exec = last(&e, "Service", "ExecStart").unwrap();
        assert_eq!(
            split_command(exec),
            vec!["/opt/my app/openclaw", "gateway", "run", "--port", "18795"]
        );
        assert_eq!(e.iter().find(|x| x.key == "ExecStart").unwrap().line, 6);
        let env = environment(&e);
        assert_eq!(env["A"], "b c");
        assert_eq!(env["D"], "e");
        assert_eq!(service_port(&e), Some(18795));
    }

    #[test]
    fn empty_assignment_resets_lists() {
        let e = parse("[Service]\nExecStart=/a\nExecStart=\nExecStart=/b --port=7\n");
        assert_eq!(values(&e, "Service", "ExecStart"), vec!["/b --port=7"]);
        assert_eq!(service_port(&e), Some(7));
        assert_eq!(
            split_command("-/bin/x 50%% $$HOME"),
            vec!["/bin/x", "50%", "$HOME"]
        );
    }
}
