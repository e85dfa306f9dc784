//! `seqnet-prover bench`: MSM and proving times per back end, in one run on one
//! machine, printed as a table (and optionally JSON) with the GPU/CPU ratio.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ark_bls12_381::{Fr, G1Projective, G2Projective};
use ark_ec::CurveGroup;
use ark_ff::UniformRand;
use rand::SeedableRng;
use seqnet_prover::msm::{to_reprs, CpuMsm, MsmBackend, ScalarRepr};
use seqnet_prover::{prove_with_backend, setup, JobStatement};

/// Which back ends `bench` compares.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMsm {
    /// All CPU cores only.
    Cpu,
    /// The GPU only.
    Cuda,
    /// CPU and GPU side by side (the GPU column is skipped without a GPU).
    Both,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Back ends to measure.
    #[arg(long, value_enum, default_value = "both")]
    msm: BenchMsm,
    /// log2 sizes of the G1 and G2 MSMs.
    #[arg(long, value_delimiter = ',', default_value = "16,18,20,22")]
    msm_sizes: Vec<u32>,
    /// Reference-circuit sizes k to prove (setup is untimed); empty to skip.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "16,18,20")]
    prove_sizes: Vec<u32>,
    /// Aggregation sizes (proofs per aggregate, reference-circuit key); empty to skip.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "256,1024")]
    aggregate_sizes: Vec<usize>,
    /// Timed repetitions per cell (after one untimed warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

struct Row {
    what: String,
    size: String,
    cpu: Option<Duration>,
    gpu: Option<Duration>,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time<T>(repeat: usize, mut f: impl FnMut() -> Result<T>) -> Result<Duration> {
    f()?;
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        f()?;
        times.push(started.elapsed());
    }
    Ok(median(times))
}

fn report(what: &str, size: String, cpu: Option<Duration>, gpu: Option<Duration>) -> Row {
    eprintln!("{what} {size}: cpu {} ms, gpu {} ms", ms(cpu), ms(gpu));
    Row {
        what: what.into(),
        size,
        cpu,
        gpu,
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "-".into())
}

