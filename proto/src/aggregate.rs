//! SnarkPack aggregation of Groth16 proofs under one verifying key
//! (Gailly, Maller, Nitulescu, "SnarkPack: Practical SNARK Aggregation",
//! eprint 2021/529): the shared definitions (structured reference string of
//! the verifier, the aggregate and its encoding, the Fiat–Shamir transcript,
//! padding) and the verifier. The prover lives in `seqnet-prover`
//! (`aggregate` module); both use [`AggregateTranscript`], so they cannot
//! disagree on a challenge. Pure: no I/O, no clock, no randomness.
//!
//! # The argument
//!
//! `N` proofs `(A_i, B_i, C_i)` with public inputs `x_i` are padded to
//! `n = max(2, N.next_power_of_two())` by repeating the last proof and its
//! inputs ([`padded_size`]). The SRS holds two independent powers of tau, `a`
//! and `b`: `g^{a^i}, g^{b^i}` (G1, `i < 2n`) and `h^{a^i}, h^{b^i}` (G2,
//! `i < n`). The commitment keys for size `n` are `v = (h^{a^i}, h^{b^i})_{i<n}`
//! (G2) and `w = (g^{a^{n+i}}, g^{b^{n+i}})_{i<n}` (G1), and
//!
//! - `com_ab = (T, U)`, `T = prod e(A_i, v1_i) * prod e(w1_i, B_i)`, `U` likewise
//!   with `v2`, `w2` (two-tier, doubly homomorphic commitment to A and B);
//! - `com_c = (prod e(C_i, v1_i), prod e(C_i, v2_i))`.
//!
//! With `r` drawn from the transcript (after every key, public input and both
//! commitments) and `B'_i = r^i B_i`, the prover claims `Z_AB = prod e(A_i,
//! B'_i)` and `Z_C = sum r^i C_i`; the aggregated Groth16 equation is
//! `Z_AB = e(alpha, beta)^{sum r^i} * e(sum r^i L_i, gamma) * e(Z_C, delta)`.
//! It also claims `Z_CB = prod e(C_i, B'_i)` and `Z_A = sum r^i A_i`, which only
//! serve the batching below.
//!
//! **One GIPA for A and C.** A and C are committed under the same key `v` and
//! fold the same way, so after a 128-bit challenge `s` the prover runs a
//! single TIPP + MIPP on `D = A + s C` (SnarkPack runs one for each): the
//! verifier derives `com_D = com_ab * com_c^s` (the commitment is homomorphic
//! in both arguments; `w` rescaled by `r^{-i}` leaves it unchanged),
//! `Z_DB = Z_AB * Z_CB^s` and `Z_D = Z_A + s Z_C`. This halves the
//! target-group cross terms of each round (six instead of ten), which
//! dominate the verifier's work.
//!
//! Why it is sound (docs/aggregation.md has the whole argument and the
//! bound). `com_c` is the prover's word: nothing forces its `w` side to be
//! empty, so in general it opens to `(C, X)` with
//! `com_c = (prod e(C_i, v1_i) e(w1_i, X_i), ...)`, and `com_D` opens to
//! `(A + sC, B + sX)`. The TIPP then shows `prod e(A_i + s C_i, B'_i + s X'_i)
//! = Z_AB * Z_CB^s`: in the exponent a polynomial of degree 2 in `s`, not 1.
//! Its three coefficients, fixed before `s`, match for at most 2 values of `s`
//! unless they match as polynomials, which pins `Z_AB = prod e(A_i, B'_i)`
//! (and `prod e(C_i, X'_i) = 1`; `Z_CB` absorbs the cross term and is used
//! nowhere else); the MIPP side is linear and pins `Z_C = sum r^i C_i`. An
//! extractor needs three accepting values of `s` (two give the openings of
//! `com_ab` and `com_c`, the third the degree-2 identity). With the `log2 n`
//! GIPA rounds (each a Laurent polynomial of degree span 2 in `x`: three
//! accepting `x`) and the full-size `r` and `z`, the knowledge error is about
//! `2 (1 + log2 n) / 2^128`, and after Fiat-Shamir with `q` hash queries about
//! `q * 2^-122.9` for `n = 2^16` (`q * 2^-123.5` for `n = 1024`).
//!
//! The GIPA loop has `log2 n` rounds with 128-bit challenges `x`: the prover
//! sends the cross terms of `T_D`, `U_D`, `Z_DB` (target group) and `Z_D`
//! (G1), then folds `D, w` by `L + x R` and `B', v, (r^i)` by `L + x^{-1} R`.
//! At the end the verifier holds the folded commitments and checks them
//! against the final single elements and keys; the final keys are `v =
//! h^{f_v(a)}`, `w = g^{f_w(a)}` for polynomials it knows in product form
//! ([`eval_v`], [`eval_w`]), proven by KZG openings at a challenge `z`.
//!
//! The verifier folds each of the three target-group equations in its own
//! multi-exponentiation (the `x` side of each round has 128-bit exponents;
//! the `x^{-1}` side is full size), then combines the three results, the
//! aggregated Groth16 equation and four KZG openings with 128-bit transcript
//! scalars against one 10-pair multi-pairing with a single final
//! exponentiation. The MIPP equation is one short G1 sum.
//!
//! Target-group elements of an aggregate are decoded canonically and must lie
//! in the cyclotomic subgroup (cheap check with Frobenius maps); every
//! operation the verifier applies to them is a group operation there or the
//! Frobenius map, so a component outside the order-`r` subgroup cannot help
//! the equations hold. G1/G2 points are uncompressed and get the curve and
//! subgroup checks of [`crate::groth16`]; the identity is refused for points
//! from keys and openings and accepted for values folded from the proofs'
//! points (a proof point at infinity is left to the pairing equation in
//! every path: docs/aggregation.md, "One rule set"). `Z_A` and the
//! MIPP cross terms skip the subgroup check: they only enter the G1 equation of MIPP, which (the
//! curve's order being `r h` with `gcd(r, h) = 1`) holds only if it holds for
//! their order-`r` components, so they skip the subgroup check (~60 µs
//! each).

use ark_bls12_381::{Bls12_381, Fq12, Fr, G1Affine, G2Affine};
use ark_ec::pairing::{MillerLoopOutput, Pairing};
use ark_ec::AffineRepr;
use ark_ff::{BigInt, BigInteger, CyclotomicMultSubgroup, Field, One, PrimeField, Zero};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};

