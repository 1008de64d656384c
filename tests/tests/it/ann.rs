//! Indexed segments: two-stage search finds the true neighbours, never returns deleted
//! rows, returns k results whenever k live rows exist, and survives reopen without a
//! rebuild.

use std::collections::HashSet;

use rand::Rng;
use strata::{Db, HnswParams, IndexOptions, Metric, Options, SearchOptions, WalkCodes, WriteBatch};

use crate::common::{self, vector};

fn clustered(rng: &mut impl Rng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..30).map(|_| vector(rng, dim)).collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            c.iter().map(|x| x + rng.random_range(-0.2..0.2)).collect()
        })
        .collect()
}

fn recall(db: &Db, queries: &[Vec<f32>], opts: &SearchOptions) -> f64 {
    let mut found = 0;
    let mut want = 0;
    for q in queries {
        let truth: HashSet<u64> = db
            .search(q, &SearchOptions::exact(opts.k))
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        want += truth.len();
        found += db
            .search(q, opts)
            .unwrap()
            .iter()
            .filter(|h| truth.contains(&h.id))
            .count();
    }
    found as f64 / want.max(1) as f64
}

/// A store of `n` clustered rows in one indexed segment, walked on `walk` codes (then
/// reranked) as a large segment is, or, with `None`, on its `f32` rows as a segment
/// this small is by default.
fn indexed_store_walked(
    dir: &std::path::Path,
    metric: Metric,
    n: usize,
    dim: usize,
    walk: Option<WalkCodes>,
) -> (Db, Vec<Vec<f32>>) {
    let mut rng = common::rng(17);
    let data = clustered(&mut rng, n, dim);
    let opts = Options::new(dim, metric)
        .memtable_bytes(64 << 20)
        .index(IndexOptions {
            min_rows: Some(1000),
            pq_from_bytes: if walk.is_none() { usize::MAX } else { 0 },
            walk_codes: walk.unwrap_or_default(),
            ..IndexOptions::default()
        });
    let db = Db::open(dir, opts).unwrap();
    for (start, chunk) in (0u64..).step_by(1000).zip(data.chunks(1000)) {
        let mut b = WriteBatch::new();
        for (i, v) in chunk.iter().enumerate() {
            b.upsert(start + i as u64, v);
        }
        db.write(b).unwrap();
    }
    db.flush().unwrap();
    (db, data)
}

/// [`indexed_store_walked`] on PQ codes.
fn indexed_store(
    dir: &std::path::Path,
    metric: Metric,
    n: usize,
    dim: usize,
) -> (Db, Vec<Vec<f32>>) {
    indexed_store_walked(dir, metric, n, dim, Some(WalkCodes::Pq))
}

#[test]
fn two_stage_and_row_walks_find_the_true_neighbours_for_every_metric() {
    let walks = [None, Some(WalkCodes::Pq), Some(WalkCodes::Scalar)];
    for (metric, walk) in [Metric::L2, Metric::InnerProduct, Metric::Cosine]
        .into_iter()
        .flat_map(|m| walks.map(|w| (m, w)))
    {
        let dir = tempfile::tempdir().unwrap();
        let (db, data) = indexed_store_walked(dir.path(), metric, 5000, 24, walk);
        let s = db.stats().unwrap();
        assert_eq!(
            (s.segments.len(), s.indexed_segments),
            (1, 1),
            "{metric:?}: one indexed segment"
        );
        let pq_bytes = s.segments[0].index.as_ref().map(|ix| ix.pq_bytes);
        let want_bytes = match walk {
            None => 0,
            Some(WalkCodes::Scalar) => 24,
            _ => 12,
        };
        assert_eq!(pq_bytes, Some(want_bytes), "{metric:?}, {walk:?}");
        let walks_on = s.segments[0].index.as_ref().map(|ix| ix.walk_codes);
        let want_walk = match walk {
            None => "rows",
            Some(WalkCodes::Scalar) => "scalar",
            _ => "pq",
        };
        assert_eq!(walks_on, Some(want_walk), "{metric:?}");
        // Queries from the data's distribution: stored rows moved by noise of the
        // clusters' own spread (uniform queries far from every cluster make inner product
        // an extreme-norm lookup that says little about the index).
        let mut rng = common::rng(3);
        let queries: Vec<Vec<f32>> = (0..100)
            .map(|i| {
                data[(i * 37) % data.len()]
                    .iter()
                    .map(|x| x + rng.random_range(-0.2..0.2))
                    .collect()
            })
            .collect();
        let r = recall(&db, &queries, &SearchOptions::new(10));
        println!("{metric:?}, walk {walk:?}: recall@10 at default settings {r:.3}");
        for (ef, rr) in [(100, 10), (200, 100), (400, 100), (100, 400)] {
            let x = recall(
                &db,
                &queries,
                &SearchOptions {
                    ef: Some(ef),
                    rerank: Some(rr),
                    ..SearchOptions::new(10)
                },
            );
            println!("  ef {ef} rerank {rr}: {x:.3}");
        }
        assert!(r >= 0.95, "{metric:?}, walk {walk:?}: recall {r}");
        let low = recall(
            &db,
            &queries,
            &SearchOptions {
                ef: Some(10),
                rerank: Some(10),
                ..SearchOptions::new(10)
            },
        );
        assert!(
            low <= r + 1e-9,
            "a smaller beam cannot find more: {low} vs {r}"
        );
    }
}

