//! Appending to the log: one writer at a time, shared fsyncs (group commit), rollover.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::record::{encode_file_header, encode_record, FILE_HEADER_LEN};
use strata_vfs::{Vfs, VfsFile};

/// A log sequence number: bytes written to the log since it was opened (headers
/// included). `sync_to(lsn)` returns once everything up to `lsn` is on stable storage.
pub type Lsn = u64;

/// The write-ahead log of one store.
pub struct Wal {
    fs: Arc<dyn Vfs>,
    dir: PathBuf,
    active: Mutex<Active>,
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
    poisoned: AtomicBool,
    /// The file and I/O failure that poisoned the log (the first one).
    first_failure: OnceLock<(PathBuf, std::io::Error)>,
    fsyncs: AtomicU64,
    /// Each fsync's latency, reported through the `metrics` facade
    /// (`strata_wal_fsync_seconds`, labelled `store` with the directory).
    fsync_seconds: metrics::Histogram,
    /// Mirror of `SyncState::synced`, readable while holding `active`.
    synced_lsn: AtomicU64,
}

struct Active {
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    file_no: u64,
    salt: u32,
    offset: u64,
    lsn_base: u64,
    buf: Vec<u8>,
}

struct SyncState {
    synced: Lsn,
    leader: bool,
}

impl Wal {
    /// Starts a new log file `file_no` in `dir` (which must not exist yet), doing all
    /// its I/O through `fs`.
    pub fn create(fs: Arc<dyn Vfs>, dir: &Path, file_no: u64) -> Result<Wal> {
        let active = Active::create(&*fs, dir, file_no, 0)?;
        let synced = FILE_HEADER_LEN as u64;
        Ok(Wal {
            fs,
            dir: dir.to_path_buf(),
            active: Mutex::new(active),
            sync: Mutex::new(SyncState {
                synced,
                leader: false,
            }),
            synced_cv: Condvar::new(),
            poisoned: AtomicBool::new(false),
            first_failure: OnceLock::new(),
            fsyncs: AtomicU64::new(0),
            fsync_seconds: metrics::histogram!(
                "strata_wal_fsync_seconds",
                "store" => dir.display().to_string()
            ),
            synced_lsn: AtomicU64::new(synced),
        })
    }

