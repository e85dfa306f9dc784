//! Signing and submitting one transaction the way provers and the
//! aggregator both must: the nonce is read from the node (it counts this
//! account's mempool transactions), a nonce refusal re-reads it and signs
//! again, transport failures retry with back-off, and any other refusal is
//! final (the chain's code is returned).

use seqnet_proto::{Action, Code};
use seqnet_rollup_client::{ClientError, RetryPolicy, RollupClient, TxSigner};

/// Which service takes the transaction.
#[derive(Clone, Copy, Debug)]
pub enum Route {
    /// `ProverService.SubmitProof`: proofs checked before broadcast.
    SubmitProof,
    /// `RollupService.SubmitTransaction`: the node's CheckTx verdict.
    SubmitTransaction,
}

/// A transaction a node accepted.
#[derive(Clone, Copy, Debug)]
pub struct Submitted {
    pub hash: [u8; 32],
    pub nonce: u64,
}

/// Why a transaction was not accepted.
#[derive(Debug)]
pub enum SubmitFailure {
    /// Refused for good (not a nonce problem), with the chain's code.
    Refused { code: Option<Code>, message: String },
    /// `attempts` tries failed transiently; the last failure.
    GaveUp(String),
}

/// Signs `actions` with `signer` (fee from its schedule) and submits them
/// through `route`, at most `attempts` times.
pub async fn sign_and_submit(
    client: &mut RollupClient,
    signer: &mut TxSigner,
    retry: &RetryPolicy,
    attempts: u32,
    route: Route,
    actions: &[Action],
) -> Result<Submitted, SubmitFailure> {
    let mut tx = None;
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        if tx.is_none() {
            if let Err(error) = signer.sync_nonce(client).await {
                last = error.to_string();
                tracing::warn!(%error, attempt, "cannot read the nonce");
                tokio::time::sleep(retry.backoff(attempt)).await;
                continue;
            }
            tx = Some(signer.sign(actions.to_vec(), None));
        }
        let Some(signed) = &tx else { continue };
        let sent = match route {
            Route::SubmitProof => client.submit_proof(signed).await,
            Route::SubmitTransaction => client.submit(signed).await,
        };
        match sent {
            Ok(hash) => {
                return Ok(Submitted {
                    hash,
                    nonce: signed.body.nonce,
                })
            }
            Err(ClientError::Rejected {
                code: Some(Code::NonceReplayed | Code::NonceGap),
                message,
            }) => {
                tracing::info!(%message, attempt, "nonce refused; signing again");
                last = message;
                tx = None;
            }
            Err(ClientError::Rejected { code, message }) => {
                return Err(SubmitFailure::Refused { code, message })
            }
            Err(error) => {
                last = error.to_string();
                let pause = retry.backoff(attempt);
                tracing::warn!(%error, attempt, ?pause, "submission failed; retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
    Err(SubmitFailure::GaveUp(last))
}
