//! What several end-to-end tests share.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use seqnet_testnet::{Binaries, InitOptions, Testnet};
use tempfile::TempDir;

/// A fresh directory for one test's testnet: removed when the guard drops,
/// kept (and printed) when `SEQNET_E2E_KEEP` is set, for a post-mortem.
pub fn test_dir(prefix: &str) -> std::io::Result<(Option<TempDir>, PathBuf)> {
    let dir = TempDir::with_prefix(prefix)?;
    Ok(if std::env::var_os("SEQNET_E2E_KEEP").is_some() {
        let path = dir.keep();
        eprintln!("keeping the testnet in {}", path.display());
        (None, path)
    } else {
        let path = dir.path().to_path_buf();
        (Some(dir), path)
    })
}

/// Logs at `info` into the test's output; a fresh directory ([`test_dir`]);
/// a testnet of `opts` there with `extra_nodes` more blocks of ports free
/// (for nodes that join), started. Keep the guard alive for the test.
pub async fn start_testnet(
    prefix: &str,
    extra_nodes: usize,
    opts: InitOptions,
    timeout: Duration,
) -> anyhow::Result<(Option<TempDir>, Testnet)> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_test_writer()
        .try_init();
    let (guard, dir) = test_dir(prefix)?;
    let opts = InitOptions {
        base_port: seqnet_testnet::pick_free_base_port(opts.validators + extra_nodes)?,
        ..opts
    };
    let mut net = Testnet::init(&dir.join("net"), &opts, Binaries::locate()?)?;
    net.start(timeout).await?;
    Ok((guard, net))
}

/// The `seqnet` CLI binary beside the ones under test (`SEQNET_BIN_DIR`,
/// else the target directory of this test).
pub fn seqnet_cli() -> anyhow::Result<PathBuf> {
    std::env::var_os("SEQNET_BIN_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent()?.parent().map(|d| d.to_path_buf()))
        })
        .map(|dir| dir.join("seqnet"))
        .ok_or_else(|| anyhow::anyhow!("no directory for the seqnet binary"))
}

/// A signer for rollup 1's owner (`rollup-1` key, the testnet's fees) with
/// its nonce synced, and a client of node 0 to send through.
pub async fn rollup_signer(
    net: &Testnet,
) -> anyhow::Result<(
    seqnet_rollup_client::TxSigner,
    seqnet_rollup_client::RollupClient,
)> {
    let key = net
        .key_path("rollup-1")
        .ok_or_else(|| anyhow::anyhow!("no rollup-1 key"))?;
    let mut signer = seqnet_rollup_client::TxSigner::new(
        seqnet_rollup_client::keys::load(&key)?,
        net.manifest().chain_id.clone(),
    );
    signer.fees = net.manifest().fees.schedule();
    let mut client = seqnet_rollup_client::RollupClient::new(vec![net.grpc_url(0)?])?;
    signer.sync_nonce(&mut client).await?;
    Ok((signer, client))
}
