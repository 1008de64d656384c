//! Distance kernels and metrics.
//!
//! Each instruction set has its own file; [`kernels`] picks the best the CPU supports at
//! run time, once. [`scalar`] is the reference every kernel is tested against.
//!
//! Distances are "smaller is nearer": squared L2 for [`Metric::L2`], `-dot` for
//! [`Metric::InnerProduct`], and `1 - dot` of unit vectors for [`Metric::Cosine`]
//! (vectors are normalised on write and queries on search).

#![deny(clippy::indexing_slicing)]

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod scalar;

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// Negative inner product (larger dot product = nearer).
    InnerProduct,
    /// One minus cosine similarity; vectors are normalised on write.
    Cosine,
}

impl Metric {
    /// Stable one-byte code used in file formats.
    pub fn code(self) -> u8 {
        match self {
            Metric::L2 => 0,
            Metric::InnerProduct => 1,
            Metric::Cosine => 2,
        }
    }

    /// The metric of a code, if valid.
    pub fn from_code(code: u8) -> Option<Metric> {
        match code {
            0 => Some(Metric::L2),
            1 => Some(Metric::InnerProduct),
            2 => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// Short lowercase name (`l2`, `ip`, `cosine`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }

    /// Distance between `a` and `b` (already normalised for cosine).
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        let k = kernels();
        match self {
            Metric::L2 => (k.l2)(a, b),
            Metric::InnerProduct => -(k.dot)(a, b),
            Metric::Cosine => 1.0 - (k.dot)(a, b),
        }
    }
}

/// A distance function over two equal-length slices.
pub type DistanceFn = fn(&[f32], &[f32]) -> f32;

/// A distance from one query to each row of a block: `(query, block, dim, out)`; fills
/// `min(out.len(), block.len() / dim)` entries of `out`.
pub type ManyFn = fn(&[f32], &[f32], usize, &mut [f32]);

/// The kernel set chosen for this CPU.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// Name of the instruction set (`avx512f`, `avx2+fma`, `portable`).
    pub name: &'static str,
    /// Squared L2.
    pub l2: DistanceFn,
    /// Dot product.
    pub dot: DistanceFn,
    /// Squared L2 to many rows.
    pub l2_many: ManyFn,
    /// Dot product with many rows.
    pub dot_many: ManyFn,
    /// Squared L2 to a row of bytes on a per-dimension scale ([`scalar::sq8_l2`]).
    pub sq8_l2: fn(&[f32], &[f32], &[u8]) -> f32,
    /// Dot product with a row of bytes ([`scalar::sq8_dot`]).
    pub sq8_dot: fn(&[f32], &[u8]) -> f32,
    /// [`Kernels::sq8_l2`] to many rows of one array ([`scalar::sq8_l2_rows`]).
    pub sq8_l2_rows: Sq8L2RowsFn,
    /// [`Kernels::sq8_dot`] with many rows of one array ([`scalar::sq8_dot_rows`]).
    pub sq8_dot_rows: Sq8DotRowsFn,
}

/// Signature of [`Kernels::sq8_l2_rows`]: grid-mapped query, steps, rows, row width,
/// nodes, one output per node.
pub type Sq8L2RowsFn = fn(&[f32], &[f32], &[u8], usize, &[u32], &mut [f32]);

/// Signature of [`Kernels::sq8_dot_rows`]: scaled query, rows, row width, nodes, one
/// output per node.
pub type Sq8DotRowsFn = fn(&[f32], &[u8], usize, &[u32], &mut [f32]);

/// The portable kernels (always available).
pub const PORTABLE: Kernels = Kernels {
    name: "portable",
    l2: scalar::l2_chunked,
    dot: scalar::dot_chunked,
    l2_many: scalar::l2_many,
    dot_many: scalar::dot_many,
    sq8_l2: scalar::sq8_l2,
    sq8_dot: scalar::sq8_dot,
    sq8_l2_rows: scalar::sq8_l2_rows,
    sq8_dot_rows: scalar::sq8_dot_rows,
};

