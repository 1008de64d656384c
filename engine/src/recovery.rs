//! Opening a store: lock, manifest, orphan removal, segments, WAL replay.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};
use strata_format::{fsutil, DeletionBitmap, Manifest};
use strata_index::Metric;
use strata_vfs::Vfs;
use strata_wal::{ReplayError, ReplayMode, Wal};

use crate::batch::{self, BATCH_RECORD};
use crate::error::{CorruptionKind, Error, InvalidArgument, Result};
use crate::files::{self, FileKind};
use crate::inner::{apply, new_memtable, Inner, WriteState};
use crate::live_segment::LiveSegment;
use crate::options::{KeyKind, Options};
use crate::version::Version;

/// Opens the store in `dir`: lock, manifest and schema, orphan removal, segments, WAL
/// replay into a fresh memtable, then the shared state.
pub(crate) fn open(dir: &Path, opts: Options) -> Result<Inner> {
    if let Some(s) = &opts.recall_sampling {
        if !(s.fraction > 0.0 && s.fraction <= 1.0) {
            return Err(crate::InvalidArgument::RecallSampling(s.fraction).into());
        }
    }
    #[cfg(feature = "remote")]
    let has_bucket = opts.remote.is_some();
    #[cfg(not(feature = "remote"))]
    let has_bucket = false;
    if opts.durability == crate::Durability::Bucket && !has_bucket {
        return Err(crate::InvalidArgument::BucketDurability.into());
    }
    let fs = opts.vfs.clone();
    let exists = |p: &Path| fs.exists(p).map_err(|e| Error::io(p, e));
    let creating = !exists(&dir.join(files::MANIFEST))?;
    #[cfg(feature = "remote")]
    let from_bucket = opts.remote.is_some();
    #[cfg(not(feature = "remote"))]
    let from_bucket = false;
    if creating && opts.schema.is_none() && !from_bucket {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
        });
    }
    if creating {
        refuse_foreign_files(&*fs, dir)?;
    }
    files::create_dir_durably(&*fs, dir)?;
    let lock = files::lock(&*fs, dir)?;
    if creating {
        // Another process may have created files between the check and the lock.
        refuse_foreign_files(&*fs, dir)?;
    }
    #[cfg(feature = "remote")]
    let attached = match &opts.remote {
        Some(config) => Some(crate::remote::attach(&*fs, dir, creating, config)?),
        None => None,
    };
    let manifest = load_or_create_manifest(&*fs, dir, &opts)?;
    let (dim, metric, keys, analyzer) = check_schema(dir, &manifest, &opts)?;
    let vector_codec = manifest.vector_codec;
    #[cfg(feature = "remote")]
    let remote = match (attached, &opts.remote) {
        (Some((bucket, latest)), Some(config)) => Some(crate::remote::claim(
            &fs,
            dir,
            config,
            bucket,
            latest.as_ref(),
            &manifest,
            creating,
        )?),
        _ => None,
    };
    let max_seen = remove_orphans(&*fs, dir, &manifest)?;
    let segments = open_segments(&fs, dir, &manifest, opts.resident_front)?;
    let recovered = recover_wal(dir, &opts, &manifest, metric, segments, max_seen)?;
    let search_pool = match opts.search_threads {
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| Error::io(dir, std::io::Error::other(e)))?,
        ),
        None => None,
    };
    let version = Arc::new(recovered.version);
    let calibration = crate::calibration::CalibrationState::default();
    let recall = opts
        .recall_sampling
        .map(crate::observed_recall::RecallMonitor::new);
    let saved = crate::calibrate::load(&*fs, dir, dim, &version, false);
    {
        let mut sample = calibration.sample.lock();
        for q in saved {
            sample.push(q);
        }
    }
    #[cfg(feature = "remote")]
    let remote = match remote {
        Some((w, shipped)) => {
            crate::remote::queue_unshipped(&*fs, dir, &manifest, &w, shipped)?;
            Some(w)
        }
        None => None,
    };
    let next_id = first_unused_id(&version);
    let st = WriteState {
        next_id,
        next_seq: recovered.end_seq.max(manifest.checkpoint_seq + 1),
        next_file_no: recovered.next_file_no,
        version: version.clone(),
        manifest,
        closed: false,
    };
    Ok(Inner {
        metrics: crate::metrics::StoreMetrics::new(dir),
        dir: dir.to_path_buf(),
        opts,
        dim,
        metric,
        vector_codec,
        analyzer,
        keys,
        wal: recovered.wal,
        write: Mutex::new(st),
        changed: Condvar::new(),
        current: RwLock::new(version),
        poisoned: std::sync::OnceLock::new(),
        background_error: Mutex::new(None),
        shutdown: AtomicBool::new(false),
        search_pool,
        compaction_pool: std::sync::OnceLock::new(),
        flush_pool: std::sync::OnceLock::new(),
        compacting: Mutex::new(()),
        compactions: Default::default(),
        writes: Default::default(),
        builds: Default::default(),
        indexer: std::sync::OnceLock::new(),
        calibration,
        recall,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        #[cfg(feature = "remote")]
        remote,
        _lock: lock,
    })
}

