//! The invariant checker run after every scenario (`seqnet-testnet check`).
//!
//! Each check reads the running network through CometBFT's RPC (headers,
//! blocks, `abci_query` of the seqnet app) and the node logs, and gives one
//! [`Verdict`]: pass, breach or not applicable.
//!
//! 1. **app-hash**: every node answers, and every height up to the lowest
//!    node's has the same block hash and app hash on every node.
//! 2. **acked-once**: every transaction the load generator saw acknowledged
//!    (CheckTx code 0; from its [`LoadLog`]) is in exactly one block, and no
//!    transaction occurs twice in the chain.
//! 3. **forced**: every `ForceInclude` request in the chain is included (or
//!    failed) at or before its deadline, or is still pending with its
//!    deadline ahead (`/forced/<hash>`).
//! 4. **proofs**: while a prover lives, no open proof job is older than its
//!    proof window times (1 + the number of provers) (deadline plus the
//!    fail-over bound: each fail-over gives the next prover one more
//!    window), from `/jobs/<rollup>`; and the proven lag of `/finality`
//!    stays within the same bound.
//! 5. **no-panic**: no node or prover log holds a Rust panic, a Go panic or
//!    a CometBFT `CONSENSUS FAILURE`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use seqnet_proto::{pb, tx::Action, Transaction};
use serde::Serialize;

use crate::error::{Result, TestnetError};
use crate::loadgen::LoadLog;
use crate::manifest::Manifest;
use crate::process;
use seqnet_rollup_client::cometbft::CometRpc;

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub name: &'static str,
    /// `None`: not applicable to this network.
    pub passed: Option<bool>,
    pub detail: String,
}

impl Verdict {
    fn pass(name: &'static str, detail: String) -> Verdict {
        Verdict {
            name,
            passed: Some(true),
            detail,
        }
    }

    fn breach(name: &'static str, detail: String) -> Verdict {
        Verdict {
            name,
            passed: Some(false),
            detail,
        }
    }

    fn skip(name: &'static str, detail: String) -> Verdict {
        Verdict {
            name,
            passed: None,
            detail,
        }
    }
}

/// Every check's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub verdicts: Vec<Verdict>,
}

impl CheckReport {
    /// No breach.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed != Some(false))
    }

    /// The verdict table.
    pub fn render(&self) -> String {
        let mut out = format!("{:<11} {:<7} detail\n", "check", "verdict");
        for v in &self.verdicts {
            let verdict = match v.passed {
                Some(true) => "PASS",
                Some(false) => "BREACH",
                None => "n/a",
            };
            out.push_str(&format!("{:<11} {:<7} {}\n", v.name, verdict, v.detail));
        }
        out.push_str(if self.passed() {
            "verdict: PASS\n"
        } else {
            "verdict: BREACH\n"
        });
        out
    }
}

async fn query<M: Message + Default>(rpc: &CometRpc, path: &str) -> Result<M> {
    let bytes = rpc.abci_query(path).await?;
    M::decode(bytes.as_slice()).map_err(|e| TestnetError::Rpc {
        addr: rpc.addr().to_string(),
        method: format!("abci_query {path}"),
        reason: format!("not a {}: {e}", std::any::type_name::<M>()),
    })
}

/// Runs every check against the network in `dir`; `load` is what the load
/// generator sent (the acked-once check is skipped without it).
pub async fn check(dir: &Path, manifest: &Manifest, load: Option<&LoadLog>) -> CheckReport {
    check_with(dir, manifest, load, None).await
}

