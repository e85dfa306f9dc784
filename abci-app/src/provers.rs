//! The prover set, proof jobs and proof-gated finality: prover records
//! (`RegisterProver`, `Unbond`, `Unjail`), the active set per epoch, the jobs
//! opened for every non-empty batch of a rollup with a verifying key, their
//! deadlines, reassignment with slashing and bounties, `SubmitProof`
//! acceptance and rewards, and the proven height.
//!
//! Rules (all at the end of a block `h`, in [`end_block`], in this order):
//!
//! 1. Unbonding provers whose `unbond_at <= h` get their stake back; their
//!    record is removed.
//! 2. Epoch boundary when `(h - 1) % epoch_length == 0` (h = 1, E + 1, ...):
//!    epoch `(h - 1) / epoch_length`; the active set is every BONDED prover
//!    with `stake >= min_prover_stake`, the top `max_active_provers` by stake
//!    (ties: lower address first), stored sorted by address with
//!    `seed = SHA-256(app hash of h - 1 || epoch)`. Registrations, unbonds and
//!    jailings of the boundary block itself count.
//! 3. Deadlines: an open job whose `deadline <= h` (its prover could prove in
//!    blocks up to and including the deadline) moves to the next *eligible*
//!    prover of its order (eligible: a BONDED record) with deadline
//!    `h + proof_window`; the prover that missed loses `slash_bps` of its stake
//!    (rounded down, never more than its stake), its `misses` count up and it is
//!    jailed for `jail_period` blocks at `jail_after_misses`; `bounty_bps` of the
//!    slashed amount is held by the job for whoever proves it, the rest is
//!    burned. When the order is exhausted it is drawn again from the current
//!    epoch's set (same seed, so the cycle repeats until the epoch changes).
//!    A job with no eligible prover *waits* (no deadline, no slashing) and is
//!    assigned at the first block end where one exists.
//!    Only a rollup's lowest open job can be proven, so only its deadline can
//!    be missed. Every other open job is held to a deadline of at least
//!    `h + proof_window` (a full window once its predecessor is proven: an
//!    honest back-up is never slashed for waiting behind a stalled job), and
//!    moves on without slashing when its prover missed a deadline in this
//!    block or is no longer eligible (a dead prover's queued jobs leave it at
//!    once instead of stalling the rollup one window each).
//! 4. Every non-empty batch of block `h` of a rollup with a verifying key opens
//!    job `(rollup, h)` with its [`batch_commitment`], the fees its transactions
//!    paid (a transaction's fee is split over the rollups it writes to by data
//!    bytes, remainder to the lowest rollup id), its rotation order and
//!    deadline `h + proof_window`.
//! 5. `proven_height` = `h` if no job is open, else (lowest open height) - 1.
//!
//! `SubmitProof` is accepted only for the rollup's lowest open job, only from
//! its assigned prover, and only if the proof verifies against the rollup's
//! current verifying key with `prev_root` = the rollup's last proven root
//! (32 zero bytes before the first proof). The prover then earns
//! `prover_fee_share_bps` of the job's fees (from the fee pool) and the job's
//! bounty. Proofs are never identified by their bytes (they are malleable).
//!
//! `SubmitAggregate` ([`check_aggregate`]) applies the same job rules to
//! each of its entries (with the entry's signing prover in place of the
//! transaction's signer), verifies one SnarkPack aggregate for all of them,
//! credits each prover exactly as `SubmitProof` does, and pays the sender
//! `aggregator_fee_bps` of the covered jobs' fees.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use seqnet_proto::aggregate::{
    padded_size, verify_aggregate_prepared, AggregateError, PreparedVerifierSrs, VerifierSrs,
};
use seqnet_proto::groth16::{batch_commitment, BatchStatement, PreparedKey, ProofError};
use seqnet_proto::{pb, Address, ProofEntry, RollupId};

use crate::execute::{Event, ExecError};
use crate::params::ChainParams;
use crate::rotation::{assignment_order, epoch_seed};
use crate::state::StateDelta;
use crate::store::StoreError;

const BPS: u128 = 10_000;
/// Verifying keys kept prepared in memory (pure memo: results never differ).
const KEY_CACHE_SIZE: usize = 64;

/// `stake * bps / 10_000`, rounded down and never above `stake`.
pub fn slash_amount(stake: u64, bps: u32) -> u64 {
    let amount = u128::from(stake) * u128::from(bps) / BPS;
    u64::try_from(amount).unwrap_or(u64::MAX).min(stake)
}

/// Splits a slashed amount into (bounty, burned); they add up to `slashed`.
pub fn split_bounty(slashed: u64, bounty_bps: u32) -> (u64, u64) {
    let bounty = slash_amount(slashed, bounty_bps);
    (bounty, slashed - bounty)
}

