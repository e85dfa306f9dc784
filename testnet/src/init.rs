//! `init`: generates a local network in one directory.
//!
//! For each node `cometbft init` creates a home (node key, validator key,
//! default config); then one shared `genesis.json` (all validators, the chain
//! id, consensus parameters for a local net and the seqnet `app_state` with
//! funded accounts and demo rollups) replaces every node's genesis, each
//! `config.toml` is patched (addresses, peers, timeouts), and each node
//! gets a `sequencer.toml`. `testnet.json` records the layout.
//!
//! ```text
//! D/testnet.json
//! D/keys/{faucet,rollup-K,user-J}.json
//! D/node{i}/cometbft/          CometBFT home
//! D/node{i}/sequencer.toml     seqnet-sequencer config (data in D/node{i}/data)
//! D/node{i}/{sequencer,cometbft}.{log,pid}
//! D/keys/prover-{j}.json       prover accounts (with --provers J)
//! D/prover-keys/               reference-circuit keys (DEVELOPMENT setup)
//! D/prover{j}/prover.{log,pid} seqnet-prover run
//! ```
//!
//! With provers, the demo rollups are registered in genesis with the
//! reference circuit's verifying key, so each of their batches becomes a
//! proof job. The keys come from `seqnet-prover setup` (seeded: a
//! development setup, not a ceremony), cached per size in
//! `$SEQNET_CACHE_DIR` (default `$HOME/.cache/seqnet/prover-keys`). Provers
//! are not in genesis: [`crate::Testnet::register_provers`] stakes them with
//! `RegisterProver` transactions once the network runs, and they join the
//! active set at the next epoch boundary.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use seqnet_rollup_client::keys;
use serde_json::{json, Value};

use crate::error::{Result, TestnetError};
use crate::manifest::{
    AggregatorManifest, FeeParams, KeyManifest, Manifest, NodeManifest, Ports, ProverManifest,
    ProvingManifest, RollupManifest, LOOPBACK,
};
use crate::netns::NetnsLayout;
use crate::process::run_checked;

/// Balance of the faucet account.
pub const FAUCET_BALANCE: u64 = 1_000_000_000_000_000;
/// Balance of each rollup owner and user account.
pub const ACCOUNT_BALANCE: u64 = 1_000_000_000_000;
/// Heights over which a testnet validator's missed votes count by default
/// (it is jailed past half of them): about 25 s of downtime at testnet block
/// times, longer than the perturbations of the CI scenario.
pub const DEFAULT_DOWNTIME_WINDOW: u64 = 100;
/// Voting power of each validator.
pub const VALIDATOR_POWER: u64 = 10;

/// What `init` generates.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Number of validators (each a CometBFT node plus a sequencer).
    pub validators: usize,
    pub chain_id: String,
    /// Node `i` uses ports `base_port + 10 * i + {0..4}`.
    pub base_port: u16,
    /// Demo rollups registered at genesis, ids `1..=rollups`.
    pub rollups: u64,
    /// Extra funded accounts `user-1..=users` (for transfers and fault drills).
    pub users: usize,
    /// CometBFT `consensus.timeout_commit`, e.g. `300ms`.
    pub timeout_commit: String,
    /// CometBFT `consensus.timeout_propose`, e.g. `1s`.
    pub timeout_propose: String,
    /// CometBFT `log_level`.
    pub cometbft_log_level: String,
    /// Sequencer `log.filter` (RUST_LOG syntax).
    pub sequencer_log_filter: String,
    /// Consensus parameter `abci.vote_extensions_enable_height` (0: disabled).
    /// Forced inclusion lists travel in vote extensions, so the default is 1.
    pub vote_extensions_enable_height: u64,
    /// Replace an existing directory.
    pub force: bool,
    /// Prover accounts (`keys/prover-J.json`) and processes; with any, the
    /// demo rollups get the reference circuit's verifying key.
    pub provers: usize,
    /// Reference circuit size k (about 2^k constraints).
    pub circuit_size: u32,
    /// Stake each prover registers with.
    pub prover_stake: u64,
    /// Proof window of the demo rollups (blocks).
    pub proof_window: u64,
    /// Chain parameter `epoch_length`.
    pub epoch_length: u64,
    /// Chain parameter `downtime_window`: a validator that misses more than
    /// half of these heights is jailed (`validator_jail_period` is the
    /// same number of blocks).
    pub downtime_window: u64,
    /// Chain parameter `max_unproven_blocks` (`None`: with provers
    /// `span_blocks + 2 * proof_window`, room for one missed deadline while
    /// the next spans are proven; the chain's default without).
    pub max_unproven_blocks: Option<u64>,
    /// `span_blocks` of the demo rollups: blocks per proof job.
    pub span_blocks: u64,
    /// Milliseconds the provers wait before proving each job (0: the
    /// in-process reference back end; see
    /// [`crate::manifest::ProvingManifest::prover_delay_ms`]).
    pub prover_delay_ms: u64,
    /// An aggregator (needs provers): its key, a DEVELOPMENT aggregation SRS
    /// (genesis `aggregation_srs`), and the provers hand it their proofs.
    pub aggregator: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            validators: 4,
            chain_id: "seqnet-local".into(),
            base_port: 27000,
            rollups: 3,
            users: 2,
            timeout_commit: "300ms".into(),
            timeout_propose: "1s".into(),
            cometbft_log_level: "info".into(),
            sequencer_log_filter: "info".into(),
            vote_extensions_enable_height: 1,
            force: false,
            provers: 0,
            circuit_size: 8,
            prover_stake: 10_000,
            proof_window: 20,
            epoch_length: 10,
            downtime_window: DEFAULT_DOWNTIME_WINDOW,
            max_unproven_blocks: None,
            span_blocks: 5,
            prover_delay_ms: 0,
            aggregator: false,
        }
    }
}

