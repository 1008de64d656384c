//! Read replicas of a store kept in a bucket ([`Db::open_replica`](crate::Db::open_replica)):
//! read-only, following the bucket's newest commit. Each segment's front (everything but
//! its full vectors: ids, PQ codes, graph, payloads, metadata, text) is fetched whole into
//! the cache directory; its full vectors stay in the bucket and are read by range, in
//! chunks, into a bounded in-memory cache, for reranks and point reads. A segment that
//! the walk scores on its rows (no PQ codes) or that is searched exactly is fetched
//! whole. Answers are the primary's at the same commit (the same files, read the same
//! way). See `docs/remote.md`.

use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_format::segment::{sections_from_tail, SectionKind, SegmentReader, VectorSource};
use strata_format::Manifest;
use strata_remote::{Bucket, FileKind, RemoteConfig, RemoteFile, RemoteManifest};

use crate::error::{Error, Result};
use crate::files;
use crate::read_only::ReadOnlyDb;

/// Bytes of one chunk of full vectors fetched by range.
pub const CHUNK_BYTES: u64 = 64 << 10;
/// How often a replica looks for a newer commit.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// What a replica fetched, and where it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// The bucket commit it answers at.
    pub seq: u64,
    /// Bytes of segment fronts, deletion files and whole segments fetched.
    pub front_bytes: u64,
    /// Bytes of full vectors fetched by range.
    pub vector_bytes: u64,
    /// Range reads of full vectors.
    pub vector_reads: u64,
    /// Bytes of full vectors held in the cache now.
    pub cached_bytes: u64,
}

/// Chunks of full vectors, least recently used evicted past the budget.
#[derive(Debug)]
struct ChunkCache {
    budget: u64,
    inner: Mutex<Chunks>,
    fetched: AtomicU64,
    reads: AtomicU64,
}

/// A chunk's key: (segment file number, chunk number in its vectors section).
type ChunkKey = (u64, u64);

#[derive(Debug, Default)]
struct Chunks {
    /// Each chunk and when it was last used.
    map: HashMap<ChunkKey, (Arc<Vec<u8>>, u64)>,
    bytes: u64,
    tick: u64,
}

impl ChunkCache {
    fn get(&self, key: ChunkKey) -> Option<Arc<Vec<u8>>> {
        let mut c = self.inner.lock();
        c.tick += 1;
        let tick = c.tick;
        c.map.get_mut(&key).map(|e| {
            e.1 = tick;
            e.0.clone()
        })
    }

    fn insert(&self, key: ChunkKey, chunk: Arc<Vec<u8>>) {
        let mut c = self.inner.lock();
        c.tick += 1;
        let tick = c.tick;
        if let Some(old) = c.map.insert(key, (chunk.clone(), tick)) {
            c.bytes -= old.0.len() as u64;
        }
        c.bytes += chunk.len() as u64;
        if c.bytes > self.budget {
            // Evict the oldest eighth (at least enough to fit), not one at a time.
            let mut by_age: Vec<(ChunkKey, u64, u64)> = c
                .map
                .iter()
                .map(|(k, v)| (*k, v.1, v.0.len() as u64))
                .collect();
            by_age.sort_unstable_by_key(|e| e.1);
            let target = self.budget - self.budget / 8;
            for (k, _, len) in by_age {
                if c.bytes <= target || k == key {
                    continue;
                }
                c.map.remove(&k);
                c.bytes -= len;
            }
        }
    }

    fn held(&self) -> u64 {
        self.inner.lock().bytes
    }
}

/// A replica segment's full vectors, read from the bucket by range through the cache.
#[derive(Debug)]
struct BucketVectors {
    bucket: Arc<Bucket>,
    file: RemoteFile,
    section: Range<u64>,
    cache: Arc<ChunkCache>,
}

impl BucketVectors {
    /// The bucket range of chunk `c`.
    fn chunk_range(&self, c: u64) -> Range<u64> {
        let len = self.section.end - self.section.start;
        let from = c * CHUNK_BYTES;
        self.section.start + from..self.section.start + (from + CHUNK_BYTES).min(len)
    }

