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

use crate::import::{write_rows, Plan};
use crate::input::VectorFile;
use crate::{CodecArg, MetricArg};

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
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,160,320")]
    ef: Vec<usize>,
    /// Exact-rerank depths to sweep (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    rerank: Vec<usize>,
    /// Target recalls to measure (comma-separated, e.g. 0.95): searches without `ef`,
    /// each segment walked at the width its calibration gives
    /// (`SearchOptions::target_recall`, docs/calibration.md).
    #[arg(long, value_delimiter = ',')]
    target_recall: Vec<f64>,
    /// Calibrate the store on queries from this file (`Db::calibrate`) before the
    /// sweep; without it, on its rows (or its saved calibration). Use queries that are
    /// not measured: another file, or `--calibrate-skip` past the measured ones.
    #[arg(long)]
    calibrate: Option<PathBuf>,
    /// Calibrate on the odd rows of the first 2·nq rows of `--queries` and measure the
    /// even ones (their ground truth the even rows of `--gt`): two samples of the same
    /// query distribution, however the file is ordered.
    #[arg(long, conflicts_with = "calibrate")]
    calibrate_interleaved: bool,
    /// After the sweep, serve the queries once more per setting (per target recall when
    /// there are any) with this fraction of them sampled for recall measurement
    /// (`Options::recall_sampling`) and print the store's observed recall beside the
    /// true recall of those searches.
    #[arg(long)]
    observe_recall: Option<f64>,
    /// Rows of the `--calibrate` file to skip first.
    #[arg(long, default_value_t = 0)]
    calibrate_skip: usize,
    /// Rows of the `--calibrate` file to calibrate on.
    #[arg(long, default_value_t = 1000)]
    calibrate_nq: usize,
    /// Whether searches request the pages they read next together: the walk's rows and
    /// graph rows, the rerank candidates' vectors (`strata search --prefetch`).
    #[arg(long, value_enum, default_value = "auto")]
    prefetch: crate::PrefetchArg,
    /// Keep each segment's search front (PQ codes, graph) in process memory
    /// (`Options::resident_front`) instead of the page cache.
    #[arg(long)]
    resident_front: bool,
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
    /// Walk `f32`/`f16` segments on PQ codes of this many bytes per row instead of the
    /// default walk codes (8-bit scalar codes up to 512 dimensions; above, PQ with a
    /// byte per four dimensions, at least 32).
    #[arg(long)]
    pq_m: Option<usize>,
    /// What `f32` and `f16` segments are walked on before the rerank.
    #[arg(long, value_enum, default_value = "auto")]
    walk_codes: crate::WalkCodesArg,
    /// How the store keeps its full vectors (`strata create --vector-codec`).
    #[arg(long, value_enum, default_value = "f32")]
    vector_codec: CodecArg,
    /// Where to build the segment indexes: auto (a GPU when this binary has the `gpu`
    /// feature, one is present and the segment is large), cpu, or gpu. The build's
    /// stages (k-means, encode, neighbour lists, graph, write) are timed and printed.
    #[arg(long, default_value = "auto")]
    build_device: strata::BuildDevice,
    /// Only build the store (printing the stage times) and skip the search sweep.
    #[arg(long)]
    build_only: bool,
    /// Install a Prometheus recorder first, so that the store reports its metrics
    /// (docs/metrics.md) while it is measured: what a monitored deployment pays.
    #[arg(long)]
    metrics: bool,
    /// Write a recall-versus-QPS chart (SVG) of the settings here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// A JSON-lines file whose line i is the metadata object of base row i (imported
    /// with the vectors; `bench/filtered/gen.py` writes one).
    #[arg(long)]
    metadata: Option<PathBuf>,
    /// A JSON-lines file whose line i is the filter of query i: every search is
    /// filtered, and `--gt` must be the ground truth among each query's matching rows.
    #[arg(long)]
    filters: Option<PathBuf>,
    /// A name for this run in the JSON lines (`"tag"`), e.g. the filter bucket.
    #[arg(long)]
    tag: Option<String>,
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

/// One timed pass over the queries, kept as figures only (the results are scored and
/// dropped at the end of the pass, so that the RSS figures count the store, not them).
struct Pass {
    total: Duration,
    lat: Vec<Duration>,
    /// Results that are among their query's `k` true nearest.
    found: usize,
    /// The fewest results any query returned.
    min_results: usize,
}

