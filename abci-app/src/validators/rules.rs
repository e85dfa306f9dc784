//! The validators' pure rules: voting power from stake, the set an epoch
//! selects, the updates between two sets, and the missed-vote window. No
//! state, no I/O: unit- and property-tested alone.

use std::collections::BTreeMap;

use seqnet_proto::pb;

use crate::params::ChainParams;

/// No validator gets more power than this, so the set's total stays far
/// below CometBFT's limit (`i64::MAX / 8`) whatever the stakes.
pub(crate) const MAX_POWER: i64 = 1 << 40;

/// CometBFT voting power of `stake`: `stake / stake_per_power`, capped.
pub(crate) fn power_of(stake: u64, stake_per_power: u64) -> i64 {
    let units = stake.checked_div(stake_per_power).unwrap_or(0);
    i64::try_from(units).unwrap_or(MAX_POWER).min(MAX_POWER)
}

/// The set an epoch boundary selects: BONDED records with at least
/// `min_validator_stake` and a non-zero power, the top `max_validators` by
/// stake (ties: lower consensus address), sorted by consensus address.
pub(crate) fn select_set<'r>(
    records: impl IntoIterator<Item = &'r pb::ValidatorRecord>,
    params: &ChainParams,
) -> pb::ValidatorSet {
    let mut candidates: Vec<&pb::ValidatorRecord> = records
        .into_iter()
        .filter(|r| {
            r.status == pb::ValidatorStatus::Bonded as i32
                && !r.tombstoned
                && r.stake >= params.min_validator_stake
                && power_of(r.stake, params.stake_per_power) > 0
        })
        .collect();
    candidates.sort_by(|a, b| {
        b.stake
            .cmp(&a.stake)
            .then(a.consensus_address.cmp(&b.consensus_address))
    });
    candidates.truncate(usize::try_from(params.max_validators).unwrap_or(usize::MAX));
    let mut validators: Vec<pb::Validator> = candidates
        .into_iter()
        .map(|r| pb::Validator {
            address: r.consensus_address.clone(),
            public_key: r.consensus_key.clone(),
            power: power_of(r.stake, params.stake_per_power),
        })
        .collect();
    validators.sort_by(|a, b| a.address.cmp(&b.address));
    pb::ValidatorSet { validators }
}

/// What CometBFT must be told to turn `from` into `to`: every validator
/// whose power changed or that joined (with its power), and every one that
/// left (power 0), by consensus address.
pub(crate) fn set_updates(from: &pb::ValidatorSet, to: &pb::ValidatorSet) -> Vec<pb::Validator> {
    let before: BTreeMap<&[u8], &pb::Validator> = from
        .validators
        .iter()
        .map(|v| (v.address.as_slice(), v))
        .collect();
    let after: BTreeMap<&[u8], &pb::Validator> = to
        .validators
        .iter()
        .map(|v| (v.address.as_slice(), v))
        .collect();
    let mut updates = Vec::new();
    for (address, old) in &before {
        if !after.contains_key(address) {
            updates.push(pb::Validator {
                power: 0,
                ..(*old).clone()
            });
        }
    }
    for (address, new) in &after {
        if before.get(address).map(|old| old.power) != Some(new.power) {
            updates.push((*new).clone());
        }
    }
    updates.sort_by(|a, b| a.address.cmp(&b.address));
    updates
}

