//! Options of a store, of writes and of searches.

use std::sync::Arc;
use std::time::Duration;

use strata_vfs::Vfs;

pub use strata_index::Metric;

/// When an acknowledged write is on stable storage. See `docs/durability.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// A write returns after its WAL record is fsynced; concurrent writers share fsyncs.
    /// Survives process crashes and power loss.
    Always,
    /// A background thread fsyncs the WAL at this interval. Survives process crashes;
    /// power loss may lose the last interval of writes.
    Periodic(Duration),
    /// The OS writes back when it likes. Survives process crashes; power loss may lose
    /// any write since the last flush.
    Never,
}

/// How to open (and if needed create) a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// Dimension for a new store; when `Some`, also checked against an existing one.
    pub dim: Option<usize>,
    /// Metric for a new store (checked against an existing one when `dim` is `Some`).
    pub metric: Metric,
    /// Default durability of writes.
    pub sync: Sync,
    /// A memtable is frozen and flushed to a segment once it holds this many bytes.
    pub memtable_bytes: usize,
    /// Frozen memtables waiting for flush before writers are slowed down (at least 1).
    pub max_immutable_memtables: usize,
    /// The WAL moves to a new file once the current one passes this size.
    pub wal_file_bytes: u64,
    /// Rayon threads for searches; `None` uses the global pool.
    pub search_threads: Option<usize>,
    /// How segments are indexed at flush and compaction.
    pub index: strata_compaction::IndexOptions,
    /// When and how segments are merged.
    pub compaction: CompactionOptions,
    /// Build flushed segments' indexes at idle priority (Linux `SCHED_IDLE`; ignored
    /// elsewhere), as merges are by default (`CompactionOptions::low_priority`): search
    /// tail latency then stays flat during heavy ingest. Off by default because a flush
    /// that cannot get a core stalls writers: with every core busy searching, an idle-
    /// priority flush gets almost no CPU.
    pub low_priority_flush: bool,
    /// The file system every file operation of the store goes through: the real one by
    /// default; tests pass a simulated or fault-injecting one (`strata::vfs`).
    pub vfs: Arc<dyn Vfs>,
}

/// When and how segments are merged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionOptions {
    /// Run the policy on a background thread while the store is open.
    pub background: bool,
    /// What to merge ([`strata_compaction::PolicyOptions`]).
    pub policy: strata_compaction::PolicyOptions,
    /// Threads a merge may use (its rayon pool): the rest stay free for searches.
    pub threads: usize,
    /// With more segments than this, each write batch waits up to a millisecond for
    /// compaction to catch up (writers are slowed, never failed).
    pub slowdown_segments: usize,
    /// Run merges and the background compactor at idle priority (Linux `SCHED_IDLE`;
    /// ignored elsewhere): a search, write or flush thread that wakes preempts a merge at
    /// once instead of waiting out its time slice, so search tail latency stays flat
    /// while compactions run. With every core busy, merges get a small share and the
    /// backlog slows writers (`slowdown_segments`); `false` gives them an equal share.
    pub low_priority: bool,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            background: true,
            policy: strata_compaction::PolicyOptions::default(),
            threads: 1,
            slowdown_segments: 64,
            low_priority: true,
        }
    }
}

impl Options {
    /// Options that create the store with `dim` and `metric` when it does not exist.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Options {
            dim: Some(dim),
            metric,
            ..Options::existing()
        }
    }

    /// Options that open an existing store with whatever schema it has.
    pub fn existing() -> Self {
        Options {
            dim: None,
            metric: Metric::L2,
            sync: Sync::Always,
            memtable_bytes: 64 << 20,
            max_immutable_memtables: 2,
            wal_file_bytes: 64 << 20,
            search_threads: None,
            index: strata_compaction::IndexOptions::default(),
            compaction: CompactionOptions::default(),
            low_priority_flush: false,
            vfs: strata_vfs::os(),
        }
    }

    /// Sets the default durability.
    pub fn sync(mut self, sync: Sync) -> Self {
        self.sync = sync;
        self
    }

    /// Runs the store over `vfs` instead of the real file system.
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Self {
        self.vfs = vfs;
        self
    }

    /// Where flushes and compactions build segment indexes: `Auto` (the default: a GPU
    /// when the build has the `gpu` feature, a device is present, and the segment has at
    /// least [`strata_compaction::IndexOptions::gpu_min_rows`] rows), `Cpu`, or `Gpu`. A GPU that
    /// fails never fails a flush: the build goes on on the CPU, with a warning.
    pub fn build_device(mut self, device: strata_compaction::BuildDevice) -> Self {
        self.index.device = device;
        self
    }

    /// Sets the memtable budget in bytes.
    pub fn memtable_bytes(mut self, bytes: usize) -> Self {
        self.memtable_bytes = bytes.max(1);
        self
    }
}

/// Per-write overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Durability of this write; `None` uses the store's default. `Periodic` on a store
    /// opened without a periodic syncer is treated as `Always`.
    pub sync: Option<Sync>,
}

/// How to search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Number of nearest neighbours to return.
    pub k: usize,
    /// Force brute-force search of every source, ignoring the graph indexes.
    pub exact: bool,
    /// Beam width of the graph walk in each indexed segment (at least `k`); larger is
    /// slower and finds more. `None`: [`SearchOptions::DEFAULT_EF`].
    pub ef: Option<usize>,
    /// Candidates of the graph walk re-scored exactly with full vectors (at least `k`).
    /// `None`: [`SearchOptions::DEFAULT_RERANK`].
    pub rerank: Option<usize>,
}

impl SearchOptions {
    /// Default `ef`.
    pub const DEFAULT_EF: usize = 128;
    /// Default `rerank`.
    pub const DEFAULT_RERANK: usize = 100;

    /// Top `k`, default settings.
    pub fn new(k: usize) -> Self {
        SearchOptions {
            k,
            exact: false,
            ef: None,
            rerank: None,
        }
    }

    /// Brute-force top `k`.
    pub fn exact(k: usize) -> Self {
        SearchOptions {
            exact: true,
            ..Self::new(k)
        }
    }
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions::new(10)
    }
}
