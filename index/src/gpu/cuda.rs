//! The GPU side of segment building (feature `gpu`): CUDA through `cudarc`, with the
//! driver and NVRTC loaded at run time, so a binary built with the feature starts and
//! builds on the CPU on a machine with no CUDA at all.
//!
//! Two primitives, each with a CPU reference it must agree with:
//! * [`Gpu::nearest_codes`] = [`crate::pq::nearest_codes`] (bit for bit);
//! * [`Gpu::earlier_neighbors`] = [`crate::exact::earlier_neighbors`] (up to rounding
//!   of near-ties: the GPU computes `|q|² + |x|² - 2 q·x`).
//!
//! Kernels (`kernels.cu`) are compiled once per process for the device's architecture.
//! Work is cut into batches that fit in the device memory free at the time, and one
//! build uses the device at a time. Every failure, including a panic inside `cudarc`
//! (a missing library symbol), comes back as a [`GpuError`]; callers fall back to the
//! CPU.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use parking_lot::Mutex;

use super::{BuildKernels, GpuError};
use crate::exact::NO_NEIGHBOR;
use crate::hnsw::MAX_CANDIDATES;
use crate::pq::KSUB;

const SOURCE: &str = include_str!("kernels.cu");
/// Threads per block of `pq_nearest` and `topk_merge` (`topk_merge` needs at most
/// 2048 - `MAX_CANDIDATES`).
const BLOCK: u32 = 256;
/// Threads per block of `l2_tile`: its 16 x 16 layout needs exactly 256.
const TILE_BLOCK: u32 = 256;
/// Data rows per distance tile (a multiple of the kernel's 64-row tile).
const TILE_ROWS: usize = 16_384;
/// Share of the free device memory one call plans to use.
const MEMORY_SHARE: f64 = 0.7;

/// An open CUDA device with Strata's kernels loaded.
pub struct Gpu {
    name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    pq_nearest: CudaFunction,
    l2_tile: CudaFunction,
    topk_merge: CudaFunction,
    /// One build on the device at a time (memory is planned per call).
    busy: Mutex<()>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("name", &self.name).finish()
    }
}

fn err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> GpuError + '_ {
    move |e| GpuError(format!("{what}: {e}"))
}

/// Runs `f`, turning a panic into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(GpuError(format!("{what}: {msg}")))
        }
    }
}

/// Compiles the kernels to PTX for `arch` (`compute_90`, say). Needs only NVRTC, not a
/// device: how the kernels are checked on machines without a GPU.
pub fn compile(arch: &str) -> Result<usize, GpuError> {
    guarded("compiling the kernels", || {
        // SAFETY: only probes whether the shared library can be loaded.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(GpuError("NVRTC (libnvrtc) not found".into()));
        }
        let opts = cudarc::nvrtc::CompileOptions {
            options: vec![format!("--gpu-architecture={arch}")],
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map_err(|e| GpuError(format!("NVRTC: {e}")))?;
        Ok(ptx.to_src().len())
    })
}

impl Gpu {
    /// The process's GPU: opened (device 0, kernels compiled) on first use; the error of
    /// that first attempt is kept and returned on every later call.
    pub fn shared() -> Result<&'static Gpu, GpuError> {
        static GPU: OnceLock<Result<Gpu, GpuError>> = OnceLock::new();
        GPU.get_or_init(|| guarded("opening the GPU", Gpu::open))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn open() -> Result<Gpu, GpuError> {
        // SAFETY: only probes whether the shared library can be loaded.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(GpuError("no CUDA driver (libcuda) on this machine".into()));
        }
        let count = CudaContext::device_count().map_err(err("counting CUDA devices"))?;
        if count < 1 {
            return Err(GpuError("no CUDA device".into()));
        }
        let ctx = CudaContext::new(0).map_err(err("opening CUDA device 0"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(err("reading the compute capability"))?;
        let name = ctx.name().map_err(err("reading the device name"))?;
        // SAFETY: only probes whether the shared library can be loaded.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(GpuError(format!("{name}: NVRTC (libnvrtc) not found")));
        }
        let opts = cudarc::nvrtc::CompileOptions {
            options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts)
            .map_err(|e| GpuError(format!("NVRTC: {e}")))?;
        let module = ctx.load_module(ptx).map_err(err("loading the kernels"))?;
        let load = |k: &str| module.load_function(k).map_err(err(k));
        Ok(Gpu {
            name: format!("{name} (sm_{major}{minor})"),
            stream: ctx.default_stream(),
            pq_nearest: load("pq_nearest")?,
            l2_tile: load("l2_tile")?,
            topk_merge: load("topk_merge")?,
            ctx,
            busy: Mutex::new(()),
        })
    }

