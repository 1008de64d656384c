//! [`ReadOnlyDb`]: a store opened for reading only, without the writer's lock, beside a
//! process that may be writing it. It sees the last published manifest and the WAL
//! records the writer has handed to the operating system, and follows both on
//! [`ReadOnlyDb::refresh`].
//!
//! Everything goes through the [`Vfs`], and the writer's files are never changed or
//! removed here: a reader of the same files in object storage works the same way.
//! Files the writer removes under a reader (a compaction's inputs, log files a flush
//! emptied) stay readable while the reader's snapshot maps them; a file removed between
//! reading the manifest and opening it makes the load start again from the new manifest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strata_format::Manifest;
use strata_index::Metric;
use strata_vfs::Vfs;
use strata_wal::ReplayMode;

use crate::error::{Error, Result};
use crate::files;
use crate::memtable::Memtable;
use crate::options::SearchOptions;
use crate::record::{Hit, Record};
use crate::recovery::{self, SegmentCache};
use crate::stats::Stats;
use crate::validate::prepare_query;
use crate::version::Version;
use crate::{inventory, lookup, search};

/// Loads restarted because the writer changed the store mid-load, before giving up.
const MAX_RELOADS: usize = 50;

/// What a load read: the manifest's bytes and the log files with their lengths. Equal
/// stamps mean nothing new to read.
#[derive(PartialEq, Eq)]
struct Stamp {
    manifest: Vec<u8>,
    wal: Vec<(u64, u64)>,
}

struct ReaderState {
    stamp: Stamp,
    cache: SegmentCache,
}

/// A read-only view of a store that another process (or a [`Db`](crate::Db) in this
/// one) may be writing. `Send + Sync`. Searches, point reads and counts work as on a
/// [`Db`](crate::Db) over the snapshot taken at open or at the latest
/// [`ReadOnlyDb::refresh`].
///
/// What it sees: every segment the last published manifest names, plus the records of
/// the write-ahead log that reached the operating system (acknowledged writes under any
/// durability; an unfinished record at the end of the log is left out until a refresh
/// finds it whole). Log rows are searched exactly (they have no graph here).
pub struct ReadOnlyDb {
    dir: PathBuf,
    fs: Arc<dyn Vfs>,
    dim: usize,
    metric: Metric,
    keys: crate::KeyKind,
    vector_codec: crate::VectorCodec,
    analyzer: crate::Analyzer,
    current: RwLock<Arc<Version>>,
    state: Mutex<ReaderState>,
    attach: Option<Arc<recovery::AttachSource>>,
}

impl ReadOnlyDb {
    /// Opens the store in `dir` for reading. Fails with [`Error::NotFound`] when there is
    /// no store, [`Error::Corruption`] when a file it needs is damaged.
    pub fn open(dir: impl AsRef<Path>) -> Result<ReadOnlyDb> {
        Self::open_with(strata_vfs::os(), dir)
    }

    /// [`ReadOnlyDb::open`] over the file system `fs` (see [`crate::Options::vfs`]).
    pub fn open_with(fs: Arc<dyn Vfs>, dir: impl AsRef<Path>) -> Result<ReadOnlyDb> {
        Self::open_attached(fs, dir.as_ref(), None)
    }

    /// [`ReadOnlyDb::open_with`], handing every segment it opens to `attach` first.
    pub(crate) fn open_attached(
        fs: Arc<dyn Vfs>,
        dir: &Path,
        attach: Option<Arc<recovery::AttachSource>>,
    ) -> Result<ReadOnlyDb> {
        let dir = dir.to_path_buf();
        let mut cache = SegmentCache::new();
        let (stamp, manifest, version) = load(&fs, &dir, &mut cache, attach.as_deref())?;
        let (dim, metric, keys, analyzer) =
            recovery::check_schema(&dir, &manifest, &crate::Options::existing())?;
        crate::calibrate::load(&*fs, &dir, dim, &version, false);
        Ok(ReadOnlyDb {
            dim,
            metric,
            keys,
            analyzer,
            vector_codec: manifest.vector_codec,
            fs,
            current: RwLock::new(Arc::new(version)),
            state: Mutex::new(ReaderState { stamp, cache }),
            dir,
            attach,
        })
    }

