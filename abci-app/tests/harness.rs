//! In-process harness: several app instances on their own RocksDB, driven
//! through the ABCI++ methods the way CometBFT drives them (InitChain, then
//! per height PrepareProposal on the proposer, ProcessProposal on all,
//! FinalizeBlock and Commit on all), comparing app hashes at every height.

mod common;

use common::*;
use prost::Message;
use seqnet_proto::{nmt, pb, Action, Code, TransactionBody};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci;

fn new_node() -> Node {
    common::new_node(0)
}

/// Runs one height on every node; returns the app hashes and the block's txs.
fn run_height(
    nodes: &[Node],
    proposer: usize,
    height: i64,
    mempool: &[Vec<u8>],
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let proposal = nodes[proposer]
        .app
        .prepare_proposal(abci::RequestPrepareProposal {
            max_tx_bytes: 1 << 20,
            txs: mempool.iter().cloned().map(Into::into).collect(),
            height,
            ..Default::default()
        });
    let txs: Vec<Vec<u8>> = proposal.txs.iter().map(|t| t.to_vec()).collect();
    for node in nodes {
        let verdict = node.app.process_proposal(abci::RequestProcessProposal {
            txs: proposal.txs.clone(),
            height,
            ..Default::default()
        });
        assert_eq!(
            verdict.status,
            abci::response_process_proposal::ProposalStatus::Accept as i32
        );
    }
    let mut hashes = Vec::new();
    for node in nodes {
        let result = node.app.finalize_block(abci::RequestFinalizeBlock {
            txs: proposal.txs.clone(),
            height,
            ..Default::default()
        });
        assert!(
            result.tx_results.iter().all(|r| r.code == 0),
            "{:?}",
            result.tx_results
        );
        node.app.commit();
        hashes.push(result.app_hash.to_vec());
    }
    (hashes, txs)
}

#[test]
fn nodes_agree_and_batches_verify() {
    let nodes: Vec<Node> = (0..3).map(|_| new_node()).collect();
    let mut nonces = [0u64; 4];
    for height in 1..=5i64 {
        let mut mempool = Vec::new();
        for i in 0..10u64 {
            let seed = 1 + (i % 2) as u8;
            let rollup = 1 + (i % 2);
            let tx = data_tx(
                seed,
                nonces[seed as usize],
                rollup,
                format!("h{height}-i{i}").as_bytes(),
            );
            nonces[seed as usize] += 1;
            assert_eq!(check(&nodes[0], &tx).code, 0);
            mempool.push(tx);
        }
        let (hashes, txs) = run_height(&nodes, height as usize % 3, height, &mempool);
        assert_eq!(txs.len(), 10, "every valid tx is proposed");
        assert!(
            hashes.windows(2).all(|w| w[0] == w[1]),
            "app hashes agree at {height}"
        );
        // Mempool overlay resets on commit; recheck of included txs fails.
        let recheck = nodes[0].app.check_tx(abci::RequestCheckTx {
            tx: mempool[0].clone().into(),
            r#type: abci::CheckTxType::Recheck as i32,
        });
        assert_eq!(recheck.code, Code::NonceReplayed.as_u32());
    }
    let reader = nodes[1].app.reader();
    for rollup in [1u64, 2] {
        let batch = reader.batch(rollup, 3).expect("batch");
        assert_eq!(batch.items.len(), 5);
        let root = nmt::NmtRoot::try_from(batch.root.as_ref().expect("root")).expect("root");
        let proof =
            nmt::NamespaceProof::try_from(batch.proof.as_ref().expect("proof")).expect("proof");
        let leaves: Vec<Vec<u8>> = batch.items.iter().map(|i| i.encode_to_vec()).collect();
        nmt::verify_namespace(&root, rollup, &leaves, &proof).expect("complete batch verifies");
        assert!(nmt::verify_namespace(&root, rollup, &leaves[1..], &proof).is_err());
        // Items in submission order per signer.
        let nonces: Vec<u64> = batch.items.iter().map(|i| i.nonce).collect();
        assert!(nonces.windows(2).all(|w| w[0] < w[1]));
    }
    assert_eq!(
        reader
            .rollup(1)
            .expect("read")
            .expect("rollup")
            .stats
            .expect("stats")
            .items,
        25
    );
}

