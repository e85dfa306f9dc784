//! Demo load: every demo rollup's owner submits `RollupData` transactions
//! (signed with sequential nonces by `seqnet-rollup-client`) through its own
//! node's gRPC at a steady rate, until told to stop.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seqnet_rollup_client::{keys, ClientError, RollupClient, TxSigner};
use tokio::sync::watch;

use crate::error::{Result, TestnetError};
use crate::manifest::{Manifest, RollupManifest};

/// How hard to load the network.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Transactions per second over all rollups.
    pub rate: f64,
    /// Bytes of rollup data per transaction (at least the header text).
    pub payload_bytes: usize,
    /// Host of each node's gRPC, by node index; `None`: 127.0.0.1 (processes
    /// on this machine). In a compose network, the containers' addresses.
    pub grpc_hosts: Option<Vec<String>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            rate: 20.0,
            payload_bytes: 256,
            grpc_hosts: None,
        }
    }
}

/// Counters shared between the load tasks and whoever displays them.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub submitted: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub transport_errors: AtomicU64,
    pub last_problem: Mutex<Option<String>>,
}

impl LoadStats {
    fn problem(&self, text: String) {
        if let Ok(mut last) = self.last_problem.lock() {
            *last = Some(text);
        }
    }

    /// One line: counts, the achieved rate and the last problem seen.
    pub fn summary(&self, elapsed: Duration) -> String {
        let accepted = self.accepted.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64().max(0.001);
        let mut line = format!(
            "load: submitted {} accepted {} rejected {} errors {} ({:.1} accepted tx/s over {:.0}s)",
            self.submitted.load(Ordering::Relaxed),
            accepted,
            self.rejected.load(Ordering::Relaxed),
            self.transport_errors.load(Ordering::Relaxed),
            accepted as f64 / secs,
            secs,
        );
        if let Ok(last) = self.last_problem.lock() {
            if let Some(problem) = last.as_ref() {
                let short: String = problem.chars().take(100).collect();
                line.push_str(&format!("\n  last problem: {short}"));
            }
        }
        line
    }
}

/// Rollup data of about `size` bytes that names its rollup, nonce and send time.
pub fn payload(rollup_id: u64, nonce: u64, size: usize) -> Vec<u8> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut data = format!("rollup={rollup_id} nonce={nonce} sent_ms={millis} ").into_bytes();
    while data.len() < size {
        data.push(b'.');
    }
    data
}

/// Runs the load until `stop` turns true; returns when every task has ended.
pub async fn run(
    dir: &Path,
    manifest: &Manifest,
    opts: &LoadOptions,
    stats: Arc<LoadStats>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    if manifest.rollups.is_empty() {
        return Err(TestnetError::InvalidOption {
            name: "rollups",
            value: "0".into(),
            reason: "the testnet has no demo rollups to load".into(),
        });
    }
    if !(opts.rate > 0.0 && opts.rate.is_finite()) {
        return Err(TestnetError::InvalidOption {
            name: "--rate",
            value: opts.rate.to_string(),
            reason: "want a positive number of transactions per second".into(),
        });
    }
    let per_rollup = opts.rate / manifest.rollups.len() as f64;
    let period = Duration::from_secs_f64(1.0 / per_rollup);
    let mut tasks = tokio::task::JoinSet::new();
    for rollup in &manifest.rollups {
        let path = dir.join(manifest.key_path(&rollup.owner_key)?);
        let key = keys::load(&path)?;
        let node = manifest.node(rollup.submit_node)?;
        let url = match opts.grpc_hosts.as_ref().and_then(|h| h.get(node.index)) {
            Some(host) => format!("http://{host}:{}", node.ports.grpc),
            None => node.grpc_url(),
        };
        let mut signer = TxSigner::new(key, manifest.chain_id.clone());
        signer.fees = manifest.fees.schedule();
        tasks.spawn(rollup_task(
            rollup.clone(),
            url,
            signer,
            period,
            opts.payload_bytes,
            stats.clone(),
            stop.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

async fn rollup_task(
    rollup: RollupManifest,
    url: String,
    mut signer: TxSigner,
    period: Duration,
    payload_bytes: usize,
    stats: Arc<LoadStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut client = match RollupClient::new(vec![url.clone()]) {
        Ok(client) => client,
        Err(e) => {
            stats.problem(format!("rollup {}: {e}", rollup.id));
            return;
        }
    };
    let mut resync = true;
    let mut next = Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        if resync {
            match signer.sync_nonce(&mut client).await {
                Ok(_) => resync = false,
                Err(ClientError::NotFound(_)) => {
                    signer.next_nonce = 0;
                    resync = false;
                }
                Err(e) => {
                    stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                    stats.problem(format!("rollup {} via {url}: {e}", rollup.id));
                    if sleep_or_stop(Duration::from_secs(1), &mut stop).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let data = payload(rollup.id, signer.next_nonce, payload_bytes);
        let tx = signer.rollup_data(rollup.id, data, None);
        stats.submitted.fetch_add(1, Ordering::Relaxed);
        match client.submit(&tx).await {
            Ok(_) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(ClientError::Rejected { code, message }) => {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                let code = code.map_or_else(|| "no code".to_string(), |c| c.to_string());
                stats.problem(format!("rollup {}: rejected {code}: {message}", rollup.id));
                // Let pending transactions commit, then start again from the
                // committed nonce.
                resync = true;
                if sleep_or_stop(Duration::from_secs(2), &mut stop).await {
                    return;
                }
                next = Instant::now();
                continue;
            }
            Err(e) => {
                stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                stats.problem(format!("rollup {} via {url}: {e}", rollup.id));
                resync = true;
                if sleep_or_stop(Duration::from_secs(1), &mut stop).await {
                    return;
                }
                next = Instant::now();
                continue;
            }
        }
        next += period;
        let now = Instant::now();
        if next < now {
            // Behind schedule (slow node): do not burst to catch up.
            next = now;
        }
        if sleep_or_stop(next - now, &mut stop).await {
            return;
        }
    }
}
