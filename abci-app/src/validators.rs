//! Validators: the set the app knows (from `InitChain`) with their voting
//! power, which forced inclusion weighs inclusion lists with, and the height
//! vote extensions start at. Validator staking, evidence and set changes
//! will live here; today the set is fixed at genesis.

use prost::Message;
use seqnet_proto::pb;

use crate::keys;
use crate::state::{StateRead, StateWrite};
use crate::store::StoreError;

/// Typed reads of the validator set.
pub(crate) trait ValidatorsState: StateRead {
    fn validators(&self) -> Result<pb::ValidatorSet, StoreError>
    where
        Self: Sized,
    {
        self.meta_message(keys::META_VALIDATORS, "validators")
    }

    /// `abci.vote_extensions_enable_height` from genesis (0: disabled).
    fn vote_extensions_height(&self) -> Result<u64, StoreError> {
        self.meta_u64(keys::META_VOTE_EXTENSIONS_HEIGHT)
    }
}

impl<S: StateRead> ValidatorsState for S {}

/// Typed writes of the validator set (genesis).
pub(crate) trait ValidatorsWrite: StateWrite {
    fn put_validators(&mut self, set: &pb::ValidatorSet) {
        self.put_meta(keys::META_VALIDATORS, set.encode_to_vec());
    }

    fn put_vote_extensions_height(&mut self, height: u64) {
        self.put_meta_u64(keys::META_VOTE_EXTENSIONS_HEIGHT, height);
    }
}

impl<S: StateWrite> ValidatorsWrite for S {}

/// The total voting power of `set` (negative powers count as 0).
pub(crate) fn total_power(set: &pb::ValidatorSet) -> i64 {
    set.validators
        .iter()
        .map(|v| v.power.max(0))
        .fold(0, i64::saturating_add)
}
