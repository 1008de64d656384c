//! The immutable graph layout shared by memory and segment files.
//!
//! * Level 0, in one of two layouts ([`Level0Layout`]). Packed: a fixed-degree
//!   adjacency array of bit-packed ids. Every id takes
//!   [`id_bits`]`(node_count)` bits (the fewest that leave one value above every node id,
//!   which marks an unused slot); a node's `m0` slots are [`level0_stride`] bytes at
//!   `node × stride`, slot `j` at bit `j × bits`, least significant bit first. For 389k
//!   nodes that is 19 bits instead of 32: 40 % less memory for the part of the index
//!   every search hop reads. Rice-coded (`delta.rs`): each node's sorted neighbours
//!   as gaps, behind a table of offsets, about a third smaller again when the rows are
//!   in a locality order.
//! * Upper levels, one flat `u32` array: `level_count`, then per level `count`, the
//!   `count` node ids (ascending), `count + 1` offsets into the level's links, and the
//!   links.
//!
//! [`GraphView::parse`] checks only the sizes (O(levels)); every access is bounds-checked
//! and ignores ids out of range, so a damaged graph gives worse results, never a panic.

#![deny(clippy::indexing_slicing)]

use super::delta::{RiceLevel0, RiceParams};
use super::{Graph, NO_NODE};

/// How a stored graph's level 0 is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level0Layout {
    /// `m0` slots of `bits`-bit ids per node (`ceil(m0 · bits / 8)` bytes).
    Packed {
        /// Bits per id (1..=32).
        bits: u32,
    },
    /// Sorted neighbours as Rice-coded gaps behind a table of offsets (`delta.rs`).
    Rice(RiceParams),
}

impl Level0Layout {
    /// The layout a segment's index parameters name: its Rice parameters when it has
    /// them (`None` when they are out of range), else `bits`-bit packed slots.
    pub fn stored(bits: u32, rice: Option<u32>) -> Option<Self> {
        match rice {
            Some(p) => RiceParams::from_u32(p).map(Level0Layout::Rice),
            None => Some(Level0Layout::Packed { bits }),
        }
    }
}

/// A borrowed level 0 in its layout.
#[derive(Debug, Clone, Copy)]
enum Level0<'a> {
    Packed {
        bits: u32,
        stride: usize,
        bytes: &'a [u8],
    },
    Rice(RiceLevel0<'a>),
}

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
pub struct PackedGraph {
    node_count: usize,
    m0: usize,
    bits: u32,
    level0: Vec<u8>,
    upper: Vec<u32>,
    entry: Option<(u32, usize)>,
}

impl PackedGraph {
    /// Packs per-node, per-level lists (`lists[node][level]`).
    pub fn from_lists(lists: &[Vec<Vec<u32>>], m0: usize, entry: Option<(u32, usize)>) -> Self {
        let n = lists.len();
        let bits = id_bits(n);
        let stride = level0_stride(m0, bits);
        let mut level0 = vec![0u8; n * stride];
        let mut slots = vec![NO_NODE; m0];
        for (l, out) in lists.iter().zip(level0.chunks_exact_mut(stride.max(1))) {
            slots.fill(NO_NODE);
            for (slot, &x) in slots.iter_mut().zip(l.first().into_iter().flatten()) {
                *slot = x;
            }
            pack_ids(&slots, bits, out);
        }
        let top = lists
            .iter()
            .map(|l| l.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        let mut upper = vec![top as u32];
        for level in 1..=top {
            // The nodes on this level, with their links there.
            let (nodes, links): (Vec<u32>, Vec<&[u32]>) = lists
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.get(level).map(|k| (i as u32, k.as_slice())))
                .unzip();
            upper.push(nodes.len() as u32);
            upper.extend_from_slice(&nodes);
            let mut off = 0u32;
            upper.push(0);
            for l in &links {
                off += l.len() as u32;
                upper.push(off);
            }
            for l in &links {
                upper.extend_from_slice(l);
            }
        }
        PackedGraph {
            node_count: n,
            m0,
            bits,
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
            Level0Layout::Packed { bits: self.bits },
            self.entry,
            &self.level0,
            &self.upper,
        )
        .unwrap_or_else(|_| GraphView::empty())
    }

