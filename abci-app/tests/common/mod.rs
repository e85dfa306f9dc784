//! Shared pieces of the in-process harness: keys, genesis, app instances on
//! their own RocksDB, transaction builders, and a validator set that signs
//! vote extensions the way CometBFT's validators do.
#![allow(dead_code)]

use std::sync::Arc;

use ed25519_dalek::{Signer, SigningKey};
use seqnet_abci::{NoObserver, SeqnetApp, Store};
use seqnet_proto::inclusion::{
    encode_inclusion_list, validator_address, vote_extension_sign_bytes,
};
use seqnet_proto::{pb, Action, Address, TransactionBody};
use tendermint_abci::Application;
use tendermint_proto::v0_38::{abci, crypto, types};

pub const CHAIN: &str = "seqnet-harness";
pub const VALIDATOR_SEEDS: [u8; 4] = [11, 12, 13, 14];

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn address(seed: u8) -> Address {
    Address::from(&key(seed).verifying_key())
}

pub fn genesis() -> Vec<u8> {
    serde_json::json!({
        "accounts": [
            {"address": address(1).to_string(), "balance": 1_000_000u64},
            {"address": address(2).to_string(), "balance": 1_000_000u64},
            {"address": address(3).to_string(), "balance": 50u64},
        ],
        "rollups": [
            {"id": 1, "name": "one", "owner": address(1).to_string(), "proof_window": 10, "inclusion_window": 3},
            {"id": 2, "name": "two", "owner": address(2).to_string(), "proof_window": 10, "inclusion_window": 5},
        ]
    })
    .to_string()
    .into_bytes()
}

pub struct Node {
    pub app: SeqnetApp,
    pub dir: tempfile::TempDir,
}

pub fn open(dir: tempfile::TempDir) -> Node {
    let store = Arc::new(Store::open(dir.path()).expect("open store"));
    Node {
        app: SeqnetApp::new(store, Arc::new(NoObserver)).expect("app"),
        dir,
    }
}

/// A node after InitChain; `vote_extensions_height` 0 disables them.
pub fn new_node(vote_extensions_height: i64) -> Node {
    new_node_with_genesis(vote_extensions_height, genesis())
}

/// [`genesis`] with `params` as its `params` object.
pub fn genesis_with_params(params: serde_json::Value) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(&genesis()).expect("genesis json");
    value["params"] = params;
    value.to_string().into_bytes()
}

