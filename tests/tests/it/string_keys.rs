//! Stores of string keys: exact keys through upserts, replaces, deletes, flushes,
//! compactions, crashes and read-only handles; and the refusals of the wrong kind of key.

use std::collections::BTreeMap;

use strata::{
    Db, Error, InvalidArgument, KeyKind, Metadata, Metric, Options, SearchOptions, WriteBatch,
    MAX_KEY_LEN,
};

use crate::common::{rng, small, vector};

const DIM: usize = 8;

fn keyed(dir: &std::path::Path) -> Db {
    Db::open(dir, small(DIM, Metric::L2).keys(KeyKind::String)).expect("open")
}

/// Keys that are near each other in every way a careless encoding could merge: prefixes,
/// case, Unicode normalisation forms, embedded NUL, the longest allowed.
fn tricky_keys() -> Vec<String> {
    let mut keys: Vec<String> = vec![
        "a".into(),
        "a ".into(),
        "A".into(),
        "a\0".into(),
        "\u{e9}".into(),
        "e\u{301}".into(),
        "user:1".into(),
        "user:10".into(),
        "user:1:".into(),
        "x".repeat(MAX_KEY_LEN),
        format!("{}y", "x".repeat(MAX_KEY_LEN - 1)),
        "日本語のキー".into(),
    ];
    keys.extend((0..300).map(|i| format!("doc-{i:04}")));
    keys
}

fn check_all(db: &Db, model: &BTreeMap<String, Vec<f32>>, all_keys: &[String]) {
    for k in all_keys {
        let got = db.get_key(k).expect("get_key");
        match (model.get(k), got) {
            (Some(v), Some(r)) => {
                assert_eq!(&r.vector, v, "key {k:?}");
                assert_eq!(r.key.as_deref(), Some(k.as_str()));
            }
            (None, None) => {}
            (want, got) => panic!("key {k:?}: want {want:?}, got {got:?}"),
        }
    }
    assert_eq!(db.len(), model.len() as u64);
    // An exact search over everything lists every live key once, as its key.
    let hits = db
        .search(&[0.0; DIM], &SearchOptions::exact(model.len() + 5))
        .expect("search");
    let mut found: Vec<String> = hits.into_iter().map(|h| h.key.expect("a key")).collect();
    found.sort();
    let listed: Vec<String> = model.keys().cloned().collect();
    assert_eq!(found, listed);
}

#[test]
fn keys_stay_exact_through_replace_delete_flush_compaction_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(0x5EED);
    let keys = tricky_keys();
    let mut model = BTreeMap::new();
    let db = keyed(dir.path());
    for (i, k) in keys.iter().enumerate() {
        let v = vector(&mut r, DIM);
        db.upsert_key(k, &v, None, None).unwrap();
        model.insert(k.clone(), v);
        if i % 97 == 0 {
            db.flush().unwrap();
        }
    }
    check_all(&db, &model, &keys);
    let id_before = db.get_key("user:1").unwrap().unwrap().id;
    // Replace: same key, same internal id, new vector, even across a flush.
    db.flush().unwrap();
    for k in keys.iter().step_by(3) {
        let v = vector(&mut r, DIM);
        db.upsert_key(k, &v, None, None).unwrap();
        model.insert(k.clone(), v);
    }
    assert_eq!(db.get_key("user:1").unwrap().unwrap().id, id_before);
    check_all(&db, &model, &keys);
    // Delete some, then write a few of them again.
    for k in keys.iter().step_by(4) {
        db.delete_key(k).unwrap();
        model.remove(k);
    }
    db.delete_key("never written").unwrap();
    for k in keys.iter().step_by(8).take(10) {
        let v = vector(&mut r, DIM);
        db.upsert_key(k, &v, None, None).unwrap();
        model.insert(k.clone(), v);
    }
    check_all(&db, &model, &keys);
    db.compact(true, &|_, _, _| true).unwrap();
    check_all(&db, &model, &keys);
    // Writes after the last flush are only in the log: a crash (drop without close)
    // must replay them with their keys.
    let v = vector(&mut r, DIM);
    db.upsert_key("after the flush", &v, None, None).unwrap();
    model.insert("after the flush".into(), v);
    db.delete_key("doc-0001").unwrap();
    model.remove("doc-0001");
    drop(db);
    let mut all = keys.clone();
    all.push("after the flush".into());
    let db = Db::open(dir.path(), Options::existing()).unwrap();
    assert_eq!(db.keys(), KeyKind::String);
    check_all(&db, &model, &all);
    // A key new after the reopen gets an id no earlier key has.
    let ids: std::collections::BTreeSet<u64> = all
        .iter()
        .filter_map(|k| db.get_key(k).unwrap().map(|r| r.id))
        .collect();
    db.upsert_key("fresh", &[1.0; DIM], None, None).unwrap();
    let fresh = db.get_key("fresh").unwrap().unwrap().id;
    assert!(!ids.contains(&fresh), "id {fresh} reused");
    db.close().unwrap();
    let ro = Db::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.keys(), KeyKind::String);
    assert!(ro.get_key("fresh").unwrap().is_some());
    let many = ro.get_many_keys(&["a", "nope", "A"]).unwrap();
    assert_eq!(
        many[0].as_ref().map(|r| r.vector.clone()),
        model.get("a").cloned()
    );
    assert!(many[1].is_none());
}

