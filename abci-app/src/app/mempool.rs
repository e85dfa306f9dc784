//! The mempool connection: CheckTx on an overlay of committed state (reset
//! at each Commit, rebuilt by CometBFT's recheck), the room limit, and the
//! transactions this node has held long enough to list in its vote
//! extension (inclusion lists).

use std::collections::BTreeMap;

use seqnet_proto::Code;
use tendermint_proto::v0_38::abci;

use super::execute::execute;
use super::{lock, SeqnetApp};
use crate::params::ChainParams;
use crate::state::StateDelta;
use crate::tx::{back_pressure_exempt, check_stateless, ExecError};

/// Most mempool transactions tracked for inclusion lists (and the largest
/// [`SeqnetApp::set_mempool_limit`]).
pub const MAX_TRACKED_TXS: usize = 20_000;
/// Default [`SeqnetApp::set_mempool_limit`]: 10 % under CometBFT's default
/// `mempool.size` (5,000).
pub const DEFAULT_MEMPOOL_LIMIT: usize = 4_500;

/// A transaction this node's mempool holds, for inclusion lists.
pub(super) struct Waiting {
    first_seen: u64,
    /// Commit generation of the last CheckTx/Recheck that passed.
    generation: u64,
    bytes: Vec<u8>,
}

pub(super) struct MempoolState {
    pub chain_id: String,
    pub params: ChainParams,
    pub delta: StateDelta,
    pub height: u64,
    pub generation: u64,
    pub waiting: BTreeMap<[u8; 32], Waiting>,
    /// New transactions are refused while `waiting` holds this many.
    pub limit: usize,
}

impl SeqnetApp {
    /// CheckTx and its recheck.
    pub(super) fn mempool_check(&self, request: &abci::RequestCheckTx) -> abci::ResponseCheckTx {
        let recheck = request.r#type == abci::CheckTxType::Recheck as i32;
        let mut mempool = lock(&self.shared.mempool);
        let MempoolState {
            chain_id,
            params,
            delta,
            height,
            generation,
            waiting,
            limit,
        } = &mut *mempool;
        self.shared.counters.decoded(1);
        let stateless = check_stateless(&request.tx, params, chain_id, &self.shared.signatures);
        // Proof and prover-set transactions are never refused for room: the
        // gap to CometBFT's own limit is theirs, so a mempool full of rollup
        // data held back by back-pressure cannot keep out the proofs that
        // would end it.
        let room_needed = stateless.as_ref().is_ok_and(|tx| !back_pressure_exempt(tx));
        if !recheck && room_needed && waiting.len() >= *limit {
            let held = waiting.len();
            let limit = *limit;
            drop(mempool);
            self.shared.observer.check_tx(Code::MempoolFull, recheck);
            return abci::ResponseCheckTx {
                code: Code::MempoolFull.as_u32(),
                log: format!(
                    "{}: this node's mempool holds {held} transactions (limit {limit}); retry later",
                    Code::MempoolFull.name()
                ),
                codespace: "seqnet".into(),
                ..Default::default()
            };
        }
        let result = stateless.map_err(ExecError::from).and_then(|tx| {
            self.shared.counters.executed(1);
            // The height only feeds rollup statistics and deadlines, which
            // the mempool overlay never commits.
            execute(delta, params, &self.shared.verifier, &tx, *height).map(|_| tx)
        });
        match &result {
            Ok(tx) => {
                if let Some(entry) = waiting.get_mut(&tx.hash()) {
                    entry.generation = *generation;
                } else if waiting.len() < MAX_TRACKED_TXS {
                    waiting.insert(
                        tx.hash(),
                        Waiting {
                            first_seen: *height,
                            generation: *generation,
                            bytes: request.tx.to_vec(),
                        },
                    );
                }
            }
            Err(_) => {
                waiting.remove(&seqnet_proto::sha256(&request.tx));
            }
        }
        drop(mempool);
        match result {
            Ok(tx) => {
                self.shared.observer.check_tx(Code::Ok, recheck);
                abci::ResponseCheckTx {
                    code: Code::Ok.as_u32(),
                    data: tx.hash().to_vec().into(),
                    gas_wanted: 1,
                    ..Default::default()
                }
            }
            Err(error) => {
                let code = error.code();
                self.shared.observer.check_tx(code, recheck);
                tracing::debug!(%error, %code, recheck, "CheckTx rejected");
                abci::ResponseCheckTx {
                    code: code.as_u32(),
                    log: format!("{}: {error}", code.name()),
                    codespace: "seqnet".into(),
                    ..Default::default()
                }
            }
        }
    }

    /// After Commit: the overlay restarts from the new state, the committed
    /// transactions leave the waiting list, and so does whatever was not
    /// rechecked since the last commit.
    pub(super) fn mempool_committed(&self, height: u64, committed: &[[u8; 32]]) {
        // CometBFT holds the mempool lock across Commit and the recheck that
        // follows: reset the overlay so the recheck rebuilds it on new state.
        let mut mempool = lock(&self.shared.mempool);
        mempool.delta.reset();
        mempool.height = height;
        for hash in committed {
            mempool.waiting.remove(hash);
        }
        let generation = mempool.generation;
        mempool.waiting.retain(|_, w| w.generation >= generation);
        mempool.generation = mempool.generation.saturating_add(1);
    }

    /// Transactions this node's mempool has held for at least the waiting
    /// threshold and that passed their last recheck, within the list bounds.
    pub(super) fn inclusion_list(&self, height: u64) -> Vec<Vec<u8>> {
        let mempool = lock(&self.shared.mempool);
        let params = &mempool.params;
        let mut candidates: Vec<(&u64, &[u8; 32], &Vec<u8>)> = mempool
            .waiting
            .iter()
            .filter(|(_, w)| w.first_seen.saturating_add(params.inclusion_wait_blocks) <= height)
            .map(|(hash, w)| (&w.first_seen, hash, &w.bytes))
            .collect();
        candidates.sort();
        let mut list = Vec::new();
        let mut bytes: u64 = 0;
        for (_, _, tx) in candidates {
            if list.len() as u64 >= params.max_inclusion_list_txs {
                break;
            }
            if bytes.saturating_add(tx.len() as u64) > params.max_inclusion_list_bytes {
                continue;
            }
            bytes = bytes.saturating_add(tx.len() as u64);
            list.push(tx.clone());
        }
        list
    }
}
