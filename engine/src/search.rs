//! Search over a version: memtables exactly; indexed segments by their two-stage search
//! (unless the caller asks for exact); other segments by a brute-force scan in chunks;
//! segments run in parallel with rayon.

use rayon::prelude::*;
use strata_index::{exact, Metric, TopK};

use strata_format::metadata::Metadata;

use crate::error::Result;
use crate::filter::Filter;
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
    /// An exact scan of the rows of a chunk whose metadata passes the filter.
    Filtered(&'a LiveSegment, usize, &'a Filter),
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
    if let Some(f) = &opts.filter {
        f.validate()?;
    }
    let k = opts.k;
    if k == 0 {
        return Ok(Vec::new());
    }
    let ef = opts.ef.unwrap_or(SearchOptions::DEFAULT_EF);
    let rerank = opts.rerank.unwrap_or(SearchOptions::DEFAULT_RERANK);
    let mut top = TopK::new(k);
    for m in &v.memtables {
        match &opts.filter {
            Some(f) => m.search_filtered(query, v.seq, f, &mut top),
            None => m.search(query, v.seq, k, ef, opts.exact, &mut top),
        }
    }
    let mut tasks: Vec<Task<'_>> = Vec::new();
    for s in &v.segments {
        let chunks = (0..s.reader.rows()).step_by(CHUNK_ROWS);
        match (&s.index, opts.exact, &opts.filter) {
            (_, _, Some(f)) => tasks.extend(chunks.map(|start| Task::Filtered(s, start, f))),
            (Some(ix), false, None) => tasks.push(Task::Indexed(s, ix)),
            _ => tasks.extend(chunks.map(|start| Task::Scan(s, start))),
        }
    }
    let run = |t: &Task<'_>| match *t {
        Task::Indexed(s, ix) => {
            match segment_index::search(&s.reader, &s.deleted, ix, metric, query, k, ef, rerank)? {
                Some(top) => Ok(top),
                None => scan_all(s, metric, query, k),
            }
        }
        Task::Scan(s, start) => scan_segment(s, metric, query, k, start, None),
        Task::Filtered(s, start, f) => scan_segment(s, metric, query, k, start, Some(f)),
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
            let metadata = if opts.with_metadata {
                crate::lookup::metadata(v, n.id)?
            } else {
                None
            };
            Ok(Hit {
                id: n.id,
                distance: n.distance,
                payload,
                metadata,
            })
        })
        .collect::<Result<Vec<Hit>>>()
}

fn scan_all(s: &LiveSegment, metric: Metric, query: &[f32], k: usize) -> Result<TopK> {
    let mut all = TopK::new(k);
    for start in (0..s.reader.rows()).step_by(CHUNK_ROWS) {
        all.merge(scan_segment(s, metric, query, k, start, None)?);
    }
    Ok(all)
}

/// The `k` nearest live rows of the chunk of `s` starting at row `start` (and, with a
/// filter, passing it: each row's metadata is decoded and tested, a row without
/// metadata as an empty object).
fn scan_segment(
    s: &LiveSegment,
    metric: Metric,
    query: &[f32],
    k: usize,
    start: usize,
    filter: Option<&Filter>,
) -> Result<TopK> {
    let dim = s.reader.dim();
    let end = (start + CHUNK_ROWS).min(s.reader.rows());
    let mut top = TopK::new(k);
    let block = s.reader.vector_rows(start..end)?;
    // The same rows of the ids section: the scan's row numbers index both.
    let ids = s.reader.id_rows(start..end)?;
    let deleted = &s.deleted;
    let passes = match filter {
        Some(f) => Some(filter_rows(s, start, end, f)?),
        None => None,
    };
    exact::scan_block(
        metric,
        query,
        block,
        dim,
        &mut top,
        |r| ids.get(r).copied().unwrap_or(u64::MAX),
        |r| {
            deleted.contains(start + r)
                || passes
                    .as_ref()
                    .is_some_and(|p| !p.get(r).copied().unwrap_or(false))
        },
    );
    Ok(top)
}

/// Whether each row in `start..end` of `s` is live and passes `filter` (`start` is a
/// multiple of the metadata block size).
fn filter_rows(s: &LiveSegment, start: usize, end: usize, filter: &Filter) -> Result<Vec<bool>> {
    let mut out = Vec::with_capacity(end - start);
    if !s.reader.has_metadata() {
        let pass = filter.matches(&Metadata::new());
        out.extend((start..end).map(|row| pass && !s.deleted.contains(row)));
        return Ok(out);
    }
    let block_rows = strata_format::segment::PAYLOAD_BLOCK_ROWS;
    for block in start / block_rows..end.div_ceil(block_rows) {
        out.extend(crate::records::block_passes(s, block, filter)?);
    }
    out.truncate(end - start);
    Ok(out)
}
