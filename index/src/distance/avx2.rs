//! AVX2 + FMA kernels.
//!
//! # Safety
//! The `unsafe fn`s require AVX2 and FMA; the safe wrappers are only installed by
//! [`super::available`] after `is_x86_feature_detected!` confirmed both. Loads are
//! unaligned (`loadu`) and stay within `min(a.len(), b.len())`.

#![deny(clippy::indexing_slicing)]

use std::arch::x86_64::*;

/// Squared L2 (caller guarantees AVX2+FMA were detected).
pub fn l2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: installed only after run-time detection of avx2 and fma.
    unsafe { l2_impl(a, b) }
}

/// Dot product (caller guarantees AVX2+FMA were detected).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: installed only after run-time detection of avx2 and fma.
    unsafe { dot_impl(a, b) }
}

/// Squared L2 from `q` to each row of `block` (rows of `dim`) into `out`.
pub fn l2_many(q: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    // SAFETY: installed only after run-time detection of avx2 and fma.
    unsafe { many::<true>(q, block, dim, out) }
}

/// Dot product of `q` with each row of `block` (rows of `dim`) into `out`.
pub fn dot_many(q: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    // SAFETY: installed only after run-time detection of avx2 and fma.
    unsafe { many::<false>(q, block, dim, out) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn many<const L2: bool>(q: &[f32], block: &[f32], dim: usize, out: &mut [f32]) {
    if dim == 0 {
        return;
    }
    for (o, row) in out.iter_mut().zip(block.chunks_exact(dim)) {
        *o = if L2 {
            l2_impl(q, row)
        } else {
            dot_impl(q, row)
        };
    }
}

#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn l2_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads below): i + 8 <= n for every load, so reads stay in bounds.
    while i + 32 <= n {
        for (j, a) in acc.iter_mut().enumerate() {
            let d = _mm256_sub_ps(
                _mm256_loadu_ps(pa.add(i + 8 * j)),
                _mm256_loadu_ps(pb.add(i + 8 * j)),
            );
            *a = _mm256_fmadd_ps(d, d, *a);
        }
        i += 32;
    }
    while i + 8 <= n {
        let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
        acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum(sum);
    while i < n {
        let d = *pa.add(i) - *pb.add(i);
        s += d * d;
        i += 1;
    }
    s
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (all loads below): i + 8 <= n for every load, so reads stay in bounds.
    while i + 32 <= n {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8 * j)),
                _mm256_loadu_ps(pb.add(i + 8 * j)),
                *a,
            );
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i)),
            _mm256_loadu_ps(pb.add(i)),
            acc[0],
        );
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum(sum);
    while i < n {
        s += *pa.add(i) * *pb.add(i);
        i += 1;
    }
    s
}

/// [`super::scalar::sq8_l2`] with AVX2 and FMA (installed only after run-time
/// detection).
pub fn sq8_l2(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    // SAFETY: installed only after run-time detection of avx2,fma.
    unsafe { sq8_l2_impl(a, s, c) }
}

/// PERF: `a − s·c` in one fused step per eight values, two accumulators, the tail as
/// one overlapping block whose lanes already counted are zeroed in `a` and `s`
/// (`cargo bench -p strata-index -- sq8`: the portable loop compiled for AVX2 ran no
/// faster than the portable kernels). Rows under eight values use the portable loop.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn sq8_l2_impl(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    let n = a.len().min(s.len()).min(c.len());
    if n < 8 {
        return super::scalar::sq8_l2(a, s, c);
    }
    let (pa, ps, pc) = (a.as_ptr(), s.as_ptr(), c.as_ptr());
    // SAFETY: every block starts at i ≤ n − 8, so its eight values of each slice are in
    // bounds; zeroed lanes of `a` and `s` give d = 0.
    blocks_of_8(n, |i, keep, acc| {
        let x = bytes_to_ps(pc, i);
        let sa = _mm256_and_ps(keep, _mm256_loadu_ps(ps.add(i)));
        let d = _mm256_fnmadd_ps(sa, x, _mm256_and_ps(keep, _mm256_loadu_ps(pa.add(i))));
        _mm256_fmadd_ps(d, d, acc)
    })
}