/// [`check`] with the number of running provers given (compose mode);
/// `None` counts live prover processes from their pid files.
pub async fn check_with(
    dir: &Path,
    manifest: &Manifest,
    load: Option<&LoadLog>,
    provers_alive: Option<usize>,
) -> CheckReport {
    let mut verdicts = Vec::new();
    let (hash_verdict, common) = app_hashes(manifest).await;
    verdicts.push(hash_verdict);
    let rpc = manifest
        .nodes
        .first()
        .map(|n| CometRpc::new(n.rpc_addr()).with_timeout(Duration::from_secs(10)));
    match (rpc, common) {
        (Some(rpc), Some(tip)) => {
            match scan_chain(&rpc, tip).await {
                Ok(chain) => {
                    verdicts.push(acked_once(&chain, load));
                    verdicts.push(forced(&rpc, &chain, tip).await);
                }
                Err(e) => {
                    verdicts.push(Verdict::breach(
                        "acked-once",
                        format!("cannot read blocks: {e}"),
                    ));
                    verdicts.push(Verdict::breach(
                        "forced",
                        format!("cannot read blocks: {e}"),
                    ));
                }
            }
            verdicts.push(proofs(dir, manifest, &rpc, tip, provers_alive).await);
        }
        _ => {
            for name in ["acked-once", "forced", "proofs"] {
                verdicts.push(Verdict::breach(name, "no node answers".into()));
            }
        }
    }
    verdicts.push(no_panic(dir, manifest));
    CheckReport { verdicts }
}

/// Heights and hashes on every node, each from the lowest height it holds
/// (a node that joined by state sync starts at its snapshot) against node
/// 0's; returns the verdict and the lowest height all nodes reached.
async fn app_hashes(manifest: &Manifest) -> (Verdict, Option<u64>) {
    const NAME: &str = "app-hash";
    let mut tips = Vec::new();
    let mut earliest = Vec::new();
    for node in &manifest.nodes {
        let rpc = CometRpc::new(node.rpc_addr()).with_timeout(Duration::from_secs(5));
        match rpc.status().await {
            Ok(s) => {
                tips.push(s.height);
                earliest.push(s.earliest_height);
            }
            Err(e) => {
                return (
                    Verdict::breach(NAME, format!("node{}: {e}", node.index)),
                    None,
                )
            }
        }
    }
    let Some(&common) = tips.iter().min() else {
        return (Verdict::breach(NAME, "no nodes".into()), None);
    };
    if common == 0 {
        return (Verdict::breach(NAME, "a node has no blocks".into()), None);
    }
    let mut reference: Option<Vec<seqnet_rollup_client::cometbft::HeaderInfo>> = None;
    for (node, &from) in manifest.nodes.iter().zip(&earliest) {
        let rpc = CometRpc::new(node.rpc_addr()).with_timeout(Duration::from_secs(10));
        // Node 0 is the reference from height 1; a node holding less is
        // compared where it has blocks.
        let from = if reference.is_none() {
            1
        } else {
            from.min(common)
        };
        let headers = match rpc.headers(from, common).await {
            Ok(h) => h,
            Err(e) => {
                return (
                    Verdict::breach(NAME, format!("node{}: {e}", node.index)),
                    Some(common),
                )
            }
        };
        match &reference {
            None => reference = Some(headers),
            Some(all) => {
                let skip = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
                let first: Vec<_> = all.iter().skip(skip).cloned().collect();
                for (a, b) in first.iter().zip(&headers) {
                    if a.block_hash != b.block_hash || a.app_hash != b.app_hash {
                        return (
                            Verdict::breach(
                                NAME,
                                format!(
                                    "height {}: node0 block {} app {}, node{} block {} app {}",
                                    a.height,
                                    a.block_hash,
                                    a.app_hash,
                                    node.index,
                                    b.block_hash,
                                    b.app_hash
                                ),
                            ),
                            Some(common),
                        );
                    }
                }
                if first.len() != headers.len() {
                    return (
                        Verdict::breach(
                            NAME,
                            format!(
                                "node{} returned {} headers, node0 {}",
                                node.index,
                                headers.len(),
                                first.len()
                            ),
                        ),
                        Some(common),
                    );
                }
            }
        }
    }
    (
        Verdict::pass(
            NAME,
            format!(
                "{} nodes agree on heights 1..={common} (tips {:?}{})",
                manifest.nodes.len(),
                tips,
                if earliest.iter().any(|&e| e > 1) {
                    format!("; from heights {earliest:?}")
                } else {
                    String::new()
                }
            ),
        ),
        Some(common),
    )
}

