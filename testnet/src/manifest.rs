//! `testnet.json`: the layout of a generated testnet (nodes, ports, keys,
//! rollups, chain id). `init` writes it; every other command reads it. Paths
//! inside are relative to the testnet directory so the directory can move.

use std::path::{Path, PathBuf};

use seqnet_rollup_client::FeeSchedule;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TestnetError};
use crate::netns::NetnsLayout;

/// File name of the manifest inside a testnet directory.
pub const MANIFEST_FILE: &str = "testnet.json";

/// Loopback ports of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub p2p: u16,
    pub rpc: u16,
    pub abci: u16,
    pub grpc: u16,
    pub metrics: u16,
}

impl Ports {
    /// Ports a node uses: `base + 10 * index + {0 p2p, 1 rpc, 2 abci, 3 grpc, 4 metrics}`.
    pub fn for_node(base: u16, index: usize) -> Option<Ports> {
        let first = u32::from(base) + 10 * u32::try_from(index).ok()?;
        let port = |offset: u32| u16::try_from(first + offset).ok();
        Some(Ports {
            p2p: port(0)?,
            rpc: port(1)?,
            abci: port(2)?,
            grpc: port(3)?,
            metrics: port(4)?,
        })
    }

    pub fn all(&self) -> [u16; 5] {
        [self.p2p, self.rpc, self.abci, self.grpc, self.metrics]
    }
}

/// One validator: a CometBFT home plus a sequencer config.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeManifest {
    pub index: usize,
    pub moniker: String,
    /// CometBFT node id (hex of the first 20 bytes of SHA-256 of the node key).
    pub node_id: String,
    /// CometBFT validator address (hex).
    pub validator_address: String,
    /// CometBFT home, relative to the testnet directory.
    pub cometbft_home: PathBuf,
    /// The node's own directory (logs, pid files, sequencer config and data).
    pub dir: PathBuf,
    /// `seqnet-sequencer` config file, relative to the testnet directory.
    pub sequencer_config: PathBuf,
    pub ports: Ports,
    /// Address its CometBFT RPC and p2p and its sequencer's gRPC, ABCI and
    /// metrics listen on: 127.0.0.1, or its own address in its network
    /// namespace. Not stored: derived from [`Manifest::netns`] when the
    /// manifest is loaded or laid out ([`Manifest::set_netns`]).
    #[serde(skip, default = "loopback")]
    pub host: String,
}

fn loopback() -> String {
    LOOPBACK.to_string()
}

/// Host of every node of a testnet without namespaces.
pub const LOOPBACK: &str = "127.0.0.1";

impl NodeManifest {
    /// `http://<host>:<grpc>`: the node's `RollupService`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}:{}", self.host, self.ports.grpc)
    }

    /// `http://<host>:<rpc>`: the node's CometBFT RPC.
    pub fn rpc_url(&self) -> String {
        format!("http://{}:{}", self.host, self.ports.rpc)
    }

    /// `<host>:<rpc>`, for the JSON-RPC client.
    pub fn rpc_addr(&self) -> String {
        format!("{}:{}", self.host, self.ports.rpc)
    }

    pub fn abci_addr(&self) -> String {
        format!("{}:{}", self.host, self.ports.abci)
    }

    /// `<host>:<p2p>`, the address its peers dial.
    pub fn p2p_addr(&self) -> String {
        format!("{}:{}", self.host, self.ports.p2p)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}:{}/metrics", self.host, self.ports.metrics)
    }
}

/// A funded account whose key file `init` wrote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyManifest {
    /// Short name: `faucet`, `rollup-1`, `user-1`, ...
    pub name: String,
    /// Key file (`{"secret_key", "address"}`), relative to the testnet directory.
    pub path: PathBuf,
    /// Hex ed25519 public key.
    pub address: String,
    pub balance: u64,
}

