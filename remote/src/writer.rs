//! [`RemoteWriter`]: one writing session of a store in a bucket. It claims the bucket
//! with a commit of its own (fencing every earlier session), uploads each new file under
//! its epoch before the commit that names it, commits with create-only puts, and
//! collects objects no commit needs any more.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::Path as LocalPath;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use strata_vfs::Vfs;

use crate::attachment::Attachment;
use crate::bucket::{Bucket, Put};
use crate::envelope::{RemoteFile, RemoteManifest};
use crate::log::{LogObject, LogRecord};
use crate::names::{self, FileKind};
use crate::{Error, Result};

/// What one garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Superseded commits removed.
    pub manifests: u64,
    /// Segment and deletion objects removed.
    pub files: u64,
    /// Log objects removed.
    pub logs: u64,
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
    /// The log checkpoint of the last commit.
    checkpoint: u64,
    /// The last sequence number of each log object whose header collection read.
    log_last: BTreeMap<u64, u64>,
    /// The files each kept commit names (so collection reads each commit once).
    named: BTreeMap<u64, Vec<RemoteFile>>,
}

/// The log records on their way to the bucket.
#[derive(Default)]
struct Ship {
    /// Records queued, in sequence order, not yet shipped.
    queue: Vec<LogRecord>,
    /// The number the next log object takes (set by the fence).
    next_no: u64,
    /// Every operation up to here is in the bucket (shipped, or in a commit's segments).
    shipped: u64,
    /// A thread is putting an object.
    leader: bool,
    /// A ship failed: the outcome is unknown, nothing more is shipped.
    failed: bool,
}

/// What the fence found of the log already in the bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FenceReport {
    /// The fence's object number.
    pub fence_no: u64,
    /// The last sequence number shipped before it (0 if none).
    pub shipped_seq: u64,
    /// The records above the asked-for sequence number, in order (when collected).
    pub records: Vec<LogRecord>,
}

/// Reads a bucket's log objects in order, keeping the records above a sequence number.
struct LogReader {
    /// The last object number read.
    known: u64,
    /// The largest last sequence number seen.
    shipped: u64,
    /// The next sequence number wanted.
    expect: u64,
    records: Vec<LogRecord>,
}

impl LogReader {
    fn new(after: u64) -> Self {
        LogReader {
            known: 0,
            shipped: 0,
            expect: after + 1,
            records: Vec::new(),
        }
    }

    /// Lists the objects after the last one read; with `collect`, reads those holding
    /// wanted records.
    fn read_more(&mut self, bucket: &Bucket, collect: bool) -> Result<()> {
        let listed = bucket.logs_after(self.known)?;
        if !collect {
            // Only the last shipped sequence number: the newest object that is no fence.
            for &no in listed.iter().rev() {
                match bucket.read_log_header(no)? {
                    Some(h) if h.fence => continue,
                    Some(h) => {
                        self.shipped = self.shipped.max(h.last_seq);
                        break;
                    }
                    None => return Err(Error::Missing(format!("log object {no}"))),
                }
            }
            self.known = listed.last().copied().unwrap_or(self.known);
            return Ok(());
        }
        for no in listed {
            self.known = no;
            let h = bucket
                .read_log_header(no)?
                .ok_or_else(|| Error::Missing(format!("log object {no}")))?;
            self.shipped = self.shipped.max(h.last_seq);
            if h.fence || h.last_seq < self.expect {
                continue;
            }
            let o = bucket
                .read_log(no)?
                .ok_or_else(|| Error::Missing(format!("log object {no}")))?;
            for r in o.records {
                if r.last_seq() < self.expect {
                    continue; // already in the commit's segments, or shipped twice
                }
                if r.seq != self.expect {
                    return Err(Error::LogGap {
                        object: no,
                        expected: self.expect,
                        found: r.seq,
                    });
                }
                self.expect = r.last_seq() + 1;
                self.records.push(r);
            }
        }
        Ok(())
    }
}

/// The records of `bucket`'s log above sequence number `after`, in order (reading only).
pub fn read_log_after(bucket: &Bucket, after: u64) -> Result<Vec<LogRecord>> {
    let mut reader = LogReader::new(after);
    reader.read_more(bucket, true)?;
    Ok(reader.records)
}

