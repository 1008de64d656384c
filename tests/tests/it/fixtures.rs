//! Stores written by earlier versions open, read, take new writes and compact with this
//! build (`tests/fixtures/README.md` says what each holds).

use std::path::Path;

use strata::{Db, Filter, Metadata, Metric, Options, SearchOptions, WriteBatch};

use strata_tests::fixtures::vector;

fn copy_fixture(name: &str, to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn check_v2_content(db: &Db) {
    for id in [0u64, 5, 21, 599, 600, 649] {
        let r = db.get(id).unwrap().unwrap_or_else(|| panic!("id {id}"));
        assert_eq!(r.vector, vector(id), "id {id}");
        let payload = (id.is_multiple_of(5) && id < 600).then(|| format!("p{id}").into_bytes());
        assert_eq!(r.payload, payload, "id {id}");
        assert_eq!(r.metadata, None);
    }
    for id in [10u64, 15, 19, 650] {
        assert!(db.get(id).unwrap().is_none(), "id {id}");
    }
    // Ids 97 apart share a vector: the nearest are at distance 0, among them 123.
    let hits = db.search(&vector(123), &SearchOptions::exact(8)).unwrap();
    assert_eq!(hits[0].distance, 0.0);
    assert!(hits.iter().any(|h| h.id == 123), "{hits:?}");
}

#[test]
fn a_version_2_store_opens_reads_takes_writes_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("store-v2", dir.path());
    strata::verify(dir.path()).unwrap();
    let ro = strata::ReadOnlyDb::open(dir.path()).unwrap();
    assert_eq!((ro.len(), ro.dim(), ro.metric()), (640, 8, Metric::L2));
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.len(), 640);
    check_v2_content(&db);
    // New records with metadata go to a new-version segment beside the old one.
    let mut b = WriteBatch::new();
    for id in 1000..1100u64 {
        let m = Metadata::from_json_str(&format!(r#"{{"batch": "new", "n": {id}}}"#)).unwrap();
        b.upsert_record(id, &vector(id), Some(&m), None);
    }
    db.write(b).unwrap();
    db.flush().unwrap();
    let only_new = SearchOptions {
        filter: Some(Filter::eq("batch", "new")),
        ..SearchOptions::new(5)
    };
    let hits = db.search(&vector(7), &only_new).unwrap();
    assert!(
        hits.len() == 5 && hits.iter().all(|h| h.id >= 1000),
        "{hits:?}"
    );
    // A merge of the old segment with the new one keeps both kinds of rows.
    db.compact(true, &|_, _, _| true).unwrap();
    assert_eq!(db.len(), 740);
    check_v2_content(&db);
    assert_eq!(
        db.get(1050).unwrap().unwrap().metadata,
        Some(Metadata::from_json_str(r#"{"batch": "new", "n": 1050}"#).unwrap())
    );
    db.close().unwrap();
    strata::verify(dir.path()).unwrap();
}

/// The metadata `store-v3` holds for `id` (on even ids below 300 and every id from 300).
fn v3_metadata(id: u64) -> Option<Metadata> {
    let tag = if id.is_multiple_of(4) { "a" } else { "b" };
    let text = format!(
        r#"{{"n": {id}, "group": {}, "tags": ["{tag}", "t{}"], "o": {{"even": {}}}}}"#,
        id % 3,
        id % 7,
        id.is_multiple_of(2)
    );
    (id.is_multiple_of(2) || id >= 300).then(|| Metadata::from_json_str(&text).unwrap())
}

fn v3_live(id: u64) -> bool {
    id < 340 && !(10..20).contains(&id)
}

fn check_v3_content(db: &Db) {
    for id in [0u64, 1, 5, 20, 299, 300, 339] {
        let r = db.get(id).unwrap().unwrap_or_else(|| panic!("id {id}"));
        assert_eq!(r.vector, vector(id), "id {id}");
        let payload = (id.is_multiple_of(5) && id < 300).then(|| format!("p{id}").into_bytes());
        assert_eq!(r.payload, payload, "id {id}");
        assert_eq!(r.metadata, v3_metadata(id), "id {id}");
    }
    for id in [10u64, 19, 340] {
        assert!(db.get(id).unwrap().is_none(), "id {id}");
    }
    // Filters over the segment's and the log's metadata agree with the model.
    let f = Filter::from_json_str(r#"{"group": 0, "tags": {"$contains": "a"}}"#).unwrap();
    let want: Vec<u64> = (0..340)
        .filter(|&id| v3_live(id))
        .filter(|&id| v3_metadata(id).is_some_and(|m| f.matches(&m)))
        .collect();
    assert!(want.len() > 10);
    assert_eq!(db.count(Some(&f)).unwrap(), want.len() as u64);
    let o = SearchOptions {
        filter: Some(f),
        ..SearchOptions::new(want.len() + 5)
    };
    let mut got: Vec<u64> = db
        .search(&vector(3), &o)
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    got.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn a_version_3_store_with_metadata_opens_reads_filters_takes_writes_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("store-v3", dir.path());
    strata::verify(dir.path()).unwrap();
    let ro = strata::ReadOnlyDb::open(dir.path()).unwrap();
    assert_eq!((ro.len(), ro.dim(), ro.metric()), (330, 8, Metric::L2));
    assert_eq!(ro.keys(), strata::KeyKind::U64);
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.len(), 330);
    check_v3_content(&db);
    let mut b = WriteBatch::new();
    for id in 1000..1100u64 {
        b.upsert(id, &vector(id));
    }
    db.write(b).unwrap();
    db.flush().unwrap();
    db.compact(true, &|_, _, _| true).unwrap();
    assert_eq!(db.len(), 430);
    check_v3_content(&db);
    db.close().unwrap();
    strata::verify(dir.path()).unwrap();
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    check_v3_content(&db);
}

/// The metadata `store-v4` holds for key `doc/{id}`: `store-v3`'s, on the same rows.
fn v4_metadata(id: u64) -> Option<Metadata> {
    v3_metadata(id)
}

fn check_v4_content(db: &Db) {
    check_keyed_content(db, Tolerance::EXACT);
}

/// How far a vector component read back may be from the one written: `relative` of its
/// magnitude (a float codec) plus `absolute` (`int8`: half a step of its segment's grid).
#[derive(Clone, Copy)]
struct Tolerance {
    relative: f32,
    absolute: f32,
}

impl Tolerance {
    const EXACT: Tolerance = Tolerance {
        relative: 0.0,
        absolute: 0.0,
    };
}

/// `store-v4`'s content (also `store-v5`'s and `store-v5-int8`'s), each vector
/// component read back within `tolerance`.
fn check_keyed_content(db: &Db, tolerance: Tolerance) {
    for id in [0u64, 1, 5, 20, 299, 300, 339] {
        let key = format!("doc/{id}");
        let r = db.get_key(&key).unwrap().unwrap_or_else(|| panic!("{key}"));
        assert_eq!(r.key.as_deref(), Some(key.as_str()));
        for (a, b) in r.vector.iter().zip(vector(id)) {
            let allowed = b.abs() * tolerance.relative + tolerance.absolute;
            assert!((a - b).abs() <= allowed, "{key}: {a} for {b}");
        }
        assert_eq!(r.vector.len(), 8);
        let payload = (id.is_multiple_of(5) && id < 300).then(|| format!("p{id}").into_bytes());
        assert_eq!(r.payload, payload, "{key}");
        assert_eq!(r.metadata, v4_metadata(id), "{key}");
    }
    for id in [10u64, 19, 340] {
        assert!(
            db.get_key(&format!("doc/{id}")).unwrap().is_none(),
            "id {id}"
        );
    }
    // The segment's field index and the log's metadata agree with the model.
    let f = Filter::from_json_str(r#"{"group": 0, "n": {"$gte": 30}, "tags": {"$contains": "a"}}"#)
        .unwrap();
    let mut want: Vec<String> = (0..340)
        .filter(|&id| v3_live(id))
        .filter(|&id| v4_metadata(id).is_some_and(|m| f.matches(&m)))
        .map(|id| format!("doc/{id}"))
        .collect();
    want.sort_unstable();
    assert!(want.len() > 10);
    assert_eq!(db.count(Some(&f)).unwrap(), want.len() as u64);
    let o = SearchOptions {
        filter: Some(f),
        ..SearchOptions::new(want.len() + 5)
    };
    let mut got: Vec<String> = db
        .search(&vector(3), &o)
        .unwrap()
        .iter()
        .map(|h| h.key.clone().expect("a string-keyed hit"))
        .collect();
    got.sort_unstable();
    assert_eq!(got, want);
    // The graph search finds an exact duplicate (ids 97 apart share a vector): at
    // distance 0, or as far as the codec moved it (8 components).
    let hits = db.search(&vector(123), &SearchOptions::new(4)).unwrap();
    let moved = 8.0 * (0.5f32 * tolerance.relative + tolerance.absolute).powi(2);
    assert!(hits[0].distance <= moved, "{hits:?}");
    let twins = ["doc/26", "doc/123", "doc/220", "doc/317"];
    assert!(
        twins.contains(&hits[0].key.as_deref().unwrap_or("")),
        "{hits:?}"
    );
}

/// A store holding `store-v4`'s content: takes 100 new keys and a delete, flushes and
/// compacts to one segment, takes the deleted key back, and reads the same after a
/// reopen with `reopen` (vectors within `tolerance`, as [`check_keyed_content`]).
fn keyed_store_takes_writes_compacts_and_reopens(
    db: Db,
    dir: &Path,
    tolerance: Tolerance,
    reopen: Options,
) {
    let mut b = WriteBatch::new();
    for id in 1000..1100u64 {
        b.upsert_keyed(&format!("doc/{id}"), &vector(id), None, None);
    }
    b.delete_key("doc/0");
    db.write(b).unwrap();
    db.flush().unwrap();
    db.compact(true, &|_, _, _| true).unwrap();
    assert_eq!(db.len(), 429);
    db.upsert_key("doc/0", &vector(0), v4_metadata(0).as_ref(), Some(b"p0"))
        .unwrap();
    check_keyed_content(&db, tolerance);
    db.close().unwrap();
    strata::verify(dir).unwrap();
    let db = Db::open(dir, reopen).unwrap();
    check_keyed_content(&db, tolerance);
}

#[test]
fn a_version_4_store_with_string_keys_opens_reads_filters_takes_writes_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("store-v4", dir.path());
    strata::verify(dir.path()).unwrap();
    let ro = strata::ReadOnlyDb::open(dir.path()).unwrap();
    assert_eq!((ro.len(), ro.dim(), ro.metric()), (330, 8, Metric::L2));
    assert_eq!(ro.keys(), strata::KeyKind::String);
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.len(), 330);
    check_v4_content(&db);
    keyed_store_takes_writes_compacts_and_reopens(
        db,
        dir.path(),
        Tolerance::EXACT,
        Options::existing(),
    );
}

/// Copies the version-5 fixture `name` (330 records of 8-d L2 vectors in `codec`, 300 of
/// them in one indexed segment in spatial order), checks that it verifies and opens
/// read-only, then opens it: the directory, the store, and its segment's summary.
fn open_v5_fixture(
    name: &str,
    codec: strata::VectorCodec,
) -> (tempfile::TempDir, Db, strata::SegmentStats) {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(name, dir.path());
    strata::verify(dir.path()).unwrap();
    let ro = strata::ReadOnlyDb::open(dir.path()).unwrap();
    assert_eq!((ro.len(), ro.dim(), ro.metric()), (330, 8, Metric::L2));
    assert_eq!(ro.vector_codec(), codec);
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    let seg = db.stats().unwrap().segments[0].clone();
    assert_eq!(
        (seg.rows, seg.row_order, seg.indexed),
        (300, "spatial", true)
    );
    (dir, db, seg)
}

#[test]
fn a_version_5_store_with_f16_vectors_in_spatial_order_opens_reads_filters_and_compacts() {
    let (dir, db, _) = open_v5_fixture("store-v5", strata::VectorCodec::F16);
    // Half precision: within 2^-11 of each component's magnitude.
    let tolerance = Tolerance {
        relative: 1.0 / 2048.0,
        absolute: 0.0,
    };
    check_keyed_content(&db, tolerance);
    let reopen = Options::existing().resident_front(true);
    keyed_store_takes_writes_compacts_and_reopens(db, dir.path(), tolerance, reopen);
}

#[test]
fn a_version_5_store_of_int8_vectors_without_pq_codes_opens_reads_filters_and_compacts() {
    let (dir, db, seg) = open_v5_fixture("store-v5-int8", strata::VectorCodec::Int8);
    let index = seg.index.as_ref().expect("an index");
    assert_eq!(index.pq_bytes, 0, "no PQ codes");
    // Components in [-0.5, 0.5): a step of the grid is at most 1/255; a merge moves a
    // row by at most half a step of its new grid, so one step covers the compaction.
    let tolerance = Tolerance {
        relative: 0.0,
        absolute: 1.0 / 255.0,
    };
    check_keyed_content(&db, tolerance);
    keyed_store_takes_writes_compacts_and_reopens(db, dir.path(), tolerance, Options::existing());
}

use strata_tests::fixtures::{v6_live, v6_text};

/// `store-v6-text` answers text searches exactly as BM25 over its texts.
fn check_v6_text(db: &Db) {
    let docs: Vec<(u64, String)> = (0..340)
        .filter(|&id| v6_live(id))
        .filter_map(|id| v6_text(id).map(|t| (id, t)))
        .collect();
    for id in [0u64, 1, 9, 10, 21, 299, 300, 339] {
        let r = db.get(id).unwrap();
        assert_eq!(
            r.as_ref().map(|r| r.vector.clone()),
            v6_live(id).then(|| vector(id))
        );
        assert_eq!(
            r.and_then(|r| r.text),
            v6_text(id).filter(|_| v6_live(id)),
            "id {id}"
        );
    }
    for q in [
        "mounted file",
        "socket",
        "процесса",
        "北京",
        "record 301",
        "pipe signal",
    ] {
        let hits = db.text_search(q, &SearchOptions::new(20)).unwrap();
        let got: Vec<(u64, f32)> = hits.iter().map(|h| (h.id, -h.distance)).collect();
        let all = docs.iter().map(|(id, t)| (*id, t.as_str()));
        let want = strata_tests::text::bm25_top(all, strata::Analyzer::English, q, 20, |_| true);
        assert!(!want.is_empty(), "{q}");
        if let Err(e) = strata_tests::text::same_ranking(&got, &want) {
            panic!("{q}: {e}");
        }
    }
}

#[test]
fn a_version_6_store_with_text_opens_searches_text_takes_writes_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("store-v6-text", dir.path());
    strata::verify(dir.path()).unwrap();
    let ro = strata::ReadOnlyDb::open(dir.path()).unwrap();
    assert_eq!(ro.analyzer(), strata::Analyzer::English);
    assert_eq!(ro.len(), 330);
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    let seg = db.stats().unwrap().segments[0].clone();
    assert_eq!((seg.rows, seg.indexed), (300, true));
    check_v6_text(&db);
    db.flush().unwrap();
    db.compact(true, &|_, _, _| true).unwrap();
    check_v6_text(&db);
    let mut b = WriteBatch::new();
    b.upsert_text(
        1000,
        &vector(1000),
        "a new record about sockets",
        None,
        None,
    );
    db.write(b).unwrap();
    let hits = db.text_search("sockets", &SearchOptions::new(100)).unwrap();
    assert!(hits.iter().any(|h| h.id == 1000));
    db.close().unwrap();
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(
        db.get(1000).unwrap().unwrap().text.as_deref(),
        Some("a new record about sockets")
    );
}
