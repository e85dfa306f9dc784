//! The aggregator role (`seqnet-prover aggregate`) and the provers' side of
//! the hand-over (`seqnet-prover run --aggregator ADDR`).
//!
//! - **Hand-over.** A prover, once it has proven a job, opens a TCP
//!   connection to the aggregator and writes one JSON line, a [`Handover`]:
//!   the job's statement (rollup, span bounds, span commitment, previous
//!   root), its proof, its new root and the prover's signed [`ProofEntry`]
//!   (`seqnet/proof-entry/v2`). The aggregator answers one JSON line, a
//!   [`HandoverReply`], only once the `SubmitAggregate` carrying the proof
//!   was accepted by a node (or it gave up on it). A prover that gets no
//!   positive answer within its timeout submits its own `SubmitProof`, so
//!   the rotation and deadline rules hold and no proof is lost.
//! - **Checks.** The aggregator checks the entry's signature for the
//!   chain's id and verifies the proof against its statement under the
//!   rollup's verifying key (read once per rollup with `GetRollup`); a bad
//!   hand-over is refused at once.
//! - **Grouping.** Proofs are grouped per verifying key (an aggregate
//!   covers one key); a group is aggregated when it holds `max_proofs`
//!   proofs or its oldest proof has waited `max_wait`. Entries are sorted by
//!   `(rollup, from_height)`; of several proofs of one job, the one of the
//!   prover the chain assigns it to now is kept and the others are refused.
//!   Any open jobs may share an aggregate (consecutive spans of one rollup
//!   from different provers too): the chain accepts them as pending
//!   transitions and links them in order, so the aggregator's wait adds to
//!   proven finality only, never to a rollup's next job.
//! - **Submission.** One `SubmitAggregate` signed by the aggregator's key,
//!   through `RollupService.SubmitTransaction`; transient failures retry
//!   with back-off, a nonce refusal re-reads the nonce and signs again, any
//!   other refusal fails the batch (the provers fall back).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use seqnet_proto::groth16::{decode_proof, PreparedKey, SpanStatement};
use seqnet_proto::{Action, Address, Code, ProofEntry};
use seqnet_rollup_client::{ClientError, RetryPolicy, RollupClient, TxSigner};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::msm::MsmBackend;
use crate::srs::Srs;
use crate::submit::{sign_and_submit, Route, SubmitFailure};

/// Largest hand-over line the aggregator reads.
const MAX_LINE: usize = 16 * 1024;

/// One proven job handed to the aggregator (one JSON line; bytes in hex).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Handover {
    pub rollup_id: u64,
    pub from_height: u64,
    pub to_height: u64,
    pub span_commitment: String,
    pub prev_state_root: String,
    pub new_state_root: String,
    pub proof: String,
    /// The prover's address (its ed25519 public key).
    pub prover: String,
    /// The prover's signature over `proof_entry_sign_bytes`.
    pub signature: String,
}

/// The aggregator's answer to one hand-over.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HandoverReply {
    /// The `SubmitAggregate` transaction carrying the proof (hex), when a
    /// node accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// Why the proof was not submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Handover {
    /// The hand-over of the proof `output` of `job`, signed by `key` for
    /// `chain_id`.
    pub fn new(
        key: &SigningKey,
        chain_id: &str,
        job: &seqnet_proto::pb::Job,
        output: &crate::backend::ProofOutput,
    ) -> Handover {
        let entry = ProofEntry::sign(
            key,
            chain_id,
            job.rollup_id,
            job.from_height,
            output.prev_state_root,
            output.new_state_root,
        );
        Handover {
            rollup_id: job.rollup_id,
            from_height: job.from_height,
            to_height: job.to_height,
            span_commitment: hex::encode(&job.span_commitment),
            prev_state_root: hex::encode(output.prev_state_root),
            new_state_root: hex::encode(output.new_state_root),
            proof: hex::encode(&output.proof),
            prover: hex::encode(entry.prover.0),
            signature: hex::encode(entry.signature.to_bytes()),
        }
    }

    /// The entry, the statement and the proof bytes.
    fn parse(&self) -> Result<(ProofEntry, SpanStatement, Vec<u8>), String> {
        fn bytes<const N: usize>(field: &str, text: &str) -> Result<[u8; N], String> {
            let v = hex::decode(text).map_err(|e| format!("{field}: {e}"))?;
            <[u8; N]>::try_from(v.as_slice())
                .map_err(|_| format!("{field}: {} bytes, want {N}", v.len()))
        }
        let new_root = bytes::<32>("new_state_root", &self.new_state_root)?;
        let prev_root = bytes::<32>("prev_state_root", &self.prev_state_root)?;
        let entry = ProofEntry {
            rollup_id: self.rollup_id,
            from_height: self.from_height,
            prev_state_root: prev_root,
            new_state_root: new_root,
            prover: Address(bytes::<32>("prover", &self.prover)?),
            signature: ed25519_dalek::Signature::from_bytes(&bytes::<64>(
                "signature",
                &self.signature,
            )?),
        };
        let statement = SpanStatement {
            rollup_id: self.rollup_id,
            from_height: self.from_height,
            to_height: self.to_height,
            commitment: bytes::<32>("span_commitment", &self.span_commitment)?,
            prev_root,
            new_root,
        };
        let proof = hex::decode(&self.proof).map_err(|e| format!("proof: {e}"))?;
        Ok((entry, statement, proof))
    }
}

