//! Search over a version: memtables exactly; indexed segments by their two-stage search
//! (unless the caller asks for exact); other segments by a brute-force scan in chunks;
//! segments run in parallel with rayon.

use rayon::prelude::*;
use strata_index::{exact, Metric, TopK};

use crate::error::Result;
use crate::filter::Filter;
use crate::live_segment::LiveSegment;
use crate::options::SearchOptions;
use crate::record::Hit;
use crate::segment_index::{self, Eligible, SegmentIndex, Walk};
use crate::version::Version;

/// Rows per parallel task when scanning a segment.
const CHUNK_ROWS: usize = 32 * 1024;

/// Below this many segment rows a search runs on the caller's thread.
pub(crate) const PARALLEL_MIN_ROWS: usize = 2 * CHUNK_ROWS;

enum Task<'a> {
    Indexed(&'a LiveSegment, &'a SegmentIndex),
    Scan(&'a LiveSegment, usize),
    /// The live rows of a segment that pass the filter: planned from their exact count.
    Filtered(&'a LiveSegment, &'a Filter),
}

/// The `k` nearest live rows of `v` to `query` (already normalised for cosine). With
/// `parallel`, segment tasks run on the current rayon pool. A segment whose sections do
/// not hold the rows it claims fails the search with [`crate::Error::Corruption`].
pub(crate) fn search(
    v: &Version,
    metric: Metric,
    keys: crate::KeyKind,
    query: &[f32],
    opts: &SearchOptions,
    parallel: bool,
) -> Result<Vec<Hit>> {
    if let Some(f) = &opts.filter {
        f.validate()?;
    }
    if let Some(t) = opts.target_recall {
        if !(t > 0.0 && t <= 1.0) {
            return Err(crate::InvalidArgument::TargetRecall(t).into());
        }
    }
    let k = opts.k;
    if k == 0 {
        return Ok(Vec::new());
    }
    let walk = base_walk(opts);
    let ef = walk.ef;
    let mut top = TopK::new(k);
    for m in &v.memtables {
        match &opts.filter {
            Some(f) => m.search_filtered(query, v.seq, f, &mut top)?,
            None => m.search(query, v.seq, k, ef, opts.exact, &mut top),
        }
    }
    let mut tasks: Vec<Task<'_>> = Vec::new();
    for s in &v.segments {
        let chunks = (0..s.reader.rows()).step_by(CHUNK_ROWS);
        match (&s.index, opts.exact, &opts.filter) {
            (_, _, Some(f)) => tasks.push(Task::Filtered(s, f)),
            (Some(ix), false, None) => tasks.push(Task::Indexed(s, ix)),
            _ => tasks.extend(chunks.map(|start| Task::Scan(s, start))),
        }
    }
    let walk_of = |s: &LiveSegment| segment_walk(s, opts, walk);
    let run = |t: &Task<'_>| match *t {
        Task::Indexed(s, ix) => {
            let walk = walk_of(s);
            let skip = |r: usize| s.deleted.contains(r);
            let eligible = Eligible::live(&s.deleted, &skip);
            match segment_index::search(&s.reader, &eligible, ix, metric, query, &walk)? {
                Some(top) => Ok(top),
                None => scan_all(s, metric, query, k),
            }
        }
        Task::Scan(s, start) => scan_segment(s, metric, query, k, start),
        Task::Filtered(s, f) => {
            let plan = FilteredPlan {
                exact: opts.exact,
                walk: walk_of(s),
            };
            search_filtered(s, metric, query, f, &plan)
        }
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
    hits(v, keys, top.into_sorted(), opts)
}

/// The walk of an indexed segment: `walk` (from the options), at the width its
/// calibration gives for the target recall when the options set no width.
pub(crate) fn segment_walk(s: &LiveSegment, opts: &SearchOptions, walk: Walk) -> Walk {
    match (opts.ef, opts.target_recall) {
        (None, Some(target)) => match s.calibration.load().as_deref() {
            Some(c) => Walk {
                ef: c.ef_for(target, walk.k),
                ..walk
            },
            None => walk,
        },
        _ => walk,
    }
}

/// The walk the options ask of every indexed segment, before calibration.
pub(crate) fn base_walk(opts: &SearchOptions) -> Walk {
    Walk {
        k: opts.k,
        ef: opts.ef.unwrap_or(SearchOptions::DEFAULT_EF),
        rerank: opts.rerank.unwrap_or(SearchOptions::DEFAULT_RERANK),
        prefetch: opts.prefetch,
    }
}

