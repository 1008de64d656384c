//! Reading the log back after a crash.
//!
//! Rules (see `docs/durability.md`):
//! * every file but the last was completely synced before the next was created, so any
//!   bad byte in it is corruption;
//! * in the last file, a bad record is a torn tail only if no valid record of this file
//!   follows it; the tail is then cut off (in [`ReplayMode::Repair`]);
//! * sequence numbers must continue without gaps across records and files.

use std::path::{Path, PathBuf};

use crate::error::{CorruptionKind, Error};
use crate::record::{
    decode_file_header, decode_record, RawRecord, FILE_HEADER_LEN, RECORD_HEADER_LEN,
};
use strata_vfs::Vfs;

/// Whether replay may repair a torn tail on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    /// Truncate a torn tail (and remove a last file torn during its creation).
    Repair,
    /// Change nothing; report what would be cut.
    ReadOnly,
}

/// One record handed to the replay callback.
#[derive(Debug, Clone, Copy)]
pub struct WalRecord<'a> {
    /// The WAL file it came from.
    pub file_no: u64,
    /// Offset of the record in that file.
    pub offset: u64,
    /// The record.
    pub record: RawRecord<'a>,
}

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records read.
    pub records: u64,
    /// Sequence number after the last record read (first seq + count), if any.
    pub end_seq: Option<u64>,
    /// A torn tail: file, offset of the cut, bytes dropped.
    pub torn_tail: Option<(PathBuf, u64, u64)>,
    /// Bytes of all WAL files read.
    pub bytes: u64,
}

/// A replay failure: the log's own, or the callback's.
#[derive(Debug)]
pub enum ReplayError<E> {
    /// The log is unreadable or corrupt.
    Wal(Error),
    /// The callback refused a record.
    Apply(E),
}

/// Replays `files` (file number, path), in ascending file-number order, calling `apply`
/// for every valid record. All I/O goes through `fs`.
pub fn replay<E>(
    fs: &dyn Vfs,
    files: &[(u64, PathBuf)],
    mode: ReplayMode,
    mut apply: impl FnMut(WalRecord<'_>) -> Result<(), E>,
) -> Result<ReplayReport, ReplayError<E>> {
    let mut report = ReplayReport::default();
    for (i, (file_no, path)) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let buf = fs
            .read(path)
            .map_err(|e| ReplayError::Wal(Error::io(path, e)))?;
        report.bytes += buf.len() as u64;
        let salt = match decode_file_header(&buf) {
            Ok((salt, no)) if no == *file_no => salt,
            // A file torn while it was being created (a prefix of its header, zeros, or
            // a sector half old and half new): records are appended only after the
            // header's fsync, so a last file no longer than a header held nothing that
            // was acknowledged.
            _ if last && buf.len() <= FILE_HEADER_LEN => {
                report.torn_tail = Some((path.clone(), 0, buf.len() as u64));
                if mode == ReplayMode::Repair {
                    fs.remove(path)
                        .map_err(|e| ReplayError::Wal(Error::io(path, e)))?;
                }
                continue;
            }
            _ => {
                return Err(ReplayError::Wal(corrupt(
                    path,
                    0,
                    CorruptionKind::BadHeader,
                )))
            }
        };
        let mut pos = FILE_HEADER_LEN;
        while pos < buf.len() {
            let Some((rec, next)) = decode_record(&buf, pos, salt) else {
                if !last || damage_is_synced(&buf, pos, salt, report.end_seq) {
                    return Err(ReplayError::Wal(corrupt(
                        path,
                        pos as u64,
                        CorruptionKind::DamagedRecord,
                    )));
                }
                report.torn_tail = Some((path.clone(), pos as u64, (buf.len() - pos) as u64));
                if mode == ReplayMode::Repair {
                    fs.truncate(path, pos as u64)
                        .map_err(|e| ReplayError::Wal(Error::io(path, e)))?;
                }
                break;
            };
            if let Some(expected) = report.end_seq {
                if rec.seq != expected {
                    let kind = CorruptionKind::SequenceGap {
                        expected,
                        found: rec.seq,
                    };
                    return Err(ReplayError::Wal(corrupt(path, pos as u64, kind)));
                }
            }
            let Some(end) = rec.seq.checked_add(rec.count as u64) else {
                let kind = CorruptionKind::DamagedRecord;
                return Err(ReplayError::Wal(corrupt(path, pos as u64, kind)));
            };
            report.end_seq = Some(end);
            report.records += 1;
            apply(WalRecord {
                file_no: *file_no,
                offset: pos as u64,
                record: rec,
            })
            .map_err(ReplayError::Apply)?;
            pos = next;
        }
    }
    Ok(report)
}

/// Whether the damaged record at `pos` lies in a part of the file that was already
/// durable: some valid record of this file after `pos` (8-byte aligned offsets only, as
/// records are aligned) was appended when the file was synced past `pos`. Damage in an
/// unsynced region is a torn write, even when later pages reached the disk first. A
/// plausible sequence number is required before a checksum is computed, which keeps the
/// scan linear on garbage.
fn damage_is_synced(buf: &[u8], pos: usize, salt: u32, end_seq: Option<u64>) -> bool {
    let mut at = pos + 8;
    while at + RECORD_HEADER_LEN <= buf.len() {
        let seq = buf
            .get(at + 8..at + 16)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes);
        let plausible = match (seq, end_seq) {
            (Some(s), Some(e)) => s >= e && s - e < 1 << 40,
            (Some(s), None) => s > 0 && s < 1 << 62,
            _ => false,
        };
        if let Some((rec, next)) = plausible.then(|| decode_record(buf, at, salt)).flatten() {
            if rec.synced > pos as u64 {
                return true;
            }
            at = next;
        } else {
            at += 8;
        }
    }
    false
}

