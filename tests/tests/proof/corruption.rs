//! Corruption: a reference store (segments with indexes, deletion files, a manifest and
//! WAL files holding records) is damaged one way at a time on the simulated file system
//! and opened. Every single-bit flip of the manifest, of the deletion files, and of each
//! segment's header, section table and footer; random bit flips anywhere; every 4 KiB
//! page zeroed; truncation at every WAL record boundary ±1, every segment section
//! boundary ±1 and every length of the small files; appended garbage; a stale older copy
//! of each file. The outcome must be the right data (for damage the WAL replay can only
//! see as an unsynced tail, the state of an earlier step), or a typed corruption error
//! naming a store file, from the open, a read, or `verify`. Never a panic or another
//! answer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use strata::vfs::{SimVfs, Vfs};
use strata::{Db, Durability, Error, Options, SearchOptions};
use strata_tests::workload::{self, State, Step, Write, DIM, KEYS};

use crate::Tally;

const RANDOM_FLIPS: usize = 10_000;
const DIR: &str = "/store";

type Files = Vec<(String, Vec<u8>)>;

/// The files of a store built by the workload over a simulated file system; `close`
/// leaves WAL records in place when false.
fn build(seed: u64, steps: usize) -> (Files, Files, Vec<State>, usize) {
    let dir = Path::new(DIR);
    let mut plan = workload::steps(seed, steps);
    // No flush or compaction in the last third: those writes stay in several WAL files.
    for (i, s) in plan.iter_mut().enumerate().skip(steps * 2 / 3) {
        if !matches!(s, Step::Batch(_)) {
            *s = Step::Batch(vec![Write::Delete(i as u64 % KEYS)]);
        }
    }
    let states = workload::history(&plan);
    let sim = SimVfs::new();
    // Larger memtables and small WAL files: several WAL files stay live at the end.
    let o = workload::options_for_seed(seed, Durability::Always, Arc::new(sim.clone()))
        .memtable_bytes(24 * 1024)
        .wal_file_bytes(1024);
    let db = Db::open(dir, o).expect("open");
    let mut older = Vec::new();
    for (i, step) in plan.iter().enumerate() {
        workload::run_step(&db, step).expect("step");
        if i == steps / 2 {
            older = files(&sim);
        }
    }
    // Make sure there are segments, deletion files and WAL records after them.
    drop(db);
    (files(&sim), older, states, steps)
}

fn files(fs: &SimVfs) -> Files {
    let dir = Path::new(DIR);
    let mut out: Files = fs
        .list(dir)
        .expect("list")
        .into_iter()
        .filter(|(n, _)| n != "LOCK")
        .map(|(n, _)| {
            let b = fs.read(&dir.join(&n)).expect("read");
            (n, b)
        })
        .collect();
    out.sort();
    out
}

fn image(files: &Files) -> SimVfs {
    let fs = SimVfs::new();
    for (n, b) in files {
        fs.put(&Path::new(DIR).join(n), b).expect("put");
    }
    fs
}

/// What a damaged store gave.
enum Outcome {
    Right,
    Earlier,
    /// A typed error from the open or a read.
    Refused,
    /// The store served other data, and `verify` names the damage (sections whose
    /// checksums are checked by `verify`, not on every read: see docs/durability.md).
    Verified,
}

fn is_store_corruption(e: &Error) -> bool {
    matches!(e, Error::Corruption { path, .. } if path.starts_with(DIR))
}

