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
    CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig, PinnedHostSlice, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, Ptx};
use sha2::{Digest, Sha256};

use super::super::{check_lengths, MsmBackend, MsmError, ScalarRepr};
use super::{
    encode_points, encode_scalars, finish, GpuCurve, Plan, BUCKET_CHUNK, KERNEL_SOURCE,
    SCALAR_WORDS, SCAN_CHUNK,
};

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

const KERNELS: [&str; 13] = [
    "count_digits",
    "scan_chunks",
    "scan_chunk_sums",
    "add_chunk_offsets",
    "scatter_digits",
    "bucket_chunks_g1",
    "bucket_merge_g1",
    "window_segments_g1",
    "sum_groups_g1",
    "bucket_chunks_g2",
    "bucket_merge_g2",
    "window_segments_g2",
    "sum_groups_g2",
];

/// Multi-scalar multiplication on an NVIDIA GPU. Calls are serialised on one
/// stream; MSMs below `min_size` points run on the CPU (launch overhead wins).
pub struct CudaMsm {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    upload: Arc<CudaStream>,
    kernels: Vec<CudaFunction>,
    device: String,
    min_size: usize,
    staging: Mutex<Staging>,
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
        let new_stream = || {
            ctx.new_stream()
                .map_err(|e| CudaUnavailable::Load(format!("creating a stream: {e:?}")))
        };
        Ok(CudaMsm {
            stream: new_stream()?,
            upload: new_stream()?,
            ctx: ctx.clone(),
            kernels,
            device: format!("{name} ({arch})"),
            min_size,
            staging: Mutex::new(Staging::default()),
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
        // SEQNET_MSM_WINDOW overrides the window width (for tuning runs).
        let plan = match std::env::var("SEQNET_MSM_WINDOW")
            .ok()
            .and_then(|c| c.parse().ok())
        {
            Some(c) => Plan::with_window(c),
            None => Plan::for_size(n),
        };
        let mut staging = self
            .staging
            .lock()
            .map_err(|_| driver_error("poisoned lock"))?;
        let (s, up) = (&self.stream, &self.upload);
        let mut profile = Profile::new();
        let (c, windows, nb, segs, group) = (
            plan.c,
            plan.windows,
            plan.buckets,
            plan.segments,
            plan.group,
        );
        let total = plan.total_buckets();
        let chunks = plan.scan_chunks();
        let xyzz = 4 * C::WORDS;
        let pairs = n
            .checked_mul(windows as usize)
            .ok_or_else(|| driver_error("pair count overflows"))?;
        let bucket_chunks = u32::try_from(pairs.div_ceil(BUCKET_CHUNK as usize))
            .map_err(|_| driver_error(format!("{pairs} pairs exceed u32")))?;

        // Scalars first: digits, histogram and sort run on `s` while the host
        // encodes the points and `up` copies them (pinned staging buffers).
        let words = staging.scalars(&self.ctx, n * SCALAR_WORDS)?;
        encode_scalars::<C>(bases, scalars, words);
        let mut d_scalars = s
            .alloc_zeros::<u32>(n * SCALAR_WORDS)
            .map_err(driver_error)?;
        s.memcpy_htod(&*words, &mut d_scalars)
            .map_err(driver_error)?;
        profile.mark(s, "encode + upload scalars")?;
        let mut counts = s.alloc_zeros::<u32>(total as usize).map_err(driver_error)?;
        let mut offsets = s
            .alloc_zeros::<u32>(total as usize + 1)
            .map_err(driver_error)?;
        let mut cursors = s.alloc_zeros::<u32>(total as usize).map_err(driver_error)?;
        let mut chunk_sums = s
            .alloc_zeros::<u32>(chunks as usize)
            .map_err(driver_error)?;
        let mut refs = s.alloc_zeros::<u32>(pairs).map_err(driver_error)?;
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
        profile.mark(s, "digits + sort")?;
        let point_words = staging.points(&self.ctx, n * 2 * C::WORDS)?;
        encode_points::<C>(bases, point_words);
        let mut d_points = up
            .alloc_zeros::<u32>(n * 2 * C::WORDS)
            .map_err(driver_error)?;
        up.memcpy_htod(&*point_words, &mut d_points)
            .map_err(driver_error)?;
        s.join(up).map_err(driver_error)?;
        profile.mark(s, "encode + upload points")?;

        let alloc_points = |count: usize| s.alloc_zeros::<u32>(count * xyzz).map_err(driver_error);
        let mut buckets = alloc_points(total as usize)?;
        let mut heads = alloc_points(bucket_chunks as usize)?;
        let mut tails = alloc_points(bucket_chunks as usize)?;
        let mut segments = alloc_points((windows * segs) as usize)?;
        let groups = windows * segs / group;
        let mut level1 = alloc_points(groups as usize)?;
        let mut out = alloc_points(windows as usize)?;
        let per_window = segs / group;
        let suffix = C::SUFFIX;
        unsafe {
            s.launch_builder(self.kernel(&format!("bucket_chunks_{suffix}"))?)
                .arg(&d_points)
                .arg(&refs)
                .arg(&offsets)
                .arg(&total)
                .arg(&BUCKET_CHUNK)
                .arg(&mut buckets)
                .arg(&mut heads)
                .arg(&mut tails)
                .launch(grid(bucket_chunks, 128))
                .map_err(driver_error)?;
            profile.mark(s, "bucket chunks")?;
            s.launch_builder(self.kernel(&format!("bucket_merge_{suffix}"))?)
                .arg(&offsets)
                .arg(&total)
                .arg(&BUCKET_CHUNK)
                .arg(&heads)
                .arg(&tails)
                .arg(&mut buckets)
                .launch(grid(total, 128))
                .map_err(driver_error)?;
            profile.mark(s, "bucket merge")?;
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
        profile.mark(s, "window reduction + download")?;
        profile.report(n, &plan);
        Ok(finish::<C>(&plan, &sums))
    }
}

/// Page-locked host buffers reused across calls (allocating them costs more
/// than the copy they speed up), grown to the largest MSM seen.
#[derive(Default)]
struct Staging {
    scalars: Option<PinnedHostSlice<u32>>,
    points: Option<PinnedHostSlice<u32>>,
}

fn pinned<'a>(
    slot: &'a mut Option<PinnedHostSlice<u32>>,
    ctx: &Arc<CudaContext>,
    len: usize,
) -> Result<&'a mut [u32], MsmError> {
    if slot.as_ref().is_none_or(|b| b.len() < len) {
        *slot = None;
        // SAFETY: the buffer's contents are only read after encode_* wrote
        // the first `len` words.
        *slot = Some(unsafe { ctx.alloc_pinned::<u32>(len) }.map_err(driver_error)?);
    }
    let buffer = slot
        .as_mut()
        .ok_or_else(|| driver_error("pinned buffer missing"))?;
    Ok(&mut buffer.as_mut_slice().map_err(driver_error)?[..len])
}

