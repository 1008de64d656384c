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

/// [`super::scalar::sq8_l2`] compiled with `avx2,fma` (installed only after run-time
/// detection).
pub fn sq8_l2(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    // SAFETY: installed only after run-time detection of avx2,fma.
    unsafe { sq8_l2_impl(a, s, c) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_l2_impl(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    super::scalar::sq8_l2(a, s, c)
}

/// [`super::scalar::sq8_dot`] compiled with `avx2,fma` (installed only after run-time
/// detection).
pub fn sq8_dot(u: &[f32], c: &[u8]) -> f32 {
    // SAFETY: installed only after run-time detection of avx2,fma.
    unsafe { sq8_dot_impl(u, c) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_dot_impl(u: &[f32], c: &[u8]) -> f32 {
    super::scalar::sq8_dot(u, c)
}

/// [`super::scalar::sq8_l2_rows`] compiled with `avx2,fma` (installed only after run-time
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

#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_l2_rows_impl(
    a: &[f32],
    s: &[f32],
    rows: &[u8],
    width: usize,
    nodes: &[u32],
    out: &mut [f32],
) {
    super::scalar::sq8_l2_rows(a, s, rows, width, nodes, out)
}

/// [`super::scalar::sq8_dot_rows`] compiled with `avx2,fma` (installed only after run-time
/// detection).
pub fn sq8_dot_rows(u: &[f32], rows: &[u8], width: usize, nodes: &[u32], out: &mut [f32]) {
    // SAFETY: installed only after run-time detection of avx2,fma.
    unsafe { sq8_dot_rows_impl(u, rows, width, nodes, out) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn sq8_dot_rows_impl(u: &[f32], rows: &[u8], width: usize, nodes: &[u32], out: &mut [f32]) {
    super::scalar::sq8_dot_rows(u, rows, width, nodes, out)
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