/// Hands `handover` to the aggregator at `addr` (`host:port`, an optional
/// `tcp://` or `http://` prefix is ignored) and waits up to `timeout` for its
/// answer: the hash of the `SubmitAggregate` carrying the proof, or why not.
pub async fn hand_over(
    addr: &str,
    handover: &Handover,
    timeout: Duration,
) -> Result<[u8; 32], String> {
    let addr = addr
        .trim_start_matches("tcp://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let mut line = serde_json::to_vec(handover).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stream.write_all(&line).await.map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        reader
            .read_line(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let reply: HandoverReply =
            serde_json::from_str(answer.trim()).map_err(|e| format!("aggregator answer: {e}"))?;
        match (reply.tx_hash, reply.error) {
            (Some(hash), _) => hex::decode(&hash)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
                .ok_or_else(|| format!("aggregator answer: bad tx hash {hash}")),
            (None, Some(error)) => Err(error),
            (None, None) => Err("aggregator answer without a result".into()),
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from the aggregator within {timeout:?}")))
}

/// What the aggregator needs.
#[derive(Clone)]
pub struct AggregatorConfig {
    /// Sequencer gRPC endpoints, in fail-over order.
    pub nodes: Vec<String>,
    /// The aggregator's key: it signs and pays for `SubmitAggregate`, and
    /// earns `aggregator_fee_bps`.
    pub key: SigningKey,
    /// The aggregation SRS (its verifier part is the chain's `aggregation_srs`).
    pub srs: Arc<Srs>,
    pub msm: Arc<dyn MsmBackend>,
    /// Aggregate a group once it holds this many proofs.
    pub max_proofs: usize,
    /// ... or once its oldest proof has waited this long.
    pub max_wait: Duration,
    pub retry: RetryPolicy,
    /// Sends of one aggregate before the batch is given up.
    pub submit_attempts: u32,
}

/// One checked hand-over waiting in a group.
struct Pending {
    entry: ProofEntry,
    statement: SpanStatement,
    proof: Vec<u8>,
    reply: oneshot::Sender<HandoverReply>,
}

struct Group {
    key: Arc<PreparedKey>,
    since: Instant,
    items: Vec<Pending>,
}

type Incoming = (Handover, oneshot::Sender<HandoverReply>);

/// Runs the aggregator on `listener` until `shutdown` turns true; hand-overs
/// still waiting then are answered with an error (their provers fall back).
pub async fn run(
    config: AggregatorConfig,
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let mut client = RollupClient::new(config.nodes.clone())?.with_retry(config.retry.clone());
    let mut signer = loop {
        match client.status().await {
            Ok(status) => {
                let mut signer = TxSigner::new(config.key.clone(), status.chain_id);
                if let Some(params) = &status.params {
                    signer.fees = params.into();
                }
                break signer;
            }
            Err(error) => {
                tracing::warn!(%error, "no node answers yet");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    };
    let max_proofs = config.max_proofs.clamp(
        1,
        config
            .srs
            .max_proofs
            .min(seqnet_proto::tx::MAX_AGGREGATE_ENTRIES),
    );
    tracing::info!(
        aggregator = %signer.address(),
        chain = %signer.chain_id,
        msm = config.msm.name(),
        max_proofs,
        max_wait = ?config.max_wait,
        listen = ?listener.local_addr().ok(),
        "aggregator starting"
    );
    let (sender, mut incoming) = mpsc::channel::<Incoming>(1024);
    tokio::spawn(accept(listener, sender, shutdown.clone()));
    let mut keys: BTreeMap<u64, Arc<PreparedKey>> = BTreeMap::new();
    let mut groups: BTreeMap<[u8; 32], Group> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            item = incoming.recv() => {
                let Some((handover, reply)) = item else { return Ok(()) };
                match admit(&mut client, &signer.chain_id, &mut keys, &handover).await {
                    Ok((entry, statement, proof, key)) => {
                        metrics.handovers.with_label_values(&["received"]).inc();
                        tracing::info!(rollup = entry.rollup_id, from = entry.from_height, prover = %entry.prover, "proof received");
                        let group = groups.entry(*key.digest()).or_insert_with(|| Group {
                            key: key.clone(),
                            since: Instant::now(),
                            items: Vec::new(),
                        });
                        group.items.push(Pending { entry, statement, proof, reply });
                    }
                    Err(error) => {
                        metrics.handovers.with_label_values(&["refused"]).inc();
                        tracing::warn!(rollup = handover.rollup_id, from = handover.from_height, %error, "hand-over refused");
                        let _ = reply.send(HandoverReply { tx_hash: None, error: Some(error) });
                    }
                }
            }
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                for (_, group) in std::mem::take(&mut groups) {
                    fail(group.items, "the aggregator is shutting down");
                }
                return Ok(());
            }
        }
        let due: Vec<[u8; 32]> = groups
            .iter()
            .filter(|(_, g)| g.items.len() >= max_proofs || g.since.elapsed() >= config.max_wait)
            .map(|(k, _)| *k)
            .collect();
        for digest in due {
            let Some(mut group) = groups.remove(&digest) else {
                continue;
            };
            if group.items.len() > max_proofs {
                let rest = group.items.split_off(max_proofs);
                groups.insert(
                    digest,
                    Group {
                        key: group.key.clone(),
                        since: Instant::now(),
                        items: rest,
                    },
                );
            }
            flush(&config, &mut client, &mut signer, &metrics, group).await;
        }
    }
}

/// Accepts connections: each reads one hand-over and waits for its answer.
async fn accept(
    listener: TcpListener,
    sender: mpsc::Sender<Incoming>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let sender = sender.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read).take(MAX_LINE as u64);
            let mut line = String::new();
            let reply = match reader.read_line(&mut line).await {
                Ok(_) => match serde_json::from_str::<Handover>(line.trim()) {
                    Ok(handover) => {
                        let (tx, rx) = oneshot::channel();
                        if sender.send((handover, tx)).await.is_err() {
                            return;
                        }
                        rx.await.unwrap_or(HandoverReply {
                            tx_hash: None,
                            error: Some("the aggregator dropped the proof".into()),
                        })
                    }
                    Err(error) => HandoverReply {
                        tx_hash: None,
                        error: Some(format!("malformed hand-over: {error}")),
                    },
                },
                Err(error) => {
                    tracing::debug!(%peer, %error, "hand-over read failed");
                    return;
                }
            };
            if let Ok(mut out) = serde_json::to_vec(&reply) {
                out.push(b'\n');
                let _ = write.write_all(&out).await;
            }
        });
    }
}

