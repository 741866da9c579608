//! The session store: one append-only JSONL transcript per session,
//! `<state>/agents/<agentId>/sessions/<sessionId>.jsonl` (directories 0700, files 0600).
//!
//! Records, one JSON object per line:
//! - `{"type":"session","version":1,"sessionId","sessionKey","agentId","createdAt"}` (first line)
//! - `{"type":"message","runId","message":{role, content:[{type:"text",text}], timestamp, …}}`
//! - `{"type":"run","runId","status":"error"|"aborted","error"?,"timestamp"}`
//! - `{"type":"meta","timestamp", label?, pinned?, archived?, unread?}` (a `sessions.patch`;
//!   a `null` label clears it)
//!
//! A deleted session's transcript is renamed to `<sessionId>.jsonl.deleted.<ms>` (kept on disk,
//! no longer indexed). Every append is reported to the store's observer (the live session feed).
//!
//! Durability: the user's message is appended when a turn starts and the turn's last record is
//! followed by `fsync` (`sync_data`, and of the directory once for a new transcript), so a
//! finished turn survives a crash; nothing before that waits for the disk. A crash mid-write can
//! leave a torn last line; loading ignores it (and cuts it off before the next append, so the
//! next record never glues onto a fragment). A torn line is never fatal.
//!
//! All methods do blocking file I/O; async callers use `spawn_blocking`. Writes to one session
//! are serialized by the run engine's per-session queue.
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::error::{Error, Result};

/// What the store knows about a session without reading its transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionMeta {
    /// Canonical session key (`agent:main:main`).
    pub key: String,
    /// Session id (uuid; names the file).
    pub session_id: String,
    /// Owning agent.
    pub agent_id: String,
    /// Transcript path.
    pub file: PathBuf,
    /// Creation time (ms).
    pub created_at: u64,
    /// Last append (ms).
    pub updated_at: u64,
    /// Messages in the transcript.
    pub message_count: u64,
    /// The last run that touched it.
    pub last_run_id: Option<String>,
    /// The last run's error, if it failed.
    pub last_error: Option<String>,
    /// Provider of the last assistant message.
    pub model_provider: Option<String>,
    /// Model of the last assistant message.
    pub model: Option<String>,
    /// Input tokens summed over the transcript.
    pub input_tokens: u64,
    /// Output tokens summed over the transcript.
    pub output_tokens: u64,
    /// Label set with `sessions.patch`.
    pub label: Option<String>,
    /// Pinned with `sessions.patch`.
    pub pinned: bool,
    /// When it was archived with `sessions.patch` (ms).
    pub archived_at: Option<u64>,
    /// Marked unread with `sessions.patch`.
    pub unread: bool,
}

/// Called after every append with the session as it now is and the records appended.
pub(crate) type AppendObserver = Box<dyn Fn(&SessionMeta, &[Value]) + Send + Sync>;

/// The store.
pub struct SessionStore {
    root: PathBuf,
    index: Mutex<Option<HashMap<String, SessionMeta>>>,
    /// Transcripts created since their directory was last fsync'd: the next synced append
    /// makes their directory entries durable too.
    unsynced_dirs: Mutex<Vec<PathBuf>>,
    observer: std::sync::OnceLock<AppendObserver>,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// A directory-safe form of an agent id.
fn dir_name(agent_id: &str) -> String {
    let s: String = agent_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "_".into() } else { s }
}

fn now_ms() -> u64 {
    crate::sys::time::now_ms()
}

