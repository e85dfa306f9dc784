//! Back-pressure (`max_unproven_blocks`): once ordering runs too far ahead of
//! proving, PrepareProposal proposes only proof, prover-set and forced
//! transactions, ProcessProposal rejects anything else, and ordering resumes
//! when real proofs (reference circuit, k = 8) bring the proven height back.

mod common;

use std::sync::OnceLock;

use ark_bls12_381::Bls12_381;
use ark_groth16::ProvingKey;
use common::*;
use seqnet_proto::{pb, Action, Transaction};
use tendermint_abci::Application;
use tendermint_proto::v0_38::{abci, crypto, types};

const K: u32 = 8;
const ROLLUP: u64 = 1;
const MAX_UNPROVEN: u64 = 2;
const PROVER: u8 = 21;

fn keys() -> &'static (ProvingKey<Bls12_381>, Vec<u8>) {
    static KEYS: OnceLock<(ProvingKey<Bls12_381>, Vec<u8>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (pk, vk) = seqnet_prover::setup(K, 99).expect("setup");
        let vk = seqnet_prover::encode_verifying_key(&vk).expect("vk");
        (pk, vk)
    })
}

/// Rollup 1 is proven (reference circuit, one-block spans, proof window 50
/// so nothing is reassigned here); epochs of one block so a prover
/// registered in block h is active from the end of h; nobody proves until
/// the test says so.
fn node() -> Node {
    let node = open(tempfile::tempdir().expect("tempdir"));
    let genesis = serde_json::json!({
        "params": { "max_unproven_blocks": MAX_UNPROVEN, "epoch_length": 1 },
        "accounts": [
            {"address": address(1).to_string(), "balance": 1_000_000u64},
            {"address": address(2).to_string(), "balance": 1_000_000u64},
            {"address": address(PROVER).to_string(), "balance": 1_000_000u64},
        ],
        "rollups": [
            {"id": ROLLUP, "name": "one", "owner": address(1).to_string(), "proof_window": 50,
             "inclusion_window": 3, "verifying_key": hex::encode(&keys().1), "span_blocks": 1},
            {"id": 2, "name": "two", "owner": address(2).to_string(), "proof_window": 50,
             "inclusion_window": 3},
        ]
    });
    node.app.init_chain(abci::RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: genesis.to_string().into_bytes().into(),
        initial_height: 1,
        validators: VALIDATOR_SEEDS
            .iter()
            .map(|seed| abci::ValidatorUpdate {
                pub_key: Some(crypto::PublicKey {
                    sum: Some(crypto::public_key::Sum::Ed25519(
                        key(*seed).verifying_key().to_bytes().to_vec(),
                    )),
                }),
                power: 10,
            })
            .collect(),
        consensus_params: Some(types::ConsensusParams::default()),
        ..Default::default()
    });
    node
}

/// Proposes from `mempool`, checks the proposal passes ProcessProposal (the
/// pair must agree), finalizes it and returns it.
fn step(node: &Node, height: i64, mempool: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let block = propose(node, height, mempool, None);
    assert!(accepts(node, height, &block), "own proposal at {height}");
    let response = finalize(node, height, &block);
    for (i, r) in response.tx_results.iter().enumerate() {
        assert_eq!(r.code, 0, "block {height} tx {i}: {}", r.log);
    }
    block
}

fn decode(tx: &[u8]) -> Transaction {
    Transaction::decode(tx, 1 << 20, 64).expect("decode")
}

fn job(node: &Node, height: u64) -> pb::ProofJob {
    node.app
        .reader()
        .proof_job(ROLLUP, height)
        .expect("read")
        .expect("job")
}

fn proof_for(node: &Node, height: u64, prev_root: [u8; 32]) -> Action {
    let job = job(node, height);
    let (proof, root) =
        seqnet_prover::prove(&keys().0, K, &job_statement(&job, prev_root)).expect("prove");
    Action::SubmitProof {
        rollup_id: ROLLUP,
        from_height: height,
        proof,
        prev_state_root: prev_root,
        new_state_root: root,
    }
}

