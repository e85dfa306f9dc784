//! Blocks: building proposals (PrepareProposal), checking them
//! (ProcessProposal) and executing them (FinalizeBlock), with one runner so
//! the three cannot disagree.
//!
//! Layout of a block: from the height after `vote_extensions_enable_height`
//! on, the first transaction is the injected extended commit of the previous
//! height (inclusion lists); then pending forced transactions; then the
//! mempool's. The proposer tries transactions carrying a `SubmitAggregate`
//! first ([`carries_aggregate`]; the `SubmitProof` transactions an aggregate
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
//! `Unbond` or `Unjail` ([`back_pressure_exempt`]). PrepareProposal builds such blocks and
//! ProcessProposal rejects any other. FinalizeBlock does not re-check: it
//! only runs on proposals that passed.

use std::collections::{BTreeMap, BTreeSet};

use seqnet_proto::inclusion::{decode_system_tx, encode_system_tx, verify_vote_extension};
use seqnet_proto::{pb, Action, Address, RollupId, Transaction};
use tendermint_proto::v0_38::abci::ExtendedCommitInfo;

use crate::execute::{check_stateless, execute, Event, ExecError, SignatureCache, TxOutcome};
use crate::forced::{self, CommitError};
use crate::params::ChainParams;
use crate::state::StateDelta;
use crate::store::StoreError;

/// CometBFT's `BlockIDFlag` for a precommit for the block.
const BLOCK_ID_FLAG_COMMIT: i32 = 2;

/// Why a proposal was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error("tx {index} ({hash}) is invalid: {source}")]
    InvalidTx {
        index: usize,
        hash: String,
        source: ExecError,
    },
    #[error("block {height} must start with the extended commit of height {}", height - 1)]
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
pub struct BlockContext<'a> {
    pub params: &'a ChainParams,
    pub chain_id: &'a str,
    pub signatures: &'a SignatureCache,
    pub height: u64,
    pub validators: &'a pb::ValidatorSet,
    /// 0: vote extensions disabled.
    pub vote_extensions_height: u64,
    pub censor: Option<&'a ProposalFilter>,
}

/// The result of one transaction of a finalized block.
pub enum TxResult {
    System {
        opened: Vec<pb::ForcedRequest>,
        votes: usize,
    },
    Executed(TxOutcome),
    Failed(ExecError),
}

/// What executing a block did, besides the state changes.
pub struct BlockRun {
    pub results: Vec<TxResult>,
    pub forced_included: Vec<pb::ForcedRequest>,
    pub forced_failed: Vec<pb::ForcedRequest>,
    pub events: Vec<Event>,
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
    pub fn back_pressure(&self, state: &StateDelta) -> Result<Option<u64>, StoreError> {
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

    /// Processes an injected extended commit: verifies it and opens requests
    /// for what more than 1/3 of the power listed.
    fn apply_system_tx(
        &self,
        state: &mut StateDelta,
        commit: &pb::ExtendedCommit,
    ) -> Result<(Vec<pb::ForcedRequest>, usize), ProposalError> {
        let expected = i64::try_from(self.height).unwrap_or(i64::MAX) - 1;
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
            forced::total_power(self.validators),
            self.height,
            hold_back,
        )?;
        Ok((opened, lists.len()))
    }