/// `fees * bps / 10_000`, rounded down.
pub fn fee_share(fees: u64, bps: u32) -> u64 {
    slash_amount(fees, bps)
}

/// Whether `height` ends an epoch boundary block, and that epoch's number.
pub fn epoch_at(height: u64, epoch_length: u64) -> Option<u64> {
    let length = epoch_length.max(1);
    let offset = height.checked_sub(1)?;
    (offset % length == 0).then_some(offset / length)
}

type KeyCache = Mutex<BTreeMap<[u8; 32], Result<Arc<PreparedKey>, ProofError>>>;

/// The prepared form of an encoded verifying key, memoized by its hash.
pub fn prepared_key(vk: &[u8]) -> Result<Arc<PreparedKey>, ProofError> {
    static CACHE: OnceLock<KeyCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let hash = seqnet_proto::sha256(vk);
    if let Ok(map) = cache.lock() {
        if let Some(found) = map.get(&hash) {
            return found.clone();
        }
    }
    let result = PreparedKey::decode(vk).map(Arc::new);
    if let Ok(mut map) = cache.lock() {
        if map.len() >= KEY_CACHE_SIZE {
            map.clear();
        }
        map.insert(hash, result.clone());
    }
    result
}

/// Most verified (key, statement, proof) triples remembered.
const VERIFIED_CACHE_SIZE: usize = 4_096;

fn verified_set() -> &'static Mutex<BTreeSet<[u8; 32]>> {
    static VERIFIED: OnceLock<Mutex<BTreeSet<[u8; 32]>>> = OnceLock::new();
    VERIFIED.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// The memo key of a (verifying key, statement, proof) triple.
pub fn verified_id(vk: &[u8], proof: &[u8], statement: &BatchStatement) -> [u8; 32] {
    let mut buf = Vec::with_capacity(32 + 16 + 96 + proof.len());
    buf.extend_from_slice(&seqnet_proto::sha256(vk));
    buf.extend_from_slice(&statement.rollup_id.to_be_bytes());
    buf.extend_from_slice(&statement.height.to_be_bytes());
    buf.extend_from_slice(&statement.commitment);
    buf.extend_from_slice(&statement.prev_root);
    buf.extend_from_slice(&statement.new_root);
    buf.extend_from_slice(proof);
    seqnet_proto::sha256(&buf)
}

/// Whether the triple with memo key `id` verified before.
pub fn is_verified(id: &[u8; 32]) -> bool {
    verified_set().lock().is_ok_and(|set| set.contains(id))
}

/// Remembers that the triple with memo key `id` verified (only ever call this
/// after a successful verification, single or batch).
pub fn remember_verified(id: [u8; 32]) {
    if let Ok(mut set) = verified_set().lock() {
        if set.len() >= VERIFIED_CACHE_SIZE {
            set.clear();
        }
        set.insert(id);
    }
}

/// Verifies `proof` of `statement` under `vk`, remembering successes so that
/// CheckTx, PrepareProposal, ProcessProposal and FinalizeBlock pay for the
/// pairings once (and a block's proofs, batch-verified up front by
/// [`crate::proof_batch`], pay nothing here). A pure memo: a miss verifies
/// again, the verdict is the same.
pub fn verify_cached(
    vk: &[u8],
    proof: &[u8],
    statement: &BatchStatement,
) -> Result<(), ProofError> {
    let id = verified_id(vk, proof, statement);
    if is_verified(&id) {
        return Ok(());
    }
    prepared_key(vk)?.verify(proof, statement)?;
    remember_verified(id);
    Ok(())
}

fn address_of(bytes: &[u8]) -> Option<Address> {
    Address::from_slice(bytes)
}

fn root_of(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes).unwrap_or([0; 32])
}

/// The record of `address`, if it has one.
pub fn prover(state: &StateDelta, address: &Address) -> Result<Option<pb::Prover>, StoreError> {
    Ok(state
        .prover_registry()?
        .provers
        .into_iter()
        .find(|p| p.address == address.0))
}

/// Writes (inserts or replaces) one prover record.
pub fn put_prover(state: &mut StateDelta, record: pb::Prover) -> Result<(), StoreError> {
    let mut registry = state.prover_registry()?;
    match registry
        .provers
        .binary_search_by(|p| p.address.as_slice().cmp(record.address.as_slice()))
    {
        Ok(i) => registry.provers[i] = record,
        Err(i) => registry.provers.insert(i, record),
    }
    state.put_prover_registry(&registry);
    Ok(())
}

fn is_eligible(registry: &BTreeMap<Address, pb::Prover>, address: &Address) -> bool {
    registry
        .get(address)
        .is_some_and(|p| p.status == pb::ProverStatus::Bonded as i32)
}

