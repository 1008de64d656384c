//! `strata::Error`: what a caller can act on.

use std::path::PathBuf;
use std::sync::Arc;

/// " on PATH", or nothing for an error that names no file.
fn on_path(p: &std::path::Path) -> String {
    if p.as_os_str().is_empty() {
        String::new()
    } else {
        format!(" on {}", p.display())
    }
}

/// Result alias of the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in a store.
///
/// Each message names what failed at its own level; a lower-level cause (the OS error of
/// [`Error::Io`], the first failure of [`Error::Poisoned`]) is the error's
/// [`source`](std::error::Error::source) and is not repeated in the message. Print the
/// whole chain (anyhow's `{:#}`, or walk `source()`) to see both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on `path`.
    #[error("I/O error{}", on_path(path))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the store is damaged at `offset`.
    #[error("corrupt file {} at offset {offset}: {kind}", path.display())]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Offset of the first fault.
        offset: u64,
        /// What is wrong.
        kind: CorruptionKind,
    },
    /// A caller-supplied value is unacceptable; nothing was changed. The reason is part
    /// of the message (it is not also the error's source).
    #[error("invalid argument: {0}")]
    InvalidArgument(InvalidArgument),
    /// Another process (or another handle in this one) has the store open.
    #[error("store {} is locked by another process (is it open elsewhere?)", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The store is already open through another handle in this process (a store has
    /// one writer at a time; share one [`Db`](crate::Db) with `Arc`).
    #[error("store {} is already open in this process (share one handle, or close the other first)", path.display())]
    AlreadyOpen {
        /// The store directory.
        path: PathBuf,
    },
    /// Creating a store in a directory that holds other files: a store never deletes or
    /// overwrites a file it did not create, so it is only created in an empty (or new)
    /// directory.
    #[error("the directory {} is not empty and holds no store (found {entry:?}); a store is created only in a new or empty directory", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// One entry found in it.
        entry: String,
    },
    /// A checkpoint's destination exists and holds files.
    #[error("the destination {} is not empty (found {entry:?}); give a new or empty directory", path.display())]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
        /// One entry found in it.
        entry: String,
    },
    /// No store exists at `path` and no schema was given to create one.
    #[error("no store at {} (create one with a dimension and metric)", path.display())]
    NotFound {
        /// The directory looked at.
        path: PathBuf,
    },
    /// An earlier write, fsync or background flush failed; the store refuses writes until
    /// it is reopened (the failed operation was not acknowledged). The first failure is
    /// the error's [`source`](std::error::Error::source).
    #[error("the store refuses writes after an earlier failure; reopen it to recover")]
    Poisoned {
        /// The failure that stopped the store, when it is known.
        #[source]
        cause: Option<Arc<Error>>,
    },
    /// A fault inside Strata itself (a background thread panicked); the store stops.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// The store's bucket failed (after the client's retries), holds damaged commits, or
    /// another writer took the store over ([`strata_remote::Error::Fenced`]).
    #[cfg(feature = "remote")]
    #[error(transparent)]
    Remote(Arc<strata_remote::Error>),
    /// The directory does not follow its bucket's newest commit `seq`: another writer
    /// took the store over, or the directory was written without its bucket. Nothing was
    /// changed; restore into a new directory (`strata restore`).
    #[cfg(feature = "remote")]
    #[error("the store {} does not follow its bucket's newest commit {seq} (another writer took it over, or it was written without the bucket); restore the bucket into a new directory", path.display())]
    RemoteDiverged {
        /// The store directory.
        path: PathBuf,
        /// The bucket's newest commit.
        seq: u64,
    },
}

#[cfg(feature = "remote")]
impl From<strata_remote::Error> for Error {
    fn from(e: strata_remote::Error) -> Self {
        Error::Remote(Arc::new(e))
    }
}

