//! Requesting a search's rerank candidates' vector pages together: when some are not in
//! memory, one read-ahead request (`madvise(WILLNEED)`) per run of missing pages puts
//! every read in flight at once, and the disk serves them in parallel instead of one
//! page fault at a time.
//!
//! Asking costs system calls, which a store held in memory should not pay, so
//! [`Prefetch::Auto`] measures: one call in [`PROBE_EVERY`] asks the kernel which of its
//! pages are resident (`mincore`, one call per cluster of nearby pages), and the segment
//! keeps a moving average of the pages found missing per search. While that average is
//! at least one page (a fault costs far more than the few calls that avoid it), every
//! search asks the same and requests only its missing runs.

use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{SectionKind, SegmentReader};

/// Whether a search requests its rerank candidates' vector pages ahead of reading them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prefetch {
    /// Request the missing ones while a sample of the segment's searches finds, on
    /// average, at least one page missing from memory (the default).
    #[default]
    Auto,
    /// Always request every candidate's pages (one `madvise` per run, no residency
    /// check).
    Always,
    /// Never: each page missing from memory is read when the rerank faults on it.
    Never,
}

/// While the segment is not prefetching, one [`Prefetch::Auto`] call in this many
/// samples the residency of its pages.
pub const PROBE_EVERY: u32 = 32;

/// Pages: candidates' runs this close share one residency query.
const CLUSTER_GAP: u64 = 16;

const PAGE: u64 = 4096;

/// Fixed-point unit of the moving average (sixteenths of a page).
const UNIT: u32 = 16;

/// A segment's sampled residency of its vectors (for [`Prefetch::Auto`]).
#[derive(Debug, Default)]
pub(super) struct Residency {
    calls: AtomicU32,
    /// Moving average of the pages missing per search, in sixteenths of a page.
    missing_avg: AtomicU32,
}

impl Residency {
    fn prefetching(&self) -> bool {
        self.missing_avg.load(Ordering::Relaxed) >= UNIT
    }

    /// Folds one search's count of missing pages into the average (weight 1/4; races
    /// between threads lose a sample, which a moving average tolerates).
    fn record(&self, missing: usize) {
        let sample = missing.min(1 << 20) as u32 * UNIT;
        let old = self.missing_avg.load(Ordering::Relaxed);
        self.missing_avg
            .store((old / 4) * 3 + sample / 4, Ordering::Relaxed);
    }
}

impl SegmentReader {
    /// Asks the kernel to start reading the vectors of `rows` (any order; row numbers
    /// past the last are ignored) as `mode` says, before the caller reads them. A
    /// hint: it never fails and never changes what is read.
    pub fn prefetch_vectors(&self, rows: &[usize], mode: Prefetch) {
        match mode {
            Prefetch::Never => {}
            Prefetch::Always => {
                for run in self.vector_page_runs(rows) {
                    self.bytes.advise(run, false);
                }
            }
            Prefetch::Auto => {
                let n = self.residency.calls.fetch_add(1, Ordering::Relaxed);
                if !n.is_multiple_of(PROBE_EVERY) && !self.residency.prefetching() {
                    return;
                }
                let missing = self.request_missing(&self.vector_page_runs(rows));
                self.residency.record(missing);
            }
        }
    }

    /// Requests the pages of `runs` (sorted, disjoint, page-aligned) that are not in
    /// memory, one residency query per cluster of nearby runs; returns how many there
    /// were.
    pub(super) fn request_missing(&self, runs: &[Range<u64>]) -> usize {
        let mut missing = 0;
        let mut resident = Vec::new();
        let mut rest = runs;
        while let Some(first) = rest.first() {
            // The cluster: runs while each starts within CLUSTER_GAP pages of the last.
            let mut end = first.end;
            let len = rest
                .iter()
                .take_while(|r| {
                    let near = r.start <= end + CLUSTER_GAP * PAGE;
                    if near {
                        end = r.end;
                    }
                    near
                })
                .count();
            let (cluster, after) = rest.split_at(len);
            rest = after;
            self.bytes.resident_pages(first.start..end, &mut resident);
            for run in cluster {
                let from = ((run.start - first.start) / PAGE) as usize;
                let to = ((run.end - first.start) / PAGE) as usize;
                // Each stretch of missing pages in this run is one request.
                let mut at = run.start;
                for stretch in resident
                    .get(from..to)
                    .unwrap_or(&[])
                    .chunk_by(|a, b| a == b)
                {
                    let len = stretch.len() as u64 * PAGE;
                    if stretch.first() == Some(&false) {
                        missing += stretch.len();
                        self.bytes.advise(at..at + len, false);
                    }
                    at += len;
                }
            }
        }
        missing
    }

    /// The file byte ranges, page-aligned and merged where pages touch, of the stored
    /// vectors of `rows`, in file order.
    pub(super) fn vector_page_runs(&self, rows: &[usize]) -> Vec<Range<u64>> {
        let section = &self.section(SectionKind::Vectors).range;
        let width = self.vector_decoder.row_bytes() as u64;
        let rows_held = (section.end - section.start)
            .checked_div(width)
            .unwrap_or(0);
        let mut pages: Vec<(u64, u64)> = rows
            .iter()
            .map(|&r| r as u64)
            .filter(|&r| r < rows_held)
            .map(|r| {
                let start = section.start + r * width;
                (start / PAGE, (start + width - 1) / PAGE)
            })
            .collect();
        pages.sort_unstable();
        let mut runs: Vec<Range<u64>> = Vec::with_capacity(pages.len());
        for (first, last) in pages {
            match runs.last_mut() {
                Some(run) if first * PAGE <= run.end => run.end = run.end.max((last + 1) * PAGE),
                _ => runs.push(first * PAGE..(last + 1) * PAGE),
            }
        }
        runs
    }
}
