//! Filters over a metadata index ([`FieldIndexData`]: per dotted path, roaring bitmaps
//! of the rows holding each string or bool value, and the numbers with their rows,
//! sorted by value for ranges; `docs/filters.md`). A segment's is its `FIELD_INDEX`
//! section, read the first time a filter reaches the segment and kept while the segment
//! is live; a memtable's grows as rows arrive. A filter becomes an exact set of rows by
//! set operations; only leaves on paths left unindexed read rows' metadata.

use std::sync::Arc;

use roaring::RoaringBitmap;
use strata_format::field_index::{FieldColumns, FieldIndexData};
use strata_format::metadata::MetaValue;

use crate::error::Result;
use crate::filter::{compare_numbers, Cmp, Filter};
use strata_format::SegmentReader;

/// A set of segment rows, one bit per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSet {
    words: Vec<u64>,
    rows: usize,
}

/// The rows whose bits are set in `words` (bit `r % 64` of word `r / 64`), ascending:
/// a row set's, or a deletion bitmap's.
pub(crate) fn set_rows(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(i, &w)| {
        let mut w = w;
        std::iter::from_fn(move || {
            (w != 0).then(|| {
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                i * 64 + b
            })
        })
    })
}

impl RowSet {
    /// No row.
    pub fn empty(rows: usize) -> RowSet {
        RowSet {
            words: vec![0; rows.div_ceil(64)],
            rows,
        }
    }

    /// Every row.
    pub fn full(rows: usize) -> RowSet {
        let mut s = RowSet {
            words: vec![u64::MAX; rows.div_ceil(64)],
            rows,
        };
        s.clear_tail();
        s
    }

    fn clear_tail(&mut self) {
        if !self.rows.is_multiple_of(64) {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << (self.rows % 64)) - 1;
            }
        }
    }

    /// Adds `row`.
    pub fn insert(&mut self, row: usize) {
        if let Some(w) = self.words.get_mut(row / 64) {
            *w |= 1 << (row % 64);
        }
    }

    /// Removes the rows set in `words` (a bitmap of the same layout).
    pub fn remove_all(&mut self, words: &[u64]) {
        self.words.iter_mut().zip(words).for_each(|(a, b)| *a &= !b);
    }

    /// Whether `row` is in the set.
    pub fn contains(&self, row: usize) -> bool {
        self.words
            .get(row / 64)
            .is_some_and(|w| w & (1 << (row % 64)) != 0)
    }

    /// Rows in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn and(mut self, o: &RowSet) -> RowSet {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a &= b);
        self
    }

    fn or(mut self, o: &RowSet) -> RowSet {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a |= b);
        self
    }

    fn not(mut self) -> RowSet {
        self.words.iter_mut().for_each(|w| *w = !*w);
        self.clear_tail();
        self
    }

    /// The rows in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        set_rows(&self.words)
    }

    fn of_bitmap(rows: usize, m: &RoaringBitmap) -> RowSet {
        let mut s = RowSet::empty(rows);
        m.iter().for_each(|r| s.insert(r as usize));
        s
    }
}

/// A filter leaf (a [`Filter::Field`]) evaluated row by row, for paths left unindexed.
pub(crate) type Fallback<'a> = dyn Fn(&Filter) -> Result<RowSet> + 'a;

/// Row sets of the dense bitmaps of an index (more than one row in 32), by the bitmap's
/// address in the index: copying one is a memcpy, where building it from the bitmap
/// costs a step per row (0.6 ms for half of 389k rows).
pub(crate) type Dense = std::collections::HashMap<usize, RowSet>;

fn key(m: &RoaringBitmap) -> usize {
    m as *const RoaringBitmap as usize
}

/// Evaluates filters over a [`FieldIndexData`] (a segment's, or a memtable's).
pub(crate) struct FieldIndex {
    pub data: FieldIndexData,
    /// The dense bitmaps of `data` as row sets.
    pub dense: Dense,
    /// Row-ordered values of the paths where every value is one integer (no list, no
    /// float): a range filter on one of them tests rows by value instead of building a
    /// row set.
    pub int_columns: std::collections::HashMap<String, Arc<IntColumn>>,
}

/// The integer of each row at one path (`has`: rows with one).
pub(crate) struct IntColumn {
    values: Vec<i64>,
    has: RowSet,
}

