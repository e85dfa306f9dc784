//! `seqnet-sequencer`: one seqnet validator's application process.

mod abci_server;
mod config;
mod grpc;
mod metrics;
mod node;
mod prover_service;
mod timed;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit code for a configuration error (EX_CONFIG).
const EXIT_CONFIG: i32 = 78;

#[derive(Parser)]
#[command(
    name = "seqnet-sequencer",
    version,
    about = "seqnet sequencer node (ABCI++ app for CometBFT v0.38)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the node: ABCI server, gRPC services and metrics.
    Start {
        /// TOML config file (see docs/configuration.md).
        #[arg(long, env = "SEQNET_CONFIG")]
        config: Option<PathBuf>,
        /// Overrides grpc.listen.
        #[arg(long)]
        grpc_listen: Option<String>,
        /// Overrides abci.listen.
        #[arg(long)]
        abci_listen: Option<String>,
        /// Overrides storage.path.
        #[arg(long)]
        storage: Option<PathBuf>,
    },
    /// Print the default configuration as TOML.
    DefaultConfig,
}

fn init_tracing(log: &config::Log) -> anyhow::Result<()> {
    seqnet_rollup_client::telemetry::init_logs(Some(&log.filter), "info", log.format)?;
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => match toml::to_string_pretty(&config::Config::default()) {
            Ok(text) => print!("{text}"),
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        },
        Command::Start {
            config,
            grpc_listen,
            abci_listen,
            storage,
        } => {
            let mut loaded =
                match config::Config::load(config.as_deref(), |k| std::env::var(k).ok()) {
                    Ok(loaded) => loaded,
                    Err(error) => {
                        eprintln!("configuration error: {error}");
                        std::process::exit(EXIT_CONFIG);
                    }
                };
            if let Some(v) = grpc_listen {
                loaded.grpc.listen = v;
            }
            if let Some(v) = abci_listen {
                loaded.abci.listen = v;
            }
            if let Some(v) = storage {
                loaded.storage.path = v;
            }
            if let Err(error) = loaded.validate() {
                eprintln!("configuration error: {error}");
                std::process::exit(EXIT_CONFIG);
            }
            if let Err(error) = init_tracing(&loaded.log) {
                eprintln!("configuration error: {error}");
                std::process::exit(EXIT_CONFIG);
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("cannot start runtime: {error}");
                    std::process::exit(1);
                }
            };
            if let Err(error) = runtime.block_on(node::run(loaded)) {
                tracing::error!("{error:#}");
                eprintln!("error: {error:#}");
                std::process::exit(1);
            }
        }
    }
}
