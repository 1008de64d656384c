//! Rows of an SQLite table as import input: `strata import DIR memories.db --table T
//! --vector-column C ...`.
//!
//! The table is read in rowid order, a page at a time (`WHERE rowid > last ORDER BY rowid
//! LIMIT n`), from a read-only connection, so the file is never changed and any size
//! streams; rows added after the reader opens (rowids above the largest then) are not
//! read. Each row's key, vector, metadata columns and text become one input row; a row
//! whose values cannot (a blob of the wrong length, a NULL vector, a key of the wrong
//! kind) is still a row, refused with a message naming it by rowid and key.

use std::collections::VecDeque;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use crate::row::Row;

/// How a vector column stores its vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VectorEncoding {
    /// A blob of little-endian 32-bit floats.
    F32le,
    /// A blob of little-endian 64-bit floats (narrowed to 32 bits).
    F64le,
    /// Text holding a JSON array of numbers.
    Json,
}

impl VectorEncoding {
    fn name(self) -> &'static str {
        match self {
            VectorEncoding::F32le => "f32le",
            VectorEncoding::F64le => "f64le",
            VectorEncoding::Json => "json",
        }
    }
}

/// Which table and columns to import.
#[derive(Clone, Debug)]
pub struct SqliteTable {
    /// The table (an ordinary one: views and WITHOUT ROWID tables have no rowid).
    pub table: String,
    /// The column naming each record (`None`: rows are numbered like other inputs).
    pub key_column: Option<String>,
    /// The column holding each vector.
    pub vector_column: String,
    /// How vectors are stored.
    pub vector_encoding: VectorEncoding,
    /// Columns that become metadata fields of the same names.
    pub metadata_columns: Vec<String>,
    /// The column holding each record's text.
    pub text_column: Option<String>,
}

/// Rows fetched per query.
const PAGE_ROWS: i64 = 1024;

/// One fetched row, before conversion.
struct RawRow {
    rowid: i64,
    key: Option<Value>,
    vector: Value,
    metadata: Vec<Value>,
    text: Option<Value>,
}

/// A streaming reader of an SQLite table's rows.
pub struct SqliteRows {
    conn: Connection,
    spec: SqliteTable,
    /// The store has string keys (integer keys then become their decimal text).
    string_keys: bool,
    /// The first page's query, and the one for each page after a rowid.
    first_page: String,
    next_page: String,
    page: VecDeque<RawRow>,
    /// The rowid of the latest row fetched (`None` before the first page).
    last_fetched: Option<i64>,
    /// No rows after the page held.
    exhausted: bool,
    /// The rowid and key of the latest row returned, for messages.
    current: Option<(i64, String)>,
    /// Rows in the table, for progress.
    pub rows: u64,
}

