//! Records with metadata, and filtered search: the true top k among the live records
//! that pass the filter, across memtables, flushed and compacted segments, deletes,
//! upserts that change metadata, and a crash.

use std::collections::BTreeMap;

use rand::Rng;
use strata::{Db, Filter, Metadata, Metric, Options, SearchOptions, WriteBatch};

use crate::common;

const DIM: usize = 8;

/// The store's expected content: id → (vector, metadata).
type Model = BTreeMap<u64, (Vec<f32>, Option<Metadata>)>;

fn metadata_of(rng: &mut impl Rng, i: u64) -> Option<Metadata> {
    if i.is_multiple_of(7) {
        return None; // some rows carry none
    }
    let kind = ["fact", "note", "todo"][rng.random_range(0..3)];
    let tags: Vec<String> = (0..rng.random_range(0..3))
        .map(|_| format!("\"t{}\"", rng.random_range(0..4)))
        .collect();
    let text = format!(
        r#"{{"user": {}, "kind": "{kind}", "ts": {}, "tags": [{}], "a": {{"b": {}}}}}"#,
        i % 5,
        rng.random_range(0..1000),
        tags.join(","),
        rng.random::<bool>()
    );
    Some(Metadata::from_json_str(&text).unwrap())
}

fn filters() -> Vec<Filter> {
    [
        r#"{}"#,
        r#"{"user": 3}"#,
        r#"{"kind": "fact", "ts": {"$gte": 500}}"#,
        r#"{"tags": {"$contains": "t1"}}"#,
        r#"{"$or": [{"user": {"$in": [1, 2]}}, {"a.b": true}]}"#,
        r#"{"$not": {"kind": "note"}}"#,
        r#"{"kind": {"$exists": false}}"#,
        r#"{"ts": {"$lt": 20}}"#,
        r#"{"user": 99}"#,
    ]
    .iter()
    .map(|t| Filter::from_json_str(t).unwrap())
    .collect()
}

/// Brute force over the model: the ids of the `k` nearest records passing `f`.
fn expected(model: &Model, q: &[f32], f: &Filter, k: usize) -> Vec<u64> {
    let empty = Metadata::new();
    let mut all: Vec<(f32, u64)> = model
        .iter()
        .filter(|(_, (_, m))| f.matches(m.as_ref().unwrap_or(&empty)))
        .map(|(&id, (v, _))| (common::distance(Metric::L2, q, v), id))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, id)| id).collect()
}

fn check(db: &Db, model: &Model, rng: &mut impl Rng, label: &str) {
    for f in filters() {
        for _ in 0..5 {
            let q = common::vector(rng, DIM);
            let want = expected(model, &q, &f, 10);
            for exact in [false, true] {
                let opts = SearchOptions {
                    filter: Some(f.clone()),
                    exact,
                    ..SearchOptions::new(10)
                };
                let got: Vec<u64> = db.search(&q, &opts).unwrap().iter().map(|h| h.id).collect();
                assert_eq!(got, want, "{label}: filter {}", f.to_json());
            }
        }
    }
}

#[test]
fn filtered_search_is_the_true_top_k_among_matching_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = common::rng(15);
    let mut model = Model::new();
    let db = common::open(dir.path(), DIM, Metric::L2);
    let write =
        |db: &Db, model: &mut Model, ids: std::ops::Range<u64>, rng: &mut rand::rngs::StdRng| {
            let mut b = WriteBatch::new();
            for i in ids {
                let v = common::vector(rng, DIM);
                let m = metadata_of(rng, i);
                b.upsert_record(i, &v, m.as_ref(), None);
                model.insert(i, (v, m));
            }
            db.write(b).unwrap();
        };
    write(&db, &mut model, 0..600, &mut rng);
    check(&db, &model, &mut rng, "memtable and small segments");
    db.flush().unwrap();
    write(&db, &mut model, 600..700, &mut rng);
    // Upserts that change metadata, and deletes, on flushed rows.
    write(&db, &mut model, 0..50, &mut rng);
    for id in (100..200).step_by(3) {
        db.delete(id).unwrap();
        model.remove(&id);
    }
    check(&db, &model, &mut rng, "segments, memtable, deletes");
    for (id, (v, m)) in model.iter().take(30) {
        let r = db.get(*id).unwrap().unwrap();
        assert_eq!((&r.vector, &r.metadata), (v, m), "get {id}");
    }
    db.compact(true, &|_, _, _| true).unwrap();
    check(&db, &model, &mut rng, "after a full compaction");
    // A crash: the last writes only in the log.
    write(&db, &mut model, 700..760, &mut rng);
    drop(db);
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    check(&db, &model, &mut rng, "after recovery");
    for id in [700, 701, 755] {
        assert_eq!(db.get(id).unwrap().unwrap().metadata, model[&id].1);
    }
    db.close().unwrap();
    strata::verify(dir.path()).unwrap();
}