/// The rows whose integer at one path lies in `[min, max]`: `sorted[lo..hi]` of the
/// path's sorted column. A filter that is only such a range is answered by it without
/// building a row set (deleted rows included: the caller masks them).
pub(crate) struct IntRange {
    ix: Arc<FieldIndex>,
    column: Arc<IntColumn>,
    path: String,
    lo: usize,
    hi: usize,
    min: i64,
    max: i64,
}

impl IntRange {
    /// Rows in the range.
    pub fn len(&self) -> usize {
        self.hi - self.lo
    }

    /// Whether `row` holds a value in the range.
    #[inline]
    pub fn contains(&self, row: usize) -> bool {
        self.column.has.contains(row)
            && self
                .column
                .values
                .get(row)
                .is_some_and(|v| (self.min..=self.max).contains(v))
    }

    /// The rows in the range, in value order.
    pub fn rows(&self) -> impl Iterator<Item = usize> + '_ {
        let col = self
            .ix
            .data
            .fields
            .get(&self.path)
            .map_or(&[][..], |f| &f.ints[..]);
        col.get(self.lo..self.hi)
            .unwrap_or(&[])
            .iter()
            .map(|(_, r)| *r as usize)
    }
}

impl FieldIndex {
    /// The index of a segment: its `FIELD_INDEX` section, or for a segment written
    /// without one (format version 3) an index built from its metadata sections.
    pub fn load(reader: &SegmentReader) -> Result<FieldIndex> {
        if let Some(data) = reader.field_index()? {
            return Ok(FieldIndex::new(data, reader.rows()));
        }
        let mut data = FieldIndexData::new(&[]);
        reader.for_each_metadata(|row, m| {
            if let Some(m) = m {
                data.add(row as u32, &m);
            }
        })?;
        data.finish(reader.rows() as u32);
        Ok(FieldIndex::new(data, reader.rows()))
    }

    /// The index of `data` over `rows` rows, its dense bitmaps expanded. (The bitmaps
    /// live in the heap nodes of `data`'s maps, so moving `data` keeps their addresses.)
    fn new(data: FieldIndexData, rows: usize) -> FieldIndex {
        let mut dense = Dense::new();
        for f in data.fields.values() {
            let all = [&f.present, &f.nulls, &f.bools[0], &f.bools[1]];
            for m in all.into_iter().chain(f.strings.values()) {
                if m.len() as usize * 32 > rows {
                    dense.insert(key(m), RowSet::of_bitmap(rows, m));
                }
            }
        }
        let mut int_columns = std::collections::HashMap::new();
        for (path, f) in &data.fields {
            if f.lists || !f.floats.is_empty() || f.ints.is_empty() || data.is_unindexed(path) {
                continue;
            }
            let mut col = IntColumn {
                values: vec![0; rows],
                has: RowSet::empty(rows),
            };
            for &(v, r) in &f.ints {
                if let Some(slot) = col.values.get_mut(r as usize) {
                    *slot = v;
                    col.has.insert(r as usize);
                }
            }
            int_columns.insert(path.clone(), Arc::new(col));
        }
        FieldIndex {
            data,
            dense,
            int_columns,
        }
    }

    /// `f` as an [`IntRange`], when it is only range bounds on one path of integers.
    pub fn int_range(self: &Arc<Self>, f: &Filter) -> Option<IntRange> {
        let leaves: Vec<&Filter> = match f {
            Filter::And(fs) => fs.iter().collect(),
            leaf => vec![leaf],
        };
        let mut path = None;
        let mut cmps = Vec::new();
        for leaf in leaves {
            let Filter::Field { path: p, cmp } = leaf else {
                return None;
            };
            if !is_range(cmp) || path.is_some_and(|q: &String| q != p) {
                return None;
            }
            path = Some(p);
            cmps.push(cmp);
        }
        let path = path?;
        let column = self.int_columns.get(path)?.clone();
        let ints = &self.data.fields.get(path)?.ints;
        let (lo, hi) = interval_bounds(ints, |&i| MetaValue::Int(i), &cmps);
        let (min, max) = match (ints.get(lo), hi.checked_sub(1).and_then(|h| ints.get(h))) {
            (Some(a), Some(b)) if lo < hi => (a.0, b.0),
            _ => (1, 0), // empty
        };
        Some(IntRange {
            ix: self.clone(),
            column,
            path: path.clone(),
            lo,
            hi: hi.max(lo),
            min,
            max,
        })
    }

