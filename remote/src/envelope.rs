//! A remote manifest (`manifest/<seq>`): one commit of a store in a bucket. It wraps the
//! store's local `MANIFEST` bytes verbatim with what the bucket needs besides: the commit's
//! sequence number, the writing session (epoch) that made it, the store's identity, and
//! where each file the manifest names lives. Byte layout: `docs/remote.md`.

use crate::names::FileKind;

/// Magic of a remote manifest.
pub const MAGIC: &[u8; 8] = b"STRAREMF";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
const HEADER: usize = 72;
const ENTRY: usize = 24;
/// Most files one manifest may name.
pub const MAX_FILES: usize = 1 << 20;
/// Largest embedded local manifest.
pub const MAX_MANIFEST: usize = 64 << 20;

/// A file a remote manifest names: local file `no` of `kind`, uploaded by session `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemoteFile {
    /// Segment or deletion file.
    pub kind: FileKind,
    /// The store's file number.
    pub no: u64,
    /// The writing session that uploaded it (its object is `data/<epoch>/<no>.<ext>`).
    pub epoch: u64,
}

/// One commit of a store in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteManifest {
    /// The commit's sequence number (its object is `manifest/<seq>`).
    pub seq: u64,
    /// The writing session: the sequence number of the commit that opened it.
    pub epoch: u64,
    /// The store's identity, fixed by its first commit.
    pub store_id: u128,
    /// When the commit was made (milliseconds since the Unix epoch; informational).
    pub unix_ms: u64,
    /// Every operation up to this sequence number is in the commit's segments (the local
    /// manifest's log checkpoint): log objects that end at or before it are not needed.
    pub checkpoint_seq: u64,
    /// Every segment and deletion file `manifest` names, and where it is.
    pub files: Vec<RemoteFile>,
    /// The store's local `MANIFEST` bytes.
    pub manifest: Vec<u8>,
}

/// Why remote manifest bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at offset {offset}")]
pub struct EnvelopeError {
    /// The first offending byte.
    pub offset: u64,
    /// What is wrong.
    pub what: &'static str,
}

fn bad(offset: usize, what: &'static str) -> EnvelopeError {
    EnvelopeError {
        offset: offset as u64,
        what,
    }
}

impl RemoteManifest {
    /// The object's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER + self.files.len() * ENTRY + self.manifest.len() + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&self.store_id.to_le_bytes());
        b.extend_from_slice(&self.unix_ms.to_le_bytes());
        b.extend_from_slice(&self.checkpoint_seq.to_le_bytes());
        b.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.manifest.len() as u32).to_le_bytes());
        for f in &self.files {
            b.push(f.kind.code());
            b.extend_from_slice(&[0; 7]);
            b.extend_from_slice(&f.no.to_le_bytes());
            b.extend_from_slice(&f.epoch.to_le_bytes());
        }
        b.extend_from_slice(&self.manifest);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks an object's bytes (never panics, never over-allocates).
    pub fn decode(b: &[u8]) -> Result<Self, EnvelopeError> {
        if b.len() < HEADER + 4 {
            return Err(bad(b.len(), "truncated remote manifest"));
        }
        if &b[..8] != MAGIC {
            return Err(bad(0, "not a remote manifest (bad magic)"));
        }
        let body = b.len() - 4;
        let crc = u32::from_le_bytes(b[body..].try_into().map_err(|_| bad(body, "crc"))?);
        if crc32fast::hash(&b[..body]) != crc {
            return Err(bad(body, "checksum mismatch"));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        if u32_at(8) != VERSION {
            return Err(bad(8, "unsupported remote manifest version"));
        }
        if u32_at(12) != 0 {
            return Err(bad(12, "reserved field is not zero"));
        }
        let seq = u64_at(16);
        let epoch = u64_at(24);
        let store_id = u128::from(u64_at(32)) | (u128::from(u64_at(40)) << 64);
        let unix_ms = u64_at(48);
        let checkpoint_seq = u64_at(56);
        let n = u32_at(64) as usize;
        let m = u32_at(68) as usize;
        if seq == 0 || epoch == 0 || epoch > seq {
            return Err(bad(16, "sequence number or epoch out of range"));
        }
        if n > MAX_FILES {
            return Err(bad(64, "too many files"));
        }
        if m > MAX_MANIFEST {
            return Err(bad(68, "embedded manifest too large"));
        }
        if HEADER + n * ENTRY + m != body {
            return Err(bad(64, "lengths do not match the object size"));
        }
        let mut files = Vec::with_capacity(n);
        for i in 0..n {
            let o = HEADER + i * ENTRY;
            let kind = FileKind::from_code(b[o]).ok_or_else(|| bad(o, "unknown file kind"))?;
            if b[o + 1..o + 8].iter().any(|&x| x != 0) {
                return Err(bad(o + 1, "padding is not zero"));
            }
            let f = RemoteFile {
                kind,
                no: u64_at(o + 8),
                epoch: u64_at(o + 16),
            };
            if f.epoch == 0 || f.epoch > epoch {
                return Err(bad(o + 16, "file epoch out of range"));
            }
            files.push(f);
        }
        let start = HEADER + n * ENTRY;
        Ok(RemoteManifest {
            seq,
            epoch,
            store_id,
            unix_ms,
            checkpoint_seq,
            files,
            manifest: b[start..start + m].to_vec(),
        })
    }

    /// Where file `no` of `kind` is, if this commit names it.
    pub fn file(&self, kind: FileKind, no: u64) -> Option<RemoteFile> {
        self.files
            .iter()
            .copied()
            .find(|f| f.kind == kind && f.no == no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RemoteManifest {
        RemoteManifest {
            seq: 9,
            epoch: 7,
            store_id: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            unix_ms: 1_800_000_000_000,
            checkpoint_seq: 1234,
            files: vec![
                RemoteFile {
                    kind: FileKind::Segment,
                    no: 3,
                    epoch: 2,
                },
                RemoteFile {
                    kind: FileKind::Deletion,
                    no: 5,
                    epoch: 7,
                },
            ],
            manifest: b"local manifest bytes".to_vec(),
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(RemoteManifest::decode(&m.encode()), Ok(m.clone()));
        assert_eq!(m.file(FileKind::Deletion, 5).map(|f| f.epoch), Some(7));
        assert_eq!(m.file(FileKind::Segment, 5), None);
    }

    #[test]
    fn every_damaged_byte_and_truncation_is_refused() {
        let b = sample().encode();
        for i in 0..b.len() {
            for bit in [0x01u8, 0x80] {
                let mut d = b.clone();
                d[i] ^= bit;
                assert!(RemoteManifest::decode(&d).is_err(), "flip at {i}");
            }
        }
        for len in 0..b.len() {
            assert!(RemoteManifest::decode(&b[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn checked_fields_with_a_valid_checksum_are_refused() {
        let reseal = |mut d: Vec<u8>| {
            let body = d.len() - 4;
            let crc = crc32fast::hash(&d[..body]);
            d[body..].copy_from_slice(&crc.to_le_bytes());
            d
        };
        let mut m = sample();
        m.epoch = 10; // after its own sequence number
        assert!(RemoteManifest::decode(&m.encode()).is_err());
        let mut m = sample();
        m.files[0].epoch = 8; // a file from a later session
        assert!(RemoteManifest::decode(&m.encode()).is_err());
        let mut d = sample().encode();
        d[64] = 0xff; // file count past the object
        assert!(RemoteManifest::decode(&reseal(d)).is_err());
        let mut d = sample().encode();
        d[72] = 9; // unknown kind
        assert!(RemoteManifest::decode(&reseal(d)).is_err());
    }
}
