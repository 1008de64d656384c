//! `strata-vfs`: the I/O seam. Every file operation of Strata's format, WAL and engine
//! goes through [`Vfs`].
//!
//! * [`OsVfs`]: the real file system (`std::fs`, `fsync`, `flock`, `mmap`).
//! * [`SimVfs`]: an in-memory file system that keeps, per file, what was synced and what
//!   is still pending, and per directory which entries were synced; it can produce the
//!   image a power cut would leave ([`SimVfs::power_cut`]).
//! * [`FaultVfs`]: wraps any `Vfs`, counts operations and lets a test fail (or act on)
//!   the k-th one.
//!
//! Write handles are append-only: Strata never rewrites a byte it wrote (segments,
//! deletion files and manifests are written once; the WAL only grows, and a torn tail is
//! cut with [`Vfs::truncate`]).

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

pub mod bytes;
mod fault;
mod os;
mod sim;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

pub use bytes::MappedBytes;
pub use fault::{Action, FailPlan, FaultVfs, Injector, Op};
pub use os::OsVfs;
pub use sim::{CutStyle, SimVfs};

/// An open, append-only file being written.
pub trait VfsFile: Send + Sync {
    /// Appends all of `buf` (a short write is an error).
    fn write_all(&self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
}

/// A held directory lock; dropping it releases the lock.
pub trait VfsLock: Send + Sync {}

/// The file operations Strata uses. Paths are absolute or relative to the process's
/// working directory, exactly as given to `std::fs`.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names and lengths of the regular files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<(String, u64)>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Length of the file at `path`.
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Creates a new empty file (failing if it exists) and opens it for appending.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// Reads the whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Maps (or, when simulated, copies) the whole file read-only.
    fn map(&self, path: &Path) -> io::Result<MappedBytes>;
    /// Renames `from` over `to` (atomically replacing it).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Unlinks `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Cuts the file at `path` to `len` bytes and makes the cut durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Makes the contents of an existing file durable.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the creates, renames and unlinks in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the file `path` (created if missing). An
    /// [`io::ErrorKind::WouldBlock`] error means someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn VfsLock>>;
    /// Makes `to` (which must not exist) hold the contents of the immutable file `from`,
    /// durably: a hard link where the file system has them, else a synced copy. The
    /// caller syncs `to`'s directory.
    fn link_or_copy(&self, from: &Path, to: &Path) -> io::Result<()> {
        copy_file(self, from, to, None)
    }
}

/// Copies the first `len` bytes of `from` (all of it for `None`) to the new file `to`
/// and syncs it.
pub fn copy_file<V: Vfs + ?Sized>(
    fs: &V,
    from: &Path,
    to: &Path,
    len: Option<u64>,
) -> io::Result<()> {
    let mut bytes = fs.read(from)?;
    if let Some(len) = len {
        if (bytes.len() as u64) < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than {len} bytes", from.display()),
            ));
        }
        bytes.truncate(len as usize);
    }
    let f = fs.create_new(to)?;
    f.write_all(&bytes)?;
    f.sync()
}

/// The real file system, shared.
pub fn os() -> Arc<dyn Vfs> {
    Arc::new(OsVfs)
}

/// A copy of `e` (`io::Error` is not `Clone`): the same OS code, or the same kind and
/// message. For keeping a failure while the original goes to the caller that hit it.
pub fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// A small deterministic random source (SplitMix64) for simulated faults and power cuts,
/// so that a seed reproduces an image exactly.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

impl fmt::Debug for dyn VfsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VfsFile")
    }
}