    /// The rows of `data` (of `rows` rows) whose metadata passes `f`, deleted rows
    /// included (the caller masks them); `fallback` answers leaves on unindexed paths.
    pub fn eval(
        data: &FieldIndexData,
        dense: &Dense,
        rows: usize,
        f: &Filter,
        fallback: &Fallback<'_>,
    ) -> Result<RowSet> {
        let ev = |f: &Filter| Self::eval(data, dense, rows, f, fallback);
        Ok(match f {
            Filter::All => RowSet::full(rows),
            Filter::And(fs) => {
                // Range bounds on one path (`{"n": {"$gte": a, "$lt": b}}`) take one
                // slice of the sorted column instead of two half-columns intersected.
                let mut ranges: Vec<(&str, Vec<&Cmp>)> = Vec::new();
                let mut acc = RowSet::full(rows);
                for f in fs {
                    match f {
                        Filter::Field { path, cmp }
                            if is_range(cmp)
                                && data.sorted
                                && scalar(data, path)
                                && !data.is_unindexed(path) =>
                        {
                            match ranges.iter_mut().find(|(p, _)| p == path) {
                                Some((_, cmps)) => cmps.push(cmp),
                                None => ranges.push((path, vec![cmp])),
                            }
                        }
                        other => acc = acc.and(&ev(other)?),
                    }
                }
                for (path, cmps) in ranges {
                    acc = acc.and(&interval(data, rows, path, &cmps));
                }
                acc
            }
            Filter::Or(fs) => {
                let mut acc = RowSet::empty(rows);
                for f in fs {
                    acc = acc.or(&ev(f)?);
                }
                acc
            }
            Filter::Not(f) => ev(f)?.not(),
            Filter::Field { path, .. } if data.is_unindexed(path) => fallback(f)?,
            Filter::Field { path, cmp } => compare(data, dense, rows, path, cmp),
        })
    }
}

/// Whether no row holds a list at `path` (each bound of a range could otherwise be met
/// by a different element).
fn scalar(data: &FieldIndexData, path: &str) -> bool {
    data.fields.get(path).is_none_or(|f| !f.lists)
}

/// The rows holding a number within every range bound of `cmps` (each a `$gt`, `$gte`,
/// `$lt` or `$lte`) at `path`: one slice of each sorted column.
fn interval(data: &FieldIndexData, rows: usize, path: &str, cmps: &[&Cmp]) -> RowSet {
    let mut s = RowSet::empty(rows);
    if let Some(f) = data.fields.get(path) {
        take_interval(&mut s, &f.ints, |&i| MetaValue::Int(i), cmps);
        take_interval(&mut s, &f.floats, |&v| MetaValue::Float(v), cmps);
    }
    s
}

fn compare(data: &FieldIndexData, dense: &Dense, rows: usize, path: &str, cmp: &Cmp) -> RowSet {
    let field = data.fields.get(path);
    let sorted = data.sorted;
    let set = |m: &RoaringBitmap| match dense.get(&key(m)) {
        Some(s) => s.clone(),
        None => RowSet::of_bitmap(rows, m),
    };
    let equal = |x: &MetaValue| -> RowSet {
        let Some(f) = field else {
            // An absent field equals only null.
            return if *x == MetaValue::Null {
                RowSet::full(rows)
            } else {
                RowSet::empty(rows)
            };
        };
        match x {
            MetaValue::Null => set(&f.nulls).or(&set(&f.present).not()),
            MetaValue::Bool(b) => set(&f.bools[*b as usize]),
            MetaValue::Str(s) => f.strings.get(s).map_or_else(|| RowSet::empty(rows), set),
            MetaValue::Int(_) | MetaValue::Float(_) => {
                numbers_where(rows, f, sorted, x, |o| o == std::cmp::Ordering::Equal)
            }
            _ => RowSet::empty(rows),
        }
    };
    let range = |x: &MetaValue, want: fn(std::cmp::Ordering) -> bool| match field {
        None => RowSet::empty(rows),
        Some(f) => numbers_where(rows, f, sorted, x, want),
    };
    use std::cmp::Ordering::{Greater, Less};
    match cmp {
        Cmp::Eq(x) | Cmp::Contains(x) => equal(x),
        Cmp::Ne(x) => equal(x).not(),
        Cmp::Gt(x) => range(x, |o| o == Greater),
        Cmp::Gte(x) => range(x, |o| o != Less),
        Cmp::Lt(x) => range(x, |o| o == Less),
        Cmp::Lte(x) => range(x, |o| o != Greater),
        Cmp::In(xs) => xs
            .iter()
            .fold(RowSet::empty(rows), |acc, x| acc.or(&equal(x))),
        Cmp::Nin(xs) => xs
            .iter()
            .fold(RowSet::empty(rows), |acc, x| acc.or(&equal(x)))
            .not(),
        Cmp::Exists(want) => {
            let present = field.map_or_else(|| RowSet::empty(rows), |f| set(&f.present));
            if *want {
                present
            } else {
                present.not()
            }
        }
    }
}