fn invalid(name: &'static str, value: impl ToString, reason: impl Into<String>) -> TestnetError {
    TestnetError::InvalidOption {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks a Go duration of the simple form `<digits><unit>` (`ms`, `s`, `m`).
fn check_duration(name: &'static str, value: &str) -> Result<()> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(unit, "ms" | "s" | "m");
    if ok {
        Ok(())
    } else {
        Err(invalid(name, value, "want a duration like 300ms, 1s or 1m"))
    }
}

impl InitOptions {
    /// Checks every option before anything is written.
    pub fn validate(&self) -> Result<()> {
        if !(1..=100).contains(&self.validators) {
            return Err(invalid("--validators", self.validators, "want 1..=100"));
        }
        let id_ok = !self.chain_id.is_empty()
            && self.chain_id.len() <= seqnet_proto::tx::MAX_CHAIN_ID_LEN
            && self
                .chain_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            return Err(invalid(
                "--chain-id",
                &self.chain_id,
                format!(
                    "want 1..={} characters of [A-Za-z0-9._-]",
                    seqnet_proto::tx::MAX_CHAIN_ID_LEN
                ),
            ));
        }
        if self.base_port < 1024 || Ports::for_node(self.base_port, self.validators - 1).is_none() {
            return Err(invalid(
                "--base-port",
                self.base_port,
                format!(
                    "ports base..base+{} must lie in 1024..=65535",
                    10 * (self.validators - 1) + 4
                ),
            ));
        }
        if self.rollups > 1000 {
            return Err(invalid("--rollups", self.rollups, "want 0..=1000"));
        }
        if self.users > 1000 {
            return Err(invalid("--users", self.users, "want 0..=1000"));
        }
        if self.provers > 100 {
            return Err(invalid("--provers", self.provers, "want 0..=100"));
        }
        if !(8..=16).contains(&self.circuit_size) {
            return Err(invalid(
                "--circuit-size",
                self.circuit_size,
                "want 8..=16 for a local testnet",
            ));
        }
        if self.proof_window == 0 || self.proof_window > 1000 {
            return Err(invalid(
                "--proof-window",
                self.proof_window,
                "want 1..=1000",
            ));
        }
        if self.downtime_window < 2 {
            return Err(invalid(
                "--downtime-window",
                self.downtime_window,
                "want >= 2",
            ));
        }
        if self.epoch_length == 0 {
            return Err(invalid("--epoch-length", self.epoch_length, "want >= 1"));
        }
        if !(1..=256).contains(&self.span_blocks) {
            return Err(invalid(
                "--span-blocks",
                self.span_blocks,
                "want 1..=256 (the chain's max_span_blocks)",
            ));
        }
        if self.aggregator && self.provers == 0 {
            return Err(invalid(
                "--aggregator",
                "true",
                "an aggregator needs provers (--provers N)",
            ));
        }
        if self.provers > 0 && self.prover_stake < 1_000 {
            return Err(invalid(
                "prover stake",
                self.prover_stake,
                "want at least min_prover_stake (1000)",
            ));
        }
        check_duration("--timeout-commit", &self.timeout_commit)?;
        check_duration("--timeout-propose", &self.timeout_propose)?;
        Ok(())
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| TestnetError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TestnetError::parse(path, e))
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TestnetError::parse(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| TestnetError::io(path, e))
}

fn str_at<'a>(value: &'a Value, pointer: &str, path: &Path) -> Result<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| TestnetError::parse(path, format!("missing string at {pointer}")))
}

/// CometBFT node id from `node_key.json`: hex of the first 20 bytes of
/// SHA-256 of the ed25519 public key (the last 32 bytes of the private key).
pub fn node_id_from_key_file(path: &Path) -> Result<String> {
    let json = read_json(path)?;
    let value = str_at(&json, "/priv_key/value", path)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|e| TestnetError::parse(path, format!("priv_key is not base64: {e}")))?;
    if bytes.len() != 64 {
        return Err(TestnetError::parse(
            path,
            format!("priv_key has {} bytes, want 64", bytes.len()),
        ));
    }
    let digest = seqnet_proto::sha256(&bytes[32..]);
    Ok(hex::encode(&digest[..20]))
}

