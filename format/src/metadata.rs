//! Typed metadata of a record: an object whose fields hold strings, integers, floats,
//! booleans, null, lists of strings or numbers (tags), or nested objects addressed by
//! dotted paths (`"author.name"`); its JSON form, and its binary encoding (in
//! `docs/format.md`, "Metadata encoding"), which is canonical: equal metadata encode to
//! equal bytes, and the decoder refuses any other bytes.

use std::collections::BTreeMap;

use crate::codec::Reader;
use crate::error::{CorruptionKind, DecodeError};

/// Metadata the model does not hold: where (a dotted path, a list index) and what was
/// expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata at `{path}`: expected {expected}")]
pub struct MetadataError {
    /// Where in the metadata.
    pub path: String,
    /// What was expected there.
    pub expected: String,
}

/// Most bytes of a metadata object's JSON text.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Most bytes of one record's encoded metadata in a segment or the log.
pub const MAX_METADATA_LEN: usize = 64 * 1024;
/// Deepest nesting of objects (the top level is depth 1).
pub const MAX_METADATA_DEPTH: usize = 8;

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (JSON numbers without a fraction that fit `i64`).
    Int(i64),
    /// Any other finite number.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A list of strings and numbers (tags).
    List(Vec<MetaValue>),
    /// A nested object.
    Object(BTreeMap<String, MetaValue>),
}

/// A record's metadata: named fields (keys are non-empty and hold no `.`, which
/// separates the parts of a dotted path).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata {
    fields: BTreeMap<String, MetaValue>,
}

fn bad(path: &str, expected: &str) -> MetadataError {
    MetadataError {
        path: path.to_string(),
        expected: expected.to_string(),
    }
}

