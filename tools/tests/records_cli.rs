//! The `strata` binary on records: metadata imported, returned and filtered on;
//! count, scan and delete by filter; stores of string keys.

mod common;

use common::{fails, ok, ok_stderr, store_2d, strata, write, write_fvecs};

#[test]
fn metadata_is_imported_returned_and_filters_searches() {
    let t = tempfile::tempdir().unwrap();
    let d = store_2d(&t);
    let rows = write(
        &t,
        "m.jsonl",
        concat!(
            "{\"id\": 1, \"vector\": [1, 1], \"metadata\": {\"kind\": \"fact\", \"ts\": 5}}\n",
            "{\"id\": 2, \"vector\": [1.1, 1], \"metadata\": {\"kind\": \"note\", \"ts\": 9}}\n",
            "{\"id\": 3, \"vector\": [9, 9], \"metadata\": {\"kind\": \"fact\", \"ts\": 7, \"tags\": [\"x\"]}}\n",
            "{\"id\": 4, \"vector\": [1.2, 1]}\n",
        ),
    );
    ok(&["import", &d, &rows]);
    let got: serde_json::Value = serde_json::from_str(&ok(&["get", &d, "3"])).unwrap();
    assert_eq!(
        got["metadata"],
        serde_json::json!({"kind": "fact", "ts": 7, "tags": ["x"]})
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ok(&["get", &d, "4"])).unwrap()["metadata"],
        serde_json::Value::Null
    );
    let q = t.path().join("q.fvecs");
    write_fvecs(&q, &[vec![1.0, 1.0]]);
    let qs = q.to_str().unwrap();
    let ids = |filter: &str| -> serde_json::Value {
        let out = ok(&[
            "search",
            &d,
            "--queries",
            qs,
            "--k",
            "3",
            "--filter",
            filter,
        ]);
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["ids"].clone()
    };
    assert_eq!(ids(r#"{"kind": "fact"}"#), serde_json::json!([1, 3]));
    assert_eq!(ids(r#"{"ts": {"$gt": 6}}"#), serde_json::json!([2, 3]));
    assert_eq!(
        ids(r#"{"kind": {"$exists": false}}"#),
        serde_json::json!([4])
    );
    assert_eq!(
        ids(r#"{"tags": {"$contains": "x"}}"#),
        serde_json::json!([3])
    );
    let e = fails(&[
        "search",
        &d,
        "--queries",
        qs,
        "--filter",
        r#"{"ts": {"$gt": "x"}}"#,
    ]);
    assert!(
        e.contains("--filter is refused") && e.contains("ts.$gt"),
        "{e}"
    );
    let bad = write(
        &t,
        "bad.jsonl",
        "{\"id\": 5, \"vector\": [1, 1], \"metadata\": {\"a.b\": 1}}\n",
    );
    let e = fails(&["import", &d, &bad]);
    assert!(e.contains("line 1") && e.contains("a.b"), "{e}");
}

#[test]
fn count_scan_delete_by_filter_per_query_filters_and_a_metadata_file() {
    let t = tempfile::tempdir().unwrap();
    let d = store_2d(&t);
    let rows: Vec<Vec<f32>> = (0..6).map(|i| vec![i as f32, 0.0]).collect();
    let fv = t.path().join("v.fvecs");
    write_fvecs(&fv, &rows);
    let meta = write(
        &t,
        "meta.jsonl",
        "{\"kind\": \"a\"}\n{\"kind\": \"b\"}\n\n{\"kind\": \"a\", \"n\": 3}\nnull\n{\"kind\": \"b\"}\n",
    );
    let f = fv.to_str().unwrap();
    ok(&["import", &d, f, "--metadata", &meta]);
    assert_eq!(ok(&["count", &d]).trim(), "6");
    let inspect: serde_json::Value = serde_json::from_str(&ok(&["inspect", &d])).unwrap();
    let fields = &inspect["fields"];
    assert_eq!(fields["kind"]["rows"], 4);
    assert_eq!(fields["kind"]["kinds"], serde_json::json!(["string"]));
    assert_eq!(fields["n"]["rows"], 1);
    assert_eq!(fields["n"]["kinds"], serde_json::json!(["int"]));
    // The import's flush wrote the segment's metadata index: its bytes, per path too.
    assert!(
        fields["kind"]["index_bytes"].as_u64().unwrap() > 0,
        "{inspect}"
    );
    assert!(
        fields["n"]["index_bytes"].as_u64().unwrap() > 0,
        "{inspect}"
    );
    assert!(
        inspect["segments"][0]["field_index_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        ok(&["count", &d, "--filter", r#"{"kind": "a"}"#]).trim(),
        "2"
    );
    let out = strata(&[
        "scan",
        &d,
        "--filter",
        r#"{"kind": {"$ne": "b"}}"#,
        "--limit",
        "2",
    ]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["id"].clone(), lines[1]["id"].clone()),
        (0.into(), 2.into())
    );
    assert_eq!(lines[1]["metadata"], serde_json::Value::Null);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--after 2"), "{err}");
    let rest = ok(&[
        "scan",
        &d,
        "--filter",
        r#"{"kind": {"$ne": "b"}}"#,
        "--after",
        "2",
    ]);
    assert_eq!(rest.lines().count(), 2, "{rest}");
    // One filter per query; hits with their metadata.
    let q = t.path().join("q.fvecs");
    write_fvecs(&q, &[vec![0.0, 0.0], vec![0.0, 0.0]]);
    let filters = write(&t, "f.jsonl", "{\"kind\": \"b\"}\n{\"n\": {\"$gte\": 3}}\n");
    let out = ok(&[
        "search",
        &d,
        "--queries",
        q.to_str().unwrap(),
        "--k",
        "1",
        "--filters",
        &filters,
        "--with-metadata",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ids"], serde_json::json!([1]));
    assert_eq!(lines[1]["ids"], serde_json::json!([3]));
    assert_eq!(
        lines[1]["metadata"],
        serde_json::json!([{"kind": "a", "n": 3}])
    );
    let short = write(&t, "short.jsonl", "{\"kind\": \"b\"}\n");
    let e = fails(&[
        "search",
        &d,
        "--queries",
        q.to_str().unwrap(),
        "--filters",
        &short,
    ]);
    assert!(e.contains("1 lines for 2 queries"), "{e}");
    // Delete by filter.
    let err = ok_stderr(&["delete", &d, "--filter", r#"{"kind": "b"}"#]);
    assert!(
        err.contains("deleted 2 records matching the filter"),
        "{err}"
    );
    assert_eq!(ok(&["count", &d]).trim(), "4");
    // A metadata file with a line too many, or a bad line, writes nothing.
    let d2 = t.path().join("s2");
    let d2 = d2.to_str().unwrap();
    ok(&["create", d2, "--dim", "2", "--metric", "l2"]);
    let long = write(&t, "long.jsonl", &"{\"k\": 1}\n".repeat(7));
    let e = fails(&["import", d2, f, "--metadata", &long]);
    assert!(e.contains("more lines than") && e.contains("line 7"), "{e}");
    let bad = write(&t, "bad.jsonl", "{}\n{}\n{\"a.b\": 1}\n{}\n{}\n{}\n");
    let e = fails(&["import", d2, f, "--metadata", &bad]);
    assert!(e.contains("bad.jsonl line 3") && e.contains("a.b"), "{e}");
    assert_eq!(ok(&["count", d2]).trim(), "0");
}

#[test]
fn a_store_of_string_keys_imports_searches_gets_scans_and_deletes_by_key() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    let created = ok(&[
        "create", d, "--dim", "2", "--metric", "l2", "--keys", "string",
    ]);
    assert!(created.contains("string keys"), "{created}");
    let rows = write(
        &t,
        "rows.jsonl",
        concat!(
            r#"{"key": "mem/1", "vector": [0, 0], "metadata": {"user": 42}}"#,
            "\n",
            r#"{"key": "mem/2", "vector": [1, 0], "metadata": {"user": 7}}"#,
            "\n",
            r#"{"key": "ключ", "vector": [2, 0], "metadata": {"user": 42}, "payload": {"t": "x"}}"#,
            "\n",
            r#"{"key": "mem/1", "vector": [0.5, 0]}"#,
            "\n",
        ),
    );
    let report = ok_stderr(&["import", d, &rows]);
    assert!(report.contains("repeat an id (or key)"), "{report}");
    let q = write(&t, "q.jsonl", "{\"vector\": [0, 0]}\n");
    let out = ok(&["search", d, "--queries", &q, "--k", "3"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ids"], serde_json::json!(["mem/1", "mem/2", "ключ"]));
    let out = ok(&[
        "search",
        d,
        "--queries",
        &q,
        "--k",
        "3",
        "--filter",
        r#"{"user": 42}"#,
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["ids"],
        serde_json::json!(["ключ"]),
        "mem/1 was replaced without metadata"
    );
    let got: serde_json::Value = serde_json::from_str(ok(&["get", d, "ключ"]).trim()).unwrap();
    assert_eq!(got["key"], "ключ");
    assert_eq!(got["payload"], serde_json::json!({"t": "x"}));
    assert!(fails(&["get", d, "mem/9"]).contains("no record with key \"mem/9\""));
    // Scan prints records in the form import reads.
    let scanned = ok(&["scan", d]);
    let keys: Vec<String> = scanned
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), 3);
    let inspect: serde_json::Value = serde_json::from_str(&ok(&["inspect", d])).unwrap();
    assert_eq!(inspect["keys"], "string");
    let deleted = ok_stderr(&["delete", d, "mem/2", "nope"]);
    assert!(
        deleted.contains("deleted 1 records; 1 keys not found"),
        "{deleted}"
    );
    assert_eq!(ok(&["count", d]).trim(), "2");
    // The wrong kind of key is refused before anything is written.
    let ids = write(&t, "ids.jsonl", "{\"id\": 5, \"vector\": [1, 1]}\n");
    assert!(fails(&["import", d, &ids]).contains("the store has string keys"));
    assert_eq!(ok(&["count", d]).trim(), "2");
    let t2 = tempfile::tempdir().unwrap();
    let plain = store_2d(&t2);
    let keyed = write(&t, "keyed.jsonl", "{\"key\": \"a\", \"vector\": [1, 1]}\n");
    assert!(fails(&["import", &plain, &keyed]).contains("the store has u64 ids"));
    assert!(fails(&["get", &plain, "a"]).contains("not an id"));
}
