//! `strata compact`: offline compaction of a closed store.

use std::path::Path;

use anyhow::{Context, Result};
use strata::{Db, Options, Stage, Stats};
use strata_compaction::policy::{plan, SegmentMeta, PLANNED_FILE_NO};

use crate::progress;

fn summary(s: &Stats) -> String {
    format!(
        "{} segments ({} indexed), {} rows, {} live, {} tombstones, {:.1} MiB (space amplification {:.2})",
        s.segments.len(),
        s.indexed_segments,
        s.segment_rows + s.memtable_rows,
        s.live_rows,
        s.tombstones,
        (s.segment_bytes + s.deletion_bytes + s.wal_bytes + s.manifest_bytes) as f64
            / (1 << 20) as f64,
        s.space_amplification
    )
}

/// The file number the dry run gives the segment a flush would write.
const FLUSHED_FILE_NO: u64 = PLANNED_FILE_NO - 1;

/// Prints the flush and merges the run would do, without touching the store.
fn print_plan(s: &Stats, full: bool, policy: &strata::PolicyOptions) {
    let mut segs: Vec<SegmentMeta> = s
        .segments
        .iter()
        .rev()
        .map(|g| SegmentMeta {
            file_no: g.file_no,
            rows: g.rows,
            deleted: g.deleted,
            bytes: g.bytes,
        })
        .collect();
    if s.memtable_rows > 0 {
        println!(
            "would flush {} rows from the write-ahead log into a new segment",
            s.memtable_rows
        );
        // Sized like the existing segments per row (or 4 bytes per dimension).
        let per_row = s
            .segment_bytes
            .checked_div(s.segment_rows)
            .unwrap_or(4 * s.dim as u64);
        segs.push(SegmentMeta {
            file_no: FLUSHED_FILE_NO,
            rows: s.memtable_rows,
            deleted: 0,
            bytes: s.memtable_rows * per_row,
        });
    }
    let (steps, _) = plan(&segs, policy, full);
    for step in &steps {
        let names: Vec<String> = step
            .choice
            .inputs
            .iter()
            .map(|&f| {
                if f == FLUSHED_FILE_NO {
                    "(flushed)".to_string()
                } else if f >= PLANNED_FILE_NO {
                    "(merged)".to_string()
                } else {
                    format!("{f:06}.seg")
                }
            })
            .collect();
        println!(
            "would merge ({:?}): {} -> {} live rows",
            step.choice.reason,
            names.join(" "),
            step.live_rows
        );
    }
    if steps.is_empty() {
        println!("nothing to merge");
    }
}

/// Compacts the closed store in `dir`.
pub fn run(
    dir: &Path,
    full: bool,
    dry_run: bool,
    threads: Option<usize>,
    device: strata::BuildDevice,
) -> Result<()> {
    let opts = Options::existing()
        .build_device(device)
        .compaction(strata::CompactionOptions {
            background: false,
            threads: threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
            ..strata::CompactionOptions::default()
        });
    let policy = opts.compaction_options().policy;
    let db = Db::open(dir, crate::ops::with_bucket(dir, opts)?)
        .with_context(|| format!("cannot open store {} for compaction", dir.display()))?;
    let before = db.stats()?;
    println!("before: {}", summary(&before));
    if dry_run {
        print_plan(&before, full, &policy);
        drop(db); // changes nothing: no flush on the way out
        return Ok(());
    }
    // Memtable rows (replayed from the WAL) go to a segment first, so they are compacted.
    if before.memtable_rows > 0 {
        let t = std::time::Instant::now();
        db.flush()?;
        println!(
            "flushed {} rows from the write-ahead log into a segment in {:.2} s",
            before.memtable_rows,
            t.elapsed().as_secs_f64()
        );
    }
    let bar = progress::bar(0, "compact");
    let t = std::time::Instant::now();
    let reports = db.compact(full, &|stage: Stage, done, total| {
        bar.set_message(stage.name());
        bar.set_length(total);
        bar.set_position(done);
        true
    })?;
    bar.finish_and_clear();
    crate::build_report::print_all(&db.build_reports());
    for r in &reports {
        println!(
            "merged {} segments ({:?}): {} rows -> {} rows, {:.1} -> {:.1} MiB{} in {:.2} s",
            r.inputs,
            r.reason,
            r.rows_in,
            r.rows_out,
            r.bytes_in as f64 / (1 << 20) as f64,
            r.bytes_out as f64 / (1 << 20) as f64,
            if r.indexed { ", indexed" } else { "" },
            r.seconds
        );
    }
    if reports.is_empty() {
        println!("nothing to merge");
    }
    crate::ops::calibrate_new_segments(&db)?;
    db.close()?;
    // Measured on the closed store: files the compaction replaced and log files the
    // flush emptied are gone only then.
    let after = Db::open(
        dir,
        Options::existing()
            .background_compaction(false)
            .background_calibration(false),
    )
    .and_then(|db| db.stats())
    .with_context(|| format!("cannot reopen {} after compaction", dir.display()))?;
    println!("after:  {}", summary(&after));
    let rows: u64 = reports.iter().map(|r| r.rows_in).sum();
    if rows > 0 {
        println!(
            "{} compactions, {rows} rows read in {:.2} s ({:.0} rows/s)",
            reports.len(),
            t.elapsed().as_secs_f64(),
            rows as f64 / t.elapsed().as_secs_f64()
        );
    }
    let v = strata::verify(dir)
        .with_context(|| format!("verify {} after compaction", dir.display()))?;
    println!("verify: ok ({} segments, {} rows)", v.segments, v.rows);
    Ok(())
}
