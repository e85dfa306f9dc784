//! Groth16 batch-proof verification over BLS12-381 (a pure function: no I/O,
//! no clock, no randomness).
//!
//! A rollup registers a verifying key; a prover proves the state transition of
//! one *span*: the rollup's non-empty batches at heights `from..=to`, in
//! height order ([`SpanStatement`]). The proof's six public inputs bind, in
//! this order:
//!
//! 1. `rollup_id` (as a field element),
//! 2. the span's bounds, `from * 2^64 + to` ([`span_bounds`]: two `u64`s
//!    packed into one input, so the key format keeps six inputs),
//! 3. the first 16 bytes of the [`span_commitment`] as a big-endian `u128`,
//! 4. its last 16 bytes, likewise,
//! 5. the previous state root, 6. the new state root (32 bytes each, big-endian,
//!    canonical: below the scalar field modulus `r`).
//!
//! Encodings are arkworks' `ark-serialize` encodings (ZCash flags): a
//! [`VerifyingKey<Bls12_381>`](ark_groth16::VerifyingKey) is compressed,
//! [`VK_LEN`] bytes (six public inputs); a
//! [`Proof<Bls12_381>`](ark_groth16::Proof) is uncompressed, exactly
//! [`PROOF_LEN`] bytes (A: G1, B: G2, C: G1), so that checking a proof takes no
//! square roots (decompression was 40 % of decoding, and every validator
//! decodes every proof; a key is decoded once). Decoding is done here point by point
//! so that every failure is named: a wrong length, a malformed encoding, a point
//! not on the curve, a point outside the prime-order subgroup (G1 and G2 have
//! cofactors; the endomorphism-based subgroup checks of `ark-bls12-381` are used),
//! or the identity. The identity is rejected in keys; in a proof it is left
//! to the pairing equation, as aggregation must leave it (see [`decode_proof`]).
//!
//! Groth16 proofs are malleable (anyone can re-randomize a valid proof): never use
//! a proof's bytes or hash as an identity.

use ark_bls12_381::{Bls12_381, Fq, Fq2, G1Affine, G2Affine};
use ark_ec::pairing::Pairing;
use ark_ec::short_weierstrass::{Affine, SWCurveConfig};
use ark_ec::AffineRepr;
use ark_ff::{BigInteger, BigInteger256, BigInteger384, PrimeField};
use ark_groth16::{Groth16, PreparedVerifyingKey, Proof, VerifyingKey};
use ark_serialize::CanonicalSerialize;

pub use ark_bls12_381::Fr;

/// Number of public inputs of a batch proof.
pub const PUBLIC_INPUTS: usize = 6;
/// Length of a compressed G1 point.
pub const G1_LEN: usize = 48;
/// Length of a compressed G2 point.
pub const G2_LEN: usize = 96;
/// Length of an uncompressed G1 point (x, then y).
pub const G1_UNCOMPRESSED_LEN: usize = 2 * G1_LEN;
/// Length of an uncompressed G2 point (x.c1, x.c0, y.c1, y.c0).
pub const G2_UNCOMPRESSED_LEN: usize = 2 * G2_LEN;
/// Length of an encoded proof (A, B, C uncompressed).
pub const PROOF_LEN: usize = 2 * G1_UNCOMPRESSED_LEN + G2_UNCOMPRESSED_LEN;
/// Offsets of B and C in an encoded proof (A is at 0).
pub const PROOF_B_AT: usize = G1_UNCOMPRESSED_LEN;
pub const PROOF_C_AT: usize = G1_UNCOMPRESSED_LEN + G2_UNCOMPRESSED_LEN;
/// Length of an encoded verifying key with [`PUBLIC_INPUTS`] inputs:
/// alpha (G1), beta, gamma, delta (G2), a `u64` little-endian count, then
/// `PUBLIC_INPUTS + 1` G1 points.
pub const VK_LEN: usize = VK_HEADER_LEN + 8 + (PUBLIC_INPUTS + 1) * G1_LEN;
const VK_HEADER_LEN: usize = G1_LEN + 3 * G2_LEN;

/// Domain separator of [`batch_commitment`].
pub const BATCH_COMMITMENT_DOMAIN: &[u8] = b"seqnet/batch/v1";
/// Domain separator of [`span_commitment`].
pub const SPAN_COMMITMENT_DOMAIN: &[u8] = b"seqnet/span/v1";

const GAMMA_ABC_NAMES: [&str; PUBLIC_INPUTS + 1] = [
    "vk.gamma_abc_g1[0]",
    "vk.gamma_abc_g1[1]",
    "vk.gamma_abc_g1[2]",
    "vk.gamma_abc_g1[3]",
    "vk.gamma_abc_g1[4]",
    "vk.gamma_abc_g1[5]",
    "vk.gamma_abc_g1[6]",
];