use crate::batch_verify::{multi_miller_loop, G2Prepared};
use crate::groth16::{
    decode_g1, decode_g1_uncompressed, decode_g1_uncompressed_any_order, decode_g2,
    decode_g2_uncompressed, is_identity_encoding, Ctx, PreparedKey, ProofError, SpanStatement,
    G1_LEN, G1_UNCOMPRESSED_LEN as G1_AGG, G2_LEN, G2_UNCOMPRESSED_LEN as G2_AGG,
};
use crate::msm::{msm, normalize};
use crate::transcript::Transcript;

/// Domain separator of the aggregation transcript.
pub const AGGREGATE_DOMAIN: &[u8] = b"seqnet/snarkpack/v2";
/// Most proofs one aggregate may hold (bounds decoding and verification work).
pub const MAX_AGGREGATE: usize = 1 << 16;
/// Length of an encoded target-group element (12 base-field elements).
pub const GT_LEN: usize = 576;
/// Length of an encoded [`VerifierSrs`].
pub const VERIFIER_SRS_LEN: usize = 4 + 3 * G1_LEN + 3 * G2_LEN;
/// Length of the fixed part of an encoded aggregate (count, commitments,
/// aggregated values, final elements and keys, openings).
pub const AGGREGATE_FIXED_LEN: usize = 4
    + 6 * GT_LEN
    + 2 * G1_AGG
    + (G1_AGG + G2_AGG)
    + 2 * G2_AGG
    + 2 * G1_AGG
    + 2 * G2_AGG
    + 2 * G1_AGG;
/// Length of one encoded GIPA round (six target-group elements, two G1 points).
pub const ROUND_LEN: usize = 6 * GT_LEN + 2 * G1_AGG;

/// Why an aggregate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// No proofs, or more than the SRS or [`MAX_AGGREGATE`] allows.
    #[error("aggregate of {got} proofs: must be 1..={max}")]
    Count { got: usize, max: usize },
    /// The aggregate covers a different number of proofs than statements given.
    #[error("aggregate covers {aggregate} proofs, {statements} statements were given")]
    CountMismatch { aggregate: usize, statements: usize },
    /// The encoding has the wrong length for its proof count.
    #[error("aggregate is {got} bytes, want {want} for {count} proofs")]
    Length {
        got: usize,
        want: usize,
        count: usize,
    },
    /// A G1/G2 point of the aggregate is malformed, off the curve, outside the
    /// subgroup or the identity.
    #[error("aggregate {field}: {source}")]
    Point {
        field: String,
        #[source]
        source: ProofError,
    },
    /// A target-group element is not a canonical encoding.
    #[error("aggregate {field}: not a canonical target-group encoding")]
    MalformedGt { field: String },
    /// A target-group element lies outside the cyclotomic subgroup.
    #[error("aggregate {field}: not in the cyclotomic subgroup")]
    NotCyclotomic { field: String },
    /// The verifier SRS bytes are malformed.
    #[error("verifier SRS: {reason}")]
    MalformedSrs { reason: String },
    /// A statement's public inputs are invalid, or the key's input count differs.
    #[error("statement {index}: {source}")]
    Statement {
        index: usize,
        #[source]
        source: ProofError,
    },
    /// The aggregated `Z_D = Z_A + s Z_C` does not match the MIPP argument.
    #[error("aggregate does not verify: MIPP value of A + sC")]
    InvalidMipp,
    /// The combined pairing check failed.
    #[error("aggregate does not verify: pairing checks")]
    Invalid,
}

/// The verifier's part of an aggregation SRS: generators and the first
/// powers of the two trapdoors, plus the largest aggregate the SRS supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierSrs {
    /// Largest number of proofs (padded, a power of two) the SRS supports.
    pub max_proofs: u32,
    pub g: G1Affine,
    pub g_alpha: G1Affine,
    pub g_beta: G1Affine,
    pub h: G2Affine,
    pub h_alpha: G2Affine,
    pub h_beta: G2Affine,
}

impl VerifierSrs {
    /// `max_proofs (u32 BE) || g || g^a || g^b || h || h^a || h^b`, points
    /// compressed ([`VERIFIER_SRS_LEN`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(VERIFIER_SRS_LEN);
        out.extend_from_slice(&self.max_proofs.to_be_bytes());
        for p in [&self.g, &self.g_alpha, &self.g_beta] {
            push_point(&mut out, p);
        }
        for p in [&self.h, &self.h_alpha, &self.h_beta] {
            push_point(&mut out, p);
        }
        out
    }

    /// Decodes [`VerifierSrs::encode`]'s output, checking every point.
    pub fn decode(bytes: &[u8]) -> Result<Self, AggregateError> {
        let malformed = |reason: String| AggregateError::MalformedSrs { reason };
        if bytes.len() != VERIFIER_SRS_LEN {
            return Err(malformed(format!(
                "{} bytes, want {VERIFIER_SRS_LEN}",
                bytes.len()
            )));
        }
        let mut max = [0u8; 4];
        max.copy_from_slice(&bytes[..4]);
        let max_proofs = u32::from_be_bytes(max);
        if max_proofs < 2 || !max_proofs.is_power_of_two() {
            return Err(malformed(format!(
                "max_proofs {max_proofs} is not a power of two >= 2"
            )));
        }
        let mut r = Reader::new(&bytes[4..]);
        let point = |e: ProofError| malformed(e.to_string());
        Ok(Self {
            max_proofs,
            g: r.g1("srs.g").map_err(point)?,
            g_alpha: r.g1("srs.g_alpha").map_err(point)?,
            g_beta: r.g1("srs.g_beta").map_err(point)?,
            h: r.g2("srs.h").map_err(point)?,
            h_alpha: r.g2("srs.h_alpha").map_err(point)?,
            h_beta: r.g2("srs.h_beta").map_err(point)?,
        })
    }

    /// SHA-256 of the encoding (absorbed by the transcript).
    pub fn digest(&self) -> [u8; 32] {
        crate::sha256(&self.encode())
    }
}

/// A [`VerifierSrs`] with its G2 points prepared for pairings: decode and
/// prepare once, verify many aggregates.
#[derive(Debug, Clone)]
pub struct PreparedVerifierSrs {
    pub srs: VerifierSrs,
    h: G2Prepared,
    h_alpha: G2Prepared,
    h_beta: G2Prepared,
}

