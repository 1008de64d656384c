//! HNSW construction: [`GrowingGraph`] (nodes appended and linked one at a time, or in
//! parallel) and [`build`] (a whole segment at once, on rayon).
//!
//! Levels are drawn from a seeded generator (`floor(-ln U / ln M)`) in node order, so a
//! build on one thread is deterministic. Each node and level has its own lock, held only
//! to copy or replace one neighbour list, never during a search: writers link new nodes
//! while readers search. Neighbours are chosen with the heuristic of the HNSW paper
//! (algorithm 4): a candidate is kept only if it is nearer to the base than to every
//! neighbour kept so far, which keeps long-range links that plain "M nearest" would drop.

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::{greedy, one_by_one, search_layer, Cand, Graph, PackedGraph, Scratch, Visited};
use crate::distance::Metric;
use crate::sq8::{GridRows, Sq8Query};

/// Construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on upper levels (level 0 allows `2 * m`).
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    /// Seed of the level draw.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            seed: 0x5eed,
        }
    }
}

const MAX_LEVEL: usize = 16;
/// Largest `m` a graph is built with (`2 * m` level-0 slots fit the segment format).
pub const MAX_M: usize = 512;

struct Node {
    /// Level-0 links, inline: every step of every search reads them.
    level0: Mutex<Vec<u32>>,
    /// Links on levels `1..=level`.
    upper: Box<[Mutex<Vec<u32>>]>,
}

/// A graph that grows: nodes are appended ([`GrowingGraph::push`]) and then linked
/// ([`GrowingGraph::link`]), possibly by several threads at once, while others search it.
pub struct GrowingGraph {
    m: usize,
    ef_construction: usize,
    nodes: boxcar::Vec<Node>,
    entry: Mutex<Option<(u32, usize)>>,
    rng: Mutex<rand::rngs::StdRng>,
}

impl std::fmt::Debug for GrowingGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrowingGraph")
            .field("nodes", &self.nodes.count())
            .finish()
    }
}

