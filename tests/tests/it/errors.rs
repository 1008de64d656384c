//! Bad input gives typed errors and changes nothing.

use strata::{Db, Durability, Error, InvalidArgument, Metric, Options, SearchOptions, WriteBatch};

#[test]
fn wrong_dimension_is_invalid_argument_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(4, Metric::L2)).unwrap();
    db.upsert(1, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let before = db.stats().unwrap();
    let e = db.upsert(2, &[1.0, 2.0, 3.0]).unwrap_err();
    assert!(
        matches!(
            reason(&e),
            Some(InvalidArgument::DimensionMismatch {
                expected: 4,
                got: 3
            })
        ),
        "{e}"
    );
    // A batch with one bad vector is refused whole, naming the operation and its id.
    let mut b = WriteBatch::new();
    b.upsert(3, &[0.0; 4]).delete(1).upsert(4, &[0.0; 5]);
    let e = db.write(b).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::InvalidArgument(InvalidArgument::InBatch {
                index: 2,
                id: 4,
                ..
            })
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "invalid argument: batch row 2 (id 4): vector has dimension 5, the store has 4"
    );
    assert!(matches!(
        db.search(&[0.0; 2], &SearchOptions::new(1)),
        Err(Error::InvalidArgument(_))
    ));
    let after = db.stats().unwrap();
    assert_eq!(before.live_rows, after.live_rows);
    assert_eq!(before.last_seq, after.last_seq);
    assert!(db.get(1).unwrap().is_some() && db.get(3).unwrap().is_none());
    drop(db);
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.stats().unwrap().live_rows, 1);
}

#[test]
fn non_finite_zero_and_oversized_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(2, Metric::Cosine)).unwrap();
    let e = db.upsert(1, &[f32::NAN, 1.0]).unwrap_err();
    assert!(matches!(
        reason(&e),
        Some(InvalidArgument::NonFinite { index: 0 })
    ));
    let e = db.upsert(1, &[0.0, 0.0]).unwrap_err();
    assert!(matches!(reason(&e), Some(InvalidArgument::ZeroVector)));
    let big = vec![0u8; 70_000];
    let e = db.upsert_with_payload(1, &[1.0, 0.0], &big).unwrap_err();
    assert!(matches!(
        reason(&e),
        Some(InvalidArgument::PayloadTooLarge { .. })
    ));
    assert_eq!(db.stats().unwrap().live_rows, 0);
}

#[test]
fn missing_store_and_schema_mismatch_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(
        Db::open(&missing, Options::existing()),
        Err(Error::NotFound { .. })
    ));
    assert!(
        !missing.exists(),
        "opening a missing store must not create it"
    );
    Db::open(dir.path(), Options::new(3, Metric::L2))
        .unwrap()
        .close()
        .unwrap();
    let e = Db::open(dir.path(), Options::new(4, Metric::L2))
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            Error::InvalidArgument(InvalidArgument::SchemaMismatch { .. })
        ),
        "{e}"
    );
    assert!(matches!(
        Db::open(dir.path().join("x"), Options::new(0, Metric::L2)),
        Err(Error::InvalidArgument(InvalidArgument::Dimension(0)))
    ));
}

#[test]
fn search_returns_k_nearest_sorted_and_handles_k_zero_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(1, Metric::L2)).unwrap();
    assert!(db
        .search(&[0.0], &SearchOptions::new(3))
        .unwrap()
        .is_empty());
    for i in 0..10 {
        db.upsert(i, &[i as f32]).unwrap();
    }
    let hits = db.search(&[4.2], &SearchOptions::new(3)).unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![4, 5, 3]);
    assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
    assert!(db
        .search(&[4.2], &SearchOptions::new(0))
        .unwrap()
        .is_empty());
    assert_eq!(
        db.search(&[4.2], &SearchOptions::new(50)).unwrap().len(),
        10
    );
}