impl From<VerifierSrs> for PreparedVerifierSrs {
    fn from(srs: VerifierSrs) -> Self {
        Self {
            h: srs.h.into(),
            h_alpha: srs.h_alpha.into(),
            h_beta: srs.h_beta.into(),
            srs,
        }
    }
}

/// The cross terms of one GIPA round over `D = A + s C` (`_l`: left key
/// half with right data half, exponent `x`; `_r`: the reverse, `x^{-1}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GipaRound {
    pub t_l: Fq12,
    pub u_l: Fq12,
    pub t_r: Fq12,
    pub u_r: Fq12,
    pub z_l: Fq12,
    pub z_r: Fq12,
    pub zd_l: G1Affine,
    pub zd_r: G1Affine,
}

/// An aggregate of `count` Groth16 proofs under one verifying key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateProof {
    /// Number of proofs aggregated (before padding).
    pub count: u32,
    /// `(T, U)` commitment to A and B.
    pub com_ab: (Fq12, Fq12),
    /// `(T, U)` commitment to C.
    pub com_c: (Fq12, Fq12),
    /// `prod e(A_i, B_i)^{r^i}`.
    pub z_ab: Fq12,
    /// `prod e(C_i, B_i)^{r^i}`.
    pub z_cb: Fq12,
    /// `sum r^i A_i`.
    pub z_a: G1Affine,
    /// `sum r^i C_i`.
    pub z_c: G1Affine,
    /// One per halving, `log2 n` in all.
    pub rounds: Vec<GipaRound>,
    /// The folded `D = A + s C`.
    pub final_d: G1Affine,
    /// The folded `B' = (r^i B_i)`.
    pub final_b: G2Affine,
    /// Final `(v1, v2)` key (G2).
    pub final_v: (G2Affine, G2Affine),
    /// Final `(w1, w2)` key (G1).
    pub final_w: (G1Affine, G1Affine),
    /// KZG openings of `v1`, `v2` at `z` (G2).
    pub open_v: (G2Affine, G2Affine),
    /// KZG openings of `w1`, `w2` at `z` (G1).
    pub open_w: (G1Affine, G1Affine),
}

/// The padded size of an aggregate of `count` proofs: the next power of two,
/// at least 2.
pub fn padded_size(count: usize) -> usize {
    count.max(2).next_power_of_two()
}

/// Encoded length of an aggregate of `count` proofs.
pub fn encoded_len(count: usize) -> usize {
    let rounds = padded_size(count).trailing_zeros() as usize;
    AGGREGATE_FIXED_LEN + rounds * ROUND_LEN
}

impl AggregateProof {
    /// The encoding: `count (u32 BE) || com_ab.T || com_ab.U || com_c.T ||
    /// com_c.U || z_ab || z_cb || z_a || z_c || rounds (t_l, u_l, t_r, u_r,
    /// z_l, z_r, zd_l, zd_r) || final_d || final_b || v1 || v2 || w1 || w2 ||
    /// open_v1 || open_v2 || open_w1 || open_w2`; G1/G2 uncompressed,
    /// target-group elements as 12 base-field elements of 48 bytes
    /// little-endian (`ark-serialize`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(encoded_len(self.count as usize));
        out.extend_from_slice(&self.count.to_be_bytes());
        for f in [
            &self.com_ab.0,
            &self.com_ab.1,
            &self.com_c.0,
            &self.com_c.1,
            &self.z_ab,
            &self.z_cb,
        ] {
            push_uncompressed(&mut out, f);
        }
        push_uncompressed(&mut out, &self.z_a);
        push_uncompressed(&mut out, &self.z_c);
        for round in &self.rounds {
            for f in round.gt_elements() {
                push_uncompressed(&mut out, f);
            }
            push_uncompressed(&mut out, &round.zd_l);
            push_uncompressed(&mut out, &round.zd_r);
        }
        push_uncompressed(&mut out, &self.final_d);
        push_uncompressed(&mut out, &self.final_b);
        push_uncompressed(&mut out, &self.final_v.0);
        push_uncompressed(&mut out, &self.final_v.1);
        push_uncompressed(&mut out, &self.final_w.0);
        push_uncompressed(&mut out, &self.final_w.1);
        push_uncompressed(&mut out, &self.open_v.0);
        push_uncompressed(&mut out, &self.open_v.1);
        push_uncompressed(&mut out, &self.open_w.0);
        push_uncompressed(&mut out, &self.open_w.1);
        out
    }

    /// Decodes an aggregate, checking its length for its count, every point
    /// (curve, subgroup, identity) and every target-group element (canonical,
    /// cyclotomic).
    pub fn decode(bytes: &[u8]) -> Result<Self, AggregateError> {
        if bytes.len() < 4 {
            return Err(AggregateError::Length {
                got: bytes.len(),
                want: AGGREGATE_FIXED_LEN,
                count: 0,
            });
        }
        let mut head = [0u8; 4];
        head.copy_from_slice(&bytes[..4]);
        let count = u32::from_be_bytes(head);
        let n = count as usize;
        if n == 0 || n > MAX_AGGREGATE {
            return Err(AggregateError::Count {
                got: n,
                max: MAX_AGGREGATE,
            });
        }
        let want = encoded_len(n);
        if bytes.len() != want {
            return Err(AggregateError::Length {
                got: bytes.len(),
                want,
                count: n,
            });
        }
        let mut r = Reader::new(&bytes[4..]);
        let com_ab = (r.gt("com_ab.T")?, r.gt("com_ab.U")?);
        let com_c = (r.gt("com_c.T")?, r.gt("com_c.U")?);
        let z_ab = r.gt("z_ab")?;
        let z_cb = r.gt("z_cb")?;
        // Values folded from the proofs' points may be the identity (a proof
        // point at infinity is judged by the equation, as in single
        // verification); those from keys and openings may not.
        let z_a = r.proof_derived(Reader::g1_linear_field, "z_a", G1_AGG)?;
        let z_c = r.proof_derived(Reader::g1_field, "z_c", G1_AGG)?;
        let rounds_count = padded_size(n).trailing_zeros() as usize;
        let mut rounds = Vec::with_capacity(rounds_count);
        for j in 0..rounds_count {
            let name = |f: &str| format!("round {j} {f}");
            rounds.push(GipaRound {
                t_l: r.gt(&name("t_l"))?,
                u_l: r.gt(&name("u_l"))?,
                t_r: r.gt(&name("t_r"))?,
                u_r: r.gt(&name("u_r"))?,
                z_l: r.gt(&name("z_l"))?,
                z_r: r.gt(&name("z_r"))?,
                zd_l: r.proof_derived(Reader::g1_linear_field, &name("zd_l"), G1_AGG)?,
                zd_r: r.proof_derived(Reader::g1_linear_field, &name("zd_r"), G1_AGG)?,
            });
        }
        Ok(Self {
            count,
            com_ab,
            com_c,
            z_ab,
            z_cb,
            z_a,
            z_c,
            rounds,
            final_d: r.proof_derived(Reader::g1_field, "final_d", G1_AGG)?,
            final_b: r.proof_derived(Reader::g2_field, "final_b", G2_AGG)?,
            final_v: (r.g2_field("final_v1")?, r.g2_field("final_v2")?),
            final_w: (r.g1_field("final_w1")?, r.g1_field("final_w2")?),
            open_v: (r.g2_field("open_v1")?, r.g2_field("open_v2")?),
            open_w: (r.g1_field("open_w1")?, r.g1_field("open_w2")?),
        })
    }
}

