//! `seqnet-prover run`: the prover daemon's command line (see
//! `seqnet_prover::worker` for what it does).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use seqnet_prover::backend::{CommandBackend, ProvingBackend, ReferenceBackend};
use seqnet_prover::metrics::Metrics;
use seqnet_prover::worker::{
    prover_retry_policy, Worker, WorkerConfig, DEFAULT_HANDOVER_TIMEOUT, DEFAULT_STATUS_INTERVAL,
    DEFAULT_SUBMIT_ATTEMPTS,
};
use seqnet_rollup_client::telemetry::{init_logs as init_logs_with, serve_metrics, LogFormat};
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The prover's key file (`seqnet keys new` format): its account, its
    /// stake and its job-stream identity.
    #[arg(long, env = "SEQNET_PROVER_KEY")]
    key: PathBuf,
    /// Sequencer gRPC endpoint; repeat (or separate with commas) for fail-over.
    #[arg(
        long = "node",
        env = "SEQNET_NODE",
        value_delimiter = ',',
        required = true
    )]
    nodes: Vec<String>,
    /// Reference-circuit back end: directory written by `seqnet-prover setup`
    /// (its proving_key.bin; the size is read from the key).
    #[arg(long, conflicts_with = "command", required_unless_present = "command")]
    keys: Option<PathBuf>,
    /// MSM back end of the reference prover: `auto` (the GPU when the CUDA
    /// driver and NVRTC load and a device answers, else all CPU cores), `cpu`, `cuda`.
    #[arg(long, env = "SEQNET_PROVER_MSM", default_value = "auto")]
    msm: seqnet_prover::msm::MsmChoice,
    /// External back end: a shell command run per job with the job as JSON
    /// (version 2: a span) on stdin, answering {"proof": hex,
    /// "prev_state_root": hex, "new_state_root": hex} on stdout (see the
    /// README; `seqnet-prover prove-job --keys DIR` is one).
    #[arg(long)]
    command: Option<String>,
    /// Seconds an external command may take per job.
    #[arg(long, default_value_t = 300)]
    command_timeout: u64,
    /// Serve Prometheus metrics on ADDR (`/metrics`, `/health`).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Sends of one proof before giving its job up.
    #[arg(long, default_value_t = DEFAULT_SUBMIT_ATTEMPTS)]
    submit_attempts: u32,
    /// Send Unjail automatically once a jail term is over.
    #[arg(long)]
    auto_unjail: bool,
    /// Hand each proof to this aggregator (`host:port`, see `seqnet-prover
    /// aggregate`); submit it alone when the aggregator does not confirm in time.
    #[arg(long, env = "SEQNET_AGGREGATOR", value_name = "ADDR")]
    aggregator: Option<String>,
    /// Milliseconds to wait for the aggregator's confirmation.
    #[arg(long, default_value_t = DEFAULT_HANDOVER_TIMEOUT.as_millis() as u64)]
    handover_timeout_ms: u64,
    /// Log format (filter: RUST_LOG, default info).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// `seqnet-prover aggregate`: the aggregator role.
#[derive(clap::Args)]
pub struct AggregateArgs {
    /// The aggregator's key file: it signs and pays for `SubmitAggregate`
    /// and earns `aggregator_fee_bps`.
    #[arg(long, env = "SEQNET_AGGREGATOR_KEY")]
    key: PathBuf,
    /// Sequencer gRPC endpoint; repeat (or separate with commas) for fail-over.
    #[arg(
        long = "node",
        env = "SEQNET_NODE",
        value_delimiter = ',',
        required = true
    )]
    nodes: Vec<String>,
    /// Aggregation SRS file (`seqnet-prover srs generate-dev`); its verifier
    /// part must be the chain's `aggregation_srs`.
    #[arg(long)]
    srs: PathBuf,
    /// Address the provers hand their proofs to.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: String,
    /// Aggregate a group (one verifying key) once it holds this many proofs.
    #[arg(long, default_value_t = 8)]
    max_proofs: usize,
    /// ... or once its oldest proof has waited this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    max_wait_ms: u64,
    /// MSM back end: `auto`, `cpu`, `cuda`.
    #[arg(long, env = "SEQNET_PROVER_MSM", default_value = "auto")]
    msm: seqnet_prover::msm::MsmChoice,
    /// Serve Prometheus metrics on ADDR (`/metrics`, `/health`).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Sends of one aggregate before its batch is given up.
    #[arg(long, default_value_t = DEFAULT_SUBMIT_ATTEMPTS)]
    submit_attempts: u32,
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Runs the aggregator until SIGINT or SIGTERM.
pub fn aggregate(args: &AggregateArgs) -> Result<()> {
    init_logs(args.log_format)?;
    let key = seqnet_rollup_client::keys::load(&args.key)?;
    let srs = crate::aggregate_cmd::load_srs(&args.srs)?;
    let msm = seqnet_prover::msm::select(args.msm).context("--msm")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let metrics = Metrics::new().context("registering metrics")?;
        let (stop, stopped) = watch::channel(false);
        if let Some(addr) = &args.metrics {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics {addr}: cannot listen"))?;
            let render = metrics.clone();
            tokio::spawn(serve_metrics(
                listener,
                Arc::new(move || render.render()),
                stopped.clone(),
            ));
        }
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        });
        let config = seqnet_prover::aggregator::AggregatorConfig {
            nodes: args.nodes.clone(),
            key,
            srs: Arc::new(srs),
            msm,
            max_proofs: args.max_proofs,
            max_wait: Duration::from_millis(args.max_wait_ms),
            retry: prover_retry_policy(),
            submit_attempts: args.submit_attempts,
        };
        seqnet_prover::aggregator::run(config, listener, metrics, stopped).await?;
        Ok(())
    })
}

fn init_logs(format: LogFormat) -> Result<()> {
    init_logs_with(None, "info", format)?;
    Ok(())
}

/// Runs the prover until SIGINT or SIGTERM.
pub fn main(args: &RunArgs) -> Result<()> {
    init_logs(args.log_format)?;
    let key = seqnet_rollup_client::keys::load(&args.key)?;
    let backend: Arc<dyn ProvingBackend> = match (&args.keys, &args.command) {
        (Some(dir), None) => {
            let msm = seqnet_prover::msm::select(args.msm).context("--msm")?;
            Arc::new(
                ReferenceBackend::load(dir)
                    .with_context(|| {
                        format!("loading the reference back end from {}", dir.display())
                    })?
                    .with_msm(msm),
            )
        }
        (None, Some(command)) => Arc::new(CommandBackend::new(
            command.clone(),
            Duration::from_secs(args.command_timeout.max(1)),
        )),
        _ => bail!("give --keys DIR (reference circuit) or --command CMD (external prover)"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let metrics = Metrics::new().context("registering metrics")?;
        let (stop, stopped) = watch::channel(false);
        if let Some(addr) = &args.metrics {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics {addr}: cannot listen"))?;
            tracing::info!(addr = %addr, "metrics on /metrics");
            let render = metrics.clone();
            tokio::spawn(serve_metrics(
                listener,
                Arc::new(move || render.render()),
                stopped.clone(),
            ));
        }
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        });
        let config = WorkerConfig {
            nodes: args.nodes.clone(),
            key,
            retry: prover_retry_policy(),
            submit_attempts: args.submit_attempts,
            auto_unjail: args.auto_unjail,
            status_interval: DEFAULT_STATUS_INTERVAL,
            aggregator: args.aggregator.clone(),
            handover_timeout: Duration::from_millis(args.handover_timeout_ms.max(1)),
        };
        Worker::new(config, backend, metrics).run(stopped).await?;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
