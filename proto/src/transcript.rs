//! A Fiat–Shamir transcript over SHA-256, shared by every prover and verifier
//! of seqnet's pairing-based arguments (batch verification of Groth16 proofs,
//! SnarkPack aggregation).
//!
//! The transcript is a running SHA-256 state, started with a protocol domain.
//! Every message is absorbed as `label_len (u32 BE) || label || data_len (u64 BE)
//! || data`, so no two different sequences of messages hash alike. A challenge
//! labelled `l` is `SHA-256(state || "challenge" || l || counter)`; the digest is
//! then absorbed back (the transcript ratchets), so later challenges depend on
//! earlier ones.
//!
//! Curve points are absorbed in their compressed `ark-serialize` encodings
//! (canonical: one encoding per point), scalars as 32 bytes big-endian,
//! target-group elements as their 576-byte `ark-serialize` encoding.
//!
//! Invariant: a prover and a verifier that absorb the same messages in the same
//! order draw the same challenges; anything a challenge must depend on
//! (verifying keys, public inputs, commitments) must be absorbed before it
//! ("Frozen Heart" breaks came from transcripts that left inputs out).

use ark_bls12_381::{Fq12, Fr, G1Affine, G2Affine};
use ark_ff::{BigInteger, PrimeField, Zero};
use ark_serialize::CanonicalSerialize;
use sha2::{Digest, Sha256};

/// A SHA-256 Fiat–Shamir transcript (see the module documentation).
#[derive(Clone)]
pub struct Transcript {
    state: Sha256,
    challenges: u64,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcript")
            .field("challenges", &self.challenges)
            .finish_non_exhaustive()
    }
}

impl Transcript {
    /// A new transcript for the protocol named `domain` (e.g.
    /// `b"seqnet/groth16-batch/v1"`).
    pub fn new(domain: &[u8]) -> Self {
        let mut t = Self {
            state: Sha256::new(),
            challenges: 0,
        };
        t.append_bytes(b"domain", domain);
        t
    }

    /// Absorbs `data` under `label`.
    pub fn append_bytes(&mut self, label: &[u8], data: &[u8]) {
        // Labels are short constants and data at most a few hundred KiB.
        let label_len = u32::try_from(label.len()).unwrap_or(u32::MAX);
        self.state.update(label_len.to_be_bytes());
        self.state.update(label);
        self.state.update((data.len() as u64).to_be_bytes());
        self.state.update(data);
    }

    /// Absorbs a `u64` (8 bytes big-endian).
    pub fn append_u64(&mut self, label: &[u8], value: u64) {
        self.append_bytes(label, &value.to_be_bytes());
    }

    /// Absorbs a scalar (32 bytes big-endian, canonical).
    pub fn append_scalar(&mut self, label: &[u8], s: &Fr) {
        self.append_bytes(label, &scalar_bytes(s));
    }

    /// Absorbs scalars, each 32 bytes big-endian, as one message.
    pub fn append_scalars(&mut self, label: &[u8], scalars: &[Fr]) {
        let mut buf = Vec::with_capacity(scalars.len() * 32);
        for s in scalars {
            buf.extend_from_slice(&scalar_bytes(s));
        }
        self.append_bytes(label, &buf);
    }

    /// Absorbs a G1 point (48-byte compressed encoding).
    pub fn append_g1(&mut self, label: &[u8], p: &G1Affine) {
        self.append_serialized(label, p);
    }

    /// Absorbs a G2 point (96-byte compressed encoding).
    pub fn append_g2(&mut self, label: &[u8], p: &G2Affine) {
        self.append_serialized(label, p);
    }

    /// Absorbs a target-group element (576 bytes).
    pub fn append_gt(&mut self, label: &[u8], f: &Fq12) {
        self.append_serialized(label, f);
    }

    fn append_serialized<T: CanonicalSerialize>(&mut self, label: &[u8], value: &T) {
        let mut buf = Vec::with_capacity(value.compressed_size());
        // Serializing into a Vec cannot fail.
        if value.serialize_compressed(&mut buf).is_err() {
            buf.clear();
        }
        self.append_bytes(label, &buf);
    }

    /// 32 challenge bytes under `label`; absorbed back into the state.
    pub fn challenge_bytes(&mut self, label: &[u8]) -> [u8; 32] {
        let mut h = self.state.clone();
        let label_len = u32::try_from(label.len()).unwrap_or(u32::MAX);
        h.update(b"challenge");
        h.update(label_len.to_be_bytes());
        h.update(label);
        h.update(self.challenges.to_be_bytes());
        let out: [u8; 32] = h.finalize().into();
        self.challenges = self.challenges.wrapping_add(1);
        self.append_bytes(b"challenge-output", &out);
        out
    }

