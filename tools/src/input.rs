//! Readers for vector files: `.fvecs`, `.bvecs`, `.ivecs` (TEXMEX), `.npy` (float32, 2-D,
//! C order), JSON lines (`.jsonl`, `.ndjson`: one `{"id": u64 | "key": string,
//! "vector": [...], "metadata": {...}, "payload": any, "text": string}` per line) and `.json` (JSON lines, or one array
//! of such objects).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

pub use crate::row::Row;
use crate::sqlite_input::{is_sqlite_file, SqliteRows, SqliteTable};

/// A JSON-lines file whose line i is the metadata object of input row i.
struct SideMetadata {
    path: PathBuf,
    reader: BufReader<File>,
    line_no: u64,
    line: String,
}

enum Kind {
    Fvecs,
    Bvecs,
    Ivecs,
    Npy {
        dim: usize,
        rows: u64,
    },
    Jsonl,
    /// A `.json` file holding one array: its objects, in order.
    JsonArray(std::vec::IntoIter<serde_json::Value>),
    /// A table of an SQLite database.
    Sqlite(Box<SqliteRows>),
}

/// The extensions [`VectorFile::open`] reads, for help and error texts.
pub const EXTENSIONS: &str = ".fvecs, .bvecs, .ivecs, .npy, .jsonl, .ndjson or .json";

/// A streaming reader of rows.
pub struct VectorFile {
    path: PathBuf,
    kind: Kind,
    reader: BufReader<File>,
    row: u64,
    /// File length, for progress.
    pub bytes: u64,
    line: String,
    /// Lines read so far (JSON lines): the line of the latest row.
    line_no: u64,
    /// The metadata file, when rows take their metadata from one.
    side: Option<SideMetadata>,
}

impl VectorFile {
    /// Opens `path`, choosing the format by extension.
    pub fn open(path: &Path) -> Result<VectorFile> {
        let file = File::open(path)
            .with_context(|| format!("cannot read input file {}", path.display()))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let kind = match ext.as_str() {
            "fvecs" => Kind::Fvecs,
            "bvecs" => Kind::Bvecs,
            "ivecs" => Kind::Ivecs,
            "npy" => read_npy_header(&mut reader)
                .with_context(|| format!("{} is not a 2-D float32 .npy file", path.display()))?,
            "jsonl" | "ndjson" => Kind::Jsonl,
            "json" if starts_with_bracket(&mut reader)? => {
                let all: serde_json::Value = serde_json::from_reader(&mut reader)
                    .map_err(|e| anyhow!("{}: {}", path.display(), json_error(&e, 0)))?;
                match all {
                    serde_json::Value::Array(rows) => Kind::JsonArray(rows.into_iter()),
                    _ => bail!("{}: expected an array of objects", path.display()),
                }
            }
            "json" => Kind::Jsonl,
            _ if is_sqlite_file(path) => bail!(
                "{} is an SQLite database: name the table to import with --table and its \
                 vector column with --vector-column",
                path.display()
            ),
            _ => bail!(
                "{}: unknown input format (use {EXTENSIONS})",
                path.display()
            ),
        };
        Ok(VectorFile {
            path: path.to_path_buf(),
            kind,
            reader,
            row: 0,
            bytes,
            line: String::new(),
            line_no: 0,
            side: None,
        })
    }

    /// Reads the rows of an SQLite table (in rowid order) for a store of `keys`.
    pub fn open_sqlite(
        path: &Path,
        table: &SqliteTable,
        keys: strata::KeyKind,
    ) -> Result<VectorFile> {
        let rows = SqliteRows::open(path, table, keys)?;
        let file = File::open(path)
            .with_context(|| format!("cannot read input file {}", path.display()))?;
        Ok(VectorFile {
            path: path.to_path_buf(),
            bytes: file.metadata().map(|m| m.len()).unwrap_or(0),
            kind: Kind::Sqlite(Box::new(rows)),
            reader: BufReader::new(file),
            row: 0,
            line: String::new(),
            line_no: 0,
            side: None,
        })
    }

