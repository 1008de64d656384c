//! The segment container: an immutable file of rows (in id order, or in a spatial order
//! with an `ID_ORDER` index).
//!
//! Layout (all integers little-endian; `docs/format.md` is the normative spec):
//! header (64 B) · sections, each at a 64-byte aligned offset · section table · footer (32 B).
//! Sections: `IDS` (sorted `u64`), then, for an indexed segment,
//! `INDEX_META`, `PQ_CODEBOOK`, `PQ_CODES`, `GRAPH_L0`, `GRAPH_UPPER`; then `VECTORS`
//! (`f32` rows), `PAYLOAD_DIR` (one entry per block of [`PAYLOAD_BLOCK_ROWS`] rows) and
//! `PAYLOADS` (zstd frames); `METADATA_DIR`/`METADATA` when a row has metadata (version
//! 3 on), with `FIELD_INDEX` (version 4 on); `KEY_OFFSETS`/`KEY_BYTES`/`KEY_HASHES` in a string-keyed store (version 4 on,
//! read in `keys.rs`). Version 2 bit-packed `GRAPH_L0`. Version 5 stores `VECTORS` in
//! the codec its `VECTOR_CODEC` section names ([`crate::vector_codec`]) and checksums
//! `VECTORS`, `PQ_CODES` and `GRAPH_L0` per 4 KiB block in `BLOCK_CRCS`, each block
//! checked on first use (`blocks.rs`). Version 6 adds each row's text
//! (`TEXT_DIR`/`TEXTS`, compressed blocks as for metadata) and its full-text index
//! (`TEXT_TERMS`, `TEXT_POSTINGS`, `TEXT_LENGTHS`: [`crate::text_index`]), checksummed
//! whole on their first use after the open. `layout.rs` parses header, footer and section
//! table. Small sections are checksummed at open, the large ones per block on first use
//! (version 5) and whole by [`SegmentReader::verify`]. [`write_segment`] (in `write.rs`)
//! produces the file.

mod blobs;
mod blocks;
mod front;
mod id_order;
mod index_meta;
mod keys;
mod layout;
mod prefetch;
mod texts;
mod vectors;
mod write;

pub use blocks::{RowCheck, CHECK_BLOCK};
use index_meta::rice_params_ok;
pub use index_meta::{
    describe_built_by, IndexInput, IndexMeta, IndexParts, BUILT_GPU_CODES, BUILT_GPU_KMEANS,
    BUILT_GPU_LISTS, INDEX_META_LEN, INDEX_META_RICE_LEN, MAX_RICE_K,
};
pub use keys::{key_hash, MAX_KEY_LEN};
pub use layout::sections_from_tail;
pub use prefetch::{FrontPrefetch, Prefetch, PROBE_EVERY};
pub use vectors::Int8Rows;
pub use write::write_segment;

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::codec::{check_crc, Reader};
use crate::error::{CorruptionKind, DecodeError, Result};
use layout::{parse_footer, parse_header, parse_table};
use strata_vfs::MappedBytes;

/// Magic at offset 0 of a segment.
pub const SEGMENT_MAGIC: &[u8; 8] = b"STRATSEG";
/// Magic in the last 4 bytes of a segment.
pub const FOOTER_MAGIC: &[u8; 4] = b"SEGF";
/// Format version written by this build.
pub const SEGMENT_VERSION: u32 = 6;
/// Oldest format version this build reads.
pub const SEGMENT_MIN_VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_LEN: u64 = 64;
/// Footer length in bytes.
pub const FOOTER_LEN: u64 = 32;
/// Length of one section-table entry.
pub const TABLE_ENTRY_LEN: u64 = 32;
/// Alignment of every section.
pub const SECTION_ALIGN: u64 = 64;
/// Rows per compressed payload block.
pub const PAYLOAD_BLOCK_ROWS: usize = 64;
/// Largest payload of one record, in bytes.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;
/// Largest dimension a segment may declare.
pub const MAX_DIM: u32 = 65_536;
/// Largest text of one record, in bytes.
pub const MAX_TEXT_LEN: usize = 256 * 1024;
/// Marker in a payload block for "this row has no payload".
const NO_PAYLOAD: u32 = u32::MAX;

