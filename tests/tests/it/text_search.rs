//! Full-text search: exact BM25 top-k against an exhaustive reference, scores that do
//! not depend on how rows are split into segments, findable right after the write,
//! through flushes, compactions, deletes, filters and reopen; analyzers recorded in the
//! store.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::Rng;
use strata::{Analyzer, Db, Filter, Metric, Options, SearchOptions, WriteBatch};

use crate::common::{rng, small, vector};

/// A record as the reference sees it: id, text, metadata `{"g": group}`.
#[derive(Debug, Clone)]
struct Doc {
    text: String,
    group: i64,
}

/// Exhaustive BM25 over the live records `docs` (`strata_tests::text::bm25_top`), among
/// those of `group` when given.
fn reference(
    docs: &BTreeMap<u64, Doc>,
    analyzer: Analyzer,
    query: &str,
    k: usize,
    group: Option<i64>,
) -> Vec<(u64, f32)> {
    let all = docs.iter().map(|(&id, d)| (id, d.text.as_str()));
    let keep = |id: u64| group.is_none_or(|g| docs.get(&id).is_some_and(|d| d.group == g));
    strata_tests::text::bm25_top(all, analyzer, query, k, keep)
}

/// Asserts the store's top-k equals the reference's (`strata_tests::text::same_ranking`).
fn assert_same(got: &[strata::Hit], want: &[(u64, f32)], what: &str) {
    let got: Vec<(u64, f32)> = got.iter().map(|h| (h.id, -h.distance)).collect();
    if let Err(e) = strata_tests::text::same_ranking(&got, want) {
        panic!("{what}: {e}\n{got:?}\n{want:?}");
    }
}

const WORDS: [&str; 24] = [
    "kernel", "module", "Café", "résumé", "network", "socket", "file", "files", "system", "the",
    "a", "of", "mount", "disk", "ENOENT", "error", "pipe", "signal", "process", "thread", "memory",
    "page", "cache", "ключ",
];