/// A demo rollup registered at genesis.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RollupManifest {
    pub id: u64,
    pub name: String,
    /// Name of the key (in `keys`) that owns the rollup and submits its data.
    pub owner_key: String,
    /// Node whose gRPC the demo load submits this rollup's data through.
    pub submit_node: usize,
}

/// A prover process: `seqnet-prover run` with one funded key, the
/// reference circuit's proving key, and the nodes it fails over between.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProverManifest {
    pub index: usize,
    /// Name of its key in `keys` (`prover-1`, ...).
    pub key: String,
    /// Its directory (log and pid file), relative to the testnet directory.
    pub dir: PathBuf,
    /// Its Prometheus port (`/metrics`) on 127.0.0.1.
    pub metrics_port: u16,
    /// Nodes it connects to, in fail-over order.
    pub nodes: Vec<usize>,
}

/// The aggregator process: `seqnet-prover aggregate` with its own funded
/// key and the testnet's DEVELOPMENT aggregation SRS; the provers hand it
/// their proofs and it submits `SubmitAggregate` (docs/aggregation.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AggregatorManifest {
    /// Name of its key in `keys` (`aggregator`).
    pub key: String,
    /// Its directory (log and pid file), relative to the testnet directory.
    pub dir: PathBuf,
    /// The SRS file (seeded development SRS; its verifier part is the
    /// genesis `aggregation_srs`), relative to the testnet directory.
    pub srs: PathBuf,
    /// Port on 127.0.0.1 the provers hand their proofs to.
    pub listen_port: u16,
    /// Its Prometheus port on 127.0.0.1.
    pub metrics_port: u16,
    /// Largest aggregate it builds (proofs of one verifying key).
    pub max_proofs: usize,
    /// Longest a proof waits for others before it is aggregated (ms).
    #[serde(default = "default_aggregator_max_wait_ms")]
    pub max_wait_ms: u64,
}

/// [`AggregatorManifest::max_wait_ms`] of a testnet: a few blocks of a
/// 300 ms `timeout_commit` at most. A rollup's next job comes only once its
/// proof lands, so every millisecond a proof waits delays its rollup.
pub fn default_aggregator_max_wait_ms() -> u64 {
    250
}

impl AggregatorManifest {
    pub fn listen_addr(&self) -> String {
        format!("127.0.0.1:{}", self.listen_port)
    }
}

impl ProverManifest {
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }
}

/// Proof settings of a testnet whose demo rollups are proven.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProvingManifest {
    /// `seqnet-prover setup` output (reference circuit, DEVELOPMENT setup),
    /// relative to the testnet directory.
    pub keys_dir: PathBuf,
    /// Circuit size k.
    pub circuit_size: u32,
    /// Stake each prover registers with.
    pub stake: u64,
    /// Proof window of the demo rollups.
    pub proof_window: u64,
    /// Longest `span_blocks` of the demo rollups (blocks per proof job).
    #[serde(default = "default_span_blocks")]
    pub span_blocks: u64,
    /// Milliseconds the provers' back end waits before proving each job (0:
    /// the in-process reference back end; otherwise the external back end
    /// `sleep S && seqnet-prover prove-job`, a stand-in for a real prover
    /// that needs S per proof).
    #[serde(default)]
    pub prover_delay_ms: u64,
}

fn default_span_blocks() -> u64 {
    1
}

impl ProvingManifest {
    /// The back-end arguments of `seqnet-prover run`, for the `prover`
    /// binary and the keys directory as the prover process sees them.
    pub fn backend_args(&self, prover: &str, keys: &str) -> Vec<String> {
        if self.prover_delay_ms == 0 {
            return vec!["--keys".into(), keys.into()];
        }
        let seconds = self.prover_delay_ms as f64 / 1000.0;
        vec![
            "--command".into(),
            format!("sleep {seconds} && exec {prover} prove-job --keys {keys}"),
            "--command-timeout".into(),
            (self.prover_delay_ms / 1000 * 4 + 300).to_string(),
        ]
    }
}

