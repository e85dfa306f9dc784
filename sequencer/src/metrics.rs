//! Prometheus metrics of the node (names below, served at `GET /metrics` by
//! the shared telemetry listener, `seqnet_rollup_client::telemetry`; `GET
//! /health` answers `ok`) and the observer that feeds them from the app.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use seqnet_abci::{BlockSummary, Observer};
use seqnet_proto::Code;
use tokio::sync::watch;

pub const BLOCK_HEIGHT: &str = "seqnet_block_height";
pub const BLOCK_TXS: &str = "seqnet_block_txs_total";
pub const FAILED_TXS: &str = "seqnet_block_failed_txs_total";
pub const ROLLUP_ITEMS: &str = "seqnet_rollup_items_total";
pub const ROLLUP_BYTES: &str = "seqnet_rollup_bytes_total";
pub const CHECK_TX: &str = "seqnet_check_tx_total";
pub const PROPOSALS_REJECTED: &str = "seqnet_proposals_rejected_total";
pub const GRPC_LATENCY: &str = "seqnet_grpc_request_seconds";
pub const ABCI_LATENCY: &str = "seqnet_abci_seconds";
pub const BROADCAST_ERRORS: &str = "seqnet_broadcast_errors_total";
pub const FORCED_OPENED: &str = "seqnet_forced_requests_opened_total";
pub const FORCED_INCLUDED: &str = "seqnet_forced_requests_included_total";
pub const FORCED_FAILED: &str = "seqnet_forced_requests_failed_total";
pub const FORCED_PENDING: &str = "seqnet_forced_requests_pending";
pub const FORCED_DELAY: &str = "seqnet_forced_inclusion_delay_blocks";
pub const EXTENDED_COMMIT_BYTES: &str = "seqnet_extended_commit_bytes";
pub const PROVEN_HEIGHT: &str = "seqnet_proven_height";
pub const PROVING_LAG: &str = "seqnet_proving_lag_blocks";
pub const JOBS_OPEN: &str = "seqnet_proof_jobs_open";
pub const JOBS_LATE: &str = "seqnet_proof_jobs_late";
pub const JOBS_OPENED: &str = "seqnet_proof_jobs_opened_total";
pub const JOBS_REASSIGNED: &str = "seqnet_proof_jobs_reassigned_total";
pub const JOBS_PROVEN: &str = "seqnet_proof_jobs_proven_total";
pub const JOBS_PENDING: &str = "seqnet_proof_jobs_pending";
pub const PROOFS_ACCEPTED: &str = "seqnet_proofs_accepted_total";
pub const TRANSITIONS_DROPPED: &str = "seqnet_proof_transitions_dropped_total";
pub const PROOF_VERIFICATION: &str = "seqnet_proof_verification_seconds";
pub const PROOF_SUBMISSIONS: &str = "seqnet_proof_submissions_total";
pub const PROVER_STREAMS: &str = "seqnet_prover_streams";
pub const JOBS_DELIVERED: &str = "seqnet_prover_jobs_delivered_total";
pub const VALIDATORS: &str = "seqnet_validators";
pub const VALIDATOR_POWER: &str = "seqnet_validator_power";
pub const VALIDATORS_JAILED: &str = "seqnet_validators_jailed_total";
pub const VALIDATORS_SLASHED: &str = "seqnet_validators_slashed_total";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub height: IntGauge,
    pub block_txs: IntCounter,
    pub failed_txs: IntCounter,
    pub rollup_items: IntCounterVec,
    pub rollup_bytes: IntCounterVec,
    pub check_tx: IntCounterVec,
    pub proposals_rejected: IntCounterVec,
    pub grpc_latency: HistogramVec,
    pub abci_latency: HistogramVec,
    pub broadcast_errors: IntCounter,
    pub forced_opened: IntCounterVec,
    pub forced_included: IntCounter,
    pub forced_failed: IntCounter,
    pub forced_pending: IntGauge,
    pub forced_delay: prometheus::Histogram,
    pub extended_commit_bytes: prometheus::Histogram,
    pub proven_height: IntGauge,
    pub proving_lag: IntGauge,
    pub jobs_open: IntGauge,
    pub jobs_late: IntGauge,
    pub jobs_opened: IntCounter,
    pub jobs_reassigned: IntCounter,
    pub jobs_proven: IntCounter,
    pub jobs_pending: IntGauge,
    pub proofs_accepted: IntCounter,
    pub transitions_dropped: IntCounter,
    pub proof_verification: prometheus::Histogram,
    pub proof_submissions: IntCounterVec,
    pub prover_streams: IntGauge,
    pub validators: IntGauge,
    pub validator_power: IntGauge,
    pub validators_jailed: IntCounter,
    pub validators_slashed: IntCounter,
    pub jobs_delivered: IntCounter,
}

