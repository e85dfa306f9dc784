//! Does forced inclusion cost throughput when nobody censors? The same load
//! on the same 4-validator network layout with vote extensions (and so
//! inclusion lists and the injected extended commit) off and on, alternating
//! to spread the machine's noise; prints the figures and the ratio. A
//! measurement, not an assertion: this machine is shared.

use std::time::{Duration, Instant};

use seqnet_rollup_client::{keys, RollupClient, TxSigner};
use seqnet_testnet::{Binaries, InitOptions, Testnet};

const ROLLUPS: u64 = 3;
const TXS_PER_ROLLUP: u64 = 600;
const TIMEOUT: Duration = Duration::from_secs(300);

struct Run {
    seconds: f64,
    blocks: u64,
}

async fn run_load(vote_extensions_enable_height: u64) -> anyhow::Result<Run> {
    let dir = tempfile::Builder::new()
        .prefix("seqnet-throughput-")
        .tempdir()?;
    let opts = InitOptions {
        validators: 4,
        rollups: ROLLUPS,
        base_port: seqnet_testnet::pick_free_base_port(4)?,
        chain_id: "seqnet-throughput".into(),
        vote_extensions_enable_height,
        ..InitOptions::default()
    };
    let mut net = Testnet::init(&dir.path().join("net"), &opts, Binaries::locate()?)?;
    net.start(TIMEOUT).await?;
    let chain_id = net.manifest().chain_id.clone();
    let mut client = RollupClient::new(vec![net.grpc_url(0)?])?;
    let start_height = client.status().await?.height;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for rollup in 1..=ROLLUPS {
        let key = keys::load(
            &net.key_path(&format!("rollup-{rollup}"))
                .ok_or_else(|| anyhow::anyhow!("no key"))?,
        )?;
        let url = net.grpc_url(rollup as usize % 4)?;
        let chain_id = chain_id.clone();
        tasks.spawn(async move {
            let mut client = RollupClient::new(vec![url])?;
            let mut signer = TxSigner::new(key, chain_id);
            signer.sync_nonce(&mut client).await?;
            for n in 0..TXS_PER_ROLLUP {
                let tx =
                    signer.rollup_data(rollup, seqnet_testnet::load::payload(rollup, n, 256), None);
                client.submit(&tx).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    loop {
        let status = client.status().await?;
        let items: u64 = status
            .rollups
            .iter()
            .filter_map(|r| r.stats)
            .map(|s| s.items)
            .sum();
        if items >= ROLLUPS * TXS_PER_ROLLUP {
            let run = Run {
                seconds: started.elapsed().as_secs_f64(),
                blocks: status.height - start_height,
            };
            net.stop();
            return Ok(run);
        }
        anyhow::ensure!(
            started.elapsed() < TIMEOUT,
            "load not ordered within {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_inclusion_costs_no_throughput_without_censors() -> anyhow::Result<()> {
    let total = (ROLLUPS * TXS_PER_ROLLUP) as f64;
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 0..2 {
        for enabled in [false, true] {
            let run = run_load(u64::from(enabled)).await?;
            eprintln!(
                "round {round} vote extensions {:>3}: {total} txs in {:.2} s over {} blocks = {:.1} tx/s, {:.2} blocks/s",
                if enabled { "on" } else { "off" },
                run.seconds,
                run.blocks,
                total / run.seconds,
                run.blocks as f64 / run.seconds
            );
            if enabled {
                on.push(run)
            } else {
                off.push(run)
            }
        }
    }
    let rate =
        |runs: &[Run]| runs.iter().map(|r| total / r.seconds).sum::<f64>() / runs.len() as f64;
    let (rate_off, rate_on) = (rate(&off), rate(&on));
    eprintln!(
        "throughput: off {rate_off:.1} tx/s, on {rate_on:.1} tx/s, ratio on/off {:.2}",
        rate_on / rate_off
    );
    Ok(())
}
