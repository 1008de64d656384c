//! Parallel HNSW construction.
//!
//! Levels are drawn up front from a seeded generator (`floor(-ln U / ln M)`), so a build
//! on one thread is deterministic. Nodes are inserted in parallel with one lock per node
//! and level; a lock is held only to copy or replace one neighbour list, never during a
//! search. Neighbours are chosen with the heuristic of the HNSW paper (algorithm 4): a
//! candidate is kept only if it is nearer to the base than to every neighbour kept so
//! far, which keeps long-range links that plain "M nearest" would drop.

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::{greedy, search_layer, Cand, CompactGraph, Graph, Visited};
use crate::distance::Metric;

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

struct Building<'a> {
    vectors: &'a [f32],
    dim: usize,
    metric: Metric,
    levels: Vec<u8>,
    links: Vec<Vec<Mutex<Vec<u32>>>>,
    entry: Mutex<Option<(u32, usize)>>,
    /// For inner product: each node's extra coordinate `sqrt(max_norm² - norm²)`.
    extra: Vec<f32>,
}

impl Building<'_> {
    fn vec(&self, n: u32) -> &[f32] {
        let i = n as usize * self.dim;
        &self.vectors[i..i + self.dim]
    }

    /// Distance between two nodes while building. Inner product is not a metric (a
    /// vector need not be its own nearest neighbour), so the graph is built in the
    /// standard MIPS-to-L2 reduction: each vector gains a coordinate that lifts it onto a
    /// sphere, and node-to-node distance is L2 there. For any query the order of `-q·x`
    /// equals the order of L2 to the lifted vectors, so searches keep using `-q·x`.
    fn dist(&self, a: u32, b: u32) -> f32 {
        match self.metric {
            Metric::InnerProduct => {
                let e = self.extra[a as usize] - self.extra[b as usize];
                crate::distance::l2_squared(self.vec(a), self.vec(b)) + e * e
            }
            m => m.distance(self.vec(a), self.vec(b)),
        }
    }
}

impl Graph for Building<'_> {
    fn node_count(&self) -> usize {
        self.levels.len()
    }

    fn entry_point(&self) -> Option<(u32, usize)> {
        *self.entry.lock()
    }

    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        if let Some(l) = self.links.get(node as usize).and_then(|ls| ls.get(level)) {
            out.extend_from_slice(&l.lock());
        }
    }
}

/// Builds the graph of `vectors` (rows of `dim`, already normalised for cosine) on the
/// current rayon pool.
pub fn build(vectors: &[f32], dim: usize, metric: Metric, p: &HnswParams) -> CompactGraph {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    let m = p.m.max(2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(p.seed);
    let mult = 1.0 / (m as f64).ln();
    let levels: Vec<u8> = (0..n)
        .map(|_| {
            let u: f64 = 1.0 - rng.random::<f64>();
            ((-u.ln() * mult) as usize).min(MAX_LEVEL) as u8
        })
        .collect();
    let links = levels
        .iter()
        .map(|&l| (0..=l).map(|_| Mutex::new(Vec::new())).collect())
        .collect();
    let extra = if metric == Metric::InnerProduct {
        let norms: Vec<f32> = vectors
            .chunks_exact(dim.max(1))
            .map(|v| crate::distance::dot(v, v))
            .collect();
        let max = norms.iter().copied().fold(0.0f32, f32::max);
        norms.iter().map(|&n| (max - n).max(0.0).sqrt()).collect()
    } else {
        Vec::new()
    };
    let b = Building {
        vectors,
        dim,
        metric,
        levels,
        links,
        entry: Mutex::new(None),
        extra,
    };
    if n > 0 {
        *b.entry.lock() = Some((0, b.levels[0] as usize));
        (1..n as u32).into_par_iter().for_each_init(
            || (Visited::new(), Vec::new()),
            |(visited, buf), i| insert(&b, i, m, p.ef_construction.max(m), visited, buf),
        );
    }
    let entry = *b.entry.lock();
    let lists: Vec<Vec<Vec<u32>>> = b
        .links
        .into_iter()
        .map(|ls| ls.into_iter().map(Mutex::into_inner).collect())
        .collect();
    CompactGraph::from_lists(&lists, 2 * m, entry)
}

fn insert(
    b: &Building<'_>,
    i: u32,
    m: usize,
    ef: usize,
    visited: &mut Visited,
    buf: &mut Vec<u32>,
) {
    let Some((ep, top)) = b.entry_point() else {
        return;
    };
    let lvl = b.levels[i as usize] as usize;
    let dist = |n: u32| b.dist(i, n);
    let mut cur = Cand(dist(ep), ep);
    for level in (lvl + 1..=top).rev() {
        cur = greedy(b, &dist, cur, level, buf);
    }
    let mut entries = vec![cur];
    for level in (0..=lvl.min(top)).rev() {
        let mut found = search_layer(b, &dist, &|_| {}, &entries, ef, level, visited, buf);
        // A concurrent insert that reached this node through an upper level may already
        // have linked it on this level, so the search can meet the node itself.
        found.retain(|c| c.1 != i);
        let chosen = select(b, &found, m);
        *b.links[i as usize][level].lock() = chosen.clone();
        let max_links = if level == 0 { 2 * m } else { m };
        for &e in &chosen {
            link(b, e, i, level, max_links);
        }
        entries = found;
    }
    if lvl > top {
        let mut e = b.entry.lock();
        if e.is_none_or(|(_, t)| lvl > t) {
            *e = Some((i, lvl));
        }
    }
}

/// Adds `new` to `e`'s list at `level`, pruning with the heuristic when it overflows.
fn link(b: &Building<'_>, e: u32, new: u32, level: usize, max_links: usize) {
    let mut l = b.links[e as usize][level].lock();
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
        .map(|&x| Cand(b.dist(e, x), x))
        .collect();
    cands.sort_unstable();
    *l = select(b, &cands, max_links);
}

/// The neighbour-selection heuristic over candidates sorted nearest first.
fn select(b: &Building<'_>, cands: &[Cand], m: usize) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::with_capacity(m);
    for c in cands {
        if out.len() >= m {
            break;
        }
        if out.iter().all(|&s| b.dist(c.1, s) > c.0) {
            out.push(c.1);
        }
    }
    out
}
