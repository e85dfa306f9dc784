//! Batch verification of the proofs a block carries, before its transactions
//! run (ProcessProposal and FinalizeBlock).
//!
//! A block with two or more `SubmitProof` actions has their Groth16 proofs
//! checked together ([`seqnet_proto::batch_verify`]: one multi-Miller loop and
//! one final exponentiation, fixed pairings once per verifying key), and every
//! proof that passes is remembered in the app's [`VerifierCache`]. Execution
//! then runs exactly as before: each `SubmitProof` goes through
//! [`super::check_proof`], whose verification hits the memo for the
//! batch-verified proofs and verifies the others on its own. The block's
//! transactions arrive decoded: the block runner decodes each once. So results are those of per-proof verification, in
//! every case, on every node; the batch only moves (and shares) the pairing
//! work. Nothing here writes state or decides a result.
//!
//! The statement of each proof is read off the state at the start of the
//! block: the job `(rollup, from)` must be open and assigned to the signer,
//! its span bounds and commitment come from the job, and the transition
//! (previous and new root) from the action itself. A proof whose transaction
//! then fails for another reason only cost its share of the batch. Bad
//! proofs are found by bisection.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use seqnet_proto::batch_verify::{verify_each, BatchItem};
use seqnet_proto::groth16::{PreparedKey, SpanStatement};
use seqnet_proto::{pb, Action, RollupId, Transaction};

use super::job_statement;
use super::state::ProversState;
use super::verify::{verified_id, VerifierCache};
use crate::rollups::RollupsState;
use crate::state::StateDelta;
use crate::store::StoreError;

/// A `SubmitProof` action of the block, in block order.
struct Submitted {
    signer: [u8; 32],
    rollup_id: RollupId,
    from_height: u64,
    proof: Vec<u8>,
    prev_root: [u8; 32],
    new_root: [u8; 32],
}

/// A rollup's encoded verifying key and its prepared form.
type RollupKey = (Vec<u8>, Arc<PreparedKey>);

/// What [`preverify`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Preverified {
    /// Proofs checked in batches.
    pub checked: usize,
    /// Of those, proofs that verified (now in the memo).
    pub verified: usize,
}

/// Batch-verifies the proofs of `txs` (a block's decoded, signed
/// transactions) against `state` (the state before them) and remembers the
/// valid ones in `verifier`; a block with fewer than two proofs is left to
/// per-proof verification.
pub(crate) fn preverify<'t>(
    state: &StateDelta,
    verifier: &VerifierCache,
    txs: impl Iterator<Item = &'t Transaction>,
) -> Result<Preverified, StoreError> {
    let submitted = collect(txs);
    let mut done = Preverified::default();
    if submitted.len() < 2 {
        return Ok(done);
    }
    let queue = state.proof_queue()?;
    let open: BTreeMap<(RollupId, u64), &pb::ProofJob> = queue
        .open
        .iter()
        .map(|j| ((j.rollup_id, j.from_height), j))
        .collect();
    let mut rollups: BTreeMap<RollupId, Option<RollupKey>> = BTreeMap::new();
    for s in &submitted {
        if rollups.contains_key(&s.rollup_id) {
            continue;
        }
        let entry = match state.rollup(s.rollup_id)? {
            Some(r) if !r.verifying_key.is_empty() => verifier
                .prepared_key(&r.verifying_key)
                .ok()
                .map(|key| (r.verifying_key, key)),
            _ => None,
        };
        rollups.insert(s.rollup_id, entry);
    }
    let mut seen: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut round: Vec<(usize, SpanStatement, [u8; 32])> = Vec::new();
    for (index, s) in submitted.iter().enumerate() {
        let Some(Some((vk, _))) = rollups.get(&s.rollup_id) else {
            continue;
        };
        let Some(job) = open.get(&(s.rollup_id, s.from_height)) else {
            continue;
        };
        if job.assigned.as_slice() != s.signer.as_slice() {
            continue;
        }
        let statement = job_statement(job, s.prev_root, s.new_root);
        let id = verified_id(vk, &s.proof, &statement);
        if !seen.insert(id) || verifier.is_verified(&id) {
            continue;
        }
        round.push((index, statement, id));
    }
    if round.len() < 2 {
        return Ok(done);
    }
    let items: Vec<BatchItem<'_>> = round
        .iter()
        .filter_map(|(index, statement, _)| {
            let s = &submitted[*index];
            let key = rollups.get(&s.rollup_id)?.as_ref()?;
            Some(BatchItem {
                key: &key.1,
                proof: &s.proof,
                statement,
            })
        })
        .collect();
    for ((_, _, id), verdict) in round.iter().zip(verify_each(&items)) {
        done.checked = done.checked.saturating_add(1);
        if verdict.is_ok() {
            verifier.remember(*id);
            done.verified = done.verified.saturating_add(1);
        }
    }
    verifier.count_batch_verified(done.verified as u64);
    Ok(done)
}

/// Every `SubmitProof` action of the block's transactions.
fn collect<'t>(txs: impl Iterator<Item = &'t Transaction>) -> Vec<Submitted> {
    let mut out = Vec::new();
    for tx in txs {
        for action in &tx.body.actions {
            if let Action::SubmitProof {
                rollup_id,
                from_height,
                proof,
                prev_state_root,
                new_state_root,
            } = action
            {
                out.push(Submitted {
                    signer: tx.signer.0,
                    rollup_id: *rollup_id,
                    from_height: *from_height,
                    proof: proof.clone(),
                    prev_root: *prev_state_root,
                    new_root: *new_state_root,
                });
            }
        }
    }
    out
}
