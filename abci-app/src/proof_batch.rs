//! Batch verification of the proofs a block carries, before its transactions
//! run (ProcessProposal and FinalizeBlock).
//!
//! A block with two or more `SubmitProof` actions has their Groth16 proofs
//! checked together ([`seqnet_proto::batch_verify`]: one multi-Miller loop and
//! one final exponentiation, fixed pairings once per verifying key), and every
//! proof that passes is remembered in the verified-proof memo of
//! [`crate::provers`]. Execution then runs exactly as before: each
//! `SubmitProof` goes through [`crate::provers::check_proof`], whose
//! verification hits the memo for the batch-verified proofs and verifies the
//! others on its own. So results are those of per-proof verification, in
//! every case, on every node; the batch only moves (and shares) the pairing
//! work. Nothing here writes state or decides a result.
//!
//! The statement of each proof is predicted from the state at the start of the
//! block: the job `(rollup, height)` must be open and assigned to the signer,
//! its commitment comes from the job, and its previous root is the rollup's
//! proven root, or the new root of the rollup's previous proof in the block
//! that was not found invalid. A wrong prediction (say a proof whose
//! transaction fails for another reason) only costs a per-proof verification
//! later. Bad proofs are found by bisection; a rollup whose proof failed has
//! the statements after it predicted again, for at most [`MAX_ROUNDS`] rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use seqnet_proto::batch_verify::{verify_each, BatchItem};
use seqnet_proto::groth16::{BatchStatement, PreparedKey};
use seqnet_proto::{pb, Action, RollupId};

use crate::execute::{check_stateless, SignatureCache};
use crate::params::ChainParams;
use crate::provers::{is_verified, prepared_key, remember_verified, verified_id};
use crate::state::StateDelta;
use crate::store::StoreError;

/// Most prediction rounds (each after some proofs were found invalid).
pub const MAX_ROUNDS: usize = 3;

static BATCH_VERIFIED: AtomicU64 = AtomicU64::new(0);

/// Proofs verified in batches by this process so far (for tests and metrics).
pub fn batch_verified_total() -> u64 {
    BATCH_VERIFIED.load(Ordering::Relaxed)
}

/// A `SubmitProof` action of the block, in block order.
struct Submitted {
    signer: [u8; 32],
    rollup_id: RollupId,
    height: u64,
    proof: Vec<u8>,
    new_root: [u8; 32],
}

/// A rollup's encoded verifying key, its prepared form and its proven root.
type RollupKey = (Vec<u8>, Arc<PreparedKey>, [u8; 32]);

/// What [`preverify`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Preverified {
    /// Proofs checked in batches.
    pub checked: usize,
    /// Of those, proofs that verified (now in the memo).
    pub verified: usize,
}

/// Batch-verifies the proofs of `txs` (a block's transactions) against
/// `state` (the state before them) and remembers the valid ones; a block with
/// fewer than two proofs is left to per-proof verification.
pub fn preverify(
    state: &StateDelta,
    params: &ChainParams,
    chain_id: &str,
    signatures: &SignatureCache,
    txs: &[Vec<u8>],
) -> Result<Preverified, StoreError> {
    let submitted = collect(params, chain_id, signatures, txs);
    let mut done = Preverified::default();
    if submitted.len() < 2 {
        return Ok(done);
    }
    let queue = state.proof_queue()?;
    let open: BTreeMap<(RollupId, u64), &pb::ProofJob> = queue
        .open
        .iter()
        .map(|j| ((j.rollup_id, j.height), j))
        .collect();
    let mut rollups: BTreeMap<RollupId, Option<RollupKey>> = BTreeMap::new();
    for s in &submitted {
        if rollups.contains_key(&s.rollup_id) {
            continue;
        }
        let entry = match state.rollup(s.rollup_id)? {
            Some(r) if !r.verifying_key.is_empty() => match prepared_key(&r.verifying_key) {
                Ok(key) => {
                    let proven = state.rollup_proving(s.rollup_id)?.proven_root;
                    let root = <[u8; 32]>::try_from(proven.as_slice()).unwrap_or([0; 32]);
                    Some((r.verifying_key, key, root))
                }
                Err(_) => None,
            },
            _ => None,
        };
        rollups.insert(s.rollup_id, entry);
    }
    // Triples found invalid, and triples already checked.
    let mut invalid: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut settled: BTreeSet<[u8; 32]> = BTreeSet::new();
    for _ in 0..MAX_ROUNDS {
        let mut prev: BTreeMap<RollupId, [u8; 32]> = BTreeMap::new();
        let mut round: Vec<(usize, BatchStatement, [u8; 32])> = Vec::new();
        for (index, s) in submitted.iter().enumerate() {
            let Some(Some((vk, _, proven))) = rollups.get(&s.rollup_id) else {
                continue;
            };
            let Some(job) = open.get(&(s.rollup_id, s.height)) else {
                continue;
            };
            if job.assigned.as_slice() != s.signer.as_slice() {
                continue;
            }
            let statement = BatchStatement {
                rollup_id: s.rollup_id,
                height: s.height,
                commitment: <[u8; 32]>::try_from(job.commitment.as_slice()).unwrap_or([0; 32]),
                prev_root: prev.get(&s.rollup_id).copied().unwrap_or(*proven),
                new_root: s.new_root,
            };
            let id = verified_id(vk, &s.proof, &statement);
            if invalid.contains(&id) {
                // Will fail: the next proof of the rollup starts from `prev`.
                continue;
            }
            prev.insert(s.rollup_id, s.new_root);
            if settled.contains(&id) || is_verified(&id) {
                continue;
            }
            round.push((index, statement, id));
        }
        if round.is_empty() || (done.checked == 0 && round.len() < 2) {
            break;
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
        let verdicts = verify_each(&items);
        let mut failures = 0usize;
        for ((_, _, id), verdict) in round.iter().zip(verdicts) {
            settled.insert(*id);
            done.checked = done.checked.saturating_add(1);
            match verdict {
                Ok(()) => {
                    remember_verified(*id);
                    done.verified = done.verified.saturating_add(1);
                }
                Err(_) => {
                    invalid.insert(*id);
                    failures = failures.saturating_add(1);
                }
            }
        }
        if failures == 0 {
            break;
        }
    }
    BATCH_VERIFIED.fetch_add(done.verified as u64, Ordering::Relaxed);
    Ok(done)
}

/// Every `SubmitProof` action of the block's well-formed, signed transactions.
fn collect(
    params: &ChainParams,
    chain_id: &str,
    signatures: &SignatureCache,
    txs: &[Vec<u8>],
) -> Vec<Submitted> {
    let mut out = Vec::new();
    for bytes in txs {
        // Cheap filter first: only transactions that can carry a proof.
        if bytes.len() < seqnet_proto::groth16::PROOF_LEN {
            continue;
        }
        let Ok(tx) = check_stateless(bytes, params, chain_id, signatures) else {
            continue;
        };
        for action in &tx.body.actions {
            if let Action::SubmitProof {
                rollup_id,
                height,
                proof,
                new_state_root,
            } = action
            {
                out.push(Submitted {
                    signer: tx.signer.0,
                    rollup_id: *rollup_id,
                    height: *height,
                    proof: proof.clone(),
                    new_root: *new_state_root,
                });
            }
        }
    }
    out
}
