//! What the state tree costs a real block: the app's ProcessProposal,
//! FinalizeBlock and Commit for blocks of 500 rollup-data transactions from
//! 500 different accounts, with 10 k, 100 k and 1 M accounts in the state,
//! two ways in one run:
//!
//! - `digest`: the app hash as before the state tree (SHA-256 over the
//!   block's writes, chained; `AppHashScheme::WriteDigest`, kept for this
//!   baseline only);
//! - `tree`: the app hash as the state tree's root (the protocol).
//!
//! Everything else is the same code: decoding, signature checks, nonces and
//! fees, the block's namespaced Merkle tree and stored proofs, one synced
//! RocksDB write. An accepted ProcessProposal finishes the block (tree and
//! app hash included) in the background while the validators vote;
//! FinalizeBlock waits for it. So FinalizeBlock + Commit is measured twice:
//! called at once after ProcessProposal (the work cannot hide), and after a
//! pause standing for the two voting rounds (`VOTE_GAP`). The whole block
//! (ProcessProposal + FinalizeBlock + Commit, no pause) is the CPU a
//! validator spends either way.
//!
//! The store is compacted after genesis and the first blocks are not
//! measured (both ways): the blocks run on a settled store and heap, as a
//! chain's would.
//!
//! Run: `make bench-state` (or `cargo bench -p seqnet-abci --bench
//! block_commit`); `SEQNET_BENCH_ACCOUNTS=10000,100000` picks the sizes,
//! `SEQNET_BENCH_JSON` where the JSON goes (default `bench-block.json`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use seqnet_abci::bench_support::AppHashScheme;
use seqnet_abci::{NoObserver, SeqnetApp, Store};
use seqnet_proto::{Action, Address, TransactionBody};
use tendermint_abci::Application;
use tendermint_proto::v0_38::{abci, crypto, types};

const CHAIN: &str = "seqnet-bench";
const TXS_PER_BLOCK: usize = 500;
const BLOCKS: usize = 20;
/// Blocks run before the measured ones. The first blocks after a large
/// genesis pay for it: freeing a block's writes made the allocator return
/// the genesis's gigabytes to the system (65–170 ms in one Commit at 1 M
/// accounts), and RocksDB compacts what genesis wrote.
const WARMUP_BLOCKS: usize = 8;
const DATA_BYTES: usize = 256;
const ROLLUP: u64 = 1;
/// Prevote and precommit between ProcessProposal and FinalizeBlock (odd
/// blocks; even blocks have none). 50 ms is two message delays of 25 ms,
/// less than most networks of machines in different places.
const VOTE_GAP: Duration = Duration::from_millis(50);

struct Blocks {
    senders: Vec<Address>,
    /// Each block's transactions, signed beforehand.
    txs: Vec<Vec<Vec<u8>>>,
}

fn blocks() -> Blocks {
    let keys: Vec<SigningKey> = (0..TXS_PER_BLOCK * (WARMUP_BLOCKS + BLOCKS))
        .map(|i| SigningKey::from_bytes(&seqnet_proto::sha256(&(i as u64).to_be_bytes())))
        .collect();
    let senders = keys
        .iter()
        .map(|k| Address::from(&k.verifying_key()))
        .collect();
    let txs = keys
        .chunks(TXS_PER_BLOCK)
        .map(|block| {
            block
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    let mut data = vec![0u8; DATA_BYTES];
                    data[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    TransactionBody {
                        chain_id: CHAIN.into(),
                        nonce: 0,
                        fee: 10 + DATA_BYTES as u64,
                        actions: vec![Action::RollupData {
                            rollup_id: ROLLUP,
                            data,
                        }],
                    }
                    .sign(key)
                    .to_bytes()
                    .to_vec()
                })
                .collect()
        })
        .collect();
    Blocks { senders, txs }
}

