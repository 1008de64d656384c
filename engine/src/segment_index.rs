//! A segment's search index: built at flush (walk codes, HNSW graph over the full
//! vectors), and searched in two stages — the graph walked on the codes (`ef`), then the
//! best `rerank` live candidates re-scored with the stored vectors (decoded from the
//! segment's codec) from the mmap. The walk codes are PQ codes, scored by asymmetric
//! distance tables, or 8-bit scalar codes (a PQ codebook of one sub-quantizer per
//! dimension whose centroids are a uniform grid), scored on the codes directly with the
//! `int8` kernels. A segment storing `int8`
//! vectors is walked on those instead, by distances computed on their codes
//! (`strata_index::sq8`): as many bytes per row as dimensions, no rerank to do, and no
//! second copy of each row in the search's working set. A small `f32` segment written
//! without PQ codes (`IndexOptions::pq_from_bytes`) is walked on its rows with exact
//! distances, likewise without a rerank. Every code, graph row and
//! vector is checked against its block checksum the first time it is read (segment
//! format 5): a damaged block ends the search with [`crate::Error::Corruption`].

use std::cell::{Cell, RefCell};

use strata_format::segment::{Prefetch, RowCheck, SectionKind};
use strata_format::{DeletionBitmap, SegmentReader};
use strata_index::hnsw::{self, Graph, GraphView, Level0Layout};
use strata_index::pq::{AdcTable, ProductQuantizer};
use strata_index::sq8::Sq8Query;
use strata_index::{Metric, TopK};

use crate::error::Result;
use crate::visited::with_visited;

/// What a live segment keeps in memory to search its index: the PQ codebook (none in a
/// segment walked on its rows), or the grid of its scalar walk codes. Codes and graph
/// stay in the mmap.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    codebook: Codebook,
}

/// How a segment's walk codes are scored.
#[derive(Debug)]
enum Codebook {
    /// No walk codes: the walk scores the segment's rows.
    Absent,
    /// PQ codes, by asymmetric distance tables.
    Pq(ProductQuantizer),
    /// Scalar codes (a codebook that is a per-dimension grid,
    /// [`ProductQuantizer::scalar_grid`]), on the grid with the `int8` kernels.
    Grid { lo: Vec<f32>, step: Vec<f32> },
}

impl SegmentIndex {
    /// Loads the codebook of `reader`'s index, if it has one (sizes were checked at open).
    pub fn open(reader: &SegmentReader) -> Option<SegmentIndex> {
        let parts = reader.index()?;
        let codebook = match parts.meta.pq_m {
            0 => Codebook::Absent,
            m => {
                let pq = ProductQuantizer::from_parts(
                    reader.dim(),
                    m as usize,
                    parts.codebook.to_vec(),
                )?;
                match pq.scalar_grid() {
                    Some((lo, step)) => Codebook::Grid { lo, step },
                    None => Codebook::Pq(pq),
                }
            }
        };
        Some(SegmentIndex { codebook })
    }

    /// Whether the walk scores scalar codes on their grid (not PQ tables).
    pub fn walks_scalar_codes(&self) -> bool {
        matches!(self.codebook, Codebook::Grid { .. })
    }
}

/// The rows a search may return: the live ones, or (under a filter) the live ones that
/// pass it; `count` of them.
pub(crate) struct Eligible<'a> {
    /// Whether row `r` may not be returned (it still guides the walk).
    pub skip: &'a (dyn Fn(usize) -> bool + Sync),
    /// Rows that may be returned.
    pub count: usize,
    /// Keep only eligible rows in the beam (a filter's walk) instead of widening the
    /// beam by the share of rows that are not (deleted rows' walk).
    pub filtered: bool,
    /// A row the walk treats as absent (scored at infinity, so never a waypoint): a
    /// calibration query that is a row of the segment, searched for as if held out.
    pub hidden: Option<usize>,
}

impl<'a> Eligible<'a> {
    /// The live rows of a segment with deletion bitmap `deleted`.
    pub fn live(deleted: &'a DeletionBitmap, skip: &'a (dyn Fn(usize) -> bool + Sync)) -> Self {
        let rows = deleted.rows();
        Eligible {
            skip,
            count: rows - deleted.count().min(rows),
            filtered: false,
            hidden: None,
        }
    }
}

