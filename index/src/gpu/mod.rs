//! Where segment indexes are built, and the GPU that can build them.
//!
//! [`BuildDevice`] is the user's choice. [`Gpu`] is the device: with the `gpu` feature a
//! CUDA device driven through `cudarc` (see `cuda.rs`), loaded at run time; without it a
//! type with no values, whose [`Gpu::shared`] always says why there is none. Either way
//! a caller that gets a [`GpuError`] builds on the CPU.

use std::fmt;
use std::str::FromStr;

/// Why the GPU could not do (or start) some work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuError(pub String);

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GpuError {}

/// Where to build segment indexes (PQ codebooks, codes, graph neighbour lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildDevice {
    /// The GPU when there is one and the segment is large enough to gain; else the CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// The GPU for every indexed segment; the CPU (with a warning) when it fails.
    Gpu,
}

impl BuildDevice {
    /// The lower-case name (`auto`, `cpu`, `gpu`).
    pub fn name(self) -> &'static str {
        match self {
            BuildDevice::Auto => "auto",
            BuildDevice::Cpu => "cpu",
            BuildDevice::Gpu => "gpu",
        }
    }
}

impl fmt::Display for BuildDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BuildDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(BuildDevice::Auto),
            "cpu" => Ok(BuildDevice::Cpu),
            "gpu" => Ok(BuildDevice::Gpu),
            other => Err(format!(
                "unknown build device {other:?}: expected auto, cpu or gpu"
            )),
        }
    }
}

/// The data-parallel primitives of a segment build: what a GPU does for it. A build
/// given kernels trains PQ with [`crate::pq::ProductQuantizer::train_batched`], encodes
/// with [`BuildKernels::nearest_codes`], and builds the graph with
/// [`crate::hnsw::build_from_lists`].
pub trait BuildKernels: Sync {
    /// Names the device, for reports.
    fn device_name(&self) -> String;
    /// [`crate::pq::nearest_codes`]'s result (distances always written).
    fn nearest_codes(
        &self,
        rows: &[f32],
        bounds: &[usize],
        centroids: &[f32],
        codes: &mut [u8],
        dists: &mut [f32],
    ) -> Result<(), GpuError>;
    /// [`crate::exact::earlier_neighbors`]'s result (up to near-ties).
    fn earlier_neighbors(&self, rows: &[f32], dim: usize, k: usize) -> Result<Vec<u32>, GpuError>;
}

/// The CPU references of the kernels: the GPU build's algorithm, run on the CPU. Slow
/// (neighbour lists are quadratic); for tests of the GPU path on machines without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceKernels;

impl BuildKernels for ReferenceKernels {
    fn device_name(&self) -> String {
        "CPU reference kernels".into()
    }

    fn nearest_codes(
        &self,
        rows: &[f32],
        bounds: &[usize],
        centroids: &[f32],
        codes: &mut [u8],
        dists: &mut [f32],
    ) -> Result<(), GpuError> {
        crate::pq::nearest_codes(rows, bounds, centroids, codes, Some(dists));
        Ok(())
    }

    fn earlier_neighbors(&self, rows: &[f32], dim: usize, k: usize) -> Result<Vec<u32>, GpuError> {
        Ok(crate::exact::earlier_neighbors(rows, dim, k))
    }
}

#[cfg(feature = "gpu")]
mod cuda;
#[cfg(feature = "gpu")]
pub use cuda::{compile, Gpu};

/// No GPU in a build without the `gpu` feature: this type has no values.
#[cfg(not(feature = "gpu"))]
#[derive(Debug)]
pub enum Gpu {}

#[cfg(not(feature = "gpu"))]
impl Gpu {
    /// Always an error naming the missing feature.
    pub fn shared() -> Result<&'static Gpu, GpuError> {
        Err(GpuError(
            "this build has no GPU support (built without the `gpu` feature)".into(),
        ))
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        match *self {}
    }
}

#[cfg(not(feature = "gpu"))]
impl BuildKernels for Gpu {
    fn device_name(&self) -> String {
        match *self {}
    }

    fn nearest_codes(
        &self,
        _rows: &[f32],
        _bounds: &[usize],
        _centroids: &[f32],
        _codes: &mut [u8],
        _dists: &mut [f32],
    ) -> Result<(), GpuError> {
        match *self {}
    }

    fn earlier_neighbors(
        &self,
        _rows: &[f32],
        _dim: usize,
        _k: usize,
    ) -> Result<Vec<u32>, GpuError> {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_device_names_round_trip() {
        for d in [BuildDevice::Auto, BuildDevice::Cpu, BuildDevice::Gpu] {
            assert_eq!(d.name().parse::<BuildDevice>(), Ok(d));
        }
        assert_eq!("GPU".parse::<BuildDevice>(), Ok(BuildDevice::Gpu));
        assert!("tpu"
            .parse::<BuildDevice>()
            .unwrap_err()
            .contains("auto, cpu or gpu"));
    }
}