#[test]
fn async_facade_writes_searches_and_reads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = strata::AsyncDb::open(dir.path(), Options::new(2, Metric::L2))
            .await
            .unwrap();
        db.upsert(1, vec![1.0, 0.0]).await.unwrap();
        let mut b = WriteBatch::new();
        b.upsert(2, &[0.0, 1.0]).upsert(3, &[0.9, 0.1]);
        db.write(b).await.unwrap();
        db.delete(1).await.unwrap();
        db.flush().await.unwrap();
        let hits = db
            .search(vec![1.0, 0.0], SearchOptions::new(2))
            .await
            .unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![3, 2]);
        assert!(db.get(1).await.unwrap().is_none());
        let err = db.upsert(4, vec![1.0]).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        db.upsert_with_payload(5, vec![0.5, 0.5], b"five".to_vec())
            .await
            .unwrap();
        assert_eq!(db.len().await.unwrap(), 3);
        let many = db
            .search_many(vec![vec![0.5, 0.5], vec![0.0, 1.0]], SearchOptions::new(1))
            .await
            .unwrap();
        assert_eq!(many.iter().map(|h| h[0].id).collect::<Vec<_>>(), vec![5, 2]);
        assert!(db.compact(true).await.unwrap().len() <= 1);
        let mut b = WriteBatch::new();
        b.upsert_text(6, &[0.1, 0.9], "asynchronous text", None, None);
        db.write(b).await.unwrap();
        let hits = db
            .text_search("text".into(), SearchOptions::new(3))
            .await
            .unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![6]);
        let fused = db
            .hybrid_search(
                vec![0.0, 1.0],
                "text".into(),
                SearchOptions::new(2),
                strata::Fusion::rrf(),
            )
            .await
            .unwrap();
        assert_eq!(fused[0].id, 6, "first in both rankings");
        db.delete(6).await.unwrap();
        let all = strata::Filter::All;
        assert_eq!(db.count(Some(all.clone())).await.unwrap(), 3);
        let page = db.scan(None, None, 2).await.unwrap();
        assert_eq!((page.records.len(), page.next), (2, Some(3)));
        assert_eq!(
            db.get_many(vec![5, 1]).await.unwrap()[0]
                .as_ref()
                .unwrap()
                .id,
            5
        );
        assert_eq!(
            db.delete_by_filter(strata::Filter::eq("x", 1i64))
                .await
                .unwrap(),
            0
        );
        assert_eq!(db.stats().await.unwrap().live_rows, 3);
        // A clean close while another clone exists: the clone's writes are refused, and
        // once it is dropped the store reopens with everything.
        let other = db.clone();
        db.close().await.unwrap();
        assert!(matches!(
            other.upsert(6, vec![1.0, 1.0]).await,
            Err(Error::Closed)
        ));
        drop(other);
        let db = Db::open(dir.path(), Options::existing()).unwrap();
        assert_eq!(db.len(), 3);
        assert_eq!(db.get(5).unwrap().unwrap().payload.unwrap(), b"five");
    });
}

