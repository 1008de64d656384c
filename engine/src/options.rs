//! Options of a store, of writes and of searches.

use std::sync::Arc;
use std::time::Duration;

use strata_vfs::Vfs;

pub use strata_index::Metric;

/// When an acknowledged write is on stable storage. See `docs/durability.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A write returns after its WAL record is fsynced; concurrent writers share fsyncs.
    /// Survives process crashes and power loss.
    Always,
    /// A background thread fsyncs the WAL at this interval. Survives process crashes;
    /// power loss may lose the last interval of writes.
    Periodic(Duration),
    /// The OS writes back when it likes. Survives process crashes; power loss may lose
    /// any write since the last flush.
    Never,
    /// For a store kept in a bucket ([`Options::remote`]): a write returns after its WAL
    /// record is fsynced *and* in the bucket (concurrent writers share each upload, as
    /// they share fsyncs). Survives the loss of the machine: `restore` gives every
    /// acknowledged write. A store without a bucket refuses it at open; a single write
    /// asking for it on such a store is treated as [`Durability::Always`].
    Bucket,
}

/// What identifies a record of a store. Fixed when the store is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// `u64` ids chosen by the caller ([`Db::upsert`](crate::Db::upsert) and friends).
    #[default]
    U64,
    /// UTF-8 string keys of 1 to [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes
    /// ([`Db::upsert_key`](crate::Db::upsert_key) and friends). Keys are exact: two
    /// different strings are always two records. Each key is bound to an internal `u64`
    /// id (what [`Hit::id`](crate::Hit::id) and [`Record::id`](crate::Record::id) hold)
    /// that stays the same while the record lives.
    String,
}

impl KeyKind {
    /// `u64` or `string`.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::U64 => "u64",
            KeyKind::String => "string",
        }
    }

    /// The manifest's code for this kind.
    pub(crate) fn code(self) -> u8 {
        match self {
            KeyKind::U64 => strata_format::manifest::KEYS_U64,
            KeyKind::String => strata_format::manifest::KEYS_STRING,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            strata_format::manifest::KEYS_U64 => Some(KeyKind::U64),
            strata_format::manifest::KEYS_STRING => Some(KeyKind::String),
            _ => None,
        }
    }
}

/// What every record of a store is: the dimension of its vector, the metric that
/// compares vectors, and what kind of key identifies it. Fixed when the store is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Vector dimension (1..=65536).
    pub dim: usize,
    /// Distance metric.
    pub metric: Metric,
    /// What identifies a record ([`KeyKind::U64`] unless set).
    pub keys: KeyKind,
}

impl Schema {
    /// A schema of `dim`-dimensional vectors compared by `metric`, with `u64` ids.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Schema {
            dim,
            metric,
            keys: KeyKind::U64,
        }
    }

    /// The same schema with records identified by `keys`.
    pub fn with_keys(mut self, keys: KeyKind) -> Self {
        self.keys = keys;
        self
    }
}

/// How to open (and if needed create) a store: a builder. [`Options::new`] creates the
/// store when it is missing (and checks the schema of one that exists);
/// [`Options::existing`] opens whatever store is there. Every other setting has a
/// default and a setter.
#[derive(Debug, Clone)]
pub struct Options {
    /// The schema of a new store; when set, also checked against an existing one.
    pub(crate) schema: Option<Schema>,
    pub(crate) durability: Durability,
    pub(crate) memtable_bytes: usize,
    pub(crate) max_immutable_memtables: usize,
    pub(crate) wal_file_bytes: u64,
    pub(crate) search_threads: Option<usize>,
    pub(crate) index: strata_compaction::IndexOptions,
    pub(crate) compaction: CompactionOptions,
    pub(crate) low_priority_flush: bool,
    pub(crate) unindexed_fields: Vec<String>,
    pub(crate) vector_codec: Option<crate::VectorCodec>,
    pub(crate) analyzer: Option<crate::Analyzer>,
    pub(crate) resident_front: bool,
    pub(crate) background_calibration: bool,
    pub(crate) recall_sampling: Option<crate::RecallSampling>,
    #[cfg(feature = "remote")]
    pub(crate) remote: Option<strata_remote::RemoteConfig>,
    pub(crate) vfs: Arc<dyn Vfs>,
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
    /// Options that create the store with `dim` and `metric` when it does not exist
    /// (shorthand for [`Options::with_schema`]).
    pub fn new(dim: usize, metric: Metric) -> Self {
        Options::with_schema(Schema::new(dim, metric))
    }

