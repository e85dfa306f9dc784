//! Provers at the app level: registration, rotation, real Groth16 proofs of
//! the reference circuit (k = 8), rejections with their own codes, missed
//! deadlines with slashing and bounties, jailing, unbonding and finality.

mod common;

use std::sync::OnceLock;

use ark_bls12_381::Bls12_381;
use ark_groth16::ProvingKey;
use common::*;
use seqnet_abci::rotation::assignment_order;
use seqnet_proto::tx::RollupSettings;
use seqnet_proto::{pb, Action, Address, Code};
use seqnet_prover::JobStatement;

/// Reference circuit size (the smallest the prover supports).
const K: u32 = 8;
const ROLLUP: u64 = 1;
const WINDOW: u64 = 2;
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

    fn block(&mut self, txs: &[Vec<u8>]) -> tendermint_proto::v0_38::abci::ResponseFinalizeBlock {
        self.height += 1;
        let response = finalize(&self.node, self.height, txs);
        for (i, r) in response.tx_results.iter().enumerate() {
            assert_eq!(r.code, 0, "block {} tx {i}: {}", self.height, r.log);
        }
        response
    }

    fn job(&self, height: u64) -> pb::ProofJob {
        self.node
            .app
            .reader()
            .proof_job(ROLLUP, height)
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
}

fn seed_of(address_bytes: &[u8]) -> u8 {
    PROVERS
        .into_iter()
        .find(|s| address(*s).0 == address_bytes)
        .expect("a test prover")
}

fn statement(job: &pb::ProofJob, prev_root: [u8; 32]) -> JobStatement {
    JobStatement {
        rollup_id: job.rollup_id,
        height: job.height,
        commitment: job.commitment.as_slice().try_into().expect("32 bytes"),
        prev_root,
    }
}

fn prove(job: &pb::ProofJob, prev_root: [u8; 32]) -> (Vec<u8>, [u8; 32]) {
    seqnet_prover::prove(&keys().0, K, &statement(job, prev_root)).expect("prove")
}

fn submit(height: u64, proof: Vec<u8>, root: [u8; 32]) -> Action {
    Action::SubmitProof {
        rollup_id: ROLLUP,
        height,
        proof,
        new_state_root: root,
    }
}

