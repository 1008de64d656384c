//! Power-loss images from the simulated file system: the workload runs over a
//! [`SimVfs`] until a simulated crash at a random file operation; the image a power cut
//! would leave (only what was synced, or a seeded mix of what was pending: prefixes,
//! reordered and torn sectors, a prefix of the directory changes) is opened. Under
//! `Durability::Always` nothing acknowledged may be lost; under `Periodic` and `Never` the
//! store must open, without a corruption error, to a prefix of the history no older
//! than the last acknowledged flush.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use strata::vfs::{Action, CutStyle, FaultVfs, Op, SimVfs, Vfs};
use strata::{Db, Durability};
use strata_tests::workload::{self, Step};

use crate::Tally;

const IMAGES: u64 = 330;
const STEPS: usize = 60;
/// Distinct workloads per round (each is crashed at many points).
const WORKLOADS: u64 = 6;

fn sync_of(i: u64) -> Durability {
    match i % 3 {
        0 => Durability::Always,
        1 => Durability::Never,
        _ => Durability::Periodic(Duration::from_millis(2)),
    }
}

/// Runs `steps` over `fs` until the first failure; returns (last acknowledged step, last
/// step begun, last acknowledged flush).
fn run_until_crash(
    fs: Arc<dyn Vfs>,
    dir: &Path,
    steps: &[Step],
    sync: Durability,
    seed: u64,
) -> (Option<usize>, Option<usize>, Option<usize>) {
    let (mut ack, mut intent, mut durable) = (None, None, None);
    let Ok(db) = Db::open(dir, workload::options_for_seed(seed, sync, fs)) else {
        return (ack, intent, durable);
    };
    for (i, step) in steps.iter().enumerate() {
        intent = Some(i);
        if workload::run_step(&db, step).is_err() {
            break;
        }
        ack = Some(i);
        // A flush persists everything written before it (a compaction need not).
        if matches!(step, Step::Flush) {
            durable = Some(i);
        }
    }
    (ack, intent, durable)
}

/// One round of power-loss images.
pub fn run(round: u64) -> Tally {
    let mut tally = Tally::default();
    let dir = Path::new("/store");
    for w in 0..WORKLOADS {
        let seed = 0x9A55 + round * WORKLOADS + w;
        let steps = workload::steps(seed, STEPS);
        let states = workload::history(&steps);
        // Count the operations of an uncrashed run.
        let counter = FaultVfs::counting(Arc::new(SimVfs::new()));
        run_until_crash(
            Arc::new(counter.clone()),
            dir,
            &steps,
            Durability::Always,
            seed,
        );
        let ops = counter.ops().max(1);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for i in 0..IMAGES / WORKLOADS {
            let sync = sync_of(i);
            let crash_at = rng.random_range(1..=ops);
            let sim = SimVfs::new();
            let fs = FaultVfs::new(
                Arc::new(sim.clone()),
                move |n: u64, _: Op, _: &Path, len: usize| {
                    if n == crash_at {
                        Action::Crash { keep: len / 2 }
                    } else {
                        Action::Proceed
                    }
                },
            );
            let (ack, intent, durable) = run_until_crash(Arc::new(fs), dir, &steps, sync, seed);
            let style = if i % 2 == 0 {
                CutStyle::SyncedOnly
            } else {
                CutStyle::Random(seed ^ i)
            };
            let image = sim.power_cut(style);
            let lo = ack.map_or(0, |a| a + 1);
            let hi = intent.map_or(0, |a| a + 1).max(lo);
            let accept: Vec<usize> = match sync {
                Durability::Always => vec![lo, hi],
                _ => (durable.map_or(0, |d| d + 1)..=hi).collect(),
            };
            tally.add("power-loss images", 1);
            if let Err(e) = workload::check_recovered(Arc::new(image), dir, &states, &accept) {
                tally.lose(format!(
                    "power cut ({style:?}) at op {crash_at} of workload {seed} under {sync:?}: {e}"
                ));
            }
        }
    }
    tally
}
