//! Measuring a segment's calibration ([`crate::calibration`]), measuring sampled
//! searches' recall ([`crate::observed_recall`]), and the background thread that does
//! both.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;
use strata_index::{exact, Metric, TopK};
use strata_vfs::Vfs;

use crate::calibration::{Calibration, CalibrationSource, CALIBRATION_K, LADDER, SATURATED};
use crate::error::Result;
use crate::inner::Inner;
use crate::live_segment::LiveSegment;
use crate::observed_recall::{Measured, RecallMonitor, Sample};
use crate::segment_index::{self, Eligible, Walk};
use crate::version::Version;
use crate::SearchOptions;

/// Sampled searches measured before the thread looks for calibration work.
const MEASURED_PER_PASS: usize = 32;

/// Rows of a segment searched for when it is calibrated on its rows.
pub(crate) const ROW_QUERIES: usize = 200;

/// One calibration query: a vector and, for a row of the segment, that row (excluded
/// from both answers, and hidden from the walk, which would otherwise reach it and find
/// its neighbours in its own graph row: the row is searched for as if held out).
struct Probe {
    query: Vec<f32>,
    own_row: Option<usize>,
}

/// Measures `s`'s calibration on `queries` (normalised as searched), or on a seeded
/// sample of its rows when `queries` is `None`. `None` when the segment has no graph
/// index or too few live rows to measure, or when `stop` turns true between widths.
/// With `parallel`, queries are measured on the current rayon pool.
pub(crate) fn calibrate_segment(
    s: &LiveSegment,
    metric: Metric,
    queries: Option<&[Vec<f32>]>,
    parallel: bool,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Calibration>> {
    let Some(ix) = &s.index else {
        return Ok(None);
    };
    let rows = s.reader.rows();
    let live = rows - s.deleted.count().min(rows);
    if live <= 2 * CALIBRATION_K {
        return Ok(None);
    }
    let (source, probes) = match queries {
        Some(q) => (
            CalibrationSource::Queries,
            q.iter()
                .map(|q| Probe {
                    query: q.clone(),
                    own_row: None,
                })
                .collect::<Vec<_>>(),
        ),
        None => (CalibrationSource::Rows, row_probes(s)?),
    };
    if probes.is_empty() {
        return Ok(None);
    }
    let Some(truths) = exact_ids(s, metric, &probes, CALIBRATION_K, parallel, stop)? else {
        return Ok(None);
    };
    let mut efs = Vec::new();
    let mut recalls = Vec::new();
    for &ef in &LADDER {
        if stop() {
            return Ok(None);
        }
        let walk = Walk {
            k: CALIBRATION_K,
            ef,
            rerank: crate::SearchOptions::DEFAULT_RERANK,
            prefetch: crate::Prefetch::Auto,
        };
        let one = |(p, t): (&Probe, &HashSet<u64>)| -> Result<f64> {
            let found = walk_ids(s, ix, metric, p, &walk)?;
            let hit = found.iter().filter(|id| t.contains(id)).count();
            Ok(if t.is_empty() {
                1.0
            } else {
                hit as f64 / t.len() as f64
            })
        };
        let r: Vec<f64> = if parallel {
            probes
                .par_iter()
                .zip(&truths)
                .map(one)
                .collect::<Result<_>>()?
        } else {
            probes.iter().zip(&truths).map(one).collect::<Result<_>>()?
        };
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        efs.push(ef);
        recalls.push(r);
        if mean >= SATURATED {
            break;
        }
    }
    Ok(Some(Calibration::from_recalls(source, &efs, &recalls)))
}

/// A seeded sample of `s`'s live rows as probes (the seed is the segment's number: the
/// same segment is calibrated the same way).
fn row_probes(s: &LiveSegment) -> Result<Vec<Probe>> {
    let rows = s.reader.rows();
    let mut rng = strata_vfs::SimRng::new(s.file_no ^ 0x5eed_ca11_b7a7_e000);
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    let mut taken = HashSet::new();
    // At most four draws per row wanted: deleted and repeated rows are passed over.
    for _ in 0..4 * ROW_QUERIES {
        if out.len() == ROW_QUERIES.min(rows / 2) {
            break;
        }
        let r = rng.below(rows as u64) as usize;
        if s.deleted.contains(r) || !taken.insert(r) {
            continue;
        }
        let v = s.reader.vector_rows(r..r + 1, &mut scratch)?;
        out.push(Probe {
            query: v.to_vec(),
            own_row: Some(r),
        });
    }
    Ok(out)
}

/// The exact top `k` live rows of `s` for each probe, as ids. The
/// segment's vectors are read once, a chunk at a time, each chunk scored against every
/// probe (on a store larger than memory, one pass over the file). `None` when `stop`
/// turns true between chunks.
fn exact_ids(
    s: &LiveSegment,
    metric: Metric,
    probes: &[Probe],
    k: usize,
    parallel: bool,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Vec<HashSet<u64>>>> {
    const CHUNK: usize = 4 * 1024;
    let dim = s.reader.dim();
    let mut tops: Vec<TopK> = probes.iter().map(|_| TopK::new(k)).collect();
    let mut scratch = Vec::new();
    for start in (0..s.reader.rows()).step_by(CHUNK) {
        if stop() {
            return Ok(None);
        }
        let end = (start + CHUNK).min(s.reader.rows());
        let block = s.reader.vector_rows(start..end, &mut scratch)?;
        let score = |(top, p): (&mut TopK, &Probe)| {
            exact::scan_block(
                metric,
                &p.query,
                block,
                dim,
                top,
                |r| (start + r) as u64,
                |r| s.deleted.contains(start + r) || p.own_row == Some(start + r),
            )
        };
        if parallel {
            tops.par_iter_mut().zip(probes).for_each(score);
        } else {
            tops.iter_mut().zip(probes).for_each(score);
        }
    }
    tops.into_iter()
        .map(|top| {
            let top = segment_index::rows_to_ids(&s.reader, top, k)?;
            Ok(top.into_sorted().into_iter().map(|n| n.id).collect())
        })
        .collect::<Result<_>>()
        .map(Some)
}

/// The ids the segment's two-stage search returns for `p` with `walk` (its exact scan
/// when the walk declines).
fn walk_ids(
    s: &LiveSegment,
    ix: &crate::segment_index::SegmentIndex,
    metric: Metric,
    p: &Probe,
    walk: &Walk,
) -> Result<Vec<u64>> {
    let skip = |r: usize| s.deleted.contains(r) || p.own_row == Some(r);
    let rows = s.reader.rows();
    // The hidden row counts as live: counted out, it would look like a deletion and
    // make the walk decline (for an exact scan) where a real search walks.
    let live = rows - s.deleted.count().min(rows);
    let eligible = Eligible {
        skip: &skip,
        count: live,
        filtered: false,
        hidden: p.own_row,
    };
    match segment_index::search(&s.reader, &eligible, ix, metric, &p.query, walk)? {
        Some(top) => Ok(top.into_sorted().into_iter().map(|n| n.id).collect()),
        None => Ok(
            exact_ids(s, metric, std::slice::from_ref(p), walk.k, false, &|| false)?
                .into_iter()
                .flatten()
                .flatten()
                .collect(),
        ),
    }
}

/// Starts the thread that calibrates segments lacking a calibration (new ones from
/// flushes and compactions, those of a store opened without its `CALIBRATION` file) and
/// calibrates again, on queries, those calibrated on rows once enough queries were
/// sampled. It runs at background priority, one core, and writes the file after each
/// pass that changed something.
pub(crate) fn spawn_calibrator(inner: Arc<Inner>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("strata-calibrate".into())
        .spawn(move || {
            crate::priority::lower_thread_priority(true);
            calibrator(&inner);
        })
}

fn calibrator(inner: &Inner) {
    let cal = &inner.calibration;
    loop {
        {
            // A search's wake-up can be missed (it never waits for this lock): each
            // second the queue of sampled searches is looked at all the same.
            let queued = || inner.recall.as_ref().is_some_and(|m| m.pending() > 0);
            let mut pending = cal.pending.lock();
            while !*pending && !inner.shutdown.load(Ordering::Acquire) && !queued() {
                cal.wake.wait_for(&mut pending, Duration::from_secs(1));
            }
            *pending = false;
        }
        if inner.shutdown.load(Ordering::Acquire) {
            return;
        }
        let stop = || inner.shutdown.load(Ordering::Acquire);
        if let Some(monitor) = &inner.recall {
            measure_queued(inner, monitor, &stop);
        }
        if !inner.opts.background_calibration {
            continue;
        }
        match calibrate_pass(inner, false, &stop) {
            Ok(0) => {}
            Ok(_) => {
                if let Err(e) = persist(inner) {
                    tracing::warn!(error = %e, "writing the calibration file failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "calibrating a segment failed; searches use the default width")
            }
        }
    }
}

/// Calibrates every segment of the current version that needs it: those without a
/// calibration, and those calibrated on rows once the query sample is large enough.
/// Returns how many it calibrated. With `parallel`, each is measured on the current
/// rayon pool.
pub(crate) fn calibrate_pass(
    inner: &Inner,
    parallel: bool,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<usize> {
    let v = inner.snapshot();
    let has_queries = inner.calibration.has_queries();
    // Copied only when a segment needs them.
    let mut queries: Option<Option<Vec<Vec<f32>>>> = None;
    let mut done = 0;
    for s in &v.segments {
        if s.index.is_none() {
            continue;
        }
        let seen = s.calibration.load_full();
        let needed = match seen.as_deref() {
            None => true,
            Some(c) => c.source == CalibrationSource::Rows && has_queries,
        };
        if !needed {
            continue;
        }
        if stop() {
            break;
        }
        let queries = queries.get_or_insert_with(|| inner.calibration.queries());
        if let Some(c) = calibrate_segment(s, inner.metric, queries.as_deref(), parallel, stop)? {
            tracing::debug!(
                segment = s.file_no,
                source = ?c.source,
                queries = c.queries,
                "calibrated a segment"
            );
            if replace_unless_newer(s, &seen, c) {
                done += 1;
            }
        }
    }
    Ok(done)
}

/// Measures the queued sampled searches until the queue is empty or `stop`.
/// At most [`MEASURED_PER_PASS`] of them, so that segments waiting for a calibration
/// are not starved by a steady stream of samples (the thread comes back at once).
fn measure_queued(inner: &Inner, monitor: &RecallMonitor, stop: &(dyn Fn() -> bool + Sync)) {
    for _ in 0..MEASURED_PER_PASS {
        if stop() {
            return;
        }
        let Some(sample) = monitor.pop() else {
            return;
        };
        let measured = measure(inner, &sample, stop);
        let measured = match measured {
            Ok(Some(m)) => m,
            Ok(None) => {
                monitor.done();
                continue;
            }
            Err(e) => {
                monitor.done();
                tracing::warn!(error = %e, "measuring a sampled search failed");
                continue;
            }
        };
        if monitor.config.adapt {
            // Adapting calibrates on the queries served lately: every measured one
            // joins the sample.
            inner.calibration.sample.lock().push(sample.query);
        }
        if monitor.record(measured) {
            if let Some(queries) = inner.calibration.queries() {
                tracing::info!(
                    "observed recall below target: calibrating the segments again on recent queries"
                );
                let done =
                    calibrate_all(inner, &queries, false, true, stop).and_then(|()| persist(inner));
                match done {
                    // Counted once the new calibrations are in place.
                    Ok(()) => {
                        monitor.recalibrations.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "calibrating again failed"),
                }
            }
        }
        if let Some(e) = monitor.estimate() {
            inner.metrics.observed_recall(&e);
        }
        monitor.done();
    }
    if monitor.pending() > 0 {
        inner.calibration.notify();
    }
}

/// The recall of a sampled search against the exact answer on its snapshot, and of
/// each indexed segment's own search (unfiltered searches only). `None` when there is
/// no answer to measure against, or when `stop` turns true (between segments).
fn measure(
    inner: &Inner,
    sample: &Sample,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Measured>> {
    let k = sample.opts.k;
    let exact_opts = SearchOptions {
        filter: sample.opts.filter.clone(),
        ..SearchOptions::exact(k)
    };
    let v = &sample.version;
    let truth: HashSet<u64> = crate::search::search(
        v,
        inner.metric,
        crate::KeyKind::U64,
        &sample.query,
        &exact_opts,
        false,
    )?
    .iter()
    .map(|h| h.id)
    .collect();
    if truth.is_empty() {
        return Ok(None);
    }
    let found = sample.hits.iter().filter(|id| truth.contains(id)).count();
    let mut segments = Vec::new();
    if sample.opts.filter.is_none() && !sample.opts.exact {
        let base = crate::search::base_walk(&sample.opts);
        let probe = Probe {
            query: sample.query.clone(),
            own_row: None,
        };
        for s in &v.segments {
            let Some(ix) = &s.index else { continue };
            let walk = crate::search::segment_walk(s, &sample.opts, base);
            let Some(seg_truth) = exact_ids(
                s,
                inner.metric,
                std::slice::from_ref(&probe),
                k,
                false,
                stop,
            )?
            else {
                return Ok(None);
            };
            let seg_truth = seg_truth.into_iter().next().unwrap_or_default();
            if seg_truth.is_empty() {
                continue;
            }
            let got = walk_ids(s, ix, inner.metric, &probe, &walk)?;
            let hit = got.iter().filter(|id| seg_truth.contains(id)).count();
            segments.push((
                s.reader.vector_codec().name(),
                hit as f64 / seg_truth.len() as f64,
            ));
        }
    }
    Ok(Some(Measured {
        recall: found as f64 / truth.len() as f64,
        target: sample
            .opts
            .target_recall
            .filter(|_| sample.opts.ef.is_none() && !sample.opts.exact),
        segments,
    }))
}

/// Stores `c` as `s`'s calibration unless another was stored since `seen` was read
/// (a calibration stored meanwhile, by [`crate::Db::calibrate`], is newer and stays).
fn replace_unless_newer(s: &LiveSegment, seen: &Option<Arc<Calibration>>, c: Calibration) -> bool {
    let before = s.calibration.compare_and_swap(seen, Some(Arc::new(c)));
    match (before.as_ref(), seen.as_ref()) {
        (None, None) => true,
        (Some(now), Some(then)) => Arc::ptr_eq(now, then),
        _ => false,
    }
}

/// Calibrates every indexed segment of the current version on `queries` (with
/// `parallel`, on the current rayon pool), until `stop`. With `keep_newer`, a
/// segment calibrated by another caller meanwhile keeps that calibration.
pub(crate) fn calibrate_all(
    inner: &Inner,
    queries: &[Vec<f32>],
    parallel: bool,
    keep_newer: bool,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<()> {
    let v = inner.snapshot();
    for s in &v.segments {
        if stop() {
            break;
        }
        let seen = s.calibration.load_full();
        if let Some(c) = calibrate_segment(s, inner.metric, Some(queries), parallel, stop)? {
            if keep_newer {
                replace_unless_newer(s, &seen, c);
            } else {
                s.calibration.store(Some(Arc::new(c)));
            }
        }
    }
    Ok(())
}

/// Writes the store's `CALIBRATION` file.
pub(crate) fn persist(inner: &Inner) -> Result<()> {
    // One writer at a time: every write goes through the same temporary file.
    let _writing = inner.calibration.persisting.lock();
    let tables = tables(&inner.snapshot());
    let bytes = {
        let sample = inner.calibration.sample.lock();
        crate::calibration::encode(inner.dim, &tables, &sample)
    };
    crate::calibration::store(&*inner.opts.vfs, &inner.dir, &bytes)
}

/// The calibrations of `v`'s segments that have one, by segment file number.
pub(crate) fn tables(v: &Version) -> Vec<(u64, Arc<Calibration>)> {
    v.segments
        .iter()
        .filter_map(|s| s.calibration.load_full().map(|c| (s.file_no, c)))
        .collect()
}

/// The calibrations of `v`'s segments that have one, newest first.
pub(crate) fn report(v: &Version) -> Vec<crate::calibration::SegmentCalibration> {
    v.segments
        .iter()
        .filter_map(|s| {
            let c = s.calibration.load_full()?;
            Some(crate::calibration::SegmentCalibration {
                segment: s.file_no,
                rows: s.reader.rows(),
                source: c.source,
                queries: c.queries,
                recall_at: c
                    .points
                    .iter()
                    .map(|p| (p.ef as usize, f64::from(p.mean)))
                    .collect(),
                default_ef: c.ef_for(crate::SearchOptions::DEFAULT_TARGET_RECALL, CALIBRATION_K),
            })
        })
        .collect()
}

/// Reads `dir`'s `CALIBRATION` file into the cells of `v`'s segments that have none
/// (with `replace`, into every cell whose table differs: a reader following a writer)
/// and returns its query sample; tables of segments `v` does not hold are ignored. A
/// missing file is no calibration; an unreadable or damaged one is logged and ignored.
pub(crate) fn load(
    fs: &dyn Vfs,
    dir: &Path,
    dim: usize,
    v: &Version,
    replace: bool,
) -> Vec<Vec<f32>> {
    let path = dir.join(crate::calibration::FILE_NAME);
    let bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "calibration unreadable; segments are calibrated again");
            return Vec::new();
        }
    };
    match crate::calibration::decode(&bytes, dim) {
        Ok(d) => {
            for (file_no, c) in d.tables {
                if let Some(s) = v.segments.iter().find(|s| s.file_no == file_no) {
                    let current = s.calibration.load_full();
                    if replace && current.as_deref() != Some(&c) || current.is_none() {
                        s.calibration.store(Some(Arc::new(c)));
                    }
                }
            }
            d.queries
        }
        Err(crate::calibration::Unusable(why)) => {
            tracing::warn!(path = %path.display(), why, "calibration file not used; segments are calibrated again");
            Vec::new()
        }
    }
}
