//! Parsing a segment's fixed parts before any section is touched: the header, the
//! footer, and the section table (entries' bounds, which groups of sections are present
//! together, and their lengths against the header's rows and dimension).

use super::*;
use crate::codec::{check_crc, expect_magic, expect_version, Reader};

pub(super) fn parse_header(buf: &[u8]) -> std::result::Result<SegmentHeader, DecodeError> {
    let mut r = Reader::new(buf, 0);
    expect_magic(&mut r, SEGMENT_MAGIC)?;
    let version = r.u32()?;
    let head = buf.get(..60).unwrap_or(&[]);
    let stored = u32::from_le_bytes(
        buf.get(60..64)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 4]),
    );
    check_crc(head, stored, 60)?;
    expect_version(version, SEGMENT_MIN_VERSION, SEGMENT_VERSION, 8)?;
    let header_len = r.u32()?;
    if header_len as u64 != HEADER_LEN {
        return Err(Reader::fault_at(
            12,
            CorruptionKind::Invalid("header length"),
        ));
    }
    let dim = r.u32()?;
    let metric = r.u8()?;
    r.bytes(3)?;
    let rows = r.u64()?;
    let max_seq = r.u64()?;
    let block_rows = r.u32()?;
    if dim == 0 || dim > MAX_DIM {
        return Err(Reader::fault_at(16, CorruptionKind::Invalid("dimension")));
    }
    if block_rows as usize != PAYLOAD_BLOCK_ROWS {
        return Err(Reader::fault_at(
            40,
            CorruptionKind::Invalid("payload block rows"),
        ));
    }
    Ok(SegmentHeader {
        version,
        dim,
        metric,
        rows,
        max_seq,
    })
}

pub(super) fn parse_footer(buf: &[u8]) -> std::result::Result<(u64, u32), DecodeError> {
    let len = buf.len() as u64;
    let at = len - FOOTER_LEN;
    let f = buf.get(at as usize..).unwrap_or(&[]);
    let mut r = Reader::new(f, at);
    let table_off = r.u64()?;
    let count = r.u32()?;
    let _table_crc = r.u32()?;
    let file_len = r.u64()?;
    let stored = r.u32()?;
    expect_magic(&mut r, FOOTER_MAGIC).map_err(|e| DecodeError {
        offset: at + 28,
        ..e
    })?;
    check_crc(f.get(..24).unwrap_or(&[]), stored, at + 24)?;
    if file_len != len {
        return Err(Reader::fault_at(
            at + 16,
            CorruptionKind::Length {
                expected: file_len,
                actual: len,
            },
        ));
    }
    Ok((table_off, count))
}

