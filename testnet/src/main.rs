//! `seqnet-testnet`: generate, run, watch, break and load a local seqnet network.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use seqnet_testnet::load::{self, LoadOptions, LoadStats};
use seqnet_testnet::{status, Binaries, InitOptions, Manifest, Testnet};

mod bench_cli;
mod check_cli;
mod compose_cli;
mod scenario_cli;

#[derive(Parser)]
#[command(
    name = "seqnet-testnet",
    version,
    about = "Local seqnet networks: generate, start, stop, watch, load"
)]
struct Cli {
    /// Log filter for this tool (RUST_LOG syntax).
    #[arg(
        long,
        env = "SEQNET_TESTNET_LOG",
        default_value = "info",
        global = true
    )]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct DirArg {
    /// Testnet directory.
    #[arg(long, default_value = ".testnet")]
    dir: PathBuf,
}

/// The demo load (`load` and `demo`).
#[derive(clap::Args)]
struct LoadArgs {
    /// Transactions per second over all rollups.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    duration: Option<u64>,
    /// Bytes of rollup data per transaction.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
}

#[derive(clap::Args)]
struct InitArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    #[arg(long, default_value = "seqnet-local")]
    chain_id: String,
    /// Node i listens on base + 10*i + {0 p2p, 1 rpc, 2 abci, 3 grpc, 4 metrics}.
    #[arg(long, default_value_t = 27000)]
    base_port: u16,
    /// Demo rollups registered at genesis (ids 1..=K).
    #[arg(long, default_value_t = 3)]
    rollups: u64,
    /// Extra funded accounts (keys/user-J.json).
    #[arg(long, default_value_t = 2)]
    users: usize,
    /// CometBFT consensus.timeout_commit.
    #[arg(long, default_value = "300ms")]
    timeout_commit: String,
    /// CometBFT consensus.timeout_propose.
    #[arg(long, default_value = "1s")]
    timeout_propose: String,
    /// Consensus parameter abci.vote_extensions_enable_height (0: off; forced
    /// inclusion needs them on).
    #[arg(long, default_value_t = 1)]
    vote_extensions_height: u64,
    /// CometBFT log_level.
    #[arg(long, default_value = "info")]
    cometbft_log: String,
    /// Sequencer log filter.
    #[arg(long, default_value = "info")]
    sequencer_log: String,
    /// Provers (keys/prover-J.json, started by `up` and `demo`); with any,
    /// the demo rollups are registered with the reference circuit's
    /// verifying key and every batch of theirs must be proven.
    #[arg(long, default_value_t = 3)]
    provers: usize,
    /// Reference circuit size k (DEVELOPMENT setup, cached).
    #[arg(long, default_value_t = 8)]
    circuit_size: u32,
    /// Proof window of the demo rollups (blocks).
    #[arg(long, default_value_t = 20)]
    proof_window: u64,
    /// Chain parameter epoch_length (the prover set changes at epoch boundaries).
    #[arg(long, default_value_t = 10)]
    epoch_length: u64,
    /// Chain parameter downtime_window: a validator missing more than half
    /// of these heights is jailed (for as many blocks).
    #[arg(long, default_value_t = seqnet_testnet::init::DEFAULT_DOWNTIME_WINDOW)]
    downtime_window: u64,
    /// Chain parameter max_unproven_blocks (default with provers:
    /// span_blocks + 2 * proof_window; without: the chain's).
    #[arg(long)]
    max_unproven_blocks: Option<u64>,
    /// Blocks per proof job (span) of the demo rollups.
    #[arg(long, default_value_t = 5)]
    span_blocks: u64,
    /// Milliseconds the provers wait before proving each job, through the
    /// external back end (`sleep S && seqnet-prover prove-job`): a stand-in
    /// for a real prover that needs seconds per proof. 0: in process.
    #[arg(long, default_value_t = 0)]
    prover_delay_ms: u64,
    /// An aggregator (needs provers): a funded key, a DEVELOPMENT
    /// aggregation SRS in genesis, `seqnet-prover aggregate` started by `up`
    /// and `demo`, and the provers hand it their proofs.
    #[arg(long)]
    aggregator: bool,
}

