//! A segment's search index: built at flush (PQ codebooks and codes, HNSW graph over
//! the full vectors), and searched in two stages — the graph walked with asymmetric PQ
//! distances (`ef`), then the best `rerank` live candidates re-scored exactly with the
//! full vectors from the mmap.

use std::cell::RefCell;

use strata_format::segment::{IndexInput, IndexMeta};
use strata_format::SegmentReader;
use strata_index::hnsw::{self, CompactGraph, GraphView, HnswParams, Visited};
use strata_index::pq::{self, ProductQuantizer};
use strata_index::{Metric, TopK};

use crate::version::LiveSegment;

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

/// An index built for a new segment, ready to be written.
pub(crate) struct BuiltIndex {
    meta: IndexMeta,
    pq: ProductQuantizer,
    codes: Vec<u8>,
    graph: CompactGraph,
}

impl BuiltIndex {
    /// Trains PQ, encodes every row and builds the graph, on the current rayon pool.
    pub fn build(vectors: &[f32], dim: usize, metric: Metric, o: &IndexOptions) -> BuiltIndex {
        let m = o.pq_m.unwrap_or_else(|| pq::default_m(dim)).clamp(1, dim);
        let pq = ProductQuantizer::train(vectors, dim, m, o.train_sample, o.hnsw.seed);
        let codes = pq.encode_all(vectors);
        let graph = hnsw::build(vectors, dim, metric, &o.hnsw);
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
        BuiltIndex {
            meta,
            pq,
            codes,
            graph,
        }
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

/// What a live segment keeps in memory to search its index: the PQ codebook. Codes and
/// graph stay in the mmap.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    pq: ProductQuantizer,
}

impl SegmentIndex {
    /// Loads the codebook of `reader`'s index, if it has one (sizes were checked at open).
    pub fn open(reader: &SegmentReader) -> Option<SegmentIndex> {
        let parts = reader.index()?;
        let pq = ProductQuantizer::from_parts(
            reader.dim(),
            parts.meta.pq_m as usize,
            parts.codebook.to_vec(),
        )?;
        Some(SegmentIndex { pq })
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::new(Visited::new());
}

/// Runs `f` with this thread's reusable visited set.
pub(crate) fn with_visited<T>(f: impl FnOnce(&mut Visited) -> T) -> T {
    VISITED.with(|v| f(&mut v.borrow_mut()))
}

/// Two-stage search of one indexed segment. `None` when the stored graph is unusable or
/// the graph found fewer live rows than the segment could give (many deletions near the
/// query): the caller then scans the segment exactly.
pub(crate) fn search(
    seg: &LiveSegment,
    ix: &SegmentIndex,
    metric: Metric,
    query: &[f32],
    k: usize,
    ef: usize,
    rerank: usize,
) -> Option<TopK> {
    let parts = seg.reader.index()?;
    let rows = seg.reader.rows();
    let entry = (parts.meta.entry_node != u32::MAX)
        .then_some((parts.meta.entry_node, parts.meta.entry_level as usize));
    let graph = GraphView::parse(
        rows,
        parts.meta.m0 as usize,
        parts.meta.l0_id_bits,
        entry,
        parts.level0,
        parts.upper,
    )
    .ok()?;
    let m = parts.meta.pq_m as usize;
    let table = ix.pq.adc_table(query, metric);
    let codes = parts.codes;
    let dist = |n: u32| {
        let i = n as usize * m;
        codes
            .get(i..i + m)
            .map_or(f32::INFINITY, |c| table.distance(c))
    };
    let prefetch =
        |n: u32| strata_index::distance::prefetch(codes.get(n as usize * m..).unwrap_or(&[]));
    let found = VISITED
        .with(|v| hnsw::search_prefetching(&graph, dist, prefetch, ef.max(k), &mut v.borrow_mut()));
    // Deleted rows guided the walk; only live rows are reranked and returned.
    let ids = seg.reader.ids();
    let mut top = TopK::new(k);
    let mut live = 0;
    for n in found
        .iter()
        .map(|n| n.id as usize)
        .filter(|&r| !seg.deleted.contains(r))
        .take(rerank.max(k))
    {
        let (Some(v), Some(&id)) = (seg.reader.vector(n), ids.get(n)) else {
            continue;
        };
        top.push(id, metric.distance(query, v));
        live += 1;
    }
    let live_rows = rows - seg.deleted.count();
    if live < k.min(live_rows) {
        return None;
    }
    Some(top)
}
