//! Provers at the app level: registration, rotation, real Groth16 proofs of
//! the reference circuit (k = 8) over spans, rejections with their own
//! codes, pipelined proving (later spans proven first, linking in order,
//! gaps, dropped transitions), per-job deadlines with slashing and bounties,
//! jailing, unbonding and finality.

mod common;

use std::sync::OnceLock;

use ark_bls12_381::Bls12_381;
use ark_groth16::ProvingKey;
use common::*;
use seqnet_proto::groth16::{batch_commitment, span_commitment};
use seqnet_proto::tx::RollupSettings;
use seqnet_proto::{pb, Action, Address, Code};
use tendermint_proto::v0_38::abci::ResponseFinalizeBlock;

/// Reference circuit size (the smallest the prover supports).
const K: u32 = 8;
const ROLLUP: u64 = 1;
const PROVERS: [u8; 3] = [21, 22, 23];
const STAKE: u64 = 10_000;
const FUNDING: u64 = 100_000;

fn keys() -> &'static (ProvingKey<Bls12_381>, Vec<u8>) {
    static KEYS: OnceLock<(ProvingKey<Bls12_381>, Vec<u8>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (pk, vk) = seqnet_prover::setup(K, 4242).expect("setup");
        let vk = seqnet_prover::encode_verifying_key(&vk).expect("vk");
        (pk, vk)
    })
}

/// A chain driven block by block, with every signer's next nonce.
struct Chain {
    node: Node,
    height: i64,
    nonces: std::collections::BTreeMap<u8, u64>,
}

impl Chain {
    fn tx(&mut self, seed: u8, fee: u64, actions: Vec<Action>) -> Vec<u8> {
        let nonce = self.nonces.entry(seed).or_insert(0);
        let tx = signed(seed, *nonce, fee, actions);
        *nonce += 1;
        tx
    }

    /// A transaction that is expected to fail: it does not use up a nonce.
    fn failing(&self, seed: u8, fee: u64, actions: Vec<Action>) -> Vec<u8> {
        signed(
            seed,
            self.nonces.get(&seed).copied().unwrap_or(0),
            fee,
            actions,
        )
    }

    fn data(&mut self, payload: &[u8]) -> Vec<u8> {
        self.tx(
            2,
            10 + payload.len() as u64,
            vec![Action::RollupData {
                rollup_id: ROLLUP,
                data: payload.to_vec(),
            }],
        )
    }

    fn block(&mut self, txs: &[Vec<u8>]) -> ResponseFinalizeBlock {
        self.height += 1;
        let response = finalize(&self.node, self.height, txs);
        for (i, r) in response.tx_results.iter().enumerate() {
            assert_eq!(r.code, 0, "block {} tx {i}: {}", self.height, r.log);
        }
        response
    }

    /// The job whose span starts at `from`.
    fn job(&self, from: u64) -> pb::ProofJob {
        self.node
            .app
            .reader()
            .proof_job(ROLLUP, from)
            .expect("read")
            .expect("job exists")
    }

    fn prover(&self, seed: u8) -> Option<pb::Prover> {
        self.node.app.reader().prover(&address(seed)).expect("read")
    }

    fn balance(&self, seed: u8) -> u64 {
        self.node
            .app
            .reader()
            .account(&address(seed))
            .expect("read")
            .balance
    }

    fn proven_root(&self) -> [u8; 32] {
        let jobs = self.node.app.reader().rollup_jobs(ROLLUP).expect("read");
        <[u8; 32]>::try_from(jobs.proving.expect("proving").proven_root.as_slice()).expect("root")
    }

    fn proven_height(&self) -> u64 {
        self.node.app.reader().proven_height().expect("read")
    }

    /// The proof of job `from` by its assigned prover, from the root a prover
    /// replays (the proven root through the earlier unproven spans), as a
    /// transaction.
    fn prove_assigned(&mut self, from: u64) -> (u8, Vec<u8>, [u8; 32]) {
        let job = self.job(from);
        let prev = reference_prev_root(&self.node.app, ROLLUP, from);
        let (proof, root) = prove(&job, prev);
        let seed = seed_of(&job.assigned);
        let tx = self.tx(seed, 10, vec![submit(from, proof, prev, root)]);
        (seed, tx, root)
    }
}

