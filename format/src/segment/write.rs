//! Writing a segment: header, 64-byte aligned sections with CRC32s, section table, footer.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::*;
use crate::error::{Error, Result};
use crate::fsutil::VfsWriter;
use strata_vfs::Vfs;

/// The header's metric code of cosine (`docs/format.md`).
const METRIC_COSINE: u8 = 2;

/// Writes a complete segment to `path` (which must not exist) and fsyncs it.
/// Returns the file length. The caller fsyncs the directory and publishes the file.
pub fn write_segment(fs: &dyn Vfs, path: &Path, input: &SegmentWriteInput<'_>) -> Result<u64> {
    let rows = input.ids.len();
    let dim = input.dim as usize;
    let bad = |what| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, what),
        )
    };
    let metadata_ok = input.metadata.is_empty() || input.metadata.len() == rows;
    let keys_ok = input.keys.is_empty() || input.keys.len() == rows;
    let has_text = input.texts.iter().any(Option::is_some);
    let text_ok = input.texts.len() == rows
        && input
            .texts
            .iter()
            .flatten()
            .all(|t| t.len() <= MAX_TEXT_LEN)
        && input
            .text_index
            .is_some_and(|ix| ix.lengths.len() == rows * 4);
    if has_text && !text_ok {
        return Err(bad("segment texts disagree with rows or lack their index"));
    }
    let lengths_ok = input.vectors.len() == rows * dim && input.payloads.len() == rows;
    if !lengths_ok || !metadata_ok || !keys_ok || dim == 0 {
        return Err(bad("segment input lengths disagree"));
    }
    let id_order = id_order::encode(input.ids);
    if id_order.is_some() {
        let mut sorted = input.ids.to_vec();
        sorted.sort_unstable();
        if !strictly_ascending(&sorted) {
            return Err(bad("segment ids are not unique"));
        }
    }
    if let Some(ix) = &input.index {
        if !index_sizes_ok(input, ix, rows) {
            return Err(bad("segment index sizes disagree with rows and dim"));
        }
    }
    // Everything checked: only now is the file created (a refused input leaves none).
    let file = fs.create_new(path).map_err(|e| Error::io(path, e))?;
    let mut w = SectionWriter {
        out: BufWriter::with_capacity(1 << 20, VfsWriter::new(file)),
        pos: 0,
        table: Vec::new(),
    };
    let io = |e| Error::io(path, e);
    w.put(&header_bytes(input, rows as u64)).map_err(io)?;
    w.section(SectionKind::Ids, bytemuck::cast_slice(input.ids))
        .map_err(io)?;
    if let Some(order) = &id_order {
        w.section(SectionKind::IdOrder, order).map_err(io)?;
    }
    // What a search needs resident comes first, full vectors and payloads after.
    let mut covered: Vec<&[u8]> = Vec::with_capacity(3);
    // Cosine rows are unit vectors: their `int8` codes keep the norm.
    let rounding = if input.metric == METRIC_COSINE {
        crate::vector_codec::Int8Rounding::KeepNorm
    } else {
        crate::vector_codec::Int8Rounding::Nearest
    };
    let vectors = crate::vector_codec::encode(input.vector_codec, dim, input.vectors, rounding);
    covered.push(&vectors.data);
    if let Some(ix) = &input.index {
        let m = ix.meta;
        w.section(SectionKind::IndexMeta, &m.encode()).map_err(io)?;
        w.section(SectionKind::PqCodebook, bytemuck::cast_slice(ix.codebook))
            .map_err(io)?;
        w.section(SectionKind::PqCodes, ix.codes).map_err(io)?;
        w.section(SectionKind::GraphLevel0, ix.level0).map_err(io)?;
        w.section(SectionKind::GraphUpper, bytemuck::cast_slice(ix.upper))
            .map_err(io)?;
        covered.extend([ix.codes, ix.level0]);
    }
    w.section(SectionKind::VectorCodec, &vectors.params)
        .map_err(io)?;
    w.section(SectionKind::Vectors, &vectors.data).map_err(io)?;
    let (dir, blob) = encode_blocks(input.payloads, PAYLOAD_COLUMN).map_err(io)?;
    w.section(SectionKind::PayloadDir, &dir).map_err(io)?;
    w.section(SectionKind::Payloads, &blob).map_err(io)?;
    if input.metadata.iter().any(Option::is_some) {
        let (dir, blob) = encode_blocks(input.metadata, METADATA_COLUMN).map_err(io)?;
        w.section(SectionKind::MetadataDir, &dir).map_err(io)?;
        w.section(SectionKind::Metadata, &blob).map_err(io)?;
        if let Some(fields) = input.field_index {
            w.section(SectionKind::FieldIndex, fields).map_err(io)?;
        }
    }
    if let (true, Some(ix)) = (has_text, input.text_index) {
        let texts: Vec<Option<&[u8]>> = input.texts.iter().map(|t| t.map(str::as_bytes)).collect();
        let (dir, blob) = encode_blocks(&texts, TEXT_COLUMN).map_err(io)?;
        w.section(SectionKind::TextDir, &dir).map_err(io)?;
        w.section(SectionKind::Texts, &blob).map_err(io)?;
        w.section(SectionKind::TextTerms, &ix.terms).map_err(io)?;
        w.section(SectionKind::TextPostings, &ix.postings)
            .map_err(io)?;
        w.section(SectionKind::TextLengths, &ix.lengths)
            .map_err(io)?;
    }
    if !input.keys.is_empty() {
        let [offsets, bytes, hashes] = keys::encode_keys(input.keys).map_err(io)?;
        w.section(SectionKind::KeyOffsets, &offsets).map_err(io)?;
        w.section(SectionKind::KeyBytes, &bytes).map_err(io)?;
        w.section(SectionKind::KeyHashes, &hashes).map_err(io)?;
    }
    w.section(SectionKind::BlockCrcs, &blocks::encode(&covered))
        .map_err(io)?;
    w.finish().map_err(io)
}