    /// Takes a new snapshot when the store changed (a new manifest, log records appended
    /// or log files added or removed); returns whether it did. Segments already open are
    /// kept, not read again. Each call also reads the writer's latest calibration
    /// (`docs/calibration.md`) into the segments it names.
    pub fn refresh(&self) -> Result<bool> {
        let mut st = self.state.lock();
        crate::calibrate::load(&*self.fs, &self.dir, self.dim, &self.snapshot(), true);
        if read_stamp(&self.fs, &self.dir)? == st.stamp {
            return Ok(false);
        }
        let (stamp, manifest, version) =
            load(&self.fs, &self.dir, &mut st.cache, self.attach.as_deref())?;
        // Forget segments the new manifest no longer names.
        let named: std::collections::HashSet<_> = manifest
            .segments
            .iter()
            .map(|e| (e.file_no, e.deletion_file_no))
            .collect();
        st.cache.retain(|k, _| named.contains(k));
        st.stamp = stamp;
        crate::calibrate::load(&*self.fs, &self.dir, self.dim, &version, true);
        *self.current.write() = Arc::new(version);
        Ok(true)
    }

    fn snapshot(&self) -> Arc<Version> {
        self.current.read().clone()
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Checks a query as [`ReadOnlyDb::search`] would (dimension, finite components, the
    /// norm bound, a non-zero vector for cosine) without searching.
    pub fn check_query(&self, query: &[f32]) -> Result<()> {
        prepare_query(query, self.dim, self.metric).map(|_| ())
    }

    /// See [`Db::search`](crate::Db::search).
    pub fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Hit>> {
        let q = prepare_query(query, self.dim, self.metric)?;
        let v = self.snapshot();
        let rows: usize = v.segments.iter().map(|s| s.reader.rows()).sum();
        search::search(
            &v,
            self.metric,
            self.keys,
            &q,
            opts,
            rows >= search::PARALLEL_MIN_ROWS,
        )
    }

    /// See [`Db::text_search`](crate::Db::text_search).
    pub fn text_search(&self, text: &str, opts: &SearchOptions) -> Result<Vec<Hit>> {
        crate::text_search::hits(&self.snapshot(), self.analyzer, self.keys, text, opts)
    }

    /// See [`Db::hybrid_search`](crate::Db::hybrid_search).
    pub fn hybrid_search(
        &self,
        query: &[f32],
        text: &str,
        opts: &SearchOptions,
        fusion: &crate::Fusion,
    ) -> Result<Vec<Hit>> {
        let q = prepare_query(query, self.dim, self.metric)?;
        let store = crate::hybrid::Store {
            metric: self.metric,
            keys: self.keys,
            analyzer: self.analyzer,
        };
        crate::hybrid::hits(&self.snapshot(), store, &q, text, opts, fusion)
    }

    /// See [`Db::analyzer`](crate::Db::analyzer).
    pub fn analyzer(&self) -> crate::Analyzer {
        self.analyzer
    }

    /// See [`Db::search_many`](crate::Db::search_many) (on rayon's global pool).
    pub fn search_many(&self, queries: &[&[f32]], opts: &SearchOptions) -> Result<Vec<Vec<Hit>>> {
        use rayon::prelude::*;
        let v = self.snapshot();
        queries
            .par_iter()
            .map(|q| {
                let q = prepare_query(q, self.dim, self.metric)?;
                search::search(&v, self.metric, self.keys, &q, opts, false)
            })
            .collect()
    }

    /// See [`Db::get`](crate::Db::get).
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        lookup::record(&self.snapshot(), id)
    }

    /// See [`Db::keys`](crate::Db::keys).
    pub fn keys(&self) -> crate::KeyKind {
        self.keys
    }

    /// See [`Db::vector_codec`](crate::Db::vector_codec).
    pub fn vector_codec(&self) -> crate::VectorCodec {
        self.vector_codec
    }

    /// See [`Db::get_key`](crate::Db::get_key).
    pub fn get_key(&self, key: &str) -> Result<Option<Record>> {
        crate::keys::record_by_key(&self.snapshot(), self.keys, key)
    }

    /// See [`Db::get_many_keys`](crate::Db::get_many_keys).
    pub fn get_many_keys(&self, keys: &[&str]) -> Result<Vec<Option<Record>>> {
        let v = self.snapshot();
        keys.iter()
            .map(|k| crate::keys::record_by_key(&v, self.keys, k))
            .collect()
    }

    /// See [`Db::contains`](crate::Db::contains).
    pub fn contains(&self, id: u64) -> bool {
        lookup::contains(&self.snapshot(), id)
    }

    /// See [`Db::len`](crate::Db::len).
    pub fn len(&self) -> u64 {
        lookup::live_rows(&self.snapshot())
    }

    /// See [`Db::count`](crate::Db::count).
    pub fn count(&self, filter: Option<&crate::Filter>) -> Result<u64> {
        if let Some(f) = filter {
            f.validate()?;
        }
        crate::records::count(&self.snapshot(), filter)
    }

    /// See [`Db::scan`](crate::Db::scan).
    pub fn scan(
        &self,
        filter: Option<&crate::Filter>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<crate::ScanPage> {
        if let Some(f) = filter {
            f.validate()?;
        }
        crate::records::scan(&self.snapshot(), filter, after, limit)
    }

    /// See [`Db::get_many`](crate::Db::get_many).
    pub fn get_many(&self, ids: &[u64]) -> Result<Vec<Option<Record>>> {
        let v = self.snapshot();
        ids.iter().map(|&id| lookup::record(&v, id)).collect()
    }

    /// See [`Db::fields`](crate::Db::fields).
    pub fn fields(&self) -> Result<std::collections::BTreeMap<String, crate::FieldSummary>> {
        crate::records::fields(&self.snapshot())
    }

    /// Whether the snapshot holds no live record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts and sizes of the snapshot and the store's files (the counters of a
    /// writing handle, such as fsyncs and write amplification, are zero here).
    pub fn stats(&self) -> Result<Stats> {
        inventory::collect_version(
            &self.snapshot(),
            &*self.fs,
            &self.dir,
            self.dim,
            self.metric,
        )
    }
}

/// The manifest's bytes and the live log files with their lengths, now.
fn read_stamp(fs: &Arc<dyn Vfs>, dir: &Path) -> Result<Stamp> {
    let mpath = dir.join(files::MANIFEST);
    let manifest = match fs.read(&mpath) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => return Err(Error::io(&mpath, e)),
    };
    let wal = files::list(&**fs, dir)?
        .into_iter()
        .filter(|&(k, _, _)| k == files::FileKind::Wal)
        .map(|(_, no, len)| (no, len))
        .collect();
    Ok(Stamp { manifest, wal })
}

/// A snapshot of the store: the manifest, its segments (from `cache` when open
/// already) and the log records after its checkpoint. Restarts when the writer
/// published a new manifest while this one was being read.
fn load(
    fs: &Arc<dyn Vfs>,
    dir: &Path,
    cache: &mut SegmentCache,
    attach: Option<&recovery::AttachSource>,
) -> Result<(Stamp, Manifest, Version)> {
    let mpath = dir.join(files::MANIFEST);
    let mut reloads = 0;
    loop {
        let stamp = read_stamp(fs, dir)?;
        let attempt = Manifest::decode(&stamp.manifest)
            .map_err(|e| Error::from(e.at(&mpath)))
            .and_then(|m| {
                let v = load_version(fs, dir, &m, cache, attach)?;
                Ok((m, v))
            });
        match attempt {
            Ok((m, v)) => return Ok((stamp, m, v)),
            Err(e) => {
                // A load that raced a writer's publish is retried on the new manifest;
                // a fault in a manifest that has not changed is real.
                let now = read_stamp(fs, dir)?;
                if now.manifest == stamp.manifest || reloads >= MAX_RELOADS {
                    return Err(e);
                }
                reloads += 1;
            }
        }
    }
}

fn load_version(
    fs: &Arc<dyn Vfs>,
    dir: &Path,
    m: &Manifest,
    cache: &mut SegmentCache,
    attach: Option<&recovery::AttachSource>,
) -> Result<Version> {
    let metric = Metric::from_code(m.metric).unwrap_or(Metric::L2);
    // An unknown analyzer is refused by the schema check after the load.
    let analyzer = crate::Analyzer::from_code(m.analyzer).unwrap_or_default();
    let segments = recovery::open_segments_cached(fs, dir, m, cache, false, attach)?;
    // Header-only files hold no records (the writer's fresh log, or an empty one).
    let header = strata_wal::record::FILE_HEADER_LEN as u64;
    let wal: Vec<_> = crate::files::wal_files(&**fs, dir, m)?
        .into_iter()
        .filter(|&(_, _, len)| len > header)
        .map(|(no, p, _)| (no, p))
        .collect();
    let mut v = Version {
        seq: m.checkpoint_seq,
        memtables: vec![Arc::new(Memtable::new(0, metric, None, &[], analyzer))],
        segments,
    };
    let (_, report) = recovery::replay(fs, &wal, m, m.dim as usize, &mut v, ReplayMode::ReadOnly)?;
    tracing::info!(
        dir = %dir.display(),
        segments = v.segments.len(),
        wal_files = wal.len(),
        records = report.records,
        unfinished_tail = report.torn_tail.is_some(),
        "read a snapshot of the store (read-only)"
    );
    Ok(v)
}
