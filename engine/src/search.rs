//! Search over a version: memtables exactly; indexed segments by their two-stage search
//! (unless the caller asks for exact); other segments by a brute-force scan in chunks;
//! segments run in parallel with rayon.

use rayon::prelude::*;
use strata_index::{exact, Metric, TopK};

use crate::error::Result;
use crate::live_segment::LiveSegment;
use crate::options::SearchOptions;
use crate::record::Hit;
use crate::segment_index::{self, SegmentIndex};
use crate::version::Version;

/// Rows per parallel task when scanning a segment.
const CHUNK_ROWS: usize = 32 * 1024;

/// Below this many segment rows a search runs on the caller's thread.
pub(crate) const PARALLEL_MIN_ROWS: usize = 2 * CHUNK_ROWS;

enum Task<'a> {
    Indexed(&'a LiveSegment, &'a SegmentIndex),
    Scan(&'a LiveSegment, usize),
}

/// The `k` nearest live rows of `v` to `query` (already normalised for cosine). With
/// `parallel`, segment tasks run on the current rayon pool. A segment whose sections do
/// not hold the rows it claims fails the search with [`crate::Error::Corruption`].
pub(crate) fn search(
    v: &Version,
    metric: Metric,
    query: &[f32],
    opts: &SearchOptions,
    parallel: bool,
) -> Result<Vec<Hit>> {
    let k = opts.k;
    if k == 0 {
        return Ok(Vec::new());
    }
    let ef = opts.ef.unwrap_or(SearchOptions::DEFAULT_EF);
    let rerank = opts.rerank.unwrap_or(SearchOptions::DEFAULT_RERANK);
    let mut top = TopK::new(k);
    for m in &v.memtables {
        m.search(query, v.seq, k, ef, opts.exact, &mut top);
    }
    let mut tasks: Vec<Task<'_>> = Vec::new();
    for s in &v.segments {
        match (&s.index, opts.exact) {
            (Some(ix), false) => tasks.push(Task::Indexed(s, ix)),
            _ => tasks.extend(
                (0..s.reader.rows())
                    .step_by(CHUNK_ROWS)
                    .map(|start| Task::Scan(s, start)),
            ),
        }
    }
    let run = |t: &Task<'_>| match *t {
        Task::Indexed(s, ix) => {
            match segment_index::search(&s.reader, &s.deleted, ix, metric, query, k, ef, rerank)? {
                Some(top) => Ok(top),
                None => scan_all(s, metric, query, k),
            }
        }
        Task::Scan(s, start) => scan_segment(s, metric, query, k, start),
    };
    let merge = |a: Result<TopK>, b: Result<TopK>| {
        let (mut a, b) = (a?, b?);
        a.merge(b);
        Ok(a)
    };
    let seg_top = if parallel {
        tasks.par_iter().map(run).reduce(|| Ok(TopK::new(k)), merge)
    } else {
        tasks.iter().map(run).fold(Ok(TopK::new(k)), merge)
    }?;
    top.merge(seg_top);
    top.into_sorted()
        .into_iter()
        .map(|n| {
            let payload = if opts.with_payload {
                crate::lookup::payload(v, n.id)?
            } else {
                None
            };
            Ok(Hit {
                id: n.id,
                distance: n.distance,
                payload,
            })
        })
        .collect::<Result<Vec<Hit>>>()
}

fn scan_all(s: &LiveSegment, metric: Metric, query: &[f32], k: usize) -> Result<TopK> {
    let mut all = TopK::new(k);
    for start in (0..s.reader.rows()).step_by(CHUNK_ROWS) {
        all.merge(scan_segment(s, metric, query, k, start)?);
    }
    Ok(all)
}

fn scan_segment(
    s: &LiveSegment,
    metric: Metric,
    query: &[f32],
    k: usize,
    start: usize,
) -> Result<TopK> {
    let dim = s.reader.dim();
    let end = (start + CHUNK_ROWS).min(s.reader.rows());
    let mut top = TopK::new(k);
    let block = s.reader.vector_rows(start..end)?;
    // The same rows of the ids section: the scan's row numbers index both.
    let ids = s.reader.id_rows(start..end)?;
    let deleted = &s.deleted;
    exact::scan_block(
        metric,
        query,
        block,
        dim,
        &mut top,
        |r| ids.get(r).copied().unwrap_or(u64::MAX),
        |r| deleted.contains(start + r),
    );
    Ok(top)
}
