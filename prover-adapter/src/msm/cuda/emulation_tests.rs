//! The kernels of `msm.cu`, compiled by the host C++ compiler with
//! `emulate.cpp` and run as loops, against arkworks: checks the field and curve
//! arithmetic, digits, counting sort and reductions without a GPU. Skips (and
//! says so) where no C++ compiler is installed.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use ark_bls12_381::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ec::{CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::{PrimeField, UniformRand};
use rand::SeedableRng;

use super::super::{to_reprs, ScalarRepr};
use super::{encode_points, encode_scalars, finish, GpuCurve, Plan, KERNEL_SOURCE};

const HARNESS: &str = include_str!("emulate.cpp");

fn harness() -> Option<&'static PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("seqnet-msm-emu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::write(dir.join("msm.cu"), KERNEL_SOURCE).ok()?;
        std::fs::write(dir.join("emulate.cpp"), HARNESS).ok()?;
        let bin = dir.join("emulate");
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let status = Command::new(&cxx)
            // Chunks of 3 pairs so that small tests have buckets spanning chunks.
            .args(["-O2", "-std=c++14", "-DBUCKET_CHUNK=3", "-o"])
            .arg(&bin)
            .arg(dir.join("emulate.cpp"))
            .status();
        match status {
            Ok(s) if s.success() => Some(bin),
            Ok(s) => panic!("{cxx} failed to compile the MSM kernels: {s}"),
            Err(e) => {
                eprintln!("SKIP: no C++ compiler ({cxx}: {e}); kernel emulation not run");
                None
            }
        }
    })
    .as_ref()
}

fn emulate<C: GpuCurve>(bases: &[Affine<C>], scalars: &[ScalarRepr]) -> Option<Projective<C>> {
    let bin = harness()?;
    let plan = Plan::for_size(bases.len());
    let mut points = vec![0u32; bases.len() * 2 * C::WORDS];
    let mut words = vec![0u32; bases.len() * 8];
    encode_points::<C>(bases, &mut points);
    encode_scalars::<C>(bases, scalars, &mut words);
    let group = if C::WORDS == 12 { 1u32 } else { 2 };
    let n = u32::try_from(bases.len()).expect("test sizes fit u32");
    let header = [group, n, plan.c, plan.windows, plan.segments, plan.group];
    let mut input = Vec::new();
    for w in header.iter().chain(&points).chain(&words) {
        input.extend_from_slice(&w.to_le_bytes());
    }
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run emulation");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("feed emulation");
    let out = child.wait_with_output().expect("emulation output");
    assert!(out.status.success(), "emulation failed: {}", out.status);
    let sums: Vec<u32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(sums.len(), plan.windows as usize * 4 * C::WORDS);
    Some(finish::<C>(&plan, &sums))
}

fn random_g1(n: usize, seed: u64) -> (Vec<G1Affine>, Vec<Fr>) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let bases = (0..n)
        .map(|_| G1Projective::rand(&mut rng).into_affine())
        .collect();
    (bases, (0..n).map(|_| Fr::rand(&mut rng)).collect())
}

#[test]
fn plan_covers_every_scalar_bit_and_carry() {
    for n in [1usize, 100, 1 << 12, 1 << 16, 1 << 20, 1 << 24] {
        let plan = Plan::for_size(n);
        assert!((5..=16).contains(&plan.c));
        // The top window must be able to absorb the last carry.
        assert!(plan.windows * plan.c > 256, "{plan:?}");
        assert_eq!(plan.segments % plan.group, 0);
    }
    assert_eq!(Plan::for_size(1 << 20).c, 16);
}

#[test]
fn emulated_g1_matches_arkworks_random() {
    for (n, seed) in [(1usize, 1u64), (37, 2), (700, 3)] {
        let (bases, scalars) = random_g1(n, seed);
        let reprs = to_reprs(&scalars);
        let Some(got) = emulate(&bases, &reprs) else {
            return;
        };
        assert_eq!(got, G1Projective::msm_bigint(&bases, &reprs), "n = {n}");
    }
}

#[test]
fn emulated_g1_adversarial_inputs() {
    let (mut bases, _) = random_g1(64, 9);
    let minus_one = (-Fr::from(1u64)).into_bigint();
    let mut reprs: Vec<ScalarRepr> = (0..64u64)
        .map(|i| match i % 4 {
            0 => Fr::from(0u64).into_bigint(),
            1 => Fr::from(1u64).into_bigint(),
            2 => minus_one,
            _ => Fr::from(i << 40).into_bigint(),
        })
        .collect();
    // Repeated points (doubling inside a bucket) and the point at infinity.
    for i in 8..16 {
        bases[i] = bases[7];
    }
    bases[20] = G1Affine::identity();
    reprs[20] = minus_one;
    let Some(got) = emulate(&bases, &reprs) else {
        return;
    };
    assert_eq!(got, G1Projective::msm_bigint(&bases, &reprs));

    // All scalars equal: one bucket per window holds every point.
    let same = vec![Fr::from(12345u64).into_bigint(); 64];
    let got = emulate(&bases, &same).expect("harness compiled above");
    assert_eq!(got, G1Projective::msm_bigint(&bases, &same));

    // A point plus its negation cancels to infinity inside a bucket.
    let p = G1Projective::generator().into_affine();
    let q = (-G1Projective::generator()).into_affine();
    let two = vec![Fr::from(5u64).into_bigint(); 2];
    let got = emulate(&[p, q], &two).expect("harness compiled above");
    assert_eq!(got, G1Projective::default());
}

#[test]
fn emulated_g2_matches_arkworks() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let mut bases: Vec<G2Affine> = (0..50)
        .map(|_| G2Projective::rand(&mut rng).into_affine())
        .collect();
    bases[3] = bases[4];
    let mut scalars: Vec<Fr> = (0..50).map(|_| Fr::rand(&mut rng)).collect();
    scalars[5] = -Fr::from(1u64);
    scalars[6] = Fr::from(0u64);
    let reprs = to_reprs(&scalars);
    let Some(got) = emulate(&bases, &reprs) else {
        return;
    };
    assert_eq!(got, G2Projective::msm_bigint(&bases, &reprs));
}
