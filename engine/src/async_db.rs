//! An async facade: each call runs on tokio's blocking pool, so an async task never
//! blocks its executor on an fsync or a scan.

use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::WriteBatch;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::options::{Options, SearchOptions};
use crate::record::{Hit, Record};

/// A cloneable async handle over a [`Db`].
#[derive(Clone)]
pub struct AsyncDb {
    db: Arc<Db>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
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

    /// See [`Db::delete`].
    pub async fn delete(&self, id: u64) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.delete(id)).await
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

    /// See [`Db::flush`].
    pub async fn flush(&self) -> Result<()> {
        let db = self.db.clone();
        blocking(move || db.flush()).await
    }
}