/// `name` as an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl SqliteRows {
    /// Opens `path` read-only, for a store of `keys`, and checks that the table and
    /// columns exist.
    pub fn open(path: &Path, spec: &SqliteTable, keys: strata::KeyKind) -> Result<SqliteRows> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
        let columns = table_columns(&conn, &spec.table)
            .with_context(|| format!("{} is not a readable SQLite database", path.display()))?;
        if columns.is_empty() {
            let tables = table_names(&conn).unwrap_or_default();
            bail!(
                "{} has no table {:?} (its tables: {})",
                path.display(),
                spec.table,
                if tables.is_empty() {
                    "none".to_string()
                } else {
                    tables.join(", ")
                }
            );
        }
        let mut wanted: Vec<(&str, &str)> = vec![("--vector-column", &spec.vector_column)];
        wanted.extend(spec.key_column.iter().map(|c| ("--key-column", c.as_str())));
        wanted.extend(
            spec.text_column
                .iter()
                .map(|c| ("--text-column", c.as_str())),
        );
        wanted.extend(
            spec.metadata_columns
                .iter()
                .map(|c| ("--metadata-columns", c.as_str())),
        );
        for (flag, column) in &wanted {
            if !columns.iter().any(|c| c == column) {
                bail!(
                    "{flag}: table {:?} has no column {column:?} (its columns: {})",
                    spec.table,
                    columns.join(", ")
                );
            }
        }
        for c in &spec.metadata_columns {
            if c.is_empty() || c.contains('.') {
                bail!("--metadata-columns: {c:?} cannot name a metadata field (a name is non-empty and holds no '.')");
            }
        }
        // The rowid under a name no declared column shadows.
        let rowid = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|alias| !columns.iter().any(|c| c.eq_ignore_ascii_case(alias)))
            .ok_or_else(|| {
                anyhow!(
                    "table {:?} declares columns named rowid, _rowid_ and oid, which hide its row order",
                    spec.table
                )
            })?;
        let mut select = vec![rowid.to_string(), quote(&spec.vector_column)];
        select.extend(spec.key_column.iter().map(|c| quote(c)));
        select.extend(spec.text_column.iter().map(|c| quote(c)));
        select.extend(spec.metadata_columns.iter().map(|c| quote(c)));
        let table = quote(&spec.table);
        let (rows, last): (i64, Option<i64>) = conn
            .query_row(
                &format!("SELECT count(*), max({rowid}) FROM {table}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| {
                anyhow!(
                    "cannot read table {:?} in rowid order ({e}); views and tables declared \
                     WITHOUT ROWID are not read: copy the rows into an ordinary table first",
                    spec.table
                )
            })?;
        let last = last.unwrap_or(i64::MIN);
        let base = format!("SELECT {} FROM {table}", select.join(", "));
        let first_page = format!("{base} WHERE {rowid} <= {last} ORDER BY {rowid} LIMIT ?1");
        let next_page =
            format!("{base} WHERE {rowid} > ?2 AND {rowid} <= {last} ORDER BY {rowid} LIMIT ?1");
        Ok(SqliteRows {
            conn,
            spec: spec.clone(),
            string_keys: keys == strata::KeyKind::String,
            first_page,
            next_page,
            page: VecDeque::new(),
            last_fetched: None,
            exhausted: false,
            current: None,
            rows: rows.max(0) as u64,
        })
    }

    /// Where the latest row is: `table T rowid R`.
    pub fn position(&self) -> String {
        match &self.current {
            Some((rowid, _)) => format!("table {:?} rowid {rowid}", self.spec.table),
            None => format!("table {:?}", self.spec.table),
        }
    }

    /// The next row, or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<Row>> {
        if self.page.is_empty() && !self.exhausted {
            self.fetch_page()?;
        }
        let Some(raw) = self.page.pop_front() else {
            return Ok(None);
        };
        self.current = Some((raw.rowid, String::new()));
        Ok(Some(self.convert(raw).unwrap_or_else(|e| Row {
            id: None,
            key: None,
            vector: Vec::new(),
            payload: None,
            metadata: None,
            metadata_error: None,
            refused: Some(format!("{e:#}")),
            text: None,
        })))
    }

    fn fetch_page(&mut self) -> Result<()> {
        let n = self.spec.metadata_columns.len();
        let (has_key, has_text) = (
            self.spec.key_column.is_some(),
            self.spec.text_column.is_some(),
        );
        let sql = match self.last_fetched {
            None => &self.first_page,
            Some(_) => &self.next_page,
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<RawRow> {
            let mut i = 2;
            let mut next = || {
                i += 1;
                r.get::<_, Value>(i - 1)
            };
            let key = if has_key { Some(next()?) } else { None };
            let text = if has_text { Some(next()?) } else { None };
            let metadata = (0..n).map(|_| next()).collect::<rusqlite::Result<_>>()?;
            Ok(RawRow {
                rowid: r.get(0)?,
                vector: r.get(1)?,
                key,
                metadata,
                text,
            })
        };
        let rows: Vec<RawRow> = match self.last_fetched {
            None => stmt
                .query_map([PAGE_ROWS], map)?
                .collect::<rusqlite::Result<_>>()?,
            Some(after) => stmt
                .query_map([PAGE_ROWS, after], map)?
                .collect::<rusqlite::Result<_>>()?,
        };
        self.exhausted = (rows.len() as i64) < PAGE_ROWS;
        if let Some(last) = rows.last() {
            self.last_fetched = Some(last.rowid);
        }
        self.page.extend(rows);
        Ok(())
    }

    /// The input row of a fetched one; errors name the row.
    fn convert(&mut self, raw: RawRow) -> Result<Row> {
        let mut row = Row {
            id: None,
            key: None,
            vector: Vec::new(),
            payload: None,
            metadata: None,
            metadata_error: None,
            refused: None,
            text: None,
        };
        let at = |s: &Self| s.position();
        if let (Some(value), Some(column)) = (raw.key, &self.spec.key_column) {
            match value {
                Value::Integer(i) if self.string_keys => row.key = Some(i.to_string()),
                Value::Integer(i) if i >= 0 => row.id = Some(i as u64),
                Value::Integer(i) => {
                    bail!("{}: key column {column:?} holds {i}, below 0", at(self))
                }
                Value::Text(s) if self.string_keys => row.key = Some(s),
                Value::Text(s) => bail!(
                    "{}: key column {column:?} holds the text {s:?}; this store has u64 ids \
                     (a store of string keys is made with `strata create --keys string`)",
                    at(self)
                ),
                Value::Null => bail!("{}: key column {column:?} is NULL", at(self)),
                other => bail!(
                    "{}: key column {column:?} holds {}; a key is an integer or text",
                    at(self),
                    describe(&other)
                ),
            }
            let named = match (&row.id, &row.key) {
                (Some(id), _) => format!("key {id}"),
                (_, Some(k)) => format!("key {k:?}"),
                _ => String::new(),
            };
            self.current = Some((raw.rowid, named));
        }
        row.vector = self
            .vector(raw.vector)
            .map_err(|e| anyhow!("{}: {e}", self.named_position()))?;
        if let (Some(value), Some(column)) = (raw.text, &self.spec.text_column) {
            match value {
                Value::Null => {}
                Value::Text(s) => row.text = Some(s),
                other => bail!(
                    "{}: text column {column:?} holds {}, not text",
                    self.named_position(),
                    describe(&other)
                ),
            }
        }
        if !self.spec.metadata_columns.is_empty() {
            let mut fields = serde_json::Map::new();
            for (column, value) in self.spec.metadata_columns.iter().zip(raw.metadata) {
                let v = match value {
                    Value::Null => continue,
                    Value::Integer(i) => serde_json::Value::from(i),
                    Value::Real(f) => serde_json::Value::from(f),
                    Value::Text(s) => serde_json::Value::from(s),
                    Value::Blob(b) => bail!(
                        "{}: metadata column {column:?} holds a {}-byte blob; metadata is numbers and text",
                        self.named_position(),
                        b.len()
                    ),
                };
                fields.insert(column.clone(), v);
            }
            if !fields.is_empty() {
                match strata::Metadata::from_json(&serde_json::Value::Object(fields)) {
                    Ok(m) => row.metadata = Some(m),
                    Err(e) => bail!("{}: {e}", self.named_position()),
                }
            }
        }
        Ok(row)
    }

    /// `table T rowid R (key K)`.
    fn named_position(&self) -> String {
        match &self.current {
            Some((_, key)) if !key.is_empty() => format!("{} ({key})", self.position()),
            _ => self.position(),
        }
    }

    /// The vector of one value in the table's encoding.
    fn vector(&self, value: Value) -> Result<Vec<f32>> {
        let column = &self.spec.vector_column;
        let encoding = self.spec.vector_encoding;
        let width = match encoding {
            VectorEncoding::F32le => 4,
            VectorEncoding::F64le => 8,
            VectorEncoding::Json => 0,
        };
        match (encoding, value) {
            (_, Value::Null) => bail!("vector column {column:?} is NULL"),
            (VectorEncoding::Json, Value::Text(s)) => parse_json_vector(&s)
                .map_err(|e| anyhow!("vector column {column:?}: {e}")),
            (VectorEncoding::Json, Value::Blob(b)) => std::str::from_utf8(&b)
                .map_err(|_| anyhow!("vector column {column:?} holds a blob that is not UTF-8 JSON"))
                .and_then(|s| {
                    parse_json_vector(s).map_err(|e| anyhow!("vector column {column:?}: {e}"))
                }),
            (_, Value::Blob(b)) if b.len() % width != 0 || b.is_empty() => bail!(
                "vector column {column:?} holds a {}-byte blob, not a whole number of {width}-byte values \
                 ({}); is --vector-encoding right?",
                b.len(),
                encoding.name()
            ),
            (VectorEncoding::F32le, Value::Blob(b)) => Ok(b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            (VectorEncoding::F64le, Value::Blob(b)) => Ok(b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect()),
            (_, Value::Text(_)) => bail!(
                "vector column {column:?} holds text, not a {} blob; is it --vector-encoding json?",
                encoding.name()
            ),
            (_, other) => bail!(
                "vector column {column:?} holds {}, not a vector",
                describe(&other)
            ),
        }
    }
}

/// A JSON array of numbers as a vector.
fn parse_json_vector(s: &str) -> Result<Vec<f32>> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| anyhow!("invalid JSON: {e}"))?;
    v.as_array()
        .ok_or_else(|| anyhow!("not a JSON array"))?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| anyhow!("the JSON array must hold numbers only"))
}

