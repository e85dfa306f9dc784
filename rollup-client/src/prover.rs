//! The prover side of a node (`ProverService`): a prover's record and open
//! jobs, proof submission, and the authenticated job stream.
//!
//! A job stream is opened with a fresh challenge from the same node, signed
//! with the prover's key ([`seqnet_proto::prover::sign_auth`]). [`JobStream`]
//! keeps one open: when a node drops it, the stream is opened again (on the
//! next endpoint when there is one) with `resume_after` = the cursor of the
//! last job delivered, so no job is lost or delivered twice; cursors are
//! the same on every node. Transient failures are retried forever, with
//! back-off, since a prover waits out outages of its nodes; a refusal that
//! retrying cannot cure (INVALID_ARGUMENT, ...) ends the stream with an error.

use std::cmp::Ordering;
use std::pin::Pin;
use std::task::{Context, Poll};

use ed25519_dalek::SigningKey;
use seqnet_proto::pb::prover_service_client::ProverServiceClient;
use seqnet_proto::{pb, Address, Code, Transaction};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Code as GrpcCode, Status};

use crate::client::{classify, transient, ClientError, RollupClient, MAX_DECODING_BYTES};

fn prover_service(channel: Channel) -> ProverServiceClient<Channel> {
    ProverServiceClient::new(channel).max_decoding_message_size(MAX_DECODING_BYTES)
}

/// `(ready_height, rollup_id, from_height)`: the total order of job deliveries.
pub fn cursor_key(cursor: &pb::JobCursor) -> (u64, u64, u64) {
    (cursor.ready_height, cursor.rollup_id, cursor.from_height)
}

/// Orders two cursors as the node delivers them.
pub fn cmp_cursors(a: &pb::JobCursor, b: &pb::JobCursor) -> Ordering {
    cursor_key(a).cmp(&cursor_key(b))
}

impl RollupClient {
    /// The prover record of `address`, whether it is active, and its open
    /// jobs (`NotFound` when the address never registered).
    pub async fn prover(&mut self, address: Address) -> Result<pb::ProverInfo, ClientError> {
        self.call_on(|channel| async move {
            prover_service(channel)
                .get_prover(pb::GetProverRequest {
                    address: address.0.to_vec(),
                })
                .await
        })
        .await
    }

