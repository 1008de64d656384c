//! Distances from a query to rows stored as 8-bit scalar codes on a per-dimension grid
//! (`x[j] = lo[j] + code[j] · step[j]`, the segment's `int8` vector codec), computed on
//! the codes directly: the query is mapped onto the grid once, and each row then costs
//! one pass over its bytes, without decoding it.
//!
//! * squared L2: `Σ (q − lo − step·c)²`, with `q − lo` computed once;
//! * dot product: `Σ q·(lo + step·c) = Σ q·lo + Σ (q·step)·c`.
//!
//! Up to rounding, the distance is the one [`Metric::distance`] gives for the decoded row.

use crate::distance::{kernels, Kernels, Metric};

/// Rows stored as 8-bit codes on a per-dimension grid: row `n`'s value in dimension `j`
/// is about `lo[j] + codes[n · dim + j] · step[j]` (`dim` = the length of `lo`).
#[derive(Debug, Clone, Copy)]
pub struct GridRows<'a> {
    /// Per dimension, the grid's lowest value.
    pub lo: &'a [f32],
    /// Per dimension, the distance between two levels of the grid.
    pub step: &'a [f32],
    /// Every row's codes, one byte per dimension.
    pub codes: &'a [u8],
}

/// A query mapped onto an `int8` grid, for [`Sq8Query::distance`] to rows of codes.
#[derive(Debug, Clone)]
pub struct Sq8Query {
    metric: Metric,
    /// L2: `q − lo`; dot: `q · step`.
    mapped: Vec<f32>,
    /// L2: `step` per dimension (empty for the dot product).
    steps: Vec<f32>,
    /// Dot: `Σ q·lo` (0 for L2).
    constant: f32,
    /// The kernel set, chosen once per query rather than per row.
    kernels: &'static Kernels,
}

impl Sq8Query {
    /// Maps `query` (normalised already for cosine) onto the grid `lo`, `step` (one entry
    /// per dimension each; the shortest of the three sets the dimension).
    pub fn new(query: &[f32], lo: &[f32], step: &[f32], metric: Metric) -> Self {
        let dims = query.iter().zip(lo).zip(step);
        match metric {
            Metric::L2 => {
                let (mapped, steps) = dims.map(|((&q, &l), &s)| (q - l, s)).unzip();
                Sq8Query {
                    metric,
                    mapped,
                    steps,
                    constant: 0.0,
                    kernels: kernels(),
                }
            }
            Metric::InnerProduct | Metric::Cosine => {
                let mut constant = 0.0;
                let mapped = dims
                    .map(|((&q, &l), &s)| {
                        constant += q * l;
                        q * s
                    })
                    .collect();
                Sq8Query {
                    metric,
                    mapped,
                    steps: Vec::new(),
                    constant,
                    kernels: kernels(),
                }
            }
        }
    }

    /// The distance (smaller is nearer, as [`Metric::distance`]) from the query to the row
    /// whose codes are `codes` (one byte per dimension; a short row counts its missing
    /// dimensions as absent).
    #[inline]
    pub fn distance(&self, codes: &[u8]) -> f32 {
        let k = self.kernels;
        match self.metric {
            Metric::L2 => (k.sq8_l2)(&self.mapped, &self.steps, codes),
            Metric::InnerProduct => -(self.constant + (k.sq8_dot)(&self.mapped, codes)),
            Metric::Cosine => 1.0 - (self.constant + (k.sq8_dot)(&self.mapped, codes)),
        }
    }

    /// [`Sq8Query::distance`] to the row of each of `nodes` (node `n`'s codes: the `width`
    /// bytes at `n · width` of `rows`), replacing `out`; a row past the end scores +∞.
    /// One kernel call for the whole batch.
    pub fn distances_to_rows(&self, rows: &[u8], width: usize, nodes: &[u32], out: &mut Vec<f32>) {
        let k = self.kernels;
        out.clear();
        out.resize(nodes.len(), f32::INFINITY);
        match self.metric {
            Metric::L2 => (k.sq8_l2_rows)(&self.mapped, &self.steps, rows, width, nodes, out),
            Metric::InnerProduct | Metric::Cosine => {
                (k.sq8_dot_rows)(&self.mapped, rows, width, nodes, out);
                let (c, cosine) = (self.constant, self.metric == Metric::Cosine);
                for d in out.iter_mut() {
                    // A missing row stays at +∞.
                    if d.is_finite() {
                        *d = if cosine { 1.0 - (c + *d) } else { -(c + *d) };
                    }
                }
            }
        }
    }
}

