//! Segment index sections (graph levels, PQ codes, their parameters), segments walked
//! on their rows, and bit flips in what searches read.

use super::*;

/// Index sections for a 40-row segment with `pq_m` bytes per PQ code: a packed level 0
/// (6-bit ids, 4 slots per node = 3 bytes per node), upper levels and their parameters.
fn forty_row_graph(pq_m: u32) -> (Vec<u8>, Vec<u32>, IndexMeta) {
    let level0: Vec<u8> = (0..40 * 3).map(|i| (i * 7) as u8).collect();
    let upper = vec![1u32, 1, 7, 0, 1, 3];
    let meta = IndexMeta {
        pq_m,
        m0: 4,
        entry_node: 7,
        entry_level: 1,
        hnsw_m: 2,
        ef_construction: 9,
        built_by: 0,
        l0_id_bits: 6,
        l0_rice: None,
    };
    (level0, upper, meta)
}

#[test]
fn index_sections_round_trip_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 40usize;
    let ids: Vec<u64> = (0..rows as u64).collect();
    let vectors: Vec<f32> = (0..rows * 4).map(|i| i as f32).collect();
    let payloads: Vec<Option<&[u8]>> = vec![None; rows];
    let key_strings: Vec<String> = (0..rows).map(|i| format!("k{i}")).collect();
    let key_refs: Vec<&str> = key_strings.iter().map(String::as_str).collect();
    let codebook: Vec<f32> = (0..256 * 4).map(|i| i as f32 * 0.25).collect();
    let codes: Vec<u8> = (0..rows * 2).map(|i| i as u8).collect();
    let (level0, upper, meta) = forty_row_graph(2);
    let path = dir.path().join("000002.seg");
    let index = Some(IndexInput {
        meta,
        codebook: &codebook,
        codes: &codes,
        level0: &level0,
        upper: &upper,
    });
    let input = SegmentWriteInput {
        dim: 4,
        metric: 0,
        max_seq: 1,
        ids: &ids,
        vectors: &vectors,
        payloads: &payloads,
        metadata: &[],
        keys: &key_refs,
        field_index: None,
        index,
        texts: &[],
        text_index: None,
        vector_codec: crate::VectorCodec::F32,
    };
    write_segment(&OsVfs, &path, &input).unwrap();
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    let ix = seg.index().unwrap();
    assert_eq!(ix.meta, meta);
    assert_eq!(
        (ix.codebook, ix.codes, ix.level0, ix.upper),
        (&codebook[..], &codes[..], &level0[..], &upper[..])
    );
    let mut scratch = Vec::new();
    assert_eq!(
        seg.vector_rows(0..rows, &mut scratch).unwrap(),
        &vectors[..]
    );
    seg.verify().unwrap();
    // Requests for the walk's front pages are hints, whatever the nodes and spans (out
    // of range ones included); `never` makes none, `always` every time, `auto` samples.
    let spans = || [0..3, 3..6, 117..120, 118..4000, 9_000..9_001].into_iter();
    let nodes = [0u32, 1, 39, 40, u32::MAX];
    for mode in [Prefetch::Auto, Prefetch::Always, Prefetch::Never] {
        let mut active = 0;
        for _ in 0..2 * PROBE_EVERY {
            let fp = seg.front_prefetch(mode);
            if fp.active() {
                active += 1;
            }
            fp.request(&nodes, (SectionKind::PqCodes, 2), spans());
            fp.request(&nodes, (SectionKind::Vectors, 16), spans());
            fp.request(&[], (SectionKind::PqCodes, 2), std::iter::empty());
        }
        let want = match mode {
            Prefetch::Never => 0,
            Prefetch::Always => 2 * PROBE_EVERY,
            // The first call samples; the front is found in memory, so the next sample
            // is two intervals on (calls 0 and 64 of 0..64: one).
            _ => 1,
        };
        assert_eq!(active, want, "{mode:?}");
    }
    assert_eq!(seg.index().unwrap().codes, &codes[..]);
    // The front in process memory reads the same, and the rest is still mapped.
    let mut seg = seg;
    assert_eq!(seg.front_in_memory(), 0);
    seg.load_front().unwrap();
    // A front in memory has no pages to request.
    for mode in [Prefetch::Auto, Prefetch::Always] {
        assert!(!seg.front_prefetch(mode).active());
    }
    let front: u64 = [
        SectionKind::IndexMeta,
        SectionKind::PqCodebook,
        SectionKind::PqCodes,
        SectionKind::GraphLevel0,
        SectionKind::GraphUpper,
    ]
    .iter()
    .map(|&k| seg.section(k).range.end - seg.section(k).range.start)
    .sum();
    assert!(
        seg.front_in_memory() >= front,
        "{} < {front}",
        seg.front_in_memory()
    );
    let ix = seg.index().unwrap();
    assert_eq!(ix.meta, meta);
    assert_eq!(
        (ix.codebook, ix.codes, ix.level0, ix.upper),
        (&codebook[..], &codes[..], &level0[..], &upper[..])
    );
    assert_eq!(
        seg.vector_rows(0..rows, &mut scratch).unwrap(),
        &vectors[..]
    );
    seg.verify().unwrap();
    let good = std::fs::read(&path).unwrap();
    let sections: Vec<(SectionKind, Section)> = SECTION_KINDS
        .into_iter()
        .filter(|&k| seg.sections.has(k))
        .map(|k| (k, seg.section(k).clone()))
        .collect();
    drop(seg);
    for (kind, sec) in sections {
        if sec.range.is_empty() {
            continue;
        }
        let mut bad = good.clone();
        bad[sec.range.start as usize] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        let res = SegmentReader::open(&OsVfs, &path).and_then(|s| s.verify());
        assert!(
            matches!(res, Err(Error::Corruption { .. })),
            "flip at {} went unnoticed",
            sec.range.start
        );
        // A flip in the front that the open does not check is found by its load.
        if let Ok(mut s) = SegmentReader::open(&OsVfs, &path) {
            let in_front = matches!(kind, SectionKind::PqCodes | SectionKind::GraphLevel0);
            if in_front {
                assert!(
                    matches!(s.load_front(), Err(Error::Corruption { .. })),
                    "{kind:?}: flip at {} loaded",
                    sec.range.start
                );
                assert_eq!(s.front_in_memory(), 0);
            }
        }
    }
}