#[test]
fn a_filter_matching_k_or_more_records_always_returns_k() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path(), 2, Metric::L2);
    let mut b = WriteBatch::new();
    for i in 0..2000u64 {
        // One tenant in a hundred; the others' rows sit nearer every query.
        let tenant = if i.is_multiple_of(100) { 1 } else { 2 };
        let m = Metadata::from_json_str(&format!(r#"{{"tenant": {tenant}}}"#)).unwrap();
        let far = if tenant == 1 { 100.0 } else { 0.0 };
        b.upsert_record(i, &[far + i as f32 * 1e-3, 0.0], Some(&m), None);
    }
    db.write(b).unwrap();
    db.flush().unwrap();
    let opts = SearchOptions {
        filter: Some(Filter::eq("tenant", 1i64)),
        ..SearchOptions::new(10)
    };
    let hits = db.search(&[0.0, 0.0], &opts).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.id.is_multiple_of(100)), "{hits:?}");
    let opts = SearchOptions { k: 50, ..opts };
    assert_eq!(
        db.search(&[0.0, 0.0], &opts).unwrap().len(),
        20,
        "all 20 that match"
    );
}

#[test]
fn count_scan_get_many_and_delete_by_filter_agree_with_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = common::rng(16);
    let db = common::open(dir.path(), DIM, Metric::L2);
    let mut model = Model::new();
    for chunk in [0..300u64, 300..420] {
        let mut b = WriteBatch::new();
        for i in chunk {
            let v = common::vector(&mut rng, DIM);
            let m = metadata_of(&mut rng, i);
            b.upsert_record(i, &v, m.as_ref(), None);
            model.insert(i, (v, m));
        }
        db.write(b).unwrap();
        db.flush().unwrap();
    }
    for id in (0..50).step_by(4) {
        db.delete(id).unwrap(); // in the log only, over flushed rows
        model.remove(&id);
    }
    let empty = Metadata::new();
    let passing = |model: &Model, f: &Filter| -> Vec<u64> {
        model
            .iter()
            .filter(|(_, (_, m))| f.matches(m.as_ref().unwrap_or(&empty)))
            .map(|(&id, _)| id)
            .collect()
    };
    assert_eq!(db.count(None).unwrap(), model.len() as u64);
    for f in filters() {
        let want = passing(&model, &f);
        assert_eq!(
            db.count(Some(&f)).unwrap(),
            want.len() as u64,
            "{}",
            f.to_json()
        );
        // Paging in small pages visits exactly the passing ids, in order.
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = db.scan(Some(&f), after, 7).unwrap();
            assert!(page.records.len() <= 7);
            got.extend(page.records.iter().map(|r| r.id));
            for r in &page.records {
                assert_eq!((&r.vector, &r.metadata), (&model[&r.id].0, &model[&r.id].1));
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(got, want, "scan {}", f.to_json());
    }
    let many = db.get_many(&[1, 4, 999, 300]).unwrap();
    assert_eq!(many[0].as_ref().map(|r| r.id), Some(1));
    assert!(many[1].is_none() && many[2].is_none());
    assert_eq!(many[3].as_ref().unwrap().metadata, model[&300].1);
    // Hits carry metadata on request.
    let q = common::vector(&mut rng, DIM);
    let opts = SearchOptions {
        with_metadata: true,
        ..SearchOptions::new(5)
    };
    for h in db.search(&q, &opts).unwrap() {
        assert_eq!(h.metadata, model[&h.id].1, "hit {}", h.id);
    }
    // Delete by filter: atomic, counted, and what remains is the model's rest.
    let f = Filter::from_json_str(r#"{"$or": [{"kind": "todo"}, {"tags": {"$contains": "t2"}}]}"#)
        .unwrap();
    let doomed = passing(&model, &f);
    assert!(!doomed.is_empty());
    assert_eq!(db.delete_by_filter(&f).unwrap(), doomed.len() as u64);
    for id in &doomed {
        model.remove(id);
    }
    assert_eq!(db.count(Some(&f)).unwrap(), 0);
    assert_eq!(db.delete_by_filter(&f).unwrap(), 0);
    drop(db); // the delete batch is in the log only
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.count(None).unwrap(), model.len() as u64);
    check(&db, &model, &mut rng, "after delete by filter and recovery");
    let bad = Filter::gt("ts", "x");
    assert!(matches!(
        db.count(Some(&bad)),
        Err(strata::Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.delete_by_filter(&bad),
        Err(strata::Error::InvalidArgument(_))
    ));
    let ro = strata::ReadOnlyDb::open(dir.path()).unwrap();
    let f = Filter::eq("kind", "fact");
    assert_eq!(ro.count(Some(&f)).unwrap(), db.count(Some(&f)).unwrap());
    assert_eq!(
        ro.scan(Some(&f), None, 5).unwrap(),
        db.scan(Some(&f), None, 5).unwrap()
    );
}

mod index_model {
    //! The segments' metadata index answers every filter as `Filter::matches` does.

    use proptest::prelude::*;
    use strata::{Db, Filter, Metadata, Metric, Options, WriteBatch};

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            (-2i64..3).prop_map(|i| i.to_string()),
            (-2i32..3).prop_map(|x| format!("{:.1}", x as f64 / 2.0)),
            prop::sample::select(vec!["\"p\"", "\"q\"", "true", "false", "null"])
                .prop_map(str::to_string),
        ]
    }

    fn metadata() -> impl Strategy<Value = Option<Metadata>> {
        let field = || prop::option::of(value());
        let tags = prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["\"p\"", "\"q\"", "1", "2.5", "-1"]),
            0..3,
        ));
        prop::option::of((field(), field(), tags)).prop_map(|m| {
            m.map(|(a, x, tags)| {
                let mut parts = Vec::new();
                if let Some(a) = a {
                    parts.push(format!("\"a\": {a}"));
                }
                if let Some(x) = x {
                    parts.push(format!("\"o\": {{\"x\": {x}}}"));
                }
                if let Some(t) = tags {
                    parts.push(format!("\"tags\": [{}]", t.join(",")));
                }
                Metadata::from_json_str(&format!("{{{}}}", parts.join(","))).unwrap()
            })
        })
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let path = prop::sample::select(vec!["a", "o", "o.x", "tags", "zz"]);
        let leaf = (path, value(), 0..10u8).prop_map(|(p, v, op)| {
            let op = [
                "$eq",
                "$ne",
                "$gt",
                "$lte",
                "$in",
                "$nin",
                "$exists",
                "$contains",
                "$gte",
                "$lt",
            ][op as usize];
            let operand = match op {
                "$gt" | "$lte" | "$gte" | "$lt"
                    if !v.starts_with(|c: char| c.is_ascii_digit() || c == '-') =>
                {
                    "1".to_string()
                }
                "$in" | "$nin" if v == "null" => "[1]".to_string(),
                "$in" | "$nin" => format!("[{v}, \"p\"]"),
                "$exists" => "true".to_string(),
                "$contains" if v == "null" => "\"p\"".to_string(),
                _ => v,
            };
            Filter::from_json_str(&format!("{{\"{p}\": {{\"{op}\": {operand}}}}}")).unwrap()
        });
        // Both bounds of a range on one path (merged into one interval on scalar fields).
        let between = (
            prop::sample::select(vec!["a", "o.x", "tags"]),
            -2i32..3,
            -2i32..3,
            any::<bool>(),
        )
            .prop_map(|(p, lo, hi, strict)| {
                let (l, h) = if strict {
                    ("$gt", "$lt")
                } else {
                    ("$gte", "$lte")
                };
                let (lo, hi) = (lo as f64 / 2.0, hi as f64 / 2.0);
                Filter::from_json_str(&format!("{{\"{p}\": {{\"{l}\": {lo}, \"{h}\": {hi}}}}}"))
                    .unwrap()
            });
        let leaf = prop_oneof![3 => leaf, 1 => between];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
                prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::Or),
                inner.prop_map(|f| !f),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn count_scan_and_search_equal_the_per_record_evaluation(
            rows in prop::collection::vec(metadata(), 1..40),
            filters in prop::collection::vec(filter(), 1..12),
            unindexed in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut opts = Options::new(2, Metric::L2);
            if unindexed {
                // Answered by reading rows' metadata instead of the indexes.
                opts = opts.unindexed_fields(["o", "tags"]);
            }
            let db = Db::open(dir.path(), opts).unwrap();
            let mut b = WriteBatch::new();
            for (i, m) in rows.iter().enumerate() {
                b.upsert_record(i as u64, &[i as f32, 0.0], m.as_ref(), None);
            }
            db.write(b).unwrap();
            let empty = Metadata::new();
            // The memtable's index, then the segment's, then the segment's with a
            // deleted row.
            for (phase, deleted) in [("memtable", 0u64), ("segment", 0), ("segment", 1)] {
                match (phase, deleted) {
                    ("memtable", _) => db.delete(0).unwrap(),
                    (_, 0) => db.flush().unwrap(),
                    _ => db.delete(1).unwrap(),
                }
                for f in &filters {
                    let want: Vec<u64> = rows
                        .iter()
                        .enumerate()
                        .skip(deleted as usize + 1)
                        .filter(|(_, m)| f.matches(m.as_ref().unwrap_or(&empty)))
                        .map(|(i, _)| i as u64)
                        .collect();
                    let what = format!("{phase}: {}", f.to_json());
                    prop_assert_eq!(db.count(Some(f)).unwrap(), want.len() as u64, "{}", what);
                    let got: Vec<u64> = db
                        .scan(Some(f), None, 100)
                        .unwrap()
                        .records
                        .iter()
                        .map(|r| r.id)
                        .collect();
                    prop_assert_eq!(&got, &want, "{}", what);
                    let o = strata::SearchOptions {
                        filter: Some(f.clone()),
                        ..strata::SearchOptions::exact(100)
                    };
                    let mut found: Vec<u64> =
                        db.search(&[0.0, 0.0], &o).unwrap().iter().map(|h| h.id).collect();
                    found.sort_unstable();
                    prop_assert_eq!(found, want, "search, {}", what);
                }
            }
            // delete_by_filter removes exactly the live records that pass.
            let f = &filters[0];
            let live: Vec<u64> = (2..rows.len() as u64).collect();
            let (gone, kept): (Vec<u64>, Vec<u64>) = live
                .into_iter()
                .partition(|&i| f.matches(rows[i as usize].as_ref().unwrap_or(&empty)));
            prop_assert_eq!(db.delete_by_filter(f).unwrap(), gone.len() as u64);
            let left: Vec<u64> = db
                .scan(None, None, 100)
                .unwrap()
                .records
                .iter()
                .map(|r| r.id)
                .collect();
            prop_assert_eq!(left, kept, "after delete_by_filter {}", f.to_json());
        }
    }
}

