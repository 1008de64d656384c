//! The metadata index of a set of rows (a segment's `FIELD_INDEX` section, or a
//! memtable's, kept in memory as rows arrive): for every dotted path, the rows holding a
//! value there, the rows of each string and bool value (roaring bitmaps), and the
//! numbers with their rows, sorted by value for ranges. Paths the store was told to leave
//! unindexed (and everything under them) are listed instead of indexed.
//!
//! Layout of the encoding (`docs/format.md`, "Field index"): `version u8` (1) · 3 zero
//! bytes · `rows u32` · unindexed paths (`count u32`, each `len u16` + UTF-8) · fields
//! (`count u32`, each: `len u16` + path, `flags u8` (bit 0: some row holds a list),
//! bitmaps of present, null, false and true rows, `count u32` strings each `len u16` +
//! UTF-8 + bitmap, in ascending byte order, `count u32` integers: `count × i64` then
//! `count × u32` rows, `count u32` floats: `count × f64` then `count × u32` rows, both
//! sorted by (value, row)). A bitmap is `len u32` and the roaring portable serialization.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::codec::Reader;
use crate::error::{CorruptionKind, DecodeError};
use crate::metadata::{MetaValue, Metadata};

/// Version byte of the encoding.
pub const FIELD_INDEX_VERSION: u8 = 1;

/// What one path holds across the rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldColumns {
    /// Rows with a value at the path (null and objects included).
    pub present: RoaringBitmap,
    /// Rows whose value is null.
    pub nulls: RoaringBitmap,
    /// Rows holding `false`, and `true`.
    pub bools: [RoaringBitmap; 2],
    /// Rows holding each string (a list: each element).
    pub strings: BTreeMap<String, RoaringBitmap>,
    /// Every integer held (a list: each element) with its row.
    pub ints: Vec<(i64, u32)>,
    /// Every float held with its row.
    pub floats: Vec<(f64, u32)>,
    /// Whether some row holds a list here.
    pub lists: bool,
}

/// The index of a set of rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldIndexData {
    /// Rows covered (row numbers are below it).
    pub rows: u32,
    /// Paths left unindexed, with everything under them.
    pub unindexed: Vec<String>,
    /// Indexed paths.
    pub fields: BTreeMap<String, FieldColumns>,
    /// Whether `ints` and `floats` are sorted by (value, row) (always after
    /// [`FieldIndexData::finish`] and decoding; a memtable's grows unsorted).
    pub sorted: bool,
}

impl FieldIndexData {
    /// An empty index leaving `unindexed` paths out.
    pub fn new(unindexed: &[String]) -> Self {
        FieldIndexData {
            rows: 0,
            unindexed: unindexed.to_vec(),
            fields: BTreeMap::new(),
            sorted: true,
        }
    }

