//! The SnarkPack aggregation prover: folds `N` Groth16 proofs under one
//! verifying key into one aggregate of `O(log N)` size that
//! [`seqnet_proto::aggregate::verify_aggregate`] checks in `O(log N)` time.
//!
//! The argument, the padding rule, the encoding and the transcript are defined
//! in `seqnet_proto::aggregate` (shared with the verifier); this module only
//! computes. Every multi-scalar multiplication (the aggregated `A` and `C`,
//! the MIPP cross terms, the four KZG openings) goes through an
//! [`MsmBackend`], so the CUDA back end serves the aggregator as it serves the
//! Groth16 prover; pairing products and the per-element folding run on all
//! CPU cores (rayon).
//!
//! Cost for `n` (padded) proofs: about `18 n` Miller-loop pairs and
//! `6 log2 n + 6` final exponentiations; `~6 n` G1 (`D = A + s C`, rescaling
//! and folding) and `~4 n` G2 scalar multiplications; MSMs for `Z_A`, `Z_C`
//! and the MIPP cross terms (`3 n` G1 points in all) and the KZG openings
//! (two of `2 n` G1 points, two of `n` G2 points).

use ark_bls12_381::{Bls12_381, Fq12, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::{MillerLoopOutput, Pairing};
use ark_ec::CurveGroup;
use ark_ff::{Field, One, Zero};
use ark_groth16::Proof;
use rayon::prelude::*;
use seqnet_proto::aggregate::{
    padded_size, AggregateProof, AggregateTranscript, GipaRound, MAX_AGGREGATE,
};
use seqnet_proto::batch_verify::{multi_miller_loop, G2Prepared};
use seqnet_proto::groth16::{PreparedKey, ProofError, SpanStatement};

use crate::msm::{to_reprs, MsmBackend, MsmError};
use crate::srs::Srs;

/// Why proofs could not be aggregated.
#[derive(Debug, thiserror::Error)]
pub enum AggregateProveError {
    /// No proofs, or more than the SRS supports.
    #[error("cannot aggregate {got} proofs: 1..={max} (padded to a power of two)")]
    Count { got: usize, max: usize },
    /// Proofs and public-input lists differ in number.
    #[error("{proofs} proofs but {inputs} public-input lists")]
    Mismatch { proofs: usize, inputs: usize },
    /// A statement's public inputs are invalid.
    #[error("statement {index}: {source}")]
    Statement {
        index: usize,
        #[source]
        source: ProofError,
    },
    /// A public-input list has the wrong length for the key.
    #[error("proof {index} has {got} public inputs, the key takes {expected}")]
    InputCount {
        index: usize,
        expected: usize,
        got: usize,
    },
    /// The MSM back end failed.
    #[error(transparent)]
    Msm(#[from] MsmError),
    /// A pairing product was degenerate (never for valid points).
    #[error("degenerate pairing product")]
    Pairing,
}

/// `prod e(g1[i], g2[i])` (Miller loops in parallel chunks, one final
/// exponentiation).
pub fn pairing_product(g1: &[G1Affine], g2: &[G2Affine]) -> Result<Fq12, AggregateProveError> {
    let prepared = prepare(g2);
    let refs: Vec<&G2Prepared> = prepared.iter().collect();
    pairing_product_prepared(g1, &refs)
}

/// G2 points prepared for Miller loops, in parallel.
pub fn prepare(g2: &[G2Affine]) -> Vec<G2Prepared> {
    g2.par_iter().map(G2Prepared::from).collect()
}

/// `prod e(g1[i], g2[i])` over prepared G2 points.
pub fn pairing_product_prepared(
    g1: &[G1Affine],
    g2: &[&G2Prepared],
) -> Result<Fq12, AggregateProveError> {
    let threads = rayon::current_num_threads().max(1);
    let chunk = g1.len().div_ceil(threads).max(1);
    let ml = g1
        .par_chunks(chunk)
        .zip(g2.par_chunks(chunk))
        .map(|(a, b)| {
            let pairs: Vec<(G1Affine, &G2Prepared)> =
                a.iter().copied().zip(b.iter().copied()).collect();
            multi_miller_loop(&pairs)
        })
        .reduce(Fq12::one, |x, y| x * y);
    Bls12_381::final_exponentiation(MillerLoopOutput(ml))
        .map(|out| out.0)
        .ok_or(AggregateProveError::Pairing)
}

/// `prod e(a1, b1) * prod e(a2, b2)` over prepared G2 points.
fn pp2(
    a1: &[G1Affine],
    b1: &[G2Prepared],
    a2: &[G1Affine],
    b2: &[G2Prepared],
) -> Result<Fq12, AggregateProveError> {
    let g1: Vec<G1Affine> = a1.iter().chain(a2).copied().collect();
    let g2: Vec<&G2Prepared> = b1.iter().chain(b2).collect();
    pairing_product_prepared(&g1, &g2)
}

fn pp(a: &[G1Affine], b: &[G2Prepared]) -> Result<Fq12, AggregateProveError> {
    let g2: Vec<&G2Prepared> = b.iter().collect();
    pairing_product_prepared(a, &g2)
}

/// `L + s R` for the halves of `v`, G1.
fn fold_g1(v: &[G1Affine], s: &Fr) -> Vec<G1Affine> {
    let (l, r) = v.split_at(v.len() / 2);
    let out: Vec<G1Projective> = l.par_iter().zip(r).map(|(a, b)| *b * s + a).collect();
    G1Projective::normalize_batch(&out)
}

/// `L + s R` for the halves of `v`, G2.
fn fold_g2(v: &[G2Affine], s: &Fr) -> Vec<G2Affine> {
    let (l, r) = v.split_at(v.len() / 2);
    let out: Vec<G2Projective> = l.par_iter().zip(r).map(|(a, b)| *b * s + a).collect();
    G2Projective::normalize_batch(&out)
}

fn fold_fr(v: &[Fr], s: &Fr) -> Vec<Fr> {
    let (l, r) = v.split_at(v.len() / 2);
    l.iter().zip(r).map(|(a, b)| *a + *b * s).collect()
}

/// Coefficients (low degree first) of `prod_j (1 + c_j X^(2^(k-1-j)))`,
/// `k = c.len()`: `2^k` of them.
pub fn product_coefficients(c: &[Fr]) -> Vec<Fr> {
    let mut coeffs = vec![Fr::one()];
    for cj in c.iter().rev() {
        let upper: Vec<Fr> = coeffs.iter().map(|v| *v * cj).collect();
        coeffs.extend(upper);
    }
    coeffs
}

/// `(f(X) - f(z)) / (X - z)` for `f` given low degree first.
pub fn kzg_quotient(f: &[Fr], z: &Fr) -> Vec<Fr> {
    if f.len() < 2 {
        return Vec::new();
    }
    let mut q = vec![Fr::zero(); f.len() - 1];
    let mut acc = Fr::zero();
    for i in (1..f.len()).rev() {
        acc = f[i] + acc * z;
        q[i - 1] = acc;
    }
    q
}

/// Aggregates the proofs of `statements` (same order), all under `key`.
pub fn aggregate_statements(
    srs: &Srs,
    key: &PreparedKey,
    proofs: &[Proof<Bls12_381>],
    statements: &[SpanStatement],
    msm: &dyn MsmBackend,
) -> Result<AggregateProof, AggregateProveError> {
    let inputs = statements
        .iter()
        .enumerate()
        .map(|(index, s)| {
            s.public_inputs()
                .map_err(|source| AggregateProveError::Statement { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    aggregate(srs, key, proofs, &inputs, msm)
}

/// Aggregates `proofs` with public inputs `inputs` (one list per proof), all
/// under `key`. The proofs are not verified here: an aggregate of an invalid
/// proof does not verify.
pub fn aggregate(
    srs: &Srs,
    key: &PreparedKey,
    proofs: &[Proof<Bls12_381>],
    inputs: &[Vec<Fr>],
    msm: &dyn MsmBackend,
) -> Result<AggregateProof, AggregateProveError> {
    let count = proofs.len();
    if count != inputs.len() {
        return Err(AggregateProveError::Mismatch {
            proofs: count,
            inputs: inputs.len(),
        });
    }
    let n = padded_size(count);
    let max = srs.max_proofs.min(MAX_AGGREGATE);
    if count == 0 || n > max {
        return Err(AggregateProveError::Count { got: count, max });
    }
    let expected = key.key().gamma_abc_g1.len().saturating_sub(1);
    if let Some((index, x)) = inputs.iter().enumerate().find(|(_, x)| x.len() != expected) {
        return Err(AggregateProveError::InputCount {
            index,
            expected,
            got: x.len(),
        });
    }
    let pad = |i: usize| &proofs[i.min(count - 1)];
    let a: Vec<G1Affine> = (0..n).map(|i| pad(i).a).collect();
    let b: Vec<G2Affine> = (0..n).map(|i| pad(i).b).collect();
    let c: Vec<G1Affine> = (0..n).map(|i| pad(i).c).collect();
    let mut v1: Vec<G2Affine> = srs.h_alpha[..n].to_vec();
    let mut v2: Vec<G2Affine> = srs.h_beta[..n].to_vec();
    let w1: &[G1Affine] = &srs.g_alpha[n..2 * n];
    let w2: &[G1Affine] = &srs.g_beta[n..2 * n];

    // Commitments (each G2 vector prepared once).
    let (v1_p, v2_p, b_p) = (prepare(&v1), prepare(&v2), prepare(&b));
    let com_ab = (pp2(&a, &v1_p, w1, &b_p)?, pp2(&a, &v2_p, w2, &b_p)?);
    let com_c = (pp(&c, &v1_p)?, pp(&c, &v2_p)?);
    drop(b_p);
    let verifier = srs.verifier();
    let mut t = AggregateTranscript::new(&verifier, key, inputs);
    let r = t.commitments(&com_ab, &com_c);

    // Rescale: B_i r^i, w_i r^-i.
    let mut r_vec = Vec::with_capacity(n);
    let mut p = Fr::one();
    for _ in 0..n {
        r_vec.push(p);
        p *= r;
    }
    let mut r_inv_vec = r_vec.clone();
    ark_ff::batch_inversion(&mut r_inv_vec);
    let scale_g2 = |v: &[G2Affine], s: &[Fr]| {
        let out: Vec<G2Projective> = v.par_iter().zip(s).map(|(p, s)| *p * s).collect();
        G2Projective::normalize_batch(&out)
    };
    let scale_g1 = |v: &[G1Affine], s: &[Fr]| {
        let out: Vec<G1Projective> = v.par_iter().zip(s).map(|(p, s)| *p * s).collect();
        G1Projective::normalize_batch(&out)
    };
    let mut b = scale_g2(&b, &r_vec);
    let mut w1 = scale_g1(w1, &r_inv_vec);
    let mut w2 = scale_g1(w2, &r_inv_vec);

    let z_ab = pairing_product(&a, &b)?;
    let z_cb = pairing_product(&c, &b)?;
    let r_reprs = to_reprs(&r_vec);
    let z_a = msm.msm_g1(&a, &r_reprs)?.into_affine();
    let z_c = msm.msm_g1(&c, &r_reprs)?.into_affine();
    let s = t.aggregated(&z_ab, &z_cb, &z_a, &z_c);
    // One GIPA over D = A + s C (docs: "One GIPA for A and C").
    let d: Vec<G1Projective> = a.par_iter().zip(&c).map(|(a, c)| *c * s + a).collect();
    let mut d = G1Projective::normalize_batch(&d);

    // GIPA: log2 n rounds.
    let mut rv = r_vec;
    let mut rounds = Vec::new();
    let mut challenges = Vec::new();
    while d.len() > 1 {
        let m = d.len() / 2;
        let (d_l, d_r) = d.split_at(m);
        let (w1_l, w1_r) = w1.split_at(m);
        let (w2_l, w2_r) = w2.split_at(m);
        let (rv_l, rv_r) = rv.split_at(m);
        // Prepared once per round: each half serves two or three products.
        let (b_p, v1_p, v2_p) = (prepare(&b), prepare(&v1), prepare(&v2));
        let (b_l, b_r) = b_p.split_at(m);
        let (v1_l, v1_r) = v1_p.split_at(m);
        let (v2_l, v2_r) = v2_p.split_at(m);
        let round = GipaRound {
            t_l: pp2(d_r, v1_l, w1_r, b_l)?,
            u_l: pp2(d_r, v2_l, w2_r, b_l)?,
            t_r: pp2(d_l, v1_r, w1_l, b_r)?,
            u_r: pp2(d_l, v2_r, w2_l, b_r)?,
            z_l: pp(d_r, b_l)?,
            z_r: pp(d_l, b_r)?,
            zd_l: msm.msm_g1(d_r, &to_reprs(rv_l))?.into_affine(),
            zd_r: msm.msm_g1(d_l, &to_reprs(rv_r))?.into_affine(),
        };
        drop((b_p, v1_p, v2_p));
        let x = t.round(&round);
        let x_inv = x.inverse().ok_or(AggregateProveError::Pairing)?;
        d = fold_g1(&d, &x);
        w1 = fold_g1(&w1, &x);
        w2 = fold_g1(&w2, &x);
        b = fold_g2(&b, &x_inv);
        v1 = fold_g2(&v1, &x_inv);
        v2 = fold_g2(&v2, &x_inv);
        rv = fold_fr(&rv, &x_inv);
        rounds.push(round);
        challenges.push(x);
    }
    let final_v = (v1[0], v2[0]);
    let final_w = (w1[0], w2[0]);
    let z = t.finals(&d[0], &b[0], &final_v, &final_w);

    // KZG openings of the final keys at z.
    let mut x_inv = challenges.clone();
    ark_ff::batch_inversion(&mut x_inv);
    let f_v = product_coefficients(&x_inv);
    let q_v = to_reprs(&kzg_quotient(&f_v, &z));
    let open_v = (
        msm.msm_g2(&srs.h_alpha[..q_v.len()], &q_v)?.into_affine(),
        msm.msm_g2(&srs.h_beta[..q_v.len()], &q_v)?.into_affine(),
    );
    let r_inv = r_inv_vec.get(1).copied().unwrap_or_else(Fr::one);
    let k = challenges.len();
    let shifted: Vec<Fr> = challenges
        .iter()
        .enumerate()
        .map(|(j, x)| *x * r_inv.pow([1u64 << (k - 1 - j)]))
        .collect();
    let mut f_w = vec![Fr::zero(); n];
    f_w.extend(product_coefficients(&shifted));
    let q_w = to_reprs(&kzg_quotient(&f_w, &z));
    let open_w = (
        msm.msm_g1(&srs.g_alpha[..q_w.len()], &q_w)?.into_affine(),
        msm.msm_g1(&srs.g_beta[..q_w.len()], &q_w)?.into_affine(),
    );

    Ok(AggregateProof {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        com_ab,
        com_c,
        z_ab,
        z_cb,
        z_a,
        z_c,
        rounds,
        final_d: d[0],
        final_b: b[0],
        final_v,
        final_w,
        open_v,
        open_w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqnet_proto::aggregate::{eval_product, eval_w};

    fn fr(v: u64) -> Fr {
        Fr::from(v)
    }

    #[test]
    fn product_coefficients_match_product_form() {
        let c = [fr(3), fr(5), fr(7)];
        let coeffs = product_coefficients(&c);
        assert_eq!(coeffs.len(), 8);
        for z in [fr(2), fr(11)] {
            let horner = coeffs.iter().rev().fold(Fr::zero(), |acc, k| acc * z + k);
            assert_eq!(horner, eval_product(&c, &z));
        }
    }

    #[test]
    fn folding_a_power_vector_gives_the_product_form() {
        // (z^i) folded by L + c_j R equals eval_product(c, z).
        let z = fr(9);
        let c = [fr(2), fr(3), fr(4)];
        let mut v: Vec<Fr> = (0..8u64).map(|i| z.pow([i])).collect();
        for cj in &c {
            v = fold_fr(&v, cj);
        }
        assert_eq!(v, vec![eval_product(&c, &z)]);
        // The w polynomial: z^n (z/r)^i folded by L + x R.
        let r = fr(13);
        let r_inv = r.inverse().expect("nonzero");
        let n = 8usize;
        let mut w: Vec<Fr> = (0..n as u64)
            .map(|i| z.pow([n as u64]) * (z * r_inv).pow([i]))
            .collect();
        for cj in &c {
            w = fold_fr(&w, cj);
        }
        assert_eq!(w, vec![eval_w(&c, &z, &r_inv, n)]);
    }

    #[test]
    fn quotient_divides() {
        let f = [fr(4), fr(0), fr(3), fr(1)];
        let z = fr(6);
        let q = kzg_quotient(&f, &z);
        let eval = |p: &[Fr], x: Fr| p.iter().rev().fold(Fr::zero(), |acc, k| acc * x + k);
        for x in [fr(2), fr(17)] {
            assert_eq!(eval(&f, x) - eval(&f, z), eval(&q, x) * (x - z));
        }
    }
}