/// Why a proof or a verifying key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof bytes are not a valid encoding (flags, non-canonical coordinate).
    #[error("malformed proof: {reason}")]
    MalformedProof { reason: String },
    /// The verifying key bytes are not a valid encoding.
    #[error("malformed verifying key: {reason}")]
    MalformedKey { reason: String },
    /// The proof has the wrong length.
    #[error("proof is {got} bytes, want {want}")]
    ProofLength { got: usize, want: usize },
    /// A point's x-coordinate has no matching y on the curve.
    #[error("{point} is not on the curve")]
    NotOnCurve { point: &'static str },
    /// A point lies on the curve but outside the prime-order subgroup.
    #[error("{point} is not in the prime-order subgroup")]
    NotInSubgroup { point: &'static str },
    /// A point is the identity (point at infinity).
    #[error("{point} is the identity")]
    Identity { point: &'static str },
    /// The verifying key has the wrong number of public inputs.
    #[error("verifying key has {got} public inputs, expected {expected}")]
    InputCount { expected: usize, got: usize },
    /// A state root is not a canonical scalar field element (it is `>= r`).
    #[error("state root is not a canonical BLS12-381 scalar (must be < r)")]
    NonCanonicalRoot,
    /// The pairing check failed: the proof does not prove this statement.
    #[error("proof does not verify for this statement")]
    Invalid,
}

/// SHA-256 commitment to a batch: `SHA-256(b"seqnet/batch/v1" || rollup_id (u64 BE)
/// || height (u64 BE) || for each item: len (u32 BE) || prost encoding of the item)`.
pub fn batch_commitment(rollup_id: u64, height: u64, items: &[crate::pb::BatchItem]) -> [u8; 32] {
    use prost::Message;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(BATCH_COMMITMENT_DOMAIN);
    h.update(rollup_id.to_be_bytes());
    h.update(height.to_be_bytes());
    for item in items {
        let enc = item.encode_to_vec();
        // Items are bounded by the transaction size limit, far below 4 GiB.
        let len = u32::try_from(enc.len()).unwrap_or(u32::MAX);
        h.update(len.to_be_bytes());
        h.update(&enc);
    }
    h.finalize().into()
}

/// SHA-256 commitment to a span of one rollup's batches:
/// `SHA-256(b"seqnet/span/v1" || rollup_id (u64 BE) || from (u64 BE) || to (u64 BE)
/// || count (u32 BE) || for each batch in height order: height (u64 BE) || its
/// batch_commitment (32 bytes))`. `batches` are `(height, batch commitment)`
/// pairs, the span's non-empty batches; callers keep them in increasing
/// height order within `from..=to` (the chain builds them that way; a client
/// that recomputes a span from the batches it read gets the same bytes).
pub fn span_commitment(
    rollup_id: u64,
    from: u64,
    to: u64,
    batches: &[(u64, [u8; 32])],
) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(SPAN_COMMITMENT_DOMAIN);
    h.update(rollup_id.to_be_bytes());
    h.update(from.to_be_bytes());
    h.update(to.to_be_bytes());
    // A span has at most `max_span_blocks` batches, far below 2^32.
    let count = u32::try_from(batches.len()).unwrap_or(u32::MAX);
    h.update(count.to_be_bytes());
    for (height, commitment) in batches {
        h.update(height.to_be_bytes());
        h.update(commitment);
    }
    h.finalize().into()
}

/// The span bounds as one public input: `from * 2^64 + to`.
pub fn span_bounds(from: u64, to: u64) -> Fr {
    Fr::from((u128::from(from) << 64) | u128::from(to))
}

/// The statement a span proof proves: the span `(rollup_id, from..=to,
/// commitment)` moves the rollup's state from `prev_root` to `new_root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanStatement {
    pub rollup_id: u64,
    /// First height of the span.
    pub from_height: u64,
    /// Last height of the span.
    pub to_height: u64,
    /// [`span_commitment`] of the span.
    pub commitment: [u8; 32],
    /// State root before the span (32 bytes, big-endian, `< r`).
    pub prev_root: [u8; 32],
    /// State root after the span (32 bytes, big-endian, `< r`).
    pub new_root: [u8; 32],
}

impl SpanStatement {
    /// The six public inputs, in circuit order:
    /// `[rollup_id, from * 2^64 + to, commitment[0..16], commitment[16..32], prev_root, new_root]`
    /// (the commitment's first 16 bytes come first, each half big-endian).
    pub fn public_inputs(&self) -> Result<Vec<Fr>, ProofError> {
        let [c_first, c_second] = commitment_halves(&self.commitment);
        Ok(vec![
            Fr::from(self.rollup_id),
            span_bounds(self.from_height, self.to_height),
            c_first,
            c_second,
            root_from_bytes(&self.prev_root)?,
            root_from_bytes(&self.new_root)?,
        ])
    }

    /// The statement's bytes for memo keys: every field, fixed width.
    pub fn to_bytes(&self) -> [u8; 120] {
        let mut out = [0u8; 120];
        out[..8].copy_from_slice(&self.rollup_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.from_height.to_be_bytes());
        out[16..24].copy_from_slice(&self.to_height.to_be_bytes());
        out[24..56].copy_from_slice(&self.commitment);
        out[56..88].copy_from_slice(&self.prev_root);
        out[88..120].copy_from_slice(&self.new_root);
        out
    }
}

/// The commitment's two public inputs: bytes `0..16` and `16..32`, each read as
/// a big-endian `u128`.
pub fn commitment_halves(commitment: &[u8; 32]) -> [Fr; 2] {
    let mut first = [0u8; 16];
    let mut second = [0u8; 16];
    first.copy_from_slice(&commitment[..16]);
    second.copy_from_slice(&commitment[16..]);
    [
        Fr::from(u128::from_be_bytes(first)),
        Fr::from(u128::from_be_bytes(second)),
    ]
}

/// A state root as 32 big-endian bytes.
pub fn root_to_bytes(root: Fr) -> [u8; 32] {
    let be = root.into_bigint().to_bytes_be();
    let mut out = [0u8; 32];
    // A BLS12-381 scalar is 4 limbs = 32 bytes.
    out[32 - be.len().min(32)..].copy_from_slice(&be[be.len().saturating_sub(32)..]);
    out
}

/// A state root from 32 big-endian bytes; rejects values `>= r`.
pub fn root_from_bytes(bytes: &[u8; 32]) -> Result<Fr, ProofError> {
    let mut limbs = [0u64; 4];
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut limb = [0u8; 8];
        limb.copy_from_slice(chunk);
        limbs[3 - i] = u64::from_be_bytes(limb);
    }
    Fr::from_bigint(BigInteger256::new(limbs)).ok_or(ProofError::NonCanonicalRoot)
}

#[derive(Clone, Copy)]
pub(crate) enum Ctx {
    Proof,
    Key,
}

impl Ctx {
    fn malformed(self, reason: String) -> ProofError {
        match self {
            Ctx::Proof => ProofError::MalformedProof { reason },
            Ctx::Key => ProofError::MalformedKey { reason },
        }
    }
}

/// Flags of a compressed BLS12-381 point (ZCash serialization format, as used by
/// arkworks): bit 7 compressed, bit 6 infinity, bit 5 "y is the larger root".
struct Flags {
    greatest: bool,
}

/// Parses flags and rejects the identity. `rest_zero` tells whether every coordinate
/// bit (flags masked) is zero.
fn parse_flags(
    first: u8,
    rest_zero: bool,
    point: &'static str,
    ctx: Ctx,
) -> Result<Flags, ProofError> {
    let compressed = first & 0x80 != 0;
    let infinity = first & 0x40 != 0;
    let greatest = first & 0x20 != 0;
    if !compressed {
        return Err(ctx.malformed(format!(
            "{point}: compression flag not set (only compressed points are accepted)"
        )));
    }
    if infinity {
        if greatest || !rest_zero {
            return Err(ctx.malformed(format!(
                "{point}: infinity flag set with other flag or coordinate bits"
            )));
        }
        return Err(ProofError::Identity { point });
    }
    Ok(Flags { greatest })
}

/// A base-field element from 48 big-endian bytes (flags already masked), if `< p`.
fn fq_from_be(bytes: &[u8; G1_LEN]) -> Option<Fq> {
    let mut limbs = [0u64; 6];
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let mut limb = [0u8; 8];
        limb.copy_from_slice(chunk);
        limbs[5 - i] = u64::from_be_bytes(limb);
    }
    Fq::from_bigint(BigInteger384::new(limbs))
}