/// Checks one hand-over: fields, the entry's signature, the proof under the
/// rollup's verifying key.
async fn admit(
    client: &mut RollupClient,
    chain_id: &str,
    keys: &mut BTreeMap<u64, Arc<PreparedKey>>,
    handover: &Handover,
) -> Result<(ProofEntry, SpanStatement, Vec<u8>, Arc<PreparedKey>), String> {
    let (entry, statement, proof) = handover.parse()?;
    entry
        .verify(chain_id)
        .map_err(|e| format!("entry signature: {e}"))?;
    let key = match keys.get(&entry.rollup_id) {
        Some(key) => key.clone(),
        None => {
            let rollup = client
                .rollup(entry.rollup_id)
                .await
                .map_err(|e| format!("rollup {}: {e}", entry.rollup_id))?;
            let key = Arc::new(PreparedKey::decode(&rollup.verifying_key).map_err(|e| {
                format!(
                    "rollup {} has no usable verifying key: {e}",
                    entry.rollup_id
                )
            })?);
            keys.insert(entry.rollup_id, key.clone());
            key
        }
    };
    key.verify(&proof, &statement)
        .map_err(|e| format!("proof does not verify: {e}"))?;
    Ok((entry, statement, proof, key))
}

fn fail(items: Vec<Pending>, why: &str) {
    for item in items {
        let _ = item.reply.send(HandoverReply {
            tx_hash: None,
            error: Some(why.to_string()),
        });
    }
}

