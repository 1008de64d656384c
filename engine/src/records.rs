//! Record operations over a snapshot by filter: counting, listing the matching ids, and
//! paging through records in id order.

use strata_format::metadata::Metadata;

use crate::error::Result;
use crate::field_index::{FieldIndex, RowSet};
use crate::filter::Filter;
use crate::live_segment::LiveSegment;
use crate::lookup;
use crate::record::Record;
use crate::version::Version;

/// One page of [`Db::scan`](crate::Db::scan): records in ascending id order, and the
/// cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPage {
    /// The records, ids ascending.
    pub records: Vec<Record>,
    /// Pass as `after` for the next page; `None` when this page ended the scan.
    pub next: Option<u64>,
}

/// The live rows of `s` that pass `filter`, from the segment's metadata index (leaves
/// on unindexed paths by reading every row's metadata).
pub(crate) fn passing_rows(s: &LiveSegment, filter: &Filter) -> Result<RowSet> {
    let ix = s.field_index()?;
    let rows = s.reader.rows();
    let mut pass = FieldIndex::eval(&ix.data, &ix.dense, rows, filter, &|leaf| {
        leaf_rows(s, leaf)
    })?;
    pass.remove_all(s.deleted.words());
    Ok(pass)
}

/// The rows of `s` whose metadata passes `leaf`, read row by row.
fn leaf_rows(s: &LiveSegment, leaf: &Filter) -> Result<RowSet> {
    let mut set = RowSet::empty(s.reader.rows());
    let empty = Metadata::new();
    s.reader.for_each_metadata(|row, m| {
        if leaf.matches(m.as_ref().unwrap_or(&empty)) {
            set.insert(row);
        }
    })?;
    Ok(set)
}

/// The live rows of `s` from the `start`-th smallest id on that pass `filter`, in id
/// order, handed to `keep` until it returns false.
fn segment_rows(
    s: &LiveSegment,
    start: usize,
    filter: Option<&Filter>,
    mut keep: impl FnMut(u64) -> bool,
) -> Result<()> {
    let ids = s.reader.ids();
    let pass = match filter {
        Some(f) => Some(passing_rows(s, f)?),
        None => None,
    };
    for rank in start..s.reader.rows() {
        let Some(row) = s.reader.row_of_rank(rank) else {
            return Ok(());
        };
        let ok = match &pass {
            Some(p) => p.contains(row),
            None => !s.deleted.contains(row),
        };
        if ok {
            let Some(&id) = ids.get(row) else {
                return Ok(());
            };
            if !keep(id) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Every live id of `v` passing `filter` (every live id for `None`), unordered.
pub(crate) fn matching_ids(v: &Version, filter: Option<&Filter>) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for m in &v.memtables {
        out.extend(m.visible_passing(v.seq, filter)?.iter().map(|r| r.id));
    }
    for s in &v.segments {
        segment_rows(s, 0, filter, |id| {
            out.push(id);
            true
        })?;
    }
    Ok(out)
}

/// Live records of `v` passing `filter`.
pub(crate) fn count(v: &Version, filter: Option<&Filter>) -> Result<u64> {
    match filter {
        None => Ok(lookup::live_rows(v)),
        Some(_) => Ok(matching_ids(v, filter)?.len() as u64),
    }
}

/// Up to `limit` live records of `v` passing `filter` with ids above `after`, ids
/// ascending.
pub(crate) fn scan(
    v: &Version,
    filter: Option<&Filter>,
    after: Option<u64>,
    limit: usize,
) -> Result<ScanPage> {
    let above = |id: u64| after.is_none_or(|a| id > a);
    // Each source yields its smallest passing ids; live rows of different sources are
    // different ids, so the page is the smallest `limit + 1` of their union.
    let want = limit.saturating_add(1);
    let mut ids = Vec::new();
    for m in &v.memtables {
        let mut mine: Vec<u64> = m
            .visible_passing(v.seq, filter)?
            .iter()
            .map(|r| r.id)
            .filter(|&id| above(id))
            .collect();
        mine.sort_unstable();
        mine.truncate(want);
        ids.extend(mine);
    }
    for s in &v.segments {
        let start = match after {
            None => 0,
            Some(a) => s.reader.rank_after(a),
        };
        let mut taken = 0;
        segment_rows(s, start, filter, |id| {
            ids.push(id);
            taken += 1;
            taken < want
        })?;
    }
    ids.sort_unstable();
    ids.dedup();
    let more = ids.len() > limit;
    ids.truncate(limit);
    let mut records = Vec::with_capacity(ids.len());
    for &id in &ids {
        if let Some(r) = lookup::record(v, id)? {
            records.push(r);
        }
    }
    let next = if more { ids.last().copied() } else { None };
    Ok(ScanPage { records, next })
}

/// What the live records hold at one metadata path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSummary {
    /// Live records with a value there.
    pub rows: u64,
    /// The kinds of value seen: `null`, `bool`, `int`, `float`, `string`, `list`.
    pub kinds: std::collections::BTreeSet<&'static str>,
    /// Bytes of the segments' metadata indexes for this path (deleted rows included;
    /// 0 when unindexed or only in memtables).
    pub index_bytes: u64,
}

fn kind(v: &strata_format::metadata::MetaValue) -> &'static str {
    use strata_format::metadata::MetaValue as V;
    match v {
        V::Null => "null",
        V::Bool(_) => "bool",
        V::Int(_) => "int",
        V::Float(_) => "float",
        V::Str(_) => "string",
        V::List(_) => "list",
        V::Object(_) => "object",
    }
}

/// Every metadata path of the live records of `v` with its summary (reads all
/// metadata).
pub(crate) fn fields(v: &Version) -> Result<std::collections::BTreeMap<String, FieldSummary>> {
    let mut out: std::collections::BTreeMap<String, FieldSummary> = Default::default();
    let mut add = |m: &Metadata| {
        for (path, value) in m.leaves() {
            let f = out.entry(path).or_default();
            f.rows += 1;
            f.kinds.insert(kind(value));
        }
    };
    for m in &v.memtables {
        for row in m.rows() {
            if let (true, Some(md)) = (row.visible_at(v.seq), row.metadata.as_deref()) {
                add(md);
            }
        }
    }
    for s in v.segments.iter().filter(|s| s.reader.has_metadata()) {
        s.reader.for_each_metadata(|row, m| {
            if let (false, Some(m)) = (s.deleted.contains(row), m) {
                add(&m);
            }
        })?;
    }
    for s in &v.segments {
        if s.reader.has_metadata() {
            for (path, bytes) in s.field_index()?.data.field_bytes() {
                if let Some(f) = out.get_mut(&path) {
                    f.index_bytes += bytes as u64;
                }
            }
        }
    }
    Ok(out)
}