/// What [`check_prover_action`] planned for the signer's record.
pub fn new_record(address: Address, stake: u64) -> pb::Prover {
    pb::Prover {
        address: address.0.to_vec(),
        stake,
        status: pb::ProverStatus::Bonded as i32,
        ..Default::default()
    }
}

/// A proof that passed every check, to record in `apply`.
#[derive(Clone, Debug)]
pub struct AcceptedProof {
    pub rollup_id: RollupId,
    pub height: u64,
    pub new_root: [u8; 32],
    pub prover: Address,
    /// The root the proof started from (the rollup's previous proven root).
    pub prev_root: [u8; 32],
    /// The proof as submitted, kept with the proven job for PROVEN streams.
    pub proof: Vec<u8>,
}

/// The open job `(rollup_id, height)` if it is the rollup's next one (lowest
/// open, not counting those proven by `earlier`) and assigned to `prover`,
/// with the root its proof starts from (the last of `earlier` for the
/// rollup, else the rollup's proven root).
fn next_job(
    state: &StateDelta,
    queue: &pb::ProofQueue,
    prover: Address,
    rollup_id: RollupId,
    height: u64,
    earlier: &[AcceptedProof],
) -> Result<(pb::ProofJob, [u8; 32]), ExecError> {
    let done: BTreeSet<u64> = earlier
        .iter()
        .filter(|p| p.rollup_id == rollup_id)
        .map(|p| p.height)
        .collect();
    let open: Vec<&pb::ProofJob> = queue
        .open
        .iter()
        .filter(|j| j.rollup_id == rollup_id && !done.contains(&j.height))
        .collect();
    let job = open
        .iter()
        .find(|j| j.height == height)
        .ok_or(ExecError::JobUnknown { rollup_id, height })?;
    let lowest = open.iter().map(|j| j.height).min().unwrap_or(height);
    if lowest != height {
        return Err(ExecError::OutOfOrder {
            rollup_id,
            height,
            next: lowest,
        });
    }
    if job.assigned != prover.0 {
        return Err(ExecError::NotAssigned {
            rollup_id,
            height,
            assigned: if job.assigned.is_empty() {
                "nobody".into()
            } else {
                hex::encode(&job.assigned)
            },
        });
    }
    let prev_root = match earlier
        .iter()
        .filter(|p| p.rollup_id == rollup_id)
        .max_by_key(|p| p.height)
    {
        Some(p) => p.new_root,
        None => root_of(&state.rollup_proving(rollup_id)?.proven_root),
    };
    Ok(((*job).clone(), prev_root))
}

/// Every check of a `SubmitProof` by `signer`; `earlier` are the proofs
/// accepted by previous actions of the same transaction (not yet written).
pub fn check_proof(
    state: &StateDelta,
    signer: Address,
    rollup_id: RollupId,
    height: u64,
    proof: &[u8],
    new_root: &[u8; 32],
    earlier: &[AcceptedProof],
) -> Result<AcceptedProof, ExecError> {
    let queue = state.proof_queue()?;
    let (job, prev_root) = next_job(state, &queue, signer, rollup_id, height, earlier)?;
    let rollup = state
        .rollup(rollup_id)?
        .ok_or(ExecError::UnknownRollup(rollup_id))?;
    prepared_key(&rollup.verifying_key)
        .map_err(|e| ExecError::ProofMalformed(format!("rollup {rollup_id} verifying key: {e}")))?;
    let statement = BatchStatement {
        rollup_id,
        height,
        commitment: root_of(&job.commitment),
        prev_root,
        new_root: *new_root,
    };
    verify_cached(&rollup.verifying_key, proof, &statement).map_err(|e| match e {
        ProofError::Invalid => ExecError::ProofRejected(e.to_string()),
        other => ExecError::ProofMalformed(other.to_string()),
    })?;
    Ok(AcceptedProof {
        rollup_id,
        height,
        new_root: *new_root,
        prover: signer,
        prev_root,
        proof: proof.to_vec(),
    })
}

type SrsCache = Mutex<BTreeMap<[u8; 32], Result<Arc<PreparedVerifierSrs>, AggregateError>>>;

/// The prepared form of an encoded verifier SRS, memoized by its hash.
pub fn prepared_srs(bytes: &[u8]) -> Result<Arc<PreparedVerifierSrs>, AggregateError> {
    static CACHE: OnceLock<SrsCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let hash = seqnet_proto::sha256(bytes);
    if let Ok(map) = cache.lock() {
        if let Some(found) = map.get(&hash) {
            return found.clone();
        }
    }
    let result = VerifierSrs::decode(bytes).map(|srs| Arc::new(PreparedVerifierSrs::from(srs)));
    if let Ok(mut map) = cache.lock() {
        if map.len() >= 8 {
            map.clear();
        }
        map.insert(hash, result.clone());
    }
    result
}

