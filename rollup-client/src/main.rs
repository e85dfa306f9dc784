//! `seqnet`: the command line of seqnet for rollups and their operators.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use seqnet_proto::tx::RollupSettings;
use seqnet_proto::{pb, Address};
use seqnet_rollup_client::{keys, verify_batch, RollupClient, TxSigner, VerifiedBatch};
use serde_json::json;
use tokio_stream::StreamExt;

#[derive(Parser)]
#[command(name = "seqnet", version, about = "Order rollup data through seqnet")]
struct Cli {
    /// Node gRPC endpoint; repeat for fail-over.
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
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Key files.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Chain id, height, app hash and rollups of the node.
    Status,
    /// Balance and nonce of an address (or of a key file's address).
    Account { who: String },
    /// Send tokens.
    Transfer {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: u64,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// Rollups.
    #[command(subcommand)]
    Rollup(RollupCommand),
    /// Submit rollup data.
    Submit {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        rollup: u64,
        #[command(flatten)]
        payload: Payload,
        #[arg(long)]
        fee: Option<u64>,
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
    /// Status of the forced-inclusion request for an inner transaction hash.
    Forced { tx_hash: String },
    /// Batches with their proofs.
    #[command(subcommand)]
    Batch(BatchCommand),
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
        match (&self.data, &self.file) {
            (Some(text), _) => Ok(text.as_bytes().to_vec()),
            (None, Some(path)) => {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))
            }
            (None, None) => bail!("give --data or --file"),
        }
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key file.
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
        #[arg(long, default_value_t = 20)]
        proof_window: u64,
        #[arg(long, default_value_t = 10)]
        inclusion_window: u64,
        /// Groth16 verifying key file (raw bytes).
        #[arg(long)]
        verifying_key: Option<PathBuf>,
    },
    /// A rollup's parameters and statistics.
    Show { id: u64 },
}

#[derive(Subcommand)]
enum BatchCommand {
    /// One batch, with its proof checked.
    Get {
        #[arg(long)]
        rollup: u64,
        #[arg(long)]
        height: u64,
    },
    /// Batches from a height on, following new blocks, each checked.
    Stream {
        #[arg(long)]
        rollup: u64,
        #[arg(long, default_value_t = 1)]
        from: u64,
        #[arg(long)]
        skip_empty: bool,
    },
}

fn parse_address(text: &str) -> anyhow::Result<Address> {
    if Path::new(text).is_file() {
        return Ok(keys::address(&keys::load(Path::new(text))?));
    }
    Address::from_hex(text)
        .map_err(|e| anyhow::anyhow!("{e} (give a 64-hex address or a key file)"))
}

async fn signer(cli: &Cli, client: &mut RollupClient, key: &Path) -> anyhow::Result<TxSigner> {
    let key = keys::load(key)?;
    let chain_id = match &cli.chain_id {
        Some(id) => id.clone(),
        None => client.status().await?.chain_id,
    };
    let mut signer = TxSigner::new(key, chain_id);
    signer.sync_nonce(client).await?;
    Ok(signer)
}

fn print_batch(json_out: bool, batch: &VerifiedBatch) {
    if json_out {
        let items: Vec<_> = batch
            .items
            .iter()
            .map(|i| json!({"tx_hash": hex::encode(&i.tx_hash), "signer": hex::encode(&i.signer), "nonce": i.nonce, "data": hex::encode(&i.data)}))
            .collect();
        println!(
            "{}",
            json!({"rollup_id": batch.rollup_id, "height": batch.height, "items": items, "verified": true})
        );
    } else {
        println!(
            "rollup {} height {}: {} items; proof: verified (inclusion and completeness)",
            batch.rollup_id,
            batch.height,
            batch.items.len()
        );
        for item in &batch.items {
            let text =
                String::from_utf8(item.data.clone()).unwrap_or_else(|_| hex::encode(&item.data));
            println!(
                "  {} nonce {}: {}",
                hex::encode(&item.tx_hash[..8.min(item.tx_hash.len())]),
                item.nonce,
                text
            );
        }
    }
}