impl GipaRound {
    /// The six target-group elements, in encoding (and transcript) order.
    pub fn gt_elements(&self) -> [&Fq12; 6] {
        [
            &self.t_l, &self.u_l, &self.t_r, &self.u_r, &self.z_l, &self.z_r,
        ]
    }
}

/// Aggregates carry points uncompressed: decoding them then needs no square
/// roots (about a millisecond per aggregate).
fn push_uncompressed<T: CanonicalSerialize>(out: &mut Vec<u8>, p: &T) {
    // Serializing into a Vec cannot fail.
    let _ = p.serialize_uncompressed(out);
}

fn push_point<T: CanonicalSerialize>(out: &mut Vec<u8>, p: &T) {
    // Serializing into a Vec cannot fail.
    let _ = p.serialize_compressed(out);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, len: usize) -> &'a [u8] {
        // Callers checked the total length up front.
        let end = (self.at + len).min(self.bytes.len());
        let out = &self.bytes[self.at..end];
        self.at = end;
        out
    }

    fn g1(&mut self, name: &'static str) -> Result<G1Affine, ProofError> {
        let bytes = self.take(G1_LEN);
        if bytes.len() != G1_LEN {
            return Err(ProofError::MalformedProof {
                reason: format!("{name}: truncated"),
            });
        }
        decode_g1(bytes, name, Ctx::Proof)
    }

    fn g2(&mut self, name: &'static str) -> Result<G2Affine, ProofError> {
        let bytes = self.take(G2_LEN);
        if bytes.len() != G2_LEN {
            return Err(ProofError::MalformedProof {
                reason: format!("{name}: truncated"),
            });
        }
        decode_g2(bytes, name, Ctx::Proof)
    }

    /// A point folded from the proofs' points: the identity in its canonical
    /// encoding, or a point `read` accepts.
    fn proof_derived<T: AffineRepr>(
        &mut self,
        read: fn(&mut Self, &str) -> Result<T, AggregateError>,
        field: &str,
        len: usize,
    ) -> Result<T, AggregateError> {
        let end = self.at.saturating_add(len);
        match self.bytes.get(self.at..end) {
            Some(bytes) if is_identity_encoding(bytes) => {
                self.at = end;
                Ok(T::zero())
            }
            _ => read(self, field),
        }
    }

    /// An uncompressed G1 point of an aggregate, in the subgroup.
    fn g1_field(&mut self, field: &str) -> Result<G1Affine, AggregateError> {
        self.point(field, "G1 point", G1_AGG, decode_g1_uncompressed)
    }

    /// An uncompressed G1 point of an aggregate that only enters the MIPP
    /// equation (module docs: no subgroup check).
    fn g1_linear_field(&mut self, field: &str) -> Result<G1Affine, AggregateError> {
        self.point(field, "G1 point", G1_AGG, decode_g1_uncompressed_any_order)
    }

    /// An uncompressed G2 point of an aggregate, in the subgroup.
    fn g2_field(&mut self, field: &str) -> Result<G2Affine, AggregateError> {
        self.point(field, "G2 point", G2_AGG, decode_g2_uncompressed)
    }

    /// The next `len` bytes decoded by `decode`, errors naming `field`.
    fn point<T>(
        &mut self,
        field: &str,
        kind: &'static str,
        len: usize,
        decode: fn(&[u8], &'static str, Ctx) -> Result<T, ProofError>,
    ) -> Result<T, AggregateError> {
        let point = |source| AggregateError::Point {
            field: field.to_string(),
            source,
        };
        let bytes = self.take(len);
        if bytes.len() != len {
            return Err(point(ProofError::MalformedProof {
                reason: format!("{kind}: truncated"),
            }));
        }
        decode(bytes, kind, Ctx::Proof).map_err(point)
    }

    fn gt(&mut self, field: &str) -> Result<Fq12, AggregateError> {
        let bytes = self.take(GT_LEN);
        let f = Fq12::deserialize_compressed(bytes).map_err(|_| AggregateError::MalformedGt {
            field: field.to_string(),
        })?;
        if !is_cyclotomic(&f) {
            return Err(AggregateError::NotCyclotomic {
                field: field.to_string(),
            });
        }
        Ok(f)
    }
}

/// Whether `f` lies in the cyclotomic subgroup of `Fq12*` (order
/// `p^4 - p^2 + 1`): `f != 0` and `f^(p^4) * f == f^(p^2)`.
pub fn is_cyclotomic(f: &Fq12) -> bool {
    if f.is_zero() {
        return false;
    }
    let mut p4 = *f;
    p4.frobenius_map_in_place(4);
    let mut p2 = *f;
    p2.frobenius_map_in_place(2);
    p4 * f == p2
}

/// `p^2 mod r` (`x^2` for the curve parameter `x`), little-endian limbs. On
/// the order-`r` subgroup of the target group the Frobenius map `f ->
/// f^(p^2)` (a few base-field multiplications) is `f -> f^LAMBDA`, and
/// `LAMBDA^2 - LAMBDA + 1 = r`, so every exponent below `r` splits into two
/// halves below `2^128`.
const LAMBDA: BigInt<4> = BigInt::new([0x0000_0001_0000_0000, 0xac45_a401_0001_a402, 0, 0]);

