//! Transaction checks and execution, shared by CheckTx, PrepareProposal,
//! ProcessProposal and FinalizeBlock so that they cannot drift apart.
//!
//! [`check_stateless`] needs no state; [`execute`] checks a transaction
//! against a [`StateDelta`] and applies it only if every check passes: a
//! failing transaction leaves the delta untouched.

use std::collections::BTreeMap;
use std::sync::Mutex;

use seqnet_proto::{pb, Action, Address, Code, RollupId, Transaction, TxError};

use crate::params::ChainParams;
use crate::state::StateDelta;
use crate::store::StoreError;

/// An event emitted by a transaction or block (converted to ABCI events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: &'static str,
    pub attributes: Vec<(&'static str, String)>,
}

/// What a successful transaction did.
#[derive(Clone, Debug)]
pub struct TxOutcome {
    pub signer: Address,
    /// Forced-inclusion requests this transaction opened.
    pub forced_opened: u64,
    pub events: Vec<Event>,
    /// Rollup data in action order, for the block's batches.
    pub items: Vec<(RollupId, pb::BatchItem)>,
    /// The fee the transaction paid.
    pub fee: u64,
    /// Proofs this transaction got accepted.
    pub proofs: u64,
}

impl Default for TxOutcome {
    fn default() -> Self {
        TxOutcome {
            signer: Address([0; 32]),
            forced_opened: 0,
            events: Vec::new(),
            items: Vec::new(),
            fee: 0,
            proofs: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error("nonce {got} of account {address} was already used (next nonce is {expected})")]
    NonceReplayed {
        address: Address,
        expected: u64,
        got: u64,
    },
    #[error("nonce {got} of account {address} skips ahead (next nonce is {expected})")]
    NonceGap {
        address: Address,
        expected: u64,
        got: u64,
    },
    #[error("fee {offered} is below the required {required}")]
    FeeTooLow { offered: u64, required: u64 },
    #[error("account {address} has balance {balance}, needs {needed}")]
    InsufficientBalance {
        address: Address,
        balance: u64,
        needed: u64,
    },
    #[error("rollup {0} is not registered")]
    UnknownRollup(RollupId),
    #[error("rollup {0} is already registered")]
    RollupExists(RollupId),
    #[error("{signer} is not the owner of rollup {rollup_id}")]
    NotOwner {
        signer: Address,
        rollup_id: RollupId,
    },
    #[error("{0}")]
    InvalidParameter(String),
    #[error("transaction {0} is already forced")]
    ForcedKnown(String),
    #[error("{limit} forced requests are already pending")]
    ForcedQueueFull { limit: u64 },
    #[error("{0} has no prover record")]
    ProverUnknown(Address),
    #[error("prover {address}: {reason}")]
    ProverState { address: Address, reason: String },
    #[error("prover stake {stake} is below the minimum {min}")]
    StakeTooLow { stake: u64, min: u64 },
    #[error("prover {address} is jailed until height {until}")]
    Jailed { address: Address, until: u64 },
    #[error("no open proof job for rollup {rollup_id} starting at height {from_height}")]
    JobUnknown {
        rollup_id: RollupId,
        from_height: u64,
    },
    #[error("job {rollup_id}/{from_height} already has a verified proof waiting to link")]
    JobPending {
        rollup_id: RollupId,
        from_height: u64,
    },
    #[error("job {rollup_id}/{from_height} is assigned to {assigned}")]
    NotAssigned {
        rollup_id: RollupId,
        from_height: u64,
        assigned: String,
    },
    #[error(
        "job {rollup_id}/{from_height} is the rollup's next to prove: its proof must start at \
         the proven root {proven}, not {got}"
    )]
    RootMismatch {
        rollup_id: RollupId,
        from_height: u64,
        proven: String,
        got: String,
    },
    #[error("proof rejected: {0}")]
    ProofRejected(String),
    #[error("malformed proof: {0}")]
    ProofMalformed(String),
    #[error("{0} would overflow")]
    Overflow(&'static str),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

impl ExecError {
    pub fn code(&self) -> Code {
        match self {
            ExecError::Tx(e) => e.code(),
            ExecError::NonceReplayed { .. } => Code::NonceReplayed,
            ExecError::NonceGap { .. } => Code::NonceGap,
            ExecError::FeeTooLow { .. } => Code::FeeTooLow,
            ExecError::InsufficientBalance { .. } => Code::InsufficientBalance,
            ExecError::UnknownRollup(_) => Code::UnknownRollup,
            ExecError::RollupExists(_) => Code::RollupExists,
            ExecError::NotOwner { .. } => Code::Unauthorized,
            ExecError::InvalidParameter(_) => Code::InvalidParameter,
            ExecError::Overflow(_) => Code::Overflow,
            ExecError::ForcedKnown(_) | ExecError::ForcedQueueFull { .. } => Code::ForcedRejected,
            ExecError::ProverUnknown(_) => Code::ProverUnknown,
            ExecError::ProverState { .. } => Code::ProverState,
            ExecError::StakeTooLow { .. } => Code::StakeTooLow,
            ExecError::Jailed { .. } => Code::Jailed,
            ExecError::JobUnknown { .. } => Code::JobUnknown,
            ExecError::JobPending { .. } => Code::JobPending,
            ExecError::RootMismatch { .. } => Code::RootMismatch,
            ExecError::NotAssigned { .. } => Code::NotAssigned,
            ExecError::ProofRejected(_) => Code::ProofRejected,
            ExecError::ProofMalformed(_) => Code::ProofMalformed,
            ExecError::Store(_) => Code::Internal,
        }
    }
}

/// Hashes of transactions whose signatures verified, so the mempool's
/// recheck after every commit and the proposal checks skip ed25519. Bounded;
/// the oldest entries go first. Only ever a shortcut: a miss re-verifies.
pub struct SignatureCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
}

