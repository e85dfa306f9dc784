//! Batch verification of Groth16 proofs (pure: no I/O, no clock, no
//! randomness of its own).
//!
//! A Groth16 proof `(A, B, C)` of public inputs `x` under key
//! `(alpha, beta, gamma, delta, gamma_abc)` is valid when
//! `e(A, B) = e(alpha, beta) * e(L, gamma) * e(C, delta)` with
//! `L = gamma_abc[0] + sum_j x_j * gamma_abc[j + 1]`. Given proofs `i = 1..n`
//! and 128-bit scalars `r_i`, the batch check is one product of pairings
//! (one multi-Miller loop, one final exponentiation):
//!
//! ```text
//! prod_i e(r_i A_i, B_i)
//!   * prod_k [ e(sum_{i in k} r_i * alpha_k, -beta_k)
//!            * e(sum_{i in k} r_i * L_i,    -gamma_k)
//!            * e(sum_{i in k} r_i * C_i,    -delta_k) ] == 1
//! ```
//!
//! where `k` runs over the distinct verifying keys (grouped by
//! [`PreparedKey::digest`]): a key's fixed pairings are paid once however many
//! of its proofs the batch holds, and `sum r_i L_i` is one multi-scalar
//! multiplication over the key's `gamma_abc` (scalars summed in the field).
//!
//! The scalars come from a [`Transcript`] (domain [`BATCH_DOMAIN`]) that
//! absorbs the count, then for every proof in order its key's digest, `A`, `B`,
//! `C` and its public inputs; so every validator draws the same scalars, and a
//! prover cannot choose proofs after seeing them. If any proof is invalid the
//! product differs from 1 except with probability about `2^-128`.
//!
//! When the batch fails, bisection finds the bad proofs: each half is checked
//! as a batch of its own (with its own transcript), a passing half is cleared,
//! a failing one is split again, and a single proof is checked on its own
//! ([`PreparedKey::verify_inputs`]). `k` bad proofs among `n` cost
//! `O(k log n)` batch checks, and the verdict for every proof is exactly what
//! per-proof verification gives.
//!
//! Decoding happens first and per proof ([`decode_proof`]: length, encoding,
//! curve, subgroup, identity), with the same errors as single verification:
//! a point outside the prime-order subgroup never reaches the pairing check.

use std::collections::BTreeMap;

use ark_bls12_381::g1::Config as G1Config;
use ark_bls12_381::{Bls12_381, Config as Bls12Config, Fq12, Fr, G1Affine, G1Projective};
use ark_ec::bls12::{Bls12Config as Bls12ConfigTrait, G2Prepared as Bls12G2Prepared};
use ark_ec::models::bls12::g2::EllCoeff;
use ark_ec::pairing::{MillerLoopOutput, Pairing};
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::{AdditiveGroup, AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::{BitIteratorBE, CyclotomicMultSubgroup, Field, One, PrimeField, Zero};

/// A G2 point prepared for the Miller loop (its line coefficients).
pub type G2Prepared = Bls12G2Prepared<Bls12Config>;
use ark_groth16::Proof;

use crate::groth16::{decode_proof, PreparedKey, ProofError, SpanStatement};
use crate::transcript::Transcript;

/// Domain separator of the batch-verification transcript.
pub const BATCH_DOMAIN: &[u8] = b"seqnet/groth16-batch/v1";

/// One encoded proof to check in a batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// The prepared verifying key of the proof's rollup.
    pub key: &'a PreparedKey,
    /// The proof as submitted ([`crate::groth16::PROOF_LEN`] bytes).
    pub proof: &'a [u8],
    /// What the proof must prove.
    pub statement: &'a SpanStatement,
}

/// One decoded proof with its public inputs.
#[derive(Clone, Debug)]
pub struct DecodedItem<'a> {
    pub key: &'a PreparedKey,
    pub proof: Proof<Bls12_381>,
    pub inputs: Vec<Fr>,
}

/// A proof of a batch that was rejected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the proof in the batch.
    pub index: usize,
    pub error: ProofError,
}

/// Why a batch was rejected: every bad proof, by index, with its own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of {total} proofs rejected (first: #{}: {})",
    .rejected.len(),
    .rejected.first().map_or(0, |r| r.index),
    .rejected.first().map_or(String::new(), |r| r.error.to_string()))]
pub struct BatchError {
    /// Number of proofs in the batch.
    pub total: usize,
    /// The rejected proofs, in index order (never empty).
    pub rejected: Vec<Rejected>,
}

