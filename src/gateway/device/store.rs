//! The pairing store: paired devices (roles, scopes, per-role device tokens) and pending
//! pairing requests, in one JSON file `<state>/devices/pairing.json` (0600, dir 0700),
//! rewritten atomically on every change. Device tokens are stored only as SHA-256 hashes; the
//! bearer value exists only in the answer that issues it.
//!
//! Pending requests expire after 5 minutes (upstream's TTL), are capped at
//! [`MAX_PENDING`], and each remote address may open at most [`REQUESTS_PER_WINDOW`] new
//! requests per [`REQUEST_WINDOW_MS`]: a request flood is bounded in memory and on disk.
//! (Requests come only from connects that passed shared-secret auth; silent ones — local
//! auto-approval — are approved at once and not limited.)
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::write;
use crate::error::Result;

/// How long a pending pairing request lives.
pub(crate) const PENDING_TTL_MS: u64 = 300_000;
/// Most pending requests kept at once.
pub(crate) const MAX_PENDING: usize = 64;
/// New requests one remote address may open per window.
pub(crate) const REQUESTS_PER_WINDOW: u32 = 8;
/// The per-address window.
pub(crate) const REQUEST_WINDOW_MS: u64 = 60_000;

/// A device token record (the token itself is never stored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenRec {
    pub(crate) role: String,
    pub(crate) scopes: Vec<String>,
    /// Hex SHA-256 of the bearer token.
    pub(crate) token_hash: String,
    pub(crate) created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rotated_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_at_ms: Option<u64>,
    /// The shared-secret generation a Control UI token was issued under (upstream binds
    /// those to it: after the secret changes the token no longer admits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) generation: Option<String>,
}

impl TokenRec {
    /// `issuedAtMs` / `rotatedAtMs`.
    pub(crate) fn issued_at_ms(&self) -> u64 {
        self.rotated_at_ms.unwrap_or(self.created_at_ms)
    }
}

/// Client metadata a request or a paired device carries.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote_ip: Option<String>,
}

/// A pending pairing request (`device.pair.list.pending[]`, `device.pair.requested`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pending {
    pub(crate) request_id: String,
    pub(crate) device_id: String,
    pub(crate) public_key: String,
    #[serde(flatten)]
    pub(crate) meta: ClientMeta,
    pub(crate) role: String,
    pub(crate) roles: Vec<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) silent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) is_repair: Option<bool>,
    pub(crate) ts: u64,
}

/// A paired device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Paired {
    pub(crate) device_id: String,
    pub(crate) public_key: String,
    #[serde(flatten)]
    pub(crate) meta: ClientMeta,
    pub(crate) role: String,
    pub(crate) roles: Vec<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) approved_scopes: Vec<String>,
    #[serde(default)]
    pub(crate) tokens: BTreeMap<String, TokenRec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) approved_via: Option<String>,
    pub(crate) created_at_ms: u64,
    pub(crate) approved_at_ms: u64,
}

impl Paired {
    /// Whether the approved grant covers `role` with every one of `scopes`.
    pub(crate) fn allows(&self, role: &str, scopes: &[String]) -> bool {
        self.roles.iter().any(|r| r == role)
            && (role != "operator"
                || scopes
                    .iter()
                    .all(|s| crate::gateway::protocol::scope_satisfied(&self.approved_scopes, s)))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    paired: BTreeMap<String, Paired>,
    #[serde(default)]
    pending: Vec<Pending>,
}

/// Why a pairing request was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// This address opened too many requests recently.
    RateLimited,
    /// The pending list is full.
    Full,
}

/// What [`Store::request`] did.
#[derive(Debug, Clone)]
pub(crate) struct Requested {
    pub(crate) request: Pending,
    pub(crate) created: bool,
    pub(crate) superseded: Vec<Pending>,
}

/// Why a token could not be rotated or revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefused {
    UnknownDevice,
    RoleNotApproved,
    ScopeOutsideApproval,
    NoToken,
}

/// The pairing store of one state dir.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    doc: Mutex<Doc>,
    recent: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

