//! Round trips, damage detection and index sections of the segment container.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;
use crate::error::Error;
use strata_vfs::OsVfs;

fn sample(dir: &Path, rows: usize) -> (PathBuf, Vec<u64>, Vec<f32>) {
    sample_with(dir, rows, crate::VectorCodec::F32)
}

fn sample_with(
    dir: &Path,
    rows: usize,
    vector_codec: crate::VectorCodec,
) -> (PathBuf, Vec<u64>, Vec<f32>) {
    let ids: Vec<u64> = (0..rows as u64).map(|i| i * 3 + 1).collect();
    let vectors: Vec<f32> = (0..rows * 4).map(|i| i as f32 * 0.5).collect();
    let owned: Vec<Vec<u8>> = (0..rows)
        .map(|i| format!("payload {i}").into_bytes())
        .collect();
    let payloads: Vec<Option<&[u8]>> = owned
        .iter()
        .enumerate()
        .map(|(i, p)| (i % 3 != 0).then_some(p.as_slice()))
        .collect();
    let metas: Vec<Vec<u8>> = (0..rows).map(|i| sample_metadata(i).encode()).collect();
    let metadata: Vec<Option<&[u8]>> = metas
        .iter()
        .enumerate()
        .map(|(i, m)| (i % 4 == 0).then_some(m.as_slice()))
        .collect();
    let path = dir.join("000001.seg");
    let owned_keys: Vec<String> = (0..rows).map(sample_key).collect();
    let keys: Vec<&str> = owned_keys.iter().map(String::as_str).collect();
    let mut fields = crate::field_index::FieldIndexData::new(&[]);
    for (row, m) in metadata.iter().enumerate() {
        if let Some(m) = m {
            fields.add(
                row as u32,
                &crate::metadata::Metadata::decode(m, 0).unwrap(),
            );
        }
    }
    fields.finish(rows as u32);
    let fields = fields.encode();
    let owned_texts: Vec<String> = (0..rows).map(sample_text).collect();
    let texts: Vec<Option<&str>> = owned_texts
        .iter()
        .enumerate()
        .map(|(i, t)| (i % 5 != 0).then_some(t.as_str()))
        .collect();
    let mut text_index = crate::text_index::TextIndexBuilder::new();
    for t in &texts {
        let terms: Vec<&str> = t
            .map(|t| t.split_whitespace().collect())
            .unwrap_or_default();
        text_index.push_row(&terms);
    }
    let text_index = text_index.encode();
    let input = SegmentWriteInput {
        dim: 4,
        metric: 0,
        max_seq: 9,
        ids: &ids,
        vectors: &vectors,
        payloads: &payloads,
        metadata: &metadata,
        keys: &keys,
        field_index: (rows > 0).then_some(&fields[..]),
        index: None,
        texts: &texts,
        text_index: Some(&text_index),
        vector_codec,
    };
    write_segment(&OsVfs, &path, &input).unwrap();
    (path, ids, vectors)
}

fn sample_key(i: usize) -> String {
    match i % 3 {
        0 => format!("user/{i}"),
        1 => format!("ключ-{i}-{}", "x".repeat(i % 40)),
        _ => i.to_string(),
    }
}

fn sample_text(i: usize) -> String {
    format!(
        "row {i} of the sample ряд {} {}",
        i % 7,
        "word ".repeat(i % 4)
    )
}

fn sample_metadata(i: usize) -> crate::metadata::Metadata {
    crate::metadata::Metadata::from_json_str(&format!(r#"{{"i": {i}, "tags": ["a", {i}]}}"#))
        .unwrap()
}

#[test]
fn round_trip_ids_vectors_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids, vectors) = sample(dir.path(), 200);
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    assert_eq!(seg.ids(), &ids[..]);
    let mut all = Vec::new();
    seg.read_vectors(0..200, &mut all).unwrap();
    assert_eq!(all, vectors);
    assert_eq!(seg.vector(7).unwrap(), &vectors[28..32]);
    assert!(seg.vector(200).is_err());
    assert_eq!(seg.vector_codec(), crate::VectorCodec::F32);
    assert_eq!(seg.find(301), Some(100));
    assert_eq!(seg.find(302), None);
    assert_eq!(seg.payload(0).unwrap(), None);
    assert_eq!(seg.payload(131).unwrap().unwrap(), b"payload 131");
    assert!(seg.has_metadata());
    assert_eq!(seg.metadata(132).unwrap(), Some(sample_metadata(132)));
    assert_eq!(seg.metadata(131).unwrap(), None);
    assert!(seg.has_keys());
    let fields = seg.field_index().unwrap().unwrap();
    assert_eq!(fields.rows, 200);
    assert_eq!(fields.fields["i"].present.len(), 50);
    for row in 0..200 {
        assert_eq!(seg.key(row).unwrap(), Some(sample_key(row).as_str()));
        assert_eq!(seg.rows_with_key(&sample_key(row)).unwrap(), vec![row]);
    }
    assert!(seg.rows_with_key("user/1").unwrap().is_empty());
    assert!(seg.rows_with_key("").unwrap().is_empty());
    let block = seg.block_metadata(2).unwrap();
    assert_eq!(block.len(), 64);
    assert_eq!(
        block[0].as_deref(),
        Some(&sample_metadata(128).encode()[..])
    );
    assert!(seg.has_text());
    assert_eq!(seg.text(0).unwrap(), None);
    assert_eq!(seg.text(131).unwrap(), Some(sample_text(131)));
    assert_eq!(seg.block_texts(3).unwrap()[1], Some(sample_text(193)));
    let text = seg.text_index().unwrap().unwrap();
    assert_eq!(text.docs(), 160);
    assert_eq!(text.lookup("ряд").unwrap().unwrap().df, 160);
    assert_eq!(text.lookup("131").unwrap().unwrap().df, 1);
    assert_eq!(text.length(131), 7 + 131 % 4);
    seg.verify().unwrap();
    let mut scratch = Vec::new();
    assert_eq!(
        seg.vector_rows(0..1, &mut scratch).unwrap().as_ptr() as usize % 64,
        0,
        "f32 vectors are read in place, 64-byte aligned"
    );
    assert!(scratch.is_empty());
}