impl Metrics {
    /// Times one gRPC call of `method` into `grpc_latency` (stops on drop).
    pub fn grpc_timer(&self, method: &str) -> prometheus::HistogramTimer {
        self.grpc_latency.with_label_values(&[method]).start_timer()
    }

    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let metrics = Metrics {
            height: IntGauge::new(BLOCK_HEIGHT, "Last committed block height")?,
            block_txs: IntCounter::new(BLOCK_TXS, "Transactions in committed blocks")?,
            failed_txs: IntCounter::new(
                FAILED_TXS,
                "Transactions that failed in committed blocks",
            )?,
            rollup_items: IntCounterVec::new(
                Opts::new(ROLLUP_ITEMS, "RollupData actions ordered, per rollup"),
                &["rollup"],
            )?,
            rollup_bytes: IntCounterVec::new(
                Opts::new(ROLLUP_BYTES, "Bytes of rollup data ordered, per rollup"),
                &["rollup"],
            )?,
            check_tx: IntCounterVec::new(
                Opts::new(CHECK_TX, "CheckTx verdicts by result code"),
                &["code", "recheck"],
            )?,
            proposals_rejected: IntCounterVec::new(
                Opts::new(
                    PROPOSALS_REJECTED,
                    "Proposals this node rejected in ProcessProposal, by rule broken",
                ),
                &["reason"],
            )?,
            grpc_latency: HistogramVec::new(
                HistogramOpts::new(GRPC_LATENCY, "gRPC request latency by method"),
                &["method"],
            )?,
            abci_latency: HistogramVec::new(
                HistogramOpts::new(ABCI_LATENCY, "ABCI call duration by method").buckets(vec![
                    0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0,
                ]),
                &["method"],
            )?,
            broadcast_errors: IntCounter::new(
                BROADCAST_ERRORS,
                "Failures to reach CometBFT's broadcast_tx_sync",
            )?,
            forced_opened: IntCounterVec::new(
                Opts::new(FORCED_OPENED, "Forced-inclusion requests opened, by source"),
                &["source"],
            )?,
            forced_included: IntCounter::new(
                FORCED_INCLUDED,
                "Forced transactions included by their deadline",
            )?,
            forced_failed: IntCounter::new(
                FORCED_FAILED,
                "Forced requests resolved as failed (inner tx invalid)",
            )?,
            forced_pending: IntGauge::new(FORCED_PENDING, "Forced requests not yet resolved")?,
            forced_delay: prometheus::Histogram::with_opts(
                HistogramOpts::new(FORCED_DELAY, "Blocks from forced request to inclusion")
                    .buckets(vec![0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0]),
            )?,
            extended_commit_bytes: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    EXTENDED_COMMIT_BYTES,
                    "Bytes of the extended commit injected into each block",
                )
                .buckets(prometheus::exponential_buckets(256.0, 2.0, 10)?),
            )?,
            proven_height: IntGauge::new(
                PROVEN_HEIGHT,
                "Highest height whose proof jobs (and all below) are proven",
            )?,
            proving_lag: IntGauge::new(
                PROVING_LAG,
                "Committed height minus proven height, in blocks",
            )?,
            jobs_open: IntGauge::new(JOBS_OPEN, "Proof jobs (spans) not yet proven")?,
            jobs_late: IntGauge::new(
                JOBS_LATE,
                "Open proof jobs that missed at least one deadline",
            )?,
            jobs_opened: IntCounter::new(JOBS_OPENED, "Proof jobs opened")?,
            validators: IntGauge::new(VALIDATORS, "Validators in the set that signs the height")?,
            validator_power: IntGauge::new(VALIDATOR_POWER, "Total voting power of that set")?,
            validators_jailed: IntCounter::new(
                VALIDATORS_JAILED,
                "Validators jailed for missing votes (downtime)",
            )?,
            validators_slashed: IntCounter::new(
                VALIDATORS_SLASHED,
                "Validators slashed and tombstoned for double-signing (evidence)",
            )?,
            jobs_reassigned: IntCounter::new(
                JOBS_REASSIGNED,
                "Proof jobs moved to a back-up prover after a missed deadline",
            )?,
            jobs_proven: IntCounter::new(
                JOBS_PROVEN,
                "Proof jobs proven (their transitions linked into the rollup's proven root)",
            )?,
            jobs_pending: IntGauge::new(
                JOBS_PENDING,
                "Proof jobs with a verified proof waiting to link",
            )?,
            proofs_accepted: IntCounter::new(
                PROOFS_ACCEPTED,
                "Proofs accepted as pending transitions (SubmitProof and aggregate entries)",
            )?,
            transitions_dropped: IntCounter::new(
                TRANSITIONS_DROPPED,
                "Pending transitions dropped because they did not link",
            )?,
            proof_verification: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    PROOF_VERIFICATION,
                    "Time to check one SubmitProof before broadcasting (Groth16 verification and assignment)",
                )
                .buckets(vec![
                    0.0001, 0.0003, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0,
                ]),
            )?,
            proof_submissions: IntCounterVec::new(
                Opts::new(
                    PROOF_SUBMISSIONS,
                    "ProverService.SubmitProof answers, by result (ok or the code refused)",
                ),
                &["result"],
            )?,
            prover_streams: IntGauge::new(PROVER_STREAMS, "Prover job streams open")?,
            jobs_delivered: IntCounter::new(
                JOBS_DELIVERED,
                "Jobs sent on prover job streams",
            )?,
            registry,
        };
        let r = &metrics.registry;
        r.register(Box::new(metrics.height.clone()))?;
        r.register(Box::new(metrics.block_txs.clone()))?;
        r.register(Box::new(metrics.failed_txs.clone()))?;
        r.register(Box::new(metrics.rollup_items.clone()))?;
        r.register(Box::new(metrics.rollup_bytes.clone()))?;
        r.register(Box::new(metrics.check_tx.clone()))?;
        r.register(Box::new(metrics.proposals_rejected.clone()))?;
        r.register(Box::new(metrics.grpc_latency.clone()))?;
        r.register(Box::new(metrics.abci_latency.clone()))?;
        r.register(Box::new(metrics.broadcast_errors.clone()))?;
        r.register(Box::new(metrics.forced_opened.clone()))?;
        r.register(Box::new(metrics.forced_included.clone()))?;
        r.register(Box::new(metrics.forced_failed.clone()))?;
        r.register(Box::new(metrics.forced_pending.clone()))?;
        r.register(Box::new(metrics.forced_delay.clone()))?;
        r.register(Box::new(metrics.extended_commit_bytes.clone()))?;
        r.register(Box::new(metrics.proven_height.clone()))?;
        r.register(Box::new(metrics.proving_lag.clone()))?;
        r.register(Box::new(metrics.jobs_open.clone()))?;
        r.register(Box::new(metrics.jobs_late.clone()))?;
        r.register(Box::new(metrics.jobs_opened.clone()))?;
        r.register(Box::new(metrics.validators.clone()))?;
        r.register(Box::new(metrics.validator_power.clone()))?;
        r.register(Box::new(metrics.validators_jailed.clone()))?;
        r.register(Box::new(metrics.validators_slashed.clone()))?;
        r.register(Box::new(metrics.jobs_reassigned.clone()))?;
        r.register(Box::new(metrics.jobs_proven.clone()))?;
        r.register(Box::new(metrics.jobs_pending.clone()))?;
        r.register(Box::new(metrics.proofs_accepted.clone()))?;
        r.register(Box::new(metrics.transitions_dropped.clone()))?;
        r.register(Box::new(metrics.proof_verification.clone()))?;
        r.register(Box::new(metrics.proof_submissions.clone()))?;
        r.register(Box::new(metrics.prover_streams.clone()))?;
        r.register(Box::new(metrics.jobs_delivered.clone()))?;
        Ok(metrics)
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        out
    }
}