impl GrowingGraph {
    /// An empty graph.
    /// `m` is clamped to `2..=512` (level 0 then has at most 1,024 slots, the format's
    /// limit) and `ef_construction` to `m..=4096`.
    pub fn new(p: &HnswParams) -> Self {
        let m = p.m.clamp(2, MAX_M);
        GrowingGraph {
            m,
            ef_construction: p.ef_construction.clamp(m, 4096),
            nodes: boxcar::Vec::new(),
            entry: Mutex::new(None),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(p.seed)),
        }
    }

    /// Nodes appended so far (linked or not).
    pub fn len(&self) -> usize {
        self.nodes.count()
    }

    /// True when no node was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a node with a freshly drawn level; returns its number. Appends must come
    /// from one thread at a time for node numbers to match the caller's rows.
    pub fn push(&self) -> u32 {
        let u: f64 = 1.0 - self.rng.lock().random::<f64>();
        let level = ((-u.ln() / (self.m as f64).ln()) as usize).min(MAX_LEVEL);
        let upper = (0..level).map(|_| Mutex::new(Vec::new())).collect();
        self.nodes.push(Node {
            level0: Mutex::new(Vec::new()),
            upper,
        }) as u32
    }

    pub(super) fn level(&self, n: u32) -> usize {
        self.nodes.get(n as usize).map_or(0, |x| x.upper.len())
    }

    /// Links node `i` into the graph; `dist(a, b)` is the distance between two nodes.
    pub fn link(
        &self,
        i: u32,
        dist: &impl Fn(u32, u32) -> f32,
        visited: &mut Visited,
        buf: &mut Vec<u32>,
    ) {
        self.link_prefetching(i, dist, &|_| {}, visited, buf);
    }

    /// [`GrowingGraph::link`], calling `prefetch(n)` for each node whose distance the
    /// insert's searches are about to compute (a hint to start loading its vector).
    pub fn link_prefetching(
        &self,
        i: u32,
        dist: &impl Fn(u32, u32) -> f32,
        prefetch: &impl Fn(u32),
        visited: &mut Visited,
        buf: &mut Vec<u32>,
    ) {
        let from_i = |n: u32| dist(i, n);
        let hint = |nodes: &[u32]| nodes.iter().for_each(|&n| prefetch(n));
        self.link_scored(i, dist, &one_by_one(&from_i, &hint), false, visited, buf);
    }

    /// [`GrowingGraph::link`] with `score(nodes, out)` giving the distances from `i` to
    /// a batch of nodes (as `dist(i, n)` would) at the front of `out`. With `rescore`,
    /// `score` may only approximate `dist`: the neighbour-selection heuristic then scores
    /// each candidate it weighs again with `dist`, so that only which candidates the
    /// searches find, and the order they are weighed in, depend on `score`.
    pub(super) fn link_scored(
        &self,
        i: u32,
        dist: &impl Fn(u32, u32) -> f32,
        score: &impl Fn(&[u32], &mut Vec<f32>),
        rescore: bool,
        visited: &mut Visited,
        buf: &mut Vec<u32>,
    ) {
        let lvl = self.level(i);
        let Some((ep, top)) = self.entry_or_become(i, lvl) else {
            return;
        };
        let from_i = |n: u32| dist(i, n);
        let mut scratch = Scratch {
            nodes: std::mem::take(buf),
            dists: Vec::with_capacity(buf.capacity().max(128)),
        };
        visited.next_round(self.len());
        visited.insert(ep);
        // On the searches' scale (`score`), which may differ from `dist`'s.
        score(&[ep], &mut scratch.dists);
        let mut cur = Cand(scratch.dists.first().copied().unwrap_or(f32::INFINITY), ep);
        for level in (lvl + 1..=top).rev() {
            cur = greedy(self, score, cur, level, visited, &mut scratch);
        }
        let mut entries = vec![cur];
        for level in (0..=lvl.min(top)).rev() {
            let mut found = search_layer(
                self,
                score,
                &entries,
                self.ef_construction,
                level,
                visited,
                &mut scratch,
            );
            // A concurrent insert that reached this node through an upper level may
            // already have linked it on this level, so the search can meet the node.
            found.retain(|c| c.1 != i);
            // Rescored lazily: the heuristic stops once it has `m`, and the candidates
            // after that (most of them) are never scored exactly. They are taken in the
            // searches' order, which is the exact one up to the codes' rounding.
            let chosen = if rescore {
                select(dist, found.iter().map(|c| Cand(from_i(c.1), c.1)), self.m)
            } else {
                select(dist, found.iter().copied(), self.m)
            };
            let max_links = if level == 0 { 2 * self.m } else { self.m };
            // Another thread may already have linked back to this node here (it reached
            // it through an upper level); keep those links rather than overwrite them.
            let earlier = self
                .list(i, level)
                .map(|l| std::mem::replace(&mut *l.lock(), chosen.clone()));
            for x in earlier
                .into_iter()
                .flatten()
                .filter(|x| !chosen.contains(x))
            {
                self.add_link(i, x, level, max_links, dist);
            }
            for &e in &chosen {
                self.add_link(e, i, level, max_links, dist);
            }
            entries = found;
        }
        *buf = scratch.nodes;
        if lvl > top {
            let mut e = self.entry.lock();
            if e.is_none_or(|(_, t)| lvl > t) {
                *e = Some((i, lvl));
            }
        }
    }

    /// The current entry point, or makes `i` the entry point of an empty graph.
    fn entry_or_become(&self, i: u32, lvl: usize) -> Option<(u32, usize)> {
        let mut e = self.entry.lock();
        match *e {
            Some(x) => Some(x),
            None => {
                *e = Some((i, lvl));
                None
            }
        }
    }

    pub(super) fn list(&self, n: u32, level: usize) -> Option<&Mutex<Vec<u32>>> {
        let node = self.nodes.get(n as usize)?;
        match level.checked_sub(1) {
            None => Some(&node.level0),
            Some(up) => node.upper.get(up),
        }
    }

    /// Adds `new` to `e`'s list at `level`, pruning with the heuristic when it overflows.
    pub(super) fn add_link(
        &self,
        e: u32,
        new: u32,
        level: usize,
        max_links: usize,
        dist: &impl Fn(u32, u32) -> f32,
    ) {
        let Some(list) = self.list(e, level) else {
            return;
        };
        let mut l = list.lock();
        if e == new || l.contains(&new) {
            return;
        }
        if l.len() < max_links {
            l.push(new);
            return;
        }
        let mut cands: Vec<Cand> = l
            .iter()
            .chain(std::iter::once(&new))
            .map(|&x| Cand(dist(e, x), x))
            .collect();
        cands.sort_unstable();
        *l = select(dist, cands, max_links);
    }

    /// Links per node on upper levels.
    pub(super) fn m(&self) -> usize {
        self.m
    }

    /// Makes `(node, level)` the entry point.
    pub(super) fn set_entry(&self, entry: Option<(u32, usize)>) {
        *self.entry.lock() = entry;
    }

    /// Packs the graph into the immutable layout.
    pub fn pack(&self) -> PackedGraph {
        let lists: Vec<Vec<Vec<u32>>> = self
            .nodes
            .iter()
            .map(|(_, n)| {
                std::iter::once(&n.level0)
                    .chain(n.upper.iter())
                    .map(|l| l.lock().clone())
                    .collect()
            })
            .collect();
        PackedGraph::from_lists(&lists, 2 * self.m, *self.entry.lock())
    }
}

