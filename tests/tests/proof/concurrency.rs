//! Concurrency: one writer applies the workload's batches while readers search and get,
//! and another thread forces flushes and compactions (the background compactor runs
//! too). Every reader's search is one snapshot: its ids and distances must be exactly
//! those of a state the history passed through while the search ran (between the last
//! batch acknowledged before it began and the last batch begun when it ended); every
//! `get` must return a value the id had in that window. Ends with a crash reopen that
//! must hold the final state.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use strata::vfs::OsVfs;
use strata::{Db, Durability, SearchOptions};
use strata_tests::workload::{self, State, Step, DIM, KEYS};

use crate::Tally;

const BATCHES: usize = 600;
const READERS: usize = 2;

fn distances(s: &State, q: &[f32]) -> Vec<(u64, f32)> {
    let mut v: Vec<(u64, f32)> = s
        .iter()
        .map(|(&id, (v, _, _, _))| (id, v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum()))
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

/// One round.
pub fn run(round: u64) -> Tally {
    // Two workloads per round: an even seed (a store of `u64` ids) and an odd one (a
    // store of string keys; see `workload::options_for_seed`).
    let mut tally = Tally::default();
    for seed in [0xC0C0 + 2 * round, 0xC0C0 + 2 * round + 1] {
        tally.merge(run_seed(seed));
    }
    tally
}

fn run_seed(seed: u64) -> Tally {
    let mut tally = Tally::default();
    let batches: Vec<Step> = workload::steps(seed, BATCHES * 2)
        .into_iter()
        .filter(|s| matches!(s, Step::Batch(_)))
        .take(BATCHES)
        .collect();
    let states = workload::history(&batches);
    let dir = tempfile::tempdir().expect("tempdir");
    let o = workload::options_for_seed(seed, Durability::Never, Arc::new(OsVfs))
        .background_compaction(true)
        .search_threads(None);
    let db = Db::open(dir.path(), o).expect("open");
    // `acked`: batches acknowledged; `begun`: batches whose write has started.
    let acked = AtomicUsize::new(0);
    let begun = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let losses = std::sync::Mutex::new(Vec::<String>::new());
    let checks = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, b) in batches.iter().enumerate() {
                begun.store(i + 1, Ordering::SeqCst);
                if let Err(e) = workload::run_step(&db, b) {
                    losses
                        .lock()
                        .map(|mut l| l.push(format!("write {i}: {e}")))
                        .ok();
                    break;
                }
                acked.store(i + 1, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        });
        s.spawn(|| {
            let mut full = false;
            while !done.load(Ordering::SeqCst) {
                let r = db
                    .flush()
                    .and_then(|()| db.compact(full, &|_, _, _| true).map(|_| ()));
                if let Err(e) = r {
                    losses
                        .lock()
                        .map(|mut l| l.push(format!("flush/compact: {e}")))
                        .ok();
                    break;
                }
                full = !full;
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        });
        for r in 0..READERS {
            let (db, acked, begun, done, losses, checks, states) =
                (&db, &acked, &begun, &done, &losses, &checks, &states);
            s.spawn(move || {
                let mut n = 0u64;
                while !done.load(Ordering::SeqCst) {
                    n += 1;
                    let q: Vec<f32> = (0..DIM)
                        .map(|i| ((n as usize + i + r) % 5) as f32 - 2.0)
                        .collect();
                    let lo = acked.load(Ordering::SeqCst);
                    let hits = db.search(&q, &SearchOptions::exact(10 * KEYS as usize));
                    let id = n % KEYS;
                    let got = workload::get_model(db, id);
                    let hi = begun.load(Ordering::SeqCst);
                    let (Ok(hits), Ok(got)) = (hits, got) else {
                        losses
                            .lock()
                            .map(|mut l| l.push("a read failed".into()))
                            .ok();
                        return;
                    };
                    let mut seen: Vec<(u64, f32)> = hits
                        .iter()
                        .map(|h| {
                            let id = workload::hit_model_id(db.keys(), h).unwrap_or(u64::MAX);
                            (id, h.distance)
                        })
                        .collect();
                    seen.sort_by_key(|x| x.0);
                    let snapshot_ok = (lo..=hi).any(|j| {
                        let want = distances(&states[j], &q);
                        want.len() == seen.len()
                            && want
                                .iter()
                                .zip(&seen)
                                .all(|(w, g)| w.0 == g.0 && (w.1 - g.1).abs() <= 1e-4 * (1.0 + w.1))
                    });
                    let got = got.map(workload::stored);
                    let get_ok = (lo..=hi).any(|j| states[j].get(&id) == got.as_ref());
                    checks.fetch_add(1, Ordering::Relaxed);
                    if !snapshot_ok || !get_ok {
                        losses
                            .lock()
                            .map(|mut l| {
                                l.push(format!(
                                    "reader {r}: {} matches no state of batches {lo}..={hi}",
                                    if snapshot_ok {
                                        "get"
                                    } else {
                                        "search snapshot"
                                    }
                                ))
                            })
                            .ok();
                        return;
                    }
                }
            });
        }
    });
    drop(db);
    tally.add(
        "concurrent snapshot checks",
        checks.load(Ordering::Relaxed) as u64,
    );
    for l in losses.into_inner().unwrap_or_default() {
        tally.lose(format!("concurrency (seed {seed}): {l}"));
    }
    let last = acked.load(Ordering::SeqCst);
    if let Err(e) = workload::check_recovered(Arc::new(OsVfs), dir.path(), &states, &[last]) {
        tally.lose(format!("concurrency (seed {seed}) reopen: {e}"));
    }
    tally
}
