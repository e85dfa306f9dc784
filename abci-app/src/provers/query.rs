//! Reads of the provers' committed state for queries and the node's
//! `ProverService`: the jobs a prover can prove now (with their earlier
//! spans), a job by its span, the linked proof covering a batch, a rollup's
//! proving state, and finality with what holds it.

use std::collections::BTreeMap;

use seqnet_proto::{pb, Address, RollupId};

use super::rules::hold;
use super::state::ProversState;
use crate::chain::ChainState;
use crate::keys;
use crate::state::{decode, Committed, StateRead};
use crate::store::{Cf, StoreError};

/// An OPEN job assigned to a prover, which it can prove at once: nothing
/// waits for earlier spans. Deliveries are ordered by `cursor()`, the same
/// on every node.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadyJob {
    /// The block at whose end the job was assigned to its current prover.
    pub ready_height: u64,
    pub job: pb::ProofJob,
    /// The rollup's last proven root (32 zero bytes before the first proof)
    /// and the last height it covers (0: none yet).
    pub proven_root: Vec<u8>,
    pub proven_height: u64,
    /// The rollup's unproven spans before the job's, in order, with the
    /// transitions their pending proofs claim.
    pub earlier: Vec<pb::EarlierSpan>,
}

impl ReadyJob {
    /// (ready_height, rollup_id, from_height): the job stream's resume cursor.
    pub fn cursor(&self) -> (u64, RollupId, u64) {
        (self.ready_height, self.job.rollup_id, self.job.from_height)
    }
}

/// OPEN jobs assigned to `prover`, by cursor.
pub(crate) fn ready_jobs(
    state: &impl StateRead,
    prover: &Address,
) -> Result<Vec<ReadyJob>, StoreError> {
    let open = state.proof_queue()?.open;
    let mut proving: BTreeMap<RollupId, pb::RollupProving> = BTreeMap::new();
    let mut ready = Vec::new();
    for job in &open {
        if job.assigned != prover.0 || job.status != pb::JobStatus::Open as i32 {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = proving.entry(job.rollup_id) {
            slot.insert(state.rollup_proving(job.rollup_id)?);
        }
        let rollup = &proving[&job.rollup_id];
        let mut proven_root = rollup.proven_root.clone();
        proven_root.resize(32, 0);
        let earlier = open
            .iter()
            .filter(|e| e.rollup_id == job.rollup_id && e.from_height < job.from_height)
            .map(|e| {
                let pending = e.status == pb::JobStatus::Pending as i32;
                pb::EarlierSpan {
                    from_height: e.from_height,
                    to_height: e.to_height,
                    span_commitment: e.span_commitment.clone(),
                    claimed_prev_root: if pending { e.prev_root.clone() } else { vec![] },
                    claimed_new_root: if pending { e.new_root.clone() } else { vec![] },
                }
            })
            .collect();
        ready.push(ReadyJob {
            ready_height: job.assigned_height,
            job: job.clone(),
            proven_root,
            proven_height: rollup.proven_height,
            earlier,
        });
    }
    ready.sort_by_key(ReadyJob::cursor);
    Ok(ready)
}

/// A job by (rollup, from_height): unproven, or proven (with prover and
/// roots).
pub(crate) fn job(
    state: &impl StateRead,
    rollup_id: RollupId,
    from_height: u64,
) -> Result<Option<pb::ProofJob>, StoreError> {
    if let Some(job) = state
        .proof_queue()?
        .open
        .into_iter()
        .find(|j| j.rollup_id == rollup_id && j.from_height == from_height)
    {
        return Ok(Some(job));
    }
    state.proof_job(rollup_id, from_height)
}

/// The proven job whose span covers `height` of `rollup_id`, if any.
fn proven_span_at(
    state: &impl StateRead,
    rollup_id: RollupId,
    height: u64,
) -> Result<Option<pb::ProofJob>, StoreError> {
    let key = keys::proof_job(rollup_id, height);
    let prefix = &key[..9];
    let Some((_, bytes)) = state.store().last_at_or_before(Cf::Proofs, prefix, &key)? else {
        return Ok(None);
    };
    let job: pb::ProofJob = decode("proof job", &bytes)?;
    Ok((job.to_height >= height).then_some(job))
}

/// The linked proof of the span that covers the batch of `rollup_id` at
/// `height`, if that span is proven and the batch is one of its own
/// (non-empty) batches.
pub(crate) fn batch_proof(
    state: &impl StateRead,
    rollup_id: RollupId,
    height: u64,
) -> Result<Option<pb::BatchProof>, StoreError> {
    Ok(proven_span_at(state, rollup_id, height)?
        .filter(|j| j.status == pb::JobStatus::Proven as i32)
        .filter(|j| j.batches.iter().any(|b| b.height == height))
        .map(|j| pb::BatchProof {
            // SubmitProof always carries proof bytes; SubmitAggregate
            // records none for the jobs it covers.
            by_aggregate: j.proof.is_empty(),
            proof: j.proof,
            prev_state_root: j.prev_root,
            new_state_root: j.new_root,
            span_commitment: j.span_commitment,
            prover: j.prover,
            proven_at: j.proven_height,
            from_height: j.from_height,
            to_height: j.to_height,
            batch_heights: j.batches.iter().map(|b| b.height).collect(),
        }))
}

/// A rollup's last proven span and root, and its unproven jobs.
pub(crate) fn rollup_jobs(
    state: &impl StateRead,
    rollup_id: RollupId,
) -> Result<pb::RollupJobs, StoreError> {
    Ok(pb::RollupJobs {
        proving: Some(state.rollup_proving(rollup_id)?),
        open: state
            .proof_queue()?
            .open
            .into_iter()
            .filter(|j| j.rollup_id == rollup_id)
            .collect(),
    })
}

/// Ordered and proven heights, unproven jobs, the active set, and what
/// holds proven finality.
pub(crate) fn finality(state: &Committed) -> Result<pb::Finality, StoreError> {
    let ordered = state.last_height()?;
    let queue = state.proof_queue()?;
    let set = state.prover_set()?;
    let hold = hold(
        &queue,
        &state.prover_registry()?,
        &set,
        &state.params()?,
        ordered,
    );
    Ok(pb::Finality {
        ordered_height: ordered,
        proven_height: state.proven_height()?,
        open_jobs: queue.open.len() as u64,
        pending_jobs: queue
            .open
            .iter()
            .filter(|j| j.status == pb::JobStatus::Pending as i32)
            .count() as u64,
        prover_set: Some(set),
        held: hold.held,
        hold_reason: hold.reason as i32,
        hold_detail: hold.detail,
        live_provers: hold.live_provers,
    })
}
