//! Reading the columns of per-row byte strings kept in compressed blocks of
//! [`PAYLOAD_BLOCK_ROWS`] rows: payloads, metadata and texts.

use super::*;

impl SegmentReader {
    pub(super) fn item(
        &self,
        col: BlobColumn,
        row: usize,
    ) -> std::result::Result<Option<Vec<u8>>, DecodeError> {
        let block = row / PAYLOAD_BLOCK_ROWS;
        let raw = self.block(col, block)?;
        let base = self.section(col.data).range.start;
        let in_block = row % PAYLOAD_BLOCK_ROWS;
        let mut lens = Reader::new(&raw, base);
        let n = self.block_rows(block);
        let mut skip = 0usize;
        let mut mine = None;
        for i in 0..n {
            let len = lens.u32()?;
            if i < in_block && len != NO_PAYLOAD {
                skip += len as usize;
            } else if i == in_block {
                mine = Some(len);
            }
        }
        let mut data = Reader::new(raw.get(n * 4..).unwrap_or(&[]), base);
        data.bytes(skip)?;
        match mine {
            Some(NO_PAYLOAD) | None => Ok(None),
            Some(len) => Ok(Some(data.bytes(len as usize)?.to_vec())),
        }
    }

    pub(super) fn block_items(
        &self,
        col: BlobColumn,
        block: usize,
    ) -> std::result::Result<Vec<Option<Vec<u8>>>, DecodeError> {
        if block * PAYLOAD_BLOCK_ROWS >= self.rows() {
            return Ok(Vec::new());
        }
        let raw = self.block(col, block)?;
        let base = self.section(col.data).range.start;
        let n = self.block_rows(block);
        let mut lens = Reader::new(&raw, base);
        let mut data = Reader::new(raw.get(n * 4..).unwrap_or(&[]), base);
        (0..n)
            .map(|_| match lens.u32()? {
                NO_PAYLOAD => Ok(None),
                len => Ok(Some(data.bytes(len as usize)?.to_vec())),
            })
            .collect()
    }

    pub(super) fn block_rows(&self, block: usize) -> usize {
        (self.rows() - block * PAYLOAD_BLOCK_ROWS).min(PAYLOAD_BLOCK_ROWS)
    }

    pub(super) fn block(
        &self,
        col: BlobColumn,
        block: usize,
    ) -> std::result::Result<Vec<u8>, DecodeError> {
        let dir_off = self.section(col.dir).range.start;
        let dir = self.section_bytes(col.dir);
        let mut r = Reader::new(
            dir.get(block * 16..).unwrap_or(&[]),
            dir_off + block as u64 * 16,
        );
        let off = r.u64()?;
        let clen = r.u32()? as u64;
        let rlen = r.u32()? as usize;
        let max_raw = self.block_rows(block) * (4 + col.max_item);
        if rlen > max_raw {
            return Err(r.fault(CorruptionKind::Invalid(col.what)));
        }
        let sec = &self.section(col.data).range;
        let frame = off
            .checked_add(clen)
            .filter(|&end| end <= sec.end - sec.start)
            .and_then(|end| self.section_bytes(col.data).get(off as usize..end as usize))
            .ok_or_else(|| r.fault(CorruptionKind::Invalid(col.what)))?;
        let raw = zstd::bulk::decompress(frame, rlen)
            .map_err(|_| Reader::fault_at(sec.start + off, CorruptionKind::Invalid(col.what)))?;
        if raw.len() != rlen {
            return Err(Reader::fault_at(
                sec.start + off,
                CorruptionKind::Invalid(col.what),
            ));
        }
        Ok(raw)
    }
}
