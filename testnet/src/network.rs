//! [`Testnet`]: a generated network and the processes running it. The CLI
//! and the end-to-end tests drive networks through this one type.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use seqnet_proto::{pb, Address};
use seqnet_rollup_client::{keys, ClientError, RollupClient, TxSigner};

use crate::binaries::Binaries;
use crate::error::{Result, TestnetError};
use crate::init::{self, InitOptions};
use crate::manifest::{Manifest, NodeManifest};
use crate::process::{self, Managed};
use seqnet_rollup_client::cometbft::CometRpc;

/// How long a sequencer may take to open its ABCI port.
const ABCI_START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stopping process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often long waits print progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Environment variables of `seqnet-sequencer` that would override the
/// generated config (docs/configuration.md); removed from its environment.
const SEQUENCER_ENV: [&str; 8] = [
    "SEQNET_CONFIG",
    "SEQNET_ABCI_LISTEN",
    "SEQNET_GRPC_LISTEN",
    "SEQNET_METRICS_LISTEN",
    "SEQNET_COMETBFT_RPC",
    "SEQNET_STORAGE_PATH",
    "SEQNET_LOG_FILTER",
    "SEQNET_LOG_FORMAT",
];

/// Environment variables of `seqnet-prover run` and `aggregate` that would
/// override the flags a testnet passes; removed from their environment.
const PROVER_ENV: [&str; 4] = [
    "SEQNET_NODE",
    "SEQNET_PROVER_KEY",
    "SEQNET_AGGREGATOR",
    "SEQNET_AGGREGATOR_KEY",
];

#[derive(Debug, Default)]
struct NodeProcesses {
    sequencer: Option<Managed>,
    cometbft: Option<Managed>,
}

impl NodeProcesses {
    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Managed> {
        self.sequencer.iter_mut().chain(self.cometbft.iter_mut())
    }
}

pub use crate::process::{AGGREGATOR_PROCESS, PROVER_PROCESS};

/// Whether a joining node with `status` has caught up with a network whose
/// tip is `tip`: CometBFT no longer catching up, and at most a block behind.
pub(crate) fn caught_up(status: &seqnet_rollup_client::cometbft::NodeStatus, tip: u64) -> bool {
    !status.catching_up && status.height.saturating_add(1) >= tip
}

/// What a node joining by state sync trusts: `rpc`'s header at its current
/// height, with light blocks from `rpc_servers` (as the joining node
/// reaches them).
pub(crate) async fn state_sync_trust(
    rpc: &CometRpc,
    rpc_servers: Vec<String>,
) -> Result<init::StateSyncTrust> {
    let failed = |method: &str, reason: String| TestnetError::Rpc {
        addr: rpc.addr().to_string(),
        method: method.into(),
        reason,
    };
    let height = rpc
        .status()
        .await
        .map_err(|e| failed("status", e.to_string()))?
        .height;
    let commit = rpc
        .call(
            "commit",
            serde_json::json!({ "height": height.to_string() }),
        )
        .await
        .map_err(|e| failed("commit", e.to_string()))?;
    let hash = commit
        .pointer("/signed_header/commit/block_id/hash")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| failed("commit", format!("no block id hash for height {height}")))?
        .to_string();
    Ok(init::StateSyncTrust {
        rpc_servers,
        height,
        hash,
    })
}

/// A testnet directory plus the processes this value started or adopted.
/// Dropping it stops every process it knows, unless [`Testnet::detach`] was called.
pub struct Testnet {
    dir: PathBuf,
    manifest: Manifest,
    binaries: Option<Binaries>,
    nodes: Vec<NodeProcesses>,
    provers: Vec<Option<Managed>>,
    aggregator: Option<Managed>,
    stop_on_drop: bool,
}

impl std::fmt::Debug for Testnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testnet")
            .field("dir", &self.dir)
            .field("chain_id", &self.manifest.chain_id)
            .field("nodes", &self.manifest.nodes.len())
            .finish()
    }
}

impl Testnet {
    /// Generates a testnet in `dir` (see [`init::init`]) and opens it.
    pub fn init(dir: &Path, opts: &InitOptions, binaries: Binaries) -> Result<Testnet> {
        let prover = if opts.provers > 0 {
            Some(binaries.prover()?)
        } else {
            None
        };
        init::init_with(dir, opts, &binaries.cometbft, prover.as_deref())?;
        let mut testnet = Testnet::open(dir)?;
        testnet.binaries = Some(binaries);
        Ok(testnet)
    }

