//! What a store reports through the [`metrics`] facade: the application installs a
//! recorder (a Prometheus exporter, a StatsD client, ...) before opening stores, and
//! every store then reports to it, labelled `store` with its directory. Without a
//! recorder each report is a no-op. The names, kinds and meanings are in
//! `docs/metrics.md`.
//!
//! Handles are registered once per store at open, so a report on a hot path is one
//! call on a handle, with no name lookup.

use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Histogram};

use crate::stats::Stats;

/// Which search a latency belongs to.
#[derive(Clone, Copy)]
pub(crate) enum SearchKind {
    Vector,
    Text,
    Hybrid,
}

/// One store's handles.
pub(crate) struct StoreMetrics {
    search_vector: Histogram,
    search_text: Histogram,
    search_hybrid: Histogram,
    write: Histogram,
    written_ops: Counter,
    write_stalls: Counter,
    write_slowdowns: Counter,
    flush: Histogram,
    flushed_rows: Counter,
    compaction: Histogram,
    compacted_bytes: Counter,
    /// The `store` label, for the gauges set by name.
    store: String,
    /// Held while sizes are collected and set, so that a later state is never
    /// overwritten by an earlier one (flushes, merges and open publish concurrently).
    pub(crate) publishing: parking_lot::Mutex<()>,
}

impl StoreMetrics {
    /// Registers the handles of the store in `dir` with the installed recorder.
    pub(crate) fn new(dir: &std::path::Path) -> StoreMetrics {
        let store = dir.display().to_string();
        let search = |kind: &'static str| histogram!("strata_search_seconds", "store" => store.clone(), "kind" => kind);
        StoreMetrics {
            search_vector: search("vector"),
            search_text: search("text"),
            search_hybrid: search("hybrid"),
            write: histogram!("strata_write_seconds", "store" => store.clone()),
            written_ops: counter!("strata_written_ops_total", "store" => store.clone()),
            write_stalls: counter!("strata_write_stalls_total", "store" => store.clone()),
            write_slowdowns: counter!("strata_write_slowdowns_total", "store" => store.clone()),
            flush: histogram!("strata_flush_seconds", "store" => store.clone()),
            flushed_rows: counter!("strata_flushed_rows_total", "store" => store.clone()),
            compaction: histogram!("strata_compaction_seconds", "store" => store.clone()),
            compacted_bytes: counter!("strata_compacted_bytes_total", "store" => store.clone()),
            store,
            publishing: parking_lot::Mutex::new(()),
        }
    }

    /// One search (each query of a batch counts as one).
    pub(crate) fn searched(&self, kind: SearchKind, took: Duration) {
        match kind {
            SearchKind::Vector => &self.search_vector,
            SearchKind::Text => &self.search_text,
            SearchKind::Hybrid => &self.search_hybrid,
        }
        .record(took);
    }

    /// One write batch that logged `ops` operations, from its turn to append (after
    /// validation) to its return (durable when its durability asks).
    pub(crate) fn wrote(&self, took: Duration, ops: usize) {
        self.write.record(took);
        self.written_ops.increment(ops as u64);
    }

    /// A writer waited for a flush (`stalled`) or was slowed down.
    pub(crate) fn writer_waited(&self, stalled: bool) {
        if stalled {
            self.write_stalls.increment(1);
        } else {
            self.write_slowdowns.increment(1);
        }
    }

    /// A memtable of `rows` rows flushed to a segment.
    pub(crate) fn flushed(&self, took: Duration, rows: usize) {
        self.flush.record(took);
        self.flushed_rows.increment(rows as u64);
    }

    /// A merge that wrote `bytes`.
    pub(crate) fn compacted(&self, seconds: f64, bytes: u64) {
        self.compaction.record(seconds);
        self.compacted_bytes.increment(bytes);
    }

    /// The store's sizes, after it changed shape (open, flush, merge).
    /// The observed recall: overall and per kind of segment, and the window's size.
    pub(crate) fn observed_recall(&self, o: &crate::ObservedRecall) {
        let set = |kind: &str, e: &crate::RecallEstimate| {
            gauge!("strata_observed_recall", "store" => self.store.clone(), "kind" => kind.to_string())
                .set(e.recall);
        };
        set("overall", &o.overall);
        for (kind, e) in &o.by_segment_kind {
            set(kind, e);
        }
        gauge!("strata_observed_recall_queries", "store" => self.store.clone())
            .set(o.overall.queries as f64);
    }

    pub(crate) fn publish(&self, s: &Stats) {
        for g in s.gauges() {
            match g.label {
                None => gauge!(g.name, "store" => self.store.clone()).set(g.value),
                Some((l, v)) => gauge!(g.name, "store" => self.store.clone(), l => v).set(g.value),
            }
        }
    }
}
