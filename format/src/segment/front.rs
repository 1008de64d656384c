//! Keeping a segment's search front — the sections every graph walk reads: index
//! parameters, PQ codebook and codes, graph levels — in process memory instead of the
//! page cache, where memory pressure evicts it and each walk then faults on it.
//!
//! [`SegmentReader::load_front`] copies those sections, which the writer lays out
//! contiguously, into one heap buffer, checks the copy against the section table's
//! checksums and from then on serves their reads from it. Full vectors, ids and payloads stay mapped.

use std::ops::Range;

use super::{SectionKind, SegmentReader};
use crate::error::{CorruptionKind, Result};

/// The index sections, which together are the front.
const FRONT: [SectionKind; 5] = [
    SectionKind::IndexMeta,
    SectionKind::PqCodebook,
    SectionKind::PqCodes,
    SectionKind::GraphLevel0,
    SectionKind::GraphUpper,
];

/// A heap copy of the file range `range` (8-byte aligned, so `u32`/`f32` sections cast
/// in place as they do from the map).
#[derive(Debug)]
pub(super) struct HeapFront {
    range: Range<u64>,
    words: Box<[u64]>,
}

impl HeapFront {
    /// The bytes of file range `r`, when the copy holds all of it.
    #[inline]
    pub(super) fn get(&self, r: &Range<u64>) -> Option<&[u8]> {
        if r.start < self.range.start || r.end > self.range.end {
            return None;
        }
        let from = (r.start - self.range.start) as usize;
        let to = (r.end - self.range.start) as usize;
        bytemuck::cast_slice::<u64, u8>(&self.words).get(from..to)
    }
}

impl SegmentReader {
    /// Reads this segment's search front (index parameters, PQ codebook and codes,
    /// graph) into process memory and checks it against its checksums; from then on
    /// searches read it from there. Nothing to do for a segment without an index or
    /// when it is already loaded. A damaged block is [`crate::Error::Corruption`]
    /// naming the file and offset, and leaves the segment reading from the map.
    pub fn load_front(&mut self) -> Result<()> {
        if self.front.is_some() || !self.sections.has(SectionKind::IndexMeta) {
            return Ok(());
        }
        let ranges = FRONT.map(|k| self.section(k).range.clone());
        let start = ranges.iter().map(|r| r.start).min().unwrap_or(0);
        let end = ranges.iter().map(|r| r.end).max().unwrap_or(0);
        let bytes = self
            .bytes
            .as_slice()
            .get(start as usize..end as usize)
            .ok_or_else(|| {
                crate::Error::corrupt(
                    &self.path,
                    start,
                    CorruptionKind::Invalid("index sections beyond the file"),
                )
            })?;
        let mut words = vec![0u64; bytes.len().div_ceil(8)].into_boxed_slice();
        if let Some(dst) = bytemuck::cast_slice_mut::<u64, u8>(&mut words).get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.front = Some(HeapFront {
            range: start..end,
            words,
        });
        // Check the copy itself, the bytes every search will read.
        let checked = self.check_front();
        if checked.is_err() {
            self.front = None;
        }
        checked
    }

    /// Bytes of this segment held in process memory by [`Self::load_front`] (0 while
    /// everything is read from the map).
    pub fn front_in_memory(&self) -> u64 {
        self.front
            .as_ref()
            .map_or(0, |f| f.range.end - f.range.start)
    }

    /// Checks the copy against the section table's checksums (every version has them).
    fn check_front(&self) -> Result<()> {
        for kind in FRONT {
            self.check_section(kind).map_err(|e| e.at(&self.path))?;
        }
        Ok(())
    }
}