impl BatchError {
    /// Indices of the rejected proofs.
    pub fn indices(&self) -> Vec<usize> {
        self.rejected.iter().map(|r| r.index).collect()
    }
}

/// Verifies every proof of `items`; `Ok` when all verify, else every bad one.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Result<(), BatchError> {
    into_result(verify_each(items))
}

/// The verdict for each proof of `items`, in order: identical to
/// `item.key.verify(item.proof, item.statement)` for each, at the cost of one
/// batch check when all are valid.
pub fn verify_each(items: &[BatchItem<'_>]) -> Vec<Result<(), ProofError>> {
    let mut verdicts: Vec<Result<(), ProofError>> = Vec::with_capacity(items.len());
    let mut decoded = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        // Same order as `PreparedKey::verify`: public inputs, then the proof.
        let parsed = item
            .statement
            .public_inputs()
            .and_then(|inputs| Ok((inputs, decode_proof(item.proof)?)));
        match parsed {
            Ok((inputs, proof)) => {
                verdicts.push(Ok(()));
                positions.push(i);
                decoded.push(DecodedItem {
                    key: item.key,
                    proof,
                    inputs,
                });
            }
            Err(e) => verdicts.push(Err(e)),
        }
    }
    for (position, verdict) in positions.into_iter().zip(verify_decoded(&decoded)) {
        verdicts[position] = verdict;
    }
    verdicts
}

/// The verdict for each decoded proof, in order, identical to
/// [`PreparedKey::verify_inputs`] for each.
pub fn verify_decoded(items: &[DecodedItem<'_>]) -> Vec<Result<(), ProofError>> {
    let mut verdicts: Vec<Result<(), ProofError>> = Vec::with_capacity(items.len());
    let mut candidates = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match precheck(item) {
            Ok(()) => {
                verdicts.push(Ok(()));
                candidates.push(i);
            }
            Err(e) => verdicts.push(Err(e)),
        }
    }
    if candidates.len() == 1 {
        let i = candidates[0];
        verdicts[i] = items[i]
            .key
            .verify_inputs(&items[i].proof, &items[i].inputs);
    } else if !candidates.is_empty() && !batch_holds_at(items, &candidates) {
        let (left, right) = candidates.split_at(candidates.len() / 2);
        bisect(items, left, &mut verdicts);
        bisect(items, right, &mut verdicts);
    }
    verdicts
}

