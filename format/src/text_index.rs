//! The text index of a segment's rows: a term dictionary, postings in blocks with
//! per-block score bounds, and each row's length in terms (sections `TEXT_TERMS`,
//! `TEXT_POSTINGS`, `TEXT_LENGTHS`; `docs/format.md` is the normative layout).
//!
//! `TEXT_TERMS`: header (24 bytes: terms `u32`, term blocks `u32`, rows with at least one
//! term `u32`, zero `u32`, terms in all rows `u64`) · one `u32` offset per block of
//! [`TERMS_PER_BLOCK`] terms into the entries · the entries in byte order of their
//! terms, each `shared u8` (bytes in common with the previous term of its block, 0 for
//! the first) · `suffix_len u8` · the suffix · `df u32` (rows holding the term) ·
//! `postings u64` (offset of its list in `TEXT_POSTINGS`).
//!
//! A posting list: one 16-byte skip entry per block of [`POSTING_BLOCK`] rows (`last_row
//! u32`, `end u32` — where the block's bytes end, from the end of the skip entries —,
//! `max_tf u32`, `min_len u32`: the block's largest term frequency and shortest row),
//! then the blocks: `row_bits u8` · `tf_bits u8` · each row's gap to the previous row
//! minus one (the first block's first row as is) in `row_bits` bits · each `tf - 1` in
//! `tf_bits` bits, both packed little-endian from the lowest bit, each padded to a byte.
//! `TEXT_LENGTHS`: one `u32` per row (0: no terms).

use std::collections::HashMap;

use crate::codec::Reader;
use crate::error::{CorruptionKind, DecodeError};

/// Rows per posting block.
pub const POSTING_BLOCK: usize = 128;
/// Terms per dictionary block (the first of each is stored whole).
pub const TERMS_PER_BLOCK: usize = 32;
/// Longest term the dictionary stores, in bytes.
pub const MAX_TERM_BYTES: usize = 255;
const TERMS_HEADER: usize = 24;
const SKIP_ENTRY: usize = 16;

/// The three encoded sections of a text index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextSections {
    /// `TEXT_TERMS`.
    pub terms: Vec<u8>,
    /// `TEXT_POSTINGS`.
    pub postings: Vec<u8>,
    /// `TEXT_LENGTHS`.
    pub lengths: Vec<u8>,
}

/// Builds a text index from each row's terms, rows in order.
#[derive(Debug, Default)]
pub struct TextIndexBuilder {
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    counts: HashMap<String, u32>,
}

