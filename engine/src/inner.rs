//! The state a store's handle and its background threads share ([`Inner`]), the
//! mutable part guarded by the write lock ([`WriteState`]), and the operations on them
//! that every path uses: snapshots, publishing a version, poisoning, freezing the
//! memtable, and applying a batch to a version.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex, RwLock};
use strata_format::Manifest;
use strata_index::Metric;
use strata_wal::Wal;

use crate::batch::Op;
use crate::error::{Error, Result};
use crate::memtable::{Frozen, Memtable, NewRow};
use crate::options::Options;
use crate::stats::{BuildLog, CompactionCounters, WriteCounters};
use crate::version::Version;

/// Mutable state guarded by the write lock.
pub(crate) struct WriteState {
    pub next_seq: u64,
    /// The id the next string key new to the store is bound to (string-keyed stores).
    pub next_id: u64,
    pub next_file_no: u64,
    pub version: Arc<Version>,
    pub manifest: Manifest,
    pub closed: bool,
}

impl WriteState {
    pub fn alloc_file_no(&mut self) -> u64 {
        let n = self.next_file_no;
        self.next_file_no += 1;
        n
    }
}

/// Shared by the handle and the background threads.
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: Options,
    pub dim: usize,
    pub metric: Metric,
    pub keys: crate::KeyKind,
    /// How new segments store their vectors (the manifest's codec).
    pub vector_codec: crate::VectorCodec,
    /// How text becomes terms (the store's analyzer).
    pub analyzer: crate::Analyzer,
    pub wal: Wal,
    pub write: Mutex<WriteState>,
    /// What the store reports through the `metrics` facade.
    pub metrics: crate::metrics::StoreMetrics,
    /// Signals flush work, finished flushes (for stalled writers) and shutdown.
    pub changed: Condvar,
    pub current: RwLock<Arc<Version>>,
    /// The failure that stopped the store (set once; writes are refused from then on).
    pub poisoned: OnceLock<Arc<Error>>,
    /// The latest failure of a background flush, sync or compaction (a failed compaction
    /// leaves the store as it was; the others also poison it).
    pub background_error: Mutex<Option<Arc<Error>>>,
    pub shutdown: AtomicBool,
    pub search_pool: Option<rayon::ThreadPool>,
    /// The thread budget of merges, built by the first compaction (`None` inside when
    /// the pool could not be built: merges then run on the caller's thread).
    pub compaction_pool: OnceLock<Option<rayon::ThreadPool>>,
    /// The pool that builds flushed segments' indexes (all cores, background priority),
    /// built by the first flush; `None` inside: builds run on the flusher's thread.
    pub flush_pool: OnceLock<Option<rayon::ThreadPool>>,
    /// Held for the whole of a compaction: one at a time.
    pub compacting: Mutex<()>,
    /// What compactions did since open.
    pub compactions: CompactionCounters,
    /// Bytes written and writer slowdowns since open.
    pub writes: WriteCounters,
    /// How the latest segments were built.
    pub builds: BuildLog,
    /// The memtable indexer thread, woken after writes.
    pub indexer: OnceLock<std::thread::Thread>,
    /// The recent-query sample and the calibrator's wake-up.
    pub calibration: crate::calibration::CalibrationState,
    /// Searches sampled to measure their recall, when the options ask for it.
    pub recall: Option<crate::observed_recall::RecallMonitor>,
    /// Cores of the machine (`available_parallelism`), read at open.
    pub cores: usize,
    /// The bucket session, for a store kept in a bucket.
    #[cfg(feature = "remote")]
    pub remote: Option<strata_remote::RemoteWriter>,
    pub _lock: crate::files::StoreLock,
}

impl Inner {
    /// A fresh memtable for this store's options.
    pub fn new_memtable(&self, first_wal_no: u64) -> Memtable {
        new_memtable(&self.opts, self.metric, self.analyzer, first_wal_no)
    }

    pub fn snapshot(&self) -> Arc<Version> {
        self.current.read().clone()
    }

    /// Marks the store failed by `cause` (the first cause is kept) and wakes every
    /// waiter. Takes the write lock so that a waiter between its check and its wait cannot
    /// miss the wake-up; callers that hold the lock use [`Inner::poison_locked`].
    pub fn poison(&self, cause: &Error) {
        let _st = self.write.lock();
        self.poison_locked(cause);
    }

    /// [`Inner::poison`] for callers holding the write lock.
    pub fn poison_locked(&self, cause: &Error) {
        let _ = self.poisoned.set(Arc::new(cause.duplicate()));
        self.changed.notify_all();
    }

