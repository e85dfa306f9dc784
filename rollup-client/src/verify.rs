//! Verification of a batch against its block's namespaced Merkle tree root:
//! the items are all of the rollup's data at that height (inclusion and
//! completeness), in order.
//!
//! Invariant: a [`VerifiedBatch`] only comes out of [`verify_batch`] (or
//! [`verify_batch_for`]), so holding one means its proof checked against
//! `root`. What this does not show is that `root` is the chain's: the root
//! arrives with the batch from the node, so trust in it is trust in that node
//! (or in a root taken from elsewhere and compared with [`VerifiedBatch::root`]).

use prost::Message;
use seqnet_proto::groth16::{
    batch_commitment, span_commitment, PreparedKey, ProofError, SpanStatement,
};
use seqnet_proto::nmt::{verify_namespace, NamespaceProof, NmtError, NmtRoot};
use seqnet_proto::pb;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The batch carries no root or no proof.
    #[error("batch of rollup {rollup_id} at height {height} has no {what}")]
    Missing {
        rollup_id: u64,
        height: u64,
        what: &'static str,
    },
    /// The root does not decode (a digest of the wrong length).
    #[error("batch of rollup {rollup_id} at height {height} has a malformed root: {source}")]
    BadRoot {
        rollup_id: u64,
        height: u64,
        source: NmtError,
    },
    /// A proof node does not decode (a digest of the wrong length).
    #[error("batch of rollup {rollup_id} at height {height} has a malformed proof: {source}")]
    BadProof {
        rollup_id: u64,
        height: u64,
        source: NmtError,
    },
    /// The items are not exactly the rollup's leaves under the root.
    #[error("batch of rollup {rollup_id} at height {height} does not verify: {source}")]
    Proof {
        rollup_id: u64,
        height: u64,
        source: NmtError,
    },
    /// The node answered with a batch other than the one asked for.
    #[error(
        "asked for the batch of rollup {want_rollup} at height {want_height}, \
         got rollup {got_rollup} at height {got_height}"
    )]
    Unexpected {
        want_rollup: u64,
        want_height: u64,
        got_rollup: u64,
        got_height: u64,
    },
    /// A field of a batch's validity proof has the wrong length.
    #[error(
        "validity proof of rollup {rollup_id} at height {height}: {field} is {got} bytes, want 32"
    )]
    ProofField {
        rollup_id: u64,
        height: u64,
        field: &'static str,
        got: usize,
    },
    /// The proof's span commitment is not the commitment of the span's
    /// batches.
    #[error(
        "validity proof of rollup {rollup_id} at height {height} is for span commitment \
         {claimed}, the span's batches commit to {computed}"
    )]
    CommitmentMismatch {
        rollup_id: u64,
        height: u64,
        claimed: String,
        computed: String,
    },
    /// The span the proof claims does not fit the batches read for it.
    #[error("validity proof of rollup {rollup_id} at height {height}: {reason}")]
    BadSpan {
        rollup_id: u64,
        height: u64,
        reason: String,
    },
    /// The proof does not start from the state root the previous proof ended at.
    #[error(
        "validity proof of rollup {rollup_id} at height {height} starts from state root {got}, \
         the previous proven batch ended at {want}"
    )]
    RootGap {
        rollup_id: u64,
        height: u64,
        want: String,
        got: String,
    },
    /// The Groth16 proof does not verify against the rollup's verifying key.
    #[error("validity proof of rollup {rollup_id} at height {height} does not verify: {source}")]
    Groth16 {
        rollup_id: u64,
        height: u64,
        source: ProofError,
    },
}

/// A batch whose namespace proof verified against `root`.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBatch {
    pub rollup_id: u64,
    pub height: u64,
    /// All of the rollup's items at that height, in block order.
    pub items: Vec<pb::BatchItem>,
    /// The block's namespaced Merkle root the proof checked against.
    pub root: NmtRoot,
    /// The validity proof of the span the batch belongs to, checked by
    /// [`check_span_proof`] (only on non-empty batches of PROVEN streams
    /// whose rollup has a proof job covering them).
    pub proof: Option<CheckedProof>,
}

/// A span's validity proof (Groth16) that verified against the rollup's
/// verifying key for the commitment of the span's own batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    pub prev_state_root: [u8; 32],
    pub new_state_root: [u8; 32],
    /// The span: heights `from_height..=to_height`, its span commitment.
    pub from_height: u64,
    pub to_height: u64,
    pub span_commitment: [u8; 32],
    /// The prover credited (32-byte address).
    pub prover: Vec<u8>,
    /// Block that included the proof.
    pub proven_at: u64,
    /// The proof bytes (uncompressed arkworks encoding); empty when
    /// `by_aggregate`.
    pub proof: Vec<u8>,
    /// Proven by an aggregate (`SubmitAggregate`): there is no proof of this
    /// batch alone to check here; the commitment and the chain of state
    /// roots were checked, the aggregate was verified by the chain.
    pub by_aggregate: bool,
}

