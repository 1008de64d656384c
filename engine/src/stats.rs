//! The figures a store reports (`Db::stats`, `Db::write_stats`, `strata inspect`,
//! compaction reports) and the live counters behind them.

use std::sync::atomic::{AtomicU64, Ordering};

use strata_compaction::{BuildReport, Reason};

/// What one compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionReport {
    /// Why it ran.
    pub reason: Reason,
    /// Segments merged.
    pub inputs: usize,
    /// Rows read from the inputs (live and deleted).
    pub rows_in: u64,
    /// Rows written (0 when every input row was deleted).
    pub rows_out: u64,
    /// Bytes of the input segment files.
    pub bytes_in: u64,
    /// Bytes of the output segment file.
    pub bytes_out: u64,
    /// Whether the output has an index.
    pub indexed: bool,
    /// How the output was built (devices, stage times); `None` without an output.
    pub build: Option<BuildReport>,
    /// Wall time of the merge and install.
    pub seconds: f64,
}

/// One segment's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentStats {
    /// File number.
    pub file_no: u64,
    /// Rows stored.
    pub rows: u64,
    /// Rows tombstoned.
    pub deleted: u64,
    /// File length.
    pub bytes: u64,
    /// Whether the segment has a search index.
    pub indexed: bool,
    /// How its index was built, when it has one.
    pub index: Option<IndexSummary>,
    /// Bytes of its metadata index (`FIELD_INDEX`; 0 without one).
    pub field_index_bytes: u64,
    /// How it stores its vectors (`f32`, `f16`, `int8`).
    pub vector_codec: &'static str,
    /// The order of its rows: `id` (ascending ids), or `spatial` (rows close in space
    /// kept close, with an id index: indexed segments from format 5).
    pub row_order: &'static str,
    /// Bytes of its stored vectors (`VECTORS`).
    pub vector_bytes: u64,
    /// Bytes of what every search of it walks: PQ codebook and codes and the graph, or
    /// for a segment walked on its rows (`int8`, small `f32`) the graph and those rows
    /// (0 without an index).
    pub front_bytes: u64,
    /// Bytes of that front held in process memory ([`crate::Options::resident_front`]:
    /// the index sections; an `int8` segment's rows stay mapped; 0 when it is all read
    /// from the page cache).
    pub front_in_memory: u64,
    /// Bytes of its rows' texts (`TEXT_DIR`, `TEXTS`, compressed; 0 without text).
    pub text_bytes: u64,
    /// Bytes of its full-text index (`TEXT_TERMS`, `TEXT_POSTINGS`, `TEXT_LENGTHS`; 0
    /// without text).
    pub text_index_bytes: u64,
}

/// The parameters a segment's index was built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSummary {
    /// Bytes per walk code (PQ or scalar; 0 when the walk scores the segment's rows).
    pub pq_bytes: u32,
    /// What the graph walk scores nodes on: `rows` (the stored `int8` or `f32` rows, no
    /// rerank), `scalar` (8-bit scalar codes) or `pq` (PQ codes).
    pub walk_codes: &'static str,
    /// HNSW links per node (level 0 has twice as many).
    pub hnsw_m: u32,
    /// Beam width used while building.
    pub ef_construction: u32,
    /// Where it was built: `cpu`, `gpu`, or the stages that ran on a GPU
    /// (`gpu: k-means, codes`).
    pub built_by: String,
}

/// What compactions did since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionStats {
    /// Compactions installed.
    pub runs: u64,
    /// Compactions that failed (the store was left as it was).
    pub failed: u64,
    /// Rows read from input segments.
    pub rows_read: u64,
    /// Rows written to output segments.
    pub rows_written: u64,
    /// Bytes of input segments.
    pub bytes_read: u64,
    /// Bytes of output segments.
    pub bytes_written: u64,
}

/// The live counters behind [`CompactionStats`].
#[derive(Debug, Default)]
pub(crate) struct CompactionCounters {
    pub runs: AtomicU64,
    pub failed: AtomicU64,
    pub rows_read: AtomicU64,
    pub rows_written: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
}

impl CompactionCounters {
    pub fn record(&self, r: &CompactionReport) {
        let add = |c: &AtomicU64, v: u64| c.fetch_add(v, Ordering::Relaxed);
        add(&self.runs, 1);
        add(&self.rows_read, r.rows_in);
        add(&self.rows_written, r.rows_out);
        add(&self.bytes_read, r.bytes_in);
        add(&self.bytes_written, r.bytes_out);
    }

    pub fn snapshot(&self) -> CompactionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CompactionStats {
            runs: get(&self.runs),
            failed: get(&self.failed),
            rows_read: get(&self.rows_read),
            rows_written: get(&self.rows_written),
            bytes_read: get(&self.bytes_read),
            bytes_written: get(&self.bytes_written),
        }
    }
}

/// Bytes written since the store was opened, by what wrote them, and how often writers
/// were held back.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WriteStats {
    /// Bytes the caller handed in: 8 per id, 4 per vector component, the payloads, 8 per
    /// delete.
    pub user_bytes: u64,
    /// Bytes appended to WAL files (file headers and record framing included).
    pub wal_bytes: u64,
    /// Bytes of segments written by memtable flushes.
    pub flush_bytes: u64,
    /// Bytes of segments written by compactions.
    pub compaction_bytes: u64,
    /// Bytes of deletion files written.
    pub deletion_bytes: u64,
    /// Bytes of manifests published.
    pub manifest_bytes: u64,
    /// All bytes written divided by `user_bytes` (0 before the first write).
    pub write_amplification: f64,
    /// Batches that waited for a frozen memtable to be flushed.
    pub stalled_batches: u64,
    /// Batches delayed (by up to a millisecond) because more segments than
    /// `CompactionOptions::slowdown_segments` awaited compaction.
    pub slowed_batches: u64,
}