#[test]
fn search_many_len_contains_and_payloads_on_hits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(2, Metric::L2)).unwrap();
    assert!(db.is_empty());
    for i in 0..50u64 {
        db.upsert_with_payload(i, &[i as f32, 0.0], format!("p{i}").as_bytes())
            .unwrap();
    }
    db.flush().unwrap();
    db.upsert(50, &[50.0, 0.0]).unwrap(); // in the memtable, no payload
    db.delete(7).unwrap();
    assert_eq!(db.len(), 50);
    assert!(db.contains(6) && !db.contains(7) && db.contains(50) && !db.contains(99));
    let qs: Vec<Vec<f32>> = (0..51).map(|i| vec![i as f32 + 0.1, 0.0]).collect();
    let refs: Vec<&[f32]> = qs.iter().map(Vec::as_slice).collect();
    let opts = SearchOptions {
        with_payload: true,
        ..SearchOptions::new(1)
    };
    let many = db.search_many(&refs, &opts).unwrap();
    for (i, hits) in many.iter().enumerate() {
        // Each answer is the one search gives for that query alone.
        assert_eq!(hits, &db.search(&qs[i], &opts).unwrap(), "query {i}");
    }
    assert_eq!(many[6][0].payload.as_deref(), Some(&b"p6"[..]));
    assert_eq!(many[7][0].id, 8, "the deleted row is not found");
    assert_eq!(many[50][0].id, 50);
    assert_eq!(many[50][0].payload, None);
    let plain = db.search(&qs[6], &SearchOptions::new(1)).unwrap();
    assert_eq!(plain[0].payload, None, "payloads only on request");
    let bad: Vec<&[f32]> = vec![&[0.0, 0.0], &[1.0]];
    assert!(matches!(
        db.search_many(&bad, &opts),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_batch_over_the_log_limit_is_refused_without_stopping_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 65_536;
    let db = Db::open(dir.path(), Options::new(dim, Metric::L2)).unwrap();
    // 1,024 upserts of 256 KiB vectors: just over the 256 MiB a log record may hold
    // once the per-operation framing is counted.
    let v = vec![0.5f32; dim];
    let mut b = WriteBatch::new();
    for id in 0..1024 {
        b.upsert(id, &v);
    }
    let e = db.write(b).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidArgument(InvalidArgument::BatchTooLarge { .. })
        ),
        "{e}"
    );
    // Refused before anything was logged: the store still takes writes.
    db.upsert(1, &v).unwrap();
    assert!(db.background_error().is_none());
    assert_eq!(db.stats().unwrap().live_rows, 1);
}

#[test]
fn a_failed_flush_stops_the_store_and_names_its_cause() {
    use std::sync::Arc;
    use strata::vfs::{Action, FaultVfs, Op, OsVfs};
    let dir = tempfile::tempdir().unwrap();
    // Every segment file the flush tries to create fails with ENOSPC.
    let fs = FaultVfs::new(Arc::new(OsVfs), |_: u64, op: Op, p: &std::path::Path, _| {
        if op == Op::Create && p.extension().is_some_and(|e| e == "seg") {
            Action::Fail(std::io::Error::from_raw_os_error(28))
        } else {
            Action::Proceed
        }
    });
    let (db, e) = failing_flush(dir.path(), fs);
    let Error::Poisoned { cause: Some(cause) } = &e else {
        panic!("expected Poisoned with a cause, got {e:?}");
    };
    assert!(matches!(**cause, Error::Io { .. }), "{cause:?}");
    let source = std::error::Error::source(&e).expect("the cause is the source");
    assert_eq!(source.to_string(), cause.to_string());
    let stats = db.stats().unwrap();
    let text = stats
        .last_background_error
        .expect("the flush failure is reported");
    assert!(text.contains(".seg"), "{text}");
    assert!(matches!(
        db.upsert(2, &[0.0, 1.0]),
        Err(Error::Poisoned { cause: Some(_) })
    ));
    // What was acknowledged survives the reopen.
    drop(db);
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.get(1).unwrap().unwrap().vector, vec![1.0, 2.0]);
}

