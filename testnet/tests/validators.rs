//! The validator set of a real network changes by stake and downtime, end
//! to end: four genesis validators; a 5th node joins by state sync after
//! the chain has run a while, stakes (`RegisterValidator`, signed by its
//! CometBFT consensus key for its operator) and becomes a validator at the
//! next epoch boundary, in CometBFT's set and in the app's own view alike,
//! signing blocks whose app hash it computed like node 0.
//! Then one of the original four is stopped: the chain keeps committing, and
//! the stopped validator is jailed for downtime and leaves the set. Another
//! unbonds and leaves it. A forced-inclusion request made after the changes
//! is included within its window, and a light client trusting a header from
//! before every change verifies its way to the tip and checks the app's set
//! (proven under the verified app hash) against the set CometBFT signed
//! with.

mod common;

use std::time::{Duration, Instant};

use prost::Message;
use seqnet_proto::pb;
use seqnet_proto::state_proof::{self, Space};
use seqnet_rollup_client::light::{fetch_block, LightClient, LightError, LightOptions, TrustRoot};
use seqnet_testnet::{CometRpc, InitOptions, Testnet};

const TIMEOUT: Duration = Duration::from_secs(240);
const CHAIN: &str = "seqnet-validators";
/// Heights before the join: two snapshots (every 10 blocks) behind.
const JOIN_AT: u64 = 25;
const STAKE: u64 = 20_000;
/// Jailed past half of it: about 5 s of downtime at testnet block times.
const DOWNTIME_WINDOW: u64 = 20;