#[test]
fn empty_segment_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = sample(dir.path(), 0);
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    assert_eq!(seg.rows(), 0);
    seg.verify().unwrap();
}

#[test]
fn every_byte_flip_is_an_error_or_caught_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = sample(dir.path(), 70);
    let good = std::fs::read(&path).unwrap();
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let res = SegmentReader::open(&OsVfs, &path).and_then(|s| s.verify());
        match res {
            Err(Error::Corruption { path: p, .. }) => assert_eq!(p, path),
            Err(e) => panic!("flip at {at}: unexpected error {e}"),
            // Padding bytes between sections carry no data and are not checksummed.
            Ok(()) => assert!(is_padding(&good, at), "flip at {at} went unnoticed"),
        }
    }
}

fn is_padding(good: &[u8], at: usize) -> bool {
    let seg = SegmentReader::from_bytes(Path::new("x"), {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, good).unwrap();
        MappedBytes::map_file(&p).unwrap()
    })
    .unwrap();
    let inside = seg
        .sections
        .all()
        .iter()
        .any(|s| (s.range.start..s.range.end).contains(&(at as u64)));
    let table = good.len() - FOOTER_LEN as usize - 4 * TABLE_ENTRY_LEN as usize;
    !inside && at >= HEADER_LEN as usize && at < table
}

#[test]
fn unknown_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = sample(dir.path(), 3);
    let mut b = std::fs::read(&path).unwrap();
    b[8..12].copy_from_slice(&7u32.to_le_bytes());
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &b).unwrap();
    let err = SegmentReader::open(&OsVfs, &path).unwrap_err();
    assert!(
        err.to_string().contains("unsupported format version 7"),
        "{err}"
    );
}

#[test]
fn truncation_and_appended_garbage_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = sample(dir.path(), 10);
    let good = std::fs::read(&path).unwrap();
    for cut in [0, 10, 64, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert!(
            matches!(
                SegmentReader::open(&OsVfs, &path),
                Err(Error::Corruption { .. })
            ),
            "cut {cut}"
        );
    }
    let mut longer = good.clone();
    longer.extend_from_slice(&[0u8; 100]);
    std::fs::write(&path, &longer).unwrap();
    assert!(matches!(
        SegmentReader::open(&OsVfs, &path),
        Err(Error::Corruption { .. })
    ));
}

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
            // One probe in PROBE_EVERY: the front was found in memory each time.
            _ => 2,
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

#[test]
fn a_damaged_metadata_block_is_an_error_never_other_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = sample(dir.path(), 70);
    let good = std::fs::read(&path).unwrap();
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    let section = seg.section(SectionKind::Metadata).range.clone();
    drop(seg);
    let mut refused = 0;
    for at in section.start as usize..section.end as usize {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        let seg = SegmentReader::open(&OsVfs, &path).unwrap();
        for row in 0..70 {
            match seg.metadata(row) {
                Ok(m) => {
                    let want = (row % 4 == 0).then(|| sample_metadata(row));
                    assert_eq!(m, want, "flip at {at}, row {row}");
                }
                Err(Error::Corruption { .. }) => refused += 1,
                Err(e) => panic!("flip at {at}: {e}"),
            }
        }
        assert!(seg.verify().is_err(), "verify sees the flip at {at}");
    }
    assert!(refused > 0, "the flips were read");
}