/// Checks `proof` as the validity proof of a span of `rollup_id` whose
/// non-empty batches are `batches` (each verified against its block's root,
/// in height order), under `key`: the span's bounds and batch heights fit the
/// batches, its commitment is the one they make, and the Groth16 proof
/// verifies for `(rollup, from..=to, span commitment, prev_state_root,
/// new_state_root)`. With `prev_root` (the new root of the rollup's previous
/// proven span), the proof must also start there. A job the chain records as
/// proven by an aggregate (`by_aggregate`, no proof bytes) passes on the
/// commitment and root checks alone ([`CheckedProof::by_aggregate`] says
/// so).
pub fn check_span_proof(
    rollup_id: u64,
    batches: &[&VerifiedBatch],
    proof: &pb::BatchProof,
    key: &PreparedKey,
    prev_root: Option<[u8; 32]>,
) -> Result<CheckedProof, VerifyError> {
    let height = proof.to_height;
    let field = |field: &'static str, bytes: &[u8]| {
        <[u8; 32]>::try_from(bytes).map_err(|_| VerifyError::ProofField {
            rollup_id,
            height,
            field,
            got: bytes.len(),
        })
    };
    let bad_span = |reason: String| VerifyError::BadSpan {
        rollup_id,
        height,
        reason,
    };
    let prev_state_root = field("prev_state_root", &proof.prev_state_root)?;
    let new_state_root = field("new_state_root", &proof.new_state_root)?;
    let claimed = field("span_commitment", &proof.span_commitment)?;
    if proof.from_height == 0 || proof.from_height > proof.to_height {
        return Err(bad_span(format!(
            "span {}..={} is empty",
            proof.from_height, proof.to_height
        )));
    }
    let heights: Vec<u64> = batches.iter().map(|b| b.height).collect();
    if heights != proof.batch_heights {
        return Err(bad_span(format!(
            "the span lists batches at {:?}, the stream has non-empty batches at {heights:?}",
            proof.batch_heights
        )));
    }
    let mut pairs = Vec::with_capacity(batches.len());
    for batch in batches {
        if batch.rollup_id != rollup_id
            || batch.items.is_empty()
            || batch.height < proof.from_height
            || batch.height > proof.to_height
            || pairs.last().is_some_and(|(h, _)| *h >= batch.height)
        {
            return Err(bad_span(format!(
                "batch of rollup {} at height {} ({} items) does not belong to span {}..={}",
                batch.rollup_id,
                batch.height,
                batch.items.len(),
                proof.from_height,
                proof.to_height
            )));
        }
        pairs.push((
            batch.height,
            batch_commitment(rollup_id, batch.height, &batch.items),
        ));
    }
    let commitment = span_commitment(rollup_id, proof.from_height, proof.to_height, &pairs);
    if claimed != commitment {
        return Err(VerifyError::CommitmentMismatch {
            rollup_id,
            height,
            claimed: hex::encode(claimed),
            computed: hex::encode(commitment),
        });
    }
    if let Some(want) = prev_root.filter(|want| *want != prev_state_root) {
        return Err(VerifyError::RootGap {
            rollup_id,
            height,
            want: hex::encode(want),
            got: hex::encode(prev_state_root),
        });
    }
    let checked = CheckedProof {
        prev_state_root,
        new_state_root,
        from_height: proof.from_height,
        to_height: proof.to_height,
        span_commitment: commitment,
        prover: proof.prover.clone(),
        proven_at: proof.proven_at,
        proof: proof.proof.clone(),
        by_aggregate: proof.by_aggregate && proof.proof.is_empty(),
    };
    if checked.by_aggregate {
        return Ok(checked);
    }
    let statement = SpanStatement {
        rollup_id,
        from_height: proof.from_height,
        to_height: proof.to_height,
        commitment,
        prev_root: prev_state_root,
        new_root: new_state_root,
    };
    key.verify(&proof.proof, &statement)
        .map_err(|source| VerifyError::Groth16 {
            rollup_id,
            height,
            source,
        })?;
    Ok(checked)
}

