#![doc = include_str!("../README.md")]

pub mod app;
pub mod execute;
pub mod forced;
pub mod genesis;
pub mod keys;
pub mod params;
pub mod proof_batch;
pub mod proposal;
pub mod provers;
pub mod query;
pub mod rotation;
pub mod state;
pub mod store;

pub use app::{BlockSummary, NoObserver, Observer, SeqnetApp};
pub use params::ChainParams;
pub use query::{QueryError, Reader, ReadyJob};
pub use store::Store;