/// Feeds metrics and announces each committed height to the gRPC streams.
pub struct NodeObserver {
    pub metrics: Metrics,
    pub committed: watch::Sender<u64>,
}

impl Observer for NodeObserver {
    fn check_tx(&self, code: Code, recheck: bool) {
        self.metrics
            .check_tx
            .with_label_values(&[code.name(), if recheck { "true" } else { "false" }])
            .inc();
    }

    fn proposal_rejected(&self, _height: u64, kind: &str, _reason: &str) {
        self.metrics
            .proposals_rejected
            .with_label_values(&[kind])
            .inc();
    }

    fn block_committed(&self, summary: &BlockSummary) {
        self.metrics
            .height
            .set(i64::try_from(summary.height).unwrap_or(i64::MAX));
        self.metrics.block_txs.inc_by(summary.tx_count);
        self.metrics.failed_txs.inc_by(summary.failed_txs);
        for (rollup, (items, bytes)) in &summary.rollups {
            let label = rollup.to_string();
            self.metrics
                .rollup_items
                .with_label_values(&[&label])
                .inc_by(*items);
            self.metrics
                .rollup_bytes
                .with_label_values(&[&label])
                .inc_by(*bytes);
        }
        for (source, count) in &summary.forced_opened {
            self.metrics
                .forced_opened
                .with_label_values(&[source])
                .inc_by(*count);
        }
        for delay in &summary.forced_delays {
            self.metrics.forced_included.inc();
            self.metrics.forced_delay.observe(*delay as f64);
        }
        self.metrics.forced_failed.inc_by(summary.forced_failed);
        self.metrics
            .forced_pending
            .set(i64::try_from(summary.forced_pending).unwrap_or(i64::MAX));
        if summary.extended_commit_bytes > 0 {
            self.metrics
                .extended_commit_bytes
                .observe(summary.extended_commit_bytes as f64);
        }
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.metrics.proven_height.set(gauge(summary.proven_height));
        self.metrics
            .proving_lag
            .set(gauge(summary.height.saturating_sub(summary.proven_height)));
        self.metrics.jobs_open.set(gauge(summary.jobs_open));
        self.metrics.jobs_late.set(gauge(summary.jobs_late));
        self.metrics.jobs_opened.inc_by(summary.jobs_opened);
        self.metrics.jobs_reassigned.inc_by(summary.jobs_reassigned);
        self.metrics.jobs_proven.inc_by(summary.jobs_proven);
        self.metrics.jobs_pending.set(gauge(summary.jobs_pending));
        self.metrics.proofs_accepted.inc_by(summary.proofs_accepted);
        self.metrics
            .transitions_dropped
            .inc_by(summary.transitions_dropped);
        self.metrics.validators.set(gauge(summary.validators));
        self.metrics
            .validator_power
            .set(gauge(summary.validator_power));
        self.metrics
            .validators_jailed
            .inc_by(summary.validators_jailed);
        self.metrics
            .validators_slashed
            .inc_by(summary.validators_slashed);
        self.committed.send_replace(summary.height);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observer_updates_metrics_and_announces_height() {
        let metrics = Metrics::new().expect("metrics");
        let (tx, rx) = watch::channel(0);
        let observer = NodeObserver {
            metrics: metrics.clone(),
            committed: tx,
        };
        let mut summary = BlockSummary {
            height: 7,
            tx_count: 3,
            ..Default::default()
        };
        summary.rollups.insert(2, (3, 30));
        summary.forced_delays = vec![2, 4];
        summary.proven_height = 4;
        summary.jobs_open = 2;
        summary.jobs_late = 1;
        summary.jobs_reassigned = 1;
        summary.validators = 5;
        summary.validators_jailed = 1;
        observer.block_committed(&summary);
        observer.proposal_rejected(8, "missing_forced", "omits a forced tx");
        observer.check_tx(Code::NonceGap, false);
        assert_eq!(*rx.borrow(), 7);
        let text = String::from_utf8(metrics.render()).expect("utf8");
        assert!(text.contains("seqnet_block_height 7"), "{text}");
        assert!(
            text.contains("seqnet_rollup_bytes_total{rollup=\"2\"} 30"),
            "{text}"
        );
        assert!(text.contains("code=\"nonce_gap\""), "{text}");
        assert!(text.contains("seqnet_proven_height 4"), "{text}");
        assert!(text.contains("seqnet_proving_lag_blocks 3"), "{text}");
        assert!(text.contains("seqnet_proof_jobs_late 1"), "{text}");
        assert!(text.contains("seqnet_validators 5"), "{text}");
        assert!(text.contains("seqnet_validators_jailed_total 1"), "{text}");
        assert!(
            text.contains("seqnet_proof_jobs_reassigned_total 1"),
            "{text}"
        );
        assert!(
            text.contains("seqnet_forced_requests_included_total 2"),
            "{text}"
        );
        assert!(
            text.contains("seqnet_proposals_rejected_total{reason=\"missing_forced\"} 1"),
            "{text}"
        );
    }
}