/// The memo key of a verified aggregate: SRS, key, every statement and the
/// aggregate bytes (in the same set as [`verified_id`], under its own domain).
fn aggregate_id(
    srs: &[u8],
    vk: &[u8],
    statements: &[BatchStatement],
    aggregate: &[u8],
) -> [u8; 32] {
    let mut buf = Vec::with_capacity(64 + statements.len() * 112 + aggregate.len() + 32);
    buf.extend_from_slice(b"seqnet/aggregate-memo/v1");
    buf.extend_from_slice(&seqnet_proto::sha256(srs));
    buf.extend_from_slice(&seqnet_proto::sha256(vk));
    buf.extend_from_slice(&(statements.len() as u64).to_be_bytes());
    for s in statements {
        buf.extend_from_slice(&s.rollup_id.to_be_bytes());
        buf.extend_from_slice(&s.height.to_be_bytes());
        buf.extend_from_slice(&s.commitment);
        buf.extend_from_slice(&s.prev_root);
        buf.extend_from_slice(&s.new_root);
    }
    buf.extend_from_slice(aggregate);
    seqnet_proto::sha256(&buf)
}

/// What [`check_aggregate`] accepted: one proof per entry (with no proof
/// bytes: the aggregate stands for them) and the aggregator's fee.
#[derive(Clone, Debug)]
pub struct AcceptedAggregate {
    pub proofs: Vec<AcceptedProof>,
    pub aggregator_fee: u64,
}

/// Every check of a `SubmitAggregate`; `earlier` as for [`check_proof`].
///
/// Rules: aggregation is enabled (`params.aggregation_srs` set) and the
/// padded entry count fits the SRS; every entry passes the job checks of
/// `SubmitProof` with its `prover` in place of the signer (the job is the
/// rollup's next open one once the previous entries count as proven, and is
/// assigned to that prover; entry signatures were checked statelessly);
/// every covered rollup has the same non-empty verifying key (byte for
/// byte); each statement starts from the previous entry's root of its rollup
/// (the rollup's proven root for its first entry); the aggregate verifies
/// once for all statements, in entry order. The aggregator earns
/// `aggregator_fee_bps` of each covered job's fees.
pub fn check_aggregate(
    state: &StateDelta,
    params: &ChainParams,
    entries: &[ProofEntry],
    aggregate: &[u8],
    earlier: &[AcceptedProof],
) -> Result<AcceptedAggregate, ExecError> {
    if params.aggregation_srs.is_empty() {
        return Err(ExecError::InvalidParameter(
            "aggregation is not enabled on this chain (params.aggregation_srs is empty)".into(),
        ));
    }
    let srs_bytes = hex::decode(&params.aggregation_srs)
        .map_err(|e| ExecError::InvalidParameter(format!("aggregation_srs: {e}")))?;
    let srs = prepared_srs(&srs_bytes)
        .map_err(|e| ExecError::InvalidParameter(format!("aggregation_srs: {e}")))?;
    let max = srs.srs.max_proofs as usize;
    if padded_size(entries.len()) > max {
        return Err(ExecError::InvalidParameter(format!(
            "aggregate of {} entries exceeds the chain's SRS ({max} proofs)",
            entries.len()
        )));
    }
    let queue = state.proof_queue()?;
    let mut all: Vec<AcceptedProof> = earlier.to_vec();
    let mut proofs = Vec::with_capacity(entries.len());
    let mut statements = Vec::with_capacity(entries.len());
    let mut keys: BTreeMap<RollupId, Vec<u8>> = BTreeMap::new();
    let mut aggregator_fee: u64 = 0;
    for entry in entries {
        let rollup_id = entry.rollup_id;
        let (job, prev_root) =
            next_job(state, &queue, entry.prover, rollup_id, entry.height, &all)?;
        if let std::collections::btree_map::Entry::Vacant(slot) = keys.entry(rollup_id) {
            let rollup = state
                .rollup(rollup_id)?
                .ok_or(ExecError::UnknownRollup(rollup_id))?;
            slot.insert(rollup.verifying_key);
        }
        aggregator_fee = aggregator_fee
            .checked_add(fee_share(job.fees, params.aggregator_fee_bps))
            .ok_or(ExecError::Overflow("aggregator fee"))?;
        statements.push(BatchStatement {
            rollup_id,
            height: entry.height,
            commitment: root_of(&job.commitment),
            prev_root,
            new_root: entry.new_state_root,
        });
        let accepted = AcceptedProof {
            rollup_id,
            height: entry.height,
            new_root: entry.new_state_root,
            prover: entry.prover,
            prev_root,
            proof: Vec::new(),
        };
        all.push(accepted.clone());
        proofs.push(accepted);
    }
    let mut distinct = keys.iter();
    let Some((first_rollup, vk)) = distinct.next() else {
        return Err(ExecError::ProofMalformed(
            "aggregate without entries".into(),
        ));
    };
    if let Some((other, _)) = distinct.find(|(_, k)| *k != vk) {
        return Err(ExecError::ProofMalformed(format!(
            "rollups {first_rollup} and {other} have different verifying keys; an aggregate covers one key"
        )));
    }
    let key = prepared_key(vk).map_err(|e| {
        ExecError::ProofMalformed(format!("rollup {first_rollup} verifying key: {e}"))
    })?;
    let id = aggregate_id(&srs_bytes, vk, &statements, aggregate);
    if !is_verified(&id) {
        verify_aggregate_prepared(&srs, &key, &statements, aggregate).map_err(|e| match e {
            AggregateError::Invalid | AggregateError::InvalidMipp => {
                ExecError::ProofRejected(e.to_string())
            }
            other => ExecError::ProofMalformed(other.to_string()),
        })?;
        remember_verified(id);
    }
    Ok(AcceptedAggregate {
        proofs,
        aggregator_fee,
    })
}