    /// A 128-bit challenge scalar, never zero (enough for random linear
    /// combinations: a forged batch passes with probability at most 2^-128).
    pub fn challenge_u128(&mut self, label: &[u8]) -> Fr {
        let bytes = self.challenge_bytes(label);
        let mut half = [0u8; 16];
        half.copy_from_slice(&bytes[..16]);
        let v = u128::from_be_bytes(half);
        Fr::from(if v == 0 { 1 } else { v })
    }

    /// A full-size challenge scalar (64 challenge bytes reduced modulo `r`,
    /// bias below 2^-250), never zero.
    pub fn challenge_scalar(&mut self, label: &[u8]) -> Fr {
        let lo = self.challenge_bytes(label);
        let hi = self.challenge_bytes(label);
        let mut wide = [0u8; 64];
        wide[..32].copy_from_slice(&lo);
        wide[32..].copy_from_slice(&hi);
        let s = Fr::from_be_bytes_mod_order(&wide);
        if s.is_zero() {
            Fr::from(1u64)
        } else {
            s
        }
    }
}

/// A scalar as 32 bytes big-endian.
pub fn scalar_bytes(s: &Fr) -> [u8; 32] {
    let be = s.into_bigint().to_bytes_be();
    let mut out = [0u8; 32];
    out[32 - be.len().min(32)..].copy_from_slice(&be[be.len().saturating_sub(32)..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bls12_381::G1Projective;
    use ark_ec::{AdditiveGroup, AffineRepr, CurveGroup, PrimeGroup};
    use proptest::prelude::*;

    #[test]
    fn same_messages_same_challenges() {
        let run = |extra: bool| {
            let mut t = Transcript::new(b"test");
            t.append_u64(b"n", 3);
            t.append_g1(b"g", &G1Affine::generator());
            t.append_g2(b"h", &G2Affine::generator());
            if extra {
                t.append_bytes(b"x", b"");
            }
            (t.challenge_u128(b"r"), t.challenge_scalar(b"s"))
        };
        assert_eq!(run(false), run(false));
        assert_ne!(run(false), run(true));
    }

    #[test]
    fn domains_and_labels_separate() {
        let c = |domain: &[u8], label: &[u8], data: &[u8]| {
            let mut t = Transcript::new(domain);
            t.append_bytes(label, data);
            t.challenge_bytes(b"c")
        };
        assert_ne!(c(b"a", b"x", b"y"), c(b"b", b"x", b"y"));
        // Moving a byte between label and data changes the challenge.
        assert_ne!(c(b"a", b"xy", b""), c(b"a", b"x", b"y"));
    }

    #[test]
    fn challenges_ratchet() {
        let mut t = Transcript::new(b"test");
        let a = t.challenge_bytes(b"c");
        let b = t.challenge_bytes(b"c");
        assert_ne!(a, b);
    }

    #[test]
    fn u128_challenges_fit_128_bits() {
        let mut t = Transcript::new(b"test");
        for _ in 0..32 {
            let c = t.challenge_u128(b"c");
            assert!(c.into_bigint().num_bits() <= 128);
            assert!(!c.is_zero());
        }
    }

    #[test]
    fn points_are_absorbed_by_value() {
        let g = G1Projective::generator();
        let p1 = (g + g).into_affine();
        let p2 = (g.double()).into_affine();
        let mut t1 = Transcript::new(b"t");
        t1.append_g1(b"p", &p1);
        let mut t2 = Transcript::new(b"t");
        t2.append_g1(b"p", &p2);
        assert_eq!(t1.challenge_bytes(b"c"), t2.challenge_bytes(b"c"));
    }

    proptest! {
        #[test]
        fn scalar_bytes_roundtrip(limbs in any::<[u64; 4]>()) {
            let s = Fr::from_le_bytes_mod_order(
                &limbs.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<_>>(),
            );
            prop_assert_eq!(Fr::from_be_bytes_mod_order(&scalar_bytes(&s)), s);
        }

        #[test]
        fn any_message_change_changes_challenge(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            flip in 0usize..64,
        ) {
            let mut t1 = Transcript::new(b"t");
            t1.append_bytes(b"m", &data);
            let mut other = data.clone();
            if other.is_empty() {
                other.push(0);
            } else {
                let i = flip % other.len();
                other[i] ^= 1;
            }
            let mut t2 = Transcript::new(b"t");
            t2.append_bytes(b"m", &other);
            prop_assert_ne!(t1.challenge_bytes(b"c"), t2.challenge_bytes(b"c"));
        }
    }
}
