//! Device identity and pairing, part of connect auth (protocol.md §2.4; upstream's
//! docs/gateway/protocol/auth.md and docs/cli/devices.md):
//! - [`proof`]: the Ed25519 proof of `connect.params.device`;
//! - [`store`]: paired devices, pending requests and hashed device tokens under the state dir;
//! - [`methods`]: `device.pair.*`, `device.token.*` and the `device.pair.*` events;
//! - [`admit`]: the pairing decision of a connect that carries a verified device.
//!
//! The rule (upstream's): a device whose proof verified is admitted when it presents a live
//! device token for the role (`auth.deviceToken`, or `auth.token` when that is not the shared
//! secret), or when shared-secret auth succeeded and the device is paired for the requested
//! role and scopes. A new (or widened) device after shared-secret auth from a direct loopback
//! peer without proxy headers is approved on the spot; anywhere else a pending request is
//! recorded, `device.pair.requested` goes to pairing-scoped operators and the connect fails
//! `NOT_PAIRED` / `PAIRING_REQUIRED`, close 1008.
pub(crate) mod methods;
pub(crate) mod proof;
pub(crate) mod store;

use std::net::IpAddr;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::protocol::ErrorShape;
use super::state::{Broadcast, GatewayState};
use store::{ClientMeta, Refused, TokenRec};

/// How shared-secret auth went for this connect.
#[derive(Debug, Clone)]
pub(crate) enum Shared {
    /// Succeeded (`token`, `password` or `none`).
    Ok(&'static str),
    /// No shared credential given.
    Missing,
    /// Given and wrong.
    Mismatch(ErrorShape),
}

/// A device admitted by [`admit`].
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    /// The device id.
    pub(crate) device_id: String,
    /// `hello-ok.auth.method`.
    pub(crate) method: &'static str,
    /// Effective scopes.
    pub(crate) scopes: Vec<String>,
    /// The device token to hand out in `hello-ok.auth` (bearer value and record).
    pub(crate) token: Option<(String, TokenRec)>,
}

impl Admitted {
    /// The device fields of `hello-ok.auth` (upstream's set).
    pub(crate) fn hello_auth(&self, role: &str, auth: &mut Value) {
        if role == "operator" {
            // An opaque key for the client's recovery records: the device token when the
            // socket authenticated with it, else the device.
            let material = match &self.token {
                Some((token, _)) if self.method == "device-token" => json!(["device-token", token]),
                _ => json!(["device", self.device_id]),
            };
            auth["recoveryScope"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(material.to_string().as_bytes()))
                .into();
            if self.token.is_some() {
                auth["recoveryMigrationAllowed"] = true.into();
            }
        }
        if let Some((token, rec)) = &self.token {
            auth["deviceToken"] = token.clone().into();
            auth["issuedAtMs"] = rec.issued_at_ms().into();
        }
    }
}

/// A refused device connect: the error and the close.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The `res` error (none: only the close, as for a stale shared-secret generation).
    pub(crate) error: Option<ErrorShape>,
    /// Close code and reason when they differ from 1008 and the message.
    pub(crate) close: Option<(u16, String)>,
    /// Counts as a failed credential (rate limiting).
    pub(crate) bad_credential: bool,
}

impl From<ErrorShape> for Refusal {
    fn from(error: ErrorShape) -> Refusal {
        Refusal {
            error: Some(error),
            close: None,
            bad_credential: false,
        }
    }
}

/// What the pairing decision needs to know about the connect.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    /// The connect params.
    pub(crate) params: &'a Value,
    /// Requested role.
    pub(crate) role: &'a str,
    /// This connection's challenge nonce.
    pub(crate) nonce: &'a str,
    /// Shared-secret outcome.
    pub(crate) shared: Shared,
    /// Direct loopback peer without proxy headers.
    pub(crate) direct_local: bool,
    /// The peer address.
    pub(crate) remote_ip: IpAddr,
    /// Whether the client is a Control UI / webchat client (retry hint while pending).
    pub(crate) is_control_ui: bool,
}

