//! `strata bench-text`: text, vector and hybrid search on a set with relevance
//! judgements (`../shared/data/manpages-minilm-384`): retrieval quality (right row in
//! the top k, MRR@k, nDCG@k) and single-thread QPS of each mode, on one store.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use strata::{Db, Durability, Fusion, Options, SearchOptions, WriteBatch};

use crate::input::VectorFile;

/// Arguments of `strata bench-text`.
#[derive(clap::Args)]
pub struct BenchTextArgs {
    /// Base vectors (.fvecs); ids are row numbers.
    #[arg(long)]
    base: PathBuf,
    /// JSON lines, line i {"text": ...}: the text of base row i.
    #[arg(long)]
    base_texts: PathBuf,
    /// Query vectors (.fvecs).
    #[arg(long)]
    queries: PathBuf,
    /// JSON lines, line i {"text": ...}: the text of query i.
    #[arg(long)]
    query_texts: PathBuf,
    /// Relevance judgements: lines "query TAB row TAB grade" (grade > 0 is relevant).
    #[arg(long)]
    qrels: PathBuf,
    /// Metric of the vectors.
    #[arg(long, value_enum, default_value = "cosine")]
    metric: crate::MetricArg,
    /// How text becomes terms.
    #[arg(long, value_enum, default_value = "default")]
    analyzer: crate::AnalyzerArg,
    /// Results per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Use only the first N queries.
    #[arg(long)]
    nq: Option<usize>,
    /// Timed passes over the queries per mode; the fastest is kept.
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Candidates each side of a hybrid search contributes.
    #[arg(long, default_value_t = Fusion::DEFAULT_CANDIDATES)]
    candidates: usize,
    /// Vector weights of the weighted fusions to measure (comma-separated, 0 to 1).
    #[arg(long, value_delimiter = ',', default_value = "0.3,0.5")]
    alphas: Vec<f32>,
    /// Build the store here (kept) instead of a temporary directory; with --reuse, search
    /// the store already there.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With --dir: reuse the store built there.
    #[arg(long)]
    reuse: bool,
    /// Modes to measure (comma-separated): vector, exact, text, rrf, weighted.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "vector,exact,text,rrf,weighted"
    )]
    modes: Vec<String>,
    /// Append one JSON line per mode here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write each query's text-only top k (ids and scores) here, one JSON line per query.
    #[arg(long)]
    text_hits: Option<PathBuf>,
    /// Write the terms of every base row and query here (`base_terms.jsonl`,
    /// `query_terms.jsonl`: one JSON array of strings per line), for a reference BM25.
    #[arg(long)]
    terms_out: Option<PathBuf>,
}

/// What a mode searches with.
enum Mode {
    /// The query vector, default settings.
    Vector,
    /// The query vector, exact search.
    Exact,
    /// The query text.
    Text,
    /// Both, fused.
    Hybrid(Fusion),
}

impl Mode {
    fn name(&self) -> String {
        match self {
            Mode::Vector => "vector".into(),
            Mode::Exact => "vector exact".into(),
            Mode::Text => "text".into(),
            Mode::Hybrid(f) => match f.method {
                strata::FusionMethod::Rrf { .. } => "hybrid rrf".into(),
                strata::FusionMethod::Weighted { alpha } => format!("hybrid weighted {alpha}"),
            },
        }
    }
}

/// A search mode's timings and its queries' answers.
struct Measured {
    mode: String,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    ids: Vec<Vec<u64>>,
    scores: Vec<Vec<f32>>,
}

/// Retrieval quality of ranked lists against relevance judgements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Fraction of queries with a relevant row in the top k.
    pub success: f64,
    /// Mean reciprocal rank of the first relevant row within the top k.
    pub mrr: f64,
    /// Mean nDCG@k with binary gains.
    pub ndcg: f64,
}

