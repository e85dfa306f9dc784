//! FinalizeBlock takes over an accepted ProcessProposal of the same block (by
//! hash), which finished the block in the background (results, tree, app
//! hash), and gives exactly what a fresh run gives; after a
//! ProcessProposal of another block (or none, as after a restart) it runs
//! the block itself.

mod common;

use common::*;
use seqnet_proto::Action;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci;

fn process(node: &Node, height: i64, hash: [u8; 32], txs: &[Vec<u8>]) -> bool {
    node.app
        .process_proposal(abci::RequestProcessProposal {
            txs: txs.iter().cloned().map(Into::into).collect(),
            height,
            hash: hash.to_vec().into(),
            ..Default::default()
        })
        .status
        == abci::response_process_proposal::ProposalStatus::Accept as i32
}

fn finalize_block(
    node: &Node,
    height: i64,
    hash: [u8; 32],
    txs: &[Vec<u8>],
) -> abci::ResponseFinalizeBlock {
    let response = node.app.finalize_block(abci::RequestFinalizeBlock {
        txs: txs.iter().cloned().map(Into::into).collect(),
        height,
        hash: hash.to_vec().into(),
        ..Default::default()
    });
    node.app.commit();
    response
}

/// Blocks with rollup data, a transfer, an extended commit whose inclusion
/// lists open a forced request and the forced transaction's inclusion: node
/// `reusing` sees ProcessProposal first (the same block, or at `decoy`
/// heights another one), node `fresh` only FinalizeBlock. Every response and
/// the app hashes must agree.
#[test]
fn finalize_after_process_proposal_matches_a_fresh_run() {
    let reusing = new_node(1);
    let fresh = new_node(1);
    let decoys = [4i64];
    let listed = data_tx(1, 1, 1, b"listed by validators");
    for height in 1..=6i64 {
        let nonce = u64::try_from(height - 1).expect("positive");
        let mut mempool = vec![data_tx(2, nonce, 2, format!("two at {height}").as_bytes())];
        if height == 1 {
            mempool.push(data_tx(1, 0, 1, b"first"));
        }
        // Account 3 holds 50: three transfers of 1 with fee 10.
        if height <= 3 {
            mempool.push(signed(
                3,
                nonce,
                10,
                vec![Action::Transfer {
                    to: address(1),
                    amount: 1,
                }],
            ));
        }
        // Validators holding 20 of 40 power list `listed` at height 2.
        let lists: Vec<(u8, Vec<Vec<u8>>)> = VALIDATOR_SEEDS
            .iter()
            .map(|s| {
                (
                    *s,
                    if *s <= 12 {
                        vec![listed.clone()]
                    } else {
                        vec![]
                    },
                )
            })
            .collect();
        let commit = (height > 1).then(|| extended_commit_info(height - 1, &lists));
        let block = propose(&reusing, height, &mempool, commit);
        let hash = [u8::try_from(height).expect("small"); 32];
        if decoys.contains(&height) {
            let other: Vec<Vec<u8>> = block.iter().take(1).cloned().collect();
            assert!(process(&reusing, height, [0xee; 32], &other));
        } else {
            assert!(process(&reusing, height, hash, &block), "height {height}");
        }
        let reused = finalize_block(&reusing, height, hash, &block);
        let ran = finalize_block(&fresh, height, hash, &block);
        assert_eq!(reused, ran, "height {height}");
        assert!(
            reused.tx_results.iter().all(|r| r.code == 0),
            "height {height}: {:?}",
            reused.tx_results
        );
    }
    let forced = fresh
        .app
        .reader()
        .forced_request(&seqnet_proto::sha256(&listed))
        .expect("the inclusion lists opened a forced request");
    assert!(forced.included_height > 0, "{forced:?}");
    let info = |node: &Node| node.app.info(abci::RequestInfo::default());
    assert_eq!(info(&reusing), info(&fresh));
    let (reusing, fresh) = (reusing.app.work_counts(), fresh.app.work_counts());
    assert_eq!((reusing.reused_runs, reusing.block_runs), (5, 1));
    assert_eq!((fresh.reused_runs, fresh.block_runs), (0, 6));
}

/// A restart between ProcessProposal and FinalizeBlock loses the kept run;
/// the reopened app runs the block and reaches the same app hash.
#[test]
fn a_restart_runs_the_block_again() {
    let node = new_node(0);
    let block = vec![data_tx(1, 0, 1, b"a"), data_tx(2, 0, 2, b"b")];
    assert!(process(&node, 1, [1; 32], &block));
    let expected = {
        let other = new_node(0);
        finalize_block(&other, 1, [1; 32], &block).app_hash
    };
    let Node { app, dir } = node;
    drop(app);
    let reopened = open(dir);
    let response = finalize_block(&reopened, 1, [1; 32], &block);
    assert_eq!(response.app_hash, expected);
    assert_eq!(reopened.app.work_counts().block_runs, 1);
}

/// On a proposer, a transaction is decoded by the node's gRPC check,
/// CheckTx, PrepareProposal and ProcessProposal (which shares its decode
/// with proof pre-verification), and executed by the last three; FinalizeBlock
/// reuses ProcessProposal's run. (Before the runs were kept: 7 and 4.)
#[test]
fn a_proposers_transaction_is_decoded_four_times_and_executed_three() {
    let node = new_node(0);
    let tx = data_tx(1, 0, 1, b"counted");
    node.app.check_stateless(&tx).expect("stateless");
    assert_eq!(check(&node, &tx).code, 0);
    let block = propose(&node, 1, std::slice::from_ref(&tx), None);
    assert_eq!(block, vec![tx]);
    assert!(process(&node, 1, [1; 32], &block));
    finalize_block(&node, 1, [1; 32], &block);
    let counts = node.app.work_counts();
    assert_eq!((counts.decoded, counts.executed), (4, 3));
    assert_eq!((counts.reused_runs, counts.block_runs), (1, 0));
}
