//! The store commands: create, import, search, get, delete, inspect, verify.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::json;
use strata::{Db, KeyKind, Metric, Options, ReadOnlyDb, SearchOptions, WriteBatch};

use crate::input::VectorFile;

/// `opts`, plus the directory's bucket when it is a bucket store's writing copy (made by
/// `strata create --remote`, or an earlier such open): its commits must go to the bucket.
pub fn with_bucket(dir: &Path, opts: Options) -> Result<Options> {
    let attached = strata::remote_store::Attachment::read(&strata::vfs::OsVfs, dir)
        .with_context(|| format!("cannot read the bucket attachment of {}", dir.display()))?;
    Ok(match attached {
        Some(a) if a.epoch != 0 && !a.url.is_empty() => {
            opts.remote(strata::RemoteConfig::new(a.url))
        }
        _ => opts,
    })
}

/// Opens for a command that reads or makes a small change: no background compaction
/// (`strata compact` is the explicit way).
fn open(dir: &Path) -> Result<Db> {
    let opts = Options::existing()
        .background_compaction(false)
        .background_calibration(false);
    Db::open(dir, with_bucket(dir, opts)?)
        .with_context(|| format!("cannot open store {}", dir.display()))
}

/// Opens for a command that only reads: no lock, so it works while another process
/// writes the store; it sees the published segments and the log's tail.
fn open_reader(dir: &Path) -> Result<ReadOnlyDb> {
    ReadOnlyDb::open(dir).with_context(|| format!("cannot open store {}", dir.display()))
}

pub fn create(
    dir: &Path,
    dim: usize,
    metric: Metric,
    keys: KeyKind,
    codec: strata::VectorCodec,
    analyzer: strata::Analyzer,
    remote: Option<String>,
) -> Result<()> {
    if dir.join("MANIFEST").exists() {
        bail!("{} already holds a store", dir.display());
    }
    let mut opts = Options::new(dim, metric)
        .keys(keys)
        .vector_codec(codec)
        .analyzer(analyzer);
    if let Some(url) = remote {
        opts = opts.remote(strata::RemoteConfig::new(url));
    }
    let db =
        Db::open(dir, opts).with_context(|| format!("cannot create store {}", dir.display()))?;
    db.close()?;
    let keys = match keys {
        KeyKind::U64 => String::new(),
        other => format!(", {} keys", other.name()),
    };
    let codec = match codec {
        strata::VectorCodec::F32 => String::new(),
        other => format!(", {} vectors", other.name()),
    };
    let analyzer = match analyzer {
        strata::Analyzer::Default => String::new(),
        other => format!(", {} text analyzer", other.name()),
    };
    println!(
        "created {} (dim {dim}, metric {}{keys}{codec}{analyzer})",
        dir.display(),
        metric.name()
    );
    Ok(())
}

/// What `strata search` searches with: query vectors, query texts, or both (hybrid).
pub struct Queries<'a> {
    /// The query vectors file (any import format).
    pub vectors: Option<&'a Path>,
    /// The query texts file: JSON lines, line i `{"text": "..."}`.
    pub texts: Option<&'a Path>,
    /// How a hybrid search fuses its two rankings.
    pub fusion: strata::Fusion,
}

