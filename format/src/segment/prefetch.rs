//! Requesting a search's pages together: when some are not in memory, one read-ahead
//! request (`madvise(WILLNEED)`) per run of missing pages puts every read in flight at
//! once, and the disk serves them in parallel instead of one page fault at a time. Two
//! kinds of reads are requested this way: the rerank candidates' full vectors
//! ([`SegmentReader::prefetch_vectors`]), and, while the walk's front (PQ codes or
//! `int8` rows, level-0 graph) does not stay in memory, the rows of each batch of
//! neighbours the walk is about to score and the graph row of the node it expands next
//! ([`SegmentReader::front_prefetch`]).
//!
//! Asking costs system calls, which a store held in memory should not pay, so
//! [`Prefetch::Auto`] measures: one call in [`PROBE_EVERY`] asks the kernel which of its
//! pages are resident (`mincore`, one call per cluster of nearby pages), and the segment
//! keeps a moving average of the pages found missing per search. Each sample that finds
//! every page in memory doubles the interval to the next, up to [`PROBE_EVERY_MAX`]
//! calls; one that finds a page missing brings it back to [`PROBE_EVERY`]. While that average is
//! at least one page for the vectors (a fault costs far more than the few calls that
//! avoid it) or four for the front (whose requests are one per batch of neighbours),
//! every search asks the same and requests only its missing runs.

use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{SectionKind, SegmentReader};

/// Whether a search requests the pages it reads next (the walk's PQ codes and graph rows,
/// the rerank candidates' vectors) ahead of reading them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prefetch {
    /// Request the missing ones while a sample of the segment's searches finds, on
    /// average, at least one page missing from memory (the default).
    #[default]
    Auto,
    /// Always request every page (one `madvise` per run, no residency check).
    Always,
    /// Never: each page missing from memory is read when the walk or the rerank faults
    /// on it.
    Never,
}

/// While the segment is not prefetching, one [`Prefetch::Auto`] call in this many
/// samples the residency of its pages.
pub const PROBE_EVERY: u32 = 32;

/// The longest interval, in calls, between two residency samples of a segment whose
/// samples keep finding every page in memory (a search from memory then pays for
/// under 1 % of a sample, and a front that starts paging is noticed within this many
/// searches).
pub const PROBE_EVERY_MAX: u32 = 8 * PROBE_EVERY;

/// Batches of neighbours a sampling search's walk looks at (see
/// [`SegmentReader::front_prefetch`]).
const PROBE_BATCHES: u32 = 8;

/// Pages: candidates' runs this close share one residency query.
const CLUSTER_GAP: u64 = 16;

const PAGE: u64 = 4096;

/// Fixed-point unit of the moving average (sixteenths of a page).
const UNIT: u32 = 16;

/// A segment's sampled residency of its vectors or of its front (for [`Prefetch::Auto`]).
#[derive(Debug)]
pub(super) struct Residency {
    calls: AtomicU32,
    /// Calls from one sample to the next while not prefetching (a power of two from
    /// [`PROBE_EVERY`] to [`PROBE_EVERY_MAX`]).
    interval: AtomicU32,
    /// Moving average of the pages missing per search, in sixteenths of a page.
    missing_avg: AtomicU32,
    /// From this average on, every search requests its missing pages (sixteenths).
    threshold: u32,
}

/// Pages missing per search, on average, from which the rerank's vectors are
/// requested: a rerank's residency queries are a few per search.
pub(super) const VECTORS_THRESHOLD: u32 = 1;

/// Pages missing per search, on average, from which the walk's front pages are
/// requested: the walk asks once per batch of neighbours, tens of system calls per
/// search, which costs more than one or two faults would.
pub(super) const FRONT_THRESHOLD: u32 = 4;

impl Residency {
    /// A residency that turns requests on from `threshold` pages missing per search.
    pub(super) fn new(threshold: u32) -> Self {
        Residency {
            calls: AtomicU32::new(0),
            interval: AtomicU32::new(PROBE_EVERY),
            missing_avg: AtomicU32::new(0),
            threshold: threshold * UNIT,
        }
    }

    /// Whether this call (of [`Prefetch::Auto`]) should look at residency: one call per
    /// interval, or every call while pages are being found missing.
    fn probe(&self) -> bool {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        n.is_multiple_of(self.interval.load(Ordering::Relaxed)) || self.prefetching()
    }

    fn prefetching(&self) -> bool {
        self.missing_avg.load(Ordering::Relaxed) >= self.threshold
    }

