//! Blocks: building proposals (PrepareProposal), checking them
//! (ProcessProposal) and executing them (FinalizeBlock), with one runner so
//! the three cannot disagree.
//!
//! Layout of a block: from the height after `vote_extensions_enable_height`
//! on, the first transaction is the injected extended commit of the previous
//! height (inclusion lists); then pending forced transactions; then the
//! mempool's. The proposer tries transactions carrying a `SubmitAggregate`
//! first (`carries_aggregate`; the `SubmitProof` transactions an aggregate
//! covers then fail their job checks and are dropped), otherwise keeps the
//! mempool's order, drops what no longer
//! executes, and caps each rollup at `rollup_block_share_bps` of the block in
//! a first pass so one busy rollup cannot starve the others; a second pass
//! fills what is left. A signer whose transaction was deferred has its later
//! transactions deferred too, so nonces stay in order.
//!
//! Back-pressure: while building or checking block `h`, when
//! `(h - 1) - proven_height > max_unproven_blocks` (ordering ran too far
//! ahead of proving; both read from the state before the block), the block
//! may carry only the injected extended commit, pending forced transactions
//! (by hash: `ForceInclude` requests, and those the injected commit opened
//! before back-pressure began — while it lasts, inclusion lists open requests
//! only for exempt transactions, so listing held-back rollup data cannot turn
//! it into forced data) and transactions
//! whose actions are all `SubmitProof`, `SubmitAggregate`, `RegisterProver`,
//! `Unbond` or `Unjail` (`back_pressure_exempt`). PrepareProposal builds such blocks and
//! ProcessProposal rejects any other. FinalizeBlock does not re-check: it
//! only runs on proposals that passed.
//!
//! Each transaction of a block is decoded once per run, and the decoded
//! transactions feed both the batch pre-verification of its proofs and the
//! run. A proposal that ProcessProposal accepted is not run again by
//! FinalizeBlock: the app keeps the accepted run (its state changes and
//! results) by block hash and FinalizeBlock takes it over
//! ([`BlockContext::finish_accepted`] settles the forced requests exactly as
//! a FinalizeBlock run does).

use std::collections::{BTreeMap, BTreeSet};

use seqnet_proto::inclusion::{decode_system_tx, encode_system_tx, verify_vote_extension};
use seqnet_proto::{pb, Address, RollupId, Transaction, TxError};
use tendermint_proto::v0_38::abci::ExtendedCommitInfo;

use super::execute::{check, execute};
use super::AppCounters;
use crate::forced::{self, CommitError, ForcedState};
use crate::params::ChainParams;
use crate::provers::{over_unproven_limit, ProversState, VerifierCache};
use crate::state::StateDelta;
use crate::store::StoreError;
use crate::tx::{
    back_pressure_exempt, carries_aggregate, check_stateless, rollups_of, ExecError,
    SignatureCache, TxOutcome,
};

/// CometBFT's `BlockIDFlag` for a precommit for the block.
const BLOCK_ID_FLAG_COMMIT: i32 = 2;

/// Why a proposal was rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProposalError {
    #[error("tx {index} ({hash}) is invalid: {source}")]
    InvalidTx {
        index: usize,
        hash: String,
        source: ExecError,
    },
    #[error("block {height} must start with the extended commit of height {}", height.saturating_sub(1))]
    MissingExtendedCommit { height: u64 },
    #[error("tx {index} is a system transaction where none is allowed")]
    UnexpectedSystemTx { index: usize },
    #[error("injected extended commit: {0}")]
    BadExtendedCommit(String),
    #[error("omits forced transaction {hash} (request {id}, due at height {deadline})")]
    MissingForced {
        id: u64,
        hash: String,
        deadline: u64,
    },
    #[error(
        "tx {index} ({hash}) is not a proof, prover-set or forced transaction, but ordering is \
         {lag} blocks ahead of proving (max_unproven_blocks {max})"
    )]
    BackPressure {
        index: usize,
        hash: String,
        lag: u64,
        max: u64,
    },
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

