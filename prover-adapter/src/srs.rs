//! The structured reference string of SnarkPack aggregation: two independent
//! powers of tau, `a` and `b`, in G1 (`2 * max_proofs` powers each) and G2
//! (`max_proofs` powers each), with a file format a ceremony's output can be
//! written in (docs/aggregation-srs.md).
//!
//! [`Srs::generate_dev`] makes a **development** SRS from a seed: anyone who
//! knows the seed knows `a` and `b` and can forge aggregates. Its label says
//! so, and nodes log it. A production network replaces the file with the
//! output of a multi-party ceremony (for example the powers of tau of an
//! existing ceremony, re-randomized), in the same format.
//!
//! Loading a file checks every point (on the curve, in the prime-order
//! subgroup, not the identity) and, with [`Srs::check_consistency`], that the
//! powers are consistent (random linear combinations of successive powers
//! paired against `h^a`, `g^a`, and likewise for `b`).

use ark_bls12_381::{Bls12_381, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::scalar_mul::ScalarMul;
use ark_ec::{AffineRepr, PrimeGroup};
use ark_ff::{One, UniformRand};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use rand::SeedableRng;
use rayon::prelude::*;
use seqnet_proto::aggregate::VerifierSrs;
use seqnet_proto::groth16::{G1_LEN, G2_LEN};
use seqnet_proto::transcript::Transcript;

use crate::msm::{to_reprs, CpuMsm, MsmBackend};

/// First bytes of an SRS file.
pub const SRS_MAGIC: &[u8; 8] = b"SEQNSRS1";
/// Start of the label of every development SRS.
pub const DEV_LABEL_PREFIX: &str = "DEVELOPMENT SRS - NOT FOR PRODUCTION";
/// Largest `max_proofs` a file may declare (2^20 proofs: a 400 MiB file).
pub const MAX_SRS_PROOFS: usize = 1 << 20;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 1024;

/// Why an SRS could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum SrsError {
    /// The file does not start with [`SRS_MAGIC`].
    #[error("not a seqnet SRS file (magic {found:?}, want {SRS_MAGIC:?})")]
    Magic { found: Vec<u8> },
    /// `max_proofs` is not a power of two in `2..=MAX_SRS_PROOFS`.
    #[error("max_proofs {0} is not a power of two in 2..={MAX_SRS_PROOFS}")]
    Size(u64),
    /// The label is longer than [`MAX_LABEL_LEN`] or not UTF-8.
    #[error("label: {0}")]
    Label(String),
    /// The file is shorter or longer than its header says.
    #[error("SRS file is {got} bytes, want {want}")]
    Length { got: usize, want: usize },
    /// A point does not decode (encoding, curve, subgroup) or is the identity.
    #[error("{table}[{index}] is not a valid point: {reason}")]
    Point {
        table: &'static str,
        index: usize,
        reason: String,
    },
    /// The powers are not consistent powers of one trapdoor.
    #[error("inconsistent SRS: {0}")]
    Inconsistent(&'static str),
}

/// An aggregation SRS (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srs {
    pub label: String,
    /// Largest (padded) number of proofs, a power of two.
    pub max_proofs: usize,
    /// `g^{a^i}`, `i < 2 * max_proofs`.
    pub g_alpha: Vec<G1Affine>,
    /// `g^{b^i}`, `i < 2 * max_proofs`.
    pub g_beta: Vec<G1Affine>,
    /// `h^{a^i}`, `i < max_proofs`.
    pub h_alpha: Vec<G2Affine>,
    /// `h^{b^i}`, `i < max_proofs`.
    pub h_beta: Vec<G2Affine>,
}

fn check_size(max_proofs: u64) -> Result<usize, SrsError> {
    match usize::try_from(max_proofs) {
        Ok(n) if (2..=MAX_SRS_PROOFS).contains(&n) && n.is_power_of_two() => Ok(n),
        _ => Err(SrsError::Size(max_proofs)),
    }
}

/// `(1, s, s^2, ..., s^(len-1))`.
fn powers(s: Fr, len: usize) -> Vec<Fr> {
    let mut out = Vec::with_capacity(len);
    let mut p = Fr::one();
    for _ in 0..len {
        out.push(p);
        p *= s;
    }
    out
}

impl Srs {
    /// A development SRS for up to `max_proofs` proofs with trapdoors drawn
    /// from a `ChaCha20Rng` seeded with `seed`. NOT for production.
    pub fn generate_dev(max_proofs: usize, seed: u64) -> Result<Self, SrsError> {
        let n = check_size(max_proofs as u64)?;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let a = Fr::rand(&mut rng);
        let b = Fr::rand(&mut rng);
        let g = G1Projective::generator();
        let h = G2Projective::generator();
        let g_alpha = g.batch_mul(&powers(a, 2 * n));
        let g_beta = g.batch_mul(&powers(b, 2 * n));
        let h_alpha = h.batch_mul(&powers(a, n));
        let h_beta = h.batch_mul(&powers(b, n));
        Ok(Self {
            label: format!(
                "{DEV_LABEL_PREFIX}: trapdoors derived from seed {seed}, anyone can forge aggregates"
            ),
            max_proofs: n,
            g_alpha,
            g_beta,
            h_alpha,
            h_beta,
        })
    }