/// Every kernel set this CPU can run, best first (for tests and benches).
pub fn available() -> Vec<Kernels> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            out.push(Kernels {
                name: "avx512f",
                l2: avx512::l2,
                dot: avx512::dot,
                l2_many: avx512::l2_many,
                dot_many: avx512::dot_many,
                sq8_l2: avx512::sq8_l2,
                sq8_dot: avx512::sq8_dot,
                sq8_l2_rows: avx512::sq8_l2_rows,
                sq8_dot_rows: avx512::sq8_dot_rows,
            });
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            out.push(Kernels {
                name: "avx2+fma",
                l2: avx2::l2,
                dot: avx2::dot,
                l2_many: avx2::l2_many,
                dot_many: avx2::dot_many,
                sq8_l2: avx2::sq8_l2,
                sq8_dot: avx2::sq8_dot,
                sq8_l2_rows: avx2::sq8_l2_rows,
                sq8_dot_rows: avx2::sq8_dot_rows,
            });
        }
    }
    out.push(PORTABLE);
    out
}

/// The environment variable that names the kernel set to use instead of the best one
/// (`avx2+fma` or `avx2`, `portable`; `avx512f`): for measuring what a CPU without the
/// best set would see. A name this CPU cannot run, or an unknown one, is ignored.
pub const KERNELS_ENV: &str = "STRATA_KERNELS";

/// The best kernels for this CPU, or those [`KERNELS_ENV`] names, chosen once.
#[inline]
pub fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| {
        let asked = std::env::var(KERNELS_ENV).ok();
        choose(&available(), asked.as_deref())
    })
}

/// The set of `sets` (best first) named `asked` (a prefix of its name up to a `+` is
/// enough: `avx2` for `avx2+fma`), else the first.
fn choose(sets: &[Kernels], asked: Option<&str>) -> Kernels {
    let named = |k: &&Kernels| {
        asked.is_some_and(|a| {
            let a = a.trim();
            k.name == a || k.name.split('+').next() == Some(a)
        })
    };
    sets.iter()
        .find(named)
        .or(sets.first())
        .copied()
        .unwrap_or(PORTABLE)
}

/// Squared L2 distance with the best kernel.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2)(a, b)
}

/// Dot product with the best kernel.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (kernels().dot)(a, b)
}

/// Distances from `v` to each of `k` centroids stored dimension-major (`cols[j * k + c]`
/// = component `j` of centroid `c`) into `out[..k]`: squared L2 when `l2`, else the
/// negated dot product (smaller is nearer for both). The same loop is compiled for
/// AVX-512 and AVX2 and picked at run time. This builds a query's PQ lookup table.
pub fn column_distances(l2: bool, v: &[f32], cols: &[f32], k: usize, dim: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above).
            return unsafe {
                if l2 {
                    avx512::column_distances::<true>(v, cols, k, dim, out)
                } else {
                    avx512::column_distances::<false>(v, cols, k, dim, out)
                }
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            return unsafe {
                if l2 {
                    avx2::column_distances::<true>(v, cols, k, dim, out)
                } else {
                    avx2::column_distances::<false>(v, cols, k, dim, out)
                }
            };
        }
    }
    if l2 {
        scalar::column_distances::<true>(v, cols, k, dim, out)
    } else {
        scalar::column_distances::<false>(v, cols, k, dim, out)
    }
}

/// The nearest of `k` centroids stored dimension-major (`cols[j * k + c]` = component
/// `j` of centroid `c`) to `v`, and its squared distance; `out` (at least `k` long) is
/// scratch. The same loop is compiled for AVX-512 and AVX2 and picked at run time (the
/// compiler vectorises it over the centroids).
pub fn nearest_column(
    v: &[f32],
    cols: &[f32],
    k: usize,
    dim: usize,
    out: &mut [f32],
) -> (usize, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above).
            return unsafe { avx512::nearest_column(v, cols, k, dim, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            return unsafe { avx2::nearest_column(v, cols, k, dim, out) };
        }
    }
    scalar::nearest_column(v, cols, k, dim, out)
}

/// Asks the CPU to start loading the cache lines of `data`'s first 128 bytes (two or
/// three lines, as they fall): a hint with no effect on results, never faults.
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    prefetch_lines(data, 128);
}

