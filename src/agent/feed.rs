//! The live session feed the Control UI watches: `sessions.subscribe` puts a connection on the
//! `sessions.changed` list, `sessions.messages.subscribe` on one session's `session.message`
//! list.
//!
//! As upstream, a message appended to a transcript goes out as `session.message` to the
//! session's message subscribers and to every `sessions.subscribe`r (who use it to refresh
//! rows); `sessions.patch|delete|reset` go out as `sessions.changed` with a `reason`. Every
//! payload carries the session row as it is after the change (`session`) and the row's event
//! fields at the top level. Subscriptions die with their connection: a send to a socket that
//! is gone drops it, and every subscribe prunes ids no longer connected.
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::session::SessionMeta;
use crate::gateway::state::GatewayState;

/// Who listens to what.
#[derive(Debug, Default)]
pub struct Feed {
    sessions: Mutex<HashSet<String>>,
    messages: Mutex<HashMap<String, HashSet<String>>>,
    hidden: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Feed {
    fn prune(&self, state: &GatewayState) {
        let live: HashSet<String> = state.connections().iter().map(|c| c.id.clone()).collect();
        lock(&self.sessions).retain(|c| live.contains(c));
        lock(&self.hidden).retain(|c| live.contains(c));
        let mut m = lock(&self.messages);
        for set in m.values_mut() {
            set.retain(|c| live.contains(c));
        }
        m.retain(|_, s| !s.is_empty());
    }

    /// `sessions.subscribe`.
    pub fn subscribe_sessions(&self, state: &GatewayState, conn: &str) {
        self.prune(state);
        lock(&self.sessions).insert(conn.to_string());
    }

    /// `sessions.messages.subscribe`.
    pub fn subscribe_messages(&self, state: &GatewayState, conn: &str, key: &str) {
        self.prune(state);
        lock(&self.messages)
            .entry(key.to_string())
            .or_default()
            .insert(conn.to_string());
    }

    /// `sessions.messages.unsubscribe`.
    pub fn unsubscribe_messages(&self, conn: &str, key: &str) {
        let mut m = lock(&self.messages);
        if let Some(set) = m.get_mut(key) {
            set.remove(conn);
            if set.is_empty() {
                m.remove(key);
            }
        }
    }

    /// `sessions.observer.visibility`: whether the connection's observer view is visible.
    pub fn set_visibility(&self, state: &GatewayState, conn: &str, visible: bool) {
        self.prune(state);
        let mut h = lock(&self.hidden);
        if visible {
            h.remove(conn);
        } else {
            h.insert(conn.to_string());
        }
    }

    /// True when someone watches every session (`sessions.subscribe`).
    pub fn has_session_listeners(&self) -> bool {
        !lock(&self.sessions).is_empty()
    }

    /// True when a message appended to `key` has anyone to go to.
    pub fn has_message_listeners(&self, key: &str) -> bool {
        !lock(&self.sessions).is_empty() || lock(&self.messages).contains_key(key)
    }

    /// Message subscribers of `key` plus every session subscriber.
    fn message_targets(&self, key: &str) -> Vec<String> {
        let mut t: HashSet<String> = lock(&self.sessions).clone();
        if let Some(s) = lock(&self.messages).get(key) {
            t.extend(s.iter().cloned());
        }
        t.into_iter().collect()
    }

    fn send(&self, state: &GatewayState, targets: Vec<String>, event: &str, payload: &Value) {
        for conn in targets {
            if !state.send_event_to(&conn, event, payload, false) {
                lock(&self.sessions).remove(&conn);
                for set in lock(&self.messages).values_mut() {
                    set.remove(&conn);
                }
            }
        }
    }

    /// A transcript append: one `session.message` per message record.
    pub fn appended(
        &self,
        state: &GatewayState,
        meta: &SessionMeta,
        records: &[Value],
        row: &Value,
    ) {
        let messages: Vec<&Value> = records.iter().filter(|r| r["type"] == "message").collect();
        if messages.is_empty() {
            return;
        }
        let targets = self.message_targets(&meta.key);
        if targets.is_empty() {
            return;
        }
        // The appended messages are the transcript's last ones: their 1-based positions.
        let first_seq = meta.message_count + 1 - messages.len() as u64;
        for (i, rec) in messages.into_iter().enumerate() {
            let seq = first_seq + i as u64;
            let message = super::session::client_message(rec, seq);
            let message_id = message["__openclaw"]["id"].as_str().map(str::to_string);
            let mut p = Map::new();
            p.insert("sessionKey".into(), meta.key.clone().into());
            p.insert("agentId".into(), meta.agent_id.clone().into());
            p.insert("message".into(), message);
            if let Some(id) = message_id {
                p.insert("messageId".into(), id.into());
            }
            p.insert("messageSeq".into(), seq.into());
            snapshot_into(&mut p, row);
            if let Some(r) = rec.get("runId").and_then(Value::as_str) {
                p.insert("runId".into(), r.into());
            }
            self.send(state, targets.clone(), "session.message", &Value::Object(p));
        }
    }

    /// `sessions.changed` for a mutation (`reason`: `patch`, `delete`, `reset`, …); `row` is
    /// the session after it (`None` when it is gone).
    pub fn changed(
        &self,
        state: &GatewayState,
        key: &str,
        agent_id: &str,
        reason: &str,
        row: Option<&Value>,
    ) {
        let fields = [("reason", Value::from(reason))];
        self.sessions_changed(state, key, agent_id, &fields, row);
    }

    /// One `sessions.changed` to every session-feed subscriber: key, agent, `fields`, `ts`, then
    /// the row's snapshot.
    fn sessions_changed(
        &self,
        state: &GatewayState,
        key: &str,
        agent_id: &str,
        fields: &[(&str, Value)],
        row: Option<&Value>,
    ) {
        let targets: Vec<String> = lock(&self.sessions).iter().cloned().collect();
        if targets.is_empty() {
            return;
        }
        let mut p = Map::new();
        p.insert("sessionKey".into(), key.into());
        p.insert("agentId".into(), agent_id.into());
        for (k, v) in fields {
            p.insert((*k).into(), v.clone());
        }
        p.insert("ts".into(), crate::sys::time::now_ms().into());
        if let Some(row) = row {
            snapshot_into(&mut p, row);
        }
        self.send(state, targets, "sessions.changed", &Value::Object(p));
    }
}

impl Feed {
    /// `sessions.changed` for a run's lifecycle (`phase`: `start`, `end`, `error`).
    pub fn lifecycle(
        &self,
        state: &GatewayState,
        key: &str,
        agent_id: &str,
        run_id: &str,
        phase: &str,
        row: Option<&Value>,
    ) {
        let fields = [
            ("phase", Value::from(phase)),
            ("runId", Value::from(run_id)),
        ];
        self.sessions_changed(state, key, agent_id, &fields, row);
    }
}

/// The session snapshot of an event: the row as `session`, then its event fields.
fn snapshot_into(p: &mut Map<String, Value>, row: &Value) {
    p.insert("session".into(), row.clone());
    for k in [
        "updatedAt",
        "sessionId",
        "kind",
        "archived",
        "pinned",
        "unread",
        "status",
        "hasActiveRun",
        "activeRunIds",
    ] {
        if let Some(v) = row.get(k) {
            p.insert(k.into(), v.clone());
        }
    }
}
