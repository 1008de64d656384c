//! The `strata` binary end to end: every command, its output format, and one-line errors
//! with a non-zero exit for bad input, missing, locked and corrupt stores.

mod common;

use std::path::Path;
use std::process::Command;

use common::{fails, live_rows, ok, ok_stderr, store_2d, strata, write, write_fvecs};

#[test]
fn create_import_search_get_delete_inspect_verify() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&["create", d, "--dim", "3", "--metric", "l2"]);
    let base: Vec<Vec<f32>> = (0..50).map(|i| vec![i as f32, 0.0, 1.0]).collect();
    let fv = t.path().join("base.fvecs");
    write_fvecs(&fv, &base);
    ok(&[
        "import",
        d,
        fv.to_str().unwrap(),
        "--ids-from",
        "100",
        "--sync",
        "always",
    ]);
    let jl = t.path().join("more.jsonl");
    std::fs::write(
        &jl,
        "{\"id\": 7, \"vector\": [7.2, 0, 1], \"payload\": {\"title\": \"seven\"}}\n",
    )
    .unwrap();
    ok(&["import", d, jl.to_str().unwrap()]);

    let q = t.path().join("q.fvecs");
    write_fvecs(&q, &[vec![3.1, 0.0, 1.0], vec![7.0, 0.0, 1.0]]);
    let out = ok(&["search", d, "--queries", q.to_str().unwrap(), "--k", "2"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["query"], 0);
    assert_eq!(lines[0]["ids"], serde_json::json!([103, 104]));
    assert_eq!(lines[1]["ids"][0], 107);
    assert_eq!(lines[1]["ids"][1], 7);
    assert_eq!(lines[0].as_object().unwrap().len(), 3);
    for prefetch in ["always", "never", "auto"] {
        let args = ["search", d, "--queries", q.to_str().unwrap(), "--k", "2"];
        assert_eq!(ok(&[&args[..], &["--prefetch", prefetch]].concat()), out);
    }
    assert!(
        out.starts_with("{\"query\": 0, \"ids\": [103,104], \"distances\": ["),
        "{out}"
    );

    let rec: serde_json::Value = serde_json::from_str(&ok(&["get", d, "7"])).unwrap();
    assert_eq!(rec["payload"]["title"], "seven");
    assert_eq!(rec["vector"][0].as_f64().unwrap() as f32, 7.2);

    let ids = t.path().join("ids.txt");
    std::fs::write(&ids, "101\n102\n\n").unwrap();
    ok(&["delete", d, "100", "--ids-file", ids.to_str().unwrap()]);
    fails(&["get", d, "101"]);

    let info: serde_json::Value = serde_json::from_str(&ok(&["inspect", d])).unwrap();
    assert_eq!(info["live_rows"], 48);
    assert_eq!(info["tombstones"], 3);
    assert!(info["bytes"]["segments"].as_u64().unwrap() > 0);
    assert!(info.get("wal_bytes").is_some());
    assert!(ok(&["verify", d]).starts_with("ok:"));
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    let e = fails(&["search", d, "--queries", "nowhere.fvecs"]);
    assert!(e.contains("no store at"), "{e}");
    ok(&["create", d, "--dim", "3", "--metric", "cosine"]);
    let e = fails(&[
        "import",
        d,
        t.path().join("missing.fvecs").to_str().unwrap(),
    ]);
    assert!(e.contains("cannot read input file"), "{e}");
    let fv = t.path().join("wrong.fvecs");
    write_fvecs(&fv, &[vec![1.0, 2.0]]);
    let e = fails(&["import", d, fv.to_str().unwrap()]);
    assert!(e.contains("dimension 2") && e.contains("has 3"), "{e}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ok(&["inspect", d])).unwrap()["live_rows"],
        0
    );

    // Locked: hold the store open in this process while the binary tries to write;
    // the read commands work beside the writer and see its log's rows.
    let db = strata::Db::open(&dir, strata::Options::existing()).unwrap();
    db.upsert(9, &[0.0, 1.0, 0.0]).unwrap();
    let e = fails(&["import", d, fv.to_str().unwrap()]);
    assert!(e.contains("locked by another process"), "{e}");
    let e = fails(&["delete", d, "9"]);
    assert!(e.contains("locked by another process"), "{e}");
    assert_eq!(live_rows(d), 1);
    assert!(ok(&["get", d, "9"]).contains("\"id\":9"));
    drop(db);

    // Corrupt: a flipped manifest byte is named with its file.
    let m = dir.join("MANIFEST");
    let mut b = std::fs::read(&m).unwrap();
    b[30] ^= 1;
    std::fs::write(&m, b).unwrap();
    let e = fails(&["verify", d]);
    assert!(e.contains("MANIFEST") && e.contains("corrupt"), "{e}");
    fails(&["inspect", d]);
}

