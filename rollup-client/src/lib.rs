#![doc = include_str!("../README.md")]

pub mod client;
pub mod cometbft;
pub mod keys;
pub mod light;
pub mod prover;
pub mod telemetry;
pub mod tx;
pub mod verified;
pub mod verify;

pub use client::{BatchStream, ClientError, RetryPolicy, RollupClient};
pub use prover::{JobStream, JobStreamEvent};
pub use tx::{FeeSchedule, SpanProof, TxSigner};
pub use verify::{
    check_span_proof, verify_batch, verify_batch_for, CheckedProof, VerifiedBatch, VerifyError,
};
