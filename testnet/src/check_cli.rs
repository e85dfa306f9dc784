//! `seqnet-testnet check`: runs the invariant checker against a running
//! testnet and exits non-zero on a breach.

use std::path::PathBuf;
use std::time::Duration;

use seqnet_testnet::check;
use seqnet_testnet::loadgen::{self, BlockIndex, LoadLog};
use seqnet_testnet::{CometRpc, Manifest};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Testnet directory.
    #[arg(long, default_value = ".testnet")]
    dir: PathBuf,
    /// Load log (JSON) of the load generator; default: <dir>/load.json if present.
    #[arg(long)]
    load: Option<PathBuf>,
    /// Seconds to wait for acknowledged transactions to be ordered first.
    #[arg(long, default_value_t = 30)]
    drain: u64,
    /// Also write the verdicts as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Whether every check passed.
pub async fn run(args: CheckArgs) -> anyhow::Result<bool> {
    let manifest = Manifest::load(&args.dir)?;
    let default_load = args.dir.join(seqnet_testnet::scenario::LOAD_LOG);
    let load_path = args
        .load
        .or_else(|| default_load.is_file().then_some(default_load));
    let load = match &load_path {
        Some(path) => Some(LoadLog::load(path)?),
        None => None,
    };
    if let (Some(load), Some(node)) = (&load, manifest.nodes.first()) {
        let mut index = BlockIndex::new(CometRpc::new(node.rpc_addr()), 1);
        if !loadgen::drain(&mut index, load, Duration::from_secs(args.drain)).await? {
            eprintln!(
                "check: not every acknowledged transaction was ordered within {}s",
                args.drain
            );
        }
    }
    let report = check::check(&args.dir, &manifest, load.as_ref()).await;
    print!("{}", report.render());
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(report.passed())
}
