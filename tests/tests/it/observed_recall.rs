//! Recall measured while serving: sampled searches are run again exactly on their
//! snapshot, the estimate equals the recall computed independently, sampling is
//! deterministic for a seed, and with adaptation a store whose searches fall short of
//! their target calibrates again and then meets it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::Rng;
use strata::{Db, InvalidArgument, Metric, Options, RecallSampling, SearchOptions};

use crate::common::{self, vector};

const DIM: usize = 24;

fn around(rng: &mut impl Rng, centres: &[Vec<f32>], n: usize, spread: f32) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            c.iter()
                .map(|x| x + rng.random_range(-spread..spread))
                .collect()
        })
        .collect()
}

fn options(sampling: RecallSampling) -> Options {
    Options::new(DIM, Metric::L2)
        .memtable_bytes(64 << 20)
        .background_calibration(false)
        .background_compaction(false)
        .index(strata_tests::workload::small_index(8, 32))
        .recall_sampling(sampling)
}

fn store(dir: &std::path::Path, rows: &[Vec<f32>], sampling: RecallSampling) -> Db {
    let db = Db::open(dir, options(sampling)).unwrap();
    for (i, v) in rows.iter().enumerate() {
        db.upsert(i as u64, v).unwrap();
    }
    db.flush().unwrap();
    db
}

