//! Forced inclusion end to end: a real 4-validator CometBFT network with one
//! (then two, holding half the power) validators censoring a rollup. Every
//! forced transaction, from on-chain requests and from vote-extension
//! inclusion lists, must be in a block within its window, and the censors'
//! proposals past a deadline must be rejected (seen in the metric).
//!
//! The rollup under test registers an inclusion window of 1 block, and the
//! genesis lists every mempool transaction in vote extensions at once
//! (`inclusion_wait_blocks = 0`), so both paths are exercised hard.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use seqnet_proto::pb;
use seqnet_proto::tx::RollupSettings;
use seqnet_rollup_client::{keys, ClientError, RollupClient, TxSigner};
use seqnet_testnet::{scrape, Binaries, InitOptions, Testnet};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CENSORED_ROLLUP: u64 = 9;
const WINDOW: u64 = 1;
const PER_PATH: usize = 25;
const TIMEOUT: Duration = Duration::from_secs(300);

/// Sets `params.<key> = value` in every node's genesis before the first start.
fn patch_genesis(net: &Testnet, key: &str, value: u64) -> anyhow::Result<()> {
    for node in &net.manifest().nodes {
        let path = net
            .dir()
            .join(&node.cometbft_home)
            .join("config/genesis.json");
        let path = if path.exists() {
            path
        } else {
            node.cometbft_home.join("config/genesis.json")
        };
        let mut genesis: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        genesis["app_state"]["params"][key] = serde_json::json!(value);
        std::fs::write(&path, serde_json::to_vec_pretty(&genesis)?)?;
    }
    Ok(())
}

async fn metric(net: &Testnet, node: usize, series: &str) -> anyhow::Result<f64> {
    let port = net.node(node)?.ports.metrics;
    Ok(scrape::sum(&scrape::fetch(port).await?, series).unwrap_or(0.0))
}

async fn signer(net: &Testnet, client: &mut RollupClient, name: &str) -> anyhow::Result<TxSigner> {
    let path = net
        .key_path(name)
        .ok_or_else(|| anyhow::anyhow!("no key {name}"))?;
    let mut signer = TxSigner::new(keys::load(&path)?, net.manifest().chain_id.clone());
    signer.sync_nonce(client).await?;
    Ok(signer)
}

async fn height(client: &mut RollupClient) -> anyhow::Result<u64> {
    Ok(client.status().await?.height)
}

/// Submits with a few retries for a busy node; rejections fail the test.
async fn submit(
    client: &mut RollupClient,
    tx: &seqnet_proto::Transaction,
    forced: bool,
) -> anyhow::Result<()> {
    let result = if forced {
        client.force_include(tx).await
    } else {
        client.submit(tx).await
    };
    match result {
        Ok(_) => Ok(()),
        Err(ClientError::Rejected { code, message }) => {
            anyhow::bail!("rejected {code:?}: {message}")
        }
        Err(e) => Err(e.into()),
    }
}