/// One random-linear-combination check of all `items` (no bisection): `true`
/// when the batch equation holds. Items failing the cheap per-proof checks
/// (identity points, input count) make it `false`.
pub fn batch_holds(items: &[DecodedItem<'_>]) -> bool {
    if items.iter().any(|item| precheck(item).is_err()) {
        return false;
    }
    let all: Vec<usize> = (0..items.len()).collect();
    batch_holds_at(items, &all)
}

fn into_result(verdicts: Vec<Result<(), ProofError>>) -> Result<(), BatchError> {
    let total = verdicts.len();
    let rejected: Vec<Rejected> = verdicts
        .into_iter()
        .enumerate()
        .filter_map(|(index, v)| v.err().map(|error| Rejected { index, error }))
        .collect();
    if rejected.is_empty() {
        Ok(())
    } else {
        Err(BatchError { total, rejected })
    }
}

/// The checks single verification makes before pairing.
fn precheck(item: &DecodedItem<'_>) -> Result<(), ProofError> {
    // Points at infinity are left to the equation, as in single and
    // aggregate verification (see `groth16::decode_proof`).
    let expected = item.key.key().gamma_abc_g1.len().saturating_sub(1);
    if item.inputs.len() != expected {
        return Err(ProofError::InputCount {
            expected,
            got: item.inputs.len(),
        });
    }
    Ok(())
}

fn bisect(items: &[DecodedItem<'_>], at: &[usize], verdicts: &mut [Result<(), ProofError>]) {
    match at {
        [] => {}
        [i] => {
            let item = &items[*i];
            verdicts[*i] = item.key.verify_inputs(&item.proof, &item.inputs);
        }
        _ => {
            if !batch_holds_at(items, at) {
                let (left, right) = at.split_at(at.len() / 2);
                bisect(items, left, verdicts);
                bisect(items, right, verdicts);
            }
        }
    }
}

/// A batch scalar `r = r1 + lambda * r2` with `r1, r2 < 2^64` (`lambda` the
/// eigenvalue of the G1 endomorphism, about `2^128`): `2^128` distinct values,
/// and `r * A = r1 * A + r2 * phi(A)` costs a 64-bit double-scalar
/// multiplication instead of a 128-bit one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchScalar {
    pub r1: u64,
    pub r2: u64,
}

impl BatchScalar {
    /// `r1 + lambda * r2` in the scalar field.
    pub fn value(&self) -> Fr {
        Fr::from(self.r1) + <G1Config as GLVConfig>::LAMBDA * Fr::from(self.r2)
    }

    /// `self.value() * a`.
    pub fn mul(&self, a: &G1Affine) -> G1Projective {
        let phi = <G1Config as GLVConfig>::endomorphism_affine(a);
        let both = (*a + phi).into_affine();
        let mut acc = G1Projective::zero();
        let top = 64 - (self.r1 | self.r2).leading_zeros();
        for bit in (0..top).rev() {
            acc.double_in_place();
            match ((self.r1 >> bit) & 1, (self.r2 >> bit) & 1) {
                (1, 0) => acc += a,
                (0, 1) => acc += phi,
                (1, 1) => acc += both,
                _ => {}
            }
        }
        acc
    }
}

/// The scalars `r_i` for the proofs `items[at[..]]`.
pub fn batch_scalars(items: &[DecodedItem<'_>], at: &[usize]) -> Vec<BatchScalar> {
    let mut t = Transcript::new(BATCH_DOMAIN);
    t.append_u64(b"count", at.len() as u64);
    for &i in at {
        let item = &items[i];
        t.append_bytes(b"vk", item.key.digest());
        t.append_g1(b"A", &item.proof.a);
        t.append_g2(b"B", &item.proof.b);
        t.append_g1(b"C", &item.proof.c);
        t.append_scalars(b"inputs", &item.inputs);
    }
    at.iter()
        .map(|_| {
            let bytes = t.challenge_bytes(b"r");
            let word = |k: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&bytes[8 * k..8 * k + 8]);
                u64::from_be_bytes(w)
            };
            let (r1, r2) = (word(0), word(1));
            BatchScalar {
                r1: if r1 == 0 && r2 == 0 { 1 } else { r1 },
                r2,
            }
        })
        .collect()
}

/// `prod e(p_i, q_i)` before the final exponentiation, with one accumulator
/// for all pairs (the squarings of the Miller loop are shared; arkworks'
/// loop starts a new accumulator every four pairs). Identity points are
/// skipped (their pairing is 1).
pub fn multi_miller_loop(pairs: &[(G1Affine, &G2Prepared)]) -> Fq12 {
    let mut lines: Vec<(G1Affine, std::slice::Iter<'_, EllCoeff<Bls12Config>>)> = pairs
        .iter()
        .filter(|(p, q)| !p.is_zero() && !q.infinity)
        .map(|(p, q)| (*p, q.ell_coeffs.iter()))
        .collect();
    let mut f = Fq12::one();
    let ell = |f: &mut Fq12, p: &G1Affine, c: Option<&EllCoeff<Bls12Config>>| {
        if let Some((c0, c1, c2)) = c {
            // BLS12-381 has an M-type twist.
            let (mut c1, mut c2) = (*c1, *c2);
            c2.mul_assign_by_fp(&p.y);
            c1.mul_assign_by_fp(&p.x);
            f.mul_by_014(c0, &c1, &c2);
        }
    };
    for bit in BitIteratorBE::without_leading_zeros(<Bls12Config as Bls12ConfigTrait>::X).skip(1) {
        f.square_in_place();
        for (p, coeffs) in lines.iter_mut() {
            ell(&mut f, p, coeffs.next());
        }
        if bit {
            for (p, coeffs) in lines.iter_mut() {
                ell(&mut f, p, coeffs.next());
            }
        }
    }
    if <Bls12Config as Bls12ConfigTrait>::X_IS_NEGATIVE {
        f.cyclotomic_inverse_in_place();
    }
    f
}

/// Per-key sums of one batch.
struct KeyGroup<'k> {
    key: &'k PreparedKey,
    /// `sum r_i` (the coefficient of `alpha` and of `gamma_abc[0]`).
    sum_r: Fr,
    /// `sum_i r_i * x_ij` for each public input `j`.
    input_sums: Vec<Fr>,
    c_points: Vec<G1Affine>,
    c_scalars: Vec<<Fr as PrimeField>::BigInt>,
}

