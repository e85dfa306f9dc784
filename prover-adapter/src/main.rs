//! `seqnet-prover`: development setup, proving and verification of the
//! reference rollup circuit (Groth16 over BLS12-381).

mod aggregate_cmd;
mod bench_cmd;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use seqnet_proto::groth16::PreparedKey;
use seqnet_prover::{
    constraint_count, decode_proving_key, encode_proving_key, encode_verifying_key, prove, setup,
    JobStatement,
};

const PROVING_KEY: &str = "proving_key.bin";
const VERIFYING_KEY: &str = "verifying_key.bin";
const SETUP_NOTE: &str = "SETUP.txt";

#[derive(Parser)]
#[command(
    name = "seqnet-prover",
    version,
    about = "seqnet prover: reference rollup circuit, Groth16 over BLS12-381"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum CircuitKind {
    /// The reference rollup circuit (MiMC-style state transition, padded to 2^K).
    Reference,
}

#[derive(clap::Args)]
struct StatementArgs {
    /// Rollup id.
    #[arg(long)]
    rollup: u64,
    /// First height of the span.
    #[arg(long)]
    from: u64,
    /// Last height of the span (default: --from, a one-block span).
    #[arg(long)]
    to: Option<u64>,
    /// Span commitment (32 bytes, hex; seqnet_proto::groth16::span_commitment).
    #[arg(long)]
    commitment: String,
    /// Previous state root (32 bytes, hex, big-endian, below the scalar modulus).
    #[arg(long)]
    prev_root: String,
}

