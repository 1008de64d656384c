//! A simulated file system with an explicit durability model, for crash tests.
//!
//! Each file (inode) holds the bytes written so far and the bytes that were durable at
//! its last sync. Each directory holds its current entries, the entries that were durable
//! at its last sync, and the entry changes since then (create, unlink, rename: each one
//! atomic, in order). [`SimVfs::power_cut`] builds the file system a power loss could
//! leave: directories keep their synced entries plus a prefix of the later changes (a
//! journal commits metadata in order), files their synced bytes plus, by the chosen
//! [`CutStyle`], nothing, everything, a prefix, or a random subset of 512-byte sectors
//! (writeback reorders pages; a sector can be torn) of what was pending.
//!
//! A directory made by `create_dir_all` survives a power cut only once its parent was
//! synced, and a file's sync does not make its directory entry durable: only
//! [`Vfs::sync_dir`] of the directory holding the entry does, as POSIX demands.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking::Mutex;

use super::{SimRng, Vfs, VfsFile, VfsLock};
use crate::bytes::MappedBytes;

mod parking {
    /// `std::sync::Mutex` that ignores poisoning: a test thread that panicked must not
    /// hide the file system from the checks that follow.
    #[derive(Debug, Default)]
    pub struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub fn new(t: T) -> Self {
            Mutex(std::sync::Mutex::new(t))
        }

        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// How [`SimVfs::power_cut`] treats what was not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutStyle {
    /// Only what was synced survives: the worst case every mode must survive.
    SyncedOnly,
    /// A random, seeded mix per file and directory: nothing, everything, a prefix, or a
    /// random subset of sectors (possibly one torn inside) of the pending bytes, and a
    /// random prefix of the pending directory changes.
    Random(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

/// One atomic directory change: names set to an inode or removed.
type DirChange = Vec<(String, Option<u64>)>;

#[derive(Debug, Clone, Default)]
struct Dir {
    names: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
    pending: Vec<DirChange>,
    /// Whether this directory's own entry in its parent is durable (the parent was
    /// synced since it was created); a power cut loses it otherwise.
    entry_synced: bool,
}

impl Dir {
    fn change(&mut self, change: DirChange) {
        for (name, ino) in &change {
            match ino {
                Some(i) => self.names.insert(name.clone(), *i),
                None => self.names.remove(name),
            };
        }
        self.pending.push(change);
    }
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    next_ino: u64,
    locks: HashSet<PathBuf>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file (simulated)", path.display()),
    )
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad file name"))?;
    Ok((parent, name.to_string()))
}

impl State {
    fn ino(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dirs
            .get(&dir)
            .and_then(|d| d.names.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn inode(&mut self, path: &Path) -> io::Result<&mut Inode> {
        let ino = self.ino(path)?;
        self.inodes.get_mut(&ino).ok_or_else(|| not_found(path))
    }

    fn dir(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }
}

/// The simulated file system. Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
}

impl VfsFile for SimFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        let node = st.inodes.entry(self.ino).or_default();
        node.data.extend_from_slice(buf);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        let node = st.inodes.entry(self.ino).or_default();
        node.synced = node.data.clone();
        Ok(())
    }
}

struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl VfsLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.path);
    }
}