    /// Whether the label marks a development SRS.
    pub fn is_development(&self) -> bool {
        self.label.starts_with(DEV_LABEL_PREFIX)
    }

    /// The verifier's part.
    pub fn verifier(&self) -> VerifierSrs {
        VerifierSrs {
            max_proofs: u32::try_from(self.max_proofs).unwrap_or(u32::MAX),
            g: self.g_alpha[0],
            g_alpha: self.g_alpha[1],
            g_beta: self.g_beta[1],
            h: self.h_alpha[0],
            h_alpha: self.h_alpha[1],
            h_beta: self.h_beta[1],
        }
    }

    /// The file encoding (docs/aggregation-srs.md): `"SEQNSRS1" ||
    /// max_proofs (u32 BE) || label_len (u16 BE) || label (UTF-8) ||
    /// g_alpha || g_beta || h_alpha || h_beta`, points compressed.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.max_proofs;
        let mut out = Vec::with_capacity(Self::file_len(n, self.label.len()));
        out.extend_from_slice(SRS_MAGIC);
        out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
        let label = &self.label.as_bytes()[..self.label.len().min(MAX_LABEL_LEN)];
        out.extend_from_slice(&(label.len() as u16).to_be_bytes());
        out.extend_from_slice(label);
        for p in self.g_alpha.iter().chain(&self.g_beta) {
            let _ = p.serialize_compressed(&mut out);
        }
        for p in self.h_alpha.iter().chain(&self.h_beta) {
            let _ = p.serialize_compressed(&mut out);
        }
        out
    }

    fn file_len(n: usize, label: usize) -> usize {
        8 + 4 + 2 + label + 4 * n * G1_LEN + 2 * n * G2_LEN
    }

    /// Decodes a file, checking its layout and every point (in parallel).
    pub fn decode(bytes: &[u8]) -> Result<Self, SrsError> {
        if bytes.len() < 14 || &bytes[..8] != SRS_MAGIC {
            return Err(SrsError::Magic {
                found: bytes[..bytes.len().min(8)].to_vec(),
            });
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[8..12]);
        let n = check_size(u64::from(u32::from_be_bytes(word)))?;
        let label_len = usize::from(u16::from_be_bytes([bytes[12], bytes[13]]));
        if label_len > MAX_LABEL_LEN {
            return Err(SrsError::Label(format!(
                "{label_len} bytes, at most {MAX_LABEL_LEN}"
            )));
        }
        let want = Self::file_len(n, label_len);
        if bytes.len() != want {
            return Err(SrsError::Length {
                got: bytes.len(),
                want,
            });
        }
        let label = std::str::from_utf8(&bytes[14..14 + label_len])
            .map_err(|e| SrsError::Label(e.to_string()))?
            .to_string();
        let mut at = 14 + label_len;
        let mut table_g1 = |table: &'static str| {
            let len = 2 * n * G1_LEN;
            let out = decode_points::<G1Affine>(&bytes[at..at + len], G1_LEN, table);
            at += len;
            out
        };
        let g_alpha = table_g1("g_alpha")?;
        let g_beta = table_g1("g_beta")?;
        let h_len = n * G2_LEN;
        let h_alpha = decode_points::<G2Affine>(&bytes[at..at + h_len], G2_LEN, "h_alpha")?;
        let h_beta =
            decode_points::<G2Affine>(&bytes[at + h_len..at + 2 * h_len], G2_LEN, "h_beta")?;
        Ok(Self {
            label,
            max_proofs: n,
            g_alpha,
            g_beta,
            h_alpha,
            h_beta,
        })
    }

    /// Checks that the tables are powers of two trapdoors over common
    /// generators: `g_alpha[0] == g_beta[0]`, `h_alpha[0] == h_beta[0]`, and
    /// for random (Fiat–Shamir) `rho`:
    /// `e(sum rho_i g^{a^{i+1}}, h) == e(sum rho_i g^{a^i}, h^a)` and
    /// `e(g, sum rho_i h^{a^{i+1}}) == e(g^a, sum rho_i h^{a^i})`, likewise for `b`.
    pub fn check_consistency(&self) -> Result<(), SrsError> {
        if self.g_alpha[0] != self.g_beta[0] {
            return Err(SrsError::Inconsistent("g_alpha[0] != g_beta[0]"));
        }
        if self.h_alpha[0] != self.h_beta[0] {
            return Err(SrsError::Inconsistent("h_alpha[0] != h_beta[0]"));
        }
        let mut t = Transcript::new(b"seqnet/srs-check/v1");
        t.append_bytes(b"srs", &seqnet_proto::sha256(&self.encode()));
        let n = self.max_proofs;
        let rho: Vec<Fr> = (0..2 * n).map(|_| t.challenge_u128(b"rho")).collect();
        let g = self.g_alpha[0];
        let h = self.h_alpha[0];
        let msm = CpuMsm;
        for (g_pows, h_pows, name) in [
            (&self.g_alpha, &self.h_alpha, "powers of a"),
            (&self.g_beta, &self.h_beta, "powers of b"),
        ] {
            let r1 = to_reprs(&rho[..2 * n - 1]);
            let hi = msm
                .msm_g1(&g_pows[1..], &r1)
                .map_err(|_| SrsError::Inconsistent(name))?;
            let lo = msm
                .msm_g1(&g_pows[..2 * n - 1], &r1)
                .map_err(|_| SrsError::Inconsistent(name))?;
            let lhs = Bls12_381::multi_pairing([hi, -lo], [h, h_pows[1]]);
            if !lhs.0.is_one() {
                return Err(SrsError::Inconsistent(name));
            }
            let r2 = to_reprs(&rho[..n - 1]);
            let hi = msm
                .msm_g2(&h_pows[1..], &r2)
                .map_err(|_| SrsError::Inconsistent(name))?;
            let lo = msm
                .msm_g2(&h_pows[..n - 1], &r2)
                .map_err(|_| SrsError::Inconsistent(name))?;
            let rhs = Bls12_381::multi_pairing([g, -g_pows[1]], [hi, lo]);
            if !rhs.0.is_one() {
                return Err(SrsError::Inconsistent(name));
            }
        }
        Ok(())
    }
}

