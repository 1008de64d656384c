//! Collection statistics of a snapshot for a text query's terms, and the BM25 weights
//! they give each term.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use strata_format::DeletionBitmap;
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

/// What a segment's deleted rows take out of its text statistics, for one deletion
/// bitmap: computed on first use by the queries that need it, and kept until the
/// segment's bitmap changes (each change makes a new bitmap).
#[derive(Debug, Default)]
pub(crate) struct DeletedText {
    /// The bitmap these counts are of. A `Weak` keeps its allocation, so a later bitmap
    /// never has its address while this one is remembered.
    of: Weak<DeletionBitmap>,
    /// Deleted rows with at least one term, and their terms.
    rows: Option<(u64, u64)>,
    /// Per term, the deleted rows holding it.
    df: HashMap<String, u64>,
}

impl DeletedText {
    /// Forgets the counts unless they are of `bitmap`.
    pub fn of(&mut self, bitmap: &Arc<DeletionBitmap>) -> &mut Self {
        if !std::ptr::eq(self.of.as_ptr(), Arc::as_ptr(bitmap)) {
            *self = DeletedText {
                of: Arc::downgrade(bitmap),
                ..Default::default()
            };
        }
        self
    }

    /// The deleted rows with terms and their terms, counted by `count` on first use.
    pub fn rows<E>(
        &mut self,
        count: impl FnOnce() -> Result<(u64, u64), E>,
    ) -> Result<(u64, u64), E> {
        if let Some(r) = self.rows {
            return Ok(r);
        }
        let r = count()?;
        self.rows = Some(r);
        Ok(r)
    }

    /// The deleted rows holding `term`, counted by `count` on first use.
    pub fn df<E>(&mut self, term: &str, count: impl FnOnce() -> Result<u64, E>) -> Result<u64, E> {
        if let Some(&n) = self.df.get(term) {
            return Ok(n);
        }
        let n = count()?;
        self.df.insert(term.to_owned(), n);
        Ok(n)
    }
}
