//! HNSW (Malkov & Yashunin): a layered proximity graph searched greedily.
//!
//! * [`Graph`]: what a search needs from a graph; implemented by the compact, immutable
//!   [`GraphView`] (built in memory or mapped from a segment) and by the builder's
//!   lock-per-node graph while it grows, so the search code is written once.
//! * [`search`]: greedy descent through the upper levels, then a beam of width `ef` on
//!   level 0, over any distance function of a node (exact, or PQ asymmetric).
//! * [`build()`] (`build.rs`): parallel construction with the paper's neighbour-selection heuristic.
//! * [`build_from_lists`]: the same graph from precomputed exact neighbour lists (what a
//!   GPU computes), pruned on the CPU with the same heuristic.
#![deny(clippy::indexing_slicing)]

mod beam;
mod build;
mod delta;
mod from_lists;
mod layout;
mod reorder;
mod visited;

pub use build::{
    build, build_on_grid, build_with_progress, GrowingGraph, HnswParams, NodeDistance,
    GRID_SEARCH_MIN_DIM, PROGRESS_EVERY,
};
pub use delta::{encode_level0, RiceParams};
pub use from_lists::{
    build_from_lists, default_candidates, graph_space_rows, NeighborLists, MAX_CANDIDATES,
};
pub use layout::{GraphError, GraphView, Level0Layout, PackedGraph};
pub use reorder::{invert, spatial_order, SPATIAL_LEAF};
pub use visited::Visited;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::topk::Neighbor;
use beam::Beam;

/// Marks an empty slot in a fixed-degree adjacency row.
pub const NO_NODE: u32 = u32::MAX;

/// What a search needs from a graph.
pub trait Graph {
    /// Number of nodes (node ids are `0..node_count`).
    fn node_count(&self) -> usize;
    /// The entry node and the top level, or `None` for an empty graph.
    fn entry_point(&self) -> Option<(u32, usize)>;
    /// Replaces `out` with the neighbours of `node` at `level`.
    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>);

    /// Replaces `out` with the neighbours of `node` at `level` not yet in `visited`,
    /// marking them visited: every neighbour decoded first, then the unvisited ones
    /// kept in place ([`Visited::keep_unvisited`]), two tight loops.
    fn unvisited_neighbors(
        &self,
        node: u32,
        level: usize,
        visited: &mut Visited,
        out: &mut Vec<u32>,
    ) {
        self.neighbors(node, level, out);
        let kept = visited.keep_unvisited(out);
        out.truncate(kept);
    }

    /// Hints that the neighbours of `node` at `level` will be read soon.
    fn prefetch_neighbors(&self, _node: u32, _level: usize) {}

    /// Hints that the neighbours of `node` at `level` will be read after the next
    /// [`Graph::prefetch_neighbors`]: starts loading what finding them needs, without
    /// waiting for any of it (a compressed layout's offsets, a packed row).
    fn prefetch_lookup(&self, _node: u32, _level: usize) {}
}

/// A distance-ordered candidate: `(distance, node)`, ordered by distance then node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cand(pub f32, pub u32);

