//! Readers search while a writer writes, memtables flush and segments are compacted;
//! writers are slowed, never failed, when flushes fall behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata::{Db, Metric, Options, SearchOptions};

#[test]
fn readers_see_consistent_snapshots_during_writes_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny memtables: many flushes while readers run; max one frozen memtable so the
    // writer is throttled.
    let opts = Options::new(4, Metric::L2)
        .memtable_bytes(2048)
        .max_immutable_memtables(1)
        .durability(strata::Durability::Never);
    let db = Arc::new(Db::open(dir.path(), opts).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    // Invariant maintained by the writer: every batch upserts id i and deletes id i - 1
    // atomically, so every snapshot holds exactly one of the ids 0..N (after the first).
    let n = 600u64;
    db.upsert(0, &[0.0; 4]).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (db, done) = (db.clone(), done.clone());
            s.spawn(move || {
                let mut checks = 0;
                while !done.load(Ordering::Acquire) {
                    let hits = db.search(&[0.0; 4], &SearchOptions::new(5)).unwrap();
                    assert_eq!(
                        hits.len(),
                        1,
                        "snapshot must hold exactly one record: {hits:?}"
                    );
                    checks += 1;
                }
                assert!(checks > 0);
            });
        }
        for i in 1..n {
            let mut b = strata::WriteBatch::new();
            b.upsert(i, &[i as f32, 0.0, 0.0, 0.0]).delete(i - 1);
            db.write(b).unwrap();
        }
        done.store(true, Ordering::Release);
    });
    let s = db.stats().unwrap();
    assert_eq!(s.live_rows, 1);
    // Flushes happened, and background compaction merged or dropped (fully deleted)
    // segments while the readers ran.
    assert!(
        s.segments.len() > 3 || s.compactions.runs > 0,
        "flushes happened: {} segments, {:?}",
        s.segments.len(),
        s.compactions
    );
}

#[test]
fn a_zero_frozen_memtable_limit_slows_writers_but_never_stalls_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(4, Metric::L2)
        .memtable_bytes(1024)
        .max_immutable_memtables(0);
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..300u64 {
        db.upsert(i, &[i as f32, 1.0, 2.0, 3.0]).unwrap();
    }
    db.flush().unwrap();
    assert_eq!(db.stats().unwrap().live_rows, 300);
}
