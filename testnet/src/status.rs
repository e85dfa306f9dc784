//! The status table: per node (height, short app hash, catching up, peers,
//! process state) from CometBFT RPC, per rollup (items, bytes, last height)
//! from one node's gRPC `GetStatus`, finality (ordered and proven height,
//! lag) from its `GetFinality`, and per prover (process state, stake,
//! status, proofs, misses, slashed) from its `ProverService.GetProver`.

use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;

use seqnet_proto::pb;
use seqnet_rollup_client::{RetryPolicy, RollupClient};

use crate::manifest::Manifest;
use crate::process;
use seqnet_rollup_client::cometbft::CometRpc;

/// One node's row.
#[derive(Clone, Debug, Default)]
pub struct NodeRow {
    pub index: usize,
    pub moniker: String,
    /// `up`, `down`, `seq only`, `cmt only` (from pid files).
    pub processes: String,
    pub height: Option<u64>,
    pub app_hash: Option<String>,
    pub catching_up: Option<bool>,
    pub peers: Option<u64>,
    pub error: Option<String>,
}

/// One rollup's row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollupRow {
    pub id: u64,
    pub name: String,
    pub items: u64,
    pub bytes: u64,
    pub last_height: u64,
}

/// One prover's row.
#[derive(Clone, Debug, Default)]
pub struct ProverRow {
    pub index: usize,
    /// `up` or `down` (from its pid file).
    pub process: String,
    pub address: String,
    /// `None` until it registered.
    pub record: Option<pb::Prover>,
    pub active: bool,
    pub open_jobs: usize,
}

/// The aggregator's row: process state and its counters (from its
/// `/metrics`; `None` when it does not answer).
#[derive(Clone, Debug, Default)]
pub struct AggregatorRow {
    pub process: String,
    pub listen: String,
    pub aggregates: Option<u64>,
    pub proofs: Option<u64>,
}

/// A snapshot of the whole network.
#[derive(Clone, Debug)]
pub struct NetworkStatus {
    pub chain_id: String,
    pub nodes: Vec<NodeRow>,
    pub rollups: Vec<RollupRow>,
    /// Which node answered `GetStatus` (or why none did).
    pub rollups_from: Result<usize, String>,
    /// Ordered and proven height (from the node that answered `GetStatus`).
    pub finality: Option<pb::FinalityStatus>,
    pub provers: Vec<ProverRow>,
    pub aggregator: Option<AggregatorRow>,
}

async fn aggregator_row(dir: &Path, manifest: &Manifest) -> Option<AggregatorRow> {
    let agg = manifest.aggregator.as_ref()?;
    let up = process::read_pid(&dir.join(&agg.dir), process::AGGREGATOR_PROCESS)
        .is_some_and(process::is_alive);
    let text = if up {
        crate::scrape::fetch(agg.metrics_port).await.ok()
    } else {
        None
    };
    let counter = |name: &str| {
        text.as_deref()
            .and_then(|t| crate::scrape::sum(t, name))
            .map(|v| v as u64)
    };
    Some(AggregatorRow {
        process: if up { "up" } else { "down" }.into(),
        listen: agg.listen_addr(),
        aggregates: counter("seqnet_prover_aggregates_submitted_total"),
        proofs: counter("seqnet_prover_aggregated_proofs_total"),
    })
}

fn processes_state(dir: &Path, node_dir: &Path) -> String {
    let node_dir = dir.join(node_dir);
    let alive: Vec<bool> = process::PROCESSES
        .iter()
        .map(|p| process::read_pid(&node_dir, p).is_some_and(process::is_alive))
        .collect();
    match (alive[0], alive[1]) {
        (true, true) => "up",
        (false, false) => "down",
        (true, false) => "seq only",
        (false, true) => "cmt only",
    }
    .to_string()
}

