//! File names of a store directory and the directory lock.
//!
//! `MANIFEST` (+ `MANIFEST.tmp` while publishing), `LOCK`, and numbered files from one
//! counter: `NNNNNN.wal`, `NNNNNN.seg`, `NNNNNN.del`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the manifest file.
pub const MANIFEST: &str = "MANIFEST";
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
pub fn list(dir: &Path) -> Result<Vec<(FileKind, u64, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some((kind, no)) = entry.file_name().to_str().and_then(parse) {
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                // Unlinked between readdir and stat (a flush removing an obsolete file).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&entry.path(), e)),
            };
            out.push((kind, no, len));
        }
    }
    out.sort_by_key(|&(_, no, _)| no);
    Ok(out)
}

/// Takes the store's exclusive lock; the returned file holds it until dropped.
pub fn lock(dir: &Path) -> Result<File> {
    let p = dir.join(LOCK);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    // NOTE: a flock belongs to the open file description, which a child process forked
    // by any thread of this process shares until it execs. A store closed and reopened
    // while another thread spawns a process can therefore look locked for a moment, so a
    // conflict is retried briefly before it is reported.
    let mut tries = 0;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&p, e)),
        }
    }
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
