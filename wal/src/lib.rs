//! `strata-wal`: Strata's write-ahead log.
//!
//! * I/O goes through the `strata-vfs` seam; the engine passes its own file system.
//! * [`record`]: the byte framing (file header with a per-file salt, CRC32-framed records).
//! * [`writer`]: [`Wal`], appends with group commit ([`Wal::sync_to`]), rollover, and a
//!   sticky error after any failed write or fsync.
//! * [`mod@replay`]: reads the log back, truncating a torn tail and reporting damage before
//!   the last valid record as corruption.
//!
//! The log stores opaque payloads; the engine decides what a record means. This crate
//! starts no threads: the engine drives periodic syncs.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod record;
pub mod replay;
pub mod writer;

pub use error::{CorruptionKind, Error, Result};
pub use replay::{replay, ReplayError, ReplayMode, ReplayReport, WalRecord};
pub use writer::{Lsn, Wal};

/// File name of WAL file number `no`.
pub fn file_name(no: u64) -> String {
    format!("{no:06}.wal")
}