/// The batch equation over `items[at[..]]` (all prechecked).
fn batch_holds_at(items: &[DecodedItem<'_>], at: &[usize]) -> bool {
    let scalars = batch_scalars(items, at);
    let mut groups: BTreeMap<[u8; 32], KeyGroup<'_>> = BTreeMap::new();
    let mut g1: Vec<G1Projective> = Vec::with_capacity(at.len() + 8);
    let mut b_prepared: Vec<G2Prepared> = Vec::with_capacity(at.len());
    for (&i, s) in at.iter().zip(&scalars) {
        let item = &items[i];
        let r = s.value();
        let group = groups
            .entry(*item.key.digest())
            .or_insert_with(|| KeyGroup {
                key: item.key,
                sum_r: Fr::zero(),
                input_sums: vec![Fr::zero(); item.inputs.len()],
                c_points: Vec::new(),
                c_scalars: Vec::new(),
            });
        group.sum_r += r;
        for (sum, x) in group.input_sums.iter_mut().zip(&item.inputs) {
            *sum += r * x;
        }
        group.c_points.push(item.proof.c);
        group.c_scalars.push(r.into_bigint());
        g1.push(s.mul(&item.proof.a));
        b_prepared.push(item.proof.b.into());
    }
    let mut fixed: Vec<&G2Prepared> = Vec::with_capacity(3 * groups.len());
    for group in groups.values() {
        let vk = group.key.key();
        let pvk = group.key.prepared();
        // alpha * sum r, against -beta.
        g1.push(vk.alpha_g1 * group.sum_r);
        fixed.push(group.key.beta_g2_neg_prepared());
        // sum r_i L_i = (sum r) gamma_abc[0] + sum_j (sum_i r_i x_ij) gamma_abc[j+1].
        let mut coeffs = Vec::with_capacity(vk.gamma_abc_g1.len());
        coeffs.push(group.sum_r.into_bigint());
        coeffs.extend(group.input_sums.iter().map(|s| s.into_bigint()));
        g1.push(G1Projective::msm_bigint(&vk.gamma_abc_g1, &coeffs));
        fixed.push(&pvk.gamma_g2_neg_pc);
        // sum r_i C_i, against -delta.
        g1.push(G1Projective::msm_bigint(&group.c_points, &group.c_scalars));
        fixed.push(&pvk.delta_g2_neg_pc);
    }
    let g1 = G1Projective::normalize_batch(&g1);
    let pairs: Vec<(G1Affine, &G2Prepared)> =
        g1.into_iter().zip(b_prepared.iter().chain(fixed)).collect();
    let ml = multi_miller_loop(&pairs);
    Bls12_381::final_exponentiation(MillerLoopOutput(ml)).is_some_and(|out| out.0.is_one())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groth16::{root_to_bytes, PROOF_B_AT, PROOF_C_AT, PROOF_LEN};
    use crate::test_circuit::{g1_outside_subgroup, g2_outside_subgroup, ToyKeys};
    use ark_serialize::CanonicalSerialize;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn keys(which: usize) -> &'static ToyKeys {
        static KEYS: OnceLock<[ToyKeys; 2]> = OnceLock::new();
        &KEYS.get_or_init(|| [ToyKeys::new(11), ToyKeys::new(12)])[which]
    }

    /// `n` valid (statement, proof) pairs under key `which`.
    fn valid(which: usize, n: usize) -> Vec<(SpanStatement, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let st = ToyKeys::statement(1 + i as u64, 10 + i as u64);
                let proof = keys(which).prove(&st, 100 + i as u64);
                (st, proof)
            })
            .collect()
    }

    fn items<'a>(key: &'a PreparedKey, set: &'a [(SpanStatement, Vec<u8>)]) -> Vec<BatchItem<'a>> {
        set.iter()
            .map(|(statement, proof)| BatchItem {
                key,
                proof,
                statement,
            })
            .collect()
    }

    fn per_proof(items: &[BatchItem<'_>]) -> Vec<Result<(), ProofError>> {
        items
            .iter()
            .map(|it| it.key.verify(it.proof, it.statement))
            .collect()
    }

    #[test]
    fn valid_sets_are_accepted() {
        let set = valid(0, 8);
        let key = keys(0).prepared();
        for n in [0, 1, 2, 3, 8] {
            let items = items(&key, &set[..n]);
            assert_eq!(verify_batch(&items), Ok(()), "n = {n}");
        }
    }

    #[test]
    fn mixed_keys_are_grouped_and_accepted() {
        let a = valid(0, 4);
        let b = valid(1, 3);
        let (ka, kb) = (keys(0).prepared(), keys(1).prepared());
        let mut all = items(&ka, &a);
        all.extend(items(&kb, &b));
        // Interleave the keys.
        all.swap(1, 5);
        assert_eq!(verify_batch(&all), Ok(()));
        // Two preparations of the same key group together.
        let ka2 = keys(0).prepared();
        let mut twice = items(&ka, &a[..2]);
        twice.extend(items(&ka2, &a[2..]));
        assert_eq!(verify_batch(&twice), Ok(()));
    }

    #[test]
    fn one_bad_proof_is_named() {
        let mut set = valid(0, 8);
        // A valid proof of another statement.
        let other = ToyKeys::statement(77, 78);
        set[5].1 = keys(0).prove(&other, 5);
        let key = keys(0).prepared();
        let items = items(&key, &set);
        let err = verify_batch(&items).unwrap_err();
        assert_eq!(err.indices(), vec![5]);
        assert_eq!(err.rejected[0].error, ProofError::Invalid);
        assert_eq!(err.total, 8);
        assert_eq!(verify_each(&items), per_proof(&items));
    }

    #[test]
    fn swapped_public_input_is_rejected() {
        let mut set = valid(0, 6);
        // Swap the new roots of proofs 2 and 3.
        let (r2, r3) = (set[2].0.new_root, set[3].0.new_root);
        set[2].0.new_root = r3;
        set[3].0.new_root = r2;
        let key = keys(0).prepared();
        let items = items(&key, &set);
        assert_eq!(verify_batch(&items).unwrap_err().indices(), vec![2, 3]);
        // Swapping whole statements between proofs, too.
        let mut set = valid(0, 4);
        let s0 = set[0].0;
        set[0].0 = set[1].0;
        set[1].0 = s0;
        let items2 = super::tests::items(&key, &set);
        assert_eq!(verify_batch(&items2).unwrap_err().indices(), vec![0, 1]);
    }

    #[test]
    fn proof_from_another_key_is_rejected() {
        let mut set = valid(0, 5);
        // Proof 4 is valid, but under key 1.
        set[4].1 = keys(1).prove(&set[4].0, 9);
        let key = keys(0).prepared();
        let items = items(&key, &set);
        assert_eq!(verify_batch(&items).unwrap_err().indices(), vec![4]);
        // And it does verify under its own key, in the same batch.
        let k1 = keys(1).prepared();
        let mut fixed = items.clone();
        fixed[4].key = &k1;
        assert_eq!(verify_batch(&fixed), Ok(()));
    }

    #[test]
    fn points_outside_the_subgroup_fail_at_decoding() {
        let mut set = valid(0, 4);
        let mut enc = Vec::new();
        g1_outside_subgroup()
            .serialize_uncompressed(&mut enc)
            .unwrap();
        set[1].1[..PROOF_B_AT].copy_from_slice(&enc);
        let mut enc2 = Vec::new();
        g2_outside_subgroup()
            .serialize_uncompressed(&mut enc2)
            .unwrap();
        set[3].1[PROOF_B_AT..PROOF_C_AT].copy_from_slice(&enc2);
        let key = keys(0).prepared();
        let items = items(&key, &set);
        let err = verify_batch(&items).unwrap_err();
        assert_eq!(
            err.rejected,
            vec![
                Rejected {
                    index: 1,
                    error: ProofError::NotInSubgroup { point: "proof.A" }
                },
                Rejected {
                    index: 3,
                    error: ProofError::NotInSubgroup { point: "proof.B" }
                },
            ]
        );
    }

    #[test]
    fn decoding_errors_match_single_verification() {
        let mut set = valid(0, 4);
        set[0].1.truncate(PROOF_LEN - 1);
        set[2].0.prev_root = [0xff; 32];
        let key = keys(0).prepared();
        let items = items(&key, &set);
        let verdicts = verify_each(&items);
        assert_eq!(verdicts, per_proof(&items));
        assert_eq!(
            verdicts[0],
            Err(ProofError::ProofLength {
                got: PROOF_LEN - 1,
                want: PROOF_LEN
            })
        );
        assert_eq!(verdicts[2], Err(ProofError::NonCanonicalRoot));
        assert!(verdicts[1].is_ok() && verdicts[3].is_ok());
    }

    #[test]
    fn identity_points_and_input_count_in_decoded_items() {
        let set = valid(0, 3);
        let key = keys(0).prepared();
        let mut decoded: Vec<DecodedItem<'_>> = set
            .iter()
            .map(|(st, p)| DecodedItem {
                key: &key,
                proof: decode_proof(p).unwrap(),
                inputs: st.public_inputs().unwrap(),
            })
            .collect();
        assert!(batch_holds(&decoded));
        decoded[0].proof.c = G1Affine::zero();
        decoded[2].inputs.pop();
        assert!(!batch_holds(&decoded));
        assert_eq!(
            verify_decoded(&decoded),
            vec![
                Err(ProofError::Invalid),
                Ok(()),
                Err(ProofError::InputCount {
                    expected: 6,
                    got: 5
                }),
            ]
        );
    }

    #[test]
    fn scalars_are_deterministic_and_bound_to_inputs() {
        let set = valid(0, 3);
        let key = keys(0).prepared();
        let decoded = |set: &[(SpanStatement, Vec<u8>)]| -> Vec<BatchScalar> {
            let d: Vec<DecodedItem<'_>> = set
                .iter()
                .map(|(st, p)| DecodedItem {
                    key: &key,
                    proof: decode_proof(p).unwrap(),
                    inputs: st.public_inputs().unwrap(),
                })
                .collect();
            batch_scalars(&d, &[0, 1, 2])
        };
        let base = decoded(&set);
        assert_eq!(base, decoded(&set));
        let mut changed = set.clone();
        changed[2].0.new_root = root_to_bytes(Fr::from(5u64));
        assert_ne!(base, decoded(&changed));
    }

    #[test]
    fn endomorphism_scalars_multiply_like_their_value() {
        use ark_ec::PrimeGroup;
        let a = (G1Projective::generator() * Fr::from(12345u64)).into_affine();
        for (r1, r2) in [
            (1u64, 0u64),
            (0, 1),
            (u64::MAX, u64::MAX),
            (7, 1 << 63),
            (0, 0),
        ] {
            let s = BatchScalar { r1, r2 };
            assert_eq!(s.mul(&a), a * s.value(), "{r1} {r2}");
        }
        // Distinct (r1, r2) give distinct values (lambda > 2^64).
        assert_ne!(
            BatchScalar { r1: 1, r2: 0 }.value(),
            BatchScalar { r1: 0, r2: 1 }.value()
        );
    }

    #[test]
    fn single_accumulator_miller_loop_matches_arkworks() {
        use ark_bls12_381::{G2Affine, G2Projective};
        use ark_ec::PrimeGroup;
        let p: Vec<G1Affine> = (1..=6u64)
            .map(|i| (G1Projective::generator() * Fr::from(i * 31)).into_affine())
            .chain([G1Affine::zero()])
            .collect();
        let q: Vec<G2Affine> = (1..=7u64)
            .map(|i| (G2Projective::generator() * Fr::from(i * 17)).into_affine())
            .collect();
        let prepared: Vec<G2Prepared> = q.iter().map(|q| q.into()).collect();
        let pairs: Vec<(G1Affine, &G2Prepared)> = p.iter().copied().zip(&prepared).collect();
        let ours = Bls12_381::final_exponentiation(MillerLoopOutput(multi_miller_loop(&pairs)));
        assert_eq!(ours, Some(Bls12_381::multi_pairing(p, q)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Any set of bad positions is named exactly, and every verdict equals
        /// per-proof verification.
        #[test]
        fn bisection_names_exactly_the_bad_proofs(
            n in 1usize..12,
            bad_mask in any::<u16>(),
            kind in 0u8..3,
        ) {
            let mut set = valid(0, n);
            let mut expected = Vec::new();
            for (i, entry) in set.iter_mut().enumerate() {
                if bad_mask & (1 << i) != 0 {
                    expected.push(i);
                    match kind {
                        0 => entry.0.to_height += 1,
                        1 => entry.1 = keys(1).prove(&entry.0, i as u64),
                        _ => {
                            let other = ToyKeys::statement(500 + i as u64, 1);
                            entry.1 = keys(0).prove(&other, i as u64);
                        }
                    }
                }
            }
            let key = keys(0).prepared();
            let items = items(&key, &set);
            let verdicts = verify_each(&items);
            prop_assert_eq!(&verdicts, &per_proof(&items));
            match verify_batch(&items) {
                Ok(()) => prop_assert!(expected.is_empty()),
                Err(e) => prop_assert_eq!(e.indices(), expected),
            }
        }
    }
}