    /// Counts and caches fetched chunk `c`.
    fn keep(&self, c: u64, bytes: &[u8]) -> Arc<Vec<u8>> {
        self.cache
            .fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.cache.reads.fetch_add(1, Ordering::Relaxed);
        let chunk = Arc::new(bytes.to_vec());
        self.cache.insert((self.file.no, c), chunk.clone());
        chunk
    }
}

impl VectorSource for BucketVectors {
    fn prefetch(&self, ranges: &[Range<u64>]) {
        let mut missing: Vec<u64> = ranges
            .iter()
            .filter(|r| r.start < r.end)
            .flat_map(|r| r.start / CHUNK_BYTES..=(r.end - 1) / CHUNK_BYTES)
            .collect();
        missing.sort_unstable();
        missing.dedup();
        {
            // One look under one lock: a warm rerank finds every chunk and stops here.
            let held = self.cache.inner.lock();
            missing.retain(|&c| !held.map.contains_key(&(self.file.no, c)));
        }
        if missing.len() < 2 {
            return; // one chunk: the read fetches it
        }
        let wanted: Vec<Range<u64>> = missing.iter().map(|&c| self.chunk_range(c)).collect();
        match self.bucket.read_ranges(self.file, &wanted) {
            Ok(chunks) => {
                for (&c, bytes) in missing.iter().zip(chunks) {
                    self.keep(c, &bytes);
                }
            }
            // A hint: the reads fetch what is still missing, and report the failure.
            Err(e) => tracing::debug!(error = %e, "prefetching a replica's vectors failed"),
        }
    }

    fn read(&self, range: Range<u64>) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        let mut at = range.start;
        while at < range.end {
            let c = at / CHUNK_BYTES;
            let chunk = match self.cache.get((self.file.no, c)) {
                Some(chunk) => chunk,
                None => {
                    let bytes = self
                        .bucket
                        .read_range(self.file, self.chunk_range(c))
                        .map_err(std::io::Error::other)?;
                    self.keep(c, &bytes)
                }
            };
            let from = (at - c * CHUNK_BYTES) as usize;
            let to = ((range.end - c * CHUNK_BYTES) as usize).min(chunk.len());
            if from >= to {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "vectors past the end of the segment's object",
                ));
            }
            out.extend_from_slice(&chunk[from..to]);
            at = c * CHUNK_BYTES + to as u64;
        }
        Ok(out)
    }
}

struct Shared {
    bucket: Arc<Bucket>,
    dir: PathBuf,
    cache: Arc<ChunkCache>,
    /// Segments whose full vectors stay in the bucket: file number → (object, section).
    lazy: Mutex<HashMap<u64, (RemoteFile, Range<u64>)>>,
    seq: AtomicU64,
    front_bytes: AtomicU64,
    /// Held while the cache directory is brought to a newer commit.
    syncing: Mutex<()>,
}

/// A read replica of a store kept in a bucket: a [`ReadOnlyDb`] (searches, point reads,
/// counts, scans) over the bucket's newest commit, brought up to date by a background
/// thread every [`FOLLOW_EVERY`] and by [`Replica::refresh`].
pub struct Replica {
    db: Arc<ReadOnlyDb>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    follower: Option<std::thread::JoinHandle<()>>,
    _lock: files::StoreLock,
}