/// Records one height of a validator's missed-vote window (`missed`: a bit
/// per height, bit `height % window`), keeping `missed_count` equal to the
/// set bits; returns whether anything changed.
pub(crate) fn record_vote(
    record: &mut pb::ValidatorRecord,
    window: u64,
    height: u64,
    signed: bool,
) -> bool {
    let window = window.max(1);
    let bytes = usize::try_from(window.div_ceil(8)).unwrap_or(usize::MAX);
    let mut changed = false;
    if record.missed.len() != bytes {
        record.missed = vec![0; bytes];
        record.missed_count = 0;
        changed = true;
    }
    let bit = height.checked_rem(window).unwrap_or(0);
    let byte = usize::try_from(bit.checked_div(8).unwrap_or(0)).unwrap_or(usize::MAX);
    let mask = 1u8
        .checked_shl(u32::try_from(bit.checked_rem(8).unwrap_or(0)).unwrap_or(0))
        .unwrap_or(0);
    let Some(slot) = record.missed.get_mut(byte) else {
        return changed;
    };
    let was_missed = *slot & mask != 0;
    match (was_missed, signed) {
        (false, false) => {
            *slot |= mask;
            record.missed_count = record.missed_count.saturating_add(1);
            true
        }
        (true, true) => {
            *slot &= !mask;
            record.missed_count = record.missed_count.saturating_sub(1);
            true
        }
        _ => changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(seed: u8, stake: u64, status: pb::ValidatorStatus) -> pb::ValidatorRecord {
        pb::ValidatorRecord {
            operator: vec![seed; 32],
            consensus_key: vec![seed; 32],
            consensus_address: vec![seed; 20],
            stake,
            status: status as i32,
            ..Default::default()
        }
    }

    fn params(max: u64) -> ChainParams {
        ChainParams {
            max_validators: max,
            min_validator_stake: 10_000,
            stake_per_power: 1_000,
            ..ChainParams::default()
        }
    }

    #[test]
    fn power_is_stake_over_stake_per_power_capped() {
        assert_eq!(power_of(10_999, 1_000), 10);
        assert_eq!(power_of(999, 1_000), 0);
        assert_eq!(power_of(u64::MAX, 1), MAX_POWER);
        assert_eq!(power_of(5, 0), 0);
    }

    #[test]
    fn the_set_is_the_top_bonded_stakes_sorted_by_address() {
        use pb::ValidatorStatus::*;
        let mut tombstoned = record(6, 90_000, Bonded);
        tombstoned.tombstoned = true;
        let records = [
            record(1, 20_000, Bonded),
            record(2, 50_000, Bonded),
            record(3, 9_999, Bonded),     // below the minimum
            record(4, 80_000, Jailed),    // jailed
            record(5, 70_000, Unbonding), // leaving
            tombstoned,
            record(7, 20_000, Bonded), // ties with 1: lower address wins
            record(8, 30_000, Bonded),
        ];
        let set = select_set(&records, &params(3));
        let addresses: Vec<u8> = set.validators.iter().map(|v| v.address[0]).collect();
        assert_eq!(addresses, [1, 2, 8]);
        assert_eq!(
            set.validators.iter().map(|v| v.power).collect::<Vec<_>>(),
            [20, 50, 30]
        );
        let all = select_set(&records, &params(100));
        assert_eq!(all.validators.len(), 4);
    }

    #[test]
    fn updates_name_joins_leaves_and_power_changes_only() {
        let v = |seed: u8, power: i64| pb::Validator {
            address: vec![seed; 20],
            public_key: vec![seed; 32],
            power,
        };
        let from = pb::ValidatorSet {
            validators: vec![v(1, 10), v(2, 10), v(3, 10)],
        };
        let to = pb::ValidatorSet {
            validators: vec![v(1, 10), v(3, 12), v(4, 5)],
        };
        let updates = set_updates(&from, &to);
        assert_eq!(updates, vec![v(2, 0), v(3, 12), v(4, 5)]);
        assert!(set_updates(&to, &to).is_empty());
    }

    #[test]
    fn the_window_counts_misses_and_forgets_them_a_window_later() {
        let mut r = record(1, 10_000, pb::ValidatorStatus::Bonded);
        assert!(record_vote(&mut r, 10, 1, true)); // sized on first use
        for h in 2..=6 {
            assert!(record_vote(&mut r, 10, h, false));
        }
        assert_eq!(r.missed_count, 5);
        assert!(!record_vote(&mut r, 10, 7, true));
        // Height 12 reuses height 2's bit: signed now, so the miss is gone.
        assert!(record_vote(&mut r, 10, 12, true));
        assert_eq!(r.missed_count, 4);
    }

    proptest! {
        /// The count always equals the misses among the last `window` heights.
        #[test]
        fn missed_count_is_the_misses_of_the_last_window(
            window in 1u64..40,
            votes in proptest::collection::vec(any::<bool>(), 1..200),
        ) {
            let mut r = record(1, 10_000, pb::ValidatorStatus::Bonded);
            for (i, signed) in votes.iter().enumerate() {
                record_vote(&mut r, window, i as u64 + 1, *signed);
                let start = (i + 1).saturating_sub(window as usize);
                let expected = votes[start..=i].iter().filter(|s| !**s).count() as u64;
                prop_assert_eq!(r.missed_count, expected);
            }
        }

        /// Selection never exceeds the cap, never picks an ineligible
        /// record, and is sorted; updates turn the old set into the new.
        #[test]
        fn selection_and_updates_agree(
            stakes in proptest::collection::vec((0u64..100_000, 0i32..4), 0..30),
            old in proptest::collection::vec((0u64..100_000, 0i32..4), 0..30),
            max in 1u64..10,
        ) {
            let build = |list: &[(u64, i32)]| -> Vec<pb::ValidatorRecord> {
                list.iter().enumerate().map(|(i, (stake, status))| pb::ValidatorRecord {
                    consensus_address: vec![i as u8; 20],
                    consensus_key: vec![i as u8; 32],
                    stake: *stake,
                    status: *status,
                    ..Default::default()
                }).collect()
            };
            let p = params(max);
            let new = select_set(&build(&stakes), &p);
            let prev = select_set(&build(&old), &p);
            prop_assert!(new.validators.len() as u64 <= max);
            prop_assert!(new.validators.windows(2).all(|w| w[0].address < w[1].address));
            prop_assert!(new.validators.iter().all(|v| v.power >= 10));
            // Applying the updates to the previous set gives the new one.
            let mut applied: BTreeMap<Vec<u8>, i64> =
                prev.validators.iter().map(|v| (v.address.clone(), v.power)).collect();
            for u in set_updates(&prev, &new) {
                if u.power == 0 { applied.remove(&u.address); } else { applied.insert(u.address, u.power); }
            }
            let expected: BTreeMap<Vec<u8>, i64> =
                new.validators.iter().map(|v| (v.address.clone(), v.power)).collect();
            prop_assert_eq!(applied, expected);
        }
    }
}
