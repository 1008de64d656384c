//! `strata._strata`: the native module behind the `strata` Python package
//! (`python/src/strata/__init__.py` is the Python-facing API over it).
//!
//! Every call that reads or writes the store runs with the GIL released, so a store is
//! usable from several Python threads at once. Errors become the exception classes of
//! `strata.errors`, chosen by what went wrong.

mod remote;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};

/// The exception class of `strata.errors` named `name`, raised with `message`.
fn raise(py: Python<'_>, name: &str, message: String) -> PyErr {
    let class = py
        .import("strata.errors")
        .and_then(|m| m.getattr(name))
        .and_then(|c| c.downcast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(c) => PyErr::from_type(c, message),
        Err(e) => e,
    }
}

/// A store error as the `strata.errors` class that says what went wrong, its message
/// followed by its causes.
fn error(e: strata::Error) -> PyErr {
    use strata::Error as E;
    let name = match &e {
        E::InvalidArgument(_) => "InvalidArgument",
        E::Corruption { .. } => "Corruption",
        E::Locked { .. } | E::AlreadyOpen { .. } => "Locked",
        E::NotFound { .. } => "NotFound",
        E::Io { .. } => "IoError",
        E::Closed => "Closed",
        E::Poisoned { .. } => "Poisoned",
        _ => "StrataError",
    };
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    Python::attach(|py| raise(py, name, message))
}

fn invalid(message: impl Into<String>) -> PyErr {
    Python::attach(|py| raise(py, "InvalidArgument", message.into()))
}

/// A record's key from Python: an int in a store of `u64` ids, a str in one of strings.
enum Key {
    Id(u64),
    Name(String),
}

/// The native store: `strata.Store` wraps it.
#[pyclass(name = "NativeStore", module = "strata._strata", frozen)]
struct NativeStore {
    db: RwLock<Option<Arc<strata::Db>>>,
}

impl NativeStore {
    /// The open store (`Closed` after `close`).
    fn db(&self) -> PyResult<Arc<strata::Db>> {
        self.db
            .read()
            .map_err(|_| invalid("the store's lock is poisoned"))?
            .clone()
            .ok_or_else(|| error(strata::Error::Closed))
    }

    fn parse_key(&self, db: &strata::Db, k: &Bound<'_, PyAny>) -> PyResult<Key> {
        match db.keys() {
            strata::KeyKind::U64 => {
                let id: i64 = k.extract().map_err(|_| {
                    invalid(format!(
                        "keys of this store are ints from 0 to 2^63-1, not {k}"
                    ))
                })?;
                u64::try_from(id)
                    .map(Key::Id)
                    .map_err(|_| invalid(format!("keys are ints from 0 to 2^63-1, not {id}")))
            }
            _ => k
                .extract::<String>()
                .map(Key::Name)
                .map_err(|_| invalid(format!("keys of this store are strings, not {k}"))),
        }
    }

    fn parse_keys(&self, db: &strata::Db, keys: &Bound<'_, PyAny>) -> PyResult<Vec<Key>> {
        keys.try_iter()?
            .map(|k| self.parse_key(db, &k?))
            .collect::<PyResult<Vec<_>>>()
    }
}

/// Refuses vectors of the wrong width and per-row lists of another length than `rows`.
fn check_shapes<T, U, V>(
    db: &strata::Db,
    vectors: &PyReadonlyArray2<'_, f32>,
    keys: usize,
    metadata: &Option<Vec<T>>,
    texts: &Option<Vec<U>>,
    payloads: &Option<Vec<V>>,
) -> PyResult<()> {
    let (rows, dim) = vectors.as_array().dim();
    if dim != db.dim() {
        return Err(invalid(format!(
            "vectors of shape ({rows}, {dim}); this store holds {} dimensions",
            db.dim()
        )));
    }
    for (what, n) in [
        ("keys", Some(keys)),
        ("metadata", metadata.as_ref().map(Vec::len)),
        ("texts", texts.as_ref().map(Vec::len)),
        ("payloads", payloads.as_ref().map(Vec::len)),
    ] {
        if let Some(n) = n.filter(|&n| n != rows) {
            return Err(invalid(format!("{n} {what} for {rows} vectors")));
        }
    }
    Ok(())
}

/// A hit's key as Python sees it.
fn hit_key(py: Python<'_>, h: &strata::Hit) -> PyResult<Py<PyAny>> {
    Ok(match &h.key {
        Some(k) => k.into_pyobject(py)?.into_any().unbind(),
        None => (h.id as i64).into_pyobject(py)?.into_any().unbind(),
    })
}

