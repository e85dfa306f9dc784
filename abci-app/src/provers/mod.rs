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
//! Rules (all at the end of a block `h`, in [`jobs::end_block`], in this order):
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
//! 4. Linking ([`jobs`]): for each rollup, while its lowest unproven job is
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
//! 6. Spans ([`jobs`]): every non-empty batch of block `h` of a
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

mod jobs;
mod preverify;
pub(crate) mod query;
pub(crate) mod rotation;
pub(crate) mod rules;
pub(crate) mod state;
mod verify;

use std::collections::BTreeMap;

use seqnet_proto::aggregate::{padded_size, verify_aggregate_prepared, AggregateError};
use seqnet_proto::groth16::{ProofError, SpanStatement};
use seqnet_proto::{pb, Address, ProofEntry, RollupId};

pub(crate) use jobs::end_block;
pub(crate) use preverify::preverify;
pub(crate) use rules::over_unproven_limit;
pub(crate) use state::{ProversState, ProversWrite};
pub(crate) use verify::VerifierCache;

use crate::accounts::debit_signer;
use crate::params::ChainParams;
use crate::rollups::RollupsState;
use crate::state::StateDelta;
use crate::tx::{ActionHandler, Event, ExecError, Transition, TxContext, TxPlan};

pub(crate) fn address_of(bytes: &[u8]) -> Option<Address> {
    Address::from_slice(bytes)
}

pub(crate) fn root_of(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes).unwrap_or([0; 32])
}

pub(crate) fn status_is(job: &pb::ProofJob, status: pb::JobStatus) -> bool {
    job.status == status as i32
}

pub(crate) fn is_eligible(registry: &BTreeMap<Address, pb::Prover>, address: &Address) -> bool {
    registry
        .get(address)
        .is_some_and(|p| p.status == pb::ProverStatus::Bonded as i32)
}

/// The record of a new prover with `stake`.
pub(crate) fn new_record(address: Address, stake: u64) -> pb::Prover {
    pb::Prover {
        address: address.0.to_vec(),
        stake,
        status: pb::ProverStatus::Bonded as i32,
        ..Default::default()
    }
}

/// The signer's prover record as planned so far (loaded on first use).
fn planned_record<'p>(
    state: &StateDelta,
    plan: &'p mut TxPlan,
) -> Result<&'p mut Option<pb::Prover>, ExecError> {
    if plan.prover.is_none() {
        plan.prover = Some(state.prover(&plan.signer())?);
    }
    plan.prover
        .as_mut()
        .ok_or(ExecError::Overflow("prover record"))
}

/// `RegisterProver { stake }`: a new prover, or more stake for one.
pub(crate) struct RegisterProver {
    pub stake: u64,
}

impl ActionHandler for RegisterProver {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let signer = plan.signer();
        debit_signer(state, plan, self.stake)?;
        let record = planned_record(state, plan)?;
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
                    .checked_add(self.stake)
                    .ok_or(ExecError::Overflow("prover stake"))?;
                existing
            }
            None => {
                if self.stake < ctx.params.min_prover_stake {
                    return Err(ExecError::StakeTooLow {
                        stake: self.stake,
                        min: ctx.params.min_prover_stake,
                    });
                }
                new_record(signer, self.stake)
            }
        };
        let event = Event {
            kind: "register_prover",
            attributes: vec![
                ("prover", signer.to_string()),
                ("added", self.stake.to_string()),
                ("stake", updated.stake.to_string()),
            ],
        };
        *record = Some(updated);
        plan.outcome.events.push(event);
        Ok(())
    }
}

/// `Unbond`: leaves the set; the stake returns after the unbonding period.
pub(crate) struct Unbond;

impl ActionHandler for Unbond {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let signer = plan.signer();
        let height = plan.height;
        let record = planned_record(state, plan)?;
        let existing = record.as_mut().ok_or(ExecError::ProverUnknown(signer))?;
        if existing.status == pb::ProverStatus::Unbonding as i32 {
            return Err(ExecError::ProverState {
                address: signer,
                reason: format!("is already unbonding (until {})", existing.unbond_at),
            });
        }
        existing.status = pb::ProverStatus::Unbonding as i32;
        existing.unbond_at = height
            .checked_add(ctx.params.unbonding_period)
            .ok_or(ExecError::Overflow("unbonding height"))?;
        let event = Event {
            kind: "unbond",
            attributes: vec![
                ("prover", signer.to_string()),
                ("stake", existing.stake.to_string()),
                ("unbond_at", existing.unbond_at.to_string()),
            ],
        };
        plan.outcome.events.push(event);
        Ok(())
    }
}

/// `Unjail`: ends a jail term once `jail_period` has passed.
pub(crate) struct Unjail;

impl ActionHandler for Unjail {
    fn check(
        &self,
        state: &StateDelta,
        _ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let signer = plan.signer();
        let height = plan.height;
        let record = planned_record(state, plan)?;
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
        plan.outcome.events.push(Event {
            kind: "unjail",
            attributes: vec![("prover", signer.to_string())],
        });
        Ok(())
    }
}

/// `SubmitProof`: a transition of one job by its assigned prover.
pub(crate) struct SubmitProof<'a> {
    pub verifier: &'a VerifierCache,
    pub rollup_id: RollupId,
    pub from_height: u64,
    pub proof: &'a [u8],
    pub prev_root: &'a [u8; 32],
    pub new_root: &'a [u8; 32],
}

