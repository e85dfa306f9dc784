//! Verification of a batch against its block's namespaced Merkle tree root:
//! the items are all of the rollup's data at that height (inclusion and
//! completeness), in order.

use prost::Message;
use seqnet_proto::nmt::{verify_namespace, NamespaceProof, NmtError, NmtRoot};
use seqnet_proto::pb;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("batch of rollup {rollup_id} at height {height} has no {what}")]
    Missing {
        rollup_id: u64,
        height: u64,
        what: &'static str,
    },
    #[error("batch of rollup {rollup_id} at height {height} does not verify: {source}")]
    Proof {
        rollup_id: u64,
        height: u64,
        source: NmtError,
    },
}

/// A batch whose proof verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBatch {
    pub rollup_id: u64,
    pub height: u64,
    pub items: Vec<pb::BatchItem>,
    pub root: NmtRoot,
}

pub fn verify_batch(batch: &pb::Batch) -> Result<VerifiedBatch, VerifyError> {
    let missing = |what| VerifyError::Missing {
        rollup_id: batch.rollup_id,
        height: batch.height,
        what,
    };
    let failed = |source| VerifyError::Proof {
        rollup_id: batch.rollup_id,
        height: batch.height,
        source,
    };
    let root =
        NmtRoot::try_from(batch.root.as_ref().ok_or_else(|| missing("root"))?).map_err(failed)?;
    let proof = NamespaceProof::try_from(batch.proof.as_ref().ok_or_else(|| missing("proof"))?)
        .map_err(failed)?;
    let leaves: Vec<Vec<u8>> = batch.items.iter().map(Message::encode_to_vec).collect();
    verify_namespace(&root, batch.rollup_id, &leaves, &proof).map_err(failed)?;
    Ok(VerifiedBatch {
        rollup_id: batch.rollup_id,
        height: batch.height,
        items: batch.items.clone(),
        root,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use seqnet_proto::nmt::{NamespacedMerkleTree, NmtNode};

    fn item(n: u8) -> pb::BatchItem {
        pb::BatchItem {
            tx_hash: vec![n; 32],
            signer: vec![1; 32],
            nonce: u64::from(n),
            action_index: 0,
            data: vec![n; 10],
        }
    }

    /// A block with rollups 1 (one item), 2 (three) and 3 (one); the batch of `rollup`.
    pub(crate) fn genuine(rollup: u64) -> pb::Batch {
        let leaves: Vec<(u64, pb::BatchItem)> = vec![
            (1, item(1)),
            (2, item(2)),
            (2, item(3)),
            (2, item(4)),
            (3, item(5)),
        ];
        let tree = NamespacedMerkleTree::from_leaves(
            leaves
                .iter()
                .map(|(ns, i)| NmtNode::leaf(*ns, &i.encode_to_vec()))
                .collect(),
        )
        .unwrap();
        pb::Batch {
            rollup_id: rollup,
            height: 7,
            items: leaves
                .into_iter()
                .filter(|(ns, _)| *ns == rollup)
                .map(|(_, i)| i)
                .collect(),
            proof: Some((&tree.prove_namespace(rollup)).into()),
            root: Some((&tree.root()).into()),
        }
    }

    #[test]
    fn genuine_batches_verify() {
        for rollup in [1, 2, 3, 9] {
            let verified = verify_batch(&genuine(rollup)).unwrap();
            assert_eq!(verified.height, 7);
        }
        assert_eq!(verify_batch(&genuine(2)).unwrap().items.len(), 3);
    }

    #[test]
    fn removed_reordered_or_rerooted_batches_fail() {
        let mut removed = genuine(2);
        removed.items.remove(1);
        assert!(verify_batch(&removed).is_err());
        let mut reordered = genuine(2);
        reordered.items.swap(0, 2);
        assert!(verify_batch(&reordered).is_err());
        let mut rerooted = genuine(2);
        rerooted.root = genuine(1).root.map(|mut r| {
            r.digest[0] ^= 1;
            r
        });
        assert!(verify_batch(&rerooted).is_err());
        let mut no_proof = genuine(2);
        no_proof.proof = None;
        assert!(matches!(
            verify_batch(&no_proof),
            Err(VerifyError::Missing { what: "proof", .. })
        ));
    }
}
