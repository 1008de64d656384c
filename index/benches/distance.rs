//! Criterion benches: every compiled distance kernel at common dimensions, an exact
//! scan of 100k rows, distances on `int8` rows (one and a batch at a time), and PQ
//! asymmetric distances (the graph walk's inner loop).
//! `cargo bench -p strata-index`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use strata_index::distance::available;
use strata_index::pq::ProductQuantizer;
use strata_index::{exact::scan_block, Metric, TopK};

fn kernels(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("l2");
    for dim in [50usize, 128, 768] {
        let a: Vec<f32> = (0..dim).map(|_| rng.random()).collect();
        let b: Vec<f32> = (0..dim).map(|_| rng.random()).collect();
        for k in available() {
            g.bench_with_input(BenchmarkId::new(k.name, dim), &dim, |bch, _| {
                bch.iter(|| (k.l2)(std::hint::black_box(&a), std::hint::black_box(&b)))
            });
        }
    }
    g.finish();
}

/// Distances on `int8` rows (`strata_index::sq8`), each kernel set, over 4,096 rows of
/// codes (so that the rows come from the cache, as in a walk over a hot front).
fn sq8(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let rows = 4096usize;
    let mut g = c.benchmark_group("sq8");
    for dim in [50usize, 128, 384] {
        let t: Vec<f32> = (0..dim).map(|_| rng.random_range(0.0..255.0)).collect();
        let w: Vec<f32> = (0..dim).map(|_| rng.random_range(0.0..0.01)).collect();
        let codes: Vec<u8> = (0..rows * dim).map(|_| rng.random()).collect();
        g.throughput(Throughput::Elements(rows as u64));
        for k in available() {
            g.bench_with_input(
                BenchmarkId::new(format!("l2/{}", k.name), dim),
                &dim,
                |b, &dim| {
                    b.iter(|| {
                        codes
                            .chunks_exact(dim)
                            .map(|c| (k.sq8_l2)(&t, &w, std::hint::black_box(c)))
                            .sum::<f32>()
                    })
                },
            );
            g.bench_with_input(
                BenchmarkId::new(format!("dot/{}", k.name), dim),
                &dim,
                |b, &dim| {
                    b.iter(|| {
                        codes
                            .chunks_exact(dim)
                            .map(|c| (k.sq8_dot)(&t, std::hint::black_box(c)))
                            .sum::<f32>()
                    })
                },
            );
        }
    }
    g.finish();
}

/// The walk's `int8` row kernels: batches of 32 random nodes of 4,096 rows (one call per
/// batch, as a graph expansion scores a node's neighbours), each kernel set.
fn sq8_rows(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let rows = 4096usize;
    let mut g = c.benchmark_group("sq8_rows");
    for dim in [50usize, 100, 128, 384] {
        let t: Vec<f32> = (0..dim).map(|_| rng.random_range(0.0..255.0)).collect();
        let w: Vec<f32> = (0..dim).map(|_| rng.random_range(0.0..0.01)).collect();
        let codes: Vec<u8> = (0..rows * dim).map(|_| rng.random()).collect();
        let batches: Vec<Vec<u32>> = (0..64)
            .map(|_| (0..32).map(|_| rng.random_range(0..rows as u32)).collect())
            .collect();
        g.throughput(Throughput::Elements(64 * 32));
        for k in available() {
            let mut out = [0f32; 32];
            g.bench_with_input(
                BenchmarkId::new(format!("l2/{}", k.name), dim),
                &dim,
                |b, &dim| {
                    b.iter(|| {
                        for nodes in &batches {
                            (k.sq8_l2_rows)(
                                &t,
                                &w,
                                std::hint::black_box(&codes),
                                dim,
                                nodes,
                                &mut out,
                            );
                        }
                        out[0]
                    })
                },
            );
            g.bench_with_input(
                BenchmarkId::new(format!("dot/{}", k.name), dim),
                &dim,
                |b, &dim| {
                    b.iter(|| {
                        for nodes in &batches {
                            (k.sq8_dot_rows)(
                                &t,
                                std::hint::black_box(&codes),
                                dim,
                                nodes,
                                &mut out,
                            );
                        }
                        out[0]
                    })
                },
            );
        }
    }
    g.finish();
}

fn scan(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let (n, dim) = (100_000usize, 128usize);
    let block: Vec<f32> = (0..n * dim).map(|_| rng.random()).collect();
    let q: Vec<f32> = (0..dim).map(|_| rng.random()).collect();
    let mut g = c.benchmark_group("exact_scan");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    g.bench_function("100k x 128 top10", |b| {
        b.iter(|| {
            let mut top = TopK::new(10);
            scan_block(
                Metric::L2,
                &q,
                &block,
                dim,
                &mut top,
                |r| r as u64,
                |_| false,
            );
            top.into_sorted()
        })
    });
    g.finish();
}

fn adc(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (n, dim) = (20_000usize, 128usize);
    let data: Vec<f32> = (0..n * dim).map(|_| rng.random()).collect();
    let q: Vec<f32> = (0..dim).map(|_| rng.random()).collect();
    let mut g = c.benchmark_group("adc");
    for m in [16usize, 30] {
        let pq = ProductQuantizer::train(&data, dim, m, 10_000, 1);
        let codes = pq.encode_all(&data);
        let table = pq.adc_table(&q, Metric::L2);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("20k codes", m), &m, |b, &m| {
            b.iter(|| {
                codes
                    .chunks_exact(m)
                    .map(|c| table.distance(std::hint::black_box(c)))
                    .sum::<f32>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, kernels, sq8, sq8_rows, scan, adc);
criterion_main!(benches);
