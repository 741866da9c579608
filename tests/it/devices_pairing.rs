//! Device identity and pairing end to end (issue 15 items 1–2): a real Ed25519 client does
//! challenge → proof → pairing → device-token reconnect; forged, mismatched, stale and replayed
//! proofs are refused for every role; remote devices wait for approval; revocation and rotation
//! close the device's sessions; a pairing-request flood is bounded; `openclaw devices …`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{self, ALL, Frame, Gateway, Raw, WAIT};

/// A client device: an Ed25519 key and its id.
pub struct Device {
    key: SigningKey,
    pub id: String,
    pub public_key: String,
}

impl Device {
    pub fn new() -> Device {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        let key = SigningKey::from_bytes(&seed);
        let raw = key.verifying_key().to_bytes();
        Device {
            id: hex::encode(Sha256::digest(raw)),
            public_key: URL_SAFE_NO_PAD.encode(raw),
            key,
        }
    }

    /// Connect params for `client`/`mode` with `auth`, signed (v3) over `nonce` at `signed_at`.
    pub fn params(
        &self,
        client: (&str, &str),
        role: &str,
        scopes: &[&str],
        auth: Value,
        nonce: &str,
        signed_at: u64,
    ) -> Value {
        let token = ["token", "deviceToken", "bootstrapToken"]
            .iter()
            .find_map(|k| auth[*k].as_str())
            .unwrap_or("");
        let msg = format!(
            "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.id,
            client.0,
            client.1,
            role,
            scopes.join(","),
            signed_at,
            token,
            nonce,
            "linux",
            ""
        );
        json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": client.0, "version": "0.0.1", "platform": "Linux", "mode": client.1,
                       "displayName": "it device"},
            "role": role, "scopes": scopes, "auth": auth,
            "device": {
                "id": self.id, "publicKey": self.public_key,
                "signature": URL_SAFE_NO_PAD.encode(self.key.sign(msg.as_bytes()).to_bytes()),
                "signedAt": signed_at, "nonce": nonce,
            },
        })
    }
}

const UI: (&str, &str) = ("openclaw-control-ui", "webchat");

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Opens a socket (with `headers`), reads the challenge, sends what `make(nonce)` builds and
/// returns the socket and the connect response.
/// [`attempt`] with a proof signed now over this connection's nonce: `dev.params(client, role,
/// scopes, auth)`.
async fn signed_attempt(
    g: &Gateway,
    headers: &[(&str, &str)],
    dev: &Device,
    client: (&str, &str),
    role: &str,
    scopes: &[&str],
    auth: Value,
) -> (Raw, Value) {
    attempt(g, headers, |n| {
        dev.params(client, role, scopes, auth, n, now_ms())
    })
    .await
}

async fn attempt(
    g: &Gateway,
    headers: &[(&str, &str)],
    make: impl FnOnce(&str) -> Value,
) -> (Raw, Value) {
    let mut raw = Raw::connect_with(&g.url(), headers).await;
    let c = raw.challenge().await;
    let nonce = c["payload"]["nonce"].as_str().unwrap().to_string();
    raw.req("c1", "connect", Some(make(&nonce))).await;
    let res = raw.res("c1").await;
    (raw, res)
}

/// Expects a refused connect: the error, then close 1008 with `reason`.
async fn refused(mut raw: Raw, res: &Value) -> (Value, String) {
    assert_eq!(res["ok"], false, "expected a refusal: {res}");
    let ((code, reason), _) = raw.until_close().await;
    assert_eq!(code, 1008, "{res}");
    (res["error"].clone(), reason)
}

async fn admin(g: &Gateway) -> Raw {
    let (raw, _, _) = support::hello(
        &g.url(),
        support::connect_params("cli", "cli", Some(&g.token), ALL),
        &[],
    )
    .await;
    raw
}

/// Waits for event `name` (other frames skipped).
async fn event(raw: &mut Raw, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match raw.recv_within(left).await {
            Some(Frame::Json(v)) if v["type"] == "event" && v["event"] == name => {
                return v["payload"].clone();
            }
            Some(Frame::Json(_)) => continue,
            other => panic!("no {name} event: {other:?}"),
        }
    }
}

