//! A seeded workload of batches, flushes and compactions, the history of states it
//! passes through, and the check of a reopened store against that history.
//!
//! The model names records by `u64` ids `0..KEYS`. A store of string keys
//! ([`options_for_seed`] with an odd seed) stores model id `i` under the key
//! [`key_of`]`(i)`; every write and read here goes by the store's kind of key.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use strata::vfs::Vfs;
use strata::{
    Db, Durability, HnswParams, IndexOptions, KeyKind, Metadata, Metric, Options, SearchOptions,
    WriteBatch,
};

/// Vector dimension of every workload store.
pub const DIM: usize = 4;
/// Ids are drawn from `0..KEYS`.
pub const KEYS: u64 = 48;

/// One write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Insert or replace.
    Upsert {
        /// Id.
        id: u64,
        /// Vector.
        vector: Vec<f32>,
        /// Payload.
        payload: Option<Vec<u8>>,
        /// Metadata.
        metadata: Option<Metadata>,
        /// Text.
        text: Option<String>,
    },
    /// Delete.
    Delete(u64),
}

/// One step of a workload.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An atomic batch.
    Batch(Vec<Write>),
    /// `Db::flush`.
    Flush,
    /// `Db::compact` (full when true).
    Compact(bool),
    /// `Db::delete_by_filter`: every live record passing the filter, atomically.
    DeleteWhere(strata::Filter),
}

/// One stored record as the model sees it: vector, payload, metadata, text.
pub type Stored = (Vec<f32>, Option<Vec<u8>>, Option<Metadata>, Option<String>);

/// What the store holds: id → its record.
pub type State = BTreeMap<u64, Stored>;

/// A record read back, as the model holds it.
pub fn stored(r: strata::Record) -> Stored {
    (r.vector, r.payload, r.metadata, r.text)
}

/// The text the workload writes for `id` at step `i` (on some upserts): words of a
/// small vocabulary ([`TEXT_QUERY`] asks for some), repeated unevenly.
pub fn text_for(i: usize, id: u64) -> String {
    let w = |n: u64| ["alpha", "Béta", "gamma", "delta", "epsilon", "zeta", "ключ"][n as usize % 7];
    format!(
        "note {id} {} {} {} step {i}",
        w(id),
        w(id + i as u64),
        w(id * 3).repeat(1 + id as usize % 2)
    )
}

/// A text query over the workload's texts (common and rare words).
pub const TEXT_QUERY: &str = "beta zeta ключ note 7";

/// The metadata the workload writes for `id` at step `i` (on some upserts).
pub fn metadata_for(i: usize, id: u64) -> Metadata {
    let text = format!(
        r#"{{"step": {i}, "tags": ["t{}", {}], "o": {{"even": {}}}}}"#,
        id % 3,
        id,
        id.is_multiple_of(2)
    );
    Metadata::from_json_str(&text).unwrap_or_default()
}

/// `steps` seeded steps: mostly batches of 1-4 writes, some flushes and compactions.
pub fn steps(seed: u64, steps: usize) -> Vec<Step> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..steps)
        .map(|i| match r.random_range(0..100) {
            0..=7 => Step::Flush,
            8..=12 => Step::Compact(r.random_bool(0.3)),
            13..=15 => {
                // Older records of one tag class: some match, most do not.
                let text = format!(
                    r#"{{"tags": {{"$contains": "t{}"}}, "step": {{"$lt": {}}}}}"#,
                    r.random_range(0..3),
                    i.saturating_sub(r.random_range(5..40))
                );
                let f = strata::Filter::from_json_str(&text);
                Step::DeleteWhere(f.unwrap_or_else(|_| strata::Filter::eq("never", true)))
            }
            _ => {
                let n = r.random_range(1..=4);
                Step::Batch(
                    (0..n)
                        .map(|_| {
                            let id = r.random_range(0..KEYS);
                            if r.random_bool(0.25) {
                                Write::Delete(id)
                            } else {
                                // Multiples of 1/1024 in (-1, 1): exact in every lossless
                                // codec (an `f16` store keeps them bit for bit).
                                let vector = (0..DIM)
                                    .map(|_| r.random_range(-1023i32..1024) as f32 / 1024.0)
                                    .collect();
                                let payload = r
                                    .random_bool(0.7)
                                    .then(|| format!("step {i} id {id}").into_bytes());
                                let metadata = r.random_bool(0.5).then(|| metadata_for(i, id));
                                let text = r.random_bool(0.5).then(|| text_for(i, id));
                                Write::Upsert {
                                    id,
                                    vector,
                                    payload,
                                    metadata,
                                    text,
                                }
                            }
                        })
                        .collect(),
                )
            }
        })
        .collect()
}

