//! `strata import`: checks a whole input file, then writes it in atomic batches, and says
//! exactly which rows are committed when it stops early.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use strata::{Db, InvalidArgument, Options, WriteBatch};

use crate::input::{Row, VectorFile};
use crate::progress;
use crate::sqlite_input::SqliteTable;

/// How to import.
pub struct Plan {
    /// Id of input row 0 when rows give no ids.
    pub ids_from: u64,
    /// Rows per atomic batch.
    pub batch_rows: usize,
    /// Skip rows the store refuses (and unreadable JSON lines) instead of stopping.
    pub skip_bad_rows: bool,
    /// First input row to write (earlier rows are read and skipped).
    pub from_row: u64,
    /// A JSON-lines file whose line i is the metadata of input row i.
    pub metadata_file: Option<std::path::PathBuf>,
    /// The table to read when the input is an SQLite database.
    pub sqlite: Option<SqliteTable>,
}

impl Plan {
    /// Opens the input (with its metadata file, if any) for a store of `keys`.
    fn open(&self, file: &Path, keys: strata::KeyKind) -> Result<VectorFile> {
        let input = match &self.sqlite {
            Some(table) => VectorFile::open_sqlite(file, table, keys)?,
            None => VectorFile::open(file)?,
        };
        match &self.metadata_file {
            Some(m) => input.with_metadata_file(m),
            None => Ok(input),
        }
    }
}

impl Plan {
    /// Every row from the start, row numbers as ids, batches of `batch_rows`.
    pub fn all(batch_rows: usize) -> Plan {
        Plan {
            ids_from: 0,
            batch_rows,
            skip_bad_rows: false,
            from_row: 0,
            metadata_file: None,
            sqlite: None,
        }
    }
}

/// What an import wrote.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Input rows read (written or skipped).
    pub rows_read: u64,
    /// Rows written.
    pub written: u64,
    /// Rows skipped as bad, and the first reason.
    pub skipped: u64,
    /// The first skipped row's reason.
    pub first_skip: Option<String>,
    /// Ids or keys that occur more than once in the input (the later row is kept).
    pub repeated_ids: u64,
    /// Smallest and largest id written.
    pub id_range: Option<(u64, u64)>,
}

/// Whether rows give their own ids: fixed by the first row, then required of all.
#[derive(Clone, Copy, PartialEq)]
enum IdMode {
    Given,
    RowNumbers,
}

/// What a row is written under: a `u64` id, or a string key in a store of string keys.
#[derive(Clone, PartialEq, Eq, Hash)]
enum RowKey {
    Id(u64),
    Key(String),
}

impl std::fmt::Display for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowKey::Id(id) => write!(f, "id {id}"),
            RowKey::Key(k) => write!(f, "key {k:?}"),
        }
    }
}

/// Tracks ids (or keys) across the input: mode, overflow, repeats.
struct Ids {
    ids_from: u64,
    keyed: bool,
    mode: Option<(IdMode, String)>,
    seen: HashSet<RowKey>,
    repeated: u64,
}

impl Ids {
    fn new(ids_from: u64, keys: strata::KeyKind) -> Ids {
        Ids {
            ids_from,
            keyed: keys == strata::KeyKind::String,
            mode: None,
            seen: HashSet::new(),
            repeated: 0,
        }
    }

