//! Point reads over a snapshot: where the live row of an id is, and its record or payload.

use crate::error::Result;
use crate::live_segment::LiveSegment;
use crate::memtable::MemRow;
use crate::record::Record;
use crate::version::Version;

/// Where the live row of an id is in a snapshot.
enum Found<'a> {
    Memtable(&'a MemRow),
    Segment(&'a LiveSegment, usize),
}

/// The live row of `id` in `v`: the newest memtable that mentions it decides (a delete
/// there hides older segments); otherwise the newest segment holding it live.
fn find(v: &Version, id: u64) -> Option<Found<'_>> {
    for m in &v.memtables {
        match m.lookup_at(id, v.seq) {
            Some(Some(row)) => return Some(Found::Memtable(row)),
            Some(None) => return None,
            None => {}
        }
    }
    v.segments
        .iter()
        .find_map(|s| s.live_row(id).map(|row| Found::Segment(s, row)))
}

impl Found<'_> {
    /// The string key of the row (string-keyed stores).
    fn key(&self) -> Result<Option<&str>> {
        Ok(match self {
            Found::Memtable(row) => row.key.as_deref(),
            Found::Segment(s, row) => s.reader.key(*row)?,
        })
    }
}

/// The id `key` is bound to in `v`, when a record with that key is live. Candidates are
/// the ids the key was ever bound to, newest memtable first, then newest segment first;
/// the first live one whose row holds the key is it (at most one id of a key is live at
/// a time).
pub(crate) fn key_id(v: &Version, key: &str) -> Result<Option<u64>> {
    let check = |id: u64| -> Result<bool> {
        Ok(match find(v, id) {
            Some(found) => found.key()? == Some(key),
            None => false,
        })
    };
    for m in &v.memtables {
        for id in m.key_ids(key) {
            if check(id)? {
                return Ok(Some(id));
            }
        }
    }
    for s in &v.segments {
        for row in s.reader.rows_with_key(key)? {
            let id = s.reader.id_rows(row..row + 1)?[0];
            if check(id)? {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

/// The string key of the live record `id` in `v` (`None` in a store of `u64` ids).
pub(crate) fn key(v: &Version, id: u64) -> Result<Option<String>> {
    match find(v, id) {
        Some(found) => Ok(found.key()?.map(str::to_owned)),
        None => Ok(None),
    }
}

/// Whether `id` is live in `v`.
pub(crate) fn contains(v: &Version, id: u64) -> bool {
    find(v, id).is_some()
}

/// The record `id` in `v`.
pub(crate) fn record(v: &Version, id: u64) -> Result<Option<Record>> {
    Ok(match find(v, id) {
        None => None,
        Some(Found::Memtable(row)) => Some(Record {
            id,
            key: row.key.as_deref().map(str::to_owned),
            vector: row.vector.to_vec(),
            payload: row.payload.as_ref().map(|p| p.to_vec()),
            metadata: row.metadata.as_deref().cloned(),
            text: row.text.as_deref().map(str::to_owned),
        }),
        Some(Found::Segment(s, row)) => Some(Record {
            id,
            key: s.reader.key(row)?.map(str::to_owned),
            vector: s.reader.vector(row)?,
            payload: s.reader.payload(row)?,
            metadata: s.reader.metadata(row)?,
            text: s.reader.text(row)?,
        }),
    })
}

/// The payload of `id` in `v` (`None` when it has none or is not live).
pub(crate) fn payload(v: &Version, id: u64) -> Result<Option<Vec<u8>>> {
    Ok(match find(v, id) {
        None => None,
        Some(Found::Memtable(row)) => row.payload.as_ref().map(|p| p.to_vec()),
        Some(Found::Segment(s, row)) => s.reader.payload(row)?,
    })
}

/// The metadata of `id` in `v` (`None` when it has none or is not live).
pub(crate) fn metadata(v: &Version, id: u64) -> Result<Option<crate::Metadata>> {
    Ok(match find(v, id) {
        None => None,
        Some(Found::Memtable(row)) => row.metadata.as_deref().cloned(),
        Some(Found::Segment(s, row)) => s.reader.metadata(row)?,
    })
}

/// The text of `id` in `v` (`None` when it has none or is not live).
pub(crate) fn text(v: &Version, id: u64) -> Result<Option<String>> {
    Ok(match find(v, id) {
        None => None,
        Some(Found::Memtable(row)) => row.text.as_deref().map(str::to_owned),
        Some(Found::Segment(s, row)) => s.reader.text(row)?,
    })
}

/// Live records in `v`: segment rows not deleted plus memtable rows visible.
pub(crate) fn live_rows(v: &Version) -> u64 {
    let segments: u64 = v
        .segments
        .iter()
        .map(|s| (s.reader.rows() - s.deleted.count()) as u64)
        .sum();
    let memtables: u64 = v
        .memtables
        .iter()
        .map(|m| m.visible_rows(v.seq) as u64)
        .sum();
    segments + memtables
}
