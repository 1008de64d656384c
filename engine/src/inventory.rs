//! What a store holds now: [`Db::stats`](crate::Db::stats)'s figures, read from a
//! snapshot, the live counters and a listing of the store's files.

use std::sync::atomic::{AtomicU64, Ordering};

use std::path::Path;

use strata_index::Metric;
use strata_vfs::Vfs;

use crate::error::Result;
use crate::files::{self, FileKind};
use crate::inner::Inner;
use crate::stats::{IndexSummary, SegmentStats, Stats, WriteStats};
use crate::version::Version;

/// Bytes written since open by kind, and the write amplification.
pub(crate) fn write_stats(inner: &Inner) -> WriteStats {
    let w = &inner.writes;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut s = WriteStats {
        user_bytes: get(&w.user_bytes),
        wal_bytes: inner.wal.bytes_written(),
        flush_bytes: get(&w.flush_bytes),
        compaction_bytes: get(&inner.compactions.bytes_written),
        deletion_bytes: get(&w.deletion_bytes),
        manifest_bytes: get(&w.manifest_bytes),
        write_amplification: 0.0,
        stalled_batches: get(&w.stalled_batches),
        slowed_batches: get(&w.slowed_batches),
    };
    let total =
        s.wal_bytes + s.flush_bytes + s.compaction_bytes + s.deletion_bytes + s.manifest_bytes;
    if s.user_bytes > 0 {
        s.write_amplification = total as f64 / s.user_bytes as f64;
    }
    s
}

/// Reports the store's sizes to the metrics recorder (after open, flushes and merges:
/// each lists the directory once).
pub(crate) fn publish(inner: &Inner) {
    let _in_order = inner.metrics.publishing.lock();
    if let Ok(s) = collect(inner) {
        inner.metrics.publish(&s);
    }
}

/// Counts and sizes of the store: segments, memtables, files, counters.
pub(crate) fn collect(inner: &Inner) -> Result<Stats> {
    let v = inner.snapshot();
    let mut s = collect_version(&v, &*inner.opts.vfs, &inner.dir, inner.dim, inner.metric)?;
    s.wal_fsyncs = inner.wal.fsync_count();
    s.compactions = inner.compactions.snapshot();
    s.writes = write_stats(inner);
    s.last_background_error = inner
        .background_error
        .lock()
        .as_ref()
        .map(|e| error_chain(e));
    Ok(s)
}

/// The counts and sizes of snapshot `v` of the store in `dir` and of its files (no
/// counters of a writing handle).
pub(crate) fn collect_version(
    v: &Version,
    fs: &dyn Vfs,
    dir: &Path,
    dim: usize,
    metric: Metric,
) -> Result<Stats> {
    let mut s = Stats {
        dim,
        metric: metric.name(),
        last_seq: v.seq,
        ..Stats::default()
    };
    for seg in &v.segments {
        let rows = seg.reader.rows() as u64;
        let deleted = seg.deleted.count() as u64;
        let index = seg.reader.index();
        // An `int8` segment's walk scores on its rows (and never on PQ codes, which
        // segments written before that still carry), and so does one written without PQ
        // codes.
        let on_rows = |ix: &strata_format::segment::IndexParts<'_>| {
            seg.reader.int8_rows().is_some() || ix.meta.pq_m == 0
        };
        s.segments.push(SegmentStats {
            file_no: seg.file_no,
            rows,
            deleted,
            bytes: seg.reader.file_len(),
            indexed: seg.index.is_some(),
            field_index_bytes: seg.reader.field_index_len(),
            vector_codec: seg.reader.vector_codec().name(),
            row_order: if seg.reader.rows_in_id_order() {
                "id"
            } else {
                "spatial"
            },
            vector_bytes: seg.reader.vectors_len(),
            front_bytes: index.map_or(0, |ix| {
                let scored = if on_rows(&ix) {
                    seg.reader.vectors_len() as usize
                } else {
                    std::mem::size_of_val(ix.codebook) + ix.codes.len()
                };
                (scored + ix.level0.len() + std::mem::size_of_val(ix.upper)) as u64
            }),
            front_in_memory: seg.reader.front_in_memory(),
            text_bytes: seg.reader.text_bytes().0,
            text_index_bytes: seg.reader.text_bytes().1,
            index: index.map(|ix| IndexSummary {
                pq_bytes: ix.meta.pq_m,
                walk_codes: if on_rows(&ix) {
                    "rows"
                } else if seg.index.as_ref().is_some_and(|si| si.walks_scalar_codes()) {
                    "scalar"
                } else {
                    "pq"
                },
                hnsw_m: ix.meta.hnsw_m,
                ef_construction: ix.meta.ef_construction,
                built_by: strata_format::segment::describe_built_by(ix.meta.built_by),
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
    let mut segment_file_bytes = 0;
    for (kind, _, len) in files::list(fs, dir)? {
        match kind {
            FileKind::Segment => segment_file_bytes += len,
            FileKind::Deletion => s.deletion_bytes += len,
            FileKind::Wal => s.wal_bytes += len,
        }
    }
    s.segment_bytes = s.segments.iter().map(|g| g.bytes).sum();
    s.retired_bytes = segment_file_bytes.saturating_sub(s.segment_bytes);
    s.manifest_bytes = fs.len(&dir.join(files::MANIFEST)).unwrap_or(0);
    let live_segment_bytes: f64 = s
        .segments
        .iter()
        .filter(|g| g.rows > 0)
        .map(|g| g.bytes as f64 * (g.rows - g.deleted.min(g.rows)) as f64 / g.rows as f64)
        .sum();
    let bytes_per_row = if s.segment_rows > 0 {
        s.segment_bytes as f64 / s.segment_rows as f64
    } else {
        4.0 * dim as f64
    };
    let fresh = live_segment_bytes + s.memtable_rows as f64 * bytes_per_row;
    let total = (s.segment_bytes + s.deletion_bytes + s.wal_bytes + s.manifest_bytes) as f64;
    s.space_amplification = if fresh > 0.0 { total / fresh } else { 1.0 };
    Ok(s)
}

/// An error and its sources, joined by ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
