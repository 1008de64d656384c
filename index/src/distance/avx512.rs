//! AVX-512F kernels. The tail shorter than 16 lanes uses a masked load (the `int8`
//! kernels: the last sixteen values, overlapping lanes already counted and masked off
//! in the float loads), so no scalar loop is needed.
//!
//! # Safety
//! The `unsafe fn`s require AVX-512F; the safe wrappers are only installed by
//! [`super::available`] after `is_x86_feature_detected!("avx512f")`. Full loads stay
//! within `min(a.len(), b.len())`; a tail load is masked to the remaining lanes (masked-off
//! lanes are not accessed), or for the `int8` kernels' codes is the full sixteen bytes
//! ending at the row's last one (rows of at least 16 values; shorter ones use the
//! portable loop).

#![deny(clippy::indexing_slicing)]

use std::arch::x86_64::*;

/// Squared L2 (caller guarantees AVX-512F was detected).
pub fn l2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: installed only after run-time detection of avx512f.
    unsafe { l2_impl(a, b) }
}

/// Dot product (caller guarantees AVX-512F was detected).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: installed only after run-time detection of avx512f.
    unsafe { dot_impl(a, b) }
}

/// Squared L2 from `q` to each row of `block` (rows of `dim`) into `out`.
pub fn l2_many(q: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    // SAFETY: installed only after run-time detection of avx512f.
    unsafe { many::<true>(q, block, dim, out) }
}

/// Dot product of `q` with each row of `block` (rows of `dim`) into `out`.
pub fn dot_many(q: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    // SAFETY: installed only after run-time detection of avx512f.
    unsafe { many::<false>(q, block, dim, out) }
}

