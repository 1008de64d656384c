//! A reusable visited set: one bit per node (a 389k-node graph's set is 48 KiB and
//! stays in the L1/L2 cache, where `u16` stamps took 778 KB), cleared between rounds by
//! zeroing only the words the round touched.

/// Nodes seen during one search round.
#[derive(Debug, Default, Clone)]
pub struct Visited {
    bits: Vec<u64>,
    /// The first `touched_len` entries: words of `bits` set this round (each once), to
    /// clear at the next. One entry longer than `bits`, so that the entry after the last
    /// one used always exists (see [`Visited::insert`]).
    touched: Vec<u32>,
    touched_len: usize,
    /// Nodes in the current graph (higher ones count as visited).
    len: usize,
}

impl Visited {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prepares for a graph of `n` nodes.
    pub fn reset(&mut self, n: usize) {
        self.len = n;
        let words = n.div_ceil(64);
        if self.bits.len() < words {
            self.bits.resize(words, 0);
            self.touched.resize(words + 1, 0);
        }
    }

    /// Starts a new round: every node is unvisited again.
    pub fn next_round(&mut self, n: usize) {
        for &w in self.touched.get(..self.touched_len).unwrap_or(&[]) {
            if let Some(word) = self.bits.get_mut(w as usize) {
                *word = 0;
            }
        }
        self.touched_len = 0;
        self.reset(n);
    }

    /// Marks `node`; returns true if it was not yet visited this round. Nodes out of
    /// range (of the last [`Visited::reset`]) count as visited (they are never
    /// expanded).
    ///
    /// PERF: without a branch on whether the node was visited (about even odds in a
    /// walk, so a guess is often wrong): the bit is set and the word recorded as
    /// touched unconditionally, the record's length growing only for a word that was
    /// clear.
    #[inline]
    pub fn insert(&mut self, node: u32) -> bool {
        let w = (node / 64) as usize;
        let bit = 1u64 << (node % 64);
        let (Some(word), Some(slot)) =
            (self.bits.get_mut(w), self.touched.get_mut(self.touched_len))
        else {
            return false;
        };
        let old = *word;
        *word = old | bit;
        *slot = w as u32;
        self.touched_len += usize::from(old == 0);
        (old & bit == 0) & ((node as usize) < self.len)
    }

    /// Keeps, at the front of `nodes` and in order, those not yet visited this round,
    /// marking them; returns how many (as [`Visited::insert`] on each in turn decides).
    ///
    /// PERF: the set's fields are held in locals for the loop (a store through `nodes`
    /// would otherwise make the compiler reload them for every node).
    #[inline]
    pub fn keep_unvisited(&mut self, nodes: &mut [u32]) -> usize {
        let (bits, touched) = (&mut self.bits[..], &mut self.touched[..]);
        let (len, mut touched_len, mut kept) = (self.len, self.touched_len, 0);
        for i in 0..nodes.len() {
            let Some(&node) = nodes.get(i) else { break };
            let w = (node / 64) as usize;
            let bit = 1u64 << (node % 64);
            let fresh = match (bits.get_mut(w), touched.get_mut(touched_len)) {
                (Some(word), Some(slot)) => {
                    let old = *word;
                    *word = old | bit;
                    *slot = w as u32;
                    touched_len += usize::from(old == 0);
                    (old & bit == 0) & ((node as usize) < len)
                }
                _ => false,
            };
            if let Some(slot) = nodes.get_mut(kept) {
                *slot = node;
            }
            kept += usize::from(fresh);
        }
        self.touched_len = touched_len;
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_starts_empty_and_matches_a_set() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut v = Visited::new();
        for round in 0..2_000 {
            // Graphs of different sizes, word boundaries included.
            let n = [1usize, 3, 63, 64, 65, 200, 1000][round % 7];
            v.next_round(n);
            let mut model = std::collections::HashSet::new();
            for _ in 0..rng.random_range(0..3 * n) {
                let node = rng.random_range(0..n as u32 + 2);
                let fresh = (node as usize) < n && model.insert(node);
                assert_eq!(v.insert(node), fresh, "round {round}, n {n}, node {node}");
            }
        }
        // A batch kept in place decides as one insert after another would.
        let mut model = Visited::new();
        for round in 0..500 {
            let n = [5usize, 64, 200, 1000][round % 4];
            v.next_round(n);
            model.next_round(n);
            for _ in 0..6 {
                let batch: Vec<u32> = (0..rng.random_range(0..40))
                    .map(|_| rng.random_range(0..n as u32 + 3))
                    .collect();
                let want: Vec<u32> = batch.iter().copied().filter(|&x| model.insert(x)).collect();
                let mut got = batch.clone();
                let kept = v.keep_unvisited(&mut got);
                assert_eq!(&got[..kept], &want[..], "round {round}, batch {batch:?}");
            }
        }
        v.next_round(3);
        assert!(!v.insert(3), "out of range counts as visited");
        assert!(v.insert(2));
    }
}