/// Hex SHA-256 of a token.
pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source is unavailable");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn ct_eq_hex(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Store {
    /// Where the store lives.
    pub(crate) fn path_for(state_dir: &Path) -> PathBuf {
        state_dir.join("devices").join("pairing.json")
    }

    /// Opens the store. An unreadable file is moved aside (`pairing.json.corrupt-<ms>`) with a
    /// warning and the store starts empty: devices pair again, nothing is granted by accident.
    pub(crate) fn open(state_dir: &Path) -> Store {
        let path = Self::path_for(state_dir);
        let doc = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Doc>(&bytes) {
                Ok(d) => d,
                Err(e) => {
                    let aside =
                        path.with_extension(format!("json.corrupt-{}", crate::sys::time::now_ms()));
                    let _ = std::fs::rename(&path, &aside);
                    tracing::warn!(
                        "pairing store {} is not valid JSON ({e}); moved it to {} and started with no paired devices: approve devices again with `openclaw devices approve`",
                        path.display(),
                        aside.display()
                    );
                    Doc::default()
                }
            },
            Err(_) => Doc::default(),
        };
        Store {
            path,
            doc: Mutex::new(doc),
            recent: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Doc> {
        self.doc.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, doc: &mut Doc) -> Result<()> {
        doc.version = 1;
        if let Some(dir) = self.path.parent() {
            write::ensure_private_dir(dir)?;
        }
        let bytes = serde_json::to_vec_pretty(&*doc).expect("the pairing store serializes");
        write::write_atomic(&self.path, &bytes, 0o600)
    }

    fn prune(doc: &mut Doc, now: u64) -> bool {
        let before = doc.pending.len();
        doc.pending
            .retain(|p| now.saturating_sub(p.ts) < PENDING_TTL_MS);
        before != doc.pending.len()
    }

    /// The paired device `id`.
    pub(crate) fn paired(&self, id: &str) -> Option<Paired> {
        self.lock().paired.get(id).cloned()
    }

    /// Pending requests (live ones) and paired devices.
    pub(crate) fn list(&self, now: u64) -> (Vec<Pending>, Vec<Paired>) {
        let mut doc = self.lock();
        if Self::prune(&mut doc, now) {
            let _ = self.save(&mut doc);
        }
        (doc.pending.clone(), doc.paired.values().cloned().collect())
    }

    /// Records (or reuses) a pending request for a device. An identical live request is
    /// reused; one for the same device with a different key, role or scopes supersedes it.
    pub(crate) fn request(
        &self,
        device_id: &str,
        public_key: &str,
        role: &str,
        scopes: &[String],
        meta: ClientMeta,
        silent: bool,
        from: IpAddr,
        now: u64,
    ) -> std::result::Result<Requested, Refused> {
        let mut doc = self.lock();
        Self::prune(&mut doc, now);
        if let Some(p) = doc.pending.iter().find(|p| {
            p.device_id == device_id
                && p.public_key == public_key
                && p.role == role
                && p.scopes == scopes
                && p.silent == silent
        }) {
            return Ok(Requested {
                request: p.clone(),
                created: false,
                superseded: Vec::new(),
            });
        }
        // A silent request (local auto-approval) is approved at once: it never waits in the
        // list, so only requests that wait for an operator are limited.
        if !silent {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.retain(|_, (start, _)| now.saturating_sub(*start) < REQUEST_WINDOW_MS);
            let e = recent.entry(from).or_insert((now, 0));
            if e.1 >= REQUESTS_PER_WINDOW {
                return Err(Refused::RateLimited);
            }
            let replaces = doc.pending.iter().any(|p| p.device_id == device_id);
            if !replaces && doc.pending.len() >= MAX_PENDING {
                return Err(Refused::Full);
            }
            e.1 += 1;
        }
        let (superseded, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut doc.pending)
            .into_iter()
            .partition(|p| p.device_id == device_id);
        doc.pending = kept;
        let is_repair = doc.paired.contains_key(device_id).then_some(true);
        let req = Pending {
            request_id: uuid::Uuid::new_v4().to_string(),
            device_id: device_id.to_string(),
            public_key: public_key.to_string(),
            meta,
            role: role.to_string(),
            roles: vec![role.to_string()],
            scopes: scopes.to_vec(),
            silent,
            is_repair,
            ts: now,
        };
        doc.pending.push(req.clone());
        if let Err(e) = self.save(&mut doc) {
            tracing::warn!("pairing request not persisted: {e}");
        }
        Ok(Requested {
            request: req,
            created: true,
            superseded,
        })
    }

    /// Approves a pending request: the device is paired (or its grant widened) with the
    /// request's role and scopes. `None` for an unknown (or expired) request id.
    pub(crate) fn approve(
        &self,
        request_id: &str,
        via: Option<&str>,
        now: u64,
    ) -> Result<Option<Paired>> {
        let mut doc = self.lock();
        Self::prune(&mut doc, now);
        let Some(i) = doc.pending.iter().position(|p| p.request_id == request_id) else {
            return Ok(None);
        };
        let req = doc.pending.remove(i);
        let dev = match doc.paired.remove(&req.device_id) {
            Some(mut d) if d.public_key == req.public_key => {
                for r in &req.roles {
                    if !d.roles.contains(r) {
                        d.roles.push(r.clone());
                    }
                }
                for s in &req.scopes {
                    if !d.approved_scopes.contains(s) {
                        d.approved_scopes.push(s.clone());
                    }
                }
                d.scopes = d.approved_scopes.clone();
                d.role = req.role.clone();
                d.meta = req.meta.clone();
                d.approved_at_ms = now;
                if via.is_some() {
                    d.approved_via = via.map(str::to_string);
                }
                d
            }
            // A new device, or a new key for the id: a fresh record (old tokens gone).
            _ => Paired {
                device_id: req.device_id.clone(),
                public_key: req.public_key.clone(),
                meta: req.meta.clone(),
                role: req.role.clone(),
                roles: req.roles.clone(),
                scopes: req.scopes.clone(),
                approved_scopes: req.scopes.clone(),
                tokens: BTreeMap::new(),
                approved_via: via.map(str::to_string),
                created_at_ms: now,
                approved_at_ms: now,
            },
        };
        doc.paired.insert(dev.device_id.clone(), dev.clone());
        self.save(&mut doc)?;
        Ok(Some(dev))
    }

    /// Rejects (drops) a pending request.
    pub(crate) fn reject(&self, request_id: &str, now: u64) -> Result<Option<Pending>> {
        let mut doc = self.lock();
        Self::prune(&mut doc, now);
        let Some(i) = doc.pending.iter().position(|p| p.request_id == request_id) else {
            return Ok(None);
        };
        let req = doc.pending.remove(i);
        self.save(&mut doc)?;
        Ok(Some(req))
    }

    /// Removes a paired device (and its tokens).
    pub(crate) fn remove(&self, device_id: &str) -> Result<Option<Paired>> {
        let mut doc = self.lock();
        let Some(d) = doc.paired.remove(device_id) else {
            return Ok(None);
        };
        doc.pending.retain(|p| p.device_id != device_id);
        self.save(&mut doc)?;
        Ok(Some(d))
    }

    /// Mints a device token for an approved role (replacing any previous one for the role),
    /// bound to a shared-secret `generation` when given; returns the bearer value and its
    /// record.
    pub(crate) fn issue(
        &self,
        device_id: &str,
        role: &str,
        scopes: &[String],
        generation: Option<String>,
        now: u64,
    ) -> Result<Option<(String, TokenRec)>> {
        let mut doc = self.lock();
        let Some(d) = doc.paired.get_mut(device_id) else {
            return Ok(None);
        };
        if !d.allows(role, scopes) {
            return Ok(None);
        }
        let token = new_token();
        let created = d
            .tokens
            .get(role)
            .filter(|t| t.revoked_at_ms.is_none())
            .map(|t| t.created_at_ms);
        let rec = TokenRec {
            role: role.to_string(),
            scopes: scopes.to_vec(),
            token_hash: hash_token(&token),
            created_at_ms: created.unwrap_or(now),
            rotated_at_ms: created.map(|_| now),
            revoked_at_ms: None,
            generation,
        };
        d.tokens.insert(role.to_string(), rec.clone());
        self.save(&mut doc)?;
        Ok(Some((token, rec)))
    }

    /// The live token record of `device_id`/`role` whose bearer value is `token`.
    pub(crate) fn check(&self, device_id: &str, role: &str, token: &str) -> Option<TokenRec> {
        let doc = self.lock();
        let t = doc.paired.get(device_id)?.tokens.get(role)?;
        (t.revoked_at_ms.is_none() && ct_eq_hex(&t.token_hash, &hash_token(token)))
            .then(|| t.clone())
    }

    /// Which paired device a bearer token belongs to (HTTP bearer acceptance).
    pub(crate) fn find_bearer(&self, token: &str) -> Option<(String, TokenRec)> {
        let h = hash_token(token);
        let doc = self.lock();
        doc.paired.values().find_map(|d| {
            d.tokens
                .values()
                .find(|t| t.revoked_at_ms.is_none() && ct_eq_hex(&t.token_hash, &h))
                .map(|t| (d.device_id.clone(), t.clone()))
        })
    }

    /// Rotates a role's token (new bearer value); `scopes` replaces the token's scopes within
    /// the approved grant, `None` keeps them.
    pub(crate) fn rotate(
        &self,
        device_id: &str,
        role: &str,
        scopes: Option<&[String]>,
        now: u64,
    ) -> std::result::Result<(String, TokenRec), TokenRefused> {
        let (current, generation) = {
            let doc = self.lock();
            let d = doc
                .paired
                .get(device_id)
                .ok_or(TokenRefused::UnknownDevice)?;
            if !d.roles.iter().any(|r| r == role) {
                return Err(TokenRefused::RoleNotApproved);
            }
            let scopes = match scopes {
                Some(s) => s.to_vec(),
                None => d
                    .tokens
                    .get(role)
                    .map(|t| t.scopes.clone())
                    .unwrap_or_else(|| d.approved_scopes.clone()),
            };
            if !d.allows(role, &scopes) {
                return Err(TokenRefused::ScopeOutsideApproval);
            }
            (
                scopes,
                d.tokens.get(role).and_then(|t| t.generation.clone()),
            )
        };
        match self.issue(device_id, role, &current, generation, now) {
            Ok(Some(x)) => Ok(x),
            Ok(None) => Err(TokenRefused::UnknownDevice),
            Err(e) => {
                tracing::warn!("device token rotation not persisted: {e}");
                Err(TokenRefused::NoToken)
            }
        }
    }

    /// Revokes a role's token.
    pub(crate) fn revoke(
        &self,
        device_id: &str,
        role: &str,
        now: u64,
    ) -> std::result::Result<TokenRec, TokenRefused> {
        let mut doc = self.lock();
        let d = doc
            .paired
            .get_mut(device_id)
            .ok_or(TokenRefused::UnknownDevice)?;
        if !d.roles.iter().any(|r| r == role) {
            return Err(TokenRefused::RoleNotApproved);
        }
        let t = d.tokens.get_mut(role).ok_or(TokenRefused::NoToken)?;
        t.revoked_at_ms = Some(now);
        let rec = t.clone();
        if let Err(e) = self.save(&mut doc) {
            tracing::warn!("device token revocation not persisted: {e}");
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn pair_issue_check_rotate_revoke_persisted_hashed_0600() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path());
        let sc = vec!["operator.read".to_string()];
        let r = s
            .request(
                "dev1",
                "pk",
                "operator",
                &sc,
                ClientMeta::default(),
                false,
                ip(1),
                1000,
            )
            .unwrap();
        assert!(r.created);
        let again = s
            .request(
                "dev1",
                "pk",
                "operator",
                &sc,
                ClientMeta::default(),
                false,
                ip(1),
                1001,
            )
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.request.request_id, r.request.request_id);
        let p = s
            .approve(&r.request.request_id, None, 2000)
            .unwrap()
            .unwrap();
        assert_eq!(p.roles, vec!["operator"]);
        let (tok, rec) = s
            .issue("dev1", "operator", &sc, None, 3000)
            .unwrap()
            .unwrap();
        assert!(s.check("dev1", "operator", &tok).is_some());
        assert!(s.check("dev1", "operator", "nope").is_none());
        let text = std::fs::read_to_string(Store::path_for(d.path())).unwrap();
        assert!(!text.contains(&tok), "token stored in clear");
        assert!(text.contains(&rec.token_hash));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(Store::path_for(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Reopened: the pairing survives.
        let s = Store::open(d.path());
        assert!(s.check("dev1", "operator", &tok).is_some());
        let (tok2, _) = s.rotate("dev1", "operator", None, 4000).unwrap();
        assert!(s.check("dev1", "operator", &tok).is_none());
        assert!(s.check("dev1", "operator", &tok2).is_some());
        assert_eq!(
            s.rotate("dev1", "node", None, 4000).unwrap_err(),
            TokenRefused::RoleNotApproved
        );
        let wider = vec!["operator.admin".to_string()];
        assert_eq!(
            s.rotate("dev1", "operator", Some(&wider), 4000)
                .unwrap_err(),
            TokenRefused::ScopeOutsideApproval
        );
        s.revoke("dev1", "operator", 5000).unwrap();
        assert!(s.check("dev1", "operator", &tok2).is_none());
        assert!(s.remove("dev1").unwrap().is_some());
        assert!(s.paired("dev1").is_none());
    }

    #[test]
    fn request_flood_is_rate_limited_capped_and_expires() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path());
        let mut limited = 0;
        for i in 0..(REQUESTS_PER_WINDOW + 5) {
            match s.request(
                &format!("d{i}"),
                "pk",
                "operator",
                &[],
                ClientMeta::default(),
                false,
                ip(1),
                10,
            ) {
                Ok(_) => {}
                Err(Refused::RateLimited) => limited += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(limited, 5);
        // Many addresses: the list is capped.
        let mut full = 0;
        for i in 0..(MAX_PENDING as u32 * 2) {
            let from = IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8]);
            if matches!(
                s.request(
                    &format!("e{i}"),
                    "pk",
                    "operator",
                    &[],
                    ClientMeta::default(),
                    false,
                    from,
                    20
                ),
                Err(Refused::Full)
            ) {
                full += 1;
            }
        }
        let (pending, _) = s.list(30);
        assert_eq!(pending.len(), MAX_PENDING);
        assert!(full > 0);
        // Silent (auto-approved) requests are not limited.
        for i in 0..(REQUESTS_PER_WINDOW + 2) {
            s.request(
                &format!("s{i}"),
                "pk",
                "operator",
                &[],
                ClientMeta::default(),
                true,
                ip(2),
                25,
            )
            .unwrap();
        }
        let (pending, _) = s.list(30 + PENDING_TTL_MS);
        assert!(pending.is_empty(), "requests expire");
    }
}
