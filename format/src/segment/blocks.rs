//! Per-block checksums of the sections a search reads a row at a time — `VECTORS`,
//! `PQ_CODES` and `GRAPH_L0` — kept in the `BLOCK_CRCS` section (version 5 on), and the
//! record of which blocks this open has already checked. A block is checked the first
//! time a read touches it, so a flipped bit in those sections is reported (as
//! [`crate::Error::Corruption`] naming the file and the block's offset) before a search
//! or a read returns anything computed from it, without reading whole sections at open.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::{SectionKind, SegmentReader};
use crate::codec::Reader;
use crate::error::{CorruptionKind, DecodeError, Result};

/// Bytes per checksummed block (the page size: a first check reads no page that the
/// read itself would not).
pub const CHECK_BLOCK: usize = 4096;
const SHIFT: u32 = CHECK_BLOCK.trailing_zeros();

/// A section with at most one block in this many (rounded up) left unchecked has the
/// rest checked at once by the next [`SegmentReader::row_check`].
const FINISH_FROM: usize = 64;

/// The sections `BLOCK_CRCS` covers, in the order their checksums are stored.
pub(super) const COVERED: [SectionKind; 3] = [
    SectionKind::Vectors,
    SectionKind::PqCodes,
    SectionKind::GraphLevel0,
];

/// Length of the `BLOCK_CRCS` header: block size `u32`, reserved `u32`.
const HEADER: usize = 8;

/// Encodes `BLOCK_CRCS` for the covered sections present, in [`COVERED`] order.
pub(super) fn encode(sections: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(CHECK_BLOCK as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for data in sections {
        for block in data.chunks(CHECK_BLOCK) {
            out.extend_from_slice(&crc32fast::hash(block).to_le_bytes());
        }
    }
    out
}

/// One covered section: where its checksums start in `BLOCK_CRCS`, and which of its
/// blocks have been checked since the segment was opened.
#[derive(Debug)]
struct Covered {
    crcs_at: usize,
    blocks: usize,
    /// Bytes per row of the section (fixed at open: dimension and codec, PQ code
    /// length, graph row stride).
    row_bytes: usize,
    checked: Vec<AtomicU64>,
    /// Blocks not yet checked: at 0, a [`RowCheck`] made from then on checks nothing.
    unchecked: AtomicUsize,
    /// Whether the remaining blocks were checked together once few were left (once per
    /// open: a damaged block stays unchecked, and is not checked again for each search).
    finished: AtomicBool,
}

impl Covered {
    /// Whether `block` has been checked.
    fn is_checked(&self, block: usize) -> bool {
        self.checked
            .get(block / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (block % 64)) != 0)
    }

    /// Records `block` as checked.
    fn mark(&self, block: usize) {
        let bit = 1 << (block % 64);
        if let Some(w) = self.checked.get(block / 64) {
            if w.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
                self.unchecked.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// The checked-blocks record of an open segment (empty before version 5).
#[derive(Debug, Default)]
pub(super) struct BlockChecks {
    covered: [Option<Covered>; 3],
}

impl BlockChecks {
    /// Lays out the checksums of a `BLOCK_CRCS` section at file offset `at` over the
    /// covered sections' lengths and row widths (`None`: absent), checking the lengths
    /// agree.
    pub(super) fn layout(
        section: &[u8],
        at: u64,
        covered: [Option<(u64, usize)>; 3],
    ) -> std::result::Result<Self, DecodeError> {
        let mut r = Reader::new(section, at);
        if r.u32()? as usize != CHECK_BLOCK || r.u32()? != 0 {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("checksum block size"),
            ));
        }
        let mut checks = BlockChecks::default();
        let mut crcs_at = HEADER;
        for (slot, section) in checks.covered.iter_mut().zip(covered) {
            let Some((len, row_bytes)) = section else {
                continue;
            };
            let blocks = len.div_ceil(CHECK_BLOCK as u64) as usize;
            *slot = Some(Covered {
                crcs_at,
                blocks,
                row_bytes,
                checked: (0..blocks.div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                unchecked: AtomicUsize::new(blocks),
                finished: AtomicBool::new(false),
            });
            crcs_at += 4 * blocks;
        }
        if crcs_at != section.len() {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("block checksums length"),
            ));
        }
        Ok(checks)
    }

    fn get(&self, kind: SectionKind) -> Option<&Covered> {
        let i = COVERED.iter().position(|&k| k == kind)?;
        self.covered.get(i)?.as_ref()
    }
}

/// Checks rows of one covered section before they are used: [`SegmentReader::row_check`].
#[derive(Clone, Copy)]
pub struct RowCheck<'a> {
    seg: &'a SegmentReader,
    kind: SectionKind,
    covered: Option<&'a Covered>,
}