#[test]
fn demo_runs_the_whole_life_cycle() {
    let out = ok(&["demo", "--rows", "3000", "--dim", "16"]);
    assert!(out.contains("nothing lost, nothing resurrected"), "{out}");
    assert!(out.contains("verify: ok"), "{out}");
    let recalls: Vec<(String, f64)> = out
        .lines()
        .filter_map(|l| {
            let (label, rest) = l.split_once("recall@10 ")?;
            Some((
                label.trim().to_string(),
                rest.split_whitespace().next()?.parse().ok()?,
            ))
        })
        .collect();
    assert!(out.contains("5. compacted in"), "{out}");
    assert_eq!(recalls.len(), 6, "{out}");
    for (label, r) in &recalls {
        let floor = if label.contains("exact") { 1.0 } else { 0.9 };
        assert!(*r >= floor, "{label} recall {r} below {floor}: {out}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn compact_merges_a_closed_store_and_survives_being_killed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&["create", d, "--dim", "8", "--metric", "l2"]);
    let base: Vec<Vec<f32>> = (0..3000)
        .map(|i| (0..8).map(|j| ((i * 31 + j * 7) % 101) as f32).collect())
        .collect();
    // Three imports: three segments.
    for part in 0..3 {
        let fv = t.path().join(format!("part{part}.fvecs"));
        write_fvecs(&fv, &base[part * 1000..(part + 1) * 1000]);
        let from = (part * 1000).to_string();
        ok(&["import", d, fv.to_str().unwrap(), "--ids-from", &from]);
    }
    let gone: Vec<String> = (0..3000).step_by(5).map(|i: u64| i.to_string()).collect();
    let mut args = vec!["delete", d];
    args.extend(gone.iter().map(String::as_str));
    ok(&args);
    let live = 3000 - gone.len() as u64;
    assert_eq!(live_rows(d), live);

    // Dry run: a plan, no change (to the data files; any open starts a new WAL file).
    let files = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".seg") || n.ends_with(".del") || n == "MANIFEST")
            .collect();
        v.sort();
        v
    };
    let before = files(&dir);
    let plan = ok(&["compact", d, "--full", "--dry-run"]);
    assert!(
        plan.contains("before:") && plan.contains("would merge"),
        "{plan}"
    );
    assert_eq!(files(&dir), before);

    // Killed at several moments: the store opens with all its data every time.
    for (i, delay_ms) in [0u64, 30, 80, 200, 500].into_iter().enumerate() {
        let scratch = t.path().join(format!("killed{i}"));
        copy_dir(&dir, &scratch);
        let s = scratch.to_str().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["compact", s, "--full"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(live_rows(s), live, "killed after {delay_ms} ms");
        ok(&["verify", s]);
        let got: serde_json::Value = serde_json::from_str(&ok(&["get", s, "7"])).unwrap();
        assert_eq!(got["vector"].as_array().unwrap().len(), 8);
        assert!(
            !strata(&["get", s, "5"]).status.success(),
            "deleted stays deleted"
        );
    }

    // Refused while the store is open elsewhere.
    let db = strata::Db::open(&dir, strata::Options::existing()).unwrap();
    let e = fails(&["compact", d]);
    assert!(e.contains("locked by another process"), "{e}");
    drop(db);

    // The real thing.
    let out = ok(&["compact", d, "--full", "--threads", "1"]);
    assert!(
        out.contains("before:") && out.contains("after:") && out.contains("verify: ok"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&["inspect", d])).unwrap();
    assert_eq!(v["segment_count"], 1, "{v}");
    assert_eq!(v["tombstones"], 0, "{v}");
    assert_eq!(v["live_rows"].as_u64(), Some(live));
    assert!(v["space_amplification"].as_f64().unwrap() < 1.05, "{v}");
}

