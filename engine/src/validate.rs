//! The checks every write and query passes before anything changes: dimension, finite
//! components, the norm bound, payload and batch sizes, and cosine normalisation.

use strata_index::Metric;

use crate::batch::Op;
use crate::error::{InvalidArgument, Result, MAX_VECTOR_NORM};
use crate::options::KeyKind;

/// A query checked like a stored vector and normalised for cosine.
pub(crate) fn prepare_query(query: &[f32], dim: usize, metric: Metric) -> Result<Vec<f32>> {
    let mut q = query.to_vec();
    check_vector(&q, dim)?;
    if metric == Metric::Cosine && !strata_index::distance::normalize(&mut q) {
        return Err(InvalidArgument::ZeroVector.into());
    }
    Ok(q)
}

pub(crate) fn check_vector(v: &[f32], dim: usize) -> std::result::Result<(), InvalidArgument> {
    if v.len() != dim {
        return Err(InvalidArgument::DimensionMismatch {
            expected: dim,
            got: v.len(),
        });
    }
    // In f64 the sum of squares of finite f32 components cannot overflow, so the sum is
    // finite exactly when every component is. PERF: eight independent sums, one pass.
    let mut sums = [0f64; 8];
    let (chunks, rest) = v.as_chunks::<8>();
    for chunk in chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += f64::from(x) * f64::from(x);
        }
    }
    let squares = sums.iter().sum::<f64>()
        + rest
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>();
    if !squares.is_finite() {
        let index = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
        return Err(InvalidArgument::NonFinite { index });
    }
    let norm = squares.sqrt();
    if norm > MAX_VECTOR_NORM {
        return Err(InvalidArgument::NormTooLarge {
            norm,
            max: MAX_VECTOR_NORM,
        });
    }
    Ok(())
}

/// Checks one upsert (and normalises its vector for cosine).
pub(crate) fn check_upsert(
    vector: &mut [f32],
    payload: Option<&[u8]>,
    dim: usize,
    metric: Metric,
) -> std::result::Result<(), InvalidArgument> {
    check_vector(vector, dim)?;
    let max = strata_format::segment::MAX_PAYLOAD_LEN;
    if let Some(p) = payload.filter(|p| p.len() > max) {
        return Err(InvalidArgument::PayloadTooLarge { len: p.len(), max });
    }
    if metric == Metric::Cosine && !strata_index::distance::normalize(vector) {
        return Err(InvalidArgument::ZeroVector);
    }
    Ok(())
}

/// Checks a record's metadata against the size limit of its encoding.
pub(crate) fn check_metadata(
    metadata: Option<&strata_format::metadata::Metadata>,
) -> std::result::Result<(), InvalidArgument> {
    let max = strata_format::metadata::MAX_METADATA_LEN;
    match metadata.map(|m| m.encoded_len()) {
        Some(len) if len > max => Err(InvalidArgument::Metadata {
            path: String::new(),
            expected: format!("at most {max} bytes encoded, not {len}"),
        }),
        _ => Ok(()),
    }
}

/// Checks a record's text against the size limit.
pub(crate) fn check_text(text: Option<&str>) -> std::result::Result<(), InvalidArgument> {
    let max = strata_format::segment::MAX_TEXT_LEN;
    match text.map(str::len) {
        Some(len) if len > max => Err(InvalidArgument::TextTooLarge { len, max }),
        _ => Ok(()),
    }
}

/// Validates a batch (and normalises vectors for cosine) before anything is written:
/// each operation's kind of key against the store's `keys`, then each upsert. A refused
/// operation is named by its position and id or key ([`InvalidArgument::InBatch`]).
pub(crate) fn prepare(ops: &mut [Op], dim: usize, metric: Metric, keys: KeyKind) -> Result<()> {
    for (index, op) in ops.iter_mut().enumerate() {
        let refuse = |op: &Op, reason| InvalidArgument::InBatch {
            index,
            id: op.id(),
            key: op.key().map(str::to_owned),
            reason: Box::new(reason),
        };
        crate::keys::check_op(op, keys).map_err(|r| refuse(op, r))?;
        if let Op::Upsert {
            vector,
            payload,
            metadata,
            text,
            ..
        } = op
        {
            let checked = check_upsert(vector, payload.as_deref(), dim, metric)
                .and_then(|()| check_metadata(metadata.as_ref()))
                .and_then(|()| check_text(text.as_deref()));
            checked.map_err(|r| refuse(op, r))?;
        }
    }
    // The log's own limit on the batch's own encoding: the log then never refuses it.
    let bytes: usize = ops.iter().map(Op::encoded_len).sum();
    let max_batch = strata_wal::record::MAX_RECORD_LEN;
    if bytes > max_batch {
        return Err(InvalidArgument::BatchTooLarge {
            bytes,
            max: max_batch,
        }
        .into());
    }
    Ok(())
}
