//! A segment's index parameters (`INDEX_META`: PQ and graph shape, where the build ran,
//! the level-0 layout) and the index sections a writer takes and a reader lends.

use crate::codec::Reader;
use crate::error::{CorruptionKind, DecodeError};

/// Length of the `INDEX_META` section of a graph in the packed level-0 layout.
pub const INDEX_META_LEN: usize = 32;
/// Length of the `INDEX_META` section of a graph in the Rice-coded level-0 layout
/// (version 5 on): two more `u32`, the layout (1) and its parameters.
pub const INDEX_META_RICE_LEN: usize = 40;
/// The level-0 layout code of a Rice-coded graph in a 40-byte `INDEX_META`.
const LAYOUT_RICE: u32 = 1;
/// Largest Rice parameter a level-0 graph may declare.
pub const MAX_RICE_K: u32 = 24;

/// Parameters of a segment's index (the `INDEX_META` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexMeta {
    /// Bytes per PQ code (sub-quantizers).
    pub pq_m: u32,
    /// Slots per node on graph level 0.
    pub m0: u32,
    /// Entry node of the graph (`u32::MAX` when empty).
    pub entry_node: u32,
    /// Top level of the graph.
    pub entry_level: u32,
    /// HNSW `M` used to build.
    pub hnsw_m: u32,
    /// `ef_construction` used to build.
    pub ef_construction: u32,
    /// Which stages ran on a GPU: a set of `BUILT_GPU_*` bits; 0 = all on the CPU.
    pub built_by: u32,
    /// Bits per id in `GRAPH_L0` (1..=32). Version-1 files store 0 there and plain
    /// `u32` ids, which is the same layout as 32-bit packing; decoding reports 32.
    pub l0_id_bits: u32,
    /// `None`: `GRAPH_L0` holds `m0` packed slots per node. `Some(p)`: it holds each
    /// node's sorted neighbours Rice-coded, with parameters `p = k_first | k_gap << 8`
    /// (each at most [`MAX_RICE_K`]; version 5 on, `docs/format.md`).
    pub l0_rice: Option<u32>,
}

/// [`IndexMeta::built_by`] bit: the PQ codebooks were trained on a GPU.
pub const BUILT_GPU_KMEANS: u32 = 1;
/// [`IndexMeta::built_by`] bit: the PQ codes were computed on a GPU.
pub const BUILT_GPU_CODES: u32 = 2;
/// [`IndexMeta::built_by`] bit: the graph's neighbour lists were computed on a GPU (and
/// pruned into the graph on the CPU).
pub const BUILT_GPU_LISTS: u32 = 4;

