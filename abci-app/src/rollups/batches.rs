//! Each block's batches: the rollup data of its transactions collected per
//! rollup ([`BlockBatches`]), the fees split over the rollups, the
//! namespaced Merkle tree over every batch, storage, and reads of a batch
//! with its proof of inclusion and completeness.
//!
//! A block's tree is built once, in FinalizeBlock: the namespace proof of
//! every non-empty batch is stored then, beside the block record (derived
//! data, outside the app hash), so a read serves it as stored; proofs of
//! absence (a rollup with no data at a height) come from a small cache of
//! recent blocks' trees, rebuilt from the block record's leaves on a miss.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use seqnet_proto::nmt::{NamespacedMerkleTree, NmtNode, NmtRoot};
use seqnet_proto::{pb, RollupId};

use crate::keys;
use crate::state::{decode, StateRead, StateWrite};
use crate::store::{Cf, StoreError};
use crate::tx::TxOutcome;

/// Why a batch or block cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("height {requested} is not committed yet (last committed height is {last})")]
    FutureHeight { requested: u64, last: u64 },
    #[error("height 0 has no block")]
    HeightZero,
    #[error("rollup {0} is not registered")]
    UnknownRollup(RollupId),
    #[error("no block record at height {0}")]
    MissingBlock(u64),
    #[error("height {height} is pruned on this node (it keeps heights from {retained} on)")]
    Pruned { height: u64, retained: u64 },
    #[error("stored block {height} is inconsistent: {detail}")]
    Inconsistent { height: u64, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One rollup's batch of a finalized block, for the provers' block end.
pub(crate) struct BlockBatch<'a> {
    pub rollup_id: RollupId,
    pub items: &'a [pb::BatchItem],
    pub fees: u64,
}

/// The rollup data of a block's executed transactions, per rollup in block
/// order, and what each transaction paid for it.
#[derive(Default)]
pub(crate) struct BlockBatches {
    pub items: BTreeMap<RollupId, Vec<pb::BatchItem>>,
    /// Per transaction with data: (fee, [(rollup, data bytes)]).
    paid: Vec<(u64, Vec<(RollupId, u64)>)>,
}

impl BlockBatches {
    /// Adds an executed transaction's items.
    pub(crate) fn add(&mut self, outcome: &TxOutcome) {
        if outcome.items.is_empty() {
            return;
        }
        self.paid.push((
            outcome.fee,
            outcome
                .items
                .iter()
                .map(|(r, i)| (*r, i.data.len() as u64))
                .collect(),
        ));
        for (rollup_id, item) in &outcome.items {
            self.items.entry(*rollup_id).or_default().push(item.clone());
        }
    }

    /// Per rollup: (items, bytes), for the block summary.
    pub(crate) fn counts(&self) -> BTreeMap<RollupId, (u64, u64)> {
        self.items
            .iter()
            .map(|(id, items)| {
                let bytes = items
                    .iter()
                    .fold(0u64, |n, i| n.saturating_add(i.data.len() as u64));
                (*id, (items.len() as u64, bytes))
            })
            .collect()
    }

