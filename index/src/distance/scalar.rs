//! Reference and portable kernels.
//!
//! [`l2`] and [`dot`] are the straightforward definitions every SIMD kernel is tested
//! against. The `_chunked` versions keep eight independent accumulators so that the
//! compiler vectorises them even for the baseline target (SSE2).

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
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + l2(ra, rb)
}

/// Dot product, portable chunked loop.
pub fn dot_chunked(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
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