    /// Options that create the store with `schema` when it does not exist, and refuse
    /// an existing store of another schema.
    pub fn with_schema(schema: Schema) -> Self {
        Options {
            schema: Some(schema),
            ..Options::existing()
        }
    }

    /// Options that open an existing store with whatever schema it has.
    pub fn existing() -> Self {
        Options {
            schema: None,
            durability: Durability::Always,
            memtable_bytes: 64 << 20,
            max_immutable_memtables: 2,
            wal_file_bytes: 64 << 20,
            search_threads: None,
            index: strata_compaction::IndexOptions::default(),
            compaction: CompactionOptions::default(),
            low_priority_flush: false,
            unindexed_fields: Vec::new(),
            vector_codec: None,
            analyzer: None,
            resident_front: false,
            background_calibration: true,
            recall_sampling: None,
            #[cfg(feature = "remote")]
            remote: None,
            vfs: strata_vfs::os(),
        }
    }

    /// How segments will be indexed (see [`Options::index`]).
    pub fn index_options(&self) -> strata_compaction::IndexOptions {
        self.index
    }

    /// When and how segments will be merged (see [`Options::compaction`]).
    pub fn compaction_options(&self) -> CompactionOptions {
        self.compaction
    }

    /// The schema a new store gets (`None` for [`Options::existing`]).
    pub fn schema(&self) -> Option<Schema> {
        self.schema
    }

    /// Keep each indexed segment's search front — the PQ codes and graph that every
    /// search walks, a little over half of the segment's vector bytes at `f32` — in
    /// process memory, read and checked when the segment is opened, instead of in the
    /// page cache (off by default). Under a memory limit smaller than the store, the
    /// page cache then gives up full vectors (read a few pages per search, requested
    /// together: [`SearchOptions::prefetch`]) rather than the front every step of a
    /// walk needs; opening a segment costs one sequential read of its front. A segment
    /// storing `int8` vectors is walked on those, which stay mapped.
    pub fn resident_front(mut self, on: bool) -> Self {
        self.resident_front = on;
        self
    }

    /// How a store this creates keeps its full vectors on disk
    /// ([`VectorCodec::F32`](crate::VectorCodec) unless set; `docs/vector-codecs.md`
    /// gives each codec's recall, disk and speed). Opening an existing store with a
    /// codec set checks it is the store's ([`InvalidArgument::VectorCodecMismatch`](crate::InvalidArgument)).
    pub fn vector_codec(mut self, codec: crate::VectorCodec) -> Self {
        self.vector_codec = Some(codec);
        self
    }

    /// How a store this creates turns records' text (and text queries) into terms
    /// ([`Analyzer::Default`](crate::Analyzer) unless set). Opening an existing store with
    /// an analyzer set checks it is the store's ([`InvalidArgument::AnalyzerMismatch`](crate::InvalidArgument)).
    pub fn analyzer(mut self, analyzer: crate::Analyzer) -> Self {
        self.analyzer = Some(analyzer);
        self
    }

    /// What identifies the records of a store this creates ([`KeyKind::U64`] unless set);
    /// an existing store of another kind is refused. No effect on
    /// [`Options::existing`], which opens whatever kind the store has.
    pub fn keys(mut self, keys: KeyKind) -> Self {
        if let Some(s) = &mut self.schema {
            s.keys = keys;
        }
        self
    }

    /// Metadata paths to leave out of the field indexes (each with every path under it):
    /// every other path is indexed as rows are written, flushed and merged
    /// (`docs/filters.md`). A filter on an unindexed path is still answered exactly, by
    /// reading each candidate row's metadata, which is slower. Applies to memtables and
    /// to segments written from now on; segments keep the index they were written with.
    pub fn unindexed_fields<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.unindexed_fields = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Default durability of writes ([`Durability::Always`] unless set).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// A memtable is frozen and flushed to a segment once it holds this many bytes
    /// (default 64 MiB).
    pub fn memtable_bytes(mut self, bytes: usize) -> Self {
        self.memtable_bytes = bytes.max(1);
        self
    }