/// Waits until the app's view of the set on node `via` equals the set
/// CometBFT reports at the same height (the app's view after block h is the
/// set that signs h); returns it.
async fn agreed_set(net: &mut Testnet, via: usize) -> anyhow::Result<Vec<(String, i64)>> {
    let rpc = net.rpc(via)?;
    let started = Instant::now();
    loop {
        let before = rpc.status().await?.height;
        let app = net.app_validators(via).await?;
        let after = rpc.status().await?.height;
        if before == after {
            let (_, comet) = net.cometbft_validators(via, Some(before)).await?;
            anyhow::ensure!(
                app == comet,
                "at height {before} the app holds {app:?}, CometBFT {comet:?}"
            );
            return Ok(app);
        }
        anyhow::ensure!(started.elapsed() < TIMEOUT, "no quiet height to compare at");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stakes_and_validates_a_stopped_one_is_jailed_another_unbonds() -> anyhow::Result<()>
{
    let opts = InitOptions {
        validators: 4,
        rollups: 1,
        chain_id: CHAIN.into(),
        downtime_window: DOWNTIME_WINDOW,
        ..InitOptions::default()
    };
    let (_guard, mut net) = common::start_testnet("seqnet-validators-", 1, opts, TIMEOUT).await?;
    let genesis_set = agreed_set(&mut net, 0).await?;
    assert_eq!(genesis_set.len(), 4);
    let root_block = fetch_block(&net.rpc(0)?, 2).await?;
    let root = TrustRoot {
        height: 2,
        hash: root_block.hash().to_string(),
    };

    // Run a while, then join a 5th node by state sync.
    net.wait_node_height(0, JOIN_AT, TIMEOUT).await?;
    let (joined, took) = net.join(true, TIMEOUT).await?;
    eprintln!(
        "node{joined} joined by state sync in {:.1} s",
        took.as_secs_f64()
    );

    // It stakes and becomes a validator at the next epoch boundary.
    let staked_at = net.rpc(0)?.status().await?.height;
    net.stake_validator(joined, STAKE, TIMEOUT).await?;
    let new_address = net.consensus_address(joined)?;
    let (height, set) = net
        .wait_for_validators(0, "the new node in the set", TIMEOUT, |set| {
            set.iter().any(|(a, p)| *a == new_address && *p == 20)
        })
        .await?;
    eprintln!("node{joined} staked after height {staked_at}, validates at {height}: {set:?}");
    anyhow::ensure!(
        height <= staked_at + 10 + 10,
        "joined the set only at {height}"
    );
    let set = agreed_set(&mut net, 0).await?;
    anyhow::ensure!(set.len() == 5, "set {set:?}");
    anyhow::ensure!(
        agreed_set(&mut net, joined).await? == set,
        "node{joined}'s view"
    );
    // The new validator signs: its votes are in the commits.
    let tip = net.rpc(0)?.status().await?.height;
    net.wait_node_height(0, tip + 3, TIMEOUT).await?;
    let commit = net
        .rpc(0)?
        .call(
            "commit",
            serde_json::json!({ "height": (tip + 2).to_string() }),
        )
        .await?;
    let signed = commit["signed_header"]["commit"]["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            s["validator_address"].as_str().map(str::to_uppercase) == Some(new_address.clone())
                && s["block_id_flag"].as_u64() == Some(2)
        });
    anyhow::ensure!(signed, "node{joined} did not sign block {}", tip + 2);
    // And it executes blocks to the same app hash as node 0.
    net.wait_node_height(joined, tip + 3, TIMEOUT).await?;
    let app_hash = |commit: serde_json::Value| {
        commit["signed_header"]["header"]["app_hash"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let at_height = serde_json::json!({ "height": (tip + 3).to_string() });
    let ours = app_hash(net.rpc(joined)?.call("commit", at_height.clone()).await?);
    let theirs = app_hash(net.rpc(0)?.call("commit", at_height).await?);
    anyhow::ensure!(
        !ours.is_empty() && ours == theirs,
        "app hash at {}: node{joined} {ours}, node0 {theirs}",
        tip + 3
    );

    // One of the original four stops: the chain goes on, and it is jailed
    // for downtime and leaves the set.
    let stopped = 1;
    let stopped_address = net.consensus_address(stopped)?;
    net.stop_node(stopped)?;
    let tip = net.rpc(0)?.status().await?.height;
    net.wait_node_height(0, tip + 10, TIMEOUT).await?;
    let (height, set) = net
        .wait_for_validators(0, "the stopped validator to be jailed", TIMEOUT, |set| {
            !set.iter().any(|(a, _)| *a == stopped_address)
        })
        .await?;
    eprintln!("node{stopped} stopped after height {tip}, out of the set at {height}: {set:?}");
    let record = net
        .validator_record(0, stopped)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no record of node{stopped}"))?;
    anyhow::ensure!(
        record.status == pb::ValidatorStatus::Jailed as i32 && !record.tombstoned,
        "node{stopped}'s record: {record:?}"
    );
    anyhow::ensure!(record.slashed > 0, "jailed without a slash: {record:?}");

    // Another unbonds and leaves the set; the chain goes on with three.
    let leaving = 2;
    let leaving_address = net.consensus_address(leaving)?;
    net.unbond_validator(leaving, TIMEOUT).await?;
    let (height, set) = net
        .wait_for_validators(0, "the unbonded validator to leave", TIMEOUT, |set| {
            !set.iter().any(|(a, _)| *a == leaving_address)
        })
        .await?;
    eprintln!("node{leaving} unbonded, out of the set at {height}: {set:?}");
    anyhow::ensure!(set.len() == 3, "set {set:?}");
    net.wait_node_height(0, height + 5, TIMEOUT).await?;
    let set = agreed_set(&mut net, 0).await?;
    let unbonding = net
        .validator_record(0, leaving)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no record of node{leaving}"))?;
    anyhow::ensure!(
        unbonding.status == pb::ValidatorStatus::Unbonding as i32,
        "node{leaving}'s record: {unbonding:?}"
    );

    // Forced inclusion still holds with the new set: a request made now is
    // included within its window.
    let (mut signer, mut client) = common::rollup_signer(&net).await?;
    let wrapper_nonce = signer.next_nonce;
    signer.next_nonce += 1;
    let inner = signer.rollup_data(1, b"forced after the set changed".to_vec(), None);
    signer.next_nonce = wrapper_nonce;
    let wrapper = signer.force_include(inner.clone(), None);
    client.force_include(&wrapper).await?;
    let started = Instant::now();
    let request = loop {
        match client.forced_request(inner.hash()).await {
            Ok(r) if r.status == pb::ForcedStatus::Included as i32 => break r,
            Ok(r) if r.status != pb::ForcedStatus::Pending as i32 => {
                anyhow::bail!("forced request ended {}: {}", r.status, r.failure)
            }
            _ => {}
        }
        anyhow::ensure!(started.elapsed() < TIMEOUT, "forced request never included");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    anyhow::ensure!(
        request.included_height <= request.deadline,
        "included at {} after its deadline {}",
        request.included_height,
        request.deadline
    );

    // A light client trusting height 2 (the genesis set) follows every
    // change to the tip, and the app's set proven under a verified app hash
    // is the set CometBFT signed that height with.
    let nodes: Vec<CometRpc> = [0, 3, joined]
        .iter()
        .map(|i| net.rpc(*i))
        .collect::<Result<_, _>>()?;
    let mut light =
        LightClient::open(nodes.clone(), CHAIN, &root, LightOptions::default(), None).await?;
    let proof = pb::StateProof::decode(
        nodes[1]
            .abci_query(&format!("/state/meta/{}", hex::encode(b"validators")))
            .await?
            .as_slice(),
    )?;
    let header = loop {
        match light.verify_to(proof.version + 1).await {
            Ok(block) => break block.clone(),
            Err(LightError::AllNodesFailed { .. }) => {
                tokio::time::sleep(Duration::from_millis(300)).await
            }
            Err(e) => return Err(e.into()),
        }
    };
    let value = proof
        .value
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no validator set in state"))?;
    state_proof::verify(
        header.app_hash(),
        Space::Meta,
        &proof.key,
        Some(&value),
        &proof.proof,
    )?;
    let mut proven: Vec<(String, i64)> = pb::ValidatorSet::decode(value.as_slice())?
        .validators
        .iter()
        .map(|v| (hex::encode_upper(&v.address), v.power))
        .collect();
    proven.sort();
    let (_, signers) = net.cometbft_validators(0, Some(proof.version)).await?;
    anyhow::ensure!(
        proven == signers,
        "proven set {proven:?}, CometBFT's at {}: {signers:?}",
        proof.version
    );
    anyhow::ensure!(proven == set, "the set moved again: {proven:?} vs {set:?}");
    eprintln!(
        "light client: root at 2 (4 validators) -> header {} verified; the app's set at {} proven under it: {proven:?}",
        header.height(),
        proof.version
    );

    // The operators' CLI: node 4's validator adds stake, signing with its
    // CometBFT key file; `validator list` shows every record.
    let cli = common::seqnet_cli()?;
    let pv = net
        .dir()
        .join(&net.node(joined)?.cometbft_home)
        .join("config/priv_validator_key.json")
        .to_string_lossy()
        .to_string();
    let grpc = net.grpc_url(0)?;
    let seqnet = |args: &[&str]| -> anyhow::Result<serde_json::Value> {
        let output = std::process::Command::new(&cli)
            .args(["--node", &grpc, "--json"])
            .args(args)
            .output()
            .map_err(|e| anyhow::anyhow!("{}: {e}", cli.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "seqnet {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let last = stdout.lines().last().unwrap_or("{}");
        Ok(serde_json::from_str(last)?)
    };
    seqnet(&[
        "validator",
        "register",
        "--key",
        &pv,
        "--consensus-key",
        &pv,
        "--stake",
        "5000",
        "--wait",
        "60",
    ])?;
    let rpc = net.manifest().nodes[0].rpc_addr();
    let listed = seqnet(&["validator", "list", "--rpc", &rpc])?;
    eprintln!("seqnet validator list: {listed}");
    let status_of = |address: &str| {
        listed["validators"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["consensus_address"] == address)
            .map(|v| (v["status"].clone(), v["stake"].clone()))
    };
    anyhow::ensure!(
        status_of(&new_address)
            == Some((
                serde_json::json!("bonded"),
                serde_json::json!(STAKE + 5_000)
            )),
        "node{joined}: {:?}",
        status_of(&new_address)
    );
    anyhow::ensure!(
        status_of(&stopped_address).map(|s| s.0) == Some(serde_json::json!("jailed")),
        "node{stopped}"
    );
    anyhow::ensure!(
        status_of(&leaving_address).map(|s| s.0) == Some(serde_json::json!("unbonding")),
        "node{leaving}"
    );
    net.stop();
    Ok(())
}