fn client_meta(params: &Value, remote_ip: IpAddr) -> ClientMeta {
    let c = &params["client"];
    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    ClientMeta {
        display_name: s("displayName"),
        platform: s("platform"),
        device_family: s("deviceFamily"),
        client_id: s("id"),
        client_mode: s("mode"),
        remote_ip: Some(remote_ip.to_string()),
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The pairing decision for a connect carrying `params.device` (see the module docs).
pub(crate) fn admit(state: &GatewayState, a: Attempt<'_>) -> Result<Admitted, Refusal> {
    let now = crate::sys::time::now_ms();
    let proven = proof::verify(a.params, a.role, a.nonce, now as i64)?;
    let devices = &state.devices;
    let requested = dedup(proof::requested_scopes(a.params));
    let scopes = if a.role == "operator" {
        requested.clone()
    } else {
        Vec::new()
    };
    let auth = a.params.get("auth");
    let field = |k: &str| {
        auth.and_then(|x| x.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    // A device token: explicit `deviceToken`, or `token` when it is not the shared secret.
    let explicit = field("deviceToken");
    let candidate = explicit.or(match a.shared {
        Shared::Ok(_) => None,
        _ => field("token"),
    });
    let paired = devices
        .paired(&proven.device_id)
        .filter(|p| p.public_key == proven.public_key);
    if let Some(tok) = candidate
        && !matches!(a.shared, Shared::Ok(_))
    {
        let Some(rec) = devices.check(&proven.device_id, a.role, tok) else {
            if let Shared::Mismatch(e) = a.shared
                && explicit.is_none()
            {
                return Err(Refusal {
                    error: Some(e),
                    close: None,
                    bad_credential: true,
                });
            }
            return Err(Refusal {
                error: Some(super::auth::auth_error(
                    "unauthorized: device token mismatch (rotate/reissue device token)",
                    "AUTH_DEVICE_TOKEN_MISMATCH",
                    "device_token_mismatch",
                    "update_auth_credentials",
                )),
                close: None,
                bad_credential: true,
            });
        };
        if rec
            .generation
            .as_ref()
            .is_some_and(|g| Some(g) != generation(&state.auth()).as_ref())
        {
            return Err(Refusal {
                error: None,
                close: Some((4001, "gateway auth changed".into())),
                bad_credential: false,
            });
        }
        let grant = paired.as_ref().filter(|p| p.allows(a.role, &scopes));
        // Reusing a token without naming scopes: the token's own scopes.
        let effective = if requested.is_empty() && a.role == "operator" {
            rec.scopes.clone()
        } else {
            scopes.clone()
        };
        if grant.is_none() || (!requested.is_empty() && !paired_allows(&rec.scopes, &effective)) {
            return Err(Refusal {
                error: Some(super::auth::auth_error(
                    "unauthorized: device token does not cover the requested role or scopes (approve the device's scope upgrade or re-pair it)",
                    "AUTH_SCOPE_MISMATCH",
                    "scope_mismatch",
                    "review_auth_configuration",
                )),
                close: None,
                bad_credential: false,
            });
        }
        return Ok(Admitted {
            device_id: proven.device_id,
            method: "device-token",
            scopes: effective,
            token: Some((tok.to_string(), rec)),
        });
    }
    let method = match a.shared {
        Shared::Ok(m) => m,
        Shared::Mismatch(e) => {
            return Err(Refusal {
                error: Some(e),
                close: None,
                bad_credential: true,
            });
        }
        Shared::Missing => {
            let ui = a.is_control_ui;
            return Err(super::auth::auth_error(
                if ui {
                    "unauthorized: gateway token missing (paste in Control UI settings or openclaw doctor --generate-gateway-token; restart)"
                } else {
                    "unauthorized: gateway token missing (provide gateway auth token)"
                },
                "AUTH_TOKEN_MISSING",
                "token_missing",
                "update_auth_credentials",
            )
            .into());
        }
    };
    let approved = paired.as_ref().is_some_and(|p| p.allows(a.role, &scopes));
    if !approved {
        let reason = match &paired {
            None => "not-paired",
            Some(p) if !p.roles.iter().any(|r| r == a.role) => "role-upgrade",
            Some(_) => "scope-upgrade",
        };
        let meta = client_meta(a.params, a.remote_ip);
        let req = devices
            .request(
                &proven.device_id,
                &proven.public_key,
                a.role,
                &scopes,
                meta,
                a.direct_local,
                a.remote_ip,
                now,
            )
            .map_err(|r| {
                let mut e = ErrorShape::unavailable(match r {
                    Refused::RateLimited => {
                        "too many pairing requests from this address; retry in a minute"
                    }
                    Refused::Full => {
                        "too many pending pairing requests; approve or reject some with `openclaw devices list`, then retry"
                    }
                });
                e.retryable = Some(true);
                e.retry_after_ms = Some(store::REQUEST_WINDOW_MS);
                Refusal::from(e)
            })?;
        let ts = crate::sys::time::now_ms();
        for s in &req.superseded {
            resolved(state, &s.request_id, &s.device_id, "rejected", ts);
        }
        if a.direct_local {
            let id = req.request.request_id.clone();
            match devices.approve(&id, Some("local"), now) {
                Ok(Some(d)) => {
                    tracing::info!(device = %d.device_id, role = %d.role, "device pairing auto-approved");
                    resolved(state, &id, &d.device_id, "approved", ts);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("device pairing auto-approval not persisted: {e}"),
            }
        } else {
            if req.created {
                state.broadcast(
                    "device.pair.requested",
                    &serde_json::to_value(&req.request).unwrap_or_default(),
                    Broadcast {
                        scope: Some(super::protocol::scopes::PAIRING),
                        drop_if_slow: true,
                        ..Broadcast::default()
                    },
                );
            }
            tracing::info!(device = %proven.device_id, request = %req.request.request_id, reason, "device pairing required");
            return Err(pairing_required(
                reason,
                &req.request.request_id,
                &proven.device_id,
                a.role,
                &scopes,
                paired.as_ref(),
                a.is_control_ui && a.role == "operator",
            ));
        }
    }
    // A client that sent its live device token with the shared secret keeps it (tokens are
    // stored hashed, so any other case mints a fresh one for `hello-ok.auth.deviceToken`).
    if let Some(tok) = explicit
        && let Some(rec) = devices.check(&proven.device_id, a.role, tok)
        && paired_allows(&rec.scopes, &scopes)
    {
        return Ok(Admitted {
            device_id: proven.device_id,
            method,
            scopes,
            token: Some((tok.to_string(), rec)),
        });
    }
    // Upstream binds tokens a browser UI gets through shared-secret auth to that secret.
    let generation = (a.is_control_ui && matches!(method, "token" | "password"))
        .then(|| generation(&state.auth()))
        .flatten();
    let token = match devices.issue(&proven.device_id, a.role, &scopes, generation, now) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("device token not persisted: {e}");
            None
        }
    };
    Ok(Admitted {
        device_id: proven.device_id,
        method,
        scopes,
        token,
    })
}

fn paired_allows(granted: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|s| super::protocol::scope_satisfied(granted, s))
}

/// Broadcasts `device.pair.resolved`.
pub(crate) fn resolved(
    state: &GatewayState,
    request_id: &str,
    device_id: &str,
    decision: &str,
    ts: u64,
) {
    state.broadcast(
        "device.pair.resolved",
        &json!({"requestId": request_id, "deviceId": device_id, "decision": decision, "ts": ts}),
        Broadcast {
            scope: Some(super::protocol::scopes::PAIRING),
            drop_if_slow: true,
            ..Broadcast::default()
        },
    );
}

fn pairing_required(
    reason: &str,
    request_id: &str,
    device_id: &str,
    role: &str,
    scopes: &[String],
    existing: Option<&store::Paired>,
    retry_while_pending: bool,
) -> Refusal {
    let (requirement, hint) = match reason {
        "role-upgrade" => (
            "device is asking for a higher role than currently approved",
            "Review the requested role upgrade, then approve the pending request.",
        ),
        "scope-upgrade" => (
            "device is asking for more scopes than currently approved",
            "Review the requested scopes, then approve the pending upgrade.",
        ),
        _ => (
            "device is not approved yet",
            "Approve this device from the pending pairing requests.",
        ),
    };
    let message = format!("pairing required: {requirement}");
    let mut details = json!({
        "code": "PAIRING_REQUIRED",
        "reason": reason,
        "requestId": request_id,
        "remediationHint": hint,
    });
    if retry_while_pending {
        details["recommendedNextStep"] = "wait_then_retry".into();
        details["retryable"] = true.into();
        details["pauseReconnect"] = false.into();
    }
    details["deviceId"] = device_id.into();
    details["requestedRole"] = role.into();
    details["requestedScopes"] = json!(scopes);
    if let Some(p) = existing {
        if !p.roles.is_empty() {
            details["approvedRoles"] = json!(p.roles);
        }
        if !p.approved_scopes.is_empty() {
            details["approvedScopes"] = json!(p.approved_scopes);
        }
    }
    Refusal {
        close: Some((1008, format!("{message} (requestId: {request_id})"))),
        error: Some(ErrorShape::new("NOT_PAIRED", message).with_details(details)),
        bad_credential: false,
    }
}

/// HTTP bearer check where upstream also accepts device tokens (the Control UI's
/// authenticated HTTP reads, e.g. `/control-ui-config.json`; not `/v1/*` or hooks): a live
/// `operator` device token passes with that token's scopes (`Some`), the shared secret passes
/// as [`super::http_api::check_bearer`] does (`None`: the caller's usual scopes).
pub(crate) fn check_ui_bearer(
    state: &GatewayState,
    headers: &axum::http::HeaderMap,
    ip: Option<IpAddr>,
) -> Result<Option<Vec<String>>, axum::response::Response> {
    if let Some(b) = super::http_api::bearer(headers)
        && let Some((_, t)) = state.devices.find_bearer(&b)
        && t.role == "operator"
    {
        return Ok(Some(t.scopes));
    }
    super::http_api::check_bearer(state, headers, ip).map(|()| None)
}

/// [`super::http_api::authorize`] for the Control UI's authenticated reads
/// (`control-ui-config.json`): the shared secret or a live operator device token, then the
/// request moves to the authenticated admission budget.
pub(crate) fn authorize_ui_read(
    state: &GatewayState,
    headers: &axum::http::HeaderMap,
    ext: &axum::http::Extensions,
) -> Result<(), axum::response::Response> {
    check_ui_bearer(state, headers, super::http_api::peer_ip(ext))?;
    match super::admission::authenticate_request(ext) {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::state::StateInit;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {v}")).unwrap(),
        );
        h
    }

    #[test]
    fn ui_reads_accept_a_live_operator_device_token_only() {
        let dir = tempfile::tempdir().unwrap();
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), dir.path().display().to_string())].into();
        let paths = crate::config::paths::Paths::resolve(None, false, &env).unwrap();
        let state = GatewayState::new(StateInit::for_tests(paths));
        let d = &state.devices;
        let sc = vec!["operator.read".to_string()];
        let ip: IpAddr = [127, 0, 0, 1].into();
        let r = d
            .request(
                "dev",
                "pk",
                "operator",
                &sc,
                ClientMeta::default(),
                true,
                ip,
                1,
            )
            .unwrap();
        d.approve(&r.request.request_id, Some("local"), 2).unwrap();
        let (tok, _) = d.issue("dev", "operator", &sc, None, 3).unwrap().unwrap();
        assert_eq!(
            check_ui_bearer(&state, &bearer(&tok), None).unwrap(),
            Some(sc.clone())
        );
        d.revoke("dev", "operator", 4).unwrap();
        assert!(check_ui_bearer(&state, &bearer(&tok), None).is_err());
        assert!(check_ui_bearer(&state, &bearer("junk"), None).is_err());
        // The shared secret still passes, with the caller's usual scopes.
        assert_eq!(check_ui_bearer(&state, &bearer("t"), None).unwrap(), None);
    }
}

