//! Fault injection: a [`Vfs`] wrapper that numbers every operation and asks an
//! [`Injector`] what to do with it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::{Vfs, VfsFile, VfsLock};
use crate::bytes::MappedBytes;

/// The kinds of operation a [`FaultVfs`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `create_dir_all`.
    CreateDir,
    /// `list`.
    List,
    /// `exists`.
    Exists,
    /// `len`.
    Len,
    /// `create_new`.
    Create,
    /// An append through a file handle.
    Write,
    /// A sync through a file handle.
    FileSync,
    /// `read`.
    Read,
    /// `map`.
    Map,
    /// `rename`.
    Rename,
    /// `remove`.
    Remove,
    /// `truncate`.
    Truncate,
    /// `sync_file`.
    SyncFile,
    /// `sync_dir`.
    SyncDir,
    /// `lock`.
    Lock,
}

impl Op {
    /// Whether the operation changes what is on disk (or makes it durable).
    pub fn mutates(self) -> bool {
        matches!(
            self,
            Op::CreateDir
                | Op::Create
                | Op::Write
                | Op::FileSync
                | Op::Rename
                | Op::Remove
                | Op::Truncate
                | Op::SyncFile
                | Op::SyncDir
        )
    }
}

/// What to do with one operation.
#[derive(Debug)]
pub enum Action {
    /// Carry it out.
    Proceed,
    /// Fail it with this error, changing nothing.
    Fail(io::Error),
    /// For a write, append the first `keep` bytes and then fail with the error (a short
    /// write, as when the disk fills mid-write); for other operations, like `Fail`.
    ShortWrite {
        /// Bytes that reach the file.
        keep: usize,
        /// The error returned.
        error: io::Error,
    },
    /// The machine dies: a write keeps its first `keep` bytes, then the crash hook runs
    /// (a child process kills itself there) and, if it returns, this and every later
    /// operation fail.
    Crash {
        /// Bytes of a write that reach the file.
        keep: usize,
    },
}

/// Decides the fate of operation number `n` (from 1) of kind `op` on `path`. `len` is the
/// size of a write, else 0.
pub trait Injector: Send + Sync {
    /// The decision.
    fn decide(&self, n: u64, op: Op, path: &Path, len: usize) -> Action;
}

impl<F> Injector for F
where
    F: Fn(u64, Op, &Path, usize) -> Action + Send + Sync,
{
    fn decide(&self, n: u64, op: Op, path: &Path, len: usize) -> Action {
        self(n, op, path, len)
    }
}

/// The plan most tests use ([`FaultVfs::failing`]): fail the `at`-th operation that
/// changes the disk ([`Op::mutates`]), once or from then on, with OS error `errno`.
#[derive(Debug, Clone, Copy)]
pub struct FailPlan {
    /// The operation to fail (1-based, in the counted kind).
    pub at: u64,
    /// Fail every counted operation from `at` on, instead of only that one.
    pub persistent: bool,
    /// The OS error number (`libc::ENOSPC` is 28, `EIO` 5 on Linux).
    pub errno: i32,
}

struct Shared {
    ops: AtomicU64,
    mutations: AtomicU64,
    /// A crash was decided and its hook is running: other operations wait for it.
    crashing: AtomicBool,
    dead: AtomicBool,
    injector: Box<dyn Injector>,
    crash_hook: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// A [`Vfs`] that counts operations and injects failures and crashes.
#[derive(Clone)]
pub struct FaultVfs {
    inner: Arc<dyn Vfs>,
    shared: Arc<Shared>,
}

impl fmt::Debug for FaultVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultVfs")
            .field("inner", &self.inner)
            .field("ops", &self.ops())
            .finish()
    }
}

impl FaultVfs {
    /// Wraps `inner`, asking `injector` about every operation.
    pub fn new(inner: Arc<dyn Vfs>, injector: impl Injector + 'static) -> Self {
        FaultVfs {
            inner,
            shared: Arc::new(Shared {
                ops: AtomicU64::new(0),
                mutations: AtomicU64::new(0),
                crashing: AtomicBool::new(false),
                dead: AtomicBool::new(false),
                injector: Box::new(injector),
                crash_hook: OnceLock::new(),
            }),
        }
    }