/// Waits (bounded) until `n` samples were measured; fails if they never are.
fn measured(db: &Db, n: usize) -> strata::ObservedRecall {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = db.observed_recall();
        if o.as_ref().is_some_and(|o| o.overall.queries >= n) && db.recall_samples_pending() == 0 {
            return o.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "only {o:?} measured, {n} expected"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A search that first lets the sample queue drain when it is half full: every
/// sampled search is then measured (none dropped), however slow the background is.
fn search(db: &Db, q: &[f32], opts: &SearchOptions) -> Vec<strata::Hit> {
    if db.recall_samples_pending() >= 128 {
        let deadline = Instant::now() + Duration::from_secs(120);
        while db.recall_samples_pending() > 8 {
            assert!(Instant::now() < deadline, "the sample queue never drained");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    db.search(q, opts).unwrap()
}

/// Per-query recall@k of `opts` against the exact answer.
fn recalls(db: &Db, queries: &[Vec<f32>], opts: &SearchOptions) -> Vec<f64> {
    queries
        .iter()
        .map(|q| {
            let truth: HashSet<u64> = search(db, q, &SearchOptions::exact(opts.k))
                .iter()
                .map(|h| h.id)
                .collect();
            let hits = search(db, q, opts);
            hits.iter().filter(|h| truth.contains(&h.id)).count() as f64 / truth.len() as f64
        })
        .collect()
}

#[test]
fn the_observed_recall_is_the_recall_of_the_sampled_searches() {
    let mut rng = common::rng(21);
    let centres: Vec<Vec<f32>> = (0..30).map(|_| vector(&mut rng, DIM)).collect();
    let rows = around(&mut rng, &centres, 4000, 0.4);
    let queries = around(&mut rng, &centres, 150, 0.4);
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path(), &rows, RecallSampling::new(1.0));
    assert!(db.observed_recall().is_none());
    // A narrow width, so that recall is well below 1. Exact searches are sampled too
    // (each at recall 1): 150 of each, and only the narrow ones are compared.
    let narrow = SearchOptions {
        ef: Some(10),
        rerank: Some(10),
        ..SearchOptions::new(10)
    };
    let per_query = recalls(&db, &queries, &narrow);
    let o = measured(&db, 300);
    assert_eq!(o.overall.queries, 300);
    let expected = (per_query.iter().sum::<f64>() + 150.0) / 300.0;
    assert!(
        (o.overall.recall - expected).abs() < 1e-9,
        "{o:?} against {expected}"
    );
    assert!(o.overall.low <= o.overall.recall && o.overall.recall <= o.overall.high);
    assert!(
        expected < 0.999,
        "the narrow search should miss some: {expected}"
    );
    // One indexed f32 segment, measured on the narrow (non-exact) searches only.
    assert_eq!(o.by_segment_kind.len(), 1);
    let (kind, seg) = &o.by_segment_kind[0];
    assert_eq!(kind, "f32");
    assert_eq!(seg.queries, 150);
    let narrow_mean = per_query.iter().sum::<f64>() / 150.0;
    assert!(
        (seg.recall - narrow_mean).abs() < 1e-9,
        "{seg:?} against {narrow_mean}"
    );
    assert_eq!((o.dropped, o.recalibrations), (0, 0));

    db.reset_observed_recall();
    assert!(db.observed_recall().is_none());
}

#[test]
fn sampling_is_seeded() {
    let mut rng = common::rng(22);
    let centres: Vec<Vec<f32>> = (0..30).map(|_| vector(&mut rng, DIM)).collect();
    let rows = around(&mut rng, &centres, 1000, 0.4);
    let queries = around(&mut rng, &centres, 400, 0.4);
    let sampled = |seed| {
        let dir = tempfile::tempdir().unwrap();
        let sampling = RecallSampling {
            seed,
            ..RecallSampling::new(0.25)
        };
        let db = store(dir.path(), &rows, sampling);
        for q in &queries {
            search(&db, q, &SearchOptions::new(5));
        }
        // Everything queued or in flight is measured; nothing else.
        let deadline = Instant::now() + Duration::from_secs(120);
        while db.recall_samples_pending() > 0 {
            assert!(Instant::now() < deadline, "samples never measured");
            std::thread::sleep(Duration::from_millis(10));
        }
        let o = db.observed_recall().expect("some searches sampled");
        assert_eq!(o.dropped, 0);
        o.overall.queries
    };
    let a = sampled(5);
    assert!((60..140).contains(&a), "{a} of 400 sampled at 0.25");
    assert_eq!(sampled(5), a, "the same seed samples the same searches");
    let others: Vec<usize> = (6..10).map(sampled).collect();
    assert!(others.iter().any(|&b| b != a), "{a} {others:?}");
}

#[test]
fn a_shortfall_is_measured_and_adaptation_closes_it() {
    let mut rng = common::rng(23);
    let centres: Vec<Vec<f32>> = (0..40).map(|_| vector(&mut rng, DIM)).collect();
    let rows = around(&mut rng, &centres, 6000, 0.35);
    // Calibrated on queries close to the rows, then served queries from elsewhere
    // (uniform in the cube): harder, so the calibration overstates their recall.
    let easy = around(&mut rng, &centres, 300, 0.05);
    let hard: Vec<Vec<f32>> = (0..1200).map(|_| vector(&mut rng, DIM)).collect();
    let dir = tempfile::tempdir().unwrap();
    let sampling = RecallSampling {
        window: 200,
        adapt: true,
        ..RecallSampling::new(1.0)
    };
    let db = store(dir.path(), &rows, sampling);
    let refs: Vec<&[f32]> = easy.iter().map(Vec::as_slice).collect();
    db.calibrate(&refs).unwrap();
    let target = SearchOptions {
        target_recall: Some(0.95),
        ..SearchOptions::new(10)
    };
    let before: f64 = recalls(&db, &hard[..200], &target).iter().sum::<f64>() / 200.0;
    println!("hard queries, calibrated on easy ones: recall {before:.4}");
    assert!(before < 0.93, "the shortfall this test needs: {before}");
    // Serve the hard queries until the store calibrated again.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut served = 0;
    while db.observed_recall().is_none_or(|o| o.recalibrations == 0) {
        assert!(
            Instant::now() < deadline,
            "never calibrated again: {:?}",
            db.observed_recall()
        );
        search(&db, &hard[200 + served % 800], &target);
        served += 1;
    }
    let after: f64 = recalls(&db, &hard[1000..], &target).iter().sum::<f64>() / 200.0;
    println!("after {served} served and a calibration on them: recall {after:.4}");
    assert!(after >= 0.93, "{after}");
}

#[test]
fn a_bad_fraction_is_refused_at_open() {
    for f in [0.0, -1.0, 1.5, f64::NAN] {
        let dir = tempfile::tempdir().unwrap();
        let err = Db::open(dir.path(), options(RecallSampling::new(f)))
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                strata::Error::InvalidArgument(InvalidArgument::RecallSampling(_))
            ),
            "{f}: {err}"
        );
    }
}
