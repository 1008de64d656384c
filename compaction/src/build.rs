//! Building a segment's index: PQ codebooks trained on the segment's rows, every row
//! encoded, and the HNSW graph over the full vectors. Used by flushes and merges alike.

use strata_format::segment::{IndexInput, IndexMeta};
use strata_index::hnsw::{self, CompactGraph, HnswParams};
use strata_index::pq::{self, ProductQuantizer};
use strata_index::Metric;

/// How segments are indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    /// Segments with fewer rows are searched exactly. `None`: the measured default,
    /// [`IndexOptions::DEFAULT_MIN_FLOATS`] vector components divided by the dimension.
    pub min_rows: Option<usize>,
    /// Graph construction parameters.
    pub hnsw: HnswParams,
    /// Bytes per PQ code; `None` picks one byte per two dimensions.
    pub pq_m: Option<usize>,
    /// Rows sampled to train each PQ sub-quantizer.
    pub train_sample: usize,
    /// Index memtable rows in a graph in the background (else memtables are scanned).
    pub memtable_graph: bool,
}

impl IndexOptions {
    /// Below this many vector components (rows × dim) a brute-force scan beats the graph
    /// search at default settings. Measured with `strata bench --exact --ef 128 --rerank
    /// 100` on prefixes of the shared sets: SIFT (128-d) crosses over between 4,000 and
    /// 8,000 rows, GloVe (50-d) between 8,000 and 16,000 rows: about 600k components.
    pub const DEFAULT_MIN_FLOATS: usize = 600_000;

    /// The size from which a segment of dimension `dim` gets an index.
    pub fn min_rows_for(&self, dim: usize) -> usize {
        self.min_rows
            .unwrap_or(Self::DEFAULT_MIN_FLOATS / dim.max(1))
    }
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            min_rows: None,
            hnsw: HnswParams::default(),
            pq_m: None,
            train_sample: 65_536,
            memtable_graph: true,
        }
    }
}

/// A stage of building a segment, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the live rows of the inputs.
    Read,
    /// Training the PQ codebooks.
    Train,
    /// Encoding every row.
    Encode,
    /// Linking the graph (`done` counts linked rows).
    Graph,
    /// Writing and syncing the file.
    Write,
}

impl Stage {
    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Train => "train PQ",
            Stage::Encode => "encode",
            Stage::Graph => "graph",
            Stage::Write => "write",
        }
    }
}

/// `progress(stage, done, total)`: called from any thread; returning false asks the work
/// to stop as soon as it can.
pub type Progress<'a> = dyn Fn(Stage, u64, u64) -> bool + Sync + 'a;

/// An index built for a new segment, ready to be written.
pub struct BuiltIndex {
    meta: IndexMeta,
    pq: ProductQuantizer,
    codes: Vec<u8>,
    graph: CompactGraph,
}

impl BuiltIndex {
    /// Trains PQ, encodes every row and builds the graph, on the current rayon pool.
    pub fn build(vectors: &[f32], dim: usize, metric: Metric, o: &IndexOptions) -> BuiltIndex {
        Self::build_with(vectors, dim, metric, o, &|_, _, _| true)
            .unwrap_or_else(|| unreachable!("a build that is never stopped finishes"))
    }

    /// [`BuiltIndex::build`] reporting `progress(stage, done, total)` between stages and
    /// during the graph build; `None` when `progress` returned false (stop requested).
    pub fn build_with(
        vectors: &[f32],
        dim: usize,
        metric: Metric,
        o: &IndexOptions,
        progress: &Progress<'_>,
    ) -> Option<BuiltIndex> {
        let n = vectors.len().checked_div(dim).unwrap_or(0) as u64;
        let m = o.pq_m.unwrap_or_else(|| pq::default_m(dim)).clamp(1, dim);
        if !progress(Stage::Train, 0, n) {
            return None;
        }
        let pq = ProductQuantizer::train(vectors, dim, m, o.train_sample, o.hnsw.seed);
        if !progress(Stage::Encode, 0, n) {
            return None;
        }
        let codes = pq.encode_all(vectors);
        let on_linked = |done: usize| progress(Stage::Graph, done as u64, n);
        let graph = hnsw::build_with_progress(vectors, dim, metric, &o.hnsw, &on_linked)?;
        let (entry_node, entry_level) = graph.entry().map_or((u32::MAX, 0), |(n, l)| (n, l as u32));
        let meta = IndexMeta {
            pq_m: m as u32,
            m0: graph.m0() as u32,
            entry_node,
            entry_level,
            hnsw_m: (graph.m0() / 2) as u32,
            ef_construction: o.hnsw.ef_construction as u32,
            built_by: 0,
            l0_id_bits: graph.id_bits(),
        };
        Some(BuiltIndex {
            meta,
            pq,
            codes,
            graph,
        })
    }

    /// The sections to write.
    pub fn input(&self) -> IndexInput<'_> {
        IndexInput {
            meta: self.meta,
            codebook: self.pq.centroids(),
            codes: &self.codes,
            level0: self.graph.level0(),
            upper: self.graph.upper(),
        }
    }
}

/// The rows of a new segment, sorted by id.
pub struct SegmentRows<'a> {
    /// Vector dimension.
    pub dim: usize,
    /// Metric of the store.
    pub metric: Metric,
    /// Highest sequence number of any row (informational, kept in the header).
    pub max_seq: u64,
    /// Ids, strictly ascending.
    pub ids: &'a [u64],
    /// `ids.len() × dim` values.
    pub vectors: &'a [f32],
    /// One payload per row.
    pub payloads: &'a [Option<&'a [u8]>],
}

/// Writes `rows` as the segment file `path` (synced; the caller syncs the directory),
/// with an index when there are at least [`IndexOptions::min_rows_for`] rows. Returns
/// whether it built an index, or `None` when `progress` asked to stop (nothing is left
/// at `path` then).
pub fn write_segment(
    fs: &dyn strata_format::Vfs,
    path: &std::path::Path,
    rows: &SegmentRows<'_>,
    o: &IndexOptions,
    progress: &Progress<'_>,
) -> strata_format::Result<Option<bool>> {
    let n = rows.ids.len();
    // Graph nodes are u32 rows.
    let index = if n >= o.min_rows_for(rows.dim) && n < u32::MAX as usize {
        match BuiltIndex::build_with(rows.vectors, rows.dim, rows.metric, o, progress) {
            Some(ix) => Some(ix),
            None => return Ok(None),
        }
    } else {
        None
    };
    if !progress(Stage::Write, 0, n as u64) {
        return Ok(None);
    }
    let input = strata_format::segment::SegmentWriteInput {
        dim: rows.dim as u32,
        metric: rows.metric.code(),
        max_seq: rows.max_seq,
        ids: rows.ids,
        vectors: rows.vectors,
        payloads: rows.payloads,
        index: index.as_ref().map(BuiltIndex::input),
    };
    strata_format::segment::write_segment(fs, path, &input)?;
    Ok(Some(index.is_some()))
}
