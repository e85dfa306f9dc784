//! CUDA MSM back end: a Pippenger kernel for BLS12-381 G1 and G2 (`msm.cu`),
//! embedded in the binary and compiled at run time by NVRTC for the GPU found,
//! loaded through `cudarc`'s dynamic loading, so building needs neither a CUDA
//! toolkit nor a GPU.
//!
//! This module owns what the host does around the kernels: the launch plan
//! (window width, bucket and segment counts), the limb encodings of points and
//! scalars, and the final combination of window sums. The same encodings feed
//! a host-compiled emulation of the kernels in tests, so the kernel logic is
//! checked against arkworks on machines without a GPU.

mod device;

use ark_bls12_381::{Fq, Fq2};
use ark_ec::short_weierstrass::{Affine, Projective, SWCurveConfig};
use ark_ff::{AdditiveGroup, BigInt, Zero};
use rayon::prelude::*;

use super::ScalarRepr;

pub use device::{CudaMsm, CudaUnavailable};

/// The kernel source, compiled by NVRTC at run time.
pub const KERNEL_SOURCE: &str = include_str!("msm.cu");

/// Scalar limbs as the kernels read them: 8 little-endian `u32`.
const SCALAR_WORDS: usize = 8;
/// Threads that each scan one chunk of the bucket histogram.
const SCAN_CHUNK: u32 = 256;
/// Sorted (bucket, point) pairs per bucket-sum thread (`BUCKET_CHUNK` in msm.cu's
/// harness): bounds any thread's additions whatever the scalar distribution.
const BUCKET_CHUNK: u32 = 32;

/// How one MSM of `n` points is split across the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Window width in bits (signed digits: `2^(c-1)` buckets per window).
    pub c: u32,
    /// Windows per scalar, including the top one that holds the last carry.
    pub windows: u32,
    /// Buckets per window.
    pub buckets: u32,
    /// Segments each window's bucket reduction is split into.
    pub segments: u32,
    /// Segments summed per thread in the first level of the final sum.
    pub group: u32,
}

impl Plan {
    /// `c ≈ log2(n) − 4` (the usual choice without precomputed multiples),
    /// between 5 and 16 so bucket indices and the histogram stay small.
    pub fn for_size(n: usize) -> Plan {
        let log2 = usize::BITS - 1 - n.max(1).leading_zeros();
        Plan::with_window(log2.saturating_sub(4))
    }

    /// The plan for window width `c` (clamped to 5..=16).
    pub fn with_window(c: u32) -> Plan {
        let c = c.clamp(5, 16);
        let buckets = 1u32 << (c - 1);
        let segments = buckets.min(1024);
        Plan {
            c,
            windows: 256 / c + 1,
            buckets,
            segments,
            group: segments.min(32),
        }
    }

    /// Buckets over all windows.
    pub fn total_buckets(&self) -> u32 {
        self.windows * self.buckets
    }

    fn scan_chunks(&self) -> u32 {
        self.total_buckets().div_ceil(SCAN_CHUNK)
    }
}

/// A curve group as the kernels see it: coordinates as `u32` limbs.
pub(crate) trait GpuCurve: SWCurveConfig<ScalarField = ark_bls12_381::Fr> {
    /// `u32` words per base-field element (12 for Fp, 24 for Fp2).
    const WORDS: usize;
    /// Kernel name suffix (`g1`, `g2`).
    const SUFFIX: &'static str;
    fn write_coord(f: &Self::BaseField, out: &mut [u32]);
    fn read_coord(words: &[u32]) -> Self::BaseField;
}

fn write_fq(f: &Fq, out: &mut [u32]) {
    // arkworks keeps Fq in Montgomery form with R = 2^384, the same R as 12
    // 32-bit limbs, so the limbs go to the GPU unchanged.
    for (i, limb) in f.0 .0.iter().enumerate() {
        out[2 * i] = *limb as u32;
        out[2 * i + 1] = (*limb >> 32) as u32;
    }
}

