//! The filter language over record metadata, shaped like Chroma's and mem0's `where`
//! (and LlamaIndex's metadata filters map onto it one to one):
//!
//! * `{"kind": "fact", "user": 42}`: fields compared for equality, implicitly ANDed;
//!   dotted paths address nested objects (`{"author.name": "x"}`);
//! * `{"ts": {"$gte": 1700000000, "$lt": 1800000000}}`: operators `$eq $ne $gt $gte $lt
//!   $lte $in $nin $exists $contains` (several on one field are ANDed);
//! * `{"$and": [...]}`, `{"$or": [...]}`, `{"$not": {...}}`; `{}` matches every record.
//!
//! Semantics: on a list field (tags) a comparison holds when it holds for some element;
//! `$ne` and `$nin` are the negations of `$eq` and `$in`, so they hold for a record that
//! lacks the field; `{"f": null}` holds for a null or missing `f`; `$contains` holds when
//! the list holds the value (on a scalar field: when it equals it). Numbers compare by
//! value whatever their type (`1 == 1.0`); a range never holds on a string or a bool.
//! Parsing refuses an unknown operator, a malformed operand or a range with a
//! non-number bound with [`InvalidArgument::Filter`] naming the path and what was
//! expected. The full description, with examples: `docs/filters.md`.

use std::cmp::Ordering;

use crate::error::InvalidArgument;
use strata_format::metadata::{join_path as join, json_number as number, MetaValue, Metadata};

/// Deepest nesting of `$and`, `$or` and `$not`.
pub const MAX_FILTER_DEPTH: usize = 32;

/// A comparison on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmp {
    /// `$eq`: equals (a list: some element equals).
    Eq(MetaValue),
    /// `$ne`: not `$eq`.
    Ne(MetaValue),
    /// `$gt`: greater than a number.
    Gt(MetaValue),
    /// `$gte`: at least a number.
    Gte(MetaValue),
    /// `$lt`: less than a number.
    Lt(MetaValue),
    /// `$lte`: at most a number.
    Lte(MetaValue),
    /// `$in`: equals one of the values.
    In(Vec<MetaValue>),
    /// `$nin`: not `$in`.
    Nin(Vec<MetaValue>),
    /// `$exists`: the field is present (`true`) or absent (`false`).
    Exists(bool),
    /// `$contains`: the list holds the value (a scalar field: equals it).
    Contains(MetaValue),
}

/// A filter over record metadata; build it with the constructors or parse it from JSON
/// (the language: `docs/filters.md`).
///
/// ```
/// use strata::{Filter, Metadata};
///
/// let recent_facts_of_user = Filter::eq("user", 42i64)
///     .and(Filter::eq("kind", "fact"))
///     .and(Filter::gte("ts", 1_764_000_000i64))
///     .and(Filter::contains("tags", "rust").or(!Filter::exists("archived")));
/// // The same filter from JSON:
/// let parsed = Filter::from_json_str(
///     r#"{"user": 42, "kind": "fact", "ts": {"$gte": 1764000000},
///         "$or": [{"tags": {"$contains": "rust"}}, {"$not": {"archived": {"$exists": true}}}]}"#,
/// )?;
/// let m = Metadata::from_json_str(
///     r#"{"user": 42, "kind": "fact", "ts": 1764100000, "tags": ["rust"]}"#,
/// )?;
/// assert!(recent_facts_of_user.matches(&m) && parsed.matches(&m));
/// assert!(Filter::from_json_str(r#"{"ts": {"$gt": "yesterday"}}"#).is_err());
/// # Ok::<(), strata::InvalidArgument>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every record (`{}`).
    All,
    /// Every filter holds.
    And(Vec<Filter>),
    /// Some filter holds.
    Or(Vec<Filter>),
    /// The filter does not hold.
    Not(Box<Filter>),
    /// A comparison on the field at a dotted path.
    Field {
        /// The dotted path.
        path: String,
        /// The comparison.
        cmp: Cmp,
    },
}

fn bad(path: &str, expected: &str) -> InvalidArgument {
    InvalidArgument::Filter {
        path: path.to_string(),
        expected: expected.to_string(),
    }
}

impl Filter {
    fn field(path: impl Into<String>, cmp: Cmp) -> Filter {
        Filter::Field {
            path: path.into(),
            cmp,
        }
    }

    /// `path == value`.
    pub fn eq(path: impl Into<String>, value: impl Into<MetaValue>) -> Filter {
        Self::field(path, Cmp::Eq(value.into()))
    }

