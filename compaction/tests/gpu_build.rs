//! A segment index built by the GPU's algorithm against the CPU build (`harness =
//! false`: what it prints is shown by `cargo test`).
//!
//! The algorithm (batched k-means, encoding, graph from exact earlier-neighbour lists)
//! always runs on the CPU reference kernels, so it is checked on every machine; on the
//! GPU when there is one, else the line says why it was skipped. Checks: the same PQ
//! codebooks and codes (exact kernels) or codes equal but for ties and the k-means
//! objective within 1 % (GPU), the same entry point, and recall@10 within 0.01 of the
//! CPU build at the same search settings.

use strata_compaction::{BuiltIndex, IndexOptions, Stage, WalkOn};
use strata_format::segment::{BUILT_GPU_CODES, BUILT_GPU_KMEANS, BUILT_GPU_LISTS};
use strata_index::gpu::{BuildKernels, Gpu, ReferenceKernels};
use strata_index::hnsw::{search, Visited};
use strata_index::Metric;

/// Clustered rows: 30 centres drawn from `centres`, uniform noise from `noise` (queries
/// share the rows' centres, not their noise).
fn sample(n: usize, dim: usize, centres: u64, noise: u64) -> Vec<f32> {
    let gen = |seed: u64| {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        }
    };
    let mut c = gen(centres);
    let centre: Vec<f32> = (0..30 * dim).map(|_| c() * 8.0).collect();
    let mut r = gen(noise ^ 0x5555);
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let k = ((r() * 30.0) as usize).min(29);
        for j in 0..dim {
            out.push(centre[k * dim + j] + r() * 6.0 - 3.0);
        }
    }
    out
}

/// Beam width of the recall check: the least that returns 10, where recall is most
/// sensitive to the graph.
const EF: usize = 10;

/// Recall@10 of the graph walk (exact distances, ef [`EF`]) against brute force.
fn recall(ix: &BuiltIndex, rows: &[f32], dim: usize, queries: &[f32]) -> f64 {
    let view = ix.graph().view();
    let mut hits = 0;
    for q in queries.chunks_exact(dim) {
        let mut top = strata_index::TopK::new(10);
        strata_index::exact::scan_block(
            Metric::L2,
            q,
            rows,
            dim,
            &mut top,
            |r| r as u64,
            |_| false,
        );
        let truth: Vec<u64> = top.into_sorted().iter().map(|n| n.id).collect();
        let d = |node: u32| Metric::L2.distance(q, &rows[node as usize * dim..][..dim]);
        let got = search(&view, d, EF, &mut Visited::new());
        hits += got
            .iter()
            .take(10)
            .filter(|n| truth.contains(&n.id))
            .count();
    }
    hits as f64 / (queries.len() / dim * 10) as f64
}

fn build(k: Option<&dyn BuildKernels>, rows: &[f32], dim: usize, o: &IndexOptions) -> BuiltIndex {
    BuiltIndex::build_on(k, rows, dim, Metric::L2, o, WalkOn::Pq, &|_, _, _| true)
        .expect("never stopped")
}

/// Returns the line to print.
fn check(kernels: &dyn BuildKernels, exact: bool) -> String {
    let (n, dim) = (6000, 24);
    let o = IndexOptions {
        train_sample: 4096,
        ..IndexOptions::default()
    };
    let rows = sample(n, dim, 1, 1);
    let cpu = build(None, &rows, dim, &o);
    let gpu = build(Some(kernels), &rows, dim, &o);
    let all = BUILT_GPU_KMEANS | BUILT_GPU_CODES | BUILT_GPU_LISTS;
    assert_eq!(cpu.report().built_by, 0);
    assert_eq!(gpu.report().built_by, all, "{:?}", gpu.report().fallback);
    assert_eq!(gpu.meta().built_by, all, "recorded in the segment");
    let stages: Vec<Stage> = gpu.report().stages.iter().map(|s| s.0).collect();
    assert_eq!(
        stages,
        [Stage::Train, Stage::Encode, Stage::Lists, Stage::Graph]
    );
    assert_eq!(
        gpu.meta().entry_node,
        cpu.meta().entry_node,
        "same levels, same entry"
    );
    let differ = gpu
        .codes()
        .iter()
        .zip(cpu.codes())
        .filter(|(a, b)| a != b)
        .count();
    if exact {
        assert_eq!(gpu.pq(), cpu.pq(), "the same codebooks");
        assert_eq!(differ, 0, "the same codes");
    } else {
        // Re-encode with the GPU's codebook on the CPU: codes equal but for exact ties.
        let again = gpu.pq().expect("trained").encode_all(&rows);
        let ties = again
            .iter()
            .zip(gpu.codes())
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            ties * 10_000 <= again.len(),
            "{ties} codes differ from the CPU encoding"
        );
    }
    // Recall over three data sets and 3,000 queries; both builds on one thread, so the
    // verdict does not depend on a thread schedule.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (mut r_gpu, mut r_cpu) = (0.0, 0.0);
    for seed in [1, 5, 6] {
        let rows = sample(n, dim, seed, seed);
        let queries = sample(1000, dim, seed, seed + 100);
        let (c, g) = pool.install(|| {
            (
                build(None, &rows, dim, &o),
                build(Some(kernels), &rows, dim, &o),
            )
        });
        r_cpu += recall(&c, &rows, dim, &queries);
        r_gpu += recall(&g, &rows, dim, &queries);
    }
    let (r_gpu, r_cpu) = (r_gpu / 3.0, r_cpu / 3.0);
    assert!(
        r_gpu >= r_cpu - 0.01,
        "recall@10 {r_gpu} vs CPU build {r_cpu}"
    );
    format!("recall@10 {r_gpu:.4} vs CPU build {r_cpu:.4} (ef {EF}); {differ} codes differ from the CPU build's")
}

fn main() {
    println!("gpu segment build:");
    println!(
        "  on the CPU reference kernels: ok ({})",
        check(&ReferenceKernels, true)
    );
    match Gpu::shared() {
        Ok(g) => println!("  on {}: ok ({})", g.name(), check(g, false)),
        Err(e) => println!("  on the GPU: SKIPPED (no GPU: {e})"),
    }
}
