//! The child of the process-kill crash tests: opens the store in `dir`, runs steps
//! `from..` of the seeded workload and reports on stdout, one line each, what it intends
//! (`I <step>`) and what was acknowledged (`A <step>`). With `kill_at` > 0 the process
//! SIGKILLs itself at its `kill_at`-th file operation (a write there first lands a
//! seeded part of its bytes, as a torn write would); otherwise it runs to the end, closes
//! the store and prints `OPS <operations>`, or is killed by the parent at a random time.
//!
//! With `STRATA_CRASH_CHILD_NO_KILL` set, the crash hook does not kill the process (the
//! file system still fails every operation after the crash point): the parent uses this
//! to check that a crash that did not happen is not counted.
//!
//! With sync `bucket`, the store is kept in the bucket named by `STRATA_CRASH_CHILD_BUCKET`
//! and every write is bucket-durable (acknowledged once its log record is in the bucket).
//!
//! Usage: `crash_child DIR SEED STEPS FROM KILL_AT always|never|bucket`

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use strata::vfs::{Action, FaultVfs, Op, OsVfs};
use strata::{Db, Durability};
use strata_tests::workload;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, seed, steps, from, kill_at, sync] = &args[..] else {
        eprintln!("usage: crash_child DIR SEED STEPS FROM KILL_AT always|never");
        std::process::exit(64);
    };
    let num = |s: &String| s.parse::<u64>().expect("a number");
    let (seed, steps, from, kill_at) = (num(seed), num(steps), num(from), num(kill_at));
    let bucket = (sync == "bucket").then(|| {
        std::env::var("STRATA_CRASH_CHILD_BUCKET")
            .expect("STRATA_CRASH_CHILD_BUCKET names the bucket")
    });
    let sync = match sync.as_str() {
        "never" => Durability::Never,
        "bucket" => Durability::Bucket,
        _ => Durability::Always,
    };
    let fs = FaultVfs::new(
        Arc::new(OsVfs),
        move |n: u64, _: Op, _: &std::path::Path, len: usize| {
            if n == kill_at {
                Action::Crash {
                    keep: len * (n % 4) as usize / 4,
                }
            } else {
                Action::Proceed
            }
        },
    )
    .with_crash_hook(|| {
        // The proof's self-check: a crash hook that does not fire must be caught.
        if std::env::var_os("STRATA_CRASH_CHILD_NO_KILL").is_none() {
            // SAFETY: kill(2) on our own pid with a constant signal has no memory effects.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    });
    let plan = workload::steps(seed, steps as usize);
    let dir = PathBuf::from(dir);
    let mut opts = workload::options_for_seed(seed, sync, Arc::new(fs.clone()));
    if let Some(url) = bucket {
        opts = opts.remote(strata::RemoteConfig::new(url));
    }
    let db = match Db::open(&dir, opts) {
        Ok(db) => db,
        Err(e) => {
            println!("E open {e}");
            std::process::exit(2);
        }
    };
    let mut out = std::io::stdout().lock();
    for (i, step) in plan.iter().enumerate().skip(from as usize) {
        writeln!(out, "I {i}").ok();
        out.flush().ok();
        if let Err(e) = workload::run_step(&db, step) {
            writeln!(out, "E {i} {e}").ok();
            std::process::exit(2);
        }
        writeln!(out, "A {i}").ok();
        out.flush().ok();
    }
    if let Err(e) = db.close() {
        writeln!(out, "E close {e}").ok();
        std::process::exit(2);
    }
    writeln!(out, "OPS {}", fs.ops()).ok();
}
