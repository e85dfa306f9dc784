//! `seqnet-prover srs ...` (development aggregation SRS: generate, inspect,
//! check, export the verifier's part) and `seqnet-prover bench-aggregate`
//! (single vs batch vs aggregate verification, and aggregation time).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ark_bls12_381::Bls12_381;
use ark_groth16::Proof;
use seqnet_proto::aggregate::{verify_aggregate_prepared, PreparedVerifierSrs};
use seqnet_proto::batch_verify::{verify_batch, BatchItem};
use seqnet_proto::groth16::{batch_commitment, decode_proof, PreparedKey, SpanStatement};

use seqnet_prover::aggregate::aggregate_statements;
use seqnet_prover::msm::{CpuMsm, MsmBackend};
use seqnet_prover::srs::Srs;
use seqnet_prover::JobStatement;

/// `seqnet-prover srs`.
#[derive(clap::Args)]
pub struct SrsArgs {
    #[command(subcommand)]
    command: SrsCommand,
}

#[derive(clap::Subcommand)]
enum SrsCommand {
    /// Writes a DEVELOPMENT aggregation SRS (seeded: anyone knowing the seed
    /// can forge aggregates; never use it in production).
    GenerateDev {
        /// Largest number of proofs per aggregate (a power of two >= 2).
        #[arg(long, default_value_t = 1024)]
        max_proofs: usize,
        /// Seed of the trapdoors.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Loads an SRS file, checks every point and the consistency of the
    /// powers, prints its label and size.
    Check {
        #[arg(long)]
        srs: PathBuf,
    },
    /// Writes the verifier's part (436 bytes) of an SRS file, hex, to stdout.
    VerifierKey {
        #[arg(long)]
        srs: PathBuf,
    },
}

/// Loads and checks an SRS file (points and consistency); warns on a
/// development SRS.
pub fn load_srs(path: &std::path::Path) -> Result<Srs> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let srs = Srs::decode(&bytes).with_context(|| format!("decoding {}", path.display()))?;
    srs.check_consistency()
        .with_context(|| format!("checking {}", path.display()))?;
    if srs.is_development() {
        eprintln!("warning: {}: {}", path.display(), srs.label);
    }
    Ok(srs)
}

pub fn srs(args: &SrsArgs) -> Result<()> {
    match &args.command {
        SrsCommand::GenerateDev {
            max_proofs,
            seed,
            out,
        } => {
            let started = Instant::now();
            let srs = Srs::generate_dev(*max_proofs, *seed)?;
            std::fs::write(out, srs.encode())
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote {} ({} proofs max) in {:.1} s\n{}",
                out.display(),
                srs.max_proofs,
                started.elapsed().as_secs_f64(),
                srs.label
            );
        }
        SrsCommand::Check { srs } => {
            let loaded = load_srs(srs)?;
            println!(
                "ok: {} proofs max; label: {}; verifier key {}",
                loaded.max_proofs,
                loaded.label,
                hex::encode(seqnet_proto::sha256(&loaded.verifier().encode()))
            );
        }
        SrsCommand::VerifierKey { srs } => {
            println!("{}", hex::encode(load_srs(srs)?.verifier().encode()));
        }
    }
    Ok(())
}

/// `seqnet-prover bench-aggregate`.
#[derive(clap::Args)]
pub struct BenchAggregateArgs {
    /// Numbers of proofs.
    #[arg(long, value_delimiter = ',', default_value = "8,64,256,1024")]
    sizes: Vec<usize>,
    /// Reference circuit size of the proofs (verification does not depend on it).
    #[arg(long, default_value_t = 8)]
    k: u32,
    /// Repetitions of each verification (the best is shown).
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

fn best<F: FnMut() -> Result<()>>(reps: usize, mut f: F) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

/// CPU time (user + system) of the calling thread, from
/// `/proc/thread-self/stat` (clock ticks, taken as 10 ms); `None` where that
/// file does not exist.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (in parentheses): state is field 3,
    // utime field 14, stime field 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        utime.saturating_add(stime).saturating_mul(10),
    ))
}

