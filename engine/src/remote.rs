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

/// Claims the bucket for this session once the directory's store is recovered.
pub(crate) fn claim(
    fs: &dyn Vfs,
    dir: &Path,
    config: &RemoteConfig,
    bucket: Bucket,
    latest: Option<&RemoteManifest>,
    manifest: &Manifest,
) -> Result<RemoteWriter> {
    let w = RemoteWriter::claim(
        bucket,
        latest,
        fs,
        dir,
        manifest.encode(),
        &named_files(manifest),
        config.gc_grace,
    )?;
    tracing::info!(
        epoch = w.epoch(),
        url = w.bucket().url(),
        "claimed the store's bucket"
    );
    w.collect_garbage_now_and_then();
    Ok(w)
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
        w.commit(&*inner.opts.vfs, &inner.dir, m.encode(), &named_files(m))?;
    }
    Ok(())
}

/// After a commit, outside the lock: collects the bucket's garbage now and then.
pub(crate) fn after_commit(inner: &Inner) {
    if let Some(w) = &inner.remote {
        w.collect_garbage_now_and_then();
    }
}

/// Rebuilds a local store in the new or empty directory `dir` from the bucket's newest
/// commit alone (segments and deletion files; writes acknowledged only by a writer's
/// local log are not in the bucket). The copy opens as a plain store, or, with
/// `Options::remote`, continues the bucket's store if nothing was committed meanwhile.
pub fn restore(config: &RemoteConfig, dir: &Path) -> Result<RestoreReport> {
    restore_with(&strata_vfs::OsVfs, config, dir)
}

/// [`restore`] through `fs`.
pub fn restore_with(fs: &dyn Vfs, config: &RemoteConfig, dir: &Path) -> Result<RestoreReport> {
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
    let report = install_commit(fs, &bucket, dir, &l)?;
    Attachment {
        store_id: l.store_id,
        epoch: 0,
        based_on: l.seq,
        url: config.url.clone(),
    }
    .write(fs, dir)
    .map_err(|e| Error::io(&dir.join(strata_remote::ATTACHMENT_FILE), e))?;
    Ok(report)
}
