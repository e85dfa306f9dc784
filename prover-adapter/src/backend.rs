//! Proving back ends: what turns a proof job into a proof and a new state
//! root. [`ProvingBackend`] is the seam; two implementations:
//!
//! - [`ReferenceBackend`]: the reference circuit (arkworks Groth16), with the
//!   proving key a `seqnet-prover setup` wrote; the circuit size comes from
//!   the key itself.
//! - [`CommandBackend`]: any program, run once per job with `sh -c`: the job
//!   as one JSON object on stdin ([`JobInput`], version 2, see the crate
//!   README for the exact format), `{"proof": hex, "prev_state_root": hex,
//!   "new_state_root": hex}` on stdout, exit status 0. A rollup plugs its own
//!   prover in this way.
//!
//! A job is a *span* of one rollup's batches, delivered as soon as the span
//! closes, while earlier spans may still be unproven: the job carries the
//! rollup's last proven root and the earlier unproven spans (with the
//! transitions their pending proofs claim), and the back end works out the
//! state before its span from them. The reference back end replays the
//! reference circuit's state function through the earlier spans
//! ([`JobInput::reference_prev_root`]); a rollup's own prover replays its
//! own state transition from its data.
//!
//! A back end only proves; it does not decide validity: the node and every
//! validator check the proof with `seqnet_proto::groth16`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ark_bls12_381::Bls12_381;
use ark_groth16::ProvingKey;
use seqnet_proto::pb;
use serde::{Deserialize, Serialize};

use crate::{check_proving_key, decode_proving_key, JobStatement, ProverError};

/// Version of the JSON a [`CommandBackend`] program receives (2: spans).
pub const JOB_JSON_VERSION: u32 = 2;
/// Largest stdout a command may write (a proof is a few hundred bytes).
const MAX_COMMAND_OUTPUT: u64 = 1024 * 1024;
/// Lines of a failing command's stderr kept in the error.
const STDERR_TAIL_BYTES: usize = 2000;

/// Why a back end could not prove a job.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot read proving key {path}: {source}")]
    KeyRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("proving key {path} is not a reference-circuit key: {reason}")]
    KeyInvalid { path: PathBuf, reason: String },
    #[error("job {field} is {got} bytes, want 32")]
    JobField { field: &'static str, got: usize },
    #[error("job JSON version {got} is not the supported version {JOB_JSON_VERSION}")]
    JobVersion { got: u32 },
    #[error("job {rollup_id}/{from_height} does not add up: {reason}")]
    JobInconsistent {
        rollup_id: u64,
        from_height: u64,
        reason: String,
    },
    #[error(transparent)]
    Prove(#[from] ProverError),
    #[error("cannot run prover command {command:?}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("prover command {command:?} exited with {status}; stderr: {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("prover command {command:?} did not finish within {seconds} s (killed)")]
    CommandTimeout { command: String, seconds: u64 },
    #[error("prover command {command:?} wrote invalid output ({reason}): {output:?}")]
    BadOutput {
        command: String,
        reason: String,
        output: String,
    },
    #[error("proving task failed: {0}")]
    Task(String),
}

/// One item of a job's batch, as [`CommandBackend`] programs receive it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobItem {
    /// SHA-256 of the transaction that carried the item (hex).
    pub tx_hash: String,
    /// The transaction's signer (hex ed25519 public key).
    pub signer: String,
    pub nonce: u64,
    /// Index of the action inside its transaction.
    pub action_index: u32,
    /// The rollup data (hex).
    pub data: String,
}

/// One non-empty batch of a job's span.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobBatch {
    pub height: u64,
    /// `seqnet_proto::groth16::batch_commitment` of the batch (hex, 32 bytes).
    pub batch_commitment: String,
    /// The batch's items in block order.
    pub items: Vec<JobItem>,
}

/// An unproven span of the rollup before the job's own, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierSpan {
    pub from_height: u64,
    pub to_height: u64,
    /// Its span commitment (hex, 32 bytes).
    pub span_commitment: String,
    /// The transition a verified, not yet final proof of it claims (hex);
    /// absent while it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_prev_root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_new_root: Option<String>,
}