impl TextIndexBuilder {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next row with its terms (in any order, repeated as they occur; each at
    /// most [`MAX_TERM_BYTES`], longer ones are cut). A row without text has none.
    pub fn push_row<S: AsRef<str>>(&mut self, terms: &[S]) {
        let row = self.lengths.len() as u32;
        self.lengths.push(terms.len() as u32);
        for t in terms {
            *self.counts.entry(cut(t.as_ref()).to_owned()).or_insert(0) += 1;
        }
        for (term, tf) in self.counts.drain() {
            self.postings.entry(term).or_default().push((row, tf));
        }
    }

    /// Rows added so far.
    pub fn rows(&self) -> usize {
        self.lengths.len()
    }

    /// Encodes the sections.
    pub fn encode(self) -> TextSections {
        let mut terms: Vec<(String, Vec<(u32, u32)>)> = self.postings.into_iter().collect();
        terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut postings = Vec::new();
        let mut entries = Vec::new();
        let mut block_offsets = Vec::new();
        let mut prev: &[u8] = &[];
        for (i, (term, list)) in terms.iter().enumerate() {
            let t = term.as_bytes();
            let shared = if i % TERMS_PER_BLOCK == 0 {
                block_offsets.extend_from_slice(&(entries.len() as u32).to_le_bytes());
                0
            } else {
                prev.iter().zip(t).take_while(|(a, b)| a == b).count()
            };
            entries.push(shared as u8);
            entries.push((t.len() - shared) as u8);
            entries.extend_from_slice(t.get(shared..).unwrap_or(&[]));
            entries.extend_from_slice(&(list.len() as u32).to_le_bytes());
            entries.extend_from_slice(&(postings.len() as u64).to_le_bytes());
            encode_list(list, &self.lengths, &mut postings);
            prev = t;
        }
        let docs = self.lengths.iter().filter(|&&l| l > 0).count() as u32;
        let total: u64 = self.lengths.iter().map(|&l| l as u64).sum();
        let mut out = Vec::with_capacity(TERMS_HEADER + block_offsets.len() + entries.len());
        out.extend_from_slice(&(terms.len() as u32).to_le_bytes());
        out.extend_from_slice(&((block_offsets.len() / 4) as u32).to_le_bytes());
        out.extend_from_slice(&docs.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&block_offsets);
        out.extend_from_slice(&entries);
        TextSections {
            terms: out,
            postings,
            lengths: self.lengths.iter().flat_map(|l| l.to_le_bytes()).collect(),
        }
    }
}

/// `term` cut to at most [`MAX_TERM_BYTES`] at a character boundary.
fn cut(term: &str) -> &str {
    let mut end = term.len().min(MAX_TERM_BYTES);
    while !term.is_char_boundary(end) {
        end -= 1;
    }
    term.get(..end).unwrap_or_default()
}

fn bits_for(max: u32) -> u8 {
    (32 - max.leading_zeros()) as u8
}

fn pack(values: impl Iterator<Item = u32>, bits: u8, out: &mut Vec<u8>) {
    let (mut acc, mut have) = (0u64, 0u32);
    for v in values {
        acc |= (v as u64) << have;
        have += bits as u32;
        while have >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            have -= 8;
        }
    }
    if have > 0 {
        out.push(acc as u8);
    }
}

fn encode_list(list: &[(u32, u32)], lengths: &[u32], out: &mut Vec<u8>) {
    let blocks: Vec<&[(u32, u32)]> = list.chunks(POSTING_BLOCK).collect();
    let mut data = Vec::new();
    let mut skips = Vec::with_capacity(blocks.len() * SKIP_ENTRY);
    let mut prev: Option<u32> = None;
    for block in blocks {
        let gaps: Vec<u32> = block
            .iter()
            .map(|&(row, _)| {
                let gap = prev.map_or(row, |p| row - p - 1);
                prev = Some(row);
                gap
            })
            .collect();
        let row_bits = bits_for(gaps.iter().copied().max().unwrap_or(0));
        let max_tf = block.iter().map(|p| p.1).max().unwrap_or(1);
        let tf_bits = bits_for(max_tf - 1);
        data.push(row_bits);
        data.push(tf_bits);
        pack(gaps.into_iter(), row_bits, &mut data);
        pack(block.iter().map(|p| p.1 - 1), tf_bits, &mut data);
        let min_len = block
            .iter()
            .map(|&(r, _)| lengths.get(r as usize).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        for v in [prev.unwrap_or(0), data.len() as u32, max_tf, min_len] {
            skips.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&skips);
    out.extend_from_slice(&data);
}

/// A term's dictionary entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermEntry {
    /// Rows holding the term.
    pub df: u32,
    /// Offset of its posting list in `TEXT_POSTINGS`.
    pub postings: u64,
}

/// A segment's text index, read in place (every read bounds-checked; the caller checks
/// the sections' checksums before use).
#[derive(Debug, Clone, Copy)]
pub struct TextIndex<'a> {
    terms: &'a [u8],
    postings: &'a [u8],
    lengths: &'a [u8],
    at: [u64; 3],
    term_count: u32,
    blocks: u32,
    docs: u32,
    total: u64,
    rows: u32,
}

