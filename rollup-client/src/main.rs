//! `seqnet`: the command line of seqnet for rollups and their operators.
//!
//! Human-readable output by default, one JSON object per line with `--json`.
//! Errors go to stderr and exit with status 1 (2 for bad usage).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use seqnet_proto::tx::RollupSettings;
use seqnet_proto::{pb, Address, Transaction};
use seqnet_rollup_client::{
    keys, verify_batch_for, ClientError, RetryPolicy, RollupClient, TxSigner, VerifiedBatch,
};
use serde_json::{json, Value};
use tokio_stream::StreamExt;

#[derive(Parser)]
#[command(name = "seqnet", version, about = "Order rollup data through seqnet")]
struct Cli {
    /// Node gRPC endpoint; repeat (or separate with commas) for fail-over.
    #[arg(
        long = "node",
        env = "SEQNET_NODE",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    nodes: Vec<String>,
    /// Chain id for signing (default: asked from the node).
    #[arg(long, env = "SEQNET_CHAIN_ID", global = true)]
    chain_id: Option<String>,
    /// Tries per request before giving up on transient failures.
    #[arg(long, default_value_t = 6, global = true)]
    attempts: u32,
    /// Machine-readable output (one JSON object per line).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// A light client's trust root and where it reads headers and proofs.
#[derive(clap::Args, Clone, Debug)]
struct TrustArgs {
    /// Height of the header trusted without checking (with --trust-hash).
    #[arg(long, env = "SEQNET_TRUST_HEIGHT", requires = "trust_hash")]
    trust_height: Option<u64>,
    /// Hash of that header (hex, as CometBFT prints it).
    #[arg(long, env = "SEQNET_TRUST_HASH", requires = "trust_height")]
    trust_hash: Option<String>,
    /// CometBFT RPC addresses (host:port) for headers and proofs; repeat or
    /// separate with commas for fail-over.
    #[arg(
        long = "rpc",
        env = "SEQNET_RPC",
        value_delimiter = ',',
        default_value = "127.0.0.1:26657"
    )]
    rpc: Vec<String>,
    /// Where the light client keeps its trusted header between runs.
    #[arg(long, env = "SEQNET_LIGHT_STATE")]
    light_state: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Key files.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Chain id, height, app hash and rollups of the node.
    Status,
    /// Balance and nonce of an address (or of a key file's address). With a
    /// trust root (`--trust-height`, `--trust-hash`), the account (or its
    /// absence) is read from the nodes' CometBFT RPC with its proof and shown
    /// only after it checked against a header the light client verified.
    Account {
        /// 64-hex address, or a key file.
        who: String,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Send tokens.
    Transfer {
        #[arg(long)]
        key: PathBuf,
        /// 64-hex address, or a key file.
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        send: SendOptions,
    },
    /// Rollups.
    #[command(subcommand)]
    Rollup(RollupCommand),
    /// Submit rollup data; prints the transaction hash.
    Submit {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        rollup: u64,
        #[command(flatten)]
        payload: Payload,
        #[command(flatten)]
        send: SendOptions,
    },
    /// Sign rollup data and ask the chain to force its inclusion within the
    /// rollup's inclusion window (the same key pays both).
    ForceInclude {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        rollup: u64,
        #[command(flatten)]
        payload: Payload,
    },
    /// Status of the forced-inclusion request for an inner transaction hash
    /// (with a trust root: read with its proof and verified, or proven never
    /// requested).
    Forced {
        tx_hash: String,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Batches with their proofs.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Provers: stake, leave, unjail, status.
    #[command(subcommand)]
    Prover(ProverCommand),
    /// Validators: stake, leave, unjail, list.
    #[command(subcommand)]
    Validator(ValidatorCommand),
    /// Ordered (soft) and proven (hard) finality, and whether HEIGHT is proven.
    Finality {
        /// A height to ask about.
        height: Option<u64>,
        /// Wait until HEIGHT is proven (up to this many seconds).
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "60", requires = "height")]
        wait: Option<u64>,
        /// With a trust root: also this rollup's proven height and state root.
        #[arg(long, requires = "trust_height")]
        rollup: Option<u64>,
        /// With a trust root, the ordered and proven heights (and the
        /// rollup's) are read with their proofs and verified.
        #[command(flatten)]
        trust: TrustArgs,
    },
}

