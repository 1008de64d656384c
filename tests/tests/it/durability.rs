//! Acknowledged writes survive close/reopen and drop-without-close/reopen.

use std::collections::HashMap;

use strata::{Db, Durability, Metric, Options, WriteBatch};

use crate::common::{self, vector};

fn workload(db: &Db, model: &mut HashMap<u64, (Vec<f32>, Option<Vec<u8>>)>, seed: u64, n: usize) {
    let mut rng = common::rng(seed);
    for i in 0..n {
        let id = rand::Rng::random_range(&mut rng, 0..200u64);
        match i % 7 {
            0 => {
                db.delete(id).unwrap();
                model.remove(&id);
            }
            1 => {
                let mut b = WriteBatch::new();
                let v1 = vector(&mut rng, 8);
                let v2 = vector(&mut rng, 8);
                b.upsert(id, &v1)
                    .upsert_with_payload(id + 1000, &v2, b"batch")
                    .delete(id / 2);
                db.write(b).unwrap();
                model.insert(id, (v1, None));
                model.insert(id + 1000, (v2, Some(b"batch".to_vec())));
                model.remove(&(id / 2));
            }
            _ => {
                let v = vector(&mut rng, 8);
                let p = format!("payload {i}").into_bytes();
                db.upsert_with_payload(id, &v, &p).unwrap();
                model.insert(id, (v, Some(p)));
            }
        }
    }
}

fn check(db: &Db, model: &HashMap<u64, (Vec<f32>, Option<Vec<u8>>)>) {
    for id in 0..1200u64 {
        let got = db.get(id).unwrap();
        match model.get(&id) {
            Some((v, p)) => {
                let r = got.unwrap_or_else(|| panic!("acknowledged id {id} lost"));
                assert_eq!(&r.vector, v, "id {id} vector bytes");
                assert_eq!(&r.payload, p, "id {id} payload");
            }
            None => assert!(got.is_none(), "deleted or never-written id {id} is present"),
        }
    }
    assert_eq!(db.stats().unwrap().live_rows, model.len() as u64);
}

#[test]
fn close_and_reopen_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = HashMap::new();
    for round in 0..3 {
        let db = common::open(dir.path(), 8, Metric::L2);
        check(&db, &model);
        workload(&db, &mut model, 100 + round, 300);
        check(&db, &model);
        db.close().unwrap();
    }
    let db = common::open(dir.path(), 8, Metric::L2);
    check(&db, &model);
    assert!(
        db.stats().unwrap().segments.len() > 1,
        "the workload must have produced segments"
    );
}

#[test]
fn drop_without_close_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = HashMap::new();
    for round in 0..4 {
        let db = common::open(dir.path(), 8, Metric::L2);
        check(&db, &model);
        workload(&db, &mut model, 200 + round, 250);
        drop(db); // a crash: no flush, no close
    }
    let db = common::open(dir.path(), 8, Metric::L2);
    check(&db, &model);
    strata::verify(dir.path()).unwrap_err(); // locked while open
    drop(db);
    let report = strata::verify(dir.path()).unwrap();
    assert!(
        report.orphans.is_empty(),
        "orphans after a clean open: {:?}",
        report.orphans
    );
}

#[test]
fn every_sync_mode_survives_a_process_level_crash() {
    for sync in [
        Durability::Always,
        Durability::Periodic(std::time::Duration::from_millis(5)),
        Durability::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut model = HashMap::new();
        let db = Db::open(
            dir.path(),
            Options::new(8, Metric::L2)
                .durability(sync)
                .memtable_bytes(8192),
        )
        .unwrap();
        workload(&db, &mut model, 7, 200);
        drop(db);
        let db = Db::open(dir.path(), Options::existing()).unwrap();
        check(&db, &model);
    }
}

#[test]
fn flush_empties_the_wal_and_leaves_no_orphans() {
    let dir = tempfile::tempdir().unwrap();
    // Half the rows get deleted: without this, compaction would rewrite the segment.
    let opts = Options::new(4, Metric::L2).background_compaction(false);
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..100 {
        db.upsert(i, &[i as f32, 0.0, 0.0, 1.0]).unwrap();
    }
    db.flush().unwrap();
    for i in 0..50 {
        db.delete(i * 2).unwrap();
    }
    db.flush().unwrap();
    let s = db.stats().unwrap();
    assert_eq!(
        (s.segment_rows, s.tombstones, s.memtable_rows, s.live_rows),
        (100, 50, 0, 50)
    );
    db.close().unwrap();
    assert_eq!(
        common::files_with_ext(dir.path(), "wal").len(),
        1,
        "only the last, empty WAL file remains"
    );
    assert_eq!(common::files_with_ext(dir.path(), "del").len(), 1);
    let r = strata::verify(dir.path()).unwrap();
    assert_eq!(
        (r.segments, r.rows, r.tombstones, r.wal_records),
        (1, 100, 50, 0)
    );
}

#[test]
fn group_commit_shares_fsyncs_between_writers() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(Db::open(dir.path(), Options::new(4, Metric::L2)).unwrap());
    let before = db.wal_fsyncs();
    let (writers, each) = (8u64, 50u64);
    std::thread::scope(|s| {
        for t in 0..writers {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..each {
                    db.upsert(t * 1000 + i, &[1.0, 2.0, 3.0, 4.0]).unwrap();
                }
            });
        }
    });
    let fsyncs = db.wal_fsyncs() - before;
    println!(
        "{} acknowledged Durability::Always writes, {fsyncs} fsyncs",
        writers * each
    );
    assert!(fsyncs < writers * each);
    assert_eq!(db.stats().unwrap().live_rows, writers * each);
}

#[test]
fn read_only_sessions_do_not_accumulate_wal_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(2, Metric::L2)).unwrap();
    db.upsert(1, &[1.0, 2.0]).unwrap();
    drop(db);
    for _ in 0..5 {
        let db = Db::open(dir.path(), Options::existing()).unwrap();
        assert!(db.get(1).unwrap().is_some());
        drop(db);
    }
    // The file with the record and the current (empty) one; the empty ones of the
    // sessions in between are gone.
    assert_eq!(common::files_with_ext(dir.path(), "wal").len(), 2);
}

#[test]
fn files_the_manifest_does_not_name_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::new(2, Metric::L2)).unwrap();
    db.upsert(1, &[1.0, 2.0]).unwrap();
    db.close().unwrap();
    // A segment and a deletion file from an interrupted flush, an obsolete WAL file,
    // and an unfinished manifest publish.
    for name in ["000900.seg", "000901.del", "000000.wal", "MANIFEST.tmp"] {
        std::fs::write(dir.path().join(name), b"garbage").unwrap();
    }
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.get(1).unwrap().unwrap().vector, vec![1.0, 2.0]);
    for name in ["000900.seg", "000901.del", "000000.wal", "MANIFEST.tmp"] {
        assert!(!dir.path().join(name).exists(), "{name} survived the open");
    }
    // New files never reuse a number seen on disk.
    db.upsert(2, &[0.0, 1.0]).unwrap();
    db.close().unwrap();
    let newest = common::files_with_ext(dir.path(), "seg").pop().unwrap();
    assert!(
        newest.file_name().unwrap().to_str().unwrap() > "000901",
        "{newest:?}"
    );
}