impl Eq for Cand {}
impl PartialOrd for Cand {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    #[inline]
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Searches `g` for the `ef` nodes nearest by `dist`; returns them nearest first as
/// `(node, distance)` pairs in [`Neighbor`] (the `id` field holds the node number).
pub fn search<G: Graph + ?Sized>(
    g: &G,
    dist: impl Fn(u32) -> f32,
    ef: usize,
    visited: &mut Visited,
) -> Vec<Neighbor> {
    search_prefetching(g, dist, |_: &[u32]| {}, ef, visited)
}

/// [`search`] that calls `prefetch(nodes)` with each batch of neighbours about to be
/// scored, before scoring them, so that their data (codes, vectors; from memory or from
/// disk) is on its way while earlier ones are scored.
pub fn search_prefetching<G: Graph + ?Sized>(
    g: &G,
    dist: impl Fn(u32) -> f32,
    prefetch: impl Fn(&[u32]),
    ef: usize,
    visited: &mut Visited,
) -> Vec<Neighbor> {
    search_batched(g, one_by_one(&dist, &prefetch), ef, visited)
}

/// [`search`] over a scorer of batches: `score(nodes, out)` replaces `out` with the
/// distances of `nodes`, in order. Each batch is the unvisited neighbours of one node
/// (or the entry point alone), so a scorer can start loading all of their data before
/// it computes the first distance, and pays its per-call costs once per batch.
pub fn search_batched<G: Graph + ?Sized>(
    g: &G,
    score: impl Fn(&[u32], &mut Vec<f32>),
    ef: usize,
    visited: &mut Visited,
) -> Vec<Neighbor> {
    let Some((entry, top)) = g.entry_point() else {
        return Vec::new();
    };
    let mut scratch = Scratch::for_search();
    let cur = descend(g, &score, entry, top, visited, &mut scratch);
    search_layer_beam(g, &score, &[cur], ef.max(1), 0, visited, &mut scratch).into_neighbors()
}

/// A batch scorer from a scorer of one node and a hint for each batch.
pub(crate) fn one_by_one<'a>(
    dist: &'a impl Fn(u32) -> f32,
    prefetch: &'a impl Fn(&[u32]),
) -> impl Fn(&[u32], &mut Vec<f32>) + 'a {
    move |nodes, out| {
        prefetch(nodes);
        out.clear();
        out.extend(nodes.iter().map(|&n| dist(n)));
    }
}

/// Buffers a level search reuses: a node's neighbours and their distances.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    nodes: Vec<u32>,
    dists: Vec<f32>,
}

impl Scratch {
    /// Buffers for a search: room for a row of up to 128 neighbours from the start
    /// (growing them a few entries at a time cost a search several reallocations).
    fn for_search() -> Self {
        Scratch {
            nodes: Vec::with_capacity(128),
            dists: Vec::with_capacity(128),
        }
    }
}