/// A value's kind, for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Real(f) => format!("the number {f}"),
        Value::Text(_) => "text".into(),
        Value::Blob(b) => format!("a {}-byte blob", b.len()),
    }
}

/// The columns of `table` (none when it does not exist).
fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt.query_map([table], |r| r.get(0))?;
    names.collect()
}

/// The database's tables.
fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

/// Whether `path` starts with SQLite's header.
pub fn is_sqlite_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"SQLite format 3\0"
}

#[cfg(test)]
mod tests {
    use strata::KeyKind;

    use super::*;

    fn spec(encoding: VectorEncoding) -> SqliteTable {
        SqliteTable {
            table: "memory embeddings".into(),
            key_column: Some("memory_id".into()),
            vector_column: "embedding".into(),
            vector_encoding: encoding,
            metadata_columns: vec!["category".into(), "score".into()],
            text_column: Some("content".into()),
        }
    }

    fn make(path: &Path, rows: &[(rusqlite::types::Value, rusqlite::types::Value)]) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE \"memory embeddings\"(memory_id, embedding, category TEXT, score REAL, content TEXT);",
        )
        .unwrap();
        for (i, (key, vector)) in rows.iter().enumerate() {
            c.execute(
                "INSERT INTO \"memory embeddings\" VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    key,
                    vector,
                    if i % 2 == 0 { Some("fact") } else { None },
                    i as f64 / 2.0,
                    format!("memory {i}")
                ],
            )
            .unwrap();
        }
    }

    fn f32_blob(v: &[f32]) -> Value {
        Value::Blob(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    #[test]
    fn reads_every_row_in_rowid_order_across_pages() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("m.db");
        let n = PAGE_ROWS as usize * 2 + 7;
        let rows: Vec<_> = (0..n)
            .map(|i| (Value::Text(format!("m{i}")), f32_blob(&[i as f32, 1.0])))
            .collect();
        make(&path, &rows);
        let mut r = SqliteRows::open(&path, &spec(VectorEncoding::F32le), KeyKind::String).unwrap();
        assert_eq!(r.rows, n as u64);
        let mut seen = 0;
        while let Some(row) = r.next_row().unwrap() {
            assert_eq!(row.key.as_deref(), Some(format!("m{seen}").as_str()));
            assert_eq!(row.vector, vec![seen as f32, 1.0]);
            assert_eq!(row.text.as_deref(), Some(format!("memory {seen}").as_str()));
            let meta = row.metadata.unwrap().to_json();
            assert_eq!(meta["score"], serde_json::json!(seen as f64 / 2.0));
            assert_eq!(
                meta.get("category").is_some(),
                seen % 2 == 0,
                "NULL is absent"
            );
            seen += 1;
        }
        assert_eq!(seen, n);
    }

    #[test]
    fn encodings_decode_and_bad_values_name_the_row() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("m.db");
        let f64s: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        make(
            &path,
            &[
                (Value::Integer(7), Value::Blob(f64s)),
                (Value::Integer(8), Value::Text("[3, 4.5]".into())),
                (Value::Integer(9), Value::Blob(vec![0; 10])),
            ],
        );
        // F64le: a store of u64 ids.
        let mut r = SqliteRows::open(&path, &spec(VectorEncoding::F64le), KeyKind::U64).unwrap();
        let row = r.next_row().unwrap().unwrap();
        assert_eq!((row.id, row.vector), (Some(7), vec![1.5, -2.0]));
        // Refused rows are still rows, naming themselves.
        let e = r.next_row().unwrap().unwrap().refused.unwrap();
        assert!(
            e.contains("rowid 2 (key 8)") && e.contains("--vector-encoding json"),
            "{e}"
        );
        let e = r.next_row().unwrap().unwrap().refused.unwrap();
        assert!(
            e.contains("rowid 3 (key 9)") && e.contains("10-byte blob"),
            "{e}"
        );
        assert!(r.next_row().unwrap().is_none());
        // Json: a store of string keys; integer keys become text.
        let mut r = SqliteRows::open(&path, &spec(VectorEncoding::Json), KeyKind::String).unwrap();
        assert!(r.next_row().unwrap().unwrap().refused.is_some());
        let row = r.next_row().unwrap().unwrap();
        assert_eq!(
            (row.key.as_deref(), row.vector),
            (Some("8"), vec![3.0, 4.5])
        );
    }

    #[test]
    fn a_column_named_rowid_does_not_hide_the_row_order() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("m.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t(rowid TEXT, v BLOB); INSERT INTO t VALUES ('b', x'0000803f'), ('a', x'00000040');")
            .unwrap();
        let spec = SqliteTable {
            table: "t".into(),
            key_column: Some("rowid".into()),
            vector_column: "v".into(),
            vector_encoding: VectorEncoding::F32le,
            metadata_columns: vec![],
            text_column: None,
        };
        let mut r = SqliteRows::open(&path, &spec, KeyKind::String).unwrap();
        let keys: Vec<_> = std::iter::from_fn(|| r.next_row().unwrap())
            .map(|row| (row.key.unwrap(), row.vector))
            .collect();
        assert_eq!(keys, [("b".into(), vec![1.0]), ("a".into(), vec![2.0])]);
    }

    #[test]
    fn a_missing_table_or_column_is_named_with_what_exists() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("m.db");
        make(&path, &[]);
        let mut s = spec(VectorEncoding::F32le);
        s.table = "memories".into();
        let e = SqliteRows::open(&path, &s, KeyKind::String)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("no table \"memories\"") && e.contains("memory embeddings"),
            "{e}"
        );
        let mut s = spec(VectorEncoding::F32le);
        s.text_column = Some("body".into());
        let e = SqliteRows::open(&path, &s, KeyKind::String)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("--text-column") && e.contains("memory_id, embedding"),
            "{e}"
        );
        assert!(is_sqlite_file(&path));
        assert!(!is_sqlite_file(t.path()));
    }
}