/// `states[i]`: what the store holds after the first `i` steps.
pub fn history(steps: &[Step]) -> Vec<State> {
    let mut out = vec![State::new()];
    let mut s = State::new();
    for step in steps {
        match step {
            Step::Batch(ws) => apply(&mut s, ws),
            Step::DeleteWhere(f) => {
                let empty = Metadata::new();
                s.retain(|_, (_, _, m, _)| !f.matches(m.as_ref().unwrap_or(&empty)));
            }
            _ => {}
        }
        out.push(s.clone());
    }
    out
}

/// Applies a batch to a state.
pub fn apply(s: &mut State, ws: &[Write]) {
    for w in ws {
        match w {
            Write::Upsert {
                id,
                vector,
                payload,
                metadata,
                text,
            } => {
                let stored = (
                    vector.clone(),
                    payload.clone(),
                    metadata.clone(),
                    text.clone(),
                );
                s.insert(*id, stored);
            }
            Write::Delete(id) => {
                s.remove(id);
            }
        }
    }
}

/// The string key model id `id` has in a store of string keys: keys of many lengths
/// (up to the 512-byte limit), ASCII and not, some a prefix of another.
pub fn key_of(id: u64) -> String {
    match id % 4 {
        0 => format!("k{id}"),
        1 => format!("k{id}/ключ-{}", "é".repeat(id as usize % 9)),
        2 => format!("k{id}{}", "x".repeat(512 - 1 - id.to_string().len())),
        _ => format!("user:{id}:memory"),
    }
}

/// The model id of string key `key` (`None` for a key the workload never writes).
pub fn id_of_key(key: &str) -> Option<u64> {
    (0..KEYS).find(|&id| key_of(id) == key)
}

/// The model id of a search hit: its id, or in a store of string keys its key's
/// (`None` for a hit that is not of its store's kind or a key the workload never writes).
pub fn hit_model_id(keys: KeyKind, h: &strata::Hit) -> Option<u64> {
    match (keys, h.key.as_deref()) {
        (KeyKind::U64, None) => Some(h.id),
        (KeyKind::String, Some(k)) => id_of_key(k),
        _ => None,
    }
}

/// The record of model id `id`, read by the store's kind of key; a record whose key is
/// not the one asked for is an error.
pub fn get_model(db: &Db, id: u64) -> strata::Result<Option<strata::Record>> {
    match db.keys() {
        KeyKind::U64 => db.get(id),
        _ => {
            let key = key_of(id);
            let r = db.get_key(&key)?;
            match &r {
                Some(rec) if rec.key.as_deref() != Some(key.as_str()) => {
                    Err(strata::Error::Internal(format!(
                        "get_key({key:?}) returned the record of {:?}",
                        rec.key
                    )))
                }
                _ => Ok(r),
            }
        }
    }
}

/// The batch of a list of writes, by `u64` id.
pub fn batch(ws: &[Write]) -> WriteBatch {
    batch_for(KeyKind::U64, ws)
}

/// The batch of a list of writes for a store of `keys`.
pub fn batch_for(keys: KeyKind, ws: &[Write]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for w in ws {
        match (w, keys) {
            (
                Write::Upsert {
                    id,
                    vector,
                    payload,
                    metadata,
                    text,
                },
                KeyKind::U64,
            ) => {
                let (m, p) = (metadata.as_ref(), payload.as_deref());
                match text {
                    Some(t) => b.upsert_text(*id, vector, t, m, p),
                    None => b.upsert_record(*id, vector, m, p),
                };
            }
            (
                Write::Upsert {
                    id,
                    vector,
                    payload,
                    metadata,
                    text,
                },
                _,
            ) => {
                let (m, p) = (metadata.as_ref(), payload.as_deref());
                match text {
                    Some(t) => b.upsert_keyed_text(&key_of(*id), vector, t, m, p),
                    None => b.upsert_keyed(&key_of(*id), vector, m, p),
                };
            }
            (Write::Delete(id), KeyKind::U64) => {
                b.delete(*id);
            }
            (Write::Delete(id), _) => {
                b.delete_key(&key_of(*id));
            }
        }
    }
    b
}

