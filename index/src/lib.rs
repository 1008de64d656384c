//! `strata-index`: the algorithms of search, free of files and threads.
//!
//! * [`distance`]: distance kernels with run-time dispatch (AVX-512F, AVX2+FMA, portable),
//!   a scalar reference, and [`Metric`].
//! * [`topk`]: bounded top-k selection with a deterministic order.
//! * [`exact`]: brute-force scans over row-major vector blocks.
//!
//! * [`hnsw`]: graph search and construction (incremental, or from neighbour lists).
//! * [`kmeans`], [`pq`]: k-means and product quantization; [`sq8`]: distances on
//!   8-bit scalar codes.
//! * [`gpu`]: where indexes are built, and the CUDA device (feature `gpu`).
//! * [`text`]: analyzers (text to terms) and BM25 scoring for full-text search.
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod distance;
pub mod exact;
pub mod gpu;
pub mod hnsw;
pub mod kmeans;
pub mod pq;
pub mod sq8;
pub mod text;
pub mod topk;

pub use distance::Metric;
pub use topk::{Neighbor, TopK};
