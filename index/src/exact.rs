//! Brute-force scans: the exact search used by memtables, small segments, `--exact`, and
//! as the ground truth of every recall test.

#![deny(clippy::indexing_slicing)]

use crate::distance::{kernels, Metric};
use crate::topk::TopK;

/// Scans `rows` consecutive vectors of `dim` floats in `block`, whose ids are
/// `id_of(row)`, skipping rows for which `skip(row)` is true, and offers each to `top`.
pub fn scan_block(
    metric: Metric,
    query: &[f32],
    block: &[f32],
    dim: usize,
    top: &mut TopK,
    mut id_of: impl FnMut(usize) -> u64,
    mut skip: impl FnMut(usize) -> bool,
) {
    if dim == 0 {
        return;
    }
    let k = kernels();
    // PERF: distances are computed a tile at a time by one call of a batched kernel (the
    // query stays in registers, no per-row indirect call); the per-row work left here is
    // one compare against the current threshold and rarely a heap push.
    let (f, sign, offset) = match metric {
        Metric::L2 => (k.l2_many, 1.0f32, 0.0f32),
        Metric::InnerProduct => (k.dot_many, -1.0, 0.0),
        Metric::Cosine => (k.dot_many, -1.0, 1.0),
    };
    const TILE: usize = 256;
    let mut dist = [0.0f32; TILE];
    for (t, tile) in block.chunks(TILE * dim).enumerate() {
        let n = (tile.len() / dim).min(TILE);
        let dist = dist.split_at_mut(n).0;
        f(query, tile, dim, dist);
        for (i, &x) in dist.iter().enumerate() {
            let d = offset + sign * x;
            let row = t * TILE + i;
            if d <= top.threshold() && !skip(row) {
                top.push(id_of(row), d);
            }
        }
    }
}

/// Marks an empty slot of a neighbour list from [`earlier_neighbors`] (fewer than `k`
/// others).
pub const NO_NEIGHBOR: u32 = u32::MAX;

/// For every row `i` of `rows` (rows of `dim`), its `k` nearest rows (squared L2) among
/// the rows *before* it, in parallel: `n × k` row numbers, nearest first, ties by the
/// lower row, padded with [`NO_NEIGHBOR`] (row 0 has none).
///
/// What an HNSW insertion's beam search would return with an unbounded beam, and so
/// what a graph is built from in [`crate::hnsw::build_from_lists`]. Quadratic: the CPU
/// reference of the GPU's neighbour-list kernel; a CPU segment build links its graph
/// incrementally instead.
pub fn earlier_neighbors(rows: &[f32], dim: usize, k: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let n = rows.len().checked_div(dim).unwrap_or(0);
    let mut out = vec![NO_NEIGHBOR; n * k];
    if k == 0 || dim == 0 {
        return out;
    }
    out.par_chunks_mut(k).enumerate().for_each(|(i, list)| {
        let mut top = TopK::new(k);
        // Row i and the rows before it (both within `rows`: i < n).
        let (before, rest) = rows.split_at((i * dim).min(rows.len()));
        scan_block(
            Metric::L2,
            rest.get(..dim).unwrap_or_default(),
            before,
            dim,
            &mut top,
            |r| r as u64,
            |_| false,
        );
        for (slot, nb) in list.iter_mut().zip(top.into_sorted()) {
            *slot = nb.id as u32;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_nearest_and_honours_skip() {
        let block: Vec<f32> = (0..10).flat_map(|i| [i as f32, 0.0]).collect();
        let mut top = TopK::new(2);
        scan_block(
            Metric::L2,
            &[3.2, 0.0],
            &block,
            2,
            &mut top,
            |r| r as u64 * 10,
            |r| r == 3,
        );
        let ids: Vec<u64> = top.into_sorted().iter().map(|n| n.id).collect();
        assert_eq!(ids, vec![40, 20]);
    }

    #[test]
    fn earlier_neighbors_look_only_backwards_and_pad_short_lists() {
        // Points 0, 1, 3, 7 on a line, and a duplicate of 3.
        let rows = [0.0f32, 1.0, 3.0, 7.0, 3.0];
        let lists = earlier_neighbors(&rows, 1, 2);
        let none = NO_NEIGHBOR;
        assert_eq!(
            lists,
            vec![none, none, 0, none, 1, 0, 2, 1, 2, 1],
            "nearest earlier rows first, ties by row, a duplicate kept"
        );
    }
}