/// A proof job as a back end sees it (and, serialized, as a command reads
/// it on stdin): the span `from_height..=to_height` of one rollup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInput {
    /// [`JOB_JSON_VERSION`].
    pub version: u32,
    pub rollup_id: u64,
    pub from_height: u64,
    pub to_height: u64,
    /// `seqnet_proto::groth16::span_commitment` of the span (hex, 32 bytes).
    pub span_commitment: String,
    /// The rollup's last proven state root (hex, 32 bytes; zero before the
    /// first proof) and the last height it covers (0: none).
    pub proven_state_root: String,
    pub proven_height: u64,
    /// Unproven spans between the proven root and this one, in order: the
    /// proof's previous root is the state after them.
    pub earlier_spans: Vec<EarlierSpan>,
    /// Last block height at which the chain accepts this prover's proof.
    pub deadline: u64,
    /// 0: this prover is the primary; > 0: a back-up.
    pub rank: u64,
    /// The span's non-empty batches in height order.
    pub batches: Vec<JobBatch>,
}

fn hex32(field: &'static str, text: &str) -> Result<[u8; 32], BackendError> {
    let bytes = hex::decode(text.trim_start_matches("0x")).map_err(|_| BackendError::JobField {
        field,
        got: text.len() / 2,
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| BackendError::JobField {
        field,
        got: bytes.len(),
    })
}

fn job_item(item: &pb::BatchItem) -> JobItem {
    JobItem {
        tx_hash: hex::encode(&item.tx_hash),
        signer: hex::encode(&item.signer),
        nonce: item.nonce,
        action_index: item.action_index,
        data: hex::encode(&item.data),
    }
}

impl JobItem {
    /// The item as the chain committed to it.
    pub fn to_pb(&self) -> Result<pb::BatchItem, String> {
        let bytes =
            |field: &str, text: &str| hex::decode(text).map_err(|e| format!("item {field}: {e}"));
        Ok(pb::BatchItem {
            tx_hash: bytes("tx_hash", &self.tx_hash)?,
            signer: bytes("signer", &self.signer)?,
            nonce: self.nonce,
            action_index: self.action_index,
            data: bytes("data", &self.data)?,
        })
    }
}

impl JobInput {
    /// The back-end view of a job from the node.
    pub fn from_job(job: &pb::Job) -> JobInput {
        let claimed = |bytes: &[u8]| (!bytes.is_empty()).then(|| hex::encode(bytes));
        JobInput {
            version: JOB_JSON_VERSION,
            rollup_id: job.rollup_id,
            from_height: job.from_height,
            to_height: job.to_height,
            span_commitment: hex::encode(&job.span_commitment),
            proven_state_root: hex::encode(&job.proven_root),
            proven_height: job.proven_height,
            earlier_spans: job
                .earlier
                .iter()
                .map(|e| EarlierSpan {
                    from_height: e.from_height,
                    to_height: e.to_height,
                    span_commitment: hex::encode(&e.span_commitment),
                    claimed_prev_root: claimed(&e.claimed_prev_root),
                    claimed_new_root: claimed(&e.claimed_new_root),
                })
                .collect(),
            deadline: job.deadline,
            rank: job.rank,
            batches: job
                .batches
                .iter()
                .map(|b| JobBatch {
                    height: b.height,
                    batch_commitment: hex::encode(&b.batch_commitment),
                    items: b.items.iter().map(job_item).collect(),
                })
                .collect(),
        }
    }

    fn inconsistent(&self, reason: String) -> BackendError {
        BackendError::JobInconsistent {
            rollup_id: self.rollup_id,
            from_height: self.from_height,
            reason,
        }
    }

    /// Checks that the job adds up before any work goes into it: the version,
    /// each batch's commitment against its items, and the span commitment
    /// against the batches (a node that lies about the data is caught here,
    /// not after minutes of proving).
    pub fn check(&self) -> Result<(), BackendError> {
        if self.version != JOB_JSON_VERSION {
            return Err(BackendError::JobVersion { got: self.version });
        }
        let mut pairs = Vec::with_capacity(self.batches.len());
        let mut last = None;
        for batch in &self.batches {
            if batch.height < self.from_height
                || batch.height > self.to_height
                || last.is_some_and(|h| batch.height <= h)
            {
                return Err(self.inconsistent(format!(
                    "batch height {} is out of order or outside {}..={}",
                    batch.height, self.from_height, self.to_height
                )));
            }
            last = Some(batch.height);
            let items = batch
                .items
                .iter()
                .map(JobItem::to_pb)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.inconsistent(e))?;
            let computed =
                seqnet_proto::groth16::batch_commitment(self.rollup_id, batch.height, &items);
            if computed != hex32("batch_commitment", &batch.batch_commitment)? {
                return Err(self.inconsistent(format!(
                    "the items of height {} do not match its batch commitment",
                    batch.height
                )));
            }
            pairs.push((batch.height, computed));
        }
        let span = seqnet_proto::groth16::span_commitment(
            self.rollup_id,
            self.from_height,
            self.to_height,
            &pairs,
        );
        if span != hex32("span_commitment", &self.span_commitment)? {
            return Err(self.inconsistent("the batches do not match the span commitment".into()));
        }
        Ok(())
    }

    /// The state root before this span under the reference circuit: the
    /// proven root carried through every earlier span by its state function
    /// (claimed roots of pending proofs are not trusted; they would only
    /// agree).
    pub fn reference_prev_root(&self) -> Result<[u8; 32], BackendError> {
        use seqnet_proto::groth16::{root_from_bytes, root_to_bytes};
        let mut root = root_from_bytes(&hex32("proven_state_root", &self.proven_state_root)?)
            .map_err(ProverError::from)?;
        for span in &self.earlier_spans {
            root = crate::circuit::reference_next_root(
                root,
                self.rollup_id,
                span.from_height,
                span.to_height,
                &hex32("earlier span_commitment", &span.span_commitment)?,
            );
        }
        Ok(root_to_bytes(root))
    }

    /// The statement the reference circuit proves from `prev_root`.
    pub fn statement(&self, prev_root: [u8; 32]) -> Result<JobStatement, BackendError> {
        Ok(JobStatement {
            rollup_id: self.rollup_id,
            from_height: self.from_height,
            to_height: self.to_height,
            commitment: hex32("span_commitment", &self.span_commitment)?,
            prev_root,
        })
    }
}

