//! The gateway's own device identity: an Ed25519 keypair persisted in
//! `<state>/identity/gateway.json` (0600, dir 0700), created on first start.
//! `deviceId` = lowercase hex SHA-256 of the raw 32-byte public key; `publicKey` = base64url
//! (no padding) of the raw key — the encodings of docs/protocol.md §2.4.
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A loaded identity.
pub struct Identity {
    /// Hex SHA-256 of the public key.
    pub device_id: String,
    /// base64url raw public key.
    pub public_key: String,
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.device_id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl Identity {
    fn from_key(key: SigningKey) -> Identity {
        let pk = key.verifying_key().to_bytes();
        Identity {
            device_id: hex::encode(Sha256::digest(pk)),
            public_key: URL_SAFE_NO_PAD.encode(pk),
            key,
        }
    }

    /// Where the identity lives for a state dir.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("identity").join("gateway.json")
    }

    /// Loads the identity, creating and persisting a new one when the file is missing.
    pub fn load_or_create(state_dir: &Path) -> Result<Identity> {
        let path = Self::path(state_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).map_err(|e| {
                    Error::Config(format!(
                        "invalid gateway identity {}: {e}; move it away to create a new identity",
                        path.display()
                    ))
                })?;
                let seed = v
                    .get("privateKeySeed")
                    .and_then(Value::as_str)
                    .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "invalid gateway identity {}: privateKeySeed missing or malformed; move it away to create a new identity",
                            path.display()
                        ))
                    })?;
                Ok(Self::from_key(SigningKey::from_bytes(&seed)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)
                    .map_err(|e| Error::Msg(format!("generating the gateway identity: {e}")))?;
                let id = Self::from_key(SigningKey::from_bytes(&seed));
                let doc = json!({
                    "version": 1,
                    "deviceId": id.device_id,
                    "publicKey": id.public_key,
                    "privateKeySeed": URL_SAFE_NO_PAD.encode(seed),
                    "createdAtMs": crate::sys::time::now_ms(),
                });
                crate::config::write::write_config(&path, &doc)?;
                Ok(id)
            }
            Err(e) => Err(Error::io("reading gateway identity", &path, e)),
        }
    }

    /// Signs a message (base64url signature).
    pub fn sign(&self, msg: &[u8]) -> String {
        use ed25519_dalek::Signer;
        URL_SAFE_NO_PAD.encode(self.key.sign(msg).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_and_stable() {
        let d = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(d.path()).unwrap();
        let b = Identity::load_or_create(d.path()).unwrap();
        assert_eq!(a.device_id, b.device_id);
        assert_eq!(a.device_id.len(), 64);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a.public_key).unwrap().len(), 32);
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(Identity::path(d.path())).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert!(!a.sign(b"x").is_empty());
    }
}
