//! Scenarios: a TOML manifest that describes a network once (validators
//! with voting power and faults, provers, rollups with their windows, chain
//! parameters, load, perturbations), `init --manifest` to generate it, and
//! [`run`] to start it, load it, break it on schedule, and check it.
//!
//! ```toml
//! [network]          # chain_id, timeout_commit, timeout_propose, base_port, netns = "auto" | "on" | "off"
//! [chain]            # epoch_length, downtime_window, vote_extensions_enable_height, max_unproven_blocks
//! [[validator]]      # power = 10, censor = ["rollup:2"]   (one table per validator)
//! [provers]          # count, circuit_size, stake, aggregator, delay_ms
//! [[rollup]]         # inclusion_window, proof_window, span_blocks  (ids 1, 2, ... in order)
//! [load]             # mode = "open" | "closed", rate, workers, tx_bytes, nodes, duration_secs
//! [[perturbation]]   # node, kind, at_height | at_secs, duration_secs
//! ```
//!
//! Perturbations, in process mode, one at a time in schedule order (a
//! trigger already passed fires at once):
//!
//! - `kill`: SIGKILL both processes of the node, wait `duration_secs`, start it.
//! - `restart`: SIGTERM, then start at once.
//! - `pause`: SIGSTOP both process groups, wait, SIGCONT.
//! - `disconnect`: with a network namespace per node (`[network] netns`,
//!   by default whenever a disconnect is scheduled and the scenario runs
//!   as root; see [`crate::netns`]) the node's link to the bridge goes
//!   down for `duration_secs` and comes back up, its processes running
//!   throughout. Without namespaces the node is restarted *isolated*
//!   instead: CometBFT with no persistent peers, PEX off and its p2p
//!   listener on a private port, so no peer can reach it and it reaches
//!   none; after `duration_secs` it is restarted with its own config. The
//!   report's `how` column says which one ran.
//! - `wipe`: SIGKILL, delete the CometBFT block store, state, WAL and
//!   evidence (keeping `priv_validator_state.json`, so the validator cannot
//!   sign below what it signed) and the sequencer's data, start: the node
//!   block-syncs from its peers and replays every block through its app.
//! - `join`: a new node that is not a validator (`node` = the index it
//!   gets: after the validators, joins in schedule order) is added and
//!   started ([`Testnet::join`]); `state_sync = true` restores the
//!   validators' latest snapshot, else it block-syncs from genesis. In
//!   compose mode the node is a container of its own
//!   ([`crate::compose::start_joining`]).
//! - `stake`: node `node` stakes `stake` as a validator (its consensus key
//!   is its operator, funded by the faucet; [`Testnet::stake_validator`]):
//!   a new validator joins the set at the next epoch boundary, an existing
//!   one's power changes there. Process mode only.
//! - `unbond`: node `node`'s validator unbonds and leaves the set
//!   ([`Testnet::unbond_validator`]). Process mode only.
//!
//! Recovery time of a perturbation: from the moment the node is restored
//! (started, resumed, reconnected) until its height reaches the highest
//! height of the network at that moment plus two (caught up and
//! committing again). The load goes through the nodes in `load.nodes`
//! (node 0 by default): perturb other nodes, or acknowledged transactions
//! held only in a killed node's mempool are legitimately lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seqnet_rollup_client::{keys, TxSigner};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bench::SeqnetSource;
use crate::binaries::Binaries;
use crate::check::{self, CheckReport};
use crate::error::{Result, TestnetError};
use crate::init::{self, InitOptions};
use crate::loadgen::{self, BlockIndex, Counters, LoadSpec, LoopMode, TxSource};
use crate::manifest::Manifest;
use crate::netns::NetnsLayout;
use crate::network::Testnet;
use crate::process;
use seqnet_rollup_client::cometbft::CometRpc;

/// Copy of the scenario manifest inside a generated testnet.
pub const SCENARIO_FILE: &str = "scenario.toml";
/// Load log a scenario writes (what `check` reads by default).
pub const LOAD_LOG: &str = "load.json";
/// Offset (in a node's block of ten ports) of the p2p port of an isolated node.
pub const ISOLATED_P2P_OFFSET: u16 = 7;

/// `[network]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    #[serde(default = "default_chain_id")]
    pub chain_id: String,
    #[serde(default = "default_timeout_commit")]
    pub timeout_commit: String,
    #[serde(default = "default_timeout_propose")]
    pub timeout_propose: String,
    /// `None`: 27000, or a free range when [`run`] is asked to pick one.
    pub base_port: Option<u16>,
    /// Process mode: a network namespace per node (see [`crate::netns`]).
    #[serde(default)]
    pub netns: NetnsMode,
}

/// `[network] netns`: whether process-mode nodes get a network namespace
/// each, so that `disconnect` cuts a node's link while it keeps running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetnsMode {
    /// Namespaces when a `disconnect` is scheduled and this machine can
    /// make them (root, iproute2); otherwise loopback, and `disconnect`
    /// restarts the node isolated.
    #[default]
    Auto,
    /// Namespaces, or the scenario fails to start.
    On,
    /// Loopback.
    Off,
}

fn default_chain_id() -> String {
    "seqnet-scenario".into()
}
fn default_timeout_commit() -> String {
    InitOptions::default().timeout_commit
}
fn default_timeout_propose() -> String {
    InitOptions::default().timeout_propose
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            chain_id: default_chain_id(),
            timeout_commit: default_timeout_commit(),
            timeout_propose: default_timeout_propose(),
            base_port: None,
            netns: NetnsMode::default(),
        }
    }
}

/// `[chain]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    pub epoch_length: Option<u64>,
    pub downtime_window: Option<u64>,
    pub vote_extensions_enable_height: Option<u64>,
    pub max_unproven_blocks: Option<u64>,
}

/// One `[[validator]]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSection {
    #[serde(default = "default_power")]
    pub power: u64,
    /// Sequencer `[fault] censor` rules (`rollup:<id>`, `signer:<hex>`).
    #[serde(default)]
    pub censor: Vec<String>,
}

fn default_power() -> u64 {
    init::VALIDATOR_POWER
}