/// A text of Zipf-like word frequencies (early words common).
fn text(rng: &mut impl Rng) -> String {
    let len = rng.random_range(0..14);
    (0..len)
        .map(|_| {
            let r: f64 = rng.random();
            WORDS[((r * r * r) * WORDS.len() as f64) as usize]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn queries() -> Vec<&'static str> {
    vec![
        "kernel",
        "file system",
        "the",
        "cafe resume",
        "ENOENT error",
        "socket pipe signal",
        "ключ",
        "memory page cache thread",
        "unknown",
        "",
        "files file FILE",
    ]
}

fn write(db: &Db, id: u64, doc: &Doc, rng: &mut impl Rng) {
    let m = strata::Metadata::from_json_str(&format!(r#"{{"g": {}}}"#, doc.group)).unwrap();
    let mut b = WriteBatch::new();
    b.upsert_text(id, &vector(rng, 4), &doc.text, Some(&m), None);
    db.write(b).unwrap();
}

fn check_all(db: &Db, docs: &BTreeMap<u64, Doc>, analyzer: Analyzer, what: &str) {
    for q in queries() {
        for k in [1, 5, 30] {
            for group in [None, Some(1)] {
                let mut o = SearchOptions::new(k);
                o.filter = group.map(|g| Filter::eq("g", g));
                let got = db.text_search(q, &o).unwrap();
                let want = reference(docs, analyzer, q, k, group);
                assert_same(&got, &want, &format!("{what}: {q:?} k {k} group {group:?}"));
            }
        }
    }
}

#[test]
fn text_search_is_exact_through_flushes_deletes_updates_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(41);
    let opts = || small(4, Metric::L2).analyzer(Analyzer::English);
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut docs = BTreeMap::new();
    for round in 0..4 {
        for _ in 0..150 {
            let id = r.random_range(0..400u64);
            let doc = Doc {
                text: text(&mut r),
                group: r.random_range(0..3),
            };
            write(&db, id, &doc, &mut r);
            docs.insert(id, doc);
        }
        for _ in 0..20 {
            let id = r.random_range(0..400u64);
            db.delete(id).unwrap();
            docs.remove(&id);
        }
        check_all(&db, &docs, Analyzer::English, &format!("round {round}"));
    }
    db.flush().unwrap();
    assert!(db.stats().unwrap().segments.len() > 1, "several segments");
    check_all(&db, &docs, Analyzer::English, "flushed");
    db.compact(true, &|_, _, _| true).unwrap();
    check_all(&db, &docs, Analyzer::English, "compacted");
    drop(db);
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.analyzer(), Analyzer::English);
    check_all(&db, &docs, Analyzer::English, "reopened");
}

/// The same rows in one segment or in five (and in a memtable): the same scores, to
/// the last bit.
#[test]
fn scores_do_not_depend_on_how_rows_are_split_into_segments() {
    let mut r = rng(42);
    let docs: Vec<Doc> = (0..500)
        .map(|_| Doc {
            text: text(&mut r),
            group: 0,
        })
        .collect();
    let results = |split: usize| {
        let dir = tempfile::tempdir().unwrap();
        let o = Options::new(4, Metric::L2)
            .background_compaction(false)
            .index(strata_tests::workload::small_index(64, 32));
        let db = Db::open(dir.path(), o).unwrap();
        let mut r = rng(7);
        for (i, d) in docs.iter().enumerate() {
            write(&db, i as u64, d, &mut r);
            if split > 0 && (i + 1) % (docs.len() / split) == 0 {
                db.flush().unwrap();
            }
        }
        let segments = db.stats().unwrap().segments.len();
        let all: Vec<Vec<(u64, u32)>> = queries()
            .iter()
            .map(|q| {
                db.text_search(q, &SearchOptions::new(50))
                    .unwrap()
                    .iter()
                    .map(|h| (h.id, h.distance.to_bits()))
                    .collect()
            })
            .collect();
        (segments, all)
    };
    let (none, in_memtable) = results(0);
    let (one, in_one) = results(1);
    let (five, in_five) = results(5);
    assert_eq!((none, one, five), (0, 1, 5));
    assert_eq!(in_memtable, in_one);
    assert_eq!(in_one, in_five);
}

#[test]
fn text_is_stored_returned_and_findable_right_after_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(2, Metric::L2)).unwrap();
    let mut b = WriteBatch::new();
    b.upsert_text(1, &[1.0, 0.0], "Zebras grazing", None, None);
    db.write(b).unwrap();
    let mut o = SearchOptions::new(3);
    o.with_text = true;
    let hits = db.text_search("ZEBRAS", &o).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].text.as_deref(), Some("Zebras grazing"));
    assert_eq!(
        db.get(1).unwrap().unwrap().text.as_deref(),
        Some("Zebras grazing")
    );
    // Replaced without text: no longer found by text, and has none.
    db.upsert(1, &[0.0, 1.0]).unwrap();
    assert!(db.text_search("zebras", &o).unwrap().is_empty());
    assert_eq!(db.get(1).unwrap().unwrap().text, None);
    // Vector hits carry text on request too.
    let mut b = WriteBatch::new();
    b.upsert_text(2, &[1.0, 1.0], "lions", None, None);
    db.write(b).unwrap();
    db.flush().unwrap();
    let hits = db.search(&[1.0, 1.0], &o).unwrap();
    assert_eq!(hits[0].text.as_deref(), Some("lions"));
    assert_eq!(
        db.text_search("lion", &o).unwrap().len(),
        0,
        "no stemming by default"
    );
}

