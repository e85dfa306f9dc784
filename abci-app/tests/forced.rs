//! Forced inclusion at the app level: PrepareProposal, ProcessProposal and
//! FinalizeBlock driven directly, with a 4-validator set that signs real
//! vote extensions.

mod common;

use common::*;
use seqnet_proto::inclusion::{encode_system_tx, SYSTEM_TX_PREFIX};
use seqnet_proto::{pb, Action, Transaction};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci;

fn tx(bytes: &[u8]) -> Transaction {
    Transaction::decode(bytes, 1 << 20, 64).expect("decodes")
}

fn force(payer: u8, nonce: u64, inner: &[u8]) -> Vec<u8> {
    signed(
        payer,
        nonce,
        10 + inner.len() as u64,
        vec![Action::ForceInclude {
            tx: Box::new(tx(inner)),
        }],
    )
}

fn system_tx(height: i64, lists: &[(u8, Vec<Vec<u8>>)]) -> Vec<u8> {
    injected(height, &extended_commit_info(height, lists))
}

/// The system transaction a proposer injects for `info`, taken as it is.
fn injected(height: i64, info: &abci::ExtendedCommitInfo) -> Vec<u8> {
    encode_system_tx(&pb::ExtendedCommit {
        height,
        round: 0,
        votes: info
            .votes
            .iter()
            .map(|v| pb::ExtendedVote {
                validator_address: v
                    .validator
                    .as_ref()
                    .map(|x| x.address.to_vec())
                    .unwrap_or_default(),
                extension: v.vote_extension.to_vec(),
                signature: v.extension_signature.to_vec(),
            })
            .collect(),
    })
}

fn empty_system_tx(height: i64) -> Vec<u8> {
    system_tx(
        height,
        &VALIDATOR_SEEDS
            .iter()
            .map(|s| (*s, vec![]))
            .collect::<Vec<_>>(),
    )
}

fn status(node: &Node, inner: &[u8]) -> pb::ForcedRequest {
    node.app
        .reader()
        .forced_request(&seqnet_proto::sha256(inner))
        .expect("request exists")
}

