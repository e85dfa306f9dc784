//! The light client against real headers: a 4-validator CometBFT network on
//! loopback run to a few hundred blocks, a trust root far behind the tip,
//! skipping verification to the tip, the trusted state kept on disk, a state
//! proof of a real account checked against a verified header, and the
//! refusals: an expired trusting period, a root whose hash is not the
//! chain's, another chain's id, a target behind the trusted height. Then
//! reads through a lying proxy in front of a real node, one lie at a time:
//! a replayed header, a header signed by keys outside the validator set, a
//! raised balance, a claimed absence, a balance of another height (as it
//! was, and relabeled), a batch with an item dropped, two items swapped,
//! other items under a tree of their own, a replaced NMT root. Each is
//! refused with its own error naming the proxy, and the read fails over to
//! an honest node for the true value. Last, the verified ORDERED stream:
//! behind the tip (many heights per block) and at the tip with data in every
//! block (how far it trails).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use prost::Message;
use seqnet_proto::pb;
use seqnet_proto::state_proof::{self, Space};
use seqnet_rollup_client::light::{fetch_block, LightClient, LightError, LightOptions, TrustRoot};
use seqnet_rollup_client::verified::{VerifiedState, MAX_STALE_BLOCKS};
use seqnet_rollup_client::{keys, RollupClient, TxSigner};
use seqnet_testnet::{Binaries, CometRpc, InitOptions, Testnet};
use tendermint::block::signed_header::SignedHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

    // Verified reads through a lying proxy in front of node 0, then node 1.
    let owner_address = seqnet_proto::Address::from_hex(&owner).map_err(anyhow::Error::msg)?;
    for lie in [Lie::RaiseBalance, Lie::ClaimAbsent] {
        let proxy = lying_proxy(net.manifest().nodes[0].rpc_addr(), lie).await?;
        let mut reads = verified_reads(
            &nodes,
            &root,
            vec![CometRpc::new(proxy.clone()), nodes[1].clone()],
        )
        .await?;
        let read = reads.account(&owner_address).await?;
        let account = read
            .value
            .clone()
            .ok_or_else(|| anyhow::anyhow!("account missing"))?;
        assert_eq!(account.balance, balance, "{lie:?}: the true balance");
        assert_eq!(read.node, nodes[1].addr());
        assert!(
            read.refused.len() == 1
                && read.refused[0].contains(&proxy)
                && read.refused[0].contains("lied"),
            "{lie:?}: {:?}",
            read.refused
        );
        eprintln!("{lie:?}: {}; refused: {}", read.describe(), read.refused[0]);
        // Without an honest node, nothing comes back.
        let mut only_liar = verified_reads(&nodes, &root, vec![CometRpc::new(proxy)]).await?;
        assert!(only_liar.account(&owner_address).await.is_err());
    }

    // The CLI's verified read: the account and the header it checked against.
    let cli = common::seqnet_cli()?;
    let output = std::process::Command::new(&cli)
        .arg("--node")
        .arg(net.manifest().nodes[1].grpc_url())
        .args([
            "--json",
            "account",
            &owner,
            "--trust-height",
            "2",
            "--trust-hash",
            &root.hash,
        ])
        .arg("--rpc")
        .arg(format!("{},{}", nodes[2].addr(), nodes[3].addr()))
        .output()
        .map_err(|e| anyhow::anyhow!("{}: {e}", cli.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "seqnet account (verified): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(shown["exists"], true);
    assert_eq!(shown["balance"], balance);
    assert!(shown["verified_header"]
        .as_u64()
        .is_some_and(|h| h > TARGET));
    assert!(shown["signed_power_percent"]
        .as_u64()
        .is_some_and(|p| p > 66));
    eprintln!("seqnet account --trust-height 2 ...: {shown}");

    // Headers through liars: a header of another height passed off as the
    // one asked for, and a header with another app hash signed by keys
    // outside the validator set (consistent in itself). Each is refused with
    // its own error, naming the liar, and the honest node's header is taken.
    for (lie, want) in [
        (Lie::ReplayHeader, "when asked for"),
        (
            Lie::ForeignCommit,
            "not signed by enough of the trusted validators",
        ),
    ] {
        let proxy = lying_proxy(net.manifest().nodes[0].rpc_addr(), lie).await?;
        let mut light = LightClient::open(
            vec![CometRpc::new(proxy.clone()), nodes[1].clone()],
            CHAIN,
            &root,
            LightOptions::default(),
            None,
        )
        .await?;
        // A height both the proxied node and the honest one have (a header
        // the proxy cannot fetch is no lie, only unavailable).
        let tip = nodes[0]
            .status()
            .await?
            .height
            .min(nodes[1].status().await?.height);
        let real = fetch_block(&nodes[1], tip).await?;
        let block = light.verify_to(tip).await?.clone();
        assert_eq!(block.hash(), real.hash(), "{lie:?}: the chain's header");
        let refusals = light.take_refusals();
        assert!(
            refusals
                .iter()
                .any(|r| r.contains(&proxy) && r.contains(want)),
            "{lie:?}: {refusals:?}"
        );
        eprintln!("{lie:?}: header {tip} verified; refused: {}", refusals[0]);
    }

    // A balance from another height: served as it was (stale), and relabeled
    // as the current height's (its proof is of another root).
    for (lie, want) in [
        (Lie::StaleBalance, "blocks old"),
        (Lie::RelabeledBalance, "lied about accounts/"),
    ] {
        let proxy = lying_proxy(net.manifest().nodes[0].rpc_addr(), lie).await?;
        let mut reads = verified_reads(
            &nodes,
            &root,
            vec![CometRpc::new(proxy.clone()), nodes[1].clone()],
        )
        .await?;
        let recorded = reads.account(&owner_address).await?;
        assert_eq!(recorded.node, proxy, "{lie:?}: the first answer is true");
        let wait_until = recorded.version + MAX_STALE_BLOCKS + 3;
        while nodes[1].status().await?.height < wait_until {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let read = reads.account(&owner_address).await?;
        assert_eq!(read.node, nodes[1].addr(), "{lie:?}");
        assert!(read.version >= wait_until - 1, "{lie:?}: {}", read.version);
        assert!(
            read.refused
                .iter()
                .any(|r| r.contains(&proxy) && r.contains(want)),
            "{lie:?}: {:?}",
            read.refused
        );
        eprintln!("{lie:?}: {}; refused: {}", read.describe(), read.refused[0]);
    }

    // A batch: items of rollup 1 ordered (at least two at one height), then
    // read through liars that drop an item or swap two (the namespace proof
    // fails), that serve other items under a tree of their own, consistent
    // in itself (only the NMT root proven under the app hash shows it), and
    // that replace the height's NMT root in the state (its proof fails).
    let rollup = net.manifest().rollups[0].clone();
    let key_path = net
        .key_path(&rollup.owner_key)
        .ok_or_else(|| anyhow::anyhow!("no key {}", rollup.owner_key))?;
    let key = keys::load(&key_path)?;
    let mut signer = TxSigner::new(key, CHAIN.to_string());
    signer.fees = net.manifest().fees.schedule();
    let mut grpc = RollupClient::new(vec![net.manifest().nodes[0].grpc_url()])?;
    signer.sync_nonce(&mut grpc).await?;
    let mut data_height = 0;
    for attempt in 0.. {
        anyhow::ensure!(
            attempt < 5,
            "no height with two items of rollup {}",
            rollup.id
        );
        let first = signer.rollup_data(rollup.id, b"first".to_vec(), None);
        let second = signer.rollup_data(rollup.id, b"second".to_vec(), None);
        grpc.submit(&first).await?;
        grpc.submit(&second).await?;
        grpc.wait_for_nonce(
            signer.address(),
            second.body.nonce + 1,
            Duration::from_secs(60),
        )
        .await?;
        data_height = grpc
            .rollup(rollup.id)
            .await?
            .stats
            .map_or(0, |s| s.last_height);
        if grpc.batch(rollup.id, data_height).await?.items.len() >= 2 {
            break;
        }
    }
    for (lie, want) in [
        (Lie::DropItem, "does not verify"),
        (Lie::SwapItems, "does not verify"),
        (Lie::ForgeBatch, "is not the one the app hash commits to"),
        (Lie::ReplaceRoot, "lied about roots/"),
    ] {
        let proxy = lying_proxy(net.manifest().nodes[0].rpc_addr(), lie).await?;
        let mut reads = verified_reads(
            &nodes,
            &root,
            vec![CometRpc::new(proxy.clone()), nodes[2].clone()],
        )
        .await?;
        let read = reads.batch(rollup.id, data_height).await?;
        let items: Vec<&[u8]> = read.value.items.iter().map(|i| i.data.as_slice()).collect();
        assert!(
            items.ends_with(&[b"first".as_slice(), b"second".as_slice()]),
            "{lie:?}: {items:?}"
        );
        // (A liar about the root alone serves the true batch: it is taken.)
        if lie != Lie::ReplaceRoot {
            assert_eq!(read.node, nodes[2].addr(), "{lie:?}");
        }
        assert!(
            read.refused
                .iter()
                .any(|r| r.contains(&proxy) && r.contains(want)),
            "{lie:?}: {:?}",
            read.refused
        );
        eprintln!(
            "{lie:?}: batch {}/{data_height} with {} items {}; refused: {}",
            rollup.id,
            items.len(),
            read.describe(),
            read.refused.join(" | ")
        );
    }

    // A forced-inclusion request read with its proof until it is included
    // (and one never made, proven absent), and finality read the same way,
    // through a liar first that claims the request absent.
    let wrapper_nonce = signer.next_nonce;
    signer.next_nonce += 1;
    let inner = signer.rollup_data(rollup.id, b"forced".to_vec(), None);
    signer.next_nonce = wrapper_nonce;
    let wrapper = signer.force_include(inner.clone(), None);
    signer.next_nonce = wrapper_nonce + 2;
    grpc.force_include(&wrapper).await?;
    let proxy = lying_proxy(net.manifest().nodes[0].rpc_addr(), Lie::HideForced).await?;
    let mut reads = verified_reads(
        &nodes,
        &root,
        vec![CometRpc::new(proxy.clone()), nodes[1].clone()],
    )
    .await?;
    let started = Instant::now();
    let forced = loop {
        let read = reads.forced_request(&inner.hash()).await?;
        if read
            .value
            .as_ref()
            .is_some_and(|r| r.status == pb::ForcedStatus::Included as i32)
        {
            break read;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "forced request not included in 60 s: {:?}",
            read.value
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        forced
            .refused
            .iter()
            .any(|r| r.contains(&proxy) && r.contains("lied about forced/")),
        "{:?}",
        forced.refused
    );
    let included_at = forced.value.as_ref().map_or(0, |r| r.included_height);
    eprintln!(
        "forced request included at {included_at}: {}; refused: {}",
        forced.describe(),
        forced.refused[0]
    );
    let never = reads.forced_request(&[7u8; 32]).await?;
    assert_eq!(never.value, None, "a request never made is proven absent");
    let finality = reads.finality(Some(rollup.id)).await?;
    let unverified = grpc.finality(0).await?;
    assert!(finality.value.ordered_height >= included_at);
    assert!(finality.value.ordered_height <= unverified.ordered_height);
    assert!(finality.value.proven_height <= unverified.proven_height);
    eprintln!(
        "finality: ordered {}, proven {}, rollup {} proven to {:?}; {}",
        finality.value.ordered_height,
        finality.value.proven_height,
        rollup.id,
        finality.value.rollup.as_ref().map(|r| r.proven_height),
        finality.describe()
    );

    // The same proofs over gRPC (ProveState): an account and an absent one
    // under one app hash, checked against a header verified here.
    let absent = vec![9u8; 32];
    let answer = grpc
        .prove_state(
            Space::Accounts,
            vec![owner_address.0.to_vec(), absent.clone()],
        )
        .await?;
    assert_eq!(answer.proofs.len(), 2);
    let version = answer.proofs[0].version;
    let mut light =
        LightClient::open(nodes.clone(), CHAIN, &root, LightOptions::default(), None).await?;
    let header = loop {
        match light.verify_to(version + 1).await {
            Ok(block) => break block.clone(),
            Err(LightError::AllNodesFailed { .. }) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e.into()),
        }
    };
    for (proof, key) in answer.proofs.iter().zip([owner_address.0.to_vec(), absent]) {
        assert_eq!(proof.version, version);
        state_proof::verify(
            header.app_hash(),
            Space::Accounts,
            &key,
            proof.value.as_deref(),
            &proof.proof,
        )?;
    }
    assert!(answer.proofs[0].value.is_some() && answer.proofs[1].value.is_none());
    eprintln!(
        "ProveState over gRPC: 2 proofs of height {version} verified against header {}",
        header.height()
    );

    let output = std::process::Command::new(&cli)
        .arg("--node")
        .arg(net.manifest().nodes[1].grpc_url())
        .args(["--json", "finality", "--rollup", &rollup.id.to_string()])
        .args(["--trust-height", "2", "--trust-hash", &root.hash])
        .arg("--rpc")
        .arg(format!("{},{}", nodes[2].addr(), nodes[3].addr()))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "seqnet finality (verified): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert!(shown["ordered_height"]
        .as_u64()
        .is_some_and(|h| h >= finality.value.ordered_height));
    assert!(shown["verified_header"].as_u64().is_some());
    eprintln!(
        "seqnet finality --rollup {} --trust-height 2 ...: {shown}",
        rollup.id
    );

    // The ORDERED stream, verified, through a liar first. Behind the tip:
    // every height from a few below the data on, in order, the data where
    // it was written and proven-empty batches elsewhere, many heights per
    // block. At the tip, with data in every block: how far the stream
    // trails the chain.
    let proxy = lying_proxy(net.manifest().nodes[0].rpc_addr(), Lie::SwapItems).await?;
    let mut reads = verified_reads(
        &nodes,
        &root,
        vec![CometRpc::new(proxy.clone()), nodes[3].clone()],
    )
    .await?;
    const BEHIND: usize = 40;
    let from = data_height - 5;
    let tip_before = nodes[3].status().await?.height;
    let mut seen = Vec::new();
    reads
        .follow_batches(rollup.id, from, |batch| {
            seen.push(batch);
            seen.len() < BEHIND
        })
        .await?;
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, b)| b.value.height == from + i as u64));
    let at_data = &seen[5];
    assert!(at_data.value.items.len() >= 2);
    assert!(at_data.refused.iter().any(|r| r.contains(&proxy)));
    let empty = seen.iter().filter(|b| b.value.items.is_empty()).count();
    eprintln!(
        "verified ORDERED stream behind the tip, a liar first: heights {from}..{} ({} with data, {empty} proven empty) while the chain made {} blocks (the test's proxy costs about 0.2 s a request)",
        from + BEHIND as u64 - 1,
        BEHIND - empty,
        nodes[3].status().await?.height - tip_before
    );

    // The same through honest nodes only, and one bare batch query, to
    // tell the client's cost from the proxy's.
    let mut honest = verified_reads(&nodes, &root, vec![nodes[3].clone()]).await?;
    let started = Instant::now();
    let mut count = 0;
    honest
        .follow_batches(rollup.id, from, |_| {
            count += 1;
            count < BEHIND
        })
        .await?;
    let honest_behind = started.elapsed();
    let started = Instant::now();
    for h in from..from + 10 {
        nodes[3]
            .abci_query(&format!("/batch/{}/{h}", rollup.id))
            .await?;
    }
    eprintln!(
        "honest nodes only: {:.1} ms per verified batch; a bare batch query {:.1} ms",
        honest_behind.as_secs_f64() * 1e3 / BEHIND as f64,
        started.elapsed().as_secs_f64() * 1e3 / 10.0
    );

    // The PROVEN stream, verified (this network has no proof jobs, so the
    // chain's proven height is its ordered height), and the CLI's verified
    // batch read.
    let mut proven = Vec::new();
    reads
        .follow_proven_batches(rollup.id, data_height, |batch| {
            proven.push(batch.value.height);
            proven.len() < 3
        })
        .await?;
    assert_eq!(proven, vec![data_height, data_height + 1, data_height + 2]);
    let output = std::process::Command::new(&cli)
        .arg("--node")
        .arg(net.manifest().nodes[1].grpc_url())
        .args(["--json", "batch", "get", "--rollup", &rollup.id.to_string()])
        .args(["--height", &data_height.to_string()])
        .args(["--trust-height", "2", "--trust-hash", &root.hash])
        .arg("--rpc")
        .arg(format!("{},{}", proxy, nodes[2].addr()))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "seqnet batch get (verified): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert!(
        shown["items"].as_array().is_some_and(|i| i.len() >= 2),
        "{shown}"
    );
    assert!(shown["refused"].as_array().is_some_and(|r| r
        .iter()
        .any(|r| r.as_str().is_some_and(|r| r.contains(&proxy)))));
    eprintln!(
        "seqnet batch get --trust-height 2 ... through a liar: refused {}",
        shown["refused"]
    );

    const AT_TIP: usize = 20;
    let first = nodes[3].status().await?.height + 1;
    let items = (0..AT_TIP + 5)
        .map(|i| signer.rollup_data(rollup.id, format!("tip {i}").into_bytes(), None))
        .collect::<Vec<_>>();
    let submitting = tokio::spawn(async move {
        for item in items {
            if let Err(e) = grpc.submit(&item).await {
                eprintln!("submit: {e}");
            }
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    });
    let mut at_tip = Vec::new();
    reads
        .follow_batches(rollup.id, first, |batch| {
            at_tip.push((batch.value.height, batch.value.items.len(), batch.header));
            at_tip.len() < AT_TIP
        })
        .await?;
    submitting.abort();
    let mut trail: Vec<u64> = at_tip.iter().map(|(h, _, header)| header - h).collect();
    trail.sort_unstable();
    let with_data = at_tip.iter().filter(|(_, n, _)| *n > 0).count();
    let end_gap = nodes[3].status().await?.height - at_tip.last().map_or(0, |t| t.0);
    eprintln!(
        "verified ORDERED stream at the tip: {AT_TIP} heights from {first}, {with_data} with data; header used minus batch height p50 {} max {}; the tip was {end_gap} blocks past the last batch when it came",
        trail[trail.len() / 2],
        trail[trail.len() - 1],
    );
    assert!(at_tip
        .iter()
        .enumerate()
        .all(|(i, t)| t.0 == first + i as u64));
    assert!(with_data > AT_TIP / 2, "{at_tip:?}");

    net.stop();
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    /// A batch without its last item (proof and root unchanged).
    DropItem,
    /// A batch with its first two items swapped (proof and root unchanged).
    SwapItems,
    /// A batch with other items, under a tree built from them (its own
    /// root and a namespace proof that checks against it).
    ForgeBatch,
    /// The height's NMT root record with one byte changed (proof unchanged).
    ReplaceRoot,
    /// The account's balance, one more than it is (proof unchanged).
    RaiseBalance,
    /// "No such account" (proof unchanged).
    ClaimAbsent,
    /// The first account answer, served again later as it was.
    StaleBalance,
    /// The first account answer, served again later as of the current height.
    RelabeledBalance,
    /// The header three heights below the one asked for.
    ReplayHeader,
    /// "No such forced request" (proof unchanged).
    HideForced,
    /// A header with another app hash, validators of the liar's own keys and
    /// a commit they signed.
    ForeignCommit,
}