    /// Folds one search's count of missing pages into the average (weight 1/4; races
    /// between threads lose a sample, which a moving average tolerates).
    fn record(&self, missing: usize) {
        // The intervals are powers of two, so a doubled one still falls on the calls
        // that are multiples of it.
        let interval = match missing {
            0 => (self.interval.load(Ordering::Relaxed) * 2).min(PROBE_EVERY_MAX),
            _ => PROBE_EVERY,
        };
        self.interval.store(interval, Ordering::Relaxed);
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
        if let Some(source) = &self.vector_source {
            // A replica's vectors: the source fetches what it lacks together.
            if mode != Prefetch::Never {
                let section = self.section(SectionKind::Vectors).range.clone();
                let width = self.vector_decoder.row_bytes() as u64;
                let ranges: Vec<Range<u64>> =
                    row_ranges(&section, width, rows.iter().map(|&r| r as u64))
                        .map(|r| r.start - section.start..r.end - section.start)
                        .collect();
                source.prefetch(&ranges);
            }
            return;
        }
        match mode {
            Prefetch::Never => {}
            Prefetch::Always => {
                for run in self.vector_page_runs(rows) {
                    self.bytes.advise(run, false);
                }
            }
            Prefetch::Auto => {
                if self.residency.probe() {
                    let missing = self.request_missing(&self.vector_page_runs(rows));
                    self.residency.record(missing);
                }
            }
        }
    }

    /// One search's requests for its walk's front pages, as `mode` says: whether they
    /// are made is decided here, once per search ([`Prefetch::Auto`] samples as for
    /// vectors, with its own average). Nothing is ever requested for a segment without
    /// an index, or whose front is in process memory ([`Self::load_front`]) unless it
    /// is walked on its `int8` vectors (which stay mapped).
    pub fn front_prefetch(&self, mode: Prefetch) -> FrontPrefetch<'_> {
        let mapped = self.sections.has(SectionKind::IndexMeta)
            && (self.front.is_none() || self.vector_codec() == crate::VectorCodec::Int8);
        let state = match mode {
            _ if !mapped => FrontState::Off,
            Prefetch::Never => FrontState::Off,
            Prefetch::Always => FrontState::Always,
            Prefetch::Auto if self.front_residency.probe() => FrontState::Measured,
            Prefetch::Auto => FrontState::Off,
        };
        // A sampling search (the front was found in memory so far) looks at its first
        // few batches only: a whole walk's worth of residency queries costs more than a
        // search from memory, and a front that pages shows within a few batches.
        let batches = if self.front_residency.prefetching() {
            u32::MAX
        } else {
            PROBE_BATCHES
        };
        FrontPrefetch {
            reader: self,
            state,
            missing: Cell::new(0),
            batches: Cell::new(batches),
        }
    }

    /// Requests the pages of `runs` (sorted, disjoint, page-aligned) that are not in
    /// memory, one residency query per cluster of nearby runs; returns how many there
    /// were. A single missing page is left to the fault that reads it anyway: a request
    /// only pays when it puts two or more reads in flight at once, and under a tight
    /// memory limit a page read ahead but not yet mapped is the first to be reclaimed.
    pub(super) fn request_missing(&self, runs: &[Range<u64>]) -> usize {
        let mut resident = Vec::new();
        let mut stretches: Vec<Range<u64>> = Vec::new();
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
                        stretches.push(at..at + len);
                    }
                    at += len;
                }
            }
        }
        let missing: u64 = stretches.iter().map(|s| (s.end - s.start) / PAGE).sum();
        if missing >= 2 {
            for s in stretches {
                self.bytes.advise(s, false);
            }
        }
        missing as usize
    }

    /// The file byte ranges, page-aligned and merged where pages touch, of the stored
    /// vectors of `rows`, in file order.
    pub(super) fn vector_page_runs(&self, rows: &[usize]) -> Vec<Range<u64>> {
        let width = self.vector_decoder.row_bytes() as u64;
        page_runs(row_ranges(
            &self.section(SectionKind::Vectors).range,
            width,
            rows.iter().map(|&r| r as u64),
        ))
    }
}

/// The file ranges of rows `rows` of `width` bytes in `section` (rows past its end are
/// left out).
fn row_ranges(
    section: &Range<u64>,
    width: u64,
    rows: impl Iterator<Item = u64>,
) -> impl Iterator<Item = Range<u64>> {
    let rows_held = (section.end - section.start)
        .checked_div(width)
        .unwrap_or(0);
    let start = section.start;
    rows.filter(move |&r| r < rows_held)
        .map(move |r| start + r * width..start + (r + 1) * width)
}

