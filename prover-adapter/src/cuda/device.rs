//! The GPU side of the CUDA MSM: finding a device, compiling `msm.cu` with NVRTC
//! (PTX cached on disk per source, architecture and NVRTC version), and launching
//! the kernels in order on one stream.
//!
//! `unsafe` is confined to this module: kernel launches are `unsafe` in cudarc
//! because argument types cannot be checked against the kernel's signature.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ark_ec::short_weierstrass::{Affine, Projective};
use ark_ec::VariableBaseMSM;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, Ptx};
use sha2::{Digest, Sha256};

use super::{encode, finish, GpuCurve, Plan, KERNEL_SOURCE, SCAN_CHUNK};
use crate::msm::{check_lengths, MsmBackend, MsmError, ScalarRepr};

/// Why the CUDA back end cannot be used on this machine.
#[derive(Debug, thiserror::Error)]
pub enum CudaUnavailable {
    #[error("the CUDA driver library (libcuda) is not loadable")]
    NoDriver,
    #[error("the NVRTC library (libnvrtc) is not loadable; add the CUDA lib64 directory to LD_LIBRARY_PATH")]
    NoNvrtc,
    #[error("no CUDA device answers: {0}")]
    NoDevice(String),
    #[error("NVRTC could not compile the MSM kernels for {arch}: {reason}")]
    Compile { arch: String, reason: String },
    #[error("CUDA driver error while loading the kernels: {0}")]
    Load(String),
}

const KERNELS: [&str; 11] = [
    "count_digits",
    "scan_chunks",
    "scan_chunk_sums",
    "add_chunk_offsets",
    "scatter_digits",
    "bucket_sums_g1",
    "window_segments_g1",
    "sum_groups_g1",
    "bucket_sums_g2",
    "window_segments_g2",
    "sum_groups_g2",
];

/// Multi-scalar multiplication on an NVIDIA GPU. Calls are serialised on one
/// stream; MSMs below `min_size` points run on the CPU (launch overhead wins).
pub struct CudaMsm {
    stream: Arc<CudaStream>,
    kernels: Vec<CudaFunction>,
    device: String,
    min_size: usize,
    busy: Mutex<()>,
    _module: Arc<CudaModule>,
}

impl std::fmt::Debug for CudaMsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaMsm")
            .field("device", &self.device)
            .field("min_size", &self.min_size)
            .finish()
    }
}

fn driver_error(e: impl std::fmt::Debug) -> MsmError {
    MsmError::Device {
        backend: "cuda",
        reason: format!("{e:?}"),
    }
}

fn ptx_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SEQNET_PTX_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("seqnet").join("ptx"))
}

/// The PTX for `arch`, from the disk cache or freshly compiled (then cached).
fn kernel_ptx(arch: &str) -> Result<(Ptx, bool), CudaUnavailable> {
    let (mut major, mut minor) = (0i32, 0i32);
    // SAFETY: nvrtcVersion writes two ints; the library was checked loadable.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    let version = format!("{major}.{minor}");
    let mut hasher = Sha256::new();
    hasher.update(KERNEL_SOURCE.as_bytes());
    hasher.update(arch.as_bytes());
    hasher.update(version.as_bytes());
    let key = hex::encode(hasher.finalize());
    let cached = ptx_cache_dir().map(|d| d.join(format!("msm-{arch}-{}.ptx", &key[..16])));
    if let Some(path) = &cached {
        if let Ok(src) = std::fs::read_to_string(path) {
            return Ok((Ptx::from_src(src), true));
        }
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++14".into()],
        ..Default::default()
    };
    // NVRTC recurses deeply on large sources: give it a thread with a big stack.
    let compiled = std::thread::Builder::new()
        .name("nvrtc".into())
        .stack_size(256 << 20)
        .spawn(move || cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SOURCE, opts))
        .map_err(|e| CudaUnavailable::Compile {
            arch: arch.to_string(),
            reason: format!("spawning the compiler thread: {e}"),
        })?
        .join()
        .map_err(|_| CudaUnavailable::Compile {
            arch: arch.to_string(),
            reason: "the compiler thread panicked".into(),
        })?;
    let ptx = compiled.map_err(|e| CudaUnavailable::Compile {
        arch: arch.to_string(),
        reason: format!("{e:?}"),
    })?;
    if let Some(path) = &cached {
        // A failed cache write only costs a recompile next time.
        let _ = path
            .parent()
            .map(std::fs::create_dir_all)
            .and_then(|_| std::fs::write(path, ptx.to_src()).ok());
    }
    Ok((ptx, false))
}

