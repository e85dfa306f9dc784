//! Valid points and target-group elements for structure-aware targets:
//! random bytes almost never decode to a curve point, so these targets
//! start from a valid encoding built from the fuzzer's choices and then flip
//! the bytes it names, reaching the curve, subgroup and canonicality checks
//! on near-valid input.
#![allow(dead_code)] // each target uses part of the pool
use std::sync::OnceLock;

use ark_bls12_381::{Bls12_381, Fq12, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{CurveGroup, PrimeGroup};

pub struct Pool {
    pub g1: Vec<G1Affine>,
    pub g2: Vec<G2Affine>,
    pub gt: Vec<Fq12>,
}

const SIZE: u64 = 16;

pub fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let g1: Vec<G1Affine> = (1..=SIZE)
            .map(|i| (G1Projective::generator() * Fr::from(i)).into_affine())
            .collect();
        let g2: Vec<G2Affine> = (1..=SIZE)
            .map(|i| (G2Projective::generator() * Fr::from(i)).into_affine())
            .collect();
        let gt = g1.iter().map(|p| Bls12_381::pairing(p, g2[0]).0).collect();
        Pool { g1, g2, gt }
    })
}

/// Reads the fuzzer's bytes: choices first, then (offset, xor) flips.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn index(&mut self) -> usize {
        usize::from(self.byte()) % SIZE as usize
    }

    /// XORs the remaining (u16 offset, byte) pairs into `bytes`; whether any
    /// byte changed.
    pub fn flip(&mut self, bytes: &mut [u8]) -> bool {
        let mut changed = false;
        for pair in self.data.chunks_exact(3) {
            if bytes.is_empty() {
                break;
            }
            let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % bytes.len();
            bytes[at] ^= pair[2];
            changed |= pair[2] != 0;
        }
        changed
    }
}