#[test]
fn the_analyzer_is_recorded_and_a_different_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(2, Metric::L2).analyzer(Analyzer::Cjk)).unwrap();
    let mut b = WriteBatch::new();
    b.upsert_text(1, &[1.0, 0.0], "我爱北京天安门", None, None)
        .upsert_text(2, &[1.0, 0.0], "北海道の天気", None, None)
        .upsert_text(3, &[1.0, 0.0], "한국어 텍스트 검색", None, None);
    db.write(b).unwrap();
    let ids = |db: &Db, q: &str| -> Vec<u64> {
        db.text_search(q, &SearchOptions::new(5))
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect()
    };
    assert_eq!(ids(&db, "北京"), [1]);
    assert_eq!(ids(&db, "天安门"), [1]);
    assert_eq!(ids(&db, "天気"), [2]);
    assert_eq!(ids(&db, "텍스트"), [3]);
    db.close().unwrap();
    let Err(err) = Db::open(dir.path(), Options::existing().analyzer(Analyzer::English)) else {
        panic!("opened with another analyzer");
    };
    assert!(
        matches!(
            err,
            strata::Error::InvalidArgument(strata::InvalidArgument::AnalyzerMismatch { .. })
        ),
        "{err}"
    );
    let db = Db::open(dir.path(), Options::existing().analyzer(Analyzer::Cjk)).unwrap();
    db.flush().unwrap();
    assert_eq!(ids(&db, "北京"), [1]);
}

#[test]
fn bm25_parameters_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(2, Metric::L2)).unwrap();
    let mut b = WriteBatch::new();
    b.upsert_text(1, &[1.0, 0.0], "words", None, None);
    db.write(b).unwrap();
    for (k1, b) in [
        (-0.5, 0.75),
        (1.2, 1.5),
        (1.2, -0.1),
        (f32::NAN, 0.5),
        (f32::INFINITY, 0.5),
    ] {
        let mut o = SearchOptions::new(3);
        o.bm25 = strata::Bm25 { k1, b };
        let err = db.text_search("words", &o).unwrap_err();
        assert!(
            matches!(
                err,
                strata::Error::InvalidArgument(strata::InvalidArgument::Bm25 { .. })
            ),
            "k1 {k1} b {b}: {err}"
        );
        assert!(db
            .hybrid_search(&[1.0, 0.0], "words", &o, &strata::Fusion::rrf())
            .is_err());
    }
    let mut o = SearchOptions::new(3);
    o.bm25 = strata::Bm25 { k1: 0.0, b: 1.0 };
    assert_eq!(db.text_search("words", &o).unwrap().len(), 1);
}

#[test]
fn text_over_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(2, Metric::L2)).unwrap();
    let long = "x".repeat(strata::MAX_TEXT_LEN + 1);
    let mut b = WriteBatch::new();
    b.upsert_text(1, &[1.0, 0.0], &long, None, None);
    let err = db.write(b).unwrap_err();
    assert!(err.to_string().contains("text of"), "{err}");
    assert!(db.get(1).unwrap().is_none());
}

/// An operation of the text model.
#[derive(Debug, Clone)]
enum Action {
    Write(u64, usize, i64),
    Delete(u64),
    Flush,
    Compact,
    Search(usize, usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0..40u64, 0..64usize, 0..2i64).prop_map(|(id, t, g)| Action::Write(id, t, g)),
        2 => (0..40u64).prop_map(Action::Delete),
        1 => Just(Action::Flush),
        1 => Just(Action::Compact),
        3 => (0..11usize, 1..12usize).prop_map(|(q, k)| Action::Search(q, k)),
    ]
}

