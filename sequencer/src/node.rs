//! Wiring of one node: RocksDB, the ABCI server, gRPC (RollupService,
//! ProverService, health, reflection), metrics, and shutdown on SIGTERM /
//! Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use seqnet_abci::{SeqnetApp, Store};
use seqnet_proto::pb::prover_service_server::ProverServiceServer;
use seqnet_proto::pb::rollup_service_server::RollupServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::abci_server::AbciServer;
use crate::config::Config;
use crate::grpc::RollupServer;
use crate::metrics::{Metrics, NodeObserver};
use crate::prover_service::{Challenges, ProverServer, CHALLENGE_TTL, MAX_CHALLENGES};
use seqnet_rollup_client::cometbft::CometRpc;

pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.storage.path)
        .with_context(|| format!("creating {}", config.storage.path.display()))?;
    let store = Arc::new(Store::open(&config.storage.path)?);
    let metrics = Arc::new(Metrics::new()?);
    let (committed_tx, committed_rx) = watch::channel(0u64);
    let observer = Arc::new(NodeObserver {
        metrics: (*metrics).clone(),
        committed: committed_tx,
    });
    let censor = config.fault.censor()?.map(|censor| {
        tracing::warn!(
            rollups = ?censor.rollups,
            signers = ?censor.signers,
            "FAULT INJECTION: this node censors matching transactions in its proposals (testnets only)"
        );
        let filter: Box<seqnet_abci::ProposalFilter> = Box::new(move |tx| {
            seqnet_abci::matches_censor(tx, &censor.signers, &censor.rollups)
        });
        filter
    });
    let app = SeqnetApp::with_censor(store, observer.clone(), censor)?;
    app.set_mempool_limit(config.mempool.max_txs);
    app.set_block_retention(config.storage.block_retention);
    app.set_snapshots(
        config.storage.path.join("snapshots"),
        config.storage.snapshot_interval,
        config.storage.snapshot_keep_recent,
    );
    let reader = app.reader();
    let last = reader.last_height()?;
    observer.committed.send_replace(last);
    metrics.height.set(i64::try_from(last).unwrap_or(i64::MAX));
    tracing::info!(height = last, app_hash = %hex::encode(reader.last_app_hash()?), storage = %config.storage.path.display(), "state opened");

    // ABCI: one blocking thread per CometBFT connection (see abci_server).
    let abci_addr = config.abci.addr("abci.listen")?;
    let server = AbciServer::bind(
        abci_addr,
        crate::timed::TimedApp {
            app: app.clone(),
            metrics: (*metrics).clone(),
        },
    )
    .map_err(|e| anyhow::anyhow!("binding ABCI on {abci_addr}: {e}"))?;
    tracing::info!(addr = %abci_addr, "ABCI listening");
    std::thread::Builder::new()
        .name("abci-accept".into())
        .spawn(move || {
            if let Err(error) = server.listen() {
                tracing::error!(%error, "ABCI server stopped");
            }
        })?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let metrics_addr = config.metrics.addr("metrics.listen")?;
    let metrics_listener = TcpListener::bind(metrics_addr)
        .await
        .with_context(|| format!("binding metrics on {metrics_addr}"))?;
    tracing::info!(addr = %metrics_addr, "metrics listening");
    let render = metrics.clone();
    tokio::spawn(seqnet_rollup_client::telemetry::serve_metrics(
        metrics_listener,
        Arc::new(move || render.render()),
        shutdown_rx.clone(),
    ));

    let rpc = CometRpc::parse(&config.cometbft.rpc)?;
    let prover_service = ProverServer {
        app: app.clone(),
        reader: reader.clone(),
        rpc: rpc.clone(),
        metrics: metrics.clone(),
        committed: committed_rx.clone(),
        challenges: Arc::new(Challenges::new(CHALLENGE_TTL, MAX_CHALLENGES)),
    };
    let rollup_service = RollupServer {
        app,
        reader,
        rpc,
        metrics,
        committed: committed_rx,
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<RollupServiceServer<RollupServer>>()
        .await;
    health_reporter
        .set_serving::<ProverServiceServer<ProverServer>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(seqnet_proto::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let grpc_addr = config.grpc.addr("grpc.listen")?;
    let grpc_listener = TcpListener::bind(grpc_addr)
        .await
        .with_context(|| format!("binding gRPC on {grpc_addr}"))?;
    tracing::info!(addr = %grpc_addr, "gRPC listening");
    let mut grpc_shutdown = shutdown_rx.clone();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(RollupServiceServer::new(rollup_service))
            .add_service(ProverServiceServer::new(prover_service))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
                async move {
                    let _ = grpc_shutdown.changed().await;
                },
            ),
    );

    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(std::time::Duration::from_secs(5), grpc).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(%error, "gRPC server ended with an error"),
        Ok(Err(error)) => tracing::warn!(%error, "gRPC task failed"),
        Err(_) => tracing::warn!("gRPC did not stop within 5 s"),
    }
    // Every committed block is already synced to disk; the ABCI thread dies
    // with the process and CometBFT replays anything it had not acknowledged.
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result?,
    }
    Ok(())
}