    /// `path != value`.
    pub fn ne(path: impl Into<String>, value: impl Into<MetaValue>) -> Filter {
        Self::field(path, Cmp::Ne(value.into()))
    }

    /// `path > value` (a number).
    pub fn gt(path: impl Into<String>, value: impl Into<MetaValue>) -> Filter {
        Self::field(path, Cmp::Gt(value.into()))
    }

    /// `path >= value` (a number).
    pub fn gte(path: impl Into<String>, value: impl Into<MetaValue>) -> Filter {
        Self::field(path, Cmp::Gte(value.into()))
    }

    /// `path < value` (a number).
    pub fn lt(path: impl Into<String>, value: impl Into<MetaValue>) -> Filter {
        Self::field(path, Cmp::Lt(value.into()))
    }

    /// `path <= value` (a number).
    pub fn lte(path: impl Into<String>, value: impl Into<MetaValue>) -> Filter {
        Self::field(path, Cmp::Lte(value.into()))
    }

    /// `path` equals one of `values`.
    pub fn is_in<V: Into<MetaValue>>(
        path: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Filter {
        Self::field(path, Cmp::In(values.into_iter().map(Into::into).collect()))
    }

    /// `path` equals none of `values`.
    pub fn not_in<V: Into<MetaValue>>(
        path: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Filter {
        Self::field(path, Cmp::Nin(values.into_iter().map(Into::into).collect()))
    }

    /// The field is present.
    pub fn exists(path: impl Into<String>) -> Filter {
        Self::field(path, Cmp::Exists(true))
    }

    /// The field is absent.
    pub fn missing(path: impl Into<String>) -> Filter {
        Self::field(path, Cmp::Exists(false))
    }

    /// The list at `path` holds `value`.
    pub fn contains(path: impl Into<String>, value: impl Into<MetaValue>) -> Filter {
        Self::field(path, Cmp::Contains(value.into()))
    }

    /// This filter and `other`.
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut fs) => {
                fs.push(other);
                Filter::And(fs)
            }
            f => Filter::And(vec![f, other]),
        }
    }

    /// This filter or `other`.
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut fs) => {
                fs.push(other);
                Filter::Or(fs)
            }
            f => Filter::Or(vec![f, other]),
        }
    }

    /// Parses a filter from JSON text.
    pub fn from_json_str(text: &str) -> Result<Filter, InvalidArgument> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad("", &format!("a JSON object ({e})")))?;
        Filter::from_json(&v)
    }

    /// Parses a filter from a JSON value (see the module documentation).
    pub fn from_json(v: &serde_json::Value) -> Result<Filter, InvalidArgument> {
        parse_object(v, "", 0)
    }

    /// The filter as JSON, in a form [`Filter::from_json`] reads back to an equal filter.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Value as J};
        match self {
            Filter::All => json!({}),
            Filter::And(fs) => json!({"$and": fs.iter().map(Filter::to_json).collect::<Vec<_>>()}),
            Filter::Or(fs) => json!({"$or": fs.iter().map(Filter::to_json).collect::<Vec<_>>()}),
            Filter::Not(f) => json!({"$not": f.to_json()}),
            Filter::Field { path, cmp } => {
                let list = |vs: &[MetaValue]| J::Array(vs.iter().map(MetaValue::to_json).collect());
                let (op, operand) = match cmp {
                    Cmp::Eq(v) => ("$eq", v.to_json()),
                    Cmp::Ne(v) => ("$ne", v.to_json()),
                    Cmp::Gt(v) => ("$gt", v.to_json()),
                    Cmp::Gte(v) => ("$gte", v.to_json()),
                    Cmp::Lt(v) => ("$lt", v.to_json()),
                    Cmp::Lte(v) => ("$lte", v.to_json()),
                    Cmp::In(vs) => ("$in", list(vs)),
                    Cmp::Nin(vs) => ("$nin", list(vs)),
                    Cmp::Exists(b) => ("$exists", J::Bool(*b)),
                    Cmp::Contains(v) => ("$contains", v.to_json()),
                };
                let mut ops = serde_json::Map::new();
                ops.insert(op.to_string(), operand);
                let mut m = serde_json::Map::new();
                m.insert(path.clone(), J::Object(ops));
                J::Object(m)
            }
        }
    }

    /// Checks a filter built in code as parsing would: paths, operand types, depth.
    pub fn validate(&self) -> Result<(), InvalidArgument> {
        self.validate_at(0)
    }

    fn validate_at(&self, depth: usize) -> Result<(), InvalidArgument> {
        if depth > MAX_FILTER_DEPTH {
            return Err(bad(
                "",
                &format!("at most {MAX_FILTER_DEPTH} nested $and/$or/$not"),
            ));
        }
        match self {
            Filter::All => Ok(()),
            Filter::And(fs) | Filter::Or(fs) => {
                if fs.is_empty() {
                    return Err(bad("", "a non-empty list of filters in $and/$or"));
                }
                fs.iter().try_for_each(|f| f.validate_at(depth + 1))
            }
            Filter::Not(f) => f.validate_at(depth + 1),
            Filter::Field { path, cmp } => {
                check_path(path)?;
                let at = |op: &str| join(path, op);
                let scalar = |v: &MetaValue, op: &str, null_ok: bool| match v {
                    MetaValue::Null if null_ok => Ok(()),
                    MetaValue::Bool(_) | MetaValue::Int(_) | MetaValue::Str(_) => Ok(()),
                    MetaValue::Float(f) if f.is_finite() => Ok(()),
                    _ => Err(bad(&at(op), "a string, number or bool")),
                };
                let bound = |v: &MetaValue, op: &str| match v {
                    MetaValue::Int(_) => Ok(()),
                    MetaValue::Float(f) if f.is_finite() => Ok(()),
                    _ => Err(bad(&at(op), "a number (ranges compare numbers)")),
                };
                match cmp {
                    Cmp::Eq(v) => scalar(v, "$eq", true),
                    Cmp::Ne(v) => scalar(v, "$ne", true),
                    Cmp::Gt(v) => bound(v, "$gt"),
                    Cmp::Gte(v) => bound(v, "$gte"),
                    Cmp::Lt(v) => bound(v, "$lt"),
                    Cmp::Lte(v) => bound(v, "$lte"),
                    Cmp::In(vs) => vs.iter().try_for_each(|v| scalar(v, "$in", false)),
                    Cmp::Nin(vs) => vs.iter().try_for_each(|v| scalar(v, "$nin", false)),
                    Cmp::Exists(_) => Ok(()),
                    Cmp::Contains(v) => scalar(v, "$contains", false),
                }
            }
        }
    }

    /// Whether the record with metadata `m` passes.
    pub fn matches(&self, m: &Metadata) -> bool {
        match self {
            Filter::All => true,
            Filter::And(fs) => fs.iter().all(|f| f.matches(m)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(m)),
            Filter::Not(f) => !f.matches(m),
            Filter::Field { path, cmp } => cmp.holds(m.get(path)),
        }
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;

    fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }
}