/// Waits (up to a minute) until the store reports a background failure.
fn wait_for_background_error(db: &Db) -> String {
    for _ in 0..600 {
        if let Some(e) = db.stats().unwrap().last_background_error {
            return e;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no background failure was reported");
}

#[test]
fn a_panicking_flush_stops_the_store_with_an_internal_error() {
    use std::sync::Arc;
    use strata::vfs::{Action, FaultVfs, Op, OsVfs};
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultVfs::new(Arc::new(OsVfs), |_: u64, op: Op, p: &std::path::Path, _| {
        if op == Op::Create && p.extension().is_some_and(|e| e == "seg") {
            panic!("injected panic while creating a segment");
        }
        Action::Proceed
    });
    let (db, e) = failing_flush(dir.path(), fs);
    let Error::Poisoned { cause: Some(cause) } = &e else {
        panic!("expected Poisoned with a cause, got {e:?}");
    };
    assert!(
        matches!(&**cause, Error::Internal(m) if m.contains("injected panic")),
        "{cause:?}"
    );
    assert!(wait_for_background_error(&db).contains("flush panicked"));
}

#[test]
fn a_failed_background_compaction_is_reported_and_the_store_goes_on() {
    use std::sync::Arc;
    use strata::vfs::{Action, FaultVfs, Op, OsVfs};
    let dir = tempfile::tempdir().unwrap();
    // Segment files created by merges (on the compaction threads) fail with ENOSPC;
    // flushes succeed.
    let fs = FaultVfs::new(Arc::new(OsVfs), |_: u64, op: Op, p: &std::path::Path, _| {
        let merging = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("strata-merge") || n.starts_with("strata-compact"));
        if merging && op == Op::Create && p.extension().is_some_and(|e| e == "seg") {
            Action::Fail(std::io::Error::from_raw_os_error(28))
        } else {
            Action::Proceed
        }
    });
    let db = Db::open(dir.path(), Options::new(2, Metric::L2).vfs(Arc::new(fs))).unwrap();
    // Eight small segments: more than a size tier holds, so the policy merges.
    for i in 0..8u64 {
        db.upsert(i, &[i as f32, 1.0]).unwrap();
        db.flush().unwrap();
    }
    let text = wait_for_background_error(&db);
    assert!(text.contains(".seg"), "{text}");
    assert!(db.stats().unwrap().compactions.failed >= 1);
    // A failed merge leaves the store as it was: writes and reads go on.
    db.upsert(100, &[0.5, 0.5]).unwrap();
    for i in 0..8u64 {
        assert_eq!(db.get(i).unwrap().unwrap().vector, vec![i as f32, 1.0]);
    }
    assert!(matches!(&*db.background_error().unwrap(), Error::Io { .. }));
}

#[test]
fn a_failed_periodic_sync_stops_the_store_and_names_its_cause() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use strata::vfs::{Action, FaultVfs, Op, OsVfs};
    let dir = tempfile::tempdir().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let armed2 = armed.clone();
    // Once armed, every fsync of a WAL file fails with EIO.
    let fs = FaultVfs::new(
        Arc::new(OsVfs),
        move |_: u64, op: Op, p: &std::path::Path, _| {
            let wal = p.extension().is_some_and(|e| e == "wal");
            if armed2.load(Ordering::Acquire) && wal && op == Op::FileSync {
                Action::Fail(std::io::Error::from_raw_os_error(5))
            } else {
                Action::Proceed
            }
        },
    );
    let db = Db::open(
        dir.path(),
        Options::new(2, Metric::L2)
            .durability(Durability::Periodic(std::time::Duration::from_millis(5)))
            .vfs(Arc::new(fs)),
    )
    .unwrap();
    db.upsert(1, &[1.0, 2.0]).unwrap();
    armed.store(true, Ordering::Release);
    db.upsert(2, &[2.0, 1.0]).unwrap();
    let text = wait_for_background_error(&db);
    assert!(text.contains(".wal"), "{text}");
    let e = db.upsert(3, &[3.0, 3.0]).unwrap_err();
    let source = std::error::Error::source(&e).expect("the failed sync is the source");
    assert!(source.to_string().contains(".wal"), "{e:?}");
}

/// Opens a 2-d store over `fs`, writes one row and flushes: returns the store and the
/// flush's error (which the test expects).
fn failing_flush(dir: &std::path::Path, fs: strata::vfs::FaultVfs) -> (Db, Error) {
    let db = Db::open(
        dir,
        Options::new(2, Metric::L2).vfs(std::sync::Arc::new(fs)),
    )
    .unwrap();
    db.upsert(1, &[1.0, 2.0]).unwrap();
    let e = db.flush().unwrap_err();
    (db, e)
}