/// How far one segment's two-stage search goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    /// Results wanted.
    pub k: usize,
    /// Beam width of the graph walk (at least `k`).
    pub ef: usize,
    /// Live candidates re-scored with the stored vectors (at least `k`).
    pub rerank: usize,
    /// Whether the candidates' vector pages are requested before they are read.
    pub prefetch: Prefetch,
}

/// Two-stage search of one indexed segment, returning only eligible rows, with the beam
/// widened by the fraction of rows that are not. `None` when the stored graph is
/// unusable, when that beam would cover more than an eighth of the rows, or when the
/// graph found fewer eligible rows than the segment could give: the caller then scans
/// the eligible rows exactly. A candidate row without a vector or an id is
/// [`crate::Error::Corruption`].
pub(crate) fn search(
    reader: &SegmentReader,
    eligible: &Eligible<'_>,
    ix: &SegmentIndex,
    metric: Metric,
    query: &[f32],
    walk: &Walk,
) -> Result<Option<TopK>> {
    let Walk { k, ef, rerank, .. } = *walk;
    let Some(parts) = reader.index() else {
        return Ok(None);
    };
    let rows = reader.rows();
    let live_rows = eligible.count.min(rows);
    if live_rows == 0 {
        return Ok(Some(TopK::new(k)));
    }
    // Deleted rows take beam slots as waypoints: widen the beam so that about `ef` of
    // its candidates are eligible. When that beam would cover a large part of the graph,
    // an exact scan (the caller's fallback) is as cheap and exact. A filter's walk keeps
    // only eligible rows in its beam instead.
    let ef = if eligible.filtered {
        ef.max(k)
    } else {
        ef.max(k).saturating_mul(rows).div_ceil(live_rows)
    };
    if !eligible.filtered && live_rows < rows && ef.saturating_mul(8) > rows {
        return Ok(None);
    }
    let entry = (parts.meta.entry_node != u32::MAX)
        .then_some((parts.meta.entry_node, parts.meta.entry_level as usize));
    let Some(layout) = Level0Layout::stored(parts.meta.l0_id_bits, parts.meta.l0_rice) else {
        return Ok(None);
    };
    let Ok(graph) = GraphView::parse(
        rows,
        parts.meta.m0 as usize,
        layout,
        entry,
        parts.level0,
        parts.upper,
    ) else {
        return Ok(None);
    };
    let scorer = match (reader.int8_rows(), &ix.codebook) {
        (Some(rows), _) => Scorer {
            kind: ScoreOn::Int8(Sq8Query::new(query, rows.lo, rows.step, metric)),
            rows: rows.codes,
            width: reader.dim(),
            section: SectionKind::Vectors,
        },
        // Scalar walk codes: the `int8` kernels on the codes, then the rerank.
        (None, Codebook::Grid { lo, step }) => Scorer {
            kind: ScoreOn::Int8(Sq8Query::new(query, lo, step, metric)),
            rows: parts.codes,
            width: parts.meta.pq_m as usize,
            section: SectionKind::PqCodes,
        },
        (None, Codebook::Pq(pq)) => Scorer {
            kind: ScoreOn::Pq(pq.adc_table(query, metric)),
            rows: parts.codes,
            width: parts.meta.pq_m as usize,
            section: SectionKind::PqCodes,
        },
        (None, Codebook::Absent) => match reader.f32_rows() {
            // A small `f32` segment without PQ codes: walked on its rows.
            Some(rows) => Scorer {
                kind: ScoreOn::F32 {
                    query: query.to_vec(),
                    metric,
                    scratch: RefCell::new(Vec::new()),
                },
                rows,
                width: reader.dim() * 4,
                section: SectionKind::Vectors,
            },
            // Not opened: a segment without PQ codes stores `int8` or `f32` rows.
            None => return Ok(None),
        },
    };
    let damage = Cell::new(None);
    let rows_check = reader.row_check(scorer.section);
    // While the front does not stay in memory, the pages the walk reads next are
    // requested from the disk ahead (its faults are otherwise one at a time): each
    // batch of neighbours' rows before they are scored, and the next node's graph row
    // before it is expanded. Not every scored node's graph row: most are never
    // expanded, and under a tight memory limit reading them evicts what is.
    let front = reader.front_prefetch(walk.prefetch);
    let graph = CheckedGraph {
        view: graph,
        check: reader.row_check(SectionKind::GraphLevel0),
        damage: &damage,
        next: Cell::new(None),
    };
    let dist = |n: u32| {
        if eligible.hidden == Some(n as usize) {
            return f32::INFINITY;
        }
        if let Err(e) = rows_check.row(n as usize) {
            damage.set(Some(e));
            return f32::INFINITY;
        }
        scorer.distance(n)
    };
    // Each batch of neighbours about to be scored: their rows towards the CPU cache
    // (and from the disk, as above, in one request with the next node's graph row).
    let prefetch = |nodes: &[u32]| {
        for &n in nodes {
            strata_index::distance::prefetch_all(scorer.row(n));
        }
        let next = graph.next.take();
        if front.active() {
            let spans = next.into_iter().flat_map(|n| graph.view.level0_spans(n));
            front.request(nodes, (scorer.section, scorer.width), spans);
        }
    };
    // The unfiltered walk scores each batch of neighbours in one call: their rows are
    // checked first (a damaged one ends the search with an error once the walk
    // returns, whatever it scored), then scored together.
    let score = |nodes: &[u32], out: &mut Vec<f32>| {
        prefetch(nodes);
        if !rows_check.is_complete() {
            for &n in nodes {
                if let Err(e) = rows_check.row(n as usize) {
                    damage.set(Some(e));
                }
            }
        }
        scorer.distances(nodes, out);
        if let Some(hidden) = eligible.hidden {
            for (&n, d) in nodes.iter().zip(out.iter_mut()) {
                if n as usize == hidden {
                    *d = f32::INFINITY;
                }
            }
        }
    };
    let found = if eligible.filtered {
        // Past as many scored nodes as there are eligible rows, the exact scan of those
        // rows costs less than the rest of the walk.
        let pass = |n: u32| !(eligible.skip)(n as usize);
        let walked = with_visited(|v| {
            hnsw::search_eligible(&graph, dist, prefetch, pass, ef, live_rows.max(ef), v)
        });
        match walked {
            Some(found) => found,
            None => return Ok(None),
        }
    } else {
        with_visited(|v| hnsw::search_batched(&graph, score, ef.max(k), v))
    };
    if let Some(e) = damage.take() {
        return Err(e.into());
    }
    if scorer.section == SectionKind::Vectors {
        // Walked on the stored rows: the walk's distances are those the rerank would
        // compute.
        // The first `k` eligible rows of the walk's results (nearest first), by id.
        let mut top = TopK::new(k);
        let mut n = 0;
        for c in found
            .iter()
            .filter(|c| !(eligible.skip)(c.id as usize))
            .take(k)
        {
            let row = c.id as usize;
            for &id in reader.id_rows(row..row + 1)? {
                top.push(id, c.distance);
            }
            n += 1;
        }
        if n < k.min(live_rows) {
            return Ok(None);
        }
        return Ok(Some(top));
    }
    // Deleted rows guided the walk; only live rows are reranked and returned. The top
    // holds row numbers until the end: only the k winners' ids are read (the ids
    // section then stays out of a search's working set under memory pressure).
    // Their vectors are requested together first (when they are not in memory), so
    // that the disk reads them in parallel rather than one fault at a time.
    let candidates: Vec<usize> = found
        .iter()
        .map(|n| n.id as usize)
        .filter(|&r| !(eligible.skip)(r))
        .take(rerank.max(k))
        .collect();
    reader.prefetch_vectors(&candidates, walk.prefetch);
    let mut rows_top = TopK::new(k);
    let mut scratch = Vec::with_capacity(reader.dim());
    for &n in &candidates {
        let v = reader.vector_rows(n..n + 1, &mut scratch)?;
        rows_top.push(n as u64, metric.distance(query, v));
    }
    if candidates.len() < k.min(live_rows) {
        return Ok(None);
    }
    rows_to_ids(reader, rows_top, k).map(Some)
}

