//! Aggregation end to end: a real 4-validator CometBFT network with
//! `params.aggregation_srs` set (a DEVELOPMENT SRS from `seqnet-prover srs
//! generate-dev`), one `seqnet-prover aggregate` process and 2 provers
//! started with `--aggregator` (via `SEQNET_AGGREGATOR`), 2 rollups with the
//! reference verifying key, under a steady load.
//!
//! Asserts: blocks carry `SubmitAggregate` transactions (signed by the
//! aggregator's account; a prover whose hand-over is refused falls back to
//! its own `SubmitProof`, see "Known edge" in docs/aggregation.md); the
//! proven height follows the ordered height
//! within the proof window; the provers are credited (`proven` totals
//! cover every aggregated entry) and the aggregator earned its fee.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seqnet_proto::{Action, Address, Transaction};
use seqnet_rollup_client::RollupClient;
use seqnet_testnet::load::{self, LoadOptions, LoadStats};
use seqnet_testnet::{Binaries, CometRpc, InitOptions, Testnet};

const PROOF_WINDOW: u64 = 20;
const TIMEOUT: Duration = Duration::from_secs(240);

type Result<T> = anyhow::Result<T>;

/// Kills the aggregator process when the test ends.
struct Aggregator(Child);

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn patch_genesis(net: &Testnet, key: &str, value: serde_json::Value) -> Result<()> {
    for node in &net.manifest().nodes {
        let path = net
            .dir()
            .join(&node.cometbft_home)
            .join("config/genesis.json");
        let mut genesis: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        genesis["app_state"]["params"][key] = value.clone();
        std::fs::write(&path, serde_json::to_vec_pretty(&genesis)?)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_carries_the_proofs_and_finality_advances() -> Result<()> {
    let dir = tempfile::TempDir::with_prefix("seqnet-aggregator-")?;
    let (_guard, root) = if std::env::var_os("SEQNET_KEEP_TESTNET").is_some() {
        let path = dir.keep();
        eprintln!("keeping the testnet in {}", path.display());
        (None, path)
    } else {
        let path = dir.path().to_path_buf();
        (Some(dir), path)
    };
    let opts = InitOptions {
        validators: 4,
        rollups: 2,
        users: 1,
        provers: 2,
        base_port: seqnet_testnet::pick_free_base_port(4)?,
        chain_id: "seqnet-aggregator".into(),
        timeout_commit: "500ms".into(),
        proof_window: PROOF_WINDOW,
        epoch_length: 5,
        max_unproven_blocks: Some(8),
        ..InitOptions::default()
    };
    let binaries = Binaries::locate()?;
    let prover_bin = binaries.prover()?;
    let mut net = Testnet::init(&root.join("net"), &opts, binaries)?;

    // A development SRS; its verifier part enables aggregation on the chain.
    let srs_path = net.dir().join("aggregation.srs");
    let status = Command::new(&prover_bin)
        .args(["srs", "generate-dev", "--max-proofs", "8", "--seed", "1"])
        .arg("--out")
        .arg(&srs_path)
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "srs generate-dev failed");
    let out = Command::new(&prover_bin)
        .args(["srs", "verifier-key", "--srs"])
        .arg(&srs_path)
        .stderr(Stdio::null())
        .output()?;
    anyhow::ensure!(out.status.success(), "srs verifier-key failed");
    let verifier_hex = String::from_utf8(out.stdout)?.trim().to_string();
    patch_genesis(&net, "aggregation_srs", serde_json::json!(verifier_hex))?;

    let started = Instant::now();
    net.start(TIMEOUT).await?;
    let urls: Vec<String> = (0..4)
        .map(|i| net.grpc_url(i))
        .collect::<std::result::Result<_, _>>()?;
    let mut client = RollupClient::new(urls.clone())?;

    // The aggregator: user-1's account signs and pays for the aggregates.
    let key_path = std::path::absolute(net.key_path("user-1").expect("user-1 key"))?;
    let aggregator_address = {
        let key = seqnet_rollup_client::keys::load(&key_path)?;
        Address::from(&key.verifying_key())
    };
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.to_string()
    };
    let log = std::fs::File::create(net.dir().join("aggregator.log"))?;
    let mut command = Command::new(&prover_bin);
    command
        .arg("aggregate")
        .arg("--key")
        .arg(&key_path)
        .arg("--srs")
        .arg(&srs_path)
        .args([
            "--listen",
            &listen,
            "--max-proofs",
            "2",
            "--max-wait-ms",
            "1500",
        ])
        .args(["--msm", "cpu"])
        .env_remove("SEQNET_NODE")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    for url in &urls {
        command.arg("--node").arg(url);
    }
    let _aggregator = Aggregator(command.spawn()?);
    let balance_before = client.account(aggregator_address).await?.balance;

    // The provers hand their proofs to it (the variable is inherited).
    std::env::set_var("SEQNET_AGGREGATOR", &listen);
    net.register_provers(TIMEOUT).await?;
    net.start_provers()?;
    net.wait_for_active_provers(2, TIMEOUT).await?;
    eprintln!(
        "network, aggregator, 2 provers after {:.0?} (dir {})",
        started.elapsed(),
        net.dir().display()
    );

    let stats = Arc::new(LoadStats::default());
    let (stop_load, stop_rx) = tokio::sync::watch::channel(false);
    let load_task = {
        let dir = net.dir().to_path_buf();
        let manifest = net.manifest().clone();
        let stats = stats.clone();
        let opts = LoadOptions {
            rate: 2.0,
            payload_bytes: 128,
            grpc_hosts: None,
        };
        tokio::spawn(async move { load::run(&dir, &manifest, &opts, stats, stop_rx).await })
    };

    // 20 blocks under load; finality follows within the window.
    let first = client.finality(0).await?;
    let target = first.ordered_height + 20;
    let mut max_lag = 0;
    let deadline = Instant::now() + TIMEOUT;
    let last = loop {
        let f = client.finality(0).await?;
        max_lag = max_lag.max(f.ordered_height.saturating_sub(f.proven_height));
        if f.ordered_height >= target {
            break f;
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out: {f:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = stop_load.send(true);
    let _ = load_task.await;
    // Let the last proofs land.
    let end = loop {
        let f = client.finality(0).await?;
        if f.proven_height + 3 >= last.ordered_height || Instant::now() > deadline {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "ordered {} proven {} (max lag {max_lag}), load sent {}",
        end.ordered_height,
        end.proven_height,
        stats.summary(started.elapsed())
    );
    assert!(
        end.proven_height > first.ordered_height,
        "proven height did not advance: {first:?} -> {end:?}"
    );
    assert!(max_lag <= PROOF_WINDOW, "lag {max_lag} beyond the window");

    // What the blocks carry.
    let rpc_url = net.rpc_url(0)?;
    let rpc = CometRpc::new(rpc_url.trim_start_matches("http://"));
    let (mut aggregates, mut entries, mut single) = (0u64, 0u64, 0u64);
    for height in 1..=end.ordered_height {
        for bytes in rpc.block_txs(height).await? {
            let Ok(tx) = Transaction::decode(&bytes, 1 << 22, 64) else {
                continue;
            };
            for action in &tx.body.actions {
                match action {
                    Action::SubmitAggregate { entries: e, .. } => {
                        assert_eq!(tx.signer, aggregator_address);
                        aggregates += 1;
                        entries += e.len() as u64;
                    }
                    Action::SubmitProof { .. } => single += 1,
                    _ => {}
                }
            }
        }
    }
    eprintln!("blocks carry {aggregates} aggregates ({entries} proofs), {single} SubmitProof");
    assert!(aggregates >= 1, "no SubmitAggregate in any block");

    // The provers are credited for the aggregated jobs; the aggregator
    // earned its fee (net of what it paid).
    let mut proven = 0;
    for index in 0..2 {
        let info = client.prover(net.prover_address(index)?).await?;
        proven += info.prover.map_or(0, |p| p.proven);
    }
    assert!(
        proven >= entries + single,
        "provers credited {proven}, blocks carried {entries} + {single}"
    );
    let balance_after = client.account(aggregator_address).await?.balance;
    eprintln!("aggregator balance {balance_before} -> {balance_after}");
    net.stop_provers();
    Ok(())
}