#[test]
fn a_batch_binds_a_key_once_and_applies_its_operations_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = keyed(dir.path());
    let m = Metadata::from_json_str(r#"{"kind": "fact"}"#).unwrap();
    let mut b = WriteBatch::new();
    b.upsert_keyed("k", &[1.0; DIM], None, None)
        .upsert_keyed("k", &[2.0; DIM], Some(&m), Some(b"p"))
        .delete_key("gone")
        .upsert_keyed("j", &[3.0; DIM], None, None)
        .delete_key("j")
        .upsert_keyed("i", &[4.0; DIM], None, None)
        .delete_key("i")
        .upsert_keyed("i", &[5.0; DIM], None, None);
    db.write(b).unwrap();
    assert_eq!(db.len(), 2);
    let k = db.get_key("k").unwrap().unwrap();
    assert_eq!(k.vector, vec![2.0; DIM]);
    assert_eq!(k.metadata, Some(m));
    assert_eq!(k.payload.as_deref(), Some(&b"p"[..]));
    assert!(db.get_key("j").unwrap().is_none());
    assert!(db.contains_key("k").unwrap() && !db.contains_key("j").unwrap());
    assert_eq!(db.get_key("i").unwrap().unwrap().vector, vec![5.0; DIM]);
    // A batch of only deletes of absent keys writes nothing.
    let mut b = WriteBatch::new();
    b.delete_key("absent");
    db.write(b).unwrap();
    assert_eq!(db.len(), 2);
    // Filters, scans and delete-by-filter work on keyed records and return keys.
    let f = strata::Filter::eq("kind", "fact");
    let page = db.scan(Some(&f), None, 10).unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].key.as_deref(), Some("k"));
    assert_eq!(db.delete_by_filter(&f).unwrap(), 1);
    assert!(db.get_key("k").unwrap().is_none());
}

#[test]
fn the_wrong_kind_of_key_and_bad_keys_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = keyed(dir.path());
    let kind = |e: Error| match e {
        Error::InvalidArgument(a) => matches!(a.reason(), InvalidArgument::KeyKind { .. }),
        _ => false,
    };
    assert!(kind(db.upsert(1, &[1.0; DIM]).unwrap_err()));
    assert!(kind(db.delete(1).unwrap_err()));
    for bad in [String::new(), "x".repeat(MAX_KEY_LEN + 1)] {
        let e = db.upsert_key(&bad, &[1.0; DIM], None, None).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(a) if matches!(a.reason(), InvalidArgument::KeyLength { .. })),
            "{e}"
        );
        assert!(db.get_key(&bad).is_err());
    }
    // One bad operation refuses the whole batch, naming it by key.
    let mut b = WriteBatch::new();
    b.upsert_keyed("fine", &[1.0; DIM], None, None)
        .upsert_keyed("short vector", &[1.0; 3], None, None);
    let e = db.write(b).unwrap_err();
    assert!(e.to_string().contains("key \"short vector\""), "{e}");
    assert!(db.is_empty());
    drop(db);
    // Opening with u64 keys asked for is refused; the store is unchanged.
    let e = Db::open(dir.path(), small(DIM, Metric::L2)).err().unwrap();
    assert!(
        matches!(
            &e,
            Error::InvalidArgument(InvalidArgument::KeysMismatch { .. })
        ),
        "{e}"
    );
    let ids = tempfile::tempdir().unwrap();
    let db = Db::open(ids.path(), small(DIM, Metric::L2)).unwrap();
    assert_eq!(db.keys(), KeyKind::U64);
    assert!(kind(
        db.upsert_key("a", &[1.0; DIM], None, None).unwrap_err()
    ));
    assert!(kind(db.delete_key("a").unwrap_err()));
    assert!(kind(db.get_key("a").unwrap_err()));
    assert!(db
        .search(&[1.0; DIM], &SearchOptions::new(1))
        .unwrap()
        .is_empty());
}

#[test]
fn many_random_keys_never_share_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(0xC011);
    let db = keyed(dir.path());
    let mut model = BTreeMap::new();
    let mut batch = WriteBatch::new();
    for i in 0..5000u32 {
        // Short random keys over a small alphabet: many share prefixes and lengths.
        let len = 1 + (i % 6) as usize;
        let key: String = (0..len)
            .map(|_| char::from(b'a' + rand::Rng::random_range(&mut r, 0..4u8)))
            .collect();
        let v = vector(&mut r, DIM);
        batch.upsert_keyed(&key, &v, None, None);
        model.insert(key, v);
        if batch.len() == 200 {
            db.write(std::mem::take(&mut batch)).unwrap();
        }
    }
    db.write(batch).unwrap();
    let keys: Vec<String> = model.keys().cloned().collect();
    check_all(&db, &model, &keys);
    db.compact(true, &|_, _, _| true).unwrap();
    check_all(&db, &model, &keys);
}
