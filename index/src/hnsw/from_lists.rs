//! HNSW built from precomputed neighbour lists: the GPU computes exact neighbour lists
//! (a dense, data-parallel job), and the CPU turns them into the graph with the same
//! selection heuristic as [`super::build()`].
//!
//! An HNSW insertion of node `i` runs a beam search (width `ef_construction`) over the
//! nodes inserted before it, keeps `m` of the results by the paper's heuristic, and links
//! back from each of them, pruning a full list with the same heuristic. Here the beam
//! search is replaced by its ideal result: the `candidates` nearest nodes *before `i`*
//! on that level. Looking only backwards matters: the early nodes of a level see few,
//! far-apart nodes, and the links they keep are the long-range ones that let a greedy
//! search cross between clusters (exact lists over all nodes leave well-separated
//! clusters unlinked; the tests below measure both).
//!
//! Levels are drawn exactly as [`super::build()`] draws them (same seed, node order), so
//! both builders give a segment the same entry point.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use super::build::{mips_lift, select, GrowingGraph, HnswParams, NodeDistance, PROGRESS_EVERY};
use super::{Cand, PackedGraph};
use crate::distance::Metric;

/// `lists(rows, dim, k)`: for each row, its `k` nearest earlier rows (see
/// [`build_from_lists`]).
pub type NeighborLists<'a, E> = dyn FnMut(&[f32], usize, usize) -> Result<Vec<u32>, E> + 'a;

/// Most candidates per node the GPU's selection kernel keeps.
pub const MAX_CANDIDATES: usize = 256;

/// Candidates per node: the beam width of an insertion (`ef_construction`), at least the
/// level-0 list size and at most [`MAX_CANDIDATES`]. With it a graph from lists matched
/// or beat the incremental graph's recall on SIFT and GloVe prefixes.
pub fn default_candidates(p: &HnswParams) -> usize {
    p.ef_construction
        .clamp(2 * p.m.clamp(2, super::build::MAX_M), MAX_CANDIDATES)
}

/// The rows whose squared L2 order is the graph's distance order for `metric`, and
/// their dimension: the vectors themselves for L2 and cosine (normalised, so L2 orders
/// as cosine), and for inner product the lifted vectors of [`NodeDistance`] (one more
/// coordinate).
pub fn graph_space_rows(vectors: &[f32], dim: usize, metric: Metric) -> (Cow<'_, [f32]>, usize) {
    if metric != Metric::InnerProduct || dim == 0 {
        return (Cow::Borrowed(vectors), dim);
    }
    let lift = mips_lift(vectors, dim);
    let mut out = Vec::with_capacity(lift.len() * (dim + 1));
    for (v, e) in vectors.chunks_exact(dim).zip(lift) {
        out.extend_from_slice(v);
        out.push(e);
    }
    (Cow::Owned(out), dim + 1)
}

