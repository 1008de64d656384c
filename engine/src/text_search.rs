//! Full-text search over a version: BM25 with collection statistics over every live row
//! of the snapshot (so a row's score does not depend on how the rows are split into
//! segments), memtables scored exhaustively, segments by block-max WAND over their
//! posting lists — an exact top-k: a row is skipped only when a bound on its score says
//! it cannot enter it.
//!
//! A query's score of a row sums its terms' scores in the order the terms first appear
//! in the query, wherever the row is, so equal rows score equally to the last bit.

use strata_format::text_index::{Postings, TermEntry, TextIndex, POSTING_BLOCK};
use strata_index::text::{Analyzer, TermWeight};
use strata_index::TopK;

use crate::error::Result;
use crate::field_index::RowSet;
use crate::live_segment::LiveSegment;
use crate::options::SearchOptions;
use crate::text_stats::TextStats;
use crate::version::Version;

/// The distinct terms of a query, in order of first appearance.
pub(crate) fn query_terms(analyzer: Analyzer, text: &str) -> Vec<String> {
    let mut terms = analyzer.terms(text);
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert(t.clone()));
    terms
}

/// The hits of a text search for `text` over `v` ([`search`], the text analyzed by
/// `analyzer`), with what `opts` asks for read from the same snapshot.
pub(crate) fn hits(
    v: &Version,
    analyzer: Analyzer,
    keys: crate::KeyKind,
    text: &str,
    opts: &SearchOptions,
) -> Result<Vec<crate::record::Hit>> {
    let found = search(v, &query_terms(analyzer, text), opts)?;
    crate::search::hits(v, keys, found, opts)
}

/// The `opts.k` best live rows of `v` for the query `terms` (distinct), as ids with the
/// negated score as distance, best first; with `opts.filter`, among the rows passing it.
/// A row holding none of the terms is never returned.
pub(crate) fn search(
    v: &Version,
    terms: &[String],
    opts: &SearchOptions,
) -> Result<Vec<strata_index::Neighbor>> {
    if let Some(f) = &opts.filter {
        f.validate()?;
    }
    // Blocks are skipped by bounds that hold only for these parameters.
    if !opts.bm25.is_valid() {
        let crate::Bm25 { k1, b } = opts.bm25;
        return Err(crate::error::InvalidArgument::Bm25 { k1, b }.into());
    }
    if opts.k == 0 || terms.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<(&LiveSegment, TextIndex<'_>, Vec<Option<TermEntry>>)> = v
        .segments
        .iter()
        .filter_map(|s| s.reader.text_index().transpose().map(|ix| (s, ix)))
        .map(|(s, ix)| {
            let ix = ix?;
            let entries = terms
                .iter()
                .map(|t| ix.lookup(t))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| e.at(s.reader.path()))?;
            Ok((s, ix, entries))
        })
        .collect::<Result<_>>()?;
    let mut stats = TextStats::new(terms.len());
    for m in &v.memtables {
        m.text_stats(v.seq, terms, &mut stats);
    }
    for (s, ix, entries) in &segments {
        segment_stats(s, ix, terms, entries, &mut stats)?;
    }
    let weights = stats.weights(&opts.bm25);
    let mut top = TopK::new(opts.k);
    for m in &v.memtables {
        m.text_search(v.seq, terms, &weights, opts.filter.as_ref(), &mut top)?;
    }
    for (s, ix, entries) in &segments {
        if entries.iter().all(Option::is_none) {
            continue;
        }
        let pass = match &opts.filter {
            Some(f) => Some(crate::records::passing_rows(s, f)?),
            None => None,
        };
        search_segment(s, ix, entries, &weights, pass.as_ref(), &mut top)
            .map_err(|e| e.at(s.reader.path()))?;
    }
    Ok(top.into_sorted())
}

