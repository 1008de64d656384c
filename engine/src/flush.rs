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

use strata_format::{fsutil, segment, DeletionBitmap, SegmentEntry, SegmentReader};

use crate::db::Inner;
use crate::error::Result;
use crate::files::{self, FileKind};
use crate::memtable::{Frozen, Memtable};
use crate::segment_index::{BuiltIndex, SegmentIndex};
use crate::version::LiveSegment;

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
            while !inner.shutdown.load(Ordering::Acquire) {
                inner.changed.wait_for(&mut st, every);
                drop(st);
                if inner.wal.sync().is_err() {
                    inner.poison();
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
                if inner.shutdown.load(Ordering::Acquire) || inner.poisoned.load(Ordering::Acquire)
                {
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
        }));
        if !matches!(res, Ok(Ok(()))) {
            inner.poison();
            return;
        }
    }
}

/// Writes `mem` (frozen) as segment `file_no` and installs it.
fn flush_one(inner: &Inner, mem: &Arc<Memtable>, file_no: u64) -> Result<()> {
    let Some(frozen) = mem.frozen() else {
        return Ok(());
    };
    let written = write_rows(inner, mem, frozen, file_no)?;
    install(inner, mem, frozen, written)
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
    let path = files::path(&inner.dir, FileKind::Segment, file_no);
    // Graph nodes are u32 rows.
    let index = (rows.len() >= inner.opts.index.min_rows_for(inner.dim)
        && rows.len() < u32::MAX as usize)
        .then(|| BuiltIndex::build(&vectors, inner.dim, inner.metric, &inner.opts.index));
    let input = segment::SegmentWriteInput {
        dim: inner.dim as u32,
        metric: inner.metric.code(),
        max_seq: frozen.last_seq,
        ids: &ids,
        vectors: &vectors,
        payloads: &payloads,
        index: index.as_ref().map(BuiltIndex::input),
    };
    segment::write_segment(&path, &input)?;
    fsutil::sync_dir(&inner.dir)?;
    let reader = Arc::new(SegmentReader::open(&path)?);
    Ok(Written {
        file_no,
        reader: Some(reader),
        rows,
    })
}

fn install(inner: &Inner, mem: &Arc<Memtable>, frozen: Frozen, w: Written) -> Result<()> {
    let mut st = inner.write.lock();
    if inner.shutdown.load(Ordering::Acquire) {
        return Ok(()); // the segment is an orphan; the next open removes it
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
        let dirty = deleted.count() > 0;
        let index = SegmentIndex::open(&reader).map(Arc::new);
        v.segments.insert(
            0,
            LiveSegment {
                file_no: w.file_no,
                reader,
                deleted: Arc::new(deleted),
                deletion_file_no: None,
                dirty,
                index,
            },
        );
    }
    v.memtables.retain(|m| !Arc::ptr_eq(m, mem));
    // Every tombstone about to be persisted must belong to a durable write.
    inner.wal.sync()?;
    let mut obsolete = Vec::new();
    for s in v.segments.iter_mut().filter(|s| s.dirty) {
        let no = st.alloc_file_no();
        let path = files::path(&inner.dir, FileKind::Deletion, no);
        fsutil::write_new(&path, &s.deleted.encode(s.file_no))?;
        if let Some(old) = s.deletion_file_no.replace(no) {
            obsolete.push(files::path(&inner.dir, FileKind::Deletion, old));
        }
        s.dirty = false;
    }
    fsutil::sync_dir(&inner.dir)?;
    let mut manifest = st.manifest.clone();
    manifest.segments = v.segments.iter().rev().map(entry).collect();
    manifest.checkpoint_seq = frozen.last_seq;
    manifest.wal_min_no = frozen.next_wal_no;
    manifest.next_file_no = st.next_file_no;
    // Commit point: after this rename the flush is durable (see module doc).
    manifest.write(&inner.dir.join(files::MANIFEST))?;
    for (kind, no, _) in files::list(&inner.dir)? {
        if kind == FileKind::Wal && no < frozen.next_wal_no {
            obsolete.push(files::path(&inner.dir, kind, no));
        }
    }
    st.manifest = manifest;
    inner.publish(&mut st, v);
    inner.changed.notify_all();
    drop(st);
    for p in obsolete {
        // Failure to delete leaves garbage the next open removes; not an error.
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

fn entry(s: &LiveSegment) -> SegmentEntry {
    SegmentEntry {
        file_no: s.file_no,
        rows: s.reader.rows() as u64,
        deleted: s.deleted.count() as u64,
        deletion_file_no: s.deletion_file_no,
        file_len: s.reader.file_len(),
    }
}
