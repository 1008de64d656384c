//! Stores kept in a bucket, from Python: the bucket options of `NativeStore`, read
//! replicas (`NativeReplica`) and `restore`.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{error, hit_arrays, invalid, query_rows, record, search_options};

/// A bucket's configuration from a URL and `object_store` options.
pub(crate) fn config(url: &str, options: Option<Vec<(String, String)>>) -> strata::RemoteConfig {
    let mut c = strata::RemoteConfig::new(url);
    for (k, v) in options.unwrap_or_default() {
        c = c.option(k, v);
    }
    c
}

/// A read replica of a store kept in a bucket: `strata.Replica` wraps it.
#[pyclass(name = "NativeReplica", module = "strata._strata", frozen)]
pub(crate) struct NativeReplica {
    r: Arc<strata::Replica>,
}

#[pymethods]
impl NativeReplica {
    /// Opens a replica of the store in the bucket `url`, caching in `cache_dir`.
    #[new]
    #[pyo3(signature = (url, cache_dir, cache_bytes, options=None))]
    fn new(
        py: Python<'_>,
        url: &str,
        cache_dir: PathBuf,
        cache_bytes: u64,
        options: Option<Vec<(String, String)>>,
    ) -> PyResult<Self> {
        let c = config(url, options);
        let r = py
            .detach(|| strata::Db::open_replica(c, &cache_dir, cache_bytes))
            .map_err(error)?;
        Ok(NativeReplica { r: Arc::new(r) })
    }

    /// The vector dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.r.dim()
    }

    /// What identifies records: u64 or string.
    #[getter]
    fn keys(&self) -> &'static str {
        match self.r.keys() {
            strata::KeyKind::String => "string",
            _ => "u64",
        }
    }

    /// The bucket commit the replica answers at.
    #[getter]
    fn seq(&self) -> u64 {
        self.r.seq()
    }

    /// Live records.
    fn __len__(&self) -> usize {
        self.r.len() as usize
    }

    /// Moves to the bucket's newest commit now; whether it moved.
    fn refresh(&self, py: Python<'_>) -> PyResult<bool> {
        let r = self.r.clone();
        py.detach(move || r.refresh()).map_err(error)
    }

    /// What the replica fetched: seq, front_bytes, vector_bytes, vector_reads,
    /// cached_bytes.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.r.replica_stats();
        let d = PyDict::new(py);
        d.set_item("seq", s.seq)?;
        d.set_item("front_bytes", s.front_bytes)?;
        d.set_item("vector_bytes", s.vector_bytes)?;
        d.set_item("vector_reads", s.vector_reads)?;
        d.set_item("cached_bytes", s.cached_bytes)?;
        Ok(d)
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
        let o = search_options(k, filter, ef, rerank, exact, target_recall)?;
        let q = query.as_array().to_vec();
        let r = self.r.clone();
        let hits = py.detach(move || r.search(&q, &o)).map_err(error)?;
        hit_arrays(py, &hits)
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
        let o = search_options(k, filter, ef, rerank, exact, target_recall)?;
        let rows = query_rows(&queries);
        let r = self.r.clone();
        let all = py
            .detach(move || {
                let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
                r.search_many(&refs, &o)
            })
            .map_err(error)?;
        all.iter().map(|hits| hit_arrays(py, hits)).collect()
    }

    /// The record of `key` as a dict, or None.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let r = self.r.clone();
        let found = match self.r.keys() {
            strata::KeyKind::U64 => {
                let id: i64 = key
                    .extract()
                    .map_err(|_| invalid(format!("keys of this store are ints, not {key}")))?;
                let id = u64::try_from(id).map_err(|_| invalid(format!("bad key {id}")))?;
                py.detach(move || r.get(id)).map_err(error)?
            }
            _ => {
                let k: String = key
                    .extract()
                    .map_err(|_| invalid(format!("keys of this store are strings, not {key}")))?;
                py.detach(move || r.get_key(&k)).map_err(error)?
            }
        };
        found.map(|rec| record(py, rec)).transpose()
    }
}

/// Rebuilds a local store in the new or empty directory `path` from the bucket `url`:
/// {"seq", "files", "bytes", "log_records"}.
#[pyfunction]
#[pyo3(signature = (url, path, options=None))]
pub(crate) fn restore<'py>(
    py: Python<'py>,
    url: &str,
    path: PathBuf,
    options: Option<Vec<(String, String)>>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = config(url, options);
    let r = py.detach(|| strata::restore(&c, &path)).map_err(error)?;
    let d = PyDict::new(py);
    d.set_item("seq", r.seq)?;
    d.set_item("files", r.files)?;
    d.set_item("bytes", r.bytes)?;
    d.set_item("log_records", r.log_records)?;
    Ok(d)
}