    /// Wraps `inner`, counting only.
    pub fn counting(inner: Arc<dyn Vfs>) -> Self {
        Self::new(inner, |_: u64, _: Op, _: &Path, _: usize| Action::Proceed)
    }

    /// Wraps `inner` with a [`FailPlan`] over the operations that change the disk.
    pub fn failing(inner: Arc<dyn Vfs>, plan: FailPlan) -> Self {
        let mutations = AtomicU64::new(0);
        Self::new(inner, move |_: u64, op: Op, _: &Path, len: usize| {
            if !op.mutates() {
                return Action::Proceed;
            }
            let m = mutations.fetch_add(1, Ordering::Relaxed) + 1;
            if m == plan.at || plan.persistent && m > plan.at {
                let error = io::Error::from_raw_os_error(plan.errno);
                if op == Op::Write && len > 1 {
                    return Action::ShortWrite {
                        keep: len / 2,
                        error,
                    };
                }
                return Action::Fail(error);
            }
            Action::Proceed
        })
    }

    /// Runs `hook` when an [`Action::Crash`] is decided (before later operations fail).
    /// Only the first hook set counts.
    pub fn with_crash_hook(self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        let _ = self.shared.crash_hook.set(Box::new(hook));
        self
    }

    /// Operations seen so far.
    pub fn ops(&self) -> u64 {
        self.shared.ops.load(Ordering::Relaxed)
    }

    /// Operations that changed the disk so far.
    pub fn mutations(&self) -> u64 {
        self.shared.mutations.load(Ordering::Relaxed)
    }

    /// Whether a crash was injected (every operation fails since).
    pub fn crashed(&self) -> bool {
        self.shared.dead.load(Ordering::Acquire)
    }

    /// Asks the injector; `Ok(keep)` to proceed (`keep` bytes of a write, then the
    /// error, if any).
    fn gate(&self, op: Op, path: &Path, len: usize) -> Gate {
        gate(&self.shared, op, path, len)
    }
}

enum Gate {
    Go,
    Partial(usize, io::Error),
    CrashAfter(usize),
    Stop(io::Error),
}

fn dead_error() -> io::Error {
    io::Error::other("simulated crash: the machine is down")
}

fn gate(s: &Shared, op: Op, path: &Path, len: usize) -> Gate {
    // Nothing may happen after the crash point: wait for the crash to finish (a hook
    // that kills the process never lets it).
    while s.crashing.load(Ordering::Acquire) && !s.dead.load(Ordering::Acquire) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if s.dead.load(Ordering::Acquire) {
        return Gate::Stop(dead_error());
    }
    let n = s.ops.fetch_add(1, Ordering::Relaxed) + 1;
    if op.mutates() {
        s.mutations.fetch_add(1, Ordering::Relaxed);
    }
    match s.injector.decide(n, op, path, len) {
        Action::Proceed => Gate::Go,
        Action::Fail(e) => Gate::Stop(e),
        Action::ShortWrite { keep, error } if op == Op::Write => {
            Gate::Partial(keep.min(len), error)
        }
        Action::ShortWrite { error, .. } => Gate::Stop(error),
        Action::Crash { keep } => {
            s.crashing.store(true, Ordering::Release);
            // A partial write lands first; `FaultFile::write_all` then crashes.
            if op == Op::Write && keep > 0 {
                return Gate::CrashAfter(keep.min(len));
            }
            crash(s);
            Gate::Stop(dead_error())
        }
    }
}

/// Runs the crash hook (which may kill the process), then fails everything from now on.
/// The hook runs first so that no other thread can see an error from a "dead" machine
/// and act on it before the process dies.
fn crash(s: &Shared) {
    if let Some(h) = s.crash_hook.get() {
        h();
    }
    s.dead.store(true, Ordering::Release);
}

