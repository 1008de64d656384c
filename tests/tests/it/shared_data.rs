//! End-to-end on real data: SIFT10K from `../shared/data` through a store with segments
//! and a memtable; exact search must reproduce the published ground truth.

use std::path::Path;

use strata::{Db, Metric, Options, SearchOptions, WriteBatch};
use strata_tests::external;

fn read_vecs(path: &Path, int: bool) -> Vec<Vec<f32>> {
    let b = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let d = i32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        let row = b[at..at + 4 * d]
            .chunks_exact(4)
            .map(|c| {
                let a = [c[0], c[1], c[2], c[3]];
                if int {
                    i32::from_le_bytes(a) as f32
                } else {
                    f32::from_le_bytes(a)
                }
            })
            .collect();
        out.push(row);
        at += 4 * d;
    }
    out
}

/// Rows of a TEXMEX file.
type Rows = Vec<Vec<f32>>;

/// SIFT10K base, queries and ground truth, when the shared data is present; otherwise
/// `test` is skipped visibly (or fails under `STRATA_REQUIRE_DATA=1`).
fn sift(test: &str) -> Option<(Rows, Rows, Rows)> {
    let Some(d) = external::shared_data("siftsmall", "siftsmall_base.fvecs") else {
        external::skip(
            test,
            "../shared/data/siftsmall is not present beside this repository",
        );
        return None;
    };
    Some((
        read_vecs(&d.join("siftsmall_base.fvecs"), false),
        read_vecs(&d.join("siftsmall_query.fvecs"), false),
        read_vecs(&d.join("siftsmall_groundtruth.ivecs"), true),
    ))
}

/// Recall@10 of the store's default search against the published ground truth.
fn recall_at_10(db: &Db, queries: &[Vec<f32>], gt: &[Vec<f32>]) -> f64 {
    let mut found = 0;
    for (q, g) in queries.iter().zip(gt) {
        let hits = db.search(q, &SearchOptions::new(10)).unwrap();
        let truth: Vec<u64> = g[..10].iter().map(|&x| x as u64).collect();
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    found as f64 / (queries.len() * 10) as f64
}

#[test]
fn sift10k_exact_search_matches_ground_truth() {
    let Some((base, queries, gt)) = sift("sift10k_exact_search_matches_ground_truth") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // ~1.5 MiB memtables: several segments plus rows still in the memtable.
    let db = Db::open(
        dir.path(),
        Options::new(128, Metric::L2).memtable_bytes(1_500_000),
    )
    .unwrap();
    for (start, chunk) in (0u64..).step_by(500).zip(base.chunks(500)) {
        let mut b = WriteBatch::new();
        for (i, v) in chunk.iter().enumerate() {
            b.upsert(start + i as u64, v);
        }
        db.write(b).unwrap();
    }
    let s = db.stats().unwrap();
    assert!(
        s.segments.len() >= 2 && s.memtable_rows > 0,
        "segments {} memtable {}",
        s.segments.len(),
        s.memtable_rows
    );
    let recall = recall_at_10(&db, &queries, &gt);
    println!("SIFT10K exact recall@10 = {recall:.4}");
    assert!(
        recall >= 0.999,
        "exact search must match the ground truth: {recall}"
    );
}

#[test]
fn sift10k_default_search_of_an_indexed_segment_reaches_095_recall() {
    let Some((base, queries, gt)) =
        sift("sift10k_default_search_of_an_indexed_segment_reaches_095_recall")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(128, Metric::L2)).unwrap();
    let mut b = WriteBatch::new();
    for (i, v) in base.iter().enumerate() {
        b.upsert(i as u64, v);
    }
    db.write(b).unwrap();
    db.flush().unwrap();
    assert_eq!(
        db.stats().unwrap().indexed_segments,
        1,
        "10,000 rows of 128-d get an index by default"
    );
    let recall = recall_at_10(&db, &queries, &gt);
    println!("SIFT10K default two-stage recall@10 = {recall:.4}");
    assert!(recall >= 0.95, "default settings must reach 0.95: {recall}");
}
