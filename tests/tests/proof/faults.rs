//! I/O faults: the workload runs over a simulated file system whose k-th changing
//! operation fails with ENOSPC or EIO, once or from then on, for every k. The failing
//! write (or flush) reports the error, no later write is acknowledged until the store is
//! reopened, and a reopen once the fault is gone (after a process restart, and after a
//! power cut) finds every acknowledged write, with the failed batch wholly there or
//! wholly absent. A group-commit run checks that a failed fsync reaches every writer it
//! covered.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use strata::vfs::{Action, CutStyle, FailPlan, FaultVfs, Op, SimVfs, Vfs};
use strata::{Db, Durability, WriteBatch};
use strata_tests::workload::{self, Step};

use crate::Tally;

const STEPS: usize = 50;
const ENOSPC: i32 = 28;
const EIO: i32 = 5;

/// Runs the workload over a failing file system and checks it; `Err` describes a loss,
/// `Ok(true)` means a writer saw the fault. The store is reopened once the fault is gone:
/// after a process restart, or with `cut` after a power cut keeping only what was synced
/// (under `Durability::Always` that must still hold every acknowledged write).
fn one(
    seed: u64,
    steps: &[Step],
    states: &[workload::State],
    plan: FailPlan,
    cut: bool,
) -> Result<bool, String> {
    let dir = Path::new("/store");
    let sim = SimVfs::new();
    let fs = FaultVfs::failing(Arc::new(sim.clone()), plan);
    let mut first_fail = None;
    if let Ok(db) = Db::open(
        dir,
        workload::options_for_seed(seed, Durability::Always, Arc::new(fs)),
    ) {
        for (i, step) in steps.iter().enumerate() {
            let res = workload::run_step(&db, step);
            match (step, res, first_fail) {
                // A failed compaction leaves the store as it was; writes go on.
                (Step::Compact(_), _, _) => {}
                (_, Err(_), None) => first_fail = Some(i),
                (Step::Batch(_) | Step::DeleteWhere(_), Ok(()), Some(f)) => {
                    return Err(format!(
                    "step {i} acknowledged after the failure at step {f} (seed {seed}, {plan:?})"
                ))
                }
                _ => {}
            }
        }
    } else {
        first_fail = Some(0);
    }
    let accept: Vec<usize> = match first_fail {
        Some(f) => vec![f, f + 1],
        None => vec![steps.len()],
    };
    let (reopened, how): (Arc<dyn Vfs>, _) = if cut {
        (Arc::new(sim.power_cut(CutStyle::SyncedOnly)), "power cut")
    } else {
        (Arc::new(sim), "reopen")
    };
    workload::check_recovered(reopened, dir, states, &accept)
        .map_err(|e| format!("{how} after {plan:?} (seed {seed}): {e}"))?;
    Ok(first_fail.is_some())
}