/// Whether the index sections `ix` agree with the segment's rows, dimension and codec.
fn index_sizes_ok(input: &SegmentWriteInput<'_>, ix: &IndexInput<'_>, rows: usize) -> bool {
    let (m, dim) = (ix.meta, input.dim as usize);
    // A segment of `int8` or `f32` rows may go without PQ codes (its walk then scores on
    // the rows).
    let codebook_ok = if m.pq_m == 0 {
        ix.codebook.is_empty() && input.vector_codec.walkable()
    } else {
        ix.codebook.len() == 256 * dim
    };
    codebook_ok
        && ix.codes.len() == rows * m.pq_m as usize
        && (1..=32).contains(&m.l0_id_bits)
        && m.l0_rice.is_none_or(rice_params_ok)
        && m.level0_len_fits(ix.level0.len() as u64, rows as u64)
}

fn header_bytes(input: &SegmentWriteInput<'_>, rows: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN as usize);
    h.extend_from_slice(SEGMENT_MAGIC);
    h.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h.extend_from_slice(&input.dim.to_le_bytes());
    h.extend_from_slice(&[input.metric, 0, 0, 0]);
    h.extend_from_slice(&rows.to_le_bytes());
    h.extend_from_slice(&input.max_seq.to_le_bytes());
    h.extend_from_slice(&(PAYLOAD_BLOCK_ROWS as u32).to_le_bytes());
    h.resize(60, 0);
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// Compresses a column's items in blocks; returns (directory, blob).
fn encode_blocks(
    payloads: &[Option<&[u8]>],
    col: BlobColumn,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut dir = Vec::new();
    let mut blob = Vec::new();
    let mut raw = Vec::new();
    for block in payloads.chunks(PAYLOAD_BLOCK_ROWS) {
        raw.clear();
        for p in block {
            let len = match p {
                Some(p) if p.len() <= col.max_item => p.len() as u32,
                Some(_) => {
                    return Err(std::io::Error::other(format!(
                        "{} item too large",
                        col.what
                    )))
                }
                None => NO_PAYLOAD,
            };
            raw.extend_from_slice(&len.to_le_bytes());
        }
        for p in block.iter().flatten() {
            raw.extend_from_slice(p);
        }
        let mut enc = zstd::bulk::Compressor::new(3)?;
        enc.include_checksum(true)?;
        let frame = enc.compress(&raw)?;
        dir.extend_from_slice(&(blob.len() as u64).to_le_bytes());
        dir.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        dir.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        blob.extend_from_slice(&frame);
    }
    Ok((dir, blob))
}

struct SectionWriter {
    out: BufWriter<VfsWriter>,
    pos: u64,
    table: Vec<(SectionKind, u64, u64, u32)>,
}

impl SectionWriter {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, align: u64) -> std::io::Result<()> {
        let target = crate::align_up(self.pos, align);
        let zeros = vec![0u8; (target - self.pos) as usize];
        self.put(&zeros)
    }

    fn section(&mut self, kind: SectionKind, data: &[u8]) -> std::io::Result<()> {
        self.pad_to(SECTION_ALIGN)?;
        let off = self.pos;
        self.put(data)?;
        self.table
            .push((kind, off, data.len() as u64, crc32fast::hash(data)));
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<u64> {
        self.pad_to(8)?;
        let table_off = self.pos;
        let mut t = Vec::new();
        for &(kind, off, len, crc) in &self.table {
            t.extend_from_slice(&(kind as u32).to_le_bytes());
            t.extend_from_slice(&0u32.to_le_bytes());
            t.extend_from_slice(&off.to_le_bytes());
            t.extend_from_slice(&len.to_le_bytes());
            t.extend_from_slice(&crc.to_le_bytes());
            t.extend_from_slice(&0u32.to_le_bytes());
        }
        self.put(&t)?;
        let file_len = self.pos + FOOTER_LEN;
        let mut f = Vec::with_capacity(FOOTER_LEN as usize);
        f.extend_from_slice(&table_off.to_le_bytes());
        f.extend_from_slice(&(self.table.len() as u32).to_le_bytes());
        f.extend_from_slice(&crc32fast::hash(&t).to_le_bytes());
        f.extend_from_slice(&file_len.to_le_bytes());
        let crc = crc32fast::hash(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        f.extend_from_slice(FOOTER_MAGIC);
        self.put(&f)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.file.sync()?;
        Ok(file_len)
    }
}