impl Cmp {
    /// Whether the comparison holds for `value` (`None`: the field is absent).
    pub fn holds(&self, value: Option<&MetaValue>) -> bool {
        match self {
            Cmp::Eq(x) => equals(value, x),
            Cmp::Ne(x) => !equals(value, x),
            Cmp::Gt(x) => any_number(value, |o| o == Ordering::Greater, x),
            Cmp::Gte(x) => any_number(value, |o| o != Ordering::Less, x),
            Cmp::Lt(x) => any_number(value, |o| o == Ordering::Less, x),
            Cmp::Lte(x) => any_number(value, |o| o != Ordering::Greater, x),
            Cmp::In(xs) => xs.iter().any(|x| equals(value, x)),
            Cmp::Nin(xs) => !xs.iter().any(|x| equals(value, x)),
            Cmp::Exists(want) => value.is_some() == *want,
            Cmp::Contains(x) => equals(value, x),
        }
    }
}

/// `value == x`; a list when some element equals; a missing field equals only null.
fn equals(value: Option<&MetaValue>, x: &MetaValue) -> bool {
    match value {
        None => *x == MetaValue::Null,
        Some(MetaValue::List(items)) => items.iter().any(|v| scalar_eq(v, x)),
        Some(v) => scalar_eq(v, x),
    }
}

fn scalar_eq(a: &MetaValue, b: &MetaValue) -> bool {
    match (a, b) {
        (MetaValue::Null, MetaValue::Null) => true,
        (MetaValue::Bool(x), MetaValue::Bool(y)) => x == y,
        (MetaValue::Str(x), MetaValue::Str(y)) => x == y,
        _ => compare_numbers(a, b) == Some(Ordering::Equal),
    }
}