#[test]
fn deleted_rows_are_never_returned_and_k_results_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = indexed_store(dir.path(), Metric::L2, 4000, 16);
    let mut rng = common::rng(5);
    let mut deleted = HashSet::new();
    let mut b = WriteBatch::new();
    while deleted.len() < 3600 {
        let id = rng.random_range(0..4000u64);
        if deleted.insert(id) {
            b.delete(id);
        }
    }
    db.write(b).unwrap();
    for _ in 0..50 {
        let q = vector(&mut rng, 16);
        let hits = db.search(&q, &SearchOptions::new(10)).unwrap();
        assert_eq!(hits.len(), 10, "k live rows exist, so k come back");
        assert!(
            hits.iter().all(|h| !deleted.contains(&h.id)),
            "a deleted row came back"
        );
    }
    // With fewer live rows than k, all of them.
    let mut b = WriteBatch::new();
    (0..4000u64)
        .filter(|id| !deleted.contains(id))
        .skip(3)
        .for_each(|id| {
            b.delete(id);
        });
    db.write(b).unwrap();
    assert_eq!(
        db.search(&vector(&mut rng, 16), &SearchOptions::new(10))
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn the_index_is_opened_not_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (db, data) = indexed_store(dir.path(), Metric::Cosine, 3000, 12);
    let q = &data[42];
    let before = db.search(q, &SearchOptions::new(5)).unwrap();
    db.close().unwrap();
    let t = std::time::Instant::now();
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    let open_time = t.elapsed();
    let s = db.stats().unwrap();
    assert_eq!(s.indexed_segments, 1);
    let ix = s.segments[0].index.clone().unwrap();
    assert_eq!(
        (ix.pq_bytes, ix.hnsw_m, ix.ef_construction, ix.built_by),
        (6, 16, 200, "cpu".to_string())
    );
    assert_eq!(db.search(q, &SearchOptions::new(5)).unwrap(), before);
    println!("reopened an indexed segment of 3000 rows in {open_time:?}");
    drop(db);
    strata::verify(dir.path()).unwrap();
}

#[test]
fn memtable_graph_search_finds_the_true_neighbours_while_rows_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = common::rng(23);
    let dim = 16;
    let data = clustered(&mut rng, 6000, dim);
    let db = Db::open(
        dir.path(),
        Options::new(dim, Metric::L2).memtable_bytes(256 << 20),
    )
    .unwrap();
    let queries: Vec<Vec<f32>> = (0..50).map(|_| vector(&mut rng, dim)).collect();
    for (start, chunk) in (0u64..).step_by(500).zip(data.chunks(500)) {
        let mut b = WriteBatch::new();
        for (i, v) in chunk.iter().enumerate() {
            b.upsert(start + i as u64, v);
        }
        db.write(b).unwrap();
        // Searches while the indexer links rows: every hit is a written row with its
        // true distance, k of them.
        for q in queries.iter().take(3) {
            let hits = db.search(q, &SearchOptions::new(10)).unwrap();
            assert_eq!(hits.len(), 10);
            for h in &hits {
                let d = common::distance(Metric::L2, q, &data[h.id as usize]);
                assert!((h.distance - d).abs() <= 1e-3 * (1.0 + d));
            }
        }
    }
    // Wait (bounded) for the background indexer to link every row.
    for _ in 0..6000 {
        if db.stats().unwrap().memtable_linked_rows == 6000 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let s = db.stats().unwrap();
    assert_eq!(
        (s.segments.len(), s.memtable_linked_rows),
        (0, 6000),
        "all rows linked, none flushed"
    );
    let r = recall(&db, &queries, &SearchOptions::new(10));
    println!("memtable graph: recall@10 {r:.3}");
    assert!(r >= 0.95, "memtable graph recall {r}");
    // Deleted memtable rows guide the walk but never come back.
    let mut b = WriteBatch::new();
    (0..6000u64).filter(|i| i % 2 == 0).for_each(|i| {
        b.delete(i);
    });
    db.write(b).unwrap();
    for q in &queries {
        let hits = db.search(q, &SearchOptions::new(10)).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| h.id % 2 == 1));
    }
}

#[test]
fn extreme_settings_neither_panic_nor_poison_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = common::rng(29);
    let opts = Options::new(8, Metric::L2).index(IndexOptions {
        min_rows: Some(100),
        hnsw: HnswParams {
            m: 600, // clamped to the format's limit
            ef_construction: usize::MAX,
            ..HnswParams::default()
        },
        ..IndexOptions::default()
    });
    let db = Db::open(dir.path(), opts).unwrap();
    let mut b = WriteBatch::new();
    for i in 0..300u64 {
        // Components rounded to a coarse grid: duplicates must not starve the graph.
        b.upsert(
            i,
            &vector(&mut rng, 8)
                .iter()
                .map(|x| (x * 4.0).round())
                .collect::<Vec<_>>(),
        );
    }
    db.write(b).unwrap();
    db.flush().unwrap();
    assert_eq!(db.stats().unwrap().indexed_segments, 1);
    let q = vector(&mut rng, 8);
    let huge = SearchOptions {
        ef: Some(usize::MAX),
        rerank: Some(usize::MAX),
        ..SearchOptions::new(10)
    };
    let hits = db.search(&q, &huge).unwrap();
    let exact = db.search(&q, &SearchOptions::exact(10)).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.distance).collect::<Vec<_>>(),
        exact.iter().map(|h| h.distance).collect::<Vec<_>>(),
        "a beam as wide as the segment is exact"
    );
}
