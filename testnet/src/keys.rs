//! Key files in the format of `seqnet-rollup-client`:
//! `{"secret_key": "<hex 32 bytes>", "address": "<hex ed25519 public key>"}`.

use std::path::Path;

use ed25519_dalek::SigningKey;
use seqnet_proto::Address;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TestnetError};

#[derive(Debug, Serialize, Deserialize)]
struct KeyFileJson {
    secret_key: String,
    address: String,
}

/// Generates a fresh ed25519 key.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// The account address of `key` (its public key).
pub fn address(key: &SigningKey) -> Address {
    Address::from(&key.verifying_key())
}

/// Writes `key` to `path` (mode 0600).
pub fn write_key_file(path: &Path, key: &SigningKey) -> Result<()> {
    let json = KeyFileJson {
        secret_key: hex::encode(key.to_bytes()),
        address: address(key).to_string(),
    };
    let text = serde_json::to_string_pretty(&json).map_err(|e| TestnetError::KeyFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|e| TestnetError::io(path, e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| TestnetError::io(path, e))
}

/// Reads a key file and checks that its address matches its secret key.
pub fn read_key_file(path: &Path) -> Result<SigningKey> {
    let fail = |reason: String| TestnetError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| TestnetError::io(path, e))?;
    let json: KeyFileJson = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let secret = hex::decode(json.secret_key.trim_start_matches("0x"))
        .map_err(|e| fail(format!("secret_key is not hex: {e}")))?;
    let secret: [u8; 32] = secret
        .as_slice()
        .try_into()
        .map_err(|_| fail(format!("secret_key has {} bytes, want 32", secret.len())))?;
    let key = SigningKey::from_bytes(&secret);
    let expected = Address::from_hex(&json.address).map_err(fail)?;
    if address(&key) != expected {
        return Err(fail(format!(
            "address {expected} does not belong to the secret key (its address is {})",
            address(&key)
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_detects_mismatch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.json");
        let key = generate();
        write_key_file(&path, &key).expect("write");
        let back = read_key_file(&path).expect("read");
        assert_eq!(back.to_bytes(), key.to_bytes());

        let other = generate();
        let text = format!(
            "{{\"secret_key\": \"{}\", \"address\": \"{}\"}}",
            hex::encode(key.to_bytes()),
            address(&other)
        );
        std::fs::write(&path, text).expect("write");
        let err = read_key_file(&path).expect_err("mismatch");
        assert!(err.to_string().contains("does not belong"), "{err}");
    }
}