/// A back end's answer: a proof of the transition `prev_state_root ->
/// new_state_root` over the job's span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofOutput {
    /// The proof as `SubmitProof` carries it (Groth16: 384 bytes, uncompressed).
    pub proof: Vec<u8>,
    /// 32 bytes each, big-endian, canonical BLS12-381 scalars.
    pub prev_state_root: [u8; 32],
    pub new_state_root: [u8; 32],
}

/// Proves jobs. Called from a blocking thread: implementations may take
/// seconds and use every core.
pub trait ProvingBackend: Send + Sync {
    /// Short description for logs (`reference k=8`, `command "..."`).
    fn describe(&self) -> String;
    /// Proves `job`.
    fn prove(&self, job: &JobInput) -> Result<ProofOutput, BackendError>;
}

/// The reference circuit with a proving key from `seqnet-prover setup`.
pub struct ReferenceBackend {
    pk: ProvingKey<Bls12_381>,
    k: u32,
    msm: std::sync::Arc<dyn crate::msm::MsmBackend>,
}

/// File name of the proving key in a `seqnet-prover setup` directory.
pub const PROVING_KEY_FILE: &str = "proving_key.bin";
/// File name of the verifying key in a `seqnet-prover setup` directory.
pub const VERIFYING_KEY_FILE: &str = "verifying_key.bin";