/// The live counters behind [`WriteStats`] (the WAL and compaction keep their own).
#[derive(Debug, Default)]
pub(crate) struct WriteCounters {
    pub user_bytes: AtomicU64,
    pub flush_bytes: AtomicU64,
    pub deletion_bytes: AtomicU64,
    pub manifest_bytes: AtomicU64,
    pub stalled_batches: AtomicU64,
    pub slowed_batches: AtomicU64,
}

impl WriteCounters {
    /// Adds `v` to counter `c`.
    pub fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Ordering::Relaxed);
    }
}

/// Counts and sizes of a store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    /// Vector dimension.
    pub dim: usize,
    /// Metric name.
    pub metric: &'static str,
    /// Per segment, newest first.
    pub segments: Vec<SegmentStats>,
    /// Rows in segments (live or tombstoned).
    pub segment_rows: u64,
    /// Tombstoned segment rows.
    pub tombstones: u64,
    /// Segments with a search index (the rest are searched exactly).
    pub indexed_segments: u64,
    /// Live rows in memtables.
    pub memtable_rows: u64,
    /// Frozen memtables waiting for flush.
    pub frozen_memtables: u64,
    /// Memtable rows already linked into the memtables' graphs.
    pub memtable_linked_rows: u64,
    /// Live records in the store.
    pub live_rows: u64,
    /// Highest sequence number applied.
    pub last_seq: u64,
    /// Bytes of the live segments' files.
    pub segment_bytes: u64,
    /// Bytes of segment files that compaction replaced, removed once the last snapshot
    /// reading them is dropped (or at the next open).
    pub retired_bytes: u64,
    /// Bytes of deletion files.
    pub deletion_bytes: u64,
    /// Bytes of WAL files.
    pub wal_bytes: u64,
    /// Bytes of the manifest.
    pub manifest_bytes: u64,
    /// WAL fsyncs since open.
    pub wal_fsyncs: u64,
    /// Bytes of the store's files divided by an estimate of the bytes a fresh store of
    /// the live rows would take (each segment's bytes scaled by its live fraction, and
    /// memtable rows at the segments' mean bytes per row, or 4·dim without segments).
    /// 1.0 is no waste; deleted and overwritten rows push it up until compaction.
    pub space_amplification: f64,
    /// What compactions did since open.
    pub compactions: CompactionStats,
    /// Bytes written since open and writer slowdowns.
    pub writes: WriteStats,
    /// The latest failure of a background flush, sync or compaction since open, as text
    /// (the error itself: [`Db::background_error`](crate::Db::background_error)).
    pub last_background_error: Option<String>,
}

/// One size of a store as a metric: its name (`docs/metrics.md`), an optional
/// `(label, value)` pair, and the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeValue {
    /// Metric name.
    pub name: &'static str,
    /// A label besides `store`, when the metric has one.
    pub label: Option<(&'static str, &'static str)>,
    /// The value.
    pub value: f64,
}

impl Stats {
    /// The store's sizes as the gauges it reports through the `metrics` facade
    /// (`docs/metrics.md`): what `strata stats` prints for a closed store.
    pub fn gauges(&self) -> Vec<GaugeValue> {
        let g = |name, label, value: u64| GaugeValue {
            name,
            label,
            value: value as f64,
        };
        let bytes = |kind, value| g("strata_bytes", Some(("kind", kind)), value);
        vec![
            g("strata_live_rows", None, self.live_rows),
            g("strata_segments", None, self.segments.len() as u64),
            g("strata_memtable_rows", None, self.memtable_rows),
            g("strata_tombstones", None, self.tombstones),
            bytes("segment", self.segment_bytes),
            bytes("deletion", self.deletion_bytes),
            bytes("wal", self.wal_bytes),
            bytes("retired", self.retired_bytes),
            g(
                "strata_front_bytes",
                None,
                self.segments.iter().map(|s| s.front_bytes).sum(),
            ),
            g(
                "strata_front_in_memory_bytes",
                None,
                self.segments.iter().map(|s| s.front_in_memory).sum(),
            ),
            GaugeValue {
                name: "strata_space_amplification",
                label: None,
                value: self.space_amplification,
            },
        ]
    }
}

/// The build reports of the latest segments this handle wrote (flushes and
/// compactions), oldest first, at most [`BuildLog::KEEP`].
#[derive(Debug, Default)]
pub(crate) struct BuildLog(parking_lot::Mutex<std::collections::VecDeque<(u64, BuildReport)>>);

impl BuildLog {
    /// Reports kept.
    pub const KEEP: usize = 64;

    pub fn record(&self, file_no: u64, r: BuildReport) {
        let mut q = self.0.lock();
        if q.len() == Self::KEEP {
            q.pop_front();
        }
        q.push_back((file_no, r));
    }

    pub fn all(&self) -> Vec<(u64, BuildReport)> {
        self.0.lock().iter().cloned().collect()
    }
}