/// Section kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    /// Unique `u64` ids in row order: ascending unless `ID_ORDER` is present.
    Ids = 1,
    /// `rows × dim` values in the segment's vector codec (`f32` before version 5).
    Vectors = 2,
    /// Per payload block: offset `u64`, compressed length `u32`, raw length `u32`.
    PayloadDir = 3,
    /// Concatenated zstd frames.
    Payloads = 4,
    /// Index parameters, 32 bytes ([`IndexMeta`]).
    IndexMeta = 5,
    /// PQ centroids: `256 × dim` `f32` in sub-quantizer order.
    PqCodebook = 6,
    /// PQ codes: `rows × pq_m` bytes.
    PqCodes = 7,
    /// Graph level 0: `rows × m0` `u32`, unused slots `u32::MAX`.
    GraphLevel0 = 8,
    /// Graph upper levels, a flat `u32` array (see `docs/format.md`).
    GraphUpper = 9,
    /// Per metadata block: offset `u64`, compressed length `u32`, raw length `u32`
    /// (version 3 on).
    MetadataDir = 10,
    /// Concatenated zstd frames of metadata blocks (version 3 on).
    Metadata = 11,
    /// `rows + 1` ascending `u64` offsets into `KEY_BYTES` (version 4 on).
    KeyOffsets = 12,
    /// Every row's string key, UTF-8, concatenated in row order (version 4 on).
    KeyBytes = 13,
    /// `rows` ascending `u64` key hashes, then the `rows` `u32` rows they belong to
    /// (version 4 on).
    KeyHashes = 14,
    /// The metadata index of the rows ([`crate::field_index`]), beside the metadata
    /// sections (version 4 on).
    FieldIndex = 15,
    /// The codec of `VECTORS` and its parameters ([`crate::vector_codec`]; version 5 on).
    VectorCodec = 16,
    /// CRC32 of every 4 KiB block of `VECTORS`, `PQ_CODES` and `GRAPH_L0` (version 5 on).
    BlockCrcs = 17,
    /// The rows as `u32`, by ascending id, when they are not in id order (version 5 on).
    IdOrder = 18,
    /// Per text block: offset `u64`, compressed length `u32`, raw length `u32`
    /// (version 6 on).
    TextDir = 19,
    /// Concatenated zstd frames of each row's UTF-8 text (version 6 on).
    Texts = 20,
    /// The text index's term dictionary ([`crate::text_index`]; version 6 on).
    TextTerms = 21,
    /// The text index's posting lists (version 6 on).
    TextPostings = 22,
    /// Each row's length in terms, `u32` (version 6 on).
    TextLengths = 23,
}

/// Number of section kinds.
const KIND_COUNT: usize = 23;

const SECTION_KINDS: [SectionKind; KIND_COUNT] = [
    SectionKind::Ids,
    SectionKind::Vectors,
    SectionKind::PayloadDir,
    SectionKind::Payloads,
    SectionKind::IndexMeta,
    SectionKind::PqCodebook,
    SectionKind::PqCodes,
    SectionKind::GraphLevel0,
    SectionKind::GraphUpper,
    SectionKind::MetadataDir,
    SectionKind::Metadata,
    SectionKind::KeyOffsets,
    SectionKind::KeyBytes,
    SectionKind::KeyHashes,
    SectionKind::FieldIndex,
    SectionKind::VectorCodec,
    SectionKind::BlockCrcs,
    SectionKind::IdOrder,
    SectionKind::TextDir,
    SectionKind::Texts,
    SectionKind::TextTerms,
    SectionKind::TextPostings,
    SectionKind::TextLengths,
];

// Sections 1..=4 are in every segment; the index sections (5..=9) are present all
// together or not at all, and so are the metadata sections (10, 11) and the key
// sections (12..=14).
/// The index section kinds.
const INDEX_KINDS: std::ops::RangeInclusive<u32> = 5..=9;
/// The metadata section kinds.
const METADATA_KINDS: std::ops::RangeInclusive<u32> = 10..=11;
/// The key sections.
const KEY_KINDS: std::ops::RangeInclusive<u32> = 12..=14;
/// The sections every segment has from version 5 on (vector codec, block checksums).
const VERSION_5_KINDS: std::ops::RangeInclusive<u32> = 16..=17;
/// The text sections (version 6 on), present together when some row has text.
const TEXT_KINDS: std::ops::RangeInclusive<u32> = 19..=23;

/// A column of per-row byte strings stored in compressed blocks of
/// [`PAYLOAD_BLOCK_ROWS`] rows: payloads, or encoded metadata.
#[derive(Debug, Clone, Copy)]
struct BlobColumn {
    dir: SectionKind,
    data: SectionKind,
    max_item: usize,
    what: &'static str,
}

