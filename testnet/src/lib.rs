#![doc = include_str!("../README.md")]

pub mod bench;
pub mod bench_proving;
pub mod binaries;
pub mod check;
pub mod compose;
pub mod error;
pub mod init;
pub mod load;
pub mod loadgen;
pub mod manifest;
pub mod netns;
pub mod network;
pub mod process;
pub mod scenario;
pub mod scrape;
pub mod staking;
pub mod status;

pub use binaries::Binaries;
pub use error::{Result, TestnetError};
pub use init::InitOptions;
pub use manifest::{Manifest, NodeManifest, Ports};
pub use network::{pick_free_base_port, Testnet};
pub use seqnet_rollup_client::cometbft::CometRpc;
