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

/// Squared L2 between `a` and the bytes `c` read as numbers scaled by `s`:
/// `Σ (a[j] − s[j] · c[j])²` over the shortest of the three (the distance to an `int8`
/// row, see [`crate::sq8`]). Sixteen lanes of accumulators, so the compiler vectorises
/// it (byte widening included) under each instruction set it is compiled for.
#[inline(always)]
pub fn sq8_l2(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    let n = a.len().min(s.len()).min(c.len());
    let (a, s, c) = (a.split_at(n).0, s.split_at(n).0, c.split_at(n).0);
    let ((ab, at), (sb, st), (cb, ct)) = (
        a.as_chunks::<16>(),
        s.as_chunks::<16>(),
        c.as_chunks::<16>(),
    );
    let mut acc = [0.0f32; 16];
    for ((a, s), c) in ab.iter().zip(sb).zip(cb) {
        for (((acc, &a), &s), &c) in acc.iter_mut().zip(a).zip(s).zip(c) {
            let d = a - s * f32::from(c);
            *acc += d * d;
        }
    }
    let tail: f32 = at
        .iter()
        .zip(st)
        .zip(ct)
        .map(|((&a, &s), &c)| {
            let d = a - s * f32::from(c);
            d * d
        })
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// Dot product of `u` with the bytes `c` read as numbers, over the shorter of the two
/// (see [`sq8_l2`]).
#[inline(always)]
pub fn sq8_dot(u: &[f32], c: &[u8]) -> f32 {
    let n = u.len().min(c.len());
    let (u, c) = (u.split_at(n).0, c.split_at(n).0);
    let ((ub, ut), (cb, ct)) = (u.as_chunks::<16>(), c.as_chunks::<16>());
    let mut acc = [0.0f32; 16];
    for (u, c) in ub.iter().zip(cb) {
        for ((a, &u), &c) in acc.iter_mut().zip(u).zip(c) {
            *a += u * f32::from(c);
        }
    }
    let tail: f32 = ut.iter().zip(ct).map(|(&u, &c)| u * f32::from(c)).sum();
    acc.iter().sum::<f32>() + tail
}

/// [`sq8_l2`] to each of `nodes`' rows (node `n`'s row: the `width` bytes at
/// `n · width` of `rows`), into `out` (one value per node; +∞ for a row past the end).
pub fn sq8_l2_rows(
    a: &[f32],
    s: &[f32],
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
) {
    score_rows(rows, width, nodes, out, |c| sq8_l2(a, s, c));
}

/// [`sq8_dot`] with each of `nodes`' rows, as [`sq8_l2_rows`].
pub fn sq8_dot_rows(u: &[f32], rows: &[u8], width: usize, nodes: &[u32], out: &mut [f32]) {
    score_rows(rows, width, nodes, out, |c| sq8_dot(u, c));
}

/// `f` of each of `nodes`' rows (as [`sq8_l2_rows`] finds them) into `out`, +∞ for a
/// row past the end: the loop every kernel set's row kernels share.
#[inline(always)]
pub(super) fn score_rows(
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
    f: impl Fn(&[u8]) -> f32,
) {
    for (o, &n) in out.iter_mut().zip(nodes) {
        *o = row_of(rows, width, n).map_or(f32::INFINITY, &f);
    }
}

/// Node `n`'s row of `width` bytes in `rows` (none past the end, or of width 0).
#[inline(always)]
pub(super) fn row_of(rows: &[u8], width: usize, n: u32) -> Option<&[u8]> {
    let at = (n as usize).checked_mul(width)?;
    rows.get(at..at.checked_add(width)?)
        .filter(|r| !r.is_empty())
}

/// Portable body of [`super::column_distances`] (also compiled per instruction set):
/// from `v` to each of `k` centroids stored dimension-major (`cols[j * k + c]` =
/// component `j` of centroid `c`) into `out[..k]`, the squared L2 distance when `L2`,
/// else the negated dot product. Entries past the last complete dimension of `cols`
/// count as absent.
///
/// PERF: sixteen centroids at a time in one accumulator array (one vector register), so
/// each column element is read once and each output written once, where a loop over
/// dimensions outside the centroids reads and writes every output once per dimension.
#[inline(always)]
pub fn column_distances<const L2: bool>(
    v: &[f32],
    cols: &[f32],
    k: usize,
    dim: usize,
    out: &mut [f32],
) {
    let n = k.min(out.len());
    let dims = dim.min(v.len()).min(cols.len().checked_div(k).unwrap_or(0));
    let v = v.get(..dims).unwrap_or_default();
    let out = out.split_at_mut(n).0;
    let (blocks, tail) = out.as_chunks_mut::<16>();
    for (b, block) in blocks.iter_mut().enumerate() {
        let mut acc = [0.0f32; 16];
        for (j, &x) in v.iter().enumerate() {
            let at = j * k + 16 * b;
            let Some(col) = cols
                .get(at..at + 16)
                .and_then(|c| <&[f32; 16]>::try_from(c).ok())
            else {
                break;
            };
            for (a, &c) in acc.iter_mut().zip(col) {
                if L2 {
                    let t = x - c;
                    *a += t * t;
                } else {
                    *a -= x * c;
                }
            }
        }
        *block = acc;
    }
    let first = 16 * blocks.len();
    for (i, o) in tail.iter_mut().enumerate() {
        *o = v
            .iter()
            .enumerate()
            .map(|(j, &x)| {
                let c = cols.get(j * k + first + i).copied().unwrap_or(0.0);
                if L2 {
                    (x - c) * (x - c)
                } else {
                    -x * c
                }
            })
            .sum();
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
    column_distances::<true>(v, cols, k, dim, out);
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