#[test]
fn index_meta_reads_version_1_as_32_bit_ids_and_checks_the_width() {
    let mut meta = IndexMeta {
        pq_m: 2,
        m0: 32,
        entry_node: 0,
        entry_level: 0,
        hnsw_m: 16,
        ef_construction: 200,
        built_by: 0,
        l0_id_bits: 0,
        l0_rice: None,
    };
    let v1 = IndexMeta::decode(&meta.encode(), 0, 1).unwrap();
    assert_eq!(v1.l0_id_bits, 32);
    assert_eq!(v1.level0_stride(), 128, "version 1: plain u32 slots");
    assert!(
        IndexMeta::decode(&meta.encode(), 0, 2).is_err(),
        "0 bits in version 2"
    );
    meta.l0_id_bits = 19;
    assert_eq!(IndexMeta::decode(&meta.encode(), 0, 2).unwrap(), meta);
    assert_eq!(meta.level0_stride(), 76);
    assert!(
        IndexMeta::decode(&meta.encode(), 0, 1).is_err(),
        "version 1 has no width"
    );
    meta.l0_id_bits = 33;
    assert!(IndexMeta::decode(&meta.encode(), 0, 2).is_err());
}

#[test]
fn index_meta_of_a_rice_coded_graph_is_40_bytes_from_version_5() {
    let meta = IndexMeta {
        pq_m: 2,
        m0: 32,
        entry_node: 0,
        entry_level: 0,
        hnsw_m: 16,
        ef_construction: 200,
        built_by: 0,
        l0_id_bits: 19,
        l0_rice: Some(9 | 12 << 8),
    };
    let bytes = meta.encode();
    assert_eq!(bytes.len(), INDEX_META_RICE_LEN);
    assert_eq!(IndexMeta::decode(&bytes, 0, 5).unwrap(), meta);
    assert_eq!(meta.level0_stride(), 0);
    assert!(meta.level0_len_fits(4 * 11, 10) && !meta.level0_len_fits(4 * 11 - 1, 10));
    // Before version 5 the longer form does not exist.
    assert!(IndexMeta::decode(&bytes, 0, 4).is_err());
    // Another layout code, parameters out of range, or a torn tail are refused.
    for (at, value) in [(32, 2u32), (36, 25), (36, 25 << 8), (36, 1 << 16)] {
        let mut bad = bytes.clone();
        bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
        assert!(IndexMeta::decode(&bad, 0, 5).is_err(), "{at}: {value}");
    }
    assert!(IndexMeta::decode(&bytes[..36], 0, 5).is_err());
    // The packed layout keeps the 32-byte form.
    let packed = IndexMeta {
        l0_rice: None,
        ..meta
    };
    assert_eq!(packed.encode().len(), INDEX_META_LEN);
}

