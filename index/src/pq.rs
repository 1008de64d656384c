//! Product quantization: `m` sub-quantizers of 256 centroids over contiguous slices of
//! the vector, 8-bit codes, and asymmetric distance (ADC) tables per query.
//!
//! Sub-vector `j` covers dimensions `[bounds[j], bounds[j + 1])`; the slices differ in
//! width by at most one, so any dimension works with any `m <= dim`.

use rayon::prelude::*;

use crate::distance::{self, Metric};
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

/// For every row of `rows` (rows of `bounds[m]` values, `m = bounds.len() - 1`) and
/// every sub-vector `j`, the nearest of sub-quantizer `j`'s `KSUB` centroids (laid out as
/// [`ProductQuantizer::centroids`]) into `codes[i * m + j]`, and its squared distance
/// into `dists[i * m + j]` when given; ties go to the lower centroid. The CPU reference
/// of the GPU's encoding kernel, in parallel.
pub fn nearest_codes(
    rows: &[f32],
    bounds: &[usize],
    centroids: &[f32],
    codes: &mut [u8],
    dists: Option<&mut [f32]>,
) {
    let m = bounds.len().saturating_sub(1);
    let dim = bounds.last().copied().unwrap_or(0);
    if m == 0 || dim == 0 {
        return;
    }
    let subs: Vec<Transposed> = (0..m)
        .map(|j| {
            let (a, e) = (bounds[j], bounds[j + 1]);
            Transposed::new(&centroids[KSUB * a..KSUB * e], e - a)
        })
        .collect();
    let one_row =
        |scratch: &mut Vec<f32>, (c, v): (&mut [u8], &[f32]), mut d: Option<&mut [f32]>| {
            for (j, o) in c.iter_mut().enumerate() {
                let (code, dist) = subs[j].nearest(&v[bounds[j]..bounds[j + 1]], scratch);
                *o = code as u8;
                if let Some(d) = d.as_deref_mut() {
                    d[j] = dist;
                }
            }
        };
    match dists {
        Some(dists) => codes
            .par_chunks_mut(m)
            .zip(rows.par_chunks(dim))
            .zip(dists.par_chunks_mut(m))
            .for_each_init(Vec::new, |scratch, ((c, v), d)| {
                one_row(scratch, (c, v), Some(d))
            }),
        None => codes
            .par_chunks_mut(m)
            .zip(rows.par_chunks(dim))
            .for_each_init(Vec::new, |scratch, cv| one_row(scratch, cv, None)),
    }
}

/// `assign(rows, bounds, centroids, codes, dists)`: the assignment step of
/// [`ProductQuantizer::train_batched`], with [`nearest_codes`]'s contract.
pub type BatchAssign<'a, E> =
    dyn FnMut(&[f32], &[usize], &[f32], &mut [u8], &mut [f32]) -> Result<(), E> + 'a;