impl RowCheck<'_> {
    /// Whether this checker checks nothing: the section is not covered, or every one
    /// of its blocks had been checked when the checker was made.
    pub fn is_complete(&self) -> bool {
        self.covered.is_none()
    }

    /// Checks the blocks holding `row` (each once per open). A row past the section is
    /// left to the reader's bounds checks.
    #[inline]
    pub fn row(&self, row: usize) -> Result<()> {
        let Some(c) = self.covered else {
            return Ok(());
        };
        let start = row.saturating_mul(c.row_bytes);
        self.bytes(start..start.saturating_add(c.row_bytes))
    }

    /// Checks the blocks holding byte range `bytes` of the section.
    #[inline]
    pub fn bytes(&self, bytes: std::ops::Range<usize>) -> Result<()> {
        let Some(c) = self.covered else {
            return Ok(());
        };
        if bytes.is_empty() {
            return Ok(());
        }
        let first = bytes.start >> SHIFT;
        let last = ((bytes.end - 1) >> SHIFT).min(c.blocks.saturating_sub(1));
        for block in first..=last {
            let word = c
                .checked
                .get(block / 64)
                .map_or(u64::MAX, |w| w.load(Ordering::Relaxed));
            if word & (1 << (block % 64)) == 0 {
                self.check_block(c, block)?;
            }
        }
        Ok(())
    }

    #[cold]
    fn check_block(&self, c: &Covered, block: usize) -> Result<()> {
        let data = self.seg.section_bytes(self.kind);
        let from = block << SHIFT;
        let bytes = data
            .get(from..(from + CHECK_BLOCK).min(data.len()))
            .unwrap_or(&[]);
        let crcs = self.seg.section_bytes(SectionKind::BlockCrcs);
        let at = c.crcs_at + 4 * block;
        let stored = crcs
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes);
        let offset = self.seg.section(self.kind).range.start + from as u64;
        crate::codec::check_crc(bytes, stored, offset).map_err(|e| e.at(self.seg.path()))?;
        c.mark(block);
        Ok(())
    }
}

impl SegmentReader {
    /// A checker of `kind`'s rows (`VECTORS`, `PQ_CODES` or `GRAPH_L0`; any other kind,
    /// or a segment before version 5, checks nothing): call it before using a row.
    pub fn row_check(&self, kind: SectionKind) -> RowCheck<'_> {
        let covered = self.blocks.get(kind);
        let check = RowCheck {
            seg: self,
            kind,
            covered,
        };
        // Once every block has been checked, reads check nothing more. Blocks no search
        // happens to read would keep every later search checking rows, so once few
        // are left they are checked together (a damaged one stays unchecked, and is
        // reported when a read reaches it).
        if let Some(c) = covered {
            let left = c.unchecked.load(Ordering::Relaxed);
            if left > 0
                && left <= c.blocks.div_ceil(FINISH_FROM)
                && !c.finished.swap(true, Ordering::Relaxed)
            {
                for block in (0..c.blocks).filter(|&b| !c.is_checked(b)) {
                    let _ = check.check_block(c, block);
                }
            }
        }
        match covered {
            Some(c) if c.unchecked.load(Ordering::Relaxed) == 0 => RowCheck {
                covered: None,
                ..check
            },
            _ => check,
        }
    }

    /// Checks `bytes`, blocks of `VECTORS` read from a vector source starting at the
    /// section's (block-aligned) offset `from`, against their stored checksums. A block is
    /// checked once per open, as a mapped one is: the source serves an immutable object,
    /// and the mapped section of such a segment is never read, so its checked record
    /// tracks the fetched blocks instead.
    pub(super) fn check_fetched_blocks(&self, from: usize, bytes: &[u8]) -> Result<()> {
        let Some(c) = self.blocks.get(SectionKind::Vectors) else {
            return Ok(());
        };
        let crcs = self.section_bytes(SectionKind::BlockCrcs);
        let base = self.section(SectionKind::Vectors).range.start;
        let first = from >> SHIFT;
        for (i, block_bytes) in bytes.chunks(CHECK_BLOCK).enumerate() {
            let block = first + i;
            let word = c.checked.get(block / 64);
            if word.is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (block % 64)) != 0) {
                continue;
            }
            let at = c.crcs_at + 4 * block;
            let stored = crcs
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes);
            let offset = base + (block << SHIFT) as u64;
            crate::codec::check_crc(block_bytes, stored, offset).map_err(|e| e.at(self.path()))?;
            c.mark(block);
        }
        Ok(())
    }

    /// Checks every block of every covered section (what [`Self::verify`] adds in
    /// version 5).
    pub(super) fn verify_blocks(&self) -> Result<()> {
        for kind in COVERED {
            let len = self.section_bytes(kind).len();
            self.row_check(kind).bytes(0..len)?;
        }
        Ok(())
    }
}