/// Runs `cometbft init --home <home>`.
fn cometbft_init(cometbft: &Path, home: &Path) -> Result<()> {
    run_checked(Command::new(cometbft).arg("init").arg("--home").arg(home)).map(drop)
}

/// Whether any pid file under `dir` names a live process.
fn running_pid(dir: &Path) -> Option<(usize, &'static str, i32)> {
    let manifest = Manifest::load(dir).ok()?;
    manifest.nodes.iter().find_map(|node| {
        crate::process::PROCESSES.iter().find_map(|process| {
            let pid = crate::process::read_pid(&dir.join(&node.dir), process)?;
            crate::process::is_alive(pid).then_some((node.index, *process, pid))
        })
    })
}

fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    let non_empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(TestnetError::io(dir, e)),
    };
    if non_empty {
        if !force {
            return Err(TestnetError::DirExists(dir.to_path_buf()));
        }
        if let Some((node, process, pid)) = running_pid(dir) {
            return Err(TestnetError::AlreadyRunning { node, process, pid });
        }
        std::fs::remove_dir_all(dir).map_err(|e| TestnetError::io(dir, e))?;
    }
    std::fs::create_dir_all(dir.join("keys")).map_err(|e| TestnetError::io(dir, e))
}

struct Account {
    manifest: KeyManifest,
}

fn make_account(dir: &Path, name: String, balance: u64) -> Result<Account> {
    let key = keys::generate();
    let rel = PathBuf::from("keys").join(format!("{name}.json"));
    keys::save(&dir.join(&rel), &key, true)?;
    Ok(Account {
        manifest: KeyManifest {
            name,
            path: rel,
            address: keys::address(&key).to_string(),
            balance,
        },
    })
}

/// Where development keys of the reference circuit are cached.
pub fn prover_key_cache() -> PathBuf {
    match std::env::var_os("SEQNET_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(".cache/seqnet"),
    }
    .join("prover-keys")
}

/// Copies `seqnet-prover setup --size k` keys (seed 0) into `out`,
/// generating them into the cache first if needed.
pub fn reference_keys(prover: &Path, k: u32, out: &Path) -> Result<()> {
    let cached = prover_key_cache().join(format!("reference-k{k}-seed0"));
    if !cached.join("verifying_key.bin").is_file() {
        let parent = cached.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| TestnetError::io(parent, e))?;
        let tmp = parent.join(format!("reference-k{k}-seed0.tmp-{}", std::process::id()));
        tracing::info!(k, cache = %cached.display(), "generating reference-circuit keys (DEVELOPMENT setup)");
        run_checked(
            Command::new(prover)
                .args(["setup", "--circuit", "reference", "--seed", "0", "--size"])
                .arg(k.to_string())
                .arg("--out")
                .arg(&tmp),
        )?;
        // Another process may have won the race; its keys are the same.
        if std::fs::rename(&tmp, &cached).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    std::fs::create_dir_all(out).map_err(|e| TestnetError::io(out, e))?;
    for file in ["proving_key.bin", "verifying_key.bin", "SETUP.txt"] {
        std::fs::copy(cached.join(file), out.join(file))
            .map_err(|e| TestnetError::io(cached.join(file), e))?;
    }
    Ok(())
}

/// Generates a testnet in `dir` (see the module docs) and returns its
/// manifest; `seqnet-prover` is looked up when `opts.provers > 0`.
pub fn init(dir: &Path, opts: &InitOptions, cometbft: &Path) -> Result<Manifest> {
    let prover = if opts.provers > 0 {
        Some(crate::binaries::locate_prover()?)
    } else {
        None
    };
    init_with(dir, opts, cometbft, prover.as_deref())
}

