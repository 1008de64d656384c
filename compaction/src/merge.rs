//! The merge job: the live rows of some segments into one new segment.
//!
//! Reads each input's rows that its deletion bitmap (as of the caller's snapshot) leaves
//! live, orders them by id, and writes one segment with [`crate::build::write_segment`]
//! (PQ codebooks are always retrained on the merged rows, so a codebook never drifts
//! from the data it encodes, and the graph is rebuilt without the deleted rows). The
//! job knows nothing of manifests: it returns where each output row came from, and the
//! engine installs the file, carrying over deletions that happened while it ran.

use std::path::Path;

use strata_format::{DeletionBitmap, SegmentReader};
use strata_index::Metric;

use crate::build::{write_segment, BuildReport, IndexOptions, Progress, SegmentRows, Stage};

/// One input segment as of the caller's snapshot.
#[derive(Clone, Copy)]
pub struct MergeSource<'a> {
    /// The segment.
    pub reader: &'a SegmentReader,
    /// Its deleted rows in the snapshot.
    pub deleted: &'a DeletionBitmap,
}

/// Where the output goes and how it is built.
pub struct MergeSpec<'a> {
    /// The file system the output is written through.
    pub fs: &'a dyn strata_vfs::Vfs,
    /// The new segment file.
    pub path: &'a Path,
    /// Metric of the store.
    pub metric: Metric,
    /// Index parameters (an index is built when the output is large enough).
    pub index: &'a IndexOptions,
    /// Metadata paths left out of the output's field index.
    pub unindexed: &'a [String],
    /// How the output stores its vectors (inputs are decoded to `f32` and re-encoded).
    pub vector_codec: strata_format::VectorCodec,
    /// How the rows' texts become terms (the store's analyzer).
    pub analyzer: strata_index::text::Analyzer,
}

/// A written merge output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// Rows in the new segment.
    pub rows: usize,
    /// For output row `r`: `(input position, input row)`.
    pub origin: Vec<(u32, u32)>,
    /// Whether the output has an index.
    pub indexed: bool,
    /// How the output was built (devices, stage times).
    pub build: BuildReport,
    /// Rows of the inputs that were dropped as deleted.
    pub dropped: usize,
}

/// What a merge produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The output file was written and synced.
    Written(Merged),
    /// Every input row was deleted: there is no output file.
    Empty {
        /// Rows dropped.
        dropped: usize,
    },
    /// `progress` asked to stop; there is no output file.
    Stopped,
}

