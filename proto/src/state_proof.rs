//! The authenticated state: which records the app hash commits to, how a
//! record's place in the tree is derived, and the verification of a proof
//! that a record has a value (or has none) under an app hash.
//!
//! The app hash of height h is the root of a Jellyfish Merkle Tree (the
//! `jmt` crate, SHA-256) over every consensus record after block h. A record
//! is `(space, key) → value`; its leaf sits at `sha256(space || "/" || key)`
//! and commits to `sha256(value)`. A proof is the `jmt` `SparseMerkleProof`
//! in its borsh encoding (docs/state-proofs.md spells out the bytes and the
//! hashing, enough to verify without this crate).

use jmt::proof::SparseMerkleProof;
use jmt::{KeyHash, RootHash};
use sha2::Sha256;

/// The largest encoded proof accepted: 256 siblings of the biggest kind
/// (a leaf, 65 bytes) plus the proof's own leaf and lengths.
pub const MAX_PROOF_BYTES: usize = 256 * 65 + 128;
/// Most keys one query proves (`/state/<space>/<key>,<key>,...`): the
/// answer is typically about 400 KiB (proofs of about 1.4 KB each).
pub const MAX_PROVEN_KEYS: usize = 256;

/// A tree proof as `jmt` builds it.
pub type TreeProof = SparseMerkleProof<Sha256>;

/// The record spaces the app hash commits to. Rollup data itself is not a
/// record: each height's namespaced Merkle root is (space `roots`), and a
/// batch is proven under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Space {
    /// Chain metadata: chain id, parameters, fee pool, validators, prover
    /// registry and set, proof queue, proven height (`keys::META_*`).
    Meta,
    /// `address(32)` → `pb::Account`.
    Accounts,
    /// `rollup_id(8 BE)` → `pb::Rollup`.
    Rollups,
    /// Forced-inclusion requests (`r || id`, `h || tx hash`).
    Forced,
    /// Proven spans (`j || rollup || from`) and each rollup's proven root
    /// and height (`r || rollup` → `pb::RollupProving`).
    Proofs,
    /// `height(8 BE)` → the height's NMT root commitment (56 bytes: leaf
    /// count, minimum and maximum namespace, each u64 BE, then the digest).
    Roots,
}