#[test]
fn churn_reports_write_and_space_amplification() {
    let t = tempfile::tempdir().unwrap();
    // Distinct pseudo-random vectors (ties would make recall ambiguous).
    let base: Vec<Vec<f32>> = (0..6000u64)
        .map(|i| {
            (0..32u64)
                .map(|j| ((i * 32 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32)
                .collect()
        })
        .collect();
    let fv = t.path().join("base.fvecs");
    write_fvecs(&fv, &base);
    let json = t.path().join("churn.json");
    let out = ok(&[
        "churn",
        "--base",
        fv.to_str().unwrap(),
        "--rows",
        "0",
        "--memtable-mb",
        "1",
        "--nq",
        "20",
        "--json",
        json.to_str().unwrap(),
    ]);
    for step in ["1. churned", "write amplification", "2. space", "3. "] {
        assert!(out.contains(step), "{step:?} missing from:\n{out}");
    }
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&json).unwrap().trim()).unwrap();
    let num = |k: &str| {
        line[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} missing: {line}"))
    };
    assert!(num("compactions") >= 1.0, "{line}");
    // Every user byte passes through the WAL and at least one segment write.
    assert!(num("write_amplification") > 2.0, "{line}");
    assert!(num("space_amplification") <= 1.3, "{line}");
    assert!(num("recall_after_full") >= 0.99, "{line}");
    // (A merge this small may finish before a query starts beside it: no figure then.)
    assert!(num("idle_p99_ms") > 0.0, "{line}");
}

#[test]
fn library_warnings_reach_stderr_through_the_log_and_rust_log_silences_them() {
    if strata::gpu_status().is_ok() {
        // With a usable GPU nothing falls back, so there is no warning to look for.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED library_warnings_reach_stderr...: a GPU is present\n",
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&["create", d, "--dim", "128", "--metric", "l2"]);
    // Enough rows for the flushed segment to get an index (built on the asked-for GPU).
    let base: Vec<Vec<f32>> = (0..5000)
        .map(|i| (0..128).map(|j| ((i * 31 + j * 7) % 97) as f32).collect())
        .collect();
    let fv = t.path().join("base.fvecs");
    write_fvecs(&fv, &base);
    let args = ["import", d, fv.to_str().unwrap(), "--build-device", "gpu"];
    let out = strata(&args);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARN") && err.contains("GPU builds asked for"),
        "the fallback is logged as a warning: {err}"
    );
    let quiet = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "-v",
            "import",
            d,
            fv.to_str().unwrap(),
            "--ids-from",
            "5000",
        ])
        .args(["--build-device", "gpu"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(quiet.status.success());
    let err = String::from_utf8_lossy(&quiet.stderr);
    assert!(!err.contains("GPU builds asked for"), "RUST_LOG=off: {err}");
    // -v shows what the store does; without it, nothing below a warning.
    let verbose = strata(&["-v", "get", d, "1"]);
    let err = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        verbose.status.success() && err.contains("read a snapshot of the store (read-only)"),
        "-v: {err}"
    );
    let plain = strata(&["get", d, "1"]);
    assert!(
        plain.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
}

#[test]
fn create_refuses_a_directory_with_other_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("mine");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("notes.txt"), b"keep").unwrap();
    std::fs::write(d.join("000001.wal"), b"keep too").unwrap();
    let e = fails(&[
        "create",
        d.to_str().unwrap(),
        "--dim",
        "2",
        "--metric",
        "l2",
    ]);
    assert!(e.contains("not empty and holds no store"), "{e}");
    assert_eq!(std::fs::read(d.join("000001.wal")).unwrap(), b"keep too");
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "nothing added");
}