/// Merges `sources` into `spec.path`. Ids must be unique among the live rows of the
/// inputs (the store's invariant: one live copy per id); a duplicate is reported as
/// corruption of the later input rather than silently resolved.
pub fn merge(
    sources: &[MergeSource<'_>],
    spec: &MergeSpec<'_>,
    progress: &Progress<'_>,
) -> strata_format::Result<MergeOutcome> {
    let Some(first) = sources.first() else {
        return Ok(MergeOutcome::Empty { dropped: 0 });
    };
    let dim = first.reader.dim();
    let total: usize = sources.iter().map(|s| s.reader.rows()).sum();
    if let Some(bad) = sources.iter().find(|s| s.reader.dim() != dim) {
        return Err(invalid(bad.reader.path(), "segment dimension differs"));
    }
    // Live rows of every input, ordered by id.
    let mut origin: Vec<(u64, u32, u32)> = Vec::with_capacity(total);
    for (i, s) in sources.iter().enumerate() {
        let ids = s.reader.ids();
        origin.extend(
            (0..s.reader.rows())
                .filter(|&r| !s.deleted.contains(r))
                .map(|r| (ids[r], i as u32, r as u32)),
        );
    }
    let dropped = total - origin.len();
    if origin.is_empty() {
        return Ok(MergeOutcome::Empty { dropped });
    }
    origin.sort_unstable();
    if let Some(w) = origin.windows(2).find(|w| w[0].0 == w[1].0) {
        let later = sources[w[1].1 as usize].reader.path();
        return Err(invalid(later, "an id is live in two merged segments"));
    }
    if !progress(Stage::Read, 0, origin.len() as u64) {
        return Ok(MergeOutcome::Stopped);
    }
    let ids: Vec<u64> = origin.iter().map(|o| o.0).collect();
    let mut vectors = Vec::with_capacity(origin.len() * dim);
    let mut payloads: Vec<Option<Vec<u8>>> = Vec::with_capacity(origin.len());
    let mut metadata: Vec<Option<Vec<u8>>> = Vec::with_capacity(origin.len());
    let mut payload_cache = SourceColumn::default();
    let mut metadata_cache = SourceColumn::default();
    let mut texts: Vec<Option<String>> = Vec::with_capacity(origin.len());
    let mut text_cache = SourceColumn::default();
    for (n, &(_, src, row)) in origin.iter().enumerate() {
        let s = &sources[src as usize];
        let row = row as usize;
        s.reader.read_vectors(row..row + 1, &mut vectors)?;
        payloads.push(payload_cache.item(src, row, |b| s.reader.block_payloads(b))?);
        metadata.push(metadata_cache.item(src, row, |b| s.reader.block_metadata(b))?);
        texts.push(text_cache.item(src, row, |b| s.reader.block_texts(b))?);
        if n % 65_536 == 65_535 && !progress(Stage::Read, n as u64 + 1, origin.len() as u64) {
            return Ok(MergeOutcome::Stopped);
        }
    }
    let keys: Vec<&str> = if sources.iter().any(|s| s.reader.has_keys()) {
        let mut keys = Vec::with_capacity(origin.len());
        for &(_, src, row) in &origin {
            let s = &sources[src as usize];
            let key = s.reader.key(row as usize)?.ok_or_else(|| {
                invalid(
                    s.reader.path(),
                    "a segment of a string-keyed store has no keys",
                )
            })?;
            keys.push(key);
        }
        keys
    } else {
        Vec::new()
    };
    let payload_refs: Vec<Option<&[u8]>> = payloads.iter().map(|p| p.as_deref()).collect();
    let metadata_refs: Vec<Option<&[u8]>> = if metadata.iter().any(Option::is_some) {
        metadata.iter().map(|m| m.as_deref()).collect()
    } else {
        Vec::new()
    };
    let text_refs: Vec<Option<&str>> = if texts.iter().any(Option::is_some) {
        texts.iter().map(|t| t.as_deref()).collect()
    } else {
        Vec::new()
    };
    let max_seq = sources
        .iter()
        .map(|s| s.reader.header().max_seq)
        .max()
        .unwrap_or(0);
    let rows = SegmentRows {
        dim,
        metric: spec.metric,
        max_seq,
        ids: &ids,
        vectors: &vectors,
        payloads: &payload_refs,
        metadata: &metadata_refs,
        keys: &keys,
        texts: &text_refs,
        analyzer: spec.analyzer,
        unindexed: spec.unindexed,
        vector_codec: spec.vector_codec,
    };
    let mut build = match write_segment(spec.fs, spec.path, &rows, spec.index, progress)? {
        Some(report) => report,
        None => {
            let _ = spec.fs.remove(spec.path);
            return Ok(MergeOutcome::Stopped);
        }
    };
    // An indexed output's rows are in a spatial order.
    let origin: Vec<(u32, u32)> = match build.row_order.take() {
        Some(order) => order
            .iter()
            .filter_map(|&o| origin.get(o as usize))
            .map(|&(_, s, r)| (s, r))
            .collect(),
        None => origin.iter().map(|&(_, s, r)| (s, r)).collect(),
    };
    Ok(MergeOutcome::Written(Merged {
        rows: ids.len(),
        origin,
        indexed: build.indexed,
        build,
        dropped,
    }))
}

fn invalid(path: &Path, what: &'static str) -> strata_format::Error {
    strata_format::Error::Corruption {
        path: path.to_path_buf(),
        offset: 0,
        kind: strata_format::CorruptionKind::Invalid(what),
    }
}

/// One column (payloads, metadata or texts) of the merge's inputs. They are stored in
/// compressed blocks of rows, and merged rows come in id order, which visits an indexed
/// input's rows (in a spatial order) all over its blocks: so an input's whole column is
/// read on its first row, each block decompressed once, and its items are then taken
/// row by row (moved into the output, which holds them all anyway).
struct SourceColumn<T> {
    /// Per input, its items by row.
    items: std::collections::HashMap<u32, Vec<Option<T>>>,
}

impl<T> Default for SourceColumn<T> {
    fn default() -> Self {
        SourceColumn {
            items: Default::default(),
        }
    }
}

impl<T> SourceColumn<T> {
    /// The item of `row` of input `src`, reading the input's blocks with `read_block`
    /// (block number to its rows' items; empty past the last) on its first row.
    fn item(
        &mut self,
        src: u32,
        row: usize,
        mut read_block: impl FnMut(usize) -> strata_format::Result<Vec<Option<T>>>,
    ) -> strata_format::Result<Option<T>> {
        let rows = match self.items.entry(src) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let mut all = Vec::new();
                for block in 0.. {
                    let items = read_block(block)?;
                    if items.is_empty() {
                        break;
                    }
                    all.extend(items);
                }
                e.insert(all)
            }
        };
        Ok(rows.get_mut(row).and_then(Option::take))
    }
}
