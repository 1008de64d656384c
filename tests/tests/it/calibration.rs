//! Search by target recall: segments are calibrated on their rows, then on queries; the
//! calibration persists in the `CALIBRATION` file (a damaged one is rebuilt), the
//! background calibrator calibrates new segments, and a search at a target recall
//! reaches it on queries like those it was calibrated on.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::Rng;
use strata::{CalibrationSource, Db, InvalidArgument, Metric, Options, ReadOnlyDb, SearchOptions};

use crate::common::{self, vector};

const DIM: usize = 24;

/// Rows around 40 centres, and queries drawn the same way (not rows of the store).
fn clustered(rng: &mut impl Rng, centres: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            c.iter()
                .map(|x| x + rng.random_range(-0.35..0.35))
                .collect()
        })
        .collect()
}

struct Data {
    rows: Vec<Vec<f32>>,
    /// Queries to calibrate on.
    calibrate: Vec<Vec<f32>>,
    /// Other queries of the same distribution, to measure.
    measure: Vec<Vec<f32>>,
}

fn data(seed: u64, n: usize) -> Data {
    let mut rng = common::rng(seed);
    let centres: Vec<Vec<f32>> = (0..40).map(|_| vector(&mut rng, DIM)).collect();
    Data {
        rows: clustered(&mut rng, &centres, n),
        calibrate: clustered(&mut rng, &centres, 300),
        measure: clustered(&mut rng, &centres, 300),
    }
}

fn options() -> Options {
    Options::new(DIM, Metric::L2)
        .memtable_bytes(64 << 20)
        .background_calibration(false)
        .background_compaction(false)
        .index(strata_tests::workload::small_index(8, 64))
}

/// A store holding `rows` in one indexed segment.
fn one_segment(dir: &Path, rows: &[Vec<f32>], opts: Options) -> Db {
    let db = Db::open(dir, opts).unwrap();
    for (i, v) in rows.iter().enumerate() {
        db.upsert(i as u64, v).unwrap();
    }
    db.flush().unwrap();
    assert_eq!(db.stats().unwrap().segments.len(), 1);
    db
}

fn recall(db: &Db, queries: &[Vec<f32>], opts: &SearchOptions) -> f64 {
    let (mut found, mut want) = (0, 0);
    for q in queries {
        let truth: HashSet<u64> = db
            .search(q, &SearchOptions::exact(opts.k))
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        want += truth.len();
        let hits = db.search(q, opts).unwrap();
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    found as f64 / want.max(1) as f64
}

fn target(t: f64) -> SearchOptions {
    SearchOptions {
        target_recall: Some(t),
        ..SearchOptions::new(10)
    }
}

fn refs(q: &[Vec<f32>]) -> Vec<&[f32]> {
    q.iter().map(Vec::as_slice).collect()
}

#[test]
fn a_target_recall_is_met_on_queries_like_the_calibration_queries() {
    let d = data(11, 8000);
    let dir = tempfile::tempdir().unwrap();
    let db = one_segment(dir.path(), &d.rows, options());
    assert!(db.calibration().is_empty(), "nothing calibrated yet");

    let report = db.calibrate(&refs(&d.calibrate)).unwrap();
    assert_eq!(report.len(), 1);
    let c = &report[0];
    assert_eq!(
        (c.source, c.queries, c.rows),
        (CalibrationSource::Queries, 300, 8000)
    );
    let widths: Vec<usize> = c.recall_at.iter().map(|&(ef, _)| ef).collect();
    assert!(widths.windows(2).all(|w| w[0] < w[1]), "{widths:?}");
    assert!(c.recall_at.iter().all(|&(_, r)| (0.0..=1.0).contains(&r)));

    let mut last = 0.0;
    for t in [0.8, 0.9, 0.95, 0.99] {
        let r = recall(&db, &d.measure, &target(t));
        println!("target {t}: recall {r:.4}");
        // Other queries of the same distribution: the target is met within the
        // sampling error of 300 queries, and a higher target never finds less.
        assert!(r >= t - 0.02, "target {t}: recall {r}");
        assert!(r >= last - 0.005, "target {t}: recall {r} below {last}");
        last = r;
    }
    // An explicit width overrides the target.
    let narrow = SearchOptions {
        ef: Some(10),
        ..target(0.99)
    };
    assert!(recall(&db, &d.measure, &narrow) < recall(&db, &d.measure, &target(0.99)));
}

#[test]
fn calibration_persists_and_a_damaged_file_is_rebuilt() {
    let d = data(12, 3000);
    let dir = tempfile::tempdir().unwrap();
    let db = one_segment(dir.path(), &d.rows, options());
    // On its rows first.
    assert_eq!(db.calibrate_pending().unwrap(), 1);
    let rows = db.calibration();
    assert_eq!(rows[0].source, CalibrationSource::Rows);
    assert_eq!(
        db.calibrate_pending().unwrap(),
        0,
        "nothing left to calibrate"
    );
    let on_queries = db.calibrate(&refs(&d.calibrate)).unwrap();
    assert_eq!(on_queries[0].source, CalibrationSource::Queries);
    db.close().unwrap();

    // Reopened: the same tables, for the writer and a reader.
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.calibration(), on_queries);
    assert_eq!(db.calibrate_pending().unwrap(), 0);
    let ro = ReadOnlyDb::open(dir.path()).unwrap();
    let probe = &d.measure[0];
    let ro_ids: Vec<u64> = ro
        .search(probe, &target(0.9))
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    let ids: Vec<u64> = db
        .search(probe, &target(0.9))
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ro_ids, ids);
    drop(ro);
    db.close().unwrap();

    // Damaged: ignored at open, calibrated again (on the saved queries, which went with
    // the damaged file: on rows).
    let path = dir.path().join("CALIBRATION");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert!(db.calibration().is_empty(), "a damaged file is not used");
    assert!(db.search(probe, &target(0.9)).unwrap().len() == 10);
    assert_eq!(db.calibrate_pending().unwrap(), 1);
    assert_eq!(db.calibration()[0].source, CalibrationSource::Rows);
    db.close().unwrap();
    // ... and the rewritten file is whole again.
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.calibration().len(), 1);
}