/// The `i`-th text of the model's fixed set.
fn model_text(i: usize) -> String {
    let mut r = crate::common::rng(i as u64 + 1000);
    text(&mut r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Text search equals exhaustive BM25 over a map of the live records, through
    /// writes, deletes, flushes and compactions.
    #[test]
    fn text_search_equals_exhaustive_bm25_over_the_model(
        actions in prop::collection::vec(action(), 1..50)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), small(4, Metric::L2).background_compaction(false)).unwrap();
        let mut model = BTreeMap::new();
        let mut r = rng(3);
        for a in actions {
            match a {
                Action::Write(id, t, group) => {
                    let doc = Doc { text: model_text(t), group };
                    write(&db, id, &doc, &mut r);
                    model.insert(id, doc);
                }
                Action::Delete(id) => {
                    db.delete(id).unwrap();
                    model.remove(&id);
                }
                Action::Flush => db.flush().unwrap(),
                Action::Compact => db.compact(true, &|_, _, _| true).map(|_| ()).unwrap(),
                Action::Search(q, k) => {
                    let q = queries()[q];
                    let got = db.text_search(q, &SearchOptions::new(k)).unwrap();
                    let want = reference(&model, Analyzer::Default, q, k, None);
                    assert_same(&got, &want, q);
                }
            }
        }
    }
}

/// The fusion of two rankings, written out independently of the store: RRF or
/// min-max-normalised weighted scores; best first, ties by id.
fn fuse_reference(
    vector: &[strata::Hit],
    text: &[strata::Hit],
    fusion: &strata::Fusion,
    k: usize,
) -> Vec<(u64, f32)> {
    let mut score: BTreeMap<u64, f64> = BTreeMap::new();
    match fusion.method {
        strata::FusionMethod::Rrf {
            k: c,
            vector_weight,
            text_weight,
        } => {
            for (list, w) in [(vector, vector_weight), (text, text_weight)] {
                for (i, h) in list.iter().enumerate() {
                    *score.entry(h.id).or_default() += w as f64 / (c as f64 + i as f64 + 1.0);
                }
            }
        }
        strata::FusionMethod::Weighted { alpha } => {
            for (list, w) in [(vector, alpha as f64), (text, 1.0 - alpha as f64)] {
                let s: Vec<f64> = list.iter().map(|h| -(h.distance as f64)).collect();
                let (lo, hi) = s
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
                for (h, x) in list.iter().zip(&s) {
                    let norm = if hi > lo { (x - lo) / (hi - lo) } else { 1.0 };
                    *score.entry(h.id).or_default() += w * norm;
                }
            }
        }
    }
    let mut all: Vec<(u64, f32)> = score.into_iter().map(|(id, s)| (id, s as f32)).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[test]
fn hybrid_fuses_the_vector_and_text_rankings_under_one_filter() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(43);
    let db = Db::open(dir.path(), small(4, Metric::Cosine)).unwrap();
    for id in 0..400u64 {
        let doc = Doc {
            text: text(&mut r),
            group: r.random_range(0..3),
        };
        write(&db, id, &doc, &mut r);
        if id == 250 {
            db.flush().unwrap();
        }
    }
    for (qi, q) in ["kernel module", "file system error", "ключ"]
        .iter()
        .enumerate()
    {
        let v = vector(&mut r, 4);
        for fusion in [strata::Fusion::rrf(), strata::Fusion::weighted(0.3)] {
            for group in [None, Some(1)] {
                let fusion = fusion.with_candidates(40);
                let mut o = SearchOptions::new(10);
                o.filter = group.map(|g| Filter::eq("g", g));
                o.with_metadata = true;
                let got = db.hybrid_search(&v, q, &o, &fusion).unwrap();
                let side = SearchOptions { k: 40, ..o.clone() };
                let want = fuse_reference(
                    &db.search(&v, &side).unwrap(),
                    &db.text_search(q, &side).unwrap(),
                    &fusion,
                    10,
                );
                let what = format!("query {qi} {fusion:?} group {group:?}");
                assert_same(&got, &want, &what);
                assert_eq!(got.len(), 10, "{what}");
                if let Some(g) = group {
                    for h in &got {
                        let m = h.metadata.as_ref().expect("metadata asked for");
                        assert_eq!(m.get("g"), Some(&strata::MetaValue::Int(g)), "{what}");
                    }
                }
            }
        }
    }
    let bad = strata::Fusion::weighted(2.0);
    assert!(db
        .hybrid_search(&[1.0; 4], "x", &SearchOptions::new(3), &bad)
        .is_err());
}