/// One proof per job, in (rollup, from_height) order. When a job's primary and a
/// back-up both handed it over, the proof of the prover the chain assigns
/// the job to now is kept (an entry of any other prover would make the
/// chain refuse the whole aggregate); if the chain cannot say, the first to
/// arrive. The others are refused (their provers fall back to SubmitProof,
/// where the rules settle it).
async fn one_per_job(client: &mut RollupClient, items: Vec<Pending>) -> Vec<Pending> {
    let mut by_job: BTreeMap<(u64, u64), Vec<Pending>> = BTreeMap::new();
    for item in items {
        by_job
            .entry((item.entry.rollup_id, item.entry.from_height))
            .or_default()
            .push(item);
    }
    let mut kept = Vec::with_capacity(by_job.len());
    for (job, mut candidates) in by_job {
        let mut chosen = 0;
        if candidates.len() > 1 {
            for (index, candidate) in candidates.iter().enumerate() {
                match client.prover(candidate.entry.prover).await {
                    Ok(info) => {
                        if info
                            .assigned_jobs
                            .iter()
                            .any(|j| (j.rollup_id, j.from_height) == job)
                        {
                            chosen = index;
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, rollup = job.0, from = job.1, "cannot read the job's assignment; keeping the first proof");
                        break;
                    }
                }
            }
            tracing::info!(
                rollup = job.0,
                from = job.1,
                proofs = candidates.len(),
                kept = %candidates[chosen].entry.prover,
                "several proofs of one job"
            );
        }
        let keep = candidates.swap_remove(chosen);
        fail(candidates, "another proof of this job is being aggregated");
        kept.push(keep);
    }
    kept
}

/// Aggregates one group, submits it, answers its provers.
async fn flush(
    config: &AggregatorConfig,
    client: &mut RollupClient,
    signer: &mut TxSigner,
    metrics: &Metrics,
    group: Group,
) {
    let items = one_per_job(client, group.items).await;
    let count = items.len();
    let proofs = match items
        .iter()
        .map(|p| decode_proof(&p.proof))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(proofs) => proofs,
        Err(error) => {
            metrics.aggregate_failures.inc();
            fail(items, &format!("proof decoding: {error}"));
            return;
        }
    };
    let statements: Vec<SpanStatement> = items.iter().map(|p| p.statement).collect();
    let (srs, msm, key) = (config.srs.clone(), config.msm.clone(), group.key.clone());
    let started = Instant::now();
    let aggregated = tokio::task::spawn_blocking(move || {
        crate::aggregate::aggregate_statements(&srs, &key, &proofs, &statements, msm.as_ref())
            .map(|a| a.encode())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let aggregate = match aggregated {
        Ok(aggregate) => aggregate,
        Err(error) => {
            metrics.aggregate_failures.inc();
            tracing::error!(%error, count, "aggregation failed");
            fail(items, &format!("aggregation failed: {error}"));
            return;
        }
    };
    metrics
        .aggregation_seconds
        .observe(started.elapsed().as_secs_f64());
    tracing::info!(
        count,
        ms = started.elapsed().as_millis() as u64,
        msm = config.msm.name(),
        "aggregated"
    );
    let entries: Vec<ProofEntry> = items.iter().map(|p| p.entry.clone()).collect();
    match submit(config, client, signer, entries, aggregate).await {
        Ok(hash) => {
            metrics.aggregates_submitted.inc();
            metrics.aggregated_proofs.inc_by(count as u64);
            tracing::info!(tx = %hex::encode(hash), count, "aggregate submitted");
            for item in items {
                let _ = item.reply.send(HandoverReply {
                    tx_hash: Some(hex::encode(hash)),
                    error: None,
                });
            }
        }
        Err(error) => {
            metrics.aggregate_failures.inc();
            tracing::error!(%error, count, "aggregate not submitted; the provers fall back");
            fail(items, &format!("aggregate not submitted: {error}"));
        }
    }
}

async fn submit(
    config: &AggregatorConfig,
    client: &mut RollupClient,
    signer: &mut TxSigner,
    entries: Vec<ProofEntry>,
    aggregate: Vec<u8>,
) -> Result<[u8; 32], String> {
    let actions = [Action::SubmitAggregate { entries, aggregate }];
    match sign_and_submit(
        client,
        signer,
        &config.retry,
        config.submit_attempts,
        Route::SubmitTransaction,
        &actions,
    )
    .await
    {
        Ok(submitted) => Ok(submitted.hash),
        Err(SubmitFailure::Refused { code, message }) => Err(format!(
            "refused ({}): {message}",
            code.map_or("unknown", Code::name)
        )),
        Err(SubmitFailure::GaveUp(last)) => Err(last),
    }
}