fn is_range(cmp: &Cmp) -> bool {
    matches!(cmp, Cmp::Gt(_) | Cmp::Gte(_) | Cmp::Lt(_) | Cmp::Lte(_))
}

/// The rows holding a number that relates to `x` as `want` says: in each sorted column,
/// a binary search for each end of the run equal to `x`, then the rows on the wanted
/// sides.
fn numbers_where(
    rows: usize,
    f: &FieldColumns,
    sorted: bool,
    x: &MetaValue,
    want: fn(std::cmp::Ordering) -> bool,
) -> RowSet {
    let mut s = RowSet::empty(rows);
    if sorted {
        take_where(&mut s, &f.ints, |&i| MetaValue::Int(i), x, want);
        take_where(&mut s, &f.floats, |&v| MetaValue::Float(v), x, want);
    } else {
        // A memtable's columns grow unsorted: test every value.
        let ord = |v: MetaValue| compare_numbers(&v, x).unwrap_or(std::cmp::Ordering::Less);
        f.ints
            .iter()
            .filter(|(i, _)| want(ord(MetaValue::Int(*i))))
            .for_each(|(_, r)| s.insert(*r as usize));
        f.floats
            .iter()
            .filter(|(v, _)| want(ord(MetaValue::Float(*v))))
            .for_each(|(_, r)| s.insert(*r as usize));
    }
    s
}

/// Adds to `s` the rows of `column` (sorted by value) whose value meets every bound.
fn take_interval<T>(
    s: &mut RowSet,
    column: &[(T, u32)],
    value: impl Fn(&T) -> MetaValue,
    cmps: &[&Cmp],
) {
    let (lo, hi) = interval_bounds(column, value, cmps);
    if let Some(part) = column.get(lo..hi) {
        part.iter().for_each(|(_, r)| s.insert(*r as usize));
    }
}

/// The slice `[lo, hi)` of `column` (sorted by value) whose values meet every bound
/// (`lo ≥ hi`: none).
fn interval_bounds<T>(
    column: &[(T, u32)],
    value: impl Fn(&T) -> MetaValue,
    cmps: &[&Cmp],
) -> (usize, usize) {
    use std::cmp::Ordering::{Greater, Less};
    let (mut lo, mut hi) = (0, column.len());
    for cmp in cmps {
        let (x, lower, inclusive) = match cmp {
            Cmp::Gt(x) => (x, true, false),
            Cmp::Gte(x) => (x, true, true),
            Cmp::Lt(x) => (x, false, false),
            Cmp::Lte(x) => (x, false, true),
            _ => continue,
        };
        let ord = |v: &T| compare_numbers(&value(v), x).unwrap_or(Less);
        // First value not below x (`$gte`, `$lt`) or above x (`$gt`, `$lte`).
        let at = if lower == inclusive {
            column.partition_point(|(v, _)| ord(v) == Less)
        } else {
            column.partition_point(|(v, _)| ord(v) != Greater)
        };
        if lower {
            lo = lo.max(at);
        } else {
            hi = hi.min(at);
        }
    }
    (lo, hi)
}

fn take_where<T>(
    s: &mut RowSet,
    column: &[(T, u32)],
    value: impl Fn(&T) -> MetaValue,
    x: &MetaValue,
    want: fn(std::cmp::Ordering) -> bool,
) {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let ord = |v: &T| compare_numbers(&value(v), x).unwrap_or(Less);
    // Values below x, then equal, then above.
    let lo = column.partition_point(|(v, _)| ord(v) == Less);
    let hi = column.partition_point(|(v, _)| ord(v) != Greater);
    let mut take = |part: &[(T, u32)]| part.iter().for_each(|(_, r)| s.insert(*r as usize));
    if want(Less) {
        take(column.get(..lo).unwrap_or(&[]));
    }
    if want(Equal) {
        take(column.get(lo..hi).unwrap_or(&[]));
    }
    if want(Greater) {
        take(column.get(hi..).unwrap_or(&[]));
    }
}
