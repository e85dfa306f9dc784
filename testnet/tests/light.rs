//! The light client against real headers: a 4-validator CometBFT network on
//! loopback run to a few hundred blocks, a trust root far behind the tip,
//! skipping verification to the tip, the trusted state kept on disk, a state
//! proof of a real account checked against a verified header, and the
//! refusals: an expired trusting period, a root whose hash is not the
//! chain's, another chain's id, a target behind the trusted height.

use std::time::{Duration, Instant};

use prost::Message;
use seqnet_proto::pb;
use seqnet_proto::state_proof::{self, Space};
use seqnet_rollup_client::light::{fetch_block, LightClient, LightError, LightOptions, TrustRoot};
use seqnet_testnet::{Binaries, CometRpc, InitOptions, Testnet};

const CHAIN: &str = "seqnet-light";
/// Far enough behind the root for a real skip.
const TARGET: u64 = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_client_skips_to_the_tip_and_refuses_what_it_cannot_trust() -> anyhow::Result<()> {
    let binaries = Binaries::locate()?;
    let dir = tempfile::Builder::new().prefix("seqnet-light-").tempdir()?;
    let opts = InitOptions {
        validators: 4,
        rollups: 1,
        base_port: seqnet_testnet::pick_free_base_port(4)?,
        chain_id: CHAIN.into(),
        timeout_commit: "50ms".into(),
        ..InitOptions::default()
    };
    let mut net = Testnet::init(&dir.path().join("net"), &opts, binaries)?;
    net.start(Duration::from_secs(300)).await?;
    let nodes: Vec<CometRpc> = net
        .manifest()
        .nodes
        .iter()
        .map(|n| CometRpc::new(n.rpc_addr()))
        .collect();
    let started = Instant::now();
    loop {
        let height = nodes[0].status().await?.height;
        if height > TARGET + 1 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the network reached only height {height} in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "network past height {TARGET} in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let root_block = fetch_block(&nodes[0], 2).await?;
    let root = TrustRoot {
        height: 2,
        hash: root_block.hash().to_string(),
    };
    let state = dir.path().join("light.json");

    // Skipping verification from 2 to TARGET, through the first node's
    // answers (a dead address first: the client moves on).
    let mut through = vec![CometRpc::new("127.0.0.1:9").with_timeout(Duration::from_secs(1))];
    through.extend(nodes.iter().cloned());
    let mut client = LightClient::open(
        through.clone(),
        CHAIN,
        &root,
        LightOptions::default(),
        Some(&state),
    )
    .await?;
    let verified_at = Instant::now();
    let block = client.verify_to(TARGET).await?;
    assert_eq!(block.height(), TARGET);
    let power = block.signed_power_percent();
    assert!(power > 66, "header {TARGET} signed by {power} % of power");
    eprintln!(
        "verified header {TARGET} from the root at 2 in {:.1} ms, signed by {power} % of power",
        verified_at.elapsed().as_secs_f64() * 1e3
    );

    // A state proof from a node, checked against a header this client verified.
    let owner = net
        .manifest()
        .keys
        .iter()
        .find(|k| k.name == net.manifest().rollups[0].owner_key)
        .ok_or_else(|| anyhow::anyhow!("no rollup owner key"))?
        .address
        .clone();
    let proof = pb::StateProof::decode(
        nodes[1]
            .abci_query(&format!("/state/accounts/{owner}"))
            .await?
            .as_slice(),
    )?;
    let value = proof
        .value
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the owner has no account"))?;
    let header = loop {
        match client.verify_to(proof.version + 1).await {
            Ok(block) => break block.clone(),
            // The next header may not be committed yet.
            Err(LightError::AllNodesFailed { .. }) => {
                tokio::time::sleep(Duration::from_millis(300)).await
            }
            Err(e) => return Err(e.into()),
        }
    };
    state_proof::verify(
        header.app_hash(),
        Space::Accounts,
        &proof.key,
        Some(&value),
        &proof.proof,
    )?;
    let balance = pb::Account::decode(value.as_slice())?.balance;
    eprintln!(
        "account {owner}: balance {balance} verified against header {} (app hash of {})",
        header.height(),
        proof.version
    );
    // Tampered: refused.
    let mut richer = pb::Account::decode(value.as_slice())?;
    richer.balance += 1;
    assert!(state_proof::verify(
        header.app_hash(),
        Space::Accounts,
        &proof.key,
        Some(&richer.encode_to_vec()),
        &proof.proof
    )
    .is_err());

    // The trusted state survives a restart: no root fetch, same height.
    let trusted = client.trusted().height();
    drop(client);
    let reopened = LightClient::open(
        nodes.clone(),
        CHAIN,
        &root,
        LightOptions::default(),
        Some(&state),
    )
    .await?;
    assert_eq!(reopened.trusted().height(), trusted);

    // A target behind the trusted height.
    let mut reopened = reopened;
    assert!(matches!(
        reopened.verify_to(3).await,
        Err(LightError::Backwards { target: 3, .. })
    ));

    // An expired trusting period: the root's header is older than 1 s.
    let short = LightOptions {
        trusting_period: Duration::from_secs(1),
        ..LightOptions::default()
    };
    let mut expired = LightClient::open(nodes.clone(), CHAIN, &root, short, None).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = expired.verify_to(TARGET).await;
    assert!(
        matches!(refused, Err(LightError::Expired { height: 2, .. })),
        "{refused:?}"
    );

    // A root that is not the chain's header 2.
    let forged = TrustRoot {
        height: 2,
        hash: "AB".repeat(32),
    };
    let refused =
        LightClient::open(nodes.clone(), CHAIN, &forged, LightOptions::default(), None).await;
    assert!(
        matches!(&refused, Err(LightError::AllNodesFailed { errors, .. }) if errors.contains("the configured root is")),
        "{:?}",
        refused.err()
    );
    // Another chain's id.
    let refused = LightClient::open(
        nodes.clone(),
        "other-chain",
        &root,
        LightOptions::default(),
        None,
    )
    .await;
    assert!(refused.is_err());

    net.stop();
    Ok(())
}
