//! Bounded top-k selection.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate: id and distance (smaller is nearer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Record id.
    pub id: u64,
    /// Distance to the query.
    pub distance: f32,
}

impl Neighbor {
    /// Total order: by distance (NaN last, via `total_cmp`), ties by the smaller id.
    pub fn cmp_nearest(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.id.cmp(&other.id))
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry(Neighbor);

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.cmp_nearest(&o.0)
    }
}

/// Keeps the `k` nearest candidates pushed so far.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
    worst: f32,
}

impl TopK {
    /// An empty selection of at most `k`.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            worst: f32::INFINITY,
        }
    }

    /// The distance a candidate must beat (or tie) to enter; infinity until full.
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.worst
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, id: u64, distance: f32) {
        if self.k == 0 || distance > self.worst {
            return;
        }
        let n = Neighbor { id, distance };
        if self.heap.len() < self.k {
            self.heap.push(Entry(n));
        } else if let Some(mut top) = self.heap.peek_mut() {
            if n.cmp_nearest(&top.0) == Ordering::Less {
                *top = Entry(n);
            }
        }
        if self.heap.len() == self.k {
            self.worst = self.heap.peek().map_or(f32::INFINITY, |e| e.0.distance);
        }
    }

    /// Merges another selection into this one.
    pub fn merge(&mut self, other: TopK) {
        if self.heap.is_empty() && self.k == other.k {
            // Nothing to compare with: the other list is the result.
            *self = other;
            return;
        }
        for e in other.heap {
            self.push(e.0.id, e.0.distance);
        }
    }

    /// The selection in no particular order.
    pub fn into_unsorted(self) -> impl Iterator<Item = Neighbor> {
        self.heap.into_iter().map(|e| e.0)
    }

    /// The selection, nearest first.
    pub fn into_sorted(self) -> Vec<Neighbor> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| e.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_nearest_with_id_tiebreak() {
        let mut t = TopK::new(3);
        for (id, d) in [
            (5, 3.0),
            (1, 1.0),
            (9, 2.0),
            (2, 2.0),
            (7, 0.5),
            (8, f32::NAN),
        ] {
            t.push(id, d);
        }
        let got: Vec<u64> = t.into_sorted().iter().map(|n| n.id).collect();
        assert_eq!(got, vec![7, 1, 2]);
    }

    #[test]
    fn merging_keeps_the_k_nearest_of_both_into_an_empty_list_too() {
        let fill = |pairs: &[(u64, f32)]| {
            let mut t = TopK::new(3);
            pairs.iter().for_each(|&(id, d)| t.push(id, d));
            t
        };
        let a = [(1, 5.0), (2, 1.0), (3, 4.0), (4, 2.0)];
        let b = [(5, 3.0), (6, 0.5)];
        let ids = |t: TopK| t.into_sorted().iter().map(|n| n.id).collect::<Vec<_>>();
        let mut both = fill(&a);
        both.merge(fill(&b));
        assert_eq!(ids(both), [6, 2, 4]);
        let mut empty = TopK::new(3);
        empty.merge(fill(&a));
        // The merged list keeps its bound: a farther entry is still refused.
        empty.push(9, 4.5);
        assert_eq!(ids(empty), [2, 4, 3]);
        let mut unsorted: Vec<u64> = fill(&a).into_unsorted().map(|n| n.id).collect();
        unsorted.sort();
        assert_eq!(unsorted, [2, 3, 4]);
    }

    #[test]
    fn zero_k_keeps_nothing() {
        let mut t = TopK::new(0);
        t.push(1, 0.0);
        assert!(t.into_sorted().is_empty());
    }
}
