//! The manifest: the single source of truth for which files of a store are live.
//!
//! Layout (version 4): magic `STRATMAN` · version `u32` · body length `u32` ·
//! CRC32 of (version, body length, body) `u32` · reserved `u32` · body.
//! Body: dim `u32` · metric `u8` · key kind `u8` (0 `u64` ids, 1 strings; always 0 in
//! version 1) · vector codec `u8` ([`crate::VectorCodec::code`]; 0 = `f32` before
//! version 3) · text analyzer `u8` (the engine's code; written as zero and not read
//! before version 4) · next file number `u64` · checkpoint
//! sequence `u64` · minimum live WAL file number `u64` · segment count `u32` · per segment
//! 40 bytes: file number `u64`, rows `u64`, deleted rows `u64`, deletion file number `u64`
//! (0 = none), file length `u64`.
//!
//! Published with [`crate::fsutil::write_atomic`]: write `MANIFEST.tmp`, fsync, rename,
//! fsync the directory.

use std::path::Path;

use crate::codec::{expect_magic, expect_version, Reader};
use crate::error::{CorruptionKind, DecodeError, Error, Result};

/// Magic at offset 0 of the manifest.
pub const MANIFEST_MAGIC: &[u8; 8] = b"STRATMAN";
/// Format version written by this build.
pub const MANIFEST_VERSION: u32 = 4;
/// [`Manifest::keys`]: records are identified by `u64` ids.
pub const KEYS_U64: u8 = 0;
/// [`Manifest::keys`]: records are identified by UTF-8 string keys.
pub const KEYS_STRING: u8 = 1;
/// Largest body this build accepts (bounds allocation on hostile input).
pub const MAX_BODY_LEN: u32 = 64 << 20;
const HEADER_LEN: usize = 24;
const SEGMENT_ENTRY_LEN: usize = 40;

/// One live segment as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// File number: the segment is `{file_no:06}.seg`.
    pub file_no: u64,
    /// Rows in the segment.
    pub rows: u64,
    /// Rows marked deleted in its deletion file.
    pub deleted: u64,
    /// The deletion file `{n:06}.del`, if any rows are deleted.
    pub deletion_file_no: Option<u64>,
    /// Length of the segment file in bytes.
    pub file_len: u64,
}

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Vector dimension of the store.
    pub dim: u32,
    /// Metric code (the engine's).
    pub metric: u8,
    /// What identifies a record: [`KEYS_U64`] or [`KEYS_STRING`].
    pub keys: u8,
    /// How new segments store their vectors (`f32` in manifests before version 3).
    pub vector_codec: crate::VectorCodec,
    /// How text becomes terms (the engine's analyzer code; 0, the default, in manifests
    /// before version 4).
    pub analyzer: u8,
    /// Next unused file number.
    pub next_file_no: u64,
    /// Every write with a sequence number up to this one is in the segments.
    pub checkpoint_seq: u64,
    /// WAL files numbered below this are obsolete.
    pub wal_min_no: u64,
    /// Live segments, oldest first.
    pub segments: Vec<SegmentEntry>,
}

