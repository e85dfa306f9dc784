//! Every storage key in one place, so the layout is reviewed as a whole.

use seqnet_proto::{Address, RollupId};

pub const META_CHAIN_ID: &[u8] = b"chain_id";
pub const META_PARAMS: &[u8] = b"params";
pub const META_LAST_HEIGHT: &[u8] = b"last_height";
pub const META_LAST_APP_HASH: &[u8] = b"last_app_hash";
/// u64 BE: the state tree's last committed version (the last height;
/// genesis is the initial height less one). Outside the tree, like the two above.
pub const META_TREE_VERSION: &[u8] = b"tree_version";
/// The tree nodes the last committed block replaced, deleted with the next
/// block's tree writes (`u16 BE length || node key`, repeated). Outside the
/// tree.
pub const META_STALE_TREE_NODES: &[u8] = b"stale_tree_nodes";
pub const META_FEE_POOL: &[u8] = b"fee_pool";
pub const META_FORCED_QUEUE: &[u8] = b"forced_queue";
/// `pb::ValidatorSet`: the set that signed the last committed height.
pub const META_VALIDATORS: &[u8] = b"validators";
/// `pb::ValidatorRegistry`: every validator record, by operator.
pub const META_VALIDATOR_REGISTRY: &[u8] = b"validator_registry";
/// `pb::ValidatorSchedule`: sets decided and not yet in effect.
pub const META_VALIDATOR_SCHEDULE: &[u8] = b"validator_schedule";
pub const META_VOTE_EXTENSIONS_HEIGHT: &[u8] = b"vote_extensions_enable_height";
/// `pb::ProverRegistry`: every prover record, by address.
pub const META_PROVERS: &[u8] = b"provers";
/// `pb::ProverSet`: the current epoch's active set and seed.
pub const META_PROVER_SET: &[u8] = b"prover_set";
/// `pb::ProofQueue`: open proof jobs of every rollup.
pub const META_PROOF_QUEUE: &[u8] = b"proof_queue";
/// u64 BE: highest height whose jobs (and all below) are proven.
pub const META_PROVEN_HEIGHT: &[u8] = b"proven_height";

/// u64 BE in `Cf::Blocks`: the first height whose block data this node still
/// keeps (a local choice, outside the app hash; absent: 1).
pub const LOCAL_RETAIN_HEIGHT: &[u8] = b"retain_height";

pub fn account(address: &Address) -> Vec<u8> {
    address.0.to_vec()
}

pub fn rollup(id: RollupId) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

pub fn batch(id: RollupId, height: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// Forced request by id (`r` || id), latest status.
pub fn forced_request(id: u64) -> Vec<u8> {
    let mut key = b"r".to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Forced request id by inner transaction hash (`h` || hash).
pub fn forced_by_hash(hash: &[u8; 32]) -> Vec<u8> {
    let mut key = b"h".to_vec();
    key.extend_from_slice(hash);
    key
}

/// Proven job by (rollup, first height of its span) in `Cf::Proofs`
/// (`j` || rollup || from_height): keys sort by span, so the span covering a
/// height is the last key at or before (rollup, height).
pub fn proof_job(id: RollupId, from_height: u64) -> Vec<u8> {
    let mut key = b"j".to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(&from_height.to_be_bytes());
    key
}

/// A rollup's last proven height and root in `Cf::Proofs` (`r` || rollup).
pub fn rollup_proving(id: RollupId) -> Vec<u8> {
    let mut key = b"r".to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// A height's NMT root commitment in `Cf::Roots`.
pub fn nmt_root(height: u64) -> Vec<u8> {
    height.to_be_bytes().to_vec()
}

pub fn block(height: u64) -> Vec<u8> {
    height.to_be_bytes().to_vec()
}

/// The stored namespace proof of a non-empty batch, in `Cf::Blocks` (`p` ||
/// rollup || height): derived from the block's tree at FinalizeBlock and
/// written beside the block record, outside the app hash.
pub fn batch_proof(id: RollupId, height: u64) -> Vec<u8> {
    let mut key = b"p".to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(&height.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change here changes the on-disk layout: it needs a migration.
    #[test]
    fn layout_is_stable() {
        assert_eq!(hex::encode(batch(1, 2)), "00000000000000010000000000000002");
        assert_eq!(hex::encode(rollup(258)), "0000000000000102");
        assert_eq!(hex::encode(block(3)), "0000000000000003");
        assert_eq!(account(&Address([7; 32])), vec![7; 32]);
        assert_eq!(hex::encode(forced_request(1)), "720000000000000001");
        assert_eq!(forced_by_hash(&[1; 32])[0], b'h');
        assert_eq!(
            hex::encode(proof_job(1, 2)),
            "6a00000000000000010000000000000002"
        );
        assert_eq!(hex::encode(rollup_proving(3)), "720000000000000003");
        assert_eq!(
            hex::encode(batch_proof(1, 2)),
            "7000000000000000010000000000000002"
        );
    }
}
