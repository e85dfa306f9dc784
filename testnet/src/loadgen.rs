//! A transaction load generator for any CometBFT application, and the
//! block-store index that turns what it sent into latencies.
//!
//! Workers submit through CometBFT's `broadcast_tx_sync` (the same path for
//! the kvstore app and for seqnet, so the transport costs the same). A
//! [`TxSource`] per worker makes the transactions: key=value pairs for the
//! kvstore app, signed `RollupData` for seqnet (one account per worker, so a
//! worker's nonces arrive in order).
//!
//! - **Open loop** ([`LoopMode::Open`]): the target rate is split evenly
//!   over the workers, each sends on its own schedule and never bursts to
//!   catch up (a worker slower than its period falls behind; the report
//!   says what rate was achieved).
//! - **Closed loop** ([`LoopMode::Closed`]): each worker sends its next
//!   transaction as soon as the previous one is acknowledged; `workers` is
//!   the concurrency, and the committed rate is the maximum at that
//!   concurrency.
//!
//! A transaction is *acknowledged* when CheckTx accepted it (`code` 0).
//! Latency to ordered is measured afterwards from the block store, as
//! CometBFT's own load tools do: a transaction's commit time is the time of
//! the block *after* the one that holds it (the median of the precommit
//! timestamps that committed it), minus the local send time (one machine,
//! one clock). A transport failure re-sends the same bytes, so one logical
//! transaction never has two encodings; if the re-send finds it already in
//! the mempool cache, its verdict is unknown and it is not counted as
//! acknowledged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::error::{Result, TestnetError};
use seqnet_rollup_client::cometbft::CometRpc;

/// Makes one worker's transactions.
pub trait TxSource: Send + 'static {
    /// The next transaction's bytes.
    fn next_tx(&mut self) -> Vec<u8>;
    /// CheckTx rejected the last transaction (`log` says why): it is not in
    /// any mempool, so its slot (a nonce) may be reused.
    fn rejected(&mut self, log: &str) {
        let _ = log;
    }
}

/// How the load is paced.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum LoopMode {
    /// A target rate (transactions per second over all workers).
    Open { rate: f64 },
    /// Every worker keeps one transaction in flight.
    Closed,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub mode: LoopMode,
    pub workers: usize,
    /// `None`: until `stop` turns true.
    pub duration: Option<Duration>,
    /// CometBFT RPC addresses (`127.0.0.1:port`); worker `w` uses
    /// `endpoints[w % len]`.
    pub endpoints: Vec<String>,
}

impl LoadSpec {
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 || self.workers > 4096 {
            return Err(TestnetError::InvalidOption {
                name: "workers",
                value: self.workers.to_string(),
                reason: "want 1..=4096".into(),
            });
        }
        if self.endpoints.is_empty() {
            return Err(TestnetError::InvalidOption {
                name: "endpoints",
                value: String::new(),
                reason: "want at least one RPC address".into(),
            });
        }
        if let LoopMode::Open { rate } = self.mode {
            if !(rate > 0.0 && rate.is_finite()) {
                return Err(TestnetError::InvalidOption {
                    name: "rate",
                    value: rate.to_string(),
                    reason: "want a positive number of transactions per second".into(),
                });
            }
        }
        Ok(())
    }
}

/// One transaction the generator sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SentTx {
    /// SHA-256 of the bytes (CometBFT's tx hash).
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
    /// Local send time, seconds since the Unix epoch.
    pub sent: f64,
    /// CheckTx accepted it.
    pub acked: bool,
    pub worker: usize,
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a 32-byte hex hash")))
    }
}

/// Live counters (for progress lines).
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub rejected: AtomicU64,
    pub errors: AtomicU64,
}

/// Everything a run sent, in per-worker send order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadLog {
    pub started: f64,
    pub ended: f64,
    pub txs: Vec<SentTx>,
    pub rejected: u64,
    pub errors: u64,
    pub last_problem: Option<String>,
}

impl LoadLog {
    pub fn acked(&self) -> impl Iterator<Item = &SentTx> {
        self.txs.iter().filter(|t| t.acked)
    }