/// Applies one record to a session's meta.
fn apply(meta: &mut SessionMeta, rec: &Value) {
    let ts = rec
        .get("timestamp")
        .or_else(|| rec.pointer("/message/timestamp"))
        .and_then(Value::as_u64);
    if let Some(ts) = ts {
        meta.updated_at = meta.updated_at.max(ts);
    }
    if let Some(r) = rec.get("runId").and_then(Value::as_str) {
        meta.last_run_id = Some(r.to_string());
    }
    match rec.get("type").and_then(Value::as_str) {
        Some("message") => {
            meta.message_count += 1;
            let m = &rec["message"];
            if m["role"] == "assistant" {
                meta.last_error = None;
                if let Some(p) = m.get("provider").and_then(Value::as_str) {
                    meta.model_provider = Some(p.to_string());
                }
                if let Some(p) = m.get("model").and_then(Value::as_str) {
                    meta.model = Some(p.to_string());
                }
                meta.input_tokens += m
                    .pointer("/usage/input")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                meta.output_tokens += m
                    .pointer("/usage/output")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
            }
        }
        Some("run") => {
            meta.last_error = rec.get("error").and_then(Value::as_str).map(str::to_string);
        }
        Some("meta") => {
            match rec.get("label") {
                Some(Value::String(l)) => meta.label = Some(l.clone()),
                Some(Value::Null) => meta.label = None,
                _ => {}
            }
            if let Some(b) = rec.get("pinned").and_then(Value::as_bool) {
                meta.pinned = b;
            }
            if let Some(b) = rec.get("unread").and_then(Value::as_bool) {
                meta.unread = b;
            }
            if let Some(b) = rec.get("archived").and_then(Value::as_bool) {
                meta.archived_at = b.then(|| ts.unwrap_or_else(now_ms));
            }
        }
        _ => {}
    }
}

/// Reads a transcript's lines. A final line without `\n` is torn unless it is a complete JSON
/// object; the byte length of the good prefix is returned so callers can cut the tail off.
fn read_records(path: &Path) -> std::io::Result<(Vec<Value>, u64, bool)> {
    let mut f = File::open(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let mut records = Vec::new();
    let mut good_len = 0u64;
    let mut torn = false;
    let mut start = 0usize;
    while start < buf.len() {
        let (line, next, terminated) = match buf[start..].iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[start..start + i], start + i + 1, true),
            None => (&buf[start..], buf.len(), false),
        };
        let parsed = serde_json::from_slice::<Value>(line)
            .ok()
            .filter(Value::is_object);
        match (parsed, terminated) {
            (Some(v), true) => {
                records.push(v);
                good_len = next as u64;
            }
            (None, true) => {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    tracing::warn!(path = %path.display(), "skipping an unreadable transcript line");
                }
                good_len = next as u64;
            }
            (Some(v), false) => {
                // Complete record whose newline was lost: keep it (append adds the newline).
                records.push(v);
                torn = true;
            }
            (None, false) => torn = true,
        }
        start = next;
    }
    Ok((records, good_len, torn))
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Makes sure the file ends at a line boundary before appending: a torn tail (crash, or a
/// failed write earlier in this process) is cut off, a complete record missing its newline
/// gets one.
fn repair_tail(path: &Path) -> std::io::Result<()> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let (_, good_len, _) = read_records(path)?;
    // Is the unterminated tail a complete record? Then terminate it instead of dropping it.
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(good_len))?;
    f.read_to_end(&mut tail)?;
    if serde_json::from_slice::<Value>(&tail).is_ok_and(|v| v.is_object()) {
        f.seek(SeekFrom::End(0))?;
        f.write_all(b"\n")?;
    } else {
        tracing::warn!(
            path = %path.display(),
            bytes = tail.len(),
            "dropping a torn last line left by an interrupted write"
        );
        f.set_len(good_len)?;
    }
    f.sync_data()
}

