//! `SubmitAggregate` at the app level, with real Groth16 proofs of the
//! reference circuit (k = 8) folded into a real SnarkPack aggregate over a
//! development SRS: accepted (provers credited as for `SubmitProof`, the
//! aggregator paid its fee when the transitions link, finality advanced;
//! consecutive spans of one rollup from different provers in one aggregate),
//! and rejected for a tampered aggregate, a wrong statement, a wrong entry
//! signature, an unassigned prover, a previous root that can never link and
//! a chain without an aggregation SRS.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ark_bls12_381::Bls12_381;
use ark_groth16::ProvingKey;
use common::*;
use seqnet_proto::groth16::decode_proof;
use seqnet_proto::tx::RollupSettings;
use seqnet_proto::{pb, Action, Code, PreparedKey, ProofEntry, SpanStatement};
use seqnet_prover::srs::Srs;

const K: u32 = 8;
const PROVERS: [u8; 3] = [21, 22, 23];
const AGGREGATOR: u8 = 24;
const STAKE: u64 = 10_000;
const FUNDING: u64 = 100_000;
const WINDOW: u64 = 10;
/// Defaults of `prover_fee_share_bps` and `aggregator_fee_bps`.
const PROVER_BPS: u64 = 5_000;
const AGGREGATOR_BPS: u64 = 1_000;

fn keys() -> &'static (ProvingKey<Bls12_381>, Vec<u8>) {
    static KEYS: OnceLock<(ProvingKey<Bls12_381>, Vec<u8>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (pk, vk) = seqnet_prover::setup(K, 4242).expect("setup");
        let vk = seqnet_prover::encode_verifying_key(&vk).expect("vk");
        (pk, vk)
    })
}

fn srs() -> &'static Srs {
    static SRS: OnceLock<Srs> = OnceLock::new();
    SRS.get_or_init(|| Srs::generate_dev(8, 7).expect("dev srs"))
}

fn aggregation_params() -> serde_json::Value {
    serde_json::json!({ "aggregation_srs": hex::encode(srs().verifier().encode()) })
}

struct Chain {
    node: Node,
    height: i64,
    nonces: BTreeMap<u8, u64>,
}

impl Chain {
    fn tx(&mut self, seed: u8, fee: u64, actions: Vec<Action>) -> Vec<u8> {
        let nonce = self.nonces.entry(seed).or_insert(0);
        let tx = signed(seed, *nonce, fee, actions);
        *nonce += 1;
        tx
    }

    fn failing(&self, seed: u8, actions: Vec<Action>) -> Vec<u8> {
        signed(
            seed,
            self.nonces.get(&seed).copied().unwrap_or(0),
            10,
            actions,
        )
    }

    fn block(&mut self, txs: &[Vec<u8>]) -> tendermint_proto::v0_38::abci::ResponseFinalizeBlock {
        self.height += 1;
        let response = finalize(&self.node, self.height, txs);
        for (i, r) in response.tx_results.iter().enumerate() {
            assert_eq!(r.code, 0, "block {} tx {i}: {}", self.height, r.log);
        }
        response
    }

    fn job(&self, rollup: u64, height: u64) -> pb::ProofJob {
        self.node
            .app
            .reader()
            .proof_job(rollup, height)
            .expect("read")
            .expect("job exists")
    }

    fn balance(&self, seed: u8) -> u64 {
        self.node
            .app
            .reader()
            .account(&address(seed))
            .expect("read")
            .balance
    }

    fn proven_root(&self, rollup: u64) -> Vec<u8> {
        let jobs = self.node.app.reader().rollup_jobs(rollup).expect("read");
        jobs.proving.expect("proving").proven_root
    }

    fn expect(&self, seed: u8, action: Action, codes: &[Code]) -> String {
        let tx = self.failing(seed, vec![action]);
        let response = check(&self.node, &tx);
        assert!(
            codes.iter().any(|c| c.as_u32() == response.code),
            "want {codes:?}, got {}: {}",
            response.code,
            response.log
        );
        response.log
    }
}

fn seed_of(address_bytes: &[u8]) -> u8 {
    PROVERS
        .into_iter()
        .find(|s| address(*s).0 == address_bytes)
        .expect("a test prover")
}

