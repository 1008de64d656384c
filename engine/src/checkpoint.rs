//! [`Db::checkpoint`](crate::Db::checkpoint): a consistent copy of an open store in
//! another directory: the immutable segment and deletion files hard-linked (copied
//! across file systems), the log files copied up to their current end, and the
//! manifest, all taken under the write lock so that no flush, compaction or write
//! changes the set of files between the manifest and the copies.

use std::path::Path;

use strata_format::fsutil;
use strata_vfs::Vfs;

use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::inner::Inner;

/// What a checkpoint wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Segment and deletion files linked (or copied, across file systems).
    pub linked_files: usize,
    /// Their bytes.
    pub linked_bytes: u64,
    /// Log files copied.
    pub copied_files: usize,
    /// Their bytes.
    pub copied_bytes: u64,
}

/// Copies the store of `inner` into `dest` (absent or empty).
pub(crate) fn checkpoint(inner: &Inner, dest: &Path) -> Result<CheckpointReport> {
    let fs = &*inner.opts.vfs;
    refuse_non_empty(fs, dest)?;
    crate::files::create_dir_durably(fs, dest)?;
    let mut report = CheckpointReport::default();
    // Writes, flushes and compactions publish under this lock, and a file the manifest
    // names is removed only after a newer manifest is published: while it is held, the
    // manifest and every file it names stay as they are.
    let st = inner.write.lock();
    let manifest_path = inner.dir.join(files::MANIFEST);
    let manifest = fs
        .read(&manifest_path)
        .map_err(|e| Error::io(&manifest_path, e))?;
    let link = |kind, no, report: &mut CheckpointReport| -> Result<()> {
        let from = files::path(&inner.dir, kind, no);
        let to = files::path(dest, kind, no);
        fs.link_or_copy(&from, &to).map_err(|e| Error::io(&to, e))?;
        report.linked_files += 1;
        report.linked_bytes += fs.len(&to).map_err(|e| Error::io(&to, e))?;
        Ok(())
    };
    for e in &st.manifest.segments {
        link(FileKind::Segment, e.file_no, &mut report)?;
        if let Some(d) = e.deletion_file_no {
            link(FileKind::Deletion, d, &mut report)?;
        }
    }
    // Every append happens under the lock: each log file ends on a whole record.
    for (no, from, len) in crate::files::wal_files(fs, &inner.dir, &st.manifest)? {
        let to = files::path(dest, FileKind::Wal, no);
        strata_vfs::copy_file(fs, &from, &to, Some(len)).map_err(|e| Error::io(&to, e))?;
        report.copied_files += 1;
        report.copied_bytes += len;
    }
    drop(st);
    for name in [files::MANIFEST, files::MANIFEST_MIRROR] {
        fsutil::write_new(fs, &dest.join(name), &manifest)?;
    }
    fsutil::sync_dir(fs, dest)?;
    Ok(report)
}

/// Refuses a destination that exists and holds any file.
fn refuse_non_empty(fs: &dyn Vfs, dest: &Path) -> Result<()> {
    if !fs.exists(dest).map_err(|e| Error::io(dest, e))? {
        return Ok(());
    }
    match fs
        .list(dest)
        .map_err(|e| Error::io(dest, e))?
        .into_iter()
        .next()
    {
        Some((entry, _)) => Err(Error::DestinationNotEmpty {
            path: dest.to_path_buf(),
            entry,
        }),
        None => Ok(()),
    }
}