/// [`init`] with the `seqnet-prover` binary given (needed with provers).
pub fn init_with(
    dir: &Path,
    opts: &InitOptions,
    cometbft: &Path,
    prover: Option<&Path>,
) -> Result<Manifest> {
    opts.validate()?;
    prepare_dir(dir, opts.force)?;
    tracing::info!(dir = %dir.display(), validators = opts.validators, rollups = opts.rollups, "generating testnet");

    let fees = FeeParams {
        base_fee: 10,
        fee_per_byte: 1,
        max_tx_bytes: 262_144,
    };

    // 1. CometBFT homes.
    let mut nodes = Vec::with_capacity(opts.validators);
    let mut validators = Vec::with_capacity(opts.validators);
    for index in 0..opts.validators {
        let node_dir = PathBuf::from(format!("node{index}"));
        let home_rel = node_dir.join("cometbft");
        let home = dir.join(&home_rel);
        cometbft_init(cometbft, &home)?;
        let pv_path = home.join("config/priv_validator_key.json");
        let pv = read_json(&pv_path)?;
        let address = str_at(&pv, "/address", &pv_path)?.to_string();
        let pub_key = pv
            .get("pub_key")
            .cloned()
            .ok_or_else(|| TestnetError::parse(&pv_path, "missing pub_key"))?;
        let node_id = node_id_from_key_file(&home.join("config/node_key.json"))?;
        let moniker = format!("node{index}");
        validators.push(json!({
            "address": address,
            "pub_key": pub_key,
            "power": VALIDATOR_POWER.to_string(),
            "name": moniker,
        }));
        let ports = Ports::for_node(opts.base_port, index)
            .ok_or_else(|| invalid("--base-port", opts.base_port, "port out of range"))?;
        nodes.push(NodeManifest {
            index,
            moniker,
            node_id,
            validator_address: address,
            cometbft_home: home_rel,
            sequencer_config: node_dir.join("sequencer.toml"),
            dir: node_dir,
            ports,
            host: LOOPBACK.to_string(),
        });
    }

    // 2. Accounts and rollups.
    let mut accounts = vec![make_account(dir, "faucet".into(), FAUCET_BALANCE)?];
    let mut rollups = Vec::new();
    for id in 1..=opts.rollups {
        let account = make_account(dir, format!("rollup-{id}"), ACCOUNT_BALANCE)?;
        rollups.push(RollupManifest {
            id,
            name: format!("demo-{id}"),
            owner_key: account.manifest.name.clone(),
            submit_node: usize::try_from(id - 1).unwrap_or(0) % opts.validators,
        });
        accounts.push(account);
    }
    for user in 1..=opts.users {
        accounts.push(make_account(dir, format!("user-{user}"), ACCOUNT_BALANCE)?);
    }
    let mut provers = Vec::with_capacity(opts.provers);
    for index in 0..opts.provers {
        let key = format!("prover-{}", index + 1);
        accounts.push(make_account(dir, key.clone(), ACCOUNT_BALANCE)?);
        let metrics_port = prover_metrics_port(opts.base_port, index)
            .ok_or_else(|| invalid("--base-port", opts.base_port, "prover port out of range"))?;
        // Its own node first, then the others in order.
        let nodes = (0..opts.validators)
            .map(|i| (index + i) % opts.validators)
            .collect();
        provers.push(ProverManifest {
            index,
            key,
            dir: PathBuf::from(format!("prover{index}")),
            metrics_port,
            nodes,
        });
    }
    let aggregator = if opts.aggregator {
        accounts.push(make_account(dir, AGGREGATOR_KEY.into(), ACCOUNT_BALANCE)?);
        let port = |offset: u32| {
            u16::try_from(u32::from(opts.base_port) + offset).map_err(|_| {
                invalid(
                    "--base-port",
                    opts.base_port,
                    "aggregator port out of range",
                )
            })
        };
        Some(AggregatorManifest {
            key: AGGREGATOR_KEY.into(),
            dir: PathBuf::from("aggregator"),
            srs: PathBuf::from("aggregator/aggregation.srs"),
            // Offsets 6 and 7 of node 0's block of ten ports are otherwise unused.
            listen_port: port(6)?,
            metrics_port: port(7)?,
            max_proofs: AGGREGATOR_MAX_PROOFS,
            max_wait_ms: crate::manifest::default_aggregator_max_wait_ms(),
        })
    } else {
        None
    };
    let keys: Vec<KeyManifest> = accounts.into_iter().map(|a| a.manifest).collect();

    // Reference-circuit keys: the demo rollups' verifying key.
    let (proving, verifying_key) = if opts.provers > 0 {
        let prover = prover.ok_or(TestnetError::BinaryMissing {
            name: crate::binaries::PROVER,
            searched: "(not given)".into(),
            hint: "build it with `make build` or set SEQNET_BIN_DIR",
        })?;
        let keys_dir = PathBuf::from("prover-keys");
        reference_keys(prover, opts.circuit_size, &dir.join(&keys_dir))?;
        let vk_path = dir.join(&keys_dir).join("verifying_key.bin");
        let vk = std::fs::read(&vk_path).map_err(|e| TestnetError::io(&vk_path, e))?;
        for p in &provers {
            std::fs::create_dir_all(dir.join(&p.dir)).map_err(|e| TestnetError::io(&p.dir, e))?;
        }
        (
            Some(ProvingManifest {
                keys_dir,
                circuit_size: opts.circuit_size,
                stake: opts.prover_stake,
                proof_window: opts.proof_window,
                span_blocks: opts.span_blocks,
                prover_delay_ms: opts.prover_delay_ms,
            }),
            hex::encode(vk),
        )
    } else {
        (None, String::new())
    };

    // The aggregator's development SRS; its verifier part goes in genesis.
    let aggregation_srs = match (&aggregator, prover) {
        (Some(agg), Some(prover)) => Some(development_srs(
            prover,
            &dir.join(&agg.srs),
            agg.max_proofs,
        )?),
        _ => None,
    };

    // 3. One genesis for every node.
    let app_state = json!({
        "params": {
            "max_tx_bytes": fees.max_tx_bytes,
            "max_actions_per_tx": 64,
            "base_fee": fees.base_fee,
            "fee_per_byte": fees.fee_per_byte,
            "rollup_block_share_bps": 5000,
            "max_inclusion_window": 1000,
            "max_proof_window": 1000,
            "register_rollup_fee": 1000,
            "epoch_length": opts.epoch_length,
            "downtime_window": opts.downtime_window,
            "downtime_max_missed": opts.downtime_window / 2,
            "validator_jail_period": opts.downtime_window,
        },
        "accounts": keys.iter().map(|k| json!({"address": k.address, "balance": k.balance})).collect::<Vec<_>>(),
        "rollups": rollups.iter().map(|r| {
            let owner = keys.iter().find(|k| k.name == r.owner_key).map(|k| k.address.clone()).unwrap_or_default();
            json!({
                "id": r.id,
                "name": r.name,
                "owner": owner,
                "proof_window": opts.proof_window,
                "inclusion_window": 10,
                "verifying_key": verifying_key,
                "span_blocks": opts.span_blocks,
            })
        }).collect::<Vec<_>>(),
    });
    let mut app_state = app_state;
    // With provers, proven finality trails ordering by a span plus a
    // proving time; a missed deadline adds a window. Hold ordering only
    // beyond that (docs/provers.md, "Sizing").
    let max_unproven = opts.max_unproven_blocks.or((opts.provers > 0).then_some(
        opts.span_blocks
            .saturating_add(opts.proof_window.saturating_mul(2))
            .max(1),
    ));
    if let (Some(max), Some(params)) = (
        max_unproven,
        app_state.get_mut("params").and_then(Value::as_object_mut),
    ) {
        params.insert("max_unproven_blocks".into(), json!(max));
    }
    if let (Some(srs), Some(params)) = (
        aggregation_srs,
        app_state.get_mut("params").and_then(Value::as_object_mut),
    ) {
        params.insert("aggregation_srs".into(), json!(srs));
    }
    let genesis_path = dir
        .join(&nodes[0].cometbft_home)
        .join("config/genesis.json");
    let mut genesis = read_json(&genesis_path)?;
    {
        let obj = genesis
            .as_object_mut()
            .ok_or_else(|| TestnetError::parse(&genesis_path, "not a JSON object"))?;
        obj.insert("chain_id".into(), json!(opts.chain_id));
        obj.insert("initial_height".into(), json!("1"));
        obj.insert("validators".into(), Value::Array(validators));
        obj.insert("app_hash".into(), json!(""));
        obj.insert("app_state".into(), app_state);
        obj.insert(
            "consensus_params".into(),
            json!({
                "block": { "max_bytes": "4194304", "max_gas": "-1" },
                "evidence": {
                    "max_age_num_blocks": "100000",
                    "max_age_duration": "172800000000000",
                    "max_bytes": "1048576"
                },
                "validator": { "pub_key_types": ["ed25519"] },
                "version": { "app": "0" },
                "abci": {
                    "vote_extensions_enable_height": opts.vote_extensions_enable_height.to_string()
                }
            }),
        );
    }
    for node in &nodes {
        write_json(
            &dir.join(&node.cometbft_home).join("config/genesis.json"),
            &genesis,
        )?;
    }

    // 4. config.toml and sequencer.toml per node.
    for node in &nodes {
        patch_cometbft_config(dir, node, &peers_of(&nodes, node), opts)?;
        write_sequencer_config(dir, node, opts)?;
    }

    let manifest = Manifest {
        chain_id: opts.chain_id.clone(),
        base_port: opts.base_port,
        nodes,
        keys,
        rollups,
        fees,
        provers,
        proving,
        aggregator,
        netns: None,
    };
    manifest.save(dir)?;
    tracing::info!(manifest = %Manifest::path(dir).display(), "testnet generated");
    Ok(manifest)
}