    /// Takes row i's metadata from line i of the JSON-lines file `path` (an empty line
    /// or `null`: none); the file must have exactly one line per row.
    pub fn with_metadata_file(mut self, path: &Path) -> Result<VectorFile> {
        let file = File::open(path)
            .with_context(|| format!("cannot read metadata file {}", path.display()))?;
        self.side = Some(SideMetadata {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            line_no: 0,
            line: String::new(),
        });
        Ok(self)
    }

    /// Whether reading can go on after a bad row (JSON: the next line or object is
    /// independent; binary formats lose their place).
    pub fn can_continue(&self) -> bool {
        matches!(
            self.kind,
            Kind::Jsonl | Kind::JsonArray(_) | Kind::Sqlite(_)
        )
    }

    /// Where the latest row is, for messages: `line L` (from 1) for JSON lines, `object
    /// N` (from 0) in a JSON array, else `row R` (from 0, the row number ids default to).
    pub fn position(&self) -> String {
        let row = self.row.saturating_sub(1);
        match self.kind {
            Kind::Jsonl => format!("line {}", self.line_no),
            Kind::JsonArray(_) => format!("object {row}"),
            Kind::Sqlite(ref rows) => rows.position(),
            _ => format!("row {row}"),
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The input's rows when known before reading them (`.npy`, SQLite).
    pub fn known_rows(&self) -> Option<u64> {
        match &self.kind {
            Kind::Npy { rows, .. } => Some(*rows),
            Kind::Sqlite(table) => Some(table.rows),
            _ => None,
        }
    }

    /// Rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.row
    }

    /// The next row, or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<Row>> {
        let row = self.row;
        let out = match self.kind {
            Kind::Fvecs => self.texmex(4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))?,
            Kind::Ivecs => {
                self.texmex(4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)?
            }
            Kind::Bvecs => self.texmex(1, |b| b[0] as f32)?,
            Kind::Npy { dim, rows } => {
                if row >= rows {
                    None
                } else {
                    let mut buf = vec![0u8; dim * 4];
                    self.reader.read_exact(&mut buf).with_context(|| {
                        format!("{}: truncated at row {row}", self.path.display())
                    })?;
                    let vector = buf
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    Some(Row {
                        id: None,
                        key: None,
                        vector,
                        payload: None,
                        metadata: None,
                        metadata_error: None,
                        refused: None,
                        text: None,
                    })
                }
            }
            Kind::Jsonl => self.jsonl()?,
            Kind::JsonArray(ref mut rows) => match rows.next() {
                None => None,
                Some(v) => Some(self.json_row(&v)?),
            },
            Kind::Sqlite(ref mut rows) => rows
                .next_row()
                .map_err(|e| anyhow!("{}: {e:#}", self.path.display()))?,
        };
        let out = match (out, self.side.as_mut()) {
            (out, None) => out,
            (Some(row), Some(side)) => Some(side.attach(row, &self.path)?),
            (None, Some(side)) => {
                side.expect_end(&self.path)?;
                None
            }
        };
        if out.is_some() {
            self.row += 1;
        }
        Ok(out)
    }

    fn texmex(&mut self, width: usize, conv: impl Fn(&[u8]) -> f32) -> Result<Option<Row>> {
        let mut d = [0u8; 4];
        match self.reader.read(&mut d[..1])? {
            0 => return Ok(None),
            _ => self
                .reader
                .read_exact(&mut d[1..])
                .with_context(|| self.at("truncated dimension"))?,
        }
        let dim = i32::from_le_bytes(d);
        if dim <= 0 || dim > 65_536 {
            bail!("{}: invalid dimension {dim}", self.at("bad record"));
        }
        let mut buf = vec![0u8; dim as usize * width];
        self.reader
            .read_exact(&mut buf)
            .with_context(|| self.at("truncated vector"))?;
        let vector = buf.chunks_exact(width).map(conv).collect();
        Ok(Some(Row {
            id: None,
            key: None,
            vector,
            payload: None,
            metadata: None,
            metadata_error: None,
            refused: None,
            text: None,
        }))
    }

    fn jsonl(&mut self) -> Result<Option<Row>> {
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            if !self.line.trim().is_empty() {
                break;
            }
        }
        let v: serde_json::Value = serde_json::from_str(&self.line).map_err(|e| {
            anyhow!(
                "{}: {}",
                self.path.display(),
                json_error(&e, self.line_no - 1)
            )
        })?;
        self.json_row(&v).map(Some)
    }

    /// The row of one JSON object.
    fn json_row(&self, v: &serde_json::Value) -> Result<Row> {
        let id = match v.get("id") {
            None | Some(serde_json::Value::Null) => None,
            Some(x) => Some(x.as_u64().ok_or_else(|| {
                anyhow!("{}: \"id\" must be an unsigned integer", self.at("bad id"))
            })?),
        };
        let key = match v.get("key") {
            None | Some(serde_json::Value::Null) => None,
            Some(x) => Some(
                x.as_str()
                    .ok_or_else(|| anyhow!("{}: \"key\" must be a string", self.at("bad key")))?
                    .to_owned(),
            ),
        };
        let vector = v
            .get("vector")
            .and_then(|x| x.as_array())
            .ok_or_else(|| anyhow!("{}: missing \"vector\" array", self.at("bad row")))?
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| anyhow!("{}: \"vector\" must hold numbers", self.at("bad row")))?;
        let metadata = match v.get("metadata") {
            None | Some(serde_json::Value::Null) => None,
            Some(m) => Some(
                strata::Metadata::from_json(m)
                    .map_err(|e| anyhow!("{}: {e}", self.at("bad metadata")))?,
            ),
        };
        let payload = match v.get("payload") {
            None | Some(serde_json::Value::Null) => None,
            Some(p) => Some(serde_json::to_vec(p)?),
        };
        let text = match v.get("text") {
            None | Some(serde_json::Value::Null) => None,
            Some(t) => Some(
                t.as_str()
                    .ok_or_else(|| anyhow!("{}: \"text\" must be a string", self.at("bad text")))?
                    .to_owned(),
            ),
        };
        Ok(Row {
            id,
            key,
            vector,
            payload,
            metadata,
            metadata_error: None,
            refused: None,
            text,
        })
    }

    /// "FILE POSITION: what" for the row being read.
    fn at(&self, what: &str) -> String {
        let pos = match self.kind {
            Kind::Jsonl => format!("line {}", self.line_no),
            Kind::JsonArray(_) => format!("object {}", self.row),
            Kind::Sqlite(ref rows) => rows.position(),
            _ => format!("row {}", self.row),
        };
        format!("{} {pos}: {what}", self.path.display())
    }

    /// Reads every row's vector (for queries and ground truth).
    pub fn read_all(path: &Path) -> Result<Vec<Vec<f32>>> {
        Self::read_first(path, None)
    }

    /// Reads the first `limit` rows' vectors (all of them for `None`).
    pub fn read_first(path: &Path, limit: Option<usize>) -> Result<Vec<Vec<f32>>> {
        let mut f = VectorFile::open(path)?;
        let mut out = Vec::new();
        while limit.is_none_or(|l| out.len() < l) {
            let Some(r) = f.next_row()? else { break };
            out.push(r.vector);
        }
        Ok(out)
    }
}

