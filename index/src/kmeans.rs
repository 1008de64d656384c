//! k-means: k-means++ initialisation on a seeded sample, Lloyd iterations in parallel,
//! and empty-cluster repair by splitting the largest cluster.

use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::distance::l2_squared;

/// Parameters of a k-means run.
#[derive(Debug, Clone)]
pub struct KMeansParams {
    /// Number of centroids.
    pub k: usize,
    /// Lloyd iterations.
    pub iters: usize,
    /// Rows sampled for training (all rows when fewer).
    pub sample: usize,
    /// Seed of the sample and the initialisation.
    pub seed: u64,
}

impl KMeansParams {
    /// `k` centroids, 25 iterations, a sample of 256 rows per centroid.
    pub fn new(k: usize, seed: u64) -> Self {
        KMeansParams {
            k,
            iters: 25,
            sample: 256 * k,
            seed,
        }
    }
}

/// Trained centroids.
#[derive(Debug, Clone)]
pub struct KMeans {
    /// `k × dim` values, row-major.
    pub centroids: Vec<f32>,
    /// Dimension.
    pub dim: usize,
    /// Mean squared distance of the training sample to its centroid.
    pub objective: f64,
}

impl KMeans {
    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.centroids.len() / self.dim.max(1)
    }

    /// The centroid nearest to `v` and its squared distance.
    pub fn nearest(&self, v: &[f32]) -> (usize, f32) {
        nearest(&self.centroids, self.dim, v)
    }
}

/// Index of the centroid (rows of `dim` in `centroids`) nearest to `v`.
pub fn nearest_in(centroids: &[f32], dim: usize, v: &[f32]) -> usize {
    nearest(centroids, dim, v).0
}

/// Centroids laid out dimension-major for nearest-centroid queries in low dimension:
/// the distances to all centroids are accumulated one dimension at a time, a loop over
/// contiguous centroid values that the compiler vectorises.
///
/// PERF: product quantization asks "which of 256 centroids of dimension 2 to 8 is
/// nearest" millions of times; one distance-kernel call per centroid would spend most of
/// its time in call overhead.
#[derive(Debug, Clone)]
pub struct Transposed {
    dim: usize,
    k: usize,
    /// `cols[j * k + c]` = component `j` of centroid `c`.
    cols: Vec<f32>,
}

impl Transposed {
    /// Transposes `centroids` (rows of `dim`).
    pub fn new(centroids: &[f32], dim: usize) -> Self {
        let k = centroids.len().checked_div(dim).unwrap_or(0);
        let mut cols = vec![0.0; k * dim];
        for (c, row) in centroids.chunks_exact(dim.max(1)).enumerate() {
            for (j, &x) in row.iter().enumerate() {
                cols[j * k + c] = x;
            }
        }
        Transposed { dim, k, cols }
    }

    /// The nearest centroid to `v` and its squared distance; `scratch` is reused.
    pub fn nearest(&self, v: &[f32], scratch: &mut Vec<f32>) -> (usize, f32) {
        scratch.resize(self.k, 0.0);
        crate::distance::nearest_column(v, &self.cols, self.k, self.dim, scratch)
    }
}