/// Key name of the aggregator account.
pub const AGGREGATOR_KEY: &str = "aggregator";
/// Largest aggregate a testnet's aggregator builds (and its SRS supports).
pub const AGGREGATOR_MAX_PROOFS: usize = 8;

/// Writes a seeded DEVELOPMENT aggregation SRS for `max_proofs` to `out`
/// (`seqnet-prover srs generate-dev`) and returns its verifier part, hex
/// (`seqnet-prover srs verifier-key`), for genesis `aggregation_srs`.
fn development_srs(prover: &Path, out: &Path, max_proofs: usize) -> Result<String> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| TestnetError::io(parent, e))?;
    }
    run_checked(
        Command::new(prover)
            .args(["srs", "generate-dev", "--max-proofs"])
            .arg(max_proofs.to_string())
            .args(["--seed", "1", "--out"])
            .arg(out),
    )?;
    let hex = run_checked(
        Command::new(prover)
            .args(["srs", "verifier-key", "--srs"])
            .arg(out),
    )?;
    Ok(String::from_utf8_lossy(&hex).trim().to_string())
}

/// Prometheus port of prover `index`: `base + 10 * index + 5` (offset 5 of
/// a node's block of ten ports is otherwise unused).
pub fn prover_metrics_port(base: u16, index: usize) -> Option<u16> {
    let port = u32::from(base) + 10 * u32::try_from(index).ok()? + 5;
    u16::try_from(port).ok()
}

