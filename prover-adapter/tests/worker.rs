//! The prover worker against an in-test node (`RollupService` for status and
//! nonces, `ProverService` for challenges, jobs and submissions): it proves
//! every job it is given, signs each proof with the next nonce, signs again
//! after a nonce refusal, skips a job past its deadline, and counts a
//! refusal by its code.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use seqnet_proto::pb::prover_service_server::{ProverService, ProverServiceServer};
use seqnet_proto::pb::rollup_service_server::{RollupService, RollupServiceServer};
use seqnet_proto::{pb, Action, Code, Transaction};
use seqnet_prover::backend::{BackendError, JobInput, ProofOutput, ProvingBackend};
use seqnet_prover::metrics::Metrics;
use seqnet_prover::worker::{Worker, WorkerConfig};
use seqnet_rollup_client::RetryPolicy;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const CHAIN: &str = "worker-test";

#[derive(Clone, Default)]
struct Node {
    /// Committed nonce of the prover's account.
    nonce: Arc<Mutex<u64>>,
    /// Every SubmitProof transaction received, accepted or not.
    received: Arc<Mutex<Vec<Transaction>>>,
    /// The first submission is refused as a replayed nonce.
    refuse_first_nonce: bool,
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl RollupService for Node {
    async fn submit_transaction(
        &self,
        _: Request<pb::SubmitTransactionRequest>,
    ) -> Answer<pb::SubmitTransactionResponse> {
        Err(Status::unimplemented("not here"))
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
        let nonce = *self.nonce.lock().unwrap();
        Ok(Response::new(pb::Account {
            address: r.into_inner().address,
            balance: 1_000_000,
            nonce,
            mempool_nonce: nonce,
        }))
    }
    async fn get_rollup(&self, _: Request<pb::GetRollupRequest>) -> Answer<pb::Rollup> {
        Err(Status::unimplemented("not here"))
    }
    async fn get_status(&self, _: Request<pb::GetStatusRequest>) -> Answer<pb::NodeStatus> {
        Ok(Response::new(pb::NodeStatus {
            chain_id: CHAIN.into(),
            height: 10,
            params: Some(pb::ChainParams {
                base_fee: 7,
                fee_per_byte: 1,
                register_rollup_fee: 1000,
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

fn job(rollup: u64, height: u64, ready: u64, deadline: u64) -> pb::Job {
    pb::Job {
        cursor: Some(pb::JobCursor {
            ready_height: ready,
            rollup_id: rollup,
            from_height: height,
        }),
        rollup_id: rollup,
        from_height: height,
        to_height: height,
        span_commitment: vec![3; 32],
        proven_root: vec![0; 32],
        deadline,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl ProverService for Node {
    async fn get_challenge(&self, _: Request<pb::GetChallengeRequest>) -> Answer<pb::Challenge> {
        Ok(Response::new(pb::Challenge {
            challenge: vec![9; 32],
            expires_at_unix_ms: u64::MAX,
            chain_id: CHAIN.into(),
        }))
    }
    type JobsStream = ReceiverStream<Result<pb::Job, Status>>;
    async fn jobs(&self, r: Request<pb::JobsRequest>) -> Answer<Self::JobsStream> {
        let r = r.into_inner();
        seqnet_proto::prover::verify_auth(CHAIN, &r.challenge, &r.public_key, &r.signature)
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        let (sender, receiver) = mpsc::channel(8);
        tokio::spawn(async move {
            // In cursor order: (1, 11) proven; (2, 11) refused; (1, 12)
            // provable only once its deadline came; (2, 12) proven.
            for j in [
                job(1, 11, 11, 31),
                job(2, 11, 11, 31),
                job(1, 12, 32, 32),
                job(2, 12, 33, 52),
            ] {
                if sender.send(Ok(j)).await.is_err() {
                    return;
                }
            }
            sender.closed().await;
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
    async fn submit_proof(
        &self,
        r: Request<pb::SubmitProofRequest>,
    ) -> Answer<pb::SubmitProofResponse> {
        let tx = Transaction::decode(&r.into_inner().tx, 1 << 20, 64).unwrap();
        let mut received = self.received.lock().unwrap();
        received.push(tx.clone());
        let mut nonce = self.nonce.lock().unwrap();
        let answer = |code: Code, log: &str| {
            Ok(Response::new(pb::SubmitProofResponse {
                tx_hash: tx.hash().to_vec(),
                code: code.as_u32(),
                log: log.into(),
            }))
        };
        if self.refuse_first_nonce && received.len() == 1 {
            // Someone else used this nonce meanwhile.
            *nonce += 1;
            return answer(Code::NonceReplayed, "nonce already used");
        }
        if tx.body.nonce != *nonce {
            return answer(Code::NonceGap, "wrong nonce");
        }
        if let [Action::SubmitProof {
            rollup_id: 2,
            from_height: 11,
            ..
        }] = tx.body.actions.as_slice()
        {
            return answer(Code::NotAssigned, "job (2, 11) moved to a back-up");
        }
        *nonce += 1;
        answer(Code::Ok, "")
    }
    async fn get_prover(&self, _: Request<pb::GetProverRequest>) -> Answer<pb::ProverInfo> {
        Err(Status::not_found("no record"))
    }
}

/// Proves instantly: the proof names the job.
struct Fake;

impl ProvingBackend for Fake {
    fn describe(&self) -> String {
        "fake".into()
    }
    fn prove(&self, job: &JobInput) -> Result<ProofOutput, BackendError> {
        Ok(ProofOutput {
            proof: vec![u8::try_from(job.from_height).unwrap(); 192],
            prev_state_root: [0; 32],
            new_state_root: [u8::try_from(job.rollup_id).unwrap(); 32],
        })
    }
}

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

#[tokio::test]
async fn the_worker_proves_signs_resyncs_skips_and_counts() {
    let node = Node {
        refuse_first_nonce: true,
        ..Node::default()
    };
    let received = node.received.clone();
    let url = serve(node).await;
    let metrics = Metrics::new().unwrap();
    let config = WorkerConfig {
        aggregator: None,
        handover_timeout: Duration::from_secs(1),
        nodes: vec![url],
        key: SigningKey::from_bytes(&[4; 32]),
        retry: RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        },
        submit_attempts: 4,
        auto_unjail: false,
        status_interval: Duration::from_secs(60),
    };
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(Worker::new(config, Arc::new(Fake), metrics.clone()).run(stopped));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metrics.proofs_submitted.get() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker too slow: {}",
            String::from_utf8_lossy(&metrics.render())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();

    let sent: Vec<(u64, u64, u64, u64)> = received
        .lock()
        .unwrap()
        .iter()
        .map(|tx| match tx.body.actions.as_slice() {
            [Action::SubmitProof {
                rollup_id,
                from_height,
                ..
            }] => (*rollup_id, *from_height, tx.body.nonce, tx.body.fee),
            other => panic!("{other:?}"),
        })
        .collect();
    // (1, 11) refused for its nonce, signed again with the next one; (2, 11)
    // refused for good; (1, 12) never sent (its deadline had passed);
    // (2, 12) with the following nonce. The fee is the chain's base fee.
    assert_eq!(
        sent,
        vec![(1, 11, 0, 7), (1, 11, 1, 7), (2, 11, 2, 7), (2, 12, 2, 7)]
    );
    assert_eq!(metrics.jobs_received.get(), 4);
    assert_eq!(metrics.proofs_submitted.get(), 2);
    assert_eq!(
        metrics
            .proofs_rejected
            .with_label_values(&["not_assigned"])
            .get(),
        1
    );
    assert_eq!(
        metrics
            .jobs_dropped
            .with_label_values(&["past_deadline"])
            .get(),
        1
    );
    let text = String::from_utf8(metrics.render()).unwrap();
    assert!(
        text.contains("seqnet_prover_proving_seconds_count 3"),
        "{text}"
    );
}
