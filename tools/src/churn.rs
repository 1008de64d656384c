//! `strata churn`: the compaction benchmark. Every row of a real data set is upserted
//! several times (each round gives an id another row's vector), a fraction is deleted,
//! and background compaction settles the store while a reader searches. Reports write
//! amplification by kind, space amplification against a fresh store of the survivors,
//! search latency while compactions run against idle, and compaction throughput.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;
use strata::{Db, Durability, Metric, Options, SearchOptions, WriteBatch};

use crate::input::VectorFile;
use crate::{progress, MetricArg};

/// Arguments of `strata churn`.
#[derive(clap::Args)]
pub struct ChurnArgs {
    /// Base vectors (.fvecs, .bvecs or .npy).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors (default: the first rows of the base set).
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Metric of the data set.
    #[arg(long, value_enum, default_value = "l2")]
    metric: MetricArg,
    /// Use the first N base rows (0: all of them).
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Times every row is upserted.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Fraction of ids deleted after the last round.
    #[arg(long, default_value_t = 0.3)]
    delete: f64,
    /// Queries the reader cycles through (and recall is measured on).
    #[arg(long, default_value_t = 200)]
    nq: usize,
    /// Memtable size in MiB (default: the store's default); smaller means more flushes
    /// and more segments for compaction to merge.
    #[arg(long)]
    memtable_mb: Option<usize>,
    /// Threads a search may use (default: the global rayon pool, all cores; 1 searches
    /// on the caller's thread).
    #[arg(long)]
    search_threads: Option<usize>,
    /// Build flushed segments at idle priority (`Options::low_priority_flush`).
    #[arg(long)]
    low_priority_flush: bool,
    /// Threads of the compaction budget.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed of the deleted set.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Run in this directory (kept) instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Append the figures as one JSON line here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Search latencies, split by whether a compaction was running when the query began.
#[derive(Default)]
struct Latencies {
    compacting: Vec<Duration>,
    idle: Vec<Duration>,
}

fn pct(lat: &mut [Duration], p: f64) -> f64 {
    if lat.is_empty() {
        return f64::NAN;
    }
    lat.sort();
    lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3
}

/// Searches the queries round-robin until `stop`, timing each.
fn search_until(db: &Db, queries: &[Vec<f32>], stop: &AtomicBool) -> Result<Latencies> {
    let mut lat = Latencies::default();
    let opts = SearchOptions::default();
    for q in queries.iter().cycle() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let running = db.compaction_running();
        let t = Instant::now();
        db.search(q, &opts)?;
        let took = t.elapsed();
        if running {
            lat.compacting.push(took);
        } else {
            lat.idle.push(took);
        }
    }
    Ok(lat)
}

/// Recall@10 of the store's default search against brute force over `live`.
fn recall(db: &Db, metric: Metric, live: &[(u64, &[f32])], queries: &[Vec<f32>]) -> Result<f64> {
    let (mut found, mut wanted) = (0, 0);
    for q in queries {
        let mut q = q.clone();
        if metric == Metric::Cosine {
            strata_index::distance::normalize(&mut q);
        }
        let mut d: Vec<(f32, u64)> = live
            .iter()
            .map(|(id, v)| (metric.distance(&q, v), *id))
            .collect();
        let k = 10.min(d.len());
        if k == 0 {
            continue;
        }
        d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        let truth: HashSet<u64> = d[..k].iter().map(|x| x.1).collect();
        let hits = db.search(&q, &SearchOptions::default())?;
        wanted += k;
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    Ok(found as f64 / wanted.max(1) as f64)
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        n += e?.metadata()?.len();
    }
    Ok(n)
}

fn options(a: &ChurnArgs, dim: usize) -> Options {
    let mut o = Options::new(dim, a.metric.into()).durability(Durability::Never);
    if let Some(mb) = a.memtable_mb {
        o = o.memtable_bytes(mb.max(1) << 20);
    }
    o.compaction(strata::CompactionOptions {
        threads: a.threads.max(1),
        ..strata::CompactionOptions::default()
    })
    .search_threads(a.search_threads)
    .low_priority_flush(a.low_priority_flush)
}

