//! `seqnet-testnet bench-proving`: what slow provers cost ordering, on one
//! network configuration and one open-loop load, case by case.
//!
//! Cases, each on a fresh 4-validator network with the same load (rollups
//! 1..=R, open loop, `tx_bytes` of `RollupData`, workers spread over the
//! rollups):
//!
//! - the baseline: the rollups have no verifying key (nothing is proven);
//! - for each prover delay S: provers whose back end waits S and then proves
//!   with the reference circuit (`sleep S && seqnet-prover prove-job`),
//!   once with `few_provers` of them and once with enough for S:
//!   `ceil(R * (S + overhead) / span duration) + 1`, where the span covers
//!   `span_blocks` blocks of the baseline's block time.
//!
//! Figures per case: ordered tx/s and submit→ordered latency (CometBFT's
//! block times, as `bench` measures them), the proven lag in blocks and in
//! seconds (each height's commit time to the first `/finality` sample that
//! shows it proven), blocks built under back-pressure and why (the
//! `/finality` hold reason of the samples that were held), slashes, and
//! proofs and aggregates per block.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seqnet_proto::pb;
use seqnet_rollup_client::{keys, TxSigner};
use serde::Serialize;

use crate::bench::SeqnetSource;
use crate::binaries::Binaries;
use crate::error::{Result, TestnetError};
use crate::init::InitOptions;
use crate::loadgen::{self, BlockIndex, Counters, LoadSpec, LoopMode, TxSource};
use crate::network::{pick_free_base_port, Testnet};
use seqnet_rollup_client::cometbft::CometRpc;

/// Seconds a prover needs on top of its back end's wait: start
/// `prove-job`, prove (k = 8), submit, be included (measured on the 2-core
/// development machine: about 1 s).
pub const PROVING_OVERHEAD_SECS: f64 = 1.0;

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct ProvingBenchOptions {
    pub validators: usize,
    pub rollups: u64,
    /// Open-loop rate over all rollups (tx/s).
    pub rate: f64,
    pub tx_bytes: usize,
    pub workers: usize,
    /// Prover delays S (seconds).
    pub delays: Vec<f64>,
    /// Provers of the "too few" cases.
    pub few_provers: usize,
    /// Blocks per span; `None`: per delay, `max(5, (S + overhead) / 3
    /// blocks)` so that about four spans are proven at once.
    pub span_blocks: Option<u64>,
    /// Seconds of load per case; `None`: `max(60, 4 S + 30)` with enough
    /// provers, `max(60, 6 S + 30)` with too few (so the lag can reach the
    /// safety bound).
    pub duration_secs: Option<u64>,
    /// Seconds at the start of each case left out of the figures.
    pub warmup_secs: u64,
    pub timeout_commit: String,
    /// An aggregator beside the provers.
    pub aggregator: bool,
    /// Keep each case's network directory.
    pub keep: bool,
}

impl Default for ProvingBenchOptions {
    fn default() -> Self {
        ProvingBenchOptions {
            validators: 4,
            rollups: 3,
            rate: 60.0,
            tx_bytes: 512,
            workers: 6,
            delays: vec![0.0, 2.0, 10.0, 30.0],
            few_provers: 3,
            span_blocks: None,
            duration_secs: None,
            warmup_secs: 10,
            timeout_commit: InitOptions::default().timeout_commit,
            aggregator: true,
            keep: false,
        }
    }
}

/// One case's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CaseReport {
    pub name: String,
    /// Prover delay S (None: the baseline, nothing proven).
    pub delay_secs: Option<f64>,
    pub provers: usize,
    pub span_blocks: u64,
    pub proof_window: u64,
    pub max_unproven_blocks: u64,
    pub blocks: u64,
    pub block_interval_ms: f64,
    pub ordered_tps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub proven_lag_p50_blocks: u64,
    pub proven_lag_p95_blocks: u64,
    pub proven_lag_p50_secs: f64,
    pub proven_lag_p95_secs: f64,
    /// Heights in the window never seen proven before the case ended.
    pub unproven_heights: u64,
    /// Blocks built under back-pressure in the window.
    pub blocks_held: u64,
    /// Samples held, by hold reason.
    pub hold_reasons: BTreeMap<String, u64>,
    /// The node's line when ordering was first held.
    pub first_hold: Option<String>,
    /// Missed deadlines (each slashes its prover).
    pub slashes: u64,
    pub proofs_per_block: f64,
    pub aggregates_per_block: f64,
    /// Against the baseline: ordered tx/s and p50 latency ratios.
    pub tps_ratio: Option<f64>,
    pub p50_ratio: Option<f64>,
    /// `S + span duration + 3 blocks`, in blocks.
    pub lag_goal_blocks: Option<u64>,
    /// Enough provers: tps and p50 within 5 % of the baseline, lag p50 at
    /// most the goal, nothing held, nothing slashed.
    pub goals_met: Option<bool>,
}

