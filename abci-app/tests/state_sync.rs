//! State sync through the ABCI calls CometBFT makes, on real stores: a node
//! taking a snapshot every 4 blocks lists it (once three blocks are
//! committed above it) and serves its chunks; a new,
//! empty node accepts the offer, refuses a corrupted chunk (fetch again,
//! sender reported), applies the rest, and then answers Info with the
//! snapshot's height and app hash and executes the next blocks to the same
//! app hashes as the node that ran every block.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci;

const INTERVAL: u64 = 4;

fn run_block(node: &Node, height: i64) -> Vec<u8> {
    run_data_block(node, height).0
}

/// The snapshots `node` lists once one of `height` is there.
fn listed_at(node: &Node, height: u64) -> Vec<abci::Snapshot> {
    let started = Instant::now();
    loop {
        let listed = node.app.list_snapshots().snapshots;
        if listed.iter().any(|s| s.height == height) {
            return listed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no snapshot of height {height}: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_new_node_restores_a_snapshot_and_carries_on() {
    use abci::response_apply_snapshot_chunk::Result as Apply;
    use abci::response_offer_snapshot::Result as Offer;

    let source = new_node(0);
    source
        .app
        .set_snapshots(source.dir.path().join("snapshots"), INTERVAL, 2);
    let mut app_hashes = vec![Vec::new()];
    for height in 1..=11i64 {
        app_hashes.push(run_block(&source, height));
        if height == 7 {
            listed_at(&source, 4);
        }
        if height == 8 {
            // Not listed before peers have the two blocks after it.
            let listed = source.app.list_snapshots().snapshots;
            assert!(listed.iter().all(|s| s.height < 8), "{listed:?}");
        }
    }
    let listed = listed_at(&source, 8);
    assert_eq!(
        listed.iter().map(|s| s.height).collect::<Vec<_>>(),
        vec![8, 4],
        "the latest two, highest first"
    );
    let snapshot = listed[0].clone();

    let joining = open(tempfile::tempdir().expect("tempdir"));
    let offer = |snapshot: abci::Snapshot, app_hash: Vec<u8>| {
        joining
            .app
            .offer_snapshot(abci::RequestOfferSnapshot {
                snapshot: Some(snapshot),
                app_hash: app_hash.into(),
            })
            .result
    };
    // Another format, or an app hash the snapshot does not lead to.
    let mut other_format = snapshot.clone();
    other_format.format = 2;
    assert_eq!(
        offer(other_format, app_hashes[8].clone()),
        Offer::RejectFormat as i32
    );
    assert_eq!(
        offer(snapshot.clone(), app_hashes[7].clone()),
        Offer::Accept as i32
    );
    let chunk = |index: u32| {
        source
            .app
            .load_snapshot_chunk(abci::RequestLoadSnapshotChunk {
                height: snapshot.height,
                format: snapshot.format,
                chunk: index,
            })
            .chunk
    };
    let apply = |index: u32, chunk: bytes::Bytes, sender: &str| {
        joining
            .app
            .apply_snapshot_chunk(abci::RequestApplySnapshotChunk {
                index,
                chunk,
                sender: sender.into(),
            })
    };
    // The wrong app hash is found at the last chunk: the snapshot is refused.
    let mut verdict = abci::ResponseApplySnapshotChunk::default();
    for index in 0..snapshot.chunks {
        verdict = apply(index, chunk(index), "peer-a");
    }
    assert_eq!(verdict.result, Apply::RejectSnapshot as i32);
    assert_eq!(
        joining
            .app
            .info(abci::RequestInfo::default())
            .last_block_height,
        0
    );

    // The right one, with a corrupted chunk from one peer on the way.
    assert_eq!(
        offer(snapshot.clone(), app_hashes[8].clone()),
        Offer::Accept as i32
    );
    let mut corrupted = chunk(0).to_vec();
    corrupted[0] ^= 1;
    let refused = apply(0, corrupted.into(), "peer-bad");
    assert_eq!(refused.result, Apply::Retry as i32);
    assert_eq!(refused.refetch_chunks, vec![0]);
    assert_eq!(refused.reject_senders, vec!["peer-bad".to_string()]);
    for index in 0..snapshot.chunks {
        let verdict = apply(index, chunk(index), "peer-good");
        assert_eq!(verdict.result, Apply::Accept as i32, "chunk {index}");
    }
    let info = joining.app.info(abci::RequestInfo::default());
    assert_eq!(info.last_block_height, 8);
    assert_eq!(info.last_block_app_hash.to_vec(), app_hashes[8]);

    // It runs the next blocks to the same app hashes.
    for height in 9..=11i64 {
        assert_eq!(
            run_block(&joining, height),
            app_hashes[height as usize],
            "height {height}"
        );
    }
    // Blocks before the snapshot are not on the new node, and it says so.
    let answer = joining.app.query(abci::RequestQuery {
        path: "/batch/1/3".into(),
        ..Default::default()
    });
    assert_eq!(answer.code, 2, "{}", answer.log);
    // A node with state refuses an offer.
    assert_eq!(offer(snapshot, app_hashes[8].clone()), Offer::Abort as i32);
}
