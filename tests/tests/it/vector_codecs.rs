//! Stores of each vector codec: what `get` returns, search recall against exact search
//! of the original vectors and distances against the stored vectors, flush, merge and
//! reopen, the codec fixed at creation, and a damaged vector block found by the read
//! that touches it (a rerank's, or an `int8` walk's).

use strata::{
    Db, Error, InvalidArgument, Metric, Options, Prefetch, SearchOptions, VectorCodec, WriteBatch,
};

use crate::common::{self, distance};

const DIM: usize = 24;
const ROWS: u64 = 3000;

/// Clustered vectors (so that neighbours are meaningful), components within [-3, 3].
fn vectors(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = common::rng(seed);
    let centres: Vec<Vec<f32>> = (0..30).map(|_| common::vector(&mut rng, DIM)).collect();
    (0..ROWS as usize)
        .map(|i| {
            let c = &centres[i % centres.len()];
            let noise = common::vector(&mut rng, DIM);
            c.iter()
                .zip(noise)
                .map(|(a, b)| 2.0 * a + 0.5 * b)
                .collect()
        })
        .collect()
}

fn options(codec: VectorCodec) -> Options {
    Options::new(DIM, Metric::L2)
        .vector_codec(codec)
        .memtable_bytes(256 * 1024)
        .index(strata_tests::workload::small_index(64, 64))
        .background_compaction(false)
}

/// How far `get` may be from what was written, per component.
fn tolerance(codec: VectorCodec, x: f32) -> f32 {
    match codec {
        VectorCodec::F32 => 0.0,
        VectorCodec::F16 => x.abs() / 1024.0,
        // Half a step of 256 levels over a range of at most 6 when flushed, and half a
        // step of the merged segment's grid more when a merge re-quantises.
        VectorCodec::Int8 => 6.0 / 255.0 + 1e-5,
        _ => unreachable!("a codec this test does not know"),
    }
}

fn recall(db: &Db, data: &[Vec<f32>], queries: &[Vec<f32>]) -> f64 {
    let k = 10;
    let mut found = 0;
    for q in queries {
        let mut exact: Vec<(f32, u64)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (distance(Metric::L2, q, v), i as u64))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: Vec<u64> = exact.iter().take(k).map(|e| e.1).collect();
        let hits = db.search(q, &SearchOptions::new(k)).expect("search");
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    found as f64 / (k * queries.len()) as f64
}

/// Writes `data` (row `i` under id `i`) in two batches, each flushed to a segment.
fn write_in_two_flushes(db: &Db, data: &[Vec<f32>]) {
    for half in [0..ROWS / 2, ROWS / 2..ROWS] {
        let mut b = WriteBatch::new();
        for id in half {
            b.upsert(id, &data[id as usize]);
        }
        db.write(b).unwrap();
        db.flush().unwrap();
    }
}