/// `(e0, e1)` with `e = e0 + e1 * LAMBDA`, `e0 < LAMBDA` (schoolbook
/// division, one bit at a time).
fn split_by_lambda(e: &BigInt<4>) -> (BigInt<4>, BigInt<4>) {
    let mut quotient = BigInt::<4>::zero();
    let mut rem = BigInt::<4>::zero();
    for i in (0..256).rev() {
        // rem < LAMBDA < 2^128 here, so doubling cannot overflow.
        rem.mul2();
        if e.get_bit(i) {
            rem.0[0] |= 1;
        }
        if rem >= LAMBDA {
            rem.sub_with_borrow(&LAMBDA);
            quotient.0[i / 64] |= 1 << (i % 64);
        }
    }
    (rem, quotient)
}

/// `prod bases[i]^exps[i]` for `bases` in the target group (interleaved
/// signed-window exponentiation: the squarings are shared by all bases,
/// inverses are conjugations). An exponent over 128 bits is split as
/// `e0 + e1 * LAMBDA` over `base` and `base^(p^2)` (the table of the latter is
/// the Frobenius image of the former's), which halves the shared squarings.
///
/// For a cyclotomic base outside the order-`r` subgroup the result differs
/// from the plain power only in the component of order prime to `r`; the
/// verifier's final check compares against a pairing value of order `r`, so
/// that component must vanish for it to pass either way.
pub fn gt_multi_exp(bases: &[Fq12], exps: &[Fr]) -> Fq12 {
    const W: usize = 5;
    let mut tables: Vec<Vec<Fq12>> = Vec::with_capacity(2 * bases.len());
    let mut digits: Vec<Vec<i64>> = Vec::with_capacity(2 * bases.len());
    let mut len = 0;
    for (base, e) in bases.iter().zip(exps) {
        let e = e.into_bigint();
        if e.is_zero() {
            continue;
        }
        // Odd powers base^1, base^3, ..., base^(2^(W-1) - 1).
        let sq = base.cyclotomic_square();
        let mut table = Vec::with_capacity(1 << (W - 2));
        table.push(*base);
        for i in 1..(1 << (W - 2)) {
            let next = table[i - 1] * sq;
            table.push(next);
        }
        let parts = if e.num_bits() > 129 {
            let (e0, e1) = split_by_lambda(&e);
            let frobenius: Vec<Fq12> = table
                .iter()
                .map(|t| {
                    let mut f = *t;
                    f.frobenius_map_in_place(2);
                    f
                })
                .collect();
            vec![(table, e0), (frobenius, e1)]
        } else {
            vec![(table, e)]
        };
        for (table, e) in parts {
            // `find_wnaf` only refuses window widths outside 2..64.
            let naf = e.find_wnaf(W).unwrap_or_default();
            len = len.max(naf.len());
            tables.push(table);
            digits.push(naf);
        }
    }
    let mut acc = Fq12::one();
    for i in (0..len).rev() {
        acc.cyclotomic_square_in_place();
        for (table, naf) in tables.iter().zip(&digits) {
            let d = naf.get(i).copied().unwrap_or(0);
            if d > 0 {
                acc *= table[(d as usize) / 2];
            } else if d < 0 {
                let mut inv = table[(d.unsigned_abs() as usize) / 2];
                inv.cyclotomic_inverse_in_place();
                acc *= inv;
            }
        }
    }
    acc
}

/// The transcript of an aggregate, step by step (prover and verifier call the
/// same steps in the same order).
#[derive(Debug, Clone)]
pub struct AggregateTranscript(Transcript);

impl AggregateTranscript {
    /// Starts with the SRS, the verifying key, the count, the padded size and
    /// every public input of every (unpadded) proof.
    pub fn new(srs: &VerifierSrs, key: &PreparedKey, inputs: &[Vec<Fr>]) -> Self {
        let mut t = Transcript::new(AGGREGATE_DOMAIN);
        t.append_bytes(b"srs", &srs.digest());
        t.append_bytes(b"vk", key.digest());
        t.append_u64(b"count", inputs.len() as u64);
        t.append_u64(b"padded", padded_size(inputs.len()) as u64);
        for x in inputs {
            t.append_scalars(b"inputs", x);
        }
        Self(t)
    }

    /// Absorbs the commitments; returns `r` (nonzero).
    pub fn commitments(&mut self, com_ab: &(Fq12, Fq12), com_c: &(Fq12, Fq12)) -> Fr {
        self.0.append_gt(b"com_ab.T", &com_ab.0);
        self.0.append_gt(b"com_ab.U", &com_ab.1);
        self.0.append_gt(b"com_c.T", &com_c.0);
        self.0.append_gt(b"com_c.U", &com_c.1);
        self.0.challenge_scalar(b"r")
    }

    /// Absorbs the aggregated values `Z_AB`, `Z_CB`, `Z_A`, `Z_C`; returns the
    /// 128-bit batching challenge `s` of `D = A + s C` (nonzero).
    pub fn aggregated(&mut self, z_ab: &Fq12, z_cb: &Fq12, z_a: &G1Affine, z_c: &G1Affine) -> Fr {
        self.0.append_gt(b"z_ab", z_ab);
        self.0.append_gt(b"z_cb", z_cb);
        self.0.append_g1(b"z_a", z_a);
        self.0.append_g1(b"z_c", z_c);
        self.0.challenge_u128(b"s")
    }

    /// Absorbs one round's cross terms; returns its 128-bit challenge `x`
    /// (nonzero).
    pub fn round(&mut self, round: &GipaRound) -> Fr {
        for f in round.gt_elements() {
            self.0.append_gt(b"round.gt", f);
        }
        self.0.append_g1(b"round.zd_l", &round.zd_l);
        self.0.append_g1(b"round.zd_r", &round.zd_r);
        self.0.challenge_u128(b"x")
    }