/// Adds a segment's live rows to `stats`: its totals less what its deleted rows hold
/// (counted once per deletion bitmap and term, then kept with the segment).
fn segment_stats(
    s: &LiveSegment,
    ix: &TextIndex<'_>,
    terms: &[String],
    entries: &[Option<TermEntry>],
    stats: &mut TextStats,
) -> Result<()> {
    let (docs, total) = (ix.docs() as u64, ix.total_terms());
    if s.deleted.count() == 0 {
        stats.docs += docs;
        stats.total += total;
        for (df, entry) in stats.df.iter_mut().zip(entries) {
            *df += entry.map_or(0, |e| e.df as u64);
        }
        return Ok(());
    }
    let mut cache = s.deleted_text.lock();
    let gone = cache.of(&s.deleted);
    let (gone_docs, gone_total) = gone.rows(|| -> Result<(u64, u64)> {
        let (mut n, mut t) = (0, 0);
        for row in crate::field_index::set_rows(s.deleted.words()) {
            let len = ix.length(row as u32) as u64;
            n += (len > 0) as u64;
            t += len;
        }
        Ok((n, t))
    })?;
    stats.docs += docs.saturating_sub(gone_docs);
    stats.total += total.saturating_sub(gone_total);
    let mut rows = vec![0u32; POSTING_BLOCK];
    for ((df, entry), term) in stats.df.iter_mut().zip(entries).zip(terms) {
        let Some(e) = entry else { continue };
        let gone_df = gone.df(term, || -> Result<u64> {
            let at = |x: strata_format::error::DecodeError| x.at(s.reader.path());
            let list = ix.postings(*e).map_err(at)?;
            let mut n = 0;
            for b in 0..list.blocks() {
                let len = list.decode_rows(b, &mut rows).map_err(at)?;
                let held = rows.iter().take(len);
                n += held.filter(|&&r| s.deleted.contains(r as usize)).count() as u64;
            }
            Ok(n)
        })?;
        *df += (e.df as u64).saturating_sub(gone_df);
    }
    Ok(())
}

const EXHAUSTED: u32 = u32::MAX;

/// One query term's place in its posting list.
struct Cursor<'a> {
    /// The term's position in the query.
    term: usize,
    list: Postings<'a>,
    weight: TermWeight,
    /// Bound on the term's score in any row of the list.
    max_score: f32,
    /// Per block, its last row and the bound on the term's score in its rows.
    bounds: Vec<(u32, f32)>,
    /// The decoded block, its rows and (once a row is scored) frequencies, and the
    /// place in it.
    block: usize,
    rows: Vec<u32>,
    tfs: Vec<u32>,
    tfs_of: usize,
    len: usize,
    pos: usize,
    /// The current row ([`EXHAUSTED`] past the end).
    row: u32,
    /// The block a bound was last asked for (from `block` on, not decoded).
    shallow: usize,
}

impl<'a> Cursor<'a> {
    fn new(
        term: usize,
        list: Postings<'a>,
        weight: TermWeight,
    ) -> std::result::Result<Self, strata_format::error::DecodeError> {
        let bounds: Vec<(u32, f32)> = (0..list.blocks())
            .map(|b| {
                let s = list.skip(b);
                (s.last_row, weight.score(s.max_tf, s.min_len))
            })
            .collect();
        let max_score = bounds.iter().map(|b| b.1).fold(0.0f32, f32::max);
        let mut c = Cursor {
            term,
            list,
            weight,
            max_score,
            bounds,
            block: 0,
            rows: vec![0; POSTING_BLOCK],
            tfs: vec![0; POSTING_BLOCK],
            tfs_of: usize::MAX,
            len: 0,
            pos: 0,
            row: EXHAUSTED,
            shallow: 0,
        };
        c.load(0)?;
        Ok(c)
    }

    fn load(&mut self, b: usize) -> std::result::Result<(), strata_format::error::DecodeError> {
        if b >= self.bounds.len() {
            self.row = EXHAUSTED;
            return Ok(());
        }
        self.len = self.list.decode_rows(b, &mut self.rows)?;
        self.block = b;
        self.shallow = self.shallow.max(b);
        self.pos = 0;
        self.row = self.rows.first().copied().unwrap_or(EXHAUSTED);
        Ok(())
    }

    /// The term's frequency in the current row (the block's frequencies are decoded on
    /// the first call in it).
    fn tf(&mut self) -> std::result::Result<u32, strata_format::error::DecodeError> {
        if self.tfs_of != self.block {
            self.list.decode_tfs(self.block, &mut self.tfs)?;
            self.tfs_of = self.block;
        }
        Ok(self.tfs.get(self.pos).copied().unwrap_or(1))
    }

    fn next(&mut self) -> std::result::Result<(), strata_format::error::DecodeError> {
        self.pos += 1;
        match self.rows.get(self.pos).filter(|_| self.pos < self.len) {
            Some(&r) => self.row = r,
            None => self.load(self.block + 1)?,
        }
        Ok(())
    }

