//! Inclusion lists carried in vote extensions, and the extended commit that a
//! proposer injects as the first transaction of a block: encodings with
//! bounds, CometBFT's canonical vote-extension sign bytes, and the signature
//! check, as pure functions.

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;

use crate::pb;

/// Marks the injected system transaction. A `SignedTransaction` can never
/// start with a zero byte (protobuf field number 0 does not exist).
pub const SYSTEM_TX_PREFIX: &[u8] = b"\x00seqnet/system/v1\x00";
/// No injected extended commit is larger than this.
pub const MAX_SYSTEM_TX_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    #[error("inclusion list does not decode: {0}")]
    Malformed(String),
    #[error("inclusion list is not canonically encoded")]
    NonCanonical,
    #[error("inclusion list has {count} transactions; at most {limit} allowed")]
    TooManyTxs { count: usize, limit: usize },
    #[error("inclusion list carries {size} bytes; at most {limit} allowed")]
    TooLarge { size: usize, limit: usize },
    #[error("inclusion list entry {0} is empty")]
    EmptyTx(usize),
    #[error("system transaction of {size} bytes exceeds {MAX_SYSTEM_TX_BYTES}")]
    SystemTxTooLarge { size: usize },
    #[error("system transaction does not decode: {0}")]
    SystemTxMalformed(String),
    #[error("validator {address} signed its vote extension wrongly")]
    BadSignature { address: String },
    #[error("validator public key is not a valid ed25519 key: {0}")]
    BadKey(String),
}

