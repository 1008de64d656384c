//! `strata-format`: every byte Strata puts on disk, and nothing else.
//!
//! * [`segment`]: the immutable segment container (header, sections with CRC32, section
//!   table, footer) written by a flush and read back as zero-copy views over an mmap.
//! * [`deletion`]: deletion-bitmap files, one version per segment per flush.
//! * [`manifest`]: the single file that says which files are live.
//! * [`bytes`]: the one cheap, cloneable, bounds-checked handle over an mmap.
//! * [`vfs`]: the I/O seam every file operation goes through (real, simulated, faulty).
//!
//! The byte layouts are specified in `docs/format.md`; change both together.
//! Decoders never panic on hostile bytes: they return [`Error::Corruption`] naming the
//! file and the offset of the fault.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![warn(missing_docs)]

#[cfg(not(target_endian = "little"))]
compile_error!(
    "Strata's zero-copy views read little-endian files in place: a little-endian host is required"
);

pub mod bytes;
pub mod codec;
pub mod deletion;
pub mod error;
pub mod fsutil;
pub mod manifest;
pub mod segment;
pub mod vfs;

pub use bytes::MappedBytes;
pub use deletion::DeletionBitmap;
pub use error::{CorruptionKind, Error, Result};
pub use manifest::{Manifest, SegmentEntry};
pub use segment::{SegmentReader, SegmentWriteInput};
pub use vfs::{Vfs, VfsFile};

/// Rounds `n` up to the next multiple of `align` (a power of two).
pub const fn align_up(n: u64, align: u64) -> u64 {
    (n + align - 1) & !(align - 1)
}