/// The reason of an invalid-argument error, looking inside a batch's refusal.
fn reason(e: &Error) -> Option<&InvalidArgument> {
    match e {
        Error::InvalidArgument(a) => Some(a.reason()),
        _ => None,
    }
}

#[test]
fn vectors_whose_distances_could_overflow_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(3, Metric::L2)).unwrap();
    // Every component finite, but the squared distance between these two would be
    // about 3.6e77: infinity in f32.
    let e = db.upsert(1, &[3e38, 0.0, 0.0]).unwrap_err();
    assert!(
        matches!(reason(&e), Some(InvalidArgument::NormTooLarge { .. })),
        "{e}"
    );
    let e = db
        .search(&[0.0, -3e38, 0.0], &SearchOptions::new(1))
        .unwrap_err();
    assert!(matches!(
        reason(&e),
        Some(InvalidArgument::NormTooLarge { .. })
    ));
    // At the bound, the farthest pair's distance is still finite, exactly and via graph.
    let edge = (strata::MAX_VECTOR_NORM * 0.999) as f32;
    db.upsert(1, &[edge, 0.0, 0.0]).unwrap();
    db.upsert(2, &[0.0, 0.0, 0.0]).unwrap();
    db.upsert(3, &[1.0, 1.0, 1.0]).unwrap();
    db.flush().unwrap();
    for opts in [SearchOptions::new(3), SearchOptions::exact(3)] {
        let hits = db.search(&[-edge, 0.0, 0.0], &opts).unwrap();
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|h| h.distance.is_finite()), "{hits:?}");
    }
}

#[test]
fn messages_do_not_repeat_their_source() {
    use std::error::Error as _;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(2, Metric::L2)).unwrap();
    let bad = db.upsert(1, &[f32::NAN, 0.0]).unwrap_err();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    // A store under a regular file: the OS refuses to create the directory.
    let io = Db::open(file.join("store"), Options::new(2, Metric::L2))
        .err()
        .unwrap();
    assert!(matches!(io, Error::Io { .. }), "{io}");
    for e in [&bad, &io] {
        let mut err: &dyn std::error::Error = e;
        while let Some(src) = err.source() {
            assert!(
                !err.to_string().contains(&src.to_string()),
                "{err} repeats its source {src}"
            );
            err = src;
        }
    }
    assert_eq!(
        bad.to_string(),
        "invalid argument: batch row 0 (id 1): vector component 0 is not finite"
    );
    assert!(io.source().is_some(), "the OS error is the source");
}

#[test]
fn creating_a_store_refuses_a_directory_with_other_files_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    std::fs::write(dir.path().join("000001.wal"), b"also mine").unwrap();
    let e = Db::open(dir.path(), Options::new(2, Metric::L2))
        .err()
        .unwrap();
    assert!(matches!(e, Error::NotAStore { .. }), "{e}");
    assert_eq!(
        std::fs::read(dir.path().join("000001.wal")).unwrap(),
        b"also mine"
    );
    assert!(dir.path().join("notes.txt").exists());
    assert!(!dir.path().join("MANIFEST").exists());
    assert!(
        !dir.path().join("LOCK").exists(),
        "nothing was added either"
    );
    // What an interrupted create leaves (the lock file) does not stop a new create.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::write(fresh.path().join("LOCK"), b"").unwrap();
    Db::open(fresh.path(), Options::new(2, Metric::L2))
        .unwrap()
        .close()
        .unwrap();
    // An existing store opens as before, whatever else its directory holds.
    std::fs::write(fresh.path().join("notes.txt"), b"x").unwrap();
    Db::open(fresh.path(), Options::existing())
        .unwrap()
        .close()
        .unwrap();
    assert!(fresh.path().join("notes.txt").exists());
}