impl<'a> TextIndex<'a> {
    /// The index over `rows` rows in the three sections, which start at the file offsets
    /// `at` (for errors).
    pub fn open(sections: [&'a [u8]; 3], at: [u64; 3], rows: u32) -> Result<Self, DecodeError> {
        let [terms, postings, lengths] = sections;
        let mut r = Reader::new(terms, at[0]);
        let term_count = r.u32()?;
        let blocks = r.u32()?;
        let docs = r.u32()?;
        let zero = r.u32()?;
        let total = r.u64()?;
        let bad = |what| Err(Reader::fault_at(at[0], CorruptionKind::Invalid(what)));
        if blocks as usize != (term_count as usize).div_ceil(TERMS_PER_BLOCK)
            || (blocks as usize * 4) > r.remaining()
            || docs > rows
            || zero != 0
        {
            return bad("text dictionary header");
        }
        if lengths.len() != rows as usize * 4 {
            return Err(Reader::fault_at(
                at[2],
                CorruptionKind::Invalid("text lengths section length"),
            ));
        }
        Ok(TextIndex {
            terms,
            postings,
            lengths,
            at,
            term_count,
            blocks,
            docs,
            total,
            rows,
        })
    }

    /// Rows with at least one term.
    pub fn docs(&self) -> u32 {
        self.docs
    }

    /// Terms in all rows together.
    pub fn total_terms(&self) -> u64 {
        self.total
    }

    /// Distinct terms.
    pub fn term_count(&self) -> u32 {
        self.term_count
    }

    /// The number of terms of `row` (0 without text or past the end).
    #[inline]
    pub fn length(&self, row: u32) -> u32 {
        le_u32(self.lengths, row as usize * 4)
    }

    fn entries_start(&self) -> usize {
        TERMS_HEADER + self.blocks as usize * 4
    }

    fn block_start(&self, block: u32) -> Result<usize, DecodeError> {
        let mut r = Reader::new(self.terms, self.at[0]);
        r.bytes(TERMS_HEADER + block as usize * 4)?;
        Ok(self.entries_start() + r.u32()? as usize)
    }

    /// Calls `f(term, entry)` for each term of dictionary block `block`, in order, until
    /// it returns false.
    fn scan_block(
        &self,
        block: u32,
        mut f: impl FnMut(&[u8], TermEntry) -> bool,
    ) -> Result<(), DecodeError> {
        let start = self.block_start(block)?;
        let mut r = Reader::new(
            self.terms.get(start..).unwrap_or(&[]),
            self.at[0] + start as u64,
        );
        let first = block as usize * TERMS_PER_BLOCK;
        let n = (self.term_count as usize - first).min(TERMS_PER_BLOCK);
        let mut term: Vec<u8> = Vec::with_capacity(32);
        for _ in 0..n {
            let shared = r.u8()? as usize;
            let suffix = r.u8()? as usize;
            if shared > term.len() {
                return Err(r.fault(CorruptionKind::Invalid("text dictionary entry")));
            }
            term.truncate(shared);
            term.extend_from_slice(r.bytes(suffix)?);
            let entry = TermEntry {
                df: r.u32()?,
                postings: r.u64()?,
            };
            if !f(&term, entry) {
                break;
            }
        }
        Ok(())
    }

    /// The dictionary entry of `term` (`None`: no row holds it).
    pub fn lookup(&self, term: &str) -> Result<Option<TermEntry>, DecodeError> {
        let want = cut(term).as_bytes();
        if self.blocks == 0 {
            return Ok(None);
        }
        // The last block whose first term is at most `want`.
        let (mut lo, mut hi) = (0u32, self.blocks);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let mut first = Vec::new();
            self.scan_block(mid, |t, _| {
                first = t.to_vec();
                false
            })?;
            if first.as_slice() <= want {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let mut found = None;
        self.scan_block(lo, |t, e| {
            if t == want {
                found = Some(e);
            }
            t < want
        })?;
        Ok(found)
    }

    /// Calls `f(term, entry)` for every term in order (for checks and statistics).
    pub fn for_each_term(
        &self,
        mut f: impl FnMut(&[u8], TermEntry) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut err = Ok(());
        for b in 0..self.blocks {
            self.scan_block(b, |t, e| {
                err = f(t, e);
                err.is_ok()
            })?;
            err.clone()?;
        }
        Ok(())
    }

    /// The posting list of a term's entry.
    pub fn postings(&self, entry: TermEntry) -> Result<Postings<'a>, DecodeError> {
        let blocks = (entry.df as usize).div_ceil(POSTING_BLOCK);
        let start = usize::try_from(entry.postings).unwrap_or(usize::MAX);
        let at = self.at[1].saturating_add(entry.postings);
        let fault = || Reader::fault_at(at, CorruptionKind::Invalid("text posting list"));
        if entry.df == 0 {
            return Err(fault());
        }
        let skips_end = start.checked_add(blocks * SKIP_ENTRY).ok_or_else(fault)?;
        let skips = self.postings.get(start..skips_end).ok_or_else(fault)?;
        let data = self.postings.get(skips_end..).ok_or_else(fault)?;
        let list = Postings {
            skips,
            data,
            df: entry.df,
            rows: self.rows,
            at,
        };
        let end = list.skip(blocks - 1).end as usize;
        Ok(Postings {
            data: data.get(..end).ok_or_else(fault)?,
            ..list
        })
    }

    /// Checks every term's order and posting list, and the header's totals.
    pub fn verify(&self) -> Result<(), DecodeError> {
        let mut prev: Option<Vec<u8>> = None;
        let mut rows = vec![0u32; POSTING_BLOCK];
        let mut tfs = vec![0u32; POSTING_BLOCK];
        let mut count = 0u32;
        let mut sum = 0u64;
        // Each row's frequencies must add up to its length.
        let mut per_row = vec![0u64; self.rows as usize];
        self.for_each_term(|t, e| {
            let bad_term = t.is_empty() || std::str::from_utf8(t).is_err();
            if bad_term || prev.as_deref().is_some_and(|p| p >= t) {
                return Err(Reader::fault_at(
                    self.at[0],
                    CorruptionKind::Invalid("text dictionary order"),
                ));
            }
            prev = Some(t.to_vec());
            let list = self.postings(e)?;
            for b in 0..list.blocks() {
                let n = list.decode(b, &mut rows, &mut tfs)?;
                let (rows, tfs) = (rows.get(..n).unwrap_or(&[]), tfs.get(..n).unwrap_or(&[]));
                sum += tfs.iter().map(|&x| x as u64).sum::<u64>();
                for (&r, &tf) in rows.iter().zip(tfs) {
                    if let Some(n) = per_row.get_mut(r as usize) {
                        *n += tf as u64;
                    }
                }
                // The bounds must be exact: a search skips blocks by them.
                let skip = list.skip(b);
                let max_tf = tfs.iter().copied().max();
                let min_len = rows.iter().map(|&r| self.length(r)).min();
                if max_tf != Some(skip.max_tf) || min_len != Some(skip.min_len) {
                    return Err(Reader::fault_at(
                        list.at,
                        CorruptionKind::Invalid("text posting block bounds"),
                    ));
                }
            }
            count += 1;
            Ok(())
        })?;
        let lengths: u64 = (0..self.rows).map(|r| self.length(r) as u64).sum();
        let docs = (0..self.rows).filter(|&r| self.length(r) > 0).count() as u32;
        let rows_agree = per_row
            .iter()
            .enumerate()
            .all(|(r, &n)| n == self.length(r as u32) as u64);
        if count != self.term_count
            || sum != self.total
            || lengths != self.total
            || docs != self.docs
            || !rows_agree
        {
            return Err(Reader::fault_at(
                self.at[0],
                CorruptionKind::Invalid("text index totals"),
            ));
        }
        Ok(())
    }
}

/// One block's skip entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    /// The block's last row.
    pub last_row: u32,
    /// Where the block's bytes end (from the start of the blocks).
    pub end: u32,
    /// The block's largest term frequency.
    pub max_tf: u32,
    /// The block's shortest row, in terms.
    pub min_len: u32,
}