#[test]
fn unselective_filters_walk_the_graph_and_keep_recall() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 16;
    let opts = Options::new(dim, Metric::L2).index(strata_tests::workload::small_index(64, 64));
    let db = Db::open(dir.path(), opts).unwrap();
    let mut rng = common::rng(17);
    let mut model = Model::new();
    let mut b = WriteBatch::new();
    for i in 0..20_000u64 {
        let v = common::vector(&mut rng, dim);
        let m = Metadata::from_json_str(&format!(r#"{{"half": {}, "k": {}}}"#, i % 2, i % 100))
            .unwrap();
        b.upsert_record(i, &v, Some(&m), None);
        model.insert(i, (v, Some(m)));
    }
    db.write(b).unwrap();
    db.flush().unwrap();
    assert!(db.stats().unwrap().indexed_segments >= 1);
    // Deleted rows in the segment: the walk and the scans must skip them.
    let mut b = WriteBatch::new();
    for i in (0..20_000u64).step_by(13) {
        b.delete(i);
        model.remove(&i);
    }
    db.write(b).unwrap();
    db.flush().unwrap();
    let cases = [
        (r#"{"half": 0}"#, 0.9),
        (r#"{"k": 7}"#, 1.0),
        // Ranges on a path of integers are tested row by row, not built as row sets.
        (r#"{"k": {"$gte": 10, "$lt": 60}}"#, 0.9),
        (r#"{"k": {"$gt": 97.5}}"#, 1.0),
        (r#"{"k": {"$lte": 1, "$gt": -3}, "half": 1}"#, 1.0),
    ];
    for (filter, min_recall) in cases {
        let f = Filter::from_json_str(filter).unwrap();
        let mut hit = 0;
        let mut total = 0;
        for _ in 0..40 {
            let q = common::vector(&mut rng, dim);
            let want = expected(&model, &q, &f, 10);
            let opts = SearchOptions {
                filter: Some(f.clone()),
                ..SearchOptions::new(10)
            };
            let got: Vec<u64> = db.search(&q, &opts).unwrap().iter().map(|h| h.id).collect();
            assert_eq!(got.len(), 10);
            let empty = Metadata::new();
            assert!(got
                .iter()
                .all(|id| f.matches(model[id].1.as_ref().unwrap_or(&empty))));
            hit += got.iter().filter(|id| want.contains(id)).count();
            total += want.len();
            let exact = SearchOptions {
                exact: true,
                ..opts
            };
            let got: Vec<u64> = db
                .search(&q, &exact)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            assert_eq!(got, want, "exact {filter}");
        }
        let recall = hit as f64 / total as f64;
        assert!(recall >= min_recall, "{filter}: recall {recall}");
    }
}