/// Block 1: funds and registers three provers, gives rollup 1 the reference
/// circuit's verifying key with a proof window of 2. The end of block 1 is
/// the first epoch boundary: all three are active.
fn setup() -> Chain {
    let mut chain = Chain {
        node: new_node(0),
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
                proof_window: WINDOW,
                inclusion_window: 3,
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
    let mut chain = setup();
    assert_eq!(chain.proven_height(), 1);
    let data = chain.data(b"first batch");
    let fee_paid = 10 + b"first batch".len() as u64;
    chain.block(&[data]);
    let data = chain.data(b"second batch");
    chain.block(&[data]);
    // Jobs at 2 and 3 are open: nothing above 1 is proven.
    assert_eq!(chain.proven_height(), 1);

    let job = chain.job(2);
    assert_eq!(job.status, pb::JobStatus::Open as i32);
    assert_eq!(job.deadline, 2 + WINDOW);
    assert_eq!(job.fees, fee_paid);
    let set = chain.node.app.reader().prover_set().expect("set");
    let active: Vec<(Address, u64)> = set
        .active
        .iter()
        .map(|p| (Address::from_slice(&p.address).expect("address"), p.stake))
        .collect();
    let seed: [u8; 32] = set.seed.as_slice().try_into().expect("seed");
    let order = assignment_order(&seed, ROLLUP, 2, &active);
    assert_eq!(job.assigned, order[0].0.to_vec(), "primary is order[0]");
    assert_eq!(
        job.order,
        order.iter().map(|a| a.0.to_vec()).collect::<Vec<_>>()
    );
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
    };
    // Not the assigned prover.
    expect(
        &chain,
        other,
        submit(2, proof.clone(), root),
        Code::NotAssigned,
    );
    // Wrong height: open but not next, and not a job at all.
    let (proof3, root3) = prove(&chain.job(3), root);
    expect(
        &chain,
        seed_of(&chain.job(3).assigned),
        submit(3, proof3, root3),
        Code::OutOfOrder,
    );
    expect(
        &chain,
        assigned,
        submit(9, proof.clone(), root),
        Code::JobUnknown,
    );
    // A proof against a wrong previous root.
    let (wrong, wrong_root) = prove(&job, [1; 32]);
    expect(
        &chain,
        assigned,
        submit(2, wrong, wrong_root),
        Code::ProofRejected,
    );
    // The right proof with another new root.
    expect(
        &chain,
        assigned,
        submit(2, proof.clone(), [2; 32]),
        Code::ProofRejected,
    );
    // Garbage bytes.
    expect(
        &chain,
        assigned,
        submit(2, vec![0xab; 192], root),
        Code::ProofMalformed,
    );
    expect(
        &chain,
        assigned,
        submit(2, vec![1, 2, 3], root),
        Code::ProofMalformed,
    );

    // The assigned prover's proof is accepted and paid half the batch's fees.
    let before = chain.balance(assigned);
    let tx = chain.tx(assigned, 10, vec![submit(2, proof, root)]);
    assert_eq!(check(&chain.node, &tx).code, 0);
    let response = chain.block(&[tx]);
    assert!(response.tx_results[0]
        .events
        .iter()
        .any(|e| e.r#type == "job_proven"));
    assert_eq!(chain.balance(assigned), before - 10 + fee_paid / 2);
    let job = chain.job(2);
    assert_eq!(job.status, pb::JobStatus::Proven as i32);
    assert_eq!(job.new_root, root.to_vec());
    assert_eq!(chain.proven_root(), root);
    assert_eq!(chain.proven_height(), 2);
    assert_eq!(chain.prover(assigned).expect("record").proven, 1);

    // Height 3 next, from the new root; then finality reaches the tip.
    let job3 = chain.job(3);
    let (proof, root3) = prove(&job3, root);
    let tx = chain.tx(seed_of(&job3.assigned), 10, vec![submit(3, proof, root3)]);
    chain.block(&[tx]);
    assert_eq!(chain.proven_height(), chain.height as u64);
    let finality = chain.node.app.reader().finality().expect("finality");
    assert_eq!(finality.ordered_height, chain.height as u64);
    assert_eq!(finality.open_jobs, 0);
    assert_eq!(chain.proven_root(), root3);
}

#[test]
fn a_missed_deadline_reassigns_slashes_and_pays_a_bounty() {
    let mut chain = setup();
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
    assert_eq!(reassigned.deadline, 4 + WINDOW);
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
    let late = chain.failing(primary, 10, vec![submit(2, proof.clone(), root)]);
    assert_eq!(check(&chain.node, &late).code, Code::NotAssigned.as_u32());
    let backup = seed_of(&reassigned.assigned);
    let before = chain.balance(backup);
    let tx = chain.tx(backup, 10, vec![submit(2, proof, root)]);
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
    let mut chain = setup();
    // The primary of the first job never proves; the others prove whatever
    // reaches them.
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
        if let Some(job) = open.first() {
            if !job.assigned.is_empty() && job.assigned != address(lazy).0 {
                let (proof, root) = prove(job, chain.proven_root());
                txs.push(chain.tx(
                    seed_of(&job.assigned),
                    10,
                    vec![submit(job.height, proof, root)],
                ));
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
    let mut chain = setup();
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
/// rejected with its own code, the proofs around it are accepted (the one
/// after it chains from the last good root).
#[test]
fn a_block_of_proofs_is_batch_verified_with_per_proof_results() {
    let mut chain = setup();
    for payload in [&b"batch two"[..], b"batch three"] {
        let data = chain.data(payload);
        chain.block(&[data]);
    }
    let (job2, job3) = (chain.job(2), chain.job(3));
    let (proof2, root2) = prove(&job2, [0; 32]);
    let (proof3, root3) = prove(&job3, root2);
    let (bad3, bad_root3) = prove(&job3, [7; 32]);
    let (p2, p3) = (seed_of(&job2.assigned), seed_of(&job3.assigned));
    let good2 = chain.tx(p2, 10, vec![submit(2, proof2, root2)]);
    let bad = chain.failing(p3, 10, vec![submit(3, bad3, bad_root3)]);
    let good3 = chain.tx(p3, 10, vec![submit(3, proof3, root3)]);
    let before = seqnet_abci::proof_batch::batch_verified_total();
    chain.height += 1;
    let response = finalize(&chain.node, chain.height, &[good2, bad, good3]);
    let codes: Vec<u32> = response.tx_results.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![0, Code::ProofRejected.as_u32(), 0]);
    assert!(seqnet_abci::proof_batch::batch_verified_total() >= before + 2);
    assert_eq!(chain.proven_root(), root3);
    assert_eq!(chain.proven_height(), chain.height as u64);
    assert_eq!(chain.job(3).prover, address(p3).0.to_vec());
}

#[test]
fn jobs_behind_a_stalled_one_wait_without_penalty_or_leave_a_missing_prover() {
    let mut chain = setup();
    // Jobs at heights 2 and 3; nobody proves job 2 in its window.
    let first = chain.data(b"first");
    chain.block(&[first]);
    let second = chain.data(b"second");
    chain.block(&[second]);
    assert_eq!(chain.job(3).deadline, 3 + WINDOW);
    let primary_2 = chain.job(2).assigned.clone();
    let assigned_3 = chain.job(3).assigned.clone();
    // Block 4: job 2 misses its deadline and is reassigned (its primary is
    // slashed). Job 3 cannot be proven yet: it waits with a deadline held a
    // full window ahead, or, if job 2's primary held it too, it moves on at
    // once without a reassignment count (nobody is slashed for it).
    let response = chain.block(&[]);
    assert_eq!(chain.job(2).reassignments, 1);
    let job3 = chain.job(3);
    assert_eq!(job3.reassignments, 0, "job 3 is never counted as missed");
    assert_eq!(job3.deadline, 4 + WINDOW);
    if assigned_3 == primary_2 {
        assert_ne!(
            job3.assigned, assigned_3,
            "moved off the prover that missed"
        );
        assert!(response.events.iter().any(|e| e.r#type == "job_moved"));
    } else {
        assert_eq!(job3.assigned, assigned_3, "held by its prover");
    }
    let holder = job3.assigned.clone();
    // Blocks 5..=6: job 2 still unproven; job 3's deadline keeps moving.
    for _ in 5..=6 {
        chain.block(&[]);
        let job3 = chain.job(3);
        if job3.assigned == holder {
            assert_eq!(job3.deadline, chain.height as u64 + WINDOW);
        }
        assert_eq!(job3.reassignments, 0);
    }
    // Job 2 proven at block 7; job 3 then has a full window and is proven.
    let job2 = chain.job(2);
    let (proof, root) = prove(&job2, [0; 32]);
    let tx = chain.tx(seed_of(&job2.assigned), 10, vec![submit(2, proof, root)]);
    chain.block(&[tx]);
    let job3 = chain.job(3);
    assert!(job3.deadline >= chain.height as u64 + WINDOW - 1);
    let (proof, root3) = prove(&job3, root);
    let tx = chain.tx(seed_of(&job3.assigned), 10, vec![submit(3, proof, root3)]);
    chain.block(&[tx]);
    assert_eq!(chain.proven_height(), chain.height as u64);
}