#[test]
fn import_refuses_id_overflow_and_mixed_ids_before_writing_anything() {
    let t = tempfile::tempdir().unwrap();
    let d = store_2d(&t);
    let one = write(&t, "one.jsonl", "{\"id\": 0, \"vector\": [5, 5]}\n");
    ok(&["import", &d, &one]);
    // Two rows from the largest id: the second would wrap around to id 0.
    let two = write(
        &t,
        "two.jsonl",
        "{\"vector\": [1, 1]}\n{\"vector\": [2, 2]}\n",
    );
    let e = fails(&["import", &d, &two, "--ids-from", "18446744073709551615"]);
    assert!(
        e.contains("nothing was written") && e.contains("exceeds the largest id"),
        "{e}"
    );
    let got: serde_json::Value = serde_json::from_str(&ok(&["get", &d, "0"])).unwrap();
    assert_eq!(
        got["vector"],
        serde_json::json!([5.0, 5.0]),
        "id 0 untouched"
    );
    // Line 1 without an id (it would be 0), line 3 with "id": 0.
    let mixed = write(
        &t,
        "mixed.jsonl",
        "{\"vector\": [1, 1]}\n\n{\"id\": 0, \"vector\": [2, 2]}\n",
    );
    let e = fails(&["import", &d, &mixed]);
    assert!(
        e.contains("line 3 gives an \"id\" and line 1 does not"),
        "{e}"
    );
    assert_eq!(live_rows(&d), 1);
    // An id given twice is imported once and reported, never counted as two records.
    let twice = write(
        &t,
        "twice.jsonl",
        "{\"id\": 4, \"vector\": [1, 1]}\n{\"id\": 4, \"vector\": [2, 2]}\n",
    );
    let err = ok_stderr(&["import", &d, &twice]);
    assert!(
        err.contains("the store has 2 live rows (was 1)") && err.contains("1 rows repeat an id"),
        "{err}"
    );
}

#[test]
fn import_stops_cleanly_says_what_is_committed_and_can_skip_or_continue() {
    let t = tempfile::tempdir().unwrap();
    let d = store_2d(&t);
    // 2,500 good rows, then a record cut short.
    let rows: Vec<Vec<f32>> = (0..2500).map(|i| vec![i as f32, 1.0]).collect();
    let fv = t.path().join("cut.fvecs");
    write_fvecs(&fv, &rows);
    let mut bytes = std::fs::read(&fv).unwrap();
    bytes.extend_from_slice(&2i32.to_le_bytes());
    bytes.extend_from_slice(&1f32.to_le_bytes());
    std::fs::write(&fv, &bytes).unwrap();
    let f = fv.to_str().unwrap();
    let e = fails(&["import", &d, f]);
    assert!(
        e.contains("nothing was written") && e.contains("row 2500"),
        "{e}"
    );
    assert_eq!(live_rows(&d), 0, "all or nothing");
    // Skipping: the 2,500 good rows go in, the cut one is counted.
    let err = ok_stderr(&["import", &d, f, "--skip-bad-rows"]);
    assert!(
        err.contains("imported 2500 rows") && err.contains("skipped 1 bad rows"),
        "{err}"
    );
    assert_eq!(live_rows(&d), 2500);

    // A row the store refuses (NaN on line 2), skipped or named with its line and id.
    let d2 = t.path().join("s2");
    let d2 = d2.to_str().unwrap();
    ok(&["create", d2, "--dim", "2", "--metric", "l2"]);
    let nan = write(
        &t,
        "nan.jsonl",
        "{\"id\": 10, \"vector\": [1, 1]}\n{\"id\": 11, \"vector\": [1e39, 1]}\n{\"id\": 12, \"vector\": [3e38, 3e38]}\n{\"id\": 13, \"vector\": [2, 2]}\n",
    );
    let e = fails(&["import", d2, &nan]);
    assert!(
        e.contains("line 2 (id 11)") && e.matches("not finite").count() == 1,
        "the row named, the reason said once: {e}"
    );
    let err = ok_stderr(&["import", d2, &nan, "--skip-bad-rows"]);
    assert!(err.contains("skipped 2 bad rows"), "{err}");
    assert_eq!(live_rows(d2), 2);
    // --from-row continues at an input row: rows before it are not written.
    let d3 = t.path().join("s3");
    let d3 = d3.to_str().unwrap();
    ok(&["create", d3, "--dim", "2", "--metric", "l2"]);
    let good = t.path().join("good.fvecs");
    write_fvecs(&good, &rows);
    ok(&["import", d3, good.to_str().unwrap(), "--from-row", "2000"]);
    assert_eq!(live_rows(d3), 500);
    assert!(ok(&["get", d3, "2000"]).contains("2000.0"));
    fails(&["get", d3, "1999"]);
}

