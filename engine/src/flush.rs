//! Background work: turning frozen memtables into segments, and periodic WAL syncs.
//!
//! A flush writes the segment outside the write lock, then installs it under the lock:
//! sync the WAL (so every bit about to be persisted belongs to a durable write), write
//! the changed deletion files, publish the manifest (the commit point), publish the new
//! version, and only then delete the WAL files and deletion files the manifest no longer
//! names. A crash before the manifest rename leaves orphans that the next open removes;
//! after it, the WAL files may linger and are removed at open (`wal_min_no`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use strata_compaction::build::{write_segment, SegmentRows};
use strata_format::{fsutil, DeletionBitmap, SegmentReader};

use crate::commit::{commit, remove_files};
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::inner::Inner;
use crate::live_segment::LiveSegment;
use crate::memtable::{Frozen, Memtable};
use crate::priority;
use crate::stats::WriteCounters;

pub(crate) fn spawn_flusher(inner: Arc<Inner>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("strata-flush".into())
        .spawn(move || flusher(&inner))
}

pub(crate) fn spawn_syncer(inner: Arc<Inner>, every: Duration) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("strata-sync".into())
        .spawn(move || {
            let mut st = inner.write.lock();
            while !inner.shutdown.load(Ordering::Acquire) && !inner.is_poisoned() {
                inner.changed.wait_for(&mut st, every);
                drop(st);
                if let Err(e) = inner.wal.sync() {
                    // The store is stopped from here on: one report, then no more syncs.
                    let e = inner.wal_failed(e);
                    tracing::error!(error = %e, "periodic WAL sync failed; the store stops taking writes");
                    inner.record_background_error(&e);
                    return;
                }
                st = inner.write.lock();
            }
        })
}

/// Links memtable rows into the active memtable's graph as they arrive; parks when
/// caught up (writers unpark it).
pub(crate) fn spawn_indexer(inner: Arc<Inner>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("strata-index".into())
        .spawn(move || {
            let (mut visited, mut buf) = (strata_index::hnsw::Visited::new(), Vec::new());
            while !inner.shutdown.load(Ordering::Acquire) {
                let v = inner.snapshot();
                let mut linked = 0;
                while let Some(m) = v.active() {
                    if inner.shutdown.load(Ordering::Acquire)
                        || !m.index_next(&mut visited, &mut buf)
                    {
                        break;
                    }
                    linked += 1;
                    if linked % 1024 == 0 && !Arc::ptr_eq(&v, &inner.snapshot()) {
                        break; // a newer version may have a new active memtable
                    }
                }
                // Parked without a version: a snapshot kept here would keep segment files
                // that compaction retired.
                drop(v);
                if linked == 0 {
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            }
        })
}

fn flusher(inner: &Inner) {
    loop {
        let job = {
            let mut st = inner.write.lock();
            loop {
                if inner.shutdown.load(Ordering::Acquire) || inner.is_poisoned() {
                    return;
                }
                let oldest = st.version.memtables.iter().skip(1).next_back().cloned();
                if let Some(m) = oldest {
                    break (m.clone(), st.alloc_file_no());
                }
                inner.changed.wait(&mut st);
            }
        };
        // A panic in here must not leave writers waiting forever: poison instead.
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            flush_one(inner, &job.0, job.1)
        }))
        .unwrap_or_else(|panic| {
            Err(Error::Internal(format!(
                "a flush panicked: {}",
                panic_message(&*panic)
            )))
        });
        if let Err(e) = res {
            tracing::error!(error = %e, "flush failed; the store stops taking writes");
            inner.record_background_error(&e);
            inner.poison(&e);
            return;
        }
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Writes `mem` (frozen) as segment `file_no` and installs it.
fn flush_one(inner: &Inner, mem: &Arc<Memtable>, file_no: u64) -> Result<()> {
    let Some(frozen) = mem.frozen() else {
        return Err(Error::Internal(
            "a memtable queued for flush is not frozen".into(),
        ));
    };
    let _span = tracing::info_span!("flush", segment = file_no).entered();
    let start = std::time::Instant::now();
    let written = write_rows(inner, mem, frozen, file_no)?;
    let rows = written.rows.len();
    #[cfg(feature = "remote")]
    if written.reader.is_some() {
        crate::remote::upload_segment(inner, file_no)?;
    }
    if !install(inner, mem, frozen, written)? {
        return Ok(()); // shutting down: nothing was flushed
    }
    #[cfg(feature = "remote")]
    crate::remote::after_commit(inner);
    inner.metrics.flushed(start.elapsed(), rows);
    crate::inventory::publish(inner);
    inner.calibration.notify();
    tracing::info!(
        segment = file_no,
        rows,
        seconds = start.elapsed().as_secs_f64(),
        "flushed a memtable"
    );
    Ok(())
}

