//! Compaction inside the engine: pick with the policy, run the merge job on the
//! compaction pool (a thread budget, so searches keep the other cores), install.
//!
//! Install protocol, under the write lock: rows deleted in an input *after* the merge's
//! snapshot are carried to the output's bitmap through the job's row map; the inputs
//! leave the version and the output takes the newest input's place; then the shared
//! commit (WAL sync, deletion files, manifest rename, publish). The inputs' deletion
//! files are removed at once, their segment files when the last snapshot that can read
//! them is dropped. A crash before the manifest rename leaves the output as an orphan
//! that the next open removes; after it, the inputs are the orphans.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_compaction::{
    choose, choose_full, merge, MergeOutcome, MergeSource, MergeSpec, Merged, Progress, Reason,
    SegmentMeta, Stage,
};
use strata_format::{fsutil, DeletionBitmap, SegmentReader};

use crate::commit::{commit, remove_files};
use crate::error::{CorruptionKind, Error, Result};
use crate::files::{self, FileKind};
use crate::inner::Inner;
use crate::live_segment::LiveSegment;
use crate::priority;
use crate::stats::CompactionReport;

/// The policy's view of a version's segments, oldest first.
pub(crate) fn metas(segments: &[LiveSegment]) -> Vec<SegmentMeta> {
    segments
        .iter()
        .rev()
        .map(|s| SegmentMeta {
            file_no: s.file_no,
            rows: s.reader.rows() as u64,
            deleted: s.deleted.count() as u64,
            bytes: s.reader.file_len(),
        })
        .collect()
}

/// Runs the next compaction the policy (or, with `full`, everything-into-one) asks
/// for: pick the inputs, merge them into a new segment, install it. `Ok(None)`: nothing
/// to do, or the store is shutting down.
pub(crate) fn compact_once(
    inner: &Inner,
    full: bool,
    progress: &Progress<'_>,
) -> Result<Option<CompactionReport>> {
    let _one_at_a_time = inner.compacting.lock();
    let _span = tracing::info_span!("compaction", full).entered();
    let start = Instant::now();
    let Some((reason, inputs)) = pick(inner, full)? else {
        return Ok(None);
    };
    let out_no = {
        let mut st = inner.write.lock();
        inner.ensure_writable(&st)?;
        st.alloc_file_no()
    };
    let path = files::path(&inner.dir, FileKind::Segment, out_no);
    let Some(output) = merge_inputs(inner, &inputs, &path, progress)? else {
        return Ok(None);
    };
    let mut report = CompactionReport {
        reason,
        inputs: inputs.len(),
        rows_in: inputs.iter().map(|s| s.reader.rows() as u64).sum(),
        rows_out: output.as_ref().map_or(0, |(m, _)| m.rows as u64),
        bytes_in: inputs.iter().map(|s| s.reader.file_len()).sum(),
        bytes_out: output.as_ref().map_or(0, |(_, r)| r.file_len()),
        indexed: output.as_ref().is_some_and(|(m, _)| m.indexed),
        build: output.as_ref().map(|(m, _)| m.build.clone()),
        seconds: 0.0,
    };
    #[cfg(feature = "remote")]
    if output.is_some() {
        if let Err(e) = crate::remote::upload_segment(inner, out_no) {
            let _ = inner.opts.vfs.remove(&path);
            return Err(e);
        }
    }
    if !install(inner, &inputs, out_no, output)? {
        let _ = inner.opts.vfs.remove(&path);
        return Ok(None);
    }
    #[cfg(feature = "remote")]
    crate::remote::after_commit(inner);
    report.seconds = start.elapsed().as_secs_f64();
    inner.compactions.record(&report);
    inner.metrics.compacted(report.seconds, report.bytes_out);
    // The inputs' files are removed when the last handle on them goes: this one, unless
    // a search still holds them.
    drop(inputs);
    crate::inventory::publish(inner);
    inner.calibration.notify();
    if let Some(b) = &report.build {
        inner.builds.record(out_no, b.clone());
    }
    tracing::info!(
        reason = ?report.reason,
        inputs = report.inputs,
        rows_in = report.rows_in,
        rows_out = report.rows_out,
        seconds = report.seconds,
        "compacted segments"
    );
    Ok(Some(report))
}

