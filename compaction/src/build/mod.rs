//! Building a segment's index: the codes its walk scores on (8-bit scalar codes on a
//! per-dimension grid, or PQ codebooks trained on the segment's rows; none for a segment
//! walked on its own rows), every row encoded, and the HNSW graph over the full vectors.
//! Used by flushes and merges alike.

use std::time::{Duration, Instant};

use strata_format::segment::{
    IndexInput, IndexMeta, BUILT_GPU_CODES, BUILT_GPU_KMEANS, BUILT_GPU_LISTS,
};
use strata_format::vector_codec::Int8Rounding;
use strata_index::gpu::{BuildDevice, BuildKernels, Gpu, GpuError};
use strata_index::hnsw::{self, HnswParams, PackedGraph};
use strata_index::pq::{self, ProductQuantizer};
use strata_index::sq8::GridRows;
use strata_index::Metric;

/// How segments are indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    /// Segments with fewer rows are searched exactly. `None`: the measured default,
    /// [`IndexOptions::DEFAULT_MIN_FLOATS`] vector components divided by the dimension.
    pub min_rows: Option<usize>,
    /// Graph construction parameters.
    pub hnsw: HnswParams,
    /// Bytes per PQ code; `None` picks one byte per two dimensions. Setting it asks for
    /// PQ walk codes under [`WalkCodes::Auto`].
    pub pq_m: Option<usize>,
    /// What segments that are reranked on their stored rows (`f32` over
    /// [`IndexOptions::pq_from_bytes`], `f16`) are walked on.
    pub walk_codes: WalkCodes,
    /// Rows sampled to train each PQ sub-quantizer.
    pub train_sample: usize,
    /// Index memtable rows in a graph in the background (else memtables are scanned).
    pub memtable_graph: bool,
    /// Where segment indexes are built.
    pub device: BuildDevice,
    /// With [`BuildDevice::Auto`], segments of at least this many rows go to the GPU.
    pub gpu_min_rows: usize,
    /// Level 0 of the graph is Rice-coded (smaller, decoded on each read) when its packed
    /// layout is over this many bytes and coding makes it smaller; default
    /// [`IndexOptions::DEFAULT_RICE_FROM_BYTES`].
    pub rice_from_bytes: usize,
    /// An `f32` segment gets PQ codes (walked on them, then reranked) when its vectors
    /// take more than this many bytes; up to it, no PQ is trained and the walk scores its
    /// rows exactly. Default [`IndexOptions::DEFAULT_PQ_FROM_BYTES`]. (`int8` segments are
    /// always walked on their rows, `f16` ones always on PQ codes.)
    pub pq_from_bytes: usize,
}

impl IndexOptions {
    /// Below this many vector components (rows × dim) a brute-force scan beats the graph
    /// search at default settings. Measured with `strata bench --exact --ef 128 --rerank
    /// 100` on prefixes of the shared sets: SIFT (128-d) crosses over between 4,000 and
    /// 8,000 rows, GloVe (50-d) between 8,000 and 16,000 rows: about 600k components.
    pub const DEFAULT_MIN_FLOATS: usize = 600_000;

    /// Default [`IndexOptions::gpu_min_rows`]. Not yet measured on a device: below a few
    /// tens of thousands of rows the CPU build takes well under a second on a few cores,
    /// about what a GPU spends on copies and launches.
    pub const DEFAULT_GPU_MIN_ROWS: usize = 20_000;

    /// Default [`IndexOptions::rice_from_bytes`]: a packed level 0 up to 1 MiB stays in
    /// a core's cache either way, and reading it costs no decoding and no offset lookup.
    /// Measured on `int8` stores, alternating: SIFT10K (0.56 MiB packed) 1.10-1.25× the
    /// QPS at equal recall packed; GloVe-50 (29.6 MiB packed, 19.5 MiB coded) 1.05-1.09×
    /// packed, for 9 MB more resident; the 384-d manual pages (1.2 MiB) no difference.
    pub const DEFAULT_RICE_FROM_BYTES: usize = 1 << 20;