#[test]
fn check_tx_rejects_bad_input_with_precise_codes() {
    let node = new_node();
    let ok = data_tx(1, 0, 1, b"fine");
    assert_eq!(check(&node, &ok).code, 0);
    let cases: Vec<(Vec<u8>, Code)> = vec![
        (data_tx(1, 0, 1, b"again"), Code::NonceReplayed),
        (data_tx(1, 5, 1, b"gap"), Code::NonceGap),
        (data_tx(1, 1, 99, b"who"), Code::UnknownRollup),
        (data_tx(3, 0, 1, &[7u8; 100]), Code::InsufficientBalance),
        (b"random garbage".to_vec(), Code::Malformed),
        (data_tx(1, 1, 1, &vec![0u8; 300 * 1024]), Code::TooLarge),
        (
            TransactionBody {
                chain_id: "other".into(),
                nonce: 1,
                fee: 20,
                actions: vec![Action::RollupData {
                    rollup_id: 1,
                    data: b"x".to_vec(),
                }],
            }
            .sign(&key(1))
            .to_bytes()
            .to_vec(),
            Code::WrongChainId,
        ),
        (
            signed(
                1,
                1,
                1,
                vec![Action::RollupData {
                    rollup_id: 1,
                    data: b"x".to_vec(),
                }],
            ),
            Code::FeeTooLow,
        ),
    ];
    for (tx, code) in cases {
        let response = check(&node, &tx);
        assert_eq!(response.code, code.as_u32(), "{code}: {}", response.log);
        assert!(
            response.log.starts_with(code.name()),
            "log names the problem: {}",
            response.log
        );
    }
    // Bad signature: flip a byte of the signature.
    let mut envelope =
        pb::SignedTransaction::decode(data_tx(2, 0, 2, b"sig").as_slice()).expect("decode");
    envelope.signature[0] ^= 1;
    assert_eq!(
        check(&node, &envelope.encode_to_vec()).code,
        Code::BadSignature.as_u32()
    );
}

#[test]
fn restart_resumes_from_the_last_commit() {
    let node = new_node();
    let (hashes, _) = run_height(std::slice::from_ref(&node), 0, 1, &[data_tx(1, 0, 1, b"a")]);
    // Finalize height 2 but crash before Commit.
    node.app.finalize_block(abci::RequestFinalizeBlock {
        txs: vec![data_tx(1, 1, 1, b"b").into()],
        height: 2,
        ..Default::default()
    });
    let Node { app, dir } = node;
    drop(app);
    let reopened = open(dir);
    let info = reopened.app.info(abci::RequestInfo::default());
    assert_eq!(info.last_block_height, 1);
    assert_eq!(info.last_block_app_hash.to_vec(), hashes[0]);
    // CometBFT replays height 2 and the node goes on from there.
    run_height(
        std::slice::from_ref(&reopened),
        0,
        2,
        &[data_tx(1, 1, 1, b"b")],
    );
    assert_eq!(reopened.app.reader().last_height().expect("height"), 2);
}

#[test]
fn a_proposal_with_an_invalid_tx_is_rejected() {
    let node = new_node();
    assert!(!accepts(
        &node,
        1,
        &[data_tx(1, 0, 1, b"ok"), data_tx(1, 0, 1, b"replay")]
    ));
}

