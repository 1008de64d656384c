//! The beam of a level search: the `cap` nearest candidates found so far, kept sorted
//! nearest first in one small array, each marked once it has been expanded.
//!
//! One sorted array stands in for the textbook pair of heaps (candidates to expand,
//! results to keep): a candidate farther than the `cap`-th result is never expanded, so
//! both heaps only ever need the array's contents. For the widths a search uses (tens
//! to a few hundred) an insertion is a binary search and a short move within one or two
//! cache lines' worth of entries per step, cheaper than two heaps' sift-ups and pops.

use super::Cand;

/// Up to this many candidates, an insertion shifts the farther ones from the end of the
/// beam (cheaper than a binary search and a call to move memory on a short beam: 5 %
/// faster walks at ef 10-16 on SIFT10K); past it, a binary search and one move (the
/// same speed at ef 32-48 on the other sets).
const LINEAR_INSERT: usize = 24;

/// One candidate of the beam.
#[derive(Debug, Clone, Copy)]
struct Slot {
    cand: Cand,
    expanded: bool,
}

/// Up to `cap` candidates, nearest first.
#[derive(Debug)]
pub(crate) struct Beam {
    slots: Vec<Slot>,
    cap: usize,
}

impl Beam {
    /// An empty beam keeping at most `cap` (at least one) candidates.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Beam {
            slots: Vec::with_capacity(cap + 1),
            cap,
        }
    }

    /// Whether a candidate at distance `d` would enter the beam.
    #[inline]
    pub fn admits(&self, d: f32) -> bool {
        self.slots.len() < self.cap || self.slots.last().is_some_and(|w| d < w.cand.0)
    }

    /// Inserts `c` in order (dropping the farthest when full); returns its position, or
    /// `None` when it is not nearer than the farthest of a full beam.
    #[inline]
    pub fn insert(&mut self, c: Cand) -> Option<usize> {
        if self.slots.len() >= self.cap {
            match self.slots.last() {
                Some(w) if c < w.cand => {
                    self.slots.pop();
                }
                _ => return None,
            }
        }
        let slot = Slot {
            cand: c,
            expanded: false,
        };
        if self.slots.len() > LINEAR_INSERT {
            let at = self.slots.partition_point(|s| s.cand < c);
            self.slots.insert(at, slot);
            return Some(at);
        }
        // A short beam: shift the farther candidates back one place, from the end, in
        // one pass that also finds the position.
        self.slots.push(slot);
        let mut at = self.slots.len() - 1;
        while at > 0 {
            match self.slots.get(at - 1).copied() {
                Some(prev) if c < prev.cand => {
                    if let Some(s) = self.slots.get_mut(at) {
                        *s = prev;
                    }
                    at -= 1;
                }
                _ => break,
            }
        }
        if let Some(s) = self.slots.get_mut(at) {
            *s = slot;
        }
        Some(at)
    }

    /// The position of the nearest candidate not yet expanded at or after `from`.
    #[inline]
    pub fn unexpanded_from(&self, from: usize) -> Option<usize> {
        self.slots
            .get(from..)?
            .iter()
            .position(|s| !s.expanded)
            .map(|i| i + from)
    }

    /// Marks the candidate at `at` expanded and returns it.
    #[inline]
    pub fn expand(&mut self, at: usize) -> Option<Cand> {
        let s = self.slots.get_mut(at)?;
        s.expanded = true;
        Some(s.cand)
    }

    /// The node at position `at`, if any.
    #[inline]
    pub fn node_at(&self, at: usize) -> Option<u32> {
        self.slots.get(at).map(|s| s.cand.1)
    }

    /// Candidates in the beam.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The candidates, nearest first.
    pub fn into_sorted_vec(self) -> Vec<Cand> {
        self.slots.into_iter().map(|s| s.cand).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn keeps_the_nearest_in_order_like_a_bounded_heap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for cap in [1usize, 2, 7, 32, 200] {
            let mut beam = Beam::new(cap);
            let mut model: Vec<Cand> = Vec::new();
            for node in 0..1_000u32 {
                // Few distinct distances: ties are ordered by node.
                let c = Cand(rng.random_range(0..50) as f32, node);
                let admitted = beam.admits(c.0);
                let at = beam.insert(c);
                model.push(c);
                model.sort();
                model.truncate(cap);
                let kept = model.contains(&c);
                assert_eq!(at.is_some(), kept, "cap {cap}, {c:?}");
                if admitted {
                    assert!(kept, "admits implies it is kept");
                }
                if let Some(at) = at {
                    assert_eq!(model.get(at), Some(&c));
                }
                assert_eq!(beam.len(), model.len());
            }
            assert_eq!(beam.into_sorted_vec(), model);
        }
    }

    #[test]
    fn expansion_marks_survive_moves() {
        let mut beam = Beam::new(4);
        for (d, n) in [(5.0, 5), (3.0, 3), (9.0, 9)] {
            beam.insert(Cand(d, n));
        }
        let first = beam.unexpanded_from(0).unwrap();
        assert_eq!(beam.expand(first), Some(Cand(3.0, 3)));
        assert_eq!(beam.insert(Cand(1.0, 1)), Some(0));
        // Node 3 moved to position 1 and stays expanded.
        assert_eq!(beam.unexpanded_from(0), Some(0));
        beam.expand(0);
        assert_eq!(beam.unexpanded_from(0), Some(2));
        assert_eq!(beam.node_at(2), Some(5));
        // Full: 9 is dropped for 4.
        assert_eq!(beam.insert(Cand(4.0, 4)), Some(2));
        assert_eq!(beam.len(), 4);
        assert_eq!(beam.insert(Cand(9.5, 10)), None);
        assert_eq!(
            beam.into_sorted_vec(),
            vec![Cand(1.0, 1), Cand(3.0, 3), Cand(4.0, 4), Cand(5.0, 5)]
        );
    }
}
