//! BM25 scoring: `Σ idf(t) · tf / (tf + k1 · (1 − b + b · len / avg_len))` over the query's
//! terms, with `idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5))` (the form Lucene and
//! `bm25s` use; always positive). `N` is the number of live rows with at least one
//! term, `df` the number of those holding the term, `len` a row's number of terms.

/// BM25's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25 {
    /// Term-frequency saturation (1.2 by default).
    pub k1: f32,
    /// Length normalisation, 0 (none) to 1 (full); 0.75 by default.
    pub b: f32,
}

impl Default for Bm25 {
    fn default() -> Self {
        Bm25 { k1: 1.2, b: 0.75 }
    }
}

impl Bm25 {
    /// Whether the parameters are usable (finite, `k1 ≥ 0`, `0 ≤ b ≤ 1`).
    pub fn is_valid(&self) -> bool {
        self.k1.is_finite() && self.k1 >= 0.0 && (0.0..=1.0).contains(&self.b)
    }

    /// The inverse document frequency of a term in `df` of `docs` rows.
    pub fn idf(df: u64, docs: u64) -> f32 {
        let (df, docs) = (df as f64, docs.max(df) as f64);
        (1.0 + (docs - df + 0.5) / (df + 0.5)).ln() as f32
    }

    /// The scoring of one term over a collection of `docs` rows averaging `avg_len`
    /// terms, the term being in `df` of them.
    pub fn weight(&self, df: u64, docs: u64, avg_len: f64) -> TermWeight {
        let avg = if avg_len > 0.0 { avg_len } else { 1.0 };
        TermWeight {
            idf: Self::idf(df, docs),
            base: self.k1 * (1.0 - self.b),
            per_len: (self.k1 as f64 * self.b as f64 / avg) as f32,
        }
    }
}

/// One query term's BM25 scoring over a collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TermWeight {
    /// The term's inverse document frequency.
    pub idf: f32,
    base: f32,
    per_len: f32,
}

impl TermWeight {
    /// The term's score in a row of `len` terms holding it `tf` times. Increasing in
    /// `tf`, non-increasing in `len`: `score(max tf, min len)` bounds a block of rows.
    #[inline]
    pub fn score(&self, tf: u32, len: u32) -> f32 {
        let tf = tf as f32;
        self.idf * tf / (tf + self.base + self.per_len * len as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_formula() {
        let w = Bm25::default().weight(3, 10, 7.5);
        let idf = (1.0f64 + (10.0 - 3.0 + 0.5) / (3.0 + 0.5)).ln();
        let want = idf * 2.0 / (2.0 + 1.2 * (1.0 - 0.75 + 0.75 * 5.0 / 7.5));
        assert!((w.score(2, 5) as f64 - want).abs() < 1e-6);
    }

    #[test]
    fn bounds_hold_and_idf_stays_positive() {
        let w = Bm25::default().weight(50, 100, 12.0);
        assert!(w.score(3, 4) >= w.score(2, 4) && w.score(2, 4) >= w.score(2, 9));
        assert!(Bm25::idf(100, 100) > 0.0 && Bm25::idf(1, 100) > Bm25::idf(2, 100));
        assert!(!Bm25 { k1: 1.2, b: 1.5 }.is_valid());
    }
}
