//! Checks a client can make of what nodes serve: a batch's namespace proof
//! (inclusion and completeness against the block's NMT root).

use prost::Message;
use seqnet_proto::nmt::{verify_namespace, NamespaceProof, NmtError, NmtRoot};
use seqnet_proto::pb;

/// The leaf data of one batch item in the block's namespaced Merkle tree:
/// the protobuf encoding of the `BatchItem`.
pub fn leaf_data(item: &pb::BatchItem) -> Vec<u8> {
    item.encode_to_vec()
}

/// Verifies that `batch.items` are exactly the leaves of namespace
/// `batch.rollup_id` under `batch.root`, in order.
pub fn verify_batch(batch: &pb::Batch) -> Result<(), NmtError> {
    let root = NmtRoot::try_from(batch.root.as_ref().ok_or(NmtError::MissingProof)?)?;
    let proof = NamespaceProof::try_from(batch.proof.as_ref().ok_or(NmtError::MissingProof)?)?;
    let leaves: Vec<Vec<u8>> = batch.items.iter().map(leaf_data).collect();
    verify_namespace(&root, batch.rollup_id, &leaves, &proof)
}