    /// The device's name and architecture.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes one call may plan to use.
    fn budget(&self) -> Result<usize, GpuError> {
        let (free, _) = self
            .ctx
            .mem_get_info()
            .map_err(err("reading free memory"))?;
        Ok((free as f64 * MEMORY_SHARE) as usize)
    }

    fn nearest_codes_locked(
        &self,
        rows: &[f32],
        bounds: &[usize],
        centroids: &[f32],
        codes: &mut [u8],
        dists: &mut [f32],
    ) -> Result<(), GpuError> {
        let m = bounds.len().saturating_sub(1);
        let dim = bounds.last().copied().unwrap_or(0);
        let n = rows.len().checked_div(dim).unwrap_or(0);
        if m == 0 || n == 0 {
            return Ok(());
        }
        if centroids.len() != KSUB * dim || codes.len() < n * m || dists.len() < n * m {
            return Err(GpuError("PQ: buffer sizes do not match".into()));
        }
        let s = &self.stream;
        let b: Vec<i32> = bounds.iter().map(|&x| x as i32).collect();
        let d_bounds = s.clone_htod(&b).map_err(err("copying bounds"))?;
        let d_cent = s.clone_htod(centroids).map_err(err("copying centroids"))?;
        let per_row = dim * 4 + m * 5;
        let batch = (self.budget()? / per_row)
            .clamp(1, n)
            .min(i32::MAX as usize / m.max(1));
        for start in (0..n).step_by(batch) {
            let r = batch.min(n - start);
            let d_rows = s
                .clone_htod(&rows[start * dim..(start + r) * dim])
                .map_err(err("copying rows"))?;
            let mut d_codes: CudaSlice<u8> =
                s.alloc_zeros(r * m).map_err(err("allocating codes"))?;
            let mut d_dists: CudaSlice<f32> =
                s.alloc_zeros(r * m).map_err(err("allocating distances"))?;
            let (rn, di, mi) = (r as i64, dim as i32, m as i32);
            let total = (r * m) as u32;
            let cfg = LaunchConfig {
                grid_dim: (total.div_ceil(BLOCK), 1, 1),
                block_dim: (BLOCK, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut l = s.launch_builder(&self.pq_nearest);
            l.arg(&d_rows)
                .arg(&rn)
                .arg(&di)
                .arg(&mi)
                .arg(&d_bounds)
                .arg(&d_cent)
                .arg(&mut d_codes)
                .arg(&mut d_dists);
            // SAFETY: the arguments match `pq_nearest`'s parameters in number, order and
            // type (pointers to r*dim floats, m+1 ints, KSUB*dim floats, r*m bytes and
            // r*m floats; n as long long; dim and m as int), and the grid covers r*m
            // threads, each guarded by `t < n * m`.
            unsafe { l.launch(cfg) }.map_err(err("launching pq_nearest"))?;
            let c = s.clone_dtoh(&d_codes).map_err(err("copying codes back"))?;
            let d = s
                .clone_dtoh(&d_dists)
                .map_err(err("copying distances back"))?;
            codes[start * m..(start + r) * m].copy_from_slice(&c);
            dists[start * m..(start + r) * m].copy_from_slice(&d);
        }
        Ok(())
    }

    fn earlier_neighbors_locked(
        &self,
        rows: &[f32],
        dim: usize,
        k: usize,
    ) -> Result<Vec<u32>, GpuError> {
        let n = rows.len().checked_div(dim).unwrap_or(0);
        let mut out = vec![NO_NEIGHBOR; n * k];
        if n == 0 || k == 0 {
            return Ok(out);
        }
        if k > MAX_CANDIDATES {
            return Err(GpuError(format!(
                "{k} candidates is more than {MAX_CANDIDATES}"
            )));
        }
        if n > u32::MAX as usize - 1 || dim > i32::MAX as usize {
            return Err(GpuError("too many rows for the GPU kernels".into()));
        }
        let s = &self.stream;
        let norms: Vec<f32> = rows
            .chunks_exact(dim)
            .map(|v| crate::distance::dot(v, v))
            .collect();
        let d_rows = s.clone_htod(rows).map_err(err("copying rows"))?;
        let d_norms = s.clone_htod(&norms).map_err(err("copying norms"))?;
        let tile = TILE_ROWS.min(n.next_multiple_of(64));
        // Per query: one distance-tile row and its list (distance and row).
        let per_query = tile * 4 + k * 8;
        let batch = (self.budget()? / per_query).clamp(64, 65_535 * 64).min(n);
        let mut d_tile: CudaSlice<f32> = s
            .alloc_zeros(batch * tile)
            .map_err(err("allocating a distance tile"))?;
        let (inf_d, none_i) = (vec![f32::INFINITY; batch * k], vec![NO_NEIGHBOR; batch * k]);
        let mut best_d = s.clone_htod(&inf_d).map_err(err("allocating lists"))?;
        let mut best_i = s.clone_htod(&none_i).map_err(err("allocating lists"))?;
        let (di, ki) = (dim as i32, k as i32);
        for q0 in (0..n).step_by(batch) {
            let nq = batch.min(n - q0);
            s.memcpy_htod(&inf_d, &mut best_d)
                .map_err(err("resetting lists"))?;
            s.memcpy_htod(&none_i, &mut best_i)
                .map_err(err("resetting lists"))?;
            // Only rows before the batch's last query can be anyone's neighbour.
            let end = q0 + nq - 1;
            for d0 in (0..end).step_by(tile) {
                let nd = tile.min(end - d0);
                let (q0l, nqi, d0l, ndi) = (q0 as i64, nq as i32, d0 as i64, nd as i32);
                let cfg = LaunchConfig {
                    grid_dim: ((nd as u32).div_ceil(64), (nq as u32).div_ceil(64), 1),
                    block_dim: (TILE_BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut l = s.launch_builder(&self.l2_tile);
                l.arg(&d_rows)
                    .arg(&d_norms)
                    .arg(&di)
                    .arg(&q0l)
                    .arg(&nqi)
                    .arg(&d0l)
                    .arg(&ndi)
                    .arg(&mut d_tile);
                // SAFETY: arguments match `l2_tile` (rows: n*dim floats, norms: n floats,
                // dim int, q0 long long, nq int, d0 long long, nd int, D: at least
                // nq*nd floats); q0+nq and d0+nd are at most n; the grid covers the
                // nq x nd tile in 64 x 64 blocks of 256 threads, each index guarded.
                unsafe { l.launch(cfg) }.map_err(err("launching l2_tile"))?;
                let cfg = LaunchConfig {
                    grid_dim: (nq as u32, 1, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut l = s.launch_builder(&self.topk_merge);
                l.arg(&d_tile)
                    .arg(&ndi)
                    .arg(&d0l)
                    .arg(&ki)
                    .arg(&mut best_d)
                    .arg(&mut best_i);
                // SAFETY: arguments match `topk_merge` (D: nq rows of nd floats, nd int,
                // d0 long long, k int, best_d/best_i: at least nq*k entries); one block
                // per query row, k <= 256 and 256 threads fit its 2048-entry buffer.
                unsafe { l.launch(cfg) }.map_err(err("launching topk_merge"))?;
            }
            let got = s.clone_dtoh(&best_i).map_err(err("copying lists back"))?;
            out[q0 * k..(q0 + nq) * k].copy_from_slice(&got[..nq * k]);
        }
        s.synchronize().map_err(err("finishing"))?;
        Ok(out)
    }
}

impl BuildKernels for Gpu {
    fn device_name(&self) -> String {
        self.name.clone()
    }

    /// What [`crate::pq::nearest_codes`] computes, on the device: for every row of
    /// `rows` and sub-vector `j`, the nearest of sub-quantizer `j`'s centroids and its
    /// squared distance. Rows go over in batches that fit the free memory.
    fn nearest_codes(
        &self,
        rows: &[f32],
        bounds: &[usize],
        centroids: &[f32],
        codes: &mut [u8],
        dists: &mut [f32],
    ) -> Result<(), GpuError> {
        let _one = self.busy.lock();
        guarded("PQ on the GPU", || {
            self.nearest_codes_locked(rows, bounds, centroids, codes, dists)
        })
    }

    /// What [`crate::exact::earlier_neighbors`] computes, on the device: for every row,
    /// its `k` nearest earlier rows (`k <= MAX_CANDIDATES`), nearest first, padded with
    /// [`NO_NEIGHBOR`]. Queries go in batches sized to the free memory; each batch
    /// streams over the earlier rows a tile at a time.
    fn earlier_neighbors(&self, rows: &[f32], dim: usize, k: usize) -> Result<Vec<u32>, GpuError> {
        let _one = self.busy.lock();
        guarded("neighbour lists on the GPU", || {
            self.earlier_neighbors_locked(rows, dim, k)
        })
    }
}
