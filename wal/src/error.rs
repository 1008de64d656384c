//! The WAL's error type.

use std::path::{Path, PathBuf};

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong writing or replaying the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on `path`.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Damage in `path` at `offset` that is not a torn tail.
    #[error("corrupt WAL file {} at offset {offset}: {kind}", path.display())]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Offset of the first bad byte found.
        offset: u64,
        /// What is wrong.
        kind: CorruptionKind,
    },
    /// An earlier write or fsync failed; the log refuses writes until reopened.
    #[error("the write-ahead log failed earlier and refuses writes until the store is reopened")]
    Poisoned,
    /// A record larger than the format allows.
    #[error("WAL record of {len} bytes exceeds the limit of {max}")]
    RecordTooLarge {
        /// Payload length asked for.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Kinds of WAL damage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The file header is damaged.
    #[error("bad file header")]
    BadHeader,
    /// A record fails its checksum or framing, and valid records follow it (or it is in
    /// a file that was completely synced), so it cannot be a torn tail.
    #[error("damaged record before the end of the log")]
    DamagedRecord,
    /// Sequence numbers jump: records are missing.
    #[error("sequence gap: expected {expected}, found {found}")]
    SequenceGap {
        /// Sequence number expected next.
        expected: u64,
        /// Sequence number found.
        found: u64,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