    /// Level-0 adjacency, bit-packed (`node_count × level0_stride(m0, id_bits)` bytes).
    pub fn level0(&self) -> &[u8] {
        &self.level0
    }

    /// Bits per id on level 0.
    pub fn id_bits(&self) -> u32 {
        self.bits
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

/// A borrowed graph: over a [`PackedGraph`] or over a segment's mapped sections.
#[derive(Debug, Clone)]
pub struct GraphView<'a> {
    node_count: usize,
    m0: usize,
    level0: Level0<'a>,
    upper: Vec<Level<'a>>,
    entry: Option<(u32, usize)>,
}

impl<'a> GraphView<'a> {
    fn empty() -> Self {
        GraphView {
            node_count: 0,
            m0: 0,
            level0: Level0::Packed {
                bits: 1,
                stride: 0,
                bytes: &[],
            },
            upper: Vec::new(),
            entry: None,
        }
    }

    /// Splits stored arrays into a view, checking sizes only.
    pub fn parse(
        node_count: usize,
        m0: usize,
        layout: Level0Layout,
        entry: Option<(u32, usize)>,
        level0: &'a [u8],
        upper: &'a [u32],
    ) -> Result<Self, GraphError> {
        if m0 > MAX_M0 || (m0 == 0 && node_count > 0) {
            return Err(GraphError("level-0 degree"));
        }
        let level0 = match layout {
            Level0Layout::Packed { bits } => {
                if !(1..=32).contains(&bits) {
                    return Err(GraphError("level-0 id width"));
                }
                let stride = level0_stride(m0, bits);
                if node_count.checked_mul(stride) != Some(level0.len()) {
                    return Err(GraphError("level-0 adjacency size"));
                }
                Level0::Packed {
                    bits,
                    stride,
                    bytes: level0,
                }
            }
            Level0Layout::Rice(params) => Level0::Rice(
                RiceLevel0::parse(level0, node_count, m0, params)
                    .ok_or(GraphError("level-0 offsets"))?,
            ),
        };
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

impl GraphView<'_> {
    /// The highest level (0 for a graph with only level 0).
    pub fn top_level(&self) -> usize {
        self.upper.len()
    }

    /// The nodes on upper level `level` (1-based), ascending.
    pub fn level_nodes(&self, level: usize) -> &[u32] {
        level
            .checked_sub(1)
            .and_then(|i| self.upper.get(i))
            .map_or(&[], |l| l.nodes)
    }

    /// Slots per node on level 0 (the most neighbours a node has there).
    pub fn m0(&self) -> usize {
        self.m0
    }

    /// The byte ranges of the stored level 0 that reading `node`'s neighbours there
    /// touches (its slots; or its two offsets and its code), so that a caller can check
    /// them first. Empty ranges for a node out of range.
    pub fn level0_spans(&self, node: u32) -> [std::ops::Range<usize>; 2] {
        match self.level0 {
            Level0::Packed { stride, bytes, .. } => {
                let i = (node as usize).saturating_mul(stride);
                let end = i.saturating_add(stride);
                if end > bytes.len() {
                    return [0..0, 0..0];
                }
                [i..end, 0..0]
            }
            Level0::Rice(r) => r.spans(node),
        }
    }

    /// Node `node`'s stored level-0 bytes (slots or code; empty when out of range).
    #[inline]
    fn level0_bytes(&self, node: u32) -> &[u8] {
        match self.level0 {
            Level0::Packed { stride, bytes, .. } => {
                let i = (node as usize).saturating_mul(stride);
                bytes.get(i..i.saturating_add(stride)).unwrap_or(&[])
            }
            Level0::Rice(r) => r.code(node),
        }
    }
}

/// Largest level-0 degree a stored graph may declare.
pub const MAX_M0: usize = 1024;

/// Bits per level-0 id for a graph of `node_count` nodes: the fewest for which the
/// all-ones value (an unused slot) is not a node id.
pub fn id_bits(node_count: usize) -> u32 {
    let n = node_count.min(u32::MAX as usize) as u32;
    (u32::BITS - n.leading_zeros()).max(1)
}

/// Bytes per node on level 0: `m0` ids of `bits` bits, rounded up to a whole byte.
pub fn level0_stride(m0: usize, bits: u32) -> usize {
    (m0 * bits as usize).div_ceil(8)
}

/// Packs `ids` (values above `bits` wide become the unused-slot value) into `out`.
fn pack_ids(ids: &[u32], bits: u32, out: &mut [u8]) {
    let mask = (1u64 << bits) - 1;
    for (j, &x) in ids.iter().enumerate() {
        let v = (x as u64).min(mask);
        let bit = j * bits as usize;
        let mut word = v << (bit % 8);
        for b in out.iter_mut().skip(bit / 8) {
            if word == 0 {
                break;
            }
            *b |= word as u8;
            word >>= 8;
        }
    }
}

/// Rows up to this many bytes are unpacked from a copy on the stack, with no bounds
/// check per id (the default `m0` = 32 ids of up to 32 bits; the copy is zeroed first,
/// so a larger one would cost every row more than it saves).
const STACK_ROW: usize = 128;

/// Calls `f` with each of the `m0` ids packed in `bytes`.
#[inline]
fn unpack_ids(bytes: &[u8], bits: u32, m0: usize, mut f: impl FnMut(u32)) {
    let mask = (1u64 << bits) - 1;
    let bits = bits as usize;
    if bytes.len() <= STACK_ROW {
        // Eight bytes of zeros past the row: every id's 8-byte window is in the copy.
        let mut pad = [0u8; STACK_ROW + 8];
        if let Some(head) = pad.get_mut(..bytes.len()) {
            head.copy_from_slice(bytes);
        }
        let last = (bytes.len() * 8 / bits.max(1)).min(m0);
        for j in 0..last {
            let bit = j * bits;
            // `at` ≤ STACK_ROW − 1 for every id of the row, so the clamp never moves it
            // (it lets the compiler drop the bounds check).
            let at = (bit / 8).min(STACK_ROW);
            let mut w = [0u8; 8];
            if let Some(src) = pad.get(at..at + 8) {
                w.copy_from_slice(src);
            }
            f(((u64::from_le_bytes(w) >> (bit % 8)) & mask) as u32);
        }
        return;
    }
    for j in 0..m0 {
        let bit = j * bits;
        let at = bit / 8;
        let word = match bytes.get(at..at + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
            None => {
                let mut w = [0u8; 8];
                let tail = bytes.get(at..).unwrap_or(&[]);
                w.iter_mut().zip(tail).for_each(|(d, &s)| *d = s);
                u64::from_le_bytes(w)
            }
        };
        f(((word >> (bit % 8)) & mask) as u32);
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
            crate::distance::prefetch(self.level0_bytes(node));
        }
    }

