//! A store whose source of truth is a bucket (`Options::remote`): the engine's side of
//! `strata-remote`. At open the directory is reconciled with the bucket's newest commit
//! (restored from it when the directory is new, caught up when a crash fell between a
//! commit and the local manifest), then the session claims the bucket with a commit of
//! its own. Every later commit uploads the files it names and commits to the bucket
//! before the local manifest is published. See `docs/remote.md`.

use std::path::Path;

use strata_format::{fsutil, Manifest};
use strata_remote::{Attachment, Bucket, FileKind, RemoteConfig, RemoteManifest, RemoteWriter};
use strata_vfs::Vfs;

use crate::error::{Error, Result};
use crate::files;
use crate::inner::Inner;

/// What a restore fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The bucket commit restored.
    pub seq: u64,
    /// Segment and deletion files downloaded.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Log records restored from the bucket's log (writes not yet in a segment).
    pub log_records: u64,
}

/// The segment and deletion files `m` names.
pub(crate) fn named_files(m: &Manifest) -> Vec<(FileKind, u64)> {
    let mut out = Vec::with_capacity(m.segments.len() * 2);
    for s in &m.segments {
        out.push((FileKind::Segment, s.file_no));
        if let Some(d) = s.deletion_file_no {
            out.push((FileKind::Deletion, d));
        }
    }
    out
}

fn decode_manifest(dir: &Path, r: &RemoteManifest) -> Result<Manifest> {
    Manifest::decode(&r.manifest).map_err(|e| Error::Corruption {
        path: dir.join(format!("<bucket commit {}>", r.seq)),
        offset: e.offset,
        kind: crate::error::CorruptionKind::Format(e.kind),
    })
}

/// Downloads every file of commit `r` that `dir` lacks, then publishes `r`'s manifest
/// as the local `MANIFEST` (and its mirror). Returns what was fetched.
fn install_commit(
    fs: &dyn Vfs,
    bucket: &Bucket,
    dir: &Path,
    r: &RemoteManifest,
) -> Result<RestoreReport> {
    let m = decode_manifest(dir, r)?;
    let mut report = RestoreReport {
        seq: r.seq,
        ..Default::default()
    };
    for (kind, no) in named_files(&m) {
        let local = dir.join(kind.local_name(no));
        if fs.exists(&local).map_err(|e| Error::io(&local, e))? {
            continue;
        }
        let Some(file) = r.file(kind, no) else {
            return Err(strata_remote::Error::Missing(kind.local_name(no)).into());
        };
        report.bytes += bucket.download(fs, file, &local)?;
        report.files += 1;
    }
    fsutil::sync_dir(fs, dir)?;
    m.write(fs, &dir.join(files::MANIFEST))?;
    m.write(fs, &dir.join(files::MANIFEST_MIRROR))?;
    Ok(report)
}

/// Reconciles `dir` (locked by the caller; `creating` when it holds no store yet) with
/// the bucket, before its manifest is loaded. Returns the bucket and its newest commit.
pub(crate) fn attach(
    fs: &dyn Vfs,
    dir: &Path,
    creating: bool,
    config: &RemoteConfig,
) -> Result<(Bucket, Option<RemoteManifest>)> {
    let bucket = Bucket::connect(config)?;
    let latest = bucket.latest()?;
    let Some(l) = &latest else {
        return Ok((bucket, None));
    };
    if creating {
        let report = install_commit(fs, &bucket, dir, l)?;
        tracing::info!(
            seq = report.seq,
            files = report.files,
            bytes = report.bytes,
            "restored the store from its bucket"
        );
        return Ok((bucket, latest));
    }
    let attached = Attachment::read(fs, dir)
        .map_err(|e| Error::io(&dir.join(strata_remote::ATTACHMENT_FILE), e))?;
    if !attached.is_some_and(|a| a.follows(l.store_id, l.seq, l.epoch)) {
        return Err(Error::RemoteDiverged {
            path: dir.to_path_buf(),
            seq: l.seq,
        });
    }
    let local = Manifest::read(fs, &dir.join(files::MANIFEST))?;
    if local.encode() != l.manifest {
        let theirs = decode_manifest(dir, l)?;
        if local.checkpoint_seq > theirs.checkpoint_seq {
            // Changed without its bucket (opened without `Options::remote`): adopting
            // the bucket's commit could drop writes whose log is gone.
            return Err(Error::RemoteDiverged {
                path: dir.to_path_buf(),
                seq: l.seq,
            });
        }
        install_commit(fs, &bucket, dir, l)?;
    }
    Ok((bucket, latest))
}

/// Claims the bucket for this session (before the directory's log is replayed), then
/// fences older sessions' logs. A directory just restored from the bucket (`restored`)
/// gets the bucket's log above its checkpoint as a local log file. Returns the session
/// and the last sequence number already in the bucket's log.
pub(crate) fn claim(
    fs: &std::sync::Arc<dyn Vfs>,
    dir: &Path,
    config: &RemoteConfig,
    bucket: Bucket,
    latest: Option<&RemoteManifest>,
    manifest: &Manifest,
    restored: bool,
) -> Result<(RemoteWriter, u64)> {
    let w = RemoteWriter::claim(
        bucket,
        latest,
        &**fs,
        dir,
        manifest.encode(),
        &named_files(manifest),
        config.gc_grace,
    )?;
    let fence = w.fence_log(manifest.checkpoint_seq, restored)?;
    write_log_file(fs, dir, manifest, &fence.records)?;
    tracing::info!(
        epoch = w.epoch(),
        url = w.bucket().url(),
        "claimed the store's bucket"
    );
    w.collect_garbage_now_and_then();
    Ok((w, fence.shipped_seq))
}

