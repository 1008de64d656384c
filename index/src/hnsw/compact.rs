//! The immutable graph layout shared by memory and segment files.
//!
//! * Level 0: a fixed-degree adjacency array, `node_count × m0` `u32`, unused slots
//!   [`NO_NODE`]: a node's neighbours are one slice at a computed offset.
//! * Upper levels, one flat `u32` array: `level_count`, then per level `count`, the
//!   `count` node ids (ascending), `count + 1` offsets into the level's links, and the
//!   links.
//!
//! [`GraphView::parse`] checks only the sizes (O(levels)); every access is bounds-checked
//! and ignores ids out of range, so a damaged graph gives worse results, never a panic.

use super::{Graph, NO_NODE};

/// Why stored graph arrays were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError(pub &'static str);

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid graph: {}", self.0)
    }
}

impl std::error::Error for GraphError {}

/// An owned graph (the output of a build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactGraph {
    node_count: usize,
    m0: usize,
    level0: Vec<u32>,
    upper: Vec<u32>,
    entry: Option<(u32, usize)>,
}

impl CompactGraph {
    /// Packs per-node, per-level lists (`lists[node][level]`).
    pub fn from_lists(lists: &[Vec<Vec<u32>>], m0: usize, entry: Option<(u32, usize)>) -> Self {
        let n = lists.len();
        let mut level0 = vec![NO_NODE; n * m0];
        for (i, l) in lists.iter().enumerate() {
            for (slot, &x) in level0[i * m0..(i + 1) * m0]
                .iter_mut()
                .zip(l.first().into_iter().flatten())
            {
                *slot = x;
            }
        }
        let top = lists
            .iter()
            .map(|l| l.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        let mut upper = vec![top as u32];
        for level in 1..=top {
            let nodes: Vec<u32> = (0..n as u32)
                .filter(|&i| lists[i as usize].len() > level)
                .collect();
            upper.push(nodes.len() as u32);
            upper.extend_from_slice(&nodes);
            let mut off = 0u32;
            upper.push(0);
            for &i in &nodes {
                off += lists[i as usize][level].len() as u32;
                upper.push(off);
            }
            for &i in &nodes {
                upper.extend_from_slice(&lists[i as usize][level]);
            }
        }
        CompactGraph {
            node_count: n,
            m0,
            level0,
            upper,
            entry,
        }
    }

    /// A view for searching.
    pub fn view(&self) -> GraphView<'_> {
        GraphView::parse(
            self.node_count,
            self.m0,
            self.entry,
            &self.level0,
            &self.upper,
        )
        .unwrap_or_else(|_| GraphView::empty())
    }

    /// Level-0 adjacency (`node_count × m0`).
    pub fn level0(&self) -> &[u32] {
        &self.level0
    }

    /// Upper levels, flat.
    pub fn upper(&self) -> &[u32] {
        &self.upper
    }

    /// Slots per node on level 0.
    pub fn m0(&self) -> usize {
        self.m0
    }

    /// Entry node and top level.
    pub fn entry(&self) -> Option<(u32, usize)> {
        self.entry
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.node_count
    }
}

#[derive(Debug, Clone, Copy)]
struct Level<'a> {
    nodes: &'a [u32],
    offsets: &'a [u32],
    links: &'a [u32],
}

/// A borrowed graph: over a [`CompactGraph`] or over a segment's mapped sections.
#[derive(Debug, Clone)]
pub struct GraphView<'a> {
    node_count: usize,
    m0: usize,
    level0: &'a [u32],
    upper: Vec<Level<'a>>,
    entry: Option<(u32, usize)>,
}

impl<'a> GraphView<'a> {
    fn empty() -> Self {
        GraphView {
            node_count: 0,
            m0: 0,
            level0: &[],
            upper: Vec::new(),
            entry: None,
        }
    }