fn read_fq(words: &[u32]) -> Fq {
    let mut limbs = [0u64; 6];
    for (i, limb) in limbs.iter_mut().enumerate() {
        *limb = u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32);
    }
    Fq::new_unchecked(BigInt(limbs))
}

impl GpuCurve for ark_bls12_381::g1::Config {
    const WORDS: usize = 12;
    const SUFFIX: &'static str = "g1";
    fn write_coord(f: &Fq, out: &mut [u32]) {
        write_fq(f, out);
    }
    fn read_coord(words: &[u32]) -> Fq {
        read_fq(words)
    }
}

impl GpuCurve for ark_bls12_381::g2::Config {
    const WORDS: usize = 24;
    const SUFFIX: &'static str = "g2";
    fn write_coord(f: &Fq2, out: &mut [u32]) {
        write_fq(&f.c0, &mut out[..12]);
        write_fq(&f.c1, &mut out[12..]);
    }
    fn read_coord(words: &[u32]) -> Fq2 {
        Fq2::new(read_fq(&words[..12]), read_fq(&words[12..24]))
    }
}

/// Scalars as 8 `u32` limbs each into `out` (`8 * n` words); a point at
/// infinity gets a zero scalar, so the kernels never read its coordinates.
pub(crate) fn encode_scalars<C: GpuCurve>(
    bases: &[Affine<C>],
    scalars: &[ScalarRepr],
    out: &mut [u32],
) {
    out.par_chunks_mut(SCALAR_WORDS)
        .zip(bases.par_iter().zip(scalars.par_iter()))
        .for_each(|(s, (base, scalar))| {
            if base.infinity {
                s.fill(0);
                return;
            }
            for (i, limb) in scalar.0.iter().enumerate() {
                s[2 * i] = *limb as u32;
                s[2 * i + 1] = (*limb >> 32) as u32;
            }
        });
}

/// Points as `(x, y)` limbs into `out` (`2 * WORDS * n` words).
pub(crate) fn encode_points<C: GpuCurve>(bases: &[Affine<C>], out: &mut [u32]) {
    out.par_chunks_mut(2 * C::WORDS)
        .zip(bases.par_iter())
        .for_each(|(p, base)| {
            C::write_coord(&base.x, &mut p[..C::WORDS]);
            C::write_coord(&base.y, &mut p[C::WORDS..]);
        });
}

/// Window sums (XYZZ limbs, `4 * WORDS` per window) combined as
/// `sum_w 2^(c w) T_w`, by Horner's rule from the top window.
pub(crate) fn finish<C: GpuCurve>(plan: &Plan, window_sums: &[u32]) -> Projective<C> {
    let stride = 4 * C::WORDS;
    let mut acc = Projective::<C>::zero();
    for window in window_sums.chunks_exact(stride).rev() {
        for _ in 0..plan.c {
            acc.double_in_place();
        }
        acc += xyzz_to_projective::<C>(window);
    }
    acc
}

/// XYZZ (x = X/ZZ, y = Y/ZZZ) to arkworks' Jacobian (x = X/Z^2, y = Y/Z^3)
/// without an inversion: Z = ZZ·ZZZ, X' = X·ZZ^4, Y' = Y·ZZZ^2·ZZ^3
/// (using ZZ^3 = ZZZ^2). ZZ = 0 is the point at infinity.
fn xyzz_to_projective<C: GpuCurve>(words: &[u32]) -> Projective<C> {
    let w = C::WORDS;
    let x = C::read_coord(&words[..w]);
    let y = C::read_coord(&words[w..2 * w]);
    let zz = C::read_coord(&words[2 * w..3 * w]);
    let zzz = C::read_coord(&words[3 * w..4 * w]);
    if zz.is_zero() {
        return Projective::<C>::zero();
    }
    let zz2 = zz * zz;
    let zz3 = zz2 * zz;
    Projective::<C>::new_unchecked(x * zz2 * zz2, y * zzz * zzz * zz3, zz * zzz)
}

#[cfg(test)]
mod emulation_tests;
