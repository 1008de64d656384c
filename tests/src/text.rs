//! An exhaustive BM25 reference, written from its definition (`docs/text-search.md`)
//! independently of the store's index: what text searches are checked against.

use strata::{Analyzer, Bm25};

/// The best `k` of `docs` (id, text) for `query`, as (id, score), best first, ties by
/// id: statistics over the documents with at least one term, each document's score the
/// sum over the query's distinct terms (in query order) that it holds of
/// `idf · tf / (tf + k1 (1 − b + b · len / avg_len))`. Documents holding none of the
/// terms are left out; so is every document `keep` refuses (after the statistics).
pub fn bm25_top<'a>(
    docs: impl IntoIterator<Item = (u64, &'a str)>,
    analyzer: Analyzer,
    query: &str,
    k: usize,
    keep: impl Fn(u64) -> bool,
) -> Vec<(u64, f32)> {
    let bm25 = Bm25::default();
    let mut terms = analyzer.terms(query);
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    let analyzed: Vec<(u64, Vec<String>)> = docs
        .into_iter()
        .map(|(id, text)| (id, analyzer.terms(text)))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let n = analyzed.len() as u64;
    let total: u64 = analyzed.iter().map(|d| d.1.len() as u64).sum();
    let avg = if n == 0 { 1.0 } else { total as f64 / n as f64 };
    let weights: Vec<_> = terms
        .iter()
        .map(|t| {
            let df = analyzed.iter().filter(|d| d.1.contains(t)).count() as u64;
            bm25.weight(df, n, avg)
        })
        .collect();
    let mut scored: Vec<(u64, f32)> = analyzed
        .iter()
        .filter(|(id, _)| keep(*id))
        .filter_map(|(id, dt)| {
            let mut score = 0.0f32;
            let mut any = false;
            for (t, w) in terms.iter().zip(&weights) {
                let tf = dt.iter().filter(|x| *x == t).count() as u32;
                if tf > 0 {
                    score += w.score(tf, dt.len() as u32);
                    any = true;
                }
            }
            any.then_some((*id, score))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// Whether `got` (a search's hits as id and negated score) is `want` (from
/// [`bm25_top`]): the same scores within rounding, rank by rank, and the same ids except
/// where scores tie. On a mismatch, the first difference.
pub fn same_ranking(got: &[(u64, f32)], want: &[(u64, f32)]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} hits, {} expected", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if (g.1 - w.1).abs() > 1e-4 * w.1.abs().max(1.0) {
            return Err(format!("rank {i}: score {} against {}", g.1, w.1));
        }
        let tied = want
            .iter()
            .any(|x| x.0 == g.0 && (x.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0));
        if g.0 != w.0 && !tied {
            return Err(format!("rank {i}: id {} against {}", g.0, w.0));
        }
    }
    Ok(())
}