    fn check(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Refuses every later write; `path` and `e` are kept as the first failure.
    fn poison(&self, path: &Path, e: &std::io::Error) {
        let _ = self
            .first_failure
            .set((path.to_path_buf(), strata_vfs::copy_io_error(e)));
        self.poisoned.store(true, Ordering::Release);
        self.synced_cv.notify_all();
    }

    /// The I/O failure that poisoned the log, as an error (a copy: same path, kind, OS
    /// code and message); `None` while the log takes writes.
    pub fn first_failure(&self) -> Option<Error> {
        let (path, e) = self.first_failure.get()?;
        Some(Error::io(path, strata_vfs::copy_io_error(e)))
    }

    /// Whether an earlier failure made the log refuse writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Appends one record (written to the OS, not yet synced) and returns its end LSN.
    /// The caller serialises appends with its own sequence-number assignment.
    pub fn append(&self, seq: u64, count: u32, kind: u8, payload: &[u8]) -> Result<Lsn> {
        let mut a = self.active.lock();
        self.check()?;
        let mut buf = std::mem::take(&mut a.buf);
        buf.clear();
        // How much of this file is durable now: replay tells damage in synced data
        // (corruption) from a torn unsynced region by this watermark.
        let synced = self
            .synced_lsn
            .load(Ordering::Acquire)
            .saturating_sub(a.lsn_base)
            .clamp(FILE_HEADER_LEN as u64, a.offset);
        encode_record(&mut buf, a.salt, seq, count, kind, synced, payload)?;
        let res = a.file.write_all(&buf);
        a.buf = buf;
        if let Err(e) = res {
            // A partial record may be on disk: replay sees it as a torn tail. No later
            // record may follow it, so the log is poisoned.
            self.poison(&a.path, &e);
            return Err(Error::io(&a.path, e));
        }
        a.offset += a.buf.len() as u64;
        Ok(a.lsn_base + a.offset)
    }

    /// Returns once every record up to `lsn` is durable. Concurrent callers share one
    /// fsync: the first becomes the leader and syncs everything written so far; the
    /// others wait and are covered by it (group commit).
    pub fn sync_to(&self, lsn: Lsn) -> Result<()> {
        let mut s = self.sync.lock();
        loop {
            self.check()?;
            if s.synced >= lsn {
                return Ok(());
            }
            if s.leader {
                self.synced_cv.wait(&mut s);
                continue;
            }
            s.leader = true;
            drop(s);
            let (file, path, end) = {
                let a = self.active.lock();
                (a.file.clone(), a.path.clone(), a.lsn_base + a.offset)
            };
            let started = std::time::Instant::now();
            let res = file.sync();
            self.fsync_seconds.record(started.elapsed());
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            s = self.sync.lock();
            s.leader = false;
            if let Err(e) = res {
                // Never retry a failed fsync: the kernel may have dropped the dirty pages.
                self.poison(&path, &e);
                return Err(Error::io(&path, e));
            }
            s.synced = s.synced.max(end);
            self.synced_lsn.store(s.synced, Ordering::Release);
            self.synced_cv.notify_all();
        }
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Result<()> {
        let end = {
            let a = self.active.lock();
            a.lsn_base + a.offset
        };
        self.sync_to(end)
    }

    /// Syncs the current file and continues in a new file `file_no`. Every file but the
    /// last is therefore completely synced, which replay relies on.
    pub fn rotate(&self, file_no: u64) -> Result<()> {
        let mut a = self.active.lock();
        self.check()?;
        let started = std::time::Instant::now();
        let synced = a.file.sync();
        self.fsync_seconds.record(started.elapsed());
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = synced {
            self.poison(&a.path, &e);
            return Err(Error::io(&a.path, e));
        }
        let old_end = a.lsn_base + a.offset;
        let next = match Active::create(&*self.fs, &self.dir, file_no, old_end) {
            Ok(n) => n,
            Err(e) => {
                match &e {
                    Error::Io { path, source } => self.poison(path, source),
                    other => self.poison(&self.dir, &std::io::Error::other(other.to_string())),
                }
                return Err(e);
            }
        };
        *a = next;
        let mut s = self.sync.lock();
        s.synced = s.synced.max(old_end + FILE_HEADER_LEN as u64);
        self.synced_lsn.store(s.synced, Ordering::Release);
        self.synced_cv.notify_all();
        Ok(())
    }

    /// Number of the file now being appended to.
    pub fn file_no(&self) -> u64 {
        self.active.lock().file_no
    }

    /// Bytes in the file now being appended to.
    pub fn file_bytes(&self) -> u64 {
        self.active.lock().offset
    }

    /// Fsyncs issued so far (for group-commit tests and stats).
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Bytes written to log files since the log was created (file headers included):
    /// the log's share of the store's write amplification.
    pub fn bytes_written(&self) -> u64 {
        let a = self.active.lock();
        a.lsn_base + a.offset
    }
}

impl Active {
    fn create(fs: &dyn Vfs, dir: &Path, file_no: u64, lsn_base: u64) -> Result<Active> {
        let path = dir.join(crate::file_name(file_no));
        let salt = RandomState::new().hash_one(file_no) as u32;
        let file = fs.create_new(&path).map_err(|e| Error::io(&path, e))?;
        file.write_all(&encode_file_header(salt, file_no))
            .map_err(|e| Error::io(&path, e))?;
        file.sync().map_err(|e| Error::io(&path, e))?;
        fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Active {
            file,
            path,
            file_no,
            salt,
            offset: FILE_HEADER_LEN as u64,
            lsn_base,
            buf: Vec::new(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::create(Arc::new(strata_vfs::OsVfs), dir.path(), 1).unwrap());
        let seq = Arc::new(Mutex::new(1u64));
        let writers = 8;
        let per_writer = 40;
        std::thread::scope(|s| {
            for _ in 0..writers {
                let (wal, seq) = (wal.clone(), seq.clone());
                s.spawn(move || {
                    for _ in 0..per_writer {
                        let lsn = {
                            let mut q = seq.lock();
                            let lsn = wal.append(*q, 1, 1, &[7u8; 100]).unwrap();
                            *q += 1;
                            lsn
                        };
                        wal.sync_to(lsn).unwrap();
                    }
                });
            }
        });
        let writes = (writers * per_writer) as u64;
        let fsyncs = wal.fsync_count();
        println!("{writes} acknowledged writes, {fsyncs} fsyncs");
        assert!(
            fsyncs < writes,
            "group commit must share fsyncs: {fsyncs} fsyncs for {writes} writes"
        );
    }

    #[test]
    fn rotate_starts_a_new_file_and_keeps_lsn_monotonic() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(Arc::new(strata_vfs::OsVfs), dir.path(), 3).unwrap();
        let a = wal.append(1, 1, 1, b"x").unwrap();
        wal.rotate(4).unwrap();
        let b = wal.append(2, 1, 1, b"y").unwrap();
        assert!(b > a);
        wal.sync_to(b).unwrap();
        assert_eq!(wal.file_no(), 4);
        assert!(dir.path().join("000003.wal").exists() && dir.path().join("000004.wal").exists());
        // Both files, headers included, are counted as written.
        drop(wal);
        let on_disk: u64 = ["000003.wal", "000004.wal"]
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len())
            .sum();
        assert_eq!(b, on_disk);
    }

    #[test]
    fn bytes_written_counts_headers_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(Arc::new(strata_vfs::OsVfs), dir.path(), 1).unwrap();
        assert_eq!(wal.bytes_written(), FILE_HEADER_LEN as u64);
        let end = wal.append(1, 1, 1, b"payload").unwrap();
        wal.rotate(2).unwrap();
        assert_eq!(wal.bytes_written(), end + FILE_HEADER_LEN as u64);
    }
}