#[derive(Subcommand)]
enum ProverCommand {
    /// Lock stake from the key's balance as prover stake (registers the key
    /// as a prover, or adds to its stake); it joins the active set at the
    /// next epoch boundary.
    Register {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        stake: u64,
        #[command(flatten)]
        send: SendOptions,
    },
    /// Leave the prover set; the stake returns after the unbonding period.
    Unbond {
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        send: SendOptions,
    },
    /// End a jail term (allowed once the jail period is over).
    Unjail {
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        send: SendOptions,
    },
    /// A prover's stake, status, totals and open jobs.
    Status {
        /// 64-hex address, or a key file (default: --key).
        who: Option<String>,
        /// The prover's key file, when no address is given.
        #[arg(long, env = "SEQNET_PROVER_KEY")]
        key: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ValidatorCommand {
    /// Lock stake from the key's balance (the operator's) as validator
    /// stake for a consensus key (registers the validator, or adds to its
    /// stake); the consensus key signs for the operator. It joins the set
    /// at the next epoch boundary.
    Register {
        /// The operator's key file (pays the stake and the fee).
        #[arg(long)]
        key: PathBuf,
        /// CometBFT's priv_validator_key.json of the validator's node.
        #[arg(long)]
        consensus_key: PathBuf,
        #[arg(long)]
        stake: u64,
        #[command(flatten)]
        send: SendOptions,
    },
    /// Leave the validator set at the end of the block; the stake returns
    /// after the unbonding period.
    Unbond {
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        send: SendOptions,
    },
    /// End a downtime jail term (allowed once validator_jail_period passed;
    /// never after double-signing).
    Unjail {
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        send: SendOptions,
    },
    /// The set that signed the last height, and every validator record
    /// (read from a node's CometBFT RPC, ABCI queries `/validators` and
    /// `/validator_registry`).
    List {
        /// CometBFT RPC address (host:port).
        #[arg(long, env = "SEQNET_RPC", default_value = "127.0.0.1:26657")]
        rpc: String,
    },
}

#[derive(clap::Args)]
struct SendOptions {
    /// Fee to offer (default: the least the chain's default fees require).
    #[arg(long)]
    fee: Option<u64>,
    /// Wait until the transaction is committed (up to this many seconds).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "30")]
    wait: Option<u64>,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Payload {
    /// The data, as text.
    #[arg(long)]
    data: Option<String>,
    /// The data, from a file.
    #[arg(long)]
    file: Option<PathBuf>,
}

impl Payload {
    fn bytes(&self) -> anyhow::Result<Vec<u8>> {
        let data = match (&self.data, &self.file) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(path)) => std::fs::read(path)
                .with_context(|| format!("cannot read data file {}", path.display()))?,
            (None, None) => bail!("give --data or --file"),
        };
        if data.is_empty() {
            bail!("the data is empty (the chain refuses empty rollup data)");
        }
        Ok(data)
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key file; prints its address.
    New {
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print a key file's address.
    Show { file: PathBuf },
}

#[derive(Subcommand)]
enum RollupCommand {
    /// Register a rollup owned by the key.
    Register {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        name: String,
        /// Blocks a prover has to prove a span once it is assigned.
        #[arg(long, default_value_t = 20)]
        proof_window: u64,
        /// Blocks within which a forced transaction must be included.
        #[arg(long, default_value_t = 10)]
        inclusion_window: u64,
        /// Blocks per proof job (span): larger spans mean fewer proofs and a
        /// longer proven-finality lag (0: the chain's default_span_blocks).
        #[arg(long, default_value_t = 0)]
        span_blocks: u64,
        /// Groth16 verifying key file: raw bytes, or hex text (none: the
        /// rollup's batches are not proven).
        #[arg(long)]
        verifying_key: Option<PathBuf>,
        #[command(flatten)]
        send: SendOptions,
    },
    /// A rollup's parameters and statistics.
    Show { id: u64 },
}

#[derive(Subcommand)]
enum BatchCommand {
    /// One batch, with its proof checked (exit status 1 if it fails):
    /// against the root the node sends, or with a trust root against the
    /// root a verified header commits to.
    Get {
        #[arg(long)]
        rollup: u64,
        #[arg(long)]
        height: u64,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Batches from a height on, following new blocks, each checked; one
    /// line per batch.
    Stream {
        #[arg(long)]
        rollup: u64,
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Leave out heights where the rollup has no data.
        #[arg(long)]
        skip_empty: bool,
        /// Deliver a height only once it is proven; batches with a proof
        /// job come with their validity proof, checked here against the
        /// rollup's verifying key, and show the new state root (with a
        /// trust root: once the verified state's proven height reaches it).
        #[arg(long)]
        proven: bool,
        /// With a trust root, every batch (empty ones too) is checked
        /// against the root a verified header commits to.
        #[command(flatten)]
        trust: TrustArgs,
    },
}

const VERIFIED: &str = "proof: verified (inclusion and completeness) against the root this node sent; with --trust-height/--trust-hash, against the root a verified header commits to";

/// A 64-hex address, or the address of a key file.
fn parse_address(text: &str) -> anyhow::Result<Address> {
    let path = Path::new(text);
    if path.is_file() {
        return Ok(keys::address(&keys::load(path)?));
    }
    Address::from_hex(text.trim()).map_err(|e| {
        if text.contains(std::path::MAIN_SEPARATOR) || text.ends_with(".json") {
            anyhow::anyhow!("key file {text} does not exist (and {e})")
        } else {
            anyhow::anyhow!("{e}; give a 64-hex address or a key file")
        }
    })
}

fn parse_hash(text: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(text.trim().trim_start_matches("0x"))
        .ok()
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not a 32-byte hex hash"))
}

/// A verifying key file: hex text if it is all hex, raw bytes otherwise.
fn read_verifying_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read verifying key file {}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return hex::decode(text)
                .with_context(|| format!("verifying key file {}", path.display()));
        }
    }
    Ok(bytes)
}

/// Text if printable UTF-8, hex otherwise.
fn show_data(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => format!("0x{}", hex::encode(data)),
    }
}