/// Queries every node (concurrently) and one node's rollup stats.
pub async fn collect(dir: &Path, manifest: &Manifest) -> NetworkStatus {
    let rows = manifest.nodes.iter().map(|node| async move {
        let rpc = CometRpc::new(node.rpc_addr()).with_timeout(std::time::Duration::from_secs(2));
        let mut row = NodeRow {
            index: node.index,
            moniker: node.moniker.clone(),
            processes: processes_state(dir, &node.dir),
            ..NodeRow::default()
        };
        match rpc.status().await {
            Ok(s) => {
                row.height = Some(s.height);
                row.app_hash = Some(s.app_hash);
                row.catching_up = Some(s.catching_up);
                row.peers = rpc.peers().await.ok();
            }
            Err(e) => row.error = Some(e.to_string()),
        }
        row
    });
    let nodes: Vec<NodeRow> = process::join_all(rows).await;

    // Rollup stats from the highest node that answers.
    let mut order: Vec<&NodeRow> = nodes.iter().filter(|n| n.height.is_some()).collect();
    order.sort_by_key(|n| std::cmp::Reverse(n.height));
    let mut rollups = Vec::new();
    let mut rollups_from = Err("no node answered".to_string());
    let mut finality = None;
    let mut provers = prover_rows_offline(dir, manifest);
    for row in order {
        let Ok(node) = manifest.node(row.index) else {
            continue;
        };
        let url = node.grpc_url();
        // One attempt: a table of what answers now, not a wait for a node.
        let once = RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        };
        let answer = tokio::time::timeout(std::time::Duration::from_secs(3), async {
            let mut c = RollupClient::new(vec![url.clone()])?.with_retry(once.clone());
            c.status().await
        })
        .await;
        match answer {
            Ok(Ok(status)) => {
                let mut client = RollupClient::new(vec![url.clone()])
                    .map(|c| c.with_retry(once.clone()))
                    .ok();
                if let Some(client) = client.as_mut() {
                    finality =
                        tokio::time::timeout(std::time::Duration::from_secs(3), client.finality(0))
                            .await
                            .ok()
                            .and_then(Result::ok);
                    provers = prover_rows(dir, manifest, client).await;
                }
                rollups = status
                    .rollups
                    .iter()
                    .map(|r| {
                        let stats = r.stats.unwrap_or_default();
                        RollupRow {
                            id: r.id,
                            name: r.name.clone(),
                            items: stats.items,
                            bytes: stats.bytes,
                            last_height: stats.last_height,
                        }
                    })
                    .collect();
                rollups_from = Ok(row.index);
                break;
            }
            Ok(Err(e)) => rollups_from = Err(e.to_string()),
            Err(_) => rollups_from = Err(format!("{url}: GetStatus timed out")),
        }
    }
    NetworkStatus {
        chain_id: manifest.chain_id.clone(),
        nodes,
        rollups,
        rollups_from,
        finality,
        provers,
        aggregator: aggregator_row(dir, manifest).await,
    }
}

/// Prover rows with what the files say (process state, address).
fn prover_rows_offline(dir: &Path, manifest: &Manifest) -> Vec<ProverRow> {
    manifest
        .provers
        .iter()
        .map(|p| {
            let up = process::read_pid(&dir.join(&p.dir), process::PROVER_PROCESS)
                .is_some_and(process::is_alive);
            let address = manifest
                .key(&p.key)
                .map(|k| k.address.clone())
                .unwrap_or_default();
            ProverRow {
                index: p.index,
                process: if up { "up" } else { "down" }.into(),
                address,
                ..ProverRow::default()
            }
        })
        .collect()
}

/// Prover rows with each prover's record from `client`'s node.
async fn prover_rows(dir: &Path, manifest: &Manifest, client: &mut RollupClient) -> Vec<ProverRow> {
    let mut rows = prover_rows_offline(dir, manifest);
    for row in &mut rows {
        let Ok(address) = seqnet_proto::Address::from_hex(&row.address) else {
            continue;
        };
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(2), client.prover(address)).await;
        if let Ok(Ok(info)) = answer {
            row.record = info.prover;
            row.active = info.active;
            row.open_jobs = info.assigned_jobs.len();
        }
    }
    rows
}

fn short_hash(hash: &str) -> String {
    if hash.is_empty() {
        "-".into()
    } else {
        hash.chars().take(12).collect()
    }
}