    /// Whether `path` is left unindexed (it, or a path above it, was named).
    pub fn is_unindexed(&self, path: &str) -> bool {
        self.unindexed.iter().any(|u| {
            path.strip_prefix(u.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    }

    /// Adds the metadata of `row` (rows are added in ascending order; a row without
    /// metadata needs no call, but counts towards `rows` via `row + 1`).
    pub fn add(&mut self, row: u32, m: &Metadata) {
        self.rows = self.rows.max(row + 1);
        for (path, v) in m.entries() {
            if self.is_unindexed(&path) {
                continue;
            }
            let f = self.fields.entry(path).or_default();
            f.present.insert(row);
            if add_value(f, v, row) {
                self.sorted = false;
            }
        }
    }

    /// Sorts the number columns; call once every row is added.
    pub fn finish(&mut self, rows: u32) {
        self.rows = self.rows.max(rows);
        for f in self.fields.values_mut() {
            f.ints.sort_unstable();
            f.floats
                .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        self.sorted = true;
    }

    /// Bytes of each indexed path's share of the encoding.
    pub fn field_bytes(&self) -> Vec<(String, usize)> {
        self.fields
            .iter()
            .map(|(p, f)| {
                let mut b = Vec::new();
                encode_field(&mut b, p, f);
                (p.clone(), b.len())
            })
            .collect()
    }

    /// The encoding (call [`FieldIndexData::finish`] first).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![FIELD_INDEX_VERSION, 0, 0, 0];
        b.extend_from_slice(&self.rows.to_le_bytes());
        b.extend_from_slice(&(self.unindexed.len() as u32).to_le_bytes());
        for u in &self.unindexed {
            put_str(&mut b, u);
        }
        b.extend_from_slice(&(self.fields.len() as u32).to_le_bytes());
        for (p, f) in &self.fields {
            encode_field(&mut b, p, f);
        }
        b
    }

    /// Decodes an encoding read at file offset `at`; refuses anything malformed (row
    /// numbers at or past `rows`, unsorted columns, bad UTF-8, trailing bytes).
    pub fn decode(buf: &[u8], at: u64) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, at);
        let bad = |r: &Reader<'_>| r.fault(CorruptionKind::Invalid("field index"));
        if r.u8()? != FIELD_INDEX_VERSION || r.bytes(3)? != [0, 0, 0] {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("field index version"),
            ));
        }
        let rows = r.u32()?;
        let n = r.u32()? as usize;
        let mut unindexed = Vec::with_capacity(n.min(r.remaining() / 2));
        for _ in 0..n {
            unindexed.push(get_str(&mut r)?);
        }
        let n = r.u32()? as usize;
        let mut fields = BTreeMap::new();
        for _ in 0..n {
            let path = get_str(&mut r)?;
            let flags = r.u8()?;
            if flags > 1 {
                return Err(bad(&r));
            }
            let mut f = FieldColumns {
                lists: flags == 1,
                present: get_bitmap(&mut r, rows)?,
                nulls: get_bitmap(&mut r, rows)?,
                ..FieldColumns::default()
            };
            f.bools = [get_bitmap(&mut r, rows)?, get_bitmap(&mut r, rows)?];
            for _ in 0..r.u32()? {
                let s = get_str(&mut r)?;
                let rows = get_bitmap(&mut r, rows)?;
                if f.strings.last_key_value().is_some_and(|(k, _)| *k >= s) {
                    return Err(bad(&r));
                }
                f.strings.insert(s, rows);
            }
            f.ints = get_column(&mut r, rows, i64::from_le_bytes)?;
            f.floats = get_column(&mut r, rows, f64::from_le_bytes)?;
            let ints_sorted = f
                .ints
                .iter()
                .zip(f.ints.iter().skip(1))
                .all(|(a, b)| a <= b);
            let floats_sorted = f
                .floats
                .iter()
                .zip(f.floats.iter().skip(1))
                .all(|(a, b)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_le());
            let prev = fields
                .last_key_value()
                .map(|(k, _): (&String, _)| k.clone());
            if !ints_sorted || !floats_sorted || prev.is_some_and(|p| p >= path) {
                return Err(bad(&r));
            }
            fields.insert(path, f);
        }
        if r.remaining() != 0 {
            return Err(bad(&r));
        }
        Ok(FieldIndexData {
            rows,
            unindexed,
            fields,
            sorted: true,
        })
    }
}

