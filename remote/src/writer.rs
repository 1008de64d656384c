//! [`RemoteWriter`]: one writing session of a store in a bucket. It claims the bucket
//! with a commit of its own (fencing every earlier session), uploads each new file under
//! its epoch before the commit that names it, commits with create-only puts, and
//! collects objects no commit needs any more.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::Path as LocalPath;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use strata_vfs::Vfs;

use crate::attachment::Attachment;
use crate::bucket::{Bucket, Put};
use crate::envelope::{RemoteFile, RemoteManifest};
use crate::names::{self, FileKind};
use crate::{Error, Result};

/// What one garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Superseded commits removed.
    pub manifests: u64,
    /// Segment and deletion objects removed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// The commit's sequence number.
    pub seq: u64,
    /// Files uploaded for it (those not uploaded before).
    pub uploaded_files: u64,
    /// Their bytes.
    pub uploaded_bytes: u64,
}

struct State {
    /// The last commit this session made.
    seq: u64,
    /// Where each file of the last commit lives.
    committed: BTreeMap<(FileKind, u64), u64>,
    /// Files this session uploaded that no commit names yet.
    pending: BTreeSet<(FileKind, u64)>,
    /// Set once a commit lost: this session never commits again.
    fenced: Option<u64>,
    last_gc: Option<Instant>,
    /// The files each kept commit names (so collection reads each commit once).
    named: BTreeMap<u64, Vec<RemoteFile>>,
}

