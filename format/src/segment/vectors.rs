//! Reading a segment's full vectors: the `VECTORS` section decoded from its codec
//! (`crate::vector_codec`) to `f32`, each block checked on first use (`blocks.rs`).

use super::{SectionKind, SegmentReader};
use crate::error::{CorruptionKind, Result};

/// An `int8` segment's vectors as stored ([`SegmentReader::int8_rows`]): row `r`'s
/// value in dimension `j` is `lo[j] + codes[r · dim + j] · step[j]`.
#[derive(Debug, Clone, Copy)]
pub struct Int8Rows<'a> {
    /// Per dimension: the grid's lowest value.
    pub lo: &'a [f32],
    /// Per dimension: the grid's step.
    pub step: &'a [f32],
    /// Every row's codes, row-major, one byte per dimension (unchecked).
    pub codes: &'a [u8],
}

impl SegmentReader {
    /// How this segment stores its vectors (`f32` before version 5).
    pub fn vector_codec(&self) -> crate::VectorCodec {
        self.vector_decoder.codec()
    }

    /// Bytes of the stored vectors (the `VECTORS` section).
    pub fn vectors_len(&self) -> u64 {
        let r = &self.section(SectionKind::Vectors).range;
        r.end - r.start
    }

    /// For a segment storing `int8` vectors: the grid they are coded on and every row's
    /// codes, for distances computed on the codes (`strata_index::sq8`). The codes are
    /// not checked here: check a row's blocks with
    /// [`row_check(SectionKind::Vectors)`](Self::row_check) before reading it.
    pub fn int8_rows(&self) -> Option<Int8Rows<'_>> {
        if self.vector_source.is_some() {
            return None;
        }
        let (lo, step) = self.vector_decoder.int8_grid()?;
        Some(Int8Rows {
            lo,
            step,
            codes: self.section_bytes(SectionKind::Vectors),
        })
    }

    /// For a segment storing `f32` vectors: every row's bytes, row-major, `4 · dim` per
    /// row (unchecked, as [`Self::int8_rows`]'s codes), for a walk scoring its rows.
    pub fn f32_rows(&self) -> Option<&[u8]> {
        (self.vector_codec() == crate::VectorCodec::F32 && self.vector_source.is_none())
            .then(|| self.section_bytes(SectionKind::Vectors))
    }

    /// The vector of `row`, decoded to `f32`.
    pub fn vector(&self, row: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.dim());
        self.read_vectors(row..row.saturating_add(1), &mut out)?;
        Ok(out)
    }

    /// Appends the vectors of `rows` to `out`, decoded to `f32`, row-major. Their blocks
    /// are checksummed on first use (version 5); a range the vectors section does not
    /// hold, or a damaged block, is [`Error::Corruption`](crate::Error::Corruption)
    /// naming the file and the offset.
    pub fn read_vectors(&self, rows: std::ops::Range<usize>, out: &mut Vec<f32>) -> Result<()> {
        if self.vector_source.is_some() {
            let bytes = self.fetched_vector_rows(rows)?;
            self.vector_decoder.decode_into(&bytes, out);
            return Ok(());
        }
        let bytes = self.stored_vector_rows(rows)?;
        self.vector_decoder.decode_into(bytes, out);
        Ok(())
    }

    /// The vectors of `rows` as `f32`, row-major: borrowed from the map when the
    /// segment stores `f32`, else decoded into `scratch` (replacing its contents).
    /// Errors as [`Self::read_vectors`].
    pub fn vector_rows<'a>(
        &'a self,
        rows: std::ops::Range<usize>,
        scratch: &'a mut Vec<f32>,
    ) -> Result<&'a [f32]> {
        if self.vector_source.is_some() {
            let bytes = self.fetched_vector_rows(rows)?;
            scratch.clear();
            self.vector_decoder.decode_into(&bytes, scratch);
            return Ok(scratch);
        }
        let bytes = self.stored_vector_rows(rows)?;
        if self.vector_codec() == crate::VectorCodec::F32 {
            return Ok(crate::vector_codec::f32_values(bytes, scratch));
        }
        scratch.clear();
        self.vector_decoder.decode_into(bytes, scratch);
        Ok(scratch)
    }

    /// The stored bytes of `row`'s vector, unchecked (empty past the last row): for
    /// prefetch hints; reads go through [`Self::vector_rows`] or [`Self::read_vectors`].
    pub fn stored_vector(&self, row: usize) -> &[u8] {
        if self.vector_source.is_some() {
            return &[];
        }
        let w = self.vector_decoder.row_bytes();
        let start = row.saturating_mul(w);
        self.section_bytes(SectionKind::Vectors)
            .get(start..start.saturating_add(w))
            .unwrap_or(&[])
    }

    /// Reads `VECTORS` through `source` instead of the local image, whose vectors
    /// section is then never read (a replica's segment; see [`super::VectorSource`]).
    /// Walks that score rows (`int8_rows`, `f32_rows`) are off for such a segment.
    pub fn set_vector_source(&mut self, source: std::sync::Arc<dyn super::VectorSource>) {
        self.vector_source = Some(source);
    }

    /// Whether `VECTORS` is read through a [`super::VectorSource`].
    pub fn has_vector_source(&self) -> bool {
        self.vector_source.is_some()
    }

    /// The stored bytes of `rows`' vectors from the vector source, bounds-checked and
    /// checked block by block against `BLOCK_CRCS`.
    fn fetched_vector_rows(&self, rows: std::ops::Range<usize>) -> Result<Vec<u8>> {
        let section = self.section(SectionKind::Vectors).range.clone();
        let len = (section.end - section.start) as usize;
        let w = self.vector_decoder.row_bytes();
        let start = rows.start.saturating_mul(w);
        let end = rows.end.saturating_mul(w);
        if start > end || end > len {
            return Err(crate::Error::corrupt(
                &self.path,
                section.start + start as u64,
                CorruptionKind::Invalid("row beyond the vectors section"),
            ));
        }
        if start == end {
            return Ok(Vec::new());
        }
        let block = super::blocks::CHECK_BLOCK;
        let from = start / block * block;
        let to = end.div_ceil(block).saturating_mul(block).min(len);
        let Some(source) = &self.vector_source else {
            return Ok(Vec::new());
        };
        let bytes = source
            .read(from as u64..to as u64)
            .map_err(|e| crate::Error::io(&self.path, e))?;
        if bytes.len() != to - from {
            return Err(crate::Error::corrupt(
                &self.path,
                section.start + from as u64,
                CorruptionKind::Invalid("the vector source returned a short read"),
            ));
        }
        self.check_fetched_blocks(from, &bytes)?;
        // from <= start <= end <= to, and the source returned to - from bytes.
        let mut bytes = bytes;
        bytes.truncate(end - from);
        bytes.drain(..start - from);
        Ok(bytes)
    }

    /// The stored bytes of `rows`' vectors, bounds- and block-checked.
    fn stored_vector_rows(&self, rows: std::ops::Range<usize>) -> Result<&[u8]> {
        let w = self.vector_decoder.row_bytes();
        let start = rows.start.saturating_mul(w);
        let end = rows.end.saturating_mul(w);
        let bytes = self
            .section_bytes(SectionKind::Vectors)
            .get(start..end)
            .ok_or_else(|| {
                crate::Error::corrupt(
                    &self.path,
                    self.section(SectionKind::Vectors).range.start + start as u64,
                    CorruptionKind::Invalid("row beyond the vectors section"),
                )
            })?;
        self.row_check(SectionKind::Vectors).bytes(start..end)?;
        Ok(bytes)
    }
}