const PAYLOAD_COLUMN: BlobColumn = BlobColumn {
    dir: SectionKind::PayloadDir,
    data: SectionKind::Payloads,
    max_item: MAX_PAYLOAD_LEN,
    what: "payload block",
};

const METADATA_COLUMN: BlobColumn = BlobColumn {
    dir: SectionKind::MetadataDir,
    data: SectionKind::Metadata,
    max_item: crate::metadata::MAX_METADATA_LEN,
    what: "metadata block",
};

const TEXT_COLUMN: BlobColumn = BlobColumn {
    dir: SectionKind::TextDir,
    data: SectionKind::Texts,
    max_item: MAX_TEXT_LEN,
    what: "text block",
};

/// What a flush hands to [`write_segment`]: rows in the order to write them, ids unique
/// (rows not in id order get an `ID_ORDER` section).
pub struct SegmentWriteInput<'a> {
    /// Vector dimension.
    pub dim: u32,
    /// Metric code (`docs/format.md`: 0 = L2, 1 = inner product, 2 = cosine). This
    /// crate reads it only to round cosine rows' `int8` codes keeping their norm.
    pub metric: u8,
    /// Highest sequence number of any row written (informational).
    pub max_seq: u64,
    /// Unique ids, in row order (rows not in id order get an `ID_ORDER` section).
    pub ids: &'a [u64],
    /// `ids.len() × dim` values, row-major.
    pub vectors: &'a [f32],
    /// Payload of each row, `None` when absent.
    pub payloads: &'a [Option<&'a [u8]>],
    /// Encoded metadata of each row ([`crate::metadata::Metadata::encode`]), `None` when
    /// absent; empty when no row has any.
    pub metadata: &'a [Option<&'a [u8]>],
    /// The string key of each row (each at most [`MAX_KEY_LEN`] bytes); empty in a store
    /// of `u64` ids.
    pub keys: &'a [&'a str],
    /// The encoded metadata index of the rows ([`crate::field_index::FieldIndexData`]);
    /// only with metadata.
    pub field_index: Option<&'a [u8]>,
    /// The search index, for segments large enough to have one.
    pub index: Option<IndexInput<'a>>,
    /// The text of each row (each at most [`MAX_TEXT_LEN`] bytes), `None` when absent;
    /// empty when no row has any.
    pub texts: &'a [Option<&'a str>],
    /// The full-text index of the texts (required with them).
    pub text_index: Option<&'a crate::text_index::TextSections>,
    /// How `VECTORS` stores the vectors.
    pub vector_codec: crate::VectorCodec,
}

/// Parsed fixed header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version of the file.
    pub version: u32,
    /// Vector dimension.
    pub dim: u32,
    /// Metric code.
    pub metric: u8,
    /// Number of rows.
    pub rows: u64,
    /// Highest sequence number in the segment.
    pub max_seq: u64,
}

/// Index `i` of the first pair `(ids[i], ids[i + 1])` that is not strictly ascending.
fn first_unordered(ids: &[u64]) -> Option<usize> {
    ids.iter().zip(ids.iter().skip(1)).position(|(a, b)| a >= b)
}

fn strictly_ascending(ids: &[u64]) -> bool {
    first_unordered(ids).is_none()
}

#[derive(Debug, Clone)]
struct Section {
    range: Range<u64>,
    crc: u32,
}

/// An open segment: zero-copy, bounds-checked views over its mmap.
#[derive(Debug)]
pub struct SegmentReader {
    path: PathBuf,
    bytes: MappedBytes,
    header: SegmentHeader,
    sections: Sections,
    vector_decoder: crate::vector_codec::VectorDecoder,
    blocks: blocks::BlockChecks,
    residency: prefetch::Residency,
    /// Sampled residency of the front (PQ codes, level-0 graph), for the walk's requests.
    front_residency: prefetch::Residency,
    /// The search front in process memory, once [`Self::load_front`] has run.
    front: Option<front::HeapFront>,
    /// The text index's checksums, checked on its first use.
    text_checked: std::sync::OnceLock<std::result::Result<(), DecodeError>>,
    /// Where `VECTORS` is read from when the local image does not hold it (a replica's
    /// segment, whose vectors stay in the bucket): see [`VectorSource`].
    vector_source: Option<std::sync::Arc<dyn VectorSource>>,
}

