//! The beam of a level search: the `cap` nearest candidates found so far, kept sorted
//! nearest first in one small array, each marked once it has been expanded.
//!
//! One sorted array stands in for the textbook pair of heaps (candidates to expand,
//! results to keep): a candidate farther than the `cap`-th result is never expanded, so
//! both heaps only ever need the array's contents. For the widths a search uses (tens
//! to a few hundred) an insertion is a binary search and a short move within one or two
//! cache lines' worth of entries per step, cheaper than two heaps' sift-ups and pops.
//! The candidates are kept as integer keys (8 bytes, one comparison each) and the
//! expansion marks as a bitmask beside them.

use super::Cand;

/// Up to this many candidates, an insertion shifts the farther ones from the end of the
/// beam (cheaper than a binary search and a call to move memory on a short beam: 5 %
/// faster walks at ef 10-16 on SIFT10K); past it, a binary search and one move.
const LINEAR_INSERT: usize = 24;

/// A candidate as one integer that orders as [`Cand`] does (distance by
/// [`f32::total_cmp`], then node): the distance's bits mapped to an unsigned order in
/// the high half, the node in the low half. One comparison per probe, 8 bytes per slot.
#[inline]
fn key(c: Cand) -> u64 {
    let bits = c.0.to_bits();
    // Negative values reversed below the positive ones (the total order of IEEE 754).
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    };
    (u64::from(ordered) << 32) | u64::from(c.1)
}

/// The candidate a [`key`] stands for.
#[inline]
fn cand(key: u64) -> Cand {
    let ordered = (key >> 32) as u32;
    let bits = if ordered >> 31 == 1 {
        ordered & !(1 << 31)
    } else {
        !ordered
    };
    Cand(f32::from_bits(bits), key as u32)
}

/// Up to `cap` candidates, nearest first.
#[derive(Debug)]
pub(crate) struct Beam {
    /// The candidates' [`key`]s, ascending.
    keys: Vec<u64>,
    /// Bit `i` set: the candidate at position `i` has been expanded (bits at and past
    /// `keys.len()` are clear).
    expanded: Vec<u64>,
    cap: usize,
}