/// Each query's filter (`None` inside: unfiltered), from `--filters`.
type Filters = Vec<Option<strata::Filter>>;

/// `opts` with query `i`'s filter.
fn for_query(opts: &SearchOptions, filters: &Filters, i: usize) -> SearchOptions {
    SearchOptions {
        filter: filters.get(i).cloned().flatten(),
        ..opts.clone()
    }
}

fn single_thread_pass(
    db: &Db,
    queries: &[Vec<f32>],
    filters: &Filters,
    opts: &SearchOptions,
    gt: &[Vec<f32>],
) -> Result<Pass> {
    let k = opts.k;
    let mut lat = Vec::with_capacity(queries.len());
    // Each query's ids in `k` slots (one allocation per pass, freed with it).
    let mut ids = vec![u64::MAX; queries.len() * k.max(1)];
    let mut min_results = usize::MAX;
    // Filters are cloned into the options outside the timed call.
    let per_query: Vec<SearchOptions> = (0..queries.len())
        .map(|i| for_query(opts, filters, i))
        .collect();
    let start = Instant::now();
    for ((q, o), slots) in queries.iter().zip(&per_query).zip(ids.chunks_mut(k.max(1))) {
        let t = Instant::now();
        let hits = db.search(q, o)?;
        lat.push(t.elapsed());
        min_results = min_results.min(hits.len());
        slots.iter_mut().zip(&hits).for_each(|(s, h)| *s = h.id);
    }
    let total = start.elapsed();
    let found = ids
        .chunks(k.max(1))
        .zip(gt)
        .map(|(r, g)| {
            let truth: Vec<u64> = g.iter().take(k).map(|&x| x as u64).collect();
            r.iter().filter(|id| truth.contains(id)).count()
        })
        .sum();
    Ok(Pass {
        total,
        lat,
        found,
        min_results: if queries.is_empty() { 0 } else { min_results },
    })
}

/// Runs `strata bench`: build (or reuse) the store, then search it in a fresh process
/// and report every setting.
pub fn run(a: &BenchArgs) -> Result<()> {
    let _recorder = if a.metrics {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
        eprintln!("metrics: reporting to a Prometheus recorder");
        Some(handle)
    } else {
        None
    };
    // Only the rows used: the search process's own memory stays small (it is measured).
    let (queries, gt, held_out) = if a.calibrate_interleaved {
        let n = a.nq.map(|n| 2 * n);
        let (odd, even) = split_odd(VectorFile::read_first(&a.queries, n)?);
        let (_, gt) = split_odd(VectorFile::read_first(&a.gt, n)?);
        (even, gt, odd)
    } else {
        (
            VectorFile::read_first(&a.queries, a.nq)?,
            VectorFile::read_first(&a.gt, a.nq)?,
            Vec::new(),
        )
    };
    ensure!(
        !queries.is_empty() && gt.len() == queries.len(),
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
    // `--reuse` keeps a store already built in `--dir` (the search process is one).
    if a.reuse && dir.join("MANIFEST").exists() {
        let db = Db::open(&dir, Options::existing())?;
        let built = Built {
            rows: db.stats()?.live_rows,
            import_s: a.imported_in.unwrap_or(0.0),
            build_s: a.built_in.unwrap_or(0.0),
        };
        db.close()?;
        return search(a, &dir, (&queries, &gt), &held_out, &built);
    }
    let built = build(a, &dir, dim)?;
    if a.build_only {
        eprintln!(
            "built {} rows in {:.2} s (import {:.2} s)",
            built.rows, built.build_s, built.import_s
        );
        return Ok(());
    }
    search_in_fresh_process(a, &dir, &built)
}

/// What the build phase did.
struct Built {
    rows: u64,
    import_s: f64,
    build_s: f64,
}

/// Imports `--base` with `Durability::Never` into one large memtable, then flushes it
/// to a segment (which builds the index) and closes the store.
fn build(a: &BenchArgs, dir: &std::path::Path, dim: usize) -> Result<Built> {
    let t = Instant::now();
    // A bulk load: the whole set is flushed into one segment at close, whose index is
    // built then, so the memtable's background graph would be wasted work.
    let opts = Options::new(dim, a.metric.into())
        .vector_codec(a.vector_codec.into())
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
            walk_codes: a.walk_codes.into(),
            ..strata::IndexOptions::default()
        })
        .build_device(a.build_device);
    let db = Db::open(dir, opts).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut base = VectorFile::open(&a.base)?;
    if let Some(m) = &a.metadata {
        base = base.with_metadata_file(m)?;
    }
    let rows = write_rows(&db, &mut base, &Plan::all(10_000), 0)?.written;
    eprintln!("imported {rows} rows");
    let import_s = t.elapsed().as_secs_f64();
    db.flush()?;
    crate::build_report::print_all(&db.build_reports());
    db.close()?;
    Ok(Built {
        rows,
        import_s,
        build_s: t.elapsed().as_secs_f64(),
    })
}

