//! Helpers shared by the whole-store tests.

use std::path::Path;

use rand::{Rng, SeedableRng};
use strata::{Db, Durability, Metric, Options};

/// A seeded generator; every test prints its seed.
pub fn rng(seed: u64) -> rand::rngs::StdRng {
    println!("seed {seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// A random vector with components in [-1, 1).
pub fn vector(rng: &mut impl Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Options with a tiny memtable so that flushes happen often, and an index on every
/// segment of 8 rows or more so that index building and opening run on every flush.
pub fn small(dim: usize, metric: Metric) -> Options {
    Options::new(dim, metric)
        .durability(Durability::Always)
        .memtable_bytes(4 * 1024)
        .index(strata_tests::workload::small_index(8, 32))
}

/// Opens (or creates) a store with [`small`] options.
pub fn open(dir: &Path, dim: usize, metric: Metric) -> Db {
    Db::open(dir, small(dim, metric)).expect("open store")
}

/// Distance as the store defines it, computed independently (f64, scalar).
pub fn distance(metric: Metric, q: &[f32], v: &[f32]) -> f32 {
    let dot: f64 = q.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum();
    match metric {
        Metric::L2 => q
            .iter()
            .zip(v)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>() as f32,
        Metric::InnerProduct => -dot as f32,
        Metric::Cosine => (1.0 - dot) as f32,
    }
}

/// Unit-length copy (what the store keeps for cosine).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Brute-force top-k distances over `(id, vector)` pairs.
pub fn brute_force<'a>(
    metric: Metric,
    q: &[f32],
    rows: impl Iterator<Item = (u64, &'a Vec<f32>)>,
    k: usize,
) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> = rows.map(|(id, v)| (id, distance(metric, q, v))).collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Flips one bit of the file at `offset`.
pub fn flip(path: &Path, offset: u64) {
    let mut b = std::fs::read(path).expect("read");
    b[offset as usize] ^= 0x01;
    std::fs::write(path, b).expect("write");
}

/// The store's files with the given extension, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Re-runs this test binary as a child process that executes only `test` (by its full
/// path) with `env` set to `dir`; the test checks `env` to play the child's part.
pub fn run_child(test: &str, env: &str, dir: &Path) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .output()
        .expect("spawn child test process")
}
