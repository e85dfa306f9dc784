//! FinalizeBlock and Commit: the block's run, the block's batches and tree,
//! the provers' block end, the app hash (all finished in the background
//! after an accepted ProcessProposal of the same block, while the validators
//! vote, or done here), and the one synced write of everything at Commit.

use prost::Message;
use seqnet_proto::{pb, Code};
use tendermint_proto::v0_38::abci;

use super::block::{BlockRun, TxResult};
use super::{lock, to_abci_event, BlockSummary, ConsensusState, SeqnetApp};
use crate::chain::ChainWrite;
use crate::forced::{opened_event, source_name, ForcedState};
use crate::keys;
use crate::params::ChainParams;
use crate::rollups::batches::BlockBatches;
use crate::state::StateDelta;
use crate::store::{Cf, StoreError, WriteSet};
use crate::tx::{Event, TxOutcome};
use crate::validators::{BlockVotes, Misbehaviour};
use tendermint_proto::v0_38::crypto::public_key::Sum;
use tendermint_proto::v0_38::crypto::PublicKey;

/// A finalized block waiting for Commit.
pub(super) struct PendingBlock {
    pub height: u64,
    /// The block's hash (empty when CometBFT gave none).
    pub hash: Vec<u8>,
    pub writes: WriteSet,
    pub summary: BlockSummary,
    /// The validator set that signs this height (the app's view after it).
    pub validators: pb::ValidatorSet,
}

/// A block finished: FinalizeBlock's answer and the writes for Commit.
pub(super) type Finished = Result<(abci::ResponseFinalizeBlock, PendingBlock), StoreError>;

/// An accepted ProcessProposal, finished in the background for FinalizeBlock
/// of the same block: results, the provers' block end, the state tree and
/// the app hash are computed while the validators vote, instead of after.
/// Everything it reads (the committed state, the chain's parameters, the
/// last app hash) changes only at Commit, which comes after that
/// FinalizeBlock: the answer is the one FinalizeBlock would compute. The
/// block's new tree nodes are written ahead too, so Commit's synced write
/// is smaller ([`crate::store::Store::prewrite_nodes`]).
pub(super) struct Processed {
    pub hash: Vec<u8>,
    pub height: u64,
    pub finished: std::thread::JoinHandle<Finished>,
}

/// A block as CometBFT hands it over: its transactions, and what it says
/// about the validators (evidence, the last commit's votes).
pub(super) struct BlockInput {
    pub txs: Vec<Vec<u8>>,
    pub votes: BlockVotes,
}

/// CometBFT's `BlockIDFlag`s of a vote for the block and for nil (a live
/// validator either way).
const BLOCK_ID_FLAG_COMMIT: i32 = 2;
const BLOCK_ID_FLAG_NIL: i32 = 3;