impl ProposalError {
    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProposalError::InvalidTx { .. } => "invalid_tx",
            ProposalError::MissingExtendedCommit { .. }
            | ProposalError::UnexpectedSystemTx { .. }
            | ProposalError::BadExtendedCommit(_) => "bad_extended_commit",
            ProposalError::MissingForced { .. } => "missing_forced",
            ProposalError::BackPressure { .. } => "back_pressure",
            ProposalError::Store(_) => "internal",
        }
    }
}

impl From<CommitError> for ProposalError {
    fn from(e: CommitError) -> Self {
        ProposalError::BadExtendedCommit(e.to_string())
    }
}

/// A predicate that drops matching transactions from this node's proposals.
/// Only the testnet fault options install one.
pub type ProposalFilter = dyn Fn(&Transaction) -> bool + Send + Sync;

/// Everything a block's rules depend on besides state.
pub(crate) struct BlockContext<'a> {
    pub params: &'a ChainParams,
    pub chain_id: &'a str,
    pub signatures: &'a SignatureCache,
    pub verifier: &'a VerifierCache,
    pub counters: &'a AppCounters,
    pub height: u64,
    pub validators: &'a pb::ValidatorSet,
    /// 0: vote extensions disabled.
    pub vote_extensions_height: u64,
    pub censor: Option<&'a ProposalFilter>,
}

/// The result of one transaction of a finalized block.
pub(crate) enum TxResult {
    System {
        opened: Vec<pb::ForcedRequest>,
        votes: usize,
    },
    Executed(TxOutcome),
    Failed(ExecError),
}

/// One transaction of a block, decoded once per run.
enum Decoded {
    /// The injected extended commit (or a malformed one).
    System(Result<pb::ExtendedCommit, String>),
    /// A transaction: decoded, chain id and signatures checked, or why not.
    Tx(Result<Transaction, TxError>),
}

/// What executing a block did, besides the state changes.
pub(crate) struct BlockRun {
    pub results: Vec<TxResult>,
    pub forced_included: Vec<pb::ForcedRequest>,
    pub forced_failed: Vec<pb::ForcedRequest>,
}

