//! Recall measured while serving: a seeded fraction of vector searches is queued with
//! the snapshot it searched and the ids it returned; the background maintenance thread
//! runs each again exactly on that snapshot and keeps the per-query recall@k over a
//! sliding window, overall and per kind of segment (`docs/calibration.md`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::version::Version;

/// How a store samples its searches to measure their recall ([`crate::Options::recall_sampling`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecallSampling {
    /// Share of vector searches re-run exactly, in (0, 1] (for example 0.01).
    pub fraction: f64,
    /// Seed of the choice of searches: the same searches in the same order are sampled
    /// the same way.
    pub seed: u64,
    /// Sampled searches the estimate is over (the newest; at least 1).
    pub window: usize,
    /// When the window's recall is below the searches' target recall (its confidence
    /// interval wholly under it), calibrate every segment again on the recent queries
    /// (at most once per window of samples): searches then widen where they fell short.
    pub adapt: bool,
}

impl RecallSampling {
    /// Samples `fraction` of searches, seed 0, a window of 1,000, no adaptation.
    pub fn new(fraction: f64) -> Self {
        RecallSampling {
            fraction,
            seed: 0,
            window: 1000,
            adapt: false,
        }
    }
}

/// A recall estimate over sampled searches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecallEstimate {
    /// Mean recall@k of the sampled searches.
    pub recall: f64,
    /// Lower end of its 95 % confidence interval (normal approximation).
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Sampled searches measured.
    pub queries: usize,
}

impl RecallEstimate {
    fn of(values: impl Iterator<Item = f64> + Clone) -> Option<RecallEstimate> {
        let n = values.clone().count();
        if n == 0 {
            return None;
        }
        let mean = values.clone().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let half = 1.96 * (var / n as f64).sqrt();
        Some(RecallEstimate {
            recall: mean,
            low: (mean - half).max(0.0),
            high: (mean + half).min(1.0),
            queries: n,
        })
    }
}

/// What [`crate::Db::observed_recall`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRecall {
    /// Over every sampled search of the window.
    pub overall: RecallEstimate,
    /// Per kind of indexed segment (its vector codec: `f32`, `f16`, `int8`): the recall
    /// of each segment's own search against that segment's exact answer, over the
    /// unfiltered sampled searches that reached such a segment.
    pub by_segment_kind: Vec<(String, RecallEstimate)>,
    /// Sampled searches not measured because the queue was full (the maintenance thread
    /// fell behind), since open.
    pub dropped: u64,
    /// Times the segments were calibrated again because the recall fell short.
    pub recalibrations: u64,
}

/// A sampled search waiting to be measured.
pub(crate) struct Sample {
    pub version: Arc<Version>,
    /// The query as searched (normalised).
    pub query: Vec<f32>,
    /// The options searched with (payloads and the like not needed).
    pub opts: crate::SearchOptions,
    /// The ids it returned, best first.
    pub hits: Vec<u64>,
}

/// One measured sample.
pub(crate) struct Measured {
    pub recall: f64,
    /// The target the search asked for (`None` for an explicit width).
    pub target: Option<f64>,
    /// Per indexed segment reached: its kind and its own recall.
    pub segments: Vec<(&'static str, f64)>,
}

/// Samples waiting in the queue at most; more are dropped.
const QUEUE: usize = 256;

/// The sampling state of a store.
pub(crate) struct RecallMonitor {
    pub config: RecallSampling,
    served: AtomicU64,
    /// Lock-free: a search never waits for the idle-priority thread that drains it.
    queue: crossbeam_queue::ArrayQueue<Sample>,
    /// Samples taken from the queue and not yet recorded (0 or 1).
    in_flight: AtomicUsize,
    window: Mutex<Window>,
    dropped: AtomicU64,
    pub recalibrations: AtomicU64,
}

#[derive(Default)]
struct Window {
    samples: VecDeque<Measured>,
    /// Samples measured since the last adaptation.
    since_adapt: usize,
}

/// SplitMix64 of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl RecallMonitor {
    pub fn new(config: RecallSampling) -> Self {
        RecallMonitor {
            config,
            served: AtomicU64::new(0),
            queue: crossbeam_queue::ArrayQueue::new(QUEUE),
            in_flight: AtomicUsize::new(0),
            window: Mutex::new(Window::default()),
            dropped: AtomicU64::new(0),
            recalibrations: AtomicU64::new(0),
        }
    }

    /// Whether the next search is sampled (the n-th search since open is when the
    /// hash of the seed and n falls below the fraction).
    pub fn take(&self) -> bool {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let h = mix(self.config.seed ^ mix(n));
        (h as f64) < self.config.fraction * u64::MAX as f64
    }

    /// The oldest queued sample, now in flight until [`RecallMonitor::done`].
    pub fn pop(&self) -> Option<Sample> {
        // In flight before it leaves the queue: `pending` may count it twice for a
        // moment, never zero times.
        self.in_flight.store(1, Ordering::Release);
        let s = self.queue.pop();
        if s.is_none() {
            self.in_flight.store(0, Ordering::Release);
        }
        s
    }