async fn scenario(censors: usize) -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::Builder::new()
        .prefix("seqnet-forced-")
        .tempdir()?;
    let opts = InitOptions {
        validators: 4,
        rollups: 1,
        users: 3,
        base_port: seqnet_testnet::pick_free_base_port(4)?,
        chain_id: "seqnet-forced".into(),
        ..InitOptions::default()
    };
    let mut net = Testnet::init(&dir.path().join("net"), &opts, Binaries::locate()?)?;
    patch_genesis(&net, "inclusion_wait_blocks", 0)?;
    let rule = vec![format!("rollup:{CENSORED_ROLLUP}")];
    for node in 0..censors {
        net.set_censor(node, &rule)?;
    }
    net.start(TIMEOUT).await?;
    let honest: Vec<usize> = (censors..4).collect();
    let honest_url = net.grpc_url(3)?;
    let mut client = RollupClient::new(vec![honest_url.clone()])?;

    // The censored rollup, with a 1-block inclusion window.
    let mut owner = signer(&net, &mut client, "user-3").await?;
    let settings = RollupSettings {
        verifying_key: vec![],
        proof_window: 20,
        inclusion_window: WINDOW,
        span_blocks: 0,
    };
    client
        .submit(&owner.register_rollup(CENSORED_ROLLUP, "censored".into(), settings, None))
        .await?;
    let start = Instant::now();
    while client.rollup(CENSORED_ROLLUP).await.is_err() {
        anyhow::ensure!(
            start.elapsed() < TIMEOUT,
            "rollup {CENSORED_ROLLUP} never registered"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Path 1: on-chain requests. user-1 pays, user-2 signs the forced txs.
    // Path 2: user-3 submits through a censoring node; inclusion lists force them.
    let mut payer = signer(&net, &mut client, "user-1").await?;
    let mut author = signer(&net, &mut client, "user-2").await?;
    let mut direct = signer(&net, &mut client, "user-3").await?;
    // Node 0 is a censor whenever there is one.
    let mut censor_client = RollupClient::new(vec![net.grpc_url(0)?])?;
    let mut hashes: Vec<(&'static str, [u8; 32], u64)> = Vec::new();
    for k in 0..PER_PATH {
        let inner = author.rollup_data(CENSORED_ROLLUP, format!("forced {k}").into_bytes(), None);
        let wrapper = payer.force_include(inner.clone(), None);
        let at = height(&mut client).await?;
        submit(&mut client, &wrapper, true).await?;
        hashes.push(("request", inner.hash(), at));
        let tx = direct.rollup_data(CENSORED_ROLLUP, format!("direct {k}").into_bytes(), None);
        let at = height(&mut censor_client).await?;
        submit(&mut censor_client, &tx, false).await?;
        hashes.push(("inclusion_list", tx.hash(), at));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // Wait until every node has all 50 transactions of the censored rollup.
    let want = 2 * PER_PATH as u64;
    let start = Instant::now();
    loop {
        net.check_alive("waiting for forced transactions")?;
        let mut done = true;
        for node in 0..4 {
            let mut c = RollupClient::new(vec![net.grpc_url(node)?])?;
            let items = c
                .rollup(CENSORED_ROLLUP)
                .await
                .ok()
                .and_then(|r| r.stats)
                .map_or(0, |s| s.items);
            done &= items >= want;
        }
        if done {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < TIMEOUT,
            "forced transactions not all included in {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Where each transaction landed: scan the rollup's batches.
    let top = height(&mut client).await?;
    let mut landed: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for h in 1..=top {
        let batch = client.batch(CENSORED_ROLLUP, h).await?;
        for item in batch.items {
            anyhow::ensure!(
                landed.insert(item.tx_hash.clone(), h).is_none(),
                "tx included twice"
            );
        }
    }
    let mut request_delays: Vec<u64> = Vec::new();
    let mut submit_delays: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
    for (path, hash, submitted_at) in &hashes {
        let included = *landed
            .get(hash.as_slice())
            .ok_or_else(|| anyhow::anyhow!("{path} tx {} never included", hex::encode(hash)))?;
        submit_delays
            .entry(path)
            .or_default()
            .push(included.saturating_sub(*submitted_at));
        match client.forced_request(*hash).await {
            Ok(request) => {
                anyhow::ensure!(
                    request.status == pb::ForcedStatus::Included as i32,
                    "request {} status {} ({})",
                    request.id,
                    request.status,
                    request.failure
                );
                anyhow::ensure!(
                    request.included_height == included,
                    "inclusion height disagrees"
                );
                let delay = request.included_height - request.requested_height;
                anyhow::ensure!(
                    delay <= WINDOW,
                    "forced tx {} included {delay} blocks after its request (window {WINDOW})",
                    hex::encode(hash)
                );
                request_delays.push(delay);
                let source = seqnet_proto::pb::ForcedSource::try_from(request.source)
                    .map(|s| s.as_str_name().to_string())
                    .unwrap_or_default();
                *by_source.entry(source).or_default() += 1;
            }
            Err(ClientError::NotFound(_)) if *path == "inclusion_list" => {}
            Err(e) => anyhow::bail!("{path} tx {}: {e}", hex::encode(hash)),
        }
    }
    anyhow::ensure!(
        request_delays.len() >= PER_PATH,
        "every on-chain request is recorded"
    );

    let mut rejected = 0.0;
    for &node in &honest {
        rejected += metric(
            &net,
            node,
            "seqnet_proposals_rejected_total{reason=\"missing_forced\"}",
        )
        .await?;
    }
    let histogram = |delays: &[u64]| {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for d in delays {
            *counts.entry(*d).or_default() += 1;
        }
        counts
    };
    eprintln!("== forced inclusion with {censors} of 4 validators censoring rollup {CENSORED_ROLLUP} (window {WINDOW}) ==");
    eprintln!(
        "forced requests: {} ({by_source:?}); blocks from request to inclusion: {:?}; largest {}",
        request_delays.len(),
        histogram(&request_delays),
        request_delays.iter().max().copied().unwrap_or(0)
    );
    for (path, delays) in &submit_delays {
        eprintln!(
            "{path} path, blocks from submission to inclusion: {:?}; largest {}",
            histogram(delays),
            delays.iter().max().copied().unwrap_or(0)
        );
    }
    eprintln!("proposals rejected for omitting a due forced tx (honest nodes' metric): {rejected}");
    if censors > 0 {
        anyhow::ensure!(rejected > 0.0, "no censoring proposal was rejected");
    } else {
        anyhow::ensure!(rejected == 0.0, "an honest proposal was rejected");
    }
    net.stop();
    Ok(())
}

/// The baseline: nobody censors, so no proposal is ever rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_censors_forced_transactions_go_straight_in() -> anyhow::Result<()> {
    scenario(0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_censor_cannot_delay_forced_transactions_past_their_window() -> anyhow::Result<()> {
    scenario(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn censors_with_half_the_power_cannot_either() -> anyhow::Result<()> {
    scenario(2).await
}
