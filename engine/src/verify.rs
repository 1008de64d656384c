//! `verify`: every checksum and invariant of a closed store, read-only.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_format::Manifest;
use strata_vfs::Vfs;
use strata_wal::ReplayMode;

use crate::error::{CorruptionKind, Error, Result};
use crate::files::{self, FileKind};
use crate::memtable::Memtable;
use crate::recovery;
use crate::version::Version;

/// What [`verify`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments checked (every section checksum, id order, payload blocks).
    pub segments: usize,
    /// Rows in them.
    pub rows: u64,
    /// Tombstoned rows.
    pub tombstones: u64,
    /// WAL records checked.
    pub wal_records: u64,
    /// Unsynced tail the next open would cut: file, offset, bytes.
    pub torn_tail: Option<(PathBuf, u64, u64)>,
    /// Files the manifest does not name (removed at the next open).
    pub orphans: Vec<PathBuf>,
}

/// Checks the store in `dir` without changing it. Takes the store's lock, so an open
/// store gives [`Error::Locked`]. The first fault is returned as [`Error::Corruption`]
/// naming the file and offset.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    verify_with(strata_vfs::os(), dir)
}

/// [`verify`] over the file system `fs` (see [`crate::Options::vfs`]).
pub fn verify_with(fs: Arc<dyn Vfs>, dir: &Path) -> Result<VerifyReport> {
    let mpath = dir.join(files::MANIFEST);
    if !fs.exists(&mpath).map_err(|e| Error::io(&mpath, e))? {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let _lock = files::lock(&*fs, dir)?;
    let m = Manifest::read(&*fs, &mpath)?;
    let segments = recovery::open_segments(&fs, dir, &m, false)?;
    let mut report = VerifyReport::default();
    let mut seen = HashSet::new();
    for (seg, entry) in segments.iter().zip(m.segments.iter().rev()) {
        seg.reader.verify()?;
        let path = files::path(dir, FileKind::Segment, seg.file_no);
        if seg.deleted.count() as u64 != entry.deleted {
            return Err(Error::Corruption {
                path: mpath.clone(),
                offset: 0,
                kind: CorruptionKind::Inconsistent("deleted count differs from the deletion file"),
            });
        }
        for (row, &id) in seg.reader.ids().iter().enumerate() {
            if !seg.deleted.contains(row) && !seen.insert(id) {
                return Err(Error::Corruption {
                    path,
                    offset: 0,
                    kind: CorruptionKind::Inconsistent("an id is live in two segments"),
                });
            }
        }
        report.segments += 1;
        report.rows += seg.reader.rows() as u64;
        report.tombstones += seg.deleted.count() as u64;
    }
    let wal: Vec<_> = crate::files::wal_files(&*fs, dir, &m)?
        .into_iter()
        .map(|(no, p, _)| (no, p))
        .collect();
    let mut v = Version {
        seq: m.checkpoint_seq,
        memtables: vec![Arc::new(Memtable::new(
            0,
            strata_index::Metric::L2,
            None,
            &[],
            crate::Analyzer::Default,
        ))],
        segments,
    };
    let (_, rep) = recovery::replay(&fs, &wal, &m, m.dim as usize, &mut v, ReplayMode::ReadOnly)?;
    report.wal_records = rep.records;
    report.torn_tail = rep.torn_tail;
    let live = recovery::LiveFiles::of(&m);
    for (kind, no, _) in files::list(&*fs, dir)? {
        let keep = live.contains(kind, no);
        if !keep {
            report.orphans.push(files::path(dir, kind, no));
        }
    }
    Ok(report)
}
