//! Versions: immutable snapshots of what a reader sees.
//!
//! A [`Version`] lists the memtables (newest first), the segments (newest first) with
//! their deletion bitmaps, and the sequence number up to which memtable rows are visible.
//! Writers build a new version per batch (bitmaps are copy-on-write) and publish it;
//! readers clone the `Arc` and never block writers.

use std::path::PathBuf;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use strata_format::vfs::Vfs;

use strata_format::{DeletionBitmap, SegmentReader};

use crate::memtable::Memtable;
use crate::segment_index::SegmentIndex;

/// A segment as a version sees it.
#[derive(Clone)]
pub(crate) struct LiveSegment {
    pub file_no: u64,
    pub reader: Arc<SegmentReader>,
    pub deleted: Arc<DeletionBitmap>,
    /// The deletion file persisted for this segment, if any.
    pub deletion_file_no: Option<u64>,
    /// The bitmap has changes not yet in a deletion file.
    pub dirty: bool,
    /// The in-memory part of the segment's index, when it has one.
    pub index: Option<Arc<SegmentIndex>>,
    /// Deletes the file once compaction replaced it and the last version using it is gone.
    pub retire: Arc<RetireOnDrop>,
}

/// Removes a segment file when the last snapshot that can read it is dropped, once
/// [`RetireOnDrop::arm`] was called (after the manifest stopped naming the file).
#[derive(Debug)]
pub(crate) struct RetireOnDrop {
    fs: Arc<dyn Vfs>,
    path: PathBuf,
    armed: AtomicBool,
}

impl RetireOnDrop {
    /// The file stays unless armed.
    pub fn new(fs: Arc<dyn Vfs>, path: PathBuf) -> Self {
        RetireOnDrop {
            fs,
            path,
            armed: AtomicBool::new(false),
        }
    }

    /// The manifest no longer names the file: remove it when the last user goes.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }
}

impl Drop for RetireOnDrop {
    fn drop(&mut self) {
        if self.armed.load(Ordering::Acquire) {
            // A file that cannot be removed is an orphan the next open removes.
            let _ = self.fs.remove(&self.path);
        }
    }
}

impl LiveSegment {
    /// A segment as recovery, a flush or a compaction installs it (its index's in-memory
    /// part is loaded here).
    pub fn new(
        fs: Arc<dyn Vfs>,
        file_no: u64,
        reader: Arc<SegmentReader>,
        deleted: DeletionBitmap,
        deletion_file_no: Option<u64>,
    ) -> Self {
        let index = SegmentIndex::open(&reader).map(Arc::new);
        let retire = Arc::new(RetireOnDrop::new(fs, reader.path().to_path_buf()));
        LiveSegment {
            file_no,
            reader,
            dirty: deleted.count() > 0 && deletion_file_no.is_none(),
            deleted: Arc::new(deleted),
            deletion_file_no,
            index,
            retire,
        }
    }

    /// The row of `id` if it is live in this segment.
    pub fn live_row(&self, id: u64) -> Option<usize> {
        self.reader.find(id).filter(|&r| !self.deleted.contains(r))
    }
}

/// What a reader sees.
#[derive(Clone)]
pub(crate) struct Version {
    /// Memtable rows with a higher sequence number are invisible.
    pub seq: u64,
    /// Active memtable first, then frozen ones, newest to oldest.
    pub memtables: Vec<Arc<Memtable>>,
    /// Segments, newest first.
    pub segments: Vec<LiveSegment>,
}

impl Version {
    pub fn active(&self) -> Option<&Arc<Memtable>> {
        self.memtables.first()
    }

    /// Tombstones the live copy of `id`, wherever it is, at `seq`. By the store's
    /// invariant at most one live copy exists: a memtable that knows `id` (live or
    /// deleted) is authoritative, because older copies were tombstoned when it was written.
    pub fn tombstone(&mut self, id: u64, seq: u64) {
        for m in &self.memtables {
            if let Some(row) = m.newest(id) {
                if row.is_live() {
                    row.deleted_seq
                        .store(seq, std::sync::atomic::Ordering::Release);
                }
                return;
            }
        }
        for s in &mut self.segments {
            if let Some(row) = s.live_row(id) {
                Arc::make_mut(&mut s.deleted).insert(row);
                s.dirty = true;
                return;
            }
        }
    }
}
