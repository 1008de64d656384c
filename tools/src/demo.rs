//! `strata demo`: the whole life cycle of a store on a seeded, clustered data set.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use strata::{Db, Durability, Metric, Options, SearchOptions, WriteBatch};

use crate::progress;

const K: usize = 10;
const QUERIES: usize = 200;

/// Clustered Gaussian data: `rows` points around 64 random centres.
fn clustered(rng: &mut impl Rng, rows: usize, dim: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    (0..rows)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            c.iter().map(|x| x + 0.25 * gaussian(rng)).collect()
        })
        .collect()
}

fn gaussian(rng: &mut impl Rng) -> f32 {
    // Box-Muller; u1 in (0, 1] keeps ln finite.
    let u1: f32 = 1.0 - rng.random::<f32>();
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Brute-force top-k over the demo's own copy of the data (independent of the store).
fn truth(model: &[Option<Vec<f32>>], q: &[f32]) -> Vec<u64> {
    let mut d: Vec<(f32, u64)> = model
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|v| (l2(q, v), i as u64)))
        .collect();
    let k = K.min(d.len());
    if k == 0 {
        return Vec::new();
    }
    d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
    d.truncate(k);
    d.into_iter().map(|x| x.1).collect()
}

struct SearchFigures {
    recall: f64,
    qps: f64,
    p50: Duration,
    p99: Duration,
}