/// The hits of `found` (ids with distances, best first), with what `opts` asks for read
/// from the same snapshot `v`.
pub(crate) fn hits(
    v: &Version,
    keys: crate::KeyKind,
    found: Vec<strata_index::Neighbor>,
    opts: &SearchOptions,
) -> Result<Vec<Hit>> {
    let mut hits = Vec::with_capacity(found.len());
    for n in found {
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
        let text = if opts.with_text {
            crate::lookup::text(v, n.id)?
        } else {
            None
        };
        let key = match keys {
            crate::KeyKind::String => crate::lookup::key(v, n.id)?,
            crate::KeyKind::U64 => None,
        };
        hits.push(Hit {
            id: n.id,
            key,
            distance: n.distance,
            payload,
            metadata,
            text,
        });
    }
    Ok(hits)
}

fn scan_all(s: &LiveSegment, metric: Metric, query: &[f32], k: usize) -> Result<TopK> {
    let mut all = TopK::new(k);
    for start in (0..s.reader.rows()).step_by(CHUNK_ROWS) {
        all.merge(scan_segment(s, metric, query, k, start)?);
    }
    Ok(all)
}

/// The `k` nearest live rows of the chunk of `s` starting at row `start`.
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
    let mut scratch = Vec::new();
    let block = s.reader.vector_rows(start..end, &mut scratch)?;
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

/// The rows of a segment that pass a filter: a row set, or for a range on one path of
/// integers the rows whose value is in it (tested per row; deleted rows masked here).
enum Pass {
    Set(crate::field_index::RowSet),
    Range(crate::field_index::IntRange),
}

impl Pass {
    /// Rows passing (for a range, deleted rows included: an upper bound).
    fn count(&self) -> usize {
        match self {
            Pass::Set(p) => p.count(),
            Pass::Range(r) => r.len(),
        }
    }

    fn contains(&self, row: usize, s: &LiveSegment) -> bool {
        match self {
            Pass::Set(p) => p.contains(row),
            Pass::Range(r) => r.contains(row) && !s.deleted.contains(row),
        }
    }

    fn rows(&self, s: &LiveSegment) -> Vec<usize> {
        match self {
            Pass::Set(p) => p.iter().collect(),
            Pass::Range(r) => r.rows().filter(|&row| !s.deleted.contains(row)).collect(),
        }
    }
}

/// The knobs of a filtered search of one segment.
struct FilteredPlan {
    exact: bool,
    walk: Walk,
}

/// Whether the graph walk beats an exact scan of `count` eligible rows out of `rows`:
/// the walk's beam is widened to `ef · rows / count` to find `ef` eligible candidates,
/// and each beam node costs its neighbours' PQ distances (about 16 full distances,
/// measured on GloVe-50, 389k rows, `ef` 128: the walk wins at 10 % passing, the scan at
/// 1 %); the scan costs `count` full distances, each a cache miss when the passing rows
/// are scattered.
fn graph_pays(count: usize, rows: usize, ef: usize) -> bool {
    (count as u128) * (count as u128) > 16 * (ef as u128) * (rows as u128)
}

/// The `k` nearest live rows of `s` that pass `f`: the segment's metadata index gives
/// them exactly; few of them are scanned exactly, many are found by the graph walk that
/// passes through the others without returning them (and falls back to the exact scan
/// when it finds too few).
fn search_filtered(
    s: &LiveSegment,
    metric: Metric,
    query: &[f32],
    f: &Filter,
    plan: &FilteredPlan,
) -> Result<TopK> {
    let ix = s.field_index()?;
    let pass = match ix.int_range(f) {
        Some(range) => Pass::Range(range),
        None => Pass::Set(crate::records::passing_rows(s, f)?),
    };
    let rows = s.reader.rows();
    let count = pass.count();
    let k = plan.walk.k;
    if count == 0 {
        return Ok(TopK::new(k));
    }
    if let (Some(ix), false) = (&s.index, plan.exact) {
        if graph_pays(count, rows, plan.walk.ef.max(k)) {
            let skip = |r: usize| !pass.contains(r, s);
            let eligible = Eligible {
                skip: &skip,
                count,
                filtered: true,
                hidden: None,
            };
            let found = segment_index::search(&s.reader, &eligible, ix, metric, query, &plan.walk)?;
            if let Some(top) = found {
                return Ok(top);
            }
        }
    }
    // The passing rows are scattered: fetch a few rows ahead so that their vectors are
    // on their way to the cache while earlier ones are scored.
    const AHEAD: usize = 8;
    let passing: Vec<usize> = pass.rows(s);
    let mut rows_top = TopK::new(k);
    let mut scratch = Vec::with_capacity(s.reader.dim());
    for (i, &r) in passing.iter().enumerate() {
        if let Some(&next) = passing.get(i + AHEAD) {
            strata_index::distance::prefetch_all(s.reader.stored_vector(next));
        }
        let v = s.reader.vector_rows(r..r + 1, &mut scratch)?;
        let d = metric.distance(query, v);
        if d <= rows_top.threshold() {
            rows_top.push(r as u64, d);
        }
    }
    segment_index::rows_to_ids(&s.reader, rows_top, k)
}
