//! Verification of `connect.params.device` (protocol.md §2.4): the id is the lowercase hex
//! SHA-256 of the raw 32-byte Ed25519 key, `signedAt` is within ±120 s of our clock, the nonce
//! is this connection's challenge nonce, and the signature covers the v3 (or legacy v2)
//! payload. Checks run in upstream's order so the first failure names the same cause.
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::gateway::protocol::ErrorShape;

/// Allowed clock skew between `signedAt` and the gateway's clock.
pub(crate) const SIGNATURE_SKEW_MS: i64 = 120_000;

/// A proof that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proven {
    /// `device.id` (= hex SHA-256 of the key).
    pub(crate) device_id: String,
    /// The key, normalized to base64url without padding.
    pub(crate) public_key: String,
    /// `v3` or `v2`.
    pub(crate) version: &'static str,
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .ok()
}

fn raw_key(public_key: &str) -> Option<[u8; 32]> {
    decode_b64(public_key).and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
}

/// `device.id` for a raw key given as base64(url).
pub(crate) fn device_id_for(public_key: &str) -> Option<String> {
    raw_key(public_key).map(|k| hex::encode(Sha256::digest(k)))
}

fn fail(reason: &str, message: &str) -> ErrorShape {
    let code = match reason {
        "device-id-mismatch" => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
        "device-signature-stale" => "DEVICE_AUTH_SIGNATURE_EXPIRED",
        "device-nonce-missing" => "DEVICE_AUTH_NONCE_REQUIRED",
        "device-nonce-mismatch" => "DEVICE_AUTH_NONCE_MISMATCH",
        "device-signature" => "DEVICE_AUTH_SIGNATURE_INVALID",
        "device-public-key" => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
        _ => "DEVICE_AUTH_INVALID",
    };
    ErrorShape::invalid(message).with_details(json!({"code": code, "reason": reason}))
}

fn lower_trim(v: Option<&str>) -> String {
    v.unwrap_or_default().trim().to_ascii_lowercase()
}

/// What the signature covers, for both payload versions.
#[derive(Debug, Clone)]
pub(crate) struct Signed<'a> {
    /// `device.id`.
    pub(crate) device_id: &'a str,
    /// `client.id`.
    pub(crate) client_id: &'a str,
    /// `client.mode`.
    pub(crate) client_mode: &'a str,
    /// `role`.
    pub(crate) role: &'a str,
    /// Requested scopes, in the order sent.
    pub(crate) scopes: &'a [String],
    /// `device.signedAt`.
    pub(crate) signed_at_ms: i64,
    /// `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`.
    pub(crate) token: &'a str,
    /// The challenge nonce.
    pub(crate) nonce: &'a str,
    /// `client.platform`.
    pub(crate) platform: Option<&'a str>,
    /// `client.deviceFamily`.
    pub(crate) device_family: Option<&'a str>,
}

impl Signed<'_> {
    /// The v2 payload: `v2|deviceId|clientId|clientMode|role|scopes|signedAtMs|token|nonce`.
    pub(crate) fn v2(&self) -> String {
        format!("v2|{}", self.common())
    }

    /// The v3 payload: v2's fields (prefix `v3`) plus lowercased platform and device family.
    pub(crate) fn v3(&self) -> String {
        format!(
            "v3|{}|{}|{}",
            self.common(),
            lower_trim(self.platform),
            lower_trim(self.device_family)
        )
    }

    /// The fields both payload versions sign, in order.
    fn common(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            self.device_id,
            self.client_id,
            self.client_mode,
            self.role,
            self.scopes.join(","),
            self.signed_at_ms,
            self.token,
            self.nonce
        )
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// The token the signature binds (`auth.token ?? auth.deviceToken ?? auth.bootstrapToken`).
pub(crate) fn signature_token(params: &Value) -> &str {
    let a = params.get("auth");
    let pick = |k| a.and_then(|a| str_of(a, k));
    pick("token")
        .or_else(|| pick("deviceToken"))
        .or_else(|| pick("bootstrapToken"))
        .unwrap_or("")
}