/// Asks the CPU to start loading every cache line of `data` (a whole stored vector,
/// say), including the line its first byte shares with what precedes it and the one
/// its last byte shares with what follows.
#[inline(always)]
pub fn prefetch_all<T>(data: &[T]) {
    prefetch_lines(data, usize::MAX);
}

/// The lines holding `data`'s first `limit` bytes.
#[inline(always)]
fn prefetch_lines<T>(data: &[T], limit: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        const LINE: usize = 64;
        let bytes = std::mem::size_of_val(data).min(limit);
        if bytes == 0 {
            return;
        }
        let p = data.as_ptr() as *const i8;
        // From the start of the first byte's line to the last byte's line.
        let lead = p as usize % LINE;
        let mut off = 0;
        while off < lead + bytes {
            // SAFETY: a prefetch is a hint that never faults; the address is computed
            // with wrapping arithmetic and never dereferenced.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p.wrapping_sub(lead).wrapping_add(off),
                )
            };
            off += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, limit);
}

/// Scales `v` to unit length in place; returns false (leaving it unchanged) for a zero
/// or non-finite norm.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    let inv = 1.0 / norm;
    v.iter_mut().for_each(|x| *x *= inv);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn close(a: f32, b: f32, scale: f32) -> bool {
        (a - b).abs() <= 1e-4 * scale.max(1.0)
    }

    #[test]
    fn every_kernel_matches_the_scalar_reference() {
        let seed = 0x5eed;
        println!(
            "seed {seed}; kernels: {:?}",
            available().iter().map(|k| k.name).collect::<Vec<_>>()
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for k in available() {
            for dim in (0..=70).chain([96, 100, 127, 128, 129, 200, 384, 768, 1000]) {
                for _ in 0..5 {
                    let a: Vec<f32> = (0..dim).map(|_| rng.random_range(-10.0..10.0)).collect();
                    let b: Vec<f32> = (0..dim).map(|_| rng.random_range(-10.0..10.0)).collect();
                    let (l2, d) = (scalar::l2(&a, &b), scalar::dot(&a, &b));
                    let scale = a.iter().chain(&b).map(|x| x * x).sum::<f32>();
                    assert!(close((k.l2)(&a, &b), l2, scale), "{} l2 dim {dim}", k.name);
                    assert!(close((k.dot)(&a, &b), d, scale), "{} dot dim {dim}", k.name);
                }
            }
            // Edge inputs: zeros, equal vectors, huge and tiny magnitudes.
            let z = vec![0.0f32; 37];
            assert_eq!((k.l2)(&z, &z), 0.0);
            let big = vec![1e20f32; 33];
            assert!(
                (k.l2)(&big, &z).is_infinite(),
                "{} overflows like the reference",
                k.name
            );
            let tiny = vec![1e-3f32; 40];
            let (got, want) = ((k.dot)(&tiny, &tiny), scalar::dot(&tiny, &tiny));
            assert!(
                (got - want).abs() <= 1e-5 * want,
                "{} small magnitudes",
                k.name
            );
        }
    }

    #[test]
    fn every_many_kernel_matches_the_scalar_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x3a11);
        for k in available() {
            for dim in [
                1usize, 2, 15, 16, 17, 31, 32, 33, 48, 50, 63, 64, 65, 96, 128, 200,
            ] {
                let rows = 37;
                let q: Vec<f32> = (0..dim).map(|_| rng.random_range(-3.0..3.0)).collect();
                let block: Vec<f32> = (0..dim * rows)
                    .map(|_| rng.random_range(-3.0..3.0))
                    .collect();
                let (mut l2s, mut dots) = (vec![f32::NAN; rows], vec![f32::NAN; rows]);
                (k.l2_many)(&q, &block, dim, &mut l2s);
                (k.dot_many)(&q, &block, dim, &mut dots);
                for (r, row) in block.chunks_exact(dim).enumerate() {
                    let scale = q.iter().chain(row).map(|x| x * x).sum::<f32>();
                    assert!(
                        close(l2s[r], scalar::l2(&q, row), scale),
                        "{} l2_many dim {dim} row {r}",
                        k.name
                    );
                    assert!(
                        close(dots[r], scalar::dot(&q, row), scale),
                        "{} dot_many dim {dim} row {r}",
                        k.name
                    );
                }
                // A short output fills only its own length.
                let mut short = vec![0.0f32; 3];
                (k.l2_many)(&q, &block, dim, &mut short);
                assert!(close(
                    short[2],
                    scalar::l2(&q, &block[2 * dim..3 * dim]),
                    100.0
                ));
            }
        }
    }

    #[test]
    fn nearest_column_matches_a_plain_search() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for (k, dim) in [(256usize, 4usize), (256, 3), (17, 8), (1, 1)] {
            let rows: Vec<f32> = (0..k * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut cols = vec![0.0; k * dim];
            for c in 0..k {
                for j in 0..dim {
                    cols[j * k + c] = rows[c * dim + j];
                }
            }
            for _ in 0..20 {
                let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                let want = (0..k)
                    .map(|c| (c, scalar::l2(&v, &rows[c * dim..(c + 1) * dim])))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap();
                let got = nearest_column(&v, &cols, k, dim, &mut vec![0.0; k]);
                assert!((got.1 - want.1).abs() <= 1e-5, "{got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn column_distances_match_the_definitions() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for (k, dim) in [(256usize, 4usize), (256, 2), (37, 5), (16, 1), (3, 7)] {
            let rows: Vec<f32> = (0..k * dim).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut cols = vec![0.0; k * dim];
            for c in 0..k {
                for j in 0..dim {
                    cols[j * k + c] = rows[c * dim + j];
                }
            }
            let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-2.0..2.0)).collect();
            for l2 in [true, false] {
                // One extra slot: the kernel fills exactly k entries.
                let mut out = vec![f32::NAN; k + 1];
                column_distances(l2, &v, &cols, k, dim, &mut out);
                for c in 0..k {
                    let row = &rows[c * dim..(c + 1) * dim];
                    let want = if l2 {
                        scalar::l2(&v, row)
                    } else {
                        -scalar::dot(&v, row)
                    };
                    assert!((out[c] - want).abs() <= 1e-4, "k {k} dim {dim} c {c}");
                }
                assert!(out[k].is_nan());
                let mut portable = vec![0.0; k];
                if l2 {
                    scalar::column_distances::<true>(&v, &cols, k, dim, &mut portable);
                } else {
                    scalar::column_distances::<false>(&v, &cols, k, dim, &mut portable);
                }
                assert!(portable
                    .iter()
                    .zip(&out)
                    .all(|(a, b)| (a - b).abs() <= 1e-4));
            }
        }
    }

    #[test]
    fn metrics_order_nearer_first() {
        let q = [1.0, 0.0];
        assert!(Metric::L2.distance(&q, &[1.0, 0.1]) < Metric::L2.distance(&q, &[0.0, 1.0]));
        assert!(
            Metric::InnerProduct.distance(&q, &[2.0, 0.0])
                < Metric::InnerProduct.distance(&q, &[1.0, 0.0])
        );
        assert!((Metric::Cosine.distance(&q, &q)).abs() < 1e-6);
        for m in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            assert_eq!(Metric::from_code(m.code()), Some(m));
        }
        assert_eq!(Metric::from_code(9), None);
    }

    #[test]
    fn the_environment_can_name_a_weaker_kernel_set() {
        let sets = available();
        let best = sets.first().map(|k| k.name);
        assert_eq!(Some(choose(&sets, None).name), best);
        assert_eq!(Some(choose(&sets, Some("no-such-set")).name), best);
        assert_eq!(choose(&sets, Some("portable")).name, "portable");
        if sets.iter().any(|k| k.name == "avx2+fma") {
            assert_eq!(choose(&sets, Some("avx2")).name, "avx2+fma");
            assert_eq!(choose(&sets, Some(" avx2+fma ")).name, "avx2+fma");
        }
        assert_eq!(choose(&[], Some("avx2")).name, "portable");
    }

    #[test]
    fn normalize_refuses_zero() {
        let mut z = [0.0f32; 4];
        assert!(!normalize(&mut z));
        let mut v = [3.0f32, 4.0];
        assert!(normalize(&mut v));
        assert!((v[0] - 0.6).abs() < 1e-6);
    }
}