    /// Default [`IndexOptions::pq_from_bytes`]: 8 MiB of `f32` vectors. Below it PQ buys
    /// little (the rows stay in memory and mostly in the CPU cache) and its training
    /// dominates the build (SIFT10K, 4.9 MiB: k-means 0.95 s of a 1.6 s build).
    pub const DEFAULT_PQ_FROM_BYTES: usize = 8 << 20;

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
            walk_codes: WalkCodes::Auto,
            train_sample: 65_536,
            memtable_graph: true,
            device: BuildDevice::Auto,
            gpu_min_rows: Self::DEFAULT_GPU_MIN_ROWS,
            rice_from_bytes: Self::DEFAULT_RICE_FROM_BYTES,
            pq_from_bytes: Self::DEFAULT_PQ_FROM_BYTES,
        }
    }
}

/// A stage of building a segment, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the live rows of the inputs.
    Read,
    /// Training the PQ codebooks (k-means).
    Train,
    /// Encoding every row.
    Encode,
    /// Computing every row's neighbour list (GPU builds only).
    Lists,
    /// Linking the graph (`done` counts linked rows); in a GPU build, pruning the
    /// neighbour lists into the graph.
    Graph,
    /// Putting the rows in a spatial order (indexed segments), and coding the graph's
    /// level 0 on it.
    Order,
    /// Indexing the rows' metadata (the segment's field index).
    Fields,
    /// Indexing the rows' text (the segment's full-text index).
    Text,
    /// Writing and syncing the file.
    Write,
}

impl Stage {
    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Train => "k-means",
            Stage::Encode => "encode",
            Stage::Lists => "neighbour lists",
            Stage::Graph => "graph",
            Stage::Order => "locality order",
            Stage::Fields => "field index",
            Stage::Text => "text index",
            Stage::Write => "write",
        }
    }
}

/// `progress(stage, done, total)`: called from any thread; returning false asks the work
/// to stop as soon as it can.
pub type Progress<'a> = dyn Fn(Stage, u64, u64) -> bool + Sync + 'a;

/// How a segment's index was built: where each stage ran and how long it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Whether the segment got an index (else it is searched exactly).
    pub indexed: bool,
    /// The `BUILT_GPU_*` bits of the stages that ran on a GPU (0: all on the CPU).
    pub built_by: u32,
    /// The GPU used, if any stage ran on one.
    pub gpu: Option<String>,
    /// Wall time of each stage, in order.
    pub stages: Vec<(Stage, Duration)>,
    /// Why a GPU build fell back to the CPU, if it did.
    pub fallback: Option<String>,
    /// The written segment's row order, when it is not the input's: row `r` of the file
    /// holds input row `row_order[r]` (indexed segments are written in a spatial order,
    /// [`strata_index::hnsw::spatial_order`]).
    pub row_order: Option<Vec<u32>>,
}

impl BuildReport {
    /// Time spent in `stage` (zero if it did not run).
    pub fn time(&self, stage: Stage) -> Duration {
        self.stages
            .iter()
            .filter(|(s, _)| *s == stage)
            .map(|(_, d)| *d)
            .sum()
    }

    fn timed<T>(&mut self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.stages.push((stage, t.elapsed()));
        r
    }

    /// Runs `f` on `gpu` (if still in use) as `stage`, timed: on success records `bit`;
    /// on failure warns, keeps the reason, and stops using the GPU for later stages.
    /// `None` tells the caller to do the stage on the CPU.
    fn on_gpu<T>(
        &mut self,
        gpu: &mut Option<&dyn BuildKernels>,
        stage: Stage,
        bit: u32,
        f: impl FnOnce(&dyn BuildKernels) -> Result<T, GpuError>,
    ) -> Option<T> {
        let g = (*gpu)?;
        match self.timed(stage, || f(g)) {
            Ok(v) => {
                self.built_by |= bit;
                Some(v)
            }
            Err(e) => {
                self.fall_back(stage, &e);
                *gpu = None;
                None
            }
        }
    }

    /// Notes a GPU failure: logs a warning and keeps the first reason.
    fn fall_back(&mut self, stage: Stage, e: &GpuError) {
        tracing::warn!(stage = stage.name(), error = %e, "GPU build stage failed; building on the CPU");
        self.fallback
            .get_or_insert_with(|| format!("{}: {e}", stage.name()));
    }
}

