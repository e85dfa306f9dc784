//! Joining a running network, end to end: 4 validators taking a snapshot
//! every 10 blocks (`seqnet-testnet`'s default) under a trickle of rollup
//! data; a 5th node joins by CometBFT state sync (trusting node 0's current
//! header, light blocks from nodes 0 and 1), restores the latest snapshot
//! through the app's ABCI calls and block-syncs the rest; a 6th joins by
//! block sync from genesis. Both catch up and keep executing blocks to the
//! validators' app hashes (CometBFT halts a node whose app hash differs),
//! the state-synced node serves the same state over gRPC, and the
//! invariant checker passes over all six nodes. The times are printed; at
//! these few heights block sync is still the faster one.

mod common;

use std::time::{Duration, Instant};

use seqnet_rollup_client::RollupClient;
use seqnet_testnet::InitOptions;

const TIMEOUT: Duration = Duration::from_secs(240);
/// Heights before the joins: two snapshots (every 10 blocks) behind.
const JOIN_AT: u64 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_by_state_sync_and_by_block_sync() -> anyhow::Result<()> {
    let opts = InitOptions {
        validators: 4,
        rollups: 1,
        chain_id: "seqnet-join".into(),
        ..InitOptions::default()
    };
    let (_guard, mut net) = common::start_testnet("seqnet-join-", 2, opts, TIMEOUT).await?;

    // Rollup data in most blocks, so the snapshots hold more than genesis.
    let (mut signer, mut client) = common::rollup_signer(&net).await?;
    let started = Instant::now();
    for item in 0u64.. {
        let tx = signer.rollup_data(1, format!("item {item}").into_bytes(), None);
        client.submit(&tx).await?;
        let height = net.rpc(0)?.status().await?.height;
        if height >= JOIN_AT {
            break;
        }
        anyhow::ensure!(started.elapsed() < TIMEOUT, "no height {JOIN_AT}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (synced, state_sync_took) = net.join(true, TIMEOUT).await?;
    let log =
        std::fs::read_to_string(net.dir().join(&net.node(synced)?.dir).join("sequencer.log"))?;
    let restored = log
        .lines()
        .find(|l| l.contains("snapshot restored"))
        .ok_or_else(|| anyhow::anyhow!("node{synced} restored no snapshot:\n{log}"))?;
    eprintln!("{restored}");
    let (replayed, block_sync_took) = net.join(false, TIMEOUT).await?;

    // Both keep up: blocks well past the joins execute to the same app
    // hashes on every node.
    let tip = net.rpc(0)?.status().await?.height;
    net.wait_for_height(tip + 5, TIMEOUT).await?;
    let mut hashes = Vec::new();
    for node in [0, synced, replayed] {
        let commit = net
            .rpc(node)?
            .call(
                "commit",
                serde_json::json!({ "height": (tip + 3).to_string() }),
            )
            .await?;
        hashes.push(
            commit
                .pointer("/signed_header/header/app_hash")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
    }
    anyhow::ensure!(
        hashes.iter().all(|h| !h.is_empty() && *h == hashes[0]),
        "app hashes at {}: {hashes:?}",
        tip + 3
    );
    // The restored state answers like a validator's.
    let at_synced = RollupClient::new(vec![net.grpc_url(synced)?])?
        .account(signer.address())
        .await?;
    let at_validator = client.account(signer.address()).await?;
    anyhow::ensure!(
        at_synced == at_validator,
        "rollup-1's account: {at_synced:?} on node{synced}, {at_validator:?} on node 0"
    );
    // The invariant checker sees six nodes, the restored one from its
    // snapshot on, and every check holds.
    let report = seqnet_testnet::check::check(net.dir(), net.manifest(), None).await;
    for verdict in &report.verdicts {
        eprintln!(
            "check {}: {:?} {}",
            verdict.name, verdict.passed, verdict.detail
        );
    }
    anyhow::ensure!(report.passed(), "the checker found a breach");
    eprintln!(
        "joined at height {JOIN_AT}+: state sync {:.1} s (CometBFT discovers snapshots for 5 s), block sync {:.1} s",
        state_sync_took.as_secs_f64(),
        block_sync_took.as_secs_f64()
    );
    net.stop();
    Ok(())
}