#[test]
fn one_rollup_cannot_starve_the_others() {
    let node = new_node();
    // Rollup 1 floods the mempool first; rollup 2's txs come last.
    let mut mempool: Vec<Vec<u8>> = (0..40).map(|n| data_tx(1, n, 1, &[1u8; 1000])).collect();
    mempool.extend((0..5).map(|n| data_tx(2, n, 2, &[2u8; 1000])));
    let proposal = node.app.prepare_proposal(abci::RequestPrepareProposal {
        max_tx_bytes: 20_000,
        txs: mempool.into_iter().map(Into::into).collect(),
        height: 1,
        ..Default::default()
    });
    let txs: Vec<seqnet_proto::Transaction> = proposal
        .txs
        .iter()
        .map(|t| seqnet_proto::Transaction::decode(t, 1 << 20, 64).expect("decode"))
        .collect();
    let of_two = txs.iter().filter(|t| t.signer == address(2)).count();
    assert_eq!(of_two, 5, "rollup 2 fits despite rollup 1's flood");
    let total: usize = proposal.txs.iter().map(|t| t.len()).sum();
    assert!(total <= 20_000);
    // Nonces of each signer stay in order, so the proposal is valid.
    let block: Vec<Vec<u8>> = proposal.txs.iter().map(|t| t.to_vec()).collect();
    assert!(accepts(&node, 1, &block));
}

/// The app hash of a fixed block sequence. A change here changes consensus:
/// every node must upgrade at once. Update the constant only on purpose.
#[test]
fn app_hash_of_a_fixed_sequence_is_stable() {
    let node = new_node();
    let mut last = Vec::new();
    for height in 1..=3i64 {
        let block = vec![
            data_tx(
                1,
                (height as u64 - 1) * 2,
                1,
                format!("{height}/a").as_bytes(),
            ),
            data_tx(
                1,
                (height as u64 - 1) * 2 + 1,
                2,
                format!("{height}/b").as_bytes(),
            ),
            data_tx(2, height as u64 - 1, 2, format!("{height}/c").as_bytes()),
        ];
        let response = node.app.finalize_block(abci::RequestFinalizeBlock {
            txs: block.into_iter().map(Into::into).collect(),
            height,
            ..Default::default()
        });
        assert!(response.tx_results.iter().all(|r| r.code == 0));
        node.app.commit();
        last = response.app_hash.to_vec();
    }
    // Changed on purpose with the staked validator set: genesis writes a
    // validator record per genesis validator. Before that: 1c1d2249...
    // (the authenticated state tree: the Jellyfish Merkle root over every
    // record, docs/state-proofs.md), 6323780a... (v2, pipelined proving),
    // 2c7fa969..., db4c409b....
    assert_eq!(
        hex::encode(last),
        "85dfeb889707cae206e343f7c32ba085a724aa0d4d7d7f6a2579223855e33dd5"
    );
}

/// Past `set_mempool_limit`, new transactions are refused with
/// `mempool_full` (rechecks still pass); a block that empties the mempool
/// lets new ones in again.
#[test]
fn mempool_limit_refuses_new_transactions_until_a_block_makes_room() {
    let node = new_node();
    node.app.set_mempool_limit(3);
    let txs: Vec<Vec<u8>> = (0..5u64)
        .map(|n| data_tx(1, n, 1, format!("tx{n}").as_bytes()))
        .collect();
    for tx in &txs[..3] {
        assert_eq!(check(&node, tx).code, 0);
    }
    let full = check(&node, &txs[3]);
    assert_eq!(full.code, Code::MempoolFull.as_u32(), "{}", full.log);
    assert!(
        full.log.contains("holds 3 transactions (limit 3)"),
        "{}",
        full.log
    );
    // Two are ordered; CometBFT rechecks the third (never refused), and
    // there is room for two more.
    common::finalize(&node, 1, &txs[..2]);
    assert_eq!(common::recheck(&node, &txs[2]).code, 0);
    assert_eq!(check(&node, &txs[3]).code, 0);
    assert_eq!(check(&node, &txs[4]).code, 0);
    let extra = data_tx(1, 5, 1, b"tx5");
    assert_eq!(check(&node, &extra).code, Code::MempoolFull.as_u32());
    // Prover-set and proof transactions are never refused for room (this
    // one fails for its own reason: no such prover).
    let unjail = signed(2, 0, 10, vec![Action::Unjail]);
    let verdict = check(&node, &unjail);
    assert_ne!(verdict.code, Code::MempoolFull.as_u32(), "{}", verdict.log);
    assert_ne!(verdict.code, 0, "{}", verdict.log);
}

