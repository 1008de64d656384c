//! The engine's I/O seam: the store's [`Vfs`] (from [`crate::Options::vfs`]) and the
//! adapter that runs the WAL over it.

use std::io;
use std::path::Path;
use std::sync::Arc;

use strata_format::vfs::{Vfs, VfsFile};
use strata_wal::{LogFile, LogFs};

/// The store's file system seen as the WAL's.
pub(crate) struct WalFs(pub Arc<dyn Vfs>);

struct WalFile(Arc<dyn VfsFile>);

impl LogFile for WalFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync()
    }
}

impl LogFs for WalFs {
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn LogFile>> {
        Ok(Arc::new(WalFile(self.0.create_new(path)?)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0.read(path)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.0.remove(path)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.0.truncate(path, len)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.sync_dir(dir)
    }
}

/// The WAL's file-system seam over `fs`, for tools and tests that replay a log directly.
pub fn wal_fs(fs: Arc<dyn Vfs>) -> Arc<dyn LogFs> {
    Arc::new(WalFs(fs))
}
