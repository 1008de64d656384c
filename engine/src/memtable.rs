//! The memtable: an append-only log of rows with per-row sequence numbers.
//!
//! Rows are only appended (by the one writer holding the write lock) and never moved, so
//! readers iterate without a lock. A row is visible to a snapshot at sequence `s` when it
//! was written at or before `s` and not deleted at or before `s`; deleting (or replacing)
//! a row stores the deleting sequence number in the row.
//!
//! A background indexer links rows into an HNSW graph (node = row) as they arrive;
//! searches walk the graph over the linked rows (invisible rows serve as waypoints) and
//! scan the rows not yet linked exactly. Writers never wait for the graph.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use strata_format::field_index::FieldIndexData;
use strata_format::metadata::Metadata;
use strata_index::hnsw::{self, GrowingGraph, HnswParams, Visited};

use crate::field_index::{FieldIndex, RowSet};
use crate::filter::Filter;
use crate::mem_text::MemText;
use crate::text_stats::TextStats;
use strata_index::text::{Analyzer, TermWeight};
use strata_index::{Metric, TopK};

/// One version of a record.
pub(crate) struct MemRow {
    pub id: u64,
    /// The row's string key (string-keyed stores).
    pub key: Option<Arc<str>>,
    pub seq: u64,
    pub vector: Box<[f32]>,
    pub payload: Option<Box<[u8]>>,
    pub metadata: Option<Box<Metadata>>,
    pub text: Option<Box<str>>,
    /// Sequence number of the write that deleted or replaced this row; 0 while live.
    pub deleted_seq: AtomicU64,
    /// The previous row of the same id in this memtable.
    pub prev: Option<usize>,
}

impl MemRow {
    /// Whether a snapshot at `seq` sees this row.
    #[inline]
    pub fn visible_at(&self, seq: u64) -> bool {
        let d = self.deleted_seq.load(Ordering::Acquire);
        self.seq <= seq && (d == 0 || d > seq)
    }

    /// Whether the row is live now.
    pub fn is_live(&self) -> bool {
        self.deleted_seq.load(Ordering::Acquire) == 0
    }
}

/// A row to insert: everything but its id and sequence number.
pub(crate) struct NewRow {
    pub key: Option<Arc<str>>,
    pub vector: Vec<f32>,
    pub payload: Option<Vec<u8>>,
    pub metadata: Option<Metadata>,
    pub text: Option<Box<str>>,
}

/// What freezing recorded: the last sequence number in the memtable and the WAL file
/// that the next memtable writes to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frozen {
    pub last_seq: u64,
    pub next_wal_no: u64,
}

/// A mutable (then frozen) in-memory table.
pub(crate) struct Memtable {
    rows: boxcar::Vec<MemRow>,
    latest: Mutex<HashMap<u64, usize>>,
    /// The ids each string key was bound to in this memtable, oldest first (one unless
    /// the key was deleted and written again).
    keys: Mutex<HashMap<Arc<str>, Vec<u64>>>,
    /// The metadata index of the rows (row = position in `rows`), grown as they arrive.
    fields: RwLock<FieldIndexData>,
    /// The text index of the rows, grown as they arrive.
    text: RwLock<MemText>,
    analyzer: Analyzer,
    bytes: AtomicUsize,
    ops: AtomicU64,
    /// First WAL file holding this memtable's writes.
    pub first_wal_no: u64,
    frozen: OnceLock<Frozen>,
    /// The graph over rows `0..linked`, when enabled.
    graph: Option<GrowingGraph>,
    linked: AtomicUsize,
    metric: Metric,
}

/// Below this many linked rows a memtable is scanned exactly (faster at that size).
const GRAPH_MIN_ROWS: usize = 2048;

impl Memtable {
    /// An empty memtable; with `graph`, its rows are indexed in the background.
    pub fn new(
        first_wal_no: u64,
        metric: Metric,
        graph: Option<&HnswParams>,
        unindexed: &[String],
        analyzer: Analyzer,
    ) -> Self {
        Memtable {
            rows: boxcar::Vec::new(),
            latest: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            fields: RwLock::new(FieldIndexData::new(unindexed)),
            text: RwLock::new(MemText::default()),
            analyzer,
            bytes: AtomicUsize::new(0),
            ops: AtomicU64::new(0),
            first_wal_no,
            frozen: OnceLock::new(),
            graph: graph.map(GrowingGraph::new),
            linked: AtomicUsize::new(0),
            metric,
        }
    }

    /// `f(vector of a, vector of b)`; infinitely far when a row is missing (graph nodes
    /// are rows below `linked`, so it never is), never a fake nearest neighbour.
    fn between(&self, a: u32, b: u32, f: impl Fn(&[f32], &[f32]) -> f32) -> f32 {
        match (self.rows.get(a as usize), self.rows.get(b as usize)) {
            (Some(a), Some(b)) => f(&a.vector, &b.vector),
            _ => f32::INFINITY,
        }
    }