/// The quality of `ranked` (per query, best first; only the first `k` count) against
/// `relevant` (per query, the relevant rows).
pub fn quality(ranked: &[Vec<u64>], relevant: &[HashSet<u64>], k: usize) -> Quality {
    let n = ranked.len().max(1) as f64;
    let (mut success, mut mrr, mut ndcg) = (0.0, 0.0, 0.0);
    for (r, rel) in ranked.iter().zip(relevant) {
        let hits: Vec<bool> = r.iter().take(k).map(|id| rel.contains(id)).collect();
        if let Some(first) = hits.iter().position(|&h| h) {
            success += 1.0;
            mrr += 1.0 / (first as f64 + 1.0);
        }
        let dcg: f64 = hits
            .iter()
            .enumerate()
            .filter(|(_, &h)| h)
            .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
            .sum();
        let ideal: f64 = (0..rel.len().min(k))
            .map(|i| 1.0 / (i as f64 + 2.0).log2())
            .sum();
        if ideal > 0.0 {
            ndcg += dcg / ideal;
        }
    }
    Quality {
        success: success / n,
        mrr: mrr / n,
        ndcg: ndcg / n,
    }
}

fn read_texts(path: &Path, limit: Option<usize>) -> Result<Vec<String>> {
    let mut all = crate::ops::read_texts(path)?;
    if let Some(n) = limit {
        all.truncate(n);
    }
    Ok(all)
}

fn read_qrels(path: &Path, queries: usize) -> Result<Vec<HashSet<u64>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read qrels {}", path.display()))?;
    let mut rel = vec![HashSet::new(); queries];
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let parse = |s: Option<&&str>| s.and_then(|x| x.trim().parse::<u64>().ok());
        let (Some(q), Some(row), Some(grade)) =
            (parse(f.first()), parse(f.get(1)), parse(f.get(2)))
        else {
            bail!(
                "{} line {}: expected query TAB row TAB grade",
                path.display(),
                i + 1
            );
        };
        if grade > 0 {
            if let Some(set) = rel.get_mut(q as usize) {
                set.insert(row);
            }
        }
    }
    Ok(rel)
}

/// Runs `strata bench-text`.
pub fn run(a: &BenchTextArgs) -> Result<()> {
    let queries = VectorFile::read_first(&a.queries, a.nq)?;
    let texts = read_texts(&a.query_texts, a.nq)?;
    ensure!(
        !queries.is_empty() && texts.len() == queries.len(),
        "need as many query texts ({}) as query vectors ({})",
        texts.len(),
        queries.len()
    );
    let relevant = read_qrels(&a.qrels, queries.len())?;
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("store")
        }
    };
    if !(a.reuse && dir.join("MANIFEST").exists()) {
        build(a, &dir, queries[0].len())?;
    }
    let db = Db::open(&dir, Options::existing().search_threads(Some(1)))?;
    if let Some(out) = &a.terms_out {
        write_terms(a, &db, &texts, out)?;
    }
    let mut modes = Vec::new();
    for m in &a.modes {
        match m.as_str() {
            "vector" => modes.push(Mode::Vector),
            "exact" => modes.push(Mode::Exact),
            "text" => modes.push(Mode::Text),
            "rrf" => modes.push(Mode::Hybrid(Fusion::rrf().with_candidates(a.candidates))),
            "weighted" => {
                modes.extend(a.alphas.iter().map(|&alpha| {
                    Mode::Hybrid(Fusion::weighted(alpha).with_candidates(a.candidates))
                }))
            }
            other => bail!("unknown mode {other:?} (vector, exact, text, rrf, weighted)"),
        }
    }
    let (o, exact) = (SearchOptions::new(a.k), SearchOptions::exact(a.k));
    let search = |mode: &Mode, i: usize| match mode {
        Mode::Vector => db.search(&queries[i], &o),
        Mode::Exact => db.search(&queries[i], &exact),
        Mode::Text => db.text_search(&texts[i], &o),
        Mode::Hybrid(f) => db.hybrid_search(&queries[i], &texts[i], &o, f),
    };
    let mut json = match &a.json {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "mode", "top-k", "MRR", "nDCG", "QPS", "p50 ms", "p99 ms"
    );
    for mode in &modes {
        let m = measure(&mode.name(), queries.len(), a.runs, &|i| search(mode, i))?;
        let q = quality(&m.ids, &relevant, a.k);
        println!(
            "{:<22} {:>8.3} {:>8.3} {:>8.3} {:>10.0} {:>8.3} {:>8.3}",
            m.mode, q.success, q.mrr, q.ndcg, m.qps, m.p50_ms, m.p99_ms
        );
        if let Some(f) = json.as_mut() {
            let line = serde_json::json!({
                "library": "strata", "mode": m.mode, "k": a.k, "queries": queries.len(),
                "analyzer": db.analyzer().name(), "success_at_k": q.success, "mrr": q.mrr,
                "ndcg": q.ndcg, "qps_single": m.qps, "p50_ms": m.p50_ms, "p99_ms": m.p99_ms,
            });
            writeln!(f, "{line}")?;
        }
        if let (Some(path), "text") = (&a.text_hits, m.mode.as_str()) {
            let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
            for (i, (ids, scores)) in m.ids.iter().zip(&m.scores).enumerate() {
                writeln!(
                    f,
                    "{}",
                    serde_json::json!({"query": i, "ids": ids, "scores": scores})
                )?;
            }
        }
    }
    Ok(())
}

