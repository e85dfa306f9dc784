#![doc = include_str!("../README.md")]
// Consensus arithmetic is checked or saturating, never wrapping or panicking.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

// The vocabulary every component speaks (imports no component).
mod tx;
// Storage and the state seams.
mod keys;
mod params;
mod snapshot;
mod state;
mod store;
// Components: each owns its actions, typed state, keys and queries.
mod accounts;
mod chain;
mod forced;
mod genesis;
mod provers;
mod rollups;
mod validators;
// The ABCI dispatcher, block runner, mempool and read path.
mod app;

pub use app::block::ProposalFilter;
pub use app::mempool::{DEFAULT_MEMPOOL_LIMIT, MAX_TRACKED_TXS};
pub use app::query::{QueryError, Reader};
pub use app::{AppError, BlockSummary, NoObserver, Observer, SeqnetApp, WorkCounts};
pub use params::ChainParams;
pub use provers::query::ReadyJob;
pub use store::Store;
pub use tx::{matches_censor, ExecError, Transition};

/// Storage internals for the benches (`state_commit`, `snapshot`); not an
/// API.
#[doc(hidden)]
pub mod bench_support {
    pub use crate::snapshot::{export, Restore};
    pub use crate::store::{AppHashScheme, Cf, ProvenRead, WriteSet};
}

#[cfg(test)]
mod module_graph;