    /// Absorbs the final elements and keys; returns the KZG point `z`.
    pub fn finals(
        &mut self,
        d: &G1Affine,
        b: &G2Affine,
        v: &(G2Affine, G2Affine),
        w: &(G1Affine, G1Affine),
    ) -> Fr {
        self.0.append_g1(b"final_d", d);
        self.0.append_g2(b"final_b", b);
        self.0.append_g2(b"final_v1", &v.0);
        self.0.append_g2(b"final_v2", &v.1);
        self.0.append_g1(b"final_w1", &w.0);
        self.0.append_g1(b"final_w2", &w.1);
        self.0.challenge_scalar(b"z")
    }

    /// Absorbs the openings; returns the verifier's eight 128-bit combination
    /// scalars.
    pub fn openings(&mut self, v: &(G2Affine, G2Affine), w: &(G1Affine, G1Affine)) -> [Fr; 8] {
        self.0.append_g2(b"open_v1", &v.0);
        self.0.append_g2(b"open_v2", &v.1);
        self.0.append_g1(b"open_w1", &w.0);
        self.0.append_g1(b"open_w2", &w.1);
        std::array::from_fn(|_| self.0.challenge_u128(b"rho"))
    }
}

/// `prod_j (1 + c_j * z^(n / 2^(j+1)))` for round challenges `c_j` (round 0
/// first), with `n = 2^challenges.len()`: the final value of a vector
/// `(z^i)_{i<n}` folded by `L + c_j R` in round `j`.
pub fn eval_product(challenges: &[Fr], z: &Fr) -> Fr {
    // Powers z^(2^i) for i < rounds; round j uses z^(2^(rounds-1-j)).
    let rounds = challenges.len();
    let mut powers = Vec::with_capacity(rounds);
    let mut p = *z;
    for _ in 0..rounds {
        powers.push(p);
        p.square_in_place();
    }
    challenges
        .iter()
        .enumerate()
        .map(|(j, c)| Fr::one() + *c * powers[rounds - 1 - j])
        .product()
}

/// `f_v(z)`: the final `v` key is `h^{f_v(a)}` (and `h^{f_v(b)}`); `v` folds
/// by `L + x^{-1} R`.
pub fn eval_v(x_inv: &[Fr], z: &Fr) -> Fr {
    eval_product(x_inv, z)
}

/// `f_w(z) = z^n * prod_j (1 + x_j (z / r)^(n / 2^(j+1)))`: the final `w` key is
/// `g^{f_w(a)}`; `w` starts at `g^{a^n}`, is rescaled by `r^{-i}` and folds by
/// `L + x R`.
pub fn eval_w(x: &[Fr], z: &Fr, r_inv: &Fr, n: usize) -> Fr {
    z.pow([n as u64]) * eval_product(x, &(*z * r_inv))
}

/// Verifies an encoded aggregate of the proofs of `statements` (in order);
/// prepares `srs` first ([`verify_aggregate_prepared`] with a cached
/// [`PreparedVerifierSrs`] saves that).
pub fn verify_aggregate(
    srs: &VerifierSrs,
    key: &PreparedKey,
    statements: &[SpanStatement],
    aggregate: &[u8],
) -> Result<(), AggregateError> {
    verify_aggregate_prepared(&srs.clone().into(), key, statements, aggregate)
}