/// The pages of `ranges` (file byte ranges, any order), as page-aligned runs merged where
/// pages touch, in file order. Empty ranges are left out.
fn page_runs(ranges: impl Iterator<Item = Range<u64>>) -> Vec<Range<u64>> {
    let mut pages: Vec<(u64, u64)> = ranges
        .filter(|r| r.end > r.start)
        .map(|r| (r.start / PAGE, (r.end - 1) / PAGE))
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrontState {
    /// Nothing requested.
    Off,
    /// Missing pages are looked up, requested and counted into the segment's average.
    Measured,
    /// Every page is requested, without looking.
    Always,
}

/// One search's requests for the front pages its walk reads next (from
/// [`SegmentReader::front_prefetch`]); for [`Prefetch::Auto`] the pages it found
/// missing count into the segment's average when it is dropped.
#[derive(Debug)]
pub struct FrontPrefetch<'a> {
    reader: &'a SegmentReader,
    state: FrontState,
    missing: Cell<usize>,
    /// Batches left to look at ([`FrontState::Measured`]).
    batches: Cell<u32>,
}

impl FrontPrefetch<'_> {
    /// Whether this search requests pages at all (callers skip gathering them if not).
    pub fn active(&self) -> bool {
        match self.state {
            FrontState::Off => false,
            FrontState::Measured => self.batches.get() > 0,
            FrontState::Always => true,
        }
    }

    /// Requests the pages of the rows of `nodes` in `section` (`row_bytes` each: the PQ
    /// codes, or the vectors a walk scores on) and of the level-0 graph byte ranges
    /// `level0` (relative to that section, as `GraphView::level0_spans` gives them)
    /// that are not in memory (the graph's only while it is mapped). A hint: it never
    /// fails and never changes what is read.
    pub fn request(
        &self,
        nodes: &[u32],
        (section, row_bytes): (SectionKind, usize),
        level0: impl Iterator<Item = Range<usize>>,
    ) {
        if !self.active() {
            return;
        }
        self.batches.set(self.batches.get().saturating_sub(1));
        let r = self.reader;
        let codes = row_ranges(
            &r.section(section).range,
            row_bytes as u64,
            nodes.iter().map(|&n| u64::from(n)),
        );
        let graph = r.section(SectionKind::GraphLevel0).range.clone();
        let graph_mapped = r.front.is_none();
        let spans = level0
            .filter(|_| graph_mapped)
            .map(|s| graph.start + s.start as u64..graph.start + s.end as u64)
            .filter(|s| s.end <= graph.end);
        let runs = page_runs(codes.chain(spans));
        match self.state {
            FrontState::Always => runs.into_iter().for_each(|run| r.bytes.advise(run, false)),
            _ => self
                .missing
                .set(self.missing.get() + r.request_missing(&runs)),
        }
    }
}

impl Drop for FrontPrefetch<'_> {
    fn drop(&mut self) {
        if self.state == FrontState::Measured {
            self.reader.front_residency.record(self.missing.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calls among the first `n` that sample, with `missing(call)` pages found by
    /// each sample.
    fn samples(r: &Residency, n: u32, missing: impl Fn(u32) -> usize) -> Vec<u32> {
        (0..n)
            .filter(|&call| {
                let probe = r.probe();
                if probe {
                    r.record(missing(call));
                }
                probe
            })
            .collect()
    }

    #[test]
    fn samples_thin_out_while_nothing_is_missing_and_return_when_something_is() {
        let r = Residency::new(FRONT_THRESHOLD);
        let calm = samples(&r, 4 * PROBE_EVERY_MAX, |_| 0);
        assert_eq!(calm, [0, 64, 128, 256, 512, 768]);
        // One page found missing (below the threshold): sampled every PROBE_EVERY
        // calls again.
        let again = samples(&r, 2 * PROBE_EVERY, |_| 1);
        assert_eq!(again, [0, PROBE_EVERY]);
        assert!(!r.prefetching());
        // Many missing: every call asks.
        let busy = samples(&r, 8 * PROBE_EVERY, |_| 100);
        assert!(r.prefetching());
        assert!(busy.len() as u32 > 6 * PROBE_EVERY, "{}", busy.len());
    }
}
