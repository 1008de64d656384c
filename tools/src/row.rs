//! One row of an import's input, whatever file it came from.

/// One input row.
#[derive(Debug)]
pub struct Row {
    /// Explicit id (JSON rows, or an SQLite key column of integers).
    pub id: Option<u64>,
    /// Explicit string key (JSON rows, or an SQLite key column).
    pub key: Option<String>,
    /// The vector.
    pub vector: Vec<f32>,
    /// Payload bytes (JSON lines: the `payload` value as JSON text).
    pub payload: Option<Vec<u8>>,
    /// Metadata (JSON: the `metadata` object; or the row's line of a metadata file),
    /// what filters test.
    pub metadata: Option<strata::Metadata>,
    /// Why the row's line of the metadata file was refused, if it was.
    pub metadata_error: Option<String>,
    /// Why the row itself is refused (a value of an SQLite row that is no vector, key
    /// or metadata), as a whole message naming the row. The row still counts as read,
    /// so the rows after it keep their numbers.
    pub refused: Option<String>,
    /// The row's text (JSON: the `text` string), what text searches find.
    pub text: Option<String>,
}
