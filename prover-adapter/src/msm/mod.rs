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

pub mod cuda;

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

/// Which MSM back end to use (`--msm`, config key `msm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MsmChoice {
    /// The GPU when the CUDA driver and NVRTC load and a device answers, else the CPU.
    #[default]
    Auto,
    /// All CPU cores (arkworks).
    Cpu,
    /// The GPU; an error if there is none.
    Cuda,
}

impl std::str::FromStr for MsmChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(MsmChoice::Auto),
            "cpu" => Ok(MsmChoice::Cpu),
            "cuda" => Ok(MsmChoice::Cuda),
            other => Err(format!(
                "unknown MSM back end {other:?}: want auto, cpu or cuda"
            )),
        }
    }
}

/// MSMs smaller than this stay on the CPU even with a GPU: launch and copy
/// overhead outweigh the work.
pub const GPU_MIN_SIZE: usize = 1 << 12;

/// Builds the back end for `choice`; `auto` logs which one it chose and why.
pub fn select(choice: MsmChoice) -> Result<std::sync::Arc<dyn MsmBackend>, cuda::CudaUnavailable> {
    use std::sync::Arc;
    match choice {
        MsmChoice::Cpu => {
            tracing::info!(backend = "cpu", reason = "selected", "MSM back end");
            Ok(Arc::new(CpuMsm))
        }
        MsmChoice::Cuda => {
            let gpu = cuda::CudaMsm::new(GPU_MIN_SIZE)?;
            tracing::info!(
                backend = "cuda",
                device = gpu.device(),
                reason = "selected",
                "MSM back end"
            );
            Ok(Arc::new(WithCpuFallback::new(gpu)))
        }
        MsmChoice::Auto => match cuda::CudaMsm::new(GPU_MIN_SIZE) {
            Ok(gpu) => {
                tracing::info!(
                    backend = "cuda",
                    device = gpu.device(),
                    reason = "a GPU answered",
                    "MSM back end"
                );
                Ok(Arc::new(WithCpuFallback::new(gpu)))
            }
            Err(why) => {
                tracing::info!(backend = "cpu", reason = %why, "MSM back end");
                Ok(Arc::new(CpuMsm))
            }
        },
    }
}

/// A GPU back end whose errors fall back to the CPU for that call, counted in
/// [`WithCpuFallback::fallbacks`]: a device failure costs time, never a result.
pub struct WithCpuFallback<B> {
    gpu: B,
    fallbacks: std::sync::atomic::AtomicU64,
}

impl<B: MsmBackend> WithCpuFallback<B> {
    pub fn new(gpu: B) -> Self {
        WithCpuFallback {
            gpu,
            fallbacks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Calls that failed on the GPU and were computed on the CPU instead.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fall_back(&self, err: &MsmError) {
        self.fallbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        GPU_FALLBACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(backend = self.gpu.name(), error = %err, "MSM failed on the GPU; computed on the CPU");
    }
}

/// Process-wide count of GPU MSM calls that fell back to the CPU (for metrics).
pub static GPU_FALLBACKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl<B: MsmBackend> MsmBackend for WithCpuFallback<B> {
    fn name(&self) -> &'static str {
        self.gpu.name()
    }

    fn msm_g1(&self, bases: &[G1Affine], scalars: &[ScalarRepr]) -> Result<G1Projective, MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        self.gpu.msm_g1(bases, scalars).or_else(|e| {
            self.fall_back(&e);
            CpuMsm.msm_g1(bases, scalars)
        })
    }

    fn msm_g2(&self, bases: &[G2Affine], scalars: &[ScalarRepr]) -> Result<G2Projective, MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        self.gpu.msm_g2(bases, scalars).or_else(|e| {
            self.fall_back(&e);
            CpuMsm.msm_g2(bases, scalars)
        })
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

    /// A back end that always fails, standing in for a GPU error.
    struct Broken;
    impl MsmBackend for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn msm_g1(&self, _: &[G1Affine], _: &[ScalarRepr]) -> Result<G1Projective, MsmError> {
            Err(MsmError::Device {
                backend: "broken",
                reason: "test".into(),
            })
        }
        fn msm_g2(&self, _: &[G2Affine], _: &[ScalarRepr]) -> Result<G2Projective, MsmError> {
            Err(MsmError::Device {
                backend: "broken",
                reason: "test".into(),
            })
        }
    }

    #[test]
    fn device_errors_fall_back_to_the_cpu_and_are_counted() {
        let backend = WithCpuFallback::new(Broken);
        let g = G1Projective::generator().into_affine();
        let got = backend.msm_g1(&[g, g], &to_reprs(&[Fr::from(2u64), Fr::from(3u64)]));
        assert_eq!(
            got.expect("fallback answers"),
            G1Projective::generator() * Fr::from(5u64)
        );
        let g2 = G2Projective::generator().into_affine();
        let _ = backend
            .msm_g2(&[g2], &to_reprs(&[Fr::from(1u64)]))
            .expect("fallback answers");
        assert_eq!(backend.fallbacks(), 2);
    }

    #[test]
    fn choice_parses_and_auto_never_fails() {
        assert_eq!("cuda".parse::<MsmChoice>(), Ok(MsmChoice::Cuda));
        assert!("gpu".parse::<MsmChoice>().is_err());
        // Without a GPU auto picks the CPU; with one, the GPU. Either way it works.
        let backend = select(MsmChoice::Auto).expect("auto always yields a back end");
        let g = G1Projective::generator().into_affine();
        let got = backend
            .msm_g1(&[g], &to_reprs(&[Fr::from(7u64)]))
            .expect("msm");
        assert_eq!(got, G1Projective::generator() * Fr::from(7u64));
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