impl ReferenceBackend {
    /// Loads `dir/proving_key.bin`; the size `k` is read off the key (its
    /// evaluation domain has `2^k` points) and checked against the circuit.
    pub fn load(dir: &Path) -> Result<ReferenceBackend, BackendError> {
        let path = dir.join(PROVING_KEY_FILE);
        let bytes = std::fs::read(&path).map_err(|source| BackendError::KeyRead {
            path: path.clone(),
            source,
        })?;
        let invalid = |reason: String| BackendError::KeyInvalid {
            path: path.clone(),
            reason,
        };
        let pk = decode_proving_key(&bytes).map_err(|e| invalid(e.to_string()))?;
        let domain = pk.h_query.len() + 1;
        if !domain.is_power_of_two() {
            return Err(invalid(format!(
                "its domain has {domain} points, not a power of two"
            )));
        }
        let k = domain.trailing_zeros();
        check_proving_key(&pk, k).map_err(|e| invalid(e.to_string()))?;
        Ok(ReferenceBackend {
            pk,
            k,
            msm: std::sync::Arc::new(crate::msm::CpuMsm),
        })
    }

    /// Proves with MSMs on `msm` (see [`crate::msm::select`]) instead of the CPU.
    pub fn with_msm(mut self, msm: std::sync::Arc<dyn crate::msm::MsmBackend>) -> ReferenceBackend {
        self.msm = msm;
        self
    }

    /// The circuit size the key was made for.
    pub fn size(&self) -> u32 {
        self.k
    }
}

impl ProvingBackend for ReferenceBackend {
    fn describe(&self) -> String {
        format!(
            "reference circuit, k = {}, MSM on {}",
            self.k,
            self.msm.name()
        )
    }

    fn prove(&self, job: &JobInput) -> Result<ProofOutput, BackendError> {
        job.check()?;
        let prev_state_root = job.reference_prev_root()?;
        let (proof, new_state_root) = crate::prove_with_backend(
            &self.pk,
            self.k,
            &job.statement(prev_state_root)?,
            self.msm.as_ref(),
            &mut rand::rngs::OsRng,
        )?;
        Ok(ProofOutput {
            proof,
            prev_state_root,
            new_state_root,
        })
    }
}

/// What a [`CommandBackend`] program writes on stdout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandOutput {
    proof: String,
    prev_state_root: String,
    new_state_root: String,
}

/// An external program run with `sh -c COMMAND` for each job.
#[derive(Clone, Debug)]
pub struct CommandBackend {
    command: String,
    timeout: Duration,
}

impl CommandBackend {
    /// Runs `command` (a shell command line) per job, killing it after `timeout`.
    pub fn new(command: impl Into<String>, timeout: Duration) -> CommandBackend {
        CommandBackend {
            command: command.into(),
            timeout,
        }
    }

    fn bad_output(&self, reason: impl Into<String>, output: &[u8]) -> BackendError {
        let text = String::from_utf8_lossy(output);
        BackendError::BadOutput {
            command: self.command.clone(),
            reason: reason.into(),
            output: text.chars().take(200).collect(),
        }
    }

    /// Parses the program's stdout.
    fn parse(&self, stdout: &[u8]) -> Result<ProofOutput, BackendError> {
        let output: CommandOutput = serde_json::from_slice(stdout)
            .map_err(|e| self.bad_output(format!("not the expected JSON: {e}"), stdout))?;
        let proof = hex::decode(output.proof.trim_start_matches("0x"))
            .map_err(|e| self.bad_output(format!("proof is not hex: {e}"), stdout))?;
        if proof.is_empty() {
            return Err(self.bad_output("proof is empty", stdout));
        }
        let root = |field: &str, text: &str| {
            let bytes = hex::decode(text.trim_start_matches("0x"))
                .map_err(|e| self.bad_output(format!("{field} is not hex: {e}"), stdout))?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                self.bad_output(format!("{field} is {} bytes, want 32", bytes.len()), stdout)
            })
        };
        Ok(ProofOutput {
            proof,
            prev_state_root: root("prev_state_root", &output.prev_state_root)?,
            new_state_root: root("new_state_root", &output.new_state_root)?,
        })
    }
}

impl ProvingBackend for CommandBackend {
    fn describe(&self) -> String {
        format!("command {:?}", self.command)
    }