/// One writing session of a store in a bucket.
pub struct RemoteWriter {
    bucket: Bucket,
    store_id: u128,
    epoch: u64,
    grace: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for RemoteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriter")
            .field("bucket", &self.bucket.url())
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// 128 random bits from the standard library's randomly keyed hasher.
fn random_id() -> u128 {
    let mut out = 0u128;
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out = (out << 64) | u128::from(h.finish());
    }
    out
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RemoteWriter {
    /// Starts a session on `bucket`, whose newest commit is `latest` (`None` for an empty
    /// bucket), for the local store in `dir` whose manifest is `manifest` naming `files`:
    /// records the claim in `dir/REMOTE`, uploads the files the bucket lacks, and commits
    /// `latest + 1`. Another session committing first is [`Error::Fenced`].
    pub fn claim(
        bucket: Bucket,
        latest: Option<&RemoteManifest>,
        fs: &dyn Vfs,
        dir: &LocalPath,
        manifest: Vec<u8>,
        files: &[(FileKind, u64)],
        grace: Duration,
    ) -> Result<Self> {
        let (store_id, based_on) = latest.map_or_else(|| (random_id(), 0), |m| (m.store_id, m.seq));
        let epoch = based_on + 1;
        Attachment {
            store_id,
            epoch,
            based_on,
            url: bucket.url().to_string(),
        }
        .write(fs, dir)
        .map_err(|source| Error::Io {
            path: dir.join(crate::attachment::FILE),
            source,
        })?;
        let mut known = BTreeMap::new();
        if let Some(m) = latest {
            for f in &m.files {
                known.insert((f.kind, f.no), f.epoch);
            }
        }
        let w = RemoteWriter {
            bucket,
            store_id,
            epoch,
            grace,
            state: Mutex::new(State {
                seq: based_on,
                committed: known,
                pending: BTreeSet::new(),
                fenced: None,
                last_gc: None,
                named: BTreeMap::new(),
            }),
        };
        w.commit(fs, dir, manifest, files)?;
        Ok(w)
    }

    /// The bucket.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// This session's epoch (the sequence number of its claim).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The store's identity.
    pub fn store_id(&self) -> u128 {
        self.store_id
    }

    /// The last commit this session made.
    pub fn seq(&self) -> u64 {
        self.state.lock().seq
    }

    /// Uploads local file `no` of `kind` (in `dir`) unless this session already has it in
    /// the bucket; returns the bytes uploaded. Files are uploaded before the commit that
    /// names them, ahead of it when possible (outside the store's write lock).
    pub fn upload(&self, fs: &dyn Vfs, dir: &LocalPath, kind: FileKind, no: u64) -> Result<u64> {
        {
            let st = self.state.lock();
            if st.committed.contains_key(&(kind, no)) || st.pending.contains(&(kind, no)) {
                return Ok(0);
            }
        }
        let n = self
            .bucket
            .upload(fs, &dir.join(kind.local_name(no)), kind, no, self.epoch)?;
        self.state.lock().pending.insert((kind, no));
        Ok(n)
    }

    /// Commits the local manifest `manifest`, which names `files`: uploads those not in
    /// the bucket yet, then puts `manifest/<seq + 1>` create-only. Losing the put fences
    /// this session ([`Error::Fenced`], now and for every later commit).
    pub fn commit(
        &self,
        fs: &dyn Vfs,
        dir: &LocalPath,
        manifest: Vec<u8>,
        files: &[(FileKind, u64)],
    ) -> Result<CommitReport> {
        if let Some(seq) = self.state.lock().fenced {
            return Err(Error::Fenced { seq });
        }
        let mut report = CommitReport::default();
        for &(kind, no) in files {
            let n = self.upload(fs, dir, kind, no)?;
            if n > 0 {
                report.uploaded_files += 1;
                report.uploaded_bytes += n;
            }
        }
        let mut st = self.state.lock();
        let mut named = Vec::with_capacity(files.len());
        for &(kind, no) in files {
            let epoch = if st.pending.contains(&(kind, no)) {
                self.epoch
            } else if let Some(&e) = st.committed.get(&(kind, no)) {
                e
            } else {
                return Err(Error::Missing(kind.local_name(no)));
            };
            named.push(RemoteFile { kind, no, epoch });
        }
        let m = RemoteManifest {
            seq: st.seq + 1,
            epoch: self.epoch,
            store_id: self.store_id,
            unix_ms: now_ms(),
            files: named,
            manifest,
        };
        match self.bucket.put_manifest(&m)? {
            Put::Created => {}
            Put::Taken => {
                st.fenced = Some(m.seq);
                return Err(Error::Fenced { seq: m.seq });
            }
        }
        for f in &m.files {
            st.pending.remove(&(f.kind, f.no));
        }
        st.committed = m.files.iter().map(|f| ((f.kind, f.no), f.epoch)).collect();
        st.seq = m.seq;
        st.named.insert(m.seq, m.files);
        report.seq = m.seq;
        Ok(report)
    }

    /// Runs [`collect_garbage`](Self::collect_garbage) when the last run is older than a
    /// quarter of the grace period; failures are logged, never returned (garbage only
    /// costs space).
    pub fn collect_garbage_now_and_then(&self) {
        let due = {
            let mut st = self.state.lock();
            let every = self.grace / 4;
            let due = st.fenced.is_none() && st.last_gc.is_none_or(|t| t.elapsed() >= every);
            if due {
                st.last_gc = Some(Instant::now());
            }
            due
        };
        if due {
            if let Err(e) = self.collect_garbage() {
                tracing::warn!(error = %e, "collecting the bucket's garbage failed; it is retried later");
            }
        }
    }

    /// Removes commits superseded for longer than the grace period (never the newest),
    /// then segment and deletion objects that no remaining commit names, that this
    /// session has not uploaded for a commit to come, and that are older than the grace
    /// period (so a replica still reading an older commit, or a writer between its upload
    /// and its commit, finds its objects).
    pub fn collect_garbage(&self) -> Result<GcReport> {
        let grace = self.grace.as_millis() as i64;
        let now = now_ms() as i64;
        let mut report = GcReport::default();
        let manifests = self.bucket.manifests()?;
        let mut keep = Vec::new();
        for (i, &(seq, _)) in manifests.iter().enumerate() {
            match manifests.get(i + 1) {
                Some(&(_, superseded)) if now - superseded > grace => {
                    self.bucket
                        .delete(&names::manifest(self.bucket.prefix(), seq))?;
                    report.manifests += 1;
                }
                _ => keep.push(seq),
            }
        }
        let cached: BTreeMap<u64, Vec<RemoteFile>> = {
            let mut st = self.state.lock();
            st.named.retain(|s, _| keep.contains(s));
            st.named.clone()
        };
        let mut named: HashSet<String> = HashSet::new();
        let mut add = |f: &RemoteFile| {
            named.insert(names::data(self.bucket.prefix(), f.kind, f.no, f.epoch).to_string());
        };
        for seq in &keep {
            match cached.get(seq) {
                Some(files) => files.iter().for_each(&mut add),
                None => match self.bucket.read_manifest(*seq)? {
                    Some(m) => {
                        m.files.iter().for_each(&mut add);
                        self.state.lock().named.insert(*seq, m.files);
                    }
                    // Collected meanwhile by nobody else (only the writer collects): a
                    // concurrent writer took over; leave everything to it.
                    None => return Ok(report),
                },
            }
        }
        for &(kind, no) in &self.state.lock().pending {
            add(&RemoteFile {
                kind,
                no,
                epoch: self.epoch,
            });
        }
        for obj in self.bucket.list(names::DATA)? {
            if !named.contains(obj.path.as_ref()) && now - obj.modified_ms > grace {
                self.bucket.delete(&obj.path)?;
                report.files += 1;
                report.bytes += obj.size;
            }
        }
        Ok(report)
    }
}