/// Overwrites bytes of section `kind` of the segment file `file` from `at` (within the
/// section) with `new`, and updates the section's checksum, the section table's and the
/// footer's, so that only what the bytes say is wrong.
fn patch_section(file: &mut [u8], kind: SectionKind, at: usize, new: &[u8]) {
    let u64_at = |f: &[u8], i: usize| u64::from_le_bytes(f[i..i + 8].try_into().unwrap());
    let u32_at = |f: &[u8], i: usize| u32::from_le_bytes(f[i..i + 4].try_into().unwrap());
    let footer = file.len() - 32;
    let table = u64_at(file, footer) as usize;
    let count = u32_at(file, footer + 8) as usize;
    let entry = (0..count)
        .map(|i| table + 32 * i)
        .find(|&e| u32_at(file, e) == kind as u32)
        .expect("section present");
    let (start, len) = (
        u64_at(file, entry + 8) as usize,
        u64_at(file, entry + 16) as usize,
    );
    file[start + at..start + at + new.len()].copy_from_slice(new);
    let crc = crc32fast::hash(&file[start..start + len]);
    file[entry + 24..entry + 28].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&file[table..table + 32 * count]);
    file[footer + 12..footer + 16].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&file[footer..footer + 24]);
    file[footer + 24..footer + 28].copy_from_slice(&crc.to_le_bytes());
}