struct Written {
    file_no: u64,
    reader: Option<Arc<SegmentReader>>,
    /// Memtable rows in segment row order.
    rows: Vec<usize>,
}

fn write_rows(inner: &Inner, mem: &Memtable, frozen: Frozen, file_no: u64) -> Result<Written> {
    let all: Vec<_> = mem.rows().collect();
    let mut rows: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].visible_at(frozen.last_seq))
        .collect();
    rows.sort_by_key(|&i| all[i].id);
    if rows.is_empty() {
        return Ok(Written {
            file_no,
            reader: None,
            rows,
        });
    }
    let ids: Vec<u64> = rows.iter().map(|&i| all[i].id).collect();
    let mut vectors = Vec::with_capacity(rows.len() * inner.dim);
    for &i in &rows {
        vectors.extend_from_slice(&all[i].vector);
    }
    let payloads: Vec<Option<&[u8]>> = rows.iter().map(|&i| all[i].payload.as_deref()).collect();
    let encoded: Vec<Option<Vec<u8>>> = rows
        .iter()
        .map(|&i| all[i].metadata.as_ref().map(|m| m.encode()))
        .collect();
    let metadata: Vec<Option<&[u8]>> = if encoded.iter().any(Option::is_some) {
        encoded.iter().map(|m| m.as_deref()).collect()
    } else {
        Vec::new()
    };
    let texts: Vec<Option<&str>> = if rows.iter().any(|&i| all[i].text.is_some()) {
        rows.iter().map(|&i| all[i].text.as_deref()).collect()
    } else {
        Vec::new()
    };
    let keys: Vec<&str> = match inner.keys {
        crate::KeyKind::U64 => Vec::new(),
        crate::KeyKind::String => rows
            .iter()
            .map(|&i| all[i].key.as_deref())
            .collect::<Option<_>>()
            .ok_or_else(|| Error::Internal("a row of a string-keyed store has no key".into()))?,
    };
    let path = files::path(&inner.dir, FileKind::Segment, file_no);
    let seg_rows = SegmentRows {
        dim: inner.dim,
        metric: inner.metric,
        max_seq: frozen.last_seq,
        ids: &ids,
        vectors: &vectors,
        payloads: &payloads,
        metadata: &metadata,
        keys: &keys,
        texts: &texts,
        analyzer: inner.analyzer,
        unindexed: &inner.opts.unindexed_fields,
        vector_codec: inner.vector_codec,
    };
    // A flush is never stopped: the progress callback always says go on.
    let build = || {
        write_segment(
            &*inner.opts.vfs,
            &path,
            &seg_rows,
            &inner.opts.index,
            &|_, _, _| true,
        )
    };
    let pool = inner.flush_pool.get_or_init(|| {
        priority::background_pool("strata-build", inner.cores, inner.opts.low_priority_flush)
    });
    let report = match pool {
        Some(pool) => pool.install(build),
        None => build(),
    }?;
    if let Some(mut r) = report {
        // An indexed segment's rows are in a spatial order.
        if let Some(order) = r.row_order.take() {
            rows = order
                .iter()
                .filter_map(|&o| rows.get(o as usize).copied())
                .collect();
        }
        inner.builds.record(file_no, r);
    }
    fsutil::sync_dir(&*inner.opts.vfs, &inner.dir)?;
    let reader = Arc::new(crate::live_segment::open_reader(
        &*inner.opts.vfs,
        &path,
        inner.opts.resident_front,
    )?);
    WriteCounters::add(&inner.writes.flush_bytes, reader.file_len());
    Ok(Written {
        file_no,
        reader: Some(reader),
        rows,
    })
}

/// Installs the flushed segment; false when the store is shutting down (the segment is
/// then left as an orphan, which the next open removes).
fn install(inner: &Inner, mem: &Arc<Memtable>, frozen: Frozen, w: Written) -> Result<bool> {
    let mut st = inner.write.lock();
    if inner.shutdown.load(Ordering::Acquire) {
        return Ok(false);
    }
    let mut v = (*st.version).clone();
    if let Some(reader) = w.reader {
        // Rows deleted after the freeze are tombstoned in the new segment.
        let all: Vec<_> = mem.rows().collect();
        let mut deleted = DeletionBitmap::new(w.rows.len());
        for (row, &i) in w.rows.iter().enumerate() {
            if all.get(i).is_some_and(|r| !r.is_live()) {
                deleted.insert(row);
            }
        }
        v.segments.insert(
            0,
            LiveSegment::new(inner.opts.vfs.clone(), w.file_no, reader, deleted, None),
        );
    }
    v.memtables.retain(|m| !Arc::ptr_eq(m, mem));
    let checkpoint = Some((frozen.last_seq, frozen.next_wal_no));
    let obsolete = commit(inner, &mut st, v, checkpoint, Vec::new())?;
    drop(st);
    remove_files(&*inner.opts.vfs, obsolete);
    Ok(true)
}