/// Runs the churn benchmark: churn with background compaction while searching, space
/// against a fresh store, then a full compaction while searching.
pub fn run(a: &ChurnArgs) -> Result<()> {
    let metric: Metric = a.metric.into();
    ensure!((0.0..1.0).contains(&a.delete), "--delete must be in [0, 1)");
    ensure!(a.rounds >= 1, "--rounds must be at least 1");
    let (base, queries) = load(a, metric)?;
    let (n, dim) = (base.len(), base[0].len());
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("churn"));
    println!(
        "churn: {n} rows x {dim} ({}), {} rounds of upserts, then {:.0} % deleted; compaction budget {} thread(s); store in {}",
        metric.name(),
        a.rounds,
        a.delete * 100.0,
        a.threads,
        dir.display()
    );
    let w = Workload::new(a, &base);
    let churned = churn_phase(a, &dir, &w, &queries)?;
    let live = w.survivors();
    let fresh_bytes = space_phase(a, &tmp.path().join("fresh"), &live, &churned)?;
    let full = full_compaction_phase(a, &dir, live, &queries)?;
    strata::verify(&dir)?;
    if let Some(path) = &a.json {
        write_json(path, a, (n, dim), &churned, fresh_bytes, full)?;
    }
    Ok(())
}

/// Rows of vectors.
type Rows = Vec<Vec<f32>>;

/// The base vectors (normalised for cosine) and the queries.
fn load(a: &ChurnArgs, metric: Metric) -> Result<(Rows, Rows)> {
    let mut base = VectorFile::read_first(&a.base, (a.rows > 0).then_some(a.rows))?;
    ensure!(!base.is_empty(), "{} holds no vectors", a.base.display());
    let dim = base[0].len();
    if metric == Metric::Cosine {
        for v in &mut base {
            strata_index::distance::normalize(v);
        }
    }
    let queries = match &a.queries {
        Some(q) => VectorFile::read_first(q, Some(a.nq))?,
        None => base.iter().take(a.nq).cloned().collect(),
    };
    ensure!(
        queries.iter().all(|q| q.len() == dim),
        "queries and base differ in dimension"
    );
    Ok((base, queries))
}

/// What is written: every id upserted once per round, then the seeded deletes.
struct Workload<'a> {
    base: &'a [Vec<f32>],
    rounds: usize,
    /// Ids deleted after the last round, sorted.
    deleted: Vec<u64>,
}

impl<'a> Workload<'a> {
    /// Round r gives id i the vector of row (i + r * STEP) mod n: every upsert after the
    /// first replaces a vector with a different real one.
    const STEP: usize = 7919;

    fn new(a: &ChurnArgs, base: &'a [Vec<f32>]) -> Self {
        let n = base.len();
        let mut deleted: Vec<u64> = (0..n as u64).collect();
        deleted.shuffle(&mut rand::rngs::StdRng::seed_from_u64(a.seed));
        deleted.truncate((n as f64 * a.delete) as usize);
        deleted.sort_unstable();
        Workload {
            base,
            rounds: a.rounds,
            deleted,
        }
    }

    fn vector_of(&self, id: usize, round: usize) -> &'a [f32] {
        &self.base[(id + round * Self::STEP) % self.base.len()]
    }

    /// The ids left after the deletes, with their last vectors.
    fn survivors(&self) -> Vec<(u64, &'a [f32])> {
        let gone: HashSet<u64> = self.deleted.iter().copied().collect();
        (0..self.base.len())
            .filter(|id| !gone.contains(&(*id as u64)))
            .map(|id| (id as u64, self.vector_of(id, self.rounds - 1)))
            .collect()
    }

    /// Writes every round and the deletes in batches of 1,000, then flushes.
    fn write_all(&self, db: &Db) -> Result<()> {
        let n = self.base.len();
        let pb = progress::bar((n * self.rounds + self.deleted.len()) as u64, "churn");
        for round in 0..self.rounds {
            for start in (0..n).step_by(1000) {
                let ids = start..(start + 1000).min(n);
                let mut b = WriteBatch::new();
                for id in ids.clone() {
                    b.upsert(id as u64, self.vector_of(id, round));
                }
                db.write(b)?;
                pb.inc(ids.len() as u64);
            }
        }
        for chunk in self.deleted.chunks(1000) {
            let mut b = WriteBatch::new();
            for &id in chunk {
                b.delete(id);
            }
            db.write(b)?;
            pb.inc(chunk.len() as u64);
        }
        db.flush()?;
        pb.finish_and_clear();
        Ok(())
    }
}

/// What the churn phase measured.
struct Churned {
    churn_s: f64,
    settle_s: f64,
    writes: strata::WriteStats,
    settled: strata::Stats,
    settled_bytes: u64,
    recall_settled: f64,
}

