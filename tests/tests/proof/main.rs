//! The proof suite: Strata's durability promise (`docs/durability.md`) checked by
//! crash-kill, power-loss, corruption, I/O-fault, fuzz-corpus, property and concurrency
//! runs. It is a plain binary (`harness = false`) so that it can print, at the end of
//! every run, the counts it reached and the losses it found (always zero, or it fails).
//!
//! `cargo test -p strata-tests --test proof` runs every suite once at CI scale.
//! `cargo test -p strata-tests --test proof -- crash` runs the suites whose name
//! contains `crash`. `STRATA_SOAK_SECS=3600 cargo test --release -p strata-tests --test
//! proof` repeats all suites with fresh seeds for an hour (the soak run; see README).

mod concurrency;
mod corruption;
mod crash_kill;
mod faults;
mod fuzz_corpus;
mod power_loss;
mod property;

use std::time::{Duration, Instant};

/// What one suite reached.
#[derive(Debug, Default)]
pub struct Tally {
    /// Cases run, by kind (a suite may count several kinds).
    pub counts: Vec<(&'static str, u64)>,
    /// Every broken promise, described.
    pub losses: Vec<String>,
}

impl Tally {
    /// Adds `n` cases of `kind`.
    pub fn add(&mut self, kind: &'static str, n: u64) {
        match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => self.counts.push((kind, n)),
        }
    }

    /// Records a broken promise (at most a few hundred are kept).
    pub fn lose(&mut self, what: String) {
        if self.losses.len() < 200 {
            eprintln!("LOSS: {what}");
            self.losses.push(what);
        }
    }

    fn merge(&mut self, other: Tally) {
        for (k, n) in other.counts {
            self.add(k, n);
        }
        for l in other.losses {
            self.lose(l);
        }
    }
}

/// A suite: its name and its run for one round (seeds differ per round).
type Suite = (&'static str, fn(u64) -> Tally);

const SUITES: &[Suite] = &[
    ("crash_kill", crash_kill::run),
    ("crash_kill_bucket", crash_kill::run_bucket),
    ("power_loss", power_loss::run),
    ("corruption", corruption::run),
    ("io_faults", faults::run),
    ("fuzz_corpus", fuzz_corpus::run),
    ("property", property::run),
    ("concurrency", concurrency::run),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in SUITES {
            println!("{name}: test");
        }
        return;
    }
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let soak = std::env::var("STRATA_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let start = Instant::now();
    let mut total = Tally::default();
    let mut round = 0u64;
    loop {
        for (name, suite) in SUITES {
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            let t = Instant::now();
            let tally = suite(round);
            let counts: Vec<String> = tally
                .counts
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            println!(
                "proof {name} (round {round}): {} ({} losses) in {:.1} s",
                counts.join(", "),
                tally.losses.len(),
                t.elapsed().as_secs_f64()
            );
            total.merge(tally);
        }
        round += 1;
        match soak {
            Some(d) if start.elapsed() < d => continue,
            _ => break,
        }
    }
    println!();
    println!(
        "proof summary ({round} round(s), {:.0} s):",
        start.elapsed().as_secs_f64()
    );
    for (k, n) in &total.counts {
        println!("  {n:>9}  {k}");
    }
    println!("  {:>9}  losses", total.losses.len());
    if !total.losses.is_empty() {
        for l in &total.losses {
            println!("LOSS: {l}");
        }
        std::process::exit(1);
    }
}
