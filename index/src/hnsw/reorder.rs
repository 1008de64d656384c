//! Locality order: renumbering a segment's rows (and its graph's nodes) so that rows
//! close in space have close numbers. Segments store rows in that order, so a query's
//! walk (PQ codes, graph rows) and its rerank candidates (full vectors), which gather
//! around the query, fall on few pages.

use super::{Graph, PackedGraph};

/// Rows per leaf of [`spatial_order`]'s tree.
pub const SPATIAL_LEAF: usize = 64;

/// A spatial order of `dim`-dimensional `vectors` (row-major): the rows are split
/// recursively at the median of their projection on their principal direction (a few
/// power iterations over at most 1,024 of them) down to [`SPATIAL_LEAF`] rows, and the
/// leaves are laid out left to right. Rows close in space get close positions at every
/// scale, so the rows a search reaches together — a query's neighbourhood — share pages.
/// Runs on the current rayon pool. Returns, for each new position, the old row number.
pub fn spatial_order(vectors: &[f32], dim: usize) -> Vec<u32> {
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    let mut rows: Vec<u32> = (0..n as u32).collect();
    split(&mut rows, vectors, dim);
    rows
}

fn row_of(vectors: &[f32], dim: usize, r: u32) -> &[f32] {
    let at = r as usize * dim;
    vectors.get(at..at + dim).unwrap_or(&[])
}

fn split(rows: &mut [u32], vectors: &[f32], dim: usize) {
    if rows.len() <= SPATIAL_LEAF {
        return;
    }
    let dot = crate::distance::kernels().dot;
    let step = rows.len().div_ceil(1024);
    let sample: Vec<&[f32]> = rows
        .iter()
        .step_by(step)
        .map(|&r| row_of(vectors, dim, r))
        .collect();
    let mut mean = vec![0f32; dim];
    for v in &sample {
        mean.iter_mut().zip(v.iter()).for_each(|(m, x)| *m += x);
    }
    mean.iter_mut().for_each(|m| *m /= sample.len() as f32);
    // Power iteration for the principal direction of the centred sample:
    // `Σ p·(v − mean)` with `p = (v − mean)·dir`, as `Σ p·v − (Σ p)·mean` (SIMD dot
    // products, and an update the compiler vectorises).
    let mut dir: Vec<f32> = (0..dim).map(|j| 1.0 + (j % 7) as f32 * 0.1).collect();
    for _ in 0..8 {
        let centre = dot(&mean, &dir);
        let mut next = vec![0f32; dim];
        let mut total = 0f32;
        for v in &sample {
            let p = dot(v, &dir) - centre;
            total += p;
            next.iter_mut().zip(v.iter()).for_each(|(o, x)| *o += p * x);
        }
        next.iter_mut()
            .zip(&mean)
            .for_each(|(o, m)| *o -= total * m);
        let norm = next.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm.is_nan() || norm <= 0.0 {
            break;
        }
        dir = next.into_iter().map(|x| x / norm).collect();
    }
    // Each row's projection once (a selection compares each row several times).
    let mut keyed: Vec<(f32, u32)> = rows
        .iter()
        .map(|&r| (dot(row_of(vectors, dim, r), &dir), r))
        .collect();
    let mid = rows.len() / 2;
    keyed.select_nth_unstable_by(mid, |a, b| a.0.total_cmp(&b.0));
    rows.iter_mut().zip(&keyed).for_each(|(r, k)| *r = k.1);
    let (left, right) = rows.split_at_mut(mid);
    // The halves are independent: split them on the current rayon pool.
    rayon::join(|| split(left, vectors, dim), || split(right, vectors, dim));
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
    /// nodes, e.g. from [`spatial_order`]).
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
        let lists = vec![
            vec![vec![1, 2], vec![2]],
            vec![vec![0]],
            vec![vec![0, 1], vec![0], vec![]],
            vec![vec![1]],
        ];
        let g = PackedGraph::from_lists(&lists, 4, Some((2, 2)));
        let order = vec![2, 0, 3, 1];
        let r = g.renumbered(&order);
        let new_of_old = invert(&order);
        assert_eq!(new_of_old, vec![1, 3, 0, 2]);
        assert_eq!(r.entry(), Some((0, 2)));
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

    #[test]
    fn spatial_order_is_a_permutation_that_keeps_clusters_together() {
        // 8 clusters of 100 points on a line in 3-d, rows interleaved.
        let dim = 3;
        let n = 800;
        let vectors: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = (i % 8) as f32 * 10.0;
                let e = (i / 8) as f32 * 0.01;
                [c + e, -c, 0.5 * c - e]
            })
            .collect();
        let order = spatial_order(&vectors, dim);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>());
        // Each cluster's rows take consecutive positions.
        let cluster_changes = order.windows(2).filter(|w| w[0] % 8 != w[1] % 8).count();
        assert_eq!(cluster_changes, 7, "{order:?}");
        assert!(spatial_order(&[], 4).is_empty());
    }
}