    /// The id (or key) of input row `r` (0-based) at `pos`; refuses a row that names
    /// itself by the other kind of key than the store's, a row whose kind of id differs
    /// from the first row's, and a row number that overflows with `--ids-from`. Rows of
    /// a store of string keys that give none are keyed by their row number (plus
    /// `--ids-from`) in decimal.
    fn of(&mut self, row: &Row, r: u64, pos: &str) -> Result<RowKey> {
        let (field, given) = match (self.keyed, &row.id, &row.key) {
            (true, Some(_), _) => bail!(
                "{pos}: the store has string keys: give each row a \"key\" (a string), not an \"id\""
            ),
            (false, _, Some(_)) => bail!(
                "{pos}: the store has u64 ids: give each row an \"id\" (an unsigned integer), not a \"key\" \
                 (a store of string keys is made with `strata create --keys string`)"
            ),
            (true, None, key) => ("key", key.is_some()),
            (false, id, None) => ("id", id.is_some()),
        };
        let mode = if given {
            IdMode::Given
        } else {
            IdMode::RowNumbers
        };
        match &self.mode {
            None => self.mode = Some((mode, pos.to_string())),
            Some((first, first_pos)) if *first != mode => {
                let (with, without) = match first {
                    IdMode::Given => (first_pos.as_str(), pos),
                    IdMode::RowNumbers => (pos, first_pos.as_str()),
                };
                bail!(
                    "{with} gives an \"{field}\" and {without} does not: give every row one, or none \
                     (then rows are named by their row numbers plus --ids-from)"
                );
            }
            Some(_) => {}
        }
        let number = || {
            self.ids_from.checked_add(r).ok_or_else(|| {
                anyhow!(
                    "--ids-from {} plus row number {r} exceeds the largest id ({})",
                    self.ids_from,
                    u64::MAX
                )
            })
        };
        let key = match (&row.key, row.id) {
            (Some(k), _) => {
                strata::check_key(k).map_err(|e| anyhow!("{pos}: {e}"))?;
                RowKey::Key(k.clone())
            }
            (None, Some(id)) => RowKey::Id(id),
            (None, None) if self.keyed => RowKey::Key(number()?.to_string()),
            (None, None) => RowKey::Id(number()?),
        };
        // Row-number ids never repeat; given ones are tracked.
        if mode == IdMode::Given && !self.seen.insert(key.clone()) {
            self.repeated += 1;
        }
        Ok(key)
    }
}

/// Checks one row against the store: dimension, values, payload, id. Errors name the
/// input file.
fn check_row(db: &Db, ids: &mut Ids, row: &Row, r: u64, pos: &str, file: &Path) -> Result<RowKey> {
    check_row_at(db, ids, row, r, pos).with_context(|| file.display().to_string())
}

fn check_row_at(db: &Db, ids: &mut Ids, row: &Row, r: u64, pos: &str) -> Result<RowKey> {
    if let Some(e) = &row.refused {
        bail!("{e}");
    }
    if let Some(e) = &row.metadata_error {
        bail!("{pos}: {e}");
    }
    let id = ids.of(row, r, pos)?;
    if row.vector.len() != db.dim() {
        bail!(
            "{pos} ({id}): dimension {}, the store has {}",
            row.vector.len(),
            db.dim()
        );
    }
    db.check_record(&row.vector, row.metadata.as_ref(), row.payload.as_deref())
        .and_then(|()| db.check_text(row.text.as_deref()))
        .map_err(|e: InvalidArgument| anyhow!("{pos} ({id}): {e}"))?;
    Ok(id)
}

/// Reads the whole input once and checks every row without writing: returns the number
/// of rows, or the first fault (with its position).
pub fn check_all(db: &Db, file: &Path, plan: &Plan) -> Result<u64> {
    let mut input = plan.open(file, db.keys())?;
    let mut ids = Ids::new(plan.ids_from, db.keys());
    let pb = progress::bytes_bar(input.bytes, "check");
    let approx_row_bytes = (db.dim() * 4 + 4) as u64;
    let refused = "input refused, nothing was written";
    while let Some(row) = input.next_row().context(refused)? {
        let r = input.rows_read() - 1;
        check_row(db, &mut ids, &row, r, &input.position(), file).context(refused)?;
        if r % 10_000 == 0 {
            pb.set_position(r * approx_row_bytes);
        }
    }
    pb.finish_and_clear();
    Ok(input.rows_read())
}