/// Checks `batch`'s items against its root and namespace proof (namespace =
/// `batch.rollup_id`): they must be exactly that rollup's leaves, in order.
pub fn verify_batch(batch: &pb::Batch) -> Result<VerifiedBatch, VerifyError> {
    let (rollup_id, height) = (batch.rollup_id, batch.height);
    let missing = |what| VerifyError::Missing {
        rollup_id,
        height,
        what,
    };
    let root = batch.root.as_ref().ok_or_else(|| missing("root"))?;
    let root = NmtRoot::try_from(root).map_err(|source| VerifyError::BadRoot {
        rollup_id,
        height,
        source,
    })?;
    let proof = batch.proof.as_ref().ok_or_else(|| missing("proof"))?;
    let proof = NamespaceProof::try_from(proof).map_err(|source| VerifyError::BadProof {
        rollup_id,
        height,
        source,
    })?;
    let leaves: Vec<Vec<u8>> = batch.items.iter().map(Message::encode_to_vec).collect();
    verify_namespace(&root, rollup_id, &leaves, &proof).map_err(|source| VerifyError::Proof {
        rollup_id,
        height,
        source,
    })?;
    Ok(VerifiedBatch {
        rollup_id,
        height,
        items: batch.items.clone(),
        root,
        proof: None,
    })
}