impl SessionStore {
    /// A store rooted at `<state_dir>/agents` (nothing is read until first use).
    pub fn new(state_dir: &Path) -> SessionStore {
        SessionStore {
            root: state_dir.join("agents"),
            index: Mutex::new(None),
            unsynced_dirs: Mutex::new(Vec::new()),
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Installs the append observer (once; later calls are ignored).
    pub fn observe(&self, f: AppendObserver) {
        let _ = self.observer.set(f);
    }

    /// `<state>/agents/<agent>/sessions`.
    pub fn sessions_dir(&self, agent_id: &str) -> PathBuf {
        self.root.join(dir_name(agent_id)).join("sessions")
    }

    /// The root (`<state>/agents`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn with_index<T>(&self, f: impl FnOnce(&mut HashMap<String, SessionMeta>) -> T) -> T {
        let mut guard = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.scan());
        }
        f(guard.as_mut().expect("index loaded"))
    }

    /// Builds the index from the transcripts on disk. Unreadable files are skipped with a
    /// warning; when two files claim one key, the newest wins.
    fn scan(&self) -> HashMap<String, SessionMeta> {
        let mut index: HashMap<String, SessionMeta> = HashMap::new();
        let Ok(agents) = fs::read_dir(&self.root) else {
            return index;
        };
        for agent in agents.flatten() {
            let Ok(files) = fs::read_dir(agent.path().join("sessions")) else {
                continue;
            };
            for f in files.flatten() {
                let path = f.path();
                if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                    continue;
                }
                let (records, _, torn) = match read_records(&path) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "cannot read session transcript: {e}");
                        continue;
                    }
                };
                if torn {
                    tracing::info!(path = %path.display(), "session transcript has a torn last line (interrupted write); ignoring it");
                }
                let Some(head) = records.first().filter(|r| r["type"] == "session") else {
                    tracing::warn!(path = %path.display(), "not a session transcript (no session header); skipping");
                    continue;
                };
                let (Some(key), Some(sid), Some(agent_id)) = (
                    head.get("sessionKey").and_then(Value::as_str),
                    head.get("sessionId").and_then(Value::as_str),
                    head.get("agentId").and_then(Value::as_str),
                ) else {
                    tracing::warn!(path = %path.display(), "session header lacks sessionKey/sessionId/agentId; skipping");
                    continue;
                };
                let created = head.get("createdAt").and_then(Value::as_u64).unwrap_or(0);
                let mut meta = SessionMeta {
                    key: key.to_string(),
                    session_id: sid.to_string(),
                    agent_id: agent_id.to_string(),
                    file: path.clone(),
                    created_at: created,
                    updated_at: created,
                    message_count: 0,
                    last_run_id: None,
                    last_error: None,
                    model_provider: None,
                    model: None,
                    input_tokens: 0,
                    output_tokens: 0,
                    label: None,
                    pinned: false,
                    archived_at: None,
                    unread: false,
                };
                for r in &records[1..] {
                    apply(&mut meta, r);
                }
                match index.get(key) {
                    Some(old) if old.created_at > meta.created_at => {}
                    _ => {
                        index.insert(key.to_string(), meta);
                    }
                }
            }
        }
        index
    }

    /// Loads the index now (startup warm-up; otherwise it loads on first use).
    pub fn warm(&self) {
        self.with_index(|_| ());
    }

    /// The session for `key`, if it exists.
    pub fn get(&self, key: &str) -> Option<SessionMeta> {
        self.with_index(|i| i.get(key).cloned())
    }

    /// All sessions, most recently updated first.
    pub fn list(&self) -> Vec<SessionMeta> {
        let mut v: Vec<SessionMeta> = self.with_index(|i| i.values().cloned().collect());
        v.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.key.cmp(&b.key))
        });
        v
    }

    /// The session for `key`, created (header written) when missing.
    pub fn ensure(&self, key: &str, agent_id: &str) -> Result<SessionMeta> {
        if let Some(m) = self.get(key) {
            return Ok(m);
        }
        self.create(key, agent_id)
    }

    /// Starts a fresh session for `key` (`/new`, `/reset`); the old transcript stays on disk.
    pub fn create(&self, key: &str, agent_id: &str) -> Result<SessionMeta> {
        let dir = self.sessions_dir(agent_id);
        crate::config::write::ensure_private_dir(&self.root)?;
        crate::config::write::ensure_private_dir(&dir)?;
        let session_id = uuid::Uuid::new_v4().to_string();
        let file = dir.join(format!("{session_id}.jsonl"));
        let created = now_ms();
        let header = json!({
            "type": "session", "version": 1, "sessionId": session_id, "sessionKey": key,
            "agentId": agent_id, "createdAt": created,
        });
        let mut f =
            open_append(&file).map_err(|e| Error::io("creating session transcript", &file, e))?;
        // Not fsync'd here: the turn that follows ends with a synced append, which covers the
        // header and (once) the directory entry; a turn that never ends has nothing to keep.
        f.write_all(format!("{header}\n").as_bytes())
            .map_err(|e| Error::io("writing session transcript", &file, e))?;
        self.unsynced_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dir);
        let meta = SessionMeta {
            key: key.to_string(),
            session_id,
            agent_id: agent_id.to_string(),
            file,
            created_at: created,
            updated_at: created,
            message_count: 0,
            last_run_id: None,
            last_error: None,
            model_provider: None,
            model: None,
            input_tokens: 0,
            output_tokens: 0,
            label: None,
            pinned: false,
            archived_at: None,
            unread: false,
        };
        self.with_index(|i| i.insert(key.to_string(), meta.clone()));
        Ok(meta)
    }

    /// Appends records to `key`'s transcript; `sync` fsyncs afterwards (turn end).
    pub fn append(&self, key: &str, records: &[Value], sync: bool) -> Result<()> {
        let Some(meta) = self.get(key) else {
            return Err(Error::Msg(format!(
                "session {key} does not exist; it cannot be appended to"
            )));
        };
        let path = meta.file.clone();
        let mut text = String::new();
        for r in records {
            text.push_str(&r.to_string());
            text.push('\n');
        }
        (|| -> std::io::Result<()> {
            repair_tail(&path)?;
            let mut f = open_append(&path)?;
            f.write_all(text.as_bytes())?;
            if sync {
                f.sync_data()?;
                self.sync_new_dirs();
            }
            Ok(())
        })()
        .map_err(|e| Error::io("appending to session transcript", &path, e))?;
        let after = self.with_index(|i| {
            i.get_mut(key).map(|m| {
                for r in records {
                    apply(m, r);
                }
                m.clone()
            })
        });
        if let (Some(obs), Some(m)) = (self.observer.get(), after)
            && !records.is_empty()
        {
            obs(&m, records);
        }
        Ok(())
    }

    /// Deletes `key`: its transcript is renamed to `<file>.deleted.<ms>` and it leaves the
    /// index. Returns the session and the renamed path, or `None` when there was none.
    pub fn delete(&self, key: &str) -> Result<Option<(SessionMeta, PathBuf)>> {
        let Some(meta) = self.get(key) else {
            return Ok(None);
        };
        let mut name = meta.file.as_os_str().to_os_string();
        name.push(format!(".deleted.{}", now_ms()));
        let archived = PathBuf::from(name);
        match fs::rename(&meta.file, &archived) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("archiving session transcript", &meta.file, e)),
        }
        self.with_index(|i| {
            if i.get(key).is_some_and(|m| m.session_id == meta.session_id) {
                i.remove(key);
            }
        });
        Ok(Some((meta, archived)))
    }

    /// Makes `key`'s transcript durable now (for a session reset that runs no turn).
    pub fn sync(&self, key: &str) -> Result<()> {
        self.append(key, &[], true)
    }

    /// fsyncs the directories of transcripts created since the last synced append.
    fn sync_new_dirs(&self) {
        let mut dirs =
            std::mem::take(&mut *self.unsynced_dirs.lock().unwrap_or_else(|p| p.into_inner()));
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            if let Ok(d) = File::open(&d) {
                let _ = d.sync_all();
            }
        }
    }

    /// The messages of `key`'s transcript in order (torn or unreadable lines skipped).
    pub fn messages(&self, key: &str) -> Result<Vec<Value>> {
        Ok(self
            .message_records(key)?
            .into_iter()
            .filter_map(|mut r| r.get_mut("message").map(Value::take))
            .collect())
    }

    /// The session's messages as clients see them ([`client_message`]), oldest first.
    pub fn client_messages(&self, key: &str) -> Result<Vec<Value>> {
        Ok(self
            .message_records(key)?
            .iter()
            .enumerate()
            .map(|(i, r)| client_message(r, i as u64 + 1))
            .collect())
    }

    /// The transcript's message records (none for an unknown session or a missing file).
    fn message_records(&self, key: &str) -> Result<Vec<Value>> {
        let Some(meta) = self.get(key) else {
            return Ok(Vec::new());
        };
        let (records, _, _) = match read_records(&meta.file) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading session transcript", &meta.file, e)),
        };
        Ok(records
            .into_iter()
            .filter(|r| r["type"] == "message")
            .collect())
    }
}