/// PERF: for `dim <= 128` the query stays in up to eight registers and each row costs
/// `ceil(dim / 16)` loads and FMAs plus one reduction; the chunk count is a const
/// parameter so the row loop is fully unrolled. Larger dimensions use the general kernel.
#[target_feature(enable = "avx512f")]
unsafe fn many<const L2: bool>(q: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    let rows = out.len().min(block.len().checked_div(dim).unwrap_or(0));
    if q.len() != dim || dim == 0 {
        return;
    }
    match dim.div_ceil(16) {
        1 => fixed::<1, L2>(q, block, dim, rows, out),
        2 => fixed::<2, L2>(q, block, dim, rows, out),
        3 => fixed::<3, L2>(q, block, dim, rows, out),
        4 => fixed::<4, L2>(q, block, dim, rows, out),
        5 => fixed::<5, L2>(q, block, dim, rows, out),
        6 => fixed::<6, L2>(q, block, dim, rows, out),
        7 => fixed::<7, L2>(q, block, dim, rows, out),
        8 => fixed::<8, L2>(q, block, dim, rows, out),
        _ => {
            for (r, o) in out.iter_mut().take(rows).enumerate() {
                let row = block.get(r * dim..(r + 1) * dim).unwrap_or(&[]);
                *o = if L2 {
                    l2_impl(q, row)
                } else {
                    dot_impl(q, row)
                };
            }
        }
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn fixed<const C: usize, const L2: bool>(
    q: &[f32],
    block: &[f32],
    dim: usize,
    rows: usize,
    out: &mut [f32],
) {
    let tail = dim - (C - 1) * 16;
    let last: __mmask16 = if tail >= 16 {
        0xFFFF
    } else {
        ((1u32 << tail) - 1) as __mmask16
    };
    let mask = |c: usize| if c + 1 == C { last } else { 0xFFFF };
    let mut qv = [_mm512_setzero_ps(); C];
    for (c, v) in qv.iter_mut().enumerate() {
        // SAFETY: the masked load touches only q[16c .. 16c + popcount(mask)] < dim = q.len().
        *v = _mm512_maskz_loadu_ps(mask(c), q.as_ptr().add(16 * c));
    }
    let base = block.as_ptr();
    for (r, o) in out.iter_mut().take(rows).enumerate() {
        let p = base.add(r * dim);
        // Two accumulators halve the FMA dependency chain of a row.
        let mut acc = [_mm512_setzero_ps(); 2];
        for (c, v) in qv.iter().enumerate() {
            // SAFETY: row r lies within block (r < rows = block.len() / dim); the load is
            // masked to the row's last element.
            let x = _mm512_maskz_loadu_ps(mask(c), p.add(16 * c));
            let [a0, a1] = &mut acc;
            let a = if c & 1 == 0 { a0 } else { a1 };
            *a = if L2 {
                let d = _mm512_sub_ps(x, *v);
                _mm512_fmadd_ps(d, d, *a)
            } else {
                _mm512_fmadd_ps(x, *v, *a)
            };
        }
        *o = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn l2_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (loads): i + 16 <= n for full loads; the tail load is masked to n - i lanes.
    while i + 64 <= n {
        for (j, a) in acc.iter_mut().enumerate() {
            let d = _mm512_sub_ps(
                _mm512_loadu_ps(pa.add(i + 16 * j)),
                _mm512_loadu_ps(pb.add(i + 16 * j)),
            );
            *a = _mm512_fmadd_ps(d, d, *a);
        }
        i += 64;
    }
    while i + 16 <= n {
        let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
        i += 16;
    }
    if i < n {
        let m: __mmask16 = (1u32 << (n - i)).wrapping_sub(1) as __mmask16;
        let d = _mm512_sub_ps(
            _mm512_maskz_loadu_ps(m, pa.add(i)),
            _mm512_maskz_loadu_ps(m, pb.add(i)),
        );
        acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

#[target_feature(enable = "avx512f")]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (loads): i + 16 <= n for full loads; the tail load is masked to n - i lanes.
    while i + 64 <= n {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 16 * j)),
                _mm512_loadu_ps(pb.add(i + 16 * j)),
                *a,
            );
        }
        i += 64;
    }
    while i + 16 <= n {
        acc[0] = _mm512_fmadd_ps(
            _mm512_loadu_ps(pa.add(i)),
            _mm512_loadu_ps(pb.add(i)),
            acc[0],
        );
        i += 16;
    }
    if i < n {
        let m: __mmask16 = (1u32 << (n - i)).wrapping_sub(1) as __mmask16;
        acc[1] = _mm512_fmadd_ps(
            _mm512_maskz_loadu_ps(m, pa.add(i)),
            _mm512_maskz_loadu_ps(m, pb.add(i)),
            acc[1],
        );
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}

/// [`super::scalar::sq8_l2`] with AVX-512F (installed only after run-time detection).
pub fn sq8_l2(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    // SAFETY: installed only after run-time detection of avx512f.
    unsafe { sq8_l2_impl(a, s, c) }
}

/// [`super::scalar::sq8_dot`] with AVX-512F (installed only after run-time detection).
pub fn sq8_dot(u: &[f32], c: &[u8]) -> f32 {
    // SAFETY: installed only after run-time detection of avx512f.
    unsafe { sq8_dot_impl(u, c) }
}

/// [`super::scalar::sq8_l2_rows`] with AVX-512F (installed only after run-time detection).
pub fn sq8_l2_rows(
    a: &[f32],
    s: &[f32],
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
) {
    // SAFETY: installed only after run-time detection of avx512f.
    unsafe { sq8_l2_rows_impl(a, s, rows, width, nodes, out) }
}

/// [`super::scalar::sq8_dot_rows`] with AVX-512F (installed only after run-time detection).
pub fn sq8_dot_rows(u: &[f32], rows: &[u8], width: usize, nodes: &[u32], out: &mut [f32]) {
    // SAFETY: installed only after run-time detection of avx512f.
    unsafe { sq8_dot_rows_impl(u, rows, width, nodes, out) }
}

/// PERF: one call per batch, the row kernel inlined into the loop (no call and no
/// length checks per row). Rows of 16 to 128 values keep the query (and the steps) in
/// registers for the whole batch ([`sq8_rows_fixed`]).
#[target_feature(enable = "avx512f")]
unsafe fn sq8_l2_rows_impl(
    a: &[f32],
    s: &[f32],
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
) {
    let n = a.len().min(s.len()).min(width);
    // SAFETY: avx512f, as this function requires; `n` values of `a` and `s`.
    if sq8_rows_in_registers::<true>(a, s, n, rows, width, nodes, out) {
        return;
    }
    // SAFETY: avx512f, as this function requires (the closure inherits its features).
    super::scalar::score_rows(rows, width, nodes, out, |c| unsafe { sq8_l2_impl(a, s, c) });
}

/// PERF: as [`sq8_l2_rows_impl`].
#[target_feature(enable = "avx512f")]
unsafe fn sq8_dot_rows_impl(u: &[f32], rows: &[u8], width: usize, nodes: &[u32], out: &mut [f32]) {
    let n = u.len().min(width);
    // SAFETY: avx512f, as this function requires; `n` values of `u` (the steps are not
    // read for the dot product).
    if sq8_rows_in_registers::<false>(u, u, n, rows, width, nodes, out) {
        return;
    }
    // SAFETY: as in `sq8_l2_rows_impl`.
    super::scalar::score_rows(rows, width, nodes, out, |c| unsafe { sq8_dot_impl(u, c) });
}

/// [`sq8_rows_fixed`] with the block count of rows of `n` values, when `n` is 16 to 128;
/// false (nothing scored) otherwise.
///
/// # Safety
/// AVX-512F; `a` (and for L2 `s`) hold at least `n` values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sq8_rows_in_registers<const L2: bool>(
    a: &[f32],
    s: &[f32],
    n: usize,
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
) -> bool {
    if n < 16 {
        return false;
    }
    // SAFETY (every arm): 16 ≤ n ≤ 16·C, and the caller's contract.
    match n.div_ceil(16) {
        1 => sq8_rows_fixed::<1, L2>(a, s, n, rows, width, nodes, out),
        2 => sq8_rows_fixed::<2, L2>(a, s, n, rows, width, nodes, out),
        3 => sq8_rows_fixed::<3, L2>(a, s, n, rows, width, nodes, out),
        4 => sq8_rows_fixed::<4, L2>(a, s, n, rows, width, nodes, out),
        5 => sq8_rows_fixed::<5, L2>(a, s, n, rows, width, nodes, out),
        6 => sq8_rows_fixed::<6, L2>(a, s, n, rows, width, nodes, out),
        7 => sq8_rows_fixed::<7, L2>(a, s, n, rows, width, nodes, out),
        8 => sq8_rows_fixed::<8, L2>(a, s, n, rows, width, nodes, out),
        _ => return false,
    }
    true
}

