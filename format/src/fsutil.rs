//! Small durable-file helpers over a [`Vfs`]: directory fsync, new files, atomic replace.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use strata_vfs::{Vfs, VfsFile};

/// Fsyncs a directory so that creates, renames and unlinks in it are durable.
pub fn sync_dir(fs: &dyn Vfs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to `path` durably and atomically: `path.tmp` is written and fsynced,
/// renamed over `path`, then the directory is fsynced. A crash at any point leaves either
/// the old file or the new one, never a mix (`tests/it/durability.rs` reopens after each).
pub fn write_atomic(fs: &dyn Vfs, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    match fs.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&tmp, e)),
    }
    write_new(fs, &tmp, bytes)?;
    fs.rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(fs, dir)
}

/// Writes a new file (which must not exist) and fsyncs it; the caller fsyncs the directory.
pub fn write_new(fs: &dyn Vfs, path: &Path, bytes: &[u8]) -> Result<()> {
    let f = fs.create_new(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync().map_err(|e| Error::io(path, e))
}

/// A [`std::io::Write`] over an append-only [`VfsFile`], for buffered writers. After
/// a failed write every later write fails too: part of the failed one may have landed,
/// and a `BufWriter` resending its buffer must not append after it.
pub struct VfsWriter {
    /// The file.
    pub file: Arc<dyn VfsFile>,
    failed: bool,
}

impl VfsWriter {
    /// A writer appending to `file`.
    pub fn new(file: Arc<dyn VfsFile>) -> Self {
        VfsWriter {
            file,
            failed: false,
        }
    }
}

impl std::io::Write for VfsWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other(
                "an earlier write to this file failed",
            ));
        }
        self.file
            .write_all(buf)
            .inspect_err(|_| self.failed = true)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
