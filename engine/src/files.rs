//! File names of a store directory and the directory lock.
//!
//! `MANIFEST` (+ `MANIFEST.tmp` while publishing), its mirror `MANIFEST-MIRROR` (+
//! `MANIFEST-MIRROR.tmp`), `LOCK`, and numbered files from one counter: `NNNNNN.wal`,
//! `NNNNNN.seg`, `NNNNNN.del`.

use std::path::{Path, PathBuf};

use strata_vfs::{Vfs, VfsLock};

use crate::error::{Error, Result};

/// Name of the manifest file.
pub const MANIFEST: &str = "MANIFEST";
/// Name of the manifest's mirror: a byte-identical copy written after each publish, so
/// that damage to one copy is repairable from the other.
pub const MANIFEST_MIRROR: &str = "MANIFEST-MIRROR";
/// Name of the lock file.
pub const LOCK: &str = "LOCK";

/// File numbers are below this; larger names are not Strata's files.
pub const MAX_FILE_NO: u64 = 1 << 48;

/// Kinds of numbered files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Write-ahead log.
    Wal,
    /// Segment.
    Segment,
    /// Deletion bitmap.
    Deletion,
}

impl FileKind {
    fn ext(self) -> &'static str {
        match self {
            FileKind::Wal => "wal",
            FileKind::Segment => "seg",
            FileKind::Deletion => "del",
        }
    }
}

/// Path of numbered file `no` of `kind`.
pub fn path(dir: &Path, kind: FileKind, no: u64) -> PathBuf {
    dir.join(format!("{no:06}.{}", kind.ext()))
}

/// Parses a numbered file name.
pub fn parse(name: &str) -> Option<(FileKind, u64)> {
    let (stem, ext) = name.split_once('.')?;
    let kind = match ext {
        "wal" => FileKind::Wal,
        "seg" => FileKind::Segment,
        "del" => FileKind::Deletion,
        _ => return None,
    };
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Numbers this large are not ours (and would overflow the counter).
    let no: u64 = stem.parse().ok()?;
    (no < MAX_FILE_NO).then_some((kind, no))
}

/// Every numbered file in `dir`, with its length.
pub fn list(fs: &dyn Vfs, dir: &Path) -> Result<Vec<(FileKind, u64, u64)>> {
    let mut out: Vec<_> = fs
        .list(dir)
        .map_err(|e| Error::io(dir, e))?
        .into_iter()
        .filter_map(|(name, len)| parse(&name).map(|(kind, no)| (kind, no, len)))
        .collect();
    out.sort_by_key(|&(_, no, _)| no);
    Ok(out)
}

/// Store directories this process holds the lock of, with a count (two virtual file
/// systems can use the same path): a refused lock on one of them is this process's own.
static HELD: parking_lot::Mutex<Vec<(PathBuf, usize)>> = parking_lot::Mutex::new(Vec::new());

/// The name a directory is registered under: canonical when it can be resolved.
fn held_key(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The store's lock, held until dropped.
pub struct StoreLock {
    _guard: Box<dyn VfsLock>,
    key: PathBuf,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let mut held = HELD.lock();
        if let Some(i) = held.iter().position(|(k, _)| *k == self.key) {
            if let Some(entry) = held.get_mut(i) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    held.swap_remove(i);
                }
            }
        }
    }
}

/// Takes the store's exclusive lock. Refused with [`Error::AlreadyOpen`] when this
/// process holds it, [`Error::Locked`] when another does.
pub fn lock(fs: &dyn Vfs, dir: &Path) -> Result<StoreLock> {
    let key = held_key(dir);
    let guard = lock_file(fs, dir).map_err(|e| match e {
        Error::Locked { path } if HELD.lock().iter().any(|(k, _)| *k == key) => {
            Error::AlreadyOpen { path }
        }
        other => other,
    })?;
    let mut held = HELD.lock();
    match held.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 += 1,
        None => held.push((key.clone(), 1)),
    }
    Ok(StoreLock { _guard: guard, key })
}

fn lock_file(fs: &dyn Vfs, dir: &Path) -> Result<Box<dyn VfsLock>> {
    let p = dir.join(LOCK);
    // NOTE: a flock belongs to the open file description, which a child process forked
    // by any thread of this process shares until it execs. A store closed and reopened
    // while another thread spawns a process can therefore look locked for a moment, so a
    // conflict is retried briefly before it is reported.
    let mut tries = 0;
    loop {
        match fs.lock(&p) {
            Ok(guard) => return Ok(guard),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
}

/// Creates `dir` and any missing parents, and syncs the parent of each directory created
/// so that a new store's directory survives a power loss.
pub(crate) fn create_dir_durably(fs: &dyn Vfs, dir: &Path) -> Result<()> {
    let mut created = Vec::new();
    let mut p = Some(dir);
    // The root and an empty relative path need no entry anywhere.
    while let Some(d) = p.filter(|d| d.parent().is_some() && !d.as_os_str().is_empty()) {
        if fs.exists(d).map_err(|e| Error::io(d, e))? {
            break;
        }
        created.push(d);
        p = d.parent();
    }
    fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for d in created {
        let parent = match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        strata_format::fsutil::sync_dir(fs, parent)?;
    }
    Ok(())
}

/// The live WAL files of a store, oldest first, with their lengths.
pub(crate) fn wal_files(
    fs: &dyn Vfs,
    dir: &Path,
    m: &strata_format::Manifest,
) -> Result<Vec<(u64, std::path::PathBuf, u64)>> {
    Ok(list(fs, dir)?
        .into_iter()
        .filter(|&(k, no, _)| k == FileKind::Wal && no >= m.wal_min_no)
        .map(|(k, no, len)| (no, path(dir, k, no), len))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = path(Path::new("/x"), FileKind::Segment, 42);
        assert_eq!(p, Path::new("/x/000042.seg"));
        assert_eq!(parse("000042.seg"), Some((FileKind::Segment, 42)));
        assert_eq!(parse("1234567.wal"), Some((FileKind::Wal, 1234567)));
        assert_eq!(parse("MANIFEST"), None);
        assert_eq!(parse("x1.del"), None);
        assert_eq!(parse("000001.tmp"), None);
    }
}
