//! `strata bench-remote`: a store kept in a bucket, measured: bucket-durable write and
//! flush commit latency, a cold replica's bytes and time to its first answer, replica
//! QPS cold and warm against the primary's, and how long a replica takes to follow a
//! new commit. Every figure is printed and, with --json, written as one JSON object.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use strata::{Db, Durability, Options, RemoteConfig, SearchOptions};

use crate::input::VectorFile;
use crate::MetricArg;

/// Arguments of `strata bench-remote`.
#[derive(clap::Args)]
pub struct BenchRemoteArgs {
    /// The bucket, at a prefix no store uses: s3://bucket/prefix, file:///folder, ...
    /// (AWS_* variables give an S3 endpoint and credentials).
    #[arg(long)]
    remote: String,
    /// Base vectors (.fvecs, .bvecs or .npy).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    queries: PathBuf,
    /// Metric of the data set.
    #[arg(long, value_enum, default_value = "l2")]
    metric: MetricArg,
    /// Use the first N base rows (0: all).
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Queries (from the start of the query file).
    #[arg(long, default_value_t = 500)]
    nq: usize,
    /// Bucket-durable single writes and one-row flush commits timed.
    #[arg(long, default_value_t = 200)]
    commits: usize,
    /// Beam width of the searches compared.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Replica cache for full vectors, in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mb: u64,
    /// Working directory (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn millis(mut v: Vec<Duration>) -> (f64, f64) {
    let mut ms: Vec<f64> = v.drain(..).map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.99))
}

