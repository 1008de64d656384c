//! Build devices at the store level: a GPU asked for but absent (or failing) never
//! fails a flush or a compaction, and the segments say where they were built.

use strata::{BuildDevice, Db, Metric, Options, SearchOptions};

fn rows(n: usize, dim: usize) -> Vec<Vec<f32>> {
    // Distinct rows: a 64-bit mix of (row, component) scaled to [0, 1), plus a cluster.
    let mix = |x: u64| {
        let x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let x = (x ^ (x >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        ((x ^ (x >> 33)) >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|i| {
            (0..dim)
                .map(|j| mix((i * dim + j) as u64) + (i % 7) as f32)
                .collect()
        })
        .collect()
}

#[test]
fn every_build_device_flushes_compacts_and_records_where_it_built() {
    let gpu = strata::gpu_status();
    if let Err(why) = &gpu {
        println!("gpu_build: no GPU ({why}); checking the CPU fallback");
    }
    for device in [BuildDevice::Cpu, BuildDevice::Auto, BuildDevice::Gpu] {
        let dir = tempfile::tempdir().unwrap();
        let dim = 8;
        let opts = Options::new(dim, Metric::L2)
            .index(strata::IndexOptions {
                min_rows: Some(200),
                gpu_min_rows: 500,
                ..strata::IndexOptions::default()
            })
            .build_device(device)
            .background_compaction(false);
        let db = Db::open(dir.path(), opts).unwrap();
        let data = rows(1500, dim);
        for (i, v) in data.iter().enumerate().take(800) {
            db.upsert(i as u64, v).unwrap();
        }
        db.flush().unwrap();
        for (i, v) in data.iter().enumerate().skip(800) {
            db.upsert(i as u64, v).unwrap();
        }
        db.flush().unwrap();
        let reports = db.build_reports();
        assert_eq!(reports.len(), 2, "{device}: one report per flush");
        let merged = db.compact(true, &|_, _, _| true).unwrap();
        assert_eq!(merged.len(), 1);
        let build = merged[0].build.clone().expect("an output segment");
        assert!(build.indexed);
        let on_gpu = gpu.is_ok() && device != BuildDevice::Cpu;
        assert_eq!(build.built_by != 0, on_gpu, "{device}: {build:?}");
        assert_eq!(build.fallback, None, "{device}: no GPU failure to report");
        let s = db.stats().unwrap();
        assert_eq!(s.segments.len(), 1);
        let built_by = s.segments[0].index.as_ref().unwrap().built_by.clone();
        assert_eq!(built_by, if on_gpu { "gpu" } else { "cpu" }, "{device}");
        // The store answers the same whatever built it.
        let hits = db.search(&data[1234], &SearchOptions::new(1)).unwrap();
        assert_eq!(hits[0].id, 1234, "{device}");
        db.close().unwrap();
    }
}