/// Whether the first non-blank byte is `[` (a JSON array rather than JSON lines).
fn starts_with_bracket(r: &mut BufReader<File>) -> Result<bool> {
    loop {
        let buf = r.fill_buf()?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let bracket = buf.get(i) == Some(&b'[');
                return Ok(bracket);
            }
            None if buf.is_empty() => return Ok(false),
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

/// A JSON parse error as "line L, column C: what", with `lines_before` added to the
/// parser's line (which counts within the text it was given).
fn json_error(e: &serde_json::Error, lines_before: u64) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&suffix).unwrap_or(&text);
    format!(
        "line {}, column {}: invalid JSON: {what}",
        e.line() as u64 + lines_before,
        e.column()
    )
}

impl SideMetadata {
    /// Gives `row` the metadata of the next line.
    fn attach(&mut self, mut row: Row, input: &Path) -> Result<Row> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            bail!(
                "{} ended at line {} but {} has more rows",
                self.path.display(),
                self.line_no,
                input.display()
            );
        }
        self.line_no += 1;
        let text = self.line.trim();
        if text.is_empty() || text == "null" {
            return Ok(row);
        }
        let at = format!("{} line {}", self.path.display(), self.line_no);
        match strata::Metadata::from_json_str(text) {
            Ok(_) if row.metadata.is_some() => {
                row.metadata_error = Some(format!("{at}: the row has metadata of its own"));
            }
            Ok(m) => row.metadata = Some(m),
            Err(e) => row.metadata_error = Some(format!("{at}: {e}")),
        }
        Ok(row)
    }

    /// At the end of the input: only blank lines may remain.
    fn expect_end(&mut self, input: &Path) -> Result<()> {
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                return Ok(());
            }
            self.line_no += 1;
            if !self.line.trim().is_empty() {
                bail!(
                    "{} has more lines than {} has rows (line {} has no row)",
                    self.path.display(),
                    input.display(),
                    self.line_no
                );
            }
        }
    }
}

