//! What a state-sync snapshot costs: a state of 100 k and 1 M accounts (and
//! one NMT root per height of a chain 10,000 heights old), then the
//! snapshot taken from the store (`snapshot::export`: one RocksDB snapshot,
//! records in chunks) and restored into an empty store (`Restore`: chunk
//! hashes, the tree rebuilt, its root checked, one synced write). Rollup
//! batch items are not in a snapshot (only their heights' NMT roots are:
//! the tree commits to them), so their number does not change these
//! figures.
//!
//! Run: `cargo bench -p seqnet-abci --bench snapshot`;
//! `SEQNET_BENCH_ACCOUNTS=100000` picks the sizes, `SEQNET_BENCH_JSON`
//! where the JSON goes (default `bench-snapshot.json`).

use std::time::Instant;

use seqnet_abci::bench_support::{export, Cf, Restore, WriteSet};
use seqnet_abci::Store;

/// Heights whose NMT roots the state holds.
const HEIGHTS: u64 = 10_000;
/// Accounts per write while the state is built.
const STEP: u64 = 100_000;

fn account_key(i: u64) -> Vec<u8> {
    seqnet_proto::sha256(&i.to_be_bytes()).to_vec()
}

/// An account record's size in the real state (a `pb::Account`).
fn account_value(i: u64) -> Vec<u8> {
    let mut v = account_key(i);
    v.extend_from_slice(&i.to_be_bytes());
    v.extend_from_slice(&1_000_000_000u64.to_be_bytes());
    v
}

/// A store at height `HEIGHTS` holding `accounts` accounts and a root per
/// height, written in steps at consecutive versions ending at `HEIGHTS`
/// (the tree starts empty at any version); returns its app hash.
fn build(store: &Store, accounts: u64) -> [u8; 32] {
    let steps = accounts.div_ceil(STEP).max(1);
    let mut root = [0; 32];
    for step in 0..steps {
        let mut set = WriteSet::default();
        for i in step * STEP..((step + 1) * STEP).min(accounts) {
            set.put(Cf::Accounts, account_key(i), account_value(i));
        }
        if step == 0 {
            for height in 1..=HEIGHTS {
                set.put(Cf::Roots, height.to_be_bytes().to_vec(), vec![7; 56]);
            }
        }
        root = commit(store, HEIGHTS - steps + 1 + step, set);
    }
    root
}

fn commit(store: &Store, version: u64, mut set: WriteSet) -> [u8; 32] {
    let (root, tree) = store.tree_update(version, &set).expect("tree update");
    set.extend(tree);
    store.commit(&set).expect("commit");
    root
}

fn main() {
    let sizes: Vec<u64> = std::env::var("SEQNET_BENCH_ACCOUNTS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    println!("state-sync snapshots: accounts and {HEIGHTS} NMT roots; take (export) and restore");
    println!(
        "{:>9} {:>8} {:>12} {:>10} {:>12}",
        "accounts", "chunks", "bytes", "take (s)", "restore (s)"
    );
    let mut rows = Vec::new();
    for accounts in sizes {
        let source_dir = tempfile::tempdir().expect("tempdir");
        let source = Store::open(source_dir.path()).expect("store");
        let built = Instant::now();
        let app_hash = build(&source, accounts);
        eprintln!(
            "  {accounts} accounts: state built in {:.1} s",
            built.elapsed().as_secs_f64()
        );
        source.compact().expect("compact");

        let taken = Instant::now();
        let (manifest, chunks) = export(&source, HEIGHTS).expect("export");
        let take = taken.elapsed();
        let bytes: usize = chunks.iter().map(Vec::len).sum();

        let target_dir = tempfile::tempdir().expect("tempdir");
        let target = Store::open(target_dir.path()).expect("store");
        let restored = Instant::now();
        let mut restore = Restore::new(&target, manifest.clone(), &app_hash).expect("offer");
        let mut done = false;
        for (index, chunk) in chunks.iter().enumerate() {
            done = restore
                .apply(&target, index as u32, chunk)
                .expect("apply chunk");
        }
        let restore_time = restored.elapsed();
        assert!(done, "every chunk applied");
        println!(
            "{accounts:>9} {:>8} {bytes:>12} {:>10.2} {:>12.2}",
            manifest.chunks(),
            take.as_secs_f64(),
            restore_time.as_secs_f64()
        );
        rows.push(serde_json::json!({
            "accounts": accounts,
            "roots": HEIGHTS,
            "chunks": manifest.chunks(),
            "bytes": bytes,
            "take_s": take.as_secs_f64(),
            "restore_s": restore_time.as_secs_f64(),
        }));
    }
    let path = std::env::var("SEQNET_BENCH_JSON").unwrap_or_else(|_| "bench-snapshot.json".into());
    std::fs::write(&path, serde_json::to_string_pretty(&rows).expect("json")).expect("write json");
    println!("wrote {path}");
}
