//! Typed metadata of a record: an object whose fields hold strings, integers, floats,
//! booleans, null, lists of strings or numbers (tags), or nested objects addressed by
//! dotted paths (`"author.name"`).

use std::collections::BTreeMap;

use crate::error::InvalidArgument;

/// Most bytes of a metadata object's JSON text.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
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

fn bad(path: &str, expected: &str) -> InvalidArgument {
    InvalidArgument::Metadata {
        path: path.to_string(),
        expected: expected.to_string(),
    }
}

fn join(prefix: &str, key: &str) -> String {
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
    pub fn from_json_str(text: &str) -> Result<Metadata, InvalidArgument> {
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
    pub fn from_json(v: &serde_json::Value) -> Result<Metadata, InvalidArgument> {
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
    ) -> Result<&mut Self, InvalidArgument> {
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
        let path = join(prefix, k);
        match v {
            MetaValue::Object(m) => collect_leaves(m, &path, out),
            leaf => out.push((path, leaf)),
        }
    }
}

fn check_key(key: &str, prefix: &str) -> Result<(), InvalidArgument> {
    if key.is_empty() || key.contains('.') {
        return Err(bad(
            &join(prefix, key),
            "a field name that is non-empty and holds no '.'",
        ));
    }
    Ok(())
}

fn check_value(v: &MetaValue, path: &str, depth: usize) -> Result<(), InvalidArgument> {
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
                check_value(v, &join(path, k), depth + 1)?;
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
) -> Result<BTreeMap<String, MetaValue>, InvalidArgument> {
    if depth > MAX_METADATA_DEPTH {
        return Err(bad(
            prefix,
            &format!("objects nested at most {MAX_METADATA_DEPTH} deep"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        check_key(k, prefix)?;
        let path = join(prefix, k);
        out.insert(k.clone(), value(v, &path, depth)?);
    }
    Ok(out)
}

/// A JSON number as an integer when it has no fraction and fits `i64`, else a float.
pub(crate) fn number(n: &serde_json::Number) -> Option<MetaValue> {
    if let Some(i) = n.as_i64() {
        return Some(MetaValue::Int(i));
    }
    n.as_f64().filter(|f| f.is_finite()).map(MetaValue::Float)
}

fn value(v: &serde_json::Value, path: &str, depth: usize) -> Result<MetaValue, InvalidArgument> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => MetaValue::Null,
        J::Bool(b) => MetaValue::Bool(*b),
        J::Number(n) => number(n).ok_or_else(|| bad(path, "a finite number"))?,
        J::String(s) => MetaValue::Str(s.clone()),
        J::Array(items) => MetaValue::List(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    J::String(s) => Ok(MetaValue::Str(s.clone())),
                    J::Number(n) => number(n).ok_or_else(|| bad(path, "a finite number")),
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
                Err(InvalidArgument::Metadata { path: p, .. }) => assert_eq!(p, path, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let deep = format!("{}1{}", r#"{"a":"#.repeat(9), "}".repeat(9));
        assert!(Metadata::from_json_str(&deep).is_err());
        let big = format!(r#"{{"s": "{}"}}"#, "x".repeat(MAX_METADATA_BYTES));
        assert!(Metadata::from_json_str(&big).is_err());
    }
}
