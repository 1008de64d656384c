//! The store commands: create, import, search, get, delete, inspect, verify.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::json;
use strata::{Db, Metric, Options, SearchOptions, WriteBatch};

use crate::input::VectorFile;
use crate::progress;

/// Opens for a command that reads or makes a small change: no background compaction
/// (`strata compact` is the explicit way).
fn open(dir: &Path) -> Result<Db> {
    let opts = Options::existing().background_compaction(false);
    Db::open(dir, opts).with_context(|| format!("cannot open store {}", dir.display()))
}

pub fn create(dir: &Path, dim: usize, metric: Metric) -> Result<()> {
    if dir.join("MANIFEST").exists() {
        bail!("{} already holds a store", dir.display());
    }
    let db = Db::open(dir, Options::new(dim, metric))
        .with_context(|| format!("cannot create store {}", dir.display()))?;
    db.close()?;
    println!(
        "created {} (dim {dim}, metric {})",
        dir.display(),
        metric.name()
    );
    Ok(())
}

pub fn import(
    dir: &Path,
    file: &Path,
    ids_from: u64,
    sync: strata::Durability,
    batch_rows: usize,
    device: strata::BuildDevice,
) -> Result<()> {
    let mut input = VectorFile::open(file)?;
    let opts = Options::existing().build_device(device).durability(sync);
    let db = Db::open(dir, opts).with_context(|| format!("cannot open store {}", dir.display()))?;
    let start = std::time::Instant::now();
    let n = import_rows(&db, &mut input, ids_from, batch_rows.max(1))?;
    db.flush()?;
    crate::build_report::print_all(&db.build_reports());
    db.close()?;
    eprintln!(
        "imported {n} rows from {} in {:.2?}",
        file.display(),
        start.elapsed()
    );
    Ok(())
}

/// Writes every row of `input` in batches; returns the number of rows.
pub fn import_rows(
    db: &Db,
    input: &mut VectorFile,
    ids_from: u64,
    batch_rows: usize,
) -> Result<u64> {
    let pb = progress::bytes_bar(input.bytes, "import");
    let approx_row_bytes = (db.dim() * 4 + 4) as u64;
    let mut batch = WriteBatch::new();
    let mut first_row = 0;
    while let Some(row) = input.next_row()? {
        let r = input.rows_read() - 1;
        if row.vector.len() != db.dim() {
            bail!(
                "row {r} of the input has dimension {}, the store has {}",
                row.vector.len(),
                db.dim()
            );
        }
        let id = row.id.unwrap_or(ids_from + r);
        match &row.payload {
            Some(p) => batch.upsert_with_payload(id, &row.vector, p),
            None => batch.upsert(id, &row.vector),
        };
        if batch.len() >= batch_rows {
            db.write(std::mem::take(&mut batch))
                .with_context(|| format!("writing rows {first_row}..={r}"))?;
            first_row = r + 1;
            pb.set_position(input.rows_read() * approx_row_bytes);
        }
    }
    if !batch.is_empty() {
        db.write(batch)
            .with_context(|| format!("writing rows from {first_row}"))?;
    }
    pb.finish_and_clear();
    Ok(input.rows_read())
}

pub fn search(dir: &Path, queries: &Path, opts: &SearchOptions) -> Result<()> {
    let db = open(dir)?;
    let qs = VectorFile::read_all(queries)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (row, q) in qs.iter().enumerate() {
        if q.len() != db.dim() {
            bail!(
                "query {row} has dimension {}, the store has {}",
                q.len(),
                db.dim()
            );
        }
        let hits = db.search(q, opts).with_context(|| format!("query {row}"))?;
        let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        let distances: Vec<f32> = hits.iter().map(|h| h.distance).collect();
        // Keys in the documented order: query, ids, distances.
        writeln!(
            out,
            "{{\"query\": {row}, \"ids\": {}, \"distances\": {}}}",
            serde_json::to_string(&ids)?,
            serde_json::to_string(&distances)?
        )?;
    }
    out.flush()?;
    Ok(())
}

pub fn get(dir: &Path, id: u64) -> Result<()> {
    let db = open(dir)?;
    let Some(r) = db.get(id)? else {
        bail!("no record with id {id}")
    };
    let payload = match r.payload {
        None => serde_json::Value::Null,
        Some(p) => serde_json::from_slice(&p).unwrap_or_else(|_| match String::from_utf8(p) {
            Ok(s) => json!(s),
            Err(e) => json!(e.into_bytes()),
        }),
    };
    println!(
        "{}",
        json!({"id": r.id, "vector": r.vector, "payload": payload})
    );
    Ok(())
}

pub fn delete(dir: &Path, mut ids: Vec<u64>, ids_file: Option<&Path>) -> Result<()> {
    if let Some(f) = ids_file {
        let file = std::fs::File::open(f)
            .with_context(|| format!("cannot read ids file {}", f.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            let t = line.trim();
            if !t.is_empty() {
                ids.push(t.parse().with_context(|| {
                    format!("{} line {}: not an id: {t:?}", f.display(), n + 1)
                })?);
            }
        }
    }
    if ids.is_empty() {
        bail!("no ids given (pass ids or --ids-file)");
    }
    let db = open(dir)?;
    for chunk in ids.chunks(10_000) {
        let mut b = WriteBatch::new();
        chunk.iter().for_each(|&id| {
            b.delete(id);
        });
        db.write(b)?;
    }
    db.close()?;
    eprintln!("deleted {} ids", ids.len());
    Ok(())
}

pub fn inspect(dir: &Path) -> Result<()> {
    let db = open(dir)?;
    let s = db.stats()?;
    let segments: Vec<_> = s
        .segments
        .iter()
        .map(|g| json!({"file_no": g.file_no, "rows": g.rows, "deleted": g.deleted, "live": g.rows - g.deleted, "bytes": g.bytes, "indexed": g.indexed, "index": g.index.as_ref().map(|x| json!({"pq_bytes": x.pq_bytes, "hnsw_m": x.hnsw_m, "ef_construction": x.ef_construction, "built_by": x.built_by}))}))
        .collect();
    let out = json!({
        "path": dir.display().to_string(),
        "dim": s.dim,
        "metric": s.metric,
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
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    drop(db); // inspect changes nothing: no flush on the way out
    Ok(())
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
