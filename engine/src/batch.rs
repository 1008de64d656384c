//! Write batches and their WAL encoding.
//!
//! A batch is one WAL record (kind [`BATCH_RECORD`]) holding its operations in order:
//! `op u8` (1 upsert, 2 delete, 3 upsert with metadata, 4 upsert by string key, 5 upsert
//! with text) · `id u64` · for op 5, a flags `u8` (1 key, 2 payload, 4 metadata, 8 text;
//! text always set) · for op 4 (and op 5 with a key), `key_len u16` and the key's UTF-8
//! bytes · for upserts `dim × f32` · for ops 1, 3 and 4, a payload flag `u8` (0 none, 1
//! present) · if present (or flagged) `len u32` and the bytes · for op 3, `len u32` and
//! the metadata's canonical encoding; for op 4, a metadata flag `u8` and, if 1, the
//! same; for op 5, if flagged, the same without the flag · for op 5, `len u32` and the
//! text's UTF-8 bytes. All little-endian.
//!
//! Operations by string key ([`WriteBatch::upsert_keyed`], [`WriteBatch::delete_key`])
//! are bound to ids under the write lock before they are logged: the log holds the key
//! and its id for an upsert, and only the id for a delete.

use strata_format::metadata::{Metadata, MAX_METADATA_LEN};

use crate::error::CorruptionKind;

/// WAL record kind of a write batch.
pub const BATCH_RECORD: u8 = 1;
const OP_UPSERT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_UPSERT_META: u8 = 3;
const OP_UPSERT_KEYED: u8 = 4;
const OP_UPSERT_TEXT: u8 = 5;
const FLAG_KEY: u8 = 1;
const FLAG_PAYLOAD: u8 = 2;
const FLAG_METADATA: u8 = 4;
const FLAG_TEXT: u8 = 8;

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert or replace `id` (or, with a `key`, the record of that key).
    Upsert {
        /// Record id (in a batch by string key, 0 until the key is bound to its id).
        id: u64,
        /// The string key, in a store of string keys.
        key: Option<Box<str>>,
        /// The vector.
        vector: Vec<f32>,
        /// Optional payload bytes.
        payload: Option<Vec<u8>>,
        /// Optional metadata (what filters test).
        metadata: Option<Metadata>,
        /// Optional text (what text searches find).
        text: Option<Box<str>>,
    },
    /// Remove `id` (a no-op if absent).
    Delete {
        /// Record id.
        id: u64,
    },
    /// Remove the record of a string key (a no-op if absent); replaced by
    /// [`Op::Delete`] of its id (or dropped) before the batch is logged.
    DeleteKey {
        /// The key.
        key: Box<str>,
    },
}

impl Op {
    /// The bytes the caller handed in: id, vector components and payload of an upsert,
    /// the id of a delete (the base of the write-amplification figure).
    pub fn user_bytes(&self) -> u64 {
        match self {
            Op::Upsert {
                key,
                vector,
                payload,
                metadata,
                text,
                ..
            } => {
                key.as_ref().map_or(8, |k| k.len() as u64)
                    + 4 * vector.len() as u64
                    + payload.as_ref().map_or(0, |p| p.len() as u64)
                    + metadata.as_ref().map_or(0, |m| m.encoded_len() as u64)
                    + text.as_ref().map_or(0, |t| t.len() as u64)
            }
            Op::Delete { .. } => 8,
            Op::DeleteKey { key } => key.len() as u64,
        }
    }

    /// Bytes of this operation in the WAL encoding ([`encode`]).
    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            Op::Upsert {
                key,
                vector,
                payload,
                metadata,
                text,
                ..
            } => {
                // Op 5 has one flags byte where ops 1, 3, 4 have a payload flag and op 4
                // a metadata flag.
                let flags = match (text, key) {
                    (Some(_), _) => 1,
                    (None, Some(_)) => 2,
                    (None, None) => 1,
                };
                1 + 8
                    + flags
                    + key.as_ref().map_or(0, |k| 2 + k.len())
                    + 4 * vector.len()
                    + payload.as_ref().map_or(0, |p| 4 + p.len())
                    + metadata.as_ref().map_or(0, |m| 4 + m.encoded_len())
                    + text.as_ref().map_or(0, |t| 4 + t.len())
            }
            // A delete by key is logged as a delete of its id.
            Op::Delete { .. } | Op::DeleteKey { .. } => 1 + 8,
        }
    }

    /// The id the operation touches (0 for an operation by key not yet bound).
    pub fn id(&self) -> u64 {
        match self {
            Op::Upsert { id, .. } | Op::Delete { id } => *id,
            Op::DeleteKey { .. } => 0,
        }
    }

    /// The string key of an operation by key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Upsert { key, .. } => key.as_deref(),
            Op::DeleteKey { key } => Some(key),
            Op::Delete { .. } => None,
        }
    }
}

