//! A typed client of one or more seqnet nodes: transient failures are retried
//! with exponential back-off, moving to the next endpoint when a node is
//! unreachable; rejections come back at once as [`ClientError::Rejected`].

use std::future::Future;
use std::time::Duration;

use seqnet_proto::pb::rollup_service_client::RollupServiceClient;
use seqnet_proto::{pb, Address, Code, Transaction};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code as GrpcCode, Status};

use crate::verify::{verify_batch, VerifiedBatch, VerifyError};

/// Metadata key carrying the numeric `Code` of a rejected submission.
pub const CODE_METADATA: &str = "seqnet-code";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no node endpoint given")]
    NoEndpoints,
    #[error("endpoint {0:?} is not a valid URL")]
    BadEndpoint(String),
    #[error("rejected ({}): {message}", code.map_or_else(|| "no code".to_string(), |c| c.to_string()))]
    Rejected { code: Option<Code>, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("no node answered after {attempts} attempts; last error from {endpoint}: {last}")]
    Unavailable {
        attempts: u32,
        endpoint: String,
        last: String,
    },
    #[error("{endpoint} answered {status}")]
    Status { endpoint: String, status: Status },
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Attempts and back-off for transient failures.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// Back-off before retry number `attempt` (1-based): doubling, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        GrpcCode::Unavailable
            | GrpcCode::Unknown
            | GrpcCode::DeadlineExceeded
            | GrpcCode::ResourceExhausted
            | GrpcCode::Aborted
    )
}

fn classify(endpoint: &str, status: Status) -> ClientError {
    match status.code() {
        GrpcCode::InvalidArgument | GrpcCode::FailedPrecondition | GrpcCode::AlreadyExists => {
            let code = status
                .metadata()
                .get(CODE_METADATA)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .and_then(Code::from_u32);
            ClientError::Rejected {
                code,
                message: status.message().to_string(),
            }
        }
        GrpcCode::NotFound => ClientError::NotFound(status.message().to_string()),
        _ => ClientError::Status {
            endpoint: endpoint.to_string(),
            status,
        },
    }
}

#[derive(Clone)]
pub struct RollupClient {
    endpoints: Vec<String>,
    current: usize,
    channel: Option<RollupServiceClient<Channel>>,
    retry: RetryPolicy,
}

impl RollupClient {
    /// A client of `endpoints` (`http://host:port`); connects lazily.
    pub fn new(endpoints: Vec<String>) -> Result<RollupClient, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        for e in &endpoints {
            Endpoint::from_shared(e.clone()).map_err(|_| ClientError::BadEndpoint(e.clone()))?;
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

    /// The endpoint calls go to now.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.current]
    }