/// An `int8` segment may go without PQ codes (`pq_m` 0, codebook and codes empty): it
/// round-trips, verifies, every flipped byte is found, and a flipped bit in its graph is
/// found by the first read of the row; the same index opens over `f32` rows, is refused
/// by the writer over `f16` rows, and an `f16` file claiming it is refused at open.
#[test]
fn int8_and_f32_segments_without_pq_codes_round_trip_and_f16_ones_may_not() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 40usize;
    let ids: Vec<u64> = (0..rows as u64).collect();
    let vectors: Vec<f32> = (0..rows * 4).map(|i| i as f32).collect();
    let payloads: Vec<Option<&[u8]>> = vec![None; rows];
    let (level0, upper, meta) = forty_row_graph(0);
    let input = |codec| SegmentWriteInput {
        dim: 4,
        metric: 0,
        max_seq: 1,
        ids: &ids,
        vectors: &vectors,
        payloads: &payloads,
        metadata: &[],
        keys: &[],
        field_index: None,
        index: Some(IndexInput {
            meta,
            codebook: &[],
            codes: &[],
            level0: &level0,
            upper: &upper,
        }),
        texts: &[],
        text_index: None,
        vector_codec: codec,
    };
    let path = dir.path().join("000002.seg");
    write_segment(&OsVfs, &path, &input(crate::VectorCodec::Int8)).unwrap();
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    let ix = seg.index().unwrap();
    assert_eq!(ix.meta, meta);
    assert!(ix.codebook.is_empty() && ix.codes.is_empty());
    assert_eq!((ix.level0, ix.upper), (&level0[..], &upper[..]));
    assert_eq!(seg.int8_rows().unwrap().codes.len(), rows * 4);
    seg.verify().unwrap();
    let graph_at = seg.section(SectionKind::GraphLevel0).range.start as usize;
    let good = std::fs::read(&path).unwrap();
    drop(seg);
    // Every byte flipped, one at a time: refused at open or by `verify`, or padding.
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        match SegmentReader::open(&OsVfs, &path).and_then(|s| s.verify()) {
            Err(Error::Corruption { path: p, .. }) => assert_eq!(p, path),
            Err(e) => panic!("flip at {at}: unexpected error {e}"),
            Ok(()) => assert!(is_padding(&good, at), "flip at {at} went unnoticed"),
        }
    }
    let mut bad = good.clone();
    bad[graph_at] ^= 0x10;
    std::fs::write(&path, &bad).unwrap();
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    assert!(matches!(
        seg.row_check(SectionKind::GraphLevel0).row(0),
        Err(Error::Corruption { .. })
    ));
    drop(seg);
    // The writer refuses the same index for rows of another codec, and `pq_m` 0 beside
    // a codebook for any codec.
    let other = dir.path().join("000003.seg");
    assert!(write_segment(&OsVfs, &other, &input(crate::VectorCodec::F16)).is_err());
    assert!(!other.exists(), "a refused write left a file");
    // `f32` rows may be walked on too: written without PQ codes, they open.
    let f32_path = dir.path().join("000005.seg");
    write_segment(&OsVfs, &f32_path, &input(crate::VectorCodec::F32)).unwrap();
    let f32_seg = SegmentReader::open(&OsVfs, &f32_path).unwrap();
    assert_eq!(f32_seg.index().unwrap().meta.pq_m, 0);
    assert_eq!(f32_seg.f32_rows().unwrap().len(), rows * 4 * 4);
    f32_seg.verify().unwrap();
    drop(f32_seg);
    let full_codebook = vec![0.5f32; 256 * 4];
    for codec in crate::vector_codec::VECTOR_CODECS {
        let mut with_codebook = input(codec);
        with_codebook.index = Some(IndexInput {
            meta,
            codebook: &full_codebook,
            codes: &[],
            level0: &level0,
            upper: &upper,
        });
        let res = write_segment(&OsVfs, &other, &with_codebook);
        assert!(res.is_err(), "{codec:?}: pq_m 0 with a codebook");
        // Refused before the file was created: nothing is left at the path.
        assert!(!other.exists(), "{codec:?}: a refused write left a file");
    }
    // An `f16` segment whose `INDEX_META` claims no PQ codes (checksums consistent, as
    // a writer with that bug would leave them) is refused at open.
    let f16_path = dir.path().join("000004.seg");
    let mut with_pq = input(crate::VectorCodec::F16);
    let codebook = vec![0.5f32; 256 * 4];
    let codes = vec![1u8; rows * 2];
    with_pq.index = Some(IndexInput {
        meta: IndexMeta { pq_m: 2, ..meta },
        codebook: &codebook,
        codes: &codes,
        level0: &level0,
        upper: &upper,
    });
    write_segment(&OsVfs, &f16_path, &with_pq).unwrap();
    SegmentReader::open(&OsVfs, &f16_path).unwrap();
    let mut lying = std::fs::read(&f16_path).unwrap();
    patch_section(&mut lying, SectionKind::IndexMeta, 0, &0u32.to_le_bytes());
    std::fs::write(&f16_path, &lying).unwrap();
    match SegmentReader::open(&OsVfs, &f16_path) {
        Err(Error::Corruption {
            kind: CorruptionKind::Invalid(what),
            ..
        }) => assert_eq!(what, "index parameters"),
        other => panic!("{other:?}"),
    }
}

