//! `strata import` from an SQLite table: an agent-memory table moves over in one command,
//! bad rows are named, and a killed import leaves a prefix of whole rows.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{fails, ok};
use rusqlite::params;

/// A table shaped like agent memory: `memory_embeddings(memory_id TEXT, key TEXT,
/// category TEXT, embedding BLOB, content TEXT)`, `n` rows of 4-d f32 embeddings.
fn memory_table(path: &Path, n: usize) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE memory_embeddings(memory_id TEXT PRIMARY KEY, key TEXT, category TEXT, \
         embedding BLOB, content TEXT);",
    )
    .unwrap();
    let tx = c.transaction().unwrap();
    for i in 0..n {
        let v: Vec<u8> = [i as f32, 1.0, (i % 7) as f32, 0.5]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let category = ["fact", "preference", "event"][i % 3];
        tx.execute(
            "INSERT INTO memory_embeddings VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                format!("mem-{i}"),
                format!("k{i}"),
                category,
                v,
                format!("memory number {i} is a {category}")
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn import_args<'a>(d: &'a str, db: &'a str) -> Vec<&'a str> {
    vec![
        "import",
        d,
        db,
        "--table",
        "memory_embeddings",
        "--key-column",
        "memory_id",
        "--vector-column",
        "embedding",
        "--metadata-columns",
        "key,category",
        "--text-column",
        "content",
    ]
}

#[test]
fn a_memory_table_moves_over_in_one_command() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("memories.db");
    memory_table(&db, 300);
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&[
        "create", d, "--dim", "4", "--metric", "l2", "--keys", "string",
    ]);
    ok(&import_args(d, db.to_str().unwrap()));
    let got: serde_json::Value = serde_json::from_str(&ok(&["get", d, "mem-42"])).unwrap();
    assert_eq!(got["vector"], serde_json::json!([42.0, 1.0, 0.0, 0.5]));
    assert_eq!(
        got["metadata"],
        serde_json::json!({"key": "k42", "category": "fact"})
    );
    assert_eq!(got["text"], "memory number 42 is a fact");
    let n: u64 = ok(&["count", d, "--filter", r#"{"category": "event"}"#])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, 100);
    let texts = t.path().join("q.jsonl");
    std::fs::write(&texts, "{\"text\": \"preference\"}\n").unwrap();
    let out = ok(&[
        "search",
        d,
        "--texts",
        texts.to_str().unwrap(),
        "--k",
        "200",
    ]);
    let hits: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(hits["ids"].as_array().unwrap().len(), 100);

    // A u64 store takes an integer key column; JSON vectors decode.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE ints(id INTEGER, v TEXT); INSERT INTO ints VALUES (5, '[1, 2, 3, 4]'), (9, '[0, 0, 0, 1]');",
    )
    .unwrap();
    let u = t.path().join("u64");
    let u = u.to_str().unwrap();
    ok(&["create", u, "--dim", "4", "--metric", "l2"]);
    let args = [
        "import",
        u,
        db.to_str().unwrap(),
        "--table",
        "ints",
        "--key-column",
        "id",
        "--vector-column",
        "v",
        "--vector-encoding",
        "json",
    ];
    ok(&args);
    let got: serde_json::Value = serde_json::from_str(&ok(&["get", u, "9"])).unwrap();
    assert_eq!(got["vector"], serde_json::json!([0.0, 0.0, 0.0, 1.0]));
    // Into a store of string keys, integer keys become their decimal text.
    let mut args = args;
    args[1] = d;
    ok(&args);
    let got: serde_json::Value = serde_json::from_str(&ok(&["get", d, "9"])).unwrap();
    assert_eq!(got["key"], "9");
}

#[test]
fn bad_rows_and_bad_arguments_are_one_line_errors_that_write_nothing() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("memories.db");
    memory_table(&db, 50);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "UPDATE memory_embeddings SET embedding = zeroblob(12) WHERE memory_id = 'mem-17'",
        [],
    )
    .unwrap();
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&[
        "create", d, "--dim", "4", "--metric", "l2", "--keys", "string",
    ]);
    let e = fails(&import_args(d, db.to_str().unwrap()));
    assert!(
        e.contains("rowid 18 (key \"mem-17\")") && e.contains("dimension 3"),
        "{e}"
    );
    assert!(e.contains("nothing was written"), "{e}");
    c.execute(
        "UPDATE memory_embeddings SET embedding = zeroblob(13) WHERE memory_id = 'mem-17'",
        [],
    )
    .unwrap();
    let e = fails(&import_args(d, db.to_str().unwrap()));
    assert!(
        e.contains("rowid 18 (key \"mem-17\")") && e.contains("13-byte blob"),
        "{e}"
    );
    let n = ok(&["count", d]);
    assert_eq!(n.trim(), "0");

    // Unknown table and column; a database given without --table.
    let mut args = import_args(d, db.to_str().unwrap());
    args[4] = "memories";
    let e = fails(&args);
    assert!(
        e.contains("no table \"memories\"") && e.contains("memory_embeddings"),
        "{e}"
    );
    let mut args = import_args(d, db.to_str().unwrap());
    args[8] = "vec";
    let e = fails(&args);
    assert!(
        e.contains("--vector-column") && e.contains("no column \"vec\""),
        "{e}"
    );
    let e = fails(&["import", d, db.to_str().unwrap()]);
    assert!(
        e.contains("an SQLite database") && e.contains("--table"),
        "{e}"
    );
    // --skip-bad-rows imports the others and counts the bad one.
    let mut args = import_args(d, db.to_str().unwrap());
    args.push("--skip-bad-rows");
    ok(&args);
    assert_eq!(ok(&["count", d]).trim(), "49");
    // Without a key column rows are numbered, and a skipped row keeps its number.
    let n = t.path().join("numbered");
    let n = n.to_str().unwrap();
    ok(&["create", n, "--dim", "4", "--metric", "l2"]);
    let db = db.to_str().unwrap();
    let args = [
        "import",
        n,
        db,
        "--table",
        "memory_embeddings",
        "--vector-column",
        "embedding",
    ];
    ok(&[&args[..], &["--skip-bad-rows"]].concat());
    assert!(!common::strata(&["get", n, "17"]).status.success());
    let got: serde_json::Value = serde_json::from_str(&ok(&["get", n, "18"])).unwrap();
    assert_eq!(got["vector"][0], 18.0);
}

