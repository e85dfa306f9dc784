//! A double-signing validator, end to end: four validators under a trickle
//! of rollup data; a 5th process signs with node 3's consensus key (two
//! nodes with one key, as CometBFT's own end-to-end tests make a
//! double-signer; its proposals leave out the data, so the two propose
//! different blocks at node 3's turn). The other validators see
//! conflicting votes and commit duplicate-vote evidence; the app slashes
//! node 3's stake, tombstones it and takes it out of the set, and the chain
//! keeps committing with the other three.

mod common;

use std::time::{Duration, Instant};

use seqnet_testnet::InitOptions;

const TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_signer_is_slashed_tombstoned_and_removed() -> anyhow::Result<()> {
    let opts = InitOptions {
        validators: 4,
        rollups: 1,
        chain_id: "seqnet-double-sign".into(),
        ..InitOptions::default()
    };
    let (_guard, mut net) = common::start_testnet("seqnet-double-sign-", 1, opts, TIMEOUT).await?;
    net.wait_node_height(0, 5, TIMEOUT).await?;

    // Rollup 1 data in every block, so the twin's proposals (which leave
    // it out) differ from the validator's own.
    let (mut signer, mut client) = common::rollup_signer(&net).await?;
    let trickle = tokio::spawn(async move {
        for item in 0u64.. {
            let tx = signer.rollup_data(1, format!("item {item}").into_bytes(), None);
            if client.submit(&tx).await.is_err() {
                // A refused nonce: start again from the chain's.
                let _ = signer.sync_nonce(&mut client).await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });

    let victim = 3;
    let address = net.consensus_address(victim)?;
    let twin = net.start_double_signer(victim).await?;
    let started = Instant::now();
    let record = loop {
        let record = net
            .validator_record(0, victim)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no record of node{victim}"))?;
        if record.tombstoned {
            break record;
        }
        anyhow::ensure!(
            started.elapsed() < TIMEOUT,
            "node{victim} and its twin node{twin} were not caught double-signing in {} s",
            TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let height = net.rpc(0)?.status().await?.height;
    eprintln!(
        "node{victim} tombstoned by height {height}, {:.1} s after its twin started: stake {} (slashed {})",
        started.elapsed().as_secs_f64(),
        record.stake,
        record.slashed
    );
    anyhow::ensure!(
        record.slashed == 10_000 * 500 / 10_000,
        "slashed {}",
        record.slashed
    );
    let (out_at, set) = net
        .wait_for_validators(0, "the double-signer to leave the set", TIMEOUT, |set| {
            !set.iter().any(|(a, _)| *a == address)
        })
        .await?;
    eprintln!("out of the set at {out_at}: {set:?}");
    anyhow::ensure!(set.len() == 3, "set {set:?}");
    // The evidence is on chain: some block carries it.
    let evidence_found = {
        let mut found = None;
        for h in (2..=height).rev() {
            let block = net
                .rpc(0)?
                .call("block", serde_json::json!({ "height": h.to_string() }))
                .await?;
            let evidence = block
                .pointer("/block/evidence/evidence")
                .and_then(serde_json::Value::as_array)
                .map_or(0, Vec::len);
            if evidence > 0 {
                found = Some(h);
                break;
            }
        }
        found
    };
    let evidence_at = evidence_found.ok_or_else(|| anyhow::anyhow!("no block carries evidence"))?;
    eprintln!("duplicate-vote evidence committed in block {evidence_at}");
    // The chain goes on without it (and without the twin).
    trickle.abort();
    net.stop_node(twin)?;
    net.wait_node_height(0, out_at + 5, TIMEOUT).await?;
    net.stop();
    Ok(())
}