    /// Runs `txs` on `state`. `strict` (ProcessProposal) stops at the first
    /// rule a proposal breaks; otherwise (FinalizeBlock) failures are recorded
    /// as results and the block goes on.
    pub fn run(
        &self,
        state: &mut StateDelta,
        txs: &[Vec<u8>],
        strict: bool,
    ) -> Result<BlockRun, ProposalError> {
        let mut run = BlockRun {
            results: Vec::with_capacity(txs.len()),
            forced_included: Vec::new(),
            forced_failed: Vec::new(),
            events: Vec::new(),
        };
        let pressure = if strict {
            self.back_pressure(state)?
        } else {
            None
        };
        // Two or more proofs: verify them together first (a memo only; the
        // per-transaction checks below decide, with the same verdicts).
        crate::proof_batch::preverify(state, self.params, self.chain_id, self.signatures, txs)?;
        for (index, bytes) in txs.iter().enumerate() {
            if let Some(decoded) = decode_system_tx(bytes) {
                let outcome = if index != 0 || !self.extended_commit_required() {
                    Err(ProposalError::UnexpectedSystemTx { index })
                } else {
                    decoded
                        .map_err(|e| ProposalError::BadExtendedCommit(e.to_string()))
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
                continue;
            }
            if index == 0 && self.extended_commit_required() && strict {
                return Err(ProposalError::MissingExtendedCommit {
                    height: self.height,
                });
            }
            let checked = check_stateless(bytes, self.params, self.chain_id, self.signatures)
                .map_err(ExecError::from);
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
            let result = checked
                .and_then(|tx| execute(state, self.params, &tx, self.height).map(|o| (tx, o)));
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
        }
        if txs.is_empty() && self.extended_commit_required() && strict {
            return Err(ProposalError::MissingExtendedCommit {
                height: self.height,
            });
        }
        if strict {
            if let Some(missing) = forced::violations(state, self.params, self.height)?
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
            run.forced_failed = forced::settle(state, self.params, self.height)?;
        }
        Ok(run)
    }

    /// The extended commit to inject, built from CometBFT's
    /// `local_last_commit`: only votes whose signatures and lists check out.
    pub fn build_extended_commit(&self, info: &ExtendedCommitInfo) -> pb::ExtendedCommit {
        let height = i64::try_from(self.height).unwrap_or(i64::MAX) - 1;
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
    pub fn prepare(
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

        let share = u128::from(max_bytes) * u128::from(self.params.rollup_block_share_bps) / 10_000;
        let share = u64::try_from(share).unwrap_or(u64::MAX);
        let mut per_rollup: BTreeMap<RollupId, u64> = BTreeMap::new();
        let mut deferred: Vec<(&Vec<u8>, Transaction)> = Vec::new();
        let mut deferred_signers: BTreeSet<Address> = BTreeSet::new();
        // Aggregates first (otherwise in mempool order): once an aggregate has
        // run, the SubmitProof transactions for the jobs it covers fail their
        // job checks and are left out; the other way round, one SubmitProof of
        // a covered job would make the whole aggregate fail.
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
            if self.include(state, &tx)? {
                used = used.saturating_add(size);
                selected.push(bytes.clone());
            }
        }
        Ok(selected)
    }

    fn include(&self, state: &mut StateDelta, tx: &Transaction) -> Result<bool, StoreError> {
        match execute(state, self.params, tx, self.height) {
            Ok(_) => {
                forced::mark_included(state, &tx.hash(), self.height)?;
                Ok(true)
            }
            Err(ExecError::Store(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// Accepts a proposal only if it follows every rule.
    pub fn process(&self, state: &mut StateDelta, txs: &[Vec<u8>]) -> Result<(), ProposalError> {
        self.run(state, txs, true).map(|_| ())
    }
}

/// Whether a testnet censor matches `tx`: by signer or by rollup, also
/// through the transactions it forces.
pub fn matches_censor(tx: &Transaction, signers: &[Address], rollups: &[RollupId]) -> bool {
    let hit = |t: &Transaction| {
        signers.contains(&t.signer) || rollups_of(t).iter().any(|r| rollups.contains(r))
    };
    hit(tx) || tx.forced_transactions().any(hit)
}

/// Whether ordering is too far ahead of proving: `lag` (last committed
/// height minus proven height) above `max_unproven_blocks`.
pub fn over_unproven_limit(lag: u64, max_unproven_blocks: u64) -> bool {
    lag > max_unproven_blocks
}

/// Whether `tx` carries a `SubmitAggregate` (proposers try those first).
pub fn carries_aggregate(tx: &Transaction) -> bool {
    tx.body
        .actions
        .iter()
        .any(|a| matches!(a, Action::SubmitAggregate { .. }))
}

/// Whether `tx` may be included under back-pressure on its own account: every
/// action is a proof or a prover-set change (and there is at least one).
pub fn back_pressure_exempt(tx: &Transaction) -> bool {
    !tx.body.actions.is_empty()
        && tx.body.actions.iter().all(|a| {
            matches!(
                a,
                Action::SubmitProof { .. }
                    | Action::SubmitAggregate { .. }
                    | Action::RegisterProver { .. }
                    | Action::Unbond
                    | Action::Unjail
            )
        })
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