/// Pays an accepted aggregate's sender its fee from the fee pool (never more
/// than the pool holds) at the end of the transaction that carried it.
pub fn pay_aggregator(
    state: &mut StateDelta,
    aggregator: Address,
    fee: u64,
    entries: usize,
) -> Result<Event, ExecError> {
    let pool = state.fee_pool()?;
    let paid = fee.min(pool);
    state.put_fee_pool(pool - paid);
    let mut account = state.account(&aggregator)?;
    account.balance = account
        .balance
        .checked_add(paid)
        .ok_or(ExecError::Overflow("aggregator balance"))?;
    state.put_account(&account);
    Ok(Event {
        kind: "aggregate_accepted",
        attributes: vec![
            ("aggregator", aggregator.to_string()),
            ("entries", entries.to_string()),
            ("fee", paid.to_string()),
        ],
    })
}

/// Records an accepted proof at `now`: closes the job, advances the rollup's
/// proven root and pays the prover its fee share and the job's bounty.
pub fn record_proof(
    state: &mut StateDelta,
    params: &ChainParams,
    accepted: &AcceptedProof,
    now: u64,
) -> Result<Event, ExecError> {
    let mut queue = state.proof_queue()?;
    let position = queue
        .open
        .iter()
        .position(|j| j.rollup_id == accepted.rollup_id && j.height == accepted.height)
        .ok_or(ExecError::JobUnknown {
            rollup_id: accepted.rollup_id,
            height: accepted.height,
        })?;
    let mut job = queue.open.remove(position);
    let pool = state.fee_pool()?;
    let share = fee_share(job.fees, params.prover_fee_share_bps).min(pool);
    state.put_fee_pool(pool - share);
    let reward = share
        .checked_add(job.bounty)
        .ok_or(ExecError::Overflow("prover reward"))?;
    let mut account = state.account(&accepted.prover)?;
    account.balance = account
        .balance
        .checked_add(reward)
        .ok_or(ExecError::Overflow("prover balance"))?;
    state.put_account(&account);
    if let Some(mut record) = prover(state, &accepted.prover)? {
        record.proven = record.proven.saturating_add(1);
        record.earned = record.earned.saturating_add(reward);
        put_prover(state, record)?;
    }
    job.status = pb::JobStatus::Proven as i32;
    job.prover = accepted.prover.0.to_vec();
    job.new_root = accepted.new_root.to_vec();
    job.proven_height = now;
    job.proof = accepted.proof.clone();
    job.prev_root = accepted.prev_root.to_vec();
    state.put_proof_job(&job);
    state.put_proof_queue(&queue);
    state.put_rollup_proving(&pb::RollupProving {
        rollup_id: accepted.rollup_id,
        proven_height: accepted.height,
        proven_root: accepted.new_root.to_vec(),
    });
    Ok(Event {
        kind: "job_proven",
        attributes: vec![
            ("rollup_id", accepted.rollup_id.to_string()),
            ("height", accepted.height.to_string()),
            ("prover", accepted.prover.to_string()),
            ("new_root", hex::encode(accepted.new_root)),
            ("fee_share", share.to_string()),
            ("bounty", job.bounty.to_string()),
        ],
    })
}

/// One rollup's batch of a finalized block, for [`end_block`].
pub struct BlockBatch<'a> {
    pub rollup_id: RollupId,
    pub items: &'a [pb::BatchItem],
    pub fees: u64,
}