/// Searches in a fresh process that only opens the store, as the peers are loaded, so
/// that resident memory is the store's and not the import's.
fn search_in_fresh_process(a: &BenchArgs, dir: &std::path::Path, built: &Built) -> Result<()> {
    let mut child = std::process::Command::new(std::env::current_exe()?);
    child.args(std::env::args_os().skip(1));
    if !a.reuse {
        child.arg("--reuse");
    }
    if a.dir.is_none() {
        child.arg("--dir").arg(dir);
    }
    child.args([
        "--imported-in",
        &built.import_s.to_string(),
        "--built-in",
        &built.build_s.to_string(),
    ]);
    let status = child.status()?;
    ensure!(status.success(), "the search process failed");
    Ok(())
}

/// The store as the search phase opened it.
struct Opened {
    /// This process's RSS just before the open (queries and ground truth loaded).
    rss_before_open: f64,
    open_s: f64,
    stats: strata::Stats,
    disk: u64,
}

/// The search phase: every setting on one thread (best of `--runs`), then on all
/// threads, one table row and JSON line per setting, and the chart.
fn search(
    a: &BenchArgs,
    dir: &std::path::Path,
    (queries, gt): (&[Vec<f32>], &[Vec<f32>]),
    held_out: &[Vec<f32>],
    built: &Built,
) -> Result<()> {
    // Resident memory is reported as the peers report it: the growth of this process's
    // RSS from just before the store is opened.
    let rss_before_open = rss_mb("VmRSS:");
    let t = Instant::now();
    // No background calibration while measuring: the store is calibrated once, below,
    // and the measured queries never join its calibration sample.
    let db = Db::open(
        dir,
        Options::existing()
            .search_threads(Some(1))
            .resident_front(a.resident_front)
            .background_calibration(false),
    )?;
    let open_s = t.elapsed().as_secs_f64();
    let stats = db.stats()?;
    let disk = stats.segment_bytes + stats.deletion_bytes + stats.wal_bytes + stats.manifest_bytes;
    eprintln!(
        "built {} rows in {:.2} s (import {:.2} s), {} segments, {:.1} MiB on disk; reopened in {:.1} ms; kernels {}",
        built.rows,
        built.build_s,
        built.import_s,
        stats.segments.len(),
        disk as f64 / (1 << 20) as f64,
        open_s * 1e3,
        strata::kernel_name()
    );
    let opened = Opened {
        rss_before_open,
        open_s,
        stats,
        disk,
    };
    calibrate(a, &db, held_out)?;
    let filters: Filters = match &a.filters {
        Some(f) => crate::ops::read_filters(f, queries.len())?,
        None => Vec::new(),
    };
    // Build the segments' metadata indexes before timing (a store does it on first use).
    if let Some(f) = filters.iter().flatten().next() {
        db.count(Some(f))?;
    }
    let settings = settings(a);
    let singles = single_thread_sweep(&db, queries, gt, &filters, &settings, a.runs)?;
    // After the whole single-thread sweep: the most this store made resident.
    let swept_rss_delta = rss_mb("VmRSS:") - rss_before_open;
    drop(db);
    if let Some(fraction) = a.observe_recall {
        observe_recall(a, dir, (queries, gt), &filters, &settings, fraction)?;
    }

    let db = Db::open(
        dir,
        Options::existing()
            .search_threads(None)
            .resident_front(a.resident_front)
            .background_calibration(false),
    )?;
    if let Some(f) = filters.iter().flatten().next() {
        db.count(Some(f))?;
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
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
        // All threads: queries in parallel over one handle.
        let t = Instant::now();
        pool.install(|| {
            queries
                .par_iter()
                .enumerate()
                .try_for_each(|(i, q)| db.search(q, &for_query(sopts, &filters, i)).map(|_| ()))
        })?;
        let all = AllThreads {
            qps: queries.len() as f64 / t.elapsed().as_secs_f64(),
            threads,
        };
        best.lat.sort();
        let row = Row {
            sopts,
            best: &best,
            recall: best.found as f64 / (queries.len() * a.k).max(1) as f64,
            rss,
            swept_rss_delta,
        };
        let line = row.print_and_json(a, built, &opened, &all);
        if let Some(f) = out.as_mut() {
            writeln!(f, "{line}")?;
        }
        points.push(row.point());
    }
    if let Some(p) = &a.plot {
        let title = format!(
            "strata on {} ({} rows, k={})",
            a.base.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
            built.rows,
            a.k
        );
        crate::plot::recall_qps(p, &title, &points)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// Per setting: serves the queries once with `fraction` of them sampled, and prints the
/// observed recall (with its interval) beside the true recall of the same searches.
fn observe_recall(
    a: &BenchArgs,
    dir: &std::path::Path,
    (queries, gt): (&[Vec<f32>], &[Vec<f32>]),
    filters: &Filters,
    settings: &[SearchOptions],
    fraction: f64,
) -> Result<()> {
    let sampling = strata::RecallSampling {
        window: queries.len(),
        seed: 1,
        ..strata::RecallSampling::new(fraction)
    };
    let db = Db::open(
        dir,
        Options::existing()
            .search_threads(Some(1))
            .resident_front(a.resident_front)
            .background_calibration(false)
            .recall_sampling(sampling),
    )?;
    println!(
        "{:>6} {:>7} {:>9} {:>9} {:>19} {:>8} {:>8}",
        "ef", "rerank", "recall", "observed", "95% interval", "sampled", "error"
    );
    let drain = |below: usize| {
        while db.recall_samples_pending() > below {
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    // The searches by target recall when there are any (each sample costs an exact
    // search), else every setting.
    let by_target: Vec<&SearchOptions> = settings
        .iter()
        .filter(|s| s.ef.is_none() && !s.exact)
        .collect();
    let observed: Vec<&SearchOptions> = if by_target.is_empty() {
        settings.iter().collect()
    } else {
        by_target
    };
    for sopts in observed {
        db.reset_observed_recall();
        let mut found = 0;
        for (i, (q, g)) in queries.iter().zip(gt).enumerate() {
            let hits = db.search(q, &for_query(sopts, filters, i))?;
            let truth: Vec<u64> = g.iter().take(a.k).map(|&x| x as u64).collect();
            found += hits.iter().filter(|h| truth.contains(&h.id)).count();
            // Searches back to back outrun the exact re-runs: let the queue drain
            // rather than drop samples (dropping would sample by time, not by query).
            if db.recall_samples_pending() >= 128 {
                drain(16);
            }
        }
        let truth = found as f64 / (queries.len() * a.k).max(1) as f64;
        drain(0); // queued and in flight
        let Some(o) = db.observed_recall() else {
            println!(
                "{:>6} {:>7} {truth:>9.4} (nothing sampled)",
                ef_label(sopts),
                label(sopts.rerank)
            );
            continue;
        };
        let e = o.overall;
        ensure!(o.dropped == 0, "{} samples were dropped", o.dropped);
        println!(
            "{:>6} {:>7} {truth:>9.4} {:>9.4} [{:.4}, {:.4}] {:>8} {:>+8.4}",
            ef_label(sopts),
            label(sopts.rerank.filter(|_| !sopts.exact)),
            e.recall,
            e.low,
            e.high,
            e.queries,
            e.recall - truth
        );
    }
    Ok(())
}

/// Rows `1, 3, 5, ...` and rows `0, 2, 4, ...` of `rows`.
fn split_odd(rows: Vec<Vec<f32>>) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (odd, even): (Vec<_>, Vec<_>) = rows.into_iter().enumerate().partition(|(i, _)| i % 2 == 1);
    let strip = |v: Vec<(usize, Vec<f32>)>| v.into_iter().map(|(_, r)| r).collect();
    (strip(odd), strip(even))
}

/// Calibrates the store as `--calibrate` or `--calibrate-interleaved` asks (on those
/// queries, else what is pending) and prints each segment's calibration, when any
/// setting uses one.
fn calibrate(a: &BenchArgs, db: &Db, held_out: &[Vec<f32>]) -> Result<()> {
    if a.target_recall.is_empty() {
        return Ok(());
    }
    let t = Instant::now();
    match &a.calibrate {
        None if a.calibrate_interleaved => {
            let refs: Vec<&[f32]> = held_out.iter().map(Vec::as_slice).collect();
            db.calibrate(&refs)?;
            eprintln!(
                "calibrated on {} queries (the odd rows of --queries) in {:.2} s",
                refs.len(),
                t.elapsed().as_secs_f64()
            );
        }
        Some(path) => {
            let mut q = VectorFile::read_first(path, Some(a.calibrate_skip + a.calibrate_nq))?;
            let q = q.split_off(a.calibrate_skip.min(q.len()));
            let refs: Vec<&[f32]> = q.iter().map(Vec::as_slice).collect();
            db.calibrate(&refs)
                .with_context(|| format!("calibrating on {}", path.display()))?;
            eprintln!(
                "calibrated on {} queries of {} in {:.2} s",
                q.len(),
                path.display(),
                t.elapsed().as_secs_f64()
            );
        }
        None => {
            let n = db.calibrate_pending()?;
            eprintln!(
                "calibrated {n} segments on their rows in {:.2} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    for c in db.calibration() {
        eprintln!(
            "segment {}: {} rows, calibrated on {} {:?}, width {} for recall {}",
            c.segment,
            c.rows,
            c.queries,
            c.source,
            c.default_ef,
            SearchOptions::DEFAULT_TARGET_RECALL
        );
    }
    Ok(())
}

/// Every (ef, rerank) pair, every target recall, then exact search (also when nothing
/// else is asked for).
fn settings(a: &BenchArgs) -> Vec<SearchOptions> {
    let mut settings: Vec<SearchOptions> = Vec::new();
    for &t in &a.target_recall {
        settings.push(SearchOptions {
            target_recall: Some(t),
            prefetch: a.prefetch.into(),
            ..SearchOptions::new(a.k)
        });
    }
    for &ef in &a.ef {
        for &rerank in &a.rerank {
            settings.push(SearchOptions {
                ef: Some(ef),
                rerank: Some(rerank),
                prefetch: a.prefetch.into(),
                ..SearchOptions::new(a.k)
            });
        }
    }
    if a.exact || settings.is_empty() {
        settings.push(SearchOptions::exact(a.k));
    }
    settings
}

/// Single thread, one query per call, as the peers measure it: per setting, a warm-up,
/// then the fastest of `runs` passes and the RSS after it.
fn single_thread_sweep(
    db: &Db,
    queries: &[Vec<f32>],
    gt: &[Vec<f32>],
    filters: &Filters,
    settings: &[SearchOptions],
    runs: usize,
) -> Result<Vec<(Pass, f64)>> {
    let mut singles = Vec::with_capacity(settings.len());
    for sopts in settings {
        for (i, q) in queries.iter().enumerate().take(50) {
            db.search(q, &for_query(sopts, filters, i))?;
        }
        let mut best = single_thread_pass(db, queries, filters, sopts, gt)?;
        for _ in 1..runs.max(1) {
            let p = single_thread_pass(db, queries, filters, sopts, gt)?;
            if p.total < best.total {
                best = p;
            }
        }
        singles.push((best, rss_mb("VmRSS:")));
    }
    Ok(singles)
}

/// A setting's `ef` as printed: `exact`, the width, or `t` and the target recall.
fn ef_label(sopts: &SearchOptions) -> String {
    match (sopts.exact, sopts.ef, sopts.target_recall) {
        (true, _, _) => "exact".to_string(),
        (false, Some(ef), _) => ef.to_string(),
        (false, None, Some(t)) => format!("t{t}"),
        (false, None, None) => "default".to_string(),
    }
}

/// A setting's `ef` or `rerank` as printed (`exact` when unset).
fn label(x: Option<usize>) -> String {
    x.map_or("exact".to_string(), |v| v.to_string())
}

/// The all-threads figure of one setting.
struct AllThreads {
    qps: f64,
    threads: usize,
}

/// One setting's single-thread figures.
struct Row<'a> {
    sopts: &'a SearchOptions,
    /// The fastest pass, latencies sorted.
    best: &'a Pass,
    recall: f64,
    rss: f64,
    swept_rss_delta: f64,
}

impl Row<'_> {
    fn qps(&self) -> f64 {
        self.best.lat.len() as f64 / self.best.total.as_secs_f64()
    }

    /// The `p` quantile of the latencies, in milliseconds.
    fn pct(&self, p: f64) -> f64 {
        let lat = &self.best.lat;
        lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3
    }

    /// Prints the table row and returns the JSON line (the keys of `../shared/peers`).
    fn print_and_json(
        &self,
        a: &BenchArgs,
        built: &Built,
        o: &Opened,
        all: &AllThreads,
    ) -> serde_json::Value {
        let (sopts, rec, qps1, rss) = (self.sopts, self.recall, self.qps(), self.rss);
        let nq = self.best.lat.len();
        // A store of another codec than f32 is its own config (`strata-int8`).
        let codec = match o.stats.segments.first().map(|g| g.vector_codec) {
            Some(c) if c != "f32" => format!("-{c}"),
            _ => String::new(),
        };
        let (config, param) = if sopts.exact {
            (format!("strata-exact{codec}"), json!({"mode": "exact"}))
        } else if sopts.ef.is_none() {
            (
                format!("strata-target{codec}"),
                json!({"target_recall": sopts.target_recall}),
            )
        } else {
            (
                format!("strata{codec}"),
                json!({"ef": sopts.ef, "rerank": sopts.rerank}),
            )
        };
        let rss_delta = rss - o.rss_before_open;
        println!(
            "{:>6} {:>7} {rec:>8.4} {qps1:>10.1} {:>9.3} {:>9.3} {:>12.1} {rss:>7.0} {rss_delta:>9.1}",
            ef_label(sopts),
            label(sopts.rerank.filter(|_| !sopts.exact)),
            self.pct(0.5),
            self.pct(0.99),
            all.qps
        );
        let s = &o.stats;
        json!({
            "config": config, "library": "strata", "version": env!("CARGO_PKG_VERSION"),
            "index_type": if sopts.exact { "exact (SIMD brute force over mmap'd segments)" } else if codec == "-int8" { "HNSW on int8 rows (mmap'd segments)" } else { "HNSW on walk codes (8-bit scalar or PQ; small f32 segments on their rows) + exact rerank (mmap'd segments)" },
            "search_param": param, "tag": a.tag,
            "filtered": a.filters.is_some(), "min_results": self.best.min_results,
            "ef": if sopts.exact { None } else { sopts.ef }, "target_recall": if sopts.exact || sopts.ef.is_some() { None } else { sopts.target_recall }, "rerank": if sopts.exact { None } else { sopts.rerank },
            "k": a.k, "nq": nq, "n": built.rows,
            "recall": rec, "qps_1thread": qps1, "qps_single": qps1, "qps_all_threads": all.qps, "threads": all.threads,
            "p50_ms": self.pct(0.5), "p99_ms": self.pct(0.99), "mean_ms": self.best.total.as_secs_f64() * 1e3 / nq as f64,
            "build_s": built.build_s, "import_s": built.import_s, "open_s": o.open_s, "build_threads": all.threads,
            "rss_mb": rss, "peak_rss_mb": rss_mb("VmHWM:"), "disk_bytes": o.disk,
            "rss_after_search_delta_mb": rss_delta, "loaded_rss_delta_mb": self.swept_rss_delta,
            "vector_codec": s.segments.first().map(|g| g.vector_codec),
            "vector_bytes": s.segments.iter().map(|g| g.vector_bytes).sum::<u64>(),
            "front_bytes": s.segments.iter().map(|g| g.front_bytes).sum::<u64>(),
            "front_in_memory": s.segments.iter().map(|g| g.front_in_memory).sum::<u64>(),
            "disk_bytes_by_kind": {"segments": s.segment_bytes, "deletions": s.deletion_bytes, "wal": s.wal_bytes, "manifest": s.manifest_bytes},
            "kernels": strata::kernel_name(),
        })
    }

    /// The chart point of this setting.
    fn point(&self) -> crate::plot::Point {
        let sopts = self.sopts;
        let text = if sopts.exact {
            "exact".to_string()
        } else {
            format!("ef={} rr={}", ef_label(sopts), label(sopts.rerank))
        };
        crate::plot::Point {
            label: text,
            recall: self.recall,
            qps: self.qps(),
        }
    }
}