pub fn main(args: &BenchArgs) -> Result<()> {
    let gpu: Option<Box<dyn MsmBackend>> = match args.msm {
        BenchMsm::Cpu => None,
        BenchMsm::Cuda | BenchMsm::Both => match seqnet_prover::msm::cuda::CudaMsm::new(0) {
            Ok(g) => {
                eprintln!("GPU: {}", g.device());
                Some(Box::new(g))
            }
            Err(e) if args.msm == BenchMsm::Cuda => {
                return Err(anyhow::anyhow!(e)).context("--msm cuda");
            }
            Err(e) => {
                eprintln!("no GPU column: {e}");
                None
            }
        },
    };
    let want_cpu = args.msm != BenchMsm::Cuda;
    eprintln!("CPU: {} threads (rayon)", rayon::current_num_threads());
    let mut rows = Vec::new();
    let largest = args.msm_sizes.iter().copied().max().unwrap_or(0);
    if largest > 0 {
        let n = 1usize << largest;
        eprintln!("generating {n} G1 and G2 points and scalars ...");
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let scalars: Vec<ScalarRepr> =
            to_reprs(&(0..n).map(|_| Fr::rand(&mut rng)).collect::<Vec<_>>());
        let g1 = spread_points::<G1Projective>(n, &mut rng);
        let g2 = spread_points::<G2Projective>(n, &mut rng);
        for &log in &args.msm_sizes {
            let m = 1usize << log;
            for group in ["MSM G1", "MSM G2"] {
                let run = |backend: &dyn MsmBackend| -> Result<()> {
                    if group == "MSM G1" {
                        let _ = std::hint::black_box(backend.msm_g1(&g1[..m], &scalars[..m])?);
                    } else {
                        let _ = std::hint::black_box(backend.msm_g2(&g2[..m], &scalars[..m])?);
                    }
                    Ok(())
                };
                let cpu = if want_cpu {
                    Some(time(args.repeat, || run(&CpuMsm))?)
                } else {
                    None
                };
                let gpu_time = match &gpu {
                    Some(g) => Some(time(args.repeat, || run(g.as_ref()))?),
                    None => None,
                };
                rows.push(report(group, format!("2^{log}"), cpu, gpu_time));
            }
        }
    }
    for &k in &args.prove_sizes {
        eprintln!("setup k = {k} (untimed) ...");
        let (pk, _vk) = setup(k, 1)?;
        let job = JobStatement {
            rollup_id: 1,
            from_height: 1,
            to_height: 1,
            commitment: [7u8; 32],
            prev_root: [0u8; 32],
        };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let cpu = if want_cpu {
            Some(time(args.repeat.min(2), || {
                Ok(prove_with_backend(&pk, k, &job, &CpuMsm, &mut rng)?)
            })?)
        } else {
            None
        };
        let gpu_time = match &gpu {
            Some(g) => Some(time(args.repeat.min(2), || {
                Ok(prove_with_backend(&pk, k, &job, g.as_ref(), &mut rng)?)
            })?),
            None => None,
        };
        rows.push(report(
            "Groth16 prove (reference)",
            format!("k={k}"),
            cpu,
            gpu_time,
        ));
    }
    let largest = args.aggregate_sizes.iter().copied().max().unwrap_or(0);
    if largest > 0 {
        // Timing only: random proof points and inputs (the aggregate of
        // non-proofs is computed exactly like a real one, it just won't verify).
        eprintln!("development SRS and {largest} random proofs for aggregation ...");
        let srs = seqnet_prover::srs::Srs::generate_dev(largest.next_power_of_two().max(2), 1)?;
        let (_, vk) = setup(8, 1)?;
        let key = seqnet_proto::groth16::PreparedKey::from_key(&vk)?;
        let inputs_per_proof = vk.gamma_abc_g1.len() - 1;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let proofs: Vec<ark_groth16::Proof<ark_bls12_381::Bls12_381>> = (0..largest)
            .map(|_| ark_groth16::Proof {
                a: G1Projective::rand(&mut rng).into_affine(),
                b: G2Projective::rand(&mut rng).into_affine(),
                c: G1Projective::rand(&mut rng).into_affine(),
            })
            .collect();
        let inputs: Vec<Vec<Fr>> = (0..largest)
            .map(|_| (0..inputs_per_proof).map(|_| Fr::rand(&mut rng)).collect())
            .collect();
        for &count in &args.aggregate_sizes {
            let run = |backend: &dyn MsmBackend| -> Result<()> {
                let agg = seqnet_prover::aggregate::aggregate(
                    &srs,
                    &key,
                    &proofs[..count],
                    &inputs[..count],
                    backend,
                )?;
                std::hint::black_box(agg);
                Ok(())
            };
            let cpu = if want_cpu {
                Some(time(args.repeat, || run(&CpuMsm))?)
            } else {
                None
            };
            let gpu_time = match &gpu {
                Some(g) => Some(time(args.repeat, || run(g.as_ref()))?),
                None => None,
            };
            rows.push(report(
                "SnarkPack aggregation",
                format!("{count} proofs"),
                cpu,
                gpu_time,
            ));
        }
    }

    println!("| operation | size | CPU ms | GPU ms | CPU/GPU |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for r in &rows {
        let ratio = match (r.cpu, r.gpu) {
            (Some(c), Some(g)) if !g.is_zero() => {
                format!("{:.1}x", c.as_secs_f64() / g.as_secs_f64())
            }
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            r.what,
            r.size,
            ms(r.cpu),
            ms(r.gpu),
            ratio
        );
    }
    if let Some(path) = &args.json {
        let json: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "operation": r.what,
                    "size": r.size,
                    "cpu_ms": r.cpu.map(|d| d.as_secs_f64() * 1e3),
                    "gpu_ms": r.gpu.map(|d| d.as_secs_f64() * 1e3),
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `n` affine points: a random start plus a cycle of 256 random steps, then
/// one batch normalisation (random points one by one would take minutes at 2^22).
fn spread_points<P: CurveGroup + UniformRand>(
    n: usize,
    rng: &mut impl rand::RngCore,
) -> Vec<P::Affine> {
    let steps: Vec<P> = (0..256).map(|_| P::rand(rng)).collect();
    let mut acc = P::rand(rng);
    let points: Vec<P> = (0..n)
        .map(|i| {
            acc += steps[i % steps.len()];
            acc
        })
        .collect();
    P::normalize_batch(&points)
}
