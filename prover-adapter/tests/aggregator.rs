//! The aggregator against an in-test node (a real gRPC `RollupService`:
//! status, nonces, rollups' verifying keys, transaction submission): two
//! provers hand over real proofs of two rollups sharing one key; the
//! aggregator checks them, aggregates them (CPU MSM) and submits one signed
//! `SubmitAggregate` whose entries verify and whose aggregate verifies; both
//! provers get its hash. A hand-over whose proof does not match its
//! statement is refused at once, and a prover with no aggregator to talk to
//! gets an error (and so falls back to its own `SubmitProof`). When a job's
//! primary and a back-up both hand it over, the proof of the prover the
//! node's `GetProver` names as assigned is aggregated, whichever came first.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use seqnet_proto::groth16::PreparedKey;
use seqnet_proto::pb::prover_service_server::{ProverService, ProverServiceServer};
use seqnet_proto::pb::rollup_service_server::{RollupService, RollupServiceServer};
use seqnet_proto::{pb, Action, Transaction};
use seqnet_prover::aggregator::{hand_over, AggregatorConfig, Handover};
use seqnet_prover::backend::ProofOutput;
use seqnet_prover::metrics::Metrics;
use seqnet_prover::msm::CpuMsm;
use seqnet_prover::srs::Srs;
use seqnet_prover::JobStatement;
use seqnet_rollup_client::RetryPolicy;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const CHAIN: &str = "aggregator-test";
const K: u32 = 8;

#[derive(Clone)]
struct Node {
    verifying_key: Vec<u8>,
    received: Arc<Mutex<Vec<Transaction>>>,
    /// `GetProver` answers: who is assigned which (rollup, height).
    assigned: Vec<(seqnet_proto::Address, u64, u64)>,
}