    /// Submits a transaction of `SubmitProof` actions through
    /// `ProverService.SubmitProof` (the node checks assignment, previous
    /// root and proof before it broadcasts); returns its hash. A node that
    /// already holds the very bytes counts as success; a refusal is
    /// [`ClientError::Rejected`] with the chain's code (`NOT_ASSIGNED`,
    /// `ROOT_MISMATCH`, `PROOF_REJECTED`, ...).
    pub async fn submit_proof(&mut self, tx: &Transaction) -> Result<[u8; 32], ClientError> {
        let request = pb::SubmitProofRequest {
            tx: tx.to_bytes().to_vec(),
        };
        let hash = tx.hash();
        let answer = self
            .try_call_on(|channel| {
                let request = request.clone();
                async move { prover_service(channel).submit_proof(request).await }
            })
            .await;
        match answer {
            Ok(response) if response.code == 0 => Ok(hash),
            Ok(response) => {
                let code = Code::from_u32(response.code);
                let message = match code {
                    Some(_) => response.log,
                    None => format!("unknown code {}: {}", response.code, response.log),
                };
                Err(ClientError::Rejected { code, message })
            }
            Err(crate::client::Failure::Final { status, .. })
                if status.code() == GrpcCode::AlreadyExists =>
            {
                Ok(hash)
            }
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// Opens one authenticated job stream on the current endpoint (moving
    /// on, with retries, when it is down): a challenge from the node, signed
    /// with `key`, then `Jobs` with it on the same connection.
    pub async fn open_jobs(
        &mut self,
        key: &SigningKey,
        resume_after: Option<pb::JobCursor>,
    ) -> Result<tonic::Streaming<pb::Job>, ClientError> {
        let public_key = key.verifying_key().to_bytes().to_vec();
        self.call_on(|channel| {
            let public_key = public_key.clone();
            async move {
                let mut service = prover_service(channel);
                let challenge = service
                    .get_challenge(pb::GetChallengeRequest {})
                    .await?
                    .into_inner();
                let signature =
                    seqnet_proto::prover::sign_auth(key, &challenge.chain_id, &challenge.challenge);
                service
                    .jobs(pb::JobsRequest {
                        public_key,
                        challenge: challenge.challenge,
                        signature: signature.to_vec(),
                        resume_after,
                    })
                    .await
            }
        })
        .await
    }

    /// The jobs assigned to `key`'s prover, from after `resume_after` (none:
    /// every open job assigned to it), following new blocks, reopened after
    /// drops without loss or duplicates (see the module docs). Dropping the
    /// stream stops the background task.
    pub fn jobs(&self, key: SigningKey, resume_after: Option<pb::JobCursor>) -> JobStream {
        let (sender, receiver) = mpsc::channel(64);
        let (events, event_receiver) = mpsc::unbounded_channel();
        let follower = JobFollower {
            client: self.clone(),
            key,
            last: resume_after,
            sender,
            events,
        };
        JobStream {
            receiver: ReceiverStream::new(receiver),
            events: event_receiver,
            task: tokio::spawn(follower.run()),
        }
    }
}

/// What happened to the connection behind a [`JobStream`] (for logs and
/// metrics; the stream handles it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStreamEvent {
    /// A stream is open on `endpoint`, resuming after `resume_after`.
    Opened {
        endpoint: String,
        resume_after: Option<(u64, u64, u64)>,
    },
    /// The stream on `endpoint` dropped; it reopens after `retry_in`.
    Dropped {
        endpoint: String,
        why: String,
        retry_in: std::time::Duration,
    },
}

/// The stream of [`RollupClient::jobs`]: `Ok(job)` in delivery order; an
/// `Err` is the last item.
#[derive(Debug)]
pub struct JobStream {
    receiver: ReceiverStream<Result<pb::Job, ClientError>>,
    events: mpsc::UnboundedReceiver<JobStreamEvent>,
    task: JoinHandle<()>,
}

impl JobStream {
    /// Connection events since the last call (never blocks).
    pub fn events(&mut self) -> Vec<JobStreamEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }
}

impl Stream for JobStream {
    type Item = Result<pb::Job, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.receiver).poll_next(cx)
    }
}

impl Drop for JobStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct JobFollower {
    client: RollupClient,
    key: SigningKey,
    /// Cursor of the last job delivered.
    last: Option<pb::JobCursor>,
    sender: mpsc::Sender<Result<pb::Job, ClientError>>,
    events: mpsc::UnboundedSender<JobStreamEvent>,
}

/// Why one opened job stream stopped.
enum JobStop {
    Done,
    Reopen { progressed: bool, why: String },
}

/// Failures worth reopening for: transient ones, and a refused challenge
/// (it may have expired while the connection was slow).
fn reopen_worthy(status: &Status) -> bool {
    transient(status).is_some() || status.code() == GrpcCode::Unauthenticated
}

