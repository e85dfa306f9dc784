//! The provers' pure rules: slashing and fee shares, epochs, the active
//! set, the proven height of a proof queue, back-pressure's bound, and what
//! holds proven finality. No state, no I/O: unit- and property-tested alone.

use std::collections::BTreeSet;

use seqnet_proto::{pb, Address};

use super::{address_of, status_is};
use crate::params::ChainParams;

const BPS: u128 = 10_000;

/// `stake * bps / 10_000`, rounded down and never above `stake`.
pub(crate) fn slash_amount(stake: u64, bps: u32) -> u64 {
    let amount = u128::from(stake).saturating_mul(u128::from(bps)) / BPS;
    u64::try_from(amount).unwrap_or(u64::MAX).min(stake)
}

/// Splits a slashed amount into (bounty, burned); they add up to `slashed`.
pub(crate) fn split_bounty(slashed: u64, bounty_bps: u32) -> (u64, u64) {
    let bounty = slash_amount(slashed, bounty_bps);
    (bounty, slashed.saturating_sub(bounty))
}

/// `fees * bps / 10_000`, rounded down.
pub(crate) fn fee_share(fees: u64, bps: u32) -> u64 {
    slash_amount(fees, bps)
}

/// Whether `height` ends an epoch boundary block, and that epoch's number.
pub(crate) fn epoch_at(height: u64, epoch_length: u64) -> Option<u64> {
    let length = epoch_length.max(1);
    let offset = height.checked_sub(1)?;
    (offset.checked_rem(length) == Some(0)).then(|| offset.checked_div(length).unwrap_or(0))
}

/// The active set: BONDED with enough stake, top `max_active_provers` by
/// stake (ties: lower address), returned sorted by address.
pub(crate) fn select_active(
    registry: &pb::ProverRegistry,
    params: &ChainParams,
) -> Vec<(Address, u64)> {
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

/// The highest height every span up to which is proven: `height` with
/// nothing unproven, else the lowest first unproven height of any rollup
/// (its lowest job's `from`, or its collecting span's) minus one.
pub(crate) fn proven_height(queue: &pb::ProofQueue, height: u64) -> u64 {
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

/// Whether ordering is too far ahead of proving: `lag` (last committed
/// height minus proven height) above `max_unproven_blocks`.
pub(crate) fn over_unproven_limit(lag: u64, max_unproven_blocks: u64) -> bool {
    lag > max_unproven_blocks
}

/// Why proven finality is where it is (see `pb::HoldReason`), read from
/// committed state: the span that holds it (the lowest unproven one of any
/// rollup) and its state, whether the next block is under back-pressure,
/// and the provers that can take jobs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hold {
    pub reason: pb::HoldReason,
    pub detail: String,
    pub held: bool,
    pub live_provers: u64,
}

/// [`Hold`] for a chain at `ordered` height with `queue`, the prover
/// `registry` and `set`, and `params`.
pub(crate) fn hold(
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
    let held = over_unproven_limit(lag, params.max_unproven_blocks);
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
    fn the_unproven_limit_is_exclusive() {
        assert!(!over_unproven_limit(2, 2));
        assert!(over_unproven_limit(3, 2));
        assert!(!over_unproven_limit(0, 0));
    }

    #[test]
    fn epochs_start_at_one() {
        assert_eq!(epoch_at(0, 10), None);
        assert_eq!(epoch_at(1, 10), Some(0));
        assert_eq!(epoch_at(10, 10), None);
        assert_eq!(epoch_at(11, 10), Some(1));
        assert_eq!(epoch_at(7, 1), Some(6));
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
                .map(|s| crate::provers::new_record(Address([*s; 32]), 5_000))
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

    }
}