/// The fee rules written into genesis, so load generators can pay exactly.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct FeeParams {
    pub base_fee: u64,
    pub fee_per_byte: u64,
    pub max_tx_bytes: u64,
}

impl FeeParams {
    /// The fee schedule a [`seqnet_rollup_client::TxSigner`] pays by (its
    /// default registration fee is the 1000 `init` writes into genesis).
    pub fn schedule(&self) -> FeeSchedule {
        FeeSchedule {
            base_fee: self.base_fee,
            fee_per_byte: self.fee_per_byte,
            ..FeeSchedule::default()
        }
    }
}

/// Contents of `testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub chain_id: String,
    pub base_port: u16,
    pub nodes: Vec<NodeManifest>,
    pub keys: Vec<KeyManifest>,
    pub rollups: Vec<RollupManifest>,
    pub fees: FeeParams,
    /// Provers (none in testnets generated before provers existed).
    #[serde(default)]
    pub provers: Vec<ProverManifest>,
    /// Set when the demo rollups have a verifying key.
    #[serde(default)]
    pub proving: Option<ProvingManifest>,
    /// Set when `init --aggregator` generated one.
    #[serde(default)]
    pub aggregator: Option<AggregatorManifest>,
    /// Set when each node runs in its own network namespace (process mode;
    /// see [`crate::netns`]); the nodes' `host` are their addresses there.
    #[serde(default)]
    pub netns: Option<NetnsLayout>,
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Whether `dir` holds a testnet.
    pub fn exists(dir: &Path) -> bool {
        Manifest::path(dir).is_file()
    }

    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = Manifest::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TestnetError::NoTestnet {
                    dir: dir.to_path_buf(),
                    manifest: path,
                })
            }
            Err(e) => return Err(TestnetError::io(path, e)),
        };
        let mut manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| TestnetError::parse(&path, e))?;
        let netns = manifest.netns.take();
        manifest
            .set_netns(netns)
            .map_err(|e| TestnetError::parse(&path, e))?;
        Ok(manifest)
    }

    /// Puts the nodes on loopback (`None`) or each in its namespace of
    /// `netns`, setting every node's `host`.
    pub fn set_netns(&mut self, netns: Option<NetnsLayout>) -> std::result::Result<(), String> {
        for node in &mut self.nodes {
            node.host = match &netns {
                Some(layout) => layout
                    .node_ip(node.index)
                    .ok_or_else(|| {
                        format!(
                            "node{} has no address: a /24 holds nodes 0..=252",
                            node.index
                        )
                    })?
                    .to_string(),
                None => loopback(),
            };
        }
        self.netns = netns;
        Ok(())
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Manifest::path(dir);
        let text = serde_json::to_string_pretty(self).map_err(|e| TestnetError::parse(&path, e))?;
        std::fs::write(&path, text + "\n").map_err(|e| TestnetError::io(path, e))
    }

    pub fn node(&self, index: usize) -> Result<&NodeManifest> {
        self.nodes.get(index).ok_or(TestnetError::NoSuchNode {
            node: index,
            count: self.nodes.len(),
        })
    }

    pub fn prover(&self, index: usize) -> Result<&ProverManifest> {
        self.provers.get(index).ok_or(TestnetError::NoSuchProver {
            prover: index,
            count: self.provers.len(),
        })
    }

    pub fn key(&self, name: &str) -> Option<&KeyManifest> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// The key file of key `name`, relative to the testnet directory.
    pub fn key_path(&self, name: &str) -> Result<&Path> {
        self.key(name)
            .map(|k| k.path.as_path())
            .ok_or_else(|| TestnetError::KeyFile {
                path: PathBuf::from(name),
                reason: format!(
                    "no key named {name:?} in the manifest ({} keys)",
                    self.keys.len()
                ),
            })
    }
}
