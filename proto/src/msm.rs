//! Multi-scalar multiplication for the verifiers' short sums (one to a few
//! dozen points): interleaved signed windows (Straus) over one shared chain
//! of doublings, scalars over 128 bits split by the curve's endomorphism
//! (GLV) so that the chain is 128 doublings long. Pippenger's bucket method
//! (arkworks' `VariableBaseMSM`) pays for its buckets and walks every window
//! of the full scalar width even when the scalars are 128-bit; for the
//! aggregate verifier's sums this is 3–6x cheaper. Larger inputs go to
//! arkworks.

use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::short_weierstrass::SWCurveConfig;
use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ec::{AdditiveGroup, AffineRepr, VariableBaseMSM};
use ark_ff::{BigInteger, Field, One, PrimeField, Zero};

/// Signed-window width: digits are odd and below `2^(WINDOW-1)` in absolute
/// value, so each point needs `2^(WINDOW-2)` precomputed odd multiples.
const WINDOW: usize = 5;
const TABLE: usize = 1 << (WINDOW - 2);
/// Above this many points the bucket method wins.
pub const STRAUS_MAX: usize = 48;

/// `sum scalars[i] * bases[i]` (extra entries of the longer slice are ignored).
///
/// The endomorphism acts as the scalar `LAMBDA` only on the prime-order
/// subgroup: for a base outside it the result differs from the plain sum in
/// the component of order prime to `r` alone, so a check that the sum is the
/// identity still holds only if it holds for the prime-order components.
pub fn msm<P: GLVConfig>(bases: &[Affine<P>], scalars: &[P::ScalarField]) -> Projective<P> {
    let len = bases.len().min(scalars.len());
    if len > STRAUS_MAX {
        return Projective::<P>::msm_unchecked(&bases[..len], &scalars[..len]);
    }
    // Per base: its odd multiples, then (in `tables`) their endomorphism
    // images. Per digit string: where its table starts, and its digits with
    // the part's sign folded in.
    let mut multiples: Vec<Projective<P>> = Vec::with_capacity(len * TABLE);
    let mut digits: Vec<(usize, Vec<i64>)> = Vec::with_capacity(2 * len);
    for (base, scalar) in bases.iter().zip(scalars) {
        if base.is_zero() || scalar.is_zero() {
            continue;
        }
        let parts = if scalar.into_bigint().num_bits() > 128 {
            let ((plus1, k1), (plus2, k2)) = P::scalar_decomposition(*scalar);
            vec![(plus1, k1), (plus2, k2)]
        } else {
            vec![(true, *scalar)]
        };
        let at = 2 * multiples.len();
        for (image, (plus, k)) in parts.into_iter().enumerate() {
            // `find_wnaf` only refuses window widths outside 2..64.
            let mut naf = k.into_bigint().find_wnaf(WINDOW).unwrap_or_default();
            if !plus {
                naf.iter_mut().for_each(|d| *d = -*d);
            }
            digits.push((at + image * TABLE, naf));
        }
        let point = base.into_group();
        let double = point.double();
        let mut odd = point;
        multiples.push(odd);
        for _ in 1..TABLE {
            odd += &double;
            multiples.push(odd);
        }
    }
    // Affine tables: mixed additions in the main loop.
    let tables: Vec<Affine<P>> = normalize(&multiples)
        .chunks(TABLE)
        .flat_map(|table| {
            let images: Vec<Affine<P>> = table.iter().map(P::endomorphism_affine).collect();
            table.iter().copied().chain(images)
        })
        .collect();
    let top = digits.iter().map(|(_, naf)| naf.len()).max().unwrap_or(0);
    let mut acc = Projective::<P>::zero();
    for i in (0..top).rev() {
        acc.double_in_place();
        for (at, naf) in &digits {
            let d = naf.get(i).copied().unwrap_or(0);
            if d > 0 {
                acc += &tables[at + (d as usize) / 2];
            } else if d < 0 {
                acc -= &tables[at + (d.unsigned_abs() as usize) / 2];
            }
        }
    }
    acc
}

/// Affine forms of `points` with one field inversion (Montgomery's trick), on
/// the calling thread: arkworks' `normalize_batch` hands the work to rayon
/// when a binary enables its `parallel` feature, which costs more than it
/// saves for a few dozen points.
pub fn normalize<P: SWCurveConfig>(points: &[Projective<P>]) -> Vec<Affine<P>> {
    // prefix[i]: product of the non-zero z of points[..i].
    let mut prefix = Vec::with_capacity(points.len());
    let mut product = P::BaseField::one();
    for p in points {
        prefix.push(product);
        if !p.z.is_zero() {
            product *= p.z;
        }
    }
    // `product` is a product of non-zero field elements.
    let mut inverse = product.inverse().unwrap_or_default();
    let mut out = vec![Affine::<P>::identity(); points.len()];
    for ((p, before), slot) in points.iter().zip(&prefix).zip(&mut out).rev() {
        if p.z.is_zero() {
            continue;
        }
        let z_inv = inverse * before;
        inverse *= p.z;
        let z_inv2 = z_inv.square();
        *slot = Affine::new_unchecked(p.x * z_inv2, p.y * z_inv2 * z_inv);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bls12_381::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
    use ark_ec::CurveGroup;
    use ark_ff::UniformRand;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn matches_arkworks_for_short_full_zero_and_identity_inputs() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for len in [0usize, 1, 2, 3, 5, 17, STRAUS_MAX, STRAUS_MAX + 1] {
            let mut bases: Vec<G1Affine> = (0..len)
                .map(|_| G1Projective::rand(&mut rng).into())
                .collect();
            let mut scalars: Vec<Fr> = (0..len)
                .map(|i| match i % 4 {
                    0 => Fr::rand(&mut rng),
                    1 => Fr::from(u128::rand(&mut rng)),
                    2 => -Fr::from(u64::rand(&mut rng)),
                    _ => Fr::from(i as u64),
                })
                .collect();
            if len > 2 {
                bases[1] = G1Affine::zero();
                scalars[2] = Fr::zero();
            }
            let want = G1Projective::msm_unchecked(&bases, &scalars);
            assert_eq!(msm(&bases, &scalars), want, "G1, {len} points");
        }
        let bases: Vec<G2Affine> = (0..4)
            .map(|_| G2Projective::rand(&mut rng).into())
            .collect();
        let scalars: Vec<Fr> = (0..4).map(|_| Fr::rand(&mut rng)).collect();
        assert_eq!(
            msm(&bases, &scalars),
            G2Projective::msm_unchecked(&bases, &scalars)
        );
    }

    #[test]
    fn normalize_matches_arkworks() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let mut points: Vec<G1Projective> = (0..6).map(|_| G1Projective::rand(&mut rng)).collect();
        points[2] = G1Projective::zero();
        assert_eq!(normalize(&points), G1Projective::normalize_batch(&points));
        assert!(normalize::<ark_bls12_381::g1::Config>(&[]).is_empty());
    }
}
