//! What the injected extended commit costs: ProcessProposal time of the same
//! block with and without it (4 validators, each listing 8 transactions),
//! and its size. Run: `cargo bench -p seqnet-abci --bench extended_commit`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use seqnet_abci::{NoObserver, SeqnetApp, Store};
use seqnet_proto::inclusion::{
    encode_inclusion_list, encode_system_tx, validator_address, vote_extension_sign_bytes,
};
use seqnet_proto::{pb, Action, Address, TransactionBody};
use tendermint_abci::Application;
use tendermint_proto::v0_38::{abci, crypto, types};

const CHAIN: &str = "bench";
const ROUNDS: u32 = 200;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn app(vote_extensions_height: i64) -> (SeqnetApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let app = SeqnetApp::new(store, Arc::new(NoObserver)).expect("app");
    let accounts: Vec<_> = (1..=40u8)
        .map(|s| serde_json::json!({"address": Address::from(&key(s).verifying_key()).to_string(), "balance": 1_000_000_000u64}))
        .collect();
    let genesis = serde_json::json!({
        "accounts": accounts,
        "rollups": [{"id": 1, "name": "r", "owner": Address::from(&key(1).verifying_key()).to_string(), "proof_window": 10, "inclusion_window": 10}],
    });
    app.init_chain(abci::RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: genesis.to_string().into_bytes().into(),
        validators: (100..104u8)
            .map(|s| abci::ValidatorUpdate {
                pub_key: Some(crypto::PublicKey {
                    sum: Some(crypto::public_key::Sum::Ed25519(
                        key(s).verifying_key().to_bytes().to_vec(),
                    )),
                }),
                power: 10,
            })
            .collect(),
        consensus_params: Some(types::ConsensusParams {
            abci: Some(types::AbciParams {
                vote_extensions_enable_height: vote_extensions_height,
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    app.finalize_block(abci::RequestFinalizeBlock {
        height: 1,
        ..Default::default()
    });
    app.commit();
    (app, dir)
}

fn data_tx(seed: u8, payload: usize) -> Vec<u8> {
    TransactionBody {
        chain_id: CHAIN.into(),
        nonce: 0,
        fee: 10 + payload as u64,
        actions: vec![Action::RollupData {
            rollup_id: 1,
            data: vec![seed; payload],
        }],
    }
    .sign(&key(seed))
    .to_bytes()
    .to_vec()
}

fn extended_commit(lists: Vec<Vec<u8>>) -> Vec<u8> {
    let votes = (100..104u8)
        .map(|s| {
            let extension = encode_inclusion_list(lists.clone());
            pb::ExtendedVote {
                validator_address: validator_address(&key(s).verifying_key().to_bytes()),
                signature: key(s)
                    .sign(&vote_extension_sign_bytes(CHAIN, 1, 0, &extension))
                    .to_bytes()
                    .to_vec(),
                extension,
            }
        })
        .collect();
    encode_system_tx(&pb::ExtendedCommit {
        height: 1,
        round: 0,
        votes,
    })
}

fn time_process(app: &SeqnetApp, txs: &[Vec<u8>]) -> Duration {
    let request = abci::RequestProcessProposal {
        txs: txs.iter().cloned().map(Into::into).collect(),
        height: 2,
        ..Default::default()
    };
    // Warm the signature cache as CheckTx would have.
    assert_eq!(
        app.process_proposal(request.clone()).status,
        1,
        "block must be valid"
    );
    let start = Instant::now();
    for _ in 0..ROUNDS {
        app.process_proposal(request.clone());
    }
    start.elapsed() / ROUNDS
}

fn main() {
    let block: Vec<Vec<u8>> = (1..=32u8).map(|s| data_tx(s, 200)).collect();
    let (plain, _d1) = app(0);
    let baseline = time_process(&plain, &block);

    let (with_ve, _d2) = app(1);
    // Every validator lists the same 8 transactions (they are in the block too).
    let listed: Vec<Vec<u8>> = block[..8].to_vec();
    let commit = extended_commit(listed);
    let mut txs = vec![commit.clone()];
    txs.extend(block.iter().cloned());
    let injected = time_process(&with_ve, &txs);

    let block_bytes: usize = block.iter().map(Vec::len).sum();
    println!(
        "ProcessProposal, 32 txs of 200 B ({block_bytes} B), 4 validators, mean of {ROUNDS} runs"
    );
    println!(
        "  without extended commit: {:>9.1} us",
        baseline.as_secs_f64() * 1e6
    );
    println!(
        "  with extended commit:    {:>9.1} us  (ratio {:.2})",
        injected.as_secs_f64() * 1e6,
        injected.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  extended commit size:    {:>9} B  ({:.1}% of the block)",
        commit.len(),
        100.0 * commit.len() as f64 / (block_bytes + commit.len()) as f64
    );
}
