//! Repair from the manifest's mirror, and consistent checkpoints of an open store.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use strata::vfs::{Action, FaultVfs, Op, OsVfs};
use strata::{repair, Db, Error, Metric, Options, RepairAction, SearchOptions, WriteBatch};

use crate::common::{self, flip};

/// Every live id of the store in `dir`, by exact search for all of them.
fn ids(dir: &Path) -> Vec<u64> {
    let db = Db::open(dir, Options::existing()).unwrap();
    let n = db.len() as usize;
    let mut out: Vec<u64> = db
        .search(&[0.0; 4], &SearchOptions::exact(n.max(1)))
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    out.sort();
    out
}

fn fill(db: &Db, ids: std::ops::Range<u64>) {
    let mut b = WriteBatch::new();
    for i in ids {
        b.upsert(i, &[i as f32, 1.0, 2.0, 3.0]);
    }
    db.write(b).unwrap();
}

#[test]
fn a_flipped_bit_in_the_manifest_is_repaired_from_its_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), 4, Metric::L2);
    fill(&db, 0..200);
    db.flush().unwrap();
    db.delete(5).unwrap();
    fill(&db, 200..220);
    drop(db); // a crash: the last writes only in the log
    let want = ids(dir.path());
    assert_eq!(want.len(), 219);
    for offset in [0, 17, 40] {
        flip(&dir.path().join("MANIFEST"), offset);
        let e = Db::open(dir.path(), Options::existing()).err().unwrap();
        assert!(e.is_corruption(), "{e}");
        assert_eq!(repair(dir.path()).unwrap(), RepairAction::ManifestRestored);
        assert_eq!(ids(dir.path()), want, "flipped byte {offset}");
        assert_eq!(repair(dir.path()).unwrap(), RepairAction::Nothing);
    }
    // A damaged mirror is rewritten by the next open (and by repair).
    flip(&dir.path().join("MANIFEST-MIRROR"), 30);
    assert_eq!(repair(dir.path()).unwrap(), RepairAction::MirrorRewritten);
    flip(&dir.path().join("MANIFEST-MIRROR"), 30);
    assert_eq!(ids(dir.path()), want);
    assert_eq!(repair(dir.path()).unwrap(), RepairAction::Nothing);
    // A missing manifest: opening neither finds a store nor creates one over the files.
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    assert!(matches!(
        Db::open(dir.path(), Options::existing()),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        Db::open(dir.path(), Options::new(4, Metric::L2)),
        Err(Error::NotAStore { .. })
    ));
    assert_eq!(repair(dir.path()).unwrap(), RepairAction::ManifestRestored);
    assert_eq!(ids(dir.path()), want);
    // Both copies damaged: repair refuses and changes nothing.
    flip(&dir.path().join("MANIFEST"), 20);
    flip(&dir.path().join("MANIFEST-MIRROR"), 20);
    let before = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    assert!(repair(dir.path()).unwrap_err().is_corruption());
    assert_eq!(std::fs::read(dir.path().join("MANIFEST")).unwrap(), before);
}

#[test]
fn a_stale_mirror_from_a_crash_between_the_writes_loses_nothing_flushed() {
    let dir = tempfile::tempdir().unwrap();
    // The mirror's publish fails (as if the process died there) at the third flush.
    let armed = Arc::new(AtomicBool::new(false));
    let renames = Arc::new(AtomicU64::new(0));
    let (a, r) = (armed.clone(), renames.clone());
    let fault = FaultVfs::new(
        Arc::new(OsVfs),
        move |_: u64, op: Op, path: &Path, _: usize| {
            let mirror = path.file_name().is_some_and(|n| n == "MANIFEST-MIRROR");
            if op == Op::Rename && mirror && a.load(Ordering::SeqCst) {
                r.fetch_add(1, Ordering::SeqCst);
                Action::Fail(std::io::Error::from_raw_os_error(5))
            } else {
                Action::Proceed
            }
        },
    );
    let db = Db::open(
        dir.path(),
        common::small(4, Metric::L2).vfs(Arc::new(fault)),
    )
    .unwrap();
    fill(&db, 0..100);
    db.flush().unwrap();
    db.delete(3).unwrap();
    fill(&db, 100..150);
    armed.store(true, Ordering::SeqCst);
    // The manifest is published, the mirror is not: the flush reports the failure.
    assert!(db.flush().is_err());
    assert!(renames.load(Ordering::SeqCst) >= 1, "the fault fired");
    drop(db);
    let mirror = std::fs::read(dir.path().join("MANIFEST-MIRROR")).unwrap();
    assert_ne!(
        mirror,
        std::fs::read(dir.path().join("MANIFEST")).unwrap(),
        "the mirror is one publish behind"
    );
    // Now the new manifest is damaged too: the older mirror still holds everything.
    flip(&dir.path().join("MANIFEST"), 40);
    assert_eq!(repair(dir.path()).unwrap(), RepairAction::ManifestRestored);
    let want: Vec<u64> = (0..150).filter(|&i| i != 3).collect();
    assert_eq!(ids(dir.path()), want);
    strata::verify(dir.path()).unwrap();
}

#[test]
fn a_checkpoint_of_an_open_store_holds_every_write_acknowledged_before_it() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let db = Arc::new(common::open(&src, 4, Metric::L2));
    fill(&db, 0..300);
    db.flush().unwrap();
    db.delete(7).unwrap();
    fill(&db, 300..320); // in the log only
                         // A writer keeps going during the checkpoint; its ids count up, batch by batch.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(320));
    let writer = {
        let (db, stop, acked) = (db.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut next = 320;
            while !stop.load(Ordering::SeqCst) {
                fill(&db, next..next + 10);
                next += 10;
                acked.store(next, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 400 {
        std::thread::yield_now();
    }
    let before = acked.load(Ordering::SeqCst);
    let dest = t.path().join("backup");
    let report = db.checkpoint(&dest).unwrap();
    let after = acked.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(
        report.linked_files >= 1 && report.copied_files >= 1,
        "{report:?}"
    );
    strata::verify(&dest).unwrap();
    let got = ids(&dest);
    // A prefix of the writer's batches: everything acknowledged before, nothing beyond
    // what was acknowledged after, and the delete.
    let n = got.len() as u64 + 1;
    assert!(n >= before && n <= after + 10, "{before} <= {n} <= {after}");
    let want: Vec<u64> = (0..n).filter(|&i| i != 7).collect();
    assert_eq!(got, want);
    // The source goes on; the backup is independent of it.
    db.compact(true, &|_, _, _| true).unwrap();
    fill(&db, 10_000..10_001);
    assert_eq!(ids(&dest), want);
    // A destination holding files is refused.
    let e = db.checkpoint(&dest).unwrap_err();
    assert!(matches!(e, Error::DestinationNotEmpty { .. }), "{e}");
}