/// Describes a [`IndexMeta::built_by`] value: `cpu`, `gpu`, or the stages that ran on a
/// GPU (`gpu: k-means, codes`), with unknown bits in hex.
pub fn describe_built_by(bits: u32) -> String {
    let all = BUILT_GPU_KMEANS | BUILT_GPU_CODES | BUILT_GPU_LISTS;
    if bits == 0 {
        return "cpu".into();
    }
    if bits == all {
        return "gpu".into();
    }
    let mut parts: Vec<String> = [
        (BUILT_GPU_KMEANS, "k-means"),
        (BUILT_GPU_CODES, "codes"),
        (BUILT_GPU_LISTS, "neighbour lists"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| n.to_string())
    .collect();
    if bits & !all != 0 {
        parts.push(format!("{:#x}", bits & !all));
    }
    format!("gpu: {}", parts.join(", "))
}

impl IndexMeta {
    /// Bytes per node in a packed `GRAPH_L0`: `m0` ids of `l0_id_bits` bits, rounded
    /// up (0 for the Rice-coded layout, whose nodes take varying bytes).
    pub fn level0_stride(&self) -> u64 {
        if self.l0_rice.is_some() {
            return 0;
        }
        (self.m0 as u64 * self.l0_id_bits as u64).div_ceil(8)
    }

    /// Whether `GRAPH_L0`'s length fits these parameters for `rows` nodes: `rows`
    /// packed rows, or at least the Rice layout's `rows + 1` offsets.
    pub fn level0_len_fits(&self, len: u64, rows: u64) -> bool {
        match self.l0_rice {
            None => rows.checked_mul(self.level0_stride()) == Some(len),
            Some(_) => rows
                .checked_add(1)
                .and_then(|n| n.checked_mul(4))
                .is_some_and(|table| len >= table),
        }
    }
}

pub(super) fn rice_params_ok(p: u32) -> bool {
    p >> 16 == 0 && p & 0xff <= MAX_RICE_K && (p >> 8) & 0xff <= MAX_RICE_K
}

impl IndexMeta {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; INDEX_META_LEN];
        let vals = [
            self.pq_m,
            self.m0,
            self.entry_node,
            self.entry_level,
            self.hnsw_m,
            self.ef_construction,
            self.built_by,
            self.l0_id_bits,
        ];
        for (chunk, v) in b.chunks_exact_mut(4).zip(vals) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        if let Some(p) = self.l0_rice {
            b.extend_from_slice(&LAYOUT_RICE.to_le_bytes());
            b.extend_from_slice(&p.to_le_bytes());
        }
        b
    }

    pub(super) fn decode(
        b: &[u8],
        at: u64,
        version: u32,
    ) -> std::result::Result<Self, DecodeError> {
        let mut r = Reader::new(b, at);
        let mut meta = IndexMeta {
            pq_m: r.u32()?,
            m0: r.u32()?,
            entry_node: r.u32()?,
            entry_level: r.u32()?,
            hnsw_m: r.u32()?,
            ef_construction: r.u32()?,
            built_by: r.u32()?,
            l0_id_bits: r.u32()?,
            l0_rice: None,
        };
        let bits_ok = match version {
            1 => meta.l0_id_bits == 0,
            _ => (1..=32).contains(&meta.l0_id_bits),
        };
        if version >= 5 && r.remaining() == INDEX_META_RICE_LEN - INDEX_META_LEN {
            let (layout, params) = (r.u32()?, r.u32()?);
            if layout != LAYOUT_RICE || !rice_params_ok(params) {
                return Err(Reader::fault_at(at, CorruptionKind::Invalid("index meta")));
            }
            meta.l0_rice = Some(params);
        }
        if !bits_ok || r.remaining() != 0 {
            return Err(Reader::fault_at(at, CorruptionKind::Invalid("index meta")));
        }
        if version == 1 {
            meta.l0_id_bits = 32;
        }
        Ok(meta)
    }
}

/// The index sections a flush hands to [`write_segment`](super::write_segment).
pub struct IndexInput<'a> {
    /// Parameters.
    pub meta: IndexMeta,
    /// PQ centroids (`256 × dim`; empty when `meta.pq_m` is 0, only for `int8` rows).
    pub codebook: &'a [f32],
    /// PQ codes (`rows × pq_m`).
    pub codes: &'a [u8],
    /// Graph level 0 in the layout `meta.l0_rice` names: packed (`rows ×
    /// meta.level0_stride()` bytes) or Rice-coded.
    pub level0: &'a [u8],
    /// Graph upper levels.
    pub upper: &'a [u32],
}

/// A segment's index sections, borrowed from the map.
#[derive(Debug, Clone, Copy)]
pub struct IndexParts<'a> {
    /// Parameters.
    pub meta: IndexMeta,
    /// PQ centroids (empty when `meta.pq_m` is 0).
    pub codebook: &'a [f32],
    /// PQ codes (empty when `meta.pq_m` is 0).
    pub codes: &'a [u8],
    /// Graph level 0, packed or Rice-coded (`meta.l0_rice`).
    pub level0: &'a [u8],
    /// Graph upper levels.
    pub upper: &'a [u32],
}