    /// Frozen memtables waiting for flush before writers are slowed down (default 2; 0
    /// counts as 1).
    pub fn max_immutable_memtables(mut self, n: usize) -> Self {
        self.max_immutable_memtables = n;
        self
    }

    /// The WAL moves to a new file once the current one passes this size (default
    /// 64 MiB).
    pub fn wal_file_bytes(mut self, bytes: u64) -> Self {
        self.wal_file_bytes = bytes;
        self
    }

    /// Rayon threads for searches; `None` (the default) uses the global pool.
    pub fn search_threads(mut self, threads: Option<usize>) -> Self {
        self.search_threads = threads;
        self
    }

    /// How segments are indexed at flush and compaction. Replaces every index setting,
    /// the build device included: call [`Options::build_device`] after it, not before.
    pub fn index(mut self, index: strata_compaction::IndexOptions) -> Self {
        self.index = index;
        self
    }

    /// When and how segments are merged. Replaces every compaction setting: call
    /// [`Options::background_compaction`] after it, not before.
    pub fn compaction(mut self, compaction: CompactionOptions) -> Self {
        self.compaction = compaction;
        self
    }

    /// Whether the background compactor runs while the store is open (default true;
    /// without it, [`Db::compact`](crate::Db::compact) does the work).
    pub fn background_compaction(mut self, on: bool) -> Self {
        self.compaction.background = on;
        self
    }

    /// Build flushed segments' indexes at idle priority (Linux `SCHED_IDLE`; ignored
    /// elsewhere), as merges are by default (`CompactionOptions::low_priority`): search
    /// tail latency then stays flat during heavy ingest. Off by default because a flush
    /// that cannot get a core stalls writers: with every core busy searching, an idle-
    /// priority flush gets almost no CPU.
    pub fn low_priority_flush(mut self, on: bool) -> Self {
        self.low_priority_flush = on;
        self
    }

    /// Whether a background thread (at idle priority) keeps every indexed segment
    /// calibrated for [`SearchOptions::target_recall`] (default true): it measures each
    /// new segment's recall per beam width, on its rows and then on recent queries
    /// (`docs/calibration.md`), and keeps the tables in the store's `CALIBRATION` file.
    /// Without it, only [`Db::calibrate`](crate::Db::calibrate) calibrates, and segments
    /// without a calibration are searched at [`SearchOptions::DEFAULT_EF`].
    pub fn background_calibration(mut self, on: bool) -> Self {
        self.background_calibration = on;
        self
    }

    /// Measure the recall of served searches (off by default): a seeded fraction of
    /// vector searches is run again exactly in the background, at idle priority, on
    /// the snapshot it searched, and [`Db::observed_recall`](crate::Db::observed_recall)
    /// reports the recall@k over the newest `window` of them, with a confidence
    /// interval, overall and per kind of segment (also as the `strata_observed_recall`
    /// gauge). With `adapt`, segments are calibrated again on recent queries when the
    /// recall falls below the searches' target (`docs/calibration.md`). Opening fails
    /// with [`crate::InvalidArgument::RecallSampling`] for a fraction outside (0, 1].
    pub fn recall_sampling(mut self, sampling: crate::RecallSampling) -> Self {
        self.recall_sampling = Some(sampling);
        self
    }

    /// Keeps the store in a bucket (`s3://…`, `gs://…`, `az://…`, `file:///…`), its
    /// source of truth: every flush and compaction uploads its files and commits to the
    /// bucket before the local manifest (one writer at a time: a writer another one took
    /// over stops with [`strata_remote::Error::Fenced`]). The directory is the writer's
    /// working copy; opening a new or empty directory restores the store from the bucket.
    /// Writes still only in the log reach the bucket at the next flush. See
    /// `docs/remote.md`.
    #[cfg(feature = "remote")]
    pub fn remote(mut self, config: strata_remote::RemoteConfig) -> Self {
        self.remote = Some(config);
        self
    }

