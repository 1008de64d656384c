//! AVX-512F kernels. The tail shorter than 16 lanes uses a masked load, so no scalar
//! loop is needed.
//!
//! # Safety
//! The `unsafe fn`s require AVX-512F; the safe wrappers are only installed by
//! [`super::available`] after `is_x86_feature_detected!("avx512f")`. Full loads stay
//! within `min(a.len(), b.len())`; the tail load is masked to the remaining lanes, and
//! masked-off lanes are not accessed.

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
