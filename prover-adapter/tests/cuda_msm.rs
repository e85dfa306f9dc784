//! The CUDA MSM against the CPU on a real GPU: random inputs at several sizes,
//! adversarial scalars and points, and a Groth16 proof made with GPU MSMs.
//! Every test skips itself, saying so, where no GPU answers.

use ark_bls12_381::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use ark_ff::{PrimeField, UniformRand};
use rand::SeedableRng;
use seqnet_prover::msm::cuda::CudaMsm;
use seqnet_prover::msm::{to_reprs, CpuMsm, MsmBackend, ScalarRepr};

fn gpu() -> Option<CudaMsm> {
    // min_size 0: even tiny MSMs run on the GPU here.
    match CudaMsm::new(0) {
        Ok(gpu) => {
            eprintln!("CUDA MSM on {}", gpu.device());
            Some(gpu)
        }
        Err(why) => {
            eprintln!("SKIP: no usable GPU ({why}); CUDA MSM tests not run");
            None
        }
    }
}

/// `n` distinct-ish points cheaply: multiples of a few random points.
fn g1_points(n: usize, seed: u64) -> Vec<G1Affine> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let base: Vec<G1Projective> = (0..64).map(|_| G1Projective::rand(&mut rng)).collect();
    let mut acc = G1Projective::rand(&mut rng);
    let points: Vec<G1Projective> = (0..n)
        .map(|i| {
            acc += base[i % base.len()];
            acc
        })
        .collect();
    G1Projective::normalize_batch(&points)
}

fn g2_points(n: usize, seed: u64) -> Vec<G2Affine> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let base: Vec<G2Projective> = (0..64).map(|_| G2Projective::rand(&mut rng)).collect();
    let mut acc = G2Projective::rand(&mut rng);
    let points: Vec<G2Projective> = (0..n)
        .map(|i| {
            acc += base[i % base.len()];
            acc
        })
        .collect();
    G2Projective::normalize_batch(&points)
}

fn random_scalars(n: usize, seed: u64) -> Vec<ScalarRepr> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    to_reprs(&(0..n).map(|_| Fr::rand(&mut rng)).collect::<Vec<_>>())
}

#[test]
fn g1_random_sizes_match_cpu() {
    let Some(gpu) = gpu() else { return };
    for (log, seed) in [(1u32, 1u64), (6, 2), (10, 3), (13, 4), (16, 5), (18, 6)] {
        let n = 1usize << log;
        let points = g1_points(n, seed);
        let scalars = random_scalars(n, seed + 100);
        let want = CpuMsm.msm_g1(&points, &scalars).expect("cpu");
        let got = gpu.msm_g1(&points, &scalars).expect("gpu");
        assert_eq!(got.into_affine(), want.into_affine(), "G1 n = 2^{log}");
    }
    // Not a power of two.
    let points = g1_points(3001, 7);
    let scalars = random_scalars(3001, 8);
    assert_eq!(
        gpu.msm_g1(&points, &scalars).expect("gpu"),
        CpuMsm.msm_g1(&points, &scalars).expect("cpu")
    );
}

#[test]
fn g2_random_sizes_match_cpu() {
    let Some(gpu) = gpu() else { return };
    for (log, seed) in [(1u32, 11u64), (8, 12), (12, 13), (15, 14)] {
        let n = 1usize << log;
        let points = g2_points(n, seed);
        let scalars = random_scalars(n, seed + 100);
        let want = CpuMsm.msm_g2(&points, &scalars).expect("cpu");
        let got = gpu.msm_g2(&points, &scalars).expect("gpu");
        assert_eq!(got.into_affine(), want.into_affine(), "G2 n = 2^{log}");
    }
}

