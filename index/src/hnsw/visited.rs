//! A reusable visited set: one bit per node (a 389k-node graph's set is 48 KiB and
//! stays in the L1/L2 cache, where `u16` stamps took 778 KB), cleared between rounds by
//! zeroing only the words the round touched.

/// Nodes seen during one search round.
#[derive(Debug, Default, Clone)]
pub struct Visited {
    bits: Vec<u64>,
    /// Words of `bits` set this round (each once), to clear at the next.
    touched: Vec<u32>,
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
        }
    }

    /// Starts a new round: every node is unvisited again.
    pub fn next_round(&mut self, n: usize) {
        for w in self.touched.drain(..) {
            if let Some(word) = self.bits.get_mut(w as usize) {
                *word = 0;
            }
        }
        self.reset(n);
    }

    /// Marks `node`; returns true if it was not yet visited this round. Nodes out of
    /// range (of the last [`Visited::reset`]) count as visited (they are never
    /// expanded).
    #[inline]
    pub fn insert(&mut self, node: u32) -> bool {
        if node as usize >= self.len {
            return false;
        }
        let w = node / 64;
        let bit = 1u64 << (node % 64);
        match self.bits.get_mut(w as usize) {
            Some(word) if *word & bit == 0 => {
                if *word == 0 {
                    self.touched.push(w);
                }
                *word |= bit;
                true
            }
            _ => false,
        }
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
        v.next_round(3);
        assert!(!v.insert(3), "out of range counts as visited");
        assert!(v.insert(2));
    }
}
