//! Versions: immutable snapshots of what a reader sees.
//!
//! A [`Version`] lists the memtables (newest first), the segments (newest first) with
//! their deletion bitmaps, and the sequence number up to which memtable rows are visible.
//! Writers build a new version per batch (bitmaps are copy-on-write) and publish it;
//! readers clone the `Arc` and never block writers.

use std::sync::Arc;

use crate::live_segment::LiveSegment;
use crate::memtable::Memtable;

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
            if m.delete_newest(id, seq) {
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