impl Space {
    pub const ALL: [Space; 6] = [
        Space::Meta,
        Space::Accounts,
        Space::Rollups,
        Space::Forced,
        Space::Proofs,
        Space::Roots,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Space::Meta => "meta",
            Space::Accounts => "accounts",
            Space::Rollups => "rollups",
            Space::Forced => "forced",
            Space::Proofs => "proofs",
            Space::Roots => "roots",
        }
    }

    pub fn from_name(name: &str) -> Option<Space> {
        Space::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where `(space, key)` sits in the tree: `sha256(space || "/" || key)`.
pub fn leaf_key(space: Space, key: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = Sha256::new();
    hasher.update(space.name().as_bytes());
    hasher.update(b"/");
    hasher.update(key);
    hasher.finalize().into()
}

/// The root of a tree without records.
pub const EMPTY_ROOT: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateProofError {
    #[error("state proof of {len} bytes is larger than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("state proof does not decode: {0}")]
    Decode(String),
    #[error("state proof of {space}/{key} does not verify under app hash {root}: {reason}")]
    Mismatch {
        space: &'static str,
        key: String,
        root: String,
        reason: String,
    },
    #[error("app hash of {len} bytes, want 32")]
    RootLength { len: usize },
}

/// The wire form of a proof (borsh).
pub fn encode(proof: &TreeProof) -> Vec<u8> {
    // Writing into a Vec cannot fail.
    borsh::to_vec(proof).unwrap_or_default()
}

/// A proof from its wire form, bounded in size before it is decoded.
pub fn decode(bytes: &[u8]) -> Result<TreeProof, StateProofError> {
    if bytes.len() > MAX_PROOF_BYTES {
        return Err(StateProofError::TooLarge {
            len: bytes.len(),
            max: MAX_PROOF_BYTES,
        });
    }
    borsh::from_slice(bytes).map_err(|e| StateProofError::Decode(e.to_string()))
}

/// Checks that under `app_hash` the record `(space, key)` has `value`
/// (`None`: that it has no record at all).
pub fn verify(
    app_hash: &[u8],
    space: Space,
    key: &[u8],
    value: Option<&[u8]>,
    proof: &[u8],
) -> Result<(), StateProofError> {
    let root: [u8; 32] = app_hash
        .try_into()
        .map_err(|_| StateProofError::RootLength {
            len: app_hash.len(),
        })?;
    let proof = decode(proof)?;
    proof
        .verify(RootHash(root), KeyHash(leaf_key(space, key)), value)
        .map_err(|e| StateProofError::Mismatch {
            space: space.name(),
            key: hex::encode(key),
            root: hex::encode(root),
            reason: e.to_string(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
    use jmt::{OwnedValue, Sha256Jmt, Version};
    use proptest::prelude::*;

    use super::*;

    /// An in-memory tree store for one version.
    #[derive(Default)]
    struct Memory {
        nodes: BTreeMap<NodeKey, Node>,
        values: BTreeMap<[u8; 32], Vec<u8>>,
    }

    impl TreeReader for Memory {
        fn get_node_option(&self, key: &NodeKey) -> anyhow::Result<Option<Node>> {
            Ok(self.nodes.get(key).cloned())
        }
        fn get_value_option(&self, _: Version, key: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
            Ok(self.values.get(&key.0).cloned())
        }
        fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
            Ok(None)
        }
    }

    type Records = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

    fn build(records: &Records) -> (Memory, [u8; 32]) {
        let mut memory = Memory::default();
        let set: Vec<_> = records
            .iter()
            .map(|((space, key), value)| {
                let leaf = leaf_key(Space::ALL[*space as usize], key);
                memory.values.insert(leaf, value.clone());
                (KeyHash(leaf), Some(value.clone()))
            })
            .collect();
        let (root, update) = Sha256Jmt::new(&memory).put_value_set(set, 0).unwrap();
        memory.nodes.extend(update.node_batch.nodes().clone());
        (memory, root.0)
    }

    fn prove(memory: &Memory, space: Space, key: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
        let (value, proof) = Sha256Jmt::new(memory)
            .get_with_proof(KeyHash(leaf_key(space, key)), 0)
            .unwrap();
        (value, encode(&proof))
    }

    fn records() -> impl Strategy<Value = Records> {
        prop::collection::btree_map(
            (0u8..6, prop::collection::vec(any::<u8>(), 1..12)),
            prop::collection::vec(any::<u8>(), 0..40),
            1..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn present_records_verify_and_any_change_is_refused(
            records in records(),
            pick in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let (memory, root) = build(&records);
            let ((space, key), value) = *pick.get(&records.iter().collect::<Vec<_>>());
            let space = Space::ALL[*space as usize];
            let (read, proof) = prove(&memory, space, key);
            prop_assert_eq!(read.as_ref(), Some(value));
            prop_assert!(verify(&root, space, key, Some(value), &proof).is_ok());
            // Another value, another key, another space, another root.
            let mut other = value.clone();
            other.push(1);
            prop_assert!(verify(&root, space, key, Some(&other), &proof).is_err());
            prop_assert!(verify(&root, space, key, None, &proof).is_err());
            let mut other_key = key.clone();
            other_key[0] ^= 1;
            prop_assert!(verify(&root, space, &other_key, Some(value), &proof).is_err());
            let other_space = Space::ALL[(Space::ALL.iter().position(|s| *s == space).unwrap() + 1) % 6];
            prop_assert!(verify(&root, other_space, key, Some(value), &proof).is_err());
            let mut other_root = root;
            other_root[flip.index(32)] ^= 0x80;
            prop_assert!(verify(&other_root, space, key, Some(value), &proof).is_err());
            // Any byte of the proof (the leaf, a sibling, a length) altered.
            let mut bent = proof.clone();
            bent[flip.index(proof.len())] ^= 0x01;
            prop_assert!(verify(&root, space, key, Some(value), &bent).is_err());
        }

        #[test]
        fn absent_records_verify_as_absent_only(
            records in records(),
            key in prop::collection::vec(any::<u8>(), 13..20),
            flip in any::<prop::sample::Index>(),
        ) {
            // Keys of 13+ bytes are never among the records' (1..12 bytes).
            let (memory, root) = build(&records);
            let (read, proof) = prove(&memory, Space::Accounts, &key);
            prop_assert_eq!(read, None);
            prop_assert!(verify(&root, Space::Accounts, &key, None, &proof).is_ok());
            prop_assert!(verify(&root, Space::Accounts, &key, Some(b"x"), &proof).is_err());
            let mut other_root = root;
            other_root[flip.index(32)] ^= 0x80;
            prop_assert!(verify(&other_root, Space::Accounts, &key, None, &proof).is_err());
            if !proof.is_empty() {
                let mut bent = proof.clone();
                bent[flip.index(proof.len())] ^= 0x01;
                prop_assert!(verify(&root, Space::Accounts, &key, None, &bent).is_err());
            }
        }
    }

    #[test]
    fn oversized_and_malformed_proofs_are_refused() {
        let root = [0u8; 32];
        assert!(matches!(
            verify(
                &root,
                Space::Meta,
                b"k",
                None,
                &vec![0; MAX_PROOF_BYTES + 1]
            ),
            Err(StateProofError::TooLarge { .. })
        ));
        assert!(matches!(
            verify(&root, Space::Meta, b"k", None, &[2, 0, 0]),
            Err(StateProofError::Decode(_))
        ));
        assert!(matches!(
            verify(&root[..31], Space::Meta, b"k", None, &[]),
            Err(StateProofError::RootLength { len: 31 })
        ));
    }

    #[test]
    fn leaf_keys_are_pinned() {
        // sha256("accounts/" || 0x01 0x02): a change moves every record.
        assert_eq!(
            hex::encode(leaf_key(Space::Accounts, &[1, 2])),
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"accounts/\x01\x02"))
        );
        let (root, _) = Sha256Jmt::new(&Memory::default())
            .put_value_set(Vec::<(KeyHash, Option<OwnedValue>)>::new(), 0)
            .unwrap();
        assert_eq!(root.0, EMPTY_ROOT);
    }
}
