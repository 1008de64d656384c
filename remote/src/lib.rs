//! `strata-remote`: a store kept in a bucket (S3, GCS, Azure Blob, or a local folder)
//! through the `object_store` crate.
//!
//! The bucket is the store's source of truth. A writing session (one [`RemoteWriter`])
//! uploads every segment and deletion file under its own epoch before the commit that
//! names it, then commits with a create-only put of `manifest/<seq>`: of two sessions
//! racing for a sequence number the bucket lets exactly one win, and the loser stops
//! ([`Error::Fenced`]) without overwriting anything. A local store directory remembers
//! which bucket store and session it belongs to in its `REMOTE` file ([`Attachment`]).
//! Object names: [`names`]; byte layouts: `docs/remote.md`.

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

mod attachment;
mod bucket;
mod envelope;
mod log;
pub mod names;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

pub use attachment::{Attachment, FILE as ATTACHMENT_FILE};
pub use bucket::{Bucket, Listed, Put, PART_BYTES};
pub use envelope::{EnvelopeError, RemoteFile, RemoteManifest};
pub use log::{LogHeader, LogObject, LogRecord};
pub use names::FileKind;
pub use writer::{read_log_after, CommitReport, FenceReport, GcReport, RemoteWriter};

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How long an object no commit needs is kept before it is collected, by default.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(600);

/// Where a store's bucket is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `file:///absolute/folder` or `memory:///`.
    pub url: String,
    /// `object_store` configuration keys and values (`aws_endpoint`, `aws_region`,
    /// `aws_allow_http`, `aws_access_key_id`, …), applied after the environment's.
    pub options: Vec<(String, String)>,
    /// How long an object stays after no commit needs it (replicas reading an older
    /// commit, a writer between its upload and its commit).
    pub gc_grace: Duration,
    /// For S3: how many times, and for how long, a failed request is retried (with
    /// exponential backoff); `None` keeps the client's defaults (10 times, 3 minutes).
    pub retries: Option<(usize, Duration)>,
}

impl RemoteConfig {
    /// The bucket at `url`, with no extra options and the default grace period.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            options: Vec::new(),
            gc_grace: DEFAULT_GC_GRACE,
            retries: None,
        }
    }

    /// Sets how often and how long an S3 request is retried.
    pub fn retries(mut self, max_retries: usize, timeout: Duration) -> Self {
        self.retries = Some((max_retries, timeout));
        self
    }

    /// Adds one `object_store` configuration key.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// Sets the grace period of garbage collection.
    pub fn gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = grace;
        self
    }
}

impl From<&str> for RemoteConfig {
    fn from(url: &str) -> Self {
        RemoteConfig::new(url)
    }
}

impl From<String> for RemoteConfig {
    fn from(url: String) -> Self {
        RemoteConfig::new(url)
    }
}

/// What can go wrong with a bucket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL or options cannot be used.
    #[error("{0}")]
    Config(String),
    /// A request failed after the client's retries.
    #[error("could not {op} {path} in the bucket")]
    Store {
        /// What was being done.
        op: &'static str,
        /// The object or folder.
        path: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A commit object is damaged.
    #[error("corrupt commit object {path}")]
    Corrupt {
        /// The object.
        path: String,
        /// What is wrong.
        #[source]
        source: EnvelopeError,
    },
    /// An object a commit names is not in the bucket.
    #[error("the object {0} is missing from the bucket")]
    Missing(String),
    /// Another writing session committed sequence number `seq` first: this session
    /// stops writing (the bucket fences it).
    #[error("another writer committed sequence number {seq} to the bucket first; this writer stops (at most one writer per store)")]
    Fenced {
        /// The sequence number lost.
        seq: u64,
    },
    /// The bucket's log skips sequence numbers: log object `object` starts at `found`
    /// where `expected` was next.
    #[error(
        "the bucket's log skips from sequence number {expected} to {found} (log object {object})"
    )]
    LogGap {
        /// The log object.
        object: u64,
        /// The sequence number that should come next.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// An earlier ship of the log to the bucket failed (its outcome is unknown): this
    /// session ships nothing more; reopen the store.
    #[error("an earlier ship of the log to the bucket failed; reopen the store")]
    ShipFailed,
    /// A local file could not be written.
    #[error(transparent)]
    Local(#[from] strata_format::Error),
    /// A local file operation failed.
    #[error("I/O error on {}", path.display())]
    Io {
        /// The local path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn store(op: &'static str, path: &str, e: object_store::Error) -> Self {
        Error::Store {
            op,
            path: path.to_string(),
            source: Box::new(e),
        }
    }
}
