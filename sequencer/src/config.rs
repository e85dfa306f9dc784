//! Node configuration: a TOML file, then `SEQNET_*` environment variables,
//! then command-line flags, each overriding the one before. Reference:
//! docs/configuration.md (kept in step by a test below).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("{key} = {value:?} is not valid: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub abci: Listen,
    pub grpc: Listen,
    pub metrics: Listen,
    pub cometbft: CometBft,
    pub mempool: Mempool,
    pub storage: Storage,
    pub log: Log,
    /// Deliberate misbehaviour for testnets only.
    pub fault: Fault,
}

/// Faults a testnet can inject into one validator. Never set in production.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// This node's proposals leave out matching transactions and forced
    /// requests: `"rollup:<id>"` or `"signer:<64 hex>"`.
    pub censor: Vec<String>,
}

/// A parsed censor rule set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Censor {
    pub rollups: Vec<u64>,
    pub signers: Vec<seqnet_proto::Address>,
}

impl Fault {
    pub fn censor(&self) -> Result<Option<Censor>, ConfigError> {
        if self.censor.is_empty() {
            return Ok(None);
        }
        let mut censor = Censor::default();
        for rule in &self.censor {
            let invalid = |reason: String| ConfigError::Invalid {
                key: "fault.censor",
                value: rule.clone(),
                reason,
            };
            match rule.split_once(':') {
                Some(("rollup", id)) => censor
                    .rollups
                    .push(id.parse().map_err(|e| invalid(format!("rollup id: {e}")))?),
                Some(("signer", key)) => censor
                    .signers
                    .push(seqnet_proto::Address::from_hex(key).map_err(invalid)?),
                _ => {
                    return Err(invalid(
                        "must be \"rollup:<id>\" or \"signer:<64 hex>\"".into(),
                    ))
                }
            }
        }
        Ok(Some(censor))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            abci: Listen::new("127.0.0.1:26658"),
            grpc: Listen::new("127.0.0.1:9090"),
            metrics: Listen::new("127.0.0.1:9100"),
            cometbft: CometBft::default(),
            mempool: Mempool::default(),
            storage: Storage::default(),
            log: Log::default(),
            fault: Fault::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub listen: String,
}

impl Listen {
    fn new(addr: &str) -> Listen {
        Listen {
            listen: addr.to_string(),
        }
    }

    pub fn addr(&self, key: &'static str) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                key,
                value: self.listen.clone(),
                reason: e.to_string(),
            })
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CometBft {
    pub rpc: String,
}

impl Default for CometBft {
    fn default() -> Self {
        CometBft {
            rpc: "http://127.0.0.1:26657".into(),
        }
    }
}

/// The app's admission limit in front of CometBFT's mempool.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Mempool {
    /// New transactions are refused (`mempool_full`) while the mempool holds
    /// this many; keep it under CometBFT's `mempool.size` (see
    /// docs/configuration.md for why).
    pub max_txs: usize,
}

/// Largest `mempool.max_txs` (the app tracks at most this many).
pub const MAX_MEMPOOL_TXS: usize = seqnet_abci::MAX_TRACKED_TXS;