#[test]
fn a_proposal_that_omits_a_due_forced_tx_is_rejected() {
    let node = new_node(1);
    // Signer 2's data for rollup 1 (inclusion window 3), forced by signer 1.
    let inner = data_tx(2, 0, 1, b"censored?");
    finalize(&node, 1, &[force(1, 0, &inner)]);
    let request = status(&node, &inner);
    assert_eq!(request.deadline, 4);
    assert_eq!(request.status, pb::ForcedStatus::Pending as i32);

    // Before the deadline, leaving it out is allowed.
    for height in 2..=3 {
        let block = vec![empty_system_tx(height - 1)];
        assert!(accepts(&node, height, &block), "not due yet at {height}");
        finalize(&node, height, &block);
    }
    // At the deadline a block without it is censorship...
    let censoring = vec![empty_system_tx(3)];
    assert!(!accepts(&node, 4, &censoring));
    // ...and the honest proposer's block, which includes it, passes.
    let honest = propose(&node, 4, &[], Some(empty_votes(3)));
    assert!(honest[0].starts_with(SYSTEM_TX_PREFIX));
    assert_eq!(honest[1], inner);
    assert!(accepts(&node, 4, &honest));
    let response = finalize(&node, 4, &honest);
    assert!(response
        .events
        .iter()
        .any(|e| e.r#type == "forced_included"));
    let request = status(&node, &inner);
    assert_eq!(request.status, pb::ForcedStatus::Included as i32);
    assert_eq!(request.included_height, 4);
}

#[test]
fn an_inner_tx_that_became_invalid_resolves_as_failed() {
    let node = new_node(0);
    let inner = data_tx(2, 0, 1, b"will be replaced");
    finalize(&node, 1, &[force(1, 0, &inner)]);
    // Signer 2 uses nonce 0 for something else: the forced tx can never run.
    let other = data_tx(2, 0, 2, b"other");
    let response = finalize(&node, 2, &[other]);
    assert!(response.events.iter().any(|e| e.r#type == "forced_failed"));
    let request = status(&node, &inner);
    assert_eq!(request.status, pb::ForcedStatus::Failed as i32);
    assert_eq!(
        request.failure_code,
        seqnet_proto::Code::NonceReplayed.as_u32()
    );
    assert!(
        request.failure.contains("already used"),
        "{}",
        request.failure
    );
    // A failed request no longer binds proposers.
    assert!(accepts(&node, 3, &[]));
    // The same tx cannot be forced twice.
    assert_eq!(
        check(&node, &force(1, 1, &inner)).code,
        seqnet_proto::Code::ForcedRejected.as_u32()
    );
}

#[test]
fn inclusion_lists_with_more_than_a_third_of_the_power_force_a_tx() {
    let node = new_node(1);
    finalize(&node, 1, &[]);
    let listed = data_tx(2, 0, 2, b"seen by two validators");
    let lonely = data_tx(1, 0, 1, b"seen by one");
    let lists = vec![
        (11, vec![listed.clone(), lonely.clone()]),
        (12, vec![listed.clone()]),
        (13, vec![]),
        (14, vec![]),
    ];
    // The proposer's block carries the commit; it also includes the listed
    // txs itself (they are valid), which fulfils the request at once.
    let block = propose(&node, 2, &[], Some(extended_commit_info(1, &lists)));
    assert!(block[0].starts_with(SYSTEM_TX_PREFIX));
    assert_eq!(
        &block[1..],
        std::slice::from_ref(&listed),
        "only the >1/3 tx is forced"
    );
    assert!(accepts(&node, 2, &block));
    finalize(&node, 2, &block);
    let request = status(&node, &listed);
    assert_eq!(request.source, pb::ForcedSource::InclusionList as i32);
    assert_eq!(request.status, pb::ForcedStatus::Included as i32);
    assert!(node
        .app
        .reader()
        .forced_request(&seqnet_proto::sha256(&lonely))
        .is_err());

    // A proposer that injects the lists but leaves the tx out is rejected
    // once its deadline (window of rollup 2: 5 blocks) comes.
    let censored = data_tx(1, 0, 2, b"censored by the proposer");
    let lists = vec![
        (11, vec![censored.clone()]),
        (12, vec![censored.clone()]),
        (13, vec![]),
        (14, vec![]),
    ];
    let block = vec![system_tx(2, &lists)];
    assert!(accepts(&node, 3, &block));
    finalize(&node, 3, &block);
    assert_eq!(status(&node, &censored).deadline, 8);
    for height in 4..=7 {
        let block = vec![empty_system_tx(height - 1)];
        assert!(accepts(&node, height, &block));
        finalize(&node, height, &block);
    }
    assert!(!accepts(&node, 8, &[empty_system_tx(7)]));
    let honest = propose(&node, 8, &[], Some(empty_votes(7)));
    assert!(accepts(&node, 8, &honest));
}

#[test]
fn forged_underpowered_or_missing_extended_commits_are_rejected() {
    let node = new_node(1);
    finalize(&node, 1, &[]);
    // Missing altogether.
    assert!(!accepts(&node, 2, &[]));
    assert!(!accepts(&node, 2, &[data_tx(1, 0, 1, b"x")]));
    // Two of four validators: 20 of 40 power is not more than 2/3.
    let underpowered = system_tx(1, &[(11, vec![]), (12, vec![])]);
    assert!(!accepts(&node, 2, &[underpowered]));
    // A forged signature.
    let mut forged =
        extended_commit_info(1, &[(11, vec![]), (12, vec![]), (13, vec![]), (14, vec![])]);
    forged.votes[0].vote_extension =
        seqnet_proto::inclusion::encode_inclusion_list(vec![b"evil".to_vec()]).into();
    let forged_tx = injected(1, &forged);
    assert!(!accepts(&node, 2, &[forged_tx]));
    // Wrong height, and a system tx anywhere but first.
    assert!(!accepts(&node, 2, &[empty_system_tx(2)]));
    assert!(!accepts(
        &node,
        2,
        &[empty_system_tx(1), empty_system_tx(1)]
    ));
    // The proposer drops the forged vote when it builds its own block, and
    // still has more than 2/3 of the power.
    let block = propose(&node, 2, &[], Some(forged));
    assert!(accepts(&node, 2, &block));
}

#[test]
fn vote_extensions_list_waiting_txs_within_bounds() {
    let node = new_node(1);
    let waiting = data_tx(1, 0, 1, b"waiting");
    assert_eq!(check(&node, &waiting).code, 0);
    // Seen at height 0; the threshold is 2 blocks.
    let extension = |height: i64| {
        node.app
            .extend_vote(abci::RequestExtendVote {
                height,
                ..Default::default()
            })
            .vote_extension
    };
    assert_eq!(
        seqnet_proto::inclusion::decode_inclusion_list(&extension(1), 8, 16384)
            .expect("valid")
            .len(),
        0
    );
    for height in 1..=2 {
        let block = if height == 1 {
            vec![]
        } else {
            vec![empty_system_tx(1)]
        };
        finalize(&node, height, &block);
        assert_eq!(
            recheck(&node, &waiting).code,
            0,
            "still valid after {height}"
        );
    }
    let listed =
        seqnet_proto::inclusion::decode_inclusion_list(&extension(2), 8, 16384).expect("valid");
    assert_eq!(listed, vec![waiting.clone()]);

    let verify = |extension: Vec<u8>| {
        node.app
            .verify_vote_extension(abci::RequestVerifyVoteExtension {
                vote_extension: extension.into(),
                height: 2,
                ..Default::default()
            })
            .status
    };
    let accept = abci::response_verify_vote_extension::VerifyStatus::Accept as i32;
    let reject = abci::response_verify_vote_extension::VerifyStatus::Reject as i32;
    assert_eq!(verify(extension(2).to_vec()), accept);
    let too_many = seqnet_proto::inclusion::encode_inclusion_list(vec![b"t".to_vec(); 9]);
    assert_eq!(verify(too_many), reject);
    let too_big = seqnet_proto::inclusion::encode_inclusion_list(vec![vec![1u8; 17 * 1024]]);
    assert_eq!(verify(too_big), reject);
    assert_eq!(verify(b"\xff\xff".to_vec()), reject);
}
