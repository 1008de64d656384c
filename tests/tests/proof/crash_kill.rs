//! Process-kill crash tests with real processes: `crash_child` runs the seeded workload
//! and reports intents and acknowledgements over a pipe; it dies at its k-th file
//! operation for every k of a fixed workload, at random times by the parent's SIGKILL,
//! and in chains of crashes (crash, reopen, write, crash again, crashes inside recovery
//! included). After each death the parent checks the store with
//! [`workload::check_recovered`].

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use strata_tests::workload;

use crate::Tally;

const CHILD: &str = env!("CARGO_BIN_EXE_crash_child");
/// Steps of the fixed workload.
const STEPS: usize = 80;
/// Random-time kills and chains per round.
const RANDOM_KILLS: usize = 300;
const CHAINS: usize = 70;
const CHAIN_LEN: usize = 4;

/// What a child reported before it died.
#[derive(Debug, Default)]
struct Report {
    last_ack: Option<usize>,
    last_intent: Option<usize>,
    ops: Option<u64>,
    error: Option<String>,
}

fn parse(out: &str) -> Report {
    let mut r = Report::default();
    for line in out.lines() {
        let mut it = line.splitn(2, ' ');
        match (it.next(), it.next()) {
            (Some("I"), Some(n)) => r.last_intent = n.parse().ok(),
            (Some("A"), Some(n)) => r.last_ack = n.parse().ok(),
            (Some("OPS"), Some(n)) => r.ops = n.parse().ok(),
            (Some("E"), Some(e)) => r.error = Some(e.to_string()),
            _ => {}
        }
    }
    r
}

fn child(dir: &Path, seed: u64, from: usize, kill_at: u64, never: bool) -> Command {
    let mut c = Command::new(CHILD);
    c.arg(dir)
        .arg(seed.to_string())
        .arg(STEPS.to_string())
        .arg(from.to_string())
        .arg(kill_at.to_string())
        .arg(if never { "never" } else { "always" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

/// Runs a child to its end or its self-inflicted death.
fn run_child(dir: &Path, seed: u64, from: usize, kill_at: u64, never: bool) -> Report {
    match child(dir, seed, from, kill_at, never).output() {
        Ok(out) => parse(&String::from_utf8_lossy(&out.stdout)),
        Err(e) => Report {
            error: Some(format!("spawn: {e}")),
            ..Report::default()
        },
    }
}

/// Runs a child and SIGKILLs it after `after`.
fn kill_child_after(dir: &Path, seed: u64, from: usize, after: Duration) -> Report {
    let Ok(mut c) = child(dir, seed, from, 0, false).spawn() else {
        return Report {
            error: Some("spawn".into()),
            ..Report::default()
        };
    };
    std::thread::sleep(after);
    let _ = c.kill();
    let _ = c.wait();
    let mut out = String::new();
    if let Some(mut s) = c.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    parse(&out)
}

/// The states a crashed session may have left: after its last acknowledged step, or
/// after the step it was in.
fn accept(r: &Report, from: usize) -> Vec<usize> {
    let lo = r.last_ack.map_or(from, |i| i + 1);
    let hi = r.last_intent.map_or(from, |i| i + 1).max(lo);
    if hi == lo {
        vec![lo]
    } else {
        vec![lo, hi]
    }
}

fn check(dir: &Path, states: &[workload::State], r: &Report, from: usize) -> Result<usize, String> {
    if let Some(e) = &r.error {
        return Err(format!("the child failed without a crash: {e}"));
    }
    workload::check_recovered(Arc::new(strata::vfs::OsVfs), dir, states, &accept(r, from))
}

/// A unit of work for [`parallel`].
type Job<'a, T> = Box<dyn FnOnce() -> T + Send + 'a>;

/// Runs `jobs` on two threads (the CI machine has two cores).
fn parallel<T: Send>(jobs: Vec<Job<'_, T>>) -> Vec<T> {
    let jobs = std::sync::Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let out = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let job = jobs.lock().map(|mut j| j.pop()).ok().flatten();
                let Some((i, job)) = job else { break };
                let r = job();
                if let Ok(mut o) = out.lock() {
                    o.push((i, r));
                }
            });
        }
    });
    let mut out = out.into_inner().unwrap_or_default();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// One round: every k of the fixed workload, random kills, chains.