/// Builds the graph of `vectors` (rows of `dim`, normalised for cosine) from neighbour
/// lists. `lists(rows, dim, k)` must return, for each of the given rows (in graph space,
/// see [`graph_space_rows`]), its `k` nearest rows among the rows before it by squared
/// L2, nearest first, padded with [`NO_NEIGHBOR`](crate::exact::NO_NEIGHBOR) — what
/// [`crate::exact::earlier_neighbors`] computes. It is called once per level, top down,
/// level 0 (all rows) last; its error stops the build.
///
/// `progress(done)` is called about every [`PROGRESS_EVERY`] nodes chosen on level 0;
/// when it returns false the build stops with `Ok(None)`.
pub fn build_from_lists<E>(
    vectors: &[f32],
    dim: usize,
    metric: Metric,
    p: &HnswParams,
    candidates: usize,
    lists: &mut NeighborLists<'_, E>,
    progress: &(dyn Fn(usize) -> bool + Sync),
) -> Result<Option<PackedGraph>, E> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    let g = GrowingGraph::new(p);
    for _ in 0..n {
        g.push();
    }
    let levels: Vec<usize> = (0..n as u32).map(|i| g.level(i)).collect();
    let Some(top) = levels.iter().copied().max() else {
        return Ok(Some(g.pack()));
    };
    let entry = levels
        .iter()
        .position(|&l| l == top)
        .map(|i| (i as u32, top));
    g.set_entry(entry);
    let (space, sdim) = graph_space_rows(vectors, dim, metric);
    let nd = NodeDistance::new(vectors, dim, metric);
    let dist = |a: u32, b: u32| nd.between(a, b);
    let m = g.m();
    let (done, stopped) = (AtomicUsize::new(0), AtomicBool::new(false));
    for level in (0..=top).rev() {
        // The nodes present on this level, and their rows in graph space.
        let nodes: Vec<u32> = (0..n as u32)
            .zip(levels.iter())
            .filter(|&(_, &l)| l >= level)
            .map(|(i, _)| i)
            .collect();
        if nodes.len() < 2 {
            continue;
        }
        let rows: Cow<'_, [f32]> = if nodes.len() == n {
            Cow::Borrowed(&space)
        } else {
            Cow::Owned(
                nodes
                    .iter()
                    .flat_map(|&i| {
                        space
                            .get(i as usize * sdim..(i as usize + 1) * sdim)
                            .unwrap_or_default()
                            .iter()
                            .copied()
                    })
                    .collect(),
            )
        };
        let k = candidates.clamp(1, nodes.len() - 1);
        let found = lists(&rows, sdim, k)?;
        // Each node keeps `m` by the heuristic (as an insertion does on every level) …
        let chosen: Vec<Vec<u32>> = nodes
            .par_iter()
            .enumerate()
            .map(|(local, &i)| {
                if stopped.load(Ordering::Relaxed) {
                    return Vec::new();
                }
                let mut cands: Vec<Cand> = found
                    .get(local * k..(local + 1) * k)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|&c| nodes.get(c as usize).copied())
                    .filter(|&c| c != i)
                    .map(|c| Cand(dist(i, c), c))
                    .collect();
                cands.sort_unstable();
                cands.dedup_by_key(|c| c.1);
                let keep = select(&dist, cands.iter().copied(), m);
                if level == 0 {
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d % PROGRESS_EVERY == 0 && !progress(d) {
                        stopped.store(true, Ordering::Relaxed);
                    }
                }
                keep
            })
            .collect();
        if stopped.load(Ordering::Relaxed) {
            return Ok(None);
        }
        for (&i, keep) in nodes.iter().zip(&chosen) {
            if let Some(l) = g.list(i, level) {
                *l.lock() = keep.clone();
            }
        }
        // … then links back from each of them, pruning full lists with the heuristic.
        let max_links = if level == 0 { 2 * m } else { m };
        nodes.par_iter().zip(&chosen).for_each(|(&i, keep)| {
            for &e in keep {
                g.add_link(e, i, level, max_links, &dist);
            }
        });
    }
    if !progress(n) {
        return Ok(None);
    }
    Ok(Some(g.pack()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::earlier_neighbors;
    use crate::hnsw::{search, Graph};
    use rand::{Rng, SeedableRng};

    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let centres: Vec<f32> = (0..20 * dim).map(|_| rng.random_range(-4.0..4.0)).collect();
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = rng.random_range(0..20);
            for j in 0..dim {
                out.push(centres[c * dim + j] + rng.random_range(-1.0f32..1.0));
            }
        }
        out
    }

    fn recall(g: &PackedGraph, data: &[f32], dim: usize, metric: Metric, queries: &[f32]) -> f64 {
        let ef = 64;
        let view = g.view();
        let mut hits = 0;
        let mut total = 0;
        for q in queries.chunks_exact(dim) {
            let mut top = crate::TopK::new(10);
            crate::exact::scan_block(metric, q, data, dim, &mut top, |r| r as u64, |_| false);
            let truth: Vec<u64> = top.into_sorted().iter().map(|n| n.id).collect();
            let d = |node: u32| metric.distance(q, &data[node as usize * dim..][..dim]);
            let got = search(&view, d, ef, &mut crate::hnsw::Visited::new());
            hits += got
                .iter()
                .take(10)
                .filter(|c| truth.contains(&c.id))
                .count();
            total += truth.len();
        }
        hits as f64 / total as f64
    }

    #[test]
    fn graph_from_exact_lists_finds_neighbours_like_the_incremental_graph() {
        // One thread: both builds are then deterministic, and so is the verdict (the
        // parallel incremental build's recall varies by about 0.01 from run to run).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(graph_from_lists_vs_incremental);
    }

    fn graph_from_lists_vs_incremental() {
        let (n, dim) = (3000, 12);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut data = clustered(n, dim, 4);
            let mut queries = clustered(500, dim, 9);
            if metric == Metric::Cosine {
                data.chunks_exact_mut(dim).for_each(|v| {
                    crate::distance::normalize(v);
                });
                queries.chunks_exact_mut(dim).for_each(|v| {
                    crate::distance::normalize(v);
                });
            }
            let p = HnswParams::default();
            let mut calls = Vec::new();
            let g = build_from_lists::<()>(
                &data,
                dim,
                metric,
                &p,
                default_candidates(&p),
                &mut |rows, d, k| {
                    calls.push(rows.len() / d);
                    Ok(earlier_neighbors(rows, d, k))
                },
                &|_| true,
            )
            .unwrap()
            .unwrap();
            assert_eq!(g.node_count(), n);
            assert_eq!(calls.last(), Some(&n), "level 0 last, over every row");
            assert!(
                calls.windows(2).all(|w| w[0] <= w[1]),
                "levels top down: {calls:?}"
            );
            let reference = crate::hnsw::build(&data, dim, metric, &p);
            assert_eq!(
                g.entry(),
                reference.entry(),
                "same levels, same entry point"
            );
            let (ours, theirs) = (
                recall(&g, &data, dim, metric, &queries),
                recall(&reference, &data, dim, metric, &queries),
            );
            eprintln!("{metric:?}: recall {ours} vs incremental {theirs}");
            assert!(
                ours >= theirs - 0.01,
                "{metric:?}: recall {ours} vs incremental {theirs}"
            );
        }
    }

    #[test]
    fn a_list_error_or_a_stop_ends_the_build() {
        let data = clustered(5000, 4, 1);
        let p = HnswParams::default();
        let r = build_from_lists(
            &data,
            4,
            Metric::L2,
            &p,
            32,
            &mut |_, _, _| Err("oom"),
            &|_| true,
        );
        assert_eq!(r.err(), Some("oom"));
        let r = build_from_lists::<()>(
            &data,
            4,
            Metric::L2,
            &p,
            32,
            &mut |rows, d, k| Ok(earlier_neighbors(rows, d, k)),
            &|_| false,
        );
        assert!(matches!(r, Ok(None)));
    }

    #[test]
    fn tiny_inputs_build() {
        let p = HnswParams::default();
        for n in [0usize, 1, 2, 5] {
            let data: Vec<f32> = (0..n * 3).map(|x| x as f32).collect();
            let g = build_from_lists::<()>(
                &data,
                3,
                Metric::L2,
                &p,
                64,
                &mut |rows, d, k| Ok(earlier_neighbors(rows, d, k)),
                &|_| true,
            )
            .unwrap()
            .unwrap();
            assert_eq!(g.node_count(), n);
            if n >= 2 {
                let mut out = Vec::new();
                g.view().neighbors(0, 0, &mut out);
                assert!(!out.is_empty(), "node 0 is linked when n = {n}");
            }
        }
    }
}
