//! Proving back ends: what turns a proof job into a proof and a new state
//! root. [`ProvingBackend`] is the seam; two implementations:
//!
//! - [`ReferenceBackend`]: the reference circuit (arkworks Groth16), with the
//!   proving key a `seqnet-prover setup` wrote; the circuit size comes from
//!   the key itself.
//! - [`CommandBackend`]: any program, run once per job with `sh -c`: the job
//!   as one JSON object on stdin ([`JobInput`], see the crate README for the
//!   exact format), `{"proof": hex, "new_state_root": hex}` on stdout, exit
//!   status 0. A rollup plugs its own prover in this way.
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

/// Version of the JSON a [`CommandBackend`] program receives.
pub const JOB_JSON_VERSION: u32 = 1;
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

/// A proof job as a back end sees it (and, serialized, as a command reads
/// it on stdin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInput {
    /// [`JOB_JSON_VERSION`].
    pub version: u32,
    pub rollup_id: u64,
    /// Height of the batch.
    pub height: u64,
    /// `seqnet_proto::groth16::batch_commitment` of the batch (hex, 32 bytes).
    pub batch_commitment: String,
    /// The rollup's last proven state root (hex, 32 bytes; zero before the
    /// first proof): the proof's previous-root public input.
    pub prev_state_root: String,
    /// Last block height at which the chain accepts this prover's proof.
    pub deadline: u64,
    /// 0: this prover is the primary; > 0: a back-up.
    pub rank: u64,
    /// The batch's items in block order.
    pub items: Vec<JobItem>,
}

impl JobInput {
    /// The back-end view of a job from the node.
    pub fn from_job(job: &pb::Job) -> JobInput {
        JobInput {
            version: JOB_JSON_VERSION,
            rollup_id: job.rollup_id,
            height: job.height,
            batch_commitment: hex::encode(&job.batch_commitment),
            prev_state_root: hex::encode(&job.prev_state_root),
            deadline: job.deadline,
            rank: job.rank,
            items: job
                .items
                .iter()
                .map(|i| JobItem {
                    tx_hash: hex::encode(&i.tx_hash),
                    signer: hex::encode(&i.signer),
                    nonce: i.nonce,
                    action_index: i.action_index,
                    data: hex::encode(&i.data),
                })
                .collect(),
        }
    }

    /// The statement the reference circuit proves.
    pub fn statement(&self) -> Result<JobStatement, BackendError> {
        let field = |field: &'static str, text: &str| {
            let bytes = hex::decode(text).map_err(|_| BackendError::JobField {
                field,
                got: text.len() / 2,
            })?;
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| BackendError::JobField {
                field,
                got: bytes.len(),
            })
        };
        Ok(JobStatement {
            rollup_id: self.rollup_id,
            height: self.height,
            commitment: field("batch_commitment", &self.batch_commitment)?,
            prev_root: field("prev_state_root", &self.prev_state_root)?,
        })
    }
}

/// A back end's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofOutput {
    /// The proof as `SubmitProof` carries it (Groth16: 384 bytes, uncompressed).
    pub proof: Vec<u8>,
    /// 32 bytes, big-endian, a canonical BLS12-381 scalar.
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
        let (proof, new_state_root) = crate::prove_with_backend(
            &self.pk,
            self.k,
            &job.statement()?,
            self.msm.as_ref(),
            &mut rand::rngs::OsRng,
        )?;
        Ok(ProofOutput {
            proof,
            new_state_root,
        })
    }
}

/// What a [`CommandBackend`] program writes on stdout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandOutput {
    proof: String,
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
        let root = hex::decode(output.new_state_root.trim_start_matches("0x"))
            .map_err(|e| self.bad_output(format!("new_state_root is not hex: {e}"), stdout))?;
        let new_state_root = <[u8; 32]>::try_from(root.as_slice()).map_err(|_| {
            self.bad_output(
                format!("new_state_root is {} bytes, want 32", root.len()),
                stdout,
            )
        })?;
        Ok(ProofOutput {
            proof,
            new_state_root,
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

    fn job() -> JobInput {
        JobInput::from_job(&pb::Job {
            rollup_id: 2,
            height: 9,
            batch_commitment: vec![0xab; 32],
            prev_state_root: vec![0; 32],
            deadline: 29,
            items: vec![pb::BatchItem {
                tx_hash: vec![1; 32],
                signer: vec![2; 32],
                nonce: 3,
                action_index: 0,
                data: b"hi".to_vec(),
            }],
            ..Default::default()
        })
    }

    #[test]
    fn job_json_is_the_documented_one() {
        let value = serde_json::to_value(job()).expect("json");
        assert_eq!(value["version"], 1);
        assert_eq!(value["rollup_id"], 2);
        assert_eq!(value["height"], 9);
        assert_eq!(value["batch_commitment"], "ab".repeat(32));
        assert_eq!(value["prev_state_root"], "00".repeat(32));
        assert_eq!(value["deadline"], 29);
        assert_eq!(value["rank"], 0);
        assert_eq!(value["items"][0]["data"], "6869");
        assert_eq!(value["items"][0]["nonce"], 3);
        let statement = job().statement().expect("statement");
        assert_eq!(statement.commitment, [0xab; 32]);
    }

    #[test]
    fn a_command_that_answers_is_parsed() {
        let root = "11".repeat(32);
        let backend = CommandBackend::new(
            format!(r#"cat >/dev/null; echo '{{"proof": "0102", "new_state_root": "{root}"}}'"#),
            Duration::from_secs(10),
        );
        let out = backend.prove(&job()).expect("proves");
        assert_eq!(out.proof, vec![1, 2]);
        assert_eq!(out.new_state_root, [0x11; 32]);
    }

    #[test]
    fn a_command_sees_the_job_on_stdin() {
        // Echoes the job's commitment back as the new root.
        let backend = CommandBackend::new(
            r#"sed -n 's/.*"batch_commitment":"\([0-9a-f]*\)".*/{"proof":"ff","new_state_root":"\1"}/p'"#,
            Duration::from_secs(10),
        );
        let out = backend.prove(&job()).expect("proves");
        assert_eq!(out.new_state_root, [0xab; 32]);
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
            r#"echo '{"proof": "01", "new_state_root": "0011"}'"#,
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
