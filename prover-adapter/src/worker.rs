//! The prover daemon behind `seqnet-prover run`: follow the jobs the chain
//! assigns to one prover key, prove each with a [`ProvingBackend`], submit
//! the proofs.
//!
//! - **Nodes.** One or more sequencer gRPC endpoints; calls and the job
//!   stream fail over between them (`seqnet_rollup_client`).
//! - **Authentication.** The job stream opens with a fresh server challenge
//!   signed by the prover's ed25519 key (the key of its account and stake).
//! - **Resume.** After a drop the stream reopens after the cursor of the last
//!   job received, so no job is lost or proven twice, on any node.
//! - **Order.** Jobs are proven one at a time in delivery order. The chain
//!   delivers a span's job as soon as the span closes, whatever the state of
//!   earlier spans: the back end computes the span's previous root from the
//!   rollup's proven root and the earlier spans the job lists (the reference
//!   back end replays them), so N provers prove N spans at once. The proof is
//!   accepted as a pending transition and becomes final once it links.
//! - **Submission.** Each proof goes out as a `SubmitProof` transaction
//!   signed by the prover, through `ProverService.SubmitProof` (the node
//!   checks assignment, order and proof first). Transient failures resend the
//!   same bytes with back-off (a node that has them answers "already
//!   known"); a nonce refusal re-reads the nonce and signs again; any other
//!   refusal (`NOT_ASSIGNED`: the deadline passed and the job moved on,
//!   `ROOT_MISMATCH`, `PROOF_REJECTED`, ...) drops the job and counts it.
//! - **Aggregator.** With [`WorkerConfig::aggregator`], each proof is first
//!   handed to the aggregator (`crate::aggregator::hand_over`: the proof and
//!   the prover's signed `ProofEntry`); only when the aggregator does not
//!   confirm a node accepted its `SubmitAggregate` within
//!   [`WorkerConfig::handover_timeout`] does the worker send its own
//!   `SubmitProof` as above.
//! - **Jail.** With [`WorkerConfig::auto_unjail`], the worker reads its own
//!   prover record every few seconds and, once a jail term is over, sends
//!   `Unjail` (once per term), so an unattended prover rejoins the active
//!   set at the next epoch boundary after an outage.
//! - **Shutdown.** A job being proven when shutdown comes is abandoned; the
//!   chain reassigns it at its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use seqnet_proto::{pb, Action, Code};
use seqnet_rollup_client::{
    ClientError, JobStream, JobStreamEvent, RetryPolicy, RollupClient, TxSigner,
};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tracing::Instrument;

use crate::backend::{BackendError, JobInput, ProofOutput, ProvingBackend};
use crate::metrics::Metrics;
use crate::submit::{sign_and_submit, Route, SubmitFailure, Submitted};

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("node endpoints: {0}")]
    Endpoints(ClientError),
    #[error("the job stream ended: {0}")]
    Stream(ClientError),
    #[error("the job stream ended without an error")]
    StreamClosed,
}

/// What a worker needs besides its back end.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Sequencer gRPC endpoints (`http://host:port`), in fail-over order.
    pub nodes: Vec<String>,
    /// The prover's key: its account, its stake and its stream identity.
    pub key: SigningKey,
    /// Retries of each call to the nodes.
    pub retry: RetryPolicy,
    /// Sends of one proof before the job is given up (transient failures
    /// and nonce refusals).
    pub submit_attempts: u32,
    /// Send `Unjail` when a jail term is over.
    pub auto_unjail: bool,
    /// How often the worker reads its own prover record.
    pub status_interval: Duration,
    /// Aggregator to hand proofs to (`host:port`), if any.
    pub aggregator: Option<String>,
    /// How long to wait for the aggregator's answer before submitting alone.
    pub handover_timeout: Duration,
}

/// Follows, proves and submits (see the module docs).
pub struct Worker {
    config: WorkerConfig,
    backend: Arc<dyn ProvingBackend>,
    metrics: Arc<Metrics>,
}

/// What the worker last learned from its own prover record.
#[derive(Debug, Default)]
struct RecordState {
    /// Committed height the record was read at (a lower bound of the chain's).
    height: u64,
    /// The jail term (its `jailed_until`) an `Unjail` was sent for.
    unjailed_term: Option<u64>,
}