impl Graph for GrowingGraph {
    fn node_count(&self) -> usize {
        self.nodes.count()
    }

    fn entry_point(&self) -> Option<(u32, usize)> {
        *self.entry.lock()
    }

    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        if let Some(l) = self.list(node, level) {
            out.extend_from_slice(&l.lock());
        }
    }

    fn prefetch_neighbors(&self, node: u32, _level: usize) {
        // The node's lock and list header (the list itself is behind them).
        if let Some(n) = self.nodes.get(node as usize) {
            crate::distance::prefetch(std::slice::from_ref(n));
        }
    }
}

/// How much nearer than the node a chosen neighbour must be to a candidate to prune it
/// (the neighbour-selection heuristic's slack, on the builder's squared-distance
/// scale; 1 is the paper's rule). Above 1 a node keeps some longer links that the strict
/// rule drops (as Vamana's `alpha` does), and a walk needs fewer steps for the same
/// recall: on GloVe-50, SIFT10K and the 384-d manual pages, recall@10 at equal `ef` rose
/// by 0.003 to 0.02 with 1.2, while 1.4 fell below 1.2's on GloVe.
pub(super) const PRUNE_SLACK: f32 = 1.2;

/// The neighbour-selection heuristic over candidates sorted nearest first: a candidate is
/// kept unless a neighbour already chosen is nearer to it, by [`PRUNE_SLACK`], than the
/// node is. Candidates are drawn only until `m` are kept.
pub(super) fn select(
    dist: &impl Fn(u32, u32) -> f32,
    cands: impl IntoIterator<Item = Cand>,
    m: usize,
) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::with_capacity(m);
    if m == 0 {
        return out;
    }
    for c in cands {
        // Ties are kept (as hnswlib does): with strict comparison an exact duplicate,
        // selected first, would reject every other candidate.
        if out.iter().all(|&s| PRUNE_SLACK * dist(c.1, s) >= c.0) {
            out.push(c.1);
            if out.len() >= m {
                break;
            }
        }
    }
    out
}