/// [`verify_batch`], after checking that `batch` is the one asked for: a
/// genuine batch of another rollup or height verifies too, for itself.
pub fn verify_batch_for(
    batch: &pb::Batch,
    rollup_id: u64,
    height: u64,
) -> Result<VerifiedBatch, VerifyError> {
    if batch.rollup_id != rollup_id || batch.height != height {
        return Err(VerifyError::Unexpected {
            want_rollup: rollup_id,
            want_height: height,
            got_rollup: batch.rollup_id,
            got_height: batch.height,
        });
    }
    verify_batch(batch)
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

    /// The batch of `rollup` at `height` in a block with rollups 1 (one
    /// item), 2 (three) and 3 (one); the items depend on the height.
    pub(crate) fn genuine_at(rollup: u64, height: u64) -> pb::Batch {
        let salt = (height % 50) as u8;
        let leaves: Vec<(u64, pb::BatchItem)> = vec![
            (1, item(1 + salt)),
            (2, item(2 + salt)),
            (2, item(3 + salt)),
            (2, item(4 + salt)),
            (3, item(5 + salt)),
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
            height,
            items: leaves
                .into_iter()
                .filter(|(ns, _)| *ns == rollup)
                .map(|(_, i)| i)
                .collect(),
            proof: Some((&tree.prove_namespace(rollup)).into()),
            root: Some((&tree.root()).into()),
            proven: None,
        }
    }

    pub(crate) fn genuine(rollup: u64) -> pb::Batch {
        genuine_at(rollup, 7)
    }

    #[test]
    fn genuine_batches_verify() {
        // 9 is absent from the block: the proof shows it has no items.
        for rollup in [1, 2, 3, 9] {
            let verified = verify_batch(&genuine(rollup)).unwrap();
            assert_eq!((verified.rollup_id, verified.height), (rollup, 7));
        }
        let two = verify_batch(&genuine(2)).unwrap();
        assert_eq!(two.items, genuine(2).items);
        assert_eq!(two.items.len(), 3);
        assert!(verify_batch(&genuine(9)).unwrap().items.is_empty());
    }

    #[test]
    fn removed_reordered_or_rerooted_batches_fail() {
        let proof_failure =
            |batch: &pb::Batch| matches!(verify_batch(batch), Err(VerifyError::Proof { .. }));
        let mut removed = genuine(2);
        removed.items.remove(1);
        assert!(proof_failure(&removed));
        let mut removed_last = genuine(2);
        removed_last.items.pop();
        assert!(proof_failure(&removed_last));
        let mut reordered = genuine(2);
        reordered.items.swap(0, 2);
        assert!(proof_failure(&reordered));
        let mut added = genuine(2);
        added.items.push(item(9));
        assert!(proof_failure(&added));
        let mut altered = genuine(2);
        altered.items[0].data.push(0);
        assert!(proof_failure(&altered));
        let mut rerooted = genuine(2);
        if let Some(root) = rerooted.root.as_mut() {
            root.digest[0] ^= 1;
        }
        assert!(proof_failure(&rerooted));
        // Another block's root does not fit either.
        let mut other_block = genuine(2);
        other_block.root = genuine_at(2, 8).root;
        assert!(proof_failure(&other_block));
        // Claiming another namespace's items for rollup 2.
        let mut foreign = genuine(2);
        foreign.items = genuine(1).items;
        assert!(proof_failure(&foreign));
        // Hiding all of rollup 2's items behind an absence claim.
        let mut hidden = genuine(9);
        hidden.rollup_id = 2;
        assert!(proof_failure(&hidden));
    }

    #[test]
    fn missing_or_malformed_parts_are_named() {
        let mut no_proof = genuine(2);
        no_proof.proof = None;
        assert!(matches!(
            verify_batch(&no_proof),
            Err(VerifyError::Missing { what: "proof", .. })
        ));
        let mut no_root = genuine(2);
        no_root.root = None;
        assert!(matches!(
            verify_batch(&no_root),
            Err(VerifyError::Missing { what: "root", .. })
        ));
        let mut short_root = genuine(2);
        if let Some(root) = short_root.root.as_mut() {
            root.digest.truncate(31);
        }
        assert_eq!(
            verify_batch(&short_root),
            Err(VerifyError::BadRoot {
                rollup_id: 2,
                height: 7,
                source: NmtError::DigestLength(31)
            })
        );
        let mut long_node = genuine(2);
        if let Some(proof) = long_node.proof.as_mut() {
            proof.nodes[0].digest.push(0);
        }
        assert!(matches!(
            verify_batch(&long_node),
            Err(VerifyError::BadProof {
                source: NmtError::DigestLength(33),
                ..
            })
        ));
    }

    #[test]
    fn a_batch_other_than_the_one_asked_for_is_refused() {
        assert!(verify_batch_for(&genuine(2), 2, 7).is_ok());
        assert!(matches!(
            verify_batch_for(&genuine(3), 2, 7),
            Err(VerifyError::Unexpected { got_rollup: 3, .. })
        ));
        assert!(matches!(
            verify_batch_for(&genuine_at(2, 8), 2, 7),
            Err(VerifyError::Unexpected { got_height: 8, .. })
        ));
    }

    /// The reference circuit's DEVELOPMENT verifying key (k = 8, seed 0,
    /// `seqnet-prover setup`).
    fn reference_key() -> PreparedKey {
        PreparedKey::decode(include_bytes!("testdata/reference-k8-seed0.vk")).unwrap()
    }

    /// The claims of a span of rollup 2 over `batches` (5..=9).
    fn claims(batches: &[&VerifiedBatch], by_aggregate: bool) -> pb::BatchProof {
        let pairs: Vec<(u64, [u8; 32])> = batches
            .iter()
            .map(|b| (b.height, batch_commitment(b.rollup_id, b.height, &b.items)))
            .collect();
        pb::BatchProof {
            proof: Vec::new(),
            prev_state_root: vec![1; 32],
            new_state_root: vec![2; 32],
            span_commitment: span_commitment(2, 5, 9, &pairs).to_vec(),
            prover: vec![3; 32],
            proven_at: 11,
            by_aggregate,
            from_height: 5,
            to_height: 9,
            batch_heights: batches.iter().map(|b| b.height).collect(),
        }
    }

    #[test]
    fn jobs_proven_by_an_aggregate_pass_on_their_claims() {
        let first = verify_batch(&genuine_at(2, 5)).unwrap();
        let second = verify_batch(&genuine_at(2, 8)).unwrap();
        let span = [&first, &second];
        let key = reference_key();
        let checked =
            check_span_proof(2, &span, &claims(&span, true), &key, Some([1; 32])).unwrap();
        assert!(checked.by_aggregate);
        assert_eq!(checked.new_state_root, [2; 32]);
        assert_eq!((checked.from_height, checked.to_height), (5, 9));
        // The claims are still checked: another commitment, a root gap.
        let mut wrong = claims(&span, true);
        wrong.span_commitment = vec![0; 32];
        assert!(matches!(
            check_span_proof(2, &span, &wrong, &key, None),
            Err(VerifyError::CommitmentMismatch { .. })
        ));
        assert!(matches!(
            check_span_proof(2, &span, &claims(&span, true), &key, Some([7; 32])),
            Err(VerifyError::RootGap { .. })
        ));
        // A batch left out of the span, or one too many.
        assert!(matches!(
            check_span_proof(2, &[&first], &claims(&span, true), &key, None),
            Err(VerifyError::BadSpan { .. })
        ));
        let mut shifted = claims(&span, true);
        shifted.to_height = 7;
        assert!(matches!(
            check_span_proof(2, &span, &shifted, &key, None),
            Err(VerifyError::BadSpan { .. })
        ));
        // Without the chain's word, no proof bytes is a failed proof.
        assert!(matches!(
            check_span_proof(2, &span, &claims(&span, false), &key, None),
            Err(VerifyError::Groth16 { .. })
        ));
        // Proof bytes are checked even when flagged.
        let mut flagged = claims(&span, true);
        flagged.proof = vec![0; seqnet_proto::groth16::PROOF_LEN];
        assert!(matches!(
            check_span_proof(2, &span, &flagged, &key, None),
            Err(VerifyError::Groth16 { .. })
        ));
    }
}