/// Renders the table as text.
pub fn render(status: &NetworkStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "chain {}", status.chain_id);
    let _ = writeln!(
        out,
        "{:<7} {:<9} {:>8} {:<13} {:<11} {:>5}",
        "node", "procs", "height", "app hash", "catching up", "peers"
    );
    for n in &status.nodes {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let _ = write!(
            out,
            "{:<7} {:<9} {:>8} {:<13} {:<11} {:>5}",
            n.moniker,
            n.processes,
            opt(n.height.map(|h| h.to_string())),
            opt(n.app_hash.as_deref().map(short_hash)),
            opt(n
                .catching_up
                .map(|c| if c { "yes" } else { "no" }.to_string())),
            opt(n.peers.map(|p| p.to_string())),
        );
        if let Some(e) = &n.error {
            let short: String = e.chars().take(60).collect();
            let _ = write!(out, "  ({short})");
        }
        out.push('\n');
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<7} {:<12} {:>9} {:>12} {:>11}",
        "rollup", "name", "items", "bytes", "last height"
    );
    for r in &status.rollups {
        let _ = writeln!(
            out,
            "{:<7} {:<12} {:>9} {:>12} {:>11}",
            r.id, r.name, r.items, r.bytes, r.last_height
        );
    }
    match &status.rollups_from {
        Ok(node) => {
            let _ = writeln!(out, "(rollup stats from node{node})");
        }
        Err(e) => {
            let _ = writeln!(out, "(rollup stats unavailable: {e})");
        }
    }
    if let Some(f) = &status.finality {
        let _ = writeln!(
            out,
            "\nfinality: ordered {} proven {} lag {} (back-pressure past {}), {} proof jobs open ({} pending), {} live provers",
            f.ordered_height,
            f.proven_height,
            f.lag,
            f.max_unproven_blocks,
            f.open_jobs,
            f.pending_jobs,
            f.live_provers
        );
        if f.held {
            let _ = writeln!(
                out,
                "ORDERING HELD (back-pressure): {} -- {}",
                seqnet_proto::hold_reason_label(f.hold_reason),
                f.hold_detail
            );
        } else if f.hold_reason != pb::HoldReason::None as i32 {
            let _ = writeln!(
                out,
                "proving: {} -- {}",
                seqnet_proto::hold_reason_label(f.hold_reason),
                f.hold_detail
            );
        }
    }
    if !status.provers.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<7} {:<6} {:<13} {:>10} {:<10} {:<7} {:>7} {:>6} {:>8} {:>5}",
            "prover",
            "proc",
            "address",
            "stake",
            "status",
            "active",
            "proven",
            "missed",
            "slashed",
            "jobs"
        );
        for p in &status.provers {
            let (stake, state, proven, misses, slashed) = match &p.record {
                Some(r) => (
                    r.stake.to_string(),
                    match pb::ProverStatus::try_from(r.status) {
                        Ok(pb::ProverStatus::Bonded) => "bonded",
                        Ok(pb::ProverStatus::Unbonding) => "unbonding",
                        Ok(pb::ProverStatus::Jailed) => "jailed",
                        _ => "?",
                    },
                    r.proven.to_string(),
                    r.misses.to_string(),
                    r.slashed.to_string(),
                ),
                None => ("-".into(), "unknown", "-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "{:<7} {:<6} {:<13} {:>10} {:<10} {:<7} {:>7} {:>6} {:>8} {:>5}",
                p.index,
                p.process,
                short_hash(&p.address),
                stake,
                state,
                if p.active { "yes" } else { "no" },
                proven,
                misses,
                slashed,
                p.open_jobs
            );
        }
    }
    if let Some(a) = &status.aggregator {
        let count = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "aggregator {} on {}: {} aggregates submitted, covering {} proofs",
            a.process,
            a.listen,
            count(a.aggregates),
            count(a.proofs)
        );
    }
    out
}

/// Shows the status table every `interval` until `shutdown` completes. On a
/// terminal the screen is redrawn; otherwise tables are printed one after
/// another. `footer` adds lines below the table (for example load counters).
pub async fn watch<F>(
    dir: &Path,
    manifest: &Manifest,
    interval: std::time::Duration,
    footer: impl Fn() -> String,
    shutdown: F,
) where
    F: Future<Output = ()>,
{
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let status = collect(dir, manifest).await;
        let mut text = render(&status);
        let extra = footer();
        if !extra.is_empty() {
            text.push('\n');
            text.push_str(&extra);
            text.push('\n');
        }
        if terminal {
            print!("\x1b[2J\x1b[H{text}\n(Ctrl-C to stop)\n");
        } else {
            println!("{text}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