#[test]
fn json_errors_name_the_file_line_and_json_arrays_are_read() {
    let t = tempfile::tempdir().unwrap();
    let d = store_2d(&t);
    let bad = write(
        &t,
        "bad.jsonl",
        "{\"vector\": [1, 1]}\n\n\n\n\n{,\n{\"vector\": [1, 1]}\n",
    );
    let e = fails(&["import", &d, &bad]);
    assert!(e.contains("line 6, column 2"), "{e}");
    assert!(!e.contains("line 1 column"), "{e}");
    let arr = write(
        &t,
        "arr.json",
        " [{\"vector\": [1, 2], \"payload\": \"a\"}, {\"vector\": [3, 4]}]",
    );
    ok(&["import", &d, &arr]);
    assert_eq!(live_rows(&d), 2);
    let q = t.path().join("q.fvecs");
    write_fvecs(&q, &[vec![1.0, 2.0]]);
    let out = ok(&[
        "search",
        &d,
        "--queries",
        q.to_str().unwrap(),
        "--k",
        "2",
        "--with-payload",
    ]);
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["ids"], serde_json::json!([0, 1]));
    assert_eq!(line["payloads"], serde_json::json!(["a", null]));
    let plain = ok(&["search", &d, "--queries", q.to_str().unwrap()]);
    assert!(!plain.contains("payloads"), "{plain}");
}

#[test]
fn delete_reports_not_found_and_flush_indexes_the_log() {
    let t = tempfile::tempdir().unwrap();
    let d = store_2d(&t);
    let rows = write(
        &t,
        "r.jsonl",
        "{\"id\": 1, \"vector\": [1, 1]}\n{\"id\": 2, \"vector\": [2, 2]}\n",
    );
    ok(&["import", &d, &rows]);
    let err = ok_stderr(&["delete", &d, "1", "1", "99"]);
    assert!(err.contains("deleted 1 records; 1 ids not found"), "{err}");
    let err = ok_stderr(&["delete", &d, "1"]);
    assert!(err.contains("deleted 0 records; 1 ids not found"), "{err}");
    // Rows left in the log by a process that died: `flush` moves them to a segment.
    {
        let db = strata::Db::open(&d, strata::Options::existing()).unwrap();
        db.upsert(3, &[3.0, 3.0]).unwrap();
        std::mem::forget(db); // a crash: no flush, no close
    }
    // The forgotten handle still holds the lock in this process; a child sees it free
    // only once this process lets go, so run the rest on a copy.
    let copy = t.path().join("copy");
    copy_dir(Path::new(&d), &copy);
    let c = copy.to_str().unwrap();
    let before: serde_json::Value = serde_json::from_str(&ok(&["inspect", c])).unwrap();
    assert_eq!(before["memtable_rows"], 1);
    let err = ok_stderr(&["flush", c]);
    assert!(err.contains("flushed 1 rows"), "{err}");
    let after: serde_json::Value = serde_json::from_str(&ok(&["inspect", c])).unwrap();
    assert_eq!(after["memtable_rows"], 0);
    assert_eq!(after["live_rows"], 2);
}

