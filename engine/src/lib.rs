//! Strata: an embedded, disk-resident vector store.
//!
//! Writes go to a CRC-framed write-ahead log and an in-memory memtable; full memtables
//! are flushed in the background to immutable, memory-mapped segment files; deletes are
//! soft tombstones kept in per-segment deletion bitmaps. A search takes a snapshot and
//! never blocks writers. See `ARCHITECTURE.md` for the tour and `docs/durability.md`
//! for what each [`Durability`] mode survives.
//!
//! ```
//! use strata::{Db, Metric, Options, SearchOptions, WriteBatch};
//!
//! # fn main() -> strata::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::new(3, Metric::L2))?;
//! db.upsert(1, &[0.0, 0.0, 1.0])?;
//! let mut batch = WriteBatch::new();
//! batch.upsert_with_payload(2, &[0.0, 1.0, 0.0], b"two").delete(1);
//! db.write(batch)?; // atomic: all or nothing after a crash
//!
//! let hits = db.search(&[0.0, 0.9, 0.1], &SearchOptions::new(5))?;
//! assert_eq!(hits[0].id, 2);
//! assert_eq!(db.get(2)?.unwrap().payload.as_deref(), Some(&b"two"[..]));
//! db.close()?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

mod batch;
mod calibrate;
mod calibration;
mod checkpoint;
mod commit;
mod compaction;
mod db;
mod error;
mod field_index;
mod files;
mod filter;
mod flush;
mod hybrid;
mod inner;
mod inventory;
mod keys;
mod live_segment;
mod lookup;
mod mem_text;
mod memtable;
mod metrics;
mod observed_recall;
mod options;
mod priority;
mod read_only;
mod record;
mod records;
mod recovery;
mod repair;
mod search;
mod segment_index;
mod stats;
mod text_search;
mod text_stats;
mod validate;
mod verify;
mod version;
mod visited;

#[cfg(feature = "tokio")]
mod async_db;
#[cfg(feature = "remote")]
mod remote;
#[cfg(feature = "remote")]
pub mod replica;

#[cfg(feature = "tokio")]
pub use async_db::AsyncDb;
pub use batch::{Op, WriteBatch};
pub use calibration::{CalibrationSource, SegmentCalibration};
pub use checkpoint::CheckpointReport;
pub use db::Db;
pub use error::{CorruptionKind, Error, InvalidArgument, Result, MAX_VECTOR_NORM};
pub use filter::{Cmp, Filter, MAX_FILTER_DEPTH};
pub use hybrid::{Fusion, FusionMethod};
pub use keys::{check_key, MAX_KEY_LEN};
pub use observed_recall::{ObservedRecall, RecallEstimate, RecallSampling};
pub use options::{
    CompactionOptions, Durability, KeyKind, Metric, Options, Schema, SearchOptions, WriteOptions,
};
pub use read_only::ReadOnlyDb;
pub use record::{Hit, Record};
pub use records::{FieldSummary, ScanPage};
#[cfg(feature = "remote")]
pub use remote::{restore, restore_with, RestoreReport};
pub use repair::{repair, repair_with, RepairAction};
#[cfg(feature = "remote")]
pub use replica::{Replica, ReplicaStats};
pub use stats::{
    CompactionReport, CompactionStats, GaugeValue, IndexSummary, SegmentStats, Stats, WriteStats,
};
pub use strata_compaction::{
    BuildDevice, BuildReport, IndexOptions, PolicyOptions, Reason as CompactionReason, Stage,
    WalkCodes,
};
pub use strata_format::metadata::{
    MetaValue, Metadata, MetadataError, MAX_METADATA_BYTES, MAX_METADATA_DEPTH,
};
pub use strata_format::segment::{describe_built_by, Prefetch, MAX_TEXT_LEN};
pub use strata_format::VectorCodec;
pub use strata_index::hnsw::HnswParams;
pub use strata_index::text::{Analyzer, Bm25};
#[cfg(feature = "remote")]
pub use strata_remote::{self as remote_store, RemoteConfig};
pub use verify::{verify, verify_with, VerifyReport};

/// The GPU segment builds would use: its name, or why there is none (no `gpu` feature
/// in this build, no CUDA driver, no device, NVRTC missing). Opens the device on first
/// call.
pub fn gpu_status() -> std::result::Result<String, String> {
    strata_index::gpu::Gpu::shared()
        .map(|g| g.name().to_string())
        .map_err(|e| e.0)
}

/// The I/O seam: the real, simulated and fault-injecting file systems a store can run
/// over ([`Options::vfs`]).
pub mod vfs {
    pub use strata_vfs::*;
}

/// The distance kernels chosen for this CPU (`avx512f`, `avx2+fma` or `portable`).
pub fn kernel_name() -> &'static str {
    strata_index::distance::kernels().name
}

#[cfg(test)]
mod tests {
    #[test]
    fn db_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::Db>();
    }
}

/// The README's Rust example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