fn set(table: &mut toml::Table, section: Option<&str>, key: &str, value: impl Into<toml::Value>) {
    let table = match section {
        None => table,
        Some(section) => {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            match entry.as_table_mut() {
                Some(t) => t,
                None => return,
            }
        }
    };
    table.insert(key.to_string(), value.into());
}

/// `id@host:p2p` of every node but `node`, comma-separated.
fn peers_of(nodes: &[NodeManifest], node: &NodeManifest) -> String {
    let peers: Vec<String> = nodes
        .iter()
        .filter(|other| other.index != node.index)
        .map(|other| format!("{}@{}", other.node_id, other.p2p_addr()))
        .collect();
    peers.join(",")
}

/// The address settings of a node's `config.toml`: its ABCI app, RPC and
/// p2p listeners and its peers.
fn set_cometbft_addresses(config: &mut toml::Table, node: &NodeManifest, peers: &str) {
    set(
        config,
        None,
        "proxy_app",
        format!("tcp://{}", node.abci_addr()),
    );
    set(
        config,
        Some("rpc"),
        "laddr",
        format!("tcp://{}", node.rpc_addr()),
    );
    set(
        config,
        Some("p2p"),
        "laddr",
        format!("tcp://{}", node.p2p_addr()),
    );
    set(config, Some("p2p"), "persistent_peers", peers);
}

fn read_toml(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| TestnetError::io(path, e))?;
    text.parse().map_err(|e| TestnetError::parse(path, e))
}

fn write_toml(path: &Path, table: &toml::Table) -> Result<()> {
    let text = toml::to_string(table).map_err(|e| TestnetError::parse(path, e))?;
    std::fs::write(path, text).map_err(|e| TestnetError::io(path, e))
}

/// Moves the nodes of the (stopped) testnet in `dir` onto loopback
/// (`netns = None`) or each into its own network namespace: `netns` in
/// `testnet.json` and the addresses in their `config.toml` and
/// `sequencer.toml`. Does nothing when the testnet already has that layout.
pub fn set_layout(dir: &Path, netns: Option<NetnsLayout>) -> Result<Manifest> {
    let mut manifest = Manifest::load(dir)?;
    if manifest.netns == netns {
        return Ok(manifest);
    }
    manifest
        .set_netns(netns)
        .map_err(|reason| invalid("netns", manifest.nodes.len(), reason))?;
    for node in &manifest.nodes {
        let config = dir.join(&node.cometbft_home).join("config/config.toml");
        let mut table = read_toml(&config)?;
        set_cometbft_addresses(&mut table, node, &peers_of(&manifest.nodes, node));
        write_toml(&config, &table)?;
        // Peers it learnt at the old addresses.
        let _ = std::fs::remove_file(dir.join(&node.cometbft_home).join("config/addrbook.json"));
        let path = dir.join(&node.sequencer_config);
        let mut table = read_toml(&path)?;
        set_sequencer_addresses(&mut table, node);
        write_toml(&path, &table)?;
    }
    manifest.save(dir)?;
    Ok(manifest)
}

/// Points a `sequencer.toml` at `node`'s own addresses: its ABCI, gRPC and
/// metrics listeners and its CometBFT's RPC.
fn set_sequencer_addresses(table: &mut toml::Table, node: &NodeManifest) {
    let p = node.ports;
    let host = &node.host;
    for (section, key, value) in [
        ("abci", "listen", format!("{host}:{}", p.abci)),
        ("grpc", "listen", format!("{host}:{}", p.grpc)),
        ("metrics", "listen", format!("{host}:{}", p.metrics)),
        ("cometbft", "rpc", format!("http://{host}:{}", p.rpc)),
    ] {
        set(table, Some(section), key, value);
    }
}