fn read_npy_header(r: &mut impl Read) -> Result<Kind> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic[..6] != b"\x93NUMPY" {
        bail!("bad magic");
    }
    let len = if magic[6] == 1 {
        let mut l = [0u8; 2];
        r.read_exact(&mut l)?;
        u16::from_le_bytes(l) as usize
    } else {
        let mut l = [0u8; 4];
        r.read_exact(&mut l)?;
        u32::from_le_bytes(l) as usize
    };
    if len > 1 << 20 {
        bail!("header too long");
    }
    let mut h = vec![0u8; len];
    r.read_exact(&mut h)?;
    let h = String::from_utf8_lossy(&h).replace(' ', "");
    if !h.contains("'descr':'<f4'") {
        bail!("dtype must be little-endian float32 ('<f4'), header: {h}");
    }
    if h.contains("'fortran_order':True") {
        bail!("Fortran order is not supported");
    }
    let shape = h
        .split("'shape':(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| anyhow!("no shape"))?;
    let dims: Vec<u64> = shape
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    match dims[..] {
        [rows, dim] if dim > 0 && dim <= 65_536 => Ok(Kind::Npy {
            dim: dim as usize,
            rows,
        }),
        _ => bail!("shape must be 2-D (rows, dim), got ({shape})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fvecs_npy_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let fv = dir.path().join("a.fvecs");
        let mut b = Vec::new();
        for r in 0..3 {
            b.extend_from_slice(&2i32.to_le_bytes());
            b.extend_from_slice(&(r as f32).to_le_bytes());
            b.extend_from_slice(&1.5f32.to_le_bytes());
        }
        std::fs::write(&fv, &b).unwrap();
        assert_eq!(
            VectorFile::read_all(&fv).unwrap(),
            vec![vec![0.0, 1.5], vec![1.0, 1.5], vec![2.0, 1.5]]
        );
        std::fs::write(&fv, &b[..b.len() - 1]).unwrap();
        assert!(VectorFile::read_all(&fv).is_err());

        let np = dir.path().join("a.npy");
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
        let mut h = header.as_bytes().to_vec();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut n = b"\x93NUMPY\x01\x00".to_vec();
        n.extend_from_slice(&(h.len() as u16).to_le_bytes());
        n.extend_from_slice(&h);
        for x in [1.0f32, 2.0, 3.0, 4.0] {
            n.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(&np, &n).unwrap();
        assert_eq!(
            VectorFile::read_all(&np).unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );

        let jl = dir.path().join("a.jsonl");
        std::fs::write(
            &jl,
            "{\"id\": 7, \"vector\": [1, 2.5], \"payload\": {\"k\": 1}}\n\n{\"vector\": [0, 0]}\n",
        )
        .unwrap();
        let mut f = VectorFile::open(&jl).unwrap();
        let r = f.next_row().unwrap().unwrap();
        assert_eq!(
            (r.id, r.vector, r.payload.unwrap()),
            (Some(7), vec![1.0, 2.5], b"{\"k\":1}".to_vec())
        );
        assert!(f.next_row().unwrap().unwrap().id.is_none());
        assert!(f.next_row().unwrap().is_none());
    }
}