impl BlockContext<'_> {
    fn extended_commit_required(&self) -> bool {
        self.vote_extensions_height > 0 && self.height > self.vote_extensions_height
    }

    fn censored(&self, tx: &Transaction) -> bool {
        self.censor.is_some_and(|censor| censor(tx))
    }

    /// `Some(lag)` when this block is under back-pressure (see the module
    /// docs), read from the state before the block.
    pub(crate) fn back_pressure(&self, state: &StateDelta) -> Result<Option<u64>, StoreError> {
        let ordered = self.height.saturating_sub(1);
        let lag = ordered.saturating_sub(state.proven_height()?);
        Ok(over_unproven_limit(lag, self.params.max_unproven_blocks).then_some(lag))
    }

    /// Whether `tx` may go into a block under back-pressure.
    fn admitted(
        &self,
        state: &StateDelta,
        tx: &Transaction,
        pressure: Option<u64>,
    ) -> Result<bool, StoreError> {
        if pressure.is_none() || back_pressure_exempt(tx) {
            return Ok(true);
        }
        let hash = tx.hash();
        Ok(state
            .forced_queue()?
            .pending
            .iter()
            .any(|r| r.tx_hash == hash))
    }

    /// Whether `tx` would execute on `state` (forced inclusion asks).
    fn would_execute(&self, state: &StateDelta, tx: &Transaction) -> Result<(), ExecError> {
        check(state, self.params, self.verifier, tx, self.height).map(|_| ())
    }

    /// Processes an injected extended commit: verifies it and opens requests
    /// for what more than 1/3 of the power listed.
    fn apply_system_tx(
        &self,
        state: &mut StateDelta,
        commit: &pb::ExtendedCommit,
    ) -> Result<(Vec<pb::ForcedRequest>, usize), ProposalError> {
        let expected = i64::try_from(self.height)
            .unwrap_or(i64::MAX)
            .saturating_sub(1);
        let lists = forced::verify_commit(
            commit,
            self.validators,
            self.chain_id,
            expected,
            self.params,
        )?;
        // Read before the commit opens anything: the same state as the
        // back-pressure check of the block's other transactions.
        let hold_back = self.back_pressure(state)?.is_some();
        let opened = forced::open_from_lists(
            state,
            self.params,
            self.chain_id,
            self.signatures,
            &lists,
            crate::validators::total_power(self.validators),
            self.height,
            hold_back,
            &|state, tx| self.would_execute(state, tx),
        )?;
        Ok((opened, lists.len()))
    }

    /// Runs `txs` on `state`. `strict` (ProcessProposal) stops at the first
    /// rule a proposal breaks; otherwise (FinalizeBlock) failures are recorded
    /// as results and the block goes on.
    pub(crate) fn run(
        &self,
        state: &mut StateDelta,
        txs: &[Vec<u8>],
        strict: bool,
    ) -> Result<BlockRun, ProposalError> {
        let mut run = BlockRun {
            results: Vec::with_capacity(txs.len()),
            forced_included: Vec::new(),
            forced_failed: Vec::new(),
        };
        let pressure = if strict {
            self.back_pressure(state)?
        } else {
            None
        };
        self.counters.decoded(txs.len());
        let decoded: Vec<Decoded> = txs
            .iter()
            .map(|bytes| match decode_system_tx(bytes) {
                Some(commit) => Decoded::System(commit.map_err(|e| e.to_string())),
                None => Decoded::Tx(check_stateless(
                    bytes,
                    self.params,
                    self.chain_id,
                    self.signatures,
                )),
            })
            .collect();
        // Two or more proofs: verify them together first (a memo only; the
        // per-transaction checks below decide, with the same verdicts).
        let signed = decoded.iter().filter_map(|d| match d {
            Decoded::Tx(Ok(tx)) => Some(tx),
            _ => None,
        });
        crate::provers::preverify(state, self.verifier, signed)?;
        for (index, (bytes, decoded)) in txs.iter().zip(decoded).enumerate() {
            let decoded = match decoded {
                Decoded::System(commit) => Some(commit),
                Decoded::Tx(checked) => {
                    self.run_tx(state, &mut run, index, bytes, checked, strict, pressure)?;
                    None
                }
            };
            if let Some(decoded) = decoded {
                let outcome = if index != 0 || !self.extended_commit_required() {
                    Err(ProposalError::UnexpectedSystemTx { index })
                } else {
                    decoded
                        .map_err(ProposalError::BadExtendedCommit)
                        .and_then(|commit| self.apply_system_tx(state, &commit))
                };
                match outcome {
                    Ok((opened, votes)) => run.results.push(TxResult::System { opened, votes }),
                    Err(ProposalError::Store(e)) => return Err(e.into()),
                    Err(e) if strict => return Err(e),
                    Err(e) => run.results.push(TxResult::Failed(ExecError::Tx(
                        seqnet_proto::TxError::Malformed(e.to_string()),
                    ))),
                }
            }
        }
        if txs.is_empty() && self.extended_commit_required() && strict {
            return Err(ProposalError::MissingExtendedCommit {
                height: self.height,
            });
        }
        if strict {
            if let Some(missing) = forced::violations(state, self.params, self.height, &|s, tx| {
                self.would_execute(s, tx)
            })?
            .into_iter()
            .next()
            {
                return Err(ProposalError::MissingForced {
                    id: missing.id,
                    hash: hex::encode(&missing.tx_hash),
                    deadline: missing.deadline,
                });
            }
        } else {
            self.settle(state, &mut run)?;
        }
        Ok(run)
    }

    /// Resolves the forced requests at the end of a block run (FinalizeBlock).
    fn settle(&self, state: &mut StateDelta, run: &mut BlockRun) -> Result<(), StoreError> {
        run.forced_failed = forced::settle(state, self.params, self.height, &|s, tx| {
            self.would_execute(s, tx)
        })?;
        Ok(())
    }

    /// Turns an accepted strict run (ProcessProposal) into the run
    /// FinalizeBlock would have made: the forced requests settle the same way.
    pub(crate) fn finish_accepted(
        &self,
        state: &mut StateDelta,
        run: &mut BlockRun,
    ) -> Result<(), StoreError> {
        self.settle(state, run)
    }

    /// Runs one (non-system) transaction of the block.
    #[allow(clippy::too_many_arguments)]
    fn run_tx(
        &self,
        state: &mut StateDelta,
        run: &mut BlockRun,
        index: usize,
        bytes: &[u8],
        checked: Result<Transaction, TxError>,
        strict: bool,
        pressure: Option<u64>,
    ) -> Result<(), ProposalError> {
        if index == 0 && self.extended_commit_required() && strict {
            return Err(ProposalError::MissingExtendedCommit {
                height: self.height,
            });
        }
        let checked = checked.map_err(ExecError::from);
        if let (Ok(tx), Some(lag)) = (&checked, pressure) {
            if !self.admitted(state, tx, pressure)? {
                return Err(ProposalError::BackPressure {
                    index,
                    hash: hex::encode(tx.hash()),
                    lag,
                    max: self.params.max_unproven_blocks,
                });
            }
        }
        let result = checked.and_then(|tx| {
            self.counters.executed(1);
            execute(state, self.params, self.verifier, &tx, self.height).map(|o| (tx, o))
        });
        match result {
            Ok((tx, outcome)) => {
                if let Some(request) = forced::mark_included(state, &tx.hash(), self.height)? {
                    run.forced_included.push(request);
                }
                run.results.push(TxResult::Executed(outcome));
            }
            Err(ExecError::Store(e)) => return Err(e.into()),
            Err(source) if strict => {
                return Err(ProposalError::InvalidTx {
                    index,
                    hash: hex::encode(seqnet_proto::sha256(bytes)),
                    source,
                })
            }
            Err(error) => run.results.push(TxResult::Failed(error)),
        }
        Ok(())
    }

    /// The extended commit to inject, built from CometBFT's
    /// `local_last_commit`: only votes whose signatures and lists check out.
    pub(crate) fn build_extended_commit(&self, info: &ExtendedCommitInfo) -> pb::ExtendedCommit {
        let height = i64::try_from(self.height)
            .unwrap_or(i64::MAX)
            .saturating_sub(1);
        let round = i64::from(info.round);
        let keys: BTreeMap<&[u8], &[u8]> = self
            .validators
            .validators
            .iter()
            .map(|v| (v.address.as_slice(), v.public_key.as_slice()))
            .collect();
        let mut votes = Vec::new();
        for vote in &info.votes {
            if vote.block_id_flag != BLOCK_ID_FLAG_COMMIT {
                continue;
            }
            let Some(validator) = &vote.validator else {
                continue;
            };
            let Some(public_key) = keys.get(validator.address.as_ref()) else {
                continue;
            };
            let candidate = pb::ExtendedVote {
                validator_address: validator.address.to_vec(),
                extension: vote.vote_extension.to_vec(),
                signature: vote.extension_signature.to_vec(),
            };
            // Extensions that arrived after 2/3 were not verified by CometBFT.
            let valid = verify_vote_extension(self.chain_id, height, round, &candidate, public_key)
                .is_ok()
                && seqnet_proto::inclusion::decode_inclusion_list(
                    &candidate.extension,
                    usize::try_from(self.params.max_inclusion_list_txs).unwrap_or(usize::MAX),
                    usize::try_from(self.params.max_inclusion_list_bytes).unwrap_or(usize::MAX),
                )
                .is_ok();
            if valid {
                votes.push(candidate);
            } else {
                tracing::warn!(validator = %hex::encode(&validator.address), "dropping an invalid vote extension");
            }
        }
        pb::ExtendedCommit {
            height,
            round,
            votes,
        }
    }

    /// Selects, in order, the transactions of the next block.
    pub(crate) fn prepare(
        &self,
        state: &mut StateDelta,
        txs: &[Vec<u8>],
        max_bytes: u64,
        local_last_commit: Option<&ExtendedCommitInfo>,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut used: u64 = 0;
        let mut selected = Vec::new();
        let mut included: BTreeSet<[u8; 32]> = BTreeSet::new();
        let pressure = self.back_pressure(state)?;
        if let Some(lag) = pressure {
            tracing::info!(
                lag,
                max = self.params.max_unproven_blocks,
                "back-pressure: proposing only proof, prover-set and forced transactions"
            );
        }

        if self.extended_commit_required() {
            let commit =
                self.build_extended_commit(&local_last_commit.cloned().unwrap_or_default());
            match self.apply_system_tx(state, &commit) {
                Ok(_) => {}
                Err(ProposalError::Store(e)) => return Err(e),
                Err(error) => {
                    tracing::error!(%error, "our own extended commit does not verify; proposing it anyway")
                }
            }
            let bytes = encode_system_tx(&commit);
            used = used.saturating_add(bytes.len() as u64);
            selected.push(bytes);
        }

        // Forced transactions first, oldest deadline first.
        let mut pending = state.forced_queue()?.pending;
        pending.sort_by_key(|r| (r.deadline, r.id));
        for request in pending {
            let size = request.tx.len() as u64;
            if used.saturating_add(size) > max_bytes {
                break;
            }
            let Ok(tx) = Transaction::decode(
                &request.tx,
                self.params.max_tx_bytes_usize(),
                self.params.max_actions_usize(),
            ) else {
                continue;
            };
            if !self.censored(&tx) && self.include(state, &tx)? {
                included.insert(tx.hash());
                used = used.saturating_add(size);
                selected.push(request.tx);
            }
        }

        let share = u128::from(max_bytes)
            .saturating_mul(u128::from(self.params.rollup_block_share_bps))
            / 10_000;
        let share = u64::try_from(share).unwrap_or(u64::MAX);
        let mut per_rollup: BTreeMap<RollupId, u64> = BTreeMap::new();
        let mut deferred: Vec<(&Vec<u8>, Transaction)> = Vec::new();
        let mut deferred_signers: BTreeSet<Address> = BTreeSet::new();
        // Aggregates first (otherwise in mempool order): once an aggregate has
        // run, the SubmitProof transactions for the jobs it covers fail their
        // job checks and are left out; the other way round, one SubmitProof of
        // a covered job would make the whole aggregate fail.
        self.counters.decoded(txs.len());
        let mut candidates: Vec<(&Vec<u8>, Transaction)> = txs
            .iter()
            .filter_map(|bytes| {
                check_stateless(bytes, self.params, self.chain_id, self.signatures)
                    .ok()
                    .map(|tx| (bytes, tx))
            })
            .collect();
        candidates.sort_by_key(|(_, tx)| !carries_aggregate(tx));
        for (bytes, tx) in candidates {
            if self.censored(&tx)
                || included.contains(&tx.hash())
                || !self.admitted(state, &tx, pressure)?
            {
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
            if self.include(state, &tx)? {
                used = used.saturating_add(size);
                for r in rollups {
                    let used = per_rollup.entry(r).or_insert(0);
                    *used = used.saturating_add(size);
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
            if self.include(state, &tx)? {
                used = used.saturating_add(size);
                selected.push(bytes.clone());
            }
        }
        Ok(selected)
    }

    fn include(&self, state: &mut StateDelta, tx: &Transaction) -> Result<bool, StoreError> {
        self.counters.executed(1);
        match execute(state, self.params, self.verifier, tx, self.height) {
            Ok(_) => {
                forced::mark_included(state, &tx.hash(), self.height)?;
                Ok(true)
            }
            Err(ExecError::Store(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// Accepts a proposal only if it follows every rule; the accepted run.
    pub(crate) fn process(
        &self,
        state: &mut StateDelta,
        txs: &[Vec<u8>],
    ) -> Result<BlockRun, ProposalError> {
        self.run(state, txs, true)
    }
}
