//! `seqnet-testnet init --manifest` and `seqnet-testnet scenario`: generate a
//! network from a scenario manifest, and run its load and perturbations
//! followed by the invariant checker.

use std::path::{Path, PathBuf};

use anyhow::Context;
use seqnet_testnet::scenario::{self, Scenario};
use seqnet_testnet::Binaries;

/// `init --manifest M`: generates the testnet and prints where it is.
pub fn init(dir: &Path, manifest: &Path, force: bool) -> anyhow::Result<()> {
    let scenario = Scenario::load(manifest)?;
    let binaries = Binaries::locate()?;
    let net = scenario::init(dir, &scenario, None, force, &binaries)
        .with_context(|| format!("init from {}", manifest.display()))?;
    println!(
        "generated {} validators of chain {} in {} from {} ({} perturbations scheduled; run them with `seqnet-testnet scenario --dir {}`)",
        net.nodes.len(),
        net.chain_id,
        dir.display(),
        manifest.display(),
        scenario.perturbations.len(),
        dir.display()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct ScenarioArgs {
    /// Testnet directory.
    #[arg(long, default_value = ".testnet")]
    dir: PathBuf,
    /// Generate the testnet from this manifest first (replacing the directory).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Base port when generating (default: the manifest's, else 27000).
    #[arg(long)]
    base_port: Option<u16>,
    /// Run the validators as docker compose containers (perturbations via
    /// docker kill/stop/pause/network disconnect) instead of processes.
    #[arg(long)]
    compose: bool,
    /// Base image for --compose (build argument BASE_IMAGE).
    #[arg(long, env = "SEQNET_BASE_IMAGE", default_value = seqnet_testnet::compose::DEFAULT_BASE_IMAGE)]
    base_image: String,
    /// Leave the network running afterwards.
    #[arg(long)]
    keep_running: bool,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Whether the scenario passed (every node recovered, every check passed).
pub async fn run(args: ScenarioArgs) -> anyhow::Result<bool> {
    let binaries = Binaries::locate()?;
    let scenario = match &args.manifest {
        Some(path) => {
            let scenario = Scenario::load(path)?;
            scenario::init(&args.dir, &scenario, args.base_port, true, &binaries)?;
            scenario
        }
        None => Scenario::load(&scenario::scenario_path(&args.dir)).with_context(|| {
            format!(
                "{} was not generated from a manifest (init --manifest M)",
                args.dir.display()
            )
        })?,
    };
    let report = if args.compose {
        scenario::run_compose(
            &args.dir,
            &scenario,
            &binaries,
            &args.base_image,
            args.keep_running,
        )
        .await?
    } else {
        scenario::run(&args.dir, &scenario, binaries, args.keep_running).await?
    };
    print!("{}", report.render());
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(report.passed())
}