pub fn search(
    dir: &Path,
    remote: Option<(&str, u64)>,
    queries: &Queries<'_>,
    opts: &SearchOptions,
    filters: Option<&Path>,
) -> Result<()> {
    let replica;
    let local;
    let db: &ReadOnlyDb = match remote {
        Some((url, cache_bytes)) => {
            replica = Db::open_replica(url, dir, cache_bytes)
                .with_context(|| format!("cannot open a replica of {url} in {}", dir.display()))?;
            &replica
        }
        None => {
            local = open_reader(dir)?;
            &local
        }
    };
    let vectors = queries.vectors.map(VectorFile::read_all).transpose()?;
    let texts = queries.texts.map(read_texts).transpose()?;
    let n = match (&vectors, &texts) {
        (Some(v), Some(t)) if v.len() != t.len() => bail!(
            "{} vector queries but {} text queries: a hybrid search needs one of each per query",
            v.len(),
            t.len()
        ),
        (Some(v), _) => v.len(),
        (None, Some(t)) => t.len(),
        (None, None) => bail!("nothing to search for: give --queries, --texts or both"),
    };
    let per_query = match filters {
        Some(f) => Some(read_filters(f, n)?),
        None => None,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // A query is checked as a stored vector would be (dimension, values, norm).
    for (row, q) in vectors.iter().flatten().enumerate() {
        db.check_query(q)
            .with_context(|| format!("query {row} is refused"))?;
    }
    let unindexed = db.stats()?.memtable_rows;
    if unindexed >= UNINDEXED_NOTE_ROWS {
        eprintln!(
            "note: {unindexed} rows are only in the write-ahead log and are scanned without an \
             index; `strata flush {}` indexes them",
            dir.display()
        );
    }
    let one = |i: usize| {
        let filtered;
        let o = match &per_query {
            Some(fs) => {
                filtered = SearchOptions {
                    filter: fs.get(i).cloned().flatten(),
                    ..opts.clone()
                };
                &filtered
            }
            None => opts,
        };
        let vector = vectors.as_ref().and_then(|v| v.get(i));
        let text = texts.as_ref().and_then(|t| t.get(i));
        match (vector, text) {
            (Some(v), Some(t)) => db.hybrid_search(v, t, o, &queries.fusion),
            (Some(v), None) => db.search(v, o),
            (None, Some(t)) => db.text_search(t, o),
            (None, None) => Ok(Vec::new()),
        }
    };
    // Queries run in parallel, a chunk at a time, and print in order.
    use rayon::prelude::*;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1024) {
        let answers = chunk
            .par_iter()
            .map(|&i| one(i))
            .collect::<strata::Result<Vec<_>>>()?;
        for (hits, &row) in answers.into_iter().zip(chunk) {
            write_hits(&mut out, row, hits, opts)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A `--texts` file: line i is `{"text": "..."}`, the text of query i.
pub fn read_texts(path: &Path) -> Result<Vec<String>> {
    let all = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read texts file {}", path.display()))?;
    all.lines()
        .enumerate()
        .map(|(i, line)| {
            let at = || format!("{} line {}", path.display(), i + 1);
            let v: serde_json::Value = serde_json::from_str(line).with_context(at)?;
            match v.get("text").and_then(|t| t.as_str()) {
                Some(t) => Ok(t.to_owned()),
                None => bail!("{}: expected {{\"text\": \"...\"}}", at()),
            }
        })
        .collect()
}

/// A `--filters` file: line i is the filter of query i (an empty line or `{}`: none).
pub fn read_filters(path: &Path, queries: usize) -> Result<Vec<Option<strata::Filter>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read filters file {}", path.display()))?;
    let out: Vec<Option<strata::Filter>> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if line.trim().is_empty() {
                return Ok(None);
            }
            strata::Filter::from_json_str(line)
                .map(Some)
                .with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect::<Result<_>>()?;
    if out.len() != queries {
        bail!(
            "{} has {} lines for {queries} queries (one filter per query)",
            path.display(),
            out.len()
        );
    }
    Ok(out)
}

/// The `--filter` argument, parsed.
pub fn parse_filter(text: Option<&str>) -> Result<Option<strata::Filter>> {
    text.map(|t| strata::Filter::from_json_str(t).context("--filter is refused"))
        .transpose()
}

/// Memtable rows from which `search` suggests `strata flush`.
const UNINDEXED_NOTE_ROWS: u64 = 10_000;

/// One query's JSON line.
fn write_hits(
    out: &mut impl Write,
    row: usize,
    hits: Vec<strata::Hit>,
    opts: &SearchOptions,
) -> Result<()> {
    // A store of string keys lists its keys as JSON strings.
    let ids: Vec<serde_json::Value> = hits.iter().map(|h| key_json(h.id, &h.key)).collect();
    let distances: Vec<f32> = hits.iter().map(|h| h.distance).collect();
    // Keys in the documented order: query, ids, distances (then payloads, metadata).
    write!(
        out,
        "{{\"query\": {row}, \"ids\": {}, \"distances\": {}",
        serde_json::to_string(&ids)?,
        serde_json::to_string(&distances)?
    )?;
    if opts.with_payload {
        let payloads: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| payload_json(h.payload.clone()))
            .collect();
        write!(out, ", \"payloads\": {}", serde_json::to_string(&payloads)?)?;
    }
    if opts.with_metadata {
        let metadata: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| {
                h.metadata
                    .as_ref()
                    .map_or(serde_json::Value::Null, |m| m.to_json())
            })
            .collect();
        write!(out, ", \"metadata\": {}", serde_json::to_string(&metadata)?)?;
    }
    if opts.with_text {
        let texts: Vec<Option<&str>> = hits.iter().map(|h| h.text.as_deref()).collect();
        write!(out, ", \"texts\": {}", serde_json::to_string(&texts)?)?;
    }
    writeln!(out, "}}")?;
    Ok(())
}

