//! The public record types: a stored [`Record`] and a search [`Hit`].

/// A search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Record id (in a store of string keys, the internal id the key is bound to).
    pub id: u64,
    /// The record's string key, in a store of string keys.
    pub key: Option<String>,
    /// Distance to the query (squared L2, `-dot`, or `1 - cos`; smaller is nearer); for
    /// a text or hybrid search, the negated score (smaller is better there too).
    pub distance: f32,
    /// The record's payload, when [`SearchOptions::with_payload`](crate::SearchOptions)
    /// asked for it and the record has one.
    pub payload: Option<Vec<u8>>,
    /// The record's metadata, when [`SearchOptions::with_metadata`](crate::SearchOptions)
    /// asked for it and the record has some.
    pub metadata: Option<crate::Metadata>,
    /// The record's text, when [`SearchOptions::with_text`](crate::SearchOptions) asked
    /// for it and the record has some.
    pub text: Option<String>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Record id (in a store of string keys, the internal id the key is bound to).
    pub id: u64,
    /// The record's string key, in a store of string keys.
    pub key: Option<String>,
    /// The vector as stored (unit length for the cosine metric).
    pub vector: Vec<f32>,
    /// The payload, if one was written.
    pub payload: Option<Vec<u8>>,
    /// The metadata, if any was written.
    pub metadata: Option<crate::Metadata>,
    /// The text, if any was written (what text searches find).
    pub text: Option<String>,
}
