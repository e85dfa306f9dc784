//! What the authenticated state tree costs a block's commit, and what a
//! verified read costs a client: with 10 k, 100 k and 1 M accounts in the
//! state, each block's writes (account updates and the block's own records)
//! committed two ways in one run:
//!
//! - `digest`: the app hash before the tree (SHA-256 over the block's
//!   writes, chained; `AppHashScheme::WriteDigest`) and one synced RocksDB
//!   write;
//! - `tree`: the Jellyfish Merkle update of the same writes (the app hash
//!   now) and one synced write of the records and the tree's nodes.
//!
//! Execution (signatures, rules) is the same either way and left out. Then
//! proofs of random accounts: bytes per proof, node time to prove, client
//! time to verify.
//!
//! Run: `make bench-state` (or `cargo bench -p seqnet-abci --bench
//! state_commit`); `SEQNET_BENCH_ACCOUNTS=10000,100000` picks the sizes,
//! `SEQNET_BENCH_JSON` where the JSON goes (default `bench-state.json`).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use seqnet_abci::bench_support::{AppHashScheme, Cf, WriteSet};
use seqnet_abci::Store;
use seqnet_proto::state_proof::{self, Space};

/// Account updates per block (a busy block: every transaction touches its
/// signer and pays the fee pool).
const UPDATES_PER_BLOCK: usize = 500;
const BLOCKS: usize = 30;
const PROOFS: usize = 1000;
/// Accounts written per population step.
const CHUNK: usize = 50_000;

fn account_key(i: u64) -> Vec<u8> {
    seqnet_proto::sha256(&i.to_be_bytes()).to_vec()
}

/// An account record's size in the real state (a `pb::Account`).
fn account_value(i: u64, nonce: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&account_key(i));
    v.extend_from_slice(&nonce.to_be_bytes());
    v.extend_from_slice(&(1_000_000_000u64 - nonce).to_be_bytes());
    v
}

fn block_writes(rng: &mut impl Rng, accounts: u64, height: u64) -> WriteSet {
    let mut set = WriteSet::default();
    for _ in 0..UPDATES_PER_BLOCK {
        let i = rng.gen_range(0..accounts);
        set.put(Cf::Accounts, account_key(i), account_value(i, height));
    }
    set.put(
        Cf::Meta,
        b"fee_pool".to_vec(),
        height.to_be_bytes().to_vec(),
    );
    set.put(Cf::Roots, height.to_be_bytes().to_vec(), vec![7; 56]);
    set.put(
        Cf::Batches,
        [1u64.to_be_bytes(), height.to_be_bytes()].concat(),
        vec![9; 64 * 1024],
    );
    set
}

struct Stats {
    mean_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    Stats {
        mean_ms: samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64,
        p50_ms: at(0.5),
        p95_ms: at(0.95),
    }
}

/// The block's app hash (as the store's scheme makes it) and its one synced write.
fn commit_block(store: &Store, version: u64, writes: &WriteSet) -> [u8; 32] {
    let (root, tree) = store.tree_update(version, writes).expect("tree update");
    let mut all = writes.clone();
    all.extend(tree);
    store.commit(&all).expect("commit");
    root
}