/// [`super::scalar::sq8_dot`] with AVX2 and FMA (installed only after run-time
/// detection).
pub fn sq8_dot(u: &[f32], c: &[u8]) -> f32 {
    // SAFETY: installed only after run-time detection of avx2,fma.
    unsafe { sq8_dot_impl(u, c) }
}

/// PERF: as [`sq8_l2_impl`].
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn sq8_dot_impl(u: &[f32], c: &[u8]) -> f32 {
    let n = u.len().min(c.len());
    if n < 8 {
        return super::scalar::sq8_dot(u, c);
    }
    let (pu, pc) = (u.as_ptr(), c.as_ptr());
    // SAFETY: as in `sq8_l2_impl`; zeroed lanes of `u` add 0.
    blocks_of_8(n, |i, keep, acc| {
        let x = _mm256_and_ps(keep, _mm256_loadu_ps(pu.add(i)));
        _mm256_fmadd_ps(x, bytes_to_ps(pc, i), acc)
    })
}

/// Eight bytes from `c + at` widened to `f32` lanes.
///
/// # Safety
/// AVX2, and `c + at .. c + at + 8` readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn bytes_to_ps(c: *const u8, at: usize) -> __m256 {
    // SAFETY: 8 readable bytes (the caller's contract).
    let b = _mm_loadl_epi64(c.add(at) as *const __m128i);
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b))
}

/// All lanes set from `counted` on (`counted` in 0..8): the lanes of a last,
/// overlapping block of eight that the block before it did not count.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn lanes_from(counted: usize) -> __m256 {
    _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(counted as i32 - 1),
    ))
}

/// Runs `step(at, keep, acc)` over `n` (≥ 8) values in blocks of eight, on two
/// accumulators, and sums them. A last partial block is the eight values ending at `n`,
/// `keep` set only on its lanes not yet counted (every byte load reads eight bytes
/// inside the row, and no scalar loop is needed); `keep` is all ones elsewhere.
///
/// # Safety
/// AVX2 and FMA, and `step` safe to call for every block start `at ≤ n − 8`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn blocks_of_8(n: usize, step: impl Fn(usize, __m256, __m256) -> __m256) -> f32 {
    let all = lanes_from(0);
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        a0 = step(i, all, a0);
        a1 = step(i + 8, all, a1);
        i += 16;
    }
    if i + 8 <= n {
        a0 = step(i, all, a0);
        i += 8;
    }
    if i < n {
        // Lanes n − 8 .. i were counted already.
        a1 = step(n - 8, lanes_from(8 - (n - i)), a1);
    }
    hsum(_mm256_add_ps(a0, a1))
}

/// [`super::scalar::sq8_l2_rows`] with AVX2 and FMA (installed only after run-time
/// detection).
pub fn sq8_l2_rows(
    a: &[f32],
    s: &[f32],
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
) {
    // SAFETY: installed only after run-time detection of avx2,fma.
    unsafe { sq8_l2_rows_impl(a, s, rows, width, nodes, out) }
}

/// PERF: rows of 8 to 128 values keep the query (and the steps) in registers, or at
/// worst in the stack's first cache lines, for the whole batch ([`sq8_rows_fixed`]).
#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_l2_rows_impl(
    a: &[f32],
    s: &[f32],
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
) {
    let n = a.len().min(s.len()).min(width);
    // SAFETY: avx2,fma, as this function requires; `n` values of `a` and `s`.
    if sq8_rows_in_registers::<true>(a, s, n, rows, width, nodes, out) {
        return;
    }
    // SAFETY: avx2,fma, as this function requires (the closure inherits its features).
    super::scalar::score_rows(rows, width, nodes, out, |c| unsafe { sq8_l2_impl(a, s, c) });
}

/// [`super::scalar::sq8_dot_rows`] with AVX2 and FMA (installed only after run-time
/// detection).
pub fn sq8_dot_rows(u: &[f32], rows: &[u8], width: usize, nodes: &[u32], out: &mut [f32]) {
    // SAFETY: installed only after run-time detection of avx2,fma.
    unsafe { sq8_dot_rows_impl(u, rows, width, nodes, out) }
}