/// Writes `records` (from the bucket's log) as a new local log file numbered after every
/// file in `dir`, synced.
fn write_log_file(
    fs: &std::sync::Arc<dyn Vfs>,
    dir: &Path,
    manifest: &Manifest,
    records: &[strata_remote::LogRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let no = files::list(&**fs, dir)?
        .iter()
        .map(|&(_, no, _)| no + 1)
        .max()
        .unwrap_or(0)
        .max(manifest.next_file_no);
    let wal = strata_wal::Wal::create(fs.clone(), dir, no)?;
    for r in records {
        wal.append(r.seq, r.count, r.kind, &r.payload)?;
    }
    wal.sync()?;
    fsutil::sync_dir(&**fs, dir)?;
    tracing::info!(
        records = records.len(),
        file = no,
        "restored the bucket's log"
    );
    Ok(())
}

/// Queues the directory's logged batches that the bucket's log lacks (above `shipped`
/// and the checkpoint), so the next ship carries them before any new write.
pub(crate) fn queue_unshipped(
    fs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    w: &RemoteWriter,
    shipped: u64,
) -> Result<()> {
    let from = shipped.max(manifest.checkpoint_seq);
    let wal_files: Vec<_> = files::wal_files(fs, dir, manifest)?
        .into_iter()
        .map(|(no, p, _)| (no, p))
        .collect();
    strata_wal::replay(fs, &wal_files, strata_wal::ReplayMode::ReadOnly, |r| {
        if r.record.seq > from {
            w.push(
                r.record.seq,
                r.record.count,
                r.record.kind,
                r.record.payload,
            );
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|e| match e {
        strata_wal::ReplayError::Wal(e) => Error::from(e),
        strata_wal::ReplayError::Apply(never) => match never {},
    })?;
    Ok(())
}

/// Uploads a new segment ahead of the commit that names it (outside the write lock).
pub(crate) fn upload_segment(inner: &Inner, no: u64) -> Result<()> {
    if let Some(w) = &inner.remote {
        w.upload(&*inner.opts.vfs, &inner.dir, FileKind::Segment, no)?;
    }
    Ok(())
}

/// Commits `m` to the bucket (with the write lock held, before the local publish).
pub(crate) fn commit(inner: &Inner, m: &Manifest) -> Result<()> {
    if let Some(w) = &inner.remote {
        w.commit(
            &*inner.opts.vfs,
            &inner.dir,
            m.encode(),
            &named_files(m),
            m.checkpoint_seq,
        )?;
    }
    Ok(())
}

/// Queues a logged batch for the bucket's log (under the write lock, in sequence order).
pub(crate) fn push(inner: &Inner, seq: u64, count: u32, payload: &[u8]) {
    if let Some(w) = &inner.remote {
        w.push(seq, count, crate::batch::BATCH_RECORD, payload);
    }
}

/// Returns once every operation up to `seq` is in the bucket's log; a failure stops the
/// store (the write was logged and applied but is not acknowledged).
pub(crate) fn ship_to(inner: &Inner, seq: u64) -> Result<()> {
    if let Some(w) = &inner.remote {
        if let Err(e) = w.ship_to(seq) {
            let e = Error::from(e);
            inner.poison(&e);
            return Err(e);
        }
    }
    Ok(())
}

/// After a commit, outside the lock: collects the bucket's garbage now and then.
pub(crate) fn after_commit(inner: &Inner) {
    if let Some(w) = &inner.remote {
        w.collect_garbage_now_and_then();
    }
}

/// Rebuilds a local store in the new or empty directory `dir` from the bucket alone: the
/// newest commit's segments and deletion files, and the bucket's log above the commit's
/// checkpoint (every write acknowledged under [`Durability::Bucket`](crate::Durability::Bucket);
/// writes acknowledged only by a writer's local log are not in the bucket). The copy opens
/// as a plain store, or, with `Options::remote`, continues the bucket's store if nothing
/// was committed meanwhile.
pub fn restore(config: &RemoteConfig, dir: &Path) -> Result<RestoreReport> {
    restore_with(&strata_vfs::os(), config, dir)
}

/// [`restore`] through `fs`.
pub fn restore_with(
    fs: &std::sync::Arc<dyn Vfs>,
    config: &RemoteConfig,
    dir: &Path,
) -> Result<RestoreReport> {
    let fs_arc = fs;
    let fs = &**fs_arc;
    files::create_dir_durably(fs, dir)?;
    if let Some((name, _)) = fs
        .list(dir)
        .map_err(|e| Error::io(dir, e))?
        .into_iter()
        .next()
    {
        return Err(Error::DestinationNotEmpty {
            path: dir.to_path_buf(),
            entry: name,
        });
    }
    let bucket = Bucket::connect(config)?;
    let Some(l) = bucket.latest()? else {
        return Err(strata_remote::Error::Missing(format!(
            "{} (the bucket holds no store)",
            config.url
        ))
        .into());
    };
    let mut report = install_commit(fs, &bucket, dir, &l)?;
    let manifest = decode_manifest(dir, &l)?;
    let records = strata_remote::read_log_after(&bucket, manifest.checkpoint_seq)?;
    report.log_records = records.len() as u64;
    write_log_file(fs_arc, dir, &manifest, &records)?;
    Attachment {
        store_id: l.store_id,
        epoch: 0,
        based_on: l.seq,
        url: config.url.clone(),
    }
    .write(fs, dir)?;
    Ok(report)
}
