//! The `REMOTE` file of a local store directory: which bucket store the directory is a
//! copy of, and the writing session it last claimed. Opening the directory against a
//! bucket compares it with the bucket's newest commit (see [`Attachment::follows`]).
//! Byte layout: `docs/remote.md`.

use std::io;
use std::path::Path;

use strata_vfs::Vfs;

/// The file's name in the store directory.
pub const FILE: &str = "REMOTE";
const MAGIC: &[u8; 8] = b"STRAREML";
const VERSION: u32 = 1;
/// Bytes before the URL.
const FIXED: usize = 52;
/// Longest bucket URL recorded.
const MAX_URL: usize = 4096;

/// What a local directory knows of its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The bucket store's identity.
    pub store_id: u128,
    /// The session this directory claimed (the sequence number it claimed with); 0 when
    /// it claimed none (a restored copy).
    pub epoch: u64,
    /// The bucket's newest commit when the directory made its claim (or was restored).
    pub based_on: u64,
    /// The bucket's URL (at most 4,096 bytes; longer ones are not recorded).
    pub url: String,
}

impl Attachment {
    /// Whether the bucket's newest commit (`latest_seq`, made by session `latest_epoch`
    /// of store `store_id`) continues what this directory holds: either this directory's
    /// session made it, or nothing was committed since the directory's claim was
    /// attempted (or since it was restored).
    pub fn follows(&self, store_id: u128, latest_seq: u64, latest_epoch: u64) -> bool {
        store_id == self.store_id
            && ((self.epoch != 0 && latest_epoch == self.epoch) || latest_seq == self.based_on)
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let url = if self.url.len() <= MAX_URL {
            self.url.as_bytes()
        } else {
            &[]
        };
        let mut b = Vec::with_capacity(FIXED + url.len());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.store_id.to_le_bytes());
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&self.based_on.to_le_bytes());
        b.extend_from_slice(&(url.len() as u32).to_le_bytes());
        b.extend_from_slice(url);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses the file's bytes; `None` when they are not a valid attachment.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < FIXED + 4 || b.len() > FIXED + 4 + MAX_URL || &b[..8] != MAGIC {
            return None;
        }
        let body = b.len() - 4;
        let crc = u32::from_le_bytes(b[body..].try_into().ok()?);
        let url_len = u32::from_le_bytes(b[48..52].try_into().ok()?) as usize;
        if crc32fast::hash(&b[..body]) != crc
            || FIXED + url_len != body
            || u32::from_le_bytes(b[8..12].try_into().ok()?) != VERSION
            || b[12..16] != [0; 4]
        {
            return None;
        }
        Some(Attachment {
            store_id: u128::from_le_bytes(b[16..32].try_into().ok()?),
            epoch: u64::from_le_bytes(b[32..40].try_into().ok()?),
            based_on: u64::from_le_bytes(b[40..48].try_into().ok()?),
            url: String::from_utf8(b[52..body].to_vec()).ok()?,
        })
    }

    /// Reads `dir/REMOTE`: `Ok(None)` when it is missing, an `InvalidData` error when it
    /// is damaged.
    pub fn read(fs: &dyn Vfs, dir: &Path) -> io::Result<Option<Self>> {
        match fs.read(&dir.join(FILE)) {
            Ok(b) => Attachment::decode(&b).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is damaged", dir.join(FILE).display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `dir/REMOTE` durably (through `REMOTE.tmp`).
    pub fn write(&self, fs: &dyn Vfs, dir: &Path) -> strata_format::Result<()> {
        strata_format::fsutil::write_atomic(fs, &dir.join(FILE), &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let a = Attachment {
            store_id: 77,
            epoch: 5,
            based_on: 4,
            url: "s3://bucket/store".into(),
        };
        let b = a.encode();
        assert_eq!(Attachment::decode(&b), Some(a));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x10;
            assert_eq!(Attachment::decode(&d), None, "flip at {i}");
        }
        for len in 0..b.len() {
            assert_eq!(Attachment::decode(&b[..len]), None, "cut at {len}");
        }
    }

    #[test]
    fn follows_its_own_session_or_an_unchanged_bucket() {
        let a = Attachment {
            store_id: 1,
            epoch: 5,
            based_on: 4,
            url: String::new(),
        };
        assert!(a.follows(1, 9, 5)); // our session's later commits
        assert!(a.follows(1, 4, 2)); // the claim never landed, nothing since
        assert!(!a.follows(1, 6, 6)); // another session took over
        assert!(!a.follows(2, 9, 5)); // another store
        let restored = Attachment {
            store_id: 1,
            epoch: 0,
            based_on: 4,
            url: String::new(),
        };
        assert!(restored.follows(1, 4, 3));
        assert!(!restored.follows(1, 5, 5));
    }
}
