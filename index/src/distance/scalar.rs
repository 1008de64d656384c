//! Reference and portable kernels.
//!
//! [`l2`] and [`dot`] are the straightforward definitions every SIMD kernel is tested
//! against. The `_chunked` versions keep eight independent accumulators so that the
//! compiler vectorises them even for the baseline target (SSE2).
#![deny(clippy::indexing_slicing)]

/// Squared L2, reference definition.
pub fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Dot product, reference definition.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const LANES: usize = 8;

/// Squared L2, portable chunked loop.
pub fn l2_chunked(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (a.split_at(n).0, b.split_at(n).0);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            let d = x - y;
            *s += d * d;
        }
    }
    acc.iter().sum::<f32>() + l2(ra, rb)
}

/// Dot product, portable chunked loop.
pub fn dot_chunked(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (a.split_at(n).0, b.split_at(n).0);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + dot(ra, rb)
}

/// Squared L2 from `q` to each row of `block` (rows of `dim`), portable.
pub fn l2_many(q: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    if dim == 0 {
        return;
    }
    for (o, row) in out.iter_mut().zip(block.chunks_exact(dim)) {
        *o = l2_chunked(q, row);
    }
}

/// Dot product of `q` with each row of `block` (rows of `dim`), portable.
pub fn dot_many(q: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    if dim == 0 {
        return;
    }
    for (o, row) in out.iter_mut().zip(block.chunks_exact(dim)) {
        *o = dot_chunked(q, row);
    }
}

/// Portable body of [`super::nearest_column`] (also compiled per instruction set).
#[inline(always)]
pub fn nearest_column(
    v: &[f32],
    cols: &[f32],
    k: usize,
    dim: usize,
    out: &mut [f32],
) -> (usize, f32) {
    let n = k.min(out.len());
    let out = out.split_at_mut(n).0;
    out.iter_mut().for_each(|d| *d = 0.0);
    for (j, &x) in v.iter().enumerate().take(dim) {
        let Some(col) = cols.get(j * k..(j + 1) * k) else {
            break;
        };
        for (d, &c) in out.iter_mut().zip(col) {
            let t = x - c;
            *d += t * t;
        }
    }
    // Sixteen independent (min, index) lanes: branch-free selects the compiler
    // vectorises, where a single running minimum is a serial chain of compares.
    let mut lanes = [f32::INFINITY; 16];
    let mut idx = [0u32; 16];
    let chunks = out.chunks_exact(16);
    let tail_start = out.len() - chunks.remainder().len();
    for (c, ch) in chunks.enumerate() {
        for (l, (&d, (m, ix))) in ch
            .iter()
            .zip(lanes.iter_mut().zip(idx.iter_mut()))
            .enumerate()
        {
            let better = d < *m;
            *m = if better { d } else { *m };
            *ix = if better { (c * 16 + l) as u32 } else { *ix };
        }
    }
    let mut best = (0usize, f32::INFINITY);
    for (&m, &ix) in lanes.iter().zip(&idx) {
        if m < best.1 || (m == best.1 && (ix as usize) < best.0) {
            best = (ix as usize, m);
        }
    }
    for (i, &d) in out.iter().enumerate().skip(tail_start) {
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}
