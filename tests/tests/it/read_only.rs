//! A read-only handle beside a writer: it needs no lock, sees flushed segments and the
//! log's tail, follows the writer on refresh, survives compactions removing files under
//! it, and never changes the store's files.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata::{Db, Error, Metric, ReadOnlyDb, SearchOptions, WriteBatch};

use crate::common;

/// Names and contents of every file in `dir`.
fn files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn sees_segments_and_log_tail_without_the_lock_and_follows_on_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), 4, Metric::L2);
    let mut rng = common::rng(7);
    let vectors: Vec<Vec<f32>> = (0..300).map(|_| common::vector(&mut rng, 4)).collect();
    for (i, v) in vectors.iter().enumerate().take(200) {
        db.upsert_with_payload(i as u64, v, format!("p{i}").as_bytes())
            .unwrap();
    }
    db.flush().unwrap();
    // A tail only in the log: upserts and a delete of a flushed row.
    for (i, v) in vectors.iter().enumerate().skip(200).take(50) {
        db.upsert(i as u64, v).unwrap();
    }
    db.delete(3).unwrap();
    // The writer holds its lock; the reader does not need it.
    assert!(matches!(
        Db::open(dir.path(), strata::Options::existing()),
        Err(Error::AlreadyOpen { .. })
    ));
    let ro = Db::open_read_only(dir.path()).unwrap();
    assert_eq!((ro.dim(), ro.metric()), (4, Metric::L2));
    assert_eq!(ro.len(), 249);
    assert!(!ro.contains(3) && ro.contains(249) && !ro.contains(250));
    assert_eq!(ro.get(5).unwrap(), db.get(5).unwrap());
    for q in vectors.iter().take(20) {
        let exact = SearchOptions::exact(10);
        assert_eq!(ro.search(q, &exact).unwrap(), db.search(q, &exact).unwrap());
    }
    // New writes are invisible until a refresh, which then reports a change once.
    for (i, v) in vectors.iter().enumerate().skip(250) {
        db.upsert(i as u64, v).unwrap();
    }
    assert_eq!(ro.len(), 249);
    assert!(ro.refresh().unwrap());
    assert!(!ro.refresh().unwrap(), "nothing changed since");
    assert_eq!(ro.len(), 299);
    // A full compaction replaces every segment (their files are removed once the
    // writer's snapshots let go); the reader's snapshot keeps working, and a refresh
    // moves it to the merged segment.
    db.flush().unwrap();
    let before = ro.search(&vectors[7], &SearchOptions::exact(5)).unwrap();
    db.compact(true, &|_, _, _| true).unwrap();
    assert_eq!(
        ro.search(&vectors[7], &SearchOptions::exact(5)).unwrap(),
        before
    );
    assert!(ro.refresh().unwrap());
    assert_eq!(ro.stats().unwrap().segments.len(), 1);
    assert_eq!(
        ro.search(&vectors[7], &SearchOptions::exact(5)).unwrap(),
        before
    );
    let many = ro
        .search_many(&[&vectors[1], &vectors[2]], &SearchOptions::new(1))
        .unwrap();
    assert_eq!((many[0][0].id, many[1][0].id), (1, 2));
    drop(db);
}

#[test]
fn opening_and_refreshing_change_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), 3, Metric::Cosine);
    for i in 0..100u64 {
        db.upsert(i, &[1.0, i as f32, 2.0]).unwrap();
    }
    drop(db); // a crash: a log tail, maybe a torn one, and no close
    let before = files(dir.path());
    let ro = ReadOnlyDb::open(dir.path()).unwrap();
    assert_eq!(ro.len(), 100);
    ro.refresh().unwrap();
    let hits = ro.search(&[1.0, 5.0, 2.0], &SearchOptions::new(1)).unwrap();
    assert_eq!(hits[0].id, 5);
    assert_eq!(files(dir.path()), before, "the reader changed the store");
    let missing = dir.path().join("none");
    assert!(matches!(
        ReadOnlyDb::open(&missing),
        Err(Error::NotFound { .. })
    ));
    assert!(!missing.exists());
}

#[test]
fn refreshes_racing_flushes_and_compactions_always_see_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(common::open(dir.path(), 8, Metric::L2));
    db.upsert(0, &[0.0; 8]).unwrap();
    let ro = ReadOnlyDb::open(dir.path()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            // Ids go in in order, batch by batch, with flushes and merges in between.
            let mut next = 1u64;
            for round in 0..60 {
                let mut b = WriteBatch::new();
                for _ in 0..25 {
                    b.upsert(next, &[next as f32; 8]);
                    next += 1;
                }
                db.write(b).unwrap();
                if round % 7 == 0 {
                    db.flush().unwrap();
                }
                if round % 20 == 19 {
                    db.compact(true, &|_, _, _| true).unwrap();
                }
            }
            done.store(true, Ordering::Release);
            next
        })
    };
    let mut refreshes = 0;
    let mut last = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        if ro.refresh().unwrap() {
            refreshes += 1;
        }
        // Whatever the snapshot, it holds ids 0..n for some n that never shrinks.
        let n = ro.len();
        assert!(n >= last, "went back from {last} to {n}");
        for id in [0, n / 2, n.saturating_sub(1)] {
            assert!(ro.contains(id), "id {id} missing from a snapshot of {n}");
        }
        assert!(!ro.contains(n), "id {n} beyond a prefix of {n}");
        last = n;
        if finished {
            break;
        }
    }
    let next = writer.join().unwrap();
    ro.refresh().unwrap();
    assert_eq!(ro.len(), next);
    assert!(
        refreshes > 1,
        "the reader followed the writer ({refreshes} refreshes)"
    );
}