/// Refuses to create a store in a directory that holds anything but what an interrupted
/// create leaves (`LOCK`, `MANIFEST.tmp`): open-time cleanup removes numbered files, so it
/// must only ever run in a store's own directory.
fn refuse_foreign_files(fs: &dyn Vfs, dir: &Path) -> Result<()> {
    if !fs.exists(dir).map_err(|e| Error::io(dir, e))? {
        return Ok(());
    }
    let manifest_tmp = format!("{}.tmp", files::MANIFEST);
    let entries = fs.list(dir).map_err(|e| Error::io(dir, e))?;
    match entries
        .into_iter()
        .map(|(name, _)| name)
        .find(|name| name != files::LOCK && *name != manifest_tmp)
    {
        Some(entry) => Err(Error::NotAStore {
            path: dir.to_path_buf(),
            entry,
        }),
        None => Ok(()),
    }
}

/// The id a string key new to the store is bound to next: above every id any segment or
/// memtable row holds (deleted rows included, so an id is never bound to a second key
/// while a row of the first one exists).
fn first_unused_id(v: &Version) -> u64 {
    let segments = v.segments.iter().filter_map(|s| s.reader.max_id());
    let memtables = v.memtables.iter().flat_map(|m| m.rows().map(|r| r.id));
    segments
        .chain(memtables)
        .max()
        .map_or(0, |m| m.saturating_add(1))
}

/// The store's dimension, metric, key kind and text analyzer from its manifest; refuses
/// options that asked for another schema.
pub(crate) fn check_schema(
    dir: &Path,
    manifest: &Manifest,
    opts: &Options,
) -> Result<(usize, Metric, KeyKind, crate::Analyzer)> {
    let metric = Metric::from_code(manifest.metric).ok_or_else(|| Error::Corruption {
        path: dir.join(files::MANIFEST),
        offset: 28,
        kind: CorruptionKind::Inconsistent("unknown metric code"),
    })?;
    let dim = manifest.dim as usize;
    let keys = KeyKind::from_code(manifest.keys).ok_or_else(|| Error::Corruption {
        path: dir.join(files::MANIFEST),
        offset: 29,
        kind: CorruptionKind::Inconsistent("unknown key kind"),
    })?;
    let analyzer =
        crate::Analyzer::from_code(manifest.analyzer).ok_or_else(|| Error::Corruption {
            path: dir.join(files::MANIFEST),
            offset: 31,
            kind: CorruptionKind::Inconsistent("unknown text analyzer"),
        })?;
    if let Some(asked) = opts.analyzer.filter(|&a| a != analyzer) {
        return Err(InvalidArgument::AnalyzerMismatch {
            stored: analyzer.name(),
            asked: asked.name(),
        }
        .into());
    }
    if let Some(asked) = opts.vector_codec.filter(|&c| c != manifest.vector_codec) {
        return Err(InvalidArgument::VectorCodecMismatch {
            stored: manifest.vector_codec.name(),
            asked: asked.name(),
        }
        .into());
    }
    if let Some(asked) = opts.schema {
        if asked.dim != dim || asked.metric != metric {
            return Err(InvalidArgument::SchemaMismatch {
                dim,
                metric: metric.name(),
                asked_dim: asked.dim,
                asked_metric: asked.metric.name(),
            }
            .into());
        }
        if asked.keys != keys {
            return Err(InvalidArgument::KeysMismatch {
                stored: keys.name(),
                asked: asked.keys.name(),
            }
            .into());
        }
    }
    Ok((dim, metric, keys, analyzer))
}