/// Every case of one run.
#[derive(Clone, Debug, Serialize)]
pub struct ProvingBenchReport {
    pub options: ProvingBenchOptions,
    pub cpus: usize,
    pub cases: Vec<CaseReport>,
}

/// One sample of `/finality`.
#[derive(Clone, Debug)]
struct Sample {
    at: f64,
    ordered: u64,
    proven: u64,
    held: bool,
    reason: i32,
    detail: String,
}

async fn sample_finality(
    rpc: CometRpc,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Sample> {
    use prost::Message;
    let mut samples = Vec::new();
    loop {
        if let Ok(bytes) = rpc.abci_query("/finality").await {
            if let Ok(f) = pb::Finality::decode(bytes.as_slice()) {
                samples.push(Sample {
                    at: loadgen::unix_now(),
                    ordered: f.ordered_height,
                    proven: f.proven_height,
                    held: f.held,
                    reason: f.hold_reason,
                    detail: f.hold_detail,
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.wait_for(|s| *s) => return samples,
        }
    }
}

fn percentile_u64(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn percentile_f64(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One case to run.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    delay: Option<f64>,
    provers: usize,
    span_blocks: u64,
    proof_window: u64,
    max_unproven: u64,
}

fn invalid(name: &'static str, value: impl ToString, reason: &str) -> TestnetError {
    TestnetError::InvalidOption {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The cases for `delay` on a chain whose blocks take `block_secs`.
fn cases_for(opts: &ProvingBenchOptions, delay: f64, block_secs: f64) -> Vec<Case> {
    let proving_secs = delay + PROVING_OVERHEAD_SECS;
    let proving_blocks = (proving_secs / block_secs).ceil().max(1.0) as u64;
    let span_blocks = opts
        .span_blocks
        .unwrap_or_else(|| 5.max(proving_blocks.div_ceil(3)));
    // Three proving times for a job queued behind one other at its prover.
    let proof_window = (3 * proving_blocks).max(10);
    // A span and a window: enough for provers that keep up (their lag is a
    // span and a proving time), and reached within minutes when they do
    // not. Production adds a window for failures (docs/provers.md).
    let max_unproven = span_blocks + proof_window;
    let span_secs = span_blocks as f64 * block_secs;
    let enough = (opts.rollups as f64 * proving_secs / span_secs).ceil() as usize + 1;
    let mut out = vec![Case {
        name: format!("S={delay}s, {} provers", opts.few_provers),
        delay: Some(delay),
        provers: opts.few_provers,
        span_blocks,
        proof_window,
        max_unproven,
    }];
    if enough != opts.few_provers {
        out.push(Case {
            name: format!("S={delay}s, {enough} provers"),
            delay: Some(delay),
            provers: enough,
            ..out[0].clone()
        });
    }
    out
}

/// Runs every case; progress goes to the log (stderr).
pub async fn run(
    work: &Path,
    opts: &ProvingBenchOptions,
    binaries: &Binaries,
) -> Result<ProvingBenchReport> {
    if opts.rollups == 0 || opts.workers == 0 || opts.delays.is_empty() {
        return Err(invalid(
            "--rollups/--workers/--delays",
            format!("{}/{}/{:?}", opts.rollups, opts.workers, opts.delays),
            "want at least one rollup, one worker and one delay",
        ));
    }
    if opts.delays.iter().any(|d| !(d.is_finite() && *d >= 0.0)) {
        return Err(invalid(
            "--delays",
            format!("{:?}", opts.delays),
            "want seconds >= 0",
        ));
    }
    std::fs::create_dir_all(work).map_err(|e| TestnetError::io(work, e))?;
    let baseline_case = Case {
        name: "baseline (no verifying key)".into(),
        delay: None,
        provers: 0,
        span_blocks: opts.span_blocks.unwrap_or(5),
        proof_window: 20,
        max_unproven: 100,
    };
    eprintln!("bench-proving: {}", baseline_case.name);
    let baseline = run_case(work, opts, binaries, &baseline_case, 0).await?;
    let block_secs = (baseline.block_interval_ms / 1000.0).max(0.05);
    eprintln!(
        "bench-proving: baseline {:.1} tx/s, p50 {:.0} ms, {:.0} ms blocks",
        baseline.ordered_tps, baseline.p50_ms, baseline.block_interval_ms
    );
    let mut cases = vec![baseline.clone()];
    for (i, delay) in opts.delays.iter().enumerate() {
        for case in cases_for(opts, *delay, block_secs) {
            eprintln!(
                "bench-proving: {} (span {} blocks, window {}, max_unproven {})",
                case.name, case.span_blocks, case.proof_window, case.max_unproven
            );
            let mut report = run_case(work, opts, binaries, &case, i + 1).await?;
            report.tps_ratio = Some(report.ordered_tps / baseline.ordered_tps.max(1e-9));
            report.p50_ratio = Some(report.p50_ms / baseline.p50_ms.max(1e-9));
            let goal =
                ((delay + PROVING_OVERHEAD_SECS) / block_secs).ceil() as u64 + case.span_blocks + 3;
            report.lag_goal_blocks = Some(goal);
            report.goals_met = Some(
                (report.tps_ratio.unwrap_or(0.0) - 1.0).abs() <= 0.05
                    && report.p50_ratio.unwrap_or(f64::MAX) <= 1.05
                    && report.proven_lag_p50_blocks <= goal
                    && report.blocks_held == 0
                    && report.slashes == 0,
            );
            eprintln!("bench-proving: {}", render_row(&report));
            cases.push(report);
        }
    }
    Ok(ProvingBenchReport {
        options: opts.clone(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cases,
    })
}

async fn run_case(
    work: &Path,
    opts: &ProvingBenchOptions,
    binaries: &Binaries,
    case: &Case,
    index: usize,
) -> Result<CaseReport> {
    let dir = work.join(format!("case-{index}-{}", case.provers));
    let init = InitOptions {
        validators: opts.validators,
        chain_id: "seqnet-bench-proving".into(),
        base_port: pick_free_base_port(opts.validators.max(case.provers))?,
        rollups: opts.rollups,
        users: opts.workers,
        timeout_commit: opts.timeout_commit.clone(),
        force: true,
        provers: case.provers,
        proof_window: case.proof_window,
        max_unproven_blocks: (case.provers > 0).then_some(case.max_unproven),
        span_blocks: case.span_blocks,
        prover_delay_ms: case.delay.map_or(0, |d| (d * 1000.0).round() as u64),
        aggregator: opts.aggregator && case.provers > 0,
        epoch_length: 5,
        sequencer_log_filter: "warn".into(),
        cometbft_log_level: "error".into(),
        ..InitOptions::default()
    };
    let mut net = Testnet::init(&dir, &init, binaries.clone())?;
    let timeout = Duration::from_secs(180);
    net.start(timeout).await?;
    if case.provers > 0 {
        net.register_provers(timeout).await?;
        net.start_provers()?;
        net.wait_for_active_provers(case.provers, timeout).await?;
    }
    let result = measure(&mut net, opts, case).await;
    net.stop();
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn sources(net: &Testnet, opts: &ProvingBenchOptions) -> Result<Vec<Box<dyn TxSource>>> {
    let manifest = net.manifest();
    (0..opts.workers)
        .map(|w| -> Result<Box<dyn TxSource>> {
            let name = format!("user-{}", w + 1);
            let path = net.dir().join(manifest.key_path(&name)?);
            let signer = TxSigner::new(keys::load(&path)?, manifest.chain_id.clone())
                .with_fees(manifest.fees.schedule());
            let rollup = (w as u64 % opts.rollups) + 1;
            Ok(Box::new(SeqnetSource::new(signer, rollup, opts.tx_bytes)))
        })
        .collect()
}

/// Sum of `series` on node 0's metrics, or of every prover-side process
/// (the aggregator), 0 when absent.
async fn metric(port: u16, series: &str) -> f64 {
    match crate::scrape::fetch(port).await {
        Ok(text) => crate::scrape::sum(&text, series).unwrap_or(0.0),
        Err(_) => 0.0,
    }
}

async fn measure(net: &mut Testnet, opts: &ProvingBenchOptions, case: &Case) -> Result<CaseReport> {
    let manifest = net.manifest().clone();
    let node0 = manifest
        .nodes
        .first()
        .ok_or_else(|| invalid("validators", 0, "the network has no node"))?;
    let rpc = CometRpc::new(node0.rpc_addr());
    let duration = Duration::from_secs(opts.duration_secs.unwrap_or_else(|| {
        let s = case.delay.unwrap_or(0.0);
        let factor = if case.provers == opts.few_provers {
            6.0
        } else {
            4.0
        };
        (60.0f64).max(factor * s + 30.0) as u64
    }));
    let (stop_samples, samples_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_finality(rpc.clone(), samples_rx));
    let start_height = net.finality(0).await?.ordered_height + 1;
    let proven_before = metric(node0.ports.metrics, "seqnet_proof_jobs_proven_total").await;
    let aggregator_port = manifest.aggregator.as_ref().map(|a| a.metrics_port);
    let aggregates_before = match aggregator_port {
        Some(port) => metric(port, "seqnet_prover_aggregates_submitted_total").await,
        None => 0.0,
    };
    let spec = LoadSpec {
        mode: LoopMode::Open { rate: opts.rate },
        workers: opts.workers,
        duration: Some(duration),
        endpoints: manifest.nodes.iter().map(|n| n.rpc_addr()).collect(),
    };
    let (_stop_load, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let log = loadgen::run(
        &spec,
        sources(net, opts)?,
        Arc::new(Counters::default()),
        stop_rx,
    )
    .await?;
    let mut index = BlockIndex::new(rpc.clone(), start_height);
    if !loadgen::drain(&mut index, &log, Duration::from_secs(60)).await? {
        tracing::warn!("not every acknowledged transaction was ordered within 60 s");
    }
    let warmup = Duration::from_secs(opts.warmup_secs);
    let stats = loadgen::analyze(&log, &index, warmup, opts.tx_bytes, spec.mode, spec.workers);
    // Let the provers finish the window's last spans (a span and a proving
    // time, with room), so their lag in seconds is measured too.
    let window_end = log.ended;
    let last_height = index
        .blocks
        .iter()
        .filter(|(_, b)| b.time <= window_end)
        .map(|(h, _)| *h)
        .max()
        .unwrap_or(start_height);
    if case.provers > 0 {
        let settle = Duration::from_secs_f64(case.delay.unwrap_or(0.0) * 3.0 + 60.0);
        let since = Instant::now();
        while since.elapsed() < settle {
            if net.finality(0).await?.proven_height >= last_height {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let proven_after = metric(node0.ports.metrics, "seqnet_proof_jobs_proven_total").await;
    let aggregates_after = match aggregator_port {
        Some(port) => metric(port, "seqnet_prover_aggregates_submitted_total").await,
        None => 0.0,
    };
    let _ = stop_samples.send(true);
    let samples = sampler.await.unwrap_or_default();
    let end_height = net.finality(0).await?.ordered_height;
    let from = log.started + warmup.as_secs_f64();

    // Lag in blocks, over the samples of the load window.
    let mut lags: Vec<u64> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= window_end)
        .map(|s| s.ordered.saturating_sub(s.proven))
        .collect();
    lags.sort_unstable();
    // Lag in seconds: each height's commit time to the first sample that
    // shows it proven.
    let mut lag_secs = Vec::new();
    let mut unproven = 0u64;
    for (height, block) in &index.blocks {
        if block.time < from || block.time > window_end {
            continue;
        }
        let at = samples.iter().find(|s| s.proven >= *height).map(|s| s.at);
        match at {
            Some(at) => lag_secs.push((at - block.time).max(0.0)),
            None => unproven += 1,
        }
    }
    lag_secs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    // Blocks built under back-pressure: each held sample at ordered height
    // o means block o + 1 was held.
    let mut held_blocks = std::collections::BTreeSet::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_hold = None;
    for s in samples
        .iter()
        .filter(|s| s.at >= from && s.at <= window_end && s.held)
    {
        held_blocks.insert(s.ordered + 1);
        *reasons
            .entry(seqnet_proto::hold_reason_label(s.reason).to_string())
            .or_insert(0) += 1;
        if first_hold.is_none() {
            first_hold = Some(format!(
                "{}: {}",
                seqnet_proto::hold_reason_label(s.reason),
                s.detail
            ));
        }
    }
    // Slashes: missed deadlines of every prover.
    let mut slashes = 0;
    let mut client = seqnet_rollup_client::RollupClient::new(vec![node0.grpc_url()])
        .map_err(|e| TestnetError::grpc(node0.grpc_url(), e))?;
    for index in 0..manifest.provers.len() {
        let address = net.prover_address(index)?;
        if let Ok(info) = client.prover(address).await {
            slashes += info.prover.map_or(0, |p| p.misses);
        }
    }
    let blocks = end_height.saturating_sub(start_height).max(1);
    tracing::info!(elapsed = ?started.elapsed(), case = %case.name, "case measured");
    Ok(CaseReport {
        name: case.name.clone(),
        delay_secs: case.delay,
        provers: case.provers,
        span_blocks: case.span_blocks,
        proof_window: case.proof_window,
        max_unproven_blocks: case.max_unproven,
        blocks,
        block_interval_ms: stats.block_interval_ms,
        ordered_tps: stats.tps,
        p50_ms: stats.p50_ms,
        p95_ms: stats.p95_ms,
        p99_ms: stats.p99_ms,
        proven_lag_p50_blocks: percentile_u64(&lags, 50.0),
        proven_lag_p95_blocks: percentile_u64(&lags, 95.0),
        proven_lag_p50_secs: percentile_f64(&lag_secs, 50.0),
        proven_lag_p95_secs: percentile_f64(&lag_secs, 95.0),
        unproven_heights: if case.provers > 0 { unproven } else { 0 },
        blocks_held: held_blocks.len() as u64,
        hold_reasons: reasons,
        first_hold,
        slashes,
        proofs_per_block: (proven_after - proven_before).max(0.0) / blocks as f64,
        aggregates_per_block: (aggregates_after - aggregates_before).max(0.0) / blocks as f64,
        ..CaseReport::default()
    })
}

fn render_row(c: &CaseReport) -> String {
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
    format!(
        "| {} | {} | {} | {:.1} ({}) | {:.0} / {:.0} / {:.0} ({}) | {} / {} | {:.1} / {:.1} | {} | {} | {} | {:.2} / {:.2} | {} |",
        c.name,
        c.span_blocks,
        c.proof_window,
        c.ordered_tps,
        ratio(c.tps_ratio),
        c.p50_ms,
        c.p95_ms,
        c.p99_ms,
        ratio(c.p50_ratio),
        c.proven_lag_p50_blocks,
        c.proven_lag_p95_blocks,
        c.proven_lag_p50_secs,
        c.proven_lag_p95_secs,
        c.lag_goal_blocks.map_or("-".into(), |g| g.to_string()),
        if c.blocks_held == 0 {
            "0".to_string()
        } else {
            format!(
                "{} ({})",
                c.blocks_held,
                c.hold_reasons
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        c.slashes,
        c.proofs_per_block,
        c.aggregates_per_block,
        match c.goals_met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        }
    )
}

/// The report as a Markdown table with its settings.
pub fn render(report: &ProvingBenchReport) -> String {
    let o = &report.options;
    let mut out = format!(
        "bench-proving: {} validators, {} rollups, {} tx/s of {}-byte RollupData over {} workers, timeout_commit {}, {} CPUs\n\n",
        o.validators, o.rollups, o.rate, o.tx_bytes, o.workers, o.timeout_commit, report.cpus
    );
    out.push_str("| case | span | window | ordered tx/s (ratio) | submit→ordered p50 / p95 / p99 ms (p50 ratio) | proven lag p50 / p95 blocks | p50 / p95 s | lag goal | blocks held (why) | slashes | proofs / aggregates per block | goals |\n");
    out.push_str(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |\n",
    );
    for case in &report.cases {
        out.push_str(&render_row(case));
        out.push('\n');
    }
    for case in report.cases.iter().filter(|c| c.first_hold.is_some()) {
        out.push_str(&format!(
            "\n{}: first held: {}",
            case.name,
            case.first_hold.as_deref().unwrap_or_default()
        ));
    }
    out.push('\n');
    out
}

/// Writes the report as JSON.
pub fn save(report: &ProvingBenchReport, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|e| TestnetError::parse(path, e))?;
    std::fs::write(path, text).map_err(|e| TestnetError::io(path, e))
}

/// A fresh directory for the cases' networks.
pub fn default_work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("seqnet-bench-proving-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_size_spans_windows_and_provers_from_the_delay() {
        let opts = ProvingBenchOptions::default();
        // 0.35 s blocks, S = 10: proving 11 s = 32 blocks; span 11 blocks
        // (3.85 s); enough = ceil(3 * 11 / 3.85) + 1 = 10.
        let cases = cases_for(&opts, 10.0, 0.35);
        assert_eq!(cases.len(), 2);
        assert_eq!((cases[0].provers, cases[1].provers), (3, 10));
        assert_eq!(cases[0].span_blocks, 11);
        assert_eq!(cases[0].proof_window, 96);
        assert_eq!(cases[0].max_unproven, 11 + 96);
        // S = 0: spans of 5, enough = ceil(3 * 1 / 1.75) + 1 = 3: one case.
        let cases = cases_for(&opts, 0.0, 0.35);
        assert_eq!(cases.len(), 1);
        assert_eq!((cases[0].span_blocks, cases[0].proof_window), (5, 10));
    }
}