/// `[provers]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProversSection {
    #[serde(default)]
    pub count: usize,
    #[serde(default = "default_circuit_size")]
    pub circuit_size: u32,
    #[serde(default = "default_stake")]
    pub stake: u64,
    /// An aggregator the provers hand their proofs to.
    #[serde(default)]
    pub aggregator: bool,
    /// Milliseconds each prover's back end waits before proving a job (see
    /// `seqnet-testnet init --prover-delay-ms`).
    #[serde(default)]
    pub delay_ms: u64,
}

fn default_circuit_size() -> u32 {
    InitOptions::default().circuit_size
}
fn default_stake() -> u64 {
    InitOptions::default().prover_stake
}

impl Default for ProversSection {
    fn default() -> Self {
        ProversSection {
            count: 0,
            circuit_size: default_circuit_size(),
            stake: default_stake(),
            aggregator: false,
            delay_ms: 0,
        }
    }
}

/// One `[[rollup]]` (ids are assigned 1, 2, ... in order).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupSection {
    #[serde(default = "default_inclusion_window")]
    pub inclusion_window: u64,
    #[serde(default = "default_proof_window")]
    pub proof_window: u64,
    #[serde(default = "default_span_blocks")]
    pub span_blocks: u64,
}

fn default_span_blocks() -> u64 {
    InitOptions::default().span_blocks
}

fn default_inclusion_window() -> u64 {
    10
}
fn default_proof_window() -> u64 {
    InitOptions::default().proof_window
}

/// `[load]`: signed `RollupData` to rollup 1, one funded user per worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Open loop: transactions per second.
    #[serde(default = "default_rate")]
    pub rate: f64,
    #[serde(default = "default_workers")]
    pub workers: usize,
    #[serde(default = "default_tx_bytes")]
    pub tx_bytes: usize,
    /// Nodes whose RPC the load uses.
    #[serde(default = "default_load_nodes")]
    pub nodes: Vec<usize>,
    /// How long the load runs (the scenario lasts at least this long).
    #[serde(default = "default_load_secs")]
    pub duration_secs: u64,
    /// Also send a `ForceInclude` request (of a `RollupData` to the last
    /// rollup) this often, so the forced-window check has work.
    pub forced_every_secs: Option<u64>,
}

fn default_mode() -> String {
    "open".into()
}
fn default_rate() -> f64 {
    20.0
}
fn default_workers() -> usize {
    4
}
fn default_tx_bytes() -> usize {
    256
}
fn default_load_nodes() -> Vec<usize> {
    vec![0]
}
fn default_load_secs() -> u64 {
    60
}

/// What a perturbation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PerturbationKind {
    Kill,
    Restart,
    Pause,
    Disconnect,
    Wipe,
    Join,
    Stake,
    Unbond,
}

impl PerturbationKind {
    /// Kinds only a process-mode testnet carries out.
    pub fn process_only(self) -> bool {
        matches!(self, PerturbationKind::Stake | PerturbationKind::Unbond)
    }
}

/// One `[[perturbation]]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerturbationSection {
    pub node: usize,
    pub kind: PerturbationKind,
    /// Fires once the network's highest height reaches this.
    pub at_height: Option<u64>,
    /// Fires this many seconds after the load starts.
    pub at_secs: Option<u64>,
    /// How long the node stays down, paused or disconnected.
    #[serde(default = "default_perturbation_secs")]
    pub duration_secs: u64,
    /// `join` only: by state sync from the validators' snapshots (else
    /// block sync from genesis).
    #[serde(default)]
    pub state_sync: bool,
    /// `stake` only: the stake to add.
    pub stake: Option<u64>,
}

fn default_perturbation_secs() -> u64 {
    5
}

/// A scenario manifest (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub chain: ChainSection,
    #[serde(default, rename = "validator")]
    pub validators: Vec<ValidatorSection>,
    #[serde(default)]
    pub provers: ProversSection,
    #[serde(default, rename = "rollup")]
    pub rollups: Vec<RollupSection>,
    pub load: Option<LoadSection>,
    #[serde(default, rename = "perturbation")]
    pub perturbations: Vec<PerturbationSection>,
}