/// What [`end_block`] did, for events and metrics.
#[derive(Debug, Default)]
pub struct ProverBlock {
    pub events: Vec<Event>,
    pub jobs_opened: u64,
    pub jobs_reassigned: u64,
    pub jobs_open: u64,
    /// Open jobs reassigned at least once (a prover missed their deadline).
    pub jobs_late: u64,
    pub proven_height: u64,
    pub epoch_changed: bool,
}

/// Splits each transaction's fee over the rollups it writes to, by data bytes
/// (remainder to the lowest rollup id). `txs`: (fee, [(rollup, data bytes)]).
pub fn batch_fees(txs: &[(u64, Vec<(RollupId, u64)>)]) -> BTreeMap<RollupId, u64> {
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
            let share = (u128::from(*fee) * u128::from(*b))
                .checked_div(total)
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

/// The active set: BONDED with enough stake, top `max_active_provers` by
/// stake (ties: lower address), returned sorted by address.
pub fn select_active(registry: &pb::ProverRegistry, params: &ChainParams) -> Vec<(Address, u64)> {
    let mut candidates: Vec<(Address, u64)> = registry
        .provers
        .iter()
        .filter(|p| {
            p.status == pb::ProverStatus::Bonded as i32 && p.stake >= params.min_prover_stake
        })
        .filter_map(|p| address_of(&p.address).map(|a| (a, p.stake)))
        .collect();
    candidates.sort_by(|(a, sa), (b, sb)| sb.cmp(sa).then(a.cmp(b)));
    candidates.truncate(usize::try_from(params.max_active_provers).unwrap_or(usize::MAX));
    candidates.sort();
    candidates
}

fn active_of(set: &pb::ProverSet) -> Vec<(Address, u64)> {
    set.active
        .iter()
        .filter_map(|p| address_of(&p.address).map(|a| (a, p.stake)))
        .collect()
}

struct Assigner {
    active: Vec<(Address, u64)>,
    seed: [u8; 32],
    /// The block whose end assigns (recorded as `assigned_height`).
    height: u64,
}

impl Assigner {
    /// Assigns `job` to the first eligible prover of its order from `from`
    /// on, drawing a fresh order from the current set when that one is used
    /// up. Returns whether a prover was assigned.
    fn assign(
        &self,
        job: &mut pb::ProofJob,
        from: usize,
        registry: &BTreeMap<Address, pb::Prover>,
        deadline: u64,
    ) -> bool {
        let pick = |order: &[Vec<u8>], from: usize| {
            order
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, a)| address_of(a).is_some_and(|a| is_eligible(registry, &a)))
                .map(|(i, a)| (i, a.clone()))
        };
        let mut found = pick(&job.order, from);
        if found.is_none() && !self.active.is_empty() {
            job.order = assignment_order(&self.seed, job.rollup_id, job.height, &self.active)
                .into_iter()
                .map(|a| a.0.to_vec())
                .collect();
            found = pick(&job.order, 0);
        }
        match found {
            Some((index, address)) => {
                job.assigned_index = index as u64;
                job.assigned = address;
                job.deadline = deadline;
                job.assigned_height = self.height;
                true
            }
            None => {
                job.assigned = Vec::new();
                job.deadline = 0;
                job.assigned_height = 0;
                false
            }
        }
    }
}