    /// Each rollup's batch with the fees its transactions paid for it.
    pub(crate) fn with_fees(&self) -> Vec<BlockBatch<'_>> {
        let fees = batch_fees(&self.paid);
        self.items
            .iter()
            .map(|(rollup_id, items)| BlockBatch {
                rollup_id: *rollup_id,
                items,
                fees: fees.get(rollup_id).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Stores every batch of block `height` and builds the block's tree
    /// (leaves sorted by namespace, block order within one).
    pub(crate) fn store(&self, state: &mut impl StateWrite, height: u64) -> BlockTree {
        let mut leaves = Vec::new();
        for (rollup_id, items) in &self.items {
            for item in items {
                leaves.push(NmtNode::leaf(*rollup_id, &item.encode_to_vec()));
            }
            state.put(
                Cf::Batches,
                keys::batch(*rollup_id, height),
                pb::Batch {
                    rollup_id: *rollup_id,
                    height,
                    items: items.clone(),
                    proof: None,
                    root: None,
                    proven: None,
                }
                .encode_to_vec(),
            );
        }
        let tree = BlockTree {
            tree: NamespacedMerkleTree::from_leaves(leaves.clone()).ok(),
            leaves,
        };
        // The height's root is a record of the state tree, so a batch (or its
        // absence) is proven under the app hash through it.
        state.put(
            Cf::Roots,
            keys::nmt_root(height),
            tree.root().commitment_bytes(),
        );
        tree
    }
}

/// A finalized block's namespaced Merkle tree.
pub(crate) struct BlockTree {
    pub leaves: Vec<NmtNode>,
    tree: Option<NamespacedMerkleTree>,
}

impl BlockTree {
    pub(crate) fn root(&self) -> NmtRoot {
        self.tree
            .as_ref()
            .map(NamespacedMerkleTree::root)
            .unwrap_or_else(NmtRoot::empty)
    }

    /// The namespace proof of each of `rollups` (the block's non-empty
    /// batches), to store beside the block record: derived data, written
    /// after the app hash.
    pub(crate) fn proof_records(
        &self,
        height: u64,
        rollups: impl Iterator<Item = RollupId>,
    ) -> Vec<(Cf, Vec<u8>, Vec<u8>)> {
        let Some(tree) = &self.tree else {
            return Vec::new();
        };
        rollups
            .map(|rollup_id| {
                let proof = pb::NamespaceProof::from(&tree.prove_namespace(rollup_id));
                (
                    Cf::Blocks,
                    keys::batch_proof(rollup_id, height),
                    proof.encode_to_vec(),
                )
            })
            .collect()
    }
}

/// Splits each transaction's fee over the rollups it writes to, by data bytes
/// (remainder to the lowest rollup id). `txs`: (fee, [(rollup, data bytes)]).
pub(crate) fn batch_fees(txs: &[(u64, Vec<(RollupId, u64)>)]) -> BTreeMap<RollupId, u64> {
    let mut fees: BTreeMap<RollupId, u64> = BTreeMap::new();
    for (fee, items) in txs {
        let mut bytes: BTreeMap<RollupId, u64> = BTreeMap::new();
        for (rollup, len) in items {
            let entry = bytes.entry(*rollup).or_insert(0);
            *entry = entry.saturating_add(*len);
        }
        let total: u128 = bytes.values().map(|b| u128::from(*b)).sum();
        if bytes.is_empty() {
            continue;
        }
        let mut given: u64 = 0;
        let mut shares: Vec<(RollupId, u64)> = Vec::new();
        for (rollup, b) in &bytes {
            let share = u128::from(*fee)
                .checked_mul(u128::from(*b))
                .and_then(|v| v.checked_div(total))
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0);
            given = given.saturating_add(share);
            shares.push((*rollup, share));
        }
        if let Some(first) = shares.first_mut() {
            first.1 = first.1.saturating_add(fee.saturating_sub(given));
        }
        for (rollup, share) in shares {
            let entry = fees.entry(rollup).or_insert(0);
            *entry = entry.saturating_add(share);
        }
    }
    fees
}

/// Recent blocks' trees, for proofs of absence: a stream of a quiet rollup
/// asks for every height near the tip, and every stream asks for the same
/// few heights. Bounded; a miss rebuilds the tree from the block record.
#[derive(Default)]
pub(crate) struct TreeCache {
    trees: Mutex<BTreeMap<u64, Arc<NamespacedMerkleTree>>>,
}

/// Most trees kept.
const TREE_CACHE_SIZE: usize = 32;

impl TreeCache {
    fn tree(
        &self,
        height: u64,
        record: &pb::BlockRecord,
    ) -> Result<Arc<NamespacedMerkleTree>, ReadError> {
        if let Some(tree) = self.trees.lock().ok().and_then(|t| t.get(&height).cloned()) {
            return Ok(tree);
        }
        let inconsistent = |detail: String| ReadError::Inconsistent { height, detail };
        let leaves = record
            .leaves
            .iter()
            .map(NmtNode::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| inconsistent(e.to_string()))?;
        let tree = Arc::new(
            NamespacedMerkleTree::from_leaves(leaves).map_err(|e| inconsistent(e.to_string()))?,
        );
        if let Ok(mut trees) = self.trees.lock() {
            if trees.len() >= TREE_CACHE_SIZE {
                trees.pop_first();
            }
            trees.insert(height, tree.clone());
        }
        Ok(tree)
    }
}

/// The record of committed block `height`.
pub(crate) fn block(
    state: &impl StateRead,
    last_height: u64,
    height: u64,
) -> Result<pb::BlockRecord, ReadError> {
    if height == 0 {
        return Err(ReadError::HeightZero);
    }
    if height > last_height {
        return Err(ReadError::FutureHeight {
            requested: height,
            last: last_height,
        });
    }
    let retained = retained_height(state)?;
    if height < retained {
        return Err(ReadError::Pruned { height, retained });
    }
    state
        .message(Cf::Blocks, &keys::block(height), "block record")?
        .ok_or(ReadError::MissingBlock(height))
}

/// The first height whose block data this node keeps (1: nothing pruned).
pub(crate) fn retained_height(state: &impl StateRead) -> Result<u64, StoreError> {
    Ok(state
        .get(Cf::Blocks, keys::LOCAL_RETAIN_HEIGHT)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(1, u64::from_be_bytes))
}

/// The items of `rollup_id`'s batch at `height` as stored (no proof).
pub(crate) fn batch_items(
    state: &impl StateRead,
    rollup_id: RollupId,
    height: u64,
) -> Result<Vec<pb::BatchItem>, StoreError> {
    Ok(state
        .message::<pb::Batch>(Cf::Batches, &keys::batch(rollup_id, height), "batch")?
        .map(|b| b.items)
        .unwrap_or_default())
}

/// The batch of `rollup_id` at committed `height` (possibly empty) with the
/// proof of its inclusion and completeness against the block's NMT root:
/// the proof stored at FinalizeBlock for a non-empty batch, one from the
/// block's tree (`trees`) for an empty one.
pub(crate) fn batch(
    state: &impl StateRead,
    trees: &TreeCache,
    last_height: u64,
    rollup_id: RollupId,
    height: u64,
) -> Result<pb::Batch, ReadError> {
    let record = block(state, last_height, height)?;
    let items = batch_items(state, rollup_id, height)?;
    let stored = if items.is_empty() {
        None
    } else {
        state
            .get(Cf::Blocks, &keys::batch_proof(rollup_id, height))?
            .map(|b| decode::<pb::NamespaceProof>("batch proof", &b))
            .transpose()?
    };
    let (proof, root) = match (stored, record.nmt_root.clone()) {
        (Some(proof), Some(root)) => (proof, root),
        _ => {
            let tree = trees.tree(height, &record)?;
            (
                pb::NamespaceProof::from(&tree.prove_namespace(rollup_id)),
                pb::NmtRoot::from(&tree.root()),
            )
        }
    };
    Ok(pb::Batch {
        rollup_id,
        height,
        items,
        proof: Some(proof),
        root: Some(root),
        proven: None,
    })
}

/// Heights at or above `from` where `rollup_id` has a non-empty batch,
/// at most `limit` of them.
pub(crate) fn batch_heights(
    state: &impl StateRead,
    rollup_id: RollupId,
    from: u64,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    let prefix = rollup_id.to_be_bytes();
    let entries =
        state
            .store()
            .scan_prefix(Cf::Batches, &prefix, &keys::batch(rollup_id, from), limit)?;
    Ok(entries
        .iter()
        .filter_map(|(k, _)| k.get(8..16).and_then(|h| <[u8; 8]>::try_from(h).ok()))
        .map(u64::from_be_bytes)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fees_split_by_bytes() {
        let fees = batch_fees(&[(100, vec![(2, 30), (1, 10)]), (7, vec![(3, 1)])]);
        // 100 * 10/40 = 25 to rollup 1, 100 * 30/40 = 75 to rollup 2.
        assert_eq!(fees, BTreeMap::from([(1, 25), (2, 75), (3, 7)]));
        let fees = batch_fees(&[(10, vec![(1, 1), (2, 1), (3, 1)])]);
        assert_eq!(fees.values().sum::<u64>(), 10);
        assert_eq!(fees[&1], 4);
    }

    proptest! {
        #[test]
        fn fee_split_conserves_fees(txs in proptest::collection::vec(
            (any::<u32>(), proptest::collection::vec((1u64..5, 0u64..1000), 1..4)), 0..20)) {
            let txs: Vec<(u64, Vec<(RollupId, u64)>)> =
                txs.into_iter().map(|(f, i)| (u64::from(f), i)).collect();
            let total: u64 = txs.iter().map(|(f, _)| *f).sum();
            prop_assert_eq!(batch_fees(&txs).values().sum::<u64>(), total);
        }
    }
}
