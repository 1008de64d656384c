//! [`Bucket`]: the blocking operations a store performs on its bucket, over an
//! `object_store` client driven by a small private tokio runtime. Every operation is
//! retried with backoff by the client (`object_store`'s retry policy) before it fails.

use std::future::Future;
use std::path::Path as LocalPath;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use strata_vfs::Vfs;

use crate::envelope::{RemoteFile, RemoteManifest};
use crate::log::{LogHeader, LogObject};
use crate::names::{self, FileKind};
use crate::{Error, RemoteConfig, Result};

/// Files up to this size are uploaded with one PUT; larger ones in parts of this size.
pub const PART_BYTES: usize = 8 << 20;
/// Attempts of a conditional put whose outcome was unknown.
const CREATE_ATTEMPTS: u32 = 5;

/// Whether a failed request may have been cut short by the network (not refused).
fn retryable(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::NotSupported { .. }
    )
}

/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// A store's bucket (an `object_store` client and the store's prefix in it).
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // Never blocks (dropping a runtime inside an async context would panic).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The outcome of a create-only put of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// This commit is now `manifest/<seq>`.
    Created,
    /// Another commit already holds that sequence number.
    Taken,
}

/// An object in the bucket: its name under the prefix, size and age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The full object path.
    pub path: Path,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written (milliseconds since the Unix epoch, the bucket's clock).
    pub modified_ms: i64,
}