    /// Saves the log as JSON (what `seqnet-testnet check --load` reads).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| TestnetError::parse(path, e))?;
        std::fs::write(path, text).map_err(|e| TestnetError::io(path, e))
    }

    pub fn load(path: &std::path::Path) -> Result<LoadLog> {
        let text = std::fs::read_to_string(path).map_err(|e| TestnetError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| TestnetError::parse(path, e))
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs the load; `sources[w]` feeds worker `w` (`spec.workers` of them).
pub async fn run(
    spec: &LoadSpec,
    sources: Vec<Box<dyn TxSource>>,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> Result<LoadLog> {
    spec.validate()?;
    if sources.len() != spec.workers {
        return Err(TestnetError::InvalidOption {
            name: "sources",
            value: sources.len().to_string(),
            reason: format!("want one per worker ({})", spec.workers),
        });
    }
    let period = match spec.mode {
        LoopMode::Open { rate } => Some(Duration::from_secs_f64(spec.workers as f64 / rate)),
        LoopMode::Closed => None,
    };
    let started = unix_now();
    let deadline = spec.duration.map(|d| Instant::now() + d);
    let mut tasks = tokio::task::JoinSet::new();
    for (worker, source) in sources.into_iter().enumerate() {
        let endpoint = spec.endpoints[worker % spec.endpoints.len()].clone();
        tasks.spawn(worker_task(
            worker,
            CometRpc::new(endpoint).with_timeout(Duration::from_secs(15)),
            source,
            period,
            deadline,
            counters.clone(),
            stop.clone(),
        ));
    }
    let mut log = LoadLog {
        started,
        ..LoadLog::default()
    };
    while let Some(done) = tasks.join_next().await {
        if let Ok(worker) = done {
            log.txs.extend(worker.txs);
            log.rejected += worker.rejected;
            log.errors += worker.errors;
            if worker.last_problem.is_some() {
                log.last_problem = worker.last_problem;
            }
        }
    }
    log.ended = unix_now();
    log.txs.sort_by(|a, b| {
        a.sent
            .partial_cmp(&b.sent)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(log)
}

#[derive(Default)]
struct WorkerLog {
    txs: Vec<SentTx>,
    rejected: u64,
    errors: u64,
    last_problem: Option<String>,
}

fn should_stop(deadline: Option<Instant>, stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || deadline.is_some_and(|d| Instant::now() >= d)
}

async fn pause(duration: Duration, deadline: Option<Instant>, stop: &mut watch::Receiver<bool>) {
    let duration = match deadline {
        Some(d) => duration.min(d.saturating_duration_since(Instant::now())),
        None => duration,
    };
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

async fn worker_task(
    worker: usize,
    rpc: CometRpc,
    mut source: Box<dyn TxSource>,
    period: Option<Duration>,
    deadline: Option<Instant>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> WorkerLog {
    let mut log = WorkerLog::default();
    // Spread the open-loop workers over one period.
    if let Some(period) = period {
        let offset = period.mul_f64((worker % 64) as f64 / 64.0);
        pause(offset, deadline, &mut stop).await;
    }
    let mut next = Instant::now();
    while !should_stop(deadline, &stop) {
        let tx = source.next_tx();
        let hash = seqnet_proto::sha256(&tx);
        let sent = unix_now();
        counters.sent.fetch_add(1, Ordering::Relaxed);
        // Re-send the same bytes on transport failures until an answer.
        let acked = loop {
            match rpc.broadcast_tx_sync(&tx).await {
                Ok(r) if r.code == 0 => break Some(true),
                Ok(r) => {
                    log.rejected += 1;
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                    log.last_problem = Some(format!("CheckTx code {}: {}", r.code, r.log));
                    break Some(false);
                }
                // An earlier attempt reached the mempool; its verdict is
                // unknown here, so it does not count as acknowledged.
                Err(e) if e.to_string().contains("already exists in cache") => break None,
                Err(e) => {
                    log.errors += 1;
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    log.last_problem = Some(e.to_string());
                    if should_stop(deadline, &stop) {
                        break None;
                    }
                    pause(Duration::from_millis(200), deadline, &mut stop).await;
                }
            }
        };
        let Some(acked) = acked else {
            // Unknown fate (stopped while retrying, or an earlier attempt
            // got in): recorded as sent, not acknowledged.
            log.txs.push(SentTx {
                hash,
                sent,
                acked: false,
                worker,
            });
            if should_stop(deadline, &stop) {
                break;
            }
            continue;
        };
        if acked {
            counters.acked.fetch_add(1, Ordering::Relaxed);
        } else {
            source.rejected(log.last_problem.as_deref().unwrap_or(""));
        }
        log.txs.push(SentTx {
            hash,
            sent,
            acked,
            worker,
        });
        if !acked {
            // Back off a little: the mempool or the app is saturated.
            pause(Duration::from_millis(100), deadline, &mut stop).await;
        }
        if let Some(period) = period {
            next += period;
            let now = Instant::now();
            if next < now {
                next = now;
            } else {
                pause(next - now, deadline, &mut stop).await;
            }
        }
    }
    log
}

/// A kvstore transaction source: `k<worker>-<seq>=<value>` of exactly
/// `size` bytes (`=` once, no `:`, as kvstore's CheckTx wants).
#[derive(Debug)]
pub struct KvSource {
    worker: usize,
    seq: u64,
    size: usize,
    tag: u32,
}

impl KvSource {
    /// `tag` keeps keys unique across runs on one chain.
    pub fn new(worker: usize, size: usize, tag: u32) -> KvSource {
        KvSource {
            worker,
            seq: 0,
            size,
            tag,
        }
    }
}

impl TxSource for KvSource {
    fn next_tx(&mut self) -> Vec<u8> {
        let mut tx = format!("k{}-{}-{}=v", self.tag, self.worker, self.seq).into_bytes();
        self.seq += 1;
        while tx.len() < self.size {
            tx.push(b'x');
        }
        tx
    }
}

/// Smallest size a [`KvSource`] transaction can have for these counters.
pub const KV_MIN_SIZE: usize = 32;

/// One block as the index keeps it.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    /// Header time, seconds since the Unix epoch.
    pub time: f64,
    pub txs: Vec<[u8; 32]>,
    pub bytes: u64,
}

/// Blocks `from..` of one node, scanned incrementally, with where each
/// transaction hash occurs.
#[derive(Debug)]
pub struct BlockIndex {
    rpc: CometRpc,
    pub from: u64,
    pub blocks: BTreeMap<u64, BlockInfo>,
    pub occurrences: BTreeMap<[u8; 32], Vec<u64>>,
}

impl BlockIndex {
    pub fn new(rpc: CometRpc, from: u64) -> BlockIndex {
        BlockIndex {
            rpc,
            from: from.max(1),
            blocks: BTreeMap::new(),
            occurrences: BTreeMap::new(),
        }
    }

    /// The next height not yet scanned.
    pub fn next_height(&self) -> u64 {
        self.blocks.keys().next_back().map_or(self.from, |h| h + 1)
    }

    /// Scans every block up to the node's tip; returns the tip.
    pub async fn update(&mut self) -> Result<u64> {
        let tip = self.rpc.status().await?.height;
        let mut height = self.next_height();
        while height <= tip {
            let block = fetch_block(&self.rpc, height).await?;
            for hash in &block.txs {
                self.occurrences.entry(*hash).or_default().push(height);
            }
            self.blocks.insert(height, block);
            height += 1;
        }
        Ok(tip)
    }

    /// When block `height` was committed: the time of block `height + 1`.
    pub fn commit_time(&self, height: u64) -> Option<f64> {
        self.blocks.get(&(height + 1)).map(|b| b.time)
    }

    /// The commit time of the first block holding `hash`.
    pub fn ordered_at(&self, hash: &[u8; 32]) -> Option<f64> {
        let height = *self.occurrences.get(hash)?.first()?;
        self.commit_time(height)
    }
}

async fn fetch_block(rpc: &CometRpc, height: u64) -> Result<BlockInfo> {
    let r = rpc
        .call("block", json!({ "height": height.to_string() }))
        .await?;
    let time_text = r
        .pointer("/block/header/time")
        .and_then(Value::as_str)
        .unwrap_or("");
    let time = parse_rfc3339(time_text).ok_or_else(|| TestnetError::Rpc {
        addr: rpc.addr().to_string(),
        method: "block".into(),
        reason: format!("height {height}: header time {time_text:?} is not RFC 3339"),
    })?;
    let mut txs = Vec::new();
    let mut bytes = 0u64;
    if let Some(Value::Array(list)) = r.pointer("/block/data/txs") {
        use base64::Engine;
        for tx in list {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(tx.as_str().unwrap_or(""))
                .map_err(|e| TestnetError::Rpc {
                    addr: rpc.addr().to_string(),
                    method: "block".into(),
                    reason: format!("height {height}: tx is not base64: {e}"),
                })?;
            bytes += raw.len() as u64;
            txs.push(seqnet_proto::sha256(&raw));
        }
    }
    Ok(BlockInfo { time, txs, bytes })
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses CometBFT's `2026-11-24T20:15:39.123456789Z` (UTC, optional
/// fraction) into seconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (time, ""),
    };
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let frac = if frac.is_empty() {
        0.0
    } else {
        format!("0.{frac}").parse::<f64>().ok()?
    };
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + s;
    Some(secs as f64 + frac)
}

/// Latency and throughput of one run, from its log and the block index.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunStats {
    pub mode: Option<LoopMode>,
    pub workers: usize,
    pub tx_bytes: usize,
    /// Measurement window (after the warm-up), seconds.
    pub window_secs: f64,
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    pub transport_errors: u64,
    /// Acknowledged in the window and found in a block.
    pub ordered: u64,
    /// Acknowledged in the window and not found in any block after the drain.
    pub missing: u64,
    /// Offered rate: acknowledged transactions per second sent in the window.
    pub offered_tps: f64,
    /// Committed transactions per second (commit time in the window).
    pub tps: f64,
    pub bytes_per_sec: f64,
    pub blocks_per_sec: f64,
    /// Mean interval between blocks in the window (ms).
    pub block_interval_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Latency to proven (testnets with provers, see [`ProvenTimeline`]):
    /// acknowledged transactions in the window whose block was proven.
    #[serde(default)]
    pub proven: Option<u64>,
    #[serde(default)]
    pub proven_p50_ms: Option<f64>,
    #[serde(default)]
    pub proven_p95_ms: Option<f64>,
    #[serde(default)]
    pub proven_p99_ms: Option<f64>,
    pub last_problem: Option<String>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Computes [`RunStats`]: transactions sent after `warmup` count for
/// latency; throughput counts the commits in `[started + warmup, ended]`.
pub fn analyze(
    log: &LoadLog,
    index: &BlockIndex,
    warmup: Duration,
    tx_bytes: usize,
    mode: LoopMode,
    workers: usize,
) -> RunStats {
    let from = log.started + warmup.as_secs_f64();
    let to = log.ended.max(from + 0.001);
    let window = to - from;
    let mut latencies = Vec::new();
    let mut missing = 0u64;
    let mut acked_in_window = 0u64;
    let mut committed_in_window = 0u64;
    for tx in log.acked() {
        let ordered = index.ordered_at(&tx.hash);
        if let Some(at) = ordered {
            if at >= from && at <= to {
                committed_in_window += 1;
            }
        }
        if tx.sent < from {
            continue;
        }
        acked_in_window += 1;
        match ordered {
            Some(at) => latencies.push((at - tx.sent).max(0.0) * 1000.0),
            None => missing += 1,
        }
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let blocks: Vec<f64> = index
        .blocks
        .values()
        .map(|b| b.time)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    let block_interval_ms = if blocks.len() >= 2 {
        (blocks[blocks.len() - 1] - blocks[0]) / (blocks.len() - 1) as f64 * 1000.0
    } else {
        0.0
    };
    let tps = committed_in_window as f64 / window;
    RunStats {
        mode: Some(mode),
        workers,
        tx_bytes,
        window_secs: window,
        sent: log.txs.len() as u64,
        acked: log.acked().count() as u64,
        rejected: log.rejected,
        transport_errors: log.errors,
        ordered: latencies.len() as u64,
        missing,
        offered_tps: acked_in_window as f64 / window,
        tps,
        bytes_per_sec: tps * tx_bytes as f64,
        blocks_per_sec: blocks.len() as f64 / window,
        block_interval_ms,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        last_problem: log.last_problem.clone(),
        ..RunStats::default()
    }
}

/// When each height became proven: samples of the chain's proven height
/// (`/finality`), taken while a scenario runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProvenTimeline {
    /// (local time, proven height), in time order.
    pub samples: Vec<(f64, u64)>,
}

impl ProvenTimeline {
    /// The first sample time at which `height` was proven.
    pub fn proven_at(&self, height: u64) -> Option<f64> {
        let i = self.samples.partition_point(|(_, h)| *h < height);
        self.samples.get(i).map(|(t, _)| *t)
    }

    /// The highest proven height seen.
    pub fn proven_height(&self) -> u64 {
        self.samples.last().map_or(0, |(_, h)| *h)
    }

    /// Samples `/finality` on `rpc` every `every` until `stop` turns true.
    pub async fn track(rpc: CometRpc, every: Duration, mut stop: watch::Receiver<bool>) -> Self {
        use prost::Message;
        let mut timeline = ProvenTimeline::default();
        let mut last = 0;
        loop {
            if let Ok(bytes) = rpc.abci_query("/finality").await {
                if let Ok(f) = seqnet_proto::pb::Finality::decode(bytes.as_slice()) {
                    // Monotone by construction; keep it so for partition_point.
                    last = last.max(f.proven_height);
                    timeline.samples.push((unix_now(), last));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return timeline,
            }
        }
    }

    /// Adds latency-to-proven figures to `stats` (same window as
    /// [`analyze`]: transactions sent after `warmup`).
    pub fn annotate(
        &self,
        stats: &mut RunStats,
        log: &LoadLog,
        index: &BlockIndex,
        warmup: Duration,
    ) {
        let from = log.started + warmup.as_secs_f64();
        let mut latencies: Vec<f64> = log
            .acked()
            .filter(|tx| tx.sent >= from)
            .filter_map(|tx| {
                let height = *index.occurrences.get(&tx.hash)?.first()?;
                Some((self.proven_at(height)? - tx.sent).max(0.0) * 1000.0)
            })
            .collect();
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        stats.proven = Some(latencies.len() as u64);
        if !latencies.is_empty() {
            stats.proven_p50_ms = Some(percentile(&latencies, 50.0));
            stats.proven_p95_ms = Some(percentile(&latencies, 95.0));
            stats.proven_p99_ms = Some(percentile(&latencies, 99.0));
        }
    }
}

/// Scans blocks until every acknowledged transaction of `log` is in one
/// and the block after it exists (so it has a commit time), or `timeout`.
pub async fn drain(index: &mut BlockIndex, log: &LoadLog, timeout: Duration) -> Result<bool> {
    let start = Instant::now();
    loop {
        let tip = index.update().await?;
        let done = log.acked().all(|tx| {
            index
                .occurrences
                .get(&tx.hash)
                .and_then(|h| h.first())
                .is_some_and(|h| *h < tip)
        });
        if done {
            return Ok(true);
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_cometbft_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        let t = parse_rfc3339("2026-11-24T20:15:39.5Z").expect("time");
        // date -u -d 2026-11-24T20:15:39Z +%s
        assert!((t - 1_795_551_339.5).abs() < 1e-6, "{t}");
        assert_eq!(parse_rfc3339("2026-11-24 20:15:39"), None);
    }

    #[test]
    fn kv_source_makes_valid_unique_txs_of_the_size() {
        let mut source = KvSource::new(3, 64, 7);
        let a = source.next_tx();
        let b = source.next_tx();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(a.iter().filter(|c| **c == b'=').count(), 1);
        assert!(!a.contains(&b':'));
    }

    #[test]
    fn proven_timeline_finds_the_first_sample() {
        let t = ProvenTimeline {
            samples: vec![(10.0, 0), (11.0, 4), (12.0, 4), (13.0, 9)],
        };
        assert_eq!(t.proven_at(1), Some(11.0));
        assert_eq!(t.proven_at(4), Some(11.0));
        assert_eq!(t.proven_at(5), Some(13.0));
        assert_eq!(t.proven_at(10), None);
    }

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
