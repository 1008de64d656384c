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

/// Set for a child, its crash hook does not kill it (the check that a crash point that
/// did not happen is caught).
const NO_KILL_VAR: &str = "STRATA_CRASH_CHILD_NO_KILL";

/// What a child reported before it died, and how it ended.
#[derive(Debug, Default)]
struct Report {
    last_ack: Option<usize>,
    last_intent: Option<usize>,
    /// File operations of a session that ran to its end (its completion line).
    ops: Option<u64>,
    error: Option<String>,
    /// The child ended by SIGKILL (its own crash hook or the parent's kill).
    killed: bool,
}

impl Report {
    /// Whether this session is a crash point: the child was killed before it could
    /// print its completion line. `meant_at` is the file operation whose crash hook should
    /// have killed it (`None` for the parent's timed kill). A child that ran at least
    /// `meant_at` operations to its end, or that ended any other way than by SIGKILL, is an
    /// error: the crash hook did not fire, and nothing was tested.
    fn crash_confirmed(&self, meant_at: Option<u64>) -> Result<bool, String> {
        if let Some(e) = &self.error {
            return Err(format!("the child failed without a crash: {e}"));
        }
        match (self.killed, self.ops, meant_at) {
            (true, None, _) => Ok(true),
            // The parent's timed kill can land between the completion line and the exit.
            (true, Some(_), None) => Ok(false),
            (true, Some(_), Some(_)) => {
                Err("the child printed its completion line, then killed itself".into())
            }
            (false, Some(ops), Some(k)) if k <= ops => Err(format!(
                "the child was meant to die at file operation {k} but ran all {ops} to the end"
            )),
            (false, Some(_), _) => Ok(false),
            (false, None, _) => {
                Err("the child ended without a completion line and was not killed".into())
            }
        }
    }
}

fn parse(out: &str, status: Option<std::process::ExitStatus>) -> Report {
    use std::os::unix::process::ExitStatusExt as _;
    let mut r = Report {
        killed: status.and_then(|s| s.signal()) == Some(libc::SIGKILL),
        ..Report::default()
    };
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
    child_with(
        dir,
        seed,
        STEPS,
        from,
        kill_at,
        if never { "never" } else { "always" },
    )
}