    /// The file system every file operation of the store goes through: the real one by
    /// default; tests pass a simulated or fault-injecting one (`strata::vfs`).
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Self {
        self.vfs = vfs;
        self
    }

    /// Where flushes and compactions build segment indexes: `Auto` (the default: a GPU
    /// when the build has the `gpu` feature, a device is present, and the segment has at
    /// least [`strata_compaction::IndexOptions::gpu_min_rows`] rows), `Cpu`, or `Gpu`. A
    /// GPU that fails never fails a flush: the build goes on on the CPU, with a warning.
    pub fn build_device(mut self, device: strata_compaction::BuildDevice) -> Self {
        self.index.device = device;
        self
    }
}

/// Per-write overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Durability of this write; `None` uses the store's default. `Periodic` on a store
    /// opened without a periodic syncer is treated as `Always`.
    pub durability: Option<Durability>,
}

/// How to search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Number of nearest neighbours to return.
    pub k: usize,
    /// Force brute-force search of every source, ignoring the graph indexes.
    pub exact: bool,
    /// Beam width of the graph walk in each indexed segment (at least `k`); larger is
    /// slower and finds more. `None`: the width each segment's calibration gives for
    /// `target_recall`, or [`SearchOptions::DEFAULT_EF`] without either. Set, it
    /// overrides `target_recall`.
    pub ef: Option<usize>,
    /// The recall@k the search should reach (for example 0.95) when `ef` is not set:
    /// each indexed segment is walked with the smallest beam width whose measured recall
    /// meets it (interpolated between calibrated widths, aiming at the lower bound of a
    /// 95 % confidence interval), a segment not yet calibrated with
    /// [`SearchOptions::DEFAULT_EF`] (`docs/calibration.md`). The calibration is
    /// measured with the default `rerank`. Default
    /// [`SearchOptions::DEFAULT_TARGET_RECALL`]; `None` searches at `DEFAULT_EF`.
    pub target_recall: Option<f64>,
    /// Candidates of the graph walk re-scored exactly with full vectors (at least `k`).
    /// `None`: [`SearchOptions::DEFAULT_RERANK`]. No effect on segments storing `int8`
    /// vectors, whose walk scores nodes on those vectors already.
    pub rerank: Option<usize>,
    /// Return each hit's payload ([`Hit::payload`](crate::Hit)), read from the same
    /// snapshot as the search.
    pub with_payload: bool,
    /// Return each hit's metadata ([`Hit::metadata`](crate::Hit)), from the same snapshot.
    pub with_metadata: bool,
    /// Return each hit's text ([`Hit::text`](crate::Hit)), from the same snapshot.
    pub with_text: bool,
    /// BM25's parameters for text and hybrid searches (`k1` 1.2, `b` 0.75 by default).
    pub bm25: crate::Bm25,
    /// Only records whose metadata passes this filter (`docs/filters.md`): the top `k`
    /// among them (exactly when few pass or `exact` is set; by the graph walk, with its
    /// recall, when many do), and `k` hits whenever at least `k` records pass.
    pub filter: Option<crate::Filter>,
    /// Whether each indexed segment requests the pages a search reads from the disk
    /// together before reading them — each batch of neighbours' rows (PQ codes, or
    /// `int8` vectors) as the walk scores them, the graph row of the node it expands
    /// next, and the rerank candidates' vectors
    /// ([`Prefetch`](crate::Prefetch); by default only while a sample of searches finds
    /// some of them missing from memory, for the front and the vectors separately).
    pub prefetch: crate::Prefetch,
}

impl SearchOptions {
    /// Default `ef`.
    pub const DEFAULT_EF: usize = 128;
    /// Default `rerank`.
    pub const DEFAULT_RERANK: usize = 100;
    /// Default `target_recall`.
    pub const DEFAULT_TARGET_RECALL: f64 = 0.95;

    /// Top `k`, default settings.
    pub fn new(k: usize) -> Self {
        SearchOptions {
            k,
            exact: false,
            ef: None,
            target_recall: Some(Self::DEFAULT_TARGET_RECALL),
            rerank: None,
            with_payload: false,
            with_metadata: false,
            with_text: false,
            bm25: crate::Bm25::default(),
            filter: None,
            prefetch: crate::Prefetch::Auto,
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
