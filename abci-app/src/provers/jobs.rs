//! The provers' block end (rules in the module docs of [`super`]): matured
//! unbondings, epoch changes, deadlines and slashing, linking pending
//! transitions into each rollup's proven root, moving jobs, and cutting each
//! rollup's batches into spans whose jobs are assigned at once.

use std::collections::{BTreeMap, BTreeSet};

use seqnet_proto::groth16::{batch_commitment, span_commitment};
use seqnet_proto::{pb, Address, RollupId};

use super::rotation::{assignment_order, epoch_seed};
use super::rules::{epoch_at, fee_share, proven_height, select_active, slash_amount, split_bounty};
use super::state::{ProversState, ProversWrite};
use super::{address_of, is_eligible, root_of, status_is};
use crate::accounts::{AccountsState, AccountsWrite};
use crate::params::ChainParams;
use crate::rollups::batches::BlockBatch;
use crate::rollups::RollupsState;
use crate::state::StateDelta;
use crate::store::StoreError;
use crate::tx::Event;

/// What [`end_block`] did, for events and metrics.
#[derive(Debug, Default)]
pub(crate) struct ProverBlock {
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

fn active_of(set: &pb::ProverSet) -> Vec<(Address, u64)> {
    set.active
        .iter()
        .filter_map(|p| address_of(&p.address).map(|a| (a, p.stake)))
        .collect()
}

/// OPEN jobs per assigned prover (its queue), the load assignment evens out.
fn open_loads(queue: &pb::ProofQueue) -> BTreeMap<Vec<u8>, u64> {
    let mut loads: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for job in &queue.open {
        if status_is(job, pb::JobStatus::Open) && !job.assigned.is_empty() {
            let load = loads.entry(job.assigned.clone()).or_insert(0);
            *load = load.saturating_add(1);
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
    /// position `from` on (ties: the earliest; provers that missed a deadline
    /// in the last window only when no other is eligible), drawing a fresh order from
    /// the current set when none is left there, with deadline
    /// `height + window * (1 + that prover's load)`. Returns whether a prover
    /// was assigned. The caller has released the job's previous prover.
    fn assign(&mut self, job: &mut pb::ProofJob, from: usize, window: u64) -> bool {
        let registry = self.registry;
        let loads = &self.loads;
        let avoid = &self.avoid;
        // A prover that missed within the last window is passed over while
        // one that did not is eligible: a dead prover (not jailed yet) would
        // otherwise get the next span at once, its queue being empty. One
        // window, not more: it must still get jobs to miss and be jailed.
        let height = self.height;
        let recently_missed = |a: &Address| {
            registry.get(a).is_some_and(|p| {
                p.last_missed_height != 0 && p.last_missed_height.saturating_add(window) > height
            })
        };
        let pick = |order: &[Vec<u8>], from: usize| {
            let eligible = |skip_missed: bool| {
                order
                    .iter()
                    .enumerate()
                    .skip(from)
                    .filter(|(_, a)| {
                        !avoid.contains(*a)
                            && address_of(a).is_some_and(|a| {
                                is_eligible(registry, &a) && !(skip_missed && recently_missed(&a))
                            })
                    })
                    .min_by_key(|(i, a)| (loads.get(*a).copied().unwrap_or(0), *i))
                    .map(|(i, a)| (i, a.clone()))
            };
            eligible(true).or_else(|| eligible(false))
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
                out.transitions_dropped = out.transitions_dropped.saturating_add(1);
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
            out.jobs_proven = out.jobs_proven.saturating_add(1);
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
    let prover_share = fee_share(job.fees, params.prover_fee_share_bps).min(pool);
    pool = pool.saturating_sub(prover_share);
    let reward = prover_share.saturating_add(job.bounty);
    if let Some(prover) = address_of(&job.prover) {
        let mut account = state.account(&prover)?;
        account.balance = account.balance.saturating_add(reward);
        state.put_account(&account);
    }
    let mut aggregator_fee = 0;
    if let Some(aggregator) = address_of(&job.aggregator) {
        aggregator_fee = fee_share(job.fees, params.aggregator_fee_bps).min(pool);
        pool = pool.saturating_sub(aggregator_fee);
        let mut account = state.account(&aggregator)?;
        account.balance = account.balance.saturating_add(aggregator_fee);
        state.put_account(&account);
    }
    state.put_fee_pool(pool);
    Ok(Paid {
        fee_share: prover_share,
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
        out.jobs_opened = out.jobs_opened.saturating_add(1);
        queue.open.push(job);
    }
    queue.collecting = still;
    Ok(changed)
}

/// End of block `height`: unbonding, epoch change, linking, deadlines, spans
/// and the proven height (see the module docs for the rules). Only storage
/// can fail: arithmetic here saturates, so every node ends every block.
pub(crate) fn end_block(
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
    release_unbonded(state, &mut registry, height, &mut out)?;
    // 2. Epoch boundary.
    let set = change_epoch(
        state,
        &registry,
        params,
        height,
        previous_app_hash,
        &mut out,
    )?;

    let mut queue = state.proof_queue()?;
    let mut windows = Windows {
        params,
        cache: BTreeMap::new(),
    };
    let mut queue_changed = abandon_unprovable(state, &mut queue, &mut windows, &mut out)?;

    // 3. Deadlines: slash who missed (the jobs move in rule 5).
    let misses = find_misses(&queue, &mut registry, params, height, &mut out);
    let missed_now: BTreeSet<Vec<u8>> = misses.iter().map(|m| m.prover.clone()).collect();

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
    queue_changed |= move_jobs(
        state,
        params,
        &mut queue,
        &mut assigner,
        &mut windows,
        &misses,
        &missed_now,
        &mut out,
    )?;

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
    count_jobs(&queue, &mut out);
    out.proven_height = proven_height(&queue, height);
    state.put_proven_height(out.proven_height);
    Ok(out)
}

/// Rule 1: stakes whose unbonding delay is over go back to their accounts.
fn release_unbonded(
    state: &mut StateDelta,
    registry: &mut BTreeMap<Address, pb::Prover>,
    height: u64,
    out: &mut ProverBlock,
) -> Result<(), StoreError> {
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
    Ok(())
}

/// Rule 2: at an epoch boundary, the new active set and seed; the set in
/// force after this block.
fn change_epoch(
    state: &mut StateDelta,
    registry: &BTreeMap<Address, pb::Prover>,
    params: &ChainParams,
    height: u64,
    previous_app_hash: &[u8],
    out: &mut ProverBlock,
) -> Result<pb::ProverSet, StoreError> {
    let Some(epoch) = epoch_at(height, params.epoch_length) else {
        return state.prover_set();
    };
    let snapshot = pb::ProverRegistry {
        provers: registry.values().cloned().collect(),
    };
    let active = select_active(&snapshot, params);
    let set = pb::ProverSet {
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
    Ok(set)
}

/// An open job whose deadline passed at this block end.
struct Miss {
    index: usize,
    prover: Vec<u8>,
    slashed: u64,
}

/// Rule 3: every open job past its deadline, its prover slashed (and
/// jailed at `jail_after_misses`).
fn find_misses(
    queue: &pb::ProofQueue,
    registry: &mut BTreeMap<Address, pb::Prover>,
    params: &ChainParams,
    height: u64,
    out: &mut ProverBlock,
) -> Vec<Miss> {
    let mut misses = Vec::new();
    for (index, job) in queue.open.iter().enumerate() {
        let open = status_is(job, pb::JobStatus::Open) && !job.assigned.is_empty();
        if open && job.deadline <= height {
            let slashed = match address_of(&job.assigned).and_then(|a| registry.get_mut(&a)) {
                Some(record) => slash_miss(record, params, height, out),
                None => 0,
            };
            misses.push(Miss {
                index,
                prover: job.assigned.clone(),
                slashed,
            });
        }
    }
    misses
}

/// Rule 5: missed jobs to their next prover (with the bounty), unassigned
/// jobs to a prover, and the other jobs of provers that missed now or are
/// no longer eligible to another. Whether the queue changed.
#[allow(clippy::too_many_arguments)]
fn move_jobs(
    state: &StateDelta,
    params: &ChainParams,
    queue: &mut pb::ProofQueue,
    assigner: &mut Assigner<'_>,
    windows: &mut Windows<'_>,
    misses: &[Miss],
    missed_now: &BTreeSet<Vec<u8>>,
    out: &mut ProverBlock,
) -> Result<bool, StoreError> {
    let mut changed = false;
    for miss in misses {
        let Some(job) = queue.open.get_mut(miss.index) else {
            continue;
        };
        let window = windows.window(state, job.rollup_id)?;
        let (bounty, burned) = split_bounty(miss.slashed, params.bounty_bps);
        job.bounty = job.bounty.saturating_add(bounty);
        job.reassignments = job.reassignments.saturating_add(1);
        let missed_hex = hex::encode(&job.assigned);
        assigner.reassign_next(job, window);
        out.jobs_reassigned = out.jobs_reassigned.saturating_add(1);
        changed = true;
        let mut event = assigned_event("job_reassigned", job);
        event.attributes.extend([
            ("missed", missed_hex),
            ("slashed", miss.slashed.to_string()),
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
                changed = true;
                out.events.push(assigned_event("job_assigned", job));
            }
            continue;
        }
        if job.assigned_height == assigner.height {
            continue; // (re)assigned at this block end already
        }
        let gone = missed_now.contains(&job.assigned)
            || !address_of(&job.assigned).is_some_and(|a| is_eligible(assigner.registry, &a));
        if gone {
            let left = hex::encode(&job.assigned);
            assigner.reassign_next(job, window);
            changed = true;
            let mut event = assigned_event("job_moved", job);
            event.attributes.push(("from", left));
            out.events.push(event);
        }
    }
    Ok(changed)
}

/// Rule 7's counts: unproven, pending and late jobs after this block.
fn count_jobs(queue: &pb::ProofQueue, out: &mut ProverBlock) {
    let count = |keep: &dyn Fn(&pb::ProofJob) -> bool| {
        u64::try_from(queue.open.iter().filter(|j| keep(j)).count()).unwrap_or(u64::MAX)
    };
    out.jobs_open = count(&|_| true);
    out.jobs_pending = count(&|j| status_is(j, pb::JobStatus::Pending));
    out.jobs_late = count(&|j| j.reassignments > 0);
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
    record.stake = record.stake.saturating_sub(slashed);
    record.slashed = record.slashed.saturating_add(slashed);
    record.misses = record.misses.saturating_add(1);
    record.last_missed_height = height;
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

/// The event of a job (re)assigned at this block end.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollups::RollupsWrite;
    use proptest::prelude::*;
    use std::sync::Arc;

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

    /// A prover that missed a deadline in the last window gets no new
    /// job while another is eligible, even with the emptiest queue; when it
    /// is the only one left, it still gets the job; later it is back.
    #[test]
    fn a_prover_that_just_missed_is_passed_over_while_another_can_prove() {
        let prover = |seed: u8, missed: u64| {
            let mut record = crate::provers::new_record(Address([seed; 32]), 100);
            record.last_missed_height = missed;
            (Address([seed; 32]), record)
        };
        let assign =
            |registry: &BTreeMap<Address, pb::Prover>, height: u64, loads: &[(u8, u64)]| {
                let mut assigner = Assigner {
                    active: registry.keys().map(|a| (*a, 100)).collect(),
                    seed: [0; 32],
                    height,
                    registry,
                    loads: loads.iter().map(|(s, l)| (vec![*s; 32], *l)).collect(),
                    avoid: BTreeSet::new(),
                };
                let mut job = pb::ProofJob {
                    order: vec![vec![1; 32], vec![2; 32]],
                    ..Default::default()
                };
                assert!(assigner.assign(&mut job, 0, 10));
                job.assigned[0]
            };
        // Prover 1 missed at 95 and has nothing queued; prover 2 has 3 jobs.
        let registry: BTreeMap<_, _> = [prover(1, 95), prover(2, 0)].into_iter().collect();
        assert_eq!(assign(&registry, 100, &[(2, 3)]), 2);
        // A window (10 blocks) after the miss it is back.
        assert_eq!(assign(&registry, 104, &[(2, 3)]), 2);
        assert_eq!(assign(&registry, 105, &[(2, 3)]), 1);
        // The only bonded prover gets the job even right after a miss.
        let mut alone = registry.clone();
        if let Some(p) = alone.get_mut(&Address([2; 32])) {
            p.status = pb::ProverStatus::Jailed as i32;
        }
        assert_eq!(assign(&alone, 100, &[]), 1);
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

    }
}