/// A child running `steps` steps under sync mode `sync` (`always`, `never`, `bucket`).
fn child_with(
    dir: &Path,
    seed: u64,
    steps: usize,
    from: usize,
    kill_at: u64,
    sync: &str,
) -> Command {
    let mut c = Command::new(CHILD);
    c.env_remove(NO_KILL_VAR);
    c.arg(dir)
        .arg(seed.to_string())
        .arg(steps.to_string())
        .arg(from.to_string())
        .arg(kill_at.to_string())
        .arg(sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

/// Runs a child to its end or its self-inflicted death.
fn run_child(dir: &Path, seed: u64, from: usize, kill_at: u64, never: bool) -> Report {
    match child(dir, seed, from, kill_at, never).output() {
        Ok(out) => parse(&String::from_utf8_lossy(&out.stdout), Some(out.status)),
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
    let status = c.wait().ok();
    let mut out = String::new();
    if let Some(mut s) = c.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    parse(&out, status)
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

/// Checks the store a session left; the error names what broke.
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

/// Runs the whole workload uncrashed in a fresh store, checks it, and returns its file
/// operations and run time.
fn uncrashed(
    seed: u64,
    never: bool,
    states: &[workload::State],
) -> Result<(u64, Duration), String> {
    let base = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let t = Instant::now();
    let r = run_child(base.path(), seed, 0, 0, never);
    let took = t.elapsed();
    let ops = r
        .ops
        .ok_or_else(|| format!("the uncrashed workload (never={never}) failed: {r:?}"))?;
    check(base.path(), states, &r, 0).map_err(|e| format!("uncrashed run (never={never}): {e}"))?;
    Ok((ops, took))
}

/// One crash session's outcome: confirmed crash points and the first broken promise.
type Outcome = (u64, Result<(), String>);

/// One round: every k of the fixed workload, random kills, chains. Only sessions whose
/// child was confirmed killed count as crash points; a child meant to die that did not is
/// a loss.
pub fn run(round: u64) -> Tally {
    // Two workloads per round: an even seed (a store of `u64` ids) and an odd one (a
    // store of string keys; see `workload::options_for_seed`).
    let mut tally = Tally::default();
    for seed in [0xC0FFEE + 2 * round, 0xC0FFEE + 2 * round + 1] {
        tally.merge(run_seed(seed));
    }
    tally
}

fn run_seed(seed: u64) -> Tally {
    let mut tally = Tally::default();
    let plan = workload::steps(seed, STEPS);
    let states = workload::history(&plan);
    // The whole workload once per sync mode, to count its operations and time it.
    let ((ops, full_run), (ops_never, _)) = match (
        uncrashed(seed, false, &states),
        uncrashed(seed, true, &states),
    ) {
        (Ok(a), Ok(n)) => (a, n),
        (Err(e), _) | (_, Err(e)) => {
            tally.lose(e);
            return tally;
        }
    };
    // The check can fail: a child whose crash hook does not kill it is not counted.
    if let Err(e) = hook_failure_is_caught(seed, ops) {
        tally.lose(e);
        return tally;
    }
    // Every k (one in five under `Durability::Never` while that mode has a k-th operation),
    // then kills at random times.
    let states = &states;
    let mut jobs: Vec<Job<Outcome>> = Vec::new();
    for k in 1..=ops {
        jobs.push(Box::new(move || {
            let Ok(dir) = tempfile::tempdir() else {
                return (0, Err("tempdir".to_string()));
            };
            let never = k % 5 == 0 && k <= ops_never;
            let r = run_child(dir.path(), seed, 0, k, never);
            // Background work makes a session's operation count vary a little: a child
            // that ran fewer than k operations to its end is no crash point, but its store
            // is still checked.
            let res = r
                .crash_confirmed(Some(k))
                .and_then(|crashed| check(dir.path(), states, &r, 0).map(|_| crashed))
                .map_err(|e| format!("seed {seed} killed at op {k} (never={never}): {e}"));
            (u64::from(res == Ok(true)), res.map(|_| ()))
        }));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..RANDOM_KILLS {
        let w = full_run.mul_f64(rng.random_range(0.0..1.0));
        jobs.push(Box::new(move || {
            let Ok(dir) = tempfile::tempdir() else {
                return (0, Err("tempdir".to_string()));
            };
            let r = kill_child_after(dir.path(), seed, 0, w);
            // A child that finished before the kill is not a crash point, but its store
            // is still checked.
            let res = r
                .crash_confirmed(None)
                .and_then(|crashed| check(dir.path(), states, &r, 0).map(|_| crashed))
                .map_err(|e| format!("seed {seed} SIGKILL after {w:?}: {e}"));
            (u64::from(res == Ok(true)), res.map(|_| ()))
        }));
    }
    // Chains: crash, reopen and continue, crash again; small k land inside recovery. A
    // link that starts late may finish in fewer than k operations: it is no crash point
    // (and the chain goes on from the workload's end).
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
    jobs.extend(
        kills
            .into_iter()
            .enumerate()
            .map(|(c, ks)| Box::new(move || chain(seed, c, &ks, states)) as Job<_>),
    );
    for (n, res) in parallel(jobs) {
        tally.add("crash points (confirmed)", n);
        if let Err(e) = res {
            tally.lose(e);
        }
    }
    tally
}

/// Runs a child whose crash hook is disabled at the middle operation of the workload:
/// the crash check must refuse it.
fn hook_failure_is_caught(seed: u64, ops: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let k = ops.div_ceil(2);
    let r = match child(dir.path(), seed, 0, k, false)
        .env(NO_KILL_VAR, "1")
        .output()
    {
        Ok(out) => parse(&String::from_utf8_lossy(&out.stdout), Some(out.status)),
        Err(e) => return Err(format!("spawn: {e}")),
    };
    match r.crash_confirmed(Some(k)) {
        Err(_) => Ok(()),
        Ok(crashed) => Err(format!(
            "a child whose crash hook did not kill it at op {k} was accepted (crashed={crashed}): {r:?}"
        )),
    }
}

/// One chain of crash sessions over one directory, then an uncrashed session that must
/// finish the workload.
fn chain(seed: u64, c: usize, ks: &[u64], states: &[workload::State]) -> Outcome {
    let Ok(dir) = tempfile::tempdir() else {
        return (0, Err("tempdir".to_string()));
    };
    let mut from = 0;
    let mut crashes = 0u64;
    for (link, &k) in ks.iter().enumerate() {
        let r = run_child(dir.path(), seed, from, k, false);
        let res = r.crash_confirmed(Some(k)).and_then(|crashed| {
            crashes += u64::from(crashed);
            check(dir.path(), states, &r, from)
        });
        match res {
            Ok(j) => from = j,
            Err(e) => {
                return (
                    crashes,
                    Err(format!(
                        "seed {seed} chain {c} kills {ks:?}, link {link}: {e}"
                    )),
                )
            }
        }
    }
    let r = run_child(dir.path(), seed, from, 0, false);
    let res = r
        .crash_confirmed(None)
        .and_then(|crashed| {
            if crashed {
                Err("the final session was killed".into())
            } else {
                check(dir.path(), states, &r, from)
            }
        })
        .and_then(|j| {
            if j == STEPS {
                Ok(())
            } else {
                Err(format!("the chain ended at step {j}, not {STEPS}"))
            }
        });
    (
        crashes,
        res.map_err(|e| format!("seed {seed} chain {c} kills {ks:?}, end: {e}")),
    )
}

/// Steps of the workload of the bucket-durable runs.
const BUCKET_STEPS: usize = 40;
/// Kill points of the bucket-durable runs per round (spread over the workload's file
/// operations).
const BUCKET_KILLS: u64 = 120;

/// A bucket-durable child in `dir` whose store is kept in the bucket at `url`.
fn run_bucket_child(dir: &Path, url: &str, seed: u64, kill_at: u64) -> Report {
    let mut c = child_with(dir, seed, BUCKET_STEPS, 0, kill_at, "bucket");
    c.env("STRATA_CRASH_CHILD_BUCKET", url);
    match c.output() {
        Ok(out) => parse(&String::from_utf8_lossy(&out.stdout), Some(out.status)),
        Err(e) => Report {
            error: Some(format!("spawn: {e}")),
            ..Report::default()
        },
    }
}

/// Checks the bucket a bucket-durable session left, with its machine lost: a store
/// restored from the bucket alone holds every acknowledged step.
fn check_bucket(url: &str, states: &[workload::State], r: &Report) -> Result<usize, String> {
    if let Some(e) = &r.error {
        return Err(format!("the child failed without a crash: {e}"));
    }
    let copy = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let accepted = accept(r, 0);
    match strata::restore(&strata::RemoteConfig::new(url), copy.path()) {
        Ok(_) => {
            workload::check_recovered(Arc::new(strata::vfs::OsVfs), copy.path(), states, &accepted)
        }
        // Killed before its first commit: the bucket holds no store, which is right
        // only if nothing was acknowledged.
        Err(e) if e.to_string().contains("holds no store") => accepted
            .iter()
            .copied()
            .find(|&j| states.get(j).is_some_and(|s| s.is_empty()))
            .ok_or_else(|| format!("the bucket holds no store, but steps were acknowledged: {e}")),
        Err(e) => Err(format!("restore: {e}")),
    }
}

/// The history check in the remote mode: a store kept in a bucket (a local folder)
/// with bucket durability, its writer killed at file operations spread over the whole
/// workload; each time, a copy restored from the bucket alone (the writer's directory
/// thrown away) must hold every acknowledged step.
pub fn run_bucket(round: u64) -> Tally {
    let mut tally = Tally::default();
    let seed = 0xB0C4E7 + round;
    let plan = workload::steps(seed, BUCKET_STEPS);
    let states = workload::history(&plan);
    let states = &states;
    let full = (|| {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let bucket = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let url = format!("file://{}", bucket.path().display());
        let r = run_bucket_child(dir.path(), &url, seed, 0);
        let ops = r
            .ops
            .ok_or_else(|| format!("the uncrashed bucket-durable workload failed: {r:?}"))?;
        check_bucket(&url, states, &r).map_err(|e| format!("uncrashed bucket-durable run: {e}"))?;
        Ok::<u64, String>(ops)
    })();
    let ops = match full {
        Ok(ops) => ops,
        Err(e) => {
            tally.lose(e);
            return tally;
        }
    };
    let stride = (ops / BUCKET_KILLS).max(1);
    let jobs: Vec<Job<Outcome>> = (1..=ops)
        .step_by(stride as usize)
        .map(|k| {
            Box::new(move || {
                let (Ok(dir), Ok(bucket)) = (tempfile::tempdir(), tempfile::tempdir()) else {
                    return (0, Err("tempdir".to_string()));
                };
                let url = format!("file://{}", bucket.path().display());
                let r = run_bucket_child(dir.path(), &url, seed, k);
                drop(dir); // the machine is lost: only the bucket is left
                let res = r
                    .crash_confirmed(Some(k))
                    .and_then(|crashed| check_bucket(&url, states, &r).map(|_| crashed))
                    .map_err(|e| format!("seed {seed} bucket-durable, killed at op {k}: {e}"));
                (u64::from(res == Ok(true)), res.map(|_| ()))
            }) as Job<Outcome>
        })
        .collect();
    for (n, res) in parallel(jobs) {
        tally.add("bucket-durable crash points (confirmed)", n);
        if let Err(e) = res {
            tally.lose(e);
        }
    }
    tally
}