    /// The sample in flight was recorded (or given up).
    pub fn done(&self) {
        self.in_flight.store(0, Ordering::Release);
    }

    /// Samples queued or being measured.
    pub fn pending(&self) -> usize {
        // The queue first: a sample popped after this read was marked in flight before.
        let queued = self.queue.len();
        queued + self.in_flight.load(Ordering::Acquire)
    }

    /// Queues a sampled search; returns false when the queue was full (the sample is
    /// dropped and counted).
    pub fn enqueue(&self, s: Sample) -> bool {
        if self.queue.push(s).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Adds a measured sample to the window; returns whether the segments should be
    /// calibrated again (adaptation on, a window's worth of samples since the last
    /// time, and the recall's confidence interval wholly below the target).
    pub fn record(&self, m: Measured) -> bool {
        let mut w = self.window.lock();
        if w.samples.len() >= self.config.window.max(1) {
            w.samples.pop_front();
        }
        w.samples.push_back(m);
        w.since_adapt += 1;
        if !self.config.adapt || w.since_adapt < self.config.window.max(1) {
            return false;
        }
        let short = w
            .samples
            .iter()
            .filter_map(|s| s.target.map(|t| s.recall - t));
        let below = RecallEstimate::of(short).is_some_and(|e| e.queries >= 30 && e.high < 0.0);
        if below {
            w.since_adapt = 0;
            w.samples.clear();
        }
        below
    }

    /// Forgets the measured samples (a new regime starts).
    pub fn reset(&self) {
        let mut w = self.window.lock();
        w.samples.clear();
        w.since_adapt = 0;
    }

    /// The estimate over the window, `None` before the first measured sample.
    pub fn estimate(&self) -> Option<ObservedRecall> {
        let w = self.window.lock();
        let overall = RecallEstimate::of(w.samples.iter().map(|s| s.recall))?;
        let mut kinds: Vec<&'static str> = w
            .samples
            .iter()
            .flat_map(|s| s.segments.iter().map(|&(k, _)| k))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        let by_segment_kind = kinds
            .into_iter()
            .filter_map(|kind| {
                let values = w
                    .samples
                    .iter()
                    .flat_map(|s| s.segments.iter())
                    .filter(move |&&(k, _)| k == kind)
                    .map(|&(_, r)| r);
                RecallEstimate::of(values).map(|e| (kind.to_string(), e))
            })
            .collect();
        Some(ObservedRecall {
            overall,
            by_segment_kind,
            dropped: self.dropped.load(Ordering::Relaxed),
            recalibrations: self.recalibrations.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_takes_about_the_fraction_and_repeats_with_the_seed() {
        let run = |seed| {
            let m = RecallMonitor::new(RecallSampling {
                seed,
                ..RecallSampling::new(0.1)
            });
            (0..10_000).map(|_| m.take()).collect::<Vec<bool>>()
        };
        let a = run(7);
        let taken = a.iter().filter(|&&t| t).count();
        assert!((900..1100).contains(&taken), "{taken}");
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let all = RecallMonitor::new(RecallSampling::new(1.0));
        assert!((0..1000).all(|_| all.take()));
    }

    fn measured(recall: f64, target: Option<f64>) -> Measured {
        Measured {
            recall,
            target,
            segments: vec![("f32", recall)],
        }
    }

    #[test]
    fn the_estimate_is_over_the_window_with_an_interval() {
        let m = RecallMonitor::new(RecallSampling {
            window: 4,
            ..RecallSampling::new(1.0)
        });
        assert!(m.estimate().is_none());
        for r in [0.0, 1.0, 0.8, 0.9, 1.0, 0.7] {
            m.record(measured(r, None));
        }
        let e = m.estimate().unwrap();
        // The newest four: 0.8, 0.9, 1.0, 0.7.
        assert_eq!(e.overall.queries, 4);
        assert!((e.overall.recall - 0.85).abs() < 1e-12);
        assert!(e.overall.low < 0.85 && e.overall.high > 0.85);
        assert_eq!(e.by_segment_kind.len(), 1);
        assert_eq!(e.by_segment_kind[0].0, "f32");
        m.reset();
        assert!(m.estimate().is_none());
    }

    #[test]
    fn adaptation_fires_once_per_window_when_recall_is_clearly_short() {
        let m = RecallMonitor::new(RecallSampling {
            window: 50,
            adapt: true,
            ..RecallSampling::new(1.0)
        });
        // At the target: never.
        assert!(
            !(0..100).any(|i| m.record(measured(if i % 2 == 0 { 0.9 } else { 1.0 }, Some(0.95))))
        );
        // Clearly short: fires, then not again before a window's worth of samples.
        let fired: Vec<usize> = (0..120)
            .filter(|_| m.record(measured(0.8, Some(0.95))))
            .collect();
        assert!(!fired.is_empty());
        assert!(fired.windows(2).all(|w| w[1] - w[0] >= 50), "{fired:?}");
        // Without adaptation: never.
        let off = RecallMonitor::new(RecallSampling {
            window: 50,
            ..RecallSampling::new(1.0)
        });
        assert!(!(0..200).any(|_| off.record(measured(0.5, Some(0.95)))));
    }
}