impl JobFollower {
    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            match self.follow_once().await {
                JobStop::Done => return,
                JobStop::Reopen { progressed, why } => {
                    failures = if progressed {
                        1
                    } else {
                        failures.saturating_add(1)
                    };
                    let from = self.client.endpoint().to_string();
                    let retry_in = self.client.retry.backoff(failures);
                    tracing::warn!(%from, %why, ?retry_in, "job stream dropped; reopening");
                    let _ = self.events.send(JobStreamEvent::Dropped {
                        endpoint: from,
                        why,
                        retry_in,
                    });
                    self.client.fail_over();
                    tokio::time::sleep(retry_in).await;
                }
            }
        }
    }

    async fn follow_once(&mut self) -> JobStop {
        let opened = self.client.open_jobs(&self.key, self.last).await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(ClientError::Unavailable { last, .. }) => {
                return JobStop::Reopen {
                    progressed: false,
                    why: last,
                }
            }
            Err(ClientError::Status { status, .. }) if reopen_worthy(&status) => {
                return JobStop::Reopen {
                    progressed: false,
                    why: format!("{:?}: {}", status.code(), status.message()),
                }
            }
            Err(error) => {
                let _ = self.sender.send(Err(error)).await;
                return JobStop::Done;
            }
        };
        let _ = self.events.send(JobStreamEvent::Opened {
            endpoint: self.client.endpoint().to_string(),
            resume_after: self.last.as_ref().map(cursor_key),
        });
        tracing::info!(
            endpoint = %self.client.endpoint(),
            resume_after = ?self.last.as_ref().map(cursor_key),
            "job stream open"
        );
        let mut progressed = false;
        while let Some(message) = stream.next().await {
            let job = match message {
                Ok(job) => job,
                Err(status) if reopen_worthy(&status) => {
                    return JobStop::Reopen {
                        progressed,
                        why: format!("{:?}: {}", status.code(), status.message()),
                    }
                }
                Err(status) => {
                    let _ = self
                        .sender
                        .send(Err(classify(self.client.endpoint(), status)))
                        .await;
                    return JobStop::Done;
                }
            };
            let Some(cursor) = job.cursor else {
                tracing::warn!(
                    rollup = job.rollup_id,
                    from = job.from_height,
                    "job without a cursor; ignored"
                );
                continue;
            };
            // Already delivered (a node that resumed too early).
            if self
                .last
                .as_ref()
                .is_some_and(|last| cmp_cursors(&cursor, last) != Ordering::Greater)
            {
                continue;
            }
            self.last = Some(cursor);
            progressed = true;
            if self.sender.send(Ok(job)).await.is_err() {
                return JobStop::Done;
            }
        }
        JobStop::Reopen {
            progressed,
            why: "the node ended the stream".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RetryPolicy;
    use seqnet_proto::pb::prover_service_server::{ProverService, ProverServiceServer};
    use seqnet_proto::{Action, TransactionBody};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const CHAIN: &str = "prover-test";

    /// An in-test node: jobs of rollup 1 at heights 1..=tip, one per
    /// ready height.
    #[derive(Clone, Default)]
    struct Node {
        tip: u64,
        /// Each stream fails with UNAVAILABLE after this many jobs.
        drop_after: Option<usize>,
        /// Streams start from the first job, whatever the cursor.
        rewind: bool,
        /// SubmitProof answers with this code (0: accepted).
        answer_code: u32,
        /// `resume_after` of every stream opened (ready height).
        opened: Arc<Mutex<Vec<Option<u64>>>>,
        challenges: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    fn job(height: u64, prover: &[u8]) -> pb::Job {
        pb::Job {
            cursor: Some(pb::JobCursor {
                ready_height: height,
                rollup_id: 1,
                from_height: height,
            }),
            rollup_id: 1,
            from_height: height,
            to_height: height,
            span_commitment: vec![7; 32],
            proven_root: vec![0; 32],
            deadline: height + 20,
            prover: prover.to_vec(),
            ..Default::default()
        }
    }

    type Answer<T> = Result<tonic::Response<T>, Status>;

    #[tonic::async_trait]
    impl ProverService for Node {
        async fn get_challenge(
            &self,
            _: tonic::Request<pb::GetChallengeRequest>,
        ) -> Answer<pb::Challenge> {
            let mut challenges = self.challenges.lock().unwrap();
            let challenge = vec![u8::try_from(challenges.len() % 256).unwrap(); 32];
            challenges.push(challenge.clone());
            Ok(tonic::Response::new(pb::Challenge {
                challenge,
                expires_at_unix_ms: u64::MAX,
                chain_id: CHAIN.into(),
            }))
        }

        type JobsStream = ReceiverStream<Result<pb::Job, Status>>;
        async fn jobs(&self, r: tonic::Request<pb::JobsRequest>) -> Answer<Self::JobsStream> {
            let r = r.into_inner();
            if !self.challenges.lock().unwrap().contains(&r.challenge) {
                return Err(Status::unauthenticated("unknown challenge"));
            }
            seqnet_proto::prover::verify_auth(CHAIN, &r.challenge, &r.public_key, &r.signature)
                .map_err(|e| Status::unauthenticated(e.to_string()))?;
            let after = r.resume_after.map(|c| c.ready_height);
            self.opened.lock().unwrap().push(after);
            let node = self.clone();
            let (sender, receiver) = mpsc::channel(4);
            tokio::spawn(async move {
                let first = if node.rewind {
                    1
                } else {
                    after.unwrap_or(0) + 1
                };
                for (sent, height) in (first..=node.tip).enumerate() {
                    if node.drop_after == Some(sent) {
                        let _ = sender.send(Err(Status::unavailable("node stopping"))).await;
                        return;
                    }
                    if sender.send(Ok(job(height, &r.public_key))).await.is_err() {
                        return;
                    }
                }
                sender.closed().await; // follow: no new blocks
            });
            Ok(tonic::Response::new(ReceiverStream::new(receiver)))
        }

        async fn submit_proof(
            &self,
            r: tonic::Request<pb::SubmitProofRequest>,
        ) -> Answer<pb::SubmitProofResponse> {
            Ok(tonic::Response::new(pb::SubmitProofResponse {
                tx_hash: seqnet_proto::sha256(&r.into_inner().tx).to_vec(),
                code: self.answer_code,
                log: if self.answer_code == 0 {
                    String::new()
                } else {
                    "job (1, 5) is assigned to another prover".into()
                },
            }))
        }

        async fn get_prover(
            &self,
            _: tonic::Request<pb::GetProverRequest>,
        ) -> Answer<pb::ProverInfo> {
            Err(Status::not_found("no prover record"))
        }
    }

    async fn serve(node: Node) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ProverServiceServer::new(node))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        url
    }

    fn client(urls: Vec<String>) -> RollupClient {
        RollupClient::new(urls).unwrap().with_retry(RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        })
    }

    async fn take(stream: &mut JobStream, n: usize) -> Vec<u64> {
        let mut heights = Vec::new();
        while heights.len() < n {
            let job = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("a job in time")
                .expect("stream open")
                .expect("a job");
            heights.push(job.from_height);
        }
        heights
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    #[tokio::test]
    async fn dropped_job_streams_resume_after_the_last_cursor() {
        let node = Node {
            tip: 10,
            drop_after: Some(3),
            ..Node::default()
        };
        let opened = node.opened.clone();
        let url = serve(node).await;
        let mut stream = client(vec![url]).jobs(key(), None);
        assert_eq!(take(&mut stream, 10).await, (1..=10).collect::<Vec<_>>());
        assert_eq!(
            *opened.lock().unwrap(),
            vec![None, Some(3), Some(6), Some(9)]
        );
        let events = stream.events();
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, JobStreamEvent::Dropped { .. }))
                .count(),
            3,
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_dead_node_fails_over_and_a_rewinding_one_is_deduplicated() {
        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let dropping = serve(Node {
            tip: 6,
            drop_after: Some(3),
            ..Node::default()
        })
        .await;
        let rewinding = serve(Node {
            tip: 6,
            rewind: true,
            ..Node::default()
        })
        .await;
        let mut stream = client(vec![dead, dropping, rewinding]).jobs(key(), None);
        // 1..=3 from the second node; the third sends 1..=6 again, of which
        // only 4..=6 are new.
        assert_eq!(take(&mut stream, 6).await, (1..=6).collect::<Vec<_>>());
        let extra = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
        assert!(extra.is_err(), "nothing more: {extra:?}");
    }

    fn proof_tx() -> Transaction {
        TransactionBody {
            chain_id: CHAIN.into(),
            nonce: 0,
            fee: 10,
            actions: vec![Action::SubmitProof {
                rollup_id: 1,
                from_height: 5,
                proof: vec![1; 192],
                prev_state_root: [0; 32],
                new_state_root: [0; 32],
            }],
        }
        .sign(&key())
    }

    #[tokio::test]
    async fn submissions_are_accepted_or_refused_with_the_chain_code() {
        let url = serve(Node::default()).await;
        let tx = proof_tx();
        assert_eq!(
            client(vec![url]).submit_proof(&tx).await.unwrap(),
            tx.hash()
        );
        let url = serve(Node {
            answer_code: Code::NotAssigned.as_u32(),
            ..Node::default()
        })
        .await;
        match client(vec![url.clone()]).submit_proof(&tx).await {
            Err(ClientError::Rejected { code, message }) => {
                assert_eq!(code, Some(Code::NotAssigned));
                assert!(message.contains("another prover"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            client(vec![url]).prover(Address([1; 32])).await,
            Err(ClientError::NotFound(_))
        ));
    }
}
