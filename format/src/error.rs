//! The format crate's error type: I/O with a path, or corruption with file and offset.

use std::path::{Path, PathBuf};

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong reading or writing a Strata file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on `path`.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes of `path` at `offset` are not what the format allows.
    #[error("corrupt file {} at offset {offset}: {kind}", path.display())]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first fault found.
        offset: u64,
        /// What is wrong there.
        kind: CorruptionKind,
    },
}

/// The kinds of damage a decoder recognises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The magic bytes do not match the file kind.
    #[error("bad magic bytes")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported format version {found} (this build reads {min}..={max})")]
    UnsupportedVersion {
        /// Version found in the file.
        found: u32,
        /// Oldest version read.
        min: u32,
        /// Newest version read.
        max: u32,
    },
    /// A CRC32 does not match its data.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum of the bytes as read.
        computed: u32,
    },
    /// The file length disagrees with what its footer or header records.
    #[error("file is {actual} bytes, expected {expected}")]
    Length {
        /// Length the metadata implies.
        expected: u64,
        /// Length on disk.
        actual: u64,
    },
    /// A read would run past the end of the data.
    #[error("truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// A field holds a value the format forbids.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A corruption error for `path` at `offset`.
    pub fn corrupt(path: &Path, offset: u64, kind: CorruptionKind) -> Self {
        Error::Corruption {
            path: path.to_path_buf(),
            offset,
            kind,
        }
    }
}

/// A decode fault before its file is known; [`DecodeError::at`] names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset of the fault within the decoded buffer (plus the buffer's base).
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
}

impl DecodeError {
    /// Attaches the file path.
    pub fn at(self, path: &Path) -> Error {
        Error::corrupt(path, self.offset, self.kind)
    }
}