fn batch_json(batch: &VerifiedBatch) -> Value {
    let items: Vec<Value> = batch
        .items
        .iter()
        .map(|i| {
            json!({
                "tx_hash": hex::encode(&i.tx_hash),
                "signer": hex::encode(&i.signer),
                "nonce": i.nonce,
                "action_index": i.action_index,
                "data": hex::encode(&i.data),
            })
        })
        .collect();
    json!({
        "rollup_id": batch.rollup_id,
        "height": batch.height,
        "items": items,
        "root": hex::encode(batch.root.node.digest),
        "verified": true,
    })
}

fn proof_json(batch: &VerifiedBatch) -> Value {
    match &batch.proof {
        Some(p) => json!({
            "span": [p.from_height, p.to_height],
            "span_commitment": hex::encode(p.span_commitment),
            "prev_state_root": hex::encode(p.prev_state_root),
            "new_state_root": hex::encode(p.new_state_root),
            "prover": hex::encode(&p.prover),
            "proven_at": p.proven_at,
            // By an aggregate: the chain verified it; checked here are the
            // commitment and the chain of state roots.
            "verified": !p.by_aggregate,
            "by_aggregate": p.by_aggregate,
        }),
        None => Value::Null,
    }
}

fn validator_status_name(status: i32) -> &'static str {
    match pb::ValidatorStatus::try_from(status) {
        Ok(pb::ValidatorStatus::Bonded) => "bonded",
        Ok(pb::ValidatorStatus::Unbonding) => "unbonding",
        Ok(pb::ValidatorStatus::Jailed) => "jailed",
        _ => "unknown",
    }
}

fn prover_status_name(status: i32) -> &'static str {
    match pb::ProverStatus::try_from(status) {
        Ok(pb::ProverStatus::Bonded) => "bonded",
        Ok(pb::ProverStatus::Unbonding) => "unbonding",
        Ok(pb::ProverStatus::Jailed) => "jailed",
        _ => "unknown",
    }
}

fn batch_bytes(batch: &VerifiedBatch) -> usize {
    batch.items.iter().map(|i| i.data.len()).sum()
}

/// A batch's summary line and one line per item, ending in a newline (the
/// caller adds what it verified).
fn batch_text(rollup: u64, height: u64, batch: &VerifiedBatch) -> String {
    let mut text = format!(
        "rollup {rollup} height {height}: {} items, {} bytes",
        batch.items.len(),
        batch_bytes(batch)
    );
    for item in &batch.items {
        text.push_str(&format!(
            "\n  {} nonce {} [{}]: {}",
            hex::encode(&item.tx_hash),
            item.nonce,
            item.action_index,
            show_data(&item.data)
        ));
    }
    text.push('\n');
    text
}

fn rollup_json(r: &pb::Rollup) -> Value {
    let stats = r.stats.unwrap_or_default();
    json!({
        "id": r.id,
        "name": r.name,
        "owner": hex::encode(&r.owner),
        "verifying_key": hex::encode(&r.verifying_key),
        "proof_window": r.proof_window,
        "inclusion_window": r.inclusion_window,
        "registered_height": r.registered_height,
        "items": stats.items,
        "bytes": stats.bytes,
        "last_height": stats.last_height,
    })
}

fn rollup_line(r: &pb::Rollup) -> String {
    let stats = r.stats.unwrap_or_default();
    let proven = if r.verifying_key.is_empty() {
        "not proven".to_string()
    } else {
        format!("proof window {}", r.proof_window)
    };
    format!(
        "rollup {} {:?}: owner {}, {proven}, inclusion window {}, registered at {}, {} items, {} bytes, last batch at {}",
        r.id,
        r.name,
        hex::encode(&r.owner),
        r.inclusion_window,
        r.registered_height,
        stats.items,
        stats.bytes,
        stats.last_height
    )
}

struct App {
    cli: Cli,
    client: RollupClient,
}

impl App {
    fn print(&self, value: Value, human: impl FnOnce() -> String) {
        if self.cli.json {
            println!("{value}");
        } else {
            println!("{}", human());
        }
    }