    fn prove(&self, job: &JobInput) -> Result<ProofOutput, BackendError> {
        let input = serde_json::to_vec(job).map_err(|e| BackendError::Task(e.to_string()))?;
        let spawn_error = |source| BackendError::Spawn {
            command: self.command.clone(),
            source,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        // Feed stdin and drain stdout/stderr on threads, so a program that
        // writes before it has read everything cannot deadlock with us.
        let mut stdin = child.stdin.take();
        let writer = std::thread::spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                // A program that ignores its input closes the pipe early.
                let _ = stdin.write_all(&input);
            }
        });
        let stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(stdout) = stdout {
                let _ = stdout.take(MAX_COMMAND_OUTPUT).read_to_end(&mut out);
            }
            out
        });
        let stderr = child.stderr.take();
        let err_reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(stderr) = stderr {
                let _ = stderr.take(MAX_COMMAND_OUTPUT).read_to_end(&mut out);
            }
            out
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait().map_err(spawn_error)? {
                Some(status) => break status,
                None if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(BackendError::CommandTimeout {
                        command: self.command.clone(),
                        seconds: self.timeout.as_secs(),
                    });
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let _ = writer.join();
        let stdout = reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        if !status.success() {
            let text = String::from_utf8_lossy(&stderr);
            let tail = &text[text.len().saturating_sub(STDERR_TAIL_BYTES)..];
            return Err(BackendError::CommandFailed {
                command: self.command.clone(),
                status: status.to_string(),
                stderr: tail.trim().to_string(),
            });
        }
        self.parse(&stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> pb::BatchItem {
        pb::BatchItem {
            tx_hash: vec![1; 32],
            signer: vec![2; 32],
            nonce: 3,
            action_index: 0,
            data: b"hi".to_vec(),
        }
    }

    fn pb_job() -> pb::Job {
        let batch = seqnet_proto::groth16::batch_commitment(2, 9, &[item()]);
        pb::Job {
            rollup_id: 2,
            from_height: 8,
            to_height: 10,
            span_commitment: seqnet_proto::groth16::span_commitment(2, 8, 10, &[(9, batch)])
                .to_vec(),
            proven_root: vec![0; 32],
            proven_height: 2,
            earlier: vec![
                pb::EarlierSpan {
                    from_height: 3,
                    to_height: 5,
                    span_commitment: vec![0xcd; 32],
                    claimed_prev_root: vec![0; 32],
                    claimed_new_root: vec![0x0e; 32],
                },
                pb::EarlierSpan {
                    from_height: 6,
                    to_height: 7,
                    span_commitment: vec![0xef; 32],
                    ..Default::default()
                },
            ],
            deadline: 29,
            batches: vec![pb::JobBatch {
                height: 9,
                batch_commitment: batch.to_vec(),
                items: vec![item()],
            }],
            ..Default::default()
        }
    }

    fn job() -> JobInput {
        JobInput::from_job(&pb_job())
    }

    #[test]
    fn job_json_is_the_documented_one() {
        let value = serde_json::to_value(job()).expect("json");
        assert_eq!(value["version"], 2);
        assert_eq!(value["rollup_id"], 2);
        assert_eq!(value["from_height"], 8);
        assert_eq!(value["to_height"], 10);
        assert_eq!(
            value["span_commitment"],
            hex::encode(&pb_job().span_commitment)
        );
        assert_eq!(value["proven_state_root"], "00".repeat(32));
        assert_eq!(value["proven_height"], 2);
        assert_eq!(value["deadline"], 29);
        assert_eq!(value["rank"], 0);
        assert_eq!(value["batches"][0]["height"], 9);
        assert_eq!(value["batches"][0]["items"][0]["data"], "6869");
        assert_eq!(value["batches"][0]["items"][0]["nonce"], 3);
        assert_eq!(value["earlier_spans"][0]["from_height"], 3);
        assert_eq!(
            value["earlier_spans"][0]["claimed_new_root"],
            "0e".repeat(32)
        );
        // A span without a pending proof has no claimed roots at all.
        assert!(value["earlier_spans"][1].get("claimed_new_root").is_none());
        job().check().expect("consistent");
        let statement = job().statement([7; 32]).expect("statement");
        assert_eq!(statement.commitment.to_vec(), pb_job().span_commitment);
        assert_eq!((statement.from_height, statement.to_height), (8, 10));
    }

    #[test]
    fn the_reference_pre_state_replays_every_earlier_span() {
        use seqnet_proto::groth16::{root_from_bytes, root_to_bytes};
        let mut root = root_from_bytes(&[0; 32]).expect("zero");
        root = crate::circuit::reference_next_root(root, 2, 3, 5, &[0xcd; 32]);
        root = crate::circuit::reference_next_root(root, 2, 6, 7, &[0xef; 32]);
        assert_eq!(
            job().reference_prev_root().expect("replay"),
            root_to_bytes(root)
        );
        // Without earlier spans it is the proven root.
        let mut first = pb_job();
        first.earlier.clear();
        first.proven_root = vec![0x01; 32];
        assert_eq!(
            JobInput::from_job(&first)
                .reference_prev_root()
                .expect("replay"),
            [0x01; 32]
        );
    }

    #[test]
    fn jobs_that_do_not_add_up_are_refused() {
        let mut other_items = pb_job();
        other_items.batches[0].items[0].data = b"ho".to_vec();
        let mut other_span = pb_job();
        other_span.span_commitment = vec![0; 32];
        let mut outside = pb_job();
        outside.batches[0].height = 11;
        let mut old = job();
        old.version = 1;
        for (bad, what) in [
            (JobInput::from_job(&other_items), "batch commitment"),
            (JobInput::from_job(&other_span), "span commitment"),
            (JobInput::from_job(&outside), "outside"),
        ] {
            let error = bad.check().expect_err(what).to_string();
            assert!(error.contains(what), "{error}");
        }
        assert!(matches!(
            old.check(),
            Err(BackendError::JobVersion { got: 1 })
        ));
    }

    #[test]
    fn a_command_that_answers_is_parsed() {
        let root = "11".repeat(32);
        let prev = "22".repeat(32);
        let backend = CommandBackend::new(
            format!(
                r#"cat >/dev/null; echo '{{"proof": "0102", "prev_state_root": "{prev}", "new_state_root": "{root}"}}'"#
            ),
            Duration::from_secs(10),
        );
        let out = backend.prove(&job()).expect("proves");
        assert_eq!(out.proof, vec![1, 2]);
        assert_eq!(out.prev_state_root, [0x22; 32]);
        assert_eq!(out.new_state_root, [0x11; 32]);
    }

    #[test]
    fn a_command_sees_the_job_on_stdin() {
        // Echoes the job's span commitment back as both roots.
        let backend = CommandBackend::new(
            r#"sed -n 's/.*"span_commitment":"\([0-9a-f]*\)","proven.*/{"proof":"ff","prev_state_root":"\1","new_state_root":"\1"}/p'"#,
            Duration::from_secs(10),
        );
        let out = backend.prove(&job()).expect("proves");
        assert_eq!(out.new_state_root.to_vec(), pb_job().span_commitment);
    }

    #[test]
    fn command_failures_are_named() {
        let fails = CommandBackend::new("echo broken >&2; exit 3", Duration::from_secs(10));
        match fails.prove(&job()) {
            Err(BackendError::CommandFailed { status, stderr, .. }) => {
                assert!(status.contains('3'), "{status}");
                assert_eq!(stderr, "broken");
            }
            other => panic!("{other:?}"),
        }
        let garbage = CommandBackend::new("echo not json", Duration::from_secs(10));
        assert!(matches!(
            garbage.prove(&job()),
            Err(BackendError::BadOutput { .. })
        ));
        let short = CommandBackend::new(
            format!(
                r#"echo '{{"proof": "01", "prev_state_root": "{}", "new_state_root": "0011"}}'"#,
                "00".repeat(32)
            ),
            Duration::from_secs(10),
        );
        match short.prove(&job()) {
            Err(BackendError::BadOutput { reason, .. }) => assert!(reason.contains("2 bytes")),
            other => panic!("{other:?}"),
        }
        let slow = CommandBackend::new("sleep 5", Duration::from_millis(200));
        assert!(matches!(
            slow.prove(&job()),
            Err(BackendError::CommandTimeout { .. })
        ));
    }
}
