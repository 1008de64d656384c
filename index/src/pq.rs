//! Product quantization: `m` sub-quantizers of 256 centroids over contiguous slices of
//! the vector, 8-bit codes, and asymmetric distance (ADC) tables per query.
//!
//! Sub-vector `j` covers dimensions `[bounds[j], bounds[j + 1])`; the slices differ in
//! width by at most one, so any dimension works with any `m <= dim`.

use rayon::prelude::*;

use crate::distance::Metric;
use crate::kmeans::{self, KMeansParams, Transposed};

/// Centroids per sub-quantizer (one byte per code).
pub const KSUB: usize = 256;

/// Lloyd iterations per sub-quantizer.
const PQ_ITERS: usize = 15;

/// A trained product quantizer.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantizer {
    dim: usize,
    m: usize,
    /// For sub-quantizer `j`, `KSUB × width(j)` values, concatenated over `j`.
    centroids: Vec<f32>,
    /// The same values dimension-major within each sub-quantizer (`width(j) × KSUB`),
    /// so an ADC table row is built with loops over contiguous centroid values.
    cols: Vec<f32>,
    /// Start of each sub-vector, and `dim` (`m + 1` entries).
    bounds: Vec<usize>,
}

/// A good default number of sub-quantizers (bytes per code) for `dim`: one byte per two
/// dimensions up to 64 dimensions, then one per four, and never fewer than 32 bytes
/// above that (at least 1, at most `dim`).
///
/// Measured with `strata bench --pq-m` (recall@10 of the graph walk plus rerank, same
/// ef): GloVe-50 needs 25 bytes — 13 bytes halved the precision of the walk and cost
/// more in `ef` than it saved; SIFT-128 is faster at equal recall with 32 bytes than with
/// 64 (half the table lookups per distance) and loses recall with 16.
pub fn default_m(dim: usize) -> usize {
    let m = if dim <= 64 {
        dim.div_ceil(2)
    } else {
        (dim / 4).max(32)
    };
    m.clamp(1, dim.max(1))
}

impl ProductQuantizer {
    /// Trains on `data` (rows of `dim`); `sample` rows at most per sub-quantizer.
    pub fn train(data: &[f32], dim: usize, m: usize, sample: usize, seed: u64) -> Self {
        let m = m.clamp(1, dim.max(1));
        let n = data.len() / dim.max(1);
        let bounds = bounds(dim, m);
        let centroids: Vec<Vec<f32>> = (0..m)
            .into_par_iter()
            .map(|j| {
                let (a, b) = (bounds[j], bounds[j + 1]);
                let sub: Vec<f32> = (0..n)
                    .flat_map(|r| data[r * dim + a..r * dim + b].iter().copied())
                    .collect();
                let mut p = KMeansParams::new(KSUB, seed.wrapping_add(j as u64));
                p.sample = sample;
                // PERF: sub-quantizers of a few dimensions converge early; 15 Lloyd
                // iterations stay within 1 % of faiss's 25 (tests/it/pq_reference.rs)
                // and take a fifth off a GloVe segment build.
                p.iters = PQ_ITERS;
                kmeans::train(&sub, b - a, &p).centroids
            })
            .collect();
        Self::assemble(dim, m, centroids.concat())
    }

    /// Rebuilds a quantizer from stored centroids (as returned by [`Self::centroids`]).
    pub fn from_parts(dim: usize, m: usize, centroids: Vec<f32>) -> Option<Self> {
        (m >= 1 && m <= dim && centroids.len() == KSUB * dim)
            .then(|| Self::assemble(dim, m, centroids))
    }

