//! `seqnet-testnet bench`: arguments and output of the benchmark command
//! (the measurement itself is `seqnet_testnet::bench`).

use std::path::PathBuf;

use anyhow::Context;
use seqnet_testnet::bench::{self, App, BenchOptions};
use seqnet_testnet::Binaries;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Write the result as JSON here.
    #[arg(long, default_value = "bench.json")]
    out: PathBuf,
    /// Where the two networks are generated (default: a temporary directory, removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Encoded size of every transaction, both apps.
    #[arg(long, default_value_t = 512)]
    tx_bytes: usize,
    /// Open-loop target rate (tx/s); 0 skips the open-loop phase.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Workers of the open-loop phase.
    #[arg(long, default_value_t = 16)]
    open_workers: usize,
    /// Concurrency of the closed-loop phase (finds the maximum); 0 skips it.
    #[arg(long, default_value_t = 64)]
    closed_workers: usize,
    /// Seconds per phase, warm-up included.
    #[arg(long, default_value_t = 40)]
    duration: u64,
    /// Seconds at the start of each phase left out of the figures.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds to wait for acknowledged transactions to be ordered after a phase.
    #[arg(long, default_value_t = 30)]
    drain: u64,
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// CometBFT consensus.timeout_commit (both networks).
    #[arg(long, default_value = "300ms")]
    timeout_commit: String,
    /// CometBFT consensus.timeout_propose (both networks).
    #[arg(long, default_value = "1s")]
    timeout_propose: String,
    /// Apps to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "kvstore,seqnet")]
    apps: Vec<AppArg>,
    /// Base port of the kvstore network (seqnet's is 100 above); default: free ranges.
    #[arg(long)]
    base_port: Option<u16>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum AppArg {
    Kvstore,
    Seqnet,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let opts = BenchOptions {
        validators: args.validators,
        tx_bytes: args.tx_bytes,
        open_rate: (args.rate > 0.0).then_some(args.rate),
        open_workers: args.open_workers,
        closed_workers: args.closed_workers,
        phase_secs: args.duration,
        warmup_secs: args.warmup,
        drain_secs: args.drain,
        timeout_commit: args.timeout_commit,
        timeout_propose: args.timeout_propose,
        base_port: args.base_port,
        apps: args
            .apps
            .iter()
            .map(|a| match a {
                AppArg::Kvstore => App::Kvstore,
                AppArg::Seqnet => App::Seqnet,
            })
            .collect(),
    };
    let (work, temporary) = match args.work_dir {
        Some(dir) => (dir, false),
        None => (bench::default_work_dir(), true),
    };
    let binaries = Binaries::locate()?;
    let result = bench::run(&work, &opts, &binaries).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    let report = result.with_context(|| format!("bench in {}", work.display()))?;
    print!("{}", bench::render(&report));
    bench::save(&report, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// `seqnet-testnet bench-proving`: slow provers against the baseline.
#[derive(clap::Args)]
pub struct BenchProvingArgs {
    /// Write the result as JSON here.
    #[arg(long, default_value = "bench-proving.json")]
    out: PathBuf,
    /// Where the cases' networks are generated (default: a temporary directory, removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Prover delays S in seconds (each case's back end waits S, then proves).
    #[arg(long, value_delimiter = ',', default_value = "0,2,10,30")]
    delays: Vec<f64>,
    /// Provers of the "too few" cases (the others get enough for S).
    #[arg(long, default_value_t = 3)]
    few_provers: usize,
    /// Rollups loaded (ids 1..=N).
    #[arg(long, default_value_t = 3)]
    rollups: u64,
    /// Open-loop rate over all rollups (tx/s).
    #[arg(long, default_value_t = 60.0)]
    rate: f64,
    /// Encoded size of every transaction.
    #[arg(long, default_value_t = 512)]
    tx_bytes: usize,
    /// Load workers (spread over the rollups).
    #[arg(long, default_value_t = 6)]
    workers: usize,
    /// Blocks per span (default: 5, or a third of a proving time for slow provers).
    #[arg(long)]
    span_blocks: Option<u64>,
    /// Seconds of load per case (default: max(60, 4 S + 30), 6 S with too few provers).
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds at the start of each case left out of the figures.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// CometBFT consensus.timeout_commit.
    #[arg(long, default_value = "300ms")]
    timeout_commit: String,
    /// Run without an aggregator beside the provers.
    #[arg(long)]
    no_aggregator: bool,
    /// Keep each case's network directory (logs) in the work directory.
    #[arg(long)]
    keep: bool,
}

pub async fn run_proving(args: BenchProvingArgs) -> anyhow::Result<()> {
    use seqnet_testnet::bench_proving::{self, ProvingBenchOptions};
    let opts = ProvingBenchOptions {
        validators: args.validators,
        rollups: args.rollups,
        rate: args.rate,
        tx_bytes: args.tx_bytes,
        workers: args.workers,
        delays: args.delays,
        few_provers: args.few_provers,
        span_blocks: args.span_blocks,
        duration_secs: args.duration,
        warmup_secs: args.warmup,
        timeout_commit: args.timeout_commit,
        aggregator: !args.no_aggregator,
        keep: args.keep,
    };
    let (work, temporary) = match args.work_dir {
        Some(dir) => (dir, false),
        None => (bench_proving::default_work_dir(), true),
    };
    let binaries = Binaries::locate()?;
    let result = bench_proving::run(&work, &opts, &binaries).await;
    if temporary && !opts.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    let report = result.with_context(|| format!("bench-proving in {}", work.display()))?;
    print!("{}", bench_proving::render(&report));
    bench_proving::save(&report, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