/// Runs the benchmark.
pub fn run(a: &BenchRemoteArgs) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let (primary_dir, cache_dir) = (root.join("primary"), root.join("replica"));
    let mut base = VectorFile::read_all(&a.base)?;
    if a.rows > 0 {
        base.truncate(a.rows);
    }
    let mut queries = VectorFile::read_all(&a.queries)?;
    queries.truncate(a.nq.max(1));
    let dim = base.first().map_or(0, Vec::len);
    let config = RemoteConfig::new(a.remote.clone());
    let opts = Options::new(dim, a.metric.into())
        .remote(config.clone())
        .durability(Durability::Never)
        .background_compaction(false)
        .background_calibration(false)
        .memtable_bytes(1 << 30);
    let db = Db::open(&primary_dir, opts).context("cannot create the bucket store")?;
    let start = Instant::now();
    for chunk in base.chunks(1000).enumerate() {
        let mut batch = strata::WriteBatch::new();
        for (i, v) in chunk.1.iter().enumerate() {
            batch.upsert((chunk.0 * 1000 + i) as u64, v);
        }
        db.write(batch)?;
    }
    db.flush()?;
    let build = start.elapsed();
    eprintln!(
        "built and uploaded {} rows in {:.1} s",
        base.len(),
        build.as_secs_f64()
    );

    // Bucket-durable writes: each acknowledged once its log record is in the bucket.
    let mut writes = Vec::with_capacity(a.commits);
    let bucket = strata::WriteOptions {
        durability: Some(Durability::Bucket),
    };
    for i in 0..a.commits {
        let id = (base.len() + i) as u64;
        let mut batch = strata::WriteBatch::new();
        batch.upsert(id, &base[i % base.len()]);
        let t = Instant::now();
        db.write_opt(batch, bucket)?;
        writes.push(t.elapsed());
    }
    // Flush commits of one row: segment upload, create-only commit, local manifest.
    let mut commits = Vec::with_capacity(a.commits);
    for i in 0..a.commits {
        db.upsert((2 * base.len() + i) as u64, &base[i % base.len()])?;
        let t = Instant::now();
        db.flush()?;
        commits.push(t.elapsed());
    }
    let (write_p50, write_p99) = millis(writes);
    let (commit_p50, commit_p99) = millis(commits);
    eprintln!("bucket-durable write: p50 {write_p50:.2} ms, p99 {write_p99:.2} ms");
    eprintln!("one-row flush commit: p50 {commit_p50:.2} ms, p99 {commit_p99:.2} ms");
    db.compact(true, &|_, _, _| true)?;

    let search = SearchOptions {
        ef: Some(a.ef),
        ..SearchOptions::new(10)
    };
    let qps = |f: &dyn Fn(&[f32]) -> Result<Vec<strata::Hit>>| -> Result<f64> {
        let t = Instant::now();
        for q in &queries {
            f(q)?;
        }
        Ok(queries.len() as f64 / t.elapsed().as_secs_f64())
    };
    let primary_qps = {
        qps(&|q| Ok(db.search(q, &search)?))?;
        qps(&|q| Ok(db.search(q, &search)?))?
    };

    // A cold replica: open and first answer, then a cold and a warm pass.
    let t = Instant::now();
    let replica = Db::open_replica(config.clone(), &cache_dir, a.cache_mb << 20)?;
    replica.search(&queries[0], &search)?;
    let first_answer = t.elapsed();
    let after_first = replica.replica_stats();
    let cold_qps = qps(&|q| Ok(replica.search(q, &search)?))?;
    let warm_qps = qps(&|q| Ok(replica.search(q, &search)?))?;
    let mut same = 0;
    for q in &queries {
        let ids = |h: Vec<strata::Hit>| h.into_iter().map(|h| h.id).collect::<Vec<_>>();
        if ids(replica.search(q, &search)?) == ids(db.search(q, &search)?) {
            same += 1;
        }
    }
    let stats = replica.replica_stats();
    eprintln!(
        "cold replica: first answer after {:.1} ms, {} bytes fetched ({} of segment fronts, {} of vectors); QPS cold {cold_qps:.0}, warm {warm_qps:.0}, primary {primary_qps:.0}; {same}/{} answers identical",
        first_answer.as_secs_f64() * 1e3,
        after_first.front_bytes + after_first.vector_bytes,
        after_first.front_bytes,
        after_first.vector_bytes,
        queries.len()
    );

    // Catch-up: a new commit, until the replica's background follower answers at it.
    let mut lags = Vec::new();
    for i in 0..5 {
        db.upsert((3 * base.len() + i) as u64, &base[i])?;
        db.flush()?;
        let seq = strata::remote_store::Bucket::connect(&config)?
            .latest()?
            .map_or(0, |m| m.seq);
        let t = Instant::now();
        while replica.seq() < seq {
            std::thread::sleep(Duration::from_millis(5));
            if t.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("the replica did not follow commit {seq} within 30 s");
            }
        }
        lags.push(t.elapsed());
    }
    let (lag_p50, lag_max) = {
        let mut ms: Vec<f64> = lags.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        (percentile(&ms, 0.5), ms.last().copied().unwrap_or(0.0))
    };
    eprintln!(
        "replica catch-up after a commit: p50 {lag_p50:.0} ms, max {lag_max:.0} ms (it polls every {} ms)",
        strata::replica::FOLLOW_EVERY.as_millis()
    );
    let out = json!({
        "rows": base.len(), "dim": dim, "nq": queries.len(), "ef": a.ef,
        "build_seconds": build.as_secs_f64(),
        "bucket_write_ms": {"p50": write_p50, "p99": write_p99},
        "flush_commit_ms": {"p50": commit_p50, "p99": commit_p99},
        "replica_first_answer_ms": first_answer.as_secs_f64() * 1e3,
        "replica_first_answer_bytes": after_first.front_bytes + after_first.vector_bytes,
        "replica_qps": {"cold": cold_qps, "warm": warm_qps},
        "primary_qps": primary_qps,
        "replica_identical_answers": same,
        "replica_vector_bytes": stats.vector_bytes,
        "replica_catch_up_ms": {"p50": lag_p50, "max": lag_max},
    });
    println!("{out}");
    if let Some(path) = &a.json {
        std::fs::write(path, out.to_string())?;
    }
    drop(replica);
    db.close()?;
    Ok(())
}