/// Rewrites the node's `config.toml` for the testnet: addresses, peers,
/// timeouts.
fn patch_cometbft_config(
    dir: &Path,
    node: &NodeManifest,
    peers: &str,
    opts: &InitOptions,
) -> Result<()> {
    let path = dir.join(&node.cometbft_home).join("config/config.toml");
    let mut config = read_toml(&path)?;
    set(&mut config, None, "moniker", node.moniker.clone());
    set_cometbft_addresses(&mut config, node, peers);
    set(
        &mut config,
        None,
        "log_level",
        opts.cometbft_log_level.clone(),
    );
    set(&mut config, Some("rpc"), "pprof_laddr", "");
    set(&mut config, Some("rpc"), "grpc_laddr", "");
    set(&mut config, Some("p2p"), "external_address", "");
    set(&mut config, Some("p2p"), "addr_book_strict", false);
    set(&mut config, Some("p2p"), "allow_duplicate_ip", true);
    set(&mut config, Some("p2p"), "flush_throttle_timeout", "10ms");
    set(
        &mut config,
        Some("consensus"),
        "timeout_commit",
        opts.timeout_commit.clone(),
    );
    set(
        &mut config,
        Some("consensus"),
        "timeout_propose",
        opts.timeout_propose.clone(),
    );
    set(&mut config, Some("consensus"), "create_empty_blocks", true);
    set(
        &mut config,
        Some("consensus"),
        "create_empty_blocks_interval",
        "0s",
    );
    set(&mut config, Some("instrumentation"), "prometheus", false);
    write_toml(&path, &config)
}

/// Writes `node{i}/sequencer.toml` (format: docs/configuration.md).
fn write_sequencer_config(dir: &Path, node: &NodeManifest, opts: &InitOptions) -> Result<()> {
    let p = node.ports;
    let text = format!(
        r#"# seqnet-sequencer config for {moniker} (generated by seqnet-testnet init).
# Relative paths are resolved against this file's directory.

[abci]
listen = "{host}:{abci}"

[grpc]
listen = "{host}:{grpc}"

[metrics]
listen = "{host}:{metrics}"

[cometbft]
rpc = "http://{host}:{rpc}"

[storage]
path = "data"
# A snapshot of the state every {snapshots} blocks, for nodes that join by
# state sync (`seqnet-testnet join --state-sync`).
snapshot_interval = {snapshots}

[log]
filter = {filter}
format = "text"
"#,
        moniker = node.moniker,
        host = node.host,
        abci = p.abci,
        grpc = p.grpc,
        metrics = p.metrics,
        rpc = p.rpc,
        filter = toml::Value::String(opts.sequencer_log_filter.clone()),
        snapshots = SNAPSHOT_INTERVAL,
    );
    let path = dir.join(&node.sequencer_config);
    std::fs::write(&path, text).map_err(|e| TestnetError::io(path, e))
}

/// Blocks between the state snapshots every testnet node takes (for nodes
/// that join by state sync): about 10 s of a local network.
pub const SNAPSHOT_INTERVAL: u64 = 10;

/// Where a node joining by state sync gets its trust: CometBFT RPC servers
/// to fetch light blocks from (two or more) and a header it trusts.
#[derive(Clone, Debug)]
pub struct StateSyncTrust {
    pub rpc_servers: Vec<String>,
    pub height: u64,
    /// The header's hash, hex.
    pub hash: String,
}

/// Adds a node that is not a validator to the testnet in `dir` (process
/// mode, on loopback or in network namespaces):
/// its CometBFT home (node 0's config and genesis, its own keys, addresses
/// and ports, every other node as a peer; with `state_sync`, CometBFT's
/// state sync from the network's snapshots), its `sequencer.toml` (node
/// 0's with its own addresses) and its entry in `testnet.json`. Returns it.
pub fn add_node(
    dir: &Path,
    cometbft: &Path,
    state_sync: Option<&StateSyncTrust>,
) -> Result<NodeManifest> {
    let mut manifest = Manifest::load(dir)?;
    let source = manifest
        .nodes
        .first()
        .cloned()
        .ok_or(TestnetError::NoSuchNode { node: 0, count: 0 })?;
    let index = manifest.nodes.len();
    // Loopback, or its own network namespace like the others.
    let host = match &manifest.netns {
        Some(layout) => layout
            .node_ip(index)
            .ok_or_else(|| invalid("node index", index, "no address left in the testnet's /24"))?
            .to_string(),
        None => LOOPBACK.to_string(),
    };
    let node_dir = PathBuf::from(format!("node{index}"));
    if dir.join(&node_dir).exists() {
        return Err(TestnetError::DirExists(dir.join(&node_dir)));
    }
    let home_rel = node_dir.join("cometbft");
    let home = dir.join(&home_rel);
    cometbft_init(cometbft, &home)?;
    let source_home = dir.join(&source.cometbft_home);
    let genesis = source_home.join("config/genesis.json");
    std::fs::copy(&genesis, home.join("config/genesis.json"))
        .map_err(|e| TestnetError::io(&genesis, e))?;
    let pv_path = home.join("config/priv_validator_key.json");
    let address = str_at(&read_json(&pv_path)?, "/address", &pv_path)?.to_string();
    let node = NodeManifest {
        index,
        moniker: format!("node{index}"),
        node_id: node_id_from_key_file(&home.join("config/node_key.json"))?,
        validator_address: address,
        cometbft_home: home_rel,
        sequencer_config: node_dir.join("sequencer.toml"),
        dir: node_dir,
        ports: Ports::for_node(manifest.base_port, index)
            .ok_or_else(|| invalid("node index", index, "port out of range"))?,
        host,
    };

    let mut config = read_toml(&source_home.join("config/config.toml"))?;
    set(&mut config, None, "moniker", node.moniker.clone());
    let mut nodes = manifest.nodes.clone();
    nodes.push(node.clone());
    set_cometbft_addresses(&mut config, &node, &peers_of(&nodes, &node));
    if let Some(trust) = state_sync {
        set(&mut config, Some("statesync"), "enable", true);
        set(
            &mut config,
            Some("statesync"),
            "rpc_servers",
            trust.rpc_servers.join(","),
        );
        let height = i64::try_from(trust.height)
            .map_err(|_| invalid("trust height", trust.height, "too large"))?;
        set(&mut config, Some("statesync"), "trust_height", height);
        set(
            &mut config,
            Some("statesync"),
            "trust_hash",
            trust.hash.clone(),
        );
        set(&mut config, Some("statesync"), "trust_period", "168h0m0s");
        // CometBFT's least: a local network answers at once.
        set(&mut config, Some("statesync"), "discovery_time", "5s");
    }
    write_toml(&home.join("config/config.toml"), &config)?;

    let mut sequencer = read_toml(&dir.join(&source.sequencer_config))?;
    set_sequencer_addresses(&mut sequencer, &node);
    write_toml(&dir.join(&node.sequencer_config), &sequencer)?;

    manifest.nodes.push(node.clone());
    manifest.save(dir)?;
    tracing::info!(
        node = index,
        state_sync = state_sync.is_some(),
        "node added"
    );
    Ok(node)
}