/// CPU time per call of `f` on this thread: repeated until at least a second
/// of CPU time (and `reps` calls) has run, so other processes on a busy
/// machine do not inflate it. Falls back to the best wall time of `reps` calls
/// where thread CPU time is not available.
fn cpu_per_call<F: FnMut() -> Result<()>>(reps: usize, mut f: F) -> Result<Duration> {
    let Some(start) = thread_cpu() else {
        return best(reps, f);
    };
    let mut calls = 0u32;
    loop {
        f()?;
        calls += 1;
        let used = thread_cpu().unwrap_or(start).saturating_sub(start);
        if calls as usize >= reps.max(1) && used >= Duration::from_secs(1) {
            return Ok(used / calls);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Proofs of the reference circuit for `count` statements (rollup 1,
/// one-block spans at heights 1..=count), with their statements.
pub fn make_proofs(
    k: u32,
    count: usize,
) -> Result<(PreparedKey, Vec<SpanStatement>, Vec<Vec<u8>>)> {
    let (pk, vk) = seqnet_prover::setup(k, 1)?;
    let key = PreparedKey::from_key(&vk)?;
    let mut statements = Vec::with_capacity(count);
    let mut proofs = Vec::with_capacity(count);
    for height in 1..=count as u64 {
        let job = JobStatement::single_batch(1, height, batch_commitment(1, height, &[]), [0; 32]);
        let (proof, new_root) = seqnet_prover::prove(&pk, k, &job)?;
        statements.push(job.with_new_root(new_root));
        proofs.push(proof);
    }
    Ok((key, statements, proofs))
}

pub fn bench_aggregate(args: &BenchAggregateArgs) -> Result<()> {
    let max = args.sizes.iter().copied().max().unwrap_or(0);
    if max == 0 {
        bail!("--sizes: give at least one positive size");
    }
    let cores = rayon::current_num_threads();
    eprintln!(
        "making {max} proofs of the reference circuit (k = {}) ...",
        args.k
    );
    let started = Instant::now();
    let (key, statements, proofs) = make_proofs(args.k, max)?;
    let decoded: Vec<Proof<Bls12_381>> = proofs
        .iter()
        .map(|p| decode_proof(p))
        .collect::<Result<_, _>>()?;
    eprintln!("  {:.1} s", started.elapsed().as_secs_f64());
    let srs_size = max.max(2).next_power_of_two();
    eprintln!("development SRS for {srs_size} proofs ...");
    let srs = Srs::generate_dev(srs_size, 1)?;
    let verifier: PreparedVerifierSrs = srs.verifier().into();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let msm: &dyn MsmBackend = &CpuMsm;

    println!(
        "verification on 1 core (CPU time of the verifying thread); aggregation on {cores} core(s) (wall time), MSM back end {}",
        msm.name()
    );
    println!(
        "| N | N single verifications (ms) | batch verification (ms) | batch speed-up | decoding the N proofs (ms) | speed-up net of decoding | aggregate verification (ms) | aggregate size (bytes) | aggregation ({cores} cores, ms) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &n in &args.sizes {
        if n == 0 {
            continue;
        }
        let st = &statements[..n];
        let pr = &proofs[..n];
        let t_agg = Instant::now();
        let agg = aggregate_statements(&srs, &key, &decoded[..n], st, msm)?;
        let aggregation = t_agg.elapsed();
        let bytes = agg.encode();
        let (single, batch, aggregate, decode) = one.install(|| -> Result<_> {
            let single = cpu_per_call(1, || {
                for (s, p) in st.iter().zip(pr) {
                    key.verify(p, s)?;
                }
                Ok(())
            })?;
            let items: Vec<BatchItem<'_>> = st
                .iter()
                .zip(pr)
                .map(|(statement, proof)| BatchItem {
                    key: &key,
                    proof,
                    statement,
                })
                .collect();
            let batch = cpu_per_call(args.reps, || {
                verify_batch(&items).map_err(|e| anyhow::anyhow!("{e}"))
            })?;
            let aggregate = cpu_per_call(args.reps, || {
                verify_aggregate_prepared(&verifier, &key, st, &bytes)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })?;
            let decode = cpu_per_call(args.reps, || {
                for p in pr {
                    decode_proof(p)?;
                }
                Ok(())
            })?;
            Ok((single, batch, aggregate, decode))
        })?;
        let net = |d: Duration| d.saturating_sub(decode).as_secs_f64().max(1e-9);
        println!(
            "| {n} | {:.1} | {:.1} | {:.1}x | {:.1} | {:.1}x | {:.1} | {} | {:.0} |",
            ms(single),
            ms(batch),
            single.as_secs_f64() / batch.as_secs_f64().max(1e-9),
            ms(decode),
            net(single) / net(batch),
            ms(aggregate),
            bytes.len(),
            ms(aggregation),
        );
    }
    Ok(())
}
