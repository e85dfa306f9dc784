#![doc = include_str!("../README.md")]

pub mod client;
pub mod keys;
pub mod tx;
pub mod verify;

pub use client::{BatchStream, ClientError, RetryPolicy, RollupClient};
pub use tx::{FeeSchedule, TxSigner};
pub use verify::{verify_batch, verify_batch_for, VerifiedBatch, VerifyError};