/// The block's misbehaviour evidence and its last commit's votes, as the
/// validators' block end reads them.
pub(super) fn block_votes(
    misbehavior: &[abci::Misbehavior],
    last_commit: Option<&abci::CommitInfo>,
) -> BlockVotes {
    BlockVotes {
        misbehaviour: misbehavior
            .iter()
            .filter_map(|m| {
                let kind = match abci::MisbehaviorType::try_from(m.r#type) {
                    Ok(abci::MisbehaviorType::DuplicateVote) => "duplicate_vote",
                    Ok(abci::MisbehaviorType::LightClientAttack) => "light_client_attack",
                    _ => return None,
                };
                Some(Misbehaviour {
                    kind,
                    address: m.validator.as_ref()?.address.to_vec(),
                    height: super::to_u64(m.height),
                })
            })
            .collect(),
        last_commit: last_commit
            .map(|c| {
                c.votes
                    .iter()
                    .filter_map(|v| {
                        let signed = v.block_id_flag == BLOCK_ID_FLAG_COMMIT
                            || v.block_id_flag == BLOCK_ID_FLAG_NIL;
                        Some((v.validator.as_ref()?.address.to_vec(), signed))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The validator update CometBFT takes for `validator` (power 0: leaves).
fn validator_update(validator: &pb::Validator) -> abci::ValidatorUpdate {
    abci::ValidatorUpdate {
        pub_key: Some(PublicKey {
            sum: Some(Sum::Ed25519(validator.public_key.clone())),
        }),
        power: validator.power,
    }
}

/// Warns when CometBFT's voters of the last height are not the set the app
/// holds for it: the two views must never part (see `crate::validators`).
fn check_voters(height: u64, set: &pb::ValidatorSet, votes: &BlockVotes) {
    if height <= 1 || votes.last_commit.is_empty() {
        return;
    }
    let theirs: std::collections::BTreeSet<&[u8]> = votes
        .last_commit
        .iter()
        .map(|(a, _)| a.as_slice())
        .collect();
    let ours: std::collections::BTreeSet<&[u8]> = set
        .validators
        .iter()
        .map(|v| v.address.as_slice())
        .collect();
    if theirs != ours {
        tracing::error!(
            height,
            cometbft = theirs.len(),
            app = ours.len(),
            "the last commit's validators differ from the app's set for that height"
        );
    }
}

/// The ABCI result of one executed transaction.
fn executed(outcome: TxOutcome) -> abci::ExecTxResult {
    abci::ExecTxResult {
        code: Code::Ok.as_u32(),
        events: outcome.events.into_iter().map(to_abci_event).collect(),
        ..Default::default()
    }
}

impl SeqnetApp {
    /// FinalizeBlock (see the module docs).
    pub(super) fn finalize(
        &self,
        request: &abci::RequestFinalizeBlock,
    ) -> abci::ResponseFinalizeBlock {
        let height = super::to_u64(request.height);
        let span = tracing::info_span!("finalize_block", height);
        let _guard = span.enter();
        let mut consensus = lock(&self.shared.consensus);
        if height != consensus.last_height.saturating_add(1) {
            tracing::error!(
                last = consensus.last_height,
                "FinalizeBlock for an unexpected height; executing it anyway"
            );
        }
        let input = BlockInput {
            txs: request.txs.iter().map(|t| t.to_vec()).collect(),
            votes: block_votes(&request.misbehavior, request.decided_last_commit.as_ref()),
        };
        check_voters(height, &consensus.validators, &input.votes);
        let finished_early = consensus
            .processed
            .take()
            .filter(|p| p.height == height && !p.hash.is_empty() && p.hash == request.hash)
            .and_then(|processed| match processed.finished.join() {
                Ok(finished) => {
                    self.shared.counters.reused_runs();
                    Some(finished)
                }
                // The same work runs here and fails (or not) the same way.
                Err(_) => {
                    tracing::error!("the block's background finish panicked; running it here");
                    None
                }
            });
        let finished = match finished_early {
            Some(finished) => finished,
            None => {
                let mut delta = StateDelta::new(self.shared.store.clone());
                let run = match self
                    .context(&consensus, height)
                    .run(&mut delta, &input.txs, false)
                {
                    Ok(run) => {
                        self.shared.counters.block_runs();
                        run
                    }
                    // Without storage there is no honest way to answer.
                    Err(error) => panic!("cannot execute block {height}: {error}"),
                };
                self.finish(
                    &consensus.params,
                    &consensus.last_app_hash,
                    height,
                    &input,
                    &mut delta,
                    run,
                )
            }
        };
        match finished {
            Ok((response, mut pending)) => {
                pending.hash = request.hash.to_vec();
                consensus.pending = Some(pending);
                response
            }
            // Storage, or an overflow no honest chain reaches: every node fails alike.
            Err(error) => panic!("cannot finish block {height}: {error}"),
        }
    }

    /// Finishes an accepted proposal on a thread of its own (see
    /// [`Processed`]); `None` when no thread could be started (FinalizeBlock
    /// then runs the block itself).
    pub(super) fn finish_in_background(
        &self,
        consensus: &ConsensusState,
        height: u64,
        hash: Vec<u8>,
        input: BlockInput,
        mut delta: StateDelta,
        run: BlockRun,
    ) -> Option<std::thread::JoinHandle<Finished>> {
        let app = self.clone();
        let params = consensus.params.clone();
        let last_app_hash = consensus.last_app_hash.clone();
        std::thread::Builder::new()
            .name(format!("finish-{height}"))
            .spawn(move || {
                let span = tracing::info_span!("finish_block", height);
                let _guard = span.enter();
                let finished = app.finish(&params, &last_app_hash, height, &input, &mut delta, run);
                if let Ok((_, pending)) = &finished {
                    // Commit writes whatever did not get here.
                    match app
                        .shared
                        .store
                        .prewrite_nodes(height, &hash, &pending.writes)
                    {
                        Ok(written) => tracing::debug!(written, "tree nodes written ahead"),
                        Err(error) => tracing::warn!(%error, "tree nodes not written ahead"),
                    }
                }
                finished
            })
            .map_err(|e| tracing::warn!("no thread to finish block {height} early: {e}"))
            .ok()
    }

    /// Everything after the transactions ran: results, batches, the provers'
    /// block end, the tree, the app hash and the writes for Commit.
    fn finish(
        &self,
        params: &ChainParams,
        last_app_hash: &[u8],
        height: u64,
        input: &BlockInput,
        delta: &mut StateDelta,
        run: BlockRun,
    ) -> Finished {
        let txs = &input.txs;
        let mut summary = BlockSummary {
            height,
            tx_count: u64::try_from(txs.len()).unwrap_or(u64::MAX),
            tx_hashes: txs.iter().map(|t| seqnet_proto::sha256(t)).collect(),
            ..BlockSummary::default()
        };
        let (tx_results, batches) = tx_results(txs, run.results, &mut summary);
        let mut block_events =
            forced_events(&run.forced_included, &run.forced_failed, &mut summary);
        let proving =
            crate::provers::end_block(delta, params, height, last_app_hash, &batches.with_fees())?;
        summary.jobs_opened = proving.jobs_opened;
        summary.jobs_reassigned = proving.jobs_reassigned;
        summary.jobs_proven = proving.jobs_proven;
        summary.transitions_dropped = proving.transitions_dropped;
        summary.jobs_open = proving.jobs_open;
        summary.jobs_pending = proving.jobs_pending;
        summary.jobs_late = proving.jobs_late;
        summary.proven_height = proving.proven_height;
        block_events.extend(proving.events);
        let validators = crate::validators::end_block(delta, params, height, &input.votes)?;
        summary.validators_jailed = validators.jailed;
        summary.validators_slashed = validators.slashed;
        summary.validators = u64::try_from(validators.set.validators.len()).unwrap_or(u64::MAX);
        summary.validator_power =
            u64::try_from(crate::validators::total_power(&validators.set)).unwrap_or(0);
        block_events.extend(validators.events);
        summary.forced_pending =
            u64::try_from(delta.forced_queue()?.pending.len()).unwrap_or(u64::MAX);

        let tree = batches.store(delta, height);
        let root = tree.root();
        // The app hash is the state tree's root over every record after
        // this block, the height's NMT root among them.
        let (app_hash, tree_writes) = self.shared.store.tree_update(height, delta.writes())?;
        let record = pb::BlockRecord {
            height,
            nmt_root: Some((&root).into()),
            app_hash: app_hash.to_vec(),
            tx_count: summary.tx_count,
            leaves: tree.leaves.iter().map(pb::NmtNode::from).collect(),
        };
        let mut writes =
            std::mem::replace(delta, StateDelta::new(self.shared.store.clone())).into_writes();
        writes.extend(tree_writes);
        // Outside the app hash: the block record and what is derived from
        // the block (stored namespace proofs).
        writes.put(Cf::Blocks, keys::block(height), record.encode_to_vec());
        for (cf, key, value) in tree.proof_records(height, batches.items.keys().copied()) {
            writes.put(cf, key, value);
        }
        let mut last = StateDelta::new(self.shared.store.clone());
        last.put_last_block(height, &app_hash);
        writes.extend(last.into_writes());
        summary.app_hash = app_hash.to_vec();
        tracing::info!(
            txs = summary.tx_count,
            failed = summary.failed_txs,
            leaves = tree.leaves.len(),
            forced_included = run.forced_included.len(),
            forced_failed = run.forced_failed.len(),
            app_hash = %hex::encode(app_hash),
            "block executed"
        );
        block_events.push(Event {
            kind: "block",
            attributes: vec![
                ("nmt_root", hex::encode(root.node.digest)),
                ("leaves", root.leaf_count.to_string()),
            ],
        });
        let response = abci::ResponseFinalizeBlock {
            events: block_events.into_iter().map(to_abci_event).collect(),
            tx_results,
            validator_updates: validators.updates.iter().map(validator_update).collect(),
            consensus_param_updates: None,
            app_hash: app_hash.to_vec().into(),
        };
        Ok((
            response,
            PendingBlock {
                height,
                hash: Vec::new(),
                writes,
                summary,
                validators: validators.set,
            },
        ))
    }

    /// Commit: writes the finalized block in one synced batch (less the tree
    /// nodes written ahead), then resets the mempool overlay for the recheck
    /// CometBFT runs next.
    pub(super) fn commit_pending(&self) -> Result<Option<BlockSummary>, StoreError> {
        let mut consensus = lock(&self.shared.consensus);
        let Some(pending) = consensus.pending.take() else {
            return Ok(None);
        };
        self.shared
            .store
            .commit_block(pending.height, &pending.hash, &pending.writes)?;
        consensus.last_height = pending.height;
        consensus.last_app_hash = pending.summary.app_hash.clone();
        consensus.validators = pending.validators;
        consensus.processed = None;
        drop(consensus);
        self.mempool_committed(pending.height, &pending.summary.tx_hashes);
        Ok(Some(pending.summary))
    }
}

/// The ABCI result of each transaction, the block's batches, and the
/// summary's per-transaction counts.
fn tx_results(
    txs: &[Vec<u8>],
    results: Vec<TxResult>,
    summary: &mut BlockSummary,
) -> (Vec<abci::ExecTxResult>, BlockBatches) {
    let mut tx_results = Vec::with_capacity(txs.len());
    let mut batches = BlockBatches::default();
    for (bytes, result) in txs.iter().zip(results) {
        match result {
            TxResult::System { opened, votes } => {
                summary.extended_commit_bytes = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                let mut events = vec![Event {
                    kind: "extended_commit",
                    attributes: vec![
                        ("votes", votes.to_string()),
                        ("bytes", bytes.len().to_string()),
                        ("forced_opened", opened.len().to_string()),
                    ],
                }];
                for request in &opened {
                    let count = summary
                        .forced_opened
                        .entry(source_name(request.source))
                        .or_insert(0);
                    *count = count.saturating_add(1);
                    events.push(opened_event(request));
                }
                tx_results.push(abci::ExecTxResult {
                    code: Code::Ok.as_u32(),
                    events: events.into_iter().map(to_abci_event).collect(),
                    ..Default::default()
                });
            }
            TxResult::Executed(outcome) => {
                if outcome.forced_opened > 0 {
                    let count = summary.forced_opened.entry("request").or_insert(0);
                    *count = count.saturating_add(outcome.forced_opened);
                }
                summary.proofs_accepted = summary.proofs_accepted.saturating_add(outcome.proofs);
                batches.add(&outcome);
                tx_results.push(executed(outcome));
            }
            TxResult::Failed(error) => {
                summary.failed_txs = summary.failed_txs.saturating_add(1);
                tracing::warn!(%error, code = %error.code(), "tx failed in block");
                tx_results.push(abci::ExecTxResult {
                    code: error.code().as_u32(),
                    log: error.to_string(),
                    codespace: "seqnet".into(),
                    ..Default::default()
                });
            }
        }
    }
    summary.rollups = batches.counts();
    (tx_results, batches)
}

/// Block events for the forced requests this block included or failed.
fn forced_events(
    included: &[pb::ForcedRequest],
    failed: &[pb::ForcedRequest],
    summary: &mut BlockSummary,
) -> Vec<Event> {
    let mut events = Vec::new();
    for request in included {
        summary
            .forced_delays
            .push(summary.height.saturating_sub(request.requested_height));
        events.push(Event {
            kind: "forced_included",
            attributes: vec![
                ("id", request.id.to_string()),
                ("tx_hash", hex::encode(&request.tx_hash)),
                ("requested_height", request.requested_height.to_string()),
            ],
        });
    }
    for request in failed {
        summary.forced_failed = summary.forced_failed.saturating_add(1);
        events.push(Event {
            kind: "forced_failed",
            attributes: vec![
                ("id", request.id.to_string()),
                ("tx_hash", hex::encode(&request.tx_hash)),
                ("code", request.failure_code.to_string()),
                ("reason", request.failure.clone()),
            ],
        });
    }
    events
}
