//! Store statistics (`Db::stats`, `strata inspect`).

use crate::db::Inner;
use crate::error::Result;
use crate::files::{self, FileKind};

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
}

/// The parameters a segment's index was built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSummary {
    /// Bytes per PQ code.
    pub pq_bytes: u32,
    /// HNSW links per node (level 0 has twice as many).
    pub hnsw_m: u32,
    /// Beam width used while building.
    pub ef_construction: u32,
    /// What built it (`cpu`).
    pub built_by: &'static str,
}

/// Counts and sizes of a store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// Bytes of segment files.
    pub segment_bytes: u64,
    /// Bytes of deletion files.
    pub deletion_bytes: u64,
    /// Bytes of WAL files.
    pub wal_bytes: u64,
    /// Bytes of the manifest.
    pub manifest_bytes: u64,
    /// WAL fsyncs since open.
    pub wal_fsyncs: u64,
}

pub(crate) fn collect(inner: &Inner) -> Result<Stats> {
    let v = inner.snapshot();
    let mut s = Stats {
        dim: inner.dim,
        metric: inner.metric.name(),
        last_seq: v.seq,
        ..Stats::default()
    };
    for seg in &v.segments {
        let rows = seg.reader.rows() as u64;
        let deleted = seg.deleted.count() as u64;
        s.segments.push(SegmentStats {
            file_no: seg.file_no,
            rows,
            deleted,
            bytes: seg.reader.file_len(),
            indexed: seg.index.is_some(),
            index: seg.reader.index().map(|ix| IndexSummary {
                pq_bytes: ix.meta.pq_m,
                hnsw_m: ix.meta.hnsw_m,
                ef_construction: ix.meta.ef_construction,
                built_by: if ix.meta.built_by == 0 {
                    "cpu"
                } else {
                    "other"
                },
            }),
        });
        s.segment_rows += rows;
        s.tombstones += deleted;
        s.indexed_segments += seg.index.is_some() as u64;
    }
    s.memtable_rows = v
        .memtables
        .iter()
        .map(|m| m.visible_rows(v.seq) as u64)
        .sum();
    s.frozen_memtables = v.memtables.len().saturating_sub(1) as u64;
    s.memtable_linked_rows = v.memtables.iter().map(|m| m.linked_rows() as u64).sum();
    s.live_rows = s.segment_rows - s.tombstones + s.memtable_rows;
    for (kind, _, len) in files::list(&inner.dir)? {
        match kind {
            FileKind::Segment => s.segment_bytes += len,
            FileKind::Deletion => s.deletion_bytes += len,
            FileKind::Wal => s.wal_bytes += len,
        }
    }
    s.manifest_bytes = std::fs::metadata(inner.dir.join(files::MANIFEST))
        .map(|m| m.len())
        .unwrap_or(0);
    s.wal_fsyncs = inner.wal.fsync_count();
    Ok(s)
}