/// Single-thread passes over the queries with `search`; the fastest pass's timings.
fn measure(
    mode: &str,
    n: usize,
    runs: usize,
    search: &dyn Fn(usize) -> strata::Result<Vec<strata::Hit>>,
) -> Result<Measured> {
    let mut best: Option<(Duration, Vec<Duration>)> = None;
    let (mut ids, mut scores) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    for _ in 0..runs.max(1) {
        let mut lat = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            let hits = search(i)?;
            lat.push(t.elapsed());
            ids[i] = hits.iter().map(|h| h.id).collect();
            scores[i] = hits.iter().map(|h| -h.distance).collect();
        }
        let total = start.elapsed();
        if best.as_ref().is_none_or(|b| total < b.0) {
            best = Some((total, lat));
        }
    }
    let (total, mut lat) = best.unwrap_or_default();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Measured {
        mode: mode.to_owned(),
        qps: n as f64 / total.as_secs_f64().max(1e-9),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        ids,
        scores,
    })
}

/// Imports the base rows with their texts into one segment.
fn build(a: &BenchTextArgs, dir: &Path, dim: usize) -> Result<()> {
    let t = Instant::now();
    let opts = Options::new(dim, a.metric.into())
        .analyzer(a.analyzer.into())
        .durability(Durability::Never)
        .memtable_bytes(1 << 30)
        .index(strata::IndexOptions {
            memtable_graph: false,
            ..strata::IndexOptions::default()
        });
    let db = Db::open(dir, opts).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut base = VectorFile::open(&a.base)?;
    let texts = read_texts(&a.base_texts, None)?;
    let mut batch = WriteBatch::new();
    let mut row = 0u64;
    while let Some(r) = base.next_row()? {
        let text = texts
            .get(row as usize)
            .with_context(|| format!("{} has no line {row}", a.base_texts.display()))?;
        batch.upsert_text(row, &r.vector, text, None, None);
        row += 1;
        if batch.len() == 1000 {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        db.write(batch)?;
    }
    let imported = t.elapsed().as_secs_f64();
    db.flush()?;
    crate::build_report::print_all(&db.build_reports());
    let stats = db.stats()?;
    db.close()?;
    eprintln!(
        "built {row} rows in {:.2} s (import {imported:.2} s); {} segment(s)",
        t.elapsed().as_secs_f64(),
        stats.segments.len()
    );
    Ok(())
}

/// Writes every base row's and query's terms (JSON arrays, one per line).
fn write_terms(a: &BenchTextArgs, db: &Db, queries: &[String], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let analyzer = db.analyzer();
    let base = read_texts(&a.base_texts, None)?;
    for (name, texts) in [
        ("base_terms.jsonl", &base),
        ("query_terms.jsonl", &queries.to_vec()),
    ] {
        let mut f = std::io::BufWriter::new(std::fs::File::create(out.join(name))?);
        for t in texts.iter() {
            writeln!(f, "{}", serde_json::to_string(&analyzer.terms(t))?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_counts_success_reciprocal_rank_and_ndcg() {
        let ranked = vec![vec![5, 1, 2], vec![7, 8, 9], vec![3]];
        let rel: Vec<HashSet<u64>> = vec![[1, 2].into(), [1].into(), [3].into()];
        let q = quality(&ranked, &rel, 3);
        assert!((q.success - 2.0 / 3.0).abs() < 1e-12);
        assert!((q.mrr - (0.5 + 0.0 + 1.0) / 3.0).abs() < 1e-12);
        let first = (1.0 / 3f64.log2() + 1.0 / 4f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((q.ndcg - (first + 0.0 + 1.0) / 3.0).abs() < 1e-12);
        // Only the top k count.
        assert_eq!(quality(&ranked, &rel, 1).success, 1.0 / 3.0);
    }
}