#[test]
fn every_codec_round_trips_through_a_segment() {
    for codec in crate::vector_codec::VECTOR_CODECS {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, vectors) = sample_with(dir.path(), 130, codec);
        let seg = SegmentReader::open(&OsVfs, &path).unwrap();
        assert_eq!(seg.vector_codec(), codec);
        assert_eq!(seg.vectors_len(), (130 * 4 * codec.value_bytes()) as u64);
        let mut scratch = Vec::new();
        let got = seg.vector_rows(0..130, &mut scratch).unwrap().to_vec();
        // Values 0..260 in steps of 0.5: f16 holds them exactly, int8 within half a
        // step of its per-dimension grid.
        let tolerance = match codec {
            crate::VectorCodec::Int8 => 258.0 / 255.0 / 2.0 + 1e-3,
            _ => 0.0,
        };
        for (a, b) in vectors.iter().zip(&got) {
            assert!((a - b).abs() <= tolerance, "{codec:?}: {a} vs {b}");
        }
        assert_eq!(seg.vector(129).unwrap(), &got[129 * 4..]);
        seg.verify().unwrap();
    }
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
    }
}

/// Rows in another order than their ids: `ID_ORDER` is written, lookups, ranks and the
/// highest id go through it, and a damaged `ID_ORDER` is refused at open.
#[test]
fn rows_out_of_id_order_are_found_through_the_id_order_section() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 500usize;
    // A permutation of the ids 10, 13, 16, ...
    let ids: Vec<u64> = (0..rows as u64)
        .map(|i| 10 + 3 * ((i * 7) % rows as u64))
        .collect();
    let vectors: Vec<f32> = (0..rows * 2).map(|i| i as f32).collect();
    let payloads: Vec<Option<&[u8]>> = vec![None; rows];
    let path = dir.path().join("000004.seg");
    let input = SegmentWriteInput {
        dim: 2,
        metric: 0,
        max_seq: 1,
        ids: &ids,
        vectors: &vectors,
        payloads: &payloads,
        metadata: &[],
        keys: &[],
        field_index: None,
        index: None,
        texts: &[],
        text_index: None,
        vector_codec: crate::VectorCodec::F32,
    };
    write_segment(&OsVfs, &path, &input).unwrap();
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    assert!(!seg.rows_in_id_order());
    for (row, &id) in ids.iter().enumerate() {
        assert_eq!(seg.find(id), Some(row));
        assert_eq!(seg.find(id + 1), None);
    }
    assert_eq!(seg.find(0), None);
    let by_rank: Vec<u64> = (0..rows)
        .map(|k| ids[seg.row_of_rank(k).unwrap()])
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(by_rank, sorted);
    assert_eq!(seg.row_of_rank(rows), None);
    assert_eq!(seg.rank_after(9), 0);
    assert_eq!(seg.rank_after(10), 1);
    assert_eq!(seg.rank_after(12), 1);
    assert_eq!(seg.rank_after(u64::MAX), rows);
    assert_eq!(seg.max_id(), Some(10 + 3 * (rows as u64 - 1)));
    seg.verify().unwrap();
    let order_at = seg.section(SectionKind::IdOrder).range.start as usize;
    drop(seg);
    let mut bad = std::fs::read(&path).unwrap();
    bad[order_at + 4] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        SegmentReader::open(&OsVfs, &path),
        Err(Error::Corruption { .. })
    ));
    // Duplicate ids are refused by the writer.
    let mut dup = ids.clone();
    dup[7] = dup[300];
    let input = SegmentWriteInput { ids: &dup, ..input };
    assert!(write_segment(&OsVfs, &dir.path().join("000005.seg"), &input).is_err());
}

#[test]
fn prefetch_runs_cover_each_row_once_and_merge_touching_pages() {
    use super::prefetch::{Prefetch, PROBE_EVERY};
    let dir = tempfile::tempdir().unwrap();
    let (path, _, vectors) = sample(dir.path(), 3000);
    let seg = SegmentReader::open(&OsVfs, &path).unwrap();
    let section = seg.section(SectionKind::Vectors).range.clone();
    let width = 16;
    let rows = [2900, 3, 4, 3, 1200, 1_000_000];
    let runs = seg.vector_page_runs(&rows);
    for &r in rows.iter().filter(|&&r| r < 3000) {
        let (s, e) = (
            section.start + r as u64 * width,
            section.start + (r as u64 + 1) * width,
        );
        assert_eq!(
            runs.iter()
                .filter(|run| run.start <= s && e <= run.end)
                .count(),
            1
        );
    }
    assert_eq!(runs.len(), 3, "{runs:?}");
    for w in runs.windows(2) {
        assert!(
            w[0].end < w[1].start,
            "runs {w:?} touch and were not merged"
        );
    }
    assert!(runs
        .iter()
        .all(|r| r.start % 4096 == 0 && r.end % 4096 == 0));
    // Just written and read: nothing is missing, so nothing is requested.
    assert_eq!(seg.vector(3).unwrap(), vectors[3 * 4..4 * 4]);
    assert_eq!(seg.request_missing(&runs), 0);
    // Every mode is a hint: the vectors read the same after it.
    for mode in [Prefetch::Auto, Prefetch::Always, Prefetch::Never] {
        for _ in 0..=PROBE_EVERY {
            seg.prefetch_vectors(&rows, mode);
        }
        seg.prefetch_vectors(&[], mode);
    }
    assert_eq!(seg.vector(2900).unwrap(), vectors[2900 * 4..2901 * 4]);
}
