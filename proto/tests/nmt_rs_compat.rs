//! The namespaced Merkle tree of `seqnet_proto::nmt` against `nmt-rs` (the
//! Rust NMT of Celestia's and Sovereign's clients), with 8-byte namespaces
//! (the rollup id, big-endian) and SHA-256: the same root for the same
//! leaves, the same siblings in the same order, and a namespace proof of
//! ours verified by `nmt-rs` unchanged. Where the two differ by design (the
//! empty tree's root, the shape of an absence proof) is in
//! docs/state-proofs.md.

use nmt_rs::simple_merkle::db::MemDb;
use nmt_rs::simple_merkle::proof::Proof;
use nmt_rs::{
    NamespaceId, NamespaceMerkleHasher, NamespaceMerkleTree, NamespaceProof, NamespacedHash,
    NamespacedSha2Hasher,
};
use proptest::prelude::*;
use seqnet_proto::nmt::{self, NamespacedMerkleTree, NmtNode};

type Hasher = NamespacedSha2Hasher<8>;
type Theirs = NamespaceMerkleTree<MemDb<NamespacedHash<8>>, Hasher, 8>;

fn theirs_of(node: &NmtNode) -> NamespacedHash<8> {
    NamespacedHash::new(
        NamespaceId(node.min.to_be_bytes()),
        NamespaceId(node.max.to_be_bytes()),
        node.digest,
    )
}

fn leaves_strategy() -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
    prop::collection::vec((1u64..20, prop::collection::vec(any::<u8>(), 0..40)), 1..60).prop_map(
        |mut leaves| {
            leaves.sort_by_key(|(ns, _)| *ns);
            leaves
        },
    )
}

proptest! {
    #[test]
    fn same_root_same_siblings_and_our_proofs_verify_in_nmt_rs(
        leaves in leaves_strategy(),
        pick in any::<prop::sample::Index>(),
    ) {
        let ours = NamespacedMerkleTree::from_leaves(
            leaves.iter().map(|(ns, data)| NmtNode::leaf(*ns, data)).collect(),
        )
        .unwrap();
        let mut theirs = Theirs::with_hasher(NamespacedSha2Hasher::with_ignore_max_ns(true));
        for (ns, data) in &leaves {
            theirs.push_leaf(data, NamespaceId(ns.to_be_bytes())).unwrap();
        }
        let root = theirs.root();
        prop_assert_eq!(theirs_of(&ours.root().node), root.clone());

        let namespace = leaves[pick.index(leaves.len())].0;
        let data: Vec<&[u8]> = leaves
            .iter()
            .filter(|(ns, _)| *ns == namespace)
            .map(|(_, d)| d.as_slice())
            .collect();
        let proof = ours.prove_namespace(namespace);
        nmt::verify_namespace(&ours.root(), namespace, &data, &proof).unwrap();
        let siblings: Vec<_> = proof.nodes.iter().map(theirs_of).collect();
        let (_, native) = theirs.get_namespace_with_proof(NamespaceId(namespace.to_be_bytes()));
        prop_assert_eq!(native.siblings(), siblings.as_slice());
        let converted: NamespaceProof<Hasher, 8> = NamespaceProof::PresenceProof {
            proof: Proof {
                siblings,
                range: u32::try_from(proof.start).unwrap()..u32::try_from(proof.end).unwrap(),
            },
            ignore_max_ns: true,
        };
        prop_assert!(converted
            .verify_complete_namespace(&root, &data, NamespaceId(namespace.to_be_bytes()))
            .is_ok());
    }
}
