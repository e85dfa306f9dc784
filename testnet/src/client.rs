//! Talking to a node's gRPC `RollupService`: connecting, submitting signed
//! transactions (with the rejection code the node returns in the
//! `seqnet-code` metadata), and building `RollupData` transactions with
//! sequential nonces.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use seqnet_proto::pb::rollup_service_client::RollupServiceClient;
use seqnet_proto::{pb, Action, Address, Code, Transaction, TransactionBody};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Result, TestnetError};
use crate::manifest::FeeParams;

/// Metadata key carrying the numeric [`Code`] of a rejected submission.
pub const CODE_METADATA: &str = "seqnet-code";

pub type RollupClient = RollupServiceClient<Channel>;

fn grpc_error(url: &str, reason: impl std::fmt::Display) -> TestnetError {
    TestnetError::Grpc {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// Connects to `url` (e.g. `http://127.0.0.1:9090`) with request timeouts.
pub async fn connect(url: &str) -> Result<RollupClient> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| grpc_error(url, e))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let channel = endpoint.connect().await.map_err(|e| grpc_error(url, e))?;
    Ok(RollupServiceClient::new(channel).max_decoding_message_size(64 << 20))
}

/// What the node said to a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submission {
    /// CheckTx accepted it; the hash the node reported.
    Accepted { tx_hash: Vec<u8> },
    /// Rejected with a seqnet code (from `seqnet-code` metadata or the
    /// response) and the node's message.
    Rejected {
        code: Option<Code>,
        raw_code: Option<u32>,
        grpc: tonic::Code,
        message: String,
    },
}

impl Submission {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Submission::Accepted { .. })
    }

    pub fn code(&self) -> Option<Code> {
        match self {
            Submission::Accepted { .. } => Some(Code::Ok),
            Submission::Rejected { code, .. } => *code,
        }
    }
}

impl std::fmt::Display for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Submission::Accepted { tx_hash } => write!(f, "accepted {}", hex::encode(tx_hash)),
            Submission::Rejected {
                code,
                raw_code,
                grpc,
                message,
            } => match code {
                Some(code) => write!(f, "rejected {code} [{grpc:?}]: {message}"),
                None => write!(f, "rejected (code {raw_code:?}) [{grpc:?}]: {message}"),
            },
        }
    }
}

/// Submits raw transaction bytes through `SubmitTransaction`. Transport
/// failures (node down, timeout) are errors; rejections are a [`Submission`].
pub async fn submit(client: &mut RollupClient, url: &str, tx: &[u8]) -> Result<Submission> {
    let request = pb::SubmitTransactionRequest { tx: tx.to_vec() };
    match client.submit_transaction(request).await {
        Ok(response) => {
            let r = response.into_inner();
            if r.code == 0 {
                Ok(Submission::Accepted { tx_hash: r.tx_hash })
            } else {
                Ok(Submission::Rejected {
                    code: Code::from_u32(r.code),
                    raw_code: Some(r.code),
                    grpc: tonic::Code::Ok,
                    message: r.log,
                })
            }
        }
        Err(status) => {
            let raw_code = status
                .metadata()
                .get(CODE_METADATA)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
                    if raw_code.is_none() =>
                {
                    Err(grpc_error(url, status))
                }
                grpc => Ok(Submission::Rejected {
                    code: raw_code.and_then(Code::from_u32),
                    raw_code,
                    grpc,
                    message: status.message().to_string(),
                }),
            }
        }
    }
}

/// Reads an account (`None` if the node does not know it).
pub async fn account(
    client: &mut RollupClient,
    url: &str,
    address: &Address,
) -> Result<Option<pb::Account>> {
    let request = pb::GetAccountRequest {
        address: address.0.to_vec(),
    };
    match client.get_account(request).await {
        Ok(r) => Ok(Some(r.into_inner())),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(grpc_error(url, status)),
    }
}

/// `GetStatus` of a node.
pub async fn node_status(client: &mut RollupClient, url: &str) -> Result<pb::NodeStatus> {
    client
        .get_status(pb::GetStatusRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| grpc_error(url, e))
}

/// `GetBatch` of one rollup at one height.
pub async fn batch(
    client: &mut RollupClient,
    url: &str,
    rollup_id: u64,
    height: u64,
) -> Result<pb::Batch> {
    client
        .get_batch(pb::GetBatchRequest { rollup_id, height })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| grpc_error(url, e))
}

/// Signs `RollupData` transactions for one account with sequential nonces.
#[derive(Clone)]
pub struct TxSigner {
    pub key: SigningKey,
    pub chain_id: String,
    pub fees: FeeParams,
    /// The nonce of the next transaction.
    pub next_nonce: u64,
}

impl TxSigner {
    pub fn new(
        key: SigningKey,
        chain_id: impl Into<String>,
        fees: FeeParams,
        next_nonce: u64,
    ) -> Self {
        TxSigner {
            key,
            chain_id: chain_id.into(),
            fees,
            next_nonce,
        }
    }

    pub fn address(&self) -> Address {
        Address::from(&self.key.verifying_key())
    }

    /// A body with the next nonce and the exact required fee (not signed;
    /// the nonce is not consumed).
    pub fn body(&self, actions: Vec<Action>) -> TransactionBody {
        let mut body = TransactionBody {
            chain_id: self.chain_id.clone(),
            nonce: self.next_nonce,
            fee: 0,
            actions,
        };
        body.fee = self.fees.fee_for(body.data_bytes());
        body
    }

    /// Signs a `RollupData` transaction with the next nonce and consumes it.
    pub fn rollup_data(&mut self, rollup_id: u64, data: Vec<u8>) -> Transaction {
        let tx = self
            .body(vec![Action::RollupData { rollup_id, data }])
            .sign(&self.key);
        self.next_nonce += 1;
        tx
    }
}
