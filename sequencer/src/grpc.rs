//! The gRPC `RollupService`: submission (stateless check, then CometBFT's
//! mempool), and reads of committed state through the app's `Reader`.

use std::sync::Arc;

use seqnet_abci::{QueryError, Reader, SeqnetApp};
use seqnet_proto::pb::rollup_service_server::RollupService;
use seqnet_proto::state_proof::Space;
use seqnet_proto::{pb, Address, Code};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::metrics::Metrics;
use seqnet_rollup_client::cometbft::{CometRpc, RpcError};

/// Metadata key of the numeric result code on a rejected submission.
pub const CODE_METADATA: &str = "seqnet-code";
/// Batches read per step when a stream skips empty heights.
const STREAM_SCAN: usize = 256;

pub struct RollupServer {
    pub app: SeqnetApp,
    pub reader: Reader,
    pub rpc: CometRpc,
    pub metrics: Arc<Metrics>,
    pub committed: watch::Receiver<u64>,
}

pub(crate) fn rejection(status: fn(String) -> Status, code: Code, message: String) -> Status {
    // CheckTx logs already start with the code's name.
    let message = if message.starts_with(code.name()) {
        message
    } else {
        format!("{}: {message}", code.name())
    };
    let mut status = status(message);
    if let Ok(value) = code.as_u32().to_string().parse() {
        status.metadata_mut().insert(CODE_METADATA, value);
    }
    status
}

pub(crate) fn internal(error: impl std::fmt::Display) -> Status {
    Status::internal(error.to_string())
}

pub(crate) fn query_status(error: QueryError) -> Status {
    match error {
        QueryError::UnknownRollup(_)
        | QueryError::MissingBlock(_)
        | QueryError::UnknownForced(_) => Status::not_found(error.to_string()),
        QueryError::FutureHeight { .. } | QueryError::HeightZero | QueryError::BadRequest(_) => {
            Status::invalid_argument(error.to_string())
        }
        QueryError::Pruned { .. } => Status::out_of_range(error.to_string()),
        QueryError::Store(_) | QueryError::Inconsistent { .. } => internal(error),
    }
}

/// Broadcasts checked transaction bytes through the local CometBFT node and
/// maps its CheckTx verdict to a gRPC status.
pub(crate) async fn broadcast(
    rpc: &CometRpc,
    metrics: &Metrics,
    hash: &[u8; 32],
    bytes: &[u8],
) -> Result<(), Status> {
    let span = tracing::debug_span!("broadcast", tx = %hex::encode(hash));
    let _guard = span.enter();
    let result = match rpc.broadcast_tx_sync(bytes).await {
        Ok(result) => result,
        Err(RpcError::Rpc { data, message, .. }) if data.contains("already exists") => {
            return Err(Status::already_exists(format!(
                "transaction {} is already in the mempool ({message}: {data})",
                hex::encode(hash)
            )))
        }
        Err(RpcError::Rpc { data, message, .. }) if data.contains("too large") => {
            return Err(rejection(
                Status::invalid_argument,
                Code::TooLarge,
                format!("{message}: {data}"),
            ))
        }
        Err(error) => {
            metrics.broadcast_errors.inc();
            tracing::warn!(%error, "broadcast failed");
            return Err(Status::unavailable(error.to_string()));
        }
    };
    if result.code != 0 {
        let code = Code::from_u32(result.code).unwrap_or(Code::Internal);
        // A full mempool is the node's state, not the transaction's fault:
        // UNAVAILABLE tells clients to retry (later, or on another node).
        let status: fn(String) -> Status = if code == Code::MempoolFull {
            Status::unavailable
        } else {
            Status::failed_precondition
        };
        return Err(rejection(status, code, result.log));
    }
    Ok(())
}

#[tonic::async_trait]
impl RollupService for RollupServer {
    async fn submit_transaction(
        &self,
        request: Request<pb::SubmitTransactionRequest>,
    ) -> Result<Response<pb::SubmitTransactionResponse>, Status> {
        let _timer = self.metrics.grpc_timer("SubmitTransaction");
        let bytes = request.into_inner().tx;
        let tx = self
            .app
            .check_stateless(&bytes)
            .map_err(|e| rejection(Status::invalid_argument, e.code(), e.to_string()))?;
        broadcast(&self.rpc, &self.metrics, &tx.hash(), &bytes).await?;
        Ok(Response::new(pb::SubmitTransactionResponse {
            tx_hash: tx.hash().to_vec(),
            code: 0,
            log: String::new(),
        }))
    }

    async fn force_include(
        &self,
        request: Request<pb::SubmitTransactionRequest>,
    ) -> Result<Response<pb::SubmitTransactionResponse>, Status> {
        let tx = self
            .app
            .check_stateless(&request.get_ref().tx)
            .map_err(|e| rejection(Status::invalid_argument, e.code(), e.to_string()))?;
        if tx.forced_transactions().next().is_none() {
            return Err(rejection(
                Status::invalid_argument,
                Code::InvalidAction,
                "the transaction carries no ForceInclude action; use SubmitTransaction".into(),
            ));
        }
        self.submit_transaction(request).await
    }