impl SimVfs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// The file system a power cut at this moment could leave behind: everything in it is
    /// durable, no lock is held. This file system is left as it is.
    pub fn power_cut(&self, style: CutStyle) -> SimVfs {
        let st = self.state.lock();
        let mut rng = match style {
            CutStyle::SyncedOnly => None,
            CutStyle::Random(seed) => Some(SimRng::new(seed)),
        };
        let mut out = State {
            next_ino: st.next_ino,
            ..State::default()
        };
        let lost = |path: &Path| {
            let mut p = Some(path);
            while let Some(d) = p {
                if st.dirs.get(d).is_some_and(|x| !x.entry_synced) {
                    return true;
                }
                p = d.parent();
            }
            false
        };
        for (path, dir) in &st.dirs {
            if lost(path) {
                continue;
            }
            let mut names = dir.durable.clone();
            let keep = rng
                .as_mut()
                .map_or(0, |r| r.below(dir.pending.len() as u64 + 1) as usize);
            for change in dir.pending.iter().take(keep) {
                for (name, ino) in change {
                    match ino {
                        Some(i) => names.insert(name.clone(), *i),
                        None => names.remove(name),
                    };
                }
            }
            for ino in names.values() {
                if out.inodes.contains_key(ino) {
                    continue;
                }
                let node = st.inodes.get(ino).cloned().unwrap_or_default();
                let bytes = match rng.as_mut() {
                    None => node.synced,
                    Some(r) => cut_file(&node, r),
                };
                out.inodes.insert(
                    *ino,
                    Inode {
                        data: bytes.clone(),
                        synced: bytes,
                    },
                );
            }
            out.dirs.insert(
                path.clone(),
                Dir {
                    durable: names.clone(),
                    names,
                    pending: Vec::new(),
                    entry_synced: true,
                },
            );
        }
        SimVfs {
            state: Arc::new(Mutex::new(out)),
        }
    }

    /// Writes `bytes` as the whole, durable content of `path` (creating the parent
    /// directory): how a test plants a damaged or stale file.
    pub fn put(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let (dir, name) = split(path)?;
        self.create_dir_all(&dir)?;
        let mut st = self.state.lock();
        let mut p = Some(dir.as_path());
        while let Some(d) = p {
            if let Some(x) = st.dirs.get_mut(d) {
                x.entry_synced = true;
            }
            p = d.parent();
        }
        st.next_ino += 1;
        let ino = st.next_ino;
        st.inodes.insert(
            ino,
            Inode {
                data: bytes.to_vec(),
                synced: bytes.to_vec(),
            },
        );
        let d = st.dir(&dir)?;
        d.names.insert(name.clone(), ino);
        d.durable.insert(name, ino);
        Ok(())
    }

    /// Bytes written to files but not yet synced, over all files.
    pub fn pending_bytes(&self) -> u64 {
        let st = self.state.lock();
        st.inodes
            .values()
            .map(|n| n.data.len().abs_diff(n.synced.len()) as u64)
            .sum()
    }
}

/// The bytes of one file after a power cut, by a random choice.
fn cut_file(node: &Inode, r: &mut SimRng) -> Vec<u8> {
    let (old, new) = (&node.synced, &node.data);
    if old == new {
        return new.clone();
    }
    match r.below(4) {
        0 => old.clone(),
        1 => new.clone(),
        2 if new.starts_with(old) => {
            let extra = r.below((new.len() - old.len()) as u64 + 1) as usize;
            new.get(..old.len() + extra).unwrap_or(new).to_vec()
        }
        _ => {
            // Sectors of the new content reach the disk in any order; the file length
            // is the new one or the old one; one sector may be torn.
            const SECTOR: usize = 512;
            let len = if r.below(2) == 0 {
                new.len()
            } else {
                old.len()
            };
            let mut out = old.clone();
            out.resize(len, 0);
            let mut at = 0;
            while at < len {
                let end = (at + SECTOR).min(len);
                let take = match r.below(8) {
                    0..=2 => end,
                    3 => at + r.below((end - at) as u64) as usize,
                    _ => at,
                };
                if let (Some(dst), Some(src)) = (out.get_mut(at..take), new.get(at..take)) {
                    dst.copy_from_slice(src);
                }
                at = end;
            }
            out
        }
    }
}