/// What a walk scores each node on: its row in the walk codes (PQ or scalar) or in the
/// stored vectors (`int8`, or small `f32` segments).
struct Scorer<'a> {
    kind: ScoreOn,
    /// Every row, `width` bytes each (unchecked: the walk checks each row's blocks).
    rows: &'a [u8],
    width: usize,
    /// The section `rows` is: the walk codes (the candidates are then reranked) or the
    /// vectors.
    section: SectionKind,
}

enum ScoreOn {
    Pq(AdcTable),
    Int8(Sq8Query),
    /// Exact distances to `f32` rows (decoded into `scratch` where a row is not aligned
    /// for reading in place).
    F32 {
        query: Vec<f32>,
        metric: Metric,
        scratch: RefCell<Vec<f32>>,
    },
}

impl Scorer<'_> {
    /// Row `n`'s bytes (empty past the last row).
    #[inline]
    fn row(&self, n: u32) -> &[u8] {
        let i = n as usize * self.width;
        self.rows.get(i..i + self.width).unwrap_or(&[])
    }

    /// [`Scorer::distance`] of each of `nodes`, in order, replacing `out`.
    #[inline]
    fn distances(&self, nodes: &[u32], out: &mut Vec<f32>) {
        match &self.kind {
            ScoreOn::Int8(q) => q.distances_to_rows(self.rows, self.width, nodes, out),
            _ => {
                out.clear();
                out.extend(nodes.iter().map(|&n| self.distance(n)));
            }
        }
    }

    #[inline]
    fn distance(&self, n: u32) -> f32 {
        let row = self.row(n);
        if row.is_empty() {
            return f32::INFINITY;
        }
        match &self.kind {
            ScoreOn::Pq(table) => table.distance(row),
            ScoreOn::Int8(q) => q.distance(row),
            ScoreOn::F32 {
                query,
                metric,
                scratch,
            } => {
                let mut scratch = scratch.borrow_mut();
                metric.distance(
                    query,
                    strata_format::vector_codec::f32_values(row, &mut scratch),
                )
            }
        }
    }
}