    async fn signer(&mut self, key: &Path) -> anyhow::Result<TxSigner> {
        let key = keys::load_any(key)?;
        // The chain id (unless given) and the fee parameters come from the node.
        let status = self
            .client
            .status()
            .await
            .context("asking the node for the chain id and fees")?;
        let chain_id = self.cli.chain_id.clone().unwrap_or(status.chain_id);
        let mut signer = TxSigner::new(key, chain_id);
        if let Some(params) = &status.params {
            signer.fees = params.into();
        }
        signer
            .sync_nonce(&mut self.client)
            .await
            .context("reading the account's nonce")?;
        Ok(signer)
    }

    /// Submits `tx`, waits if asked, and prints its hash.
    async fn send(&mut self, tx: &Transaction, options: &SendOptions) -> anyhow::Result<()> {
        let hash = self.client.submit(tx).await?;
        let mut committed = false;
        if let Some(seconds) = options.wait {
            let signer = tx.signer;
            self.client
                .wait_for_nonce(signer, tx.body.nonce + 1, Duration::from_secs(seconds))
                .await?;
            committed = true;
        }
        self.print(
            json!({"tx_hash": hex::encode(hash), "nonce": tx.body.nonce, "fee": tx.body.fee, "committed": committed}),
            || {
                if committed {
                    format!("{} (committed)", hex::encode(hash))
                } else {
                    hex::encode(hash)
                }
            },
        );
        Ok(())
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        // Taken out so the arms can borrow `self` mutably.
        let command = std::mem::replace(&mut self.cli.command, Command::Status);
        match command {
            Command::Keys(KeysCommand::New { out, force }) => {
                let key = keys::generate();
                keys::save(&out, &key, force)?;
                let address = keys::address(&key);
                self.print(
                    json!({"address": address.to_string(), "file": out.display().to_string()}),
                    || address.to_string(),
                );
            }
            Command::Keys(KeysCommand::Show { file }) => {
                let address = keys::address(&keys::load(&file)?);
                self.print(json!({"address": address.to_string()}), || {
                    address.to_string()
                });
            }
            Command::Status => {
                let s = self.client.status().await?;
                let rollups: Vec<Value> = s.rollups.iter().map(rollup_json).collect();
                self.print(
                    json!({"chain_id": s.chain_id, "height": s.height, "app_hash": hex::encode(&s.app_hash), "rollups": rollups, "node": self.client.endpoint()}),
                    || {
                        let mut text = format!(
                            "chain {} height {} app hash {} (from {})",
                            s.chain_id,
                            s.height,
                            hex::encode(&s.app_hash),
                            self.client.endpoint()
                        );
                        for r in &s.rollups {
                            text.push_str("\n  ");
                            text.push_str(&rollup_line(r));
                        }
                        text
                    },
                );
            }
            Command::Account { who, trust } if trust.trust_height.is_some() => {
                let address = parse_address(&who)?;
                let mut reads =
                    verified_state(&trust, self.cli.chain_id.clone(), &mut self.client).await?;
                let read = reads.account(&address).await?;
                let (balance, nonce) = read.value.as_ref().map_or((0, 0), |a| (a.balance, a.nonce));
                self.print(
                    json!({"address": address.to_string(), "exists": read.value.is_some(), "balance": balance, "nonce": nonce, "verified_header": read.header, "state_height": read.version, "signed_power_percent": read.signed_power_percent, "node": read.node, "refused": read.refused}),
                    || {
                        let what = match &read.value {
                            Some(a) => format!("{address} balance {} nonce {}", a.balance, a.nonce),
                            None => format!("{address} has no account"),
                        };
                        format!("{what}\n{}", verified_footer(&read))
                    },
                );
            }
            Command::Account { who, .. } => {
                let a = self.client.account(parse_address(&who)?).await?;
                self.print(
                    json!({"address": hex::encode(&a.address), "balance": a.balance, "nonce": a.nonce, "mempool_nonce": a.mempool_nonce}),
                    || {
                        format!(
                            "{} balance {} nonce {} (next with pending: {})",
                            hex::encode(&a.address),
                            a.balance,
                            a.nonce,
                            a.nonce.max(a.mempool_nonce)
                        )
                    },
                );
            }
            Command::Transfer {
                key,
                to,
                amount,
                send,
            } => {
                let to = parse_address(&to)?;
                let mut signer = self.signer(&key).await?;
                let tx = signer.transfer(to, amount, send.fee);
                self.send(&tx, &send).await?;
            }
            Command::Rollup(RollupCommand::Register {
                key,
                id,
                name,
                proof_window,
                inclusion_window,
                span_blocks,
                verifying_key,
                send,
            }) => {
                let verifying_key = match verifying_key {
                    Some(path) => read_verifying_key(&path)?,
                    None => vec![],
                };
                let mut signer = self.signer(&key).await?;
                let settings = RollupSettings {
                    verifying_key,
                    proof_window,
                    inclusion_window,
                    span_blocks,
                };
                let tx = signer.register_rollup(id, name, settings, send.fee);
                self.send(&tx, &send).await?;
            }
            Command::Rollup(RollupCommand::Show { id }) => {
                let r = self.client.rollup(id).await?;
                self.print(rollup_json(&r), || rollup_line(&r));
            }
            Command::Submit {
                key,
                rollup,
                payload,
                send,
            } => {
                let data = payload.bytes()?;
                let mut signer = self.signer(&key).await?;
                let tx = signer.rollup_data(rollup, data, send.fee);
                self.send(&tx, &send).await?;
            }
            Command::ForceInclude {
                key,
                rollup,
                payload,
            } => {
                let data = payload.bytes()?;
                let mut signer = self.signer(&key).await?;
                // The wrapper runs first (nonce n), the forced tx later (n + 1).
                let wrapper_nonce = signer.next_nonce;
                signer.next_nonce += 1;
                let inner = signer.rollup_data(rollup, data, None);
                signer.next_nonce = wrapper_nonce;
                let wrapper = signer.force_include(inner.clone(), None);
                self.client.force_include(&wrapper).await?;
                self.print(
                    json!({"request_tx": hex::encode(wrapper.hash()), "forced_tx": hex::encode(inner.hash())}),
                    || {
                        format!(
                            "request {} forces {}",
                            hex::encode(wrapper.hash()),
                            hex::encode(inner.hash())
                        )
                    },
                );
            }
            Command::Forced { tx_hash, trust } if trust.trust_height.is_some() => {
                let hash = parse_hash(&tx_hash)?;
                let mut reads =
                    verified_state(&trust, self.cli.chain_id.clone(), &mut self.client).await?;
                let read = reads.forced_request(&hash).await?;
                let status = read.value.as_ref().map(forced_status_line);
                self.print(
                    json!({"tx_hash": tx_hash, "requested": read.value.is_some(), "id": read.value.as_ref().map(|r| r.id), "status": read.value.as_ref().map(|r| r.status), "included_height": read.value.as_ref().map(|r| r.included_height), "verified_header": read.header, "state_height": read.version, "signed_power_percent": read.signed_power_percent, "node": read.node, "refused": read.refused}),
                    || {
                        let what = match (&read.value, &status) {
                            (Some(r), Some(status)) => format!("request {} (opened at {}): {status}", r.id, r.requested_height),
                            _ => format!("{tx_hash} was never requested for forced inclusion"),
                        };
                        format!("{what}\n{}", verified_footer(&read))
                    },
                );
            }
            Command::Forced { tx_hash, .. } => {
                let r = self.client.forced_request(parse_hash(&tx_hash)?).await?;
                let status = forced_status_line(&r);
                self.print(
                    json!({"id": r.id, "status": r.status, "requested_height": r.requested_height, "deadline": r.deadline, "included_height": r.included_height, "failure": r.failure}),
                    || format!("request {} (opened at {}): {status}", r.id, r.requested_height),
                );
            }
            Command::Batch(BatchCommand::Get {
                rollup,
                height,
                trust,
            }) if trust.trust_height.is_some() => {
                let mut reads =
                    verified_state(&trust, self.cli.chain_id.clone(), &mut self.client).await?;
                let read = reads.batch(rollup, height).await?;
                let mut value = batch_json(&read.value);
                value["verified_header"] = json!(read.header);
                value["signed_power_percent"] = json!(read.signed_power_percent);
                value["node"] = json!(read.node);
                value["refused"] = json!(read.refused);
                self.print(value, || {
                    batch_text(rollup, height, &read.value) + &verified_footer(&read)
                });
            }
            Command::Batch(BatchCommand::Get { rollup, height, .. }) => {
                let raw = self.client.raw_batch(rollup, height).await?;
                match verify_batch_for(&raw, rollup, height) {
                    Ok(batch) => self.print(batch_json(&batch), || {
                        batch_text(rollup, height, &batch) + VERIFIED
                    }),
                    Err(e) => {
                        self.print(
                            json!({"rollup_id": rollup, "height": height, "items": raw.items.len(), "verified": false, "error": e.to_string()}),
                            || format!("rollup {rollup} height {height}: {} items\nproof: FAILED: {e}", raw.items.len()),
                        );
                        bail!("the batch does not verify");
                    }
                }
            }
            Command::Batch(BatchCommand::Stream {
                rollup,
                from,
                skip_empty,
                proven,
                trust,
            }) if trust.trust_height.is_some() => {
                let mut reads =
                    verified_state(&trust, self.cli.chain_id.clone(), &mut self.client).await?;
                let json_out = self.cli.json;
                let show = |read: seqnet_rollup_client::verified::Verified<VerifiedBatch>| {
                    if skip_empty && read.value.items.is_empty() {
                        return true;
                    }
                    if json_out {
                        let mut value = batch_json(&read.value);
                        value["verified_header"] = json!(read.header);
                        value["node"] = json!(read.node);
                        value["refused"] = json!(read.refused);
                        println!("{value}");
                    } else {
                        println!(
                            "rollup {rollup} height {}: {} items, {} bytes; {}",
                            read.value.height,
                            read.value.items.len(),
                            batch_bytes(&read.value),
                            read.describe()
                        );
                        for refused in &read.refused {
                            println!("  not believed: {refused}");
                        }
                    }
                    true
                };
                if proven {
                    reads.follow_proven_batches(rollup, from, show).await?;
                } else {
                    reads.follow_batches(rollup, from, show).await?;
                }
            }
            Command::Batch(BatchCommand::Stream {
                rollup,
                from,
                skip_empty,
                proven,
                ..
            }) => {
                let mut stream = if proven {
                    self.client.stream_proven_batches(rollup, from, skip_empty)
                } else {
                    self.client.stream_batches(rollup, from, skip_empty)
                };
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(batch) => {
                            let mut value = batch_json(&batch);
                            if proven {
                                value["proven"] = json!(true);
                                value["validity_proof"] = proof_json(&batch);
                            }
                            self.print(value, || {
                                let mut line = format!(
                                    "rollup {} height {}: {} items, {} bytes; {VERIFIED}",
                                    batch.rollup_id,
                                    batch.height,
                                    batch.items.len(),
                                    batch_bytes(&batch)
                                );
                                match (&batch.proof, proven) {
                                    (Some(p), _) => line.push_str(&format!(
                                        "; PROVEN: span {}..={} {}, state root {} -> {} (prover {}, block {})",
                                        p.from_height,
                                        p.to_height,
                                        if p.by_aggregate {
                                            "by an aggregate (verified by the chain; span commitment and roots checked here)"
                                        } else {
                                            "validity proof verified"
                                        },
                                        hex::encode(p.prev_state_root),
                                        hex::encode(p.new_state_root),
                                        hex::encode(&p.prover),
                                        p.proven_at
                                    )),
                                    (None, true) => line.push_str("; PROVEN (no proof job at this height)"),
                                    (None, false) => {}
                                }
                                line
                            })
                        }
                        // Reported, then asked for again from the next node.
                        Err(ClientError::Verify(e)) => self.print(
                            json!({"rollup_id": rollup, "verified": false, "error": e.to_string()}),
                            || format!("proof: FAILED: {e} (asking again)"),
                        ),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Command::Prover(ProverCommand::Register { key, stake, send }) => {
                let mut signer = self.signer(&key).await?;
                let tx = signer.register_prover(stake, send.fee);
                self.send(&tx, &send).await?;
            }
            Command::Prover(ProverCommand::Unbond { key, send }) => {
                let mut signer = self.signer(&key).await?;
                let tx = signer.unbond(send.fee);
                self.send(&tx, &send).await?;
            }
            Command::Prover(ProverCommand::Unjail { key, send }) => {
                let mut signer = self.signer(&key).await?;
                let tx = signer.unjail(send.fee);
                self.send(&tx, &send).await?;
            }
            Command::Validator(ValidatorCommand::Register {
                key,
                consensus_key,
                stake,
                send,
            }) => {
                let consensus = keys::load_consensus(&consensus_key)?;
                let mut signer = self.signer(&key).await?;
                let tx = signer.register_validator(&consensus, stake, send.fee);
                self.send(&tx, &send).await?;
            }
            Command::Validator(ValidatorCommand::Unbond { key, send }) => {
                let mut signer = self.signer(&key).await?;
                let tx = signer.unbond_validator(send.fee);
                self.send(&tx, &send).await?;
            }
            Command::Validator(ValidatorCommand::Unjail { key, send }) => {
                let mut signer = self.signer(&key).await?;
                let tx = signer.unjail_validator(send.fee);
                self.send(&tx, &send).await?;
            }
            Command::Validator(ValidatorCommand::List { rpc }) => {
                let rpc = seqnet_rollup_client::cometbft::CometRpc::parse(&rpc)?;
                let set = <pb::ValidatorSet as prost::Message>::decode(
                    rpc.abci_query("/validators").await?.as_slice(),
                )?;
                let registry = <pb::ValidatorRegistry as prost::Message>::decode(
                    rpc.abci_query("/validator_registry").await?.as_slice(),
                )?;
                let powers: std::collections::BTreeMap<&[u8], i64> = set
                    .validators
                    .iter()
                    .map(|v| (v.address.as_slice(), v.power))
                    .collect();
                let rows: Vec<Value> = registry
                    .validators
                    .iter()
                    .map(|v| {
                        json!({
                            "operator": hex::encode(&v.operator),
                            "consensus_address": hex::encode_upper(&v.consensus_address),
                            "stake": v.stake,
                            "power": powers.get(v.consensus_address.as_slice()).copied().unwrap_or(0),
                            "status": validator_status_name(v.status),
                            "tombstoned": v.tombstoned,
                            "jailed_until": v.jailed_until,
                            "unbond_at": v.unbond_at,
                            "missed": v.missed_count,
                            "slashed": v.slashed,
                        })
                    })
                    .collect();
                let human = rows
                    .iter()
                    .map(|r| {
                        format!(
                            "{} power {:>4} stake {:>12} {:<9}{} missed {} slashed {}",
                            r["consensus_address"].as_str().unwrap_or_default(),
                            r["power"],
                            r["stake"],
                            r["status"].as_str().unwrap_or_default(),
                            if r["tombstoned"] == true {
                                " (tombstoned)"
                            } else {
                                ""
                            },
                            r["missed"],
                            r["slashed"],
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                self.print(
                    json!({"validators": rows, "in_set": set.validators.len()}),
                    || human,
                );
            }
            Command::Prover(ProverCommand::Status { who, key }) => {
                let address = match (who, key) {
                    (Some(who), _) => parse_address(&who)?,
                    (None, Some(key)) => keys::address(&keys::load(&key)?),
                    (None, None) => bail!(
                        "give the prover's address or key file (or --key / SEQNET_PROVER_KEY)"
                    ),
                };
                let info = self.client.prover(address).await?;
                let p = info.prover.clone().unwrap_or_default();
                let jobs: Vec<Value> = info
                    .assigned_jobs
                    .iter()
                    .map(|j| json!({"rollup_id": j.rollup_id, "from_height": j.from_height, "to_height": j.to_height, "status": job_status_name(j.status), "deadline": j.deadline, "reassignments": j.reassignments, "bounty": j.bounty}))
                    .collect();
                self.print(
                    json!({
                        "address": hex::encode(&p.address),
                        "stake": p.stake,
                        "status": prover_status_name(p.status),
                        "active": info.active,
                        "epoch": info.epoch,
                        "misses": p.misses,
                        "jailed_until": p.jailed_until,
                        "unbond_at": p.unbond_at,
                        "proven": p.proven,
                        "slashed": p.slashed,
                        "earned": p.earned,
                        "assigned_jobs": jobs,
                        "as_of_height": info.as_of_height,
                    }),
                    || {
                        let mut text = format!(
                            "prover {} {}{}: stake {}, {} in epoch {}, proven {}, missed {}, slashed {}, earned {} (as of height {})",
                            hex::encode(&p.address),
                            prover_status_name(p.status),
                            match pb::ProverStatus::try_from(p.status) {
                                Ok(pb::ProverStatus::Jailed) => format!(" until {}", p.jailed_until),
                                Ok(pb::ProverStatus::Unbonding) => format!(" (stake back at {})", p.unbond_at),
                                _ => String::new(),
                            },
                            p.stake,
                            if info.active { "active" } else { "not active" },
                            info.epoch,
                            p.proven,
                            p.misses,
                            p.slashed,
                            p.earned,
                            info.as_of_height
                        );
                        for j in &info.assigned_jobs {
                            text.push_str(&format!(
                                "\n  job rollup {} span {}..={} ({}): deadline {}, reassigned {} times, bounty {}",
                                j.rollup_id,
                                j.from_height,
                                j.to_height,
                                job_status_name(j.status),
                                j.deadline,
                                j.reassignments,
                                j.bounty
                            ));
                        }
                        text
                    },
                );
            }
            Command::Finality { rollup, trust, .. } if trust.trust_height.is_some() => {
                let mut reads =
                    verified_state(&trust, self.cli.chain_id.clone(), &mut self.client).await?;
                let read = reads.finality(rollup).await?;
                let f = &read.value;
                self.print(
                    json!({"ordered_height": f.ordered_height, "proven_height": f.proven_height, "rollup": rollup, "rollup_proven_height": f.rollup.as_ref().map(|r| r.proven_height), "rollup_proven_root": f.rollup.as_ref().map(|r| hex::encode(&r.proven_root)), "verified_header": read.header, "signed_power_percent": read.signed_power_percent, "node": read.node, "refused": read.refused}),
                    || {
                        let mut text = format!(
                            "ordered height {}, proven height {}",
                            f.ordered_height, f.proven_height
                        );
                        match (rollup, &f.rollup) {
                            (Some(id), Some(r)) => text.push_str(&format!(
                                "\nrollup {id}: proven to height {}, state root {}",
                                r.proven_height,
                                hex::encode(&r.proven_root)
                            )),
                            (Some(id), None) => {
                                text.push_str(&format!("\nrollup {id}: nothing proven (or no such rollup)"))
                            }
                            _ => {}
                        }
                        text.push('\n');
                        text.push_str(&verified_footer(&read));
                        text
                    },
                );
            }
            Command::Finality { height, wait, .. } => {
                let asked = height.unwrap_or(0);
                let f = match wait {
                    Some(seconds) => {
                        self.client
                            .wait_for_proven(asked, Duration::from_secs(seconds))
                            .await?
                    }
                    None => self.client.finality(asked).await?,
                };
                self.print(
                    json!({
                        "ordered_height": f.ordered_height,
                        "proven_height": f.proven_height,
                        "lag": f.lag,
                        "open_jobs": f.open_jobs,
                        "pending_jobs": f.pending_jobs,
                        "max_unproven_blocks": f.max_unproven_blocks,
                        "held": f.held,
                        "hold_reason": seqnet_proto::hold_reason_label(f.hold_reason),
                        "hold_detail": f.hold_detail,
                        "live_provers": f.live_provers,
                        "height": height,
                        "ordered": height.map(|_| f.ordered),
                        "proven": height.map(|_| f.proven),
                    }),
                    || {
                        let mut text = format!(
                            "ordered height {}, proven height {} (lag {} of at most {}), {} proof jobs open ({} with a proof waiting to link), {} live provers",
                            f.ordered_height,
                            f.proven_height,
                            f.lag,
                            f.max_unproven_blocks,
                            f.open_jobs,
                            f.pending_jobs,
                            f.live_provers
                        );
                        if f.held {
                            text.push_str(&format!(
                                "\nORDERING HELD (back-pressure): {} -- {}",
                                seqnet_proto::hold_reason_label(f.hold_reason),
                                f.hold_detail
                            ));
                        } else if f.open_jobs > 0 || f.hold_reason != pb::HoldReason::None as i32 {
                            text.push_str(&format!(
                                "\nproving: {} -- {}",
                                seqnet_proto::hold_reason_label(f.hold_reason),
                                f.hold_detail
                            ));
                        }
                        if let Some(h) = height {
                            let state = if f.proven {
                                "proven"
                            } else if f.ordered {
                                "ordered, not yet proven"
                            } else {
                                "not yet ordered"
                            };
                            text.push_str(&format!("\nheight {h}: {state}"));
                        }
                        text
                    },
                );
            }
        }
        Ok(())
    }
}

/// Short name of a `pb::JobStatus` value.
fn job_status_name(status: i32) -> &'static str {
    match pb::JobStatus::try_from(status) {
        Ok(pb::JobStatus::Open) => "open",
        Ok(pb::JobStatus::Pending) => "pending",
        Ok(pb::JobStatus::Proven) => "proven",
        _ => "unknown",
    }
}

#[tokio::main]
async fn main() {
    // Without RUST_LOG the CLI stays quiet but for warnings.
    let _ = seqnet_rollup_client::telemetry::init_logs(
        None,
        "warn",
        seqnet_rollup_client::telemetry::LogFormat::Text,
    );
    let cli = Cli::parse();
    let result = match RollupClient::new(cli.nodes.clone()) {
        Ok(client) => {
            let retry = RetryPolicy {
                attempts: cli.attempts.max(1),
                ..RetryPolicy::default()
            };
            let mut app = App {
                client: client.with_retry(retry),
                cli,
            };
            app.run().await
        }
        Err(e) => Err(e.into()),
    };
    if let Err(error) = result {
        // Each cause once: library errors often repeat their source.
        let mut text = String::new();
        for cause in error.chain() {
            let cause = cause.to_string();
            if !text.contains(&cause) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&cause);
            }
        }
        eprintln!("error: {text}");
        std::process::exit(1);
    }
}

/// "verified against header N, ..." and a line per node not believed.
fn verified_footer<T>(read: &seqnet_rollup_client::verified::Verified<T>) -> String {
    let mut text = read.describe();
    for refused in &read.refused {
        text.push_str(&format!("\n  not believed: {refused}"));
    }
    text
}

/// "pending, due by height N", "included at height N", "failed: ...".
fn forced_status_line(r: &pb::ForcedRequest) -> String {
    match pb::ForcedStatus::try_from(r.status) {
        Ok(pb::ForcedStatus::Pending) => format!("pending, due by height {}", r.deadline),
        Ok(pb::ForcedStatus::Included) => format!("included at height {}", r.included_height),
        Ok(pb::ForcedStatus::Failed) => format!("failed: {} (code {})", r.failure, r.failure_code),
        _ => "unknown".into(),
    }
}

/// Verified reads through the `--rpc` nodes, from the trust root (or the
/// light client's saved state).
async fn verified_state(
    trust: &TrustArgs,
    chain_id: Option<String>,
    client: &mut RollupClient,
) -> anyhow::Result<seqnet_rollup_client::verified::VerifiedState> {
    use seqnet_rollup_client::cometbft::CometRpc;
    use seqnet_rollup_client::light::{LightClient, LightOptions, TrustRoot};
    let (Some(height), Some(hash)) = (trust.trust_height, trust.trust_hash.clone()) else {
        anyhow::bail!("a verified read needs --trust-height and --trust-hash");
    };
    let chain_id = match chain_id {
        Some(id) => id,
        None => client.status().await?.chain_id,
    };
    let nodes = trust
        .rpc
        .iter()
        .map(|a| CometRpc::parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    let light = LightClient::open(
        nodes.clone(),
        &chain_id,
        &TrustRoot { height, hash },
        LightOptions::default(),
        trust.light_state.as_deref(),
    )
    .await?;
    Ok(seqnet_rollup_client::verified::VerifiedState::new(
        nodes, light,
    ))
}