/// The `int8` row kernels for rows of `n` (16 to `16·C`) values, `C` blocks of sixteen
/// (the last one the sixteen values ending at `n`, its lanes already counted masked
/// off): the query's blocks (and, for L2, the steps') are loaded once per batch and
/// stay in registers, so a row costs one byte load, a widening and one or two FMAs
/// per block. L2: `Σ (a − s·c)²`; dot (`L2` false, `s` unread): `Σ a·c`.
///
/// # Safety
/// AVX-512F; `16 ≤ n ≤ 16·C`, and `a` (and for L2 `s`) hold at least `n` values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sq8_rows_fixed<const C: usize, const L2: bool>(
    a: &[f32],
    s: &[f32],
    n: usize,
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
) {
    // Block `b` starts at 16·b, the last one at n − 16; its lanes below `counted` were
    // counted by the block before it.
    let start = |b: usize| if b + 1 == C { n - 16 } else { 16 * b };
    let counted = 16 * C - n;
    let mask = |b: usize| -> __mmask16 {
        if b + 1 == C {
            !((1u32 << counted) - 1) as __mmask16
        } else {
            0xFFFF
        }
    };
    let (mut av, mut sv) = ([_mm512_setzero_ps(); C], [_mm512_setzero_ps(); C]);
    for b in 0..C {
        if let (Some(x), Some(y)) = (av.get_mut(b), sv.get_mut(b)) {
            // SAFETY: start(b) + 16 ≤ n values of `a` (and `s`), the caller's contract.
            *x = _mm512_maskz_loadu_ps(mask(b), a.as_ptr().add(start(b)));
            if L2 {
                *y = _mm512_maskz_loadu_ps(mask(b), s.as_ptr().add(start(b)));
            }
        }
    }
    for (o, &node) in out.iter_mut().zip(nodes) {
        let Some(row) = super::scalar::row_of(rows, width, node) else {
            *o = f32::INFINITY;
            continue;
        };
        let pc = row.as_ptr();
        // Two accumulators halve a row's FMA dependency chain.
        let mut acc = [_mm512_setzero_ps(); 2];
        for (b, (x, y)) in av.iter().zip(&sv).enumerate() {
            // SAFETY: the row holds width ≥ n bytes and start(b) + 16 ≤ n.
            let c = bytes_to_ps(pc, start(b));
            let [a0, a1] = &mut acc;
            let t = if b & 1 == 0 { a0 } else { a1 };
            *t = if L2 {
                // Masked lanes: a and s are 0 there, so d = 0.
                let d = _mm512_fnmadd_ps(*y, c, *x);
                _mm512_fmadd_ps(d, d, *t)
            } else {
                _mm512_fmadd_ps(*x, c, *t)
            };
        }
        *o = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
    }
}