impl CudaMsm {
    /// Opens device 0 and loads the kernels, or says why it cannot.
    pub fn new(min_size: usize) -> Result<CudaMsm, CudaUnavailable> {
        // SAFETY: only probes whether the shared libraries can be opened.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaUnavailable::NoDriver);
        }
        // SAFETY: as above.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(CudaUnavailable::NoNvrtc);
        }
        let ctx = CudaContext::new(0).map_err(|e| CudaUnavailable::NoDevice(format!("{e:?}")))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| CudaUnavailable::NoDevice(format!("{e:?}")))?;
        let arch = format!("compute_{major}{minor}");
        let (ptx, from_cache) = kernel_ptx(&arch)?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| CudaUnavailable::Load(format!("{e:?}")))?;
        let kernels = KERNELS
            .iter()
            .map(|name| module.load_function(name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CudaUnavailable::Load(format!("{e:?}")))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        tracing::info!(
            device = %name,
            %arch,
            ptx_cache = from_cache,
            "CUDA MSM kernels loaded"
        );
        Ok(CudaMsm {
            stream: ctx.default_stream(),
            kernels,
            device: format!("{name} ({arch})"),
            min_size,
            busy: Mutex::new(()),
            _module: module,
        })
    }

    /// The device's name and architecture.
    pub fn device(&self) -> &str {
        &self.device
    }

    fn kernel(&self, name: &str) -> Result<&CudaFunction, MsmError> {
        KERNELS
            .iter()
            .position(|k| *k == name)
            .map(|i| &self.kernels[i])
            .ok_or_else(|| driver_error(format!("kernel {name} not loaded")))
    }

    fn run<C: GpuCurve>(
        &self,
        bases: &[Affine<C>],
        scalars: &[ScalarRepr],
    ) -> Result<Projective<C>, MsmError> {
        check_lengths(bases.len(), scalars.len())?;
        let n = bases.len();
        if n < self.min_size.max(2) {
            return Ok(<Projective<C> as VariableBaseMSM>::msm_bigint(
                bases, scalars,
            ));
        }
        let n32 = u32::try_from(n).map_err(|_| driver_error(format!("{n} points exceed u32")))?;
        let plan = Plan::for_size(n);
        let (points, words) = encode::<C>(bases, scalars);
        let _guard = self
            .busy
            .lock()
            .map_err(|_| driver_error("poisoned lock"))?;
        let s = &self.stream;
        let total = plan.total_buckets();
        let chunks = plan.scan_chunks();
        let xyzz = 4 * C::WORDS;

        let d_scalars = s.clone_htod(&words).map_err(driver_error)?;
        let mut counts = s.alloc_zeros::<u32>(total as usize).map_err(driver_error)?;
        let mut offsets = s
            .alloc_zeros::<u32>(total as usize + 1)
            .map_err(driver_error)?;
        let mut cursors = s.alloc_zeros::<u32>(total as usize).map_err(driver_error)?;
        let mut chunk_sums = s
            .alloc_zeros::<u32>(chunks as usize)
            .map_err(driver_error)?;
        let pairs = n
            .checked_mul(plan.windows as usize)
            .ok_or_else(|| driver_error("pair count overflows"))?;
        let mut refs = s.alloc_zeros::<u32>(pairs).map_err(driver_error)?;
        let (c, windows, nb, segs, group) = (
            plan.c,
            plan.windows,
            plan.buckets,
            plan.segments,
            plan.group,
        );

        // Scalars first: the digit and sort kernels run while the points upload
        // (the copy below is queued behind them on the same stream).
        // SAFETY (all launches below): arguments match the kernel signatures
        // in msm.cu (device pointers to u32 or point structs, then u32s), and
        // every buffer holds at least as many elements as the kernel indexes.
        unsafe {
            s.launch_builder(self.kernel("count_digits")?)
                .arg(&d_scalars)
                .arg(&n32)
                .arg(&c)
                .arg(&windows)
                .arg(&mut counts)
                .launch(grid(n32, 256))
                .map_err(driver_error)?;
            s.launch_builder(self.kernel("scan_chunks")?)
                .arg(&counts)
                .arg(&total)
                .arg(&SCAN_CHUNK)
                .arg(&mut offsets)
                .arg(&mut chunk_sums)
                .launch(grid(chunks, 128))
                .map_err(driver_error)?;
            s.launch_builder(self.kernel("scan_chunk_sums")?)
                .arg(&mut chunk_sums)
                .arg(&chunks)
                .arg(&mut offsets)
                .arg(&total)
                .launch(grid(1, 1))
                .map_err(driver_error)?;
            s.launch_builder(self.kernel("add_chunk_offsets")?)
                .arg(&mut offsets)
                .arg(&total)
                .arg(&SCAN_CHUNK)
                .arg(&chunk_sums)
                .arg(&mut cursors)
                .launch(grid(total, 256))
                .map_err(driver_error)?;
            s.launch_builder(self.kernel("scatter_digits")?)
                .arg(&d_scalars)
                .arg(&n32)
                .arg(&c)
                .arg(&windows)
                .arg(&mut cursors)
                .arg(&mut refs)
                .launch(grid(n32, 256))
                .map_err(driver_error)?;
        }
        let d_points = s.clone_htod(&points).map_err(driver_error)?;
        let mut buckets: CudaSlice<u32> =
            s.alloc_zeros(total as usize * xyzz).map_err(driver_error)?;
        let mut segments: CudaSlice<u32> = s
            .alloc_zeros((windows * segs) as usize * xyzz)
            .map_err(driver_error)?;
        let groups = windows * segs / group;
        let mut level1: CudaSlice<u32> = s
            .alloc_zeros(groups as usize * xyzz)
            .map_err(driver_error)?;
        let mut out: CudaSlice<u32> = s
            .alloc_zeros(windows as usize * xyzz)
            .map_err(driver_error)?;
        let per_window = segs / group;
        let suffix = C::SUFFIX;
        unsafe {
            s.launch_builder(self.kernel(&format!("bucket_sums_{suffix}"))?)
                .arg(&d_points)
                .arg(&refs)
                .arg(&offsets)
                .arg(&total)
                .arg(&mut buckets)
                .launch(grid(total, 128))
                .map_err(driver_error)?;
            s.launch_builder(self.kernel(&format!("window_segments_{suffix}"))?)
                .arg(&buckets)
                .arg(&nb)
                .arg(&windows)
                .arg(&segs)
                .arg(&mut segments)
                .launch(grid(windows * segs, 64))
                .map_err(driver_error)?;
            s.launch_builder(self.kernel(&format!("sum_groups_{suffix}"))?)
                .arg(&segments)
                .arg(&groups)
                .arg(&group)
                .arg(&mut level1)
                .launch(grid(groups, 64))
                .map_err(driver_error)?;
            s.launch_builder(self.kernel(&format!("sum_groups_{suffix}"))?)
                .arg(&level1)
                .arg(&windows)
                .arg(&per_window)
                .arg(&mut out)
                .launch(grid(windows, 32))
                .map_err(driver_error)?;
        }
        let sums = s.clone_dtoh(&out).map_err(driver_error)?;
        Ok(finish::<C>(&plan, &sums))
    }
}

fn grid(threads: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (threads.div_ceil(block).max(1), 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl MsmBackend for CudaMsm {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn msm_g1(
        &self,
        bases: &[ark_bls12_381::G1Affine],
        scalars: &[ScalarRepr],
    ) -> Result<ark_bls12_381::G1Projective, MsmError> {
        self.run::<ark_bls12_381::g1::Config>(bases, scalars)
    }

    fn msm_g2(
        &self,
        bases: &[ark_bls12_381::G2Affine],
        scalars: &[ScalarRepr],
    ) -> Result<ark_bls12_381::G2Projective, MsmError> {
        self.run::<ark_bls12_381::g2::Config>(bases, scalars)
    }
}
