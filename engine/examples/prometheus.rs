//! A store reporting to Prometheus: install the exporter's recorder before opening
//! stores, then serve `handle.render()` on the application's metrics endpoint (here,
//! printed once). `cargo run -p strata --example prometheus`.

use metrics_exporter_prometheus::PrometheusBuilder;
use strata::{Db, Metric, Options, SearchOptions, WriteBatch};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every store opened after this reports to the recorder.
    let handle = PrometheusBuilder::new().install_recorder()?;

    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path().join("store"), Options::new(3, Metric::L2))?;
    let mut batch = WriteBatch::new();
    for id in 0..1000u64 {
        batch.upsert(id, &[id as f32, 1.0, 0.5]);
    }
    db.write(batch)?;
    db.flush()?;
    for i in 0..100 {
        db.search(&[i as f32, 1.0, 0.5], &SearchOptions::new(10))?;
    }
    db.close()?;

    // What a scrape of the application's /metrics endpoint would return.
    print!("{}", handle.render());
    Ok(())
}