    /// Whether a failure stopped the store.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.get().is_some() || self.wal.is_poisoned()
    }

    /// The failure that stopped the store: the one recorded here, else the WAL's own
    /// (a writer can see the poisoned log before the failing thread records its cause).
    pub fn poison_cause(&self) -> Option<Arc<Error>> {
        self.poisoned
            .get()
            .cloned()
            .or_else(|| self.wal.first_failure().map(|e| Arc::new(Error::from(e))))
    }

    /// Records the failure of a background job (returned by `Db::stats`).
    pub fn record_background_error(&self, e: &Error) {
        *self.background_error.lock() = Some(Arc::new(e.duplicate()));
    }

    /// `Ok` while the store takes writes: not closed, not stopped by a failure (that
    /// failure is the error's source).
    pub fn ensure_writable(&self, st: &WriteState) -> Result<()> {
        if st.closed {
            Err(Error::Closed)
        } else if self.is_poisoned() {
            Err(Error::Poisoned {
                cause: self.poison_cause(),
            })
        } else {
            Ok(())
        }
    }

    /// Converts a failed WAL call: the store stops (poisoned with this failure as the
    /// cause) unless the log refused the record before writing anything.
    pub fn wal_failed_locked(&self, e: strata_wal::Error) -> Error {
        match e {
            strata_wal::Error::Poisoned => Error::Poisoned {
                cause: self.poison_cause(),
            },
            strata_wal::Error::RecordTooLarge { .. } => Error::from(e),
            e => {
                let e = Error::from(e);
                self.poison_locked(&e);
                e
            }
        }
    }

    /// [`Inner::wal_failed_locked`] for callers without the write lock.
    pub fn wal_failed(&self, e: strata_wal::Error) -> Error {
        let _st = self.write.lock();
        self.wal_failed_locked(e)
    }

    /// Installs `v` as the current version.
    pub fn publish(&self, st: &mut WriteState, v: Version) {
        let v = Arc::new(v);
        st.version = v.clone();
        *self.current.write() = v;
    }

    /// Slows a writer while too many frozen memtables wait for flush, and (by up to a
    /// millisecond per batch) while compaction is behind.
    pub fn wait_for_room(&self, st: &mut parking_lot::MutexGuard<'_, WriteState>) -> Result<()> {
        loop {
            self.ensure_writable(st)?;
            let frozen = st.version.memtables.len().saturating_sub(1);
            if frozen < self.opts.max_immutable_memtables.max(1) {
                break;
            }
            WriteCounters::add(&self.writes.stalled_batches, 1);
            self.metrics.writer_waited(true);
            self.changed.wait(st);
        }
        let c = &self.opts.compaction;
        if c.background && st.version.segments.len() > c.slowdown_segments {
            WriteCounters::add(&self.writes.slowed_batches, 1);
            self.metrics.writer_waited(false);
            self.changed
                .wait_for(st, std::time::Duration::from_millis(1));
            self.ensure_writable(st)?;
        }
        Ok(())
    }

    pub fn maybe_switch(&self, st: &mut WriteState) -> Result<()> {
        let full = st
            .version
            .active()
            .is_some_and(|m| m.bytes() >= self.opts.memtable_bytes);
        if full {
            self.switch(st)
        } else if self.wal.file_bytes() >= self.opts.wal_file_bytes {
            let no = st.alloc_file_no();
            self.wal.rotate(no).map_err(|e| self.wal_failed_locked(e))
        } else {
            Ok(())
        }
    }

    /// Freezes the active memtable and starts a new one in a new WAL file.
    pub fn switch(&self, st: &mut WriteState) -> Result<()> {
        let wal_no = st.alloc_file_no();
        self.wal
            .rotate(wal_no)
            .map_err(|e| self.wal_failed_locked(e))?;
        let mut v = (*st.version).clone();
        if let Some(m) = v.active() {
            m.freeze(Frozen {
                last_seq: st.next_seq - 1,
                next_wal_no: wal_no,
            });
        }
        v.memtables.insert(0, Arc::new(self.new_memtable(wal_no)));
        self.publish(st, v);
        self.changed.notify_all();
        Ok(())
    }
}

/// A fresh memtable for `opts`.
pub(crate) fn new_memtable(
    opts: &Options,
    metric: Metric,
    analyzer: crate::Analyzer,
    first_wal_no: u64,
) -> Memtable {
    let graph = opts.index.memtable_graph.then_some(&opts.index.hnsw);
    Memtable::new(
        first_wal_no,
        metric,
        graph,
        &opts.unindexed_fields,
        analyzer,
    )
}

/// Applies operations starting at `seq` to a version being built (live writes and replay).
/// Every version has an active memtable; one without is [`Error::Internal`].
pub(crate) fn apply(v: &mut Version, seq: u64, ops: Vec<Op>) -> Result<()> {
    let n = ops.len() as u64;
    let Some(active) = v.active().cloned() else {
        return Err(Error::Internal(
            "a version without an active memtable".into(),
        ));
    };
    for (i, op) in ops.into_iter().enumerate() {
        let s = seq + i as u64;
        match op {
            Op::Upsert {
                id,
                key,
                vector,
                payload,
                metadata,
                text,
            } => {
                v.tombstone(id, s);
                let row = NewRow {
                    key: key.map(Into::into),
                    vector,
                    payload,
                    metadata,
                    text,
                };
                active.insert(id, s, row);
            }
            Op::Delete { id } => v.tombstone(id, s),
            Op::DeleteKey { .. } => {
                return Err(Error::Internal(
                    "a delete by key reached the memtable unresolved".into(),
                ))
            }
        }
        active.count_op();
    }
    v.seq = v.seq.max(seq + n - 1);
    Ok(())
}
