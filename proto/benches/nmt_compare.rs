//! The namespaced Merkle tree of `seqnet_proto::nmt` against `nmt-rs` 0.2
//! (Celestia's Rust NMT) on the same blocks: building the tree and its
//! root, proving one namespace, the proof's bytes, and verifying it. Leaves
//! are 512-byte items spread over 16 rollups (namespaces), as a block's
//! batches are; 8-byte namespaces and SHA-256 on both sides (the roots are
//! equal: tests/nmt_rs_compat.rs).
//!
//! Run: `cargo bench -p seqnet-proto --bench nmt_compare` (release); prints
//! a table and writes JSON to `SEQNET_BENCH_JSON` (default
//! `bench-nmt.json`).

use std::time::{Duration, Instant};

use nmt_rs::simple_merkle::db::MemDb;
use nmt_rs::{
    NamespaceId, NamespaceMerkleHasher, NamespaceMerkleTree, NamespacedHash, NamespacedSha2Hasher,
};
use prost::Message;
use seqnet_proto::nmt::{self, NamespacedMerkleTree, NmtNode};
use seqnet_proto::pb;

type Theirs = NamespaceMerkleTree<MemDb<NamespacedHash<8>>, NamespacedSha2Hasher<8>, 8>;

const NAMESPACES: u64 = 16;
const ITEM_BYTES: usize = 512;
/// Bytes of one `nmt-rs` sibling (min and max namespace, digest) and of the
/// range (two u32) in a plain binary encoding of its proof.
const THEIR_SIBLING_BYTES: usize = 8 + 8 + 32;
const THEIR_RANGE_BYTES: usize = 8;

fn block(leaves: usize) -> Vec<(u64, Vec<u8>)> {
    (0..leaves)
        .map(|i| {
            let ns = 1 + (i as u64 * NAMESPACES) / leaves as u64;
            let mut data = vec![0u8; ITEM_BYTES];
            data[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (ns, data)
        })
        .collect()
}

/// Mean time of `f` over enough runs to take about 300 ms (at least 3).
fn time<T>(mut f: impl FnMut() -> T) -> Duration {
    let started = Instant::now();
    let mut runs = 0u32;
    while runs < 3 || started.elapsed() < Duration::from_millis(300) {
        std::hint::black_box(f());
        runs += 1;
    }
    started.elapsed() / runs
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken.
    let sizes = [64usize, 1024, 8192];
    println!(
        "{:>6} {:>12} {:>12} {:>11} {:>11} {:>8} {:>8} {:>11} {:>11}",
        "leaves",
        "build ours",
        "build nmt-rs",
        "prove ours",
        "prove nmt-rs",
        "B ours",
        "B nmt-rs",
        "verify ours",
        "verify nmt-rs"
    );
    let mut rows = Vec::new();
    for leaves in sizes {
        let items = block(leaves);
        let build_ours = time(|| {
            NamespacedMerkleTree::from_leaves(
                items.iter().map(|(ns, d)| NmtNode::leaf(*ns, d)).collect(),
            )
            .map(|t| t.root())
        });
        let build_theirs = time(|| {
            let mut tree = Theirs::with_hasher(NamespacedSha2Hasher::with_ignore_max_ns(true));
            for (ns, d) in &items {
                let _ = tree.push_leaf(d, NamespaceId(ns.to_be_bytes()));
            }
            tree.root()
        });
        let ours = NamespacedMerkleTree::from_leaves(
            items.iter().map(|(ns, d)| NmtNode::leaf(*ns, d)).collect(),
        )
        .expect("sorted leaves");
        let mut theirs = Theirs::with_hasher(NamespacedSha2Hasher::with_ignore_max_ns(true));
        for (ns, d) in &items {
            theirs
                .push_leaf(d, NamespaceId(ns.to_be_bytes()))
                .expect("sorted leaves");
        }
        let their_root = theirs.root();
        let our_root = ours.root();

        let (mut prove_ours, mut prove_theirs) = (Duration::ZERO, Duration::ZERO);
        let (mut verify_ours, mut verify_theirs) = (Duration::ZERO, Duration::ZERO);
        let (mut bytes_ours, mut bytes_theirs) = (0usize, 0usize);
        for ns in 1..=NAMESPACES {
            let data: Vec<&[u8]> = items
                .iter()
                .filter(|(n, _)| *n == ns)
                .map(|(_, d)| d.as_slice())
                .collect();
            let id = NamespaceId(ns.to_be_bytes());
            prove_ours += time(|| ours.prove_namespace(ns));
            prove_theirs += time(|| theirs.get_namespace_proof(id));
            let proof = ours.prove_namespace(ns);
            let their_proof = theirs.get_namespace_proof(id);
            bytes_ours += pb::NamespaceProof::from(&proof).encoded_len();
            bytes_theirs += their_proof.siblings().len() * THEIR_SIBLING_BYTES + THEIR_RANGE_BYTES;
            verify_ours += time(|| nmt::verify_namespace(&our_root, ns, &data, &proof).is_ok());
            verify_theirs += time(|| {
                their_proof
                    .verify_complete_namespace(&their_root, &data, id)
                    .is_ok()
            });
        }
        let n = NAMESPACES as u32;
        let row = serde_json::json!({
            "leaves": leaves,
            "build_us": { "ours": us(build_ours), "nmt_rs": us(build_theirs) },
            "prove_us": { "ours": us(prove_ours / n), "nmt_rs": us(prove_theirs / n) },
            "proof_bytes": { "ours": bytes_ours / NAMESPACES as usize, "nmt_rs": bytes_theirs / NAMESPACES as usize },
            "verify_us": { "ours": us(verify_ours / n), "nmt_rs": us(verify_theirs / n) },
        });
        println!(
            "{leaves:>6} {:>12.1} {:>12.1} {:>11.2} {:>11.2} {:>8} {:>8} {:>11.1} {:>11.1}",
            us(build_ours),
            us(build_theirs),
            us(prove_ours / n),
            us(prove_theirs / n),
            bytes_ours / NAMESPACES as usize,
            bytes_theirs / NAMESPACES as usize,
            us(verify_ours / n),
            us(verify_theirs / n),
        );
        rows.push(row);
    }
    let out = std::env::var("SEQNET_BENCH_JSON").unwrap_or_else(|_| "bench-nmt.json".into());
    match serde_json::to_vec_pretty(&serde_json::Value::Array(rows)) {
        Ok(bytes) => match std::fs::write(&out, bytes) {
            Ok(()) => eprintln!("wrote {out}"),
            Err(e) => eprintln!("{out}: {e}"),
        },
        Err(e) => eprintln!("JSON: {e}"),
    }
}
