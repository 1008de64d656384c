//! What a store reports through the `metrics` facade, read back from a recorder
//! installed for this test binary alone (one process, one global recorder).

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::CompositeKey;
use strata::{Db, Fusion, Metric, Options, SearchOptions, WriteBatch};

/// The value of metric `name` with labels `labels` (all of them, in any order).
fn find<'a>(
    all: &'a [(CompositeKey, DebugValue)],
    name: &str,
    labels: &[(&str, &str)],
) -> &'a DebugValue {
    all.iter()
        .find(|(k, _)| {
            let key = k.key();
            key.name() == name
                && labels.iter().all(|(l, v)| {
                    key.labels()
                        .any(|label| label.key() == *l && label.value() == *v)
                })
        })
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} {labels:?} among {:?}", names(all)))
}

fn names(all: &[(CompositeKey, DebugValue)]) -> Vec<String> {
    all.iter()
        .map(|(k, _)| k.key().name().to_string())
        .collect()
}

fn observations(v: &DebugValue) -> usize {
    match v {
        DebugValue::Histogram(h) => h.len(),
        other => panic!("not a histogram: {other:?}"),
    }
}

#[test]
fn a_store_reports_searches_writes_fsyncs_flushes_merges_and_sizes() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let store = dir.display().to_string();
    let db = Db::open(
        &dir,
        Options::new(4, Metric::L2)
            .memtable_bytes(64 << 10)
            .background_compaction(false),
    )
    .unwrap();
    let mut ops = 0;
    for b in 0..40u64 {
        let mut batch = WriteBatch::new();
        for i in 0..100 {
            let id = b * 100 + i;
            batch.upsert_text(id, &[id as f32, 1.0, 2.0, 3.0], "a note", None, None);
            ops += 1;
        }
        db.write(batch).unwrap();
    }
    db.flush().unwrap();
    let o = SearchOptions::new(5);
    db.search(&[1.0, 1.0, 2.0, 3.0], &o).unwrap();
    let qs: Vec<Vec<f32>> = (0..7).map(|i| vec![i as f32, 1.0, 2.0, 3.0]).collect();
    let refs: Vec<&[f32]> = qs.iter().map(Vec::as_slice).collect();
    db.search_many(&refs, &o).unwrap();
    db.text_search("note", &o).unwrap();
    db.hybrid_search(&[1.0, 1.0, 2.0, 3.0], "note", &o, &Fusion::default())
        .unwrap();
    // A refused search is not a search served.
    assert!(db.search(&[1.0], &o).is_err());
    let mut refused = WriteBatch::new();
    refused.upsert(1, &[f32::NAN, 0.0, 0.0, 0.0]);
    assert!(db.write(refused).is_err());
    let none = strata::Filter::eq("absent", 1i64);
    assert_eq!(db.delete_by_filter(&none).unwrap(), 0);
    db.compact(true, &|_, _, _| true).unwrap();

    let all: Vec<(CompositeKey, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect();
    let s = store.as_str();
    let search = |kind| {
        observations(find(
            &all,
            "strata_search_seconds",
            &[("store", s), ("kind", kind)],
        ))
    };
    assert_eq!(
        (search("vector"), search("text"), search("hybrid")),
        (8, 1, 1)
    );
    // 40 batches: not the refused one, nor the delete that matched nothing.
    assert_eq!(
        observations(find(&all, "strata_write_seconds", &[("store", s)])),
        40
    );
    assert_eq!(
        find(&all, "strata_written_ops_total", &[("store", s)]),
        &DebugValue::Counter(ops)
    );
    assert!(observations(find(&all, "strata_wal_fsync_seconds", &[("store", s)])) >= 40);
    assert!(
        observations(find(&all, "strata_flush_seconds", &[("store", s)])) >= 2,
        "the small memtable flushed more than once"
    );
    assert_eq!(
        find(&all, "strata_flushed_rows_total", &[("store", s)]),
        &DebugValue::Counter(4000)
    );
    assert_eq!(
        observations(find(&all, "strata_compaction_seconds", &[("store", s)])),
        1
    );
    let gauge = |name, labels: &[(&str, &str)]| match find(&all, name, labels) {
        DebugValue::Gauge(g) => g.into_inner(),
        other => panic!("{name} is {other:?}"),
    };
    assert_eq!(gauge("strata_live_rows", &[("store", s)]), 4000.0);
    assert_eq!(gauge("strata_segments", &[("store", s)]), 1.0);
    assert!(gauge("strata_bytes", &[("store", s), ("kind", "segment")]) > 4000.0 * 16.0);
    // The merge's inputs are gone when it publishes.
    assert_eq!(
        gauge("strata_bytes", &[("store", s), ("kind", "retired")]),
        0.0
    );

    // A store that samples its searches reports their observed recall.
    let dir2 = t.path().join("sampled");
    let sampled = dir2.display().to_string();
    let db2 = Db::open(
        &dir2,
        Options::new(4, Metric::L2).recall_sampling(strata::RecallSampling::new(1.0)),
    )
    .unwrap();
    for id in 0..200u64 {
        db2.upsert(id, &[id as f32, (id % 7) as f32, 2.0, 3.0])
            .unwrap();
    }
    for i in 0..20 {
        db2.search(&[i as f32 * 9.0, 1.0, 2.0, 3.0], &o).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (recall, queries) = loop {
        let all: Vec<(CompositeKey, DebugValue)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| (k, v))
            .collect();
        let labels = [("store", sampled.as_str())];
        let has = |name| all.iter().any(|(k, _)| k.key().name() == name);
        if has("strata_observed_recall_queries") {
            let g = |name, labels: &[(&str, &str)]| match find(&all, name, labels) {
                DebugValue::Gauge(g) => g.into_inner(),
                other => panic!("{name} is {other:?}"),
            };
            let q = g("strata_observed_recall_queries", &labels);
            if q == 20.0 {
                let overall = [("store", sampled.as_str()), ("kind", "overall")];
                break (g("strata_observed_recall", &overall), q);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reported 20 samples"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let o2 = db2.observed_recall().expect("measured");
    assert_eq!(
        (o2.overall.queries, o2.overall.recall),
        (queries as usize, recall)
    );
}
