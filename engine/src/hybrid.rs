//! Hybrid search: a vector search and a text search over the same snapshot with the same
//! filter, their candidate lists fused into one ranking (`docs/text-search.md`).

use std::collections::HashMap;

use strata_index::{Metric, Neighbor};

use crate::error::{InvalidArgument, Result};
use crate::options::SearchOptions;
use crate::version::Version;

/// How a hybrid search combines its two rankings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusionMethod {
    /// Reciprocal-rank fusion: a record scores `Σ weight / (k + rank)` over the rankings
    /// that hold it (rank from 1).
    Rrf {
        /// The rank offset (60 by default).
        k: f32,
        /// Weight of the vector ranking (1 by default).
        vector_weight: f32,
        /// Weight of the text ranking (1 by default).
        text_weight: f32,
    },
    /// Weighted scores: each ranking's scores min-max normalised to [0, 1] over its
    /// candidates (vector: the negated distance; text: BM25), a record scoring
    /// `alpha · vector + (1 − alpha) · text` (0 for a ranking that does not hold it).
    Weighted {
        /// Weight of the vector side, 0 to 1 (0.5 by default).
        alpha: f32,
    },
}

/// A hybrid search's fusion: the method, and how many candidates each side contributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    /// How the rankings are combined.
    pub method: FusionMethod,
    /// Candidates taken from each ranking (at least `k`; 100 by default).
    pub candidates: usize,
}

impl Default for Fusion {
    fn default() -> Self {
        Self::rrf()
    }
}

impl Fusion {
    /// Default number of candidates from each side.
    pub const DEFAULT_CANDIDATES: usize = 100;

    /// Reciprocal-rank fusion with `k` = 60 and equal weights.
    pub fn rrf() -> Self {
        Fusion {
            method: FusionMethod::Rrf {
                k: 60.0,
                vector_weight: 1.0,
                text_weight: 1.0,
            },
            candidates: Self::DEFAULT_CANDIDATES,
        }
    }

    /// Weighted-score fusion with the vector side weighted `alpha` (0 to 1).
    pub fn weighted(alpha: f32) -> Self {
        Fusion {
            method: FusionMethod::Weighted { alpha },
            candidates: Self::DEFAULT_CANDIDATES,
        }
    }

    /// This fusion with `n` candidates from each side.
    pub fn with_candidates(mut self, n: usize) -> Self {
        self.candidates = n;
        self
    }

    /// Refuses weights that are not finite and non-negative, an `alpha` outside
    /// [0, 1], and an RRF `k` below 0.
    pub fn validate(&self) -> std::result::Result<(), InvalidArgument> {
        let ok = match self.method {
            FusionMethod::Rrf {
                k,
                vector_weight,
                text_weight,
            } => [k, vector_weight, text_weight]
                .iter()
                .all(|x| x.is_finite() && *x >= 0.0),
            FusionMethod::Weighted { alpha } => (0.0..=1.0).contains(&alpha),
        };
        if ok {
            Ok(())
        } else {
            Err(InvalidArgument::Fusion(format!("{:?}", self.method)))
        }
    }

    /// Fuses a vector ranking and a text ranking (each best first, `distance` smaller
    /// is better) into the best `k`, as ids with the negated fused score, ties by id.
    pub(crate) fn fuse(&self, vector: &[Neighbor], text: &[Neighbor], k: usize) -> Vec<Neighbor> {
        let mut fused: HashMap<u64, f64> = HashMap::new();
        match self.method {
            FusionMethod::Rrf {
                k: offset,
                vector_weight,
                text_weight,
            } => {
                for (list, w) in [(vector, vector_weight), (text, text_weight)] {
                    for (rank, n) in list.iter().enumerate() {
                        *fused.entry(n.id).or_default() +=
                            w as f64 / (offset as f64 + rank as f64 + 1.0);
                    }
                }
            }
            FusionMethod::Weighted { alpha } => {
                for (list, w) in [(vector, alpha), (text, 1.0 - alpha)] {
                    let scores = || list.iter().map(|n| -(n.distance as f64));
                    let lo = scores().fold(f64::INFINITY, f64::min);
                    let hi = scores().fold(f64::NEG_INFINITY, f64::max);
                    for n in list {
                        let norm = if hi > lo {
                            (-(n.distance as f64) - lo) / (hi - lo)
                        } else {
                            1.0
                        };
                        *fused.entry(n.id).or_default() += w as f64 * norm;
                    }
                }
            }
        }
        let mut all: Vec<Neighbor> = fused
            .into_iter()
            .map(|(id, s)| Neighbor {
                id,
                distance: -(s as f32),
            })
            .collect();
        all.sort_by(Neighbor::cmp_nearest);
        all.truncate(k);
        all
    }
}