/// Whether some number at `value` (itself, or an element of a list) relates to `x` as
/// `want` says.
fn any_number(value: Option<&MetaValue>, want: impl Fn(Ordering) -> bool, x: &MetaValue) -> bool {
    let one = |v: &MetaValue| compare_numbers(v, x).is_some_and(&want);
    match value {
        None => false,
        Some(MetaValue::List(items)) => items.iter().any(one),
        Some(v) => one(v),
    }
}

/// The order of two numbers by value (exact between `i64` and `f64`); `None` unless both
/// are numbers.
pub(crate) fn compare_numbers(a: &MetaValue, b: &MetaValue) -> Option<Ordering> {
    match (a, b) {
        (MetaValue::Int(x), MetaValue::Int(y)) => Some(x.cmp(y)),
        (MetaValue::Float(x), MetaValue::Float(y)) => x.partial_cmp(y),
        (MetaValue::Int(i), MetaValue::Float(f)) => int_float(*i, *f),
        (MetaValue::Float(f), MetaValue::Int(i)) => int_float(*i, *f).map(Ordering::reverse),
        _ => None,
    }
}

/// `i` against `f`, exactly (no rounding of `i` to `f64`).
fn int_float(i: i64, f: f64) -> Option<Ordering> {
    // 2^63: every f64 at or above it exceeds every i64, every one below -2^63 is below.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    // In range and integral: exact.
    let ti = t as i64;
    Some(match i.cmp(&ti) {
        Ordering::Equal if f > t => Ordering::Less,
        Ordering::Equal if f < t => Ordering::Greater,
        o => o,
    })
}

fn check_path(path: &str) -> Result<(), InvalidArgument> {
    if path.is_empty() || path.split('.').any(|p| p.is_empty() || p.starts_with('$')) {
        return Err(bad(
            path,
            "a field path: names separated by '.', none empty or starting with '$'",
        ));
    }
    Ok(())
}