/// A record's id as JSON: its string key in a store of string keys, else the number.
fn key_json(id: u64, key: &Option<String>) -> serde_json::Value {
    match key {
        Some(k) => json!(k),
        None => json!(id),
    }
}

/// One record as its JSON line: {"id", "vector", "payload", "metadata"} (then "text" when
/// it has one), or in a store of
/// string keys {"key", ...} (the form `strata import` reads).
fn record_json(r: strata::Record) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    match r.key {
        Some(k) => o.insert("key".into(), json!(k)),
        None => o.insert("id".into(), json!(r.id)),
    };
    o.insert("vector".into(), json!(r.vector));
    o.insert("payload".into(), payload_json(r.payload));
    o.insert("metadata".into(), json!(r.metadata.map(|m| m.to_json())));
    if let Some(t) = r.text {
        o.insert("text".into(), json!(t));
    }
    serde_json::Value::Object(o)
}

pub fn count(dir: &Path, filter: Option<&str>) -> Result<()> {
    let db = open_reader(dir)?;
    let filter = parse_filter(filter)?;
    println!("{}", db.count(filter.as_ref())?);
    Ok(())
}

pub fn scan(dir: &Path, filter: Option<&str>, limit: usize, after: Option<u64>) -> Result<()> {
    let db = open_reader(dir)?;
    let filter = parse_filter(filter)?;
    let page = db.scan(filter.as_ref(), after, limit)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for r in page.records {
        writeln!(out, "{}", record_json(r))?;
    }
    out.flush()?;
    if let Some(next) = page.next {
        eprintln!("more records follow: --after {next}");
    }
    Ok(())
}

pub fn delete_by_filter(dir: &Path, filter: &str) -> Result<()> {
    let filter = strata::Filter::from_json_str(filter).context("--filter is refused")?;
    let db = open(dir)?;
    let n = db.delete_by_filter(&filter)?;
    db.close()?;
    eprintln!("deleted {n} records matching the filter");
    Ok(())
}

/// Parses a record argument as a `u64` id (a store of ids).
fn parse_id(arg: &str) -> Result<u64> {
    arg.trim().parse().with_context(|| {
        format!("not an id: {arg:?} (this store has u64 ids; a store of string keys is made with `strata create --keys string`)")
    })
}

pub fn get(dir: &Path, id: &str) -> Result<()> {
    let db = open_reader(dir)?;
    let found = match db.keys() {
        KeyKind::String => db.get_key(id)?,
        _ => db.get(parse_id(id)?)?,
    };
    let Some(r) = found else {
        match db.keys() {
            KeyKind::String => bail!("no record with key {id:?}"),
            _ => bail!("no record with id {id}"),
        }
    };
    println!("{}", record_json(r));
    Ok(())
}

