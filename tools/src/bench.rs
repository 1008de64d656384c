//! `strata bench`: build a store from a TEXMEX data set and measure search.
//!
//! Writes one JSON line per setting with the keys of `../shared/peers` (`config`,
//! `search_param`, `recall`, `qps_single`, `p50_ms`, ...) so that `peers.py --external`
//! can put Strata beside the peers in the same run.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rayon::prelude::*;
use serde_json::json;
use strata::{Db, Durability, Options, SearchOptions};

use crate::input::VectorFile;
use crate::ops::import_rows;
use crate::MetricArg;

/// Arguments of `strata bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Base vectors (.fvecs, .bvecs or .npy); ids are row numbers.
    #[arg(long)]
    base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    queries: PathBuf,
    /// Ground truth (.ivecs, nearest first).
    #[arg(long)]
    gt: PathBuf,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Metric of the data set.
    #[arg(long, value_enum, default_value = "l2")]
    metric: MetricArg,
    /// Threads for the all-threads measurement (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Use only the first N queries.
    #[arg(long)]
    nq: Option<usize>,
    /// Timed passes over the queries; the fastest is kept.
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Append one JSON line per setting here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Build the store here (kept) instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Graph beam widths to sweep (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 20, 40, 80, 160, 320])]
    ef: Vec<usize>,
    /// Exact-rerank depths to sweep (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [100usize])]
    rerank: Vec<usize>,
    /// Also measure exact search.
    #[arg(long)]
    exact: bool,
    /// With `--dir`: search the store already built there instead of rebuilding it.
    #[arg(long)]
    reuse: bool,
    /// HNSW links per node (level 0 has twice as many).
    #[arg(long, default_value_t = strata::HnswParams::default().m)]
    hnsw_m: usize,
    /// HNSW beam width while building.
    #[arg(long, default_value_t = strata::HnswParams::default().ef_construction)]
    ef_construction: usize,
    /// Bytes per PQ code (default: one per two dimensions).
    #[arg(long)]
    pq_m: Option<usize>,
    /// Where to build the segment indexes: auto (a GPU when this binary has the `gpu`
    /// feature, one is present and the segment is large), cpu, or gpu. The build's
    /// stages (k-means, encode, neighbour lists, graph, write) are timed and printed.
    #[arg(long, default_value = "auto")]
    build_device: strata::BuildDevice,
    /// Only build the store (printing the stage times) and skip the search sweep.
    #[arg(long)]
    build_only: bool,
    /// Write a recall-versus-QPS chart (SVG) of the settings here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// (internal) import time of the build process, for the search process's report.
    #[arg(long, hide = true)]
    imported_in: Option<f64>,
    /// (internal) build time of the build process, for the search process's report.
    #[arg(long, hide = true)]
    built_in: Option<f64>,
}

