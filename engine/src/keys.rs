//! String keys: what a store of [`KeyKind::String`] checks on each operation, and how a
//! batch's keys are bound to ids under the write lock before it is logged.
//!
//! Each live key is bound to one internal `u64` id. An upsert of a key that is live
//! reuses its id (so it replaces the record); a key that is not live gets the next unused
//! id ([`crate::inner::WriteState::next_id`]). A delete by key becomes a delete of its
//! id, or nothing when the key is not live. Ids are never derived from the key's bytes,
//! so two different keys can never share a row.

use std::collections::HashMap;

use crate::batch::Op;
use crate::error::{InvalidArgument, Result};
use crate::options::KeyKind;
use crate::version::Version;

/// Longest string key, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = strata_format::segment::MAX_KEY_LEN;

/// Refuses an operation whose kind of key is not the store's, and a key that is empty
/// or over [`MAX_KEY_LEN`].
pub(crate) fn check_op(op: &Op, store: KeyKind) -> std::result::Result<(), InvalidArgument> {
    match (store, op.key()) {
        (KeyKind::U64, Some(_)) => Err(kind_error(store)),
        (KeyKind::String, None) => Err(kind_error(store)),
        (KeyKind::String, Some(k)) => check_key(k),
        (KeyKind::U64, None) => Ok(()),
    }
}

/// Refuses a string key that is empty or over [`MAX_KEY_LEN`] bytes (what every call by
/// key checks; lets an importer refuse a whole input before writing any of it).
pub fn check_key(key: &str) -> std::result::Result<(), InvalidArgument> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(InvalidArgument::KeyLength {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// The error for a call by the other kind of key than `store`'s.
pub(crate) fn kind_error(store: KeyKind) -> InvalidArgument {
    match store {
        KeyKind::U64 => InvalidArgument::KeyKind {
            store: "u64",
            given: "string",
            hint: "id (`upsert`, `get`, `delete`)",
        },
        KeyKind::String => InvalidArgument::KeyKind {
            store: "string",
            given: "u64",
            hint: "key (`upsert_key`, `get_key`, `delete_key`)",
        },
    }
}

/// Binds the keys of `ops` to ids as of `v` (the current version, under the write lock):
/// operations in batch order, so a key upserted earlier in the batch keeps its id for
/// later operations of the same batch. Deletes of keys that are not live are dropped.
pub(crate) fn bind(v: &Version, next_id: &mut u64, ops: Vec<Op>) -> Result<Vec<Op>> {
    let mut bound: HashMap<Box<str>, u64> = HashMap::new();
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Upsert {
                key: Some(key),
                vector,
                payload,
                metadata,
                text,
                ..
            } => {
                let id = match id_of(v, &bound, &key)? {
                    Some(id) => id,
                    None => {
                        let id = *next_id;
                        *next_id = next_id.checked_add(1).ok_or_else(|| {
                            crate::Error::Internal("string-key ids are exhausted".into())
                        })?;
                        id
                    }
                };
                bound.insert(key.clone(), id);
                out.push(Op::Upsert {
                    id,
                    key: Some(key),
                    vector,
                    payload,
                    metadata,
                    text,
                });
            }
            Op::DeleteKey { key } => {
                if let Some(id) = id_of(v, &bound, &key)? {
                    bound.insert(key, id);
                    out.push(Op::Delete { id });
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The id `key` has: bound earlier in this batch, else live in `v`.
fn id_of(v: &Version, bound: &HashMap<Box<str>, u64>, key: &str) -> Result<Option<u64>> {
    match bound.get(key) {
        Some(&id) => Ok(Some(id)),
        None => crate::lookup::key_id(v, key),
    }
}

/// The id `key` is bound to in `v`, in a store of `store` keys (refused unless
/// strings); `None` when no live record has it.
pub(crate) fn live_id(v: &Version, store: KeyKind, key: &str) -> Result<Option<u64>> {
    if store != KeyKind::String {
        return Err(kind_error(store).into());
    }
    check_key(key)?;
    crate::lookup::key_id(v, key)
}

/// The record of `key` in `v`, in a store of `store` keys (refused unless strings).
pub(crate) fn record_by_key(
    v: &Version,
    store: KeyKind,
    key: &str,
) -> Result<Option<crate::Record>> {
    match live_id(v, store, key)? {
        Some(id) => crate::lookup::record(v, id),
        None => Ok(None),
    }
}