/// Phase 1: the workload with background compaction while a reader searches; waits
/// until compaction settles, then measures recall and closes the store.
fn churn_phase(
    a: &ChurnArgs,
    dir: &Path,
    w: &Workload<'_>,
    queries: &[Vec<f32>],
) -> Result<Churned> {
    let (n, dim) = (w.base.len(), w.base[0].len());
    let db = Db::open(dir, options(a, dim))?;
    let stop = AtomicBool::new(false);
    let (churn_s, settle_s, mut during) = std::thread::scope(|sc| -> Result<_> {
        let reader = sc.spawn(|| search_until(&db, queries, &stop));
        let work = (|| -> Result<(f64, f64)> {
            let t = Instant::now();
            w.write_all(&db)?;
            let churn_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            while db.compaction_pending() {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok((churn_s, t.elapsed().as_secs_f64()))
        })();
        stop.store(true, Ordering::Release);
        let lat = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the search thread panicked"))??;
        let (c, s) = work?;
        Ok((c, s, lat))
    })?;
    let writes = db.write_stats();
    let settled = db.stats()?;
    let recall_settled = recall(&db, a.metric.into(), &w.survivors(), queries)?;
    println!(
        "1. churned {} upserts + {} deletes in {churn_s:.1} s, compaction settled {settle_s:.1} s later: {} compactions, {} segments, {} tombstones",
        n * a.rounds,
        w.deleted.len(),
        settled.compactions.runs,
        settled.segments.len(),
        settled.tombstones
    );
    println!(
        "   write amplification {:.2}: user {:.1} MB -> WAL {:.1} MB, flushes {:.1} MB, compactions {:.1} MB, deletion files {:.2} MB, manifests {:.2} MB; {} batches slowed, {} stalled",
        writes.write_amplification,
        writes.user_bytes as f64 / 1e6,
        writes.wal_bytes as f64 / 1e6,
        writes.flush_bytes as f64 / 1e6,
        writes.compaction_bytes as f64 / 1e6,
        writes.deletion_bytes as f64 / 1e6,
        writes.manifest_bytes as f64 / 1e6,
        writes.slowed_batches,
        writes.stalled_batches
    );
    println!(
        "   search during the churn: {} queries while compacting p50 {:.3} ms p99 {:.3} ms; {} otherwise p50 {:.3} ms p99 {:.3} ms; recall@10 after settling {recall_settled:.4}",
        during.compacting.len(),
        pct(&mut during.compacting, 0.5),
        pct(&mut during.compacting, 0.99),
        during.idle.len(),
        pct(&mut during.idle, 0.5),
        pct(&mut during.idle, 0.99),
    );
    db.close()?;
    Ok(Churned {
        churn_s,
        settle_s,
        writes,
        settled,
        settled_bytes: dir_bytes(dir)?,
        recall_settled,
    })
}

/// Phase 2: a fresh store of the survivors, written once and compacted into one
/// segment; returns its bytes.
fn space_phase(
    a: &ChurnArgs,
    fresh_dir: &Path,
    live: &[(u64, &[f32])],
    churned: &Churned,
) -> Result<u64> {
    let dim = live.first().map_or(1, |(_, v)| v.len());
    let fresh = Db::open(fresh_dir, options(a, dim))?;
    for chunk in live.chunks(1000) {
        let mut b = WriteBatch::new();
        for (id, v) in chunk {
            b.upsert(*id, v);
        }
        fresh.write(b)?;
    }
    fresh.flush()?;
    fresh.compact(true, &|_, _, _| true)?;
    fresh.close()?;
    let fresh_bytes = dir_bytes(fresh_dir)?;
    println!(
        "2. space: settled store {:.1} MB = {:.2}x a fresh store of the {} survivors ({:.1} MB); stats estimate {:.2}x",
        churned.settled_bytes as f64 / 1e6,
        churned.settled_bytes as f64 / fresh_bytes as f64,
        live.len(),
        fresh_bytes as f64 / 1e6,
        churned.settled.space_amplification,
    );
    Ok(fresh_bytes)
}

/// What the full-compaction phase measured.
struct FullCompaction {
    idle: Vec<Duration>,
    during: Vec<Duration>,
    rows_in: u64,
    full_s: f64,
    recall_full: f64,
}

/// Phase 3: reopened without background compaction, 10 % more of the survivors deleted:
/// idle search, then the same while a full compaction rewrites the store.
fn full_compaction_phase(
    a: &ChurnArgs,
    dir: &Path,
    live: Vec<(u64, &[f32])>,
    queries: &[Vec<f32>],
) -> Result<FullCompaction> {
    let metric: Metric = a.metric.into();
    let dim = live.first().map_or(1, |(_, v)| v.len());
    let db = Db::open(dir, options(a, dim).background_compaction(false))?;
    let mut more: Vec<u64> = live.iter().map(|(id, _)| *id).collect();
    more.shuffle(&mut rand::rngs::StdRng::seed_from_u64(a.seed + 1));
    more.truncate(live.len() / 10);
    for chunk in more.chunks(1000) {
        let mut b = WriteBatch::new();
        chunk.iter().for_each(|&id| {
            b.delete(id);
        });
        db.write(b)?;
    }
    db.flush()?;
    let gone: HashSet<u64> = more.iter().copied().collect();
    let live: Vec<(u64, &[f32])> = live
        .into_iter()
        .filter(|(id, _)| !gone.contains(id))
        .collect();
    let idle_stop = AtomicBool::new(false);
    let idle = std::thread::scope(|sc| -> Result<_> {
        let reader = sc.spawn(|| search_until(&db, queries, &idle_stop));
        std::thread::sleep(Duration::from_secs(3));
        idle_stop.store(true, Ordering::Release);
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the search thread panicked"))?
    })?;
    let mut idle = idle.idle;
    let recall_before = recall(&db, metric, &live, queries)?;
    let full_stop = AtomicBool::new(false);
    let (reports, full_s, during_full) = std::thread::scope(|sc| -> Result<_> {
        let reader = sc.spawn(|| search_until(&db, queries, &full_stop));
        let t = Instant::now();
        let r = db.compact(true, &|_, _, _| true);
        let took = t.elapsed().as_secs_f64();
        full_stop.store(true, Ordering::Release);
        let lat = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the search thread panicked"))??;
        Ok((r?, took, lat))
    })?;
    let mut during = during_full.compacting;
    let rows_in: u64 = reports.iter().map(|r| r.rows_in).sum();
    let recall_full = recall(&db, metric, &live, queries)?;
    println!(
        "3. {} more deleted; full compaction: {rows_in} rows in {full_s:.1} s = {:.0} rows/s (budget {} thread(s))",
        more.len(),
        rows_in as f64 / full_s,
        a.threads
    );
    println!(
        "   search idle p50 {:.3} ms p99 {:.3} ms ({} queries, recall@10 {recall_before:.4}); while compacting p50 {:.3} ms p99 {:.3} ms ({} queries); after: recall@10 {recall_full:.4}",
        pct(&mut idle, 0.5),
        pct(&mut idle, 0.99),
        idle.len(),
        pct(&mut during, 0.5),
        pct(&mut during, 0.99),
        during.len(),
    );
    db.close()?;
    Ok(FullCompaction {
        idle,
        during,
        rows_in,
        full_s,
        recall_full,
    })
}

/// Appends the run's figures as one JSON line to `path`.
fn write_json(
    path: &Path,
    a: &ChurnArgs,
    (n, dim): (usize, usize),
    c: &Churned,
    fresh_bytes: u64,
    mut f: FullCompaction,
) -> Result<()> {
    let writes = &c.writes;
    let line = json!({
        "rows": n, "dim": dim, "rounds": a.rounds, "delete": a.delete, "threads": a.threads,
        "churn_s": c.churn_s, "settle_s": c.settle_s,
        "write_amplification": writes.write_amplification,
        "user_bytes": writes.user_bytes, "wal_bytes": writes.wal_bytes,
        "flush_bytes": writes.flush_bytes, "compaction_bytes": writes.compaction_bytes,
        "deletion_bytes": writes.deletion_bytes, "manifest_bytes": writes.manifest_bytes,
        "slowed_batches": writes.slowed_batches, "stalled_batches": writes.stalled_batches,
        "compactions": c.settled.compactions.runs,
        "space_amplification": c.settled_bytes as f64 / fresh_bytes as f64,
        "space_amplification_estimate": c.settled.space_amplification,
        "recall_settled": c.recall_settled, "recall_after_full": f.recall_full,
        "full_compaction_rows_per_s": f.rows_in as f64 / f.full_s,
        "idle_p50_ms": pct(&mut f.idle, 0.5), "idle_p99_ms": pct(&mut f.idle, 0.99),
        "compacting_p50_ms": pct(&mut f.during, 0.5),
        "compacting_p99_ms": pct(&mut f.during, 0.99),
    });
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| path.display().to_string())?;
    writeln!(out, "{line}")?;
    Ok(())
}