/// The policy's choice on the current segments (with `full`, all of them): why, and the
/// input segments as the snapshot has them. `Ok(None)`: nothing to do.
fn pick(inner: &Inner, full: bool) -> Result<Option<(Reason, Vec<LiveSegment>)>> {
    let v = inner.snapshot();
    let segs = metas(&v.segments);
    let choice = if full {
        choose_full(&segs)
    } else {
        choose(&segs, &inner.opts.compaction.policy)
    };
    let Some(choice) = choice else {
        return Ok(None);
    };
    let inputs = choice
        .inputs
        .iter()
        .map(|f| {
            v.segments
                .iter()
                .find(|s| s.file_no == *f)
                .cloned()
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "the policy chose segment {f}, which the snapshot lacks"
                    ))
                })
        })
        .collect::<Result<_>>()?;
    Ok(Some((choice.reason, inputs)))
}

/// A merge's output: the job's result and the new segment opened, or `None` when every
/// input row was deleted.
type MergeOutput = Option<(Merged, Arc<SegmentReader>)>;

/// Merges `inputs` into a new segment at `path` on the compaction pool and opens it.
/// `Ok(None)`: stopped (shutdown or `progress`). On failure nothing is left at `path`.
fn merge_inputs(
    inner: &Inner,
    inputs: &[LiveSegment],
    path: &std::path::Path,
    progress: &Progress<'_>,
) -> Result<Option<MergeOutput>> {
    let sources: Vec<MergeSource<'_>> = inputs
        .iter()
        .map(|s| MergeSource {
            reader: &s.reader,
            deleted: &s.deleted,
        })
        .collect();
    let spec = MergeSpec {
        fs: &*inner.opts.vfs,
        path,
        metric: inner.metric,
        index: &inner.opts.index,
        unindexed: &inner.opts.unindexed_fields,
        vector_codec: inner.vector_codec,
        analyzer: inner.analyzer,
    };
    let go_on =
        |s: Stage, d: u64, t: u64| !inner.shutdown.load(Ordering::Acquire) && progress(s, d, t);
    let pool = inner.compaction_pool.get_or_init(|| {
        priority::background_pool(
            "strata-merge",
            inner.opts.compaction.threads,
            inner.opts.compaction.low_priority,
        )
    });
    let outcome = match pool {
        Some(pool) => pool.install(|| merge(&sources, &spec, &go_on)),
        None => merge(&sources, &spec, &go_on),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let _ = inner.opts.vfs.remove(path);
            return Err(e.into());
        }
    };
    match outcome {
        MergeOutcome::Stopped => Ok(None),
        MergeOutcome::Empty { .. } => Ok(Some(None)),
        MergeOutcome::Written(m) => {
            let opened = fsutil::sync_dir(&*inner.opts.vfs, &inner.dir)
                .map_err(Error::from)
                .and_then(|()| {
                    crate::live_segment::open_reader(
                        &*inner.opts.vfs,
                        path,
                        inner.opts.resident_front,
                    )
                });
            match opened {
                Ok(r) => Ok(Some(Some((m, Arc::new(r))))),
                Err(e) => {
                    let _ = inner.opts.vfs.remove(path);
                    Err(e)
                }
            }
        }
    }
}