fn read_all(db: &Db) -> Result<State, Error> {
    // A graph search reads PQ codes and graph rows (checked per block on first use): its
    // answer is approximate, so only whether it fails is judged.
    db.search(&[0.0; DIM], &SearchOptions::new(10))?;
    let hits = db.search(&[0.0; DIM], &SearchOptions::exact(10 * KEYS as usize))?;
    let mut s = State::new();
    let mut keys_agree = true;
    for id in 0..KEYS {
        match workload::get_model(db, id) {
            Ok(Some(r)) => {
                s.insert(id, workload::stored(r));
            }
            Ok(None) => {}
            // A key lookup that found another key's record: a wrong answer.
            Err(Error::Internal(_)) => keys_agree = false,
            Err(e) => return Err(e),
        }
    }
    let mut ids: Vec<u64> = hits
        .iter()
        .map(|h| workload::hit_model_id(db.keys(), h).unwrap_or(u64::MAX))
        .collect();
    ids.sort_unstable();
    // Filtered searches read the segments' metadata indexes (FIELD_INDEX): they must
    // agree with the metadata read back.
    let mut filters_agree = true;
    for text in [
        r#"{"o.even": true}"#,
        r#"{"tags": {"$contains": "t1"}, "step": {"$gte": 40}}"#,
    ] {
        let f = strata::Filter::from_json_str(text).expect("filter");
        let o = SearchOptions {
            filter: Some(f.clone()),
            ..SearchOptions::exact(10 * KEYS as usize)
        };
        let mut got: Vec<u64> = db
            .search(&[0.0; DIM], &o)?
            .iter()
            .map(|h| workload::hit_model_id(db.keys(), h).unwrap_or(u64::MAX))
            .collect();
        got.sort_unstable();
        let empty = strata::Metadata::new();
        let want: Vec<u64> = s
            .iter()
            .filter(|(_, (_, _, m, _))| f.matches(m.as_ref().unwrap_or(&empty)))
            .map(|(id, _)| *id)
            .collect();
        filters_agree &= got == want;
    }
    // Text searches read the segments' text indexes (and texts): their ranking must be
    // exhaustive BM25 over the texts read back.
    let text_agrees = workload::text_search_agrees(db, &s)?.is_ok();
    if !keys_agree || !filters_agree || !text_agrees || ids != s.keys().copied().collect::<Vec<_>>()
    {
        // Two views of the store disagree: a wrong answer unless verify finds why.
        s.insert(u64::MAX, (Vec::new(), None, None, None));
    }
    Ok(s)
}

/// Opens the damaged image and judges the outcome. `earlier_ok`: damage that may look
/// like an unsynced tail (the WAL, stale copies), where an earlier state is right.
fn judge(
    files: &Files,
    states: &[State],
    last: usize,
    earlier_ok: bool,
) -> Result<Outcome, String> {
    let fs: Arc<dyn Vfs> = Arc::new(image(files));
    let dir = Path::new(DIR);
    let opts = Options::existing()
        .vfs(fs.clone())
        .background_compaction(false);
    let got = match Db::open(dir, opts) {
        Err(e) if is_store_corruption(&e) => return Ok(Outcome::Refused),
        Err(e) => return Err(format!("open gave an untyped error: {e}")),
        Ok(db) => read_all(&db),
    };
    let got = match got {
        Err(e) if is_store_corruption(&e) => return Ok(Outcome::Refused),
        Err(e) => return Err(format!("a read gave an untyped error: {e}")),
        Ok(s) => s,
    };
    if states.get(last) == Some(&got) {
        return Ok(Outcome::Right);
    }
    if earlier_ok && states.iter().take(last).any(|s| *s == got) {
        return Ok(Outcome::Earlier);
    }
    // Not the right data: acceptable only if verify names the damage.
    match strata::verify_with(fs, dir) {
        Err(e) if is_store_corruption(&e) => Ok(Outcome::Verified),
        Err(e) => Err(format!("wrong data, and verify gave an untyped error: {e}")),
        Ok(_) => Err(format!(
            "wrong data that verify does not see: {}",
            workload::diff(states.get(last).unwrap_or(&State::new()), &got)
        )),
    }
}