/// The GPU to build `n` rows on under `o`, if any. With [`BuildDevice::Gpu`] and no
/// usable GPU, warns once per process and returns `None`.
fn choose_gpu(n: usize, o: &IndexOptions) -> Option<&'static dyn BuildKernels> {
    match o.device {
        BuildDevice::Cpu => None,
        BuildDevice::Auto => {
            if n >= o.gpu_min_rows {
                Gpu::shared().ok().map(|g| g as &dyn BuildKernels)
            } else {
                None
            }
        }
        BuildDevice::Gpu => match Gpu::shared() {
            Ok(g) => Some(g as &dyn BuildKernels),
            Err(e) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(reason = %e, "GPU builds asked for, but no GPU is usable; building on the CPU")
                });
                None
            }
        },
    }
}

/// The codes a segment's walk scores nodes on when it does not walk its own rows (it
/// then reranks its candidates on those rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WalkCodes {
    /// [`WalkCodes::Scalar`] up to [`WalkCodes::SCALAR_MAX_DIM`] dimensions unless
    /// `pq_m` is set; [`WalkCodes::Pq`] otherwise.
    #[default]
    Auto,
    /// Product quantization (`pq_m` bytes per row; k-means at build time).
    Pq,
    /// One byte per dimension on a per-dimension uniform grid (the `int8` codec's),
    /// scored directly on the codes: more accurate than PQ at equal `ef` and cheaper per
    /// distance, no k-means, but `dim` bytes per row instead of `pq_m`.
    Scalar,
}

impl WalkCodes {
    /// Largest dimension [`WalkCodes::Auto`] walks on scalar codes (512 bytes per row);
    /// above it PQ's rows (a quarter of the bytes) keep the walk's working set small.
    /// Measured with the rerank, at equal recall: GloVe-50 reaches recall@10 0.95 at
    /// `ef` 24 on scalar codes where 25-byte PQ codes need 30-32; the 384-d manual pages
    /// ran 1.37× PQ's QPS at 0.95 and built 2.5× faster (no k-means), for 6 MB more
    /// resident on 20k rows.
    pub const SCALAR_MAX_DIM: usize = 512;

    /// The codes a segment of dimension `dim` is walked on, given `pq_m`.
    pub fn resolve(self, dim: usize, pq_m: Option<usize>) -> WalkCodes {
        match self {
            WalkCodes::Auto if pq_m.is_none() && dim <= Self::SCALAR_MAX_DIM => WalkCodes::Scalar,
            WalkCodes::Auto => WalkCodes::Pq,
            other => other,
        }
    }
}

/// What a segment's graph walk will score nodes on, which decides whether the index
/// needs PQ codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkOn {
    /// PQ codes (then a rerank on the stored rows): PQ is trained and every row encoded.
    Pq,
    /// 8-bit scalar codes on a per-dimension grid (then a rerank on the stored rows),
    /// stored as a PQ codebook of one sub-quantizer per dimension whose centroids are
    /// the grid ([`ProductQuantizer::from_grid`]): no training.
    Scalar,
    /// The segment's own rows (`int8`, or `f32` up to [`IndexOptions::pq_from_bytes`];
    /// no rerank): no PQ codebook or codes.
    Rows,
}

/// An index built for a new segment, ready to be written.
pub struct BuiltIndex {
    meta: IndexMeta,
    /// `None` for a segment walked on its `int8` rows, which needs no PQ codes.
    pq: Option<ProductQuantizer>,
    codes: Vec<u8>,
    graph: PackedGraph,
    /// Level 0 in the Rice-coded layout, once [`BuiltIndex::code_level0`] found it
    /// smaller than the packed one (`meta.l0_rice` then names its parameters).
    level0_rice: Option<Vec<u8>>,
    report: BuildReport,
}

impl BuiltIndex {
    /// Codes level 0 in the Rice-coded layout when that is smaller than the packed one
    /// (it is when neighbours are close in number: after a locality order) and the packed
    /// one is over `from_bytes`.
    fn code_level0(&mut self, from_bytes: usize) {
        if self.graph.level0().len() <= from_bytes {
            return;
        }
        let Some((bytes, params)) = strata_index::hnsw::encode_level0(&self.graph.view()) else {
            return;
        };
        if bytes.len() < self.graph.level0().len() {
            self.level0_rice = Some(bytes);
            self.meta.l0_rice = Some(params.to_u32());
        }
    }