/// The distance between two stored vectors used to build a graph for `metric`.
///
/// Inner product is not a metric (a vector need not be its own nearest neighbour), so
/// graphs are built in the standard MIPS-to-L2 reduction: each vector gains a coordinate
/// `sqrt(max_norm² - norm²)` that lifts it onto a sphere, and node-to-node distance is L2
/// there. For any query the order of `-q·x` equals the order of L2 to the lifted vectors,
/// so searches keep using `-q·x`.
///
/// With [`NodeDistance::with_grid`], the batches an insert's searches score
/// ([`NodeDistance::from_node`]) are scored on 8-bit grid codes of the rows instead, a
/// quarter of the bytes: approximate distances, for finding the candidates only.
pub struct NodeDistance<'a> {
    vectors: &'a [f32],
    dim: usize,
    metric: Metric,
    extra: Vec<f32>,
    grid: Option<GridRows<'a>>,
}

/// Smallest dimension at which a build's searches score on grid codes
/// ([`NodeDistance::with_grid`]) rather than on the `f32` rows. Measured graph times:
/// 384-d manual pages 15-20 % less, 200k synthetic 128-d rows 10 % less, SIFT10K
/// unchanged; GloVe-50 (rows of one or two cache lines either way) was no faster. Recall
/// at equal `ef` was unchanged on all of them.
pub const GRID_SEARCH_MIN_DIM: usize = 128;

impl<'a> NodeDistance<'a> {
    /// Distances over `vectors` (rows of `dim`, normalised for cosine).
    pub fn new(vectors: &'a [f32], dim: usize, metric: Metric) -> Self {
        let extra = if metric == Metric::InnerProduct {
            mips_lift(vectors, dim)
        } else {
            Vec::new()
        };
        NodeDistance {
            vectors,
            dim,
            metric,
            extra,
            grid: None,
        }
    }

    /// Scores the batches of [`NodeDistance::from_node`] on `grid`, the rows' codes
    /// (`dim` bytes per row); ignored unless it has a code for every dimension of every
    /// row. [`NodeDistance::between`] stays exact.
    pub fn with_grid(mut self, grid: GridRows<'a>) -> Self {
        let rows = self.vectors.len() / self.dim.max(1);
        let whole = grid.lo.len() == self.dim
            && grid.step.len() == self.dim
            && grid.codes.len() == rows * self.dim;
        self.grid = whole.then_some(grid);
        self
    }

    /// Whether [`NodeDistance::from_node`] approximates [`NodeDistance::between`] (on
    /// grid codes) rather than equalling it.
    pub fn approximate(&self) -> bool {
        self.grid.is_some()
    }

    fn vec(&self, n: u32) -> &[f32] {
        let i = n as usize * self.dim;
        self.vectors.get(i..i + self.dim).unwrap_or(&[])
    }

    /// Starts loading node `n`'s vector into the cache (a hint).
    #[inline]
    pub fn prefetch(&self, n: u32) {
        crate::distance::prefetch_all(self.vec(n));
    }