fn seed_of(address_bytes: &[u8]) -> u8 {
    PROVERS
        .into_iter()
        .find(|s| address(*s).0 == address_bytes)
        .expect("a test prover")
}

fn prove(job: &pb::ProofJob, prev_root: [u8; 32]) -> (Vec<u8>, [u8; 32]) {
    seqnet_prover::prove(&keys().0, K, &job_statement(job, prev_root)).expect("prove")
}

fn submit(from: u64, proof: Vec<u8>, prev: [u8; 32], root: [u8; 32]) -> Action {
    Action::SubmitProof {
        rollup_id: ROLLUP,
        from_height: from,
        proof,
        prev_state_root: prev,
        new_state_root: root,
    }
}

fn has_event(events: &[tendermint_proto::v0_38::abci::Event], kind: &str) -> usize {
    events.iter().filter(|e| e.r#type == kind).count()
}

/// Block 1: funds and registers three provers, gives rollup 1 the reference
/// circuit's verifying key with proof window `window` and spans of
/// `span_blocks`. The end of block 1 is the first epoch boundary: all three
/// are active.
fn setup(window: u64, span_blocks: u64) -> Chain {
    setup_with_params(window, span_blocks, serde_json::json!({}))
}

fn setup_with_params(window: u64, span_blocks: u64, params: serde_json::Value) -> Chain {
    let mut chain = Chain {
        node: new_node_with_genesis(0, genesis_with_params(params)),
        height: 0,
        nonces: Default::default(),
    };
    let mut txs = Vec::new();
    for seed in PROVERS {
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
        // Distinct stakes, so rotation is visibly stake-weighted.
        txs.push(chain.tx(
            seed,
            10,
            vec![Action::RegisterProver {
                stake: STAKE * (i as u64 + 1),
            }],
        ));
    }
    txs.push(chain.tx(
        1,
        10,
        vec![Action::UpdateRollup {
            rollup_id: ROLLUP,
            settings: RollupSettings {
                verifying_key: keys().1.clone(),
                proof_window: window,
                inclusion_window: 3,
                span_blocks,
            },
        }],
    ));
    chain.block(&txs);
    let set = chain.node.app.reader().prover_set().expect("set");
    assert_eq!(set.epoch, 0);
    assert_eq!(set.active.len(), 3);
    chain
}

#[test]
fn assigned_prover_proves_and_finality_advances() {
    let mut chain = setup(10, 1);
    assert_eq!(chain.proven_height(), 1);
    let data = chain.data(b"first batch");
    let fee_paid = 10 + b"first batch".len() as u64;
    chain.block(&[data]);
    let data = chain.data(b"second batch");
    chain.block(&[data]);
    // Jobs (spans 2..=2 and 3..=3) are open: nothing above 1 is proven.
    assert_eq!(chain.proven_height(), 1);

    let job = chain.job(2);
    assert_eq!(job.status, pb::JobStatus::Open as i32);
    assert_eq!((job.from_height, job.to_height), (2, 2));
    assert_eq!(job.deadline, 2 + 10);
    assert_eq!(job.fees, fee_paid);
    let set = chain.node.app.reader().prover_set().expect("set");
    let active: Vec<(Address, u64)> = set
        .active
        .iter()
        .map(|p| (Address::from_slice(&p.address).expect("address"), p.stake))
        .collect();
    // The order is the active set, each prover once (its seeded,
    // stake-weighted permutation is unit-tested in the provers component);
    // with no prover holding a job yet, the primary is first in it.
    let mut ordered = job.order.clone();
    ordered.sort();
    let mut expected: Vec<Vec<u8>> = active.iter().map(|(a, _)| a.0.to_vec()).collect();
    expected.sort();
    assert_eq!(ordered, expected);
    assert_eq!(job.assigned, job.order[0], "primary is order[0]");
    // Job 3 goes to a prover that holds no job yet: N provers, N spans.
    assert_ne!(chain.job(3).assigned, job.assigned);
    let assigned = seed_of(&job.assigned);
    let other = PROVERS
        .into_iter()
        .find(|s| *s != assigned)
        .expect("another");

    let (proof, root) = prove(&job, [0; 32]);
    let expect = |chain: &Chain, seed: u8, action: Action, code: Code| {
        let tx = chain.failing(seed, 10, vec![action]);
        let response = check(&chain.node, &tx);
        assert_eq!(response.code, code.as_u32(), "{}", response.log);
        response.log
    };
    // Not the assigned prover.
    expect(
        &chain,
        other,
        submit(2, proof.clone(), [0; 32], root),
        Code::NotAssigned,
    );
    // Not a job at all.
    expect(
        &chain,
        assigned,
        submit(9, proof.clone(), [0; 32], root),
        Code::JobUnknown,
    );
    // Job 2 is the rollup's next to link: a proof from another root can
    // never link, even if it verifies for that root.
    let (from_elsewhere, elsewhere_root) = prove(&job, [1; 32]);
    let log = expect(
        &chain,
        assigned,
        submit(2, from_elsewhere, [1; 32], elsewhere_root),
        Code::RootMismatch,
    );
    assert!(log.contains("proven root"), "{log}");
    // The right proof with another new root, or another previous root.
    expect(
        &chain,
        assigned,
        submit(2, proof.clone(), [0; 32], [2; 32]),
        Code::ProofRejected,
    );
    // Garbage bytes.
    expect(
        &chain,
        assigned,
        submit(2, vec![0xab; 192], [0; 32], root),
        Code::ProofMalformed,
    );
    expect(
        &chain,
        assigned,
        submit(2, vec![1, 2, 3], [0; 32], root),
        Code::ProofMalformed,
    );

    // Job 3 first: accepted as a pending transition; nothing is final or
    // paid yet.
    let (p3, tx3, root3) = chain.prove_assigned(3);
    let before3 = chain.balance(p3);
    assert_eq!(check(&chain.node, &tx3).code, 0);
    let response = chain.block(&[tx3]);
    assert_eq!(
        has_event(&response.tx_results[0].events, "proof_accepted"),
        1
    );
    assert_eq!(has_event(&response.events, "job_proven"), 0);
    assert_eq!(chain.job(3).status, pb::JobStatus::Pending as i32);
    assert_eq!(chain.proven_height(), 1);
    assert_eq!(chain.balance(p3), before3 - 10);
    // A second proof of a pending job is refused.
    let again = chain.failing(p3, 10, vec![submit(3, vec![1; 384], root, root3)]);
    assert_eq!(check(&chain.node, &again).code, Code::JobPending.as_u32());

    // Job 2: accepted, and both transitions link at the block's end.
    let before = chain.balance(assigned);
    let tx = chain.tx(assigned, 10, vec![submit(2, proof, [0; 32], root)]);
    assert_eq!(check(&chain.node, &tx).code, 0);
    let response = chain.block(&[tx]);
    assert_eq!(has_event(&response.events, "job_proven"), 2);
    assert_eq!(chain.balance(assigned), before - 10 + fee_paid / 2);
    assert!(
        chain.balance(p3) > before3 - 10,
        "job 3's prover is paid now"
    );
    let job = chain.job(2);
    assert_eq!(job.status, pb::JobStatus::Proven as i32);
    assert_eq!(job.new_root, root.to_vec());
    assert_eq!(job.proven_height, chain.height as u64);
    assert_eq!(chain.job(3).prev_root, root.to_vec());
    assert_eq!(chain.proven_root(), root3);
    assert_eq!(chain.proven_height(), chain.height as u64);
    assert_eq!(chain.prover(assigned).expect("record").proven, 1);
    let finality = chain.node.app.reader().finality().expect("finality");
    assert_eq!(finality.ordered_height, chain.height as u64);
    assert_eq!(finality.open_jobs, 0);
    assert_eq!(finality.hold_reason, pb::HoldReason::None as i32);
}

#[test]
fn a_missed_deadline_reassigns_slashes_and_pays_a_bounty() {
    let mut chain = setup(2, 1);
    let data = chain.data(b"batch");
    let fees = 10 + b"batch".len() as u64;
    chain.block(&[data]);
    let job = chain.job(2);
    let primary = seed_of(&job.assigned);
    let stake = chain.prover(primary).expect("record").stake;
    let primary_balance = chain.balance(primary);
    // The primary may prove through height 4 (2 + window); it does not.
    chain.block(&[]);
    assert_eq!(chain.job(2).assigned, job.assigned);
    let response = chain.block(&[]);
    let reassigned = chain.job(2);
    assert_eq!(reassigned.assigned, job.order[1], "back-up is order[1]");
    assert_eq!(reassigned.deadline, 4 + 2);
    assert_eq!(reassigned.reassignments, 1);
    let slashed = stake / 10;
    let bounty = slashed / 2;
    assert_eq!(reassigned.bounty, bounty);
    let event = response
        .events
        .iter()
        .find(|e| e.r#type == "job_reassigned")
        .expect("event");
    assert!(event
        .attributes
        .iter()
        .any(|a| a.key == "slashed" && a.value == slashed.to_string()));
    let record = chain.prover(primary).expect("record");
    assert_eq!(record.stake, stake - slashed);
    assert_eq!(record.misses, 1);
    assert_eq!(record.slashed, slashed);
    assert_eq!(
        chain.balance(primary),
        primary_balance,
        "slashing takes stake"
    );

    // The primary may no longer prove; the back-up's proof earns the bounty.
    let (proof, root) = prove(&reassigned, [0; 32]);
    let late = chain.failing(primary, 10, vec![submit(2, proof.clone(), [0; 32], root)]);
    assert_eq!(check(&chain.node, &late).code, Code::NotAssigned.as_u32());
    let backup = seed_of(&reassigned.assigned);
    let before = chain.balance(backup);
    let tx = chain.tx(backup, 10, vec![submit(2, proof, [0; 32], root)]);
    chain.block(&[tx]);
    assert_eq!(chain.balance(backup), before - 10 + fees / 2 + bounty);
    assert_eq!(
        chain.prover(backup).expect("record").earned,
        fees / 2 + bounty
    );
    assert_eq!(chain.proven_height(), chain.height as u64);
}

#[test]
fn repeated_misses_jail_and_unjail_waits_for_the_period() {
    let mut chain = setup(2, 1);
    // The primary of the first job never proves; the others prove whatever
    // reaches them, as soon as it does.
    let first = chain.data(b"batch 2");
    chain.block(&[first]);
    let lazy = seed_of(&chain.job(2).assigned);
    let mut jailed_at = None;
    for n in 0..60u64 {
        let mut txs = vec![chain.data(format!("batch {n}").as_bytes())];
        let open = chain
            .node
            .app
            .reader()
            .rollup_jobs(ROLLUP)
            .expect("jobs")
            .open;
        for job in open {
            let ready = job.status == pb::JobStatus::Open as i32
                && !job.assigned.is_empty()
                && job.assigned != address(lazy).0;
            if ready {
                let (_, tx, _) = chain.prove_assigned(job.from_height);
                txs.push(tx);
            }
        }
        chain.block(&txs);
        let record = chain.prover(lazy).expect("record");
        if record.status == pb::ProverStatus::Jailed as i32 {
            assert!(record.misses >= 3);
            jailed_at = Some(chain.height as u64);
            break;
        }
    }
    let jailed_at = jailed_at.expect("the lazy prover is jailed after 3 misses");
    let record = chain.prover(lazy).expect("record");
    assert_eq!(record.jailed_until, jailed_at + 20);
    // A jailed prover is not assigned new jobs.
    let data = chain.data(b"after jail");
    chain.block(&[data]);
    let job = chain.job(chain.height as u64);
    assert!(!job.assigned.is_empty());
    assert_ne!(job.assigned, address(lazy).0.to_vec());

    let early = chain.failing(lazy, 10, vec![Action::Unjail]);
    assert_eq!(check(&chain.node, &early).code, Code::Jailed.as_u32());
    while (chain.height as u64) < record.jailed_until {
        chain.block(&[]);
    }
    let unjail = chain.tx(lazy, 10, vec![Action::Unjail]);
    chain.block(&[unjail]);
    let record = chain.prover(lazy).expect("record");
    assert_eq!(record.status, pb::ProverStatus::Bonded as i32);
    assert_eq!(record.misses, 0);
    let again = chain.failing(lazy, 10, vec![Action::Unjail]);
    assert_eq!(check(&chain.node, &again).code, Code::ProverState.as_u32());
}

#[test]
fn unbond_returns_the_stake_after_the_period() {
    let mut chain = setup(2, 1);
    let seed = PROVERS[0];
    let stake = chain.prover(seed).expect("record").stake;
    let balance = chain.balance(seed);

    // Below the minimum for a new prover; Unbond/Unjail without a record.
    let small = chain.failing(1, 10, vec![Action::RegisterProver { stake: 999 }]);
    assert_eq!(check(&chain.node, &small).code, Code::StakeTooLow.as_u32());
    let unknown = chain.failing(1, 10, vec![Action::Unbond]);
    assert_eq!(
        check(&chain.node, &unknown).code,
        Code::ProverUnknown.as_u32()
    );
    let not_jailed = chain.failing(seed, 10, vec![Action::Unjail]);
    assert_eq!(
        check(&chain.node, &not_jailed).code,
        Code::ProverState.as_u32()
    );

    let unbond = chain.tx(seed, 10, vec![Action::Unbond]);
    chain.block(&[unbond]);
    let unbonded_at = chain.height as u64;
    let record = chain.prover(seed).expect("record");
    assert_eq!(record.status, pb::ProverStatus::Unbonding as i32);
    assert_eq!(record.unbond_at, unbonded_at + 20);
    let more = chain.failing(seed, 10, vec![Action::RegisterProver { stake: 5 }]);
    assert_eq!(check(&chain.node, &more).code, Code::ProverState.as_u32());
    assert_eq!(chain.balance(seed), balance - 10);

    // Still in the set until the next epoch (end of block 11), gone after.
    let in_set = |chain: &Chain| {
        chain
            .node
            .app
            .reader()
            .prover_set()
            .expect("set")
            .active
            .iter()
            .any(|p| p.address == address(seed).0)
    };
    assert!(in_set(&chain));
    while chain.height < 11 {
        chain.block(&[]);
    }
    assert!(!in_set(&chain));
    while (chain.height as u64) < unbonded_at + 19 {
        chain.block(&[]);
    }
    assert_eq!(chain.balance(seed), balance - 10, "not before the period");
    chain.block(&[]);
    assert_eq!(chain.balance(seed), balance - 10 + stake);
    assert!(chain.prover(seed).is_none());
}

/// A block with several proofs has them batch-verified before execution; the
/// results are those of per-proof verification: a bad proof in the middle is
/// rejected with its own code, the proofs around it are accepted and link.
#[test]
fn a_block_of_proofs_is_batch_verified_with_per_proof_results() {
    let mut chain = setup(10, 1);
    for payload in [&b"batch two"[..], b"batch three"] {
        let data = chain.data(payload);
        chain.block(&[data]);
    }
    let (job2, job3) = (chain.job(2), chain.job(3));
    let (proof2, root2) = prove(&job2, [0; 32]);
    let (proof3, root3) = prove(&job3, root2);
    let (p2, p3) = (seed_of(&job2.assigned), seed_of(&job3.assigned));
    let good2 = chain.tx(p2, 10, vec![submit(2, proof2, [0; 32], root2)]);
    // Job 3's proof claiming another new root does not verify.
    let bad = chain.failing(p3, 10, vec![submit(3, proof3.clone(), root2, [7; 32])]);
    let good3 = chain.tx(p3, 10, vec![submit(3, proof3, root2, root3)]);
    let before = chain.node.app.batch_verified_total();
    chain.height += 1;
    let response = finalize(&chain.node, chain.height, &[good2, bad, good3]);
    let codes: Vec<u32> = response.tx_results.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![0, Code::ProofRejected.as_u32(), 0]);
    assert!(chain.node.app.batch_verified_total() >= before + 2);
    assert_eq!(chain.proven_root(), root3);
    assert_eq!(chain.proven_height(), chain.height as u64);
    assert_eq!(chain.job(3).prover, address(p3).0.to_vec());
}

/// Proofs of later spans land first and wait as pending transitions; the
/// proven root advances through every consecutive one that starts where
/// the last ended, stops at a gap, and goes on once the gap is filled.
/// Fees are paid when a transition links.
#[test]
fn later_spans_proven_first_link_in_order_and_stop_at_a_gap() {
    let mut chain = setup(10, 1);
    for payload in [&b"two"[..], b"three", b"four"] {
        let data = chain.data(payload);
        chain.block(&[data]);
    }
    let (p4, tx4, _) = chain.prove_assigned(4);
    let balance4 = chain.balance(p4);
    chain.block(&[tx4]);
    assert_eq!(chain.job(4).status, pb::JobStatus::Pending as i32);
    assert_eq!(chain.proven_height(), 1);

    // Job 2 links; job 3 is missing, so job 4 waits behind the gap.
    let (_, tx2, root2) = chain.prove_assigned(2);
    let response = chain.block(&[tx2]);
    assert_eq!(has_event(&response.events, "job_proven"), 1);
    assert_eq!(chain.proven_root(), root2);
    assert_eq!(chain.proven_height(), 2);
    assert_eq!(chain.job(4).status, pb::JobStatus::Pending as i32);
    assert_eq!(chain.balance(p4), balance4 - 10, "not paid before linking");
    let finality = chain.node.app.reader().finality().expect("finality");
    assert_eq!((finality.open_jobs, finality.pending_jobs), (2, 1));

    // Job 3 fills the gap: 3 and 4 link in one block end.
    let (_, tx3, _) = chain.prove_assigned(3);
    let response = chain.block(&[tx3]);
    assert_eq!(has_event(&response.events, "job_proven"), 2);
    assert_eq!(chain.proven_height(), chain.height as u64);
    assert_eq!(chain.proven_root().to_vec(), chain.job(4).new_root);
    assert!(chain.balance(p4) > balance4 - 10);
    assert_eq!(chain.job(4).prev_root, chain.job(3).new_root);
}

/// A pending transition from a root that turns out not to be its
/// predecessor's final one is dropped once the predecessor links: the job
/// goes back to OPEN with the next prover of its order and a fresh window;
/// its prover is neither slashed nor paid.
#[test]
fn a_transition_that_does_not_link_is_dropped_and_its_job_moves_on() {
    let mut chain = setup(10, 1);
    for payload in [&b"two"[..], b"three"] {
        let data = chain.data(payload);
        chain.block(&[data]);
    }
    let job3 = chain.job(3);
    let wrong_prover = seed_of(&job3.assigned);
    let stake = chain.prover(wrong_prover).expect("record").stake;
    // A valid proof of job 3 from a made-up root: job 3 is not the next to
    // link, so it is accepted as pending.
    let (proof, root) = prove(&job3, [5; 32]);
    let tx = chain.tx(wrong_prover, 10, vec![submit(3, proof, [5; 32], root)]);
    chain.block(&[tx]);
    assert_eq!(chain.job(3).status, pb::JobStatus::Pending as i32);

    let (_, tx2, root2) = chain.prove_assigned(2);
    let response = chain.block(&[tx2]);
    assert_eq!(has_event(&response.events, "job_proven"), 1);
    assert_eq!(has_event(&response.events, "transition_dropped"), 1);
    assert_eq!(chain.proven_root(), root2);
    let moved = chain.job(3);
    assert_eq!(moved.status, pb::JobStatus::Open as i32);
    assert_eq!(moved.drops, 1);
    assert_eq!(moved.reassignments, 0, "a drop is not a miss");
    assert!(moved.new_root.is_empty() && moved.proof.is_empty());
    assert_ne!(moved.assigned, job3.assigned, "the job moved on");
    assert_eq!(moved.assigned_height, chain.height as u64);
    assert_eq!(moved.deadline, chain.height as u64 + 10);
    let record = chain.prover(wrong_prover).expect("record");
    assert_eq!((record.stake, record.misses, record.proven), (stake, 0, 0));

    // The new prover proves from the linked root, and the rollup catches up.
    let (_, tx3, root3) = chain.prove_assigned(3);
    chain.block(&[tx3]);
    assert_eq!(chain.proven_root(), root3);
    assert_eq!(chain.proven_height(), chain.height as u64);
}

/// Deadlines are per job: the prover of a later span that proves in time is
/// never slashed while an earlier span stalls, and its transition links as
/// soon as the earlier one is proven by a back-up.
#[test]
fn deadlines_are_per_job_and_nobody_is_slashed_for_a_predecessor() {
    let mut chain = setup(2, 1);
    let first = chain.data(b"first");
    chain.block(&[first]);
    let second = chain.data(b"second");
    chain.block(&[second]);
    let (job2, job3) = (chain.job(2), chain.job(3));
    assert_eq!((job2.deadline, job3.deadline), (2 + 2, 3 + 2));
    assert_ne!(job2.assigned, job3.assigned, "two provers, two spans");
    // Block 4: job 3's prover proves in time; job 2's primary never does.
    let (p3, tx3, _) = chain.prove_assigned(3);
    let response = chain.block(&[tx3]);
    assert_eq!(chain.job(2).reassignments, 1, "job 2 missed at height 4");
    assert!(has_event(&response.events, "job_reassigned") >= 1);
    assert_eq!(chain.job(3).status, pb::JobStatus::Pending as i32);
    assert_eq!(chain.job(3).reassignments, 0);
    assert_eq!(chain.proven_height(), 1);
    // Block 5: the back-up proves job 2; both link.
    let (backup, tx2, _) = chain.prove_assigned(2);
    let response = chain.block(&[tx2]);
    assert_eq!(has_event(&response.events, "job_proven"), 2);
    assert_eq!(chain.proven_height(), chain.height as u64);
    let record = chain.prover(p3).expect("record");
    let proven = 1 + u64::from(backup == p3);
    assert_eq!(
        (record.misses, record.slashed, record.proven),
        (0, 0, proven)
    );
    let primary = chain.prover(seed_of(&job2.assigned)).expect("record");
    assert_eq!(primary.misses, 1);
}

/// Spans close after `span_blocks` blocks from their first non-empty batch,
/// or at once when their data reaches `max_span_bytes`; a job covers the
/// span's non-empty batches with their span commitment; the heights of a
/// span still collecting are not proven.
#[test]
fn spans_collect_batches_and_close_by_blocks_or_bytes() {
    let mut chain = setup_with_params(10, 3, serde_json::json!({ "max_span_bytes": 40 }));
    let data = chain.data(b"ten bytes!");
    chain.block(&[data]); // 2
    chain.block(&[]); // 3
    let finality = chain.node.app.reader().finality().expect("finality");
    assert_eq!(finality.hold_reason, pb::HoldReason::Collecting as i32);
    assert_eq!(chain.proven_height(), 1);
    assert!(chain
        .node
        .app
        .reader()
        .rollup_jobs(ROLLUP)
        .expect("jobs")
        .open
        .is_empty());
    let data = chain.data(b"more data!");
    chain.block(&[data]); // 4: the span 2..=4 closes
    let job = chain.job(2);
    assert_eq!((job.from_height, job.to_height), (2, 4));
    let heights: Vec<u64> = job.batches.iter().map(|b| b.height).collect();
    assert_eq!(heights, vec![2, 4]);
    let reader = chain.node.app.reader();
    let commitment = |h: u64| {
        let items = reader.batch(ROLLUP, h).expect("batch").items;
        batch_commitment(ROLLUP, h, &items)
    };
    let expected = span_commitment(ROLLUP, 2, 4, &[(2, commitment(2)), (4, commitment(4))]);
    assert_eq!(job.span_commitment, expected.to_vec());
    assert_eq!(job.fees, 2 * (10 + 10));
    chain.block(&[]); // 5: nothing collecting
    let big = chain.data(&[7u8; 50]);
    chain.block(&[big]); // 6: 50 bytes >= 40, closes at once
    let job6 = chain.job(6);
    assert_eq!((job6.from_height, job6.to_height), (6, 6));
    let data = chain.data(b"collecting");
    chain.block(&[data]); // 7: a new span collects from 7
    assert_eq!(chain.proven_height(), 1);

    // Proving both spans: proven up to the collecting span.
    let (_, tx2, _) = chain.prove_assigned(2);
    let (_, tx6, _) = chain.prove_assigned(6);
    chain.block(&[tx2, tx6]);
    assert_eq!(chain.proven_height(), 6);
    // The PROVEN read of a batch in the span carries the span's proof.
    let proof = reader
        .batch_proof(ROLLUP, 4)
        .expect("read")
        .expect("proven");
    assert_eq!((proof.from_height, proof.to_height), (2, 4));
    assert_eq!(proof.batch_heights, vec![2, 4]);
    assert!(
        reader.batch_proof(ROLLUP, 3).expect("read").is_none(),
        "empty"
    );
    assert!(
        reader.batch_proof(ROLLUP, 7).expect("read").is_none(),
        "open"
    );
}