    /// Trains PQ, encodes every row and builds the graph, on the current rayon pool
    /// (and the GPU, as `o.device` says).
    pub fn build(vectors: &[f32], dim: usize, metric: Metric, o: &IndexOptions) -> BuiltIndex {
        Self::build_with(vectors, dim, metric, o, WalkOn::Pq, &|_, _, _| true)
            .unwrap_or_else(|| unreachable!("a build that is never stopped finishes"))
    }

    /// [`BuiltIndex::build`] reporting `progress(stage, done, total)` between stages and
    /// during the graph build; `None` when `progress` returned false (stop requested).
    ///
    /// Each GPU stage that fails is redone on the CPU, and later stages stay on the CPU:
    /// a GPU never makes a build fail.
    pub fn build_with(
        vectors: &[f32],
        dim: usize,
        metric: Metric,
        o: &IndexOptions,
        walk: WalkOn,
        progress: &Progress<'_>,
    ) -> Option<BuiltIndex> {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        Self::build_on(choose_gpu(n, o), vectors, dim, metric, o, walk, progress)
    }

    /// [`BuiltIndex::build_with`] on the given kernels (a GPU, or
    /// [`strata_index::gpu::ReferenceKernels`] in tests) instead of the device
    /// `o.device` chooses; `None` builds on the CPU.
    pub fn build_on(
        kernels: Option<&dyn BuildKernels>,
        vectors: &[f32],
        dim: usize,
        metric: Metric,
        o: &IndexOptions,
        walk: WalkOn,
        progress: &Progress<'_>,
    ) -> Option<BuiltIndex> {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let m = o.pq_m.unwrap_or_else(|| pq::default_m(dim)).clamp(1, dim);
        let mut gpu = kernels;
        let mut report = BuildReport {
            indexed: true,
            gpu: gpu.map(|g| g.device_name()),
            ..BuildReport::default()
        };
        let (pq, codes, scalar_grid) = match walk {
            WalkOn::Pq => {
                if !progress(Stage::Train, 0, n as u64) {
                    return None;
                }
                let pq = train_pq(&mut report, &mut gpu, vectors, dim, m, o);
                if !progress(Stage::Encode, 0, n as u64) {
                    return None;
                }
                let codes = encode(&mut report, &mut gpu, &pq, vectors, n, m);
                (Some(pq), codes, None)
            }
            WalkOn::Scalar => {
                if !progress(Stage::Encode, 0, n as u64) {
                    return None;
                }
                let (lo, step, codes) = report.timed(Stage::Encode, || {
                    strata_format::vector_codec::int8_codes(dim, vectors, Int8Rounding::Nearest)
                });
                match ProductQuantizer::from_grid(&lo, &step) {
                    Some(pq) => (Some(pq), codes, Some((lo, step))),
                    None => (None, Vec::new(), None),
                }
            }
            WalkOn::Rows => (None, Vec::new(), None),
        };
        // From `hnsw::GRID_SEARCH_MIN_DIM` dimensions on, the graph build's searches score
        // 8-bit grid codes: a scalar walk's own, or (building on the CPU) codes made for
        // the build.
        let on_grid = dim >= hnsw::GRID_SEARCH_MIN_DIM;
        let made = (on_grid && scalar_grid.is_none() && gpu.is_none()).then(|| {
            report.timed(Stage::Encode, || {
                strata_format::vector_codec::int8_codes(dim, vectors, Int8Rounding::Nearest)
            })
        });
        let grid = match (&scalar_grid, &made) {
            _ if !on_grid => None,
            (Some((lo, step)), _) => Some(GridRows {
                lo,
                step,
                codes: &codes,
            }),
            (None, Some((lo, step, codes))) => Some(GridRows { lo, step, codes }),
            (None, None) => None,
        };
        let rows = GraphRows {
            vectors,
            dim,
            metric,
            grid,
        };
        let graph = build_graph(&mut report, gpu, rows, o, progress)?;
        let (entry_node, entry_level) = graph.entry().map_or((u32::MAX, 0), |(n, l)| (n, l as u32));
        let meta = IndexMeta {
            pq_m: pq.as_ref().map_or(0, |p| p.m() as u32),
            m0: graph.m0() as u32,
            entry_node,
            entry_level,
            hnsw_m: (graph.m0() / 2) as u32,
            ef_construction: o.hnsw.ef_construction as u32,
            built_by: report.built_by,
            l0_id_bits: graph.id_bits(),
            l0_rice: None,
        };
        if report.built_by == 0 {
            report.gpu = None;
        }
        Some(BuiltIndex {
            meta,
            pq,
            codes,
            graph,
            level0_rice: None,
            report,
        })
    }