fn masked(bytes: &[u8]) -> [u8; G1_LEN] {
    let mut out = [0u8; G1_LEN];
    out.copy_from_slice(&bytes[..G1_LEN]);
    out[0] &= 0x1f;
    out
}

fn unmasked(bytes: &[u8]) -> [u8; G1_LEN] {
    let mut out = [0u8; G1_LEN];
    out.copy_from_slice(&bytes[..G1_LEN]);
    out
}

/// Decodes a compressed G1 point (`bytes.len() == G1_LEN`), checking canonical
/// encoding, curve membership, subgroup membership and non-identity.
pub(crate) fn decode_g1(
    bytes: &[u8],
    point: &'static str,
    ctx: Ctx,
) -> Result<G1Affine, ProofError> {
    let x_bytes = masked(bytes);
    let flags = parse_flags(bytes[0], x_bytes == [0u8; G1_LEN], point, ctx)?;
    let x = fq_from_be(&x_bytes).ok_or_else(|| {
        ctx.malformed(format!(
            "{point}: x-coordinate is not a canonical field element"
        ))
    })?;
    let p = G1Affine::get_point_from_x_unchecked(x, flags.greatest)
        .ok_or(ProofError::NotOnCurve { point })?;
    in_subgroup(p, point)
}

/// `p` (on the curve by construction) if it is in the prime-order subgroup.
fn in_subgroup<C: SWCurveConfig>(
    p: Affine<C>,
    point: &'static str,
) -> Result<Affine<C>, ProofError> {
    if p.is_in_correct_subgroup_assuming_on_curve() {
        Ok(p)
    } else {
        Err(ProofError::NotInSubgroup { point })
    }
}

/// `p` (from raw coordinates) if it is on the curve.
fn on_curve<C: SWCurveConfig>(p: Affine<C>, point: &'static str) -> Result<Affine<C>, ProofError> {
    if p.is_on_curve() {
        Ok(p)
    } else {
        Err(ProofError::NotOnCurve { point })
    }
}

/// `p` (from raw coordinates) if it is on the curve and in the prime-order
/// subgroup.
fn on_curve_in_subgroup<C: SWCurveConfig>(
    p: Affine<C>,
    point: &'static str,
) -> Result<Affine<C>, ProofError> {
    in_subgroup(on_curve(p, point)?, point)
}

/// Decodes a compressed G2 point (`bytes.len() == G2_LEN`: x.c1 with flags, then
/// x.c0), with the same checks as [`decode_g1`].
pub(crate) fn decode_g2(
    bytes: &[u8],
    point: &'static str,
    ctx: Ctx,
) -> Result<G2Affine, ProofError> {
    let c1_bytes = masked(&bytes[..G1_LEN]);
    let c0_bytes = unmasked(&bytes[G1_LEN..G2_LEN]);
    let rest_zero = c1_bytes == [0u8; G1_LEN] && c0_bytes == [0u8; G1_LEN];
    let flags = parse_flags(bytes[0], rest_zero, point, ctx)?;
    let c1 = fq_from_be(&c1_bytes)
        .ok_or_else(|| ctx.malformed(format!("{point}: x.c1 is not a canonical field element")))?;
    let c0 = fq_from_be(&c0_bytes)
        .ok_or_else(|| ctx.malformed(format!("{point}: x.c0 is not a canonical field element")))?;
    let p = G2Affine::get_point_from_x_unchecked(Fq2::new(c0, c1), flags.greatest)
        .ok_or(ProofError::NotOnCurve { point })?;
    in_subgroup(p, point)
}

/// Flags of an uncompressed point: compression and sort bits clear; the
/// identity is rejected (its coordinate bits must be zero to be named so).
fn parse_uncompressed_flags(
    first: u8,
    rest_zero: bool,
    point: &'static str,
    ctx: Ctx,
) -> Result<(), ProofError> {
    if first & 0x80 != 0 {
        return Err(ctx.malformed(format!(
            "{point}: compression flag set (proof points are uncompressed)"
        )));
    }
    if first & 0x20 != 0 {
        return Err(ctx.malformed(format!("{point}: sort flag set on an uncompressed point")));
    }
    if first & 0x40 != 0 {
        if !rest_zero {
            return Err(ctx.malformed(format!("{point}: infinity flag set with coordinate bits")));
        }
        return Err(ProofError::Identity { point });
    }
    Ok(())
}

/// Decodes an uncompressed G1 point (`bytes.len() == G1_UNCOMPRESSED_LEN`)
/// with the checks of [`decode_g1`].
pub(crate) fn decode_g1_uncompressed(
    bytes: &[u8],
    point: &'static str,
    ctx: Ctx,
) -> Result<G1Affine, ProofError> {
    in_subgroup(decode_g1_uncompressed_any_order(bytes, point, ctx)?, point)
}

/// Decodes an uncompressed G1 point with the checks of [`decode_g1`] except
/// the subgroup check: for points that only enter linear equations in G1
/// (see `aggregate`), never a pairing.
pub(crate) fn decode_g1_uncompressed_any_order(
    bytes: &[u8],
    point: &'static str,
    ctx: Ctx,
) -> Result<G1Affine, ProofError> {
    let x_bytes = masked(&bytes[..G1_LEN]);
    let y_bytes = unmasked(&bytes[G1_LEN..G1_UNCOMPRESSED_LEN]);
    let rest_zero = x_bytes == [0u8; G1_LEN] && y_bytes == [0u8; G1_LEN];
    parse_uncompressed_flags(bytes[0], rest_zero, point, ctx)?;
    let coordinate = |b: &[u8; G1_LEN], name: &str| {
        fq_from_be(b).ok_or_else(|| {
            ctx.malformed(format!("{point}: {name} is not a canonical field element"))
        })
    };
    let p = G1Affine::new_unchecked(coordinate(&x_bytes, "x")?, coordinate(&y_bytes, "y")?);
    on_curve(p, point)
}

/// Decodes an uncompressed G2 point (`bytes.len() == G2_UNCOMPRESSED_LEN`)
/// with the checks of [`decode_g1`].
pub(crate) fn decode_g2_uncompressed(
    bytes: &[u8],
    point: &'static str,
    ctx: Ctx,
) -> Result<G2Affine, ProofError> {
    let parts = [
        masked(&bytes[..G1_LEN]),
        unmasked(&bytes[G1_LEN..2 * G1_LEN]),
        unmasked(&bytes[2 * G1_LEN..3 * G1_LEN]),
        unmasked(&bytes[3 * G1_LEN..4 * G1_LEN]),
    ];
    let rest_zero = parts.iter().all(|p| *p == [0u8; G1_LEN]);
    parse_uncompressed_flags(bytes[0], rest_zero, point, ctx)?;
    let names = ["x.c1", "x.c0", "y.c1", "y.c0"];
    let mut fq = [Fq::from(0u64); 4];
    for ((out, part), name) in fq.iter_mut().zip(&parts).zip(names) {
        *out = fq_from_be(part).ok_or_else(|| {
            ctx.malformed(format!("{point}: {name} is not a canonical field element"))
        })?;
    }
    let [xc1, xc0, yc1, yc0] = fq;
    let p = G2Affine::new_unchecked(Fq2::new(xc0, xc1), Fq2::new(yc0, yc1));
    on_curve_in_subgroup(p, point)
}