/// A filter object at `at` (a JSON object: fields and `$and`/`$or`/`$not`, ANDed).
fn parse_object(v: &serde_json::Value, at: &str, depth: usize) -> Result<Filter, InvalidArgument> {
    if depth > MAX_FILTER_DEPTH {
        return Err(bad(
            at,
            &format!("at most {MAX_FILTER_DEPTH} nested $and/$or/$not"),
        ));
    }
    let serde_json::Value::Object(map) = v else {
        return Err(bad(at, "a JSON object"));
    };
    let mut parts = Vec::with_capacity(map.len());
    for (k, v) in map {
        let here = join(at, k);
        parts.push(match k.as_str() {
            "$and" | "$or" => {
                let serde_json::Value::Array(items) = v else {
                    return Err(bad(&here, "an array of filters"));
                };
                if items.is_empty() {
                    return Err(bad(&here, "a non-empty array of filters"));
                }
                let fs = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| parse_object(f, &format!("{here}[{i}]"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                if k == "$and" {
                    Filter::And(fs)
                } else {
                    Filter::Or(fs)
                }
            }
            "$not" => Filter::Not(Box::new(parse_object(v, &here, depth + 1)?)),
            op if op.starts_with('$') => {
                return Err(bad(
                    &here,
                    "a field name or $and, $or, $not (field operators go inside a field)",
                ))
            }
            field => parse_field(field, v, &here)?,
        });
    }
    Ok(match parts.len() {
        0 => Filter::All,
        1 => parts.pop().unwrap_or(Filter::All),
        _ => Filter::And(parts),
    })
}

/// The comparisons on `path`: a scalar (equality) or an object of operators.
fn parse_field(path: &str, v: &serde_json::Value, at: &str) -> Result<Filter, InvalidArgument> {
    use serde_json::Value as J;
    check_path(path)?;
    let cmps = match v {
        J::Object(ops) => {
            if ops.is_empty() {
                return Err(bad(at, "a value or an object of operators ($eq, $gt, ...)"));
            }
            ops.iter()
                .map(|(op, operand)| parse_cmp(op, operand, &join(at, op)))
                .collect::<Result<Vec<_>, _>>()?
        }
        J::Array(_) => {
            return Err(bad(
                at,
                "a value or an object of operators (for lists use $in or $contains)",
            ))
        }
        scalar => vec![Cmp::Eq(scalar_of(scalar, at, true)?)],
    };
    let mut fs: Vec<Filter> = cmps
        .into_iter()
        .map(|cmp| Filter::Field {
            path: path.to_string(),
            cmp,
        })
        .collect();
    Ok(if fs.len() == 1 {
        fs.pop().unwrap_or(Filter::All)
    } else {
        Filter::And(fs)
    })
}

fn scalar_of(v: &serde_json::Value, at: &str, null_ok: bool) -> Result<MetaValue, InvalidArgument> {
    use serde_json::Value as J;
    match v {
        J::Null if null_ok => Ok(MetaValue::Null),
        J::Bool(b) => Ok(MetaValue::Bool(*b)),
        J::Number(n) => number(n).ok_or_else(|| bad(at, "a finite number")),
        J::String(s) => Ok(MetaValue::Str(s.clone())),
        _ => Err(bad(
            at,
            if null_ok {
                "a string, number, bool or null"
            } else {
                "a string, number or bool"
            },
        )),
    }
}

fn parse_cmp(op: &str, v: &serde_json::Value, at: &str) -> Result<Cmp, InvalidArgument> {
    use serde_json::Value as J;
    let bound = |v: &J| match v {
        J::Number(n) => number(n).ok_or_else(|| bad(at, "a finite number")),
        _ => Err(bad(at, "a number (ranges compare numbers)")),
    };
    let list = |v: &J| match v {
        J::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| scalar_of(x, &format!("{at}[{i}]"), false))
            .collect::<Result<Vec<_>, _>>(),
        _ => Err(bad(at, "an array of strings, numbers or bools")),
    };
    Ok(match op {
        "$eq" => Cmp::Eq(scalar_of(v, at, true)?),
        "$ne" => Cmp::Ne(scalar_of(v, at, true)?),
        "$gt" => Cmp::Gt(bound(v)?),
        "$gte" => Cmp::Gte(bound(v)?),
        "$lt" => Cmp::Lt(bound(v)?),
        "$lte" => Cmp::Lte(bound(v)?),
        "$in" => Cmp::In(list(v)?),
        "$nin" => Cmp::Nin(list(v)?),
        "$exists" => match v {
            J::Bool(b) => Cmp::Exists(*b),
            _ => return Err(bad(at, "true or false")),
        },
        "$contains" => Cmp::Contains(scalar_of(v, at, false)?),
        _ => {
            return Err(bad(
                at,
                "one of $eq $ne $gt $gte $lt $lte $in $nin $exists $contains",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(text: &str) -> Metadata {
        Metadata::from_json_str(text).unwrap()
    }

    fn f(text: &str) -> Filter {
        Filter::from_json_str(text).unwrap()
    }

    #[test]
    fn matches_like_the_documented_semantics() {
        let m = meta(
            r#"{"user": 42, "kind": "fact", "score": 0.5, "ok": true, "none": null,
                "tags": ["rust", "db", 7], "author": {"name": "ann", "age": 31},
                "big": 9007199254740993}"#,
        );
        let yes = [
            "{}",
            r#"{"user": 42, "kind": "fact"}"#,
            r#"{"user": 42.0}"#,
            r#"{"author.name": "ann"}"#,
            r#"{"author.age": {"$gte": 31, "$lt": 32}}"#,
            r#"{"score": {"$gt": 0.25}}"#,
            r#"{"tags": "rust"}"#,
            r#"{"tags": {"$contains": "db"}}"#,
            r#"{"tags": {"$gt": 6}}"#,
            r#"{"kind": {"$in": ["note", "fact"]}}"#,
            r#"{"kind": {"$nin": ["note"]}}"#,
            r#"{"missing": {"$ne": 1}}"#,
            r#"{"missing": {"$nin": [1]}}"#,
            r#"{"missing": null}"#,
            r#"{"none": null}"#,
            r#"{"none": {"$exists": true}}"#,
            r#"{"missing": {"$exists": false}}"#,
            r#"{"$or": [{"user": 1}, {"ok": true}]}"#,
            r#"{"$not": {"user": 1}}"#,
            r#"{"$and": [{"user": {"$gt": 41}}, {"$not": {"kind": "note"}}]}"#,
            // Exact between i64 and f64: 2^53 + 1 is above the float 2^53.
            r#"{"big": {"$gt": 9007199254740992.0}}"#,
        ];
        for t in yes {
            assert!(f(t).matches(&m), "{t} should hold");
            assert!(!(!f(t)).matches(&m), "not {t} should fail");
        }
        let no = [
            r#"{"user": 43}"#,
            r#"{"user": 42, "kind": "note"}"#,
            r#"{"kind": {"$gt": 1}}"#,
            r#"{"ok": {"$lt": 2}}"#,
            r#"{"tags": "go"}"#,
            r#"{"missing": 1}"#,
            r#"{"missing": {"$gt": 0}}"#,
            r#"{"user": null}"#,
            r#"{"user": {"$exists": false}}"#,
            r#"{"author": "ann"}"#,
            r#"{"big": {"$lte": 9007199254740992.0}}"#,
        ];
        for t in no {
            assert!(!f(t).matches(&m), "{t} should fail");
        }
    }

    #[test]
    fn refuses_bad_filters_naming_the_path() {
        for (text, path) in [
            ("[1]", ""),
            (r#"{"$foo": 1}"#, "$foo"),
            (r#"{"a": {"$gt": "x"}}"#, "a.$gt"),
            (r#"{"a": {"$in": 3}}"#, "a.$in"),
            (r#"{"a": {"$in": [1, [2]]}}"#, "a.$in[1]"),
            (r#"{"a": {"$exists": 1}}"#, "a.$exists"),
            (r#"{"a": {"$regex": "x"}}"#, "a.$regex"),
            (r#"{"a": {}}"#, "a"),
            (r#"{"a": [1, 2]}"#, "a"),
            (r#"{"a": {"b": 1}}"#, "a.b"),
            (r#"{"$and": []}"#, "$and"),
            (r#"{"$or": [{"a": 1}, 2]}"#, "$or[1]"),
            (r#"{"$not": [1]}"#, "$not"),
            (r#"{"a..b": 1}"#, "a..b"),
            (r#"{"a": {"$contains": null}}"#, "a.$contains"),
        ] {
            match Filter::from_json_str(text) {
                Err(InvalidArgument::Filter { path: p, expected }) => {
                    assert_eq!(p, path, "{text}: expected {expected}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let deep = format!("{}{{}}{}", r#"{"$not": "#.repeat(40), "}".repeat(40));
        assert!(Filter::from_json_str(&deep).is_err());
        assert!(Filter::gt("a", "x").validate().is_err());
        assert!(Filter::And(vec![]).validate().is_err());
        assert!(Filter::eq("a.$b", 1).validate().is_err());
        Filter::gte("ts", 5i64)
            .and(Filter::is_in("k", ["a", "b"]))
            .validate()
            .unwrap();
    }

    #[test]
    fn builder_and_json_agree() {
        let built = Filter::eq("kind", "fact")
            .and(Filter::gte("ts", 1_700_000_000i64))
            .and(Filter::contains("tags", "rust").or(!Filter::exists("archived")));
        let parsed = f(r#"{"$and": [{"kind": "fact"}, {"ts": {"$gte": 1700000000}},
            {"$or": [{"tags": {"$contains": "rust"}}, {"$not": {"archived": {"$exists": true}}}]}]}"#);
        assert_eq!(built, parsed);
        assert_eq!(Filter::from_json(&built.to_json()).unwrap(), built);
    }

    mod model {
        use proptest::prelude::*;

        use super::super::*;

        const PATHS: [&str; 4] = ["a", "b", "o.x", "tags"];

        fn scalar() -> impl Strategy<Value = MetaValue> {
            prop_oneof![
                (-3i64..4).prop_map(MetaValue::Int),
                (-3i32..4).prop_map(|x| MetaValue::Float(x as f64 / 2.0)),
                prop::sample::select(vec!["p", "q"]).prop_map(MetaValue::from),
                any::<bool>().prop_map(MetaValue::Bool),
            ]
        }

        fn number() -> impl Strategy<Value = MetaValue> {
            prop_oneof![
                (-3i64..4).prop_map(MetaValue::Int),
                (-3i32..4).prop_map(|x| MetaValue::Float(x as f64 / 2.0)),
            ]
        }

        fn cmp() -> impl Strategy<Value = Cmp> {
            prop_oneof![
                prop_oneof![scalar(), Just(MetaValue::Null)].prop_map(Cmp::Eq),
                scalar().prop_map(Cmp::Ne),
                number().prop_map(Cmp::Gt),
                number().prop_map(Cmp::Gte),
                number().prop_map(Cmp::Lt),
                number().prop_map(Cmp::Lte),
                prop::collection::vec(scalar(), 0..3).prop_map(Cmp::In),
                prop::collection::vec(scalar(), 0..3).prop_map(Cmp::Nin),
                any::<bool>().prop_map(Cmp::Exists),
                scalar().prop_map(Cmp::Contains),
            ]
        }

        fn filter() -> impl Strategy<Value = Filter> {
            let leaf = prop_oneof![
                Just(Filter::All),
                (prop::sample::select(PATHS.to_vec()), cmp()).prop_map(|(p, cmp)| Filter::Field {
                    path: p.to_string(),
                    cmp
                }),
            ];
            leaf.prop_recursive(4, 24, 3, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
                    prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::Or),
                    inner.prop_map(|f| !f),
                ]
            })
        }

        fn metadata() -> impl Strategy<Value = Metadata> {
            (
                prop::option::of(scalar()),
                prop::option::of(prop_oneof![scalar(), Just(MetaValue::Null)]),
                prop::option::of(number()),
                prop::option::of(prop::collection::vec(
                    prop_oneof![
                        (-3i64..4).prop_map(MetaValue::Int),
                        Just(MetaValue::from("p"))
                    ],
                    0..3,
                )),
            )
                .prop_map(|(a, b, x, tags)| {
                    let mut m = Metadata::new();
                    if let Some(a) = a {
                        m.insert("a", a).unwrap();
                    }
                    if let Some(b) = b {
                        m.insert("b", b).unwrap();
                    }
                    if let Some(x) = x {
                        let o = std::collections::BTreeMap::from([("x".to_string(), x)]);
                        m.insert("o", MetaValue::Object(o)).unwrap();
                    }
                    if let Some(t) = tags {
                        m.insert("tags", MetaValue::List(t)).unwrap();
                    }
                    m
                })
        }

        /// The semantics spelled out once more, over the JSON forms: the record's value
        /// at the path, and the comparison on it.
        fn reference(f: &Filter, m: &serde_json::Value) -> bool {
            use serde_json::Value as J;
            match f {
                Filter::All => true,
                Filter::And(fs) => fs.iter().all(|f| reference(f, m)),
                Filter::Or(fs) => fs.iter().any(|f| reference(f, m)),
                Filter::Not(f) => !reference(f, m),
                Filter::Field { path, cmp } => {
                    let v = path.split('.').try_fold(m, |cur, p| cur.get(p));
                    let items: Vec<&J> = match v {
                        Some(J::Array(xs)) => xs.iter().collect(),
                        Some(x) => vec![x],
                        None => vec![],
                    };
                    let num = |j: &J| j.as_f64();
                    let eq = |x: &MetaValue| match x {
                        MetaValue::Null => v.is_none() || v == Some(&J::Null),
                        MetaValue::Int(_) | MetaValue::Float(_) => {
                            let t = x.to_json().as_f64();
                            items.iter().any(|j| num(j).is_some() && num(j) == t)
                        }
                        other => items.iter().any(|j| **j == other.to_json()),
                    };
                    let range = |x: &MetaValue, ok: &dyn Fn(f64, f64) -> bool| {
                        let t = x.to_json().as_f64().unwrap_or(f64::NAN);
                        items.iter().any(|j| num(j).is_some_and(|n| ok(n, t)))
                    };
                    match cmp {
                        Cmp::Eq(x) | Cmp::Contains(x) => eq(x),
                        Cmp::Ne(x) => !eq(x),
                        Cmp::Gt(x) => range(x, &|n, t| n > t),
                        Cmp::Gte(x) => range(x, &|n, t| n >= t),
                        Cmp::Lt(x) => range(x, &|n, t| n < t),
                        Cmp::Lte(x) => range(x, &|n, t| n <= t),
                        Cmp::In(xs) => xs.iter().any(eq),
                        Cmp::Nin(xs) => !xs.iter().any(eq),
                        Cmp::Exists(want) => v.is_some() == *want,
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn matches_the_reference_and_survives_json(f in filter(), m in metadata()) {
                let got = f.matches(&m);
                prop_assert_eq!(got, reference(&f, &m.to_json()), "{}", f.to_json());
                let back = Filter::from_json(&f.to_json()).unwrap();
                prop_assert_eq!(back.matches(&m), got);
                let m2 = Metadata::from_json(&m.to_json()).unwrap();
                prop_assert_eq!(&m2, &m);
                prop_assert!(f.validate().is_ok());
            }
        }
    }
}
