//! Prometheus metrics of `seqnet-prover run` and `aggregate` (served on
//! `/metrics` by the shared telemetry listener, `seqnet_rollup_client::telemetry`).
//!
//! | name | type | meaning |
//! | --- | --- | --- |
//! | `seqnet_prover_jobs_received_total` | counter | jobs delivered by the job stream |
//! | `seqnet_prover_proving_seconds` | histogram | time the back end took per job |
//! | `seqnet_prover_proving_failures_total` | counter | jobs the back end failed to prove |
//! | `seqnet_prover_proofs_submitted_total` | counter | proofs a node accepted into its mempool |
//! | `seqnet_prover_proofs_rejected_total{code}` | counter | submissions the node refused, by seqnet code |
//! | `seqnet_prover_jobs_dropped_total{reason}` | counter | jobs given up (past deadline, retries exhausted) |
//! | `seqnet_prover_stream_reconnects_total` | counter | job streams reopened after a drop |
//! | `seqnet_prover_last_submitted_height{rollup}` | gauge | last height (a span's `to_height`) whose proof a node accepted, per rollup |
//! | `seqnet_prover_handovers_total{result}` | counter | proofs handed to an aggregator (`accepted`, `fallback`) by a prover, or received (`received`, `refused`) by an aggregator |
//! | `seqnet_prover_aggregates_submitted_total` | counter | `SubmitAggregate` transactions a node accepted (aggregator) |
//! | `seqnet_prover_aggregated_proofs_total` | counter | proofs covered by those aggregates |
//! | `seqnet_prover_aggregate_failures_total` | counter | batches that could not be aggregated or submitted |
//! | `seqnet_prover_aggregation_seconds` | histogram | time one aggregate took to compute |

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The prover's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    pub jobs_received: IntCounter,
    pub proving_seconds: Histogram,
    pub proving_failures: IntCounter,
    pub proofs_submitted: IntCounter,
    pub proofs_rejected: IntCounterVec,
    pub jobs_dropped: IntCounterVec,
    pub stream_reconnects: IntCounter,
    pub last_submitted_height: IntGaugeVec,
    /// Mirrors [`crate::msm::GPU_FALLBACKS`] at each scrape.
    pub msm_gpu_fallbacks: prometheus::IntGauge,
    pub handovers: IntCounterVec,
    pub aggregates_submitted: IntCounter,
    pub aggregated_proofs: IntCounter,
    pub aggregate_failures: IntCounter,
    pub aggregation_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Arc<Metrics>, prometheus::Error> {
        let registry = Registry::new();
        let jobs_received = IntCounter::new(
            "seqnet_prover_jobs_received_total",
            "Jobs delivered by the job stream",
        )?;
        let proving_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "seqnet_prover_proving_seconds",
                "Time the proving back end took per job",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
        )?;
        let proving_failures = IntCounter::new(
            "seqnet_prover_proving_failures_total",
            "Jobs the back end failed to prove",
        )?;
        let proofs_submitted = IntCounter::new(
            "seqnet_prover_proofs_submitted_total",
            "Proofs a node accepted into its mempool",
        )?;
        let proofs_rejected = IntCounterVec::new(
            Opts::new(
                "seqnet_prover_proofs_rejected_total",
                "Proof submissions the node refused, by seqnet code",
            ),
            &["code"],
        )?;
        let jobs_dropped = IntCounterVec::new(
            Opts::new(
                "seqnet_prover_jobs_dropped_total",
                "Jobs given up without an accepted submission",
            ),
            &["reason"],
        )?;
        let stream_reconnects = IntCounter::new(
            "seqnet_prover_stream_reconnects_total",
            "Job streams reopened after a drop",
        )?;
        let last_submitted_height = IntGaugeVec::new(
            Opts::new(
                "seqnet_prover_last_submitted_height",
                "Height of the last job whose proof a node accepted, per rollup",
            ),
            &["rollup"],
        )?;
        let msm_gpu_fallbacks = prometheus::IntGauge::new(
            "seqnet_prover_msm_gpu_fallbacks_total",
            "MSMs that failed on the GPU and were computed on the CPU instead",
        )?;
        registry.register(Box::new(msm_gpu_fallbacks.clone()))?;
        let handovers = IntCounterVec::new(
            Opts::new(
                "seqnet_prover_handovers_total",
                "Proofs handed to (prover) or received by (aggregator) an aggregator, by result",
            ),
            &["result"],
        )?;
        let aggregates_submitted = IntCounter::new(
            "seqnet_prover_aggregates_submitted_total",
            "SubmitAggregate transactions a node accepted",
        )?;
        let aggregated_proofs = IntCounter::new(
            "seqnet_prover_aggregated_proofs_total",
            "Proofs covered by accepted aggregates",
        )?;
        let aggregate_failures = IntCounter::new(
            "seqnet_prover_aggregate_failures_total",
            "Batches that could not be aggregated or submitted",
        )?;
        let aggregation_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "seqnet_prover_aggregation_seconds",
                "Time one aggregate took to compute",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        registry.register(Box::new(handovers.clone()))?;
        registry.register(Box::new(aggregates_submitted.clone()))?;
        registry.register(Box::new(aggregated_proofs.clone()))?;
        registry.register(Box::new(aggregate_failures.clone()))?;
        registry.register(Box::new(aggregation_seconds.clone()))?;
        registry.register(Box::new(jobs_received.clone()))?;
        registry.register(Box::new(proving_seconds.clone()))?;
        registry.register(Box::new(proving_failures.clone()))?;
        registry.register(Box::new(proofs_submitted.clone()))?;
        registry.register(Box::new(proofs_rejected.clone()))?;
        registry.register(Box::new(jobs_dropped.clone()))?;
        registry.register(Box::new(stream_reconnects.clone()))?;
        registry.register(Box::new(last_submitted_height.clone()))?;
        Ok(Arc::new(Metrics {
            registry,
            jobs_received,
            proving_seconds,
            proving_failures,
            proofs_submitted,
            proofs_rejected,
            jobs_dropped,
            stream_reconnects,
            last_submitted_height,
            msm_gpu_fallbacks,
            handovers,
            aggregates_submitted,
            aggregated_proofs,
            aggregate_failures,
            aggregation_seconds,
        }))
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        self.msm_gpu_fallbacks.set(
            i64::try_from(crate::msm::GPU_FALLBACKS.load(std::sync::atomic::Ordering::Relaxed))
                .unwrap_or(i64::MAX),
        );
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render() {
        let metrics = Metrics::new().expect("metrics");
        metrics.jobs_received.inc();
        metrics.proving_seconds.observe(0.3);
        metrics
            .proofs_rejected
            .with_label_values(&["not_assigned"])
            .inc();
        let text = String::from_utf8(metrics.render()).expect("utf8");
        assert!(
            text.contains("seqnet_prover_jobs_received_total 1"),
            "{text}"
        );
        assert!(
            text.contains("seqnet_prover_proving_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("seqnet_prover_proofs_rejected_total{code=\"not_assigned\"} 1"),
            "{text}"
        );
    }
}
