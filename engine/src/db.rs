//! [`Db`]: the public handle of a store, and the write path.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use strata_compaction::{BuildReport, Reason, Stage};
use strata_index::Metric;

use crate::batch::{self, Op, WriteBatch, BATCH_RECORD};
use crate::calibration::SegmentCalibration;
use crate::checkpoint::{self, CheckpointReport};
use crate::error::{Error, InvalidArgument, Result};
use crate::filter::Filter;
use crate::inner::{apply, Inner};
use crate::metrics::SearchKind;
use crate::options::{Durability, Options, SearchOptions, WriteOptions};
use crate::read_only::ReadOnlyDb;
use crate::record::{Hit, Record};
use crate::records::{self, ScanPage};
use crate::stats::{CompactionReport, Stats, WriteCounters, WriteStats};
use crate::validate::{check_upsert, prepare, prepare_query};
use crate::version::Version;
use crate::{calibrate, compaction, flush, inventory, lookup, recovery, search};

/// An open store. `Send + Sync`: share it with `Arc`. Dropping it without [`Db::close`]
/// is a crash that the next open recovers from.
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Db {
    /// Opens the store in `dir`, creating it when absent and `opts` has a schema ([`Options::new`]).
    ///
    /// Fails with [`Error::Locked`] when another process has it open, with
    /// [`Error::Corruption`] naming the file and offset when a file is damaged.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let inner = Arc::new(recovery::open(dir.as_ref(), opts)?);
        let db = Db {
            inner: inner.clone(),
            workers: Mutex::new(Vec::new()),
        };
        // A thread that cannot start is an I/O-class error; dropping `db` stops the ones
        // already running.
        let spawned =
            |h: std::io::Result<JoinHandle<()>>| h.map_err(|e| Error::io(dir.as_ref(), e));
        db.workers
            .lock()
            .push(spawned(flush::spawn_flusher(inner.clone()))?);
        if inner.opts.index.memtable_graph {
            let h = spawned(flush::spawn_indexer(inner.clone()))?;
            let _ = inner.indexer.set(h.thread().clone());
            db.workers.lock().push(h);
        }
        if inner.opts.compaction.background {
            db.workers
                .lock()
                .push(spawned(compaction::spawn_compactor(inner.clone()))?);
        }
        if inner.opts.background_calibration || inner.recall.is_some() {
            db.workers
                .lock()
                .push(spawned(calibrate::spawn_calibrator(inner.clone()))?);
            inner.calibration.notify();
        }
        if let Durability::Periodic(every) = inner.opts.durability {
            db.workers
                .lock()
                .push(spawned(flush::spawn_syncer(inner.clone(), every))?);
        }
        inventory::publish(&inner);
        Ok(db)
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.inner.dim
    }

    /// Metric.
    pub fn metric(&self) -> Metric {
        self.inner.metric
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Inserts or replaces `id`.
    pub fn upsert(&self, id: u64, vector: &[f32]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.upsert(id, vector);
        self.write(b)
    }

    /// Inserts or replaces `id` with a payload.
    pub fn upsert_with_payload(&self, id: u64, vector: &[f32], payload: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.upsert_with_payload(id, vector, payload);
        self.write(b)
    }

    /// What identifies this store's records: `u64` ids or string keys.
    pub fn keys(&self) -> crate::KeyKind {
        self.inner.keys
    }

    /// How this store keeps its full vectors on disk ([`Options::vector_codec`](crate::Options::vector_codec)).
    pub fn vector_codec(&self) -> crate::VectorCodec {
        self.inner.vector_codec
    }

    /// Inserts the record of string key `key`, or replaces it (a store of
    /// [`KeyKind::String`](crate::KeyKind)), with metadata and a payload, each optional.
    pub fn upsert_key(
        &self,
        key: &str,
        vector: &[f32],
        metadata: Option<&crate::Metadata>,
        payload: Option<&[u8]>,
    ) -> Result<()> {
        let mut b = WriteBatch::new();
        b.upsert_keyed(key, vector, metadata, payload);
        self.write(b)
    }

    /// Deletes the record of string key `key` (no error when absent).
    pub fn delete_key(&self, key: &str) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete_key(key);
        self.write(b)
    }

    /// The record of string key `key`, if it exists.
    pub fn get_key(&self, key: &str) -> Result<Option<Record>> {
        crate::keys::record_by_key(&self.inner.snapshot(), self.inner.keys, key)
    }

    /// Whether a live record has string key `key` (cheaper than [`Db::get_key`]: reads
    /// no vector).
    pub fn contains_key(&self, key: &str) -> Result<bool> {
        crate::keys::live_id(&self.inner.snapshot(), self.inner.keys, key).map(|id| id.is_some())
    }

    /// The records of string keys `keys` (`None` for an absent key), in order, from one
    /// snapshot.
    pub fn get_many_keys(&self, keys: &[&str]) -> Result<Vec<Option<Record>>> {
        let v = self.inner.snapshot();
        keys.iter()
            .map(|k| crate::keys::record_by_key(&v, self.inner.keys, k))
            .collect()
    }

    /// Deletes `id` (no error when absent).
    pub fn delete(&self, id: u64) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(id);
        self.write(b)
    }

    /// Applies a batch atomically with the store's default durability.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_opt(batch, WriteOptions::default())
    }

    /// Applies a batch atomically. Returns once the batch is visible to searches and, under
    /// [`Durability::Always`], durable. Invalid input is refused before anything changes.
    pub fn write_opt(&self, mut batch: WriteBatch, wo: WriteOptions) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        prepare(&mut batch.ops, inner.dim, inner.metric, inner.keys)?;
        if inner.keys == crate::KeyKind::U64 {
            let payload = batch::encode(&batch.ops);
            return self
                .append(wo, move |_, _| Ok(Some((batch.ops, payload))))
                .map(|_| ());
        }
        // Keys are bound to ids under the lock: no other write comes between the lookup
        // of a key and the log record that binds it.
        self.append(wo, move |v, next_id| {
            let ops = crate::keys::bind(v, next_id, batch.ops)?;
            if ops.is_empty() {
                return Ok(None);
            }
            let payload = batch::encode(&ops);
            Ok(Some((ops, payload)))
        })
        .map(|_| ())
    }

    /// Logs and applies the operations `make` chooses, under the write lock, from the
    /// current version (so that no other write comes between the choice and the log);
    /// returns how many were written. `make` returns the operations and their encoding,
    /// or `None` for nothing to write; it may take ids for new string keys from the
    /// counter it is given.
    fn append(
        &self,
        wo: WriteOptions,
        make: impl FnOnce(&crate::version::Version, &mut u64) -> Result<Option<(Vec<Op>, Vec<u8>)>>,
    ) -> Result<usize> {
        let _span = tracing::trace_span!("write").entered();
        let start = std::time::Instant::now();
        let inner = &self.inner;
        let (lsn, n, user_bytes, last_seq) = {
            let mut st = inner.write.lock();
            inner.wait_for_room(&mut st)?;
            let version = st.version.clone();
            let Some((ops, payload)) = make(&version, &mut st.next_id)? else {
                return Ok(0);
            };
            let n = ops.len();
            let user_bytes: u64 = ops.iter().map(|op| op.user_bytes()).sum();
            let seq = st.next_seq;
            let lsn = inner
                .wal
                .append(seq, n as u32, BATCH_RECORD, &payload)
                .map_err(|e| inner.wal_failed_locked(e))?;
            st.next_seq += n as u64;
            #[cfg(feature = "remote")]
            crate::remote::push(inner, seq, n as u32, &payload);
            let mut v = (*st.version).clone();
            // The batch is in the log: failing to apply it leaves memory behind the log,
            // so the store stops (a reopen replays it).
            apply(&mut v, seq, ops).inspect_err(|e| inner.poison_locked(e))?;
            inner.publish(&mut st, v);
            inner.maybe_switch(&mut st)?;
            (lsn, n, user_bytes, seq + n as u64 - 1)
        };
        WriteCounters::add(&inner.writes.user_bytes, user_bytes);
        if let Some(t) = inner.indexer.get() {
            t.unpark();
        }
        let sync_now = match wo.durability.unwrap_or(inner.opts.durability) {
            Durability::Always => true,
            // A periodic write on a store without the periodic syncer is synced now
            // rather than never.
            Durability::Periodic(_) => !matches!(inner.opts.durability, Durability::Periodic(_)),
            Durability::Never => false,
            Durability::Bucket => true,
        };
        if sync_now {
            inner.wal.sync_to(lsn).map_err(|e| inner.wal_failed(e))?;
        }
        #[cfg(feature = "remote")]
        if wo.durability.unwrap_or(inner.opts.durability) == Durability::Bucket {
            crate::remote::ship_to(inner, last_seq)?;
        }
        #[cfg(not(feature = "remote"))]
        let _ = last_seq;
        inner.metrics.wrote(start.elapsed(), n);
        Ok(n)
    }

    /// Deletes every live record whose metadata passes `filter`, atomically (one batch,
    /// chosen and logged under the write lock, so no write comes between); returns how
    /// many were deleted. Writers wait while the matching records are found (the
    /// segments' metadata indexes are built before, without the lock).
    pub fn delete_by_filter(&self, filter: &Filter) -> Result<u64> {
        filter.validate()?;
        // Build the segments' metadata indexes outside the write lock, so that writers
        // wait only for the matching itself.
        for s in &self.inner.snapshot().segments {
            s.field_index()?;
        }
        let n = self.append(WriteOptions::default(), |v, _| {
            let mut ids = records::matching_ids(v, Some(filter))?;
            if ids.is_empty() {
                return Ok(None);
            }
            ids.sort_unstable();
            let ops: Vec<Op> = ids.into_iter().map(|id| Op::Delete { id }).collect();
            let bytes: usize = ops.iter().map(Op::encoded_len).sum();
            let max = strata_wal::record::MAX_RECORD_LEN;
            if bytes > max {
                return Err(InvalidArgument::BatchTooLarge { bytes, max }.into());
            }
            let payload = batch::encode(&ops);
            Ok(Some((ops, payload)))
        })?;
        Ok(n as u64)
    }

    /// Live records whose metadata passes `filter` (all live records for `None`).
    pub fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        if let Some(f) = filter {
            f.validate()?;
        }
        records::count(&self.inner.snapshot(), filter)
    }

    /// A page of up to `limit` live records passing `filter` (every record for `None`)
    /// with ids above `after`, in ascending id order, read from one snapshot. Pass the
    /// page's [`ScanPage::next`] as `after` for the next page: records are never
    /// repeated or skipped across pages unless they are written or deleted meanwhile.
    pub fn scan(
        &self,
        filter: Option<&Filter>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<ScanPage> {
        if let Some(f) = filter {
            f.validate()?;
        }
        records::scan(&self.inner.snapshot(), filter, after, limit)
    }

    /// Every metadata path the live records use, with how many records have a value there
    /// and of which kinds. Reads every record's metadata.
    pub fn fields(&self) -> Result<std::collections::BTreeMap<String, crate::FieldSummary>> {
        records::fields(&self.inner.snapshot())
    }

    /// The records of `ids` (`None` for an absent id), in order, from one snapshot.
    pub fn get_many(&self, ids: &[u64]) -> Result<Vec<Option<Record>>> {
        let v = self.inner.snapshot();
        ids.iter().map(|&id| lookup::record(&v, id)).collect()
    }

    /// The record `id`, if it exists.
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        lookup::record(&self.inner.snapshot(), id)
    }

    /// Whether a live record `id` exists (cheaper than [`Db::get`]: reads no vector).
    pub fn contains(&self, id: u64) -> bool {
        lookup::contains(&self.inner.snapshot(), id)
    }

    /// Live records (counted over the memtables, so linear in their rows).
    pub fn len(&self) -> u64 {
        lookup::live_rows(&self.inner.snapshot())
    }

    /// Whether the store holds no live record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`Db::search`] for many queries, run in parallel (on the store's search threads,
    /// else rayon's global pool), each over the same snapshot. Results are in query order;
    /// the first refused query fails the call.
    pub fn search_many(&self, queries: &[&[f32]], opts: &SearchOptions) -> Result<Vec<Vec<Hit>>> {
        use rayon::prelude::*;
        let v = self.inner.snapshot();
        let metric = self.inner.metric;
        let one = |q: &&[f32]| {
            self.measured(SearchKind::Vector, || {
                let q = self.prepare_query(q)?;
                self.inner.calibration.offer(&q);
                let hits = search::search(&v, metric, self.inner.keys, &q, opts, false)?;
                self.sample_recall(&v, q, opts, &hits);
                Ok(hits)
            })
        };
        let run = || queries.par_iter().map(one).collect::<Result<Vec<_>>>();
        match &self.inner.search_pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }

    /// Calibrates every indexed segment on `queries` (at least
    /// [`Db::MIN_CALIBRATION_QUERIES`], like those the store will serve), now, on the
    /// store's search threads: each segment's recall per beam width against exact
    /// answers, which [`SearchOptions::target_recall`] then uses
    /// (`docs/calibration.md`). The newest of them become the store's recent-query
    /// sample, which later segments are calibrated on; the calibration file is written.
    /// Returns the segments' calibrations. Queries are checked as [`Db::search`] checks
    /// them.
    pub fn calibrate(&self, queries: &[&[f32]]) -> Result<Vec<SegmentCalibration>> {
        if queries.len() < Self::MIN_CALIBRATION_QUERIES {
            return Err(InvalidArgument::TooFewCalibrationQueries {
                got: queries.len(),
                min: Self::MIN_CALIBRATION_QUERIES,
            }
            .into());
        }
        let queries = queries
            .iter()
            .map(|q| self.prepare_query(q))
            .collect::<Result<Vec<_>>>()?;
        let run = || calibrate::calibrate_all(&self.inner, &queries, true, false, &|| false);
        match &self.inner.search_pool {
            Some(pool) => pool.install(run),
            None => run(),
        }?;
        {
            // The newest of them replace the sample.
            let mut sample = self.inner.calibration.sample.lock();
            sample.queries.clear();
            for q in &queries {
                sample.push(q.clone());
            }
        }
        calibrate::persist(&self.inner)?;
        Ok(self.calibration())
    }

    /// Calibrates now, on the store's search threads, what the background calibrator
    /// ([`Options::background_calibration`]) would: every indexed segment without a
    /// calibration (on its rows, or on the recent-query sample once it holds
    /// [`Db::MIN_CALIBRATION_QUERIES`]), and those calibrated on rows once the sample
    /// is large enough; then writes the calibration file. Returns how many segments it
    /// calibrated.
    pub fn calibrate_pending(&self) -> Result<usize> {
        let run = || calibrate::calibrate_pass(&self.inner, true, &|| false);
        let n = match &self.inner.search_pool {
            Some(pool) => pool.install(run),
            None => run(),
        }?;
        if n > 0 {
            calibrate::persist(&self.inner)?;
        }
        Ok(n)
    }

    /// The recall of the sampled searches ([`Options::recall_sampling`]) measured so far,
    /// over the newest window of them; `None` when the store does not sample or none
    /// was measured yet. Samples are measured in the background: the newest searches
    /// may not be in it yet.
    pub fn observed_recall(&self) -> Option<crate::ObservedRecall> {
        self.inner.recall.as_ref()?.estimate()
    }

    /// Forgets the measured samples (for example after the query mix or the settings
    /// changed); samples still queued are measured into the new window.
    pub fn reset_observed_recall(&self) {
        if let Some(m) = &self.inner.recall {
            m.reset();
        }
    }

    /// Sampled searches queued or being measured.
    pub fn recall_samples_pending(&self) -> usize {
        self.inner.recall.as_ref().map_or(0, |m| m.pending())
    }

    /// Fewest queries [`Db::calibrate`] takes.
    pub const MIN_CALIBRATION_QUERIES: usize = crate::calibration::MIN_QUERIES;

    /// The calibration of each indexed segment that has one, newest segment first.
    pub fn calibration(&self) -> Vec<SegmentCalibration> {
        crate::calibrate::report(&self.inner.snapshot())
    }

    fn prepare_query(&self, query: &[f32]) -> Result<Vec<f32>> {
        prepare_query(query, self.inner.dim, self.inner.metric)
    }

    /// Opens a read replica of the store kept in the bucket `remote` (a URL, or a
    /// [`RemoteConfig`](crate::RemoteConfig) with options): it follows the bucket's newest
    /// commit, keeps segment fronts in `cache_dir` and reads full vectors by range into
    /// at most `cache_bytes` of memory. See [`crate::Replica`].
    #[cfg(feature = "remote")]
    pub fn open_replica(
        remote: impl Into<crate::RemoteConfig>,
        cache_dir: impl AsRef<Path>,
        cache_bytes: u64,
    ) -> Result<crate::Replica> {
        crate::Replica::open(&remote.into(), cache_dir.as_ref(), cache_bytes)
    }

    /// Opens the store in `dir` for reading only, without the writer's lock: see
    /// [`ReadOnlyDb`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<ReadOnlyDb> {
        ReadOnlyDb::open(dir)
    }

    /// Checks an upsert of `vector` (with `payload`) without writing it: the checks
    /// [`Db::write`] applies to each upsert (dimension, finite components, the norm bound
    /// [`MAX_VECTOR_NORM`](crate::MAX_VECTOR_NORM), payload size, a non-zero vector for cosine). Lets an importer
    /// refuse a whole input before any of it is written.
    pub fn check_upsert(
        &self,
        vector: &[f32],
        payload: Option<&[u8]>,
    ) -> std::result::Result<(), InvalidArgument> {
        let mut v = vector.to_vec();
        check_upsert(&mut v, payload, self.inner.dim, self.inner.metric)
    }

    /// [`Db::check_upsert`] for a record with metadata: also the metadata's size limit.
    pub fn check_record(
        &self,
        vector: &[f32],
        metadata: Option<&crate::Metadata>,
        payload: Option<&[u8]>,
    ) -> std::result::Result<(), InvalidArgument> {
        self.check_upsert(vector, payload)?;
        crate::validate::check_metadata(metadata)
    }

    /// Checks a record's text without writing it (its size limit,
    /// [`MAX_TEXT_LEN`](crate::MAX_TEXT_LEN) bytes).
    pub fn check_text(&self, text: Option<&str>) -> std::result::Result<(), InvalidArgument> {
        crate::validate::check_text(text)
    }

    /// The `opts.k` nearest live records to `query`, nearest first; with
    /// [`SearchOptions::filter`], among the records whose metadata passes it.
    pub fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Hit>> {
        self.measured(SearchKind::Vector, || self.search_unmeasured(query, opts))
    }

    fn search_unmeasured(&self, query: &[f32], opts: &SearchOptions) -> Result<Vec<Hit>> {
        let q = self.prepare_query(query)?;
        self.inner.calibration.offer(&q);
        let v = self.inner.snapshot();
        let hits = self.search_snapshot(&v, &q, opts)?;
        self.sample_recall(&v, q, opts, &hits);
        Ok(hits)
    }

    /// Queues the search for a recall measurement when the store samples searches and
    /// picks this one.
    fn sample_recall(&self, v: &Arc<Version>, query: Vec<f32>, opts: &SearchOptions, hits: &[Hit]) {
        let Some(monitor) = &self.inner.recall else {
            return;
        };
        if !monitor.take() {
            return;
        }
        let sample = crate::observed_recall::Sample {
            version: v.clone(),
            query,
            opts: SearchOptions {
                with_payload: false,
                with_metadata: false,
                with_text: false,
                ..opts.clone()
            },
            hits: hits.iter().map(|h| h.id).collect(),
        };
        if monitor.enqueue(sample) {
            self.inner.calibration.nudge();
        }
    }

    fn search_snapshot(
        &self,
        v: &Arc<Version>,
        q: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        let metric = self.inner.metric;
        // PERF: a small store, or a one-thread budget, is scanned on the caller's thread:
        // handing a sub-millisecond scan to a pool costs a thread hand-off per query. So is
        // any search while a merge leaves fewer than two cores free: waiting for pool
        // threads that share one core with the search (measured on 2 cores, GloVe, 5
        // segments) raised p99 from 0.4 to 4 ms during compactions.
        let rows: usize = v.segments.iter().map(|s| s.reader.rows()).sum();
        let merging = if self.compaction_running() {
            self.inner.opts.compaction.threads
        } else {
            0
        };
        if self.inner.opts.search_threads == Some(1)
            || rows < search::PARALLEL_MIN_ROWS
            || self.inner.cores.saturating_sub(merging) < 2
        {
            return search::search(v, metric, self.inner.keys, q, opts, false);
        }
        let run = || search::search(v, metric, self.inner.keys, q, opts, true);
        match &self.inner.search_pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }

    /// The `opts.k` live records that best match `text` by BM25 (`docs/text-search.md`),
    /// best first, each [`Hit::distance`] the negated score; with
    /// [`SearchOptions::filter`], among the records whose metadata passes it. The text
    /// is analyzed as the records' texts are (the store's [`Analyzer`](crate::Analyzer));
    /// records holding none of its terms are not returned. `ef`, `rerank` and `exact`
    /// do not apply: the result is the exact top `k`.
    pub fn text_search(&self, text: &str, opts: &SearchOptions) -> Result<Vec<Hit>> {
        self.measured(SearchKind::Text, || {
            let v = self.inner.snapshot();
            crate::text_search::hits(&v, self.inner.analyzer, self.inner.keys, text, opts)
        })
    }

    /// Runs a search, reporting its latency (`docs/metrics.md`) when it succeeds.
    fn measured<T>(&self, kind: SearchKind, run: impl FnOnce() -> Result<T>) -> Result<T> {
        let _span = tracing::trace_span!("search").entered();
        let start = std::time::Instant::now();
        let out = run();
        if out.is_ok() {
            self.inner.metrics.searched(kind, start.elapsed());
        }
        out
    }

    /// The best `opts.k` live records by a fusion of a vector search for `query` and a
    /// text search for `text` (`docs/text-search.md`): each side takes
    /// `fusion.candidates` over the same snapshot, with `opts.filter` on both, and their
    /// rankings are fused; each [`Hit::distance`] is the negated fused score.
    pub fn hybrid_search(
        &self,
        query: &[f32],
        text: &str,
        opts: &SearchOptions,
        fusion: &crate::Fusion,
    ) -> Result<Vec<Hit>> {
        self.measured(SearchKind::Hybrid, || {
            let q = self.prepare_query(query)?;
            let store = crate::hybrid::Store {
                metric: self.inner.metric,
                keys: self.inner.keys,
                analyzer: self.inner.analyzer,
            };
            crate::hybrid::hits(&self.inner.snapshot(), store, &q, text, opts, fusion)
        })
    }

    /// How this store turns text into terms ([`Options::analyzer`](crate::Options::analyzer)).
    pub fn analyzer(&self) -> crate::Analyzer {
        self.inner.analyzer
    }

    /// Freezes the memtable and waits until every frozen memtable is in a segment and the
    /// manifest records it. Afterwards the WAL holds nothing the segments lack.
    pub fn flush(&self) -> Result<()> {
        let inner = &self.inner;
        let mut st = inner.write.lock();
        inner.ensure_writable(&st)?;
        let needs = st
            .version
            .active()
            .is_some_and(|m| m.ops() > 0 || m.first_wal_no != inner.wal.file_no());
        if needs {
            inner.switch(&mut st)?;
        }
        while st.version.memtables.len() > 1 {
            inner.ensure_writable(&st)?;
            inner.changed.wait(&mut st);
        }
        inner.ensure_writable(&st)
    }

    /// Flushes, stops background work and releases the lock.
    pub fn close(self) -> Result<()> {
        self.shut_down()
    }

    /// Flushes, syncs the log and stops background work; later writes get
    /// [`Error::Closed`]. The lock goes with the last reference to this handle.
    pub(crate) fn shut_down(&self) -> Result<()> {
        let res = self
            .flush()
            .and_then(|()| self.inner.wal.sync().map_err(|e| self.inner.wal_failed(e)));
        self.stop();
        res
    }

    fn stop(&self) {
        {
            let mut st = self.inner.write.lock();
            st.closed = true;
            self.inner.shutdown.store(true, Ordering::Release);
            self.inner.changed.notify_all();
        }
        self.inner.calibration.notify();
        if let Some(t) = self.inner.indexer.get() {
            t.unpark();
        }
        for h in self.workers.lock().drain(..) {
            let _ = h.join();
        }
    }

    /// Runs compactions until the policy has nothing left to do (with `full`, merges
    /// every segment into one, dropping deleted rows) and returns what each did. Runs
    /// beside the background compactor (one compaction at a time) and beside writes and
    /// searches. `progress(stage, done, total)` returning false stops early.
    pub fn compact(
        &self,
        full: bool,
        progress: &(dyn Fn(Stage, u64, u64) -> bool + Sync),
    ) -> Result<Vec<CompactionReport>> {
        let mut done = Vec::new();
        loop {
            self.inner.ensure_writable(&self.inner.write.lock())?;
            match compaction::compact_once(&self.inner, full, progress)? {
                Some(r) => {
                    let was_full = r.reason == Reason::Full;
                    done.push(r);
                    if was_full {
                        return Ok(done);
                    }
                }
                None => return Ok(done),
            }
        }
    }

    /// Writes a consistent copy of the store, as of now, into `dest` (a new or empty
    /// directory) while the store stays open: segment and deletion files are hard-linked
    /// (copied across file systems), log files copied, the manifest written last. Writers
    /// wait while the files are linked and the log copied. The copy is a closed store
    /// that opens with every write acknowledged before the call.
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<CheckpointReport> {
        checkpoint::checkpoint(&self.inner, dest.as_ref())
    }

    /// How the latest segments written through this handle were built (flushes and
    /// compactions; at most 64, oldest first): segment file number, devices, and the
    /// time of each stage (k-means, encode, neighbour lists, graph, write).
    pub fn build_reports(&self) -> Vec<(u64, BuildReport)> {
        self.inner.builds.all()
    }

    /// The failure that stopped the store (writes then fail with [`Error::Poisoned`],
    /// whose source it is), or else the latest failure of a background compaction (which
    /// left the store as it was and is retried). `None` when nothing failed since open.
    pub fn background_error(&self) -> Option<Arc<Error>> {
        self.inner
            .poison_cause()
            .or_else(|| self.inner.background_error.lock().clone())
    }

    /// Counts and sizes of the store.
    pub fn stats(&self) -> Result<Stats> {
        inventory::collect(&self.inner)
    }

    /// Bytes written since open by kind, write amplification, and writer slowdowns.
    /// Cheap (no file listing), unlike [`Db::stats`].
    pub fn write_stats(&self) -> WriteStats {
        inventory::write_stats(&self.inner)
    }

    /// Whether a compaction is running now.
    pub fn compaction_running(&self) -> bool {
        self.inner.compacting.is_locked()
    }

    /// Whether compaction has work: one is running, or the policy would start one on
    /// the current segments. A store with background compaction settles when this turns
    /// false; without it, [`Db::compact`] does the work.
    pub fn compaction_pending(&self) -> bool {
        if self.compaction_running() {
            return true;
        }
        let v = self.inner.snapshot();
        let segs = compaction::metas(&v.segments);
        strata_compaction::choose(&segs, &self.inner.opts.compaction.policy).is_some()
    }

    /// Fsyncs the WAL has issued since open.
    pub fn wal_fsyncs(&self) -> u64 {
        self.inner.wal.fsync_count()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop();
    }
}