/// `accounts` accounts: the senders, and others that only sit in the state.
fn genesis(accounts: usize, senders: &[Address]) -> Vec<u8> {
    let mut json = String::with_capacity(accounts * 100);
    json.push_str("{\"accounts\":[");
    // Addresses are ed25519 keys: others are hashes that decode as points.
    let mut candidates = (0u64..)
        .map(|n| seqnet_proto::sha256(&n.to_le_bytes()))
        .filter(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_ok());
    for i in 0..accounts.max(senders.len()) {
        let address = match senders.get(i) {
            Some(a) => a.to_string(),
            None => hex::encode(candidates.next().unwrap_or_default()),
        };
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"address\":\"{address}\",\"balance\":1000000000}}"
        ));
    }
    json.push_str(&format!(
        "],\"rollups\":[{{\"id\":{ROLLUP},\"name\":\"bench\",\"owner\":\"{}\",\"proof_window\":10,\"inclusion_window\":5}}]}}",
        senders[0]
    ));
    json.into_bytes()
}

fn init(dir: &std::path::Path, scheme: AppHashScheme, app_state: &[u8]) -> SeqnetApp {
    let store = Arc::new(Store::open_with_scheme(dir, scheme).expect("store"));
    let app = SeqnetApp::new(store.clone(), Arc::new(NoObserver)).expect("app");
    let validator = SigningKey::from_bytes(&[11; 32]);
    app.init_chain(abci::RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: app_state.to_vec().into(),
        initial_height: 1,
        validators: vec![abci::ValidatorUpdate {
            pub_key: Some(crypto::PublicKey {
                sum: Some(crypto::public_key::Sum::Ed25519(
                    validator.verifying_key().to_bytes().to_vec(),
                )),
            }),
            power: 10,
        }],
        consensus_params: Some(types::ConsensusParams::default()),
        ..Default::default()
    });
    // A chain that grew to this size has a settled store, not the
    // compaction debt of writing it all at genesis.
    store.compact().expect("compact");
    app
}

#[derive(Default)]
struct Times {
    /// Blocks without a pause: ProcessProposal, FinalizeBlock + Commit.
    process: Vec<Duration>,
    finalize_commit: Vec<Duration>,
    /// FinalizeBlock + Commit after `VOTE_GAP`, and FinalizeBlock alone.
    finalize_commit_after_votes: Vec<Duration>,
    finalize_after_votes: Vec<Duration>,
}

fn run_blocks(app: &SeqnetApp, blocks: &Blocks) -> Times {
    let mut times = Times::default();
    for (i, txs) in blocks.txs.iter().enumerate() {
        let height = i as i64 + 1;
        let txs: Vec<bytes::Bytes> = txs.iter().cloned().map(Into::into).collect();
        // The block's hash, as CometBFT sends it to both calls: FinalizeBlock
        // then reuses ProcessProposal's run, as on a validator.
        let hash: bytes::Bytes = seqnet_proto::sha256(&height.to_be_bytes()).to_vec().into();
        let t = Instant::now();
        let accepted = app.process_proposal(abci::RequestProcessProposal {
            txs: txs.clone(),
            height,
            hash: hash.clone(),
            ..Default::default()
        });
        let process = t.elapsed();
        let voting = i % 2 == 1;
        if voting {
            std::thread::sleep(VOTE_GAP);
        }
        assert_eq!(
            accepted.status,
            abci::response_process_proposal::ProposalStatus::Accept as i32,
            "block {height} rejected"
        );
        let t = Instant::now();
        let response = app.finalize_block(abci::RequestFinalizeBlock {
            txs,
            height,
            hash,
            ..Default::default()
        });
        let finalized = t.elapsed();
        app.commit();
        let finalize_commit = t.elapsed();
        if i < WARMUP_BLOCKS {
            // not measured
        } else if voting {
            times.finalize_after_votes.push(finalized);
            times.finalize_commit_after_votes.push(finalize_commit);
        } else {
            times.process.push(process);
            times.finalize_commit.push(finalize_commit);
        }
        if let Some(failed) = response.tx_results.iter().find(|r| r.code != 0) {
            panic!("block {height}: a transaction failed: {}", failed.log);
        }
    }
    times
}

fn mean_ms(samples: &[Duration]) -> f64 {
    samples.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / samples.len() as f64
}

