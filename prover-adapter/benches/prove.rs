//! Proving and verification times of the reference circuit at several sizes.
//! `SEQNET_BENCH_SIZES` (default `10,14,16`) and `SEQNET_BENCH_JOBS` (default 3)
//! tune it. Verification includes decoding the proof (point decompression and
//! subgroup checks), shown on its own in the last column. Absolute figures need
//! an optimized build.

use std::time::{Duration, Instant};

use seqnet_proto::groth16::PreparedKey;
use seqnet_prover::{encode_verifying_key, prove, setup, JobStatement};

fn env_list(name: &str, default: &str) -> Vec<u32> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let sizes = env_list("SEQNET_BENCH_SIZES", "10,14,16");
    let jobs = env_list("SEQNET_BENCH_JOBS", "3")
        .first()
        .copied()
        .unwrap_or(3)
        .max(1);
    let profile = if cfg!(debug_assertions) {
        "debug assertions on (dev profile)"
    } else {
        "optimized"
    };
    println!("reference circuit, Groth16/BLS12-381, {jobs} jobs per size, {profile}");
    println!(
        "{:>3} {:>9} {:>10} {:>14} {:>15} {:>15}",
        "k", "constr.", "setup ms", "prove ms/job", "verify ms/proof", "(decode ms)"
    );
    for k in sizes {
        let constraints = seqnet_prover::constraint_count(k)?;
        let t = Instant::now();
        let (pk, vk) = setup(k, 1)?;
        let setup_time = t.elapsed();
        let key = PreparedKey::decode(&encode_verifying_key(&vk)?)?;
        let mut proofs = Vec::new();
        let t = Instant::now();
        for h in 0..jobs {
            let job = JobStatement {
                rollup_id: 7,
                from_height: u64::from(h) + 1,
                to_height: u64::from(h) + 1,
                commitment: seqnet_proto::sha256(&h.to_be_bytes()),
                prev_root: [0u8; 32],
            };
            let (proof, new_root) = prove(&pk, k, &job)?;
            proofs.push((proof, job, new_root));
        }
        let prove_time = t.elapsed() / jobs;
        let reps = 10u32;
        let t = Instant::now();
        for _ in 0..reps {
            for (proof, job, new_root) in &proofs {
                let st = job.with_new_root(*new_root);
                key.verify(proof, &st)?;
            }
        }
        let verify_time = t.elapsed() / (reps * jobs);
        let t = Instant::now();
        for _ in 0..reps {
            for (proof, _, _) in &proofs {
                seqnet_proto::groth16::decode_proof(proof)?;
            }
        }
        let decode_time = t.elapsed() / (reps * jobs);
        println!(
            "{k:>3} {constraints:>9} {:>10.1} {:>14.1} {:>15.2} {:>15.2}",
            ms(setup_time),
            ms(prove_time),
            ms(verify_time),
            ms(decode_time)
        );
    }
    Ok(())
}