/// A failed group fsync: several writers share fsyncs; the k-th fsync fails. Every
/// writer acknowledged must be in a synced-only image taken at the failure and at the
/// end; no writer is acknowledged after the failure.
fn group_commit(k: u64) -> Result<u64, String> {
    let dir = Path::new("/store");
    let sim = SimVfs::new();
    let at_failure: Arc<Mutex<Option<SimVfs>>> = Arc::default();
    let syncs = AtomicU64::new(0);
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let armed2 = armed.clone();
    let snap = at_failure.clone();
    let sim2 = sim.clone();
    let fs = FaultVfs::new(
        Arc::new(sim.clone()),
        move |_: u64, op: Op, p: &Path, _: usize| {
            let is_wal = p.extension().is_some_and(|e| e == "wal");
            let counted = op == Op::FileSync && is_wal && armed2.load(Ordering::Acquire);
            if counted && syncs.fetch_add(1, Ordering::Relaxed) + 1 == k {
                if let Ok(mut s) = snap.lock() {
                    *s = Some(sim2.power_cut(CutStyle::SyncedOnly));
                }
                return Action::Fail(std::io::Error::from_raw_os_error(EIO));
            }
            Action::Proceed
        },
    );
    let o = workload::options(Durability::Always, Arc::new(fs)).memtable_bytes(1 << 20);
    let db = Db::open(dir, o).map_err(|e| format!("open: {e}"))?;
    armed.store(true, Ordering::Release);
    let acked: Mutex<Vec<u64>> = Mutex::default();
    let failed_at: Mutex<Option<usize>> = Mutex::default();
    let order = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (db, acked, order, failed_at) = (&db, &acked, &order, &failed_at);
            s.spawn(move || {
                for i in 0..12u64 {
                    let id = t * 100 + i;
                    let mut b = WriteBatch::new();
                    b.upsert(id, &[id as f32; workload::DIM]);
                    let res = db.write(b);
                    let n = order.fetch_add(1, Ordering::SeqCst);
                    match res {
                        Ok(()) => acked.lock().map(|mut a| a.push(id)).unwrap_or(()),
                        Err(_) => {
                            if let Ok(mut f) = failed_at.lock() {
                                f.get_or_insert(n as usize);
                            }
                        }
                    }
                }
            });
        }
    });
    drop(db);
    let acked = acked.into_inner().unwrap_or_default();
    let image_at_failure = at_failure.lock().ok().and_then(|mut s| s.take());
    let mut images = vec![("end", sim.power_cut(CutStyle::SyncedOnly))];
    if let Some(i) = image_at_failure {
        images.push(("failure", i));
    }
    for (when, image) in images {
        let reopened = Db::open(dir, workload::options(Durability::Always, Arc::new(image)))
            .map_err(|e| format!("reopen ({when}): {e}"))?;
        for &id in &acked {
            // Writers acknowledged before the failed fsync must be in the failure image;
            // ones acknowledged after it would be a lost write.
            if reopened.get(id).map_err(|e| e.to_string())?.is_none() {
                return Err(format!(
                    "group commit, fsync {k} failed: acknowledged id {id} missing from the {when} image"
                ));
            }
        }
    }
    Ok(acked.len() as u64)
}

/// One round: every k, once and persistently, ENOSPC and EIO alternating.
pub fn run(round: u64) -> Tally {
    // Two workloads per round: an even seed (a store of `u64` ids) and an odd one (a
    // store of string keys; see `workload::options_for_seed`).
    let mut tally = Tally::default();
    for seed in [0xFA17 + 2 * round, 0xFA17 + 2 * round + 1] {
        tally.merge(run_seed(seed));
    }
    tally
}

fn run_seed(seed: u64) -> Tally {
    let mut tally = Tally::default();
    let steps = workload::steps(seed, STEPS);
    let states = workload::history(&steps);
    // The workload once without faults, to count its changing operations: it must run
    // to its end and leave the expected state, or the fault points below test nothing.
    let counter = FaultVfs::counting(Arc::new(SimVfs::new()));
    let counted = Db::open(
        Path::new("/store"),
        workload::options_for_seed(seed, Durability::Always, Arc::new(counter.clone())),
    )
    .map_err(|e| format!("open: {e}"))
    .and_then(|db| {
        for (i, s) in steps.iter().enumerate() {
            workload::run_step(&db, s).map_err(|e| format!("step {i}: {e}"))?;
        }
        let state = workload::read_state(&db)?;
        // Dropped without close, as the fault runs end: the background work it joins
        // (a flush still running) counts, a closing flush would not.
        drop(db);
        if Some(&state) == states.last() {
            Ok(counter.mutations())
        } else {
            Err("the store's state differs from the workload's history".to_string())
        }
    });
    let mutations = match counted {
        Ok(m) => m,
        Err(e) => {
            tally.lose(format!(
                "the fault-free counting run (seed {seed}) failed: {e}"
            ));
            return tally;
        }
    };
    for at in 1..=mutations + 1 {
        for persistent in [false, true] {
            let errno = if (at + persistent as u64).is_multiple_of(2) {
                ENOSPC
            } else {
                EIO
            };
            let plan = FailPlan {
                at,
                persistent,
                errno,
            };
            tally.add("I/O fault points", 1);
            let res = one(seed, &steps, &states, plan, at % 4 == 0);
            match res {
                Ok(true) => tally.add("faults reported to a writer", 1),
                Ok(false) => {}
                Err(e) => tally.lose(e),
            }
        }
    }
    // Group commit (by `u64` id) once per round, with the even seed.
    let round = (seed - 0xFA17) / 2;
    for k in (1..=12).filter(|_| seed.is_multiple_of(2)) {
        tally.add("I/O fault points", 1);
        if let Err(e) = group_commit(k + round) {
            tally.lose(e);
        }
    }
    tally
}