/// Runs one step.
pub fn run_step(db: &Db, step: &Step) -> strata::Result<()> {
    match step {
        Step::Batch(ws) => db.write(batch_for(db.keys(), ws)),
        Step::Flush => db.flush(),
        Step::Compact(full) => db.compact(*full, &|_, _, _| true).map(|_| ()),
        Step::DeleteWhere(f) => db.delete_by_filter(f).map(|_| ()),
    }
}

/// Options of every workload store: tiny memtables (a flush every few dozen rows), an
/// index on segments of 8 rows or more, no background compaction (the workload compacts),
/// all I/O through `vfs`.
pub fn options(sync: Durability, vfs: Arc<dyn Vfs>) -> Options {
    settings(Options::new(DIM, Metric::L2), sync, vfs)
}

/// [`options`] for the store of workload `seed`: odd seeds make a store of string keys
/// whose segments keep `f16` vectors.
pub fn options_for_seed(seed: u64, sync: Durability, vfs: Arc<dyn Vfs>) -> Options {
    // Odd seeds: string keys and `f16` vectors (so every suite's two seeds per round
    // cover both kinds of key and both lossless codecs).
    let (keys, codec) = if seed % 2 == 1 {
        (KeyKind::String, strata::VectorCodec::F16)
    } else {
        (KeyKind::U64, strata::VectorCodec::F32)
    };
    options(sync, vfs).keys(keys).vector_codec(codec)
}

/// [`options`] that open an existing workload store of either kind of key.
pub fn reopen_options(sync: Durability, vfs: Arc<dyn Vfs>) -> Options {
    settings(Options::existing(), sync, vfs)
}

fn settings(o: Options, sync: Durability, vfs: Arc<dyn Vfs>) -> Options {
    o.durability(sync)
        .memtable_bytes(2 * 1024)
        .vfs(vfs)
        .index(small_index(8, 16))
        .background_compaction(false)
        // No background thread doing I/O: a seed's fault and crash points repeat.
        .background_calibration(false)
        .search_threads(Some(1))
}

/// Index options for test stores: an index on every segment of `min_rows` rows or more,
/// built with a beam of `ef_construction` (small values keep builds fast), with PQ codes
/// and its level 0 Rice-coded whenever that is smaller, as in large stores (the defaults
/// walk segments this small on their `f32` rows and keep their level 0 packed, which the
/// stores built with default options check).
pub fn small_index(min_rows: usize, ef_construction: usize) -> IndexOptions {
    IndexOptions {
        min_rows: Some(min_rows),
        hnsw: HnswParams {
            ef_construction,
            ..HnswParams::default()
        },
        rice_from_bytes: 0,
        pq_from_bytes: 0,
        ..IndexOptions::default()
    }
}

/// Everything a store holds, read two ways (an exact search over all rows, and `get` of
/// every possible id) that must agree.
pub fn read_state(db: &Db) -> Result<State, String> {
    let hits = db
        .search(&[0.0; DIM], &SearchOptions::exact(10 * KEYS as usize))
        .map_err(|e| format!("search: {e}"))?;
    let mut s = State::new();
    for id in 0..KEYS {
        if let Some(r) = get_model(db, id).map_err(|e| format!("get {id}: {e}"))? {
            s.insert(id, stored(r));
        }
    }
    let mut found = Vec::with_capacity(hits.len());
    for h in &hits {
        found.push(
            hit_model_id(db.keys(), h)
                .ok_or_else(|| format!("hit {} has key {:?}", h.id, h.key))?,
        );
    }
    found.sort_unstable();
    let listed: Vec<u64> = s.keys().copied().collect();
    if found != listed {
        return Err(format!(
            "search lists ids {found:?} but get finds {listed:?}"
        ));
    }
    check_text_search(db, &s).map_err(|e| format!("text search: {e}"))?;
    Ok(s)
}

