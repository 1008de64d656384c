//! A reusable visited set: one `u32` stamp per node, cleared in O(1) by moving to the
//! next round.

/// Nodes seen during one search round.
#[derive(Debug, Default, Clone)]
pub struct Visited {
    stamps: Vec<u32>,
    round: u32,
}

impl Visited {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prepares for a graph of `n` nodes.
    pub fn reset(&mut self, n: usize) {
        if self.stamps.len() < n {
            self.stamps.resize(n, 0);
        }
    }

    /// Starts a new round: every node is unvisited again.
    pub fn next_round(&mut self, n: usize) {
        self.reset(n);
        self.round = self.round.wrapping_add(1);
        if self.round == 0 {
            self.stamps.iter_mut().for_each(|s| *s = 0);
            self.round = 1;
        }
    }

    /// Marks `node`; returns true if it was not yet visited this round. Nodes out of
    /// range count as visited (they are never expanded).
    #[inline]
    pub fn insert(&mut self, node: u32) -> bool {
        match self.stamps.get_mut(node as usize) {
            Some(s) if *s != self.round => {
                *s = self.round;
                true
            }
            _ => false,
        }
    }
}