#[derive(Default)]
struct CacheInner {
    set: std::collections::BTreeSet<[u8; 32]>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl SignatureCache {
    pub fn new(capacity: usize) -> SignatureCache {
        SignatureCache {
            inner: Mutex::new(CacheInner::default()),
            capacity,
        }
    }

    pub fn verify(&self, tx: &Transaction) -> Result<(), TxError> {
        let hash = tx.hash();
        if let Ok(inner) = self.inner.lock() {
            if inner.set.contains(&hash) {
                return Ok(());
            }
        }
        tx.verify_signature()?;
        tx.verify_entry_signatures()?;
        if let Ok(mut inner) = self.inner.lock() {
            if inner.set.insert(hash) {
                inner.order.push_back(hash);
            }
            while inner.order.len() > self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.set.remove(&old);
                }
            }
        }
        Ok(())
    }
}

/// Decoding, chain id and signature: everything that needs no state.
pub fn check_stateless(
    bytes: &[u8],
    params: &ChainParams,
    chain_id: &str,
    signatures: &SignatureCache,
) -> Result<Transaction, TxError> {
    let tx = Transaction::decode(
        bytes,
        params.max_tx_bytes_usize(),
        params.max_actions_usize(),
    )?;
    tx.check_chain_id(chain_id)?;
    signatures.verify(&tx)?;
    for inner in tx.forced_transactions() {
        inner.check_chain_id(chain_id)?;
        signatures.verify(inner)?;
    }
    Ok(tx)
}

/// What a transaction will change, computed by [`check`] and written by [`apply`].
#[derive(Debug)]
pub struct Planned {
    pub outcome: TxOutcome,
    fee: u64,
    accounts: BTreeMap<Address, pb::Account>,
    rollups: BTreeMap<RollupId, pb::Rollup>,
    /// ForceInclude requests to open: (inner transaction, deadline).
    forced: Vec<(Transaction, u64)>,
    /// The signer's prover record, if an action changed it.
    prover: Option<pb::Prover>,
    /// Accepted transitions, with the aggregate that carried each (index
    /// into `aggregates`), if any.
    proofs: Vec<(crate::provers::AcceptedProof, Option<usize>)>,
    /// Accepted aggregates: the proofs each covers.
    aggregates: Vec<usize>,
    height: u64,
}