pub fn run(round: u64) -> Tally {
    let mut tally = Tally::default();
    let seed = 0xC0FFEE + round;
    let plan = workload::steps(seed, STEPS);
    let states = workload::history(&plan);
    // The whole workload once, to count its operations and time it.
    let base = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let r = run_child(base.path(), seed, 0, 0, false);
    let full_run = t.elapsed();
    let Some(ops) = r.ops else {
        tally.lose(format!("the uncrashed workload failed: {:?}", r.error));
        return tally;
    };
    if let Err(e) = check(base.path(), &states, &r, 0) {
        tally.lose(format!("uncrashed run: {e}"));
    }
    // Every k, then kills at random times. Each job reports its crash points.
    let states = &states;
    let mut jobs: Vec<Job<(u64, Result<(), String>)>> = Vec::new();
    for k in 1..=ops {
        jobs.push(Box::new(move || {
            let Ok(dir) = tempfile::tempdir() else {
                return (0, Err("tempdir".to_string()));
            };
            let never = k % 5 == 0;
            let r = run_child(dir.path(), seed, 0, k, never);
            let res = check(dir.path(), states, &r, 0)
                .map(|_| ())
                .map_err(|e| format!("seed {seed} killed at op {k} (never={never}): {e}"));
            (1, res)
        }));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..RANDOM_KILLS {
        let w = full_run.mul_f64(rng.random_range(0.0..1.1));
        jobs.push(Box::new(move || {
            let Ok(dir) = tempfile::tempdir() else {
                return (0, Err("tempdir".to_string()));
            };
            let r = kill_child_after(dir.path(), seed, 0, w);
            let res = check(dir.path(), states, &r, 0)
                .map(|_| ())
                .map_err(|e| format!("seed {seed} SIGKILL after {w:?}: {e}"));
            (1, res)
        }));
    }
    // Chains: crash, reopen and continue, crash again; small k land inside recovery.
    let kills: Vec<Vec<u64>> = (0..CHAINS)
        .map(|_| {
            (0..CHAIN_LEN)
                .map(|i| {
                    if i % 2 == 1 {
                        rng.random_range(1..=40)
                    } else {
                        rng.random_range(1..=ops)
                    }
                })
                .collect()
        })
        .collect();
    jobs.extend(kills.into_iter().enumerate().map(|(c, ks)| {
        Box::new(move || {
            let Ok(dir) = tempfile::tempdir() else {
                return (0, Err("tempdir".to_string()));
            };
            let mut from = 0;
            let mut n = 0u64;
            for &k in &ks {
                let r = run_child(dir.path(), seed, from, k, false);
                n += 1;
                match check(dir.path(), states, &r, from) {
                    Ok(j) => from = j,
                    Err(e) => {
                        return (
                            n,
                            Err(format!("seed {seed} chain {c} kills {ks:?}, link {n}: {e}")),
                        )
                    }
                }
            }
            // The chain ends with an uncrashed session that finishes the workload.
            let r = run_child(dir.path(), seed, from, 0, false);
            let res = check(dir.path(), states, &r, from).and_then(|j| {
                if j == STEPS {
                    Ok(())
                } else {
                    Err(format!("the chain ended at step {j}, not {STEPS}"))
                }
            });
            (
                n,
                res.map_err(|e| format!("seed {seed} chain {c} kills {ks:?}, end: {e}")),
            )
        }) as Job<_>
    }));
    for (n, res) in parallel(jobs) {
        tally.add("crash points", n);
        if let Err(e) = res {
            tally.lose(e);
        }
    }
    tally
}