/// Adds one value; returns whether a number was added (the columns are then unsorted).
fn add_value(f: &mut FieldColumns, v: &MetaValue, row: u32) -> bool {
    match v {
        MetaValue::Null => {
            f.nulls.insert(row);
            false
        }
        MetaValue::Bool(b) => {
            let [no, yes] = &mut f.bools;
            if *b { yes } else { no }.insert(row);
            false
        }
        MetaValue::Str(s) => {
            f.strings.entry(s.clone()).or_default().insert(row);
            false
        }
        MetaValue::Int(i) => {
            f.ints.push((*i, row));
            true
        }
        MetaValue::Float(x) => {
            f.floats.push((*x, row));
            true
        }
        MetaValue::List(items) => {
            f.lists = true;
            // Every element is added (no short circuit).
            let mut numbers = false;
            for x in items {
                numbers |= add_value(f, x, row);
            }
            numbers
        }
        MetaValue::Object(_) => false,
    }
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_bitmap(b: &mut Vec<u8>, m: &RoaringBitmap) {
    b.extend_from_slice(&(m.serialized_size() as u32).to_le_bytes());
    // Writing to a Vec cannot fail.
    let _ = m.serialize_into(&mut *b);
}

fn encode_field(b: &mut Vec<u8>, path: &str, f: &FieldColumns) {
    put_str(b, path);
    b.push(f.lists as u8);
    for m in [&f.present, &f.nulls, &f.bools[0], &f.bools[1]] {
        put_bitmap(b, m);
    }
    b.extend_from_slice(&(f.strings.len() as u32).to_le_bytes());
    for (s, m) in &f.strings {
        put_str(b, s);
        put_bitmap(b, m);
    }
    b.extend_from_slice(&(f.ints.len() as u32).to_le_bytes());
    f.ints
        .iter()
        .for_each(|(v, _)| b.extend_from_slice(&v.to_le_bytes()));
    f.ints
        .iter()
        .for_each(|(_, r)| b.extend_from_slice(&r.to_le_bytes()));
    b.extend_from_slice(&(f.floats.len() as u32).to_le_bytes());
    f.floats
        .iter()
        .for_each(|(v, _)| b.extend_from_slice(&v.to_le_bytes()));
    f.floats
        .iter()
        .for_each(|(_, r)| b.extend_from_slice(&r.to_le_bytes()));
}

fn get_str(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let len = u16::from_le_bytes(r.array()?) as usize;
    let at = r.offset();
    let b = r.bytes(len)?;
    String::from_utf8(b.to_vec())
        .map_err(|_| Reader::fault_at(at, CorruptionKind::Invalid("field index string")))
}

fn get_bitmap(r: &mut Reader<'_>, rows: u32) -> Result<RoaringBitmap, DecodeError> {
    let len = r.u32()? as usize;
    let at = r.offset();
    let b = r.bytes(len)?;
    let bad = || Reader::fault_at(at, CorruptionKind::Invalid("field index bitmap"));
    let m = RoaringBitmap::deserialize_from(b).map_err(|_| bad())?;
    if m.serialized_size() != len || m.max().is_some_and(|x| x >= rows) {
        return Err(bad());
    }
    Ok(m)
}

fn get_column<T: Copy>(
    r: &mut Reader<'_>,
    rows: u32,
    from: fn([u8; 8]) -> T,
) -> Result<Vec<(T, u32)>, DecodeError> {
    let n = r.u32()? as usize;
    // Bounds the allocation by the bytes that hold the column.
    let need = n.checked_mul(12).filter(|&b| b <= r.remaining());
    if need.is_none() {
        return Err(r.fault(CorruptionKind::Invalid("field index column")));
    }
    let values: Vec<T> = (0..n)
        .map(|_| r.array().map(from))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(n);
    for v in values {
        let at = r.offset();
        let row = r.u32()?;
        if row >= rows {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("field index row"),
            ));
        }
        out.push((v, row));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn sample() -> FieldIndexData {
        let mut ix = FieldIndexData::new(&["secret".to_string()]);
        for row in 0..300u32 {
            if row % 7 == 0 {
                continue;
            }
            let text = format!(
                r#"{{"kind": "{}", "n": {}, "x": {}, "tags": ["t{}", {}], "o": {{"b": {}, "z": null}}, "secret": {{"k": 1}}, "secrets": 2}}"#,
                ["fact", "note"][row as usize % 2],
                (row * 37) % 101,
                row as f64 / 3.0,
                row % 5,
                row % 3,
                row % 2 == 0
            );
            ix.add(row, &Metadata::from_json_str(&text).unwrap());
        }
        ix.finish(300);
        ix
    }

    #[test]
    fn round_trip_and_unindexed_paths() {
        let ix = sample();
        assert!(ix.is_unindexed("secret") && ix.is_unindexed("secret.k"));
        assert!(!ix.is_unindexed("secrets"));
        assert!(!ix.fields.contains_key("secret") && !ix.fields.contains_key("secret.k"));
        assert!(ix.fields.contains_key("secrets"));
        let f = &ix.fields["kind"];
        assert_eq!(
            f.strings["fact"].len() + f.strings["note"].len(),
            f.present.len()
        );
        assert!(ix.fields["tags"].lists && !ix.fields["n"].lists);
        assert!(ix.fields["n"].ints.windows(2).all(|w| w[0] <= w[1]));
        let enc = ix.encode();
        let back = FieldIndexData::decode(&enc, 0).unwrap();
        assert_eq!(back, ix);
        let total: usize = ix.field_bytes().iter().map(|(_, b)| b).sum();
        assert!(total < enc.len());
    }

    #[test]
    fn damage_is_refused_or_decodes_to_valid_rows() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert!(FieldIndexData::decode(&enc[..cut], 0).is_err(), "cut {cut}");
        }
        for at in (0..enc.len()).step_by(3) {
            let mut bad = enc.clone();
            bad[at] ^= 0x10;
            if let Ok(d) = FieldIndexData::decode(&bad, 0) {
                for f in d.fields.values() {
                    assert!(f.present.max().is_none_or(|m| m < d.rows));
                    assert!(f.ints.iter().all(|(_, r)| *r < d.rows));
                }
            }
        }
    }
}