    /// Splits stored arrays into a view, checking sizes only.
    pub fn parse(
        node_count: usize,
        m0: usize,
        entry: Option<(u32, usize)>,
        level0: &'a [u32],
        upper: &'a [u32],
    ) -> Result<Self, GraphError> {
        if node_count.checked_mul(m0) != Some(level0.len()) || (m0 == 0 && node_count > 0) {
            return Err(GraphError("level-0 adjacency size"));
        }
        let (&top, mut rest) = upper
            .split_first()
            .ok_or(GraphError("upper levels missing"))?;
        if top as usize > 64 {
            return Err(GraphError("level count"));
        }
        let mut levels = Vec::with_capacity(top as usize);
        for _ in 0..top {
            let (&count, r) = rest
                .split_first()
                .ok_or(GraphError("upper level truncated"))?;
            let count = count as usize;
            if count > node_count || r.len() < 2 * count + 1 {
                return Err(GraphError("upper level size"));
            }
            let (nodes, r) = r.split_at(count);
            let (offsets, r) = r.split_at(count + 1);
            let total = offsets.last().copied().unwrap_or(0) as usize;
            if total > r.len() {
                return Err(GraphError("upper level links"));
            }
            let (links, r) = r.split_at(total);
            levels.push(Level {
                nodes,
                offsets,
                links,
            });
            rest = r;
        }
        if !rest.is_empty() {
            return Err(GraphError("trailing upper-level data"));
        }
        if let Some((e, l)) = entry {
            if e as usize >= node_count || l > levels.len() {
                return Err(GraphError("entry point"));
            }
        } else if node_count > 0 {
            return Err(GraphError("missing entry point"));
        }
        Ok(GraphView {
            node_count,
            m0,
            level0,
            upper: levels,
            entry,
        })
    }
}

impl Graph for GraphView<'_> {
    fn node_count(&self) -> usize {
        self.node_count
    }

    fn entry_point(&self) -> Option<(u32, usize)> {
        self.entry
    }

    fn prefetch_neighbors(&self, node: u32, level: usize) {
        if level == 0 {
            let i = (node as usize).saturating_mul(self.m0);
            crate::distance::prefetch(self.level0.get(i..i.saturating_add(self.m0)).unwrap_or(&[]));
        }
    }

    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        let n = self.node_count as u32;
        let slice: &[u32] = if level == 0 {
            let i = (node as usize).saturating_mul(self.m0);
            self.level0.get(i..i.saturating_add(self.m0)).unwrap_or(&[])
        } else {
            let Some(l) = self.upper.get(level - 1) else {
                return;
            };
            let Ok(pos) = l.nodes.binary_search(&node) else {
                return;
            };
            let (a, b) = (l.offsets.get(pos).copied(), l.offsets.get(pos + 1).copied());
            match (a, b) {
                (Some(a), Some(b)) if a <= b => l.links.get(a as usize..b as usize).unwrap_or(&[]),
                _ => &[],
            }
        };
        out.extend(slice.iter().copied().filter(|&x| x < n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_reads_back_every_level() {
        let lists = vec![
            vec![vec![1, 2], vec![2]],
            vec![vec![0]],
            vec![vec![0, 1], vec![0], vec![]],
        ];
        let g = CompactGraph::from_lists(&lists, 4, Some((2, 2)));
        let v = g.view();
        let mut out = Vec::new();
        v.neighbors(0, 0, &mut out);
        assert_eq!(out, vec![1, 2]);
        v.neighbors(0, 1, &mut out);
        assert_eq!(out, vec![2]);
        v.neighbors(1, 1, &mut out);
        assert!(out.is_empty());
        v.neighbors(2, 1, &mut out);
        assert_eq!(out, vec![0]);
        assert_eq!(v.entry_point(), Some((2, 2)));
        let again = GraphView::parse(3, 4, Some((2, 2)), g.level0(), g.upper()).unwrap();
        again.neighbors(2, 0, &mut out);
        assert_eq!(out, vec![0, 1]);
    }

    #[test]
    fn damaged_arrays_are_refused_or_read_safely() {
        let lists = vec![vec![vec![1], vec![1]], vec![vec![0], vec![0]]];
        let g = CompactGraph::from_lists(&lists, 2, Some((0, 1)));
        assert!(GraphView::parse(3, 2, Some((0, 1)), g.level0(), g.upper()).is_err());
        assert!(GraphView::parse(2, 2, Some((5, 1)), g.level0(), g.upper()).is_err());
        assert!(GraphView::parse(2, 2, Some((0, 1)), g.level0(), &g.upper()[..3]).is_err());
        let mut bad = g.level0().to_vec();
        bad[0] = 999;
        let v = GraphView::parse(2, 2, Some((0, 1)), &bad, g.upper()).unwrap();
        let mut out = Vec::new();
        v.neighbors(0, 0, &mut out);
        assert!(out.is_empty(), "ids out of range are ignored");
        v.neighbors(77, 0, &mut out);
        assert!(out.is_empty());
    }
}