impl ActionHandler for SubmitProof<'_> {
    fn check(
        &self,
        state: &StateDelta,
        _ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let accepted = check_proof(
            state,
            self.verifier,
            plan.signer(),
            self.rollup_id,
            self.from_height,
            self.proof,
            self.prev_root,
            self.new_root,
            &plan.transitions(),
        )?;
        plan.proofs.push((accepted, None));
        Ok(())
    }
}

/// `SubmitAggregate`: the transitions of several jobs, one aggregate proof.
pub(crate) struct SubmitAggregate<'a> {
    pub verifier: &'a VerifierCache,
    pub entries: &'a [ProofEntry],
    pub aggregate: &'a [u8],
}

impl ActionHandler for SubmitAggregate<'_> {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let accepted = check_aggregate(
            state,
            self.verifier,
            ctx.params,
            self.entries,
            self.aggregate,
            &plan.transitions(),
        )?;
        let index = plan.aggregates.len();
        plan.aggregates.push(accepted.len());
        plan.proofs
            .extend(accepted.into_iter().map(|p| (p, Some(index))));
        Ok(())
    }
}

/// Writes the plan's part of the provers: the signer's record, each
/// accepted transition as its job's pending one, and the aggregates' events.
pub(crate) fn apply(state: &mut StateDelta, plan: &mut TxPlan) -> Result<(), ExecError> {
    if let Some(Some(record)) = plan.prover.take() {
        state.put_prover(record)?;
    }
    let signer = plan.signer();
    for (accepted, aggregate) in &plan.proofs {
        let aggregator = aggregate.map(|_| signer);
        let event = record_proof(state, accepted, aggregator, plan.height)?;
        plan.outcome.events.push(event);
        plan.outcome.proofs = plan.outcome.proofs.saturating_add(1);
    }
    for entries in &plan.aggregates {
        plan.outcome.events.push(Event {
            kind: "aggregate_accepted",
            attributes: vec![
                ("aggregator", signer.to_string()),
                ("entries", entries.to_string()),
            ],
        });
    }
    Ok(())
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
    earlier: &[Transition],
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
pub(crate) fn job_statement(
    job: &pb::ProofJob,
    prev_root: [u8; 32],
    new_root: [u8; 32],
) -> SpanStatement {
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
pub(crate) fn check_proof(
    state: &StateDelta,
    verifier: &VerifierCache,
    signer: Address,
    rollup_id: RollupId,
    from_height: u64,
    proof: &[u8],
    prev_root: &[u8; 32],
    new_root: &[u8; 32],
    earlier: &[Transition],
) -> Result<Transition, ExecError> {
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
    verifier
        .prepared_key(&rollup.verifying_key)
        .map_err(|e| ExecError::ProofMalformed(format!("rollup {rollup_id} verifying key: {e}")))?;
    let statement = job_statement(job, *prev_root, *new_root);
    verifier
        .verify(&rollup.verifying_key, proof, &statement)
        .map_err(|e| match e {
            ProofError::Invalid => ExecError::ProofRejected(e.to_string()),
            other => ExecError::ProofMalformed(other.to_string()),
        })?;
    Ok(Transition {
        rollup_id,
        from_height,
        prev_root: *prev_root,
        new_root: *new_root,
        prover: signer,
        proof: proof.to_vec(),
    })
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
pub(crate) fn check_aggregate(
    state: &StateDelta,
    verifier: &VerifierCache,
    params: &ChainParams,
    entries: &[ProofEntry],
    aggregate: &[u8],
    earlier: &[Transition],
) -> Result<Vec<Transition>, ExecError> {
    if params.aggregation_srs.is_empty() {
        return Err(ExecError::InvalidParameter(
            "aggregation is not enabled on this chain (params.aggregation_srs is empty)".into(),
        ));
    }
    let srs_bytes = hex::decode(&params.aggregation_srs)
        .map_err(|e| ExecError::InvalidParameter(format!("aggregation_srs: {e}")))?;
    let srs = verifier
        .prepared_srs(&srs_bytes)
        .map_err(|e| ExecError::InvalidParameter(format!("aggregation_srs: {e}")))?;
    let max = srs.srs.max_proofs as usize;
    if padded_size(entries.len()) > max {
        return Err(ExecError::InvalidParameter(format!(
            "aggregate of {} entries exceeds the chain's SRS ({max} proofs)",
            entries.len()
        )));
    }
    let queue = state.proof_queue()?;
    let mut all: Vec<Transition> = earlier.to_vec();
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
        let accepted = Transition {
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
    let key = verifier.prepared_key(vk).map_err(|e| {
        ExecError::ProofMalformed(format!("rollup {first_rollup} verifying key: {e}"))
    })?;
    let id = verify::aggregate_id(&srs_bytes, vk, &statements, aggregate);
    if !verifier.is_verified(&id) {
        verify_aggregate_prepared(&srs, &key, &statements, aggregate).map_err(|e| match e {
            AggregateError::Invalid | AggregateError::InvalidMipp => {
                ExecError::ProofRejected(e.to_string())
            }
            other => ExecError::ProofMalformed(other.to_string()),
        })?;
        verifier.remember(id);
    }
    Ok(proofs)
}

/// Records an accepted proof included at block `now` as the job's pending
/// transition (`aggregator`: the sender of the `SubmitAggregate` that
/// carried it). Payment waits until it links ([`end_block`]).
pub(crate) fn record_proof(
    state: &mut StateDelta,
    accepted: &Transition,
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