fn nearest(centroids: &[f32], dim: usize, v: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (i, c) in centroids.chunks_exact(dim).enumerate() {
        let d = l2_squared(v, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// Trains `p.k` centroids on `data` (rows of `dim`). With fewer rows than `k`, the
/// surplus centroids duplicate rows (a code book still has `k` entries).
pub fn train(data: &[f32], dim: usize, p: &KMeansParams) -> KMeans {
    let n = data.len() / dim.max(1);
    let row = |r: usize| &data[r * dim..(r + 1) * dim];
    let mut l = Lloyd::start(&row, n, dim, p);
    if l.is_empty() {
        return l.finish(0.0);
    }
    for _ in 0..p.iters.max(1) {
        assign_all(&l.sample, dim, &l.centroids, &mut l.assign);
        l.update();
    }
    // The objective of the centroids returned, not of the last assignment step.
    let sse = assign_all(&l.sample, dim, &l.centroids, &mut l.assign);
    l.finish(sse)
}

/// One k-means run in progress, for callers that assign rows to centroids themselves
/// (several runs batched into one call of a GPU kernel): [`Lloyd::start`] samples and
/// initialises exactly as [`train`] does, then each iteration fills
/// [`Lloyd::assignment_mut`] and calls [`Lloyd::update`]. With the same assignments the
/// centroids are those [`train`] returns.
#[derive(Debug)]
pub struct Lloyd {
    dim: usize,
    k: usize,
    sample: Vec<f32>,
    centroids: Vec<f32>,
    assign: Vec<usize>,
    rng: rand::rngs::StdRng,
}

impl Lloyd {
    /// Samples up to `p.sample` (at least `p.k`) of the `n` rows `row(0..n)` (each of
    /// `dim` values) and places the first centroids by k-means++.
    pub fn start<'a>(
        row: &dyn Fn(usize) -> &'a [f32],
        n: usize,
        dim: usize,
        p: &KMeansParams,
    ) -> Lloyd {
        let mut rng = rand::rngs::StdRng::seed_from_u64(p.seed);
        let sample = sample_rows(row, dim, n, p.sample.max(p.k), &mut rng);
        let m = sample.len() / dim.max(1);
        let centroids = if m == 0 || dim == 0 {
            vec![0.0; p.k * dim]
        } else {
            init_plus_plus(&sample, dim, p.k, &mut rng)
        };
        Lloyd {
            dim,
            k: p.k,
            sample,
            centroids,
            assign: vec![0; m],
            rng,
        }
    }

    /// True when there is nothing to train on (no rows, or dimension 0).
    pub fn is_empty(&self) -> bool {
        self.assign.is_empty() || self.dim == 0
    }

    /// The sampled rows (`rows() × dim` values).
    pub fn sample(&self) -> &[f32] {
        &self.sample
    }

    /// Number of sampled rows.
    pub fn rows(&self) -> usize {
        self.assign.len()
    }

    /// The current centroids (`k × dim` values).
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// The centroid of each sampled row, to be filled before [`Lloyd::update`].
    pub fn assignment_mut(&mut self) -> &mut [usize] {
        &mut self.assign
    }

    /// Moves every centroid to the mean of its rows and repairs empty clusters.
    pub fn update(&mut self) {
        update(
            &self.sample,
            self.dim,
            &self.assign,
            &mut self.centroids,
            &mut self.rng,
        );
    }

    /// The trained centroids; `sse` is the summed squared error of the sample against
    /// the final centroids.
    pub fn finish(self, sse: f64) -> KMeans {
        let m = self.rows().max(1);
        KMeans {
            centroids: self.centroids,
            dim: self.dim,
            objective: if self.k == 0 { 0.0 } else { sse / m as f64 },
        }
    }
}

fn sample_rows<'a>(
    row: &dyn Fn(usize) -> &'a [f32],
    dim: usize,
    n: usize,
    want: usize,
    rng: &mut impl Rng,
) -> Vec<f32> {
    if n <= want {
        return (0..n).flat_map(|r| row(r)[..dim].iter().copied()).collect();
    }
    // Partial Fisher-Yates over row indices: a uniform sample without replacement.
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..want {
        let j = rng.random_range(i..n);
        idx.swap(i, j);
    }
    let mut rows = idx[..want].to_vec();
    rows.sort_unstable();
    rows.iter()
        .flat_map(|&r| row(r)[..dim].iter().copied())
        .collect()
}

/// Squared L2 inlined: for the short sub-vectors of PQ a kernel call costs more than
/// the arithmetic.
fn small_l2(a: &[f32], b: &[f32]) -> f32 {
    if a.len() > 16 {
        return l2_squared(a, b);
    }
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn init_plus_plus(sample: &[f32], dim: usize, k: usize, rng: &mut impl Rng) -> Vec<f32> {
    let m = sample.len() / dim;
    let row = |i: usize| &sample[i * dim..(i + 1) * dim];
    let mut centroids = Vec::with_capacity(k * dim);
    centroids.extend_from_slice(row(rng.random_range(0..m)));
    let mut d2: Vec<f32> = (0..m)
        .into_par_iter()
        .map(|i| small_l2(row(i), &centroids[..dim]))
        .collect();
    for _ in 1..k {
        let total: f64 = d2.iter().map(|&x| x as f64).sum();
        let pick = if total > 0.0 {
            let mut t = rng.random::<f64>() * total;
            let mut chosen = m - 1;
            for (i, &x) in d2.iter().enumerate() {
                t -= x as f64;
                if t <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            rng.random_range(0..m)
        };
        let c = row(pick).to_vec();
        d2.par_iter_mut()
            .enumerate()
            .for_each(|(i, d)| *d = d.min(small_l2(row(i), &c)));
        centroids.extend_from_slice(&c);
    }
    centroids
}

/// Assigns every sample row to its nearest centroid; returns the summed squared error.
fn assign_all(sample: &[f32], dim: usize, centroids: &[f32], assign: &mut [usize]) -> f64 {
    if dim > 16 {
        return assign
            .par_iter_mut()
            .enumerate()
            .map(|(i, a)| {
                let (c, d) = nearest(centroids, dim, &sample[i * dim..(i + 1) * dim]);
                *a = c;
                d as f64
            })
            .sum();
    }
    let t = Transposed::new(centroids, dim);
    assign
        .par_iter_mut()
        .enumerate()
        .map_init(Vec::new, |scratch, (i, a)| {
            let (c, d) = t.nearest(&sample[i * dim..(i + 1) * dim], scratch);
            *a = c;
            d as f64
        })
        .sum()
}

fn update(sample: &[f32], dim: usize, assign: &[usize], centroids: &mut [f32], rng: &mut impl Rng) {
    let k = centroids.len() / dim;
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (i, &a) in assign.iter().enumerate() {
        counts[a] += 1;
        for (s, &x) in sums[a * dim..(a + 1) * dim]
            .iter_mut()
            .zip(&sample[i * dim..(i + 1) * dim])
        {
            *s += x as f64;
        }
    }
    for c in 0..k {
        if counts[c] > 0 {
            for (dst, s) in centroids[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&sums[c * dim..(c + 1) * dim])
            {
                *dst = (*s / counts[c] as f64) as f32;
            }
        }
    }
    // Empty clusters: split the largest cluster by moving the empty centroid next to
    // its centroid with a small symmetric perturbation (the largest keeps the mirror).
    for c in 0..k {
        if counts[c] != 0 {
            continue;
        }
        let Some(big) = (0..k).max_by_key(|&j| counts[j]) else {
            return;
        };
        if counts[big] < 2 {
            return;
        }
        for j in 0..dim {
            let base = centroids[big * dim + j];
            let eps = (base.abs() * 1e-3).max(1e-6) * if rng.random::<bool>() { 1.0 } else { -1.0 };
            centroids[c * dim + j] = base + eps;
            centroids[big * dim + j] = base - eps;
        }
        counts[c] = counts[big] / 2;
        counts[big] -= counts[c];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_separated_clusters_and_is_deterministic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let centres = [[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let data: Vec<f32> = (0..4000)
            .flat_map(|i| {
                let c = centres[i % 4];
                [
                    c[0] + rng.random_range(-0.5..0.5),
                    c[1] + rng.random_range(-0.5..0.5),
                ]
            })
            .collect();
        let km = train(&data, 2, &KMeansParams::new(4, 1));
        assert!(km.objective < 0.2, "objective {}", km.objective);
        for c in centres {
            assert!(km.nearest(&c).1 < 0.05, "a centroid near {c:?}");
        }
        let again = train(&data, 2, &KMeansParams::new(4, 1));
        assert_eq!(km.centroids, again.centroids, "seeded runs agree");
    }

    #[test]
    fn more_centroids_than_distinct_points_leaves_none_unusable() {
        let data = vec![1.0f32, 1.0, 1.0, 1.0, 5.0, 5.0];
        let km = train(&data, 2, &KMeansParams::new(8, 2));
        assert_eq!(km.k(), 8);
        assert!(km.centroids.iter().all(|x| x.is_finite()));
        assert!(km.objective < 1e-4, "objective {}", km.objective);
    }
}