/// Reads a segment's `VECTORS` bytes from elsewhere than its local image (a bucket,
/// through a cache): `range` is relative to the section's start. The reader checks the
/// bytes against the section's block checksums before using them.
pub trait VectorSource: Send + Sync + std::fmt::Debug {
    /// The section's bytes `range`.
    fn read(&self, range: Range<u64>) -> std::io::Result<Vec<u8>>;

    /// A hint that `ranges` (section-relative) are read next: a source may fetch what it
    /// lacks of them together. Never fails.
    fn prefetch(&self, ranges: &[Range<u64>]) {
        let _ = ranges;
    }
}

/// The section table, by kind (slot `kind - 1`).
#[derive(Debug, Clone)]
struct Sections {
    slots: [Option<Section>; KIND_COUNT],
}

const ABSENT: Section = Section {
    range: 0..0,
    crc: 0,
};

impl Sections {
    fn get(&self, kind: SectionKind) -> &Section {
        self.slots
            .get(kind as usize - 1)
            .and_then(Option::as_ref)
            .unwrap_or(&ABSENT)
    }

    fn has(&self, kind: SectionKind) -> bool {
        self.slots
            .get(kind as usize - 1)
            .is_some_and(Option::is_some)
    }

    #[cfg(test)]
    fn all(&self) -> Vec<&Section> {
        self.slots.iter().flatten().collect()
    }
}

impl SegmentReader {
    /// Maps and validates `path`: footer, header, section table, and the checksums of the
    /// small sections. Large sections are checked by [`SegmentReader::verify`].
    pub fn open(fs: &dyn strata_vfs::Vfs, path: &Path) -> Result<Self> {
        let bytes = fs.map(path).map_err(|e| crate::error::Error::io(path, e))?;
        Self::from_bytes(path, bytes).map_err(|e| e.at(path))
    }

    /// Validates an already mapped (or in-memory, for fuzzing) segment image.
    pub fn from_bytes(path: &Path, bytes: MappedBytes) -> std::result::Result<Self, DecodeError> {
        let buf = bytes.as_slice();
        let len = buf.len() as u64;
        if len < HEADER_LEN + FOOTER_LEN {
            return Err(Reader::fault_at(
                0,
                CorruptionKind::Truncated {
                    needed: HEADER_LEN + FOOTER_LEN,
                    available: len,
                },
            ));
        }
        let header = parse_header(buf)?;
        let (table_off, count) = parse_footer(buf)?;
        let sections = parse_table(buf, table_off, count, &header)?;
        let mut seg = SegmentReader {
            path: path.to_path_buf(),
            bytes,
            header,
            sections,
            vector_decoder: crate::vector_codec::VectorDecoder::f32(header.dim as usize),
            blocks: blocks::BlockChecks::default(),
            residency: prefetch::Residency::new(prefetch::VECTORS_THRESHOLD),
            front_residency: prefetch::Residency::new(prefetch::FRONT_THRESHOLD),
            front: None,
            text_checked: std::sync::OnceLock::new(),
            vector_source: None,
        };
        if header.version >= 5 {
            seg.open_version_5()?;
        }
        seg.check_section(SectionKind::Ids)?;
        seg.check_section(SectionKind::PayloadDir)?;
        if seg.sections.has(SectionKind::MetadataDir) {
            seg.check_section(SectionKind::MetadataDir)?;
        }
        if seg.has_text() {
            seg.check_section(SectionKind::TextDir)?;
        }
        // Every key section is checked at open: a damaged key would make its record
        // unreachable by key, and a later upsert of that key would add a second record.
        if seg.has_keys() {
            seg.check_section(SectionKind::KeyOffsets)?;
            seg.check_section(SectionKind::KeyBytes)?;
            seg.check_section(SectionKind::KeyHashes)?;
        }
        if seg.sections.has(SectionKind::IndexMeta) {
            seg.check_section(SectionKind::IndexMeta)?;
            seg.check_section(SectionKind::PqCodebook)?;
            seg.index_meta()?;
        }
        // No read-ahead on faults from the ids to the end of the vectors: ids are read
        // for the k results and by `get`, full vectors a row at a time to rerank, and
        // the front (codes, graph) a row at a time by each step of a walk. Under memory
        // pressure a fault's read-ahead (up to the device's `read_ahead_kb`, megabytes
        // on some) would evict the pages searches need for neighbouring ones nobody
        // asked for; the reads a search needs together are requested together
        // (`prefetch.rs`). What every search walks — the front, or for an `int8`
        // segment its graph and vectors — is requested whole now.
        let ids = seg.section(SectionKind::Ids).range.clone();
        let vectors = seg.section(SectionKind::Vectors).range.clone();
        seg.bytes.advise(ids.start..vectors.end, true);
        if seg.vector_codec() == crate::VectorCodec::Int8 {
            for kind in [
                SectionKind::GraphLevel0,
                SectionKind::GraphUpper,
                SectionKind::Vectors,
            ] {
                seg.bytes.advise(seg.section(kind).range.clone(), false);
            }
        } else {
            seg.bytes.advise(ids.end..vectors.start, false);
        }
        Ok(seg)
    }