fn decode_points<P>(bytes: &[u8], len: usize, table: &'static str) -> Result<Vec<P>, SrsError>
where
    P: CanonicalDeserialize + AffineRepr + Send,
{
    bytes
        .par_chunks(len)
        .enumerate()
        .map(|(index, chunk)| {
            let p = P::deserialize_compressed(chunk).map_err(|e| SrsError::Point {
                table,
                index,
                reason: e.to_string(),
            })?;
            if p.is_zero() {
                return Err(SrsError::Point {
                    table,
                    index,
                    reason: "identity".into(),
                });
            }
            Ok(p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_srs_roundtrips_and_is_consistent() {
        let srs = Srs::generate_dev(8, 1).expect("dev srs");
        assert!(srs.is_development());
        assert_eq!(srs.g_alpha.len(), 16);
        assert_eq!(srs.h_beta.len(), 8);
        let bytes = srs.encode();
        assert_eq!(bytes.len(), Srs::file_len(8, srs.label.len()));
        let back = Srs::decode(&bytes).expect("decode");
        assert_eq!(back, srs);
        back.check_consistency().expect("consistent");
        // Same seed, same SRS; another seed, another.
        assert_eq!(Srs::generate_dev(8, 1).expect("srs"), srs);
        assert_ne!(
            Srs::generate_dev(8, 2).expect("srs").verifier(),
            srs.verifier()
        );
    }

    #[test]
    fn bad_files_are_rejected() {
        let srs = Srs::generate_dev(4, 3).expect("dev srs");
        let bytes = srs.encode();
        assert!(matches!(
            Srs::decode(&bytes[..10]),
            Err(SrsError::Magic { .. })
        ));
        assert!(matches!(
            Srs::decode(&bytes[..bytes.len() - 1]),
            Err(SrsError::Length { .. })
        ));
        let mut bad = bytes.clone();
        bad[8..12].copy_from_slice(&3u32.to_be_bytes());
        assert!(matches!(Srs::decode(&bad), Err(SrsError::Size(3))));
        // A flipped bit in a G2 point.
        let mut bad = bytes.clone();
        let last = bad.len() - 5;
        bad[last] ^= 1;
        assert!(Srs::decode(&bad).is_err());
        // Swapped powers decode but are inconsistent.
        let mut swapped = srs.clone();
        swapped.g_alpha.swap(2, 3);
        assert!(matches!(
            swapped.check_consistency(),
            Err(SrsError::Inconsistent("powers of a"))
        ));
        let mut swapped = srs.clone();
        swapped.h_beta.swap(1, 2);
        assert!(matches!(
            swapped.check_consistency(),
            Err(SrsError::Inconsistent("powers of b"))
        ));
        // A non-UTF-8 label.
        let mut bad = bytes;
        bad[14] = 0xff;
        assert!(matches!(Srs::decode(&bad), Err(SrsError::Label(_))));
    }
}
