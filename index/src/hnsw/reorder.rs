//! Locality order: renumbering a graph's nodes so that nodes a search visits together
//! have nearby numbers. Segments store rows in that order, so a query's walk (PQ codes,
//! graph rows) and its rerank candidates (full vectors) fall on fewer pages.

use super::{Graph, GraphView, PackedGraph};

/// A breadth-first order of `g`'s level 0 from its entry point, each node's neighbours
/// in their stored order (nearest first); nodes the walk does not reach follow in their
/// own order. Returns, for each new position, the old node number.
pub fn locality_order(g: &GraphView<'_>) -> Vec<u32> {
    let n = g.node_count();
    let mut order: Vec<u32> = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    let mut buf = Vec::new();
    let mark = |node: u32, seen: &mut [bool], order: &mut Vec<u32>| {
        if let Some(s) = seen.get_mut(node as usize) {
            if !*s {
                *s = true;
                order.push(node);
            }
        }
    };
    if let Some((entry, _)) = g.entry_point() {
        mark(entry, &mut seen, &mut order);
    }
    let mut next = 0;
    let mut unreached = 0u32;
    while order.len() < n {
        if let Some(&node) = order.get(next) {
            next += 1;
            g.neighbors(node, 0, &mut buf);
            for &x in &buf {
                mark(x, &mut seen, &mut order);
            }
        } else {
            // The walk ended: start again from the first node not yet placed.
            while seen.get(unreached as usize) == Some(&true) {
                unreached += 1;
            }
            mark(unreached, &mut seen, &mut order);
        }
    }
    order
}

/// `old_of_new` inverted: for each old node number, its new one.
pub fn invert(old_of_new: &[u32]) -> Vec<u32> {
    let mut new_of_old = vec![0u32; old_of_new.len()];
    for (new, &old) in old_of_new.iter().enumerate() {
        if let Some(slot) = new_of_old.get_mut(old as usize) {
            *slot = new as u32;
        }
    }
    new_of_old
}

impl PackedGraph {
    /// The same graph with node `old_of_new[i]` renumbered `i` (a permutation of the
    /// nodes, e.g. from [`locality_order`]).
    pub fn renumbered(&self, old_of_new: &[u32]) -> PackedGraph {
        let v = self.view();
        let n = self.node_count();
        let new_of_old = invert(old_of_new);
        let renumber = |x: u32| new_of_old.get(x as usize).copied().unwrap_or(x);
        // Levels per node: 1 + the highest upper level listing it.
        let mut levels = vec![1usize; n];
        for level in 1..=v.top_level() {
            for &node in v.level_nodes(level) {
                if let Some(l) = levels.get_mut(node as usize) {
                    *l = level + 1;
                }
            }
        }
        let mut buf = Vec::new();
        let lists: Vec<Vec<Vec<u32>>> = old_of_new
            .iter()
            .map(|&old| {
                let top = levels.get(old as usize).copied().unwrap_or(1);
                (0..top)
                    .map(|level| {
                        v.neighbors(old, level, &mut buf);
                        buf.iter().map(|&x| renumber(x)).collect()
                    })
                    .collect()
            })
            .collect();
        let entry = self.entry().map(|(e, l)| (renumber(e), l));
        PackedGraph::from_lists(&lists, self.m0(), entry)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn renumbering_keeps_every_edge_and_level() {
        // Node 3 is not reachable on level 0 from the entry (2).
        let lists = vec![
            vec![vec![1, 2], vec![2]],
            vec![vec![0]],
            vec![vec![0, 1], vec![0], vec![]],
            vec![vec![1]],
        ];
        let g = PackedGraph::from_lists(&lists, 4, Some((2, 2)));
        let order = locality_order(&g.view());
        assert_eq!(order, vec![2, 0, 1, 3]);
        let r = g.renumbered(&order);
        let new_of_old = invert(&order);
        assert_eq!(r.entry(), Some((new_of_old[2], 2)));
        let (a, b) = (g.view(), r.view());
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for old in 0..4u32 {
            for level in 0..3 {
                a.neighbors(old, level, &mut x);
                b.neighbors(new_of_old[old as usize], level, &mut y);
                let mapped: Vec<u32> = x.iter().map(|&n| new_of_old[n as usize]).collect();
                assert_eq!(mapped, y, "node {old} level {level}");
            }
        }
    }
}