/// Kinds of damage, from the layer that found them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// Found by a segment, deletion-file or manifest decoder.
    #[error("{0}")]
    Format(strata_format::CorruptionKind),
    /// Found by WAL replay.
    #[error("{0}")]
    Wal(strata_wal::CorruptionKind),
    /// A WAL record's batch does not decode.
    #[error("malformed write batch: {0}")]
    Batch(&'static str),
    /// A file the manifest names is missing.
    #[error("file named by the manifest is missing")]
    MissingFile,
    /// Files disagree with each other or with the manifest.
    #[error("inconsistent store: {0}")]
    Inconsistent(&'static str),
}

/// The largest Euclidean norm a stored or query vector may have. Squared L2 distances
/// between vectors within it stay below `4e36` and inner products below `1e36`, far from
/// `f32::MAX` (about `3.4e38`), so every distance is finite.
pub const MAX_VECTOR_NORM: f64 = 1e18;

/// Why an argument was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidArgument {
    /// A vector's length differs from the store's dimension.
    #[error("vector has dimension {got}, the store has {expected}")]
    DimensionMismatch {
        /// The store's dimension.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// A vector holds NaN or infinity.
    #[error("vector component {index} is not finite")]
    NonFinite {
        /// Position of the first bad component.
        index: usize,
    },
    /// A zero vector cannot be normalised for the cosine metric.
    #[error("a zero vector has no direction (cosine metric)")]
    ZeroVector,
    /// A payload over the size limit.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// BM25 parameters out of range (`k1` finite and at least 0, `b` from 0 to 1).
    #[error("invalid BM25 parameters k1 = {k1}, b = {b} (k1 must be finite and at least 0, b from 0 to 1)")]
    Bm25 {
        /// The `k1` asked for.
        k1: f32,
        /// The `b` asked for.
        b: f32,
    },
    /// [`crate::Db::calibrate`] was given fewer queries than it needs.
    #[error("calibration needs at least {min} queries, got {got}")]
    TooFewCalibrationQueries {
        /// Queries given.
        got: usize,
        /// [`crate::Db::MIN_CALIBRATION_QUERIES`].
        min: usize,
    },
    /// A recall sampling fraction outside (0, 1].
    #[error("recall sampling fraction {0} is not in (0, 1]")]
    RecallSampling(f64),
    /// `Durability::Bucket` as the default of a store not kept in a bucket.
    #[error("Durability::Bucket needs a store kept in a bucket (Options::remote)")]
    BucketDurability,
    /// A target recall outside (0, 1].
    #[error("target recall {0} is not in (0, 1]")]
    TargetRecall(f64),
    /// Hybrid-search fusion parameters out of range (weights finite and non-negative,
    /// `alpha` in [0, 1]).
    #[error("invalid fusion parameters: {0}")]
    Fusion(String),
    /// A record's text over the size limit.
    #[error("text of {len} bytes exceeds the limit of {max}")]
    TextTooLarge {
        /// Text length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A write batch too large to log as one record.
    #[error("write batch of {bytes} bytes exceeds the limit of {max}; split it")]
    BatchTooLarge {
        /// Encoded size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A vector whose Euclidean norm exceeds [`MAX_VECTOR_NORM`]: distances between such
    /// vectors can overflow `f32`.
    #[error("vector norm {norm:e} exceeds the limit of {max:e} (distances could overflow)")]
    NormTooLarge {
        /// The vector's norm (computed in `f64`).
        norm: f64,
        /// [`MAX_VECTOR_NORM`].
        max: f64,
    },
    /// One operation of a write batch was refused (so the whole batch was): which one,
    /// its id or key, and why.
    #[error("batch row {index} ({}): {reason}", match key { Some(k) => format!("key {k:?}"), None => format!("id {id}") })]
    InBatch {
        /// Position of the operation in the batch, from 0.
        index: usize,
        /// The operation's id (0 for an operation by string key).
        id: u64,
        /// The operation's string key, in a store of string keys.
        key: Option<String>,
        /// Why it was refused.
        reason: Box<InvalidArgument>,
    },
    /// A filter that does not parse or does not type-check.
    #[error("filter at `{path}`: expected {expected}")]
    Filter {
        /// Where in the filter (field path, operator, list index).
        path: String,
        /// What was expected there.
        expected: String,
    },
    /// Metadata the model does not hold.
    #[error("metadata at `{path}`: expected {expected}")]
    Metadata {
        /// Where in the metadata (dotted path, list index).
        path: String,
        /// What was expected there.
        expected: String,
    },
    /// An operation by `u64` id on a store of string keys, or by string key on a store
    /// of `u64` ids.
    #[error("the store's records have {store} keys; this call gives a {given} key (use the {hint} calls)")]
    KeyKind {
        /// The store's kind (`u64` or `string`).
        store: &'static str,
        /// The kind the call gave.
        given: &'static str,
        /// Which calls fit the store.
        hint: &'static str,
    },
    /// A string key that is empty or longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN)
    /// bytes.
    #[error("a key of {len} bytes: keys are 1 to {max} bytes of UTF-8")]
    KeyLength {
        /// The key's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Opening an existing store with another kind of key than it was created with.
    #[error("the store has {stored} keys; {asked} keys were asked for")]
    KeysMismatch {
        /// The store's kind.
        stored: &'static str,
        /// The kind asked for.
        asked: &'static str,
    },
    /// Opening an existing store with another text analyzer than it was created with.
    #[error("the store analyzes text with the {stored} analyzer; {asked} was asked for")]
    AnalyzerMismatch {
        /// The store's analyzer.
        stored: &'static str,
        /// The analyzer asked for.
        asked: &'static str,
    },
    /// Opening an existing store with another vector codec than it was created with.
    #[error("the store keeps {stored} vectors; {asked} was asked for")]
    VectorCodecMismatch {
        /// The store's codec.
        stored: &'static str,
        /// The codec asked for.
        asked: &'static str,
    },
    /// A dimension of zero or above the format's limit.
    #[error("dimension {0} is out of range (1..=65536)")]
    Dimension(usize),
    /// Opening an existing store with a different schema.
    #[error("the store has dimension {dim} and metric {metric}; {asked_dim} and {asked_metric} were asked for")]
    SchemaMismatch {
        /// Stored dimension.
        dim: usize,
        /// Stored metric name.
        metric: &'static str,
        /// Requested dimension.
        asked_dim: usize,
        /// Requested metric name.
        asked_metric: &'static str,
    },
}

impl InvalidArgument {
    /// The reason itself: for [`InvalidArgument::InBatch`], the refused operation's reason;
    /// otherwise `self`.
    pub fn reason(&self) -> &InvalidArgument {
        match self {
            InvalidArgument::InBatch { reason, .. } => reason.reason(),
            other => other,
        }
    }
}

impl From<strata_format::metadata::MetadataError> for InvalidArgument {
    fn from(e: strata_format::metadata::MetadataError) -> Self {
        InvalidArgument::Metadata {
            path: e.path,
            expected: e.expected,
        }
    }
}

impl From<strata_format::metadata::MetadataError> for Error {
    fn from(e: strata_format::metadata::MetadataError) -> Self {
        Error::InvalidArgument(e.into())
    }
}

impl From<InvalidArgument> for Error {
    fn from(e: InvalidArgument) -> Self {
        Error::InvalidArgument(e)
    }
}

impl From<strata_format::Error> for Error {
    fn from(e: strata_format::Error) -> Self {
        match e {
            strata_format::Error::Io { path, source } => Error::Io { path, source },
            strata_format::Error::Corruption { path, offset, kind } => Error::Corruption {
                path,
                offset,
                kind: CorruptionKind::Format(kind),
            },
            other => Error::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

impl From<strata_wal::Error> for Error {
    fn from(e: strata_wal::Error) -> Self {
        match e {
            strata_wal::Error::Io { path, source } => Error::Io { path, source },
            strata_wal::Error::Corruption { path, offset, kind } => Error::Corruption {
                path,
                offset,
                kind: CorruptionKind::Wal(kind),
            },
            strata_wal::Error::Poisoned => Error::Poisoned { cause: None },
            strata_wal::Error::RecordTooLarge { len, max } => {
                Error::InvalidArgument(InvalidArgument::BatchTooLarge { bytes: len, max })
            }
            other => Error::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A copy of this error to keep (as a poisoned store's cause) while the original goes
    /// to the caller that hit it. An I/O error keeps its kind, OS code and message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: strata_vfs::copy_io_error(source),
            },
            Error::Corruption { path, offset, kind } => Error::Corruption {
                path: path.clone(),
                offset: *offset,
                kind: kind.clone(),
            },
            Error::InvalidArgument(a) => Error::InvalidArgument(a.clone()),
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::AlreadyOpen { path } => Error::AlreadyOpen { path: path.clone() },
            Error::NotAStore { path, entry } => Error::NotAStore {
                path: path.clone(),
                entry: entry.clone(),
            },
            Error::DestinationNotEmpty { path, entry } => Error::DestinationNotEmpty {
                path: path.clone(),
                entry: entry.clone(),
            },
            Error::NotFound { path } => Error::NotFound { path: path.clone() },
            Error::Poisoned { cause } => Error::Poisoned {
                cause: cause.clone(),
            },
            Error::Closed => Error::Closed,
            Error::Internal(what) => Error::Internal(what.clone()),
            #[cfg(feature = "remote")]
            Error::Remote(e) => Error::Remote(e.clone()),
            #[cfg(feature = "remote")]
            Error::RemoteDiverged { path, seq } => Error::RemoteDiverged {
                path: path.clone(),
                seq: *seq,
            },
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}