/// The k-means parameters of sub-quantizer `j`.
fn sub_params(j: usize, sample: usize, seed: u64) -> KMeansParams {
    let mut p = KMeansParams::new(KSUB, seed.wrapping_add(j as u64));
    p.sample = sample;
    // PERF: sub-quantizers of a few dimensions converge early; 15 Lloyd iterations stay
    // within 1 % of faiss's 25 (tests/it/pq_reference.rs) and take a fifth off a GloVe
    // segment build.
    p.iters = PQ_ITERS;
    p
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
                kmeans::train(&sub, b - a, &sub_params(j, sample, seed)).centroids
            })
            .collect();
        Self::assemble(dim, m, centroids.concat())
    }

    /// [`ProductQuantizer::train`] with the assignment step of every Lloyd iteration
    /// done by `assign` for all sub-quantizers at once (one GPU launch per iteration):
    /// the same samples, initial centroids, updates and empty-cluster repairs, so with
    /// exact assignments the result equals [`ProductQuantizer::train`]'s. Returns the
    /// quantizer and the mean k-means objective of its sub-quantizers.
    ///
    /// `assign(rows, bounds, centroids, codes, dists)` receives `r` rows of `dim` values
    /// whose sub-vector `j` is row `i` of sub-quantizer `j`'s sample, and must write the
    /// nearest of its `KSUB` centroids to `codes[i * m + j]` and the squared distance to
    /// `dists[i * m + j]` — what [`ProductQuantizer::encode_all`] computes.
    pub fn train_batched<E>(
        data: &[f32],
        dim: usize,
        m: usize,
        sample: usize,
        seed: u64,
        assign: &mut BatchAssign<'_, E>,
    ) -> Result<(Self, f64), E> {
        let m = m.clamp(1, dim.max(1));
        let n = data.len() / dim.max(1);
        let bounds = bounds(dim, m);
        let mut runs: Vec<kmeans::Lloyd> = (0..m)
            .into_par_iter()
            .map(|j| {
                let (a, b) = (bounds[j], bounds[j + 1]);
                let row = |r: usize| &data[r * dim + a..r * dim + b];
                kmeans::Lloyd::start(&row, n, b - a, &sub_params(j, sample, seed))
            })
            .collect();
        let rows = runs[0].rows();
        if rows == 0 || dim == 0 {
            let pq = Self::assemble(dim, m, vec![0.0; KSUB * dim]);
            return Ok((pq, 0.0));
        }
        // Every run samples min(n, max(sample, KSUB)) rows: interleave them into one
        // matrix whose sub-vector j is run j's row.
        let mut batch = vec![0.0f32; rows * dim];
        for (j, run) in runs.iter().enumerate() {
            let (a, b) = (bounds[j], bounds[j + 1]);
            for (dst, src) in batch
                .chunks_exact_mut(dim)
                .zip(run.sample().chunks_exact(b - a))
            {
                dst[a..b].copy_from_slice(src);
            }
        }
        let (mut codes, mut dists) = (vec![0u8; rows * m], vec![0.0f32; rows * m]);
        let mut centroids = Vec::with_capacity(KSUB * dim);
        for iter in 0..=PQ_ITERS {
            centroids.clear();
            runs.iter()
                .for_each(|r| centroids.extend_from_slice(r.centroids()));
            assign(&batch, &bounds, &centroids, &mut codes, &mut dists)?;
            if iter == PQ_ITERS {
                break;
            }
            runs.par_iter_mut().enumerate().for_each(|(j, run)| {
                for (i, a) in run.assignment_mut().iter_mut().enumerate() {
                    *a = codes[i * m + j] as usize;
                }
                run.update();
            });
        }
        // The last assignment was against the final centroids: their objective.
        let mut objective = 0.0;
        let mut finished = Vec::with_capacity(KSUB * dim);
        for (j, run) in runs.into_iter().enumerate() {
            let sse: f64 = (0..rows).map(|i| dists[i * m + j] as f64).sum();
            let km = run.finish(sse);
            objective += km.objective;
            finished.extend_from_slice(&km.centroids);
        }
        Ok((Self::assemble(dim, m, finished), objective / m as f64))
    }

    /// The start of each sub-vector, and `dim` (`m + 1` entries).
    pub fn bounds(&self) -> &[usize] {
        &self.bounds
    }

    /// Rebuilds a quantizer from stored centroids (as returned by [`Self::centroids`]).
    pub fn from_parts(dim: usize, m: usize, centroids: Vec<f32>) -> Option<Self> {
        (m >= 1 && m <= dim && centroids.len() == KSUB * dim)
            .then(|| Self::assemble(dim, m, centroids))
    }

    /// A quantizer with one sub-quantizer per dimension whose centroids are the uniform
    /// grid `lo[j] + c · step[j]` (`c` in `0..256`): the 8-bit scalar codes of
    /// [`crate::sq8`] written as a PQ codebook, so that a segment stores them where PQ
    /// codes go and any reader can score them (by ADC tables, or on the grid:
    /// [`ProductQuantizer::scalar_grid`]). `None` when `lo` and `step` differ in length
    /// or are empty.
    pub fn from_grid(lo: &[f32], step: &[f32]) -> Option<Self> {
        let dim = lo.len();
        if dim == 0 || step.len() != dim {
            return None;
        }
        let centroids = lo
            .iter()
            .zip(step)
            .flat_map(|(&l, &s)| (0..KSUB).map(move |c| l + c as f32 * s))
            .collect();
        Self::from_parts(dim, dim, centroids)
    }

    /// The per-dimension grid (`lo`, `step`) when this quantizer has one sub-quantizer per
    /// dimension with evenly spaced centroids (as [`ProductQuantizer::from_grid`] writes
    /// them; each centroid within a relative 1e-5 of the grid's value), so that distances
    /// to its codes can be computed on the codes directly ([`crate::sq8::Sq8Query`]).
    /// `None` for a trained quantizer, whose centroids are not evenly spaced.
    pub fn scalar_grid(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        if self.m != self.dim {
            return None;
        }
        let mut lo = Vec::with_capacity(self.dim);
        let mut step = Vec::with_capacity(self.dim);
        for c in self.centroids.chunks_exact(KSUB) {
            let (first, last) = (*c.first()?, *c.last()?);
            let s = (last - first) / (KSUB - 1) as f32;
            if !first.is_finite() || !s.is_finite() || s < 0.0 {
                return None;
            }
            let tolerance = 1e-5 * first.abs().max(last.abs()).max(f32::MIN_POSITIVE);
            let even = c
                .iter()
                .enumerate()
                .all(|(k, &x)| (x - (first + k as f32 * s)).abs() <= tolerance);
            if !even {
                return None;
            }
            lo.push(first);
            step.push(s);
        }
        Some((lo, step))
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
        let mut codes = vec![0u8; data.len() / self.dim.max(1) * self.m];
        nearest_codes(data, &self.bounds, &self.centroids, &mut codes, None);
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
            distance::column_distances(metric == Metric::L2, &query[a..e], cols, KSUB, e - a, out);
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

// Codes usually come from a mapped segment file: no indexing that could panic.
#[deny(clippy::indexing_slicing)]
impl AdcTable {
    /// Distance from the query to the vector `code` stands for.
    ///
    /// PERF: four independent accumulators over fixed-size tables: the lookups of one
    /// code do not wait on each other, and a byte always indexes inside a 256-entry table,
    /// so no bounds check remains in the loop. This is the inner loop of every graph
    /// search.
    #[inline]
    pub fn distance(&self, code: &[u8]) -> f32 {
        let code = code.get(..self.m).unwrap_or(code);
        let (tables, _) = self.table.as_chunks::<KSUB>();
        let (quads, tail) = code.as_chunks::<4>();
        let (table_quads, _) = tables.as_chunks::<4>();
        let mut acc = [0.0f32; 4];
        let [a0, a1, a2, a3] = &mut acc;
        let at = |t: &[f32; KSUB], c: u8| t.get(usize::from(c)).copied().unwrap_or(0.0);
        for ([t0, t1, t2, t3], &[c0, c1, c2, c3]) in table_quads.iter().zip(quads) {
            *a0 += at(t0, c0);
            *a1 += at(t1, c1);
            *a2 += at(t2, c2);
            *a3 += at(t3, c3);
        }
        if !tail.is_empty() {
            let tail_tables = tables.get(4 * quads.len()..).unwrap_or_default();
            for (a, (t, &c)) in acc.iter_mut().zip(tail_tables.iter().zip(tail)) {
                *a += at(t, c);
            }
        }
        let [a0, a1, a2, a3] = acc;
        (a0 + a1) + (a2 + a3) + self.offset
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
    fn batched_training_with_exact_assignments_equals_training() {
        // Uneven sub-vector widths (10 dimensions in 4 sub-quantizers), a sample smaller
        // than the rows, and fewer rows than centroids.
        for (n, dim, m, sample) in [(3000, 10, 4, 1000), (100, 6, 3, 65_536)] {
            let d = data(n, dim);
            let want = ProductQuantizer::train(&d, dim, m, sample, 5);
            let mut calls = 0;
            let (got, objective) = ProductQuantizer::train_batched::<()>(
                &d,
                dim,
                m,
                sample,
                5,
                &mut |rows, bounds, centroids, codes, dists| {
                    calls += 1;
                    nearest_codes(rows, bounds, centroids, codes, Some(dists));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(got, want, "n {n}");
            assert_eq!(calls, PQ_ITERS + 1, "one batched assignment per iteration");
            let codes = got.encode_all(&d);
            let err: f64 = (0..n)
                .map(|r| {
                    let v = &d[r * dim..(r + 1) * dim];
                    crate::distance::l2_squared(v, &got.decode(&codes[r * m..(r + 1) * m])) as f64
                })
                .sum::<f64>()
                / n as f64
                / m as f64;
            assert!(objective > 0.0 || n <= KSUB, "objective {objective}");
            if sample >= n {
                // Trained on every row: the objective is the encoding error per sub-vector.
                assert!(
                    (objective - err).abs() <= 1e-4 * err.max(1e-9),
                    "{objective} vs {err}"
                );
            }
        }
    }

    #[test]
    fn an_assignment_error_stops_batched_training() {
        let d = data(500, 8);
        let r = ProductQuantizer::train_batched(&d, 8, 4, 500, 1, &mut |_, _, _, _, _| {
            Err("device lost")
        });
        assert_eq!(r.err(), Some("device lost"));
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

    #[test]
    fn a_grid_codebook_reads_back_as_its_grid_and_scores_like_the_grid() {
        let dim = 7;
        let lo = [-1.5f32, 0.0, 3.25, -0.001, 1e6, -2.0, 0.5];
        let step = [0.01f32, 0.0, 1.0 / 255.0, 1e-7, 3.5, 0.25, 2e-3];
        let pq = ProductQuantizer::from_grid(&lo, &step).unwrap();
        assert_eq!((pq.dim(), pq.m()), (dim, dim));
        let (glo, gstep) = pq.scalar_grid().expect("evenly spaced");
        for j in 0..dim {
            assert_eq!(glo[j], lo[j]);
            assert!((gstep[j] - step[j]).abs() <= 1e-5 * step[j].max(1e-30) + 1e-6 * lo[j].abs());
        }
        // Stored and read back (the codebook alone), it is still a grid.
        let again = ProductQuantizer::from_parts(dim, dim, pq.centroids().to_vec()).unwrap();
        assert_eq!(again.scalar_grid().map(|g| g.0), Some(lo.to_vec()));
        // Distances on the grid equal the ADC distances (up to rounding).
        let codes: Vec<u8> = (0..dim * 50).map(|i| (i * 37 % 256) as u8).collect();
        let q = data(1, dim);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let table = pq.adc_table(&q, metric);
            let grid = crate::sq8::Sq8Query::new(&q, &glo, &gstep, metric);
            for c in codes.chunks_exact(dim) {
                let (a, b) = (table.distance(c), grid.distance(c));
                assert!(
                    (a - b).abs() <= 1e-3 * (1.0 + a.abs()),
                    "{metric:?}: {a} vs {b}"
                );
            }
        }
        assert!(ProductQuantizer::from_grid(&lo, &step[..3]).is_none());
        assert!(ProductQuantizer::from_grid(&[], &[]).is_none());
    }

    #[test]
    fn trained_and_damaged_codebooks_are_not_grids() {
        let dim = 6;
        let d = data(3000, dim);
        // One trained sub-quantizer per dimension: k-means levels are not evenly spaced.
        let trained = ProductQuantizer::train(&d, dim, dim, 3000, 2);
        assert!(trained.scalar_grid().is_none());
        let fewer = ProductQuantizer::train(&d, dim, 3, 3000, 2);
        assert!(
            fewer.scalar_grid().is_none(),
            "not one sub-quantizer per dimension"
        );
        let grid = ProductQuantizer::from_grid(&[0.0; 6], &[0.5; 6]).unwrap();
        for (at, bad) in [(3usize, 9.0f32), (255, f32::NAN), (256, -1.0)] {
            let mut c = grid.centroids().to_vec();
            c[at] = bad;
            let damaged = ProductQuantizer::from_parts(dim, dim, c).unwrap();
            assert!(damaged.scalar_grid().is_none(), "centroid {at} = {bad}");
        }
        // Descending levels (a negative step) are not a grid either.
        let mut c = grid.centroids().to_vec();
        c[..KSUB].reverse();
        assert!(ProductQuantizer::from_parts(dim, dim, c)
            .unwrap()
            .scalar_grid()
            .is_none());
    }
}