/// A term's posting list: rows ascending with their term frequencies, in blocks.
#[derive(Debug, Clone, Copy)]
pub struct Postings<'a> {
    skips: &'a [u8],
    data: &'a [u8],
    df: u32,
    rows: u32,
    at: u64,
}

impl Postings<'_> {
    /// Rows in the list.
    pub fn len(&self) -> u32 {
        self.df
    }

    /// Whether the list is empty (never, for a stored term).
    pub fn is_empty(&self) -> bool {
        self.df == 0
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.skips.len() / SKIP_ENTRY
    }

    /// The skip entry of block `b` (zeros past the end).
    #[inline]
    pub fn skip(&self, b: usize) -> Skip {
        let word = |i: usize| le_u32(self.skips, b * SKIP_ENTRY + i * 4);
        Skip {
            last_row: word(0),
            end: word(1),
            max_tf: word(2),
            min_len: word(3),
        }
    }

    /// Decodes block `b` into `rows` and `tfs` (each at least [`POSTING_BLOCK`] long);
    /// returns its number of rows. Rows are checked to ascend, end at the skip entry's
    /// last row and lie within the segment; frequencies to stay within the block's
    /// maximum.
    pub fn decode(
        &self,
        b: usize,
        rows: &mut [u32],
        tfs: &mut [u32],
    ) -> Result<usize, DecodeError> {
        let n = self.decode_rows(b, rows)?;
        self.decode_tfs(b, tfs)?;
        Ok(n)
    }

    /// The block's row count, and its packed rows and frequencies with their widths.
    fn block(&self, b: usize) -> Result<PackedBlock<'_>, DecodeError> {
        let fault = || Reader::fault_at(self.at, CorruptionKind::Invalid("text posting block"));
        if b >= self.blocks() {
            return Err(fault());
        }
        let n = if b + 1 == self.blocks() {
            self.df as usize - b * POSTING_BLOCK
        } else {
            POSTING_BLOCK
        };
        let start = if b == 0 {
            0
        } else {
            self.skip(b - 1).end as usize
        };
        let block = self
            .data
            .get(start..self.skip(b).end as usize)
            .ok_or_else(fault)?;
        let Some((&[row_bits, tf_bits], packed)) = block.split_first_chunk::<2>() else {
            return Err(fault());
        };
        if row_bits > 32 || tf_bits > 32 {
            return Err(fault());
        }
        let row_bytes = (n * row_bits as usize).div_ceil(8);
        let tf_bytes = (n * tf_bits as usize).div_ceil(8);
        if packed.len() != row_bytes + tf_bytes {
            return Err(fault());
        }
        let (rows, tfs) = packed.split_at(row_bytes);
        Ok(PackedBlock {
            n,
            rows: (row_bits, rows),
            tfs: (tf_bits, tfs),
        })
    }

    /// Decodes the rows of block `b` into `rows` (at least [`POSTING_BLOCK`] long);
    /// returns how many. They are checked to ascend, end at the skip entry's last row and
    /// lie within the segment.
    pub fn decode_rows(&self, b: usize, rows: &mut [u32]) -> Result<usize, DecodeError> {
        let fault = || Reader::fault_at(self.at, CorruptionKind::Invalid("text posting block"));
        let PackedBlock {
            n,
            rows: (bits, packed),
            ..
        } = self.block(b)?;
        let rows = rows.get_mut(..n).ok_or_else(fault)?;
        unpack(packed, bits, rows);
        // Gaps are unsigned: the rows ascend unless a sum overflows, which the 64-bit
        // sum and the last row's check find.
        let mut next: u64 = if b == 0 {
            0
        } else {
            self.skip(b - 1).last_row as u64 + 1
        };
        for r in rows.iter_mut() {
            let row = next + *r as u64;
            *r = row as u32;
            next = row + 1;
        }
        let last = next.wrapping_sub(1);
        let skip = self.skip(b);
        if n == 0 || last != skip.last_row as u64 || last >= self.rows as u64 {
            return Err(fault());
        }
        Ok(n)
    }

    /// Decodes the term frequencies of block `b` into `tfs` (at least
    /// [`POSTING_BLOCK`] long); returns how many. They are checked to stay within the
    /// block's maximum.
    pub fn decode_tfs(&self, b: usize, tfs: &mut [u32]) -> Result<usize, DecodeError> {
        let fault = || Reader::fault_at(self.at, CorruptionKind::Invalid("text posting block"));
        let PackedBlock {
            n,
            tfs: (bits, packed),
            ..
        } = self.block(b)?;
        let tfs = tfs.get_mut(..n).ok_or_else(fault)?;
        unpack(packed, bits, tfs);
        let max = self.skip(b).max_tf;
        let mut over = false;
        for tf in tfs.iter_mut() {
            over |= *tf >= max;
            *tf = tf.wrapping_add(1);
        }
        if over {
            return Err(fault());
        }
        Ok(n)
    }
}