#[test]
fn a_killed_import_leaves_a_prefix_of_whole_rows() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("memories.db");
    let total = 20_000;
    memory_table(&db, total);
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&[
        "create", d, "--dim", "4", "--metric", "l2", "--keys", "string",
    ]);
    let mut args = import_args(d, db.to_str().unwrap());
    args.extend(["--batch", "10", "--sync", "always"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once a tenth of the rows is written, with nine tenths (1,800 synced
    // batches) still to go.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut progressed = false;
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.starts_with("import: ") {
            progressed = true;
            break;
        }
        line.clear();
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(progressed, "the import reported progress before ending");
    assert!(!status.success(), "the import was killed, not finished");

    let store = strata::Db::open(&dir, strata::Options::existing()).unwrap();
    let n = store.len() as usize;
    assert!(n >= total / 10 && n < total, "{n} rows of {total}");
    for i in 0..total {
        let got = store.get_key(&format!("mem-{i}")).unwrap();
        match got {
            Some(r) if i < n => {
                assert_eq!(r.vector[0], i as f32);
                let meta = r.metadata.expect("metadata").to_json();
                assert_eq!(meta["key"], format!("k{i}"));
                assert!(r.text.unwrap().starts_with(&format!("memory number {i} ")));
            }
            None if i >= n => {}
            other => panic!("row {i} of a prefix of {n}: {:?}", other.is_some()),
        }
    }
    drop(store);
    // Rerunning the same import finishes it.
    let from = n.to_string();
    let mut args = import_args(d, db.to_str().unwrap());
    args.extend(["--from-row", &from]);
    ok(&args);
    assert_eq!(ok(&["count", d]).trim(), total.to_string());
}