fn invalid(name: &'static str, value: impl ToString, reason: impl Into<String>) -> TestnetError {
    TestnetError::InvalidOption {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl Scenario {
    /// The perturbations in the order they fire.
    pub fn schedule(&self) -> Vec<PerturbationSection> {
        let mut schedule = self.perturbations.clone();
        schedule.sort_by_key(|p| (p.at_secs.unwrap_or(0), p.at_height.unwrap_or(0)));
        schedule
    }

    pub fn from_toml(path: &Path, text: &str) -> Result<Scenario> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| TestnetError::parse(path, e))?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).map_err(|e| TestnetError::io(path, e))?;
        Scenario::from_toml(path, &text)
    }

    /// Checks what [`InitOptions::validate`] does not.
    pub fn validate(&self) -> Result<()> {
        if self.validators.is_empty() {
            return Err(invalid(
                "[[validator]]",
                0,
                "want at least one validator table",
            ));
        }
        for v in &self.validators {
            if v.power == 0 {
                return Err(invalid("validator.power", 0, "want >= 1"));
            }
        }
        for r in &self.rollups {
            if r.inclusion_window == 0 || r.inclusion_window > 1000 {
                return Err(invalid(
                    "rollup.inclusion_window",
                    r.inclusion_window,
                    "want 1..=1000",
                ));
            }
            if r.proof_window == 0 || r.proof_window > 1000 {
                return Err(invalid(
                    "rollup.proof_window",
                    r.proof_window,
                    "want 1..=1000",
                ));
            }
            if !(1..=256).contains(&r.span_blocks) {
                return Err(invalid("rollup.span_blocks", r.span_blocks, "want 1..=256"));
            }
        }
        if let Some(load) = &self.load {
            if !matches!(load.mode.as_str(), "open" | "closed") {
                return Err(invalid("load.mode", &load.mode, "want open or closed"));
            }
            if self.rollups.is_empty() {
                return Err(invalid(
                    "[load]",
                    "rollup 1",
                    "the load posts to rollup 1: add a [[rollup]]",
                ));
            }
            if load.tx_bytes < crate::bench::SEQNET_MIN_TX_BYTES {
                return Err(invalid("load.tx_bytes", load.tx_bytes, "want >= 200"));
            }
            if load.nodes.is_empty() || load.nodes.iter().any(|n| *n >= self.validators.len()) {
                return Err(invalid(
                    "load.nodes",
                    format!("{:?}", load.nodes),
                    "want indices of validators",
                ));
            }
        }
        // Joined nodes take the next indices, in schedule order.
        let mut next_joined = self.validators.len();
        for p in self.schedule() {
            if p.kind == PerturbationKind::Join {
                if p.node != next_joined {
                    return Err(invalid(
                        "perturbation.node",
                        p.node,
                        format!("a join adds node {next_joined} (validators, then joins in schedule order)"),
                    ));
                }
                next_joined += 1;
            } else if p.state_sync {
                return Err(invalid(
                    "perturbation.state_sync",
                    format!("{:?}", p.kind),
                    "only a join syncs",
                ));
            }
        }
        for p in &self.perturbations {
            if (p.kind == PerturbationKind::Stake) != p.stake.is_some_and(|s| s > 0) {
                return Err(invalid(
                    "perturbation.stake",
                    format!("{:?} node {}", p.kind, p.node),
                    "a stake perturbation needs stake > 0, and only it takes one",
                ));
            }
            if p.kind == PerturbationKind::Join {
                // checked above
            } else if matches!(p.kind, PerturbationKind::Stake | PerturbationKind::Unbond) {
                if p.node >= next_joined {
                    return Err(invalid(
                        "perturbation.node",
                        p.node,
                        format!("want a validator or a joined node, 0..{next_joined}"),
                    ));
                }
            } else if p.node >= self.validators.len() {
                return Err(invalid(
                    "perturbation.node",
                    p.node,
                    format!("want 0..{}", self.validators.len()),
                ));
            }
            if p.at_height.is_some() == p.at_secs.is_some() {
                return Err(invalid(
                    "perturbation",
                    format!("{:?} node {}", p.kind, p.node),
                    "give exactly one of at_height and at_secs",
                ));
            }
        }
        Ok(())
    }

    /// The [`InitOptions`] this scenario generates with.
    pub fn init_options(&self, base_port: Option<u16>, force: bool) -> InitOptions {
        let defaults = InitOptions::default();
        InitOptions {
            validators: self.validators.len(),
            chain_id: self.network.chain_id.clone(),
            base_port: base_port
                .or(self.network.base_port)
                .unwrap_or(defaults.base_port),
            rollups: self.rollups.len() as u64,
            // One user per load worker, plus the forced requests' two.
            users: self.load.as_ref().map_or(2, |l| l.workers + 2),
            timeout_commit: self.network.timeout_commit.clone(),
            timeout_propose: self.network.timeout_propose.clone(),
            vote_extensions_enable_height: self
                .chain
                .vote_extensions_enable_height
                .unwrap_or(defaults.vote_extensions_enable_height),
            force,
            provers: self.provers.count,
            circuit_size: self.provers.circuit_size,
            prover_stake: self.provers.stake,
            proof_window: self
                .rollups
                .first()
                .map_or(defaults.proof_window, |r| r.proof_window),
            epoch_length: self.chain.epoch_length.unwrap_or(defaults.epoch_length),
            downtime_window: self
                .chain
                .downtime_window
                .unwrap_or(defaults.downtime_window),
            max_unproven_blocks: self.chain.max_unproven_blocks,
            span_blocks: self
                .rollups
                .iter()
                .map(|r| r.span_blocks)
                .max()
                .unwrap_or(defaults.span_blocks),
            prover_delay_ms: self.provers.delay_ms,
            aggregator: self.provers.aggregator,
            ..defaults
        }
    }
}

/// Generates the testnet of `scenario` in `dir`: [`init::init_with`], then
/// the per-validator powers and per-rollup windows patched into every
/// node's genesis, the censor faults, and a copy of the scenario.
pub fn init(
    dir: &Path,
    scenario: &Scenario,
    base_port: Option<u16>,
    force: bool,
    binaries: &Binaries,
) -> Result<Manifest> {
    scenario.validate()?;
    let opts = scenario.init_options(base_port, force);
    let prover = if opts.provers > 0 {
        Some(binaries.prover()?)
    } else {
        None
    };
    let manifest = init::init_with(dir, &opts, &binaries.cometbft, prover.as_deref())?;
    for node in &manifest.nodes {
        let path = dir.join(&node.cometbft_home).join("config/genesis.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TestnetError::io(&path, e))?;
        let mut genesis: Value =
            serde_json::from_str(&text).map_err(|e| TestnetError::parse(&path, e))?;
        if let Some(validators) = genesis.get_mut("validators").and_then(Value::as_array_mut) {
            for (v, section) in validators.iter_mut().zip(&scenario.validators) {
                v["power"] = json!(section.power.to_string());
            }
        }
        if let Some(rollups) = genesis
            .pointer_mut("/app_state/rollups")
            .and_then(Value::as_array_mut)
        {
            for (r, section) in rollups.iter_mut().zip(&scenario.rollups) {
                r["inclusion_window"] = json!(section.inclusion_window);
                r["proof_window"] = json!(section.proof_window);
                r["span_blocks"] = json!(section.span_blocks);
            }
        }
        let text =
            serde_json::to_string_pretty(&genesis).map_err(|e| TestnetError::parse(&path, e))?;
        std::fs::write(&path, text + "\n").map_err(|e| TestnetError::io(&path, e))?;
    }
    for (node, section) in manifest.nodes.iter().zip(&scenario.validators) {
        if !section.censor.is_empty() {
            init::set_fault_censor(dir, node, &section.censor)?;
        }
    }
    crate::compose::write(dir, &manifest)?;
    let text =
        toml::to_string(scenario).map_err(|e| TestnetError::parse(dir.join(SCENARIO_FILE), e))?;
    let path = dir.join(SCENARIO_FILE);
    std::fs::write(&path, text).map_err(|e| TestnetError::io(&path, e))?;
    Ok(manifest)
}

/// What happened to one perturbation.
#[derive(Clone, Debug, Serialize)]
pub struct PerturbationRecord {
    pub node: usize,
    pub kind: PerturbationKind,
    /// How it was carried out (`netns link down, up`, `docker pause, unpause`, ...).
    pub method: String,
    /// Network height when it fired.
    pub fired_at_height: u64,
    /// Seconds after the load started.
    pub fired_at_secs: f64,
    /// Height the node had to reach to count as recovered.
    pub target_height: u64,
    /// Seconds from restoring the node to reaching the target (`None`: not
    /// within the timeout).
    pub recovery_secs: Option<f64>,
}

/// A scenario's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub perturbations: Vec<PerturbationRecord>,
    pub load: Option<loadgen::RunStats>,
    pub check: CheckReport,
    /// Set when the testnet has an aggregator.
    pub aggregator: Option<AggregatorStats>,
}

