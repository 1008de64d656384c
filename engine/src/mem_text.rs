//! A memtable's text index: each term's rows with their frequencies, and each row's
//! length in terms, grown as rows arrive (row = position in the memtable).

use std::collections::HashMap;

/// The text index of a memtable's rows.
#[derive(Debug, Default)]
pub(crate) struct MemText {
    postings: HashMap<Box<str>, Vec<(u32, u32)>>,
    /// Terms per row (0: no text, or no terms); rows past the end have none.
    lengths: Vec<u32>,
}

impl MemText {
    /// Indexes row `row` (above every row indexed before) with its `terms`.
    pub fn add(&mut self, row: u32, terms: &[String]) {
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

    /// Every row with at least one term, with its length.
    pub fn rows_with_terms(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.lengths
            .iter()
            .enumerate()
            .filter(|(_, &l)| l > 0)
            .map(|(r, &l)| (r as u32, l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_terms_and_lengths() {
        let mut t = MemText::default();
        let terms = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        t.add(0, &terms("a b a"));
        t.add(3, &terms("b c"));
        t.add(4, &[]);
        assert_eq!(t.postings("a"), [(0, 2)]);
        assert_eq!(t.postings("b"), [(0, 1), (3, 1)]);
        assert_eq!(t.postings("z"), []);
        assert_eq!(
            (t.length(0), t.length(1), t.length(3), t.length(9)),
            (3, 0, 2, 0)
        );
        assert_eq!(t.rows_with_terms().collect::<Vec<_>>(), [(0, 3), (3, 2)]);
    }
}
