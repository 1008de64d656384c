//! Collection statistics of a snapshot for a text query's terms, and the BM25 weights
//! they give each term.

use strata_index::text::TermWeight;

/// Collection statistics of a snapshot for a query's terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TextStats {
    /// Live rows with at least one term.
    pub docs: u64,
    /// Terms in those rows.
    pub total: u64,
    /// Per query term, the live rows holding it.
    pub df: Vec<u64>,
}

impl TextStats {
    /// Empty statistics for a query of `terms` terms.
    pub fn new(terms: usize) -> Self {
        TextStats {
            df: vec![0; terms],
            ..Default::default()
        }
    }

    /// Each term's BM25 weight over these statistics.
    pub fn weights(&self, bm25: &crate::Bm25) -> Vec<TermWeight> {
        let avg = if self.docs == 0 {
            1.0
        } else {
            self.total as f64 / self.docs as f64
        };
        self.df
            .iter()
            .map(|&df| bm25.weight(df, self.docs, avg))
            .collect()
    }
}