impl Manifest {
    /// Encodes the manifest file.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(40 + self.segments.len() * SEGMENT_ENTRY_LEN);
        body.extend_from_slice(&self.dim.to_le_bytes());
        body.extend_from_slice(&[
            self.metric,
            self.keys,
            self.vector_codec.code(),
            self.analyzer,
        ]);
        body.extend_from_slice(&self.next_file_no.to_le_bytes());
        body.extend_from_slice(&self.checkpoint_seq.to_le_bytes());
        body.extend_from_slice(&self.wal_min_no.to_le_bytes());
        body.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for s in &self.segments {
            for v in [
                s.file_no,
                s.rows,
                s.deleted,
                s.deletion_file_no.unwrap_or(0),
                s.file_len,
            ] {
                body.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&MANIFEST_VERSION.to_le_bytes());
        h.update(&(body.len() as u32).to_le_bytes());
        h.update(&body);
        out.extend_from_slice(&h.finalize().to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a manifest image.
    pub fn decode(buf: &[u8]) -> std::result::Result<Self, DecodeError> {
        let mut r = Reader::new(buf, 0);
        expect_magic(&mut r, MANIFEST_MAGIC)?;
        let version = r.u32()?;
        let body_len = r.u32()?;
        let stored = r.u32()?;
        let reserved = r.u32()?;
        if body_len > MAX_BODY_LEN || buf.len() != HEADER_LEN + body_len as usize {
            let expected = HEADER_LEN as u64 + body_len as u64;
            return Err(Reader::fault_at(
                12,
                CorruptionKind::Length {
                    expected,
                    actual: buf.len() as u64,
                },
            ));
        }
        let body = buf.get(HEADER_LEN..).unwrap_or(&[]);
        let mut h = crc32fast::Hasher::new();
        h.update(buf.get(8..16).unwrap_or(&[]));
        h.update(body);
        let computed = h.finalize();
        if computed != stored {
            return Err(Reader::fault_at(
                16,
                CorruptionKind::Checksum { stored, computed },
            ));
        }
        expect_version(version, 1, MANIFEST_VERSION, 8)?;
        if reserved != 0 {
            return Err(Reader::fault_at(
                20,
                CorruptionKind::Invalid("reserved field"),
            ));
        }
        decode_body(body, version)
    }

    /// Reads and decodes the manifest at `path`.
    pub fn read(fs: &dyn strata_vfs::Vfs, path: &Path) -> Result<Self> {
        let buf = fs.read(path).map_err(|e| Error::io(path, e))?;
        Self::decode(&buf).map_err(|e| e.at(path))
    }

    /// Publishes this manifest at `path` atomically and durably; returns the bytes
    /// written.
    pub fn write(&self, fs: &dyn strata_vfs::Vfs, path: &Path) -> Result<u64> {
        let bytes = self.encode();
        crate::fsutil::write_atomic(fs, path, &bytes)?;
        Ok(bytes.len() as u64)
    }
}

fn decode_body(body: &[u8], version: u32) -> std::result::Result<Manifest, DecodeError> {
    let mut r = Reader::new(body, HEADER_LEN as u64);
    let dim = r.u32()?;
    let metric = r.u8()?;
    let keys_at = r.offset();
    let keys = r.u8()?;
    let codec_at = r.offset();
    let codec = r.u8()?;
    // Before version 4 the byte was written as zero and not read.
    let analyzer = match r.u8()? {
        _ if version < 4 => 0,
        a => a,
    };
    if keys > KEYS_STRING || (version == 1 && keys != KEYS_U64) {
        return Err(Reader::fault_at(
            keys_at,
            CorruptionKind::Invalid("key kind"),
        ));
    }
    // Before version 3 the byte was written as zero and not read.
    let vector_codec = match version {
        1 | 2 => Some(crate::VectorCodec::F32),
        _ => crate::VectorCodec::from_code(codec),
    }
    .ok_or_else(|| Reader::fault_at(codec_at, CorruptionKind::Invalid("vector codec")))?;
    let next_file_no = r.u64()?;
    let checkpoint_seq = r.u64()?;
    let wal_min_no = r.u64()?;
    let count = r.u32()? as usize;
    if r.remaining() != count.saturating_mul(SEGMENT_ENTRY_LEN) {
        return Err(r.fault(CorruptionKind::Invalid("segment count")));
    }
    let mut segments = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.offset();
        let file_no = r.u64()?;
        let rows = r.u64()?;
        let deleted = r.u64()?;
        let del = r.u64()?;
        let file_len = r.u64()?;
        if file_no == 0 || file_no >= next_file_no || del >= next_file_no || deleted > rows {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("segment entry"),
            ));
        }
        segments.push(SegmentEntry {
            file_no,
            rows,
            deleted,
            deletion_file_no: (del != 0).then_some(del),
            file_len,
        });
    }
    if dim == 0 || next_file_no == 0 || wal_min_no > next_file_no {
        return Err(Reader::fault_at(
            HEADER_LEN as u64,
            CorruptionKind::Invalid("store schema"),
        ));
    }
    Ok(Manifest {
        dim,
        metric,
        keys,
        vector_codec,
        analyzer,
        next_file_no,
        checkpoint_seq,
        wal_min_no,
        segments,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            dim: 128,
            metric: 1,
            keys: KEYS_STRING,
            vector_codec: crate::VectorCodec::Int8,
            analyzer: 2,
            next_file_no: 9,
            checkpoint_seq: 1234,
            wal_min_no: 7,
            segments: vec![
                SegmentEntry {
                    file_no: 2,
                    rows: 100,
                    deleted: 3,
                    deletion_file_no: Some(6),
                    file_len: 4096,
                },
                SegmentEntry {
                    file_no: 5,
                    rows: 10,
                    deleted: 0,
                    deletion_file_no: None,
                    file_len: 512,
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }

    /// `m` encoded as version 1 (the key-kind byte as given).
    fn as_version_1(m: &Manifest) -> Vec<u8> {
        as_version(m, 1)
    }

    /// `m` encoded as `version` (every byte as given).
    fn as_version(m: &Manifest, version: u32) -> Vec<u8> {
        let mut enc = m.encode();
        enc[8..12].copy_from_slice(&version.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&enc[8..16]);
        h.update(&enc[HEADER_LEN..]);
        let crc = h.finalize();
        enc[16..20].copy_from_slice(&crc.to_le_bytes());
        enc
    }

    #[test]
    fn versions_before_3_hold_f32_vectors_and_unknown_codecs_are_refused() {
        let mut m = sample();
        m.vector_codec = crate::VectorCodec::F32;
        m.analyzer = 0;
        for version in [1, 2] {
            m.keys = KEYS_U64;
            assert_eq!(Manifest::decode(&as_version(&m, version)).unwrap(), m);
        }
        let mut enc = m.encode();
        enc[HEADER_LEN + 6] = 3;
        let mut h = crc32fast::Hasher::new();
        h.update(&enc[8..16]);
        h.update(&enc[HEADER_LEN..]);
        let crc = h.finalize();
        enc[16..20].copy_from_slice(&crc.to_le_bytes());
        assert!(Manifest::decode(&enc).is_err(), "codec 3");
    }

    #[test]
    fn versions_before_4_have_the_default_analyzer() {
        let m = sample();
        let old = Manifest::decode(&as_version(&m, 3)).unwrap();
        assert_eq!(old.analyzer, 0);
        assert_eq!(Manifest { analyzer: 2, ..old }, m);
    }

    #[test]
    fn version_1_has_u64_keys_only() {
        let mut m = sample();
        m.vector_codec = crate::VectorCodec::F32;
        m.analyzer = 0;
        m.keys = KEYS_U64;
        assert_eq!(Manifest::decode(&as_version_1(&m)).unwrap(), m);
        m.keys = KEYS_STRING;
        assert!(Manifest::decode(&as_version_1(&m)).is_err());
        m.keys = 2;
        assert!(Manifest::decode(&m.encode()).is_err(), "unknown key kind");
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let enc = sample().encode();
        for bit in 0..enc.len() * 8 {
            let mut bad = enc.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode(&bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn truncation_is_detected() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert!(Manifest::decode(&enc[..cut]).is_err(), "cut {cut}");
        }
    }
}