impl Vfs for SimVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let mut p = Some(dir);
        while let Some(d) = p {
            let root = d.parent().is_none() || d.as_os_str().is_empty();
            st.dirs.entry(d.to_path_buf()).or_insert_with(|| Dir {
                entry_synced: root,
                ..Dir::default()
            });
            p = d.parent();
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(String, u64)>> {
        let st = self.state.lock();
        let d = st.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(d.names
            .iter()
            .map(|(n, i)| {
                let len = st.inodes.get(i).map_or(0, |x| x.data.len() as u64);
                (n.clone(), len)
            })
            .collect())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let st = self.state.lock();
        Ok(st.dirs.contains_key(path) || st.ino(path).is_ok())
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(self.state.lock().inode(path)?.data.len() as u64)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let (dir, name) = split(path)?;
        let mut st = self.state.lock();
        if st.ino(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists (simulated)", path.display()),
            ));
        }
        st.next_ino += 1;
        let ino = st.next_ino;
        st.dir(&dir)?.change(vec![(name, Some(ino))]);
        st.inodes.insert(ino, Inode::default());
        Ok(Arc::new(SimFile {
            state: self.state.clone(),
            ino,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(self.state.lock().inode(path)?.data.clone())
    }

    fn map(&self, path: &Path) -> io::Result<MappedBytes> {
        self.read(path).map(MappedBytes::from_vec)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (fdir, fname) = split(from)?;
        let (tdir, tname) = split(to)?;
        let mut st = self.state.lock();
        let ino = st.ino(from)?;
        if fdir != tdir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "rename across directories (simulated)",
            ));
        }
        st.dir(&fdir)?
            .change(vec![(fname, None), (tname, Some(ino))]);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = split(path)?;
        let mut st = self.state.lock();
        st.ino(path)?;
        st.dir(&dir)?.change(vec![(name, None)]);
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        let node = st.inode(path)?;
        node.data.resize(len as usize, 0);
        node.synced = node.data.clone();
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let node = st.inode(path)?;
        node.synced = node.data.clone();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let d = st.dir(dir)?;
        d.durable = d.names.clone();
        d.pending.clear();
        for (path, child) in st.dirs.iter_mut() {
            if path.parent() == Some(dir) {
                child.entry_synced = true;
            }
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn VfsLock>> {
        let mut st = self.state.lock();
        if !st.locks.insert(path.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(SimLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn fs_with_dir() -> (SimVfs, PathBuf) {
        let fs = SimVfs::new();
        let d = PathBuf::from("/db");
        fs.create_dir_all(&d).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        (fs, d)
    }

    #[test]
    fn synced_only_keeps_exactly_what_was_synced() {
        let (fs, d) = fs_with_dir();
        let f = fs.create_new(&d.join("a")).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync().unwrap();
        f.write_all(b" world").unwrap();
        // The entry is not durable yet: a cut loses the whole file.
        assert!(!fs
            .power_cut(CutStyle::SyncedOnly)
            .exists(&d.join("a"))
            .unwrap());
        fs.sync_dir(&d).unwrap();
        let img = fs.power_cut(CutStyle::SyncedOnly);
        assert_eq!(img.read(&d.join("a")).unwrap(), b"hello");
        // The original keeps everything.
        assert_eq!(fs.read(&d.join("a")).unwrap(), b"hello world");
    }

    #[test]
    fn rename_is_atomic_and_needs_a_directory_sync() {
        let (fs, d) = fs_with_dir();
        fs.put(&d.join("M"), b"old").unwrap();
        let t = fs.create_new(&d.join("M.tmp")).unwrap();
        t.write_all(b"new").unwrap();
        t.sync().unwrap();
        fs.rename(&d.join("M.tmp"), &d.join("M")).unwrap();
        for seed in 0..64 {
            let img = fs.power_cut(CutStyle::Random(seed));
            let m = img.read(&d.join("M")).unwrap();
            assert!(m == b"old" || m == b"new", "{m:?}");
        }
        fs.sync_dir(&d).unwrap();
        let img = fs.power_cut(CutStyle::SyncedOnly);
        assert_eq!(img.read(&d.join("M")).unwrap(), b"new");
        assert!(!img.exists(&d.join("M.tmp")).unwrap());
    }

    #[test]
    fn random_cuts_keep_the_synced_prefix_and_vary_the_rest() {
        let (fs, d) = fs_with_dir();
        let f = fs.create_new(&d.join("w")).unwrap();
        fs.sync_dir(&d).unwrap();
        f.write_all(&[1u8; 1000]).unwrap();
        f.sync().unwrap();
        f.write_all(&[2u8; 3000]).unwrap();
        let mut lens = HashSet::new();
        for seed in 0..200 {
            let b = fs
                .power_cut(CutStyle::Random(seed))
                .read(&d.join("w"))
                .unwrap();
            assert!(b.len() >= 1000 && b.len() <= 4000);
            assert!(b[..1000].iter().all(|&x| x == 1));
            assert!(b[1000..].iter().all(|&x| x == 2 || x == 0));
            lens.insert(b.len());
        }
        assert!(lens.len() > 3, "cuts should vary: {lens:?}");
    }

    #[test]
    fn a_new_directory_needs_its_parent_synced() {
        let fs = SimVfs::new();
        let d = Path::new("/a/db");
        fs.create_dir_all(d).unwrap();
        fs.put(Path::new("/a/keep"), b"x").unwrap();
        assert!(!fs.power_cut(CutStyle::SyncedOnly).exists(d).unwrap());
        fs.sync_dir(Path::new("/a")).unwrap();
        assert!(fs.power_cut(CutStyle::SyncedOnly).exists(d).unwrap());
    }

    #[test]
    fn locks_exclude_until_dropped() {
        let (fs, d) = fs_with_dir();
        let l = fs.lock(&d.join("LOCK")).unwrap();
        let e = fs.lock(&d.join("LOCK")).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(l);
        fs.lock(&d.join("LOCK")).unwrap();
    }
}
