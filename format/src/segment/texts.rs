//! Reading a segment's texts and their full-text index (format 6).

use super::*;

impl SegmentReader {
    /// Whether the segment holds text sections (some row has text; version 6 on).
    pub fn has_text(&self) -> bool {
        self.sections.has(SectionKind::TextDir)
    }

    /// The text of `row` (`None`: the row has none).
    pub fn text(&self, row: usize) -> Result<Option<String>> {
        if !self.has_text() {
            return Ok(None);
        }
        self.item(TEXT_COLUMN, row)
            .and_then(|t| t.map(|b| self.utf8(b)).transpose())
            .map_err(|e| e.at(&self.path))
    }

    /// The text of every row of block `block` (as [`Self::block_payloads`]); all `None`
    /// when the segment has no text sections.
    pub fn block_texts(&self, block: usize) -> Result<Vec<Option<String>>> {
        if !self.has_text() {
            let rows = if block * PAYLOAD_BLOCK_ROWS >= self.rows() {
                0
            } else {
                self.block_rows(block)
            };
            return Ok(vec![None; rows]);
        }
        self.block_items(TEXT_COLUMN, block)
            .and_then(|items| {
                items
                    .into_iter()
                    .map(|t| t.map(|b| self.utf8(b)).transpose())
                    .collect()
            })
            .map_err(|e| e.at(&self.path))
    }

    fn utf8(&self, bytes: Vec<u8>) -> std::result::Result<String, DecodeError> {
        String::from_utf8(bytes).map_err(|_| {
            Reader::fault_at(
                self.section(SectionKind::Texts).range.start,
                CorruptionKind::Invalid("text encoding"),
            )
        })
    }

    /// The full-text index of the rows, when the segment has text: its sections'
    /// checksums are checked on the first call after the open.
    pub fn text_index(&self) -> Result<Option<crate::text_index::TextIndex<'_>>> {
        if !self.has_text() {
            return Ok(None);
        }
        let kinds = [
            SectionKind::TextTerms,
            SectionKind::TextPostings,
            SectionKind::TextLengths,
        ];
        let checked = self
            .text_checked
            .get_or_init(|| kinds.iter().try_for_each(|&k| self.check_section(k)));
        let open = || {
            checked.clone()?;
            crate::text_index::TextIndex::open(
                kinds.map(|k| self.section_bytes(k)),
                kinds.map(|k| self.section(k).range.start),
                self.header.rows as u32,
            )
        };
        open().map(Some).map_err(|e| e.at(&self.path))
    }

    /// Bytes of the text sections: (texts with their directory, index).
    pub fn text_bytes(&self) -> (u64, u64) {
        let len = |k| {
            let r = &self.section(k).range;
            r.end - r.start
        };
        (
            len(SectionKind::TextDir) + len(SectionKind::Texts),
            len(SectionKind::TextTerms)
                + len(SectionKind::TextPostings)
                + len(SectionKind::TextLengths),
        )
    }
}