impl ScenarioReport {
    /// Every check passed, every perturbed node recovered, and an
    /// aggregator (if any) submitted aggregates while load ran.
    pub fn passed(&self) -> bool {
        let aggregated = match (&self.aggregator, &self.load) {
            (Some(a), Some(_)) => a.worked(),
            _ => true,
        };
        aggregated
            && self.check.passed()
            && self.perturbations.iter().all(|p| p.recovery_secs.is_some())
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.perturbations.is_empty() {
            out.push_str(&format!(
                "{:<11} {:>4} {:>8} {:>8} {:>7} {:>10}  {}\n",
                "perturb", "node", "at h", "at s", "target", "recovery", "how"
            ));
            for p in &self.perturbations {
                out.push_str(&format!(
                    "{:<11} {:>4} {:>8} {:>8.1} {:>7} {:>10}  {}\n",
                    format!("{:?}", p.kind).to_lowercase(),
                    p.node,
                    p.fired_at_height,
                    p.fired_at_secs,
                    p.target_height,
                    p.recovery_secs
                        .map_or_else(|| "TIMEOUT".to_string(), |s| format!("{s:.1} s")),
                    p.method
                ));
            }
        }
        if let Some(l) = &self.load {
            out.push_str(&format!(
                "load: {} sent, {} acked, {} rejected, {} transport errors; {:.1} tx/s ordered, p50 {:.0} ms, p99 {:.0} ms\n",
                l.sent, l.acked, l.rejected, l.transport_errors, l.tps, l.p50_ms, l.p99_ms
            ));
            if let (Some(n), Some(p50), Some(p95), Some(p99)) =
                (l.proven, l.proven_p50_ms, l.proven_p95_ms, l.proven_p99_ms)
            {
                out.push_str(&format!(
                    "      to proven: {n} txs, p50 {p50:.0} ms, p95 {p95:.0} ms, p99 {p99:.0} ms\n"
                ));
            }
        }
        if let Some(a) = &self.aggregator {
            let show = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| n.to_string());
            out.push_str(&format!(
                "aggregator: {} aggregates covering {} proofs, {} hand-overs refused{}\n",
                show(a.aggregates),
                show(a.proofs),
                show(a.refused),
                if a.worked() {
                    ""
                } else {
                    " (FAIL: no aggregate)"
                }
            ));
        }
        out.push_str(&self.check.render());
        out
    }
}

/// SIGSTOP (`pause = true`) or SIGCONT both process groups of a node, by
/// their pid files.
pub fn signal_node(net: &Testnet, index: usize, pause: bool) -> Result<()> {
    let node_dir = net.dir().join(&net.node(index)?.dir);
    let signal = if pause {
        rustix::process::Signal::STOP
    } else {
        rustix::process::Signal::CONT
    };
    for name in process::PROCESSES {
        if let Some(pid) = process::read_pid(&node_dir, name) {
            process::signal_group(pid, signal)?;
        }
    }
    Ok(())
}

/// Rewrites node `index`'s `config.toml` p2p section: isolated (no
/// persistent peers, PEX off, p2p on a private port) or back as generated.
/// Returns the original text when isolating.
fn isolate_config(net: &Testnet, index: usize) -> Result<String> {
    let node = net.node(index)?;
    let path = net
        .dir()
        .join(&node.cometbft_home)
        .join("config/config.toml");
    let original = std::fs::read_to_string(&path).map_err(|e| TestnetError::io(&path, e))?;
    let mut config: toml::Table = original
        .parse()
        .map_err(|e| TestnetError::parse(&path, e))?;
    let private = node.ports.p2p.saturating_add(ISOLATED_P2P_OFFSET);
    if let Some(p2p) = config.get_mut("p2p").and_then(toml::Value::as_table_mut) {
        p2p.insert("persistent_peers".into(), "".into());
        p2p.insert("pex".into(), false.into());
        p2p.insert("seeds".into(), "".into());
        p2p.insert("laddr".into(), format!("tcp://127.0.0.1:{private}").into());
    }
    let text = toml::to_string(&config).map_err(|e| TestnetError::parse(&path, e))?;
    std::fs::write(&path, text).map_err(|e| TestnetError::io(&path, e))?;
    // The address book would let it dial peers again once PEX is back.
    let _ = std::fs::remove_file(
        net.dir()
            .join(&node.cometbft_home)
            .join("config/addrbook.json"),
    );
    Ok(original)
}

fn restore_config(net: &Testnet, index: usize, original: &str) -> Result<()> {
    let node = net.node(index)?;
    let path = net
        .dir()
        .join(&node.cometbft_home)
        .join("config/config.toml");
    std::fs::write(&path, original).map_err(|e| TestnetError::io(&path, e))
}

