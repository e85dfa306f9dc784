//! A typed client of one or more seqnet nodes.
//!
//! Calls go to the current endpoint. Transient failures (the node or the
//! connection is down, UNAVAILABLE, a timeout) are retried a bounded number of
//! times with exponential back-off, moving to the next endpoint first when
//! there is one; each endpoint gets at least one try per call. Rejections
//! (INVALID_ARGUMENT, FAILED_PRECONDITION) come back at once as
//! [`ClientError::Rejected`] and are never retried.
//!
//! Retrying a submission is safe: the same bytes have the same hash, and a
//! node that already holds them answers ALREADY_EXISTS, which
//! [`RollupClient::submit`] reports as success.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use seqnet_proto::pb::rollup_service_client::RollupServiceClient;
use seqnet_proto::{pb, Address, Code, Transaction};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code as GrpcCode, Status};

use seqnet_proto::groth16::PreparedKey;

use crate::verify::{check_span_proof, verify_batch_for, VerifiedBatch, VerifyError};

/// Metadata key carrying the numeric `Code` of a rejected submission.
pub const CODE_METADATA: &str = "seqnet-code";
/// Largest message the client accepts from a node (a batch can be big).
pub(crate) const MAX_DECODING_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no node endpoint given")]
    NoEndpoints,
    #[error("endpoint {endpoint:?} is not a valid URL: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    /// The node refused the request (for a transaction: it failed CheckTx or
    /// the stateless checks). `code` is `None` when the node sent no code or
    /// one this client does not know; the message then names the number.
    #[error("rejected ({}): {message}", code.map_or_else(|| "no code".to_string(), |c| c.to_string()))]
    Rejected { code: Option<Code>, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    /// Every attempt failed with a transient error.
    #[error("no node answered after {attempts} attempts; last error from {endpoint}: {last}")]
    Unavailable {
        attempts: u32,
        endpoint: String,
        last: String,
    },
    /// Any other gRPC failure (INTERNAL, UNIMPLEMENTED, ...).
    #[error("{endpoint} answered {status}")]
    Status { endpoint: String, status: Status },
    /// A batch from the node did not verify (or was not the one asked for).
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },
}

impl ClientError {
    /// The chain's result code of a rejection, if it sent a known one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Rejected { code, .. } => *code,
            _ => None,
        }
    }
}