/// Writes the rows of `input` in batches by `plan`. On a failure after some batches, the
/// error says which input rows are committed and how to continue.
/// `total_rows` (0 when unknown) sizes the progress report.
pub fn write_rows(
    db: &Db,
    input: &mut VectorFile,
    plan: &Plan,
    total_rows: u64,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    let mut ids = Ids::new(plan.ids_from, db.keys());
    let pb = progress::rows(total_rows, "import");
    let mut batch = WriteBatch::new();
    // Input rows in the pending batch, for naming a refused one.
    let mut batch_pos: Vec<String> = Vec::new();
    // Input rows [plan.from_row, committed) are in the store.
    let mut committed = plan.from_row;
    let stopped = |committed: u64| {
        let done = if committed > plan.from_row {
            format!(
                "input rows {}..={} are committed",
                plan.from_row,
                committed - 1
            )
        } else {
            "no row of this import was committed".to_string()
        };
        format!(
            "{done}; rerun with --from-row {committed} to continue from the first row not written"
        )
    };
    loop {
        let row = match input.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) if plan.skip_bad_rows && input.can_continue() => {
                note_skip(&mut out, format!("{e:#}"));
                continue;
            }
            Err(e) if plan.skip_bad_rows => {
                note_skip(
                    &mut out,
                    format!("{e:#} (the rest of the file is unreadable)"),
                );
                break;
            }
            Err(e) => {
                // Commit what came before the bad row, then stop.
                flush_batch(db, &mut batch, &mut batch_pos).with_context(|| stopped(committed))?;
                return Err(e.context(stopped(input.rows_read())));
            }
        };
        let r = input.rows_read() - 1;
        out.rows_read = r + 1;
        if r < plan.from_row {
            continue;
        }
        let pos = input.position();
        let id = match check_row(db, &mut ids, &row, r, &pos, input.path()) {
            Ok(id) => id,
            Err(e) if plan.skip_bad_rows => {
                note_skip(&mut out, format!("{e:#}"));
                continue;
            }
            Err(e) => {
                flush_batch(db, &mut batch, &mut batch_pos).with_context(|| stopped(committed))?;
                return Err(e.context(stopped(r)));
            }
        };
        let (metadata, payload) = (row.metadata.as_ref(), row.payload.as_deref());
        match (&id, row.text.as_deref()) {
            (RowKey::Id(id), None) => batch.upsert_record(*id, &row.vector, metadata, payload),
            (RowKey::Key(k), None) => batch.upsert_keyed(k, &row.vector, metadata, payload),
            (RowKey::Id(id), Some(t)) => batch.upsert_text(*id, &row.vector, t, metadata, payload),
            (RowKey::Key(k), Some(t)) => {
                batch.upsert_keyed_text(k, &row.vector, t, metadata, payload)
            }
        };
        batch_pos.push(pos);
        out.written += 1;
        if let RowKey::Id(id) = id {
            out.id_range = Some(match out.id_range {
                None => (id, id),
                Some((lo, hi)) => (lo.min(id), hi.max(id)),
            });
        }
        if batch.len() >= plan.batch_rows {
            flush_batch(db, &mut batch, &mut batch_pos).with_context(|| stopped(committed))?;
            committed = r + 1;
            pb.set_position(committed);
        }
    }
    flush_batch(db, &mut batch, &mut batch_pos).with_context(|| stopped(committed))?;
    pb.set_position(input.rows_read());
    pb.finish_and_clear();
    out.rows_read = input.rows_read();
    out.repeated_ids = ids.repeated;
    Ok(out)
}

fn note_skip(out: &mut Outcome, why: String) {
    out.skipped += 1;
    out.first_skip.get_or_insert(why);
}

/// Writes the pending batch; a refused row is named by its input position.
fn flush_batch(db: &Db, batch: &mut WriteBatch, pos: &mut Vec<String>) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let b = std::mem::take(batch);
    let positions = std::mem::take(pos);
    db.write(b).map_err(|e| match &e {
        strata::Error::InvalidArgument(InvalidArgument::InBatch { index, .. }) => {
            let at = positions.get(*index).cloned().unwrap_or_default();
            anyhow::Error::new(e).context(at)
        }
        _ => anyhow::Error::new(e),
    })
}

