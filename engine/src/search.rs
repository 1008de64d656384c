//! Exact search over a version: memtables and segments, in parallel with rayon.

use rayon::prelude::*;
use strata_index::{exact, Metric, TopK};

use crate::db::Hit;
use crate::version::{LiveSegment, Version};

/// Rows per parallel task when scanning a segment.
const CHUNK_ROWS: usize = 32 * 1024;

/// Below this many segment rows a search runs on the caller's thread.
pub(crate) const PARALLEL_MIN_ROWS: usize = 2 * CHUNK_ROWS;

/// The `k` nearest live rows of `v` to `query` (already normalised for cosine).
/// With `parallel`, segment chunks are scanned on the current rayon pool.
pub(crate) fn exact(
    v: &Version,
    metric: Metric,
    query: &[f32],
    k: usize,
    parallel: bool,
) -> Vec<Hit> {
    if k == 0 {
        return Vec::new();
    }
    let mut top = TopK::new(k);
    for m in &v.memtables {
        m.search(metric, query, v.seq, &mut top);
    }
    let tasks: Vec<(&LiveSegment, usize)> = v
        .segments
        .iter()
        .flat_map(|s| {
            (0..s.reader.rows())
                .step_by(CHUNK_ROWS)
                .map(move |start| (s, start))
        })
        .collect();
    let scan = |&(s, start): &(&LiveSegment, usize)| scan_segment(s, metric, query, k, start);
    let seg_top = if !parallel {
        tasks.iter().map(scan).fold(TopK::new(k), |mut a, b| {
            a.merge(b);
            a
        })
    } else {
        tasks.par_iter().map(scan).reduce(
            || TopK::new(k),
            |mut a, b| {
                a.merge(b);
                a
            },
        )
    };
    top.merge(seg_top);
    top.into_sorted()
        .into_iter()
        .map(|n| Hit {
            id: n.id,
            distance: n.distance,
        })
        .collect()
}

fn scan_segment(s: &LiveSegment, metric: Metric, query: &[f32], k: usize, start: usize) -> TopK {
    let dim = s.reader.dim();
    let end = (start + CHUNK_ROWS).min(s.reader.rows());
    let mut top = TopK::new(k);
    let block = s
        .reader
        .vectors()
        .get(start * dim..end * dim)
        .unwrap_or(&[]);
    let ids = s.reader.ids();
    let deleted = &s.deleted;
    exact::scan_block(
        metric,
        query,
        block,
        dim,
        &mut top,
        |r| ids.get(start + r).copied().unwrap_or(u64::MAX),
        |r| deleted.contains(start + r),
    );
    top
}
