//! Pruning: how many blocks of data this node keeps, a local choice outside
//! the app hash. After each Commit the block records, stored namespace
//! proofs and rollup batches below the retained height are deleted, and
//! Commit's `retain_height` lets CometBFT prune its block store alike. A
//! height still inside an unproven span is never pruned (its prover needs
//! the items). Reads below the retained height fail with their own error
//! (`QueryError::Pruned`, ABCI query code 2, gRPC OUT_OF_RANGE).

use std::sync::Arc;

use seqnet_proto::RollupId;

use crate::keys;
use crate::rollups::batches::retained_height;
use crate::state::Committed;
use crate::store::{Cf, Store, StoreError};

/// The first height to keep after committing `height`: the last
/// `retention` blocks, and every height from the oldest unproven span on.
/// 0 (retention 0): keep everything, tell CometBFT nothing.
pub(crate) fn retain_height(height: u64, retention: u64, oldest_unproven: Option<u64>) -> u64 {
    if retention == 0 {
        return 0;
    }
    let by_count = height.saturating_sub(retention).saturating_add(1);
    match oldest_unproven {
        Some(from) => by_count.min(from),
        None => by_count,
    }
    .max(1)
}

/// Deletes block data of heights `[retained_height, retain)` of every rollup
/// in `rollups` and records `retain`, in one write (a crash keeps both or
/// neither; the next Commit redoes it).
pub(crate) fn prune(
    store: &Arc<Store>,
    rollups: &[RollupId],
    retain: u64,
) -> Result<(), StoreError> {
    let from = retained_height(&Committed::new(store.clone()))?;
    if retain <= from {
        return Ok(());
    }
    let mut ranges = vec![(Cf::Blocks, keys::block(from), keys::block(retain))];
    for &rollup in rollups {
        ranges.push((
            Cf::Blocks,
            keys::batch_proof(rollup, from),
            keys::batch_proof(rollup, retain),
        ));
        ranges.push((
            Cf::Batches,
            keys::batch(rollup, from),
            keys::batch(rollup, retain),
        ));
    }
    store.delete_ranges(
        &ranges,
        (Cf::Blocks, keys::LOCAL_RETAIN_HEIGHT, &retain.to_be_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_blocks_and_every_unproven_span() {
        assert_eq!(retain_height(100, 0, None), 0, "0 keeps everything");
        assert_eq!(retain_height(100, 10, None), 91);
        assert_eq!(retain_height(5, 10, None), 1);
        assert_eq!(retain_height(100, 10, Some(40)), 40);
        assert_eq!(retain_height(100, 10, Some(95)), 91);
        assert_eq!(retain_height(u64::MAX, 1, None), u64::MAX);
    }

    #[test]
    fn prunes_the_range_once_and_records_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("open"));
        let retained =
            |store: &Arc<Store>| retained_height(&Committed::new(store.clone())).expect("read");
        let mut set = crate::store::WriteSet::default();
        for h in 1..=10u64 {
            set.put(Cf::Blocks, keys::block(h), vec![1]);
            set.put(Cf::Blocks, keys::batch_proof(7, h), vec![2]);
            set.put(Cf::Batches, keys::batch(7, h), vec![3]);
            set.put(Cf::Batches, keys::batch(8, h), vec![4]);
        }
        store.commit(&set).expect("commit");
        prune(&store, &[7, 8], 6).expect("prune");
        assert_eq!(retained(&store), 6);
        for h in 1..=10u64 {
            let kept = h >= 6;
            assert_eq!(
                store.get(Cf::Blocks, &keys::block(h)).unwrap().is_some(),
                kept
            );
            assert_eq!(
                store
                    .get(Cf::Blocks, &keys::batch_proof(7, h))
                    .unwrap()
                    .is_some(),
                kept
            );
            assert_eq!(
                store
                    .get(Cf::Batches, &keys::batch(7, h))
                    .unwrap()
                    .is_some(),
                kept
            );
            assert_eq!(
                store
                    .get(Cf::Batches, &keys::batch(8, h))
                    .unwrap()
                    .is_some(),
                kept
            );
        }
        // Lower or equal: nothing to do.
        prune(&store, &[7, 8], 3).expect("prune");
        assert_eq!(retained(&store), 6);
    }
}