/// Every record a client reads comes with a proof under the app hash that
/// FinalizeBlock returned; absence is provable; a crash between FinalizeBlock
/// and Commit loses nothing and the replayed block has the same app hash.
#[test]
fn state_reads_verify_against_the_app_hash_and_survive_a_crash() {
    use seqnet_proto::state_proof::{self, Space};
    let node = new_node();
    let mut app_hash = Vec::new();
    for height in 1..=2u64 {
        let (hashes, _) = run_height(
            std::slice::from_ref(&node),
            0,
            height as i64,
            &[data_tx(1, height - 1, 1, format!("{height}").as_bytes())],
        );
        app_hash = hashes[0].clone();
    }
    let reader = node.app.reader();
    let account_key = address(1).0;
    let read = reader.prove(Space::Accounts, &account_key).expect("prove");
    assert_eq!(read.version, 2);
    let value = read.value.clone().expect("account 1 exists");
    state_proof::verify(
        &app_hash,
        Space::Accounts,
        &account_key,
        Some(&value),
        &read.proof,
    )
    .expect("account verifies");
    assert_eq!(
        pb::Account::decode(value.as_slice())
            .expect("account")
            .nonce,
        2
    );
    // The same proof over ABCI Query.
    let answer = node.app.query(abci::RequestQuery {
        path: format!("/state/accounts/{}", hex::encode(account_key)),
        ..Default::default()
    });
    assert_eq!(answer.code, 0, "{}", answer.log);
    assert_eq!(answer.value.to_vec(), read.encode_to_vec());
    // No such account, provably.
    let nobody = address(99).0;
    let read = reader.prove(Space::Accounts, &nobody).expect("prove");
    assert_eq!(read.value, None);
    state_proof::verify(&app_hash, Space::Accounts, &nobody, None, &read.proof)
        .expect("absence verifies");
    // The rollup record and the height's NMT root, the root a batch is
    // proven under.
    let read = reader
        .prove(Space::Rollups, &1u64.to_be_bytes())
        .expect("prove");
    state_proof::verify(
        &app_hash,
        Space::Rollups,
        &1u64.to_be_bytes(),
        read.value.as_deref(),
        &read.proof,
    )
    .expect("rollup verifies");
    let read = reader
        .prove(Space::Roots, &2u64.to_be_bytes())
        .expect("prove");
    let root = read.value.clone().expect("height 2 has a root");
    state_proof::verify(
        &app_hash,
        Space::Roots,
        &2u64.to_be_bytes(),
        Some(&root),
        &read.proof,
    )
    .expect("root verifies");
    let record = reader.block(2).expect("block 2");
    let digest = record.nmt_root.expect("nmt root").digest;
    assert_eq!((root.len(), &root[24..]), (56, digest.as_slice()));
    // A proof for one height's root does not pass for another's.
    assert!(state_proof::verify(
        &app_hash,
        Space::Roots,
        &1u64.to_be_bytes(),
        Some(&root),
        &read.proof
    )
    .is_err());

    // Finalize height 3, crash before Commit, reopen: reads are still at
    // height 2 and verify; the replayed block gets the same app hash.
    let before_crash = node.app.finalize_block(abci::RequestFinalizeBlock {
        txs: vec![data_tx(1, 2, 1, b"3").into()],
        height: 3,
        ..Default::default()
    });
    drop(reader);
    let Node { app, dir } = node;
    drop(app);
    let reopened = open(dir);
    let read = reopened
        .app
        .reader()
        .prove(Space::Accounts, &account_key)
        .expect("prove");
    assert_eq!(read.version, 2);
    state_proof::verify(
        &app_hash,
        Space::Accounts,
        &account_key,
        read.value.as_deref(),
        &read.proof,
    )
    .expect("verifies after the crash");
    let (hashes, _) = run_height(
        std::slice::from_ref(&reopened),
        0,
        3,
        &[data_tx(1, 2, 1, b"3")],
    );
    assert_eq!(hashes[0], before_crash.app_hash.to_vec());
}