/// The byte ranges of a segment's metadata: header, section table and footer; and its
/// section boundaries.
fn segment_layout(b: &[u8]) -> (Vec<std::ops::Range<usize>>, Vec<usize>) {
    let len = b.len();
    let le = |r: std::ops::Range<usize>| -> u64 {
        b.get(r).map_or(0, |s| {
            s.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x))
        })
    };
    let footer = len.saturating_sub(32);
    let table = le(footer..footer + 8) as usize;
    let count = le(footer + 8..footer + 12) as usize;
    let mut bounds = vec![64, table, footer, len];
    for i in 0..count {
        let e = table + i * 32;
        let off = le(e + 8..e + 16) as usize;
        let n = le(e + 16..e + 24) as usize;
        bounds.extend([off, off + n]);
    }
    (vec![0..64.min(len), table.min(len)..len], bounds)
}

/// The record boundaries of a WAL file.
fn wal_bounds(b: &[u8]) -> Vec<usize> {
    let salt = b
        .get(12..16)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    let mut out = vec![strata_wal::record::FILE_HEADER_LEN];
    let mut pos = strata_wal::record::FILE_HEADER_LEN;
    while let Some((_, next)) = strata_wal::record::decode_record(b, pos, salt) {
        out.push(next);
        pos = next;
    }
    out
}

/// One round.
pub fn run(round: u64) -> Tally {
    // Two workloads per round: an even seed (a store of `u64` ids) and an odd one (a
    // store of string keys; see `workload::options_for_seed`).
    let mut tally = Tally::default();
    for seed in [0xBAD + 2 * round, 0xBAD + 2 * round + 1] {
        tally.merge(run_seed(seed));
    }
    tally
}