/// Deletes node `index`'s CometBFT chain data (not its keys or
/// `priv_validator_state.json`) and its sequencer's data.
fn wipe_dirs(dir: &Path, manifest: &Manifest, index: usize) -> Result<()> {
    let node = manifest.node(index)?;
    let data = dir.join(&node.cometbft_home).join("data");
    let entries = std::fs::read_dir(&data).map_err(|e| TestnetError::io(&data, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .file_name()
            .is_some_and(|n| n == "priv_validator_state.json")
        {
            continue;
        }
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(|e| TestnetError::io(&path, e))?;
    }
    let app_data = dir.join(&node.dir).join("data");
    if app_data.exists() {
        std::fs::remove_dir_all(&app_data).map_err(|e| TestnetError::io(&app_data, e))?;
    }
    Ok(())
}

/// Where a scenario's network runs.
pub enum Target<'a> {
    /// Processes on this machine.
    Process(&'a mut Testnet),
    /// docker compose containers (see [`crate::compose`]).
    Compose {
        dir: &'a Path,
        /// Reloaded after a join.
        manifest: Box<Manifest>,
    },
}

impl Target<'_> {
    fn manifest(&self) -> &Manifest {
        match self {
            Target::Process(net) => net.manifest(),
            Target::Compose { manifest, .. } => manifest,
        }
    }

    /// Heights of the nodes that answer within a second (a cut-off node
    /// never answers, and waiting longer for it would stretch its cut).
    async fn heights(&self) -> Vec<Option<u64>> {
        let polls = self.manifest().nodes.iter().map(|node| async move {
            let rpc = CometRpc::new(node.rpc_addr()).with_timeout(Duration::from_secs(1));
            rpc.status().await.ok().map(|s| s.height)
        });
        crate::process::join_all(polls).await
    }

    async fn max_height(&self) -> u64 {
        self.heights()
            .await
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
    }

    /// How this target carries out a perturbation of `kind`.
    fn method(&self, kind: PerturbationKind) -> &'static str {
        match (self, kind) {
            (Target::Process(_), PerturbationKind::Kill) => "SIGKILL, start",
            (Target::Process(_), PerturbationKind::Restart) => "SIGTERM, start",
            (Target::Process(_), PerturbationKind::Pause) => "SIGSTOP, SIGCONT",
            (Target::Process(net), PerturbationKind::Disconnect) => {
                if net.manifest().netns.is_some() {
                    "netns link down, up"
                } else {
                    "isolated restart"
                }
            }
            (Target::Process(_), PerturbationKind::Wipe) => "SIGKILL, wipe, start",
            (Target::Process(_), PerturbationKind::Join) => "add a node, start, sync",
            (Target::Process(_), PerturbationKind::Stake) => "RegisterValidator",
            (Target::Process(_), PerturbationKind::Unbond) => "UnbondValidator",
            (Target::Compose { .. }, PerturbationKind::Join) => "add a container, start, sync",
            (Target::Compose { .. }, PerturbationKind::Stake | PerturbationKind::Unbond) => {
                "not supported"
            }
            (Target::Compose { .. }, PerturbationKind::Kill) => "docker kill, start",
            (Target::Compose { .. }, PerturbationKind::Restart) => "docker stop, start",
            (Target::Compose { .. }, PerturbationKind::Pause) => "docker pause, unpause",
            (Target::Compose { .. }, PerturbationKind::Disconnect) => {
                "docker network disconnect, connect"
            }
            (Target::Compose { .. }, _) => "docker kill, wipe, start",
        }
    }

    /// Takes the node down (or off the network, or paused) for `hold`.
    async fn apply(&mut self, p: &PerturbationSection, hold: Duration) -> Result<()> {
        match self {
            Target::Process(net) => match p.kind {
                PerturbationKind::Kill => {
                    net.kill_node(p.node)?;
                    tokio::time::sleep(hold).await;
                }
                PerturbationKind::Restart => net.stop_node(p.node)?,
                PerturbationKind::Pause => {
                    signal_node(net, p.node, true)?;
                    tokio::time::sleep(hold).await;
                }
                PerturbationKind::Disconnect if net.manifest().netns.is_some() => {
                    net.set_connected(p.node, false)?;
                    tokio::time::sleep(hold).await;
                }
                PerturbationKind::Disconnect => {
                    net.stop_node(p.node)?;
                    let original = isolate_config(net, p.node)?;
                    let started = net.start_node(p.node).await;
                    tokio::time::sleep(hold).await;
                    net.stop_node(p.node)?;
                    restore_config(net, p.node, &original)?;
                    started?;
                }
                PerturbationKind::Wipe => {
                    net.kill_node(p.node)?;
                    wipe_dirs(net.dir(), net.manifest(), p.node)?;
                    tokio::time::sleep(hold).await;
                }
                PerturbationKind::Stake => {
                    let stake = p.stake.unwrap_or(0);
                    net.stake_validator(p.node, stake, hold.max(STAKE_TX_TIMEOUT))
                        .await?;
                }
                PerturbationKind::Unbond => {
                    net.unbond_validator(p.node, hold.max(STAKE_TX_TIMEOUT))
                        .await?;
                }
                PerturbationKind::Join => {
                    let (index, _) = net.start_joining(p.state_sync).await?;
                    if index != p.node {
                        return Err(invalid(
                            "perturbation.node",
                            p.node,
                            format!("the joined node got index {index}"),
                        ));
                    }
                }
            },
            Target::Compose { dir, manifest } if p.kind == PerturbationKind::Join => {
                let (index, _) = crate::compose::start_joining(dir, p.state_sync).await?;
                **manifest = Manifest::load(dir)?;
                if index != p.node {
                    return Err(invalid(
                        "perturbation.node",
                        p.node,
                        format!("the joined node got index {index}"),
                    ));
                }
            }
            Target::Compose { .. } if p.kind.process_only() => {
                return Err(invalid(
                    "perturbation",
                    format!("{:?}", p.kind),
                    "stakes and unbonds run in process mode only",
                ));
            }
            Target::Compose { dir, manifest } => {
                let container = crate::compose::container_name(manifest, p.node)?;
                match p.kind {
                    PerturbationKind::Kill => crate::compose::docker(&["kill", &container])?,
                    PerturbationKind::Restart => {
                        crate::compose::docker(&["stop", "-t", "10", &container])?
                    }
                    PerturbationKind::Pause => crate::compose::docker(&["pause", &container])?,
                    PerturbationKind::Disconnect => {
                        crate::compose::set_connected(manifest, p.node, false)?
                    }
                    PerturbationKind::Wipe => {
                        crate::compose::docker(&["kill", &container])?;
                        wipe_dirs(dir, manifest, p.node)?;
                    }
                    PerturbationKind::Join | PerturbationKind::Stake | PerturbationKind::Unbond => {
                    }
                }
                if p.kind != PerturbationKind::Restart {
                    tokio::time::sleep(hold).await;
                }
            }
        }
        Ok(())
    }

    /// Brings the node back.
    async fn restore(&mut self, p: &PerturbationSection) -> Result<()> {
        match self {
            Target::Process(net) => match p.kind {
                PerturbationKind::Pause => signal_node(net, p.node, false),
                PerturbationKind::Disconnect if net.manifest().netns.is_some() => {
                    net.set_connected(p.node, true)
                }
                // Started by `apply`; it syncs on its own. Stake changes
                // take no node down.
                PerturbationKind::Join | PerturbationKind::Stake | PerturbationKind::Unbond => {
                    Ok(())
                }
                _ => net.start_node(p.node).await,
            },
            Target::Compose { manifest, .. } => {
                let container = crate::compose::container_name(manifest, p.node)?;
                match p.kind {
                    PerturbationKind::Join | PerturbationKind::Stake | PerturbationKind::Unbond => {
                        Ok(())
                    }
                    PerturbationKind::Pause => crate::compose::docker(&["unpause", &container]),
                    PerturbationKind::Disconnect => {
                        crate::compose::set_connected(manifest, p.node, true)
                    }
                    _ => crate::compose::docker(&["start", &container]),
                }
            }
        }
    }

    async fn wait_node(&mut self, index: usize, height: u64, timeout: Duration) -> Result<()> {
        match self {
            Target::Process(net) => net.wait_node_height(index, height, timeout).await,
            Target::Compose { manifest, .. } => {
                let node = manifest.node(index)?;
                let rpc = CometRpc::new(node.rpc_addr()).with_timeout(Duration::from_secs(3));
                let start = Instant::now();
                loop {
                    if rpc.status().await.is_ok_and(|s| s.height >= height) {
                        return Ok(());
                    }
                    if start.elapsed() >= timeout {
                        return Err(TestnetError::Timeout {
                            what: format!("height {height} on node{index}"),
                            secs: timeout.as_secs(),
                            detail: String::new(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }
}

/// How long a stake or unbond perturbation waits for its transaction.
const STAKE_TX_TIMEOUT: Duration = Duration::from_secs(60);

/// Applies one perturbation and measures the node's recovery.
pub async fn perturb(
    target: &mut Target<'_>,
    p: &PerturbationSection,
    load_started: Instant,
    recovery_timeout: Duration,
) -> Result<PerturbationRecord> {
    let fired_at_height = target.max_height().await;
    let fired_at_secs = load_started.elapsed().as_secs_f64();
    let hold = Duration::from_secs(p.duration_secs);
    tracing::info!(node = p.node, kind = ?p.kind, height = fired_at_height, "perturbation");
    target.apply(p, hold).await?;
    let target_height = target.max_height().await + 2;
    let restored = Instant::now();
    target.restore(p).await?;
    let recovery_secs = match target
        .wait_node(p.node, target_height, recovery_timeout)
        .await
    {
        Ok(()) => Some(restored.elapsed().as_secs_f64()),
        Err(e) => {
            tracing::warn!(node = p.node, "did not recover: {e}");
            None
        }
    };
    tracing::info!(node = p.node, kind = ?p.kind, ?recovery_secs, "recovered");
    Ok(PerturbationRecord {
        node: p.node,
        kind: p.kind,
        method: target.method(p.kind).to_string(),
        fired_at_height,
        fired_at_secs,
        target_height,
        recovery_secs,
    })
}

fn load_sources(
    dir: &Path,
    manifest: &Manifest,
    load: &LoadSection,
) -> Result<Vec<Box<dyn TxSource>>> {
    (0..load.workers)
        .map(|w| -> Result<Box<dyn TxSource>> {
            let name = format!("user-{}", w + 1);
            let path = dir.join(manifest.key_path(&name)?);
            let signer = TxSigner::new(keys::load(&path)?, manifest.chain_id.clone())
                .with_fees(manifest.fees.schedule());
            Ok(Box::new(SeqnetSource::new(signer, 1, load.tx_bytes)))
        })
        .collect()
}

/// The signers of the forced requests: the inner transactions' account
/// (`user-{workers+1}`) and the requester (`user-{workers+2}`).
fn forced_signers(
    dir: &Path,
    manifest: &Manifest,
    load: &LoadSection,
) -> Result<(TxSigner, TxSigner)> {
    let signer = |n: usize| -> Result<TxSigner> {
        let name = format!("user-{n}");
        let path = dir.join(manifest.key_path(&name)?);
        Ok(TxSigner::new(keys::load(&path)?, manifest.chain_id.clone())
            .with_fees(manifest.fees.schedule()))
    };
    Ok((signer(load.workers + 1)?, signer(load.workers + 2)?))
}

/// Sends a `ForceInclude` every `every` until `until` has passed; returns
/// how many CheckTx accepted.
async fn forced_requests(
    (mut inner, mut outer): (TxSigner, TxSigner),
    rpc: CometRpc,
    rollup: u64,
    every: Duration,
    until: Duration,
) -> u64 {
    let started = Instant::now();
    let mut accepted = 0;
    while started.elapsed() + every < until {
        tokio::time::sleep(every).await;
        let data = crate::load::payload(rollup, inner.next_nonce, 64);
        let tx = inner.rollup_data(rollup, data, None);
        let wrapper = outer.force_include(tx, None);
        match rpc.broadcast_tx_sync(wrapper.to_bytes()).await {
            Ok(r) if r.code == 0 => accepted += 1,
            other => {
                tracing::warn!("ForceInclude not accepted: {other:?}");
                inner.next_nonce = inner.next_nonce.saturating_sub(1);
                outer.next_nonce = outer.next_nonce.saturating_sub(1);
            }
        }
    }
    accepted
}

/// The layout [`run`] gives the nodes of `scenario` (`[network] netns`):
/// a namespace each, or loopback.
pub fn process_layout(scenario: &Scenario, base_port: u16) -> Result<Option<NetnsLayout>> {
    let layout = NetnsLayout::for_base_port(base_port);
    let disconnects = scenario
        .perturbations
        .iter()
        .any(|p| p.kind == PerturbationKind::Disconnect);
    match scenario.network.netns {
        NetnsMode::Off => Ok(None),
        NetnsMode::Auto if !disconnects => Ok(None),
        NetnsMode::On => match crate::netns::probe(&layout) {
            Ok(()) => Ok(Some(layout)),
            Err(why) => Err(invalid("network.netns", "on", why)),
        },
        NetnsMode::Auto => match crate::netns::probe(&layout) {
            Ok(()) => Ok(Some(layout)),
            Err(why) => {
                tracing::warn!(
                    "no network namespace per node ({why}): disconnect restarts the node isolated"
                );
                Ok(None)
            }
        },
    }
}

/// Runs the scenario of the testnet in `dir` (generated by [`init`]) as
/// processes: start, stake and start provers, then [`drive`]. The network
/// is stopped afterwards unless `keep_running`.
pub async fn run(
    dir: &Path,
    scenario: &Scenario,
    binaries: Binaries,
    keep_running: bool,
) -> Result<ScenarioReport> {
    let base_port = Manifest::load(dir)?.base_port;
    let layout = process_layout(scenario, base_port)?;
    if layout.is_some() {
        crate::netns::sweep_stale(crate::netns::STALE_AFTER);
    }
    crate::init::set_layout(dir, layout)?;
    let mut net = Testnet::open(dir)?.with_binaries(binaries);
    let startup = Duration::from_secs(180);
    net.start(startup).await?;
    if net.prover_count() > 0 {
        net.register_provers(Duration::from_secs(60)).await?;
        net.start_provers()?;
        net.wait_for_active_provers(net.prover_count(), Duration::from_secs(120))
            .await?;
    }
    let report = drive(dir, scenario, &mut Target::Process(&mut net)).await;
    if keep_running {
        net.detach();
    } else {
        net.stop();
    }
    report
}

/// Runs the scenario of the testnet in `dir` as docker compose containers:
/// [`crate::compose::up`], [`drive`] (perturbations through `docker kill`,
/// `stop`, `pause`, `network disconnect`), then `compose down` unless
/// `keep_running`. Provers run in their own containers.
pub async fn run_compose(
    dir: &Path,
    scenario: &Scenario,
    binaries: &Binaries,
    base_image: &str,
    keep_running: bool,
) -> Result<ScenarioReport> {
    crate::compose::up(dir, binaries, base_image, Duration::from_secs(300)).await?;
    let manifest = Manifest::load(dir)?;
    let manifest = Box::new(manifest);
    let report = drive(dir, scenario, &mut Target::Compose { dir, manifest }).await;
    if !keep_running {
        if let Err(e) = crate::compose::down(dir) {
            tracing::warn!("compose down: {e}");
        }
    }
    report
}

/// Load, perturb on schedule, stop the load, wait for acknowledged
/// transactions to be ordered, check: the part of a scenario that is the
/// same for processes and containers.
pub async fn drive(
    dir: &Path,
    scenario: &Scenario,
    target: &mut Target<'_>,
) -> Result<ScenarioReport> {
    let manifest = target.manifest().clone();
    let start_height = target.max_height().await + 1;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load_started = Instant::now();
    let load_task = match &scenario.load {
        Some(load) => {
            let spec = LoadSpec {
                mode: if load.mode == "closed" {
                    LoopMode::Closed
                } else {
                    LoopMode::Open { rate: load.rate }
                },
                workers: load.workers,
                duration: Some(Duration::from_secs(load.duration_secs)),
                endpoints: load
                    .nodes
                    .iter()
                    .map(|i| manifest.node(*i).map(|n| n.rpc_addr()))
                    .collect::<Result<_>>()?,
            };
            let sources = load_sources(dir, &manifest, load)?;
            let counters = Arc::new(Counters::default());
            Some((
                spec.clone(),
                tokio::spawn(async move { loadgen::run(&spec, sources, counters, stop_rx).await }),
            ))
        }
        None => None,
    };

    // Latency to proven: the proven height sampled from the moment the load starts
    // (sampling only after the perturbations would date every proof late).
    let (proven_stop, proven_rx) = tokio::sync::watch::channel(false);
    let proven_task = manifest.proving.as_ref().and_then(|_| {
        let node = manifest.nodes.first()?;
        let rpc = CometRpc::new(node.rpc_addr());
        Some(tokio::spawn(loadgen::ProvenTimeline::track(
            rpc,
            Duration::from_millis(250),
            proven_rx,
        )))
    });
    let forced_task = match &scenario.load {
        Some(load) => match load.forced_every_secs {
            Some(every) if every > 0 => {
                let signers = forced_signers(dir, &manifest, load)?;
                let rpc = CometRpc::new(manifest.node(load.nodes[0])?.rpc_addr());
                let rollup = manifest.rollups.last().map_or(1, |r| r.id);
                let until = Duration::from_secs(load.duration_secs);
                Some(tokio::spawn(forced_requests(
                    signers,
                    rpc,
                    rollup,
                    Duration::from_secs(every),
                    until,
                )))
            }
            _ => None,
        },
        None => None,
    };
    let schedule = scenario.schedule();
    let mut records = Vec::new();
    let mut failure = None;
    for p in &schedule {
        loop {
            let due = match (p.at_height, p.at_secs) {
                (Some(h), _) => target.max_height().await >= h,
                (_, Some(s)) => load_started.elapsed() >= Duration::from_secs(s),
                _ => true,
            };
            if due {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        match perturb(target, p, load_started, Duration::from_secs(120)).await {
            Ok(record) => records.push(record),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let mut stats = None;
    let mut log = None;
    if let Some((spec, task)) = load_task {
        if failure.is_some() {
            let _ = stop_tx.send(true);
        }
        let result = task
            .await
            .map_err(|e| invalid("load task", e, "panicked"))?;
        let l = result?;
        let first = spec.endpoints.first().cloned().unwrap_or_default();
        let mut index = BlockIndex::new(CometRpc::new(first), start_height);
        if !loadgen::drain(&mut index, &l, Duration::from_secs(60)).await? {
            tracing::warn!("not every acknowledged transaction was ordered within 60 s");
        }
        let tx_bytes = scenario.load.as_ref().map_or(0, |l| l.tx_bytes);
        let mut run_stats = loadgen::analyze(
            &l,
            &index,
            Duration::ZERO,
            tx_bytes,
            spec.mode,
            spec.workers,
        );
        if let Some(task) = proven_task {
            // Give the provers time to prove the load's last blocks.
            let last = l
                .acked()
                .filter_map(|tx| index.occurrences.get(&tx.hash)?.first().copied())
                .max()
                .unwrap_or(0);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                let proven = CometRpc::new(manifest.nodes[0].rpc_addr())
                    .abci_query("/finality")
                    .await
                    .ok()
                    .and_then(|b| {
                        <seqnet_proto::pb::Finality as prost::Message>::decode(b.as_slice()).ok()
                    })
                    .map_or(0, |f| f.proven_height);
                if proven >= last {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let _ = proven_stop.send(true);
            if let Ok(timeline) = task.await {
                timeline.annotate(&mut run_stats, &l, &index, Duration::ZERO);
            }
        }
        stats = Some(run_stats);
        l.save(&dir.join(LOAD_LOG))?;
        log = Some(l);
    }
    drop(stop_tx);
    if let Some(task) = forced_task {
        match task.await {
            Ok(sent) => tracing::info!(sent, "forced requests acknowledged"),
            Err(e) => tracing::warn!("forced request task: {e}"),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let provers_alive = match target {
        Target::Process(_) => None,
        Target::Compose { manifest, .. } => Some(crate::compose::provers_running(manifest)),
    };
    // Nodes that joined are checked too.
    let manifest = target.manifest().clone();
    let report = check::check_with(dir, &manifest, log.as_ref(), provers_alive).await;
    let aggregator = match &manifest.aggregator {
        Some(agg) => Some(AggregatorStats::scrape(agg.metrics_port).await),
        None => None,
    };
    Ok(ScenarioReport {
        perturbations: records,
        load: stats,
        check: report,
        aggregator,
    })
}

/// What the aggregator did during a scenario (its metrics at the end).
#[derive(Clone, Debug, Serialize)]
pub struct AggregatorStats {
    /// `SubmitAggregate` transactions a node accepted (`None`: metrics unreachable).
    pub aggregates: Option<u64>,
    /// Proofs those aggregates covered.
    pub proofs: Option<u64>,
    /// Hand-overs it refused.
    pub refused: Option<u64>,
}

impl AggregatorStats {
    async fn scrape(metrics_port: u16) -> AggregatorStats {
        let text = crate::scrape::fetch(metrics_port).await.ok();
        let counter = |series: &str| {
            text.as_deref()
                .and_then(|t| crate::scrape::sum(t, series))
                .map(|v| v as u64)
        };
        AggregatorStats {
            aggregates: counter("seqnet_prover_aggregates_submitted_total"),
            proofs: counter("seqnet_prover_aggregated_proofs_total"),
            // Absent until the first refusal.
            refused: text
                .as_ref()
                .map(|_| counter("seqnet_prover_handovers_total{result=\"refused\"}").unwrap_or(0)),
        }
    }

    /// It submitted at least one aggregate.
    pub fn worked(&self) -> bool {
        self.aggregates.is_some_and(|n| n > 0)
    }
}

/// Where a scenario's testnet keeps its copy of the manifest.
pub fn scenario_path(dir: &Path) -> PathBuf {
    dir.join(SCENARIO_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_manifests_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        for name in ["ci.toml", "demo.toml", "bench.toml"] {
            let path = dir.join(name);
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            scenario
                .init_options(None, false)
                .validate()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bad_manifests_name_the_value() {
        let path = Path::new("m.toml");
        let err = Scenario::from_toml(path, "[[validator]]\npower = 0\n").expect_err("power 0");
        assert!(err.to_string().contains("validator.power"), "{err}");
        let text = "[[validator]]\n[[perturbation]]\nnode = 3\nkind = \"kill\"\nat_secs = 1\n";
        let err = Scenario::from_toml(path, text).expect_err("node 3");
        assert!(err.to_string().contains("perturbation.node"), "{err}");
        let text = "[[validator]]\n[[perturbation]]\nnode = 0\nkind = \"explode\"\nat_secs = 1\n";
        assert!(Scenario::from_toml(path, text).is_err());
        let text = "[network]\nnetns = \"sometimes\"\n[[validator]]\n";
        assert!(Scenario::from_toml(path, text).is_err());
        // A join adds the next node; only a join syncs.
        let join = |node: usize, kind: &str, extra: &str| {
            format!(
                "[[validator]]\n[[validator]]\n[[perturbation]]\nnode = {node}\n\
                 kind = \"{kind}\"\nat_secs = 1\n{extra}"
            )
        };
        assert!(Scenario::from_toml(path, &join(2, "join", "state_sync = true\n")).is_ok());
        let err = Scenario::from_toml(path, &join(3, "join", "")).expect_err("node 3");
        assert!(err.to_string().contains("adds node 2"), "{err}");
        let err = Scenario::from_toml(path, &join(1, "kill", "state_sync = true\n"))
            .expect_err("kill syncs");
        assert!(err.to_string().contains("only a join"), "{err}");
        // A stake takes an amount (and only it does), for a validator or a
        // node joined before it.
        assert!(Scenario::from_toml(
            path,
            &join(
                1,
                "stake",
                "stake = 5000
"
            )
        )
        .is_ok());
        assert!(Scenario::from_toml(path, &join(0, "unbond", "")).is_ok());
        for (node, kind, extra) in [
            (1, "stake", ""),
            (
                1,
                "stake",
                "stake = 0
",
            ),
            (
                1,
                "unbond",
                "stake = 5
",
            ),
            (
                2,
                "stake",
                "stake = 5000
",
            ),
        ] {
            let err = Scenario::from_toml(path, &join(node, kind, extra))
                .expect_err("a bad stake perturbation");
            assert!(err.to_string().contains("perturbation."), "{err}");
        }
    }

    #[test]
    fn namespaces_only_where_asked_for_or_needed() {
        let path = Path::new("m.toml");
        let with = |netns: &str, kind: &str| {
            let text = format!(
                "[network]\nnetns = \"{netns}\"\n[[validator]]\n[[validator]]\n\
                 [[perturbation]]\nnode = 1\nkind = \"{kind}\"\nat_secs = 1\n"
            );
            Scenario::from_toml(path, &text).expect("valid")
        };
        let none = |s: Scenario| process_layout(&s, 1999).expect("layout").is_none();
        assert!(none(with("off", "disconnect")));
        assert!(none(with("auto", "kill")));
        let auto = process_layout(&with("auto", "disconnect"), 1999).expect("auto never fails");
        let available = crate::netns::probe(&NetnsLayout::for_base_port(1999)).is_ok();
        assert_eq!(auto, available.then(|| NetnsLayout::for_base_port(1999)));
        let on = process_layout(&with("on", "kill"), 1999);
        assert_eq!(on.is_ok(), available, "{on:?}");
    }
}