    fn assemble(dim: usize, m: usize, centroids: Vec<f32>) -> Self {
        let bounds = bounds(dim, m);
        let mut cols = vec![0.0; centroids.len()];
        for j in 0..m {
            let (a, e) = (bounds[j], bounds[j + 1]);
            let w = e - a;
            let (src, dst) = (
                &centroids[KSUB * a..KSUB * e],
                &mut cols[KSUB * a..KSUB * e],
            );
            for c in 0..KSUB {
                for d in 0..w {
                    dst[d * KSUB + c] = src[c * w + d];
                }
            }
        }
        ProductQuantizer {
            dim,
            m,
            centroids,
            cols,
            bounds,
        }
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes per code.
    pub fn m(&self) -> usize {
        self.m
    }

    /// All centroids (`KSUB × dim` values in sub-quantizer order).
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    fn sub(&self, j: usize) -> (std::ops::Range<usize>, &[f32]) {
        let (a, e) = (self.bounds[j], self.bounds[j + 1]);
        (a..e, &self.centroids[KSUB * a..KSUB * e])
    }

    /// The code of `v` (`m` bytes) into `out`.
    pub fn encode_into(&self, v: &[f32], out: &mut [u8]) {
        for (j, o) in out.iter_mut().enumerate().take(self.m) {
            let (r, c) = self.sub(j);
            *o = crate::kmeans::nearest_in(c, r.len(), &v[r]) as u8;
        }
    }

    /// Codes of all rows of `data`, `m` bytes each, in parallel.
    pub fn encode_all(&self, data: &[f32]) -> Vec<u8> {
        let b = bounds(self.dim, self.m);
        let subs: Vec<Transposed> = (0..self.m)
            .map(|j| Transposed::new(self.sub(j).1, b[j + 1] - b[j]))
            .collect();
        let mut codes = vec![0u8; data.len() / self.dim.max(1) * self.m];
        codes
            .par_chunks_mut(self.m)
            .zip(data.par_chunks(self.dim))
            .for_each_init(Vec::new, |scratch, (c, v)| {
                for (j, o) in c.iter_mut().enumerate() {
                    *o = subs[j].nearest(&v[b[j]..b[j + 1]], scratch).0 as u8;
                }
            });
        codes
    }

    /// The vector a code stands for.
    pub fn decode(&self, code: &[u8]) -> Vec<f32> {
        let mut out = vec![0.0; self.dim];
        for (j, &c) in code.iter().enumerate().take(self.m) {
            let (r, cents) = self.sub(j);
            let w = r.len();
            out[r].copy_from_slice(&cents[c as usize * w..(c as usize + 1) * w]);
        }
        out
    }

    /// The ADC table of `query` for `metric`: `m × KSUB` partial distances whose sum over
    /// a code's bytes is the distance from the query to the decoded vector.
    pub fn adc_table(&self, query: &[f32], metric: Metric) -> AdcTable {
        let mut t = vec![0.0f32; self.m * KSUB];
        for (j, out) in t.chunks_exact_mut(KSUB).enumerate() {
            let (a, e) = (self.bounds[j], self.bounds[j + 1]);
            let cols = &self.cols[KSUB * a..KSUB * e];
            for (&q, col) in query[a..e].iter().zip(cols.chunks_exact(KSUB)) {
                match metric {
                    Metric::L2 => out
                        .iter_mut()
                        .zip(col)
                        .for_each(|(o, &c)| *o += (q - c) * (q - c)),
                    Metric::InnerProduct | Metric::Cosine => {
                        out.iter_mut().zip(col).for_each(|(o, &c)| *o -= q * c)
                    }
                }
            }
        }
        let offset = if metric == Metric::Cosine { 1.0 } else { 0.0 };
        AdcTable {
            table: t,
            m: self.m,
            offset,
        }
    }
}

/// Per-query lookup table for asymmetric distances.
#[derive(Debug, Clone)]
pub struct AdcTable {
    table: Vec<f32>,
    m: usize,
    offset: f32,
}

impl AdcTable {
    /// Distance from the query to the vector `code` stands for.
    ///
    /// PERF: four independent accumulators over fixed-size table blocks: the lookups of
    /// one code do not wait on each other, and the block size is known, so no bounds
    /// check remains in the loop. This is the inner loop of every graph search.
    #[inline]
    pub fn distance(&self, code: &[u8]) -> f32 {
        let code = &code[..self.m.min(code.len())];
        let mut acc = [0.0f32; 4];
        let blocks = self.table.chunks_exact(4 * KSUB);
        let codes = code.chunks_exact(4);
        let (tail_codes, tail_start) = (codes.remainder(), code.len() - code.len() % 4);
        for (block, c) in blocks.zip(codes) {
            let Ok(block) = <&[f32; 4 * KSUB]>::try_from(block) else {
                continue;
            };
            acc[0] += block[c[0] as usize];
            acc[1] += block[KSUB + c[1] as usize];
            acc[2] += block[2 * KSUB + c[2] as usize];
            acc[3] += block[3 * KSUB + c[3] as usize];
        }
        for (k, &c) in tail_codes.iter().enumerate() {
            if let Some(v) = self.table.get((tail_start + k) * KSUB + c as usize) {
                acc[k] += v;
            }
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3]) + self.offset
    }
}

/// Start of each sub-vector plus `dim` at the end (`m + 1` entries).
fn bounds(dim: usize, m: usize) -> Vec<usize> {
    (0..=m).map(|j| j * dim / m).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data(n: usize, dim: usize) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    #[test]
    fn adc_distance_equals_distance_to_the_decoded_vector() {
        let dim = 18;
        let d = data(3000, dim);
        let pq = ProductQuantizer::train(&d, dim, 5, 3000, 7);
        assert_eq!(pq.m(), 5);
        let codes = pq.encode_all(&d);
        let q: Vec<f32> = data(1, dim);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let t = pq.adc_table(&q, metric);
            for code in codes.chunks_exact(5).take(200) {
                let want = metric.distance(&q, &pq.decode(code));
                let got = t.distance(code);
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{metric:?}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn batch_encoding_equals_one_by_one_encoding() {
        let dim = 10;
        let d = data(2000, dim);
        let pq = ProductQuantizer::train(&d, dim, 3, 2000, 5);
        let all = pq.encode_all(&d);
        let mut one = vec![0u8; 3];
        for (v, c) in d.chunks_exact(dim).zip(all.chunks_exact(3)) {
            pq.encode_into(v, &mut one);
            assert_eq!(&one[..], c);
        }
    }

    #[test]
    fn encoding_picks_the_nearest_centroid_and_reduces_error() {
        let dim = 16;
        let d = data(4000, dim);
        let pq = ProductQuantizer::train(&d, dim, 4, 4000, 1);
        let codes = pq.encode_all(&d);
        let err: f64 = d
            .chunks_exact(dim)
            .zip(codes.chunks_exact(4))
            .map(|(v, c)| crate::distance::scalar::l2(v, &pq.decode(c)) as f64)
            .sum::<f64>()
            / 4000.0;
        // Uniform data in [-1, 1): variance 1/3 per dimension, 16/3 in all.
        assert!(err < 0.5 * 16.0 / 3.0, "quantization error {err}");
        let round = ProductQuantizer::from_parts(dim, 4, pq.centroids().to_vec()).unwrap();
        assert_eq!(round, pq);
    }
}