/// Verifies an encoded aggregate of the proofs of `statements` (in order).
pub fn verify_aggregate_prepared(
    srs: &PreparedVerifierSrs,
    key: &PreparedKey,
    statements: &[SpanStatement],
    aggregate: &[u8],
) -> Result<(), AggregateError> {
    let inputs = statements
        .iter()
        .enumerate()
        .map(|(index, s)| {
            s.public_inputs()
                .map_err(|source| AggregateError::Statement { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let proof = AggregateProof::decode(aggregate)?;
    verify_aggregate_inputs(srs, key, &inputs, &proof)
}

/// Verifies a decoded aggregate against the public inputs of each proof.
pub fn verify_aggregate_inputs(
    srs: &PreparedVerifierSrs,
    key: &PreparedKey,
    inputs: &[Vec<Fr>],
    proof: &AggregateProof,
) -> Result<(), AggregateError> {
    let count = inputs.len();
    if proof.count as usize != count {
        return Err(AggregateError::CountMismatch {
            aggregate: proof.count as usize,
            statements: count,
        });
    }
    let n = padded_size(count);
    let max = (srs.srs.max_proofs as usize).min(MAX_AGGREGATE);
    if count == 0 || n > max {
        return Err(AggregateError::Count { got: count, max });
    }
    let rounds = n.trailing_zeros() as usize;
    if proof.rounds.len() != rounds {
        return Err(AggregateError::Length {
            got: proof.rounds.len(),
            want: rounds,
            count,
        });
    }
    let expected = key.key().gamma_abc_g1.len().saturating_sub(1);
    for (index, x) in inputs.iter().enumerate() {
        if x.len() != expected {
            return Err(AggregateError::Statement {
                index,
                source: ProofError::InputCount {
                    expected,
                    got: x.len(),
                },
            });
        }
    }

    // Transcript.
    let mut t = AggregateTranscript::new(&srs.srs, key, inputs);
    let r = t.commitments(&proof.com_ab, &proof.com_c);
    let s = t.aggregated(&proof.z_ab, &proof.z_cb, &proof.z_a, &proof.z_c);
    let x: Vec<Fr> = proof.rounds.iter().map(|round| t.round(round)).collect();
    let z = t.finals(
        &proof.final_d,
        &proof.final_b,
        &proof.final_v,
        &proof.final_w,
    );
    let rho = t.openings(&proof.open_v, &proof.open_w);
    let mut x_inv = x.clone();
    ark_ff::batch_inversion(&mut x_inv);
    let r_inv = r.inverse().ok_or(AggregateError::Invalid)?;

    // MIPP: Z_D = Z_A + s Z_C, folded, equals r* D*.
    let r_final = eval_product(&x_inv, &r);
    let mut zd_bases = Vec::with_capacity(3 + 2 * rounds);
    let mut zd_scalars = Vec::with_capacity(3 + 2 * rounds);
    zd_bases.extend([proof.z_a, proof.z_c]);
    zd_scalars.extend([Fr::one(), s]);
    for (j, round) in proof.rounds.iter().enumerate() {
        zd_bases.extend([round.zd_l, round.zd_r]);
        zd_scalars.extend([x[j], x_inv[j]]);
    }
    zd_bases.push(proof.final_d);
    zd_scalars.push(-r_final);
    if !msm(&zd_bases, &zd_scalars).is_zero() {
        return Err(AggregateError::InvalidMipp);
    }

    // Target-group side. Each folded commitment/product of D is its own
    // multi-exponentiation (short exponents s and x_j stay short), then the
    // three and Z_AB of the Groth16 equation are combined with rho.
    let [r_t, r_u, r_z, r_g16, r_v1, r_v2, r_w1, r_w2] = rho;
    let fold = |start: &Fq12,
                of_c: &Fq12,
                left: fn(&GipaRound) -> &Fq12,
                right: fn(&GipaRound) -> &Fq12| {
        let mut bases = Vec::with_capacity(1 + 2 * rounds);
        let mut exps = Vec::with_capacity(1 + 2 * rounds);
        bases.push(*of_c);
        exps.push(s);
        for (j, round) in proof.rounds.iter().enumerate() {
            bases.extend([*left(round), *right(round)]);
            exps.extend([x[j], x_inv[j]]);
        }
        gt_multi_exp(&bases, &exps) * start
    };
    let t_d = fold(&proof.com_ab.0, &proof.com_c.0, |g| &g.t_l, |g| &g.t_r);
    let u_d = fold(&proof.com_ab.1, &proof.com_c.1, |g| &g.u_l, |g| &g.u_r);
    let z_db = fold(&proof.z_ab, &proof.z_cb, |g| &g.z_l, |g| &g.z_r);
    // Groth16 aggregated inputs over the padded list: sum r^i and
    // sum_i r^i x_ij.
    let vk = key.key();
    let mut sum_r = Fr::zero();
    let mut input_sums = vec![Fr::zero(); expected];
    let mut power = Fr::one();
    for i in 0..n {
        let x_i = &inputs[i.min(count - 1)];
        sum_r += power;
        for (s, v) in input_sums.iter_mut().zip(x_i) {
            *s += power * v;
        }
        power *= r;
    }
    let mut coeffs = Vec::with_capacity(expected + 1);
    coeffs.push(sum_r);
    coeffs.extend(input_sums);
    // e(alpha, beta)^{sum r^i} from the key's precomputed e(alpha, beta):
    // cheaper than a twelfth pair in the Miller loop.
    let pvk = key.prepared();
    let gt_side = gt_multi_exp(
        &[t_d, u_d, z_db, proof.z_ab, pvk.alpha_g1_beta_g2],
        &[r_t, r_u, r_z, r_g16, -(sum_r * r_g16)],
    );

    // KZG evaluations.
    let fv = eval_v(&x_inv, &z);
    let fw = eval_w(&x, &z, &r_inv, n);

    // The pairing side, grouped by G2 point (10 pairs, five G2 points to
    // prepare); each G1 side is one small MSM.
    let d = proof.final_d;
    let (w1, w2) = proof.final_w;
    let (pw1, pw2) = proof.open_w;
    let g = srs.srs.g;
    let g1 = [
        msm(&[d, g], &[-r_t, -r_v1]),
        msm(&[d, g], &[-r_u, -r_v2]),
        msm(&[w1, w2, d], &[-r_t, -r_u, -r_z]),
        msm(
            &vk.gamma_abc_g1,
            &coeffs.iter().map(|k| *k * r_g16).collect::<Vec<_>>(),
        ),
        msm(&[proof.z_c], &[r_g16]),
        msm(&[srs.srs.g_alpha, g], &[r_v1, -(r_v1 * z)]),
        msm(&[srs.srs.g_beta, g], &[r_v2, -(r_v2 * z)]),
        msm(
            &[g, w1, w2, pw1, pw2],
            &[
                (r_v1 + r_v2) * fv + (r_w1 + r_w2) * fw,
                -r_w1,
                -r_w2,
                -(r_w1 * z),
                -(r_w2 * z),
            ],
        ),
        msm(&[pw1], &[r_w1]),
        msm(&[pw2], &[r_w2]),
    ];
    let g1 = normalize(&g1);
    let fresh: [G2Prepared; 5] = [
        proof.final_v.0.into(),
        proof.final_v.1.into(),
        proof.final_b.into(),
        proof.open_v.0.into(),
        proof.open_v.1.into(),
    ];
    let g2: [&G2Prepared; 10] = [
        &fresh[0],
        &fresh[1],
        &fresh[2],
        &pvk.gamma_g2_neg_pc,
        &pvk.delta_g2_neg_pc,
        &fresh[3],
        &fresh[4],
        &srs.h,
        &srs.h_alpha,
        &srs.h_beta,
    ];
    let pairs: Vec<(G1Affine, &G2Prepared)> = g1.into_iter().zip(g2).collect();
    let ml = multi_miller_loop(&pairs);
    let pairing_side =
        Bls12_381::final_exponentiation(MillerLoopOutput(ml)).ok_or(AggregateError::Invalid)?;
    if (pairing_side.0 * gt_side).is_one() {
        Ok(())
    } else {
        Err(AggregateError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bls12_381::{G1Projective, G2Projective};
    use ark_ec::CurveGroup;
    use ark_ec::PrimeGroup;
    use ark_ff::UniformRand;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn gt(seed: u64) -> Fq12 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let p = G1Projective::generator() * Fr::rand(&mut rng);
        let q = G2Projective::generator() * Fr::rand(&mut rng);
        Bls12_381::pairing(p, q).0
    }

    fn srs() -> VerifierSrs {
        let g = G1Projective::generator();
        let h = G2Projective::generator();
        let (a, b) = (Fr::from(7u64), Fr::from(9u64));
        VerifierSrs {
            max_proofs: 8,
            g: g.into_affine(),
            g_alpha: (g * a).into_affine(),
            g_beta: (g * b).into_affine(),
            h: h.into_affine(),
            h_alpha: (h * a).into_affine(),
            h_beta: (h * b).into_affine(),
        }
    }

    #[test]
    fn multi_exp_matches_naive() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for len in [0usize, 1, 2, 7] {
            let bases: Vec<Fq12> = (0..len as u64).map(gt).collect();
            let mut exps: Vec<Fr> = (0..len).map(|_| Fr::rand(&mut rng)).collect();
            if len > 2 {
                exps[1] = Fr::zero();
                exps[2] = Fr::one();
            }
            if len > 4 {
                exps[3] = Fr::from(u128::MAX);
                exps[4] = -Fr::one();
            }
            let naive = bases
                .iter()
                .zip(&exps)
                .fold(Fq12::one(), |acc, (b, e)| acc * b.pow(e.into_bigint()));
            assert_eq!(gt_multi_exp(&bases, &exps), naive, "len {len}");
        }
    }

    #[test]
    fn lambda_split_and_frobenius() {
        let lambda = Fr::from_bigint(LAMBDA).unwrap();
        assert_eq!(lambda * lambda - lambda + Fr::one(), Fr::zero());
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for e in [Fr::rand(&mut rng), -Fr::one(), lambda, lambda - Fr::one()] {
            let (e0, e1) = split_by_lambda(&e.into_bigint());
            assert!(e0 < LAMBDA && e1.num_bits() <= 129);
            let (e0, e1) = (Fr::from_bigint(e0).unwrap(), Fr::from_bigint(e1).unwrap());
            assert_eq!(e0 + e1 * lambda, e);
        }
        let f = gt(5);
        let mut frobenius = f;
        frobenius.frobenius_map_in_place(2);
        assert_eq!(frobenius, f.pow(LAMBDA));
    }

    #[test]
    fn pairing_outputs_are_cyclotomic_and_random_elements_are_not() {
        assert!(is_cyclotomic(&gt(3)));
        assert!(is_cyclotomic(&Fq12::one()));
        assert!(!is_cyclotomic(&Fq12::zero()));
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        assert!(!is_cyclotomic(&Fq12::rand(&mut rng)));
    }

    #[test]
    fn eval_product_is_the_folded_power_vector() {
        let z = Fr::from(5u64);
        let c = [Fr::from(2u64), Fr::from(3u64)];
        // n = 4: (1, z, z^2, z^3) -> fold by c0 -> fold by c1.
        let v: Vec<Fr> = (0..4u64).map(|i| z.pow([i])).collect();
        let v1: Vec<Fr> = (0..2).map(|i| v[i] + c[0] * v[i + 2]).collect();
        let v2 = v1[0] + c[1] * v1[1];
        assert_eq!(eval_product(&c, &z), v2);
        assert_eq!(eval_product(&[], &z), Fr::one());
    }

    #[test]
    fn padding_rule() {
        assert_eq!(padded_size(1), 2);
        assert_eq!(padded_size(2), 2);
        assert_eq!(padded_size(3), 4);
        assert_eq!(padded_size(64), 64);
        assert_eq!(padded_size(65), 128);
        assert_eq!(encoded_len(1), AGGREGATE_FIXED_LEN + ROUND_LEN);
    }

    #[test]
    fn verifier_srs_roundtrip_and_errors() {
        let s = srs();
        let enc = s.encode();
        assert_eq!(enc.len(), VERIFIER_SRS_LEN);
        assert_eq!(VerifierSrs::decode(&enc), Ok(s.clone()));
        assert!(matches!(
            VerifierSrs::decode(&enc[1..]),
            Err(AggregateError::MalformedSrs { .. })
        ));
        let mut bad = enc.clone();
        bad[..4].copy_from_slice(&6u32.to_be_bytes());
        assert!(matches!(
            VerifierSrs::decode(&bad),
            Err(AggregateError::MalformedSrs { reason }) if reason.contains("power of two")
        ));
        let mut bad = enc;
        bad[4] = 0xc0;
        bad[5..4 + G1_LEN].fill(0);
        assert!(matches!(
            VerifierSrs::decode(&bad),
            Err(AggregateError::MalformedSrs { reason }) if reason.contains("identity")
        ));
    }

    #[test]
    fn decode_names_bad_elements() {
        assert!(matches!(
            AggregateProof::decode(&[0, 0, 0, 0]),
            Err(AggregateError::Count { got: 0, .. })
        ));
        let mut bytes = vec![0u8; encoded_len(2)];
        bytes[3] = 2;
        // All-zero target-group element: canonical but zero.
        assert_eq!(
            AggregateProof::decode(&bytes),
            Err(AggregateError::NotCyclotomic {
                field: "com_ab.T".into()
            })
        );
        // A random field element is not cyclotomic.
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let mut enc = Vec::new();
        Fq12::rand(&mut rng).serialize_compressed(&mut enc).unwrap();
        bytes[4..4 + GT_LEN].copy_from_slice(&enc);
        assert!(matches!(
            AggregateProof::decode(&bytes),
            Err(AggregateError::NotCyclotomic { field }) if field == "com_ab.T"
        ));
        // Non-canonical coordinates.
        bytes[4..4 + GT_LEN].fill(0xff);
        assert!(matches!(
            AggregateProof::decode(&bytes),
            Err(AggregateError::MalformedGt { .. })
        ));
        // G1 points outside the subgroup: accepted where they only enter the
        // MIPP equation (z_a), rejected and named where they are paired (z_c).
        let good_gt = {
            let mut e = Vec::new();
            gt(1).serialize_compressed(&mut e).unwrap();
            e
        };
        for i in 0..6 {
            bytes[4 + i * GT_LEN..4 + (i + 1) * GT_LEN].copy_from_slice(&good_gt);
        }
        let mut bad_point = Vec::new();
        crate::test_circuit::g1_outside_subgroup()
            .serialize_uncompressed(&mut bad_point)
            .unwrap();
        let z_a_at = 4 + 6 * GT_LEN;
        let z_c_at = z_a_at + G1_AGG;
        bytes[z_a_at..z_c_at].copy_from_slice(&bad_point);
        bytes[z_c_at..z_c_at + G1_AGG].copy_from_slice(&bad_point);
        assert!(matches!(
            AggregateProof::decode(&bytes),
            Err(AggregateError::Point { field, source: ProofError::NotInSubgroup { .. } })
                if field == "z_c"
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8000)) {
            let _ = AggregateProof::decode(&bytes);
        }

        #[test]
        fn decode_with_valid_length_never_panics(seed in any::<u64>(), count in 1u32..5) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut bytes: Vec<u8> = (0..encoded_len(count as usize))
                .map(|_| rand_chacha::rand_core::RngCore::next_u32(&mut rng) as u8)
                .collect();
            bytes[..4].copy_from_slice(&count.to_be_bytes());
            prop_assert!(AggregateProof::decode(&bytes).is_err());
        }

        #[test]
        fn srs_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = VerifierSrs::decode(&bytes);
        }
    }
}