impl Default for Mempool {
    fn default() -> Self {
        Mempool {
            max_txs: seqnet_abci::DEFAULT_MEMPOOL_LIMIT,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    pub path: PathBuf,
    /// Blocks of data to keep (block records, namespace proofs, batches,
    /// and CometBFT's block store through Commit's `retain_height`); heights
    /// still in an unproven span are always kept. 0: keep everything (an
    /// archive node), the default while a new node can only block-sync
    /// (it needs peers that have every block) and rollups may read any
    /// height.
    pub block_retention: u64,
    /// Blocks between state snapshots served to nodes that state-sync (a
    /// snapshot after every multiple, taken in the background, kept under
    /// `<path>/snapshots`); 0 takes none.
    pub snapshot_interval: u64,
    /// Snapshots kept on disk (the latest; at least 1).
    pub snapshot_keep_recent: usize,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            path: PathBuf::from("data"),
            block_retention: 0,
            snapshot_interval: 0,
            snapshot_keep_recent: 2,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    pub filter: String,
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

pub use seqnet_rollup_client::telemetry::LogFormat;

impl Config {
    /// Reads `path` (if given), applies the environment, resolves relative
    /// paths against the file's directory, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.display().to_string(),
                    source: Box::new(source),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        if let Some(dir) = path.and_then(Path::parent) {
            if config.storage.path.is_relative() {
                config.storage.path = dir.join(&config.storage.path);
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("SEQNET_ABCI_LISTEN") {
            self.abci.listen = v;
        }
        if let Some(v) = env("SEQNET_GRPC_LISTEN") {
            self.grpc.listen = v;
        }
        if let Some(v) = env("SEQNET_METRICS_LISTEN") {
            self.metrics.listen = v;
        }
        if let Some(v) = env("SEQNET_COMETBFT_RPC") {
            self.cometbft.rpc = v;
        }
        if let Some(v) = env("SEQNET_MEMPOOL_MAX_TXS") {
            self.mempool.max_txs = v.parse().map_err(|e| ConfigError::Invalid {
                key: "mempool.max_txs",
                value: v.clone(),
                reason: format!("{e}"),
            })?;
        }
        if let Some(v) = env("SEQNET_STORAGE_PATH") {
            self.storage.path = PathBuf::from(v);
        }
        if let Some(v) = env("SEQNET_BLOCK_RETENTION") {
            self.storage.block_retention = v.parse().map_err(|e| ConfigError::Invalid {
                key: "storage.block_retention",
                value: v.clone(),
                reason: format!("{e}"),
            })?;
        }
        if let Some(v) = env("SEQNET_SNAPSHOT_INTERVAL") {
            self.storage.snapshot_interval = v.parse().map_err(|e| ConfigError::Invalid {
                key: "storage.snapshot_interval",
                value: v.clone(),
                reason: format!("{e}"),
            })?;
        }
        if let Some(v) = env("SEQNET_SNAPSHOT_KEEP_RECENT") {
            self.storage.snapshot_keep_recent = v.parse().map_err(|e| ConfigError::Invalid {
                key: "storage.snapshot_keep_recent",
                value: v.clone(),
                reason: format!("{e}"),
            })?;
        }
        if let Some(v) = env("SEQNET_LOG_FILTER") {
            self.log.filter = v;
        }
        if let Some(v) = env("SEQNET_FAULT_CENSOR") {
            self.fault.censor = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = env("SEQNET_LOG_FORMAT") {
            self.log.format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "log.format",
                        value: v,
                        reason: "must be \"text\" or \"json\"".into(),
                    })
                }
            };
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.abci.addr("abci.listen")?;
        self.grpc.addr("grpc.listen")?;
        self.metrics.addr("metrics.listen")?;
        self.fault.censor()?;
        if !(1..=MAX_MEMPOOL_TXS).contains(&self.mempool.max_txs) {
            return Err(ConfigError::Invalid {
                key: "mempool.max_txs",
                value: self.mempool.max_txs.to_string(),
                reason: format!("must be 1..={MAX_MEMPOOL_TXS}"),
            });
        }
        seqnet_rollup_client::cometbft::CometRpc::parse(&self.cometbft.rpc).map_err(|e| {
            ConfigError::Invalid {
                key: "cometbft.rpc",
                value: self.cometbft.rpc.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The TOML block in docs/configuration.md parses to the defaults, so the
    /// documentation cannot drift from the code.
    #[test]
    fn documented_example_matches_defaults() {
        let doc = include_str!("../../docs/configuration.md");
        let start = doc.find("```toml\n").expect("toml block") + 8;
        let end = start + doc[start..].find("```").expect("block end");
        let parsed: Config = toml::from_str(&doc[start..end]).expect("doc example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn env_overrides_file_and_paths_resolve_against_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sequencer.toml");
        std::fs::write(
            &path,
            "[grpc]\nlisten = \"127.0.0.1:1\"\n[storage]\npath = \"db\"\n",
        )
        .expect("write");
        let env = |key: &str| (key == "SEQNET_GRPC_LISTEN").then(|| "127.0.0.1:2".to_string());
        let config = Config::load(Some(&path), env).expect("loads");
        assert_eq!(config.grpc.listen, "127.0.0.1:2");
        assert_eq!(config.storage.path, dir.path().join("db"));
    }

    #[test]
    fn censor_rules_parse_and_bad_ones_are_named() {
        let fault = Fault {
            censor: vec!["rollup:2".into(), format!("signer:{}", "ab".repeat(32))],
        };
        let censor = fault.censor().expect("valid").expect("some");
        assert_eq!(censor.rollups, vec![2]);
        assert_eq!(censor.signers.len(), 1);
        let bad = Fault {
            censor: vec!["validator:1".into()],
        };
        assert!(bad
            .censor()
            .unwrap_err()
            .to_string()
            .contains("fault.censor"));
        assert_eq!(Fault::default().censor().expect("valid"), None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[grpc]\nlisten = \"nowhere\"\n").expect("write");
        let err = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(err.contains("grpc.listen"), "{err}");
        std::fs::write(&path, "[grpc]\nlisten = 5\n").expect("write");
        assert!(matches!(
            Config::load(Some(&path), no_env),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(&path, "typo = 1\n").expect("write");
        assert!(Config::load(Some(&path), no_env).is_err());
    }
}