struct FaultFile {
    inner: Arc<dyn VfsFile>,
    shared: Arc<Shared>,
    path: PathBuf,
}

impl VfsFile for FaultFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        match gate(&self.shared, Op::Write, &self.path, buf.len()) {
            Gate::Go => self.inner.write_all(buf),
            Gate::Partial(keep, e) => {
                self.inner.write_all(buf.get(..keep).unwrap_or(buf))?;
                Err(e)
            }
            Gate::CrashAfter(keep) => {
                let res = self.inner.write_all(buf.get(..keep).unwrap_or(buf));
                crash(&self.shared);
                res.and(Err(dead_error()))
            }
            Gate::Stop(e) => Err(e),
        }
    }

    fn sync(&self) -> io::Result<()> {
        match gate(&self.shared, Op::FileSync, &self.path, 0) {
            Gate::Go => self.inner.sync(),
            Gate::CrashAfter(_) => Err(dead_error()),
            Gate::Partial(_, e) | Gate::Stop(e) => Err(e),
        }
    }
}

macro_rules! gated {
    ($self:ident, $op:expr, $path:expr, $call:expr) => {
        match $self.gate($op, $path, 0) {
            Gate::Go => $call,
            Gate::CrashAfter(_) => Err(dead_error()),
            Gate::Partial(_, e) | Gate::Stop(e) => Err(e),
        }
    };
}

impl Vfs for FaultVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        gated!(self, Op::CreateDir, dir, self.inner.create_dir_all(dir))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(String, u64)>> {
        gated!(self, Op::List, dir, self.inner.list(dir))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        gated!(self, Op::Exists, path, self.inner.exists(path))
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        gated!(self, Op::Len, path, self.inner.len(path))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let f = gated!(self, Op::Create, path, self.inner.create_new(path))?;
        Ok(Arc::new(FaultFile {
            inner: f,
            shared: self.shared.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        gated!(self, Op::Read, path, self.inner.read(path))
    }

    fn map(&self, path: &Path) -> io::Result<MappedBytes> {
        gated!(self, Op::Map, path, self.inner.map(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        gated!(self, Op::Rename, to, self.inner.rename(from, to))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        gated!(self, Op::Remove, path, self.inner.remove(path))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        gated!(self, Op::Truncate, path, self.inner.truncate(path, len))
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        gated!(self, Op::SyncFile, path, self.inner.sync_file(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        gated!(self, Op::SyncDir, dir, self.inner.sync_dir(dir))
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn VfsLock>> {
        gated!(self, Op::Lock, path, self.inner.lock(path))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::SimVfs;

    #[test]
    fn fails_the_planned_mutation_once_or_from_then_on() {
        for persistent in [false, true] {
            let sim = SimVfs::new();
            sim.create_dir_all(Path::new("/d")).unwrap();
            let plan = FailPlan {
                at: 2,
                persistent,
                errno: 28,
            };
            let fs = FaultVfs::failing(Arc::new(sim.clone()), plan);
            let f = fs.create_new(Path::new("/d/a")).unwrap();
            let e = f.write_all(b"abcd").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(28));
            // Half of the write reached the file: a short write.
            assert_eq!(sim.read(Path::new("/d/a")).unwrap(), b"ab");
            assert_eq!(f.sync().is_err(), persistent);
            assert!(
                fs.exists(Path::new("/d/a")).unwrap(),
                "reads are not counted"
            );
        }
    }

    #[test]
    fn a_crash_stops_everything_after_it() {
        let sim = SimVfs::new();
        let fs = FaultVfs::new(Arc::new(sim), |n: u64, _: Op, _: &Path, _: usize| {
            if n == 3 {
                Action::Crash { keep: 1 }
            } else {
                Action::Proceed
            }
        });
        fs.create_dir_all(Path::new("/d")).unwrap();
        let f = fs.create_new(Path::new("/d/a")).unwrap();
        assert!(f.write_all(b"xyz").is_err());
        assert!(fs.crashed());
        assert!(fs.list(Path::new("/d")).is_err());
        assert_eq!(fs.ops(), 3);
    }
}