fn corrupt(path: &Path, offset: u64, kind: CorruptionKind) -> Error {
    Error::Corruption {
        path: path.to_path_buf(),
        offset,
        kind,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::Wal;
    use std::sync::Arc;

    /// `n` records, each acknowledged (synced) before the next, as under `Durability::Always`.
    fn write_log(dir: &Path, n: u64) -> PathBuf {
        let wal = Wal::create(Arc::new(strata_vfs::OsVfs), dir, 1).unwrap();
        for s in 1..=n {
            wal.append(s, 1, 1, format!("record {s}").as_bytes())
                .unwrap();
            wal.sync().unwrap();
        }
        dir.join(crate::file_name(1))
    }

    fn seqs(path: &Path, mode: ReplayMode) -> Result<(Vec<u64>, ReplayReport), Error> {
        let mut got = Vec::new();
        let files = vec![(1, path.to_path_buf())];
        match replay::<()>(&strata_vfs::OsVfs, &files, mode, |r| {
            got.push(r.record.seq);
            Ok(())
        }) {
            Ok(rep) => Ok((got, rep)),
            Err(ReplayError::Wal(e)) => Err(e),
            Err(ReplayError::Apply(())) => unreachable!(),
        }
    }

    #[test]
    fn replays_everything_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 10);
        let (got, rep) = seqs(&path, ReplayMode::ReadOnly).unwrap();
        assert_eq!(got, (1..=10).collect::<Vec<_>>());
        assert_eq!(rep.end_seq, Some(11));
        assert!(rep.torn_tail.is_none());
    }

    #[test]
    fn torn_tail_at_every_cut_is_truncated_to_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 6);
        let good = std::fs::read(&path).unwrap();
        for cut in FILE_HEADER_LEN..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            let (got, _) = seqs(&path, ReplayMode::Repair).unwrap();
            assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>(), "cut {cut}");
            // After repair the file replays cleanly to the same prefix.
            let (again, rep) = seqs(&path, ReplayMode::ReadOnly).unwrap();
            assert_eq!(again, got);
            assert!(rep.torn_tail.is_none());
        }
    }

    #[test]
    fn a_last_file_torn_while_created_is_a_torn_tail_but_a_damaged_header_with_records_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 3);
        let good = std::fs::read(&path).unwrap();
        // The header's sector half written: the right length, new bytes then zeros
        // (found by the power-loss proof suite), or any other byte pattern.
        for keep in 0..FILE_HEADER_LEN {
            let mut torn = good[..FILE_HEADER_LEN].to_vec();
            torn[keep..].iter_mut().for_each(|b| *b = 0);
            // Byte `keep` always differs from the good header's, so the torn header never
            // is the good one (zeros alone could match a CRC byte of a random salt).
            torn[keep] = good[keep] ^ 0x5a;
            std::fs::write(&path, &torn).unwrap();
            let (got, rep) = seqs(&path, ReplayMode::ReadOnly).unwrap();
            assert!(got.is_empty(), "keep {keep}");
            assert_eq!(
                rep.torn_tail,
                Some((path.clone(), 0, FILE_HEADER_LEN as u64))
            );
        }
        // Records follow a header only once it was synced: damage there is corruption.
        let mut bad = good.clone();
        bad[3] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            seqs(&path, ReplayMode::ReadOnly),
            Err(Error::Corruption { offset: 0, .. })
        ));
    }

    #[test]
    fn damage_before_a_valid_record_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 6);
        let mut bad = std::fs::read(&path).unwrap();
        bad[FILE_HEADER_LEN + 30] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let err = seqs(&path, ReplayMode::Repair).unwrap_err();
        match err {
            Error::Corruption {
                path: p, offset, ..
            } => {
                assert_eq!(p, path);
                assert_eq!(offset, FILE_HEADER_LEN as u64);
            }
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn damage_in_an_unsynced_region_is_a_torn_tail_even_before_valid_records() {
        // Power loss may persist later pages and lose earlier ones of what was never
        // synced: that is a torn write, not corruption.
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::create(Arc::new(strata_vfs::OsVfs), dir.path(), 1).unwrap();
        wal.append(1, 1, 1, b"synced").unwrap();
        wal.sync().unwrap();
        for s in 2..=5 {
            wal.append(s, 1, 1, b"never synced").unwrap();
        }
        let path = dir.path().join(crate::file_name(1));
        let mut bad = std::fs::read(&path).unwrap();
        let second = FILE_HEADER_LEN + crate::record::padded_len(6);
        bad[second + 36] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let (got, rep) = seqs(&path, ReplayMode::Repair).unwrap();
        assert_eq!(got, vec![1]);
        assert_eq!(rep.torn_tail.unwrap().1, second as u64);
    }

    #[test]
    fn a_flip_in_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 3);
        let mut bad = std::fs::read(&path).unwrap();
        let n = bad.len();
        bad[n - 10] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let (got, rep) = seqs(&path, ReplayMode::ReadOnly).unwrap();
        assert_eq!(got, vec![1, 2]);
        assert!(rep.torn_tail.is_some());
    }
}