/// The dotted path of field `key` under `prefix` (`key` itself at the top).
pub fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Metadata {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses metadata from JSON text (an object).
    pub fn from_json_str(text: &str) -> Result<Metadata, MetadataError> {
        if text.len() > MAX_METADATA_BYTES {
            return Err(bad(
                "",
                &format!("at most {MAX_METADATA_BYTES} bytes of JSON"),
            ));
        }
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad("", &format!("a JSON object ({e})")))?;
        Self::from_json(&v)
    }

    /// Metadata from a JSON value, which must be an object; refuses what the model does
    /// not hold (lists of lists or objects, numbers outside `f64`, keys with `.`).
    pub fn from_json(v: &serde_json::Value) -> Result<Metadata, MetadataError> {
        match v {
            serde_json::Value::Object(map) => Ok(Metadata {
                fields: object(map, "", 1)?,
            }),
            _ => Err(bad("", "a JSON object")),
        }
    }

    /// The metadata as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }

    /// Sets field `key` (a top-level name: non-empty, no `.`).
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: MetaValue,
    ) -> Result<&mut Self, MetadataError> {
        let key = key.into();
        check_key(&key, "")?;
        check_value(&value, &key, 2)?;
        self.fields.insert(key, value);
        Ok(self)
    }

    /// The value at a dotted path, if present.
    pub fn get(&self, path: &str) -> Option<&MetaValue> {
        let mut parts = path.split('.');
        let mut cur = self.fields.get(parts.next()?)?;
        for p in parts {
            match cur {
                MetaValue::Object(m) => cur = m.get(p)?,
                _ => return None,
            }
        }
        Some(cur)
    }

    /// Every leaf (a value that is not an object) with its dotted path, in path order.
    pub fn leaves(&self) -> Vec<(String, &MetaValue)> {
        let mut out = Vec::new();
        collect_leaves(&self.fields, "", &mut out);
        out
    }

    /// Every value with its dotted path, objects included (an object before its
    /// fields), in path order.
    pub fn entries(&self) -> Vec<(String, &MetaValue)> {
        fn walk<'a>(
            map: &'a BTreeMap<String, MetaValue>,
            prefix: &str,
            out: &mut Vec<(String, &'a MetaValue)>,
        ) {
            for (k, v) in map {
                let path = join_path(prefix, k);
                out.push((path.clone(), v));
                if let MetaValue::Object(m) = v {
                    walk(m, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.fields, "", &mut out);
        out
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

fn collect_leaves<'a>(
    map: &'a BTreeMap<String, MetaValue>,
    prefix: &str,
    out: &mut Vec<(String, &'a MetaValue)>,
) {
    for (k, v) in map {
        let path = join_path(prefix, k);
        match v {
            MetaValue::Object(m) => collect_leaves(m, &path, out),
            leaf => out.push((path, leaf)),
        }
    }
}

fn check_key(key: &str, prefix: &str) -> Result<(), MetadataError> {
    if key.is_empty() || key.contains('.') {
        return Err(bad(
            &join_path(prefix, key),
            "a field name that is non-empty and holds no '.'",
        ));
    }
    Ok(())
}

fn check_value(v: &MetaValue, path: &str, depth: usize) -> Result<(), MetadataError> {
    match v {
        MetaValue::Float(f) if !f.is_finite() => Err(bad(path, "a finite number")),
        MetaValue::List(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    MetaValue::Str(_) | MetaValue::Int(_) => {}
                    MetaValue::Float(f) if f.is_finite() => {}
                    _ => {
                        return Err(bad(
                            &format!("{path}[{i}]"),
                            "a string or a finite number (lists hold tags)",
                        ))
                    }
                }
            }
            Ok(())
        }
        MetaValue::Object(m) => {
            if depth > MAX_METADATA_DEPTH {
                return Err(bad(
                    path,
                    &format!("objects nested at most {MAX_METADATA_DEPTH} deep"),
                ));
            }
            for (k, v) in m {
                check_key(k, path)?;
                check_value(v, &join_path(path, k), depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn object(
    map: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    depth: usize,
) -> Result<BTreeMap<String, MetaValue>, MetadataError> {
    if depth > MAX_METADATA_DEPTH {
        return Err(bad(
            prefix,
            &format!("objects nested at most {MAX_METADATA_DEPTH} deep"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        check_key(k, prefix)?;
        let path = join_path(prefix, k);
        out.insert(k.clone(), value(v, &path, depth)?);
    }
    Ok(out)
}

/// A JSON number as an integer when it has no fraction and fits `i64`, else a float.
pub fn json_number(n: &serde_json::Number) -> Option<MetaValue> {
    if let Some(i) = n.as_i64() {
        return Some(MetaValue::Int(i));
    }
    n.as_f64().filter(|f| f.is_finite()).map(MetaValue::Float)
}

fn value(v: &serde_json::Value, path: &str, depth: usize) -> Result<MetaValue, MetadataError> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => MetaValue::Null,
        J::Bool(b) => MetaValue::Bool(*b),
        J::Number(n) => json_number(n).ok_or_else(|| bad(path, "a finite number"))?,
        J::String(s) => MetaValue::Str(s.clone()),
        J::Array(items) => MetaValue::List(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    J::String(s) => Ok(MetaValue::Str(s.clone())),
                    J::Number(n) => json_number(n).ok_or_else(|| bad(path, "a finite number")),
                    _ => Err(bad(
                        &format!("{path}[{i}]"),
                        "a string or a finite number (lists hold tags)",
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        J::Object(m) => MetaValue::Object(object(m, path, depth + 1)?),
    })
}

impl MetaValue {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            MetaValue::Null => J::Null,
            MetaValue::Bool(b) => J::Bool(*b),
            MetaValue::Int(i) => J::from(*i),
            MetaValue::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            MetaValue::Str(s) => J::String(s.clone()),
            MetaValue::List(items) => J::Array(items.iter().map(MetaValue::to_json).collect()),
            MetaValue::Object(m) => {
                J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

impl From<&str> for MetaValue {
    fn from(s: &str) -> Self {
        MetaValue::Str(s.to_string())
    }
}

impl From<String> for MetaValue {
    fn from(s: String) -> Self {
        MetaValue::Str(s)
    }
}

impl From<i64> for MetaValue {
    fn from(i: i64) -> Self {
        MetaValue::Int(i)
    }
}

impl From<f64> for MetaValue {
    fn from(f: f64) -> Self {
        MetaValue::Float(f)
    }
}

impl From<bool> for MetaValue {
    fn from(b: bool) -> Self {
        MetaValue::Bool(b)
    }
}

/// Value tags of the binary encoding.
mod tag {
    pub const NULL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const INT: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const STR: u8 = 5;
    pub const LIST: u8 = 6;
    pub const OBJECT: u8 = 7;
}

impl Metadata {
    /// The canonical binary encoding (`docs/format.md`, "Metadata encoding").
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_object(&self.fields, &mut out);
        out
    }

    /// The length of [`Metadata::encode`]'s bytes, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        object_len(&self.fields)
    }

    /// Decodes [`Metadata::encode`]'s bytes; `base` is their offset in the file, for
    /// errors. Refuses anything the encoder would not write: unknown tags, keys out of
    /// order or repeated, empty keys or keys with `.`, invalid UTF-8, non-finite floats,
    /// lists holding other than strings and numbers, nesting deeper than
    /// [`MAX_METADATA_DEPTH`], trailing bytes.
    pub fn decode(buf: &[u8], base: u64) -> Result<Metadata, DecodeError> {
        let mut r = Reader::new(buf, base);
        let fields = decode_object(&mut r, 1)?;
        if r.remaining() != 0 {
            return Err(r.fault(CorruptionKind::Invalid("bytes after the metadata object")));
        }
        Ok(Metadata { fields })
    }
}

fn object_len(map: &BTreeMap<String, MetaValue>) -> usize {
    4 + map
        .iter()
        .map(|(k, v)| 2 + k.len() + value_len(v))
        .sum::<usize>()
}

fn value_len(v: &MetaValue) -> usize {
    1 + match v {
        MetaValue::Null | MetaValue::Bool(_) => 0,
        MetaValue::Int(_) | MetaValue::Float(_) => 8,
        MetaValue::Str(s) => 4 + s.len(),
        MetaValue::List(items) => 4 + items.iter().map(value_len).sum::<usize>(),
        MetaValue::Object(m) => object_len(m),
    }
}

fn encode_object(map: &BTreeMap<String, MetaValue>, out: &mut Vec<u8>) {
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u16).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        encode_value(v, out);
    }
}

fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode_value(v: &MetaValue, out: &mut Vec<u8>) {
    match v {
        MetaValue::Null => out.push(tag::NULL),
        MetaValue::Bool(false) => out.push(tag::FALSE),
        MetaValue::Bool(true) => out.push(tag::TRUE),
        MetaValue::Int(i) => {
            out.push(tag::INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        MetaValue::Float(f) => {
            out.push(tag::FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        MetaValue::Str(s) => {
            out.push(tag::STR);
            encode_str(s, out);
        }
        MetaValue::List(items) => {
            out.push(tag::LIST);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for item in items {
                encode_value(item, out);
            }
        }
        MetaValue::Object(m) => {
            out.push(tag::OBJECT);
            encode_object(m, out);
        }
    }
}

fn decode_str(r: &mut Reader<'_>, len: usize) -> Result<String, DecodeError> {
    let at = r.offset();
    let bytes = r.bytes(len)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Reader::fault_at(at, CorruptionKind::Invalid("UTF-8 in metadata")))
}

/// A count, bounded by the bytes left (each entry takes at least one byte), so that a
/// hostile count cannot make the decoder allocate beyond the input.
fn count(r: &mut Reader<'_>) -> Result<usize, DecodeError> {
    let n = r.u32()? as usize;
    if n > r.remaining() {
        return Err(r.fault(CorruptionKind::Invalid("metadata count beyond the data")));
    }
    Ok(n)
}

fn decode_object(
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<BTreeMap<String, MetaValue>, DecodeError> {
    if depth > MAX_METADATA_DEPTH {
        return Err(r.fault(CorruptionKind::Invalid("metadata nested too deep")));
    }
    let n = count(r)?;
    let mut out = BTreeMap::new();
    let mut last: Option<String> = None;
    for _ in 0..n {
        let at = r.offset();
        let len = u16::from_le_bytes(r.array()?) as usize;
        let key = decode_str(r, len)?;
        if key.is_empty() || key.contains('.') {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("metadata key"),
            ));
        }
        if last.as_ref().is_some_and(|l| *l >= key) {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("metadata keys out of order"),
            ));
        }
        let v = decode_value(r, depth, false)?;
        last = Some(key.clone());
        out.insert(key, v);
    }
    Ok(out)
}

fn decode_value(r: &mut Reader<'_>, depth: usize, in_list: bool) -> Result<MetaValue, DecodeError> {
    let at = r.offset();
    let t = r.u8()?;
    if in_list && !matches!(t, tag::INT | tag::FLOAT | tag::STR) {
        return Err(Reader::fault_at(
            at,
            CorruptionKind::Invalid("metadata list element"),
        ));
    }
    Ok(match t {
        tag::NULL => MetaValue::Null,
        tag::FALSE => MetaValue::Bool(false),
        tag::TRUE => MetaValue::Bool(true),
        tag::INT => MetaValue::Int(i64::from_le_bytes(r.array()?)),
        tag::FLOAT => {
            let f = f64::from_le_bytes(r.array()?);
            if !f.is_finite() {
                return Err(Reader::fault_at(
                    at,
                    CorruptionKind::Invalid("metadata float"),
                ));
            }
            MetaValue::Float(f)
        }
        tag::STR => {
            let len = r.u32()? as usize;
            MetaValue::Str(decode_str(r, len)?)
        }
        tag::LIST => {
            let n = count(r)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(decode_value(r, depth, true)?);
            }
            MetaValue::List(items)
        }
        tag::OBJECT => MetaValue::Object(decode_object(r, depth + 1)?),
        _ => {
            return Err(Reader::fault_at(
                at,
                CorruptionKind::Invalid("metadata tag"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_lists_and_refuses_what_it_cannot_hold() {
        let m = Metadata::from_json_str(
            r#"{"user": 42, "kind": "fact", "score": 0.5, "ok": true, "none": null,
                "tags": ["a", 1, 2.5], "author": {"name": "x", "age": {"years": 3}}}"#,
        )
        .unwrap();
        assert_eq!(m.get("user"), Some(&MetaValue::Int(42)));
        assert_eq!(m.get("author.age.years"), Some(&MetaValue::Int(3)));
        assert_eq!(m.get("author.nope"), None);
        assert_eq!(m.get("user.x"), None);
        let paths: Vec<String> = m.leaves().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "author.age.years",
                "author.name",
                "kind",
                "none",
                "ok",
                "score",
                "tags",
                "user"
            ]
        );
        assert_eq!(Metadata::from_json(&m.to_json()).unwrap(), m);
        for (text, path) in [
            (r#"[1]"#, ""),
            (r#"{"a.b": 1}"#, "a.b"),
            (r#"{"": 1}"#, ""),
            (r#"{"t": [[1]]}"#, "t[0]"),
            (r#"{"o": {"t": [null]}}"#, "o.t[0]"),
            (r#"{"n": 1e999}"#, ""),
        ] {
            match Metadata::from_json_str(text) {
                Err(MetadataError { path: p, .. }) => assert_eq!(p, path, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let deep = format!("{}1{}", r#"{"a":"#.repeat(9), "}".repeat(9));
        assert!(Metadata::from_json_str(&deep).is_err());
        let big = format!(r#"{{"s": "{}"}}"#, "x".repeat(MAX_METADATA_BYTES));
        assert!(Metadata::from_json_str(&big).is_err());
    }

    #[test]
    fn encoding_round_trips_is_canonical_and_refuses_damage() {
        let m = Metadata::from_json_str(
            r#"{"user": -42, "kind": "fact", "score": 0.5, "ok": true, "no": false, "none": null,
                "tags": ["a", 1, 2.5], "author": {"name": "x", "age": {"years": 3}}}"#,
        )
        .unwrap();
        let bytes = m.encode();
        assert_eq!(bytes.len(), m.encoded_len());
        assert_eq!(Metadata::decode(&bytes, 0).unwrap(), m);
        assert_eq!(
            Metadata::decode(&Metadata::new().encode(), 0).unwrap(),
            Metadata::new()
        );
        // Every truncation and every single-bit flip is refused or decodes to metadata
        // that encodes back to exactly the damaged bytes (canonical: no two encodings).
        for cut in 0..bytes.len() {
            assert!(
                Metadata::decode(bytes.get(..cut).unwrap(), 0).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            if let Some(x) = b.get_mut(i / 8) {
                *x ^= 1 << (i % 8);
            }
            if let Ok(d) = Metadata::decode(&b, 0) {
                assert_eq!(d.encode(), b, "bit {i}");
            }
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Metadata::decode(&trailing, 0).is_err());
        // Keys out of order.
        let mut two = Vec::new();
        two.extend_from_slice(&2u32.to_le_bytes());
        for k in ["b", "a"] {
            two.extend_from_slice(&1u16.to_le_bytes());
            two.extend_from_slice(k.as_bytes());
            two.push(0);
        }
        let e = Metadata::decode(&two, 100).unwrap_err();
        assert_eq!(e.offset, 100 + 4 + 4);
        // A count far beyond the data allocates nothing.
        assert!(Metadata::decode(&u32::MAX.to_le_bytes(), 0).is_err());
    }
}