/// What one scan of the chain found.
struct Chain {
    occurrences: BTreeMap<[u8; 32], Vec<u64>>,
    /// Inner transaction hashes of `ForceInclude` actions, with the height.
    forced: Vec<([u8; 32], u64)>,
}

async fn scan_chain(rpc: &CometRpc, tip: u64) -> Result<Chain> {
    let mut chain = Chain {
        occurrences: BTreeMap::new(),
        forced: Vec::new(),
    };
    for height in 1..=tip {
        for tx in rpc.block_txs(height).await? {
            chain
                .occurrences
                .entry(seqnet_proto::sha256(&tx))
                .or_default()
                .push(height);
            // The injected extended commit and foreign bytes do not decode.
            if let Ok(decoded) = Transaction::decode(&tx, seqnet_proto::tx::HARD_MAX_TX_BYTES, 1024)
            {
                for action in &decoded.body.actions {
                    if let Action::ForceInclude { tx: inner } = action {
                        chain.forced.push((inner.hash(), height));
                    }
                }
            }
        }
    }
    Ok(chain)
}

fn acked_once(chain: &Chain, load: Option<&LoadLog>) -> Verdict {
    const NAME: &str = "acked-once";
    let duplicates: Vec<String> = chain
        .occurrences
        .iter()
        .filter(|(_, heights)| heights.len() > 1)
        .take(3)
        .map(|(hash, heights)| format!("{} at {heights:?}", hex::encode(&hash[..8])))
        .collect();
    if !duplicates.is_empty() {
        return Verdict::breach(
            NAME,
            format!(
                "transactions in more than one block: {}",
                duplicates.join(", ")
            ),
        );
    }
    let Some(load) = load else {
        return Verdict::skip(
            NAME,
            "no load log given; the chain has no duplicate transactions".into(),
        );
    };
    let acked: Vec<_> = load.acked().collect();
    let missing: Vec<String> = acked
        .iter()
        .filter(|t| !chain.occurrences.contains_key(&t.hash))
        .map(|t| {
            format!(
                "{} (worker {}, sent at {:.3})",
                hex::encode(&t.hash[..8]),
                t.worker,
                t.sent
            )
        })
        .collect();
    if !missing.is_empty() {
        return Verdict::breach(
            NAME,
            format!(
                "{} of {} acknowledged transactions are in no block, e.g. {}",
                missing.len(),
                acked.len(),
                missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    Verdict::pass(
        NAME,
        format!(
            "{} acknowledged transactions each in exactly one block ({} sent, {} rejected)",
            acked.len(),
            load.txs.len(),
            load.rejected
        ),
    )
}

async fn forced(rpc: &CometRpc, chain: &Chain, tip: u64) -> Verdict {
    const NAME: &str = "forced";
    if chain.forced.is_empty() {
        return Verdict::skip(NAME, "no ForceInclude requests in the chain".into());
    }
    let mut included = 0;
    let mut pending = 0;
    let mut failed = 0;
    for (hash, height) in &chain.forced {
        let request: pb::ForcedRequest =
            match query(rpc, &format!("/forced/{}", hex::encode(hash))).await {
                Ok(r) => r,
                Err(e) => return Verdict::breach(NAME, format!("request at height {height}: {e}")),
            };
        let status =
            pb::ForcedStatus::try_from(request.status).unwrap_or(pb::ForcedStatus::Unspecified);
        let late = match status {
            pb::ForcedStatus::Included => {
                included += 1;
                request.included_height > request.deadline
            }
            pb::ForcedStatus::Failed => {
                failed += 1;
                false
            }
            pb::ForcedStatus::Pending => {
                pending += 1;
                tip > request.deadline
            }
            pb::ForcedStatus::Unspecified => true,
        };
        if late {
            return Verdict::breach(
                NAME,
                format!(
                    "{} requested at {} deadline {}: {:?} (included at {}, tip {tip})",
                    hex::encode(&hash[..8]),
                    request.requested_height,
                    request.deadline,
                    status,
                    request.included_height
                ),
            );
        }
    }
    Verdict::pass(
        NAME,
        format!("{} requests: {included} included in time, {failed} failed in time, {pending} pending within window", chain.forced.len()),
    )
}

async fn proofs(
    dir: &Path,
    manifest: &Manifest,
    rpc: &CometRpc,
    tip: u64,
    provers_alive: Option<usize>,
) -> Verdict {
    const NAME: &str = "proofs";
    let Some(proving) = &manifest.proving else {
        return Verdict::skip(NAME, "no provers in this testnet".into());
    };
    let alive = provers_alive.unwrap_or_else(|| {
        manifest
            .provers
            .iter()
            .filter(|p| {
                process::read_pid(&dir.join(&p.dir), crate::network::PROVER_PROCESS)
                    .is_some_and(process::is_alive)
            })
            .count()
    });
    if alive == 0 {
        return Verdict::skip(NAME, "no prover is running".into());
    }
    let bound = proving
        .proof_window
        .saturating_mul(1 + manifest.provers.len() as u64);
    let mut open = 0;
    for rollup in &manifest.rollups {
        let jobs: pb::RollupJobs = match query(rpc, &format!("/jobs/{}", rollup.id)).await {
            Ok(j) => j,
            Err(e) => return Verdict::breach(NAME, format!("rollup {}: {e}", rollup.id)),
        };
        for job in &jobs.open {
            open += 1;
            if job.assigned.is_empty() {
                continue; // waiting for an active prover: nobody to blame
            }
            // A span's job opens when the span closes, at its to_height.
            let age = tip.saturating_sub(job.to_height);
            if age > bound {
                return Verdict::breach(
                    NAME,
                    format!(
                        "rollup {} span {}..={}: open for {age} blocks > bound {bound} (window {} x (1 + {} provers)), deadline {}, {} reassignments",
                        rollup.id,
                        job.from_height,
                        job.to_height,
                        proving.proof_window,
                        manifest.provers.len(),
                        job.deadline,
                        job.reassignments
                    ),
                );
            }
        }
    }
    let finality: pb::Finality = match query(rpc, "/finality").await {
        Ok(f) => f,
        Err(e) => return Verdict::breach(NAME, format!("/finality: {e}")),
    };
    let lag = finality
        .ordered_height
        .saturating_sub(finality.proven_height);
    // Proven finality also trails by the span still collecting.
    let lag_bound = bound.saturating_add(proving.span_blocks);
    if lag > lag_bound && finality.open_jobs > 0 {
        return Verdict::breach(
            NAME,
            format!(
                "proven height {} lags ordered height {} by {lag} > bound {lag_bound}",
                finality.proven_height, finality.ordered_height
            ),
        );
    }
    Verdict::pass(
        NAME,
        format!(
            "{open} open jobs within {bound} blocks; proven {} of ordered {} ({alive} provers running)",
            finality.proven_height, finality.ordered_height
        ),
    )
}

/// Lines that mean a process panicked or consensus broke.
const PANIC_MARKERS: [&str; 4] = ["panicked at", "panic:", "CONSENSUS FAILURE", "fatal error:"];

fn no_panic(dir: &Path, manifest: &Manifest) -> Verdict {
    const NAME: &str = "no-panic";
    let mut logs = Vec::new();
    for node in &manifest.nodes {
        for name in process::PROCESSES {
            logs.push(process::log_path(&dir.join(&node.dir), name));
        }
    }
    for prover in &manifest.provers {
        logs.push(process::log_path(
            &dir.join(&prover.dir),
            crate::network::PROVER_PROCESS,
        ));
    }
    let mut scanned = 0;
    for log in &logs {
        let Ok(bytes) = std::fs::read(log) else {
            continue;
        };
        scanned += 1;
        let text = String::from_utf8_lossy(&bytes);
        if let Some(line) = text
            .lines()
            .find(|l| PANIC_MARKERS.iter().any(|m| l.contains(m)))
        {
            let short: String = line.chars().take(160).collect();
            return Verdict::breach(NAME, format!("{}: {short}", log.display()));
        }
    }
    Verdict::pass(NAME, format!("{scanned} logs without panics"))
}