fn rss_mb(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Pass {
    total: Duration,
    lat: Vec<Duration>,
    results: Vec<Vec<u64>>,
}

fn single_thread_pass(db: &Db, queries: &[Vec<f32>], opts: &SearchOptions) -> Result<Pass> {
    let mut lat = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    let start = Instant::now();
    for q in queries {
        let t = Instant::now();
        let hits = db.search(q, opts)?;
        lat.push(t.elapsed());
        results.push(hits.into_iter().map(|h| h.id).collect());
    }
    Ok(Pass {
        total: start.elapsed(),
        lat,
        results,
    })
}

fn recall(results: &[Vec<u64>], gt: &[Vec<f32>], k: usize) -> f64 {
    let mut found = 0usize;
    for (r, g) in results.iter().zip(gt) {
        let truth: Vec<u64> = g.iter().take(k).map(|&x| x as u64).collect();
        found += r.iter().filter(|id| truth.contains(id)).count();
    }
    found as f64 / (results.len() * k).max(1) as f64
}

/// Runs the benchmark.
pub fn run(a: &BenchArgs) -> Result<()> {
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Only the rows used: the search process's own memory stays small (it is measured).
    let queries = VectorFile::read_first(&a.queries, a.nq)?;
    let gt = VectorFile::read_first(&a.gt, a.nq)?;
    let nq = queries.len();
    ensure!(
        !queries.is_empty() && gt.len() == nq,
        "need queries and one ground-truth row per query"
    );
    let dim = queries[0].len();
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("store")
        }
    };
    let metric: strata::Metric = a.metric.into();

    // Build: import with Durability::Never and one large memtable, then flush to segments
    // (which builds the index). `--reuse` keeps a store already built in `--dir`.
    let (n, import_s, build_s) = if a.reuse && dir.join("MANIFEST").exists() {
        let db = Db::open(&dir, Options::existing())?;
        let n = db.stats()?.live_rows;
        db.close()?;
        (n, a.imported_in.unwrap_or(0.0), a.built_in.unwrap_or(0.0))
    } else {
        let t = Instant::now();
        // A bulk load: the whole set is flushed into one segment at close, whose index
        // is built then, so the memtable's background graph would be wasted work.
        let opts = Options::new(dim, metric)
            .durability(Durability::Never)
            .memtable_bytes(1 << 30)
            .index(strata::IndexOptions {
                memtable_graph: false,
                hnsw: strata::HnswParams {
                    m: a.hnsw_m,
                    ef_construction: a.ef_construction,
                    ..strata::HnswParams::default()
                },
                pq_m: a.pq_m,
                ..strata::IndexOptions::default()
            })
            .build_device(a.build_device);
        let db =
            Db::open(&dir, opts).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut base = VectorFile::open(&a.base)?;
        let n = import_rows(&db, &mut base, 0, 10_000)?;
        eprintln!("imported {n} rows");
        let import_s = t.elapsed().as_secs_f64();
        db.flush()?;
        crate::build_report::print_all(&db.build_reports());
        db.close()?;
        let build_s = t.elapsed().as_secs_f64();
        if a.build_only {
            eprintln!("built {n} rows in {build_s:.2} s (import {import_s:.2} s)");
            return Ok(());
        }
        // Search in a fresh process that only opens the store, as the peers are loaded,
        // so that resident memory is the store's and not the import's.
        let mut child = std::process::Command::new(std::env::current_exe()?);
        child.args(std::env::args_os().skip(1));
        if !a.reuse {
            child.arg("--reuse");
        }
        if a.dir.is_none() {
            child.arg("--dir").arg(&dir);
        }
        child.args([
            "--imported-in",
            &import_s.to_string(),
            "--built-in",
            &build_s.to_string(),
        ]);
        let status = child.status()?;
        anyhow::ensure!(status.success(), "the search process failed");
        return Ok(());
    };
    // Resident memory is reported as the peers report it: the growth of this process's
    // RSS from just before the store is opened (queries and ground truth already loaded).
    let rss_before_open = rss_mb("VmRSS:");
    let t = Instant::now();
    let db = Db::open(&dir, Options::existing().search_threads(Some(1)))?;
    let open_s = t.elapsed().as_secs_f64();
    let s = db.stats()?;
    let disk = s.segment_bytes + s.deletion_bytes + s.wal_bytes + s.manifest_bytes;
    eprintln!(
        "built {n} rows in {build_s:.2} s (import {import_s:.2} s), {} segments, {:.1} MiB on disk; reopened in {:.1} ms; kernels {}",
        s.segments.len(),
        disk as f64 / (1 << 20) as f64,
        open_s * 1e3,
        strata::kernel_name()
    );

    // Settings: every (ef, rerank) pair, then exact search.
    let mut settings: Vec<SearchOptions> = Vec::new();
    for &ef in &a.ef {
        for &rerank in &a.rerank {
            settings.push(SearchOptions {
                k: a.k,
                exact: false,
                ef: Some(ef),
                rerank: Some(rerank),
            });
        }
    }
    if a.exact || settings.is_empty() {
        settings.push(SearchOptions::exact(a.k));
    }

    // Single thread: one query per call, as the peers measure it.
    let mut singles = Vec::with_capacity(settings.len());
    for sopts in &settings {
        for q in queries.iter().take(50) {
            db.search(q, sopts)?;
        }
        let mut best: Option<Pass> = None;
        for _ in 0..a.runs.max(1) {
            let p = single_thread_pass(&db, &queries, sopts)?;
            if best.as_ref().is_none_or(|b| p.total < b.total) {
                best = Some(p);
            }
        }
        let Some(best) = best else {
            unreachable!("at least one run")
        };
        singles.push((best, rss_mb("VmRSS:")));
    }
    // After the whole single-thread sweep: the most this store made resident.
    let swept_rss_delta = rss_mb("VmRSS:") - rss_before_open;
    drop(db);

    // All threads: queries in parallel over one handle.
    let db = Db::open(&dir, Options::existing().search_threads(None))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let mut out = match &a.json {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot write {}", p.display()))?,
        ),
        None => None,
    };
    println!(
        "{:>6} {:>7} {:>8} {:>10} {:>9} {:>9} {:>12} {:>7} {:>9}",
        "ef",
        "rerank",
        "recall",
        "qps_1thr",
        "p50_ms",
        "p99_ms",
        "qps_all_thr",
        "rss_mb",
        "rss_delta"
    );
    let mut points = Vec::new();
    for (sopts, (mut best, rss)) in settings.iter().zip(singles) {
        let t = Instant::now();
        pool.install(|| {
            queries
                .par_iter()
                .try_for_each(|q| db.search(q, sopts).map(|_| ()))
        })?;
        let qps_all = nq as f64 / t.elapsed().as_secs_f64();
        best.lat.sort();
        let pct = |p: f64| {
            best.lat[((best.lat.len() as f64 * p) as usize).min(best.lat.len() - 1)].as_secs_f64()
                * 1e3
        };
        let rec = recall(&best.results, &gt, a.k);
        let qps1 = nq as f64 / best.total.as_secs_f64();
        let (config, param) = if sopts.exact {
            ("strata-exact", json!({"mode": "exact"}))
        } else {
            ("strata", json!({"ef": sopts.ef, "rerank": sopts.rerank}))
        };
        let label = |x: Option<usize>| x.map_or("exact".to_string(), |v| v.to_string());
        let rss_delta = rss - rss_before_open;
        println!(
            "{:>6} {:>7} {rec:>8.4} {qps1:>10.1} {:>9.3} {:>9.3} {qps_all:>12.1} {rss:>7.0} {rss_delta:>9.1}",
            label(sopts.ef.filter(|_| !sopts.exact)),
            label(sopts.rerank.filter(|_| !sopts.exact)),
            pct(0.5),
            pct(0.99)
        );
        let line = json!({
            "config": config, "library": "strata", "version": env!("CARGO_PKG_VERSION"),
            "index_type": if sopts.exact { "exact (SIMD brute force over mmap'd segments)" } else { "HNSW on PQ codes + exact rerank (mmap'd segments)" },
            "search_param": param,
            "ef": if sopts.exact { None } else { sopts.ef }, "rerank": if sopts.exact { None } else { sopts.rerank },
            "k": a.k, "nq": nq, "n": n,
            "recall": rec, "qps_1thread": qps1, "qps_single": qps1, "qps_all_threads": qps_all, "threads": threads,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "mean_ms": best.total.as_secs_f64() * 1e3 / nq as f64,
            "build_s": build_s, "import_s": import_s, "open_s": open_s, "build_threads": threads,
            "rss_mb": rss, "peak_rss_mb": rss_mb("VmHWM:"), "disk_bytes": disk,
            "rss_after_search_delta_mb": rss_delta, "loaded_rss_delta_mb": swept_rss_delta,
            "disk_bytes_by_kind": {"segments": s.segment_bytes, "deletions": s.deletion_bytes, "wal": s.wal_bytes, "manifest": s.manifest_bytes},
            "kernels": strata::kernel_name(),
        });
        if let Some(f) = out.as_mut() {
            writeln!(f, "{line}")?;
        }
        let label = if sopts.exact {
            "exact".to_string()
        } else {
            format!("ef={} rr={}", label(sopts.ef), label(sopts.rerank))
        };
        points.push(crate::plot::Point {
            label,
            recall: rec,
            qps: qps1,
        });
    }
    if let Some(p) = &a.plot {
        let title = format!(
            "strata on {} ({n} rows, k={})",
            a.base.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
            a.k
        );
        crate::plot::recall_qps(p, &title, &points)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