/// A flipped bit in a block-checksummed section is reported by the first read of a row
/// in that block — as corruption at the block's offset — and rows of other blocks still
/// read; `verify` reports it too.
#[test]
fn a_flipped_bit_in_vectors_codes_or_graph_is_found_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 3000usize;
    let dim = 4usize;
    let ids: Vec<u64> = (0..rows as u64).collect();
    let vectors: Vec<f32> = (0..rows * dim).map(|i| i as f32).collect();
    let payloads: Vec<Option<&[u8]>> = vec![None; rows];
    let codebook = vec![0.5f32; 256 * dim];
    let codes: Vec<u8> = (0..rows * 2).map(|i| i as u8).collect();
    let bits = 12u32;
    let stride = (8 * bits as usize).div_ceil(8);
    let level0: Vec<u8> = (0..rows * stride).map(|i| (i * 7) as u8).collect();
    let meta = IndexMeta {
        pq_m: 2,
        m0: 8,
        entry_node: 0,
        entry_level: 0,
        hnsw_m: 4,
        ef_construction: 9,
        built_by: 0,
        l0_id_bits: bits,
        l0_rice: None,
    };
    let path = dir.path().join("000003.seg");
    let input = SegmentWriteInput {
        dim: dim as u32,
        metric: 0,
        max_seq: 1,
        ids: &ids,
        vectors: &vectors,
        payloads: &payloads,
        metadata: &[],
        keys: &[],
        field_index: None,
        index: Some(IndexInput {
            meta,
            codebook: &codebook,
            codes: &codes,
            level0: &level0,
            upper: &[0],
        }),
        texts: &[],
        text_index: None,
        vector_codec: crate::VectorCodec::F32,
    };
    write_segment(&OsVfs, &path, &input).unwrap();
    let good = std::fs::read(&path).unwrap();
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    let kinds = [
        (SectionKind::Vectors, dim * 4),
        (SectionKind::PqCodes, 2),
        (SectionKind::GraphLevel0, stride),
    ];
    let starts: Vec<u64> = kinds
        .iter()
        .map(|(k, _)| seg.section(*k).range.start)
        .collect();
    drop(seg);
    for ((kind, row_bytes), start) in kinds.into_iter().zip(starts) {
        // A byte in the second block of the section.
        let within = CHECK_BLOCK + 100;
        let mut bad = good.clone();
        bad[start as usize + within] ^= 0x08;
        std::fs::write(&path, &bad).unwrap();
        let seg = SegmentReader::open(&OsVfs, &path).unwrap();
        let check = seg.row_check(kind);
        check.row(0).unwrap();
        let damaged_row = within / row_bytes;
        match check.row(damaged_row) {
            Err(Error::Corruption {
                path: p,
                offset,
                kind: CorruptionKind::Checksum { .. },
            }) => {
                assert_eq!(p, path);
                assert_eq!(offset, start + CHECK_BLOCK as u64, "{kind:?}");
            }
            other => panic!("{kind:?}: {other:?}"),
        }
        // Still refused on the next read: a damaged block is never marked checked.
        assert!(check.row(damaged_row).is_err());
        if (rows - 1) * row_bytes / CHECK_BLOCK != 1 {
            check.row(rows - 1).unwrap();
        }
        if kind == SectionKind::Vectors {
            assert!(seg.vector(damaged_row).is_err());
            seg.vector(0).unwrap();
        }
        assert!(matches!(seg.verify(), Err(Error::Corruption { .. })));
        // Checking every other row never completes the section: its damaged block is
        // still checked by each new checker.
        for r in (0..rows).filter(|&r| r != damaged_row) {
            let _ = check.row(r);
        }
        assert!(!seg.row_check(kind).is_complete(), "{kind:?}");
        assert!(seg.row_check(kind).row(damaged_row).is_err());
    }
    // An intact section: once every block has been checked, new checkers skip the work.
    std::fs::write(&path, &good).unwrap();
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    for (kind, row_bytes) in kinds {
        let check = seg.row_check(kind);
        assert!(!check.is_complete(), "{kind:?}");
        // Every block but the last read: the next checker checks that one itself.
        let last_block = (rows * row_bytes - 1) / CHECK_BLOCK;
        for r in (0..rows).filter(|r| ((r + 1) * row_bytes - 1) / CHECK_BLOCK < last_block) {
            check.row(r).unwrap();
        }
        assert!(!check.is_complete());
        assert!(seg.row_check(kind).is_complete(), "{kind:?}");
    }
}