impl Bucket {
    /// A client for `config`'s URL (`s3://bucket/prefix`, `gs://…`, `az://…`,
    /// `file:///path`, `memory:///`). Options are `object_store`'s configuration keys
    /// (`aws_endpoint`, `aws_allow_http`, `aws_region`, …); the environment's `AWS_*`,
    /// `GOOGLE_*` and `AZURE_*` variables are read as such keys first. Makes no request.
    pub fn connect(config: &RemoteConfig) -> Result<Self> {
        let url = url::Url::parse(&config.url)
            .map_err(|e| Error::Config(format!("bad bucket URL {:?}: {e}", config.url)))?;
        let mut options: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                ["AWS_", "GOOGLE_", "AZURE_"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let from_env = options.len();
        options.extend(config.options.iter().cloned());
        let bad =
            |e: object_store::Error| Error::Config(format!("cannot use {:?}: {e}", config.url));
        let (store, prefix): (Box<dyn ObjectStore>, Path) = match (url.scheme(), config.retries) {
            ("s3" | "s3a", Some((max_retries, retry_timeout))) => {
                let mut b = object_store::aws::AmazonS3Builder::new().with_url(config.url.clone());
                // The environment's keys this client does not know are skipped (as the
                // URL parser does); the caller's own options must all be valid.
                for (i, (k, v)) in options.iter().enumerate() {
                    match k.parse() {
                        Ok(key) => b = b.with_config(key, v.clone()),
                        Err(e) if i >= from_env => return Err(bad(e)),
                        Err(_) => {}
                    }
                }
                let retry = object_store::RetryConfig {
                    max_retries,
                    retry_timeout,
                    backoff: object_store::BackoffConfig {
                        init_backoff: Duration::from_millis(20),
                        ..Default::default()
                    },
                };
                let prefix = Path::from_url_path(url.path()).map_err(|e| bad(e.into()))?;
                (Box::new(b.with_retry(retry).build().map_err(bad)?), prefix)
            }
            _ => object_store::parse_url_opts(&url, options).map_err(bad)?,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the I/O runtime: {e}")))?;
        Ok(Bucket {
            store: Arc::from(store),
            prefix,
            url: config.url.clone(),
            rt: Some(rt),
        })
    }

    /// The bucket URL this client was made for.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `fut` to completion on the private runtime, from any thread (inside another
    /// runtime's task it runs on a scoped helper thread, since blocking there would panic).
    fn block<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let Some(rt) = self.rt.as_ref() else {
            unreachable!("the runtime lives as long as the bucket")
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| rt.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            rt.block_on(fut)
        }
    }

    /// Lists every object under `prefix/<folder>/`.
    pub fn list(&self, folder: &str) -> Result<Vec<Listed>> {
        self.list_after(folder, None)
    }

    /// Lists the objects under `prefix/<folder>/` whose names sort after `after` (all of
    /// them for `None`).
    fn list_after(&self, folder: &str, after: Option<Path>) -> Result<Vec<Listed>> {
        let at = self.prefix.clone().join(folder);
        let store = self.store.clone();
        let metas = self
            .block(async move {
                match after {
                    Some(offset) => {
                        store
                            .list_with_offset(Some(&at), &offset)
                            .try_collect::<Vec<_>>()
                            .await
                    }
                    None => store.list(Some(&at)).try_collect::<Vec<_>>().await,
                }
            })
            .map_err(|e| Error::store("list", folder, e))?;
        Ok(metas
            .into_iter()
            .map(|m| Listed {
                path: m.location,
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis(),
            })
            .collect())
    }

    /// The sequence numbers of the commits in the bucket, ascending, with when each was
    /// written.
    pub fn manifests(&self) -> Result<Vec<(u64, i64)>> {
        self.manifests_after(0)
    }

    /// [`manifests`](Self::manifests) numbered above `seq` (a listing that starts there,
    /// so following a bucket costs what is new, not what is kept).
    pub fn manifests_after(&self, seq: u64) -> Result<Vec<(u64, i64)>> {
        let after = (seq > 0).then(|| names::manifest(&self.prefix, seq));
        let mut out: Vec<(u64, i64)> = self
            .list_after(names::MANIFESTS, after)?
            .into_iter()
            .filter_map(|l| {
                let seq = names::parse_manifest(l.path.filename()?)?;
                Some((seq, l.modified_ms))
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Commit `seq`, or `None` if there is none.
    pub fn read_manifest(&self, seq: u64) -> Result<Option<RemoteManifest>> {
        let path = names::manifest(&self.prefix, seq);
        let Some(bytes) = self.get_opt(&path)? else {
            return Ok(None);
        };
        let m = RemoteManifest::decode(&bytes).map_err(|source| Error::Corrupt {
            path: path.to_string(),
            source,
        })?;
        if m.seq != seq {
            return Err(Error::Corrupt {
                path: path.to_string(),
                source: crate::EnvelopeError {
                    offset: 16,
                    what: "the sequence number differs from the object's name",
                },
            });
        }
        Ok(Some(m))
    }

    /// The newest commit, or `None` for a bucket with no store. A commit collected
    /// between the listing and the read is skipped for the next one listed.
    pub fn latest(&self) -> Result<Option<RemoteManifest>> {
        self.latest_after(0)
    }

    /// The newest commit numbered above `seq`, or `None` when there is none.
    pub fn latest_after(&self, seq: u64) -> Result<Option<RemoteManifest>> {
        for _ in 0..8 {
            let Some(&(seq, _)) = self.manifests_after(seq)?.last() else {
                return Ok(None);
            };
            if let Some(m) = self.read_manifest(seq)? {
                return Ok(Some(m));
            }
        }
        Err(Error::Store {
            op: "read the newest commit",
            path: names::MANIFESTS.into(),
            source: "the newest commit kept vanishing while being read".into(),
        })
    }

    /// Puts `m` as `manifest/<m.seq>` only if no object has that name (`If-None-Match`):
    /// the commit point that fences writers. A retried put whose first attempt landed
    /// finds its own bytes there and counts as [`Put::Created`].
    pub fn put_manifest(&self, m: &RemoteManifest) -> Result<Put> {
        self.put_create(names::manifest(&self.prefix, m.seq), m.encode(), "commit")
    }

    /// Puts log object `o` create-only (as [`put_manifest`](Self::put_manifest)).
    pub fn put_log(&self, o: &LogObject) -> Result<Put> {
        self.put_create(
            names::log(&self.prefix, o.no),
            o.encode(),
            "ship the log to",
        )
    }

    /// The numbers of the log objects numbered above `no`, ascending.
    pub fn logs_after(&self, no: u64) -> Result<Vec<u64>> {
        let after = (no > 0).then(|| names::log(&self.prefix, no));
        let mut out: Vec<u64> = self
            .list_after(names::LOGS, after)?
            .into_iter()
            .filter_map(|l| names::parse_manifest(l.path.filename()?))
            .filter(|&n| n > no)
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Log object `no`, `None` if absent.
    pub fn read_log(&self, no: u64) -> Result<Option<LogObject>> {
        let path = names::log(&self.prefix, no);
        let Some(bytes) = self.get_opt(&path)? else {
            return Ok(None);
        };
        let o = LogObject::decode(&bytes).map_err(|source| Error::Corrupt {
            path: path.to_string(),
            source,
        })?;
        if o.no != no {
            return Err(Error::Corrupt {
                path: path.to_string(),
                source: crate::EnvelopeError {
                    offset: 24,
                    what: "the object's number differs from its name",
                },
            });
        }
        Ok(Some(o))
    }

    /// The header of log object `no` (one range read), `None` if absent or unreadable.
    pub fn read_log_header(&self, no: u64) -> Result<Option<LogHeader>> {
        let path = names::log(&self.prefix, no);
        let store = self.store.clone();
        let p = path.clone();
        let res =
            self.block(async move { store.get_range(&p, 0..crate::log::HEADER as u64).await });
        match res {
            Ok(b) => Ok(LogHeader::decode(&b).filter(|h| h.no == no)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store("read", path.as_ref(), e)),
        }
    }

    /// Puts `bytes` at `path` only if no object has that name. The client does not
    /// retry a conditional put whose reply was lost (it is not idempotent); this does, a
    /// few times, since a retry that finds its own bytes there is a success.
    fn put_create(&self, path: Path, bytes: Vec<u8>, op: &'static str) -> Result<Put> {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let store = self.store.clone();
            let (p, payload) = (path.clone(), PutPayload::from(bytes.clone()));
            let res = self.block(async move {
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                store.put_opts(&p, payload, opts).await
            });
            match res {
                Ok(_) => return Ok(Put::Created),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {
                    return match self.get_opt(&path)? {
                        Some(have) if have == bytes => Ok(Put::Created),
                        _ => Ok(Put::Taken),
                    };
                }
                Err(e) if attempt < CREATE_ATTEMPTS && retryable(&e) => {
                    tracing::info!(error = %e, attempt, "retrying a conditional put");
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => return Err(Error::store(op, path.as_ref(), e)),
            }
        }
    }

    /// Uploads the local file `local` as file `no` of `kind` of session `epoch`; returns
    /// its size. Large files go up in parts, [`PART_BYTES`] each.
    pub fn upload(
        &self,
        fs: &dyn Vfs,
        local: &LocalPath,
        kind: FileKind,
        no: u64,
        epoch: u64,
    ) -> Result<u64> {
        let bytes = fs.map(local).map_err(|e| Error::Io {
            path: local.to_path_buf(),
            source: e,
        })?;
        let data = bytes.as_slice();
        let path = names::data(&self.prefix, kind, no, epoch);
        let store = self.store.clone();
        let p = path.clone();
        let res = self.block(async move {
            if data.len() <= PART_BYTES {
                let payload = PutPayload::from(bytes::Bytes::copy_from_slice(data));
                return store.put(&p, payload).await.map(|_| ());
            }
            let upload = store.put_multipart(&p).await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            for chunk in data.chunks(PART_BYTES) {
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    let _ = w.abort().await;
                    return Err(e);
                }
                w.write(chunk);
            }
            w.finish().await.map(|_| ())
        });
        res.map_err(|e| Error::store("upload", path.as_ref(), e))?;
        Ok(data.len() as u64)
    }

    /// Downloads `file` as the new local file `to` (synced; the caller syncs the
    /// directory); returns its size.
    pub fn download(&self, fs: &dyn Vfs, file: RemoteFile, to: &LocalPath) -> Result<u64> {
        let path = names::data(&self.prefix, file.kind, file.no, file.epoch);
        let bytes = self
            .get_opt(&path)?
            .ok_or_else(|| Error::Missing(path.to_string()))?;
        strata_format::fsutil::write_new(fs, to, &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Bytes `range` of `file`.
    pub fn read_range(
        &self,
        file: RemoteFile,
        range: std::ops::Range<u64>,
    ) -> Result<bytes::Bytes> {
        let path = names::data(&self.prefix, file.kind, file.no, file.epoch);
        let store = self.store.clone();
        let p = path.clone();
        self.block(async move { store.get_range(&p, range).await })
            .map_err(|e| Error::store("read", path.as_ref(), e))
    }

    /// Bytes `ranges` of `file`, fetched concurrently (adjacent ranges coalesced).
    pub fn read_ranges(
        &self,
        file: RemoteFile,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        let path = names::data(&self.prefix, file.kind, file.no, file.epoch);
        let store = self.store.clone();
        let p = path.clone();
        let ranges = ranges.to_vec();
        self.block(async move { store.get_ranges(&p, &ranges).await })
            .map_err(|e| Error::store("read", path.as_ref(), e))
    }

    /// Deletes `path` (already gone is fine).
    pub fn delete(&self, path: &Path) -> Result<()> {
        let store = self.store.clone();
        let p = path.clone();
        match self.block(async move { store.delete(&p).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", path.as_ref(), e)),
        }
    }

    /// The object `path` whole, `None` if it does not exist.
    fn get_opt(&self, path: &Path) -> Result<Option<bytes::Bytes>> {
        let store = self.store.clone();
        let p = path.clone();
        let res = self.block(async move {
            match store.get(&p).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        res.map_err(|e| Error::store("read", path.as_ref(), e))
    }

    /// The prefix of the store in the bucket.
    pub(crate) fn prefix(&self) -> &Path {
        &self.prefix
    }
}