/// A top list of segment rows as the same list of their ids: only the winners' ids are
/// read (the ids section then stays out of a search's working set).
pub(crate) fn rows_to_ids(reader: &SegmentReader, rows_top: TopK, k: usize) -> Result<TopK> {
    let mut top = TopK::new(k);
    for n in rows_top.into_unsorted() {
        let row = n.id as usize;
        for &id in reader.id_rows(row..row + 1)? {
            top.push(id, n.distance);
        }
    }
    Ok(top)
}

/// A segment's stored graph whose level-0 rows are checked against their block
/// checksums before they are read; a damaged row reads as no neighbours and is kept in
/// `damage` for the search to report.
struct CheckedGraph<'a> {
    view: GraphView<'a>,
    check: RowCheck<'a>,
    damage: &'a Cell<Option<strata_format::Error>>,
    /// The node the walk expands next (set as it announces it), whose graph row the
    /// next batch's page request includes.
    next: Cell<Option<u32>>,
}

impl CheckedGraph<'_> {
    /// Whether `node`'s row at `level` may be read: level 0's rows are checked against
    /// their block checksums (a damaged one is kept in `damage` and reads as empty).
    #[inline]
    fn checked(&self, node: u32, level: usize) -> bool {
        if level != 0 {
            return true;
        }
        let checked = self
            .view
            .level0_spans(node)
            .into_iter()
            .try_for_each(|span| self.check.bytes(span));
        match checked {
            Ok(()) => true,
            Err(e) => {
                self.damage.set(Some(e));
                false
            }
        }
    }
}

impl Graph for CheckedGraph<'_> {
    fn node_count(&self) -> usize {
        self.view.node_count()
    }

    fn entry_point(&self) -> Option<(u32, usize)> {
        self.view.entry_point()
    }

    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        if self.checked(node, level) {
            self.view.neighbors(node, level, out);
        } else {
            out.clear();
        }
    }

    fn prefetch_neighbors(&self, node: u32, level: usize) {
        if level == 0 {
            self.next.set(Some(node));
        }
        self.view.prefetch_neighbors(node, level);
    }

    fn prefetch_lookup(&self, node: u32, level: usize) {
        self.view.prefetch_lookup(node, level);
    }
}
