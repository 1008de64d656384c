//! Write batches and their WAL encoding.
//!
//! A batch is one WAL record (kind [`BATCH_RECORD`]) holding its operations in order:
//! `op u8` (1 upsert, 2 delete, 3 upsert with metadata) · `id u64` · for upserts
//! `dim × f32` · payload flag `u8` (0 none, 1 present) · if present `len u32` and the
//! bytes · for op 3, `len u32` and the metadata's canonical encoding. All little-endian.

use strata_format::metadata::{Metadata, MAX_METADATA_LEN};

use crate::error::CorruptionKind;

/// WAL record kind of a write batch.
pub const BATCH_RECORD: u8 = 1;
const OP_UPSERT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_UPSERT_META: u8 = 3;

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert or replace `id`.
    Upsert {
        /// Record id.
        id: u64,
        /// The vector.
        vector: Vec<f32>,
        /// Optional payload bytes.
        payload: Option<Vec<u8>>,
        /// Optional metadata (what filters test).
        metadata: Option<Metadata>,
    },
    /// Remove `id` (a no-op if absent).
    Delete {
        /// Record id.
        id: u64,
    },
}

impl Op {
    /// The bytes the caller handed in: id, vector components and payload of an upsert,
    /// the id of a delete (the base of the write-amplification figure).
    pub fn user_bytes(&self) -> u64 {
        match self {
            Op::Upsert {
                vector,
                payload,
                metadata,
                ..
            } => {
                8 + 4 * vector.len() as u64
                    + payload.as_ref().map_or(0, |p| p.len() as u64)
                    + metadata.as_ref().map_or(0, |m| m.encoded_len() as u64)
            }
            Op::Delete { .. } => 8,
        }
    }

    /// Bytes of this operation in the WAL encoding ([`encode`]).
    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            Op::Upsert {
                vector,
                payload,
                metadata,
                ..
            } => {
                1 + 8
                    + 4 * vector.len()
                    + 1
                    + payload.as_ref().map_or(0, |p| 4 + p.len())
                    + metadata.as_ref().map_or(0, |m| 4 + m.encoded_len())
            }
            Op::Delete { .. } => 1 + 8,
        }
    }

    /// The id the operation touches.
    pub fn id(&self) -> u64 {
        match self {
            Op::Upsert { id, .. } | Op::Delete { id } => *id,
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
            vector: vector.to_vec(),
            payload: payload.map(<[u8]>::to_vec),
            metadata: metadata.filter(|m| !m.is_empty()).cloned(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, id: u64) -> &mut Self {
        self.ops.push(Op::Delete { id });
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
                vector,
                payload,
                metadata,
            } => {
                out.push(if metadata.is_some() {
                    OP_UPSERT_META
                } else {
                    OP_UPSERT
                });
                out.extend_from_slice(&id.to_le_bytes());
                for x in vector {
                    out.extend_from_slice(&x.to_le_bytes());
                }
                match payload {
                    None => out.push(0),
                    Some(p) => {
                        out.push(1);
                        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
                        out.extend_from_slice(p);
                    }
                }
                if let Some(m) = metadata {
                    let m = m.encode();
                    out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                    out.extend_from_slice(&m);
                }
            }
            Op::Delete { id } => {
                out.push(OP_DELETE);
                out.extend_from_slice(&id.to_le_bytes());
            }
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
            OP_UPSERT | OP_UPSERT_META => {
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
                let payload = match r.u8()? {
                    0 => None,
                    1 => {
                        let len = u32::from_le_bytes(r.take::<4>()?) as usize;
                        if len > strata_format::segment::MAX_PAYLOAD_LEN {
                            return Err(CorruptionKind::Batch("payload over the size limit"));
                        }
                        Some(r.bytes(len)?.to_vec())
                    }
                    _ => return Err(CorruptionKind::Batch("payload flag")),
                };
                let metadata = if op == OP_UPSERT_META {
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
                ops.push(Op::Upsert {
                    id,
                    vector,
                    payload,
                    metadata,
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
            .delete(9);
        let enc = encode(b.ops());
        assert_eq!(enc.len(), b.ops.iter().map(Op::encoded_len).sum::<usize>());
        assert_eq!(decode(&enc, 5, 2).unwrap(), b.ops);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut], 5, 2).is_err(), "cut {cut}");
        }
        assert!(
            decode(&enc, 4, 2).is_err(),
            "count mismatch leaves trailing bytes"
        );
    }

    #[test]
    fn encoded_len_is_the_encoding_length_of_every_op_kind() {
        let ops = [
            Op::Delete { id: 7 },
            Op::Upsert {
                id: 1,
                vector: vec![0.5; 13],
                payload: None,
                metadata: None,
            },
            Op::Upsert {
                id: 2,
                vector: vec![],
                payload: Some(vec![9; 1000]),
                metadata: Metadata::from_json_str(r#"{"a": {"b": 1.5}}"#).ok(),
            },
        ];
        for op in &ops {
            assert_eq!(
                encode(std::slice::from_ref(op)).len(),
                op.encoded_len(),
                "{op:?}"
            );
        }
    }
}
