//! String keys in a segment (version 4 on): `KEY_OFFSETS` and `KEY_BYTES` hold each row's
//! key, `KEY_HASHES` finds the rows of a key by binary search over the keys' FNV-1a
//! hashes. Keys are compared in full after the hash matches, so two keys with the same
//! hash stay two keys.

use super::*;

/// Longest string key, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 512;

/// The 64-bit FNV-1a hash of `key`'s bytes: what `KEY_HASHES` is sorted by.
pub fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The three key sections of `keys` (one per row): offsets, bytes, hashes.
pub(super) fn encode_keys(keys: &[&str]) -> std::io::Result<[Vec<u8>; 3]> {
    let mut offsets = Vec::with_capacity((keys.len() + 1) * 8);
    let mut bytes = Vec::new();
    offsets.extend_from_slice(&0u64.to_le_bytes());
    for k in keys {
        if k.len() > MAX_KEY_LEN {
            return Err(std::io::Error::other("key longer than the limit"));
        }
        bytes.extend_from_slice(k.as_bytes());
        offsets.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    let mut order: Vec<(u64, u32)> = keys
        .iter()
        .enumerate()
        .map(|(row, k)| (key_hash(k), row as u32))
        .collect();
    order.sort_unstable();
    let mut hashes = Vec::with_capacity(keys.len() * 12);
    for (h, _) in &order {
        hashes.extend_from_slice(&h.to_le_bytes());
    }
    for (_, row) in &order {
        hashes.extend_from_slice(&row.to_le_bytes());
    }
    Ok([offsets, bytes, hashes])
}

impl SegmentReader {
    /// Whether the segment holds string keys (a segment of a string-keyed store).
    pub fn has_keys(&self) -> bool {
        self.sections.has(SectionKind::KeyOffsets)
    }

    fn key_fault(&self, kind: SectionKind, at: usize) -> DecodeError {
        Reader::fault_at(
            self.section(kind).range.start + at as u64,
            CorruptionKind::Invalid("string key"),
        )
    }

    fn key_at(&self, row: usize) -> std::result::Result<&str, DecodeError> {
        let offsets = self.section_bytes(SectionKind::KeyOffsets);
        let word = |i: usize| {
            offsets
                .get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| self.key_fault(SectionKind::KeyOffsets, i * 8))
        };
        let (start, end) = (word(row)?, word(row + 1)?);
        let bytes = self.section_bytes(SectionKind::KeyBytes);
        let len = end.checked_sub(start).filter(|&l| l <= MAX_KEY_LEN as u64);
        len.and_then(|_| bytes.get(start as usize..end as usize))
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| self.key_fault(SectionKind::KeyOffsets, row * 8))
    }

    /// The string key of `row`; `None` in a segment without keys.
    pub fn key(&self, row: usize) -> Result<Option<&str>> {
        if !self.has_keys() {
            return Ok(None);
        }
        self.key_at(row).map(Some).map_err(|e| e.at(&self.path))
    }

    /// The `KEY_HASHES` section as (hashes, rows).
    fn key_hashes(&self) -> std::result::Result<(&[u64], &[u32]), DecodeError> {
        let b = self.section_bytes(SectionKind::KeyHashes);
        let rows = self.rows();
        let (h, r) = b.split_at(b.len().min(rows * 8));
        match (bytemuck::try_cast_slice(h), bytemuck::try_cast_slice(r)) {
            (Ok(h), Ok(r)) => Ok((h, r)),
            _ => Err(self.key_fault(SectionKind::KeyHashes, 0)),
        }
    }

    /// The rows whose key is `key` (at most one unless older rows of the key are
    /// deleted); empty in a segment without keys.
    pub fn rows_with_key(&self, key: &str) -> Result<Vec<usize>> {
        if !self.has_keys() {
            return Ok(Vec::new());
        }
        let find = || -> std::result::Result<Vec<usize>, DecodeError> {
            let (hashes, rows) = self.key_hashes()?;
            let h = key_hash(key);
            let first = hashes.partition_point(|&x| x < h);
            let mut out = Vec::new();
            for (i, _) in hashes
                .iter()
                .enumerate()
                .skip(first)
                .take_while(|(_, &x)| x == h)
            {
                let row = *rows
                    .get(i)
                    .ok_or_else(|| self.key_fault(SectionKind::KeyHashes, i))?
                    as usize;
                if row < self.rows() && self.key_at(row)? == key {
                    out.push(row);
                }
            }
            Ok(out)
        };
        find().map_err(|e| e.at(&self.path))
    }

    /// Full check of the key sections: offsets, UTF-8 and length of every key, and the
    /// hash index (sorted, each row once, each hash its row's key's).
    pub(super) fn verify_keys(&self) -> std::result::Result<(), DecodeError> {
        if !self.has_keys() {
            return Ok(());
        }
        let n = self.rows();
        let total = self.section_bytes(SectionKind::KeyBytes).len();
        let last = self
            .section_bytes(SectionKind::KeyOffsets)
            .get(n * 8..n * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        if last != Some(total as u64) {
            return Err(self.key_fault(SectionKind::KeyOffsets, n * 8));
        }
        let (hashes, rows) = self.key_hashes()?;
        let mut seen = vec![false; n];
        let mut prev = None;
        for (i, (&h, &row)) in hashes.iter().zip(rows).enumerate() {
            let slot = seen.get_mut(row as usize);
            let fresh = matches!(slot, Some(false));
            if !fresh || prev.is_some_and(|p| p > (h, row)) {
                return Err(self.key_fault(SectionKind::KeyHashes, i * 8));
            }
            if let Some(s) = slot {
                *s = true;
            }
            if key_hash(self.key_at(row as usize)?) != h {
                return Err(self.key_fault(SectionKind::KeyHashes, i * 8));
            }
            prev = Some((h, row));
        }
        Ok(())
    }
}
