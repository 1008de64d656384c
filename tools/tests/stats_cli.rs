//! `strata stats`: a closed store's sizes as the metrics it reports, in the Prometheus
//! text format and as JSON.

mod common;

use common::{fails, ok};

#[test]
fn stats_prints_the_gauges_as_text_and_json() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store \"q\"");
    let d = dir.to_str().unwrap();
    ok(&["create", d, "--dim", "2", "--metric", "l2"]);
    let rows = t.path().join("rows.jsonl");
    std::fs::write(
        &rows,
        "{\"vector\": [1, 2]}\n{\"vector\": [3, 4]}\n{\"vector\": [5, 6]}\n",
    )
    .unwrap();
    ok(&["import", d, rows.to_str().unwrap()]);
    ok(&["delete", d, "1"]);

    let text = ok(&["stats", d]);
    let label = d.replace('"', "\\\"");
    assert!(
        text.lines()
            .any(|l| l == format!("strata_live_rows{{store=\"{label}\"}} 2")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "strata_bytes{{store=\"{label}\",kind=\"segment\"}} "
        ))),
        "{text}"
    );
    // Every line is `name{labels} value` with a number.
    for l in text.lines() {
        let (_, value) = l.rsplit_once(' ').unwrap();
        value.parse::<f64>().unwrap();
    }

    let v: serde_json::Value = serde_json::from_str(&ok(&["stats", d, "--json"])).unwrap();
    assert_eq!(v["store"], d);
    let metric = |name: &str| {
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {v}"))
            .clone()
    };
    assert_eq!(metric("strata_live_rows")["value"], 2.0);
    assert_eq!(metric("strata_segments")["value"], 1.0);
    assert_eq!(metric("strata_tombstones")["value"], 1.0);
    assert_eq!(metric("strata_segments")["labels"]["store"], d);

    let e = fails(&["stats", t.path().join("none").to_str().unwrap()]);
    assert!(e.contains("none"), "{e}");
}