fn measure(
    db: &Db,
    model: &[Option<Vec<f32>>],
    queries: &[Vec<f32>],
    opts: &SearchOptions,
) -> Result<SearchFigures> {
    let mut lat = Vec::with_capacity(queries.len());
    let mut found = 0usize;
    let mut wanted = 0usize;
    let start = Instant::now();
    let mut results = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let hits = db.search(q, opts)?;
        lat.push(t.elapsed());
        results.push(hits);
    }
    let total = start.elapsed();
    for (q, hits) in queries.iter().zip(&results) {
        for h in hits {
            ensure!(
                model.get(h.id as usize).is_some_and(|v| v.is_some()),
                "search returned deleted id {}",
                h.id
            );
        }
        let t: HashSet<u64> = truth(model, q).into_iter().collect();
        wanted += t.len();
        found += hits.iter().filter(|h| t.contains(&h.id)).count();
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Ok(SearchFigures {
        recall: found as f64 / wanted.max(1) as f64,
        qps: queries.len() as f64 / total.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

fn report(label: &str, f: &SearchFigures) {
    println!(
        "  {label:<28} recall@{K} {:.4}   {:>8.0} QPS   p50 {:>8.3} ms   p99 {:>8.3} ms",
        f.recall,
        f.qps,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
}

fn payload(id: u64, version: u32) -> Vec<u8> {
    format!("{{\"doc\": {id}, \"version\": {version}}}").into_bytes()
}

/// Runs the demo in `dir` (a temporary directory when `None`): ingest, churn, crash,
/// recover, compact, close and verify, each a phase below printing its figures.
pub fn run(dir: Option<PathBuf>, rows: usize, dim: usize, seed: u64) -> Result<()> {
    ensure!(
        rows >= 100 && dim >= 2,
        "the demo needs at least 100 rows of dimension 2"
    );
    let tmp;
    let dir = match dir {
        Some(d) => empty_dir(d)?,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    println!(
        "Strata demo: {rows} clustered {dim}-d vectors (seed {seed}), L2, store at {}",
        dir.display()
    );
    println!("  distance kernels: {}", strata::kernel_name());
    let mut demo = Demo::new(dir, rows, dim, seed);
    let db = demo.ingest()?;
    demo.churn(&db)?;
    demo.crash(db)?;
    let db = demo.recover()?;
    let after = demo.compact(&db)?;
    demo.close_and_verify(db, &after)
}

/// `d` when it is empty or missing; otherwise an error (the demo never writes into a
/// directory that holds something).
fn empty_dir(d: PathBuf) -> Result<PathBuf> {
    if d.exists()
        && d.read_dir()
            .with_context(|| format!("cannot read {}", d.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; give the demo an empty or new directory",
            d.display()
        );
    }
    Ok(d)
}

/// The demo's data and the acknowledged state every phase checks against.
struct Demo {
    dir: PathBuf,
    rows: usize,
    dim: usize,
    rng: rand::rngs::StdRng,
    data: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    /// The acknowledged vector of every id (`None`: deleted).
    model: Vec<Option<Vec<f32>>>,
    /// The acknowledged payload of every id.
    payloads: Vec<Option<Vec<u8>>>,
}

impl Demo {
    fn new(dir: PathBuf, rows: usize, dim: usize, seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let data = clustered(&mut rng, rows, dim);
        let queries: Vec<Vec<f32>> = (0..QUERIES)
            .map(|_| {
                data[rng.random_range(0..rows)]
                    .iter()
                    .map(|x| x + 0.1 * gaussian(&mut rng))
                    .collect()
            })
            .collect();
        Demo {
            dir,
            rows,
            dim,
            rng,
            data,
            queries,
            model: Vec::with_capacity(rows),
            payloads: Vec::with_capacity(rows),
        }
    }

    /// Searches every query with `opts` and measures recall against the model.
    fn measure(&self, db: &Db, opts: &SearchOptions) -> Result<SearchFigures> {
        measure(db, &self.model, &self.queries, opts)
    }

    /// Phase 1: Ingest in atomic batches, each acknowledged only after fsync.
    fn ingest(&mut self) -> Result<Db> {
        let rows = self.rows;
        let opts = Options::new(self.dim, Metric::L2)
            .durability(Durability::Always)
            .memtable_bytes(4 << 20);
        let db = Db::open(&self.dir, opts)?;
        let pb = progress::rows(rows as u64, "ingest");
        let t = Instant::now();
        for (start, chunk) in (0..).step_by(1000).zip(self.data.chunks(1000)) {
            let mut b = WriteBatch::new();
            for (i, v) in chunk.iter().enumerate() {
                let id = start + i as u64;
                b.upsert_with_payload(id, v, &payload(id, 1));
                self.model.push(Some(v.clone()));
                self.payloads.push(Some(payload(id, 1)));
            }
            db.write(b)?;
            pb.inc(chunk.len() as u64);
        }
        pb.finish_and_clear();
        let ingest = t.elapsed();
        println!(
            "1. ingested {rows} rows in {:.2?} ({:.0} rows/s, Durability::Always, batches of 1000)",
            ingest,
            rows as f64 / ingest.as_secs_f64()
        );
        println!(
            "  each search line: {QUERIES} queries, k={K}, one at a time; recall against brute \
             force over the acknowledged rows"
        );
        report(
            "search (graph + rerank):",
            &self.measure(&db, &SearchOptions::new(K))?,
        );
        report(
            "search (exact):",
            &self.measure(&db, &SearchOptions::exact(K))?,
        );
        println!(
            "  (right after ingest the background flush is still building graph indexes on the \
             same cores, and rows not yet linked into a graph are scanned exactly on top of \
             the graph walk: graph search is slower than exact until indexing catches up)"
        );
        Ok(db)
    }

    /// Phase 2: Delete 10 % of the rows one by one and replace 5 % in one batch.
    fn churn(&mut self, db: &Db) -> Result<()> {
        let rows = self.rows;
        let t = Instant::now();
        let mut deleted = 0;
        for _ in 0..rows / 10 {
            let id = self.rng.random_range(0..rows);
            if self.model[id].take().is_some() {
                self.payloads[id] = None;
                db.delete(id as u64)?;
                deleted += 1;
            }
        }
        let mut b = WriteBatch::new();
        for _ in 0..rows / 20 {
            let id = self.rng.random_range(0..rows);
            let v: Vec<f32> = self.data[self.rng.random_range(0..rows)]
                .iter()
                .map(|x| x + 0.05 * gaussian(&mut self.rng))
                .collect();
            b.upsert_with_payload(id as u64, &v, &payload(id as u64, 2));
            self.model[id] = Some(v);
            self.payloads[id] = Some(payload(id as u64, 2));
        }
        let replaced = b.len();
        db.write(b)?;
        println!(
            "2. deleted {deleted} rows one by one and replaced {replaced} in one batch in {:.2?}",
            t.elapsed()
        );
        report(
            "search after churn:",
            &self.measure(db, &SearchOptions::new(K))?,
        );
        Ok(())
    }

    /// Phase 3: Crash: drop the store without closing it.
    fn crash(&self, db: Db) -> Result<()> {
        let s = db.stats()?;
        println!(
            "3. crash: dropping the store without close ({} segments, {} rows only in the memtable/WAL, {} tombstones)",
            s.segments.len(),
            s.memtable_rows,
            s.tombstones
        );
        drop(db);
        Ok(())
    }

    /// Phase 4: Recover and check every acknowledged write, byte for byte.
    fn recover(&self) -> Result<Db> {
        let t = Instant::now();
        let db = Db::open(
            &self.dir,
            Options::existing().durability(Durability::Always),
        )?;
        let open_time = t.elapsed();
        let t = Instant::now();
        for (id, want) in self.model.iter().enumerate() {
            let got = db.get(id as u64)?;
            match (want, got) {
                (Some(v), Some(r)) => {
                    ensure!(&r.vector == v, "id {id}: vector differs after recovery");
                    ensure!(
                        r.payload == self.payloads[id],
                        "id {id}: payload differs after recovery"
                    );
                }
                (None, None) => {}
                (Some(_), None) => bail!("id {id} was acknowledged but is missing after recovery"),
                (None, Some(_)) => bail!("id {id} was deleted but is back after recovery"),
            }
        }
        let live = self.model.iter().filter(|v| v.is_some()).count();
        ensure!(
            db.stats()?.live_rows == live as u64,
            "live row count differs after recovery"
        );
        println!("4. reopened in {open_time:.2?}; all {} ids checked against the acknowledged state in {:.2?}: nothing lost, nothing resurrected", self.rows, t.elapsed());
        report(
            "search after recovery:",
            &self.measure(&db, &SearchOptions::new(K))?,
        );
        Ok(db)
    }

    /// Phase 5: Compact everything into one segment while searches run; returns the figures
    /// after it.
    fn compact(&self, db: &Db) -> Result<strata::Stats> {
        let default = SearchOptions::new(K);
        db.flush()?;
        let before = db.stats()?;
        let (reports, compact_time, during) = std::thread::scope(|sc| -> Result<_> {
            let job = sc.spawn(|| {
                let t = Instant::now();
                let r = db.compact(true, &|_, _, _| true);
                (r, t.elapsed())
            });
            // At least one full pass of queries overlaps the compaction.
            let during = self.measure(db, &default)?;
            let (r, took) = job
                .join()
                .map_err(|_| anyhow::anyhow!("the compaction thread panicked"))?;
            Ok((r?, took, during))
        })?;
        let after = db.stats()?;
        let rows_in: u64 = reports.iter().map(|r| r.rows_in).sum();
        println!(
            "5. compacted in {compact_time:.2?} ({:.0} rows/s): {} segments, {} tombstones, space amplification {:.2} -> {} segment, {} tombstones, {:.2}",
            rows_in as f64 / compact_time.as_secs_f64(),
            before.segments.len(),
            before.tombstones,
            before.space_amplification,
            after.segments.len(),
            after.tombstones,
            after.space_amplification
        );
        report("search while compacting:", &during);
        report("search after compaction:", &self.measure(db, &default)?);
        Ok(after)
    }

    /// Phase 6: Close and verify every checksum.
    fn close_and_verify(&self, db: Db, after: &strata::Stats) -> Result<()> {
        let t = Instant::now();
        db.close()?;
        let r = strata::verify(&self.dir)?;
        println!(
            "6. closed in {:.2?}: {} segments, {} rows, {} tombstones, {:.1} MiB on disk; verify: ok",
            t.elapsed(),
            r.segments,
            r.rows,
            r.tombstones,
            (after.segment_bytes + after.deletion_bytes + after.wal_bytes + after.manifest_bytes)
                as f64
                / (1 << 20) as f64
        );
        Ok(())
    }
}