/// Checks `tx` against `state` and, if every check passes, applies it.
pub fn execute(
    state: &mut StateDelta,
    params: &ChainParams,
    tx: &Transaction,
    height: u64,
) -> Result<TxOutcome, ExecError> {
    let planned = check(state, params, tx, height)?;
    apply(state, planned)
}

/// Writes what [`check`] planned.
pub fn apply(state: &mut StateDelta, planned: Planned) -> Result<TxOutcome, ExecError> {
    let pool = state
        .fee_pool()?
        .checked_add(planned.fee)
        .ok_or(ExecError::Overflow("fee pool"))?;
    state.put_fee_pool(pool);
    for account in planned.accounts.values() {
        state.put_account(account);
    }
    for rollup in planned.rollups.values() {
        state.put_rollup(rollup);
    }
    let mut outcome = planned.outcome;
    for (inner, deadline) in planned.forced {
        let request = crate::forced::open_request(
            state,
            &inner,
            pb::ForcedSource::Request,
            outcome.signer.0.to_vec(),
            planned.height,
            deadline,
        )?;
        outcome.events.push(crate::forced::opened_event(&request));
        outcome.forced_opened += 1;
    }
    if let Some(record) = planned.prover {
        crate::provers::put_prover(state, record)?;
    }
    for (accepted, aggregate) in &planned.proofs {
        let aggregator = aggregate.map(|_| outcome.signer);
        let event = crate::provers::record_proof(state, accepted, aggregator, planned.height)?;
        outcome.events.push(event);
        outcome.proofs += 1;
    }
    for entries in planned.aggregates {
        outcome.events.push(Event {
            kind: "aggregate_accepted",
            attributes: vec![
                ("aggregator", outcome.signer.to_string()),
                ("entries", entries.to_string()),
            ],
        });
    }
    Ok(outcome)
}