/// Decodes a proof: exactly [`PROOF_LEN`] bytes, A and C in G1, B in G2, each
/// uncompressed, on the curve and in the prime-order subgroup, or the
/// identity in its one canonical encoding (infinity flag, every other bit
/// zero). The identity is left to the pairing equation, as an aggregate
/// (which never shows the verifier a proof's points) leaves it: a proof
/// with a point at infinity satisfies the equation only if its prover knows
/// the setup's trapdoor, so accepting it costs nothing, and single, batch and
/// aggregate verification then judge every proof alike.
pub fn decode_proof(bytes: &[u8]) -> Result<Proof<Bls12_381>, ProofError> {
    if bytes.len() != PROOF_LEN {
        return Err(ProofError::ProofLength {
            got: bytes.len(),
            want: PROOF_LEN,
        });
    }
    let a_bytes = &bytes[..PROOF_B_AT];
    let b_bytes = &bytes[PROOF_B_AT..PROOF_C_AT];
    let c_bytes = &bytes[PROOF_C_AT..];
    let a = match is_identity_encoding(a_bytes) {
        true => G1Affine::zero(),
        false => decode_g1_uncompressed(a_bytes, "proof.A", Ctx::Proof)?,
    };
    let b = match is_identity_encoding(b_bytes) {
        true => G2Affine::zero(),
        false => decode_g2_uncompressed(b_bytes, "proof.B", Ctx::Proof)?,
    };
    let c = match is_identity_encoding(c_bytes) {
        true => G1Affine::zero(),
        false => decode_g1_uncompressed(c_bytes, "proof.C", Ctx::Proof)?,
    };
    Ok(Proof { a, b, c })
}

/// The canonical uncompressed encoding of the identity: the infinity flag
/// (0x40) and every other bit zero.
pub(crate) fn is_identity_encoding(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x40) && bytes.iter().skip(1).all(|b| *b == 0)
}

/// Encodes a proof as [`decode_proof`] reads it (arkworks' uncompressed
/// encoding of A, B, C).
pub fn encode_proof(proof: &Proof<Bls12_381>) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROOF_LEN);
    // Writing into a Vec cannot fail.
    let _ = proof.serialize_uncompressed(&mut out);
    out
}

/// Decodes a verifying key for exactly [`PUBLIC_INPUTS`] public inputs; every
/// point is validated as in [`decode_proof`], trailing bytes are rejected.
pub fn decode_verifying_key(bytes: &[u8]) -> Result<VerifyingKey<Bls12_381>, ProofError> {
    let key = Ctx::Key;
    if bytes.len() < VK_HEADER_LEN + 8 {
        return Err(key.malformed(format!(
            "{} bytes, a verifying key is at least {} bytes",
            bytes.len(),
            VK_HEADER_LEN + 8
        )));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&bytes[VK_HEADER_LEN..VK_HEADER_LEN + 8]);
    let count = u64::from_le_bytes(count);
    if count == 0 {
        return Err(key.malformed("gamma_abc_g1 is empty".into()));
    }
    if count != (PUBLIC_INPUTS + 1) as u64 {
        return Err(ProofError::InputCount {
            expected: PUBLIC_INPUTS,
            got: usize::try_from(count - 1).unwrap_or(usize::MAX),
        });
    }
    if bytes.len() != VK_LEN {
        let what = if bytes.len() > VK_LEN {
            "trailing bytes"
        } else {
            "truncated"
        };
        return Err(key.malformed(format!("{what}: {} bytes, want {VK_LEN}", bytes.len())));
    }
    let alpha_g1 = decode_g1(&bytes[..G1_LEN], "vk.alpha_g1", key)?;
    let mut at = G1_LEN;
    let mut g2 = |name| {
        let p = decode_g2(&bytes[at..at + G2_LEN], name, key);
        at += G2_LEN;
        p
    };
    let beta_g2 = g2("vk.beta_g2")?;
    let gamma_g2 = g2("vk.gamma_g2")?;
    let delta_g2 = g2("vk.delta_g2")?;
    let gamma_abc_g1 = bytes[VK_HEADER_LEN + 8..]
        .chunks_exact(G1_LEN)
        .zip(GAMMA_ABC_NAMES)
        .map(|(chunk, name)| decode_g1(chunk, name, key))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VerifyingKey {
        alpha_g1,
        beta_g2,
        gamma_g2,
        delta_g2,
        gamma_abc_g1,
    })
}

/// A decoded, validated and prepared verifying key: decode once (per rollup),
/// verify many proofs.
#[derive(Clone, Debug)]
pub struct PreparedKey {
    pvk: PreparedVerifyingKey<Bls12_381>,
    /// `-beta`, prepared (batch verification pairs it with `sum r_i * alpha`).
    beta_g2_neg_pc: <Bls12_381 as Pairing>::G2Prepared,
    /// SHA-256 of the key's compressed encoding.
    digest: [u8; 32],
}