/// A posting block's row count, and its packed rows and frequencies with their widths
/// in bits.
struct PackedBlock<'a> {
    n: usize,
    rows: (u8, &'a [u8]),
    tfs: (u8, &'a [u8]),
}

/// The little-endian `u32` at `at` (0 past the end).
#[inline]
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn unpack(bytes: &[u8], bits: u8, out: &mut [u32]) {
    if bits == 0 {
        out.fill(0);
        return;
    }
    let mask = (1u64 << bits) - 1;
    for (i, v) in out.iter_mut().enumerate() {
        let bit = i * bits as usize;
        let at = bit / 8;
        // One unaligned 8-byte load (bits + 7 ≤ 39 fit); near the end, the bytes left.
        let word = match bytes.get(at..at + 8) {
            Some(b) => b.try_into().map_or(0, u64::from_le_bytes),
            None => bytes
                .get(at..)
                .unwrap_or(&[])
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | b as u64),
        };
        *v = ((word >> (bit % 8)) & mask) as u32;
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn sample() -> (Vec<Vec<String>>, TextSections) {
        let words = [
            "alpha", "beta", "gamma", "delta", "alphabet", "alps", "über", "日本",
        ];
        let rows: Vec<Vec<String>> = (0..1000u32)
            .map(|r| {
                if r % 7 == 3 {
                    return Vec::new();
                }
                let mut t = Vec::new();
                for (i, w) in words.iter().enumerate() {
                    let tf = (r as usize * (i + 3)) % (i + 2);
                    t.extend(std::iter::repeat_n(w.to_string(), tf));
                }
                t.push(format!("t{}", r % 97));
                t
            })
            .collect();
        let mut b = TextIndexBuilder::new();
        rows.iter().for_each(|r| b.push_row(r));
        (rows, b.encode())
    }

    fn open(s: &TextSections, rows: u32) -> TextIndex<'_> {
        TextIndex::open([&s.terms, &s.postings, &s.lengths], [0, 0, 0], rows).unwrap()
    }

    #[test]
    fn every_term_reads_back_its_rows_and_frequencies() {
        let (rows, s) = sample();
        let ix = open(&s, rows.len() as u32);
        ix.verify().unwrap();
        let mut want: HashMap<&str, Vec<(u32, u32)>> = HashMap::new();
        for (r, terms) in rows.iter().enumerate() {
            let mut c: HashMap<&str, u32> = HashMap::new();
            terms.iter().for_each(|t| *c.entry(t).or_default() += 1);
            for (t, tf) in c {
                want.entry(t).or_default().push((r as u32, tf));
            }
            assert_eq!(ix.length(r as u32), terms.len() as u32);
        }
        assert_eq!(ix.term_count() as usize, want.len());
        let (mut rs, mut ts) = (vec![0; POSTING_BLOCK], vec![0; POSTING_BLOCK]);
        for (t, mut list) in want {
            list.sort_unstable();
            let e = ix.lookup(t).unwrap().unwrap();
            assert_eq!(e.df as usize, list.len());
            let p = ix.postings(e).unwrap();
            let mut got = Vec::new();
            for b in 0..p.blocks() {
                let n = p.decode(b, &mut rs, &mut ts).unwrap();
                let skip = p.skip(b);
                assert_eq!(rs[n - 1], skip.last_row);
                assert!(ts[..n].iter().all(|&x| x <= skip.max_tf));
                assert!(rs[..n].iter().all(|&r| ix.length(r) >= skip.min_len));
                got.extend(rs[..n].iter().copied().zip(ts[..n].iter().copied()));
            }
            assert_eq!(got, list, "term {t}");
        }
        for missing in ["", "a", "alph", "alphabets", "zzz", "日", "t97"] {
            assert_eq!(ix.lookup(missing).unwrap(), None, "{missing}");
        }
        let docs = rows.iter().filter(|r| !r.is_empty()).count() as u32;
        assert_eq!(ix.docs(), docs);
        assert_eq!(
            ix.total_terms(),
            rows.iter().map(|r| r.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn an_empty_index_has_no_terms() {
        let mut b = TextIndexBuilder::new();
        b.push_row::<&str>(&[]);
        let s = b.encode();
        let ix = open(&s, 1);
        ix.verify().unwrap();
        assert_eq!(ix.lookup("x").unwrap(), None);
        assert_eq!((ix.docs(), ix.total_terms()), (0, 0));
    }

    #[test]
    fn long_terms_are_cut_alike_when_written_and_looked_up() {
        let long = "é".repeat(200);
        let mut b = TextIndexBuilder::new();
        b.push_row(&[long.as_str()]);
        let s = b.encode();
        let ix = open(&s, 1);
        assert_eq!(ix.lookup(&long).unwrap().map(|e| e.df), Some(1));
    }

    #[test]
    fn damaged_sections_are_errors_never_panics() {
        let (rows, s) = sample();
        let n = rows.len() as u32;
        let (mut rs, mut ts) = (vec![0; POSTING_BLOCK], vec![0; POSTING_BLOCK]);
        let mut caught = 0;
        let all = s.terms.len() + s.postings.len();
        for i in (0..all).step_by(7) {
            for bit in [0u8, 3, 7] {
                let mut d = s.clone();
                let byte = if i < d.terms.len() {
                    &mut d.terms[i]
                } else {
                    &mut d.postings[i - s.terms.len()]
                };
                *byte ^= 1 << bit;
                let Ok(ix) = TextIndex::open([&d.terms, &d.postings, &d.lengths], [0; 3], n) else {
                    caught += 1;
                    continue;
                };
                // Reads of a damaged index return errors or wrong values, never panic;
                // the full check finds the damage.
                for t in ["alpha", "gamma", "t5", "über"] {
                    if let Ok(Some(e)) = ix.lookup(t) {
                        if let Ok(p) = ix.postings(e) {
                            for b in 0..p.blocks() {
                                let _ = p.decode(b, &mut rs, &mut ts);
                            }
                        }
                    }
                }
                if ix.verify().is_err() {
                    caught += 1;
                }
            }
        }
        // Every flip is caught by the full check except in bytes it cannot see
        // (padding bits of packed values); most are.
        assert!(caught * 10 >= (all.div_ceil(7)) * 3 * 9, "caught {caught}");
    }
}