/// Attempts and back-off for transient failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per call, the first included (at least one per endpoint).
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Time to open a connection to an endpoint.
    pub connect_timeout: Duration,
    /// Time for a unary answer (or for a stream to open).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Back-off before retry number `retry` (1-based): doubling from
    /// `initial_backoff`, capped at `max_backoff`; zero for `retry == 0`.
    pub fn backoff(&self, retry: u32) -> Duration {
        if retry == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(retry - 1);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What to do after a failed try.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Transient {
    /// The node or the path to it is down: try the next endpoint.
    FailOver,
    /// The node is up but busy: try it again later.
    Retry,
}

pub(crate) fn transient(status: &Status) -> Option<Transient> {
    match status.code() {
        // Transport errors surface as UNAVAILABLE or UNKNOWN; a node that
        // cannot reach its CometBFT answers UNAVAILABLE.
        GrpcCode::Unavailable
        | GrpcCode::Unknown
        | GrpcCode::DeadlineExceeded
        | GrpcCode::Cancelled => Some(Transient::FailOver),
        GrpcCode::ResourceExhausted | GrpcCode::Aborted => Some(Transient::Retry),
        _ => None,
    }
}

fn rejection(status: &Status) -> ClientError {
    let raw = status
        .metadata()
        .get(CODE_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let code = raw.and_then(Code::from_u32);
    let message = match (raw, code) {
        (Some(raw), None) => format!("unknown code {raw}: {}", status.message()),
        _ => status.message().to_string(),
    };
    ClientError::Rejected { code, message }
}

/// The error for a status that is not retried (ALREADY_EXISTS is left to
/// the caller, which knows whether it means success).
pub(crate) fn classify(endpoint: &str, status: Status) -> ClientError {
    match status.code() {
        GrpcCode::InvalidArgument | GrpcCode::FailedPrecondition | GrpcCode::AlreadyExists => {
            rejection(&status)
        }
        GrpcCode::NotFound => ClientError::NotFound(status.message().to_string()),
        _ => ClientError::Status {
            endpoint: endpoint.to_string(),
            status,
        },
    }
}

/// `error: cause: cause`, each cause once (transport errors say little at
/// the top).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A `RollupService` client on `channel`.
fn rollup_service(channel: Channel) -> RollupServiceClient<Channel> {
    RollupServiceClient::new(channel).max_decoding_message_size(MAX_DECODING_BYTES)
}

/// How one call ended without an answer.
pub(crate) enum Failure {
    /// A status that is not retried, from `endpoint`.
    Final { endpoint: String, status: Status },
    /// Transient failures all the way.
    GaveUp(ClientError),
}

impl Failure {
    pub(crate) fn into_error(self) -> ClientError {
        match self {
            Failure::Final { endpoint, status } => classify(&endpoint, status),
            Failure::GaveUp(error) => error,
        }
    }
}

/// A client of one or more nodes' `RollupService`. Cloning is cheap and the
/// clones share connections until one of them fails over.
#[derive(Clone, Debug)]
pub struct RollupClient {
    endpoints: Vec<String>,
    current: usize,
    channel: Option<Channel>,
    pub(crate) retry: RetryPolicy,
}

impl RollupClient {
    /// A client of `endpoints` (`http://host:port`), tried in that order;
    /// connects lazily.
    pub fn new(endpoints: Vec<String>) -> Result<RollupClient, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        for e in &endpoints {
            let bad = |reason: String| ClientError::BadEndpoint {
                endpoint: e.clone(),
                reason,
            };
            let endpoint = Endpoint::from_shared(e.clone()).map_err(|err| bad(err.to_string()))?;
            let uri = endpoint.uri();
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(bad("want http://host:port or https://host:port".into()));
            }
        }
        Ok(RollupClient {
            endpoints,
            current: 0,
            channel: None,
            retry: RetryPolicy::default(),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> RollupClient {
        self.retry = retry;
        self
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The endpoint calls go to now.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.current]
    }

    async fn channel(&mut self) -> Result<Channel, Status> {
        if let Some(channel) = &self.channel {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(self.endpoint().to_string())
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .connect_timeout(self.retry.connect_timeout)
            .timeout(self.retry.request_timeout)
            // Notice a dead peer on a quiet batch stream.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect().await.map_err(|e| {
            Status::unavailable(format!(
                "cannot connect to {}: {}",
                self.endpoint(),
                error_chain(&e)
            ))
        })?;
        self.channel = Some(channel.clone());
        Ok(channel)
    }

    /// Drops the connection and moves to the next endpoint.
    pub(crate) fn fail_over(&mut self) {
        self.channel = None;
        self.current = (self.current + 1) % self.endpoints.len();
    }

    /// [`RollupClient::try_call_on`] with the `RollupService` client.
    async fn try_call<T, F, Fut>(&mut self, call: F) -> Result<T, Failure>
    where
        F: Fn(RollupServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.try_call_on(|channel| call(rollup_service(channel)))
            .await
    }

    /// Runs `call` on a connection to the current endpoint, retrying
    /// transient failures with back-off and moving to the next endpoint
    /// after a node is found down.
    pub(crate) async fn try_call_on<T, F, Fut>(&mut self, call: F) -> Result<T, Failure>
    where
        F: Fn(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let endpoints = u32::try_from(self.endpoints.len()).unwrap_or(u32::MAX);
        let attempts = self.retry.attempts.max(endpoints).max(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = match self.channel().await {
                Ok(client) => call(client).await.map(tonic::Response::into_inner),
                Err(status) => Err(status),
            };
            let status = match result {
                Ok(value) => return Ok(value),
                Err(status) => status,
            };
            let endpoint = self.endpoint().to_string();
            let Some(kind) = transient(&status) else {
                return Err(Failure::Final { endpoint, status });
            };
            if attempt >= attempts {
                return Err(Failure::GaveUp(ClientError::Unavailable {
                    attempts: attempt,
                    endpoint,
                    last: format!("{:?}: {}", status.code(), status.message()),
                }));
            }
            // The first try of each endpoint comes without waiting.
            let retry = match kind {
                Transient::FailOver => {
                    self.fail_over();
                    attempt.saturating_sub(endpoints - 1)
                }
                Transient::Retry => attempt,
            };
            let pause = self.retry.backoff(retry);
            tracing::debug!(
                %endpoint,
                next = %self.endpoint(),
                attempt,
                ?pause,
                code = ?status.code(),
                error = %status.message(),
                "transient failure; retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    async fn call<T, F, Fut>(&mut self, call: F) -> Result<T, ClientError>
    where
        F: Fn(RollupServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.try_call(call).await.map_err(Failure::into_error)
    }

    /// [`RollupClient::try_call_on`], failures as [`ClientError`]s.
    pub(crate) async fn call_on<T, F, Fut>(&mut self, call: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.try_call_on(call).await.map_err(Failure::into_error)
    }

    /// Sends `tx` with `send`; ALREADY_EXISTS (a node already holds these
    /// very bytes, e.g. from an earlier try whose answer was lost) is success.
    async fn send_tx<F, Fut>(&mut self, tx: &Transaction, send: F) -> Result<[u8; 32], ClientError>
    where
        F: Fn(RollupServiceClient<Channel>, pb::SubmitTransactionRequest) -> Fut,
        Fut: std::future::Future<
            Output = Result<tonic::Response<pb::SubmitTransactionResponse>, Status>,
        >,
    {
        let request = pb::SubmitTransactionRequest {
            tx: tx.to_bytes().to_vec(),
        };
        let hash = tx.hash();
        match self.try_call(|c| send(c, request.clone())).await {
            Ok(_) => Ok(hash),
            Err(Failure::Final { status, .. }) if status.code() == GrpcCode::AlreadyExists => {
                tracing::debug!(tx = %hex::encode(hash), "already in the mempool");
                Ok(hash)
            }
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// Submits `tx`; returns its hash once it passed CheckTx (it is then in
    /// the mempool, not yet in a block).
    pub async fn submit(&mut self, tx: &Transaction) -> Result<[u8; 32], ClientError> {
        self.send_tx(tx, |mut c, r| async move { c.submit_transaction(r).await })
            .await
    }

    /// Submits encoded transaction bytes as they are, without decoding them
    /// here (so malformed bytes reach the node too), and returns the node's
    /// answer with the hash it computed. Transient failures are retried like
    /// every call. Every refusal is [`ClientError::Rejected`] with the node's
    /// code and message, whether a gRPC error or an answer with a non-zero
    /// code; unlike [`RollupClient::submit`], that includes ALREADY_EXISTS.
    pub async fn submit_bytes(
        &mut self,
        tx: Vec<u8>,
    ) -> Result<pb::SubmitTransactionResponse, ClientError> {
        let request = pb::SubmitTransactionRequest { tx };
        let response = self
            .call(|mut c| {
                let r = request.clone();
                async move { c.submit_transaction(r).await }
            })
            .await?;
        if response.code != 0 {
            let code = Code::from_u32(response.code);
            let message = match code {
                Some(_) => response.log,
                None => format!("unknown code {}: {}", response.code, response.log),
            };
            return Err(ClientError::Rejected { code, message });
        }
        Ok(response)
    }

    /// Submits a transaction carrying `ForceInclude` actions; returns its hash.
    pub async fn force_include(&mut self, tx: &Transaction) -> Result<[u8; 32], ClientError> {
        self.send_tx(tx, |mut c, r| async move { c.force_include(r).await })
            .await
    }

    /// The forced-inclusion request for the inner transaction `tx_hash`.
    /// Records of the state tree with their proofs, all under one app hash
    /// (check them with `seqnet_proto::state_proof::verify` against header
    /// `version + 1`, verified by a [`crate::light::LightClient`]).
    pub async fn prove_state(
        &mut self,
        space: seqnet_proto::state_proof::Space,
        keys: Vec<Vec<u8>>,
    ) -> Result<pb::StateProofs, ClientError> {
        self.call(|mut c| {
            let keys = keys.clone();
            async move {
                c.prove_state(pb::ProveStateRequest {
                    space: space.name().to_string(),
                    keys,
                })
                .await
            }
        })
        .await
    }

    pub async fn forced_request(
        &mut self,
        tx_hash: [u8; 32],
    ) -> Result<pb::ForcedRequest, ClientError> {
        self.call(|mut c| async move {
            c.get_forced_request(pb::GetForcedRequestRequest {
                tx_hash: tx_hash.to_vec(),
            })
            .await
        })
        .await
    }

    /// Balance and next nonce of `address` (an unknown account has both 0).
    pub async fn account(&mut self, address: Address) -> Result<pb::Account, ClientError> {
        self.call(|mut c| async move {
            c.get_account(pb::GetAccountRequest {
                address: address.0.to_vec(),
            })
            .await
        })
        .await
    }

    /// A registered rollup (`NotFound` when it is not).
    pub async fn rollup(&mut self, rollup_id: u64) -> Result<pb::Rollup, ClientError> {
        self.call(|mut c| async move { c.get_rollup(pb::GetRollupRequest { rollup_id }).await })
            .await
    }

    /// Chain id, last committed height, app hash and rollups.
    pub async fn status(&mut self) -> Result<pb::NodeStatus, ClientError> {
        self.call(|mut c| async move { c.get_status(pb::GetStatusRequest {}).await })
            .await
    }

    /// Ordered and proven height, the lag between them and, for `height`
    /// (0: none), whether it is ordered and proven.
    pub async fn finality(&mut self, height: u64) -> Result<pb::FinalityStatus, ClientError> {
        self.call(|mut c| async move { c.get_finality(pb::GetFinalityRequest { height }).await })
            .await
    }

    /// Polls until `height` is proven; returns the finality status then.
    pub async fn wait_for_proven(
        &mut self,
        height: u64,
        timeout: Duration,
    ) -> Result<pb::FinalityStatus, ClientError> {
        let started = tokio::time::Instant::now();
        loop {
            let status = self.finality(height).await?;
            if status.proven {
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                return Err(ClientError::Timeout {
                    what: format!(
                        "height {height} to be proven (proven height {}, ordered {})",
                        status.proven_height, status.ordered_height
                    ),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until the node has committed `height`; returns its status then.
    pub async fn wait_for_height(
        &mut self,
        height: u64,
        timeout: Duration,
    ) -> Result<pb::NodeStatus, ClientError> {
        let started = tokio::time::Instant::now();
        loop {
            let status = self.status().await?;
            if status.height >= height {
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                return Err(ClientError::Timeout {
                    what: format!("height {height} (node at {})", status.height),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until `address`'s next nonce reaches `nonce`, i.e. until its
    /// transactions with smaller nonces are committed; returns the account.
    pub async fn wait_for_nonce(
        &mut self,
        address: Address,
        nonce: u64,
        timeout: Duration,
    ) -> Result<pb::Account, ClientError> {
        let started = tokio::time::Instant::now();
        loop {
            let account = self.account(address).await?;
            if account.nonce >= nonce {
                return Ok(account);
            }
            if started.elapsed() >= timeout {
                return Err(ClientError::Timeout {
                    what: format!("nonce {nonce} of {address} (at {})", account.nonce),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The batch of `rollup_id` at `height`, verified (and checked to be
    /// that rollup's at that height).
    pub async fn batch(
        &mut self,
        rollup_id: u64,
        height: u64,
    ) -> Result<VerifiedBatch, ClientError> {
        let batch = self.raw_batch(rollup_id, height).await?;
        Ok(verify_batch_for(&batch, rollup_id, height)?)
    }

    /// The batch as the node sent it, unverified.
    pub async fn raw_batch(
        &mut self,
        rollup_id: u64,
        height: u64,
    ) -> Result<pb::Batch, ClientError> {
        self.call(
            |mut c| async move { c.get_batch(pb::GetBatchRequest { rollup_id, height }).await },
        )
        .await
    }

    /// Verified batches of `rollup_id` from `from_height` on (at least 1),
    /// in height order, following new blocks; with `skip_empty`, heights
    /// where the rollup has no data are left out.
    ///
    /// A dropped stream is reopened (on the next endpoint when there is
    /// one) at the next height: no height is repeated, and without
    /// `skip_empty` none is skipped either (a height the node leaves out is
    /// fetched with `GetBatch`). A batch that does not verify comes as an
    /// `Err(ClientError::Verify)` item and is asked for again from the next
    /// endpoint, so the stream does not move past it unverified. Any other
    /// `Err` item is the last one: a non-transient error, or transient ones
    /// beyond the retry policy's attempts without progress. Dropping the
    /// stream stops the background task.
    pub fn stream_batches(
        &self,
        rollup_id: u64,
        from_height: u64,
        skip_empty: bool,
    ) -> BatchStream {
        self.follow(
            rollup_id,
            from_height,
            skip_empty,
            pb::FinalityLevel::FinalityOrdered,
        )
    }

    /// [`RollupClient::stream_batches`] at PROVEN finality: a height comes
    /// only once it is proven (every span covering heights up to it has a
    /// linked proof on chain), and a non-empty batch with a proof job
    /// carries the validity proof of its span in [`VerifiedBatch::proof`].
    /// The proof is checked here against the rollup's verifying key
    /// (`GetRollup`) and the span's own batches (the stream holds a span's
    /// batches back until its last one has arrived and the span verified,
    /// then delivers them together; batches of the span before `from_height`
    /// are read with `GetBatch` for the check), and chained: each span's
    /// proof starts from the root the previous one ended at. A proof that
    /// does not check is an `Err(ClientError::Verify)` item, and the span is
    /// asked for again from the next endpoint, like a batch that does not
    /// verify.
    pub fn stream_proven_batches(
        &self,
        rollup_id: u64,
        from_height: u64,
        skip_empty: bool,
    ) -> BatchStream {
        self.follow(
            rollup_id,
            from_height,
            skip_empty,
            pb::FinalityLevel::FinalityProven,
        )
    }

    fn follow(
        &self,
        rollup_id: u64,
        from_height: u64,
        skip_empty: bool,
        finality: pb::FinalityLevel,
    ) -> BatchStream {
        let (sender, receiver) = mpsc::channel(64);
        let follower = Follower {
            client: self.clone(),
            rollup_id,
            next: from_height.max(1),
            skip_empty,
            finality,
            key: None,
            last_root: None,
            span: None,
            sender,
        };
        BatchStream {
            receiver: ReceiverStream::new(receiver),
            task: tokio::spawn(follower.run()),
        }
    }
}

/// The stream of [`RollupClient::stream_batches`]; dropping it stops the
/// task that follows the node.
#[derive(Debug)]
pub struct BatchStream {
    receiver: ReceiverStream<Result<VerifiedBatch, ClientError>>,
    task: JoinHandle<()>,
}

impl Stream for BatchStream {
    type Item = Result<VerifiedBatch, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.receiver).poll_next(cx)
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why one opened stream stopped.
enum Stop {
    /// The consumer went away, or the stream's last item was sent.
    Done,
    /// Reopen at `next` (after a drop or a batch that did not verify).
    Reopen { progressed: bool, why: String },
}

struct Follower {
    client: RollupClient,
    rollup_id: u64,
    /// The next height to deliver.
    next: u64,
    skip_empty: bool,
    finality: pb::FinalityLevel,
    /// The rollup's verifying key (PROVEN streams; fetched on first use).
    key: Option<PreparedKey>,
    /// New state root of the last proof delivered (PROVEN streams).
    last_root: Option<[u8; 32]>,
    /// The span being received (PROVEN streams): its proof and the batches
    /// from its first height on, held until the span verifies.
    span: Option<SpanBuffer>,
    sender: mpsc::Sender<Result<VerifiedBatch, ClientError>>,
}

/// A PROVEN stream's span in progress.
struct SpanBuffer {
    proof: pb::BatchProof,
    /// Batches of heights `proof.from_height..` received (or read) so far,
    /// in height order; those before the stream's start are not delivered.
    batches: Vec<VerifiedBatch>,
    /// Heights below this were read only to check the span.
    deliver_from: u64,
}

impl Follower {
    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            match self.follow_once().await {
                Stop::Done => return,
                Stop::Reopen { progressed, why } => {
                    failures = if progressed { 1 } else { failures + 1 };
                    if failures > self.client.retry.attempts {
                        let _ = self
                            .sender
                            .send(Err(ClientError::Unavailable {
                                attempts: failures,
                                endpoint: self.client.endpoint().to_string(),
                                last: format!("batch stream at height {}: {why}", self.next),
                            }))
                            .await;
                        return;
                    }
                    let from = self.client.endpoint().to_string();
                    self.client.fail_over();
                    tracing::debug!(
                        rollup = self.rollup_id,
                        next = self.next,
                        %from,
                        to = %self.client.endpoint(),
                        %why,
                        "batch stream reopens"
                    );
                    tokio::time::sleep(self.client.retry.backoff(failures)).await;
                }
            }
        }
    }

    /// Sends `item`; false when nobody listens any more.
    async fn send(&self, item: Result<VerifiedBatch, ClientError>) -> bool {
        self.sender.send(item).await.is_ok()
    }

    fn proven(&self) -> bool {
        self.finality == pb::FinalityLevel::FinalityProven
    }

    /// The rollup's verifying key, from the node (`refresh`: ask again, in
    /// case the rollup changed it).
    async fn key(&mut self, refresh: bool) -> Result<PreparedKey, ClientError> {
        if let (Some(key), false) = (&self.key, refresh) {
            return Ok(key.clone());
        }
        let rollup = self.client.rollup(self.rollup_id).await?;
        let key = PreparedKey::decode(&rollup.verifying_key).map_err(|source| {
            ClientError::Verify(VerifyError::Groth16 {
                rollup_id: self.rollup_id,
                height: self.next,
                source,
            })
        })?;
        self.key = Some(key.clone());
        Ok(key)
    }

    /// Checks a completed span's proof against its batches (PROVEN streams)
    /// and attaches it to each of them.
    async fn check_span(&mut self, span: &mut SpanBuffer) -> Result<(), ClientError> {
        let mut result = Err(ClientError::NoEndpoints);
        for refresh in [false, true] {
            let key = self.key(refresh).await?;
            let non_empty: Vec<&VerifiedBatch> = span
                .batches
                .iter()
                .filter(|b| !b.items.is_empty())
                .collect();
            result = check_span_proof(
                self.rollup_id,
                &non_empty,
                &span.proof,
                &key,
                self.last_root,
            )
            .map_err(ClientError::Verify);
            // Only a failed pairing check may come from a changed key.
            if !matches!(
                result,
                Err(ClientError::Verify(VerifyError::Groth16 { .. }))
            ) {
                break;
            }
        }
        let checked = result?;
        self.last_root = Some(checked.new_state_root);
        for batch in span.batches.iter_mut().filter(|b| !b.items.is_empty()) {
            batch.proof = Some(checked.clone());
        }
        Ok(())
    }

    /// The batches of the span of `proof` below `first` (the stream started
    /// inside the span), read with `GetBatch` and verified, for the check.
    async fn span_prefix(
        &mut self,
        proof: &pb::BatchProof,
        first: u64,
    ) -> Result<Vec<VerifiedBatch>, ClientError> {
        let mut out = Vec::new();
        for height in proof.from_height..first {
            let raw = self.client.raw_batch(self.rollup_id, height).await?;
            out.push(verify_batch_for(&raw, self.rollup_id, height)?);
        }
        Ok(out)
    }

    /// Verifies the batch at `self.next` and delivers it, or (PROVEN streams)
    /// holds it in its span until the span is complete and verified; `Err`
    /// carries the reason to reopen, `Ok(false)` means the consumer is gone.
    async fn deliver(&mut self, batch: &pb::Batch) -> Result<bool, String> {
        let verified =
            verify_batch_for(batch, self.rollup_id, self.next).map_err(ClientError::from);
        let ready = match verified {
            Ok(verified) if self.proven() => self.hold(verified, batch.proven.as_ref()).await,
            Ok(verified) => Ok(vec![verified]),
            Err(error) => Err(error),
        };
        match ready {
            Ok(batches) => {
                self.next += 1;
                for batch in batches {
                    if !self.send(Ok(batch)).await {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Err(error) => {
                let why = error.to_string();
                // Read the whole span again, from the next node.
                if let Some(span) = self.span.take() {
                    self.next = span.deliver_from;
                }
                if self.send(Err(error)).await {
                    Err(why)
                } else {
                    Ok(false)
                }
            }
        }
    }

    /// PROVEN streams: adds `verified` (with the span proof the node sent
    /// with it) to the span in progress; returns what can be delivered now.
    async fn hold(
        &mut self,
        verified: VerifiedBatch,
        proof: Option<&pb::BatchProof>,
    ) -> Result<Vec<VerifiedBatch>, ClientError> {
        let height = verified.height;
        let unexpected = |reason: String| {
            ClientError::Verify(VerifyError::BadSpan {
                rollup_id: self.rollup_id,
                height,
                reason,
            })
        };
        match (&mut self.span, proof) {
            (None, None) => return Ok(vec![verified]),
            (None, Some(proof)) => {
                let mut batches = if height > proof.from_height {
                    self.span_prefix(proof, height).await?
                } else {
                    Vec::new()
                };
                batches.push(verified);
                self.span = Some(SpanBuffer {
                    proof: proof.clone(),
                    batches,
                    deliver_from: height,
                });
            }
            (Some(span), proof) => {
                if let Some(proof) = proof {
                    if proof != &span.proof {
                        return Err(unexpected(format!(
                            "a batch with the proof of span {}..={} arrived inside span {}..={}",
                            proof.from_height,
                            proof.to_height,
                            span.proof.from_height,
                            span.proof.to_height
                        )));
                    }
                } else if !verified.items.is_empty() {
                    return Err(unexpected(format!(
                        "a non-empty batch without a proof arrived inside span {}..={}",
                        span.proof.from_height, span.proof.to_height
                    )));
                }
                span.batches.push(verified);
            }
        }
        let last = self
            .span
            .as_ref()
            .and_then(|s| s.proof.batch_heights.last().copied())
            .unwrap_or(0);
        if height < last {
            return Ok(Vec::new());
        }
        let Some(mut span) = self.span.take() else {
            return Ok(Vec::new());
        };
        if let Err(error) = self.check_span(&mut span).await {
            self.span = Some(span);
            return Err(error);
        }
        let from = span.deliver_from;
        Ok(span
            .batches
            .into_iter()
            .filter(|b| b.height >= from)
            .collect())
    }

    /// Opens one stream at `self.next` and follows it until it stops.
    async fn follow_once(&mut self) -> Stop {
        let request = pb::StreamBatchesRequest {
            rollup_id: self.rollup_id,
            from_height: self.next,
            skip_empty: self.skip_empty,
            finality: self.finality as i32,
        };
        let opened = self
            .client
            .call(|mut c| async move { c.stream_batches(request).await })
            .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                let _ = self.send(Err(error)).await;
                return Stop::Done;
            }
        };
        let mut progressed = false;
        while let Some(message) = stream.next().await {
            let batch = match message {
                Ok(batch) => batch,
                Err(status) if transient(&status).is_some() => {
                    return Stop::Reopen {
                        progressed,
                        why: format!("{:?}: {}", status.code(), status.message()),
                    }
                }
                Err(status) => {
                    let _ = self
                        .send(Err(classify(self.client.endpoint(), status)))
                        .await;
                    return Stop::Done;
                }
            };
            if batch.height < self.next {
                continue; // already delivered
            }
            if batch.rollup_id != self.rollup_id {
                let error = VerifyError::Unexpected {
                    want_rollup: self.rollup_id,
                    want_height: self.next,
                    got_rollup: batch.rollup_id,
                    got_height: batch.height,
                };
                let why = error.to_string();
                if !self.send(Err(error.into())).await {
                    return Stop::Done;
                }
                return Stop::Reopen { progressed, why };
            }
            if self.skip_empty {
                self.next = batch.height; // heights in between are empty
            }
            // A PROVEN stream that skips a height: ask again (GetBatch has
            // no proofs), from the next endpoint.
            if self.proven() && !self.skip_empty && self.next < batch.height {
                return Stop::Reopen {
                    progressed,
                    why: format!(
                        "the proven stream skipped from height {} to {}",
                        self.next, batch.height
                    ),
                };
            }
            // Heights the node left out of a stream that should have them all.
            while self.next < batch.height {
                tracing::debug!(
                    rollup = self.rollup_id,
                    height = self.next,
                    "height missing from the stream; fetching it"
                );
                let missing = match self.client.raw_batch(self.rollup_id, self.next).await {
                    Ok(missing) => missing,
                    Err(error) => {
                        let _ = self.send(Err(error)).await;
                        return Stop::Done;
                    }
                };
                match self.deliver(&missing).await {
                    Ok(true) => progressed = true,
                    Ok(false) => return Stop::Done,
                    Err(why) => return Stop::Reopen { progressed, why },
                }
            }
            match self.deliver(&batch).await {
                Ok(true) => progressed = true,
                Ok(false) => return Stop::Done,
                Err(why) => return Stop::Reopen { progressed, why },
            }
        }
        Stop::Reopen {
            progressed,
            why: "the node ended the stream".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::genuine_at;
    use ed25519_dalek::SigningKey;
    use seqnet_proto::pb::rollup_service_server::{RollupService, RollupServiceServer};
    use seqnet_proto::{Action, TransactionBody};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::time::timeout;

    /// How an in-test node misbehaves.
    #[derive(Clone, Default)]
    struct Behaviour {
        /// Unary calls answered UNAVAILABLE before the node serves.
        fail_first: u32,
        /// Submissions answered ALREADY_EXISTS.
        already_known: bool,
        /// Submissions rejected with a code this client does not know.
        unknown_code: bool,
        /// Submissions answered (not failed) with this non-zero code.
        answer_code: Option<u32>,
        /// Last committed height (streams follow up to it, then wait).
        tip: u64,
        /// Each stream fails with UNAVAILABLE after this many batches.
        drop_after: Option<usize>,
        /// Each stream starts this many heights before the one asked for.
        rewind: u64,
        /// A height streams leave out.
        omit: Option<u64>,
        /// A height whose streamed batch has an item removed.
        corrupt: Option<u64>,
        /// PROVEN streams: a proven span (from, to) of the rollup, proven by
        /// an aggregate (so no pairing is needed to check it).
        span: Option<(u64, u64)>,
        /// ... whose claimed span commitment is wrong.
        bad_span: bool,
    }

    /// The proof of span `from..=to` of `rollup` over `genuine_at` batches.
    fn span_proof(rollup: u64, from: u64, to: u64, bad: bool) -> pb::BatchProof {
        let pairs: Vec<(u64, [u8; 32])> = (from..=to)
            .map(|h| {
                let batch = genuine_at(rollup, h);
                (
                    h,
                    seqnet_proto::groth16::batch_commitment(rollup, h, &batch.items),
                )
            })
            .collect();
        let mut commitment = seqnet_proto::groth16::span_commitment(rollup, from, to, &pairs);
        if bad {
            commitment[0] ^= 1;
        }
        pb::BatchProof {
            prev_state_root: vec![0; 32],
            new_state_root: vec![1; 32],
            span_commitment: commitment.to_vec(),
            prover: vec![2; 32],
            proven_at: to + 1,
            by_aggregate: true,
            from_height: from,
            to_height: to,
            batch_heights: (from..=to).collect(),
            ..Default::default()
        }
    }

    struct TestNode {
        behaviour: Behaviour,
        calls: Arc<AtomicU32>,
        /// `from_height` of each stream opened.
        opened: Arc<Mutex<Vec<u64>>>,
    }

    impl TestNode {
        fn gate(&self) -> Result<(), Status> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.behaviour.fail_first {
                Err(Status::unavailable("warming up"))
            } else {
                Ok(())
            }
        }
    }

    type Answer<T> = Result<tonic::Response<T>, Status>;

    #[tonic::async_trait]
    impl RollupService for TestNode {
        async fn submit_transaction(
            &self,
            r: tonic::Request<pb::SubmitTransactionRequest>,
        ) -> Answer<pb::SubmitTransactionResponse> {
            self.gate()?;
            if r.get_ref().tx.is_empty() {
                let mut status = Status::invalid_argument("malformed: empty");
                status
                    .metadata_mut()
                    .insert(CODE_METADATA, "1".parse().unwrap());
                return Err(status);
            }
            if self.behaviour.already_known {
                return Err(Status::already_exists("already in the mempool"));
            }
            if self.behaviour.unknown_code {
                let mut status = Status::failed_precondition("from the future");
                status
                    .metadata_mut()
                    .insert(CODE_METADATA, "4242".parse().unwrap());
                return Err(status);
            }
            if let Some(code) = self.behaviour.answer_code {
                return Ok(tonic::Response::new(pb::SubmitTransactionResponse {
                    tx_hash: vec![],
                    code,
                    log: "refused in the answer".into(),
                }));
            }
            Ok(tonic::Response::new(pb::SubmitTransactionResponse {
                tx_hash: seqnet_proto::sha256(&r.into_inner().tx).to_vec(),
                code: 0,
                log: String::new(),
            }))
        }
        async fn get_batch(&self, r: tonic::Request<pb::GetBatchRequest>) -> Answer<pb::Batch> {
            self.gate()?;
            let r = r.into_inner();
            Ok(tonic::Response::new(genuine_at(r.rollup_id, r.height)))
        }
        type StreamBatchesStream = ReceiverStream<Result<pb::Batch, Status>>;
        async fn stream_batches(
            &self,
            r: tonic::Request<pb::StreamBatchesRequest>,
        ) -> Answer<Self::StreamBatchesStream> {
            let r = r.into_inner();
            self.opened.lock().unwrap().push(r.from_height);
            let b = self.behaviour.clone();
            let (sender, receiver) = mpsc::channel(4);
            tokio::spawn(async move {
                let start = r.from_height.saturating_sub(b.rewind).max(1);
                let mut sent = 0;
                for height in start..=b.tip {
                    if b.drop_after == Some(sent) {
                        let _ = sender.send(Err(Status::unavailable("node stopping"))).await;
                        return;
                    }
                    if b.omit == Some(height) {
                        continue;
                    }
                    let mut batch = genuine_at(r.rollup_id, height);
                    if b.corrupt == Some(height) {
                        batch.items.pop();
                    }
                    let proven = r.finality == pb::FinalityLevel::FinalityProven as i32;
                    if let (true, Some((from, to))) = (proven, b.span) {
                        if (from..=to).contains(&height) {
                            batch.proven = Some(span_proof(r.rollup_id, from, to, b.bad_span));
                        }
                    }
                    if sender.send(Ok(batch)).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                sender.closed().await; // follow: no new blocks
            });
            Ok(tonic::Response::new(ReceiverStream::new(receiver)))
        }
        async fn get_account(
            &self,
            r: tonic::Request<pb::GetAccountRequest>,
        ) -> Answer<pb::Account> {
            self.gate()?;
            Ok(tonic::Response::new(pb::Account {
                address: r.into_inner().address,
                balance: 5,
                nonce: 1,
                mempool_nonce: 2,
            }))
        }
        async fn get_rollup(&self, _: tonic::Request<pb::GetRollupRequest>) -> Answer<pb::Rollup> {
            if self.behaviour.span.is_none() {
                return Err(Status::not_found("rollup 9 is not registered"));
            }
            Ok(tonic::Response::new(pb::Rollup {
                verifying_key: include_bytes!("testdata/reference-k8-seed0.vk").to_vec(),
                ..Default::default()
            }))
        }
        async fn get_status(
            &self,
            _: tonic::Request<pb::GetStatusRequest>,
        ) -> Answer<pb::NodeStatus> {
            self.gate()?;
            Ok(tonic::Response::new(pb::NodeStatus {
                chain_id: "test".into(),
                height: self.behaviour.tip,
                ..Default::default()
            }))
        }

        async fn get_finality(
            &self,
            _: tonic::Request<pb::GetFinalityRequest>,
        ) -> Answer<pb::FinalityStatus> {
            Err(Status::unimplemented("not in this test node"))
        }
        async fn force_include(
            &self,
            r: tonic::Request<pb::SubmitTransactionRequest>,
        ) -> Answer<pb::SubmitTransactionResponse> {
            self.submit_transaction(r).await
        }
        async fn prove_state(
            &self,
            _: tonic::Request<pb::ProveStateRequest>,
        ) -> Answer<pb::StateProofs> {
            Err(Status::unimplemented("not in this test"))
        }
        async fn get_forced_request(
            &self,
            _: tonic::Request<pb::GetForcedRequestRequest>,
        ) -> Answer<pb::ForcedRequest> {
            Err(Status::unimplemented("not in this test"))
        }
    }

    struct Served {
        url: String,
        calls: Arc<AtomicU32>,
        opened: Arc<Mutex<Vec<u64>>>,
    }

    async fn serve(behaviour: Behaviour) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicU32::new(0));
        let opened = Arc::new(Mutex::new(Vec::new()));
        let node = TestNode {
            behaviour,
            calls: calls.clone(),
            opened: opened.clone(),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RollupServiceServer::new(node))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Served { url, calls, opened }
    }

    fn flaky(fail_first: u32) -> Behaviour {
        Behaviour {
            fail_first,
            ..Behaviour::default()
        }
    }

    fn following(tip: u64) -> Behaviour {
        Behaviour {
            tip,
            ..Behaviour::default()
        }
    }

    /// An address nothing listens on (bound, then released).
    fn dead_endpoint() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        }
    }

    fn client_of(url: String) -> RollupClient {
        RollupClient::new(vec![url]).unwrap().with_retry(fast())
    }

    fn tx() -> Transaction {
        TransactionBody {
            chain_id: "test".into(),
            nonce: 0,
            fee: 20,
            actions: vec![Action::RollupData {
                rollup_id: 2,
                data: b"hello".to_vec(),
            }],
        }
        .sign(&SigningKey::from_bytes(&[7; 32]))
    }

    /// The next `n` items of `stream`, failing the test after 10 s.
    async fn take(stream: &mut BatchStream, n: usize) -> Vec<Result<VerifiedBatch, ClientError>> {
        let mut items = Vec::new();
        while items.len() < n {
            match timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(item)) => items.push(item),
                Ok(None) => panic!("stream ended after {items:?}"),
                Err(_) => panic!("stream stalled after {items:?}"),
            }
        }
        items
    }

    fn heights(items: &[Result<VerifiedBatch, ClientError>]) -> Vec<u64> {
        items
            .iter()
            .map(|i| i.as_ref().expect("verified batch").height)
            .collect()
    }

    #[test]
    fn endpoints_must_be_urls() {
        assert!(matches!(
            RollupClient::new(vec![]),
            Err(ClientError::NoEndpoints)
        ));
        for bad in ["nonsense", "127.0.0.1:9090", "ftp://host:1", ""] {
            assert!(
                matches!(
                    RollupClient::new(vec![bad.into()]),
                    Err(ClientError::BadEndpoint { .. })
                ),
                "{bad}"
            );
        }
        let client = RollupClient::new(vec![
            "http://127.0.0.1:9090".into(),
            "https://node.example:443".into(),
        ])
        .unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:9090");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0), Duration::ZERO);
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(5), Duration::from_millis(1600));
        assert_eq!(p.backoff(6), Duration::from_secs(3));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(3));
    }

    #[test]
    fn statuses_are_sorted_into_fail_over_retry_and_final() {
        assert_eq!(
            transient(&Status::unavailable("x")),
            Some(Transient::FailOver)
        );
        assert_eq!(
            transient(&Status::resource_exhausted("x")),
            Some(Transient::Retry)
        );
        for final_status in [
            Status::invalid_argument("x"),
            Status::failed_precondition("x"),
            Status::already_exists("x"),
            Status::not_found("x"),
            Status::internal("x"),
        ] {
            assert_eq!(transient(&final_status), None);
        }
    }

    #[tokio::test]
    async fn unavailable_then_success_is_retried_with_backoff() {
        let node = serve(flaky(2)).await;
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(40),
            max_backoff: Duration::from_secs(1),
            ..fast()
        };
        let mut client = RollupClient::new(vec![node.url])
            .unwrap()
            .with_retry(policy);
        let started = std::time::Instant::now();
        let hash = client.submit(&tx()).await.unwrap();
        assert_eq!(hash, tx().hash());
        assert_eq!(node.calls.load(Ordering::SeqCst), 3);
        // Two retries on the only endpoint: 40 ms, then 80 ms.
        assert!(started.elapsed() >= Duration::from_millis(120));
        let account = client.account(Address([3; 32])).await.unwrap();
        assert_eq!(account.balance, 5);
        let batch = client.batch(2, 7).await.unwrap();
        assert_eq!(batch.items.len(), 3);
    }

    #[tokio::test]
    async fn a_dead_endpoint_fails_over_to_the_next() {
        let live = serve(flaky(0)).await;
        let mut client = RollupClient::new(vec![dead_endpoint(), live.url.clone()])
            .unwrap()
            .with_retry(fast());
        assert_eq!(client.status().await.unwrap().chain_id, "test");
        assert_eq!(client.endpoint(), live.url);
        assert_eq!(client.submit(&tx()).await.unwrap(), tx().hash());
        assert_eq!(live.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_node_answering_unavailable_fails_over_too() {
        let sick = serve(flaky(100)).await;
        let well = serve(flaky(0)).await;
        let mut client = RollupClient::new(vec![sick.url, well.url.clone()])
            .unwrap()
            .with_retry(fast());
        client.account(Address([1; 32])).await.unwrap();
        assert_eq!(client.endpoint(), well.url);
        assert_eq!(sick.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rejections_are_typed_and_not_retried() {
        let node = serve(flaky(0)).await;
        let mut client = RollupClient::new(vec![node.url])
            .unwrap()
            .with_retry(fast());
        let request = pb::SubmitTransactionRequest { tx: vec![] };
        let err = client
            .call(|mut c| {
                let r = request.clone();
                async move { c.submit_transaction(r).await }
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Rejected {
                    code: Some(Code::Malformed),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.code(), Some(Code::Malformed));
        assert_eq!(node.calls.load(Ordering::SeqCst), 1);
        assert!(matches!(
            client.rollup(9).await,
            Err(ClientError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn an_unknown_code_is_kept_in_the_message() {
        let node = serve(Behaviour {
            unknown_code: true,
            ..Behaviour::default()
        })
        .await;
        let mut client = RollupClient::new(vec![node.url])
            .unwrap()
            .with_retry(fast());
        match client.submit(&tx()).await {
            Err(ClientError::Rejected {
                code: None,
                message,
            }) => assert!(message.contains("4242"), "{message}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_transaction_already_in_the_mempool_counts_as_submitted() {
        let node = serve(Behaviour {
            already_known: true,
            ..Behaviour::default()
        })
        .await;
        let mut client = RollupClient::new(vec![node.url])
            .unwrap()
            .with_retry(fast());
        assert_eq!(client.submit(&tx()).await.unwrap(), tx().hash());
        assert_eq!(client.force_include(&tx()).await.unwrap(), tx().hash());
    }

    #[tokio::test]
    async fn raw_bytes_get_the_node_answer_and_every_refusal() {
        let node = serve(flaky(2)).await;
        let mut client = client_of(node.url);
        // Retried past two transient failures; the node's answer comes back.
        let answer = client.submit_bytes(tx().to_bytes().to_vec()).await.unwrap();
        assert_eq!(answer.tx_hash, tx().hash().to_vec());
        assert_eq!(node.calls.load(Ordering::SeqCst), 3);
        // A gRPC rejection: the code from the metadata, the message, no retry.
        match client.submit_bytes(vec![]).await {
            Err(ClientError::Rejected {
                code: Some(Code::Malformed),
                message,
            }) => assert!(message.contains("empty"), "{message}"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(node.calls.load(Ordering::SeqCst), 4);

        // ALREADY_EXISTS is a refusal of these bytes here, not success.
        let known = serve(Behaviour {
            already_known: true,
            ..Behaviour::default()
        })
        .await;
        let mut client = client_of(known.url);
        match client.submit_bytes(vec![1]).await {
            Err(ClientError::Rejected { message, .. }) => {
                assert!(message.contains("already"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }

        // A refusal inside an answer, with a known and an unknown code.
        for (raw, want) in [
            (Code::BadSignature.as_u32(), Some(Code::BadSignature)),
            (4242, None),
        ] {
            let refusing = serve(Behaviour {
                answer_code: Some(raw),
                ..Behaviour::default()
            })
            .await;
            let mut client = client_of(refusing.url);
            match client.submit_bytes(vec![1]).await {
                Err(ClientError::Rejected { code, message }) => {
                    assert_eq!(code, want);
                    assert!(message.contains("refused in the answer"), "{message}");
                    assert_eq!(message.contains("4242"), want.is_none(), "{message}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn giving_up_names_the_endpoint() {
        let node = serve(flaky(100)).await;
        let mut client = RollupClient::new(vec![node.url.clone()])
            .unwrap()
            .with_retry(fast());
        match client.status().await {
            Err(ClientError::Unavailable {
                attempts: 5,
                endpoint,
                ..
            }) => assert_eq!(endpoint, node.url),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(node.calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn waiting_for_a_height_times_out_with_the_node_height() {
        let node = serve(following(4)).await;
        let mut client = RollupClient::new(vec![node.url])
            .unwrap()
            .with_retry(fast());
        assert_eq!(
            client
                .wait_for_height(3, Duration::from_secs(1))
                .await
                .unwrap()
                .height,
            4
        );
        let err = client
            .wait_for_height(9, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("node at 4"), "{err}");
    }

    #[tokio::test]
    async fn streams_verify_every_batch_in_order() {
        let node = serve(following(6)).await;
        let client = RollupClient::new(vec![node.url])
            .unwrap()
            .with_retry(fast());
        let mut stream = client.stream_batches(2, 0, false);
        let items = take(&mut stream, 6).await;
        assert_eq!(heights(&items), vec![1, 2, 3, 4, 5, 6]);
        for item in items {
            assert_eq!(item.unwrap().items.len(), 3);
        }
        assert_eq!(*node.opened.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn dropped_streams_resume_without_duplicates_or_gaps() {
        // Every stream drops after 3 batches and starts 2 heights early.
        let node = serve(Behaviour {
            tip: 12,
            drop_after: Some(3),
            rewind: 2,
            ..Behaviour::default()
        })
        .await;
        let client = RollupClient::new(vec![node.url])
            .unwrap()
            .with_retry(fast());
        let mut stream = client.stream_batches(2, 1, false);
        let items = take(&mut stream, 12).await;
        assert_eq!(heights(&items), (1..=12).collect::<Vec<_>>());
        let opened = node.opened.lock().unwrap().clone();
        assert_eq!(opened[0], 1);
        assert!(opened.windows(2).all(|w| w[0] < w[1]), "{opened:?}");
    }

    #[tokio::test]
    async fn a_stream_fails_over_and_fills_heights_a_node_left_out() {
        // The first node drops after 2 batches; the second leaves out height 4
        // (fetched with GetBatch instead).
        let first = serve(Behaviour {
            tip: 8,
            drop_after: Some(2),
            ..Behaviour::default()
        })
        .await;
        let second = serve(Behaviour {
            tip: 8,
            omit: Some(4),
            ..Behaviour::default()
        })
        .await;
        let client = RollupClient::new(vec![first.url, second.url])
            .unwrap()
            .with_retry(fast());
        let mut stream = client.stream_batches(2, 1, false);
        let items = take(&mut stream, 8).await;
        assert_eq!(heights(&items), (1..=8).collect::<Vec<_>>());
        assert_eq!(*second.opened.lock().unwrap(), vec![3]);
    }

    #[tokio::test]
    async fn a_batch_that_does_not_verify_is_reported_and_asked_for_elsewhere() {
        let liar = serve(Behaviour {
            tip: 4,
            corrupt: Some(2),
            ..Behaviour::default()
        })
        .await;
        let honest = serve(following(4)).await;
        let client = RollupClient::new(vec![liar.url, honest.url])
            .unwrap()
            .with_retry(fast());
        let mut stream = client.stream_batches(2, 1, false);
        let items = take(&mut stream, 5).await;
        assert_eq!(items[0].as_ref().unwrap().height, 1);
        assert!(
            matches!(
                &items[1],
                Err(ClientError::Verify(VerifyError::Proof { height: 2, .. }))
            ),
            "{:?}",
            items[1]
        );
        assert_eq!(heights(&items[2..]), vec![2, 3, 4]);
        assert_eq!(*honest.opened.lock().unwrap(), vec![2]);
    }

    /// A PROVEN stream holds a span's batches until the last one arrived
    /// and the span checked (commitment over the batches it read, root
    /// chain), then delivers them together, each with the span's proof;
    /// heights outside the span go as they come. A stream that starts
    /// inside a span reads the span's first batches for the check only.
    #[tokio::test]
    async fn proven_streams_hold_a_span_until_it_verifies() {
        let node = serve(Behaviour {
            tip: 11,
            span: Some((5, 9)),
            ..Behaviour::default()
        })
        .await;
        let client = client_of(node.url.clone());
        let mut stream = client.stream_proven_batches(2, 3, false);
        let items = take(&mut stream, 9).await;
        assert_eq!(heights(&items), (3..=11).collect::<Vec<_>>());
        for item in &items {
            let batch = item.as_ref().unwrap();
            match &batch.proof {
                Some(proof) => {
                    assert!((5..=9).contains(&batch.height));
                    assert_eq!((proof.from_height, proof.to_height), (5, 9));
                    assert!(proof.by_aggregate);
                    assert_eq!(proof.new_state_root, [1; 32]);
                }
                None => assert!(!(5..=9).contains(&batch.height), "{}", batch.height),
            }
        }
        let mut inside = client.stream_proven_batches(2, 7, false);
        let items = take(&mut inside, 3).await;
        assert_eq!(heights(&items), vec![7, 8, 9]);
        assert!(items.iter().all(|i| i.as_ref().unwrap().proof.is_some()));
    }

    #[tokio::test]
    async fn a_span_that_does_not_check_is_read_again_elsewhere() {
        let liar = serve(Behaviour {
            tip: 9,
            span: Some((5, 9)),
            bad_span: true,
            ..Behaviour::default()
        })
        .await;
        let honest = serve(Behaviour {
            tip: 9,
            span: Some((5, 9)),
            ..Behaviour::default()
        })
        .await;
        let client = RollupClient::new(vec![liar.url, honest.url])
            .unwrap()
            .with_retry(fast());
        let mut stream = client.stream_proven_batches(2, 4, false);
        let items = take(&mut stream, 3).await;
        assert_eq!(items[0].as_ref().unwrap().height, 4);
        assert!(
            matches!(
                &items[1],
                Err(ClientError::Verify(VerifyError::CommitmentMismatch { .. }))
            ),
            "{:?}",
            items[1]
        );
        // The whole span is read again from its first height.
        assert_eq!(*honest.opened.lock().unwrap(), vec![5]);
        let rest = take(&mut stream, 4).await;
        assert_eq!(heights(&items[2..]), vec![5]);
        assert_eq!(heights(&rest), vec![6, 7, 8, 9]);
    }

    #[tokio::test]
    async fn a_stream_that_cannot_reach_any_node_ends_with_an_error() {
        let client = RollupClient::new(vec![dead_endpoint()])
            .unwrap()
            .with_retry(fast());
        let mut stream = client.stream_batches(2, 1, false);
        let items = take(&mut stream, 1).await;
        assert!(
            matches!(items[0], Err(ClientError::Unavailable { .. })),
            "{:?}",
            items[0]
        );
        assert!(timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .is_none());
    }
}