/// PERF: as [`sq8_l2_rows_impl`].
#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_dot_rows_impl(u: &[f32], rows: &[u8], width: usize, nodes: &[u32], out: &mut [f32]) {
    let n = u.len().min(width);
    // SAFETY: avx2,fma, as this function requires; `n` values of `u` (the steps are not
    // read for the dot product).
    if sq8_rows_in_registers::<false>(u, u, n, rows, width, nodes, out) {
        return;
    }
    // SAFETY: as in `sq8_l2_rows_impl`.
    super::scalar::score_rows(rows, width, nodes, out, |c| unsafe { sq8_dot_impl(u, c) });
}

/// [`sq8_rows_fixed`] with the block count of rows of `n` values, when `n` is 8 to 128;
/// false (nothing scored) otherwise.
///
/// # Safety
/// AVX2 and FMA; `a` (and for L2 `s`) hold at least `n` values.
#[target_feature(enable = "avx2,fma")]
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
    if n < 8 {
        return false;
    }
    macro_rules! blocks {
        ($($c:literal)*) => {
            match n.div_ceil(8) {
                // SAFETY (every arm): 8 ≤ n ≤ 8·C, and the caller's contract.
                $($c => sq8_rows_fixed::<$c, L2>(a, s, n, rows, width, nodes, out),)*
                _ => return false,
            }
        };
    }
    blocks!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    true
}

/// The `int8` row kernels for rows of `n` (8 to `8·C`) values in `C` blocks of eight
/// (the last one the eight values ending at `n`, its lanes already counted zeroed in
/// the query's copy): the query's blocks (and, for L2, the steps') are loaded once per
/// batch, so a row costs one 8-byte load, a widening and one or two FMAs per block.
/// L2: `Σ (a − s·c)²`; dot (`L2` false, `s` unread): `Σ a·c`.
///
/// # Safety
/// AVX2 and FMA; `8 ≤ n ≤ 8·C`, and `a` (and for L2 `s`) hold at least `n` values.
#[target_feature(enable = "avx2,fma")]
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
    // Block `b` starts at 8·b, the last one at n − 8; its lanes below `counted` were
    // counted by the block before it and are zeroed in the query's copy (and the
    // steps'), so they add 0 to either sum.
    let start = |b: usize| if b + 1 == C { n - 8 } else { 8 * b };
    let (fresh, all) = (lanes_from(8 * C - n), lanes_from(0));
    let (mut av, mut sv) = ([_mm256_setzero_ps(); C], [_mm256_setzero_ps(); C]);
    for b in 0..C {
        if let (Some(x), Some(y)) = (av.get_mut(b), sv.get_mut(b)) {
            let keep = if b + 1 == C { fresh } else { all };
            // SAFETY: start(b) + 8 ≤ n values of `a` (and `s`), the caller's contract.
            *x = _mm256_and_ps(keep, _mm256_loadu_ps(a.as_ptr().add(start(b))));
            if L2 {
                *y = _mm256_and_ps(keep, _mm256_loadu_ps(s.as_ptr().add(start(b))));
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
        let mut acc = [_mm256_setzero_ps(); 2];
        for (b, (x, y)) in av.iter().zip(&sv).enumerate() {
            // SAFETY: the row holds width ≥ n bytes and start(b) + 8 ≤ n.
            let c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                pc.add(start(b)) as *const __m128i
            )));
            let [a0, a1] = &mut acc;
            let t = if b & 1 == 0 { a0 } else { a1 };
            *t = if L2 {
                // Zeroed lanes: a and s are 0 there, so d = 0.
                let d = _mm256_fnmadd_ps(*y, c, *x);
                _mm256_fmadd_ps(d, d, *t)
            } else {
                _mm256_fmadd_ps(*x, c, *t)
            };
        }
        *o = hsum(_mm256_add_ps(acc[0], acc[1]));
    }
}

/// [`super::scalar::column_distances`] compiled with `avx2,fma`.
///
/// # Safety
/// The CPU must support `avx2,fma`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn column_distances<const L2: bool>(
    v: &[f32],
    cols: &[f32],
    k: usize,
    dim: usize,
    out: &mut [f32],
) {
    super::scalar::column_distances::<L2>(v, cols, k, dim, out)
}

/// [`super::scalar::nearest_column`] compiled with `avx2,fma`.
///
/// # Safety
/// The CPU must support `avx2,fma`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn nearest_column(
    v: &[f32],
    cols: &[f32],
    k: usize,
    dim: usize,
    out: &mut [f32],
) -> (usize, f32) {
    super::scalar::nearest_column(v, cols, k, dim, out)
}
