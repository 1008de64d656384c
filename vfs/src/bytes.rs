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

/// The page size `madvise` and `mincore` work in.
const PAGE: usize = 4096;

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

    /// `range` (relative to this view) clamped to it, as offsets in the backing buffer,
    /// its start widened down to its 4 KiB page (what `madvise` and `mincore` take);
    /// `None` when nothing of it is in the view.
    fn page_span(&self, range: Range<u64>) -> Option<Range<usize>> {
        let start = usize::try_from(range.start).ok()?;
        let end = usize::try_from(range.end).ok()?;
        let start = self.range.start + start.min(self.len());
        let end = self.range.start + end.min(self.len());
        (start < end).then(|| start - start % PAGE..end)
    }

    /// Tells the kernel how `range` (relative to this view) will be read: `random` for
    /// data read a record at a time (no readahead beyond the page), else "will need"
    /// (start reading it now). A hint: failures are ignored.
    pub fn advise(&self, range: Range<u64>, random: bool) {
        let (Some(Backing::Map(map)), Some(span)) = (self.map.as_deref(), self.page_span(range))
        else {
            return;
        };
        let advice = if random {
            memmap2::Advice::Random
        } else {
            memmap2::Advice::WillNeed
        };
        let _ = map.advise_range(advice, span.start, span.len());
    }

    /// Which pages under `range` (relative to this view) are in memory (`mincore`):
    /// fills `out` with one entry per 4 KiB page, from the page holding `range.start`
    /// to the one holding its last byte, `true` for a resident page. Heap bytes, and
    /// maps the kernel cannot answer for, read as all resident (a hint, like
    /// [`Self::advise`]).
    pub fn resident_pages(&self, range: Range<u64>, out: &mut Vec<bool>) {
        out.clear();
        let Some(span) = self.page_span(range) else {
            return;
        };
        let mut bits = vec![1u8; span.len().div_ceil(PAGE)];
        if let Some(Backing::Map(map)) = self.map.as_deref() {
            if resident::mincore(map, span.start, span.len(), &mut bits).is_none() {
                bits.fill(1);
            }
        }
        out.extend(bits.iter().map(|&b| b & 1 == 1));
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

/// The page-residency query, where the platform has one.
mod resident {
    use memmap2::Mmap;

    /// Fills `out` (one byte per 4 KiB page) with the residency of `len` bytes of `map`
    /// from `offset` (page-aligned): bit 0 set when the page is in memory. `None` when
    /// the arguments do not fit the map or the kernel refuses.
    #[cfg(target_os = "linux")]
    pub(super) fn mincore(map: &Mmap, offset: usize, len: usize, out: &mut [u8]) -> Option<()> {
        let end = offset.checked_add(len)?;
        if end > map.len() || out.len() < len.div_ceil(4096) || !offset.is_multiple_of(4096) {
            return None;
        }
        let addr = map.as_ptr().wrapping_add(offset);
        // SAFETY: `addr..addr + len` lies inside the live mapping `map` (checked above;
        // mappings start on a page boundary and `offset` is page-aligned), and `out`
        // has room for one byte per page of it, which is all `mincore` writes.
        let rc = unsafe { libc::mincore(addr as *mut libc::c_void, len, out.as_mut_ptr()) };
        (rc == 0).then_some(())
    }

    /// Elsewhere the kernel is not asked: every page counts as resident.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn mincore(_: &Mmap, _: usize, _: usize, _: &mut [u8]) -> Option<()> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_read_through_the_map_are_resident() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 5 * 4096 + 100]).unwrap();
        let bytes = MappedBytes::map_file(&path).unwrap();
        let sum: u64 = bytes.as_slice().iter().map(|&b| u64::from(b)).sum();
        assert_eq!(sum, 7 * (5 * 4096 + 100));
        let mut out = Vec::new();
        bytes.resident_pages(0..bytes.len() as u64, &mut out);
        assert_eq!(out, vec![true; 6]);
        // One entry per page touched, the unaligned start widened to its page.
        bytes.resident_pages(4095..8193, &mut out);
        assert_eq!(out.len(), 3);
        bytes.resident_pages(100..100, &mut out);
        assert!(out.is_empty());
        // Heap bytes have nothing to fetch.
        MappedBytes::from_vec(vec![1; 9000]).resident_pages(0..9000, &mut out);
        assert_eq!(out, vec![true; 3]);
        let sub = bytes.slice(4096..3 * 4096).unwrap();
        sub.resident_pages(0..8192, &mut out);
        assert_eq!(out, vec![true; 2]);
    }
}