/// Block 1 funds and registers three provers and the aggregator and gives
/// rollups 1 and 2 the same verifying key and one-block spans; block 2
/// writes to both rollups, block 3 to rollup 1: jobs (1, 2), (1, 3) and
/// (2, 2) are open, each with its own prover (the least loaded).
fn setup(params: serde_json::Value) -> Chain {
    let mut chain = Chain {
        node: new_node_with_genesis(0, genesis_with_params(params)),
        height: 0,
        nonces: BTreeMap::new(),
    };
    let mut txs = Vec::new();
    for seed in PROVERS.into_iter().chain([AGGREGATOR]) {
        txs.push(chain.tx(
            1,
            10,
            vec![Action::Transfer {
                to: address(seed),
                amount: FUNDING,
            }],
        ));
    }
    for (i, seed) in PROVERS.into_iter().enumerate() {
        txs.push(chain.tx(
            seed,
            10,
            vec![Action::RegisterProver {
                stake: STAKE * (i as u64 + 1),
            }],
        ));
    }
    for (owner, rollup) in [(1u8, 1u64), (2, 2)] {
        txs.push(chain.tx(
            owner,
            10,
            vec![Action::UpdateRollup {
                rollup_id: rollup,
                settings: RollupSettings {
                    verifying_key: keys().1.clone(),
                    proof_window: WINDOW,
                    inclusion_window: 3,
                    span_blocks: 1,
                },
            }],
        ));
    }
    chain.block(&txs);
    let data = |chain: &mut Chain, seed: u8, rollup: u64, payload: &[u8]| {
        chain.tx(
            seed,
            10 + payload.len() as u64 + 100,
            vec![Action::RollupData {
                rollup_id: rollup,
                data: payload.to_vec(),
            }],
        )
    };
    let a = data(&mut chain, 1, 1, b"rollup one, block two");
    let b = data(&mut chain, 2, 2, b"rollup two, block two");
    chain.block(&[a, b]);
    let c = data(&mut chain, 1, 1, b"rollup one, block three");
    chain.block(&[c]);
    chain
}

/// Real proofs of `jobs` (each from the root a prover replays: the
/// rollup's proven root through its earlier unproven spans), the assigned
/// provers' entries, and the aggregate of the proofs in entry order.
struct Built {
    entries: Vec<ProofEntry>,
    /// The individual proofs, encoded, in entry order.
    proofs: Vec<Vec<u8>>,
    statements: Vec<SpanStatement>,
    aggregate: Vec<u8>,
}

fn build(chain: &Chain, jobs: &[(u64, u64)]) -> Built {
    let mut entries = Vec::new();
    let mut statements = Vec::new();
    let mut proofs = Vec::new();
    let mut encoded = Vec::new();
    for (rollup, from) in jobs {
        let job = chain.job(*rollup, *from);
        let prev_root = reference_prev_root(&chain.node.app, *rollup, *from);
        let statement = job_statement(&job, prev_root);
        let (proof, root) = seqnet_prover::prove(&keys().0, K, &statement).expect("prove");
        entries.push(ProofEntry::sign(
            &key(seed_of(&job.assigned)),
            CHAIN,
            *rollup,
            *from,
            prev_root,
            root,
        ));
        statements.push(statement.with_new_root(root));
        proofs.push(decode_proof(&proof).expect("proof decodes"));
        encoded.push(proof);
    }
    let key = PreparedKey::decode(&keys().1).expect("key");
    let aggregate = seqnet_prover::aggregate::aggregate_statements(
        srs(),
        &key,
        &proofs,
        &statements,
        &seqnet_prover::msm::CpuMsm,
    )
    .expect("aggregate")
    .encode();
    seqnet_proto::aggregate::verify_aggregate(&srs().verifier(), &key, &statements, &aggregate)
        .expect("the aggregate verifies on its own");
    Built {
        entries,
        proofs: encoded,
        statements,
        aggregate,
    }
}

fn submit(entries: Vec<ProofEntry>, aggregate: Vec<u8>) -> Action {
    Action::SubmitAggregate { entries, aggregate }
}