/// A per-dimension grid spanning `data`'s values (rows of `dim`) and every row's codes
/// on it, for tests of what is scored on [`GridRows`].
#[cfg(test)]
pub(crate) fn grid_codes(data: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>, Vec<u8>) {
    let rows = || data.chunks_exact(dim);
    let lo: Vec<f32> = (0..dim)
        .map(|j| rows().map(|r| r[j]).fold(f32::INFINITY, f32::min))
        .collect();
    let hi = (0..dim).map(|j| rows().map(|r| r[j]).fold(f32::NEG_INFINITY, f32::max));
    let step: Vec<f32> = hi.zip(&lo).map(|(h, &l)| (h - l) / 255.0).collect();
    let codes = rows()
        .flat_map(|r| {
            r.iter().zip(lo.iter().zip(&step)).map(|(&x, (&l, &s))| {
                if s > 0.0 {
                    ((x - l) / s).round() as u8
                } else {
                    0
                }
            })
        })
        .collect();
    (lo, step, codes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::distance::{available, scalar};
    use rand::{Rng, SeedableRng};

    #[test]
    fn distances_on_codes_equal_distances_to_the_decoded_rows() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for dim in [1usize, 7, 16, 50, 128, 131, 384] {
            let lo: Vec<f32> = (0..dim).map(|_| rng.random_range(-3.0..0.0)).collect();
            // Every fifth dimension is constant (step 0), every seventh has a step
            // whose square leaves f32.
            let step: Vec<f32> = (0..dim)
                .map(|j| match j {
                    _ if j % 5 == 4 => 0.0,
                    _ if j % 7 == 6 => 1e-30,
                    _ => rng.random_range(0.001..0.05),
                })
                .collect();
            let query: Vec<f32> = (0..dim).map(|_| rng.random_range(-3.0..3.0)).collect();
            for _ in 0..20 {
                let codes: Vec<u8> = (0..dim)
                    .map(|j| if step[j] == 0.0 { 0 } else { rng.random() })
                    .collect();
                let row: Vec<f32> = (0..dim)
                    .map(|j| lo[j] + f32::from(codes[j]) * step[j])
                    .collect();
                for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
                    let want = match metric {
                        Metric::L2 => scalar::l2(&query, &row),
                        Metric::InnerProduct => -scalar::dot(&query, &row),
                        Metric::Cosine => 1.0 - scalar::dot(&query, &row),
                    };
                    let q = Sq8Query::new(&query, &lo, &step, metric);
                    let got = q.distance(&codes);
                    let scale = 1.0 + want.abs();
                    assert!(
                        (got - want).abs() <= 1e-4 * scale,
                        "dim {dim} {metric:?}: {got} vs {want}"
                    );
                    // In a batch: rows of one array, by node.
                    let mut batch = vec![7.0];
                    let rows: Vec<u8> = [&codes[..], &codes[..]].concat();
                    q.distances_to_rows(&rows, dim, &[1, 2, 0, u32::MAX], &mut batch);
                    assert_eq!(batch, [got, f32::INFINITY, got, f32::INFINITY]);
                }
            }
        }
    }

    #[test]
    fn every_kernel_set_matches_the_definition() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        // The kernel sets this CPU can run are the ones checked: say which.
        let names: Vec<&str> = available().iter().map(|k| k.name).collect();
        eprintln!("int8 kernels checked on this CPU: {names:?} (others: not available here)");
        // Every length up to eight blocks of sixteen (sixteen of eight) and past it (each tail of the
        // kernels that keep the query in registers), and a longer row.
        for n in (0usize..=130).chain([385]) {
            let t: Vec<f32> = (0..n).map(|_| rng.random_range(-10.0..300.0)).collect();
            let w: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..0.01)).collect();
            let c: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            // The definitions, in f64.
            let l2: f64 = (0..n)
                .map(|j| (f64::from(t[j]) - f64::from(w[j]) * f64::from(c[j])).powi(2))
                .sum();
            let dot: f64 = (0..n).map(|j| f64::from(t[j]) * f64::from(c[j])).sum();
            let close =
                |got: f32, want: f64| (f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs());
            for k in available() {
                assert!(close((k.sq8_l2)(&t, &w, &c), l2), "{} l2 n {n}", k.name);
                assert!(close((k.sq8_dot)(&t, &c), dot), "{} dot n {n}", k.name);
                // The same rows in one array, by node (node 2 and the last are past its
                // end; a row of no bytes is no row).
                let rows: Vec<u8> = [&c[..], &c[..]].concat();
                let nodes = [1, 2, 0, u32::MAX];
                let (mut l2s, mut dots) = ([0f32; 4], [0f32; 4]);
                (k.sq8_l2_rows)(&t, &w, &rows, n, &nodes, &mut l2s);
                (k.sq8_dot_rows)(&t, &rows, n, &nodes, &mut dots);
                for (i, (l, d)) in l2s.iter().zip(&dots).enumerate() {
                    if n > 0 && i % 2 == 0 {
                        assert!(close(*l, l2) && close(*d, dot), "{} rows n {n}", k.name);
                    } else {
                        assert!(l.is_infinite() && d.is_infinite(), "{} rows n {n}", k.name);
                    }
                }
                // A shorter row of codes counts only the dimensions it has.
                let half = n / 2;
                let want: f64 = (0..half).map(|j| f64::from(t[j]) * f64::from(c[j])).sum();
                assert!(
                    close((k.sq8_dot)(&t, &c[..half]), want),
                    "{} short n {n}",
                    k.name
                );
                let want: f64 = (0..half)
                    .map(|j| (f64::from(t[j]) - f64::from(w[j]) * f64::from(c[j])).powi(2))
                    .sum();
                assert!(
                    close((k.sq8_l2)(&t, &w, &c[..half]), want),
                    "{} short l2 n {n}",
                    k.name
                );
            }
        }
    }
}
