//! A segment as a version sees it: the mapped file, its deletion bitmap
//! (copy-on-write), the in-memory part of its index, and the removal of its file once
//! compaction replaced it and no snapshot can read it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use strata_format::{DeletionBitmap, SegmentReader};
use strata_vfs::Vfs;

use crate::error::{Error, Result};
use crate::field_index::FieldIndex;
use crate::segment_index::SegmentIndex;

/// Opens the segment file at `path`, its search front read into process memory when
/// `resident_front` ([`crate::Options::resident_front`]).
pub(crate) fn open_reader(
    vfs: &dyn Vfs,
    path: &std::path::Path,
    resident_front: bool,
) -> Result<SegmentReader> {
    let mut reader = SegmentReader::open(vfs, path)?;
    if resident_front {
        reader.load_front()?;
    }
    Ok(reader)
}

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
    /// The metadata index, built by the first filter that reaches the segment and shared
    /// by every version holding it.
    pub fields: Arc<OnceLock<std::result::Result<Arc<FieldIndex>, Arc<Error>>>>,
    /// What the deleted rows take out of the text statistics, shared by every version
    /// holding the segment (kept per deletion bitmap).
    pub deleted_text: Arc<parking_lot::Mutex<crate::text_stats::DeletedText>>,
    /// The recall its search reaches per beam width, once measured (shared by every
    /// version holding the segment).
    pub calibration: crate::calibration::CalibrationCell,
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
            fields: Arc::new(OnceLock::new()),
            deleted_text: Default::default(),
            calibration: Default::default(),
        }
    }

    /// The segment's metadata index (read from its `FIELD_INDEX` section, or built from
    /// its metadata for an older segment, on first use).
    pub fn field_index(&self) -> Result<Arc<FieldIndex>> {
        self.fields
            .get_or_init(|| {
                FieldIndex::load(&self.reader)
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .clone()
            .map_err(|e| e.duplicate())
    }

    /// The row of `id` if it is live in this segment.
    pub fn live_row(&self, id: u64) -> Option<usize> {
        self.reader.find(id).filter(|&r| !self.deleted.contains(r))
    }
}