#[test]
fn aggregate_is_rejected_when_wrong_then_accepted_and_credits_everyone() {
    let mut chain = setup(aggregation_params());
    let jobs = [(1, 2), (1, 3), (2, 2)];
    let built = build(&chain, &jobs);
    let entries = built.entries.clone();

    // A tampered aggregate: one byte of a round's target-group element.
    let mut tampered = built.aggregate.clone();
    let at = seqnet_proto::aggregate::AGGREGATE_FIXED_LEN + 100;
    tampered[at] ^= 1;
    chain.expect(
        AGGREGATOR,
        submit(entries.clone(), tampered),
        &[Code::ProofRejected, Code::ProofMalformed],
    );
    // A wrong statement: one entry's new root changed (and re-signed by
    // its prover), so the aggregate no longer proves the entries.
    let mut wrong_root = entries.clone();
    let e = &wrong_root[2];
    let mut root = e.new_state_root;
    root[31] ^= 1;
    let assigned = seed_of(&chain.job(2, 2).assigned);
    wrong_root[2] = ProofEntry::sign(&key(assigned), CHAIN, 2, 2, e.prev_state_root, root);
    let log = chain.expect(
        AGGREGATOR,
        submit(wrong_root, built.aggregate.clone()),
        &[Code::ProofRejected, Code::ProofMalformed],
    );
    assert!(log.contains("aggregate"), "{log}");

    // A wrong signature: the entry names the assigned prover, someone else signed.
    let mut forged = entries.clone();
    let impostor = PROVERS
        .into_iter()
        .find(|s| address(*s) != forged[0].prover)
        .expect("another prover");
    let mut bad = ProofEntry::sign(
        &key(impostor),
        CHAIN,
        1,
        2,
        forged[0].prev_state_root,
        forged[0].new_state_root,
    );
    bad.prover = forged[0].prover;
    forged[0] = bad;
    chain.expect(
        AGGREGATOR,
        submit(forged, built.aggregate.clone()),
        &[Code::BadSignature],
    );
    // An entry signed for another chain.
    let mut other_chain = entries.clone();
    let signer = seed_of(&other_chain[1].prover.0);
    other_chain[1] = ProofEntry::sign(
        &key(signer),
        "other",
        1,
        3,
        other_chain[1].prev_state_root,
        other_chain[1].new_state_root,
    );
    chain.expect(
        AGGREGATOR,
        submit(other_chain, built.aggregate.clone()),
        &[Code::BadSignature],
    );

    // An unassigned prover, correctly signing for itself.
    let mut unassigned = entries.clone();
    let outsider = PROVERS
        .into_iter()
        .find(|s| address(*s) != unassigned[0].prover)
        .expect("another prover");
    unassigned[0] = ProofEntry::sign(
        &key(outsider),
        CHAIN,
        1,
        2,
        unassigned[0].prev_state_root,
        unassigned[0].new_state_root,
    );
    chain.expect(
        AGGREGATOR,
        submit(unassigned, built.aggregate.clone()),
        &[Code::NotAssigned],
    );

    // Job (1, 2) is rollup 1's next to link: an entry from another root
    // can never link.
    let mut elsewhere = entries.clone();
    let signer = seed_of(&elsewhere[0].prover.0);
    elsewhere[0] = ProofEntry::sign(
        &key(signer),
        CHAIN,
        1,
        2,
        [3; 32],
        elsewhere[0].new_state_root,
    );
    chain.expect(
        AGGREGATOR,
        submit(elsewhere, built.aggregate.clone()),
        &[Code::RootMismatch],
    );
    // Entries not in increasing order do not even decode as an action.
    let mut reversed = entries.clone();
    reversed.swap(0, 1);
    chain.expect(
        AGGREGATOR,
        submit(reversed, built.aggregate.clone()),
        &[Code::InvalidAction],
    );
    // A job that does not exist.
    let mut unknown = entries.clone();
    let signer = seed_of(&unknown[2].prover.0);
    unknown[2] = ProofEntry::sign(
        &key(signer),
        CHAIN,
        2,
        9,
        unknown[2].prev_state_root,
        unknown[2].new_state_root,
    );
    chain.expect(
        AGGREGATOR,
        submit(unknown, built.aggregate.clone()),
        &[Code::JobUnknown],
    );

    // The real one: accepted in CheckTx, then in a block.
    let fees: Vec<u64> = jobs.iter().map(|(r, h)| chain.job(*r, *h).fees).collect();
    let provers: Vec<u8> = entries.iter().map(|e| seed_of(&e.prover.0)).collect();
    // Consecutive spans of rollup 1, (1, 2) and (1, 3), by different provers.
    assert_ne!(provers[0], provers[1]);
    let before: BTreeMap<u8, u64> = PROVERS
        .into_iter()
        .chain([AGGREGATOR])
        .map(|s| (s, chain.balance(s)))
        .collect();
    let records_before: BTreeMap<u8, u64> = PROVERS
        .into_iter()
        .map(|s| {
            let record = chain.node.app.reader().prover(&address(s)).expect("read");
            (s, record.map(|r| r.proven).unwrap_or(0))
        })
        .collect();
    let tx = chain.tx(
        AGGREGATOR,
        10,
        vec![submit(entries.clone(), built.aggregate.clone())],
    );
    assert_eq!(check(&chain.node, &tx).code, 0);
    let response = chain.block(&[tx]);
    let events = &response.tx_results[0].events;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.r#type == "proof_accepted")
            .count(),
        3
    );
    assert!(events.iter().any(|e| e.r#type == "aggregate_accepted"));
    // The transitions link at the block's end; each pays the aggregator its share.
    let linked: Vec<_> = response
        .events
        .iter()
        .filter(|e| e.r#type == "job_proven")
        .collect();
    assert_eq!(linked.len(), 3);
    let expected_fee: u64 = fees.iter().map(|f| f * AGGREGATOR_BPS / 10_000).sum();
    let paid_fee: u64 = linked
        .iter()
        .flat_map(|e| &e.attributes)
        .filter(|a| a.key == "aggregator_fee")
        .map(|a| a.value.parse::<u64>().expect("number"))
        .sum();
    assert_eq!(paid_fee, expected_fee);

    // Every job proven by its assigned prover, roots chained.
    for (i, (rollup, height)) in jobs.iter().enumerate() {
        let job = chain.job(*rollup, *height);
        assert_eq!(job.status, pb::JobStatus::Proven as i32);
        assert_eq!(job.prover, entries[i].prover.0.to_vec());
        assert_eq!(job.new_root, built.statements[i].new_root.to_vec());
        assert_eq!(job.prev_root, built.statements[i].prev_root.to_vec());
    }
    assert_eq!(chain.proven_root(1), built.statements[1].new_root.to_vec());
    assert_eq!(chain.proven_root(2), built.statements[2].new_root.to_vec());
    assert_eq!(chain.node.app.reader().proven_height().expect("read"), 4);

    // Provers credited exactly as for SubmitProof; the aggregator paid.
    let mut earned: BTreeMap<u8, u64> = BTreeMap::new();
    let mut proven: BTreeMap<u8, u64> = BTreeMap::new();
    for (seed, fee) in provers.iter().zip(&fees) {
        *earned.entry(*seed).or_default() += fee * PROVER_BPS / 10_000;
        *proven.entry(*seed).or_default() += 1;
    }
    for seed in PROVERS {
        assert_eq!(
            chain.balance(seed),
            before[&seed] + earned.get(&seed).copied().unwrap_or(0),
            "prover {seed}"
        );
        let record = chain
            .node
            .app
            .reader()
            .prover(&address(seed))
            .expect("read")
            .expect("record");
        assert_eq!(
            record.proven,
            records_before[&seed] + proven.get(&seed).copied().unwrap_or(0)
        );
    }
    assert_eq!(
        chain.balance(AGGREGATOR),
        before[&AGGREGATOR] - 10 + expected_fee
    );
    assert!(expected_fee > 0);

    // Replayed with the next nonce: the jobs are gone.
    chain.expect(
        AGGREGATOR,
        submit(entries, built.aggregate),
        &[Code::JobUnknown],
    );
}

#[test]
fn aggregation_needs_an_srs_in_the_chain_params() {
    let chain = setup(serde_json::json!({}));
    let built = build(&chain, &[(1, 2)]);
    let log = chain.expect(
        AGGREGATOR,
        submit(built.entries, built.aggregate),
        &[Code::InvalidParameter],
    );
    assert!(log.contains("aggregation_srs"), "{log}");
}

#[test]
fn proposers_prefer_an_aggregate_over_the_proofs_it_covers() {
    let mut chain = setup(aggregation_params());
    let built = build(&chain, &[(1, 2), (1, 3)]);
    // The assigned prover of (1, 2) also sent its proof on its own, and it
    // is ahead of the aggregate in the mempool.
    let prover = seed_of(&built.entries[0].prover.0);
    let single = chain.failing(
        prover,
        vec![Action::SubmitProof {
            rollup_id: 1,
            from_height: 2,
            proof: built.proofs[0].clone(),
            prev_state_root: built.entries[0].prev_state_root,
            new_state_root: built.entries[0].new_state_root,
        }],
    );
    assert_eq!(check(&chain.node, &single).code, 0);
    let aggregate = chain.tx(
        AGGREGATOR,
        10,
        vec![submit(built.entries.clone(), built.aggregate.clone())],
    );
    let mempool = vec![single.clone(), aggregate.clone()];
    let block = propose(&chain.node, chain.height + 1, &mempool, None);
    assert_eq!(
        block,
        vec![aggregate.clone()],
        "the covered proof is dropped"
    );
    assert!(accepts(&chain.node, chain.height + 1, &block));
    let response = chain.block(&block);
    assert_eq!(
        response
            .events
            .iter()
            .filter(|e| e.r#type == "job_proven")
            .count(),
        2
    );
    assert_eq!(chain.job(1, 3).status, pb::JobStatus::Proven as i32);
    // The single proof no longer applies.
    assert_eq!(check(&chain.node, &single).code, Code::JobUnknown.as_u32());
}