impl PreparedKey {
    /// Decodes and validates an encoded verifying key ([`decode_verifying_key`])
    /// and prepares it (precomputes `e(alpha, beta)` and the G2 line coefficients).
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        Ok(Self::prepare(&decode_verifying_key(bytes)?))
    }

    /// Prepares an already validated key. Fails only on the input count (the points
    /// of a key made by `ark-groth16` are valid by construction).
    pub fn from_key(vk: &VerifyingKey<Bls12_381>) -> Result<Self, ProofError> {
        if vk.gamma_abc_g1.len() != PUBLIC_INPUTS + 1 {
            return Err(ProofError::InputCount {
                expected: PUBLIC_INPUTS,
                got: vk.gamma_abc_g1.len().saturating_sub(1),
            });
        }
        Ok(Self::prepare(vk))
    }

    fn prepare(vk: &VerifyingKey<Bls12_381>) -> Self {
        let mut encoded = Vec::with_capacity(VK_LEN);
        // Serializing into a Vec cannot fail.
        let digest = match vk.serialize_compressed(&mut encoded) {
            Ok(()) => crate::sha256(&encoded),
            Err(_) => [0; 32],
        };
        Self {
            pvk: ark_groth16::prepare_verifying_key(vk),
            beta_g2_neg_pc: (-vk.beta_g2).into(),
            digest,
        }
    }

    /// SHA-256 of the key's compressed encoding (the bytes
    /// [`decode_verifying_key`] accepts): what transcripts absorb for the key.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// `-beta` in G2, prepared for pairings.
    pub fn beta_g2_neg_prepared(&self) -> &<Bls12_381 as Pairing>::G2Prepared {
        &self.beta_g2_neg_pc
    }

    /// The verifying key.
    pub fn key(&self) -> &VerifyingKey<Bls12_381> {
        &self.pvk.vk
    }

    /// The arkworks prepared key (for batch verification built on top).
    pub fn prepared(&self) -> &PreparedVerifyingKey<Bls12_381> {
        &self.pvk
    }

    /// Verifies an encoded proof of `statement`.
    pub fn verify(&self, proof_bytes: &[u8], statement: &SpanStatement) -> Result<(), ProofError> {
        // Public inputs first: a non-canonical root is reported before any curve work.
        let inputs = statement.public_inputs()?;
        let proof = decode_proof(proof_bytes)?;
        self.verify_inputs(&proof, &inputs)
    }

    /// Verifies a decoded (hence validated) proof of `statement`.
    pub fn verify_proof(
        &self,
        proof: &Proof<Bls12_381>,
        statement: &SpanStatement,
    ) -> Result<(), ProofError> {
        self.verify_inputs(proof, &statement.public_inputs()?)
    }

    /// Verifies a decoded proof against already computed public inputs.
    pub fn verify_inputs(&self, proof: &Proof<Bls12_381>, inputs: &[Fr]) -> Result<(), ProofError> {
        // Points at infinity are judged by the equation (see `decode_proof`).
        let prepared = Groth16::<Bls12_381>::prepare_inputs(&self.pvk, inputs).map_err(|_| {
            ProofError::InputCount {
                expected: self.pvk.vk.gamma_abc_g1.len().saturating_sub(1),
                got: inputs.len(),
            }
        })?;
        match Groth16::<Bls12_381>::verify_proof_with_prepared_inputs(&self.pvk, proof, &prepared) {
            Ok(true) => Ok(()),
            _ => Err(ProofError::Invalid),
        }
    }
}