/// What WAL recovery leaves: the version with the replayed memtable, the log open on a
/// new file, the next sequence and file numbers.
struct Recovered {
    version: Version,
    wal: Wal,
    end_seq: u64,
    next_file_no: u64,
}

/// Replays the live WAL files after the checkpoint into a fresh memtable over
/// `segments`, makes the replayed tail durable, starts a new WAL file, and removes
/// header-only WAL files.
fn recover_wal(
    dir: &Path,
    opts: &Options,
    manifest: &Manifest,
    metric: Metric,
    segments: Vec<LiveSegment>,
    max_seen: u64,
) -> Result<Recovered> {
    let fs = &opts.vfs;
    let exists = |p: &Path| fs.exists(p).map_err(|e| Error::io(p, e));
    // Header-only WAL files (left by opens that wrote nothing) hold no records: they are
    // removed after a successful replay instead of accumulating.
    let (empty_wals, wal_files): (Vec<_>, Vec<_>) = files::wal_files(&**fs, dir, manifest)?
        .into_iter()
        .partition(|&(_, _, len)| len <= strata_wal::record::FILE_HEADER_LEN as u64);
    let wal_files: Vec<_> = wal_files.into_iter().map(|(no, p, _)| (no, p)).collect();
    let first_wal_no = wal_files.first().map(|f| f.0);
    let mut next_file_no = manifest.next_file_no.max(max_seen + 1);
    let wal_no = next_file_no;
    next_file_no += 1;
    // The analyzer was checked with the schema.
    let analyzer = crate::Analyzer::from_code(manifest.analyzer).unwrap_or_default();
    let mem = Arc::new(new_memtable(
        opts,
        metric,
        analyzer,
        first_wal_no.unwrap_or(wal_no),
    ));
    let mut version = Version {
        seq: manifest.checkpoint_seq,
        memtables: vec![mem],
        segments,
    };
    let dim = manifest.dim as usize;
    let (end_seq, report) = replay(
        fs,
        &wal_files,
        manifest,
        dim,
        &mut version,
        ReplayMode::Repair,
    )?;
    tracing::info!(
        dir = %dir.display(),
        segments = version.segments.len(),
        wal_files = wal_files.len(),
        records = report.records,
        torn_tail = report.torn_tail.is_some(),
        "replayed the write-ahead log"
    );
    if let Some((path, offset, bytes)) = &report.torn_tail {
        tracing::debug!(path = %path.display(), offset, bytes, "cut a torn WAL tail");
    }
    // The replayed tail of the newest WAL file may never have been synced by the
    // session that wrote it (it crashed first). Make it durable before new records go to
    // a newer file: replay treats every file but the newest as fully synced.
    if let Some((_, last)) = wal_files.last() {
        if exists(last)? {
            fs.sync_file(last).map_err(|e| Error::io(last, e))?;
        }
    }
    fsutil::sync_dir(&**fs, dir)?;
    let wal = Wal::create(fs.clone(), dir, wal_no)?;
    for (_, p, _) in &empty_wals {
        fs.remove(p).map_err(|e| Error::io(p, e))?;
    }
    if !empty_wals.is_empty() {
        fsutil::sync_dir(&**fs, dir)?;
    }
    Ok(Recovered {
        version,
        wal,
        end_seq,
        next_file_no,
    })
}