/// Decodes a vote extension into its transactions, checking its bounds.
pub fn decode_inclusion_list(
    extension: &[u8],
    max_txs: usize,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, InclusionError> {
    if extension.len() > max_bytes.saturating_add(16 * max_txs.max(1)) {
        return Err(InclusionError::TooLarge {
            size: extension.len(),
            limit: max_bytes,
        });
    }
    let list = pb::InclusionList::decode(extension)
        .map_err(|e| InclusionError::Malformed(e.to_string()))?;
    if list.encode_to_vec() != extension {
        return Err(InclusionError::NonCanonical);
    }
    if list.txs.len() > max_txs {
        return Err(InclusionError::TooManyTxs {
            count: list.txs.len(),
            limit: max_txs,
        });
    }
    let size: usize = list.txs.iter().map(Vec::len).sum();
    if size > max_bytes {
        return Err(InclusionError::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    if let Some(index) = list.txs.iter().position(Vec::is_empty) {
        return Err(InclusionError::EmptyTx(index));
    }
    Ok(list.txs)
}

pub fn encode_inclusion_list(txs: Vec<Vec<u8>>) -> Vec<u8> {
    pb::InclusionList { txs }.encode_to_vec()
}

pub fn encode_system_tx(commit: &pb::ExtendedCommit) -> Vec<u8> {
    let mut out = SYSTEM_TX_PREFIX.to_vec();
    commit.encode(&mut out).unwrap_or_default();
    out
}

/// `None` if `bytes` is not a system transaction; otherwise its decoding.
pub fn decode_system_tx(bytes: &[u8]) -> Option<Result<pb::ExtendedCommit, InclusionError>> {
    let body = bytes.strip_prefix(SYSTEM_TX_PREFIX)?;
    if bytes.len() > MAX_SYSTEM_TX_BYTES {
        return Some(Err(InclusionError::SystemTxTooLarge { size: bytes.len() }));
    }
    Some(
        pb::ExtendedCommit::decode(body)
            .map_err(|e| InclusionError::SystemTxMalformed(e.to_string())),
    )
}

/// CometBFT v0.38 `CanonicalVoteExtension`.
#[derive(Clone, PartialEq, Message)]
struct CanonicalVoteExtension {
    #[prost(bytes = "vec", tag = "1")]
    extension: Vec<u8>,
    #[prost(sfixed64, tag = "2")]
    height: i64,
    #[prost(sfixed64, tag = "3")]
    round: i64,
    #[prost(string, tag = "4")]
    chain_id: String,
}

/// The bytes a validator signs for its vote extension (CometBFT's
/// `VoteExtensionSignBytes`: the length-delimited canonical encoding).
pub fn vote_extension_sign_bytes(
    chain_id: &str,
    height: i64,
    round: i64,
    extension: &[u8],
) -> Vec<u8> {
    CanonicalVoteExtension {
        extension: extension.to_vec(),
        height,
        round,
        chain_id: chain_id.to_string(),
    }
    .encode_length_delimited_to_vec()
}

/// CometBFT's validator address: the first 20 bytes of SHA-256 of the key.
pub fn validator_address(public_key: &[u8]) -> Vec<u8> {
    crate::sha256(public_key)[..20].to_vec()
}

pub fn verify_vote_extension(
    chain_id: &str,
    height: i64,
    round: i64,
    vote: &pb::ExtendedVote,
    public_key: &[u8],
) -> Result<(), InclusionError> {
    let bad_signature = || InclusionError::BadSignature {
        address: hex::encode(&vote.validator_address),
    };
    let key_bytes = <[u8; 32]>::try_from(public_key)
        .map_err(|_| InclusionError::BadKey(format!("{} bytes", public_key.len())))?;
    let key =
        VerifyingKey::from_bytes(&key_bytes).map_err(|e| InclusionError::BadKey(e.to_string()))?;
    let signature = Signature::from_slice(&vote.signature).map_err(|_| bad_signature())?;
    key.verify_strict(
        &vote_extension_sign_bytes(chain_id, height, round, &vote.extension),
        &signature,
    )
    .map_err(|_| bad_signature())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    #[test]
    fn bounds_are_enforced() {
        let list = encode_inclusion_list(vec![vec![1; 10], vec![2; 10]]);
        assert_eq!(decode_inclusion_list(&list, 2, 20).expect("fits").len(), 2);
        assert!(matches!(
            decode_inclusion_list(&list, 1, 100),
            Err(InclusionError::TooManyTxs { count: 2, limit: 1 })
        ));
        assert!(matches!(
            decode_inclusion_list(&list, 4, 19),
            Err(InclusionError::TooLarge { .. })
        ));
        assert!(decode_inclusion_list(&encode_inclusion_list(vec![vec![]]), 4, 100).is_err());
        assert!(decode_inclusion_list(b"\xff\xff", 4, 100).is_err());
        assert_eq!(
            decode_inclusion_list(&[], 4, 100).expect("empty list"),
            Vec::<Vec<u8>>::new()
        );
    }

    #[test]
    fn sign_bytes_match_cometbft_layout() {
        // extension "ab", height 5, round 1, chain "c": length prefix, then
        // fields 1 (bytes), 2 and 3 (sfixed64), 4 (string).
        let bytes = vote_extension_sign_bytes("c", 5, 1, b"ab");
        let expected = [
            &[25u8][..],
            &[0x0a, 2, b'a', b'b'],
            &[0x11, 5, 0, 0, 0, 0, 0, 0, 0],
            &[0x19, 1, 0, 0, 0, 0, 0, 0, 0],
            &[0x22, 1, b'c'],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn signatures_verify_and_forgeries_fail() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let public = key.verifying_key().to_bytes();
        let extension = encode_inclusion_list(vec![b"tx".to_vec()]);
        let mut vote = pb::ExtendedVote {
            validator_address: validator_address(&public),
            signature: key
                .sign(&vote_extension_sign_bytes("chain", 9, 0, &extension))
                .to_bytes()
                .to_vec(),
            extension,
        };
        verify_vote_extension("chain", 9, 0, &vote, &public).expect("valid");
        assert!(verify_vote_extension("chain", 10, 0, &vote, &public).is_err());
        vote.extension = encode_inclusion_list(vec![b"other".to_vec()]);
        assert!(verify_vote_extension("chain", 9, 0, &vote, &public).is_err());
    }

    proptest! {
        #[test]
        fn system_tx_round_trips(height in any::<i64>(), round in any::<i64>(), ext in proptest::collection::vec(any::<u8>(), 0..64)) {
            let commit = pb::ExtendedCommit {
                height,
                round,
                votes: vec![pb::ExtendedVote { validator_address: vec![1; 20], extension: ext, signature: vec![2; 64] }],
            };
            let bytes = encode_system_tx(&commit);
            prop_assert_eq!(decode_system_tx(&bytes), Some(Ok(commit)));
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_inclusion_list(&bytes, 8, 1024);
            let mut prefixed = SYSTEM_TX_PREFIX.to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = decode_system_tx(&prefixed);
        }
    }
}
