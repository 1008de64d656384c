//! Log objects (`wal/<no>`): write-ahead-log records shipped to the bucket, so that
//! a write acknowledged under bucket durability survives the loss of the writer's
//! machine. Objects are numbered 1, 2, 3, … without gaps and put create-only: a new
//! writing session puts a **fence** object at the next number, after which an older
//! session's next put fails. Byte layout: `docs/remote.md`.

/// Magic of a log object.
pub const MAGIC: &[u8; 8] = b"STRAREWL";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes of the header, which [`LogHeader::decode`] reads alone.
pub const HEADER: usize = 56;
const RECORD_HEADER: usize = 24;
/// Largest payload of one record (as in the local log).
pub const MAX_PAYLOAD: usize = 256 << 20;

/// One record of the log: operations `seq .. seq + count` of kind `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Sequence number of the first operation.
    pub seq: u64,
    /// Operations in the record.
    pub count: u32,
    /// The local log's record kind.
    pub kind: u8,
    /// The local log's record payload.
    pub payload: Vec<u8>,
}

impl LogRecord {
    /// The sequence number of the record's last operation.
    pub fn last_seq(&self) -> u64 {
        self.seq + u64::from(self.count).saturating_sub(1)
    }
}

/// A log object: records in sequence order, or a fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    /// The session that put it.
    pub epoch: u64,
    /// Its number (its name's first part).
    pub no: u64,
    /// A fence holds no records: it only takes its number.
    pub fence: bool,
    /// The records, contiguous in sequence numbers.
    pub records: Vec<LogRecord>,
}

impl LogObject {
    /// The last sequence number it holds (0 for a fence or no records); part of its name.
    pub fn last_seq(&self) -> u64 {
        self.records.last().map_or(0, LogRecord::last_seq)
    }

    /// The object's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(
            HEADER
                + 4
                + self
                    .records
                    .iter()
                    .map(|r| RECORD_HEADER + r.payload.len() + 8)
                    .sum::<usize>(),
        );
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&u32::from(self.fence).to_le_bytes());
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&self.no.to_le_bytes());
        b.extend_from_slice(&self.records.first().map_or(0, |r| r.seq).to_le_bytes());
        b.extend_from_slice(&self.last_seq().to_le_bytes());
        b.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        for r in &self.records {
            b.extend_from_slice(&r.seq.to_le_bytes());
            b.extend_from_slice(&r.count.to_le_bytes());
            b.push(r.kind);
            b.extend_from_slice(&[0; 3]);
            b.extend_from_slice(&(r.payload.len() as u64).to_le_bytes());
            b.extend_from_slice(&r.payload);
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks an object's bytes (never panics, never over-allocates).
    pub fn decode(b: &[u8]) -> Result<Self, crate::EnvelopeError> {
        let bad = |offset: usize, what: &'static str| crate::EnvelopeError {
            offset: offset as u64,
            what,
        };
        if b.len() < HEADER + 4 {
            return Err(bad(b.len(), "truncated log object"));
        }
        if &b[..8] != MAGIC {
            return Err(bad(0, "not a log object (bad magic)"));
        }
        let body = b.len() - 4;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        if crc32fast::hash(&b[..body]) != u32_at(body) {
            return Err(bad(body, "checksum mismatch"));
        }
        if u32_at(8) != VERSION {
            return Err(bad(8, "unsupported log object version"));
        }
        let fence = match u32_at(12) {
            0 => false,
            1 => true,
            _ => return Err(bad(12, "bad fence flag")),
        };
        let (epoch, no, n) = (u64_at(16), u64_at(24), u64_at(48));
        let (first, last) = (u64_at(32), u64_at(40));
        if epoch == 0 || no == 0 {
            return Err(bad(16, "epoch or object number is zero"));
        }
        if fence && n != 0 {
            return Err(bad(32, "a fence holds records"));
        }
        let mut records = Vec::new();
        let mut at = HEADER;
        let mut next_seq: Option<u64> = None;
        for _ in 0..n {
            if body - at < RECORD_HEADER {
                return Err(bad(at, "record header past the end"));
            }
            let seq = u64_at(at);
            let count = u32_at(at + 8);
            let kind = b[at + 12];
            if b[at + 13..at + 16] != [0; 3] {
                return Err(bad(at + 13, "padding is not zero"));
            }
            let len = u64_at(at + 16);
            if count == 0 || seq == 0 || next_seq.is_some_and(|s| s != seq) {
                return Err(bad(at, "records are not contiguous"));
            }
            if len > MAX_PAYLOAD as u64 || len > (body - at - RECORD_HEADER) as u64 {
                return Err(bad(at + 16, "record payload past the end"));
            }
            let start = at + RECORD_HEADER;
            let end = start + len as usize;
            let r = LogRecord {
                seq,
                count,
                kind,
                payload: b[start..end].to_vec(),
            };
            next_seq = r.last_seq().checked_add(1);
            records.push(r);
            at = end;
        }
        if at != body {
            return Err(bad(at, "bytes after the last record"));
        }
        if first != records.first().map_or(0, |r| r.seq)
            || last != records.last().map_or(0, LogRecord::last_seq)
        {
            return Err(bad(
                32,
                "the header's sequence numbers differ from the records'",
            ));
        }
        Ok(LogObject {
            epoch,
            no,
            fence,
            records,
        })
    }
}

/// The header of a log object: enough to decide whether its records are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHeader {
    /// A fence.
    pub fence: bool,
    /// The session that put it.
    pub epoch: u64,
    /// Its number.
    pub no: u64,
    /// Its last sequence number (0 for a fence).
    pub last_seq: u64,
}

impl LogHeader {
    /// Reads the first 56 bytes (the header) of a log object (unchecked by the object's CRC:
    /// only for decisions that a wrong answer makes safe, such as keeping an object).
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < HEADER || &b[..8] != MAGIC {
            return None;
        }
        let u64_at = |o: usize| {
            b.get(o..o + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        Some(LogHeader {
            fence: b[12] == 1,
            epoch: u64_at(16)?,
            no: u64_at(24)?,
            last_seq: u64_at(40)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LogObject {
        LogObject {
            epoch: 3,
            no: 12,
            fence: false,
            records: vec![
                LogRecord {
                    seq: 10,
                    count: 2,
                    kind: 1,
                    payload: b"abc".to_vec(),
                },
                LogRecord {
                    seq: 12,
                    count: 1,
                    kind: 1,
                    payload: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let o = sample();
        assert_eq!(o.last_seq(), 12);
        let h = LogHeader::decode(&o.encode()).expect("header");
        assert_eq!((h.fence, h.epoch, h.no, h.last_seq), (false, 3, 12, 12));
        assert_eq!(LogObject::decode(&o.encode()), Ok(o));
        let f = LogObject {
            epoch: 4,
            no: 13,
            fence: true,
            records: Vec::new(),
        };
        assert_eq!(f.last_seq(), 0);
        assert_eq!(LogObject::decode(&f.encode()), Ok(f));
    }

    #[test]
    fn every_damaged_byte_and_truncation_is_refused() {
        let b = sample().encode();
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x04;
            assert!(LogObject::decode(&d).is_err(), "flip at {i}");
        }
        for len in 0..b.len() {
            assert!(LogObject::decode(&b[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn gaps_are_refused() {
        let mut o = sample();
        o.records[1].seq = 13;
        assert!(LogObject::decode(&o.encode()).is_err());
    }
}
