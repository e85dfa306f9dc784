//! Prover rotation: the deterministic, stake-weighted order in which the
//! active provers are asked to prove one job, and the epoch seed it draws from.
//! Pure functions of consensus data (no state, no clock, no randomness).
//!
//! [`assignment_order`] samples without replacement by cumulative stake:
//! for draw `j = 0, 1, ...`, `r_j` is the first 16 bytes (big-endian `u128`) of
//! `SHA-256("seqnet/rotation/v1" || seed || rollup_id (u64 BE) || height (u64 BE) || j (u64 BE))`
//! modulo the stake still in the pool; the prover whose cumulative range (in
//! address order) contains `r_j` is next, and leaves the pool. The first prover
//! of the order is the job's primary, the others its back-ups in order.

use seqnet_proto::Address;
use sha2::{Digest, Sha256};

/// Domain separator of the per-draw hash.
pub const ROTATION_DOMAIN: &[u8] = b"seqnet/rotation/v1";

/// `SHA-256(previous app hash || epoch (u64 BE))`: the seed of an epoch's
/// orders, fixed by the block before the epoch's first block.
pub fn epoch_seed(previous_app_hash: &[u8], epoch: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(previous_app_hash);
    h.update(epoch.to_be_bytes());
    h.finalize().into()
}

fn draw(seed: &[u8; 32], rollup_id: u64, height: u64, j: u64) -> u128 {
    let mut h = Sha256::new();
    h.update(ROTATION_DOMAIN);
    h.update(seed);
    h.update(rollup_id.to_be_bytes());
    h.update(height.to_be_bytes());
    h.update(j.to_be_bytes());
    let digest: [u8; 32] = h.finalize().into();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

/// The order of `active` (address, stake) for job `(rollup_id, height)`: a
/// permutation of the distinct addresses of `active`, whatever order they come
/// in. Provers with stake 0 (never in a real active set) come last, by address.
pub fn assignment_order(
    seed: &[u8; 32],
    rollup_id: u64,
    height: u64,
    active: &[(Address, u64)],
) -> Vec<Address> {
    let mut pool: Vec<(Address, u64)> = active.to_vec();
    pool.sort();
    pool.dedup_by_key(|(a, _)| *a);
    let mut zero: Vec<Address> = pool
        .iter()
        .filter(|(_, s)| *s == 0)
        .map(|(a, _)| *a)
        .collect();
    pool.retain(|(_, s)| *s > 0);
    // At most 2^64 provers of at most 2^64 - 1 each never overflow a u128 sum
    // in practice; saturate anyway.
    let mut total: u128 = pool
        .iter()
        .fold(0u128, |t, (_, s)| t.saturating_add(u128::from(*s)));
    let mut order = Vec::with_capacity(active.len());
    let mut j: u64 = 0;
    while !pool.is_empty() && total > 0 {
        let r = draw(seed, rollup_id, height, j)
            .checked_rem(total)
            .unwrap_or(0);
        let mut cumulative: u128 = 0;
        let mut pick = pool.len().saturating_sub(1);
        for (i, (_, stake)) in pool.iter().enumerate() {
            cumulative = cumulative.saturating_add(u128::from(*stake));
            if r < cumulative {
                pick = i;
                break;
            }
        }
        let (address, stake) = pool.remove(pick);
        total = total.saturating_sub(u128::from(stake));
        order.push(address);
        j = j.saturating_add(1);
    }
    order.extend(pool.into_iter().map(|(a, _)| a));
    order.append(&mut zero);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn addr(i: u8) -> Address {
        Address([i; 32])
    }

    #[test]
    fn order_is_a_deterministic_permutation() {
        let seed = epoch_seed(b"app hash", 3);
        let active = [(addr(1), 10), (addr(2), 20), (addr(3), 30)];
        let a = assignment_order(&seed, 1, 5, &active);
        let mut reversed = active;
        reversed.reverse();
        assert_eq!(a, assignment_order(&seed, 1, 5, &reversed));
        assert_eq!(a.len(), 3);
        assert_eq!(
            a.iter().collect::<BTreeSet<_>>(),
            active.iter().map(|(a, _)| a).collect()
        );
        assert!(assignment_order(&seed, 1, 5, &[]).is_empty());
    }

    #[test]
    fn seed_depends_on_hash_and_epoch() {
        assert_ne!(epoch_seed(b"a", 1), epoch_seed(b"a", 2));
        assert_ne!(epoch_seed(b"a", 1), epoch_seed(b"b", 1));
    }

    #[test]
    fn primary_frequency_follows_stake() {
        let stakes = [1_000u64, 2_000, 3_000, 4_000];
        let active: Vec<(Address, u64)> = stakes
            .iter()
            .enumerate()
            .map(|(i, s)| (addr(i as u8 + 1), *s))
            .collect();
        let total: u64 = stakes.iter().sum();
        let seed = epoch_seed(b"frequency", 1);
        let draws = 20_000u64;
        let mut first = [0u64; 4];
        for n in 0..draws {
            let order = assignment_order(&seed, 1 + n % 3, n, &active);
            let index = active
                .iter()
                .position(|(a, _)| *a == order[0])
                .expect("in set");
            first[index] += 1;
        }
        for (i, stake) in stakes.iter().enumerate() {
            let expected = *stake as f64 / total as f64;
            let got = first[i] as f64 / draws as f64;
            assert!(
                (got - expected).abs() < 0.02,
                "prover {i}: primary {got:.4} of jobs, stake share {expected:.4}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_set_gives_a_deterministic_permutation(
            stakes in proptest::collection::btree_map(any::<u8>(), 0u64..u64::MAX, 0..40),
            seed in any::<[u8; 32]>(),
            rollup in any::<u64>(),
            height in any::<u64>(),
        ) {
            let active: Vec<(Address, u64)> = stakes.iter().map(|(a, s)| (addr(*a), *s)).collect();
            let order = assignment_order(&seed, rollup, height, &active);
            prop_assert_eq!(&order, &assignment_order(&seed, rollup, height, &active));
            prop_assert_eq!(order.len(), active.len());
            let set: BTreeSet<Address> = order.iter().copied().collect();
            prop_assert_eq!(set, active.iter().map(|(a, _)| *a).collect::<BTreeSet<_>>());
            // Zero-stake entries come last.
            let positive = active.iter().filter(|(_, s)| *s > 0).count();
            for a in &order[..positive] {
                prop_assert!(stakes[&a.0[0]] > 0);
            }
        }
    }
}
