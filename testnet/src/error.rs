//! The library's error type: every variant names the value, path or process
//! that was wrong, so a failed command or test says what to look at.

use std::path::PathBuf;

/// Everything that can go wrong while generating, running or probing a testnet.
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("testnet directory {0} already exists; pass --force to overwrite it")]
    DirExists(PathBuf),
    #[error("no testnet in {dir}: {manifest} is missing (run `seqnet-testnet init --dir {dir}` first)", dir = .dir.display(), manifest = .manifest.display())]
    NoTestnet { dir: PathBuf, manifest: PathBuf },
    #[error("binary `{name}` not found ({searched}); {hint}")]
    BinaryMissing {
        name: &'static str,
        searched: String,
        hint: &'static str,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("invalid {name} {value:?}: {reason}")]
    InvalidOption {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("node {node} does not exist: the testnet has {count} nodes (0..{count})")]
    NoSuchNode { node: usize, count: usize },
    #[error("prover {prover} does not exist: the testnet has {count} provers (0..{count})")]
    NoSuchProver { prover: usize, count: usize },
    #[error("prover {prover} is already running (pid {pid}); stop it first")]
    ProverRunning { prover: usize, pid: i32 },
    #[error(
        "node{node} {process} is already running (pid {pid}); run `seqnet-testnet down` first"
    )]
    AlreadyRunning {
        node: usize,
        process: &'static str,
        pid: i32,
    },
    #[error("node{node} {process} exited ({status}) while {waiting_for}; last lines of {log}:\n{tail}", log = .log.display())]
    ProcessDied {
        node: usize,
        process: &'static str,
        status: String,
        waiting_for: String,
        log: PathBuf,
        tail: String,
    },
    #[error("node{node} {port_name} port {port} on 127.0.0.1 is in use by another program; stop it or re-init with another --base-port")]
    PortInUse {
        node: usize,
        port_name: &'static str,
        port: u16,
    },
    #[error("timed out after {secs}s waiting for {what}{detail}")]
    Timeout {
        what: String,
        secs: u64,
        detail: String,
    },
    #[error("CometBFT RPC {addr} `{method}`: {reason}")]
    Rpc {
        addr: String,
        method: String,
        reason: String,
    },
    #[error(transparent)]
    Comet(#[from] seqnet_rollup_client::cometbft::RpcError),
    #[error("gRPC {url}: {reason}")]
    Grpc { url: String, reason: String },
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Key(#[from] seqnet_rollup_client::keys::KeyError),
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        pid: i32,
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl TestnetError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TestnetError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn grpc(url: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        TestnetError::Grpc {
            url: url.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        TestnetError::Parse {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = TestnetError> = std::result::Result<T, E>;
