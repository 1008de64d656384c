//! The commit every change of the store's files goes through (flushes and
//! compactions): WAL sync, deletion files, manifest publish (the commit point), then
//! the new version.

use std::path::PathBuf;

use strata_format::{fsutil, SegmentEntry};

use crate::error::Result;
use crate::files::{self, FileKind};
use crate::inner::{Inner, WriteState};
use crate::live_segment::LiveSegment;
use crate::stats::WriteCounters;
use crate::version::Version;

/// Makes `v` the store's durable and current state (with the lock held): syncs the WAL
/// (every tombstone about to be persisted must belong to a durable write), writes the
/// deletion files of changed bitmaps, publishes the manifest (the commit point), and the
/// version. `checkpoint` = (sequence now in segments, first WAL file still needed) moves
/// the WAL checkpoint. Returns the files the manifest stopped naming, `obsolete` first,
/// for the caller to remove after releasing the lock.
pub(crate) fn commit(
    inner: &Inner,
    st: &mut WriteState,
    mut v: Version,
    checkpoint: Option<(u64, u64)>,
    mut obsolete: Vec<PathBuf>,
) -> Result<Vec<PathBuf>> {
    inner.wal.sync().map_err(|e| inner.wal_failed_locked(e))?;
    for s in v.segments.iter_mut().filter(|s| s.dirty) {
        let no = st.alloc_file_no();
        let path = files::path(&inner.dir, FileKind::Deletion, no);
        let bytes = s.deleted.encode(s.file_no);
        fsutil::write_new(&*inner.opts.vfs, &path, &bytes)?;
        WriteCounters::add(&inner.writes.deletion_bytes, bytes.len() as u64);
        if let Some(old) = s.deletion_file_no.replace(no) {
            obsolete.push(files::path(&inner.dir, FileKind::Deletion, old));
        }
        s.dirty = false;
    }
    fsutil::sync_dir(&*inner.opts.vfs, &inner.dir)?;
    let mut manifest = st.manifest.clone();
    manifest.segments = v.segments.iter().rev().map(entry).collect();
    if let Some((seq, wal_no)) = checkpoint {
        manifest.checkpoint_seq = seq;
        manifest.wal_min_no = wal_no;
    }
    manifest.next_file_no = st.next_file_no;
    // The bucket's commit comes first: the local manifest never runs ahead of it.
    #[cfg(feature = "remote")]
    crate::remote::commit(inner, &manifest)?;
    // Commit point: after this rename the change is durable (see module doc).
    let bytes = manifest.write(&*inner.opts.vfs, &inner.dir.join(files::MANIFEST))?;
    // The mirror is written before any file the old manifest names is removed, so
    // either copy describes files that exist.
    let mirror = manifest.write(&*inner.opts.vfs, &inner.dir.join(files::MANIFEST_MIRROR))?;
    WriteCounters::add(&inner.writes.manifest_bytes, bytes + mirror);
    if let Some((_, wal_no)) = checkpoint {
        for (kind, no, _) in files::list(&*inner.opts.vfs, &inner.dir)? {
            if kind == FileKind::Wal && no < wal_no {
                obsolete.push(files::path(&inner.dir, kind, no));
            }
        }
    }
    st.manifest = manifest;
    inner.publish(st, v);
    inner.changed.notify_all();
    Ok(obsolete)
}

/// Removes files the manifest no longer names. A failure leaves garbage that the next
/// open removes; not an error.
pub(crate) fn remove_files(fs: &dyn strata_vfs::Vfs, paths: Vec<PathBuf>) {
    for p in paths {
        let _ = fs.remove(&p);
    }
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
