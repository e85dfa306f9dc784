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