/// One writing session of a store in a bucket.
pub struct RemoteWriter {
    bucket: Bucket,
    store_id: u128,
    epoch: u64,
    grace: Duration,
    state: Mutex<State>,
    ship: Mutex<Ship>,
    shipped: Condvar,
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
        .write(fs, dir)?;
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
                checkpoint: 0,
                log_last: BTreeMap::new(),
                named: BTreeMap::new(),
            }),
            ship: Mutex::new(Ship::default()),
            shipped: Condvar::new(),
        };
        let checkpoint = latest.map_or(0, |m| m.checkpoint_seq);
        w.commit(fs, dir, manifest, files, checkpoint)?;
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
        checkpoint_seq: u64,
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
            checkpoint_seq,
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
        st.checkpoint = checkpoint_seq;
        st.named.insert(m.seq, m.files);
        report.seq = m.seq;
        drop(st);
        self.trim(checkpoint_seq);
        Ok(report)
    }

    /// Fences every earlier session's log: puts a fence object at the next free log
    /// number (after each object found there, the next one), so an older session's next
    /// ship fails. With `collect`, returns the records above sequence number `after` found
    /// in the bucket, in order (to rebuild a log the directory lacks). Call once, after
    /// the claim and before shipping.
    pub fn fence_log(&self, after: u64, collect: bool) -> Result<FenceReport> {
        let mut report = FenceReport::default();
        let mut reader = LogReader::new(after);
        loop {
            reader.read_more(&self.bucket, collect)?;
            report.shipped_seq = reader.shipped;
            let known = reader.known;
            let fence = LogObject {
                epoch: self.epoch,
                no: known + 1,
                fence: true,
                records: Vec::new(),
            };
            if self.bucket.put_log(&fence)? == Put::Created {
                report.fence_no = fence.no;
                report.records = std::mem::take(&mut reader.records);
                let mut s = self.ship.lock();
                s.next_no = fence.no + 1;
                s.shipped = s.shipped.max(report.shipped_seq).max(after);
                return Ok(report);
            }
            // Someone put that number first: an older session's last ship (read it on
            // the next pass) or another claimant's fence.
        }
    }

    /// Queues one local log record (operations `seq .. seq + count`) for the bucket. The
    /// caller pushes in sequence order (under its write lock).
    pub fn push(&self, seq: u64, count: u32, kind: u8, payload: &[u8]) {
        self.ship.lock().queue.push(LogRecord {
            seq,
            count,
            kind,
            payload: payload.to_vec(),
        });
    }

    /// Operations up to `seq` are in a commit's segments: they need no shipping.
    pub fn trim(&self, seq: u64) {
        let mut s = self.ship.lock();
        s.queue.retain(|r| r.last_seq() > seq);
        s.shipped = s.shipped.max(seq);
        self.shipped.notify_all();
    }

    /// Returns once every operation up to `seq` is in the bucket. Concurrent callers share
    /// puts: the first becomes the leader and ships everything queued as one log object;
    /// the others wait and are covered by it (group commit). A put that fails leaves the
    /// outcome unknown: nothing more is shipped and every caller gets the error.
    pub fn ship_to(&self, seq: u64) -> Result<()> {
        let mut s = self.ship.lock();
        loop {
            if let Some(seq) = self.state.lock().fenced {
                return Err(Error::Fenced { seq });
            }
            if s.failed {
                return Err(Error::ShipFailed);
            }
            if s.shipped >= seq {
                return Ok(());
            }
            if s.leader {
                self.shipped.wait(&mut s);
                continue;
            }
            if s.queue.is_empty() || s.next_no == 0 {
                return Err(Error::ShipFailed);
            }
            s.leader = true;
            let o = LogObject {
                epoch: self.epoch,
                no: s.next_no,
                fence: false,
                records: std::mem::take(&mut s.queue),
            };
            drop(s);
            let res = self.bucket.put_log(&o);
            s = self.ship.lock();
            s.leader = false;
            self.shipped.notify_all();
            match res {
                Ok(Put::Created) => {
                    s.next_no += 1;
                    s.shipped = s.shipped.max(o.last_seq());
                }
                Ok(Put::Taken) => {
                    s.failed = true;
                    let mut st = self.state.lock();
                    let lost = st.seq + 1;
                    st.fenced = Some(lost);
                    return Err(Error::Fenced { seq: lost });
                }
                Err(e) => {
                    s.failed = true;
                    return Err(e);
                }
            }
        }
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
        // Log objects whose records are all in the last commit's segments (and fences),
        // but never the newest: it keeps the numbering that fences rely on.
        let checkpoint = self.state.lock().checkpoint;
        let mut logs: Vec<(u64, crate::Listed)> = self
            .bucket
            .list(names::LOGS)?
            .into_iter()
            .filter_map(|l| Some((names::parse_manifest(l.path.filename()?)?, l)))
            .collect();
        logs.sort_unstable_by_key(|l| l.0);
        logs.pop();
        for (no, obj) in logs {
            if now - obj.modified_ms <= grace {
                continue;
            }
            let cached = self.state.lock().log_last.get(&no).copied();
            let last = match cached {
                Some(last) => last,
                None => match self.bucket.read_log_header(no)? {
                    Some(h) => {
                        self.state.lock().log_last.insert(no, h.last_seq);
                        h.last_seq
                    }
                    None => continue,
                },
            };
            if last <= checkpoint {
                self.state.lock().log_last.remove(&no);
                self.bucket.delete(&obj.path)?;
                report.logs += 1;
                report.bytes += obj.size;
            }
        }
        Ok(report)
    }
}