/// How one job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// A node accepted the proof into its mempool.
    Submitted { tx_hash: [u8; 32] },
    /// The node refused it for good.
    Rejected { code: Option<Code>, message: String },
    /// The back end failed.
    ProvingFailed(String),
    /// Transient failures all the way.
    GaveUp(String),
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        backend: Arc<dyn ProvingBackend>,
        metrics: Arc<Metrics>,
    ) -> Worker {
        Worker {
            config,
            backend,
            metrics,
        }
    }

    /// Runs until `shutdown` turns true (`Ok`) or the job stream fails for
    /// good (a non-transient refusal, e.g. a malformed key).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        let mut client = RollupClient::new(self.config.nodes.clone())
            .map_err(WorkerError::Endpoints)?
            .with_retry(self.config.retry.clone());
        let address = seqnet_rollup_client::keys::address(&self.config.key);
        tracing::info!(
            prover = %address,
            backend = %self.backend.describe(),
            nodes = ?self.config.nodes,
            "prover starting"
        );
        let Some(mut signer) = self.signer(&mut client, &mut shutdown).await else {
            return Ok(());
        };
        let mut stream = client.jobs(self.config.key.clone(), None);
        let mut ticker = tokio::time::interval(self.config.status_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut record = RecordState::default();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = ticker.tick() => {
                    // Also here: a dropped stream may yield no job for a while.
                    self.count_stream_events(&mut stream);
                    self.check_record(&mut client, &mut signer, &mut record).await;
                    continue;
                }
                _ = shutdown.changed() => return Ok(()),
            };
            self.count_stream_events(&mut stream);
            let job = match item {
                Some(Ok(job)) => job,
                Some(Err(error)) => return Err(WorkerError::Stream(error)),
                None => return Err(WorkerError::StreamClosed),
            };
            let span = tracing::info_span!(
                "job",
                rollup = job.rollup_id,
                from = job.from_height,
                to = job.to_height,
                rank = job.rank,
                deadline = job.deadline
            );
            // A committed height at or past the deadline: a proof could only
            // land after it (the job has moved on, or will at this block's end).
            let known = record
                .height
                .max(job.cursor.as_ref().map_or(0, |c| c.ready_height));
            if known >= job.deadline {
                self.metrics.jobs_received.inc();
                self.metrics
                    .jobs_dropped
                    .with_label_values(&["past_deadline"])
                    .inc();
                span.in_scope(|| {
                    tracing::warn!(committed = known, "job arrived past its deadline; skipped")
                });
                continue;
            }
            let outcome = tokio::select! {
                outcome = self.handle(&mut client, &mut signer, &job).instrument(span) => outcome,
                _ = shutdown.changed() => return Ok(()),
            };
            tracing::debug!(
                rollup = job.rollup_id,
                from = job.from_height,
                ?outcome,
                "job done"
            );
        }
    }

    fn count_stream_events(&self, stream: &mut JobStream) {
        for event in stream.events() {
            if matches!(event, JobStreamEvent::Dropped { .. }) {
                self.metrics.stream_reconnects.inc();
            }
        }
    }

    /// Reads this prover's record; sends `Unjail` once a jail term is over
    /// (with `auto_unjail`, once per term).
    async fn check_record(
        &self,
        client: &mut RollupClient,
        signer: &mut TxSigner,
        state: &mut RecordState,
    ) {
        let address = signer.address();
        let info = match client.prover(address).await {
            Ok(info) => info,
            Err(ClientError::NotFound(_)) => {
                tracing::debug!("not registered as a prover (yet)");
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "cannot read the prover record");
                return;
            }
        };
        state.height = state.height.max(info.as_of_height);
        let unjailed_term = &mut state.unjailed_term;
        let Some(record) = info.prover else { return };
        let jailed = record.status == pb::ProverStatus::Jailed as i32;
        tracing::debug!(
            stake = record.stake,
            active = info.active,
            jailed,
            misses = record.misses,
            open_jobs = info.assigned_jobs.len(),
            height = info.as_of_height,
            "prover record"
        );
        if !(self.config.auto_unjail && jailed) || *unjailed_term == Some(record.jailed_until) {
            return;
        }
        if info.as_of_height < record.jailed_until {
            return;
        }
        if let Err(error) = signer.sync_nonce(client).await {
            tracing::warn!(%error, "cannot read the nonce for Unjail");
            return;
        }
        let tx = signer.unjail(None);
        match client.submit(&tx).await {
            Ok(hash) => {
                *unjailed_term = Some(record.jailed_until);
                tracing::info!(tx = %hex::encode(hash), jailed_until = record.jailed_until, "jail term over: Unjail sent");
            }
            Err(error) => tracing::warn!(%error, "Unjail refused"),
        }
    }

    /// The transaction signer, with the chain id and fees from a node;
    /// waits (with back-off) until a node answers. `None` on shutdown.
    async fn signer(
        &self,
        client: &mut RollupClient,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<TxSigner> {
        let mut failures = 0u32;
        loop {
            match client.status().await {
                Ok(status) => {
                    let mut signer = TxSigner::new(self.config.key.clone(), status.chain_id);
                    if let Some(params) = &status.params {
                        signer.fees = params.into();
                    }
                    return Some(signer);
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = self.config.retry.backoff(failures);
                    tracing::warn!(%error, ?pause, "no node answers yet");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => return None,
                    }
                }
            }
        }
    }

    /// Proves and submits one job.
    pub async fn handle(
        &self,
        client: &mut RollupClient,
        signer: &mut TxSigner,
        job: &pb::Job,
    ) -> JobOutcome {
        self.metrics.jobs_received.inc();
        tracing::info!(
            reassignments = job.reassignments,
            batches = job.batches.len(),
            earlier = job.earlier.len(),
            bounty = job.bounty,
            "job received"
        );
        let input = JobInput::from_job(job);
        let backend = self.backend.clone();
        let started = Instant::now();
        let proved = tokio::task::spawn_blocking(move || backend.prove(&input))
            .await
            .unwrap_or_else(|e| Err(BackendError::Task(e.to_string())));
        let elapsed = started.elapsed();
        let output = match proved {
            Ok(output) => {
                self.metrics.proving_seconds.observe(elapsed.as_secs_f64());
                tracing::info!(
                    proving_ms = elapsed.as_millis() as u64,
                    prev_state_root = %hex::encode(output.prev_state_root),
                    new_state_root = %hex::encode(output.new_state_root),
                    "proved"
                );
                output
            }
            Err(error) => {
                self.metrics.proving_failures.inc();
                self.metrics
                    .jobs_dropped
                    .with_label_values(&["proving_failed"])
                    .inc();
                tracing::error!(%error, "proving failed; the job is left to its back-ups");
                return JobOutcome::ProvingFailed(error.to_string());
            }
        };
        if let Some(aggregator) = &self.config.aggregator {
            let handover =
                crate::aggregator::Handover::new(&self.config.key, &signer.chain_id, job, &output);
            match crate::aggregator::hand_over(aggregator, &handover, self.config.handover_timeout)
                .await
            {
                Ok(tx_hash) => {
                    self.metrics
                        .handovers
                        .with_label_values(&["accepted"])
                        .inc();
                    self.metrics.proofs_submitted.inc();
                    self.metrics
                        .last_submitted_height
                        .with_label_values(&[&job.rollup_id.to_string()])
                        .set(i64::try_from(job.to_height).unwrap_or(i64::MAX));
                    tracing::info!(tx = %hex::encode(tx_hash), "proof submitted in an aggregate");
                    return JobOutcome::Submitted { tx_hash };
                }
                Err(error) => {
                    self.metrics
                        .handovers
                        .with_label_values(&["fallback"])
                        .inc();
                    tracing::warn!(%error, "aggregator did not take the proof; submitting it alone");
                }
            }
        }
        self.submit(client, signer, job, output).await
    }

    async fn submit(
        &self,
        client: &mut RollupClient,
        signer: &mut TxSigner,
        job: &pb::Job,
        output: ProofOutput,
    ) -> JobOutcome {
        let actions = [Action::SubmitProof {
            rollup_id: job.rollup_id,
            from_height: job.from_height,
            proof: output.proof,
            prev_state_root: output.prev_state_root,
            new_state_root: output.new_state_root,
        }];
        match sign_and_submit(
            client,
            signer,
            &self.config.retry,
            self.config.submit_attempts,
            Route::SubmitProof,
            &actions,
        )
        .await
        {
            Ok(Submitted { hash, nonce }) => {
                self.metrics.proofs_submitted.inc();
                self.metrics
                    .last_submitted_height
                    .with_label_values(&[&job.rollup_id.to_string()])
                    .set(i64::try_from(job.to_height).unwrap_or(i64::MAX));
                tracing::info!(
                    tx = %hex::encode(hash),
                    nonce,
                    node = %client.endpoint(),
                    "proof submitted"
                );
                JobOutcome::Submitted { tx_hash: hash }
            }
            Err(SubmitFailure::Refused { code, message }) => {
                let label = code.map_or("unknown", Code::name);
                self.metrics
                    .proofs_rejected
                    .with_label_values(&[label])
                    .inc();
                tracing::warn!(code = label, %message, "proof rejected");
                JobOutcome::Rejected { code, message }
            }
            Err(SubmitFailure::GaveUp(last)) => {
                self.metrics
                    .jobs_dropped
                    .with_label_values(&["submit_retries_exhausted"])
                    .inc();
                tracing::error!(
                    attempts = self.config.submit_attempts,
                    last = %last,
                    "giving the job up"
                );
                JobOutcome::GaveUp(last)
            }
        }
    }
}

/// Default [`WorkerConfig::submit_attempts`].
pub const DEFAULT_SUBMIT_ATTEMPTS: u32 = 8;

/// Default [`WorkerConfig::handover_timeout`].
pub const DEFAULT_HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Default [`WorkerConfig::status_interval`].
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(2);

/// A retry policy for a long-running prover: patient with nodes that restart.
pub fn prover_retry_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 6,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(30),
    }
}
