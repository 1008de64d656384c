//! Little-endian, bounds-checked cursor for decoding, and CRC helpers.

use crate::error::{CorruptionKind, DecodeError};

/// A cursor over bytes from disk: every read checks bounds and reports the offset.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Reader<'a> {
    /// A reader whose offsets are reported relative to `base` (the buffer's file offset).
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// File offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(DecodeError {
                offset: self.offset(),
                kind: CorruptionKind::Truncated {
                    needed: n as u64,
                    available: self.remaining() as u64,
                },
            }),
        }
    }

    /// Reads `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Reads a byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An error of `kind` at the current offset.
    pub fn fault(&self, kind: CorruptionKind) -> DecodeError {
        DecodeError {
            offset: self.offset(),
            kind,
        }
    }

    /// An error of `kind` at `offset`.
    pub fn fault_at(offset: u64, kind: CorruptionKind) -> DecodeError {
        DecodeError { offset, kind }
    }
}

/// Checks a stored CRC32 against `data`, reporting `offset` on mismatch.
pub fn check_crc(data: &[u8], stored: u32, offset: u64) -> Result<(), DecodeError> {
    let computed = crc32fast::hash(data);
    if computed == stored {
        Ok(())
    } else {
        Err(DecodeError {
            offset,
            kind: CorruptionKind::Checksum { stored, computed },
        })
    }
}

/// Checks `magic` at the start of `r`.
pub fn expect_magic(r: &mut Reader<'_>, magic: &[u8]) -> Result<(), DecodeError> {
    let at = r.offset();
    if r.bytes(magic.len())? == magic {
        Ok(())
    } else {
        Err(DecodeError {
            offset: at,
            kind: CorruptionKind::BadMagic,
        })
    }
}

/// Checks a format version against the accepted range.
pub fn expect_version(found: u32, min: u32, max: u32, offset: u64) -> Result<(), DecodeError> {
    if (min..=max).contains(&found) {
        Ok(())
    } else {
        Err(DecodeError {
            offset,
            kind: CorruptionKind::UnsupportedVersion { found, min, max },
        })
    }
}