    /// Scores batches of nodes by their distance from node `a` (as [`Self::between`], or
    /// approximately on the grid codes, [`NodeDistance::approximate`]), hinting each
    /// batch's rows first: what a node's insert searches with.
    pub fn from_node(&self, a: u32) -> impl Fn(&[u32], &mut Vec<f32>) + '_ {
        let k = crate::distance::kernels();
        let (metric, va) = (self.metric, self.vec(a));
        let lift = self.extra.get(a as usize).copied().unwrap_or(0.0);
        // Inner product is L2 on the lifted rows: L2 on the grid plus the lift's term.
        let grid_metric = match metric {
            Metric::InnerProduct => Metric::L2,
            m => m,
        };
        let on_grid = self
            .grid
            .map(|g| (g, Sq8Query::new(va, g.lo, g.step, grid_metric)));
        move |nodes, out| {
            if let Some((g, q)) = &on_grid {
                let row = |n: u32| {
                    let i = n as usize * self.dim;
                    g.codes.get(i..i + self.dim).unwrap_or(&[])
                };
                nodes
                    .iter()
                    .for_each(|&n| crate::distance::prefetch_all(row(n)));
                q.distances_to_rows(g.codes, self.dim, nodes, out);
                if metric == Metric::InnerProduct {
                    for (d, &n) in out.iter_mut().zip(nodes) {
                        let e = lift - self.extra.get(n as usize).copied().unwrap_or(0.0);
                        *d += e * e;
                    }
                }
                return;
            }
            nodes.iter().for_each(|&n| self.prefetch(n));
            out.clear();
            let rows = nodes.iter().map(|&n| (n, self.vec(n)));
            match metric {
                Metric::L2 => out.extend(rows.map(|(_, v)| (k.l2)(va, v))),
                Metric::Cosine => out.extend(rows.map(|(_, v)| 1.0 - (k.dot)(va, v))),
                Metric::InnerProduct => out.extend(rows.map(|(n, v)| {
                    let e = lift - self.extra.get(n as usize).copied().unwrap_or(0.0);
                    (k.l2)(va, v) + e * e
                })),
            }
        }
    }

    /// Distance between nodes `a` and `b`.
    pub fn between(&self, a: u32, b: u32) -> f32 {
        match self.metric {
            Metric::InnerProduct => {
                let e = self.extra.get(a as usize).copied().unwrap_or(0.0)
                    - self.extra.get(b as usize).copied().unwrap_or(0.0);
                crate::distance::l2_squared(self.vec(a), self.vec(b)) + e * e
            }
            m => m.distance(self.vec(a), self.vec(b)),
        }
    }
}

/// The extra coordinate of each row in the MIPS-to-L2 reduction (see
/// [`NodeDistance`]): `sqrt(max_norm² - norm²)`.
pub(super) fn mips_lift(vectors: &[f32], dim: usize) -> Vec<f32> {
    let norms: Vec<f32> = vectors
        .chunks_exact(dim.max(1))
        .map(|v| crate::distance::dot(v, v))
        .collect();
    let max = norms.iter().copied().fold(0.0f32, f32::max);
    norms.iter().map(|&n| (max - n).max(0.0).sqrt()).collect()
}

/// Builds the graph of `vectors` (rows of `dim`, already normalised for cosine) on the
/// current rayon pool.
pub fn build(vectors: &[f32], dim: usize, metric: Metric, p: &HnswParams) -> PackedGraph {
    build_with_progress(vectors, dim, metric, p, &|_| true)
        .unwrap_or_else(|| unreachable!("a build that is never stopped finishes"))
}

/// Nodes linked between two calls of a build's progress callback.
pub const PROGRESS_EVERY: usize = 4096;

/// [`build`], calling `progress(linked_so_far)` about every [`PROGRESS_EVERY`] nodes from
/// whichever worker crosses the mark; when it returns false the build stops early and
/// returns `None` (how a compaction is cancelled).
pub fn build_with_progress(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    p: &HnswParams,
    progress: &(dyn Fn(usize) -> bool + Sync),
) -> Option<PackedGraph> {
    build_on_grid(vectors, dim, metric, p, None, progress)
}