/// Verified reads asked of `through` in order, checked against headers a
/// light client verifies from `root` through the honest `nodes`.
async fn verified_reads(
    nodes: &[CometRpc],
    root: &TrustRoot,
    through: Vec<CometRpc>,
) -> anyhow::Result<VerifiedState> {
    let light =
        LightClient::open(nodes.to_vec(), CHAIN, root, LightOptions::default(), None).await?;
    Ok(VerifiedState::new(through, light))
}

/// What a proxy remembers between requests (the first account answer).
type Recorded = Arc<Mutex<Option<pb::StateProof>>>;

/// A CometBFT RPC proxy on a free port that relays to `upstream` and tells
/// `lie` wherever it applies; returns its address.
async fn lying_proxy(upstream: String, lie: Lie) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let recorded = Recorded::default();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let recorded = recorded.clone();
            tokio::spawn(async move {
                if let Err(e) = relay(inbound, &upstream, lie, recorded).await {
                    eprintln!("proxy: {e}");
                }
            });
        }
    });
    Ok(addr)
}

/// `response` (an HTTP answer to a JSON-RPC call) with its result replaced
/// by `rewrite(result)`.
fn rewrite_result(
    response: &[u8],
    rewrite: impl FnOnce(&mut serde_json::Value) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u8>> {
    let body_start = header_end(response).map_or(0, |e| e + 4);
    let mut answer: serde_json::Value = serde_json::from_slice(&response[body_start..])?;
    rewrite(&mut answer["result"])?;
    let body = answer.to_string();
    Ok(format!(
        "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes())
}

/// `response` (an HTTP answer to `abci_query`) with its value replaced by
/// `rewrite(value)`.
fn rewrite_query_value(
    response: &[u8],
    rewrite: impl FnOnce(&[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    rewrite_result(response, |result| {
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = b64.decode(result["response"]["value"].as_str().unwrap_or_default())?;
        result["response"]["value"] = serde_json::Value::String(b64.encode(rewrite(&raw)?));
        Ok(())
    })
}

fn header_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The liar's validator keys (fixed seeds: none is in the chain's set).
fn foreign_keys() -> Vec<ed25519_dalek::SigningKey> {
    (1u8..=4)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]))
        .collect()
}

fn foreign_validators() -> anyhow::Result<tendermint::validator::Set> {
    let infos = foreign_keys()
        .iter()
        .map(|key| {
            let public = tendermint::PublicKey::from_raw_ed25519(key.verifying_key().as_bytes())
                .ok_or_else(|| anyhow::anyhow!("not an ed25519 key"))?;
            Ok(tendermint::validator::Info::new(public, 10u32.into()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(tendermint::validator::Set::without_proposer(infos))
}

/// `real` with another app hash, the liar's validators, and a commit by
/// them: every signature valid, none by a key the chain trusts.
fn forge_header(real: &SignedHeader) -> anyhow::Result<SignedHeader> {
    use ed25519_dalek::Signer;
    use tendermint::block::{Commit, CommitSig};
    let set = foreign_validators()?;
    let mut header = real.header.clone();
    header.app_hash = tendermint::AppHash::try_from(vec![0xab; 32])?;
    header.validators_hash = set.hash();
    header.next_validators_hash = set.hash();
    let block_id = tendermint::block::Id {
        hash: header.hash(),
        part_set_header: real.commit.block_id.part_set_header,
    };
    let keys = foreign_keys();
    let mut signatures = Vec::new();
    for (index, info) in set.validators().iter().enumerate() {
        let key = keys
            .iter()
            .find(|k| k.verifying_key().as_bytes().as_slice() == info.pub_key.to_bytes())
            .ok_or_else(|| anyhow::anyhow!("no key for {}", info.address))?;
        let vote = tendermint::Vote {
            vote_type: tendermint::vote::Type::Precommit,
            height: header.height,
            round: real.commit.round,
            block_id: Some(block_id),
            timestamp: Some(header.time),
            validator_address: info.address,
            validator_index: tendermint::vote::ValidatorIndex::try_from(index)?,
            signature: None,
            extension: vec![],
            extension_signature: None,
        };
        let signature = key.sign(&vote.into_signable_vec(header.chain_id.clone()));
        signatures.push(CommitSig::BlockIdFlagCommit {
            validator_address: info.address,
            timestamp: header.time,
            signature: Some(tendermint::Signature::try_from(
                signature.to_bytes().as_slice(),
            )?),
        });
    }
    let commit = Commit {
        height: header.height,
        round: real.commit.round,
        block_id,
        signatures,
    };
    Ok(SignedHeader::new(header, commit)?)
}

/// An HTTP request with `body` in place of its own.
fn with_body(request: &[u8], body: &str) -> Vec<u8> {
    let end = header_end(request).unwrap_or(request.len());
    let head = String::from_utf8_lossy(&request[..end]);
    let mut out: Vec<String> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .map(str::to_string)
        .collect();
    out.push(format!("Content-Length: {}", body.len()));
    format!("{}\r\n\r\n{body}", out.join("\r\n")).into_bytes()
}

async fn relay(
    mut inbound: TcpStream,
    upstream: &str,
    lie: Lie,
    recorded: Recorded,
) -> anyhow::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = inbound.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(end) = header_end(&request) {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    let end = header_end(&request).unwrap_or(0);
    let mut call: serde_json::Value =
        serde_json::from_slice(&request[end + 4..]).unwrap_or_default();
    let method = call["method"].as_str().unwrap_or_default().to_string();
    let asked_height: u64 = call["params"]["height"]
        .as_str()
        .and_then(|h| h.parse().ok())
        .unwrap_or(0);
    if lie == Lie::ReplayHeader && method == "commit" && asked_height > 5 {
        call["params"]["height"] = serde_json::Value::String((asked_height - 3).to_string());
        request = with_body(&request, &call.to_string());
    }
    let mut out = TcpStream::connect(upstream).await?;
    out.write_all(&request).await?;
    let mut response = Vec::new();
    out.read_to_end(&mut response).await?;
    let path = call["params"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let query = |prefix: &str| method == "abci_query" && path.starts_with(prefix);
    match lie {
        Lie::DropItem | Lie::SwapItems | Lie::ForgeBatch if query("/batch/") => {
            response = rewrite_query_value(&response, |raw| {
                let mut batch = pb::Batch::decode(raw)?;
                match lie {
                    Lie::DropItem => {
                        batch.items.pop();
                    }
                    Lie::SwapItems if batch.items.len() >= 2 => batch.items.swap(0, 1),
                    Lie::SwapItems => {}
                    _ => {
                        for item in &mut batch.items {
                            item.data = b"forged".to_vec();
                        }
                        let leaves = batch
                            .items
                            .iter()
                            .map(|i| {
                                seqnet_proto::nmt::NmtNode::leaf(
                                    batch.rollup_id,
                                    &i.encode_to_vec(),
                                )
                            })
                            .collect();
                        let tree = seqnet_proto::nmt::NamespacedMerkleTree::from_leaves(leaves)?;
                        batch.root = Some((&tree.root()).into());
                        batch.proof = Some((&tree.prove_namespace(batch.rollup_id)).into());
                    }
                }
                Ok(batch.encode_to_vec())
            })?;
        }
        Lie::HideForced if query("/state/forced/") => {
            response = rewrite_query_value(&response, |raw| {
                let mut proof = pb::StateProof::decode(raw)?;
                proof.value = None;
                Ok(proof.encode_to_vec())
            })?;
        }
        Lie::ReplaceRoot if query("/state/roots/") => {
            response = rewrite_query_value(&response, |raw| {
                let mut proof = pb::StateProof::decode(raw)?;
                if let Some(byte) = proof.value.as_mut().and_then(|v| v.last_mut()) {
                    *byte ^= 1;
                }
                Ok(proof.encode_to_vec())
            })?;
        }
        Lie::RaiseBalance | Lie::ClaimAbsent | Lie::StaleBalance | Lie::RelabeledBalance
            if query("/state/accounts/") =>
        {
            response = rewrite_query_value(&response, |raw| {
                let mut proof = pb::StateProof::decode(raw)?;
                let mut first = recorded.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
                match lie {
                    Lie::RaiseBalance => {
                        let mut account = pb::Account::decode(
                            proof.value.clone().unwrap_or_default().as_slice(),
                        )?;
                        account.balance += 1;
                        proof.value = Some(account.encode_to_vec());
                    }
                    Lie::ClaimAbsent => proof.value = None,
                    _ => match first.clone() {
                        None => *first = Some(proof.clone()),
                        Some(mut old) => {
                            if lie == Lie::RelabeledBalance {
                                old.version = proof.version;
                            }
                            proof = old;
                        }
                    },
                }
                Ok(proof.encode_to_vec())
            })?;
        }
        Lie::ForeignCommit if method == "commit" => {
            response = rewrite_result(&response, |result| {
                let real: SignedHeader = serde_json::from_value(result["signed_header"].clone())?;
                result["signed_header"] = serde_json::to_value(forge_header(&real)?)?;
                Ok(())
            })?;
        }
        Lie::ForeignCommit if method == "validators" => {
            response = rewrite_result(&response, |result| {
                let set = foreign_validators()?;
                let count = set.validators().len().to_string();
                result["validators"] = serde_json::to_value(set.validators())?;
                result["count"] = serde_json::Value::String(count.clone());
                result["total"] = serde_json::Value::String(count);
                Ok(())
            })?;
        }
        _ => {}
    }
    inbound.write_all(&response).await?;
    inbound.shutdown().await?;
    Ok(())
}