/// `strata import`: check, write, flush, report.
pub fn run(
    dir: &Path,
    file: &Path,
    plan: &Plan,
    sync: strata::Durability,
    device: strata::BuildDevice,
) -> Result<()> {
    let opts = Options::existing()
        .build_device(device)
        .durability(sync)
        .background_calibration(false);
    let opts = crate::ops::with_bucket(dir, opts)?;
    let db = Db::open(dir, opts).with_context(|| format!("cannot open store {}", dir.display()))?;
    let start = std::time::Instant::now();
    let total_rows = if plan.skip_bad_rows {
        0
    } else {
        check_all(&db, file, plan)?
    };
    let live_before = db.len();
    let mut input = plan.open(file, db.keys())?;
    let total_rows = input.known_rows().unwrap_or(total_rows);
    let out = write_rows(&db, &mut input, plan, total_rows)
        .with_context(|| format!("import of {} stopped", file.display()))?;
    db.flush()
        .context("the rows are committed (in the write-ahead log) but indexing them failed; `strata flush` retries")?;
    crate::build_report::print_all(&db.build_reports());
    crate::ops::calibrate_new_segments(&db)?;
    let live_after = db.len();
    db.close()?;
    let ids = match out.id_range {
        Some((lo, hi)) => format!(", ids {lo}..={hi}"),
        None => String::new(),
    };
    eprintln!(
        "imported {} rows from {} in {:.2?}{ids}; the store has {live_after} live rows (was {live_before})",
        out.written,
        file.display(),
        start.elapsed()
    );
    if plan.from_row > 0 {
        eprintln!(
            "note: input rows before {} were not read into the store (--from-row)",
            plan.from_row
        );
    }
    if out.repeated_ids > 0 {
        eprintln!(
            "note: {} rows repeat an id (or key) given by an earlier row; the later row replaced it",
            out.repeated_ids
        );
    }
    if out.skipped > 0 {
        eprintln!(
            "skipped {} bad rows (--skip-bad-rows); the first: {}",
            out.skipped,
            out.first_skip.unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use strata::vfs::{Action, FaultVfs, Op, OsVfs};
    use strata::Metric;

    use super::*;

    #[test]
    fn a_write_failure_names_exactly_the_committed_rows_and_where_to_continue() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("store");
        let file = t.path().join("rows.fvecs");
        let mut bytes = Vec::new();
        for i in 0..2500u32 {
            bytes.extend_from_slice(&2i32.to_le_bytes());
            bytes.extend_from_slice(&(i as f32).to_le_bytes());
            bytes.extend_from_slice(&1f32.to_le_bytes());
        }
        std::fs::write(&file, bytes).unwrap();
        // The disk fills at the third append to the log after the store is open.
        let wal_writes = Arc::new(AtomicU64::new(0));
        let seen = wal_writes.clone();
        let fault = FaultVfs::new(
            Arc::new(OsVfs),
            move |_: u64, op: Op, path: &Path, _: usize| {
                let wal = path.extension().is_some_and(|e| e == "wal");
                if op == Op::Write && wal && seen.fetch_add(1, Ordering::SeqCst) >= 2 {
                    Action::Fail(std::io::Error::from_raw_os_error(28))
                } else {
                    Action::Proceed
                }
            },
        );
        let db = Db::open(
            &dir,
            Options::new(2, Metric::L2)
                .vfs(Arc::new(fault))
                .durability(strata::Durability::Always),
        )
        .unwrap();
        let mut input = VectorFile::open(&file).unwrap();
        let e = write_rows(&db, &mut input, &Plan::all(1000), 2500).unwrap_err();
        drop(db);
        let text = format!("{e:#}");
        let last: u64 = text
            .split("input rows 0..=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no committed range in: {text}"));
        assert!(text.contains(&format!("--from-row {}", last + 1)), "{text}");
        assert!(wal_writes.load(Ordering::SeqCst) >= 3, "the fault fired");
        let db = Db::open(&dir, Options::existing()).unwrap();
        assert_eq!(db.len(), last + 1, "{text}");
        assert!(db.contains(last) && !db.contains(last + 1));
    }
}
