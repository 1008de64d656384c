//! Byte framing of WAL files (normative spec: `docs/format.md`).
//!
//! File header (32 B): magic `STRATWAL` · version `u32` · salt `u32` · file number `u64` ·
//! reserved `u32` · CRC32 of bytes 0..28 `u32`.
//!
//! Record (starts 8-byte aligned, zero padded to 8 after): CRC32 `u32` · payload length
//! `u32` · first sequence number `u64` · operation count `u32` · kind `u8` · 3 zero bytes ·
//! synced offset `u64` · payload. The CRC covers the file's salt (LE) then record bytes
//! 4..32+len, so a record left over from another file never validates here. The synced
//! offset says how much of this file was known durable when the record was appended:
//! replay uses it to tell a torn (unsynced) region from damage to synced data.

use crate::error::{CorruptionKind, Error};

/// Magic at offset 0 of a WAL file.
pub const WAL_MAGIC: &[u8; 8] = b"STRATWAL";
/// Format version written by this build.
pub const WAL_VERSION: u32 = 1;
/// File header length.
pub const FILE_HEADER_LEN: usize = 32;
/// Record header length.
pub const RECORD_HEADER_LEN: usize = 32;
/// Largest payload of one record.
pub const MAX_RECORD_LEN: usize = 256 << 20;

/// Encodes a file header.
pub fn encode_file_header(salt: u32, file_no: u64) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    let mut v = Vec::with_capacity(FILE_HEADER_LEN);
    v.extend_from_slice(WAL_MAGIC);
    v.extend_from_slice(&WAL_VERSION.to_le_bytes());
    v.extend_from_slice(&salt.to_le_bytes());
    v.extend_from_slice(&file_no.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    h.copy_from_slice(&v);
    h
}

/// Decodes a file header: `(salt, file_no)`.
pub fn decode_file_header(buf: &[u8]) -> Result<(u32, u64), CorruptionKind> {
    let h = buf
        .get(..FILE_HEADER_LEN)
        .ok_or(CorruptionKind::BadHeader)?;
    let field = |r: std::ops::Range<usize>| h.get(r).unwrap_or(&[]);
    let le32 = |r| u32::from_le_bytes(field(r).try_into().unwrap_or([0; 4]));
    if field(0..8) != WAL_MAGIC
        || le32(28..32) != crc32fast::hash(field(0..28))
        || le32(8..12) != WAL_VERSION
    {
        return Err(CorruptionKind::BadHeader);
    }
    let file_no = u64::from_le_bytes(field(16..24).try_into().unwrap_or([0; 8]));
    Ok((le32(12..16), file_no))
}

/// Appends one framed, padded record to `out`.
/// `synced` is the offset of this file up to which everything was durable when the
/// record was appended.
pub fn encode_record(
    out: &mut Vec<u8>,
    salt: u32,
    seq: u64,
    count: u32,
    kind: u8,
    synced: u64,
    payload: &[u8],
) -> Result<(), Error> {
    if payload.len() > MAX_RECORD_LEN {
        return Err(Error::RecordTooLarge {
            len: payload.len(),
            max: MAX_RECORD_LEN,
        });
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&synced.to_le_bytes());
    out.extend_from_slice(payload);
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(out.get(start + 4..).unwrap_or(&[]));
    let crc = h.finalize().to_le_bytes();
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&crc);
    }
    out.resize(start + padded_len(payload.len()), 0);
    Ok(())
}

/// Bytes a record with a payload of `len` occupies, padding included.
pub fn padded_len(len: usize) -> usize {
    (RECORD_HEADER_LEN + len).next_multiple_of(8)
}

/// A record decoded in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// First sequence number.
    pub seq: u64,
    /// Operations in the record.
    pub count: u32,
    /// Record kind (the engine's).
    pub kind: u8,
    /// Offset of this file known durable when the record was appended.
    pub synced: u64,
    /// The payload.
    pub payload: &'a [u8],
}

/// Decodes the record at `pos`, or `None` when the bytes there are not a valid record.
pub fn decode_record(buf: &[u8], pos: usize, salt: u32) -> Option<(RawRecord<'_>, usize)> {
    let head = buf.get(pos..pos.checked_add(RECORD_HEADER_LEN)?)?;
    let le32 = |r: std::ops::Range<usize>| {
        u32::from_le_bytes(
            head.get(r)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 4]),
        )
    };
    let crc = le32(0..4);
    let len = le32(4..8) as usize;
    if len > MAX_RECORD_LEN || head.get(21..24) != Some(&[0, 0, 0]) {
        return None;
    }
    let body = buf.get(pos + 4..pos + RECORD_HEADER_LEN + len)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(body);
    if h.finalize() != crc {
        return None;
    }
    let seq = u64::from_le_bytes(head.get(8..16)?.try_into().ok()?);
    let count = le32(16..20);
    let kind = *head.get(20)?;
    let synced = u64::from_le_bytes(head.get(24..32)?.try_into().ok()?);
    let payload = body.get(RECORD_HEADER_LEN - 4..)?;
    Some((
        RawRecord {
            seq,
            count,
            kind,
            synced,
            payload,
        },
        pos + padded_len(len),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_salt_binds() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, 42, 3, 1, 32, b"hello").unwrap();
        assert_eq!(out.len() % 8, 0);
        let (r, next) = decode_record(&out, 0, 7).unwrap();
        assert_eq!(
            (r.seq, r.count, r.kind, r.synced, r.payload),
            (42, 3, 1, 32, &b"hello"[..])
        );
        assert_eq!(next, out.len());
        assert!(
            decode_record(&out, 0, 8).is_none(),
            "another file's salt must not validate"
        );
    }

    #[test]
    fn every_bit_flip_of_a_record_is_detected() {
        let mut out = Vec::new();
        encode_record(&mut out, 1, 5, 1, 1, 32, b"payload bytes").unwrap();
        let used = RECORD_HEADER_LEN + 13;
        for bit in 0..used * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_record(&bad, 0, 1).is_none(), "bit {bit}");
        }
    }

    #[test]
    fn file_header_round_trip_and_flips() {
        let h = encode_file_header(99, 12);
        assert_eq!(decode_file_header(&h), Ok((99, 12)));
        for bit in 0..FILE_HEADER_LEN * 8 {
            let mut bad = h;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_file_header(&bad).is_err(), "bit {bit}");
        }
    }
}