fn p50_ms(samples: &[Duration]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SEQNET_BENCH_ACCOUNTS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let blocks = blocks();
    println!(
        "blocks of {TXS_PER_BLOCK} rollup-data transactions ({DATA_BYTES} B) from {TXS_PER_BLOCK} accounts, {BLOCKS} blocks after {WARMUP_BLOCKS} unmeasured (every other one after a {} ms vote pause); ms per block (mean / p50), digest against tree (ratio)",
        VOTE_GAP.as_millis()
    );
    println!(
        "{:>9} {:>30} {:>30} {:>30}",
        "accounts",
        "FinalizeBlock+Commit at once",
        "FinalizeBlock+Commit after votes",
        "whole block (PP+FB+C)"
    );
    let mut rows = Vec::new();
    for accounts in sizes {
        let app_state = genesis(accounts, &blocks.senders);
        let mut results = Vec::new();
        for scheme in [AppHashScheme::WriteDigest, AppHashScheme::StateTree] {
            let dir = tempfile::tempdir().expect("tempdir");
            let started = Instant::now();
            let app = init(dir.path(), scheme, &app_state);
            eprintln!(
                "  {accounts} accounts, {scheme:?}: genesis in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            results.push(run_blocks(&app, &blocks));
        }
        let (digest, tree) = (&results[0], &results[1]);
        let whole = |t: &Times| -> Vec<Duration> {
            t.process
                .iter()
                .zip(&t.finalize_commit)
                .map(|(p, f)| *p + *f)
                .collect()
        };
        let columns = [
            (&digest.finalize_commit, &tree.finalize_commit),
            (
                &digest.finalize_commit_after_votes,
                &tree.finalize_commit_after_votes,
            ),
            (&whole(digest), &whole(tree)),
        ];
        let mut line = format!("{accounts:>9}");
        let mut json = Vec::new();
        for (d, t) in columns {
            let ratio = mean_ms(t) / mean_ms(d);
            line.push_str(&format!(
                " {:>6.2}/{:>6.2} {:>6.2}/{:>6.2} ({ratio:>4.2})",
                mean_ms(d),
                p50_ms(d),
                mean_ms(t),
                p50_ms(t)
            ));
            json.push(serde_json::json!({
                "digest": { "mean": mean_ms(d), "p50": p50_ms(d) },
                "tree": { "mean": mean_ms(t), "p50": p50_ms(t) },
                "ratio": ratio,
            }));
        }
        println!("{line}");
        println!(
            "{:>9} after votes, FinalizeBlock alone: digest {:.2} / tree {:.2} (p50 {:.2} / {:.2})",
            "",
            mean_ms(&digest.finalize_after_votes),
            mean_ms(&tree.finalize_after_votes),
            p50_ms(&digest.finalize_after_votes),
            p50_ms(&tree.finalize_after_votes)
        );
        let ms = |samples: &[Duration]| -> Vec<String> {
            samples
                .iter()
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
                .collect()
        };
        println!(
            "{:>9} after votes, FinalizeBlock + Commit per block: digest [{}] / tree [{}]",
            "",
            ms(&digest.finalize_commit_after_votes).join(" "),
            ms(&tree.finalize_commit_after_votes).join(" ")
        );
        rows.push(serde_json::json!({
            "accounts": accounts,
            "txs_per_block": TXS_PER_BLOCK,
            "blocks": BLOCKS,
            "vote_gap_ms": VOTE_GAP.as_millis() as u64,
            "finalize_commit_ms": json[0],
            "finalize_commit_after_votes_ms": json[1],
            "whole_block_ms": json[2],
        }));
    }
    let out = std::env::var("SEQNET_BENCH_JSON").unwrap_or_else(|_| "bench-block.json".into());
    match serde_json::to_vec_pretty(&serde_json::Value::Array(rows)) {
        Ok(bytes) => match std::fs::write(&out, bytes) {
            Ok(()) => eprintln!("wrote {out}"),
            Err(e) => eprintln!("{out}: {e}"),
        },
        Err(e) => eprintln!("JSON: {e}"),
    }
}