#[test]
fn ordering_pauses_past_the_limit_and_resumes_when_proven() {
    let node = node();
    // Blocks 1..=3 each open a job for rollup 1 that nobody proves.
    let mut nonce1 = 0;
    for height in 1..=3i64 {
        let data = data_tx(1, nonce1, ROLLUP, format!("batch {height}").as_bytes());
        nonce1 += 1;
        let block = step(&node, height, &[data]);
        assert_eq!(block.len(), 1);
    }
    // A forced-inclusion request: not exempt, since it adds data.
    let forced_inner = data_tx(2, 1, 2, b"forced later");
    let request = signed(
        2,
        0,
        10 + forced_inner.len() as u64,
        vec![Action::ForceInclude {
            tx: Box::new(decode(&forced_inner)),
        }],
    );
    // Ordered 3 - proven 0 = 3 > 2: block 4 is throttled.
    let finality = node.app.reader().finality().expect("finality");
    assert_eq!((finality.ordered_height, finality.proven_height), (3, 0));

    // Block 4: under back-pressure. The mempool holds a data tx, a forced
    // request (not exempt: it would add data), and a prover registration.
    let data = data_tx(1, nonce1, ROLLUP, b"must wait");
    let register = signed(PROVER, 0, 10, vec![Action::RegisterProver { stake: 5_000 }]);
    let proposal = propose(
        &node,
        4,
        &[data.clone(), request.clone(), register.clone()],
        None,
    );
    assert_eq!(proposal, vec![register.clone()]);
    // Validators reject a proposal with the data tx, or the forced request.
    assert!(!accepts(&node, 4, &[register.clone(), data.clone()]));
    assert!(!accepts(&node, 4, std::slice::from_ref(&request)));
    assert!(accepts(&node, 4, std::slice::from_ref(&register)));
    // An empty block is fine too.
    assert!(accepts(&node, 4, &[]));
    step(&node, 4, &[data.clone(), register]);

    // The prover is active from the end of block 4 and got the waiting jobs.
    let assigned = job(&node, 1);
    assert_eq!(assigned.assigned, address(PROVER).0.to_vec());
    assert_eq!(assigned.assigned_height, 4);

    // Block 5: still throttled; proofs go in, data does not.
    let prove1 = signed(PROVER, 1, 10, vec![proof_for(&node, 1, [0; 32])]);
    let block = step(&node, 5, &[data.clone(), prove1]);
    assert_eq!(block.len(), 1);
    let root1 = <[u8; 32]>::try_from(job(&node, 1).new_root.as_slice()).expect("root");
    assert_eq!(job(&node, 1).proof.len(), seqnet_proto::groth16::PROOF_LEN);
    assert_eq!(job(&node, 1).prev_root, vec![0; 32]);
    // Proven height 1, ordered 5: lag 4, still throttled.
    let prove2 = proof_for(&node, 2, root1);
    let Action::SubmitProof { new_state_root, .. } = &prove2 else {
        unreachable!()
    };
    let root2 = *new_state_root;
    let prove3 = proof_for(&node, 3, root2);
    // Two proofs in one transaction, in height order.
    let proofs = signed(PROVER, 2, 10, vec![prove2, prove3]);
    let block = step(&node, 6, &[data.clone(), proofs]);
    assert_eq!(block.len(), 1);
    let finality = node.app.reader().finality().expect("finality");
    assert_eq!((finality.ordered_height, finality.proven_height), (6, 6));

    // Block 7: lag 0, ordering resumes with the data tx that waited.
    let block = step(&node, 7, &[data.clone(), request]);
    assert_eq!(block.len(), 2);
}

#[test]
fn forced_transactions_pass_back_pressure() {
    let node = node();
    let forced_inner = data_tx(2, 0, 2, b"forced while throttled");
    let request = signed(
        1,
        0,
        10 + forced_inner.len() as u64,
        vec![Action::ForceInclude {
            tx: Box::new(decode(&forced_inner)),
        }],
    );
    // Block 1 carries data for rollup 1 (a job) and the forced request.
    let data = data_tx(1, 1, ROLLUP, b"batch 1");
    let block = step(&node, 1, &[request, data]);
    assert_eq!(block.len(), 2);
    let mut nonce1 = 2;
    for height in 2..=3i64 {
        let data = data_tx(1, nonce1, ROLLUP, format!("batch {height}").as_bytes());
        nonce1 += 1;
        let block = propose(&node, height, &[data], None);
        // The proposer puts the pending forced transaction first.
        assert_eq!(block.first(), Some(&forced_inner));
        // Drop it so it stays pending into the throttled block.
        let block: Vec<Vec<u8>> = block.into_iter().filter(|t| *t != forced_inner).collect();
        assert!(accepts(&node, height, &block));
        finalize(&node, height, &block);
    }
    // Block 4 is throttled (lag 3 > 2): the forced tx is still proposed,
    // and accepted, the mempool's data tx is not.
    let data = data_tx(1, nonce1, ROLLUP, b"must wait");
    let block = propose(&node, 4, std::slice::from_ref(&data), None);
    assert_eq!(block, vec![forced_inner.clone()]);
    assert!(accepts(&node, 4, &block));
    assert!(!accepts(&node, 4, &[forced_inner, data]));
}

#[test]
fn inclusion_lists_cannot_force_held_back_data() {
    // Vote extensions on from height 1: every block from 2 carries the
    // extended commit of the one before.
    let genesis = serde_json::json!({
        "params": { "max_unproven_blocks": 1, "epoch_length": 1 },
        "accounts": [
            {"address": address(1).to_string(), "balance": 1_000_000u64},
            {"address": address(2).to_string(), "balance": 1_000_000u64},
        ],
        "rollups": [
            {"id": ROLLUP, "name": "one", "owner": address(1).to_string(), "proof_window": 50,
             "inclusion_window": 3, "verifying_key": hex::encode(&keys().1), "span_blocks": 1},
        ]
    });
    let node = new_node_with_genesis(1, genesis.to_string().into_bytes());
    // Blocks 1 and 2 open jobs nobody proves: ordered 2 - proven 0 > 1.
    step(&node, 1, &[data_tx(1, 0, ROLLUP, b"batch 1")]);
    let block = propose(
        &node,
        2,
        &[data_tx(1, 1, ROLLUP, b"batch 2")],
        Some(empty_votes(1)),
    );
    assert!(accepts(&node, 2, &block));
    finalize(&node, 2, &block);

    // Block 3 is under back-pressure. Two of four validators list a waiting
    // data tx: enough power to force it, but it is rollup data that proving
    // holds back, so no request opens and the proposer leaves it out.
    let held = data_tx(2, 0, ROLLUP, b"held back");
    let lists = vec![
        (11, vec![held.clone()]),
        (12, vec![held.clone()]),
        (13, vec![]),
        (14, vec![]),
    ];
    let block = propose(
        &node,
        3,
        std::slice::from_ref(&held),
        Some(extended_commit_info(2, &lists)),
    );
    assert_eq!(block.len(), 1, "only the extended commit: {block:?}");
    assert!(accepts(&node, 3, &block));
    // A proposal that includes it anyway is rejected.
    assert!(!accepts(&node, 3, &[block[0].clone(), held.clone()]));
    finalize(&node, 3, &block);
    assert!(
        node.app
            .reader()
            .forced_request(&seqnet_proto::sha256(&held))
            .is_err(),
        "no forced request for held-back data"
    );
}