/// What a hybrid search needs to know of its store.
#[derive(Clone, Copy)]
pub(crate) struct Store {
    pub metric: Metric,
    pub keys: crate::KeyKind,
    pub analyzer: crate::Analyzer,
}

/// The hits of a hybrid search over `v` for `vector` (normalised for cosine) and
/// `text` ([`search`]), with what `opts` asks for read from the same snapshot.
pub(crate) fn hits(
    v: &Version,
    store: Store,
    vector: &[f32],
    text: &str,
    opts: &SearchOptions,
    fusion: &Fusion,
) -> Result<Vec<crate::record::Hit>> {
    let terms = crate::text_search::query_terms(store.analyzer, text);
    let found = search(v, store, vector, &terms, opts, fusion)?;
    crate::search::hits(v, store.keys, found, opts)
}

/// The two rankings of a hybrid search over `v`, each of `fusion.candidates` (at least
/// `opts.k`), with `opts.filter` on both, fused.
fn search(
    v: &Version,
    store: Store,
    vector: &[f32],
    terms: &[String],
    opts: &SearchOptions,
    fusion: &Fusion,
) -> Result<Vec<Neighbor>> {
    let (metric, keys) = (store.metric, store.keys);
    fusion.validate()?;
    let side = SearchOptions {
        k: fusion.candidates.max(opts.k),
        with_payload: false,
        with_metadata: false,
        with_text: false,
        ..opts.clone()
    };
    let vector: Vec<Neighbor> = crate::search::search(v, metric, keys, vector, &side, false)?
        .into_iter()
        .map(|h| Neighbor {
            id: h.id,
            distance: h.distance,
        })
        .collect();
    let text = crate::text_search::search(v, terms, &side)?;
    Ok(fusion.fuse(&vector, &text, opts.k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(ids: &[(u64, f32)]) -> Vec<Neighbor> {
        ids.iter()
            .map(|&(id, distance)| Neighbor { id, distance })
            .collect()
    }

    #[test]
    fn rrf_sums_weighted_reciprocal_ranks() {
        let v = ranking(&[(1, 0.1), (2, 0.2), (3, 0.3)]);
        let t = ranking(&[(3, -9.0), (4, -5.0)]);
        let got = Fusion::rrf().fuse(&v, &t, 10);
        let ids: Vec<u64> = got.iter().map(|n| n.id).collect();
        // 3: 1/63 + 1/61; 1: 1/61; 4: 1/62; 2: 1/62 (ties by id).
        assert_eq!(ids, [3, 1, 2, 4]);
        assert!((-got[0].distance - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
        let text_only = Fusion {
            method: FusionMethod::Rrf {
                k: 60.0,
                vector_weight: 0.0,
                text_weight: 1.0,
            },
            candidates: 10,
        };
        let ids: Vec<u64> = text_only.fuse(&v, &t, 2).iter().map(|n| n.id).collect();
        assert_eq!(ids, [3, 4]);
    }

    #[test]
    fn weighted_normalises_each_side() {
        let v = ranking(&[(1, 0.0), (2, 1.0)]);
        let t = ranking(&[(2, -10.0), (3, -2.0)]);
        let got = Fusion::weighted(0.5).fuse(&v, &t, 3);
        // 1: 0.5·1; 2: 0.5·0 + 0.5·1; 3: 0.5·0. Ties by id.
        let ids: Vec<u64> = got.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        let only_text = Fusion::weighted(0.0).fuse(&v, &t, 1);
        assert_eq!(only_text[0].id, 2);
        assert!(Fusion::weighted(1.5).validate().is_err());
        assert!(Fusion::weighted(f32::NAN).validate().is_err());
    }
}