/// A node after InitChain with the given `app_state`.
pub fn new_node_with_genesis(vote_extensions_height: i64, app_state: Vec<u8>) -> Node {
    let node = open(tempfile::tempdir().expect("tempdir"));
    let validators = VALIDATOR_SEEDS
        .iter()
        .map(|seed| abci::ValidatorUpdate {
            pub_key: Some(crypto::PublicKey {
                sum: Some(crypto::public_key::Sum::Ed25519(
                    key(*seed).verifying_key().to_bytes().to_vec(),
                )),
            }),
            power: 10,
        })
        .collect();
    node.app.init_chain(abci::RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: app_state.into(),
        initial_height: 1,
        validators,
        consensus_params: Some(types::ConsensusParams {
            abci: Some(types::AbciParams {
                vote_extensions_enable_height: vote_extensions_height,
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    node
}

pub fn signed(seed: u8, nonce: u64, fee: u64, actions: Vec<Action>) -> Vec<u8> {
    TransactionBody {
        chain_id: CHAIN.into(),
        nonce,
        fee,
        actions,
    }
    .sign(&key(seed))
    .to_bytes()
    .to_vec()
}

pub fn data_tx(seed: u8, nonce: u64, rollup: u64, data: &[u8]) -> Vec<u8> {
    signed(
        seed,
        nonce,
        10 + data.len() as u64,
        vec![Action::RollupData {
            rollup_id: rollup,
            data: data.to_vec(),
        }],
    )
}

pub fn check(node: &Node, tx: &[u8]) -> abci::ResponseCheckTx {
    node.app.check_tx(abci::RequestCheckTx {
        tx: tx.to_vec().into(),
        r#type: abci::CheckTxType::New as i32,
    })
}

pub fn recheck(node: &Node, tx: &[u8]) -> abci::ResponseCheckTx {
    node.app.check_tx(abci::RequestCheckTx {
        tx: tx.to_vec().into(),
        r#type: abci::CheckTxType::Recheck as i32,
    })
}

pub fn accepts(node: &Node, height: i64, txs: &[Vec<u8>]) -> bool {
    node.app
        .process_proposal(abci::RequestProcessProposal {
            txs: txs.iter().cloned().map(Into::into).collect(),
            height,
            ..Default::default()
        })
        .status
        == abci::response_process_proposal::ProposalStatus::Accept as i32
}

/// FinalizeBlock and Commit; returns the response.
pub fn finalize(node: &Node, height: i64, txs: &[Vec<u8>]) -> abci::ResponseFinalizeBlock {
    let response = node.app.finalize_block(abci::RequestFinalizeBlock {
        txs: txs.iter().cloned().map(Into::into).collect(),
        height,
        ..Default::default()
    });
    node.app.commit();
    response
}

/// What CometBFT hands the proposer as `local_last_commit`: every validator
/// in `voters` signs its inclusion list for `height`.
pub fn extended_commit_info(height: i64, lists: &[(u8, Vec<Vec<u8>>)]) -> abci::ExtendedCommitInfo {
    abci::ExtendedCommitInfo {
        round: 0,
        votes: lists
            .iter()
            .map(|(seed, txs)| {
                let extension = encode_inclusion_list(txs.clone());
                let signature =
                    key(*seed).sign(&vote_extension_sign_bytes(CHAIN, height, 0, &extension));
                abci::ExtendedVoteInfo {
                    validator: Some(abci::Validator {
                        address: validator_address(&key(*seed).verifying_key().to_bytes()).into(),
                        power: 10,
                    }),
                    vote_extension: extension.into(),
                    extension_signature: signature.to_bytes().to_vec().into(),
                    block_id_flag: 2,
                }
            })
            .collect(),
    }
}

/// The proposer's block for `height` from `mempool` and `commit`.
pub fn propose(
    node: &Node,
    height: i64,
    mempool: &[Vec<u8>],
    commit: Option<abci::ExtendedCommitInfo>,
) -> Vec<Vec<u8>> {
    node.app
        .prepare_proposal(abci::RequestPrepareProposal {
            max_tx_bytes: 1 << 20,
            txs: mempool.iter().cloned().map(Into::into).collect(),
            height,
            local_last_commit: commit,
            ..Default::default()
        })
        .txs
        .iter()
        .map(|t| t.to_vec())
        .collect()
}

/// Every validator votes with an empty inclusion list.
pub fn empty_votes(height: i64) -> abci::ExtendedCommitInfo {
    extended_commit_info(
        height,
        &VALIDATOR_SEEDS
            .iter()
            .map(|s| (*s, vec![]))
            .collect::<Vec<_>>(),
    )
}

/// The reference circuit's statement of the span job `job` from `prev_root`.
pub fn job_statement(job: &pb::ProofJob, prev_root: [u8; 32]) -> seqnet_prover::JobStatement {
    seqnet_prover::JobStatement {
        rollup_id: job.rollup_id,
        from_height: job.from_height,
        to_height: job.to_height,
        commitment: job.span_commitment.as_slice().try_into().expect("32 bytes"),
        prev_root,
    }
}

/// The reference circuit's state before the span job `(rollup, from)`: the
/// rollup's proven root carried through its unproven jobs before it, as a
/// prover replays it.
pub fn reference_prev_root(app: &SeqnetApp, rollup: u64, from: u64) -> [u8; 32] {
    let jobs = app.reader().rollup_jobs(rollup).expect("jobs");
    let mut root: [u8; 32] = jobs
        .proving
        .expect("proving")
        .proven_root
        .as_slice()
        .try_into()
        .expect("32 bytes");
    for job in jobs.open.iter().filter(|j| j.from_height < from) {
        root = seqnet_prover::next_root(&job_statement(job, root)).expect("next root");
    }
    root
}

/// FinalizeBlock and Commit of a block holding one rollup-data transaction
/// of account 1 (nonce `height - 1`); returns the app hash and Commit's
/// retain height.
pub fn run_data_block(node: &Node, height: i64) -> (Vec<u8>, i64) {
    let txs = [data_tx(
        1,
        height as u64 - 1,
        1,
        format!("block {height}").as_bytes(),
    )];
    let response = node.app.finalize_block(abci::RequestFinalizeBlock {
        txs: txs.iter().cloned().map(Into::into).collect(),
        height,
        ..Default::default()
    });
    assert!(response.tx_results.iter().all(|r| r.code == 0));
    let commit = node.app.commit();
    (response.app_hash.to_vec(), commit.retain_height)
}