/// The shared-secret generation of an auth snapshot: a hash of the mode's secret (`None` when
/// auth is off).
pub(crate) fn generation(auth: &super::auth::ResolvedAuth) -> Option<String> {
    use super::auth::Mode;
    let (tag, secret) = match auth.mode {
        Mode::Token => ("token", auth.token.as_deref()?),
        Mode::Password => ("password", auth.password.as_deref()?),
        Mode::None => return None,
    };
    let mut h = Sha256::new();
    h.update(b"openclaw-shared-auth-generation\0");
    h.update(tag.as_bytes());
    h.update(b"\0");
    h.update(secret.as_bytes());
    Some(hex::encode(h.finalize()))
}

/// After the shared secret changed: closes device-token sessions whose token was bound to the
/// old secret (4001 `gateway auth changed`, as upstream); sessions that used the secret itself
/// are closed by the reload.
pub(crate) fn on_auth_change(
    state: &GatewayState,
    old: &super::auth::ResolvedAuth,
    new: &super::auth::ResolvedAuth,
) {
    let Some(old_gen) = generation(old) else {
        return;
    };
    if generation(new).as_ref() == Some(&old_gen) {
        return;
    }
    let n = state.close_where(
        |c| {
            c.auth_method == "device-token"
                && c.device_id.as_deref().is_some_and(|d| {
                    state
                        .devices
                        .paired(d)
                        .and_then(|p| p.tokens.get(&c.role).cloned())
                        .is_some_and(|t| t.generation.as_ref() == Some(&old_gen))
                })
        },
        4001,
        "gateway auth changed",
    );
    if n > 0 {
        tracing::info!(
            "gateway auth changed: closed {n} device-token session(s) bound to the old secret"
        );
    }
}