/// A payload as JSON: itself when it is JSON text, else a string (UTF-8) or an array of
/// bytes; null when there is none.
fn payload_json(p: Option<Vec<u8>>) -> serde_json::Value {
    match p {
        None => serde_json::Value::Null,
        Some(p) => serde_json::from_slice(&p).unwrap_or_else(|_| match String::from_utf8(p) {
            Ok(s) => json!(s),
            Err(e) => json!(e.into_bytes()),
        }),
    }
}

pub fn flush(dir: &Path) -> Result<()> {
    let db = open(dir)?;
    let before = db.stats()?;
    db.flush()?;
    crate::build_report::print_all(&db.build_reports());
    calibrate_new_segments(&db)?;
    db.close()?;
    eprintln!(
        "flushed {} rows from the write-ahead log into segments",
        before.memtable_rows
    );
    Ok(())
}

/// Calibrates the segments a command wrote (and any other without a calibration) for
/// searches by target recall, before the store closes (docs/calibration.md).
pub fn calibrate_new_segments(db: &Db) -> Result<()> {
    let t = std::time::Instant::now();
    let n = db
        .calibrate_pending()
        .context("calibrating the new segments for target-recall search failed")?;
    if n > 0 {
        eprintln!(
            "calibrated {n} segments for target-recall search in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `strata calibrate`: calibrates every indexed segment on the queries of `queries`
/// (its first `nq` rows), or the segments that need it, and prints each segment's
/// calibration.
pub fn calibrate(dir: &Path, queries: Option<&Path>, nq: Option<usize>, json: bool) -> Result<()> {
    let db = open(dir)?;
    let t = std::time::Instant::now();
    match queries {
        Some(path) => {
            let q = crate::input::VectorFile::read_first(path, nq)?;
            let refs: Vec<&[f32]> = q.iter().map(Vec::as_slice).collect();
            db.calibrate(&refs)
                .with_context(|| format!("calibrating on {}", path.display()))?;
            eprintln!(
                "calibrated every indexed segment on {} queries in {:.2} s",
                q.len(),
                t.elapsed().as_secs_f64()
            );
        }
        None => {
            let n = db.calibrate_pending()?;
            eprintln!(
                "calibrated {n} segments in {:.2} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    let report = db.calibration();
    db.close()?;
    for c in &report {
        let source = match c.source {
            strata::CalibrationSource::Rows => "rows",
            strata::CalibrationSource::Queries => "queries",
        };
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "segment": c.segment, "rows": c.rows, "source": source, "queries": c.queries,
                    "default_ef": c.default_ef,
                    "recall_at": c.recall_at.iter().map(|&(ef, r)| serde_json::json!({"ef": ef, "recall": r})).collect::<Vec<_>>(),
                })
            );
        } else {
            let points: Vec<String> = c
                .recall_at
                .iter()
                .map(|(ef, r)| format!("{ef}:{r:.3}"))
                .collect();
            println!(
                "segment {:06}: {} rows, on {} {source}, width {} for recall {}; recall@10 by width {}",
                c.segment,
                c.rows,
                c.queries,
                c.default_ef,
                strata::SearchOptions::DEFAULT_TARGET_RECALL,
                points.join(" ")
            );
        }
    }
    Ok(())
}

pub fn delete(dir: &Path, mut args: Vec<String>, ids_file: Option<&Path>) -> Result<()> {
    // In a store of string keys a line is a key as it is (only the line end removed).
    let mut file_lines = Vec::new();
    if let Some(f) = ids_file {
        let file = std::fs::File::open(f)
            .with_context(|| format!("cannot read ids file {}", f.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if !line.trim().is_empty() {
                file_lines.push((format!("{} line {}", f.display(), n + 1), line));
            }
        }
    }
    if args.is_empty() && file_lines.is_empty() {
        bail!("no ids given (pass ids or --ids-file)");
    }
    let db = open(dir)?;
    let keyed = db.keys() == KeyKind::String;
    let mut ids: Vec<u64> = Vec::new();
    if !keyed {
        for a in &args {
            ids.push(parse_id(a)?);
        }
        for (at, line) in &file_lines {
            ids.push(parse_id(line).with_context(|| at.clone())?);
        }
    } else {
        args.extend(file_lines.into_iter().map(|(_, l)| l));
        for k in &args {
            strata::check_key(k).with_context(|| format!("key {k:?} is refused"))?;
        }
    }
    // This command holds the store's only writer, so what `contains` says holds until
    // the delete is written.
    let mut seen = std::collections::HashSet::new();
    let (found, not_found) = if keyed {
        let (mut f, mut n) = (Vec::new(), Vec::new());
        for k in args.into_iter().filter(|k| seen.insert(k.clone())) {
            if db.contains_key(&k)? {
                f.push(k);
            } else {
                n.push(k);
            }
        }
        for chunk in f.chunks(10_000) {
            let mut b = WriteBatch::new();
            chunk.iter().for_each(|k| {
                b.delete_key(k);
            });
            db.write(b)?;
        }
        (f.len(), n.len())
    } else {
        let (f, n): (Vec<u64>, Vec<u64>) = ids
            .into_iter()
            .filter(|id| seen.insert(id.to_string()))
            .partition(|&id| db.contains(id));
        for chunk in f.chunks(10_000) {
            let mut b = WriteBatch::new();
            chunk.iter().for_each(|&id| {
                b.delete(id);
            });
            db.write(b)?;
        }
        (f.len(), n.len())
    };
    db.close()?;
    eprintln!(
        "deleted {found} records; {not_found} {} not found (absent or already deleted)",
        if keyed { "keys" } else { "ids" }
    );
    Ok(())
}

/// `strata stats`: the store's sizes as its gauges, in the Prometheus text format or as
/// JSON.
pub fn stats(dir: &Path, as_json: bool) -> Result<()> {
    let db = open_reader(dir)?;
    let gauges = db.stats()?.gauges();
    let store = dir.display().to_string();
    if as_json {
        let metrics: Vec<_> = gauges
            .iter()
            .map(|g| {
                let mut labels = serde_json::Map::new();
                labels.insert("store".into(), json!(store));
                if let Some((l, v)) = g.label {
                    labels.insert(l.into(), json!(v));
                }
                json!({"name": g.name, "labels": labels, "value": g.value})
            })
            .collect();
        println!("{}", json!({"store": store, "metrics": metrics}));
        return Ok(());
    }
    // Label values escaped as the text format wants: backslash, quote, newline.
    let quoted = store
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    for g in gauges {
        let extra = g
            .label
            .map(|(l, v)| format!(",{l}=\"{v}\""))
            .unwrap_or_default();
        println!("{}{{store=\"{quoted}\"{extra}}} {}", g.name, g.value);
    }
    Ok(())
}

pub fn inspect(dir: &Path) -> Result<()> {
    let db = open_reader(dir)?;
    let s = db.stats()?;
    let segments: Vec<_> = s
        .segments
        .iter()
        .map(|g| json!({"file_no": g.file_no, "rows": g.rows, "deleted": g.deleted, "live": g.rows - g.deleted, "bytes": g.bytes, "indexed": g.indexed, "field_index_bytes": g.field_index_bytes, "vector_codec": g.vector_codec, "row_order": g.row_order, "vector_bytes": g.vector_bytes, "front_bytes": g.front_bytes, "front_in_memory": g.front_in_memory, "front_bytes_per_row": if g.rows > 0 { g.front_bytes as f64 / g.rows as f64 } else { 0.0 }, "text_bytes": g.text_bytes, "text_index_bytes": g.text_index_bytes, "text_index_bytes_per_row": if g.rows > 0 { g.text_index_bytes as f64 / g.rows as f64 } else { 0.0 }, "index": g.index.as_ref().map(|x| json!({"pq_bytes": x.pq_bytes, "walk_codes": x.walk_codes, "hnsw_m": x.hnsw_m, "ef_construction": x.ef_construction, "built_by": x.built_by}))}))
        .collect();
    let out = json!({
        "path": dir.display().to_string(),
        "dim": s.dim,
        "metric": s.metric,
        "keys": db.keys().name(),
        "vector_codec": db.vector_codec().name(),
        "segments": segments,
        "segment_count": s.segments.len(),
        "indexed_segments": s.indexed_segments,
        "rows": s.segment_rows + s.memtable_rows,
        "live_rows": s.live_rows,
        "tombstones": s.tombstones,
        "memtable_rows": s.memtable_rows,
        "last_seq": s.last_seq,
        "bytes": {"segments": s.segment_bytes, "deletions": s.deletion_bytes, "wal": s.wal_bytes, "manifest": s.manifest_bytes},
        "wal_bytes": s.wal_bytes,
        "space_amplification": s.space_amplification,
        "fields": db.fields()?.into_iter().map(|(path, f)| (path, json!({"rows": f.rows, "kinds": f.kinds, "index_bytes": f.index_bytes}))).collect::<serde_json::Map<_, _>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

pub fn backup(dir: &Path, dest: &Path) -> Result<()> {
    let t = std::time::Instant::now();
    let db = open(dir)?;
    let r = db
        .checkpoint(dest)
        .with_context(|| format!("cannot back up {} to {}", dir.display(), dest.display()))?;
    let live = db.len();
    // The store is left as it was opened: no flush on the way out.
    drop(db);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "backed up {} to {} in {:.2?}: {live} live rows; {} segment and deletion files linked ({:.1} MiB), {} log files copied ({:.1} MiB)",
        dir.display(),
        dest.display(),
        t.elapsed(),
        r.linked_files,
        mib(r.linked_bytes),
        r.copied_files,
        mib(r.copied_bytes)
    );
    Ok(())
}

pub fn repair(dir: &Path) -> Result<()> {
    let action = strata::repair(dir).with_context(|| format!("cannot repair {}", dir.display()))?;
    println!(
        "{}",
        match action {
            strata::RepairAction::ManifestRestored => "restored MANIFEST from MANIFEST-MIRROR",
            strata::RepairAction::MirrorRewritten => "rewrote MANIFEST-MIRROR from MANIFEST",
            _ => "nothing to repair: MANIFEST and its mirror are sound and equal",
        }
    );
    verify(dir)
}

pub fn verify(dir: &Path) -> Result<()> {
    let r = strata::verify(dir).with_context(|| format!("verify {}", dir.display()))?;
    println!(
        "ok: {} segments, {} rows, {} tombstones, {} WAL records checked",
        r.segments, r.rows, r.tombstones, r.wal_records
    );
    if let Some((p, off, n)) = r.torn_tail {
        println!(
            "note: {} has an unsynced tail of {n} bytes at offset {off}; the next open cuts it",
            p.display()
        );
    }
    for o in r.orphans {
        println!(
            "note: {} is not in the manifest; the next open removes it",
            o.display()
        );
    }
    Ok(())
}

/// `strata restore URL DIR`.
pub fn restore(url: &str, dir: &Path) -> Result<()> {
    let start = std::time::Instant::now();
    let r = strata::restore(&strata::RemoteConfig::new(url), dir)
        .with_context(|| format!("cannot restore {url} into {}", dir.display()))?;
    println!(
        "restored commit {} of {url} into {}: {} files, {} bytes in {:.2} s",
        r.seq,
        dir.display(),
        r.files,
        r.bytes,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