    /// The first block from `from` whose last row is at least `target`.
    fn block_of(&self, from: usize, target: u32) -> usize {
        let mut b = from;
        while self.bounds.get(b).is_some_and(|x| x.0 < target) {
            b += 1;
        }
        b
    }

    /// Moves to the first row at or after `target`.
    fn advance(
        &mut self,
        target: u32,
    ) -> std::result::Result<(), strata_format::error::DecodeError> {
        if self.row >= target {
            return Ok(());
        }
        if self.bounds.get(self.block).is_none_or(|x| x.0 < target) {
            let b = self.block_of(self.block + 1, target);
            self.load(b)?;
        }
        while self.row < target {
            self.next()?;
        }
        Ok(())
    }

    /// A bound on the term's score in any row from `target` to the end of the block
    /// holding `target`, and that block's last row (without decoding it).
    fn block_bound(&mut self, target: u32) -> (f32, u32) {
        self.shallow = self.block_of(self.shallow.max(self.block), target);
        match self.bounds.get(self.shallow) {
            Some(&(last, bound)) => (bound, last),
            None => (0.0, EXHAUSTED),
        }
    }
}

/// Whether a row whose score is at most `bound` may enter `top` (full or not; ties
/// may enter by id, and the bound is computed in another order than the score, so a
/// little slack keeps the search exact).
fn may_enter(bound: f32, top: &TopK) -> bool {
    let theta = -top.threshold();
    bound >= theta - 1e-5 * theta.abs().max(1.0)
}

/// Block-max WAND over one segment: pushes its best live rows (passing `pass`, when
/// given) into `top` as ids with their negated scores.
fn search_segment(
    s: &LiveSegment,
    ix: &TextIndex<'_>,
    entries: &[Option<TermEntry>],
    weights: &[TermWeight],
    pass: Option<&RowSet>,
    top: &mut TopK,
) -> std::result::Result<(), strata_format::error::DecodeError> {
    let mut cursors = Vec::new();
    for (term, (entry, w)) in entries.iter().zip(weights).enumerate() {
        if let Some(e) = entry {
            // Boxed: the loop reorders cursors by row, moving pointers, not blocks.
            cursors.push(Box::new(Cursor::new(term, ix.postings(*e)?, *w)?));
        }
    }
    let ids = s.reader.ids();
    let eligible = |row: u32| match pass {
        Some(p) => p.contains(row as usize),
        None => !s.deleted.contains(row as usize),
    };
    let mut parts: Vec<(usize, f32)> = Vec::with_capacity(cursors.len());
    loop {
        if cursors.iter().any(|c| c.row == EXHAUSTED) {
            cursors.retain(|c| c.row != EXHAUSTED);
        }
        cursors.sort_unstable_by_key(|c| c.row);
        // The pivot: the first cursor at which the bounds so far may reach the top.
        let mut acc = 0.0f32;
        let Some(mut p) = cursors.iter().position(|c| {
            acc += c.max_score;
            may_enter(acc, top)
        }) else {
            break;
        };
        let prow = cursors[p].row;
        while cursors.get(p + 1).is_some_and(|c| c.row == prow) {
            p += 1;
        }
        let mut bound = 0.0f32;
        let mut next = cursors.get(p + 1).map_or(EXHAUSTED, |c| c.row);
        for c in &mut cursors[..=p] {
            let (b, last) = c.block_bound(prow);
            bound += b;
            next = next.min(last.saturating_add(1));
        }
        if !may_enter(bound, top) {
            // No row from the pivot's to the end of the shortest current block (or to
            // the next cursor's row) can enter: skip them all.
            for c in &mut cursors[..=p] {
                c.advance(next)?;
            }
            continue;
        }
        if cursors[0].row != prow {
            // Rows before the pivot's cannot enter: bring the cursors up to it.
            for c in &mut cursors[..p] {
                c.advance(prow)?;
            }
            continue;
        }
        if eligible(prow) {
            let len = ix.length(prow);
            parts.clear();
            for c in &mut cursors[..=p] {
                let tf = c.tf()?;
                parts.push((c.term, c.weight.score(tf, len)));
            }
            parts.sort_unstable_by_key(|x| x.0);
            let score: f32 = parts.iter().map(|x| x.1).sum();
            if let Some(&id) = ids.get(prow as usize) {
                top.push(id, -score);
            }
        }
        for c in &mut cursors[..=p] {
            c.next()?;
        }
    }
    Ok(())
}
