//! Pruning on a real store: with a retention of 5 blocks, Commit asks
//! CometBFT to keep the last 5 heights, the app deletes older block data,
//! and reads below the retained height fail with their own code (2) while
//! recent ones work; the app hash never depends on it (a node keeping
//! everything computes the same hashes).

mod common;

use common::*;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci;

const RETENTION: u64 = 5;

fn query(node: &Node, path: &str) -> abci::ResponseQuery {
    node.app.query(abci::RequestQuery {
        path: path.into(),
        ..Default::default()
    })
}

#[test]
fn old_block_data_is_pruned_and_reads_of_it_say_so() {
    let pruning = new_node(0);
    pruning.app.set_block_retention(RETENTION);
    let archive = new_node(0);
    for height in 1..=12i64 {
        let (hash, retain) = run_data_block(&pruning, height);
        let (archive_hash, archive_retain) = run_data_block(&archive, height);
        assert_eq!(hash, archive_hash, "height {height}: pruning is local");
        assert_eq!(archive_retain, 0, "an archive node prunes nothing");
        let want = (height - RETENTION as i64 + 1).max(1);
        assert_eq!(retain, want, "height {height}");
    }
    // Kept from 8 on.
    for height in 8..=12 {
        let answer = query(&pruning, &format!("/batch/1/{height}"));
        assert_eq!(answer.code, 0, "{height}: {}", answer.log);
    }
    for height in [1, 7] {
        let answer = query(&pruning, &format!("/batch/1/{height}"));
        assert_eq!(answer.code, 2, "{height}: {}", answer.log);
        assert!(answer.log.contains("pruned"), "{}", answer.log);
        assert_eq!(query(&archive, &format!("/batch/1/{height}")).code, 0);
    }
    let answer = query(&pruning, "/block/3");
    assert_eq!(answer.code, 2, "{}", answer.log);
    // A scan for non-empty heights from a pruned one says so too.
    let reader = pruning.app.reader();
    assert!(matches!(
        reader.batch_heights(1, 3, 10),
        Err(seqnet_abci::QueryError::Pruned {
            height: 3,
            retained: 8
        })
    ));
    assert_eq!(
        reader.batch_heights(1, 8, 10).expect("kept"),
        vec![8, 9, 10, 11, 12]
    );
}