/// Every check of `tx` against `state`, changing nothing.
pub fn check(
    state: &StateDelta,
    params: &ChainParams,
    tx: &Transaction,
    height: u64,
) -> Result<Planned, ExecError> {
    let signer = tx.signer;
    let body = &tx.body;
    let mut accounts: BTreeMap<Address, pb::Account> = BTreeMap::new();
    let mut rollups: BTreeMap<RollupId, pb::Rollup> = BTreeMap::new();
    let mut forced = Vec::new();
    let mut outcome = TxOutcome {
        signer,
        fee: body.fee,
        ..TxOutcome::default()
    };
    let mut prover: Option<Option<pb::Prover>> = None;
    let mut proofs: Vec<(crate::provers::AcceptedProof, Option<usize>)> = Vec::new();
    let mut aggregates: Vec<usize> = Vec::new();
    let tx_hash = hex::encode(tx.hash());

    let mut account = state.account(&signer)?;
    if body.nonce < account.nonce {
        return Err(ExecError::NonceReplayed {
            address: signer,
            expected: account.nonce,
            got: body.nonce,
        });
    }
    if body.nonce > account.nonce {
        return Err(ExecError::NonceGap {
            address: signer,
            expected: account.nonce,
            got: body.nonce,
        });
    }
    let registrations = body
        .actions
        .iter()
        .filter(|a| matches!(a, Action::RegisterRollup { .. }))
        .count() as u64;
    // Forced transactions are stored on chain: their bytes are charged too.
    let charged_bytes = tx
        .forced_transactions()
        .map(|inner| inner.encoded_len() as u64)
        .try_fold(body.data_bytes(), u64::checked_add)
        .ok_or(ExecError::Overflow("charged bytes"))?;
    let required = params
        .required_fee(charged_bytes, registrations)
        .ok_or(ExecError::Overflow("required fee"))?;
    if body.fee < required {
        return Err(ExecError::FeeTooLow {
            offered: body.fee,
            required,
        });
    }
    let outgoing = body
        .actions
        .iter()
        .map(|a| match a {
            Action::Transfer { amount, .. } => *amount,
            Action::RegisterProver { stake } => *stake,
            _ => 0,
        })
        .try_fold(body.fee, u64::checked_add)
        .ok_or(ExecError::Overflow("fee plus transfers"))?;
    if account.balance < outgoing {
        return Err(ExecError::InsufficientBalance {
            address: signer,
            balance: account.balance,
            needed: outgoing,
        });
    }
    account.balance -= body.fee;
    account.nonce = account
        .nonce
        .checked_add(1)
        .ok_or(ExecError::Overflow("nonce"))?;
    accounts.insert(signer, account);
    outcome.events.push(Event {
        kind: "tx",
        attributes: vec![
            ("hash", tx_hash.clone()),
            ("signer", signer.to_string()),
            ("nonce", body.nonce.to_string()),
            ("fee", body.fee.to_string()),
        ],
    });

    for (index, action) in body.actions.iter().enumerate() {
        match action {
            Action::RollupData { rollup_id, data } => {
                let rollup = load_rollup(state, &mut rollups, *rollup_id)?
                    .ok_or(ExecError::UnknownRollup(*rollup_id))?;
                let stats = rollup.stats.get_or_insert_with(Default::default);
                stats.items = stats
                    .items
                    .checked_add(1)
                    .ok_or(ExecError::Overflow("rollup items"))?;
                stats.bytes = stats
                    .bytes
                    .checked_add(data.len() as u64)
                    .ok_or(ExecError::Overflow("rollup bytes"))?;
                stats.last_height = height;
                outcome.items.push((
                    *rollup_id,
                    pb::BatchItem {
                        tx_hash: tx.hash().to_vec(),
                        signer: signer.0.to_vec(),
                        nonce: body.nonce,
                        action_index: index as u32,
                        data: data.clone(),
                    },
                ));
                outcome.events.push(Event {
                    kind: "rollup_data",
                    attributes: vec![
                        ("rollup_id", rollup_id.to_string()),
                        ("bytes", data.len().to_string()),
                        ("tx_hash", tx_hash.clone()),
                    ],
                });
            }
            Action::Transfer { to, amount } => {
                let from = accounts
                    .get_mut(&signer)
                    .ok_or(ExecError::Overflow("signer account"))?;
                from.balance =
                    from.balance
                        .checked_sub(*amount)
                        .ok_or(ExecError::InsufficientBalance {
                            address: signer,
                            balance: from.balance,
                            needed: *amount,
                        })?;
                if !accounts.contains_key(to) {
                    let recipient = state.account(to)?;
                    accounts.insert(*to, recipient);
                }
                let recipient = accounts
                    .get_mut(to)
                    .ok_or(ExecError::Overflow("recipient account"))?;
                recipient.balance = recipient
                    .balance
                    .checked_add(*amount)
                    .ok_or(ExecError::Overflow("recipient balance"))?;
                outcome.events.push(Event {
                    kind: "transfer",
                    attributes: vec![
                        ("from", signer.to_string()),
                        ("to", to.to_string()),
                        ("amount", amount.to_string()),
                    ],
                });
            }
            Action::RegisterRollup {
                rollup_id,
                name,
                settings,
            } => {
                if load_rollup(state, &mut rollups, *rollup_id)?.is_some() {
                    return Err(ExecError::RollupExists(*rollup_id));
                }
                check_windows(params, settings.proof_window, settings.inclusion_window)?;
                check_verifying_key(&settings.verifying_key)?;
                let span_blocks = params
                    .span_blocks(settings.span_blocks)
                    .map_err(ExecError::InvalidParameter)?;
                rollups.insert(
                    *rollup_id,
                    pb::Rollup {
                        id: *rollup_id,
                        name: name.clone(),
                        owner: signer.0.to_vec(),
                        verifying_key: settings.verifying_key.clone(),
                        proof_window: settings.proof_window,
                        inclusion_window: settings.inclusion_window,
                        registered_height: height,
                        stats: Some(pb::RollupStats::default()),
                        span_blocks,
                    },
                );
                outcome.events.push(Event {
                    kind: "register_rollup",
                    attributes: vec![
                        ("rollup_id", rollup_id.to_string()),
                        ("owner", signer.to_string()),
                    ],
                });
            }
            Action::UpdateRollup {
                rollup_id,
                settings,
            } => {
                let rollup = load_rollup(state, &mut rollups, *rollup_id)?
                    .ok_or(ExecError::UnknownRollup(*rollup_id))?;
                if rollup.owner != signer.0 {
                    return Err(ExecError::NotOwner {
                        signer,
                        rollup_id: *rollup_id,
                    });
                }
                check_windows(params, settings.proof_window, settings.inclusion_window)?;
                check_verifying_key(&settings.verifying_key)?;
                rollup.span_blocks = params
                    .span_blocks(settings.span_blocks)
                    .map_err(ExecError::InvalidParameter)?;
                rollup.verifying_key = settings.verifying_key.clone();
                rollup.proof_window = settings.proof_window;
                rollup.inclusion_window = settings.inclusion_window;
                outcome.events.push(Event {
                    kind: "update_rollup",
                    attributes: vec![("rollup_id", rollup_id.to_string())],
                });
            }
            Action::ForceInclude { tx: inner } => {
                let hash = inner.hash();
                let duplicate = forced
                    .iter()
                    .any(|(t, _): &(Transaction, u64)| t.hash() == hash);
                if duplicate || state.forced_by_hash(&hash)?.is_some() {
                    return Err(ExecError::ForcedKnown(hex::encode(hash)));
                }
                let queue = state.forced_queue()?;
                let open = (queue.pending.len() + forced.len()) as u64;
                if open >= params.max_pending_forced {
                    return Err(ExecError::ForcedQueueFull {
                        limit: params.max_pending_forced,
                    });
                }
                let window = crate::forced::window(state, params, inner)?;
                let deadline = height
                    .checked_add(window)
                    .ok_or(ExecError::Overflow("deadline"))?;
                forced.push((inner.as_ref().clone(), deadline));
            }
            Action::RegisterProver { stake } => {
                let from = accounts
                    .get_mut(&signer)
                    .ok_or(ExecError::Overflow("signer account"))?;
                from.balance =
                    from.balance
                        .checked_sub(*stake)
                        .ok_or(ExecError::InsufficientBalance {
                            address: signer,
                            balance: from.balance,
                            needed: *stake,
                        })?;
                let record = load_prover(state, &mut prover, signer)?;
                let updated = match record.take() {
                    Some(mut existing) => {
                        if existing.status == pb::ProverStatus::Unbonding as i32 {
                            return Err(ExecError::ProverState {
                                address: signer,
                                reason: "is unbonding; it cannot add stake".into(),
                            });
                        }
                        existing.stake = existing
                            .stake
                            .checked_add(*stake)
                            .ok_or(ExecError::Overflow("prover stake"))?;
                        existing
                    }
                    None => {
                        if *stake < params.min_prover_stake {
                            return Err(ExecError::StakeTooLow {
                                stake: *stake,
                                min: params.min_prover_stake,
                            });
                        }
                        crate::provers::new_record(signer, *stake)
                    }
                };
                outcome.events.push(Event {
                    kind: "register_prover",
                    attributes: vec![
                        ("prover", signer.to_string()),
                        ("added", stake.to_string()),
                        ("stake", updated.stake.to_string()),
                    ],
                });
                *record = Some(updated);
            }
            Action::Unbond => {
                let record = load_prover(state, &mut prover, signer)?;
                let existing = record.as_mut().ok_or(ExecError::ProverUnknown(signer))?;
                if existing.status == pb::ProverStatus::Unbonding as i32 {
                    return Err(ExecError::ProverState {
                        address: signer,
                        reason: format!("is already unbonding (until {})", existing.unbond_at),
                    });
                }
                existing.status = pb::ProverStatus::Unbonding as i32;
                existing.unbond_at = height
                    .checked_add(params.unbonding_period)
                    .ok_or(ExecError::Overflow("unbonding height"))?;
                outcome.events.push(Event {
                    kind: "unbond",
                    attributes: vec![
                        ("prover", signer.to_string()),
                        ("stake", existing.stake.to_string()),
                        ("unbond_at", existing.unbond_at.to_string()),
                    ],
                });
            }
            Action::Unjail => {
                let record = load_prover(state, &mut prover, signer)?;
                let existing = record.as_mut().ok_or(ExecError::ProverUnknown(signer))?;
                if existing.status != pb::ProverStatus::Jailed as i32 {
                    return Err(ExecError::ProverState {
                        address: signer,
                        reason: "is not jailed".into(),
                    });
                }
                if height < existing.jailed_until {
                    return Err(ExecError::Jailed {
                        address: signer,
                        until: existing.jailed_until,
                    });
                }
                existing.status = pb::ProverStatus::Bonded as i32;
                existing.misses = 0;
                outcome.events.push(Event {
                    kind: "unjail",
                    attributes: vec![("prover", signer.to_string())],
                });
            }
            Action::SubmitProof {
                rollup_id,
                from_height,
                proof,
                prev_state_root,
                new_state_root,
            } => {
                let earlier: Vec<_> = proofs.iter().map(|(p, _)| p.clone()).collect();
                let accepted = crate::provers::check_proof(
                    state,
                    signer,
                    *rollup_id,
                    *from_height,
                    proof,
                    prev_state_root,
                    new_state_root,
                    &earlier,
                )?;
                proofs.push((accepted, None));
            }
            Action::SubmitAggregate { entries, aggregate } => {
                let earlier: Vec<_> = proofs.iter().map(|(p, _)| p.clone()).collect();
                let accepted =
                    crate::provers::check_aggregate(state, params, entries, aggregate, &earlier)?;
                let index = aggregates.len();
                aggregates.push(accepted.len());
                proofs.extend(accepted.into_iter().map(|p| (p, Some(index))));
            }
        }
    }
    Ok(Planned {
        outcome,
        fee: body.fee,
        accounts,
        rollups,
        forced,
        prover: prover.flatten(),
        proofs,
        aggregates,
        height,
    })
}