    /// Links the next unlinked row into the graph; false when there is none (or no
    /// graph). Called by one indexer thread at a time.
    pub fn index_next(&self, visited: &mut Visited, buf: &mut Vec<u32>) -> bool {
        let Some(g) = &self.graph else { return false };
        let next = g.len();
        if next >= self.rows.count() || self.frozen.get().is_some() {
            return false;
        }
        let node = g.push();
        // Inner product is not a metric; without the global norm bound the flush-time
        // lift needs, the memtable links by L2 between the raw vectors, which keeps the
        // graph navigable (searches still rank by `-q·x`).
        let dist = |a: u32, b: u32| match self.metric {
            Metric::InnerProduct => self.between(a, b, strata_index::distance::l2_squared),
            m => self.between(a, b, |x, y| m.distance(x, y)),
        };
        g.link(node, &dist, visited, buf);
        self.linked.store(next + 1, Ordering::Release);
        true
    }

    /// Approximate heap bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Operations applied to this memtable's WAL range (upserts and deletes anywhere).
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    pub fn count_op(&self) {
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    pub fn freeze(&self, f: Frozen) {
        let _ = self.frozen.set(f);
    }

    pub fn frozen(&self) -> Option<Frozen> {
        self.frozen.get().copied()
    }

    /// Appends a row (writer only, under the write lock).
    pub fn insert(&self, id: u64, seq: u64, new: NewRow) {
        let NewRow {
            key,
            vector,
            payload,
            metadata,
            text,
        } = new;
        // Metadata is counted at its encoded size, text at three times its length (its
        // postings); memory is within a small factor.
        let size = vector.len() * 4
            + payload.as_ref().map_or(0, |p| p.len())
            + metadata.as_ref().map_or(0, |m| 2 * m.encoded_len())
            + text.as_ref().map_or(0, |t| 3 * t.len())
            + key.as_ref().map_or(0, |k| k.len() + 48)
            + 96;
        // Analyzed before any lock is taken: readers of `latest` never wait for it.
        let terms = text.as_deref().map(|t| self.analyzer.terms(t));
        if let Some(k) = &key {
            let mut keys = self.keys.lock();
            let ids = keys.entry(k.clone()).or_default();
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
        let mut latest = self.latest.lock();
        let prev = latest.get(&id).copied();
        let metadata = metadata.map(Box::new);
        // Indexed before the row is pushed at the index's next row number: the writer is
        // the only one pushing, so that number is the row's.
        if let Some(m) = &metadata {
            self.fields.write().add(self.rows.count() as u32, m);
        }
        if let Some(terms) = &terms {
            self.text.write().add(self.rows.count() as u32, seq, terms);
        }
        let row = MemRow {
            id,
            key,
            seq,
            vector: vector.into_boxed_slice(),
            payload: payload.map(Vec::into_boxed_slice),
            metadata,
            text,
            deleted_seq: AtomicU64::new(0),
            prev,
        };
        let idx = self.rows.push(row);
        latest.insert(id, idx);
        self.bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// The ids `key` was bound to in this memtable, newest first (live or not).
    pub fn key_ids(&self, key: &str) -> Vec<u64> {
        let keys = self.keys.lock();
        keys.get(key)
            .map(|ids| ids.iter().rev().copied().collect())
            .unwrap_or_default()
    }

    /// Deletes (or marks replaced) the newest row of `id` at `seq` if it is live; false
    /// when this memtable has no row of `id` (writer only, under the write lock).
    pub fn delete_newest(&self, id: u64, seq: u64) -> bool {
        let Some(idx) = self.latest.lock().get(&id).copied() else {
            return false;
        };
        if let Some(row) = self.rows.get(idx).filter(|r| r.is_live()) {
            if row.text.is_some() {
                self.text.write().remove(idx as u32, seq);
            }
            row.deleted_seq.store(seq, Ordering::Release);
        }
        true
    }

    /// The row of `id` a snapshot at `seq` sees: `Some(Some(row))` visible, `Some(None)`
    /// deleted as of `seq`, `None` when this memtable says nothing about `id` at `seq`.
    pub fn lookup_at(&self, id: u64, seq: u64) -> Option<Option<&MemRow>> {
        let mut idx = self.latest.lock().get(&id).copied();
        while let Some(i) = idx {
            let row = self.rows.get(i)?;
            if row.seq <= seq {
                return Some(row.visible_at(seq).then_some(row));
            }
            idx = row.prev;
        }
        None
    }

    /// Every row (for flush and stats).
    pub fn rows(&self) -> impl Iterator<Item = &MemRow> {
        self.rows.iter().map(|(_, r)| r)
    }

    /// Rows linked into the graph so far.
    pub fn linked_rows(&self) -> usize {
        self.linked.load(Ordering::Acquire)
    }

    /// Rows visible at `seq`.
    pub fn visible_rows(&self, seq: u64) -> usize {
        self.rows().filter(|r| r.visible_at(seq)).count()
    }

    /// The rows visible at `seq` nearest to `query` into `top`: by the graph over the
    /// linked rows (beam `ef`) plus an exact scan of the rest; exactly throughout when the
    /// graph is small, `exact` is asked for, or the graph yields too few visible rows.
    pub fn search(
        &self,
        query: &[f32],
        seq: u64,
        k: usize,
        ef: usize,
        exact: bool,
        top: &mut TopK,
    ) {
        let linked = self.linked.load(Ordering::Acquire);
        let mut local = TopK::new(k);
        let mut start = 0;
        if let (Some(g), false) = (&self.graph, exact || linked < GRAPH_MIN_ROWS) {
            let dist = |n: u32| {
                self.rows
                    .get(n as usize)
                    .map_or(f32::INFINITY, |r| self.metric.distance(query, &r.vector))
            };
            let found = crate::visited::with_visited(|v| hnsw::search(g, dist, ef.max(k), v));
            let mut visible = 0;
            for n in found.iter().filter(|n| (n.id as usize) < linked) {
                if let Some(row) = self.rows.get(n.id as usize).filter(|r| r.visible_at(seq)) {
                    local.push(row.id, n.distance);
                    visible += 1;
                }
            }
            if visible >= k {
                start = linked;
            } else {
                local = TopK::new(k);
            }
        }
        for (_, row) in self.rows.iter().skip(start) {
            if row.visible_at(seq) {
                let d = self.metric.distance(query, &row.vector);
                if d <= local.threshold() {
                    local.push(row.id, d);
                }
            }
        }
        top.merge(local);
    }

    /// The rows visible at `seq` whose metadata passes `filter`, nearest to `query`,
    /// into `top`: the rows passing are found in the memtable's metadata index (leaves
    /// on unindexed paths by testing each row; a row without metadata is tested as an
    /// empty object), then scored exactly.
    pub fn search_filtered(
        &self,
        query: &[f32],
        seq: u64,
        filter: &Filter,
        top: &mut TopK,
    ) -> crate::error::Result<()> {
        for row in self.visible_passing(seq, Some(filter))? {
            let d = self.metric.distance(query, &row.vector);
            if d <= top.threshold() {
                top.push(row.id, d);
            }
        }
        Ok(())
    }

    /// Adds the text statistics of the rows visible at `seq` to `stats` (rows with
    /// terms, their terms, and per query term the rows holding it).
    pub fn text_stats(&self, seq: u64, terms: &[String], stats: &mut TextStats) {
        let text = self.text.read();
        let visible = |row: u32| {
            self.rows
                .get(row as usize)
                .is_some_and(|r| r.visible_at(seq))
        };
        let (docs, total) = text.visible_totals(seq);
        stats.docs += docs;
        stats.total += total;
        for (df, term) in stats.df.iter_mut().zip(terms) {
            *df += text.postings(term).iter().filter(|p| visible(p.0)).count() as u64;
        }
    }

    /// Scores every row visible at `seq` (and passing `filter`) holding one of the query
    /// `terms` (weighted by `weights`, in query order) into `top`, as its id with the
    /// negated score.
    pub fn text_search(
        &self,
        seq: u64,
        terms: &[String],
        weights: &[TermWeight],
        filter: Option<&Filter>,
        top: &mut TopK,
    ) -> crate::error::Result<()> {
        let text = self.text.read();
        let mut scores: std::collections::BTreeMap<u32, f32> = Default::default();
        for (term, w) in terms.iter().zip(weights) {
            for &(row, tf) in text.postings(term) {
                *scores.entry(row).or_insert(0.0) += w.score(tf, text.length(row));
            }
        }
        // Rows passing the filter, by sequence number (one per row).
        let pass: Option<std::collections::HashSet<u64>> = match filter {
            Some(f) => Some(
                self.visible_passing(seq, Some(f))?
                    .iter()
                    .map(|r| r.seq)
                    .collect(),
            ),
            None => None,
        };
        for (row, score) in scores {
            let Some(r) = self.rows.get(row as usize) else {
                continue;
            };
            if r.visible_at(seq) && pass.as_ref().is_none_or(|p| p.contains(&r.seq)) {
                top.push(r.id, -score);
            }
        }
        Ok(())
    }

    /// The rows visible at `seq` that pass `filter` (every visible row for `None`), in
    /// row order: the passing rows come from the memtable's metadata index (leaves on
    /// unindexed paths by testing each row; a row without metadata is tested as `{}`).
    pub fn visible_passing(
        &self,
        seq: u64,
        filter: Option<&Filter>,
    ) -> crate::error::Result<Vec<&MemRow>> {
        let Some(filter) = filter else {
            return Ok(self.rows().filter(|r| r.visible_at(seq)).collect());
        };
        let n = self.rows.count();
        let empty = Metadata::new();
        let leaf = |leaf: &Filter| {
            let mut set = RowSet::empty(n);
            for (i, row) in self.rows.iter().take_while(|(i, _)| *i < n) {
                if leaf.matches(row.metadata.as_deref().unwrap_or(&empty)) {
                    set.insert(i);
                }
            }
            Ok(set)
        };
        let pass = FieldIndex::eval(&self.fields.read(), &Default::default(), n, filter, &leaf)?;
        Ok(pass
            .iter()
            .filter_map(|r| self.rows.get(r))
            .filter(|row| row.visible_at(seq))
            .collect())
    }
}
