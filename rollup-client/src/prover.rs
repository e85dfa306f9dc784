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

/// `(ready_height, rollup_id, height)`: the total order of job deliveries.
pub fn cursor_key(cursor: &pb::JobCursor) -> (u64, u64, u64) {
    (cursor.ready_height, cursor.rollup_id, cursor.height)
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
    /// `ProverService.SubmitProof` (the node checks assignment, order and
    /// proof before it broadcasts); returns its hash. A node that already
    /// holds the very bytes counts as success; a refusal is
    /// [`ClientError::Rejected`] with the chain's code (`NOT_ASSIGNED`,
    /// `OUT_OF_ORDER`, `PROOF_REJECTED`, ...).
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
                    height = job.height,
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
