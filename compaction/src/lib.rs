//! `strata-compaction`: what to merge and how.
//!
//! * [`policy`]: a pure function from segment metadata to the next compaction
//!   (size-tiered merges that bound the segment count; rewrites of segments whose
//!   tombstone ratio passes a threshold).
//! * [`mod@merge`]: the job that reads the live rows of input segments and writes one
//!   output segment, with a stop signal and progress reports.
//! * [`build`]: the segment builder shared with flushes (PQ training, encoding, graph).
//!
//! The engine runs the job on its own threads and installs the result in the manifest.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod build;
pub mod merge;
pub mod policy;

pub use build::{
    BuildReport, BuiltIndex, IndexOptions, Progress, SegmentRows, Stage, WalkCodes, WalkOn,
};
pub use merge::{merge, MergeOutcome, MergeSource, MergeSpec, Merged};
pub use policy::{choose, choose_full, plan, Choice, Planned, PolicyOptions, Reason, SegmentMeta};
pub use strata_index::gpu::BuildDevice;