fn load_or_create_manifest(fs: &dyn Vfs, dir: &Path, opts: &Options) -> Result<Manifest> {
    let path = dir.join(files::MANIFEST);
    let tmp = path.with_extension("tmp");
    let exists = |p: &Path| fs.exists(p).map_err(|e| Error::io(p, e));
    if exists(&tmp)? {
        // An unfinished publish: the rename never happened, so the old manifest stands.
        fs.remove(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    if exists(&path)? {
        let m = Manifest::read(fs, &path)?;
        sync_mirror(fs, dir, &m)?;
        return Ok(m);
    }
    let Some(schema) = opts.schema else {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
        });
    };
    let dim = schema.dim;
    if dim == 0 || dim > strata_format::segment::MAX_DIM as usize {
        return Err(InvalidArgument::Dimension(dim).into());
    }
    let m = Manifest {
        dim: dim as u32,
        metric: schema.metric.code(),
        keys: schema.keys.code(),
        vector_codec: opts.vector_codec.unwrap_or_default(),
        analyzer: opts.analyzer.unwrap_or_default().code(),
        next_file_no: 1,
        checkpoint_seq: 0,
        wal_min_no: 1,
        segments: Vec::new(),
    };
    m.write(fs, &path)?;
    sync_mirror(fs, dir, &m)?;
    Ok(m)
}

/// Makes `MANIFEST-MIRROR` a copy of the manifest `m` when it is not one (a store
/// from before mirrors, a crash between the two writes, a damaged mirror).
pub(crate) fn sync_mirror(fs: &dyn Vfs, dir: &Path, m: &Manifest) -> Result<()> {
    let path = dir.join(files::MANIFEST_MIRROR);
    let want = m.encode();
    let same = match fs.read(&path) {
        Ok(have) => have == want,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(&path, e)),
    };
    if !same {
        m.write(fs, &path)?;
    }
    Ok(())
}

/// The numbered files a manifest names (or, for WAL files, covers).
pub(crate) struct LiveFiles {
    named: HashSet<(FileKind, u64)>,
    wal_min_no: u64,
}

impl LiveFiles {
    pub fn of(m: &Manifest) -> Self {
        let named = m
            .segments
            .iter()
            .flat_map(|s| {
                std::iter::once((FileKind::Segment, s.file_no))
                    .chain(s.deletion_file_no.map(|d| (FileKind::Deletion, d)))
            })
            .collect();
        LiveFiles {
            named,
            wal_min_no: m.wal_min_no,
        }
    }

    /// Whether file `no` of `kind` is live; anything else is garbage.
    pub fn contains(&self, kind: FileKind, no: u64) -> bool {
        match kind {
            FileKind::Wal => no >= self.wal_min_no,
            _ => self.named.contains(&(kind, no)),
        }
    }
}

/// Deletes numbered files the manifest does not name; returns the highest file number
/// seen (live or not) so new files never reuse a number.
fn remove_orphans(fs: &dyn Vfs, dir: &Path, m: &Manifest) -> Result<u64> {
    let live = LiveFiles::of(m);
    let mut max_seen = 0;
    let mut removed = false;
    for (kind, no, _) in files::list(fs, dir)? {
        max_seen = max_seen.max(no);
        let keep = live.contains(kind, no);
        if !keep {
            let p = files::path(dir, kind, no);
            fs.remove(&p).map_err(|e| Error::io(&p, e))?;
            removed = true;
        }
    }
    if removed {
        fsutil::sync_dir(fs, dir)?;
    }
    Ok(max_seen)
}

/// Opens the segments `m` names, newest first, each with its deletion file (and its
/// search front in process memory when `resident_front`).
pub(crate) fn open_segments(
    fs: &Arc<dyn Vfs>,
    dir: &Path,
    m: &Manifest,
    resident_front: bool,
) -> Result<Vec<LiveSegment>> {
    open_segments_cached(fs, dir, m, &mut SegmentCache::new(), resident_front, None)
}

/// Segments already open, by segment and deletion file number, as a manifest names
/// them (before any WAL replay changes their bitmaps).
pub(crate) type SegmentCache = std::collections::HashMap<(u64, Option<u64>), LiveSegment>;

/// [`open_segments`], taking segments found in `cache` from there and adding the ones it
/// opens.
/// Gives a segment reader just opened (file number, reader) what it needs before use: a
/// replica's vector source.
pub(crate) type AttachSource =
    dyn Fn(u64, &mut strata_format::segment::SegmentReader) -> Result<()> + Send + Sync;