/// A record as a dict: key, vector, metadata (JSON text), text, payload.
fn record<'py>(py: Python<'py>, r: strata::Record) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    match r.key {
        Some(k) => d.set_item("key", k)?,
        None => d.set_item("key", r.id as i64)?,
    }
    d.set_item("vector", r.vector.into_pyarray(py))?;
    d.set_item("metadata", r.metadata.map(|m| m.to_json().to_string()))?;
    d.set_item("text", r.text)?;
    d.set_item(
        "payload",
        r.payload.map(|p| pyo3::types::PyBytes::new(py, &p)),
    )?;
    Ok(d)
}

fn filter(json: Option<&str>) -> PyResult<Option<strata::Filter>> {
    json.map(|f| strata::Filter::from_json_str(f).map_err(|e| error(e.into())))
        .transpose()
}

fn search_options(
    k: usize,
    filter_json: Option<&str>,
    ef: Option<usize>,
    rerank: Option<usize>,
    exact: bool,
    target_recall: Option<f64>,
) -> PyResult<strata::SearchOptions> {
    let mut o = if exact {
        strata::SearchOptions::exact(k)
    } else {
        strata::SearchOptions::new(k)
    };
    o.ef = ef;
    o.rerank = rerank;
    if target_recall.is_some() {
        o.target_recall = target_recall;
    }
    o.filter = filter(filter_json)?;
    Ok(o)
}

/// A segment's calibration as a dict: segment, rows, source ("rows" or "queries"),
/// queries, default_ef, recall_at (a list of (ef, recall)).
fn calibration_dict<'py>(
    py: Python<'py>,
    c: &strata::SegmentCalibration,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("segment", c.segment)?;
    d.set_item("rows", c.rows)?;
    let source = match c.source {
        strata::CalibrationSource::Rows => "rows",
        strata::CalibrationSource::Queries => "queries",
    };
    d.set_item("source", source)?;
    d.set_item("queries", c.queries)?;
    d.set_item("default_ef", c.default_ef)?;
    d.set_item("recall_at", c.recall_at.clone())?;
    Ok(d)
}

/// The rows of a query matrix, owned (they are searched with the GIL released).
fn query_rows(queries: &PyReadonlyArray2<'_, f32>) -> Vec<Vec<f32>> {
    let a = queries.as_array();
    a.rows().into_iter().map(|r| r.to_vec()).collect()
}

/// Hits as (keys, distances): keys a list, distances a float32 array.
fn hit_arrays(py: Python<'_>, hits: &[strata::Hit]) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    let keys = PyList::empty(py);
    for h in hits {
        keys.append(hit_key(py, h)?)?;
    }
    let d: Vec<f32> = hits.iter().map(|h| h.distance).collect();
    Ok((
        keys.into_any().unbind(),
        d.into_pyarray(py).into_any().unbind(),
    ))
}

