//! The `strata` binary's text commands end to end: `create --analyzer`, `import` with
//! "text", `search --texts` (text only), with `--queries` (hybrid, both fusions), the
//! output contract, `get` returning the text, and one-line errors for bad input.

mod common;

use common::{fails, ok, strata};

fn lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn import_text_then_search_by_text_and_hybrid() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    let created = ok(&[
        "create",
        d,
        "--dim",
        "2",
        "--metric",
        "l2",
        "--analyzer",
        "english",
    ]);
    assert!(created.contains("english text analyzer"), "{created}");
    let rows = [
        (1, [0.0, 0.0], Some("Mounting file systems")),
        (2, [1.0, 0.0], Some("the network socket")),
        (3, [0.0, 1.0], None),
        (4, [5.0, 5.0], Some("mount: wrong fs type")),
    ];
    let input = t.path().join("rows.jsonl");
    let mut text = String::new();
    for (id, v, t) in rows {
        let mut o = serde_json::json!({"id": id, "vector": v, "metadata": {"n": id}});
        if let Some(t) = t {
            o["text"] = serde_json::json!(t);
        }
        text.push_str(&format!("{o}\n"));
    }
    std::fs::write(&input, text).unwrap();
    ok(&["import", d, input.to_str().unwrap()]);

    let texts = t.path().join("texts.jsonl");
    std::fs::write(
        &texts,
        "{\"text\": \"mounted\"}\n{\"text\": \"sockets\"}\n{\"text\": \"zzz\"}\n",
    )
    .unwrap();
    let out = lines(&ok(&[
        "search",
        d,
        "--texts",
        texts.to_str().unwrap(),
        "--k",
        "5",
    ]));
    assert_eq!(out.len(), 3);
    // Stemmed: "mounted" finds "Mounting" (3 terms) and "mount" (4 terms); the shorter
    // row scores higher.
    assert_eq!(out[0]["query"], 0);
    assert_eq!(out[0]["ids"], serde_json::json!([1, 4]));
    let d0 = out[0]["distances"].as_array().unwrap();
    assert!(d0[0].as_f64().unwrap() <= d0[1].as_f64().unwrap() && d0[0].as_f64().unwrap() < 0.0);
    assert_eq!(out[1]["ids"], serde_json::json!([2]));
    assert_eq!(out[2]["ids"], serde_json::json!([]));
    let keys: Vec<&str> = out[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 3, "output unchanged: query, ids, distances");

    // With a filter and the texts returned.
    let out = lines(&ok(&[
        "search",
        d,
        "--texts",
        texts.to_str().unwrap(),
        "--k",
        "5",
        "--filter",
        r#"{"n": {"$gte": 2}}"#,
        "--with-text",
    ]));
    assert_eq!(out[0]["ids"], serde_json::json!([4]));
    assert_eq!(out[0]["texts"], serde_json::json!(["mount: wrong fs type"]));

    // Hybrid: one vector and one text per query.
    let queries = t.path().join("q.jsonl");
    std::fs::write(
        &queries,
        "{\"vector\": [0.1, 0.9]}\n{\"vector\": [1, 0]}\n{\"vector\": [5, 5]}\n",
    )
    .unwrap();
    let q = queries.to_str().unwrap();
    for fusion in [
        &["--fusion", "rrf"][..],
        &["--fusion", "weighted", "--alpha", "0.3"],
    ] {
        let mut args = vec![
            "search",
            d,
            "--queries",
            q,
            "--texts",
            texts.to_str().unwrap(),
        ];
        args.extend_from_slice(&["--k", "4"]);
        args.extend_from_slice(fusion);
        let out = lines(&ok(&args));
        assert_eq!(out.len(), 3);
        // Query 0: vector nearest 3 (no text), text finds 4 and 1: all fused.
        let ids: Vec<u64> = out[0]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), 4, "{fusion:?}: {ids:?}");
        for want in [1, 3, 4] {
            assert!(ids.contains(&want), "{fusion:?}: {ids:?}");
        }
        let ds: Vec<f64> = out[0]["distances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(ds.windows(2).all(|w| w[0] <= w[1]), "{ds:?}");
    }

    // get returns the text; a record without text has no "text" key.
    let got: serde_json::Value = serde_json::from_str(&ok(&["get", d, "4"])).unwrap();
    assert_eq!(got["text"], "mount: wrong fs type");
    let got: serde_json::Value = serde_json::from_str(&ok(&["get", d, "3"])).unwrap();
    assert!(got.get("text").is_none());
}

#[test]
fn bad_text_input_is_a_one_line_error() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&["create", d, "--dim", "2", "--metric", "l2"]);
    let input = t.path().join("rows.jsonl");
    std::fs::write(&input, "{\"vector\": [1, 2], \"text\": 7}\n").unwrap();
    assert!(fails(&["import", d, input.to_str().unwrap()]).contains("\"text\" must be a string"));
    let texts = t.path().join("texts.jsonl");
    std::fs::write(&texts, "{\"query\": \"x\"}\n").unwrap();
    let err = fails(&["search", d, "--texts", texts.to_str().unwrap()]);
    assert!(err.contains("line 1"), "{err}");
    let q = t.path().join("q.jsonl");
    std::fs::write(&q, "{\"vector\": [1, 2]}\n{\"vector\": [1, 2]}\n").unwrap();
    std::fs::write(&texts, "{\"text\": \"x\"}\n").unwrap();
    let err = fails(&[
        "search",
        d,
        "--queries",
        q.to_str().unwrap(),
        "--texts",
        texts.to_str().unwrap(),
    ]);
    assert!(err.contains("2 vector queries but 1 text queries"), "{err}");
    let err = fails(&[
        "search",
        d,
        "--queries",
        q.to_str().unwrap(),
        "--texts",
        texts.to_str().unwrap(),
        "--alpha",
        "1.5",
    ]);
    assert!(err.contains("--alpha"), "{err}");
    let out = strata(&["search", d]);
    assert!(!out.status.success(), "a search needs --queries or --texts");
}