/// Swaps `inputs` for the output in the current version and commits. False when the
/// store is shutting down (nothing changed).
fn install(
    inner: &Inner,
    inputs: &[LiveSegment],
    out_no: u64,
    output: MergeOutput,
) -> Result<bool> {
    let mut st = inner.write.lock();
    if inner.shutdown.load(Ordering::Acquire) {
        return Ok(false);
    }
    inner.ensure_writable(&st)?;
    let mut v = (*st.version).clone();
    // Where each live input row went.
    let mut out_row: Vec<Vec<u32>> = inputs
        .iter()
        .map(|s| vec![u32::MAX; s.reader.rows()])
        .collect();
    if let Some((m, _)) = &output {
        for (o, &(src, row)) in m.origin.iter().enumerate() {
            out_row[src as usize][row as usize] = o as u32;
        }
    }
    let mut deleted = DeletionBitmap::new(output.as_ref().map_or(0, |(m, _)| m.rows));
    let mut position = usize::MAX;
    let mut obsolete = Vec::new();
    let mut retired = Vec::new();
    for (i, snap) in inputs.iter().enumerate() {
        let Some(at) = v.segments.iter().position(|s| s.file_no == snap.file_no) else {
            // Only compaction removes segments, and it runs one at a time.
            return Err(Error::Corruption {
                path: inner.dir.clone(),
                offset: 0,
                kind: CorruptionKind::Inconsistent("a compaction input left the store"),
            });
        };
        let cur = v.segments.remove(at);
        position = position.min(at);
        // Deleted while the merge ran: tombstoned in the output too. Bitmaps are
        // copy-on-write, so an unchanged one is the very same allocation.
        let unchanged = Arc::ptr_eq(&cur.deleted, &snap.deleted);
        let rows_to_check = if unchanged { 0 } else { cur.reader.rows() };
        for row in 0..rows_to_check {
            if cur.deleted.contains(row) && !snap.deleted.contains(row) {
                if let Some(&o) = out_row[i].get(row).filter(|&&o| o != u32::MAX) {
                    deleted.insert(o as usize);
                }
            }
        }
        retired.push(cur.retire.clone());
        if let Some(d) = cur.deletion_file_no {
            obsolete.push(files::path(&inner.dir, FileKind::Deletion, d));
        }
    }
    if let Some((_, reader)) = output {
        let seg = LiveSegment::new(inner.opts.vfs.clone(), out_no, reader, deleted, None);
        v.segments.insert(position.min(v.segments.len()), seg);
    }
    let res = commit(inner, &mut st, v, None, obsolete);
    let obsolete = match res {
        Ok(o) => o,
        Err(e) => {
            // The manifest may or may not name the output: only a reopen can tell, so
            // the store stops, and the inputs' files stay (not armed).
            inner.poison_locked(&e);
            return Err(e);
        }
    };
    for r in retired {
        r.arm();
    }
    drop(st);
    remove_files(&*inner.opts.vfs, obsolete);
    Ok(true)
}

/// The background compactor: runs the policy whenever the store changes (and every few
/// seconds), one compaction at a time on the compaction pool. A failed merge leaves the
/// store as it was and is retried after a pause.
pub(crate) fn spawn_compactor(inner: Arc<Inner>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("strata-compact".into())
        .spawn(move || {
            priority::lower_thread_priority(inner.opts.compaction.low_priority);
            let mut pause = Duration::from_millis(200);
            loop {
                if inner.shutdown.load(Ordering::Acquire) || inner.is_poisoned()
                {
                    return;
                }
                match compact_once(&inner, false, &|_, _, _| true) {
                    Ok(Some(_)) => {
                        pause = Duration::from_millis(200);
                        continue;
                    }
                    Ok(None) => pause = Duration::from_millis(200),
                    Err(e) if inner.is_poisoned() => {
                        tracing::error!(error = %e, "background compaction failed and stopped the store");
                        inner.record_background_error(&e);
                        inner.compactions.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // Closing stops a merge under way: not a failure.
                    Err(_) if inner.shutdown.load(Ordering::Acquire) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "background compaction failed; retrying after a pause");
                        inner.record_background_error(&e);
                        inner.compactions.failed.fetch_add(1, Ordering::Relaxed);
                        pause = (pause * 2).min(Duration::from_secs(10));
                    }
                }
                let mut st = inner.write.lock();
                if !inner.shutdown.load(Ordering::Acquire) {
                    inner
                        .changed
                        .wait_for(&mut st, pause.max(Duration::from_millis(200)));
                }
            }
        })
}
