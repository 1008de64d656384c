//! Deletion bitmaps and their files: which rows of one segment are tombstoned.
//!
//! File layout (version 1): magic `STRATDEL` · version `u32` · reserved `u32` ·
//! segment file number `u64` · rows `u64` · deleted count `u64` · `ceil(rows/64)` words
//! `u64` (bit `r % 64` of word `r / 64` set = row `r` deleted) · CRC32 of all preceding
//! bytes `u32`.

use std::path::Path;

use crate::codec::{check_crc, expect_magic, expect_version, Reader};
use crate::error::{CorruptionKind, DecodeError, Error, Result};

/// Magic at offset 0 of a deletion file.
pub const DELETION_MAGIC: &[u8; 8] = b"STRATDEL";
/// Format version written by this build.
pub const DELETION_VERSION: u32 = 1;
const FIXED_LEN: usize = 40;

/// A fixed-size set of deleted rows of one segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeletionBitmap {
    words: Vec<u64>,
    rows: usize,
    count: usize,
}

impl DeletionBitmap {
    /// An empty bitmap over `rows` rows.
    pub fn new(rows: usize) -> Self {
        DeletionBitmap {
            words: vec![0; rows.div_ceil(64)],
            rows,
            count: 0,
        }
    }

    /// Rows covered.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Rows deleted.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The bitmap's words: bit `r % 64` of word `r / 64` set when row `r` is deleted
    /// (bits past the last row are zero).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Whether `row` is deleted (rows out of range read as deleted).
    #[inline]
    pub fn contains(&self, row: usize) -> bool {
        self.words
            .get(row / 64)
            .is_none_or(|w| w & (1 << (row % 64)) != 0)
    }

    /// Marks `row` deleted; returns false if it already was (or is out of range).
    pub fn insert(&mut self, row: usize) -> bool {
        if row >= self.rows {
            return false;
        }
        match self.words.get_mut(row / 64) {
            Some(w) if *w & (1 << (row % 64)) == 0 => {
                *w |= 1 << (row % 64);
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// Encodes the deletion file of segment `segment_no`.
    pub fn encode(&self, segment_no: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED_LEN + self.words.len() * 8 + 8);
        b.extend_from_slice(DELETION_MAGIC);
        b.extend_from_slice(&DELETION_VERSION.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&segment_no.to_le_bytes());
        b.extend_from_slice(&(self.rows as u64).to_le_bytes());
        b.extend_from_slice(&(self.count as u64).to_le_bytes());
        for w in &self.words {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a deletion file; checks it belongs to `segment_no` with `rows` rows.
    pub fn decode(
        buf: &[u8],
        segment_no: u64,
        rows: usize,
    ) -> std::result::Result<Self, DecodeError> {
        let mut r = Reader::new(buf, 0);
        expect_magic(&mut r, DELETION_MAGIC)?;
        let version = r.u32()?;
        let words_len = rows.div_ceil(64);
        let total = FIXED_LEN + words_len * 8 + 4;
        if buf.len() != total {
            return Err(Reader::fault_at(
                0,
                CorruptionKind::Length {
                    expected: total as u64,
                    actual: buf.len() as u64,
                },
            ));
        }
        let body = buf.get(..total - 4).unwrap_or(&[]);
        let stored = u32::from_le_bytes(
            buf.get(total - 4..)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 4]),
        );
        check_crc(body, stored, (total - 4) as u64)?;
        expect_version(version, 1, DELETION_VERSION, 8)?;
        r.u32()?;
        if r.u64()? != segment_no {
            return Err(Reader::fault_at(
                16,
                CorruptionKind::Invalid("segment number"),
            ));
        }
        if r.u64()? != rows as u64 {
            return Err(Reader::fault_at(24, CorruptionKind::Invalid("row count")));
        }
        let count = r.u64()?;
        let mut words = Vec::with_capacity(words_len);
        for _ in 0..words_len {
            words.push(r.u64()?);
        }
        let tail_bits = rows % 64;
        if let (Some(last), true) = (words.last(), tail_bits != 0) {
            if last >> tail_bits != 0 {
                return Err(Reader::fault_at(
                    (total - 12) as u64,
                    CorruptionKind::Invalid("bits past the last row"),
                ));
            }
        }
        let popcount: u64 = words.iter().map(|w| w.count_ones() as u64).sum();
        if popcount != count {
            return Err(Reader::fault_at(
                32,
                CorruptionKind::Invalid("deleted count"),
            ));
        }
        Ok(DeletionBitmap {
            words,
            rows,
            count: count as usize,
        })
    }

    /// Reads and decodes the deletion file at `path`.
    pub fn read(
        fs: &dyn strata_vfs::Vfs,
        path: &Path,
        segment_no: u64,
        rows: usize,
    ) -> Result<Self> {
        let buf = fs.read(path).map_err(|e| Error::io(path, e))?;
        Self::decode(&buf, segment_no, rows).map_err(|e| e.at(path))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_counts() {
        let mut b = DeletionBitmap::new(130);
        assert!(b.insert(0) && b.insert(129) && b.insert(64));
        assert!(!b.insert(64) && !b.insert(130));
        assert_eq!(b.count(), 3);
        let enc = b.encode(5);
        let d = DeletionBitmap::decode(&enc, 5, 130).unwrap();
        assert_eq!(d, b);
        assert!(d.contains(129) && !d.contains(128));
        assert!(DeletionBitmap::decode(&enc, 6, 130).is_err());
        assert!(DeletionBitmap::decode(&enc, 5, 129).is_err());
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut b = DeletionBitmap::new(100);
        b.insert(3);
        let enc = b.encode(9);
        for bit in 0..enc.len() * 8 {
            let mut bad = enc.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(DeletionBitmap::decode(&bad, 9, 100).is_err(), "bit {bit}");
        }
    }
}