    /// Where and how fast it was built.
    pub fn report(&self) -> &BuildReport {
        &self.report
    }

    /// The index's metadata, as written to the segment.
    pub fn meta(&self) -> &IndexMeta {
        &self.meta
    }

    /// The trained quantizer (`None` when built for [`WalkOn::Rows`]).
    pub fn pq(&self) -> Option<&ProductQuantizer> {
        self.pq.as_ref()
    }

    /// Every row's PQ code (`pq_m` bytes each).
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// The graph.
    pub fn graph(&self) -> &PackedGraph {
        &self.graph
    }

    /// The sections to write.
    pub fn input(&self) -> IndexInput<'_> {
        IndexInput {
            meta: self.meta,
            codebook: self.pq.as_ref().map_or(&[], ProductQuantizer::centroids),
            codes: &self.codes,
            level0: self.level0_rice.as_deref().unwrap_or(self.graph.level0()),
            upper: self.graph.upper(),
        }
    }
}

/// The rows of a new segment, sorted by id (an indexed segment is written in a spatial
/// order instead: [`BuildReport::row_order`]).
#[derive(Clone, Copy)]
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
    /// One encoded metadata object per row (or empty: no row has metadata).
    pub metadata: &'a [Option<&'a [u8]>],
    /// The string key of each row (empty in a store of `u64` ids).
    pub keys: &'a [&'a str],
    /// The text of each row (or empty: no row has text).
    pub texts: &'a [Option<&'a str>],
    /// How the texts become terms.
    pub analyzer: strata_index::text::Analyzer,
    /// Metadata paths left out of the segment's field index (with everything under
    /// them).
    pub unindexed: &'a [String],
    /// How the segment stores its vectors.
    pub vector_codec: strata_format::VectorCodec,
}

/// Writes `rows` as the segment file `path` (synced; the caller syncs the directory),
/// with an index when there are at least [`IndexOptions::min_rows_for`] rows. Returns
/// how it was built (with the write's time as the last stage), or `None` when
/// `progress` asked to stop (nothing is left at `path` then).
pub fn write_segment(
    fs: &dyn strata_vfs::Vfs,
    path: &std::path::Path,
    rows: &SegmentRows<'_>,
    o: &IndexOptions,
    progress: &Progress<'_>,
) -> strata_format::Result<Option<BuildReport>> {
    let n = rows.ids.len();
    // Graph nodes are u32 rows.
    let indexed = n >= o.min_rows_for(rows.dim) && n < u32::MAX as usize;
    // An indexed segment's rows go in a spatial order: a search's walk and its rerank
    // candidates, which gather around the query, then share pages. The index is built
    // on the rows in that order, so that the build's own walks (each insert's
    // neighbours, near each other) share cache lines and pages too.
    let started = Instant::now();
    let permuted = indexed.then(|| {
        let order = strata_index::hnsw::spatial_order(rows.vectors, rows.dim);
        PermutedRows::new(rows, order)
    });
    let order_time = started.elapsed();
    let rows = &match &permuted {
        Some(p) => p.rows(rows),
        None => *rows,
    };
    let mut index = if indexed {
        // An `int8` segment's walk scores on its rows, and a small `f32` one's: PQ codes
        // would go unread.
        let f32_bytes = rows.vectors.len().saturating_mul(4);
        let walk = match rows.vector_codec {
            strata_format::VectorCodec::Int8 => WalkOn::Rows,
            strata_format::VectorCodec::F32 if f32_bytes <= o.pq_from_bytes => WalkOn::Rows,
            _ => match o.walk_codes.resolve(rows.dim, o.pq_m) {
                WalkCodes::Scalar => WalkOn::Scalar,
                _ => WalkOn::Pq,
            },
        };
        match BuiltIndex::build_with(rows.vectors, rows.dim, rows.metric, o, walk, progress) {
            Some(ix) => Some(ix),
            None => return Ok(None),
        }
    } else {
        None
    };
    let mut report = index
        .as_ref()
        .map(|ix| ix.report.clone())
        .unwrap_or_default();
    if let Some(ix) = index.as_mut() {
        let t = Instant::now();
        ix.code_level0(o.rice_from_bytes);
        report.stages.push((Stage::Order, order_time + t.elapsed()));
    }
    let fields = report.timed(Stage::Fields, || field_index(rows))?;
    let text = report.timed(Stage::Text, || text_index(rows));
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
        metadata: rows.metadata,
        keys: rows.keys,
        field_index: fields.as_deref(),
        index: index.as_ref().map(BuiltIndex::input),
        texts: rows.texts,
        text_index: text.as_ref(),
        vector_codec: rows.vector_codec,
    };
    report.timed(Stage::Write, || {
        strata_format::segment::write_segment(fs, path, &input)
    })?;
    report.row_order = permuted.map(|p| p.order);
    Ok(Some(report))
}