/// A transcript message as clients see it (`chat.history`, `chat.startup`, `session.message`):
/// the stored message with `__openclaw: {id, idempotencyKey?, seq}` — the keys the Control UI
/// uses to recognise a message it already shows (its own optimistic send is keyed
/// `<runId>:user`, as upstream keys the stored user turn). `seq` is the 1-based position among the
/// transcript's messages; `id` is the record's own, or `<runId>:<seq>` for records without one.
pub(crate) fn client_message(rec: &Value, seq: u64) -> Value {
    let mut message = rec["message"].clone();
    let run_id = rec.get("runId").and_then(Value::as_str);
    let mut meta = serde_json::Map::new();
    match (rec.get("id").and_then(Value::as_str), run_id) {
        (Some(id), _) => meta.insert("id".into(), id.into()),
        (None, Some(r)) => meta.insert("id".into(), format!("{r}:{seq}").into()),
        (None, None) => meta.insert("id".into(), format!("message:{seq}").into()),
    };
    let stored_key = message
        .get("idempotencyKey")
        .and_then(Value::as_str)
        .map(str::to_string);
    let key = stored_key.or_else(|| {
        (message["role"] == "user")
            .then_some(run_id)
            .flatten()
            .map(|r| format!("{r}:user"))
    });
    if let Some(k) = key {
        meta.insert("idempotencyKey".into(), k.into());
    }
    meta.insert("seq".into(), seq.into());
    if let Some(m) = message.as_object_mut() {
        if let Some(Value::Object(existing)) = m.remove("__openclaw") {
            for (k, v) in existing {
                meta.entry(k).or_insert(v);
            }
        }
        m.insert("__openclaw".into(), Value::Object(meta));
    }
    message
}