impl Staging {
    fn scalars(&mut self, ctx: &Arc<CudaContext>, len: usize) -> Result<&mut [u32], MsmError> {
        pinned(&mut self.scalars, ctx, len)
    }
    fn points(&mut self, ctx: &Arc<CudaContext>, len: usize) -> Result<&mut [u32], MsmError> {
        pinned(&mut self.points, ctx, len)
    }
}

/// Per-phase timings when `SEQNET_MSM_PROFILE` is set: the stream is synchronised
/// after each phase (slower overall), and the phases are logged at the end.
struct Profile {
    last: Option<std::time::Instant>,
    phases: Vec<(&'static str, std::time::Duration)>,
}

impl Profile {
    fn new() -> Profile {
        let enabled = std::env::var_os("SEQNET_MSM_PROFILE").is_some();
        Profile {
            last: enabled.then(std::time::Instant::now),
            phases: Vec::new(),
        }
    }

    fn mark(&mut self, stream: &CudaStream, phase: &'static str) -> Result<(), MsmError> {
        if let Some(last) = self.last {
            stream.synchronize().map_err(driver_error)?;
            let now = std::time::Instant::now();
            self.phases.push((phase, now - last));
            self.last = Some(now);
        }
        Ok(())
    }

    fn report(&self, n: usize, plan: &Plan) {
        if self.last.is_some() {
            let phases: Vec<String> = self
                .phases
                .iter()
                .map(|(p, d)| format!("{p} {:.2} ms", d.as_secs_f64() * 1e3))
                .collect();
            tracing::info!(
                n,
                c = plan.c,
                windows = plan.windows,
                "msm phases: {}",
                phases.join(", ")
            );
            eprintln!("msm n={n} c={}: {}", plan.c, phases.join(", "));
        }
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