/// Sixteen bytes from `c + at` widened to `f32` lanes.
///
/// # Safety
/// AVX-512F, and `c + at .. c + at + 16` readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn bytes_to_ps(c: *const u8, at: usize) -> __m512 {
    // SAFETY: 16 readable bytes (the caller's contract).
    let b = _mm_loadu_si128(c.add(at) as *const __m128i);
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b))
}

/// Runs `step(at, lanes, acc)` over `n` (≥ 16) values in blocks of sixteen, on two
/// accumulators, and sums them. A last partial block is the sixteen values ending at
/// `n`, with only its lanes not yet counted set in `lanes` (so every byte load reads
/// sixteen bytes inside the row, and no scalar loop is needed).
///
/// # Safety
/// AVX-512F, and `step` safe to call for every block start `at ≤ n − 16`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn blocks_of_16(n: usize, step: impl Fn(usize, __mmask16, __m512) -> __m512) -> f32 {
    let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    while i + 32 <= n {
        a0 = step(i, 0xFFFF, a0);
        a1 = step(i + 16, 0xFFFF, a1);
        i += 32;
    }
    if i + 16 <= n {
        a0 = step(i, 0xFFFF, a0);
        i += 16;
    }
    if i < n {
        // Lanes n - 16 .. i were counted already.
        let counted = 16 - (n - i);
        a1 = step(n - 16, !((1u32 << counted) - 1) as __mmask16, a1);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(a0, a1))
}

/// PERF: `a − s·c` in one fused step per sixteen values, two accumulators in registers,
/// the tail as one overlapping masked block, a tree reduction
/// (`cargo bench -p strata-index -- sq8`). Rows under sixteen values use the portable
/// loop.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sq8_l2_impl(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    let n = a.len().min(s.len()).min(c.len());
    if n < 16 {
        return super::scalar::sq8_l2(a, s, c);
    }
    let (pa, ps, pc) = (a.as_ptr(), s.as_ptr(), c.as_ptr());
    // SAFETY: every block starts at i ≤ n − 16, so its sixteen values of each slice are
    // in bounds; masked-off lanes load as 0 in `a` and `s` and add 0.
    blocks_of_16(n, |i, m, acc| {
        let x = bytes_to_ps(pc, i);
        let sa = _mm512_maskz_loadu_ps(m, ps.add(i));
        let d = _mm512_fnmadd_ps(sa, x, _mm512_maskz_loadu_ps(m, pa.add(i)));
        _mm512_fmadd_ps(d, d, acc)
    })
}

/// PERF: as [`sq8_l2_impl`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sq8_dot_impl(u: &[f32], c: &[u8]) -> f32 {
    let n = u.len().min(c.len());
    if n < 16 {
        return super::scalar::sq8_dot(u, c);
    }
    let (pu, pc) = (u.as_ptr(), c.as_ptr());
    // SAFETY: as in `sq8_l2_impl`; masked-off lanes of `u` are 0.
    blocks_of_16(n, |i, m, acc| {
        _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pu.add(i)), bytes_to_ps(pc, i), acc)
    })
}

/// [`super::scalar::column_distances`] compiled with `avx512f`.
///
/// # Safety
/// The CPU must support `avx512f`.
#[target_feature(enable = "avx512f")]
pub unsafe fn column_distances<const L2: bool>(
    v: &[f32],
    cols: &[f32],
    k: usize,
    dim: usize,
    out: &mut [f32],
) {
    super::scalar::column_distances::<L2>(v, cols, k, dim, out)
}

/// [`super::scalar::nearest_column`] compiled with `avx512f`.
///
/// # Safety
/// The CPU must support `avx512f`.
#[target_feature(enable = "avx512f")]
pub unsafe fn nearest_column(
    v: &[f32],
    cols: &[f32],
    k: usize,
    dim: usize,
    out: &mut [f32],
) -> (usize, f32) {
    super::scalar::nearest_column(v, cols, k, dim, out)
}
