//! The one place that maps files: a cheap, cloneable, bounds-checked bytes handle.
//!
//! # Safety
//! `memmap2::Mmap::map` is unsafe because another process could change the file while it
//! is mapped. Strata maps only files it wrote, fsynced and never modifies again (segments
//! are immutable), inside a directory guarded by an exclusive lock. A file truncated behind
//! our back by another program can still raise SIGBUS; that is outside the contract, and
//! the length is checked against the footer before any access.

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

/// What a [`MappedBytes`] views: a memory map of a file, or bytes on the heap (files of
/// the simulated file system, fuzz inputs).
enum Backing {
    Map(Mmap),
    Heap(Box<[u8]>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Heap(h) => h,
        }
    }
}

/// Immutable bytes backed by a shared memory map or heap buffer (or by nothing, when
/// empty).
#[derive(Clone)]
pub struct MappedBytes {
    map: Option<Arc<Backing>>,
    range: Range<usize>,
}

impl std::fmt::Debug for MappedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedBytes")
            .field("len", &self.len())
            .finish()
    }
}

impl MappedBytes {
    /// Maps the whole of the file at `path` read-only.
    pub fn map_file(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(Self::from_vec(Vec::new()));
        }
        // SAFETY: see the module doc: the file is immutable for as long as it is mapped.
        let map = unsafe { Mmap::map(&file) }?;
        let n = map.len();
        Ok(MappedBytes {
            map: Some(Arc::new(Backing::Map(map))),
            range: 0..n,
        })
    }

    /// Bytes held on the heap instead of mapped.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let n = bytes.len();
        MappedBytes {
            map: (n > 0).then(|| Arc::new(Backing::Heap(bytes.into_boxed_slice()))),
            range: 0..n,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.map {
            Some(m) => m.bytes().get(self.range.clone()).unwrap_or(&[]),
            None => &[],
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// Tells the kernel how `range` (relative to this view) will be read: `random` for
    /// data read a record at a time (no readahead beyond the page), else "will need"
    /// (start reading it now). A hint: failures are ignored.
    pub fn advise(&self, range: Range<u64>, random: bool) {
        let (Some(Backing::Map(map)), Ok(start), Ok(end)) = (
            self.map.as_deref(),
            usize::try_from(range.start),
            usize::try_from(range.end),
        ) else {
            return;
        };
        let start = self.range.start + start.min(self.len());
        let end = (self.range.start + end.min(self.len())).max(start);
        // madvise wants a page-aligned start; widen the range down to its page.
        let page = 4096;
        let aligned = start - start % page;
        let advice = if random {
            memmap2::Advice::Random
        } else {
            memmap2::Advice::WillNeed
        };
        let _ = map.advise_range(advice, aligned, end - aligned);
    }

    /// A sub-range, or `None` when it is out of bounds.
    pub fn slice(&self, range: Range<u64>) -> Option<MappedBytes> {
        let start = usize::try_from(range.start).ok()?;
        let end = usize::try_from(range.end).ok()?;
        if start > end || end > self.len() {
            return None;
        }
        Some(MappedBytes {
            map: self.map.clone(),
            range: self.range.start + start..self.range.start + end,
        })
    }
}