fn run_seed(seed: u64) -> Tally {
    let mut tally = Tally::default();
    let (base, older, states, last) = build(seed, 120);
    let count = |ext: &str| base.iter().filter(|(n, _)| n.ends_with(ext)).count();
    println!(
        "corruption: reference store of {} segments, {} deletion files, {} WAL files, {} bytes",
        count(".seg"),
        count(".del"),
        count(".wal"),
        base.iter().map(|(_, b)| b.len()).sum::<usize>()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let case = |tally: &mut Tally, what: String, files: Files, earlier_ok: bool| {
        let res = catch_unwind(AssertUnwindSafe(|| {
            judge(&files, &states, last, earlier_ok)
        }));
        tally.add("corruption cases", 1);
        match res {
            Ok(Ok(Outcome::Right)) => tally.add("  right data", 1),
            Ok(Ok(Outcome::Earlier)) => tally.add("  earlier state (torn tail)", 1),
            Ok(Ok(Outcome::Refused)) => tally.add("  typed corruption error", 1),
            // Every section of a segment is checksummed when it is read (whole at open,
            // or per block on first use): a segment never serves wrong data.
            Ok(Ok(Outcome::Verified)) if what.contains(".seg") => {
                tally.lose(format!("{what}: wrong data from a segment until verify"))
            }
            Ok(Ok(Outcome::Verified)) => tally.add("  wrong data until verify names it", 1),
            Ok(Err(e)) => tally.lose(format!("{what}: {e}")),
            Err(_) => tally.lose(format!("{what}: panic")),
        }
    };
    let with = |i: usize, bytes: Vec<u8>| {
        let mut f = base.clone();
        if let Some(slot) = f.get_mut(i) {
            slot.1 = bytes;
        }
        f
    };
    let kinds: Vec<&str> = base
        .iter()
        .map(|(n, _)| n.rsplit('.').next().unwrap_or(""))
        .collect();
    // The undamaged store must be right.
    case(&mut tally, "undamaged".into(), base.clone(), false);
    for (i, (name, bytes)) in base.iter().enumerate() {
        let wal = kinds.get(i) == Some(&"wal");
        // Single-bit flips of the metadata.
        let meta: Vec<std::ops::Range<usize>> = match kinds.get(i) {
            Some(&"seg") => segment_layout(bytes).0,
            Some(&"wal") => {
                std::iter::once(0..strata_wal::record::FILE_HEADER_LEN.min(bytes.len())).collect()
            }
            _ => std::iter::once(0..bytes.len()).collect(),
        };
        for r in meta {
            for at in r {
                for bit in 0..8 {
                    let mut b = bytes.clone();
                    if let Some(x) = b.get_mut(at) {
                        *x ^= 1 << bit;
                    }
                    tally.add("metadata bit flips", 1);
                    case(
                        &mut tally,
                        format!("{name}: bit {bit} of byte {at}"),
                        with(i, b),
                        wal,
                    );
                }
            }
        }
        // Zeroed pages.
        for page in 0..bytes.len().div_ceil(4096) {
            let mut b = bytes.clone();
            let end = ((page + 1) * 4096).min(b.len());
            if let Some(s) = b.get_mut(page * 4096..end) {
                s.fill(0);
            }
            case(
                &mut tally,
                format!("{name}: page {page} zeroed"),
                with(i, b),
                wal,
            );
        }
        // Truncations.
        let cuts: Vec<usize> = match kinds.get(i) {
            Some(&"seg") => segment_layout(bytes).1,
            Some(&"wal") => wal_bounds(bytes),
            _ => (0..bytes.len()).collect(),
        };
        let mut cuts: Vec<usize> = cuts
            .into_iter()
            .flat_map(|c| [c.saturating_sub(1), c, c + 1])
            .filter(|&c| c < bytes.len())
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        for c in cuts {
            let b = bytes.get(..c).unwrap_or_default().to_vec();
            case(
                &mut tally,
                format!("{name}: truncated to {c}"),
                with(i, b),
                wal,
            );
        }
        // Appended garbage.
        for n in [1usize, 7, 64, 4096] {
            let mut b = bytes.clone();
            b.extend((0..n).map(|_| rng.random::<u8>()));
            case(
                &mut tally,
                format!("{name}: {n} garbage bytes appended"),
                with(i, b),
                wal,
            );
        }
        // A stale older copy of the same file.
        if let Some((_, old)) = older.iter().find(|(n, b)| n == name && b != bytes) {
            case(
                &mut tally,
                format!("{name}: stale copy"),
                with(i, old.clone()),
                wal,
            );
        }
    }
    // Files of the older store that the newer one had removed, brought back.
    for (n, b) in older
        .iter()
        .filter(|(n, _)| !base.iter().any(|(m, _)| m == n))
    {
        let mut f = base.clone();
        f.push((n.clone(), b.clone()));
        case(
            &mut tally,
            format!("{n}: a removed file brought back"),
            f,
            false,
        );
        // And the older manifest with it: an older, consistent store or an error.
    }
    if let Some((_, old_manifest)) = older.iter().find(|(n, _)| n == "MANIFEST") {
        let mut f = base.clone();
        for slot in f.iter_mut().filter(|(n, _)| n == "MANIFEST") {
            slot.1 = old_manifest.clone();
        }
        case(&mut tally, "stale MANIFEST".into(), f, true);
    }
    // Random bit flips anywhere.
    let total: usize = base.iter().map(|(_, b)| b.len()).sum();
    for _ in 0..RANDOM_FLIPS {
        let mut at = rng.random_range(0..total);
        let bit = rng.random_range(0..8);
        let Some(i) = base.iter().position(|(_, b)| {
            if at < b.len() {
                true
            } else {
                at -= b.len();
                false
            }
        }) else {
            continue;
        };
        let mut b = base.get(i).map(|f| f.1.clone()).unwrap_or_default();
        if let Some(x) = b.get_mut(at) {
            *x ^= 1 << bit;
        }
        let name = base.get(i).map_or("", |f| f.0.as_str()).to_string();
        let wal = kinds.get(i) == Some(&"wal");
        tally.add("random bit flips", 1);
        case(
            &mut tally,
            format!("{name}: random flip of bit {bit} at {at}"),
            with(i, b),
            wal,
        );
    }
    tally
}