/// Sets the `[fault] censor` rules of a node's `sequencer.toml`
/// (`rollup:<id>`, `signer:<64 hex>`; empty clears them). The node's
/// proposals then leave out matching transactions; it takes effect when the
/// node (re)starts.
pub fn set_fault_censor(dir: &Path, node: &NodeManifest, rules: &[String]) -> Result<()> {
    for rule in rules {
        let ok = match rule.split_once(':') {
            Some(("rollup", id)) => id.parse::<u64>().is_ok_and(|id| id > 0),
            Some(("signer", key)) => seqnet_proto::Address::from_hex(key).is_ok(),
            _ => false,
        };
        if !ok {
            return Err(invalid(
                "--censor",
                rule,
                "want rollup:<id> or signer:<64 hex public key>",
            ));
        }
    }
    let path = dir.join(&node.sequencer_config);
    let mut config = read_toml(&path)?;
    let values: Vec<toml::Value> = rules.iter().cloned().map(toml::Value::String).collect();
    set(&mut config, Some("fault"), "censor", values);
    write_toml(&path, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = InitOptions::default();
        ok.validate().expect("defaults are valid");
        let bad = InitOptions {
            timeout_commit: "fast".into(),
            ..InitOptions::default()
        };
        assert!(bad
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("--timeout-commit"));
        let bad = InitOptions {
            base_port: 65530,
            ..InitOptions::default()
        };
        assert!(bad
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("--base-port"));
        let bad = InitOptions {
            chain_id: "no spaces".into(),
            ..InitOptions::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn censor_rules_are_checked_and_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = NodeManifest {
            index: 0,
            moniker: "node0".into(),
            node_id: String::new(),
            validator_address: String::new(),
            cometbft_home: "node0/cometbft".into(),
            dir: "node0".into(),
            sequencer_config: "sequencer.toml".into(),
            ports: Ports::for_node(27000, 0).expect("ports"),
            host: LOOPBACK.into(),
        };
        write_sequencer_config(dir.path(), &node, &InitOptions::default()).expect("write");
        let bad = set_fault_censor(dir.path(), &node, &["rollup:x".into()]);
        assert!(bad.expect_err("bad rule").to_string().contains("rollup:x"));
        set_fault_censor(dir.path(), &node, &["rollup:2".into()]).expect("set");
        let text = std::fs::read_to_string(dir.path().join("sequencer.toml")).expect("read");
        let table: toml::Table = text.parse().expect("toml");
        assert_eq!(table["fault"]["censor"][0].as_str(), Some("rollup:2"));
        assert_eq!(table["abci"]["listen"].as_str(), Some("127.0.0.1:27002"));
    }

    #[test]
    fn node_id_matches_cometbft_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node_key.json");
        // From `cometbft init`; `cometbft show-node-id` printed the id below.
        std::fs::write(
            &path,
            r#"{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"m68O/ErlLZWXCnzrrN+8QC/Maa45vSH+Ps/5h/eMeleStSXMWUFktv2qkqgHPu5qsIknQqQMX25JKMeJMp9Vug=="}}"#,
        )
        .expect("write");
        assert_eq!(
            node_id_from_key_file(&path).expect("id"),
            "c9c29131dad19195a2cffebff2594cfc649d521f"
        );
    }
}