#[derive(Subcommand)]
enum Command {
    /// DEVELOPMENT setup (seeded, not a ceremony): writes proving_key.bin,
    /// verifying_key.bin and SETUP.txt to --out.
    Setup {
        #[arg(long, value_enum, default_value = "reference")]
        circuit: CircuitKind,
        /// Circuit size: about 2^K constraints.
        #[arg(long)]
        size: u32,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the ChaCha20 RNG that makes the keys (anyone knowing it can forge proofs).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Proves a span from its statement; prints JSON {"proof": hex,
    /// "new_root": hex}.
    Prove {
        /// Directory with proving_key.bin.
        #[arg(long)]
        keys: PathBuf,
        /// Circuit size the keys were made for.
        #[arg(long)]
        size: u32,
        #[command(flatten)]
        statement: StatementArgs,
    },
    /// Proves a job as an external back end receives it (JSON version 2 on
    /// stdin, or --job FILE): checks its batches against their commitments,
    /// replays the reference state function through the earlier unproven
    /// spans for the previous root, proves; prints the back end's answer
    /// {"proof": hex, "prev_state_root": hex, "new_state_root": hex}.
    ProveJob {
        /// Directory with proving_key.bin (the circuit size is read off the key).
        #[arg(long)]
        keys: PathBuf,
        /// The job JSON (default: standard input).
        #[arg(long)]
        job: Option<PathBuf>,
    },
    /// Verifies a proof against verifying_key.bin; exit status 0 if valid, 1 if not.
    Verify {
        /// Directory with verifying_key.bin.
        #[arg(long)]
        keys: PathBuf,
        #[command(flatten)]
        statement: StatementArgs,
        /// Proof (384 bytes, hex).
        #[arg(long)]
        proof: String,
        /// New state root (32 bytes, hex).
        #[arg(long)]
        new_root: String,
    },
    /// Prover daemon: follow this key's proof jobs on one or more nodes,
    /// prove them (reference circuit or an external command), submit.
    Run(run::RunArgs),
    /// Aggregator: take proven jobs handed over by provers (`run
    /// --aggregator`), aggregate them per verifying key, submit one
    /// SubmitAggregate per batch.
    Aggregate(run::AggregateArgs),
    /// MSM (G1, G2) and proving times on the CPU and the GPU, with ratios.
    Bench(bench_cmd::BenchArgs),
    /// Aggregation SRS: generate a DEVELOPMENT one, check a file, export the
    /// verifier's part.
    Srs(aggregate_cmd::SrsArgs),
    /// N single vs one batch vs one aggregate verification (one core), and
    /// aggregation time (all cores), per N.
    BenchAggregate(aggregate_cmd::BenchAggregateArgs),
}

fn hex32(name: &str, s: &str) -> Result<[u8; 32]> {
    let bytes =
        hex::decode(s.trim_start_matches("0x")).with_context(|| format!("--{name}: not hex"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow::anyhow!("--{name}: {} bytes, want 32", bytes.len()))
}

fn job(args: &StatementArgs) -> Result<JobStatement> {
    let to = args.to.unwrap_or(args.from);
    anyhow::ensure!(
        to >= args.from,
        "--to {to} is below --from {}: a span runs from..=to",
        args.from
    );
    Ok(JobStatement {
        rollup_id: args.rollup,
        from_height: args.from,
        to_height: to,
        commitment: hex32("commitment", &args.commitment)?,
        prev_root: hex32("prev-root", &args.prev_root)?,
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn run_setup(size: u32, out: &Path, seed: u64) -> Result<()> {
    let constraints = constraint_count(size)?;
    eprintln!(
        "DEVELOPMENT setup (seeded, NOT a ceremony): reference circuit, k = {size}, {constraints} constraints, seed {seed}"
    );
    let started = Instant::now();
    let (pk, vk) = setup(size, seed)?;
    eprintln!("keys generated in {:.2?}", started.elapsed());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let started = Instant::now();
    let pk_bytes = encode_proving_key(&pk)?;
    let vk_bytes = encode_verifying_key(&vk)?;
    write(&out.join(PROVING_KEY), &pk_bytes)?;
    write(&out.join(VERIFYING_KEY), &vk_bytes)?;
    let note = format!(
        "seqnet-prover DEVELOPMENT SETUP -- NOT A TRUSTED-SETUP CEREMONY\n\
         \n\
         These Groth16 keys were generated from a ChaCha20 RNG seeded with {seed}.\n\
         Anyone who knows the seed can recompute the trapdoor and forge proofs.\n\
         Use them for development, tests and benchmarks only.\n\
         \n\
         circuit: reference (seqnet-prover {version})\n\
         size k: {size}\n\
         constraints: {constraints}\n\
         seed: {seed}\n\
         {PROVING_KEY}: {pk_len} bytes (uncompressed, loaded unchecked)\n\
         {VERIFYING_KEY}: {vk_len} bytes (compressed), sha256 {vk_hash}\n",
        version = env!("CARGO_PKG_VERSION"),
        pk_len = pk_bytes.len(),
        vk_len = vk_bytes.len(),
        vk_hash = hex::encode(seqnet_proto::sha256(&vk_bytes)),
    );
    write(&out.join(SETUP_NOTE), note.as_bytes())?;
    eprintln!("keys written in {:.2?}", started.elapsed());
    println!(
        "DEVELOPMENT setup (not a ceremony) written to {}: {PROVING_KEY}, {VERIFYING_KEY}, {SETUP_NOTE}",
        out.display()
    );
    Ok(())
}

fn run_prove(keys: &Path, size: u32, statement: &StatementArgs) -> Result<()> {
    let job = job(statement)?;
    let started = Instant::now();
    let pk =
        decode_proving_key(&read(&keys.join(PROVING_KEY))?).context("decoding the proving key")?;
    eprintln!("proving key loaded in {:.2?}", started.elapsed());
    let started = Instant::now();
    let (proof, new_root) = prove(&pk, size, &job)?;
    eprintln!("proved in {:.2?}", started.elapsed());
    println!(
        "{}",
        serde_json::json!({
            "proof": hex::encode(proof),
            "new_root": hex::encode(new_root),
        })
    );
    Ok(())
}

fn run_prove_job(keys: &Path, job: Option<&Path>) -> Result<()> {
    use seqnet_prover::backend::{JobInput, ProvingBackend, ReferenceBackend};
    let text = match job {
        Some(path) => read(path)?,
        None => {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)
                .context("reading the job from standard input")?;
            text
        }
    };
    let input: JobInput = serde_json::from_slice(&text).context("the job is not job JSON")?;
    let started = Instant::now();
    let backend = ReferenceBackend::load(keys)?;
    eprintln!("proving key loaded in {:.2?}", started.elapsed());
    let started = Instant::now();
    let output = backend.prove(&input)?;
    eprintln!(
        "proved rollup {} span {}..={} in {:.2?}",
        input.rollup_id,
        input.from_height,
        input.to_height,
        started.elapsed()
    );
    println!(
        "{}",
        serde_json::json!({
            "proof": hex::encode(output.proof),
            "prev_state_root": hex::encode(output.prev_state_root),
            "new_state_root": hex::encode(output.new_state_root),
        })
    );
    Ok(())
}

fn run_verify(keys: &Path, statement: &StatementArgs, proof: &str, new_root: &str) -> Result<bool> {
    let job = job(statement)?;
    let proof = hex::decode(proof.trim_start_matches("0x")).context("--proof: not hex")?;
    let statement = job.with_new_root(hex32("new-root", new_root)?);
    let key = PreparedKey::decode(&read(&keys.join(VERIFYING_KEY))?)
        .context("decoding the verifying key")?;
    match key.verify(&proof, &statement) {
        Ok(()) => {
            println!(
                "valid: proof verifies for rollup {} span {}..={}",
                job.rollup_id, job.from_height, job.to_height
            );
            Ok(true)
        }
        Err(e) => {
            println!("INVALID: {e}");
            Ok(false)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Setup {
            circuit: CircuitKind::Reference,
            size,
            out,
            seed,
        } => run_setup(*size, out, *seed).map(|()| true),
        Command::Prove {
            keys,
            size,
            statement,
        } => run_prove(keys, *size, statement).map(|()| true),
        Command::ProveJob { keys, job } => run_prove_job(keys, job.as_deref()).map(|()| true),
        Command::Verify {
            keys,
            statement,
            proof,
            new_root,
        } => run_verify(keys, statement, proof, new_root),
        Command::Run(args) => run::main(args).map(|()| true),
        Command::Aggregate(args) => run::aggregate(args).map(|()| true),
        Command::Bench(args) => bench_cmd::main(args).map(|()| true),
        Command::Srs(args) => aggregate_cmd::srs(args).map(|()| true),
        Command::BenchAggregate(args) => aggregate_cmd::bench_aggregate(args).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