async fn call(raw: &mut Raw, id: &str, method: &str, params: Value) -> Value {
    raw.req(id, method, Some(params)).await;
    raw.res(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_device_is_paired_and_reconnects_with_its_device_token() {
    let g = Gateway::builder().start();
    let dev = Device::new();
    let origin = format!("http://127.0.0.1:{}", g.port);
    let hdr = [("Origin", origin.as_str())];
    let token = g.token.clone();
    let (mut raw, res) =
        signed_attempt(&g, &hdr, &dev, UI, "operator", ALL, json!({"token": token})).await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    assert_eq!(auth["method"], "token");
    assert_eq!(auth["role"], "operator");
    assert_eq!(
        auth["scopes"],
        json!(ALL),
        "auto-approved with the requested scopes"
    );
    let device_token = auth["deviceToken"]
        .as_str()
        .expect("deviceToken")
        .to_string();
    assert!(auth["issuedAtMs"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(auth["recoveryMigrationAllowed"], true);
    assert!(auth["recoveryScope"].is_string());
    // The UI is in presence with its device id.
    let presence = call(&mut raw, "p", "system-presence", json!({})).await;
    assert!(
        presence["payload"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["deviceId"] == dev.id.as_str() && e["clientId"] == UI.0),
        "{presence}"
    );
    // The store: 0600, token hashed (never in clear).
    let store = g.home.path().join(".openclaw/devices/pairing.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&store).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&store).unwrap();
    assert!(text.contains(&dev.id) && !text.contains(&device_token));
    assert!(!g.stderr().contains(&device_token), "device token logged");
    raw.close().await;

    // Reconnect with the device token only (no shared secret).
    let dt = device_token.clone();
    let (mut raw, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        ALL,
        json!({"deviceToken": dt}),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["method"], "device-token");
    assert_eq!(res["payload"]["auth"]["scopes"], json!(ALL));
    assert_eq!(res["payload"]["auth"]["deviceToken"], device_token.as_str());
    // Its own listing: paired, connected, token summarized without secrets.
    let list = call(&mut raw, "l", "device.pair.list", json!({})).await;
    let paired = &list["payload"]["paired"];
    assert_eq!(paired.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(paired[0]["deviceId"], dev.id.as_str());
    assert_eq!(paired[0]["connected"], true);
    assert_eq!(paired[0]["tokens"][0]["role"], "operator");
    let l = list.to_string();
    assert!(
        !l.contains("tokenHash") && !l.contains(&device_token),
        "{l}"
    );

    // With the shared secret and its device token, the client keeps the same token.
    let (dt, tk) = (device_token.clone(), g.token.clone());
    let (raw3, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        ALL,
        json!({"token": tk, "deviceToken": dt}),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["method"], "token");
    assert_eq!(res["payload"]["auth"]["deviceToken"], device_token.as_str());
    drop(raw3);
    // A wrong device token is refused.
    let (raw2, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        ALL,
        json!({"deviceToken": "nope"}),
    )
    .await;
    let (e, _) = refused(raw2, &res).await;
    assert_eq!(e["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{e}");
    raw.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_mismatched_and_replayed_proofs_are_refused_for_every_role() {
    let g = Gateway::builder().start();
    let dev = Device::new();
    let other = Device::new();
    let token = g.token.clone();
    for role in ["operator", "node"] {
        let client = if role == "node" {
            ("node-host", "node")
        } else {
            ("cli", "cli")
        };
        let scopes: &[&str] = if role == "node" {
            &[]
        } else {
            &["operator.read"]
        };
        let auth = json!({"token": token});
        type Case<'a> = (&'a str, &'a str, Box<dyn Fn(&str) -> Value + 'a>);
        let cases: Vec<Case<'_>> =
            vec![
                (
                    "forged signature",
                    "DEVICE_AUTH_SIGNATURE_INVALID",
                    Box::new(|n: &str| {
                        let mut p = dev.params(client, role, scopes, auth.clone(), n, now_ms());
                        p["device"]["signature"] = URL_SAFE_NO_PAD.encode([9u8; 64]).into();
                        p
                    }),
                ),
                (
                    "another key's signature",
                    "DEVICE_AUTH_SIGNATURE_INVALID",
                    Box::new(|n: &str| {
                        let mut p = dev.params(client, role, scopes, auth.clone(), n, now_ms());
                        p["device"]["signature"] =
                            other.params(client, role, scopes, auth.clone(), n, now_ms())["device"]
                                ["signature"]
                                .clone();
                        p
                    }),
                ),
                (
                    "wrong id",
                    "DEVICE_AUTH_DEVICE_ID_MISMATCH",
                    Box::new(|n: &str| {
                        let mut p = dev.params(client, role, scopes, auth.clone(), n, now_ms());
                        p["device"]["id"] = other.id.clone().into();
                        p
                    }),
                ),
                (
                    "expired signedAt",
                    "DEVICE_AUTH_SIGNATURE_EXPIRED",
                    Box::new(|n: &str| {
                        dev.params(client, role, scopes, auth.clone(), n, now_ms() - 121_000)
                    }),
                ),
                (
                    "nonce mismatch",
                    "DEVICE_AUTH_NONCE_MISMATCH",
                    Box::new(|_n: &str| {
                        dev.params(
                            client,
                            role,
                            scopes,
                            auth.clone(),
                            &uuid::Uuid::new_v4().to_string(),
                            now_ms(),
                        )
                    }),
                ),
            ];
        let messages = [
            ("DEVICE_AUTH_SIGNATURE_INVALID", "device signature invalid"),
            ("DEVICE_AUTH_DEVICE_ID_MISMATCH", "device identity mismatch"),
            ("DEVICE_AUTH_SIGNATURE_EXPIRED", "device signature expired"),
            ("DEVICE_AUTH_NONCE_MISMATCH", "device nonce mismatch"),
        ];
        for (what, code, make) in cases {
            let (raw, res) = attempt(&g, &[], |n| make(n)).await;
            let (e, reason) = refused(raw, &res).await;
            assert_eq!(e["code"], "INVALID_REQUEST", "{role} {what}: {e}");
            assert_eq!(e["details"]["code"], code, "{role} {what}: {e}");
            let msg = messages.iter().find(|(c, _)| *c == code).unwrap().1;
            assert_eq!(e["message"], msg, "{role} {what}");
            assert_eq!(reason, msg, "{role} {what}: close reason");
        }
        // Replay: a proof valid on one connection, sent again on a new one.
        let mut first = Raw::connect(&g.url()).await;
        let c = first.challenge().await;
        let proof = dev.params(
            client,
            role,
            scopes,
            auth.clone(),
            c["payload"]["nonce"].as_str().unwrap(),
            now_ms(),
        );
        first.close().await;
        let (raw, res) = attempt(&g, &[], |_| proof.clone()).await;
        let (e, _) = refused(raw, &res).await;
        assert_eq!(
            e["details"]["code"], "DEVICE_AUTH_NONCE_MISMATCH",
            "{role} replay: {e}"
        );
    }
    // Nothing was paired by any of that.
    assert!(
        !g.home
            .path()
            .join(".openclaw/devices/pairing.json")
            .exists()
            || !std::fs::read_to_string(g.home.path().join(".openclaw/devices/pairing.json"))
                .unwrap()
                .contains(&dev.id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_device_waits_for_approval_then_gets_a_token_and_revocation_closes_it() {
    let g = Gateway::builder().start();
    let mut op = admin(&g).await;
    let dev = Device::new();
    let token = g.token.clone();
    // Behind a proxy: not a direct loopback peer, so no auto-approval.
    let hdr = [("X-Forwarded-For", "203.0.113.9")];
    let (raw, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        &["operator.read"],
        json!({"token": token}),
    )
    .await;
    let (e, reason) = refused(raw, &res).await;
    assert_eq!(e["code"], "NOT_PAIRED", "{e}");
    assert_eq!(e["message"], "pairing required: device is not approved yet");
    let d = &e["details"];
    assert_eq!(d["code"], "PAIRING_REQUIRED");
    assert_eq!(d["reason"], "not-paired");
    assert_eq!(d["deviceId"], dev.id.as_str());
    assert_eq!(d["recommendedNextStep"], "wait_then_retry");
    let request_id = d["requestId"].as_str().unwrap().to_string();
    assert_eq!(
        reason,
        format!("pairing required: device is not approved yet (requestId: {request_id})")
    );
    let requested = event(&mut op, "device.pair.requested").await;
    assert_eq!(requested["requestId"], request_id.as_str());
    assert_eq!(requested["deviceId"], dev.id.as_str());
    assert_eq!(requested["scopes"], json!(["operator.read"]));

    // A retry reuses the same request.
    let (raw, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        &["operator.read"],
        json!({"token": token}),
    )
    .await;
    let (e, _) = refused(raw, &res).await;
    assert_eq!(e["details"]["requestId"], request_id.as_str());

    op.req(
        "a",
        "device.pair.approve",
        Some(json!({"requestId": request_id})),
    )
    .await;
    // The event goes out before the answer.
    let resolved = event(&mut op, "device.pair.resolved").await;
    assert_eq!(resolved["decision"], "approved");
    assert_eq!(resolved["requestId"], request_id.as_str());
    let r = op.res("a").await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["payload"]["device"]["deviceId"], dev.id.as_str());
    let again = call(
        &mut op,
        "a2",
        "device.pair.approve",
        json!({"requestId": request_id}),
    )
    .await;
    assert_eq!(again["error"]["message"], "unknown requestId");

    let (raw, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        &["operator.read"],
        json!({"token": token}),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    drop(raw);
    let dt = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    // Asking for more than approved is a scope upgrade, pending again.
    let (raw, res) =
        signed_attempt(&g, &hdr, &dev, UI, "operator", ALL, json!({"token": token})).await;
    let (e, _) = refused(raw, &res).await;
    assert_eq!(e["details"]["reason"], "scope-upgrade", "{e}");
    assert_eq!(e["details"]["approvedScopes"], json!(["operator.read"]));

    // A device-token session is closed when its token is revoked; the token stops working.
    let dt2 = dt.clone();
    let (mut s, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        &["operator.read"],
        json!({"deviceToken": dt2}),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    let r = call(
        &mut op,
        "rv",
        "device.token.revoke",
        json!({"deviceId": dev.id, "role": "operator"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["payload"]["revokedAtMs"].is_u64());
    let ((code, reason), _) = s.until_close().await;
    assert_eq!((code, reason.as_str()), (4001, "device removed"));
    let (raw, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        &["operator.read"],
        json!({"deviceToken": dt}),
    )
    .await;
    let (e, _) = refused(raw, &res).await;
    assert_eq!(e["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{e}");

    // Rotation issues a new token (withheld from a cross-device caller) and closes sessions.
    let (mut s, res) = signed_attempt(
        &g,
        &hdr,
        &dev,
        UI,
        "operator",
        &["operator.read"],
        json!({"token": token}),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    let r = call(
        &mut op,
        "ro",
        "device.token.rotate",
        json!({"deviceId": dev.id, "role": "operator"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["payload"]["tokenDelivery"], "withheld-cross-device");
    assert!(r["payload"].get("token").is_none());
    let ((code, _), _) = s.until_close().await;
    assert_eq!(code, 4001);
    let r = call(
        &mut op,
        "rn",
        "device.token.rotate",
        json!({"deviceId": dev.id, "role": "node"}),
    )
    .await;
    assert_eq!(r["error"]["message"], "device token rotation denied", "{r}");
    // Remove.
    let r = call(
        &mut op,
        "rm",
        "device.pair.remove",
        json!({"deviceId": dev.id}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = call(
        &mut op,
        "rm2",
        "device.pair.remove",
        json!({"deviceId": dev.id}),
    )
    .await;
    assert_eq!(r["error"]["message"], "unknown deviceId");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_request_flood_is_rate_limited_and_bounded() {
    let g = Gateway::builder().start();
    let token = g.token.clone();
    let hdr = [("X-Forwarded-For", "203.0.113.10")];
    let mut pairing = 0;
    let mut limited = 0;
    for _ in 0..14 {
        let dev = Device::new();
        let (raw, res) = signed_attempt(
            &g,
            &hdr,
            &dev,
            UI,
            "operator",
            &["operator.read"],
            json!({"token": token}),
        )
        .await;
        let (e, _) = refused(raw, &res).await;
        match e["code"].as_str() {
            Some("NOT_PAIRED") => pairing += 1,
            Some("UNAVAILABLE") => {
                assert_eq!(e["retryable"], true, "{e}");
                assert!(
                    e["message"]
                        .as_str()
                        .unwrap()
                        .contains("too many pairing requests")
                );
                limited += 1;
            }
            _ => panic!("{e}"),
        }
    }
    assert_eq!((pairing, limited), (8, 6));
    let mut op = admin(&g).await;
    let list = call(&mut op, "l", "device.pair.list", json!({})).await;
    assert_eq!(list["payload"]["pending"].as_array().unwrap().len(), 8);
    // The shared secret still works: the flood did not lock out the operator.
    let ok = call(&mut op, "h", "health", json!({})).await;
    assert_eq!(ok["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_ui_without_a_device_or_a_device_without_credentials_is_refused() {
    let g = Gateway::builder().start();
    let (raw, res) = attempt(&g, &[], |_| {
        let mut p = support::connect_params(UI.0, UI.1, Some(&g.token), ALL);
        p["client"]["mode"] = "webchat".into();
        p
    })
    .await;
    let (e, _) = refused(raw, &res).await;
    assert_eq!(
        e["message"],
        "control ui requires device identity (use HTTPS or localhost secure context)"
    );
    let dev = Device::new();
    let (raw, res) = attempt(&g, &[], |n| {
        dev.params(UI, "operator", ALL, json!({}), n, now_ms())
    })
    .await;
    let (e, _) = refused(raw, &res).await;
    assert_eq!(e["details"]["code"], "AUTH_TOKEN_MISSING", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_secret_change_closes_ui_sessions_and_retires_their_device_tokens() {
    let g = Gateway::builder().start();
    let dev = Device::new();
    let token = g.token.clone();
    let (shared_s, res) = attempt(&g, &[], |n| {
        dev.params(UI, "operator", ALL, json!({"token": token}), n, now_ms())
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
    let dt = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let dt2 = dt.clone();
    let (device_s, res) = attempt(&g, &[], |n| {
        dev.params(
            UI,
            "operator",
            ALL,
            json!({"deviceToken": dt2}),
            n,
            now_ms(),
        )
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
    // Rotate the shared token (atomic rename, as editors do).
    let new = support::random_token();
    let p = g.config_path();
    let tmp = p.with_file_name(".openclaw.json.swp");
    std::fs::write(
        &tmp,
        format!("{{ gateway: {{ mode: 'local', auth: {{ mode: 'token', token: '{new}' }} }} }}"),
    )
    .unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    for mut s in [shared_s, device_s] {
        let ((code, reason), _) = s.until_close().await;
        assert_eq!((code, reason.as_str()), (4001, "gateway auth changed"));
    }
    // The device token issued under the old secret no longer admits.
    let mut raw = Raw::connect(&g.url()).await;
    let c = raw.challenge().await;
    let n = c["payload"]["nonce"].as_str().unwrap().to_string();
    raw.req(
        "c1",
        "connect",
        Some(dev.params(
            UI,
            "operator",
            ALL,
            json!({"deviceToken": dt}),
            &n,
            now_ms(),
        )),
    )
    .await;
    let ((code, reason), frames) = raw.until_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (4001, "gateway auth changed"),
        "{frames:?}"
    );
    // The new secret pairs it again at once (loopback).
    let (_s, res) = attempt(&g, &[], |n| {
        dev.params(UI, "operator", ALL, json!({"token": new}), n, now_ms())
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_valid_proof_pairs_on_loopback_and_reconnects_with_its_token() {
    let g = Gateway::builder().start();
    let dev = Device::new();
    let node = ("node-host", "node");
    let token = g.token.clone();
    let (raw, res) = attempt(&g, &[], |n| {
        dev.params(node, "node", &[], json!({"token": token}), n, now_ms())
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    assert_eq!(
        (auth["role"].as_str(), auth["scopes"].clone()),
        (Some("node"), json!([]))
    );
    assert!(
        auth.get("recoveryScope").is_none(),
        "operator-only field: {auth}"
    );
    let dt = auth["deviceToken"].as_str().unwrap().to_string();
    drop(raw);
    let (_raw, res) = attempt(&g, &[], |n| {
        dev.params(node, "node", &[], json!({"deviceToken": dt}), n, now_ms())
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["method"], "device-token");
    // Its operator token does not exist: the node token cannot open an operator session.
    let dt2 = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (raw, res) = attempt(&g, &[], |n| {
        dev.params(
            node,
            "operator",
            &[],
            json!({"deviceToken": dt2}),
            n,
            now_ms(),
        )
    })
    .await;
    let (e, _) = refused(raw, &res).await;
    assert_eq!(e["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_rotating_its_own_token_gets_it_in_band_before_its_session_closes() {
    let g = Gateway::builder().start();
    let dev = Device::new();
    let sc: &[&str] = &["operator.read", "operator.pairing"];
    let token = g.token.clone();
    let (raw, res) = attempt(&g, &[], |n| {
        dev.params(UI, "operator", sc, json!({"token": token}), n, now_ms())
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
    drop(raw);
    let dt = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut s, res) = attempt(&g, &[], |n| {
        dev.params(UI, "operator", sc, json!({"deviceToken": dt}), n, now_ms())
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
    // Self-scoped: another device is not its business.
    let r = call(
        &mut s,
        "x",
        "device.token.revoke",
        json!({"deviceId": "0".repeat(64), "role": "operator"}),
    )
    .await;
    assert_eq!(
        r["error"]["message"], "device token revocation denied",
        "{r}"
    );
    let r = call(
        &mut s,
        "r",
        "device.token.rotate",
        json!({"deviceId": dev.id, "role": "operator"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["payload"]["tokenDelivery"], "in-band");
    let fresh = r["payload"]["token"].as_str().unwrap().to_string();
    assert_ne!(fresh, dt);
    let ((code, reason), _) = s.until_close().await;
    assert_eq!((code, reason.as_str()), (4001, "device removed"));
    let (_s, res) = attempt(&g, &[], |n| {
        dev.params(
            UI,
            "operator",
            sc,
            json!({"deviceToken": fresh}),
            n,
            now_ms(),
        )
    })
    .await;
    assert_eq!(res["ok"], true, "{res}");
}