/// Operations applied atomically: after a crash all are present or none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    pub(crate) ops: Vec<Op>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an upsert without payload.
    pub fn upsert(&mut self, id: u64, vector: &[f32]) -> &mut Self {
        self.upsert_record(id, vector, None, None)
    }

    /// Adds an upsert with a payload.
    pub fn upsert_with_payload(&mut self, id: u64, vector: &[f32], payload: &[u8]) -> &mut Self {
        self.upsert_record(id, vector, None, Some(payload))
    }

    /// Adds an upsert with metadata (what filters test) and a payload, each optional.
    pub fn upsert_record(
        &mut self,
        id: u64,
        vector: &[f32],
        metadata: Option<&Metadata>,
        payload: Option<&[u8]>,
    ) -> &mut Self {
        self.ops.push(Op::Upsert {
            id,
            key: None,
            vector: vector.to_vec(),
            payload: payload.map(<[u8]>::to_vec),
            metadata: metadata.filter(|m| !m.is_empty()).cloned(),
            text: None,
        });
        self
    }

    /// Adds an upsert with text (what [`Db::text_search`](crate::Db::text_search) finds),
    /// and metadata and a payload, each optional.
    pub fn upsert_text(
        &mut self,
        id: u64,
        vector: &[f32],
        text: &str,
        metadata: Option<&Metadata>,
        payload: Option<&[u8]>,
    ) -> &mut Self {
        self.upsert_record(id, vector, metadata, payload);
        self.set_last_text(text)
    }

    /// Adds an upsert by string key with text, and metadata and a payload, each optional
    /// (see [`Self::upsert_keyed`] and [`Self::upsert_text`]).
    pub fn upsert_keyed_text(
        &mut self,
        key: &str,
        vector: &[f32],
        text: &str,
        metadata: Option<&Metadata>,
        payload: Option<&[u8]>,
    ) -> &mut Self {
        self.upsert_keyed(key, vector, metadata, payload);
        self.set_last_text(text)
    }

    fn set_last_text(&mut self, with: &str) -> &mut Self {
        if let Some(Op::Upsert { text, .. }) = self.ops.last_mut() {
            *text = Some(with.into());
        }
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, id: u64) -> &mut Self {
        self.ops.push(Op::Delete { id });
        self
    }

    /// Adds an upsert by string key (a store created with
    /// [`KeyKind::String`](crate::KeyKind)), with metadata and a payload, each optional:
    /// inserts the record or replaces the one with this key.
    pub fn upsert_keyed(
        &mut self,
        key: &str,
        vector: &[f32],
        metadata: Option<&Metadata>,
        payload: Option<&[u8]>,
    ) -> &mut Self {
        self.ops.push(Op::Upsert {
            id: 0,
            key: Some(key.into()),
            vector: vector.to_vec(),
            payload: payload.map(<[u8]>::to_vec),
            metadata: metadata.filter(|m| !m.is_empty()).cloned(),
            text: None,
        });
        self
    }

    /// Adds a delete by string key (a no-op when no record has it).
    pub fn delete_key(&mut self, key: &str) -> &mut Self {
        self.ops.push(Op::DeleteKey { key: key.into() });
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

/// Encodes operations as a WAL payload.
pub(crate) fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ops.iter().map(Op::encoded_len).sum());
    for op in ops {
        match op {
            Op::Upsert {
                id,
                key,
                vector,
                payload,
                metadata,
                text,
            } => {
                let op = match (text, key, metadata) {
                    (Some(_), ..) => OP_UPSERT_TEXT,
                    (None, Some(_), _) => OP_UPSERT_KEYED,
                    (None, None, Some(_)) => OP_UPSERT_META,
                    (None, None, None) => OP_UPSERT,
                };
                out.push(op);
                out.extend_from_slice(&id.to_le_bytes());
                if op == OP_UPSERT_TEXT {
                    let flag = |on: bool, f: u8| if on { f } else { 0 };
                    out.push(
                        flag(key.is_some(), FLAG_KEY)
                            | flag(payload.is_some(), FLAG_PAYLOAD)
                            | flag(metadata.is_some(), FLAG_METADATA)
                            | FLAG_TEXT,
                    );
                }
                if let Some(k) = key {
                    out.extend_from_slice(&(k.len() as u16).to_le_bytes());
                    out.extend_from_slice(k.as_bytes());
                }
                for x in vector {
                    out.extend_from_slice(&x.to_le_bytes());
                }
                if op != OP_UPSERT_TEXT {
                    out.push(payload.is_some() as u8);
                }
                if let Some(p) = payload {
                    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
                    out.extend_from_slice(p);
                }
                if op == OP_UPSERT_KEYED {
                    out.push(metadata.is_some() as u8);
                }
                if let Some(m) = metadata {
                    let m = m.encode();
                    out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                    out.extend_from_slice(&m);
                }
                if let Some(t) = text {
                    out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                    out.extend_from_slice(t.as_bytes());
                }
            }
            Op::Delete { id } => {
                out.push(OP_DELETE);
                out.extend_from_slice(&id.to_le_bytes());
            }
            // Bound to ids (`keys::bind`) before any batch is encoded; never logged.
            Op::DeleteKey { .. } => {}
        }
    }
    out
}