#[test]
fn each_codec_stores_searches_merges_and_reopens() {
    let data = vectors(11);
    let queries: Vec<Vec<f32>> = vectors(12).into_iter().take(50).collect();
    let mut vector_bytes = Vec::new();
    for codec in [VectorCodec::F32, VectorCodec::F16, VectorCodec::Int8] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), options(codec)).unwrap();
        assert_eq!(db.vector_codec(), codec);
        // Two segments, then one merged segment.
        write_in_two_flushes(&db, &data);
        let check = |db: &Db, stage: &str| {
            for id in (0..ROWS).step_by(97) {
                let got = db.get(id).unwrap().expect("record").vector;
                for (a, b) in data[id as usize].iter().zip(&got) {
                    assert!(
                        (a - b).abs() <= tolerance(codec, *a),
                        "{codec:?} {stage}: id {id}: {a} read back as {b}"
                    );
                }
            }
            // Requesting the rerank's pages ahead is a hint: the same answers.
            for q in queries.iter().take(10) {
                let answer = |prefetch| {
                    let o = SearchOptions {
                        prefetch,
                        ..SearchOptions::new(10)
                    };
                    let hits = db.search(q, &o).unwrap();
                    hits.iter().map(|h| (h.id, h.distance)).collect::<Vec<_>>()
                };
                let auto = answer(Prefetch::Auto);
                assert_eq!(auto.len(), 10);
                // Each hit's distance is the distance to its stored (decoded) vector,
                // whether the walk scored it on PQ codes and reranked it or scored it
                // on its `int8` codes directly.
                for &(id, d) in &auto {
                    let stored = db.get(id).unwrap().expect("a hit's record").vector;
                    let want = distance(Metric::L2, q, &stored);
                    assert!(
                        (d - want).abs() <= 1e-4 * (1.0 + want),
                        "{codec:?} {stage}: id {id} at {d}, stored vector at {want}"
                    );
                }
                assert_eq!(answer(Prefetch::Always), auto, "{codec:?} {stage}");
                assert_eq!(answer(Prefetch::Never), auto, "{codec:?} {stage}");
            }
            let r = recall(db, &data, &queries);
            println!("{codec:?} {stage}: recall@10 {r:.3}");
            assert!(r >= 0.9, "{codec:?} {stage}: recall@10 {r}");
        };
        check(&db, "two segments");
        db.compact(true, &|_, _, _| true).unwrap();
        let stats = db.stats().unwrap();
        assert_eq!(stats.segments.len(), 1);
        assert_eq!(stats.segments[0].vector_codec, codec.name());
        // An indexed segment's rows are in a spatial order; scans still
        // page through the ids in order, and lookups by id find them.
        assert_eq!(stats.segments[0].row_order, "spatial");
        let mut scanned = Vec::new();
        let mut after = None;
        loop {
            let page = db.scan(None, after, 700).unwrap();
            scanned.extend(page.records.iter().map(|r| r.id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(scanned, (0..ROWS).collect::<Vec<_>>());
        vector_bytes.push(stats.segments[0].vector_bytes);
        check(&db, "merged");
        db.close().unwrap();
        strata::verify(dir.path()).unwrap();
        let db = Db::open(dir.path(), Options::existing()).unwrap();
        assert_eq!(db.vector_codec(), codec);
        check(&db, "reopened");
        let ro = strata::ReadOnlyDb::open(dir.path()).unwrap();
        assert_eq!(ro.vector_codec(), codec);
    }
    let f32_bytes = ROWS * DIM as u64 * 4;
    assert_eq!(vector_bytes, vec![f32_bytes, f32_bytes / 2, f32_bytes / 4]);
}

#[test]
fn the_codec_is_fixed_when_the_store_is_created() {
    let dir = tempfile::tempdir().unwrap();
    Db::open(dir.path(), options(VectorCodec::Int8))
        .unwrap()
        .close()
        .unwrap();
    match Db::open(dir.path(), options(VectorCodec::F16)) {
        Err(Error::InvalidArgument(InvalidArgument::VectorCodecMismatch { stored, asked })) => {
            assert_eq!((stored, asked), ("int8", "f16"));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // Without a codec asked for, the store's is used.
    let db = Db::open(dir.path(), Options::new(DIM, Metric::L2)).unwrap();
    assert_eq!(db.vector_codec(), VectorCodec::Int8);
}

/// A flipped bit in a segment's stored vectors: the read of a row in that block (and a
/// search that reranks it) fails with corruption naming the segment; other rows read.
#[test]
fn a_damaged_vector_block_is_refused_by_the_read_that_touches_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = vectors(13);
    let db = Db::open(dir.path(), options(VectorCodec::F32)).unwrap();
    let mut b = WriteBatch::new();
    for (id, v) in data.iter().enumerate() {
        b.upsert(id as u64, v);
    }
    db.write(b).unwrap();
    db.close().unwrap();
    let victim = 1234usize;
    let pattern: Vec<u8> = data[victim].iter().flat_map(|x| x.to_le_bytes()).collect();
    let (seg, mut bytes, at) = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .find_map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let at = bytes.windows(pattern.len()).position(|w| w == pattern)?;
            Some((p, bytes, at))
        })
        .expect("a segment holding the vector");
    bytes[at + 5] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    let refused = |e: Error| matches!(e, Error::Corruption { ref path, .. } if *path == seg);
    let e = db.get(victim as u64).unwrap_err();
    assert!(refused(e));
    let e = db
        .search(&data[victim], &SearchOptions::new(5))
        .unwrap_err();
    assert!(refused(e));
    let e = db
        .search(&data[victim], &SearchOptions::exact(5))
        .unwrap_err();
    assert!(refused(e));
    // A row in another block still reads (24 × 4 bytes per row: 170 rows per block).
    assert_eq!(db.get(0).unwrap().unwrap().vector, data[0]);
    assert!(strata::verify(dir.path()).is_err());
}