    /// Opens an existing testnet and adopts its running processes (from their
    /// pid files), so that they can be stopped or killed.
    pub fn open(dir: &Path) -> Result<Testnet> {
        let manifest = Manifest::load(dir)?;
        let mut nodes = Vec::with_capacity(manifest.nodes.len());
        for node in &manifest.nodes {
            let node_dir = dir.join(&node.dir);
            let adopt = |name: &'static str, program: &str| {
                let pid = process::read_pid(&node_dir, name)?;
                (process::is_alive(pid) && process::runs_program(pid, program)).then(|| {
                    Managed::adopt(node.index, name, pid, process::log_path(&node_dir, name))
                })
            };
            nodes.push(NodeProcesses {
                sequencer: adopt(process::SEQUENCER, crate::binaries::SEQUENCER),
                cometbft: adopt(process::COMETBFT, crate::binaries::COMETBFT),
            });
        }
        let provers = manifest
            .provers
            .iter()
            .map(|p| {
                let prover_dir = dir.join(&p.dir);
                let pid = process::read_pid(&prover_dir, PROVER_PROCESS)?;
                (process::is_alive(pid) && process::runs_program(pid, crate::binaries::PROVER))
                    .then(|| {
                        Managed::adopt(
                            p.index,
                            PROVER_PROCESS,
                            pid,
                            process::log_path(&prover_dir, PROVER_PROCESS),
                        )
                    })
            })
            .collect();
        let aggregator = manifest.aggregator.as_ref().and_then(|a| {
            let agg_dir = dir.join(&a.dir);
            let pid = process::read_pid(&agg_dir, AGGREGATOR_PROCESS)?;
            (process::is_alive(pid) && process::runs_program(pid, crate::binaries::PROVER)).then(
                || {
                    Managed::adopt(
                        0,
                        AGGREGATOR_PROCESS,
                        pid,
                        process::log_path(&agg_dir, AGGREGATOR_PROCESS),
                    )
                },
            )
        });
        Ok(Testnet {
            dir: dir.to_path_buf(),
            manifest,
            binaries: None,
            nodes,
            provers,
            aggregator,
            stop_on_drop: true,
        })
    }

    /// Adds a node that is not a validator ([`init::add_node`]) and starts
    /// it, without waiting. With `state_sync` it restores the network's
    /// latest snapshot, trusting node 0's header at its current height
    /// (light blocks from nodes 0 and 1), and block-syncs the rest; without,
    /// it block-syncs from genesis. Returns its index and when it started.
    pub async fn start_joining(&mut self, state_sync: bool) -> Result<(usize, Instant)> {
        let index = self.add_joining(state_sync).await?;
        let started = Instant::now();
        self.start_node(index).await?;
        Ok((index, started))
    }

    /// The first half of [`Testnet::start_joining`]: the node added, not
    /// started. Returns its index.
    pub(crate) async fn add_joining(&mut self, state_sync: bool) -> Result<usize> {
        if !self.is_running(0) {
            return Err(TestnetError::InvalidOption {
                name: "testnet",
                value: self.dir.display().to_string(),
                reason: "node 0 does not run as a process here: join needs a running \
                         process-mode testnet (`seqnet-testnet up`), not a stopped or \
                         compose one"
                    .into(),
            });
        }
        let binaries = self.binaries()?;
        let trust = if state_sync {
            let servers = (0..self.node_count().min(2))
                .map(|i| self.rpc_url(i))
                .collect::<Result<Vec<_>>>()?;
            Some(state_sync_trust(&self.rpc(0)?, servers).await?)
        } else {
            None
        };
        let node = init::add_node(&self.dir, &binaries.cometbft, trust.as_ref())?;
        self.manifest = Manifest::load(&self.dir)?;
        self.nodes.push(NodeProcesses {
            sequencer: None,
            cometbft: None,
        });
        Ok(node.index)
    }

    /// Adds a node and starts it as [`Testnet::join`] does, and waits until
    /// it has caught up. Returns its index and the time from its start.
    pub async fn join(&mut self, state_sync: bool, timeout: Duration) -> Result<(usize, Duration)> {
        let (index, started) = self.start_joining(state_sync).await?;
        let took = self.wait_caught_up(index, started, timeout).await?;
        Ok((index, took))
    }

    /// Waits until node `index` (started at `started`) has caught up:
    /// CometBFT no longer catching up, at most a block behind node 0.
    pub async fn wait_caught_up(
        &mut self,
        index: usize,
        started: Instant,
        timeout: Duration,
    ) -> Result<Duration> {
        let node = self.node(index)?.clone();
        let tip = self
            .rpc(0)?
            .status()
            .await
            .map_err(|e| self.rpc_error(0, "status", e))?
            .height;
        self.wait_node_height(node.index, tip, timeout).await?;
        let joined = self.rpc(node.index)?;
        let reference = self.rpc(0)?;
        loop {
            let status = joined
                .status()
                .await
                .map_err(|e| self.rpc_error(node.index, "status", e))?;
            let tip = reference
                .status()
                .await
                .map_err(|e| self.rpc_error(0, "status", e))?
                .height;
            if caught_up(&status, tip) {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                return Err(TestnetError::Timeout {
                    what: format!("node{} to catch up", node.index),
                    secs: timeout.as_secs(),
                    detail: format!("; at height {} of {tip}", status.height),
                });
            }
            self.check_alive("waiting for the joined node to catch up")?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) fn rpc_error(
        &self,
        index: usize,
        method: &str,
        error: impl std::fmt::Display,
    ) -> TestnetError {
        TestnetError::Rpc {
            addr: self.rpc_url(index).unwrap_or_default(),
            method: method.into(),
            reason: error.to_string(),
        }
    }

    /// Uses these binaries instead of searching for them.
    pub fn with_binaries(mut self, binaries: Binaries) -> Testnet {
        self.binaries = Some(binaries);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn node_count(&self) -> usize {
        self.manifest.nodes.len()
    }

    pub fn node(&self, index: usize) -> Result<&NodeManifest> {
        self.manifest.node(index)
    }

    /// The node's gRPC URL (`http://127.0.0.1:<port>`).
    pub fn grpc_url(&self, index: usize) -> Result<String> {
        Ok(self.node(index)?.grpc_url())
    }

    /// The node's CometBFT RPC URL (`http://127.0.0.1:<port>`).
    pub fn rpc_url(&self, index: usize) -> Result<String> {
        Ok(self.node(index)?.rpc_url())
    }

    /// A JSON-RPC client for the node's CometBFT.
    pub fn rpc(&self, index: usize) -> Result<CometRpc> {
        Ok(CometRpc::new(self.node(index)?.rpc_addr()))
    }

    /// A gRPC client of the node's `RollupService` (it connects on first use
    /// and retries transient failures; see `seqnet_rollup_client`).
    pub fn client(&self, index: usize) -> Result<RollupClient> {
        let url = self.grpc_url(index)?;
        RollupClient::new(vec![url.clone()]).map_err(|e| TestnetError::grpc(url, e))
    }

    /// Path of a key file named in the manifest (`faucet`, `rollup-1`, ...).
    pub fn key_path(&self, name: &str) -> Option<PathBuf> {
        self.manifest.key(name).map(|k| self.dir.join(&k.path))
    }

    /// Leaves the processes running when this value is dropped.
    pub fn detach(&mut self) {
        self.stop_on_drop = false;
    }

    /// Whether both processes of node `index` are running.
    pub fn is_running(&mut self, index: usize) -> bool {
        self.nodes.get_mut(index).is_some_and(|n| {
            let seq = n
                .sequencer
                .as_mut()
                .is_some_and(|p| p.exit_status().is_none());
            let cmt = n
                .cometbft
                .as_mut()
                .is_some_and(|p| p.exit_status().is_none());
            seq && cmt
        })
    }

    fn binaries(&mut self) -> Result<Binaries> {
        if self.binaries.is_none() {
            self.binaries = Some(Binaries::locate()?);
        }
        self.binaries.clone().ok_or(TestnetError::BinaryMissing {
            name: crate::binaries::SEQUENCER,
            searched: String::new(),
            hint: "",
        })
    }

    /// Starts every node, then waits until each reports height >= 2.
    pub async fn start(&mut self, timeout: Duration) -> Result<()> {
        for index in 0..self.node_count() {
            self.start_node(index).await?;
        }
        self.wait_for_height(2, timeout).await
    }

    /// Starts node `index`: its sequencer, then (once the sequencer serves
    /// ABCI) its CometBFT. Does not wait for blocks.
    pub async fn start_node(&mut self, index: usize) -> Result<()> {
        let node = self.node(index)?.clone();
        let binaries = self.binaries()?;
        let node_dir = self.dir.join(&node.dir);
        let procs = &mut self.nodes[index];
        for p in procs.iter_mut() {
            if p.exit_status().is_none() {
                return Err(TestnetError::AlreadyRunning {
                    node: index,
                    process: p.name,
                    pid: p.pid,
                });
            }
        }
        // Processes from an earlier run that this value did not adopt.
        for name in process::PROCESSES {
            if let Some(pid) = process::read_pid(&node_dir, name) {
                if process::is_alive(pid) {
                    return Err(TestnetError::AlreadyRunning {
                        node: index,
                        process: name,
                        pid,
                    });
                }
                process::remove_pid(&node_dir, name);
            }
        }

        let netns = self.manifest.netns.clone();
        match &netns {
            // Its own namespace: its ports are its own.
            Some(layout) => crate::netns::setup_node(layout, index)?,
            None => {
                let p = node.ports;
                for (port_name, port) in [
                    ("p2p", p.p2p),
                    ("rpc", p.rpc),
                    ("abci", p.abci),
                    ("grpc", p.grpc),
                    ("metrics", p.metrics),
                ] {
                    if std::net::TcpListener::bind((node.host.as_str(), port)).is_err() {
                        return Err(TestnetError::PortInUse {
                            node: index,
                            port_name,
                            port,
                        });
                    }
                }
            }
        }
        let command_for = |program: &Path| match &netns {
            Some(layout) => crate::netns::command_in(layout, index, program),
            None => Command::new(program),
        };

        let config = std::path::absolute(self.dir.join(&node.sequencer_config))
            .map_err(|e| TestnetError::io(&node.sequencer_config, e))?;
        let mut command = command_for(&binaries.sequencer);
        command
            .arg("start")
            .arg("--config")
            .arg(&config)
            .current_dir(&node_dir);
        for var in SEQUENCER_ENV {
            command.env_remove(var);
        }
        tracing::info!(node = index, "starting sequencer");
        procs.sequencer = Some(Managed::spawn(
            index,
            process::SEQUENCER,
            &node_dir,
            command,
        )?);
        if let Some(seq) = procs.sequencer.as_mut() {
            wait_for_port(seq, &node.abci_addr(), ABCI_START_TIMEOUT).await?;
        }

        let home = std::path::absolute(self.dir.join(&node.cometbft_home))
            .map_err(|e| TestnetError::io(&node.cometbft_home, e))?;
        let mut command = command_for(&binaries.cometbft);
        command
            .arg("start")
            .arg("--home")
            .arg(&home)
            .arg("--proxy_app")
            .arg(format!("tcp://{}", node.abci_addr()))
            .current_dir(&node_dir);
        tracing::info!(node = index, "starting cometbft");
        procs.cometbft = Some(Managed::spawn(
            index,
            process::COMETBFT,
            &node_dir,
            command,
        )?);
        Ok(())
    }

    /// Makes node `index`'s proposals leave out transactions matching `rules`
    /// (`rollup:<id>`, `signer:<hex>`; empty clears); applies at its next start.
    pub fn set_censor(&self, index: usize, rules: &[String]) -> Result<()> {
        init::set_fault_censor(&self.dir, self.node(index)?, rules)
    }

    /// SIGKILLs both processes of node `index` (a crash).
    pub fn kill_node(&mut self, index: usize) -> Result<()> {
        self.node(index)?;
        let node_dir = self.dir.join(&self.manifest.nodes[index].dir);
        let procs = &mut self.nodes[index];
        for p in [procs.cometbft.take(), procs.sequencer.take()]
            .into_iter()
            .flatten()
        {
            let mut p = p;
            tracing::info!(node = index, process = p.name, pid = p.pid, "SIGKILL");
            p.kill()?;
        }
        for name in process::PROCESSES {
            process::remove_pid(&node_dir, name);
        }
        Ok(())
    }

    /// Stops node `index` cleanly (SIGTERM, SIGKILL after a grace period).
    pub fn stop_node(&mut self, index: usize) -> Result<()> {
        self.node(index)?;
        let node_dir = self.dir.join(&self.manifest.nodes[index].dir);
        let procs = &mut self.nodes[index];
        // CometBFT first, so it does not log a lost ABCI connection.
        for p in [procs.cometbft.take(), procs.sequencer.take()]
            .into_iter()
            .flatten()
        {
            process::stop_all(&mut [p], STOP_GRACE);
        }
        for name in process::PROCESSES {
            process::remove_pid(&node_dir, name);
        }
        Ok(())
    }

    /// Stops every process: all provers, the aggregator, all CometBFTs,
    /// then all sequencers; then removes the nodes' network namespaces.
    pub fn stop(&mut self) {
        self.stop_provers();
        self.stop_aggregator();
        self.stop_group("cometbft", |n| n.cometbft.take());
        self.stop_group("sequencers", |n| n.sequencer.take());
        for node in &self.manifest.nodes {
            for name in process::PROCESSES {
                process::remove_pid(&self.dir.join(&node.dir), name);
            }
        }
        if let Some(layout) = &self.manifest.netns {
            crate::netns::teardown(layout, self.manifest.nodes.len());
        }
    }

    /// Cuts (`connected = false`) or restores node `index`'s network link;
    /// its processes keep running. Needs a testnet whose nodes have their
    /// own namespaces ([`Manifest::netns`]).
    pub fn set_connected(&self, index: usize, connected: bool) -> Result<()> {
        self.node(index)?;
        let layout = self
            .manifest
            .netns
            .as_ref()
            .ok_or_else(|| TestnetError::InvalidOption {
                name: "disconnect",
                value: format!("node{index}"),
                reason:
                    "the nodes of this testnet share the loopback (generated without namespaces)"
                        .into(),
            })?;
        tracing::info!(node = index, connected, "setting link");
        crate::netns::set_connected(layout, index, connected)
    }

    /// Stops the process `take` removes from each node, all at once.
    fn stop_group(&mut self, what: &str, take: impl FnMut(&mut NodeProcesses) -> Option<Managed>) {
        let mut group: Vec<Managed> = self.nodes.iter_mut().filter_map(take).collect();
        if !group.is_empty() {
            tracing::info!(count = group.len(), "stopping {what}");
            process::stop_all(&mut group, STOP_GRACE);
        }
    }

    pub fn prover_count(&self) -> usize {
        self.manifest.provers.len()
    }

    /// The account address (= prover identity) of prover `index`.
    pub fn prover_address(&self, index: usize) -> Result<Address> {
        let key = &self.manifest.prover(index)?.key;
        let path = self.key_path(key).ok_or_else(|| TestnetError::KeyFile {
            path: PathBuf::from(key),
            reason: "not in the manifest".into(),
        })?;
        Ok(keys::address(&keys::load(&path)?))
    }

    /// Whether prover `index` runs (started or adopted by this value).
    pub fn prover_running(&mut self, index: usize) -> bool {
        self.provers
            .get_mut(index)
            .and_then(Option::as_mut)
            .is_some_and(|p| p.exit_status().is_none())
    }

    /// Stakes every prover that has no prover record yet with a
    /// `RegisterProver` transaction (the manifest's stake), through its own
    /// node, and waits until they are committed. They join the active set
    /// at the next epoch boundary. Idempotent.
    pub async fn register_provers(&mut self, timeout: Duration) -> Result<()> {
        let Some(proving) = self.manifest.proving.clone() else {
            return Ok(());
        };
        let mut pending = Vec::new();
        for prover in self.manifest.provers.clone() {
            let node = prover.nodes.first().copied().unwrap_or(0);
            let url = self.grpc_url(node)?;
            let mut client = self.client(node)?;
            let address = self.prover_address(prover.index)?;
            match client.prover(address).await {
                Ok(_) => continue, // already registered
                Err(ClientError::NotFound(_)) => {}
                Err(e) => return Err(TestnetError::grpc(url, e)),
            }
            let path = self
                .key_path(&prover.key)
                .ok_or_else(|| TestnetError::KeyFile {
                    path: PathBuf::from(&prover.key),
                    reason: "not in the manifest".into(),
                })?;
            let mut signer = TxSigner::new(keys::load(&path)?, self.manifest.chain_id.clone())
                .with_fees(self.manifest.fees.schedule());
            signer
                .sync_nonce(&mut client)
                .await
                .map_err(|e| TestnetError::grpc(&url, e))?;
            let tx = signer.register_prover(proving.stake, None);
            client
                .submit(&tx)
                .await
                .map_err(|e| TestnetError::grpc(&url, e))?;
            tracing::info!(prover = prover.index, %address, stake = proving.stake, "RegisterProver sent");
            pending.push((client, url, address, tx.body.nonce + 1));
        }
        for (mut client, url, address, nonce) in pending {
            client
                .wait_for_nonce(address, nonce, timeout)
                .await
                .map_err(|e| TestnetError::grpc(url, e))?;
        }
        Ok(())
    }

    /// Starts `seqnet-prover run` for prover `index` (reference circuit,
    /// its nodes in fail-over order, metrics on its port).
    pub fn start_prover(&mut self, index: usize) -> Result<()> {
        let prover = self.manifest.prover(index)?.clone();
        let proving = self
            .manifest
            .proving
            .clone()
            .ok_or_else(|| TestnetError::InvalidOption {
                name: "provers",
                value: index.to_string(),
                reason: "this testnet was generated without provers (init --provers N)".into(),
            })?;
        if let Some(p) = self.provers.get_mut(index).and_then(Option::as_mut) {
            if p.exit_status().is_none() {
                return Err(TestnetError::ProverRunning {
                    prover: index,
                    pid: p.pid,
                });
            }
        }
        let prover_dir = self.dir.join(&prover.dir);
        let mut command = self.prover_command("run", &prover.key, &prover_dir)?;
        let binary = self.binaries()?.prover()?;
        let keys = self.absolute(&proving.keys_dir)?;
        command
            .args(proving.backend_args(&binary.display().to_string(), &keys.display().to_string()))
            .arg("--metrics")
            .arg(format!("127.0.0.1:{}", prover.metrics_port))
            .arg("--auto-unjail");
        for node in &prover.nodes {
            command.arg("--node").arg(self.grpc_url(*node)?);
        }
        if let Some(aggregator) = &self.manifest.aggregator {
            command.arg("--aggregator").arg(aggregator.listen_addr());
        }
        tracing::info!(prover = index, "starting prover");
        let managed = Managed::spawn(index, PROVER_PROCESS, &prover_dir, command)?;
        if self.provers.len() <= index {
            self.provers.resize_with(index + 1, || None);
        }
        self.provers[index] = Some(managed);
        Ok(())
    }

    /// `path` (relative to the testnet directory) made absolute, for
    /// processes that run in their own directories.
    fn absolute(&self, path: &Path) -> Result<PathBuf> {
        std::path::absolute(self.dir.join(path)).map_err(|e| TestnetError::io(path, e))
    }

    /// `seqnet-prover <subcommand> --key <key file>` running in `dir`
    /// (created), logging at `$SEQNET_PROVER_LOG` (default info), with none
    /// of the environment overrides that would replace its flags.
    fn prover_command(&mut self, subcommand: &str, key: &str, dir: &Path) -> Result<Command> {
        let binary = self.binaries()?.prover()?;
        std::fs::create_dir_all(dir).map_err(|e| TestnetError::io(dir, e))?;
        let mut command = Command::new(binary);
        command
            .arg(subcommand)
            .arg("--key")
            .arg(self.absolute_key_path(key)?)
            .current_dir(dir)
            .env(
                "RUST_LOG",
                std::env::var("SEQNET_PROVER_LOG").unwrap_or_else(|_| "info".into()),
            );
        for var in PROVER_ENV {
            command.env_remove(var);
        }
        Ok(command)
    }

    /// The absolute path of the key file the manifest names `name`.
    fn absolute_key_path(&self, name: &str) -> Result<PathBuf> {
        self.absolute(self.manifest.key_path(name)?)
    }

    /// Whether the aggregator runs (started or adopted by this value).
    pub fn aggregator_running(&mut self) -> bool {
        self.aggregator
            .as_mut()
            .is_some_and(|p| p.exit_status().is_none())
    }

    /// Starts `seqnet-prover aggregate` if the testnet has an aggregator and
    /// it is not running: its key, the SRS, every node in fail-over order,
    /// proofs taken on its listen port, metrics on its port.
    pub fn start_aggregator(&mut self) -> Result<()> {
        let Some(aggregator) = self.manifest.aggregator.clone() else {
            return Ok(());
        };
        if self.aggregator_running() {
            return Ok(());
        }
        let agg_dir = self.dir.join(&aggregator.dir);
        let mut command = self.prover_command("aggregate", &aggregator.key, &agg_dir)?;
        command
            .arg("--srs")
            .arg(self.absolute(&aggregator.srs)?)
            .arg("--listen")
            .arg(aggregator.listen_addr())
            .arg("--max-proofs")
            .arg(aggregator.max_proofs.to_string())
            .arg("--max-wait-ms")
            .arg(aggregator.max_wait_ms.to_string())
            .arg("--metrics")
            .arg(format!("127.0.0.1:{}", aggregator.metrics_port));
        for node in 0..self.node_count() {
            command.arg("--node").arg(self.grpc_url(node)?);
        }
        tracing::info!(listen = %aggregator.listen_addr(), "starting aggregator");
        self.aggregator = Some(Managed::spawn(0, AGGREGATOR_PROCESS, &agg_dir, command)?);
        Ok(())
    }

    /// Stops the aggregator (SIGTERM, SIGKILL after a grace period).
    pub fn stop_aggregator(&mut self) {
        if let Some(p) = self.aggregator.take() {
            tracing::info!("stopping the aggregator");
            process::stop_all(&mut [p], STOP_GRACE);
        }
        if let Some(aggregator) = &self.manifest.aggregator {
            process::remove_pid(&self.dir.join(&aggregator.dir), AGGREGATOR_PROCESS);
        }
    }

    /// Starts the aggregator (if the testnet has one), then every prover
    /// that is not running.
    pub fn start_provers(&mut self) -> Result<()> {
        self.start_aggregator()?;
        for index in 0..self.prover_count() {
            if !self.prover_running(index) {
                self.start_prover(index)?;
            }
        }
        Ok(())
    }

    /// Stops prover `index` cleanly (SIGTERM, SIGKILL after a grace period).
    pub fn stop_prover(&mut self, index: usize) -> Result<()> {
        let prover = self.manifest.prover(index)?.clone();
        if let Some(p) = self.provers.get_mut(index).and_then(Option::take) {
            process::stop_all(&mut [p], STOP_GRACE);
        }
        process::remove_pid(&self.dir.join(&prover.dir), PROVER_PROCESS);
        Ok(())
    }

    /// SIGKILLs prover `index` (a crash).
    pub fn kill_prover(&mut self, index: usize) -> Result<()> {
        let prover = self.manifest.prover(index)?.clone();
        if let Some(mut p) = self.provers.get_mut(index).and_then(Option::take) {
            tracing::info!(prover = index, pid = p.pid, "SIGKILL");
            p.kill()?;
        }
        process::remove_pid(&self.dir.join(&prover.dir), PROVER_PROCESS);
        Ok(())
    }

    /// Stops every prover.
    pub fn stop_provers(&mut self) {
        let mut group: Vec<Managed> = self.provers.iter_mut().filter_map(Option::take).collect();
        if !group.is_empty() {
            tracing::info!(count = group.len(), "stopping provers");
            process::stop_all(&mut group, STOP_GRACE);
        }
        for p in &self.manifest.provers {
            process::remove_pid(&self.dir.join(&p.dir), PROVER_PROCESS);
        }
    }

    /// Waits until at least `count` provers are in the active set (they join
    /// at the epoch boundary after their `RegisterProver`).
    pub async fn wait_for_active_provers(&mut self, count: usize, timeout: Duration) -> Result<()> {
        let url = self.grpc_url(0)?;
        let mut client = RollupClient::new(
            (0..self.node_count())
                .map(|i| self.grpc_url(i))
                .collect::<Result<Vec<_>>>()?,
        )
        .map_err(|e| TestnetError::grpc(&url, e))?;
        let addresses = (0..self.prover_count())
            .map(|i| self.prover_address(i))
            .collect::<Result<Vec<_>>>()?;
        let start = Instant::now();
        loop {
            self.check_alive("waiting for provers to become active")?;
            let mut active = 0;
            let mut height = 0;
            for address in &addresses {
                if let Ok(info) = client.prover(*address).await {
                    height = info.as_of_height;
                    active += usize::from(info.active);
                }
            }
            if active >= count {
                tracing::info!(active, height, "provers active");
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(TestnetError::Timeout {
                    what: format!("{count} active provers"),
                    secs: timeout.as_secs(),
                    detail: format!("; {active} active at height {height}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Ordered and proven height from node `index`.
    pub async fn finality(&self, index: usize) -> Result<pb::FinalityStatus> {
        let url = self.grpc_url(index)?;
        let mut client = self.client(index)?;
        client
            .finality(0)
            .await
            .map_err(|e| TestnetError::grpc(url, e))
    }

    /// An error if a process this value runs has died.
    pub fn check_alive(&mut self, waiting_for: &str) -> Result<()> {
        for procs in &mut self.nodes {
            for p in procs.iter_mut() {
                if let Some(status) = p.exit_status() {
                    return Err(p.died(status, waiting_for));
                }
            }
        }
        Ok(())
    }

    /// Heights of every node (`None` where its RPC does not answer).
    pub async fn heights(&self) -> Vec<Option<u64>> {
        let polls = self.manifest.nodes.iter().map(|node| async move {
            let rpc = CometRpc::new(node.rpc_addr()).with_timeout(Duration::from_secs(3));
            rpc.status().await.ok().map(|s| s.height)
        });
        process::join_all(polls).await
    }

    /// Waits until every running node reports height >= `height`.
    pub async fn wait_for_height(&mut self, height: u64, timeout: Duration) -> Result<()> {
        let nodes: Vec<usize> = (0..self.node_count())
            .filter(|&i| self.nodes[i].cometbft.is_some())
            .collect();
        self.wait_nodes_height(&nodes, height, timeout).await
    }

    /// Waits until node `index` reports height >= `height`.
    pub async fn wait_node_height(
        &mut self,
        index: usize,
        height: u64,
        timeout: Duration,
    ) -> Result<()> {
        self.node(index)?;
        self.wait_nodes_height(&[index], height, timeout).await
    }

    async fn wait_nodes_height(
        &mut self,
        nodes: &[usize],
        height: u64,
        timeout: Duration,
    ) -> Result<()> {
        let what = format!("height {height} on node(s) {nodes:?}");
        let start = Instant::now();
        let mut last_progress = Instant::now();
        loop {
            self.check_alive(&format!("waiting for {what}"))?;
            let heights = self.heights().await;
            let done = nodes.iter().all(|&i| {
                heights
                    .get(i)
                    .copied()
                    .flatten()
                    .is_some_and(|h| h >= height)
            });
            if done {
                tracing::info!(height, elapsed = ?start.elapsed(), "reached height");
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let mut detail = format!("; heights {}", format_heights(&heights));
                for &i in nodes {
                    if heights.get(i).copied().flatten().is_none_or(|h| h < height) {
                        let dir = self.dir.join(&self.manifest.nodes[i].dir);
                        for name in process::PROCESSES {
                            let log = process::log_path(&dir, name);
                            detail.push_str(&format!(
                                "\n--- last lines of {} ---\n{}",
                                log.display(),
                                process::tail(&log, 15)
                            ));
                        }
                    }
                }
                return Err(TestnetError::Timeout {
                    what,
                    secs: timeout.as_secs(),
                    detail,
                });
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                tracing::info!(
                    "waiting for {what}: heights {} ({}s)",
                    format_heights(&heights),
                    start.elapsed().as_secs()
                );
                last_progress = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// `[12, 12, -, 11]`.
pub fn format_heights(heights: &[Option<u64>]) -> String {
    let parts: Vec<String> = heights
        .iter()
        .map(|h| h.map_or_else(|| "-".to_string(), |h| h.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Waits until `addr` accepts TCP connections, failing early if `process` dies.
async fn wait_for_port(process: &mut Managed, addr: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last_progress = Instant::now();
    loop {
        if let Some(status) = process.exit_status() {
            return Err(process.died(status, format!("waiting for it to listen on {addr}")));
        }
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        if let Ok(Ok(stream)) = attempt {
            drop(stream);
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(TestnetError::Timeout {
                what: format!("node{} {} to listen on {addr}", process.node, process.name),
                secs: timeout.as_secs(),
                detail: format!(
                    "; last lines of {}:\n{}",
                    process.log.display(),
                    process::tail(&process.log, 25)
                ),
            });
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            tracing::info!(
                node = process.node,
                "waiting for {} to listen on {addr}",
                process.name
            );
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop();
        }
    }
}

/// Picks a base port such that `base + 10 * i + {0..4}` for `i < nodes` are
/// all free on 127.0.0.1 right now (below the Linux ephemeral range).
pub fn pick_free_base_port(nodes: usize) -> Result<u16> {
    use rand::Rng;
    let span = u16::try_from(10 * nodes).unwrap_or(u16::MAX);
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let base = rng.gen_range(20_000..32_000u16.saturating_sub(span)) / 10 * 10;
        // Another testnet's bridge (whose node ports are in namespaces).
        if crate::netns::bridge_exists(&crate::netns::NetnsLayout::for_base_port(base)) {
            continue;
        }
        let all_free = (0..nodes).all(|i| {
            crate::manifest::Ports::for_node(base, i).is_some_and(|ports| {
                ports
                    .all()
                    .iter()
                    .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
            })
        });
        if all_free {
            return Ok(base);
        }
    }
    Err(TestnetError::InvalidOption {
        name: "base port",
        value: "20000..32000".into(),
        reason: format!("no free range of {span} ports found"),
    })
}