pub(crate) fn open_segments_cached(
    fs: &Arc<dyn Vfs>,
    dir: &Path,
    m: &Manifest,
    cache: &mut SegmentCache,
    resident_front: bool,
    attach: Option<&AttachSource>,
) -> Result<Vec<LiveSegment>> {
    let mut out = Vec::with_capacity(m.segments.len());
    let exists = |p: &Path| fs.exists(p).map_err(|e| Error::io(p, e));
    for e in m.segments.iter().rev() {
        if let Some(seg) = cache.get(&(e.file_no, e.deletion_file_no)) {
            out.push(seg.clone());
            continue;
        }
        let path = files::path(dir, FileKind::Segment, e.file_no);
        if !exists(&path)? {
            return Err(Error::Corruption {
                path,
                offset: 0,
                kind: CorruptionKind::MissingFile,
            });
        }
        let mut reader = crate::live_segment::open_reader(&**fs, &path, resident_front)?;
        if let Some(attach) = attach {
            attach(e.file_no, &mut reader)?;
        }
        let h = reader.header();
        let inconsistent = |what| Error::Corruption {
            path: path.clone(),
            offset: 0,
            kind: CorruptionKind::Inconsistent(what),
        };
        if h.rows != e.rows || reader.file_len() != e.file_len {
            return Err(inconsistent("segment size differs from the manifest"));
        }
        if h.dim != m.dim || h.metric != m.metric {
            return Err(inconsistent("segment schema differs from the manifest"));
        }
        let deleted = match e.deletion_file_no {
            Some(d) => {
                let dp = files::path(dir, FileKind::Deletion, d);
                if !exists(&dp)? {
                    return Err(Error::Corruption {
                        path: dp,
                        offset: 0,
                        kind: CorruptionKind::MissingFile,
                    });
                }
                DeletionBitmap::read(&**fs, &dp, e.file_no, reader.rows())?
            }
            None => DeletionBitmap::new(reader.rows()),
        };
        let seg = LiveSegment::new(
            fs.clone(),
            e.file_no,
            Arc::new(reader),
            deleted,
            e.deletion_file_no,
        );
        cache.insert((e.file_no, e.deletion_file_no), seg.clone());
        out.push(seg);
    }
    Ok(out)
}

/// Replays WAL records after the checkpoint into `v`; returns the next sequence number
/// and the replay report.
pub(crate) fn replay(
    fs: &Arc<dyn Vfs>,
    files: &[(u64, std::path::PathBuf)],
    m: &Manifest,
    dim: usize,
    v: &mut Version,
    mode: ReplayMode,
) -> Result<(u64, strata_wal::ReplayReport)> {
    let mut next = m.checkpoint_seq + 1;
    let res = strata_wal::replay(&**fs, files, mode, |r| {
        let rec = r.record;
        let path = files.iter().find(|f| f.0 == r.file_no).map_or_else(
            || PathBuf::from(format!("WAL file {}", r.file_no)),
            |f| f.1.clone(),
        );
        let bad = |kind| Error::Corruption {
            path: path.clone(),
            offset: r.offset,
            kind,
        };
        if rec.kind != BATCH_RECORD {
            return Err(bad(CorruptionKind::Batch("unknown record kind")));
        }
        let end = rec.seq.saturating_add(rec.count as u64);
        if end <= next {
            return Ok(()); // already in a segment
        }
        if rec.seq != next {
            return Err(bad(CorruptionKind::Inconsistent(
                "WAL does not continue from the checkpoint",
            )));
        }
        let ops = batch::decode(rec.payload, rec.count, dim).map_err(bad)?;
        if ops.is_empty() {
            return Err(bad(CorruptionKind::Batch("empty batch")));
        }
        apply(v, rec.seq, ops)?;
        next = end;
        Ok(())
    });
    match res {
        Ok(report) => Ok((next, report)),
        Err(ReplayError::Wal(e)) => Err(e.into()),
        Err(ReplayError::Apply(e)) => Err(e),
    }
}
