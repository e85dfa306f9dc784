//! Key files: `{"secret_key": "<64 hex>", "address": "<64 hex>"}`, mode 0600;
//! and CometBFT's `priv_validator_key.json`, read for the consensus key a
//! validator's operator registers ([`load_consensus`]).
//!
//! The secret is the 32-byte ed25519 seed; the address is the public key. A
//! file whose address does not belong to its secret is refused on load.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use seqnet_proto::Address;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {0} already exists (refusing to overwrite it)")]
    Exists(PathBuf),
    #[error("key file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    secret_key: String,
    address: String,
}

/// A new key from the operating system's random source.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// The account address of `key` (its public key).
pub fn address(key: &SigningKey) -> Address {
    Address::from(&key.verifying_key())
}

/// Writes `key` to `path` (parent folders created); refuses to replace an
/// existing file unless `overwrite`. On Unix the file is created with mode
/// 0600, so the secret is never readable by others, even briefly.
pub fn save(path: &Path, key: &SigningKey, overwrite: bool) -> Result<(), KeyError> {
    let write = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write)?;
    }
    let text = serde_json::to_string_pretty(&KeyFile {
        secret_key: hex::encode(key.to_bytes()),
        address: address(key).to_string(),
    })
    .map_err(|e| write(std::io::Error::other(e)))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true); // atomic: no check-then-write race
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            write(source)
        }
    })?;
    #[cfg(unix)]
    {
        // An overwritten file keeps its old mode otherwise.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(write)?;
    }
    std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes()).map_err(write)?;
    file.sync_all().map_err(write)?;
    Ok(())
}

/// Reads a key file, checking that its address belongs to its secret key.
pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let text = read(path)?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let secret =
        hex::decode(file.secret_key.trim()).map_err(|e| invalid(format!("secret_key: {e}")))?;
    let secret = <[u8; 32]>::try_from(secret.as_slice())
        .map_err(|_| invalid(format!("secret_key has {} bytes, want 32", secret.len())))?;
    let key = SigningKey::from_bytes(&secret);
    let claimed = Address::from_hex(file.address.trim()).map_err(invalid)?;
    if claimed != address(&key) {
        return Err(invalid(format!(
            "address {claimed} does not belong to the secret key (its address is {})",
            address(&key)
        )));
    }
    Ok(key)
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a key file in either format: a seqnet key file, or CometBFT's
/// `priv_validator_key.json` (a genesis validator's operator account is its
/// consensus key).
pub fn load_any(path: &Path) -> Result<SigningKey, KeyError> {
    if read(path)?.contains("\"priv_key\"") {
        load_consensus(path)
    } else {
        load(path)
    }
}

/// Reads CometBFT's `priv_validator_key.json` (the consensus key a
/// validator signs votes with): `priv_key.value` is base64 of the 32-byte
/// seed and the public key; the public key must match `pub_key.value`.
pub fn load_consensus(path: &Path) -> Result<SigningKey, KeyError> {
    use base64::Engine as _;
    let invalid = |reason: String| KeyError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let text = read(path)?;
    let file: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let field = |pointer: &str| -> Result<Vec<u8>, KeyError> {
        let text = file
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| invalid(format!("no {pointer}")))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| invalid(format!("{pointer}: {e}")))
    };
    let secret = field("/priv_key/value")?;
    let public = field("/pub_key/value")?;
    let seed = secret
        .get(..32)
        .and_then(|s| <[u8; 32]>::try_from(s).ok())
        .filter(|_| secret.len() == 64)
        .ok_or_else(|| invalid(format!("priv_key has {} bytes, want 64", secret.len())))?;
    let key = SigningKey::from_bytes(&seed);
    if key.verifying_key().to_bytes().as_slice() != public.as_slice()
        || secret.get(32..) != Some(public.as_slice())
    {
        return Err(invalid("pub_key does not belong to priv_key".into()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusal_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/me.json");
        let key = generate();
        save(&path, &key, false).unwrap();
        assert_eq!(load(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(matches!(
            save(&path, &generate(), false),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(load(&path).unwrap().to_bytes(), key.to_bytes(), "unchanged");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let replacement = generate();
        save(&path, &replacement, true).unwrap();
        assert_eq!(load(&path).unwrap().to_bytes(), replacement.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn cometbft_consensus_keys_load_and_mismatches_are_refused() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_bytes(&[5; 32]);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let public = key.verifying_key().to_bytes();
        let file = |secret: Vec<u8>, public: &[u8]| {
            serde_json::json!({
                "address": "00",
                "pub_key": {"type": "tendermint/PubKeyEd25519", "value": b64(public)},
                "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": b64(&secret)},
            })
            .to_string()
        };
        let path = dir.path().join("priv_validator_key.json");
        std::fs::write(&path, file(key.to_keypair_bytes().to_vec(), &public)).expect("write");
        assert_eq!(
            load_consensus(&path).expect("loads").to_bytes(),
            key.to_bytes()
        );
        assert_eq!(load_any(&path).expect("loads").to_bytes(), key.to_bytes());
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key().to_bytes();
        std::fs::write(&path, file(key.to_keypair_bytes().to_vec(), &other)).expect("write");
        assert!(load_consensus(&path)
            .unwrap_err()
            .to_string()
            .contains("does not belong"));
        std::fs::write(&path, file(vec![1; 32], &public)).expect("write");
        assert!(load_consensus(&path)
            .unwrap_err()
            .to_string()
            .contains("want 64"));
    }

    #[test]
    fn mismatched_or_garbled_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        let other = generate();
        std::fs::write(
            &path,
            format!(
                r#"{{"secret_key":"{}","address":"{}"}}"#,
                hex::encode(generate().to_bytes()),
                address(&other)
            ),
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
        std::fs::write(&path, "{}").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("bad.json"));
        assert!(matches!(
            load(&dir.path().join("none.json")),
            Err(KeyError::Read { .. })
        ));
    }
}