impl Beam {
    /// An empty beam keeping at most `cap` (at least one) candidates.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Beam {
            keys: Vec::with_capacity(cap + 1),
            expanded: vec![0; (cap + 1).div_ceil(64)],
            cap,
        }
    }

    /// Whether a candidate at distance `d` would enter the beam.
    #[inline]
    pub fn admits(&self, d: f32) -> bool {
        self.keys.len() < self.cap || self.keys.last().is_some_and(|&w| d < cand(w).0)
    }

    /// Inserts `c` in order (dropping the farthest when full); returns its position, or
    /// `None` when it is not nearer than the farthest of a full beam.
    #[inline]
    pub fn insert(&mut self, c: Cand) -> Option<usize> {
        let k = key(c);
        if self.keys.len() >= self.cap {
            match self.keys.last() {
                Some(&w) if k < w => {
                    self.keys.pop();
                    self.clear_mark(self.keys.len());
                }
                _ => return None,
            }
        }
        let at = if self.keys.len() > LINEAR_INSERT {
            let at = self.keys.partition_point(|&x| x < k);
            self.keys.insert(at, k);
            at
        } else {
            // A short beam: shift the farther candidates back one place, from the end,
            // in one pass that also finds the position.
            self.keys.push(k);
            let mut at = self.keys.len() - 1;
            while at > 0 {
                match self.keys.get(at - 1).copied() {
                    Some(prev) if k < prev => {
                        if let Some(s) = self.keys.get_mut(at) {
                            *s = prev;
                        }
                        at -= 1;
                    }
                    _ => break,
                }
            }
            if let Some(s) = self.keys.get_mut(at) {
                *s = k;
            }
            at
        };
        self.open_mark(at);
        Some(at)
    }

    /// Moves the marks at and after `at` up one position, leaving `at` clear.
    #[inline]
    fn open_mark(&mut self, at: usize) {
        let (w0, b) = (at / 64, at % 64);
        let last = self.keys.len().saturating_sub(1) / 64;
        let mut w = last;
        while w > w0 {
            let carry = self.expanded.get(w - 1).map_or(0, |x| x >> 63);
            if let Some(x) = self.expanded.get_mut(w) {
                *x = (*x << 1) | carry;
            }
            w -= 1;
        }
        if let Some(x) = self.expanded.get_mut(w0) {
            let low = (1u64 << b) - 1;
            *x = (*x & low) | ((*x & !low) << 1);
        }
    }

    /// Clears the mark at `at`.
    #[inline]
    fn clear_mark(&mut self, at: usize) {
        if let Some(x) = self.expanded.get_mut(at / 64) {
            *x &= !(1u64 << (at % 64));
        }
    }

    /// The position of the nearest candidate not yet expanded at or after `from`.
    #[inline]
    pub fn unexpanded_from(&self, from: usize) -> Option<usize> {
        let len = self.keys.len();
        let mut w = from / 64;
        let mut open = self.expanded.get(w).map(|x| !x & (u64::MAX << (from % 64)));
        while let Some(bits) = open {
            if bits != 0 {
                let at = w * 64 + bits.trailing_zeros() as usize;
                return (at < len).then_some(at);
            }
            w += 1;
            if w * 64 >= len {
                return None;
            }
            open = self.expanded.get(w).map(|x| !x);
        }
        None
    }

    /// Marks the candidate at `at` expanded and returns it.
    #[inline]
    pub fn expand(&mut self, at: usize) -> Option<Cand> {
        let k = *self.keys.get(at)?;
        if let Some(x) = self.expanded.get_mut(at / 64) {
            *x |= 1u64 << (at % 64);
        }
        Some(cand(k))
    }

    /// The node at position `at`, if any.
    #[inline]
    pub fn node_at(&self, at: usize) -> Option<u32> {
        self.keys.get(at).map(|&k| k as u32)
    }

    /// Candidates in the beam.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The candidates as search results, nearest first (the `id` field holds the node).
    pub fn into_neighbors(self) -> Vec<crate::topk::Neighbor> {
        self.keys
            .into_iter()
            .map(|k| {
                let c = cand(k);
                crate::topk::Neighbor {
                    id: u64::from(c.1),
                    distance: c.0,
                }
            })
            .collect()
    }

    /// The candidates, nearest first.
    pub fn into_sorted_vec(self) -> Vec<Cand> {
        self.keys.into_iter().map(cand).collect()
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
    fn keys_order_and_round_trip_as_candidates() {
        let values = [
            f32::NEG_INFINITY,
            -3.5,
            -1e-30,
            -0.0,
            0.0,
            1e-30,
            0.25,
            7.0,
            f32::MAX,
            f32::INFINITY,
        ];
        let cands: Vec<Cand> = values
            .iter()
            .flat_map(|&d| [Cand(d, 0), Cand(d, 7), Cand(d, u32::MAX)])
            .collect();
        for &a in &cands {
            assert_eq!(cand(key(a)).0.to_bits(), a.0.to_bits());
            assert_eq!(cand(key(a)).1, a.1);
            for &b in &cands {
                assert_eq!(key(a).cmp(&key(b)), a.cmp(&b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn marks_follow_their_candidates_across_words() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for cap in [3usize, 63, 64, 65, 130] {
            let mut beam = Beam::new(cap);
            // The model: (candidate, expanded), sorted.
            let mut model: Vec<(Cand, bool)> = Vec::new();
            for node in 0..3_000u32 {
                let c = Cand(rng.random_range(0..400) as f32, node);
                if let Some(at) = beam.insert(c) {
                    model.insert(at, (c, false));
                    model.truncate(cap);
                }
                if rng.random_bool(0.3) {
                    let from = rng.random_range(0..cap + 2);
                    let want = model.iter().skip(from).position(|m| !m.1).map(|i| i + from);
                    assert_eq!(beam.unexpanded_from(from), want, "cap {cap} from {from}");
                    if let Some(at) = want {
                        assert_eq!(beam.expand(at), Some(model[at].0));
                        model[at].1 = true;
                    }
                }
            }
            let got: Vec<Cand> = beam.into_sorted_vec();
            assert_eq!(got, model.iter().map(|m| m.0).collect::<Vec<_>>());
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