#[tonic::async_trait]
impl ProverService for Node {
    async fn get_challenge(&self, _: Request<pb::GetChallengeRequest>) -> Answer<pb::Challenge> {
        Err(Status::unimplemented("not in this test"))
    }
    type JobsStream = ReceiverStream<Result<pb::Job, Status>>;
    async fn jobs(&self, _: Request<pb::JobsRequest>) -> Answer<Self::JobsStream> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn submit_proof(
        &self,
        _: Request<pb::SubmitProofRequest>,
    ) -> Answer<pb::SubmitProofResponse> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn get_prover(&self, r: Request<pb::GetProverRequest>) -> Answer<pb::ProverInfo> {
        let address = r.into_inner().address;
        let assigned_jobs = self
            .assigned
            .iter()
            .filter(|(a, _, _)| a.0.as_slice() == address.as_slice())
            .map(|(_, rollup, height)| job(*rollup, *height))
            .map(|j| pb::ProofJob {
                rollup_id: j.rollup_id,
                from_height: j.from_height,
                ..Default::default()
            })
            .collect();
        Ok(Response::new(pb::ProverInfo {
            assigned_jobs,
            ..Default::default()
        }))
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl RollupService for Node {
    async fn submit_transaction(
        &self,
        r: Request<pb::SubmitTransactionRequest>,
    ) -> Answer<pb::SubmitTransactionResponse> {
        let tx = Transaction::decode(&r.into_inner().tx, 1 << 20, 64).unwrap();
        let hash = tx.hash().to_vec();
        self.received.lock().unwrap().push(tx);
        Ok(Response::new(pb::SubmitTransactionResponse {
            tx_hash: hash,
            code: 0,
            log: String::new(),
        }))
    }
    async fn get_batch(&self, _: Request<pb::GetBatchRequest>) -> Answer<pb::Batch> {
        Err(Status::unimplemented("not here"))
    }
    type StreamBatchesStream = ReceiverStream<Result<pb::Batch, Status>>;
    async fn stream_batches(
        &self,
        _: Request<pb::StreamBatchesRequest>,
    ) -> Answer<Self::StreamBatchesStream> {
        Err(Status::unimplemented("not here"))
    }
    async fn get_account(&self, r: Request<pb::GetAccountRequest>) -> Answer<pb::Account> {
        let nonce = self.received.lock().unwrap().len() as u64;
        Ok(Response::new(pb::Account {
            address: r.into_inner().address,
            balance: 1_000_000,
            nonce,
            mempool_nonce: nonce,
        }))
    }
    async fn get_rollup(&self, _: Request<pb::GetRollupRequest>) -> Answer<pb::Rollup> {
        Ok(Response::new(pb::Rollup {
            verifying_key: self.verifying_key.clone(),
            ..Default::default()
        }))
    }
    async fn get_status(&self, _: Request<pb::GetStatusRequest>) -> Answer<pb::NodeStatus> {
        Ok(Response::new(pb::NodeStatus {
            chain_id: CHAIN.into(),
            height: 10,
            params: Some(pb::ChainParams {
                base_fee: 7,
                fee_per_byte: 1,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
    async fn get_finality(&self, _: Request<pb::GetFinalityRequest>) -> Answer<pb::FinalityStatus> {
        Err(Status::unimplemented("not here"))
    }
    async fn force_include(
        &self,
        _: Request<pb::SubmitTransactionRequest>,
    ) -> Answer<pb::SubmitTransactionResponse> {
        Err(Status::unimplemented("not here"))
    }
    async fn prove_state(&self, _: Request<pb::ProveStateRequest>) -> Answer<pb::StateProofs> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn get_forced_request(
        &self,
        _: Request<pb::GetForcedRequestRequest>,
    ) -> Answer<pb::ForcedRequest> {
        Err(Status::unimplemented("not here"))
    }
}

/// Serves `node` (RollupService and ProverService) on an ephemeral port.
async fn serve(node: Node) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RollupServiceServer::new(node.clone()))
            .add_service(ProverServiceServer::new(node))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    url
}

type Running = tokio::task::JoinHandle<Result<(), seqnet_rollup_client::ClientError>>;

/// Starts an aggregator (groups of 2, CPU MSM) against `url`; returns its
/// hand-over address, its stop switch and its task.
async fn start_aggregator(
    url: String,
    srs: Srs,
    metrics: Arc<Metrics>,
) -> (String, watch::Sender<bool>, Running) {
    let config = AggregatorConfig {
        nodes: vec![url],
        key: SigningKey::from_bytes(&[9; 32]),
        srs: Arc::new(srs),
        msm: Arc::new(CpuMsm),
        max_proofs: 2,
        max_wait: Duration::from_secs(30),
        retry: RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        },
        submit_attempts: 3,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(seqnet_prover::aggregator::run(
        config, listener, metrics, stopped,
    ));
    (addr, stop, running)
}

/// The one-block span job of `rollup` at `height`, from the zero root.
fn job(rollup: u64, height: u64) -> pb::Job {
    pb::Job {
        rollup_id: rollup,
        from_height: height,
        to_height: height,
        span_commitment: statement(rollup, height).commitment.to_vec(),
        proven_root: vec![0; 32],
        ..Default::default()
    }
}

fn statement(rollup: u64, height: u64) -> JobStatement {
    JobStatement::single_batch(
        rollup,
        height,
        seqnet_proto::batch_commitment(rollup, height, &[]),
        [0; 32],
    )
}

/// A proof of `job` as a back end answers it.
fn output(pk: &ark_groth16::ProvingKey<ark_bls12_381::Bls12_381>, job: &pb::Job) -> ProofOutput {
    let (proof, new_state_root) =
        seqnet_prover::prove(pk, K, &statement(job.rollup_id, job.from_height)).unwrap();
    ProofOutput {
        proof,
        prev_state_root: [0; 32],
        new_state_root,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregator_checks_aggregates_and_submits_one_transaction() {
    let (pk, vk) = seqnet_prover::setup(K, 11).unwrap();
    let vk_bytes = seqnet_prover::encode_verifying_key(&vk).unwrap();
    let srs = Srs::generate_dev(4, 3).unwrap();
    let verifier = srs.verifier();
    let node = Node {
        verifying_key: vk_bytes.clone(),
        received: Arc::default(),
        assigned: Vec::new(),
    };
    let received = node.received.clone();
    let url = serve(node).await;
    let metrics = Metrics::new().unwrap();
    let (addr, stop, running) = start_aggregator(url, srs, metrics.clone()).await;

    // Real proofs of (2, 5) and (1, 7), by two provers.
    let provers = [
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    ];
    let jobs = [job(2, 5), job(1, 7)];
    let mut handovers = Vec::new();
    let mut statements = Vec::new();
    for (prover, job) in provers.iter().zip(&jobs) {
        let out = output(&pk, job);
        statements
            .push(statement(job.rollup_id, job.from_height).with_new_root(out.new_state_root));
        handovers.push(Handover::new(prover, CHAIN, job, &out));
    }

    // A proof that does not match its statement is refused at once.
    let mut bad = handovers[0].clone();
    bad.new_state_root = hex::encode([5u8; 32]);
    let bad = Handover {
        signature: {
            let entry = seqnet_proto::ProofEntry::sign(&provers[0], CHAIN, 2, 5, [0; 32], [5; 32]);
            hex::encode(entry.signature.to_bytes())
        },
        ..bad
    };
    let refused = hand_over(&addr, &bad, Duration::from_secs(30)).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("does not verify")),
        "{refused:?}"
    );
    // A signature for another chain is refused too.
    let mut other_chain = handovers[0].clone();
    other_chain.signature = hex::encode(
        seqnet_proto::ProofEntry::sign(&provers[0], "other", 2, 5, [0; 32], [0; 32])
            .signature
            .to_bytes(),
    );
    assert!(hand_over(&addr, &other_chain, Duration::from_secs(30))
        .await
        .is_err_and(|e| e.contains("signature")));

    // Both good proofs: one aggregate, one transaction, one hash for both.
    let (a, b) = tokio::join!(
        hand_over(&addr, &handovers[0], Duration::from_secs(60)),
        hand_over(&addr, &handovers[1], Duration::from_secs(60)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    let sent = received.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let tx = &sent[0];
    assert_eq!(tx.hash(), a);
    assert_eq!(tx.body.chain_id, CHAIN);
    assert_eq!(tx.body.nonce, 0);
    let [Action::SubmitAggregate { entries, aggregate }] = tx.body.actions.as_slice() else {
        panic!("{:?}", tx.body.actions);
    };
    // Entries in (rollup, from_height) order, each signed by its prover.
    let order: Vec<(u64, u64)> = entries
        .iter()
        .map(|e| (e.rollup_id, e.from_height))
        .collect();
    assert_eq!(order, vec![(1, 7), (2, 5)]);
    for entry in entries {
        entry.verify(CHAIN).unwrap();
    }
    assert_eq!(
        entries[0].prover,
        seqnet_proto::Address::from(&provers[1].verifying_key())
    );
    statements.reverse();
    let key = PreparedKey::decode(&vk_bytes).unwrap();
    seqnet_proto::aggregate::verify_aggregate(&verifier, &key, &statements, aggregate).unwrap();
    assert_eq!(metrics.aggregates_submitted.get(), 1);
    assert_eq!(metrics.aggregated_proofs.get(), 2);

    stop.send(true).unwrap();
    running.await.unwrap().unwrap();

    // No aggregator listening: the prover is told, and falls back.
    let gone = hand_over(&addr, &handovers[0], Duration::from_secs(5)).await;
    assert!(gone.is_err(), "{gone:?}");
}

/// A job handed over by a back-up first and by its assigned prover second:
/// the aggregate carries the assigned prover's entry; the back-up is told
/// to fall back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_proofs_of_one_job_the_assigned_provers_is_aggregated() {
    let (pk, vk) = seqnet_prover::setup(K, 11).unwrap();
    let provers = [
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    ];
    let assigned = seqnet_proto::Address::from(&provers[1].verifying_key());
    let node = Node {
        verifying_key: seqnet_prover::encode_verifying_key(&vk).unwrap(),
        received: Arc::default(),
        assigned: vec![(assigned, 2, 5)],
    };
    let received = node.received.clone();
    let url = serve(node).await;
    let metrics = Metrics::new().unwrap();
    let (addr, stop, running) =
        start_aggregator(url, Srs::generate_dev(4, 3).unwrap(), metrics.clone()).await;

    let job = job(2, 5);
    let handovers: Vec<Handover> = provers
        .iter()
        .map(|prover| Handover::new(prover, CHAIN, &job, &output(&pk, &job)))
        .collect();
    // The back-up's proof arrives first.
    let backup = {
        let addr = addr.clone();
        let handover = handovers[0].clone();
        tokio::spawn(async move { hand_over(&addr, &handover, Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let primary = hand_over(&addr, &handovers[1], Duration::from_secs(60)).await;
    let backup = backup.await.unwrap();
    let hash = primary.unwrap();
    assert!(
        backup
            .as_ref()
            .is_err_and(|e| e.contains("another proof of this job")),
        "{backup:?}"
    );
    let sent = received.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].hash(), hash);
    let [Action::SubmitAggregate { entries, .. }] = sent[0].body.actions.as_slice() else {
        panic!("{:?}", sent[0].body.actions);
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].prover, assigned, "the assigned prover's entry");
    assert_eq!(metrics.aggregated_proofs.get(), 1);
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
}
