//! A segment's metadata index, built in memory from its metadata sections the first
//! time a filter reaches the segment, and kept while the segment is live: per dotted
//! path, the rows holding each string or bool value, and the numbers sorted by value for
//! ranges (and numeric equality, which compares by value across integers and floats).
//! A filter then becomes an exact set of rows by set operations, without decoding any
//! metadata.

use std::collections::HashMap;

use strata_format::metadata::{MetaValue, Metadata};

use crate::error::{Error, Result};
use crate::filter::{compare_numbers, Cmp, Filter};
use strata_format::SegmentReader;

/// A set of segment rows, one bit per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSet {
    words: Vec<u64>,
    rows: usize,
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
        self.words.iter().enumerate().flat_map(|(i, &w)| {
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

    fn of_rows(rows: usize, list: &[u32]) -> RowSet {
        let mut s = RowSet::empty(rows);
        list.iter().for_each(|&r| s.insert(r as usize));
        s
    }
}

/// What one path holds across the segment's rows.
#[derive(Debug, Default)]
struct FieldRows {
    /// Rows with a value at the path (null included).
    present: Vec<u32>,
    /// Rows whose value is null.
    nulls: Vec<u32>,
    /// Rows holding each string (a list: each element).
    strings: HashMap<String, Vec<u32>>,
    /// Rows holding each bool.
    bools: [Vec<u32>; 2],
    /// Every integer held (a list: each element) with its row, sorted by value.
    ints: Vec<(i64, u32)>,
    /// Every float held with its row, sorted by value.
    floats: Vec<(f64, u32)>,
}

/// The metadata index of one segment.
#[derive(Debug)]
pub(crate) struct FieldIndex {
    rows: usize,
    fields: HashMap<String, FieldRows>,
}

impl FieldIndex {
    /// Reads every row's metadata of the segment (live or not) into an index.
    pub fn build(reader: &SegmentReader) -> Result<FieldIndex> {
        let rows = reader.rows();
        let mut fields: HashMap<String, FieldRows> = HashMap::new();
        let block_rows = strata_format::segment::PAYLOAD_BLOCK_ROWS;
        if reader.has_metadata() {
            for block in 0..rows.div_ceil(block_rows) {
                for (i, item) in reader.block_metadata(block)?.into_iter().enumerate() {
                    let Some(bytes) = item else { continue };
                    let m = Metadata::decode(&bytes, 0)
                        .map_err(|e| Error::from(e.at(reader.path())))?;
                    let row = (block * block_rows + i) as u32;
                    // Objects are present at their own path too (`$exists`, null).
                    for (path, v) in m.entries() {
                        let f = fields.entry(path).or_default();
                        f.present.push(row);
                        add_value(f, v, row);
                    }
                }
            }
        }
        for f in fields.values_mut() {
            f.ints.sort_unstable();
            f.floats
                .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            f.ints.shrink_to_fit();
            f.floats.shrink_to_fit();
            f.present.shrink_to_fit();
        }
        Ok(FieldIndex { rows, fields })
    }

    /// The rows whose metadata passes `f` (deleted rows included: the caller masks them).
    pub fn eval(&self, f: &Filter) -> RowSet {
        match f {
            Filter::All => RowSet::full(self.rows),
            Filter::And(fs) => fs
                .iter()
                .fold(RowSet::full(self.rows), |acc, f| acc.and(&self.eval(f))),
            Filter::Or(fs) => fs
                .iter()
                .fold(RowSet::empty(self.rows), |acc, f| acc.or(&self.eval(f))),
            Filter::Not(f) => self.eval(f).not(),
            Filter::Field { path, cmp } => self.compare(path, cmp),
        }
    }

    fn compare(&self, path: &str, cmp: &Cmp) -> RowSet {
        let rows = self.rows;
        let field = self.fields.get(path);
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
                MetaValue::Null => {
                    RowSet::of_rows(rows, &f.nulls).or(&RowSet::of_rows(rows, &f.present).not())
                }
                MetaValue::Bool(b) => RowSet::of_rows(rows, &f.bools[*b as usize]),
                MetaValue::Str(s) => f
                    .strings
                    .get(s)
                    .map_or_else(|| RowSet::empty(rows), |r| RowSet::of_rows(rows, r)),
                MetaValue::Int(_) | MetaValue::Float(_) => {
                    numbers_where(rows, f, x, |o| o == std::cmp::Ordering::Equal)
                }
                _ => RowSet::empty(rows),
            }
        };
        let range = |x: &MetaValue, want: fn(std::cmp::Ordering) -> bool| match field {
            None => RowSet::empty(rows),
            Some(f) => numbers_where(rows, f, x, want),
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
                let present = field.map_or_else(
                    || RowSet::empty(rows),
                    |f| RowSet::of_rows(rows, &f.present),
                );
                if *want {
                    present
                } else {
                    present.not()
                }
            }
        }
    }
}

fn add_value(f: &mut FieldRows, v: &MetaValue, row: u32) {
    match v {
        MetaValue::Null => f.nulls.push(row),
        MetaValue::Bool(b) => f.bools[*b as usize].push(row),
        MetaValue::Str(s) => f.strings.entry(s.clone()).or_default().push(row),
        MetaValue::Int(i) => f.ints.push((*i, row)),
        MetaValue::Float(x) => f.floats.push((*x, row)),
        MetaValue::List(items) => items.iter().for_each(|x| add_value(f, x, row)),
        MetaValue::Object(_) => {}
    }
}

/// The rows holding a number that relates to `x` as `want` says: in each sorted column,
/// a binary search for each end of the run equal to `x`, then the rows on the wanted
/// sides.
fn numbers_where(
    rows: usize,
    f: &FieldRows,
    x: &MetaValue,
    want: fn(std::cmp::Ordering) -> bool,
) -> RowSet {
    let mut s = RowSet::empty(rows);
    take_where(&mut s, &f.ints, |&i| MetaValue::Int(i), x, want);
    take_where(&mut s, &f.floats, |&v| MetaValue::Float(v), x, want);
    s
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