impl InitArgs {
    fn options(&self, force: bool) -> InitOptions {
        InitOptions {
            validators: self.validators,
            chain_id: self.chain_id.clone(),
            base_port: self.base_port,
            rollups: self.rollups,
            users: self.users,
            timeout_commit: self.timeout_commit.clone(),
            timeout_propose: self.timeout_propose.clone(),
            cometbft_log_level: self.cometbft_log.clone(),
            sequencer_log_filter: self.sequencer_log.clone(),
            vote_extensions_enable_height: self.vote_extensions_height,
            force,
            provers: self.provers,
            circuit_size: self.circuit_size,
            proof_window: self.proof_window,
            epoch_length: self.epoch_length,
            downtime_window: self.downtime_window,
            max_unproven_blocks: self.max_unproven_blocks,
            span_blocks: self.span_blocks,
            prover_delay_ms: self.prover_delay_ms,
            aggregator: self.aggregator,
            ..InitOptions::default()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Generate a testnet: CometBFT homes, one genesis, configs, keys, testnet.json.
    Init {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        init: InitArgs,
        /// Replace an existing directory.
        #[arg(long)]
        force: bool,
        /// Generate from a scenario manifest (TOML; testnet/manifests/) instead of the flags.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Start every node, wait for height 2, stake and start the provers,
    /// then show live status until Ctrl-C.
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Provers to start (default: all the testnet has).
        #[arg(long)]
        provers: Option<usize>,
        /// Return once the network runs (stop it with `down`).
        #[arg(long)]
        detach: bool,
        /// Seconds to wait for height 2.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
    /// Stop every process (SIGTERM, SIGKILL after a grace period).
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// One status table: nodes and rollups.
    Status {
        #[command(flatten)]
        dir: DirArg,
    },
    /// SIGKILL both processes of one node (a crash).
    Kill {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        node: usize,
    },
    /// Start one node (after `kill`) and wait until it catches up.
    Start {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        node: usize,
        /// Seconds to wait for it to catch up.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
    /// Add a node (not a validator) to a running testnet (processes, or
    /// containers after `compose up`: the node gets a container of its own)
    /// and wait until it has caught up: by state sync from the validators'
    /// snapshots (every 10 blocks), or by replaying every block (block sync).
    Join {
        #[command(flatten)]
        dir: DirArg,
        /// Restore the latest snapshot instead of replaying every block.
        #[arg(long)]
        state_sync: bool,
        /// Seconds to wait for it to catch up.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Fault drill: make one node's proposals censor matching transactions
    /// (sequencer `[fault] censor`); takes effect when the node (re)starts.
    Fault {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        node: usize,
        /// `rollup:<id>` or `signer:<64 hex>`; repeat for several; none clears.
        #[arg(long)]
        censor: Vec<String>,
    },
    /// Start, stop or kill one prover (fault drills).
    Prover {
        #[command(flatten)]
        dir: DirArg,
        #[arg(value_enum)]
        action: ProverAction,
        /// Prover index (0-based).
        #[arg(long)]
        index: usize,
    },
    /// Measure seqnet against CometBFT's kvstore app: same machine, config,
    /// block parameters, tx size and load generator (open and closed loop).
    Bench(bench_cli::BenchArgs),
    /// Measure what slow provers cost ordering: a baseline without proving,
    /// then provers that wait S seconds per proof (few, and enough for S),
    /// same network and load; ordered tx/s, latency, proven lag,
    /// back-pressure and why, slashes (table and JSON).
    BenchProving(bench_cli::BenchProvingArgs),
    /// Check invariants of a running testnet (app hashes, acked txs once,
    /// forced windows, proof deadlines, no panics); non-zero exit on a breach.
    Check(check_cli::CheckArgs),
    /// Run a manifest's scenario: start, load, perturb, check.
    Scenario(scenario_cli::ScenarioArgs),
    /// Run the testnet's validators as docker compose containers (up|down).
    Compose(compose_cli::ComposeArgs),
    /// Only the demo rollups' load (what `demo` runs beside its status view)
    /// on a running testnet, until Ctrl-C / SIGTERM or `--duration`; prints
    /// progress every 10 s. The demo-rollup container of docker-compose.yml
    /// runs this with `--compose`.
    Load {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        load: LoadArgs,
        /// Reach the nodes at their compose-network addresses (from inside a
        /// container of the testnet's docker-compose.yml).
        #[arg(long)]
        compose: bool,
    },
    /// Init (if needed), up, and load every demo rollup through its own node.
    Demo {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        init: InitArgs,
        #[command(flatten)]
        load: LoadArgs,
        /// Seconds to wait for height 2.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProverAction {
    Start,
    Stop,
    Kill,
}

/// Stakes the provers (if not yet) and starts the first `count` of them.
async fn start_provers(net: &mut Testnet, count: Option<usize>) -> anyhow::Result<()> {
    let count = count.unwrap_or(net.prover_count()).min(net.prover_count());
    if count == 0 {
        return Ok(());
    }
    println!("staking {} provers", net.prover_count());
    net.register_provers(Duration::from_secs(60)).await?;
    if let Some(aggregator) = net.manifest().aggregator.clone() {
        net.start_aggregator()?;
        println!(
            "aggregator running; provers hand it their proofs on {}",
            aggregator.listen_addr()
        );
    }
    for index in 0..count {
        if !net.prover_running(index) {
            net.start_prover(index)?;
        }
    }
    println!("{count} provers running; waiting for the epoch boundary that activates them");
    net.wait_for_active_provers(count, Duration::from_secs(120))
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn refresh_interval() -> Duration {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    }
}

async fn up(dir: &Path, detach: bool, timeout: u64, provers: Option<usize>) -> anyhow::Result<()> {
    let mut net = Testnet::open(dir)?.with_binaries(Binaries::locate()?);
    println!(
        "starting {} nodes of {} from {}",
        net.node_count(),
        net.manifest().chain_id,
        dir.display()
    );
    net.start(Duration::from_secs(timeout)).await?;
    start_provers(&mut net, provers).await?;
    println!(
        "{}",
        status::render(&status::collect(dir, net.manifest()).await)
    );
    if detach {
        net.detach();
        println!(
            "network running; stop it with `seqnet-testnet down --dir {}`",
            dir.display()
        );
        return Ok(());
    }
    let manifest = net.manifest().clone();
    status::watch(
        dir,
        &manifest,
        refresh_interval(),
        String::new,
        shutdown_signal(),
    )
    .await;
    println!("stopping the network");
    net.stop();
    Ok(())
}

async fn start_one(dir: &Path, node: usize, timeout: u64) -> anyhow::Result<()> {
    let mut net = Testnet::open(dir)?.with_binaries(Binaries::locate()?);
    let target = net
        .heights()
        .await
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(1)
        .max(1);
    net.start_node(node).await?;
    net.wait_node_height(node, target, Duration::from_secs(timeout))
        .await
        .with_context(|| format!("node{node} did not catch up to height {target}"))?;
    net.detach();
    println!("node{node} is running and at height >= {target}");
    Ok(())
}

async fn demo(
    dir: &Path,
    init: &InitArgs,
    opts: LoadOptions,
    duration: Option<u64>,
    timeout: u64,
) -> anyhow::Result<()> {
    let binaries = Binaries::locate()?;
    if !Manifest::exists(dir) {
        println!(
            "generating a {}-validator testnet in {}",
            init.validators,
            dir.display()
        );
        Testnet::init(dir, &init.options(false), binaries.clone())?.detach();
    }
    let mut net = Testnet::open(dir)?.with_binaries(binaries);
    let already_running = (0..net.node_count()).all(|i| net.is_running(i));
    if already_running {
        println!("network already running; loading it (it keeps running afterwards)");
        net.detach();
    } else {
        println!("starting {} nodes", net.node_count());
        net.start(Duration::from_secs(timeout)).await?;
        start_provers(&mut net, Some(init.provers)).await?;
    }
    let manifest = net.manifest().clone();
    for rollup in &manifest.rollups {
        println!(
            "rollup {} ({}) submits through node{} ({})",
            rollup.id,
            rollup.name,
            rollup.submit_node,
            manifest.node(rollup.submit_node)?.grpc_url()
        );
    }
    let stats = Arc::new(LoadStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load_task = {
        let dir = dir.to_path_buf();
        let manifest = manifest.clone();
        let stats = stats.clone();
        let opts = opts.clone();
        tokio::spawn(async move { load::run(&dir, &manifest, &opts, stats, stop_rx).await })
    };
    let started = Instant::now();
    let until = async {
        match duration {
            Some(secs) => {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                }
            }
            None => shutdown_signal().await,
        }
    };
    let footer = || stats.summary(started.elapsed());
    status::watch(dir, &manifest, refresh_interval(), footer, until).await;
    let _ = stop_tx.send(true);
    let load_result = load_task.await.context("load task panicked")?;
    println!("{}", status::render(&status::collect(dir, &manifest).await));
    println!("{}", stats.summary(started.elapsed()));
    if !already_running {
        println!("stopping the network");
        net.stop();
    }
    load_result?;
    Ok(())
}

/// `seqnet-testnet load`: the demo load with a progress line every 10 s.
async fn load_only(
    dir: &Path,
    manifest: &Manifest,
    opts: LoadOptions,
    duration: Option<u64>,
) -> anyhow::Result<()> {
    let stats = Arc::new(LoadStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut task = {
        let dir = dir.to_path_buf();
        let manifest = manifest.clone();
        let stats = stats.clone();
        tokio::spawn(async move { load::run(&dir, &manifest, &opts, stats, stop_rx).await })
    };
    let started = Instant::now();
    let deadline = duration.map(|secs| started + Duration::from_secs(secs));
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let result = loop {
        let until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = &mut task => break result,
            _ = progress.tick() => println!("{}", stats.summary(started.elapsed())),
            _ = &mut stop => {
                let _ = stop_tx.send(true);
                break (&mut task).await;
            }
            _ = until_deadline => {
                let _ = stop_tx.send(true);
                break (&mut task).await;
            }
        }
    };
    println!("{}", stats.summary(started.elapsed()));
    result.context("load task panicked")??;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    seqnet_rollup_client::telemetry::init_logs(
        Some(&cli.log),
        "info",
        seqnet_rollup_client::telemetry::LogFormat::Text,
    )
    .context("--log")?;

    match cli.command {
        Command::Init {
            dir,
            manifest: Some(manifest),
            force,
            ..
        } => scenario_cli::init(&dir.dir, &manifest, force)?,
        Command::Init {
            dir, init, force, ..
        } => {
            let cometbft = seqnet_testnet::binaries::locate_cometbft()?;
            let manifest = seqnet_testnet::init::init(&dir.dir, &init.options(force), &cometbft)?;
            if let Some(p) = &manifest.proving {
                println!(
                    "demo rollups proven with the reference circuit, k = {} (DEVELOPMENT setup, keys in {}), proof window {}",
                    p.circuit_size,
                    dir.dir.join(&p.keys_dir).display(),
                    p.proof_window
                );
                for prover in &manifest.provers {
                    println!(
                        "  prover {}: key {}, metrics {}",
                        prover.index,
                        prover.key,
                        prover.metrics_url()
                    );
                }
            }
            println!(
                "generated {} validators of chain {} in {}",
                manifest.nodes.len(),
                manifest.chain_id,
                dir.dir.display()
            );
            for node in &manifest.nodes {
                println!(
                    "  {}: rpc {} grpc {} (p2p {}, abci {}, metrics {})",
                    node.moniker,
                    node.rpc_url(),
                    node.grpc_url(),
                    node.ports.p2p,
                    node.ports.abci,
                    node.ports.metrics
                );
            }
            for key in &manifest.keys {
                println!(
                    "  key {}: {} ({})",
                    key.name,
                    key.address,
                    key.path.display()
                );
            }
        }
        Command::Up {
            dir,
            detach,
            timeout,
            provers,
        } => up(&dir.dir, detach, timeout, provers).await?,
        Command::Prover { dir, action, index } => {
            let mut net = Testnet::open(&dir.dir)?;
            match action {
                ProverAction::Start => {
                    let mut net = net.with_binaries(Binaries::locate()?);
                    net.detach();
                    net.register_provers(Duration::from_secs(60)).await?;
                    net.start_prover(index)?;
                    println!("prover {index} started");
                }
                ProverAction::Stop => {
                    net.stop_prover(index)?;
                    net.detach();
                    println!("prover {index} stopped");
                }
                ProverAction::Kill => {
                    net.kill_prover(index)?;
                    net.detach();
                    println!("prover {index} killed");
                }
            }
        }
        Command::Down { dir } => {
            let mut net = Testnet::open(&dir.dir)?;
            let running = (0..net.node_count()).filter(|&i| net.is_running(i)).count();
            net.stop();
            println!(
                "stopped ({running} of {} nodes were fully running)",
                net.node_count()
            );
        }
        Command::Status { dir } => {
            let manifest = Manifest::load(&dir.dir)?;
            println!(
                "{}",
                status::render(&status::collect(&dir.dir, &manifest).await)
            );
        }
        Command::Kill { dir, node } => {
            let mut net = Testnet::open(&dir.dir)?;
            net.kill_node(node)?;
            net.detach();
            println!("node{node} killed");
        }
        Command::Start { dir, node, timeout } => start_one(&dir.dir, node, timeout).await?,
        Command::Join {
            dir,
            state_sync,
            timeout,
        } => {
            let mut net = Testnet::open(&dir.dir)?.with_binaries(Binaries::locate()?);
            net.detach();
            let timeout = Duration::from_secs(timeout);
            let compose = !net.is_running(0)
                && dir
                    .dir
                    .join(seqnet_testnet::compose::COMPOSE_FILE)
                    .is_file();
            let (index, took) = if compose {
                // Node 0 runs in a container: the new node gets one too.
                let (index, started) =
                    seqnet_testnet::compose::start_joining(&dir.dir, state_sync).await?;
                let manifest = Manifest::load(&dir.dir)?;
                let took =
                    seqnet_testnet::compose::wait_caught_up(&manifest, index, started, timeout)
                        .await?;
                (index, took)
            } else {
                net.join(state_sync, timeout).await?
            };
            println!(
                "node{index} joined by {} and caught up in {:.1} s",
                if state_sync {
                    "state sync"
                } else {
                    "block sync"
                },
                took.as_secs_f64()
            );
        }
        Command::Fault { dir, node, censor } => {
            let manifest = Manifest::load(&dir.dir)?;
            seqnet_testnet::init::set_fault_censor(&dir.dir, manifest.node(node)?, &censor)?;
            if censor.is_empty() {
                println!("node{node}: censorship cleared");
            } else {
                println!("node{node}: censors {}", censor.join(", "));
            }
            println!(
                "restart it to apply: seqnet-testnet kill --dir {d} --node {node} && seqnet-testnet start --dir {d} --node {node}",
                d = dir.dir.display()
            );
        }
        Command::Bench(args) => bench_cli::run(args).await?,
        Command::BenchProving(args) => bench_cli::run_proving(args).await?,
        Command::Check(args) => {
            if !check_cli::run(args).await? {
                anyhow::bail!("invariant breached (see the table above)");
            }
        }
        Command::Compose(args) => compose_cli::run(args).await?,
        Command::Scenario(args) => {
            if !scenario_cli::run(args).await? {
                anyhow::bail!("scenario failed (see the tables above)");
            }
        }
        Command::Load {
            dir,
            load:
                LoadArgs {
                    rate,
                    duration,
                    payload_bytes,
                },
            compose,
        } => {
            let manifest = Manifest::load(&dir.dir)?;
            let grpc_hosts = compose.then(|| {
                (0..manifest.nodes.len())
                    .map(|i| seqnet_testnet::compose::node_ip(&manifest, i))
                    .collect()
            });
            let opts = LoadOptions {
                rate,
                payload_bytes,
                grpc_hosts,
            };
            load_only(&dir.dir, &manifest, opts, duration).await?;
        }
        Command::Demo {
            dir,
            init,
            load:
                LoadArgs {
                    rate,
                    duration,
                    payload_bytes,
                },
            timeout,
        } => {
            let opts = LoadOptions {
                rate,
                payload_bytes,
                grpc_hosts: None,
            };
            demo(&dir.dir, &init, opts, duration, timeout).await?;
        }
    }
    Ok(())
}