impl std::ops::Deref for Replica {
    type Target = ReadOnlyDb;
    fn deref(&self) -> &ReadOnlyDb {
        &self.db
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.follower.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Replica {
    /// Opens a replica of the store in the bucket of `config`, caching in `cache_dir`
    /// (created if missing; one replica at a time) with at most `cache_bytes` of full
    /// vectors held in memory.
    pub fn open(config: &RemoteConfig, cache_dir: &Path, cache_bytes: u64) -> Result<Replica> {
        let fs = strata_vfs::os();
        files::create_dir_durably(&*fs, cache_dir)?;
        let lock = files::lock(&*fs, cache_dir)?;
        let bucket = Arc::new(Bucket::connect(config)?);
        let Some(latest) = bucket.latest()? else {
            return Err(strata_remote::Error::Missing(format!(
                "{} (the bucket holds no store)",
                config.url
            ))
            .into());
        };
        let shared = Arc::new(Shared {
            bucket,
            dir: cache_dir.to_path_buf(),
            cache: Arc::new(ChunkCache {
                budget: cache_bytes.max(CHUNK_BYTES),
                inner: Mutex::new(Chunks::default()),
                fetched: AtomicU64::new(0),
                reads: AtomicU64::new(0),
            }),
            lazy: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            front_bytes: AtomicU64::new(0),
            syncing: Mutex::new(()),
        });
        shared.sync(&latest)?;
        let attach_shared = shared.clone();
        let attach: Arc<crate::recovery::AttachSource> =
            Arc::new(move |no: u64, reader: &mut SegmentReader| {
                let lazy = attach_shared.lazy.lock().get(&no).cloned();
                if let Some((file, section)) = lazy {
                    reader.set_vector_source(Arc::new(BucketVectors {
                        bucket: attach_shared.bucket.clone(),
                        file,
                        section,
                        cache: attach_shared.cache.clone(),
                    }));
                }
                Ok(())
            });
        let db = Arc::new(ReadOnlyDb::open_attached(fs, cache_dir, Some(attach))?);
        shared.seq.store(latest.seq, Ordering::Release);
        let stop = Arc::new(AtomicBool::new(false));
        let (s, d, st) = (shared.clone(), db.clone(), stop.clone());
        let follower = std::thread::Builder::new()
            .name("strata-replica".into())
            .spawn(move || {
                while !st.load(Ordering::Acquire) {
                    std::thread::park_timeout(FOLLOW_EVERY);
                    if st.load(Ordering::Acquire) {
                        return;
                    }
                    if let Err(e) = s.follow(&d) {
                        tracing::warn!(error = %e, "a replica could not follow its bucket; retried");
                    }
                }
            })
            .map_err(|e| Error::io(cache_dir, e))?;
        Ok(Replica {
            db,
            shared,
            stop,
            follower: Some(follower),
            _lock: lock,
        })
    }

    /// Brings the replica to the bucket's newest commit now; returns whether it moved.
    pub fn refresh(&self) -> Result<bool> {
        self.shared.follow(&self.db)
    }

    /// The bucket commit the replica answers at.
    pub fn seq(&self) -> u64 {
        self.shared.seq.load(Ordering::Acquire)
    }

    /// What the replica fetched, and its cache.
    pub fn replica_stats(&self) -> ReplicaStats {
        let c = &self.shared.cache;
        ReplicaStats {
            seq: self.seq(),
            front_bytes: self.shared.front_bytes.load(Ordering::Relaxed),
            vector_bytes: c.fetched.load(Ordering::Relaxed),
            vector_reads: c.reads.load(Ordering::Relaxed),
            cached_bytes: c.held(),
        }
    }
}

impl Shared {
    /// Moves to the bucket's newest commit if there is a newer one.
    fn follow(&self, db: &ReadOnlyDb) -> Result<bool> {
        let _g = self.syncing.lock();
        let seq = self.seq.load(Ordering::Acquire);
        let Some(latest) = self.bucket.latest_after(seq)? else {
            return Ok(false);
        };
        self.sync(&latest)?;
        db.refresh()?;
        self.seq.store(latest.seq, Ordering::Release);
        self.remove_unnamed(&latest)?;
        Ok(true)
    }

    /// Fetches what commit `r` names that the cache directory lacks, then publishes its
    /// manifest there.
    fn sync(&self, r: &RemoteManifest) -> Result<()> {
        let fs = strata_vfs::OsVfs;
        let m = Manifest::decode(&r.manifest).map_err(|e| Error::Corruption {
            path: self.dir.join(format!("<bucket commit {}>", r.seq)),
            offset: e.offset,
            kind: crate::error::CorruptionKind::Format(e.kind),
        })?;
        for e in &m.segments {
            let local = self.dir.join(FileKind::Segment.local_name(e.file_no));
            if !local.exists() {
                let file = r.file(FileKind::Segment, e.file_no).ok_or_else(|| {
                    strata_remote::Error::Missing(FileKind::Segment.local_name(e.file_no))
                })?;
                self.fetch_segment(file, e.file_len, &local)?;
            }
            if let Some(d) = e.deletion_file_no {
                let local = self.dir.join(FileKind::Deletion.local_name(d));
                if !local.exists() {
                    let file = r.file(FileKind::Deletion, d).ok_or_else(|| {
                        strata_remote::Error::Missing(FileKind::Deletion.local_name(d))
                    })?;
                    let n = self.bucket.download(&fs, file, &local)?;
                    self.front_bytes.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        strata_format::fsutil::sync_dir(&fs, &self.dir)?;
        m.write(&fs, &self.dir.join(files::MANIFEST))?;
        Ok(())
    }

    /// Fetches segment `file` (`len` bytes) into `local`: without its full vectors (a
    /// sparse gap, read by range later) when the walk does not score rows, else whole.
    fn fetch_segment(&self, file: RemoteFile, len: u64, local: &Path) -> Result<()> {
        let io = |e| Error::io(local, e);
        // The footer says where the section table starts; the table and the footer say
        // where each section lies.
        let footer_len = strata_format::segment::FOOTER_LEN;
        let footer = self
            .bucket
            .read_range(file, len.saturating_sub(footer_len)..len)?;
        let table_off = footer
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
            .min(len.saturating_sub(footer_len));
        let tail_from = table_off;
        let tail = self.bucket.read_range(file, tail_from..len)?;
        let sections = sections_from_tail(&tail, len).map_err(|e| Error::from(e.at(local)))?;
        let range = |kind: SectionKind| {
            sections
                .iter()
                .find(|(k, _)| *k == kind as u32)
                .map(|(_, r)| r.clone())
                .unwrap_or(0..0)
        };
        let (vectors, codes) = (range(SectionKind::Vectors), range(SectionKind::PqCodes));
        let tmp = local.with_extension("seg.part");
        let _ = std::fs::remove_file(&tmp);
        let f = std::fs::File::create_new(&tmp).map_err(io)?;
        let lazy = !codes.is_empty() && !vectors.is_empty();
        let mut fetched = 0;
        if lazy {
            let head = self.bucket.read_range(file, 0..vectors.start)?;
            f.write_all_at(&head, 0).map_err(io)?;
            f.set_len(len).map_err(io)?;
            // The rest after the vectors: from the tail already read, or fetched.
            let rest = if vectors.end >= tail_from {
                tail.slice((vectors.end - tail_from) as usize..)
            } else {
                self.bucket.read_range(file, vectors.end..len)?
            };
            f.write_all_at(&rest, vectors.end).map_err(io)?;
            fetched += footer.len() as u64 + head.len() as u64 + tail.len() as u64;
            if vectors.end < tail_from {
                fetched += rest.len() as u64;
            }
            self.lazy.lock().insert(file.no, (file, vectors));
        } else {
            let whole = self.bucket.read_range(file, 0..len)?;
            f.write_all_at(&whole, 0).map_err(io)?;
            fetched += footer.len() as u64 + whole.len() as u64 + tail.len() as u64;
        }
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, local).map_err(io)?;
        self.front_bytes.fetch_add(fetched, Ordering::Relaxed);
        Ok(())
    }

    /// Removes cached files commit `r` no longer names (open maps stay valid).
    fn remove_unnamed(&self, r: &RemoteManifest) -> Result<()> {
        let fs = strata_vfs::OsVfs;
        for (kind, no, _) in files::list(&fs, &self.dir)? {
            let named = match kind {
                files::FileKind::Segment => r.file(FileKind::Segment, no).is_some(),
                files::FileKind::Deletion => r.file(FileKind::Deletion, no).is_some(),
                files::FileKind::Wal => true,
            };
            if !named {
                let _ = std::fs::remove_file(files::path(&self.dir, kind, no));
                if kind == files::FileKind::Segment {
                    self.lazy.lock().remove(&no);
                }
            }
        }
        Ok(())
    }
}