pub(super) fn parse_table(
    buf: &[u8],
    table_off: u64,
    count: u32,
    header: &SegmentHeader,
) -> std::result::Result<Sections, DecodeError> {
    let len = buf.len() as u64;
    let footer_at = len - FOOTER_LEN;
    let table_len = count as u64 * TABLE_ENTRY_LEN;
    // Required 4 (6 from version 5), then optional groups: index 5, metadata 2, keys 3,
    // field index 1, id order 1, text 5.
    let known = (4..=KIND_COUNT as u32).contains(&count);
    if !known || table_off.checked_add(table_len) != Some(footer_at) {
        return Err(Reader::fault_at(
            footer_at,
            CorruptionKind::Invalid("section table location"),
        ));
    }
    let table = buf
        .get(table_off as usize..footer_at as usize)
        .unwrap_or(&[]);
    let stored = u32::from_le_bytes(
        buf.get(footer_at as usize + 12..footer_at as usize + 16)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 4]),
    );
    check_crc(table, stored, table_off)?;
    let mut r = Reader::new(table, table_off);
    let mut out: [Option<Section>; KIND_COUNT] = Default::default();
    for _ in 0..count {
        let at = r.offset();
        let kind = r.u32()?;
        r.u32()?;
        let off = r.u64()?;
        let slen = r.u64()?;
        let crc = r.u32()?;
        r.u32()?;
        let end = off
            .checked_add(slen)
            .filter(|&e| e <= table_off && off >= HEADER_LEN && off % SECTION_ALIGN == 0);
        let (Some(end), Some(slot @ None)) = (
            end,
            kind.checked_sub(1).and_then(|k| out.get_mut(k as usize)),
        ) else {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("section entry"),
            ));
        };
        *slot = Some(Section {
            range: off..end,
            crc,
        });
    }
    let present = |kinds: std::ops::RangeInclusive<u32>| {
        let n = kinds.clone().count();
        let have = kinds
            .filter(|k| out.get(*k as usize - 1).is_some_and(Option::is_some))
            .count();
        (have, n)
    };
    let [Some(ids), Some(vecs), Some(dir), Some(_), ..] = &out else {
        return Err(Reader::fault_at(
            table_off,
            CorruptionKind::Invalid("missing section"),
        ));
    };
    let refuse = |what| Err(Reader::fault_at(table_off, CorruptionKind::Invalid(what)));
    let (index_count, index_all) = present(INDEX_KINDS);
    if index_count != 0 && index_count != index_all {
        return refuse("partial index sections");
    }
    let (meta_count, meta_all) = present(METADATA_KINDS);
    if meta_count != 0 && (meta_count != meta_all || header.version < 3) {
        return refuse("metadata sections");
    }
    let has_fields = out.get(14).is_some_and(Option::is_some);
    if has_fields && (meta_count == 0 || header.version < 4) {
        return refuse("field index section");
    }
    // Vector codec and block checksums: both from version 5, neither before.
    let (v5_count, v5_all) = present(VERSION_5_KINDS);
    if v5_count != if header.version >= 5 { v5_all } else { 0 } {
        return refuse("vector codec and block checksum sections");
    }
    let (text_count, text_all) = present(TEXT_KINDS);
    if text_count != 0 && (text_count != text_all || header.version < 6) {
        return refuse("text sections");
    }
    let has_order = out
        .get(SectionKind::IdOrder as usize - 1)
        .is_some_and(Option::is_some);
    if has_order && header.version < 5 {
        return refuse("id order section");
    }
    let (key_count, key_all) = present(KEY_KINDS);
    if key_count != 0 && (key_count != key_all || header.version < 4) {
        return refuse("key sections");
    }
    let rows = header.rows;
    let blocks = rows.div_ceil(PAYLOAD_BLOCK_ROWS as u64);
    let expect = |s: &Section, want: Option<u64>, what| match want {
        Some(w) if s.range.end - s.range.start == w => Ok(()),
        _ => Err(Reader::fault_at(
            s.range.start,
            CorruptionKind::Invalid(what),
        )),
    };
    expect(ids, rows.checked_mul(8), "ids section length")?;
    // From version 5 the vectors' length depends on their codec (checked at open).
    if header.version < 5 {
        expect(
            vecs,
            rows.checked_mul(header.dim as u64)
                .and_then(|x| x.checked_mul(4)),
            "vectors section length",
        )?;
    }
    expect(dir, blocks.checked_mul(16), "payload directory length")?;
    if let Some(Some(order)) = out.get(SectionKind::IdOrder as usize - 1) {
        expect(order, rows.checked_mul(4), "id order length")?;
    }
    if let Some(Some(meta_dir)) = out.get(SectionKind::MetadataDir as usize - 1) {
        expect(
            meta_dir,
            blocks.checked_mul(16),
            "metadata directory length",
        )?;
    }
    if let Some(Some(text_dir)) = out.get(SectionKind::TextDir as usize - 1) {
        expect(text_dir, blocks.checked_mul(16), "text directory length")?;
    }
    if let Some(Some(lengths)) = out.get(SectionKind::TextLengths as usize - 1) {
        expect(lengths, rows.checked_mul(4), "text lengths length")?;
    }
    if let [Some(offsets), _, Some(hashes)] = out.get(11..14).unwrap_or(&[]) {
        expect(
            offsets,
            rows.checked_add(1).and_then(|r| r.checked_mul(8)),
            "key offsets length",
        )?;
        expect(hashes, rows.checked_mul(12), "key hashes length")?;
    }
    Ok(Sections { slots: out })
}

/// The sections of a segment file of `file_len` bytes as (kind code, byte range), read
/// from its last `tail.len()` bytes alone, which must hold the section table and the
/// footer (both checksums are checked): how a replica learns where `VECTORS` lies before
/// fetching the rest of the file.
pub fn sections_from_tail(
    tail: &[u8],
    file_len: u64,
) -> std::result::Result<Vec<(u32, std::ops::Range<u64>)>, DecodeError> {
    let bad =
        |offset: u64, what: &'static str| Reader::fault_at(offset, CorruptionKind::Invalid(what));
    let base = file_len
        .checked_sub(tail.len() as u64)
        .ok_or_else(|| bad(0, "tail longer than the file"))?;
    if (tail.len() as u64) < FOOTER_LEN {
        return Err(bad(base, "tail shorter than the footer"));
    }
    let f = tail
        .get(tail.len() - FOOTER_LEN as usize..)
        .unwrap_or_default();
    let footer_at = file_len - FOOTER_LEN;
    let u64_at = |b: &[u8], o: usize| {
        b.get(o..o + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let u32_at = |b: &[u8], o: usize| {
        b.get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    if f.get(28..32) != Some(&FOOTER_MAGIC[..]) {
        return Err(bad(footer_at + 28, "bad footer magic"));
    }
    check_crc(
        f.get(..24).unwrap_or_default(),
        u32_at(f, 24),
        footer_at + 24,
    )?;
    if u64_at(f, 16) != file_len {
        return Err(bad(footer_at + 16, "file length differs from the footer's"));
    }
    let (table_off, count) = (u64_at(f, 0), u32_at(f, 8) as u64);
    if count > KIND_COUNT as u64
        || table_off.checked_add(count * TABLE_ENTRY_LEN) != Some(footer_at)
    {
        return Err(bad(footer_at, "section table location"));
    }
    if table_off < base {
        return Err(bad(table_off, "the tail does not hold the section table"));
    }
    let table = tail
        .get((table_off - base) as usize..(footer_at - base) as usize)
        .unwrap_or_default();
    check_crc(table, u32_at(f, 12), table_off)?;
    let mut out = Vec::with_capacity(count as usize);
    for e in table.chunks(TABLE_ENTRY_LEN as usize) {
        let (kind, off, len) = (u32_at(e, 0), u64_at(e, 8), u64_at(e, 16));
        let end = off
            .checked_add(len)
            .filter(|&end| end <= table_off)
            .ok_or_else(|| bad(table_off, "section past the table"))?;
        out.push((kind, off..end));
    }
    Ok(out)
}