/// Whether [`TEXT_QUERY`]'s text search agrees with exhaustive BM25 over the texts of
/// `s` (what `get` read back): `Ok(Err(difference))` when it does not.
pub fn text_search_agrees(db: &Db, s: &State) -> strata::Result<Result<(), String>> {
    let k = 10 * KEYS as usize;
    let hits = db.text_search(TEXT_QUERY, &SearchOptions::new(k))?;
    let mut got = Vec::with_capacity(hits.len());
    for h in &hits {
        match hit_model_id(db.keys(), h) {
            Some(id) => got.push((id, -h.distance)),
            None => return Ok(Err(format!("hit {} has key {:?}", h.id, h.key))),
        }
    }
    let docs = s
        .iter()
        .filter_map(|(id, (_, _, _, t))| t.as_deref().map(|t| (*id, t)));
    let want = crate::text::bm25_top(docs, db.analyzer(), TEXT_QUERY, k, |_| true);
    Ok(crate::text::same_ranking(&got, &want))
}

fn check_text_search(db: &Db, s: &State) -> Result<(), String> {
    text_search_agrees(db, s).map_err(|e| e.to_string())?
}

/// The largest `j` in `range` with `states[j] == s`.
pub fn matching(
    states: &[State],
    s: &State,
    range: std::ops::RangeInclusive<usize>,
) -> Option<usize> {
    range.rev().find(|&j| states.get(j) == Some(s))
}

/// A short description of how `got` differs from `want`, for failure messages.
pub fn diff(want: &State, got: &State) -> String {
    let mut out = Vec::new();
    for (id, v) in want {
        match got.get(id) {
            None => out.push(format!("id {id} missing")),
            Some(g) if g != v => out.push(format!("id {id} has other bytes")),
            _ => {}
        }
    }
    for id in got.keys().filter(|id| !want.contains_key(id)) {
        out.push(format!("id {id} should not exist"));
    }
    out.truncate(6);
    out.join(", ")
}

/// Checks a store after a crash: `verify` passes on it as found, it opens, it holds
/// `states[j]` for some `j` in `accept` (the largest such `j` is returned), and after a
/// clean close `verify` finds no orphan file and no torn tail. A store whose manifest
/// was never written must be acceptable as empty.
pub fn check_recovered(
    fs: Arc<dyn Vfs>,
    dir: &std::path::Path,
    states: &[State],
    accept: &[usize],
) -> Result<usize, String> {
    let empty_ok = || {
        accept
            .iter()
            .rev()
            .copied()
            .find(|&j| states.get(j).is_some_and(|s| s.is_empty()))
    };
    let manifest = dir.join("MANIFEST");
    if !fs.exists(&manifest).map_err(|e| e.to_string())? {
        return empty_ok().ok_or_else(|| "no manifest, but acknowledged writes".to_string());
    }
    strata::verify_with(fs.clone(), dir).map_err(|e| format!("verify after the crash: {e}"))?;
    let db = Db::open(dir, reopen_options(Durability::Always, fs.clone()))
        .map_err(|e| format!("open after the crash: {e}"))?;
    let got = read_state(&db)?;
    let found = accept
        .iter()
        .rev()
        .copied()
        .find(|&j| states.get(j) == Some(&got));
    let Some(j) = found else {
        let want = accept
            .last()
            .and_then(|&j| states.get(j))
            .cloned()
            .unwrap_or_default();
        let elsewhere: Vec<usize> = (0..states.len())
            .filter(|&j| states.get(j) == Some(&got))
            .collect();
        return Err(format!(
            "state after the crash is none of steps {accept:?} (it is that of steps \
             {elsewhere:?}): vs step {:?}: {}",
            accept.last(),
            diff(&want, &got)
        ));
    };
    db.close()
        .map_err(|e| format!("close after recovery: {e}"))?;
    let rep = strata::verify_with(fs, dir).map_err(|e| format!("verify after recovery: {e}"))?;
    if !rep.orphans.is_empty() || rep.torn_tail.is_some() {
        return Err(format!(
            "after a clean open and close: orphans {:?}, torn tail {:?}",
            rep.orphans, rep.torn_tail
        ));
    }
    Ok(j)
}
