//! Brute-force scans: the exact search used by memtables, small segments, `--exact`, and
//! as the ground truth of every recall test.

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
    // PERF: pick the kernel once per block rather than per row; the per-row work is one
    // indirect call, one compare against the current threshold, and rarely a heap push.
    let (f, sign, offset) = match metric {
        Metric::L2 => (k.l2, 1.0f32, 0.0f32),
        Metric::InnerProduct => (k.dot, -1.0, 0.0),
        Metric::Cosine => (k.dot, -1.0, 1.0),
    };
    for (row, v) in block.chunks_exact(dim).enumerate() {
        let d = offset + sign * f(query, v);
        if d <= top.threshold() && !skip(row) {
            top.push(id_of(row), d);
        }
    }
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
}
