//! `strata-index`: the algorithms of search, free of files and threads.
//!
//! * [`distance`]: distance kernels with run-time dispatch (AVX-512F, AVX2+FMA, portable),
//!   a scalar reference, and [`Metric`].
//! * [`topk`]: bounded top-k selection with a deterministic order.
//! * [`exact`]: brute-force scans over row-major vector blocks.
//!
//! HNSW, product quantization and the GPU builders arrive with later issues.
#![warn(missing_docs)]

pub mod distance;
pub mod exact;
pub mod hnsw;
pub mod kmeans;
pub mod pq;
pub mod topk;

pub use distance::Metric;
pub use topk::{Neighbor, TopK};
