#![doc = include_str!("../README.md")]

pub mod aggregate;
pub mod aggregator;
pub mod backend;
pub mod circuit;
pub mod groth16_prover;
pub mod metrics;
pub mod msm;
pub mod srs;
pub mod submit;
pub mod worker;

use ark_bls12_381::{Bls12_381, Fr};
use ark_ff::UniformRand;
use ark_groth16::{Groth16, ProvingKey, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use rand::{CryptoRng, RngCore, SeedableRng};
use seqnet_proto::groth16::{encode_proof, root_from_bytes, root_to_bytes, ProofError};

pub use circuit::{reference_next_root, ReferenceCircuit, ReferenceInputs, MAX_SIZE, MIN_SIZE};

/// Errors of the prover library.
#[derive(Debug, thiserror::Error)]
pub enum ProverError {
    /// The size `k` is outside the supported range.
    #[error("circuit size k = {k} is out of range {min}..={max}")]
    SizeOutOfRange { k: u32, min: u32, max: u32 },
    /// The proving key was not made for this circuit size.
    #[error("proving key does not match the reference circuit of size k = {k}: {reason}")]
    KeyMismatch { k: u32, reason: String },
    /// A statement field is invalid (e.g. a non-canonical previous root).
    #[error(transparent)]
    Statement(#[from] ProofError),
    /// Constraint synthesis, key generation or proving failed.
    #[error("groth16: {0}")]
    Synthesis(#[from] ark_relations::r1cs::SynthesisError),
    /// Proving through the MSM back end failed.
    #[error(transparent)]
    Prove(#[from] groth16_prover::Groth16Error),
    /// A key could not be (de)serialized.
    #[error("key encoding: {0}")]
    Serialization(#[from] ark_serialize::SerializationError),
}

/// A span proof job: the statement without its new root, which the prover
/// computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobStatement {
    pub rollup_id: u64,
    pub from_height: u64,
    pub to_height: u64,
    /// [`seqnet_proto::groth16::span_commitment`] of the span.
    pub commitment: [u8; 32],
    /// The state root before the span (32 bytes, big-endian, `< r`).
    pub prev_root: [u8; 32],
}

impl JobStatement {
    /// The one-block span `height..=height` of a single batch with
    /// `batch_commitment` (what `span_blocks = 1` gives), for tools and tests.
    pub fn single_batch(
        rollup_id: u64,
        height: u64,
        batch_commitment: [u8; 32],
        prev_root: [u8; 32],
    ) -> JobStatement {
        JobStatement {
            rollup_id,
            from_height: height,
            to_height: height,
            commitment: seqnet_proto::groth16::span_commitment(
                rollup_id,
                height,
                height,
                &[(height, batch_commitment)],
            ),
            prev_root,
        }
    }

    /// The full statement with `new_root`.
    pub fn with_new_root(&self, new_root: [u8; 32]) -> seqnet_proto::SpanStatement {
        seqnet_proto::SpanStatement {
            rollup_id: self.rollup_id,
            from_height: self.from_height,
            to_height: self.to_height,
            commitment: self.commitment,
            prev_root: self.prev_root,
            new_root,
        }
    }
}

fn check_size(k: u32) -> Result<circuit::CircuitShape, ProverError> {
    circuit::shape(k).ok_or(ProverError::SizeOutOfRange {
        k,
        min: MIN_SIZE,
        max: MAX_SIZE,
    })
}

/// A **development** setup of the reference circuit of size `k`: Groth16 keys
/// generated from a `ChaCha20Rng` seeded with `seed`. Anyone who knows the seed
/// can recompute the trapdoor and forge proofs: this is not a ceremony.
pub fn setup(
    k: u32,
    seed: u64,
) -> Result<(ProvingKey<Bls12_381>, VerifyingKey<Bls12_381>), ProverError> {
    check_size(k)?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let pk = Groth16::<Bls12_381>::generate_random_parameters_with_reduction(
        ReferenceCircuit::for_setup(k),
        &mut rng,
    )?;
    let vk = pk.vk.clone();
    Ok((pk, vk))
}

/// Checks that `pk` belongs to the reference circuit of size `k` (by its shape).
pub fn check_proving_key(pk: &ProvingKey<Bls12_381>, k: u32) -> Result<(), ProverError> {
    let shape = check_size(k)?;
    let want_vars = circuit::INSTANCE_VARIABLES + shape.witnesses;
    let mismatch = |reason: String| ProverError::KeyMismatch { k, reason };
    if pk.vk.gamma_abc_g1.len() != circuit::INSTANCE_VARIABLES {
        return Err(mismatch(format!(
            "{} public inputs, want {}",
            pk.vk.gamma_abc_g1.len().saturating_sub(1),
            circuit::INSTANCE_VARIABLES - 1
        )));
    }
    if pk.a_query.len() != want_vars {
        return Err(mismatch(format!(
            "{} variables, want {want_vars}",
            pk.a_query.len()
        )));
    }
    if pk.h_query.len() + 1 != 1usize << k {
        return Err(mismatch(format!(
            "domain of {} points, want {}",
            pk.h_query.len() + 1,
            1usize << k
        )));
    }
    Ok(())
}

/// Proves `job` with the reference circuit of size `k`; returns the encoded proof
/// ([`PROOF_LEN`](seqnet_proto::groth16::PROOF_LEN) bytes, uncompressed) and the new state root. Randomness from the OS.
pub fn prove(
    pk: &ProvingKey<Bls12_381>,
    k: u32,
    job: &JobStatement,
) -> Result<(Vec<u8>, [u8; 32]), ProverError> {
    prove_with_rng(pk, k, job, &mut rand::rngs::OsRng)
}

/// [`prove`] with caller-supplied randomness (the proof's zero-knowledge blinding).
pub fn prove_with_rng<R: RngCore + CryptoRng>(
    pk: &ProvingKey<Bls12_381>,
    k: u32,
    job: &JobStatement,
    rng: &mut R,
) -> Result<(Vec<u8>, [u8; 32]), ProverError> {
    prove_with_backend(pk, k, job, &msm::CpuMsm, rng)
}

/// [`prove_with_rng`] with the MSMs on `backend` (CPU cores or a GPU).
pub fn prove_with_backend<R: RngCore + CryptoRng>(
    pk: &ProvingKey<Bls12_381>,
    k: u32,
    job: &JobStatement,
    backend: &dyn msm::MsmBackend,
    rng: &mut R,
) -> Result<(Vec<u8>, [u8; 32]), ProverError> {
    check_proving_key(pk, k)?;
    let prev_root = root_from_bytes(&job.prev_root)?;
    let inputs = ReferenceInputs::for_job(
        job.rollup_id,
        job.from_height,
        job.to_height,
        job.commitment,
        prev_root,
    );
    let (r, s) = (Fr::rand(rng), Fr::rand(rng));
    let proof = groth16_prover::create_proof(ReferenceCircuit::new(k, inputs), pk, r, s, backend)?;
    Ok((encode_proof(&proof), root_to_bytes(inputs.new_root)))
}

/// The next root of `job` under the reference circuit, without proving.
pub fn next_root(job: &JobStatement) -> Result<[u8; 32], ProverError> {
    let prev = root_from_bytes(&job.prev_root)?;
    Ok(root_to_bytes(reference_next_root(
        prev,
        job.rollup_id,
        job.from_height,
        job.to_height,
        &job.commitment,
    )))
}

/// Encodes a proving key: uncompressed `ark-serialize` (fast to load).
pub fn encode_proving_key(pk: &ProvingKey<Bls12_381>) -> Result<Vec<u8>, ProverError> {
    let mut out = Vec::with_capacity(pk.uncompressed_size());
    pk.serialize_uncompressed(&mut out)?;
    Ok(out)
}

/// Decodes a proving key written by [`encode_proving_key`] *without* curve or
/// subgroup checks: the proving key is the prover's own local file, and a bad one
/// only yields proofs that every verifier rejects.
pub fn decode_proving_key(bytes: &[u8]) -> Result<ProvingKey<Bls12_381>, ProverError> {
    Ok(ProvingKey::deserialize_uncompressed_unchecked(bytes)?)
}

/// Encodes a verifying key as seqnet expects it (compressed `ark-serialize`, see
/// [`seqnet_proto::groth16::PreparedKey::decode`]).
pub fn encode_verifying_key(vk: &VerifyingKey<Bls12_381>) -> Result<Vec<u8>, ProverError> {
    let mut out = Vec::with_capacity(vk.compressed_size());
    vk.serialize_compressed(&mut out)?;
    Ok(out)
}

/// Number of R1CS constraints of the reference circuit of size `k`.
pub fn constraint_count(k: u32) -> Result<usize, ProverError> {
    Ok(check_size(k)?.constraints)
}

/// Re-exported so callers need no direct arkworks dependency for roots.
pub type Scalar = Fr;
