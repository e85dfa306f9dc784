//! Building proposals (PrepareProposal) and checking them (ProcessProposal).
//!
//! The proposer keeps the mempool's order, drops what no longer executes, and
//! caps each rollup at `rollup_block_share_bps` of the block in a first pass so
//! one busy rollup cannot starve the others; a second pass fills what is left.
//! A signer whose transaction was deferred has its later transactions deferred
//! too, so nonces stay in order. Validators re-execute every transaction of a
//! proposal and reject it if any fails: an honest proposer never includes one.

use std::collections::{BTreeMap, BTreeSet};

use seqnet_proto::{Action, Address, RollupId, Transaction};

use crate::execute::{check_stateless, execute, ExecError, SignatureCache};
use crate::params::ChainParams;
use crate::state::StateDelta;

/// Why a proposal was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error("tx {index} ({hash}) is invalid: {source}")]
    InvalidTx {
        index: usize,
        hash: String,
        source: ExecError,
    },
}

/// A predicate that drops matching transactions from this node's proposals.
/// Only the testnet fault options install one.
pub type ProposalFilter = dyn Fn(&Transaction) -> bool + Send + Sync;

pub struct Builder<'a> {
    pub params: &'a ChainParams,
    pub chain_id: &'a str,
    pub signatures: &'a SignatureCache,
    pub height: u64,
    pub censor: Option<&'a ProposalFilter>,
}

impl Builder<'_> {
    /// Selects, in order, the transactions of the next block.
    pub fn prepare(&self, state: &mut StateDelta, txs: &[Vec<u8>], max_bytes: u64) -> Vec<Vec<u8>> {
        let share = u128::from(max_bytes) * u128::from(self.params.rollup_block_share_bps) / 10_000;
        let share = u64::try_from(share).unwrap_or(u64::MAX);
        let mut used: u64 = 0;
        let mut per_rollup: BTreeMap<RollupId, u64> = BTreeMap::new();
        let mut deferred: Vec<(&Vec<u8>, Transaction)> = Vec::new();
        let mut deferred_signers: BTreeSet<Address> = BTreeSet::new();
        let mut selected = Vec::new();

        for bytes in txs {
            let Ok(tx) = check_stateless(bytes, self.params, self.chain_id, self.signatures) else {
                continue;
            };
            if self.censor.is_some_and(|censor| censor(&tx)) {
                continue;
            }
            let size = bytes.len() as u64;
            if deferred_signers.contains(&tx.signer) {
                deferred.push((bytes, tx));
                continue;
            }
            let rollups = rollups_of(&tx);
            let over_share = rollups
                .iter()
                .any(|r| per_rollup.get(r).copied().unwrap_or(0).saturating_add(size) > share);
            if over_share || used.saturating_add(size) > max_bytes {
                deferred_signers.insert(tx.signer);
                deferred.push((bytes, tx));
                continue;
            }
            if execute(state, self.params, &tx, self.height).is_ok() {
                used = used.saturating_add(size);
                for r in rollups {
                    *per_rollup.entry(r).or_insert(0) += size;
                }
                selected.push(bytes.clone());
            }
        }
        // Second pass: fill the remaining space in mempool order.
        for (bytes, tx) in deferred {
            let size = bytes.len() as u64;
            if used.saturating_add(size) > max_bytes {
                continue;
            }
            if execute(state, self.params, &tx, self.height).is_ok() {
                used = used.saturating_add(size);
                selected.push(bytes.clone());
            }
        }
        selected
    }

    /// Accepts a proposal only if every transaction executes, in order.
    pub fn process(&self, state: &mut StateDelta, txs: &[Vec<u8>]) -> Result<(), ProposalError> {
        for (index, bytes) in txs.iter().enumerate() {
            let invalid = |source: ExecError| ProposalError::InvalidTx {
                index,
                hash: hex::encode(seqnet_proto::sha256(bytes)),
                source,
            };
            let tx = check_stateless(bytes, self.params, self.chain_id, self.signatures)
                .map_err(|e| invalid(e.into()))?;
            execute(state, self.params, &tx, self.height).map_err(invalid)?;
        }
        Ok(())
    }
}

fn rollups_of(tx: &Transaction) -> BTreeSet<RollupId> {
    tx.body
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::RollupData { rollup_id, .. } => Some(*rollup_id),
            _ => None,
        })
        .collect()
}
