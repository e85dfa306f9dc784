//! Multi-scalar multiplication (MSM) back ends for BLS12-381 G1 and G2.
//!
//! Every MSM of the prover and the aggregator goes through [`MsmBackend`], so a
//! back end (all CPU cores through arkworks, or a CUDA GPU) is chosen once at
//! start-up and nothing else changes. Scalars are passed in canonical form
//! ([`ScalarRepr`], little-endian 64-bit limbs, not Montgomery), the form both
//! arkworks' `msm_bigint` and a GPU's window decomposition need.

use ark_bls12_381::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::VariableBaseMSM;
use ark_ff::PrimeField;

/// Canonical (non-Montgomery) scalar: four little-endian `u64` limbs.
pub type ScalarRepr = <Fr as PrimeField>::BigInt;

/// Why an MSM could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum MsmError {
    /// Bases and scalars differ in length.
    #[error("msm: {bases} bases but {scalars} scalars")]
    LengthMismatch { bases: usize, scalars: usize },
    /// The back end's device failed (driver, memory, kernel launch).
    #[error("msm back end {backend}: {reason}")]
    Device {
        backend: &'static str,
        reason: String,
    },
}

/// A multi-scalar multiplication engine: `sum_i scalars[i] * bases[i]`.
pub trait MsmBackend: Send + Sync {
    /// Short name for logs and metrics (`cpu`, `cuda`).
    fn name(&self) -> &'static str;

    /// MSM over G1.
    fn msm_g1(&self, bases: &[G1Affine], scalars: &[ScalarRepr]) -> Result<G1Projective, MsmError>;

    /// MSM over G2.
    fn msm_g2(&self, bases: &[G2Affine], scalars: &[ScalarRepr]) -> Result<G2Projective, MsmError>;
}

pub(crate) fn check_lengths(bases: usize, scalars: usize) -> Result<(), MsmError> {
    if bases == scalars {
        Ok(())
    } else {
        Err(MsmError::LengthMismatch { bases, scalars })
    }
}

/// arkworks' Pippenger over all CPU cores (rayon).
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuMsm;

impl MsmBackend for CpuMsm {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn msm_g1(&self, bases: &[G1Affine], scalars: &[ScalarRepr]) -> Result<G1Projective, MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        Ok(G1Projective::msm_bigint(bases, scalars))
    }

    fn msm_g2(&self, bases: &[G2Affine], scalars: &[ScalarRepr]) -> Result<G2Projective, MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        Ok(G2Projective::msm_bigint(bases, scalars))
    }
}

/// Canonical forms of `scalars`, in parallel.
pub fn to_reprs(scalars: &[Fr]) -> Vec<ScalarRepr> {
    use rayon::prelude::*;
    scalars.par_iter().map(|s| s.into_bigint()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::{CurveGroup, PrimeGroup};
    use ark_ff::UniformRand;
    use rand::SeedableRng;

    #[test]
    fn cpu_matches_naive_sum() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let n = 37;
        let bases: Vec<G1Affine> = (0..n)
            .map(|_| G1Projective::rand(&mut rng).into_affine())
            .collect();
        let scalars: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
        let naive: G1Projective = bases.iter().zip(&scalars).map(|(b, s)| *b * s).sum();
        let got = CpuMsm
            .msm_g1(&bases, &to_reprs(&scalars))
            .expect("lengths match");
        assert_eq!(got, naive);

        let g2 = G2Projective::generator();
        let bases2: Vec<G2Affine> = (1..=5u64)
            .map(|i| (g2 * Fr::from(i)).into_affine())
            .collect();
        let scalars2: Vec<Fr> = (0..5).map(|_| Fr::rand(&mut rng)).collect();
        let naive2: G2Projective = bases2.iter().zip(&scalars2).map(|(b, s)| *b * s).sum();
        assert_eq!(
            CpuMsm
                .msm_g2(&bases2, &to_reprs(&scalars2))
                .expect("lengths match"),
            naive2
        );
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let err = CpuMsm
            .msm_g1(&[G1Affine::default()], &[])
            .expect_err("mismatch must fail");
        assert!(matches!(
            err,
            MsmError::LengthMismatch {
                bases: 1,
                scalars: 0
            }
        ));
    }
}
