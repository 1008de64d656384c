//! Round trips and damage detection of the segment container; its index sections in
//! `index.rs`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;
use crate::error::Error;
use strata_vfs::OsVfs;

mod index;

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