/// The `ef` nearest nodes that pass `eligible`, nearest first, by a beam search that
/// walks through every node but keeps only eligible ones as results (a node that does
/// not pass still leads on to its neighbours, so the walk stays connected however few
/// nodes pass). The walk ends when its nearest unexpanded node is farther than the
/// `ef`-th result found. `None` once it has scored more than `max_visits` nodes: with few
/// eligible nodes, or eligible nodes far from the query, a walk can cover much of the
/// graph, and an exact scan of the eligible nodes is then cheaper.
pub fn search_eligible<G: Graph + ?Sized>(
    g: &G,
    dist: impl Fn(u32) -> f32,
    prefetch: impl Fn(&[u32]),
    eligible: impl Fn(u32) -> bool,
    ef: usize,
    max_visits: usize,
    visited: &mut Visited,
) -> Option<Vec<Neighbor>> {
    let Some((entry, top)) = g.entry_point() else {
        return Some(Vec::new());
    };
    let mut scratch = Scratch::for_search();
    let no_hint = |_: &[u32]| {};
    let cur = descend(
        g,
        &one_by_one(&dist, &no_hint),
        entry,
        top,
        visited,
        &mut scratch,
    );
    let mut buf = scratch.nodes;
    visited.next_round(g.node_count());
    let ef = ef.clamp(1, g.node_count().max(1));
    let mut candidates: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(ef * 4);
    let mut results: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
    visited.insert(cur.1);
    candidates.push(Reverse(cur));
    if eligible(cur.1) {
        results.push(cur);
    }
    let mut visits = 1usize;
    while let Some(Reverse(c)) = candidates.pop() {
        if results.len() >= ef && results.peek().is_some_and(|w| c.0 > w.0) {
            break;
        }
        if let Some(Reverse(next)) = candidates.peek() {
            g.prefetch_neighbors(next.1, 0);
        }
        g.unvisited_neighbors(c.1, 0, visited, &mut buf);
        prefetch(&buf);
        visits += buf.len();
        if visits > max_visits {
            return None;
        }
        for &n in buf.iter() {
            let d = dist(n);
            if results.len() < ef || results.peek().is_some_and(|w| d < w.0) {
                candidates.push(Reverse(Cand(d, n)));
                if eligible(n) {
                    results.push(Cand(d, n));
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
    }
    Some(
        results
            .into_sorted_vec()
            .into_iter()
            .map(|c| Neighbor {
                id: c.1 as u64,
                distance: c.0,
            })
            .collect(),
    )
}

/// The greedy descent from `entry` on level `top` down to level 1: the node where level
/// 0's search starts. `visited` is left holding the nodes it scored.
fn descend<G: Graph + ?Sized>(
    g: &G,
    score: &impl Fn(&[u32], &mut Vec<f32>),
    entry: u32,
    top: usize,
    visited: &mut Visited,
    scratch: &mut Scratch,
) -> Cand {
    visited.next_round(g.node_count());
    visited.insert(entry);
    score(&[entry], &mut scratch.dists);
    let mut cur = Cand(
        scratch.dists.first().copied().unwrap_or(f32::INFINITY),
        entry,
    );
    for level in (1..=top).rev() {
        cur = greedy(g, score, cur, level, visited, scratch);
    }
    cur
}

/// Moves to the nearest neighbour until no neighbour is nearer (beam of one). Nodes in
/// `visited` are not scored again: each was no nearer than the node the walk was at
/// when it was scored, and the walk only moves nearer, so skipping them changes
/// nothing (the descent through the upper levels meets the same nodes level after
/// level). The caller starts the round; scored nodes are added to it.
pub(crate) fn greedy<G: Graph + ?Sized>(
    g: &G,
    score: &impl Fn(&[u32], &mut Vec<f32>),
    mut cur: Cand,
    level: usize,
    visited: &mut Visited,
    scratch: &mut Scratch,
) -> Cand {
    loop {
        let mut moved = false;
        g.unvisited_neighbors(cur.1, level, visited, &mut scratch.nodes);
        score(&scratch.nodes, &mut scratch.dists);
        for (&n, &d) in scratch.nodes.iter().zip(&scratch.dists) {
            if d < cur.0 {
                cur = Cand(d, n);
                moved = true;
            }
        }
        if !moved {
            return cur;
        }
    }
}

/// The beam search of one level: returns up to `ef` nearest, nearest first.
pub(crate) fn search_layer<G: Graph + ?Sized>(
    g: &G,
    score: &impl Fn(&[u32], &mut Vec<f32>),
    entries: &[Cand],
    ef: usize,
    level: usize,
    visited: &mut Visited,
    scratch: &mut Scratch,
) -> Vec<Cand> {
    search_layer_beam(g, score, entries, ef, level, visited, scratch).into_sorted_vec()
}

/// [`search_layer`], returning the final beam.
fn search_layer_beam<G: Graph + ?Sized>(
    g: &G,
    score: &impl Fn(&[u32], &mut Vec<f32>),
    entries: &[Cand],
    ef: usize,
    level: usize,
    visited: &mut Visited,
    scratch: &mut Scratch,
) -> Beam {
    visited.next_round(g.node_count());
    // A beam wider than the graph finds nothing more (and a huge one must not allocate).
    let ef = ef.clamp(1, g.node_count().max(1));
    let mut beam = Beam::new(ef);
    for &e in entries {
        if visited.insert(e.1) {
            beam.insert(e);
        }
    }
    // The nearest candidate not yet expanded; the walk ends when every candidate in the
    // beam (the `ef` nearest found) has been expanded.
    let mut at = beam.unexpanded_from(0);
    while let Some(pos) = at {
        let Some(c) = beam.expand(pos) else { break };
        // The next candidate's adjacency row is likely a cache miss: start it now, and
        // what locating the one after it needs.
        let mut front = beam.unexpanded_from(pos + 1);
        if let Some(i) = front {
            if let Some(next) = beam.node_at(i) {
                g.prefetch_neighbors(next, level);
            }
            if let Some(after) = beam.unexpanded_from(i + 1).and_then(|j| beam.node_at(j)) {
                g.prefetch_lookup(after, level);
            }
        }
        // The neighbours not seen yet, scored as one batch.
        g.unvisited_neighbors(c.1, level, visited, &mut scratch.nodes);
        score(&scratch.nodes, &mut scratch.dists);
        for (&n, &d) in scratch.nodes.iter().zip(&scratch.dists) {
            if beam.admits(d) {
                if let Some(i) = beam.insert(Cand(d, n)) {
                    // A candidate nearer than every unexpanded one is expanded next
                    // (unless a nearer one follows): start locating its neighbours.
                    // (One inserted behind the front leaves the front where it is: a
                    // full beam drops its last candidate, never one before the front.)
                    if front.is_none_or(|f| i <= f) {
                        front = Some(i);
                        g.prefetch_lookup(n, level);
                    }
                }
            }
        }
        at = front;
    }
    beam
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Metric;
    use crate::exact::scan_block;
    use crate::TopK;
    use rand::{Rng, SeedableRng};

    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        (0..n)
            .flat_map(|_| {
                let c = centres[rng.random_range(0..20)].clone();
                c.into_iter()
                    .map(|x| x + rng.random_range(-0.3..0.3))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_build_reports_progress_and_stops_when_asked() {
        let data = clustered(3 * PROGRESS_EVERY, 8, 4);
        let seen = parking_lot::Mutex::new(Vec::new());
        let g = build_with_progress(&data, 8, Metric::L2, &HnswParams::default(), &|n| {
            seen.lock().push(n);
            true
        });
        assert!(g.is_some());
        let seen = seen.into_inner();
        assert_eq!(
            seen.last(),
            Some(&(3 * PROGRESS_EVERY)),
            "ends at n: {seen:?}"
        );
        assert!(seen.len() >= 3, "{seen:?}");
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let stopped = build_with_progress(&data, 8, Metric::L2, &HnswParams::default(), &|_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        });
        assert!(stopped.is_none());
        assert!(calls.into_inner() <= 2, "stops at the first mark");
    }

    fn recall(data: &[f32], dim: usize, metric: Metric, g: &GraphView<'_>, ef: usize) -> f64 {
        let queries = clustered(100, dim, 99);
        let mut visited = Visited::new();
        let mut hit = 0;
        for q in queries.chunks_exact(dim) {
            let mut top = TopK::new(10);
            scan_block(metric, q, data, dim, &mut top, |r| r as u64, |_| false);
            let truth: Vec<u64> = top.into_sorted().iter().map(|n| n.id).collect();
            let found = search(
                g,
                |n| metric.distance(q, &data[n as usize * dim..(n as usize + 1) * dim]),
                ef,
                &mut visited,
            );
            hit += found
                .iter()
                .take(10)
                .filter(|n| truth.contains(&n.id))
                .count();
        }
        hit as f64 / 1000.0
    }

    #[test]
    fn recall_at_10_is_high_for_every_metric() {
        let dim = 24;
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut data = clustered(4000, dim, 5);
            if metric == Metric::Cosine {
                data.chunks_exact_mut(dim).for_each(|v| {
                    crate::distance::normalize(v);
                });
            }
            // One thread: a deterministic graph, so the threshold is not at the mercy of
            // the insertion order of a parallel build.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let g = pool.install(|| build(&data, dim, metric, &HnswParams::default()));
            let r = recall(&data, dim, metric, &g.view(), 128);
            println!("{metric:?}: recall@10 at ef=128 = {r:.3}");
            assert!(r >= 0.97, "{metric:?} recall {r}");
        }
    }

    #[test]
    fn a_build_whose_searches_score_grid_codes_is_as_good() {
        let dim = 24;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut data = clustered(4000, dim, 6);
            if metric == Metric::Cosine {
                data.chunks_exact_mut(dim).for_each(|v| {
                    crate::distance::normalize(v);
                });
            }
            let (lo, step, codes) = crate::sq8::grid_codes(&data, dim);
            let grid = crate::sq8::GridRows {
                lo: &lo,
                step: &step,
                codes: &codes,
            };
            let p = HnswParams::default();
            let exact = pool.install(|| build(&data, dim, metric, &p));
            let on_grid = pool
                .install(|| build_on_grid(&data, dim, metric, &p, Some(grid), &|_| true))
                .unwrap();
            assert_ne!(
                on_grid, exact,
                "{metric:?}: the searches scored other distances"
            );
            // Searched exactly, both graphs find the same neighbours at a modest `ef`.
            let (want, got) = (
                recall(&data, dim, metric, &exact.view(), 32),
                recall(&data, dim, metric, &on_grid.view(), 32),
            );
            println!("{metric:?}: recall@10 at ef=32: exact build {want:.3}, grid {got:.3}");
            assert!(got >= want - 0.01, "{metric:?}: {got} vs {want}");
        }
    }

    #[test]
    fn the_descent_skips_scored_nodes_and_ends_where_a_plain_greedy_walk_does() {
        let dim = 6;
        let data = clustered(3000, dim, 12);
        let g = build(&data, dim, Metric::L2, &HnswParams::default());
        let v = g.view();
        let (entry, top) = v.entry_point().unwrap();
        assert!(top >= 2, "a graph with upper levels");
        let queries = clustered(200, dim, 13);
        let mut visited = Visited::new();
        let mut scratch = Scratch::default();
        let mut buf = Vec::new();
        for q in queries.chunks_exact(dim) {
            let scored = std::cell::Cell::new(0usize);
            let dist = |n: u32| {
                scored.set(scored.get() + 1);
                Metric::L2.distance(q, &data[n as usize * dim..(n as usize + 1) * dim])
            };
            let no_hint = |_: &[u32]| {};
            let got = descend(
                &v,
                &one_by_one(&dist, &no_hint),
                entry,
                top,
                &mut visited,
                &mut scratch,
            );
            let skipping = scored.replace(0);
            // The textbook descent: every neighbour scored at every step.
            let mut cur = Cand(dist(entry), entry);
            for level in (1..=top).rev() {
                loop {
                    let before = cur;
                    v.neighbors(cur.1, level, &mut buf);
                    for &n in &buf {
                        let d = dist(n);
                        if d < cur.0 {
                            cur = Cand(d, n);
                        }
                    }
                    if cur == before {
                        break;
                    }
                }
            }
            assert_eq!(got, cur);
            assert!(skipping < scored.get(), "{skipping} vs {}", scored.get());
        }
    }

    #[test]
    fn single_thread_build_is_deterministic() {
        let dim = 8;
        let data = clustered(1500, dim, 8);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let p = HnswParams {
            m: 8,
            ef_construction: 40,
            seed: 3,
        };
        let a = pool.install(|| build(&data, dim, Metric::L2, &p));
        let b = pool.install(|| build(&data, dim, Metric::L2, &p));
        assert_eq!(a, b);
        let c = pool.install(|| build(&data, dim, Metric::L2, &HnswParams { seed: 4, ..p }));
        assert_ne!(a, c, "the seed matters");
    }

    #[test]
    fn degree_bounds_hold_and_empty_graphs_search_to_nothing() {
        let dim = 4;
        let data = clustered(800, dim, 1);
        let g = build(
            &data,
            dim,
            Metric::L2,
            &HnswParams {
                m: 6,
                ef_construction: 30,
                seed: 1,
            },
        );
        let v = g.view();
        let mut out = Vec::new();
        for n in 0..800u32 {
            v.neighbors(n, 0, &mut out);
            assert!(out.len() <= 12 && !out.contains(&n));
            v.neighbors(n, 1, &mut out);
            assert!(out.len() <= 6);
        }
        let empty = build(&[], dim, Metric::L2, &HnswParams::default());
        assert!(search(&empty.view(), |_| 0.0, 10, &mut Visited::new()).is_empty());
    }
}

#[cfg(test)]
mod growing_tests {
    use super::*;
    use crate::distance::Metric;
    use rand::{Rng, SeedableRng};

    #[test]
    fn readers_search_while_a_writer_links_nodes() {
        let dim = 8;
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let data: Vec<f32> = (0..3000 * dim)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let g = GrowingGraph::new(&HnswParams {
            m: 8,
            ef_construction: 40,
            seed: 2,
        });
        let linked = std::sync::atomic::AtomicUsize::new(0);
        let vec = |n: u32| &data[n as usize * dim..(n as usize + 1) * dim];
        std::thread::scope(|s| {
            s.spawn(|| {
                let (mut visited, mut buf) = (Visited::new(), Vec::new());
                let dist = |a: u32, b: u32| Metric::L2.distance(vec(a), vec(b));
                for _ in 0..3000 {
                    let i = g.push();
                    g.link(i, &dist, &mut visited, &mut buf);
                    linked.store(i as usize + 1, std::sync::atomic::Ordering::Release);
                }
            });
            for _ in 0..2 {
                s.spawn(|| {
                    let mut visited = Visited::new();
                    let q = [0.1f32; 8];
                    while linked.load(std::sync::atomic::Ordering::Acquire) < 3000 {
                        let n = g.len() as u64;
                        for hit in search(&g, |x| Metric::L2.distance(&q, vec(x)), 20, &mut visited)
                        {
                            assert!(
                                hit.id < n.max(g.len() as u64),
                                "node {} beyond {}",
                                hit.id,
                                n
                            );
                        }
                    }
                });
            }
        });
        // Once linking is done, the grown graph finds the true nearest neighbour.
        let mut visited = Visited::new();
        for qi in 0..20u32 {
            let q = vec(qi * 7);
            let hits = search(&g, |x| Metric::L2.distance(q, vec(x)), 32, &mut visited);
            assert_eq!(hits[0].id, (qi * 7) as u64);
        }
        assert_eq!(g.pack().node_count(), 3000);
    }
}

#[cfg(test)]
mod duplicate_tests {
    use super::*;
    use crate::distance::Metric;

    #[test]
    fn exact_duplicates_keep_the_graph_navigable() {
        use rand::{Rng, SeedableRng};
        // 400 distinct random points, each stored five times in a row.
        let dim = 4;
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let points: Vec<Vec<f32>> = (0..400)
            .map(|_| (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let data: Vec<f32> = points
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), 5))
            .flatten()
            .collect();
        // One thread: a deterministic graph, so the outcome does not hang on insertion order.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let g = pool.install(|| {
            build(
                &data,
                dim,
                Metric::L2,
                &HnswParams {
                    m: 8,
                    ef_construction: 32,
                    seed: 9,
                },
            )
        });
        let v = g.view();
        let mut visited = Visited::new();
        let row = |n: u32| &data[n as usize * dim..(n as usize + 1) * dim];
        let mut hits_at_truth = 0;
        for _ in 0..100 {
            let q: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let truth = points
                .iter()
                .map(|p| Metric::L2.distance(&q, p))
                .fold(f32::INFINITY, f32::min);
            let hits = search(&v, |n| Metric::L2.distance(&q, row(n)), 32, &mut visited);
            hits_at_truth += usize::from((hits[0].distance - truth).abs() < 1e-6);
        }
        // With the strict tie rule a node kept only its duplicates and walks got stuck.
        assert!(
            hits_at_truth >= 97,
            "nearest found for {hits_at_truth} of 100 queries"
        );
    }
}