#[test]
fn progress_reaches_stderr_off_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let d = store_2d(&t);
    let rows: Vec<Vec<f32>> = (0..3000).map(|i| vec![i as f32, 1.0]).collect();
    let fv = t.path().join("p.fvecs");
    write_fvecs(&fv, &rows);
    let err = ok_stderr(&["import", &d, fv.to_str().unwrap(), "--batch", "100"]);
    assert!(err.contains("import: 3000 of 3000 rows (100%)"), "{err}");
}

#[test]
fn compact_of_a_log_only_store_says_it_flushes_and_reports_the_bytes_left() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("store");
    {
        let db = strata::Db::open(&d, strata::Options::new(16, strata::Metric::L2)).unwrap();
        let mut b = strata::WriteBatch::new();
        for i in 0..20_000u64 {
            b.upsert(i, &[i as f32; 16]);
        }
        db.write(b).unwrap();
        std::mem::forget(db); // killed before any flush: every row is only in the log
    }
    let copy = t.path().join("copy");
    copy_dir(&d, &copy);
    let c = copy.to_str().unwrap();
    let plan = ok(&["compact", c, "--dry-run"]);
    assert!(
        plan.contains("would flush 20000 rows from the write-ahead log"),
        "{plan}"
    );
    let out = ok(&["compact", c]);
    assert!(out.contains("flushed 20000 rows"), "{out}");
    let after = out.lines().find(|l| l.starts_with("after:")).unwrap();
    let mib: f64 = after
        .split(" tombstones, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let on_disk: u64 = std::fs::read_dir(&copy)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let disk_mib = on_disk as f64 / (1 << 20) as f64;
    assert!(
        (mib - disk_mib).abs() < 0.05 + disk_mib * 0.02,
        "reported {mib} MiB, the directory holds {disk_mib:.2} MiB: {out}"
    );
}

#[test]
fn backup_copies_a_store_and_repair_restores_a_damaged_manifest() {
    let t = tempfile::tempdir().unwrap();
    let d = store_2d(&t);
    let rows = write(
        &t,
        "r.jsonl",
        "{\"id\": 1, \"vector\": [1, 1], \"payload\": \"one\"}\n{\"id\": 2, \"vector\": [2, 2]}\n",
    );
    ok(&["import", &d, &rows]);
    let dest = t.path().join("backup");
    let b = dest.to_str().unwrap();
    let out = ok(&["backup", &d, b]);
    assert!(out.contains("2 live rows"), "{out}");
    assert!(ok(&["verify", b]).starts_with("ok:"));
    assert!(ok(&["get", b, "1"]).contains("\"payload\":\"one\""));
    let e = fails(&["backup", &d, b]);
    assert!(e.contains("is not empty"), "{e}");

    let m = Path::new(&d).join("MANIFEST");
    let mut bytes = std::fs::read(&m).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&m, bytes).unwrap();
    let e = fails(&["get", &d, "1"]);
    assert!(e.contains("strata repair"), "{e}");
    let out = ok(&["repair", &d]);
    assert!(
        out.contains("restored MANIFEST from MANIFEST-MIRROR"),
        "{out}"
    );
    assert!(out.contains("ok:"), "repair verifies: {out}");
    assert_eq!(live_rows(&d), 2);
    assert!(ok(&["repair", &d]).contains("nothing to repair"));
}