    async fn prove_state(
        &self,
        request: Request<pb::ProveStateRequest>,
    ) -> Result<Response<pb::StateProofs>, Status> {
        let _timer = self.metrics.grpc_timer("ProveState");
        let req = request.into_inner();
        let space = Space::from_name(&req.space).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown space {:?}; want meta, accounts, rollups, forced, proofs or roots",
                req.space
            ))
        })?;
        if req.keys.is_empty() {
            return Err(Status::invalid_argument("no key asked for"));
        }
        self.reader
            .prove_many(space, &req.keys)
            .map(Response::new)
            .map_err(query_status)
    }

    async fn get_forced_request(
        &self,
        request: Request<pb::GetForcedRequestRequest>,
    ) -> Result<Response<pb::ForcedRequest>, Status> {
        let _timer = self.metrics.grpc_timer("GetForcedRequest");
        let raw = request.into_inner().tx_hash;
        let hash = <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| {
            Status::invalid_argument(format!("tx hash has {} bytes, want 32", raw.len()))
        })?;
        self.reader
            .forced_request(&hash)
            .map(Response::new)
            .map_err(query_status)
    }

    async fn get_batch(
        &self,
        request: Request<pb::GetBatchRequest>,
    ) -> Result<Response<pb::Batch>, Status> {
        let _timer = self.metrics.grpc_timer("GetBatch");
        let req = request.into_inner();
        self.reader
            .batch(req.rollup_id, req.height)
            .map(Response::new)
            .map_err(query_status)
    }

    type StreamBatchesStream = ReceiverStream<Result<pb::Batch, Status>>;

    async fn stream_batches(
        &self,
        request: Request<pb::StreamBatchesRequest>,
    ) -> Result<Response<Self::StreamBatchesStream>, Status> {
        let req = request.into_inner();
        if self
            .reader
            .rollup(req.rollup_id)
            .map_err(internal)?
            .is_none()
        {
            return Err(query_status(QueryError::UnknownRollup(req.rollup_id)));
        }
        let proven = req.finality == pb::FinalityLevel::FinalityProven as i32;
        if !proven && req.finality != pb::FinalityLevel::FinalityOrdered as i32 {
            return Err(Status::invalid_argument(format!(
                "finality {} is neither ORDERED (0) nor PROVEN (1)",
                req.finality
            )));
        }
        let (sender, receiver) = mpsc::channel(64);
        let reader = self.reader.clone();
        let mut committed = self.committed.clone();
        let rollup_id = req.rollup_id;
        let mut next = req.from_height.max(1);
        let span = tracing::debug_span!("stream_batches", rollup_id, proven);
        let follow = async move {
            loop {
                let mut last = *committed.borrow_and_update();
                if proven {
                    last = match reader.proven_height() {
                        Ok(h) => h.min(last),
                        Err(e) => {
                            let _ = sender.send(Err(internal(e))).await;
                            return;
                        }
                    };
                }
                while next <= last {
                    let heights: Vec<u64> = if req.skip_empty {
                        match reader.batch_heights(rollup_id, next, STREAM_SCAN) {
                            Ok(h) => h.into_iter().filter(|h| *h <= last).collect(),
                            Err(e) => {
                                let _ = sender.send(Err(query_status(e))).await;
                                return;
                            }
                        }
                    } else {
                        (next..=last.min(next + STREAM_SCAN as u64)).collect()
                    };
                    for height in &heights {
                        let mut batch = reader.batch(rollup_id, *height).map_err(query_status);
                        if let (true, Ok(b)) = (proven, &mut batch) {
                            match reader.batch_proof(rollup_id, *height) {
                                Ok(proof) => b.proven = proof,
                                Err(e) => batch = Err(internal(e)),
                            }
                        }
                        if sender.send(batch).await.is_err() {
                            return; // client went away
                        }
                    }
                    next = match (req.skip_empty, heights.last()) {
                        (true, Some(h)) if heights.len() == STREAM_SCAN => h + 1,
                        (true, _) => last + 1,
                        (false, Some(h)) => h + 1,
                        (false, None) => last + 1,
                    };
                }
                if committed.changed().await.is_err() {
                    return; // node shutting down
                }
            }
        };
        tokio::spawn(follow.instrument(span));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let _timer = self.metrics.grpc_timer("GetAccount");
        let raw = request.into_inner().address;
        let address = Address::from_slice(&raw).ok_or_else(|| {
            Status::invalid_argument(format!("address has {} bytes, want 32", raw.len()))
        })?;
        let mut account = self.reader.account(&address).map_err(internal)?;
        account.mempool_nonce = self
            .app
            .mempool_nonce(&address)
            .map_err(internal)?
            .max(account.nonce);
        Ok(Response::new(account))
    }

    async fn get_rollup(
        &self,
        request: Request<pb::GetRollupRequest>,
    ) -> Result<Response<pb::Rollup>, Status> {
        let _timer = self.metrics.grpc_timer("GetRollup");
        let id = request.into_inner().rollup_id;
        match self.reader.rollup(id).map_err(internal)? {
            Some(rollup) => Ok(Response::new(rollup)),
            None => Err(query_status(QueryError::UnknownRollup(id))),
        }
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        let _timer = self.metrics.grpc_timer("GetStatus");
        self.reader.status().map(Response::new).map_err(internal)
    }

    async fn get_finality(
        &self,
        request: Request<pb::GetFinalityRequest>,
    ) -> Result<Response<pb::FinalityStatus>, Status> {
        let _timer = self.metrics.grpc_timer("GetFinality");
        let height = request.into_inner().height;
        let finality = self.reader.finality().map_err(internal)?;
        let params = self.reader.params().map_err(internal)?;
        Ok(Response::new(pb::FinalityStatus {
            ordered_height: finality.ordered_height,
            proven_height: finality.proven_height,
            lag: finality
                .ordered_height
                .saturating_sub(finality.proven_height),
            height,
            proven: height != 0 && height <= finality.proven_height,
            ordered: height != 0 && height <= finality.ordered_height,
            open_jobs: finality.open_jobs,
            max_unproven_blocks: params.max_unproven_blocks,
            pending_jobs: finality.pending_jobs,
            held: finality.held,
            hold_reason: finality.hold_reason,
            hold_detail: finality.hold_detail,
            live_provers: finality.live_provers,
        }))
    }
}
