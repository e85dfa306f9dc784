//! The prover set, span jobs and proof-gated finality: prover records
//! (`RegisterProver`, `Unbond`, `Unjail`), the active set per epoch, the
//! spans each rollup's batches are cut into, the proof job of each span, its
//! deadline, reassignment with slashing and bounties, `SubmitProof` and
//! `SubmitAggregate` acceptance as *pending transitions*, linking them into
//! the rollup's proven root, rewards, and the proven height.
//!
//! Ordering never waits for a prover: a job is assigned and delivered as
//! soon as its span closes, whatever the state of earlier spans, and proofs
//! are accepted in any order. They become final in order (at block end a
//! rollup's proven root advances through every consecutive pending
//! transition that starts where the last one ended), as Taiko and Scroll
//! chain theirs.
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
//! 3. Deadlines: the prover of an OPEN job whose `deadline <= h` (it could
//!    prove in blocks up to and including the deadline) missed it: it loses
//!    `slash_bps` of its stake (rounded down, never more than its stake), its
//!    `misses` count up and it is jailed for `jail_period` blocks at
//!    `jail_after_misses`; `bounty_bps` of the slashed amount is held by the
//!    job for whoever proves it, the rest is burned. Provers that missed in
//!    this block get no assignment at its end.
//! 4. Linking ([`link`]): for each rollup, while its lowest unproven job is
//!    PENDING: if the pending transition starts at the rollup's proven root,
//!    the job is PROVEN (the proven root becomes its `new_root`, the proven
//!    height its `to_height`), its prover earns `prover_fee_share_bps` of the
//!    span's fees (from the fee pool) and the job's bounty, and the
//!    aggregator whose `SubmitAggregate` carried it `aggregator_fee_bps`.
//!    Otherwise the transition cannot link: it is *dropped*, and the job
//!    moves on to the next prover of its order with a fresh deadline, as
//!    after a miss but without slashing (see "Dropped transitions" below).
//! 5. Moves: each job missed in rule 3 moves to the next *eligible* prover of
//!    its order (eligible: a BONDED record); when the order is exhausted it
//!    is drawn again from the current epoch's set (same seed, so the cycle
//!    repeats until the epoch changes). Then every other OPEN job of a prover
//!    that missed in this block, or that is no longer BONDED, moves on at
//!    once without slashing (a dead prover's queued jobs do not each wait
//!    out a window). A job with no eligible prover *waits* (no deadline, no
//!    slashing) and is assigned at the first block end where one exists.
//!    Deadlines are per job: a job is provable from its delivery, so nobody
//!    is ever slashed for waiting on another job.
//! 6. Spans ([`collect_and_close`]): every non-empty batch of block `h` of a
//!    rollup with a verifying key joins the rollup's collecting span (a new
//!    one starts at `h`); a collecting span closes at the end of block
//!    `from + span_blocks - 1`, or earlier once its data reaches
//!    `max_span_bytes`. Closing opens job `(rollup, from)` for heights
//!    `from..=h` with its [`span_commitment`] over the span's batch
//!    commitments, the fees its transactions paid (a transaction's fee is
//!    split over the rollups it writes to by data bytes, remainder to the
//!    lowest rollup id) and its rotation order. Jobs and collecting spans of
//!    a rollup that no longer has a verifying key are abandoned.
//! 7. `proven_height` = `h` if nothing is unproven, else (lowest first
//!    unproven height of any rollup: its lowest job's `from`, or its
//!    collecting span's `from`) - 1.
//!
//! Assignment: of the eligible provers of the job's order (from the position
//! a reassignment starts at), the one with the fewest OPEN jobs, ties to the
//! earliest in the order, so N live provers prove N spans at once and the
//! stake-weighted order decides among equals. The deadline is
//! `h + proof_window * (1 + OPEN jobs the prover already holds)`: a prover
//! proving its queue in order is never late for having one.
//!
//! `SubmitProof` ([`check_proof`]) is accepted for any OPEN job, only from
//! its assigned prover, if the proof verifies against the rollup's current
//! verifying key for `(rollup, from, to, span commitment, prev_root,
//! new_root)` with the transaction's `prev_root`; when the job is the
//! rollup's lowest unproven one, `prev_root` must be the rollup's proven root
//! (32 zero bytes before the first proof), since nothing else could ever
//! link. The job becomes PENDING; payment waits for linking. Proofs are
//! never identified by their bytes (they are malleable).
//!
//! `SubmitAggregate` ([`check_aggregate`]) applies the same job rules to
//! each of its entries (with the entry's signing prover in place of the
//! transaction's signer), verifies one SnarkPack aggregate for all of them,
//! and records each entry as a pending transition of its prover, with the
//! sender as aggregator.
//!
//! Dropped transitions: a transition that does not link was proven from a
//! root other than its predecessor's final one, which happens to an honest
//! prover that built on a predecessor's claimed root that was itself
//! dropped (a prover cannot tell an honest claim from a bad one). So its
//! prover is not slashed; it earns nothing for the job, which moves on to
//! the next prover in its order with a fresh window. A prover that submits
//! transitions from made-up roots on purpose gains nothing, pays its
//! proving cost and fees, and delays the rollup's proven finality by at most
//! one proof window per job it holds; missing deadlines stays the only
//! slashable fault, as the rotation promises.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use seqnet_proto::aggregate::{
    padded_size, verify_aggregate_prepared, AggregateError, PreparedVerifierSrs, VerifierSrs,
};
use seqnet_proto::groth16::{
    batch_commitment, span_commitment, PreparedKey, ProofError, SpanStatement,
};
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
pub fn verified_id(vk: &[u8], proof: &[u8], statement: &SpanStatement) -> [u8; 32] {
    let mut buf = Vec::with_capacity(32 + 120 + proof.len());
    buf.extend_from_slice(&seqnet_proto::sha256(vk));
    buf.extend_from_slice(&statement.to_bytes());
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
pub fn verify_cached(vk: &[u8], proof: &[u8], statement: &SpanStatement) -> Result<(), ProofError> {
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

fn status_is(job: &pb::ProofJob, status: pb::JobStatus) -> bool {
    job.status == status as i32
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

/// A proof that passed every check: a transition to record as pending.
#[derive(Clone, Debug)]
pub struct AcceptedProof {
    pub rollup_id: RollupId,
    pub from_height: u64,
    pub prev_root: [u8; 32],
    pub new_root: [u8; 32],
    /// The assigned prover credited for it.
    pub prover: Address,
    /// The proof as submitted, kept with the job for PROVEN streams; empty
    /// when an aggregate stands for it.
    pub proof: Vec<u8>,
}

/// The job `(rollup_id, from_height)` if `prover` may submit a transition
/// from `prev_root` for it now: OPEN (not pending, not covered by `earlier`
/// proofs of the same transaction), assigned to `prover`, and, when it is
/// the rollup's lowest unproven job, starting at the rollup's proven root.
fn open_job<'q>(
    state: &StateDelta,
    queue: &'q pb::ProofQueue,
    prover: Address,
    rollup_id: RollupId,
    from_height: u64,
    prev_root: &[u8; 32],
    earlier: &[AcceptedProof],
) -> Result<&'q pb::ProofJob, ExecError> {
    let job = queue
        .open
        .iter()
        .find(|j| j.rollup_id == rollup_id && j.from_height == from_height)
        .ok_or(ExecError::JobUnknown {
            rollup_id,
            from_height,
        })?;
    let claimed_earlier = earlier
        .iter()
        .any(|p| p.rollup_id == rollup_id && p.from_height == from_height);
    if status_is(job, pb::JobStatus::Pending) || claimed_earlier {
        return Err(ExecError::JobPending {
            rollup_id,
            from_height,
        });
    }
    if job.assigned != prover.0 {
        return Err(ExecError::NotAssigned {
            rollup_id,
            from_height,
            assigned: if job.assigned.is_empty() {
                "nobody".into()
            } else {
                hex::encode(&job.assigned)
            },
        });
    }
    let lowest = queue
        .open
        .iter()
        .filter(|j| j.rollup_id == rollup_id)
        .map(|j| j.from_height)
        .min();
    if lowest == Some(from_height) {
        let proven = root_of(&state.rollup_proving(rollup_id)?.proven_root);
        if proven != *prev_root {
            return Err(ExecError::RootMismatch {
                rollup_id,
                from_height,
                proven: hex::encode(proven),
                got: hex::encode(prev_root),
            });
        }
    }
    Ok(job)
}

/// The statement a proof of `job` with the transition `prev_root ->
/// new_root` proves.
pub fn job_statement(job: &pb::ProofJob, prev_root: [u8; 32], new_root: [u8; 32]) -> SpanStatement {
    SpanStatement {
        rollup_id: job.rollup_id,
        from_height: job.from_height,
        to_height: job.to_height,
        commitment: root_of(&job.span_commitment),
        prev_root,
        new_root,
    }
}

/// Every check of a `SubmitProof` by `signer`; `earlier` are the proofs
/// accepted by previous actions of the same transaction (not yet written).
#[allow(clippy::too_many_arguments)]
pub fn check_proof(
    state: &StateDelta,
    signer: Address,
    rollup_id: RollupId,
    from_height: u64,
    proof: &[u8],
    prev_root: &[u8; 32],
    new_root: &[u8; 32],
    earlier: &[AcceptedProof],
) -> Result<AcceptedProof, ExecError> {
    let queue = state.proof_queue()?;
    let job = open_job(
        state,
        &queue,
        signer,
        rollup_id,
        from_height,
        prev_root,
        earlier,
    )?;
    let rollup = state
        .rollup(rollup_id)?
        .ok_or(ExecError::UnknownRollup(rollup_id))?;
    prepared_key(&rollup.verifying_key)
        .map_err(|e| ExecError::ProofMalformed(format!("rollup {rollup_id} verifying key: {e}")))?;
    let statement = job_statement(job, *prev_root, *new_root);
    verify_cached(&rollup.verifying_key, proof, &statement).map_err(|e| match e {
        ProofError::Invalid => ExecError::ProofRejected(e.to_string()),
        other => ExecError::ProofMalformed(other.to_string()),
    })?;
    Ok(AcceptedProof {
        rollup_id,
        from_height,
        prev_root: *prev_root,
        new_root: *new_root,
        prover: signer,
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
fn aggregate_id(srs: &[u8], vk: &[u8], statements: &[SpanStatement], aggregate: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(64 + statements.len() * 120 + aggregate.len() + 32);
    buf.extend_from_slice(b"seqnet/aggregate-memo/v2");
    buf.extend_from_slice(&seqnet_proto::sha256(srs));
    buf.extend_from_slice(&seqnet_proto::sha256(vk));
    buf.extend_from_slice(&(statements.len() as u64).to_be_bytes());
    for s in statements {
        buf.extend_from_slice(&s.to_bytes());
    }
    buf.extend_from_slice(aggregate);
    seqnet_proto::sha256(&buf)
}

/// Every check of a `SubmitAggregate`; `earlier` as for [`check_proof`].
/// Returns one accepted transition per entry (with no proof bytes: the
/// aggregate stands for them).
///
/// Rules: aggregation is enabled (`params.aggregation_srs` set) and the
/// padded entry count fits the SRS; every entry passes the job checks of
/// `SubmitProof` with its `prover` in place of the signer (entry signatures
/// were checked statelessly) and its own `prev_state_root`; every covered
/// rollup has the same non-empty verifying key (byte for byte); the
/// aggregate verifies once for all statements, in entry order. Entries may
/// be any open jobs, consecutive spans of one rollup from different provers
/// included.
pub fn check_aggregate(
    state: &StateDelta,
    params: &ChainParams,
    entries: &[ProofEntry],
    aggregate: &[u8],
    earlier: &[AcceptedProof],
) -> Result<Vec<AcceptedProof>, ExecError> {
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
    for entry in entries {
        let rollup_id = entry.rollup_id;
        let job = open_job(
            state,
            &queue,
            entry.prover,
            rollup_id,
            entry.from_height,
            &entry.prev_state_root,
            &all,
        )?;
        if let std::collections::btree_map::Entry::Vacant(slot) = keys.entry(rollup_id) {
            let rollup = state
                .rollup(rollup_id)?
                .ok_or(ExecError::UnknownRollup(rollup_id))?;
            slot.insert(rollup.verifying_key);
        }
        statements.push(job_statement(
            job,
            entry.prev_state_root,
            entry.new_state_root,
        ));
        let accepted = AcceptedProof {
            rollup_id,
            from_height: entry.from_height,
            prev_root: entry.prev_state_root,
            new_root: entry.new_state_root,
            prover: entry.prover,
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
    Ok(proofs)
}

/// Records an accepted proof included at block `now` as the job's pending
/// transition (`aggregator`: the sender of the `SubmitAggregate` that
/// carried it). Payment waits until it links ([`end_block`]).
pub fn record_proof(
    state: &mut StateDelta,
    accepted: &AcceptedProof,
    aggregator: Option<Address>,
    now: u64,
) -> Result<Event, ExecError> {
    let mut queue = state.proof_queue()?;
    let job = queue
        .open
        .iter_mut()
        .find(|j| j.rollup_id == accepted.rollup_id && j.from_height == accepted.from_height)
        .ok_or(ExecError::JobUnknown {
            rollup_id: accepted.rollup_id,
            from_height: accepted.from_height,
        })?;
    job.status = pb::JobStatus::Pending as i32;
    job.prover = accepted.prover.0.to_vec();
    job.prev_root = accepted.prev_root.to_vec();
    job.new_root = accepted.new_root.to_vec();
    job.proof = accepted.proof.clone();
    job.submitted_height = now;
    job.aggregator = aggregator.map(|a| a.0.to_vec()).unwrap_or_default();
    job.deadline = 0;
    let event = Event {
        kind: "proof_accepted",
        attributes: vec![
            ("rollup_id", accepted.rollup_id.to_string()),
            ("from_height", accepted.from_height.to_string()),
            ("to_height", job.to_height.to_string()),
            ("prover", accepted.prover.to_string()),
            ("prev_root", hex::encode(accepted.prev_root)),
            ("new_root", hex::encode(accepted.new_root)),
        ],
    };
    state.put_proof_queue(&queue);
    Ok(event)
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
    /// Jobs whose transitions linked in this block.
    pub jobs_proven: u64,
    /// Pending transitions dropped because they did not link.
    pub transitions_dropped: u64,
    /// Unproven jobs (open and pending) after the block.
    pub jobs_open: u64,
    /// Of those, jobs with a pending transition.
    pub jobs_pending: u64,
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

/// OPEN jobs per assigned prover (its queue), the load assignment evens out.
pub fn open_loads(queue: &pb::ProofQueue) -> BTreeMap<Vec<u8>, u64> {
    let mut loads: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for job in &queue.open {
        if status_is(job, pb::JobStatus::Open) && !job.assigned.is_empty() {
            *loads.entry(job.assigned.clone()).or_insert(0) += 1;
        }
    }
    loads
}

struct Assigner<'a> {
    active: Vec<(Address, u64)>,
    seed: [u8; 32],
    /// The block whose end assigns (recorded as `assigned_height`).
    height: u64,
    registry: &'a BTreeMap<Address, pb::Prover>,
    /// OPEN jobs per prover, kept current as jobs move.
    loads: BTreeMap<Vec<u8>, u64>,
    /// Provers that get nothing at this block end (they just missed).
    avoid: BTreeSet<Vec<u8>>,
}

impl Assigner<'_> {
    /// Takes `job` away from its current prover (if any) in the loads.
    fn release(&mut self, job: &pb::ProofJob) {
        if job.assigned.is_empty() {
            return;
        }
        if let Some(load) = self.loads.get_mut(&job.assigned) {
            *load = load.saturating_sub(1);
        }
    }

    /// Assigns `job` to the least-loaded eligible prover of its order from
    /// position `from` on (ties: the earliest), drawing a fresh order from
    /// the current set when none is left there, with deadline
    /// `height + window * (1 + that prover's load)`. Returns whether a prover
    /// was assigned. The caller has released the job's previous prover.
    fn assign(&mut self, job: &mut pb::ProofJob, from: usize, window: u64) -> bool {
        let registry = self.registry;
        let loads = &self.loads;
        let avoid = &self.avoid;
        let pick = |order: &[Vec<u8>], from: usize| {
            order
                .iter()
                .enumerate()
                .skip(from)
                .filter(|(_, a)| {
                    !avoid.contains(*a) && address_of(a).is_some_and(|a| is_eligible(registry, &a))
                })
                .min_by_key(|(i, a)| (loads.get(*a).copied().unwrap_or(0), *i))
                .map(|(i, a)| (i, a.clone()))
        };
        let mut found = pick(&job.order, from);
        if found.is_none() && !self.active.is_empty() {
            job.order = assignment_order(&self.seed, job.rollup_id, job.from_height, &self.active)
                .into_iter()
                .map(|a| a.0.to_vec())
                .collect();
            found = pick(&job.order, 0);
        }
        match found {
            Some((index, address)) => {
                let load = self.loads.entry(address.clone()).or_insert(0);
                let windows = load.saturating_add(1);
                *load = windows;
                job.assigned_index = index as u64;
                job.assigned = address;
                job.deadline = self.height.saturating_add(window.saturating_mul(windows));
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

    /// Moves `job` to the next prover of its order (see [`Assigner::assign`]).
    fn reassign_next(&mut self, job: &mut pb::ProofJob, window: u64) -> bool {
        self.release(job);
        let from = usize::try_from(job.assigned_index)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        self.assign(job, from, window)
    }
}

/// Proof windows of the rollups a block end looks at (a rollup that is gone
/// gets the chain's maximum).
struct Windows<'p> {
    params: &'p ChainParams,
    cache: BTreeMap<RollupId, Option<pb::Rollup>>,
}

impl Windows<'_> {
    fn rollup(
        &mut self,
        state: &StateDelta,
        id: RollupId,
    ) -> Result<Option<&pb::Rollup>, StoreError> {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.cache.entry(id) {
            slot.insert(state.rollup(id)?);
        }
        Ok(self.cache.get(&id).and_then(Option::as_ref))
    }

    fn window(&mut self, state: &StateDelta, id: RollupId) -> Result<u64, StoreError> {
        let fallback = self.params.max_proof_window;
        Ok(self
            .rollup(state, id)?
            .map(|r| r.proof_window)
            .unwrap_or(fallback)
            .max(1))
    }
}

/// A prover's reward for a linked job, for its record's counters.
type Credit = (Address, u64);

/// Links every rollup's pending transitions into its proven root (rule 4 of
/// the module docs): pays for each one that links, drops (and reassigns) the
/// first one that does not. Jobs that linked leave the queue and are stored
/// by `(rollup, from)`. Returns whether the queue changed and the provers'
/// rewards.
#[allow(clippy::too_many_arguments)]
fn link(
    state: &mut StateDelta,
    params: &ChainParams,
    height: u64,
    queue: &mut pb::ProofQueue,
    assigner: &mut Assigner<'_>,
    windows: &mut Windows<'_>,
    out: &mut ProverBlock,
) -> Result<(bool, Vec<Credit>), StoreError> {
    let mut credits = Vec::new();
    // Jobs are sorted by (rollup, from): a rollup's lowest unproven job
    // comes first.
    let rollups: BTreeSet<RollupId> = queue
        .open
        .iter()
        .filter(|j| status_is(j, pb::JobStatus::Pending))
        .map(|j| j.rollup_id)
        .collect();
    let mut changed = false;
    for rollup_id in rollups {
        let mut proving = state.rollup_proving(rollup_id)?;
        let mut advanced = false;
        while let Some(position) = queue.open.iter().position(|j| j.rollup_id == rollup_id) {
            if !status_is(&queue.open[position], pb::JobStatus::Pending) {
                break;
            }
            changed = true;
            if queue.open[position].prev_root != proving.proven_root {
                let job = &mut queue.open[position];
                let dropped_prover = hex::encode(&job.prover);
                let dropped_root = hex::encode(&job.prev_root);
                job.status = pb::JobStatus::Open as i32;
                job.prover.clear();
                job.prev_root.clear();
                job.new_root.clear();
                job.proof.clear();
                job.aggregator.clear();
                job.submitted_height = 0;
                job.drops = job.drops.saturating_add(1);
                let window = windows.window(state, rollup_id)?;
                // The assigned prover's load was released when the job
                // became pending (it is not in the open loads).
                let from = usize::try_from(job.assigned_index)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1);
                job.assigned.clear();
                assigner.assign(job, from, window);
                out.transitions_dropped += 1;
                let mut event = assigned_event("transition_dropped", job);
                event.attributes.extend([
                    ("dropped_prover", dropped_prover),
                    ("dropped_prev_root", dropped_root),
                    ("proven_root", hex::encode(&proving.proven_root)),
                ]);
                out.events.push(event);
                break;
            }
            let mut job = queue.open.remove(position);
            let paid = pay_linked(state, params, &job)?;
            if let Some(prover) = address_of(&job.prover) {
                credits.push((prover, paid.reward));
            }
            job.status = pb::JobStatus::Proven as i32;
            job.proven_height = height;
            job.deadline = 0;
            proving = pb::RollupProving {
                rollup_id,
                proven_height: job.to_height,
                proven_root: job.new_root.clone(),
                proven_from: job.from_height,
            };
            advanced = true;
            out.jobs_proven += 1;
            out.events.push(Event {
                kind: "job_proven",
                attributes: vec![
                    ("rollup_id", rollup_id.to_string()),
                    ("from_height", job.from_height.to_string()),
                    ("to_height", job.to_height.to_string()),
                    ("prover", hex::encode(&job.prover)),
                    ("new_root", hex::encode(&job.new_root)),
                    ("fee_share", paid.fee_share.to_string()),
                    ("bounty", job.bounty.to_string()),
                    ("aggregator_fee", paid.aggregator_fee.to_string()),
                ],
            });
            state.put_proof_job(&job);
        }
        if advanced {
            state.put_rollup_proving(&proving);
        }
    }
    Ok((changed, credits))
}

/// What linking one job paid.
struct Paid {
    fee_share: u64,
    /// Fee share plus bounty, to the prover.
    reward: u64,
    aggregator_fee: u64,
}

/// Pays a linked job's prover (fee share from the pool, and the bounty) and
/// its aggregator (its share from the pool). Saturating: a block end never
/// fails on arithmetic.
fn pay_linked(
    state: &mut StateDelta,
    params: &ChainParams,
    job: &pb::ProofJob,
) -> Result<Paid, StoreError> {
    let mut pool = state.fee_pool()?;
    let fee_share = fee_share(job.fees, params.prover_fee_share_bps).min(pool);
    pool -= fee_share;
    let reward = fee_share.saturating_add(job.bounty);
    if let Some(prover) = address_of(&job.prover) {
        let mut account = state.account(&prover)?;
        account.balance = account.balance.saturating_add(reward);
        state.put_account(&account);
    }
    let mut aggregator_fee = 0;
    if let Some(aggregator) = address_of(&job.aggregator) {
        aggregator_fee = self::fee_share(job.fees, params.aggregator_fee_bps).min(pool);
        pool -= aggregator_fee;
        let mut account = state.account(&aggregator)?;
        account.balance = account.balance.saturating_add(aggregator_fee);
        state.put_account(&account);
    }
    state.put_fee_pool(pool);
    Ok(Paid {
        fee_share,
        reward,
        aggregator_fee,
    })
}

/// Adds block `height`'s batches to the rollups' collecting spans and closes
/// the spans that are due (rule 6 of the module docs), opening their jobs.
#[allow(clippy::too_many_arguments)]
fn collect_and_close(
    state: &StateDelta,
    params: &ChainParams,
    height: u64,
    batches: &[BlockBatch<'_>],
    queue: &mut pb::ProofQueue,
    assigner: &mut Assigner<'_>,
    windows: &mut Windows<'_>,
    out: &mut ProverBlock,
) -> Result<bool, StoreError> {
    let mut changed = false;
    let mut collecting: BTreeMap<RollupId, pb::CollectingSpan> =
        std::mem::take(&mut queue.collecting)
            .into_iter()
            .map(|s| (s.rollup_id, s))
            .collect();
    for batch in batches {
        if batch.items.is_empty() {
            continue;
        }
        let proven = windows
            .rollup(state, batch.rollup_id)?
            .is_some_and(|r| !r.verifying_key.is_empty());
        if !proven {
            continue;
        }
        let span = collecting
            .entry(batch.rollup_id)
            .or_insert_with(|| pb::CollectingSpan {
                rollup_id: batch.rollup_id,
                from_height: height,
                ..Default::default()
            });
        span.batches.push(pb::SpanBatch {
            height,
            commitment: batch_commitment(batch.rollup_id, height, batch.items).to_vec(),
        });
        let bytes: u64 = batch
            .items
            .iter()
            .fold(0u64, |n, i| n.saturating_add(i.data.len() as u64));
        span.bytes = span.bytes.saturating_add(bytes);
        span.fees = span.fees.saturating_add(batch.fees);
        changed = true;
    }
    let mut still = Vec::with_capacity(collecting.len());
    for (rollup_id, span) in collecting {
        let Some(rollup) = windows.rollup(state, rollup_id)?.cloned() else {
            changed = true;
            continue;
        };
        if rollup.verifying_key.is_empty() {
            // The rollup stopped proving: nothing can prove this span.
            changed = true;
            out.events.push(Event {
                kind: "span_abandoned",
                attributes: vec![
                    ("rollup_id", rollup_id.to_string()),
                    ("from_height", span.from_height.to_string()),
                ],
            });
            continue;
        }
        let span_blocks = rollup.span_blocks.max(1);
        let length = height.saturating_add(1).saturating_sub(span.from_height);
        if length < span_blocks && span.bytes < params.max_span_bytes {
            still.push(span);
            continue;
        }
        changed = true;
        let pairs: Vec<(u64, [u8; 32])> = span
            .batches
            .iter()
            .map(|b| (b.height, root_of(&b.commitment)))
            .collect();
        let mut job = pb::ProofJob {
            rollup_id,
            from_height: span.from_height,
            to_height: height,
            span_commitment: span_commitment(rollup_id, span.from_height, height, &pairs).to_vec(),
            batches: span.batches,
            fees: span.fees,
            status: pb::JobStatus::Open as i32,
            ..Default::default()
        };
        assigner.assign(&mut job, 0, rollup.proof_window.max(1));
        out.events.push(assigned_event("job_opened", &job));
        out.jobs_opened += 1;
        queue.open.push(job);
    }
    queue.collecting = still;
    Ok(changed)
}

/// End of block `height`: unbonding, epoch change, linking, deadlines, spans
/// and the proven height (see the module docs for the rules). Only storage
/// can fail: arithmetic here saturates, so every node ends every block.
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

    let mut queue = state.proof_queue()?;
    let mut windows = Windows {
        params,
        cache: BTreeMap::new(),
    };
    let mut queue_changed = abandon_unprovable(state, &mut queue, &mut windows, &mut out)?;

    // 3. Deadlines: slash who missed (the jobs move in rule 5).
    let mut missed_now: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut misses: Vec<(usize, u64)> = Vec::new();
    for (index, job) in queue.open.iter().enumerate() {
        let open = status_is(job, pb::JobStatus::Open) && !job.assigned.is_empty();
        if open && job.deadline <= height {
            missed_now.insert(job.assigned.clone());
            let slashed = match address_of(&job.assigned).and_then(|a| registry.get_mut(&a)) {
                Some(record) => slash_miss(record, params, height, &mut out),
                None => 0,
            };
            misses.push((index, slashed));
        }
    }

    let mut assigner = Assigner {
        active: active_of(&set),
        seed: root_of(&set.seed),
        height,
        registry: &registry,
        loads: open_loads(&queue),
        avoid: missed_now.clone(),
    };

    // 4. Linking (may drop a transition and reassign its job).
    let (linked, credits) = link(
        state,
        params,
        height,
        &mut queue,
        &mut assigner,
        &mut windows,
        &mut out,
    )?;
    queue_changed |= linked;

    // 5. Moves: missed jobs to their next prover, waiting jobs to a prover,
    // the other jobs of provers that missed now or left to another.
    for (index, slashed) in misses {
        let job = &mut queue.open[index];
        let window = windows.window(state, job.rollup_id)?;
        let (bounty, burned) = split_bounty(slashed, params.bounty_bps);
        job.bounty = job.bounty.saturating_add(bounty);
        job.reassignments = job.reassignments.saturating_add(1);
        let missed_hex = hex::encode(&job.assigned);
        assigner.reassign_next(job, window);
        out.jobs_reassigned += 1;
        queue_changed = true;
        let mut event = assigned_event("job_reassigned", job);
        event.attributes.extend([
            ("missed", missed_hex),
            ("slashed", slashed.to_string()),
            ("bounty_added", bounty.to_string()),
            ("burned", burned.to_string()),
        ]);
        out.events.push(event);
    }
    for job in queue.open.iter_mut() {
        if !status_is(job, pb::JobStatus::Open) {
            continue;
        }
        let window = windows.window(state, job.rollup_id)?;
        if job.assigned.is_empty() {
            if assigner.assign(job, 0, window) {
                queue_changed = true;
                out.events.push(assigned_event("job_assigned", job));
            }
            continue;
        }
        if job.assigned_height == height {
            continue; // (re)assigned at this block end already
        }
        let gone = missed_now.contains(&job.assigned)
            || !address_of(&job.assigned).is_some_and(|a| is_eligible(&registry, &a));
        if gone {
            let left = hex::encode(&job.assigned);
            assigner.reassign_next(job, window);
            queue_changed = true;
            let mut event = assigned_event("job_moved", job);
            event.attributes.push(("from", left));
            out.events.push(event);
        }
    }

    // 6. Spans.
    queue_changed |= collect_and_close(
        state,
        params,
        height,
        batches,
        &mut queue,
        &mut assigner,
        &mut windows,
        &mut out,
    )?;
    for (prover, reward) in credits {
        if let Some(record) = registry.get_mut(&prover) {
            record.proven = record.proven.saturating_add(1);
            record.earned = record.earned.saturating_add(reward);
        }
    }

    if queue_changed {
        queue.open.sort_by_key(|j| (j.rollup_id, j.from_height));
        state.put_proof_queue(&queue);
    }
    let updated = pb::ProverRegistry {
        provers: registry.into_values().collect(),
    };
    if updated != original {
        state.put_prover_registry(&updated);
    }

    // 7. Finality.
    out.jobs_open = queue.open.len() as u64;
    out.jobs_pending = queue
        .open
        .iter()
        .filter(|j| status_is(j, pb::JobStatus::Pending))
        .count() as u64;
    out.jobs_late = queue.open.iter().filter(|j| j.reassignments > 0).count() as u64;
    out.proven_height = proven_height(&queue, height);
    state.put_proven_height(out.proven_height);
    Ok(out)
}

/// Slashes `record` for one missed deadline at `height` (and jails it at
/// `jail_after_misses`); returns the amount slashed.
fn slash_miss(
    record: &mut pb::Prover,
    params: &ChainParams,
    height: u64,
    out: &mut ProverBlock,
) -> u64 {
    let slashed = slash_amount(record.stake, params.slash_bps);
    record.stake -= slashed;
    record.slashed = record.slashed.saturating_add(slashed);
    record.misses = record.misses.saturating_add(1);
    if record.misses >= params.jail_after_misses && record.status == pb::ProverStatus::Bonded as i32
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
    slashed
}

/// Drops the jobs and collecting spans of rollups that can no longer be
/// proven (no verifying key any more, or gone): they would hold proven
/// finality forever.
fn abandon_unprovable(
    state: &StateDelta,
    queue: &mut pb::ProofQueue,
    windows: &mut Windows<'_>,
    out: &mut ProverBlock,
) -> Result<bool, StoreError> {
    let rollups: BTreeSet<RollupId> = queue.open.iter().map(|j| j.rollup_id).collect();
    let mut dead: BTreeSet<RollupId> = BTreeSet::new();
    for id in rollups {
        let provable = windows
            .rollup(state, id)?
            .is_some_and(|r| !r.verifying_key.is_empty());
        if !provable {
            dead.insert(id);
        }
    }
    if dead.is_empty() {
        return Ok(false);
    }
    queue.open.retain(|job| {
        if !dead.contains(&job.rollup_id) {
            return true;
        }
        out.events.push(Event {
            kind: "job_abandoned",
            attributes: vec![
                ("rollup_id", job.rollup_id.to_string()),
                ("from_height", job.from_height.to_string()),
                ("to_height", job.to_height.to_string()),
            ],
        });
        false
    });
    Ok(true)
}

/// The highest height every span up to which is proven: `height` with
/// nothing unproven, else the lowest first unproven height of any rollup
/// (its lowest job's `from`, or its collecting span's) minus one.
pub fn proven_height(queue: &pb::ProofQueue, height: u64) -> u64 {
    let lowest = queue
        .open
        .iter()
        .map(|j| j.from_height)
        .chain(queue.collecting.iter().map(|s| s.from_height))
        .min();
    match lowest {
        Some(from) => from.saturating_sub(1).min(height),
        None => height,
    }
}

fn assigned_event(kind: &'static str, job: &pb::ProofJob) -> Event {
    Event {
        kind,
        attributes: vec![
            ("rollup_id", job.rollup_id.to_string()),
            ("from_height", job.from_height.to_string()),
            ("to_height", job.to_height.to_string()),
            ("prover", hex::encode(&job.assigned)),
            ("deadline", job.deadline.to_string()),
            ("span_commitment", hex::encode(&job.span_commitment)),
        ],
    }
}

/// Why proven finality is where it is (see `pb::HoldReason`), read from
/// committed state: the span that holds it (the lowest unproven one of any
/// rollup) and its state, whether the next block is under back-pressure,
/// and the provers that can take jobs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub reason: pb::HoldReason,
    pub detail: String,
    pub held: bool,
    pub live_provers: u64,
}

/// [`Hold`] for a chain at `ordered` height with `queue`, the prover
/// `registry` and `set`, and `params`.
pub fn hold(
    queue: &pb::ProofQueue,
    registry: &pb::ProverRegistry,
    set: &pb::ProverSet,
    params: &ChainParams,
    ordered: u64,
) -> Hold {
    let bonded: BTreeSet<&[u8]> = registry
        .provers
        .iter()
        .filter(|p| p.status == pb::ProverStatus::Bonded as i32)
        .map(|p| p.address.as_slice())
        .collect();
    let live = set
        .active
        .iter()
        .filter(|p| bonded.contains(p.address.as_slice()))
        .count() as u64;
    let proven = proven_height(queue, ordered);
    let lag = ordered.saturating_sub(proven);
    let held = crate::proposal::over_unproven_limit(lag, params.max_unproven_blocks);
    let open = queue
        .open
        .iter()
        .filter(|j| status_is(j, pb::JobStatus::Open))
        .count() as u64;
    let oldest_job = queue
        .open
        .iter()
        .min_by_key(|j| (j.from_height, j.rollup_id));
    let oldest_span = queue
        .collecting
        .iter()
        .min_by_key(|s| (s.from_height, s.rollup_id));
    let span_first = match (oldest_job, oldest_span) {
        (Some(job), Some(span)) => span.from_height < job.from_height,
        (None, Some(_)) => true,
        _ => false,
    };
    let (reason, detail) = match (oldest_job, oldest_span) {
        (_, Some(span)) if span_first => (
            pb::HoldReason::Collecting,
            format!(
                "rollup {} span from {} is still collecting ({} batches so far)",
                span.rollup_id,
                span.from_height,
                span.batches.len()
            ),
        ),
        (Some(job), _) => job_hold(job, open, live),
        _ => (pb::HoldReason::None, "nothing unproven".to_string()),
    };
    Hold {
        reason,
        detail,
        held,
        live_provers: live,
    }
}

/// The reason and line for a chain whose lowest unproven span is `job`,
/// with `open` jobs waiting for proofs and `live` provers.
fn job_hold(job: &pb::ProofJob, open: u64, live: u64) -> (pb::HoldReason, String) {
    let span = format!(
        "rollup {} span {}..={}",
        job.rollup_id, job.from_height, job.to_height
    );
    if status_is(job, pb::JobStatus::Pending) {
        (
            pb::HoldReason::Proving,
            format!("{span} has a verified proof waiting to link"),
        )
    } else if job.assigned.is_empty() || live == 0 {
        (
            pb::HoldReason::NoProver,
            format!("{span} waits for a live prover ({live} active and bonded)"),
        )
    } else if job.reassignments > 0 {
        (
            pb::HoldReason::Stalled,
            format!(
                "{span} missed {} deadline(s); now with prover {} until height {}",
                job.reassignments,
                short(&job.assigned),
                job.deadline
            ),
        )
    } else if open > live {
        (
            pb::HoldReason::Capacity,
            format!(
                "capacity short: {open} open jobs for {live} live provers; oldest is {span} with {} until height {}",
                short(&job.assigned),
                job.deadline
            ),
        )
    } else {
        (
            pb::HoldReason::Proving,
            format!(
                "{span} is being proven by {} (deadline {})",
                short(&job.assigned),
                job.deadline
            ),
        )
    }
}

fn short(address: &[u8]) -> String {
    let hex = hex::encode(address);
    hex.get(..12).map(str::to_string).unwrap_or(hex)
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

    #[test]
    fn proven_height_is_below_the_lowest_unproven_height() {
        let job = |rollup_id, from_height| pb::ProofJob {
            rollup_id,
            from_height,
            to_height: from_height + 4,
            ..Default::default()
        };
        let span = |rollup_id, from_height| pb::CollectingSpan {
            rollup_id,
            from_height,
            ..Default::default()
        };
        assert_eq!(proven_height(&pb::ProofQueue::default(), 40), 40);
        let queue = pb::ProofQueue {
            open: vec![job(1, 20), job(1, 25), job(2, 18)],
            collecting: vec![span(3, 30)],
        };
        assert_eq!(proven_height(&queue, 40), 17);
        let queue = pb::ProofQueue {
            open: vec![],
            collecting: vec![span(3, 30)],
        };
        assert_eq!(proven_height(&queue, 40), 29);
    }

    fn job(rollup_id: u64, from_height: u64) -> pb::ProofJob {
        pb::ProofJob {
            rollup_id,
            from_height,
            to_height: from_height + 2,
            status: pb::JobStatus::Open as i32,
            assigned: vec![1; 32],
            deadline: from_height + 12,
            ..Default::default()
        }
    }

    fn bonded(seeds: &[u8]) -> (pb::ProverRegistry, pb::ProverSet) {
        let registry = pb::ProverRegistry {
            provers: seeds
                .iter()
                .map(|s| new_record(Address([*s; 32]), 5_000))
                .collect(),
        };
        let set = pb::ProverSet {
            active: seeds
                .iter()
                .map(|s| pb::ActiveProver {
                    address: vec![*s; 32],
                    stake: 5_000,
                })
                .collect(),
            ..Default::default()
        };
        (registry, set)
    }

    /// Each reason names the span that holds proven finality.
    #[test]
    fn the_hold_reason_names_what_holds_finality() {
        let params = ChainParams {
            max_unproven_blocks: 10,
            ..ChainParams::default()
        };
        let (registry, set) = bonded(&[1, 2]);
        let reason =
            |queue: &pb::ProofQueue, registry: &pb::ProverRegistry, set: &pb::ProverSet| {
                hold(queue, registry, set, &params, 30)
            };
        let empty = reason(&pb::ProofQueue::default(), &registry, &set);
        assert_eq!(
            (empty.reason, empty.held, empty.live_provers),
            (pb::HoldReason::None, false, 2)
        );

        let proving = pb::ProofQueue {
            open: vec![job(1, 25)],
            ..Default::default()
        };
        let hold_now = reason(&proving, &registry, &set);
        assert_eq!(hold_now.reason, pb::HoldReason::Proving);
        assert!(
            hold_now.detail.contains("rollup 1 span 25..=27"),
            "{}",
            hold_now.detail
        );
        assert!(!hold_now.held);

        // Lag 30 - 14 = 16 > 10: held, and the stalled span is named.
        let mut stalled = job(1, 15);
        stalled.reassignments = 2;
        let queue = pb::ProofQueue {
            open: vec![stalled, job(2, 25)],
            ..Default::default()
        };
        let held = reason(&queue, &registry, &set);
        assert!(held.held);
        assert_eq!(held.reason, pb::HoldReason::Stalled);
        assert!(held.detail.contains("missed 2 deadline"), "{}", held.detail);

        let queue = pb::ProofQueue {
            open: vec![job(1, 15), job(1, 18), job(2, 16)],
            ..Default::default()
        };
        let short = reason(&queue, &registry, &set);
        assert_eq!(short.reason, pb::HoldReason::Capacity);
        assert!(
            short.detail.contains("3 open jobs for 2 live provers"),
            "{}",
            short.detail
        );

        let mut waiting = job(1, 15);
        waiting.assigned.clear();
        let queue = pb::ProofQueue {
            open: vec![waiting],
            ..Default::default()
        };
        assert_eq!(
            reason(&queue, &registry, &set).reason,
            pb::HoldReason::NoProver
        );
        let (jailed, _) = bonded(&[]);
        let nobody = reason(&proving, &jailed, &set);
        assert_eq!(
            (nobody.reason, nobody.live_provers),
            (pb::HoldReason::NoProver, 0)
        );

        let queue = pb::ProofQueue {
            open: vec![job(1, 25)],
            collecting: vec![pb::CollectingSpan {
                rollup_id: 3,
                from_height: 20,
                ..Default::default()
            }],
        };
        assert_eq!(
            reason(&queue, &registry, &set).reason,
            pb::HoldReason::Collecting
        );
    }

    /// Runs `blocks` (a data size per block, 0 = no data) of one rollup with
    /// `span_blocks` and `max_span_bytes` through [`end_block`] on a fresh
    /// store; returns the jobs and the span still collecting.
    fn cut(
        blocks: &[u64],
        span_blocks: u64,
        max_span_bytes: u64,
    ) -> (Vec<pb::ProofJob>, Vec<pb::CollectingSpan>, Vec<u64>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(crate::store::Store::open(dir.path()).expect("store"));
        let mut state = StateDelta::new(store);
        let params = ChainParams {
            max_span_bytes,
            ..ChainParams::default()
        };
        state.put_rollup(&pb::Rollup {
            id: 7,
            verifying_key: vec![1],
            proof_window: 10,
            span_blocks,
            ..Default::default()
        });
        let mut proven = Vec::new();
        for (index, size) in blocks.iter().enumerate() {
            let height = index as u64 + 1;
            let items = vec![pb::BatchItem {
                data: vec![9; *size as usize],
                nonce: height,
                ..Default::default()
            }];
            let batches = if *size > 0 {
                vec![BlockBatch {
                    rollup_id: 7,
                    items: &items,
                    fees: 1,
                }]
            } else {
                vec![]
            };
            let out = end_block(&mut state, &params, height, &[0; 32], &batches).expect("end");
            proven.push(out.proven_height);
        }
        let queue = state.proof_queue().expect("queue");
        (queue.open, queue.collecting, proven)
    }

    proptest! {
        /// Span cutting is deterministic and follows the rules: spans are
        /// disjoint and in order, each starts at a non-empty batch, lists
        /// exactly the non-empty heights it covers, is at most `span_blocks`
        /// long, ends early only when its data reached the byte bound, and
        /// every non-empty height is in exactly one span (closed or
        /// collecting); proven height stays below the first unproven one.
        #[test]
        fn spans_partition_the_batches_deterministically(
            blocks in proptest::collection::vec(prop_oneof![Just(0u64), 1u64..120], 1..40),
            span_blocks in 1u64..6,
            max_span_bytes in 60u64..400,
        ) {
            let first = cut(&blocks, span_blocks, max_span_bytes);
            prop_assert_eq!(&first, &cut(&blocks, span_blocks, max_span_bytes));
            let (jobs, collecting, proven) = first;
            let last = blocks.len() as u64;
            let mut covered = Vec::new();
            let mut previous_end = 0;
            for job in &jobs {
                prop_assert!(job.from_height > previous_end);
                prop_assert!(job.to_height >= job.from_height && job.to_height <= last);
                previous_end = job.to_height;
                let length = job.to_height - job.from_height + 1;
                prop_assert!(length <= span_blocks);
                let heights: Vec<u64> = job.batches.iter().map(|b| b.height).collect();
                let expected: Vec<u64> = (job.from_height..=job.to_height)
                    .filter(|h| blocks[(*h - 1) as usize] > 0)
                    .collect();
                prop_assert_eq!(&heights, &expected);
                prop_assert_eq!(heights.first(), Some(&job.from_height));
                let bytes: u64 = expected.iter().map(|h| blocks[(*h - 1) as usize]).sum();
                if length < span_blocks {
                    prop_assert!(bytes >= max_span_bytes, "closed early at {} bytes", bytes);
                }
                covered.extend(expected);
            }
            for span in &collecting {
                prop_assert!(span.from_height > previous_end);
                covered.extend(span.batches.iter().map(|b| b.height));
            }
            let non_empty: Vec<u64> = (1..=last).filter(|h| blocks[(*h - 1) as usize] > 0).collect();
            prop_assert_eq!(covered, non_empty);
            let first_unproven = jobs
                .first()
                .map(|j| j.from_height)
                .or(collecting.first().map(|s| s.from_height));
            let want = first_unproven.map_or(last, |f| f - 1);
            prop_assert_eq!(proven.last().copied(), Some(want));
        }

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
