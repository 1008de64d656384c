//! A memtable's text index: each term's rows with their frequencies, and each row's
//! length in terms, grown as rows arrive (row = position in the memtable).

use std::collections::HashMap;

/// The text index of a memtable's rows.
#[derive(Debug, Default)]
pub(crate) struct MemText {
    postings: HashMap<Box<str>, Vec<(u32, u32)>>,
    /// Terms per row (0: no text, or no terms); rows past the end have none.
    lengths: Vec<u32>,
    /// Rows with terms as they were added, and as they were deleted or replaced: each
    /// entry the sequence number and the running counts of rows and terms up to it
    /// (both in sequence order: writes are serialized).
    added: Vec<Running>,
    removed: Vec<Running>,
}

/// Running counts of rows with terms, and of their terms, at a sequence number.
#[derive(Debug, Clone, Copy, Default)]
struct Running {
    seq: u64,
    rows: u64,
    terms: u64,
}

/// The counts of `log` up to sequence number `seq`.
fn up_to(log: &[Running], seq: u64) -> (u64, u64) {
    let n = log.partition_point(|r| r.seq <= seq);
    n.checked_sub(1)
        .and_then(|i| log.get(i))
        .map_or((0, 0), |r| (r.rows, r.terms))
}

fn push(log: &mut Vec<Running>, seq: u64, terms: u32) {
    let last = log.last().copied().unwrap_or_default();
    log.push(Running {
        seq,
        rows: last.rows + 1,
        terms: last.terms + terms as u64,
    });
}

impl MemText {
    /// Indexes row `row` (above every row indexed before), written at `seq`, with its
    /// `terms`.
    pub fn add(&mut self, row: u32, seq: u64, terms: &[String]) {
        if !terms.is_empty() {
            push(&mut self.added, seq, terms.len() as u32);
        }
        if self.lengths.len() <= row as usize {
            self.lengths.resize(row as usize + 1, 0);
        }
        if let Some(len) = self.lengths.get_mut(row as usize) {
            *len = terms.len() as u32;
        }
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for t in terms {
            *counts.entry(t).or_insert(0) += 1;
        }
        for (term, tf) in counts {
            match self.postings.get_mut(term) {
                Some(list) => list.push((row, tf)),
                None => {
                    self.postings.insert(term.into(), vec![(row, tf)]);
                }
            }
        }
    }

    /// The rows holding `term`, ascending, with its frequency in each.
    pub fn postings(&self, term: &str) -> &[(u32, u32)] {
        self.postings.get(term).map_or(&[], Vec::as_slice)
    }

    /// The number of terms of `row`.
    pub fn length(&self, row: u32) -> u32 {
        self.lengths.get(row as usize).copied().unwrap_or(0)
    }

    /// Records that row `row` was deleted or replaced at `seq` (above every sequence
    /// number recorded before).
    pub fn remove(&mut self, row: u32, seq: u64) {
        let len = self.length(row);
        if len > 0 {
            push(&mut self.removed, seq, len);
        }
    }

    /// The rows with at least one term that a snapshot at `seq` sees, and their terms.
    pub fn visible_totals(&self, seq: u64) -> (u64, u64) {
        let (rows, terms) = up_to(&self.added, seq);
        let (gone_rows, gone_terms) = up_to(&self.removed, seq);
        (rows - gone_rows, terms - gone_terms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_terms_and_lengths() {
        let mut t = MemText::default();
        let terms = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        t.add(0, 10, &terms("a b a"));
        t.add(3, 11, &terms("b c"));
        t.add(4, 12, &[]);
        assert_eq!(t.postings("a"), [(0, 2)]);
        assert_eq!(t.postings("b"), [(0, 1), (3, 1)]);
        assert_eq!(t.postings("z"), []);
        assert_eq!(
            (t.length(0), t.length(1), t.length(3), t.length(9)),
            (3, 0, 2, 0)
        );
        t.remove(0, 13);
        t.remove(4, 14);
        let totals = [9, 10, 11, 12, 13, 14].map(|s| t.visible_totals(s));
        assert_eq!(totals, [(0, 0), (1, 3), (2, 5), (2, 5), (1, 2), (1, 2)]);
    }
}