fn load_rollup<'a>(
    state: &StateDelta,
    cache: &'a mut BTreeMap<RollupId, pb::Rollup>,
    id: RollupId,
) -> Result<Option<&'a mut pb::Rollup>, ExecError> {
    if let std::collections::btree_map::Entry::Vacant(slot) = cache.entry(id) {
        match state.rollup(id)? {
            Some(r) => {
                slot.insert(r);
            }
            None => return Ok(None),
        }
    }
    Ok(cache.get_mut(&id))
}

/// The signer's prover record as planned so far (loaded on first use).
fn load_prover<'a>(
    state: &StateDelta,
    slot: &'a mut Option<Option<pb::Prover>>,
    signer: Address,
) -> Result<&'a mut Option<pb::Prover>, ExecError> {
    if slot.is_none() {
        *slot = Some(crate::provers::prover(state, &signer)?);
    }
    slot.as_mut().ok_or(ExecError::Overflow("prover record"))
}

/// A verifying key must decode (curve and subgroup checks) before a rollup
/// may register it: a key nobody can prove against would stall finality.
fn check_verifying_key(vk: &[u8]) -> Result<(), ExecError> {
    if vk.is_empty() {
        return Ok(());
    }
    crate::provers::prepared_key(vk)
        .map(|_| ())
        .map_err(|e| ExecError::InvalidParameter(format!("verifying key: {e}")))
}

fn check_windows(params: &ChainParams, proof: u64, inclusion: u64) -> Result<(), ExecError> {
    if proof > params.max_proof_window {
        return Err(ExecError::InvalidParameter(format!(
            "proof_window {proof} exceeds the chain's maximum {}",
            params.max_proof_window
        )));
    }
    if inclusion > params.max_inclusion_window {
        return Err(ExecError::InvalidParameter(format!(
            "inclusion_window {inclusion} exceeds the chain's maximum {}",
            params.max_inclusion_window
        )));
    }
    Ok(())
}
