//! Prover authentication for `ProverService.Jobs`: the sign bytes a prover
//! signs to prove it holds the key of the job stream it opens.
//!
//! `"seqnet/prover-auth/v1" || u32_be(len(chain_id)) || chain_id ||
//! challenge (32) || public_key (32)`: the domain keeps the signature from
//! ever verifying as a transaction (`"seqnet/tx/v1"`), the length prefix
//! keeps (chain id, challenge) pairs unambiguous, and the public key binds
//! the signature to the stream's key.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Domain separator of prover authentication signatures.
pub const AUTH_SIGN_DOMAIN: &[u8] = b"seqnet/prover-auth/v1";
/// Length of a server challenge.
pub const CHALLENGE_LEN: usize = 32;

/// Why a `JobsRequest`'s authentication does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("public key must be 32 bytes, got {0}")]
    PublicKeyLength(usize),
    #[error("public key {0} is not a valid ed25519 point")]
    PublicKeyInvalid(String),
    #[error("challenge must be {CHALLENGE_LEN} bytes, got {0}")]
    ChallengeLength(usize),
    #[error("signature must be 64 bytes, got {0}")]
    SignatureLength(usize),
    #[error("signature does not verify for public key {0}")]
    BadSignature(String),
}

/// The bytes a prover signs to open its job stream.
pub fn auth_sign_bytes(chain_id: &str, challenge: &[u8], public_key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        AUTH_SIGN_DOMAIN.len() + 4 + chain_id.len() + challenge.len() + public_key.len(),
    );
    out.extend_from_slice(AUTH_SIGN_DOMAIN);
    // Chain ids are capped far below u32::MAX (tx::MAX_CHAIN_ID_LEN).
    out.extend_from_slice(
        &u32::try_from(chain_id.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(chain_id.as_bytes());
    out.extend_from_slice(challenge);
    out.extend_from_slice(public_key);
    out
}

/// Signs `challenge` for `chain_id` with the prover's key (the client side).
pub fn sign_auth(key: &SigningKey, chain_id: &str, challenge: &[u8]) -> [u8; 64] {
    let public = key.verifying_key().to_bytes();
    key.sign(&auth_sign_bytes(chain_id, challenge, &public))
        .to_bytes()
}

/// Checks lengths and the strict ed25519 signature of a stream opening;
/// returns the prover's public key. Whether the challenge is fresh is the
/// node's business.
pub fn verify_auth(
    chain_id: &str,
    challenge: &[u8],
    public_key: &[u8],
    signature: &[u8],
) -> Result<VerifyingKey, AuthError> {
    let key_bytes: [u8; 32] = public_key
        .try_into()
        .map_err(|_| AuthError::PublicKeyLength(public_key.len()))?;
    if challenge.len() != CHALLENGE_LEN {
        return Err(AuthError::ChallengeLength(challenge.len()));
    }
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| AuthError::SignatureLength(signature.len()))?;
    let key = VerifyingKey::from_bytes(&key_bytes)
        .map_err(|_| AuthError::PublicKeyInvalid(hex::encode(key_bytes)))?;
    key.verify_strict(
        &auth_sign_bytes(chain_id, challenge, &key_bytes),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| AuthError::BadSignature(hex::encode(key_bytes)))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn sign_bytes_are_domain_separated_and_length_prefixed() {
        let pk = [7u8; 32];
        let bytes = auth_sign_bytes("seqnet-test", &[1; 32], &pk);
        assert!(bytes.starts_with(AUTH_SIGN_DOMAIN));
        assert_eq!(bytes.len(), AUTH_SIGN_DOMAIN.len() + 4 + 11 + 32 + 32);
        assert_eq!(
            &bytes[AUTH_SIGN_DOMAIN.len()..AUTH_SIGN_DOMAIN.len() + 4],
            &[0, 0, 0, 11]
        );
        assert!(bytes.ends_with(&pk));
        // Moving a byte between chain id and challenge changes the bytes.
        let mut challenge = vec![b'x'];
        challenge.extend_from_slice(&[1; 31]);
        assert_ne!(
            auth_sign_bytes("ab", &challenge, &pk),
            auth_sign_bytes("abx", &[1; 31], &pk)
        );
        // Never a transaction's domain.
        assert!(!bytes.starts_with(crate::tx::TX_SIGN_DOMAIN));
    }

    #[test]
    fn a_signed_challenge_verifies_and_nothing_else_does() {
        let k = key(3);
        let pk = k.verifying_key().to_bytes();
        let challenge = [9u8; 32];
        let sig = sign_auth(&k, "chain", &challenge);
        assert_eq!(
            verify_auth("chain", &challenge, &pk, &sig).map(|v| v.to_bytes()),
            Ok(pk)
        );
        // Other chain, other challenge, other key, flipped bit.
        assert!(matches!(
            verify_auth("chain2", &challenge, &pk, &sig),
            Err(AuthError::BadSignature(_))
        ));
        assert!(matches!(
            verify_auth("chain", &[8u8; 32], &pk, &sig),
            Err(AuthError::BadSignature(_))
        ));
        let other = key(4).verifying_key().to_bytes();
        assert!(matches!(
            verify_auth("chain", &challenge, &other, &sig),
            Err(AuthError::BadSignature(_))
        ));
        let mut flipped = sig;
        flipped[0] ^= 1;
        assert!(verify_auth("chain", &challenge, &pk, &flipped).is_err());
        // Lengths.
        assert_eq!(
            verify_auth("chain", &challenge, &pk[..31], &sig),
            Err(AuthError::PublicKeyLength(31))
        );
        assert_eq!(
            verify_auth("chain", &challenge[..16], &pk, &sig),
            Err(AuthError::ChallengeLength(16))
        );
        assert_eq!(
            verify_auth("chain", &challenge, &pk, &sig[..63]),
            Err(AuthError::SignatureLength(63))
        );
    }
}