/// [`build_with_progress`], with each insert's searches scoring `grid` (the rows' 8-bit
/// codes) when it is given: the neighbours are still chosen on exact distances among the
/// candidates those searches find ([`NodeDistance::with_grid`], and
/// [`GRID_SEARCH_MIN_DIM`] for when that pays).
pub fn build_on_grid(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    p: &HnswParams,
    grid: Option<GridRows<'_>>,
    progress: &(dyn Fn(usize) -> bool + Sync),
) -> Option<PackedGraph> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    let g = GrowingGraph::new(p);
    for _ in 0..n {
        g.push();
    }
    let mut nd = NodeDistance::new(vectors, dim, metric);
    if let Some(grid) = grid {
        nd = nd.with_grid(grid);
    }
    let rescore = nd.approximate();
    let dist = |a: u32, b: u32| nd.between(a, b);
    let prefetch = |n: u32| nd.prefetch(n);
    let (linked, stopped) = (AtomicUsize::new(0), AtomicBool::new(false));
    if n > 0 {
        g.link_prefetching(0, &dist, &prefetch, &mut Visited::new(), &mut Vec::new());
        (1..n as u32).into_par_iter().for_each_init(
            || (Visited::new(), Vec::new()),
            |(visited, buf), i| {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                g.link_scored(i, &dist, &nd.from_node(i), rescore, visited, buf);
                let done = linked.fetch_add(1, Ordering::Relaxed) + 2;
                if done % PROGRESS_EVERY == 0 && !progress(done) {
                    stopped.store(true, Ordering::Relaxed);
                }
            },
        );
    }
    if stopped.load(Ordering::Relaxed) || !progress(n) {
        return None;
    }
    Some(g.pack())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn batches_from_a_node_score_as_the_pairwise_distance() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let dim = 37;
        let mut data: Vec<f32> = (0..50 * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            if metric == Metric::Cosine {
                data.chunks_exact_mut(dim).for_each(|v| {
                    crate::distance::normalize(v);
                });
            }
            let nd = NodeDistance::new(&data, dim, metric);
            assert!(!nd.approximate());
            let nodes: Vec<u32> = (0..50).rev().collect();
            let mut out = vec![1.0; 3];
            for a in [0u32, 7, 49] {
                nd.from_node(a)(&nodes, &mut out);
                assert_eq!(out.len(), nodes.len());
                for (&n, &d) in nodes.iter().zip(&out) {
                    let want = nd.between(a, n);
                    assert!(
                        (d - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{metric:?} {a} {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn batches_on_a_grid_approximate_the_pairwise_distance() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(18);
        let dim = 40;
        let mut data: Vec<f32> = (0..60 * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            if metric == Metric::Cosine {
                data.chunks_exact_mut(dim).for_each(|v| {
                    crate::distance::normalize(v);
                });
            }
            let (lo, step, codes) = crate::sq8::grid_codes(&data, dim);
            let grid = GridRows {
                lo: &lo,
                step: &step,
                codes: &codes,
            };
            // A grid missing a row or a dimension is not used.
            let short = GridRows {
                codes: &codes[dim..],
                ..grid
            };
            assert!(!NodeDistance::new(&data, dim, metric)
                .with_grid(short)
                .approximate());
            let narrow = GridRows {
                lo: &lo[1..],
                ..grid
            };
            assert!(!NodeDistance::new(&data, dim, metric)
                .with_grid(narrow)
                .approximate());
            let nd = NodeDistance::new(&data, dim, metric).with_grid(grid);
            assert!(nd.approximate());
            let nodes: Vec<u32> = (0..60).collect();
            let mut out = Vec::new();
            for a in [0u32, 31, 59] {
                nd.from_node(a)(&nodes, &mut out);
                assert_eq!(out.len(), nodes.len());
                let mut exact_differs = false;
                for (&n, &d) in nodes.iter().zip(&out) {
                    let want = nd.between(a, n);
                    // Each code is within half a step (< 0.004 here) of its value.
                    assert!(
                        (d - want).abs() <= 0.05 * (1.0 + want.abs()),
                        "{metric:?} {a} {n}: {d} vs {want}"
                    );
                    exact_differs |= d != want;
                }
                assert!(
                    exact_differs,
                    "{metric:?}: scored on the codes, not the rows"
                );
            }
        }
    }

    #[test]
    fn the_heuristic_draws_candidates_only_until_it_has_m() {
        // Points on a line: no chosen neighbour prunes a candidate on the other side.
        let xs = [0.0f32, -1.0, 1.0, -2.0, 2.0, -3.0, 3.0, -4.0];
        let dist = |a: u32, b: u32| (xs[a as usize] - xs[b as usize]).powi(2);
        let drawn = std::cell::Cell::new(0);
        let cands = (1..xs.len() as u32).map(|n| {
            drawn.set(drawn.get() + 1);
            Cand(dist(0, n), n)
        });
        assert_eq!(select(&dist, cands, 2), [1, 2]);
        assert_eq!(drawn.get(), 2);
    }
}
