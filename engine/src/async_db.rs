//! An async facade: each call runs on tokio's blocking pool, so an async task never
//! blocks its executor on an fsync or a scan.

use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::WriteBatch;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::hybrid::Fusion;
use crate::options::{Options, SearchOptions};
use crate::record::{Hit, Record};
use crate::records::ScanPage;
use crate::stats::{CompactionReport, Stats};

/// A cloneable async handle over a [`Db`].
#[derive(Clone)]
pub struct AsyncDb {
    db: Arc<Db>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a blocking task of the async handle failed: {e}")))?
}

impl AsyncDb {
    /// Opens (or creates) a store; see [`Db::open`].
    pub async fn open(dir: impl Into<PathBuf>, opts: Options) -> Result<AsyncDb> {
        let dir = dir.into();
        let db = blocking(move || Db::open(dir, opts)).await?;
        Ok(AsyncDb { db: Arc::new(db) })
    }

    /// The synchronous handle.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// See [`Db::upsert`].
    pub async fn upsert(&self, id: u64, vector: Vec<f32>) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.upsert(id, &vector)).await
    }

    /// See [`Db::upsert_with_payload`].
    pub async fn upsert_with_payload(
        &self,
        id: u64,
        vector: Vec<f32>,
        payload: Vec<u8>,
    ) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.upsert_with_payload(id, &vector, &payload)).await
    }

    /// See [`Db::delete`].
    pub async fn delete(&self, id: u64) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.delete(id)).await
    }

    /// See [`Db::upsert_key`].
    pub async fn upsert_key(
        &self,
        key: String,
        vector: Vec<f32>,
        metadata: Option<crate::Metadata>,
        payload: Option<Vec<u8>>,
    ) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.upsert_key(&key, &vector, metadata.as_ref(), payload.as_deref())).await
    }

    /// See [`Db::delete_key`].
    pub async fn delete_key(&self, key: String) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.delete_key(&key)).await
    }

    /// See [`Db::get_key`].
    pub async fn get_key(&self, key: String) -> Result<Option<Record>> {
        let db = self.db.clone();
        blocking(move || db.get_key(&key)).await
    }

    /// See [`Db::get_many_keys`].
    pub async fn get_many_keys(&self, keys: Vec<String>) -> Result<Vec<Option<Record>>> {
        let db = self.db.clone();
        blocking(move || {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            db.get_many_keys(&keys)
        })
        .await
    }

    /// See [`Db::write`].
    pub async fn write(&self, batch: WriteBatch) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.write(batch)).await
    }

    /// See [`Db::get`].
    pub async fn get(&self, id: u64) -> Result<Option<Record>> {
        let db = self.db.clone();
        blocking(move || db.get(id)).await
    }

    /// See [`Db::search`].
    pub async fn search(&self, query: Vec<f32>, opts: SearchOptions) -> Result<Vec<Hit>> {
        let db = self.db.clone();
        blocking(move || db.search(&query, &opts)).await
    }

    /// See [`Db::text_search`].
    pub async fn text_search(&self, text: String, opts: SearchOptions) -> Result<Vec<Hit>> {
        let db = self.db.clone();
        blocking(move || db.text_search(&text, &opts)).await
    }

    /// See [`Db::hybrid_search`].
    pub async fn hybrid_search(
        &self,
        query: Vec<f32>,
        text: String,
        opts: SearchOptions,
        fusion: Fusion,
    ) -> Result<Vec<Hit>> {
        let db = self.db.clone();
        blocking(move || db.hybrid_search(&query, &text, &opts, &fusion)).await
    }

    /// See [`Db::search_many`].
    pub async fn search_many(
        &self,
        queries: Vec<Vec<f32>>,
        opts: SearchOptions,
    ) -> Result<Vec<Vec<Hit>>> {
        let db = self.db.clone();
        blocking(move || {
            let qs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
            db.search_many(&qs, &opts)
        })
        .await
    }

    /// See [`Db::count`].
    pub async fn count(&self, filter: Option<Filter>) -> Result<u64> {
        let db = self.db.clone();
        blocking(move || db.count(filter.as_ref())).await
    }

    /// See [`Db::scan`].
    pub async fn scan(
        &self,
        filter: Option<Filter>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<ScanPage> {
        let db = self.db.clone();
        blocking(move || db.scan(filter.as_ref(), after, limit)).await
    }

    /// See [`Db::get_many`].
    pub async fn get_many(&self, ids: Vec<u64>) -> Result<Vec<Option<Record>>> {
        let db = self.db.clone();
        blocking(move || db.get_many(&ids)).await
    }

    /// See [`Db::delete_by_filter`].
    pub async fn delete_by_filter(&self, filter: Filter) -> Result<u64> {
        let db = self.db.clone();
        blocking(move || db.delete_by_filter(&filter)).await
    }

    /// See [`Db::len`].
    pub async fn len(&self) -> Result<u64> {
        let db = self.db.clone();
        blocking(move || Ok(db.len())).await
    }

    /// See [`Db::stats`].
    pub async fn stats(&self) -> Result<Stats> {
        let db = self.db.clone();
        blocking(move || db.stats()).await
    }

    /// See [`Db::compact`] (without a progress callback).
    pub async fn compact(&self, full: bool) -> Result<Vec<CompactionReport>> {
        let db = self.db.clone();
        blocking(move || db.compact(full, &|_, _, _| true)).await
    }

    /// Flushes, syncs and stops background work ([`Db::close`]) even while other clones
    /// of this handle exist: their later writes get [`Error::Closed`]. The store's lock
    /// is released when the last clone is dropped.
    pub async fn close(self) -> Result<()> {
        let db = self.db;
        blocking(move || db.shut_down()).await
    }

    /// See [`Db::flush`].
    pub async fn flush(&self) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.flush()).await
    }
}