/// End of block `height`: unbonding, epoch change, deadlines, new jobs and
/// the proven height (see the module docs for the rules). Only storage can
/// fail: arithmetic here saturates, so every node ends every block.
pub fn end_block(
    state: &mut StateDelta,
    params: &ChainParams,
    height: u64,
    previous_app_hash: &[u8],
    batches: &[BlockBatch<'_>],
) -> Result<ProverBlock, StoreError> {
    let mut out = ProverBlock::default();
    let original = state.prover_registry()?;
    let mut registry: BTreeMap<Address, pb::Prover> = original
        .provers
        .iter()
        .filter_map(|p| address_of(&p.address).map(|a| (a, p.clone())))
        .collect();

    // 1. Matured unbondings.
    let matured: Vec<Address> = registry
        .iter()
        .filter(|(_, p)| p.status == pb::ProverStatus::Unbonding as i32 && p.unbond_at <= height)
        .map(|(a, _)| *a)
        .collect();
    for address in matured {
        if let Some(record) = registry.remove(&address) {
            let mut account = state.account(&address)?;
            // Saturating: a block end must never fail on arithmetic.
            account.balance = account.balance.saturating_add(record.stake);
            state.put_account(&account);
            out.events.push(Event {
                kind: "prover_unbonded",
                attributes: vec![
                    ("prover", address.to_string()),
                    ("stake", record.stake.to_string()),
                ],
            });
        }
    }

    // 2. Epoch boundary.
    let mut set = state.prover_set()?;
    if let Some(epoch) = epoch_at(height, params.epoch_length) {
        let snapshot = pb::ProverRegistry {
            provers: registry.values().cloned().collect(),
        };
        let active = select_active(&snapshot, params);
        set = pb::ProverSet {
            epoch,
            start_height: height,
            seed: epoch_seed(previous_app_hash, epoch).to_vec(),
            active: active
                .iter()
                .map(|(a, s)| pb::ActiveProver {
                    address: a.0.to_vec(),
                    stake: *s,
                })
                .collect(),
        };
        state.put_prover_set(&set);
        out.epoch_changed = true;
        out.events.push(Event {
            kind: "prover_epoch",
            attributes: vec![
                ("epoch", epoch.to_string()),
                ("active", set.active.len().to_string()),
                ("seed", hex::encode(&set.seed)),
            ],
        });
    }
    let assigner = Assigner {
        active: active_of(&set),
        seed: root_of(&set.seed),
        height,
    };

    // 3. Deadlines and waiting jobs.
    let mut queue = state.proof_queue()?;
    let mut queue_changed = false;
    let mut windows: BTreeMap<RollupId, u64> = BTreeMap::new();
    let mut window_of = |state: &StateDelta, id: RollupId| -> Result<u64, StoreError> {
        if let Some(w) = windows.get(&id) {
            return Ok(*w);
        }
        let w = state
            .rollup(id)?
            .map(|r| r.proof_window)
            .unwrap_or(params.max_proof_window)
            .max(1);
        windows.insert(id, w);
        Ok(w)
    };
    // Jobs are kept sorted by (rollup, height): the first of each rollup is
    // its lowest open job, the only one that can be proven.
    let mut seen: BTreeSet<RollupId> = BTreeSet::new();
    let lowest: Vec<bool> = queue
        .open
        .iter()
        .map(|job| seen.insert(job.rollup_id))
        .collect();
    let mut missed_now: BTreeSet<Vec<u8>> = BTreeSet::new();
    for (job, is_lowest) in queue.open.iter_mut().zip(lowest.iter().copied()) {
        let deadline = height.saturating_add(window_of(state, job.rollup_id)?);
        if job.assigned.is_empty() {
            if assigner.assign(job, 0, &registry, deadline) {
                queue_changed = true;
                out.events.push(assigned_event("job_assigned", job));
            }
            continue;
        }
        if !is_lowest || job.deadline > height {
            continue;
        }
        missed_now.insert(job.assigned.clone());
        queue_changed = true;
        let missed = address_of(&job.assigned);
        let mut slashed = 0;
        if let Some(record) = missed.and_then(|a| registry.get_mut(&a)) {
            slashed = slash_amount(record.stake, params.slash_bps);
            record.stake -= slashed;
            record.slashed = record.slashed.saturating_add(slashed);
            record.misses = record.misses.saturating_add(1);
            if record.misses >= params.jail_after_misses
                && record.status == pb::ProverStatus::Bonded as i32
            {
                record.status = pb::ProverStatus::Jailed as i32;
                record.jailed_until = height.saturating_add(params.jail_period);
                out.events.push(Event {
                    kind: "prover_jailed",
                    attributes: vec![
                        ("prover", hex::encode(&record.address)),
                        ("until", record.jailed_until.to_string()),
                    ],
                });
            }
        }
        let (bounty, burned) = split_bounty(slashed, params.bounty_bps);
        job.bounty = job.bounty.saturating_add(bounty);
        job.reassignments = job.reassignments.saturating_add(1);
        let from = usize::try_from(job.assigned_index)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let missed_hex = hex::encode(&job.assigned);
        assigner.assign(job, from, &registry, deadline);
        out.jobs_reassigned += 1;
        let mut event = assigned_event("job_reassigned", job);
        event.attributes.extend([
            ("missed", missed_hex),
            ("slashed", slashed.to_string()),
            ("bounty_added", bounty.to_string()),
            ("burned", burned.to_string()),
        ]);
        out.events.push(event);
    }

    // Jobs waiting behind their rollup's lowest one: held, or moved on
    // without slashing away from a prover that just missed or left.
    for (job, is_lowest) in queue.open.iter_mut().zip(lowest) {
        if is_lowest || job.assigned.is_empty() {
            continue;
        }
        let deadline = height.saturating_add(window_of(state, job.rollup_id)?);
        let gone = missed_now.contains(&job.assigned)
            || !address_of(&job.assigned).is_some_and(|a| is_eligible(&registry, &a));
        if gone {
            let from = usize::try_from(job.assigned_index)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let left = hex::encode(&job.assigned);
            assigner.assign(job, from, &registry, deadline);
            queue_changed = true;
            let mut event = assigned_event("job_moved", job);
            event.attributes.push(("from", left));
            out.events.push(event);
        } else if job.deadline < deadline {
            job.deadline = deadline;
            queue_changed = true;
        }
    }

    // 4. New jobs.
    for batch in batches {
        if batch.items.is_empty() {
            continue;
        }
        let Some(rollup) = state.rollup(batch.rollup_id)? else {
            continue;
        };
        if rollup.verifying_key.is_empty() {
            continue;
        }
        let deadline = height.saturating_add(rollup.proof_window.max(1));
        let mut job = pb::ProofJob {
            rollup_id: batch.rollup_id,
            height,
            commitment: batch_commitment(batch.rollup_id, height, batch.items).to_vec(),
            fees: batch.fees,
            status: pb::JobStatus::Open as i32,
            ..Default::default()
        };
        assigner.assign(&mut job, 0, &registry, deadline);
        out.events.push(assigned_event("job_opened", &job));
        queue.open.push(job);
        queue_changed = true;
        out.jobs_opened += 1;
    }

    if queue_changed {
        queue.open.sort_by_key(|j| (j.rollup_id, j.height));
        state.put_proof_queue(&queue);
    }
    let updated = pb::ProverRegistry {
        provers: registry.into_values().collect(),
    };
    if updated != original {
        state.put_prover_registry(&updated);
    }

    // 5. Finality.
    out.jobs_open = queue.open.len() as u64;
    out.jobs_late = queue.open.iter().filter(|j| j.reassignments > 0).count() as u64;
    out.proven_height = match queue.open.iter().map(|j| j.height).min() {
        Some(lowest) => lowest.saturating_sub(1),
        None => height,
    };
    state.put_proven_height(out.proven_height);
    Ok(out)
}

fn assigned_event(kind: &'static str, job: &pb::ProofJob) -> Event {
    Event {
        kind,
        attributes: vec![
            ("rollup_id", job.rollup_id.to_string()),
            ("height", job.height.to_string()),
            ("prover", hex::encode(&job.assigned)),
            ("deadline", job.deadline.to_string()),
            ("commitment", hex::encode(&job.commitment)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn epochs_start_at_one() {
        assert_eq!(epoch_at(0, 10), None);
        assert_eq!(epoch_at(1, 10), Some(0));
        assert_eq!(epoch_at(10, 10), None);
        assert_eq!(epoch_at(11, 10), Some(1));
        assert_eq!(epoch_at(7, 1), Some(6));
    }

    #[test]
    fn fees_split_by_bytes() {
        let fees = batch_fees(&[(100, vec![(2, 30), (1, 10)]), (7, vec![(3, 1)])]);
        // 100 * 10/40 = 25 to rollup 1, 100 * 30/40 = 75 to rollup 2.
        assert_eq!(fees, BTreeMap::from([(1, 25), (2, 75), (3, 7)]));
        let fees = batch_fees(&[(10, vec![(1, 1), (2, 1), (3, 1)])]);
        assert_eq!(fees.values().sum::<u64>(), 10);
        assert_eq!(fees[&1], 4);
    }

    #[test]
    fn active_set_takes_the_top_stakes() {
        let params = ChainParams {
            max_active_provers: 2,
            min_prover_stake: 10,
            ..ChainParams::default()
        };
        let record = |i: u8, stake: u64, status: pb::ProverStatus| pb::Prover {
            address: vec![i; 32],
            stake,
            status: status as i32,
            ..Default::default()
        };
        let registry = pb::ProverRegistry {
            provers: vec![
                record(1, 50, pb::ProverStatus::Bonded),
                record(2, 50, pb::ProverStatus::Bonded),
                record(3, 50, pb::ProverStatus::Bonded),
                record(4, 500, pb::ProverStatus::Jailed),
                record(5, 500, pb::ProverStatus::Unbonding),
                record(6, 9, pb::ProverStatus::Bonded),
            ],
        };
        assert_eq!(
            select_active(&registry, &params),
            vec![(Address([1; 32]), 50), (Address([2; 32]), 50)]
        );
    }

    proptest! {
        #[test]
        fn slashing_never_underflows(stake in any::<u64>(), bps in 0u32..=10_000, bounty_bps in 0u32..=10_000) {
            let slashed = slash_amount(stake, bps);
            prop_assert!(slashed <= stake);
            let left = stake - slashed;
            prop_assert_eq!(left + slashed, stake);
            let (bounty, burned) = split_bounty(slashed, bounty_bps);
            prop_assert_eq!(bounty + burned, slashed);
            // Repeated slashing converges without ever going negative.
            let mut s = stake;
            for _ in 0..50 {
                s -= slash_amount(s, bps);
            }
            prop_assert!(s <= stake);
        }

        #[test]
        fn slashing_never_exceeds_stake_even_with_bad_bps(stake in any::<u64>(), bps in any::<u32>()) {
            prop_assert!(slash_amount(stake, bps) <= stake);
        }

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
