//! `strata-format`: every byte Strata puts on disk, and nothing else.
//!
//! * [`segment`]: the immutable segment container (header, sections with CRC32, section
//!   table, footer) written by a flush and read back as zero-copy views over an mmap.
//! * [`deletion`]: deletion-bitmap files, one version per segment per flush.
//! * [`manifest`]: the single file that says which files are live.
//! * [`metadata`]: records' typed metadata, its JSON form and its binary encoding.
//! * [`field_index`]: the metadata index of a segment's rows (values to row bitmaps,
//!   sorted number columns) and its encoding.
//! * [`text_index`]: the full-text index of a segment's rows (term dictionary, block-coded
//!   postings with score bounds, row lengths) and its encoding.
//!
//! Files are read and written through the I/O seam of `strata-vfs`.
//!
//! The byte layouts are specified in `docs/format.md`; change both together.
//! Decoders never panic on hostile bytes: they return [`Error::Corruption`] naming the
//! file and the offset of the fault.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![warn(missing_docs)]

#[cfg(not(target_endian = "little"))]
compile_error!(
    "Strata's zero-copy views read little-endian files in place: a little-endian host is required"
);

pub mod codec;
pub mod deletion;
pub mod error;
pub mod field_index;
pub mod fsutil;
pub mod manifest;
pub mod metadata;
pub mod segment;
pub mod text_index;
pub mod vector_codec;

pub use deletion::DeletionBitmap;
pub use error::{CorruptionKind, Error, Result};
pub use manifest::{Manifest, SegmentEntry};
pub use segment::{SegmentReader, SegmentWriteInput};
pub use vector_codec::VectorCodec;

/// Rounds `n` up to the next multiple of `align` (a power of two).
pub const fn align_up(n: u64, align: u64) -> u64 {
    (n + align - 1) & !(align - 1)
}