    async fn channel(&mut self) -> Result<RollupServiceClient<Channel>, Status> {
        if let Some(channel) = &self.channel {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(self.endpoint().to_string())
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("connect: {e}")))?;
        let client = RollupServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
        self.channel = Some(client.clone());
        Ok(client)
    }

    fn fail_over(&mut self) {
        self.channel = None;
        self.current = (self.current + 1) % self.endpoints.len();
    }

    /// Runs `call`, retrying transient failures with back-off and moving to
    /// the next endpoint after each.
    async fn call<T, F, Fut>(&mut self, call: F) -> Result<T, ClientError>
    where
        F: Fn(RollupServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.channel().await {
                Ok(client) => call(client).await.map(tonic::Response::into_inner),
                Err(status) => Err(status),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(status) if is_transient(&status) => {
                    let endpoint = self.endpoint().to_string();
                    if attempt >= self.retry.attempts {
                        return Err(ClientError::Unavailable {
                            attempts: attempt,
                            endpoint,
                            last: status.message().to_string(),
                        });
                    }
                    tracing::debug!(%endpoint, attempt, error = %status.message(), "transient failure; retrying");
                    self.fail_over();
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
                Err(status) => return Err(classify(self.endpoint(), status)),
            }
        }
    }

    /// Submits `tx`; returns its hash once it passed CheckTx.
    pub async fn submit(&mut self, tx: &Transaction) -> Result<[u8; 32], ClientError> {
        let request = pb::SubmitTransactionRequest {
            tx: tx.to_bytes().to_vec(),
        };
        match self
            .call(|mut c| {
                let r = request.clone();
                async move { c.submit_transaction(r).await }
            })
            .await
        {
            Ok(_) => Ok(tx.hash()),
            // A retry after a lost answer finds the first attempt in the mempool.
            Err(ClientError::Rejected { message, .. })
                if message.contains("already in the mempool") =>
            {
                Ok(tx.hash())
            }
            Err(e) => Err(e),
        }
    }

    /// Submits a transaction carrying `ForceInclude` actions.
    pub async fn force_include(&mut self, tx: &Transaction) -> Result<[u8; 32], ClientError> {
        let request = pb::SubmitTransactionRequest {
            tx: tx.to_bytes().to_vec(),
        };
        self.call(|mut c| {
            let r = request.clone();
            async move { c.force_include(r).await }
        })
        .await
        .map(|_| tx.hash())
    }

    /// The forced-inclusion request for the inner transaction `tx_hash`.
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

    pub async fn account(&mut self, address: Address) -> Result<pb::Account, ClientError> {
        self.call(|mut c| async move {
            c.get_account(pb::GetAccountRequest {
                address: address.0.to_vec(),
            })
            .await
        })
        .await
    }

    pub async fn rollup(&mut self, rollup_id: u64) -> Result<pb::Rollup, ClientError> {
        self.call(|mut c| async move { c.get_rollup(pb::GetRollupRequest { rollup_id }).await })
            .await
    }

    pub async fn status(&mut self) -> Result<pb::NodeStatus, ClientError> {
        self.call(|mut c| async move { c.get_status(pb::GetStatusRequest {}).await })
            .await
    }

    /// The batch of `rollup_id` at `height`, verified.
    pub async fn batch(
        &mut self,
        rollup_id: u64,
        height: u64,
    ) -> Result<VerifiedBatch, ClientError> {
        let batch = self.raw_batch(rollup_id, height).await?;
        Ok(verify_batch(&batch)?)
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

    /// Verified batches from `from_height` on, following new blocks. A dropped
    /// stream is reopened (on the next endpoint if need be) at the next height,
    /// so no height is skipped or repeated. The first error that is not
    /// transient ends the stream.
    pub fn stream_batches(
        &self,
        rollup_id: u64,
        from_height: u64,
        skip_empty: bool,
    ) -> ReceiverStream<Result<VerifiedBatch, ClientError>> {
        let (sender, receiver) = mpsc::channel(64);
        let mut client = self.clone();
        tokio::spawn(async move {
            let mut next = from_height.max(1);
            let mut failures = 0u32;
            loop {
                let opened = client
                    .call(|mut c| async move {
                        c.stream_batches(pb::StreamBatchesRequest {
                            rollup_id,
                            from_height: next,
                            skip_empty,
                        })
                        .await
                    })
                    .await;
                let mut stream = match opened {
                    Ok(stream) => stream,
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        return;
                    }
                };
                while let Some(message) = stream.next().await {
                    match message {
                        Ok(batch) if batch.height < next => continue,
                        Ok(batch) => {
                            failures = 0;
                            next = batch.height + 1;
                            let verified = verify_batch(&batch).map_err(ClientError::from);
                            if sender.send(verified).await.is_err() {
                                return; // nobody listens any more
                            }
                        }
                        Err(status) if is_transient(&status) => break,
                        Err(status) => {
                            let _ = sender.send(Err(classify(client.endpoint(), status))).await;
                            return;
                        }
                    }
                }
                failures += 1;
                if failures > client.retry.attempts {
                    let _ = sender
                        .send(Err(ClientError::Unavailable {
                            attempts: failures,
                            endpoint: client.endpoint().to_string(),
                            last: "batch stream kept dropping".into(),
                        }))
                        .await;
                    return;
                }
                tracing::debug!(next, "batch stream dropped; reopening");
                client.fail_over();
                tokio::time::sleep(client.retry.backoff(failures)).await;
            }
        });
        ReceiverStream::new(receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seqnet_proto::pb::rollup_service_server::{RollupService, RollupServiceServer};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// A node that answers UNAVAILABLE `fail_first` times, then serves.
    struct FlakyNode {
        fail_first: u32,
        calls: Arc<AtomicU32>,
    }

    impl FlakyNode {
        fn gate(&self) -> Result<(), Status> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
                Err(Status::unavailable("warming up"))
            } else {
                Ok(())
            }
        }
    }

    type Answer<T> = Result<tonic::Response<T>, Status>;

    #[tonic::async_trait]
    impl RollupService for FlakyNode {
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
            Ok(tonic::Response::new(
                pb::SubmitTransactionResponse::default(),
            ))
        }
        async fn get_batch(&self, _: tonic::Request<pb::GetBatchRequest>) -> Answer<pb::Batch> {
            self.gate()?;
            Ok(tonic::Response::new(crate::verify::tests::genuine(2)))
        }
        type StreamBatchesStream = ReceiverStream<Result<pb::Batch, Status>>;
        async fn stream_batches(
            &self,
            _: tonic::Request<pb::StreamBatchesRequest>,
        ) -> Answer<Self::StreamBatchesStream> {
            Err(Status::unimplemented("not in this test"))
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
            }))
        }
        async fn get_rollup(&self, _: tonic::Request<pb::GetRollupRequest>) -> Answer<pb::Rollup> {
            Err(Status::not_found("rollup 9 is not registered"))
        }
        async fn get_status(
            &self,
            _: tonic::Request<pb::GetStatusRequest>,
        ) -> Answer<pb::NodeStatus> {
            self.gate()?;
            Ok(tonic::Response::new(pb::NodeStatus::default()))
        }
        async fn force_include(
            &self,
            _: tonic::Request<pb::SubmitTransactionRequest>,
        ) -> Answer<pb::SubmitTransactionResponse> {
            Err(Status::unimplemented("not in this test"))
        }
        async fn get_forced_request(
            &self,
            _: tonic::Request<pb::GetForcedRequestRequest>,
        ) -> Answer<pb::ForcedRequest> {
            Err(Status::unimplemented("not in this test"))
        }
    }

    async fn serve(fail_first: u32) -> (String, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicU32::new(0));
        let node = FlakyNode {
            fail_first,
            calls: calls.clone(),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RollupServiceServer::new(node))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (url, calls)
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(30), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn transient_errors_are_retried() {
        let (url, calls) = serve(2).await;
        let mut client = RollupClient::new(vec![url]).unwrap().with_retry(fast());
        let account = client.account(Address([3; 32])).await.unwrap();
        assert_eq!(account.balance, 5);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let batch = client.batch(2, 7).await.unwrap();
        assert_eq!(batch.items.len(), 3);
    }

    #[tokio::test]
    async fn a_dead_endpoint_fails_over_to_the_next() {
        // Bind then drop: nothing listens on that port any more.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let (live, _) = serve(0).await;
        let mut client = RollupClient::new(vec![dead, live.clone()])
            .unwrap()
            .with_retry(fast());
        client.status().await.unwrap();
        assert_eq!(client.endpoint(), live);
    }

    #[tokio::test]
    async fn rejections_are_typed_and_not_retried() {
        let (url, calls) = serve(0).await;
        let mut client = RollupClient::new(vec![url]).unwrap().with_retry(fast());
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
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(
            client.rollup(9).await,
            Err(ClientError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn giving_up_names_the_endpoint() {
        let (url, _) = serve(100).await;
        let mut client = RollupClient::new(vec![url.clone()])
            .unwrap()
            .with_retry(fast());
        match client.status().await {
            Err(ClientError::Unavailable {
                attempts: 5,
                endpoint,
                ..
            }) => assert_eq!(endpoint, url),
            other => panic!("unexpected {other:?}"),
        }
    }
}