#[test]
fn new_segments_are_calibrated_on_the_saved_queries() {
    let d = data(13, 4000);
    let dir = tempfile::tempdir().unwrap();
    let db = one_segment(dir.path(), &d.rows[..2000], options());
    db.calibrate(&refs(&d.calibrate)).unwrap();
    for (i, v) in d.rows.iter().enumerate().skip(2000) {
        db.upsert(i as u64, v).unwrap();
    }
    db.flush().unwrap();
    assert_eq!(
        db.calibration().len(),
        1,
        "the new segment is not calibrated yet"
    );
    assert_eq!(db.calibrate_pending().unwrap(), 1);
    let all = db.calibration();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|c| c.source == CalibrationSource::Queries));
    // The new segment on the sample (the newest 256), the first on all 300 given.
    assert_eq!((all[0].queries, all[1].queries), (256, 300));
    // Merged into one: the merged segment too.
    db.compact(true, &|_, _, _| true).unwrap();
    assert_eq!(db.calibrate_pending().unwrap(), 1);
    let merged = db.calibration();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].rows, 4000);
    assert_eq!(merged[0].source, CalibrationSource::Queries);
}

#[test]
fn the_background_calibrator_calibrates_flushed_segments() {
    let d = data(14, 3000);
    let dir = tempfile::tempdir().unwrap();
    let db = one_segment(dir.path(), &d.rows, options().background_calibration(true));
    // Background work: wait for it (bounded), then check it happened.
    let deadline = Instant::now() + Duration::from_secs(120);
    while db.calibration().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = db.calibration();
    assert_eq!(c.len(), 1, "the calibrator did not calibrate the segment");
    assert_eq!(c[0].source, CalibrationSource::Rows);
    // Served queries join the sample (one in 16): after enough of them the segment is
    // calibrated again, on queries.
    let opts = SearchOptions::new(10);
    while db.calibration()[0].source == CalibrationSource::Rows && Instant::now() < deadline {
        for q in d.calibrate.iter().chain(&d.measure) {
            db.search(q, &opts).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = db.calibration();
    assert_eq!(
        c[0].source,
        CalibrationSource::Queries,
        "never calibrated on queries"
    );
    assert!(c[0].queries >= 64, "{c:?}");
    db.close().unwrap();
    assert!(dir.path().join("CALIBRATION").exists());
}

#[test]
fn bad_targets_and_too_few_queries_are_refused() {
    let d = data(15, 500);
    let dir = tempfile::tempdir().unwrap();
    let db = one_segment(dir.path(), &d.rows, options());
    for t in [0.0, -0.5, 1.5, f64::NAN] {
        let err = db.search(&d.measure[0], &target(t)).unwrap_err();
        assert!(
            matches!(
                err,
                strata::Error::InvalidArgument(InvalidArgument::TargetRecall(_))
            ),
            "{t}: {err}"
        );
    }
    let err = db.calibrate(&refs(&d.calibrate[..10])).unwrap_err();
    assert!(
        matches!(
            err,
            strata::Error::InvalidArgument(InvalidArgument::TooFewCalibrationQueries {
                got: 10,
                ..
            })
        ),
        "{err}"
    );
    let mut bad = d.calibrate.clone();
    bad[3] = vec![1.0; DIM - 1];
    assert!(
        db.calibrate(&refs(&bad)).is_err(),
        "a query of the wrong dimension"
    );
    // Target 1.0 is allowed.
    assert_eq!(db.search(&d.measure[0], &target(1.0)).unwrap().len(), 10);
}

#[test]
fn a_calibration_file_that_cannot_be_written_fails_the_call_not_the_store() {
    let d = data(16, 3000);
    let dir = tempfile::tempdir().unwrap();
    let db = one_segment(dir.path(), &d.rows, options());
    // The temporary file's name is taken by a directory that cannot be removed.
    let blocker = dir.path().join("CALIBRATION.tmp");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), b"x").unwrap();
    assert!(db.calibrate(&refs(&d.calibrate)).is_err());
    // The calibration is in memory all the same; the store serves and writes.
    assert_eq!(db.calibration().len(), 1);
    assert_eq!(db.search(&d.measure[0], &target(0.95)).unwrap().len(), 10);
    db.upsert(1_000_000, &d.measure[1]).unwrap();
    db.close().unwrap();
    std::fs::remove_dir_all(&blocker).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    assert!(db.calibration().is_empty(), "nothing was written");
    assert!(db.get(1_000_000).unwrap().is_some());
}