/// An `int8` segment's walk scores nodes on their vectors' codes: a flipped bit there is
/// found by the search whose walk reaches it, named by segment, and by `get`.
#[test]
fn a_damaged_int8_row_is_refused_by_the_walk_that_scores_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = vectors(14);
    let db = Db::open(dir.path(), options(VectorCodec::Int8)).unwrap();
    let mut b = WriteBatch::new();
    for (id, v) in data.iter().enumerate() {
        b.upsert(id as u64, v);
    }
    db.write(b).unwrap();
    db.close().unwrap();
    let seg = segment_files(dir.path()).pop().expect("a segment");
    // Row 1234's codes, found in the file by their bytes (24 of them: unique here).
    let (victim, pattern) = {
        let reader = strata_format::SegmentReader::open(&strata_vfs::OsVfs, &seg).unwrap();
        let row = 1234usize;
        let codes = reader.int8_rows().expect("an int8 segment").codes;
        let pattern = codes[row * DIM..(row + 1) * DIM].to_vec();
        (reader.id_rows(row..row + 1).unwrap()[0], pattern)
    };
    let mut bytes = std::fs::read(&seg).unwrap();
    let hits: Vec<usize> = bytes
        .windows(DIM)
        .enumerate()
        .filter(|(_, w)| *w == &pattern[..])
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "the row's codes are not unique in the file");
    bytes[hits[0] + 3] ^= 0x04;
    std::fs::write(&seg, &bytes).unwrap();
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    let refused = |e: Error| matches!(e, Error::Corruption { ref path, .. } if *path == seg);
    let e = db
        .search(&data[victim as usize], &SearchOptions::new(5))
        .unwrap_err();
    assert!(refused(e));
    assert!(refused(db.get(victim).unwrap_err()));
}

/// Every segment file of the store in `dir`.
fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// A store whose segments keep their search front in process memory answers exactly as
/// it does from the map, through flushes, a merge and a reopen; a damaged graph block is
/// refused when the front is loaded (at open), naming the segment.
#[test]
fn a_resident_front_answers_as_the_mapped_one_and_is_checked_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let data = vectors(21);
    let queries: Vec<Vec<f32>> = vectors(22).into_iter().take(20).collect();
    let answers = |db: &Db| -> Vec<Vec<(u64, f32)>> {
        queries
            .iter()
            .map(|q| {
                let hits = db.search(q, &SearchOptions::new(10)).unwrap();
                hits.iter().map(|h| (h.id, h.distance)).collect()
            })
            .collect()
    };
    let db = Db::open(dir.path(), options(VectorCodec::F16).resident_front(true)).unwrap();
    write_in_two_flushes(&db, &data);
    let in_memory = |db: &Db| {
        let stats = db.stats().unwrap();
        assert!(stats.segments.iter().any(|s| s.indexed), "{stats:?}");
        for s in &stats.segments {
            assert_eq!(s.indexed, s.front_bytes > 0);
            assert!(s.front_in_memory >= s.front_bytes, "{s:?}");
        }
    };
    in_memory(&db);
    let flushed = answers(&db);
    db.close().unwrap();
    let mapped = Db::open(dir.path(), options(VectorCodec::F16)).unwrap();
    assert!(mapped
        .stats()
        .unwrap()
        .segments
        .iter()
        .all(|s| s.front_in_memory == 0));
    assert_eq!(answers(&mapped), flushed);
    mapped.close().unwrap();

    let db = Db::open(dir.path(), options(VectorCodec::F16).resident_front(true)).unwrap();
    in_memory(&db);
    assert_eq!(answers(&db), flushed);
    db.compact(true, &|_, _, _| true).unwrap();
    in_memory(&db);
    let merged = answers(&db);
    assert!(recall(&db, &data, &queries) >= 0.9);
    db.close().unwrap();
    let mapped = Db::open(dir.path(), options(VectorCodec::F16)).unwrap();
    assert_eq!(answers(&mapped), merged);
    mapped.close().unwrap();

    // One flipped bit in the middle of the level-0 graph.
    let [seg] = &segment_files(dir.path())[..] else {
        panic!("one merged segment expected");
    };
    let level0 = {
        let reader = strata_format::SegmentReader::open(&strata_vfs::OsVfs, seg).unwrap();
        reader.index().expect("an indexed segment").level0.to_vec()
    };
    let mut bytes = std::fs::read(seg).unwrap();
    let at = bytes
        .windows(64)
        .position(|w| w == &level0[..64])
        .expect("the graph in the file");
    bytes[at + level0.len() / 2] ^= 0x08;
    std::fs::write(seg, &bytes).unwrap();
    match Db::open(dir.path(), options(VectorCodec::F16).resident_front(true)) {
        Err(Error::Corruption { path, .. }) => assert_eq!(&path, seg),
        other => panic!("{:?}", other.map(|_| ())),
    }
    // Mapped, the store opens and the damage is found by the search that reads it.
    assert!(strata::verify(dir.path()).is_err());
}