/// Decodes `vk_bytes` and verifies `proof_bytes` for `statement` (prefer a cached
/// [`PreparedKey`] when verifying several proofs of one rollup).
pub fn verify_batch_proof(
    vk_bytes: &[u8],
    proof_bytes: &[u8],
    statement: &SpanStatement,
) -> Result<(), ProofError> {
    PreparedKey::decode(vk_bytes)?.verify(proof_bytes, statement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{Field, One, UniformRand, Zero};
    use ark_groth16::ProvingKey;
    use ark_relations::lc;
    use ark_relations::r1cs::{
        ConstraintSynthesizer, ConstraintSystemRef, SynthesisError, Variable,
    };
    use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use std::sync::OnceLock;

    /// Test circuit: `new_root = prev_root + rollup_id * bounds + c0 * c1`.
    #[derive(Clone)]
    struct Toy {
        inputs: Option<[Fr; 5]>,
    }

    fn toy_next_root(rollup_id: u64, bounds: Fr, commitment: &[u8; 32], prev: Fr) -> Fr {
        let [c0, c1] = commitment_halves(commitment);
        prev + Fr::from(rollup_id) * bounds + c0 * c1
    }

    impl ConstraintSynthesizer<Fr> for Toy {
        fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
            let v = |i: usize| {
                self.inputs
                    .map(|x| x[i])
                    .ok_or(SynthesisError::AssignmentMissing)
            };
            let id = cs.new_input_variable(|| v(0))?;
            let h = cs.new_input_variable(|| v(1))?;
            let c0 = cs.new_input_variable(|| v(2))?;
            let c1 = cs.new_input_variable(|| v(3))?;
            let prev = cs.new_input_variable(|| v(4))?;
            let new = cs.new_input_variable(|| {
                let x = self.inputs.ok_or(SynthesisError::AssignmentMissing)?;
                Ok(x[4] + x[0] * x[1] + x[2] * x[3])
            })?;
            let p1 = cs.new_witness_variable(|| Ok(v(0)? * v(1)?))?;
            let p2 = cs.new_witness_variable(|| Ok(v(2)? * v(3)?))?;
            cs.enforce_constraint(lc!() + id, lc!() + h, lc!() + p1)?;
            cs.enforce_constraint(lc!() + c0, lc!() + c1, lc!() + p2)?;
            cs.enforce_constraint(lc!() + prev + p1 + p2, lc!() + Variable::One, lc!() + new)?;
            Ok(())
        }
    }

    fn keys() -> &'static (ProvingKey<Bls12_381>, Vec<u8>) {
        static KEYS: OnceLock<(ProvingKey<Bls12_381>, Vec<u8>)> = OnceLock::new();
        KEYS.get_or_init(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(7);
            let pk = Groth16::<Bls12_381>::generate_random_parameters_with_reduction(
                Toy { inputs: None },
                &mut rng,
            )
            .unwrap();
            let mut vk = Vec::new();
            pk.vk.serialize_compressed(&mut vk).unwrap();
            (pk, vk)
        })
    }

    fn statement() -> SpanStatement {
        let commitment = span_commitment(3, 40, 42, &[(42, batch_commitment(3, 42, &[]))]);
        let prev = Fr::from(1234u64);
        SpanStatement {
            rollup_id: 3,
            from_height: 40,
            to_height: 42,
            commitment,
            prev_root: root_to_bytes(prev),
            new_root: root_to_bytes(toy_next_root(3, span_bounds(40, 42), &commitment, prev)),
        }
    }

    fn prove(st: &SpanStatement, seed: u64) -> Vec<u8> {
        let (pk, _) = keys();
        let [c0, c1] = commitment_halves(&st.commitment);
        let circuit = Toy {
            inputs: Some([
                Fr::from(st.rollup_id),
                span_bounds(st.from_height, st.to_height),
                c0,
                c1,
                root_from_bytes(&st.prev_root).unwrap(),
            ]),
        };
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let proof = Groth16::<Bls12_381>::create_random_proof_with_reduction(circuit, pk, &mut rng)
            .unwrap();
        encode_proof(&proof)
    }

    fn proof() -> &'static Vec<u8> {
        static PROOF: OnceLock<Vec<u8>> = OnceLock::new();
        PROOF.get_or_init(|| prove(&statement(), 1))
    }

    fn vk() -> &'static [u8] {
        &keys().1
    }

    fn g1_bytes(p: &G1Affine) -> Vec<u8> {
        let mut out = Vec::new();
        p.serialize_compressed(&mut out).unwrap();
        out
    }

    fn g2_bytes(p: &G2Affine) -> Vec<u8> {
        let mut out = Vec::new();
        p.serialize_compressed(&mut out).unwrap();
        out
    }

    /// Proof points are uncompressed.
    fn g1_proof_bytes(p: &G1Affine) -> Vec<u8> {
        let mut out = Vec::new();
        p.serialize_uncompressed(&mut out).unwrap();
        out
    }

    fn g2_proof_bytes(p: &G2Affine) -> Vec<u8> {
        let mut out = Vec::new();
        p.serialize_uncompressed(&mut out).unwrap();
        out
    }

    /// A G1 point on the curve but outside the prime-order subgroup.
    fn g1_outside_subgroup() -> G1Affine {
        (1u64..)
            .find_map(|x| {
                G1Affine::get_point_from_x_unchecked(Fq::from(x), false)
                    .filter(|p| !p.is_in_correct_subgroup_assuming_on_curve())
            })
            .unwrap()
    }

    fn g2_outside_subgroup() -> G2Affine {
        (1u64..)
            .find_map(|x| {
                G2Affine::get_point_from_x_unchecked(Fq2::new(Fq::from(x), Fq::one()), false)
                    .filter(|p| !p.is_in_correct_subgroup_assuming_on_curve())
            })
            .unwrap()
    }

    fn with_a(a: &[u8]) -> Vec<u8> {
        let mut p = proof().clone();
        p[..PROOF_B_AT].copy_from_slice(a);
        p
    }

    #[test]
    fn sizes_match_arkworks() {
        assert_eq!(vk().len(), VK_LEN);
        assert_eq!(proof().len(), PROOF_LEN);
        assert_eq!(PROOF_LEN, 384);
        let mut ark = Vec::new();
        decode_proof(proof())
            .unwrap()
            .serialize_uncompressed(&mut ark)
            .unwrap();
        assert_eq!(
            &ark,
            proof(),
            "encode_proof is arkworks' uncompressed encoding"
        );
    }

    #[test]
    fn valid_proof_verifies() {
        let st = statement();
        verify_batch_proof(vk(), proof(), &st).unwrap();
        let key = PreparedKey::decode(vk()).unwrap();
        key.verify(proof(), &st).unwrap();
        assert_eq!(key.key(), &keys().0.vk);
        // A second, independently randomized proof verifies too.
        key.verify(&prove(&st, 99), &st).unwrap();
    }

    #[test]
    fn decoders_agree_with_arkworks() {
        let vk_ark = VerifyingKey::<Bls12_381>::deserialize_compressed(vk()).unwrap();
        assert_eq!(decode_verifying_key(vk()).unwrap(), vk_ark);
        let p_ark = Proof::<Bls12_381>::deserialize_uncompressed(&proof()[..]).unwrap();
        assert_eq!(decode_proof(proof()).unwrap(), p_ark);
    }

    #[test]
    fn wrong_public_inputs_are_invalid() {
        let key = PreparedKey::decode(vk()).unwrap();
        let st = statement();
        let mut cases = vec![
            SpanStatement {
                rollup_id: st.rollup_id + 1,
                ..st
            },
            SpanStatement {
                from_height: st.from_height + 1,
                ..st
            },
            SpanStatement {
                to_height: st.to_height + 1,
                ..st
            },
            // The bounds are packed into one input: swapping them must not verify.
            SpanStatement {
                from_height: st.to_height,
                to_height: st.from_height,
                ..st
            },
        ];
        for i in [0, 15, 16, 31] {
            let mut commitment = st.commitment;
            commitment[i] ^= 1;
            cases.push(SpanStatement { commitment, ..st });
        }
        let bump = |root: &[u8; 32]| root_to_bytes(root_from_bytes(root).unwrap() + Fr::one());
        cases.push(SpanStatement {
            prev_root: bump(&st.prev_root),
            ..st
        });
        cases.push(SpanStatement {
            new_root: bump(&st.new_root),
            ..st
        });
        for case in cases {
            assert_eq!(
                key.verify(proof(), &case),
                Err(ProofError::Invalid),
                "{case:?}"
            );
        }
    }

    #[test]
    fn swapped_commitment_halves_are_invalid() {
        let st = statement();
        let mut commitment = [0u8; 32];
        commitment[..16].copy_from_slice(&st.commitment[16..]);
        commitment[16..].copy_from_slice(&st.commitment[..16]);
        let swapped = SpanStatement { commitment, ..st };
        assert_eq!(
            verify_batch_proof(vk(), proof(), &swapped),
            Err(ProofError::Invalid)
        );
    }

    #[test]
    fn roots_roundtrip_and_reject_non_canonical() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for _ in 0..32 {
            let x = Fr::rand(&mut rng);
            assert_eq!(root_from_bytes(&root_to_bytes(x)).unwrap(), x);
        }
        let minus_one = -Fr::one();
        let mut r = root_to_bytes(minus_one);
        // r - 1 + 1 = r as an integer: not canonical.
        r[31] += 1;
        assert_eq!(root_from_bytes(&r), Err(ProofError::NonCanonicalRoot));
        assert_eq!(
            root_from_bytes(&[0xff; 32]),
            Err(ProofError::NonCanonicalRoot)
        );
        assert_eq!(root_to_bytes(Fr::zero()), [0u8; 32]);
        assert_eq!(root_to_bytes(Fr::from(258u64))[30..], [1, 2]);
        let st = SpanStatement {
            new_root: [0xff; 32],
            ..statement()
        };
        assert_eq!(
            verify_batch_proof(vk(), proof(), &st),
            Err(ProofError::NonCanonicalRoot)
        );
        let st = SpanStatement {
            prev_root: r,
            ..statement()
        };
        assert_eq!(st.public_inputs(), Err(ProofError::NonCanonicalRoot));
    }

    #[test]
    fn public_input_layout() {
        let mut commitment = [0u8; 32];
        commitment[15] = 1; // first half = 1
        commitment[16] = 0x80; // second half = 2^127
        let st = SpanStatement {
            rollup_id: 5,
            from_height: 3,
            to_height: u64::MAX,
            commitment,
            prev_root: root_to_bytes(Fr::from(9u64)),
            new_root: root_to_bytes(Fr::from(10u64)),
        };
        let two = Fr::from(2u64);
        assert_eq!(
            st.public_inputs().unwrap(),
            vec![
                Fr::from(5u64),
                // 3 * 2^64 + (2^64 - 1)
                Fr::from(3u64) * two.pow([64u64]) + Fr::from(u64::MAX),
                Fr::one(),
                two.pow([127u64]),
                Fr::from(9u64),
                Fr::from(10u64)
            ]
        );
    }

    /// The span commitment's bytes, pinned: a vector another implementation
    /// can check itself against.
    #[test]
    fn span_commitment_layout_and_vector() {
        let b1 = batch_commitment(7, 10, &[]);
        let b2 = [0xab; 32];
        let mut pre = b"seqnet/span/v1".to_vec();
        pre.extend_from_slice(&7u64.to_be_bytes());
        pre.extend_from_slice(&10u64.to_be_bytes());
        pre.extend_from_slice(&14u64.to_be_bytes());
        pre.extend_from_slice(&2u32.to_be_bytes());
        pre.extend_from_slice(&10u64.to_be_bytes());
        pre.extend_from_slice(&b1);
        pre.extend_from_slice(&12u64.to_be_bytes());
        pre.extend_from_slice(&b2);
        let span = span_commitment(7, 10, 14, &[(10, b1), (12, b2)]);
        assert_eq!(span, crate::sha256(&pre));
        assert_eq!(
            hex::encode(span),
            "3749e9b25b32fc594def57dc620eaf5fb118682a15195f5011fa4f40746f51e0"
        );
        // Every field is bound.
        assert_ne!(span, span_commitment(8, 10, 14, &[(10, b1), (12, b2)]));
        assert_ne!(span, span_commitment(7, 11, 14, &[(10, b1), (12, b2)]));
        assert_ne!(span, span_commitment(7, 10, 15, &[(10, b1), (12, b2)]));
        assert_ne!(span, span_commitment(7, 10, 14, &[(11, b1), (12, b2)]));
        assert_ne!(span, span_commitment(7, 10, 14, &[(12, b2), (10, b1)]));
        assert_ne!(span, span_commitment(7, 10, 14, &[(10, b1)]));
        assert_ne!(
            span_commitment(7, 10, 14, &[]),
            span_commitment(7, 10, 15, &[])
        );
    }

    #[test]
    fn span_bounds_pack_two_heights() {
        let two64 = Fr::from(2u64).pow([64u64]);
        assert_eq!(span_bounds(0, 0), Fr::zero());
        assert_eq!(span_bounds(1, 2), two64 + Fr::from(2u64));
        assert_ne!(span_bounds(1, 2), span_bounds(2, 1));
        assert_eq!(span_bounds(u64::MAX, u64::MAX), Fr::from(u128::MAX));
    }

    #[test]
    fn batch_commitment_layout() {
        let item = crate::pb::BatchItem {
            tx_hash: vec![1; 32],
            signer: vec![2; 32],
            nonce: 7,
            action_index: 1,
            data: b"hello".to_vec(),
        };
        use prost::Message;
        let enc = item.encode_to_vec();
        let mut pre = b"seqnet/batch/v1".to_vec();
        pre.extend_from_slice(&9u64.to_be_bytes());
        pre.extend_from_slice(&10u64.to_be_bytes());
        pre.extend_from_slice(&(enc.len() as u32).to_be_bytes());
        pre.extend_from_slice(&enc);
        assert_eq!(
            batch_commitment(9, 10, std::slice::from_ref(&item)),
            crate::sha256(&pre)
        );
        assert_ne!(batch_commitment(9, 10, &[]), batch_commitment(9, 11, &[]));
        assert_ne!(batch_commitment(9, 10, &[]), batch_commitment(10, 10, &[]));
        assert_ne!(
            batch_commitment(9, 10, std::slice::from_ref(&item)),
            batch_commitment(9, 10, &[item.clone(), item])
        );
    }

    #[test]
    fn proof_length_errors() {
        let st = statement();
        let p = proof();
        assert_eq!(
            verify_batch_proof(vk(), &p[..383], &st),
            Err(ProofError::ProofLength {
                got: 383,
                want: 384
            })
        );
        let mut long = p.clone();
        long.push(0);
        assert_eq!(
            verify_batch_proof(vk(), &long, &st),
            Err(ProofError::ProofLength {
                got: 385,
                want: 384
            })
        );
        assert_eq!(
            decode_proof(&[]),
            Err(ProofError::ProofLength { got: 0, want: 384 })
        );
    }

    #[test]
    fn garbage_proof_is_malformed() {
        // A compressed encoding is refused by name.
        let mut compressed = Vec::new();
        decode_proof(proof())
            .unwrap()
            .a
            .serialize_compressed(&mut compressed)
            .unwrap();
        compressed.resize(PROOF_B_AT, 0);
        match decode_proof(&with_a(&compressed)) {
            Err(ProofError::MalformedProof { reason }) => {
                assert!(reason.contains("proof.A: compression flag"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // x >= p.
        let mut p = proof().clone();
        p[..G1_LEN].fill(0xff);
        p[0] = 0x1f;
        match decode_proof(&p) {
            Err(ProofError::MalformedProof { reason }) => {
                assert!(
                    reason.contains("proof.A: x") && reason.contains("canonical"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        // y >= p (B's last coordinate).
        let mut p = proof().clone();
        p[PROOF_C_AT - G1_LEN..PROOF_C_AT].fill(0xff);
        assert!(matches!(
            decode_proof(&p),
            Err(ProofError::MalformedProof { reason }) if reason.contains("proof.B: y.c0")
        ));
        // Sort flag on an uncompressed point.
        let mut p = proof().clone();
        p[PROOF_C_AT] |= 0x20;
        assert!(matches!(
            decode_proof(&p),
            Err(ProofError::MalformedProof { reason }) if reason.contains("proof.C: sort flag")
        ));
        // Infinity flag with coordinate bits.
        let mut p = proof().clone();
        p[PROOF_B_AT] = 0x40;
        p[PROOF_B_AT + 5] = 1;
        assert!(matches!(
            decode_proof(&p),
            Err(ProofError::MalformedProof { reason }) if reason.contains("proof.B")
        ));
    }

    #[test]
    fn identity_points_decode_and_are_judged_by_the_equation() {
        let mut inf_g1 = [0u8; G1_UNCOMPRESSED_LEN];
        inf_g1[0] = 0x40;
        assert_eq!(g1_proof_bytes(&G1Affine::zero()), inf_g1);
        let st = statement();
        let key = PreparedKey::decode(vk()).unwrap();
        // A real proof with one point replaced by the identity: decodes, fails
        // the equation (as its aggregate would). Valid proofs with a point at
        // infinity, built with a known trapdoor, are checked in all three
        // paths by prover-adapter/tests/aggregate.rs.
        assert!(decode_proof(&with_a(&inf_g1)).unwrap().a.is_zero());
        assert_eq!(
            verify_batch_proof(vk(), &with_a(&inf_g1), &st),
            Err(ProofError::Invalid)
        );
        let mut p = proof().clone();
        p[PROOF_B_AT..PROOF_C_AT].copy_from_slice(&g2_proof_bytes(&G2Affine::zero()));
        assert!(decode_proof(&p).unwrap().b.is_zero());
        assert_eq!(key.verify(&p, &st), Err(ProofError::Invalid));
        let mut p = proof().clone();
        p[PROOF_C_AT..].copy_from_slice(&inf_g1);
        assert!(decode_proof(&p).unwrap().c.is_zero());
        assert_eq!(key.verify(&p, &st), Err(ProofError::Invalid));
        // Only the canonical encoding: the flag with any other bit set is malformed.
        let mut odd = inf_g1;
        odd[G1_UNCOMPRESSED_LEN - 1] = 1;
        assert!(matches!(
            decode_proof(&with_a(&odd)),
            Err(ProofError::MalformedProof { .. })
        ));
    }

    #[test]
    fn point_outside_subgroup_is_rejected() {
        let bad = g1_outside_subgroup();
        assert!(bad.is_on_curve());
        assert_eq!(
            decode_proof(&with_a(&g1_proof_bytes(&bad))),
            Err(ProofError::NotInSubgroup { point: "proof.A" })
        );
        let mut p = proof().clone();
        p[PROOF_C_AT..].copy_from_slice(&g1_proof_bytes(&bad));
        assert_eq!(
            decode_proof(&p),
            Err(ProofError::NotInSubgroup { point: "proof.C" })
        );
        let bad2 = g2_outside_subgroup();
        let mut p = proof().clone();
        p[PROOF_B_AT..PROOF_C_AT].copy_from_slice(&g2_proof_bytes(&bad2));
        assert_eq!(
            decode_proof(&p),
            Err(ProofError::NotInSubgroup { point: "proof.B" })
        );
        // arkworks' checked decoder agrees that the point is invalid.
        assert!(G1Affine::deserialize_uncompressed(&g1_proof_bytes(&bad)[..]).is_err());
    }

    #[test]
    fn point_off_curve_is_rejected() {
        // A point of the proof with y moved by one is off the curve.
        let decoded = decode_proof(proof()).unwrap();
        let a = G1Affine::new_unchecked(decoded.a.x, decoded.a.y + Fq::one());
        assert_eq!(
            decode_proof(&with_a(&g1_proof_bytes(&a))),
            Err(ProofError::NotOnCurve { point: "proof.A" })
        );
        let b = G2Affine::new_unchecked(decoded.b.x, decoded.b.y + Fq2::one());
        let mut p = proof().clone();
        p[PROOF_B_AT..PROOF_C_AT].copy_from_slice(&g2_proof_bytes(&b));
        assert_eq!(
            decode_proof(&p),
            Err(ProofError::NotOnCurve { point: "proof.B" })
        );
    }

    #[test]
    fn key_errors() {
        let good = vk().to_vec();
        // Trailing bytes.
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            PreparedKey::decode(&long),
            Err(ProofError::MalformedKey { reason }) if reason.contains("trailing")
        ));
        // Truncated.
        assert!(matches!(
            PreparedKey::decode(&good[..good.len() - 1]),
            Err(ProofError::MalformedKey { .. })
        ));
        assert!(matches!(
            PreparedKey::decode(&[]),
            Err(ProofError::MalformedKey { .. })
        ));
        // Wrong input count: a key with 5 inputs.
        let mut vk5 = decode_verifying_key(&good).unwrap();
        vk5.gamma_abc_g1.pop();
        let mut enc = Vec::new();
        vk5.serialize_compressed(&mut enc).unwrap();
        assert_eq!(
            PreparedKey::decode(&enc).map(|_| ()),
            Err(ProofError::InputCount {
                expected: 6,
                got: 5
            })
        );
        assert_eq!(
            PreparedKey::from_key(&vk5).map(|_| ()),
            Err(ProofError::InputCount {
                expected: 6,
                got: 5
            })
        );
        // Points of the key are checked and named.
        let mut bad = good.clone();
        let at = VK_HEADER_LEN + 8 + 3 * G1_LEN;
        bad[at..at + G1_LEN].copy_from_slice(&g1_bytes(&g1_outside_subgroup()));
        assert_eq!(
            PreparedKey::decode(&bad).map(|_| ()),
            Err(ProofError::NotInSubgroup {
                point: "vk.gamma_abc_g1[3]"
            })
        );
        let mut bad = good.clone();
        bad[G1_LEN + G2_LEN..G1_LEN + 2 * G2_LEN].copy_from_slice(&g2_bytes(&G2Affine::zero()));
        assert_eq!(
            PreparedKey::decode(&bad).map(|_| ()),
            Err(ProofError::Identity {
                point: "vk.gamma_g2"
            })
        );
        let mut bad = good;
        bad[..G1_LEN].copy_from_slice(&g1_bytes(&g1_outside_subgroup()));
        assert_eq!(
            PreparedKey::decode(&bad).map(|_| ()),
            Err(ProofError::NotInSubgroup {
                point: "vk.alpha_g1"
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn key_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
            let _ = PreparedKey::decode(&bytes);
        }

        #[test]
        fn key_decode_with_valid_count_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), VK_LEN..=VK_LEN),
        ) {
            let mut bytes = bytes;
            bytes[VK_HEADER_LEN..VK_HEADER_LEN + 8]
                .copy_from_slice(&((PUBLIC_INPUTS + 1) as u64).to_le_bytes());
            let _ = PreparedKey::decode(&bytes);
        }

        #[test]
        fn proof_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = decode_proof(&bytes);
        }

        #[test]
        fn random_proofs_never_verify(bytes in proptest::collection::vec(any::<u8>(), PROOF_LEN..=PROOF_LEN), flags in 0u8..8) {
            let mut bytes = bytes;
            // Clear the flags (mostly) so decoding gets past the first byte.
            bytes[0] = (bytes[0] & 0x1f) | ((flags & 1) << 6);
            bytes[PROOF_B_AT] &= 0x1f | ((flags & 2) << 5);
            bytes[PROOF_C_AT] &= 0x1f | ((flags & 4) << 4);
            prop_assert!(verify_batch_proof(vk(), &bytes, &statement()).is_err());
        }

        #[test]
        fn any_bit_flip_is_rejected(bit in 0usize..PROOF_LEN * 8) {
            let mut p = proof().clone();
            p[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_batch_proof(vk(), &p, &statement()).is_err());
        }
    }
}