    fn section(&self, kind: SectionKind) -> &Section {
        self.sections.get(kind)
    }

    /// Version 5 at open: the vector codec (and the vectors' length in it), the block
    /// checksums' layout, and the upper graph levels (small, read by every search).
    fn open_version_5(&mut self) -> std::result::Result<(), DecodeError> {
        self.check_section(SectionKind::VectorCodec)?;
        let at = self.section(SectionKind::VectorCodec).range.start;
        self.vector_decoder = crate::vector_codec::VectorDecoder::parse(
            self.section_bytes(SectionKind::VectorCodec),
            self.dim(),
            at,
        )?;
        let vectors = self.section(SectionKind::Vectors).range.clone();
        let want = self
            .header
            .rows
            .checked_mul(self.vector_decoder.row_bytes() as u64);
        if want != Some(vectors.end - vectors.start) {
            return Err(Reader::fault_at(
                vectors.start,
                CorruptionKind::Invalid("vectors section length"),
            ));
        }
        self.check_section(SectionKind::BlockCrcs)?;
        if self.sections.has(SectionKind::IdOrder) {
            self.check_section(SectionKind::IdOrder)?;
        }
        // Row widths of the covered sections: the codec's, and the index's (0 without
        // one: its sections are then absent).
        let (codes_row, graph_row) = if self.sections.has(SectionKind::IndexMeta) {
            self.check_section(SectionKind::IndexMeta)?;
            self.check_section(SectionKind::GraphUpper)?;
            let m = self.index_meta()?;
            (m.pq_m as usize, m.level0_stride() as usize)
        } else {
            (0, 0)
        };
        let covered = blocks::COVERED.map(|k| {
            let row_bytes = match k {
                SectionKind::Vectors => self.vector_decoder.row_bytes(),
                SectionKind::PqCodes => codes_row,
                _ => graph_row,
            };
            self.sections.has(k).then(|| {
                let r = &self.section(k).range;
                (r.end - r.start, row_bytes)
            })
        });
        self.blocks = blocks::BlockChecks::layout(
            self.section_bytes(SectionKind::BlockCrcs),
            self.section(SectionKind::BlockCrcs).range.start,
            covered,
        )?;
        Ok(())
    }

    /// Parses `INDEX_META` and checks the other index sections' sizes against it.
    fn index_meta(&self) -> std::result::Result<IndexMeta, DecodeError> {
        let at = self.section(SectionKind::IndexMeta).range.start;
        let m = IndexMeta::decode(
            self.section_bytes(SectionKind::IndexMeta),
            at,
            self.header.version,
        )?;
        let rows = self.header.rows;
        let dim = self.header.dim as u64;
        let len = |k| {
            let r = &self.section(k).range;
            r.end - r.start
        };
        let fault = |k, what| {
            Err(Reader::fault_at(
                self.section(k).range.start,
                CorruptionKind::Invalid(what),
            ))
        };
        // No PQ codes (`pq_m` 0) only in a segment walked on its rows (`int8`, `f32`).
        let without_pq =
            m.pq_m == 0 && self.header.version >= 5 && self.vector_decoder.codec().walkable();
        if (m.pq_m == 0 && !without_pq) || m.pq_m as u64 > dim || m.m0 == 0 || m.m0 > 1024 {
            return fault(SectionKind::IndexMeta, "index parameters");
        }
        if (m.entry_node as u64) >= rows.max(1) && !(rows == 0 && m.entry_node == u32::MAX) {
            return fault(SectionKind::IndexMeta, "graph entry point");
        }
        let codebook_len = if without_pq { 0 } else { 256 * dim * 4 };
        if len(SectionKind::PqCodebook) != codebook_len {
            return fault(SectionKind::PqCodebook, "PQ codebook length");
        }
        if Some(len(SectionKind::PqCodes)) != rows.checked_mul(m.pq_m as u64) {
            return fault(SectionKind::PqCodes, "PQ codes length");
        }
        if !m.level0_len_fits(len(SectionKind::GraphLevel0), rows) {
            return fault(SectionKind::GraphLevel0, "graph level-0 length");
        }
        if len(SectionKind::GraphUpper) % 4 != 0 || len(SectionKind::GraphUpper) == 0 {
            return fault(SectionKind::GraphUpper, "graph upper-level length");
        }
        Ok(m)
    }