#[pymethods]
impl NativeStore {
    /// Opens (or, with `dim`, creates) the store in `path`.
    #[new]
    #[pyo3(signature = (path, dim=None, metric="cosine", keys="u64", analyzer=None, vector_codec=None, durability="always", memtable_mb=None, memtable_index=true, recall_sample=None, recall_seed=0, recall_adapt=false, remote=None, remote_options=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        py: Python<'_>,
        path: PathBuf,
        dim: Option<usize>,
        metric: &str,
        keys: &str,
        analyzer: Option<&str>,
        vector_codec: Option<&str>,
        durability: &str,
        memtable_mb: Option<usize>,
        memtable_index: bool,
        recall_sample: Option<f64>,
        recall_seed: u64,
        recall_adapt: bool,
        remote: Option<&str>,
        remote_options: Option<Vec<(String, String)>>,
    ) -> PyResult<Self> {
        let mut o = match dim {
            None => strata::Options::existing(),
            Some(dim) => {
                let metric = match metric {
                    "cosine" => strata::Metric::Cosine,
                    "l2" => strata::Metric::L2,
                    "ip" | "dot" => strata::Metric::InnerProduct,
                    m => return Err(invalid(format!("metric {m:?}: cosine, l2 or ip"))),
                };
                let keys = match keys {
                    "u64" | "int" => strata::KeyKind::U64,
                    "string" | "str" => strata::KeyKind::String,
                    k => return Err(invalid(format!("keys {k:?}: u64 or string"))),
                };
                strata::Options::new(dim, metric).keys(keys)
            }
        };
        if let Some(a) = analyzer {
            let a = strata::Analyzer::from_name(a)
                .ok_or_else(|| invalid(format!("analyzer {a:?}: default, english or cjk")))?;
            o = o.analyzer(a);
        }
        if let Some(c) = vector_codec {
            let c = strata::VectorCodec::from_name(c)
                .ok_or_else(|| invalid(format!("vector codec {c:?}: f32, f16 or int8")))?;
            o = o.vector_codec(c);
        }
        o = o.durability(match durability {
            "always" => strata::Durability::Always,
            "periodic" => strata::Durability::Periodic(std::time::Duration::from_millis(100)),
            "never" => strata::Durability::Never,
            "bucket" => strata::Durability::Bucket,
            d => {
                return Err(invalid(format!(
                    "durability {d:?}: always, periodic, never or bucket"
                )))
            }
        });
        if let Some(url) = remote {
            o = o.remote(remote::config(url, remote_options));
        }
        if let Some(mb) = memtable_mb {
            if mb == 0 {
                return Err(invalid("memtable_mb must be at least 1".to_string()));
            }
            o = o.memtable_bytes(mb.saturating_mul(1 << 20));
        }
        let mut index = o.index_options();
        index.memtable_graph = memtable_index;
        o = o.index(index);
        if let Some(fraction) = recall_sample {
            o = o.recall_sampling(strata::RecallSampling {
                seed: recall_seed,
                adapt: recall_adapt,
                ..strata::RecallSampling::new(fraction)
            });
        }
        let db = py.detach(|| strata::Db::open(&path, o)).map_err(error)?;
        Ok(NativeStore {
            db: RwLock::new(Some(Arc::new(db))),
        })
    }

    /// The vector dimension.
    #[getter]
    fn dim(&self) -> PyResult<usize> {
        Ok(self.db()?.dim())
    }

    /// The metric: cosine, l2 or ip.
    #[getter]
    fn metric(&self) -> PyResult<&'static str> {
        Ok(match self.db()?.metric() {
            strata::Metric::Cosine => "cosine",
            strata::Metric::L2 => "l2",
            strata::Metric::InnerProduct => "ip",
        })
    }

    /// What identifies records: u64 or string.
    #[getter]
    fn keys(&self) -> PyResult<&'static str> {
        Ok(match self.db()?.keys() {
            strata::KeyKind::String => "string",
            _ => "u64",
        })
    }

    /// Upserts rows: `keys[i]` gets row `i` of `vectors` with the i-th metadata (JSON
    /// text), text and payload when given. Written in atomic batches of up to 1,024 rows.
    #[pyo3(signature = (keys, vectors, metadata=None, texts=None, payloads=None))]
    fn upsert(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        vectors: PyReadonlyArray2<'_, f32>,
        metadata: Option<Vec<Option<String>>>,
        texts: Option<Vec<Option<String>>>,
        payloads: Option<Vec<Option<Vec<u8>>>>,
    ) -> PyResult<()> {
        let db = self.db()?;
        let keys = self.parse_keys(&db, keys)?;
        check_shapes(&db, &vectors, keys.len(), &metadata, &texts, &payloads)?;
        let meta: Vec<Option<strata::Metadata>> = match &metadata {
            None => Vec::new(),
            Some(m) => m
                .iter()
                .map(|j| {
                    j.as_deref()
                        .map(strata::Metadata::from_json_str)
                        .transpose()
                        .map_err(|e| invalid(format!("metadata: {e}")))
                })
                .collect::<PyResult<_>>()?,
        };
        let all = vectors.as_array();
        let texts = texts.unwrap_or_default();
        let payloads = payloads.unwrap_or_default();
        // Rows are copied into the batch (the log owns them) as the batch is built.
        let batches = py.detach(|| {
            let mut out = Vec::new();
            let mut b = strata::WriteBatch::new();
            for (i, key) in keys.iter().enumerate() {
                let row = all.row(i);
                let owned;
                let v: &[f32] = match row.as_slice() {
                    Some(s) => s,
                    None => {
                        owned = row.to_vec();
                        &owned
                    }
                };
                let m = meta.get(i).and_then(Option::as_ref);
                let p = payloads.get(i).and_then(Option::as_deref);
                match (key, texts.get(i).and_then(Option::as_deref)) {
                    (Key::Id(id), None) => b.upsert_record(*id, v, m, p),
                    (Key::Id(id), Some(t)) => b.upsert_text(*id, v, t, m, p),
                    (Key::Name(k), None) => b.upsert_keyed(k, v, m, p),
                    (Key::Name(k), Some(t)) => b.upsert_keyed_text(k, v, t, m, p),
                };
                if b.len() == 1024 {
                    out.push(std::mem::take(&mut b));
                }
            }
            if !b.is_empty() {
                out.push(b);
            }
            out.into_iter().try_for_each(|b| db.write(b))
        });
        batches.map_err(error)
    }

    /// Checks rows as `upsert` would, writing nothing: the index of the first row the
    /// store would refuse and why, or None.
    #[pyo3(signature = (keys, vectors, metadata=None, texts=None, payloads=None))]
    fn check_rows(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        vectors: PyReadonlyArray2<'_, f32>,
        metadata: Option<Vec<Option<String>>>,
        texts: Option<Vec<Option<String>>>,
        payloads: Option<Vec<Option<Vec<u8>>>>,
    ) -> PyResult<Option<(usize, String)>> {
        let db = self.db()?;
        let keys = self.parse_keys(&db, keys)?;
        check_shapes(&db, &vectors, keys.len(), &metadata, &texts, &payloads)?;
        let all = vectors.as_array();
        Ok(py.detach(|| {
            keys.iter().enumerate().find_map(|(i, key)| {
                let row = all.row(i).to_vec();
                let why = (|| -> Result<(), String> {
                    if let Key::Name(k) = key {
                        strata::check_key(k).map_err(|e| e.to_string())?;
                    }
                    let m = metadata.as_ref().and_then(|v| v[i].as_deref());
                    let m = m
                        .map(strata::Metadata::from_json_str)
                        .transpose()
                        .map_err(|e| format!("metadata: {e}"))?;
                    let p = payloads.as_ref().and_then(|v| v[i].as_deref());
                    db.check_record(&row, m.as_ref(), p)
                        .map_err(|e| e.to_string())?;
                    let t = texts.as_ref().and_then(|v| v[i].as_deref());
                    db.check_text(t).map_err(|e| e.to_string())
                })();
                why.err().map(|e| (i, e))
            })
        }))
    }

    /// The `k` nearest records of each query row: (keys, distances) per query.
    #[pyo3(signature = (queries, k=10, filter=None, ef=None, rerank=None, exact=false, target_recall=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn search(
        &self,
        py: Python<'_>,
        queries: PyReadonlyArray2<'_, f32>,
        k: usize,
        filter: Option<&str>,
        ef: Option<usize>,
        rerank: Option<usize>,
        exact: bool,
        target_recall: Option<f64>,
    ) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        let db = self.db()?;
        let o = search_options(k, filter, ef, rerank, exact, target_recall)?;
        let rows = query_rows(&queries);
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let all = py
            .detach(|| {
                if refs.len() == 1 {
                    db.search(refs[0], &o).map(|h| vec![h])
                } else {
                    db.search_many(&refs, &o)
                }
            })
            .map_err(error)?;
        all.iter().map(|hits| hit_arrays(py, hits)).collect()
    }

    /// The `k` nearest records of one query vector: (keys, distances).
    #[pyo3(signature = (query, k=10, filter=None, ef=None, rerank=None, exact=false, target_recall=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn search_one(
        &self,
        py: Python<'_>,
        query: PyReadonlyArray1<'_, f32>,
        k: usize,
        filter: Option<&str>,
        ef: Option<usize>,
        rerank: Option<usize>,
        exact: bool,
        target_recall: Option<f64>,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let db = self.db()?;
        let o = search_options(k, filter, ef, rerank, exact, target_recall)?;
        let owned;
        let q: &[f32] = match query.as_slice() {
            Ok(s) => s,
            Err(_) => {
                owned = query.as_array().to_vec();
                &owned
            }
        };
        let hits = py.detach(|| db.search(q, &o)).map_err(error)?;
        hit_arrays(py, &hits)
    }

    /// The `k` nearest records of each query row as two arrays of shape (nq, k): ids
    /// (-1 where a query has fewer hits) and distances (inf there). `u64` stores only.
    #[pyo3(signature = (queries, k=10, filter=None, ef=None, rerank=None, exact=false, target_recall=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn search_matrix<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'_, f32>,
        k: usize,
        filter: Option<&str>,
        ef: Option<usize>,
        rerank: Option<usize>,
        exact: bool,
        target_recall: Option<f64>,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let db = self.db()?;
        let o = search_options(k, filter, ef, rerank, exact, target_recall)?;
        let rows = query_rows(&queries);
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let all = py.detach(|| db.search_many(&refs, &o)).map_err(error)?;
        let mut ids = Array2::<i64>::from_elem((all.len(), k), -1);
        let mut dists = Array2::<f32>::from_elem((all.len(), k), f32::INFINITY);
        for (q, hits) in all.iter().enumerate() {
            for (j, h) in hits.iter().take(k).enumerate() {
                ids[[q, j]] = h.id as i64;
                dists[[q, j]] = h.distance;
            }
        }
        Ok((
            ids.into_pyarray(py).into_any().unbind(),
            dists.into_pyarray(py).into_any().unbind(),
        ))
    }

    /// The `k` best records for `text` by BM25: (keys, negated scores).
    #[pyo3(signature = (text, k=10, filter=None))]
    fn text_search(
        &self,
        py: Python<'_>,
        text: &str,
        k: usize,
        filter: Option<&str>,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let db = self.db()?;
        let o = search_options(k, filter, None, None, false, None)?;
        let hits = py.detach(|| db.text_search(text, &o)).map_err(error)?;
        hit_arrays(py, &hits)
    }

    /// A vector and a text search fused: (keys, negated fused scores).
    #[pyo3(signature = (vector, text, k=10, filter=None, fusion="rrf", alpha=None, candidates=100))]
    #[allow(clippy::too_many_arguments)]
    fn hybrid_search(
        &self,
        py: Python<'_>,
        vector: PyReadonlyArray1<'_, f32>,
        text: &str,
        k: usize,
        filter: Option<&str>,
        fusion: &str,
        alpha: Option<f32>,
        candidates: usize,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let db = self.db()?;
        let o = search_options(k, filter, None, None, false, None)?;
        let method = match (fusion, alpha) {
            ("rrf", None) => strata::Fusion::rrf().method,
            ("rrf", Some(a)) => strata::FusionMethod::Rrf {
                k: 60.0,
                vector_weight: a,
                text_weight: 1.0 - a,
            },
            ("weighted", a) => strata::FusionMethod::Weighted {
                alpha: a.unwrap_or(0.5),
            },
            (f, _) => return Err(invalid(format!("fusion {f:?}: rrf or weighted"))),
        };
        let f = strata::Fusion { method, candidates };
        let v = vector.as_array().to_vec();
        let hits = py
            .detach(|| db.hybrid_search(&v, text, &o, &f))
            .map_err(error)?;
        hit_arrays(py, &hits)
    }

    /// The records of `keys` (None where absent), as dicts.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Option<Bound<'py, PyDict>>>> {
        let db = self.db()?;
        let keys = self.parse_keys(&db, keys)?;
        let found = py.detach(|| -> strata::Result<Vec<Option<strata::Record>>> {
            let ids: Vec<u64> = keys
                .iter()
                .filter_map(|k| match k {
                    Key::Id(id) => Some(*id),
                    Key::Name(_) => None,
                })
                .collect();
            let names: Vec<&str> = keys
                .iter()
                .filter_map(|k| match k {
                    Key::Name(n) => Some(n.as_str()),
                    Key::Id(_) => None,
                })
                .collect();
            if names.is_empty() {
                db.get_many(&ids)
            } else {
                db.get_many_keys(&names)
            }
        });
        found
            .map_err(error)?
            .into_iter()
            .map(|r| r.map(|r| record(py, r)).transpose())
            .collect()
    }

    /// Deletes the records of `keys` (absent ones are ignored), atomically.
    fn delete(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<()> {
        let db = self.db()?;
        let keys = self.parse_keys(&db, keys)?;
        let mut b = strata::WriteBatch::new();
        for k in &keys {
            match k {
                Key::Id(id) => b.delete(*id),
                Key::Name(n) => b.delete_key(n),
            };
        }
        py.detach(|| db.write(b)).map_err(error)
    }

    /// Deletes every record whose metadata passes `filter` (JSON), atomically; returns
    /// how many.
    fn delete_filter(&self, py: Python<'_>, filter: &str) -> PyResult<u64> {
        let db = self.db()?;
        let f = strata::Filter::from_json_str(filter).map_err(|e| error(e.into()))?;
        py.detach(|| db.delete_by_filter(&f)).map_err(error)
    }

    /// Live records passing `filter` (JSON; all without one).
    #[pyo3(signature = (filter=None))]
    fn count(&self, py: Python<'_>, filter: Option<&str>) -> PyResult<u64> {
        let db = self.db()?;
        let f = self::filter(filter)?;
        py.detach(|| db.count(f.as_ref())).map_err(error)
    }

    /// A page of up to `limit` records passing `filter` with internal ids above `after`:
    /// (records, the `after` of the next page or None).
    #[pyo3(signature = (filter=None, after=None, limit=100))]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        filter: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> PyResult<(Vec<Bound<'py, PyDict>>, Option<u64>)> {
        let db = self.db()?;
        let f = self::filter(filter)?;
        let page = py
            .detach(|| db.scan(f.as_ref(), after, limit))
            .map_err(error)?;
        let records = page
            .records
            .into_iter()
            .map(|r| record(py, r))
            .collect::<PyResult<_>>()?;
        Ok((records, page.next))
    }

    /// Writes the memtable to a segment and waits for it.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.db()?;
        py.detach(|| db.flush()).map_err(error)
    }

    /// Merges segments (all into one with `full`); returns how many merges ran.
    #[pyo3(signature = (full=false))]
    fn compact(&self, py: Python<'_>, full: bool) -> PyResult<usize> {
        let db = self.db()?;
        py.detach(|| db.compact(full, &|_, _, _| true))
            .map(|r| r.len())
            .map_err(error)
    }

    /// The store's figures: live records, segments, bytes.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let db = self.db()?;
        let s = py.detach(|| db.stats()).map_err(error)?;
        let d = PyDict::new(py);
        d.set_item("dim", s.dim)?;
        d.set_item("metric", s.metric)?;
        d.set_item("live_rows", s.live_rows)?;
        d.set_item("memtable_rows", s.memtable_rows)?;
        d.set_item("segments", s.segments.len())?;
        d.set_item("segment_bytes", s.segment_bytes)?;
        d.set_item("wal_bytes", s.wal_bytes)?;
        Ok(d)
    }

    /// Calibrates every indexed segment on the query rows (at least 64) for searches by
    /// target recall; returns each segment's calibration.
    fn calibrate<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'_, f32>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let db = self.db()?;
        let rows = query_rows(&queries);
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let report = py.detach(|| db.calibrate(&refs)).map_err(error)?;
        report.iter().map(|c| calibration_dict(py, c)).collect()
    }

    /// The observed recall of the sampled searches (a dict with `recall`, `low`, `high`,
    /// `queries`, `by_segment_kind` {kind: {...}}, `dropped`, `recalibrations`), or
    /// None when the store does not sample or nothing was measured yet.
    fn observed_recall<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let db = self.db()?;
        let Some(o) = db.observed_recall() else {
            return Ok(None);
        };
        let estimate = |e: &strata::RecallEstimate| -> PyResult<Bound<'py, PyDict>> {
            let d = PyDict::new(py);
            d.set_item("recall", e.recall)?;
            d.set_item("low", e.low)?;
            d.set_item("high", e.high)?;
            d.set_item("queries", e.queries)?;
            Ok(d)
        };
        let d = estimate(&o.overall)?;
        let kinds = PyDict::new(py);
        for (kind, e) in &o.by_segment_kind {
            kinds.set_item(kind, estimate(e)?)?;
        }
        d.set_item("by_segment_kind", kinds)?;
        d.set_item("dropped", o.dropped)?;
        d.set_item("recalibrations", o.recalibrations)?;
        Ok(Some(d))
    }

    /// Each indexed segment's calibration (those calibrated so far).
    fn calibration<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let db = self.db()?;
        db.calibration()
            .iter()
            .map(|c| calibration_dict(py, c))
            .collect()
    }

    /// Closes the store: flushes nothing more, waits for its background work, releases
    /// its lock. Later calls raise `Closed`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .db
            .write()
            .map_err(|_| invalid("the store's lock is poisoned"))?
            .take();
        let Some(db) = taken else { return Ok(()) };
        match Arc::try_unwrap(db) {
            Ok(db) => py.detach(|| db.close()).map_err(error),
            // Another thread is in a call: the last one to finish drops (and closes) it.
            Err(_) => Ok(()),
        }
    }
}

/// The native module.
#[pymodule]
fn _strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeStore>()?;
    m.add_class::<remote::NativeReplica>()?;
    m.add_function(wrap_pyfunction!(remote::restore, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