/// A transcript message record.
pub(crate) fn message_record(run_id: &str, message: Value) -> Value {
    json!({"type": "message", "runId": run_id, "message": message})
}

/// A run-outcome record (failed or aborted turns).
pub(crate) fn run_record(run_id: &str, status: &str, error: Option<&str>) -> Value {
    let mut r = json!({"type": "run", "runId": run_id, "status": status, "timestamp": now_ms()});
    if let Some(e) = error {
        r["error"] = e.into();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_carry_the_keys_the_ui_reconciles_by() {
        let d = tempfile::tempdir().unwrap();
        let s = SessionStore::new(d.path());
        let reply = json!({"role": "assistant", "content": [{"type": "text", "text": "yo"}]});
        s.ensure("agent:main:main", "main").unwrap();
        s.append(
            "agent:main:main",
            &[
                message_record("r1", user("hi")),
                message_record("r1", reply),
            ],
            true,
        )
        .unwrap();
        let got = s.client_messages("agent:main:main").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0]["__openclaw"],
            json!({"id": "r1:1", "idempotencyKey": "r1:user", "seq": 1})
        );
        assert_eq!(got[1]["__openclaw"], json!({"id": "r1:2", "seq": 2}));
        assert_eq!(got[0]["content"], user("hi")["content"]);
        // The model-facing view stays the stored messages, without client metadata.
        assert!(
            s.messages("agent:main:main").unwrap()[0]
                .get("__openclaw")
                .is_none()
        );
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": [{"type": "text", "text": text}], "timestamp": now_ms()})
    }

    #[test]
    fn a_new_transcripts_directory_is_synced_with_the_first_synced_append() {
        let dir = tempfile::tempdir().unwrap();
        let s = SessionStore::new(dir.path());
        let pending = |s: &SessionStore| s.unsynced_dirs.lock().unwrap().clone();
        s.ensure("agent:main:a", "main").unwrap();
        s.ensure("agent:main:b", "main").unwrap();
        assert_eq!(pending(&s), vec![s.sessions_dir("main"); 2]);
        s.append("agent:main:a", &[message_record("r1", user("hi"))], false)
            .unwrap();
        assert_eq!(
            pending(&s).len(),
            2,
            "an unsynced append leaves them pending"
        );
        s.sync("agent:main:a").unwrap();
        assert!(pending(&s).is_empty());
        // Existing sessions are not re-created (nothing new to sync).
        s.ensure("agent:main:a", "main").unwrap();
        assert!(pending(&s).is_empty());
    }

    #[test]
    fn persists_and_reloads_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let s = SessionStore::new(dir.path());
        let m = s.ensure("agent:main:main", "main").unwrap();
        s.append("agent:main:main", &[message_record("r1", user("hi"))], true)
            .unwrap();
        let a = json!({"role":"assistant","content":[{"type":"text","text":"yo"}],"timestamp":now_ms(),"provider":"p","model":"m","usage":{"input":3,"output":2}});
        s.append("agent:main:main", &[message_record("r1", a)], true)
            .unwrap();
        // mode 0600 / 0700
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&m.file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(s.sessions_dir("main"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);

        // crash mid-write: a torn fragment at the end
        let mut f = OpenOptions::new().append(true).open(&m.file).unwrap();
        f.write_all(b"{\"type\":\"message\",\"runId\":\"r2\",\"mess")
            .unwrap();
        drop(f);

        let s2 = SessionStore::new(dir.path());
        let meta = s2.get("agent:main:main").expect("reloaded");
        assert_eq!(meta.session_id, m.session_id);
        assert_eq!(meta.message_count, 2);
        assert_eq!(meta.model.as_deref(), Some("m"));
        assert_eq!((meta.input_tokens, meta.output_tokens), (3, 2));
        let msgs = s2.messages("agent:main:main").unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1]["content"][0]["text"], "yo");

        // the next append cuts the fragment off instead of gluing onto it
        s2.append(
            "agent:main:main",
            &[message_record("r3", user("again"))],
            true,
        )
        .unwrap();
        let text = fs::read_to_string(&m.file).unwrap();
        assert!(!text.contains("\"mess\n") && !text.contains("r2"), "{text}");
        assert_eq!(
            SessionStore::new(dir.path())
                .messages("agent:main:main")
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn complete_record_without_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = SessionStore::new(dir.path());
        let m = s.ensure("k", "main").unwrap();
        let mut f = OpenOptions::new().append(true).open(&m.file).unwrap();
        f.write_all(message_record("r", user("x")).to_string().as_bytes())
            .unwrap();
        drop(f);
        let s2 = SessionStore::new(dir.path());
        assert_eq!(s2.messages("k").unwrap().len(), 1);
        s2.append("k", &[message_record("r2", user("y"))], false)
            .unwrap();
        assert_eq!(
            SessionStore::new(dir.path()).messages("k").unwrap().len(),
            2
        );
    }

    #[test]
    fn garbage_files_are_skipped_and_list_sorts_by_update() {
        let dir = tempfile::tempdir().unwrap();
        let s = SessionStore::new(dir.path());
        s.ensure("a", "main").unwrap();
        s.ensure("b", "ops").unwrap();
        s.append("a", &[message_record("r", user("x"))], false)
            .unwrap();
        fs::write(s.sessions_dir("main").join("junk.jsonl"), "not json\n").unwrap();
        let s2 = SessionStore::new(dir.path());
        let keys: Vec<String> = s2.list().into_iter().map(|m| m.key).collect();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&"a".to_string()) && keys.contains(&"b".to_string()));
        assert_eq!(dir_name("../X y"), "___x_y");
    }
}