    /// The index sections, when this segment has them. Their sizes were checked at open;
    /// their contents are bounds-checked on use (and checksummed by [`Self::verify`]).
    pub fn index(&self) -> Option<IndexParts<'_>> {
        if !self.sections.has(SectionKind::IndexMeta) {
            return None;
        }
        let meta = self.index_meta().ok()?;
        Some(IndexParts {
            meta,
            codebook: bytemuck::try_cast_slice(self.section_bytes(SectionKind::PqCodebook)).ok()?,
            codes: self.section_bytes(SectionKind::PqCodes),
            level0: self.section_bytes(SectionKind::GraphLevel0),
            upper: bytemuck::try_cast_slice(self.section_bytes(SectionKind::GraphUpper)).ok()?,
        })
    }

    fn section_bytes(&self, kind: SectionKind) -> &[u8] {
        let r = &self.section(kind).range;
        if let Some(bytes) = self.front.as_ref().and_then(|f| f.get(r)) {
            return bytes;
        }
        self.bytes
            .as_slice()
            .get(r.start as usize..r.end as usize)
            .unwrap_or(&[])
    }

    fn check_section(&self, kind: SectionKind) -> std::result::Result<(), DecodeError> {
        let s = self.section(kind);
        check_crc(self.section_bytes(kind), s.crc, s.range.start)
    }

    /// The file this segment was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.header.rows as usize
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.header.dim as usize
    }

    /// File length in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The id of every row, in row order: ascending unless
    /// [`rows_in_id_order`](Self::rows_in_id_order) is false (then
    /// [`row_of_rank`](Self::row_of_rank) lists the rows by id).
    pub fn ids(&self) -> &[u64] {
        bytemuck::try_cast_slice(self.section_bytes(SectionKind::Ids)).unwrap_or(&[])
    }

    /// The ids of `rows`; a range the ids section does not hold is
    /// [`Error::Corruption`](crate::Error::Corruption) naming the file and the offset
    /// where it should start.
    pub fn id_rows(&self, rows: std::ops::Range<usize>) -> Result<&[u64]> {
        let start = rows.start;
        self.ids().get(rows).ok_or_else(|| {
            crate::Error::corrupt(
                &self.path,
                self.section(SectionKind::Ids).range.start + 8 * start as u64,
                CorruptionKind::Invalid("row beyond the ids section"),
            )
        })
    }

    /// The payload of `row`, decompressing its block.
    pub fn payload(&self, row: usize) -> Result<Option<Vec<u8>>> {
        self.item(PAYLOAD_COLUMN, row).map_err(|e| e.at(&self.path))
    }

    /// Every payload of payload block `block` (rows `block × PAYLOAD_BLOCK_ROWS` on),
    /// decompressing the block once; empty past the last block.
    pub fn block_payloads(&self, block: usize) -> Result<Vec<Option<Vec<u8>>>> {
        self.block_items(PAYLOAD_COLUMN, block)
            .map_err(|e| e.at(&self.path))
    }

    /// The segment's metadata index, when it holds one (written beside metadata from
    /// version 4): checksummed and decoded on each call.
    pub fn field_index(&self) -> Result<Option<crate::field_index::FieldIndexData>> {
        if !self.sections.has(SectionKind::FieldIndex) {
            return Ok(None);
        }
        let load = || {
            self.check_section(SectionKind::FieldIndex)?;
            let at = self.section(SectionKind::FieldIndex).range.start;
            let data = crate::field_index::FieldIndexData::decode(
                self.section_bytes(SectionKind::FieldIndex),
                at,
            )?;
            if data.rows as usize != self.rows() {
                return Err(Reader::fault_at(
                    at,
                    CorruptionKind::Invalid("field index rows"),
                ));
            }
            Ok(data)
        };
        load().map(Some).map_err(|e: DecodeError| e.at(&self.path))
    }

    /// Bytes of the metadata index section (0 without one).
    pub fn field_index_len(&self) -> u64 {
        let r = &self.section(SectionKind::FieldIndex).range;
        r.end - r.start
    }

    /// Whether the segment holds metadata sections (some row has metadata).
    pub fn has_metadata(&self) -> bool {
        self.sections.has(SectionKind::MetadataDir)
    }

    /// The metadata of `row` (`None`: the row has none), decoded.
    pub fn metadata(&self, row: usize) -> Result<Option<crate::metadata::Metadata>> {
        if !self.has_metadata() {
            return Ok(None);
        }
        let at = self.section(SectionKind::Metadata).range.start;
        self.item(METADATA_COLUMN, row)
            .and_then(|m| {
                m.map(|b| crate::metadata::Metadata::decode(&b, at))
                    .transpose()
            })
            .map_err(|e| e.at(&self.path))
    }

    /// Calls `f(row, metadata)` for every row in order (`None`: the row has none),
    /// decompressing each block once and decoding each row's metadata.
    pub fn for_each_metadata(
        &self,
        mut f: impl FnMut(usize, Option<crate::metadata::Metadata>),
    ) -> Result<()> {
        if !self.has_metadata() {
            (0..self.rows()).for_each(|row| f(row, None));
            return Ok(());
        }
        let at = self.section(SectionKind::Metadata).range.start;
        for block in 0..self.rows().div_ceil(PAYLOAD_BLOCK_ROWS) {
            for (i, item) in self.block_metadata(block)?.into_iter().enumerate() {
                let m = item
                    .map(|b| crate::metadata::Metadata::decode(&b, at))
                    .transpose()
                    .map_err(|e| e.at(&self.path))?;
                f(block * PAYLOAD_BLOCK_ROWS + i, m);
            }
        }
        Ok(())
    }

    /// The encoded metadata of every row of block `block` (as [`Self::block_payloads`]);
    /// all `None` when the segment has no metadata sections.
    pub fn block_metadata(&self, block: usize) -> Result<Vec<Option<Vec<u8>>>> {
        if !self.has_metadata() {
            let rows = if block * PAYLOAD_BLOCK_ROWS >= self.rows() {
                0
            } else {
                self.block_rows(block)
            };
            return Ok(vec![None; rows]);
        }
        self.block_items(METADATA_COLUMN, block)
            .map_err(|e| e.at(&self.path))
    }

    /// Full check: every section checksum (and block checksum), id order, every payload block, every
    /// metadata block with each row's metadata decoded, the keys and the field index.
    pub fn verify(&self) -> Result<()> {
        self.verify_inner().map_err(|e| e.at(&self.path))?;
        self.verify_blocks()?;
        self.field_index()?;
        if let Some(ix) = self.text_index()? {
            ix.verify().map_err(|e| e.at(&self.path))?;
            for block in 0..self.rows().div_ceil(PAYLOAD_BLOCK_ROWS) {
                self.block_texts(block)?;
            }
        }
        Ok(())
    }

    fn verify_inner(&self) -> std::result::Result<(), DecodeError> {
        for kind in SECTION_KINDS {
            if self.sections.has(kind) {
                self.check_section(kind)?;
            }
        }
        self.verify_id_order()?;
        let mut columns = vec![PAYLOAD_COLUMN];
        if self.has_metadata() {
            columns.push(METADATA_COLUMN);
        }
        if self.has_text() {
            columns.push(TEXT_COLUMN);
        }
        for col in columns {
            for block in 0..self.rows().div_ceil(PAYLOAD_BLOCK_ROWS) {
                let raw = self.block(col, block)?;
                let mut r = Reader::new(&raw, 0);
                let mut total = 0usize;
                for _ in 0..self.block_rows(block) {
                    let len = r.u32()?;
                    if len != NO_PAYLOAD {
                        total += len as usize;
                    }
                }
                let off = self.section(col.data).range.start;
                if r.remaining() != total {
                    return Err(Reader::fault_at(off, CorruptionKind::Invalid(col.what)));
                }
                if col.dir == SectionKind::MetadataDir {
                    for m in self.block_items(col, block)?.into_iter().flatten() {
                        crate::metadata::Metadata::decode(&m, off)?;
                    }
                }
            }
        }
        self.verify_keys()
    }
}

#[cfg(test)]
mod tests;