/// Requested scopes as sent (strings only).
pub(crate) fn requested_scopes(params: &Value) -> Vec<String> {
    params
        .get("scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Verifies `params.device` against this connection's challenge `nonce` at `now_ms`.
pub(crate) fn verify(
    params: &Value,
    role: &str,
    challenge_nonce: &str,
    now_ms: i64,
) -> Result<Proven, ErrorShape> {
    let device = &params["device"];
    let id = str_of(device, "id").unwrap_or_default();
    let public_key = str_of(device, "publicKey").unwrap_or_default();
    if device_id_for(public_key).as_deref() != Some(id) {
        return Err(fail("device-id-mismatch", "device identity mismatch"));
    }
    let signed_at = device.get("signedAt").and_then(Value::as_i64);
    let Some(signed_at) = signed_at.filter(|t| (now_ms - t).abs() <= SIGNATURE_SKEW_MS) else {
        return Err(fail("device-signature-stale", "device signature expired"));
    };
    let nonce = str_of(device, "nonce").unwrap_or_default().trim();
    if nonce.is_empty() {
        return Err(fail("device-nonce-missing", "device nonce required"));
    }
    if challenge_nonce.is_empty() || nonce != challenge_nonce {
        return Err(fail("device-nonce-mismatch", "device nonce mismatch"));
    }
    let client = &params["client"];
    let scopes = requested_scopes(params);
    let signed = Signed {
        device_id: id,
        client_id: str_of(client, "id").unwrap_or_default(),
        client_mode: str_of(client, "mode").unwrap_or_default(),
        role,
        scopes: &scopes,
        signed_at_ms: signed_at,
        token: signature_token(params),
        nonce,
        platform: str_of(client, "platform"),
        device_family: str_of(client, "deviceFamily"),
    };
    let key = raw_key(public_key).and_then(|k| VerifyingKey::from_bytes(&k).ok());
    let sig = str_of(device, "signature")
        .and_then(decode_b64)
        .and_then(|b| Signature::from_slice(&b).ok());
    let verifies = |msg: &str| match (&key, &sig) {
        (Some(k), Some(s)) => k.verify_strict(msg.as_bytes(), s).is_ok(),
        _ => false,
    };
    let version = if verifies(&signed.v3()) {
        "v3"
    } else if verifies(&signed.v2()) {
        "v2"
    } else {
        return Err(fail("device-signature", "device signature invalid"));
    };
    let Some(raw) = raw_key(public_key) else {
        return Err(fail("device-public-key", "device public key invalid"));
    };
    Ok(Proven {
        device_id: id.to_string(),
        public_key: URL_SAFE_NO_PAD.encode(raw),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn params(key: &SigningKey, nonce: &str, signed_at: i64, v3: bool) -> Value {
        let pk = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let id = device_id_for(&pk).unwrap();
        let scopes = vec!["operator.admin".to_string()];
        let s = Signed {
            device_id: &id,
            client_id: "openclaw-control-ui",
            client_mode: "webchat",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: signed_at,
            token: "t",
            nonce,
            platform: Some(" Linux "),
            device_family: None,
        };
        let msg = if v3 { s.v3() } else { s.v2() };
        let sig = URL_SAFE_NO_PAD.encode(key.sign(msg.as_bytes()).to_bytes());
        json!({
            "client": {"id": "openclaw-control-ui", "mode": "webchat", "platform": " Linux "},
            "role": "operator", "scopes": scopes, "auth": {"token": "t"},
            "device": {"id": id, "publicKey": pk, "signature": sig, "signedAt": signed_at, "nonce": nonce},
        })
    }

    fn code(e: ErrorShape) -> String {
        e.details.unwrap()["code"].as_str().unwrap().to_string()
    }

    #[test]
    fn v3_and_v2_verify_and_every_failure_is_named() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let now = 1_700_000_000_000;
        let p = params(&key, "n1", now, true);
        assert_eq!(verify(&p, "operator", "n1", now).unwrap().version, "v3");
        let p2 = params(&key, "n1", now, false);
        assert_eq!(verify(&p2, "operator", "n1", now).unwrap().version, "v2");
        // Wrong nonce, stale, wrong id, forged signature, different role signed.
        assert_eq!(
            code(verify(&p, "operator", "n2", now).unwrap_err()),
            "DEVICE_AUTH_NONCE_MISMATCH"
        );
        let e = verify(&p, "operator", "n1", now + 120_001).unwrap_err();
        assert_eq!(e.message, "device signature expired");
        let mut bad = p.clone();
        bad["device"]["id"] = "00".repeat(32).into();
        assert_eq!(
            code(verify(&bad, "operator", "n1", now).unwrap_err()),
            "DEVICE_AUTH_DEVICE_ID_MISMATCH"
        );
        let mut forged = p.clone();
        forged["device"]["signature"] = URL_SAFE_NO_PAD.encode([1u8; 64]).into();
        assert_eq!(
            verify(&forged, "operator", "n1", now).unwrap_err().message,
            "device signature invalid"
        );
        assert_eq!(
            code(verify(&p, "node", "n1", now).unwrap_err()),
            "DEVICE_AUTH_SIGNATURE_INVALID"
        );
        let mut no_nonce = p.clone();
        no_nonce["device"]["nonce"] = " ".into();
        assert_eq!(
            code(verify(&no_nonce, "operator", "n1", now).unwrap_err()),
            "DEVICE_AUTH_NONCE_REQUIRED"
        );
    }
}