/// The columns of [`SegmentRows`] in another row order (owned; borrowed items stay
/// borrowed).
struct PermutedRows<'a> {
    order: Vec<u32>,
    ids: Vec<u64>,
    vectors: Vec<f32>,
    payloads: Vec<Option<&'a [u8]>>,
    metadata: Vec<Option<&'a [u8]>>,
    keys: Vec<&'a str>,
    texts: Vec<Option<&'a str>>,
}

impl<'a> PermutedRows<'a> {
    /// `rows` with row `r` taken from input row `order[r]`.
    fn new(rows: &SegmentRows<'a>, order: Vec<u32>) -> Self {
        fn pick<T: Copy>(col: &[T], order: &[u32]) -> Vec<T> {
            if col.is_empty() {
                return Vec::new();
            }
            order
                .iter()
                .filter_map(|&r| col.get(r as usize).copied())
                .collect()
        }
        let dim = rows.dim;
        let mut vectors = Vec::with_capacity(rows.vectors.len());
        for &r in &order {
            let at = r as usize * dim;
            vectors.extend_from_slice(rows.vectors.get(at..at + dim).unwrap_or(&[]));
        }
        PermutedRows {
            ids: pick(rows.ids, &order),
            vectors,
            payloads: pick(rows.payloads, &order),
            metadata: pick(rows.metadata, &order),
            keys: pick(rows.keys, &order),
            texts: pick(rows.texts, &order),
            order,
        }
    }

    /// The permuted rows, with `like`'s other fields.
    fn rows<'b>(&'b self, like: &SegmentRows<'b>) -> SegmentRows<'b> {
        SegmentRows {
            ids: &self.ids,
            vectors: &self.vectors,
            payloads: &self.payloads,
            metadata: &self.metadata,
            keys: &self.keys,
            texts: &self.texts,
            ..*like
        }
    }
}

/// The encoded field index of `rows`' metadata (`None` when no row has any).
fn field_index(rows: &SegmentRows<'_>) -> strata_format::Result<Option<Vec<u8>>> {
    if rows.metadata.is_empty() {
        return Ok(None);
    }
    let mut ix = strata_format::field_index::FieldIndexData::new(rows.unindexed);
    for (row, m) in rows.metadata.iter().enumerate() {
        if let Some(bytes) = m {
            // Damage in an input segment's metadata (it is read, not decoded, by a merge).
            let m = strata_format::metadata::Metadata::decode(bytes, 0)
                .map_err(|e| e.at(std::path::Path::new("")))?;
            ix.add(row as u32, &m);
        }
    }
    ix.finish(rows.ids.len() as u32);
    Ok(Some(ix.encode()))
}

/// The full-text index of `rows`' texts (`None` when no row has any).
fn text_index(rows: &SegmentRows<'_>) -> Option<strata_format::text_index::TextSections> {
    if !rows.texts.iter().any(Option::is_some) {
        return None;
    }
    let mut ix = strata_format::text_index::TextIndexBuilder::new();
    for text in rows.texts {
        ix.push_row(&text.map(|t| rows.analyzer.terms(t)).unwrap_or_default());
    }
    Some(ix.encode())
}