fn print_rollup(json_out: bool, r: &pb::Rollup) {
    let stats = r.stats.unwrap_or_default();
    if json_out {
        println!(
            "{}",
            json!({"id": r.id, "name": r.name, "owner": hex::encode(&r.owner), "proof_window": r.proof_window, "inclusion_window": r.inclusion_window, "items": stats.items, "bytes": stats.bytes, "last_height": stats.last_height})
        );
    } else {
        println!(
            "rollup {} {:?}: owner {}, proof window {}, inclusion window {}, {} items, {} bytes, last batch at {}",
            r.id, r.name, hex::encode(&r.owner), r.proof_window, r.inclusion_window, stats.items, stats.bytes, stats.last_height
        );
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut client = RollupClient::new(cli.nodes.clone())?;
    match &cli.command {
        Command::Keys(KeysCommand::New { out, force }) => {
            let key = keys::generate();
            keys::save(out, &key, *force)?;
            println!("{}", keys::address(&key));
        }
        Command::Keys(KeysCommand::Show { file }) => {
            println!("{}", keys::address(&keys::load(file)?))
        }
        Command::Status => {
            let s = client.status().await?;
            if cli.json {
                println!(
                    "{}",
                    json!({"chain_id": s.chain_id, "height": s.height, "app_hash": hex::encode(&s.app_hash), "rollups": s.rollups.len()})
                );
            } else {
                println!(
                    "chain {} height {} app hash {}",
                    s.chain_id,
                    s.height,
                    hex::encode(&s.app_hash)
                );
                for r in &s.rollups {
                    print_rollup(false, r);
                }
            }
        }
        Command::Account { who } => {
            let a = client.account(parse_address(who)?).await?;
            if cli.json {
                println!(
                    "{}",
                    json!({"address": hex::encode(&a.address), "balance": a.balance, "nonce": a.nonce})
                );
            } else {
                println!(
                    "{} balance {} nonce {}",
                    hex::encode(&a.address),
                    a.balance,
                    a.nonce
                );
            }
        }
        Command::Transfer {
            key,
            to,
            amount,
            fee,
        } => {
            let to = parse_address(to)?;
            let mut s = signer(&cli, &mut client, key).await?;
            let hash = client.submit(&s.transfer(to, *amount, *fee)).await?;
            println!("{}", hex::encode(hash));
        }
        Command::Rollup(RollupCommand::Register {
            key,
            id,
            name,
            proof_window,
            inclusion_window,
            verifying_key,
        }) => {
            let verifying_key = match verifying_key {
                Some(path) => {
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
                }
                None => vec![],
            };
            let mut s = signer(&cli, &mut client, key).await?;
            let settings = RollupSettings {
                verifying_key,
                proof_window: *proof_window,
                inclusion_window: *inclusion_window,
            };
            let hash = client
                .submit(&s.register_rollup(*id, name.clone(), settings, None))
                .await?;
            println!("{}", hex::encode(hash));
        }
        Command::Rollup(RollupCommand::Show { id }) => {
            print_rollup(cli.json, &client.rollup(*id).await?)
        }
        Command::Submit {
            key,
            rollup,
            payload,
            fee,
        } => {
            let data = payload.bytes()?;
            let mut s = signer(&cli, &mut client, key).await?;
            let hash = client.submit(&s.rollup_data(*rollup, data, *fee)).await?;
            println!("{}", hex::encode(hash));
        }
        Command::ForceInclude {
            key,
            rollup,
            payload,
        } => {
            let data = payload.bytes()?;
            let mut s = signer(&cli, &mut client, key).await?;
            // The wrapper runs first (nonce n), the forced tx later (n + 1).
            let wrapper_nonce = s.next_nonce;
            s.next_nonce += 1;
            let inner = s.rollup_data(*rollup, data, None);
            s.next_nonce = wrapper_nonce;
            let wrapper = s.force_include(inner.clone(), None);
            client.force_include(&wrapper).await?;
            if cli.json {
                println!(
                    "{}",
                    json!({"request_tx": hex::encode(wrapper.hash()), "forced_tx": hex::encode(inner.hash())})
                );
            } else {
                println!(
                    "request {} forces {}",
                    hex::encode(wrapper.hash()),
                    hex::encode(inner.hash())
                );
            }
        }
        Command::Forced { tx_hash } => {
            let hash = hex::decode(tx_hash.trim_start_matches("0x"))
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .ok_or_else(|| anyhow::anyhow!("{tx_hash:?} is not a 32-byte hex hash"))?;
            let r = client.forced_request(hash).await?;
            let status = match pb::ForcedStatus::try_from(r.status) {
                Ok(pb::ForcedStatus::Pending) => format!("pending, due by height {}", r.deadline),
                Ok(pb::ForcedStatus::Included) => {
                    format!("included at height {}", r.included_height)
                }
                Ok(pb::ForcedStatus::Failed) => {
                    format!("failed: {} (code {})", r.failure, r.failure_code)
                }
                _ => "unknown".into(),
            };
            if cli.json {
                println!(
                    "{}",
                    json!({"id": r.id, "status": r.status, "requested_height": r.requested_height, "deadline": r.deadline, "included_height": r.included_height, "failure": r.failure})
                );
            } else {
                println!(
                    "request {} (opened at {}): {status}",
                    r.id, r.requested_height
                );
            }
        }
        Command::Batch(BatchCommand::Get { rollup, height }) => {
            let raw = client.raw_batch(*rollup, *height).await?;
            match verify_batch(&raw) {
                Ok(batch) => print_batch(cli.json, &batch),
                Err(e) => bail!("proof: FAILED: {e}"),
            }
        }
        Command::Batch(BatchCommand::Stream {
            rollup,
            from,
            skip_empty,
        }) => {
            let mut stream = client.stream_batches(*rollup, *from, *skip_empty);
            while let Some(batch) = stream.next().await {
                print_batch(cli.json, &batch?);
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run(Cli::parse()).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