/// Decodes a WAL payload of `count` operations over vectors of `dim`.
pub(crate) fn decode(buf: &[u8], count: u32, dim: usize) -> Result<Vec<Op>, CorruptionKind> {
    let mut r = Cursor { buf, pos: 0 };
    let mut ops = Vec::with_capacity((count as usize).min(buf.len() / 9 + 1));
    for _ in 0..count {
        let op = r.u8()?;
        let id = u64::from_le_bytes(r.take::<8>()?);
        match op {
            OP_UPSERT | OP_UPSERT_META | OP_UPSERT_KEYED | OP_UPSERT_TEXT => {
                let flags = if op == OP_UPSERT_TEXT {
                    let f = r.u8()?;
                    if f & FLAG_TEXT == 0 || f > 15 {
                        return Err(CorruptionKind::Batch("operation flags"));
                    }
                    f
                } else {
                    0
                };
                let key = if op == OP_UPSERT_KEYED || flags & FLAG_KEY != 0 {
                    let len = u16::from_le_bytes(r.take::<2>()?) as usize;
                    let max = strata_format::segment::MAX_KEY_LEN;
                    let key = std::str::from_utf8(r.bytes(len)?)
                        .ok()
                        .filter(|k| (1..=max).contains(&k.len()))
                        .ok_or(CorruptionKind::Batch("string key"))?;
                    Some(Box::<str>::from(key))
                } else {
                    None
                };
                let raw = r.bytes(
                    dim.checked_mul(4)
                        .ok_or(CorruptionKind::Batch("dimension"))?,
                )?;
                let vector: Vec<f32> = raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                // Writers refuse non-finite values; a record holding them is damaged.
                if vector.iter().any(|x| !x.is_finite()) {
                    return Err(CorruptionKind::Batch("non-finite vector component"));
                }
                let has_payload = if op == OP_UPSERT_TEXT {
                    flags & FLAG_PAYLOAD != 0
                } else {
                    match r.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(CorruptionKind::Batch("payload flag")),
                    }
                };
                let payload = match has_payload {
                    false => None,
                    true => {
                        let len = u32::from_le_bytes(r.take::<4>()?) as usize;
                        if len > strata_format::segment::MAX_PAYLOAD_LEN {
                            return Err(CorruptionKind::Batch("payload over the size limit"));
                        }
                        Some(r.bytes(len)?.to_vec())
                    }
                };
                let has_metadata = match op {
                    OP_UPSERT_META => true,
                    OP_UPSERT_TEXT => flags & FLAG_METADATA != 0,
                    OP_UPSERT_KEYED => match r.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(CorruptionKind::Batch("metadata flag")),
                    },
                    _ => false,
                };
                let metadata = if has_metadata {
                    let len = u32::from_le_bytes(r.take::<4>()?) as usize;
                    if len > MAX_METADATA_LEN {
                        return Err(CorruptionKind::Batch("metadata over the size limit"));
                    }
                    let m = Metadata::decode(r.bytes(len)?, 0)
                        .map_err(|_| CorruptionKind::Batch("metadata encoding"))?;
                    if m.is_empty() {
                        return Err(CorruptionKind::Batch("empty metadata"));
                    }
                    Some(m)
                } else {
                    None
                };
                let text = if op == OP_UPSERT_TEXT {
                    let len = u32::from_le_bytes(r.take::<4>()?) as usize;
                    if len > strata_format::segment::MAX_TEXT_LEN {
                        return Err(CorruptionKind::Batch("text over the size limit"));
                    }
                    let t = std::str::from_utf8(r.bytes(len)?)
                        .map_err(|_| CorruptionKind::Batch("text encoding"))?;
                    Some(Box::<str>::from(t))
                } else {
                    None
                };
                ops.push(Op::Upsert {
                    id,
                    key,
                    vector,
                    payload,
                    metadata,
                    text,
                });
            }
            OP_DELETE => ops.push(Op::Delete { id }),
            _ => return Err(CorruptionKind::Batch("operation code")),
        }
    }
    if r.pos != buf.len() {
        return Err(CorruptionKind::Batch("trailing bytes"));
    }
    Ok(ops)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], CorruptionKind> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or(CorruptionKind::Batch("truncated"))?;
        self.pos += n;
        Ok(s)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CorruptionKind> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, CorruptionKind> {
        Ok(self.take::<1>()?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut b = WriteBatch::new();
        let m = Metadata::from_json_str(r#"{"k": "v", "n": [1, 2]}"#).unwrap();
        b.upsert(1, &[1.0, 2.0])
            .upsert_with_payload(2, &[3.0, 4.0], b"p")
            .upsert_record(3, &[5.0, 6.0], Some(&m), Some(b"q"))
            .upsert_record(4, &[7.0, 8.0], Some(&m), None)
            .upsert_keyed("ключ/1", &[9.0, 1.0], Some(&m), Some(b"r"))
            .upsert_keyed("k", &[9.0, 2.0], None, None)
            .upsert_text(5, &[1.5, 2.5], "some words", None, None)
            .upsert_text(6, &[1.5, 2.5], "", Some(&m), Some(b"s"))
            .upsert_keyed_text("k2", &[3.5, 2.5], "слова", Some(&m), None)
            .upsert_keyed_text("k3", &[3.5, 2.5], "w", None, Some(b"t"))
            .delete(9);
        let enc = encode(b.ops());
        assert_eq!(enc.len(), b.ops.iter().map(Op::encoded_len).sum::<usize>());
        assert_eq!(decode(&enc, 11, 2).unwrap(), b.ops);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut], 11, 2).is_err(), "cut {cut}");
        }
        assert!(
            decode(&enc, 10, 2).is_err(),
            "count mismatch leaves trailing bytes"
        );
    }

    #[test]
    fn encoded_len_is_the_encoding_length_of_every_op_kind() {
        let ops = [
            Op::Delete { id: 7 },
            Op::Upsert {
                id: 1,
                key: None,
                vector: vec![0.5; 13],
                payload: None,
                metadata: None,
                text: None,
            },
            Op::Upsert {
                id: 2,
                key: None,
                vector: vec![],
                payload: Some(vec![9; 1000]),
                metadata: Metadata::from_json_str(r#"{"a": {"b": 1.5}}"#).ok(),
                text: None,
            },
            Op::Upsert {
                id: 3,
                key: Some("a key".into()),
                vector: vec![1.0; 3],
                payload: None,
                metadata: Metadata::from_json_str(r#"{"a": 1}"#).ok(),
                text: None,
            },
            Op::Upsert {
                id: 4,
                key: Some("k".into()),
                vector: vec![1.0; 3],
                payload: Some(vec![1]),
                metadata: None,
                text: None,
            },
        ];
        let with_text = ops.iter().filter_map(|op| match op {
            Op::Upsert { .. } => {
                let mut op = op.clone();
                if let Op::Upsert { text, .. } = &mut op {
                    *text = Some("texte accentué".into());
                }
                Some(op)
            }
            _ => None,
        });
        let ops: Vec<Op> = ops.iter().cloned().chain(with_text).collect();
        for op in &ops {
            assert_eq!(
                encode(std::slice::from_ref(op)).len(),
                op.encoded_len(),
                "{op:?}"
            );
        }
    }
}