    fn prefetch_lookup(&self, node: u32, level: usize) {
        if level == 0 {
            match self.level0 {
                Level0::Packed { .. } => crate::distance::prefetch(self.level0_bytes(node)),
                Level0::Rice(r) => r.prefetch_offsets(node),
            }
        }
    }

    #[inline]
    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        let n = self.node_count as u32;
        if level == 0 {
            match self.level0 {
                Level0::Packed { bits, .. } => {
                    let bytes = self.level0_bytes(node);
                    if !bytes.is_empty() {
                        // Every id is written at the end of those kept, which grows only
                        // for an id in range (unused slots hold a value past the last).
                        out.resize(self.m0, 0);
                        let mut kept = 0;
                        // A local slice: its pointer stays in a register for the loop.
                        let dst = out.as_mut_slice();
                        unpack_ids(bytes, bits, self.m0, |x| {
                            if let Some(slot) = dst.get_mut(kept) {
                                *slot = x;
                            }
                            kept += usize::from(x < n);
                        });
                        out.truncate(kept);
                    }
                }
                Level0::Rice(r) => r.neighbors(node, self.node_count, out),
            }
            return;
        }
        let slice: &[u32] = {
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

    fn packed(bits: u32) -> Level0Layout {
        Level0Layout::Packed { bits }
    }

    #[test]
    fn packs_and_reads_back_every_level() {
        let lists = vec![
            vec![vec![1, 2], vec![2]],
            vec![vec![0]],
            vec![vec![0, 1], vec![0], vec![]],
        ];
        let g = PackedGraph::from_lists(&lists, 4, Some((2, 2)));
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
        let again = GraphView::parse(
            3,
            4,
            packed(g.id_bits()),
            Some((2, 2)),
            g.level0(),
            g.upper(),
        )
        .unwrap();
        again.neighbors(2, 0, &mut out);
        assert_eq!(out, vec![0, 1]);
    }

    #[test]
    fn damaged_arrays_are_refused_or_read_safely() {
        let lists = vec![vec![vec![1], vec![1]], vec![vec![0], vec![0]]];
        let g = PackedGraph::from_lists(&lists, 2, Some((0, 1)));
        let b = packed(g.id_bits());
        assert!(GraphView::parse(3, 2, b, Some((0, 1)), g.level0(), g.upper()).is_err());
        assert!(GraphView::parse(2, 2, b, Some((5, 1)), g.level0(), g.upper()).is_err());
        assert!(GraphView::parse(2, 2, b, Some((0, 1)), g.level0(), &g.upper()[..3]).is_err());
        assert!(GraphView::parse(2, 2, packed(0), Some((0, 1)), g.level0(), g.upper()).is_err());
        assert!(GraphView::parse(2, 2, packed(33), Some((0, 1)), g.level0(), g.upper()).is_err());
        // Node 0's first slot becomes 2 (= node_count, out of range).
        let mut bad = g.level0().to_vec();
        bad[0] = (bad[0] & !0b11) | 0b10;
        let v = GraphView::parse(2, 2, b, Some((0, 1)), &bad, g.upper()).unwrap();
        let mut out = Vec::new();
        v.neighbors(0, 0, &mut out);
        assert!(out.is_empty(), "ids out of range are ignored");
        v.neighbors(77, 0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn plain_u32_slots_read_as_32_bit_packing() {
        // Version-1 segments stored level 0 as little-endian u32 with u32::MAX unused.
        let slots: Vec<u32> = vec![1, 2, NO_NODE, 0, NO_NODE, NO_NODE];
        let bytes: Vec<u8> = slots.iter().flat_map(|x| x.to_le_bytes()).collect();
        let upper = [0u32];
        let v = GraphView::parse(3, 2, packed(32), Some((0, 0)), &bytes, &upper).unwrap();
        let mut out = Vec::new();
        v.neighbors(0, 0, &mut out);
        assert_eq!(out, vec![1, 2]);
        v.neighbors(1, 0, &mut out);
        assert_eq!(out, vec![0]);
        v.neighbors(2, 0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn id_width_is_the_fewest_bits_that_leave_a_sentinel() {
        assert_eq!(id_bits(0), 1);
        assert_eq!(id_bits(1), 1);
        assert_eq!(id_bits(2), 2);
        assert_eq!(id_bits(3), 2);
        assert_eq!(id_bits(4), 3);
        assert_eq!(id_bits(389_000), 19);
        assert_eq!(id_bits(1 << 20), 21);
        assert_eq!(level0_stride(32, 19), 76);
        assert_eq!(level0_stride(3, 3), 2);
    }

    #[test]
    fn packed_level0_round_trips_at_every_width() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for n in [1usize, 2, 3, 5, 8, 17, 255, 256, 257, 1000, 70_000] {
            let m0 = 1 + (next() % 40) as usize;
            let lists: Vec<Vec<Vec<u32>>> = (0..n.min(300))
                .map(|_| {
                    let deg = (next() % (m0 as u64 + 1)) as usize;
                    vec![(0..deg).map(|_| (next() % n as u64) as u32).collect()]
                })
                .collect();
            // A graph over `n` nodes of which the first 300 have lists.
            let mut all = lists.clone();
            all.resize(n, vec![vec![]]);
            let g = PackedGraph::from_lists(&all, m0, Some((0, 0)));
            assert_eq!(g.id_bits(), id_bits(n));
            assert_eq!(g.level0().len(), n * level0_stride(m0, g.id_bits()));
            let v = g.view();
            let mut out = Vec::new();
            for (i, l) in all.iter().enumerate() {
                v.neighbors(i as u32, 0, &mut out);
                assert_eq!(out, l[0], "n={n} m0={m0} node={i}");
            }
        }
    }
}