#[test]
fn adversarial_inputs_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let n = 1 << 13;
    let mut points = g1_points(n, 21);
    let minus_one = (-Fr::from(1u64)).into_bigint();
    let zero = Fr::from(0u64).into_bigint();
    let one = Fr::from(1u64).into_bigint();
    let cases: Vec<(&str, Vec<ScalarRepr>)> = vec![
        ("all zero", vec![zero; n]),
        ("all one", vec![one; n]),
        ("all r - 1", vec![minus_one; n]),
        (
            "all equal",
            vec![Fr::from(0xdead_beef_u64).into_bigint(); n],
        ),
        (
            "mixed 0 / 1 / r - 1",
            (0..n)
                .map(|i| [zero, one, minus_one][i % 3])
                .collect::<Vec<_>>(),
        ),
    ];
    for (name, scalars) in &cases {
        let want = CpuMsm.msm_g1(&points, scalars).expect("cpu");
        assert_eq!(gpu.msm_g1(&points, scalars).expect("gpu"), want, "{name}");
    }
    // Repeated points, the point at infinity, and P with -P.
    for i in 0..256 {
        points[i] = points[0];
    }
    points[300] = G1Affine::identity();
    points[301] = (-points[302].into_group()).into_affine();
    let scalars = random_scalars(n, 22);
    let mut same = scalars.clone();
    same[301] = same[302];
    for (name, s) in [("repeated + infinity", &scalars), ("P and -P", &same)] {
        let want = CpuMsm.msm_g1(&points, s).expect("cpu");
        assert_eq!(gpu.msm_g1(&points, s).expect("gpu"), want, "{name}");
    }
    // G2 with the same adversarial shapes.
    let mut points2 = g2_points(1 << 11, 23);
    points2[5] = G2Affine::identity();
    for i in 10..40 {
        points2[i] = points2[9];
    }
    let m = points2.len();
    for scalars in [
        vec![minus_one; m],
        (0..m).map(|i| [zero, one, minus_one][i % 3]).collect(),
        random_scalars(m, 24),
    ] {
        let want = CpuMsm.msm_g2(&points2, &scalars).expect("cpu");
        assert_eq!(gpu.msm_g2(&points2, &scalars).expect("gpu"), want);
    }
    // The group generator's multiples stay exact at the top of the range.
    let g = G1Projective::generator().into_affine();
    let want = CpuMsm.msm_g1(&[g, g], &[minus_one, one]).expect("cpu");
    assert_eq!(gpu.msm_g1(&[g, g], &[minus_one, one]).expect("gpu"), want);
}

#[test]
fn groth16_proof_on_gpu_is_identical() {
    let Some(gpu) = gpu() else { return };
    let k = 14;
    let (pk, vk) = seqnet_prover::setup(k, 5).expect("setup");
    let inputs = seqnet_prover::ReferenceInputs::for_job(3, 10, 12, [4u8; 32], Fr::from(99u64));
    let (r, s) = (Fr::from(123u64), Fr::from(456u64));
    let cpu = seqnet_prover::groth16_prover::create_proof(
        seqnet_prover::ReferenceCircuit::new(k, inputs),
        &pk,
        r,
        s,
        &CpuMsm,
    )
    .expect("cpu proof");
    let on_gpu = seqnet_prover::groth16_prover::create_proof(
        seqnet_prover::ReferenceCircuit::new(k, inputs),
        &pk,
        r,
        s,
        &gpu,
    )
    .expect("gpu proof");
    assert_eq!(cpu, on_gpu);
    let pvk = ark_groth16::prepare_verifying_key(&vk);
    let public = [
        Fr::from(3u64),
        Fr::from(10u64),
        seqnet_proto::groth16::commitment_halves(&[4u8; 32])[0],
        seqnet_proto::groth16::commitment_halves(&[4u8; 32])[1],
        Fr::from(99u64),
        inputs.new_root,
    ];
    assert!(
        ark_groth16::Groth16::<ark_bls12_381::Bls12_381>::verify_proof(&pvk, &on_gpu, &public)
            .expect("verify")
    );
}