/// Trains the product quantizer: k-means assignments on the GPU when one is in use (a
/// failure falls back to the CPU), else on the CPU.
fn train_pq(
    report: &mut BuildReport,
    gpu: &mut Option<&dyn BuildKernels>,
    vectors: &[f32],
    dim: usize,
    m: usize,
    o: &IndexOptions,
) -> ProductQuantizer {
    let seed = o.hnsw.seed;
    report
        .on_gpu(gpu, Stage::Train, BUILT_GPU_KMEANS, |g| {
            let mut assign =
                |r: &[f32], b: &[usize], c: &[f32], codes: &mut [u8], d: &mut [f32]| {
                    g.nearest_codes(r, b, c, codes, d)
                };
            ProductQuantizer::train_batched(vectors, dim, m, o.train_sample, seed, &mut assign)
                .map(|(q, _objective)| q)
        })
        .unwrap_or_else(|| {
            report.timed(Stage::Train, || {
                ProductQuantizer::train(vectors, dim, m, o.train_sample, seed)
            })
        })
}

/// Every row's PQ code, on the GPU when one is in use, else on the CPU.
fn encode(
    report: &mut BuildReport,
    gpu: &mut Option<&dyn BuildKernels>,
    pq: &ProductQuantizer,
    vectors: &[f32],
    n: usize,
    m: usize,
) -> Vec<u8> {
    let codes = report.on_gpu(gpu, Stage::Encode, BUILT_GPU_CODES, |g| {
        let (mut codes, mut dists) = (vec![0u8; n * m], vec![0f32; n * m]);
        g.nearest_codes(vectors, pq.bounds(), pq.centroids(), &mut codes, &mut dists)
            .map(|()| codes)
    });
    codes.unwrap_or_else(|| report.timed(Stage::Encode, || pq.encode_all(vectors)))
}

/// What a segment's graph is built on: its rows (normalised for cosine), and their 8-bit
/// grid codes for the CPU build's searches to score, when they pay
/// ([`hnsw::GRID_SEARCH_MIN_DIM`]).
struct GraphRows<'a> {
    vectors: &'a [f32],
    dim: usize,
    metric: Metric,
    grid: Option<GridRows<'a>>,
}

/// The HNSW graph: from the GPU's exact earlier-neighbour lists when one is in use (a
/// failure falls back), else linked incrementally on the CPU. `None`: stopped.
fn build_graph(
    report: &mut BuildReport,
    gpu: Option<&dyn BuildKernels>,
    rows: GraphRows<'_>,
    o: &IndexOptions,
    progress: &Progress<'_>,
) -> Option<PackedGraph> {
    let GraphRows {
        vectors,
        dim,
        metric,
        grid,
    } = rows;
    let n = vectors.len().checked_div(dim).unwrap_or(0);
    let on_linked = |done: usize| progress(Stage::Graph, done as u64, n as u64);
    if let Some(g) = gpu {
        if !progress(Stage::Lists, 0, n as u64) {
            return None;
        }
        let mut lists_time = Duration::ZERO;
        let mut lists = |r: &[f32], d: usize, k: usize| {
            let t = Instant::now();
            let l = g.earlier_neighbors(r, d, k);
            lists_time += t.elapsed();
            l
        };
        let t = Instant::now();
        let candidates = hnsw::default_candidates(&o.hnsw);
        let built = hnsw::build_from_lists(
            vectors, dim, metric, &o.hnsw, candidates, &mut lists, &on_linked,
        );
        let total = t.elapsed();
        match built {
            Ok(None) => return None,
            Ok(Some(graph)) => {
                report.stages.push((Stage::Lists, lists_time));
                report
                    .stages
                    .push((Stage::Graph, total.saturating_sub(lists_time)));
                report.built_by |= BUILT_GPU_LISTS;
                return Some(graph);
            }
            Err(e) => report.fall_back(Stage::Lists, &e),
        }
    }
    let t = Instant::now();
    let graph = hnsw::build_on_grid(vectors, dim, metric, &o.hnsw, grid, &on_linked)?;
    report.stages.push((Stage::Graph, t.elapsed()));
    Some(graph)
}

#[cfg(test)]
mod tests;