fn run(accounts: u64) -> serde_json::Value {
    let digest_dir = tempfile::tempdir().expect("tempdir");
    let tree_dir = tempfile::tempdir().expect("tempdir");
    let digest_store =
        Store::open_with_scheme(digest_dir.path(), AppHashScheme::WriteDigest).expect("store");
    let tree_store = Store::open(tree_dir.path()).expect("store");

    // Populate both stores with the same accounts.
    let started = Instant::now();
    let mut version = 0u64;
    let mut next = 0u64;
    while next < accounts {
        let end = (next + CHUNK as u64).min(accounts);
        let mut set = WriteSet::default();
        for i in next..end {
            set.put(Cf::Accounts, account_key(i), account_value(i, 0));
        }
        commit_block(&digest_store, version, &set);
        commit_block(&tree_store, version, &set);
        version += 1;
        next = end;
        eprint!("\r  {accounts} accounts: populated {next}");
    }
    eprintln!(" in {:.1} s", started.elapsed().as_secs_f64());

    let mut rng = rand::rngs::StdRng::seed_from_u64(accounts);
    let mut digest_times = Vec::new();
    let mut tree_times = Vec::new();
    let mut tree_node_writes = 0usize;
    let mut update_times = Vec::new();
    for _ in 0..BLOCKS {
        let writes = block_writes(&mut rng, accounts, version);
        let t = Instant::now();
        commit_block(&digest_store, version, &writes);
        digest_times.push(t.elapsed());

        let t = Instant::now();
        let (_, tree) = tree_store
            .tree_update(version, &writes)
            .expect("tree update");
        update_times.push(t.elapsed());
        tree_node_writes += tree.entries().count();
        let mut all = writes.clone();
        all.extend(tree);
        tree_store.commit(&all).expect("commit");
        tree_times.push(t.elapsed());
        version += 1;
    }
    let digest = stats(digest_times);
    let tree = stats(tree_times);
    let update = stats(update_times);
    eprintln!(
        "  tree update (no write) mean {:.2} ms; {} tree writes per block",
        update.mean_ms,
        tree_node_writes / BLOCKS
    );

    // Verified reads of random accounts (and of absent ones).
    let mut prove_times = Vec::new();
    let mut verify_times = Vec::new();
    let mut present_bytes = 0usize;
    let mut absent_bytes = 0usize;
    let root = {
        let mut set = WriteSet::default();
        set.put(Cf::Meta, b"fee_pool".to_vec(), vec![0]);
        commit_block(&tree_store, version, &set)
    };
    for n in 0..PROOFS {
        let absent = n % 10 == 0;
        let key = if absent {
            account_key(accounts + n as u64)
        } else {
            account_key(rng.gen_range(0..accounts))
        };
        let t = Instant::now();
        let read = tree_store.prove(Cf::Accounts, &key).expect("prove");
        prove_times.push(t.elapsed());
        if absent {
            absent_bytes += read.proof.len();
        } else {
            present_bytes += read.proof.len();
        }
        let t = Instant::now();
        state_proof::verify(
            &root,
            Space::Accounts,
            &key,
            read.value.as_deref(),
            &read.proof,
        )
        .expect("verify");
        verify_times.push(t.elapsed());
    }
    let absent_reads = PROOFS / 10;
    let present_reads = PROOFS - absent_reads;
    let prove = stats(prove_times);
    let verify = stats(verify_times);
    let ratio = tree.mean_ms / digest.mean_ms;
    println!(
        "{accounts:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>6.2} {:>7} {:>7} {:>8.1} {:>8.1}",
        digest.mean_ms,
        digest.p50_ms,
        digest.p95_ms,
        tree.mean_ms,
        tree.p50_ms,
        tree.p95_ms,
        ratio,
        present_bytes / present_reads,
        absent_bytes / absent_reads,
        prove.mean_ms * 1e3,
        verify.mean_ms * 1e3,
    );
    serde_json::json!({
        "accounts": accounts,
        "updates_per_block": UPDATES_PER_BLOCK,
        "blocks": BLOCKS,
        "digest_commit_ms": {"mean": digest.mean_ms, "p50": digest.p50_ms, "p95": digest.p95_ms},
        "tree_commit_ms": {"mean": tree.mean_ms, "p50": tree.p50_ms, "p95": tree.p95_ms},
        "tree_over_digest": ratio,
        "tree_update_ms_mean": update.mean_ms,
        "tree_writes_per_block": tree_node_writes / BLOCKS,
        "proof_bytes_present": present_bytes / present_reads,
        "proof_bytes_absent": absent_bytes / absent_reads,
        "prove_us_mean": prove.mean_ms * 1e3,
        "verify_us": {"mean": verify.mean_ms * 1e3, "p95": verify.p95_ms * 1e3},
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let sizes: Vec<u64> = std::env::var("SEQNET_BENCH_ACCOUNTS")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "block commit with {UPDATES_PER_BLOCK} account updates + a 64 KiB batch, {BLOCKS} blocks; {PROOFS} account reads (1 in 10 absent)"
    );
    println!(
        "{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>7} {:>7} {:>8} {:>8}",
        "accounts",
        "digest ms",
        "p50",
        "p95",
        "tree ms",
        "p50",
        "p95",
        "ratio",
        "proof B",
        "absent",
        "prove us",
        "verify us"
    );
    let results: Vec<_> = sizes.into_iter().map(run).collect();
    let out = std::env::var("SEQNET_BENCH_JSON").unwrap_or_else(|_| "bench-state.json".into());
    let json = serde_json::json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "results": results,
    });
    match std::fs::write(
        &out,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    ) {
        Ok(()) => println!("wrote {out}"),
        Err(e) => eprintln!("could not write {out}: {e}"),
    }
}
